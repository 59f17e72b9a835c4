//! The apply step of one batch of entries: every command goes through
//! [`Apply::command`] (exactly-once table, etcd's capped and auth
//! appliers), then the handler of its [`Op`]. The store's write batch,
//! the applied state's lock and the side effects that are published after
//! the store commits (watch events, lessor grants and revokes, token
//! effects, a compaction to finish) are collected here; the state machine
//! commits and publishes them (`state_machine.rs`).

use std::sync::{Arc, MutexGuard};

use ferrocd_mvcc as mvcc;

use super::Command;
use super::Op;
use super::applied::{AppliedState, alarm_name};
use super::outcome::{Applied, ApplyError};
use super::sessions::Seen;
use crate::auth::{AuthOp, AuthState, Caller, Request, TokenEffect};

/// One batch being applied: the store's write batch, the applied state
/// (held for the whole batch) and what to publish once it commits.
pub(super) struct Apply<'a> {
    pub(super) wb: mvcc::WriteBatch<'a>,
    pub(super) applied: MutexGuard<'a, AppliedState>,
    /// The auth store as of this point of the log.
    pub(super) auth: Arc<AuthState>,
    pub(super) auth_changed: bool,
    pub(super) events: Vec<mvcc::Event>,
    /// Lease grants and revokes, in log order, for the lessor.
    pub(super) leases: Vec<LeaseChange>,
    pub(super) compacted: bool,
    pub(super) token_effects: Vec<TokenEffect>,
    /// The store operations applied (`etcd_mvcc_*_total`).
    pub(super) ops: ferrocd_net::StoreOps,
}

/// A lease change the lessor (the leader's expiry clock) must hear, in
/// log order: a batch may grant, revoke and grant one id again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LeaseChange {
    Grant { id: i64, ttl: i64 },
    Revoke { id: i64 },
}

/// The store operations a txn ran, as etcd counts them in one store
/// transaction: its compares (each a range), then the ops of the branch
/// that ran, nested txns included; and the key and value bytes its puts
/// wrote.
pub(crate) fn txn_ops(req: &mvcc::TxnRequest, resp: &mvcc::TxnResponse) -> (u64, u64, u64, u64) {
    let mut n = (req.compare.len() as u64, 0, 0, 0);
    let branch = if resp.succeeded {
        &req.success
    } else {
        &req.failure
    };
    for (op, r) in branch.iter().zip(&resp.responses) {
        match (op, r) {
            (_, mvcc::ResponseOp::Range(_)) => n.0 += 1,
            (op, mvcc::ResponseOp::Put(_)) => {
                n.1 += 1;
                if let mvcc::RequestOp::Put(p) = op {
                    n.3 += (p.key.len() + p.value.len()) as u64;
                }
            }
            (_, mvcc::ResponseOp::DeleteRange(_)) => n.2 += 1,
            (mvcc::RequestOp::Txn(inner), mvcc::ResponseOp::Txn(ir)) => {
                let (a, b, c, d) = txn_ops(inner, ir);
                n = (n.0 + a, n.1 + b, n.2 + c, n.3 + d);
            }
            (_, mvcc::ResponseOp::Txn(_)) => {}
        }
    }
    n
}

/// Whether a txn (either branch, nested too) has a put: etcd's capped
/// applier refuses it while NOSPACE is raised.
fn txn_has_put(t: &mvcc::TxnRequest) -> bool {
    t.success.iter().chain(&t.failure).any(|op| match op {
        mvcc::RequestOp::Put(_) => true,
        mvcc::RequestOp::Txn(t) => txn_has_put(t),
        _ => false,
    })
}

impl<'a> Apply<'a> {
    pub(super) fn new(
        wb: mvcc::WriteBatch<'a>,
        applied: MutexGuard<'a, AppliedState>,
        auth: Arc<AuthState>,
    ) -> Self {
        Apply {
            wb,
            applied,
            auth,
            auth_changed: false,
            events: Vec::new(),
            leases: Vec::new(),
            compacted: false,
            token_effects: Vec::new(),
            ops: ferrocd_net::StoreOps::default(),
        }
    }

    /// Apply `cmd`, found in the entry at log `index`, and return its
    /// outcome (also kept in the exactly-once table).
    ///
    /// Exactly once: a request already applied (a forward retried after a
    /// leader change put a second copy in the log) answers with its first
    /// outcome; a stale copy (its origin is done with it) does nothing.
    pub(super) fn command(&mut self, cmd: &Command, index: u64) -> Result<Applied, ApplyError> {
        match self.applied.sessions.begin(cmd.id, cmd.floor, index) {
            Seen::New => {}
            Seen::Duplicate(first) => {
                tracing::info!(request = %cmd.id, index, "duplicate request not applied again");
                return first.map_err(|m| ApplyError::from_message(&m));
            }
            Seen::Stale => {
                tracing::info!(request = %cmd.id, index, "stale copy of a finished request not applied");
                return Err(ApplyError::Timeout);
            }
        }
        let r = self.admit(cmd).and_then(|()| self.op(cmd, index));
        self.applied.sessions.finish(cmd.id, &r);
        r
    }

    /// etcd's capped applier (while NOSPACE is raised anywhere, nothing
    /// that adds data applies), then its auth applier (a write is checked
    /// against the auth store as of its place in the log).
    fn admit(&self, cmd: &Command) -> Result<(), ApplyError> {
        let capped = self.applied.nospace()
            && match &cmd.op {
                Op::Put(_) | Op::LeaseGrant { .. } => true,
                Op::Txn(t) => txn_has_put(t),
                _ => false,
            };
        if capped {
            return Err(ApplyError::from(mvcc::Error::NoSpace));
        }
        let lease_keys = |l: i64| self.wb.lease_keys(l);
        let caller = &cmd.caller;
        match &cmd.op {
            Op::Put(req) => self
                .auth
                .check_request(caller, &Request::Put(req), &lease_keys),
            Op::DeleteRange(req) => {
                self.auth
                    .check_request(caller, &Request::Delete(req), &lease_keys)
            }
            Op::Txn(req) => self
                .auth
                .check_request(caller, &Request::Txn(req), &lease_keys),
            Op::LeaseRevoke { id } => {
                self.auth
                    .check_request(caller, &Request::LeaseRevoke(*id), &lease_keys)
            }
            _ => Ok(()),
        }
    }

    fn op(&mut self, cmd: &Command, index: u64) -> Result<Applied, ApplyError> {
        match &cmd.op {
            Op::Put(req) => self.put(req),
            Op::DeleteRange(req) => self.delete_range(req),
            Op::Txn(req) => self.txn(req),
            Op::Compact { revision } => self.compact(*revision),
            Op::LeaseGrant { id, ttl } => self.lease_grant(*id, *ttl),
            Op::LeaseRevoke { id } => self.lease_revoke(*id),
            Op::Auth(aop) => self.auth_op(&cmd.caller, aop, index),
            Op::Alarm {
                activate,
                member_id,
                alarm,
            } => Ok(self.alarm(*activate, *member_id, *alarm)),
        }
    }

    fn put(&mut self, req: &mvcc::PutRequest) -> Result<Applied, ApplyError> {
        let r = self.wb.put_into(req, &mut self.events)?;
        self.ops.txn(0, 1, 0);
        self.ops.put_bytes += (req.key.len() + req.value.len()) as u64;
        Ok(Applied::Put(r))
    }

    fn delete_range(&mut self, req: &mvcc::DeleteRangeRequest) -> Result<Applied, ApplyError> {
        let r = self.wb.delete_range_into(req, &mut self.events)?;
        self.ops.txn(0, 0, 1);
        Ok(Applied::DeleteRange(r))
    }

    fn txn(&mut self, req: &mvcc::TxnRequest) -> Result<Applied, ApplyError> {
        let r = self.wb.txn_into(req, &mut self.events)?;
        let (ranges, puts, deletes, put_bytes) = txn_ops(req, &r);
        self.ops.txn(ranges, puts, deletes);
        self.ops.put_bytes += put_bytes;
        Ok(Applied::Txn(r))
    }

    fn compact(&mut self, revision: i64) -> Result<Applied, ApplyError> {
        let rev = self.wb.compact(revision)?;
        self.compacted = true;
        Ok(Applied::Compact(rev))
    }

    fn lease_grant(&mut self, id: i64, ttl: i64) -> Result<Applied, ApplyError> {
        self.wb.lease_grant(id, ttl)?;
        self.leases.push(LeaseChange::Grant { id, ttl });
        Ok(Applied::LeaseGrant { id, ttl })
    }

    fn lease_revoke(&mut self, id: i64) -> Result<Applied, ApplyError> {
        let a = self.wb.lease_revoke(id)?;
        self.events.extend(a.events);
        self.leases.push(LeaseChange::Revoke { id });
        Ok(Applied::LeaseRevoke(a.response))
    }

    fn auth_op(&mut self, caller: &Caller, op: &AuthOp, index: u64) -> Result<Applied, ApplyError> {
        let mut next = (*self.auth).clone();
        let (answer, effect) = next.apply(caller, op, index)?;
        if next != *self.auth {
            self.auth = Arc::new(next);
            self.auth_changed = true;
        }
        self.token_effects.push(effect);
        Ok(Applied::Auth(answer, self.wb.revision()))
    }

    /// Alarms are replicated state (etcd's `alarm` bucket): every member
    /// raises or clears the same ones.
    fn alarm(&mut self, activate: bool, member_id: u64, alarm: i32) -> Applied {
        let key = (member_id, alarm);
        let changed = if activate {
            self.applied.alarms.insert(key)
        } else {
            self.applied.alarms.remove(&key)
        };
        if changed {
            tracing::warn!(
                member = %format!("{member_id:016x}"),
                alarm = alarm_name(alarm),
                raised = activate,
                "alarm {}",
                if activate { "raised" } else { "disarmed" }
            );
        }
        // etcd lists the alarm raised even when it was already (the stored
        // one), a cleared one only when it was raised.
        Applied::Alarm(if changed || activate {
            vec![key]
        } else {
            Vec::new()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_writes_are_those_that_add_data() {
        let mut t = mvcc::TxnRequest::default();
        t.failure
            .push(mvcc::RequestOp::DeleteRange(mvcc::DeleteRangeRequest::new(
                "a", "b",
            )));
        assert!(!txn_has_put(&t));
        let mut inner = mvcc::TxnRequest::default();
        inner
            .success
            .push(mvcc::RequestOp::Put(mvcc::PutRequest::new("k", "v")));
        t.success.push(mvcc::RequestOp::Txn(inner));
        assert!(txn_has_put(&t));
    }
}
