//! Replays the fuzz seed corpus (`fuzz/corpus/mvcc_snapshot/`) through the
//! snapshot loader as the fuzz target does: no input may panic it, a
//! `valid-*` seed loads, every `bad-*` seed is an error. Regenerate the
//! seeds with `FERROCD_WRITE_CORPUS=1`.

use std::path::PathBuf;
use std::sync::Arc;

use ferrocd_mvcc::{Config, PutRequest, Store};

#[path = "../../fuzz/corpus_replay.rs"]
mod corpus_replay;

fn corpus_dir() -> PathBuf {
    corpus_replay::dir(env!("CARGO_MANIFEST_DIR"), "mvcc_snapshot")
}

fn load(data: &[u8]) -> ferrocd_mvcc::Result<Store> {
    let mut map = memmap2::MmapMut::map_anon(data.len().max(1)).unwrap();
    map[..data.len()].copy_from_slice(data);
    Store::load_mapped(
        Arc::new(map.make_read_only().unwrap()),
        0,
        data.len(),
        Config::default(),
    )
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let store = Store::default();
    let mut b = store.write();
    for i in 0..20 {
        b.put(&PutRequest::new(format!("k{i}"), format!("v{i}")))
            .unwrap();
    }
    b.commit();
    let mut valid = Vec::new();
    store.snapshot().write_snapshot(&mut valid).unwrap();
    let mut out = vec![("valid-20-keys".to_string(), valid.clone())];
    out.push(("bad-empty".into(), Vec::new()));
    out.push(("bad-truncated".into(), valid[..valid.len() / 2].to_vec()));
    for at in [0, 8, valid.len() / 3, valid.len() - 1] {
        let mut v = valid.clone();
        v[at] ^= 0x55;
        out.push((format!("bad-flip-{at}"), v));
    }
    out
}

#[test]
fn corpus_replays_without_panics() {
    corpus_replay::replay(&corpus_dir(), &seeds(), |name, data| {
        let r = load(data);
        if name.starts_with("valid-") {
            let store = r.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(store.snapshot().key_count(), 20);
        } else if name.starts_with("bad-") {
            assert!(r.is_err(), "{name} loaded");
        }
    });
}
