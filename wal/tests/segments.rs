//! Rolling across many segments, names, gap detection, purging.

mod common;

use common::*;
use ferrocd_wal::{Fs, OpenError, SegmentName, SimFs, Wal};

#[test]
fn rollover_names_and_reopen() {
    let fs = SimFs::new();
    let mut wal = open(&fs, small(2048));
    for i in 1..=500u64 {
        wal.append_entry(i, &payload(i)).unwrap();
        if i % 10 == 0 {
            wal.sync().unwrap();
        }
    }
    wal.sync().unwrap();
    let names: Vec<SegmentName> = segments(&fs)
        .iter()
        .map(|p| SegmentName::parse(p.file_name().unwrap().to_str().unwrap()).unwrap())
        .collect();
    assert!(names.len() > 20, "{} segments", names.len());
    for (k, n) in names.iter().enumerate() {
        assert_eq!(n.seq, k as u64);
    }
    assert_eq!(names[0].index, 0);
    drop(wal);
    let mut w = open(&fs, small(2048));
    let got = all_entries(&mut w);
    assert_eq!(got.len(), 500);
    // Each segment is named after the first index it was opened for, and
    // holds it.
    for n in &names[1..] {
        assert!(n.index >= 1 && n.index <= 500);
        assert_eq!(w.entries(n.index, n.index).unwrap()[0].1, payload(n.index));
    }
}

#[test]
fn missing_segment_is_detected() {
    let fs = SimFs::new();
    let mut wal = open(&fs, small(1024));
    for i in 1..=100u64 {
        wal.append_entry(i, &payload(i)).unwrap();
    }
    wal.sync().unwrap();
    drop(wal);
    let segs = segments(&fs);
    fs.remove(&segs[3]).unwrap();
    assert!(matches!(
        Wal::open(fs.clone(), dir(), small(1024)),
        Err(OpenError::MissingSegment { .. })
    ));
}

#[test]
fn index_gap_in_a_segment_name_is_detected() {
    let fs = SimFs::new();
    let mut wal = open(&fs, small(1024));
    for i in 1..=100u64 {
        wal.append_entry(i, &payload(i)).unwrap();
    }
    wal.sync().unwrap();
    drop(wal);
    let segs = segments(&fs);
    let victim = &segs[4];
    let mut n = SegmentName::parse(victim.file_name().unwrap().to_str().unwrap()).unwrap();
    n.index += 3;
    fs.rename(victim, &dir().join(n.file_name())).unwrap();
    match Wal::open(fs.clone(), dir(), small(1024)) {
        Err(OpenError::IndexGap {
            expected, found, ..
        }) => assert_eq!(found, expected + 3),
        other => panic!("expected IndexGap, got {other:?}"),
    }
}

#[test]
fn purge_keeps_the_newest_and_everything_at_or_after_the_index() {
    let fs = SimFs::new();
    let mut wal = open(&fs, small(1024));
    for i in 1..=200u64 {
        wal.append_entry(i, &payload(i)).unwrap();
    }
    wal.append_meta(7, b"vote").unwrap();
    wal.sync().unwrap();
    let before = segments(&fs).len();
    let removed = wal.purge_before(150).unwrap();
    assert!(removed > 0);
    assert_eq!(segments(&fs).len(), before - removed);
    let first = wal.first_index().unwrap();
    assert!(first <= 150, "entries at or after the purge index stay");
    assert_eq!(wal.entries(first, 200).unwrap().len() as u64, 201 - first);
    // Purge never goes below keep_segments (2 here).
    wal.purge_before(u64::MAX).unwrap();
    assert_eq!(segments(&fs).len(), 2);
    // Metadata survives purging (copied into every new segment) and a
    // power loss (the purge synced the directory).
    drop(wal);
    let (mut w, rec) = Wal::open(fs.crash(), dir(), small(1024)).unwrap();
    assert_eq!(rec.meta.get(&7).map(Vec::as_slice), Some(&b"vote"[..]));
    assert_eq!(all_entries(&mut w).last().unwrap().0, 200);
}

#[test]
fn truncate_then_append_survives_reopen() {
    let fs = SimFs::new();
    let mut wal = open(&fs, small(1024));
    for i in 1..=50u64 {
        wal.append_entry(i, &payload(i)).unwrap();
    }
    wal.sync().unwrap();
    wal.truncate_from(20).unwrap();
    assert_eq!(wal.last_index(), Some(19));
    assert!(wal.append_entry(21, b"gap").is_err());
    for i in 20..=30u64 {
        wal.append_entry(i, format!("new {i}").as_bytes()).unwrap();
    }
    wal.sync().unwrap();
    drop(wal);
    let mut w = open(&fs.crash(), small(1024));
    let got = all_entries(&mut w);
    assert_eq!(got.len(), 30);
    assert_eq!(got[18].1, payload(19));
    assert_eq!(got[19].1, b"new 20");
}
