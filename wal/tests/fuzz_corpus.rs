//! Replays the fuzz seed corpus (`fuzz/corpus/wal_record/`) through the
//! record decoder: no input may panic it, and each seed decodes as its
//! name says (`valid-*` to at least one record, `bad-*` to an error at the
//! start). Regenerate the seeds with `FERROCD_WRITE_CORPUS=1`.

use std::path::PathBuf;

use ferrocd_wal::record::{self, Kind};

#[path = "../../fuzz/corpus_replay.rs"]
mod corpus_replay;

fn corpus_dir() -> PathBuf {
    corpus_replay::dir(env!("CARGO_MANIFEST_DIR"), "wal_record")
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut one = Vec::new();
    let c = record::encode(&mut one, Kind::Crc, 0, &0u32.to_le_bytes(), 0);
    let mut chain = one.clone();
    let c = record::encode(&mut chain, Kind::Meta, 1, b"vote", c);
    record::encode(&mut chain, Kind::Entry, 7, &[0xab; 300], c);
    let mut entry = Vec::new();
    record::encode(&mut entry, Kind::Entry, 1, b"hello", 0);
    let mut truncate = Vec::new();
    record::encode(&mut truncate, Kind::Truncate, 5, &[], 0);
    let mut reset = Vec::new();
    record::encode(&mut reset, Kind::Reset, 1_000_001, &[], 0);
    let mut bad_type = entry.clone();
    bad_type[4] = 0x7f;
    let mut huge = entry.clone();
    huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut bad_pad = entry.clone();
    let last = bad_pad.len() - 1;
    bad_pad[last] = 1;
    vec![
        ("valid-crc", one),
        ("valid-chain", chain),
        ("valid-entry", entry.clone()),
        ("valid-truncate", truncate),
        ("valid-reset", reset),
        ("bad-type", bad_type),
        ("bad-huge-len", huge),
        ("bad-padding", bad_pad),
        ("bad-short", entry[..10].to_vec()),
    ]
}

#[test]
fn corpus_replays_without_panics() {
    corpus_replay::replay(&corpus_dir(), &seeds(), |name, data| {
        let first = record::decode(data);
        if name.starts_with("valid-") {
            assert!(first.is_ok(), "{name}: {first:?}");
        } else if name.starts_with("bad-") {
            assert!(first.is_err(), "{name} decoded");
        }
        // Walk the whole input as the fuzz target does.
        let mut off = 0;
        while off < data.len() {
            off += match record::decode(&data[off..]) {
                Ok((_, used)) => used,
                Err(_) => 8,
            };
        }
    });
}
