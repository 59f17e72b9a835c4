//! ferrocd-fault: the fault-injection harness and the history checker.
//!
//! - [`history`]: what a run records — every client operation with its
//!   invocation and completion times and its outcome, the watch streams'
//!   events, the final state read from every member. One JSON object per
//!   line (`history.jsonl`), so a run can be checked again later and a
//!   history can be kept as a checker fixture.
//! - [`lossyfs`]: an in-memory FUSE file system that drops everything not
//!   fsynced (file bytes and directory entries) on a `cut`, for members
//!   whose data dir must lose what a power cut loses (`ferrocd-lossyfs`).
//! - [`proxy`]: a TCP proxy in front of every member's peer port that
//!   reads the peer hello and cuts or delays links (partitions, delays).
//! - [`run`]: the harness runner — a cluster of ferrocd processes, clients
//!   and watchers recording a history, the nemesis, the final read
//!   (`ferrocd-fault`).
//! - [`check`]: the history checker — one check per invariant
//!   (linearizability per key, real-time order, no lost or doubly applied
//!   write, CAS outcomes, reads, watch and lease guarantees, convergence);
//!   `ferrocd-check <history.jsonl>` prints its report.

pub mod check;
pub mod history;
pub mod lossyfs;
pub mod proxy;
pub mod run;
