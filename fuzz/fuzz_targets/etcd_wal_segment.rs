//! etcd's WAL segment framing (`ferrocd_wal::etcd::check_segment`: length
//! fields, padding, the rolling CRC-32C, torn tails), what adopting an
//! etcd data dir reads first, on arbitrary bytes taken as the last segment
//! of a log read from its start: a record count and maybe a torn tail, or
//! an error; never a panic, a hang or a buffer larger than the input. The
//! seed corpus is replayed by the normal test suite
//! (wal/tests/etcd_segment_fuzz_corpus.rs).
#![no_main]

use ferrocd_wal::etcd::check_segment;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((records, torn)) = check_segment(data) {
        // A frame is an 8-byte length field and at least one byte of
        // record, padded to 8.
        assert!(records <= data.len() as u64 / 16);
        if let Some(t) = torn {
            // Frames start 8-aligned; a torn one starts before the end.
            assert!(t.offset % 8 == 0 && t.offset < data.len() as u64, "{t:?}");
        }
    }
});
