//! Maintenance: etcd's Maintenance service on this member (status,
//! alarms, defragment, hashes, the backend snapshot, leader transfer,
//! downgrade — always refused: there is no older ferrocd),
//! and the background work that keeps the store small and measured
//! (auto-compaction, gauges).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ferrocd_mvcc as mvcc;
use ferrocd_net::{Downgrade, EtcdError, Metrics, NodeStatus};
use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use tokio::sync::Notify;

use crate::auth::Caller;
use crate::compactor::Compactor;
use crate::leader::raft_err;
use crate::membership::Membership;
use crate::proposer::{Proposer, unexpected};
use crate::raft::{Applied, DbSize, KIND_STATUS, Op, PeerNetwork, Raft, SmShared};
use crate::read_index::ReadIndex;

/// The etcd server version whose API and behaviour ferrocd implements
/// (reported by Status and `/version`).
pub const ETCD_VERSION: &str = "3.5.0";
/// The cluster version `/version` reports.
pub const ETCD_CLUSTER_VERSION: &str = "3.5.0";

/// How long [`Maintenance::member_status`] waits for another member.
const MEMBER_STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// This member's maintenance.
pub(crate) struct Maintenance {
    raft: Raft,
    sm: Arc<SmShared>,
    network: PeerNetwork,
    proposer: Arc<Proposer>,
    reads: Arc<ReadIndex>,
    members: Arc<Membership>,
    /// This member's id.
    me: u64,
    /// The member dir (`member/`, or `ferrocd/` in an adopted etcd dir):
    /// where a snapshot export's unlinked temp file lives.
    member_dir: PathBuf,
    metrics: Metrics,
    /// How long a request waits for a leader before failing.
    request_timeout: Duration,
    /// Set when the member stops (shared with the node).
    stopping: Arc<AtomicBool>,
}

impl Maintenance {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        raft: Raft,
        sm: Arc<SmShared>,
        network: PeerNetwork,
        proposer: Arc<Proposer>,
        reads: Arc<ReadIndex>,
        members: Arc<Membership>,
        member_dir: PathBuf,
        metrics: Metrics,
        request_timeout: Duration,
        stopping: Arc<AtomicBool>,
    ) -> Arc<Self> {
        Arc::new(Maintenance {
            raft,
            sm,
            network,
            proposer,
            reads,
            me: members.ids().member_id,
            members,
            member_dir,
            metrics,
            request_timeout,
            stopping,
        })
    }

    /// This member's status (etcd's Status).
    pub(crate) async fn status(&self) -> Result<NodeStatus, EtcdError> {
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

    /// Member `id`'s status, asked over the peer port unless it is this one.
    pub(crate) async fn member_status(&self, id: u64) -> Result<NodeStatus, EtcdError> {
        if id == self.me {
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

    /// etcd's Alarm: GET (linearizable), ACTIVATE, DEACTIVATE.
    pub(crate) async fn alarm(
        &self,
        action: i32,
        member_id: u64,
        alarm: i32,
    ) -> Result<Vec<(u64, i32)>, EtcdError> {
        match action {
            // GET: the raised alarms (of type `alarm`, all for NONE), as
            // of a linearizable read (etcd sends GET through raft).
            0 => {
                self.reads.linearize().await?;
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

    /// etcd's HashKV.
    pub(crate) async fn hash_kv(&self, revision: i64) -> Result<(u32, i64, i64, i64), EtcdError> {
        let view = self.sm.store.snapshot();
        let started = std::time::Instant::now();
        let h = view.hash_kv(revision).map_err(EtcdError::from)?;
        self.metrics.observe_hash(true, started.elapsed());
        let hashed = if revision > 0 { revision } else { h.revision };
        Ok((h.hash, h.compact_revision, hashed, h.revision))
    }

    /// etcd's MoveLeader (this member must lead).
    pub(crate) async fn move_leader(&self, target: u64) -> Result<(), EtcdError> {
        if !self.raft.is_leader() {
            return Err(EtcdError::NotLeader);
        }
        if !self.raft.voter_ids().any(|v| v == target) {
            return Err(EtcdError::BadLeaderTransferee);
        }
        if target != self.me {
            self.raft
                .trigger()
                .transfer_leader(target)
                .await
                .map_err(raft_err)?;
            // etcd waits up to its request timeout for the transfer.
            self.raft
                .wait(Some(self.request_timeout))
                .current_leader(target, "leadership transferred")
                .await
                .map_err(|_| EtcdError::Timeout)?;
        }
        Ok(())
    }

    /// etcd's Downgrade. etcd 3.5 lets a cluster go to its own version's
    /// minor less one (3.5 to 3.4): members then run the older binary on
    /// the same data. There is no older ferrocd, and etcd 3.4 cannot read
    /// ferrocd's WAL and store, so no target is one this cluster can go
    /// to: validate and enable answer etcd's "invalid downgrade target
    /// version" for every well-formed target (etcd 3.5.1 does so for all
    /// but "3.4"), and since no downgrade ever starts, cancel answers
    /// etcd's "no inflight downgrade job". As etcd, the answer follows a
    /// linearizable read, so a member cut off from its leader says so
    /// instead.
    pub(crate) async fn downgrade(&self, req: Downgrade) -> Result<String, EtcdError> {
        self.reads.linearize().await?;
        match req {
            Downgrade::Validate(_) | Downgrade::Enable(_) => {
                Err(EtcdError::InvalidDowngradeTargetVersion)
            }
            Downgrade::Cancel => Err(EtcdError::NoInflightDowngrade),
        }
    }

    /// etcd's Snapshot: the backend file, written to an unlinked file.
    pub(crate) async fn snapshot(&self) -> Result<(std::fs::File, u64), EtcdError> {
        let (view, extra) = self.backend_state().await?;
        let dir = self.member_dir.clone();
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
        // How long the store view was held for it (etcd times its backend
        // snapshot's read transaction, held while the stream is written).
        self.metrics.observe_backend_snapshot(t.elapsed());
        tracing::info!(
            revision,
            bytes = size,
            ms = t.elapsed().as_millis() as u64,
            "sending database snapshot"
        );
        Ok((f, size))
    }

    /// etcd's Hash: of the backend file.
    pub(crate) async fn hash(&self) -> Result<(u32, i64), EtcdError> {
        let (view, extra) = self.backend_state().await?;
        let rev = view.revision();
        let started = std::time::Instant::now();
        let h = tokio::task::spawn_blocking(move || crate::backend::hash(&view, &extra))
            .await
            .map_err(|e| EtcdError::Unknown(e.to_string()))?;
        self.metrics.observe_hash(false, started.elapsed());
        Ok((h, rev))
    }

    /// A consistent view of the store with the applied term, plus the
    /// members and alarms: what goes into the backend file.
    async fn backend_state(&self) -> Result<(mvcc::ReadView, crate::backend::Extra), EtcdError> {
        let (members, _) = self.members.list();
        let alarms = self.alarm(0, 0, 0).await?;
        let (view, log_id, auth) = self.sm.view_and_log_id();
        let term = log_id.map_or(0, |l| l.committed_leader_id().term);
        Ok((
            view,
            crate::backend::Extra {
                members,
                alarms,
                term,
                auth,
                removed: self.sm.removed_members(),
            },
        ))
    }

    /// etcd's Defragment, on this member: finish any pending physical
    /// compaction, then write a fresh snapshot of the store (only live
    /// records), which becomes the backend's base: `dbSize` drops to its
    /// size, older snapshot files beyond `--max-snapshots` are purged and
    /// openraft purges the log behind it (keeping
    /// `--snapshot-catchup-entries` for slow followers).
    pub(crate) async fn defragment(&self) -> Result<(), EtcdError> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err(EtcdError::Stopped);
        }
        self.metrics.set_defrag_inflight(true);
        let started = std::time::Instant::now();
        let r = self.defragment_steps().await;
        self.metrics.set_defrag_inflight(false);
        if r.is_ok() {
            self.metrics.observe_defrag(started.elapsed());
        }
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

    /// etcd's compactor (see `compactor.rs`): every member samples, the
    /// leader compacts through raft.
    pub(crate) async fn auto_compact(self: Arc<Self>, mut c: Compactor, stop: Arc<Notify>) {
        let Some(every) = c.poll_interval() else {
            return;
        };
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.notified() => return,
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
    pub(crate) async fn sample_gauges(self: Arc<Self>, stop: Arc<Notify>) {
        loop {
            let view = self.sm.store.snapshot();
            let size = self.sm.db_size();
            self.metrics.set_db_size(size.total);
            self.metrics.set_db_size_in_use(size.in_use);
            self.metrics.set_keys(view.key_count() as u64);
            self.metrics.set_watchers(self.sm.watches.len() as u64);
            self.metrics
                .set_revisions(view.revision(), view.compact_revision());
            self.metrics.set_auth_revision(self.sm.auth.load().revision);
            drop(view);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.notified() => return,
            }
        }
    }
}
