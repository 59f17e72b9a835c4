//! Batch headers (format v2): every write into a segment — one write and
//! one fdatasync, [`crate::Wal::sync`] — starts with a header that says how
//! long the write is and carries a crc32 of every 512-byte sector of it,
//! so recovery can tell a torn write from corruption sector by sector.
//!
//! ```text
//! segment offset s (8-aligned), the first byte of the write
//! 0        4      5        8                16       20       24       32
//! +--------+------+--------+----------------+--------+--------+--------+----------------+-----+
//! | len    | 7    | 0 0 0  | L              | crc    | 0      | s      | sector crcs    | pad |
//! | u32 LE | u8   |        | u64 LE         | u32 LE |        | u64 LE | n × u32 LE     |     |
//! +--------+------+--------+----------------+--------+--------+--------+----------------+-----+
//! |<------------------------------ H = 24 + round_up(len, 8) -------------------------->|
//! s + H: the body, B = L − H bytes of chained records, ends at s + L
//! ```
//!
//! - It is a record (the codec of [`crate::record`]) of type 7, whose
//!   `index` is `L`, the length of the whole write (header included), and
//!   whose payload is `s` (its own offset, so a header found by searching
//!   proves where its write began) and the sector table.
//! - `crc` is crc32 seeded with **0** over header bytes 0..16 and the
//!   payload: the header checks itself and is *not* part of the records'
//!   crc chain (it is written after the records it describes are
//!   encoded, see [`crate::Wal::sync`]).
//! - The table has `n = ceil(B / 512) + 1` entries (so `len = 8 + 4n` is
//!   fixed by `B` alone): entry `k` is crc32 of the body's bytes in the
//!   `k`-th 512-byte file sector the body touches (the first and last may
//!   be partial); entries past the last sector are 0.
//!
//! Why 512: a sector is the unit a disk writes atomically; a crash during
//! a write leaves each sector of it either with its new bytes or with its
//! old ones (zeros: segments are preallocated, and recovery zeroes what it
//! cuts), never a mix, never other bytes. Larger atomic units (4 KiB
//! pages, 4Kn disks) are unions of 512-byte sectors and need no change.

use crate::record::{self, HEADER_LEN, Kind};

/// The sector size the table checks: the smallest unit a disk writes
/// atomically.
pub const SECTOR: u64 = 512;

/// A decoded, self-verified batch header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    /// The write's length, header included.
    pub len: u64,
    /// The header's own length (where the body starts, from `s`).
    pub header_len: u64,
    /// crc32 of each body sector, in order (trailing zeros included).
    pub sector_crcs: Vec<u32>,
}

/// Table entries for a `body`-byte body.
fn table_len(body: u64) -> u64 {
    body.div_ceil(SECTOR) + 1
}

/// Bytes the header of a write with a `body`-byte body takes.
pub(crate) fn header_len(body: usize) -> usize {
    record::encoded_len(8 + 4 * table_len(body as u64) as usize)
}

/// The body's sectors: `(from, to)` segment offsets of each part of the
/// body `[start, end)` that falls in one 512-byte file sector.
pub(crate) fn sectors(start: u64, end: u64) -> impl Iterator<Item = (u64, u64)> {
    let mut at = start;
    std::iter::from_fn(move || {
        (at < end).then(|| {
            let to = ((at / SECTOR + 1) * SECTOR).min(end);
            let r = (at, to);
            at = to;
            r
        })
    })
}

/// Encode the header of a write at segment offset `s` whose body is
/// `body` into `out`; returns the header's length.
pub(crate) fn encode(out: &mut Vec<u8>, s: u64, body: &[u8]) -> usize {
    let h = header_len(body.len()) as u64;
    let n = table_len(body.len() as u64) as usize;
    let mut payload = Vec::with_capacity(8 + 4 * n);
    payload.extend_from_slice(&s.to_le_bytes());
    let start = s + h;
    let mut k = 0;
    for (from, to) in sectors(start, start + body.len() as u64) {
        let part = &body[(from - start) as usize..(to - start) as usize];
        payload.extend_from_slice(&crc32fast::hash(part).to_le_bytes());
        k += 1;
    }
    payload.resize(8 + 4 * n, 0);
    debug_assert!(k <= n);
    let before = out.len();
    record::encode(out, Kind::Batch, h + body.len() as u64, &payload, 0);
    debug_assert_eq!((out.len() - before) as u64, h);
    h as usize
}

/// Why bytes at a batch boundary are not a valid header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadHeader {
    /// What is wrong.
    pub reason: &'static str,
    /// The crc the header should carry (0 when it does not decode).
    pub expected: u32,
    /// The crc it carries.
    pub found: u32,
    /// The header's length, when its first 24 bytes decode and agree
    /// with each other (the extent recovery checks for lost sectors).
    pub header_len: Option<u64>,
}

/// Decode and verify the header of a write at segment offset `s`;
/// `buf` starts at `s`. `max_len` bounds the write's length (the bytes
/// the segment can hold from `s`).
pub(crate) fn decode(buf: &[u8], s: u64, max_len: u64) -> Result<Header, BadHeader> {
    let bad = |reason, expected, found, header_len| BadHeader {
        reason,
        expected,
        found,
        header_len,
    };
    // The fixed part alone, so a header whose table lies partly in a lost
    // sector still gives its extent.
    if buf.len() < HEADER_LEN {
        return Err(bad("batch header cut short", 0, 0, None));
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as u64;
    let total = u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes"));
    let found = u32::from_le_bytes([buf[16], buf[17], buf[18], buf[19]]);
    if buf[4] != Kind::Batch as u8 {
        return Err(bad("not a batch header", 0, found, None));
    }
    let h = HEADER_LEN as u64 + len.div_ceil(8) * 8;
    if len < 12 || total <= h || total > max_len || len != 8 + 4 * table_len(total - h) {
        return Err(bad("batch header lengths disagree", 0, found, None));
    }
    let (rec, _) = match record::decode(buf) {
        Ok(r) => r,
        Err(_) => return Err(bad("malformed batch header", 0, found, Some(h))),
    };
    if !rec.verify(0) {
        return Err(bad(
            "batch header crc mismatch",
            rec.expected_crc(0),
            found,
            Some(h),
        ));
    }
    let at = u64::from_le_bytes(rec.payload[..8].try_into().expect("8 bytes"));
    if at != s {
        return Err(bad(
            "batch header written for another offset",
            0,
            found,
            Some(h),
        ));
    }
    let sector_crcs = rec.payload[8..]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(Header {
        len: total,
        header_len: h,
        sector_crcs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_table_size() {
        for (s, body_len) in [(0u64, 1usize), (504, 8), (4096, 4096), (40, 5000), (8, 511)] {
            let body: Vec<u8> = (0..body_len).map(|i| (i * 7 + 1) as u8).collect();
            let mut buf = Vec::new();
            let h = encode(&mut buf, s, &body);
            assert_eq!(h, header_len(body_len));
            buf.extend_from_slice(&body);
            let hdr = decode(&buf, s, u64::MAX).unwrap();
            assert_eq!(hdr.len, buf.len() as u64);
            assert_eq!(hdr.header_len, h as u64);
            let parts: Vec<_> = sectors(s + h as u64, s + buf.len() as u64).collect();
            assert!(parts.len() <= hdr.sector_crcs.len(), "{s} {body_len}");
            for (k, (from, to)) in parts.iter().enumerate() {
                assert!(from / SECTOR == (to - 1) / SECTOR);
                let part = &buf[(from - s) as usize..(to - s) as usize];
                assert_eq!(hdr.sector_crcs[k], crc32fast::hash(part));
            }
            assert!(hdr.sector_crcs[parts.len()..].iter().all(|c| *c == 0));
            // Another offset, a flipped bit, a length over the bound.
            assert!(decode(&buf, s + 8, u64::MAX).is_err());
            let mut flipped = buf.clone();
            flipped[30] ^= 1;
            assert_eq!(
                decode(&flipped, s, u64::MAX).unwrap_err().header_len,
                Some(h as u64)
            );
            assert!(decode(&buf, s, buf.len() as u64 - 1).is_err());
        }
    }
}
