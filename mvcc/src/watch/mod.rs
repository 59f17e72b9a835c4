//! The watch hub: which watcher hears which change, with etcd 3.5's
//! guarantees (`mvcc/watchable_store.go`), as a sans-IO state machine.
//!
//! The node calls [`Hub::notify`] from the apply loop with the events of
//! each committed batch, [`Hub::sync_unsynced`] when it has time (after a
//! batch, or on a timer), [`Hub::tick`] for periodic progress, and drains
//! [`Hub::drain`] / [`Hub::drain_stream`] into the wire. Nothing here blocks,
//! sleeps or reads a clock.
//!
//! # Guarantees
//! - A watcher sees every matching change with revision `>= start`, in
//!   revision order, each exactly once: no gap, no duplicate. The events of
//!   one revision are never split across two responses by the hub.
//! - `start_revision` 0 means "from now" (`last notified + 1`). A start in
//!   the past catches up from the revision store ([`History`]); a start
//!   below the compacted revision (`start < compact_revision`, etcd's
//!   `chooseAll` rule) gets one response with `compact_revision` set and
//!   `canceled`, and the watcher is removed.
//! - A slow consumer never blocks `notify`: each watcher queues at most
//!   [`Config::max_pending`] responses. A watcher whose queue is full when a
//!   matching change arrives drops out of the synced set and remembers the
//!   first revision it missed; `sync_unsynced` later replays from history
//!   once its queue has room, and puts it back among the synced watchers
//!   when it has caught up with the last notified revision.
//!
//! # Costs
//! Synced watchers are indexed two ways: exact-key watchers in a hash map
//! (key → watcher ids), range watchers grouped by their exact `(start,
//! end)` in an ordered map (so 100k watchers on one prefix are one group).
//! An event costs one hash lookup plus a scan of the distinct range groups
//! whose start is `<=` the key, then O(matching watchers). Many *distinct*
//! overlapping ranges would make that scan linear in the number of groups;
//! control-plane watchers share a handful of prefixes, so this has not
//! needed an interval tree yet.
//!
//! # Revisions
//! The hub tracks the last revision it was notified of. Catch-up reads
//! history only up to that revision, never beyond: a history view that is
//! ahead (committed, not yet notified) would otherwise deliver an event
//! twice, once from history and once from `notify`.

mod history;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::kv::{Event, EventKind, KeyRange};

pub use history::History;

/// A watcher's id in the hub (global; the wire maps per-stream ids to it).
pub type WatcherId = u64;

/// The client stream a watcher belongs to (progress requests are per stream).
pub type StreamId = u64;

/// The hub's limits.
#[derive(Debug, Clone)]
pub struct Config {
    /// Responses a watcher may have queued before it falls behind into the
    /// unsynced set. Default 128 (a queued response holds one batch).
    pub max_pending: usize,
    /// Events read from history per watcher per `sync_unsynced` step.
    /// Default 1000, etcd's catch-up batch size.
    pub sync_batch: usize,
    /// Idle time after which a synced `progress_notify` watcher gets a
    /// progress response from [`Hub::tick`]. Default 10 min, etcd's
    /// `--experimental-watch-progress-notify-interval`.
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
#[derive(Debug, Clone)]
pub struct WatchRequest {
    /// The stream it belongs to.
    pub stream: StreamId,
    /// Keys watched.
    pub range: KeyRange,
    /// First revision wanted; 0 = from now.
    pub start_revision: i64,
    /// Fill `prev_kv` in events.
    pub prev_kv: bool,
    /// Drop put events (etcd's `NOPUT` filter).
    pub no_put: bool,
    /// Drop delete events (etcd's `NODELETE` filter).
    pub no_delete: bool,
    /// Send progress responses when idle (see [`Config::progress_interval`]).
    pub progress_notify: bool,
}

/// One response for the wire to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchResponse {
    /// The stream to send it on.
    pub stream: StreamId,
    /// The watcher, or `None` for a stream-wide progress response (etcd
    /// 3.5 sends those with watch id -1).
    pub watcher: Option<WatcherId>,
    /// Header revision: the store revision the response is current to.
    pub revision: i64,
    /// Events, in revision order; empty for progress and cancel responses.
    /// Shared: watchers that see the same events of a batch (same matches,
    /// same filters, same `prev_kv` choice) share one allocation, so a
    /// change fanned out to 100k watchers of one prefix is cloned once.
    pub events: Arc<[Event]>,
    /// Set with `canceled` when the start revision was compacted.
    pub compact_revision: i64,
    /// The watcher is gone (compacted start); no more responses follow.
    pub canceled: bool,
}

#[derive(Debug)]
struct Watcher {
    req: WatchRequest,
    /// Next revision this watcher needs. Synced watchers receive live
    /// events with revision >= `next`; unsynced ones replay from here.
    next: i64,
    synced: bool,
    queue: VecDeque<WatchResponse>,
    /// When the watcher last got a response (for periodic progress).
    last_sent: Option<Instant>,
}

/// Range watchers sharing one start key, by end key (`None` = unbounded).
type RangeGroups = BTreeMap<Option<Vec<u8>>, Vec<WatcherId>>;

/// The watch hub; see the module docs.
#[derive(Debug)]
pub struct Hub {
    config: Config,
    watchers: HashMap<WatcherId, Watcher>,
    next_id: WatcherId,
    /// Synced single-key watchers: key → ids.
    by_key: HashMap<Vec<u8>, Vec<WatcherId>>,
    /// Synced range watchers: start → end (None = unbounded) → ids.
    by_range: BTreeMap<Vec<u8>, RangeGroups>,
    unsynced: HashSet<WatcherId>,
    /// Watchers with something queued, so `drain` does not scan all.
    ready: HashSet<WatcherId>,
    /// Last revision passed to `notify` (or the store's revision at start).
    current: i64,
    /// Stream-wide responses (progress), in order.
    stream_out: VecDeque<WatchResponse>,
}

impl Hub {
    /// A hub for a store currently at `current_revision`.
    pub fn new(config: Config, current_revision: i64) -> Self {
        Self {
            config,
            watchers: HashMap::new(),
            next_id: 1,
            by_key: HashMap::new(),
            by_range: BTreeMap::new(),
            unsynced: HashSet::new(),
            ready: HashSet::new(),
            current: current_revision,
            stream_out: VecDeque::new(),
        }
    }

    /// The last revision the hub was notified of.
    pub fn revision(&self) -> i64 {
        self.current
    }

    /// Number of watchers.
    pub fn len(&self) -> usize {
        self.watchers.len()
    }

    /// Whether there are no watchers.
    pub fn is_empty(&self) -> bool {
        self.watchers.is_empty()
    }

    /// Number of watchers that are behind and catching up.
    pub fn unsynced_len(&self) -> usize {
        self.unsynced.len()
    }

    /// Register a watcher. It is synced at once when it starts now or in the
    /// future; otherwise it catches up through [`Hub::sync_unsynced`] (which
    /// also reports a compacted start).
    pub fn watch(&mut self, req: WatchRequest) -> Result<WatcherId> {
        if req.range.start.is_empty() {
            return Err(Error::EmptyKey);
        }
        let id = self.next_id;
        self.next_id += 1;
        let next = if req.start_revision <= 0 {
            self.current + 1
        } else {
            req.start_revision
        };
        let synced = next > self.current;
        let w = Watcher {
            req,
            next,
            synced,
            queue: VecDeque::new(),
            last_sent: None,
        };
        if synced {
            self.index(id, &w.req.range);
        } else {
            self.unsynced.insert(id);
        }
        self.watchers.insert(id, w);
        Ok(id)
    }

    /// Remove a watcher and whatever it had queued. False if unknown.
    pub fn cancel(&mut self, id: WatcherId) -> bool {
        let Some(w) = self.watchers.remove(&id) else {
            return false;
        };
        if w.synced {
            self.unindex(id, &w.req.range);
        }
        self.unsynced.remove(&id);
        self.ready.remove(&id);
        true
    }

    /// Remove every watcher of a stream (the client went away).
    pub fn cancel_stream(&mut self, stream: StreamId) {
        let ids: Vec<WatcherId> = self
            .watchers
            .iter()
            .filter(|(_, w)| w.req.stream == stream)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.cancel(id);
        }
        self.stream_out.retain(|r| r.stream != stream);
    }

    /// Deliver the events of a committed batch. `events` are in (revision,
    /// sub) order; `revision` is the store revision after the batch (>= every
    /// event's). O(events × (1 + range groups before the key) + matches);
    /// never waits: a full watcher falls behind instead.
    pub fn notify(&mut self, revision: i64, events: &[Event]) {
        debug_assert!(
            events
                .windows(2)
                .all(|w| w[0].kv.mod_revision <= w[1].kv.mod_revision)
        );
        let first_rev = events.first().map_or(revision, |e| e.kv.mod_revision);
        // watcher → indices of matching events, in order.
        let mut hits: HashMap<WatcherId, Vec<usize>> = HashMap::new();
        for (i, ev) in events.iter().enumerate() {
            let key = ev.kv.key.as_slice();
            if let Some(ids) = self.by_key.get(key) {
                for id in ids {
                    hits.entry(*id).or_default().push(i);
                }
            }
            for (_, ends) in self
                .by_range
                .range::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
            {
                for (end, ids) in ends {
                    if end.as_deref().is_none_or(|end| key < end) {
                        for id in ids {
                            hits.entry(*id).or_default().push(i);
                        }
                    }
                }
            }
        }
        self.current = self.current.max(revision);
        let mut fell_behind = Vec::new();
        // (matching event indices, prev_kv) → the shared response events.
        let mut shared: HashMap<(Vec<usize>, bool), Arc<[Event]>> = HashMap::new();
        for (id, mut idx) in hits {
            let Some(w) = self.watchers.get_mut(&id) else {
                continue;
            };
            idx.retain(|&i| events[i].kv.mod_revision >= w.next && wanted(&w.req, &events[i]));
            if idx.is_empty() {
                continue;
            }
            let req = &w.req;
            let evs = shared
                .entry((idx, req.prev_kv))
                .or_insert_with_key(|(idx, _)| {
                    idx.iter().map(|&i| shaped(req, &events[i])).collect()
                })
                .clone();
            if w.queue.len() >= self.config.max_pending {
                // Slow consumer: replay this batch (and what follows) from
                // history later. Events of this batch all have revision
                // >= first_rev, and nothing before it was missed.
                w.next = w.next.max(first_rev);
                w.synced = false;
                fell_behind.push(id);
                continue;
            }
            w.next = revision + 1;
            w.queue.push_back(WatchResponse {
                stream: w.req.stream,
                watcher: Some(id),
                revision,
                events: evs,
                compact_revision: 0,
                canceled: false,
            });
            self.ready.insert(id);
        }
        for id in fell_behind {
            let range = self.watchers[&id].req.range.clone();
            self.unindex(id, &range);
            self.unsynced.insert(id);
        }
        // Synced watchers that matched nothing are still current.
    }

    /// Catch unsynced watchers up from `history`, reading at most about
    /// `max_events` events in all (at least one revision per watcher that
    /// has room). Watchers that reach the last notified revision become
    /// synced. Returns how many watchers are still unsynced.
    pub fn sync_unsynced(&mut self, history: &impl History, max_events: usize) -> usize {
        let to = history.current_revision().min(self.current);
        let compacted = history.compacted_revision();
        let mut budget = max_events.max(1);
        let mut ids: Vec<WatcherId> = self.unsynced.iter().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if budget == 0 {
                break;
            }
            let Some(w) = self.watchers.get_mut(&id) else {
                continue;
            };
            if w.queue.len() >= self.config.max_pending {
                continue;
            }
            if w.next < compacted {
                w.queue.push_back(WatchResponse {
                    stream: w.req.stream,
                    watcher: Some(id),
                    revision: self.current,
                    events: Arc::from([]),
                    compact_revision: compacted,
                    canceled: true,
                });
                self.ready.insert(id);
                self.unsynced.remove(&id);
                // The watcher is gone once its cancel response is drained.
                w.synced = false;
                w.next = i64::MAX;
                continue;
            }
            if w.next <= to {
                let limit = budget.min(self.config.sync_batch).max(1);
                let read = read_whole_revisions(history, &w.req, w.next, to, limit);
                let (events, reached) = match read {
                    Ok(r) => r,
                    Err(Error::Compacted { .. }) => continue, // seen next round
                    Err(_) => continue,
                };
                budget = budget.saturating_sub(events.len().max(1));
                let evs: Arc<[Event]> = events
                    .iter()
                    .filter(|e| wanted(&w.req, e))
                    .map(|e| shaped(&w.req, e))
                    .collect();
                w.next = reached + 1;
                if !evs.is_empty() {
                    w.queue.push_back(WatchResponse {
                        stream: w.req.stream,
                        watcher: Some(id),
                        revision: self.current,
                        events: evs,
                        compact_revision: 0,
                        canceled: false,
                    });
                    self.ready.insert(id);
                }
            }
            if w.next > self.current {
                w.synced = true;
                let range = w.req.range.clone();
                self.unsynced.remove(&id);
                self.index(id, &range);
            }
        }
        self.unsynced.len()
    }

    /// etcd 3.5's progress request: if every watcher of `stream` is synced
    /// and has nothing queued, queue one stream-wide response carrying the
    /// current revision and return true. Otherwise nothing (the client
    /// would otherwise learn a revision its events have not reached yet).
    pub fn request_progress(&mut self, stream: StreamId) -> bool {
        let all_synced = self
            .watchers
            .values()
            .filter(|w| w.req.stream == stream)
            .all(|w| w.synced && w.queue.is_empty());
        if all_synced {
            self.stream_out.push_back(WatchResponse {
                stream,
                watcher: None,
                revision: self.current,
                events: Arc::from([]),
                compact_revision: 0,
                canceled: false,
            });
        }
        all_synced
    }

    /// Periodic progress: every synced `progress_notify` watcher with an
    /// empty queue that got nothing for [`Config::progress_interval`] gets
    /// an empty response at the current revision.
    pub fn tick(&mut self, now: Instant) {
        let interval = self.config.progress_interval;
        for (id, w) in &mut self.watchers {
            if !w.req.progress_notify || !w.synced || !w.queue.is_empty() {
                continue;
            }
            let due = match w.last_sent {
                Some(t) => now.saturating_duration_since(t) >= interval,
                None => {
                    w.last_sent = Some(now);
                    false
                }
            };
            if due {
                w.queue.push_back(WatchResponse {
                    stream: w.req.stream,
                    watcher: Some(*id),
                    revision: self.current,
                    events: Arc::from([]),
                    compact_revision: 0,
                    canceled: false,
                });
                self.ready.insert(*id);
            }
        }
    }

    /// Take every queued response (stream-wide ones first), noting `now`
    /// as the watchers' last send time.
    pub fn drain(&mut self, now: Instant) -> Vec<WatchResponse> {
        let mut out: Vec<WatchResponse> = self.stream_out.drain(..).collect();
        let mut ids: Vec<WatcherId> = self.ready.drain().collect();
        ids.sort_unstable();
        for id in ids {
            self.take(id, usize::MAX, now, &mut out);
        }
        out
    }

    /// Take up to `max` queued responses of one stream (a consumer that
    /// sends as fast as its socket allows).
    pub fn drain_stream(
        &mut self,
        stream: StreamId,
        max: usize,
        now: Instant,
    ) -> Vec<WatchResponse> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(pos) = self.stream_out.iter().position(|r| r.stream == stream) else {
                break;
            };
            out.extend(self.stream_out.remove(pos));
        }
        let mut ids: Vec<WatcherId> = self
            .ready
            .iter()
            .copied()
            .filter(|id| {
                self.watchers
                    .get(id)
                    .is_some_and(|w| w.req.stream == stream)
            })
            .collect();
        ids.sort_unstable();
        for id in ids {
            if out.len() >= max {
                break;
            }
            self.ready.remove(&id);
            let room = max - out.len();
            self.take(id, room, now, &mut out);
        }
        out
    }

    fn take(&mut self, id: WatcherId, max: usize, now: Instant, out: &mut Vec<WatchResponse>) {
        let Some(w) = self.watchers.get_mut(&id) else {
            return;
        };
        let n = w.queue.len().min(max);
        let mut canceled = false;
        for r in w.queue.drain(..n) {
            canceled |= r.canceled;
            out.push(r);
        }
        w.last_sent = Some(now);
        if !w.queue.is_empty() {
            self.ready.insert(id);
        }
        if canceled {
            self.cancel(id);
        }
    }

    fn index(&mut self, id: WatcherId, range: &KeyRange) {
        if range.is_single() {
            self.by_key.entry(range.start.clone()).or_default().push(id);
        } else {
            self.by_range
                .entry(range.start.clone())
                .or_default()
                .entry(range.end.clone())
                .or_default()
                .push(id);
        }
    }

    fn unindex(&mut self, id: WatcherId, range: &KeyRange) {
        if range.is_single() {
            if let Some(ids) = self.by_key.get_mut(&range.start) {
                ids.retain(|x| *x != id);
                if ids.is_empty() {
                    self.by_key.remove(&range.start);
                }
            }
        } else if let Some(ends) = self.by_range.get_mut(&range.start) {
            if let Some(ids) = ends.get_mut(&range.end) {
                ids.retain(|x| *x != id);
                if ids.is_empty() {
                    ends.remove(&range.end);
                }
            }
            if ends.is_empty() {
                self.by_range.remove(&range.start);
            }
        }
    }
}

/// Whether the watcher's filters let `e` through.
fn wanted(req: &WatchRequest, e: &Event) -> bool {
    match e.kind {
        EventKind::Put => !req.no_put,
        EventKind::Delete => !req.no_delete,
    }
}

/// The event as this watcher sees it (`prev_kv` only on request).
fn shaped(req: &WatchRequest, e: &Event) -> Event {
    if req.prev_kv || e.prev_kv.is_none() {
        e.clone()
    } else {
        Event {
            kind: e.kind,
            kv: e.kv.clone(),
            prev_kv: None,
        }
    }
}

/// Events of `req.range` from `from` up to `to`, at most about `limit`,
/// never ending inside a revision. Returns the events and the last revision
/// fully covered.
fn read_whole_revisions(
    history: &impl History,
    req: &WatchRequest,
    from: i64,
    to: i64,
    limit: usize,
) -> Result<(Vec<Event>, i64)> {
    let mut events = history.events(&req.range, from, to, req.prev_kv, limit)?;
    if events.len() < limit {
        return Ok((events, to));
    }
    // Possibly cut inside the last revision: drop it and read it again on
    // the next step, unless it is the only one (then read it whole).
    let last = events.last().map_or(to, |e| e.kv.mod_revision);
    let first = events.first().map_or(from, |e| e.kv.mod_revision);
    if first == last {
        let events = history.events(&req.range, last, last, req.prev_kv, 0)?;
        return Ok((events, last));
    }
    events.retain(|e| e.kv.mod_revision < last);
    Ok((events, last - 1))
}

#[cfg(test)]
mod tests;
