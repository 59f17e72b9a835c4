//! The key index entry: one key's revisions, grouped in generations, as
//! etcd's `keyIndex`.
//!
//! A generation runs from the put that creates a key to the delete that ends
//! it (the delete's tombstone revision is the generation's last revision);
//! the last generation is the live one and is empty while the key does not
//! exist. Example, key put at 1 and 4, deleted at 6, put again at 8:
//!
//! ```text
//! generations: [ {created 1, ver 3, revs [1, 4, 6(tombstone)]},
//!                {created 8, ver 1, revs [8]} ]
//! ```
//!
//! `ver` counts every put and the tombstone of the generation, including
//! revisions compaction has since dropped, so the version at a revision is
//! `ver - (revisions after it)`.

use crate::revision::Revision;

/// One key's history.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct KeyIndex {
    /// The newest revision of the key (put or tombstone).
    pub(crate) modified: Revision,
    /// Oldest first; never empty; only the last may have no revisions.
    pub(crate) generations: Vec<Generation>,
}

/// A key's life from creation to deletion.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Generation {
    /// Puts (and the tombstone, once closed) in this generation, ever.
    pub(crate) ver: i64,
    /// Revision of the put that created the generation.
    pub(crate) created: Revision,
    /// Revisions still held, oldest first.
    pub(crate) revs: Vec<Revision>,
}

/// What [`KeyIndex::get`] finds: the revision holding the record, the
/// generation's creation revision and the key's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) modified: Revision,
    pub(crate) created: Revision,
    pub(crate) version: i64,
}

/// A copy with room for one more revision in the live generation: the
/// writer copies an entry it shares with readers (copy-on-write) in
/// order to add a revision to it, and a copy sized exactly would
/// reallocate at once.
impl Clone for KeyIndex {
    fn clone(&self) -> Self {
        let last = self.generations.len().saturating_sub(1);
        let generations = self
            .generations
            .iter()
            .enumerate()
            .map(|(i, g)| {
                if i < last {
                    return g.clone();
                }
                let mut revs = Vec::with_capacity(g.revs.len() + 1);
                revs.extend_from_slice(&g.revs);
                Generation {
                    ver: g.ver,
                    created: g.created,
                    revs,
                }
            })
            .collect();
        Self {
            modified: self.modified,
            generations,
        }
    }
}

impl KeyIndex {
    /// A key first put at `rev`.
    pub(crate) fn new(rev: Revision) -> Self {
        let mut ki = Self {
            modified: rev,
            generations: vec![Generation::default()],
        };
        ki.put(rev);
        ki
    }

    /// Record a put at `rev`.
    pub(crate) fn put(&mut self, rev: Revision) {
        let g = self.generations.last_mut().expect("never empty");
        if g.revs.is_empty() {
            g.created = rev;
        }
        g.revs.push(rev);
        g.ver += 1;
        self.modified = rev;
    }

    /// Record a delete at `rev`; `false` (and no change) when the key does
    /// not exist now.
    pub(crate) fn tombstone(&mut self, rev: Revision) -> bool {
        if self.generations.last().is_none_or(|g| g.revs.is_empty()) {
            return false;
        }
        self.put(rev);
        self.generations.push(Generation::default());
        true
    }

    /// Whether only an empty generation is left (the key can leave the index).
    pub(crate) fn is_empty(&self) -> bool {
        self.generations.len() == 1 && self.generations[0].revs.is_empty()
    }

    /// The generation alive at main revision `at`, as etcd's
    /// `findGeneration`: a closed generation whose tombstone is at or below
    /// `at` means the key did not exist at `at`.
    fn find_generation(&self, at: i64) -> Option<&Generation> {
        let last = self.generations.len() - 1;
        for (i, g) in self.generations.iter().enumerate().rev() {
            let (Some(first), Some(tomb)) = (g.revs.first(), g.revs.last()) else {
                continue;
            };
            if i != last && tomb.main <= at {
                return None;
            }
            if first.main <= at {
                return Some(g);
            }
        }
        None
    }

    /// The key's state at main revision `at`, if it existed then.
    pub(crate) fn get(&self, at: i64) -> Option<Found> {
        let g = self.find_generation(at)?;
        let n = g.revs.iter().rposition(|r| r.main <= at)?;
        Some(Found {
            modified: g.revs[n],
            created: g.created,
            version: g.ver - (g.revs.len() - n - 1) as i64,
        })
    }

    /// etcd's `doCompact`: the first generation that is not wholly at or
    /// below `at` (or the last one), and in it the index of the newest
    /// revision at or below `at`.
    fn compact_point(&self, at: i64) -> (usize, Option<usize>) {
        let mut gi = 0;
        while gi < self.generations.len() - 1 {
            let tomb = self.generations[gi].revs.last().expect("closed generation");
            if tomb.main > at {
                break;
            }
            gi += 1;
        }
        let ri = self.generations[gi].revs.iter().rposition(|r| r.main <= at);
        (gi, ri)
    }

    /// The revision compaction at `at` keeps for this key (the newest at or
    /// below `at`, unless it is a tombstone), as etcd's `keep`.
    pub(crate) fn keep(&self, at: i64) -> Option<Revision> {
        let (gi, ri) = self.compact_point(at);
        let g = &self.generations[gi];
        let ri = ri?;
        if ri == g.revs.len() - 1 && gi != self.generations.len() - 1 {
            return None;
        }
        Some(g.revs[ri])
    }

    /// Compact at main revision `at`, as etcd's `compact`: drop every
    /// revision at or below `at` except the newest one of a live
    /// generation; a generation ended at or below `at` goes entirely.
    /// Pushes the dropped revisions (whose records the caller deletes) to
    /// `removed`.
    pub(crate) fn compact(&mut self, at: i64, removed: &mut Vec<Revision>) {
        let kept = self.keep(at);
        for g in &self.generations {
            removed.extend(g.revs.iter().filter(|r| r.main <= at && Some(**r) != kept));
        }
        let (mut gi, ri) = self.compact_point(at);
        let last = self.generations.len() - 1;
        let g = &mut self.generations[gi];
        if !g.revs.is_empty() {
            if let Some(ri) = ri {
                g.revs.drain(..ri);
            }
            if g.revs.len() == 1 && gi != last {
                gi += 1;
            }
        }
        self.generations.drain(..gi);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    /// put 2, put 4, delete 6, put 8, put 10, delete 12, put 14.
    fn sample() -> KeyIndex {
        let mut ki = KeyIndex::new(r(2));
        ki.put(r(4));
        assert!(ki.tombstone(r(6)));
        ki.put(r(8));
        ki.put(r(10));
        assert!(ki.tombstone(r(12)));
        assert!(!ki.tombstone(r(13)));
        ki.put(r(14));
        ki
    }

    #[test]
    fn get_follows_generations() {
        let ki = sample();
        assert_eq!(ki.get(1), None);
        assert_eq!(
            ki.get(3)
                .map(|f| (f.modified.main, f.created.main, f.version)),
            Some((2, 2, 1))
        );
        assert_eq!(
            ki.get(5).map(|f| (f.modified.main, f.version)),
            Some((4, 2))
        );
        assert_eq!(ki.get(6), None);
        assert_eq!(ki.get(7), None);
        assert_eq!(
            ki.get(9)
                .map(|f| (f.modified.main, f.created.main, f.version)),
            Some((8, 8, 1))
        );
        assert_eq!(ki.get(11).map(|f| f.version), Some(2));
        assert_eq!(ki.get(12), None);
        assert_eq!(
            ki.get(100)
                .map(|f| (f.modified.main, f.created.main, f.version)),
            Some((14, 14, 1))
        );
    }

    #[test]
    fn compact_as_etcd() {
        // Below the first revision: nothing goes.
        let mut ki = sample();
        let mut rm = Vec::new();
        ki.compact(1, &mut rm);
        assert_eq!(ki, sample());
        assert!(rm.is_empty());

        // Inside the first generation: keep 4 (newest <= 5).
        ki.compact(5, &mut rm);
        assert_eq!(rm, vec![r(2)]);
        assert_eq!(ki.generations[0].revs, vec![r(4), r(6)]);
        assert_eq!(ki.get(5).map(|f| f.version), Some(2));

        // At the tombstone: the whole first generation goes.
        rm.clear();
        ki.compact(6, &mut rm);
        assert_eq!(rm, vec![r(4), r(6)]);
        assert_eq!(ki.generations.len(), 2);
        assert_eq!(ki.generations[0].revs, vec![r(8), r(10), r(12)]);

        // Past everything: only the live generation's newest put stays.
        rm.clear();
        ki.compact(20, &mut rm);
        assert_eq!(rm, vec![r(8), r(10), r(12)]);
        assert_eq!(ki.generations.len(), 1);
        assert_eq!(ki.generations[0].revs, vec![r(14)]);
        assert_eq!(ki.keep(20), Some(r(14)));
    }

    #[test]
    fn compact_deleted_key_empties() {
        let mut ki = KeyIndex::new(r(2));
        ki.tombstone(r(3));
        assert_eq!(ki.keep(3), None);
        let mut rm = Vec::new();
        ki.compact(3, &mut rm);
        assert_eq!(rm, vec![r(2), r(3)]);
        assert!(ki.is_empty());
    }
}
