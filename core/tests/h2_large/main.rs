//! Answers larger than every flow-control window the HTTP/2 layer keeps
//! (`net/src/h2`: 16 MiB of answers queued per connection stops its calls
//! from running, never its reading): a 24 MiB Range arrives whole, over
//! one connection that goes on serving calls afterwards; and a snapshot
//! stream of a few hundred MiB (a response body the layer pulls, paused
//! while 256 KiB wait for window) reaches etcdctl whole, its sha256
//! checked by etcdctl itself.

#[path = "../common/mod.rs"]
mod common;

use std::time::Duration;

use ferrocd_net::pb::etcdserverpb::{self as pb, kv_client::KvClient};

const VALUE: usize = 1 << 20;
const KEYS: usize = 24;

#[test]
fn a_range_larger_than_the_queue_limit_arrives_whole() {
    let dir = common::tempdir();
    let server = common::Server::start(&dir.path().join("data"));
    let ep = server.endpoint();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut kv = KvClient::new(common::connect(&ep).await)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(4 << 20);
        for i in 0..KEYS {
            let put = pb::PutRequest {
                key: format!("big/{i:02}").into_bytes(),
                value: vec![b'a' + (i % 26) as u8; VALUE],
                ..Default::default()
            };
            kv.put(put).await.expect("put");
        }
        for round in 0..3 {
            let range = pb::RangeRequest {
                key: b"big/".to_vec(),
                range_end: b"big0".to_vec(),
                ..Default::default()
            };
            let r = tokio::time::timeout(Duration::from_secs(60), kv.range(range))
                .await
                .unwrap_or_else(|_| panic!("round {round}: a 24 MiB range stalled"))
                .expect("range")
                .into_inner();
            assert_eq!(r.count, KEYS as i64, "round {round}");
            assert_eq!(r.kvs.len(), KEYS, "round {round}");
            for (i, kv) in r.kvs.iter().enumerate() {
                assert_eq!(kv.key, format!("big/{i:02}").into_bytes());
                assert_eq!(kv.value.len(), VALUE);
                assert!(kv.value.iter().all(|&b| b == b'a' + (i % 26) as u8));
            }
        }
        // The same connection still answers small calls.
        let small = pb::PutRequest {
            key: b"small".to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        };
        kv.put(small).await.expect("a put after the large answers");
    });
}

/// 200 MiB of values, then `etcdctl snapshot save` (which checks the
/// stream's trailing sha256) and `snapshot status`.
#[test]
fn a_snapshot_of_a_few_hundred_mib_streams_whole() {
    const N: usize = 200;
    let dir = common::tempdir();
    let server = common::Server::start(&dir.path().join("data"));
    let ep = server.endpoint();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut kv = KvClient::new(common::connect(&ep).await).max_encoding_message_size(4 << 20);
        for i in 0..N {
            let put = pb::PutRequest {
                key: format!("snap/{i:03}").into_bytes(),
                value: vec![(i % 251) as u8; VALUE],
                ..Default::default()
            };
            kv.put(put).await.expect("put");
        }
    });
    let file = dir.path().join("snap.db");
    let file = file.to_str().expect("utf-8 path");
    server.ctl(&["snapshot", "save", file]).ok();
    let size = std::fs::metadata(file).expect("snapshot file").len();
    assert!(
        size > (N * VALUE) as u64,
        "a {size}-byte snapshot of {N} MiB"
    );
    let status = server
        .ctl(&["snapshot", "status", file, "-w", "json"])
        .json();
    // totalKey counts every bucket's keys (meta, members, ...) too.
    assert_eq!(status["revision"], N as u64 + 1, "{status}");
    assert!(status["totalKey"].as_u64() >= Some(N as u64), "{status}");
    assert_eq!(status["totalSize"].as_u64(), Some(size - 32), "{status}");
}
