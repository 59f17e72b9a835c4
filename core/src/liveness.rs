//! Liveness: what this member learns from raft's metrics as they change
//! — the term and leader (response headers, health), whether a leader is
//! alive (`/health`, watch streams), a fatal raft stop, this member's
//! removal from the cluster — and the lessor following leadership.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrocd_net::Metrics;
use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use tokio::sync::Notify;

use crate::raft::{KIND_STATUS, Member, PeerNetwork, Raft, SmShared};

/// How a start ends when the member learns that it was removed from the
/// cluster (etcd exits with status 0 then; so does `ferrocd`).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the member has been permanently removed from the cluster")]
pub struct Removed;

/// Whether this member has been removed from the cluster, however it
/// learned it: by applying the membership that removed it, or from a
/// peer that answered "removed" (a removed follower never receives the
/// entry that removes it, nor a restarted member that was down then).
#[derive(Debug, Default)]
pub(crate) struct Removal {
    removed: AtomicBool,
    notify: Notify,
}

impl Removal {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// This member has been removed; `how` says how it learned it.
    pub(crate) fn learn(&self, how: &'static str) {
        if !self.removed.swap(true, Ordering::SeqCst) {
            // etcd: "the member has been permanently removed from the
            // cluster" — it stops; its data dir is not reusable.
            tracing::error!(
                learned_from = how,
                "the member has been permanently removed from the cluster; stopping \
                 (the data dir used by this member must be removed before it joins again)"
            );
        }
        self.notify.notify_waiters();
    }

    /// Whether it has been.
    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::SeqCst)
    }

    /// Resolves once it has been.
    pub(crate) async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_removed() {
                return;
            }
            notified.await;
        }
    }
}

/// This member's liveness.
pub(crate) struct Liveness {
    raft: Raft,
    sm: Arc<SmShared>,
    /// This member's id.
    me: u64,
    election_timeout: Duration,
    metrics: Metrics,
    term: AtomicU64,
    leader: AtomicU64,
    /// When the last AppendEntries from a leader arrived (followers).
    last_leader_contact: Mutex<Option<Instant>>,
    /// Set when this member was removed from the cluster.
    removal: Arc<Removal>,
    /// Set (and `failed_notify` notified) when raft stopped on a fatal
    /// error, e.g. a WAL write that failed on a full disk.
    failed: Mutex<Option<String>>,
    failed_notify: Notify,
}

impl Liveness {
    pub(crate) fn new(
        raft: Raft,
        sm: Arc<SmShared>,
        me: u64,
        election_timeout: Duration,
        metrics: Metrics,
        removal: Arc<Removal>,
    ) -> Arc<Self> {
        Arc::new(Liveness {
            raft,
            sm,
            me,
            election_timeout,
            metrics,
            term: AtomicU64::new(0),
            leader: AtomicU64::new(0),
            last_leader_contact: Mutex::new(None),
            removal,
            failed: Mutex::new(None),
            failed_notify: Notify::new(),
        })
    }

    /// This member's id.
    pub(crate) fn me(&self) -> u64 {
        self.me
    }

    /// The raft term as last seen.
    pub(crate) fn term(&self) -> u64 {
        self.term.load(Ordering::Relaxed)
    }

    /// Resolves when this member has been removed from the cluster.
    pub(crate) async fn removed(&self) {
        self.removal.wait().await
    }

    /// Resolves with the reason when raft stopped on a fatal error (a
    /// failed WAL write or fsync, a failed snapshot install): the member
    /// can no longer serve and must stop, as etcd exits when it cannot
    /// save its raft log. Restart it once the disk is fixed; recovery
    /// keeps everything acknowledged.
    pub(crate) async fn failed(&self) -> String {
        loop {
            let notified = self.failed_notify.notified();
            if let Some(why) = self.failed.lock().expect("failed lock").clone() {
                return why;
            }
            notified.await;
        }
    }

    /// Follow raft's metrics until the member stops: term and leader,
    /// gauges, a fatal stop, this member's removal; the lessor follows
    /// leadership (promoted on becoming leader, demoted after).
    pub(crate) async fn track(self: Arc<Self>, stop: Arc<Notify>) {
        let mut rx = self.raft.metrics();
        let mut was_leader = false;
        let mut seen_self = false;
        // The leader last seen (0: none), for leader changes.
        let mut last_leader = 0;
        loop {
            let (term, leader, is_leader, fatal) = {
                let m = rx.borrow_watched();
                (
                    m.current_term,
                    m.current_leader.unwrap_or(0),
                    m.state == ServerState::Leader,
                    m.running_state
                        .as_ref()
                        .err()
                        .map(|f| (matches!(f, openraft::errors::Fatal::Stopped), f.to_string())),
                )
            };
            if let Some((stopped, why)) = fatal {
                if stopped {
                    // `Raft::shutdown` (a clean stop), not a failure.
                    return;
                }
                tracing::error!(error = %why, "raft stopped on a fatal error; stopping the member");
                *self.failed.lock().expect("failed lock") = Some(why);
                self.failed_notify.notify_waiters();
                return;
            }
            self.term.store(term, Ordering::Relaxed);
            self.leader.store(leader, Ordering::Relaxed);
            // As etcd counts: a leader is known and differs from the last
            // one seen, which may be none (so the first election counts,
            // and so does the same leader again after a leaderless spell).
            if leader != 0 && leader != last_leader {
                self.metrics.leader_changed();
            }
            last_leader = leader;
            // As etcd: a follower that has not heard from its leader for an
            // election timeout has none (raft's metrics keep the last
            // leader until another is elected). Read before borrowing the
            // metrics again below (the leader's check borrows them too).
            let alive = self.leader_alive();
            {
                let m = rx.borrow_watched();
                self.metrics.set_has_leader(alive);
                self.metrics.set_is_leader(is_leader);
                self.metrics.set_is_learner(m.state == ServerState::Learner);
                if let Some(c) = m.cluster_committed {
                    self.metrics.set_proposals_committed(c.index);
                }
                if let Some(a) = m.last_applied {
                    self.metrics.set_proposals_applied(a.index);
                }
            }
            // The committed membership, as applied here (the one in raft's
            // metrics may still be an uncommitted joint config).
            let in_cluster = self.sm.applied_membership_has(self.me);
            // Only a member that was in the membership can be removed from
            // it (a new or joining member starts outside it).
            seen_self |= in_cluster;
            if seen_self && !in_cluster {
                // Let answers in flight (e.g. the MemberRemove that removed
                // this leader) go out first.
                tokio::time::sleep(Duration::from_secs(1)).await;
                self.removal.learn("the applied membership");
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
                _ = stop.notified() => return,
                // Raft's metrics do not change when a leader goes silent:
                // look again, for `etcd_server_has_leader`.
                _ = tokio::time::sleep(self.election_timeout / 2) => {}
            }
        }
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
        if leader == self.me {
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

    /// While no leader is heard from, ask the other members for their
    /// status every two election timeouts. A member that was removed
    /// learns it from the answer ("removed", see [`Removal`]) even when
    /// it never calls anyone otherwise: a learner (it never campaigns), a
    /// removed member back from being down, or any member while its
    /// election attempts are pre-votes that nobody answers.
    pub(crate) async fn probe_when_leaderless(
        self: Arc<Self>,
        network: PeerNetwork,
        stop: Arc<Notify>,
    ) {
        let every = self.election_timeout * 2;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.notified() => return,
            }
            if self.removal.is_removed() {
                return;
            }
            if self.leader_alive() {
                continue;
            }
            let others: Vec<(u64, Member)> = {
                let m = self.raft.metrics();
                let m = m.borrow_watched();
                m.membership_config
                    .membership()
                    .nodes()
                    .filter(|(id, _)| **id != self.me)
                    .map(|(id, n)| (*id, n.clone()))
                    .collect()
            };
            for (id, member) in others {
                // Only the answer's kind matters: the client runs the
                // removal hook on "removed".
                let _ = network
                    .client(id, &member)
                    .call(KIND_STATUS, Vec::new(), self.election_timeout)
                    .await;
                if self.removal.is_removed() {
                    return;
                }
            }
        }
    }

    /// The peer service saw an AppendEntries from the leader.
    pub(crate) fn note_leader_contact(&self) {
        *self.last_leader_contact.lock().expect("contact lock") = Some(Instant::now());
    }
}
