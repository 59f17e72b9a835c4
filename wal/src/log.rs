//! The log: segments of records on a [`Fs`], recovery, appends with one
//! fdatasync per batch, reads, truncation, resets and purging.
//!
//! # Writing
//! `append_*` encode records into an in-memory buffer; [`Wal::sync`] writes
//! the buffer at the end of the tail segment, behind a batch header (the
//! write's length and a crc32 of each 512-byte sector, `batch`), and
//! fdatasyncs it (`pwrite` + `fdatasync` on [`crate::UringFs`]),
//! after which everything appended is durable. When a record would not
//! fit in the tail segment, the buffer is first written and synced into
//! the old segment, then a new segment is created, preallocated, synced
//! *and its directory entry synced* before anything is written into it. A
//! new segment starts with a [`Kind::Crc`] record (the chain so far) and a
//! copy of every metadata record, so purging old segments never loses the
//! latest metadata.
//!
//! # Truncate and reset
//! Both are records written into the tail segment, durable with the next
//! sync like entries. A [`Kind::Truncate`] drops a suffix (the next entry
//! follows the truncation point); a [`Kind::Reset`] drops every entry and
//! says which index comes next, above or below the old last index (a raft
//! follower that installed a snapshot at `next - 1`). Metadata survives
//! both. A segment name keeps the index the segment was *opened* for, so a
//! segment holding a reset is named after an index from before it and the
//! next segment's name continues from the reset: names increase with `seq`
//! only while there is no reset to a lower index. Nothing relies on them
//! increasing: files are ordered by `seq`, recovery checks each name
//! against the log replayed so far, and [`Wal::purge_before`] decides by
//! the live entries a segment still holds, not by names.
//!
//! # Recovery
//! Every write of every segment is decoded and every record's crc checked
//! against the chain (`recovery` has the rules and their reasons). Where
//! the good data stops before the end of a segment's data:
//! - a *torn write* is the last write of the last segment with some of its
//!   512-byte sectors still all zero (what they held before it: segments
//!   are preallocated with zeros) and every other sector as written, per
//!   its batch header's sector crcs. A lost sector proves the write never
//!   completed, so its fdatasync never returned and none of it was
//!   acknowledged: with [`TornTail::Truncate`] the whole write is cut (and
//!   the segment re-extended with zeros) and the log opens with
//!   everything before it;
//! - anything else is [`OpenError::Corrupt`] (file, byte offset, expected
//!   and found crc, and the way out) and nothing is changed: a record
//!   whose sectors are all on disk but whose crc fails — even the last
//!   record of the last write, acknowledged or not, since the bytes cannot
//!   tell — a bad header whose sectors are on disk, damage followed by
//!   later data, damage in any segment but the last.
//!
//! etcd refuses a crc mismatch in its last record too (etcd 3.4.23 on the
//! same damage, issue #18); its decoder calls a record torn only when it
//! is cut short or one of its 512-byte sectors is all zeros — the rule
//! here, made exact by the sector crcs. [`crate::repair`] is the
//! operator's way past corruption, as is rejoining a cluster member from
//! the others. Segments of format v1 (an ack marker
//! instead of batch headers) keep their rule, which cannot tell a bit
//! flip in the last write from a torn one; the log never writes into one
//! again.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use crate::error::{OpenError, ReadError, WriteError};
use crate::fs::{File, Fs, create_dir_all_durable};
use crate::record::{self, HEADER_LEN, Kind, MAX_PAYLOAD};
use crate::segment::SegmentName;
use crate::{batch, recovery};

/// What recovery does with a torn last write (see the module docs: only
/// damage shaped like lost sectors of the last write is torn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TornTail {
    /// Cut the torn write whole and open (the default: a write with a
    /// lost sector never completed, so it was never acknowledged).
    Truncate,
    /// Refuse to open, reporting it as corruption (for inspection tools).
    Refuse,
}

/// The log's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Bytes preallocated per segment; a segment rolls when the next record
    /// would not fit. Default 64 MiB (etcd's). A record larger than this
    /// gets a segment of its own, sized to fit.
    pub segment_size: u64,
    /// Segments [`Wal::purge_before`] always keeps, newest first. Default 5
    /// (etcd's `--max-wals`).
    pub keep_segments: usize,
    /// Torn-tail policy. Default [`TornTail::Truncate`].
    pub torn_tail: TornTail,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            segment_size: 64 << 20,
            keep_segments: 5,
            torn_tail: TornTail::Truncate,
        }
    }
}

/// Entries as read back: (raft index, payload), in index order.
pub type Entries = Vec<(u64, Vec<u8>)>;

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// First entry index in the log (`None`: no entries).
    pub first_index: Option<u64>,
    /// Last entry index in the log. With no entries after a truncate or a
    /// reset, the index before the one the next entry must have (e.g.
    /// `Some(S)` after a reset to `S + 1`).
    pub last_index: Option<u64>,
    /// The index the next appended entry must have (`last_index + 1`;
    /// `None`: any, a log that never held an entry).
    pub next_index: Option<u64>,
    /// The newest metadata per key.
    pub meta: BTreeMap<u64, Vec<u8>>,
    /// Bytes cut from a torn tail (0 when the tail was clean).
    pub torn_bytes: u64,
}

#[derive(Debug, Clone, Copy)]
struct Loc {
    seq: u64,
    /// Offset of the record's payload in its segment.
    offset: u64,
    len: u32,
}

/// Writes extend with zeros to this boundary (within a segment's
/// preallocated length). A segment is preallocated with `fallocate`,
/// whose extents on ext4 (and XFS) are *unwritten*: the first write into
/// one converts it, a metadata change that fdatasync must write too — a
/// second device write and wait on every sync of a growing log. Zeros
/// written ahead in the same write convert the next 64 KiB at once, so
/// most syncs write data only. Measured on this repo's VM (ext4, 6 KB
/// per sync): fdatasync p50 137–145 µs → 82–83 µs, mean 144 → 94 µs
/// (docs/BENCHMARKS.md, issue #19). The zeros are what the preallocated
/// space reads as anyway, so recovery sees no difference.
pub(crate) const ZERO_AHEAD: u64 = 64 * 1024;

struct Segment<F: Fs> {
    name: SegmentName,
    path: PathBuf,
    file: F::File,
}

/// An open write-ahead log. Single writer; see the module docs.
pub struct Wal<F: Fs> {
    fs: F,
    dir: PathBuf,
    config: Config,
    /// Live segments, oldest first; the last is the tail.
    segments: Vec<Segment<F>>,
    /// Bytes of the tail segment written to the file.
    written: u64,
    /// The tail segment's bytes before this offset have been written
    /// (records, or zeros written ahead of them, see [`ZERO_AHEAD`]).
    zeroed: u64,
    /// The tail segment's preallocated length.
    allocated: u64,
    /// Encoded records not yet written (they go at `written`).
    pending: Vec<u8>,
    /// The crc chain after the last encoded record.
    crc: u32,
    /// Entry locations, `first_index..=last_index`.
    entries: VecDeque<Loc>,
    first_index: u64,
    last_index: Option<u64>,
    meta: BTreeMap<u64, Vec<u8>>,
    durable_index: Option<u64>,
    failed: bool,
    /// fdatasync calls made by appends (the group-commit ratio's
    /// denominator; a future `etcd_disk_wal_fsync` metric).
    syncs: u64,
    /// Bytes written by [`Wal::sync`] since open (batch headers and
    /// records, not the zero fill ahead of them).
    bytes_written: u64,
    /// The tail is a format v1 segment (found at open): roll before the
    /// first write.
    legacy_tail: bool,
}

impl<F: Fs> std::fmt::Debug for Wal<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("segments", &self.segments.len())
            .field("first_index", &self.first_index)
            .field("last_index", &self.last_index)
            .field("durable_index", &self.durable_index)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

/// The segment files in `dir`, by sequence number; a gap in the numbers
/// is a missing segment (refused: the log cannot be trusted past it).
pub(crate) fn segment_names<F: Fs>(fs: &F, dir: &Path) -> Result<Vec<SegmentName>, OpenError> {
    let mut names: Vec<SegmentName> = fs
        .list(dir)
        .map_err(io_err(dir))?
        .iter()
        .filter_map(|n| SegmentName::parse(n))
        .collect();
    names.sort();
    for w in names.windows(2) {
        if w[1].seq != w[0].seq + 1 {
            return Err(OpenError::MissingSegment {
                before: dir.join(w[0].file_name()),
                after: dir.join(w[1].file_name()),
            });
        }
    }
    Ok(names)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl<F: Fs> Wal<F> {
    /// Open the log in `dir` (created, durably, if missing) and recover it.
    pub fn open(
        fs: F,
        dir: impl Into<PathBuf>,
        config: Config,
    ) -> Result<(Self, Recovered), OpenError> {
        let dir = dir.into();
        create_dir_all_durable(&fs, &dir).map_err(io_err(&dir))?;
        let names = segment_names(&fs, &dir)?;

        let mut wal = Wal {
            fs,
            dir,
            config,
            segments: Vec::new(),
            written: 0,
            zeroed: 0,
            allocated: 0,
            pending: Vec::new(),
            crc: 0,
            entries: VecDeque::new(),
            first_index: 0,
            last_index: None,
            meta: BTreeMap::new(),
            durable_index: None,
            failed: false,
            syncs: 0,
            bytes_written: 0,
            legacy_tail: false,
        };
        let mut recovered = Recovered::default();

        if names.is_empty() {
            wal.new_segment(SegmentName { seq: 0, index: 0 })
                .map_err(|e| match e {
                    WriteError::Io(source) => OpenError::Io {
                        path: wal.dir.clone(),
                        source,
                    },
                    other => OpenError::Io {
                        path: wal.dir.clone(),
                        source: std::io::Error::other(other.to_string()),
                    },
                })?;
            return Ok((wal, recovered));
        }

        let mut seed: Option<u32> = None;
        let count = names.len();
        for (i, name) in names.into_iter().enumerate() {
            let path = wal.dir.join(name.file_name());
            let mut file = wal.fs.open(&path).map_err(io_err(&path))?;
            let data = file.read_all().map_err(io_err(&path))?;
            let last = i + 1 == count;
            if i == 0 && name.index > 0 {
                // The oldest live segment (older ones purged): its name is
                // the index the log expected next when it was opened. Its
                // own Truncate/Reset records replay from there.
                wal.first_index = name.index;
                wal.last_index = Some(name.index - 1);
            }
            if i > 0
                && let Some(li) = wal.last_index
                && name.index != li + 1
            {
                return Err(OpenError::IndexGap {
                    file: path,
                    offset: 0,
                    expected: li + 1,
                    found: name.index,
                });
            }
            let limit = wal.config.segment_size.max(data.len() as u64);
            let s = recovery::scan(&data, seed, limit);
            let (records, end, crc) = match &s.damage {
                None => (s.records, s.end, s.crc),
                Some(d) => {
                    let torn_ok = last && d.torn && wal.config.torn_tail == TornTail::Truncate;
                    if !torn_ok {
                        let reason = if d.torn && !last {
                            format!(
                                "{}; but a torn write can only be in the last segment (a segment is synced before the next one is created)",
                                d.reason
                            )
                        } else if d.torn {
                            format!("{} (TornTail::Refuse)", d.reason)
                        } else {
                            d.reason.clone()
                        };
                        return Err(OpenError::Corrupt {
                            file: path,
                            offset: d.offset,
                            reason,
                            expected: d.expected,
                            found: d.found,
                        });
                    }
                    let mut records = s.records;
                    records.truncate(d.cut_records);
                    (records, d.cut, d.cut_crc)
                }
            };
            if !last && records.is_empty() {
                return Err(OpenError::Corrupt {
                    file: path,
                    offset: 0,
                    reason: "empty segment before the last one".into(),
                    expected: 0,
                    found: 0,
                });
            }
            for (kind, index, offset, payload) in records {
                match kind {
                    Kind::Crc | Kind::Ack | Kind::Batch => {}
                    Kind::Meta => {
                        wal.meta.insert(index, payload);
                    }
                    Kind::Truncate => wal.drop_from(index),
                    Kind::Reset if index == 0 => {
                        return Err(OpenError::Corrupt {
                            file: path,
                            offset: offset - HEADER_LEN as u64,
                            reason: "reset record with next index 0".into(),
                            expected: 0,
                            found: 0,
                        });
                    }
                    Kind::Reset => wal.clear_to(index),
                    Kind::Entry => {
                        if let Some(li) = wal.last_index
                            && index != li + 1
                        {
                            return Err(OpenError::IndexGap {
                                file: path,
                                offset: offset - HEADER_LEN as u64,
                                expected: li + 1,
                                found: index,
                            });
                        }
                        if wal.entries.is_empty() {
                            wal.first_index = index;
                        }
                        wal.entries.push_back(Loc {
                            seq: name.seq,
                            offset,
                            len: payload.len() as u32,
                        });
                        wal.last_index = Some(index);
                    }
                }
            }
            seed = Some(crc);
            if last {
                wal.crc = crc;
                wal.written = end;
                if let Some(d) = &s.damage {
                    let nz = data.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1) as u64;
                    recovered.torn_bytes = nz.saturating_sub(end);
                    tracing::warn!(
                        file = %path.display(),
                        offset = end,
                        bytes = recovered.torn_bytes,
                        reason = %d.reason,
                        "wal: truncating torn tail"
                    );
                    // Cut, then re-extend with zeros so no stale bytes stay
                    // after the new end: the next write must land on zeros
                    // (what recovery's torn-write rule assumes).
                    file.set_len(end).map_err(io_err(&path))?;
                    file.allocate(data.len().max(wal.config.segment_size as usize) as u64)
                        .map_err(io_err(&path))?;
                }
                // Make what we recovered durable before reporting it: a
                // crashed process (not machine) leaves unsynced pages that
                // recovery just read.
                file.sync_data().map_err(io_err(&path))?;
                if end == 0 {
                    // Nothing valid at all (crash right after creating the
                    // segment): write its header afresh.
                    wal.encode_segment_header();
                } else if s.version == 1 {
                    // Never write into a v1 segment: its writes carry no
                    // batch header. The first write rolls.
                    wal.legacy_tail = true;
                }
            }
            wal.segments.push(Segment { name, path, file });
        }
        if let Some(t) = wal.segments.last_mut() {
            let path = t.path.clone();
            wal.allocated = t.file.len().map_err(io_err(&path))?;
        }
        // Recovery read the rest of the tail as zeros, but they may be
        // unwritten extents still: the next writes write zeros ahead.
        wal.zeroed = wal.written;
        // The same for the directory: a segment created just before the
        // process died (e.g. a roll that failed on a full disk) has an
        // entry that may not be durable; appends into it would be
        // acknowledged and then lost with it at a power loss.
        wal.fs.sync_dir(&wal.dir).map_err(io_err(&wal.dir))?;
        wal.durable_index = wal.last_index;
        recovered.first_index = wal.first_index();
        recovered.last_index = wal.last_index;
        recovered.next_index = wal.next_index();
        recovered.meta = wal.meta.clone();
        Ok((wal, recovered))
    }

    /// First entry index (`None` when the log holds no entries).
    pub fn first_index(&self) -> Option<u64> {
        (!self.entries.is_empty()).then_some(self.first_index)
    }

    /// Last entry index.
    pub fn last_index(&self) -> Option<u64> {
        self.last_index
    }

    /// The index the next appended entry must have (`None`: any, a log
    /// that never held an entry, or was truncated from 0).
    pub fn next_index(&self) -> Option<u64> {
        self.last_index.map(|l| l + 1)
    }

    /// Last entry index known durable.
    pub fn durable_index(&self) -> Option<u64> {
        self.durable_index
    }

    /// fdatasyncs issued by [`Wal::sync`] since open.
    pub fn sync_count(&self) -> u64 {
        self.syncs
    }

    /// Bytes written by [`Wal::sync`] since open: batch headers and
    /// records, not the zeros written ahead of them.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// The newest metadata per key.
    pub fn meta(&self) -> &BTreeMap<u64, Vec<u8>> {
        &self.meta
    }

    /// The live segments' file names, oldest first.
    pub fn segment_names(&self) -> Vec<String> {
        self.segments.iter().map(|s| s.name.file_name()).collect()
    }

    fn check(&self) -> Result<(), WriteError> {
        if self.failed {
            return Err(WriteError::Failed);
        }
        Ok(())
    }

    /// Record an I/O failure: the log refuses writes from now on.
    fn fail<T>(&mut self, e: std::io::Error) -> Result<T, WriteError> {
        self.failed = true;
        tracing::error!(dir = %self.dir.display(), error = %e, "wal: write failed; refusing writes until reopened");
        Err(WriteError::Io(e))
    }

    /// Buffer entry `index`. It must be [`Wal::next_index`] (any index when
    /// the log never held an entry and was never truncated or reset).
    pub fn append_entry(&mut self, index: u64, payload: &[u8]) -> Result<(), WriteError> {
        self.check()?;
        if let Some(li) = self.last_index
            && index != li + 1
        {
            return Err(WriteError::IndexGap {
                expected_after: li,
                found: index,
            });
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(WriteError::TooLarge(payload.len()));
        }
        self.make_room(payload.len())?;
        let offset = self.written + self.pending.len() as u64 + HEADER_LEN as u64;
        self.crc = record::encode(&mut self.pending, Kind::Entry, index, payload, self.crc);
        if self.entries.is_empty() {
            self.first_index = index;
        }
        let seq = self.tail().name.seq;
        self.entries.push_back(Loc {
            seq,
            offset,
            len: payload.len() as u32,
        });
        self.last_index = Some(index);
        Ok(())
    }

    /// Buffer metadata under `key` (the newest per key wins on recovery).
    pub fn append_meta(&mut self, key: u64, payload: &[u8]) -> Result<(), WriteError> {
        self.check()?;
        if payload.len() > MAX_PAYLOAD {
            return Err(WriteError::TooLarge(payload.len()));
        }
        self.make_room(payload.len())?;
        self.crc = record::encode(&mut self.pending, Kind::Meta, key, payload, self.crc);
        self.meta.insert(key, payload.to_vec());
        Ok(())
    }

    /// Write everything buffered and fdatasync it (one submission); returns
    /// the last durable entry index.
    pub fn sync(&mut self) -> Result<Option<u64>, WriteError> {
        self.check()?;
        if !self.pending.is_empty() {
            // One write: the batch header (length and a crc per 512-byte
            // sector, see `batch`), then the records. The header is
            // encoded now that the records are known; it is outside the
            // crc chain, so the records' crcs did not depend on it.
            let at = self.written;
            let mut buf =
                Vec::with_capacity(batch::header_len(self.pending.len()) + self.pending.len());
            let h = batch::encode(&mut buf, at, &self.pending) as u64;
            buf.extend_from_slice(&self.pending);
            let batch_len = buf.len() as u64;
            let zeroed = self.zero_ahead(&mut buf, at);
            let r = self.tail_mut().file.write_and_sync(&buf, at);
            self.syncs += 1;
            if let Err(e) = r {
                // `pending` stays: reads of these entries still work.
                return self.fail(e);
            }
            // The buffered entries were located as if the write began
            // with them; they sit after the header.
            let seq = self.tail().name.seq;
            for loc in self.entries.iter_mut().rev() {
                if loc.seq != seq || loc.offset < at {
                    break;
                }
                loc.offset += h;
            }
            self.written += batch_len;
            self.bytes_written += batch_len;
            self.zeroed = zeroed;
            self.pending.clear();
        }
        self.durable_index = self.last_index;
        Ok(self.durable_index)
    }

    /// Extend a write of `buf` at `at` with zeros up to the next
    /// [`ZERO_AHEAD`] boundary (within the preallocated length) when it
    /// reaches past what the segment has had written; returns the new
    /// written-to offset. The write then lands on blocks whose extents
    /// are already written, so its fdatasync syncs data only.
    fn zero_ahead(&self, buf: &mut Vec<u8>, at: u64) -> u64 {
        let end = at + buf.len() as u64;
        if end <= self.zeroed {
            return self.zeroed;
        }
        let target = end.div_ceil(ZERO_AHEAD) * ZERO_AHEAD;
        let target = target.min(self.allocated).max(end);
        buf.resize(buf.len() + (target - end) as usize, 0);
        target
    }

    /// Drop entries `>= index` durably (raft log conflict): appends a
    /// truncate record and syncs. The next entry must be `index`.
    pub fn truncate_from(&mut self, index: u64) -> Result<(), WriteError> {
        self.truncate_buffered(index)?;
        self.sync().map(|_| ())
    }

    /// [`Wal::truncate_from`] without the sync: durable with the next one
    /// (group commit batches it with the entries that replace the suffix).
    pub(crate) fn truncate_buffered(&mut self, index: u64) -> Result<(), WriteError> {
        self.check()?;
        self.make_room(0)?;
        self.crc = record::encode(&mut self.pending, Kind::Truncate, index, &[], self.crc);
        self.drop_from(index);
        Ok(())
    }

    /// Drop every entry durably; the next entry must have index `next`
    /// (>= 1, above or below the old last index). For a raft follower that
    /// installed a snapshot at `next - 1`. Metadata is kept. Appends a reset
    /// record and syncs.
    pub fn reset_to(&mut self, next: u64) -> Result<(), WriteError> {
        self.reset_buffered(next)?;
        self.sync().map(|_| ())
    }

    /// [`Wal::reset_to`] without the sync: the reset is durable with the
    /// next [`Wal::sync`], together with whatever is appended after it; a
    /// crash before that loses the reset and everything after it. Reads
    /// see the reset at once.
    pub fn reset_buffered(&mut self, next: u64) -> Result<(), WriteError> {
        self.check()?;
        if next == 0 {
            return Err(WriteError::ResetToZero);
        }
        self.make_room(0)?;
        self.crc = record::encode(&mut self.pending, Kind::Reset, next, &[], self.crc);
        self.clear_to(next);
        Ok(())
    }

    /// Forget every entry; the next must be `next` (>= 1).
    fn clear_to(&mut self, next: u64) {
        self.entries.clear();
        self.first_index = next;
        self.last_index = Some(next - 1);
        self.durable_index = self.durable_index.min(self.last_index);
    }

    fn drop_from(&mut self, index: u64) {
        if let Some(li) = self.last_index
            && index > li
        {
            return; // nothing at or after `index`
        }
        if self.entries.is_empty() || index <= self.first_index {
            self.entries.clear();
        } else {
            self.entries.truncate((index - self.first_index) as usize);
        }
        self.last_index = index.checked_sub(1);
        self.durable_index = self.durable_index.min(self.last_index);
    }

    /// Remove segments wholly before `index` (every live entry in them is
    /// below it; a segment whose entries were all dropped by a reset or a
    /// truncate holds none), oldest first, always keeping the newest
    /// [`Config::keep_segments`]; syncs what is buffered first, and the
    /// directory after. Returns how many segments were removed.
    ///
    /// What stays replays to the same log: the oldest remaining segment's
    /// name is the index the log expected next when it was opened, which
    /// recovery starts from.
    pub fn purge_before(&mut self, index: u64) -> Result<usize, WriteError> {
        self.check()?;
        if !self.pending.is_empty() {
            // Decide on the durable log: a buffered reset (or truncate)
            // empties segments whose entries the log on disk still holds,
            // and a crash after purging them but before the reset's sync
            // would lose them.
            self.sync()?;
        }
        let keep = self.config.keep_segments.max(1);
        let mut removed = 0;
        while self.segments.len() > keep {
            // Live entries are consecutive and stored in segment order, so
            // the oldest segment's are a prefix of `entries`.
            let seq = self.segments[0].name.seq;
            let live = self.entries.iter().take_while(|l| l.seq == seq).count() as u64;
            if live > 0 && self.first_index + live > index {
                break; // its last live entry, first_index + live - 1, is >= index
            }
            let seg = self.segments.remove(0);
            if let Err(e) = self.fs.remove(&seg.path) {
                return self.fail(e);
            }
            self.entries.drain(..live as usize);
            self.first_index += live;
            removed += 1;
        }
        if removed > 0
            && let Err(e) = self.fs.sync_dir(&self.dir)
        {
            return self.fail(e);
        }
        Ok(removed)
    }

    /// Entries `from..=to` (clamped to the log), in order, with payloads.
    /// Buffered entries that are not yet synced are included.
    pub fn entries(&mut self, from: u64, to: u64) -> Result<Entries, ReadError> {
        let Some(last) = self.last_index else {
            return Ok(Vec::new());
        };
        if self.entries.is_empty() || from < self.first_index {
            return Err(ReadError::NotFound(from));
        }
        let to = to.min(last);
        let mut out = Vec::new();
        let tail_seq = self.tail().name.seq;
        for index in from..=to {
            let loc = self.entries[(index - self.first_index) as usize];
            let mut buf = vec![0u8; loc.len as usize];
            if loc.seq == tail_seq && loc.offset >= self.written {
                let at = (loc.offset - self.written) as usize;
                buf.copy_from_slice(&self.pending[at..at + loc.len as usize]);
            } else {
                let seg = self
                    .segments
                    .iter_mut()
                    .find(|s| s.name.seq == loc.seq)
                    .ok_or(ReadError::NotFound(index))?;
                let mut done = 0;
                while done < buf.len() {
                    let n = seg
                        .file
                        .read_at(&mut buf[done..], loc.offset + done as u64)?;
                    if n == 0 {
                        return Err(ReadError::Corrupt {
                            file: seg.path.clone(),
                            offset: loc.offset,
                        });
                    }
                    done += n;
                }
            }
            out.push((index, buf));
        }
        Ok(out)
    }

    fn tail(&self) -> &Segment<F> {
        self.segments
            .last()
            .expect("a wal always has a tail segment")
    }

    fn tail_mut(&mut self) -> &mut Segment<F> {
        self.segments
            .last_mut()
            .expect("a wal always has a tail segment")
    }

    /// Roll to a new segment if a record with `len` payload bytes would
    /// not fit in the tail (unless the tail holds only its header).
    fn make_room(&mut self, len: usize) -> Result<(), WriteError> {
        let need = record::encoded_len(len) as u64;
        let used = self.written + self.pending.len() as u64;
        let header = batch::header_len(self.pending.len() + need as usize) as u64;
        if !self.legacy_tail
            && (used + header + need <= self.config.segment_size || used <= self.header_len())
        {
            return Ok(());
        }
        self.legacy_tail = false;
        // Seal the old segment: everything buffered goes into it, durably,
        // before the next segment exists.
        self.sync()?;
        let next = SegmentName {
            seq: self.tail().name.seq + 1,
            index: self.last_index.map_or(0, |i| i + 1),
        };
        self.new_segment(next)
    }

    /// Bytes a fresh segment's header records take.
    fn header_len(&self) -> u64 {
        let metas: usize = self
            .meta
            .values()
            .map(|m| record::encoded_len(m.len()))
            .sum();
        (record::encoded_len(4) + metas) as u64
    }

    fn new_segment(&mut self, name: SegmentName) -> Result<(), WriteError> {
        let path = self.dir.join(name.file_name());
        let size = self.config.segment_size;
        let made = (|| {
            let mut file = self.fs.create(&path)?;
            file.allocate(size)?;
            file.sync_data()?;
            self.fs.sync_dir(&self.dir)?;
            Ok::<_, std::io::Error>(file)
        })();
        let file = match made {
            Ok(f) => f,
            Err(e) => return self.fail(e),
        };
        self.segments.push(Segment { name, path, file });
        self.written = 0;
        self.zeroed = 0;
        self.allocated = size;
        self.pending.clear();
        self.encode_segment_header();
        Ok(())
    }

    /// The Crc record and a copy of every metadata record, buffered.
    fn encode_segment_header(&mut self) {
        let prev = self.crc;
        self.crc = record::encode(&mut self.pending, Kind::Crc, 0, &prev.to_le_bytes(), prev);
        let metas: Vec<(u64, Vec<u8>)> = self.meta.iter().map(|(k, v)| (*k, v.clone())).collect();
        for (k, v) in metas {
            self.crc = record::encode(&mut self.pending, Kind::Meta, k, &v, self.crc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimFs;

    fn cfg() -> Config {
        Config {
            segment_size: 1 << 20,
            keep_segments: 1,
            torn_tail: TornTail::Truncate,
        }
    }

    fn open(fs: &SimFs) -> (Wal<SimFs>, Recovered) {
        Wal::open(fs.clone(), "/w", cfg()).unwrap()
    }

    /// Syncs write zeros ahead of the log to the next 64 KiB boundary
    /// (converting preallocated extents once per 64 KiB, not once per
    /// sync), never past the segment's preallocated length, and the
    /// zeros change nothing for recovery.
    #[test]
    fn syncs_write_zeros_ahead_within_the_preallocation() {
        let fs = SimFs::new();
        let cfg = Config {
            segment_size: 150_000,
            ..cfg()
        };
        let (mut wal, _) = Wal::open(fs.clone(), "/w", cfg.clone()).unwrap();
        assert_eq!(wal.allocated, 150_000);
        wal.append_entry(1, &[7u8; 100]).unwrap();
        wal.sync().unwrap();
        assert!(wal.written < ZERO_AHEAD);
        assert_eq!(wal.zeroed, ZERO_AHEAD);
        let path = wal.tail().path.clone();
        let data = fs.contents(&path).unwrap();
        assert!(
            data[wal.written as usize..ZERO_AHEAD as usize]
                .iter()
                .all(|b| *b == 0)
        );
        // Within the zeroed part: no zeros written again.
        wal.append_entry(2, &[8u8; 100]).unwrap();
        wal.sync().unwrap();
        assert_eq!(wal.zeroed, ZERO_AHEAD);
        // Past it: the next boundary; then capped at the preallocation.
        let mut i = 3;
        while wal.written <= ZERO_AHEAD {
            wal.append_entry(i, &[9u8; 1000]).unwrap();
            wal.sync().unwrap();
            i += 1;
        }
        assert_eq!(wal.zeroed, 2 * ZERO_AHEAD);
        while wal.written <= 2 * ZERO_AHEAD {
            wal.append_entry(i, &[9u8; 1000]).unwrap();
            wal.sync().unwrap();
            i += 1;
        }
        assert_eq!(wal.tail().name.seq, 0, "still the first segment");
        assert_eq!(wal.zeroed, 150_000);
        let last = i - 1;
        // A power cut after the last sync loses nothing.
        let crashed = fs.crash();
        let (wal, rec) = Wal::open(crashed, "/w", cfg).unwrap();
        assert_eq!(rec.torn_bytes, 0);
        assert_eq!(wal.last_index(), Some(last));
        assert_eq!(
            wal.zeroed, wal.written,
            "reopened: zeros are written ahead again"
        );
        assert_eq!(wal.allocated, 150_000);
    }

    #[test]
    fn reset_above_and_below_the_last_index() {
        let fs = SimFs::new();
        let (mut wal, _) = open(&fs);
        wal.append_meta(1, b"vote").unwrap();
        for i in 1..=10 {
            wal.append_entry(i, b"old").unwrap();
        }
        wal.sync().unwrap();

        // Above: a follower that installed a snapshot at 99.
        wal.reset_buffered(100).unwrap();
        assert_eq!(
            (wal.first_index(), wal.last_index(), wal.next_index()),
            (None, Some(99), Some(100))
        );
        assert!(matches!(
            wal.append_entry(11, b"x"),
            Err(WriteError::IndexGap {
                expected_after: 99,
                found: 11
            })
        ));
        assert!(matches!(wal.entries(5, 5), Err(ReadError::NotFound(5))));
        wal.append_entry(100, b"new").unwrap();
        assert!(matches!(wal.entries(99, 100), Err(ReadError::NotFound(99))));
        assert_eq!(wal.entries(100, 200).unwrap(), vec![(100, b"new".to_vec())]);

        // Below: the log continues at 3 although it held 100.
        wal.reset_to(3).unwrap();
        wal.append_entry(3, b"three").unwrap();
        wal.sync().unwrap();
        assert_eq!(wal.durable_index(), Some(3));
        drop(wal);

        let (mut wal, rec) = open(&fs.crash());
        assert_eq!(
            (rec.first_index, rec.last_index, rec.next_index),
            (Some(3), Some(3), Some(4))
        );
        assert_eq!(rec.meta.get(&1).map(Vec::as_slice), Some(&b"vote"[..]));
        assert_eq!(wal.entries(3, 3).unwrap(), vec![(3, b"three".to_vec())]);
        assert!(matches!(wal.entries(1, 3), Err(ReadError::NotFound(1))));
    }

    #[test]
    fn reset_to_one_and_to_zero() {
        let fs = SimFs::new();
        let (mut wal, rec) = open(&fs);
        assert_eq!(rec.next_index, None);
        assert!(matches!(wal.reset_to(0), Err(WriteError::ResetToZero)));
        // Refused without breaking the log.
        wal.append_entry(7, b"any index first").unwrap();
        wal.reset_to(1).unwrap();
        assert_eq!(wal.next_index(), Some(1));
        assert!(wal.append_entry(2, b"x").is_err());
        drop(wal);
        // A reset with nothing after it survives reopen.
        let (mut wal, rec) = open(&fs.crash());
        assert_eq!(
            (rec.first_index, rec.last_index, rec.next_index),
            (None, Some(0), Some(1))
        );
        assert!(wal.append_entry(8, b"x").is_err());
        wal.append_entry(1, b"one").unwrap();
    }

    /// Hand-built segment: records after a reset must follow it.
    fn image(records: &[(Kind, u64)]) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut crc = record::encode(&mut buf, Kind::Crc, 0, &0u32.to_le_bytes(), 0);
        for (kind, index) in records {
            let payload: &[u8] = if *kind == Kind::Entry { b"p" } else { &[] };
            crc = record::encode(&mut buf, *kind, *index, payload, crc);
        }
        buf
    }

    fn open_image(records: &[(Kind, u64)]) -> Result<(Wal<SimFs>, Recovered), OpenError> {
        let fs = SimFs::new();
        drop(open(&fs));
        let seg = Path::new("/w").join(SegmentName { seq: 0, index: 0 }.file_name());
        fs.set_contents(&seg, image(records)).unwrap();
        Wal::open(fs, "/w", cfg())
    }

    #[test]
    fn recovery_checks_entries_against_the_reset() {
        use Kind::{Entry, Reset};
        let (mut wal, rec) =
            open_image(&[(Entry, 1), (Entry, 2), (Reset, 40), (Entry, 40)]).unwrap();
        assert_eq!((rec.first_index, rec.last_index), (Some(40), Some(40)));
        assert_eq!(wal.entries(40, 40).unwrap().len(), 1);
        match open_image(&[(Entry, 1), (Reset, 40), (Entry, 2)]) {
            Err(OpenError::IndexGap {
                offset,
                expected,
                found,
                ..
            }) => assert_eq!((offset, expected, found), (32 + 32 + 24, 40, 2)),
            other => panic!("expected IndexGap, got {other:?}"),
        }
        assert!(matches!(
            open_image(&[(Entry, 1), (Reset, 0)]),
            Err(OpenError::Corrupt { offset: 64, .. })
        ));
    }

    #[test]
    fn purge_removes_segments_a_reset_emptied() {
        let fs = SimFs::new();
        let small = Config {
            segment_size: 1024,
            keep_segments: 1,
            torn_tail: TornTail::Truncate,
        };
        let (mut wal, _) = Wal::open(fs.clone(), "/w", small.clone()).unwrap();
        for i in 1..=40 {
            wal.append_entry(i, &[i as u8; 100]).unwrap();
        }
        wal.reset_to(5).unwrap();
        wal.append_entry(5, b"five").unwrap();
        wal.sync().unwrap();
        let before = wal.segment_names().len();
        assert!(before > 3);
        // Every older segment holds only entries the reset dropped, so
        // they go even though their names are above 5.
        assert_eq!(wal.purge_before(5).unwrap(), before - 1);
        assert_eq!(wal.first_index(), Some(5));
        drop(wal);
        let (mut wal, rec) = Wal::open(fs.crash(), "/w", small).unwrap();
        assert_eq!((rec.first_index, rec.last_index), (Some(5), Some(5)));
        assert_eq!(wal.entries(5, 5).unwrap()[0].1, b"five");
    }
}
