//! Node configuration from etcd's command-line flags and environment.
//!
//! An etcd unit or compose file must work after renaming the binary, so the
//! flag names, defaults and parsing rules are etcd 3.5's:
//!
//! - Flags are Go-style: `--name value`, `--name=value`, and the single-dash
//!   `-name value` Go's `flag` package also accepts. A repeated flag: the
//!   last one wins. Boolean flags take `--flag` or `--flag=false` (never a
//!   separate `false` word, as in Go). A positional argument is an error.
//! - Every flag has an environment twin: `--initial-cluster-token` is
//!   `ETCD_INITIAL_CLUSTER_TOKEN` or `FERROCD_INITIAL_CLUSTER_TOKEN`
//!   (`FERROCD_` wins when both are set). As in etcd, setting a flag both on
//!   the command line and in the environment is an error, and an unknown
//!   `ETCD_*` variable is a warning.
//! - Unknown flags are a usage error (exit code 2).
//!
//! Flags fall into three groups (see [`FLAGS`]):
//! - **used**: parsed into [`Config`];
//! - **inert**: etcd tuning knobs that have no meaning for ferrocd's engine
//!   (bbolt freelist type, log rotation, …); accepted so unit files keep
//!   working, and a non-default value is reported as a warning;
//! - **refused**: options whose etcd meaning ferrocd does not provide
//!   (the v2 API, skipping fsync, discovery, proxy mode). Silently
//!   ignoring them would change what the operator asked for, so a
//!   non-default value is an error.
//!
//! TLS ([`TlsFlags`]) follows etcd: `https://` listen URLs need
//! `--cert-file`/`--key-file` (peer: `--peer-cert-file`/`--peer-key-file`)
//! or `--auto-tls` (`--peer-auto-tls`), refused with etcd's messages
//! otherwise; TLS flags on `http://` URLs are ignored with etcd's warning
//! per URL; mixed http/https lists serve each URL as its scheme says.
//! CRLs, allowed CN/hostnames, `--cipher-suites` and later 3.5 releases'
//! `--tls-min-version`/`--tls-max-version` are checked here (etcd's
//! messages) and applied by `ferrocd_net::tls`.
//!
//! `--config-file` (or `ETCD_CONFIG_FILE`) names etcd's YAML
//! configuration file; as in etcd 3.5, the file is then the whole
//! configuration and the other flags and environment variables are
//! ignored. The file is translated into the flags it stands for (see
//! `file`), so it is accepted and refused exactly as they are.
//!
//! Logging is etcd 3.5's: `--logger zap` (the only value; `capnslog` is
//! refused with etcd's "removed in v3.5"), `--log-outputs` (`default` =
//! `stderr`, `stdout`, file paths; several at once, but `default` alone),
//! `--log-level` (zap's names; an unknown one makes etcd panic, so
//! ferrocd prints `panic: unrecognized level: "x"` and exits 2). Lines are
//! etcd's JSON ([`crate::logging`]).
//!
//! Three flags are ferrocd's own: `--shards` (default: the number of
//! cores), `--log-format json|text` (default json, etcd's lines; text for
//! a terminal) and `--listen-ui-urls` (the web console, off by default).
//! `https://` metrics and console URLs use the client port's certificate,
//! as etcd's https metrics URLs do.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Command, parser::ValueSource};
use url::Url;

pub use crate::logging::LogOutput;

mod file;

/// Cluster state at bootstrap (`--initial-cluster-state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    /// Bootstrap a new cluster from `--initial-cluster`.
    New,
    /// Join a cluster that already exists (after `member add`).
    Existing,
}

/// Automatic compaction (`--auto-compaction-mode` + `--auto-compaction-retention`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Retention `0`: never compact automatically (etcd's default).
    Off,
    /// Keep this much wall-clock history. A bare number is hours, as etcd.
    Periodic(Duration),
    /// Keep this many revisions.
    Revision(i64),
}

/// Log line format (`--log-format`, ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line with etcd's field names (the default,
    /// as etcd 3.5's zap logger; see [`crate::logging`]).
    Json,
}

/// Log verbosity (`--log-level`), etcd's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// `debug`
    Debug,
    /// `info` (default)
    Info,
    /// `warn`
    Warn,
    /// `error`, and etcd's `dpanic`, `panic`, `fatal`
    Error,
}

/// The node's configuration. Defaults are etcd 3.5's except where noted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `--name`, default `default`.
    pub name: String,
    /// `--data-dir`, default `<name>.ferrocd` (etcd: `<name>.etcd`).
    pub data_dir: PathBuf,
    /// `--wal-dir`, default none: `<data-dir>/member/wal`.
    pub wal_dir: Option<PathBuf>,
    /// `--listen-client-urls`, default `http://127.0.0.1:2379`.
    pub listen_client_urls: Vec<Url>,
    /// `--advertise-client-urls`, default `http://127.0.0.1:2379`.
    pub advertise_client_urls: Vec<Url>,
    /// `--listen-peer-urls`, default `http://127.0.0.1:2380`.
    pub listen_peer_urls: Vec<Url>,
    /// `--initial-advertise-peer-urls`, default `http://127.0.0.1:2380`.
    pub initial_advertise_peer_urls: Vec<Url>,
    /// `--listen-metrics-urls`, default none (metrics are on the client
    /// port too): `/metrics`, `/health` and `/version`.
    pub listen_metrics_urls: Vec<Url>,
    /// `--listen-ui-urls` (ours), default none: the web console, mounted
    /// at each URL's path (`http://127.0.0.1:2381/ui`).
    pub listen_ui_urls: Vec<Url>,
    /// `--initial-cluster`: member name → peer URLs. Default: this member
    /// alone, `<name>=<initial-advertise-peer-urls>`, as etcd does when only
    /// `--name` is given.
    pub initial_cluster: BTreeMap<String, Vec<Url>>,
    /// `--initial-cluster-state`, default `new`.
    pub initial_cluster_state: ClusterState,
    /// `--initial-cluster-token`, default `etcd-cluster`.
    pub initial_cluster_token: String,
    /// `--snapshot-count`: applied entries between snapshots, default 100 000.
    pub snapshot_count: u64,
    /// `--max-snapshots`: snapshot files kept, default 5 (0 = unlimited).
    pub max_snapshots: usize,
    /// `--max-wals`: WAL segments kept behind a snapshot, default 5 (0 = unlimited).
    pub max_wals: usize,
    /// `--heartbeat-interval`, default 100 ms.
    pub heartbeat_interval: Duration,
    /// `--election-timeout`, default 1000 ms; must be ≥ 5 × heartbeat, as etcd.
    pub election_timeout: Duration,
    /// `--pre-vote`, default true.
    pub pre_vote: bool,
    /// `--force-new-cluster`, default false: restart this member's data
    /// as a one-member cluster (etcd's recovery after losing quorum).
    pub force_new_cluster: bool,
    /// `--strict-reconfig-check`, default true.
    pub strict_reconfig_check: bool,
    /// `--quota-backend-bytes`, default 0 = 2 GiB (etcd's default quota);
    /// this field holds the effective value.
    pub quota_backend_bytes: u64,
    /// `--max-request-bytes`, default 1.5 MiB (1 572 864).
    pub max_request_bytes: u32,
    /// `--max-txn-ops`, default 128.
    pub max_txn_ops: u32,
    /// `--auto-compaction-mode` + `--auto-compaction-retention`, default off.
    pub auto_compaction: AutoCompaction,
    /// `--experimental-compaction-batch-limit`: keys removed per compaction
    /// step, default 1000.
    pub compaction_batch_limit: usize,
    /// `--experimental-snapshot-catchup-entries`: log entries kept behind
    /// a snapshot for slow followers, default 5000.
    pub snapshot_catchup_entries: u64,
    /// `--experimental-watch-progress-notify-interval`, default 10 min.
    pub watch_progress_notify_interval: Duration,
    /// `--max-concurrent-streams`, default 2^32 - 1 (etcd's
    /// `math.MaxUint32`): streams one client connection may have open.
    pub max_concurrent_streams: u32,
    /// `--grpc-keepalive-min-time`, default 5 s.
    pub grpc_keepalive_min_time: Duration,
    /// `--grpc-keepalive-interval`, default 2 h (zero disables).
    pub grpc_keepalive_interval: Duration,
    /// `--grpc-keepalive-timeout`, default 20 s (zero disables).
    pub grpc_keepalive_timeout: Duration,
    /// `--auth-token`, default `simple`.
    pub auth_token: String,
    /// `--bcrypt-cost`, default 10 (4..=31).
    pub bcrypt_cost: u32,
    /// `--auth-token-ttl` in seconds, default 300.
    pub auth_token_ttl: Duration,
    /// `--socket-reuse-port`, default false.
    pub socket_reuse_port: bool,
    /// `--socket-reuse-address`, default false.
    pub socket_reuse_address: bool,
    /// `--log-level`, default info.
    pub log_level: LogLevel,
    /// `--log-format` (ours), default json.
    pub log_format: LogFormat,
    /// `--log-outputs`, default `default` (stderr). Each is written every
    /// line; `default` cannot be combined with others, as in etcd.
    pub log_outputs: Vec<LogOutput>,
    /// `--shards` (ours): shard executors, default the number of cores.
    pub shards: usize,
    /// `--cors`: origins answered with CORS headers on the client port's
    /// HTTP requests (`*`: any, the default).
    pub cors: Vec<String>,
    /// `--host-whitelist`: `Host` names a plaintext client listener
    /// answers over HTTP (`*`: any, the default).
    pub host_whitelist: Vec<String>,
    /// `--cert-file --key-file --trusted-ca-file --client-cert-auth`: TLS
    /// on the `https://` client URLs.
    pub client_tls: TlsFlags,
    /// `--peer-cert-file --peer-key-file --peer-trusted-ca-file
    /// --peer-client-cert-auth`: TLS on the `https://` peer URLs, and the
    /// certificate this member presents when it dials a peer.
    pub peer_tls: TlsFlags,
    /// `--experimental-peer-skip-client-san-verification`, default false:
    /// with `--peer-client-cert-auth` a peer's certificate must name the
    /// address it calls from (an IP SAN, or a DNS SAN resolving to it).
    pub peer_skip_client_san_verification: bool,
}

impl Config {
    /// etcd's minimum lease TTL in seconds: ceil(1.5 × election timeout),
    /// counted in heartbeat ticks as etcd counts it (2 s with the default
    /// timing). A shorter TTL is raised to it.
    pub fn min_lease_ttl(&self) -> i64 {
        let heartbeat_ms = self.heartbeat_interval.as_millis().max(1) as u64;
        let election_ms = self.election_timeout.as_millis().max(1) as u64;
        let election_ticks = (election_ms / heartbeat_ms).max(1);
        ((3 * election_ticks / 2) * heartbeat_ms).div_ceil(1000) as i64
    }
}

/// One port's TLS flags (etcd's `TLSInfo`). Used only on `https://` URLs;
/// on `http://` ones etcd ignores them with a warning, and so do we.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFlags {
    /// Certificate chain (PEM), leaf first.
    pub cert_file: Option<PathBuf>,
    /// Private key (PEM).
    pub key_file: Option<PathBuf>,
    /// CAs that client certificates must chain to (and, on the peer port,
    /// that a dialed peer's certificate must chain to); default: the
    /// system's CA bundle.
    pub trusted_ca_file: Option<PathBuf>,
    /// Require and verify a client certificate.
    pub client_cert_auth: bool,
    /// `--client-crl-file` / `--peer-crl-file`: client certificates
    /// refused as revoked (with `client_cert_auth`).
    pub crl_file: Option<PathBuf>,
    /// `--client-cert-allowed-hostname`, `--peer-cert-allowed-cn`,
    /// `--peer-cert-allowed-hostname`: the name a verified client
    /// certificate (and, on the peer port, a dialed peer's certificate)
    /// must carry.
    pub allowed: Option<ferrocd_net::tls::AllowedName>,
    /// `--auto-tls` / `--peer-auto-tls`: without cert and key files,
    /// generate a self-signed pair under `<data-dir>/fixtures/{client,peer}`
    /// at start (see `core/src/auto_tls.rs`).
    pub auto_tls: bool,
    /// `--self-signed-cert-validity`, years (default 1; 0 is refused when
    /// a certificate is generated, as etcd does).
    pub self_signed_cert_validity: u32,
    /// Set at start when `cert_file`/`key_file` are the generated pair:
    /// the peer dialer then skips verification, as etcd's does.
    pub self_signed: bool,
    /// `--tls-min-version --tls-max-version --cipher-suites` (the same on
    /// both ports).
    pub protocol: ferrocd_net::tls::Protocol,
}

impl TlsFlags {
    /// No TLS flag given at all (etcd's `TLSInfo.Empty()`: no cert, no key).
    pub fn is_empty(&self) -> bool {
        self.cert_file.is_none() && self.key_file.is_none()
    }

    /// A certificate will be there: given, or generated at start.
    pub fn has_cert(&self) -> bool {
        !self.is_empty() || self.auto_tls
    }

    /// The listener's TLS settings (cert and key checked present by
    /// [`parse`] wherever an `https://` URL needs them).
    pub fn server(&self) -> Option<ferrocd_net::tls::ServerTls> {
        Some(ferrocd_net::tls::ServerTls {
            cert: self.cert_file.clone()?,
            key: self.key_file.clone()?,
            trusted_ca: self.trusted_ca_file.clone(),
            client_cert_auth: self.client_cert_auth,
            crl: self.crl_file.clone(),
            allowed: self.allowed.clone(),
            protocol: self.protocol.clone(),
        })
    }

    /// The dialer's settings for the peer port: trust the peer CA,
    /// present this member's peer certificate.
    pub fn dialer(&self) -> ferrocd_net::tls::ClientTls {
        ferrocd_net::tls::ClientTls {
            ca: self.trusted_ca_file.clone(),
            cert: self.cert_file.clone(),
            key: self.key_file.clone(),
            server_name: None,
            insecure_skip_verify: self.self_signed,
            allowed: self.allowed.clone(),
            protocol: self.protocol.clone(),
        }
    }
}

/// Parsing failed, or the user asked for help or the version.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Unknown flag, missing value, positional argument: print and exit 2.
    #[error("{0}")]
    Usage(String),
    /// A flag's value is invalid or refused: print and exit 1.
    #[error("{0}")]
    Invalid(String),
    /// `-h` / `--help`: print to stdout and exit 0.
    #[error("{0}")]
    Help(String),
    /// `--version`: print the version and exit 0.
    #[error("version requested")]
    Version,
    /// What etcd 3.5 panics on (an unknown `--log-level`): print
    /// `panic: <text>` and exit 2, as Go's runtime does.
    #[error("{0}")]
    Panic(String),
}

/// A parsed configuration and the warnings to log once logging is up.
#[derive(Debug)]
pub struct Parsed {
    /// The configuration.
    pub config: Config,
    /// Inert flags with non-default values, unknown `ETCD_*` variables.
    pub warnings: Vec<String>,
    /// Lines to log at info level (the configuration file that was read).
    pub notices: Vec<String>,
}

/// How a flag is treated; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagUse {
    /// Parsed into [`Config`].
    Used,
    /// Accepted; a non-default value is a warning.
    Inert,
    /// Accepted only with its default value; anything else is an error.
    Refused,
}

/// One flag: name without dashes, default as text, whether it is boolean,
/// how it is used, and its help line.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    /// Long name, e.g. `initial-cluster`.
    pub name: &'static str,
    /// Default value as etcd prints it (`""` = none).
    pub default: &'static str,
    /// Go boolean flag: `--x` means true, `--x=false`.
    pub boolean: bool,
    /// Used, inert or refused.
    pub usage: FlagUse,
    /// One line of help.
    pub help: &'static str,
}

const fn flag(
    usage: FlagUse,
    boolean: bool,
    name: &'static str,
    default: &'static str,
    help: &'static str,
) -> Flag {
    Flag {
        name,
        default,
        boolean,
        usage,
        help,
    }
}
const fn used(name: &'static str, default: &'static str, help: &'static str) -> Flag {
    flag(FlagUse::Used, false, name, default, help)
}
const fn used_bool(name: &'static str, default: &'static str, help: &'static str) -> Flag {
    flag(FlagUse::Used, true, name, default, help)
}
const fn inert(name: &'static str, default: &'static str, help: &'static str) -> Flag {
    flag(FlagUse::Inert, false, name, default, help)
}
const fn inert_bool(name: &'static str, default: &'static str, help: &'static str) -> Flag {
    flag(FlagUse::Inert, true, name, default, help)
}
const fn refused(name: &'static str, default: &'static str, help: &'static str) -> Flag {
    flag(FlagUse::Refused, false, name, default, help)
}
/// Refused booleans all default to false.
const fn refused_bool(name: &'static str, help: &'static str) -> Flag {
    flag(FlagUse::Refused, true, name, "false", help)
}

/// Every flag ferrocd accepts: etcd 3.5's server flags plus `--shards` and
/// `--log-format`. Defaults differ from etcd's only in `localhost` →
/// `127.0.0.1` (no resolver involved in binding) and the data dir suffix.
#[rustfmt::skip]
pub const FLAGS: &[Flag] = &[
    // Member
    used("name", "default", "Human-readable name for this member."),
    used("data-dir", "${name}.ferrocd", "Path to the data directory."),
    used("wal-dir", "", "Path to the dedicated wal directory."),
    used("snapshot-count", "100000", "Number of committed transactions to trigger a snapshot to disk."),
    used("heartbeat-interval", "100", "Time (in milliseconds) of a heartbeat interval."),
    used("election-timeout", "1000", "Time (in milliseconds) for an election to timeout."),
    inert_bool("initial-election-tick-advance", "true", "Whether to fast-forward initial election ticks on boot."),
    used("listen-peer-urls", "http://127.0.0.1:2380", "List of URLs to listen on for peer traffic."),
    used("listen-client-urls", "http://127.0.0.1:2379", "List of URLs to listen on for client traffic."),
    used("max-snapshots", "5", "Maximum number of snapshot files to retain (0 is unlimited)."),
    used("max-wals", "5", "Maximum number of wal files to retain (0 is unlimited)."),
    used("quota-backend-bytes", "0", "Raise alarms when backend size exceeds the given quota (0 defaults to 2 GiB)."),
    inert("backend-bbolt-freelist-type", "map", "etcd's bbolt freelist type; ferrocd has no bbolt backend."),
    inert("backend-batch-interval", "", "etcd's backend commit interval; ferrocd commits per raft batch."),
    inert("backend-batch-limit", "0", "etcd's backend batch limit; ferrocd commits per raft batch."),
    used("max-txn-ops", "128", "Maximum number of operations permitted in a transaction."),
    used("max-request-bytes", "1572864", "Maximum client request size in bytes the server will accept."),
    used("max-concurrent-streams", "4294967295", "Maximum concurrent streams that each client can open at a time."),
    used("grpc-keepalive-min-time", "5s", "Minimum duration interval that a client should wait before pinging server."),
    used("grpc-keepalive-interval", "2h", "Frequency of server-to-client ping to check if a connection is alive (0 to disable)."),
    used("grpc-keepalive-timeout", "20s", "Additional wait before closing a non-responsive connection (0 to disable)."),
    used_bool("socket-reuse-port", "false", "Set SO_REUSEPORT on listeners."),
    used_bool("socket-reuse-address", "false", "Set SO_REUSEADDR on listeners."),
    // Clustering
    used("initial-advertise-peer-urls", "http://127.0.0.1:2380", "This member's peer URLs to advertise to the rest of the cluster."),
    used("initial-cluster", "", "Initial cluster configuration for bootstrapping (default: <name>=<initial-advertise-peer-urls>)."),
    used("initial-cluster-state", "new", "Initial cluster state ('new' or 'existing')."),
    used("initial-cluster-token", "etcd-cluster", "Initial cluster token for the cluster during bootstrap."),
    used("advertise-client-urls", "http://127.0.0.1:2379", "This member's client URLs to advertise to the public."),
    refused("discovery", "", "Discovery URL used to bootstrap the cluster (not supported)."),
    refused("discovery-fallback", "proxy", "Discovery fallback (not supported)."),
    refused("discovery-proxy", "", "HTTP proxy for discovery (not supported)."),
    refused("discovery-srv", "", "DNS SRV discovery domain (not supported)."),
    refused("discovery-srv-name", "", "DNS SRV discovery name suffix (not supported)."),
    used_bool("strict-reconfig-check", "true", "Reject reconfiguration requests that would cause quorum loss."),
    used_bool("pre-vote", "true", "Enable the raft Pre-Vote algorithm."),
    used("auto-compaction-retention", "0", "Auto compaction retention: hours (or a duration) in periodic mode, revisions in revision mode. 0 disables."),
    used("auto-compaction-mode", "periodic", "Interpret 'auto-compaction-retention' as a duration ('periodic') or a revision count ('revision')."),
    // v2 API and proxy: not provided
    refused_bool("enable-v2", "Accept etcd V2 client requests (not supported)."),
    inert("v2-deprecation", "not-yet", "etcd's v2store deprecation stage; ferrocd has no v2 store."),
    refused("experimental-enable-v2v3", "", "Serve v2 requests through the v3 backend (not supported)."),
    refused("proxy", "off", "Proxy mode (not supported; only 'off')."),
    inert("proxy-failure-wait", "5000", "Proxy setting (proxy mode is not supported)."),
    inert("proxy-refresh-interval", "30000", "Proxy setting (proxy mode is not supported)."),
    inert("proxy-dial-timeout", "1000", "Proxy setting (proxy mode is not supported)."),
    inert("proxy-write-timeout", "5000", "Proxy setting (proxy mode is not supported)."),
    inert("proxy-read-timeout", "0", "Proxy setting (proxy mode is not supported)."),
    // Security: TLS on the client and peer ports (rustls; see TlsFlags).
    used("cert-file", "", "Path to the client server TLS cert file."),
    used("key-file", "", "Path to the client server TLS key file."),
    used_bool("client-cert-auth", "false", "Enable client cert authentication."),
    used("client-crl-file", "", "Path to the client certificate revocation list file."),
    used("client-cert-allowed-hostname", "", "Allowed TLS hostname for client cert authentication."),
    used("trusted-ca-file", "", "Path to the client server TLS trusted CA file."),
    used_bool("auto-tls", "false", "Client TLS using generated certificates."),
    used("peer-cert-file", "", "Path to the peer server TLS cert file."),
    used("peer-key-file", "", "Path to the peer server TLS key file."),
    used_bool("peer-client-cert-auth", "false", "Enable peer client cert authentication."),
    used("peer-trusted-ca-file", "", "Path to the peer server TLS trusted CA file."),
    used("peer-cert-allowed-cn", "", "Allowed CN for inter peer authentication."),
    used("peer-cert-allowed-hostname", "", "Allowed TLS hostname for inter peer authentication."),
    used_bool("peer-auto-tls", "false", "Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided."),
    used("self-signed-cert-validity", "1", "The validity period of the client and peer certificates that are automatically generated by etcd when you specify ClientAutoTLS and PeerAutoTLS, the unit is year, and the default is 1."),
    used("peer-crl-file", "", "Path to the peer certificate revocation list file."),
    used("cipher-suites", "", "Comma-separated list of supported TLS cipher suites between client/server and peers (empty will be auto-populated by Go)."),
    used("tls-min-version", "TLS1.2", "Minimum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3."),
    used("tls-max-version", "", "Maximum TLS version supported by etcd. Possible values: TLS1.2, TLS1.3 (empty defers to Go)."),
    used("cors", "*", "Comma-separated whitelist of origins for CORS, or cross-origin resource sharing, (empty or * means allow all)."),
    used("host-whitelist", "*", "Acceptable hostnames from HTTP client requests, if server is not secure (empty means allow all)."),
    // Auth
    used("auth-token", "simple", "Specify auth token specific options."),
    used("bcrypt-cost", "10", "Specify bcrypt algorithm cost factor for auth password hashing."),
    used("auth-token-ttl", "300", "The lifetime in seconds of the auth token."),
    // Profiling, metrics, logging
    inert_bool("enable-pprof", "false", "Go's pprof endpoints; ferrocd has none."),
    inert("metrics", "basic", "Set level of detail for exported metrics."),
    used("listen-metrics-urls", "", "List of URLs to listen on for the metrics and health endpoints."),
    used("logger", "zap", "Logger: 'zap' (JSON lines, the only one; etcd 3.5 removed 'capnslog')."),
    used("log-outputs", "default", "Comma-separated log destinations: 'default' or 'stderr', 'stdout', file paths."),
    used("log-level", "info", "Configures log level. Only supports debug, info, warn, error, panic, or fatal."),
    inert_bool("enable-log-rotation", "false", "Log rotation of a single log-outputs file target."),
    inert("log-rotation-config-json", r#"{"maxsize": 100, "maxage": 0, "maxbackups": 0, "localtime": false, "compress": false}"#, "Log rotation configuration."),
    // Experimental
    inert_bool("experimental-enable-distributed-tracing", "false", "OpenTelemetry tracing (not provided)."),
    inert("experimental-distributed-tracing-address", "localhost:4317", "OpenTelemetry tracing address."),
    inert("experimental-distributed-tracing-service-name", "etcd", "OpenTelemetry service name."),
    inert("experimental-distributed-tracing-instance-id", "", "OpenTelemetry instance id."),
    inert_bool("experimental-initial-corrupt-check", "false", "Check data corruption before serving."),
    inert("experimental-corrupt-check-time", "0s", "Duration of time between cluster corruption check passes."),
    inert_bool("experimental-enable-lease-checkpoint", "false", "Persist lease remaining TTL periodically."),
    used("experimental-compaction-batch-limit", "1000", "Sets the maximum revisions deleted in each compaction batch."),
    used("experimental-snapshot-catchup-entries", "5000", "Number of entries for a slow follower to catch up after compacting the raft storage entries."),
    used_bool("experimental-peer-skip-client-san-verification", "false", "Skip verification of SAN field in client certificate for peer connections."),
    used("experimental-watch-progress-notify-interval", "10m", "Duration of periodic watch progress notifications."),
    inert("experimental-warning-apply-duration", "100ms", "Time duration after which a warning is generated if request takes more time."),
    inert_bool("experimental-txn-mode-write-with-shared-buffer", "true", "Use shared buffer in write transactions."),
    inert("experimental-bootstrap-defrag-threshold-megabytes", "0", "Minimum freeable megabytes before defragmenting at start-up."),
    used_bool("force-new-cluster", "false", "Force to create a new one member cluster."),
    refused_bool("unsafe-no-fsync", "Disables fsync: never supported, a write is acknowledged only once on disk."),
    used("config-file", "", "etcd's YAML configuration file; when given, it replaces every other flag and environment variable."),
    // ferrocd's own
    used("shards", "0", "Shard executors, one pinned per core (0 = the number of cores)."),
    used("log-format", "json", "Log line format: json (etcd's, the default) or text (for a terminal)."),
    used("listen-ui-urls", "", "List of URLs to serve the web console on, e.g. http://127.0.0.1:2381/ui (default: off)."),
];

/// Parse `args` (without the program name) and `env` into a [`Config`].
pub fn parse<I, S>(args: I, env: &[(String, String)]) -> Result<Parsed, ConfigError>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).map(go_style).collect();
    let cmd = command();

    // First pass: which flags came from the command line.
    let first = cmd
        .clone()
        .try_get_matches_from(
            std::iter::once(OsString::from("ferrocd")).chain(args.iter().cloned()),
        )
        .map_err(clap_error)?;
    if first.get_flag("version") {
        return Err(ConfigError::Version);
    }

    // `--config-file`, or its environment twin when the flag is not given
    // (etcd reads `ETCD_CONFIG_FILE` only then): the file is the whole
    // configuration, other flags and the environment are ignored.
    let config_file = Some(text(&first, "config-file"))
        .filter(|s| !s.is_empty())
        .or_else(|| {
            lookup(env, "FERROCD_CONFIG_FILE")
                .or_else(|| lookup(env, "ETCD_CONFIG_FILE"))
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        });
    if let Some(path) = config_file {
        let loaded = file::load(std::path::Path::new(&path))?;
        // The file's flags never name `config-file`: no second file.
        let mut parsed = parse(loaded.args, &[])?;
        parsed.warnings.splice(0..0, loaded.warnings);
        parsed.notices.push(format!(
            "loaded server configuration, other configuration command line flags and environment variables will be ignored if provided (path {path})"
        ));
        return Ok(parsed);
    }

    // Environment: FERROCD_X wins over ETCD_X; both lose to... nothing: a
    // flag given twice (flag and env) is an error, as etcd.
    let mut warnings = Vec::new();
    let mut from_env: Vec<OsString> = Vec::new();
    for flag in FLAGS {
        let var = flag.name.to_uppercase().replace('-', "_");
        let ours = lookup(env, &format!("FERROCD_{var}"));
        let theirs = lookup(env, &format!("ETCD_{var}"));
        let Some((var_name, value)) = ours
            .map(|v| (format!("FERROCD_{var}"), v))
            .or(theirs.map(|v| (format!("ETCD_{var}"), v)))
        else {
            continue;
        };
        if first.value_source(flag.name) == Some(ValueSource::CommandLine) {
            return Err(ConfigError::Invalid(format!(
                "conflicting environment variable {var_name} is shadowed by corresponding command-line flag (either unset environment variable or disable flag)"
            )));
        }
        from_env.push(format!("--{}={}", flag.name, value).into());
    }
    for (key, value) in env {
        for prefix in ["ETCD_", "FERROCD_"] {
            if let Some(rest) = key.strip_prefix(prefix) {
                let known = FLAGS
                    .iter()
                    .any(|f| f.name.to_uppercase().replace('-', "_") == rest);
                // ETCDCTL_* belongs to the CLI; ETCD_UNSUPPORTED_ARCH is etcd's.
                if !known && !key.starts_with("ETCDCTL_") && rest != "UNSUPPORTED_ARCH" {
                    warnings.push(format!("unrecognized environment variable {key}={value}"));
                }
            }
        }
    }

    let matches = if from_env.is_empty() {
        first
    } else {
        cmd.try_get_matches_from(
            std::iter::once(OsString::from("ferrocd"))
                .chain(args)
                .chain(from_env),
        )
        .map_err(clap_error)?
    };

    for flag in FLAGS {
        let value = text(&matches, flag.name);
        let default = flag.default;
        let differs = if flag.boolean {
            parse_bool(flag.name, &value)? != parse_bool(flag.name, default)?
        } else {
            value != default
        };
        if !differs {
            continue;
        }
        match flag.usage {
            FlagUse::Used => {}
            FlagUse::Inert => warnings.push(format!(
                "--{}={value} has no effect in ferrocd: {}",
                flag.name, flag.help
            )),
            FlagUse::Refused => {
                return Err(ConfigError::Invalid(format!(
                    "--{}={value} is not supported by ferrocd: {}",
                    flag.name, flag.help
                )));
            }
        }
    }

    let config = build(&matches)?;
    check_tls(&config, &mut warnings)?;
    Ok(Parsed {
        config,
        warnings,
        notices: Vec::new(),
    })
}

/// Parse the process's own arguments and environment.
pub fn from_process() -> Result<Parsed, ConfigError> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    parse(std::env::args_os().skip(1), &env)
}

fn lookup<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Go's `flag` accepts `-name`; clap wants `--name`. Rewrite a single-dash
/// word that names one of our flags (with or without `=value`).
fn go_style(arg: OsString) -> OsString {
    let Some(s) = arg.to_str() else { return arg };
    if let Some(rest) = s.strip_prefix('-')
        && !rest.starts_with('-')
    {
        let name = rest.split('=').next().unwrap_or(rest);
        if name == "version" || name == "help" || FLAGS.iter().any(|f| f.name == name) {
            return format!("-{s}").into();
        }
    }
    arg
}

fn command() -> Command {
    let mut cmd = Command::new("ferrocd")
        .about("A strongly consistent key-value store with etcd's v3 API.")
        .version(env!("CARGO_PKG_VERSION"))
        .disable_version_flag(true)
        .arg(
            Arg::new("version")
                .long("version")
                .action(ArgAction::SetTrue)
                .help("Print the version and exit."),
        );
    for flag in FLAGS {
        let mut arg = Arg::new(flag.name)
            .long(flag.name)
            .help(flag.help)
            .action(ArgAction::Set)
            .allow_hyphen_values(false);
        if flag.boolean {
            arg = arg
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value("true");
        }
        arg = arg.default_value(flag.default);
        // Go's flag package: the last occurrence wins.
        arg = arg.overrides_with(flag.name);
        cmd = cmd.arg(arg);
    }
    cmd
}

fn clap_error(err: clap::Error) -> ConfigError {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp => ConfigError::Help(err.to_string()),
        _ => ConfigError::Usage(err.to_string()),
    }
}

fn text(m: &ArgMatches, name: &str) -> String {
    m.get_one::<String>(name).cloned().unwrap_or_default()
}

/// Go's `strconv.ParseBool`.
fn parse_bool(flag: &str, v: &str) -> Result<bool, ConfigError> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(ConfigError::Invalid(format!(
            "invalid boolean value {v:?} for --{flag}"
        ))),
    }
}

fn number<T: std::str::FromStr>(m: &ArgMatches, flag: &str) -> Result<T, ConfigError> {
    let v = text(m, flag);
    v.parse().map_err(|_| {
        ConfigError::Invalid(format!(
            "invalid value {v:?} for --{flag}: expected a non-negative integer"
        ))
    })
}

/// Go's `time.ParseDuration` subset etcd users write: `5s`, `2h`, `10m`,
/// `1h30m`, `500ms`; a bare `0` is zero.
fn duration(m: &ArgMatches, flag: &str) -> Result<Duration, ConfigError> {
    let v = text(m, flag);
    if v == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(&v)
        .map_err(|e| ConfigError::Invalid(format!("invalid duration {v:?} for --{flag}: {e}")))
}

/// A comma-separated list; empty is `*` (everything), as etcd reads it.
fn list_or_star(v: &str) -> Vec<String> {
    let items: Vec<String> = v
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if items.is_empty() {
        vec!["*".to_owned()]
    } else {
        items
    }
}

/// `--cors`: `*` or origins, each a URL with a host and a port, as etcd
/// 3.5 requires (`http://a.example:80`).
fn cors(m: &ArgMatches) -> Result<Vec<String>, ConfigError> {
    let v = text(m, "cors");
    let list = list_or_star(&v);
    for o in &list {
        if o == "*" {
            continue;
        }
        // Go's net.SplitHostPort on the URL's host: the port must be
        // written out (the url crate drops a scheme's default port, so
        // the authority is looked at as written).
        let authority = o
            .split_once("://")
            .map(|(_, rest)| rest.split('/').next().unwrap_or(""));
        let has_port = Url::parse(o).is_ok()
            && authority
                .and_then(|a| a.rsplit_once(':'))
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !has_port {
            return Err(ConfigError::Invalid(format!(
                "invalid value {v:?} for flag -cors: URL address does not have the form \"host:port\": {o}"
            )));
        }
    }
    Ok(list)
}

fn urls(m: &ArgMatches, flag: &str, listen: bool) -> Result<Vec<Url>, ConfigError> {
    let v = text(m, flag);
    if v.is_empty() {
        return Ok(Vec::new());
    }
    v.split(',')
        .map(|s| parse_url(flag, s.trim(), listen))
        .collect()
}

fn parse_url(flag: &str, s: &str, listen: bool) -> Result<Url, ConfigError> {
    let url = Url::parse(s)
        .map_err(|e| ConfigError::Invalid(format!("--{flag}: invalid URL {s:?}: {e}")))?;
    match url.scheme() {
        "http" | "https" => {}
        "unix" | "unixs" => {
            return Err(ConfigError::Invalid(format!(
                "--{flag}: {s:?}: unix socket URLs are not supported by ferrocd; use http:// or https://"
            )));
        }
        other => {
            return Err(ConfigError::Invalid(format!(
                "--{flag}: URL scheme must be http, https, unix or unixs: {other}"
            )));
        }
    }
    if url.port().is_none() {
        return Err(ConfigError::Invalid(format!(
            "--{flag}: {s:?}: missing port in address"
        )));
    }
    if listen {
        // etcd binds to IPs only; `localhost` is its one accepted name.
        let ok = match url.host() {
            Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => true,
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        if !ok {
            return Err(ConfigError::Invalid(format!(
                "--{flag}: expected IP in URL for binding ({s})"
            )));
        }
    }
    Ok(url)
}

fn build(m: &ArgMatches) -> Result<Config, ConfigError> {
    let name = text(m, "name");
    let data_dir = match text(m, "data-dir").as_str() {
        "${name}.ferrocd" => PathBuf::from(format!("{name}.ferrocd")),
        "" => {
            return Err(ConfigError::Invalid("--data-dir must not be empty".into()));
        }
        other => PathBuf::from(other),
    };
    let wal_dir = Some(text(m, "wal-dir"))
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);

    let initial_advertise_peer_urls = urls(m, "initial-advertise-peer-urls", false)?;
    let initial_cluster = match text(m, "initial-cluster").as_str() {
        "" => BTreeMap::from([(name.clone(), initial_advertise_peer_urls.clone())]),
        spec => parse_initial_cluster(spec)?,
    };
    // Whether this member is in it, and the URLs match, is checked when
    // the member bootstraps without data (`membership::verify`): a
    // restart keeps the membership it has, whatever these flags say.

    let initial_cluster_state = match text(m, "initial-cluster-state").as_str() {
        "new" => ClusterState::New,
        "existing" => ClusterState::Existing,
        other => {
            return Err(ConfigError::Invalid(format!(
                "invalid value {other:?} for --initial-cluster-state: valid values are \"new\", \"existing\""
            )));
        }
    };

    let heartbeat_ms: u64 = number(m, "heartbeat-interval")?;
    let election_ms: u64 = number(m, "election-timeout")?;
    if heartbeat_ms == 0 || election_ms == 0 {
        return Err(ConfigError::Invalid(
            "--heartbeat-interval and --election-timeout must be positive".into(),
        ));
    }
    // etcd: "--election-timeout[...] should be at least as 5 times as --heartbeat-interval"
    if election_ms < 5 * heartbeat_ms {
        return Err(ConfigError::Invalid(format!(
            "--election-timeout[{election_ms}ms] should be at least as 5 times as --heartbeat-interval[{heartbeat_ms}ms]"
        )));
    }
    // etcd caps the election timeout at 50 s.
    if election_ms > 50_000 {
        return Err(ConfigError::Invalid(format!(
            "--election-timeout[{election_ms}ms] is too long, and should be set less than 50000ms"
        )));
    }

    let quota: u64 = number(m, "quota-backend-bytes")?;
    let quota_backend_bytes = if quota == 0 {
        DEFAULT_QUOTA_BYTES
    } else {
        quota
    };

    let retention = text(m, "auto-compaction-retention");
    let auto_compaction = match (text(m, "auto-compaction-mode").as_str(), retention.as_str()) {
        (_, "0" | "") => AutoCompaction::Off,
        ("periodic", r) => {
            let d = match r.parse::<u64>() {
                Ok(hours) => Duration::from_secs(hours * 3600),
                Err(_) => humantime::parse_duration(r).map_err(|e| {
                    ConfigError::Invalid(format!("invalid --auto-compaction-retention {r:?}: {e}"))
                })?,
            };
            if d.is_zero() {
                AutoCompaction::Off
            } else {
                AutoCompaction::Periodic(d)
            }
        }
        ("revision", r) => {
            let n: i64 = r
                .parse()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| ConfigError::Invalid(format!("invalid --auto-compaction-retention {r:?}: revision mode needs a revision count")))?;
            if n == 0 {
                AutoCompaction::Off
            } else {
                AutoCompaction::Revision(n)
            }
        }
        (other, _) => {
            return Err(ConfigError::Invalid(format!(
                "unknown auto-compaction-mode {other:?}: valid values are \"periodic\", \"revision\""
            )));
        }
    };

    // etcd's `setupLogging`, in its order: the logger, the outputs, the
    // level (files are opened by `main`, where etcd opens them too:
    // before anything else starts).
    match text(m, "logger").as_str() {
        "zap" => {}
        "capnslog" => {
            return Err(ConfigError::Invalid(
                "--logger=capnslog is removed in v3.5".into(),
            ));
        }
        other => {
            return Err(ConfigError::Invalid(format!(
                "unknown logger option {other:?}"
            )));
        }
    }
    let log_outputs = log_outputs(&text(m, "log-outputs"))?;
    let log_level = log_level(&text(m, "log-level"))?;
    let log_format = match text(m, "log-format").as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(ConfigError::Invalid(format!(
                "unknown --log-format {other:?}: valid values are text, json"
            )));
        }
    };

    let bcrypt_cost: u32 = number(m, "bcrypt-cost")?;
    if !(4..=31).contains(&bcrypt_cost) {
        return Err(ConfigError::Invalid(format!(
            "invalid bcrypt-cost {bcrypt_cost}: must be between 4 and 31"
        )));
    }
    let auth_token = text(m, "auth-token");
    let kind = auth_token.split(',').next().unwrap_or("");
    if kind != "simple" && kind != "jwt" {
        return Err(ConfigError::Invalid(format!("unknown token type: {kind}")));
    }

    let shards: usize = number(m, "shards")?;
    let shards = if shards == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        shards
    };
    let max_request_bytes: u32 = number(m, "max-request-bytes")?;
    if max_request_bytes == 0 {
        return Err(ConfigError::Invalid(
            "--max-request-bytes must be positive".into(),
        ));
    }

    Ok(Config {
        data_dir,
        wal_dir,
        listen_client_urls: nonempty(urls(m, "listen-client-urls", true)?, "listen-client-urls")?,
        advertise_client_urls: urls(m, "advertise-client-urls", false)?,
        listen_peer_urls: nonempty(urls(m, "listen-peer-urls", true)?, "listen-peer-urls")?,
        initial_advertise_peer_urls,
        listen_metrics_urls: urls(m, "listen-metrics-urls", true)?,
        listen_ui_urls: urls(m, "listen-ui-urls", true)?,
        initial_cluster,
        initial_cluster_state,
        initial_cluster_token: text(m, "initial-cluster-token"),
        snapshot_count: number(m, "snapshot-count")?,
        max_snapshots: number(m, "max-snapshots")?,
        max_wals: number(m, "max-wals")?,
        heartbeat_interval: Duration::from_millis(heartbeat_ms),
        election_timeout: Duration::from_millis(election_ms),
        pre_vote: parse_bool("pre-vote", &text(m, "pre-vote"))?,
        force_new_cluster: parse_bool("force-new-cluster", &text(m, "force-new-cluster"))?,
        strict_reconfig_check: parse_bool(
            "strict-reconfig-check",
            &text(m, "strict-reconfig-check"),
        )?,
        quota_backend_bytes,
        max_request_bytes,
        max_txn_ops: number(m, "max-txn-ops")?,
        auto_compaction,
        compaction_batch_limit: number(m, "experimental-compaction-batch-limit")?,
        snapshot_catchup_entries: number(m, "experimental-snapshot-catchup-entries")?,
        watch_progress_notify_interval: duration(m, "experimental-watch-progress-notify-interval")?,
        max_concurrent_streams: number(m, "max-concurrent-streams")?,
        grpc_keepalive_min_time: duration(m, "grpc-keepalive-min-time")?,
        grpc_keepalive_interval: duration(m, "grpc-keepalive-interval")?,
        grpc_keepalive_timeout: duration(m, "grpc-keepalive-timeout")?,
        auth_token,
        bcrypt_cost,
        auth_token_ttl: Duration::from_secs(number(m, "auth-token-ttl")?),
        socket_reuse_port: parse_bool("socket-reuse-port", &text(m, "socket-reuse-port"))?,
        socket_reuse_address: parse_bool("socket-reuse-address", &text(m, "socket-reuse-address"))?,
        log_level,
        log_format,
        log_outputs,
        shards,
        cors: cors(m)?,
        host_whitelist: list_or_star(&text(m, "host-whitelist")),
        name,
        client_tls: tls_flags(m, "")?,
        peer_tls: tls_flags(m, "peer-")?,
        peer_skip_client_san_verification: parse_bool(
            "experimental-peer-skip-client-san-verification",
            &text(m, "experimental-peer-skip-client-san-verification"),
        )?,
    })
}

/// `--log-level`: zap's level names, lower or upper case (`WARN`); empty
/// is info. etcd 3.5.1 panics on anything else (exit status 2).
fn log_level(v: &str) -> Result<LogLevel, ConfigError> {
    Ok(match v {
        "debug" | "DEBUG" => LogLevel::Debug,
        "info" | "INFO" | "" => LogLevel::Info,
        "warn" | "WARN" => LogLevel::Warn,
        "error" | "ERROR" | "dpanic" | "DPANIC" | "panic" | "PANIC" | "fatal" | "FATAL" => {
            LogLevel::Error
        }
        other => {
            return Err(ConfigError::Panic(format!("unrecognized level: {other:?}")));
        }
    })
}

/// `--log-outputs`: a comma-separated set (duplicates count once, as
/// etcd's `UniqueStringsFromFlag`); `default` and `stderr` are stderr,
/// `stdout` is stdout, anything else a file path (an empty one included,
/// which then fails to open, as in etcd).
fn log_outputs(v: &str) -> Result<Vec<LogOutput>, ConfigError> {
    let mut names: Vec<&str> = v.split(',').collect();
    names.sort_unstable();
    names.dedup();
    if names.len() > 1 && names.contains(&"default") {
        return Err(ConfigError::Invalid(
            "multi logoutput for \"default\" is not supported yet".into(),
        ));
    }
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let o = match name {
            "default" | "stderr" => LogOutput::Stderr,
            "stdout" => LogOutput::Stdout,
            "systemd/journal" => {
                return Err(ConfigError::Invalid(
                    "--log-outputs=systemd/journal is not supported by ferrocd: write to stderr (under systemd it reaches the journal)".into(),
                ));
            }
            path => LogOutput::File(PathBuf::from(path)),
        };
        if !out.contains(&o) {
            out.push(o);
        }
    }
    Ok(out)
}

/// `--cert-file`, `--key-file`, … (`prefix` `""`) or their `--peer-` twins.
fn tls_flags(m: &ArgMatches, prefix: &str) -> Result<TlsFlags, ConfigError> {
    let path = |name: &str| {
        Some(text(m, &format!("{prefix}{name}")))
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    };
    let auth = format!("{prefix}client-cert-auth");
    let named = |name: &str| Some(text(m, name)).filter(|s| !s.is_empty());
    // The client port's twins of the peer flags are named differently.
    let (crl, auto, cn, hostname) = if prefix.is_empty() {
        (
            "client-crl-file",
            "auto-tls",
            None,
            named("client-cert-allowed-hostname"),
        )
    } else {
        (
            "peer-crl-file",
            "peer-auto-tls",
            named("peer-cert-allowed-cn"),
            named("peer-cert-allowed-hostname"),
        )
    };
    // etcd refuses both peer names only where it builds a peer TLS
    // config from them: with an https listen peer URL and given files (a
    // generated pair drops them, see crate::auto_tls).
    let https_peers = text(m, "listen-peer-urls")
        .split(',')
        .any(|u| u.trim().starts_with("https://"));
    let generated = parse_bool(auto, &text(m, auto))?
        && path("cert-file").is_none()
        && path("key-file").is_none();
    let allowed = match (cn, hostname) {
        (Some(_), Some(_)) if !https_peers || generated => None,
        (Some(cn), Some(hostname)) => {
            return Err(ConfigError::Invalid(format!(
                "AllowedCN and AllowedHostname are mutually exclusive (cn={cn:?}, hostname={hostname:?})"
            )));
        }
        (Some(cn), None) => Some(ferrocd_net::tls::AllowedName::Cn(cn)),
        (None, Some(h)) => Some(ferrocd_net::tls::AllowedName::Hostname(h)),
        (None, None) => None,
    };
    let version = |name: &str| -> Result<_, ConfigError> {
        named(name)
            .map(|v| ferrocd_net::tls::TlsVersion::parse(&v))
            .transpose()
            .map_err(|e| ConfigError::Invalid(e.to_string()))
    };
    // Go's comma list: split as given, so " X" is its own (unknown) name.
    let protocol = ferrocd_net::tls::Protocol {
        min: version("tls-min-version")?,
        max: version("tls-max-version")?,
        cipher_suites: named("cipher-suites")
            .map(|v| v.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
    };
    protocol
        .validate()
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    Ok(TlsFlags {
        cert_file: path("cert-file"),
        key_file: path("key-file"),
        trusted_ca_file: path("trusted-ca-file"),
        client_cert_auth: parse_bool(&auth, &text(m, &auth))?,
        crl_file: named(crl).map(PathBuf::from),
        allowed,
        auto_tls: parse_bool(auto, &text(m, auto))?,
        self_signed_cert_validity: number(m, "self-signed-cert-validity")?,
        self_signed: false,
        protocol,
    })
}

/// A URL as Go prints it (no `/` after the port).
fn go_url(u: &Url) -> String {
    let s = u.as_str();
    if u.path() == "/" && u.query().is_none() && u.fragment().is_none() {
        s.trim_end_matches('/').to_string()
    } else {
        s.to_string()
    }
}

/// etcd's TLS checks, with its messages: an `https://` listen URL needs a
/// cert and a key (both), and TLS flags on `http://` URLs are ignored
/// with a warning per URL.
fn check_tls(cfg: &Config, warnings: &mut Vec<String>) -> Result<(), ConfigError> {
    let both = |t: &TlsFlags| -> Result<(), ConfigError> {
        if t.cert_file.is_none() || t.key_file.is_none() {
            let show = |p: &Option<PathBuf>| {
                p.as_ref()
                    .map_or(String::new(), |p| p.display().to_string())
            };
            return Err(ConfigError::Invalid(format!(
                "KeyFile and CertFile must both be present[key: {}, cert: {}]",
                show(&t.key_file),
                show(&t.cert_file)
            )));
        }
        Ok(())
    };
    for u in &cfg.listen_peer_urls {
        if u.scheme() == "https" {
            if !cfg.peer_tls.has_cert() {
                return Err(ConfigError::Invalid(format!(
                    "cannot listen on TLS for {}:{}: KeyFile and CertFile are not presented",
                    u.host_str().unwrap_or_default(),
                    u.port().unwrap_or_default()
                )));
            }
            if !cfg.peer_tls.is_empty() {
                both(&cfg.peer_tls)?;
            }
        } else {
            if cfg.peer_tls.has_cert() {
                warnings.push(format!(
                    "scheme is HTTP while key and cert files are present; ignoring key and cert files (peer-url {})",
                    go_url(u)
                ));
            }
            if cfg.peer_tls.client_cert_auth {
                warnings.push(format!(
                    "scheme is HTTP while --peer-client-cert-auth is enabled; ignoring client cert auth for this URL (peer-url {})",
                    go_url(u)
                ));
            }
        }
    }
    for u in &cfg.listen_client_urls {
        if u.scheme() == "https" {
            if !cfg.client_tls.has_cert() {
                return Err(ConfigError::Invalid(format!(
                    "TLS key/cert (--cert-file, --key-file) must be provided for client url {} with HTTPS scheme",
                    go_url(u)
                )));
            }
            if !cfg.client_tls.is_empty() {
                both(&cfg.client_tls)?;
            }
        } else {
            if cfg.client_tls.has_cert() {
                warnings.push(format!(
                    "scheme is HTTP while key and cert files are present; ignoring key and cert files (client-url {})",
                    go_url(u)
                ));
            }
            if cfg.client_tls.client_cert_auth {
                warnings.push(format!(
                    "scheme is HTTP while --client-cert-auth is enabled; ignoring client cert auth for this URL (client-url {})",
                    go_url(u)
                ));
            }
        }
    }
    for (flag, list) in [
        ("listen-metrics-urls", &cfg.listen_metrics_urls),
        ("listen-ui-urls", &cfg.listen_ui_urls),
    ] {
        if let Some(u) = list.iter().find(|u| u.scheme() == "https")
            && cfg.client_tls.server().is_none()
            && !cfg.client_tls.auto_tls
        {
            return Err(ConfigError::Invalid(format!(
                "--{flag}: {}: https needs --cert-file and --key-file",
                go_url(u)
            )));
        }
    }
    Ok(())
}

/// etcd's default backend quota when `--quota-backend-bytes` is 0: 2 GiB.
pub const DEFAULT_QUOTA_BYTES: u64 = 2 * 1024 * 1024 * 1024;

fn nonempty(v: Vec<Url>, flag: &str) -> Result<Vec<Url>, ConfigError> {
    if v.is_empty() {
        return Err(ConfigError::Invalid(format!("--{flag} must not be empty")));
    }
    Ok(v)
}

/// `name1=http://a:2380,name1=http://b:2380,name2=http://c:2380`: a member
/// may appear several times, once per peer URL, as etcd's `URLsMap`.
pub fn parse_initial_cluster(spec: &str) -> Result<BTreeMap<String, Vec<Url>>, ConfigError> {
    let mut out: BTreeMap<String, Vec<Url>> = BTreeMap::new();
    for part in spec.split(',') {
        let part = part.trim();
        let Some((name, url)) = part.split_once('=') else {
            return Err(ConfigError::Invalid(format!(
                "--initial-cluster: {part:?}: expected name=url"
            )));
        };
        if name.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "--initial-cluster: {part:?}: empty member name"
            )));
        }
        let url = parse_url("initial-cluster", url, false)?;
        // Duplicates are etcd's bootstrap error, not a parse error
        // (`membership::verify`).
        out.entry(name.to_string()).or_default().push(url);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(args: &[&str]) -> Parsed {
        parse(args.iter().copied(), &[]).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }
    fn ok_env(args: &[&str], env: &[(&str, &str)]) -> Parsed {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(args.iter().copied(), &env).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }
    fn err(args: &[&str]) -> ConfigError {
        parse(args.iter().copied(), &[]).expect_err("must fail")
    }

    #[test]
    fn defaults_are_a_single_local_member() {
        let p = ok(&[]);
        let c = p.config;
        assert!(p.warnings.is_empty());
        assert_eq!(c.name, "default");
        assert_eq!(c.data_dir, PathBuf::from("default.ferrocd"));
        assert_eq!(c.listen_client_urls[0].as_str(), "http://127.0.0.1:2379/");
        assert_eq!(c.listen_peer_urls[0].as_str(), "http://127.0.0.1:2380/");
        assert_eq!(c.initial_cluster.len(), 1);
        assert_eq!(
            c.initial_cluster["default"][0].as_str(),
            "http://127.0.0.1:2380/"
        );
        assert_eq!(c.initial_cluster_state, ClusterState::New);
        assert_eq!(c.initial_cluster_token, "etcd-cluster");
        assert_eq!(c.snapshot_count, 100_000);
        assert_eq!(c.heartbeat_interval, Duration::from_millis(100));
        assert_eq!(c.election_timeout, Duration::from_millis(1000));
        assert_eq!(c.max_request_bytes, 1_572_864);
        assert_eq!(c.max_txn_ops, 128);
        assert_eq!(c.max_concurrent_streams, u32::MAX);
        assert_eq!(c.quota_backend_bytes, DEFAULT_QUOTA_BYTES);
        assert_eq!(c.auto_compaction, AutoCompaction::Off);
        assert_eq!(c.grpc_keepalive_interval, Duration::from_secs(7200));
        assert_eq!(c.watch_progress_notify_interval, Duration::from_secs(600));
        assert!(c.pre_vote && c.strict_reconfig_check);
        assert!(c.shards >= 1);
        assert_eq!(c.cors, ["*"]);
        assert_eq!(c.host_whitelist, ["*"]);
    }

    #[test]
    fn cors_origins_need_a_port_and_lists_may_be_star() {
        let c = ok(&["--cors", "http://a.example:80, https://b.example:443"]).config;
        assert_eq!(c.cors, ["http://a.example:80", "https://b.example:443"]);
        let c = ok(&["--cors", "", "--host-whitelist", "a.example,b.example"]).config;
        assert_eq!(c.cors, ["*"]);
        assert_eq!(c.host_whitelist, ["a.example", "b.example"]);
        // etcd 3.5.1's words.
        assert_eq!(
            err(&["--cors", "http://a.example"]).to_string(),
            "invalid value \"http://a.example\" for flag -cors: URL address does not have the form \"host:port\": http://a.example"
        );
    }

    #[test]
    fn name_alone_derives_data_dir_and_cluster() {
        let c = ok(&["--name", "infra1"]).config;
        assert_eq!(c.data_dir, PathBuf::from("infra1.ferrocd"));
        assert!(c.initial_cluster.contains_key("infra1"));
    }

    #[test]
    fn go_style_flags() {
        let c = ok(&[
            "-name",
            "a",
            "--data-dir=/x",
            "-snapshot-count=5",
            "--pre-vote=false",
            "--socket-reuse-port",
        ])
        .config;
        assert_eq!(c.name, "a");
        assert_eq!(c.data_dir, PathBuf::from("/x"));
        assert_eq!(c.snapshot_count, 5);
        assert!(!c.pre_vote);
        assert!(c.socket_reuse_port);
        // the last occurrence wins, as Go's flag package
        assert_eq!(ok(&["--name", "x", "--name=y"]).config.name, "y");
    }

    #[test]
    fn three_member_cluster() {
        let c = ok(&[
            "--name",
            "infra1",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:12380",
            "--listen-peer-urls",
            "http://127.0.0.1:12380",
            "--listen-client-urls",
            "http://127.0.0.1:2379,http://127.0.0.2:2379",
            "--initial-cluster",
            "infra1=http://127.0.0.1:12380,infra2=http://127.0.0.1:22380,infra3=http://127.0.0.1:32380",
            "--initial-cluster-token",
            "tok",
            "--initial-cluster-state",
            "existing",
        ])
        .config;
        assert_eq!(c.initial_cluster.len(), 3);
        assert_eq!(c.listen_client_urls.len(), 2);
        assert_eq!(c.initial_cluster_state, ClusterState::Existing);
        assert_eq!(c.initial_cluster_token, "tok");
    }

    #[test]
    fn initial_cluster_without_this_member_parses() {
        // etcd checks it at bootstrap only (membership::verify); a
        // restart on a data dir ignores the flag.
        let c = ok(&[
            "--name",
            "x",
            "--initial-cluster",
            "y=http://127.0.0.1:2380,y=http://127.0.0.1:2380",
        ]);
        assert_eq!(c.config.initial_cluster["y"].len(), 2);
    }

    #[test]
    fn unknown_flag_and_positional_are_usage_errors() {
        assert!(matches!(err(&["--foo"]), ConfigError::Usage(_)));
        assert!(matches!(
            err(&["--unsafe-no-fsync", "true"]),
            ConfigError::Usage(_)
        ));
        assert!(matches!(err(&["--name"]), ConfigError::Usage(_)));
        assert!(matches!(err(&["--help"]), ConfigError::Help(_)));
        assert!(matches!(err(&["--version"]), ConfigError::Version));
    }

    #[test]
    fn refused_and_inert_flags() {
        let e = err(&["--unsafe-no-fsync"]);
        assert!(
            matches!(e, ConfigError::Invalid(_)) && e.to_string().contains("unsafe-no-fsync"),
            "{e}"
        );
        assert!(matches!(
            err(&["--enable-v2=true"]),
            ConfigError::Invalid(_)
        ));
        assert!(matches!(
            err(&["--discovery", "https://d.example/x"]),
            ConfigError::Invalid(_)
        ));
        // defaults of refused flags are fine, as a unit file may spell them out
        ok(&[
            "--enable-v2=false",
            "--proxy",
            "off",
            "--unsafe-no-fsync=false",
        ]);
        let p = ok(&["--backend-bbolt-freelist-type", "array", "--logger", "zap"]);
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        assert!(p.warnings[0].contains("backend-bbolt-freelist-type"));
    }

    #[test]
    fn environment() {
        let c = ok_env(
            &[],
            &[
                ("ETCD_NAME", "e"),
                ("ETCD_SNAPSHOT_COUNT", "7"),
                ("FERROCD_SNAPSHOT_COUNT", "9"),
            ],
        )
        .config;
        assert_eq!(c.name, "e");
        assert_eq!(c.snapshot_count, 9, "FERROCD_ wins over ETCD_");
        let p = ok_env(&[], &[("ETCD_FOO", "1"), ("ETCDCTL_API", "3")]);
        assert_eq!(
            p.warnings,
            vec!["unrecognized environment variable ETCD_FOO=1".to_string()]
        );
        let env = vec![("ETCD_NAME".to_string(), "z".to_string())];
        let e = parse(["--name", "q"], &env).expect_err("flag and env together");
        assert!(e.to_string().contains("shadowed"), "{e}");
    }

    #[test]
    fn values_are_checked() {
        assert!(
            err(&["--heartbeat-interval", "300", "--election-timeout", "1000"])
                .to_string()
                .contains("5 times")
        );
        assert!(matches!(
            err(&["--snapshot-count", "-1"]),
            ConfigError::Invalid(_) | ConfigError::Usage(_)
        ));
        assert!(matches!(
            err(&["--initial-cluster-state", "old"]),
            ConfigError::Invalid(_)
        ));
        assert!(
            err(&["--listen-client-urls", "http://example.com:2379"])
                .to_string()
                .contains("expected IP")
        );
        assert!(
            err(&["--listen-client-urls", "http://127.0.0.1"])
                .to_string()
                .contains("missing port")
        );
        assert!(matches!(
            err(&["--log-level", "loud"]),
            ConfigError::Panic(m) if m == "unrecognized level: \"loud\""
        ));
        assert!(matches!(
            err(&[
                "--auto-compaction-mode",
                "sometimes",
                "--auto-compaction-retention",
                "1"
            ]),
            ConfigError::Invalid(_)
        ));
    }

    const HTTPS_CLIENT: [&str; 4] = [
        "--listen-client-urls",
        "https://127.0.0.1:2379",
        "--advertise-client-urls",
        "https://127.0.0.1:2379",
    ];
    const HTTPS_PEER: [&str; 6] = [
        "--listen-peer-urls",
        "https://127.0.0.1:2380",
        "--initial-advertise-peer-urls",
        "https://127.0.0.1:2380",
        "--initial-cluster",
        "default=https://127.0.0.1:2380",
    ];

    #[test]
    fn tls_flags_are_parsed() {
        let mut args = HTTPS_CLIENT.to_vec();
        args.extend([
            "--cert-file",
            "s.pem",
            "--key-file",
            "s-key.pem",
            "--trusted-ca-file",
            "ca.pem",
            "--client-cert-auth",
        ]);
        args.extend(HTTPS_PEER);
        args.extend([
            "--peer-cert-file=p.pem",
            "--peer-key-file=p-key.pem",
            "--peer-trusted-ca-file=pca.pem",
            "--peer-client-cert-auth=true",
        ]);
        let p = ok(&args);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let c = p.config;
        assert_eq!(c.listen_client_urls[0].scheme(), "https");
        let t = c.client_tls.server().unwrap();
        assert_eq!(
            (t.cert, t.key, t.trusted_ca, t.client_cert_auth),
            (
                PathBuf::from("s.pem"),
                PathBuf::from("s-key.pem"),
                Some(PathBuf::from("ca.pem")),
                true
            )
        );
        let d = c.peer_tls.dialer();
        assert_eq!(d.ca, Some(PathBuf::from("pca.pem")));
        assert_eq!(d.cert, Some(PathBuf::from("p.pem")));
        assert!(c.peer_tls.client_cert_auth);
        // environment twins
        let c = ok_env(
            &HTTPS_CLIENT,
            &[("ETCD_CERT_FILE", "e.pem"), ("ETCD_KEY_FILE", "e-key.pem")],
        )
        .config;
        assert_eq!(c.client_tls.cert_file, Some(PathBuf::from("e.pem")));
        assert!(ok(&[]).config.client_tls.server().is_none());
        assert!(!ok(&[]).config.peer_skip_client_san_verification);
        assert!(
            ok(&["--experimental-peer-skip-client-san-verification"])
                .config
                .peer_skip_client_san_verification
        );
    }

    #[test]
    fn tls_security_flags_are_parsed() {
        use ferrocd_net::tls::{AllowedName, TlsVersion};
        let mut args = HTTPS_CLIENT.to_vec();
        args.extend([
            "--auto-tls",
            "--client-crl-file=c.crl",
            "--client-cert-allowed-hostname=client.example",
            "--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "--tls-max-version=TLS1.2",
            "--self-signed-cert-validity=3",
        ]);
        args.extend(HTTPS_PEER);
        args.extend([
            "--peer-auto-tls",
            "--peer-crl-file=p.crl",
            "--peer-cert-allowed-cn=etcd-peer",
        ]);
        // auto TLS stands in for the cert and key files
        let p = ok(&args);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let (c, t) = (&p.config.client_tls, &p.config.peer_tls);
        assert!(c.auto_tls && t.auto_tls && c.is_empty() && !c.self_signed);
        assert_eq!(c.crl_file, Some(PathBuf::from("c.crl")));
        assert_eq!(t.crl_file, Some(PathBuf::from("p.crl")));
        assert_eq!(
            c.allowed,
            Some(AllowedName::Hostname("client.example".into()))
        );
        assert_eq!(t.allowed, Some(AllowedName::Cn("etcd-peer".into())));
        assert_eq!(
            (c.self_signed_cert_validity, t.self_signed_cert_validity),
            (3, 3)
        );
        for x in [c, t] {
            assert_eq!(x.protocol.min, Some(TlsVersion::Tls12));
            assert_eq!(x.protocol.max, Some(TlsVersion::Tls12));
            assert_eq!(x.protocol.cipher_suites.len(), 2);
        }
        let c = ok(&["--peer-cert-allowed-hostname=peer.example"]).config;
        assert_eq!(
            c.peer_tls.allowed,
            Some(AllowedName::Hostname("peer.example".into()))
        );
        assert_eq!(c.client_tls.protocol.max, None);

        // refusals, in etcd's words where etcd has the flag
        let msg = |a: &[&str]| err(a).to_string();
        assert_eq!(
            msg(&["--cipher-suites", "BOGUS"]),
            r#"unexpected TLS cipher suite "BOGUS""#
        );
        assert_eq!(
            msg(&["--tls-min-version", "TLS1.1"]),
            r#"unexpected TLS version "TLS1.1" (must be one of: TLS1.2, TLS1.3)"#
        );
        assert_eq!(
            msg(&["--tls-min-version", "TLS1.3", "--tls-max-version", "TLS1.2"]),
            "min version (TLS1.3) is greater than max version (TLS1.2)"
        );
        assert_eq!(
            msg(&[
                "--tls-min-version",
                "TLS1.3",
                "--cipher-suites",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
            ]),
            "cipher suites cannot be configured when only TLS1.3 is enabled"
        );
        let mut both = HTTPS_PEER.to_vec();
        both.extend([
            "--peer-cert-file=p.pem",
            "--peer-key-file=p-key.pem",
            "--peer-cert-allowed-cn=a",
            "--peer-cert-allowed-hostname=b",
        ]);
        assert_eq!(
            msg(&both),
            r#"AllowedCN and AllowedHostname are mutually exclusive (cn="a", hostname="b")"#
        );
        // on http peer URLs etcd never builds the peer TLS config, and a
        // generated pair drops them
        ok(&["--peer-cert-allowed-cn=a", "--peer-cert-allowed-hostname=b"]);
        both.drain(HTTPS_PEER.len()..HTTPS_PEER.len() + 2);
        both.push("--peer-auto-tls");
        ok(&both);
    }

    /// etcd 3.5.1's messages, seen by starting it with these flags.
    #[test]
    fn tls_flag_combinations_refused_as_etcd() {
        let e = err(&HTTPS_CLIENT);
        assert_eq!(
            e.to_string(),
            "TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:2379 with HTTPS scheme"
        );
        let mut args = HTTPS_CLIENT.to_vec();
        args.extend(["--cert-file", "s.pem"]);
        assert_eq!(
            err(&args).to_string(),
            "KeyFile and CertFile must both be present[key: , cert: s.pem]"
        );
        let mut args = HTTPS_CLIENT.to_vec();
        args.extend(["--key-file", "k.pem"]);
        assert_eq!(
            err(&args).to_string(),
            "KeyFile and CertFile must both be present[key: k.pem, cert: ]"
        );
        assert_eq!(
            err(&HTTPS_PEER).to_string(),
            "cannot listen on TLS for 127.0.0.1:2380: KeyFile and CertFile are not presented"
        );
        let mut args = HTTPS_PEER.to_vec();
        args.extend(["--peer-cert-file", "p.pem"]);
        assert_eq!(
            err(&args).to_string(),
            "KeyFile and CertFile must both be present[key: , cert: p.pem]"
        );
        // client TLS flags do not make an https peer URL work, nor the reverse
        let mut args = HTTPS_PEER.to_vec();
        args.extend(["--cert-file", "s.pem", "--key-file", "k.pem"]);
        assert!(err(&args).to_string().starts_with("cannot listen on TLS"));
        assert!(matches!(
            err(&["--listen-client-urls", "unixs://127.0.0.1:2379"]),
            ConfigError::Invalid(_)
        ));
        // https advertise URLs with http listeners are fine (etcd too)
        ok(&["--advertise-client-urls", "https://127.0.0.1:2379"]);
    }

    #[test]
    fn tls_flags_on_http_urls_are_ignored_with_warnings() {
        let p = ok(&[
            "--listen-client-urls",
            "http://127.0.0.1:2379",
            "--cert-file",
            "s.pem",
            "--key-file",
            "k.pem",
            "--client-cert-auth",
            "--peer-cert-file",
            "p.pem",
            "--peer-key-file",
            "pk.pem",
        ]);
        assert_eq!(
            p.warnings,
            vec![
                "scheme is HTTP while key and cert files are present; ignoring key and cert files (peer-url http://127.0.0.1:2380)".to_string(),
                "scheme is HTTP while key and cert files are present; ignoring key and cert files (client-url http://127.0.0.1:2379)".to_string(),
                "scheme is HTTP while --client-cert-auth is enabled; ignoring client cert auth for this URL (client-url http://127.0.0.1:2379)".to_string(),
            ]
        );
        // mixed: the https URL gets TLS, the http one a warning
        let p = ok(&[
            "--listen-client-urls",
            "https://127.0.0.1:2379,http://127.0.0.1:2378",
            "--cert-file",
            "s.pem",
            "--key-file",
            "k.pem",
        ]);
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        assert!(p.warnings[0].contains("http://127.0.0.1:2378"));
    }

    /// etcd 3.5.1's `setupLogging`, seen by starting it with these flags.
    #[test]
    fn logging_flags() {
        let c = ok(&[]).config;
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.log_outputs, [LogOutput::Stderr]);
        assert_eq!(c.log_level, LogLevel::Info);
        let c = ok(&[
            "--log-outputs",
            "stdout,/tmp/a.log,stderr,stdout",
            "--log-level",
            "WARN",
        ])
        .config;
        assert_eq!(
            c.log_outputs,
            [
                LogOutput::File("/tmp/a.log".into()),
                LogOutput::Stderr,
                LogOutput::Stdout
            ]
        );
        assert_eq!(c.log_level, LogLevel::Warn);
        assert_eq!(
            ok(&["--log-level", "fatal"]).config.log_level,
            LogLevel::Error
        );
        assert_eq!(
            ok(&["--log-format", "text"]).config.log_format,
            LogFormat::Text
        );
        assert_eq!(
            err(&["--log-outputs", "default,stdout"]).to_string(),
            "multi logoutput for \"default\" is not supported yet"
        );
        assert_eq!(
            err(&["--logger", "capnslog"]).to_string(),
            "--logger=capnslog is removed in v3.5"
        );
        assert_eq!(
            err(&["--logger", "foo"]).to_string(),
            "unknown logger option \"foo\""
        );
        assert!(matches!(
            err(&["--log-outputs", "systemd/journal"]),
            ConfigError::Invalid(_)
        ));
        // The logger is checked before the level, as etcd does.
        assert!(matches!(
            err(&["--logger", "foo", "--log-level", "loud"]),
            ConfigError::Invalid(_)
        ));
        let c = ok_env(&[], &[("ETCD_LOG_OUTPUTS", "stdout")]).config;
        assert_eq!(c.log_outputs, [LogOutput::Stdout]);
    }

    #[test]
    fn config_file_replaces_flags_and_environment() {
        let dir = std::env::temp_dir().join(format!("ferrocd-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("etcd.yaml");
        std::fs::write(
            &path,
            "name: from-file\nsnapshot-count: 7\nlog-outputs: [stdout]\n",
        )
        .unwrap();
        let file = path.to_str().unwrap();
        // Flags and variables beside the file are ignored, even ones that
        // would conflict with each other.
        let p = ok_env(
            &["--config-file", file, "--name", "flag", "--max-wals", "9"],
            &[
                ("ETCD_NAME", "env"),
                ("ETCD_SNAPSHOT_COUNT", "3"),
                ("ETCD_FOO", "1"),
            ],
        );
        assert_eq!(p.config.name, "from-file");
        assert_eq!(p.config.snapshot_count, 7);
        assert_eq!(p.config.max_wals, 5);
        assert_eq!(p.config.log_outputs, [LogOutput::Stdout]);
        assert_eq!(p.config.data_dir, PathBuf::from("from-file.ferrocd"));
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(p.notices.len(), 1);
        // The environment twin, read when the flag is absent.
        let p = ok_env(&["--name", "flag"], &[("ETCD_CONFIG_FILE", file)]);
        assert_eq!(p.config.name, "from-file");
        // What the flags refuse, the file refuses.
        std::fs::write(&path, "heartbeat-interval: 300\n").unwrap();
        assert!(
            err(&["--config-file", file])
                .to_string()
                .contains("5 times")
        );
        std::fs::write(&path, "unsafe-no-fsync: true\n").unwrap();
        assert!(matches!(
            err(&["--config-file", file]),
            ConfigError::Invalid(_)
        ));
        std::fs::write(&path, "log-level: loud\n").unwrap();
        assert!(matches!(
            err(&["--config-file", file]),
            ConfigError::Panic(_)
        ));
        std::fs::remove_dir_all(&dir).unwrap();
        let missing = dir.join("missing.yaml");
        assert_eq!(
            err(&["--config-file", missing.to_str().unwrap()]).to_string(),
            format!("open {}: no such file or directory", missing.display())
        );
    }

    #[test]
    fn auto_compaction() {
        let c = ok(&["--auto-compaction-retention", "1"]).config;
        assert_eq!(
            c.auto_compaction,
            AutoCompaction::Periodic(Duration::from_secs(3600))
        );
        let c = ok(&["--auto-compaction-retention", "30m"]).config;
        assert_eq!(
            c.auto_compaction,
            AutoCompaction::Periodic(Duration::from_secs(1800))
        );
        let c = ok(&[
            "--auto-compaction-mode",
            "revision",
            "--auto-compaction-retention",
            "1000",
        ])
        .config;
        assert_eq!(c.auto_compaction, AutoCompaction::Revision(1000));
        assert!(matches!(
            err(&[
                "--auto-compaction-mode",
                "revision",
                "--auto-compaction-retention",
                "1h"
            ]),
            ConfigError::Invalid(_)
        ));
    }
}
