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

fn names(fs: &SimFs) -> Vec<SegmentName> {
    segments(fs)
        .iter()
        .map(|p| SegmentName::parse(p.file_name().unwrap().to_str().unwrap()).unwrap())
        .collect()
}

/// A follower far behind installs a snapshot: reset below the names of the
/// segments it has (so a later name carries a lower index than an earlier
/// one), keep appending across rolls, purge behind the snapshot, lose
/// power, reopen; then the same with a reset far above.
#[test]
fn reset_purge_and_reopen() {
    for to in [30u64, 5_000] {
        let fs = SimFs::new();
        let mut wal = open(&fs, small(1024));
        for i in 1..=100u64 {
            wal.append_entry(i, &payload(i)).unwrap();
        }
        wal.append_meta(3, b"vote").unwrap();
        wal.sync().unwrap();
        let old_segments = segments(&fs).len();
        wal.reset_to(to).unwrap();
        for i in to..to + 60 {
            wal.append_entry(i, &payload(i)).unwrap();
        }
        wal.sync().unwrap();
        let n = names(&fs);
        for (k, name) in n.iter().enumerate() {
            assert_eq!(
                name.seq, k as u64,
                "{to}: names stay parseable, seq gapless"
            );
        }
        assert!(n.len() > old_segments + 2, "{to}: rolled after the reset");
        // The reset lands in the old tail, or in a new segment when the
        // tail has no room left for it and its write's batch header.
        let at = reset_segment(&fs, to);
        assert!(at == old_segments - 1 || at == old_segments, "{to}: {at}");
        // The first segment opened after the reset is named after it.
        assert_eq!(n[at + 1].index, to + wal_entries_in(&fs, at, to));
        if to < 100 {
            assert!(n[at + 1].index < n[at].index);
        }

        // Nothing at or after the reset goes, whatever the names say.
        // (The one holding the reset goes too when no new entry fit in it.)
        let emptied = at + usize::from(wal_entries_in(&fs, at, to) == 0);
        let removed = wal.purge_before(to).unwrap();
        assert_eq!(
            removed, emptied,
            "{to}: every segment only the reset emptied"
        );
        assert_eq!(wal.first_index(), Some(to));
        let want: Vec<_> = (to..to + 60).map(|i| (i, payload(i))).collect();
        assert_eq!(all_entries(&mut wal), want);
        drop(wal);

        let fs = fs.crash();
        let (mut w, rec) = Wal::open(fs.clone(), dir(), small(1024)).unwrap();
        assert_eq!(
            (rec.first_index, rec.last_index, rec.next_index),
            (Some(to), Some(to + 59), Some(to + 60))
        );
        assert_eq!(rec.meta.get(&3).map(Vec::as_slice), Some(&b"vote"[..]));
        assert_eq!(all_entries(&mut w), want);
        assert!(matches!(
            w.entries(to - 1, to),
            Err(ferrocd_wal::ReadError::NotFound(_))
        ));
        // Purge further, past segments holding new entries, and reopen.
        assert!(w.purge_before(to + 40).unwrap() > 0);
        let first = w.first_index().unwrap();
        assert!(first > to && first <= to + 40);
        drop(w);
        let mut w = open(&fs.crash(), small(1024));
        assert_eq!(all_entries(&mut w), want[(first - to) as usize..]);
        w.append_entry(to + 60, b"more").unwrap();
        w.sync().unwrap();
    }
}

/// The segment holding the reset record to `to`.
fn reset_segment(fs: &SimFs, to: u64) -> usize {
    (0..segments(fs).len())
        .find(|k| {
            let data = fs.contents(&segments(fs)[*k]).unwrap();
            let mut off = 0;
            while let Ok((rec, used)) = ferrocd_wal::record::decode(&data[off..]) {
                if rec.kind == ferrocd_wal::record::Kind::Reset && rec.index == to {
                    return true;
                }
                off += used;
            }
            false
        })
        .expect("a segment holds the reset")
}

/// Entries `>= to` the segment `seq` holds (those appended after the reset
/// in the segment that holds it), read back from its records.
fn wal_entries_in(fs: &SimFs, seq: usize, to: u64) -> u64 {
    let data = fs.contents(&segments(fs)[seq]).unwrap();
    let (mut off, mut after_reset, mut n) = (0, false, 0);
    while let Ok((rec, used)) = ferrocd_wal::record::decode(&data[off..]) {
        match rec.kind {
            ferrocd_wal::record::Kind::Reset => after_reset = rec.index == to,
            ferrocd_wal::record::Kind::Entry if after_reset => n += 1,
            _ => {}
        }
        off += used;
    }
    n
}

/// The oldest live segment holds no entry and no reset record (the reset
/// and everything before it were purged): recovery starts from its name,
/// so the log still continues at the reset's index.
#[test]
fn reset_then_only_metadata_then_purge_keeps_the_next_index() {
    let fs = SimFs::new();
    let mut wal = open(&fs, small(1024));
    for i in 1..=20u64 {
        wal.append_entry(i, &payload(i)).unwrap();
    }
    wal.reset_to(777).unwrap();
    // Metadata only, until the log rolls twice.
    let mut k = 0u8;
    while segments(&fs).len() < 5 {
        wal.append_meta(1, &[k; 200]).unwrap();
        wal.sync().unwrap();
        k = k.wrapping_add(1);
    }
    wal.purge_before(0).unwrap();
    assert_eq!(segments(&fs).len(), 2);
    assert_eq!(names(&fs)[0].index, 777);
    drop(wal);
    let (mut w, rec) = Wal::open(fs.crash(), dir(), small(1024)).unwrap();
    assert_eq!(
        (rec.first_index, rec.last_index, rec.next_index),
        (None, Some(776), Some(777))
    );
    assert!(w.append_entry(21, b"x").is_err());
    w.append_entry(777, b"x").unwrap();
}
