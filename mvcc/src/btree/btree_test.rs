//! B+tree tests: unit cases plus a property test against `std`'s
//! `BTreeMap` (the model), including snapshots taken mid-sequence that must
//! not change when the tree is written afterwards.

use std::collections::BTreeMap;
use std::ops::Bound;

use proptest::prelude::*;

use super::BTree;

#[test]
fn empty_tree() {
    let t: BTree<u32, u32> = BTree::new();
    assert!(t.is_empty());
    assert_eq!(t.get(&1), None);
    assert_eq!(t.iter().count(), 0);
    assert_eq!(t.range_from(Bound::Included(&5)).count(), 0);
    t.check();
}

#[test]
fn insert_remove_many_keeps_invariants() {
    let mut t = BTree::new();
    for i in 0..10_000u32 {
        assert_eq!(t.insert(i * 7 % 10_007, i), None);
    }
    t.check();
    assert_eq!(t.len(), 10_000);
    assert!(t.depth() <= 4, "depth {}", t.depth());
    let keys: Vec<u32> = t.iter().map(|(k, _)| *k).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
    for i in (0..10_000u32).step_by(2) {
        assert_eq!(t.remove(&(i * 7 % 10_007)), Some(i));
    }
    t.check();
    assert_eq!(t.len(), 5_000);
    for i in 0..10_000u32 {
        t.remove(&(i * 7 % 10_007));
    }
    t.check();
    assert!(t.is_empty());
    assert_eq!(t.depth(), 0);
}

#[test]
fn seek_bounds() {
    let t = BTree::from_sorted((0..1000u32).map(|i| (i * 2, i)));
    t.check();
    let first = |b: Bound<&u32>| t.range_from(b).next().map(|(k, _)| *k);
    assert_eq!(first(Bound::Included(&10)), Some(10));
    assert_eq!(first(Bound::Excluded(&10)), Some(12));
    assert_eq!(first(Bound::Included(&11)), Some(12));
    assert_eq!(first(Bound::Included(&1998)), Some(1998));
    assert_eq!(first(Bound::Excluded(&1998)), None);
    assert_eq!(first(Bound::Unbounded), Some(0));
    assert_eq!(t.range_from(Bound::Included(&1000)).count(), 500);
}

#[test]
fn snapshot_is_isolated() {
    let mut t = BTree::new();
    for i in 0..500u32 {
        t.insert(i, i);
    }
    let snap = t.clone();
    for i in 0..500u32 {
        t.insert(i, i + 1);
        if i % 3 == 0 {
            t.remove(&i);
        }
    }
    *t.get_mut(&1).expect("present") = 99;
    snap.check();
    t.check();
    assert!(snap.iter().all(|(k, v)| k == v));
    assert_eq!(snap.len(), 500);
    assert_eq!(t.get(&1), Some(&99));
}

#[test]
fn bulk_load_sizes() {
    for n in [0usize, 1, 15, 16, 48, 49, 64, 65, 1000, 3073, 100_000] {
        let t = BTree::from_sorted((0..n as u64).map(|i| (i, ())));
        t.check();
        assert_eq!(t.len(), n);
    }
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u16, u32),
    Remove(u16),
    Snapshot,
    Seek(u16, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..2000u16, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
        4 => (0..2000u16).prop_map(Op::Remove),
        1 => Just(Op::Snapshot),
        2 => (0..2100u16, any::<bool>()).prop_map(|(k, inc)| Op::Seek(k, inc)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn matches_btreemap(ops in proptest::collection::vec(op(), 1..1500)) {
        let mut t = BTree::new();
        let mut m = BTreeMap::new();
        let mut snaps: Vec<(BTree<u16, u32>, BTreeMap<u16, u32>)> = Vec::new();
        for op in ops {
            match op {
                Op::Insert(k, v) => prop_assert_eq!(t.insert(k, v), m.insert(k, v)),
                Op::Remove(k) => prop_assert_eq!(t.remove(&k), m.remove(&k)),
                Op::Snapshot => snaps.push((t.clone(), m.clone())),
                Op::Seek(k, inc) => {
                    let b = if inc { Bound::Included(&k) } else { Bound::Excluded(&k) };
                    let got: Vec<_> = t.range_from(b).take(20).collect();
                    let want: Vec<_> = m.range((b, Bound::Unbounded)).take(20).collect();
                    prop_assert_eq!(got, want);
                }
            }
            prop_assert_eq!(t.len(), m.len());
        }
        t.check();
        prop_assert!(t.iter().eq(m.iter()));
        for (st, sm) in &snaps {
            st.check();
            prop_assert!(st.iter().eq(sm.iter()));
        }
    }
}
