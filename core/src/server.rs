//! The runtimes and listeners of a `ferrocd` process.
//!
//! - **raft runtime**: a one-worker tokio runtime (thread `raft`) hosts
//!   openraft (its core, its timers, the state machine worker that runs
//!   the apply loop), the lessor loop and the watch syncer. openraft 0.10
//!   runs on any `AsyncRuntime`; tokio is the one it ships and the one the
//!   rest of the node's I/O (tonic) needs. The WAL has its own thread
//!   (`wal`), so nothing here blocks on the disk.
//! - **shards**: `--shards` threads (default: one per core), each pinned
//!   to a core and running a current-thread tokio runtime that serves the
//!   client port on its own `SO_REUSEPORT` socket: the kernel spreads
//!   connections over the shards, and a connection's requests never leave
//!   its shard until they reach the node (proposals go into openraft's
//!   batching queue, reads go straight to the published store root).
//!
//! The client port's HTTP/2 (gRPC, the gateway over h2c) is ferrocd's own
//! (`ferrocd_net::h2`, issue #20; `FERROCD_HTTP2=hyper` selects tonic's
//! server instead); HTTP/1.1 stays on hyper. The shards are tokio
//! runtimes because the service layer still uses tokio (spawns, timers,
//! tokio-rustls); whether glommio shards would be faster is issue #20's
//! open measurement (see DESIGN.md, "Threads").

use std::net::{SocketAddr, TcpListener as StdListener, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, bail};
use ferrocd_net::{
    AuthShim, ClusterShim, ElectionShim, Gateway, KvShim, LeaseShim, LockShim, Metrics, Versions,
    WatchShim, client_router, serve_client_tls,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::watch;
use url::Url;

use crate::config::Config;
use crate::maintenance::{ETCD_CLUSTER_VERSION, ETCD_VERSION};
use crate::node::Node;

/// gRPC's own size limit sits above `--max-request-bytes` (etcd adds 512
/// KiB) so the request-size check answers with etcd's error, not gRPC's.
const GRPC_OVERHEAD: usize = 512 * 1024;

/// How long a shutdown lets in-flight client requests finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Stops the process when a shard thread panics. A dead shard would leave
/// its `SO_REUSEPORT` socket's queued connections reset and the node
/// serving on fewer cores without anyone noticing (seen once: a metrics
/// registration that panicked on the second shard); a supervisor restarts
/// a stopped member, and everything acknowledged is on disk.
struct AbortOnPanic(usize);

impl Drop for AbortOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!(
                shard = self.0,
                "shard thread panicked; stopping the process"
            );
            std::process::abort();
        }
    }
}

/// The raft runtime (see the module docs): one tokio worker, thread
/// `raft`. [`Node::start`] must run inside it.
pub fn raft_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("raft")
        .enable_all()
        .build()
}

/// A running server: the node, its shards and runtimes.
pub struct Server {
    node: Arc<Node>,
    raft_rt: Option<tokio::runtime::Runtime>,
    shards: Vec<JoinHandle<()>>,
    /// One message per shard that finished serving.
    shard_done: std::sync::mpsc::Receiver<usize>,
    stop: watch::Sender<bool>,
    addrs: Vec<SocketAddr>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("node", &self.node)
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

/// A client listener's TLS (`None`: plaintext), one per listen URL.
type ListenerTls = Option<Arc<ferrocd_net::tls::ServerConfig>>;

/// The listen addresses of `urls` (client, metrics or console URLs), each
/// with its TLS config (`https://` URLs use the client certificate; the
/// files are read here, so a bad one stops the start before anything else
/// happens, with Go's `open <file>: ...` message).
fn listen_addrs(cfg: &Config, urls: &[Url]) -> anyhow::Result<Vec<(SocketAddr, ListenerTls)>> {
    let mut out = Vec::new();
    let mut tls: ListenerTls = None;
    for u in urls {
        let this_tls = match u.scheme() {
            "http" => None,
            "https" => {
                if tls.is_none() {
                    let files = cfg
                        .client_tls
                        .server()
                        .with_context(|| format!("{u}: https needs --cert-file and --key-file"))?;
                    tls = Some(files.server_config(ferrocd_net::tls::CLIENT_PORT_ALPN)?);
                }
                tls.clone()
            }
            s => bail!("{u}: unsupported URL scheme {s:?} (use http or https)"),
        };
        let host = u.host_str().context("listen URL without a host")?;
        let port = u.port().context("listen URL without a port")?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addr = (host, port)
            .to_socket_addrs()
            .with_context(|| format!("resolving {u}"))?
            .next()
            .with_context(|| format!("{u} resolves to nothing"))?;
        out.push((addr, this_tls));
    }
    Ok(out)
}

fn bind(addr: SocketAddr, reuse_port: bool) -> anyhow::Result<StdListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())
        .with_context(|| format!("listen tcp {addr}: bind"))?;
    s.listen(1024)?;
    Ok(s.into())
}

impl Server {
    /// Start everything; returns once the node serves clients.
    pub fn start(mut cfg: Config) -> anyhow::Result<Server> {
        // Generated certificates first: every listener below uses them.
        crate::auto_tls::resolve(&mut cfg)?;
        let addrs = listen_addrs(&cfg, &cfg.listen_client_urls)?;
        let shards = cfg.shards.max(1);
        // Bind first (fail fast on a busy port, before touching the data).
        let mut listeners: Vec<Vec<(StdListener, ListenerTls)>> =
            (0..shards).map(|_| Vec::new()).collect();
        let mut bound = Vec::new();
        for (addr, tls) in &addrs {
            let first = bind(*addr, shards > 1)?;
            let actual = first.local_addr()?;
            bound.push((actual, tls.is_some()));
            listeners[0].push((first, tls.clone()));
            for l in listeners.iter_mut().skip(1) {
                l.push((bind(actual, true)?, tls.clone()));
            }
        }
        // The metrics and console listeners: one socket each, served by
        // the first shard (light traffic; no need to spread it).
        let mut side = Vec::new();
        for (console, urls) in [
            (false, &cfg.listen_metrics_urls),
            (true, &cfg.listen_ui_urls),
        ] {
            for (u, (addr, tls)) in urls.iter().zip(listen_addrs(&cfg, urls)?) {
                let l = bind(addr, false)?;
                let actual = l.local_addr()?;
                let what = if console {
                    tracing::info!(address = %actual, url = %u, "serving the web console");
                    Side::Console(u.path().to_owned())
                } else {
                    tracing::info!(address = %actual, "serving /metrics and /health");
                    Side::Metrics
                };
                side.push((l, tls, what));
            }
        }
        let raft_rt = raft_runtime().context("raft runtime")?;
        let metrics = Metrics::new();
        let node = raft_rt.block_on(Node::start(&cfg, metrics.clone()))?;
        metrics.set_identity(node.ids().member_id, crate::maintenance::ETCD_VERSION);
        // etcd labels the cluster version as major.minor.
        let cv = crate::maintenance::ETCD_CLUSTER_VERSION;
        metrics.set_cluster_version(cv.rsplit_once('.').map_or(cv, |(mm, _)| mm));
        // gRPC's standard health service (`grpc.health.v1.Health`), as
        // etcd registers it: SERVING while a leader is known.
        let (reporter, health) = tonic_health::server::health_reporter();
        {
            let node = node.clone();
            raft_rt.spawn(async move {
                use tonic_health::ServingStatus;
                let mut last = None;
                loop {
                    let status = if node.health().is_ok() {
                        ServingStatus::Serving
                    } else {
                        ServingStatus::NotServing
                    };
                    if last != Some(status) {
                        reporter.set_service_status("", status).await;
                        last = Some(status);
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            });
        }
        let (stop, stop_rx) = watch::channel(false);
        let access = Arc::new(ferrocd_net::AccessControl::new(
            &cfg.cors,
            &cfg.host_whitelist,
        ));
        let h2 = h2_config(&cfg);
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let mut handles = Vec::new();
        let (done_tx, shard_done) = std::sync::mpsc::channel();
        for (i, ls) in listeners.into_iter().enumerate() {
            let done_tx = done_tx.clone();
            let node = node.clone();
            let stop_rx = stop_rx.clone();
            let core = (!cores.is_empty()).then(|| cores[i % cores.len()]);
            let max_request_bytes = cfg.max_request_bytes as usize;
            let max_txn_ops = cfg.max_txn_ops as usize;
            let h2 = h2.clone();
            let access = access.clone();
            let metrics = metrics.clone();
            let health = health.clone();
            let side = if i == 0 {
                std::mem::take(&mut side)
            } else {
                Vec::new()
            };
            let h = std::thread::Builder::new()
                .name(format!("shard-{i}"))
                .spawn(move || {
                    let _fail_fast = AbortOnPanic(i);
                    if let Some(c) = core {
                        core_affinity::set_for_current(c);
                    }
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("shard runtime");
                    rt.block_on(serve_shard(
                        node,
                        ls,
                        side,
                        stop_rx,
                        max_request_bytes,
                        max_txn_ops,
                        h2,
                        access,
                        metrics,
                        health,
                    ));
                    let _ = done_tx.send(i);
                })
                .context("spawning a shard")?;
            handles.push(h);
        }
        for (a, tls) in &bound {
            if *tls {
                tracing::info!(address = %a, shards, "serving client traffic securely");
            } else {
                tracing::info!(address = %a, shards, "serving client traffic insecurely");
            }
        }
        // The listeners accept (bound above, served by the shards) and
        // the member has caught up with the leader (`Node::start`).
        crate::systemd::ready();
        if let Some(feed) = crate::systemd::watchdog() {
            raft_rt.spawn(feed);
        }
        Ok(Server {
            node,
            raft_rt: Some(raft_rt),
            shards: handles,
            shard_done,
            stop,
            addrs: bound.into_iter().map(|(a, _)| a).collect(),
        })
    }

    /// The node.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// The bound client addresses.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Wait for SIGTERM or SIGINT, then shut down.
    pub fn run_until_signal(self) -> anyhow::Result<()> {
        let rt = self.raft_rt.as_ref().expect("runtime");
        let failed = rt.block_on(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            let failed = tokio::select! {
                _ = tokio::signal::ctrl_c() => { tracing::info!("received SIGINT; shutting down"); None }
                _ = term.recv() => { tracing::info!("received SIGTERM; shutting down"); None }
                _ = self.node.removed() => None,
                why = self.node.failed() => Some(why),
            };
            anyhow::Ok(failed)
        })?;
        self.shutdown();
        match failed {
            // etcd exits (status 1) when it cannot save its raft log.
            Some(why) => Err(anyhow::anyhow!("stopped on a fatal storage error: {why}")),
            None => Ok(()),
        }
    }

    /// Stop serving (in-flight requests get [`SHUTDOWN_GRACE`] to finish;
    /// long-lived streams such as watches are cut after it, as etcd's
    /// graceful stop does), stop raft, flush, join the WAL thread.
    pub fn shutdown(mut self) {
        crate::systemd::stopping();
        let _ = self.stop.send(true);
        let deadline = std::time::Instant::now() + SHUTDOWN_GRACE;
        let mut finished = 0;
        let total = self.shards.len();
        while finished < total {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.shard_done.recv_timeout(left) {
                Ok(_) => finished += 1,
                Err(_) => break,
            }
        }
        let cut_off = total - finished;
        if cut_off == 0 {
            for h in self.shards.drain(..) {
                let _ = h.join();
            }
        } else {
            tracing::info!(
                open = cut_off,
                "closing client streams still open after the grace period"
            );
            // Their threads end with the process.
            self.shards.clear();
        }

        if let Some(rt) = self.raft_rt.take() {
            rt.block_on(self.node.shutdown());
            let worker = self.node.take_wal_worker();
            drop(self.node);
            rt.shutdown_timeout(Duration::from_secs(5));
            // Every handle to the WAL is gone once the runtime's tasks and
            // the shards are; with shards cut off, it ends with the process
            // (everything acknowledged is already synced, and the
            // committed hint was flushed above).
            if let Some(w) = worker
                && cut_off == 0
            {
                let _ = w.join();
            }
        }
    }
}

/// What a listener other than a client one serves.
#[derive(Debug, Clone)]
enum Side {
    /// `--listen-metrics-urls`: `/metrics`, `/health`, `/version`.
    Metrics,
    /// `--listen-ui-urls`: the web console mounted at this path.
    Console(String),
}

#[allow(clippy::too_many_arguments)]
async fn serve_shard(
    node: Arc<Node>,
    listeners: Vec<(StdListener, ListenerTls)>,
    side: Vec<(StdListener, ListenerTls, Side)>,
    stop: watch::Receiver<bool>,
    max_request_bytes: usize,
    max_txn_ops: usize,
    h2: Option<ferrocd_net::h2::Config>,
    access: Arc<ferrocd_net::AccessControl>,
    metrics: Metrics,
    health: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
) {
    use ferrocd_net::pb::etcdserverpb::{
        auth_server::AuthServer, cluster_server::ClusterServer, kv_server::KvServer,
        lease_server::LeaseServer, maintenance_server::MaintenanceServer,
        watch_server::WatchServer,
    };
    use ferrocd_net::pb::v3electionpb::election_server::ElectionServer;
    use ferrocd_net::pb::v3lockpb::lock_server::LockServer;
    // Write answers reach this shard's requests in one wake per batch.
    crate::raft::mailbox::open_mailbox();
    let limit = max_request_bytes + GRPC_OVERHEAD;
    let kv = Arc::new(KvShim::new(node.clone(), max_txn_ops));
    let watch = Arc::new(WatchShim::new(node.clone(), max_request_bytes).with_metrics(&metrics));
    let lease = Arc::new(LeaseShim::new(node.clone()));
    let cluster = Arc::new(ClusterShim::new(node.clone()));
    let auth = Arc::new(AuthShim::new(node.clone()));
    let lock = Arc::new(LockShim::new(node.clone()));
    let election = Arc::new(ElectionShim::new(node.clone()));
    // The binary protocol on the same port, over the same service objects
    // (connections that open with its magic; see `ferrocd_net::fast`).
    let fast_server = Arc::new(
        ferrocd_net::fast::FastServer::new(
            kv.clone(),
            watch.clone(),
            lease.clone(),
            cluster.clone(),
            auth.clone(),
            limit,
        )
        .with_concurrency(lock.clone(), election.clone())
        .with_metrics(&metrics),
    );
    let fast: ferrocd_net::FastHandler = Arc::new(move |conn| {
        tokio::spawn(fast_server.clone().serve(conn));
    });
    // The JSON gateway over this shard's service objects (`services`:
    // with the `/v3` routes, else only `/health`, `/version`, `/metrics`).
    let gateway = |services: bool| {
        let health_node = node.clone();
        let g = Gateway::new(
            Versions {
                server: ETCD_VERSION.into(),
                cluster: ETCD_CLUSTER_VERSION.into(),
            },
            metrics.clone(),
        )
        .health(Arc::new(move || health_node.health()));
        let (livez, readyz) = node.probes();
        let g = g.probes(livez, readyz);
        if !services {
            return g;
        }
        g.kv(kv.clone())
            .watch(watch.clone())
            .lease(lease.clone())
            .maintenance(cluster.clone())
            .cluster(cluster.clone())
            .auth(auth.clone())
            .lock(lock.clone())
            .election(election.clone())
    };
    let mut tasks = Vec::new();
    for (l, tls) in listeners {
        let listener = match tokio::net::TcpListener::from_std(l) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "shard listener");
                continue;
            }
        };
        let mut grpc = tonic::service::Routes::builder();
        grpc.add_service(
            KvServer::from_arc(kv.clone())
                .max_decoding_message_size(limit)
                .max_encoding_message_size(usize::MAX),
        )
        .add_service(
            WatchServer::from_arc(watch.clone())
                .max_decoding_message_size(limit)
                .max_encoding_message_size(usize::MAX),
        )
        .add_service(LeaseServer::from_arc(lease.clone()).max_decoding_message_size(limit))
        .add_service(MaintenanceServer::from_arc(cluster.clone()))
        .add_service(ClusterServer::from_arc(cluster.clone()))
        .add_service(AuthServer::from_arc(auth.clone()).max_decoding_message_size(limit))
        .add_service(LockServer::from_arc(lock.clone()).max_decoding_message_size(limit))
        .add_service(ElectionServer::from_arc(election.clone()).max_decoding_message_size(limit))
        .add_service(health.clone());
        let router = client_router(
            ferrocd_net::check_frames(grpc.routes(), limit),
            gateway(true).access(access.clone(), tls.is_some()),
        );
        let h2 = h2.clone().map(|c| {
            ferrocd_net::h2_handler(kv.clone(), router.clone(), &metrics, c, stop.clone())
        });
        tasks.push(tokio::spawn(serve_listener(
            listener,
            router,
            metrics.clone(),
            stop.clone(),
            Some(fast.clone()),
            h2,
            tls,
        )));
    }
    for (l, tls, what) in side {
        let listener = match tokio::net::TcpListener::from_std(l) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "metrics/console listener");
                continue;
            }
        };
        let loopback = listener.local_addr().is_ok_and(|a| a.ip().is_loopback());
        let router = match what {
            Side::Metrics => gateway(false).into_router(),
            Side::Console(mount) => {
                ferrocd_net::console::router(&mount, node.clone(), gateway(true), loopback)
            }
        };
        tasks.push(tokio::spawn(serve_listener(
            listener,
            router,
            metrics.clone(),
            stop.clone(),
            None,
            None,
            tls,
        )));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// The client port's HTTP/2 settings for ferrocd's own HTTP/2 layer
/// (`ferrocd_net::h2`), or `None` where `FERROCD_HTTP2=hyper` asks for
/// tonic's server (hyper and h2) instead, the path before issue #20.
fn h2_config(cfg: &Config) -> Option<ferrocd_net::h2::Config> {
    if std::env::var("FERROCD_HTTP2").is_ok_and(|v| v == "hyper") {
        return None;
    }
    let interval = cfg.grpc_keepalive_interval;
    Some(ferrocd_net::h2::Config {
        max_concurrent_streams: cfg.max_concurrent_streams,
        max_message: cfg.max_request_bytes as usize + GRPC_OVERHEAD,
        keepalive_interval: (!interval.is_zero() && !cfg.grpc_keepalive_timeout.is_zero())
            .then_some(interval),
        keepalive_timeout: cfg.grpc_keepalive_timeout,
        keepalive_min_time: cfg.grpc_keepalive_min_time,
    })
}

/// Serve one listener until `stop` turns true.
async fn serve_listener(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    metrics: Metrics,
    mut stop: watch::Receiver<bool>,
    fast: Option<ferrocd_net::FastHandler>,
    h2: Option<ferrocd_net::H2Handler>,
    tls: ListenerTls,
) {
    let signal = async move {
        while !*stop.borrow() {
            if stop.changed().await.is_err() {
                break;
            }
        }
    };
    if let Err(e) = serve_client_tls(listener, router, &metrics, signal, fast, h2, tls).await {
        tracing::error!(error = %e, "listener failed");
    }
}
