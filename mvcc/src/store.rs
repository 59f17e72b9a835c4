//! The store: one writer applying batches, any number of lock-free readers.
//!
//! - [`Store::snapshot`] hands out a [`ReadView`]: an `Arc` of one published
//!   [`State`], loaded from an `ArcSwap` (no lock, no blocking of the
//!   writer). It stays valid and unchanged for as long as it is held.
//! - [`Store::write`] opens a [`WriteBatch`] (one at a time; a second call
//!   waits): a clone of the current state (O(1)) that requests mutate with
//!   path copying. [`WriteBatch::commit`] publishes it with one atomic
//!   pointer swap; dropping the batch discards it.
//!
//! Every request either applies fully or fails with nothing changed: all
//! checks run before the first mutation.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use memmap2::Mmap;

use crate::compaction::{self, CompactProgress, CompactStep, DEFAULT_COMPACTION_BATCH};
use crate::error::{Error, Result};
use crate::kv::{Event, KeyRange};
use crate::record::KvRef;
use crate::request::{
    Applied, DeleteRangeRequest, DeleteRangeResponse, HashKv, PutRequest, PutResponse,
    RangeRequest, RangeResponse, RangeResult, TxnRequest, TxnResponse,
};
use crate::state::State;
use crate::write::{EventPrevKv, TxnWrite, validate_delete, validate_put};
use crate::{hash, history, lease, range, snapshot, txn};

/// Store settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Whether write events carry `prev_kv`. Default: `Include`.
    pub event_prev_kv: EventPrevKv,
    /// Keys per [`Store::compact_step`] when driven by the store's own
    /// helpers. Default 1000 ([`DEFAULT_COMPACTION_BATCH`]); at least 1.
    pub compaction_batch: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            event_prev_kv: EventPrevKv::Include,
            compaction_batch: DEFAULT_COMPACTION_BATCH,
        }
    }
}

/// The multi-version store.
pub struct Store {
    current: ArcSwap<State>,
    writer: Mutex<()>,
    config: Config,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.current.load();
        f.debug_struct("Store")
            .field("revision", &s.revision)
            .field("compact_revision", &s.compact_revision)
            .field("keys", &s.keys.len())
            .field("records", &s.revs.len())
            .finish()
    }
}

impl Default for Store {
    fn default() -> Self {
        Self::new(Config::default())
    }
}

impl Store {
    /// An empty store at revision 1.
    pub fn new(config: Config) -> Self {
        Self::from_state(State::default(), config)
    }

    pub(crate) fn from_state(state: State, config: Config) -> Self {
        Self {
            current: ArcSwap::from_pointee(state),
            writer: Mutex::new(()),
            config,
        }
    }

    /// Replace this store's whole state with `other`'s (a follower
    /// installing a snapshot). Waits for the writer; readers holding a
    /// [`ReadView`] keep the old state.
    pub fn install(&self, other: Store) {
        let _guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        self.current.store(other.current.load_full());
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The latest committed state, for reading from any thread.
    pub fn snapshot(&self) -> ReadView {
        ReadView {
            state: self.current.load_full(),
        }
    }

    /// The current revision.
    pub fn revision(&self) -> i64 {
        self.current.load().revision
    }

    /// Open the write batch; waits while another is open.
    pub fn write(&self) -> WriteBatch<'_> {
        // A panic inside a batch leaves the published state untouched (the
        // batch works on a copy), so a poisoned lock carries no bad data.
        let guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        WriteBatch {
            state: State::clone(&self.current.load()),
            store: self,
            _guard: guard,
        }
    }

    /// One physical compaction step of at most `max_keys` keys in its own
    /// batch (so the writer lock is held only that long).
    pub fn compact_step(&self, max_keys: usize) -> CompactProgress {
        let mut b = self.write();
        let p = b.compact_step(max_keys);
        b.commit();
        p
    }

    /// [`Store::compact_step`], also saying what the step did and how long
    /// it held the writer lock (`None`: no compaction was pending).
    pub fn compact_step_observed(&self, max_keys: usize) -> (CompactProgress, Option<CompactStep>) {
        let started = std::time::Instant::now();
        let mut b = self.write();
        if b.state.pending_compaction.is_none() {
            return (CompactProgress::Done, None);
        }
        let mut stats = CompactStep::default();
        let p = compaction::step_counted(&mut b.state, max_keys, &mut stats);
        b.commit();
        stats.pause = started.elapsed();
        (p, Some(stats))
    }

    /// Drive the pending compaction to the end, `Config::compaction_batch`
    /// keys per step.
    pub fn finish_compaction(&self) {
        self.finish_compaction_observed(|_| {});
    }

    /// [`Store::finish_compaction`], telling `each` what every step did.
    pub fn finish_compaction_observed(&self, mut each: impl FnMut(&CompactStep)) {
        loop {
            let (p, stats) = self.compact_step_observed(self.config.compaction_batch);
            if let Some(stats) = stats {
                each(&stats);
            }
            if p == CompactProgress::Done {
                return;
            }
        }
    }

    /// Load a snapshot file written by [`ReadView::save`].
    pub fn load(path: impl AsRef<Path>, config: Config) -> Result<Self> {
        Ok(Self::from_state(
            snapshot::load_file(path.as_ref())?,
            config,
        ))
    }

    /// Load a snapshot payload (as written by [`ReadView::write_snapshot`])
    /// at `offset..offset + len` of `map`; records stay in the mapping.
    /// `offset` must be 16-byte aligned relative to the mapping's start.
    pub fn load_mapped(map: Arc<Mmap>, offset: usize, len: usize, config: Config) -> Result<Self> {
        Ok(Self::from_state(
            snapshot::load_mapped(map, offset, len, "<mapped>")?,
            config,
        ))
    }
}

/// A consistent, immutable view of the store at one revision, usable from
/// any thread. Cloning is one refcount bump.
#[derive(Clone)]
pub struct ReadView {
    state: Arc<State>,
}

impl std::fmt::Debug for ReadView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadView")
            .field("revision", &self.state.revision)
            .finish_non_exhaustive()
    }
}

impl ReadView {
    /// The store revision of this view.
    pub fn revision(&self) -> i64 {
        self.state.revision
    }

    /// Reads below this revision fail with `Compacted`; 0 before any
    /// compaction.
    pub fn compact_revision(&self) -> i64 {
        self.state.compact_revision
    }

    /// Raft index of the last entry applied into this view.
    pub fn consistent_index(&self) -> u64 {
        self.state.consistent_index
    }

    /// Keys in the key index (live or with history).
    pub fn key_count(&self) -> usize {
        self.state.keys.len()
    }

    /// Records in the revision store.
    pub fn record_count(&self) -> usize {
        self.state.revs.len()
    }

    /// etcd's Range; see [`RangeRequest`] and the `range` module notes.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResult<'_>> {
        range::range(&self.state, req, self.state.revision)
    }

    /// The current value of one key.
    pub fn get(&self, key: &[u8]) -> Option<KvRef<'_>> {
        self.state.kv_at(key, self.state.revision).map(KvRef::new)
    }

    /// Events of `range` with `from_rev <= revision <= to_rev`, in
    /// (main, sub) order, at most `limit` (0 = all). `Compacted` when
    /// `from_rev < compact_revision` (see the `history` module notes).
    pub fn events(
        &self,
        range: &KeyRange,
        from_rev: i64,
        to_rev: i64,
        prev_kv: bool,
        limit: usize,
    ) -> Result<Vec<Event>> {
        history::events(&self.state, range, from_rev, to_rev, prev_kv, limit)
    }

    /// etcd's HashKV at `rev` (`<= 0`: current); see the `hash` module.
    pub fn hash_kv(&self, rev: i64) -> Result<HashKv> {
        hash::hash_kv(&self.state, rev)
    }

    /// Whether lease `id` is granted.
    pub fn has_lease(&self, id: i64) -> bool {
        self.state.leases.contains_key(&id)
    }

    /// Bytes of every record held (keys, values and their metadata, all
    /// revisions not yet compacted): the store's size as etcd's `Status`
    /// reports its database size.
    pub fn size_bytes(&self) -> u64 {
        self.state.record_bytes
    }

    /// Bytes of every record ever added to this store in this process,
    /// compacted ones included (a loaded snapshot counts as added once).
    /// Grows with every write, never shrinks: the difference between two
    /// views is what was written between them.
    pub fn written_bytes(&self) -> u64 {
        self.state.written_bytes
    }

    /// Granted lease ids, ascending.
    pub fn leases(&self) -> Vec<i64> {
        self.state.leases.iter().map(|(id, _)| *id).collect()
    }

    /// Granted leases with their TTL in seconds, by id.
    pub fn lease_ttls(&self) -> Vec<(i64, i64)> {
        self.state
            .leases
            .iter()
            .map(|(id, ttl)| (*id, *ttl))
            .collect()
    }

    /// The granted TTL of lease `id`, if granted.
    pub fn lease_ttl(&self, id: i64) -> Option<i64> {
        self.state.leases.get(&id).copied()
    }

    /// Keys attached to lease `id`, in key order.
    pub fn lease_keys(&self, id: i64) -> Vec<&[u8]> {
        lease::keys_of(&self.state, id).map(|k| &k[..]).collect()
    }

    /// The whole revision history in (main, sub) order, as a finished
    /// compaction leaves it (an etcd backend's `key` bucket); see the
    /// `restore` module.
    pub fn history(&self) -> impl Iterator<Item = crate::HistoryRecord<'_>> + '_ {
        crate::restore::history(&self.state)
    }

    /// Stream the whole view as a snapshot payload (see docs/FORMAT.md);
    /// returns the bytes written.
    pub fn write_snapshot(&self, w: &mut impl Write) -> std::io::Result<u64> {
        snapshot::write_payload(&self.state, w)
    }

    /// Write a standalone snapshot file: temp file, fsync, rename, fsync of
    /// the directory; a header with the payload's length and crc32.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        snapshot::save_file(&self.state, path.as_ref())
    }
}

/// The writer's open batch. Requests apply in order, each seeing the
/// previous ones; nothing is visible to readers until [`WriteBatch::commit`].
pub struct WriteBatch<'s> {
    state: State,
    store: &'s Store,
    _guard: MutexGuard<'s, ()>,
}

impl std::fmt::Debug for WriteBatch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBatch")
            .field("revision", &self.state.revision)
            .finish_non_exhaustive()
    }
}

impl WriteBatch<'_> {
    fn prev_policy(&self) -> EventPrevKv {
        self.store.config.event_prev_kv
    }

    /// Keys attached to lease `id` as of the requests applied so far, in
    /// key order (auth checks a lease's keys before a revoke).
    pub fn lease_keys(&self, id: i64) -> Vec<Vec<u8>> {
        lease::keys_of(&self.state, id)
            .map(|k| k.to_vec())
            .collect()
    }

    /// The revision after the requests applied so far.
    pub fn revision(&self) -> i64 {
        self.state.revision
    }

    /// Record the raft index of the entry just applied (saved in snapshots).
    pub fn set_consistent_index(&mut self, index: u64) {
        self.state.consistent_index = index;
    }

    /// A range over the batch's uncommitted state.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        range::range(&self.state, req, self.state.revision).map(|r| r.to_response())
    }

    /// etcd's Put.
    pub fn put(&mut self, req: &PutRequest) -> Result<Applied<PutResponse>> {
        let mut events = Vec::new();
        let response = self.put_into(req, &mut events)?;
        Ok(Applied { response, events })
    }

    /// [`WriteBatch::put`], appending its events to `events` (one buffer
    /// for a whole batch of requests: no vector per request).
    pub fn put_into(&mut self, req: &PutRequest, events: &mut Vec<Event>) -> Result<PutResponse> {
        validate_put(req)?;
        if req.lease != 0 && !self.state.leases.contains_key(&req.lease) {
            return Err(Error::LeaseNotFound);
        }
        self.write_into(events, |tw| tw.apply_put(req))
    }

    /// etcd's DeleteRange; deleting nothing consumes no revision.
    pub fn delete_range(
        &mut self,
        req: &DeleteRangeRequest,
    ) -> Result<Applied<DeleteRangeResponse>> {
        let mut events = Vec::new();
        let response = self.delete_range_into(req, &mut events)?;
        Ok(Applied { response, events })
    }

    /// [`WriteBatch::delete_range`], appending its events to `events`.
    pub fn delete_range_into(
        &mut self,
        req: &DeleteRangeRequest,
        events: &mut Vec<Event>,
    ) -> Result<DeleteRangeResponse> {
        validate_delete(req)?;
        self.write_into(events, |tw| Ok(tw.apply_delete_range(req)))
    }

    /// etcd's Txn; see the `txn` module notes for the order of checks.
    pub fn txn(&mut self, req: &TxnRequest) -> Result<Applied<TxnResponse>> {
        let mut events = Vec::new();
        let response = self.txn_into(req, &mut events)?;
        Ok(Applied { response, events })
    }

    /// [`WriteBatch::txn`], appending its events to `events`.
    pub fn txn_into(&mut self, req: &TxnRequest, events: &mut Vec<Event>) -> Result<TxnResponse> {
        self.write_into(events, |tw| txn::apply(tw, req))
    }

    /// One write transaction whose events go after `events`; a failed
    /// one leaves `events` as it was.
    fn write_into<R>(
        &mut self,
        events: &mut Vec<Event>,
        f: impl FnOnce(&mut TxnWrite<'_>) -> Result<R>,
    ) -> Result<R> {
        let prev = self.prev_policy();
        let mut tw = TxnWrite::with_events(&mut self.state, prev, std::mem::take(events));
        let r = f(&mut tw);
        if r.is_err() {
            tw.drop_events();
        }
        *events = tw.end();
        r
    }

    /// etcd's Compact: reads below `rev` fail from now on; the physical part
    /// runs in [`WriteBatch::compact_step`]s. Returns the current revision.
    pub fn compact(&mut self, rev: i64) -> Result<i64> {
        compaction::compact(&mut self.state, rev)?;
        Ok(self.state.revision)
    }

    /// One physical compaction step over at most `max_keys` keys.
    pub fn compact_step(&mut self, max_keys: usize) -> CompactProgress {
        compaction::step(&mut self.state, max_keys)
    }

    /// Grant lease `id` with a TTL of `ttl` seconds (no revision).
    pub fn lease_grant(&mut self, id: i64, ttl: i64) -> Result<()> {
        lease::grant(&mut self.state, id, ttl)
    }

    /// Revoke lease `id`, deleting its keys in one revision. The response is
    /// the header revision.
    pub fn lease_revoke(&mut self, id: i64) -> Result<Applied<i64>> {
        let prev = self.prev_policy();
        let (response, events) = lease::revoke(&mut self.state, id, prev)?;
        Ok(Applied { response, events })
    }

    /// Publish everything applied in this batch to readers.
    pub fn commit(self) {
        self.store.current.store(Arc::new(self.state));
    }
}
