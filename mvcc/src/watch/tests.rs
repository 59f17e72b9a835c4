//! One test per hub rule, against a model history (a `Vec` of revisions
//! over a `BTreeMap` state), so the hub is tested apart from the store.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::*;
use crate::error::{Error, Result};
use crate::kv::{EventKind, KeyValue};

/// The store, as plainly as possible.
#[derive(Default)]
struct Model {
    state: BTreeMap<Vec<u8>, KeyValue>,
    /// (revision, its events with prev_kv filled).
    log: Vec<(i64, Vec<Event>)>,
    current: i64,
    compacted: i64,
}

impl Model {
    /// One transaction: `Some(v)` puts, `None` deletes (if present).
    fn txn(&mut self, ops: &[(&str, Option<&str>)]) -> (i64, Vec<Event>) {
        let rev = self.current + 1;
        let mut events = Vec::new();
        for (k, v) in ops {
            let key = k.as_bytes().to_vec();
            let prev = self.state.get(&key).cloned();
            match v {
                Some(v) => {
                    let kv = KeyValue {
                        key: key.clone(),
                        create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
                        mod_revision: rev,
                        version: prev.as_ref().map_or(1, |p| p.version + 1),
                        value: v.as_bytes().to_vec(),
                        lease: 0,
                    };
                    self.state.insert(key, kv.clone());
                    events.push(Event {
                        kind: EventKind::Put,
                        kv,
                        prev_kv: prev,
                    });
                }
                None => {
                    if prev.is_none() {
                        continue;
                    }
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
            }
        }
        if !events.is_empty() {
            self.current = rev;
            self.log.push((rev, events.clone()));
        }
        (self.current, events)
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

struct Fixture {
    model: Model,
    hub: Hub,
}

/// (kind, key, mod_revision) of one event.
type Ev = (EventKind, String, i64);

fn evs(r: &WatchResponse) -> Vec<Ev> {
    r.events
        .iter()
        .map(|e| {
            (
                e.kind,
                String::from_utf8(e.kv.key.clone()).unwrap(),
                e.kv.mod_revision,
            )
        })
        .collect()
}

fn put(k: &str, rev: i64) -> Ev {
    (EventKind::Put, k.to_string(), rev)
}

fn del(k: &str, rev: i64) -> Ev {
    (EventKind::Delete, k.to_string(), rev)
}

impl Fixture {
    fn new(max_pending: usize) -> Self {
        Self {
            model: Model::default(),
            hub: Hub::new(
                Config {
                    max_pending,
                    sync_batch: 2,
                    progress_interval: Duration::from_secs(10),
                },
                0,
            ),
        }
    }

    fn txn(&mut self, ops: &[(&str, Option<&str>)]) -> i64 {
        let (rev, events) = self.model.txn(ops);
        self.hub.notify(rev, &events);
        rev
    }

    fn put(&mut self, k: &str) -> i64 {
        self.txn(&[(k, Some("v"))])
    }

    fn del(&mut self, k: &str) -> i64 {
        self.txn(&[(k, None)])
    }

    fn watch(&mut self, range: KeyRange, start: i64) -> WatcherId {
        self.hub.watch(
            1,
            WatchRequest {
                start_revision: start,
                ..WatchRequest::new(range)
            },
        )
    }

    fn drain(&mut self) -> Vec<WatchResponse> {
        let mut out = Vec::new();
        self.hub.drain(&mut out);
        out
    }

    /// Events per watcher, draining and syncing until quiet.
    fn settle(&mut self) -> Vec<WatchResponse> {
        let mut out = self.drain();
        while self.hub.unsynced_len() > 0 {
            self.hub.sync_unsynced(&self.model, 1000).unwrap();
            let more = self.drain();
            if more.is_empty() && self.hub.unsynced_len() > 0 {
                panic!("sync makes no progress");
            }
            out.extend(more);
        }
        out
    }
}

fn of(out: &[WatchResponse], id: WatcherId) -> Vec<Ev> {
    out.iter()
        .filter(|r| r.watcher == Some(id))
        .flat_map(evs)
        .collect()
}

#[test]
fn live_events_by_key_prefix_and_from_key() {
    let mut f = Fixture::new(16);
    let single = f.watch(KeyRange::single(b"a/1"), 0);
    let prefix = f.watch(KeyRange::prefix(b"a/"), 0);
    let from = f.watch(KeyRange::new(b"b", b"\0"), 0);
    let all = f.watch(KeyRange::new(b"\0", b"\0"), 0);
    let empty = f.watch(KeyRange::new(b"z", b"a"), 0);
    f.put("a/1");
    f.put("a/2");
    f.put("b");
    f.del("a/1");
    let out = f.drain();
    assert_eq!(of(&out, single), vec![put("a/1", 1), del("a/1", 4)]);
    assert_eq!(
        of(&out, prefix),
        vec![put("a/1", 1), put("a/2", 2), del("a/1", 4)]
    );
    assert_eq!(of(&out, from), vec![put("b", 3)]);
    assert_eq!(of(&out, all).len(), 4);
    assert!(of(&out, empty).is_empty());
    assert!(out.iter().all(|r| r.stream == 1 && !r.canceled));
}

#[test]
fn one_response_per_batch_and_revision_never_split() {
    let mut f = Fixture::new(16);
    let w = f.watch(KeyRange::prefix(b"k"), 0);
    f.txn(&[("k1", Some("x")), ("k2", Some("y")), ("j", Some("z"))]);
    let out = f.drain();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].revision, 1);
    assert_eq!(evs(&out[0]), vec![put("k1", 1), put("k2", 1)]);

    // Catch-up with sync_batch 2 and a 3-event revision: the revision
    // comes whole.
    f.txn(&[("k1", Some("x")), ("k2", Some("y")), ("k3", Some("z"))]);
    f.put("k4");
    let late = f.watch(KeyRange::prefix(b"k"), 1);
    let out = f.settle();
    let late_resps: Vec<_> = out.iter().filter(|r| r.watcher == Some(late)).collect();
    for r in &late_resps {
        let first = r.events[0].kv.mod_revision;
        let last = r.events[r.events.len() - 1].kv.mod_revision;
        for e in r.events.iter() {
            assert!(e.kv.mod_revision == first || e.kv.mod_revision == last);
        }
        assert!(r.revision >= last);
    }
    let got = of(&out, late);
    assert_eq!(got.len(), 6);
    assert_eq!(got.iter().filter(|e| e.2 == 2).count(), 3);
    assert!(of(&out, w).len() == 4);
}

#[test]
fn start_now_and_in_the_future() {
    let mut f = Fixture::new(16);
    f.put("a");
    let now = f.watch(KeyRange::single(b"a"), 0);
    let future = f.watch(KeyRange::single(b"a"), 4);
    assert_eq!(f.hub.is_synced(now), Some(true));
    assert_eq!(f.hub.is_synced(future), Some(true));
    f.put("a"); // 2
    f.put("a"); // 3
    f.txn(&[("b", Some("x"))]); // 4
    f.put("a"); // 5
    let out = f.drain();
    assert_eq!(of(&out, now), vec![put("a", 2), put("a", 3), put("a", 5)]);
    assert_eq!(of(&out, future), vec![put("a", 5)]);
}

#[test]
fn future_start_inside_a_multi_revision_batch() {
    let mut f = Fixture::new(16);
    let w = f.watch(KeyRange::prefix(b"k"), 2);
    let (_, mut events) = f.model.txn(&[("k1", Some("x"))]);
    let (rev, more) = f.model.txn(&[("k2", Some("y"))]);
    events.extend(more);
    f.hub.notify(rev, &events);
    assert_eq!(of(&f.drain(), w), vec![put("k2", 2)]);
}

#[test]
fn past_start_catches_up_then_joins_live_without_gap_or_duplicate() {
    let mut f = Fixture::new(16);
    for _ in 0..5 {
        f.put("a");
    }
    let w = f.watch(KeyRange::single(b"a"), 2);
    assert_eq!(f.hub.is_synced(w), Some(false));
    assert_eq!(f.hub.unsynced_len(), 1);
    // A history view taken now, used after more revisions were notified.
    let stale = Model {
        log: f.model.log.clone(),
        current: f.model.current,
        ..Model::default()
    };
    f.put("a"); // 6, notified while w is unsynced: must come from history
    f.hub.sync_unsynced(&stale, 1).unwrap(); // reads 2..=3 (batch 2)
    f.hub.sync_unsynced(&stale, 100).unwrap(); // 4..=5, still behind 6
    assert_eq!(f.hub.is_synced(w), Some(false));
    f.hub.sync_unsynced(&f.model, 100).unwrap(); // 6: synced
    assert_eq!(f.hub.is_synced(w), Some(true));
    f.put("a"); // 7, live
    let out = f.drain();
    let revs: Vec<i64> = of(&out, w).iter().map(|e| e.2).collect();
    assert_eq!(revs, vec![2, 3, 4, 5, 6, 7]);
}

#[test]
fn history_ahead_of_the_hub_is_not_read_past_the_hub() {
    let mut f = Fixture::new(16);
    f.put("a");
    f.put("a");
    let w = f.watch(KeyRange::single(b"a"), 1);
    // Revision 3 is committed (in the view) but not yet notified.
    let (rev, events) = f.model.txn(&[("a", Some("v"))]);
    f.hub.sync_unsynced(&f.model, 100).unwrap();
    assert_eq!(f.hub.is_synced(w), Some(true));
    f.hub.notify(rev, &events);
    let revs: Vec<i64> = of(&f.drain(), w).iter().map(|e| e.2).collect();
    assert_eq!(revs, vec![1, 2, 3]);
}

#[test]
fn compacted_start_is_canceled_equal_is_served() {
    let mut f = Fixture::new(16);
    for _ in 0..5 {
        f.put("a");
    }
    f.model.compacted = 4;
    let below = f.watch(KeyRange::single(b"a"), 3);
    let at = f.watch(KeyRange::single(b"a"), 4);
    let out = f.settle();
    let cancel: Vec<_> = out.iter().filter(|r| r.watcher == Some(below)).collect();
    assert_eq!(cancel.len(), 1);
    assert!(cancel[0].canceled);
    assert_eq!(cancel[0].compact_revision, 4);
    assert_eq!(cancel[0].revision, 0);
    assert!(cancel[0].events.is_empty() && !cancel[0].is_progress());
    assert_eq!(f.hub.is_synced(below), None);
    assert!(!f.hub.cancel(below));
    assert_eq!(of(&out, at), vec![put("a", 4), put("a", 5)]);
    assert_eq!(f.hub.len(), 1);
}

#[test]
fn compaction_overtakes_a_watcher_that_fell_behind() {
    let mut f = Fixture::new(1);
    let w = f.watch(KeyRange::single(b"a"), 0);
    f.put("a"); // 1: queued
    f.put("a"); // 2: no room, falls behind at 2
    f.put("a"); // 3
    assert_eq!(f.hub.is_synced(w), Some(false));
    f.model.compacted = 3;
    let out = f.settle();
    assert_eq!(of(&out, w), vec![put("a", 1)]);
    let last = out.last().unwrap();
    assert!(last.canceled && last.compact_revision == 3);
}

#[test]
fn slow_consumer_falls_behind_without_blocking_others() {
    let mut f = Fixture::new(2);
    let slow = f.hub.watch(2, WatchRequest::new(KeyRange::prefix(b"k")));
    let fast = f.watch(KeyRange::prefix(b"k"), 0);
    let mut fast_got = Vec::new();
    for i in 0..10 {
        f.put(&format!("k{i}"));
        let mut out = Vec::new();
        f.hub.drain_stream(1, usize::MAX, &mut out);
        fast_got.extend(of(&out, fast));
    }
    assert_eq!(fast_got.len(), 10);
    assert_eq!(f.hub.is_synced(fast), Some(true));
    assert_eq!(f.hub.is_synced(slow), Some(false));
    // Stream 2 holds its two responses of one event each.
    assert_eq!(f.hub.queued_events(), 2);
    // Full queue: sync cannot deliver yet.
    f.hub.sync_unsynced(&f.model, 100).unwrap();
    assert_eq!(f.hub.is_synced(slow), Some(false));
    // The consumer takes one response at a time; the hub catches up in
    // between.
    let mut slow_got = Vec::new();
    let settle = |f: &mut Fixture, got: &mut Vec<Ev>| {
        for _ in 0..100 {
            let mut out = Vec::new();
            f.hub.drain_stream(2, 1, &mut out);
            got.extend(of(&out, slow));
            f.hub.sync_unsynced(&f.model, 100).unwrap();
            if out.is_empty() && f.hub.unsynced_len() == 0 {
                return;
            }
        }
        panic!("no progress");
    };
    settle(&mut f, &mut slow_got);
    assert_eq!(f.hub.is_synced(slow), Some(true));
    f.put("k10");
    settle(&mut f, &mut slow_got);
    let revs: Vec<i64> = slow_got.iter().map(|e| e.2).collect();
    assert_eq!(revs, (1..=11).collect::<Vec<_>>());
}

#[test]
fn filters_and_prev_kv() {
    let mut f = Fixture::new(16);
    let mk = |no_put, no_delete, prev_kv| WatchRequest {
        no_put,
        no_delete,
        prev_kv,
        ..WatchRequest::new(KeyRange::single(b"a"))
    };
    let plain = f.hub.watch(1, mk(false, false, false));
    let no_put = f.hub.watch(1, mk(true, false, false));
    let no_del = f.hub.watch(1, mk(false, true, true));
    let neither = f.hub.watch(1, mk(true, true, false));
    assert!(f.hub.wants_prev_kv());
    f.put("a");
    f.put("a");
    f.del("a");
    let out = f.drain();
    assert_eq!(of(&out, plain).len(), 3);
    assert_eq!(of(&out, no_put), vec![del("a", 3)]);
    assert_eq!(of(&out, no_del), vec![put("a", 1), put("a", 2)]);
    assert!(of(&out, neither).is_empty());
    for r in &out {
        let want_prev = r.watcher == Some(no_del);
        for e in r.events.iter() {
            let has_prev = e.prev_kv.is_some();
            assert_eq!(has_prev, want_prev && e.kv.mod_revision == 2, "{r:?}");
        }
    }
    f.hub.cancel(no_del);
    assert!(!f.hub.wants_prev_kv());
}

#[test]
fn same_variant_watchers_share_one_allocation() {
    let mut f = Fixture::new(16);
    let a = f.watch(KeyRange::prefix(b"k"), 0);
    let b = f.watch(KeyRange::prefix(b"k"), 0);
    let c = f.watch(KeyRange::new(b"k", b"l"), 0); // same keys, other group
    f.put("k1");
    let out = f.drain();
    let find = |id| out.iter().find(|r| r.watcher == Some(id)).unwrap();
    assert!(Arc::ptr_eq(&find(a).events, &find(b).events));
    assert!(Arc::ptr_eq(&find(a).events, &find(c).events));
}

#[test]
fn progress_request_waits_for_every_watcher_to_sync() {
    let mut f = Fixture::new(16);
    f.put("a");
    f.put("a");
    let live = f.watch(KeyRange::single(b"a"), 0);
    f.hub.request_progress(1);
    let out = f.drain();
    assert_eq!(out.len(), 1);
    assert!(out[0].watcher.is_none() && out[0].is_progress() && out[0].revision == 2);

    let late = f.watch(KeyRange::single(b"a"), 1);
    f.put("a"); // 3: live gets it now, late from history later
    f.hub.request_progress(1);
    f.hub.request_progress(1); // coalesces
    let out = f.drain();
    assert_eq!(of(&out, live), vec![put("a", 3)]);
    assert!(out.iter().all(|r| !r.is_progress()));
    f.hub.sync_unsynced(&f.model, 100).unwrap();
    let out = f.drain();
    assert_eq!(of(&out, late).len(), 3);
    let progress: Vec<_> = out.iter().filter(|r| r.is_progress()).collect();
    assert_eq!(progress.len(), 1);
    assert_eq!(progress[0].revision, 3);
    // It comes after the events it vouches for.
    assert!(out.last().unwrap().is_progress());

    // No watchers: nothing, as etcd.
    f.hub.request_progress(9);
    assert!(f.drain().is_empty());
}

#[test]
fn progress_request_after_queued_events_keeps_order() {
    let mut f = Fixture::new(16);
    let w = f.watch(KeyRange::single(b"a"), 0);
    f.put("a");
    f.hub.request_progress(1);
    let out = f.drain();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].watcher, Some(w));
    assert!(out[1].is_progress() && out[1].revision == 1);
}

#[test]
fn periodic_progress_for_idle_synced_watchers() {
    let mut f = Fixture::new(16);
    let t0 = Instant::now();
    let req = |k: &[u8]| WatchRequest {
        progress_notify: true,
        ..WatchRequest::new(KeyRange::single(k))
    };
    let idle = f.hub.watch(1, req(b"a"));
    let busy = f.hub.watch(1, req(b"b"));
    let quiet = f.watch(KeyRange::single(b"c"), 0); // no progress_notify
    f.hub.tick(t0); // starts the clock
    f.put("b");
    f.drain();
    f.hub.tick(t0 + Duration::from_secs(5)); // not due
    assert!(f.drain().is_empty());
    f.hub.tick(t0 + Duration::from_secs(10));
    let out = f.drain();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].watcher, Some(idle));
    assert!(out[0].is_progress() && out[0].revision == 1);
    // Next sweep: busy was idle since the last one too.
    f.hub.tick(t0 + Duration::from_secs(20));
    let mut ids: Vec<_> = f.drain().iter().map(|r| r.watcher.unwrap()).collect();
    ids.sort();
    let mut want = vec![idle, busy];
    want.sort();
    assert_eq!(ids, want);
    assert!(!ids.contains(&quiet));

    // Unsynced watchers get no progress.
    let mut f = Fixture::new(16);
    f.put("a");
    let behind = f.hub.watch(
        1,
        WatchRequest {
            start_revision: 1,
            ..req(b"a")
        },
    );
    f.hub.tick(t0);
    f.hub.tick(t0 + Duration::from_secs(10));
    assert!(f.drain().is_empty());
    assert_eq!(f.hub.is_synced(behind), Some(false));
}

#[test]
fn cancel_drops_queued_responses_and_ids_are_not_reused() {
    let mut f = Fixture::new(16);
    let w = f.watch(KeyRange::single(b"a"), 0);
    f.put("a");
    assert!(f.hub.cancel(w));
    assert!(!f.hub.cancel(w));
    assert_eq!(f.hub.queued_events(), 1); // until drained, then dropped
    assert!(f.drain().is_empty());
    assert_eq!(f.hub.queued_events(), 0);
    assert!(f.hub.is_empty());
    let w2 = f.watch(KeyRange::single(b"a"), 0);
    assert_ne!(w, w2); // same slot, new generation
    assert_eq!(f.hub.is_synced(w), None);
    f.put("a");
    assert_eq!(of(&f.drain(), w2), vec![put("a", 2)]);
}

#[test]
fn cancel_unsynced_and_close_stream() {
    let mut f = Fixture::new(16);
    f.put("a");
    let behind = f.watch(KeyRange::single(b"a"), 1);
    let other = f.hub.watch(2, WatchRequest::new(KeyRange::prefix(b"a")));
    let live = f.watch(KeyRange::prefix(b"a"), 0);
    f.hub.request_progress(1); // deferred: behind is unsynced
    assert!(f.drain().is_empty());
    assert!(f.hub.cancel(behind)); // now every watcher of stream 1 is synced
    let out = f.drain();
    assert_eq!(out.len(), 1);
    assert!(out[0].is_progress() && out[0].stream == 1);
    assert_eq!(f.hub.unsynced_len(), 0);

    f.put("a/x");
    assert_eq!(f.hub.queued_events(), 2); // one per stream
    f.hub.close_stream(1);
    assert_eq!(f.hub.queued_events(), 1); // stream 1's dropped
    assert_eq!(f.hub.is_synced(live), None);
    let out = f.drain();
    assert_eq!(f.hub.queued_events(), 0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].watcher, Some(other));
    assert_eq!(f.hub.len(), 1);
    assert_eq!(f.hub.groups(), 1);
}

#[test]
fn drain_stream_respects_max_and_order() {
    let mut f = Fixture::new(16);
    let w = f.watch(KeyRange::single(b"a"), 0);
    for _ in 0..5 {
        f.put("a");
    }
    assert_eq!(f.hub.ready_streams().collect::<Vec<_>>(), vec![1]);
    let mut out = Vec::new();
    assert_eq!(f.hub.drain_stream(1, 2, &mut out), 2);
    assert_eq!(f.hub.drain_stream(1, 10, &mut out), 3);
    assert_eq!(f.hub.drain_stream(1, 10, &mut out), 0);
    assert_eq!(f.hub.ready_streams().count(), 0);
    let revs: Vec<i64> = of(&out, w).iter().map(|e| e.2).collect();
    assert_eq!(revs, vec![1, 2, 3, 4, 5]);
}

#[test]
fn many_groups_overlapping_ranges() {
    let mut f = Fixture::new(16);
    let keys: Vec<String> = (0..50).map(|i| format!("k{i:02}")).collect();
    let mut ws = Vec::new();
    for i in 0..50 {
        for j in [i, (i + 7).min(49)] {
            let r = KeyRange::new(keys[i].as_bytes(), format!("{}~", keys[j]).as_bytes());
            ws.push((f.watch(r.clone(), 0), r));
        }
    }
    for k in &keys {
        f.put(k);
    }
    let out = f.drain();
    for (id, r) in ws {
        let want: Vec<Ev> = keys
            .iter()
            .enumerate()
            .filter(|(_, k)| r.contains(k.as_bytes()))
            .map(|(i, k)| put(k, i as i64 + 1))
            .collect();
        assert_eq!(of(&out, id), want);
    }
}

#[test]
fn history_errors_other_than_compacted_leave_the_watcher_to_retry() {
    struct Broken;
    impl History for Broken {
        fn current_revision(&self) -> i64 {
            5
        }
        fn compacted_revision(&self) -> i64 {
            0
        }
        fn events(&self, _: &KeyRange, _: i64, _: i64, _: bool, _: usize) -> Result<Vec<Event>> {
            Err(Error::KeyNotFound)
        }
    }
    let mut f = Fixture::new(16);
    f.put("a");
    let w = f.watch(KeyRange::single(b"a"), 1);
    assert_eq!(f.hub.sync_unsynced(&Broken, 10), Err(Error::KeyNotFound));
    assert_eq!(f.hub.is_synced(w), Some(false));
    f.hub.sync_unsynced(&f.model, 10).unwrap();
    assert_eq!(of(&f.drain(), w), vec![put("a", 1)]);
}

#[test]
fn compaction_cancel_follows_what_was_already_queued() {
    let mut f = Fixture::new(1);
    let w = f.watch(KeyRange::single(b"a"), 0);
    f.put("a"); // 1: queued
    f.put("a"); // 2: no room, falls behind
    f.model.compacted = 3;
    f.put("a"); // 3
    f.hub.sync_unsynced(&f.model, 10).unwrap();
    assert_eq!(f.hub.is_synced(w), None); // gone for the client API
    let out = f.drain();
    assert_eq!(out.len(), 2);
    assert_eq!(evs(&out[0]), vec![put("a", 1)]);
    assert!(out[1].canceled && out[1].compact_revision == 3);
    // The slot is free again once the cancel went out.
    let w2 = f.watch(KeyRange::single(b"a"), 0);
    assert_eq!(w2.slot(), w.slot());
    assert_ne!(w2, w);
}
