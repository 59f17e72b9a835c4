//! Property test: random sequences of puts, deletes, txns (nested), lease
//! grant/revoke, compactions, batch commits, range reads with every option,
//! history reads, hashes and snapshot save/reload, run against the store and
//! against the plain model in `model/`; every response and event must match.

mod model;

use ferrocd_mvcc::{
    Compare, CompareResult, CompareTarget, Config, DeleteRangeRequest, KeyRange, PutRequest,
    RangeRequest, RequestOp, SortOrder, SortTarget, Store, TxnRequest, prefix_end,
};
use model::Model;
use proptest::prelude::*;

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop::sample::select(vec![b'a', b'b', b'c', 0u8, 0xff]),
        1..3,
    )
}

fn range_end(k: Vec<u8>) -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let pe = prefix_end(&k);
    prop_oneof![
        3 => Just((k.clone(), vec![])),
        1 => Just((k.clone(), vec![0])),
        1 => Just((k.clone(), pe)),
        1 => key().prop_map(move |e| (k.clone(), e)),
        1 => Just((vec![0], vec![0])),
    ]
}

fn key_range() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    key().prop_flat_map(range_end)
}

fn put() -> impl Strategy<Value = PutRequest> {
    (
        key(),
        prop::collection::vec(0u8..4, 0..3),
        prop::sample::select(vec![0i64, 0, 1, 2, 99]),
        any::<bool>(),
        0u8..8,
    )
        .prop_map(|(key, value, lease, prev_kv, flags)| {
            let ignore_value = flags == 1 || flags == 3;
            let ignore_lease = flags == 2 || flags == 3;
            PutRequest {
                key,
                value: if ignore_value && flags != 3 {
                    vec![]
                } else {
                    value
                },
                lease: if ignore_lease && flags != 3 { 0 } else { lease },
                prev_kv,
                ignore_value,
                ignore_lease,
            }
        })
}

fn delete() -> impl Strategy<Value = DeleteRangeRequest> {
    (key_range(), any::<bool>()).prop_map(|((key, range_end), prev_kv)| DeleteRangeRequest {
        key,
        range_end,
        prev_kv,
    })
}

fn range_req() -> impl Strategy<Value = RangeRequest> {
    (
        key_range(),
        prop::sample::select(vec![0i64, 0, 1, 2, 3]),
        prop::sample::select(vec![
            SortOrder::None,
            SortOrder::None,
            SortOrder::Ascend,
            SortOrder::Descend,
        ]),
        prop::sample::select(vec![
            SortTarget::Key,
            SortTarget::Key,
            SortTarget::Version,
            SortTarget::Create,
            SortTarget::Mod,
            SortTarget::Value,
        ]),
        (any::<bool>(), 0u8..6),
        (0u8..6, 0i64..6, 0i64..12),
    )
        .prop_map(
            |(
                (key, range_end),
                limit,
                sort_order,
                sort_target,
                (keys_only, count_only),
                (filter, fa, fb),
            )| {
                let mut r = RangeRequest {
                    key,
                    range_end,
                    limit,
                    sort_order,
                    sort_target,
                    keys_only,
                    count_only: count_only == 0,
                    ..Default::default()
                };
                match filter {
                    0 => r.min_mod_revision = fb,
                    1 => r.max_mod_revision = fb,
                    2 => r.min_create_revision = fb,
                    3 => r.max_create_revision = fa + fb,
                    _ => {}
                }
                r
            },
        )
}

fn compare() -> impl Strategy<Value = Compare> {
    (
        key_range(),
        prop::sample::select(vec![
            CompareResult::Equal,
            CompareResult::NotEqual,
            CompareResult::Greater,
            CompareResult::Less,
        ]),
        0u8..5,
        0i64..6,
        prop::collection::vec(0u8..4, 0..3),
    )
        .prop_map(|((key, range_end), result, t, n, v)| {
            let target = match t {
                0 => CompareTarget::Version(n),
                1 => CompareTarget::Create(n * 2),
                2 => CompareTarget::Mod(n * 2),
                3 => CompareTarget::Value(v),
                _ => CompareTarget::Lease(n % 3),
            };
            Compare {
                result,
                target,
                key,
                range_end,
            }
        })
}

fn leaf_op() -> impl Strategy<Value = RequestOp> {
    prop_oneof![
        3 => put().prop_map(RequestOp::Put),
        2 => delete().prop_map(RequestOp::DeleteRange),
        2 => range_req().prop_map(|mut r| { r.revision = 0; RequestOp::Range(r) }),
    ]
}

fn txn() -> impl Strategy<Value = TxnRequest> {
    let inner = (
        prop::collection::vec(compare(), 0..2),
        prop::collection::vec(leaf_op(), 0..3),
        prop::collection::vec(leaf_op(), 0..3),
    )
        .prop_map(|(compare, success, failure)| TxnRequest {
            compare,
            success,
            failure,
        });
    let op = prop_oneof![4 => leaf_op(), 1 => inner.prop_map(RequestOp::Txn)];
    (
        prop::collection::vec(compare(), 0..3),
        prop::collection::vec(op.clone(), 0..4),
        prop::collection::vec(op, 0..4),
    )
        .prop_map(|(compare, success, failure)| TxnRequest {
            compare,
            success,
            failure,
        })
}

#[derive(Debug, Clone)]
enum Op {
    Put(PutRequest),
    Delete(DeleteRangeRequest),
    Txn(TxnRequest),
    /// Read at a revision picked by the selector.
    Range(RangeRequest, u8),
    Compact(u8),
    Grant(i64),
    Revoke(i64),
    Commit,
    History((Vec<u8>, Vec<u8>), u8, bool),
    Reload,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => put().prop_map(Op::Put),
        3 => delete().prop_map(Op::Delete),
        4 => txn().prop_map(Op::Txn),
        6 => (range_req(), any::<u8>()).prop_map(|(r, s)| Op::Range(r, s)),
        1 => any::<u8>().prop_map(Op::Compact),
        1 => (1i64..3).prop_map(Op::Grant),
        1 => (1i64..3).prop_map(Op::Revoke),
        3 => Just(Op::Commit),
        2 => (key_range(), any::<u8>(), any::<bool>()).prop_map(|(r, s, p)| Op::History(r, s, p)),
        1 => Just(Op::Reload),
    ]
}

/// Revision choices: current, historical, compacted-1, future.
fn pick_rev(m: &Model, sel: u8) -> i64 {
    match sel % 6 {
        0 | 1 => 0,
        2 => m.rev + 1,
        3 => (m.compacted - 1).max(1),
        _ => m.compacted.max(1) + i64::from(sel) % (m.rev - m.compacted.max(1) + 1),
    }
}

/// Apply `ops` (no `Reload` among them) to `store` through write batches
/// committed at `Commit` ops and before committed-view reads.
fn run_segment(store: &Store, m: &mut Model, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut batch = Some(store.write());
    for op in ops {
        match op {
            Op::Put(p) => {
                let got = batch
                    .as_mut()
                    .unwrap()
                    .put(p)
                    .map(|a| (a.response, a.events));
                prop_assert_eq!(got, m.put(p), "put {:?}", p);
            }
            Op::Delete(d) => {
                let got = batch
                    .as_mut()
                    .unwrap()
                    .delete_range(d)
                    .map(|a| (a.response, a.events));
                prop_assert_eq!(got, m.delete_range(d), "delete {:?}", d);
            }
            Op::Txn(t) => {
                let got = batch
                    .as_mut()
                    .unwrap()
                    .txn(t)
                    .map(|a| (a.response, a.events));
                prop_assert_eq!(got, m.txn(t), "txn {:?}", t);
            }
            Op::Grant(id) => {
                prop_assert_eq!(batch.as_mut().unwrap().lease_grant(*id, 60), m.grant(*id))
            }
            Op::Revoke(id) => {
                let got = batch
                    .as_mut()
                    .unwrap()
                    .lease_revoke(*id)
                    .map(|a| (a.response, a.events));
                prop_assert_eq!(got, m.revoke(*id));
            }
            Op::Compact(sel) => {
                let sel = i64::from(*sel);
                let rev = if sel % 5 == 0 {
                    m.compacted
                } else {
                    m.compacted + 1 + sel % (m.rev - m.compacted + 1).max(1)
                };
                let b = batch.as_mut().unwrap();
                prop_assert_eq!(b.compact(rev), m.compact(rev));
                // Small steps so the walk is resumed many times.
                while b.compact_step(2) == ferrocd_mvcc::CompactProgress::Pending {}
            }
            Op::Commit => {
                batch.take().unwrap().commit();
                batch = Some(store.write());
            }
            Op::Range(r, sel) => {
                let mut r = r.clone();
                r.revision = pick_rev(m, *sel);
                let b = batch.as_ref().unwrap();
                prop_assert_eq!(b.range(&r), m.range(&r), "range {:?}", r);
            }
            Op::History((k, e), sel, prev) => {
                batch.take().unwrap().commit();
                let view = store.snapshot();
                let from = pick_rev(m, *sel).max(1);
                let range = KeyRange::new(k, e);
                let got = view.events(&range, from, i64::MAX, *prev, 0);
                prop_assert_eq!(
                    got,
                    m.history_events(&range, from, i64::MAX, *prev),
                    "history {:?} from {}",
                    range,
                    from
                );
                let r = RangeRequest::new(k.clone(), e.clone());
                prop_assert_eq!(view.range(&r).map(|x| x.to_response()), m.range(&r));
                for id in 1..3 {
                    let lk: Vec<Vec<u8>> = view
                        .lease_keys(id)
                        .into_iter()
                        .map(|k| k.to_vec())
                        .collect();
                    prop_assert_eq!(lk, m.lease_keys(id));
                }
                batch = Some(store.write());
            }
            Op::Reload => unreachable!("segments exclude reloads"),
        }
    }
    batch.take().unwrap().commit();
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::new(Config::default());
    let mut m = Model::default();
    for (i, seg) in ops.split(|o| matches!(o, Op::Reload)).enumerate() {
        if i > 0 {
            let view = store.snapshot();
            let h = view.hash_kv(0).unwrap();
            let path = dir.path().join(format!("s{i}.snap"));
            view.save(&path).unwrap();
            drop(view);
            store = Store::load(&path, Config::default()).unwrap();
            let view = store.snapshot();
            prop_assert_eq!(view.hash_kv(0).unwrap(), h);
            prop_assert_eq!(view.revision(), m.rev);
            prop_assert_eq!(view.compact_revision(), m.compacted);
        }
        run_segment(&store, &mut m, seg)?;
    }
    // Final full comparison at every revision still readable.
    let view = store.snapshot();
    for rev in m.compacted.max(1)..=m.rev {
        let r = RangeRequest {
            key: vec![0],
            range_end: vec![0],
            revision: rev,
            ..Default::default()
        };
        prop_assert_eq!(
            view.range(&r).map(|x| x.to_response()),
            m.range(&r),
            "full read at {}",
            rev
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model(ops in prop::collection::vec(op(), 1..200)) {
        run(ops)?;
    }
}
