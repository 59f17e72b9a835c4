//! The client port inside TLS (`serve_client_tls`): client-cert-auth
//! refuses clients without a certificate or with one from another CA, and
//! the verified certificate's CN reaches the handlers as `ClientIdentity`
//! over gRPC (HTTP/2), HTTP/1.1 and the binary protocol's connection.
//! Every network wait is bounded.

#[path = "../src/tls_testing.rs"]
mod tls_testing;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ferrocd_net::client::{Client, ClientTls, ConnectOptions, Protocol};
use ferrocd_net::pb::etcdserverpb as pb;
use ferrocd_net::pb::etcdserverpb::kv_server::{Kv, KvServer};
use ferrocd_net::tls::{CLIENT_PORT_ALPN, ServerTls};
use ferrocd_net::{
    ClientConn, ClientIdentity, ConnInfo, FastHandler, Gateway, Metrics, Versions, client_router,
    serve_client_tls,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tonic::{Request, Response, Status};

use tls_testing::Ca;

const LIMIT: Duration = Duration::from_secs(10);

/// A KV service whose Range answers with the caller's certificate CN as
/// the value of key `cn` (`<none>` without one).
struct WhoAmI;

#[tonic::async_trait]
impl Kv for WhoAmI {
    async fn range(
        &self,
        req: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let cn = ClientIdentity::of(&req).map_or("<none>".to_string(), |i| i.common_name.clone());
        Ok(Response::new(pb::RangeResponse {
            kvs: vec![ferrocd_net::pb::mvccpb::KeyValue {
                key: b"cn".to_vec(),
                value: cn.into_bytes(),
                ..Default::default()
            }],
            count: 1,
            ..Default::default()
        }))
    }
    async fn put(&self, _: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn delete_range(
        &self,
        _: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn txn(&self, _: Request<pb::TxnRequest>) -> Result<Response<pb::TxnResponse>, Status> {
        Err(Status::unimplemented(""))
    }
    async fn compact(
        &self,
        _: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        Err(Status::unimplemented(""))
    }
}

struct Served {
    addr: SocketAddr,
    /// The identity of each connection that opened with the fast magic.
    fast: mpsc::UnboundedReceiver<Option<ClientIdentity>>,
}

async fn serve(tls: ServerTls) -> Served {
    let mut grpc = tonic::service::Routes::builder();
    grpc.add_service(KvServer::new(WhoAmI));
    let gateway = Gateway::new(
        Versions {
            server: "3.5.0".into(),
            cluster: "3.5.0".into(),
        },
        Metrics::new(),
    );
    // An HTTP/1 route that reports the connection's identity, as the
    // gateway's handlers see it.
    let router = client_router(grpc.routes(), gateway).route(
        "/whoami",
        axum::routing::get(|req: http::Request<axum::body::Body>| async move {
            req.extensions()
                .get::<ConnInfo>()
                .and_then(|i| i.identity.clone())
                .map_or("<none>".to_string(), |i| i.common_name)
        }),
    );
    let (tx, fast) = mpsc::unbounded_channel();
    let handler: FastHandler = Arc::new(move |conn: ClientConn| {
        assert!(conn.is_tls());
        let _ = tx.send(conn.info().identity.clone());
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = tls.server_config(CLIENT_PORT_ALPN).unwrap();
    tokio::spawn(async move {
        let metrics = Metrics::new();
        serve_client_tls(
            listener,
            router,
            &metrics,
            std::future::pending(),
            Some(handler),
            None,
            Some(cfg),
        )
        .await
        .unwrap();
    });
    Served { addr, fast }
}

/// The CN the server sees for a gRPC call made with `tls`.
async fn grpc_cn(addr: SocketAddr, tls: ClientTls) -> Result<String, String> {
    let opts = ConnectOptions::new()
        .with_protocol(Protocol::Grpc)
        .with_dial_timeout(Duration::from_secs(3))
        .with_timeout(LIMIT)
        .with_tls(tls);
    let c = Client::connect([format!("https://{addr}")], Some(opts))
        .await
        .map_err(|e| e.to_string())?;
    let r = c.get("cn", None).await.map_err(|e| e.to_string())?;
    Ok(String::from_utf8(r.kvs[0].value.clone()).unwrap())
}

/// One TLS connection with `tls`, then `send`, then everything the server
/// answers until it closes.
async fn raw(addr: SocketAddr, tls: &ClientTls, alpn: &[&[u8]], send: &[u8]) -> Vec<u8> {
    let cfg = tls.client_config(alpn).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = tls.server_name("127.0.0.1").unwrap();
    let mut s = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .unwrap();
    s.write_all(send).await.unwrap();
    let mut out = Vec::new();
    let _ = timeout(LIMIT, s.read_to_end(&mut out)).await;
    out
}

#[tokio::test]
async fn client_cert_auth_exposes_the_cn_and_refuses_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let other = Ca::new(dir.path(), "other");
    let (cert, key) = ca.issue("server");
    let mut s = serve(ServerTls {
        cert,
        key,
        trusted_ca: Some(ca.pem()),
        client_cert_auth: true,
        ..Default::default()
    })
    .await;
    let (alice, alice_key) = ca.issue("alice");
    let good = ClientTls::with_ca(ca.pem()).identity(&alice, &alice_key);

    // gRPC over HTTP/2
    assert_eq!(grpc_cn(s.addr, good.clone()).await.unwrap(), "alice");
    // HTTP/1.1 (the gateway's routes)
    let resp = raw(
        s.addr,
        &good,
        &[b"http/1.1"],
        b"GET /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let resp = String::from_utf8_lossy(&resp);
    assert!(
        resp.starts_with("HTTP/1.1 200") && resp.ends_with("alice"),
        "{resp}"
    );
    // The binary protocol's connection (no ALPN, the magic inside TLS).
    let _ = raw(s.addr, &good, &[], b"FRCD").await;
    let id = timeout(LIMIT, s.fast.recv()).await.unwrap().unwrap();
    assert_eq!(id.unwrap().common_name, "alice");

    // No certificate: the handshake fails. (With TLS 1.3 the client
    // finishes its side first and learns of the alert on its first read,
    // which tonic reports as a bare "transport error".)
    let e = grpc_cn(s.addr, ClientTls::with_ca(ca.pem()))
        .await
        .unwrap_err();
    assert!(
        e.contains("CertificateRequired") || e.contains("transport error"),
        "{e}"
    );
    // A certificate from another CA.
    let (mallory, mallory_key) = other.issue("mallory");
    let e = grpc_cn(
        s.addr,
        ClientTls::with_ca(ca.pem()).identity(&mallory, &mallory_key),
    )
    .await
    .unwrap_err();
    assert!(e.contains("alert") || e.contains("transport error"), "{e}");
    // A client that does not trust the server's CA gives up itself.
    let e = grpc_cn(
        s.addr,
        ClientTls::with_ca(other.pem()).identity(&mallory, &mallory_key),
    )
    .await
    .unwrap_err();
    assert!(e.contains("invalid peer certificate"), "{e}");
    // The binary protocol's client says why it was refused.
    let fast = ConnectOptions::new()
        .with_protocol(Protocol::Auto)
        .with_dial_timeout(Duration::from_secs(3))
        .with_tls(ClientTls::with_ca(ca.pem()));
    let e = Client::connect([format!("https://{}", s.addr)], Some(fast))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tls: received fatal alert: CertificateRequired"),
        "{e}"
    );
    // Plaintext to a TLS port gets nothing.
    let plain = ConnectOptions::new()
        .with_protocol(Protocol::Grpc)
        .with_dial_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(3));
    let r = Client::connect([format!("http://{}", s.addr)], Some(plain)).await;
    match r {
        Err(_) => {}
        Ok(c) => assert!(c.get("cn", None).await.is_err()),
    }
    // The good client still gets in.
    assert_eq!(grpc_cn(s.addr, good).await.unwrap(), "alice");
}

#[tokio::test]
async fn without_client_cert_auth_there_is_no_identity() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let (cert, key) = ca.issue("server");
    let mut s = serve(ServerTls {
        cert,
        key,
        trusted_ca: Some(ca.pem()),
        client_cert_auth: false,
        ..Default::default()
    })
    .await;
    // A client certificate is not asked for, so none is seen.
    let (alice, alice_key) = ca.issue("alice");
    let with_cert = ClientTls::with_ca(ca.pem()).identity(&alice, &alice_key);
    assert_eq!(grpc_cn(s.addr, with_cert.clone()).await.unwrap(), "<none>");
    assert_eq!(
        grpc_cn(s.addr, ClientTls::with_ca(ca.pem())).await.unwrap(),
        "<none>"
    );
    let _ = raw(s.addr, &with_cert, &[], b"FRCD").await;
    let id = timeout(LIMIT, s.fast.recv()).await.unwrap().unwrap();
    assert_eq!(id, None);
}
