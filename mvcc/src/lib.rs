//! ferrocd-mvcc: the multi-version key-value store with etcd v3 semantics.
//!
//! - [`Revision`]: the store's clock, `(main, sub)`.
//! - [`KeyValue`], [`Event`], [`KeyRange`]: the data model.
//! - [`Error`]: what can go wrong, mapped to etcd's errors by the node.
//!
//! The store has no I/O of its own except snapshot files; the node drives it
//! from raft's apply loop.

mod error;
mod kv;
mod revision;

pub use error::{Error, Result};
pub use kv::{Event, EventKind, KeyRange, KeyValue, prefix_end};
pub use revision::Revision;
