//! Export and import of the whole revision history, one record at a
//! time in (main, sub) order: what an etcd backend's `key` bucket holds.
//! [`ReadView::history`](crate::ReadView::history) lists it (as a finished
//! compaction would leave it), [`Builder`] rebuilds a store from it (the
//! key index as etcd's `restoreIntoIndex` rebuilds it on start).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::btree::BTree;
use crate::error::{Error, Result};
use crate::key_index::{Generation, KeyIndex};
use crate::record::{FLAG_TOMBSTONE, KvRef, RecordBytes, RecordRef};
use crate::revision::Revision;
use crate::state::{Key, PendingCompaction, State};
use crate::store::{Config, Store};

/// One revision of the history.
#[derive(Debug, Clone, Copy)]
pub struct HistoryRecord<'a> {
    /// The revision.
    pub rev: Revision,
    /// The key and, for a put, its value and metadata.
    pub kv: KvRef<'a>,
    /// A delete (etcd marks these with a `t` after the revision).
    pub tombstone: bool,
}

pub(crate) fn history(state: &State) -> impl Iterator<Item = HistoryRecord<'_>> + '_ {
    // A compaction whose physical part is still running leaves records a
    // finished one drops: list only what it keeps, so members at
    // different points of it list the same history.
    let at = state.compact_revision;
    let keep: std::collections::HashSet<Revision> = if state.pending_compaction.is_some() {
        state
            .keys
            .iter()
            .filter_map(|(_, ki)| ki.keep(at))
            .collect()
    } else {
        Default::default()
    };
    let filter = state.pending_compaction.is_some();
    state.revs.iter().filter_map(move |(rev, rec)| {
        if filter && rev.main <= at && !keep.contains(rev) {
            return None;
        }
        Some(HistoryRecord {
            rev: *rev,
            kv: KvRef::new(rec),
            tombstone: rec.archived().is_tombstone(),
        })
    })
}

/// Rebuilds a store from its history (ascending revisions) and leases.
#[derive(Debug, Default)]
pub struct Builder {
    keys: BTreeMap<Key, KeyIndex>,
    revs: Vec<(Revision, RecordBytes)>,
    leases: Vec<(i64, i64)>,
    record_bytes: u64,
}

fn bad(reason: String) -> Error {
    Error::Snapshot {
        path: "restore".into(),
        reason,
    }
}

impl Builder {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add the record at `rev` (after every record added before): a put
    /// of `key` with its value and metadata, or a delete (`tombstone`;
    /// value and metadata ignored). A delete of a key with no live
    /// generation here is skipped, as etcd skips it.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        rev: Revision,
        key: &[u8],
        value: &[u8],
        create_revision: i64,
        version: i64,
        lease: i64,
        tombstone: bool,
    ) -> Result<()> {
        if self.revs.last().is_some_and(|(r, _)| *r >= rev) || rev.main < 1 || rev.sub < 0 {
            return Err(bad(format!("revision {rev:?} out of order")));
        }
        if key.is_empty() {
            return Err(bad(format!("empty key at revision {rev:?}")));
        }
        let rec = if tombstone {
            if !self.keys.get_mut(key).is_some_and(|ki| ki.tombstone(rev)) {
                return Ok(());
            }
            RecordRef {
                key,
                value: &[],
                create_revision: 0,
                mod_revision: rev.main,
                version: 0,
                lease: 0,
                flags: FLAG_TOMBSTONE,
            }
        } else {
            match self.keys.get_mut(key) {
                Some(ki) if ki.generations.last().is_some_and(|g| !g.revs.is_empty()) => {
                    ki.put(rev)
                }
                Some(ki) => {
                    let g = ki.generations.last_mut().expect("never empty");
                    *g = Generation {
                        ver: version,
                        created: Revision::new(create_revision, 0),
                        revs: vec![rev],
                    };
                    ki.modified = rev;
                }
                None => {
                    // As etcd's keyIndex.restore: the generation starts at
                    // the record's create revision with its version (older
                    // revisions may have been compacted away).
                    let mut ki = KeyIndex::new(rev);
                    let g = ki.generations.last_mut().expect("never empty");
                    g.ver = version;
                    g.created = Revision::new(create_revision, 0);
                    self.keys.insert(Key::from(key), ki);
                }
            }
            RecordRef {
                key,
                value,
                create_revision,
                mod_revision: rev.main,
                version,
                lease,
                flags: 0,
            }
        };
        let bytes = rec.to_bytes();
        self.record_bytes += bytes.bytes().len() as u64;
        self.revs.push((rev, bytes));
        Ok(())
    }

    /// A granted lease (`ttl` seconds).
    pub fn lease(&mut self, id: i64, ttl: i64) {
        self.leases.push((id, ttl));
    }

    /// The store: at revision `max(last record, compact_revision, 1)`,
    /// reads below `compact_revision` (-1: never compacted) refused; a
    /// `scheduled` compaction above it (etcd's unfinished one) is applied
    /// logically and finished physically in the background.
    pub fn finish(
        mut self,
        compact_revision: i64,
        scheduled: i64,
        consistent_index: u64,
        config: Config,
    ) -> Result<Store> {
        let last = self.revs.last().map_or(1, |(r, _)| r.main);
        self.leases.sort_unstable();
        self.leases.dedup_by_key(|l| l.0);
        let compact = compact_revision.max(scheduled);
        let mut state = State {
            keys: BTree::from_sorted(self.keys.into_iter().map(|(k, ki)| (k, Arc::new(ki)))),
            revs: BTree::from_sorted(self.revs),
            leases: BTree::from_sorted(self.leases),
            lease_keys: BTree::new(),
            revision: last.max(compact).max(1),
            compact_revision: compact,
            consistent_index,
            pending_compaction: (scheduled > compact_revision).then_some(PendingCompaction {
                revision: scheduled,
                done_through: None,
            }),
            record_bytes: self.record_bytes,
            // A restored store has written what it holds.
            written_bytes: self.record_bytes,
        };
        state.rebuild_lease_keys();
        Ok(Store::from_state(state, config))
    }
}
