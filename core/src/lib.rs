//! ferrocd-core: the node.
//!
//! - [`config`]: etcd 3.5's server flags and `ETCD_*` / `FERROCD_*`
//!   environment variables parsed into a [`Config`].
//! - [`Node`]: one raft group (openraft) with its log on `ferrocd-wal` and
//!   its state machine on `ferrocd-mvcc`; it implements the service traits
//!   of `ferrocd-net`.
//! - [`server`]: the runtimes (raft runtime, pinned shard threads) and the
//!   client listeners; `ferrocd` (src/main.rs) is a thin wrapper.
//! - `datadir`: the data dir's marker; a dir ferrocd did not write is
//!   refused unchanged.
//! - `lessor`: lease deadlines (sans-IO); `watches`: the watch hub behind
//!   a lock with per-stream wakers.

pub mod auth;
mod auth_gate;
pub mod backend;
mod bootstrap;
mod compactor;
pub mod config;
pub mod datadir;
mod leader;
mod leases;
mod lessor;
mod liveness;
mod maintenance;
mod membership;
mod node;
mod peer;
mod proposer;
mod quota;
pub mod raft;
mod read_index;
pub mod restore;
pub mod server;
mod watches;

pub use config::Config;
pub use lessor::{Lessor, MAX_LEASE_TTL, RenewError};
pub use maintenance::ETCD_VERSION;
pub use membership::ids::{Ids, cluster_id, member_id};
pub use node::Node;
