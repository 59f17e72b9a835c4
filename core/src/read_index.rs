//! Linearizable reads: a read waits for a read index (the leader confirms
//! its leadership, no log entry) and until this member has applied that
//! far. Reads that arrive together share one round (etcd's batching).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrocd_net::{EtcdError, Metrics};
use openraft::ReadPolicy;
use tokio::sync::oneshot;

use crate::leader::{LeaderLink, leader_err};
use crate::raft::{AppliedIndex, KIND_READ_INDEX, Raft};

/// Reads waiting for the next read-index round.
struct ReadBatch {
    in_flight: bool,
    waiting: Vec<oneshot::Sender<Result<u64, EtcdError>>>,
    /// `ferrocd_server_linearizable_reads_total`.
    reads: prometheus::IntCounter,
    /// `ferrocd_server_read_index_rounds_total`.
    rounds: prometheus::IntCounter,
    /// `etcd_server_read_indexes_failed_total`,
    /// `etcd_server_slow_read_indexes_total`.
    metrics: Metrics,
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
            metrics: metrics.clone(),
        }
    }
}

/// This member's read index.
pub(crate) struct ReadIndex {
    raft: Raft,
    /// This member's applied index, which a read waits to reach.
    applied: Arc<AppliedIndex>,
    link: LeaderLink,
    /// Linearizable reads waiting for a read-index round.
    batch: Mutex<ReadBatch>,
}

impl ReadIndex {
    pub(crate) fn new(
        raft: Raft,
        applied: Arc<AppliedIndex>,
        link: LeaderLink,
        metrics: &Metrics,
    ) -> Arc<Self> {
        Arc::new(ReadIndex {
            raft,
            applied,
            link,
            batch: Mutex::new(ReadBatch::new(metrics)),
        })
    }

    /// How long a linearizable read may take (etcd's request timeout).
    pub(crate) fn request_timeout(&self) -> Duration {
        self.link.request_timeout()
    }

    /// A read index on this member, which must lead: the log index a
    /// linearizable read must see applied, once a quorum has confirmed
    /// the leadership. The leader does not wait to apply it itself (as
    /// etcd's): the member that reads waits for its own apply.
    pub(crate) async fn here(&self) -> Result<u64, EtcdError> {
        self.raft
            .get_read_log_id(ReadPolicy::ReadIndex)
            .await
            .map(|(r, _)| r.index())
            .map_err(leader_err)
    }

    /// One read-index round: the leader confirms its leadership (no log
    /// entry) and names the log index reads must see applied.
    async fn round(&self) -> Result<u64, EtcdError> {
        if self.raft.is_leader() {
            match self.here().await {
                Err(EtcdError::NotLeader) | Err(EtcdError::NoLeader) => {}
                r => return r,
            }
        }
        match self.link.call(KIND_READ_INDEX, &()).await {
            Err(EtcdError::LeaderChanged) => self.here().await,
            r => r,
        }
    }

    /// Wait until a linearizable read may be served here. Reads that
    /// arrive together share one read-index round (etcd's batching): a
    /// round serves every read that was waiting when it started; reads
    /// that arrive while it is in flight wait for the next one (the index
    /// must be taken after the read arrived).
    pub(crate) async fn linearize(self: &Arc<Self>) -> Result<(), EtcdError> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut b = self.batch.lock().expect("reads lock");
            b.reads.inc();
            b.waiting.push(tx);
            !std::mem::replace(&mut b.in_flight, true)
        };
        if start {
            let me = self.clone();
            tokio::spawn(async move {
                loop {
                    let batch = {
                        let mut b = me.batch.lock().expect("reads lock");
                        b.rounds.inc();
                        std::mem::take(&mut b.waiting)
                    };
                    let started = std::time::Instant::now();
                    let r = me.round().await;
                    if r.is_err() {
                        let b = me.batch.lock().expect("reads lock");
                        b.metrics.read_index_failed();
                        // Ran out its request timeout (no leader, or none
                        // answered): etcd counts such a round as slow.
                        if started.elapsed() >= me.link.request_timeout() {
                            b.metrics.slow_read_index();
                        }
                    }
                    for w in batch {
                        let _ = w.send(r.clone());
                    }
                    let mut b = me.batch.lock().expect("reads lock");
                    if b.waiting.is_empty() {
                        b.in_flight = false;
                        return;
                    }
                }
            });
        }
        let index = rx.await.map_err(|_| EtcdError::Stopped)??;
        let timeout = self.link.request_timeout();
        if self.applied.wait(index, timeout).await {
            Ok(())
        } else {
            Err(EtcdError::Timeout)
        }
    }
}
