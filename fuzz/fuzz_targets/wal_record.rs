//! The WAL record decoder on arbitrary bytes: it must never panic, and a
//! record it accepts must re-encode to the same bytes.
#![no_main]

use ferrocd_wal::record::{self, Kind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut off = 0;
    while off < data.len() {
        match record::decode(&data[off..]) {
            Ok((rec, n)) => {
                let mut again = Vec::new();
                let seed = 0x5eed;
                let crc = record::encode(&mut again, rec.kind, rec.index, rec.payload, seed);
                assert_eq!(again.len(), n);
                assert_eq!(crc, rec.expected_crc(seed));
                let _ = matches!(rec.kind, Kind::Entry | Kind::Meta | Kind::Crc | Kind::Truncate);
                off += n;
            }
            Err(_) => off += 8,
        }
    }
});
