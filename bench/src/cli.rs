//! The command line: one subcommand per workload, the options every
//! workload shares in [`RunArgs`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Load generator for etcd-compatible servers (ferrocd, etcd).
#[derive(Debug, Parser)]
#[command(name = "ferrobench", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The workloads.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Put keys (one Put RPC per request) and report latency and throughput.
    Put(PutArgs),
    /// Read single keys (one Range RPC per request) from a prefilled key
    /// space.
    Range(RangeArgs),
    /// Start etcd and ferrocd servers side by side on loopback and run a
    /// matrix of workloads against each, alternating targets; writes a
    /// Markdown table, plots and every run's JSON/.hgrm into `--out`.
    Compare(crate::compare::CompareArgs),
    /// Draw latency-by-percentile curves of earlier runs (`.hgrm` files or
    /// `-w json` / `--json-out` reports) on one SVG plot.
    Plot(crate::plot::PlotArgs),
}

/// Options every workload takes.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Client endpoints, `host:port`, comma-separated; connections are
    /// spread over them round-robin.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pub endpoints: Vec<String>,
    /// Concurrent clients, each with one request in flight.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub clients: u32,
    /// Connections (HTTP/2 for gRPC, TCP for fast) the clients share,
    /// round-robin.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub conns: u32,
    /// Requests in total, over all clients.
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,
    /// Stop issuing requests after this many seconds even if `--total` is
    /// not reached.
    #[arg(long, default_value_t = 60.0)]
    pub max_secs: f64,
    /// Per-request timeout in seconds; a request past it counts as an error.
    #[arg(long, default_value_t = 10.0)]
    pub request_timeout_secs: f64,
    /// The server's process id: report its CPU time (utime + stime from
    /// /proc/PID/stat) per 1000 operations and its peak RSS. Repeat (or
    /// comma-separate) for the members of a cluster: CPU time and peak RSS
    /// are summed over them.
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// Output format of the report.
    #[arg(short = 'w', long = "write-out", value_enum, default_value_t = Format::Text)]
    pub write_out: Format,
    /// Worker threads of the client runtime (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress lines on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// Wire protocol: `grpc` (etcd's API, works against any etcd) or
    /// `fast` (ferrocd's binary protocol).
    #[arg(long, value_enum, default_value_t = Protocol::Grpc)]
    pub protocol: Protocol,
    /// Also write the latency distribution to FILE as HdrHistogram
    /// percentile-distribution text (`.hgrm`, milliseconds).
    #[arg(long, value_name = "FILE")]
    pub hgrm_out: Option<PathBuf>,
    /// Also write the JSON report (with the percentile curve and the
    /// encoded histogram) to FILE.
    #[arg(long, value_name = "FILE")]
    pub json_out: Option<PathBuf>,
    /// Also write a latency-by-percentile plot of the run to FILE (SVG).
    #[arg(long, value_name = "FILE")]
    pub svg_out: Option<PathBuf>,
}

/// Wire protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    Grpc,
    Fast,
}

/// Read consistency (etcdctl's `--consistency`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Consistency {
    /// Linearizable (read index round).
    L,
    /// Serializable (the member's local state).
    S,
}

/// `ferrobench range`.
#[derive(Debug, Clone, Args)]
pub struct RangeArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Key size in bytes: the key number in decimal, zero-padded.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub key_size: u32,
    /// Value size in bytes of the prefilled keys.
    #[arg(long, default_value_t = 256)]
    pub val_size: u32,
    /// Distinct keys, written once before the run; request i reads key
    /// i mod key-space.
    #[arg(long, default_value_t = 1000)]
    pub key_space: u64,
    /// Linearizable (`l`) or serializable (`s`) reads.
    #[arg(long, value_enum, default_value_t = Consistency::L)]
    pub consistency: Consistency,
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// `ferrobench put`.
#[derive(Debug, Clone, Args)]
pub struct PutArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Key size in bytes: the key number in decimal, zero-padded.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub key_size: u32,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    pub val_size: u32,
    /// Distinct keys; request i writes key i mod key-space (default:
    /// `--total`, so every put creates a new key).
    #[arg(long)]
    pub key_space: Option<u64>,
}
