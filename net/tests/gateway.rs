//! The HTTP/JSON gateway and `/metrics`, served with the gRPC services on
//! one loopback port (`client_router` + `serve_client`).
//!
//! Expected bodies are etcd 3.5.1's gateway output for the same requests
//! (captured with curl against a real etcd), with the header ids replaced
//! by the test double's (cluster 0xc1 = 193, member 0x1d = 29, term 2).
//! Every network wait is bounded by `timeout`.

#[path = "common/store_double.rs"]
mod store_double;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ferrocd_net::pb::etcdserverpb as pb;
use ferrocd_net::pb::etcdserverpb::kv_client::KvClient;
use ferrocd_net::pb::etcdserverpb::lease_server::{Lease, LeaseServer};
use ferrocd_net::pb::etcdserverpb::watch_server::{Watch, WatchServer};
use ferrocd_net::pb::mvccpb;
use ferrocd_net::{Gateway, KvShim, Metrics, Versions, client_router, serve_client};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::timeout;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use store_double::{INFO, StoreDouble};

const LIMIT: Duration = Duration::from_secs(10);

fn header(rev: i64) -> pb::ResponseHeader {
    pb::ResponseHeader {
        cluster_id: INFO.cluster_id,
        member_id: INFO.member_id,
        revision: rev,
        raft_term: INFO.raft_term,
    }
}

/// The JSON of `header(rev)`.
fn h(rev: i64) -> String {
    format!(
        r#""header":{{"cluster_id":"193","member_id":"29","revision":"{rev}","raft_term":"2"}}"#
    )
}

/// A watch that answers its first create request with `created`, then,
/// each time the test pokes `go`, one event (a put, then a delete) on the
/// key. A create for key `bad` fails the stream at once. When the request
/// stream ends (the HTTP client left), it reports on `closed`.
struct TestWatch {
    go: Arc<Notify>,
    closed: Mutex<Option<oneshot::Sender<()>>>,
}

#[tonic::async_trait]
impl Watch for TestWatch {
    type WatchStream = ReceiverStream<Result<pb::WatchResponse, Status>>;

    async fn watch(
        &self,
        req: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let mut input = req.into_inner();
        let (tx, rx) = mpsc::channel(4);
        let go = self.go.clone();
        let closed = self.closed.lock().unwrap().take();
        tokio::spawn(async move {
            let Ok(Some(first)) = input.message().await else {
                return;
            };
            let Some(pb::watch_request::RequestUnion::CreateRequest(c)) = first.request_union
            else {
                return;
            };
            if c.key == b"bad" {
                let _ = tx
                    .send(Err(Status::invalid_argument("etcdserver: bad watch")))
                    .await;
                return;
            }
            let created = pb::WatchResponse {
                header: Some(header(5)),
                created: true,
                ..Default::default()
            };
            let _ = tx.send(Ok(created)).await;
            go.notified().await;
            let put = mvccpb::Event {
                r#type: mvccpb::event::EventType::Put as i32,
                kv: Some(mvccpb::KeyValue {
                    key: c.key.clone(),
                    create_revision: 2,
                    mod_revision: 6,
                    version: 3,
                    value: b"1".to_vec(),
                    lease: 0,
                }),
                prev_kv: None,
            };
            let _ = tx
                .send(Ok(pb::WatchResponse {
                    header: Some(header(6)),
                    events: vec![put],
                    ..Default::default()
                }))
                .await;
            go.notified().await;
            let del = mvccpb::Event {
                r#type: mvccpb::event::EventType::Delete as i32,
                kv: Some(mvccpb::KeyValue {
                    key: c.key,
                    mod_revision: 7,
                    ..Default::default()
                }),
                prev_kv: None,
            };
            let _ = tx
                .send(Ok(pb::WatchResponse {
                    header: Some(header(7)),
                    events: vec![del],
                    ..Default::default()
                }))
                .await;
            // The request side stays open while the HTTP client is there.
            while let Ok(Some(_)) = input.message().await {}
            if let Some(c) = closed {
                let _ = c.send(());
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Grant echoes the asked id and TTL; keepalive answers each request with
/// TTL 60; the rest is not implemented.
struct TestLease;

#[tonic::async_trait]
impl Lease for TestLease {
    type LeaseKeepAliveStream = ReceiverStream<Result<pb::LeaseKeepAliveResponse, Status>>;

    async fn lease_grant(
        &self,
        req: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        let r = req.into_inner();
        Ok(Response::new(pb::LeaseGrantResponse {
            header: Some(header(5)),
            id: r.id,
            ttl: r.ttl,
            error: String::new(),
        }))
    }

    async fn lease_revoke(
        &self,
        _req: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        Err(Status::not_found("etcdserver: requested lease not found"))
    }

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut input = req.into_inner();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            while let Ok(Some(r)) = input.message().await {
                let resp = pb::LeaseKeepAliveResponse {
                    header: Some(header(5)),
                    id: r.id,
                    ttl: 60,
                };
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn lease_time_to_live(
        &self,
        _req: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        Err(Status::unimplemented("not here"))
    }

    async fn lease_leases(
        &self,
        _req: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        Err(Status::unimplemented("not here"))
    }
}

struct Served {
    addr: SocketAddr,
    go: Arc<Notify>,
    closed: oneshot::Receiver<()>,
}

/// KV, Watch and Lease over gRPC and the gateway, on one port.
async fn serve() -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let node = Arc::new(StoreDouble::new());
    let kv = Arc::new(KvShim::new(node, 2));
    let go = Arc::new(Notify::new());
    let (closed_tx, closed) = oneshot::channel();
    let watch = Arc::new(TestWatch {
        go: go.clone(),
        closed: Mutex::new(Some(closed_tx)),
    });
    let lease = Arc::new(TestLease);
    let metrics = Metrics::new();

    let mut grpc = tonic::service::Routes::builder();
    grpc.add_service(pb::kv_server::KvServer::from_arc(kv.clone()))
        .add_service(WatchServer::from_arc(watch.clone()))
        .add_service(LeaseServer::from_arc(lease.clone()));
    let gateway = Gateway::new(
        Versions {
            server: "3.5.1".into(),
            cluster: "3.5.0".into(),
        },
        metrics.clone(),
    )
    .kv(kv)
    .watch(watch)
    .lease(lease);
    let router = client_router(grpc.routes(), gateway);
    tokio::spawn(async move {
        serve_client(listener, router, &metrics, std::future::pending())
            .await
            .unwrap();
    });
    Served { addr, go, closed }
}

type Resp = http::Response<hyper::body::Incoming>;

/// One HTTP/1.1 request on a fresh connection.
async fn send(addr: SocketAddr, method: &str, path: &str, body: &str) -> Resp {
    send_on_conn(addr, method, path, body).await.0
}

/// Also hands back the connection's task: aborting it closes the socket.
async fn send_on_conn(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> (Resp, tokio::task::JoinHandle<()>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let resp = timeout(LIMIT, tx.send_request(req)).await.unwrap().unwrap();
    (resp, conn)
}

/// Status, content type and whole body.
async fn call(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String, String) {
    let r = send(addr, method, path, body).await;
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = timeout(LIMIT, r.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    (status, ct, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, String) {
    let (status, ct, body) = call(addr, "POST", path, body).await;
    assert_eq!(ct, "application/json", "{path} {body}");
    (status, body)
}

/// Reads a streamed body line by line.
struct LineReader {
    body: hyper::body::Incoming,
    buf: Vec<u8>,
}

impl LineReader {
    async fn line(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let rest = self.buf.split_off(i + 1);
                let line = std::mem::replace(&mut self.buf, rest);
                return String::from_utf8(line).unwrap();
            }
            let frame = timeout(LIMIT, self.body.frame())
                .await
                .expect("a line in time")
                .expect("the stream goes on")
                .unwrap();
            if let Ok(data) = frame.into_data() {
                self.buf.extend_from_slice(&data);
            }
        }
    }
}

const KEY_NOT_PROVIDED: &str = r#"{"error":"etcdserver: key is not provided","code":3,"message":"etcdserver: key is not provided"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_over_json_as_etcd_3_5_1() {
    let s = serve().await;
    let a = s.addr;

    assert_eq!(
        post(a, "/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#).await,
        (200, format!("{{{}}}", h(2)))
    );
    assert_eq!(
        post(
            a,
            "/v3/kv/put",
            r#"{"key":"Zm9v","value":"YmF6","prev_kv":true}"#
        )
        .await,
        (
            200,
            format!(
                r#"{{{},"prev_kv":{{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}}}}"#,
                h(3)
            )
        )
    );
    let foo =
        r#"{"key":"Zm9v","create_revision":"2","mod_revision":"3","version":"2","value":"YmF6"}"#;
    assert_eq!(
        post(a, "/v3/kv/range", r#"{"key":"Zm9v"}"#).await,
        (200, format!(r#"{{{},"kvs":[{foo}],"count":"1"}}"#, h(3)))
    );
    // lowerCamelCase input, enums by name and by number, unknown fields.
    assert_eq!(
        post(
            a,
            "/v3/kv/range",
            r#"{"key":"Zm9v","countOnly":true,"sort_order":"DESCEND","sortTarget":2,"bogus":1}"#
        )
        .await,
        (200, format!(r#"{{{},"count":"1"}}"#, h(3)))
    );
    assert_eq!(
        post(a, "/v3/kv/range", r#"{"key":"bm9uZQ=="}"#).await,
        (200, format!("{{{}}}", h(3)))
    );

    // Errors: etcd 3.5.1's statuses and bodies.
    assert_eq!(
        post(a, "/v3/kv/put", r#"{"key":"","value":"YmFy"}"#).await,
        (400, KEY_NOT_PROVIDED.to_owned())
    );
    assert_eq!(
        post(a, "/v3/kv/range", "").await,
        (400, KEY_NOT_PROVIDED.to_owned())
    );
    assert_eq!(
        post(a, "/v3/kv/range", r#"{"key":"Zm9v","revision":"99"}"#).await,
        (
            400,
            r#"{"error":"etcdserver: mvcc: required revision is a future revision","code":11,"message":"etcdserver: mvcc: required revision is a future revision"}"#.to_owned()
        )
    );
    let (status, body) = post(a, "/v3/kv/put", "notjson").await;
    assert_eq!(status, 400);
    assert!(
        body.starts_with(r#"{"error":""#) && body.contains(r#","code":3,"#),
        "{body}"
    );

    let txn = r#"{"compare":[{"key":"Zm9v","result":"EQUAL","target":"VALUE","value":"YmF6"}],"success":[{"request_put":{"key":"YQ==","value":"MQ=="}},{"request_range":{"key":"Zm9v"}}],"failure":[]}"#;
    assert_eq!(
        post(a, "/v3/kv/txn", txn).await,
        (
            200,
            format!(
                r#"{{{},"succeeded":true,"responses":[{{"response_put":{{"header":{{"revision":"4"}}}}}},{{"response_range":{{"header":{{"revision":"4"}},"kvs":[{foo}],"count":"1"}}}}]}}"#,
                h(4)
            )
        )
    );
    assert_eq!(
        post(a, "/v3/kv/deleterange", r#"{"key":"YQ==","prev_kv":true}"#).await,
        (
            200,
            format!(
                r#"{{{},"deleted":"1","prev_kvs":[{{"key":"YQ==","create_revision":"4","mod_revision":"4","version":"1","value":"MQ=="}}]}}"#,
                h(5)
            )
        )
    );
    assert_eq!(
        post(a, "/v3/kv/compaction", r#"{"revision":"3"}"#).await,
        (200, format!("{{{}}}", h(5)))
    );
    assert_eq!(
        post(a, "/v3/kv/range", r#"{"key":"Zm9v","revision":"2"}"#).await,
        (
            400,
            r#"{"error":"etcdserver: mvcc: required revision has been compacted","code":11,"message":"etcdserver: mvcc: required revision has been compacted"}"#.to_owned()
        )
    );
    // The 3.3-era prefix still works, as in etcd 3.5.
    assert_eq!(
        post(a, "/v3beta/kv/range", r#"{"key":"Zm9v"}"#).await,
        (200, format!(r#"{{{},"kvs":[{foo}],"count":"1"}}"#, h(5)))
    );
    // The success header etcd's gateway copies from gRPC.
    let r = send(a, "POST", "/v3/kv/range", r#"{"key":"Zm9v"}"#).await;
    assert_eq!(
        r.headers()["grpc-metadata-content-type"],
        "application/grpc"
    );
    assert_eq!(call(a, "GET", "/v3/kv/range", "").await.0, 405);
    assert_eq!(
        call(a, "POST", "/v3/kv/nope", "{}").await,
        (
            404,
            "text/plain; charset=utf-8".into(),
            "Not Found\n".into()
        )
    );
}

/// One port answers a tonic client (HTTP/2) and plain HTTP/1.1, and both
/// kinds of call land in `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_http1_on_one_port_with_metrics() {
    let s = serve().await;
    let a = s.addr;
    let mut c = timeout(LIMIT, KvClient::connect(format!("http://{a}")))
        .await
        .unwrap()
        .unwrap();
    let put = pb::PutRequest {
        key: b"foo".to_vec(),
        value: b"bar".to_vec(),
        ..Default::default()
    };
    let r = timeout(LIMIT, c.put(put)).await.unwrap().unwrap();
    assert_eq!(r.into_inner().header, Some(header(2)));
    let e = timeout(LIMIT, c.put(pb::PutRequest::default()))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.message(), "etcdserver: key is not provided");

    // The gateway sees the gRPC client's write.
    assert_eq!(
        post(a, "/v3/kv/range", r#"{"key":"Zm9v","keys_only":true}"#).await,
        (
            200,
            format!(
                r#"{{{},"kvs":[{{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1"}}],"count":"1"}}"#,
                h(2)
            )
        )
    );

    assert_eq!(
        call(a, "GET", "/health", "").await,
        (
            200,
            "text/plain; charset=utf-8".into(),
            r#"{"health":"true","reason":""}"#.into()
        )
    );
    assert_eq!(
        call(a, "GET", "/version", "").await,
        (
            200,
            "application/json".into(),
            r#"{"etcdserver":"3.5.1","etcdcluster":"3.5.0"}"#.into()
        )
    );

    let (status, ct, text) = call(a, "GET", "/metrics", "").await;
    assert_eq!((status, ct.as_str()), (200, Metrics::CONTENT_TYPE));
    let value = |series: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .to_owned()
    };
    // Counted by the tower layer (gRPC) ...
    assert_eq!(
        value(
            r#"grpc_server_handled_total{grpc_code="OK",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"}"#
        ),
        "1"
    );
    assert_eq!(
        value(
            r#"grpc_server_handled_total{grpc_code="InvalidArgument",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"}"#
        ),
        "1"
    );
    // ... and by the gateway.
    assert_eq!(
        value(
            r#"grpc_server_handled_total{grpc_code="OK",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"}"#
        ),
        "1"
    );
    assert_eq!(
        value(
            r#"grpc_server_handling_seconds_count{grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"}"#
        ),
        "2"
    );
    assert_eq!(value("etcd_server_has_leader"), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_result_lines() {
    let s = serve().await;
    let (r, conn) = send_on_conn(
        s.addr,
        "POST",
        "/v3/watch",
        r#"{"create_request":{"key":"Zm9v","prev_kv":true}}"#,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let mut lines = LineReader {
        body: r.into_body(),
        buf: Vec::new(),
    };
    assert_eq!(
        lines.line().await,
        format!("{{\"result\":{{{},\"created\":true}}}}\n", h(5))
    );
    // Each event arrives while the response is still open.
    s.go.notify_one();
    assert_eq!(
        lines.line().await,
        format!(
            "{{\"result\":{{{},\"events\":[{{\"kv\":{{\"key\":\"Zm9v\",\"create_revision\":\"2\",\"mod_revision\":\"6\",\"version\":\"3\",\"value\":\"MQ==\"}}}}]}}}}\n",
            h(6)
        )
    );
    s.go.notify_one();
    assert_eq!(
        lines.line().await,
        format!(
            "{{\"result\":{{{},\"events\":[{{\"type\":\"DELETE\",\"kv\":{{\"key\":\"Zm9v\",\"mod_revision\":\"7\"}}}}]}}}}\n",
            h(7)
        )
    );
    // The client leaves: the watch's request stream ends with it.
    drop(lines);
    conn.abort();
    timeout(LIMIT, s.closed).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_errors() {
    let s = serve().await;
    // A stream that fails before its first message: the error's status and
    // grpc-gateway's stream error object.
    assert_eq!(
        post(s.addr, "/v3/watch", r#"{"create_request":{"key":"YmFk"}}"#).await,
        (
            400,
            "{\"error\":{\"grpc_code\":3,\"http_code\":400,\"message\":\"etcdserver: bad watch\",\"http_status\":\"Bad Request\"}}\n".into()
        )
    );
    // A body that is not JSON: etcd 3.5.1 answers 500 with code 2 here.
    let (status, body) = post(s.addr, "/v3/watch", "xx").await;
    assert_eq!(status, 500);
    assert!(body.contains(r#","code":2,"#), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_grant_keepalive_and_errors() {
    let s = serve().await;
    assert_eq!(
        post(s.addr, "/v3/lease/grant", r#"{"TTL":"60","ID":"1234"}"#).await,
        (200, format!(r#"{{{},"ID":"1234","TTL":"60"}}"#, h(5)))
    );
    // One answer per request, then the answer ends.
    assert_eq!(
        post(s.addr, "/v3/lease/keepalive", r#"{"ID":"77"} {"ID":"78"}"#).await,
        (
            200,
            format!(
                "{{\"result\":{{{0},\"ID\":\"77\",\"TTL\":\"60\"}}}}\n{{\"result\":{{{0},\"ID\":\"78\",\"TTL\":\"60\"}}}}\n",
                h(5)
            )
        )
    );
    // etcd 3.5.1: 404 for an unknown lease; also under /v3/kv/lease.
    let nf = r#"{"error":"etcdserver: requested lease not found","code":5,"message":"etcdserver: requested lease not found"}"#;
    assert_eq!(
        post(s.addr, "/v3/lease/revoke", r#"{"ID":"1234"}"#).await,
        (404, nf.to_owned())
    );
    assert_eq!(
        post(s.addr, "/v3/kv/lease/revoke", r#"{"ID":"1234"}"#).await,
        (404, nf.to_owned())
    );
    assert_eq!(
        post(s.addr, "/v3/lease/leases", "{}").await,
        (
            501,
            r#"{"error":"not here","code":12,"message":"not here"}"#.to_owned()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unhealthy_health() {
    let gw = Gateway::new(
        Versions {
            server: "3.5.1".into(),
            cluster: "3.5.0".into(),
        },
        Metrics::new(),
    )
    .health(Arc::new(|| Err("RAFT NO LEADER".to_owned())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics = Metrics::new();
    let router = client_router(tonic::service::Routes::default(), gw);
    tokio::spawn(async move {
        serve_client(listener, router, &metrics, std::future::pending())
            .await
            .unwrap();
    });
    assert_eq!(
        call(addr, "GET", "/health", "").await,
        (
            503,
            "text/plain; charset=utf-8".into(),
            r#"{"health":"false","reason":"RAFT NO LEADER"}"#.into()
        )
    );
}
