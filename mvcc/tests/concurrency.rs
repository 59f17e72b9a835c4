//! Readers on other threads scan snapshots while the writer applies
//! batches. The writer keeps an invariant per revision (the values of keys
//! k000..k099 sum to 0: each txn moves an amount from one key to another),
//! so a reader that saw a torn state would find a non-zero sum.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ferrocd_mvcc::{PutRequest, RangeRequest, RequestOp, Store, TxnRequest};

const KEYS: usize = 100;

fn key(i: usize) -> String {
    format!("k{i:03}")
}

#[test]
fn readers_see_whole_revisions() {
    let store = Arc::new(Store::default());
    let mut b = store.write();
    for i in 0..KEYS {
        b.put(&PutRequest::new(key(i), "0")).unwrap();
    }
    b.commit();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut scans = 0u64;
                let mut last_rev = 0;
                while !stop.load(Ordering::Relaxed) {
                    let view = store.snapshot();
                    assert!(view.revision() >= last_rev, "revisions never go back");
                    last_rev = view.revision();
                    let r = view.range(&RangeRequest::new("k", "l")).unwrap();
                    assert_eq!(r.kvs.len(), KEYS);
                    let sum: i64 = r
                        .kvs
                        .iter()
                        .map(|kv| {
                            std::str::from_utf8(kv.value())
                                .unwrap()
                                .parse::<i64>()
                                .unwrap()
                        })
                        .sum();
                    assert_eq!(sum, 0, "torn read at revision {}", view.revision());
                    scans += 1;
                }
                scans
            })
        })
        .collect();
    let mut vals = [0i64; KEYS];
    for round in 0..300usize {
        let mut b = store.write();
        // Several txns per batch: intermediate states are never published.
        for j in 0..4 {
            let (from, to) = ((round * 7 + j) % KEYS, (round * 13 + j * 3 + 1) % KEYS);
            if from == to {
                continue;
            }
            let amt = (round % 9 + 1) as i64;
            vals[from] -= amt;
            vals[to] += amt;
            let t = TxnRequest {
                success: vec![
                    RequestOp::Put(PutRequest::new(key(from), vals[from].to_string())),
                    RequestOp::Put(PutRequest::new(key(to), vals[to].to_string())),
                ],
                ..Default::default()
            };
            b.txn(&t).unwrap();
        }
        b.commit();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
}
