use std::collections::BTreeMap;
use std::io::Cursor;

use proptest::prelude::*;

use super::*;

type Buckets = BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>>;

fn write(buckets: &Buckets) -> Vec<u8> {
    let mut w = Writer::new(Cursor::new(Vec::new())).unwrap();
    let mut top = Vec::new();
    for (name, kvs) in buckets {
        let v = w
            .bucket(kvs.iter().map(|(k, v)| (k.clone(), v.clone())))
            .unwrap();
        top.push((name.clone(), v));
    }
    let (c, size) = w.finish(top).unwrap();
    let bytes = c.into_inner();
    assert_eq!(bytes.len() as u64, size);
    bytes
}

fn read(bytes: &[u8]) -> Result<Buckets, Invalid> {
    let db = Db::open(bytes)?;
    let mut names = Vec::new();
    db.walk(&db.root(), &mut |e| {
        names.push(e);
        Ok(())
    })?;
    let mut out = Buckets::new();
    for e in names {
        assert!(e.bucket);
        let b = db.open_bucket(&e)?;
        let mut kvs = BTreeMap::new();
        db.walk(&b, &mut |e| {
            kvs.insert(e.key.to_vec(), e.value.to_vec());
            Ok(())
        })?;
        out.insert(e.key.to_vec(), kvs);
    }
    Ok(out)
}

fn sample() -> Buckets {
    let mut b = Buckets::new();
    b.insert(b"alarm".to_vec(), BTreeMap::new());
    b.insert(
        b"meta".to_vec(),
        [(b"consistent_index".to_vec(), 7u64.to_be_bytes().to_vec())].into(),
    );
    // Enough keys for three levels of branches... two at least.
    let key: BTreeMap<_, _> = (0..20_000u64)
        .map(|i| (i.to_be_bytes().to_vec(), vec![b'v'; (i % 50) as usize]))
        .collect();
    b.insert(b"key".to_vec(), key);
    // Values bigger than a page: overflow pages.
    let big: BTreeMap<_, _> = (0..5u8)
        .map(|i| (vec![i + 1], vec![i; 3 * PAGE_SIZE + 17]))
        .collect();
    b.insert(b"big".to_vec(), big);
    b
}

#[test]
fn round_trip() {
    let b = sample();
    let bytes = write(&b);
    assert_eq!(bytes.len() % PAGE_SIZE, 0);
    assert_eq!(read(&bytes).unwrap(), b);
    let db = Db::open(&bytes).unwrap();
    assert_eq!(db.size(), bytes.len() as u64);
    assert_eq!(db.txid(), 2);
    assert!(db.bucket(b"key").unwrap().is_some());
    assert!(db.bucket(b"nope").unwrap().is_none());
}

#[test]
fn deterministic() {
    assert_eq!(write(&sample()), write(&sample()));
}

#[test]
fn small_buckets_are_inline_as_bbolt_writes_them() {
    let mut b = Buckets::new();
    b.insert(b"a".to_vec(), [(b"k".to_vec(), b"v".to_vec())].into());
    b.insert(b"e".to_vec(), BTreeMap::new());
    let bytes = write(&b);
    // Metas, the root leaf; nothing else.
    assert_eq!(bytes.len(), 3 * PAGE_SIZE);
    assert_eq!(read(&bytes).unwrap(), b);
}

#[test]
fn nested_buckets() {
    let mut w = Writer::new(Cursor::new(Vec::new())).unwrap();
    let inner = w.bucket([(b"x".to_vec(), b"1".to_vec())]).unwrap();
    let outer = w
        .nested([
            (b"a".to_vec(), b"plain".to_vec(), 0),
            (b"sub".to_vec(), inner.0.clone(), BUCKET_FLAG),
        ])
        .unwrap();
    let (c, _) = w.finish(vec![(b"top".to_vec(), outer)]).unwrap();
    let bytes = c.into_inner();
    let db = Db::open(&bytes).unwrap();
    let top = db.bucket(b"top").unwrap().unwrap();
    let mut seen = Vec::new();
    db.walk(&top, &mut |e| {
        seen.push((e.key.to_vec(), e.bucket));
        if e.bucket {
            let sub = db.open_bucket(&e)?;
            db.walk(&sub, &mut |e| {
                seen.push((e.key.to_vec(), e.bucket));
                Ok(())
            })?;
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(
        seen,
        vec![
            (b"a".to_vec(), false),
            (b"sub".to_vec(), true),
            (b"x".to_vec(), false)
        ]
    );
}

#[test]
fn writer_refuses_unsorted_and_empty_keys() {
    let mut w = Writer::new(Cursor::new(Vec::new())).unwrap();
    let e = w
        .bucket([(b"b".to_vec(), vec![]), (b"a".to_vec(), vec![])])
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let e = w
        .bucket([(b"a".to_vec(), vec![]), (b"a".to_vec(), vec![])])
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let e = w.bucket([(Vec::new(), vec![])]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
}

/// A snapshot saved from a real etcd 3.5.1 (`etcdctl snapshot save` after
/// put a=1, put b=2, put a=3, del b, a lease of 600 s, put c=4 on it,
/// put d=5, compact 3): every bucket etcd writes, inline buckets, the
/// sha256 etcd appends after the database, no stored freelist.
#[test]
fn reads_a_real_etcd_snapshot() {
    let bytes = include_bytes!("../tests/data/etcd-3.5.1-snapshot.db");
    assert_eq!(bytes.len(), 20480 + 32);
    let b = read(bytes).unwrap();
    let names: Vec<_> = b.keys().map(|k| String::from_utf8_lossy(k)).collect();
    assert_eq!(
        names,
        [
            "alarm",
            "auth",
            "authRoles",
            "authUsers",
            "cluster",
            "key",
            "lease",
            "members",
            "members_removed",
            "meta"
        ]
    );
    assert_eq!(b[&b"key"[..]].len(), 6);
    let total: usize = b.values().map(BTreeMap::len).sum();
    assert_eq!(total, 15); // etcdctl snapshot status: totalKey 15
    assert_eq!(Db::open(bytes).unwrap().size(), 20480);
    assert_eq!(
        b[&b"cluster"[..]][&b"clusterVersion"[..]],
        b"3.5.0".to_vec()
    );
}

#[test]
fn bad_metas_fall_back_then_fail() {
    let mut bytes = write(&sample());
    // Meta 0 (txid 2) broken: meta 1 (txid 1, same tree) is used.
    bytes[PAGE_HEADER + 20] ^= 1;
    let db = Db::open(&bytes).unwrap();
    assert_eq!(db.txid(), 1);
    assert_eq!(read(&bytes).unwrap(), sample());
    // Both broken.
    bytes[PAGE_SIZE + PAGE_HEADER + 20] ^= 1;
    let e = Db::open(&bytes).unwrap_err();
    assert!(e.reason.contains("checksum"), "{e}");
}

#[test]
fn truncated_and_garbage_files_are_refused() {
    let bytes = write(&sample());
    for cut in [0, 10, PAGE_SIZE, 2 * PAGE_SIZE + 5, bytes.len() - PAGE_SIZE] {
        assert!(Db::open(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    assert!(Db::open(&[0u8; 3 * PAGE_SIZE]).is_err());
    assert!(Db::open(b"not a database").is_err());
}

#[test]
fn a_page_referenced_twice_is_refused() {
    // A branch pointing at the same leaf twice would double the keys (and
    // a chain of such pages would take exponential time): refused.
    let mut w = Writer::new(Cursor::new(Vec::new())).unwrap();
    let leaf = w
        .write_page(&leaf_page(
            2,
            &[Elem {
                key: b"k".to_vec(),
                value: vec![],
                flags: 0,
            }],
            true,
        ))
        .unwrap();
    let a = (b"a".to_vec(), leaf);
    let b = (b"b".to_vec(), leaf);
    let branch = w.write_page(&branch_page(3, &[&a, &b])).unwrap();
    let mut v = branch.to_le_bytes().to_vec();
    v.extend_from_slice(&0u64.to_le_bytes());
    let (c, _) = w.finish(vec![(b"x".to_vec(), BucketValue(v))]).unwrap();
    let bytes = c.into_inner();
    let e = read(&bytes).unwrap_err();
    assert!(e.reason.contains("referenced twice"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any buckets round-trip.
    #[test]
    fn prop_round_trip(b in prop::collection::btree_map(
        prop::collection::vec(any::<u8>(), 1..8),
        prop::collection::btree_map(
            prop::collection::vec(any::<u8>(), 1..40),
            prop::collection::vec(any::<u8>(), 0..600),
            0..200),
        0..6)) {
        let bytes = write(&b);
        prop_assert_eq!(read(&bytes).unwrap(), b);
    }

    /// Flipped bytes anywhere give an error or some buckets, never a
    /// panic or a hang.
    #[test]
    fn prop_corruption_never_panics(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        static SAMPLE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let mut bytes = SAMPLE.get_or_init(|| write(&sample())).clone();
        for (i, x) in flips {
            let at = i.index(bytes.len());
            bytes[at] ^= x | 1;
        }
        let _ = read(&bytes);
    }
}
