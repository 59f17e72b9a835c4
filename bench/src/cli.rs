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
    /// Compare-and-swap: txns guarded on the mod revision last seen.
    Txn(TxnArgs),
    /// Reads and puts in a given ratio.
    Mixed(MixedArgs),
    /// Event latency from put to delivery, with many watchers.
    Watch(WatchArgs),
    /// Lease grant, put with the lease, revoke — one request.
    LeaseChurn(LeaseArgs),
    /// A Kubernetes-like control-plane mix (txn-guarded updates of 1-10 KiB
    /// objects, paginated lists, watches per prefix).
    K8s(K8sArgs),
    /// Start etcd and ferrocd servers side by side on loopback and run a
    /// matrix of workloads against each, alternating targets; writes a
    /// Markdown table, plots and every run's JSON/.hgrm into `--out`.
    Compare(crate::compare::CompareArgs),
    /// Draw latency-by-percentile curves of earlier runs (`.hgrm` files or
    /// `-w json` / `--json-out` reports) on one SVG plot.
    Plot(crate::plot::PlotArgs),
    /// The floor of a lone durable write on this machine, with no server:
    /// fdatasync, and a loopback round trip plus fdatasync with and without
    /// a thread hand-off (read single-client latencies against it).
    Floor(crate::floor::FloorArgs),
}

/// Key and value shape shared by the key-space workloads.
#[derive(Debug, Clone, Args)]
pub struct KeyArgs {
    /// Key size in bytes: the key number in decimal, zero-padded.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub key_size: u32,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    pub val_size: u32,
    /// Distinct keys, prefilled before the run.
    #[arg(long, default_value_t = 1000)]
    pub key_space: u64,
}

/// `ferrobench txn`.
#[derive(Debug, Clone, Args)]
pub struct TxnArgs {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// `ferrobench mixed`.
#[derive(Debug, Clone, Args)]
pub struct MixedArgs {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Share of reads, 0..=1.
    #[arg(long, default_value_t = 0.9)]
    pub read_ratio: f64,
    /// Linearizable (`l`) or serializable (`s`) reads.
    #[arg(long, value_enum, default_value_t = Consistency::L)]
    pub consistency: Consistency,
}

/// `ferrobench watch`.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Watch streams, all on the prefix the clients write under.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub watchers: u32,
    /// Key size in bytes (after the `watch/` prefix).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub key_size: u32,
    /// Value size in bytes (at least 8: the send time).
    #[arg(long, default_value_t = 256)]
    pub val_size: u32,
    /// Distinct keys written.
    #[arg(long, default_value_t = 1000)]
    pub key_space: u64,
}

/// `ferrobench lease-churn`.
#[derive(Debug, Clone, Args)]
pub struct LeaseArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Lease TTL in seconds.
    #[arg(long, default_value_t = 60)]
    pub ttl: i64,
    /// Key size in bytes (after the `lease/` prefix).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub key_size: u32,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    pub val_size: u32,
}

/// `ferrobench k8s`.
#[derive(Debug, Clone, Args)]
pub struct K8sArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Objects prefilled (1-10 KiB each).
    #[arg(long, default_value_t = 2000)]
    pub objects: u64,
    /// Namespaces the objects spread over.
    #[arg(long, default_value_t = 20)]
    pub namespaces: u64,
    /// Limit of one list page.
    #[arg(long, default_value_t = 500)]
    pub page_size: u32,
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
    /// Requests in total, over all clients (default 10000, or unbounded
    /// with `--duration`).
    #[arg(long)]
    pub total: Option<u64>,
    /// Run for this many seconds (with `--total`, whichever comes first).
    #[arg(long, conflicts_with = "max_secs")]
    pub duration: Option<f64>,
    /// Stop issuing requests after this many seconds even if `--total` is
    /// not reached.
    #[arg(long, default_value_t = 60.0)]
    pub max_secs: f64,
    /// Open loop: requests are due at this many per second in all, and
    /// latency counts from the due time (coordinated-omission correction).
    /// Without it, closed loop: each client sends when answered.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Requests run before the measured ones, not recorded.
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,
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
    /// TLS: verify servers with this CA bundle (as etcdctl's `--cacert`;
    /// any TLS flag makes endpoints other than `http://` ones speak TLS).
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// TLS: present this client certificate (with `--key`).
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// TLS: the client certificate's key.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// TLS: accept any server certificate (testing only).
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,
    /// Authenticate as USER:PASSWORD (etcdctl's `--user`) when the server
    /// has auth enabled; every connection gets its own token.
    #[arg(long, value_name = "USER:PASSWORD")]
    pub user: Option<String>,
}

impl RunArgs {
    /// Measured requests: `--total`, else 10000, else unbounded with
    /// `--duration`.
    pub fn total_ops(&self) -> u64 {
        match (self.total, self.duration) {
            (Some(t), _) => t,
            (None, Some(_)) => u64::MAX,
            (None, None) => 10_000,
        }
    }

    /// The TLS options of the flags (`None`: plaintext unless an endpoint
    /// is `https://`).
    pub fn tls(&self) -> Option<ferrocd_net::client::ClientTls> {
        let any = self.cacert.is_some()
            || self.cert.is_some()
            || self.key.is_some()
            || self.insecure_skip_tls_verify;
        any.then(|| ferrocd_net::client::ClientTls {
            ca: self.cacert.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            server_name: None,
            insecure_skip_verify: self.insecure_skip_tls_verify,
            ..Default::default()
        })
    }

    /// `--user` split into (user, password).
    pub fn user(&self) -> anyhow::Result<Option<(String, String)>> {
        self.user
            .as_deref()
            .map(|u| {
                u.split_once(':')
                    .map(|(n, p)| (n.to_owned(), p.to_owned()))
                    .ok_or_else(|| anyhow::anyhow!("--user wants USER:PASSWORD, got {u:?}"))
            })
            .transpose()
    }

    /// The time bound of the measured phase.
    pub fn max_secs(&self) -> f64 {
        self.duration.unwrap_or(self.max_secs)
    }
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
    /// Keys per request: a range of this many consecutive keys (limit N).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub keys_per_range: u64,
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
