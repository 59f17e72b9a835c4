//! The KV shim over a store-backed test double (one `mvcc::Store`, no
//! raft: the double stands in for the node so the wire layer can be tested
//! alone), served on a loopback port and driven by our generated client and
//! by etcdctl 3.5: field mapping, headers, request checks and etcd's error
//! codes and messages.

#[path = "common/store_double.rs"]
mod store_double;

use std::net::SocketAddr;
use std::sync::Arc;

use ferrocd_net::KvShim;
use ferrocd_net::pb::etcdserverpb as pb;
use ferrocd_net::pb::etcdserverpb::kv_client::KvClient;
use store_double::StoreDouble;
use tonic::Code;

async fn serve() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let node = Arc::new(StoreDouble::new());
    let svc = KvShim::new(node, 2).into_server();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    addr
}

fn put(k: &str, v: &str) -> pb::PutRequest {
    pb::PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_over_grpc() {
    let addr = serve().await;
    let mut c = KvClient::connect(format!("http://{addr}")).await.unwrap();

    let r = c.put(put("a", "1")).await.unwrap().into_inner();
    let h = r.header.unwrap();
    assert_eq!(
        (h.cluster_id, h.member_id, h.revision, h.raft_term),
        (0xc1, 0x1d, 2, 2)
    );
    let mut p = put("a", "2");
    p.prev_kv = true;
    let r = c.put(p).await.unwrap().into_inner();
    assert_eq!(r.prev_kv.unwrap().value, b"1");
    c.put(put("b", "3")).await.unwrap();

    let r = c
        .range(pb::RangeRequest {
            key: b"a".to_vec(),
            range_end: b"c".to_vec(),
            limit: 1,
            sort_order: 2, // DESCEND
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.kvs.len(), r.count, r.more), (1, 2, true));
    assert_eq!(r.kvs[0].key, b"b");
    assert_eq!(r.header.unwrap().revision, 4);

    // Txn: the inner response headers carry only the revision; a nested
    // txn's header is empty (as etcd 3.5's gateway shows).
    let t = pb::TxnRequest {
        compare: vec![pb::Compare {
            result: 0,
            target: 3,
            key: b"a".to_vec(),
            target_union: Some(pb::compare::TargetUnion::Value(b"2".to_vec())),
            ..Default::default()
        }],
        success: vec![
            pb::RequestOp {
                request: Some(pb::request_op::Request::RequestPut(put("c", "4"))),
            },
            pb::RequestOp {
                request: Some(pb::request_op::Request::RequestTxn(
                    pb::TxnRequest::default(),
                )),
            },
        ],
        failure: vec![],
    };
    let r = c.txn(t).await.unwrap().into_inner();
    assert!(r.succeeded);
    assert_eq!(r.header.unwrap().member_id, 0x1d);
    match &r.responses[0].response {
        Some(pb::response_op::Response::ResponsePut(p)) => {
            assert_eq!(
                p.header,
                Some(pb::ResponseHeader {
                    revision: 5,
                    ..Default::default()
                })
            );
        }
        other => panic!("{other:?}"),
    }
    match &r.responses[1].response {
        Some(pb::response_op::Response::ResponseTxn(t)) => {
            assert_eq!(t.header, Some(pb::ResponseHeader::default()));
        }
        other => panic!("{other:?}"),
    }

    // Errors: etcd's codes and messages.
    let e = c.put(put("", "x")).await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "etcdserver: key is not provided")
    );
    let mut p = put("a", "x");
    p.ignore_value = true;
    let e = c.put(p).await.unwrap_err();
    assert_eq!(e.message(), "etcdserver: value is provided");
    let e = c
        .range(pb::RangeRequest {
            key: b"a".to_vec(),
            revision: 99,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision"
        )
    );
    let three = vec![
        pb::RequestOp {
            request: Some(pb::request_op::Request::RequestPut(put("x", "1"))),
        };
        3
    ];
    let e = c
        .txn(pb::TxnRequest {
            success: three,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request"
        )
    );
    c.compact(pb::CompactionRequest {
        revision: 3,
        physical: true,
    })
    .await
    .unwrap();
    let e = c
        .range(pb::RangeRequest {
            key: b"a".to_vec(),
            revision: 2,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted"
        )
    );
    let e = c
        .range(pb::RangeRequest {
            key: b"a".to_vec(),
            sort_order: 7,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.message(), "etcdserver: invalid sort option");
}

/// etcdctl (3.5, from the test command's install) against the shim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_put_get_del() {
    let addr = serve().await;
    let etcdctl = std::env::var_os("ETCD_BIN")
        .map(|b| std::path::PathBuf::from(b).with_file_name("etcdctl"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| "etcdctl".into());
    let run = move |args: &[&str]| {
        let out = std::process::Command::new(&etcdctl)
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={addr}"))
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "etcdctl ({}) not runnable: {e}; scripts/test installs it",
                    etcdctl.display()
                )
            });
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let out = tokio::task::spawn_blocking(move || {
        let put = run(&["put", "foo", "bar"]);
        let get = run(&["get", "foo"]);
        let json = run(&["get", "foo", "-w", "json"]);
        let empty = run(&["put", "", "x"]);
        let del = run(&["del", "foo"]);
        (put, get, json, empty, del)
    })
    .await
    .unwrap();
    let (put, get, json, empty, del) = out;
    assert_eq!((put.0, put.1.as_str()), (Some(0), "OK\n"));
    assert_eq!(get.1, "foo\nbar\n");
    assert!(
        json.1.contains(r#""cluster_id":193"#) && json.1.contains(r#""key":"Zm9v""#),
        "{}",
        json.1
    );
    assert_eq!(empty.0, Some(1));
    assert!(
        empty.2.contains("Error: etcdserver: key is not provided"),
        "{}",
        empty.2
    );
    assert_eq!(del.1, "1\n");
}
