//! `real-time order`: revisions agree with real time across keys.
//!
//! For linearizable operations A and B that answered `Ok` (every call but a
//! serializable read): if A completed before B was invoked, then
//! `rev(A) <= rev(B)`, and `rev(A) < rev(B)` when B made a new revision (a
//! put, a compare that held, a delete that deleted, a lease revoke that
//! deleted keys): B's revision did not exist before B began. The per-key
//! search cannot see this: it orders each key on its own.
//!
//! Writes with an unknown outcome that are in the log take part as B
//! (their revision is where the log has them, their invocation is known,
//! they never responded): they must not have taken effect before they
//! were invoked.
//!
//! The check sweeps B by invocation time, keeping the highest revision
//! among the A that completed before it: O(n log n).

use crate::history::{Call, EventKind, Outcome, Response};

use super::{Check, Ctx, describe, is_linearizable, response_revision, written};

pub(crate) const NAME: &str = "real-time order";

/// Violations described in full; the rest are counted.
const DESCRIBED: usize = 10;

struct Node {
    op: usize,
    start: u64,
    end: u64,
    rev: i64,
    /// Made a new revision (so nothing before it can have seen `rev`).
    creates: bool,
}

pub(crate) fn check(cx: &Ctx<'_>) -> Check {
    let h = cx.h;
    let log = &cx.log;
    let mut nodes = Vec::new();
    for (i, op) in h.ops.iter().enumerate() {
        if !is_linearizable(op) {
            continue;
        }
        if let Some(rev) = response_revision(op) {
            let creates = match &op.outcome {
                Outcome::Ok(Response::Put { .. }) => true,
                Outcome::Ok(Response::Cas { succeeded, .. }) => *succeeded,
                Outcome::Ok(Response::Delete { deleted, .. }) => *deleted > 0,
                Outcome::Ok(Response::LeaseRevoke { revision }) => match op.call {
                    // A revoke that deleted keys made their revision.
                    Call::LeaseRevoke { id } => log.at(*revision).iter().any(|&e| {
                        let ev = log.event(e);
                        ev.kind == EventKind::Delete
                            && log
                                .state_at(&ev.kv.key, revision - 1)
                                .is_some_and(|kv| kv.lease == id)
                    }),
                    _ => false,
                },
                _ => false,
            };
            nodes.push(Node {
                op: i,
                start: op.start,
                end: op.end,
                rev,
                creates,
            });
        } else if let (Outcome::Unknown { .. }, Some((key, value))) =
            (&op.outcome, written(&op.call))
            && let Some(&e) = log
                .puts_of(value)
                .iter()
                .find(|&&e| log.event(e).kv.key == key)
        {
            nodes.push(Node {
                op: i,
                start: op.start,
                end: u64::MAX,
                rev: log.event(e).kv.mod_revision,
                creates: true,
            });
        }
    }

    let mut by_start: Vec<usize> = (0..nodes.len()).collect();
    by_start.sort_by_key(|&n| nodes[n].start);
    let mut by_end: Vec<usize> = (0..nodes.len()).collect();
    by_end.sort_by_key(|&n| nodes[n].end);

    let mut v = Vec::new();
    let mut count = 0;
    let mut j = 0;
    // The completed node with the highest revision so far.
    let mut top: Option<usize> = None;
    for &b in &by_start {
        let nb = &nodes[b];
        while j < by_end.len() && nodes[by_end[j]].end < nb.start {
            let a = by_end[j];
            if top.is_none_or(|t| nodes[a].rev > nodes[t].rev) {
                top = Some(a);
            }
            j += 1;
        }
        let Some(a) = top else { continue };
        let na = &nodes[a];
        if na.rev > nb.rev || (nb.creates && na.rev >= nb.rev) {
            count += 1;
            if v.len() < DESCRIBED {
                v.push(format!(
                    "{} completed before {} began, yet saw revision {} {} {}",
                    describe(h, na.op),
                    describe(h, nb.op),
                    na.rev,
                    if na.rev > nb.rev { ">" } else { "=" },
                    if nb.creates {
                        format!("the revision the later one made ({})", nb.rev)
                    } else {
                        format!("the later one's revision ({})", nb.rev)
                    }
                ));
            }
        }
    }
    if count > v.len() {
        v.push(format!(
            "{} more operations saw a revision older than one seen before they began",
            count - v.len()
        ));
    }
    Check {
        name: NAME,
        violations: v,
        stats: format!("{} operations with a revision", nodes.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testutil::*;

    fn get(key: &str, start: u64, end: u64, revision: i64) -> crate::history::Operation {
        op(
            1,
            start,
            end,
            Call::Get {
                key: key.into(),
                serializable: false,
            },
            Outcome::Ok(Response::Get { revision, kv: None }),
        )
    }

    fn put(
        key: &str,
        value: &str,
        start: u64,
        end: u64,
        outcome: Outcome,
    ) -> crate::history::Operation {
        op(
            0,
            start,
            end,
            Call::Put {
                key: key.into(),
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
    fn an_inversion_across_keys_fails() {
        let ev = vec![put_ev("a", "1", 2, 2, 1)];
        // put a at 2 completes; a later read of b must be at >= 2.
        let p = put("a", "1", 0, 10, Outcome::Ok(Response::Put { revision: 2 }));
        assert!(verdict(&history(vec![p.clone(), get("b", 20, 30, 2)], ev.clone())).ok());
        let c = verdict(&history(vec![p.clone(), get("b", 20, 30, 1)], ev.clone()));
        assert_eq!(c.violations.len(), 1, "{c:?}");
        assert!(c.violations[0].contains("op#0") && c.violations[0].contains("op#1"));
        // Concurrent: either revision is fine.
        assert!(verdict(&history(vec![p, get("b", 5, 30, 1)], ev.clone())).ok());
        // A put cannot make a revision someone saw before it began.
        let c = verdict(&history(
            vec![
                get("b", 0, 5, 2),
                put("a", "1", 10, 20, Outcome::Ok(Response::Put { revision: 2 })),
            ],
            ev.clone(),
        ));
        assert!(!c.ok(), "{c:?}");
        // Nor can an unknown one.
        let c = verdict(&history(
            vec![
                get("b", 0, 5, 2),
                put(
                    "a",
                    "1",
                    10,
                    20,
                    Outcome::Unknown {
                        error: "eof".into(),
                    },
                ),
            ],
            ev,
        ));
        assert!(!c.ok(), "{c:?}");
    }
}
