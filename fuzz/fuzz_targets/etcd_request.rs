//! etcd's raft entry payloads as adopting an etcd data dir translates them
//! (`ferrocd_core::adopt::check_entry`: an `InternalRaftRequest`, or a
//! bare v2 `Request`, into the command ferrocd applies) on arbitrary
//! bytes: `Ok` or a reason, never a panic. A user add or password change
//! with a plain password (etcd 3.4's) is hashed with bcrypt at etcd's cost
//! 10, so such inputs run slowly. The seed corpus is replayed by the
//! normal test suite (core/tests/etcd_request_fuzz_corpus.rs).
#![no_main]

use ferrocd_core::adopt::check_entry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = check_entry(data, 7, 3);
});
