//! The node's raft group: openraft's type configuration, the commands the
//! log carries, and the storage adapters (`log_store` on the `wal` crate,
//! `state_machine` on the `mvcc` crate).
//!
//! Encoding: every log entry (openraft's `Entry`, with our [`Command`] as
//! its payload), the vote and the other log metadata are written to the
//! WAL as postcard (serde) bytes. The WAL frames and checksums them; this
//! module only maps types to bytes.

mod applied;
mod applied_index;
mod apply;
mod log_store;
pub(crate) mod mailbox;
mod network;
mod outcome;
mod sessions;
mod state_machine;

use std::fmt;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ferrocd_mvcc as mvcc;
use serde::{Deserialize, Serialize};

use crate::auth::{AuthOp, Caller};

pub(crate) use applied::alarm_name;
pub use applied::{ALARM_CORRUPT, ALARM_NOSPACE};
pub use applied_index::AppliedIndex;
pub use log_store::LogStore;
pub(crate) use log_store::write_adopted;
pub use network::{
    APPEND_BYTES, KIND_APPEND, KIND_FORWARD, KIND_LEASE_RENEW, KIND_LEASE_TTL, KIND_MEMBER_CHANGE,
    KIND_MEMBERS, KIND_PRE_VOTE, KIND_PUBLISH, KIND_READ_INDEX, KIND_SNAPSHOT, KIND_STATUS,
    KIND_TRANSFER, KIND_VOTE, PeerNetwork, SnapshotChunk,
};
pub use outcome::{Applied, ApplyError};
pub use sessions::{InFlight, Origin, RequestId, Seen, Sessions};
pub(crate) use state_machine::write_snapshot_at;
pub use state_machine::{DbSize, SmShared, SnapshotData, StateMachine, write_restored_snapshot};

openraft::declare_raft_types!(
    /// openraft's types for ferrocd's one raft group: node ids are etcd
    /// member ids (u64), a node is a [`Member`], an entry's payload is a
    /// [`Proposal`] (a batch of client requests, encoded once), and the
    /// response to it is the batch's [`Outcomes`], one per request: the
    /// only way results reach the proposer.
    pub TypeConfig:
        D = Proposal,
        R = Outcomes,
        Node = Member,
);

/// A member as the replicated membership knows it (etcd's `Member`
/// attributes): its name, peer URLs and client URLs. A member publishes
/// its client URLs once it serves (the initial cluster names only peers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// `--name`.
    pub name: String,
    /// Peer URLs (the first is dialed).
    pub peer_urls: Vec<String>,
    /// Client URLs (empty until published).
    pub client_urls: Vec<String>,
}

impl Member {
    /// `host:port` of the first peer URL.
    pub fn peer_addr(&self) -> Option<String> {
        let u = url::Url::parse(self.peer_urls.first()?).ok()?;
        Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?))
    }

    /// Whether the first peer URL (the one dialed) is `https://`.
    pub fn peer_tls(&self) -> bool {
        self.peer_urls
            .first()
            .is_some_and(|u| u.starts_with("https://"))
    }
}

/// The raft handle.
pub type Raft = openraft::Raft<TypeConfig, StateMachine>;

/// A log entry.
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
/// A log id.
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
/// A vote.
pub type Vote = openraft::alias::VoteOf<TypeConfig>;

/// One replicated request. `id` names it across members and restarts:
/// every copy of the request in the log (a forward retried after a
/// leader change) carries the same id, and the apply step takes effect
/// for the first copy only (`sessions`). Waiters on the proposing member
/// are keyed by it too.
///
/// Encoding (postcard, see [`COMMAND_FORMAT`]): a format byte, then the
/// fields. Logs written before the ids existed hold `{ id u64, op, caller
/// }`, whose first byte is that of an odd varint (those ids were always
/// odd), so it is odd; the format byte is even. Such entries still read:
/// they get a [`RequestId::LEGACY`]-style id (member and incarnation 0,
/// `seq` = the old id) that the exactly-once table passes through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The request's id.
    pub id: RequestId,
    /// The lowest sequence number its origin process still waits for:
    /// copies of its requests below it are stale (see `sessions`).
    pub floor: u64,
    /// What to apply.
    pub op: Op,
    /// Who asked: the apply step checks its permissions (etcd's request
    /// header user and auth revision).
    pub caller: Caller,
}

/// The byte a [`Command`]'s encoding starts with (even, see there).
pub const COMMAND_FORMAT: u8 = 2;

impl Serialize for Command {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(5)?;
        t.serialize_element(&COMMAND_FORMAT)?;
        t.serialize_element(&self.id)?;
        t.serialize_element(&self.floor)?;
        t.serialize_element(&self.op)?;
        t.serialize_element(&self.caller)?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Command;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a raft command")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Command, A::Error> {
                let first: u8 = a
                    .next_element()?
                    .ok_or_else(|| serde::de::Error::custom("empty command"))?;
                command_after(first, &mut a)
            }
        }
        // postcard does not encode a tuple's length; at most 10 varint
        // bytes + op + caller are read.
        d.deserialize_tuple(12, V)
    }
}

/// The rest of a [`Command`] whose first byte was `first`: the current
/// format's fields, or the previous format's (see [`Command`]).
fn command_after<'de, A: serde::de::SeqAccess<'de>>(
    first: u8,
    a: &mut A,
) -> Result<Command, A::Error> {
    use serde::de::Error;
    let missing = || A::Error::custom("truncated command");
    if first == COMMAND_FORMAT {
        return Ok(Command {
            id: a.next_element()?.ok_or_else(missing)?,
            floor: a.next_element()?.ok_or_else(missing)?,
            op: a.next_element()?.ok_or_else(missing)?,
            caller: a.next_element()?.ok_or_else(missing)?,
        });
    }
    if first.is_multiple_of(2) {
        return Err(A::Error::custom(format!(
            "command format {first} (this version reads {COMMAND_FORMAT})"
        )));
    }
    // The previous format: `id` as a postcard varint (7 bits a byte, low
    // first, high bit = more), `op`, `caller`.
    let (mut id, mut b, mut shift) = (0u64, first, 0u32);
    loop {
        if shift > 63 {
            return Err(A::Error::custom("command id varint too long"));
        }
        id |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        b = a.next_element()?.ok_or_else(missing)?;
    }
    Ok(Command {
        id: RequestId {
            member: 0,
            incarnation: 0,
            seq: id,
        },
        floor: 0,
        op: a.next_element()?.ok_or_else(missing)?,
        caller: a.next_element()?.ok_or_else(missing)?,
    })
}

/// A [`Command`] encoded once, where its client's request arrived: the
/// size check reads its length, a batch copies its bytes, a forward sends
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The request's id.
    pub id: RequestId,
    /// The command's postcard encoding.
    pub bytes: Bytes,
    /// The command itself, when this member has it decoded (it built
    /// it, or it is the leader and decoded a forward to check it): the
    /// leader applies it without decoding `bytes` again.
    pub local: Option<Arc<Command>>,
}

impl Command {
    /// This command's encoding.
    pub fn encode(&self) -> std::io::Result<Encoded> {
        Ok(Encoded {
            id: self.id,
            bytes: self.to_bytes()?,
            local: None,
        })
    }

    /// This command's encoding, keeping the command (see
    /// [`Encoded::local`]).
    pub fn into_encoded(self) -> std::io::Result<Encoded> {
        Ok(Encoded {
            id: self.id,
            bytes: self.to_bytes()?,
            local: Some(Arc::new(self)),
        })
    }

    /// The postcard encoding, into a buffer sized up front (growing it
    /// while encoding a value was a copy and a realloc per doubling).
    fn to_bytes(&self) -> std::io::Result<Bytes> {
        let buf = Vec::with_capacity(self.op.size_hint() + 64);
        postcard::to_io(self, buf)
            .map(Bytes::from)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

/// The byte a [`Proposal`] starts with inside a log entry. Even and not
/// [`COMMAND_FORMAT`]: entries written when every entry held one command
/// (format 2, or the odd first byte of the format before it) still read,
/// as a proposal of that one command.
pub const PROPOSAL_FORMAT: u8 = 4;

/// A leader's own commands of a [`Proposal`], until applied.
type LocalCommands = Mutex<Option<Vec<Arc<Command>>>>;

/// One raft entry's client requests, a batch of [`Command`]s applied in
/// order, each with its own revision and outcome, as if proposed alone.
///
/// Held as bytes: postcard's `Vec<Command>` (a varint count, then each
/// command's encoding), built by concatenating commands that were
/// encoded where they arrived ([`Encoded`]); the log store, the WAL and
/// AppendEntries carry these bytes (a clone shares them), and each member
/// decodes them once, when it applies the entry.
#[derive(Clone)]
pub struct Proposal {
    bytes: Bytes,
    /// The commands as the proposing leader built them, when it built
    /// them all: its apply takes them instead of decoding `bytes` (never
    /// serialized; an entry that came from the log or a peer has none).
    /// Taken once, so they are freed when applied, not when the log
    /// cache lets the entry go.
    local: Option<Arc<LocalCommands>>,
    /// The proposer's hint that this entry is a single voter's lone
    /// write, which the log store may sync on the raft thread
    /// ([`Proposal::sync_here`]; never serialized).
    sync_here: bool,
}

impl PartialEq for Proposal {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for Proposal {}

impl Proposal {
    /// A batch of `cmds`, in order.
    pub fn of(cmds: &[Encoded]) -> Proposal {
        let len: usize = cmds.iter().map(|c| c.bytes.len()).sum();
        let mut b = Vec::with_capacity(len + 10);
        let mut n = cmds.len() as u64;
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                b.push(byte);
                break;
            }
            b.push(byte | 0x80);
        }
        for c in cmds {
            b.extend_from_slice(&c.bytes);
        }
        let local: Option<Vec<Arc<Command>>> = cmds.iter().map(|c| c.local.clone()).collect();
        Proposal {
            bytes: b.into(),
            local: local.map(|l| Arc::new(Mutex::new(Some(l)))),
            sync_here: false,
        }
    }

    /// Mark this entry as a batch of the only voter: no follower whose
    /// AppendEntries (sent after the append) a sync on the raft thread
    /// would hold up. The log store then writes and syncs it there when
    /// the WAL thread is idle, saving the two hand-offs to and from that
    /// thread (30–45 µs of a single client's latency and ~35 µs of CPU
    /// per put on this repo's VM; with one batch in flight, 10–25 % of
    /// the CPU per request and more throughput at every load measured,
    /// docs/BENCHMARKS.md issue #19).
    pub fn sync_here(mut self, yes: bool) -> Proposal {
        self.sync_here = yes;
        self
    }

    /// Whether [`Proposal::sync_here`] marked it.
    pub fn wants_sync_here(&self) -> bool {
        self.sync_here
    }

    /// The commands the proposing leader built (see [`Proposal`]), once;
    /// `None` on every other member, for a batch with a forwarded
    /// command, and after the first call.
    pub fn take_local(&self) -> Option<Vec<Arc<Command>>> {
        self.local.as_ref()?.lock().expect("proposal lock").take()
    }

    /// A batch of one command.
    pub fn single(cmd: &Command) -> std::io::Result<Proposal> {
        Ok(Proposal::of(&[cmd.encode()?]))
    }

    /// The commands, in order.
    pub fn commands(&self) -> std::io::Result<Vec<Command>> {
        decode(&self.bytes)
    }

    /// Bytes of the encoded batch.
    pub fn encoded_len(&self) -> usize {
        self.bytes.len()
    }
}

impl fmt::Debug for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Proposal({} bytes)", self.bytes.len())
    }
}

impl fmt::Display for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl Serialize for Proposal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        struct Blob<'a>(&'a [u8]);
        impl Serialize for Blob<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&PROPOSAL_FORMAT)?;
        t.serialize_element(&Blob(&self.bytes))?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for Proposal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Blob(Vec<u8>);
        impl<'de> Deserialize<'de> for Blob {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct B;
                impl serde::de::Visitor<'_> for B {
                    type Value = Blob;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("bytes")
                    }
                    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                        Ok(Blob(v.to_vec()))
                    }
                    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
                        Ok(Blob(v))
                    }
                }
                d.deserialize_byte_buf(B)
            }
        }
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Proposal;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a raft proposal")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Proposal, A::Error> {
                use serde::de::Error;
                let first: u8 = a
                    .next_element()?
                    .ok_or_else(|| A::Error::custom("empty proposal"))?;
                if first == PROPOSAL_FORMAT {
                    let Blob(b) = a
                        .next_element()?
                        .ok_or_else(|| A::Error::custom("truncated proposal"))?;
                    return Ok(Proposal {
                        bytes: b.into(),
                        local: None,
                        sync_here: false,
                    });
                }
                // An entry of one command (logs written before batches).
                let cmd = command_after(first, &mut a)?;
                Proposal::single(&cmd).map_err(A::Error::custom)
            }
        }
        d.deserialize_tuple(12, V)
    }
}

/// What applying a [`Proposal`] answered, one outcome per command in its
/// order: openraft hands it to whoever proposed the entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcomes(pub Vec<Result<Applied, ApplyError>>);

/// What a [`Command`] does to the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// etcd Put.
    Put(mvcc::PutRequest),
    /// etcd DeleteRange.
    DeleteRange(mvcc::DeleteRangeRequest),
    /// etcd Txn.
    Txn(mvcc::TxnRequest),
    /// etcd Compact.
    Compact {
        /// Compact below this revision.
        revision: i64,
    },
    /// etcd LeaseGrant, with the id already chosen by the proposer.
    LeaseGrant {
        /// Lease id (> 0).
        id: i64,
        /// TTL in seconds (after the minimum-TTL rule).
        ttl: i64,
    },
    /// etcd LeaseRevoke (also how the leader expires a lease).
    LeaseRevoke {
        /// Lease id.
        id: i64,
    },
    /// An Auth service request (users, roles, enable/disable,
    /// authenticate).
    Auth(AuthOp),
    /// etcd Alarm ACTIVATE / DEACTIVATE: the alarm list is replicated
    /// state (etcd keeps it in its backend's `alarm` bucket), so every
    /// member applies it and a restart keeps it.
    Alarm {
        /// Raise (true) or clear (false).
        activate: bool,
        /// The member the alarm is about.
        member_id: u64,
        /// etcd's `AlarmType` number (NOSPACE 1, CORRUPT 2).
        alarm: i32,
    },
}

impl Op {
    /// The `op` label of `etcd_server_apply_duration_seconds`: etcd 3.5's
    /// name of this request in its applier.
    pub(crate) fn apply_label(&self) -> &'static str {
        match self {
            Op::Put(_) => "Put",
            Op::DeleteRange(_) => "DeleteRange",
            Op::Txn(_) => "Txn",
            Op::Compact { .. } => "Compaction",
            Op::LeaseGrant { .. } => "LeaseGrant",
            Op::LeaseRevoke { .. } => "LeaseRevoke",
            Op::Alarm { .. } => "Alarm",
            Op::Auth(a) => match a {
                AuthOp::Enable => "AuthEnable",
                AuthOp::Disable => "AuthDisable",
                AuthOp::Status => "AuthStatus",
                AuthOp::Authenticate { .. } => "Authenticate",
                AuthOp::UserAdd { .. } => "AuthUserAdd",
                AuthOp::UserGet { .. } => "AuthUserGet",
                AuthOp::UserList => "AuthUserList",
                AuthOp::UserDelete { .. } => "AuthUserDelete",
                AuthOp::UserChangePassword { .. } => "AuthUserChangePassword",
                AuthOp::UserGrantRole { .. } => "AuthUserGrantRole",
                AuthOp::UserRevokeRole { .. } => "AuthUserRevokeRole",
                AuthOp::RoleAdd { .. } => "AuthRoleAdd",
                AuthOp::RoleGet { .. } => "AuthRoleGet",
                AuthOp::RoleList => "AuthRoleList",
                AuthOp::RoleDelete { .. } => "AuthRoleDelete",
                AuthOp::RoleGrantPermission { .. } => "AuthRoleGrantPermission",
                AuthOp::RoleRevokePermission { .. } => "AuthRoleRevokePermission",
            },
        }
    }

    /// About the bytes of this op's encoding (the key and value bytes it
    /// carries, plus a little for the rest): a buffer's first capacity.
    fn size_hint(&self) -> usize {
        fn txn(t: &mvcc::TxnRequest) -> usize {
            let compares: usize = t
                .compare
                .iter()
                .map(|c| {
                    let value = match &c.target {
                        mvcc::CompareTarget::Value(v) => v.len(),
                        _ => 0,
                    };
                    c.key.len() + c.range_end.len() + value + 16
                })
                .sum();
            compares + t.success.iter().chain(&t.failure).map(op).sum::<usize>() + 8
        }
        fn op(o: &mvcc::RequestOp) -> usize {
            match o {
                mvcc::RequestOp::Range(r) => r.key.len() + r.range_end.len() + 48,
                mvcc::RequestOp::Put(p) => p.key.len() + p.value.len() + 16,
                mvcc::RequestOp::DeleteRange(d) => d.key.len() + d.range_end.len() + 8,
                mvcc::RequestOp::Txn(t) => txn(t),
            }
        }
        match self {
            Op::Put(p) => p.key.len() + p.value.len() + 16,
            Op::DeleteRange(d) => d.key.len() + d.range_end.len() + 8,
            Op::Txn(t) => txn(t),
            _ => 0,
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.op {
            Op::Put(_) => "put",
            Op::DeleteRange(_) => "delete_range",
            Op::Txn(_) => "txn",
            Op::Compact { .. } => "compact",
            Op::LeaseGrant { .. } => "lease_grant",
            Op::LeaseRevoke { .. } => "lease_revoke",
            Op::Auth(a) => a.name(),
            Op::Alarm { .. } => "alarm",
        };
        write!(f, "{what}#{}", self.id)
    }
}

/// Encode a serde value for the WAL.
pub(crate) fn encode<T: Serialize>(v: &T) -> std::io::Result<Vec<u8>> {
    postcard::to_stdvec(v).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Decode a serde value from the WAL; a bad payload is `InvalidData`
/// (the WAL's CRC passed, so this is a bug or a format mismatch).
pub(crate) fn decode<T: for<'a> Deserialize<'a>>(b: &[u8]) -> std::io::Result<T> {
    postcard::from_bytes(b).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip() {
        let mut txn = mvcc::TxnRequest::default();
        txn.success
            .push(mvcc::RequestOp::Put(mvcc::PutRequest::new("a", "b")));
        for op in [
            Op::Put(mvcc::PutRequest::new("k", "v")),
            Op::DeleteRange(mvcc::DeleteRangeRequest::new("a", "z")),
            Op::Txn(txn),
            Op::Compact { revision: 7 },
            Op::LeaseGrant { id: 9, ttl: 60 },
            Op::LeaseRevoke { id: 9 },
            Op::Auth(AuthOp::UserGrantRole {
                user: "u".into(),
                role: "r".into(),
            }),
            Op::Alarm {
                activate: true,
                member_id: 3,
                alarm: 1,
            },
        ] {
            let c = Command {
                id: RequestId {
                    member: 1,
                    incarnation: 2,
                    seq: 42,
                },
                floor: 40,
                op,
                caller: Caller::User {
                    name: "u".into(),
                    revision: 3,
                },
            };
            let back: Command = decode(&encode(&c).unwrap()).unwrap();
            assert_eq!(back, c);
            // The proposer's encoding (a buffer sized from the op) is the
            // same bytes.
            assert_eq!(c.clone().into_encoded().unwrap().bytes, encode(&c).unwrap());
        }
        assert!(decode::<Command>(&[0xff, 0xff, 0xff]).is_err());
        assert!(decode::<Command>(&[4, 1, 1, 1, 1]).is_err());
    }

    fn cmd(seq: u64, key: &str, value: Vec<u8>) -> Command {
        Command {
            id: RequestId {
                member: 7,
                incarnation: 9,
                seq,
            },
            floor: seq.saturating_sub(3),
            op: Op::Put(mvcc::PutRequest::new(key, value)),
            caller: Caller::Anonymous,
        }
    }

    /// A batch is its commands, in order, whatever they hold; inside an
    /// entry it survives the log's encoding.
    #[test]
    fn proposals_carry_their_commands() {
        let cmds: Vec<Command> = (0..300)
            .map(|i| cmd(i, &format!("k{i}"), vec![i as u8; (i as usize * 7) % 900]))
            .collect();
        for n in [0usize, 1, 2, 127, 128, 300] {
            let enc: Vec<Encoded> = cmds[..n].iter().map(|c| c.encode().unwrap()).collect();
            let p = Proposal::of(&enc);
            assert_eq!(p.commands().unwrap(), cmds[..n]);
            let e = Entry {
                log_id: openraft::testing::log_id::<TypeConfig>(2, 1, 5),
                payload: openraft::EntryPayload::Normal(p.clone()),
            };
            let back: Entry = decode(&encode(&e).unwrap()).unwrap();
            match back.payload {
                openraft::EntryPayload::Normal(q) => {
                    assert_eq!(q, p);
                    assert!(q.take_local().is_none(), "decoded: nothing local");
                }
                other => panic!("decoded {other:?}"),
            }
        }
    }

    /// The commands a leader built travel beside the bytes, equal to
    /// what the bytes decode to, taken once; a batch with a forwarded
    /// command (no local copy) decodes.
    #[test]
    fn a_leader_applies_the_commands_it_built() {
        let cmds: Vec<Command> = (0..5).map(|i| cmd(i, "k", vec![i as u8; 10])).collect();
        let local: Vec<Encoded> = cmds
            .iter()
            .map(|c| c.clone().into_encoded().unwrap())
            .collect();
        let p = Proposal::of(&local);
        assert_eq!(
            p,
            Proposal::of(&cmds.iter().map(|c| c.encode().unwrap()).collect::<Vec<_>>())
        );
        let clone = p.clone();
        let taken: Vec<Command> = p
            .take_local()
            .unwrap()
            .iter()
            .map(|c| (**c).clone())
            .collect();
        assert_eq!(taken, p.commands().unwrap());
        assert!(clone.take_local().is_none(), "taken once, for every clone");
        let mut mixed = local.clone();
        mixed[2] = cmds[2].encode().unwrap();
        assert!(Proposal::of(&mixed).take_local().is_none());
    }

    proptest::proptest! {
        /// The entry and command decoders (the WAL's payloads, a forwarded
        /// request) on arbitrary bytes: an error, never a panic; what
        /// decodes re-encodes to something that decodes the same.
        #[test]
        fn decoders_take_any_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            if let Ok(e) = decode::<Entry>(&bytes)
                && let Ok(again) = encode(&e)
            {
                let back: Entry = decode(&again).unwrap();
                proptest::prop_assert_eq!(back.log_id, e.log_id);
                if let openraft::EntryPayload::Normal(p) = &e.payload {
                    let _ = p.commands();
                }
            }
            if let Ok(c) = decode::<Command>(&bytes) {
                let back: Command = decode(&encode(&c).unwrap()).unwrap();
                proptest::prop_assert_eq!(back, c);
            }
            let mut tagged = vec![PROPOSAL_FORMAT];
            tagged.extend_from_slice(&bytes);
            if let Ok(p) = decode::<Proposal>(&tagged) {
                let _ = p.commands();
            }
        }
    }

    /// A log written before exactly-once ids still reads: its commands
    /// (`{ id u64, op, caller }`, odd ids) decode with a legacy id that
    /// the exactly-once table passes through.
    #[test]
    fn commands_of_the_previous_format_read() {
        #[derive(Serialize)]
        struct Previous {
            id: u64,
            op: Op,
            caller: Caller,
        }
        for old_id in [1u64, 127, 129, 0x8000_0000_0000_0001, u64::MAX] {
            let prev = Previous {
                id: old_id,
                op: Op::Put(mvcc::PutRequest::new("k", "v")),
                caller: Caller::Anonymous,
            };
            let bytes = encode(&prev).unwrap();
            assert!(!bytes[0].is_multiple_of(2), "an odd id's first byte is odd");
            let c: Command = decode(&bytes).unwrap();
            assert_eq!(c.id.seq, old_id);
            assert_eq!((c.id.member, c.id.incarnation, c.floor), (0, 0, 0));
            assert_eq!(c.op, prev.op);
            assert_eq!(c.caller, prev.caller);
            assert!(c.id.is_legacy());
            // Inside a whole entry, as the WAL holds it (openraft's
            // `Entry { log_id, payload: Blank | Normal(D) | Membership }`).
            #[derive(Serialize)]
            enum PrevPayload {
                _Blank,
                Normal(Previous),
            }
            #[derive(Serialize)]
            struct PrevEntry {
                log_id: LogId,
                payload: PrevPayload,
            }
            let log_id: LogId = openraft::testing::log_id::<TypeConfig>(3, 1, 9);
            let e: Entry = decode(
                &encode(&PrevEntry {
                    log_id,
                    payload: PrevPayload::Normal(prev),
                })
                .unwrap(),
            )
            .unwrap();
            assert_eq!(e.log_id, log_id);
            match e.payload {
                openraft::EntryPayload::Normal(p) => {
                    assert_eq!(p.commands().unwrap()[0].id.seq, old_id)
                }
                other => panic!("decoded {other:?}"),
            }
        }
    }
    /// The store's byte fields are written as postcard bytes
    /// (`serde_bytes`: one copy, not a byte at a time), which is the
    /// layout a `Vec<u8>` sequence always had (varint length, then the
    /// bytes): logs written before read unchanged, and followers of either
    /// build decode each other's entries.
    #[test]
    fn byte_fields_keep_the_sequence_layout() {
        #[derive(Serialize)]
        struct PlainPut {
            key: Vec<u8>,
            value: Vec<u8>,
            lease: i64,
            prev_kv: bool,
            ignore_value: bool,
            ignore_lease: bool,
        }
        #[derive(Serialize)]
        enum PlainTarget {
            _Version(i64),
            _Create(i64),
            _Mod(i64),
            Value(Vec<u8>),
        }
        #[derive(Serialize)]
        struct PlainCompare {
            result: mvcc::CompareResult,
            target: PlainTarget,
            key: Vec<u8>,
            range_end: Vec<u8>,
        }
        #[derive(Serialize)]
        struct PlainKv {
            key: Vec<u8>,
            create_revision: i64,
            mod_revision: i64,
            version: i64,
            value: Vec<u8>,
            lease: i64,
        }
        let value: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        let put = mvcc::PutRequest {
            lease: 5,
            prev_kv: true,
            ..mvcc::PutRequest::new("k", value.clone())
        };
        let plain = PlainPut {
            key: b"k".to_vec(),
            value: value.clone(),
            lease: 5,
            prev_kv: true,
            ignore_value: false,
            ignore_lease: false,
        };
        assert_eq!(encode(&put).unwrap(), encode(&plain).unwrap());
        assert_eq!(
            decode::<mvcc::PutRequest>(&encode(&plain).unwrap()).unwrap(),
            put
        );
        let cmp = mvcc::Compare {
            result: mvcc::CompareResult::NotEqual,
            target: mvcc::CompareTarget::Value(value.clone()),
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
        };
        let plain = PlainCompare {
            result: mvcc::CompareResult::NotEqual,
            target: PlainTarget::Value(value.clone()),
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
        };
        assert_eq!(encode(&cmp).unwrap(), encode(&plain).unwrap());
        let kv = mvcc::KeyValue {
            key: b"k".to_vec(),
            create_revision: 2,
            mod_revision: 3,
            version: 2,
            value: value.clone(),
            lease: 0,
        };
        let plain = PlainKv {
            key: b"k".to_vec(),
            create_revision: 2,
            mod_revision: 3,
            version: 2,
            value,
            lease: 0,
        };
        assert_eq!(encode(&kv).unwrap(), encode(&plain).unwrap());
    }
}
