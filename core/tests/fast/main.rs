//! The binary protocol and the Rust client against a real ferrocd: the
//! same answers and errors as gRPC, streams, pipelining (thousands of
//! requests in flight on one connection, answered out of order), bad input
//! that closes only its own connection, fail-over between endpoints, a
//! watch that resumes across a restart, and the client's gRPC fallback
//! against a real etcd.

#[path = "../common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Server, tempdir};
use ferrocd_net::client::{
    Client, CompareOp, ConnectOptions, Error, GetOptions, Protocol, PutOptions, Txn, TxnOp,
    WatchOptions,
};
use ferrocd_net::fast::methods::{self as m, Streaming, Unary};
use ferrocd_net::fast::{self, codec};
use ferrocd_net::pb::etcdserverpb as pb;
use tonic::Code;

/// A stream read waits at most this long.
const STEP: Duration = Duration::from_secs(5);

fn fresh() -> (tempfile::TempDir, Server) {
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    (dir, server)
}

async fn client(server: &Server, protocol: Protocol) -> Client {
    let c = Client::connect(
        [server.endpoint()],
        Some(
            ConnectOptions::new()
                .with_protocol(protocol)
                .with_timeout(Duration::from_secs(10)),
        ),
    )
    .await
    .expect("connect");
    assert_eq!(c.protocol().await.unwrap(), protocol);
    c
}

/// `(code, message)` of a failed call.
fn failure<T: std::fmt::Debug>(r: Result<T, Error>) -> (Code, String) {
    let e = r.expect_err("call should fail");
    (e.code(), e.message())
}

/// Drop the header (its revision and term move with every write).
fn strip<T: Clone>(mut msg: T, header: impl FnOnce(&mut T)) -> T {
    header(&mut msg);
    msg
}

#[tokio::test]
async fn both_protocols_give_the_same_answers_and_errors() {
    let (_d, server) = fresh();
    let fast = client(&server, Protocol::Fast).await;
    let grpc = client(&server, Protocol::Grpc).await;

    let p = fast
        .put("a", "1", Some(PutOptions::new().with_prev_key()))
        .await
        .unwrap();
    assert_eq!(p.header.as_ref().unwrap().revision, 2);
    grpc.put("a/b", "2", None).await.unwrap();
    fast.put("a/c", vec![0xff, 0, 1], None).await.unwrap();
    for opts in [
        None,
        Some(GetOptions::new().with_prefix()),
        Some(
            GetOptions::new()
                .with_prefix()
                .with_limit(1)
                .with_keys_only(),
        ),
        Some(GetOptions::new().with_from_key().with_count_only()),
        Some(GetOptions::new().with_prefix().with_revision(3)),
        Some(GetOptions::new().with_prefix().with_serializable()),
    ] {
        let f = fast.get("a", opts.clone()).await.unwrap();
        let g = grpc.get("a", opts.clone()).await.unwrap();
        assert_eq!(f, g, "{opts:?}");
    }
    let txn = || {
        Txn::new()
            .when([ferrocd_net::client::Compare::value(
                "a",
                CompareOp::Equal,
                "1",
            )])
            .and_then([
                TxnOp::put("a", "x", None),
                TxnOp::get("a", Some(GetOptions::new().with_prefix())),
            ])
            .or_else([TxnOp::delete("a/b", None)])
    };
    let t1 = fast.txn(txn()).await.unwrap();
    let t2 = grpc.txn(txn()).await.unwrap();
    assert!(t1.succeeded && !t2.succeeded);

    // Leases and cluster calls.
    let l = fast.lease_grant(30, 0).await.unwrap();
    assert_eq!(l.ttl, 30);
    let f = strip(fast.leases().await.unwrap(), |m| m.header = None);
    let g = strip(grpc.leases().await.unwrap(), |m| m.header = None);
    assert_eq!(f, g);
    let f = fast.lease_time_to_live(l.id, true).await.unwrap();
    assert_eq!(f.granted_ttl, 30);
    let f = strip(fast.member_list().await.unwrap(), |m| m.header = None);
    let g = strip(grpc.member_list().await.unwrap(), |m| m.header = None);
    assert_eq!(f, g);
    let s = fast.status().await.unwrap();
    assert_eq!(s.leader, s.header.unwrap().member_id);
    assert_eq!(
        fast.hash_kv(0).await.unwrap().hash,
        grpc.hash_kv(0).await.unwrap().hash
    );

    // Errors: etcd's code and message, the same on both.
    let big = Txn::new().and_then((0..200).map(|i| TxnOp::put(format!("k{i}"), "v", None)));
    let checks: Vec<(Code, String)> = vec![
        failure(fast.get("", None).await),
        failure(fast.put("", "v", None).await),
        failure(
            fast.get("a", Some(GetOptions::new().with_revision(1000)))
                .await,
        ),
        failure(fast.lease_revoke(0x1234).await),
        failure(fast.txn(big.clone()).await),
        failure(
            fast.put("k", "v", Some(PutOptions::new().with_lease(0x77)))
                .await,
        ),
    ];
    let again: Vec<(Code, String)> = vec![
        failure(grpc.get("", None).await),
        failure(grpc.put("", "v", None).await),
        failure(
            grpc.get("a", Some(GetOptions::new().with_revision(1000)))
                .await,
        ),
        failure(grpc.lease_revoke(0x1234).await),
        failure(grpc.txn(big).await),
        failure(
            grpc.put("k", "v", Some(PutOptions::new().with_lease(0x77)))
                .await,
        ),
    ];
    assert_eq!(checks, again);
    assert_eq!(
        checks[0],
        (
            Code::InvalidArgument,
            "etcdserver: key is not provided".into()
        )
    );
    assert_eq!(
        checks[2],
        (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision".into()
        )
    );
    assert_eq!(
        checks[3],
        (
            Code::NotFound,
            "etcdserver: requested lease not found".into()
        )
    );
    fast.compact(4, true).await.unwrap();
    let old = Some(GetOptions::new().with_revision(2));
    let f = failure(fast.get("a", old.clone()).await);
    assert_eq!(f, failure(grpc.get("a", old).await));
    assert_eq!(
        f,
        (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted".into()
        )
    );
    // The Auth service answers as over gRPC.
    let st = fast
        .call::<m::AuthStatus>(pb::AuthStatusRequest {})
        .await
        .unwrap();
    let g = grpc
        .call::<m::AuthStatus>(pb::AuthStatusRequest {})
        .await
        .unwrap();
    assert_eq!((st.enabled, st.auth_revision), (g.enabled, g.auth_revision));
    assert_eq!((st.enabled, st.auth_revision), (false, 1));

    // The fast path's requests are counted by method and code.
    let (status, metrics) = common::http_get(server.client_port(), "/metrics").unwrap();
    assert_eq!(status, 200);
    for series in [
        r#"ferrocd_fast_requests_total{code="OK",method="/etcdserverpb.KV/Put"} 2"#,
        r#"ferrocd_fast_requests_total{code="InvalidArgument",method="/etcdserverpb.KV/Range"} 1"#,
        r#"ferrocd_fast_requests_total{code="NotFound",method="/etcdserverpb.Lease/LeaseRevoke"} 1"#,
    ] {
        assert!(metrics.contains(series), "{series} not in\n{metrics}");
    }
}

#[tokio::test]
async fn watch_and_keep_alive_streams_inside_the_connection() {
    let (_d, server) = fresh();
    let c = client(&server, Protocol::Fast).await;
    let (mut watcher, mut stream) = c
        .watch(
            "w/",
            Some(WatchOptions::new().with_prefix().with_prev_key()),
        )
        .await
        .unwrap();
    let created = next(&mut stream).await;
    assert!(created.created);
    let id = created.watch_id;
    c.put("w/1", "a", None).await.unwrap();
    c.put("w/1", "b", None).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let r = next(&mut stream).await;
        for ev in r.events {
            let kv = ev.kv.unwrap();
            let prev = ev.prev_kv.map(|p| p.value);
            seen.push((kv.value, prev));
        }
    }
    assert_eq!(
        seen,
        vec![(b"a".to_vec(), None), (b"b".to_vec(), Some(b"a".to_vec()))]
    );
    // A second watch on the same stream, replaying history.
    watcher
        .watch("w/1", Some(WatchOptions::new().with_start_revision(2)))
        .await
        .unwrap();
    let r = next(&mut stream).await;
    assert!(r.created);
    let replay = next(&mut stream).await;
    assert_eq!(replay.events.len(), 2);
    watcher.cancel(id).await.unwrap();
    let r = next(&mut stream).await;
    assert!(r.canceled && r.watch_id == id);
    watcher.request_progress().await.unwrap();
    let r = next(&mut stream).await;
    assert!(r.events.is_empty() && r.header.unwrap().revision == 3);

    // Keep-alive: one stream, many pings; a revoked lease answers TTL 0.
    let lease = c.lease_grant(10, 0).await.unwrap().id;
    let (mut keeper, mut answers) = c.lease_keep_alive(lease).await.unwrap();
    for _ in 0..3 {
        let a = tokio::time::timeout(STEP, answers.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!((a.id, a.ttl), (lease, 10));
        keeper.keep_alive().await.unwrap();
    }
    let handle = c.keep_lease_alive(lease).await.unwrap();
    assert_eq!(handle.ttl(), 10);
    c.lease_revoke(lease).await.unwrap();
    let _ = tokio::time::timeout(STEP, answers.message()).await.unwrap();
    keeper.keep_alive().await.unwrap();
    let a = tokio::time::timeout(STEP, answers.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(a.ttl, 0);
}

async fn next(s: &mut ferrocd_net::client::WatchStream) -> pb::WatchResponse {
    tokio::time::timeout(STEP, s.message())
        .await
        .expect("watch response in time")
        .expect("watch ok")
        .expect("stream open")
}

/// A raw connection: preamble sent and accepted.
fn raw(server: &Server) -> TcpStream {
    let mut s = TcpStream::connect(server.endpoint()).unwrap();
    s.set_read_timeout(Some(STEP)).unwrap();
    s.write_all(&fast::preamble(fast::VERSION, 0)).unwrap();
    let mut pre = [0u8; fast::PREAMBLE];
    s.read_exact(&mut pre).unwrap();
    assert_eq!(
        fast::parse_preamble(&pre),
        Some((fast::VERSION, fast::STATUS_OK))
    );
    s
}

/// Read one frame: (kind, id, payload).
fn read_frame(s: &mut TcpStream) -> std::io::Result<(u8, u64, Vec<u8>)> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    let mut rest = vec![0u8; len];
    s.read_exact(&mut rest)?;
    let id = u64::from_le_bytes(rest[1..9].try_into().unwrap());
    Ok((rest[0], id, rest[9..].to_vec()))
}

/// Whether the server closed `s` (EOF) within the read timeout.
fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1024];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn thousands_in_flight_on_one_connection_answered_out_of_order() {
    let (_d, server) = fresh();
    let mut s = raw(&server);
    const N: u64 = 2000;
    // Puts wait for an fdatasync, serializable reads do not: sent in one
    // write, puts first, the reads' answers overtake them.
    let mut buf = Vec::new();
    for id in 1..=N {
        let (kind, payload) = if id <= N / 2 {
            let req = pb::PutRequest {
                key: format!("p/{id}").into_bytes(),
                value: b"v".to_vec(),
                ..Default::default()
            };
            (m::Put::KIND, codec::encode(&req))
        } else {
            let req = pb::RangeRequest {
                key: b"p/1".to_vec(),
                serializable: true,
                ..Default::default()
            };
            (m::Range::KIND, codec::encode(&req))
        };
        fast::put_frame(&mut buf, kind, id, &payload);
    }
    s.write_all(&buf).unwrap();
    let mut order = Vec::new();
    for _ in 0..N {
        let (kind, id, payload) = read_frame(&mut s).expect("an answer per request");
        if id <= N / 2 {
            assert_eq!(kind, m::Put::KIND | fast::KIND_OK);
            codec::decode::<pb::PutResponse>(&payload).unwrap();
        } else {
            assert_eq!(kind, m::Range::KIND | fast::KIND_OK);
            codec::decode::<pb::RangeResponse>(&payload).unwrap();
        }
        order.push(id);
    }
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=N).collect::<Vec<_>>(), "each id answered once");
    assert_ne!(order, sorted, "answers came back in request order");
    // Every put took effect, each its own revision.
    let r = count_raw(&server, b"p/", b"p0");
    assert_eq!(r.count, (N / 2) as i64);
    assert_eq!(r.header.unwrap().revision, 1 + (N / 2) as i64);
}

/// A count-only range of `key..end` over a raw connection of its own.
fn count_raw(server: &Server, key: &[u8], end: &[u8]) -> pb::RangeResponse {
    let mut c = raw(server);
    let req = pb::RangeRequest {
        key: key.to_vec(),
        range_end: end.to_vec(),
        count_only: true,
        ..Default::default()
    };
    let mut f = Vec::new();
    fast::put_frame(&mut f, m::Range::KIND, 7, &codec::encode(&req));
    c.write_all(&f).unwrap();
    let (kind, id, payload) = read_frame(&mut c).unwrap();
    assert_eq!((kind, id), (m::Range::KIND | fast::KIND_OK, 7));
    codec::decode::<pb::RangeResponse>(&payload).unwrap()
}

#[test]
fn calls_in_flight_when_the_client_stops_sending_are_applied_and_answered() {
    let (_d, server) = fresh();
    let mut s = raw(&server);
    const N: u64 = 300;
    let mut buf = Vec::new();
    for id in 1..=N {
        let req = pb::PutRequest {
            key: format!("h/{id}").into_bytes(),
            value: b"v".to_vec(),
            ..Default::default()
        };
        fast::put_frame(&mut buf, m::Put::KIND, id, &codec::encode(&req));
    }
    // The requests, then the client's end of the stream: the server
    // reads EOF with the puts in flight on the connection's task.
    s.write_all(&buf).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut ids = Vec::new();
    for _ in 0..N {
        let (kind, id, payload) = read_frame(&mut s).expect("an answer per request");
        assert_eq!(kind, m::Put::KIND | fast::KIND_OK);
        codec::decode::<pb::PutResponse>(&payload).unwrap();
        ids.push(id);
    }
    ids.sort_unstable();
    assert_eq!(ids, (1..=N).collect::<Vec<_>>(), "each put answered once");
    assert!(closed(&mut s), "then the server closes the connection");
    let r = count_raw(&server, b"h/", b"h0");
    assert_eq!(r.count, N as i64, "every put applied");
}

#[tokio::test]
async fn many_concurrent_calls_share_one_client_connection() {
    let (_d, server) = fresh();
    let c = client(&server, Protocol::Fast).await;
    let calls = (0..5000).map(|i| {
        let c = c.clone();
        async move {
            if i % 10 == 0 {
                c.put(format!("c/{i}"), "v", None).await.map(|_| ())
            } else {
                c.get("c/0", Some(GetOptions::new().with_serializable()))
                    .await
                    .map(|_| ())
            }
        }
    });
    let results = futures_util::future::join_all(calls).await;
    assert!(results.iter().all(Result::is_ok));
    let n = c
        .get(
            "c/",
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .unwrap()
        .count;
    assert_eq!(n, 500);
}

#[tokio::test]
async fn bad_input_closes_only_its_own_connection() {
    let (_d, server) = fresh();
    let c = client(&server, Protocol::Fast).await;
    let (_watcher, mut stream) = c.watch("x", None).await.unwrap();
    assert!(next(&mut stream).await.created);

    // A frame length below the header size.
    let mut s = raw(&server);
    s.write_all(&5u32.to_le_bytes()).unwrap();
    s.write_all(&[1; 5]).unwrap();
    assert!(closed(&mut s), "short frame");
    // A payload that does not validate as its message.
    let mut s = raw(&server);
    let mut f = Vec::new();
    fast::put_frame(&mut f, m::Range::KIND, 1, &[0xff; 64]);
    s.write_all(&f).unwrap();
    assert!(closed(&mut s), "garbage payload");
    // An unknown kind.
    let mut s = raw(&server);
    let mut f = Vec::new();
    fast::put_frame(&mut f, 99, 1, &[]);
    s.write_all(&f).unwrap();
    assert!(closed(&mut s), "unknown kind");
    // An oversized frame: told why (ResourceExhausted), then closed.
    let mut s = raw(&server);
    let mut f = Vec::new();
    f.extend_from_slice(&(64u32 << 20).to_le_bytes());
    f.push(m::Put::KIND);
    f.extend_from_slice(&9u64.to_le_bytes());
    s.write_all(&f).unwrap();
    let (kind, id, payload) = read_frame(&mut s).unwrap();
    assert_eq!((kind, id), (fast::KIND_ERR, 9));
    let st = codec::decode::<fast::ErrorReply>(&payload)
        .unwrap()
        .into_status();
    assert_eq!(st.code(), Code::ResourceExhausted);
    assert!(closed(&mut s), "oversized frame");
    // An unknown protocol version: refused in the preamble.
    let mut s = TcpStream::connect(server.endpoint()).unwrap();
    s.set_read_timeout(Some(STEP)).unwrap();
    s.write_all(&fast::preamble(99, 0)).unwrap();
    let mut pre = [0u8; fast::PREAMBLE];
    s.read_exact(&mut pre).unwrap();
    assert_eq!(
        fast::parse_preamble(&pre),
        Some((fast::VERSION, fast::STATUS_BAD_VERSION))
    );
    assert!(closed(&mut s), "bad version");
    // A client killed in the middle of a stream (half a frame, then gone).
    let mut s = raw(&server);
    let open = pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
            pb::WatchCreateRequest {
                key: b"x".to_vec(),
                ..Default::default()
            },
        )),
    };
    let mut f = Vec::new();
    fast::put_frame(&mut f, m::Watch::KIND, 1, &codec::encode(&open));
    s.write_all(&f).unwrap();
    let (kind, _, _) = read_frame(&mut s).unwrap();
    assert_eq!(kind, m::Watch::KIND | fast::KIND_OK);
    s.write_all(&f[..f.len() / 2]).unwrap();
    drop(s);

    // Everybody else carries on.
    c.put("x", "still here", None).await.unwrap();
    let r = next(&mut stream).await;
    assert_eq!(r.events[0].kv.as_ref().unwrap().value, b"still here");
    assert_eq!(c.get("x", None).await.unwrap().count, 1);
}

#[tokio::test]
async fn fails_over_to_the_next_endpoint_and_resumes_a_watch() {
    let (_d, mut server) = fresh();
    // The first endpoint is dead: the client dials the next one.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_ep = dead.local_addr().unwrap().to_string();
    drop(dead);
    let c = Client::connect(
        [dead_ep, server.endpoint()],
        Some(
            ConnectOptions::new()
                .with_protocol(Protocol::Fast)
                .with_dial_timeout(Duration::from_millis(500))
                .with_timeout(Duration::from_secs(20)),
        ),
    )
    .await
    .unwrap();
    assert_eq!(c.current_endpoint().await, server.endpoint());

    let mut w = c.watch_resuming("r", None).await.unwrap();
    c.put("r", "1", None).await.unwrap();
    let first = tokio::time::timeout(STEP, w.message())
        .await
        .unwrap()
        .unwrap();
    let rev1 = first.events[0].kv.as_ref().unwrap().mod_revision;

    server.terminate().unwrap();
    server.restart();
    // The connection is gone: the next call reconnects (an idempotent read
    // is retried by the client itself).
    assert_eq!(c.get("r", None).await.unwrap().kvs[0].value, b"1");
    c.put("r", "2", None).await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(15), w.message())
        .await
        .unwrap()
        .unwrap();
    let kv = second.events[0].kv.as_ref().unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.mod_revision),
        (&b"2"[..], rev1 + 1)
    );
}

#[tokio::test]
async fn auto_protocol_falls_back_to_grpc_on_etcd() {
    let Some(etcd) = common::etcd_bin() else {
        return;
    };
    let dir = tempdir();
    let server = Server::start_bin(&etcd, &dir.path().join("etcd"), &[]);
    let c = Client::connect([server.endpoint()], None).await.unwrap();
    assert_eq!(c.protocol().await.unwrap(), Protocol::Grpc);
    c.put("k", "v", None).await.unwrap();
    assert_eq!(c.get("k", None).await.unwrap().kvs[0].value, b"v");
    let (_w, mut s) = c.watch("k", None).await.unwrap();
    assert!(next(&mut s).await.created);
    let e = Client::connect(
        [server.endpoint()],
        Some(ConnectOptions::new().with_protocol(Protocol::Fast)),
    )
    .await
    .unwrap_err();
    assert!(
        e.message().contains("does not speak the fast protocol"),
        "{e}"
    );
}

/// The method table is the wire format: kinds and paths pinned.
#[test]
fn method_kinds_are_pinned() {
    use ferrocd_net::fast::methods::{STREAM_KINDS, UNARY_KINDS};
    for pinned in [
        (1, "/etcdserverpb.KV/Range"),
        (2, "/etcdserverpb.KV/Put"),
        (4, "/etcdserverpb.KV/Txn"),
        (10, "/etcdserverpb.Lease/LeaseGrant"),
        (31, "/etcdserverpb.Maintenance/Status"),
        (70, "/v3lockpb.Lock/Lock"),
    ] {
        assert!(UNARY_KINDS.contains(&pinned), "{pinned:?}");
    }
    assert!(STREAM_KINDS.contains(&(100, "/etcdserverpb.Watch/Watch")));
    assert!(STREAM_KINDS.contains(&(101, "/etcdserverpb.Lease/LeaseKeepAlive")));
    assert_eq!(UNARY_KINDS.len(), 44);
}

/// A fake member on the first endpoint takes the fast handshake, reads one
/// request and drops the connection: the request may have been applied.
/// A write is then not resent (its outcome is unknown, the caller hears
/// so); a read is resent to the next member.
#[tokio::test]
async fn writes_are_not_resent_once_they_may_have_arrived_reads_are() {
    let (_d, server) = fresh();
    let fake = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake_ep = fake.local_addr().unwrap().to_string();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let (mut s, _) = fake.accept().await.unwrap();
            let log = log.clone();
            tokio::spawn(async move {
                let mut pre = [0u8; fast::PREAMBLE];
                s.read_exact(&mut pre).await.unwrap();
                s.write_all(&fast::preamble(fast::VERSION, fast::STATUS_OK))
                    .await
                    .unwrap();
                let mut head = [0u8; 13];
                if s.read_exact(&mut head).await.is_ok() {
                    log.lock().unwrap().push(head[4]);
                }
            });
        }
    });
    let opts = || {
        Some(
            ConnectOptions::new()
                .with_protocol(Protocol::Fast)
                .with_timeout(Duration::from_secs(10)),
        )
    };
    let c = Client::connect([fake_ep.clone(), server.endpoint()], opts())
        .await
        .unwrap();
    assert_eq!(c.current_endpoint().await, fake_ep);
    let e = c.put("w", "1", None).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e}");
    let real = client(&server, Protocol::Grpc).await;
    assert_eq!(real.get("w", None).await.unwrap().count, 0, "put resent");

    let c = Client::connect([fake_ep, server.endpoint()], opts())
        .await
        .unwrap();
    assert_eq!(c.get("w", None).await.unwrap().count, 0);
    assert_eq!(c.current_endpoint().await, server.endpoint());
    assert_eq!(*seen.lock().unwrap(), vec![m::Put::KIND, m::Range::KIND]);
}

#[tokio::test]
async fn a_pool_spreads_calls_over_its_connections() {
    let (_d, server) = fresh();
    let c = Client::connect(
        [server.endpoint()],
        Some(
            ConnectOptions::new()
                .with_protocol(Protocol::Fast)
                .with_connections(4),
        ),
    )
    .await
    .unwrap();
    let calls = (0..400).map(|i| {
        let c = c.clone();
        async move { c.put(format!("pool/{i}"), "v", None).await }
    });
    for r in futures_util::future::join_all(calls).await {
        r.unwrap();
    }
    // Exactly four established connections reach the client port.
    let port = format!(":{:04X} ", server.client_port());
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let n = tcp
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && format!("{} ", &f[1][f[1].len() - 5..]) == port && f[3] == "01"
        })
        .count();
    assert_eq!(n, 4, "connections to the client port");
    assert_eq!(
        c.get(
            "pool/",
            Some(GetOptions::new().with_prefix().with_count_only())
        )
        .await
        .unwrap()
        .count,
        400
    );
}
