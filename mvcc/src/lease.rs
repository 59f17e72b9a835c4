//! Leases as replicated store state: the set of granted ids and the
//! lease → keys index (`State::lease_keys`, kept by puts and deletes).
//! Expiry timing is the node's business; it calls `revoke` through raft.
//!
//! Revoking deletes the attached keys in key order in ONE write
//! transaction (one revision, one sub-revision per key), as etcd's lessor
//! does (it sorts the keys so every member applies the same order); a lease
//! without keys changes nothing and bumps no revision.

use std::ops::Bound;

use crate::error::{Error, Result};
use crate::kv::{Event, KeyRange};
use crate::state::{Key, State};
use crate::write::{EventPrevKv, TxnWrite};

/// Grant lease `id` with `ttl` seconds (etcd: id 0 → `LeaseNotFound`, an
/// existing id → `LeaseExists`). No revision.
pub(crate) fn grant(state: &mut State, id: i64, ttl: i64) -> Result<()> {
    if id == 0 {
        return Err(Error::LeaseNotFound);
    }
    if state.leases.contains_key(&id) {
        return Err(Error::LeaseExists);
    }
    state.leases.insert(id, ttl);
    Ok(())
}

/// Revoke lease `id`, deleting its keys; the header revision and events.
pub(crate) fn revoke(state: &mut State, id: i64, prev: EventPrevKv) -> Result<(i64, Vec<Event>)> {
    if !state.leases.contains_key(&id) {
        return Err(Error::LeaseNotFound);
    }
    let keys: Vec<Key> = keys_of(state, id).cloned().collect();
    let mut tw = TxnWrite::new(state, prev);
    for k in &keys {
        tw.delete_range(&KeyRange::single(k), false);
    }
    let events = tw.end();
    state.leases.remove(&id);
    Ok((state.revision, events))
}

/// The keys attached to `id`, in key order.
pub(crate) fn keys_of(state: &State, id: i64) -> impl Iterator<Item = &Key> {
    let start = (id, Key::from(&[][..]));
    state
        .lease_keys
        .range_from(Bound::Included(&start))
        .take_while(move |((l, _), _)| *l == id)
        .map(|((_, k), _)| k)
}
