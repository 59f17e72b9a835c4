//! Issue 18: a 2 MiB put answered `OUT_OF_RANGE "decoded message length
//! too large"` (etcd 3.5.1: `RESOURCE_EXHAUSTED "grpc: received message
//! larger than max (N vs. M)"`), and a request whose body ends inside a
//! message answered `INTERNAL` (etcd: `UNKNOWN "unexpected EOF"`). Fix:
//! request bodies are read as grpc-go reads them (`net/src/frames.rs`).
//!
//! Every case sends the same raw HTTP/2 request (an `h2` client, so the
//! framing can be broken on purpose) to ferrocd and to etcd 3.5.1
//! (`$ETCD_BIN`, required) side by side, and requires the same
//! `grpc-status` and (percent-decoded) `grpc-message`, and etcd's answer
//! as recorded here.

#[path = "../common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Server, etcd_35, tempdir};
use tonic::codegen::Bytes;
use tonic::codegen::http;

/// etcd's receive limit with the default `--max-request-bytes` (1.5 MiB)
/// plus its 512 KiB of gRPC overhead.
const LIMIT: usize = 1_572_864 + 512 * 1024;
/// The bound on one call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A gRPC message: the 5-byte prefix (uncompressed, `declared` or the real
/// length) and `msg`.
fn frame(msg: &[u8], declared: Option<usize>) -> Vec<u8> {
    let len = declared.unwrap_or(msg.len()) as u32;
    let mut v = vec![0u8];
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(msg);
    v
}

/// A protobuf length-delimited field.
fn field(tag: u8, bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let mut n = bytes.len();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            v.push(b);
            break;
        }
        v.push(b | 0x80);
    }
    v.extend_from_slice(bytes);
    v
}

/// `PutRequest { key, value }`.
fn put(key: &[u8], value: &[u8]) -> Vec<u8> {
    [field(0x0a, key), field(0x12, value)].concat()
}

/// `%XX` decoded, as gRPC clients read `grpc-message`.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(x) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(x);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("utf-8 message")
}

/// One call: `body` sent and the stream ended; the `grpc-status` and
/// decoded `grpc-message`, from the headers (trailers-only answer) or the
/// trailers.
async fn call(port: u16, path: &str, body: Vec<u8>) -> (String, String) {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (client, conn) = h2::client::Builder::new()
        .initial_window_size(1 << 30)
        .initial_connection_window_size(1 << 30)
        .handshake::<_, Bytes>(tcp)
        .await
        .expect("h2 handshake");
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut client = client.ready().await.expect("h2 ready");
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("http://127.0.0.1:{port}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request");
    let (resp, mut send) = client.send_request(req, false).expect("send request");
    // h2 buffers what the window does not take yet; a server that answers
    // early resets the stream, so a failed send is fine.
    let _ = send.send_data(Bytes::from(body), true);
    let resp = resp.await.expect("response headers");
    let (parts, mut body) = resp.into_parts();
    let pick = |h: &http::HeaderMap| {
        h.get("grpc-status").map(|s| {
            let msg = h
                .get("grpc-message")
                .map(|m| percent_decode(m.to_str().expect("ascii")))
                .unwrap_or_default();
            (s.to_str().expect("ascii").to_string(), msg)
        })
    };
    let out = match pick(&parts.headers) {
        Some(r) => r,
        None => {
            while let Some(chunk) = body.data().await {
                let c = chunk.expect("response data");
                let _ = body.flow_control().release_capacity(c.len());
            }
            let trailers = body
                .trailers()
                .await
                .expect("trailers")
                .expect("a gRPC answer ends with trailers");
            pick(&trailers).expect("grpc-status in the trailers")
        }
    };
    driver.abort();
    out
}

#[test]
fn issue_18_bad_framing_answers_as_etcd_3_5_1() {
    let t = tempdir();
    let mut etcd = Server::start_bin(&etcd_35(), &t.path().join("etcd"), &[]);
    let mut ferrocd = Server::start_bin(
        &PathBuf::from(env!("CARGO_BIN_EXE_ferrocd")),
        &t.path().join("ferrocd"),
        &[],
    );
    let kv = "/etcdserverpb.KV/Put";
    let watch = "/etcdserverpb.Watch/Watch";
    let keepalive = "/etcdserverpb.Lease/LeaseKeepAlive";
    let big = |n: usize| frame(&vec![0u8; n], None);
    let too_large = |n: usize| format!("grpc: received message larger than max ({n} vs. {LIMIT})");
    let two_mib_put = put(b"k", &vec![b'x'; 2 << 20]);
    let cases: Vec<(&str, &str, Vec<u8>, &str, String)> = vec![
        ("put", kv, frame(&put(b"k", b"v"), None), "0", String::new()),
        (
            "2 MiB put",
            kv,
            frame(&two_mib_put, None),
            "8",
            too_large(two_mib_put.len()),
        ),
        (
            "one over the limit",
            kv,
            big(LIMIT + 1),
            "8",
            too_large(LIMIT + 1),
        ),
        (
            "3 MiB prefix alone",
            kv,
            frame(&[], Some(3 << 20)),
            "8",
            too_large(3 << 20),
        ),
        (
            "truncated put",
            kv,
            frame(&put(b"k", b"v"), Some(100)),
            "2",
            "unexpected EOF".into(),
        ),
        (
            "truncated prefix",
            kv,
            vec![0, 0, 0],
            "2",
            "unexpected EOF".into(),
        ),
        ("no message", kv, Vec::new(), "2", "EOF".into()),
        (
            "a second message is not read",
            kv,
            [frame(&put(b"k", b"v"), None), vec![0, 0, 0]].concat(),
            "0",
            String::new(),
        ),
        (
            "truncated watch request",
            watch,
            frame(&[0x0a], Some(50)),
            "13",
            "unexpected EOF".into(),
        ),
        (
            "oversized watch request",
            watch,
            frame(&[], Some(3 << 20)),
            "8",
            too_large(3 << 20),
        ),
        (
            "truncated keep-alive",
            keepalive,
            frame(&[0x08, 0x01], Some(9)),
            "13",
            "unexpected EOF".into(),
        ),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut failures = Vec::new();
    for (name, path, body, code, msg) in cases {
        let bounded = |port| {
            let body = body.clone();
            async move {
                tokio::time::timeout(CALL_TIMEOUT, call(port, path, body))
                    .await
                    .unwrap_or_else(|_| panic!("{name}: no answer within {CALL_TIMEOUT:?}"))
            }
        };
        let want = rt.block_on(bounded(etcd.client_port()));
        let got = rt.block_on(bounded(ferrocd.client_port()));
        assert_eq!(
            want,
            (code.to_string(), msg.clone()),
            "{name}: etcd 3.5.1 answers differently from what this test recorded"
        );
        if got != want {
            failures.push(format!("{name}: ferrocd {got:?}, etcd {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    etcd.terminate().expect("etcd stops");
    ferrocd.terminate().expect("ferrocd stops");
}
