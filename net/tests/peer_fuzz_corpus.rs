//! Replays the fuzz seed corpus (`fuzz/corpus/peer_frame/`) through the
//! peer frame decoder as the fuzz target does: nothing panics, `valid-*`
//! seeds decode whole and re-encode byte for byte, `bad-*` seeds are
//! malformed, `short-*` seeds are incomplete. Regenerate the seeds with
//! `FERROCD_WRITE_CORPUS=1`.

use std::path::PathBuf;

use ferrocd_net::peer::{DecodeError, Frame, Hello, KIND_HELLO};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/peer_frame")
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let enc = |f: Frame| {
        let mut v = Vec::new();
        f.encode(&mut v);
        v
    };
    let hello = enc(Frame {
        kind: KIND_HELLO,
        id: 0,
        payload: Hello {
            cluster_id: 0x1c45_a069_f3a1_d796,
            from: 1,
            to: 2,
        }
        .encode(),
    });
    let append = enc(Frame {
        kind: 2,
        id: 77,
        payload: vec![0xab; 300],
    });
    let mut two = hello.clone();
    two.extend_from_slice(&append);
    vec![
        ("valid-hello", hello.clone()),
        ("valid-two-frames", two),
        ("short-header", append[..7].to_vec()),
        ("short-payload", append[..100].to_vec()),
        ("bad-length-small", {
            let mut v = append.clone();
            v[..4].copy_from_slice(&3u32.to_le_bytes());
            v
        }),
        ("bad-length-huge", {
            let mut v = append.clone();
            v[..4].copy_from_slice(&u32::MAX.to_le_bytes());
            v
        }),
        ("bad-kind-zero", {
            let mut v = append;
            v[4] = 0;
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
    for e in std::fs::read_dir(&d).expect("fuzz/corpus/peer_frame exists") {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(&path).unwrap();
        let mut off = 0;
        let mut frames = 0;
        let mut end = None;
        while off < data.len() {
            match Frame::decode(&data[off..]) {
                Ok((f, used)) => {
                    let mut again = Vec::new();
                    f.encode(&mut again);
                    assert_eq!(&again[..], &data[off..off + used], "{name}");
                    if f.kind == KIND_HELLO {
                        Hello::decode(&f.payload).unwrap();
                    }
                    off += used;
                    frames += 1;
                }
                Err(e) => {
                    end = Some(e);
                    break;
                }
            }
        }
        if name.starts_with("valid-") {
            assert!(end.is_none() && frames > 0, "{name}: {end:?}");
        } else if name.starts_with("bad-") {
            assert!(
                matches!(end, Some(DecodeError::Malformed(_))),
                "{name}: {end:?}"
            );
        } else if name.starts_with("short-") {
            assert!(
                matches!(end, Some(DecodeError::Incomplete(_))),
                "{name}: {end:?}"
            );
        }
        n += 1;
    }
    assert!(n >= 7, "corpus has {n} files");
}
