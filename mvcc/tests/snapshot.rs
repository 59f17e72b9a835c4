//! Snapshots: save/load round trips (records stay in the mapping), the
//! streaming payload loaded through `load_mapped` at an offset as core
//! does with the WAL's snapshot files, and corrupt files failing with
//! `Error::Snapshot` instead of panicking.

use std::io::Write;
use std::sync::Arc;

use ferrocd_mvcc::{Config, DeleteRangeRequest, Error, PutRequest, RangeRequest, Store};

fn sample() -> Store {
    let s = Store::default();
    let mut b = s.write();
    b.lease_grant(5, 30).unwrap();
    for i in 0..300 {
        let mut p = PutRequest::new(format!("key/{:04}", i % 120), vec![i as u8; 40]);
        if i % 7 == 0 {
            p.lease = 5;
        }
        b.put(&p).unwrap();
        if i % 50 == 49 {
            b.delete_range(&DeleteRangeRequest::new(
                format!("key/{:04}", i % 120 - 10),
                format!("key/{:04}", i % 120 - 5),
            ))
            .unwrap();
        }
    }
    b.set_consistent_index(42);
    b.compact(150).unwrap();
    b.commit();
    s
}

fn same(a: &Store, b: &Store) {
    let (va, vb) = (a.snapshot(), b.snapshot());
    assert_eq!(va.revision(), vb.revision());
    assert_eq!(va.compact_revision(), vb.compact_revision());
    assert_eq!(va.consistent_index(), vb.consistent_index());
    assert_eq!(va.hash_kv(0).unwrap(), vb.hash_kv(0).unwrap());
    assert_eq!(va.lease_keys(5), vb.lease_keys(5));
    assert_eq!(
        vb.lease_ttls(),
        vec![(5, 30)],
        "granted TTLs survive a snapshot"
    );
    for rev in [150, 200, 0] {
        let r = RangeRequest {
            revision: rev,
            ..RangeRequest::new("\0", "\0")
        };
        assert_eq!(
            va.range(&r).unwrap().to_response(),
            vb.range(&r).unwrap().to_response()
        );
    }
}

#[test]
fn save_load_round_trip_with_pending_compaction() {
    let s = sample();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.snap");
    s.snapshot().save(&path).unwrap();
    let l = Store::load(&path, Config::default()).unwrap();
    same(&s, &l);
    // The pending compaction resumes after the load.
    l.finish_compaction();
    s.finish_compaction();
    same(&s, &l);
    assert_eq!(s.snapshot().record_count(), l.snapshot().record_count());
    // Writes after a load work on mapped records.
    let mut b = l.write();
    b.put(&PutRequest::new("key/0001", "new")).unwrap();
    b.commit();
    assert_eq!(l.snapshot().get(b"key/0001").unwrap().value(), b"new");
}

#[test]
fn load_mapped_at_an_offset() {
    let s = sample();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal-style.snap");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&[0xAB; 4096]).unwrap();
    let len = s.snapshot().write_snapshot(&mut f).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let f = std::fs::File::open(&path).unwrap();
    // SAFETY: the test owns the file and does not modify it while mapped.
    let map = Arc::new(unsafe { memmap2::Mmap::map(&f) }.unwrap());
    let l = Store::load_mapped(map.clone(), 4096, len as usize, Config::default()).unwrap();
    same(&s, &l);
    assert!(matches!(
        Store::load_mapped(map.clone(), 4096 + 8, len as usize - 8, Config::default()),
        Err(Error::Snapshot { .. })
    ));
    assert!(matches!(
        Store::load_mapped(map, 4096, len as usize + 1, Config::default()),
        Err(Error::Snapshot { .. })
    ));
}

#[test]
fn corruption_is_an_error_not_a_panic() {
    let s = sample();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.snap");
    s.snapshot().save(&path).unwrap();
    let good = std::fs::read(&path).unwrap();
    let bad = dir.path().join("bad.snap");
    // Flip bytes across the header and the payload, and truncate.
    let step = (good.len() / 97).max(1);
    for at in (0..good.len()).step_by(step) {
        let mut b = good.clone();
        b[at] ^= 0x5A;
        std::fs::write(&bad, &b).unwrap();
        match Store::load(&bad, Config::default()) {
            Err(Error::Snapshot { path, reason }) => {
                assert!(path.ends_with("bad.snap") && !reason.is_empty())
            }
            other => panic!("flip at {at}: {other:?}"),
        }
    }
    for cut in [0, 10, 64, good.len() / 2, good.len() - 1] {
        std::fs::write(&bad, &good[..cut]).unwrap();
        assert!(
            matches!(
                Store::load(&bad, Config::default()),
                Err(Error::Snapshot { .. })
            ),
            "cut at {cut}"
        );
    }
    assert!(matches!(
        Store::load(dir.path().join("missing"), Config::default()),
        Err(Error::Snapshot { .. })
    ));
}

/// Payload corruption that passes the file CRC (a corrupt payload handed to
/// `load_mapped` directly) is caught by frame CRCs and bytecheck.
#[test]
fn mapped_payload_corruption_is_an_error() {
    let s = sample();
    let mut payload = Vec::new();
    s.snapshot().write_snapshot(&mut payload).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.snap");
    let step = (payload.len() / 61).max(1);
    for at in (0..payload.len()).step_by(step) {
        let mut b = payload.clone();
        b[at] ^= 0xFF;
        std::fs::write(&path, &b).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        // SAFETY: the test owns the file and does not modify it while mapped.
        let map = Arc::new(unsafe { memmap2::Mmap::map(&f) }.unwrap());
        let r = Store::load_mapped(map, 0, b.len(), Config::default());
        assert!(matches!(r, Err(Error::Snapshot { .. })), "flip at {at}");
    }
}

/// The history (an etcd backend's `key` bucket) rebuilds an equal store:
/// reads at every revision kept, hashes, leases, lease keys; the history
/// of a store with an unfinished physical compaction is the one a
/// finished compaction leaves.
#[test]
fn history_rebuilds_an_equal_store() {
    let s = sample();
    let rebuild = |s: &Store| {
        let v = s.snapshot();
        let mut b = ferrocd_mvcc::Builder::new();
        for h in v.history() {
            b.record(
                h.rev,
                h.kv.key(),
                h.kv.value(),
                h.kv.create_revision(),
                h.kv.version(),
                h.kv.lease(),
                h.tombstone,
            )
            .unwrap();
        }
        for (id, ttl) in v.lease_ttls() {
            b.lease(id, ttl);
        }
        b.finish(
            v.compact_revision(),
            0,
            v.consistent_index(),
            Config::default(),
        )
        .unwrap()
    };
    let before: Vec<_> = s.snapshot().history().map(|h| h.rev).collect();
    let r = rebuild(&s);
    same(&s, &r);
    s.finish_compaction();
    let after: Vec<_> = s.snapshot().history().map(|h| h.rev).collect();
    assert_eq!(before, after);
    assert_eq!(s.snapshot().record_count(), r.snapshot().record_count());
    same(&s, &r);
    // Out-of-order revisions are refused.
    let mut b = ferrocd_mvcc::Builder::new();
    b.record(
        ferrocd_mvcc::Revision::new(5, 0),
        b"k",
        b"v",
        5,
        1,
        0,
        false,
    )
    .unwrap();
    assert!(
        b.record(
            ferrocd_mvcc::Revision::new(4, 0),
            b"k",
            b"v",
            5,
            2,
            0,
            false
        )
        .is_err()
    );
}
