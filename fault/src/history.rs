//! The recorded history of a harness run.
//!
//! A run writes one [`Record`] per line (JSON). Times are nanoseconds on
//! the harness's monotonic clock since the run started; they order
//! operations in real time (an operation that completed before another was
//! invoked must appear before it in any linearization).
//!
//! Values written by the harness are unique across a run (the writing
//! client's id and a counter), so a value names the one write that put it:
//! the checker finds every write's effect in the final event log by value.
//!
//! Outcomes:
//! - [`Outcome::Ok`]: the server answered; the operation took effect
//!   exactly once (writes) or observed what it returns (reads).
//! - [`Outcome::Fail`]: the server answered with an error that means the
//!   operation did not take effect (e.g. a compare failed before apply is
//!   not this: that is `Ok` with `succeeded = false`). Only errors that
//!   etcd documents as "not applied" belong here; anything else is
//!   `Unknown`.
//! - [`Outcome::Unknown`]: timeout, broken connection, leader change:
//!   the operation may or may not have taken effect (at most once), at any
//!   time after its invocation.

use serde::{Deserialize, Serialize};

/// A client operation as the harness invoked it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Call {
    /// `Put(key, value)`, optionally with a lease.
    Put {
        key: String,
        value: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lease: Option<i64>,
    },
    /// `DeleteRange(key)` of one key.
    Delete { key: String },
    /// `Txn(if mod_revision(key) == expect then put(key, value) else range(key))`.
    /// `expect == 0` means "the key does not exist".
    Cas {
        key: String,
        expect: i64,
        value: String,
    },
    /// `Range(key)`; `serializable` reads may be stale.
    Get { key: String, serializable: bool },
    /// `LeaseGrant(ttl)`; the id is chosen by the server.
    LeaseGrant { ttl: i64 },
    /// `LeaseRevoke(id)`.
    LeaseRevoke { id: i64 },
}

/// A key-value as a read returned it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kv {
    pub key: String,
    pub value: String,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    #[serde(default)]
    pub lease: i64,
}

/// What the server answered to a [`Call`] that succeeded.
///
/// Tagged `response`, not `type`: it is serialized inside
/// `Outcome::Ok`, whose own tag is `type`, and two `type` keys in one
/// object do not parse back (serde_json: "duplicate field `type`").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    /// Put: the header's revision (the put's own mod_revision).
    Put { revision: i64 },
    /// Delete: the header's revision and how many keys went.
    Delete { revision: i64, deleted: i64 },
    /// Cas: the header's revision, whether the compare held, and on failure
    /// the key as the else-branch read it (`None`: absent).
    Cas {
        revision: i64,
        succeeded: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        current: Option<Kv>,
    },
    /// Get: the header's revision and the key (`None`: absent).
    Get { revision: i64, kv: Option<Kv> },
    /// LeaseGrant: the lease id and the granted TTL.
    LeaseGrant { revision: i64, id: i64, ttl: i64 },
    /// LeaseRevoke: the header's revision.
    LeaseRevoke { revision: i64 },
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outcome {
    Ok(Response),
    /// Definitely not applied (the error text).
    Fail {
        error: String,
    },
    /// May or may not have been applied (the error text).
    Unknown {
        error: String,
    },
}

/// One client operation, invocation to completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// The client (one logical thread; its operations never overlap).
    pub client: u32,
    /// The member the client sent it to (0-based index in the cluster).
    pub member: usize,
    /// Invocation time (ns since run start).
    pub start: u64,
    /// Completion time (ns since run start). For `Unknown` outcomes this is
    /// when the client gave up; the operation may take effect later.
    pub end: u64,
    pub call: Call,
    pub outcome: Outcome,
}

/// A watch event as a watcher received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `put` or `delete`.
    pub kind: EventKind,
    /// For a put: the new key-value. For a delete: key, the delete's
    /// revision as `mod_revision`, empty value, zero versions.
    pub kv: Kv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Put,
    Delete,
}

/// One event as a watch stream delivered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// The header revision of the response that carried it.
    pub header: i64,
    /// When the response arrived (ns since run start).
    pub time: u64,
    pub event: Event,
}

/// What one watch stream delivered, in order of arrival.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchRecord {
    /// The watcher (its own numbering).
    pub watcher: u32,
    /// The member it was connected to for this stream.
    pub member: usize,
    /// The key prefix watched.
    pub prefix: String,
    /// The revision the stream was created at (`start_revision`).
    pub start_revision: i64,
    /// Time the stream was opened and closed (ns since run start).
    pub start: u64,
    pub end: u64,
    /// Events received, in order of arrival.
    pub events: Vec<WatchEvent>,
    /// Why the stream ended (e.g. `cancelled by harness`, an error).
    pub closed: String,
}

/// The final state, read after the faults healed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Final {
    /// When the final read was made (ns since run start); every fault had
    /// healed before it.
    pub time: u64,
    /// Every event from revision 1 to `revision`, read with a watch on the
    /// whole key space (no compaction happens in a run).
    pub events: Vec<Event>,
    /// The revision the events run up to.
    pub revision: i64,
    /// `HashKV(revision)` answered by each member: (member index, hash,
    /// compact_revision), or the error text.
    pub hashes: Vec<(usize, HashKv)>,
    /// Leases still alive at the end (ids), read from one member.
    pub leases: Vec<i64>,
}

/// One member's `HashKV` answer: (hash, compact_revision), or the error
/// text. (An alias so `Final::hashes` stays readable to clippy.)
pub type HashKv = Result<(u32, i64), String>;

/// A fault the nemesis injected, for the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    pub start: u64,
    pub end: u64,
    /// e.g. `kill 2`, `pause 0`, `partition {0} | {1,2}`, `lose-unsynced 1`.
    pub what: String,
}

/// One line of `history.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    /// First line: how the run was made.
    Meta {
        seed: u64,
        members: usize,
        /// The binary under test (path or version string).
        server: String,
    },
    Op(Operation),
    Watch(WatchRecord),
    Fault(Fault),
    Final(Final),
}

/// A whole history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub seed: u64,
    pub members: usize,
    pub ops: Vec<Operation>,
    pub watches: Vec<WatchRecord>,
    pub faults: Vec<Fault>,
    pub final_state: Option<Final>,
}

impl History {
    /// Read `history.jsonl` text.
    pub fn parse(text: &str) -> anyhow::Result<History> {
        let mut h = History::default();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let line = upgrade_ok_tag(line);
            let r: Record =
                serde_json::from_str(&line).map_err(|e| anyhow::anyhow!("line {}: {e}", i + 1))?;
            match r {
                Record::Meta { seed, members, .. } => {
                    h.seed = seed;
                    h.members = members;
                }
                Record::Op(o) => h.ops.push(o),
                Record::Watch(w) => h.watches.push(w),
                Record::Fault(f) => h.faults.push(f),
                Record::Final(f) => h.final_state = Some(f),
            }
        }
        Ok(h)
    }
}

/// Histories recorded before [`Response`] was tagged `response` wrote an
/// `Ok` outcome as `"outcome":{"type":"ok","type":"put",...}`, which does
/// not parse (a duplicate key); rename the second tag. The pattern cannot
/// occur inside a string value: serde_json escapes every quote there.
fn upgrade_ok_tag(line: &str) -> std::borrow::Cow<'_, str> {
    const OLD: &str = r#""outcome":{"type":"ok","type":""#;
    const NEW: &str = r#""outcome":{"type":"ok","response":""#;
    if line.contains(OLD) {
        line.replace(OLD, NEW).into()
    } else {
        line.into()
    }
}
