//! The log against a plain model (a `Vec` of entries plus a map of
//! metadata) over random append / sync / truncate / purge / reopen / power
//! loss sequences. After a power loss the log must hold every entry synced
//! before it and, beyond that, only a prefix of what was appended.

mod common;

use std::collections::BTreeMap;

use common::*;
use ferrocd_wal::SimFs;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append(u8),
    Meta(u8, u8),
    Sync,
    Truncate(u8),
    Purge(u8),
    Reopen,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1..6u8).prop_map(Op::Append),
        1 => (0..3u8, any::<u8>()).prop_map(|(k, v)| Op::Meta(k, v)),
        3 => Just(Op::Sync),
        1 => any::<u8>().prop_map(Op::Truncate),
        1 => any::<u8>().prop_map(Op::Purge),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
    ]
}

fn run(ops: Vec<Op>) {
    let cfg = small(1024);
    let mut fs = SimFs::new();
    let mut wal = open(&fs, cfg.clone());
    // Model: entries by index (the live log), metadata, and what is durable.
    let mut model: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut meta: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut durable: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut durable_meta = meta.clone();
    // Every value a key took since the last sync (a segment roll may have
    // made any of them durable).
    let mut meta_since: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
    let mut next = 1u64;
    let mut purged_below = 0u64;

    for op in ops {
        match op {
            Op::Append(n) => {
                for _ in 0..n {
                    let p = payload(next);
                    wal.append_entry(next, &p).unwrap();
                    model.push((next, p));
                    next += 1;
                }
            }
            Op::Meta(k, v) => {
                wal.append_meta(k as u64, &[v; 3]).unwrap();
                meta.insert(k as u64, vec![v; 3]);
                meta_since.entry(k as u64).or_default().push(vec![v; 3]);
            }
            Op::Sync => {
                wal.sync().unwrap();
                durable = model.clone();
                durable_meta = meta.clone();
                meta_since.clear();
            }
            Op::Truncate(x) => {
                let Some(first) = model.first().map(|e| e.0) else {
                    continue;
                };
                let at = first + x as u64 % (next - first + 1);
                wal.truncate_from(at).unwrap();
                model.retain(|e| e.0 < at);
                next = at;
                durable = model.clone();
                durable_meta = meta.clone();
                meta_since.clear();
            }
            Op::Purge(x) => {
                let at = purged_below.max(x as u64 % (next + 1));
                wal.purge_before(at).unwrap();
                // Purged entries leave the model too (they are below `at`).
                let first = wal.first_index();
                model.retain(|e| first.is_some_and(|f| e.0 >= f));
                durable.retain(|e| first.is_some_and(|f| e.0 >= f));
                purged_below = at;
            }
            Op::Reopen => {
                drop(wal);
                wal = open(&fs, cfg.clone());
                // A clean close writes nothing extra: buffered, unsynced
                // records are gone; synced ones (and records written by a
                // segment roll) stay.
                let got = all_entries(&mut wal);
                check_prefix(&got, &durable, &model);
                model = got;
                next = model
                    .last()
                    .map_or(next.min(durable.last().map_or(next, |e| e.0 + 1)), |e| {
                        e.0 + 1
                    });
                if model.is_empty() {
                    next = wal.last_index().map_or(next, |l| l + 1);
                }
                meta = wal.meta().clone();
                durable = model.clone();
                durable_meta = meta.clone();
                meta_since.clear();
            }
            Op::Crash => {
                drop(wal);
                fs = fs.crash();
                wal = open(&fs, cfg.clone());
                let got = all_entries(&mut wal);
                check_prefix(&got, &durable, &model);
                for (k, v) in &durable_meta {
                    let m = wal.meta().get(k).expect("durable meta survives");
                    let later = meta_since.get(k).is_some_and(|vs| vs.contains(m));
                    assert!(m == v || later, "meta {k}: {m:?}");
                }
                model = got;
                next = wal.last_index().map_or(next, |l| l + 1);
                meta = wal.meta().clone();
                durable = model.clone();
                durable_meta = meta.clone();
                meta_since.clear();
            }
        }
        // Reads always see the live log, synced or not.
        assert_eq!(all_entries(&mut wal), model);
    }
}

/// `got` holds all of `durable` and is a prefix of `appended` (entries the
/// log may have written early, when a segment rolled).
fn check_prefix(got: &[(u64, Vec<u8>)], durable: &[(u64, Vec<u8>)], appended: &[(u64, Vec<u8>)]) {
    assert!(
        got.len() >= durable.len(),
        "lost durable entries: got {} < {}",
        got.len(),
        durable.len()
    );
    assert_eq!(&got[..durable.len()], durable);
    assert!(got.len() <= appended.len());
    assert_eq!(got, &appended[..got.len()]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn wal_matches_model(ops in proptest::collection::vec(op(), 1..80)) {
        run(ops);
    }
}
