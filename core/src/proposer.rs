//! The proposer: every client write of this member goes through it, once.
//!
//! - A request gets its exactly-once id here (`raft::sessions`) and is
//!   encoded once, where it arrived (a shard thread): the size check
//!   reads that encoding's length, the batch copies its bytes, a forward
//!   sends them.
//! - On the leader, requests wait in one queue shared by every shard and
//!   every forwarding follower; a batch of them (bounded in bytes) becomes
//!   one raft entry ([`Proposal`]). The first request of an idle leader
//!   goes out at once; what arrives while [`MAX_IN_FLIGHT`] batches are
//!   proposed waits for the next one, so batches grow with the load and a
//!   lone client never waits for a timer (group commit: the next batch
//!   gathers while this one is made durable and applied). Within a
//!   batch, the leader's fdatasync and the followers' run in parallel.
//! - The only voter syncs every batch on the raft thread
//!   ([`Proposal::sync_here`]) when the WAL thread is idle.
//! - The answer is openraft's response to that entry: [`Outcomes`], one
//!   per request in the batch's order. There is no other reply path.
//! - On a follower, a request is forwarded to the leader (whose proposer
//!   batches it with the rest), retried across leader changes until the
//!   request timeout, and answered once this member has applied it too.
//! - Answers go to each shard in one message per batch, through its
//!   mailbox ([`crate::raft::mailbox`]): the shard's mailbox task wakes
//!   the request tasks there, locally.
//! - A forwarded request is answered once this member has applied it
//!   ([`AppliedIndex::wait`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrocd_net::EtcdError;
use tokio::sync::oneshot;

use crate::auth::Caller;
use crate::leader::{LeaderLink, leader_err, raft_err};
use crate::raft::mailbox::{self, Mailbox, Reply, Wake, Wakes};
use crate::raft::{
    Applied, AppliedIndex, Command, Encoded, KIND_FORWARD, Op, Origin, Proposal, Raft,
};

/// Batches proposed at once; more requests wait for one of them.
///
/// One: the next batch gathers while this one is made durable, applied
/// and answered. Measured on this repo's 2-vCPU VM (docs/BENCHMARKS.md,
/// issue #19, fourth session), one in flight against two: single member
/// at 4, 16, 64 and 256 clients, 10–25 % more throughput and 10–25 %
/// less CPU per request (txn-64 12.2 against 14.8–15.0 ms per 1k);
/// 3 members, put-256 and txn-64, as much throughput or more at 5–15 %
/// less cluster CPU. A second batch in flight halves the batches (each
/// pays a raft round, an fdatasync and the wake-ups of four threads)
/// while the CPU it could overlap with is already busy. Four made
/// smaller batches still (issue #19, third session). A machine with
/// idle cores might gain from two again: measure before raising it.
pub(crate) const MAX_IN_FLIGHT: usize = 1;

/// A batch takes requests while their bytes stay within this (always at
/// least one request, whatever its size).
pub(crate) const BATCH_BYTES: usize = 1 << 20;

/// An outcome of the wrong kind for `what` (a bug, not the client's).
pub(crate) fn unexpected(what: &str, a: Applied) -> EtcdError {
    EtcdError::Unknown(format!("internal: {what} applied as {a:?}"))
}

struct Waiting {
    cmd: Encoded,
    reply: oneshot::Sender<Reply>,
    /// Where the answer goes (`None`: straight to `reply`).
    mailbox: Option<Mailbox>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    in_flight: usize,
}

impl Queue {
    /// The next batch: the oldest requests within [`BATCH_BYTES`].
    fn take(&mut self) -> Vec<Waiting> {
        let mut bytes = 0;
        let n = self
            .waiting
            .iter()
            .take_while(|w| {
                bytes += w.cmd.bytes.len();
                bytes <= BATCH_BYTES
            })
            .count()
            .max(1)
            .min(self.waiting.len());
        if n == self.waiting.len() {
            std::mem::take(&mut self.waiting)
        } else {
            self.waiting.drain(..n).collect()
        }
    }
}

/// This member's proposer.
pub(crate) struct Proposer {
    raft: Raft,
    /// This member's applied index (a forwarded request is answered once
    /// it is applied here too).
    applied: Arc<AppliedIndex>,
    leader: LeaderLink,
    origin: Origin,
    max_request_bytes: usize,
    /// Set when the member stops (shared with the node): new requests
    /// are refused.
    stopping: Arc<AtomicBool>,
    queue: Mutex<Queue>,
    /// The raft runtime: batches are proposed from tasks there.
    rt: tokio::runtime::Handle,
    /// `ferrocd_server_proposal_batches_total`.
    batches: prometheus::IntCounter,
    /// `etcd_server_proposals_pending` and `_failed_total`.
    metrics: ferrocd_net::Metrics,
}

/// Counts one proposal as pending while it lives.
struct Pending<'a>(&'a ferrocd_net::Metrics);

impl<'a> Pending<'a> {
    fn new(m: &'a ferrocd_net::Metrics) -> Self {
        m.proposals_pending_add(1);
        Pending(m)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.proposals_pending_add(-1);
    }
}

/// Whether `e` is a failed proposal as etcd counts them: it never
/// committed, or its outcome is unknown (no leader, leadership lost,
/// timed out, stopping) — not an answer the store gave.
fn proposal_failed(e: &EtcdError) -> bool {
    matches!(
        e,
        EtcdError::NoLeader
            | EtcdError::NotLeader
            | EtcdError::LeaderChanged
            | EtcdError::Timeout
            | EtcdError::TimeoutDueToLeaderFail
            | EtcdError::TimeoutDueToConnectionLost
            | EtcdError::Stopped
    )
}

impl Proposer {
    /// Must be called inside the raft runtime.
    pub(crate) fn new(
        raft: Raft,
        applied: Arc<AppliedIndex>,
        leader: LeaderLink,
        member_id: u64,
        max_request_bytes: usize,
        stopping: Arc<AtomicBool>,
        metrics: &ferrocd_net::Metrics,
    ) -> Arc<Self> {
        let batches = prometheus::IntCounter::new(
            "ferrocd_server_proposal_batches_total",
            "Raft entries that carried client requests (each a batch of one or more).",
        )
        .expect("valid counter");
        let _ = metrics.registry().register(Box::new(batches.clone()));
        Arc::new(Proposer {
            raft,
            applied,
            leader,
            origin: Origin::new(member_id),
            max_request_bytes,
            stopping,
            queue: Mutex::new(Queue::default()),
            rt: tokio::runtime::Handle::current(),
            batches,
            metrics: metrics.clone(),
        })
    }

    /// Replicate `op`, wait until it is durable and applied here, and
    /// return what the store said. On a follower the leader proposes it.
    ///
    /// Exactly once: the request gets its id here, once, and every
    /// attempt (here or forwarded, before and after a leader change)
    /// carries it, so a copy that reached the log earlier makes the later
    /// ones answer its outcome instead of applying again. When the
    /// request timeout passes after an attempt may have reached a leader,
    /// the answer is etcd's "request timed out" (the outcome is unknown);
    /// "no leader" / "not leader" only when no attempt left this member,
    /// so a client may resend those safely.
    pub(crate) async fn propose(
        self: &Arc<Self>,
        op: Op,
        caller: Caller,
    ) -> Result<Applied, EtcdError> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err(EtcdError::Stopped);
        }
        let req = self.origin.begin();
        let cmd = Command {
            id: req.id,
            floor: req.floor,
            op,
            caller,
        }
        .into_encoded()
        .map_err(raft_err)?;
        // Above `--max-request-bytes`, or too large for one AppendEntries
        // however high that flag is set (a follower could never receive it).
        if cmd.bytes.len() > self.max_request_bytes.min(crate::raft::APPEND_BYTES) {
            return Err(EtcdError::RequestTooLarge);
        }
        let deadline = Instant::now() + self.leader.request_timeout();
        let pending = Pending::new(&self.metrics);
        let mut sent = false;
        let r = loop {
            if self.raft.is_leader() {
                sent = true;
                match self.propose_here(cmd.clone()).await {
                    Err(EtcdError::NotLeader) | Err(EtcdError::NoLeader) => {}
                    r => break r.map(|(applied, _)| applied),
                }
            }
            // The forward path's future is large (peer call, apply
            // wait): boxed, so the common path's (and every caller's)
            // future stays small — a future is moved into a box per gRPC
            // request, and its size was a memcpy of kilobytes per put.
            match Box::pin(self.forward(&cmd, deadline, &mut sent)).await {
                Ok(applied) => break Ok(applied),
                // Leadership moved (here, or away from the member asked).
                Err(EtcdError::LeaderChanged) | Err(EtcdError::NotLeader)
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => break Err(e),
            }
        };
        drop(req);
        drop(pending);
        let r = match r {
            Err(EtcdError::NoLeader | EtcdError::NotLeader | EtcdError::LeaderChanged) if sent => {
                Err(EtcdError::Timeout)
            }
            r => r,
        };
        if let Err(e) = &r
            && proposal_failed(e)
        {
            self.metrics.proposal_failed();
        }
        r
    }

    /// Forward `cmd` to the leader; answers once this member has applied
    /// it too.
    async fn forward(
        &self,
        cmd: &Encoded,
        deadline: Instant,
        sent: &mut bool,
    ) -> Result<Applied, EtcdError> {
        let (applied, index) = self
            .leader
            .call_until::<(Applied, u64)>(KIND_FORWARD, cmd.bytes.to_vec(), deadline, sent)
            .await?;
        // As etcd: the member that took the request answers once it has
        // applied it itself, so the client's next read here (serializable
        // too) and every header revision it answers include its own
        // write. Committed already: if this member lags past the
        // deadline, answer anyway.
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        self.applied.wait(index, left).await;
        Ok(applied)
    }

    /// Propose `cmd` on this member, which must lead (a request of its
    /// own, or one a follower forwarded: its id came with it), in the
    /// next batch. Returns the outcome and the log index of the entry
    /// that answered it.
    pub(crate) async fn propose_here(self: &Arc<Self>, cmd: Encoded) -> Reply {
        let (reply, rx) = oneshot::channel();
        let mailbox = mailbox::this_thread();
        let batch = {
            let mut q = self.queue.lock().expect("proposer queue lock");
            q.waiting.push(Waiting {
                cmd,
                reply,
                mailbox,
            });
            if q.in_flight < MAX_IN_FLIGHT {
                q.in_flight += 1;
                Some(q.take())
            } else {
                None
            }
        };
        if let Some(batch) = batch {
            let me = self.clone();
            self.rt.spawn(async move { me.run(batch).await });
        }
        rx.await.map_err(|_| EtcdError::Stopped)?
    }

    /// Propose `batch`, then the next waiting batches, until none waits
    /// (one of the [`MAX_IN_FLIGHT`] slots).
    async fn run(self: Arc<Self>, mut batch: Vec<Waiting>) {
        loop {
            self.propose_batch(batch).await;
            let mut q = self.queue.lock().expect("proposer queue lock");
            if q.waiting.is_empty() {
                q.in_flight -= 1;
                return;
            }
            batch = q.take();
        }
    }

    /// Propose `batch` as one entry. With no other voter, the log store
    /// may sync it on the raft thread ([`Proposal::sync_here`]): no
    /// follower waits for an AppendEntries the sync would hold up, and
    /// with [`MAX_IN_FLIGHT`] at one there is no other batch to overlap
    /// with, so the hand-offs to and from the WAL thread are pure cost.
    async fn propose_batch(&self, batch: Vec<Waiting>) {
        let (cmds, replies): (Vec<Encoded>, Vec<_>) = batch
            .into_iter()
            .map(|w| (w.cmd, (w.reply, w.mailbox)))
            .unzip();
        self.batches.inc();
        let mut answers = Wakes::default();
        let sync_here = self.raft.voter_ids().count() == 1;
        let proposal = Proposal::of(&cmds).sync_here(sync_here);
        match self.raft.client_write(proposal).await {
            Ok(resp) => {
                let index = resp.log_id.index;
                let mut outcomes = resp.data.0.into_iter();
                for (reply, mailbox) in replies {
                    let r = match outcomes.next() {
                        Some(o) => o.map(|a| (a, index)),
                        None => Err(raft_err("a batch's outcomes were fewer than its requests")),
                    };
                    answers.push(mailbox, Wake::Reply(reply, r));
                }
            }
            Err(e) => {
                let e = leader_err(e);
                for (reply, mailbox) in replies {
                    answers.push(mailbox, Wake::Reply(reply, Err(e.clone())));
                }
            }
        }
        answers.send();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn waiting(len: usize) -> Waiting {
        Waiting {
            cmd: Encoded {
                id: crate::raft::RequestId {
                    member: 1,
                    incarnation: 1,
                    seq: len as u64,
                },
                bytes: Bytes::from(vec![0u8; len]),
                local: None,
            },
            reply: oneshot::channel().0,
            mailbox: None,
        }
    }

    #[test]
    fn a_batch_is_bounded_in_bytes_but_never_empty() {
        let mut q = Queue::default();
        for _ in 0..5 {
            q.waiting.push(waiting(BATCH_BYTES / 4));
        }
        assert_eq!(q.take().len(), 4);
        assert_eq!(q.take().len(), 1);
        assert!(q.waiting.is_empty());
        q.waiting.push(waiting(BATCH_BYTES * 2));
        q.waiting.push(waiting(10));
        assert_eq!(q.take().len(), 1, "an oversized request goes alone");
        assert_eq!(q.take().len(), 1);
    }
}
