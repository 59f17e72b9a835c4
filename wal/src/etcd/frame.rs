//! etcd's WAL framing: reads one segment frame by frame, checks every
//! bound and the rolling CRC-32C, and tells the normal end of a segment
//! (end of file, or a zero length field: preallocated space) and a torn
//! tail of the last segment from corruption.
//!
//! ```text
//! offset 0, 8-aligned:  length field u64 LE | record (len bytes) | pad (0..=7 zero bytes)
//! length field:         bits 0..=55 len; bits 56..=63 top byte:
//!                       0x00 when pad = 0, else 0x80 | pad;  pad = (8 - len % 8) % 8
//!                       0x0000000000000000 = no more records in this segment
//! ```
//!
//! Rules, each a deliberate choice:
//! - The length field must be exactly what etcd's encoder writes (the top
//!   byte above; etcd's own decoder ignores bits 56..=62 without bit 63),
//!   and pad bytes must be zero: a flipped bit there is damage the crc
//!   cannot see, so it is reported, not skipped.
//! - Record plus pad must stay under [`MAX_FRAME`] (10 MiB), etcd's
//!   `maxWALEntrySizeLimit` (3.4.23 and 3.5 refuse such a frame too), and
//!   inside the file: a larger length is corruption, never an allocation.
//! - CRC: every record but a crc record carries CRC-32C of its data,
//!   continued from the previous record's value ([`crc32c_update`]). A
//!   crc record (type 4, no data) carries the running value into a new
//!   segment: it must equal the running value unless that is 0 (a reader
//!   that starts at this segment), and it sets it.
//! - Torn tail, only in the last segment read (what etcd's decoder returns
//!   as `io.ErrUnexpectedEOF` and `wal.Repair` truncates at start-up): a
//!   length field or frame cut by the end of the file, or a frame that
//!   fails to decode or fails its crc while one of its 512-byte sector
//!   pieces (split at file offsets multiple of 512, pad included) is all
//!   zeros. The reader stops there and reports it; etcd would truncate.
//!   The same damage in an earlier segment, or a bad record with no zero
//!   sector, is corruption.

use std::io::Read;
use std::path::PathBuf;

use crc::{CRC_32_ISCSI, Crc};
use prost::Message;

use super::error::{Error, Result};
use super::pb::Record;
use super::{RecordType, TornTail};

/// Largest record plus padding accepted, exclusive: etcd's
/// `maxWALEntrySizeLimit` (10 MiB), which both etcd 3.4.23 and 3.5 apply
/// when they read their own WAL. etcd's default `--max-request-bytes` is
/// 1.5 MiB, so real entries are far below it.
pub const MAX_FRAME: u64 = 10 * 1024 * 1024;
/// Sector size etcd's torn-write check splits a frame by.
const SECTOR: u64 = 512;
const LEN_MASK: u64 = (1 << 56) - 1;

static CASTAGNOLI: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);

/// CRC-32C (Castagnoli) of `data`, continued from `prev` (0 to start):
/// what Go's `crc32.Update(prev, crc32.MakeTable(crc32.Castagnoli), data)`
/// returns, the value etcd stores in each record.
///
/// The `crc` crate's `initial` is the register before the input
/// reflection, while `prev` is a finished value (register complemented);
/// so the register to continue from is `!prev`, given bit-reversed.
pub fn crc32c_update(prev: u32, data: &[u8]) -> u32 {
    let mut d = CASTAGNOLI.digest_with_initial((!prev).reverse_bits());
    d.update(data);
    d.finalize()
}

/// The next thing in a segment.
#[derive(Debug)]
pub(crate) enum Frame {
    /// A record whose crc checked out.
    Record {
        /// Byte offset of its length field.
        offset: u64,
        /// The record.
        record: Record,
    },
    /// No more records in this segment: end of file or a zero length
    /// field.
    End,
    /// A torn tail (last segment only); nothing after it is read.
    Torn(TornTail),
}

/// Reads one segment's frames.
#[derive(Debug)]
pub(crate) struct Frames<R> {
    r: R,
    file: PathBuf,
    len: u64,
    off: u64,
    last: bool,
}

impl<R: Read> Frames<R> {
    /// A reader over `r`, the whole of `file` (`len` bytes); `last` when it
    /// is the last segment read (the only one that may end torn).
    pub(crate) fn new(r: R, file: PathBuf, len: u64, last: bool) -> Self {
        Self {
            r,
            file,
            len,
            off: 0,
            last,
        }
    }

    fn corrupt(&self, offset: u64, expected: impl Into<String>, found: impl Into<String>) -> Error {
        Error::Corrupt {
            file: self.file.clone(),
            offset,
            expected: expected.into(),
            found: found.into(),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<()> {
        self.r.read_exact(buf).map_err(|source| Error::Io {
            path: self.file.clone(),
            source,
        })
    }

    /// A frame cut by the end of the file: torn in the last segment,
    /// corruption elsewhere.
    fn short(&self, offset: u64, expected: String, found: String) -> Result<Frame> {
        if self.last {
            Ok(Frame::Torn(TornTail {
                file: self.file.clone(),
                offset,
                reason: format!("expected {expected}, found {found}"),
            }))
        } else {
            Err(self.corrupt(offset, expected, found))
        }
    }

    /// A frame that fails to decode or its crc: torn when etcd's rule says
    /// so (last segment, a zero sector piece), else `err`.
    fn torn_or(&self, offset: u64, frame: &[u8], err: Error) -> Result<Frame> {
        if self.last && has_zero_sector(offset + 8, frame) {
            Ok(Frame::Torn(TornTail {
                file: self.file.clone(),
                offset,
                reason: format!("{err} (and a sector of it is zeros)"),
            }))
        } else {
            Err(err)
        }
    }

    /// The next frame; `chain` is the running crc (0 before the first
    /// record read), updated by each record.
    pub(crate) fn next(&mut self, chain: &mut u32) -> Result<Frame> {
        let offset = self.off;
        let left = self.len.saturating_sub(offset);
        if left == 0 {
            return Ok(Frame::End);
        }
        if left < 8 {
            return self.short(
                offset,
                "an 8-byte length field".into(),
                format!("{left} bytes before the end of the file"),
            );
        }
        let mut head = [0u8; 8];
        self.read(&mut head)?;
        let field = u64::from_le_bytes(head);
        if field == 0 {
            return Ok(Frame::End);
        }
        let len = field & LEN_MASK;
        let pad = (8 - len % 8) % 8;
        let top = if pad == 0 { 0 } else { 0x80 | pad };
        if field >> 56 != top {
            return Err(self.corrupt(
                offset,
                format!("length field top byte {top:#04x} for a {len}-byte record"),
                format!("length field {field:#018x}"),
            ));
        }
        let frame = len + pad;
        if frame >= MAX_FRAME {
            return Err(self.corrupt(
                offset,
                format!("a record under {MAX_FRAME} bytes with its padding (etcd's limit)"),
                format!("length field {field:#018x} ({len} bytes)"),
            ));
        }
        if frame > left - 8 {
            return self.short(
                offset,
                format!("{frame} bytes of record and padding"),
                format!("{} bytes before the end of the file", left - 8),
            );
        }
        // Bounded by MAX_FRAME and by the file's size, both checked above.
        let mut buf = vec![0u8; frame as usize];
        self.read(&mut buf)?;
        self.off = offset + 8 + frame;
        let (body, padding) = buf.split_at(len as usize);
        let record = match Record::decode(body) {
            Ok(r) => r,
            Err(e) => {
                let err =
                    self.corrupt(offset, "a walpb.Record", format!("undecodable bytes ({e})"));
                return self.torn_or(offset, &buf, err);
            }
        };
        if record.r#type == RecordType::Crc as i64 {
            // etcd checks a crc record against the running value only when
            // that is not 0 (a reader that starts at this segment).
            if *chain != 0 && record.crc != *chain {
                return Err(Error::Crc {
                    file: self.file.clone(),
                    offset,
                    expected: *chain,
                    found: record.crc,
                });
            }
            *chain = record.crc;
        } else {
            let crc = crc32c_update(*chain, &record.data);
            if crc != record.crc {
                let err = Error::Crc {
                    file: self.file.clone(),
                    offset,
                    expected: crc,
                    found: record.crc,
                };
                return self.torn_or(offset, &buf, err);
            }
            *chain = crc;
        }
        if padding.iter().any(|&b| b != 0) {
            return Err(self.corrupt(
                offset + 8 + len,
                format!("{pad} zero pad bytes"),
                format!("{padding:02x?}"),
            ));
        }
        Ok(Frame::Record { offset, record })
    }
}

/// Frame and crc-check one segment given as bytes, as the last segment
/// of a log read from its start (running crc 0): how many records it
/// holds and where a torn tail begins. The entry point for fuzzing the
/// framing; records are not interpreted.
pub fn check_segment(bytes: &[u8]) -> Result<(u64, Option<TornTail>)> {
    let mut frames = Frames::new(bytes, PathBuf::from("<segment>"), bytes.len() as u64, true);
    let mut chain = 0;
    let mut n = 0;
    loop {
        match frames.next(&mut chain)? {
            Frame::Record { .. } => n += 1,
            Frame::End => return Ok((n, None)),
            Frame::Torn(t) => return Ok((n, Some(t))),
        }
    }
}

/// etcd's torn-write test: split `frame` (which starts at file offset
/// `at`) at file offsets that are multiples of 512; true when any piece
/// is all zeros.
fn has_zero_sector(at: u64, frame: &[u8]) -> bool {
    let mut pos = 0usize;
    let mut file_off = at;
    while pos < frame.len() {
        let room = (SECTOR - file_off % SECTOR) as usize;
        let n = room.min(frame.len() - pos);
        if frame[pos..pos + n].iter().all(|&b| b == 0) {
            return true;
        }
        pos += n;
        file_off += n as u64;
    }
    false
}
