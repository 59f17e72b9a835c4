//! Replays the fuzz seed corpus (`fuzz/corpus/fast_frame/`) through the
//! binary protocol's decoders as the fuzz target does: frames split as the
//! server splits them, each payload validated as the request of its kind.
//! `valid-*` seeds hold only frames whose payloads validate (and re-encode
//! stably); `bad-payload-*` seeds end in a payload the server refuses (it
//! closes the connection); `bad-frame-*` in a malformed frame header;
//! `short-*` seeds are incomplete. Regenerate with `FERROCD_WRITE_CORPUS=1`.

use std::path::PathBuf;

use ferrocd_net::fast::methods::{self as m, Streaming, Unary, reencode_request};
use ferrocd_net::fast::{codec, put_frame};
use ferrocd_net::pb::etcdserverpb as pb;
use ferrocd_net::peer::{DecodeError, Frame, HEADER};

/// The server's frame limit at etcd's default `--max-request-bytes`.
const LIMIT: usize = (3 << 19) + (512 << 10);

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/fast_frame")
}

fn frame(kind: u8, id: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    put_frame(&mut v, kind, id, payload);
    v
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let range = frame(
        m::Range::KIND,
        1,
        &codec::encode(&pb::RangeRequest {
            key: b"/registry/pods/".to_vec(),
            range_end: b"/registry/pods0".to_vec(),
            limit: 500,
            ..Default::default()
        }),
    );
    let txn = frame(
        m::Txn::KIND,
        2,
        &codec::encode(&pb::TxnRequest {
            compare: vec![pb::Compare {
                key: b"k".to_vec(),
                target: 2,
                target_union: Some(pb::compare::TargetUnion::ModRevision(7)),
                ..Default::default()
            }],
            success: vec![pb::RequestOp {
                request: Some(pb::request_op::Request::RequestTxn(pb::TxnRequest {
                    success: vec![pb::RequestOp {
                        request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                            key: b"k".to_vec(),
                            value: vec![7; 64],
                            ..Default::default()
                        })),
                    }],
                    ..Default::default()
                })),
            }],
            failure: vec![],
        }),
    );
    let watch = frame(
        m::Watch::KIND,
        3,
        &codec::encode(&pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    key: b"a".to_vec(),
                    prev_kv: true,
                    ..Default::default()
                },
            )),
        }),
    );
    let mut all = range.clone();
    all.extend_from_slice(&txn);
    all.extend_from_slice(&watch);
    let flipped = {
        let mut v = txn.clone();
        let n = v.len();
        v[n - 3] ^= 0xff;
        v
    };
    vec![
        ("valid-range", range.clone()),
        ("valid-txn-nested", txn.clone()),
        ("valid-three-frames", all),
        ("short-header", range[..9].to_vec()),
        ("short-payload", txn[..txn.len() - 1].to_vec()),
        ("bad-payload-garbage", frame(m::Put::KIND, 4, &[0xee; 48])),
        ("bad-payload-flipped-root", flipped),
        ("bad-payload-empty", frame(m::Range::KIND, 5, &[])),
        ("bad-frame-length-small", {
            let mut v = range.clone();
            v[..4].copy_from_slice(&3u32.to_le_bytes());
            v
        }),
        ("bad-frame-oversized", {
            let mut v = range;
            v[..4].copy_from_slice(&((LIMIT + 1) as u32).to_le_bytes());
            v
        }),
    ]
}

#[test]
fn corpus_replays() {
    let d = dir();
    if std::env::var_os("FERROCD_WRITE_CORPUS").is_some() {
        std::fs::create_dir_all(&d).unwrap();
        for (name, bytes) in seeds() {
            std::fs::write(d.join(name), bytes).unwrap();
        }
    }
    let mut n = 0;
    for e in std::fs::read_dir(&d).expect("fuzz/corpus/fast_frame exists") {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(&path).unwrap();
        let mut off = 0;
        let mut valid = 0;
        let end = loop {
            if off == data.len() {
                break "whole";
            }
            match Frame::header(&data[off..], LIMIT) {
                Ok((kind, _, used)) => {
                    match reencode_request(kind, &data[off + HEADER..off + used]) {
                        Some(Ok(again)) => {
                            let twice = reencode_request(kind, &again).unwrap().unwrap();
                            assert_eq!(again, twice, "{name}");
                            valid += 1;
                        }
                        Some(Err(_)) | None => break "bad-payload",
                    }
                    off += used;
                }
                Err(DecodeError::Incomplete(_)) => break "short",
                Err(DecodeError::Malformed(_)) => break "bad-frame",
            }
        };
        let want = if name.starts_with("valid-") {
            assert!(valid > 0, "{name}");
            "whole"
        } else if name.starts_with("bad-payload-") {
            "bad-payload"
        } else if name.starts_with("bad-frame-") {
            "bad-frame"
        } else {
            "short"
        };
        assert_eq!(end, want, "{name}");
        n += 1;
    }
    assert!(n >= 10, "corpus has {n} files");
}
