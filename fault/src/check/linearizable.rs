//! `linearizable per key`: the operations on each key, as the clients saw
//! them, fit one sequential register (the search is in `wgl.rs`).
//!
//! What goes in, per key:
//! - puts and deletes that answered `Ok` (a delete with what it deleted);
//! - compare-and-swaps that answered `Ok`: the expected mod revision is
//!   turned into the value the log had at that revision (0: absent; a
//!   revision at which no put of the key happened: a compare that can
//!   never hold), a failed one with the value it returned;
//! - linearizable reads that answered `Ok` (serializable reads may be
//!   stale by design; the `reads` check covers them);
//! - writes with an unknown outcome whose value is in the log on this key:
//!   they happened, at some time after their invocation (no response);
//!   unknown deletes: maybe, after their invocation (no response).
//!
//! - deletions by a lease (revoke or expiry; the log's delete events of a
//!   leased key): the server made them, no client call did, so they enter
//!   as deletes bounded by when their revision can have been made (the
//!   `timeline` bounds; no upper bound: no response).
//!
//! Failed operations, unknown reads and unknown writes not in the log did
//! nothing and are left out.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use crate::history::{Call, EventKind, Outcome, Response};

use super::wgl::{self, ABSENT, Kind, NEVER, Op, State, Verdict};
use super::{Check, Ctx, describe};

pub(crate) const NAME: &str = "linearizable per key";

/// Interned values of one key; 0 is [`ABSENT`].
#[derive(Default)]
struct Values<'a>(HashMap<&'a str, State>);

impl<'a> Values<'a> {
    fn of(&mut self, v: &'a str) -> State {
        let next = self.0.len() as State + 1;
        *self.0.entry(v).or_insert(next)
    }
}

pub(crate) fn check(cx: &Ctx<'_>, limit: u64) -> Check {
    let h = cx.h;
    let log = &cx.log;
    let mut per_key: BTreeMap<&str, (Vec<Op>, Values<'_>)> = BTreeMap::new();
    let mut unknown = 0;
    for (i, op) in h.ops.iter().enumerate() {
        let key = match &op.call {
            Call::Put { key, .. }
            | Call::Delete { key }
            | Call::Cas { key, .. }
            | Call::Get {
                key,
                serializable: false,
            } => &key[..],
            _ => continue,
        };
        let (ops, values) = per_key.entry(key).or_default();
        let in_log = |value: &str| {
            log.puts_of(value)
                .iter()
                .any(|&e| log.event(e).kv.key == key)
        };
        let is_unknown = matches!(op.outcome, Outcome::Unknown { .. });
        let kind = match (&op.call, &op.outcome) {
            (Call::Put { value, .. }, Outcome::Ok(Response::Put { .. })) => {
                Some(Kind::Put(values.of(value)))
            }
            (Call::Put { value, .. }, Outcome::Unknown { .. }) if in_log(value) => {
                Some(Kind::Put(values.of(value)))
            }
            (Call::Delete { .. }, Outcome::Ok(Response::Delete { deleted, .. })) => {
                Some(Kind::Delete(Some(*deleted > 0)))
            }
            (Call::Delete { .. }, Outcome::Unknown { .. }) => Some(Kind::Delete(None)),
            (Call::Cas { expect, value, .. }, outcome) => {
                let expect = if *expect == 0 {
                    ABSENT
                } else {
                    match log.state_at(key, *expect) {
                        Some(kv) if kv.mod_revision == *expect => values.of(&kv.value),
                        _ => NEVER,
                    }
                };
                match outcome {
                    Outcome::Ok(Response::Cas {
                        succeeded: true, ..
                    }) => Some(Kind::CasHeld {
                        expect,
                        value: values.of(value),
                    }),
                    Outcome::Ok(Response::Cas {
                        succeeded: false,
                        current,
                        ..
                    }) => Some(Kind::CasFailed {
                        expect,
                        current: current.as_ref().map_or(ABSENT, |kv| values.of(&kv.value)),
                    }),
                    Outcome::Unknown { .. } if in_log(value) => Some(Kind::CasHeld {
                        expect,
                        value: values.of(value),
                    }),
                    _ => None,
                }
            }
            (Call::Get { .. }, Outcome::Ok(Response::Get { kv, .. })) => Some(Kind::Get(
                kv.as_ref().map_or(ABSENT, |kv| values.of(&kv.value)),
            )),
            _ => None,
        };
        if let Some(kind) = kind {
            if is_unknown {
                unknown += 1;
            }
            ops.push(Op {
                start: op.start,
                end: if is_unknown { u64::MAX } else { op.end },
                kind,
                id: i,
            });
        }
    }

    // Deletions by a lease. Their `id` is past the operations: ops.len() +
    // the revision, so a message can name them.
    for (rev, idx) in log.revisions() {
        for &e in idx {
            let ev = log.event(e);
            let leased = log
                .state_at(&ev.kv.key, rev - 1)
                .is_some_and(|kv| kv.lease != 0);
            if ev.kind != EventKind::Delete || !leased {
                continue;
            }
            let (ops, _) = per_key.entry(&ev.kv.key).or_default();
            ops.push(Op {
                start: cx.time.lower(rev).map_or(0, |(t, _)| t),
                end: cx.time.upper(rev).map_or(u64::MAX, |(t, _)| t),
                kind: Kind::Delete(None),
                id: h.ops.len() + rev as usize,
            });
        }
    }
    let name = |id: usize| {
        if id < h.ops.len() {
            describe(h, id)
        } else {
            format!("the lease's deletion at revision {}", id - h.ops.len())
        }
    };

    let t0 = Instant::now();
    let mut v = Vec::new();
    let (mut total_ops, mut total_steps, mut max_steps) = (0, 0, 0);
    for (key, (ops, _)) in &per_key {
        total_ops += ops.len();
        let steps = match wgl::search(ops, limit) {
            Verdict::Linearizable { steps } => steps,
            Verdict::Violation {
                steps,
                placed,
                stuck,
            } => {
                v.push(format!(
                    "key {key}: its {} operations are not linearizable; the longest order found holds {placed}, then this one could not be placed: {}",
                    ops.len(),
                    name(ops[stuck].id)
                ));
                steps
            }
            Verdict::Inconclusive { steps } => {
                v.push(format!(
                    "key {key}: inconclusive, the search of its {} operations stopped after {steps} steps (counted as a failure)",
                    ops.len()
                ));
                steps
            }
        };
        total_steps += steps;
        max_steps = max_steps.max(steps);
    }
    Check {
        name: NAME,
        violations: v,
        stats: format!(
            "{} keys, {total_ops} operations ({unknown} unknown), {total_steps} steps (max {max_steps} on one key), {} ms",
            per_key.len(),
            t0.elapsed().as_millis()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testutil::*;
    use crate::history::Kv;

    fn get(start: u64, end: u64, revision: i64, kv: Option<Kv>) -> crate::history::Operation {
        op(
            1,
            start,
            end,
            Call::Get {
                key: "a".into(),
                serializable: false,
            },
            Outcome::Ok(Response::Get { revision, kv }),
        )
    }

    fn put(start: u64, end: u64, value: &str, outcome: Outcome) -> crate::history::Operation {
        op(
            0,
            start,
            end,
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
    fn a_stale_read_is_named() {
        let ev = vec![put_ev("a", "1", 2, 2, 1), put_ev("a", "2", 2, 3, 2)];
        let ops = vec![
            put(0, 10, "1", Outcome::Ok(Response::Put { revision: 2 })),
            put(20, 30, "2", Outcome::Ok(Response::Put { revision: 3 })),
            get(40, 50, 3, Some(kv("a", "2", 2, 3, 2))),
        ];
        assert!(verdict(&history(ops.clone(), ev.clone())).ok());
        let mut stale = ops;
        stale[2] = get(40, 50, 2, Some(kv("a", "1", 2, 2, 1)));
        let c = verdict(&history(stale, ev));
        assert!(c.violations[0].contains("key a"), "{c:?}");
        assert!(c.violations[0].contains("op#2"), "{c:?}");
    }

    #[test]
    fn an_unknown_put_counts_only_if_in_the_log() {
        let unknown = || Outcome::Unknown {
            error: "timeout".into(),
        };
        // In the log: a read may see it.
        let ops = vec![
            put(0, 10, "1", unknown()),
            get(40, 50, 2, Some(kv("a", "1", 2, 2, 1))),
        ];
        assert!(verdict(&history(ops, vec![put_ev("a", "1", 2, 2, 1)])).ok());
        // Not in the log: it never happened, so the read of it is wrong.
        let ops = vec![
            put(0, 10, "1", unknown()),
            get(40, 50, 1, Some(kv("a", "1", 2, 2, 1))),
        ];
        assert!(!verdict(&history(ops, vec![])).ok());
    }
}
