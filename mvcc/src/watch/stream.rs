//! A client stream: its outbox, in order, and its deferred progress request.
//!
//! Responses of all watchers of a stream go into one FIFO, as etcd's
//! per-stream channel does. That order is what makes progress safe: a
//! progress response at revision R is queued after every event `<= R` of
//! every (synced) watcher of the stream, so a client that reads it knows it
//! has seen everything up to R. Per-watcher queues would let a progress
//! response overtake events still waiting in another watcher's queue.
//!
//! The slow-consumer bound is still per watcher (`Watcher::pending`): one
//! stuck watcher falls behind without making its stream-mates fall behind.
//! Responses of a watcher the client canceled stay in the outbox until
//! drained and are dropped then (the slot is no longer live, or its
//! generation no longer matches), so cancel is O(1). A watcher canceled by
//! compaction keeps its slot until its cancel response is drained, so what
//! it had queued still goes out first, as etcd's channel would deliver it.

use std::collections::VecDeque;

use super::{StreamId, WatchResponse};

/// One stream's state.
#[derive(Debug)]
pub(crate) struct Stream {
    /// The caller's id for it.
    pub(crate) id: StreamId,
    /// Watcher slots of this stream (for closing it), unordered.
    pub(crate) watchers: Vec<u32>,
    /// How many of them are unsynced.
    pub(crate) unsynced: u32,
    /// Responses not yet drained, in send order.
    pub(crate) outbox: VecDeque<WatchResponse>,
    /// A progress request waits for every watcher to be synced (etcd
    /// 3.5.8+'s `deferredProgress`; repeated requests coalesce).
    pub(crate) progress_pending: bool,
    /// Position in the hub's ready list while the outbox is non-empty.
    pub(crate) ready_pos: Option<u32>,
}

impl Stream {
    pub(crate) fn new(id: StreamId) -> Self {
        Self {
            id,
            watchers: Vec::new(),
            unsynced: 0,
            outbox: VecDeque::new(),
            progress_pending: false,
            ready_pos: None,
        }
    }
}
