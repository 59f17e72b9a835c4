//! One write transaction on the writer's working state, as etcd's
//! `storeTxnWrite`: every change gets revision `(begin + 1, sub)` with `sub`
//! counting the changes so far; reads inside see `begin + 1` once something
//! changed; the store revision moves to `begin + 1` only if something
//! changed.

use std::borrow::Cow;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::key_index::KeyIndex;
use crate::kv::{Event, EventKind, KeyRange, KeyValue};
use crate::record::{FLAG_TOMBSTONE, KvRef, RecordRef};
use crate::request::{DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse};
use crate::revision::Revision;
use crate::state::{Key, State};

/// Whether produced events carry `prev_kv` (the watch hub needs it for
/// watchers that ask; copying it costs one key+value copy per change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventPrevKv {
    /// Fill `Event::prev_kv` when the key existed before.
    #[default]
    Include,
    /// Leave it `None`; the hub reads history when a watcher asks.
    Omit,
}

/// A write transaction in progress.
pub(crate) struct TxnWrite<'s> {
    pub(crate) state: &'s mut State,
    pub(crate) begin: i64,
    /// Events of earlier requests (before `mark`), then this txn's.
    events: Vec<Event>,
    mark: usize,
    prev_policy: EventPrevKv,
}

impl<'s> TxnWrite<'s> {
    pub(crate) fn new(state: &'s mut State, prev_policy: EventPrevKv) -> Self {
        Self::with_events(state, prev_policy, Vec::new())
    }

    /// A txn whose events are appended to `events` (returned by
    /// [`TxnWrite::end`]), so a batch of requests fills one buffer.
    pub(crate) fn with_events(
        state: &'s mut State,
        prev_policy: EventPrevKv,
        events: Vec<Event>,
    ) -> Self {
        let begin = state.revision;
        Self {
            state,
            begin,
            mark: events.len(),
            events,
            prev_policy,
        }
    }

    /// Whether this txn changed anything so far.
    pub(crate) fn changed(&self) -> bool {
        self.events.len() > self.mark
    }

    /// The revision reads inside this txn see.
    pub(crate) fn read_rev(&self) -> i64 {
        self.begin + i64::from(self.changed())
    }

    fn next_rev(&self) -> Revision {
        Revision::new(self.begin + 1, (self.events.len() - self.mark) as i64)
    }

    /// Forget this txn's events (it was rolled back).
    pub(crate) fn drop_events(&mut self) {
        self.events.truncate(self.mark);
    }

    /// Finish: bump the store revision if anything changed; the events
    /// (the ones it was given, then its own).
    pub(crate) fn end(self) -> Vec<Event> {
        if self.changed() {
            self.state.revision = self.begin + 1;
        }
        self.events
    }

    /// The low-level put (etcd `storeTxnWrite.put`); returns the previous
    /// key-value when `want_prev` and the key existed.
    pub(crate) fn put(
        &mut self,
        key: &[u8],
        value: &[u8],
        lease: i64,
        want_prev: bool,
    ) -> Option<KeyValue> {
        let rev = self.next_rev();
        let (stored_key, found) = match self.state.keys.get_key_value(key) {
            Some((k, ki)) => (Some(k.clone()), ki.get(rev.main)),
            None => (None, None),
        };
        let (mut create, mut version, mut old_lease, mut prev) = (rev.main, 0, 0, None);
        if let Some(f) = found {
            let old = KvRef::new(
                self.state
                    .revs
                    .get(&f.modified)
                    .expect("index names a stored record"),
            );
            create = f.created.main;
            version = f.version;
            old_lease = old.lease();
            if want_prev || self.prev_policy == EventPrevKv::Include {
                prev = Some(old.to_key_value());
            }
        }
        version += 1;
        let rec = RecordRef {
            key,
            value,
            create_revision: create,
            mod_revision: rev.main,
            version,
            lease,
            flags: 0,
        };
        let bytes = rec.to_bytes();
        self.state.record_bytes += bytes.bytes().len() as u64;
        self.state.written_bytes += bytes.bytes().len() as u64;
        self.state.revs.insert(rev, bytes);
        let key_arc = match stored_key {
            Some(k) => {
                Arc::make_mut(self.state.keys.get_mut(key).expect("present")).put(rev);
                k
            }
            None => {
                let k = Key::from(key);
                self.state
                    .keys
                    .insert(k.clone(), Arc::new(KeyIndex::new(rev)));
                k
            }
        };
        if old_lease != lease {
            if old_lease != 0 {
                self.state.lease_keys.remove(&(old_lease, key_arc.clone()));
            }
            if lease != 0 {
                self.state.lease_keys.insert((lease, key_arc), ());
            }
        }
        // The event takes the previous key-value; a copy only when the
        // caller wants it too.
        let event_prev = match self.prev_policy {
            EventPrevKv::Include if want_prev => prev.clone(),
            EventPrevKv::Include => prev.take(),
            EventPrevKv::Omit => None,
        };
        self.events.push(Event {
            kind: EventKind::Put,
            kv: KeyValue {
                key: key.to_vec(),
                create_revision: create,
                mod_revision: rev.main,
                version,
                value: value.to_vec(),
                lease,
            },
            prev_kv: event_prev,
        });
        if want_prev { prev } else { None }
    }

    /// The low-level delete of a key alive at [`Self::read_rev`]; returns
    /// the deleted key-value when `want_prev`.
    fn delete(&mut self, key: &Key, want_prev: bool) -> Option<KeyValue> {
        let rev = self.next_rev();
        let found = self
            .state
            .keys
            .get(&key[..])
            .and_then(|ki| ki.get(rev.main))
            .expect("caller checked the key is alive");
        let old = KvRef::new(
            self.state
                .revs
                .get(&found.modified)
                .expect("index names a stored record"),
        );
        let old_lease = old.lease();
        let mut prev =
            (want_prev || self.prev_policy == EventPrevKv::Include).then(|| old.to_key_value());
        let rec = RecordRef {
            key,
            value: &[],
            create_revision: 0,
            mod_revision: rev.main,
            version: 0,
            lease: 0,
            flags: FLAG_TOMBSTONE,
        };
        let bytes = rec.to_bytes();
        self.state.record_bytes += bytes.bytes().len() as u64;
        self.state.written_bytes += bytes.bytes().len() as u64;
        self.state.revs.insert(rev, bytes);
        let alive =
            Arc::make_mut(self.state.keys.get_mut(&key[..]).expect("present")).tombstone(rev);
        debug_assert!(alive);
        if old_lease != 0 {
            self.state.lease_keys.remove(&(old_lease, key.clone()));
        }
        let event_prev = match self.prev_policy {
            EventPrevKv::Include if want_prev => prev.clone(),
            EventPrevKv::Include => prev.take(),
            EventPrevKv::Omit => None,
        };
        self.events.push(Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: key.to_vec(),
                mod_revision: rev.main,
                ..KeyValue::default()
            },
            prev_kv: event_prev,
        });
        if want_prev { prev } else { None }
    }

    /// etcd `storeTxnWrite.deleteRange`: delete every key alive in `range`;
    /// returns how many and, when `want_prev`, their previous key-values.
    pub(crate) fn delete_range(
        &mut self,
        range: &KeyRange,
        want_prev: bool,
    ) -> (i64, Vec<KeyValue>) {
        let at = self.read_rev();
        let keys: Vec<Key> = if range.is_single() {
            self.state
                .keys
                .get_key_value(&range.start[..])
                .filter(|(_, ki)| ki.get(at).is_some())
                .map(|(k, _)| k.clone())
                .into_iter()
                .collect()
        } else {
            self.state
                .keys_in(range)
                .filter(|(_, ki)| ki.get(at).is_some())
                .map(|(k, _)| k.clone())
                .collect()
        };
        let mut prevs = Vec::new();
        for k in &keys {
            if let Some(p) = self.delete(k, want_prev) {
                prevs.push(p);
            }
        }
        (keys.len() as i64, prevs)
    }

    /// etcd `applierV3backend.Put` inside a write txn, after the request
    /// checks; fails only with `KeyNotFound` for `ignore_value` /
    /// `ignore_lease` on a missing key, before changing anything.
    pub(crate) fn apply_put(&mut self, req: &PutRequest) -> Result<PutResponse> {
        let (value, lease) = if req.ignore_value || req.ignore_lease {
            let old = self
                .state
                .kv_at(&req.key, self.read_rev())
                .map(KvRef::new)
                .ok_or(Error::KeyNotFound)?;
            let value = if req.ignore_value {
                Cow::Owned(old.value().to_vec())
            } else {
                Cow::Borrowed(&req.value[..])
            };
            (
                value,
                if req.ignore_lease {
                    old.lease()
                } else {
                    req.lease
                },
            )
        } else {
            (Cow::Borrowed(&req.value[..]), req.lease)
        };
        let prev_kv = self.put(&req.key, &value, lease, req.prev_kv);
        Ok(PutResponse {
            revision: self.begin + 1,
            prev_kv,
        })
    }

    /// etcd `applierV3backend.DeleteRange` inside a write txn.
    pub(crate) fn apply_delete_range(&mut self, req: &DeleteRangeRequest) -> DeleteRangeResponse {
        let range = KeyRange::new(&req.key, &req.range_end);
        let (deleted, prev_kvs) = self.delete_range(&range, req.prev_kv);
        let revision = if deleted != 0 || self.changed() {
            self.begin + 1
        } else {
            self.begin
        };
        DeleteRangeResponse {
            revision,
            deleted,
            prev_kvs,
        }
    }
}

/// etcd's `checkPutRequest`.
pub(crate) fn validate_put(req: &PutRequest) -> Result<()> {
    if req.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    if req.ignore_value && !req.value.is_empty() {
        return Err(Error::ValueProvided);
    }
    if req.ignore_lease && req.lease != 0 {
        return Err(Error::LeaseProvided);
    }
    Ok(())
}

/// etcd's `checkDeleteRequest`.
pub(crate) fn validate_delete(req: &DeleteRangeRequest) -> Result<()> {
    if req.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    Ok(())
}
