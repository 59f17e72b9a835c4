//! gRPC and HTTP/1 JSON on one listener, as etcd serves its client port.
//!
//! tonic's gRPC routes are an axum router too, so the gateway's routes are
//! merged into it: gRPC paths are `/<package>.<Service>/<Method>`, gateway
//! paths `/v3/...`, `/health`, `/version`, `/metrics`, so they never clash.
//! tonic's server with HTTP/1 accepted detects HTTP/2 (gRPC clients) by the
//! connection preface and serves HTTP/1.1 (curl, the JSON gateway) on the
//! same socket.

use std::future::Future;

use axum::Router;
use axum::body::Body;
use http::{HeaderValue, StatusCode, header};
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;

use super::Gateway;
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
    let grpc = req
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if grpc {
        return tonic::Status::unimplemented("").into_http();
    }
    // grpc-gateway's 404 under /v3, Go's default elsewhere (etcd 3.5.1).
    let text = if req.uri().path().starts_with("/v3") {
        "Not Found\n"
    } else {
        "404 page not found\n"
    };
    let mut r = http::Response::new(Body::from(text));
    *r.status_mut() = StatusCode::NOT_FOUND;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
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
    // Small request/response writes must not wait for Nagle's timer.
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        if let Ok(c) = &conn {
            let _ = c.set_nodelay(true);
        }
        conn
    });
    tonic::transport::Server::builder()
        .accept_http1(true)
        .layer(metrics.grpc_layer())
        .add_routes(Routes::from(router))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
