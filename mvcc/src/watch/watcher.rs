//! One watcher's state, and how a batch of events is shaped for it.
//!
//! A watcher is small (about 40 bytes) and lives in the hub's slab: with
//! 100k watchers per core, per-watcher allocations would dominate memory.
//! Its range lives in its group (see `index`), its responses in its
//! stream's outbox (see `stream`); here are only the cursor (`next`), the
//! count of responses it has waiting (the slow-consumer bound), its filters
//! and its flags.
//!
//! `next` is the first revision the watcher has not been given yet: every
//! matching change below it was delivered (or filtered out), none at or
//! above it was. A synced watcher's `next` may lag the hub's revision (the
//! hub does not touch watchers an event does not concern), so its true
//! cursor is `max(next, hub revision + 1)`; an unsynced watcher's `next` is
//! exact, and catch-up resumes there.

use std::sync::Arc;

use super::index::GroupId;
use super::{WatchRequest, WatcherId};
use crate::kv::{Event, EventKind};

/// A watcher slot.
#[derive(Debug)]
pub(crate) struct Watcher {
    /// Slot generation: a [`WatcherId`] carries it, so a stale id (the slot
    /// was reused) never reaches the new watcher.
    pub(crate) generation: u32,
    /// Whether the slot holds a watcher.
    pub(crate) alive: bool,
    /// Canceled by compaction: no longer a watcher, but its queued
    /// responses and the cancel are still in the outbox; the slot is freed
    /// when the cancel is drained.
    pub(crate) draining: bool,
    /// Stream slot.
    pub(crate) stream: u32,
    /// Position in the stream's watcher list.
    pub(crate) stream_pos: u32,
    /// Group (range) slot.
    pub(crate) group: GroupId,
    /// Position in the group's `members` while synced.
    pub(crate) group_pos: u32,
    /// First revision not yet given; see the module docs.
    pub(crate) next: i64,
    /// Responses waiting in the stream's outbox.
    pub(crate) pending: u32,
    /// `prev_kv`, `no_put`, `no_delete` as a shape index (see [`variant`]).
    pub(crate) variant: u8,
    /// Periodic progress wanted.
    pub(crate) progress_notify: bool,
    /// Fed by `notify` (in its group's members); otherwise catching up.
    pub(crate) synced: bool,
    /// Sent events since the last progress sweep.
    pub(crate) active: bool,
    /// Its id sits in the hub's unsynced queue.
    pub(crate) queued: bool,
}

impl Watcher {
    pub(crate) fn id(&self, slot: u32) -> WatcherId {
        WatcherId((u64::from(self.generation) << 32) | u64::from(slot))
    }
}

/// Bit 0: `prev_kv`; bit 1: no puts; bit 2: no deletes. Watchers with the
/// same variant see the same events of a batch, so they share one
/// `Arc<[Event]>`.
pub(crate) fn variant(req: &WatchRequest) -> u8 {
    u8::from(req.prev_kv) | (u8::from(req.no_put) << 1) | (u8::from(req.no_delete) << 2)
}

/// Number of variants.
pub(crate) const VARIANTS: usize = 8;

/// Whether a watcher of `variant` wants `e`.
fn wanted(variant: u8, e: &Event) -> bool {
    match e.kind {
        EventKind::Put => variant & 2 == 0,
        EventKind::Delete => variant & 4 == 0,
    }
}

/// The events among `events` a watcher of `variant` gets, `prev_kv`
/// stripped unless asked for; `None` when that is nothing.
pub(crate) fn shape<'a>(
    variant: u8,
    events: impl Iterator<Item = &'a Event>,
) -> Option<Arc<[Event]>> {
    let out: Vec<Event> = events
        .filter(|e| wanted(variant, e))
        .map(|e| {
            if variant & 1 == 1 || e.prev_kv.is_none() {
                e.clone()
            } else {
                Event {
                    kind: e.kind,
                    kv: e.kv.clone(),
                    prev_kv: None,
                }
            }
        })
        .collect();
    (!out.is_empty()).then(|| Arc::from(out))
}
