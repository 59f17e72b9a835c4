//! A validating, read-only reader of etcd's own data dir (etcd 3.4 and
//! 3.5): its WAL segments and `.snap` files. Adopting an etcd dir means
//! reading its bbolt backend ([`crate::bolt`]) at its consistent index
//! and replaying the committed entries after it; this module gives those
//! entries, the raft hard state, the member and cluster ids, and the
//! membership held in the newest usable snapshot. It never creates,
//! renames, truncates or writes a file (etcd repairs a torn WAL tail and
//! renames broken snapshots at start-up; this reader reports them).
//!
//! Files (as etcd 3.4.23 and 3.5.1 write them; checked on real dirs):
//!
//! ```text
//! <data-dir>/member/wal/ (or --wal-dir)
//!     <seq:016x>-<index:016x>.wal   a segment: seq 0, 1, 2, ...; index = raft index of the
//!                                   first entry it may hold (last index + 1 when cut)
//!                                   preallocated to 64,000,000 bytes (zeros after the records);
//!                                   a segment that was cut is truncated to its records
//!     0.tmp, 1.tmp                  the next segment, preallocated (ignored)
//! <data-dir>/member/snap/
//!     <term:016x>-<index:016x>.snap snapshots (see snap)
//!     db                            the bbolt backend (crate::bolt)
//!     <index:016x>.snap.db          a backend received from a leader (ignored)
//! ```
//!
//! A segment is a run of 8-byte-aligned frames (drawn in `frame`):
//!
//! ```text
//! length field u64 LE: len in bits 0..=55, 0x80|pad in the top byte when pad != 0
//! record (walpb.Record, protobuf):  1 type int64 | 2 crc uint32 | 3 data bytes
//! pad: (8 - len % 8) % 8 zero bytes;   a zero length field ends the segment
//!
//! type 1 metadata  data = etcdserverpb.Metadata {1 node_id uint64, 2 cluster_id uint64}
//!      2 entry     data = raftpb.Entry {1 type enum (0 normal, 1 conf change, 2 conf change v2),
//!                                       2 term uint64, 3 index uint64, 4 data bytes}
//!      3 state     data = raftpb.HardState {1 term, 2 vote, 3 commit}
//!      4 crc       no data; crc = the running crc carried into this segment
//!      5 snapshot  data = walpb.Snapshot {1 index, 2 term, 3 conf_state (3.5 only)}
//! crc: CRC-32C (Castagnoli) of data, continued from the previous record's crc
//!
//! segment 0:   crc(0) | metadata | snapshot{0,0} | entries and states ...
//! segment n:   crc(running) | metadata | state (when not empty) | entries and states ...
//! snapshot records follow each .snap file etcd saves (after the entry at that index)
//! ```
//!
//! Normal entries hold etcd requests (`etcdserverpb.InternalRaftRequest`,
//! or a v2 `etcdserverpb.Request` for etcd's own `/0/...` writes); this
//! module leaves them as bytes. Conf change entries decode with
//! [`ConfChange`] / [`ConfChangeV2`].
//!
//! [`read_member`] does what etcd 3.4.23 and 3.5 do at restart: the
//! snapshot points the WAL records (up to the last hard state's commit,
//! [`snapshot_points`]), the newest `.snap` that loads and is one of them
//! (newer ones that fail to load or are not in the WAL are reported as
//! skipped), then the WAL from that point ([`read_wal`]; from `(0, 0)`
//! when there is no usable snapshot). Entries past `hard_state.commit`
//! are not known to be committed: apply only [`Wal::committed`].
//!
//! Known differences from etcd, all on the strict side: segment names
//! must be canonical (16 lowercase hex digits each; etcd's `Sscanf` takes
//! a few odd spellings too, and any other file is ignored by both),
//! segment sequence numbers are checked when listing snapshot points too,
//! length fields and pad bytes must be what etcd's encoder writes, and an
//! I/O error on a `.snap` file is an error rather than a reason to skip
//! it. `.snap` files are taken by suffix and name order, as etcd does.

mod conf_change;
mod error;
mod frame;
mod pb;
mod snap;
mod v2store;
mod wal;

use std::path::{Path, PathBuf};

pub use conf_change::{ConfChange, ConfChangeKind, ConfChangeTransition, ConfChangeV2};
pub use error::{Error, Result};
pub use frame::{MAX_FRAME, check_segment, crc32c_update};
pub use snap::{Snapshot, load_snapshot, read_snapshot};
pub use v2store::{Member, V2Store};
pub use wal::{read_wal, snapshot_points};

/// Size etcd preallocates each segment to (`wal.SegmentSizeBytes`,
/// 64 × 10⁶ bytes, not 64 MiB); informational, a segment etcd cut is
/// shorter.
pub const SEGMENT_SIZE: u64 = 64_000_000;

/// Record types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i64)]
pub(crate) enum RecordType {
    Metadata = 1,
    Entry = 2,
    State = 3,
    Crc = 4,
    Snapshot = 5,
}

impl RecordType {
    pub(crate) fn from_i64(v: i64) -> Option<Self> {
        Some(match v {
            1 => Self::Metadata,
            2 => Self::Entry,
            3 => Self::State,
            4 => Self::Crc,
            5 => Self::Snapshot,
            _ => return None,
        })
    }
}

/// A raft snapshot's position: the index and term of the last entry it
/// covers. `(0, 0)` is the empty snapshot every WAL starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SnapshotPoint {
    /// Raft index.
    pub index: u64,
    /// Raft term.
    pub term: u64,
}

/// The WAL's metadata record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Metadata {
    /// This member's id.
    pub node_id: u64,
    /// The cluster's id.
    pub cluster_id: u64,
}

/// raft's hard state (zero when the WAL holds none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HardState {
    /// Current term.
    pub term: u64,
    /// Vote in that term (0: none).
    pub vote: u64,
    /// Highest index known committed.
    pub commit: u64,
}

/// raft's configuration (`raftpb.ConfState`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfState {
    /// Voters.
    pub voters: Vec<u64>,
    /// Learners.
    pub learners: Vec<u64>,
    /// Voters of the outgoing config (joint consensus).
    pub voters_outgoing: Vec<u64>,
    /// Learners once the joint config is left.
    pub learners_next: Vec<u64>,
    /// Leave the joint config automatically.
    pub auto_leave: bool,
}

/// What an entry's data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// An etcd request (or empty: a new leader's first entry).
    Normal,
    /// A [`ConfChange`].
    ConfChange,
    /// A [`ConfChangeV2`].
    ConfChangeV2,
}

/// A raft log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Term.
    pub term: u64,
    /// Index.
    pub index: u64,
    /// What `data` is.
    pub kind: EntryKind,
    /// The payload.
    pub data: Vec<u8>,
}

/// A snapshot record met in the WAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalSnapshot {
    /// Index and term.
    pub point: SnapshotPoint,
    /// The configuration (written by etcd 3.5, absent from 3.4's records).
    pub conf_state: Option<ConfState>,
}

/// Where the last segment ends in a torn write: the bytes from `offset`
/// on were not read (etcd truncates them at start-up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The last segment.
    pub file: PathBuf,
    /// Byte offset of the first frame not read.
    pub offset: u64,
    /// What was found there.
    pub reason: String,
}

/// The WAL as etcd reads it at restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wal {
    /// The snapshot point it was read from.
    pub from: SnapshotPoint,
    /// Member and cluster ids.
    pub metadata: Metadata,
    /// The last hard state record.
    pub hard_state: HardState,
    /// The entries after `from.index`, contiguous, as raft left them
    /// (later records overwrite earlier ones from their index on). May run
    /// past `hard_state.commit`.
    pub entries: Vec<Entry>,
    /// Snapshot records in the segments read, in order.
    pub snapshots: Vec<WalSnapshot>,
    /// The segments read, in order.
    pub segments: Vec<PathBuf>,
    /// A torn write at the end of the last segment, if any.
    pub torn_tail: Option<TornTail>,
}

impl Wal {
    /// The entries known committed: those up to `hard_state.commit`.
    pub fn committed(&self) -> &[Entry] {
        let n = self.hard_state.commit.saturating_sub(self.from.index);
        let n = usize::try_from(n)
            .unwrap_or(usize::MAX)
            .min(self.entries.len());
        &self.entries[..n]
    }

    /// Index of the last entry (the snapshot index when there is none).
    pub fn last_index(&self) -> u64 {
        self.entries.last().map_or(self.from.index, |e| e.index)
    }
}

/// A `.snap` file newer than the one chosen, passed over.
#[derive(Debug)]
pub struct SkippedSnapshot {
    /// The file.
    pub file: PathBuf,
    /// Why it does not load (etcd renames such a file to `.broken`), or
    /// `None` when it loads but the WAL has no snapshot record for it
    /// (an orphan: etcd saves the file before the record).
    pub reason: Option<Error>,
}

/// What etcd restarts from.
#[derive(Debug)]
pub struct MemberDir {
    /// The snapshot chosen, if any.
    pub snapshot: Option<Snapshot>,
    /// Newer `.snap` files passed over, newest first.
    pub skipped: Vec<SkippedSnapshot>,
    /// The WAL read from the snapshot's point (or `(0, 0)`).
    pub wal: Wal,
}

/// Read an etcd member's data dir as etcd 3.4.23 / 3.5 do at restart
/// (module docs): `data_dir/member/snap`, and the WAL in `wal_dir`
/// (etcd's `--wal-dir`) or else `data_dir/member/wal`. Never writes.
pub fn read_member(data_dir: &Path, wal_dir: Option<&Path>) -> Result<MemberDir> {
    let wal_dir = wal_dir.map_or_else(|| data_dir.join("member").join("wal"), Path::to_path_buf);
    let snap_dir = data_dir.join("member").join("snap");
    let points = snapshot_points(&wal_dir)?;
    let (snapshot, skipped) = snap::choose(&snap_dir, &|p| points.contains(&p))?;
    let from = snapshot.as_ref().map(|s| s.point).unwrap_or_default();
    let wal = read_wal(&wal_dir, from)?;
    Ok(MemberDir {
        snapshot,
        skipped,
        wal,
    })
}

#[cfg(test)]
mod tests;
