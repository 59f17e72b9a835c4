//! The watch hub against a plain model history (a `Vec` of revisions over a
//! `BTreeMap`), with random operation sequences:
//!
//! - transactions of puts and deletes over a small key space, committed to
//!   the model at once but notified to the hub later, sometimes several
//!   revisions in one `notify` (so history views run ahead of the hub);
//! - watchers on random streams, ranges (key, prefix, interval, from-key),
//!   filters and `prev_kv`, starting now, in the past (possibly compacted)
//!   or in the future;
//! - consumers that drain a few responses at random times with tiny
//!   buffers, so watchers keep falling behind and catching up;
//! - catch-up from a fresh or a stale history view, with small budgets;
//! - compactions, cancels, progress requests and progress ticks.
//!
//! Oracle: each watcher's events equal the model's history for its range
//! from its start, shaped by its filters (no gap, duplicate, reordering, or
//! split revision); a canceled watcher got a prefix of that (a compaction
//! cancel only when its cursor was really below the compacted revision); a
//! start below the compacted revision is always canceled; every progress
//! response comes after all the events it vouches for.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use ferrocd_mvcc::{
    Error, Event, EventKind, History, Hub, KeyRange, KeyValue, Result, StreamId, WatchConfig,
    WatchRequest, WatchResponse, WatcherId,
};
use proptest::prelude::*;

const KEYS: &[&str] = &["a", "a/1", "a/2", "b", "b/1", "c"];

#[derive(Debug, Clone, Default)]
struct Model {
    state: BTreeMap<Vec<u8>, KeyValue>,
    log: Vec<(i64, Vec<Event>)>,
    current: i64,
    compacted: i64,
}

impl Model {
    /// Apply one transaction; `None` deletes. Returns its events.
    fn txn(&mut self, ops: &[(usize, Option<u8>)], delete_prefix: bool) -> Vec<Event> {
        let rev = self.current + 1;
        let mut events = Vec::new();
        let mut touched = HashSet::new();
        for &(k, v) in ops {
            let keys: Vec<Vec<u8>> = if v.is_none() && delete_prefix {
                let r = KeyRange::prefix(KEYS[k].as_bytes());
                self.state
                    .keys()
                    .filter(|x| r.contains(x))
                    .cloned()
                    .collect()
            } else {
                vec![KEYS[k].as_bytes().to_vec()]
            };
            for key in keys {
                if !touched.insert(key.clone()) {
                    continue; // etcd refuses a key twice in one txn
                }
                let prev = self.state.get(&key).cloned();
                match v {
                    Some(v) => {
                        let kv = KeyValue {
                            key: key.clone(),
                            create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
                            mod_revision: rev,
                            version: prev.as_ref().map_or(1, |p| p.version + 1),
                            value: vec![v],
                            lease: 0,
                        };
                        self.state.insert(key, kv.clone());
                        events.push(Event {
                            kind: EventKind::Put,
                            kv,
                            prev_kv: prev,
                        });
                    }
                    None if prev.is_some() => {
                        self.state.remove(&key);
                        events.push(Event {
                            kind: EventKind::Delete,
                            kv: KeyValue {
                                key,
                                mod_revision: rev,
                                ..KeyValue::default()
                            },
                            prev_kv: prev,
                        });
                    }
                    None => {}
                }
            }
        }
        if !events.is_empty() {
            self.current = rev;
            self.log.push((rev, events.clone()));
        }
        events
    }
}

impl History for Model {
    fn current_revision(&self) -> i64 {
        self.current
    }

    fn compacted_revision(&self) -> i64 {
        self.compacted
    }

    fn events(
        &self,
        range: &KeyRange,
        from: i64,
        to: i64,
        prev_kv: bool,
        limit: usize,
    ) -> Result<Vec<Event>> {
        if from < self.compacted {
            return Err(Error::Compacted {
                compact_revision: self.compacted,
            });
        }
        let mut out = Vec::new();
        for (rev, evs) in &self.log {
            if *rev < from || *rev > to {
                continue;
            }
            if limit > 0 && out.len() >= limit {
                break;
            }
            for e in evs.iter().filter(|e| range.contains(&e.kv.key)) {
                let mut e = e.clone();
                if !prev_kv {
                    e.prev_kv = None;
                }
                out.push(e);
            }
        }
        Ok(out)
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Commit to the model (notified later); `bool`: deletes take prefixes.
    Txn(Vec<(usize, Option<u8>)>, bool),
    /// Notify the hub of everything committed so far, in one batch.
    Notify,
    /// stream, range kind, key, start back from now (<0: future), filter
    /// bits, prev_kv, progress_notify.
    Watch(u8, u8, usize, i64, u8, bool, bool),
    /// stream, max responses.
    Drain(u8, usize),
    /// budget, use the stale view.
    Sync(usize, bool),
    /// Take a (later stale) history view.
    Snap,
    /// Compact at current - back.
    Compact(i64),
    /// Cancel the n-th watcher (modulo).
    Cancel(usize),
    Progress(u8),
    /// Advance the clock by seconds and tick.
    Tick(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let txn = prop::collection::vec(
        (0..KEYS.len(), prop::option::weighted(0.75, any::<u8>())),
        1..4,
    );
    prop_oneof![
        6 => (txn, any::<bool>()).prop_map(|(ops, p)| Op::Txn(ops, p)),
        4 => Just(Op::Notify),
        3 => (0..3u8, 0..4u8, 0..KEYS.len(), -3..10i64, 0..4u8, any::<bool>(), any::<bool>())
            .prop_map(|(s, r, k, b, f, pk, pn)| Op::Watch(s, r, k, b, f, pk, pn)),
        3 => (0..3u8, 1..4usize).prop_map(|(s, m)| Op::Drain(s, m)),
        3 => (1..12usize, any::<bool>()).prop_map(|(b, s)| Op::Sync(b, s)),
        1 => Just(Op::Snap),
        1 => (0..6i64).prop_map(Op::Compact),
        1 => any::<usize>().prop_map(Op::Cancel),
        1 => (0..3u8).prop_map(Op::Progress),
        1 => (1..15u64).prop_map(Op::Tick),
    ]
}

fn range_for(kind: u8, k: usize) -> KeyRange {
    let key = KEYS[k].as_bytes();
    match kind {
        0 => KeyRange::single(key),
        1 => KeyRange::prefix(key),
        2 => KeyRange::new(key, b"b0"), // interval (empty when key >= "b0")
        _ => KeyRange::new(key, b"\0"),
    }
}

#[derive(Debug)]
struct Watched {
    stream: StreamId,
    req: WatchRequest,
    /// Resolved start revision.
    start: i64,
    compacted_at_create: i64,
    got: Vec<Event>,
    /// Revision of the last event of the previous response.
    last_rev: i64,
    compacted: Option<i64>,
    canceled_by_user: bool,
    /// The hub no longer knew it before its compaction cancel was drained.
    compaction_due: bool,
}

impl Watched {
    fn expected(&self, model: &Model) -> Vec<Event> {
        let mut out = Vec::new();
        for (rev, evs) in &model.log {
            if *rev < self.start {
                continue;
            }
            for e in evs {
                let wanted = match e.kind {
                    EventKind::Put => !self.req.no_put,
                    EventKind::Delete => !self.req.no_delete,
                };
                if self.req.range.contains(&e.kv.key) && wanted {
                    let mut e = e.clone();
                    if !self.req.prev_kv {
                        e.prev_kv = None;
                    }
                    out.push(e);
                }
            }
        }
        out
    }

    fn live(&self) -> bool {
        self.compacted.is_none() && !self.canceled_by_user
    }
}

struct Harness {
    model: Model,
    hub: Hub,
    /// Events committed but not yet notified.
    unnotified: Vec<Event>,
    watched: HashMap<WatcherId, Watched>,
    order: Vec<WatcherId>,
    /// Per stream, per progress request, the watchers alive then. The k-th
    /// stream progress response is queued after the k-th request (requests
    /// coalesce, never split), so it vouches for the k-th set at least.
    asked: HashMap<StreamId, VecDeque<HashSet<WatcherId>>>,
}

impl Harness {
    fn handle(&mut self, out: Vec<WatchResponse>) {
        for r in out {
            let Some(id) = r.watcher else {
                // Stream progress: every watcher alive when it was asked
                // has all its events up to r.revision.
                assert!(r.is_progress());
                assert!(r.revision <= self.hub.revision());
                let sets = self.asked.get_mut(&r.stream).expect("asked");
                for id in sets.pop_front().expect("a request per response") {
                    self.check_progress(id, r.revision);
                }
                continue;
            };
            let w = self.watched.get_mut(&id).expect("known watcher");
            assert_eq!(w.stream, r.stream);
            assert!(w.live(), "response after cancel: {r:?}");
            if r.canceled {
                assert!(r.events.is_empty());
                assert!(r.compact_revision > 0);
                w.compacted = Some(r.compact_revision);
                continue;
            }
            if r.events.is_empty() {
                self.check_progress(id, r.revision);
                continue;
            }
            let first = r.events[0].kv.mod_revision;
            let last = r.events[r.events.len() - 1].kv.mod_revision;
            assert!(first > w.last_rev, "revision split or repeated: {r:?}");
            assert!(r.revision >= last);
            w.last_rev = last;
            w.got.extend(r.events.iter().cloned());
        }
    }

    fn check_progress(&self, id: WatcherId, rev: i64) {
        let w = &self.watched[&id];
        if !w.live() {
            return;
        }
        let due = w
            .expected(&self.model)
            .iter()
            .filter(|e| e.kv.mod_revision <= rev)
            .count();
        assert!(
            w.got.len() >= due,
            "progress at {rev} before {id}'s events: got {} of {due}",
            w.got.len()
        );
    }
}

fn run(ops: Vec<Op>, max_pending: usize, sync_batch: usize) {
    let mut h = Harness {
        model: Model::default(),
        hub: Hub::new(
            WatchConfig {
                max_pending,
                sync_batch,
                progress_interval: Duration::from_secs(10),
            },
            0,
        ),
        unnotified: Vec::new(),
        watched: HashMap::new(),
        order: Vec::new(),
        asked: HashMap::new(),
    };
    let mut snap: Option<Model> = None;
    let t0 = Instant::now();
    let mut now = t0;
    for op in ops {
        match op {
            Op::Txn(ops, prefix) => {
                let events = h.model.txn(&ops, prefix);
                h.unnotified.extend(events);
            }
            Op::Notify => {
                let events = std::mem::take(&mut h.unnotified);
                h.hub.notify(h.model.current, &events);
            }
            Op::Watch(stream, kind, k, back, filters, prev_kv, progress_notify) => {
                let req = WatchRequest {
                    range: range_for(kind, k),
                    start_revision: if back == 0 {
                        0
                    } else {
                        h.hub.revision() + 1 - back
                    },
                    prev_kv,
                    no_put: filters & 1 == 1,
                    no_delete: filters & 2 == 2,
                    progress_notify,
                };
                let start = if req.start_revision <= 0 {
                    h.hub.revision() + 1
                } else {
                    req.start_revision
                };
                let stream = StreamId::from(stream);
                let id = h.hub.watch(stream, req.clone());
                h.order.push(id);
                h.watched.insert(
                    id,
                    Watched {
                        stream,
                        req,
                        start,
                        compacted_at_create: h.model.compacted,
                        got: Vec::new(),
                        last_rev: 0,
                        compacted: None,
                        canceled_by_user: false,
                        compaction_due: false,
                    },
                );
            }
            Op::Drain(stream, max) => {
                let mut out = Vec::new();
                h.hub.drain_stream(StreamId::from(stream), max, &mut out);
                assert!(out.len() <= max);
                h.handle(out);
            }
            Op::Sync(budget, stale) => {
                let view = match (&snap, stale) {
                    (Some(s), true) => s,
                    _ => &h.model,
                };
                h.hub.sync_unsynced(view, budget).unwrap();
            }
            Op::Snap => snap = Some(h.model.clone()),
            Op::Compact(back) => {
                // Only revisions the hub has seen, as the node compacts
                // applied revisions; a view from before it is dropped.
                let at = (h.hub.revision() - back).max(h.model.compacted);
                h.model.compacted = at;
                snap = None;
            }
            Op::Cancel(n) => {
                if !h.order.is_empty() {
                    let id = h.order[n % h.order.len()];
                    let w = h.watched.get_mut(&id).unwrap();
                    let known = h.hub.cancel(id);
                    if known {
                        assert!(w.live());
                        w.canceled_by_user = true;
                    } else if w.live() {
                        // Canceled by compaction, the response still queued.
                        w.compaction_due = true;
                    }
                }
            }
            Op::Progress(stream) => {
                let stream = StreamId::from(stream);
                let ids: Vec<WatcherId> = h
                    .watched
                    .iter()
                    .filter(|(_, w)| w.stream == stream && w.live())
                    .map(|(id, _)| *id)
                    .collect();
                h.asked
                    .entry(stream)
                    .or_default()
                    .push_back(ids.into_iter().collect());
                h.hub.request_progress(stream);
            }
            Op::Tick(secs) => {
                now += Duration::from_secs(secs);
                h.hub.tick(now);
            }
        }
    }
    // Settle: notify the rest, then drain and catch up until quiet.
    let events = std::mem::take(&mut h.unnotified);
    h.hub.notify(h.model.current, &events);
    for round in 0.. {
        let mut out = Vec::new();
        h.hub.drain(&mut out);
        let quiet = out.is_empty();
        h.handle(out);
        if quiet && h.hub.unsynced_len() == 0 {
            break;
        }
        assert!(round < 10_000, "catch-up makes no progress");
        h.hub.sync_unsynced(&h.model, 5).unwrap();
    }

    let live = h.watched.values().filter(|w| w.live()).count();
    assert_eq!(h.hub.len(), live);
    for (id, w) in &h.watched {
        let want = w.expected(&h.model);
        if let Some(c) = w.compacted {
            assert!(c <= h.model.compacted);
            assert!(want.starts_with(&w.got), "{id}: not a prefix");
            // Its cursor (past everything it got) was below c.
            assert!(
                w.last_rev < c - 1,
                "{id}: canceled at {c} after {}",
                w.last_rev
            );
        } else if w.canceled_by_user {
            assert!(!w.compaction_due);
            assert!(want.starts_with(&w.got), "{id}: not a prefix");
        } else {
            assert!(
                w.start >= w.compacted_at_create,
                "{id}: compacted start served"
            );
            assert_eq!(w.got, want, "{id}: {:?}", w.req);
            assert_eq!(h.hub.is_synced(*id), Some(true));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn hub_matches_model(
        ops in prop::collection::vec(op(), 1..80),
        max_pending in 1..4usize,
        sync_batch in 1..5usize,
    ) {
        run(ops, max_pending, sync_batch);
    }
}

/// A fixed scenario that once needed care: a watcher falls behind while
/// another batch is committed but not notified, and catches up from a view
/// that is ahead of the hub.
#[test]
fn falls_behind_while_view_is_ahead() {
    run(
        vec![
            Op::Watch(0, 1, 0, 0, 0, true, false),
            Op::Txn(vec![(1, Some(1))], false),
            Op::Notify,
            Op::Txn(vec![(2, Some(2))], false),
            Op::Notify,
            Op::Txn(vec![(1, None), (2, Some(3))], false),
            Op::Sync(10, false),
            Op::Drain(0, 1),
            Op::Sync(10, false),
            Op::Notify,
            Op::Drain(0, 3),
        ],
        1,
        1,
    );
}

/// Found by the property test: a compaction cancel dropped the responses
/// its watcher had already queued, so a stream progress response queued
/// between them vouched for events the client never got. Now the queued
/// responses go out first, then the cancel.
#[test]
fn compaction_cancel_keeps_what_was_queued_before_progress() {
    run(
        vec![
            Op::Txn(vec![(0, Some(0))], false),
            Op::Watch(0, 0, 1, 0, 2, false, false),
            Op::Txn(vec![(0, None)], false),
            Op::Notify,
            Op::Watch(0, 0, 1, 1, 0, false, false),
            Op::Txn(vec![(1, Some(0))], false),
            Op::Progress(0),
            Op::Notify,
            Op::Txn(vec![(0, None)], false),
            Op::Txn(vec![(0, Some(0))], false),
            Op::Txn(vec![(0, None)], false),
            Op::Sync(1, false),
            Op::Txn(vec![(0, None)], true),
            Op::Txn(vec![(1, Some(0))], false),
            Op::Txn(vec![(1, None)], false),
            Op::Notify,
            Op::Compact(0),
            Op::Sync(1, false),
        ],
        1,
        1,
    );
}
