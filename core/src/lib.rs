//! ferrocd-core: the node.
//!
//! Will hold config and flags, the shard runtime, raft (openraft) with its log
//! on `ferrocd-wal` and its state machine on `ferrocd-mvcc`, and the
//! `ferrocd` / `ferroctl` binaries (see `DESIGN.md`). Nothing is implemented
//! yet: there is no server binary until the single-node server issue.
