//! Compaction: logical at once, physical in bounded steps.
//!
//! `compact(rev)` checks the bound (etcd: `rev <= compacted` →
//! `Compacted`, `rev > current` → `FutureRevision`; `rev == current` is
//! allowed and no revision is consumed), sets the compacted revision so
//! reads below it fail from now on, and records a pending job.
//! `step(max_keys)` then walks the key index in key order, at most
//! `max_keys` keys per call: each key's index entry is compacted as etcd's
//! `keyIndex.compact` (keep the newest revision at or below `rev` of a live
//! generation; drop older revisions and every generation that ended at or
//! below `rev`; drop the key when nothing is left) and the dropped
//! revisions' records are removed. Records above `rev` are never touched.
//!
//! Between steps the store is consistent for every read the compacted
//! revision allows: keys not yet visited only hold extra history below the
//! bound. Readers holding older snapshots keep the old nodes (copy-on-write).
//! A new compaction while one is pending restarts the walk with the higher
//! bound (compacting at `b` after `a < b` is the same as at `b`).

use std::ops::Bound;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::state::{Key, PendingCompaction, State};

/// Keys per step when the caller does not choose: etcd's backend deletes in
/// batches of 1000 too. One step over 1000 keys with one old revision
/// each takes well under a millisecond in release.
pub const DEFAULT_COMPACTION_BATCH: usize = 1000;

/// What a [`crate::WriteBatch::compact_step`] left to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactProgress {
    /// No compaction is pending.
    Done,
    /// More keys remain; call again.
    Pending,
}

/// What one physical step did (for etcd's compaction metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactStep {
    /// Revision records removed (etcd's compacted db keys).
    pub keys_removed: u64,
    /// Time spent compacting the key index entries of the step.
    pub index: std::time::Duration,
    /// The whole step, with the writer lock held (etcd's db compaction
    /// pause); set by [`crate::Store::compact_step_observed`].
    pub pause: std::time::Duration,
}

/// The logical part: validate and record.
pub(crate) fn compact(state: &mut State, rev: i64) -> Result<()> {
    if rev <= state.compact_revision {
        return Err(Error::Compacted {
            compact_revision: state.compact_revision,
        });
    }
    if rev > state.revision {
        return Err(Error::FutureRevision {
            current_revision: state.revision,
        });
    }
    state.compact_revision = rev;
    state.pending_compaction = Some(PendingCompaction {
        revision: rev,
        done_through: None,
    });
    Ok(())
}

/// One physical step over at most `max_keys` keys.
pub(crate) fn step(state: &mut State, max_keys: usize) -> CompactProgress {
    step_counted(state, max_keys, &mut CompactStep::default())
}

/// [`step`], adding what it did to `stats` (removed records, index time).
pub(crate) fn step_counted(
    state: &mut State,
    max_keys: usize,
    stats: &mut CompactStep,
) -> CompactProgress {
    let Some(job) = state.pending_compaction.clone() else {
        return CompactProgress::Done;
    };
    let at = job.revision;
    let start = match &job.done_through {
        Some(k) => Bound::Excluded(&k[..]),
        None => Bound::Unbounded,
    };
    let batch: Vec<(Key, _)> = state
        .keys
        .range_from::<[u8]>(start)
        .take(max_keys.max(1))
        .map(|(k, ki)| (k.clone(), ki.clone()))
        .collect();
    let mut removed = Vec::new();
    for (key, ki) in &batch {
        // Cheap skip without cloning: nothing at or below the bound.
        let first = ki.generations[0].revs.first().map_or(i64::MAX, |r| r.main);
        if first > at {
            continue;
        }
        let t = std::time::Instant::now();
        let mut ki = (**ki).clone();
        removed.clear();
        ki.compact(at, &mut removed);
        stats.index += t.elapsed();
        stats.keys_removed += removed.len() as u64;
        if removed.is_empty() {
            // A generation only goes with its revisions, so nothing removed
            // means the entry is unchanged: keep the shared one.
            continue;
        }
        for r in &removed {
            if let Some(b) = state.revs.remove(r) {
                state.record_bytes -= b.bytes().len() as u64;
            }
        }
        if ki.is_empty() {
            state.keys.remove(&key[..]);
        } else {
            state.keys.insert(key.clone(), Arc::new(ki));
        }
    }
    if batch.len() < max_keys.max(1) {
        state.pending_compaction = None;
        CompactProgress::Done
    } else {
        state.pending_compaction = Some(PendingCompaction {
            revision: at,
            done_through: batch.last().map(|(k, _)| k.clone()),
        });
        CompactProgress::Pending
    }
}
