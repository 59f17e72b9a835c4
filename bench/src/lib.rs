//! ferrocd-bench: `ferrobench`, the load generator and report writer.
//!
//! Nothing is implemented yet: the tool arrives with its own issue. The
//! storage-level benchmarks live beside their crates (`wal/benches`,
//! `mvcc/benches`).
