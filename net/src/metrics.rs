//! Prometheus metrics with etcd's names, rendered as the classic text format
//! (`text/plain; version=0.0.4`) that etcd serves on `/metrics`, so etcd
//! dashboards and alerts work unchanged.
//!
//! [`Metrics`] is a cheap cloneable handle (one `Arc`). The node feeds the
//! storage and raft gauges and histograms through its methods; gRPC calls
//! are counted by [`GrpcMetricsLayer`] (a tower layer for the tonic server)
//! and by the HTTP/JSON gateway, under go-grpc-prometheus's names:
//! `grpc_server_started_total`, `grpc_server_handled_total` and
//! `grpc_server_handling_seconds`.
//!
//! Beside them: the raft, store, lease and health series etcd serves
//! (`etcd_server_*`, `etcd_mvcc_*`, `etcd_debugging_*`), the client and
//! peer traffic (`etcd_network_*`: [`PeerSeries`] per peer, message bytes
//! from the gRPC framing), and the process (`process_*`, `os_fd_*`).
//! `core/tests/metrics/names.txt` lists etcd's names and which are served.
//!
//! Hot path: every known method's series (one started counter, one handled
//! counter per gRPC code, one histogram) are created up front, as
//! go-grpc-prometheus does when it registers a server, and looked up by the
//! request path in a fixed map; a call then costs a hash of its path, a
//! clock read and a few atomic adds, with no allocation. Paths not in
//! [`METHODS`] (HTTP routes, unknown services) pass through uncounted.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use tonic::Code;

/// The gRPC call kinds, as go-grpc-prometheus labels them (`grpc_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// One request, one response.
    Unary,
    /// One request, a stream of responses.
    ServerStream,
    /// Streams both ways.
    BidiStream,
}

impl CallKind {
    fn label(self) -> &'static str {
        match self {
            CallKind::Unary => "unary",
            CallKind::ServerStream => "server_stream",
            CallKind::BidiStream => "bidi_stream",
        }
    }
}

use CallKind::{BidiStream, ServerStream, Unary};

/// Every gRPC method ferrocd serves or may serve: (service, method, kind).
/// The series for all of them exist from the start, at zero, as in etcd.
pub const METHODS: &[(&str, &str, CallKind)] = &[
    ("etcdserverpb.KV", "Range", Unary),
    ("etcdserverpb.KV", "Put", Unary),
    ("etcdserverpb.KV", "DeleteRange", Unary),
    ("etcdserverpb.KV", "Txn", Unary),
    ("etcdserverpb.KV", "Compact", Unary),
    ("etcdserverpb.Watch", "Watch", BidiStream),
    ("etcdserverpb.Lease", "LeaseGrant", Unary),
    ("etcdserverpb.Lease", "LeaseRevoke", Unary),
    ("etcdserverpb.Lease", "LeaseKeepAlive", BidiStream),
    ("etcdserverpb.Lease", "LeaseTimeToLive", Unary),
    ("etcdserverpb.Lease", "LeaseLeases", Unary),
    ("etcdserverpb.Cluster", "MemberAdd", Unary),
    ("etcdserverpb.Cluster", "MemberRemove", Unary),
    ("etcdserverpb.Cluster", "MemberUpdate", Unary),
    ("etcdserverpb.Cluster", "MemberList", Unary),
    ("etcdserverpb.Cluster", "MemberPromote", Unary),
    ("etcdserverpb.Maintenance", "Alarm", Unary),
    ("etcdserverpb.Maintenance", "Status", Unary),
    ("etcdserverpb.Maintenance", "Defragment", Unary),
    ("etcdserverpb.Maintenance", "Hash", Unary),
    ("etcdserverpb.Maintenance", "HashKV", Unary),
    ("etcdserverpb.Maintenance", "Snapshot", ServerStream),
    ("etcdserverpb.Maintenance", "MoveLeader", Unary),
    ("etcdserverpb.Maintenance", "Downgrade", Unary),
    ("etcdserverpb.Auth", "AuthEnable", Unary),
    ("etcdserverpb.Auth", "AuthDisable", Unary),
    ("etcdserverpb.Auth", "AuthStatus", Unary),
    ("etcdserverpb.Auth", "Authenticate", Unary),
    ("etcdserverpb.Auth", "UserAdd", Unary),
    ("etcdserverpb.Auth", "UserGet", Unary),
    ("etcdserverpb.Auth", "UserList", Unary),
    ("etcdserverpb.Auth", "UserDelete", Unary),
    ("etcdserverpb.Auth", "UserChangePassword", Unary),
    ("etcdserverpb.Auth", "UserGrantRole", Unary),
    ("etcdserverpb.Auth", "UserRevokeRole", Unary),
    ("etcdserverpb.Auth", "RoleAdd", Unary),
    ("etcdserverpb.Auth", "RoleGet", Unary),
    ("etcdserverpb.Auth", "RoleList", Unary),
    ("etcdserverpb.Auth", "RoleDelete", Unary),
    ("etcdserverpb.Auth", "RoleGrantPermission", Unary),
    ("etcdserverpb.Auth", "RoleRevokePermission", Unary),
    ("v3lockpb.Lock", "Lock", Unary),
    ("v3lockpb.Lock", "Unlock", Unary),
    ("v3electionpb.Election", "Campaign", Unary),
    ("v3electionpb.Election", "Proclaim", Unary),
    ("v3electionpb.Election", "Leader", Unary),
    ("v3electionpb.Election", "Observe", ServerStream),
    ("v3electionpb.Election", "Resign", Unary),
];

/// gRPC code names as go-grpc-prometheus writes them (`grpc_code`), indexed
/// by code number.
pub(crate) const CODE_NAMES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// `client_api_version` values whose series are kept once made (the
/// first one stands for a call without the header); others are looked up
/// per call.
const CLIENT_VERSIONS: [&str; 8] = ["unknown", "3.0", "3.1", "3.2", "3.3", "3.4", "3.5", "3.6"];

/// The `op` labels of `etcd_server_apply_duration_seconds`, as etcd
/// 3.5's v3 applier names its requests (what [`Metrics::observe_apply`]
/// takes).
pub const APPLY_OPS: [&str; 26] = [
    "Range",
    "Put",
    "DeleteRange",
    "Txn",
    "Compaction",
    "LeaseGrant",
    "LeaseRevoke",
    "LeaseCheckpoint",
    "Alarm",
    "Authenticate",
    "AuthEnable",
    "AuthDisable",
    "AuthStatus",
    "AuthUserAdd",
    "AuthUserDelete",
    "AuthUserChangePassword",
    "AuthUserGrantRole",
    "AuthUserGet",
    "AuthUserRevokeRole",
    "AuthRoleAdd",
    "AuthRoleGrantPermission",
    "AuthRoleGet",
    "AuthRoleRevokePermission",
    "AuthRoleDelete",
    "AuthUserList",
    "AuthRoleList",
];

/// A call's `client-api-version` kept for [`Metrics::start_call`]: the
/// usual versions borrowed, others copied.
pub(crate) fn client_version(v: &[u8]) -> std::borrow::Cow<'static, [u8]> {
    match CLIENT_VERSIONS.iter().find(|k| k.as_bytes() == v) {
        Some(k) => std::borrow::Cow::Borrowed(k.as_bytes()),
        None => std::borrow::Cow::Owned(v.to_vec()),
    }
}

/// The series of one method, created up front.
struct MethodStats {
    started: IntCounter,
    msg_received: IntCounter,
    msg_sent: IntCounter,
    /// Indexed by gRPC code number.
    handled: [IntCounter; 17],
    seconds: Histogram,
}

struct Inner {
    registry: Registry,
    /// `/etcdserverpb.KV/Range` → index into `methods`.
    by_path: HashMap<String, usize>,
    methods: Vec<MethodStats>,
    wal_fsync: Histogram,
    wal_write_bytes: IntGauge,
    client_requests: IntCounterVec,
    /// `client_requests` series of the versions in [`CLIENT_VERSIONS`]
    /// (unary, stream), made on first use as etcd makes them.
    client_known: [[OnceLock<IntCounter>; 2]; CLIENT_VERSIONS.len()],
    apply_seconds: HistogramVec,
    /// `apply_seconds` series by [`APPLY_OPS`] index and success, made on
    /// first use as etcd makes them.
    apply_known: [[OnceLock<Histogram>; 2]; APPLY_OPS.len()],
    backend_commit: Histogram,
    proposals_committed: IntGauge,
    proposals_applied: IntGauge,
    has_leader: IntGauge,
    is_leader: IntGauge,
    db_size: IntGauge,
    db_size_in_use: IntGauge,
    quota_backend_bytes: IntGauge,
    defrag_inflight: IntGauge,
    watchers: IntGauge,
    keys: IntGauge,
    fast_requests: IntCounterVec,
    leader_changes: IntCounter,
    is_learner: IntGauge,
    learner_promotes: IntCounter,
    proposals_pending: IntGauge,
    proposals_failed: IntCounter,
    slow_apply: IntCounter,
    health_success: IntCounter,
    health_failures: IntCounter,
    server_id: IntGaugeVec,
    server_version: IntGaugeVec,
    cluster_version: IntGaugeVec,
    mvcc_put: IntCounter,
    mvcc_delete: IntCounter,
    mvcc_range: IntCounter,
    mvcc_txn: IntCounter,
    current_revision: IntGauge,
    compact_revision: IntGauge,
    lease_granted: IntCounter,
    lease_revoked: IntCounter,
    lease_renewed: IntCounter,
    client_sent_bytes: IntCounter,
    client_received_bytes: IntCounter,
    peer: PeerVecs,
    /// etcd 3.4's `etcd_debugging_mvcc_*` twins of the store counters.
    debug_put: IntCounter,
    debug_delete: IntCounter,
    debug_range: IntCounter,
    debug_txn: IntCounter,
    debug_db_size: IntGauge,
    put_size: IntGauge,
    watch_streams: IntGauge,
    watch_events: IntCounter,
    snap_save_total: Histogram,
    snap_save_marshalling: Histogram,
    snap_fsync: Histogram,
    snap_db_fsync: Histogram,
    snap_db_save_total: Histogram,
    backend_snapshot: Histogram,
    compaction_keys: IntCounter,
    compaction_pause: Histogram,
    index_compaction_pause: Histogram,
    pending_events: IntGauge,
    slow_watchers: IntGauge,
    snapshot_applying: IntGauge,
    compaction_ms: Histogram,
    compaction_last: IntGauge,
    lease_ttl: Histogram,
    lease_expired: IntCounter,
    auth_revision: IntGauge,
    defrag_seconds: Histogram,
    hash_seconds: Histogram,
    hash_rev_seconds: Histogram,
    heartbeat_failures: IntCounter,
    read_indexes_failed: IntCounter,
    slow_read_indexes: IntCounter,
    scrapes_in_flight: IntGauge,
    scrapes: IntCounterVec,
}

/// The per-peer families; a peer's series are made once per peer (see
/// [`Metrics::peer`]), not per message.
struct PeerVecs {
    sent_bytes: IntCounterVec,
    received_bytes: IntCounterVec,
    sent_failures: IntCounterVec,
    received_failures: IntCounterVec,
    round_trip: HistogramVec,
    active: IntGaugeVec,
    disconnected: IntCounterVec,
}

/// What etcd serves beside Go's process collector, read from /proc at
/// each scrape: `os_fd_used` (open file descriptors), `os_fd_limit` (the
/// soft `RLIMIT_NOFILE`), and `process_virtual_memory_max_bytes` (the
/// soft address-space limit; unlimited reads as 2^64, as Go's client
/// writes it).
struct OsCollector {
    fd_used: prometheus::Gauge,
    fd_limit: prometheus::Gauge,
    vm_max: prometheus::Gauge,
    descs: Vec<prometheus::core::Desc>,
}

impl OsCollector {
    fn new() -> Self {
        let g = |name: &str, help: &str| prometheus::Gauge::new(name, help).expect("valid gauge");
        let fd_used = g("os_fd_used", "The number of used file descriptors.");
        let fd_limit = g("os_fd_limit", "The file descriptor limit.");
        let vm_max = g(
            "process_virtual_memory_max_bytes",
            "Maximum amount of virtual memory available in bytes.",
        );
        let descs = [&fd_used, &fd_limit, &vm_max]
            .iter()
            .flat_map(|g| prometheus::core::Collector::desc(*g).into_iter().cloned())
            .collect();
        OsCollector {
            fd_used,
            fd_limit,
            vm_max,
            descs,
        }
    }
}

/// A `/proc` limit as Go's procfs reads it: unlimited is `u64::MAX`.
fn limit_value(v: &procfs::process::LimitValue) -> f64 {
    match v {
        procfs::process::LimitValue::Unlimited => u64::MAX as f64,
        procfs::process::LimitValue::Value(n) => *n as f64,
    }
}

impl prometheus::core::Collector for OsCollector {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        // A /proc read that fails leaves the last value (as a scrape
        // should not fail for one gauge).
        if let Ok(me) = procfs::process::Process::myself() {
            if let Ok(n) = me.fd_count() {
                self.fd_used.set(n as f64);
            }
            if let Ok(l) = me.limits() {
                self.fd_limit.set(limit_value(&l.max_open_files.soft_limit));
                self.vm_max
                    .set(limit_value(&l.max_address_space.soft_limit));
            }
        }
        [&self.fd_used, &self.fd_limit, &self.vm_max]
            .iter()
            .flat_map(|g| prometheus::core::Collector::collect(*g))
            .collect()
    }
}

/// One open watch stream, counted in
/// `etcd_debugging_mvcc_watch_stream_total` until dropped.
pub(crate) struct OpenStream(Metrics);

impl OpenStream {
    pub(crate) fn new(metrics: Metrics) -> Self {
        metrics.inner.watch_streams.inc();
        OpenStream(metrics)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.inner.watch_streams.dec();
    }
}

/// Store operations, summed over a batch and added to the metrics at once
/// ([`Metrics::store_ops`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StoreOps {
    /// Ranges (a Txn's compares read, and count, as ranges in etcd too).
    pub ranges: u64,
    /// Puts.
    pub puts: u64,
    /// Deletes.
    pub deletes: u64,
    /// Store transactions of more than one operation.
    pub txns: u64,
    /// Key and value bytes of the puts.
    pub put_bytes: u64,
}

impl StoreOps {
    /// One store transaction with these operation counts ended: as etcd's
    /// `metricsTxnWrite.End`, each op counts in its counter, and the
    /// transaction counts as a txn when it had more than one op.
    pub fn txn(&mut self, ranges: u64, puts: u64, deletes: u64) {
        if ranges + puts + deletes > 1 {
            self.txns += 1;
        }
        self.ranges += ranges;
        self.puts += puts;
        self.deletes += deletes;
    }
}

/// A member's series for one peer (`To`/`From` and `Local`/`Remote`
/// labels), made once per peer client or connection, never per message.
#[derive(Clone)]
pub struct PeerSeries {
    sent_bytes: IntCounter,
    received_bytes: IntCounter,
    sent_failures: IntCounter,
    received_failures: IntCounter,
    round_trip: Histogram,
    active: IntGauge,
    disconnected: IntCounter,
}

impl fmt::Debug for PeerSeries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerSeries").finish_non_exhaustive()
    }
}

impl PeerSeries {
    /// `n` bytes written to the peer (`etcd_network_peer_sent_bytes_total`).
    pub fn sent(&self, n: usize) {
        self.sent_bytes.inc_by(n as u64);
    }

    /// `n` bytes read from the peer (`etcd_network_peer_received_bytes_total`).
    pub fn received(&self, n: usize) {
        self.received_bytes.inc_by(n as u64);
    }

    /// A message to the peer failed: not sent, or no answer
    /// (`etcd_network_peer_sent_failures_total`).
    pub fn send_failed(&self) {
        self.sent_failures.inc();
    }

    /// A message from the peer could not be processed
    /// (`etcd_network_peer_received_failures_total`).
    pub fn receive_failed(&self) {
        self.received_failures.inc();
    }

    /// One round trip to the peer took `d`
    /// (`etcd_network_peer_round_trip_time_seconds`).
    pub fn round_trip(&self, d: Duration) {
        self.round_trip.observe(d.as_secs_f64());
    }

    /// A connection to the peer came up (`true`) or went down
    /// (`etcd_network_active_peers`, `etcd_network_disconnected_peers_total`).
    pub fn connected(&self, up: bool) {
        if up {
            self.active.set(1);
        } else {
            self.active.set(0);
            self.disconnected.inc();
        }
    }
}

/// The node's metrics registry; clone freely (one `Arc`).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("methods", &self.inner.methods.len())
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// etcd's disk histograms: 1 ms doubling to ~8 s (14 buckets).
fn disk_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.001, 2.0, 14).expect("valid buckets")
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("valid histogram");
    registry.register(Box::new(h.clone())).expect("unique name");
    h
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid counter");
    registry.register(Box::new(c.clone())).expect("unique name");
    c
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter");
    registry.register(Box::new(c.clone())).expect("unique name");
    c
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid gauge");
    registry.register(Box::new(g.clone())).expect("unique name");
    g
}

/// etcd's peer round-trip buckets: 0.1 ms doubling to ~3.3 s (16 buckets).
fn round_trip_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.0001, 2.0, 16).expect("valid buckets")
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid gauge");
    registry.register(Box::new(g.clone())).expect("unique name");
    g
}

impl Metrics {
    /// A fresh registry with every series at zero. Names, help texts and
    /// buckets are etcd 3.5's.
    pub fn new() -> Self {
        let registry = Registry::new();
        // Label names in the order Prometheus prints them (sorted).
        let started = IntCounterVec::new(
            Opts::new(
                "grpc_server_started_total",
                "Total number of RPCs started on the server.",
            ),
            &["grpc_method", "grpc_service", "grpc_type"],
        )
        .expect("valid counter");
        let handled = IntCounterVec::new(
            Opts::new(
                "grpc_server_handled_total",
                "Total number of RPCs completed on the server, regardless of success or failure.",
            ),
            &["grpc_code", "grpc_method", "grpc_service", "grpc_type"],
        )
        .expect("valid counter");
        let seconds = HistogramVec::new(
            HistogramOpts::new(
                "grpc_server_handling_seconds",
                "Histogram of response latency (seconds) of gRPC that had been \
                 application-level handled by the server.",
            ),
            &["grpc_method", "grpc_service", "grpc_type"],
        )
        .expect("valid histogram");
        let msg_received = IntCounterVec::new(
            Opts::new(
                "grpc_server_msg_received_total",
                "Total number of RPC stream messages received on the server.",
            ),
            &["grpc_method", "grpc_service", "grpc_type"],
        )
        .expect("valid counter");
        let msg_sent = IntCounterVec::new(
            Opts::new(
                "grpc_server_msg_sent_total",
                "Total number of gRPC stream messages sent by the server.",
            ),
            &["grpc_method", "grpc_service", "grpc_type"],
        )
        .expect("valid counter");
        let mut by_path = HashMap::with_capacity(METHODS.len());
        let mut methods = Vec::with_capacity(METHODS.len());
        for (i, &(service, method, kind)) in METHODS.iter().enumerate() {
            let kind = kind.label();
            by_path.insert(format!("/{service}/{method}"), i);
            methods.push(MethodStats {
                started: started.with_label_values(&[method, service, kind]),
                msg_received: msg_received.with_label_values(&[method, service, kind]),
                msg_sent: msg_sent.with_label_values(&[method, service, kind]),
                handled: std::array::from_fn(|code| {
                    handled.with_label_values(&[CODE_NAMES[code], method, service, kind])
                }),
                seconds: seconds.with_label_values(&[method, service, kind]),
            });
        }
        for c in [
            Box::new(started) as Box<dyn prometheus::core::Collector>,
            Box::new(msg_received),
            Box::new(msg_sent),
            Box::new(handled),
            Box::new(seconds),
        ] {
            registry.register(c).expect("unique name");
        }
        let r = &registry;
        // process_cpu_seconds_total, process_open_fds, process_max_fds,
        // process_resident_memory_bytes, process_virtual_memory_bytes,
        // process_virtual_memory_max_bytes, process_start_time_seconds
        // (and process_threads), read from /proc at each scrape, as Go's
        // client reads them for etcd (`etcdctl check datascale` reads the
        // resident memory).
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("unique name");
        r.register(Box::new(OsCollector::new()))
            .expect("unique name");
        let inner = Inner {
            by_path,
            methods,
            wal_fsync: histogram(
                r,
                "etcd_disk_wal_fsync_duration_seconds",
                "The latency distributions of fsync called by WAL.",
                disk_buckets(),
            ),
            wal_write_bytes: gauge(
                r,
                "etcd_disk_wal_write_bytes_total",
                "Total number of bytes written in WAL.",
            ),
            client_requests: counter_vec(
                r,
                "etcd_server_client_requests_total",
                "The total number of client requests per client version.",
                &["client_api_version", "type"],
            ),
            client_known: Default::default(),
            compaction_keys: counter(
                r,
                "etcd_debugging_mvcc_db_compaction_keys_total",
                "Total number of db keys compacted.",
            ),
            compaction_pause: histogram(
                r,
                "etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds",
                "Bucketed histogram of db compaction pause duration.",
                prometheus::exponential_buckets(1.0, 2.0, 13).expect("valid buckets"),
            ),
            index_compaction_pause: histogram(
                r,
                "etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds",
                "Bucketed histogram of index compaction pause duration.",
                prometheus::exponential_buckets(0.5, 2.0, 14).expect("valid buckets"),
            ),
            snap_save_total: histogram(
                r,
                "etcd_debugging_snap_save_total_duration_seconds",
                "The total latency distributions of save called by snapshot.",
                disk_buckets(),
            ),
            snap_save_marshalling: histogram(
                r,
                "etcd_debugging_snap_save_marshalling_duration_seconds",
                "The marshalling cost distributions of save called by snapshot.",
                disk_buckets(),
            ),
            snap_fsync: histogram(
                r,
                "etcd_snap_fsync_duration_seconds",
                "The latency distributions of fsync called by snap.",
                disk_buckets(),
            ),
            snap_db_fsync: histogram(
                r,
                "etcd_snap_db_fsync_duration_seconds",
                "The latency distributions of fsyncing .snap.db file",
                disk_buckets(),
            ),
            snap_db_save_total: histogram(
                r,
                "etcd_snap_db_save_total_duration_seconds",
                "The total latency distributions of v3 snapshot save",
                prometheus::exponential_buckets(0.1, 2.0, 10).expect("valid buckets"),
            ),
            backend_snapshot: histogram(
                r,
                "etcd_disk_backend_snapshot_duration_seconds",
                "The latency distribution of backend snapshots.",
                prometheus::exponential_buckets(0.01, 2.0, 17).expect("valid buckets"),
            ),
            slow_read_indexes: counter(
                r,
                "etcd_server_slow_read_indexes_total",
                "The total number of pending read indexes not in sync with leader's or timed out read index requests.",
            ),
            watch_events: counter(
                r,
                "etcd_debugging_mvcc_events_total",
                "Total number of events sent by this member.",
            ),
            pending_events: gauge(
                r,
                "etcd_debugging_mvcc_pending_events_total",
                "Total number of pending events to be sent.",
            ),
            slow_watchers: gauge(
                r,
                "etcd_debugging_mvcc_slow_watcher_total",
                "Total number of unsynced slow watchers.",
            ),
            apply_seconds: {
                let h = HistogramVec::new(
                    HistogramOpts::new(
                        "etcd_server_apply_duration_seconds",
                        "The latency distributions of v2 apply called by backend.",
                    )
                    .buckets(
                        prometheus::exponential_buckets(0.0001, 2.0, 20).expect("valid buckets"),
                    ),
                    &["version", "op", "success"],
                )
                .expect("valid histogram");
                r.register(Box::new(h.clone())).expect("unique name");
                h
            },
            apply_known: Default::default(),
            backend_commit: histogram(
                r,
                "etcd_disk_backend_commit_duration_seconds",
                "The latency distributions of commit called by backend.",
                disk_buckets(),
            ),
            // Gauges in etcd despite the `_total` names: they carry raft
            // indexes, which the node sets rather than increments.
            proposals_committed: gauge(
                r,
                "etcd_server_proposals_committed_total",
                "The total number of consensus proposals committed.",
            ),
            proposals_applied: gauge(
                r,
                "etcd_server_proposals_applied_total",
                "The total number of consensus proposals applied.",
            ),
            has_leader: gauge(
                r,
                "etcd_server_has_leader",
                "Whether or not a leader exists. 1 is existence, 0 is not.",
            ),
            is_leader: gauge(
                r,
                "etcd_server_is_leader",
                "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            ),
            db_size: gauge(
                r,
                "etcd_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes.",
            ),
            db_size_in_use: gauge(
                r,
                "etcd_mvcc_db_total_size_in_use_in_bytes",
                "Total size of the underlying database logically in use in bytes.",
            ),
            quota_backend_bytes: gauge(
                r,
                "etcd_server_quota_backend_bytes",
                "Current backend storage quota size in bytes.",
            ),
            defrag_inflight: gauge(
                r,
                "etcd_disk_defrag_inflight",
                "Whether or not defrag is active on the member. 1 means active, 0 means not.",
            ),
            watchers: gauge(
                r,
                "etcd_debugging_mvcc_watcher_total",
                "Total number of watchers.",
            ),
            keys: gauge(r, "etcd_debugging_mvcc_keys_total", "Total number of keys."),
            fast_requests: {
                let c = IntCounterVec::new(
                    Opts::new(
                        "ferrocd_fast_requests_total",
                        "Unary requests served over ferrocd's binary protocol, by method and code.",
                    ),
                    &["code", "method"],
                )
                .expect("valid counter");
                r.register(Box::new(c.clone())).expect("unique name");
                c
            },
            leader_changes: counter(
                r,
                "etcd_server_leader_changes_seen_total",
                "The number of leader changes seen.",
            ),
            is_learner: gauge(
                r,
                "etcd_server_is_learner",
                "Whether or not this member is a learner. 1 if is, 0 otherwise.",
            ),
            learner_promotes: counter(
                r,
                "etcd_server_learner_promote_successes",
                "The total number of successful learner promotions while this member is leader.",
            ),
            proposals_pending: gauge(
                r,
                "etcd_server_proposals_pending",
                "The current number of pending proposals to commit.",
            ),
            proposals_failed: counter(
                r,
                "etcd_server_proposals_failed_total",
                "The total number of failed proposals seen.",
            ),
            slow_apply: counter(
                r,
                "etcd_server_slow_apply_total",
                "The total number of slow apply requests (likely overloaded from slow disk).",
            ),
            health_success: counter(
                r,
                "etcd_server_health_success",
                "The total number of successful health checks",
            ),
            health_failures: counter(
                r,
                "etcd_server_health_failures",
                "The total number of failed health checks",
            ),
            server_id: gauge_vec(
                r,
                "etcd_server_id",
                "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
                &["server_id"],
            ),
            server_version: gauge_vec(
                r,
                "etcd_server_version",
                "Which version is running. 1 for 'server_version' label with current version.",
                &["server_version"],
            ),
            cluster_version: gauge_vec(
                r,
                "etcd_cluster_version",
                "Which version is running. 1 for 'cluster_version' label with current cluster version",
                &["cluster_version"],
            ),
            mvcc_put: counter(
                r,
                "etcd_mvcc_put_total",
                "Total number of puts seen by this member.",
            ),
            mvcc_delete: counter(
                r,
                "etcd_mvcc_delete_total",
                "Total number of deletes seen by this member.",
            ),
            mvcc_range: counter(
                r,
                "etcd_mvcc_range_total",
                "Total number of ranges seen by this member.",
            ),
            mvcc_txn: counter(
                r,
                "etcd_mvcc_txn_total",
                "Total number of txns seen by this member.",
            ),
            current_revision: gauge(
                r,
                "etcd_debugging_mvcc_current_revision",
                "The current revision of store.",
            ),
            compact_revision: gauge(
                r,
                "etcd_debugging_mvcc_compact_revision",
                "The revision of the last compaction in store.",
            ),
            lease_granted: counter(
                r,
                "etcd_debugging_lease_granted_total",
                "The total number of granted leases.",
            ),
            lease_revoked: counter(
                r,
                "etcd_debugging_lease_revoked_total",
                "The total number of revoked leases.",
            ),
            lease_renewed: counter(
                r,
                "etcd_debugging_lease_renewed_total",
                "The number of renewed leases seen by the leader.",
            ),
            client_sent_bytes: counter(
                r,
                "etcd_network_client_grpc_sent_bytes_total",
                "The total number of bytes sent to grpc clients.",
            ),
            client_received_bytes: counter(
                r,
                "etcd_network_client_grpc_received_bytes_total",
                "The total number of bytes received from grpc clients.",
            ),
            peer: PeerVecs {
                sent_bytes: counter_vec(
                    r,
                    "etcd_network_peer_sent_bytes_total",
                    "The total number of bytes sent to peers.",
                    &["To"],
                ),
                received_bytes: counter_vec(
                    r,
                    "etcd_network_peer_received_bytes_total",
                    "The total number of bytes received from peers.",
                    &["From"],
                ),
                sent_failures: counter_vec(
                    r,
                    "etcd_network_peer_sent_failures_total",
                    "The total number of send failures from peers.",
                    &["To"],
                ),
                received_failures: counter_vec(
                    r,
                    "etcd_network_peer_received_failures_total",
                    "The total number of receive failures from peers.",
                    &["From"],
                ),
                round_trip: {
                    let h = HistogramVec::new(
                        HistogramOpts::new(
                            "etcd_network_peer_round_trip_time_seconds",
                            "Round-Trip-Time histogram between peers",
                        )
                        .buckets(round_trip_buckets()),
                        &["To"],
                    )
                    .expect("valid histogram");
                    r.register(Box::new(h.clone())).expect("unique name");
                    h
                },
                active: gauge_vec(
                    r,
                    "etcd_network_active_peers",
                    "The current number of active peer connections.",
                    &["Local", "Remote"],
                ),
                disconnected: counter_vec(
                    r,
                    "etcd_network_disconnected_peers_total",
                    "The total number of disconnected peers.",
                    &["Local", "Remote"],
                ),
            },
            debug_put: counter(
                r,
                "etcd_debugging_mvcc_put_total",
                "Total number of puts seen by this member.",
            ),
            debug_delete: counter(
                r,
                "etcd_debugging_mvcc_delete_total",
                "Total number of deletes seen by this member.",
            ),
            debug_range: counter(
                r,
                "etcd_debugging_mvcc_range_total",
                "Total number of ranges seen by this member.",
            ),
            debug_txn: counter(
                r,
                "etcd_debugging_mvcc_txn_total",
                "Total number of txns seen by this member.",
            ),
            debug_db_size: gauge(
                r,
                "etcd_debugging_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes.",
            ),
            put_size: gauge(
                r,
                "etcd_debugging_mvcc_total_put_size_in_bytes",
                "The total size of put kv pairs seen by this member.",
            ),
            compaction_ms: histogram(
                r,
                "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds",
                "Bucketed histogram of db compaction total duration.",
                prometheus::exponential_buckets(100.0, 2.0, 14).expect("valid buckets"),
            ),
            compaction_last: gauge(
                r,
                "etcd_debugging_mvcc_db_compaction_last",
                "The unix time of the last db compaction. Resets to 0 on start.",
            ),
            watch_streams: gauge(
                r,
                "etcd_debugging_mvcc_watch_stream_total",
                "Total number of watch streams.",
            ),
            snapshot_applying: gauge(
                r,
                "etcd_server_snapshot_apply_in_progress_total",
                "1 if the server is applying the incoming snapshot. 0 if none.",
            ),
            lease_ttl: histogram(
                r,
                "etcd_debugging_lease_ttl_total",
                "Bucketed histogram of lease TTLs.",
                prometheus::exponential_buckets(1.0, 2.0, 14).expect("valid buckets"),
            ),
            lease_expired: counter(
                r,
                "etcd_debugging_server_lease_expired_total",
                "The total number of expired leases.",
            ),
            auth_revision: gauge(
                r,
                "etcd_debugging_auth_revision",
                "The current revision of auth store.",
            ),
            defrag_seconds: histogram(
                r,
                "etcd_disk_backend_defrag_duration_seconds",
                "The latency distribution of backend defragmentation.",
                prometheus::exponential_buckets(0.1, 2.0, 13).expect("valid buckets"),
            ),
            hash_seconds: histogram(
                r,
                "etcd_mvcc_hash_duration_seconds",
                "The latency distribution of storage hash operation.",
                prometheus::exponential_buckets(0.01, 2.0, 15).expect("valid buckets"),
            ),
            hash_rev_seconds: histogram(
                r,
                "etcd_mvcc_hash_rev_duration_seconds",
                "The latency distribution of storage hash by revision operation.",
                prometheus::exponential_buckets(0.01, 2.0, 15).expect("valid buckets"),
            ),
            heartbeat_failures: counter(
                r,
                "etcd_server_heartbeat_send_failures_total",
                "The total number of leader heartbeat send failures (likely overloaded from slow disk).",
            ),
            read_indexes_failed: counter(
                r,
                "etcd_server_read_indexes_failed_total",
                "The total number of failed read indexes seen.",
            ),
            scrapes_in_flight: gauge(
                r,
                "promhttp_metric_handler_requests_in_flight",
                "Current number of scrapes being served.",
            ),
            scrapes: {
                let c = counter_vec(
                    r,
                    "promhttp_metric_handler_requests_total",
                    "Total number of scrapes by HTTP status code.",
                    &["code"],
                );
                // As Go's promhttp: the codes it can answer, from the start.
                for code in ["200", "500", "503"] {
                    c.with_label_values(&[code]);
                }
                c
            },
            registry,
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// `ferrocd_fast_requests_total{code, method}`: what
    /// `grpc_server_handled_total` counts, for the binary protocol.
    pub fn fast_requests(&self) -> &IntCounterVec {
        &self.inner.fast_requests
    }

    /// The underlying registry, to register more collectors (our own
    /// metrics take a `ferrocd_` prefix).
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Everything in the Prometheus text format, as `/metrics` serves it
    /// (a scrape: counted in `promhttp_metric_handler_requests_*`, as Go's
    /// handler counts them for etcd; this scrape is in flight in its own
    /// output).
    pub fn render(&self) -> Vec<u8> {
        let i = &self.inner;
        i.scrapes_in_flight.inc();
        let mut out = Vec::with_capacity(64 * 1024);
        // Encoding into a Vec fails only on invalid metric names, and ours
        // are fixed at construction.
        TextEncoder::new()
            .encode(&i.registry.gather(), &mut out)
            .expect("metrics encode");
        i.scrapes_in_flight.dec();
        i.scrapes.with_label_values(&["200"]).inc();
        out
    }

    /// The content type of [`Metrics::render`]'s output.
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";

    /// One WAL `fdatasync` (or batch write + sync) took `d`.
    pub fn observe_wal_fsync(&self, d: Duration) {
        self.inner.wal_fsync.observe(d.as_secs_f64());
    }

    /// One physical compaction step removed `keys` revision records and
    /// held the store's writer lock for `pause`, `index` of it on the key
    /// index (`etcd_debugging_mvcc_db_compaction_keys_total`, and the
    /// `_db_` and `_index_compaction_pause_duration_milliseconds`
    /// histograms, in whole milliseconds as etcd observes them).
    pub fn compaction_step(&self, keys: u64, pause: Duration, index: Duration) {
        let i = &self.inner;
        i.compaction_keys.inc_by(keys);
        i.compaction_pause.observe(pause.as_millis() as f64);
        i.index_compaction_pause.observe(index.as_millis() as f64);
    }

    /// A snapshot file was saved: `marshalling` to serialize and write its
    /// payload, `fsync` to sync it, `total` in all
    /// (`etcd_debugging_snap_save_{marshalling,total}_duration_seconds`,
    /// `etcd_snap_fsync_duration_seconds`).
    pub fn snapshot_saved(&self, marshalling: Duration, fsync: Duration, total: Duration) {
        let i = &self.inner;
        i.snap_save_marshalling.observe(marshalling.as_secs_f64());
        i.snap_fsync.observe(fsync.as_secs_f64());
        i.snap_save_total.observe(total.as_secs_f64());
    }

    /// A Maintenance.Snapshot's backend file was written in `d`
    /// (`etcd_disk_backend_snapshot_duration_seconds`).
    pub fn observe_backend_snapshot(&self, d: Duration) {
        self.inner.backend_snapshot.observe(d.as_secs_f64());
    }

    /// A read-index round timed out
    /// (`etcd_server_slow_read_indexes_total`).
    pub fn slow_read_index(&self) {
        self.inner.slow_read_indexes.inc();
    }

    /// A snapshot received from the leader was saved: `fsync` to sync it,
    /// `total` in all (`etcd_snap_db_{fsync,save_total}_duration_seconds`).
    pub fn snapshot_db_saved(&self, fsync: Duration, total: Duration) {
        let i = &self.inner;
        i.snap_db_fsync.observe(fsync.as_secs_f64());
        i.snap_db_save_total.observe(total.as_secs_f64());
    }

    /// `n` watch events handed to their streams
    /// (`etcd_debugging_mvcc_events_total`).
    pub fn watch_events_sent(&self, n: u64) {
        self.inner.watch_events.inc_by(n);
    }

    /// The watch hub holds `pending` events not sent yet and `slow`
    /// unsynced watchers (`etcd_debugging_mvcc_pending_events_total`,
    /// `etcd_debugging_mvcc_slow_watcher_total`).
    pub fn set_watch_backlog(&self, pending: u64, slow: u64) {
        self.inner.pending_events.set(saturate(pending));
        self.inner.slow_watchers.set(saturate(slow));
    }

    /// The WAL wrote `n` more bytes (`etcd_disk_wal_write_bytes_total`, a
    /// gauge in etcd too).
    pub fn wal_written(&self, n: u64) {
        self.inner.wal_write_bytes.add(saturate(n));
    }

    /// One request of kind `op` (one of [`APPLY_OPS`]; others are not
    /// counted) applied in `d`, successfully or not
    /// (`etcd_server_apply_duration_seconds{version="v3"}`; as in etcd, a
    /// request that failed as compacted counts as a success).
    pub fn observe_apply(&self, op: &str, success: bool, d: Duration) {
        let Some(at) = APPLY_OPS.iter().position(|o| *o == op) else {
            return;
        };
        self.inner.apply_known[at][usize::from(success)]
            .get_or_init(|| {
                let ok = if success { "true" } else { "false" };
                self.inner
                    .apply_seconds
                    .with_label_values(&["v3", APPLY_OPS[at], ok])
            })
            .observe(d.as_secs_f64());
    }

    /// Applying (committing) one batch to the store took `d`
    /// (`etcd_disk_backend_commit_duration_seconds`).
    pub fn observe_backend_commit(&self, d: Duration) {
        self.inner.backend_commit.observe(d.as_secs_f64());
    }

    /// The raft commit index (`etcd_server_proposals_committed_total`).
    pub fn set_proposals_committed(&self, index: u64) {
        self.inner.proposals_committed.set(saturate(index));
    }

    /// The applied index (`etcd_server_proposals_applied_total`).
    pub fn set_proposals_applied(&self, index: u64) {
        self.inner.proposals_applied.set(saturate(index));
    }

    /// Whether the member knows a leader.
    pub fn set_has_leader(&self, yes: bool) {
        self.inner.has_leader.set(i64::from(yes));
    }

    /// Whether this member is the leader.
    pub fn set_is_leader(&self, yes: bool) {
        self.inner.is_leader.set(i64::from(yes));
    }

    /// The store's size in bytes (and etcd 3.4's debugging twin).
    pub fn set_db_size(&self, bytes: u64) {
        self.inner.db_size.set(saturate(bytes));
        self.inner.debug_db_size.set(saturate(bytes));
    }

    /// A lease was granted with `ttl` seconds
    /// (`etcd_debugging_lease_ttl_total`).
    pub fn observe_lease_ttl(&self, ttl: i64) {
        self.inner.lease_ttl.observe(ttl as f64);
    }

    /// The leader revoked an expired lease
    /// (`etcd_debugging_server_lease_expired_total`).
    pub fn lease_expired(&self) {
        self.inner.lease_expired.inc();
    }

    /// The auth store's revision (`etcd_debugging_auth_revision`).
    pub fn set_auth_revision(&self, revision: u64) {
        self.inner.auth_revision.set(saturate(revision));
    }

    /// One defragmentation took `d`.
    pub fn observe_defrag(&self, d: Duration) {
        self.inner.defrag_seconds.observe(d.as_secs_f64());
    }

    /// One Hash (`by_revision` false) or HashKV took `d`.
    pub fn observe_hash(&self, by_revision: bool, d: Duration) {
        let h = if by_revision {
            &self.inner.hash_rev_seconds
        } else {
            &self.inner.hash_seconds
        };
        h.observe(d.as_secs_f64());
    }

    /// A physical compaction finished after `d`, at `unix_secs`.
    pub fn compaction_done(&self, d: Duration, unix_secs: u64) {
        self.inner.compaction_ms.observe(d.as_secs_f64() * 1000.0);
        self.inner.compaction_last.set(saturate(unix_secs));
    }

    /// Whether this member is installing a snapshot from the leader.
    pub fn set_snapshot_applying(&self, yes: bool) {
        self.inner.snapshot_applying.set(i64::from(yes));
    }

    /// A leader's heartbeat to a follower failed.
    pub fn heartbeat_failed(&self) {
        self.inner.heartbeat_failures.inc();
    }

    /// A read index round failed.
    pub fn read_index_failed(&self) {
        self.inner.read_indexes_failed.inc();
    }

    /// `etcd_mvcc_db_total_size_in_use_in_bytes`.
    pub fn set_db_size_in_use(&self, bytes: u64) {
        self.inner.db_size_in_use.set(saturate(bytes));
    }

    /// `etcd_server_quota_backend_bytes`.
    pub fn set_quota_backend_bytes(&self, bytes: u64) {
        self.inner.quota_backend_bytes.set(saturate(bytes));
    }

    /// `etcd_disk_defrag_inflight`.
    pub fn set_defrag_inflight(&self, yes: bool) {
        self.inner.defrag_inflight.set(i64::from(yes));
    }

    /// The number of open watchers.
    pub fn set_watchers(&self, n: u64) {
        self.inner.watchers.set(saturate(n));
    }

    /// The number of live keys.
    pub fn set_keys(&self, n: u64) {
        self.inner.keys.set(saturate(n));
    }

    /// This member's id, version and the cluster version, as etcd labels
    /// them (`etcd_server_id{server_id="8e9e05c52164694d"} 1`, ...).
    pub fn set_identity(&self, member_id: u64, server_version: &str) {
        self.inner
            .server_id
            .with_label_values(&[&format!("{member_id:x}")])
            .set(1);
        self.inner
            .server_version
            .with_label_values(&[server_version])
            .set(1);
    }

    /// The cluster version (`major.minor`, e.g. `3.5`) this member runs
    /// at; the previous one's series is removed, as etcd resets it.
    pub fn set_cluster_version(&self, version: &str) {
        self.inner.cluster_version.reset();
        self.inner
            .cluster_version
            .with_label_values(&[version])
            .set(1);
    }

    /// A leader was newly seen (`etcd_server_leader_changes_seen_total`).
    pub fn leader_changed(&self) {
        self.inner.leader_changes.inc();
    }

    /// Whether this member is a learner.
    pub fn set_is_learner(&self, yes: bool) {
        self.inner.is_learner.set(i64::from(yes));
    }

    /// This member, as leader, promoted a learner.
    pub fn learner_promoted(&self) {
        self.inner.learner_promotes.inc();
    }

    /// A proposal starts waiting (`+1`) or is done waiting (`-1`)
    /// (`etcd_server_proposals_pending`).
    pub fn proposals_pending_add(&self, delta: i64) {
        self.inner.proposals_pending.add(delta);
    }

    /// A proposal failed: no leader, leader lost, timed out, stopped
    /// (`etcd_server_proposals_failed_total`).
    pub fn proposal_failed(&self) {
        self.inner.proposals_failed.inc();
    }

    /// An apply took longer than etcd's 100 ms warning threshold
    /// (`etcd_server_slow_apply_total`).
    pub fn slow_apply(&self) {
        self.inner.slow_apply.inc();
    }

    /// One `/health` answer (`etcd_server_health_{success,failures}`).
    pub fn health_checked(&self, healthy: bool) {
        if healthy {
            self.inner.health_success.inc();
        } else {
            self.inner.health_failures.inc();
        }
    }

    /// Adds store operations (`etcd_mvcc_{range,put,delete,txn}_total`);
    /// see [`StoreOps`].
    pub fn store_ops(&self, ops: &StoreOps) {
        let i = &self.inner;
        for (c, n) in [
            (&i.mvcc_range, ops.ranges),
            (&i.mvcc_put, ops.puts),
            (&i.mvcc_delete, ops.deletes),
            (&i.mvcc_txn, ops.txns),
            (&i.debug_range, ops.ranges),
            (&i.debug_put, ops.puts),
            (&i.debug_delete, ops.deletes),
            (&i.debug_txn, ops.txns),
        ] {
            if n > 0 {
                c.inc_by(n);
            }
        }
        if ops.put_bytes > 0 {
            i.put_size.add(saturate(ops.put_bytes));
        }
    }

    /// The store's current and compacted revisions.
    pub fn set_revisions(&self, current: i64, compacted: i64) {
        self.inner.current_revision.set(current);
        self.inner.compact_revision.set(compacted);
    }

    /// A lease was granted (`etcd_debugging_lease_granted_total`).
    pub fn lease_granted(&self) {
        self.inner.lease_granted.inc();
    }

    /// A lease was revoked (`etcd_debugging_lease_revoked_total`).
    pub fn lease_revoked(&self) {
        self.inner.lease_revoked.inc();
    }

    /// The leader renewed a lease (`etcd_debugging_lease_renewed_total`).
    pub fn lease_renewed(&self) {
        self.inner.lease_renewed.inc();
    }

    /// One message of method `index` received (`bytes` its payload), on
    /// the paths that do not pass through the layer's bodies: the h2
    /// server's unary KV calls, the JSON gateway's unary calls.
    pub(crate) fn message_received(&self, index: Option<usize>, bytes: usize) {
        self.client_received(bytes);
        if let Some(i) = index {
            self.inner.methods[i].msg_received.inc();
        }
    }

    /// One message of method `index` sent; see [`Metrics::message_received`].
    pub(crate) fn message_sent(&self, index: Option<usize>, bytes: usize) {
        self.client_sent(bytes);
        if let Some(i) = index {
            self.inner.methods[i].msg_sent.inc();
        }
    }

    /// Bytes of gRPC messages sent to clients (payloads, without gRPC's
    /// 5-byte prefixes, as etcd counts message sizes).
    pub fn client_sent(&self, n: usize) {
        self.inner.client_sent_bytes.inc_by(n as u64);
    }

    /// Bytes of gRPC messages received from clients.
    pub fn client_received(&self, n: usize) {
        self.inner.client_received_bytes.inc_by(n as u64);
    }

    /// This member's (`local`) series for peer `remote`; made once per
    /// peer client or connection (a label lookup and two allocations).
    pub fn peer(&self, local: u64, remote: u64) -> PeerSeries {
        let p = &self.inner.peer;
        let (l, r) = (format!("{local:x}"), format!("{remote:x}"));
        PeerSeries {
            sent_bytes: p.sent_bytes.with_label_values(&[&r]),
            received_bytes: p.received_bytes.with_label_values(&[&r]),
            sent_failures: p.sent_failures.with_label_values(&[&r]),
            received_failures: p.received_failures.with_label_values(&[&r]),
            round_trip: p.round_trip.with_label_values(&[&r]),
            active: p.active.with_label_values(&[&l, &r]),
            disconnected: p.disconnected.with_label_values(&[&l, &r]),
        }
    }

    /// A tower layer that counts and times the gRPC calls passing through
    /// it; put it on the tonic server (`Server::builder().layer(..)`).
    pub fn grpc_layer(&self) -> GrpcMetricsLayer {
        GrpcMetricsLayer {
            metrics: self.clone(),
        }
    }

    /// The index of a method by its gRPC path (`/etcdserverpb.KV/Range`).
    pub(crate) fn method_index(&self, path: &str) -> Option<usize> {
        self.inner.by_path.get(path).copied()
    }

    /// Counts a started call of method `index` and times it until the
    /// returned timer is finished or dropped. `api_version` is the call's
    /// `client-api-version` metadata, counted as etcd's interceptors count
    /// it (`etcd_server_client_requests_total`).
    pub(crate) fn start_call(&self, index: usize, api_version: Option<&[u8]>) -> CallTimer {
        self.inner.methods[index].started.inc();
        self.client_request(METHODS[index].2 != Unary, api_version);
        CallTimer {
            metrics: self.clone(),
            index,
            start: Instant::now(),
            finished: false,
        }
    }
}

impl Metrics {
    /// One client call of the given kind with this `client-api-version`
    /// (missing: `unknown`): an atomic add on a kept series for the usual
    /// versions.
    fn client_request(&self, stream: bool, api_version: Option<&[u8]>) {
        let v = api_version.unwrap_or(b"unknown");
        let kind = if stream { "stream" } else { "unary" };
        let i = &self.inner;
        match CLIENT_VERSIONS.iter().position(|k| k.as_bytes() == v) {
            Some(at) => i.client_known[at][usize::from(stream)]
                .get_or_init(|| {
                    i.client_requests
                        .with_label_values(&[CLIENT_VERSIONS[at], kind])
                })
                .inc(),
            None => i
                .client_requests
                .with_label_values(&[&String::from_utf8_lossy(v), kind])
                .inc(),
        }
    }
}

fn saturate(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// One call in flight. Finish it with the call's code; dropping it
/// unfinished counts the call as `Canceled` (the client went away).
pub(crate) struct CallTimer {
    metrics: Metrics,
    index: usize,
    start: Instant,
    finished: bool,
}

impl CallTimer {
    /// The method's index (see [`Metrics::method_index`]).
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    pub(crate) fn finish(mut self, code: Code) {
        self.record(code);
    }

    fn record(&mut self, code: Code) {
        if self.finished {
            return;
        }
        self.finished = true;
        let m = &self.metrics.inner.methods[self.index];
        let code = usize::try_from(code as i32).unwrap_or(2).min(16);
        m.handled[code].inc();
        m.seconds.observe(self.start.elapsed().as_secs_f64());
    }
}

impl Drop for CallTimer {
    fn drop(&mut self) {
        self.record(Code::Cancelled);
    }
}

/// The gRPC code of a response's `grpc-status` header or trailer; one
/// that is missing or unreadable counts as `Unknown`, as gRPC clients read it.
fn grpc_code(headers: &http::HeaderMap) -> Option<Code> {
    let v = headers.get("grpc-status")?;
    let n = v.to_str().ok().and_then(|s| s.parse::<i32>().ok());
    Some(n.map_or(Code::Unknown, Code::from_i32))
}

/// See [`Metrics::grpc_layer`].
#[derive(Debug, Clone)]
pub struct GrpcMetricsLayer {
    metrics: Metrics,
}

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service made by [`GrpcMetricsLayer`].
#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<CountedBody<ReqBody>>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<MetricsBody<ResBody>>;
    type Error = S::Error;
    type Future = MetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let timer = self.metrics.method_index(req.uri().path()).map(|i| {
            let v = req.headers().get("client-api-version");
            self.metrics.start_call(i, v.map(|v| v.as_bytes()))
        });
        // Only gRPC calls' messages are client gRPC bytes (not the HTTP
        // routes that share the port).
        let counted = timer.as_ref().map(|t| (self.metrics.clone(), t.index));
        let req = req.map(|inner| CountedBody {
            inner,
            counter: counted.map(|(m, i)| (m, i, MessageBytes::default())),
        });
        MetricsFuture {
            inner: self.inner.call(req),
            timer,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`GrpcMetrics`].
    pub struct MetricsFuture<F> {
        #[pin]
        inner: F,
        timer: Option<CallTimer>,
    }
}

impl<F> fmt::Debug for MetricsFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for MetricsFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<MetricsBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx));
        let mut timer = this.timer.take();
        Poll::Ready(match res {
            Ok(resp) => {
                let sent = timer
                    .as_ref()
                    .map(|t| (t.metrics.clone(), t.index, MessageBytes::default()));
                // A trailers-only response (an error before any message)
                // carries its status in the headers.
                if let Some(code) = grpc_code(resp.headers())
                    && let Some(t) = timer.take()
                {
                    t.finish(code);
                }
                Ok(resp.map(|inner| MetricsBody { inner, timer, sent }))
            }
            Err(e) => {
                if let Some(t) = timer {
                    t.finish(Code::Unknown);
                }
                Err(e)
            }
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that finishes its call's timer when the `grpc-status`
    /// trailer passes (or the body ends or is dropped).
    pub struct MetricsBody<B> {
        #[pin]
        inner: B,
        timer: Option<CallTimer>,
        // Counts the messages sent (gRPC calls only).
        sent: Option<(Metrics, usize, MessageBytes)>,
    }
}

impl<B> fmt::Debug for MetricsBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsBody").finish_non_exhaustive()
    }
}

impl<B> Body for MetricsBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let res = ready!(this.inner.poll_frame(cx));
        if let (Some(Ok(frame)), Some((metrics, index, count))) = (&res, this.sent.as_mut())
            && let Some(data) = frame.data_ref()
        {
            let (bytes, messages) = count.feed(data);
            metrics.client_sent(bytes);
            metrics.inner.methods[*index].msg_sent.inc_by(messages);
        }
        if this.timer.is_some() {
            let code = match &res {
                Some(Ok(frame)) => frame
                    .trailers_ref()
                    .map(|t| grpc_code(t).unwrap_or(Code::Unknown)),
                Some(Err(_)) | None => Some(Code::Unknown),
            };
            if let Some(code) = code
                && let Some(t) = this.timer.take()
            {
                t.finish(code);
            }
        }
        Poll::Ready(res)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Counts the payload bytes of the gRPC messages in a body's data, as
/// etcd counts message sizes: each message is a 5-byte prefix (a
/// compression flag, a big-endian `u32` length) and its payload, and
/// frames cut anywhere, prefixes included.
#[derive(Debug, Default, Clone)]
pub(crate) struct MessageBytes {
    prefix: [u8; 5],
    /// Prefix bytes of the current message seen so far (0..5).
    have: usize,
    /// Payload bytes of the current message still to come.
    left: u64,
}

impl MessageBytes {
    /// The payload bytes in `data`, the body's next bytes, and the
    /// messages whose prefix ended in it.
    pub(crate) fn feed(&mut self, mut data: &[u8]) -> (usize, u64) {
        let mut payload = 0usize;
        let mut messages = 0;
        while !data.is_empty() {
            if self.left > 0 {
                let n = usize::try_from(self.left)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                payload += n;
                self.left -= n as u64;
                data = &data[n..];
                continue;
            }
            let n = (5 - self.have).min(data.len());
            self.prefix[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == 5 {
                self.have = 0;
                let len = [
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ];
                self.left = u64::from(u32::from_be_bytes(len));
                messages += 1;
            }
        }
        (payload, messages)
    }
}

pin_project_lite::pin_project! {
    /// A request body that counts the gRPC message bytes it carries
    /// (`etcd_network_client_grpc_received_bytes_total`).
    pub struct CountedBody<B> {
        #[pin]
        inner: B,
        counter: Option<(Metrics, usize, MessageBytes)>,
    }
}

impl<B> fmt::Debug for CountedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountedBody").finish_non_exhaustive()
    }
}

impl<B> Body for CountedBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let res = ready!(this.inner.poll_frame(cx));
        if let (Some(Ok(frame)), Some((metrics, index, count))) = (&res, this.counter.as_mut())
            && let Some(data) = frame.data_ref()
        {
            let (bytes, messages) = count.feed(data);
            metrics.client_received(bytes);
            metrics.inner.methods[*index].msg_received.inc_by(messages);
        }
        Poll::Ready(res)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix}"))
    }

    #[test]
    fn series_exist_at_zero_and_count() {
        let m = Metrics::new();
        let i = m.method_index("/etcdserverpb.KV/Range").unwrap();
        m.start_call(i, Some(b"3.5")).finish(Code::Ok);
        m.start_call(i, None).finish(Code::OutOfRange);
        drop(m.start_call(i, Some(b"9.9")));
        let w = m.method_index("/etcdserverpb.Watch/Watch").unwrap();
        drop(m.start_call(w, Some(b"3.5")));
        m.wal_written(100);
        m.observe_apply("Put", true, Duration::from_micros(150));
        m.observe_apply("Txn", false, Duration::from_micros(50));
        m.observe_apply("NotAnOp", true, Duration::from_micros(50));
        m.wal_written(28);
        m.set_has_leader(true);
        m.set_db_size(20480);
        m.set_db_size_in_use(16384);
        m.set_quota_backend_bytes(2 << 30);
        m.set_defrag_inflight(true);
        m.observe_wal_fsync(Duration::from_micros(1500));
        let text = String::from_utf8(m.render()).unwrap();
        for (series, n) in [
            ("3.5\",type=\"unary", 1),
            ("unknown\",type=\"unary", 1),
            ("9.9\",type=\"unary", 1),
            ("3.5\",type=\"stream", 1),
        ] {
            let l =
                format!("etcd_server_client_requests_total{{client_api_version=\"{series}\"}} {n}");
            assert!(text.lines().any(|x| x == l), "{l}");
        }
        assert!(!text.contains("client_api_version=\"3.4\""));
        assert!(
            text.lines()
                .any(|l| l == "etcd_disk_wal_write_bytes_total 128")
        );
        let ok = r#"grpc_server_handled_total{grpc_code="OK",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"}"#;
        assert_eq!(line(&text, ok), format!("{ok} 1"));
        let oor = r#"grpc_server_handled_total{grpc_code="OutOfRange",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"}"#;
        assert_eq!(line(&text, oor), format!("{oor} 1"));
        let canceled = r#"grpc_server_handled_total{grpc_code="Canceled",grpc_method="Range","#;
        assert!(line(&text, canceled).ends_with(" 1"));
        let started = r#"grpc_server_started_total{grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"}"#;
        assert_eq!(line(&text, started), format!("{started} 3"));
        let watch = r#"grpc_server_handled_total{grpc_code="OK",grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"}"#;
        assert_eq!(line(&text, watch), format!("{watch} 0"));
        assert_eq!(
            line(&text, "etcd_server_has_leader "),
            "etcd_server_has_leader 1"
        );
        assert_eq!(
            line(&text, "etcd_mvcc_db_total_size_in_bytes "),
            "etcd_mvcc_db_total_size_in_bytes 20480"
        );
        assert_eq!(
            line(&text, "etcd_mvcc_db_total_size_in_use_in_bytes "),
            "etcd_mvcc_db_total_size_in_use_in_bytes 16384"
        );
        assert_eq!(
            line(&text, "etcd_server_quota_backend_bytes "),
            "etcd_server_quota_backend_bytes 2147483648"
        );
        assert_eq!(
            line(&text, "etcd_disk_defrag_inflight "),
            "etcd_disk_defrag_inflight 1"
        );
        assert_eq!(
            line(
                &text,
                r#"etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"}"#
            ),
            r#"etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"} 0"#
        );
        assert_eq!(
            line(
                &text,
                r#"etcd_disk_wal_fsync_duration_seconds_bucket{le="0.002"}"#
            ),
            r#"etcd_disk_wal_fsync_duration_seconds_bucket{le="0.002"} 1"#
        );
        assert_eq!(
            line(&text, "# TYPE etcd_server_proposals_applied_total"),
            "# TYPE etcd_server_proposals_applied_total gauge"
        );
        assert!(text.contains(
            r#"grpc_server_handling_seconds_count{grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 3"#
        ));
    }

    /// Two messages (7 and 0 payload bytes) cut at every point: the
    /// payload count and the message count come out the same.
    #[test]
    fn message_bytes_survive_any_cut() {
        let mut body = vec![0u8, 0, 0, 0, 7];
        body.extend_from_slice(b"payload");
        body.extend_from_slice(&[0, 0, 0, 0, 0]);
        for cut in 0..=body.len() {
            for cut2 in cut..=body.len() {
                let mut m = MessageBytes::default();
                let (a, x) = m.feed(&body[..cut]);
                let (b, y) = m.feed(&body[cut..cut2]);
                let (c, z) = m.feed(&body[cut2..]);
                assert_eq!((a + b + c, x + y + z), (7, 2), "cuts {cut} {cut2}");
            }
        }
    }

    #[test]
    fn store_ops_count_as_etcd_does() {
        let mut ops = StoreOps::default();
        ops.txn(0, 1, 0); // a put
        ops.txn(1, 0, 0); // a range
        ops.txn(2, 1, 1); // a txn: two compares, a put and a delete
        assert_eq!(
            ops,
            StoreOps {
                ranges: 3,
                puts: 2,
                deletes: 1,
                txns: 1,
                put_bytes: 0
            }
        );
        let m = Metrics::new();
        m.store_ops(&ops);
        let text = String::from_utf8(m.render()).unwrap();
        assert_eq!(line(&text, "etcd_mvcc_put_total "), "etcd_mvcc_put_total 2");
        assert_eq!(line(&text, "etcd_mvcc_txn_total "), "etcd_mvcc_txn_total 1");
    }

    #[test]
    fn identity_and_peer_series_carry_etcds_labels() {
        let m = Metrics::new();
        m.set_identity(0x8e9e05c52164694d, "3.5.0");
        m.set_cluster_version("3.5");
        let p = m.peer(0xa, 0xb);
        p.sent(100);
        p.received(7);
        p.connected(true);
        p.connected(false);
        p.round_trip(Duration::from_micros(150));
        let text = String::from_utf8(m.render()).unwrap();
        for want in [
            r#"etcd_server_id{server_id="8e9e05c52164694d"} 1"#,
            r#"etcd_server_version{server_version="3.5.0"} 1"#,
            r#"etcd_cluster_version{cluster_version="3.5"} 1"#,
            r#"etcd_network_peer_sent_bytes_total{To="b"} 100"#,
            r#"etcd_network_peer_received_bytes_total{From="b"} 7"#,
            r#"etcd_network_active_peers{Local="a",Remote="b"} 0"#,
            r#"etcd_network_disconnected_peers_total{Local="a",Remote="b"} 1"#,
            r#"etcd_network_peer_round_trip_time_seconds_bucket{To="b",le="0.0002"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == want), "missing {want}");
        }
        assert!(
            text.contains("\nprocess_resident_memory_bytes ")
                || text.contains("process_resident_memory_bytes ")
        );
        assert!(text.contains("os_fd_used "));
    }
}
