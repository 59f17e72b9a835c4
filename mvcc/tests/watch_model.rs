//! The watch hub against a plain model: random writes through the real
//! store, watchers starting at random past or future revisions on random
//! ranges with random filters, consumers that drain at random times with
//! tiny queues (so watchers keep falling behind and catching up), and
//! random compactions. Every watcher's stream must equal the model's
//! history for its range from its start revision: no gap, no duplicate, no
//! reordering; a start below the compacted revision gets the compacted
//! cancel.

use std::collections::HashMap;
use std::time::Instant;

use ferrocd_mvcc::{
    DeleteRangeRequest, Event, EventKind, Hub, KeyRange, PutRequest, Store, WatchConfig,
    WatchRequest, WatcherId,
};
use proptest::prelude::*;

const KEYS: &[&str] = &["a", "a/1", "a/2", "b", "b/1", "c"];

#[derive(Debug, Clone)]
enum Op {
    Put(usize, u8),
    Delete(usize),
    DeletePrefix(usize),
    /// range kind, start offset back from current+1 (may reach below the
    /// compacted revision), filters, prev_kv
    Watch(u8, usize, i64, u8, bool),
    Drain,
    Sync(usize),
    Compact(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..KEYS.len(), any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        1 => (0..KEYS.len()).prop_map(Op::Delete),
        1 => (0..KEYS.len()).prop_map(Op::DeletePrefix),
        2 => (0..3u8, 0..KEYS.len(), 0..12i64, 0..3u8, any::<bool>())
            .prop_map(|(r, k, back, filt, pk)| Op::Watch(r, k, back, filt, pk)),
        2 => Just(Op::Drain),
        2 => (1..20usize).prop_map(Op::Sync),
        1 => (0..8i64).prop_map(Op::Compact),
    ]
}

struct Watched {
    req: WatchRequest,
    start: i64,
    got: Vec<Event>,
    canceled: Option<i64>,
    /// The compacted revision when the watcher was created.
    compacted_at_create: i64,
}

fn range_for(kind: u8, k: usize) -> KeyRange {
    match kind {
        0 => KeyRange::single(KEYS[k].as_bytes()),
        1 => KeyRange::prefix(KEYS[k].as_bytes()),
        _ => KeyRange::new(KEYS[k].as_bytes(), b"\0"),
    }
}

fn run(ops: Vec<Op>) {
    let store = Store::default();
    let mut hub = Hub::new(
        WatchConfig {
            max_pending: 2,
            sync_batch: 3,
            ..WatchConfig::default()
        },
        store.revision(),
    );
    let mut log: Vec<Event> = Vec::new();
    let mut watched: HashMap<WatcherId, Watched> = HashMap::new();

    let collect = |hub: &mut Hub, watched: &mut HashMap<WatcherId, Watched>| {
        for r in hub.drain(Instant::now()) {
            let w = watched
                .get_mut(&r.watcher.expect("no stream progress asked"))
                .unwrap();
            assert!(w.canceled.is_none(), "response after cancel");
            if r.canceled {
                w.canceled = Some(r.compact_revision);
            }
            assert!(r.canceled || !r.events.is_empty(), "empty event response");
            w.got.extend(r.events.iter().cloned());
        }
    };

    for op in ops {
        match op {
            Op::Put(k, v) => {
                let mut b = store.write();
                let a = b.put(&PutRequest::new(KEYS[k], vec![v])).unwrap();
                b.commit();
                log.extend(a.events.iter().cloned());
                hub.notify(a.response.revision, &a.events);
            }
            Op::Delete(k) | Op::DeletePrefix(k) => {
                let end = if matches!(op, Op::Delete(_)) {
                    Vec::new()
                } else {
                    ferrocd_mvcc::prefix_end(KEYS[k].as_bytes())
                };
                let mut b = store.write();
                let a = b
                    .delete_range(&DeleteRangeRequest::new(KEYS[k], end))
                    .unwrap();
                let rev = b.revision();
                b.commit();
                log.extend(a.events.iter().cloned());
                hub.notify(rev, &a.events);
            }
            Op::Watch(kind, k, back, filt, prev_kv) => {
                let start = (store.revision() + 1 - back).max(1);
                let req = WatchRequest {
                    stream: 1,
                    range: range_for(kind, k),
                    start_revision: start,
                    prev_kv,
                    no_put: filt == 1,
                    no_delete: filt == 2,
                    progress_notify: false,
                };
                let id = hub.watch(req.clone()).unwrap();
                let compacted_at_create = store.snapshot().compact_revision();
                watched.insert(
                    id,
                    Watched {
                        req,
                        start,
                        got: Vec::new(),
                        canceled: None,
                        compacted_at_create,
                    },
                );
            }
            Op::Drain => collect(&mut hub, &mut watched),
            Op::Sync(n) => {
                hub.sync_unsynced(&store.snapshot(), n);
            }
            Op::Compact(back) => {
                // Compact only below what every live watcher may still need
                // (a watcher created below the bound gets the cancel
                // instead). Compacting into a lagging watcher's range drops
                // tombstones at the bound, as etcd does; unit tests cover
                // the cancel for that case.
                let floor = watched
                    .values()
                    .filter(|w| w.canceled.is_none() && w.start >= w.compacted_at_create)
                    .map(|w| w.got.last().map_or(w.start, |e| e.kv.mod_revision + 1))
                    .min()
                    .unwrap_or(i64::MAX);
                let target = (store.revision() - back).min(floor - 1);
                let mut b = store.write();
                if b.compact(target).is_ok() {
                    b.commit();
                }
            }
        }
    }
    // Let everyone catch up.
    for _ in 0..10_000 {
        collect(&mut hub, &mut watched);
        if hub.sync_unsynced(&store.snapshot(), 50) == 0 {
            collect(&mut hub, &mut watched);
            if hub.sync_unsynced(&store.snapshot(), 50) == 0 && hub.drain(Instant::now()).is_empty()
            {
                break;
            }
        }
    }
    assert_eq!(hub.unsynced_len(), 0);
    let compacted = store.snapshot().compact_revision();

    for (id, w) in &watched {
        let expected: Vec<&Event> = log
            .iter()
            .filter(|e| {
                e.kv.mod_revision >= w.start
                    && w.req.range.contains(&e.kv.key)
                    && !(w.req.no_put && e.kind == EventKind::Put)
                    && !(w.req.no_delete && e.kind == EventKind::Delete)
            })
            .collect();
        if w.start < w.compacted_at_create {
            assert!(
                w.canceled.is_some(),
                "watcher {id} started below the compacted revision"
            );
            assert!(w.got.is_empty());
            continue;
        }
        assert!(
            w.canceled.is_none(),
            "watcher {id} canceled: {:?}",
            w.canceled
        );
        let got: Vec<(EventKind, &[u8], i64, &[u8])> = w
            .got
            .iter()
            .map(|e| {
                (
                    e.kind,
                    e.kv.key.as_slice(),
                    e.kv.mod_revision,
                    e.kv.value.as_slice(),
                )
            })
            .collect();
        let want: Vec<(EventKind, &[u8], i64, &[u8])> = expected
            .iter()
            .map(|e| {
                (
                    e.kind,
                    e.kv.key.as_slice(),
                    e.kv.mod_revision,
                    e.kv.value.as_slice(),
                )
            })
            .collect();
        assert_eq!(
            got, want,
            "watcher {id} from {} on {:?}",
            w.start, w.req.range
        );
        for (g, e) in w.got.iter().zip(&expected) {
            if w.req.prev_kv {
                // Replayed from history, an event at the compacted revision
                // has no prev_kv: the revision before it is compacted (etcd
                // refuses that read too).
                let lost = g.prev_kv.is_none() && g.kv.mod_revision <= compacted;
                if !lost {
                    assert_eq!(g.prev_kv, e.prev_kv, "prev_kv of {:?}", g.kv);
                }
            } else {
                assert!(g.prev_kv.is_none());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    #[test]
    fn hub_matches_model(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops);
    }
}
