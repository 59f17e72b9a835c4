//! The bbolt reader (`ferrocd_wal::bolt`, what `snapshot status|restore`
//! open) on arbitrary bytes: an error or a count, never a panic or a hang.
#![no_main]

use ferrocd_wal::bolt::Db;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(db) = Db::open(data) {
        let _ = db.check();
        let _ = db.bucket(b"key");
    }
});
