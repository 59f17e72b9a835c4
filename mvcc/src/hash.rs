//! `HashKV`: a checksum of the store's records at a revision, for
//! comparing members (etcd's corruption check).
//!
//! As etcd 3.5's `hashByRev`: `rev <= compacted` (when `rev > 0`) →
//! `Compacted`, `rev > current` → `FutureRevision`, `rev <= 0` means the
//! current revision. The hash covers, in (main, sub) order, every record
//! with `compacted < main <= rev`, plus the records at or below the
//! compacted revision that compaction at `rev` would keep (etcd's
//! `kvindex.Keep(rev)`; when that set is empty, all of them, as etcd).
//! So it does not depend on how far physical compaction has got, nor on
//! whether the store was reloaded from a snapshot.
//!
//! Bytes hashed per record: the 16-byte big-endian revision, then the
//! record's rkyv archive (deterministic for equal contents). crc32 is IEEE
//! (crc32fast); etcd uses Castagnoli over protobuf bytes, so values differ
//! from etcd's and are only comparable between ferrocd members.

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::request::HashKv;
use crate::state::State;

/// Hash the store at `rev`.
pub(crate) fn hash_kv(state: &State, rev: i64) -> Result<HashKv> {
    if rev > 0 && rev <= state.compact_revision {
        return Err(Error::Compacted {
            compact_revision: state.compact_revision,
        });
    }
    if rev > state.revision {
        return Err(Error::FutureRevision {
            current_revision: state.revision,
        });
    }
    let rev = if rev <= 0 { state.revision } else { rev };
    let keep: HashSet<_> = state
        .keys
        .iter()
        .filter_map(|(_, ki)| ki.keep(rev))
        .collect();
    let mut h = crc32fast::Hasher::new();
    h.update(b"key");
    for (r, rec) in state.revs.iter() {
        if r.main > rev {
            break;
        }
        if r.main <= state.compact_revision && !keep.is_empty() && !keep.contains(r) {
            continue;
        }
        h.update(&r.to_bytes());
        h.update(rec.bytes());
    }
    Ok(HashKv {
        hash: h.finalize(),
        compact_revision: state.compact_revision,
        revision: state.revision,
    })
}
