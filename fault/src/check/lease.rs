//! `leases`: etcd's lease guarantees.
//!
//! In this workload a leased key is deleted only by its lease's revoke or
//! expiry, which deletes every key of the lease in one revision. So a
//! delete event of a key that had lease L is L's end, and:
//! - all of L's keys at that point go in that one revision;
//! - no key is put with L after it (a put with a gone lease fails);
//! - if no revoke of L may have done it (no `Ok` revoke at that revision,
//!   no unknown revoke invoked by then), it is an expiry, which must not
//!   come before the grant's invocation + TTL: a deletion whose revision
//!   certainly existed earlier (the `timeline` upper bound) is a lease
//!   revoked early.
//!
//! A revoke that answered `Ok` at R deleted at R every key L had then,
//! and L is not among the final leases; nothing is put with L after R.
//!
//! An expired lease is gone: a lease granted long enough before the final
//! read is not among the final leases and has no key in the final state.
//! Long enough is TTL + 20 s after the later of the grant's response and
//! the end of the last fault: etcd gives every lease its full TTL again
//! when a new leader takes over (faults cause elections; the rule
//! counted from the grant only, which a run whose faults end late would
//! break without a bug), and 20 s covers the election after the last
//! fault plus the lessor's 500 ms expiry tick and the revoke's commit.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::history::{Call, EventKind, Outcome, Response};

use super::{Check, Ctx, describe, secs};

pub(crate) const NAME: &str = "leases";

/// Slack after a lease's TTL before it must be gone (see the module doc).
pub(crate) const EXPIRY_SLACK_NS: u64 = 20_000_000_000;

const NS_PER_S: u64 = 1_000_000_000;

pub(crate) fn check(cx: &Ctx<'_>) -> Check {
    let h = cx.h;
    let log = &cx.log;
    let fin = cx.fin;
    let mut v = Vec::new();

    // id -> (grant op, ttl)
    let mut grants: HashMap<i64, (usize, i64)> = HashMap::new();
    let mut revokes: HashMap<i64, Vec<usize>> = HashMap::new();
    for (i, op) in h.ops.iter().enumerate() {
        match (&op.call, &op.outcome) {
            (Call::LeaseGrant { .. }, Outcome::Ok(Response::LeaseGrant { id, ttl, .. })) => {
                if let Some((j, _)) = grants.insert(*id, (i, *ttl)) {
                    v.push(format!(
                        "lease {id:x} granted twice: {} and {}",
                        describe(h, j),
                        describe(h, i)
                    ));
                }
            }
            (Call::LeaseRevoke { id }, Outcome::Ok(_) | Outcome::Unknown { .. }) => {
                revokes.entry(*id).or_default().push(i)
            }
            _ => {}
        }
    }

    // Every key ever put with each lease, and the revisions at which a
    // lease's keys were deleted.
    let mut lease_keys: HashMap<i64, BTreeSet<&str>> = HashMap::new();
    let mut puts_with: HashMap<i64, Vec<i64>> = HashMap::new();
    let mut ends: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for (rev, idx) in log.revisions() {
        for &e in idx {
            let ev = log.event(e);
            match ev.kind {
                EventKind::Put if ev.kv.lease != 0 => {
                    lease_keys
                        .entry(ev.kv.lease)
                        .or_default()
                        .insert(&ev.kv.key);
                    puts_with.entry(ev.kv.lease).or_default().push(rev);
                }
                EventKind::Delete => {
                    if let Some(kv) = log.state_at(&ev.kv.key, rev - 1)
                        && kv.lease != 0
                    {
                        ends.entry(kv.lease).or_default().insert(rev);
                    }
                }
                _ => {}
            }
        }
    }
    // The keys lease `id` had at `rev`.
    let keys_at = |id: i64, rev: i64| -> Vec<&str> {
        lease_keys.get(&id).map_or(vec![], |ks| {
            ks.iter()
                .copied()
                .filter(|k| log.state_at(k, rev).is_some_and(|kv| kv.lease == id))
                .collect()
        })
    };
    // The keys lease `id` still had after `rev`: a lease that ended at
    // `rev` has none. (A revoke of a lease without keys makes no revision:
    // its answer is the revision it found, whose keys count, not those of
    // the revision before.)
    let left_after = |id: i64, rev: i64| keys_at(id, rev);

    let mut early_checked = 0;
    for (&id, revs) in &ends {
        let first = *revs
            .iter()
            .next()
            .expect("a lease in `ends` has a revision");
        if revs.len() > 1 {
            v.push(format!(
                "lease {id:x}'s keys deleted at several revisions {revs:?}: a lease ends once"
            ));
        }
        let left = left_after(id, first);
        if !left.is_empty() {
            v.push(format!(
                "lease {id:x} ended at revision {first} but kept keys {left:?}"
            ));
        }
        let later: Vec<i64> = puts_with.get(&id).map_or(vec![], |p| {
            p.iter().copied().filter(|&r| r > first).collect()
        });
        if !later.is_empty() {
            v.push(format!(
                "key(s) put with lease {id:x} at revisions {later:?}, after it ended at {first}"
            ));
        }
        // Revoked or expired?
        let latest = cx.time.upper(first);
        let by_revoke = revokes.get(&id).is_some_and(|rs| {
            rs.iter().any(|&i| match &h.ops[i].outcome {
                Outcome::Ok(Response::LeaseRevoke { revision }) => *revision == first,
                _ => latest.is_none_or(|(t, _)| h.ops[i].start <= t),
            })
        });
        if by_revoke {
            continue;
        }
        let Some(&(g, ttl)) = grants.get(&id) else {
            continue; // no grant recorded: its TTL is unknown
        };
        early_checked += 1;
        let due = h.ops[g].start.saturating_add(ttl.max(0) as u64 * NS_PER_S);
        if let Some((t, op)) = latest
            && t < due
        {
            v.push(format!(
                "lease {id:x} (ttl {ttl}s) expired early: its keys were deleted at revision {first}, which existed by {} ({}), before the TTL could run out at {} ({})",
                secs(t),
                describe(h, op),
                secs(due),
                describe(h, g)
            ));
        }
    }

    // Ok revokes.
    for (&id, rs) in &revokes {
        for &i in rs {
            let Outcome::Ok(Response::LeaseRevoke { revision }) = &h.ops[i].outcome else {
                continue;
            };
            let left = left_after(id, *revision);
            if !left.is_empty() {
                v.push(format!(
                    "revoke kept keys {left:?} of the lease at its revision {revision}: {}",
                    describe(h, i)
                ));
            }
            let later: Vec<i64> = puts_with.get(&id).map_or(vec![], |p| {
                p.iter().copied().filter(|r| r > revision).collect()
            });
            if !later.is_empty() {
                v.push(format!(
                    "key(s) put with lease {id:x} at revisions {later:?}, after its revoke: {}",
                    describe(h, i)
                ));
            }
            if fin.leases.contains(&id) {
                v.push(format!(
                    "lease {id:x} is still alive at the end after its revoke: {}",
                    describe(h, i)
                ));
            }
        }
    }

    // Expired leases are gone.
    let last_fault = h.faults.iter().map(|f| f.end).max().unwrap_or(0);
    let mut due_checked = 0;
    for (&id, &(g, ttl)) in &grants {
        let from = h.ops[g].end.max(last_fault);
        let due = from
            .saturating_add(ttl.max(0) as u64 * NS_PER_S)
            .saturating_add(EXPIRY_SLACK_NS);
        if due > fin.time {
            continue;
        }
        due_checked += 1;
        if fin.leases.contains(&id) {
            v.push(format!(
                "lease {id:x} (ttl {ttl}s) still alive at the end ({}), due to expire by {}: {}",
                secs(fin.time),
                secs(due),
                describe(h, g)
            ));
        }
        let kept = keys_at(id, fin.revision);
        if !kept.is_empty() {
            v.push(format!(
                "lease {id:x} (ttl {ttl}s) expired by {} but its keys {kept:?} are still in the final state: {}",
                secs(due),
                describe(h, g)
            ));
        }
    }

    Check {
        name: NAME,
        violations: v,
        stats: format!(
            "{} leases granted, {} ended in the log ({early_checked} by expiry checked against their TTL), {due_checked} due to be gone at the end",
            grants.len(),
            ends.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testutil::*;
    use crate::history::{Event, History, Operation};

    const S: u64 = NS_PER_S;
    const ID: i64 = 0x77;

    fn grant(start: u64, ttl: i64) -> Operation {
        op(
            0,
            start,
            start + S / 100,
            Call::LeaseGrant { ttl },
            Outcome::Ok(Response::LeaseGrant {
                revision: 1,
                id: ID,
                ttl,
            }),
        )
    }

    fn put(start: u64, key: &str, value: &str, revision: i64) -> Operation {
        op(
            0,
            start,
            start + S / 100,
            Call::Put {
                key: key.into(),
                value: value.into(),
                lease: Some(ID),
            },
            Outcome::Ok(Response::Put { revision }),
        )
    }

    fn get(start: u64, revision: i64) -> Operation {
        op(
            1,
            start,
            start + S / 100,
            Call::Get {
                key: "z".into(),
                serializable: false,
            },
            Outcome::Ok(Response::Get { revision, kv: None }),
        )
    }

    fn leased(key: &str, value: &str, rev: i64) -> Event {
        let mut e = put_ev(key, value, rev, rev, 1);
        e.kv.lease = ID;
        e
    }

    /// Grant ttl 10 s at 0, two keys at revisions 2 and 3, both deleted at
    /// 4; a read at `read_at` sees revision 4.
    fn expiry(read_at: u64) -> History {
        history(
            vec![
                grant(0, 10),
                put(S, "a", "1", 2),
                put(2 * S, "b", "2", 3),
                get(read_at, 4),
            ],
            vec![
                leased("a", "1", 2),
                leased("b", "2", 3),
                del_ev("a", 4),
                del_ev("b", 4),
            ],
        )
    }

    fn verdict(h: &History) -> Check {
        crate::check::check(h).get(NAME).unwrap().clone()
    }

    #[test]
    fn expiry_after_the_ttl_passes_before_it_fails() {
        assert!(verdict(&expiry(11 * S)).ok());
        let c = verdict(&expiry(5 * S));
        assert!(c.violations[0].contains("expired early"), "{c:?}");
    }

    #[test]
    fn a_revoke_explains_an_early_end() {
        let mut h = expiry(5 * S);
        h.ops.push(op(
            2,
            4 * S,
            4 * S + 1,
            Call::LeaseRevoke { id: ID },
            Outcome::Ok(Response::LeaseRevoke { revision: 4 }),
        ));
        assert!(verdict(&h).ok(), "{:?}", verdict(&h));
    }

    #[test]
    fn a_partial_end_fails() {
        let mut h = expiry(11 * S);
        let fin = h.final_state.as_mut().unwrap();
        fin.events.pop();
        fin.revision = 4;
        let c = verdict(&h);
        assert!(
            c.violations.iter().any(|v| v.contains("kept keys")),
            "{c:?}"
        );
    }

    #[test]
    fn an_expired_lease_must_be_gone() {
        // Granted, a key put, never deleted; the final read is 31 s later.
        let mut h = history(
            vec![grant(0, 10), put(S, "a", "1", 2)],
            vec![leased("a", "1", 2)],
        );
        h.final_state.as_mut().unwrap().time = 31 * S;
        let c = verdict(&h);
        assert!(
            c.violations
                .iter()
                .any(|v| v.contains("still in the final state")),
            "{c:?}"
        );
        // Not yet due: 29 s.
        h.final_state.as_mut().unwrap().time = 29 * S;
        assert!(verdict(&h).ok());
        // A fault that ended at 20 s postpones it (elections renew TTLs).
        h.final_state.as_mut().unwrap().time = 31 * S;
        h.faults.push(crate::history::Fault {
            start: 15 * S,
            end: 20 * S,
            what: "pause 0".into(),
        });
        assert!(verdict(&h).ok());
        // Still in the final lease list.
        let mut h = history(vec![grant(0, 10)], vec![]);
        let fin = h.final_state.as_mut().unwrap();
        fin.time = 31 * S;
        fin.leases = vec![ID];
        assert!(!verdict(&h).ok());
    }
}
