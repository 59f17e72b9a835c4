//! The linearizability search for one key: Wing & Gong's algorithm with
//! Lowe's memoization, as porcupine implements it.
//!
//! The model is one register: its state is the key's value (interned; 0 =
//! absent). Every operation has an invocation and a response; they are
//! put in one list by time (an invocation before a response at the same
//! instant, so operations that touch are concurrent: the clock cannot
//! tell them apart). The search walks the list: at an invocation it tries
//! to linearize that operation now (the model accepts its output from the
//! current state, and the pair (set of linearized operations, new state)
//! was not seen before), removes it from the list and starts over from the
//! head; at a response (an operation that had to be linearized by now and
//! was not) it undoes the last choice and tries the next invocation after
//! it. The list empties exactly when a linearization exists.
//!
//! The cache of (linearized set, state) is what makes this fast: two
//! orders that linearize the same operations into the same value lead to
//! the same future, so the second is cut. Operations whose outcome is
//! unknown never respond (their response is at +inf): they may be
//! linearized anywhere after their invocation, and being last is the same
//! as never happening. Unknown deletes are interchangeable (same effect,
//! nothing observed), so they are linearized only in invocation order,
//! which cuts 2^k equivalent subsets to k + 1.
//!
//! The search is bounded by a step count: a history it cannot settle in
//! [`STEP_LIMIT`] steps is `Inconclusive`, which the checker counts as a
//! failure (an unchecked key must not pass silently).

use std::collections::HashSet;

/// A register state: an interned value, [`ABSENT`], or [`NEVER`].
pub(crate) type State = u32;
/// The key does not exist.
pub(crate) const ABSENT: State = 0;
/// A state no register is ever in: the expectation of a compare that can
/// never hold (its mod revision names no put of the key).
pub(crate) const NEVER: State = u32::MAX;

/// Steps per key before the search gives up. A linearizable history of
/// 300 operations from 12 clients settles in a few thousand steps; a
/// million steps is about a second and ~100 MB of cache at most.
pub(crate) const STEP_LIMIT: u64 = 1_000_000;

/// What one operation does to the register and what it observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Put(State),
    /// `Some(true)`: deleted the key; `Some(false)`: the key was absent;
    /// `None`: outcome unknown (deletes if present).
    Delete(Option<bool>),
    /// A compare that held (or must have: unknown but applied).
    CasHeld {
        expect: State,
        value: State,
    },
    /// A compare that failed, returning the key's value.
    CasFailed {
        expect: State,
        current: State,
    },
    Get(State),
}

impl Kind {
    /// The state after this operation from `s`, if its output fits `s`.
    fn step(self, s: State) -> Option<State> {
        match self {
            Kind::Put(v) => Some(v),
            Kind::Delete(Some(true)) => (s != ABSENT).then_some(ABSENT),
            Kind::Delete(Some(false)) => (s == ABSENT).then_some(ABSENT),
            Kind::Delete(None) => Some(ABSENT),
            Kind::CasHeld { expect, value } => (s == expect).then_some(value),
            Kind::CasFailed { expect, current } => (s != expect && s == current).then_some(s),
            Kind::Get(v) => (s == v).then_some(s),
        }
    }
}

/// One operation on the key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Op {
    pub start: u64,
    /// `u64::MAX`: never responded (outcome unknown).
    pub end: u64,
    pub kind: Kind,
    /// The operation's index in the history, for messages.
    pub id: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Linearizable {
        steps: u64,
    },
    /// No order exists. `placed`: the most operations any attempt
    /// linearized; `stuck`: the first operation that then had to be
    /// linearized and could not be (index into the ops).
    Violation {
        steps: u64,
        placed: usize,
        stuck: usize,
    },
    Inconclusive {
        steps: u64,
    },
}

const NIL: usize = usize::MAX;

/// Search for a linearization of `ops` from an absent key.
pub(crate) fn search(ops: &[Op], limit: u64) -> Verdict {
    let n = ops.len();
    if n == 0 {
        return Verdict::Linearizable { steps: 0 };
    }
    // Entries: (time, is_response, op). Invocations sort before responses
    // at the same time.
    let mut entries: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, op) in ops.iter().enumerate() {
        entries.push((op.start, false, i));
        entries.push((op.end.max(op.start), true, i));
    }
    entries.sort_unstable();
    let head = 2 * n;
    let mut next = vec![NIL; 2 * n + 1];
    let mut prev = vec![NIL; 2 * n + 1];
    let mut call_node = vec![0; n];
    let mut ret_node = vec![0; n];
    let mut last = head;
    for (k, &(_, is_ret, i)) in entries.iter().enumerate() {
        if is_ret {
            ret_node[i] = k;
        } else {
            call_node[i] = k;
        }
        next[last] = k;
        prev[k] = last;
        last = k;
    }
    // Unknown deletes in invocation order: only the next one may go.
    let mut rank = vec![u32::MAX; n];
    let mut ranked = 0u32;
    for &(_, is_ret, i) in &entries {
        if !is_ret && ops[i].kind == Kind::Delete(None) && ops[i].end == u64::MAX {
            rank[i] = ranked;
            ranked += 1;
        }
    }
    let mut next_rank = 0u32;

    let words = n.div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Box<[u64]>, State)> = HashSet::new();
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state = ABSENT;
    let mut entry = next[head];
    let mut steps = 0u64;
    let (mut placed, mut stuck) = (0usize, 0usize);

    while next[head] != NIL {
        steps += 1;
        if steps > limit {
            return Verdict::Inconclusive { steps };
        }
        let (_, is_ret, i) = entries[entry];
        if !is_ret {
            let in_turn = rank[i] == u32::MAX || rank[i] == next_rank;
            if let Some(ns) = in_turn.then(|| ops[i].kind.step(state)).flatten() {
                linearized[i / 64] |= 1 << (i % 64);
                if cache.insert((linearized.clone().into_boxed_slice(), ns)) {
                    stack.push((i, state));
                    state = ns;
                    if rank[i] != u32::MAX {
                        next_rank += 1;
                    }
                    // Lift the invocation, then its response.
                    for k in [call_node[i], ret_node[i]] {
                        next[prev[k]] = next[k];
                        if next[k] != NIL {
                            prev[next[k]] = prev[k];
                        }
                    }
                    entry = next[head];
                    continue;
                }
                linearized[i / 64] &= !(1 << (i % 64));
            }
            entry = next[entry];
        } else {
            if stack.len() > placed || (stack.is_empty() && placed == 0) {
                placed = stack.len();
                stuck = i;
            }
            let Some((j, s)) = stack.pop() else {
                return Verdict::Violation {
                    steps,
                    placed,
                    stuck,
                };
            };
            state = s;
            linearized[j / 64] &= !(1 << (j % 64));
            if rank[j] != u32::MAX {
                next_rank -= 1;
            }
            // Put back the response, then the invocation (reverse order).
            for k in [ret_node[j], call_node[j]] {
                next[prev[k]] = k;
                if next[k] != NIL {
                    prev[next[k]] = k;
                }
            }
            entry = next[call_node[j]];
        }
    }
    Verdict::Linearizable { steps }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INF: u64 = u64::MAX;

    fn op(start: u64, end: u64, kind: Kind) -> Op {
        Op {
            start,
            end,
            kind,
            id: 0,
        }
    }

    fn lin(ops: &[Op]) -> bool {
        match search(ops, STEP_LIMIT) {
            Verdict::Linearizable { .. } => true,
            Verdict::Violation { .. } => false,
            Verdict::Inconclusive { steps } => panic!("inconclusive after {steps}"),
        }
    }

    #[test]
    fn sequential_and_concurrent_registers() {
        // put 1; get 1; put 2; get 2
        assert!(lin(&[
            op(0, 1, Kind::Put(1)),
            op(2, 3, Kind::Get(1)),
            op(4, 5, Kind::Put(2)),
            op(6, 7, Kind::Get(2)),
        ]));
        // A stale read: get 1 after put 2 completed.
        assert!(!lin(&[
            op(0, 1, Kind::Put(1)),
            op(4, 5, Kind::Put(2)),
            op(6, 7, Kind::Get(1)),
        ]));
        // Concurrent put 2 and get: either value is fine.
        for seen in [1, 2] {
            assert!(lin(&[
                op(0, 1, Kind::Put(1)),
                op(2, 6, Kind::Put(2)),
                op(3, 5, Kind::Get(seen)),
            ]));
        }
        // Reads that disagree on the order of two concurrent puts.
        assert!(!lin(&[
            op(0, 10, Kind::Put(1)),
            op(0, 10, Kind::Put(2)),
            op(11, 12, Kind::Get(1)),
            op(13, 14, Kind::Get(2)),
        ]));
        // A read of a value never written.
        assert!(!lin(&[op(0, 1, Kind::Get(3))]));
        // The key starts absent.
        assert!(lin(&[op(0, 1, Kind::Get(ABSENT))]));
    }

    #[test]
    fn unknown_operations_are_optional_but_once() {
        // An unknown put seen by a read: linearized before it.
        assert!(lin(&[op(0, INF, Kind::Put(1)), op(2, 3, Kind::Get(1))]));
        // ... but not before its invocation.
        assert!(!lin(&[op(2, 3, Kind::Get(1)), op(4, INF, Kind::Put(1))]));
        // An unknown delete may or may not have happened.
        for seen in [1, ABSENT] {
            assert!(lin(&[
                op(0, 1, Kind::Put(1)),
                op(2, INF, Kind::Delete(None)),
                op(3, 4, Kind::Get(seen)),
            ]));
        }
        // A delete that answered "deleted" needs a present key.
        assert!(!lin(&[op(0, 1, Kind::Delete(Some(true)))]));
        assert!(lin(&[op(0, 1, Kind::Delete(Some(false)))]));
        // Once gone, a value does not come back.
        assert!(!lin(&[
            op(0, INF, Kind::Put(1)),
            op(1, 2, Kind::Get(1)),
            op(3, 4, Kind::Put(2)),
            op(5, 6, Kind::Get(1)),
        ]));
    }

    #[test]
    fn compare_and_swap() {
        assert!(lin(&[
            op(0, 1, Kind::Put(1)),
            op(
                2,
                3,
                Kind::CasHeld {
                    expect: 1,
                    value: 2
                }
            ),
            op(
                4,
                5,
                Kind::CasFailed {
                    expect: 1,
                    current: 2
                }
            ),
            op(6, 7, Kind::Get(2)),
        ]));
        // Held although the value was not the expected one.
        assert!(!lin(&[
            op(0, 1, Kind::Put(1)),
            op(
                2,
                3,
                Kind::CasHeld {
                    expect: ABSENT,
                    value: 2
                }
            ),
        ]));
        // Failed although it would have held.
        assert!(!lin(&[
            op(0, 1, Kind::Put(1)),
            op(
                2,
                3,
                Kind::CasFailed {
                    expect: 1,
                    current: 1
                }
            ),
        ]));
        // Two concurrent compares on the same expectation: one wins.
        assert!(lin(&[
            op(0, 1, Kind::Put(1)),
            op(
                2,
                5,
                Kind::CasHeld {
                    expect: 1,
                    value: 2
                }
            ),
            op(
                2,
                5,
                Kind::CasFailed {
                    expect: 1,
                    current: 2
                }
            ),
        ]));
        assert!(!lin(&[
            op(0, 1, Kind::Put(1)),
            op(
                2,
                5,
                Kind::CasHeld {
                    expect: 1,
                    value: 2
                }
            ),
            op(
                2,
                5,
                Kind::CasHeld {
                    expect: 1,
                    value: 3
                }
            ),
        ]));
        assert!(!lin(&[op(
            0,
            1,
            Kind::CasHeld {
                expect: NEVER,
                value: 2
            }
        )]));
    }

    #[test]
    fn the_step_limit_makes_it_inconclusive() {
        // Many concurrent puts and a read of a value nobody wrote: every
        // order is tried before the search can say no.
        let mut ops: Vec<Op> = (1..=12).map(|v| op(0, 100, Kind::Put(v))).collect();
        ops.push(op(200, 201, Kind::Get(99)));
        assert!(matches!(search(&ops, 1000), Verdict::Inconclusive { .. }));
        assert!(matches!(
            search(&ops, STEP_LIMIT),
            Verdict::Violation { .. }
        ));
    }

    #[test]
    fn the_violation_names_the_op_that_could_not_be_placed() {
        let ops = [
            op(0, 1, Kind::Put(1)),
            op(4, 5, Kind::Put(2)),
            op(6, 7, Kind::Get(1)),
        ];
        match search(&ops, STEP_LIMIT) {
            Verdict::Violation { placed, stuck, .. } => {
                assert_eq!((placed, stuck), (2, 2));
            }
            v => panic!("{v:?}"),
        }
    }
}
