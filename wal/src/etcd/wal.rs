//! etcd's WAL directory: which segments to read and what their records
//! mean once read (etcd's `wal.Open` + `ReadAll`, and
//! `ValidSnapshotEntries`).
//!
//! - Segments are the files named `<seq:016x>-<index:016x>.wal` (16
//!   lowercase hex digits each, as etcd writes them); other files (`0.tmp`,
//!   the next segment etcd preallocates; `*.broken`) are ignored. Names
//!   sort by `seq`, which must rise by one from the first segment read to
//!   the last (etcd's `isValidSeq`).
//! - [`read_wal`] from snapshot point `(index, term)` starts at the last
//!   segment whose `index` is <= the snapshot index (etcd's
//!   `searchIndex`) and reads it and every later one.
//! - Records: the last state record wins; every metadata record must
//!   equal the first (raw bytes); an entry at or below the snapshot index
//!   is checked and dropped; an entry above it truncates the entries from
//!   its index on and is appended (raft overwrote an uncommitted suffix),
//!   and may not leave a gap; a snapshot record at the snapshot index must
//!   carry its term, and one must be found (etcd's
//!   `ErrSnapshotNotFound`); any other record type is corruption.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use prost::Message;

use super::error::{Error, Result, io_err};
use super::frame::{Frame, Frames};
use super::pb;
use super::{
    ConfState, Entry, EntryKind, HardState, Metadata, RecordType, SnapshotPoint, TornTail, Wal,
    WalSnapshot,
};
use crate::SegmentName;

/// Buffer for reading a segment (frames are small; 64 KiB keeps the
/// number of reads of a 64 MB segment low).
const READ_BUF: usize = 64 * 1024;

/// One segment file.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub(crate) name: SegmentName,
    pub(crate) path: PathBuf,
}

/// The segments in `dir`, in name order.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<Segment>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let e = e.map_err(io_err(dir))?;
        let Some(name) = e.file_name().to_str().and_then(SegmentName::parse) else {
            continue;
        };
        out.push(Segment {
            name,
            path: e.path(),
        });
    }
    out.sort_by_key(|s| s.name);
    Ok(out)
}

/// Segment sequence numbers must rise by one.
fn check_seq(segs: &[Segment]) -> Result<()> {
    for w in segs.windows(2) {
        if w[0].name.seq.checked_add(1) != Some(w[1].name.seq) {
            return Err(Error::MissingSegment {
                before: w[0].path.clone(),
                after: w[1].path.clone(),
            });
        }
    }
    Ok(())
}

/// Read `segs` in order as one chained log, handing each record to `f`
/// with its file and offset; returns the torn tail of the last segment,
/// if any (nothing after it is read).
fn scan(
    segs: &[Segment],
    f: &mut dyn FnMut(&Path, u64, pb::Record) -> Result<()>,
) -> Result<Option<TornTail>> {
    let mut chain = 0u32;
    for (i, seg) in segs.iter().enumerate() {
        let file = File::open(&seg.path).map_err(io_err(&seg.path))?;
        let len = file.metadata().map_err(io_err(&seg.path))?.len();
        let last = i + 1 == segs.len();
        let mut frames = Frames::new(
            BufReader::with_capacity(READ_BUF, file),
            seg.path.clone(),
            len,
            last,
        );
        loop {
            match frames.next(&mut chain)? {
                Frame::Record { offset, record } => f(&seg.path, offset, record)?,
                Frame::End => break,
                Frame::Torn(t) => return Ok(Some(t)),
            }
        }
    }
    Ok(None)
}

fn decode<M: Message + Default>(file: &Path, offset: u64, what: &str, data: &[u8]) -> Result<M> {
    M::decode(data).map_err(|e| Error::Corrupt {
        file: file.to_path_buf(),
        offset,
        expected: format!("a {what} in the record's data"),
        found: format!("undecodable bytes ({e})"),
    })
}

impl From<pb::ConfState> for ConfState {
    fn from(c: pb::ConfState) -> Self {
        Self {
            voters: c.voters,
            learners: c.learners,
            voters_outgoing: c.voters_outgoing,
            learners_next: c.learners_next,
            auto_leave: c.auto_leave,
        }
    }
}

fn hard_state(file: &Path, offset: u64, data: &[u8]) -> Result<HardState> {
    let s: pb::HardState = decode(file, offset, "raftpb.HardState", data)?;
    Ok(HardState {
        term: s.term,
        vote: s.vote,
        commit: s.commit,
    })
}

fn wal_snapshot(file: &Path, offset: u64, data: &[u8]) -> Result<WalSnapshot> {
    let s: pb::WalSnapshot = decode(file, offset, "walpb.Snapshot", data)?;
    Ok(WalSnapshot {
        point: SnapshotPoint {
            index: s.index,
            term: s.term,
        },
        conf_state: s.conf_state.map(ConfState::from),
    })
}

/// What [`read_wal`] gathers while replaying records.
struct Replay {
    from: SnapshotPoint,
    metadata: Option<(Vec<u8>, Metadata)>,
    hard_state: HardState,
    entries: Vec<Entry>,
    snapshots: Vec<WalSnapshot>,
    matched: bool,
}

impl Replay {
    fn record(&mut self, file: &Path, offset: u64, rec: pb::Record) -> Result<()> {
        match RecordType::from_i64(rec.r#type) {
            Some(RecordType::Metadata) => {
                let m: pb::Metadata = decode(file, offset, "etcdserverpb.Metadata", &rec.data)?;
                let m = Metadata {
                    node_id: m.node_id,
                    cluster_id: m.cluster_id,
                };
                match &self.metadata {
                    None => self.metadata = Some((rec.data, m)),
                    Some((raw, first)) if *raw != rec.data => {
                        return Err(Error::MetadataConflict {
                            file: file.to_path_buf(),
                            offset,
                            expected_node: first.node_id,
                            expected_cluster: first.cluster_id,
                            found_node: m.node_id,
                            found_cluster: m.cluster_id,
                        });
                    }
                    Some(_) => {}
                }
            }
            Some(RecordType::Entry) => {
                let e: pb::Entry = decode(file, offset, "raftpb.Entry", &rec.data)?;
                let kind = match e.r#type {
                    0 => EntryKind::Normal,
                    1 => EntryKind::ConfChange,
                    2 => EntryKind::ConfChangeV2,
                    t => {
                        return Err(Error::Corrupt {
                            file: file.to_path_buf(),
                            offset,
                            expected: "entry type 0, 1 or 2".into(),
                            found: format!("entry type {t} (index {})", e.index),
                        });
                    }
                };
                if e.index > self.from.index {
                    // Position of this entry in `entries`, which holds the
                    // indexes from.index + 1 ... contiguously.
                    let at = e.index - self.from.index - 1;
                    if at > self.entries.len() as u64 {
                        return Err(Error::EntryGap {
                            file: file.to_path_buf(),
                            offset,
                            expected: self.from.index + self.entries.len() as u64 + 1,
                            found: e.index,
                        });
                    }
                    self.entries.truncate(at as usize);
                    self.entries.push(Entry {
                        term: e.term,
                        index: e.index,
                        kind,
                        data: e.data,
                    });
                }
            }
            Some(RecordType::State) => self.hard_state = hard_state(file, offset, &rec.data)?,
            // Checked and applied to the chain by the frame reader.
            Some(RecordType::Crc) => {}
            Some(RecordType::Snapshot) => {
                let s = wal_snapshot(file, offset, &rec.data)?;
                if s.point.index == self.from.index {
                    if s.point.term != self.from.term {
                        return Err(Error::SnapshotMismatch {
                            file: file.to_path_buf(),
                            offset,
                            index: s.point.index,
                            expected: self.from.term,
                            found: s.point.term,
                        });
                    }
                    self.matched = true;
                }
                self.snapshots.push(s);
            }
            None => {
                return Err(Error::Corrupt {
                    file: file.to_path_buf(),
                    offset,
                    expected: "record type 1 to 5".into(),
                    found: format!("record type {}", rec.r#type),
                });
            }
        }
        Ok(())
    }
}

/// Read etcd's WAL in `wal_dir` as etcd does when it restarts from the
/// snapshot at `from` (`(0, 0)` when it has none): the entries after
/// `from.index`, the last hard state, the metadata, and the snapshot
/// records met on the way. See the module rules; errors name the file and
/// byte offset. Never writes.
pub fn read_wal(wal_dir: &Path, from: SnapshotPoint) -> Result<Wal> {
    let all = list_segments(wal_dir)?;
    let Some(first) = all.first() else {
        return Err(Error::NoSegments {
            dir: wal_dir.to_path_buf(),
        });
    };
    let Some(start) = all.iter().rposition(|s| s.name.index <= from.index) else {
        return Err(Error::SegmentNotFound {
            dir: wal_dir.to_path_buf(),
            index: from.index,
            oldest: first.path.clone(),
        });
    };
    let segs = &all[start..];
    check_seq(segs)?;
    let mut replay = Replay {
        from,
        metadata: None,
        hard_state: HardState::default(),
        entries: Vec::new(),
        snapshots: Vec::new(),
        matched: false,
    };
    let torn_tail = scan(segs, &mut |file, offset, rec| {
        replay.record(file, offset, rec)
    })?;
    let Some((_, metadata)) = replay.metadata else {
        return Err(Error::NoMetadata {
            dir: wal_dir.to_path_buf(),
        });
    };
    if !replay.matched {
        return Err(Error::SnapshotNotFound {
            dir: wal_dir.to_path_buf(),
            point: from,
        });
    }
    Ok(Wal {
        from,
        metadata,
        hard_state: replay.hard_state,
        entries: replay.entries,
        snapshots: replay.snapshots,
        segments: segs.iter().map(|s| s.path.clone()).collect(),
        torn_tail,
    })
}

/// The snapshot points etcd may restart from, oldest first: the snapshot
/// records of every segment in `wal_dir` whose index is at most the last
/// hard state's commit (etcd's `ValidSnapshotEntries`, which etcd 3.5 and
/// 3.4.23 use to pick a `.snap` file). Reads every segment, checking
/// every crc; records are not otherwise interpreted here (a torn tail of
/// the last segment ends the scan, as in etcd).
pub fn snapshot_points(wal_dir: &Path) -> Result<Vec<SnapshotPoint>> {
    let segs = list_segments(wal_dir)?;
    if segs.is_empty() {
        return Err(Error::NoSegments {
            dir: wal_dir.to_path_buf(),
        });
    }
    check_seq(&segs)?;
    let mut points = Vec::new();
    let mut commit = 0;
    scan(&segs, &mut |file, offset, rec| {
        match RecordType::from_i64(rec.r#type) {
            Some(RecordType::Snapshot) => points.push(wal_snapshot(file, offset, &rec.data)?.point),
            Some(RecordType::State) => commit = hard_state(file, offset, &rec.data)?.commit,
            _ => {}
        }
        Ok(())
    })?;
    points.retain(|p| p.index <= commit);
    Ok(points)
}
