//! etcd's backend quota: what a write costs, and the NOSPACE alarm this
//! member raises when a write would take the backend past
//! `--quota-backend-bytes`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ferrocd_mvcc as mvcc;
use ferrocd_net::EtcdError;

use crate::auth::Caller;
use crate::proposer::Proposer;
use crate::raft::{ALARM_NOSPACE, Op, SmShared};

/// What etcd's quota charges a put besides its key and value
/// (`kvOverhead` in etcd 3.5's `quota.go`).
pub(crate) const RECORD_OVERHEAD: usize = 256;
/// What etcd's quota charges a lease grant (`leaseOverhead`).
pub(crate) const LEASE_OVERHEAD: usize = 64;

/// What etcd's quota charges a txn (`costTxn`): the larger of its two
/// branches, each the sum of its puts' costs; 0 when it has no put (such
/// a txn is never refused for space). etcd charges a nested txn nothing,
/// which lets its puts past a full backend; ferrocd charges it its own
/// cost (and the capped apply refuses it too).
pub(crate) fn txn_put_bytes(t: &mvcc::TxnRequest) -> usize {
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

/// This member's quota.
pub(crate) struct Quota {
    sm: Arc<SmShared>,
    proposer: Arc<Proposer>,
    /// This member's id.
    me: u64,
    /// `--quota-backend-bytes`.
    bytes: u64,
    /// Set while this member proposes its NOSPACE alarm (see
    /// [`Quota::check`]), so concurrent writes past the quota propose it
    /// once.
    raising: AtomicBool,
}

impl Quota {
    pub(crate) fn new(sm: Arc<SmShared>, proposer: Arc<Proposer>, me: u64, bytes: u64) -> Self {
        Quota {
            sm,
            proposer,
            me,
            bytes,
            raising: AtomicBool::new(false),
        }
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
    pub(crate) async fn check(&self, cost: usize) -> Result<(), EtcdError> {
        let size = self.sm.db_size().total;
        if size + (cost as u64) < self.bytes {
            return Ok(());
        }
        if !self.sm.has_alarm(self.me, ALARM_NOSPACE) && !self.raising.swap(true, Ordering::SeqCst)
        {
            tracing::warn!(
                quota = self.bytes,
                db_size = size,
                cost,
                "database space exceeded; raising the NOSPACE alarm"
            );
            // Boxed: this rare path would otherwise make every write's
            // future hold a second proposal (a future is moved into a box
            // per gRPC request).
            let r = Box::pin(self.proposer.propose(
                Op::Alarm {
                    activate: true,
                    member_id: self.me,
                    alarm: ALARM_NOSPACE,
                },
                Caller::Internal,
            ))
            .await;
            self.raising.store(false, Ordering::SeqCst);
            if let Err(e) = r {
                tracing::warn!(error = %e, "raising the NOSPACE alarm failed");
            }
        }
        Err(EtcdError::NoSpace)
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
