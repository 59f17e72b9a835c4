//! Replays the fuzz seed corpus (`fuzz/corpus/bolt_db/`) through the bbolt
//! reader as the fuzz target does: no input may panic it; `valid-*` seeds
//! open and walk, `bad-*` seeds fail with an error. Regenerate the seeds
//! with `FERROCD_WRITE_CORPUS=1`.

use std::io::Cursor;
use std::path::PathBuf;

use ferrocd_wal::bolt::{BUCKET_FLAG, Db, PAGE_SIZE, Writer};

#[path = "../../fuzz/corpus_replay.rs"]
mod corpus_replay;

fn corpus_dir() -> PathBuf {
    corpus_replay::dir(env!("CARGO_MANIFEST_DIR"), "bolt_db")
}

fn file(
    build: impl FnOnce(&mut Writer<Cursor<Vec<u8>>>) -> Vec<(Vec<u8>, ferrocd_wal::bolt::BucketValue)>,
) -> Vec<u8> {
    let mut w = Writer::new(Cursor::new(Vec::new())).unwrap();
    let top = build(&mut w);
    w.finish(top).unwrap().0.into_inner()
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let small = file(|w| {
        let a = w.bucket([(b"k".to_vec(), b"v".to_vec())]).unwrap();
        let e = w.bucket(Vec::new()).unwrap();
        vec![(b"a".to_vec(), a), (b"e".to_vec(), e)]
    });
    // Two levels of branches and overflow pages.
    let big = file(|w| {
        let k = w
            .bucket((0..3000u32).map(|i| (i.to_be_bytes().to_vec(), vec![7; (i % 13) as usize])))
            .unwrap();
        let o = w.bucket([(b"o".to_vec(), vec![1; 2 * PAGE_SIZE])]).unwrap();
        vec![(b"key".to_vec(), k), (b"over".to_vec(), o)]
    });
    let nested = file(|w| {
        let inner = w.bucket([(b"x".to_vec(), b"1".to_vec())]).unwrap();
        let outer = w.nested([(b"sub".to_vec(), inner.0, BUCKET_FLAG)]).unwrap();
        vec![(b"top".to_vec(), outer)]
    });
    let etcd = include_bytes!("data/etcd-3.5.1-snapshot.db").to_vec();
    let mut metas = small.clone();
    metas[20] ^= 1;
    metas[PAGE_SIZE + 20] ^= 1;
    let mut bad_root = small.clone();
    // Root pgid (meta offset 16 + 16) of both metas past the end; the
    // checksums are left stale, so both metas fail.
    bad_root[32] = 0xff;
    bad_root[PAGE_SIZE + 32] = 0xff;
    let mut bad_leaf = big.clone();
    // A leaf element's key position far past its page.
    bad_leaf[2 * PAGE_SIZE + 16 + 4..2 * PAGE_SIZE + 16 + 8]
        .copy_from_slice(&u32::MAX.to_le_bytes());
    vec![
        ("valid-small", small.clone()),
        ("valid-big", big.clone()),
        ("valid-nested", nested),
        ("valid-etcd-3.5.1", etcd),
        ("bad-metas", metas),
        ("bad-root", bad_root),
        ("bad-leaf-pos", bad_leaf),
        ("bad-truncated", big[..big.len() / 2].to_vec()),
        ("bad-short", small[..100].to_vec()),
    ]
}

#[test]
fn corpus_replays_without_panics() {
    corpus_replay::replay(&corpus_dir(), &seeds(), |name, data| {
        let r = Db::open(data).and_then(|db| db.check());
        if name.starts_with("valid-") {
            assert!(r.as_ref().is_ok_and(|n| *n > 0), "{name}: {r:?}");
        } else if name.starts_with("bad-") {
            assert!(r.is_err(), "{name}: {r:?}");
        }
    });
}

#[test]
fn seeds_match_the_corpus() {
    corpus_replay::seeds_match(&corpus_dir(), &seeds());
}
