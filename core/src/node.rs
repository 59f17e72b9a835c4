//! The node: one raft group (openraft) with its log on the WAL and its
//! state machine on the mvcc store, the lessor, and the service traits the
//! wire shims serve (`KvService`, `WatchService`, `LeaseService`,
//! `ClusterService`).
//!
//! [`Node::start`] must run inside the raft runtime (a tokio runtime of its
//! own, see `server.rs`): openraft spawns its tasks there. The node handle
//! is used from any runtime (the shards' gRPC tasks): its futures wait only
//! on channels.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use ferrocd_mvcc as mvcc;
use ferrocd_net::{
    ClusterService, EtcdError, KvService, LeaseService, LeaseTtl, MemberInfo, Metrics, NodeStatus,
    ServerInfo, WatchService,
};
use ferrocd_wal::{self as wal, UringFs, Worker};
use openraft::async_runtime::WatchReceiver;
use openraft::{BasicNode, ReadPolicy, ServerState, SnapshotPolicy};
use sha1::{Digest, Sha1};
use tokio::sync::Notify;

use crate::compactor::Compactor;
use crate::config::Config;
use crate::lessor::{Lessor, MAX_LEASE_TTL, RenewError};
use crate::raft::{Applied, Command, LogStore, NoPeers, Op, Raft, SmShared, StateMachine};

/// The etcd server version whose API and behaviour ferrocd implements
/// (reported by Status and `/version`).
pub const ETCD_VERSION: &str = "3.5.0";
/// The cluster version `/version` reports.
pub const ETCD_CLUSTER_VERSION: &str = "3.5.0";

/// Revokes the leader proposes per expiry pass.
const REVOKES_PER_PASS: usize = 64;

/// Cluster and member ids (etcd computes them the same way: sha1 of the
/// peer URLs + token, and of the member ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    /// Cluster id.
    pub cluster_id: u64,
    /// This member's id.
    pub member_id: u64,
}

/// etcd's member id: sha1(sorted peer URLs joined + cluster token), first
/// 8 bytes big-endian.
pub fn member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut h = Sha1::new();
    h.update(urls.concat().as_bytes());
    h.update(token.as_bytes());
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

/// etcd's cluster id: sha1 of the sorted member ids (8 bytes BE each).
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut h = Sha1::new();
    for id in ids {
        h.update(id.to_be_bytes());
    }
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

fn url_strings(urls: &[url::Url]) -> Vec<String> {
    urls.iter()
        .map(|u| u.as_str().trim_end_matches('/').to_string())
        .collect()
}

/// Read or create `member/ids` (cluster id and member id, hex, one per
/// line), durably: a restart keeps its ids whatever the flags say, as
/// etcd keeps them in its WAL.
fn load_or_create_ids(member_dir: &Path, cfg: &Config) -> anyhow::Result<Ids> {
    let path = member_dir.join("ids");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let mut it = text.lines().map(|l| {
            u64::from_str_radix(l.trim(), 16).with_context(|| format!("{}: bad id", path.display()))
        });
        let cluster_id = it.next().context("ids file is empty")??;
        let member_id = it.next().context("ids file has no member id")??;
        return Ok(Ids {
            cluster_id,
            member_id,
        });
    }
    let mut members = Vec::new();
    let mut me = None;
    for (name, urls) in &cfg.initial_cluster {
        let id = member_id(&url_strings(urls), &cfg.initial_cluster_token);
        if *name == cfg.name {
            me = Some(id);
        }
        members.push(id);
    }
    let Some(member_id) = me else {
        bail!(
            "couldn't find local name {:?} in the initial cluster configuration",
            cfg.name
        );
    };
    let ids = Ids {
        cluster_id: cluster_id(&members),
        member_id,
    };
    let tmp = member_dir.join("ids.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "{:016x}\n{:016x}", ids.cluster_id, ids.member_id)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(member_dir)?.sync_all()?;
    Ok(ids)
}

/// A running node.
pub struct Node {
    raft: Raft,
    sm: Arc<SmShared>,
    log: LogStore,
    ids: Ids,
    name: String,
    peer_urls: Vec<String>,
    client_urls: Vec<String>,
    max_request_bytes: usize,
    election_timeout: Duration,
    next_request: AtomicU64,
    lease_seq: AtomicU64,
    term: AtomicU64,
    leader: AtomicU64,
    stopping: AtomicBool,
    /// The NOSPACE alarm (see `check_quota`).
    nospace: AtomicBool,
    quota: u64,
    stop: Arc<Notify>,
    wal_worker: Mutex<Option<Worker<UringFs>>>,
    data_dir: PathBuf,
    metrics: Metrics,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("ids", &self.ids)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn raft_err(e: impl std::fmt::Display) -> EtcdError {
    EtcdError::Unknown(e.to_string())
}

impl Node {
    /// Open the data dir, recover, start raft and the background loops,
    /// and wait until this member leads (single-member cluster).
    pub async fn start(cfg: &Config, metrics: Metrics) -> anyhow::Result<Arc<Node>> {
        let fs = UringFs;
        let member_dir = cfg.data_dir.join("member");
        wal::create_dir_all_durable(&fs, &member_dir)
            .with_context(|| format!("creating {}", member_dir.display()))?;
        let ids = load_or_create_ids(&member_dir, cfg)?;
        let wal_dir = cfg
            .wal_dir
            .clone()
            .unwrap_or_else(|| member_dir.join("wal"));
        let t = Instant::now();
        let (wal, recovered) = wal::Wal::open(
            fs,
            &wal_dir,
            wal::Config {
                keep_segments: if cfg.max_wals == 0 {
                    usize::MAX
                } else {
                    cfg.max_wals
                },
                ..wal::Config::default()
            },
        )
        .with_context(|| format!("opening the WAL in {}", wal_dir.display()))?;
        tracing::info!(
            dir = %wal_dir.display(),
            first = ?recovered.first_index,
            last = ?recovered.last_index,
            torn_bytes = recovered.torn_bytes,
            ms = t.elapsed().as_millis() as u64,
            "opened wal"
        );
        let fsync_metrics = metrics.clone();
        let (log, worker) = LogStore::open_observed(
            wal,
            Some(Arc::new(move |e: wal::SyncEvent| {
                fsync_metrics.observe_wal_fsync(e.duration)
            })),
        )
        .context("reading the raft log")?;

        let heartbeat_ms = cfg.heartbeat_interval.as_millis().max(1) as u64;
        let election_ms = cfg.election_timeout.as_millis().max(1) as u64;
        // etcd's minimum lease TTL: ceil(1.5 × election timeout).
        let election_ticks = (election_ms / heartbeat_ms).max(1);
        let min_ttl_ms = (3 * election_ticks / 2) * heartbeat_ms;
        let min_ttl = min_ttl_ms.div_ceil(1000) as i64;
        let sm = StateMachine::open(
            &member_dir.join("snap"),
            mvcc::Config {
                compaction_batch: cfg.compaction_batch_limit.max(1),
                ..mvcc::Config::default()
            },
            mvcc::WatchConfig {
                progress_interval: cfg.watch_progress_notify_interval,
                ..mvcc::WatchConfig::default()
            },
            Lessor::new(min_ttl),
            metrics.clone(),
            if cfg.max_snapshots == 0 {
                usize::MAX
            } else {
                cfg.max_snapshots
            },
        )
        .context("loading the newest snapshot")?;
        let shared = sm.shared();

        let raft_config = openraft::Config {
            cluster_name: cfg.initial_cluster_token.clone(),
            heartbeat_interval: heartbeat_ms,
            election_timeout_min: election_ms,
            election_timeout_max: election_ms * 2,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_count.max(1)),
            // etcd keeps 5000 entries behind a snapshot for slow followers.
            max_in_snapshot_log_to_keep: 5000,
            enable_pre_vote: Some(cfg.pre_vote),
            ..openraft::Config::default()
        };
        let raft_config = Arc::new(raft_config.validate().context("raft settings")?);
        let raft = Raft::new(ids.member_id, raft_config, NoPeers, log.clone(), sm)
            .await
            .context("starting raft")?;

        let peer_urls = url_strings(&cfg.initial_advertise_peer_urls);
        let restarted = raft.is_initialized().await.context("raft state")?;
        if !restarted {
            let mut members = BTreeMap::new();
            members.insert(
                ids.member_id,
                BasicNode {
                    addr: peer_urls.first().cloned().unwrap_or_default(),
                },
            );
            raft.initialize(members)
                .await
                .context("initializing raft")?;
        }

        let seed: u64 = rand::random();
        let node = Arc::new(Node {
            raft,
            sm: shared,
            log,
            ids,
            name: cfg.name.clone(),
            peer_urls,
            client_urls: url_strings(&cfg.advertise_client_urls),
            max_request_bytes: cfg.max_request_bytes as usize,
            election_timeout: cfg.election_timeout,
            next_request: AtomicU64::new(seed | 1),
            lease_seq: AtomicU64::new(0),
            term: AtomicU64::new(0),
            leader: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            nospace: AtomicBool::new(false),
            quota: cfg.quota_backend_bytes,
            stop: Arc::new(Notify::new()),
            wal_worker: Mutex::new(Some(worker)),
            data_dir: cfg.data_dir.clone(),
            metrics,
        });

        tokio::spawn(node.clone().track_leadership());
        tokio::spawn(node.clone().expire_leases());
        tokio::spawn(node.clone().sample_gauges());
        tokio::spawn(
            node.clone()
                .auto_compact(Compactor::new(cfg.auto_compaction)),
        );
        tokio::spawn(
            node.sm
                .watches
                .clone()
                .run_syncer(node.sm.store.clone(), node.stop.clone()),
        );

        // A restarted single voter need not wait an election timeout to
        // lead (a new one campaigns at once after initialize).
        if restarted && node.raft.voter_ids().count() == 1 {
            let _ = node.raft.trigger().elect(false).await;
        }
        node.raft
            .wait(Some(Duration::from_secs(30)))
            .state(ServerState::Leader, "single member becomes leader")
            .await
            .context("waiting to become leader")?;
        // Reads are served only once everything committed before a restart
        // is applied again.
        node.raft
            .ensure_linearizable(ReadPolicy::ReadIndex)
            .await
            .context("catching up the state machine")?;
        tracing::info!(
            member_id = %format!("{:016x}", ids.member_id),
            cluster_id = %format!("{:016x}", ids.cluster_id),
            revision = node.sm.store.revision(),
            "ready"
        );
        Ok(node)
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

    async fn track_leadership(self: Arc<Self>) {
        let mut rx = self.raft.metrics();
        let mut was_leader = false;
        loop {
            let (term, leader, is_leader) = {
                let m = rx.borrow_watched();
                (
                    m.current_term,
                    m.current_leader.unwrap_or(0),
                    m.state == ServerState::Leader,
                )
            };
            self.term.store(term, Ordering::Relaxed);
            self.leader.store(leader, Ordering::Relaxed);
            {
                let m = rx.borrow_watched();
                self.metrics.set_has_leader(leader != 0);
                self.metrics.set_is_leader(is_leader);
                if let Some(c) = m.cluster_committed {
                    self.metrics.set_proposals_committed(c.index);
                }
                if let Some(a) = m.last_applied {
                    self.metrics.set_proposals_applied(a.index);
                }
            }
            if is_leader != was_leader {
                let mut lessor = self.sm.lessor.lock().expect("lessor lock");
                if is_leader {
                    lessor.promote(Instant::now(), self.election_timeout);
                    tracing::info!(term, leases = lessor.len(), "became leader");
                } else {
                    lessor.demote();
                    tracing::info!(term, "no longer leader");
                }
                was_leader = is_leader;
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                _ = self.stop.notified() => return,
            }
        }
    }

    /// etcd's lessor loop: every 500 ms the leader revokes expired leases
    /// through raft.
    async fn expire_leases(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = self.stop.notified() => return,
            }
            let expired = self
                .sm
                .lessor
                .lock()
                .expect("lessor lock")
                .expired(Instant::now(), REVOKES_PER_PASS);
            for id in expired {
                tracing::debug!(lease = id, "lease expired; revoking");
                let node = self.clone();
                tokio::spawn(async move {
                    match node.propose(Op::LeaseRevoke { id }).await {
                        Ok(_) | Err(EtcdError::LeaseNotFound) => {}
                        Err(e) => tracing::warn!(lease = id, error = %e, "revoking expired lease"),
                    }
                });
            }
        }
    }

    /// etcd's compactor: on the leader, compact as the retention says.
    async fn auto_compact(self: Arc<Self>, mut c: Compactor) {
        let Some(every) = c.poll_interval() else {
            return;
        };
        let mut was_leader = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.stop.notified() => return,
            }
            let leader = self.raft.is_leader();
            if !leader {
                was_leader = false;
                continue;
            }
            if !was_leader {
                c.reset();
                was_leader = true;
            }
            if let Some(rev) = c.tick(Instant::now(), self.sm.store.revision()) {
                match self.propose(Op::Compact { revision: rev }).await {
                    Ok(_) => tracing::info!(revision = rev, "auto-compacted"),
                    Err(EtcdError::Compacted) => {}
                    Err(e) => tracing::warn!(revision = rev, error = %e, "auto-compaction failed"),
                }
            }
        }
    }

    /// Gauges that are cheaper to sample than to track: every second.
    async fn sample_gauges(self: Arc<Self>) {
        loop {
            let view = self.sm.store.snapshot();
            self.metrics.set_db_size(view.size_bytes());
            self.metrics.set_keys(view.key_count() as u64);
            self.metrics.set_watchers(self.sm.watches.len() as u64);
            drop(view);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = self.stop.notified() => return,
            }
        }
    }

    /// `/health`: healthy while a leader is known (etcd answers
    /// `RAFT NO LEADER` otherwise) and the node is not stopping.
    pub fn health(&self) -> Result<(), String> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err("STOPPING".into());
        }
        if self.leader.load(Ordering::Relaxed) == 0 {
            return Err("RAFT NO LEADER".into());
        }
        Ok(())
    }

    /// etcd's backend quota (`quota.go`): a write that would take the
    /// store past `--quota-backend-bytes` raises the NOSPACE alarm, and
    /// while it is raised every such write is refused with
    /// `etcdserver: mvcc: database space exceeded`; reads, deletes and
    /// compactions still go through. Clear it with `etcdctl alarm disarm`
    /// after compacting.
    fn check_quota(&self, cost: usize) -> Result<(), EtcdError> {
        if self.nospace.load(Ordering::Relaxed) {
            return Err(EtcdError::NoSpace);
        }
        if self.sm.store.snapshot().size_bytes() + cost as u64 >= self.quota {
            if !self.nospace.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    quota = self.quota,
                    "database space exceeded; NOSPACE alarm raised"
                );
            }
            return Err(EtcdError::NoSpace);
        }
        Ok(())
    }

    fn next_request_id(&self) -> u64 {
        // Odd, nonzero, random start: ids of one incarnation never collide
        // with those of an earlier one still in the log.
        self.next_request.fetch_add(2, Ordering::Relaxed)
    }

    /// Replicate `op`, wait until it is durable and applied, and return
    /// what the store said.
    async fn propose(&self, op: Op) -> Result<Applied, EtcdError> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err(EtcdError::Stopped);
        }
        let cmd = Command {
            id: self.next_request_id(),
            op,
        };
        let size = postcard::experimental::serialized_size(&cmd).map_err(raft_err)?;
        if size > self.max_request_bytes {
            return Err(EtcdError::RequestTooLarge);
        }
        let id = cmd.id;
        let rx = self.sm.wait_for(id);
        if let Err(e) = self.raft.client_write(cmd).await {
            self.sm.forget(id);
            return Err(match e.forward_to_leader() {
                Some(f) if f.leader_id.is_none() => EtcdError::NoLeader,
                Some(_) => EtcdError::NotLeader,
                None => raft_err(e),
            });
        }
        match rx.await {
            Ok(r) => r.map_err(EtcdError::from),
            Err(_) => Err(EtcdError::Stopped),
        }
    }

    async fn linearize(&self) -> Result<(), EtcdError> {
        self.raft
            .ensure_linearizable(ReadPolicy::ReadIndex)
            .await
            .map(|_| ())
            .map_err(|e| match e.forward_to_leader() {
                Some(f) if f.leader_id.is_none() => EtcdError::NoLeader,
                Some(_) => EtcdError::NotLeader,
                None => raft_err(e),
            })
    }

    fn new_lease_id(&self) -> i64 {
        // etcd's idutil: member id's low 16 bits, then milliseconds and a
        // counter; positive.
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let seq = self.lease_seq.fetch_add(1, Ordering::Relaxed);
        let id = ((self.ids.member_id & 0xffff) << 48) | ((ms & 0xff_ffff_ffff) << 8);
        (id.wrapping_add(seq) & (i64::MAX as u64)).max(1) as i64
    }
}

/// etcd's alarm type number for NOSPACE.
const ALARM_NOSPACE: i32 = 1;
/// Bytes a record costs besides its key and value (etcd counts a fixed
/// overhead per put the same way).
const RECORD_OVERHEAD: usize = 64;

/// Bytes the puts of a txn (both branches, nested too) would add; 0 when
/// it has none (such a txn is never refused for space, as in etcd).
fn txn_put_bytes(t: &mvcc::TxnRequest) -> usize {
    t.success
        .iter()
        .chain(&t.failure)
        .map(|op| match op {
            mvcc::RequestOp::Put(p) => p.key.len() + p.value.len() + RECORD_OVERHEAD,
            mvcc::RequestOp::Txn(t) => txn_put_bytes(t),
            _ => 0,
        })
        .sum()
}

fn unexpected(what: &str, a: Applied) -> EtcdError {
    EtcdError::Unknown(format!("internal: {what} applied as {a:?}"))
}

impl KvService for Node {
    fn info(&self) -> ServerInfo {
        ServerInfo {
            cluster_id: self.ids.cluster_id,
            member_id: self.ids.member_id,
            raft_term: self.term.load(Ordering::Relaxed),
        }
    }

    async fn range(
        &self,
        req: mvcc::RangeRequest,
        serializable: bool,
    ) -> Result<mvcc::RangeResponse, EtcdError> {
        if !serializable {
            self.linearize().await?;
        }
        let view = self.sm.store.snapshot();
        let r = view.range(&req).map_err(EtcdError::from)?.to_response();
        Ok(r)
    }

    async fn put(&self, req: mvcc::PutRequest) -> Result<mvcc::PutResponse, EtcdError> {
        self.check_quota(req.key.len() + req.value.len() + RECORD_OVERHEAD)?;
        match self.propose(Op::Put(req)).await? {
            Applied::Put(r) => Ok(r),
            a => Err(unexpected("put", a)),
        }
    }

    async fn delete_range(
        &self,
        req: mvcc::DeleteRangeRequest,
    ) -> Result<mvcc::DeleteRangeResponse, EtcdError> {
        match self.propose(Op::DeleteRange(req)).await? {
            Applied::DeleteRange(r) => Ok(r),
            a => Err(unexpected("delete_range", a)),
        }
    }

    async fn txn(&self, req: mvcc::TxnRequest) -> Result<mvcc::TxnResponse, EtcdError> {
        let cost = txn_put_bytes(&req);
        if cost > 0 {
            self.check_quota(cost)?;
        }
        match self.propose(Op::Txn(req)).await? {
            Applied::Txn(r) => Ok(r),
            a => Err(unexpected("txn", a)),
        }
    }

    async fn compact(&self, revision: i64, physical: bool) -> Result<i64, EtcdError> {
        let rev = match self.propose(Op::Compact { revision }).await? {
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
}

impl LeaseService for Node {
    fn info(&self) -> ServerInfo {
        KvService::info(self)
    }

    fn revision(&self) -> i64 {
        self.sm.store.revision()
    }

    async fn grant(&self, id: i64, ttl: i64) -> Result<(i64, i64), EtcdError> {
        if ttl > MAX_LEASE_TTL {
            return Err(EtcdError::LeaseTtlTooLarge);
        }
        let ttl = self
            .sm
            .lessor
            .lock()
            .expect("lessor lock")
            .effective_ttl(ttl);
        self.check_quota(RECORD_OVERHEAD)?;
        let id = if id == 0 { self.new_lease_id() } else { id };
        match self.propose(Op::LeaseGrant { id, ttl }).await? {
            Applied::LeaseGrant { id, ttl } => Ok((id, ttl)),
            a => Err(unexpected("lease grant", a)),
        }
    }

    async fn revoke(&self, id: i64) -> Result<i64, EtcdError> {
        match self.propose(Op::LeaseRevoke { id }).await? {
            Applied::LeaseRevoke(rev) => Ok(rev),
            a => Err(unexpected("lease revoke", a)),
        }
    }

    async fn keep_alive(&self, id: i64) -> Result<i64, EtcdError> {
        let r = self
            .sm
            .lessor
            .lock()
            .expect("lessor lock")
            .renew(id, Instant::now());
        match r {
            Ok(ttl) => Ok(ttl),
            Err(RenewError::NotFound) => Err(EtcdError::LeaseNotFound),
            Err(RenewError::NotPrimary) => Err(EtcdError::NotLeader),
        }
    }

    async fn time_to_live(&self, id: i64, keys: bool) -> Result<LeaseTtl, EtcdError> {
        let (ttl, granted_ttl) = self
            .sm
            .lessor
            .lock()
            .expect("lessor lock")
            .remaining(id, Instant::now())
            .ok_or(EtcdError::LeaseNotFound)?;
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

    async fn status(&self) -> Result<NodeStatus, EtcdError> {
        let m = self.raft.metrics().borrow_watched().clone();
        let db_size = self.sm.store.snapshot().size_bytes() as i64;
        Ok(NodeStatus {
            version: ETCD_VERSION.into(),
            db_size,
            db_size_in_use: db_size,
            leader: m.current_leader.unwrap_or(0),
            raft_index: m.last_log_index.unwrap_or(0),
            raft_term: m.current_term,
            raft_applied_index: m.last_applied.map_or(0, |l| l.index),
            is_learner: m.state == ServerState::Learner,
            revision: self.sm.store.revision(),
        })
    }

    async fn alarm(
        &self,
        action: i32,
        member_id: u64,
        alarm: i32,
    ) -> Result<Vec<(u64, i32)>, EtcdError> {
        let nospace = || vec![(self.ids.member_id, ALARM_NOSPACE)];
        match (action, alarm) {
            // GET: the active alarms.
            (0, _) => Ok(if self.nospace.load(Ordering::Relaxed) {
                nospace()
            } else {
                Vec::new()
            }),
            // ACTIVATE NOSPACE on this member: the response lists it.
            (1, ALARM_NOSPACE) if member_id == self.ids.member_id => {
                self.nospace.store(true, Ordering::Relaxed);
                Ok(nospace())
            }
            // DEACTIVATE NOSPACE: the response lists what was cleared.
            (2, ALARM_NOSPACE) if member_id == self.ids.member_id => {
                Ok(if self.nospace.swap(false, Ordering::Relaxed) {
                    nospace()
                } else {
                    Vec::new()
                })
            }
            (1 | 2, _) => Ok(Vec::new()),
            _ => Err(EtcdError::Unknown(format!("unknown alarm action {action}"))),
        }
    }

    async fn members(&self) -> Result<(Vec<MemberInfo>, i64), EtcdError> {
        let m = self.raft.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        let mut out = Vec::new();
        for (id, node) in membership.nodes() {
            let me = *id == self.ids.member_id;
            out.push(MemberInfo {
                id: *id,
                name: if me { self.name.clone() } else { String::new() },
                peer_urls: if me {
                    self.peer_urls.clone()
                } else {
                    vec![node.addr.clone()]
                },
                client_urls: if me {
                    self.client_urls.clone()
                } else {
                    Vec::new()
                },
                is_learner: !voters.contains(id),
            });
        }
        Ok((out, self.sm.store.revision()))
    }
}
