//! Where unsynced watchers catch up from: the revision store, seen through
//! a trait so the hub can be tested against a plain model and driven by any
//! consistent read view.

use crate::error::Result;
use crate::kv::{Event, KeyRange};
use crate::store::ReadView;

/// A consistent view of the store's history.
pub trait History {
    /// The newest revision in the view.
    fn current_revision(&self) -> i64;
    /// The compacted revision: history below it is gone (-1 before any
    /// compaction).
    fn compacted_revision(&self) -> i64;
    /// Events on keys in `range` with `from <= revision <= to`, in
    /// (main, sub) order, `prev_kv` filled when asked for and available, at
    /// most `limit` events (0 = all; the cut may fall inside a revision).
    /// `Compacted` when `from < compacted_revision()`.
    fn events(
        &self,
        range: &KeyRange,
        from: i64,
        to: i64,
        prev_kv: bool,
        limit: usize,
    ) -> Result<Vec<Event>>;
}

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
        ReadView::events(self, range, from, to, prev_kv, limit)
    }
}
