//! The decoders of an etcd `.snap` file's parts and of etcd's conf change
//! entries on arbitrary bytes: the v2 store JSON (`V2Store::parse`, whose
//! nesting serde_json stops at 128 levels), `ConfChange::decode` with its
//! member JSON (`.member()`), and `ConfChangeV2::decode`. Every input goes
//! through all three: errors, never panics or stack overflows. The seed
//! corpus is replayed by the normal test suite
//! (wal/tests/etcd_snap_fuzz_corpus.rs), which also loads each seed as a
//! whole `.snap` file (`load_snapshot` takes a path, so not here).
#![no_main]

use ferrocd_wal::etcd::{ConfChange, ConfChangeV2, V2Store};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = V2Store::parse(data) {
        assert!(s.members.is_sorted_by_key(|m| m.id));
        assert!(s.removed.is_sorted());
    }
    if let Ok(c) = ConfChange::decode(data) {
        let _ = c.member();
    }
    let _ = ConfChangeV2::decode(data);
});
