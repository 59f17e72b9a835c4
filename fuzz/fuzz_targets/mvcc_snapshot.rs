//! The MVCC snapshot loader on arbitrary bytes (as if read from a mapped
//! snapshot payload): it must return an error or a store, never panic.
#![no_main]

use std::sync::Arc;

use ferrocd_mvcc::{Config, Store};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut map) = memmap2::MmapMut::map_anon(data.len().max(1)) else { return };
    map[..data.len()].copy_from_slice(data);
    let Ok(map) = map.make_read_only() else { return };
    if let Ok(store) = Store::load_mapped(Arc::new(map), 0, data.len(), Config::default()) {
        // A store that loaded must answer reads.
        let view = store.snapshot();
        let _ = view.hash_kv(0);
        let _ = view.key_count();
    }
});
