//! The watch hub: which watcher hears which change, with etcd 3.5's
//! guarantees (`mvcc/watchable_store.go`, `etcdserver/api/v3rpc/watch.go`),
//! as a sans-IO state machine: events in, responses out, no clock, no
//! threads, no store access except through the [`History`] trait.
//!
//! # Driving it
//! - [`Hub::notify`] from the apply loop with each committed batch's events
//!   (every revision, in order, exactly once). Never waits.
//! - [`Hub::sync_unsynced`] with a consistent [`History`] view whenever
//!   [`Hub::unsynced_len`] is non-zero (after a batch, after a drain, or on a
//!   timer): it catches lagging watchers up, a bounded amount per call.
//! - [`Hub::tick`] with the time, for periodic progress notifications.
//! - [`Hub::drain_stream`] / [`Hub::drain`] hand the queued
//!   [`WatchResponse`]s to the wire, per stream, in send order.
//!
//! # Guarantees
//! - A watcher gets every change to its range with revision `>=` its start,
//!   in revision order, each exactly once: no gap, no duplicate. The events
//!   of one revision are never split across responses (the wire may still
//!   fragment a large response, as etcd does).
//! - Start revision 0 (or negative) means "now": the hub's revision + 1. A
//!   start in the future waits for it. A start `<=` the hub's revision
//!   catches up from history first ("unsynced"), then joins the live stream.
//! - Compaction: a watcher whose next needed revision is *below* the
//!   compacted revision gets one response with `compact_revision` set and
//!   `canceled` (after the responses it already had queued), and is
//!   removed; a start *equal* to the compacted revision
//!   is served. That is etcd's `chooseAll` rule (`w.minRev < compactRev`),
//!   checked against etcd 3.5.1: compact at 4, `watch --rev=3` is canceled
//!   with `CompactRevision: 4`, `--rev=4` streams revisions 4.. . It applies
//!   equally to a watcher that fell behind and was then overtaken by a
//!   compaction.
//! - Slow consumers never block `notify`: a watcher may have at most
//!   [`Config::max_pending`] responses waiting; a batch that would exceed
//!   that drops it into the unsynced set, remembering the first revision it
//!   missed, and `sync_unsynced` replays from history once it has room.
//! - Progress: [`Hub::request_progress`] answers a stream with one
//!   stream-wide response at the hub's revision once *every* watcher of the
//!   stream is synced (etcd 3.5.8+; 3.5.0–3.5.7 answered at once and could
//!   claim a revision whose events were still to come). [`Hub::tick`] sends
//!   a watcher-level progress response to each synced `progress_notify`
//!   watcher that got no events since the previous sweep (etcd's
//!   `sendLoop` ticker), so an idle watcher hears from the hub every one to
//!   two intervals.
//!
//! # Costs
//! Watchers are grouped by exact range (`index`); single-key groups are
//! found by one hash lookup, range groups by a stabbing query on an
//! interval treap (`interval`), O(log n + matches). `notify` then walks only
//! matching synced watchers, and watchers of one group with the same
//! filters share one `Arc<[Event]>`, so a change fanned out to 100k
//! watchers of one prefix allocates its events once. Unsynced watchers are
//! out of the index and cost `notify` nothing.
//!
//! # Why no gap and no duplicate while catching up
//! An unsynced watcher is not in the index, so `notify` never feeds it;
//! catch-up reads history only up to the hub's revision (never a view that
//! is ahead of `notify`) and moves the watcher's cursor past what it read.
//! The watcher joins the index exactly when its cursor passes the hub's
//! revision, so the next `notify` carries the next revision it needs.
//! Falling behind is the mirror image: the batch that did not fit is not
//! delivered, and the cursor stays at its first revision.

mod history;
mod hub;
mod index;
mod interval;
mod stream;
mod watcher;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::kv::{Event, KeyRange};

pub use history::History;
pub use hub::Hub;

/// A watcher's id, unique in its hub for the hub's lifetime (a slot and a
/// generation). The wire maps its per-stream watch ids to these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WatcherId(u64);

impl WatcherId {
    /// The raw value.
    pub fn get(self) -> u64 {
        self.0
    }

    pub(crate) fn slot(self) -> u32 {
        self.0 as u32
    }

    pub(crate) fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

impl fmt::Display for WatcherId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The client stream a watcher belongs to, chosen by the caller (the wire).
/// Responses are queued per stream; progress requests are per stream.
pub type StreamId = u64;

/// The hub's limits.
#[derive(Debug, Clone)]
pub struct Config {
    /// Responses a watcher may have waiting in its stream's outbox before
    /// it falls behind into the unsynced set. Default 128 (etcd's
    /// per-stream `chanBufLen`); at least 1.
    pub max_pending: usize,
    /// Events read from history for one watcher per catch-up step (whole
    /// revisions, so a step may read more). Default 1000.
    pub sync_batch: usize,
    /// Period of progress sweeps for `progress_notify` watchers. Default
    /// 10 min, etcd's `--experimental-watch-progress-notify-interval`.
    pub progress_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_pending: 128,
            sync_batch: 1000,
            progress_interval: Duration::from_secs(600),
        }
    }
}

/// What a watcher asks for (etcd's `WatchCreateRequest`, less the wire ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchRequest {
    /// Keys watched. An empty range (end `<=` start) never matches.
    pub range: KeyRange,
    /// First revision wanted; `<= 0` = from now.
    pub start_revision: i64,
    /// Fill `prev_kv` in events (from what `notify` / history carry).
    pub prev_kv: bool,
    /// Drop put events (etcd's `NOPUT` filter).
    pub no_put: bool,
    /// Drop delete events (etcd's `NODELETE` filter).
    pub no_delete: bool,
    /// Periodic progress responses when idle (see [`Hub::tick`]).
    pub progress_notify: bool,
}

impl WatchRequest {
    /// Watch `range` from now, no options.
    pub fn new(range: KeyRange) -> Self {
        Self {
            range,
            start_revision: 0,
            prev_kv: false,
            no_put: false,
            no_delete: false,
            progress_notify: false,
        }
    }
}

/// One response for the wire to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchResponse {
    /// The stream to send it on.
    pub stream: StreamId,
    /// The watcher, or `None` for a stream-wide progress response (etcd
    /// sends those with watch id -1).
    pub watcher: Option<WatcherId>,
    /// Header revision. Live events and progress: the hub's revision then;
    /// catch-up: the last revision the response covers (everything of the
    /// watcher's up to it has been sent; etcd puts its current revision
    /// there, which a lagging catch-up could not honour); compacted cancel:
    /// 0, as etcd 3.5 sends it.
    pub revision: i64,
    /// Events in (revision, sub) order; empty for progress and cancel.
    /// Watchers that see the same events share one allocation.
    pub events: Arc<[Event]>,
    /// With `canceled`: the compacted revision that made the start
    /// unreachable. 0 otherwise.
    pub compact_revision: i64,
    /// The watcher is gone; nothing follows for it.
    pub canceled: bool,
}

impl WatchResponse {
    /// A progress notification: no events, not a cancel.
    pub fn is_progress(&self) -> bool {
        self.events.is_empty() && !self.canceled
    }
}
