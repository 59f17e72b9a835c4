//! The node: a started member's parts (see `bootstrap.rs`), and the
//! service traits of `ferrocd-net` the wire shims serve (`KvService`,
//! `WatchService`, `LeaseService`, `ClusterService`, `AuthService`,
//! `Authorizer`), each a thin call into the part that does the work.
//!
//! [`Node::start`] must run inside the raft runtime (a tokio runtime of its
//! own, see `server.rs`): openraft spawns its tasks there. The node handle
//! is used from any runtime (the shards' gRPC tasks): its futures wait only
//! on channels.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrocd_mvcc as mvcc;
use ferrocd_net::{
    AuthInfo, AuthReply, AuthRequest, AuthService, Authorizer, ClusterService, Credentials,
    EtcdError, KvService, LeaseService, LeaseTtl, MemberChange, MemberInfo, Metrics, NodeStatus,
    ServerInfo, WatchService,
};
use ferrocd_wal::{UringFs, Worker};
use tokio::sync::Notify;

use crate::auth::{Caller, Need};
use crate::auth_gate::AuthGate;
use crate::bootstrap::{self, Started};
use crate::config::Config;
use crate::leader::raft_err;
use crate::leases::Leases;
use crate::lessor::MAX_LEASE_TTL;
use crate::liveness::Liveness;
use crate::maintenance::Maintenance;
use crate::membership::Membership;
use crate::membership::ids::Ids;
use crate::proposer::{Proposer, unexpected};
use crate::quota::{LEASE_OVERHEAD, Quota, RECORD_OVERHEAD, txn_put_bytes};
use crate::raft::{Applied, LogStore, Op, Raft, SmShared};
use crate::read_index::ReadIndex;

/// A running node.
pub struct Node {
    raft: Raft,
    sm: Arc<SmShared>,
    log: LogStore,
    ids: Ids,
    election_timeout: Duration,
    /// Every client write goes through it.
    proposer: Arc<Proposer>,
    /// Linearizable reads.
    reads: Arc<ReadIndex>,
    /// The membership and its changes.
    members: Arc<Membership>,
    /// Tokens, passwords and the auth store's requests.
    gate: AuthGate,
    /// Keep-alives, TTLs, lease ids.
    leases: Arc<Leases>,
    /// The backend quota.
    quota: Quota,
    /// Term, leader, health, a fatal stop, removal.
    liveness: Arc<Liveness>,
    /// Status, alarms, defragment, hashes, the backend snapshot.
    maintenance: Arc<Maintenance>,
    stopping: Arc<AtomicBool>,
    stop: Arc<Notify>,
    wal_worker: Mutex<Option<Worker<UringFs>>>,
    data_dir: PathBuf,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("ids", &self.ids)
            .field("name", &self.members.name())
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Open the data dir, recover, start raft and the background loops,
    /// and wait until a leader is known and everything committed is
    /// applied here (see `bootstrap.rs`).
    pub async fn start(cfg: &Config, metrics: Metrics) -> anyhow::Result<Arc<Node>> {
        let Started {
            raft,
            sm,
            log,
            wal_worker,
            ids,
            data_dir,
            election_timeout,
            proposer,
            reads,
            members,
            gate,
            leases,
            quota,
            liveness,
            maintenance,
            stopping,
            stop,
        } = bootstrap::start(cfg, metrics).await?;
        Ok(Arc::new(Node {
            raft,
            sm,
            log,
            ids,
            election_timeout,
            proposer,
            reads,
            members,
            gate,
            leases,
            quota,
            liveness,
            maintenance,
            stopping,
            stop,
            wal_worker: Mutex::new(Some(wal_worker)),
            data_dir,
        }))
    }

    /// Resolves when this member has been removed from the cluster.
    pub async fn removed(&self) {
        self.liveness.removed().await
    }

    /// Resolves with the reason when raft stopped on a fatal error (a
    /// failed WAL write or fsync, a failed snapshot install): the member
    /// can no longer serve and must stop, as etcd exits when it cannot
    /// save its raft log. Restart it once the disk is fixed; recovery
    /// keeps everything acknowledged.
    pub async fn failed(&self) -> String {
        self.liveness.failed().await
    }

    /// The ids.
    pub fn ids(&self) -> Ids {
        self.ids
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The store (for reads and tests).
    pub fn store(&self) -> &mvcc::Store {
        &self.sm.store
    }

    /// Stop raft, flush the committed hint and join the WAL thread.
    pub async fn shutdown(&self) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        self.proposer.stop();
        self.stop.notify_waiters();
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        if let Err(e) = self.log.flush().await {
            tracing::warn!(error = %e, "flushing the raft log");
        }
        tracing::info!("stopped");
    }

    /// The WAL thread, once every handle is gone (after shutdown).
    pub fn take_wal_worker(&self) -> Option<Worker<UringFs>> {
        self.wal_worker.lock().expect("worker lock").take()
    }

    /// `/health`: healthy while a leader is known and alive (etcd answers
    /// `RAFT NO LEADER` otherwise) and the node is not stopping.
    pub fn health(&self) -> Result<(), String> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err("STOPPING".into());
        }
        if !self.liveness.leader_alive() {
            return Err("RAFT NO LEADER".into());
        }
        Ok(())
    }
}

impl Authorizer for Node {
    async fn authorize(&self, cred: Credentials) -> Result<Option<AuthInfo>, EtcdError> {
        self.gate.authorize(cred).await
    }
}

impl AuthService for Node {
    fn info(&self) -> ServerInfo {
        KvService::info(self)
    }

    async fn auth(
        &self,
        who: Option<AuthInfo>,
        req: AuthRequest,
    ) -> Result<(AuthReply, i64), EtcdError> {
        self.gate.auth(who, req).await
    }
}

impl KvService for Node {
    fn info(&self) -> ServerInfo {
        ServerInfo {
            cluster_id: self.ids.cluster_id,
            member_id: self.ids.member_id,
            raft_term: self.liveness.term(),
        }
    }

    async fn range(
        &self,
        who: Option<AuthInfo>,
        req: mvcc::RangeRequest,
        serializable: bool,
    ) -> Result<mvcc::RangeResponse, EtcdError> {
        if !serializable {
            self.reads.linearize().await?;
        }
        let caller = Caller::from_info(who);
        self.sm
            .auth
            .load()
            .check(&caller, &req.key, &req.range_end, Need::Read)?;
        let view = self.sm.store.snapshot();
        let r = view.range(&req).map_err(EtcdError::from)?.to_response();
        self.gate.still_current(&caller)?;
        Ok(r)
    }

    async fn put(
        &self,
        who: Option<AuthInfo>,
        req: mvcc::PutRequest,
    ) -> Result<mvcc::PutResponse, EtcdError> {
        self.quota
            .check(req.key.len() + req.value.len() + RECORD_OVERHEAD)
            .await?;
        match self
            .proposer
            .propose(Op::Put(req), Caller::from_info(who))
            .await?
        {
            Applied::Put(r) => Ok(r),
            a => Err(unexpected("put", a)),
        }
    }

    async fn delete_range(
        &self,
        who: Option<AuthInfo>,
        req: mvcc::DeleteRangeRequest,
    ) -> Result<mvcc::DeleteRangeResponse, EtcdError> {
        match self
            .proposer
            .propose(Op::DeleteRange(req), Caller::from_info(who))
            .await?
        {
            Applied::DeleteRange(r) => Ok(r),
            a => Err(unexpected("delete_range", a)),
        }
    }

    async fn txn(
        &self,
        who: Option<AuthInfo>,
        req: mvcc::TxnRequest,
    ) -> Result<mvcc::TxnResponse, EtcdError> {
        let cost = txn_put_bytes(&req);
        if cost > 0 {
            self.quota.check(cost).await?;
        }
        match self
            .proposer
            .propose(Op::Txn(req), Caller::from_info(who))
            .await?
        {
            Applied::Txn(r) => Ok(r),
            a => Err(unexpected("txn", a)),
        }
    }

    async fn compact(
        &self,
        who: Option<AuthInfo>,
        revision: i64,
        physical: bool,
    ) -> Result<i64, EtcdError> {
        // etcd checks no permission for a compaction.
        let rev = match self
            .proposer
            .propose(Op::Compact { revision }, Caller::from_info(who))
            .await?
        {
            Applied::Compact(r) => r,
            a => return Err(unexpected("compact", a)),
        };
        if physical {
            let sm = self.sm.clone();
            tokio::task::spawn_blocking(move || sm.finish_compaction())
                .await
                .map_err(raft_err)?;
        }
        Ok(rev)
    }
}

impl WatchService for Node {
    fn info(&self) -> ServerInfo {
        KvService::info(self)
    }

    fn watch_permitted(
        &self,
        who: Option<&AuthInfo>,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), EtcdError> {
        self.sm
            .auth
            .load()
            .check(&Caller::from_info(who.cloned()), key, range_end, Need::Read)
    }

    fn open_stream(&self) -> (mvcc::StreamId, Arc<Notify>) {
        self.sm.watches.open_stream()
    }

    fn close_stream(&self, stream: mvcc::StreamId) {
        self.sm.watches.close_stream(stream)
    }

    fn watch(&self, stream: mvcc::StreamId, req: mvcc::WatchRequest) -> (mvcc::WatcherId, i64) {
        self.sm.watches.watch(stream, req)
    }

    fn cancel(&self, id: mvcc::WatcherId) -> bool {
        self.sm.watches.cancel(id)
    }

    fn request_progress(&self, stream: mvcc::StreamId) {
        self.sm.watches.request_progress(stream)
    }

    fn drain(
        &self,
        stream: mvcc::StreamId,
        max: usize,
        out: &mut Vec<mvcc::WatchResponse>,
    ) -> usize {
        self.sm.watches.drain(stream, max, out)
    }

    fn revision(&self) -> i64 {
        self.sm.store.revision()
    }

    fn has_leader(&self) -> bool {
        self.liveness.leader_alive()
    }

    fn leader_check_interval(&self) -> Duration {
        self.election_timeout
    }
}

impl LeaseService for Node {
    fn info(&self) -> ServerInfo {
        KvService::info(self)
    }

    fn revision(&self) -> i64 {
        self.sm.store.revision()
    }

    async fn grant(
        &self,
        who: Option<AuthInfo>,
        id: i64,
        ttl: i64,
    ) -> Result<(i64, i64), EtcdError> {
        if ttl > MAX_LEASE_TTL {
            return Err(EtcdError::LeaseTtlTooLarge);
        }
        let ttl = self
            .sm
            .lessor
            .lock()
            .expect("lessor lock")
            .effective_ttl(ttl);
        self.quota.check(LEASE_OVERHEAD).await?;
        let id = if id == 0 { self.leases.new_id() } else { id };
        match self
            .proposer
            .propose(Op::LeaseGrant { id, ttl }, Caller::from_info(who))
            .await?
        {
            Applied::LeaseGrant { id, ttl } => Ok((id, ttl)),
            a => Err(unexpected("lease grant", a)),
        }
    }

    async fn revoke(&self, who: Option<AuthInfo>, id: i64) -> Result<i64, EtcdError> {
        match self
            .proposer
            .propose(Op::LeaseRevoke { id }, Caller::from_info(who))
            .await?
        {
            Applied::LeaseRevoke(rev) => Ok(rev),
            a => Err(unexpected("lease revoke", a)),
        }
    }

    async fn keep_alive(&self, id: i64) -> Result<i64, EtcdError> {
        self.leases.keep_alive(id).await
    }

    async fn time_to_live(
        &self,
        who: Option<AuthInfo>,
        id: i64,
        keys: bool,
    ) -> Result<LeaseTtl, EtcdError> {
        // etcd: with keys, the caller must be able to read every key.
        let caller = Caller::from_info(who);
        if keys {
            let auth = self.sm.auth.load();
            if auth.enabled {
                for k in self.sm.store.snapshot().lease_keys(id) {
                    auth.check(&caller, k, &[], Need::Read)?;
                }
            }
        }
        let (ttl, granted_ttl) = self.leases.ttl(id).await?;
        if keys {
            self.gate.still_current(&caller)?;
        }
        let keys = if keys {
            let view = self.sm.store.snapshot();
            view.lease_keys(id)
                .into_iter()
                .map(<[u8]>::to_vec)
                .collect()
        } else {
            Vec::new()
        };
        Ok(LeaseTtl {
            ttl,
            granted_ttl,
            keys,
        })
    }

    async fn leases(&self) -> Result<Vec<i64>, EtcdError> {
        Ok(self.sm.store.snapshot().leases())
    }
}

impl ClusterService for Node {
    fn info(&self) -> ServerInfo {
        KvService::info(self)
    }

    fn admin_permitted(&self, who: Option<&AuthInfo>) -> Result<(), EtcdError> {
        self.sm
            .auth
            .load()
            .check_admin(&Caller::from_info(who.cloned()))
    }

    async fn status(&self) -> Result<NodeStatus, EtcdError> {
        self.maintenance.status().await
    }

    async fn member_status(&self, id: u64) -> Result<NodeStatus, EtcdError> {
        self.maintenance.member_status(id).await
    }

    async fn alarm(
        &self,
        action: i32,
        member_id: u64,
        alarm: i32,
    ) -> Result<Vec<(u64, i32)>, EtcdError> {
        self.maintenance.alarm(action, member_id, alarm).await
    }

    async fn defragment(&self) -> Result<(), EtcdError> {
        self.maintenance.defragment().await
    }

    async fn hash_kv(&self, revision: i64) -> Result<(u32, i64, i64, i64), EtcdError> {
        self.maintenance.hash_kv(revision).await
    }

    async fn move_leader(&self, target: u64) -> Result<i64, EtcdError> {
        self.maintenance.move_leader(target).await
    }

    async fn change_members(
        &self,
        change: MemberChange,
    ) -> Result<(Option<MemberInfo>, Vec<MemberInfo>, i64), EtcdError> {
        self.members.change(change).await
    }

    async fn members(&self) -> Result<(Vec<MemberInfo>, i64), EtcdError> {
        Ok(self.members.list())
    }

    async fn snapshot(&self) -> Result<(std::fs::File, u64), EtcdError> {
        self.maintenance.snapshot().await
    }

    async fn hash(&self) -> Result<(u32, i64), EtcdError> {
        self.maintenance.hash().await
    }
}
