//! Where unsynced watchers catch up from: the store's history, seen through
//! a small trait so the hub never depends on the store's internals, can be
//! tested against a plain model (a `Vec` of revisions), and is driven by
//! whatever consistent read view the node holds.
//!
//! One view must be consistent for one [`super::Hub::sync_unsynced`] call:
//! its `current_revision`, `compacted_revision` and `events` describe the
//! same state. The view may be ahead of the hub (revisions committed but not
//! yet passed to `notify`) or behind it; the hub reads only up to
//! `min(view, hub)` and leaves the rest to `notify` or to the next call.

use crate::error::Result;
use crate::kv::{Event, KeyRange};
use crate::store::ReadView;

/// A consistent view of the store's history, for watcher catch-up.
pub trait History {
    /// The newest revision in the view.
    fn current_revision(&self) -> i64;

    /// The compacted revision: reading from a revision below it fails (-1
    /// or 0 before any compaction).
    fn compacted_revision(&self) -> i64;

    /// The changes to keys in `range` with main revision in `[from, to]`,
    /// in (main, sub) order; `to` is at most `current_revision()`.
    ///
    /// - Each event is as `notify` would have carried it: a put's `kv` is
    ///   the key-value after the change; a delete's `kv` holds only the key
    ///   and `mod_revision`. With `prev_kv`, `prev_kv` is the key's value
    ///   just before the change if it existed (and is not compacted away);
    ///   without it, `prev_kv` is `None`.
    /// - `limit` (0 = no limit) bounds the work: once at least `limit`
    ///   events are collected, the implementation finishes the revision it
    ///   is in and stops. Revisions are never split. The hub relies on
    ///   this: a result with fewer than `limit` events covers all of
    ///   `[from, to]`; otherwise it covers exactly `[from, last event's
    ///   revision]` and the hub resumes after that revision.
    /// - `Err(Compacted { compact_revision })` when `from <
    ///   compacted_revision()`; other errors leave the watcher to retry.
    fn events(
        &self,
        range: &KeyRange,
        from: i64,
        to: i64,
        prev_kv: bool,
        limit: usize,
    ) -> Result<Vec<Event>>;
}

/// The store's read view. Its inherent `events` may cut inside a revision
/// at `limit`; this adapter re-reads the last revision whole, so the result
/// keeps the trait's "revisions never split" promise. (Method-call syntax on
/// a `ReadView` picks the inherent method; the hub calls through the trait.)
impl History for ReadView {
    fn current_revision(&self) -> i64 {
        self.revision()
    }

    fn compacted_revision(&self) -> i64 {
        self.compact_revision()
    }

    fn events(
        &self,
        range: &KeyRange,
        from: i64,
        to: i64,
        prev_kv: bool,
        limit: usize,
    ) -> Result<Vec<Event>> {
        let mut events = ReadView::events(self, range, from, to, prev_kv, limit)?;
        if limit == 0 || events.len() < limit {
            return Ok(events);
        }
        let last = events.last().map_or(to, |e| e.kv.mod_revision);
        events.retain(|e| e.kv.mod_revision < last);
        events.extend(ReadView::events(self, range, last, last, prev_kv, 0)?);
        Ok(events)
    }
}
