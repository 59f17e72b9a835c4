//! `acknowledged writes`: every write's outcome agrees with the log, and
//! every event in the log was made by a write that may have taken effect.
//!
//! - A put (or a compare-and-swap that succeeded) answered `Ok` at revision
//!   R is in the log exactly at R, on its key, with its lease. Missing: the
//!   acknowledged write was lost.
//! - A delete answered `Ok` with `deleted = 1` at R has a delete event of
//!   its key at R; with `deleted = 0` the key was absent at R (R may still
//!   hold a delete event of the key: another delete made R, and this one
//!   found the key gone).
//! - A write that answered `Fail` is nowhere in the log.
//! - A put event's value was written by a put or compare-and-swap of that
//!   key. A delete event of a key without a lease was made by a delete of
//!   the key that answered `Ok` at that revision or whose outcome is
//!   unknown and which was invoked before the revision existed (each such
//!   delete accounts for one event at most). Deletions of leased keys
//!   belong to the lease check.
//!
//! An `Unknown` write may be in the log or not; that it is there at most
//! once is the `applied twice` check, that it took effect after its
//! invocation the `real-time order` check.

use std::collections::HashMap;

use crate::history::{Call, EventKind, Outcome, Response};

use super::{Check, Ctx, describe, written};

pub(crate) const NAME: &str = "acknowledged writes";

pub(crate) fn check(cx: &Ctx<'_>) -> Check {
    let h = cx.h;
    let log = &cx.log;
    let mut v = Vec::new();

    // value -> the operation that writes it.
    let mut writer: HashMap<&str, usize> = HashMap::new();
    for (i, op) in h.ops.iter().enumerate() {
        if let Some((_, value)) = written(&op.call) {
            if let Some(&j) = writer.get(value) {
                v.push(format!(
                    "value {value} is written by two operations (the harness must write unique values): {} and {}",
                    describe(h, j),
                    describe(h, i)
                ));
            } else {
                writer.insert(value, i);
            }
        }
    }

    let (mut acked, mut failed) = (0, 0);
    for (i, op) in h.ops.iter().enumerate() {
        if let Some((key, value)) = written(&op.call) {
            let evs = log.puts_of(value);
            for &e in evs {
                let ev = log.event(e);
                if ev.kv.key != key {
                    v.push(format!(
                        "value {value} is on key {} at revision {}, but its write was to {key}: {}",
                        ev.kv.key,
                        ev.kv.mod_revision,
                        describe(h, i)
                    ));
                }
            }
            let acked_at = match &op.outcome {
                Outcome::Ok(Response::Put { revision }) if matches!(op.call, Call::Put { .. }) => {
                    Some(*revision)
                }
                Outcome::Ok(Response::Cas {
                    revision,
                    succeeded,
                    ..
                }) if matches!(op.call, Call::Cas { .. }) => succeeded.then_some(*revision),
                Outcome::Ok(_) => {
                    v.push(format!(
                        "answer does not match the request: {}",
                        describe(h, i)
                    ));
                    None
                }
                Outcome::Fail { .. } => {
                    failed += 1;
                    if !evs.is_empty() {
                        v.push(format!(
                            "failed write applied at revision {}: {}",
                            log.event(evs[0]).kv.mod_revision,
                            describe(h, i)
                        ));
                    }
                    None
                }
                Outcome::Unknown { .. } => None,
            };
            if let Some(rev) = acked_at {
                acked += 1;
                let found = evs.iter().map(|&e| log.event(e)).find(|e| {
                    e.kv.mod_revision == rev && e.kv.key == key && e.kind == EventKind::Put
                });
                match found {
                    None if evs.is_empty() => v.push(format!(
                        "acknowledged write lost (value not in the log): {}",
                        describe(h, i)
                    )),
                    None => v.push(format!(
                        "acknowledged write is in the log at revision(s) {:?}, not at its response revision {rev}: {}",
                        evs.iter().map(|&e| log.event(e).kv.mod_revision).collect::<Vec<_>>(),
                        describe(h, i)
                    )),
                    Some(e) => {
                        let want = match &op.call {
                            Call::Put { lease, .. } => lease.unwrap_or(0),
                            _ => 0,
                        };
                        if e.kv.lease != want {
                            v.push(format!(
                                "put is in the log with lease {:x}, asked {want:x}: {}",
                                e.kv.lease,
                                describe(h, i)
                            ));
                        }
                    }
                }
            }
        }
        if let Call::Delete { key } = &op.call {
            match &op.outcome {
                Outcome::Ok(Response::Delete { revision, deleted }) => {
                    acked += 1;
                    let rev = *revision;
                    let here = log
                        .at(rev)
                        .iter()
                        .map(|&e| log.event(e))
                        .find(|e| e.kv.key == *key);
                    match (*deleted, here) {
                        (1, Some(e)) if e.kind == EventKind::Delete => {}
                        (1, _) => v.push(format!(
                            "acknowledged delete has no delete event of {key} at revision {rev}: {}",
                            describe(h, i)
                        )),
                        // The revision may hold another delete of the key
                        // (this one found it gone): only the state counts.
                        (0, _) if log.state_at(key, rev).is_some() => {
                            v.push(format!(
                                "delete answered 0 deleted but {key} existed at revision {rev}: {}",
                                describe(h, i)
                            ))
                        }
                        (0, _) => {}
                        (n, _) => v.push(format!(
                            "a delete of one key answered {n} deleted: {}",
                            describe(h, i)
                        )),
                    }
                }
                Outcome::Ok(_) => v.push(format!(
                    "answer does not match the request: {}",
                    describe(h, i)
                )),
                Outcome::Fail { .. } => failed += 1,
                Outcome::Unknown { .. } => {}
            }
        }
    }

    // Every put event has a writer.
    let mut orphans = 0;
    for (value, evs) in log.values() {
        if !writer.contains_key(value) {
            orphans += 1;
            let e = log.event(evs[0]);
            v.push(format!(
                "put of {}={value} at revision {} was written by no operation",
                e.kv.key, e.kv.mod_revision
            ));
        }
    }

    // Every delete event of an unleased key has a delete that made it.
    let mut ok_deletes: HashMap<(&str, i64), usize> = HashMap::new();
    let mut unknown_deletes: HashMap<&str, Vec<u64>> = HashMap::new();
    for op in &h.ops {
        if let Call::Delete { key } = &op.call {
            match &op.outcome {
                Outcome::Ok(Response::Delete {
                    revision,
                    deleted: 1,
                }) => *ok_deletes.entry((key, *revision)).or_default() += 1,
                Outcome::Unknown { .. } => unknown_deletes.entry(key).or_default().push(op.start),
                _ => {}
            }
        }
    }
    for starts in unknown_deletes.values_mut() {
        starts.sort_unstable();
    }
    // Per key, the unknown deletes used so far. Deletions come in revision
    // order, and the latest time a revision can have been made grows with
    // it, so a delete invoked early enough for one event is early enough
    // for every later one: counting suffices.
    let mut used: HashMap<&str, usize> = HashMap::new();
    for (rev, idx) in log.revisions() {
        for &e in idx {
            let ev = log.event(e);
            if ev.kind != EventKind::Delete {
                continue;
            }
            let key = &ev.kv.key[..];
            if log.state_at(key, rev - 1).is_some_and(|kv| kv.lease != 0) {
                continue; // a lease's deletion: the lease check's
            }
            if let Some(n) = ok_deletes.get_mut(&(key, rev))
                && *n > 0
            {
                *n -= 1;
                continue;
            }
            let latest = cx.time.upper(rev).map_or(u64::MAX, |(t, _)| t);
            let starts = unknown_deletes.get(key).map_or(&[][..], |s| &s[..]);
            let usable = starts.partition_point(|&s| s <= latest);
            let u = used.entry(key).or_default();
            if *u < usable {
                *u += 1;
            } else {
                v.push(format!(
                    "delete of {key} at revision {rev} was made by no delete that answered it or may have taken effect by then"
                ));
            }
        }
    }

    Check {
        name: NAME,
        violations: v,
        stats: format!(
            "{acked} acknowledged writes, {failed} failed, {} events, {orphans} orphan values",
            log.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testutil::*;

    fn put(value: &str, outcome: Outcome) -> crate::history::Operation {
        op(
            0,
            0,
            10,
            Call::Put {
                key: "a".into(),
                value: value.into(),
                lease: None,
            },
            outcome,
        )
    }

    fn verdict(h: &crate::history::History) -> Check {
        crate::check::check(h).get(NAME).unwrap().clone()
    }

    #[test]
    fn acked_failed_and_unknown_puts() {
        let ok2 = Outcome::Ok(Response::Put { revision: 2 });
        let unknown = Outcome::Unknown {
            error: "timeout".into(),
        };
        let fail = Outcome::Fail {
            error: "no leader".into(),
        };
        let ev = vec![put_ev("a", "1", 2, 2, 1)];
        assert!(verdict(&history(vec![put("1", ok2.clone())], ev.clone())).ok());
        // Unknown: valid both ways.
        assert!(verdict(&history(vec![put("1", unknown.clone())], ev.clone())).ok());
        assert!(verdict(&history(vec![put("1", unknown)], vec![])).ok());
        // Lost, failed-but-applied, orphan.
        let c = verdict(&history(vec![put("1", ok2.clone())], vec![]));
        assert!(c.violations[0].contains("lost"), "{c:?}");
        let c = verdict(&history(vec![put("1", fail)], ev.clone()));
        assert!(c.violations[0].contains("failed write applied"), "{c:?}");
        let c = verdict(&history(vec![], ev.clone()));
        assert!(c.violations[0].contains("no operation"), "{c:?}");
        // At the wrong revision.
        let c = verdict(&history(
            vec![put("1", Outcome::Ok(Response::Put { revision: 3 }))],
            ev,
        ));
        assert!(c.violations[0].contains("not at its response"), "{c:?}");
    }

    #[test]
    fn deletes_need_a_maker() {
        let del = |outcome| op(0, 20, 30, Call::Delete { key: "a".into() }, outcome);
        let ev = vec![put_ev("a", "1", 2, 2, 1), del_ev("a", 3)];
        let ok = Outcome::Ok(Response::Delete {
            revision: 3,
            deleted: 1,
        });
        let p = put("1", Outcome::Ok(Response::Put { revision: 2 }));
        assert!(verdict(&history(vec![p.clone(), del(ok)], ev.clone())).ok());
        let unknown = Outcome::Unknown {
            error: "eof".into(),
        };
        assert!(verdict(&history(vec![p.clone(), del(unknown)], ev.clone())).ok());
        let c = verdict(&history(vec![p.clone()], ev.clone()));
        assert!(c.violations[0].contains("made by no delete"), "{c:?}");
        let zero = Outcome::Ok(Response::Delete {
            revision: 2,
            deleted: 0,
        });
        let c = verdict(&history(vec![p, del(zero)], ev));
        assert!(
            c.violations.iter().any(|v| v.contains("answered 0")),
            "{c:?}"
        );
    }
}
