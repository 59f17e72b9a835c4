//! The binary protocol's decoders on arbitrary bytes (what any client of
//! the client port can send after the preamble): frames split as the
//! server splits them, each payload validated as the request of its kind.
//! Nothing may panic; a payload that validates must re-encode to bytes that
//! decode to the same message again.
#![no_main]

use ferrocd_net::fast::methods::reencode_request;
use ferrocd_net::peer::{DecodeError, Frame, HEADER};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut off = 0;
    while off < data.len() {
        match Frame::header(&data[off..], 2 << 20) {
            Ok((kind, _id, n)) => {
                let payload = &data[off + HEADER..off + n];
                if let Some(Ok(again)) = reencode_request(kind, payload) {
                    let twice = reencode_request(kind, &again)
                        .expect("same kind")
                        .expect("a re-encoded request validates");
                    assert_eq!(again, twice);
                }
                off += n;
            }
            Err(DecodeError::Incomplete(_)) => break,
            // The server closes the connection here.
            Err(DecodeError::Malformed(_)) => break,
        }
    }
});
