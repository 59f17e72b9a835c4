//! History for the watch hub: the events of a key range between two
//! revisions, read from the revision store in (main, sub) order, as etcd's
//! unsynced-watcher catch-up (`kvsToEvents`) does.
//!
//! Compaction bound, as etcd 3.5's watchable store (`chooseAll`: a watcher
//! whose next revision is below the compacted revision is cancelled with
//! `compact_revision`): `from_rev < compacted` → `Compacted`; `from_rev ==
//! compacted` is allowed. Caveat inherited from etcd: compaction at `c`
//! drops tombstones at `c` (and a put at `c` followed by a from-key delete
//! of the same key in the same txn), so a read from exactly `c` may miss
//! those changes.
//!
//! Delete events carry the key and `mod_revision` = the delete's revision,
//! other fields zero. `prev_kv`, when asked for, is the key's state at
//! `mod_revision - 1` (absent when it did not exist, or that revision is
//! compacted), as etcd's watch server fetches it.

use std::ops::Bound;

use crate::error::{Error, Result};
use crate::kv::{Event, EventKind, KeyRange, KeyValue};
use crate::record::KvRef;
use crate::revision::Revision;
use crate::state::State;

/// Events for `range` with `from_rev <= main <= to_rev` (`to_rev` clamped
/// to the current revision), at most `limit` (0 = all).
pub(crate) fn events(
    state: &State,
    range: &KeyRange,
    from_rev: i64,
    to_rev: i64,
    prev_kv: bool,
    limit: usize,
) -> Result<Vec<Event>> {
    if from_rev < state.compact_revision {
        return Err(Error::Compacted {
            compact_revision: state.compact_revision,
        });
    }
    let to = to_rev.min(state.revision);
    let mut out = Vec::new();
    let start = Revision::new(from_rev.max(0), 0);
    for (rev, rec) in state.revs.range_from(Bound::Included(&start)) {
        if rev.main > to || (limit != 0 && out.len() >= limit) {
            break;
        }
        let a = rec.archived();
        if !range.contains(&a.key) {
            continue;
        }
        let kv = KvRef::new(rec);
        let (kind, kv_owned) = if a.is_tombstone() {
            let kv = KeyValue {
                key: kv.key().to_vec(),
                mod_revision: rev.main,
                ..KeyValue::default()
            };
            (EventKind::Delete, kv)
        } else {
            (EventKind::Put, kv.to_key_value())
        };
        let prev = if prev_kv && rev.main > state.compact_revision {
            state
                .kv_at(kv.key(), rev.main - 1)
                .map(|r| KvRef::new(r).to_key_value())
        } else {
            None
        };
        out.push(Event {
            kind,
            kv: kv_owned,
            prev_kv: prev,
        });
    }
    Ok(out)
}
