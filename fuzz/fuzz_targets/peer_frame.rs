//! The peer frame decoder on arbitrary bytes (what any process that
//! reaches the peer port can send): it must never panic, must tell
//! "incomplete" from "malformed", and a frame it accepts must re-encode to
//! the same bytes. Hello payloads go through their decoder too.
#![no_main]

use ferrocd_net::peer::{DecodeError, Frame, Hello, KIND_HELLO};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut off = 0;
    while off < data.len() {
        match Frame::decode(&data[off..]) {
            Ok((f, n)) => {
                let mut again = Vec::new();
                f.encode(&mut again);
                assert_eq!(&again[..], &data[off..off + n]);
                if f.kind == KIND_HELLO
                    && let Ok(h) = Hello::decode(&f.payload)
                {
                    assert_eq!(h.encode(), f.payload);
                }
                off += n;
            }
            Err(DecodeError::Incomplete(need)) => {
                assert!(need > data.len() - off);
                break;
            }
            Err(DecodeError::Malformed(_)) => off += 1,
        }
    }
});
