//! Real-time bounds on when a revision came to be, from the operations
//! that observed it.
//!
//! A linearizable operation X that answered `Ok` took effect at one
//! instant inside `[X.start, X.end]`, when the store was at `rev(X)`. So
//! revision `r` existed by `X.end` if `rev(X) >= r`, and did not exist yet
//! at `X.start` if `rev(X) < r`:
//!
//! ```text
//! lower(r) = max { X.start : rev(X) <  r }   r was created after this
//! upper(r) = min { X.end   : rev(X) >= r }   r existed by this
//! ```
//!
//! The lease check uses `upper` to prove a lease's keys were deleted
//! before its TTL ran out; the watch check uses `lower` to prove an event
//! was delivered before its revision existed; the write check uses `upper`
//! to match deletions to the operations that may have made them.

use crate::history::History;

use super::{is_linearizable, response_revision};

/// Bounds on revision times, from every linearizable `Ok` operation.
pub(crate) struct Timeline {
    /// (revision, start, end, op index), by revision.
    points: Vec<(i64, u64, u64, usize)>,
    /// `prefix_max[i]`: the point with the latest start among `points[..=i]`.
    prefix_max: Vec<usize>,
    /// `suffix_min[i]`: the point with the earliest end among `points[i..]`.
    suffix_min: Vec<usize>,
}

impl Timeline {
    pub fn new(h: &History) -> Timeline {
        let mut points: Vec<(i64, u64, u64, usize)> = h
            .ops
            .iter()
            .enumerate()
            .filter(|(_, op)| is_linearizable(op))
            .filter_map(|(i, op)| response_revision(op).map(|r| (r, op.start, op.end, i)))
            .collect();
        points.sort_unstable();
        let mut prefix_max: Vec<usize> = Vec::with_capacity(points.len());
        for i in 0..points.len() {
            let best = match prefix_max.last() {
                Some(&b) if points[b].1 >= points[i].1 => b,
                _ => i,
            };
            prefix_max.push(best);
        }
        let mut suffix_min = vec![0; points.len()];
        for i in (0..points.len()).rev() {
            suffix_min[i] = if i + 1 < points.len() && points[suffix_min[i + 1]].2 <= points[i].2 {
                suffix_min[i + 1]
            } else {
                i
            };
        }
        Timeline {
            points,
            prefix_max,
            suffix_min,
        }
    }

    /// Revision `r` was created after this time: (time, the op that shows it).
    pub fn lower(&self, r: i64) -> Option<(u64, usize)> {
        let n = self.points.partition_point(|p| p.0 < r);
        (n > 0).then(|| {
            let p = self.points[self.prefix_max[n - 1]];
            (p.1, p.3)
        })
    }

    /// Revision `r` existed by this time: (time, the op that shows it).
    pub fn upper(&self, r: i64) -> Option<(u64, usize)> {
        let n = self.points.partition_point(|p| p.0 < r);
        (n < self.points.len()).then(|| {
            let p = self.points[self.suffix_min[n]];
            (p.2, p.3)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testutil::*;
    use crate::history::{Call, Outcome, Response};

    fn get(start: u64, end: u64, revision: i64, serializable: bool) -> crate::history::Operation {
        op(
            0,
            start,
            end,
            Call::Get {
                key: "k".into(),
                serializable,
            },
            Outcome::Ok(Response::Get { revision, kv: None }),
        )
    }

    #[test]
    fn bounds_come_from_the_right_side() {
        let h = history(
            vec![
                get(10, 20, 2, false),
                get(15, 40, 3, false),
                get(30, 35, 5, false),
                // Serializable reads bound nothing: they may be stale.
                get(100, 101, 2, true),
            ],
            vec![],
        );
        let t = Timeline::new(&h);
        assert_eq!(t.lower(2), None);
        assert_eq!(t.lower(3), Some((10, 0)));
        assert_eq!(t.lower(4), Some((15, 1)));
        assert_eq!(t.lower(9), Some((30, 2)));
        assert_eq!(t.upper(1), Some((20, 0)));
        assert_eq!(t.upper(3), Some((35, 2)));
        assert_eq!(t.upper(5), Some((35, 2)));
        assert_eq!(t.upper(6), None);
    }
}
