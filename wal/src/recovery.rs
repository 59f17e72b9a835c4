//! Reading one segment at recovery: decode its writes and records, check
//! the crc chain, and where the good data stops, decide whether what
//! follows is a *torn write* (cut it) or *corruption* (refuse to open).
//!
//! # What a crash can leave (format v2, every write has a batch header)
//! A write `[s, s + L)` is one `pwrite` + `fdatasync` into zeros: segments
//! are preallocated with zeros and recovery zeroes what it cuts, so before
//! the write every byte of `[s, s + L)` was 0. A crash before the
//! fdatasync returned leaves each 512-byte file sector of the write with
//! either its new bytes or its old ones (zeros), independently, in any
//! order. Nothing else: a sector that reached the disk is whole, and no
//! byte outside the write changes. So the damage recovery may cut is:
//! *some sectors of the last write in the last segment are zero where the
//! write put other bytes*. A lost sector proves the write never finished,
//! so its fdatasync never returned and no record of it was acknowledged:
//! the whole write is cut (none of it was promised to anyone).
//!
//! Anything else is corruption: a record whose sectors are all present
//! (its batch header's sector crcs say which) but whose crc fails, a
//! header that is present but wrong, any bytes after the damaged write (a
//! later write starts only after this one's fdatasync returned), damage
//! in a segment that is not the last one. Whether the write was
//! acknowledged does not enter the rule — the bytes cannot prove it.
//!
//! The limits, by construction: a write whose first sector (its header)
//! was lost cannot be checked sector by sector, so with its header sector
//! zero it is cut whatever follows it, unless a valid header of a later
//! write follows; and a sector that a disk returns as zeros after it was
//! written looks like one that was never written.
//!
//! # Format v1 (segments written before batch headers)
//! They start with the Crc record itself and mark each later write with
//! an Ack record. They are read with the v1 rule: damage with no Ack
//! record after it in the last segment is a torn tail (cut at the bad
//! record), otherwise corruption. That rule cannot tell a bit flip in
//! the last write from a torn write; the log never writes into a v1
//! segment again (the first write after opening one rolls to a new
//! segment), so the rule only ever applies to the tail found at upgrade.

use std::borrow::Cow;

use crate::batch::{self, SECTOR};
use crate::record::{self, DecodeError, HEADER_LEN, Kind};

/// A good record: kind, index, payload offset in the segment, payload.
pub(crate) type Rec = (Kind, u64, u64, Vec<u8>);

/// The write a damage is in (format v2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DamagedWrite {
    /// Its first byte (its batch header).
    pub start: u64,
    /// Where its records start (== `start` when its header is bad).
    pub body_start: u64,
}

/// Where the good data stops and what recovery makes of it.
#[derive(Debug, Clone)]
pub(crate) struct Damage {
    /// Offset of the first bad record or header.
    pub offset: u64,
    /// The crc it should carry (0 when it does not decode).
    pub expected: u32,
    /// The crc it carries.
    pub found: u32,
    /// What is wrong.
    pub reason: String,
    /// A torn write (cut it, in the last segment) rather than corruption.
    pub torn: bool,
    /// Where a torn tail is cut: the damaged write's start (v2) or the bad
    /// record (v1); the chain crc there; how many good records precede it.
    pub cut: u64,
    /// The chain crc at `cut`.
    pub cut_crc: u32,
    /// Good records before `cut`.
    pub cut_records: usize,
    /// The damaged write (v2 only).
    pub write: Option<DamagedWrite>,
}

/// One segment, read.
#[derive(Debug, Clone)]
pub(crate) struct Scan {
    /// 1 (starts with the Crc record) or 2 (starts with a batch header;
    /// also an empty segment).
    pub version: u8,
    /// Every good record, in order (those of a damaged write before its
    /// bad record included).
    pub records: Vec<Rec>,
    /// Offset just past the last good record.
    pub end: u64,
    /// The chain crc at `end`.
    pub crc: u32,
    /// Where the good data stops before the last nonzero byte.
    pub damage: Option<Damage>,
}

/// Offset just past the last nonzero byte, rounded up to 8.
fn nonzero_end(data: &[u8]) -> u64 {
    data.iter()
        .rposition(|b| *b != 0)
        .map_or(0, |p| (p as u64 + 1).div_ceil(8) * 8)
}

/// Check the first record of a segment: a Crc record carrying the chain
/// so far (`seed`; `None` for the first live segment: trust it). Returns
/// the seed to verify it with, or why it is wrong.
fn first_seed(rec: &record::Record<'_>, seed: Option<u32>) -> Result<u32, (u32, &'static str)> {
    let carried = (rec.kind == Kind::Crc && rec.payload.len() == 4).then(|| {
        u32::from_le_bytes([
            rec.payload[0],
            rec.payload[1],
            rec.payload[2],
            rec.payload[3],
        ])
    });
    match (carried, seed) {
        (None, s) => Err((s.unwrap_or(0), "segment does not start with a crc record")),
        (Some(c), Some(s)) if c != s => Err((s, "crc chain broken between segments")),
        (Some(c), _) => Ok(c),
    }
}

/// Read one segment. `seed` is the chain crc before it (`None`: the first
/// live segment); `limit` bounds a write's end (the segment's size).
pub(crate) fn scan(data: &[u8], seed: Option<u32>, limit: u64) -> Scan {
    if let Ok((rec, _)) = record::decode(data)
        && rec.kind == Kind::Crc
    {
        return scan_v1(data, seed);
    }
    let nz = nonzero_end(data);
    let limit = limit.max(data.len() as u64);
    let mut data: Cow<'_, [u8]> = Cow::Borrowed(data);
    let mut out = Scan {
        version: 2,
        records: Vec::new(),
        end: 0,
        crc: seed.unwrap_or(0),
        damage: None,
    };
    let mut first = true;
    let mut off = 0u64;
    while off < nz {
        let (cut_crc, cut_records) = (out.crc, out.records.len());
        let damage = |offset, expected, found, reason: String, torn, body_start| Damage {
            offset,
            expected,
            found,
            reason,
            torn,
            cut: off,
            cut_crc,
            cut_records,
            write: Some(DamagedWrite {
                start: off,
                body_start,
            }),
        };
        let hdr = match batch::decode(&data[off as usize..], off, limit - off) {
            Ok(h) => h,
            Err(bad) => {
                let (torn, why) = header_damage(&data, off, nz, limit, bad.header_len);
                out.damage = Some(damage(
                    off,
                    bad.expected,
                    bad.found,
                    format!("{}: {why}", bad.reason),
                    torn,
                    off,
                ));
                return out;
            }
        };
        let end = off + hdr.len;
        if (data.len() as u64) < end {
            // A file cut short: the missing bytes read as what they held
            // before the write, zeros.
            data.to_mut().resize(end as usize, 0);
        }
        let body = off + hdr.header_len;
        let mut r = body;
        while r < end {
            let bad = match record::decode(&data[r as usize..end as usize]) {
                Err(DecodeError::Zero) => Some((out.crc, 0, "zeroed record inside a write".into())),
                Err(e) => Some((out.crc, 0, e.to_string())),
                Ok((rec, n)) => {
                    let seed_here = if first {
                        first_seed(&rec, seed)
                    } else {
                        Ok(out.crc)
                    };
                    match seed_here {
                        Err((s, why)) => Some((s, rec.crc, why.to_string())),
                        Ok(s) if !rec.verify(s) => {
                            Some((rec.expected_crc(s), rec.crc, "crc mismatch".into()))
                        }
                        Ok(_) => {
                            first = false;
                            out.crc = rec.crc;
                            out.records.push((
                                rec.kind,
                                rec.index,
                                r + HEADER_LEN as u64,
                                rec.payload.to_vec(),
                            ));
                            r += n as u64;
                            out.end = r;
                            None
                        }
                    }
                }
            };
            if let Some((expected, found, reason)) = bad {
                let (torn, why) = body_damage(&data, off, &hdr, nz);
                out.damage = Some(damage(
                    r,
                    expected,
                    found,
                    format!("{reason}: {why}"),
                    torn,
                    body,
                ));
                return out;
            }
        }
        off = end;
    }
    out
}

/// Whether the 512-byte sector holding `at` holds, from `start` (the
/// write's first byte) on, nothing but zeros: what it held before the
/// write began, so this sector of the write never reached the disk.
fn sector_lost(data: &[u8], start: u64, at: u64) -> bool {
    let from = (at / SECTOR * SECTOR).max(start) as usize;
    let to = (((at / SECTOR) + 1) * SECTOR) as usize;
    data.get(from..to.min(data.len()))
        .is_none_or(|b| b.iter().all(|x| *x == 0))
}

/// Whether a valid batch header sits at an 8-aligned offset in
/// `(after, nz)`: a write that began after `after` was durable.
fn later_write(data: &[u8], after: u64, nz: u64, limit: u64) -> Option<u64> {
    let mut q = after + 8;
    while q + (HEADER_LEN as u64) <= nz {
        if data[q as usize + 4] == Kind::Batch as u8
            && batch::decode(&data[q as usize..], q, limit - q).is_ok()
        {
            return Some(q);
        }
        q += 8;
    }
    None
}

/// A bad batch header at `start`: torn when a sector it covers is lost
/// (its extent from its own length field when that part is readable, else
/// its first 24 bytes) and no later write follows; corruption otherwise.
fn header_damage(
    data: &[u8],
    start: u64,
    nz: u64,
    limit: u64,
    header_len: Option<u64>,
) -> (bool, String) {
    if let Some(q) = later_write(data, start, nz, limit) {
        return (
            false,
            format!(
                "a later write (its header at offset {q}) follows, so this one was complete and acknowledged"
            ),
        );
    }
    let extent = header_len.unwrap_or(HEADER_LEN as u64);
    let lost = (start..start + extent)
        .step_by(SECTOR as usize)
        .chain(std::iter::once(start + extent - 1))
        .find(|at| sector_lost(data, start, *at));
    match lost {
        Some(at) => (
            true,
            format!(
                "torn write: the sector at offset {} of the write starting at {start} never reached the disk",
                at / SECTOR * SECTOR
            ),
        ),
        None => (
            false,
            "every sector of the header is on disk, so this is corruption, not a torn write".into(),
        ),
    }
}

/// A bad record inside the write at `start` whose header is good: check
/// every sector of the write against the header's crcs.
fn body_damage(data: &[u8], start: u64, hdr: &batch::Header, nz: u64) -> (bool, String) {
    let end = start + hdr.len;
    if nz > end {
        return (
            false,
            format!(
                "bytes follow this write (up to offset {nz}), so it was complete and acknowledged"
            ),
        );
    }
    let mut lost = None;
    for (k, (from, to)) in batch::sectors(start + hdr.header_len, end).enumerate() {
        let part = &data[from as usize..to as usize];
        if crc32fast::hash(part) == hdr.sector_crcs[k] {
            continue;
        }
        if !sector_lost(data, start, from) {
            return (
                false,
                format!(
                    "the sector at offset {} is on disk but differs from what was written (sector crc {:#010x}, found {:#010x}): corruption, not a torn write",
                    from / SECTOR * SECTOR,
                    hdr.sector_crcs[k],
                    crc32fast::hash(part)
                ),
            );
        }
        lost.get_or_insert(from / SECTOR * SECTOR);
    }
    match lost {
        Some(at) => (
            true,
            format!(
                "torn write: the sector at offset {at} of the write starting at {start} never reached the disk"
            ),
        ),
        None => (
            false,
            "every sector matches what was written, yet the record fails: corrupted before it was written".into(),
        ),
    }
}

/// Format v1: records from offset 0, Ack records before every later write.
fn scan_v1(data: &[u8], seed: Option<u32>) -> Scan {
    let mut out = Scan {
        version: 1,
        records: Vec::new(),
        end: 0,
        crc: seed.unwrap_or(0),
        damage: None,
    };
    let mut off = 0usize;
    let mut first = true;
    let mut bad: Option<(u64, u32, u32, String)> = None;
    while off < data.len() {
        match record::decode(&data[off..]) {
            Err(DecodeError::Zero) => break,
            Err(e) => {
                bad = Some((off as u64, out.crc, 0, e.to_string()));
                break;
            }
            Ok((rec, n)) => {
                let seed_here = if first {
                    match first_seed(&rec, seed) {
                        Ok(s) => s,
                        Err((s, why)) => {
                            bad = Some((off as u64, s, rec.crc, why.into()));
                            break;
                        }
                    }
                } else {
                    out.crc
                };
                if !rec.verify(seed_here) {
                    bad = Some((
                        off as u64,
                        rec.expected_crc(seed_here),
                        rec.crc,
                        "crc mismatch".into(),
                    ));
                    break;
                }
                first = false;
                out.crc = rec.crc;
                out.records.push((
                    rec.kind,
                    rec.index,
                    (off + HEADER_LEN) as u64,
                    rec.payload.to_vec(),
                ));
                off += n;
                out.end = off as u64;
            }
        }
    }
    let stop = bad.as_ref().map_or(out.end, |b| b.0);
    let acked = acked_beyond(data, stop);
    let (offset, expected, found, reason) = match (bad, acked) {
        (None, false) => return out,
        (None, true) => (
            out.end,
            0,
            0,
            "zeroed record inside data already acknowledged as durable".to_string(),
        ),
        (Some((o, e, f, r)), true) => (
            o,
            e,
            f,
            format!("{r}, inside data already acknowledged as durable"),
        ),
        (Some((o, e, f, r)), false) => (
            o,
            e,
            f,
            format!("{r} (format v1: no ack record follows; torn tail)"),
        ),
    };
    out.damage = Some(Damage {
        offset,
        expected,
        found,
        reason,
        torn: !acked,
        cut: out.end,
        cut_crc: out.crc,
        cut_records: out.records.len(),
        write: None,
    });
    out
}

/// v1: whether an ack marker at an 8-aligned offset after `stop` records
/// a durable end beyond `stop`. Markers are checked on their own (their
/// payload carries their offset and a crc), since the chain is broken at
/// `stop`.
fn acked_beyond(data: &[u8], stop: u64) -> bool {
    let mut off = (stop as usize + 8).div_ceil(8) * 8;
    while off + record::encoded_len(ACK_PAYLOAD) <= data.len() {
        if data[off + 4] == Kind::Ack as u8
            && let Some(durable_end) = ack_marker(&data[off..], off as u64)
            && durable_end > stop
        {
            return true;
        }
        off += 8;
    }
    false
}

/// Payload bytes of a v1 ack marker.
const ACK_PAYLOAD: usize = 12;

/// If `buf` starts with a self-consistent v1 ack marker written at `at`,
/// its durable end.
fn ack_marker(buf: &[u8], at: u64) -> Option<u64> {
    let (rec, _) = record::decode(buf).ok()?;
    if rec.kind != Kind::Ack || rec.payload.len() != ACK_PAYLOAD {
        return None;
    }
    let pos = u64::from_le_bytes(rec.payload[..8].try_into().ok()?);
    let crc = u32::from_le_bytes(rec.payload[8..].try_into().ok()?);
    let mut h = crc32fast::Hasher::new();
    h.update(&rec.index.to_le_bytes());
    h.update(&pos.to_le_bytes());
    (pos == at && h.finalize() == crc && rec.index <= at).then_some(rec.index)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One write of `n` entries at `s` (the first write of a segment when
    /// `s == 0`).
    fn write(s: u64, n: u64, seed: u32) -> (Vec<u8>, u32) {
        let mut body = Vec::new();
        let mut crc = seed;
        if s == 0 {
            crc = record::encode(&mut body, Kind::Crc, 0, &seed.to_le_bytes(), seed);
        }
        for i in 0..n {
            crc = record::encode(&mut body, Kind::Entry, i + 1, &[0xa5; 300], crc);
        }
        let mut out = Vec::new();
        batch::encode(&mut out, s, &body);
        out.extend_from_slice(&body);
        (out, crc)
    }

    #[test]
    fn lost_sector_is_torn_flipped_bit_is_corrupt() {
        let (w, _) = write(0, 6, 0);
        let mut seg = w.clone();
        seg.resize(8192, 0);
        assert!(scan(&seg, None, 8192).damage.is_none());
        // The second sector lost.
        let mut torn = seg.clone();
        torn[512..1024].fill(0);
        let d = scan(&torn, None, 8192).damage.unwrap();
        assert!(d.torn && d.cut == 0 && d.cut_records == 0, "{d:?}");
        // Half of it zeroed: not a whole sector, so corruption.
        let mut half = seg.clone();
        half[600..1024].fill(0);
        assert!(!scan(&half, None, 8192).damage.unwrap().torn);
        // A flipped bit.
        let mut flip = seg.clone();
        flip[700] ^= 4;
        let d = scan(&flip, None, 8192).damage.unwrap();
        assert!(!d.torn && d.offset <= 700, "{d:?}");
        // The header's sector lost, the rest present: torn.
        let mut head = seg.clone();
        head[..512].fill(0);
        assert!(scan(&head, None, 8192).damage.unwrap().torn);
        // Bytes after the write: a lost sector inside it is corruption.
        let mut after = torn.clone();
        after[w.len() + 100] = 1;
        assert!(!scan(&after, None, 8192).damage.unwrap().torn);
    }
}
