//! ferrocd-core: the node. One line per module, from the entry points
//! down to the parts they are built from.
//!
//! `ferrocd` (src/main.rs) is a thin wrapper around [`server`].

/// Adopting an etcd data dir (its backend, WAL and snapshots).
pub mod adopt;
/// The replicated auth store: users, roles, permissions, simple tokens, JWT.
pub mod auth;
/// Tokens, passwords, client certificates, Authenticate, auth store requests.
mod auth_gate;
/// `--auto-tls` / `--peer-auto-tls`: certificates generated at start.
mod auto_tls;
/// The backend file (etcd's bbolt layout) written from a store view.
pub mod backend;
/// Starting a member: data dir, WAL, state machine, raft, loops, peer port.
mod bootstrap;
/// Auto-compaction's schedule (etcd's periodic and revision modes), sans-IO.
mod compactor;
/// etcd 3.5's server flags and `ETCD_*` / `FERROCD_*` environment variables.
pub mod config;
/// The data dir's marker: a dir ferrocd did not write is refused unchanged.
pub mod datadir;
/// The way to the leader: who leads, calls to it over the peer port.
mod leader;
/// Lease keep-alives and TTLs (answered by the leader), lease ids, expiry.
mod leases;
/// Lease deadlines, sans-IO.
mod lessor;
/// Term and leader as raft reports them, health, fatal stop, removal.
mod liveness;
/// Log lines as etcd writes them: JSON with etcd's field names, `--log-outputs`.
pub mod logging;
/// etcd's Maintenance on this member: status, alarms, defragment, hashes, snapshot.
mod maintenance;
/// Member and cluster ids, the membership as listed, member changes, publish.
mod membership;
/// The node: the started member's parts and the `ferrocd-net` service impls.
mod node;
/// The peer port's member side: raft messages and the members' own requests.
mod peer;
/// Exactly-once ids, client writes batched into raft entries, forwards.
mod proposer;
/// etcd's backend quota: write costs and the NOSPACE alarm.
mod quota;
/// The raft group: log store, state machine, apply, sessions, peer network.
pub mod raft;
/// Linearizable reads: batched read-index rounds.
mod read_index;
/// `ferroctl snapshot restore`: a fresh data dir from a backend file.
pub mod restore;
/// The runtimes (raft runtime, pinned shard threads) and the client listeners.
pub mod server;
/// systemd's notify protocol: `READY=1`, `STOPPING=1`, `WATCHDOG=1`.
mod systemd;
/// The watch hub behind a lock, with per-stream wakers.
mod watches;

pub use config::Config;
pub use lessor::{Lessor, MAX_LEASE_TTL, RenewError};
pub use liveness::Removed;
pub use maintenance::ETCD_VERSION;
pub use membership::derive::{cluster_id, member_id};
pub use membership::ids::Ids;
pub use node::Node;
