//! Errors of the etcd data dir reader: each names the file, the byte
//! offset of the structure found wrong, what was expected and what was
//! found.

use std::io;
use std::path::PathBuf;

use super::SnapshotPoint;

/// Reading an etcd data dir failed. Nothing was written: the reader
/// only ever opens files for reading.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on a file or directory.
    #[error("etcd: {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Bytes that are not what etcd writes: a length field etcd's encoder
    /// would not produce, a record too large, a record that does not
    /// decode, a frame cut short anywhere but at the tail of the last
    /// segment, an unknown record type.
    #[error("etcd: corrupt {file} at byte offset {offset}: expected {expected}, found {found}")]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// Byte offset of the frame (or field) found wrong.
        offset: u64,
        /// What should be there.
        expected: String,
        /// What is there.
        found: String,
    },
    /// A record (or a `.snap` file) whose CRC-32C does not match.
    #[error(
        "etcd: crc mismatch in {file} at byte offset {offset}: expected {expected:#010x}, found {found:#010x}"
    )]
    Crc {
        /// The file.
        file: PathBuf,
        /// Byte offset of the frame (0 for a whole `.snap` file).
        offset: u64,
        /// The crc computed from the bytes (for a WAL record: the running
        /// crc; for a crc record: the running crc it must carry on).
        expected: u32,
        /// The crc stored in the file.
        found: u32,
    },
    /// The WAL dir holds no segment (`<seq:016x>-<index:016x>.wal`).
    #[error("etcd: no WAL segment in {dir}")]
    NoSegments {
        /// The WAL dir.
        dir: PathBuf,
    },
    /// No segment can hold the entries after the snapshot index (etcd's
    /// "wal: file not found"): the oldest segment starts past it.
    #[error(
        "etcd: no WAL segment in {dir} starts at or before index {index} (the oldest is {oldest})"
    )]
    SegmentNotFound {
        /// The WAL dir.
        dir: PathBuf,
        /// The snapshot index the log must continue from.
        index: u64,
        /// The oldest segment.
        oldest: PathBuf,
    },
    /// Segment sequence numbers are not consecutive: a segment is missing.
    #[error("etcd: missing WAL segment: {before} is followed by {after}")]
    MissingSegment {
        /// The segment before the gap.
        before: PathBuf,
        /// The segment after it.
        after: PathBuf,
    },
    /// The segments read hold no metadata record.
    #[error("etcd: no metadata record in the WAL segments of {dir}")]
    NoMetadata {
        /// The WAL dir.
        dir: PathBuf,
    },
    /// A metadata record differs from the first one read (etcd's
    /// `ErrMetadataConflict`).
    #[error(
        "etcd: metadata conflict in {file} at byte offset {offset}: expected node {expected_node:x} cluster {expected_cluster:x}, found node {found_node:x} cluster {found_cluster:x}"
    )]
    MetadataConflict {
        /// The segment.
        file: PathBuf,
        /// Byte offset of the frame.
        offset: u64,
        /// Node id of the first metadata record.
        expected_node: u64,
        /// Cluster id of the first metadata record.
        expected_cluster: u64,
        /// Node id found.
        found_node: u64,
        /// Cluster id found.
        found_cluster: u64,
    },
    /// An entry leaves a gap after the entries read so far (etcd's
    /// `ErrSliceOutOfRange`): a record is missing.
    #[error(
        "etcd: entry gap in {file} at byte offset {offset}: expected an index at most {expected}, found {found}"
    )]
    EntryGap {
        /// The segment.
        file: PathBuf,
        /// Byte offset of the frame.
        offset: u64,
        /// The highest index that could come next.
        expected: u64,
        /// The index found.
        found: u64,
    },
    /// A WAL snapshot record at the snapshot index carries another term
    /// (etcd's `ErrSnapshotMismatch`).
    #[error(
        "etcd: snapshot record in {file} at byte offset {offset} for index {index}: expected term {expected}, found {found}"
    )]
    SnapshotMismatch {
        /// The segment.
        file: PathBuf,
        /// Byte offset of the frame.
        offset: u64,
        /// The snapshot index.
        index: u64,
        /// The term asked for.
        expected: u64,
        /// The term in the record.
        found: u64,
    },
    /// The segments read hold no snapshot record for the point asked for
    /// (etcd's `ErrSnapshotNotFound`).
    #[error(
        "etcd: the WAL in {dir} has no snapshot record for index {} term {}",
        point.index,
        point.term
    )]
    SnapshotNotFound {
        /// The WAL dir.
        dir: PathBuf,
        /// The snapshot point asked for.
        point: SnapshotPoint,
    },
    /// The v2 store JSON inside a `.snap` file does not hold what etcd
    /// puts there.
    #[error("etcd: v2 store in {file}: {reason}")]
    V2Store {
        /// The `.snap` file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A message given as bytes (a conf change in an entry) does not
    /// decode.
    #[error("etcd: cannot decode {what}: {reason}")]
    Decode {
        /// The message.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Result with the etcd reader's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
