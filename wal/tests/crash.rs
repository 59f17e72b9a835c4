//! Crash recovery: torn tails cut at every byte, garbage and zero fills,
//! power loss through SimFs, and corruption in the middle refused with the
//! file and offset.

mod common;

use common::*;
use ferrocd_wal::{Fault, OpenError, SimFs, Wal, WriteError};

/// Write `acked` entries durably, then 4 more in one final write whose
/// fdatasync never returned: the tail segment is zero-filled (or
/// garbage-filled) from every byte offset inside that write. A crash
/// leaves whole 512-byte sectors of the write zero, so a zero fill from a
/// sector boundary is a torn write (the whole write is cut; every earlier
/// entry stays) and anything else is corruption (refused, nothing
/// changed); see `last_batch.rs` for every damage of every byte.
#[test]
fn torn_tail_at_every_offset_keeps_every_acknowledged_entry() {
    for fill in [0u8, 1u8] {
        let fs = SimFs::new();
        let mut wal = open(&fs, small(16 << 10));
        let acked = 20u64;
        for i in 1..=acked {
            wal.append_entry(i, &payload(i)).unwrap();
            if i % 3 == 0 {
                wal.sync().unwrap();
            }
        }
        wal.sync().unwrap();
        let tail = segments(&fs).pop().unwrap();
        let end_acked = wal_end(&fs.contents(&tail).unwrap());
        for i in acked + 1..=acked + 4 {
            wal.append_entry(i, &payload(i)).unwrap();
        }
        wal.sync().unwrap();
        let full = fs.contents(&tail).unwrap();
        let end_all = wal_end(&full);
        drop(wal);

        let (mut cut_whole, mut refused) = (0, 0);
        for cut in end_acked..=end_all {
            let img = filled(&full, cut, fill);
            // Everything was synced, so the crash image is a full copy.
            let fs2 = fs.crash();
            fs2.set_contents(&tail, img.clone()).unwrap();
            let Some(mut w) = open_or_refused(&fs2, &tail, &img, &full, end_acked, cut) else {
                refused += 1;
                continue;
            };
            let got = all_entries(&mut w);
            let want = if img == full { acked + 4 } else { acked };
            cut_whole += usize::from(img != full);
            let expect: Vec<_> = (1..=want).map(|i| (i, payload(i))).collect();
            assert_eq!(got, expect, "cut {cut} fill {fill}");
            // The log keeps working after recovery.
            let next = want + 1;
            w.append_entry(next, b"after").unwrap();
            w.sync().unwrap();
            drop(w);
            let mut w = open(&fs2, small(16 << 10));
            assert_eq!(w.last_index(), Some(next), "cut {cut}");
            assert_eq!(w.entries(next, next).unwrap()[0].1, b"after");
        }
        if fill == 0 {
            assert!(cut_whole > 0 && refused > 0, "{cut_whole} {refused}");
        } else {
            assert_eq!(
                refused,
                end_all - end_acked + 1,
                "garbage is never a torn write"
            );
        }
    }
}

/// `full` with every byte from `cut` on zeroed (`fill` 0) or replaced by
/// nonzero garbage.
fn filled(full: &[u8], cut: usize, fill: u8) -> Vec<u8> {
    let mut img = full.to_vec();
    for (k, b) in img[cut..].iter_mut().enumerate() {
        *b = if fill == 0 {
            0
        } else {
            (k as u8).wrapping_mul(151).wrapping_add(7) | 1
        };
    }
    img
}

/// Open the damaged image; `None` when it is refused, which must be
/// exactly when the damage is not shaped like a torn write (a sector of
/// the write neither as written nor all zero), with the tail's
/// name and an offset inside the last write, and nothing changed.
fn open_or_refused(
    fs: &SimFs,
    tail: &std::path::Path,
    img: &[u8],
    full: &[u8],
    start: usize,
    cut: usize,
) -> Option<Wal<SimFs>> {
    // Every 512-byte sector from the write's start holds what was written
    // or nothing but zeros.
    let torn_shape = (start / 512..full.len().div_ceil(512)).all(|k| {
        let part = (k * 512).max(start)..((k + 1) * 512).min(full.len());
        img[part.clone()] == full[part.clone()] || img[part].iter().all(|b| *b == 0)
    });
    match Wal::open(fs.clone(), dir(), small(16 << 10)) {
        Ok((w, _)) => {
            assert!(torn_shape, "cut {cut}: damage accepted as torn");
            Some(w)
        }
        Err(OpenError::Corrupt { file, offset, .. }) => {
            assert!(!torn_shape, "cut {cut}: a torn write refused");
            assert_eq!(file, tail);
            assert!(offset >= start as u64, "cut {cut}: offset {offset}");
            assert_eq!(
                fs.contents(tail).unwrap(),
                img,
                "a refused open changes nothing"
            );
            None
        }
        Err(e) => panic!("cut {cut}: {e}"),
    }
}

#[test]
fn power_loss_keeps_every_synced_entry() {
    let fs = SimFs::new();
    let mut wal = open(&fs, small(4096));
    let mut synced = 0;
    for i in 1..=300u64 {
        wal.append_entry(i, &payload(i)).unwrap();
        if i % 7 == 0 {
            synced = wal.sync().unwrap().unwrap();
        }
    }
    assert!(segments(&fs).len() > 5, "rolled across segments");
    let after = fs.crash();
    let mut w = open(&after, small(4096));
    let got = all_entries(&mut w);
    // Rolling syncs the old segment, so more than `synced` may survive, but
    // never less, and only whole entries that were written.
    assert!(got.len() as u64 >= synced);
    assert!(got.len() <= 300);
    for (n, (i, p)) in got.iter().enumerate() {
        assert_eq!((*i, p), (n as u64 + 1, &payload(n as u64 + 1)));
    }
}

#[test]
fn a_new_log_survives_power_loss_right_after_open() {
    let fs = SimFs::new();
    let (mut wal, rec) = Wal::open(fs.clone(), dir(), small(4096)).unwrap();
    assert_eq!(rec.last_index, None);
    wal.append_meta(1, b"vote").unwrap();
    wal.append_entry(1, b"one").unwrap();
    wal.sync().unwrap();
    // Every directory on the path was synced with its parent.
    let (mut w, rec) = Wal::open(fs.crash(), dir(), small(4096)).unwrap();
    assert_eq!(rec.meta.get(&1).map(Vec::as_slice), Some(&b"vote"[..]));
    assert_eq!(all_entries(&mut w), vec![(1, b"one".to_vec())]);
}

#[test]
fn bit_flip_in_the_middle_is_refused_with_file_and_offset() {
    // In an older segment, and in the last segment with records after it.
    for which in ["older", "last"] {
        let fs = SimFs::new();
        let mut wal = open(&fs, small(if which == "older" { 2048 } else { 1 << 20 }));
        // Acknowledged in several syncs, as a running node writes.
        for i in 1..=60u64 {
            wal.append_entry(i, &payload(i)).unwrap();
            if i % 5 == 0 {
                wal.sync().unwrap();
            }
        }
        drop(wal);
        let segs = segments(&fs);
        let victim = if which == "older" {
            segs[0].clone()
        } else {
            segs.last().unwrap().clone()
        };
        let mut data = fs.contents(&victim).unwrap();
        let at = 700; // inside some record's payload, records follow
        data[at] ^= 0x10;
        fs.set_contents(&victim, data.clone()).unwrap();
        let before: Vec<Vec<u8>> = segs.iter().map(|p| fs.contents(p).unwrap()).collect();
        match Wal::open(fs.clone(), dir(), small(2048)) {
            Err(OpenError::Corrupt {
                file,
                offset,
                expected,
                found,
                ..
            }) => {
                assert_eq!(file, victim, "{which}");
                assert!(
                    offset <= at as u64 && at as u64 - offset < 400,
                    "{which}: offset {offset}"
                );
                assert_ne!(expected, found);
                let msg = OpenError::Corrupt {
                    file,
                    offset,
                    reason: String::new(),
                    expected,
                    found,
                }
                .to_string();
                assert!(
                    msg.contains(&victim.display().to_string())
                        && msg.contains(&format!("offset {offset}")),
                    "{msg}"
                );
            }
            other => panic!("{which}: expected Corrupt, got {other:?}"),
        }
        let after: Vec<Vec<u8>> = segs.iter().map(|p| fs.contents(p).unwrap()).collect();
        assert_eq!(before, after, "{which}: a refused open rewrites nothing");
    }
}

#[test]
fn flipped_length_field_in_the_last_segment_is_still_corruption() {
    let fs = SimFs::new();
    let mut wal = open(&fs, small(1 << 20));
    for i in 1..=30u64 {
        wal.append_entry(i, &payload(i)).unwrap();
        wal.sync().unwrap();
    }
    drop(wal);
    let seg = segments(&fs).pop().unwrap();
    let mut data = fs.contents(&seg).unwrap();
    // Find the 10th record header and damage its length.
    let mut off = 0;
    for _ in 0..10 {
        let (_, n) = ferrocd_wal::record::decode(&data[off..]).unwrap();
        off += n;
    }
    data[off] ^= 0x40;
    fs.set_contents(&seg, data).unwrap();
    assert!(
        matches!(Wal::open(fs.clone(), dir(), small(1 << 20)), Err(OpenError::Corrupt { offset, .. }) if offset == off as u64)
    );
}

#[test]
fn failures_stick_until_reopen() {
    let fs = SimFs::new();
    let mut wal = open(&fs, small(1 << 20));
    wal.append_entry(1, b"a").unwrap();
    wal.sync().unwrap();
    wal.append_entry(2, b"b").unwrap();
    fs.inject(Fault::Sync(libc::EIO));
    assert!(matches!(wal.sync(), Err(WriteError::Io(e)) if e.raw_os_error() == Some(libc::EIO)));
    assert!(matches!(wal.append_entry(3, b"c"), Err(WriteError::Failed)));
    assert!(matches!(wal.sync(), Err(WriteError::Failed)));
    drop(wal);
    // After a power loss only entry 1 is certain; reopen works.
    let mut w = open(&fs.crash(), small(1 << 20));
    assert_eq!(all_entries(&mut w)[0], (1, b"a".to_vec()));
    fs.inject(Fault::Write(libc::ENOSPC));
    let mut w2 = open(&fs, small(1 << 20));
    let next = w2.last_index().unwrap() + 1;
    w2.append_entry(next, b"x").unwrap();
    assert!(matches!(w2.sync(), Err(WriteError::Io(e)) if e.raw_os_error() == Some(libc::ENOSPC)));
    assert!(matches!(
        w2.append_entry(next + 1, b"y"),
        Err(WriteError::Failed)
    ));
}

/// A write that never finished its fdatasync may reach the disk out of
/// order: a middle page lost (zeros) while later pages are present. No ack
/// marker follows (the next write never started), so it is a torn tail:
/// the log opens with every acknowledged entry.
#[test]
fn lost_middle_page_of_an_unacknowledged_write_is_a_torn_tail() {
    let fs = SimFs::new();
    let mut wal = open(&fs, small(64 << 10));
    for i in 1..=10u64 {
        wal.append_entry(i, &payload(i)).unwrap();
        wal.sync().unwrap();
    }
    let seg = segments(&fs).pop().unwrap();
    let acked_end = fs
        .contents(&seg)
        .unwrap()
        .iter()
        .rposition(|b| *b != 0)
        .unwrap()
        + 1;
    for i in 11..=60u64 {
        wal.append_entry(i, &[i as u8 | 1; 180]).unwrap();
    }
    wal.sync().unwrap();
    drop(wal);
    let mut data = fs.contents(&seg).unwrap();
    let page = (acked_end / 4096 + 1) * 4096;
    data[page..page + 4096].fill(0);
    fs.set_contents(&seg, data).unwrap();
    let mut w = open(&fs, small(64 << 10));
    let got = all_entries(&mut w);
    assert!(got.len() >= 10 && got.len() < 60, "{}", got.len());
    assert_eq!(got[9], (10, payload(10)));
}

/// A zeroed record header inside acknowledged data (an ack marker comes
/// after it) must not silently end the log there.
#[test]
fn zeroed_header_inside_acknowledged_data_is_refused() {
    let fs = SimFs::new();
    let mut wal = open(&fs, small(64 << 10));
    for i in 1..=20u64 {
        wal.append_entry(i, &payload(i)).unwrap();
        wal.sync().unwrap();
    }
    drop(wal);
    let seg = segments(&fs).pop().unwrap();
    let mut data = fs.contents(&seg).unwrap();
    let mut off = 0;
    for _ in 0..8 {
        off += ferrocd_wal::record::decode(&data[off..]).unwrap().1;
    }
    data[off..off + 24].fill(0);
    fs.set_contents(&seg, data).unwrap();
    match Wal::open(fs.clone(), dir(), small(64 << 10)) {
        Err(OpenError::Corrupt { offset, .. }) => assert_eq!(offset, off as u64),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// What a reopened log holds: its entries and the index the next one must
/// have.
fn state(wal: &mut Wal<SimFs>) -> (Vec<(u64, Vec<u8>)>, Option<u64>) {
    (all_entries(wal), wal.next_index())
}

/// A script of appends, resets (below and above the end, buffered and
/// synced) and syncs. `Sync` is an acknowledgement point.
#[derive(Debug, Clone, Copy)]
enum Step {
    Append(u64),
    Reset(u64),
    ResetSynced(u64),
    Sync,
}

fn reset_script() -> Vec<Step> {
    use Step::*;
    let mut s = vec![];
    s.extend((1..=12).map(Append));
    s.push(Sync);
    s.extend([Reset(5), Append(5), Append(6), Sync]);
    s.extend([Append(7), Reset(900), Append(900), Sync]);
    s.extend([ResetSynced(3), Append(3)]);
    s.extend([Reset(1), Reset(40), Append(40), Append(41), Sync]);
    s.extend((42..=60).map(Append));
    s.push(Sync);
    s
}

/// Run `script`; after every step (and, with `fail_sync_at`, instead of
/// that sync, which fails with EIO) take the image a power loss leaves and
/// check the reopened log against the model: with big segments (no early
/// syncs by a roll) it is exactly the last acknowledged state; with small
/// ones a state since then.
fn run_reset_script(segment_size: u64, fail_sync_at: Option<usize>) {
    let cfg = small(segment_size);
    let fs = SimFs::new();
    let mut wal = open(&fs, cfg.clone());
    let mut entries: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut next: Option<u64> = None;
    let mut since_ack = vec![(entries.clone(), next)];
    let mut syncs = 0;
    for (n, step) in reset_script().into_iter().enumerate() {
        let mut acked = false;
        match step {
            Step::Append(i) => {
                wal.append_entry(i, &payload(i)).unwrap();
                entries.push((i, payload(i)));
                next = Some(i + 1);
            }
            Step::Reset(to) | Step::ResetSynced(to) => {
                entries.clear();
                next = Some(to);
                if matches!(step, Step::ResetSynced(_)) {
                    syncs += 1;
                    if fail_sync_at == Some(syncs) {
                        fs.inject(Fault::Sync(libc::EIO));
                        assert!(wal.reset_to(to).is_err());
                    } else {
                        wal.reset_to(to).unwrap();
                        acked = true;
                    }
                } else {
                    wal.reset_buffered(to).unwrap();
                }
            }
            Step::Sync => {
                syncs += 1;
                if fail_sync_at == Some(syncs) {
                    fs.inject(Fault::Sync(libc::EIO));
                    assert!(wal.sync().is_err());
                } else {
                    wal.sync().unwrap();
                    acked = true;
                }
            }
        }
        if acked {
            since_ack.clear();
        }
        since_ack.push((entries.clone(), next));
        let mut after = open(&fs.crash(), cfg.clone());
        let got = state(&mut after);
        if segment_size >= 1 << 20 {
            assert_eq!(
                got, since_ack[0],
                "step {n} {step:?}: not the acknowledged state"
            );
        } else {
            assert!(
                since_ack.contains(&got),
                "step {n} {step:?}: {got:?} is not a state since the last acknowledgement"
            );
        }
        if fail_sync_at == Some(syncs) {
            return; // the log refuses writes now; the crash image was checked
        }
    }
    assert!(fail_sync_at.is_none(), "the script has fewer syncs");
}

#[test]
fn reset_power_loss_after_every_step() {
    for size in [1 << 20, 1024, 512] {
        run_reset_script(size, None);
    }
}

/// Every sync of the script fails in turn (EIO: nothing becomes durable);
/// a power loss then leaves exactly what was acknowledged before it.
#[test]
fn reset_failed_sync_at_every_sync_point() {
    let syncs = reset_script()
        .iter()
        .filter(|s| matches!(s, Step::Sync | Step::ResetSynced(_)))
        .count();
    for k in 1..=syncs {
        run_reset_script(1 << 20, Some(k));
    }
}

/// Acknowledged entries 1..=20, then one write holding a reset and four
/// entries after it, cut at every byte (zero- or garbage-filled after the
/// cut). The log reopens either without the reset (and without any entry
/// after it: a torn write is cut whole) or, undamaged, with all of it; or
/// it refuses damage that is not a torn write.
#[test]
fn torn_reset_batch_at_every_offset() {
    for to in [5u64, 1000] {
        for fill in [0u8, 1u8] {
            let fs = SimFs::new();
            let mut wal = open(&fs, small(16 << 10));
            for i in 1..=20u64 {
                wal.append_entry(i, &payload(i)).unwrap();
            }
            wal.sync().unwrap();
            let tail = segments(&fs).pop().unwrap();
            let end_acked = wal_end(&fs.contents(&tail).unwrap());
            wal.reset_buffered(to).unwrap();
            for i in to..to + 4 {
                wal.append_entry(i, &payload(i)).unwrap();
            }
            wal.sync().unwrap();
            let full = fs.contents(&tail).unwrap();
            let end_all = wal_end(&full);
            drop(wal);

            let old: Vec<_> = (1..=20).map(|i| (i, payload(i))).collect();
            let mut states = vec![(old, Some(21))];
            for k in 0..=4 {
                let new: Vec<_> = (to..to + k).map(|i| (i, payload(i))).collect();
                states.push((new, Some(to + k)));
            }
            let mut reached = 0;
            for cut in end_acked..=end_all {
                let img = filled(&full, cut, fill);
                let fs2 = fs.crash();
                fs2.set_contents(&tail, img.clone()).unwrap();
                let Some(mut w) = open_or_refused(&fs2, &tail, &img, &full, end_acked, cut) else {
                    continue;
                };
                let got = state(&mut w);
                let at = states
                    .iter()
                    .position(|s| *s == got)
                    .unwrap_or_else(|| panic!("to {to} cut {cut} fill {fill}: {got:?}"));
                assert!(at >= reached, "to {to} cut {cut}: went back");
                reached = at;
                // The log keeps working after recovery.
                let next = got.1.unwrap();
                w.append_entry(next, b"after").unwrap();
                w.sync().unwrap();
                drop(w);
                let mut w = open(&fs2.crash(), small(16 << 10));
                assert_eq!(w.last_index(), Some(next), "to {to} cut {cut}");
                assert_eq!(w.entries(next, next).unwrap()[0].1, b"after");
            }
            if fill == 0 {
                assert_eq!(reached, states.len() - 1, "the whole write was read back");
            }
        }
    }
}

/// End of the data in a segment image, rounded up to the 8-byte record
/// alignment.
fn wal_end(data: &[u8]) -> usize {
    data.iter()
        .rposition(|b| *b != 0)
        .map_or(0, |p| p + 1)
        .div_ceil(8)
        * 8
}
