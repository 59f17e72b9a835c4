//! Lease deadlines, as a sans-IO state machine (etcd's `lease/lessor.go`
//! rules, without its goroutines).
//!
//! Which leases exist and their granted TTLs are replicated state (the
//! store applies grants and revokes from the raft log and tells the lessor).
//! Deadlines are local: only the leader's count. A member that becomes
//! leader [`Lessor::promote`]s: every lease gets `ttl + extend` from now
//! (etcd extends by the election timeout), so a restart or a new leader
//! never expires leases whose holders kept them alive under the old one.
//! Followers hold no deadlines ([`Lessor::demote`]).
//!
//! Expired leases are not removed here: the leader proposes a revoke
//! through raft ([`Lessor::expired`] says which), and the lease goes away
//! when the revoke is applied. Keep-alives on an expired lease fail, as in
//! etcd, so a lease cannot come back once its expiry was decided.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// etcd's `MaxLeaseTTL`: 9,000,000,000 seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// How long a proposed revoke may be in flight before it is proposed again.
const REVOKE_RETRY: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy)]
struct Lease {
    ttl: i64,
    /// `None` while this member is not the leader.
    expiry: Option<Instant>,
    /// When a revoke was last proposed for it.
    revoking: Option<Instant>,
}

/// Lease deadlines. See the module docs.
#[derive(Debug)]
pub struct Lessor {
    leases: HashMap<i64, Lease>,
    /// (expiry, id) of leases with a deadline.
    queue: BTreeSet<(Instant, i64)>,
    primary: bool,
    min_ttl: i64,
}

/// Why a keep-alive failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewError {
    /// No such lease, or it has expired (a revoke is on its way).
    NotFound,
    /// This member is not the leader.
    NotPrimary,
}

impl Lessor {
    /// A lessor whose leases live at least `min_ttl` seconds (etcd:
    /// `ceil(1.5 × election timeout)`, 2 s with the default 1 s).
    pub fn new(min_ttl: i64) -> Self {
        Self {
            leases: HashMap::new(),
            queue: BTreeSet::new(),
            primary: false,
            min_ttl: min_ttl.max(1),
        }
    }

    /// etcd's minimum-TTL rule: a shorter TTL is raised to the minimum.
    pub fn effective_ttl(&self, ttl: i64) -> i64 {
        ttl.max(self.min_ttl)
    }

    /// Whether this member keeps deadlines (it is the leader).
    pub fn is_primary(&self) -> bool {
        self.primary
    }

    /// Number of leases.
    pub fn len(&self) -> usize {
        self.leases.len()
    }

    /// No leases.
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }

    fn set_expiry(&mut self, id: i64, expiry: Option<Instant>) {
        if let Some(l) = self.leases.get_mut(&id) {
            if let Some(old) = l.expiry {
                self.queue.remove(&(old, id));
            }
            l.expiry = expiry;
            if let Some(e) = expiry {
                self.queue.insert((e, id));
            }
        }
    }

    /// A grant was applied.
    pub fn grant(&mut self, id: i64, ttl: i64, now: Instant) {
        self.leases.insert(
            id,
            Lease {
                ttl,
                expiry: None,
                revoking: None,
            },
        );
        if self.primary {
            self.set_expiry(id, Some(now + secs(ttl)));
        }
    }

    /// A revoke was applied.
    pub fn revoke(&mut self, id: i64) {
        if let Some(l) = self.leases.remove(&id)
            && let Some(e) = l.expiry
        {
            self.queue.remove(&(e, id));
        }
    }

    /// A keep-alive: the lease lives `ttl` more seconds. Returns the TTL.
    pub fn renew(&mut self, id: i64, now: Instant) -> Result<i64, RenewError> {
        if !self.primary {
            return Err(RenewError::NotPrimary);
        }
        let l = self.leases.get(&id).ok_or(RenewError::NotFound)?;
        if l.expiry.is_some_and(|e| e <= now) || l.revoking.is_some() {
            return Err(RenewError::NotFound);
        }
        let ttl = l.ttl;
        self.set_expiry(id, Some(now + secs(ttl)));
        Ok(ttl)
    }

    /// (remaining seconds, granted TTL) of lease `id`. Remaining is
    /// truncated to whole seconds, as etcd reports it; on a follower (no
    /// deadline) it is the granted TTL.
    pub fn remaining(&self, id: i64, now: Instant) -> Option<(i64, i64)> {
        let l = self.leases.get(&id)?;
        let left = match l.expiry {
            Some(e) => e.saturating_duration_since(now).as_secs() as i64,
            None => l.ttl,
        };
        Some((left, l.ttl))
    }

    /// Granted lease ids (any order).
    pub fn ids(&self) -> Vec<i64> {
        self.leases.keys().copied().collect()
    }

    /// This member became leader: every lease gets its full TTL plus
    /// `extend` from now.
    pub fn promote(&mut self, now: Instant, extend: Duration) {
        self.primary = true;
        self.queue.clear();
        for (id, l) in self.leases.iter_mut() {
            let e = now + extend + secs(l.ttl);
            l.expiry = Some(e);
            l.revoking = None;
            self.queue.insert((e, *id));
        }
    }

    /// This member is no longer leader: no deadlines.
    pub fn demote(&mut self) {
        self.primary = false;
        self.queue.clear();
        for l in self.leases.values_mut() {
            l.expiry = None;
            l.revoking = None;
        }
    }

    /// Up to `max` expired leases to revoke now (leader only); each is
    /// marked so it is proposed again only after a retry delay.
    pub fn expired(&mut self, now: Instant, max: usize) -> Vec<i64> {
        let mut out = Vec::new();
        if !self.primary {
            return out;
        }
        for &(e, id) in self.queue.iter() {
            if e > now || out.len() >= max {
                break;
            }
            let l = self.leases.get(&id).expect("queued leases exist");
            if l.revoking.is_some_and(|at| now < at + REVOKE_RETRY) {
                continue;
            }
            out.push(id);
        }
        for id in &out {
            if let Some(l) = self.leases.get_mut(id) {
                l.revoking = Some(now);
            }
        }
        out
    }

    /// When the next lease expires, if any (to sleep until then).
    pub fn next_expiry(&self) -> Option<Instant> {
        self.queue.iter().next().map(|(e, _)| *e)
    }
}

fn secs(ttl: i64) -> Duration {
    Duration::from_secs(ttl.clamp(0, MAX_LEASE_TTL) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_ttl_rule() {
        let l = Lessor::new(2);
        assert_eq!(l.effective_ttl(1), 2);
        assert_eq!(l.effective_ttl(-5), 2);
        assert_eq!(l.effective_ttl(10), 10);
    }

    #[test]
    fn leader_expires_and_renews() {
        let t0 = Instant::now();
        let mut l = Lessor::new(2);
        l.promote(t0, Duration::ZERO);
        l.grant(1, 5, t0);
        l.grant(2, 10, t0);
        assert_eq!(l.remaining(1, t0), Some((5, 5)));
        assert!(l.expired(t0 + secs(4), 10).is_empty());
        // Keep 1 alive at t=4: now it lives until t=9.
        assert_eq!(l.renew(1, t0 + secs(4)), Ok(5));
        assert!(l.expired(t0 + secs(6), 10).is_empty());
        assert_eq!(l.expired(t0 + secs(9), 10), vec![1]);
        // Proposed once; not again until the retry delay passes.
        assert!(l.expired(t0 + secs(9), 10).is_empty());
        // Expired: no keep-alive brings it back.
        assert_eq!(l.renew(1, t0 + secs(9)), Err(RenewError::NotFound));
        assert_eq!(l.expired(t0 + secs(13), 10), vec![1, 2]);
        l.revoke(1);
        l.revoke(2);
        assert!(l.is_empty());
        assert_eq!(l.next_expiry(), None);
    }

    #[test]
    fn followers_keep_no_deadlines_and_new_leaders_extend() {
        let t0 = Instant::now();
        let mut l = Lessor::new(2);
        l.grant(7, 5, t0);
        assert_eq!(l.renew(7, t0), Err(RenewError::NotPrimary));
        assert!(l.expired(t0 + secs(100), 10).is_empty());
        assert_eq!(l.remaining(7, t0 + secs(100)), Some((5, 5)));
        // Elected at t=100 with a 1 s extension: expires at 106.
        let t1 = t0 + secs(100);
        l.promote(t1, Duration::from_secs(1));
        assert!(l.expired(t1 + secs(5), 10).is_empty());
        assert_eq!(l.expired(t1 + secs(6), 10), vec![7]);
        l.demote();
        assert!(l.expired(t1 + secs(60), 10).is_empty());
        assert_eq!(l.next_expiry(), None);
    }
}
