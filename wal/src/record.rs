//! WAL records: encoding and decoding.
//!
//! ```text
//! 0        4      5        8                16       20       24
//! +--------+------+--------+----------------+--------+--------+----------------------+
//! | len    | type | 0 0 0  | index          | crc    | 0      | payload, zero-padded |
//! | u32 LE | u8   |        | u64 LE         | u32 LE |        | to a multiple of 8   |
//! +--------+------+--------+----------------+--------+--------+----------------------+
//! ```
//!
//! - `len` is the payload length (not padded); a record occupies
//!   `24 + round_up(len, 8)` bytes, so every record starts 8-byte aligned.
//! - `index` is the raft index for [`Kind::Entry`], the truncation point for
//!   [`Kind::Truncate`], the metadata key for [`Kind::Meta`], the durable
//!   end for [`Kind::Ack`], the next entry's index for [`Kind::Reset`], 0
//!   for [`Kind::Crc`], the write's length for [`Kind::Batch`].
//! - `crc` is crc32 (crc32fast, IEEE) over header bytes 0..16 and the
//!   payload, *seeded with the previous record's crc*, so the records of a
//!   segment form one chain (batch headers excepted: seeded with 0); the first record of a segment is a
//!   [`Kind::Crc`] record whose 4-byte payload is the crc the chain had at
//!   the end of the previous segment (0 for the first segment ever).
//! - An all-zero header is not a record: it is the preallocated (zeroed)
//!   space after the last record of a segment.
//!
//! Integers are little-endian (a choice: the WAL is read back only by us,
//! on the same kind of machine; nothing sorts these bytes).

/// Header size in bytes.
pub const HEADER_LEN: usize = 24;

/// Largest payload accepted, so a corrupt length can never ask for a huge
/// allocation: 256 MiB (a raft batch is far smaller; etcd caps requests at
/// 1.5 MiB by default).
pub const MAX_PAYLOAD: usize = 256 << 20;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// A raft log entry; `index` is its raft index.
    Entry = 1,
    /// Caller metadata (e.g. the raft vote); `index` is a key, and the
    /// newest record per key wins at recovery.
    Meta = 2,
    /// First record of every segment: the previous segment's last crc.
    Crc = 3,
    /// Every entry with index >= `index` written before this record is
    /// dropped (raft log conflict).
    Truncate = 4,
    /// Format v1 only (read, never written): ack marker, first in every
    /// write after the first; `index` is the segment offset up to which
    /// earlier writes were already durable (fdatasync returned).
    Ack = 5,
    /// Every entry written before this record is dropped, and the next
    /// entry must have index `index` (>= 1), above or below the old last
    /// index: a raft follower continuing its log after installing a
    /// snapshot at `index - 1`. Empty payload. Metadata is kept.
    Reset = 6,
    /// Batch header (format v2), first in every write: `index` is the
    /// write's length; the payload its offset and a crc per 512-byte
    /// sector. Not part of the crc chain; see `batch`.
    Batch = 7,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Self> {
        match b {
            1 => Some(Kind::Entry),
            2 => Some(Kind::Meta),
            3 => Some(Kind::Crc),
            4 => Some(Kind::Truncate),
            5 => Some(Kind::Ack),
            6 => Some(Kind::Reset),
            7 => Some(Kind::Batch),
            _ => None,
        }
    }
}

/// A decoded record, borrowing its payload from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// What it is.
    pub kind: Kind,
    /// See the module docs.
    pub index: u64,
    /// The payload.
    pub payload: &'a [u8],
    /// The crc stored in the header.
    pub crc: u32,
    header: [u8; 16],
}

impl Record<'_> {
    /// The crc this record should carry if the chain before it ended in
    /// `seed`.
    pub fn expected_crc(&self, seed: u32) -> u32 {
        chain(seed, &self.header, self.payload)
    }

    /// Whether the stored crc matches the chain from `seed`.
    pub fn verify(&self, seed: u32) -> bool {
        self.expected_crc(seed) == self.crc
    }
}

/// Why bytes did not decode as a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ends inside the record: `needed` bytes are required.
    #[error("incomplete record: need {needed} bytes")]
    Incomplete {
        /// Total bytes the record needs.
        needed: usize,
    },
    /// An all-zero header: preallocated space, no record here.
    #[error("zeroed space, no record")]
    Zero,
    /// Not a record (unknown type, nonzero padding, impossible length).
    #[error("malformed record: {0}")]
    Malformed(&'static str),
}

fn chain(seed: u32, header: &[u8; 16], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(seed);
    h.update(header);
    h.update(payload);
    h.finalize()
}

/// Bytes a record with a `len`-byte payload occupies.
pub fn encoded_len(len: usize) -> usize {
    HEADER_LEN + len.div_ceil(8) * 8
}

/// Append one record to `out`, chained from `seed`; returns its crc.
pub fn encode(out: &mut Vec<u8>, kind: Kind, index: u64, payload: &[u8], seed: u32) -> u32 {
    assert!(payload.len() <= MAX_PAYLOAD, "payload over MAX_PAYLOAD");
    let mut header = [0u8; 16];
    header[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[4] = kind as u8;
    header[8..16].copy_from_slice(&index.to_le_bytes());
    let crc = chain(seed, &header, payload);
    out.extend_from_slice(&header);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(payload);
    let pad = encoded_len(payload.len()) - HEADER_LEN - payload.len();
    out.extend_from_slice(&[0u8; 8][..pad]);
    crc
}

/// Decode the record at the start of `buf`; returns it and the bytes it
/// occupies. Never panics, whatever the input; does not check the crc
/// chain (see [`Record::verify`]).
pub fn decode(buf: &[u8]) -> Result<(Record<'_>, usize), DecodeError> {
    if buf.len() < HEADER_LEN {
        if buf.iter().all(|b| *b == 0) && !buf.is_empty() {
            return Err(DecodeError::Zero);
        }
        return Err(DecodeError::Incomplete { needed: HEADER_LEN });
    }
    let h = &buf[..HEADER_LEN];
    if h.iter().all(|b| *b == 0) {
        return Err(DecodeError::Zero);
    }
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let kind = Kind::from_u8(h[4]).ok_or(DecodeError::Malformed("unknown record type"))?;
    if h[5..8] != [0, 0, 0] || h[20..24] != [0, 0, 0, 0] {
        return Err(DecodeError::Malformed("nonzero reserved bytes"));
    }
    if len > MAX_PAYLOAD {
        return Err(DecodeError::Malformed("payload length over the limit"));
    }
    let total = encoded_len(len);
    if buf.len() < total {
        return Err(DecodeError::Incomplete { needed: total });
    }
    if buf[HEADER_LEN + len..total].iter().any(|b| *b != 0) {
        return Err(DecodeError::Malformed("nonzero padding"));
    }
    let mut header = [0u8; 16];
    header.copy_from_slice(&h[..16]);
    let index = u64::from_le_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
    let crc = u32::from_le_bytes([h[16], h[17], h[18], h[19]]);
    Ok((
        Record {
            kind,
            index,
            payload: &buf[HEADER_LEN..HEADER_LEN + len],
            crc,
            header,
        },
        total,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_chain() {
        let mut buf = Vec::new();
        let c1 = encode(&mut buf, Kind::Crc, 0, &7u32.to_le_bytes(), 7);
        let c2 = encode(&mut buf, Kind::Entry, 42, b"hello", c1);
        assert_eq!(buf.len(), encoded_len(4) + encoded_len(5));
        assert_eq!(buf.len() % 8, 0);
        let (r1, n1) = decode(&buf).unwrap();
        assert!(r1.verify(7) && r1.kind == Kind::Crc);
        let (r2, n2) = decode(&buf[n1..]).unwrap();
        assert_eq!(
            (r2.kind, r2.index, r2.payload),
            (Kind::Entry, 42, &b"hello"[..])
        );
        assert!(r2.verify(c1) && !r2.verify(c1 ^ 1));
        assert_eq!(r2.crc, c2);
        assert_eq!(n1 + n2, buf.len());
    }

    #[test]
    fn reset_record_round_trips_and_8_is_unknown() {
        let mut buf = Vec::new();
        let c = encode(&mut buf, Kind::Reset, 1_000_001, &[], 9);
        assert_eq!(buf.len(), HEADER_LEN);
        assert_eq!(buf[4], 6);
        let (r, n) = decode(&buf).unwrap();
        assert_eq!(
            (r.kind, r.index, r.payload, n),
            (Kind::Reset, 1_000_001, &[][..], 24)
        );
        assert!(r.verify(9) && r.crc == c);
        buf[4] = 8;
        assert!(matches!(decode(&buf), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn incomplete_zero_malformed() {
        let mut buf = Vec::new();
        encode(&mut buf, Kind::Entry, 1, &[1u8; 100], 0);
        for cut in 1..buf.len() {
            assert!(
                matches!(decode(&buf[..cut]), Err(DecodeError::Incomplete { .. })),
                "cut {cut}"
            );
        }
        assert_eq!(decode(&[0u8; 64]).unwrap_err(), DecodeError::Zero);
        let mut bad = buf.clone();
        bad[4] = 9;
        assert!(matches!(decode(&bad), Err(DecodeError::Malformed(_))));
        let mut huge = buf.clone();
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode(&huge), Err(DecodeError::Malformed(_))));
    }
}
