//! Segments written by format v1 (before batch headers: the Crc record
//! first, an ack marker before every later write) still open: the
//! fixture in tests/data/v1 was written by the v1 code (10 writes of
//! entries 1..=40 with a vote, a truncate to 38 and a new entry 38, 4 KiB
//! segments). The first write after opening rolls to a new segment of
//! format v2; the v1 segments are read, never written.

mod common;

use std::path::Path;

use common::*;
use ferrocd_wal::{File, Fs, SimFs, Wal, record};

fn load() -> SimFs {
    let fs = SimFs::new();
    drop(open(&fs, small(4096)));
    for seg in segments(&fs) {
        fs.remove(&seg).unwrap();
    }
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v1");
    for name in [
        "0000000000000000-0000000000000000.wal",
        "0000000000000001-000000000000001e.wal",
    ] {
        let bytes = std::fs::read(data.join(name)).unwrap();
        let path = dir().join(name);
        let mut f = fs.create(&path).unwrap();
        f.write_and_sync(&bytes, 0).unwrap();
        fs.sync_dir(&dir()).unwrap();
    }
    fs
}

fn want() -> Vec<(u64, Vec<u8>)> {
    let mut v: Vec<_> = (1..=37u64).map(|i| (i, payload(i))).collect();
    v.push((38, b"thirty-eight again".to_vec()));
    v
}

#[test]
fn a_v1_log_opens_and_continues_in_a_v2_segment() {
    let fs = load();
    let (mut wal, rec) = Wal::open(fs.clone(), dir(), small(4096)).unwrap();
    assert_eq!(
        rec.meta.get(&1).map(Vec::as_slice),
        Some(&b"vote-term-3"[..])
    );
    assert_eq!(all_entries(&mut wal), want());
    let before = segments(&fs);
    let v1_tail = fs.contents(before.last().unwrap()).unwrap();
    wal.append_entry(39, b"v2").unwrap();
    wal.sync().unwrap();
    drop(wal);
    // A new segment, opened by a batch header; the v1 tail is untouched.
    let after = segments(&fs);
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(fs.contents(before.last().unwrap()).unwrap(), v1_tail);
    let first = fs.contents(after.last().unwrap()).unwrap();
    assert_eq!(record::decode(&first).unwrap().0.kind, record::Kind::Batch);
    let (mut wal, _) = Wal::open(fs.crash(), dir(), small(4096)).unwrap();
    let mut w = want();
    w.push((39, b"v2".to_vec()));
    assert_eq!(all_entries(&mut wal), w);
}
