//! ferrocd-bench: `ferrobench`, the load generator and report writer.
//!
//! `ferrobench <workload> [options]` drives a server over etcd's gRPC API
//! (the tonic clients of `ferrocd-net`), so the same run works against
//! ferrocd and etcd. Each request's latency goes into an hdrhistogram; the
//! report gives throughput, percentiles, ferrobench's own CPU time per
//! 1000 operations (it shares the cores with the server, so it can be the
//! limit) and, with `--server-pid`, the server's beside it, as text or
//! JSON (`-w json`).
//!
//! Workloads: `put`, `range` (linearizable or serializable, one key or
//! N), `txn` (compare-and-swap), `mixed`, `watch` (event latency),
//! `lease-churn`, `k8s` (a control-plane mix). Closed loop by default,
//! open loop with `--rate` (coordinated-omission corrected), `--warmup`,
//! `--duration`. `--protocol fast` drives ferrocd's binary protocol
//! instead of gRPC. Every workload also writes, on request,
//! the HdrHistogram percentile distribution (`--hgrm-out`), the full JSON
//! report (`--json-out`) and a latency-by-percentile plot (`--svg-out`).
//! `ferrobench plot` draws several runs on one plot; `ferrobench compare`
//! starts etcd and ferrocd servers side by side on loopback and runs a
//! workload matrix against each (a new workload subcommand is usable there
//! by its name). Modules:
//! - `cli`: the command line (clap), one subcommand per workload;
//! - `conn`: the connections (gRPC or fast) a run spreads its clients over;
//! - `put`, `range`, `txn`, `mixed`, `watch`, `lease`, `k8s`: the
//!   workloads (one file each);
//! - `exec`: what every workload does around its requests (runtime,
//!   connections, prefill, report);
//! - `driver`: runs clients against a shared request budget and deadline,
//!   with progress on stderr;
//! - `server`: the server process's CPU time and memory from `/proc`, and
//!   ferrobench's own CPU time (`getrusage`);
//! - `report`: the summary, as text or JSON, and the `--hgrm-out`,
//!   `--json-out` and `--svg-out` files;
//! - `hgrm`: HdrHistogram's percentile-distribution text and encoding;
//! - `plot`: latency-by-percentile SVG plots (`ferrobench plot`);
//! - `compare`: `ferrobench compare`, servers started side by side and a
//!   workload matrix run against each (as subprocesses of ferrobench);
//! - `table`: the Markdown table `compare` writes;
//! - `floor`: `ferrobench floor`, what a lone durable write costs on this
//!   machine with no server (fdatasync, loopback, a thread hand-off).
//!
//! The storage-level benchmarks live beside their crates (`wal/benches`,
//! `mvcc/benches`); `scripts/put-vs-etcd.sh` runs the put workload against
//! etcd and ferrocd side by side.

mod cli;
mod compare;
mod conn;
mod driver;
mod exec;
mod floor;
mod hgrm;
mod k8s;
mod lease;
mod mixed;
mod plot;
mod put;
mod range;
mod report;
mod server;
mod table;
mod txn;
mod watch;

pub use cli::{Cli, Command};

/// Runs one `ferrobench` invocation; the report goes to stdout.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Put(args) => put::run(&args),
        Command::Range(args) => range::run(&args),
        Command::Txn(args) => txn::run(&args),
        Command::Mixed(args) => mixed::run(&args),
        Command::Watch(args) => watch::run(&args),
        Command::LeaseChurn(args) => lease::run(&args),
        Command::K8s(args) => k8s::run(&args),
        Command::Compare(args) => compare::run(&args),
        Command::Plot(args) => plot::run(&args),
        Command::Floor(args) => floor::run(&args),
    }
}

/// Golden files under `bench/tests/golden/`: `UPDATE_GOLDEN=1` rewrites
/// them from the current output.
#[cfg(test)]
mod golden {
    pub(crate) fn check(name: &str, got: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, got).unwrap();
            return;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
        assert!(
            want == got,
            "{} differs (UPDATE_GOLDEN=1 rewrites it); got:\n{got}",
            path.display()
        );
    }
}
