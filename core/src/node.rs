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
    AuthInfo, AuthReply, AuthRequest, AuthService, Authorizer, ClusterService, Credentials,
    EtcdError, KvService, LeaseService, LeaseTtl, MemberChange, MemberInfo, Metrics, NodeStatus,
    ServerInfo, WatchService,
};
use ferrocd_wal::{self as wal, UringFs, Worker};
use openraft::async_runtime::WatchReceiver;
use openraft::{ChangeMembers, ReadPolicy, ServerState, SnapshotPolicy};
use sha1::{Digest, Sha1};
use tokio::sync::Notify;

use crate::auth::{AuthAnswer, AuthOp, Caller, Jwt, Need, Perm, PermKind};
use crate::compactor::Compactor;
use crate::config::ClusterState;
use crate::config::Config;
use crate::leader::{LeaderLink, leader_err, raft_err};
use crate::lessor::{Lessor, MAX_LEASE_TTL, RenewError};
use crate::peer::{PeerService, PeerTls};
use crate::proposer::Proposer;
use crate::raft::{ALARM_NOSPACE, DbSize};
use crate::raft::{
    Applied, KIND_LEASE_RENEW, KIND_LEASE_TTL, KIND_MEMBER_CHANGE, KIND_MEMBERS, KIND_PUBLISH,
    KIND_READ_INDEX, KIND_STATUS, LogStore, Member, Op, PeerNetwork, Raft, SmShared, StateMachine,
};

/// The etcd server version whose API and behaviour ferrocd implements
/// (reported by Status and `/version`).
pub const ETCD_VERSION: &str = "3.5.0";
/// The cluster version `/version` reports.
pub const ETCD_CLUSTER_VERSION: &str = "3.5.0";

/// Revokes the leader proposes per expiry pass.
const REVOKES_PER_PASS: usize = 64;

/// How long [`ClusterService::member_status`] waits for another member.
const MEMBER_STATUS_TIMEOUT: Duration = Duration::from_secs(2);

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

pub(crate) fn url_strings(urls: &[url::Url]) -> Vec<String> {
    urls.iter()
        .map(|u| u.as_str().trim_end_matches('/').to_string())
        .collect()
}

/// Read or create `member/ids` (cluster id and member id, hex, one per
/// line), durably: a restart keeps its ids whatever the flags say, as
/// etcd keeps them in its WAL.
async fn load_or_create_ids(member_dir: &Path, cfg: &Config, tls: &PeerTls) -> anyhow::Result<Ids> {
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
    if cfg.initial_cluster_state == ClusterState::Existing {
        let ids = discover_ids(cfg, tls).await?;
        write_ids(member_dir, ids)?;
        return Ok(ids);
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
    write_ids(member_dir, ids)?;
    Ok(ids)
}

/// Write `member/ids` durably.
pub(crate) fn write_ids(member_dir: &Path, ids: Ids) -> anyhow::Result<()> {
    let path = member_dir.join("ids");
    let tmp = member_dir.join("ids.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "{:016x}\n{:016x}", ids.cluster_id, ids.member_id)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(member_dir)?.sync_all()?;
    Ok(())
}

/// etcd's join (`--initial-cluster-state existing`): ask the other members
/// of `--initial-cluster` for the cluster's membership and find this member
/// (added before with MemberAdd) by its peer URLs.
async fn discover_ids(cfg: &Config, tls: &PeerTls) -> anyhow::Result<Ids> {
    let mine = url_strings(&cfg.initial_advertise_peer_urls);
    let mut last = String::from("no other member in --initial-cluster");
    for _ in 0..30 {
        for urls in cfg.initial_cluster.values() {
            let urls = url_strings(urls);
            if urls == mine {
                continue;
            }
            let probe = Member {
                peer_urls: urls,
                ..Member::default()
            };
            let Some(addr) = probe.peer_addr() else {
                continue;
            };
            let client = ferrocd_net::peer::PeerClient::new(
                addr.clone(),
                ferrocd_net::peer::Hello {
                    cluster_id: 0,
                    from: 0,
                    to: 0,
                },
            )
            .with_tls(probe.peer_tls().then(|| tls.dialer.clone()).flatten());
            let r = client
                .call(KIND_MEMBERS, Vec::new(), Duration::from_secs(2))
                .await;
            match r {
                Ok(bytes) => {
                    let r: Result<(u64, Vec<(u64, Member)>), EtcdError> =
                        crate::raft::decode(&bytes)?;
                    let (cluster_id, members) = r.map_err(|e| anyhow::anyhow!("{addr}: {e}"))?;
                    let me = members.iter().find(|(_, m)| {
                        let mut a = m.peer_urls.clone();
                        let mut b = mine.clone();
                        a.sort();
                        b.sort();
                        a == b
                    });
                    let Some((member_id, _)) = me else {
                        bail!(
                            "the cluster (asked {addr}) has no member with peer URLs {mine:?}: \
                             add it first with `etcdctl member add`"
                        );
                    };
                    return Ok(Ids {
                        cluster_id,
                        member_id: *member_id,
                    });
                }
                Err(e) => last = e.to_string(),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("could not reach the existing cluster: {last}")
}

/// Reads waiting for the next read-index round.
struct ReadBatch {
    in_flight: bool,
    waiting: Vec<tokio::sync::oneshot::Sender<Result<u64, EtcdError>>>,
    /// `ferrocd_server_linearizable_reads_total`.
    reads: prometheus::IntCounter,
    /// `ferrocd_server_read_index_rounds_total`.
    rounds: prometheus::IntCounter,
}

impl ReadBatch {
    fn new(metrics: &Metrics) -> Self {
        let counter = |name: &str, help: &str| {
            let c = prometheus::IntCounter::new(name, help).expect("valid counter");
            let _ = metrics.registry().register(Box::new(c.clone()));
            c
        };
        Self {
            in_flight: false,
            waiting: Vec::new(),
            reads: counter(
                "ferrocd_server_linearizable_reads_total",
                "Linearizable reads (ranges and the like) that waited for a read index.",
            ),
            rounds: counter(
                "ferrocd_server_read_index_rounds_total",
                "Read-index rounds (leadership confirmations) those reads shared.",
            ),
        }
    }
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
    election_timeout: Duration,
    /// Every client write goes through it.
    proposer: Arc<Proposer>,
    /// The way to the leader.
    link: LeaderLink,
    /// Held while a membership change is checked and made.
    member_changes: tokio::sync::Mutex<()>,
    lease_seq: AtomicU64,
    term: AtomicU64,
    leader: AtomicU64,
    stopping: AtomicBool,
    /// Set while this member proposes its NOSPACE alarm (see
    /// `check_quota`), so concurrent writes past the quota propose it once.
    raising_nospace: AtomicBool,
    quota: u64,
    stop: Arc<Notify>,
    /// Linearizable reads waiting for a read-index round.
    reads: Mutex<ReadBatch>,
    /// When the last AppendEntries from a leader arrived (followers).
    last_leader_contact: Mutex<Option<Instant>>,
    /// This node (for tasks it spawns on behalf of `&self` callers).
    me: std::sync::OnceLock<std::sync::Weak<Node>>,
    /// Notified when this member was removed from the cluster.
    removed: Notify,
    /// Set (and `failed_notify` notified) when raft stopped on a fatal
    /// error, e.g. a WAL write that failed on a full disk.
    failed: Mutex<Option<String>>,
    failed_notify: Notify,
    token: String,
    wal_worker: Mutex<Option<Worker<UringFs>>>,
    data_dir: PathBuf,
    metrics: Metrics,
    network: PeerNetwork,
    /// `--auth-token jwt,…`: signed tokens instead of simple ones.
    jwt: Option<Jwt>,
    /// `--bcrypt-cost`.
    bcrypt_cost: u32,
    /// `--client-cert-auth`: a verified client certificate's common name
    /// names the user when no token is given.
    client_cert_auth: bool,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("ids", &self.ids)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A membership change's raft error: `NotLeader` whenever this member does
/// not lead (the callers retry through the leader until their deadline).
fn membership_err(
    e: openraft::errors::RaftError<
        crate::raft::TypeConfig,
        openraft::errors::ClientWriteError<crate::raft::TypeConfig>,
    >,
) -> EtcdError {
    match e.forward_to_leader() {
        Some(_) => EtcdError::NotLeader,
        None => raft_err(e),
    }
}

impl Node {
    /// Open the data dir, recover, start raft and the background loops,
    /// and wait until this member leads (single-member cluster).
    pub async fn start(cfg: &Config, metrics: Metrics) -> anyhow::Result<Arc<Node>> {
        // TLS files first: a bad one stops the start before the data dir
        // is touched.
        let peer_tls = PeerTls::from_config(cfg)?;
        let fs = UringFs;
        crate::datadir::prepare(&cfg.data_dir, cfg.wal_dir.as_deref())?;
        let member_dir = cfg.data_dir.join("member");
        wal::create_dir_all_durable(&fs, &member_dir)
            .with_context(|| format!("creating {}", member_dir.display()))?;
        let ids = load_or_create_ids(&member_dir, cfg, &peer_tls).await?;
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
        let jwt = match cfg.auth_token.split_once(',') {
            Some(("jwt", opts)) => Some(Jwt::from_options(opts).map_err(|e| anyhow::anyhow!(e))?),
            None if cfg.auth_token == "jwt" => {
                bail!("jwt: sign-method is required (--auth-token jwt,sign-method=…)")
            }
            _ => None,
        };
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
            cfg.auth_token_ttl,
        )
        .context("loading the newest snapshot")?;
        let shared = sm.shared();
        shared
            .tokens
            .lock()
            .expect("tokens lock")
            .set_replayed_until(recovered.last_index.unwrap_or(0));

        let raft_config = openraft::Config {
            cluster_name: cfg.initial_cluster_token.clone(),
            heartbeat_interval: heartbeat_ms,
            // openraft makes a follower refuse votes for a "leader lease"
            // of `election_timeout_max` after the last heartbeat, and fires
            // its election timer in [min, max): with etcd's [et, 2·et) the
            // first campaign always lands inside the other followers'
            // lease (2·et) and fails, so fail-over took ≈ 3·et. etcd's own
            // lease is the election timeout itself. A timer in [et/2, et)
            // and a lease of `et` give etcd's behaviour: nobody can win a
            // vote within `et` of hearing from the leader, and a campaign
            // starts at most `et/2` after that (pre-vote keeps the early
            // attempts harmless). Measured in docs/BENCHMARKS.md.
            election_timeout_min: (election_ms / 2).max(heartbeat_ms + 1),
            election_timeout_max: election_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_count.max(1)),
            // etcd keeps 5000 entries behind a snapshot for slow followers.
            max_in_snapshot_log_to_keep: cfg.snapshot_catchup_entries,
            enable_pre_vote: Some(cfg.pre_vote),
            // A restarted leader runs an election like every member (raft's
            // and etcd's rule), never resumes leading in its old term:
            // openraft's default would. A leader may commit an entry that
            // two followers have on disk before its own fdatasync returns;
            // a power cut then takes the entry from the leader's log, and a
            // leader resumed in the same term appends other entries at
            // those indexes with the same term — logs that match by (term,
            // index) but hold different writes, and members that diverge
            // (found by the fault harness's power cut, issue #18). In an
            // election its shorter log loses to the followers'.
            enable_leader_restore: Some(false),
            ..openraft::Config::default()
        };
        let raft_config = Arc::new(raft_config.validate().context("raft settings")?);
        let network = PeerNetwork::new(ids.cluster_id, ids.member_id, peer_tls.dialer.clone());
        let raft = Raft::new(ids.member_id, raft_config, network.clone(), log.clone(), sm)
            .await
            .context("starting raft")?;

        let peer_urls = url_strings(&cfg.initial_advertise_peer_urls);
        let restarted = raft.is_initialized().await.context("raft state")?;
        let mut initial = BTreeMap::new();
        for (name, urls) in &cfg.initial_cluster {
            let urls = url_strings(urls);
            let id = member_id(&urls, &cfg.initial_cluster_token);
            let client_urls = if id == ids.member_id {
                url_strings(&cfg.advertise_client_urls)
            } else {
                Vec::new()
            };
            initial.insert(
                id,
                Member {
                    name: name.clone(),
                    peer_urls: urls,
                    client_urls,
                },
            );
        }

        let leader = LeaderLink::new(
            raft.clone(),
            network.clone(),
            ids.member_id,
            cfg.election_timeout,
        );
        let proposer = Proposer::new(
            raft.clone(),
            leader.clone(),
            ids.member_id,
            cfg.max_request_bytes as usize,
            &metrics,
        );
        let node = Arc::new(Node {
            raft,
            sm: shared,
            log,
            ids,
            name: cfg.name.clone(),
            peer_urls,
            client_urls: url_strings(&cfg.advertise_client_urls),
            election_timeout: cfg.election_timeout,
            proposer,
            link: leader,
            member_changes: tokio::sync::Mutex::new(()),
            lease_seq: AtomicU64::new(0),
            term: AtomicU64::new(0),
            leader: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            raising_nospace: AtomicBool::new(false),
            quota: cfg.quota_backend_bytes,
            stop: Arc::new(Notify::new()),
            reads: Mutex::new(ReadBatch::new(&metrics)),
            last_leader_contact: Mutex::new(None),
            me: std::sync::OnceLock::new(),
            removed: Notify::new(),
            failed: Mutex::new(None),
            failed_notify: Notify::new(),
            token: cfg.initial_cluster_token.clone(),
            wal_worker: Mutex::new(Some(worker)),
            data_dir: cfg.data_dir.clone(),
            metrics,
            network,
            jwt,
            bcrypt_cost: cfg.bcrypt_cost,
            client_cert_auth: cfg.client_tls.client_cert_auth,
        });

        let _ = node.me.set(Arc::downgrade(&node));
        node.metrics.set_quota_backend_bytes(node.quota);
        tokio::spawn(node.clone().track_leadership());
        tokio::spawn(node.clone().expire_leases());
        tokio::spawn(node.clone().sample_gauges());
        tokio::spawn(node.clone().auto_compact(Compactor::new(
            cfg.auto_compaction,
            Instant::now(),
            node.sm.store.revision(),
        )));
        tokio::spawn(
            node.sm
                .watches
                .clone()
                .run_syncer(node.sm.store.clone(), node.stop.clone()),
        );

        // The peer port, before anyone needs this member's vote.
        for u in &cfg.listen_peer_urls {
            let host = u.host_str().context("peer URL without a host")?;
            let port = u.port().context("peer URL without a port")?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let listener = tokio::net::TcpListener::bind((host, port))
                .await
                .with_context(|| format!("listen tcp {host}:{port} (peers): bind"))?;
            let stop = node.stop.clone();
            let tls = (u.scheme() == "https")
                .then(|| peer_tls.server.clone())
                .flatten();
            tokio::spawn(ferrocd_net::peer::serve_peers_tls(
                listener,
                Arc::new(PeerService::new(&node)),
                tls,
                async move { stop.notified().await },
            ));
        }

        if !restarted && cfg.initial_cluster_state == ClusterState::New {
            // Every member of a new cluster initializes with the same
            // membership (the same first log entry everywhere); a joining
            // member waits for the leader to replicate to it.
            node.raft
                .initialize(initial)
                .await
                .context("initializing raft")?;
        } else if node.raft.voter_ids().count() == 1 {
            // A restarted single voter need not wait an election timeout
            // to lead.
            let _ = node.raft.trigger().elect(false).await;
        }
        // Wait for a leader (as long as it takes: etcd too waits for its
        // peers), then until everything committed is applied here.
        loop {
            let waited = node
                .raft
                .wait(Some(Duration::from_secs(5)))
                .metrics(|m| m.current_leader.is_some(), "a leader is known")
                .await;
            if waited.is_ok() {
                break;
            }
            tracing::info!("waiting for a leader (are the other members up?)");
        }
        loop {
            match node.linearize().await {
                Ok(()) => break,
                Err(e) => {
                    tracing::info!(error = %e, "catching up with the leader");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        tokio::spawn(node.clone().publish());
        tracing::info!(
            member_id = %format!("{:016x}", ids.member_id),
            cluster_id = %format!("{:016x}", ids.cluster_id),
            revision = node.sm.store.revision(),
            "ready"
        );
        Ok(node)
    }

    /// Resolves when this member has been removed from the cluster.
    pub async fn removed(&self) {
        self.removed.notified().await
    }

    /// Resolves with the reason when raft stopped on a fatal error (a
    /// failed WAL write or fsync, a failed snapshot install): the member
    /// can no longer serve and must stop, as etcd exits when it cannot
    /// save its raft log. Restart it once the disk is fixed; recovery
    /// keeps everything acknowledged.
    pub async fn failed(&self) -> String {
        loop {
            let notified = self.failed_notify.notified();
            if let Some(why) = self.failed.lock().expect("failed lock").clone() {
                return why;
            }
            notified.await;
        }
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

    async fn track_leadership(self: Arc<Self>) {
        let mut rx = self.raft.metrics();
        let mut was_leader = false;
        let mut seen_self = false;
        loop {
            let (term, leader, is_leader, fatal) = {
                let m = rx.borrow_watched();
                (
                    m.current_term,
                    m.current_leader.unwrap_or(0),
                    m.state == ServerState::Leader,
                    m.running_state.as_ref().err().map(|f| f.to_string()),
                )
            };
            if let Some(why) = fatal {
                tracing::error!(error = %why, "raft stopped on a fatal error; stopping the member");
                *self.failed.lock().expect("failed lock") = Some(why);
                self.failed_notify.notify_waiters();
                return;
            }
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
            // The committed membership, as applied here (the one in raft's
            // metrics may still be an uncommitted joint config).
            let in_cluster = self.sm.applied_membership_has(self.ids.member_id);
            // Only a member that was in the membership can be removed from
            // it (a new or joining member starts outside it).
            seen_self |= in_cluster;
            if seen_self && !in_cluster {
                // etcd: "the member has been permanently removed from the
                // cluster" — it stops; its data dir is not reusable.
                tracing::error!(
                    "the member has been permanently removed from the cluster; stopping"
                );
                // Let answers in flight (e.g. the MemberRemove that removed
                // this leader) go out first.
                tokio::time::sleep(Duration::from_secs(1)).await;
                self.removed.notify_waiters();
                self.removed.notify_one();
                return;
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
                    match node
                        .proposer
                        .propose(Op::LeaseRevoke { id }, Caller::Internal)
                        .await
                    {
                        Ok(_) | Err(EtcdError::LeaseNotFound) => {}
                        Err(e) => tracing::warn!(lease = id, error = %e, "revoking expired lease"),
                    }
                });
            }
        }
    }

    /// etcd's compactor (see `compactor.rs`): every member samples, the
    /// leader compacts through raft.
    async fn auto_compact(self: Arc<Self>, mut c: Compactor) {
        let Some(every) = c.poll_interval() else {
            return;
        };
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.stop.notified() => return,
            }
            let leader = self.raft.is_leader();
            let Some(rev) = c.tick(Instant::now(), self.sm.store.revision(), leader) else {
                continue;
            };
            tracing::info!(revision = rev, "starting auto compaction");
            let ok = match self
                .proposer
                .propose(Op::Compact { revision: rev }, Caller::Internal)
                .await
            {
                Ok(_) => {
                    tracing::info!(revision = rev, "completed auto compaction");
                    true
                }
                Err(EtcdError::Compacted) => true,
                Err(e) => {
                    tracing::warn!(revision = rev, error = %e, "failed auto compaction");
                    false
                }
            };
            c.done(Instant::now(), ok);
        }
    }

    /// Gauges that are cheaper to sample than to track: every second.
    async fn sample_gauges(self: Arc<Self>) {
        loop {
            let view = self.sm.store.snapshot();
            let size = self.sm.db_size();
            self.metrics.set_db_size(size.total);
            self.metrics.set_db_size_in_use(size.in_use);
            self.metrics.set_keys(view.key_count() as u64);
            self.metrics.set_watchers(self.sm.watches.len() as u64);
            drop(view);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = self.stop.notified() => return,
            }
        }
    }

    /// `/health`: healthy while a leader is known and alive (etcd answers
    /// `RAFT NO LEADER` otherwise) and the node is not stopping.
    pub fn health(&self) -> Result<(), String> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err("STOPPING".into());
        }
        if !self.leader_alive() {
            return Err("RAFT NO LEADER".into());
        }
        Ok(())
    }

    /// A leader heard from within the election timeout (etcd forgets its
    /// leader when it starts to campaign, one election timeout after the
    /// last message): on a follower, the last AppendEntries (heartbeats
    /// included); on the leader, the last quorum acknowledgement.
    pub(crate) fn leader_alive(&self) -> bool {
        let leader = self.leader.load(Ordering::Relaxed);
        if leader == 0 {
            return false;
        }
        let et = self.election_timeout;
        if leader == self.ids.member_id {
            if self.raft.voter_ids().count() <= 1 {
                return true;
            }
            let m = self.raft.metrics();
            let acked = m.borrow_watched().last_quorum_acked;
            return acked.is_none_or(|t| openraft::Instant::elapsed(&*t) < et);
        }
        self.last_leader_contact
            .lock()
            .expect("contact lock")
            .is_some_and(|t| t.elapsed() < et)
    }

    /// The peer service saw an AppendEntries from the leader.
    pub(crate) fn note_leader_contact(&self) {
        *self.last_leader_contact.lock().expect("contact lock") = Some(Instant::now());
    }

    /// etcd's backend quota (`quota.go`, `quotaAlarmer`): a write whose
    /// cost would take the backend (`dbSize`, not the bytes in use: see
    /// DESIGN.md, "Space") to `--quota-backend-bytes` raises the NOSPACE
    /// alarm for this member through raft and is refused with
    /// `etcdserver: mvcc: database space exceeded`. While any NOSPACE
    /// alarm is raised the apply loop refuses every write that adds data
    /// on every member (etcd's capped applier); reads, deletes,
    /// compactions, lease revokes and Defragment still go through. Clear
    /// it with `etcdctl alarm disarm` after compacting and defragmenting.
    async fn check_quota(&self, cost: usize) -> Result<(), EtcdError> {
        let size = self.sm.db_size().total;
        if size + (cost as u64) < self.quota {
            return Ok(());
        }
        if !self.sm.has_alarm(self.ids.member_id, ALARM_NOSPACE)
            && !self.raising_nospace.swap(true, Ordering::SeqCst)
        {
            tracing::warn!(
                quota = self.quota,
                db_size = size,
                cost,
                "database space exceeded; raising the NOSPACE alarm"
            );
            // Boxed: this rare path would otherwise make every write's
            // future hold a second proposal.
            let r = Box::pin(self.proposer.propose(
                Op::Alarm {
                    activate: true,
                    member_id: self.ids.member_id,
                    alarm: ALARM_NOSPACE,
                },
                Caller::Internal,
            ))
            .await;
            self.raising_nospace.store(false, Ordering::SeqCst);
            if let Err(e) = r {
                tracing::warn!(error = %e, "raising the NOSPACE alarm failed");
            }
        }
        Err(EtcdError::NoSpace)
    }

    /// etcd's Defragment, on this member: finish any pending physical
    /// compaction, then write a fresh snapshot of the store (only live
    /// records), which becomes the backend's base: `dbSize` drops to its
    /// size, older snapshot files beyond `--max-snapshots` are purged and
    /// openraft purges the log behind it (keeping
    /// `--snapshot-catchup-entries` for slow followers).
    async fn defragment_here(&self) -> Result<(), EtcdError> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err(EtcdError::Stopped);
        }
        self.metrics.set_defrag_inflight(true);
        let r = self.defragment_steps().await;
        self.metrics.set_defrag_inflight(false);
        r
    }

    async fn defragment_steps(&self) -> Result<(), EtcdError> {
        let t = Instant::now();
        let before = self.sm.db_size();
        let sm = self.sm.clone();
        tokio::task::spawn_blocking(move || sm.finish_compaction())
            .await
            .map_err(raft_err)?;
        // A snapshot whose store view is taken from now on has no
        // compacted records; one openraft was already building when we
        // asked may predate the compaction, and then we ask again.
        let want = self.sm.snapshot_views() + 1;
        let deadline = Instant::now() + Duration::from_secs(600);
        while self.sm.snapshot_saved() < want {
            let saved = self.sm.snapshot_saved();
            self.raft.trigger().snapshot().await.map_err(raft_err)?;
            while self.sm.snapshot_saved() == saved {
                if Instant::now() >= deadline {
                    return Err(EtcdError::Timeout);
                }
                if self.stopping.load(Ordering::Relaxed) {
                    return Err(EtcdError::Stopped);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let after = self.sm.db_size();
        tracing::info!(
            db_size_before = before.total,
            db_size_after = after.total,
            in_use = after.in_use,
            ms = t.elapsed().as_millis() as u64,
            "defragmented"
        );
        Ok(())
    }

    /// The raft handle (peer service).
    pub(crate) fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The state machine's shared state (peer service).
    pub(crate) fn state_machine(&self) -> Arc<SmShared> {
        self.sm.clone()
    }

    /// How long a request waits for a leader before failing.
    fn request_timeout(&self) -> Duration {
        self.link.request_timeout()
    }

    /// The proposer (peer service: forwarded writes).
    pub(crate) fn proposer(&self) -> &Arc<Proposer> {
        &self.proposer
    }

    /// A read index on this member, which must lead: the log index a
    /// linearizable read must see applied.
    pub(crate) async fn read_index_here(&self) -> Result<u64, EtcdError> {
        self.raft
            .ensure_linearizable(ReadPolicy::ReadIndex)
            .await
            .map(|r| r.index())
            .map_err(leader_err)
    }

    /// One read-index round: the leader confirms its leadership (no log
    /// entry) and names the log index reads must see applied.
    async fn read_index_round(&self) -> Result<u64, EtcdError> {
        if self.raft.is_leader() {
            match self.read_index_here().await {
                Err(EtcdError::NotLeader) | Err(EtcdError::NoLeader) => {}
                r => return r,
            }
        }
        match self.link.call(KIND_READ_INDEX, &()).await {
            Err(EtcdError::LeaderChanged) => self.read_index_here().await,
            r => r,
        }
    }

    /// Wait until a linearizable read may be served here. Reads that
    /// arrive together share one read-index round (etcd's batching): a
    /// round serves every read that was waiting when it started; reads
    /// that arrive while it is in flight wait for the next one (the index
    /// must be taken after the read arrived).
    async fn linearize(&self) -> Result<(), EtcdError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let start = {
            let mut b = self.reads.lock().expect("reads lock");
            b.reads.inc();
            b.waiting.push(tx);
            !std::mem::replace(&mut b.in_flight, true)
        };
        if start {
            let node = self
                .me
                .get()
                .and_then(std::sync::Weak::upgrade)
                .ok_or(EtcdError::Stopped)?;
            tokio::spawn(async move {
                loop {
                    let batch = {
                        let mut b = node.reads.lock().expect("reads lock");
                        b.rounds.inc();
                        std::mem::take(&mut b.waiting)
                    };
                    let r = node.read_index_round().await;
                    for w in batch {
                        let _ = w.send(r.clone());
                    }
                    let mut b = node.reads.lock().expect("reads lock");
                    if b.waiting.is_empty() {
                        b.in_flight = false;
                        return;
                    }
                }
            });
        }
        let index = rx.await.map_err(|_| EtcdError::Stopped)??;
        self.raft
            .wait(Some(self.request_timeout()))
            .applied_index_at_least(Some(index), "read index applied")
            .await
            .map(|_| ())
            .map_err(|_| EtcdError::Timeout)
    }

    /// A keep-alive on this member's lessor (it must lead).
    pub(crate) fn renew_here(&self, id: i64) -> Result<i64, EtcdError> {
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

    /// (remaining, granted) TTL from this member's lessor.
    pub(crate) fn lease_ttl_here(&self, id: i64) -> Result<(i64, i64), EtcdError> {
        self.sm
            .lessor
            .lock()
            .expect("lessor lock")
            .remaining(id, Instant::now())
            .ok_or(EtcdError::LeaseNotFound)
    }

    /// Record member `id`'s attributes in the membership (this member
    /// must lead).
    pub(crate) async fn publish_here(&self, id: u64, m: Member) -> Result<(), EtcdError> {
        let mut nodes = BTreeMap::new();
        nodes.insert(id, m);
        self.change_membership_serial(ChangeMembers::SetNodes(nodes))
            .await
            .map(|_| ())
            .map_err(membership_err)
    }

    /// The members as the wire lists them, from `membership` (or the
    /// current one).
    fn member_infos(
        &self,
        membership: Option<&openraft::Membership<u64, Member>>,
    ) -> Vec<MemberInfo> {
        let current;
        let membership = match membership {
            Some(m) => m,
            None => {
                let m = self.raft.metrics();
                current = m.borrow_watched().membership_config.membership().clone();
                &current
            }
        };
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(id, node)| MemberInfo {
                id: *id,
                name: node.name.clone(),
                peer_urls: node.peer_urls.clone(),
                client_urls: node.client_urls.clone(),
                is_learner: !voters.contains(id),
            })
            .collect()
    }

    /// `change_membership`, waiting out a change already in progress
    /// (openraft allows one at a time; etcd's requests queue behind each
    /// other) up to the request timeout.
    async fn change_membership_serial(
        &self,
        change: ChangeMembers<u64, Member>,
    ) -> Result<
        openraft::raft::ClientWriteResponse<crate::raft::TypeConfig>,
        openraft::errors::RaftError<
            crate::raft::TypeConfig,
            openraft::errors::ClientWriteError<crate::raft::TypeConfig>,
        >,
    > {
        use openraft::errors::{ChangeMembershipError, ClientWriteError};
        let deadline = Instant::now() + self.request_timeout();
        loop {
            let r = self.raft.change_membership(change.clone(), false).await;
            let busy = matches!(
                r.as_ref().err().and_then(|e| e.api_error()),
                Some(ClientWriteError::ChangeMembershipError(
                    ChangeMembershipError::InProgress(_)
                ))
            );
            if !busy || Instant::now() >= deadline {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// (cluster id, members) for a joining member.
    pub(crate) fn membership_for_discovery(&self) -> (u64, Vec<(u64, Member)>) {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        let members = m
            .membership_config
            .membership()
            .nodes()
            .map(|(id, n)| (*id, n.clone()))
            .collect();
        (self.ids.cluster_id, members)
    }

    /// A membership change on this member, which must lead (etcd's
    /// `cluster.go` checks: unknown member, peer URLs in use, promoting a
    /// voter or a learner that is behind).
    pub(crate) async fn change_members_here(
        &self,
        change: MemberChange,
    ) -> Result<(Option<MemberInfo>, Vec<MemberInfo>, i64), EtcdError> {
        if !self.raft.is_leader() {
            return Err(EtcdError::NotLeader);
        }
        // One change at a time, checked against the membership as the
        // changes before it left it: a MemberAdd resent after an unknown
        // outcome (the forward broke, the leader changed) then finds its
        // first copy's peer URLs and answers etcd's "Peer URLs already
        // exists" instead of adding a second member; a resent remove or
        // promote answers "member not found" / "can only promote a
        // learner member", as etcd answers a client that resends them.
        let _serial = self.member_changes.lock().await;
        let (replication, last_index) = {
            let m = self.raft.metrics();
            let m = m.borrow_watched();
            (
                m.replication.clone().unwrap_or_default(),
                m.last_log_index.unwrap_or(0),
            )
        };
        // The raft state's own effective membership (the latest in the
        // log, committed or not), not the metrics, which trail it.
        let membership = self
            .raft
            .with_raft_state(|st| st.membership_state.effective().membership().clone())
            .await
            .map_err(raft_err)?;
        let known = |id: u64| {
            membership
                .get_node(&id)
                .cloned()
                .ok_or(EtcdError::MemberNotFound)
        };
        let is_voter = |id: u64| membership.voter_ids().any(|v| v == id);
        let mut added = None;
        let resp = match change {
            MemberChange::Add { peer_urls, learner } => {
                let urls: Vec<String> = peer_urls
                    .iter()
                    .map(|u| {
                        url::Url::parse(u)
                            .map(|u| u.as_str().trim_end_matches('/').to_string())
                            .map_err(|_| EtcdError::MemberBadUrls)
                    })
                    .collect::<Result<_, _>>()?;
                if urls.is_empty() {
                    return Err(EtcdError::MemberBadUrls);
                }
                if membership
                    .nodes()
                    .any(|(_, n)| n.peer_urls.iter().any(|u| urls.contains(u)))
                {
                    return Err(EtcdError::PeerUrlExist);
                }
                // etcd mixes the time in, so a re-added member gets a new id.
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let id = member_id(&urls, &format!("{}{now}", self.token));
                let member = Member {
                    name: String::new(),
                    peer_urls: urls.clone(),
                    client_urls: Vec::new(),
                };
                let mut nodes = BTreeMap::new();
                nodes.insert(id, member);
                let mut r = self
                    .change_membership_serial(ChangeMembers::AddNodes(nodes))
                    .await
                    .map_err(membership_err)?;
                if !learner {
                    r = self
                        .change_membership_serial(ChangeMembers::AddVoterIds(
                            [id].into_iter().collect(),
                        ))
                        .await
                        .map_err(membership_err)?;
                }
                added = Some(MemberInfo {
                    id,
                    name: String::new(),
                    peer_urls: urls,
                    client_urls: Vec::new(),
                    is_learner: learner,
                });
                r
            }
            MemberChange::Remove { id } => {
                known(id)?;
                let c = if is_voter(id) {
                    ChangeMembers::RemoveVoters([id].into_iter().collect())
                } else {
                    ChangeMembers::RemoveNodes([id].into_iter().collect())
                };
                self.change_membership_serial(c)
                    .await
                    .map_err(membership_err)?
            }
            MemberChange::Update { id, peer_urls } => {
                let mut m = known(id)?;
                m.peer_urls = peer_urls;
                let mut nodes = BTreeMap::new();
                nodes.insert(id, m);
                self.change_membership_serial(ChangeMembers::SetNodes(nodes))
                    .await
                    .map_err(membership_err)?
            }
            MemberChange::Promote { id } => {
                known(id)?;
                if is_voter(id) {
                    return Err(EtcdError::MemberNotLearner);
                }
                // etcd: the learner's log must be within 90% of the leader's.
                let matched = replication
                    .get(&id)
                    .cloned()
                    .flatten()
                    .map_or(0, |l| l.index);
                if (matched as f64) < 0.9 * last_index as f64 {
                    return Err(EtcdError::LearnerNotReady);
                }
                self.change_membership_serial(ChangeMembers::AddVoterIds(
                    [id].into_iter().collect(),
                ))
                .await
                .map_err(membership_err)?
            }
        };
        let members = self.member_infos(resp.membership.as_ref());
        Ok((added, members, self.sm.store.revision()))
    }

    /// etcd's publish: make this member's name and client URLs part of
    /// the replicated membership, retrying until it sticks.
    async fn publish(self: Arc<Self>) {
        let me = Member {
            name: self.name.clone(),
            peer_urls: self.peer_urls.clone(),
            client_urls: self.client_urls.clone(),
        };
        loop {
            let current = {
                let m = self.raft.metrics();
                let m = m.borrow_watched();
                m.membership_config
                    .membership()
                    .get_node(&self.ids.member_id)
                    .cloned()
            };
            if current.as_ref() == Some(&me) {
                return;
            }
            let r = if self.raft.is_leader() {
                self.publish_here(self.ids.member_id, me.clone()).await
            } else {
                self.link.call(KIND_PUBLISH, &me).await
            };
            match r {
                Ok(()) => {
                    tracing::info!(name = %me.name, "published member attributes");
                    return;
                }
                Err(e) => tracing::debug!(error = %e, "publishing member attributes; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = self.stop.notified() => return,
            }
        }
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

/// What etcd's quota charges a put besides its key and value
/// (`kvOverhead` in etcd 3.5's `quota.go`).
const RECORD_OVERHEAD: usize = 256;
/// What etcd's quota charges a lease grant (`leaseOverhead`).
const LEASE_OVERHEAD: usize = 64;

/// What etcd's quota charges a txn (`costTxn`): the larger of its two
/// branches, each the sum of its puts' costs; 0 when it has no put (such
/// a txn is never refused for space). etcd charges a nested txn nothing,
/// which lets its puts past a full backend; ferrocd charges it its own
/// cost (and the capped apply refuses it too).
fn txn_put_bytes(t: &mvcc::TxnRequest) -> usize {
    let branch = |ops: &[mvcc::RequestOp]| -> usize {
        ops.iter()
            .map(|op| match op {
                mvcc::RequestOp::Put(p) => p.key.len() + p.value.len() + RECORD_OVERHEAD,
                mvcc::RequestOp::Txn(t) => txn_put_bytes(t),
                _ => 0,
            })
            .sum()
    };
    branch(&t.success).max(branch(&t.failure))
}

fn unexpected(what: &str, a: Applied) -> EtcdError {
    EtcdError::Unknown(format!("internal: {what} applied as {a:?}"))
}

impl Node {
    /// etcd's `doSerialize` tail: a read served for a user whose
    /// credentials predate an auth change that landed meanwhile fails
    /// with `revision of auth store is old` (the client re-authenticates).
    fn still_current(&self, caller: &Caller) -> Result<(), EtcdError> {
        // Only a user has credentials that can go stale (auth off: every
        // caller is anonymous, and the store is not even looked at).
        let Caller::User { revision, .. } = caller else {
            return Ok(());
        };
        let auth = self.sm.auth.load();
        if auth.enabled && *revision != 0 && *revision != auth.revision {
            return Err(EtcdError::AuthOldRevision);
        }
        Ok(())
    }

    /// The user of a simple token, once this member has applied the
    /// entry that assigned it (a token is `<prefix>.<raft index>`; a
    /// client may ask a follower that has not applied it yet).
    async fn simple_token_user(&self, token: &str) -> Option<String> {
        let index = crate::auth::simple_token_index(token)?;
        let applied = self.sm.applied_log_id().map_or(0, |l| l.index());
        if index > applied {
            self.raft
                .wait(Some(self.request_timeout()))
                .applied_index_at_least(Some(index), "auth token applied")
                .await
                .ok()?;
        }
        self.sm
            .tokens
            .lock()
            .expect("tokens lock")
            .lookup(token, Instant::now())
    }

    /// A password's bcrypt hash (on a blocking thread: it is slow on
    /// purpose), or the client's own hash (base64, as etcd takes it).
    async fn hash_password(&self, password: String, hashed: String) -> Result<Vec<u8>, EtcdError> {
        if !hashed.is_empty() {
            use base64::Engine as _;
            return base64::engine::general_purpose::STANDARD
                .decode(hashed)
                .map_err(|_| EtcdError::Unknown("auth: invalid hashed password".into()));
        }
        let cost = self.bcrypt_cost;
        tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
            .await
            .map_err(raft_err)?
            .map(String::into_bytes)
            .map_err(raft_err)
    }

    /// etcd's Authenticate: check the password against the store as of a
    /// linearizable read, then replicate the token assignment; retried
    /// when the auth store changed in between.
    async fn authenticate(
        &self,
        name: String,
        password: String,
    ) -> Result<(AuthReply, i64), EtcdError> {
        for _ in 0..5 {
            self.linearize().await?;
            let st = self.sm.auth.load_full();
            if !st.enabled {
                return Err(EtcdError::AuthNotEnabled);
            }
            let hash = match st.users.get(&name) {
                Some(u) if !u.no_password => String::from_utf8_lossy(&u.password).into_owned(),
                _ => return Err(EtcdError::AuthFailed),
            };
            let pw = password.clone();
            let user = name.clone();
            let ok = tokio::task::spawn_blocking(move || {
                bcrypt::verify(pw, &hash).unwrap_or_else(|e| {
                    // A stored hash bcrypt cannot read (e.g. restored from
                    // a foreign file): no password matches it.
                    tracing::warn!(%user, error = %e, "unreadable password hash");
                    false
                })
            })
            .await
            .map_err(raft_err)?;
            if !ok {
                tracing::info!(user = %name, "invalid password");
                return Err(EtcdError::AuthFailed);
            }
            let prefix = self.jwt.is_none().then(crate::auth::simple_token_prefix);
            let op = AuthOp::Authenticate {
                name: name.clone(),
                prefix,
                checked_revision: st.revision,
            };
            match self.proposer.propose(Op::Auth(op), Caller::Anonymous).await {
                Ok(Applied::Auth(
                    AuthAnswer::Authenticated {
                        name,
                        revision,
                        token,
                    },
                    rev,
                )) => {
                    let token = match (&self.jwt, token) {
                        (Some(jwt), _) => jwt.sign(&name, revision).map_err(EtcdError::Unknown)?,
                        (None, Some(t)) => t,
                        (None, None) => {
                            return Err(EtcdError::Unknown("internal: no token assigned".into()));
                        }
                    };
                    return Ok((AuthReply::Token(token), rev));
                }
                Ok(a) => return Err(unexpected("authenticate", a)),
                Err(EtcdError::AuthOldRevision) => {
                    tracing::info!(user = %name, "auth store changed while checking a password; retrying");
                }
                Err(e) => return Err(e),
            }
        }
        Err(EtcdError::AuthOldRevision)
    }
}

impl Authorizer for Node {
    async fn authorize(&self, cred: Credentials) -> Result<Option<AuthInfo>, EtcdError> {
        let (enabled, revision) = {
            let auth = self.sm.auth.load();
            (auth.enabled, auth.revision)
        };
        if !enabled {
            return Ok(None);
        }
        if let Some(token) = cred.token {
            let user = match &self.jwt {
                Some(jwt) => jwt
                    .verify(&token)
                    .map(|(user, revision)| AuthInfo { user, revision }),
                None => self
                    .simple_token_user(&token)
                    .await
                    .map(|user| AuthInfo { user, revision }),
            };
            return match user {
                Some(u) => Ok(Some(u)),
                None => {
                    tracing::warn!("invalid auth token");
                    Err(EtcdError::InvalidAuthToken)
                }
            };
        }
        if self.client_cert_auth
            && let Some(user) = cred.common_name
        {
            return Ok(Some(AuthInfo { user, revision }));
        }
        Ok(None)
    }
}

fn permission(p: Perm) -> ferrocd_net::pb::authpb::Permission {
    ferrocd_net::pb::authpb::Permission {
        perm_type: p.kind.to_i32(),
        key: p.key,
        range_end: p.range_end,
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
        let op = match req {
            AuthRequest::Authenticate { name, password } => {
                return self.authenticate(name, password).await;
            }
            AuthRequest::Enable => AuthOp::Enable,
            AuthRequest::Disable => AuthOp::Disable,
            AuthRequest::Status => AuthOp::Status,
            AuthRequest::UserAdd {
                name,
                password,
                hashed_password,
                no_password,
            } => {
                let password = if no_password {
                    Vec::new()
                } else {
                    self.hash_password(password, hashed_password).await?
                };
                AuthOp::UserAdd {
                    name,
                    password,
                    no_password,
                }
            }
            AuthRequest::UserGet { name } => AuthOp::UserGet { name },
            AuthRequest::UserList => AuthOp::UserList,
            AuthRequest::UserDelete { name } => AuthOp::UserDelete { name },
            AuthRequest::UserChangePassword {
                name,
                password,
                hashed_password,
            } => {
                let password = self.hash_password(password, hashed_password).await?;
                AuthOp::UserChangePassword { name, password }
            }
            AuthRequest::UserGrantRole { user, role } => AuthOp::UserGrantRole { user, role },
            AuthRequest::UserRevokeRole { name, role } => AuthOp::UserRevokeRole { name, role },
            AuthRequest::RoleAdd { name } => AuthOp::RoleAdd { name },
            AuthRequest::RoleGet { role } => AuthOp::RoleGet { role },
            AuthRequest::RoleList => AuthOp::RoleList,
            AuthRequest::RoleDelete { role } => AuthOp::RoleDelete { role },
            AuthRequest::RoleGrantPermission { name, perm } => {
                let perm = match perm {
                    None => None,
                    Some(p) => Some(Perm {
                        kind: PermKind::from_i32(p.perm_type).ok_or(EtcdError::InvalidAuthMgmt)?,
                        key: p.key,
                        range_end: p.range_end,
                    }),
                };
                AuthOp::RoleGrantPermission { name, perm }
            }
            AuthRequest::RoleRevokePermission {
                role,
                key,
                range_end,
            } => AuthOp::RoleRevokePermission {
                role,
                key,
                range_end,
            },
        };
        let what = op.name();
        match self
            .proposer
            .propose(Op::Auth(op), Caller::from_info(who))
            .await?
        {
            Applied::Auth(answer, rev) => {
                let reply = match answer {
                    AuthAnswer::Done | AuthAnswer::Authenticated { .. } => AuthReply::Done,
                    AuthAnswer::Status { enabled, revision } => {
                        AuthReply::Status { enabled, revision }
                    }
                    AuthAnswer::Names(n) => AuthReply::Names(n),
                    AuthAnswer::Perms(p) => {
                        AuthReply::Perms(p.into_iter().map(permission).collect())
                    }
                };
                tracing::info!(op = what, "auth store request applied");
                Ok((reply, rev))
            }
            a => Err(unexpected(what, a)),
        }
    }
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
        who: Option<AuthInfo>,
        req: mvcc::RangeRequest,
        serializable: bool,
    ) -> Result<mvcc::RangeResponse, EtcdError> {
        if !serializable {
            self.linearize().await?;
        }
        let caller = Caller::from_info(who);
        self.sm
            .auth
            .load()
            .check(&caller, &req.key, &req.range_end, Need::Read)?;
        let view = self.sm.store.snapshot();
        let r = view.range(&req).map_err(EtcdError::from)?.to_response();
        self.still_current(&caller)?;
        Ok(r)
    }

    async fn put(
        &self,
        who: Option<AuthInfo>,
        req: mvcc::PutRequest,
    ) -> Result<mvcc::PutResponse, EtcdError> {
        self.check_quota(req.key.len() + req.value.len() + RECORD_OVERHEAD)
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
            self.check_quota(cost).await?;
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
        self.leader_alive()
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
        self.check_quota(LEASE_OVERHEAD).await?;
        let id = if id == 0 { self.new_lease_id() } else { id };
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
        let deadline = Instant::now() + self.request_timeout();
        loop {
            let r = match self.renew_here(id) {
                Err(EtcdError::NotLeader) => self.link.call(KIND_LEASE_RENEW, &id).await,
                r => r,
            };
            match r {
                Err(EtcdError::LeaderChanged) | Err(EtcdError::NotLeader)
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                r => return r,
            }
        }
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
        let deadline = Instant::now() + self.request_timeout();
        let (ttl, granted_ttl) = loop {
            let primary = self.sm.lessor.lock().expect("lessor lock").is_primary();
            let r = if primary {
                self.lease_ttl_here(id)
            } else {
                self.link.call(KIND_LEASE_TTL, &id).await
            };
            match r {
                Err(EtcdError::LeaderChanged) | Err(EtcdError::NotLeader)
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                r => break r?,
            }
        };
        if keys {
            self.still_current(&caller)?;
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
        let m = self.raft.metrics().borrow_watched().clone();
        let DbSize { total, in_use } = self.sm.db_size();
        // etcd lists every raised alarm as its protobuf text form.
        let errors = self
            .sm
            .alarms(0)
            .into_iter()
            .map(|(member, alarm)| {
                format!(
                    "memberID:{member} alarm:{} ",
                    crate::raft::alarm_name(alarm)
                )
            })
            .collect();
        Ok(NodeStatus {
            version: ETCD_VERSION.into(),
            db_size: total as i64,
            db_size_in_use: in_use as i64,
            errors,
            leader: m.current_leader.unwrap_or(0),
            raft_index: m.last_log_index.unwrap_or(0),
            raft_term: m.current_term,
            raft_applied_index: m.last_applied.map_or(0, |l| l.index),
            is_learner: m.state == ServerState::Learner,
            revision: self.sm.store.revision(),
        })
    }

    async fn member_status(&self, id: u64) -> Result<NodeStatus, EtcdError> {
        if id == self.ids.member_id {
            return self.status().await;
        }
        let member = {
            let m = self.raft.metrics();
            let m = m.borrow_watched();
            m.membership_config.membership().get_node(&id).cloned()
        };
        let member = member.ok_or(EtcdError::MemberNotFound)?;
        let client = self.network.client(id, &member);
        match client
            .call(KIND_STATUS, Vec::new(), MEMBER_STATUS_TIMEOUT)
            .await
        {
            Ok(bytes) => crate::leader::peer_answer(&bytes),
            Err(ferrocd_net::peer::PeerError::Remote(m)) => Err(EtcdError::from_message(&m)),
            Err(e) => Err(EtcdError::Unknown(format!("member {id:x}: {e}"))),
        }
    }

    async fn alarm(
        &self,
        action: i32,
        member_id: u64,
        alarm: i32,
    ) -> Result<Vec<(u64, i32)>, EtcdError> {
        match action {
            // GET: the raised alarms (of type `alarm`, all for NONE), as
            // of a linearizable read (etcd sends GET through raft).
            0 => {
                self.linearize().await?;
                Ok(self.sm.alarms(alarm))
            }
            // ACTIVATE / DEACTIVATE: replicated; the response lists what
            // was raised or cleared.
            1 | 2 => {
                let op = Op::Alarm {
                    activate: action == 1,
                    member_id,
                    alarm,
                };
                // etcd checks no permission for alarms (the shim has
                // checked the token, if any).
                match self.proposer.propose(op, Caller::Anonymous).await? {
                    Applied::Alarm(list) => Ok(list),
                    a => Err(unexpected("alarm", a)),
                }
            }
            _ => Err(EtcdError::Unknown(format!("unknown alarm action {action}"))),
        }
    }

    async fn defragment(&self) -> Result<(), EtcdError> {
        self.defragment_here().await
    }

    async fn hash_kv(&self, revision: i64) -> Result<(u32, i64, i64, i64), EtcdError> {
        let view = self.sm.store.snapshot();
        let h = view.hash_kv(revision).map_err(EtcdError::from)?;
        let hashed = if revision > 0 { revision } else { h.revision };
        Ok((h.hash, h.compact_revision, hashed, h.revision))
    }

    async fn move_leader(&self, target: u64) -> Result<i64, EtcdError> {
        if !self.raft.is_leader() {
            return Err(EtcdError::NotLeader);
        }
        if !self.raft.voter_ids().any(|v| v == target) {
            return Err(EtcdError::BadLeaderTransferee);
        }
        if target != self.ids.member_id {
            self.raft
                .trigger()
                .transfer_leader(target)
                .await
                .map_err(raft_err)?;
            // etcd waits up to its request timeout for the transfer.
            self.raft
                .wait(Some(self.request_timeout()))
                .current_leader(target, "leadership transferred")
                .await
                .map_err(|_| EtcdError::Timeout)?;
        }
        Ok(self.sm.store.revision())
    }

    async fn change_members(
        &self,
        change: MemberChange,
    ) -> Result<(Option<MemberInfo>, Vec<MemberInfo>, i64), EtcdError> {
        let deadline = Instant::now() + self.request_timeout();
        loop {
            if self.raft.is_leader() {
                match self.change_members_here(change.clone()).await {
                    Err(EtcdError::NotLeader) => {}
                    r => return r,
                }
            }
            match self.link.call(KIND_MEMBER_CHANGE, &change).await {
                // Leadership moved (e.g. the leader was just removed).
                Err(EtcdError::LeaderChanged) | Err(EtcdError::NotLeader)
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                r => return r,
            }
        }
    }

    async fn members(&self) -> Result<(Vec<MemberInfo>, i64), EtcdError> {
        Ok((self.member_infos(None), self.sm.store.revision()))
    }

    async fn snapshot(&self) -> Result<(std::fs::File, u64), EtcdError> {
        let (view, extra) = self.backend_state().await?;
        let dir = self.data_dir.join("member");
        let name = format!(
            "snapshot-export.{}.{:x}.tmp",
            std::process::id(),
            rand::random::<u64>()
        );
        let t = Instant::now();
        let revision = view.revision();
        let r = tokio::task::spawn_blocking(move || -> std::io::Result<(std::fs::File, u64)> {
            // Unlinked at once: the open file lives until the stream ends,
            // and a crash leaves nothing behind.
            let path = dir.join(name);
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)?;
            std::fs::remove_file(&path)?;
            let w = std::io::BufWriter::with_capacity(1 << 20, f);
            let (w, size) = crate::backend::write(&view, &extra, w)?;
            let f = w.into_inner().map_err(|e| e.into_error())?;
            Ok((f, size))
        })
        .await
        .map_err(|e| EtcdError::Unknown(e.to_string()))?;
        let (f, size) = r.map_err(|e| EtcdError::Unknown(format!("snapshot: {e}")))?;
        tracing::info!(
            revision,
            bytes = size,
            ms = t.elapsed().as_millis() as u64,
            "sending database snapshot"
        );
        Ok((f, size))
    }

    async fn hash(&self) -> Result<(u32, i64), EtcdError> {
        let (view, extra) = self.backend_state().await?;
        let rev = view.revision();
        let h = tokio::task::spawn_blocking(move || crate::backend::hash(&view, &extra))
            .await
            .map_err(|e| EtcdError::Unknown(e.to_string()))?;
        Ok((h, rev))
    }
}

impl Node {
    /// A consistent view of the store with the applied term, plus the
    /// members and alarms: what goes into the backend file.
    async fn backend_state(&self) -> Result<(mvcc::ReadView, crate::backend::Extra), EtcdError> {
        let (members, _) = self.members().await?;
        let alarms = ClusterService::alarm(self, 0, 0, 0).await?;
        let (view, log_id, auth) = self.sm.view_and_log_id();
        let term = log_id.map_or(0, |l| l.committed_leader_id().term);
        Ok((
            view,
            crate::backend::Extra {
                members,
                alarms,
                term,
                auth,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str, v: &str) -> mvcc::RequestOp {
        mvcc::RequestOp::Put(mvcc::PutRequest::new(k, v))
    }

    /// etcd's `costTxn`: the larger branch, 256 bytes per put on top of
    /// key and value; reads and deletes cost nothing.
    #[test]
    fn txn_cost_is_the_larger_branch() {
        let mut t = mvcc::TxnRequest::default();
        t.success
            .push(mvcc::RequestOp::DeleteRange(mvcc::DeleteRangeRequest::new(
                "a", "b",
            )));
        assert_eq!(txn_put_bytes(&t), 0);
        t.success.push(put("k", "vv"));
        t.failure.push(put("kk", "v"));
        t.failure.push(put("x", ""));
        assert_eq!(txn_put_bytes(&t), (3 + 256) + (1 + 256));
        let mut outer = mvcc::TxnRequest::default();
        outer.success.push(mvcc::RequestOp::Txn(t));
        assert_eq!(txn_put_bytes(&outer), 3 + 256 + 1 + 256);
    }
}
