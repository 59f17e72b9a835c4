//! Leases as the services see them: ids, keep-alives and TTLs answered
//! by the leader's lessor (here, or over the peer port), and the leader's
//! expiry loop. Deadlines themselves are `lessor.rs`; grants and revokes
//! are replicated requests like puts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferrocd_net::EtcdError;
use tokio::sync::Notify;

use crate::auth::Caller;
use crate::leader::LeaderLink;
use crate::lessor::RenewError;
use crate::proposer::Proposer;
use crate::raft::{KIND_LEASE_RENEW, KIND_LEASE_TTL, Op, SmShared};

/// Revokes the leader proposes per expiry pass.
const REVOKES_PER_PASS: usize = 64;

/// This member's leases.
pub(crate) struct Leases {
    sm: Arc<SmShared>,
    link: LeaderLink,
    proposer: Arc<Proposer>,
    /// This member's id.
    me: u64,
    /// Lease ids drawn here.
    seq: AtomicU64,
}

impl Leases {
    pub(crate) fn new(
        sm: Arc<SmShared>,
        link: LeaderLink,
        proposer: Arc<Proposer>,
        me: u64,
    ) -> Arc<Self> {
        Arc::new(Leases {
            sm,
            link,
            proposer,
            me,
            seq: AtomicU64::new(0),
        })
    }

    /// etcd's LeaseKeepAlive: renewed by the leader's lessor, retried
    /// across leader changes until the request timeout.
    pub(crate) async fn keep_alive(&self, id: i64) -> Result<i64, EtcdError> {
        let deadline = Instant::now() + self.link.request_timeout();
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

    /// (remaining, granted) TTL from the leader's lessor, retried across
    /// leader changes until the request timeout.
    pub(crate) async fn ttl(&self, id: i64) -> Result<(i64, i64), EtcdError> {
        let deadline = Instant::now() + self.link.request_timeout();
        loop {
            let primary = self.sm.lessor.lock().expect("lessor lock").is_primary();
            let r = if primary {
                self.ttl_here(id)
            } else {
                self.link.call(KIND_LEASE_TTL, &id).await
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

    /// A keep-alive on this member's lessor (it must lead).
    pub(crate) fn renew_here(&self, id: i64) -> Result<i64, EtcdError> {
        let r = self
            .sm
            .lessor
            .lock()
            .expect("lessor lock")
            .renew(id, Instant::now());
        match r {
            Ok(ttl) => {
                self.sm.metrics.lease_renewed();
                Ok(ttl)
            }
            Err(RenewError::NotFound) => Err(EtcdError::LeaseNotFound),
            Err(RenewError::NotPrimary) => Err(EtcdError::NotLeader),
        }
    }

    /// (remaining, granted) TTL from this member's lessor.
    pub(crate) fn ttl_here(&self, id: i64) -> Result<(i64, i64), EtcdError> {
        self.sm
            .lessor
            .lock()
            .expect("lessor lock")
            .remaining(id, Instant::now())
            .ok_or(EtcdError::LeaseNotFound)
    }

    /// A new lease id.
    pub(crate) fn new_id(&self) -> i64 {
        // etcd's idutil: member id's low 16 bits, then milliseconds and a
        // counter; positive.
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let id = ((self.me & 0xffff) << 48) | ((ms & 0xff_ffff_ffff) << 8);
        (id.wrapping_add(seq) & (i64::MAX as u64)).max(1) as i64
    }
    /// etcd's lessor loop: every 500 ms the leader revokes expired leases
    /// through raft.
    pub(crate) async fn expire(self: Arc<Self>, stop: Arc<Notify>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stop.notified() => return,
            }
            let expired = self
                .sm
                .lessor
                .lock()
                .expect("lessor lock")
                .expired(Instant::now(), REVOKES_PER_PASS);
            for id in expired {
                tracing::debug!(lease = id, "lease expired; revoking");
                let proposer = self.proposer.clone();
                let metrics = self.sm.metrics.clone();
                tokio::spawn(async move {
                    match proposer
                        .propose(Op::LeaseRevoke { id }, Caller::Internal)
                        .await
                    {
                        // As etcd: counted once its revoke went through.
                        Ok(_) => metrics.lease_expired(),
                        Err(EtcdError::LeaseNotFound) => {}
                        Err(e) => tracing::warn!(lease = id, error = %e, "revoking expired lease"),
                    }
                });
            }
        }
    }
}
