//! Answers larger than every flow-control window the HTTP/2 layer keeps
//! (`net/src/h2`: 16 MiB of answers queued per connection stops its calls
//! from running, never its reading): a 24 MiB Range arrives whole, over
//! one connection that goes on serving calls afterwards.

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
