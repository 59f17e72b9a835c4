//! WAL errors, split by operation: opening (recovery) can find corruption;
//! writing can fail and then sticks; reading can fail on I/O.

use std::io;
use std::path::PathBuf;

/// Opening (and recovering) the log failed; nothing on disk was changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// An I/O error on a file or directory.
    #[error("wal: {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Damage that is not a torn last write (see the `recovery` rules in
    /// docs/FORMAT.md): a record or batch header whose bytes are on disk
    /// but fail their crc, damage followed by later writes, damage in any
    /// segment but the last. The message says the way out.
    #[error(
        "wal: corrupt record in {file} at byte offset {offset}: {reason} (expected crc {expected:#010x}, found {found:#010x}); nothing was changed. {advice}",
        advice = advice(.file)
    )]
    Corrupt {
        /// The segment.
        file: PathBuf,
        /// Byte offset of the record in that file.
        offset: u64,
        /// What is wrong.
        reason: String,
        /// The crc the chain expects.
        expected: u32,
        /// The crc the record carries.
        found: u32,
    },
    /// Raft indexes do not follow each other (a lost segment or record).
    #[error(
        "wal: index gap in {file} at byte offset {offset}: expected index {expected}, found {found}"
    )]
    IndexGap {
        /// The segment.
        file: PathBuf,
        /// Byte offset of the record (0 for a segment name).
        offset: u64,
        /// The index that should come next.
        expected: u64,
        /// The index found.
        found: u64,
    },
    /// Segment sequence numbers are not consecutive (a missing file).
    #[error("wal: missing segment between {before} and {after}")]
    MissingSegment {
        /// The segment before the gap.
        before: PathBuf,
        /// The segment after it.
        after: PathBuf,
    },
}

/// What an operator can do about a [`OpenError::Corrupt`] log in the
/// directory holding `file`.
fn advice(file: &std::path::Path) -> String {
    let dir = crate::fs::parent_of(file).display();
    format!(
        "To drop this record and everything after it, run `ferroctl wal repair --wal-dir {dir}` \
         (it prints what it would drop, by raft index) and then again with --confirm. \
         A member of a cluster can instead rejoin from the others: `etcdctl member remove` it, \
         wipe its data dir, `etcdctl member add` it again and start it with \
         --initial-cluster-state existing. See docs/RECOVERY.md."
    )
}

/// An append, sync or truncate failed. After an I/O failure the log is
/// [`WriteError::Failed`] for good: reopen it (recovery decides what is on
/// disk); retrying a failed fdatasync is unsafe (the kernel may have
/// dropped the dirty pages and report success next time).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The I/O error that broke the log.
    #[error("wal: write failed: {0}")]
    Io(#[from] io::Error),
    /// An earlier write or sync failed; the log refuses writes until reopened.
    #[error("wal: an earlier write or sync failed; reopen the log")]
    Failed,
    /// An entry's index is not the next one.
    #[error("wal: entry index {found} does not follow the last index {expected_after}")]
    IndexGap {
        /// The log's last index.
        expected_after: u64,
        /// The index given.
        found: u64,
    },
    /// A reset to index 0 (the next index must be at least 1).
    #[error("wal: reset to index 0; the next entry index must be at least 1")]
    ResetToZero,
    /// A payload over [`crate::MAX_PAYLOAD`].
    #[error("wal: payload of {0} bytes is over the limit")]
    TooLarge(usize),
}

/// Reading entries failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// An I/O error.
    #[error("wal: read failed: {0}")]
    Io(#[from] io::Error),
    /// The index is not in the log (purged, or beyond the end).
    #[error("wal: index {0} is not in the log")]
    NotFound(u64),
    /// The bytes read back do not decode (the file changed under us).
    #[error("wal: record at {file} offset {offset} no longer decodes")]
    Corrupt {
        /// The segment.
        file: PathBuf,
        /// Byte offset.
        offset: u64,
    },
}
