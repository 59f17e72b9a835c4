//! ferrocd-wal: the write-ahead log that holds a node's raft log, and its
//! snapshot files.
//!
//! - [`Wal`]: segmented log (`<seq:016x>-<index:016x>.wal`), records
//!   chained by crc32, one write + one fdatasync per [`Wal::sync`] (each
//!   write opens with a batch header: its length and a crc per 512-byte
//!   sector), crash recovery that cuts only a provably torn last write and
//!   refuses any other damage ([`OpenError::Corrupt`] names the file and
//!   offset; [`repair`] drops it on the operator's word), suffix
//!   truncation, resets (continue the log at any index after a snapshot),
//!   purging behind snapshots.
//! - [`GroupCommit`]: concurrent appenders share one fdatasync; the
//!   batching rule is the sans-IO [`Batcher`].
//! - [`SnapStore`]: snapshot files (`<term:016x>-<index:016x>.snap`), atomic
//!   and durable, crc-checked on load, payload page-aligned for mapping.
//! - [`Fs`] / [`File`]: the file layer; [`UringFs`] appends with `pwrite`
//!   + `fdatasync` (io_uring for other writes and fallocate), [`SimFs`] models power loss for tests.
//! - [`record`]: the record codec (also the fuzz target's entry point).
//! - [`etcd`]: a validating, read-only reader of etcd 3.4/3.5's own WAL
//!   segments and `.snap` files (adopting an etcd data dir).
//!
//! Byte layouts are drawn in `docs/FORMAT.md`.

mod batch;
pub mod bolt;
mod error;
pub mod etcd;
mod fs;
mod group_commit;
mod log;
pub mod record;
mod recovery;
mod repair;
mod segment;
mod snap;

pub use error::{OpenError, ReadError, WriteError};
pub use fs::{Fault, File, Fs, SimFs, UringFs, create_dir_all_durable};
pub use group_commit::{
    Batcher, Command, CommitResult, GroupCommit, Op, Pending, SyncEvent, SyncObserver, Worker,
};
pub use log::{Config, Entries, Recovered, TornTail, Wal};
pub use record::MAX_PAYLOAD;
pub use repair::{Dropped, Repair, RepairMode, RepairPlan, repair};
pub use segment::SegmentName;
pub use snap::{PAYLOAD_OFFSET, SaveTimes, SnapStore, SnapshotFile};
