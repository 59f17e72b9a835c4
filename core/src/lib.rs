//! ferrocd-core: the node.
//!
//! Will hold the shard runtime, raft (openraft) with its log on
//! `ferrocd-wal` and its state machine on `ferrocd-mvcc`, and the `ferrocd` /
//! `ferroctl` binaries (see `DESIGN.md`). There is no server binary yet.
//!
//! What exists now:
//! - [`config`]: etcd 3.5's server flags and `ETCD_*` / `FERROCD_*`
//!   environment variables parsed into a [`Config`].

pub mod config;

pub use config::Config;
