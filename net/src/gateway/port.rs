//! gRPC and HTTP/1 JSON on one listener, as etcd serves its client port.
//!
//! tonic's gRPC routes are an axum router too, so the gateway's routes are
//! merged into it: gRPC paths are `/<package>.<Service>/<Method>`, gateway
//! paths `/v3/...`, `/health`, `/version`, `/metrics`, so they never clash.
//! tonic's server with HTTP/1 accepted detects HTTP/2 (gRPC clients) by the
//! connection preface and serves HTTP/1.1 (curl, the JSON gateway) on the
//! same socket. With TLS (an `https://` listen URL) all of it runs inside
//! the TLS stream, the binary protocol included.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http::StatusCode;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::Routes;

use super::Gateway;
use super::conn::{ClientConn, Prefixed};
use crate::identity::{ClientIdentity, ConnInfo};
use crate::metrics::Metrics;

/// One router for the gRPC services in `grpc` and the gateway's routes.
/// Unknown paths answer gRPC `Unimplemented` to gRPC requests and 404 to
/// the others.
pub fn client_router(grpc: Routes, gateway: Gateway) -> Router {
    grpc.prepare()
        .into_axum_router()
        .merge(gateway.into_router())
        .fallback(fallback)
}

async fn fallback(req: http::Request<Body>) -> http::Response<Body> {
    if super::error::is_grpc(req.headers()) {
        return tonic::Status::unimplemented("").into_http();
    }
    // grpc-gateway's 404 under /v3, Go's default elsewhere (etcd 3.5.1).
    let text = if req.uri().path().starts_with("/v3") {
        "Not Found\n"
    } else {
        "404 page not found\n"
    };
    super::error::text_response(StatusCode::NOT_FOUND, text)
}

/// Serves `router` (from [`client_router`]) on `listener` until `shutdown`
/// resolves: HTTP/2 gRPC and HTTP/1.1 on the same port, every gRPC call
/// counted in `metrics`.
pub async fn serve_client<F>(
    listener: TcpListener,
    router: Router,
    metrics: &Metrics,
    shutdown: F,
) -> Result<(), tonic::transport::Error>
where
    F: Future<Output = ()>,
{
    serve_client_tls(listener, router, metrics, shutdown, None, None, None).await
}

/// Takes a connection that opened with the binary protocol's preamble.
pub type FastHandler = Arc<dyn Fn(ClientConn) + Send + Sync>;

/// Serves an HTTP/2 connection to its end ([`h2_handler`]).
pub type H2Handler =
    Arc<dyn Fn(ClientConn) -> futures_util::future::BoxFuture<'static, ()> + Send + Sync>;

/// [`serve_client`], and connections whose first bytes are the binary
/// protocol's magic (`FRCD`) go to `fast` instead: one port for gRPC,
/// HTTP/1 and the fast path.
pub async fn serve_client_with_fast<F>(
    listener: TcpListener,
    router: Router,
    metrics: &Metrics,
    shutdown: F,
    fast: Option<FastHandler>,
) -> Result<(), tonic::transport::Error>
where
    F: Future<Output = ()>,
{
    serve_client_tls(listener, router, metrics, shutdown, fast, None, None).await
}

/// How long a new connection may take to finish its TLS handshake and
/// send its first bytes.
const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(10);

/// [`serve_client_with_fast`], speaking TLS when `tls` is given (an
/// `https://` listen URL): every protocol of the port runs inside it. A
/// failed handshake (no client certificate where client-cert-auth asks
/// for one, one from another CA, plaintext) closes the connection and is
/// logged as etcd logs it ("rejected connection"). Each connection is
/// handshaken and sniffed on a task of its own, so a client that connects
/// and stays silent delays nobody.
pub async fn serve_client_tls<F>(
    listener: TcpListener,
    router: Router,
    metrics: &Metrics,
    shutdown: F,
    fast: Option<FastHandler>,
    h2: Option<H2Handler>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<(), tonic::transport::Error>
where
    F: Future<Output = ()>,
{
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let (tx, rx) = mpsc::channel::<std::io::Result<ClientConn>>(64);
    // Every HTTP/2 connection task holds a sender; the server returns once
    // all are gone (they end after their GOAWAY, when their calls have
    // answered), as tonic's graceful shutdown waits for its connections.
    let (h2_live, mut h2_done) = mpsc::channel::<()>(1);
    let live = h2_live.clone();
    let accept = tokio::spawn(async move {
        loop {
            let (conn, remote) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "client accept");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            // Small request/response writes must not wait for Nagle's timer.
            let _ = conn.set_nodelay(true);
            let tx = tx.clone();
            let fast = fast.clone();
            let h2 = h2.clone();
            let h2_live = live.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let info = ConnInfo {
                    remote: Some(remote),
                    identity: None,
                };
                let (conn, proto) = match acceptor {
                    None => {
                        let proto = if fast.is_some() || h2.is_some() {
                            sniff(&conn).await
                        } else {
                            Proto::Other
                        };
                        (ClientConn::plain(conn, info), proto)
                    }
                    Some(acceptor) => match accept_tls(&acceptor, conn, info).await {
                        Ok(c) => c,
                        Err(e) => {
                            return tracing::warn!(
                                remote_addr = %remote,
                                error = %e,
                                "rejected connection"
                            );
                        }
                    },
                };
                match (proto, fast, h2) {
                    (Proto::Fast, Some(fast), _) => fast(conn),
                    (Proto::H2, _, Some(h2)) => {
                        h2(conn).await;
                        drop(h2_live);
                    }
                    _ => {
                        let _ = tx.send(Ok(conn)).await;
                    }
                }
            });
        }
    });
    let incoming = AbortOnDrop {
        inner: ReceiverStream::new(rx),
        task: accept,
    };
    let served = tonic::transport::Server::builder()
        .accept_http1(true)
        .layer(metrics.grpc_layer())
        .add_routes(Routes::from(router))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    drop(h2_live);
    let _ = h2_done.recv().await;
    served
}

/// The TLS handshake, the client certificate's identity, then the first
/// bytes (read, and kept for the protocol that gets the connection):
/// `(connection, whether it opened with the fast magic)`.
async fn accept_tls(
    acceptor: &tokio_rustls::TlsAcceptor,
    conn: TcpStream,
    mut info: ConnInfo,
) -> std::io::Result<(ClientConn, Proto)> {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + FIRST_BYTES_TIMEOUT;
    let mut tls = tokio::time::timeout_at(deadline, acceptor.accept(conn))
        .await
        .map_err(|_| std::io::Error::other("TLS handshake timed out"))??;
    // Certificates are only there when the config verified them
    // (client-cert-auth); the first is the client's own.
    info.identity = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| ClientIdentity::from_cert(c));
    let mut first = Vec::with_capacity(4);
    let mut buf = [0u8; 4];
    while first.len() < 4 {
        let n = match tokio::time::timeout_at(deadline, tls.read(&mut buf[..4 - first.len()])).await
        {
            Ok(Ok(n)) => n,
            // A silent or failed client goes to the HTTP server, which
            // answers or times it out as it would a plain one.
            Ok(Err(_)) | Err(_) => 0,
        };
        if n == 0 {
            break;
        }
        first.extend_from_slice(&buf[..n]);
        if first[..] != crate::fast::MAGIC[..first.len()]
            && first[..] != crate::h2::PREFACE[..first.len()]
        {
            break;
        }
    }
    let proto = Proto::of(&first);
    Ok((ClientConn::tls(Prefixed::new(first, tls), info), proto))
}

/// What a connection speaks, from its first four bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    /// The binary protocol's magic.
    Fast,
    /// HTTP/2's connection preface (`PRI `).
    H2,
    /// Anything else (HTTP/1), or nothing in time.
    Other,
}

impl Proto {
    fn of(first: &[u8]) -> Proto {
        if first == crate::fast::MAGIC {
            Proto::Fast
        } else if first.len() == 4 && first == &crate::h2::PREFACE[..4] {
            Proto::H2
        } else {
            Proto::Other
        }
    }
}

/// What the connection opens with. Clients speak first in all three
/// protocols (HTTP/2's preface, an HTTP/1 request line, `FRCD`), so
/// waiting for four bytes is enough; a connection that sends fewer
/// within 10 s goes to the HTTP server, which times it out as before.
async fn sniff(conn: &TcpStream) -> Proto {
    let mut buf = [0u8; 4];
    let deadline = tokio::time::Instant::now() + FIRST_BYTES_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, conn.peek(&mut buf)).await {
            Ok(Ok(n)) if n >= 4 => return Proto::of(&buf),
            // Fewer bytes so far: a prefix that already differs decides.
            Ok(Ok(n))
                if n > 0
                    && buf[..n] != crate::fast::MAGIC[..n]
                    && buf[..n] != crate::h2::PREFACE[..n] =>
            {
                return Proto::Other;
            }
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Proto::Other,
            Ok(Ok(_)) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
}

/// Serves HTTP/2 connections with ferrocd's own HTTP/2 layer
/// ([`crate::h2`]): the hot KV calls straight on `kv`, everything else
/// through `router` (counted in `metrics`, as the tonic server counts
/// them). Each connection ends with a GOAWAY once `stop` turns true.
pub fn h2_handler<S: crate::KvService>(
    kv: Arc<crate::KvShim<S>>,
    router: Router,
    metrics: &Metrics,
    cfg: crate::h2::Config,
    stop: tokio::sync::watch::Receiver<bool>,
) -> H2Handler {
    use http_body_util::BodyExt;
    use tower::{Layer, ServiceExt};
    let svc = ServiceExt::<http::Request<crate::h2::RecvBody>>::map_response(
        metrics.grpc_layer().layer(router),
        |r: http::Response<_>| -> http::Response<crate::h2::RespBody> {
            r.map(|b| b.map_err(Into::into).boxed_unsync())
        },
    );
    let metrics = metrics.clone();
    let cfg = Arc::new(cfg);
    Arc::new(move |conn: ClientConn| {
        let mut stop = stop.clone();
        let shutdown = Box::pin(async move {
            let _ = stop.wait_for(|s| *s).await;
        });
        let info = conn.info().clone();
        let c = crate::h2::Conn::new(
            kv.clone(),
            svc.clone(),
            metrics.clone(),
            info,
            cfg.clone(),
            shutdown,
        );
        Box::pin(c.serve(conn))
    })
}

pin_project_lite::pin_project! {
    /// The accepted-connection stream of [`serve_client_with_fast`]; stops
    /// the accept task when the server drops it at shutdown.
    struct AbortOnDrop {
        #[pin]
        inner: ReceiverStream<std::io::Result<ClientConn>>,
        task: tokio::task::JoinHandle<()>,
    }
    impl PinnedDrop for AbortOnDrop {
        fn drop(this: Pin<&mut Self>) {
            this.task.abort();
        }
    }
}

impl Stream for AbortOnDrop {
    type Item = std::io::Result<ClientConn>;
    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.project().inner.poll_next(cx)
    }
}
