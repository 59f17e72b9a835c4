//! The real file layer (io_uring) on the machine's disk, in a temporary
//! directory: append, sync, roll, truncate, purge, reopen, group commit.

mod common;

use common::payload;
use ferrocd_wal::{Config, GroupCommit, Op, SnapStore, TornTail, UringFs, Wal};

fn cfg() -> Config {
    Config {
        segment_size: 64 << 10,
        keep_segments: 2,
        torn_tail: TornTail::Truncate,
    }
}

#[test]
fn uring_log_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("member/wal");
    let (mut wal, rec) = Wal::open(UringFs, &dir, cfg()).unwrap();
    assert_eq!(rec.last_index, None);
    for i in 1..=2000u64 {
        wal.append_entry(i, &payload(i)).unwrap();
        if i % 50 == 0 {
            assert_eq!(wal.sync().unwrap(), Some(i));
        }
    }
    wal.append_meta(1, b"term=3").unwrap();
    wal.sync().unwrap();
    let segs = wal.segment_names().len();
    assert!(segs > 3, "rolled: {segs}");
    wal.truncate_from(1990).unwrap();
    wal.append_entry(1990, b"replaced").unwrap();
    wal.sync().unwrap();
    assert!(wal.purge_before(1000).unwrap() > 0);
    let first = wal.first_index().unwrap();
    drop(wal);

    let (mut wal, rec) = Wal::open(UringFs, &dir, cfg()).unwrap();
    assert_eq!(rec.first_index, Some(first));
    assert_eq!(rec.last_index, Some(1990));
    assert_eq!(rec.meta.get(&1).map(Vec::as_slice), Some(&b"term=3"[..]));
    let got = wal.entries(first, 1990).unwrap();
    assert_eq!(got.last().unwrap().1, b"replaced");
    for (i, p) in &got[..got.len() - 1] {
        assert_eq!(*p, payload(*i));
    }
    // Files are named as etcd names them.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(
        names.iter().all(|n| n.len() == 37 && n.ends_with(".wal")),
        "{names:?}"
    );
}

#[test]
fn group_commit_shares_syncs_among_requests_in_flight() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let (wal, _) = Wal::open(UringFs, &dir, cfg()).unwrap();
    let (gc, worker) = GroupCommit::start(wal);
    // One submitter keeps many requests in flight (as the raft loop does);
    // a second thread writes metadata concurrently.
    let meta = {
        let gc = gc.clone();
        std::thread::spawn(move || {
            for k in 0..20u64 {
                gc.commit_blocking(vec![Op::Meta {
                    key: k,
                    payload: vec![k as u8; 8],
                }])
                .unwrap();
            }
        })
    };
    let pending: Vec<_> = (1..=500u64)
        .map(|i| {
            gc.submit(vec![Op::Entry {
                index: i,
                payload: payload(i),
            }])
        })
        .collect();
    let mut last = 0;
    for p in pending {
        let durable = p.wait().unwrap().unwrap();
        assert!(durable >= last, "durable index never goes back");
        last = durable;
    }
    assert_eq!(last, 500);
    // A gap is refused whole and does not break the log.
    assert!(
        gc.commit_blocking(vec![Op::Entry {
            index: 502,
            payload: vec![]
        }])
        .is_err()
    );
    assert_eq!(
        gc.commit_blocking(vec![Op::Entry {
            index: 501,
            payload: vec![1]
        }])
        .unwrap(),
        Some(501)
    );
    meta.join().unwrap();
    drop(gc);
    let mut wal = worker.join();
    assert_eq!(wal.durable_index(), Some(501));
    assert!(
        wal.sync_count() < 521,
        "{} syncs for 521 requests",
        wal.sync_count()
    );
    let got = wal.entries(1, 500).unwrap();
    assert!(got.iter().all(|(i, p)| *p == payload(*i)));
    assert_eq!(wal.meta().len(), 20);
}

/// The async API from a tokio runtime: commit, read back and purge all go
/// through the wal thread.
#[tokio::test(flavor = "current_thread")]
async fn group_commit_async_commit_read_purge() {
    let tmp = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(UringFs, tmp.path().join("wal"), cfg()).unwrap();
    let (gc, worker) = GroupCommit::start(wal);
    let mut pending = Vec::new();
    for i in 1..=2000u64 {
        pending.push(gc.submit(vec![Op::Entry {
            index: i,
            payload: payload(i),
        }]));
    }
    for p in pending {
        p.await.unwrap();
    }
    let got = gc.read(1995, 3000).await.unwrap();
    assert_eq!(
        got.iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![1995, 1996, 1997, 1998, 1999, 2000]
    );
    assert_eq!(got[0].1, payload(1995));
    assert!(gc.purge_before(1500).await.unwrap() > 0);
    assert!(matches!(
        gc.read(1, 1).await,
        Err(ferrocd_wal::ReadError::NotFound(1))
    ));
    drop(gc);
    let wal = worker.join();
    assert!(
        wal.sync_count() < 2000,
        "{} syncs for 2000 commits",
        wal.sync_count()
    );
}

#[test]
fn snapshot_files_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let store = SnapStore::open(UringFs, tmp.path().join("member/snap")).unwrap();
    let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    let s = store.save_with(3, 1234, |w| w.write_all(&data)).unwrap();
    assert!(s.path.ends_with("0000000000000003-00000000000004d2.snap"));
    let back = std::fs::read(&s.path).unwrap();
    assert_eq!(&back[s.payload_offset as usize..], &data[..]);
    assert_eq!(store.load_newest_valid().unwrap(), Some(s));
}
