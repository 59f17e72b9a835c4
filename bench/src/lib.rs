//! ferrocd-bench: `ferrobench`, the load generator and report writer.
//!
//! `ferrobench <workload> [options]` drives a server over etcd's gRPC API
//! (the tonic clients of `ferrocd-net`), so the same run works against
//! ferrocd and etcd. Each request's latency goes into an hdrhistogram; the
//! report gives throughput, percentiles and, with `--server-pid`, the
//! server's CPU time per 1000 operations, as text or JSON (`-w json`).
//!
//! Workloads so far: `put`, `range`; `--protocol fast` drives ferrocd's
//! binary protocol instead of gRPC. Modules:
//! - `cli`: the command line (clap), one subcommand per workload;
//! - `conn`: the connections (gRPC or fast) a run spreads its clients over;
//! - `put`, `range`: the workloads;
//! - `driver`: runs clients against a shared request budget and deadline,
//!   with progress on stderr;
//! - `server`: the server process's CPU time and memory from `/proc`;
//! - `report`: the summary, as text or JSON.
//!
//! The storage-level benchmarks live beside their crates (`wal/benches`,
//! `mvcc/benches`); `scripts/put-vs-etcd.sh` runs the put workload against
//! etcd and ferrocd side by side.

mod cli;
mod conn;
mod driver;
mod put;
mod range;
mod report;
mod server;

pub use cli::{Cli, Command};

/// Runs one `ferrobench` invocation; the report goes to stdout.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Put(args) => put::run(&args),
        Command::Range(args) => range::run(&args),
    }
}
