//! The raft log entry decoder (a WAL entry's payload, an AppendEntries
//! entry) and the forwarded-command decoder on arbitrary bytes: errors,
//! never panics; a batch that decodes yields its commands or an error.
//! The same property runs in the normal test suite as a proptest
//! (`ferrocd-core`, `raft::tests::decoders_take_any_bytes`).
#![no_main]

use ferrocd_core::raft::{Command, Entry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = postcard::from_bytes::<Entry>(data)
        && let openraft::EntryPayload::Normal(p) = &e.payload
    {
        let _ = p.commands();
    }
    let _ = postcard::from_bytes::<Command>(data);
});
