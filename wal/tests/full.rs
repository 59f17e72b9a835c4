//! A disk that fills up (ENOSPC) under the WAL, its group commit and the
//! snapshot files, through `SimFs::fill_after`: the failing write is
//! reported (never hangs, never acknowledged), every later write is
//! refused until reopen, nothing acknowledged is lost or corrupted, and
//! after space returns a restart (with or without a power loss) recovers
//! every acknowledged entry and writes again.
//!
//! Regression (found by `wal_full_at_any_byte_loses_nothing_acknowledged`):
//! a segment roll that failed on the full disk left the new segment's
//! directory entry unsynced; the restarted process appended into it, and
//! a power loss then took the acknowledged entries with the entry. Fix:
//! recovery fsyncs the WAL directory before the log is used.

mod common;

use std::path::Path;

use common::*;
use ferrocd_wal::{Fs, GroupCommit, Op, SimFs, SnapStore, Wal, WriteError};

const SEG: u64 = 16 << 10;

fn is_enospc(e: &WriteError) -> bool {
    matches!(e, WriteError::Io(io) if io.raw_os_error() == Some(libc::ENOSPC))
}

/// Append and sync one entry at a time until the disk is full; returns
/// the acknowledged entries (sync returned Ok).
fn fill(wal: &mut Wal<SimFs>, from: u64) -> u64 {
    let mut acked = from - 1;
    for i in from..from + 10_000 {
        let r = wal.append_entry(i, &payload(i)).and_then(|()| wal.sync());
        match r {
            Ok(_) => acked = i,
            Err(e) => {
                assert!(is_enospc(&e), "entry {i}: {e:?}");
                // The failure sticks until reopen.
                assert!(matches!(
                    wal.append_entry(i + 1, b"x"),
                    Err(WriteError::Failed)
                ));
                assert!(matches!(wal.sync(), Err(WriteError::Failed)));
                return acked;
            }
        }
    }
    panic!("the disk never filled up");
}

fn check_prefix(wal: &mut Wal<SimFs>, acked: u64) {
    let got = all_entries(wal);
    assert!(
        got.len() as u64 >= acked,
        "lost acknowledged entries: {} of {acked}",
        got.len()
    );
    for (k, (i, p)) in got.iter().enumerate() {
        assert_eq!(*i, k as u64 + 1);
        assert_eq!(p, &payload(*i), "entry {i}");
    }
}

/// The disk fills at every point of a few segments' worth of writes
/// (mid-record, mid-preallocation, at a segment roll).
#[test]
fn wal_full_at_any_byte_loses_nothing_acknowledged() {
    for limit in (0..3 * SEG + 4096).step_by(1499) {
        for power_loss in [false, true] {
            let fs = SimFs::new();
            let mut wal = open(&fs, small(SEG));
            fs.fill_after(limit);
            let acked = fill(&mut wal, 1);
            drop(wal);
            // Space comes back (an operator freed some), then a restart.
            let fs = if power_loss { fs.crash() } else { fs };
            fs.free_space();
            let mut wal = Wal::open(fs.clone(), dir(), small(SEG))
                .unwrap_or_else(|e| panic!("limit {limit}: reopen refused: {e}"))
                .0;
            check_prefix(&mut wal, acked);
            // And it writes again.
            let next = wal.last_index().map_or(1, |l| l + 1);
            wal.append_entry(next, &payload(next)).unwrap();
            wal.sync().unwrap();
            drop(wal);
            let mut wal = open(&fs.crash(), small(SEG));
            check_prefix(&mut wal, next);
        }
    }
}

/// Through the group commit thread: the waiting appenders get the error
/// (no hang), later ones too, and the log reopens with what was acked.
#[test]
fn group_commit_reports_a_full_disk_to_every_waiter() {
    let fs = SimFs::new();
    let wal = open(&fs, small(SEG));
    let (gc, worker) = GroupCommit::start(wal);
    let mut acked = 0;
    for i in 1..=20 {
        gc.commit_blocking(vec![Op::Entry {
            index: i,
            payload: payload(i),
        }])
        .unwrap();
        acked = i;
    }
    fs.fill_after(3000);
    let mut failed = None;
    for i in acked + 1..acked + 500 {
        let r = gc.commit_blocking(vec![Op::Entry {
            index: i,
            payload: payload(i),
        }]);
        match r {
            Ok(_) => acked = i,
            Err(e) => {
                failed = Some((i, e));
                break;
            }
        }
    }
    let (i, e) = failed.expect("3000 bytes of space never ran out");
    assert!(is_enospc(&e), "{e:?}");
    let later = gc.commit_blocking(vec![Op::Entry {
        index: i + 1,
        payload: payload(i + 1),
    }]);
    assert!(later.is_err(), "a write after the failure was acknowledged");
    drop(gc);
    drop(worker.join());
    let fs = fs.crash();
    let mut wal = open(&fs, small(SEG));
    check_prefix(&mut wal, acked);
}

/// A snapshot that does not fit fails cleanly: no file (not even its
/// temp file), the previous snapshot still loads, also after a crash;
/// with space back the same snapshot saves.
#[test]
fn snapshot_write_on_a_full_disk_leaves_the_previous_one() {
    let fs = SimFs::new();
    let snap_dir = Path::new("/data/member/snap");
    let snaps = SnapStore::open(fs.clone(), snap_dir).unwrap();
    let old = vec![7u8; 10_000];
    snaps.save_with(1, 10, |w| w.write_all(&old)).unwrap();
    let big = vec![9u8; 200_000];
    for limit in [0, 100, 4096, 70_000, 199_999] {
        fs.fill_after(limit);
        let e = snaps.save_with(1, 20, |w| w.write_all(&big)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "limit {limit}: {e}");
        fs.free_space();
        let names = fs.list(snap_dir).unwrap();
        assert_eq!(
            names,
            vec![format!("{:016x}-{:016x}.snap", 1, 10)],
            "limit {limit}"
        );
        for view in [fs.clone(), fs.crash()] {
            let s = SnapStore::open(view.clone(), snap_dir).unwrap();
            let newest = s.load_newest_valid().unwrap().expect("old snapshot");
            assert_eq!((newest.term, newest.index), (1, 10));
            let data = view.contents(&newest.path).unwrap();
            let at = newest.payload_offset as usize;
            assert_eq!(&data[at..at + newest.payload_len as usize], &old[..]);
        }
    }
    let f = snaps.save_with(1, 20, |w| w.write_all(&big)).unwrap();
    let s = SnapStore::open(fs.crash(), snap_dir).unwrap();
    assert_eq!(s.load_newest_valid().unwrap().unwrap().index, f.index);
}
