//! The node: a started member's parts (see `bootstrap.rs`), and the
//! service traits of `ferrocd-net` the wire shims serve (`KvService`,
//! `WatchService`, `LeaseService`, `ClusterService`, `AuthService`,
//! `Authorizer`), each a thin call into the part that does the work.
//!
//! [`Node::start`] must run inside the raft runtime (a tokio runtime of its
//! own, see `server.rs`): openraft spawns its tasks there. The node handle
//! is used from any runtime (the shards' gRPC tasks): its futures wait only
//! on channels.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ferrocd_mvcc as mvcc;
use ferrocd_net::Check;
use ferrocd_net::{
    AuthInfo, AuthReply, AuthRequest, AuthService, Authorizer, ClusterService, Credentials,
    EtcdError, KvService, LeaseService, LeaseTtl, MemberChange, MemberInfo, Metrics, NodeStatus,
    ServerInfo, WatchService,
};
use ferrocd_wal::{UringFs, Worker};
use tokio::sync::Notify;

use crate::auth::{Caller, Need};
use crate::bootstrap::{self, Parts};
use crate::config::Config;
use crate::leader::raft_err;
use crate::lessor::MAX_LEASE_TTL;
use crate::membership::ids::Ids;
use crate::proposer::unexpected;
use crate::quota::{LEASE_OVERHEAD, RECORD_OVERHEAD, txn_put_bytes};
use crate::raft::{Applied, Op};

/// A running node: the parts `bootstrap` started (see there), each
/// owning its state; the service impls below delegate to them.
pub struct Node {
    parts: Parts,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("ids", &self.parts.ids)
            .field("name", &self.parts.members.name())
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Open the data dir, recover, start raft and the background loops,
    /// and wait until a leader is known and everything committed is
    /// applied here (see `bootstrap.rs`).
    pub async fn start(cfg: &Config, metrics: Metrics) -> anyhow::Result<Arc<Node>> {
        let parts = bootstrap::start(cfg, metrics).await?;
        Ok(Arc::new(Node { parts }))
    }

    /// Resolves when this member has been removed from the cluster.
    pub async fn removed(&self) {
        self.parts.liveness.removed().await
    }

    /// Resolves with the reason when raft stopped on a fatal error (a
    /// failed WAL write or fsync, a failed snapshot install): the member
    /// can no longer serve and must stop, as etcd exits when it cannot
    /// save its raft log. Restart it once the disk is fixed; recovery
    /// keeps everything acknowledged.
    pub async fn failed(&self) -> String {
        self.parts.liveness.failed().await
    }

    /// The ids.
    pub fn ids(&self) -> Ids {
        self.parts.ids
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.parts.data_dir
    }

    /// The store (for reads and tests).
    pub fn store(&self) -> &mvcc::Store {
        &self.parts.sm.store
    }

    /// Stop raft, flush the committed hint and join the WAL thread.
    pub async fn shutdown(&self) {
        if self.parts.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        self.parts.stop.notify_waiters();
        if let Err(e) = self.parts.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        // Nothing applies any more: whoever waits for an index gives up.
        self.parts.sm.applied_index.close();
        if let Err(e) = self.parts.log.flush().await {
            tracing::warn!(error = %e, "flushing the raft log");
        }
        tracing::info!("stopped");
    }

    /// The WAL thread, once every handle is gone (after shutdown).
    pub fn take_wal_worker(&self) -> Option<Worker<UringFs>> {
        self.parts.wal_worker.lock().expect("worker lock").take()
    }

    /// `/health`: healthy while a leader is known and alive (etcd answers
    /// `RAFT NO LEADER` otherwise) and the node is not stopping.
    pub fn health(&self) -> Result<(), String> {
        if self.parts.stopping.load(Ordering::Relaxed) {
            return Err("STOPPING".into());
        }
        if !self.parts.liveness.leader_alive() {
            return Err("RAFT NO LEADER".into());
        }
        Ok(())
    }
}

impl Node {
    /// The checks of `/livez` and `/readyz`, by etcd's names (3.5.11+):
    /// `/livez` runs `serializable_read`; `/readyz` runs
    /// `data_corruption` (no CORRUPT alarm on any member),
    /// `serializable_read` and `linearizable_read` (a read index round
    /// through the leader, so a member without a leader is not ready).
    /// Reads go to the store directly, as etcd's run as root.
    pub fn probes(self: &Arc<Self>) -> (Vec<Check>, Vec<Check>) {
        fn check<F, Fut>(name: &'static str, node: &Arc<Node>, f: F) -> Check
        where
            F: Fn(Arc<Node>) -> Fut + Send + Sync + 'static,
            Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
        {
            let node = node.clone();
            Check {
                name,
                run: Arc::new(move || Box::pin(f(node.clone()))),
            }
        }
        let serializable =
            |n: &Arc<Node>| check("serializable_read", n, |n| async move { n.probe_read() });
        let livez = vec![serializable(self)];
        let readyz = vec![
            check("data_corruption", self, |n| async move {
                if n.parts.sm.alarms(crate::raft::ALARM_CORRUPT).is_empty() {
                    Ok(())
                } else {
                    Err("alarm activated: CORRUPT".into())
                }
            }),
            serializable(self),
            check("linearizable_read", self, |n| async move {
                let within = n.parts.reads.request_timeout();
                match tokio::time::timeout(within, n.parts.reads.linearize()).await {
                    Ok(Ok(())) => n.probe_read(),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(EtcdError::Timeout.to_string()),
                }
            }),
        ];
        (livez, readyz)
    }

    /// etcd's probe read: one key, keys only, from this member's store.
    fn probe_read(&self) -> Result<(), String> {
        if self.parts.stopping.load(Ordering::Relaxed) {
            return Err(EtcdError::Stopped.to_string());
        }
        let mut req = mvcc::RangeRequest::new("health", "");
        req.keys_only = true;
        req.limit = 1;
        self.parts
            .sm
            .store
            .snapshot()
            .range(&req)
            .map(|_| ())
            .map_err(|e| EtcdError::from(e).to_string())
    }
}

impl Authorizer for Node {
    async fn authorize(&self, cred: Credentials) -> Result<Option<AuthInfo>, EtcdError> {
        self.parts.gate.authorize(cred).await
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
        self.parts.gate.auth(who, req).await
    }
}

impl KvService for Node {
    fn info(&self) -> ServerInfo {
        ServerInfo {
            cluster_id: self.parts.ids.cluster_id,
            member_id: self.parts.ids.member_id,
            raft_term: self.parts.liveness.term(),
        }
    }

    async fn range(
        &self,
        who: Option<AuthInfo>,
        req: mvcc::RangeRequest,
        serializable: bool,
    ) -> Result<mvcc::RangeResponse, EtcdError> {
        if !serializable {
            self.parts.reads.linearize().await?;
        }
        let caller = Caller::from_info(who);
        self.parts
            .sm
            .auth
            .load()
            .check(&caller, &req.key, &req.range_end, Need::Read)?;
        let view = self.parts.sm.store.snapshot();
        let r = view.range(&req).map_err(EtcdError::from)?.to_response();
        self.parts.sm.metrics.store_ops(&ferrocd_net::StoreOps {
            ranges: 1,
            ..Default::default()
        });
        self.parts.gate.still_current(&caller)?;
        Ok(r)
    }

    async fn put(
        &self,
        who: Option<AuthInfo>,
        req: mvcc::PutRequest,
    ) -> Result<mvcc::PutResponse, EtcdError> {
        self.parts
            .quota
            .check(req.key.len() + req.value.len() + RECORD_OVERHEAD)
            .await?;
        match self
            .parts
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
            .parts
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
            self.parts.quota.check(cost).await?;
        }
        match self
            .parts
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
            .parts
            .proposer
            .propose(Op::Compact { revision }, Caller::from_info(who))
            .await?
        {
            Applied::Compact(r) => r,
            a => return Err(unexpected("compact", a)),
        };
        if physical {
            let sm = self.parts.sm.clone();
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
        self.parts.sm.auth.load().check(
            &Caller::from_info(who.cloned()),
            key,
            range_end,
            Need::Read,
        )
    }

    fn open_stream(&self) -> (mvcc::StreamId, Arc<Notify>) {
        self.parts.sm.watches.open_stream()
    }

    fn close_stream(&self, stream: mvcc::StreamId) {
        self.parts.sm.watches.close_stream(stream)
    }

    fn watch(&self, stream: mvcc::StreamId, req: mvcc::WatchRequest) -> (mvcc::WatcherId, i64) {
        self.parts.sm.watches.watch(stream, req)
    }

    fn cancel(&self, id: mvcc::WatcherId) -> bool {
        self.parts.sm.watches.cancel(id)
    }

    fn request_progress(&self, stream: mvcc::StreamId) {
        self.parts.sm.watches.request_progress(stream)
    }

    fn drain(
        &self,
        stream: mvcc::StreamId,
        max: usize,
        out: &mut Vec<mvcc::WatchResponse>,
    ) -> usize {
        self.parts.sm.watches.drain(stream, max, out)
    }

    fn revision(&self) -> i64 {
        self.parts.sm.store.revision()
    }

    fn has_leader(&self) -> bool {
        self.parts.liveness.leader_alive()
    }

    fn leader_check_interval(&self) -> Duration {
        self.parts.election_timeout
    }
}

impl LeaseService for Node {
    fn info(&self) -> ServerInfo {
        KvService::info(self)
    }

    fn revision(&self) -> i64 {
        self.parts.sm.store.revision()
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
            .parts
            .sm
            .lessor
            .lock()
            .expect("lessor lock")
            .effective_ttl(ttl);
        self.parts.quota.check(LEASE_OVERHEAD).await?;
        let id = if id == 0 {
            self.parts.leases.new_id()
        } else {
            id
        };
        match self
            .parts
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
            .parts
            .proposer
            .propose(Op::LeaseRevoke { id }, Caller::from_info(who))
            .await?
        {
            Applied::LeaseRevoke(rev) => Ok(rev),
            a => Err(unexpected("lease revoke", a)),
        }
    }

    async fn keep_alive(&self, id: i64) -> Result<i64, EtcdError> {
        self.parts.leases.keep_alive(id).await
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
            let auth = self.parts.sm.auth.load();
            if auth.enabled {
                for k in self.parts.sm.store.snapshot().lease_keys(id) {
                    auth.check(&caller, k, &[], Need::Read)?;
                }
            }
        }
        let (ttl, granted_ttl) = self.parts.leases.ttl(id).await?;
        if keys {
            self.parts.gate.still_current(&caller)?;
        }
        let keys = if keys {
            let view = self.parts.sm.store.snapshot();
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
        Ok(self.parts.sm.store.snapshot().leases())
    }
}

impl ClusterService for Node {
    fn info(&self) -> ServerInfo {
        KvService::info(self)
    }

    fn admin_permitted(&self, who: Option<&AuthInfo>) -> Result<(), EtcdError> {
        self.parts
            .sm
            .auth
            .load()
            .check_admin(&Caller::from_info(who.cloned()))
    }

    async fn status(&self) -> Result<NodeStatus, EtcdError> {
        self.parts.maintenance.status().await
    }

    async fn member_status(&self, id: u64) -> Result<NodeStatus, EtcdError> {
        self.parts.maintenance.member_status(id).await
    }

    async fn alarm(
        &self,
        action: i32,
        member_id: u64,
        alarm: i32,
    ) -> Result<Vec<(u64, i32)>, EtcdError> {
        self.parts.maintenance.alarm(action, member_id, alarm).await
    }

    async fn defragment(&self) -> Result<(), EtcdError> {
        self.parts.maintenance.defragment().await
    }

    async fn hash_kv(&self, revision: i64) -> Result<(u32, i64, i64, i64), EtcdError> {
        self.parts.maintenance.hash_kv(revision).await
    }

    async fn move_leader(&self, target: u64) -> Result<(), EtcdError> {
        self.parts.maintenance.move_leader(target).await
    }

    async fn downgrade(&self, req: ferrocd_net::Downgrade) -> Result<String, EtcdError> {
        self.parts.maintenance.downgrade(req).await
    }

    async fn change_members(
        &self,
        change: MemberChange,
    ) -> Result<(Option<MemberInfo>, Vec<MemberInfo>, i64), EtcdError> {
        self.parts.members.change(change).await
    }

    async fn members(&self) -> Result<(Vec<MemberInfo>, i64), EtcdError> {
        Ok(self.parts.members.list())
    }

    async fn snapshot(&self) -> Result<(std::fs::File, u64), EtcdError> {
        self.parts.maintenance.snapshot().await
    }

    async fn hash(&self) -> Result<(u32, i64), EtcdError> {
        self.parts.maintenance.hash().await
    }
}
