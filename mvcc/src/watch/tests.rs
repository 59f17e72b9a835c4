//! One test per hub rule, driven by the real store.

use std::time::{Duration, Instant};

use super::*;
use crate::{DeleteRangeRequest, PutRequest, Store};

/// (kind, key, mod_revision) of one event.
type Ev = (EventKind, String, i64);
/// The watcher and events of one response.
type Resp = (Option<WatcherId>, Vec<Ev>);

struct Fixture {
    store: Store,
    hub: Hub,
}

impl Fixture {
    fn new(max_pending: usize) -> Self {
        let store = Store::default();
        let hub = Hub::new(
            Config {
                max_pending,
                sync_batch: 4,
                progress_interval: Duration::from_secs(10),
            },
            store.revision(),
        );
        Self { store, hub }
    }

    fn put(&mut self, k: &str, v: &str) -> i64 {
        let mut b = self.store.write();
        let a = b.put(&PutRequest::new(k, v)).unwrap();
        b.commit();
        self.hub.notify(a.response.revision, &a.events);
        a.response.revision
    }

    fn del(&mut self, k: &str) -> i64 {
        let mut b = self.store.write();
        let a = b.delete_range(&DeleteRangeRequest::new(k, "")).unwrap();
        let rev = b.revision();
        b.commit();
        self.hub.notify(rev, &a.events);
        rev
    }

    fn watch(&mut self, range: KeyRange, start: i64) -> WatcherId {
        self.hub
            .watch(WatchRequest {
                stream: 1,
                range,
                start_revision: start,
                prev_kv: false,
                no_put: false,
                no_delete: false,
                progress_notify: false,
            })
            .unwrap()
    }

    fn sync(&mut self) {
        let view = self.store.snapshot();
        while self.hub.sync_unsynced(&view, 1000) > 0 {
            // Only a full queue stops progress; tests drain before syncing.
            if self
                .hub
                .watchers
                .values()
                .all(|w| w.synced || w.queue.len() >= self.hub.config.max_pending)
            {
                break;
            }
        }
    }

    /// (watcher, [(kind, key, mod_revision)]) per response.
    fn drain(&mut self) -> Vec<Resp> {
        self.hub
            .drain(Instant::now())
            .into_iter()
            .map(|r| {
                let evs = r
                    .events
                    .iter()
                    .map(|e| {
                        (
                            e.kind,
                            String::from_utf8(e.kv.key.clone()).unwrap(),
                            e.kv.mod_revision,
                        )
                    })
                    .collect();
                (r.watcher, evs)
            })
            .collect()
    }
}

fn revs(out: &[Resp]) -> Vec<i64> {
    out.iter()
        .flat_map(|(_, e)| e.iter().map(|x| x.2))
        .collect()
}

#[test]
fn live_events_for_key_prefix_and_from_key() {
    let mut f = Fixture::new(16);
    let k = f.watch(KeyRange::single(b"a"), 0);
    let p = f.watch(KeyRange::prefix(b"a/"), 0);
    let all = f.watch(KeyRange::new(b"\0", b"\0"), 0);
    f.put("a", "1");
    f.put("a/x", "2");
    f.put("b", "3");
    f.del("a");
    let out = f.drain();
    let of = |id| -> Vec<i64> {
        out.iter()
            .filter(|(w, _)| *w == Some(id))
            .flat_map(|(_, e)| e.iter().map(|x| x.2))
            .collect()
    };
    assert_eq!(of(k), vec![2, 5]);
    assert_eq!(of(p), vec![3]);
    assert_eq!(of(all), vec![2, 3, 4, 5]);
    assert!(
        out.iter()
            .any(|(w, e)| *w == Some(k) && e[0].0 == EventKind::Delete)
    );
}

#[test]
fn past_start_catches_up_then_goes_live_without_gap_or_duplicate() {
    let mut f = Fixture::new(16);
    for i in 0..10 {
        f.put("k", &i.to_string());
    }
    let w = f.watch(KeyRange::single(b"k"), 3);
    assert_eq!(f.hub.unsynced_len(), 1);
    f.sync();
    assert_eq!(f.hub.unsynced_len(), 0);
    f.put("k", "x");
    let got = revs(&f.drain());
    assert_eq!(got, (3..=12).collect::<Vec<_>>());
    assert!(f.hub.cancel(w));
    assert!(!f.hub.cancel(w));
}

#[test]
fn history_view_ahead_of_the_hub_does_not_duplicate() {
    let mut f = Fixture::new(16);
    f.put("k", "1");
    let w = f.watch(KeyRange::single(b"k"), 2);
    // Committed but not yet notified: the hub must not read it from history.
    let mut b = f.store.write();
    let a = b.put(&PutRequest::new("k", "2")).unwrap();
    b.commit();
    f.sync();
    f.hub.notify(a.response.revision, &a.events);
    f.sync();
    let out = f.drain();
    assert!(out.iter().all(|(id, _)| *id == Some(w)));
    assert_eq!(revs(&out), vec![2, 3]);
}

#[test]
fn compacted_start_is_canceled_with_the_compact_revision() {
    let mut f = Fixture::new(16);
    for i in 0..5 {
        f.put("k", &i.to_string());
    }
    let mut b = f.store.write();
    b.compact(4).unwrap();
    b.commit();
    let w = f.watch(KeyRange::single(b"k"), 2);
    let ok = f.watch(KeyRange::single(b"k"), 4);
    f.sync();
    let out = f.hub.drain(Instant::now());
    let canceled: Vec<_> = out.iter().filter(|r| r.canceled).collect();
    assert_eq!(canceled.len(), 1);
    assert_eq!(canceled[0].watcher, Some(w));
    assert_eq!(canceled[0].compact_revision, 4);
    assert!(
        out.iter()
            .any(|r| r.watcher == Some(ok) && r.events[0].kv.mod_revision == 4)
    );
    assert_eq!(f.hub.len(), 1, "the canceled watcher is gone once drained");
}

#[test]
fn filters_and_prev_kv() {
    let mut f = Fixture::new(16);
    let no_put = f
        .hub
        .watch(WatchRequest {
            stream: 1,
            range: KeyRange::single(b"k"),
            start_revision: 0,
            prev_kv: true,
            no_put: true,
            no_delete: false,
            progress_notify: false,
        })
        .unwrap();
    let plain = f.watch(KeyRange::single(b"k"), 0);
    f.put("k", "1");
    f.del("k");
    let out = f.hub.drain(Instant::now());
    let np: Vec<_> = out.iter().filter(|r| r.watcher == Some(no_put)).collect();
    assert_eq!(np.len(), 1);
    assert_eq!(np[0].events[0].kind, EventKind::Delete);
    assert_eq!(np[0].events[0].prev_kv.as_ref().unwrap().value, b"1");
    let pl: Vec<_> = out.iter().filter(|r| r.watcher == Some(plain)).collect();
    assert_eq!(pl.len(), 2);
    assert!(pl.iter().all(|r| r.events[0].prev_kv.is_none()));
}

#[test]
fn slow_consumer_falls_behind_and_catches_up() {
    let mut f = Fixture::new(2);
    let w = f.watch(KeyRange::prefix(b"p/"), 0);
    for i in 0..20 {
        f.put(&format!("p/{i}"), "v");
    }
    assert_eq!(f.hub.unsynced_len(), 1, "a full queue never blocks notify");
    let mut got = Vec::new();
    let settle = |f: &mut Fixture, got: &mut Vec<i64>| {
        for _ in 0..100 {
            got.extend(revs(&f.drain()));
            f.sync();
            if f.hub.unsynced_len() == 0 {
                got.extend(revs(&f.drain()));
                return;
            }
        }
        panic!("never caught up");
    };
    settle(&mut f, &mut got);
    f.put("p/last", "v");
    settle(&mut f, &mut got);
    assert_eq!(got, (2..=22).collect::<Vec<_>>());
    assert!(f.hub.cancel(w));
}

#[test]
fn future_start_skips_earlier_events() {
    let mut f = Fixture::new(16);
    f.watch(KeyRange::single(b"k"), 4);
    f.put("k", "1"); // rev 2
    f.put("k", "2"); // rev 3
    f.put("k", "3"); // rev 4
    assert_eq!(revs(&f.drain()), vec![4]);
}

#[test]
fn progress_only_when_the_stream_is_synced() {
    let mut f = Fixture::new(16);
    for i in 0..3 {
        f.put("k", &i.to_string());
    }
    f.watch(KeyRange::single(b"k"), 2);
    assert!(!f.hub.request_progress(1), "unsynced watcher: no progress");
    f.sync();
    assert!(!f.hub.request_progress(1), "queued events: no progress yet");
    f.drain();
    assert!(f.hub.request_progress(1));
    let out = f.hub.drain(Instant::now());
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].watcher, out[0].revision), (None, 4));
    assert!(
        f.hub.request_progress(2),
        "a stream with no watchers is synced"
    );
}

#[test]
fn periodic_progress_for_idle_watchers() {
    let mut f = Fixture::new(16);
    let id = f
        .hub
        .watch(WatchRequest {
            stream: 7,
            range: KeyRange::single(b"k"),
            start_revision: 0,
            prev_kv: false,
            no_put: false,
            no_delete: false,
            progress_notify: true,
        })
        .unwrap();
    f.watch(KeyRange::single(b"quiet"), 0);
    let t0 = Instant::now();
    f.hub.tick(t0);
    assert!(f.hub.drain(t0).is_empty());
    f.hub.tick(t0 + Duration::from_secs(5));
    assert!(f.hub.drain(t0).is_empty());
    f.hub.tick(t0 + Duration::from_secs(11));
    let out = f.hub.drain(t0 + Duration::from_secs(11));
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].watcher, out[0].stream, out[0].events.len()),
        (Some(id), 7, 0)
    );
}

#[test]
fn cancel_stream_and_drain_stream() {
    let mut f = Fixture::new(16);
    let a = f.watch(KeyRange::single(b"k"), 0);
    let b = f
        .hub
        .watch(WatchRequest {
            stream: 2,
            range: KeyRange::single(b"k"),
            start_revision: 0,
            prev_kv: false,
            no_put: false,
            no_delete: false,
            progress_notify: false,
        })
        .unwrap();
    f.put("k", "1");
    f.put("k", "2");
    let s2 = f.hub.drain_stream(2, 1, Instant::now());
    assert_eq!(s2.len(), 1);
    assert_eq!(s2[0].watcher, Some(b));
    f.hub.cancel_stream(2);
    let rest = f.hub.drain(Instant::now());
    assert!(rest.iter().all(|r| r.watcher == Some(a)));
    assert_eq!(rest.len(), 2);
    assert_eq!(f.hub.len(), 1);
}

#[test]
fn empty_key_is_rejected() {
    let mut f = Fixture::new(16);
    let e = f.hub.watch(WatchRequest {
        stream: 1,
        range: KeyRange::single(b""),
        start_revision: 0,
        prev_kv: false,
        no_put: false,
        no_delete: false,
        progress_notify: false,
    });
    assert_eq!(e.unwrap_err(), Error::EmptyKey);
}

#[test]
fn compaction_while_behind_cancels_with_the_compact_revision() {
    let mut f = Fixture::new(1);
    let w = f.watch(KeyRange::single(b"k"), 0);
    for i in 0..6 {
        f.put("k", &i.to_string()); // revs 2..=7; the queue holds rev 2 only
    }
    assert_eq!(f.hub.unsynced_len(), 1);
    let mut b = f.store.write();
    b.compact(6).unwrap();
    b.commit();
    let first = f.hub.drain(Instant::now());
    assert_eq!(first.len(), 1);
    f.sync();
    let out = f.hub.drain(Instant::now());
    assert_eq!(out.len(), 1);
    assert!(out[0].canceled);
    assert_eq!((out[0].watcher, out[0].compact_revision), (Some(w), 6));
    assert!(f.hub.is_empty());
}
