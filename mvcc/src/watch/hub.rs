//! The hub: registration, live fan-out, catch-up, progress and draining,
//! over the slabs of watchers (`watcher`), groups (`index`) and streams
//! (`stream`). The rules are in the parent module's docs; this file keeps
//! the bookkeeping consistent:
//!
//! - a live watcher is either synced (in its group's `members`) or
//!   unsynced (counted in its stream's and the hub's unsynced counts, its id
//!   in the unsynced queue);
//! - `pending` equals the number of its responses in its stream's outbox;
//! - a stream is in the ready list exactly when its outbox is non-empty.
//!
//! The unsynced queue is a FIFO of ids, so catch-up is round-robin and a
//! call with a small budget still makes progress for everyone over calls.
//! Entries go stale when a watcher is canceled or promoted; they are skipped
//! (generation / `queued` checks) rather than searched for.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::history::History;
use super::index::{GroupId, Index};
use super::stream::Stream;
use super::watcher::{VARIANTS, Watcher, shape, variant};
use super::{Config, StreamId, WatchRequest, WatchResponse, WatcherId};
use crate::error::{Error, Result};
use crate::kv::Event;

/// The watch hub: etcd 3.5 watch semantics as a sans-IO state machine.
///
/// Drive it with [`Hub::notify`] (every committed batch, in order),
/// [`Hub::sync_unsynced`] (while [`Hub::unsynced_len`] > 0, with a
/// consistent [`History`] view), [`Hub::tick`] (periodic progress) and
/// [`Hub::request_progress`]; take responses with [`Hub::drain_stream`] or
/// [`Hub::drain`].
///
/// Each watcher gets every change to its range from its start revision, in
/// order, exactly once, one revision never split; a start (or a lagging
/// cursor) below the compacted revision gets a `canceled` response with
/// `compact_revision` (equal is served, as etcd's `minRev < compactRev`); a
/// watcher with [`Config::max_pending`] responses waiting falls behind and
/// catches up from history instead of blocking `notify`. A progress
/// response at revision R follows every event up to R of the watchers it
/// speaks for. Responses still queued for a watcher the client cancels are
/// dropped; a compaction cancel follows the responses queued before it.
#[derive(Debug)]
pub struct Hub {
    config: Config,
    /// The last revision passed to `notify` (or given at creation).
    current: i64,
    watchers: Vec<Watcher>,
    free_watchers: Vec<u32>,
    live: usize,
    index: Index,
    streams: Vec<Option<Stream>>,
    free_streams: Vec<u32>,
    stream_slots: HashMap<StreamId, u32>,
    /// Stream slots with a non-empty outbox.
    ready: Vec<u32>,
    unsynced: VecDeque<WatcherId>,
    unsynced_len: usize,
    prev_kv_watchers: usize,
    next_sweep: Option<Instant>,
    /// Scratch for `notify`: (group, event index) matches, watchers that
    /// fell behind. Kept to avoid allocating per call.
    hits: Vec<(GroupId, u32)>,
    fallen: Vec<u32>,
    /// Events in the responses queued in every outbox.
    queued_events: usize,
}

impl Hub {
    /// A hub for a store whose last applied revision is `current_revision`.
    pub fn new(config: Config, current_revision: i64) -> Self {
        Self {
            config,
            current: current_revision,
            watchers: Vec::new(),
            free_watchers: Vec::new(),
            live: 0,
            index: Index::default(),
            streams: Vec::new(),
            free_streams: Vec::new(),
            stream_slots: HashMap::new(),
            ready: Vec::new(),
            unsynced: VecDeque::new(),
            unsynced_len: 0,
            prev_kv_watchers: 0,
            next_sweep: None,
            hits: Vec::new(),
            fallen: Vec::new(),
            queued_events: 0,
        }
    }

    /// The last revision the hub was notified of.
    pub fn revision(&self) -> i64 {
        self.current
    }

    /// Number of watchers.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether there are no watchers.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Number of watchers behind the live stream (call
    /// [`Hub::sync_unsynced`] while non-zero).
    pub fn unsynced_len(&self) -> usize {
        self.unsynced_len
    }

    /// Whether any watcher wants `prev_kv`: the apply loop may skip
    /// computing previous values for `notify` when none does.
    pub fn wants_prev_kv(&self) -> bool {
        self.prev_kv_watchers > 0
    }

    /// Number of distinct ranges watched (tests).
    #[cfg(test)]
    pub(crate) fn groups(&self) -> usize {
        self.index.groups()
    }

    /// Whether `id` is a live watcher fed by `notify` (`None` if unknown).
    pub fn is_synced(&self, id: WatcherId) -> Option<bool> {
        self.resolve(id)
            .map(|slot| self.watchers[slot as usize].synced)
    }

    /// Streams with responses waiting, in no particular order.
    pub fn ready_streams(&self) -> impl Iterator<Item = StreamId> + '_ {
        self.ready.iter().map(|&s| self.stream(s).id)
    }

    /// Register a watcher on `stream`. It is synced at once when it starts
    /// now or in the future; otherwise it waits for
    /// [`Hub::sync_unsynced`], which also cancels it if its start is
    /// compacted.
    pub fn watch(&mut self, stream: StreamId, req: WatchRequest) -> WatcherId {
        let s = self.open_stream(stream);
        let group = self.index.acquire(&req.range);
        let next = if req.start_revision <= 0 {
            self.current + 1
        } else {
            req.start_revision
        };
        let synced = next > self.current;
        let slot = match self.free_watchers.pop() {
            Some(slot) => slot,
            None => {
                self.watchers.push(Watcher {
                    generation: 0,
                    alive: false,
                    draining: false,
                    stream: 0,
                    stream_pos: 0,
                    group: 0,
                    group_pos: 0,
                    next: 0,
                    pending: 0,
                    variant: 0,
                    progress_notify: false,
                    synced: false,
                    active: false,
                    queued: false,
                });
                u32::try_from(self.watchers.len() - 1).expect("fewer than 2^32 watchers")
            }
        };
        let st = self.stream_mut(s);
        st.watchers.push(slot);
        let stream_pos = u32::try_from(st.watchers.len() - 1).expect("fewer than 2^32 watchers");
        let w = &mut self.watchers[slot as usize];
        w.generation = w.generation.wrapping_add(1).max(1);
        w.alive = true;
        w.draining = false;
        w.stream = s;
        w.stream_pos = stream_pos;
        w.group = group;
        w.group_pos = 0;
        w.next = next;
        w.pending = 0;
        w.variant = variant(&req);
        w.progress_notify = req.progress_notify;
        w.synced = synced;
        w.active = false;
        w.queued = false;
        let id = w.id(slot);
        self.live += 1;
        if req.prev_kv {
            self.prev_kv_watchers += 1;
        }
        if synced {
            self.watchers[slot as usize].group_pos = self.index.add_member(group, slot);
        } else {
            self.mark_unsynced(slot);
        }
        id
    }

    /// Events in the responses queued for the streams, not drained yet
    /// (etcd's pending events).
    pub fn queued_events(&self) -> usize {
        self.queued_events
    }

    /// Remove a watcher; responses of it still queued are dropped. False if
    /// unknown (already canceled, or compacted away).
    pub fn cancel(&mut self, id: WatcherId) -> bool {
        let Some(slot) = self.resolve(id) else {
            return false;
        };
        let s = self.watchers[slot as usize].stream;
        self.remove(slot);
        self.maybe_progress(s);
        self.maybe_close(s);
        true
    }

    /// Remove every watcher of `stream` and whatever it had queued (the
    /// client went away).
    pub fn close_stream(&mut self, stream: StreamId) {
        let Some(&s) = self.stream_slots.get(&stream) else {
            return;
        };
        while let Some(&slot) = self.stream(s).watchers.last() {
            self.remove(slot);
        }
        let st = self.stream_mut(s);
        let outbox = std::mem::take(&mut st.outbox);
        st.progress_pending = false;
        for resp in outbox {
            self.queued_events -= resp.events.len();
            if let Some(id) = resp.watcher.filter(|_| resp.canceled) {
                let w = &mut self.watchers[id.slot() as usize];
                if w.draining && w.generation == id.generation() {
                    w.draining = false;
                    self.free_watchers.push(id.slot());
                }
            }
        }
        self.set_ready(s, false);
        self.maybe_close(s);
    }

    /// Deliver a committed batch: `events` in (revision, sub) order, all
    /// with revisions above the previous `notify`'s and `<= revision`, the
    /// store's revision after the batch. Each matching synced watcher gets
    /// one response holding its events of the batch; one with no room falls
    /// behind instead. Cost: O(events × log groups + matching watchers).
    pub fn notify(&mut self, revision: i64, events: &[Event]) {
        debug_assert!(
            events
                .windows(2)
                .all(|w| w[0].kv.mod_revision <= w[1].kv.mod_revision)
        );
        debug_assert!(
            events
                .iter()
                .all(|e| e.kv.mod_revision > self.current && e.kv.mod_revision <= revision)
        );
        let before = self.current;
        self.current = self.current.max(revision);
        if events.is_empty() || self.live == self.unsynced_len {
            return;
        }
        let mut hits = std::mem::take(&mut self.hits);
        let mut fallen = std::mem::take(&mut self.fallen);
        hits.clear();
        for (i, ev) in events.iter().enumerate() {
            let i = i as u32;
            self.index.matching(&ev.kv.key, &mut |g| hits.push((g, i)));
        }
        if events.len() > 1 {
            hits.sort_unstable();
        }
        let max_pending = self.config.max_pending.max(1) as u32;
        // Shared events per variant, valid while consecutive groups match
        // the same event indices (always, for a one-event batch).
        let mut cache: [Option<Option<Arc<[Event]>>>; VARIANTS] = Default::default();
        let mut cache_for: &[(GroupId, u32)] = &[];
        let mut run_start = 0;
        while run_start < hits.len() {
            let g = hits[run_start].0;
            let run_end = hits[run_start..]
                .iter()
                .position(|h| h.0 != g)
                .map_or(hits.len(), |n| run_start + n);
            let run = &hits[run_start..run_end];
            run_start = run_end;
            let group = self.index.group(g);
            if group.members.is_empty() {
                continue;
            }
            if !run.iter().map(|h| h.1).eq(cache_for.iter().map(|h| h.1)) {
                cache = Default::default();
                cache_for = run;
            }
            let first_rev = events[run[0].1 as usize].kv.mod_revision;
            for &slot in &group.members {
                let w = &mut self.watchers[slot as usize];
                let evs = if w.next > first_rev {
                    // Started in the future, within this batch: its own cut.
                    let next = w.next;
                    shape(
                        w.variant,
                        run.iter()
                            .map(|h| &events[h.1 as usize])
                            .filter(|e| e.kv.mod_revision >= next),
                    )
                } else {
                    cache[w.variant as usize]
                        .get_or_insert_with(|| {
                            shape(w.variant, run.iter().map(|h| &events[h.1 as usize]))
                        })
                        .clone()
                };
                let Some(evs) = evs else {
                    continue;
                };
                if w.pending >= max_pending {
                    // Nothing of this batch was delivered: resume at the
                    // first revision after what it had.
                    w.next = w.next.max(before + 1);
                    fallen.push(slot);
                    continue;
                }
                w.pending += 1;
                w.active = true;
                let id = w.id(slot);
                let s = w.stream;
                let st = self.streams[s as usize].as_mut().expect("live stream");
                self.queued_events += evs.len();
                st.outbox.push_back(WatchResponse {
                    stream: st.id,
                    watcher: Some(id),
                    revision,
                    events: evs,
                    compact_revision: 0,
                    canceled: false,
                });
                if st.ready_pos.is_none() {
                    st.ready_pos = Some(self.ready.len() as u32);
                    self.ready.push(s);
                }
            }
        }
        for slot in fallen.drain(..) {
            self.unindex(slot);
            self.mark_unsynced(slot);
        }
        self.hits = hits;
        self.fallen = fallen;
    }

    /// Catch unsynced watchers up from `history`, reading about
    /// `max_events` events in all (at least one step). Round-robin over the
    /// unsynced watchers, as many passes as the budget allows; each step reads at most [`Config::sync_batch`]
    /// events (whole revisions) for one watcher, queues them as one
    /// response, and promotes the watcher to synced once it has reached the
    /// hub's revision. Watchers whose next revision is compacted get the
    /// compacted cancel. Watchers sharing a range and cursor share a read.
    ///
    /// Returns how many watchers are still unsynced. An error other than
    /// `Compacted` from `history` stops the call; the watcher keeps its place
    /// and is retried next time.
    pub fn sync_unsynced(&mut self, history: &impl History, max_events: usize) -> Result<usize> {
        let to = history.current_revision().min(self.current);
        let compacted = history.compacted_revision();
        let max_pending = self.config.max_pending.max(1) as u32;
        let mut budget = max_events.max(1);
        let mut reads: HashMap<(GroupId, i64, bool), (Vec<Event>, i64)> = HashMap::new();
        // Passes over the queue while the budget lasts and the previous
        // pass read something (a pass that read nothing would repeat).
        let mut steps = self.unsynced.len();
        let mut read_in_pass = true;
        while budget > 0 {
            if steps == 0 {
                steps = self.unsynced.len();
                if !read_in_pass || steps == 0 {
                    break;
                }
                read_in_pass = false;
            }
            steps -= 1;
            let Some(id) = self.unsynced.pop_front() else {
                break;
            };
            let Some(slot) = self.resolve(id) else {
                continue; // canceled
            };
            let w = &mut self.watchers[slot as usize];
            if w.synced {
                w.queued = false;
                continue; // stale entry
            }
            if w.next < compacted {
                self.cancel_compacted(slot, compacted);
                continue;
            }
            if w.pending >= max_pending {
                self.unsynced.push_back(id); // no room yet
                continue;
            }
            if w.next <= to {
                let key = (w.group, w.next, w.variant & 1 == 1);
                if let Entry::Vacant(vacant) = reads.entry(key) {
                    let limit = budget.min(self.config.sync_batch.max(1));
                    let range = &self.index.group(w.group).range;
                    let events = match history.events(range, key.1, to, key.2, limit) {
                        Ok(events) => events,
                        Err(Error::Compacted { compact_revision }) => {
                            self.cancel_compacted(slot, compact_revision);
                            continue;
                        }
                        Err(e) => {
                            self.unsynced.push_front(id);
                            return Err(e);
                        }
                    };
                    let through = match events.last() {
                        Some(last) if events.len() >= limit => last.kv.mod_revision,
                        _ => to,
                    };
                    debug_assert!(
                        events.iter().all(|e| {
                            e.kv.mod_revision >= key.1 && e.kv.mod_revision <= through
                        })
                    );
                    budget = budget.saturating_sub(events.len().max(1));
                    read_in_pass = true;
                    vacant.insert((events, through));
                }
                let (events, through) = &reads[&key];
                let w = &mut self.watchers[slot as usize];
                w.next = through + 1;
                if let Some(evs) = shape(w.variant, events.iter()) {
                    w.pending += 1;
                    w.active = true;
                    let resp = WatchResponse {
                        stream: 0,
                        watcher: Some(w.id(slot)),
                        revision: *through,
                        events: evs,
                        compact_revision: 0,
                        canceled: false,
                    };
                    let s = w.stream;
                    self.push(s, resp);
                }
            }
            let w = &mut self.watchers[slot as usize];
            if w.next > self.current {
                w.synced = true;
                w.queued = false;
                let (group, s) = (w.group, w.stream);
                self.watchers[slot as usize].group_pos = self.index.add_member(group, slot);
                self.stream_mut(s).unsynced -= 1;
                self.unsynced_len -= 1;
                self.maybe_progress(s);
            } else {
                self.unsynced.push_back(id);
            }
        }
        Ok(self.unsynced_len)
    }

    /// etcd's progress request on `stream`: one stream-wide response
    /// (`watcher: None`) at the hub's revision, queued as soon as every
    /// watcher of the stream is synced (now, or when the last one catches
    /// up); repeated requests meanwhile coalesce. A stream without watchers
    /// gets nothing, as in etcd 3.5 (it answers through a watcher).
    pub fn request_progress(&mut self, stream: StreamId) {
        let Some(&s) = self.stream_slots.get(&stream) else {
            return;
        };
        if self.stream(s).watchers.is_empty() {
            return;
        }
        self.stream_mut(s).progress_pending = true;
        self.maybe_progress(s);
    }

    /// Periodic progress. The first call starts the clock; every call at
    /// least [`Config::progress_interval`] after the previous sweep sweeps:
    /// each synced `progress_notify` watcher that got no events since the
    /// previous sweep (and has room) gets a progress response at the hub's
    /// revision. O(watchers) per sweep, nothing between sweeps.
    pub fn tick(&mut self, now: Instant) {
        match self.next_sweep {
            Some(at) if now >= at => {}
            Some(_) => return,
            None => {
                self.next_sweep = Some(now + self.config.progress_interval);
                return;
            }
        }
        self.next_sweep = Some(now + self.config.progress_interval);
        let max_pending = self.config.max_pending.max(1) as u32;
        for slot in 0..self.watchers.len() as u32 {
            let w = &mut self.watchers[slot as usize];
            if !w.alive || !w.progress_notify {
                continue;
            }
            let idle = !std::mem::replace(&mut w.active, false);
            if idle && w.synced && w.pending < max_pending {
                w.pending += 1;
                let resp = WatchResponse {
                    stream: 0,
                    watcher: Some(w.id(slot)),
                    revision: self.current,
                    events: Arc::from([]),
                    compact_revision: 0,
                    canceled: false,
                };
                let s = w.stream;
                self.push(s, resp);
            }
        }
    }

    /// Move up to `max` of `stream`'s responses, in order, into `out`.
    /// Returns how many.
    pub fn drain_stream(
        &mut self,
        stream: StreamId,
        max: usize,
        out: &mut Vec<WatchResponse>,
    ) -> usize {
        match self.stream_slots.get(&stream) {
            Some(&s) => self.drain_slot(s, max, out),
            None => 0,
        }
    }

    /// Move every queued response of every stream into `out` (each stream's
    /// in order). Returns how many.
    pub fn drain(&mut self, out: &mut Vec<WatchResponse>) -> usize {
        let mut n = 0;
        while let Some(&s) = self.ready.last() {
            n += self.drain_slot(s, usize::MAX, out);
        }
        n
    }

    fn drain_slot(&mut self, s: u32, max: usize, out: &mut Vec<WatchResponse>) -> usize {
        let mut n = 0;
        while n < max {
            let Some(resp) = self.stream_mut(s).outbox.pop_front() else {
                break;
            };
            self.queued_events -= resp.events.len();
            if let Some(id) = resp.watcher {
                let slot = id.slot();
                let w = &mut self.watchers[slot as usize];
                if w.generation != id.generation() || !(w.alive || w.draining) {
                    continue; // the client canceled it after it was queued
                }
                if resp.canceled {
                    // The compaction cancel, after everything it had.
                    w.draining = false;
                    self.free_watchers.push(slot);
                } else {
                    w.pending -= 1;
                }
            }
            out.push(resp);
            n += 1;
        }
        if self.stream(s).outbox.is_empty() {
            self.set_ready(s, false);
            self.maybe_close(s);
        }
        n
    }

    fn resolve(&self, id: WatcherId) -> Option<u32> {
        let slot = id.slot();
        let w = self.watchers.get(slot as usize)?;
        (w.alive && w.generation == id.generation()).then_some(slot)
    }

    fn stream(&self, s: u32) -> &Stream {
        self.streams[s as usize].as_ref().expect("live stream")
    }

    fn stream_mut(&mut self, s: u32) -> &mut Stream {
        self.streams[s as usize].as_mut().expect("live stream")
    }

    fn open_stream(&mut self, stream: StreamId) -> u32 {
        if let Some(&s) = self.stream_slots.get(&stream) {
            return s;
        }
        let st = Some(Stream::new(stream));
        let s = match self.free_streams.pop() {
            Some(s) => {
                self.streams[s as usize] = st;
                s
            }
            None => {
                self.streams.push(st);
                u32::try_from(self.streams.len() - 1).expect("fewer than 2^32 streams")
            }
        };
        self.stream_slots.insert(stream, s);
        s
    }

    /// Forget a stream with no watchers and nothing queued.
    fn maybe_close(&mut self, s: u32) {
        let st = self.stream(s);
        if st.watchers.is_empty() && st.outbox.is_empty() {
            let id = st.id;
            self.streams[s as usize] = None;
            self.free_streams.push(s);
            self.stream_slots.remove(&id);
        }
    }

    fn set_ready(&mut self, s: u32, ready: bool) {
        let pos = self.stream(s).ready_pos;
        match (pos, ready) {
            (None, true) => {
                self.stream_mut(s).ready_pos = Some(self.ready.len() as u32);
                self.ready.push(s);
            }
            (Some(pos), false) => {
                self.stream_mut(s).ready_pos = None;
                self.ready.swap_remove(pos as usize);
                if let Some(&moved) = self.ready.get(pos as usize) {
                    self.stream_mut(moved).ready_pos = Some(pos);
                }
            }
            _ => {}
        }
    }

    fn push(&mut self, s: u32, mut resp: WatchResponse) {
        self.queued_events += resp.events.len();
        let st = self.stream_mut(s);
        resp.stream = st.id;
        st.outbox.push_back(resp);
        self.set_ready(s, true);
    }

    /// Queue the stream's deferred progress response if it is due.
    fn maybe_progress(&mut self, s: u32) {
        let current = self.current;
        let st = self.stream_mut(s);
        if !st.progress_pending || st.unsynced > 0 {
            return;
        }
        st.progress_pending = false;
        if st.watchers.is_empty() {
            return; // all canceled meanwhile: etcd would send nothing
        }
        let resp = WatchResponse {
            stream: 0,
            watcher: None,
            revision: current,
            events: Arc::from([]),
            compact_revision: 0,
            canceled: false,
        };
        self.push(s, resp);
    }

    fn mark_unsynced(&mut self, slot: u32) {
        let w = &mut self.watchers[slot as usize];
        w.synced = false;
        let s = w.stream;
        if !w.queued {
            w.queued = true;
            let id = w.id(slot);
            self.unsynced.push_back(id);
        }
        self.stream_mut(s).unsynced += 1;
        self.unsynced_len += 1;
    }

    /// Take a synced watcher out of its group's members.
    fn unindex(&mut self, slot: u32) {
        let w = &self.watchers[slot as usize];
        debug_assert!(w.synced);
        if let Some(moved) = self.index.remove_member(w.group, w.group_pos) {
            self.watchers[moved as usize].group_pos = self.watchers[slot as usize].group_pos;
        }
    }

    /// Queue the compacted cancel for an unsynced watcher and remove it.
    fn cancel_compacted(&mut self, slot: u32, compact_revision: i64) {
        let w = &self.watchers[slot as usize];
        let (s, id) = (w.stream, w.id(slot));
        self.push(
            s,
            WatchResponse {
                stream: 0,
                watcher: Some(id),
                revision: 0,
                events: Arc::from([]),
                compact_revision,
                canceled: true,
            },
        );
        // Its responses already queued still go out, then the cancel (as
        // etcd's per-stream channel delivers them); the slot is freed when
        // the cancel is drained.
        self.detach(slot);
        self.watchers[slot as usize].draining = true;
        self.maybe_progress(s);
    }

    /// Remove a live watcher from every structure and free its slot; its
    /// queued responses will be dropped. Leaves its stream open; callers
    /// close it if it became idle.
    fn remove(&mut self, slot: u32) {
        self.detach(slot);
        self.free_watchers.push(slot);
    }

    /// Take a live watcher out of its group, stream and counts; the slot
    /// stays taken (not alive) until the caller frees it.
    fn detach(&mut self, slot: u32) {
        let w = &self.watchers[slot as usize];
        let (s, group, stream_pos, synced, prev_kv) = (
            w.stream,
            w.group,
            w.stream_pos,
            w.synced,
            w.variant & 1 == 1,
        );
        if synced {
            self.unindex(slot);
        } else {
            self.stream_mut(s).unsynced -= 1;
            self.unsynced_len -= 1;
        }
        self.index.release(group);
        let st = self.stream_mut(s);
        st.watchers.swap_remove(stream_pos as usize);
        if let Some(&moved) = st.watchers.get(stream_pos as usize) {
            self.watchers[moved as usize].stream_pos = stream_pos;
        }
        if prev_kv {
            self.prev_kv_watchers -= 1;
        }
        let w = &mut self.watchers[slot as usize];
        w.alive = false;
        w.queued = false;
        self.live -= 1;
    }
}
