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
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
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

/// The series of one method, created up front.
struct MethodStats {
    started: IntCounter,
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
        let mut by_path = HashMap::with_capacity(METHODS.len());
        let mut methods = Vec::with_capacity(METHODS.len());
        for (i, &(service, method, kind)) in METHODS.iter().enumerate() {
            let kind = kind.label();
            by_path.insert(format!("/{service}/{method}"), i);
            methods.push(MethodStats {
                started: started.with_label_values(&[method, service, kind]),
                handled: std::array::from_fn(|code| {
                    handled.with_label_values(&[CODE_NAMES[code], method, service, kind])
                }),
                seconds: seconds.with_label_values(&[method, service, kind]),
            });
        }
        // etcd's (Go's) process collector: process_resident_memory_bytes,
        // process_cpu_seconds_total, process_open_fds, … read from /proc
        // (`etcdctl check datascale` reads the resident memory).
        for c in [
            Box::new(started) as Box<dyn prometheus::core::Collector>,
            Box::new(handled),
            Box::new(seconds),
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        ] {
            registry.register(c).expect("unique name");
        }
        let r = &registry;
        let inner = Inner {
            by_path,
            methods,
            wal_fsync: histogram(
                r,
                "etcd_disk_wal_fsync_duration_seconds",
                "The latency distributions of fsync called by WAL.",
                disk_buckets(),
            ),
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

    /// Everything in the Prometheus text format, as `/metrics` serves it.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 * 1024);
        // Encoding into a Vec fails only on invalid metric names, and ours
        // are fixed at construction.
        TextEncoder::new()
            .encode(&self.inner.registry.gather(), &mut out)
            .expect("metrics encode");
        out
    }

    /// The content type of [`Metrics::render`]'s output.
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";

    /// One WAL `fdatasync` (or batch write + sync) took `d`.
    pub fn observe_wal_fsync(&self, d: Duration) {
        self.inner.wal_fsync.observe(d.as_secs_f64());
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

    /// The store's size in bytes.
    pub fn set_db_size(&self, bytes: u64) {
        self.inner.db_size.set(saturate(bytes));
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
    /// returned timer is finished or dropped.
    pub(crate) fn start_call(&self, index: usize) -> CallTimer {
        self.inner.methods[index].started.inc();
        CallTimer {
            metrics: self.clone(),
            index,
            start: Instant::now(),
            finished: false,
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
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<MetricsBody<ResBody>>;
    type Error = S::Error;
    type Future = MetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let timer = self
            .metrics
            .method_index(req.uri().path())
            .map(|i| self.metrics.start_call(i));
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
                // A trailers-only response (an error before any message)
                // carries its status in the headers.
                if let Some(code) = grpc_code(resp.headers())
                    && let Some(t) = timer.take()
                {
                    t.finish(code);
                }
                Ok(resp.map(|inner| MetricsBody { inner, timer }))
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
        m.start_call(i).finish(Code::Ok);
        m.start_call(i).finish(Code::OutOfRange);
        drop(m.start_call(i));
        m.set_has_leader(true);
        m.set_db_size(20480);
        m.set_db_size_in_use(16384);
        m.set_quota_backend_bytes(2 << 30);
        m.set_defrag_inflight(true);
        m.observe_wal_fsync(Duration::from_micros(1500));
        let text = String::from_utf8(m.render()).unwrap();
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
}
