//! Issue #18: recovery cut what was provably not torn. A byte flipped in
//! the last record of a complete, acknowledged write was taken for a torn
//! tail (no ack marker followed it) and the entry silently dropped.
//!
//! Now every write carries a batch header with a crc per 512-byte sector,
//! and a crash can only leave whole sectors of the last write zero. This
//! test damages the last write of a log at EVERY byte offset, three ways:
//! (a) the file truncated there, (b) zeros from there to the end of its
//! 512-byte sector, (c) one bit flipped there; and checks each outcome
//! against the model: an image whose every sector of the write is as
//! written or all zero is recovered (undamaged: every entry; torn: the
//! write cut whole, every earlier entry kept), anything else is refused as
//! `Corrupt` naming the tail segment and the offset of the first damaged
//! record (or the batch header), with nothing changed. Every refused image
//! is then repaired (dry run, then applied) and must open with exactly the
//! entries before the damaged record. The counts are printed (and quoted
//! in docs/FORMAT.md).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use ferrocd_wal::{OpenError, RepairMode, SimFs, Wal, record, repair};

const SEG: u64 = 16 << 10;

/// A log of 10 acknowledged writes, then a last write of 3 entries (raft
/// indexes 31..=33, with a metadata record between them).
fn build() -> (SimFs, std::path::PathBuf, Vec<u8>, usize, usize) {
    let fs = SimFs::new();
    let mut wal = open(&fs, small(SEG));
    for i in 1..=30u64 {
        wal.append_entry(i, &payload(i)).unwrap();
        if i % 3 == 0 {
            wal.sync().unwrap();
        }
    }
    let tail = segments(&fs).pop().unwrap();
    let start = end_of_data(&fs.contents(&tail).unwrap());
    wal.append_entry(31, &[0x31; 300]).unwrap();
    wal.append_meta(7, b"vote").unwrap();
    wal.append_entry(32, &payload(32)).unwrap();
    wal.append_entry(33, &[0x33; 700]).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let full = fs.contents(&tail).unwrap();
    let end = end_of_data(&full);
    (fs, tail, full, start, end)
}

fn end_of_data(data: &[u8]) -> usize {
    data.iter()
        .rposition(|b| *b != 0)
        .map_or(0, |p| p + 1)
        .div_ceil(8)
        * 8
}

/// Start offsets of the last write's header and records, and the raft
/// index of each entry record.
fn layout(full: &[u8], start: usize, end: usize) -> Vec<(usize, Option<u64>)> {
    let mut out = Vec::new();
    let mut at = start;
    while at < end {
        let (rec, n) = record::decode(&full[at..]).unwrap();
        out.push((at, (rec.kind == record::Kind::Entry).then_some(rec.index)));
        at += n;
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Intact,
    TornCut,
    Refused,
}

/// The model's verdict on `img` (bytes past its end read as zeros).
fn model(img: &[u8], full: &[u8], start: usize, end: usize) -> Outcome {
    let at = |i: usize| img.get(i).copied().unwrap_or(0);
    if (start..full.len()).all(|i| at(i) == full[i]) {
        return Outcome::Intact;
    }
    let sectors_ok = (start / 512..end.div_ceil(512)).all(|k| {
        let part = (k * 512).max(start)..((k + 1) * 512).min(end);
        part.clone().all(|i| at(i) == full[i]) || part.clone().all(|i| at(i) == 0)
    });
    if sectors_ok {
        Outcome::TornCut
    } else {
        Outcome::Refused
    }
}

#[test]
fn issue_18_every_byte_of_the_last_write() {
    let (fs, tail, full, start, end) = build();
    let recs = layout(&full, start, end);
    assert!(recs.len() == 5, "header + 4 records: {recs:?}");
    let all: Vec<(u64, Vec<u8>)> = (1..=33u64)
        .map(|i| {
            let p = match i {
                31 => vec![0x31; 300],
                33 => vec![0x33; 700],
                _ => payload(i),
            };
            (i, p)
        })
        .collect();
    let mut table: BTreeMap<(&str, Outcome), usize> = BTreeMap::new();
    let mut repaired = 0;
    for how in ["truncate", "zero to sector end", "bit flip"] {
        for off in start..end {
            let mut img = full.clone();
            match how {
                "truncate" => img.truncate(off),
                "zero to sector end" => img[off..(off / 512 + 1) * 512].fill(0),
                _ => img[off] ^= 1 << (off % 8),
            }
            let want = model(&img, &full, start, end);
            *table.entry((how, want)).or_default() += 1;
            let fs2 = fs.crash();
            fs2.set_contents(&tail, img.clone()).unwrap();
            let ctx = format!("{how} at {off}");
            match (want, Wal::open(fs2.clone(), dir(), small(SEG))) {
                (Outcome::Intact, Ok((mut w, _))) => assert_eq!(all_entries(&mut w), all, "{ctx}"),
                (Outcome::TornCut, Ok((mut w, rec))) => {
                    assert_eq!(all_entries(&mut w), all[..30], "{ctx}");
                    assert!(rec.torn_bytes > 0 || how == "truncate", "{ctx}");
                    // The cut is durable and the log writes on.
                    w.append_entry(31, b"again").unwrap();
                    w.sync().unwrap();
                    drop(w);
                    let (mut w, _) = Wal::open(fs2.crash(), dir(), small(SEG)).unwrap();
                    assert_eq!(w.entries(31, 31).unwrap()[0].1, b"again", "{ctx}");
                }
                (
                    Outcome::Refused,
                    Err(OpenError::Corrupt {
                        file,
                        offset,
                        expected,
                        found,
                        ..
                    }),
                ) => {
                    assert_eq!(file, tail, "{ctx}");
                    // The first record (or the header) with a changed byte.
                    let first_diff = (start..end)
                        .find(|i| img.get(*i).copied().unwrap_or(0) != full[*i])
                        .unwrap();
                    let (rec_at, _) = *recs.iter().rev().find(|(a, _)| *a <= first_diff).unwrap();
                    assert_eq!(offset, rec_at as u64, "{ctx}");
                    assert!(expected != found || expected == 0, "{ctx}");
                    assert_eq!(fs2.contents(&tail).unwrap(), img, "{ctx}: nothing changed");
                    check_repair(&fs2, &tail, &img, &recs, rec_at, &all, &ctx);
                    repaired += 1;
                }
                (want, got) => panic!("{ctx}: model says {want:?}, recovery gave {got:?}"),
            }
        }
    }
    println!("last write: {} bytes at offset {start}", end - start);
    println!("| damage | recovered intact | torn, write cut | refused (corruption) |");
    println!("|---|---|---|---|");
    for how in ["truncate", "zero to sector end", "bit flip"] {
        let n = |o| table.get(&(how, o)).copied().unwrap_or(0);
        println!(
            "| {how} | {} | {} | {} |",
            n(Outcome::Intact),
            n(Outcome::TornCut),
            n(Outcome::Refused)
        );
    }
    // Every kind of outcome happens; every bit flip is refused.
    assert!(table.get(&("bit flip", Outcome::Refused)) == Some(&(end - start)));
    assert!(table.contains_key(&("truncate", Outcome::TornCut)));
    assert!(table.contains_key(&("zero to sector end", Outcome::Intact)));
    assert!(repaired > 0);
}

/// Repair a refused image: the dry run changes nothing and lists the
/// damaged record first; applied, the log opens with every entry before
/// the damaged record and none after.
fn check_repair(
    fs: &SimFs,
    tail: &Path,
    img: &[u8],
    recs: &[(usize, Option<u64>)],
    rec_at: usize,
    all: &[(u64, Vec<u8>)],
    ctx: &str,
) {
    let dry = repair(fs, Path::new(DIR), &small(SEG), RepairMode::DryRun).unwrap();
    let plan = dry.plan.expect("a plan");
    assert!(!dry.applied);
    assert_eq!(
        fs.contents(tail).unwrap(),
        img,
        "{ctx}: a dry run changes nothing"
    );
    assert_eq!(
        (plan.file.as_path(), plan.offset),
        (tail, rec_at as u64),
        "{ctx}"
    );
    // Entries kept: 1..=30 and those of the last write before the damage.
    let kept = 30
        + recs
            .iter()
            .filter(|(a, i)| *a < rec_at && i.is_some())
            .count() as u64;
    assert_eq!(plan.last_index_after, Some(kept), "{ctx}");
    let done = repair(fs, Path::new(DIR), &small(SEG), RepairMode::Apply).unwrap();
    assert!(done.applied && done.plan == Some(plan), "{ctx}");
    let (mut w, rec) = Wal::open(fs.crash(), dir(), small(SEG)).unwrap();
    assert_eq!(all_entries(&mut w), all[..kept as usize], "{ctx}");
    assert_eq!(rec.torn_bytes, 0, "{ctx}: repaired, nothing torn");
    assert!(
        repair(fs, Path::new(DIR), &small(SEG), RepairMode::DryRun)
            .unwrap()
            .plan
            .is_none(),
        "{ctx}"
    );
}

/// The process-level bug's shape in a SimFs image: 20 writes, one byte of
/// the last entry's payload flipped. Refused; repair drops exactly entry
/// 20; the log then opens with 19.
#[test]
fn issue_18_flipped_byte_in_the_last_entry() {
    let fs = SimFs::new();
    let mut wal = open(&fs, small(SEG));
    for i in 1..=20u64 {
        wal.append_entry(i, &payload(i)).unwrap();
        wal.sync().unwrap();
    }
    drop(wal);
    let tail = segments(&fs).pop().unwrap();
    let mut data = fs.contents(&tail).unwrap();
    let mut at = 0;
    let mut last = 0;
    while let Ok((rec, n)) = record::decode(&data[at..]) {
        if rec.kind == record::Kind::Entry {
            last = at;
        }
        at += n;
    }
    data[last + 24 + 3] ^= 0x20;
    fs.set_contents(&tail, data).unwrap();
    let err = Wal::open(fs.clone(), dir(), small(SEG)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&tail.display().to_string())
            && msg.contains(&format!("offset {last}"))
            && msg.contains("ferroctl wal repair"),
        "{msg}"
    );
    let plan = repair(&fs, Path::new(DIR), &small(SEG), RepairMode::Apply)
        .unwrap()
        .plan
        .unwrap();
    let dropped: Vec<_> = plan
        .dropped
        .iter()
        .filter_map(|d| d.entry_index())
        .collect();
    assert_eq!(dropped, [20]);
    assert_eq!(plan.last_index_after, Some(19));
    let (mut w, _) = Wal::open(fs.crash(), dir(), small(SEG)).unwrap();
    assert_eq!(all_entries(&mut w).len(), 19);
}
