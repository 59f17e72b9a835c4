//! The hub driven by the real store: `ReadView` as [`History`] (its
//! whole-revision adapter over the store's event-count cut), live events
//! from `WriteBatch` results, catch-up across a multi-key transaction with
//! a tiny batch, and a compacted start.

use ferrocd_mvcc::{
    DeleteRangeRequest, Event, History, Hub, KeyRange, PutRequest, RequestOp, Store, TxnRequest,
    WatchConfig, WatchRequest, WatchResponse,
};

fn put(store: &Store, hub: &mut Hub, k: &str) {
    let mut b = store.write();
    let a = b.put(&PutRequest::new(k, "v")).unwrap();
    b.commit();
    hub.notify(a.response.revision, &a.events);
}

fn revs(out: &[WatchResponse]) -> Vec<(String, i64)> {
    out.iter()
        .flat_map(|r| r.events.iter())
        .map(|e: &Event| {
            (
                String::from_utf8(e.kv.key.clone()).unwrap(),
                e.kv.mod_revision,
            )
        })
        .collect()
}

#[test]
fn read_view_history_keeps_revisions_whole() {
    let store = Store::default();
    let mut hub = Hub::new(
        WatchConfig {
            sync_batch: 2,
            ..WatchConfig::default()
        },
        store.revision(),
    );
    put(&store, &mut hub, "k0");
    let first = store.revision();
    {
        let mut b = store.write();
        let ops = ["k1", "k2", "k3"]
            .iter()
            .map(|k| RequestOp::Put(PutRequest::new(*k, "x")))
            .collect();
        let a = b
            .txn(&TxnRequest {
                success: ops,
                ..TxnRequest::default()
            })
            .unwrap();
        let rev = b.revision();
        b.commit();
        hub.notify(rev, &a.events);
    }
    {
        let mut b = store.write();
        let a = b.delete_range(&DeleteRangeRequest::new("k1", "")).unwrap();
        let rev = b.revision();
        b.commit();
        hub.notify(rev, &a.events);
    }

    // The adapter: a limit of 2 inside a 3-event revision returns it whole.
    // (Through the trait: `ReadView`'s inherent `events` has the same name
    // and cuts at the limit.)
    let view = store.snapshot();
    let evs = History::events(
        &view,
        &KeyRange::prefix(b"k"),
        first + 1,
        view.revision(),
        false,
        2,
    )
    .unwrap();
    assert_eq!(evs.len(), 3);
    assert!(evs.iter().all(|e| e.kv.mod_revision == first + 1));

    let w = hub.watch(
        7,
        WatchRequest {
            start_revision: first,
            prev_kv: true,
            ..WatchRequest::new(KeyRange::prefix(b"k"))
        },
    );
    let mut out = Vec::new();
    while hub.unsynced_len() > 0 {
        hub.sync_unsynced(&store.snapshot(), 2).unwrap();
        hub.drain(&mut out);
    }
    put(&store, &mut hub, "k4");
    hub.drain(&mut out);
    assert!(out.iter().all(|r| r.watcher == Some(w) && r.stream == 7));
    assert_eq!(
        revs(&out),
        vec![
            ("k0".into(), first),
            ("k1".into(), first + 1),
            ("k2".into(), first + 1),
            ("k3".into(), first + 1),
            ("k1".into(), first + 2),
            ("k4".into(), first + 3),
        ]
    );
    // The delete carries the value it removed.
    let del = out
        .iter()
        .flat_map(|r| r.events.iter())
        .find(|e| e.kv.mod_revision == first + 2)
        .unwrap();
    assert_eq!(del.prev_kv.as_ref().unwrap().value, b"x");
}

#[test]
fn compacted_start_through_the_store() {
    let store = Store::default();
    let mut hub = Hub::new(WatchConfig::default(), store.revision());
    for _ in 0..5 {
        put(&store, &mut hub, "a");
    }
    let at = store.revision() - 1;
    {
        let mut b = store.write();
        b.compact(at).unwrap();
        b.commit();
    }
    store.finish_compaction();
    let below = hub.watch(
        1,
        WatchRequest {
            start_revision: at - 1,
            ..WatchRequest::new(KeyRange::single(b"a"))
        },
    );
    let equal = hub.watch(
        1,
        WatchRequest {
            start_revision: at,
            ..WatchRequest::new(KeyRange::single(b"a"))
        },
    );
    hub.sync_unsynced(&store.snapshot(), 100).unwrap();
    let mut out = Vec::new();
    hub.drain(&mut out);
    let cancel = out.iter().find(|r| r.watcher == Some(below)).unwrap();
    assert!(cancel.canceled);
    assert_eq!(cancel.compact_revision, at);
    let served: Vec<i64> = out
        .iter()
        .filter(|r| r.watcher == Some(equal))
        .flat_map(|r| r.events.iter().map(|e| e.kv.mod_revision))
        .collect();
    assert_eq!(served, vec![at, at + 1]);
}
