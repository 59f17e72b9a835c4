//! ferrocd-mvcc: the multi-version key-value store with etcd v3 semantics.
//!
//! - [`Revision`]: the store's clock, `(main, sub)`.
//! - [`KeyValue`], [`Event`], [`KeyRange`]: the data model.
//! - [`Error`]: what can go wrong, mapped to etcd's errors by the node.
//! - [`Store`]: the store. [`Store::write`] opens the single writer's
//!   [`WriteBatch`] (put, delete_range, txn, compact, lease grant/revoke;
//!   each returns its response and events), [`WriteBatch::commit`]
//!   publishes the batch; [`Store::snapshot`] gives a lock-free
//!   [`ReadView`] (range, historical reads, events for watchers, hash,
//!   lease keys, snapshot saving).
//! - Requests/responses mirror etcd's: [`RangeRequest`], [`PutRequest`],
//!   [`DeleteRangeRequest`], [`TxnRequest`] and their responses; reads
//!   return zero-copy [`KvRef`]s.
//!
//! Inside: a copy-on-write B+tree (`btree`) holds the key index
//! (`key_index`: key → generations, as etcd's keyIndex), the revision store
//! (`record`: (main, sub) → rkyv archive, owned or memory-mapped) and the
//! lease index (`lease`). `write` and `txn` apply requests with etcd 3.5's
//! semantics, `range` reads, `compaction` compacts in bounded steps,
//! `history` serves watchers, `hash` checksums, `snapshot` saves and maps.
//!
//! - [`Hub`]: the watch hub (sans-IO): watchers on keys and ranges, live
//!   fan-out from the apply loop, catch-up from [`History`] for watchers that
//!   start in the past or fall behind, progress notifications.
//!
//! The store has no I/O of its own except snapshot files; the node drives it
//! from raft's apply loop.

mod btree;
mod compaction;
mod error;
mod hash;
mod history;
mod key_index;
mod kv;
mod lease;
mod range;
mod record;
mod request;
mod restore;
mod revision;
mod snapshot;
mod state;
mod store;
mod txn;
mod watch;
mod write;

pub use compaction::{CompactProgress, CompactStep, DEFAULT_COMPACTION_BATCH};
pub use error::{Error, Result};
pub use kv::{Event, EventKind, KeyRange, KeyValue, prefix_end};
pub use record::KvRef;
pub use request::{
    Applied, Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResponse,
    HashKv, PutRequest, PutResponse, RangeRequest, RangeResponse, RangeResult, RequestOp,
    ResponseOp, SortOrder, SortTarget, TxnRequest, TxnResponse,
};
pub use restore::{Builder, HistoryRecord};
pub use revision::Revision;
pub use store::{Config, ReadView, Store, WriteBatch};
pub use watch::{
    Config as WatchConfig, History, Hub, StreamId, WatchRequest, WatchResponse, WatcherId,
};
pub use write::EventPrevKv;
