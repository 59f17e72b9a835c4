//! openraft's network over the peer transport (`ferrocd_net::peer`): one
//! pipelined connection per peer, raft messages as postcard payloads.
//!
//! Request kinds (the numbers are the wire's; see docs/FORMAT.md):
//! raft's own ([`KIND_APPEND`], [`KIND_VOTE`], [`KIND_SNAPSHOT`] chunks,
//! [`KIND_TRANSFER`]) and the node's ([`KIND_FORWARD`] a client write to
//! the leader, [`KIND_READ_INDEX`], [`KIND_LEASE_RENEW`],
//! [`KIND_LEASE_TTL`], [`KIND_PUBLISH`] a member's client URLs).
//!
//! A snapshot travels as the leader's whole snapshot file in chunks of
//! [`CHUNK`] bytes, in order on the connection; the follower writes them
//! to a temp file in its snap directory, verifies the result (header and
//! payload CRCs) and installs it.

use std::collections::HashMap;
use std::future::Future;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrocd_net::peer::{Hello, PeerClient, PeerError, RemovedHook};
use openraft::AnyError;
use openraft::errors::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use super::{Member, SnapshotData, TypeConfig, Vote, decode, encode};

/// raft AppendEntries (ordered). 20 since an entry carries a batch of
/// commands (`Proposal`, format 4) and node requests answer typed errors;
/// it was 18 (one format-2 command an entry) and 2 before request ids. A
/// member refuses the old kinds as unknown, so a member of an earlier
/// version (that would misread the new entries) never replicates with
/// this one.
pub const KIND_APPEND: u8 = 20;
/// raft Vote.
pub const KIND_VOTE: u8 = 3;
/// raft snapshot chunk (ordered).
pub const KIND_SNAPSHOT: u8 = 4;
/// raft leadership transfer.
pub const KIND_TRANSFER: u8 = 5;
/// raft PreVote.
pub const KIND_PRE_VOTE: u8 = 6;
/// A client write forwarded to the leader: the whole [`super::Command`],
/// request id included, answered `Result<(Applied, index), EtcdError>`.
/// 21 since that answer is typed (it was 19 with a text error, and 10
/// before request ids; both refused now as unknown kinds).
pub const KIND_FORWARD: u8 = 21;
/// A follower asks the leader for a read index.
pub const KIND_READ_INDEX: u8 = 11;
/// A lease keep-alive forwarded to the leader.
pub const KIND_LEASE_RENEW: u8 = 12;
/// A lease time-to-live asked of the leader.
pub const KIND_LEASE_TTL: u8 = 13;
/// A member publishes its attributes (client URLs) through the leader.
pub const KIND_PUBLISH: u8 = 14;

/// A membership change (MemberAdd/Remove/Update/Promote) for the leader.
pub const KIND_MEMBER_CHANGE: u8 = 15;

/// Discovery: the cluster id and members (a joining member asks).
pub const KIND_MEMBERS: u8 = 16;

/// A member's own status (the console's cluster view asks every member).
pub const KIND_STATUS: u8 = 17;

/// Snapshot bytes per chunk.
pub const CHUNK: usize = 1 << 20;

/// One piece of a snapshot file on its way to a follower.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotChunk {
    /// The leader's vote.
    pub vote: Vote,
    /// The snapshot's meta.
    pub meta: openraft::alias::SnapshotMetaOf<TypeConfig>,
    /// Term and index in the file name.
    pub term: u64,
    /// Index in the file name.
    pub index: u64,
    /// Offset of `data` in the file.
    pub offset: u64,
    /// The file's length.
    pub total: u64,
    /// Bytes.
    pub data: Vec<u8>,
}

/// The network factory: peer clients by member id, shared by all of
/// openraft's replication streams to that member.
#[derive(Clone)]
pub struct PeerNetwork {
    cluster_id: u64,
    me: u64,
    /// The dialer's TLS for members with `https://` peer URLs.
    tls: Option<Arc<ferrocd_net::tls::ClientConfig>>,
    clients: Arc<Mutex<HashMap<u64, PeerClient>>>,
    /// Run when a peer answers that this member was removed.
    on_removed: RemovedHook,
    /// Each peer client's series (`etcd_network_peer_*`).
    metrics: ferrocd_net::Metrics,
}

impl std::fmt::Debug for PeerNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerNetwork")
            .field("cluster_id", &self.cluster_id)
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

impl PeerNetwork {
    /// The network of member `me` in cluster `cluster_id`; members whose
    /// peer URL is `https://` are dialed with `tls`; `on_removed` runs
    /// when a peer answers that this member has been removed.
    pub fn new(
        cluster_id: u64,
        me: u64,
        tls: Option<Arc<ferrocd_net::tls::ClientConfig>>,
        on_removed: RemovedHook,
        metrics: ferrocd_net::Metrics,
    ) -> Self {
        Self {
            cluster_id,
            me,
            tls,
            clients: Arc::new(Mutex::new(HashMap::new())),
            on_removed,
            metrics,
        }
    }

    /// The (shared) client for member `target` at `member`'s peer URL.
    pub fn client(&self, target: u64, member: &Member) -> PeerClient {
        let addr = member.peer_addr().unwrap_or_default();
        let mut map = self.clients.lock().expect("clients lock");
        match map.get(&target) {
            Some(c) if c.addr() == addr => c.clone(),
            _ => {
                let c = PeerClient::new(
                    addr,
                    Hello {
                        cluster_id: self.cluster_id,
                        from: self.me,
                        to: target,
                    },
                )
                .with_tls(member.peer_tls().then(|| self.tls.clone()).flatten())
                .on_removed(self.on_removed.clone())
                .with_metrics(self.metrics.peer(self.me, target));
                map.insert(target, c.clone());
                c
            }
        }
    }
}

/// A peer as openraft sees it.
#[derive(Debug)]
pub struct NetPeer {
    target: u64,
    client: PeerClient,
    /// `etcd_server_heartbeat_send_failures_total`.
    metrics: ferrocd_net::Metrics,
}

fn unreachable(e: impl std::fmt::Display) -> Unreachable<TypeConfig> {
    Unreachable::new(&AnyError::error(e.to_string()))
}

fn rpc_err(e: PeerError) -> RPCError<TypeConfig> {
    RPCError::Unreachable(unreachable(e))
}

impl NetPeer {
    async fn call<Req: Serialize, Resp: for<'a> Deserialize<'a>>(
        &self,
        kind: u8,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError> {
        let payload = encode(req).map_err(|e| PeerError::Remote(e.to_string()))?;
        let bytes = self.client.call(kind, payload, timeout).await?;
        let r: Result<Resp, String> =
            decode(&bytes).map_err(|e| PeerError::Remote(e.to_string()))?;
        r.map_err(PeerError::Remote)
    }
}

/// The most entry bytes one AppendEntries carries (half a peer frame:
/// room for the encoding's overhead).
pub const APPEND_BYTES: usize = ferrocd_net::peer::MAX_FRAME / 2;

/// How many of `entries`, from the first, fit in `limit` bytes (at least
/// one). An entry's size is its payload's plus a little for the log id.
fn entries_within(entries: &[super::Entry], limit: usize) -> usize {
    let mut total = 0usize;
    for (i, e) in entries.iter().enumerate() {
        total += 64
            + match &e.payload {
                openraft::EntryPayload::Normal(p) => p.encoded_len(),
                openraft::EntryPayload::Membership(_) => 4096,
                openraft::EntryPayload::Blank => 0,
            };
        if total > limit {
            return i.max(1);
        }
    }
    entries.len()
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = NetPeer;

    async fn new_client(&mut self, target: u64, node: &Member) -> Self::Network {
        NetPeer {
            target,
            client: self.client(target, node),
            metrics: self.metrics.clone(),
        }
    }
}

impl RaftNetworkV2<TypeConfig> for NetPeer {
    type SnapshotData = SnapshotData;

    /// Sends at most [`APPEND_BYTES`] of entries (always at least one):
    /// openraft asks for up to `max_payload_entries` entries at once, and
    /// an entry is a batch of requests of up to `proposer::BATCH_BYTES`
    /// (or one larger request), so a follower catching up could be sent
    /// more than a peer frame holds. The rest goes in the next call: a
    /// shortened request that succeeds answers `PartialSuccess` with its
    /// last entry, which is how openraft lets a network send a prefix.
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let keep = entries_within(&rpc.entries, APPEND_BYTES);
        let cut = keep < rpc.entries.len();
        if cut {
            rpc.entries.truncate(keep);
        }
        let last = rpc.entries.last().map(|e| e.log_id);
        // A heartbeat (no entries) costs the follower no disk write: its
        // round trip is the network's and the peer's scheduling, which is
        // what etcd's prober measures for
        // `etcd_network_peer_round_trip_time_seconds`.
        let heartbeat = rpc.entries.is_empty().then(std::time::Instant::now);
        let r: AppendEntriesResponse<TypeConfig> = self
            .call(KIND_APPEND, &rpc, option.hard_ttl())
            .await
            .map_err(|e| {
                if heartbeat.is_some() {
                    self.metrics.heartbeat_failed();
                }
                rpc_err(e)
            })?;
        if let (Some(t), Some(s)) = (heartbeat, self.client.series()) {
            s.round_trip(t.elapsed());
        }
        Ok(match r {
            AppendEntriesResponse::Success if cut => AppendEntriesResponse::PartialSuccess(last),
            r => r,
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(KIND_VOTE, &rpc, option.hard_ttl())
            .await
            .map_err(rpc_err)
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(KIND_PRE_VOTE, &rpc, option.hard_ttl())
            .await
            .map_err(rpc_err)
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(KIND_TRANSFER, &req, option.hard_ttl())
            .await
            .map_err(rpc_err)
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: openraft::alias::SnapshotOf<TypeConfig, SnapshotData>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let file = snapshot.snapshot.file.clone();
        let mut f = std::fs::File::open(&file.path)
            .map_err(|e| StreamingError::Unreachable(unreachable(e)))?;
        let total = f
            .metadata()
            .map_err(|e| StreamingError::Unreachable(unreachable(e)))?
            .len();
        tokio::pin!(cancel);
        let mut offset = 0u64;
        loop {
            let mut data = vec![0u8; CHUNK.min((total - offset) as usize)];
            f.read_exact(&mut data)
                .map_err(|e| StreamingError::Unreachable(unreachable(e)))?;
            let chunk = SnapshotChunk {
                vote,
                meta: snapshot.meta.clone(),
                term: file.term,
                index: file.index,
                offset,
                total,
                data,
            };
            offset += chunk.data.len() as u64;
            let send = self.call::<_, Option<SnapshotResponse<TypeConfig>>>(
                KIND_SNAPSHOT,
                &chunk,
                option.hard_ttl().max(Duration::from_secs(10)),
            );
            let r = tokio::select! {
                closed = &mut cancel => return Err(StreamingError::Closed(closed)),
                r = send => r,
            };
            match r {
                Ok(Some(resp)) => return Ok(resp),
                Ok(None) if offset < total => {}
                Ok(None) => {
                    return Err(StreamingError::Unreachable(unreachable(format!(
                        "member {:x} did not install the snapshot",
                        self.target
                    ))));
                }
                Err(e) => return Err(StreamingError::Unreachable(unreachable(e))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{Command, Entry, Op, Proposal, RequestId};

    fn entry(index: u64, bytes: usize) -> Entry {
        Entry {
            log_id: openraft::testing::log_id::<TypeConfig>(1, 1, index),
            payload: openraft::EntryPayload::Normal(
                Proposal::single(&Command {
                    id: RequestId {
                        member: 1,
                        incarnation: 1,
                        seq: index,
                    },
                    floor: 1,
                    op: Op::Put(ferrocd_mvcc::PutRequest::new("k", vec![0u8; bytes])),
                    caller: crate::auth::Caller::Anonymous,
                })
                .unwrap(),
            ),
        }
    }

    #[test]
    fn append_entries_are_cut_to_what_a_frame_holds() {
        let small: Vec<Entry> = (1..=300).map(|i| entry(i, 100)).collect();
        assert_eq!(entries_within(&small, APPEND_BYTES), 300);
        let big: Vec<Entry> = (1..=100).map(|i| entry(i, 1 << 20)).collect();
        let n = entries_within(&big, APPEND_BYTES);
        assert!(n > 1 && n < 100, "{n}");
        let sized: usize = big[..n].iter().map(|e| encode(e).unwrap().len()).sum();
        assert!(sized + 1024 < ferrocd_net::peer::MAX_FRAME, "{sized}");
        let huge = vec![entry(1, APPEND_BYTES + 10), entry(2, 10)];
        assert_eq!(
            entries_within(&huge, APPEND_BYTES),
            1,
            "one entry always goes"
        );
    }
}
