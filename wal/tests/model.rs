//! The log against a plain model (a `Vec` of entries, the index the next
//! entry must have, and a map of metadata) over random append / sync /
//! truncate / reset / purge / reopen / power loss sequences. After a power
//! loss the log must be in one of the states it passed through since the
//! last sync: every synced change kept, and of the rest only a prefix (a
//! segment roll syncs early). A reset that was not synced is gone together
//! with every entry after it.

mod common;

use std::collections::BTreeMap;

use common::*;
use ferrocd_wal::{SimFs, Wal};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append(u8),
    Meta(u8, u8),
    Sync,
    Truncate(u8),
    /// Reset to an index derived from the first field, above or below the
    /// end; synced at once (`reset_to`) when the second is true.
    Reset(u8, bool),
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
        2 => (any::<u8>(), any::<bool>()).prop_map(|(x, s)| Op::Reset(x, s)),
        1 => any::<u8>().prop_map(Op::Purge),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
    ]
}

/// The live log: its entries and the index the next one must have (`None`:
/// any, a log that never held an entry).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Log {
    entries: Vec<(u64, Vec<u8>)>,
    next: Option<u64>,
}

fn observe(wal: &mut Wal<SimFs>) -> Log {
    Log {
        entries: all_entries(wal),
        next: wal.next_index(),
    }
}

fn run(ops: Vec<Op>) {
    let cfg = small(1024);
    let mut fs = SimFs::new();
    let mut wal = open(&fs, cfg.clone());
    let mut model = Log {
        entries: Vec::new(),
        next: None,
    };
    // Every state since the last sync, oldest (the durable one) first.
    let mut since_sync = vec![model.clone()];
    let mut meta: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut durable_meta = meta.clone();
    // Every value a key took since the last sync (a segment roll may have
    // made any of them durable).
    let mut meta_since: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();

    for op in ops {
        let mut synced = false;
        match op {
            Op::Append(n) => {
                for _ in 0..n {
                    let i = model.next.unwrap_or(1);
                    let p = payload(i);
                    wal.append_entry(i, &p).unwrap();
                    model.entries.push((i, p));
                    model.next = Some(i + 1);
                    since_sync.push(model.clone());
                }
            }
            Op::Meta(k, v) => {
                wal.append_meta(k as u64, &[v; 3]).unwrap();
                meta.insert(k as u64, vec![v; 3]);
                meta_since.entry(k as u64).or_default().push(vec![v; 3]);
            }
            Op::Sync => {
                wal.sync().unwrap();
                synced = true;
            }
            Op::Truncate(x) => {
                let Some(first) = model.entries.first().map(|e| e.0) else {
                    continue;
                };
                let next = model.next.unwrap();
                let at = first + x as u64 % (next - first + 1);
                wal.truncate_from(at).unwrap();
                model.entries.retain(|e| e.0 < at);
                model.next = Some(at);
                synced = true;
            }
            Op::Reset(x, sync) => {
                // Anywhere from 1 to 30 past the end.
                let to = 1 + x as u64 % (model.next.unwrap_or(1) + 30);
                if sync {
                    wal.reset_to(to).unwrap();
                } else {
                    wal.reset_buffered(to).unwrap();
                }
                model.entries.clear();
                model.next = Some(to);
                since_sync.push(model.clone());
                synced = sync;
            }
            Op::Purge(x) => {
                let at = x as u64 % (model.next.unwrap_or(1) + 1);
                // Syncs what is buffered first.
                wal.purge_before(at).unwrap();
                // Purged entries leave the model too (they are below `at`).
                let first = wal.first_index();
                assert!(
                    first.is_none_or(|f| f <= at || Some(f) == model.entries.first().map(|e| e.0))
                );
                model.entries.retain(|e| first.is_some_and(|f| e.0 >= f));
                synced = true;
            }
            Op::Reopen | Op::Crash => {
                drop(wal);
                if matches!(op, Op::Crash) {
                    fs = fs.crash();
                }
                // A clean close writes nothing extra: either way buffered,
                // unsynced records are gone; synced ones (and records
                // written by a segment roll) stay.
                wal = open(&fs, cfg.clone());
                let got = observe(&mut wal);
                assert!(
                    since_sync.contains(&got),
                    "recovered {got:?}, not a state since the last sync: {since_sync:?}"
                );
                for (k, v) in &durable_meta {
                    let m = wal.meta().get(k).expect("durable meta survives");
                    let later = meta_since.get(k).is_some_and(|vs| vs.contains(m));
                    assert!(m == v || later, "meta {k}: {m:?}");
                }
                model = got;
                meta = wal.meta().clone();
                synced = true;
            }
        }
        if synced {
            since_sync = vec![model.clone()];
            durable_meta = meta.clone();
            meta_since.clear();
        }
        // Reads always see the live log, synced or not.
        assert_eq!(observe(&mut wal), model);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn wal_matches_model(ops in proptest::collection::vec(op(), 1..80)) {
        run(ops);
    }
}

/// Seen while writing the model: a reset buffered, then a purge, then a
/// power loss. The purge must not decide on the unsynced reset.
#[test]
fn purge_after_a_buffered_reset_then_power_loss() {
    let mut ops = vec![Op::Append(5); 12];
    ops.extend([Op::Sync, Op::Reset(3, false), Op::Purge(3), Op::Crash]);
    ops.extend([Op::Append(3), Op::Reset(200, false), Op::Crash]);
    run(ops);
}
