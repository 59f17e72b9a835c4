//! Replays the fuzz seed corpus (`fuzz/corpus/etcd_wal_segment/`) through
//! etcd's WAL segment framing (`ferrocd_wal::etcd::check_segment`) as the
//! fuzz target does: no input may panic it, and each seed reads as its
//! name says: `valid-*` to records and a clean end, `empty-*` to no record
//! and a clean end, `torn-*` to a torn tail (what etcd truncates at
//! start-up), `bad-*` to an error. Regenerate the seeds with
//! `FERROCD_WRITE_CORPUS=1`.
//!
//! The segments are built here with a few lines of protobuf (the crate
//! keeps its record types private), plus the opening of a real etcd 3.5.1
//! segment.

use std::path::PathBuf;

use ferrocd_wal::etcd::{MAX_FRAME, check_segment, crc32c_update};

#[path = "../../fuzz/corpus_replay.rs"]
mod corpus_replay;
use corpus_replay::{bytes, hex, uint};

fn corpus_dir() -> PathBuf {
    corpus_replay::dir(env!("CARGO_MANIFEST_DIR"), "etcd_wal_segment")
}

/// The first 200 bytes of a segment written by etcd 3.5.1 (records at 0,
/// 16, 56, 80: crc, metadata, snapshot {0,0}, the bootstrap conf change),
/// copied from `wal/src/etcd/tests.rs`.
const REAL_35: &str = concat!(
    "04000000000000840804100000000000",
    "1f00000000000081080110c0eee05a1a16088df2f48ec1f7a6d7bd0110aaf4e5f599f3ebe7d10100",
    "0d00000000000083080510b6f7e4581a0408001000000000",
    "7000000000000000080210ad9c9084061a66080110011801225e08001000188df2f48ec1f7a6d7bd01224d",
    "7b226964223a31333636383033333135313137313930313730392c227065657255524c73223a5b22687474",
    "703a2f2f3132372e302e302e313a3233383031225d2c226e616d65223a226e31227d",
);

/// `(field, value)` pairs as a message of varint fields.
fn msg(fields: &[(u64, u64)]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(f, v) in fields {
        uint(&mut out, f, v);
    }
    out
}

/// One framed `walpb.Record {1 type, 2 crc, 3 data}`, as etcd's encoder
/// writes it: length field (pad flag in the top byte), record, zero pad.
fn frame(t: u64, crc: u32, data: &[u8]) -> Vec<u8> {
    let mut body = msg(&[(1, t), (2, u64::from(crc))]);
    if !data.is_empty() {
        bytes(&mut body, 3, data);
    }
    let len = body.len() as u64;
    let pad = (8 - len % 8) % 8;
    let field = if pad == 0 {
        len
    } else {
        len | ((0x80 | pad) << 56)
    };
    let mut out = field.to_le_bytes().to_vec();
    out.extend_from_slice(&body);
    out.resize(out.len() + pad as usize, 0);
    out
}

const METADATA: u64 = 1;
const ENTRY: u64 = 2;
const STATE: u64 = 3;
const CRC: u64 = 4;
const SNAPSHOT: u64 = 5;
const NODE: u64 = 0xbdae_9bbc_11dd_390d;
const CLUSTER: u64 = 0xd1cf_af99_9eb9_7a2a;

/// One segment as etcd writes it: a crc record carrying the running crc,
/// the metadata, then records chained by CRC-32C.
struct Segment {
    chain: u32,
    bytes: Vec<u8>,
    /// Offset of each record's length field.
    offsets: Vec<usize>,
}

impl Segment {
    /// A segment whose crc record carries `carried` (0 for segment 0).
    fn new(carried: u32) -> Self {
        let mut s = Self {
            chain: carried,
            bytes: Vec::new(),
            offsets: Vec::new(),
        };
        s.push(frame(CRC, carried, &[]));
        s.record(METADATA, &msg(&[(1, NODE), (2, CLUSTER)]))
    }

    fn push(&mut self, f: Vec<u8>) {
        self.offsets.push(self.bytes.len());
        self.bytes.extend_from_slice(&f);
    }

    fn record(mut self, t: u64, data: &[u8]) -> Self {
        self.chain = crc32c_update(self.chain, data);
        let f = frame(t, self.chain, data);
        self.push(f);
        self
    }

    /// raftpb.Entry {1 type (0 normal), 2 term, 3 index, 4 data}.
    fn entry(self, term: u64, index: u64, data: &[u8]) -> Self {
        let mut e = msg(&[(1, 0), (2, term), (3, index)]);
        bytes(&mut e, 4, data);
        self.record(ENTRY, &e)
    }

    /// raftpb.HardState {1 term, 2 vote, 3 commit}.
    fn state(self, term: u64, commit: u64) -> Self {
        self.record(STATE, &msg(&[(1, term), (2, NODE), (3, commit)]))
    }

    /// walpb.Snapshot {1 index, 2 term}.
    fn snapshot(self, index: u64, term: u64) -> Self {
        self.record(SNAPSHOT, &msg(&[(1, index), (2, term)]))
    }

    /// The bytes followed by `zeros` zero bytes (preallocated space).
    fn with_zeros(&self, zeros: usize) -> Vec<u8> {
        let mut b = self.bytes.clone();
        b.resize(b.len() + zeros, 0);
        b
    }
}

/// Segment 0 as etcd starts it, entries 1..=n of term 1, a state after
/// each.
fn first(n: u64) -> Segment {
    let mut s = Segment::new(0).snapshot(0, 0);
    for i in 1..=n {
        s = s.entry(1, i, format!("value-1-{i}").as_bytes()).state(1, i);
    }
    s
}

fn with(mut base: Vec<u8>, tail: &[u8]) -> Vec<u8> {
    base.extend_from_slice(tail);
    base
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let real = hex(REAL_35);
    assert_eq!(real.len(), 200);
    let mut preallocated = real.clone();
    preallocated.resize(512, 0);

    let five = first(5);
    let last = *five.offsets.last().unwrap();
    // A later segment: reading starts here, so the crc record sets the
    // running crc; then the state etcd writes when it cuts a segment.
    let later = Segment::new(0x1234_5678)
        .state(1, 5)
        .entry(1, 6, b"value-1-6")
        .state(1, 6)
        .with_zeros(64);
    // A 2000-byte entry spans four 512-byte sectors.
    let big_data: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8 + 1).collect();
    let big = first(2).entry(1, 3, &big_data);
    let big_at = *big.offsets.last().unwrap();
    let big = big.state(1, 3);
    let mut zero_sector = big.with_zeros(0);
    // Zero the first whole sector inside the big record: a write whose
    // middle never reached the disk.
    let s = (big_at + 8).div_ceil(512) * 512;
    zero_sector[s..s + 512].fill(0);

    // The metadata record (offset 16, 31 bytes of record and 1 pad byte):
    // its data starts at 33, its crc varint at 27, its pad byte is 55.
    let mut bad_data = real.clone();
    bad_data[40] ^= 0x01;
    let mut bad_crc = real.clone();
    bad_crc[27] ^= 0x01;
    let mut bad_pad = real.clone();
    bad_pad[55] = 1;
    let wrong_carry = with(five.bytes.clone(), &frame(CRC, five.chain ^ 1, &[]));
    let mut top_byte = (16u64 | (0x80 << 56)).to_le_bytes().to_vec();
    top_byte.resize(8 + 64, 1);
    let mut undecodable = 8u64.to_le_bytes().to_vec();
    undecodable.extend_from_slice(&[0xff; 8]);

    vec![
        ("valid-etcd-3.5.1", preallocated),
        ("valid-etcd-3.5.1-records-only", real.clone()),
        ("valid-first-segment", five.with_zeros(256)),
        ("valid-later-segment", later),
        ("valid-large-entry", big.with_zeros(0)),
        ("empty-file", Vec::new()),
        ("empty-zeros", vec![0; 64]),
        ("torn-cut-record", five.bytes[..last + 11].to_vec()),
        ("torn-cut-length-field", five.bytes[..last + 3].to_vec()),
        ("torn-zero-sector", zero_sector),
        ("bad-crc-data", bad_data),
        ("bad-crc-field", bad_crc),
        ("bad-crc-record", wrong_carry),
        ("bad-pad", bad_pad),
        (
            "bad-huge-len",
            with(real.clone(), &(MAX_FRAME + 8).to_le_bytes()),
        ),
        (
            "bad-len-56-bit",
            with(real.clone(), &((1u64 << 56) - 8).to_le_bytes()),
        ),
        ("bad-len-top-byte", with(real.clone(), &top_byte)),
        ("bad-undecodable", with(real, &undecodable)),
    ]
}

#[test]
fn corpus_replays_without_panics() {
    corpus_replay::replay(&corpus_dir(), &seeds(), |name, data| {
        let r = check_segment(data);
        // The fuzz target's checks.
        if let Ok((records, torn)) = &r {
            assert!(*records <= data.len() as u64 / 16, "{name}: {r:?}");
            if let Some(t) = torn {
                assert!(
                    t.offset % 8 == 0 && t.offset < data.len() as u64,
                    "{name}: {t:?}"
                );
            }
        }
        if name.starts_with("valid-") {
            assert!(matches!(&r, Ok((n, None)) if *n > 0), "{name}: {r:?}");
        } else if name.starts_with("empty-") {
            assert!(matches!(&r, Ok((0, None))), "{name}: {r:?}");
        } else if name.starts_with("torn-") {
            assert!(matches!(&r, Ok((_, Some(_)))), "{name}: {r:?}");
        } else if name.starts_with("bad-") {
            assert!(r.is_err(), "{name}: {r:?}");
        }
    });
}

#[test]
fn seeds_match_the_corpus() {
    corpus_replay::seeds_match(&corpus_dir(), &seeds());
}
