//! Starting a member: open the data dir (ids, WAL, newest snapshot),
//! start raft with etcd's timing, build the node's parts, start their
//! background loops and the peer port, then join the cluster (initialize
//! or campaign), wait for a leader and catch up.
//!
//! Runs inside the raft runtime (a tokio runtime of its own, see
//! `server.rs`): openraft spawns its tasks there.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use ferrocd_mvcc as mvcc;
use ferrocd_net::Metrics;
use ferrocd_wal::{self as wal, UringFs, Worker};
use openraft::SnapshotPolicy;
use tokio::sync::Notify;

use crate::auth_gate::AuthGate;
use crate::compactor::Compactor;
use crate::config::{ClusterState, Config};
use crate::datadir::{Layout, Prepared};
use crate::leader::LeaderLink;
use crate::leases::Leases;
use crate::lessor::Lessor;
use crate::liveness::{Liveness, Removal, Removed};
use crate::maintenance::Maintenance;
use crate::membership::Membership;
use crate::membership::derive::{member_id, url_strings};
use crate::membership::ids::{Ids, load_or_create_ids};
use crate::peer::{PeerService, PeerTls};
use crate::proposer::Proposer;
use crate::quota::Quota;
use crate::raft::{LogStore, Member, PeerNetwork, Raft, SmShared, StateMachine};
use crate::read_index::ReadIndex;

/// A started member's parts (what the node holds).
pub(crate) struct Parts {
    pub(crate) raft: Raft,
    pub(crate) sm: Arc<SmShared>,
    pub(crate) log: LogStore,
    /// The WAL thread, taken once every handle is gone (shutdown).
    pub(crate) wal_worker: Mutex<Option<Worker<UringFs>>>,
    pub(crate) ids: Ids,
    pub(crate) data_dir: PathBuf,
    pub(crate) election_timeout: Duration,
    pub(crate) proposer: Arc<Proposer>,
    pub(crate) reads: Arc<ReadIndex>,
    pub(crate) members: Arc<Membership>,
    pub(crate) gate: AuthGate,
    pub(crate) leases: Arc<Leases>,
    pub(crate) quota: Quota,
    pub(crate) liveness: Arc<Liveness>,
    pub(crate) maintenance: Arc<Maintenance>,
    /// Set when the member stops.
    pub(crate) stopping: Arc<AtomicBool>,
    /// Notified when the member stops: ends the background loops and the
    /// peer listeners.
    pub(crate) stop: Arc<Notify>,
}

/// Open the data dir, recover, start raft, the background loops and the
/// peer port, and wait until a leader is known and this member has
/// applied everything committed.
pub(crate) async fn start(cfg: &Config, metrics: Metrics) -> anyhow::Result<Parts> {
    // TLS files first: a bad one stops the start before the data dir
    // is touched.
    let peer_tls = PeerTls::from_config(cfg)?;
    let fs = UringFs;
    if let Prepared::Etcd { found } =
        crate::datadir::prepare(&cfg.data_dir, cfg.wal_dir.as_deref())?
    {
        // etcd's data: adopted once (the marker is written last), ours
        // from then on.
        crate::adopt::adopt(cfg, &found)?;
    }
    let layout = Layout::read(&cfg.data_dir, cfg.wal_dir.as_deref())?;
    let member_dir = layout.member_dir;
    // Without ids this member has not bootstrapped yet: etcd's checks of
    // the bootstrap flags (a restart ignores them, as etcd's does).
    if !member_dir.join("ids").exists() {
        crate::membership::verify::verify(cfg).map_err(anyhow::Error::msg)?;
    }
    wal::create_dir_all_durable(&fs, &member_dir)
        .with_context(|| format!("creating {}", member_dir.display()))?;
    let ids = load_or_create_ids(&member_dir, cfg, peer_tls.dialer.clone()).await?;
    let wal_dir = layout.wal_dir;
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
            fsync_metrics.observe_wal_fsync(e.duration);
            fsync_metrics.wal_written(e.bytes);
        })),
    )
    .context("reading the raft log")?;

    let heartbeat_ms = cfg.heartbeat_interval.as_millis().max(1) as u64;
    let election_ms = cfg.election_timeout.as_millis().max(1) as u64;
    let min_ttl = cfg.min_lease_ttl();
    let jwt = crate::auth_gate::jwt_from_config(cfg)?;
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

    // etcd's --force-new-cluster applies to a member with data only (a
    // fresh one bootstraps as usual).
    if cfg.force_new_cluster
        && (recovered.last_index.is_some() || shared.applied_log_id().is_some())
    {
        crate::membership::force::force_new_cluster(&mut log.clone(), &shared, ids.member_id)
            .await?;
    }

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
    // How this member learns that it was removed: from the membership it
    // applies (liveness), or from a peer that answers "removed".
    let removal = Removal::new();
    let network = PeerNetwork::new(
        ids.cluster_id,
        ids.member_id,
        peer_tls.dialer.clone(),
        {
            let removal = removal.clone();
            Arc::new(move || removal.learn("a peer"))
        },
        metrics.clone(),
    );
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

    let link = LeaderLink::new(
        raft.clone(),
        network.clone(),
        ids.member_id,
        cfg.election_timeout,
    );
    // Set by `Node::shutdown`; the proposer and maintenance refuse new
    // work once it is.
    let stopping = Arc::new(AtomicBool::new(false));
    let proposer = Proposer::new(
        raft.clone(),
        shared.applied_index.clone(),
        link.clone(),
        ids.member_id,
        cfg.max_request_bytes as usize,
        stopping.clone(),
        &metrics,
    );
    let reads = ReadIndex::new(
        raft.clone(),
        shared.applied_index.clone(),
        link.clone(),
        &metrics,
    );
    let members = Membership::new(
        raft.clone(),
        link.clone(),
        shared.store.clone(),
        ids,
        cfg.initial_cluster_token.clone(),
        Member {
            name: cfg.name.clone(),
            peer_urls,
            client_urls: url_strings(&cfg.advertise_client_urls),
        },
        metrics.clone(),
    );
    let gate = AuthGate::new(
        cfg,
        jwt,
        shared.clone(),
        link.clone(),
        proposer.clone(),
        reads.clone(),
    );
    let leases = Leases::new(
        shared.clone(),
        link.clone(),
        proposer.clone(),
        ids.member_id,
    );
    let quota = Quota::new(
        shared.clone(),
        proposer.clone(),
        ids.member_id,
        cfg.quota_backend_bytes,
    );
    let liveness = Liveness::new(
        raft.clone(),
        shared.clone(),
        ids.member_id,
        cfg.election_timeout,
        metrics.clone(),
        removal,
    );
    let probe_network = network.clone();
    let maintenance = Maintenance::new(
        raft.clone(),
        shared.clone(),
        network,
        proposer.clone(),
        reads.clone(),
        members.clone(),
        member_dir.clone(),
        metrics.clone(),
        link.request_timeout(),
        stopping.clone(),
    );
    let stop = Arc::new(Notify::new());

    metrics.set_quota_backend_bytes(cfg.quota_backend_bytes);
    tokio::spawn(liveness.clone().track(stop.clone()));
    tokio::spawn(
        liveness
            .clone()
            .probe_when_leaderless(probe_network, stop.clone()),
    );
    tokio::spawn(leases.clone().expire(stop.clone()));
    tokio::spawn(maintenance.clone().sample_gauges(stop.clone()));
    tokio::spawn(maintenance.clone().auto_compact(
        Compactor::new(cfg.auto_compaction, Instant::now(), shared.store.revision()),
        stop.clone(),
    ));
    tokio::spawn(
        shared
            .watches
            .clone()
            .run_syncer(shared.store.clone(), stop.clone()),
    );

    // The peer port, before anyone needs this member's vote.
    let peers = Arc::new(PeerService {
        raft: raft.clone(),
        sm: shared.clone(),
        proposer: proposer.clone(),
        reads: reads.clone(),
        members: members.clone(),
        leases: leases.clone(),
        liveness: liveness.clone(),
        maintenance: maintenance.clone(),
    });
    for u in &cfg.listen_peer_urls {
        let host = u.host_str().context("peer URL without a host")?;
        let port = u.port().context("peer URL without a port")?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let listener = tokio::net::TcpListener::bind((host, port))
            .await
            .with_context(|| format!("listen tcp {host}:{port} (peers): bind"))?;
        let stop = stop.clone();
        let tls = (u.scheme() == "https")
            .then(|| peer_tls.server.clone())
            .flatten();
        tokio::spawn(ferrocd_net::peer::serve_peers_tls(
            listener,
            peers.clone(),
            tls,
            async move { stop.notified().await },
        ));
    }

    if !restarted && cfg.initial_cluster_state == ClusterState::New {
        // Every member of a new cluster initializes with the same
        // membership (the same first log entry everywhere); a joining
        // member waits for the leader to replicate to it.
        raft.initialize(initial)
            .await
            .context("initializing raft")?;
    } else if raft.voter_ids().count() == 1 {
        // A restarted single voter need not wait an election timeout
        // to lead.
        let _ = raft.trigger().elect(false).await;
    }
    // Wait for a leader (as long as it takes: etcd too waits for its
    // peers), then until everything committed is applied here.
    // A member removed while it was down learns it here, from the first
    // peer it asks (its own log still lists it): it stops, as etcd's does.
    let caught_up = async {
        loop {
            let waited = raft
                .wait(Some(Duration::from_secs(5)))
                .metrics(|m| m.current_leader.is_some(), "a leader is known")
                .await;
            if waited.is_ok() {
                break;
            }
            tracing::info!("waiting for a leader (are the other members up?)");
        }
        loop {
            match reads.linearize().await {
                Ok(()) => break,
                Err(e) => {
                    tracing::info!(error = %e, "catching up with the leader");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    };
    tokio::select! {
        () = caught_up => {}
        () = liveness.removed() => {
            stop.notify_waiters();
            let _ = raft.shutdown().await;
            return Err(Removed.into());
        }
    }
    tokio::spawn(members.clone().publish(stop.clone()));
    tracing::info!(
        member_id = %format!("{:016x}", ids.member_id),
        cluster_id = %format!("{:016x}", ids.cluster_id),
        revision = shared.store.revision(),
        "ready"
    );
    Ok(Parts {
        raft,
        sm: shared,
        log,
        wal_worker: Mutex::new(Some(worker)),
        ids,
        data_dir: cfg.data_dir.clone(),
        election_timeout: cfg.election_timeout,
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
    })
}
