//! openraft's log storage on the `wal` crate.
//!
//! The WAL runs on its own thread ([`GroupCommit`]); this adapter turns
//! openraft's calls into WAL ops:
//! - `append`: one WAL request per call (openraft hands over a batch of
//!   entries), answered through openraft's `IOFlushed` callback when the
//!   group commit that carries it has fdatasync'ed. Concurrent batches
//!   share syncs. A batch of a single voter (an entry the proposer
//!   marked, `Proposal::sync_here`) is written and synced here, on the
//!   raft thread, when the WAL thread is idle.
//! - `save_vote`: a metadata record, durable before returning.
//! - `save_committed`: kept in memory and written with the next append
//!   (it is a hint that lets a restart re-apply further before the first
//!   election; writing it alone would cost a sync per batch).
//! - `truncate_after`: a truncate op, durable before returning.
//! - `purge`: the purged log id is made durable first, then whole
//!   segments below it are removed (the WAL keeps a few, as etcd does).
//!
//! Recent entries stay decoded in memory (bounded by bytes) so the apply
//! loop and replication read them without a trip to the WAL thread.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};

use ferrocd_wal::{Fs, GroupCommit, Op as WalOp, Wal, Worker};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};

use super::{Entry, LogId, TypeConfig, Vote, decode, encode};

/// WAL metadata keys.
const META_VOTE: u64 = 1;
const META_COMMITTED: u64 = 2;
const META_PURGED: u64 = 3;

/// Decoded entries kept in memory, in bytes of their encoding.
const CACHE_BYTES: usize = 64 << 20;

/// The raft log over a WAL thread. Cheap to clone (the log reader is a
/// clone).
#[derive(Clone)]
pub struct LogStore {
    gc: GroupCommit,
    inner: Arc<Mutex<Inner>>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = self.inner.lock().expect("log store lock");
        f.debug_struct("LogStore")
            .field("last_log_id", &i.last_log_id)
            .field("last_purged", &i.last_purged)
            .finish_non_exhaustive()
    }
}

struct Inner {
    cache: VecDeque<(Entry, usize)>,
    cache_bytes: usize,
    /// First index readable from the WAL (`None`: no entries).
    first_index: Option<u64>,
    /// The index the WAL's next entry must have (`None`: any). After a
    /// snapshot install the log continues above it: a reset record
    /// goes first.
    wal_next: Option<u64>,
    last_log_id: Option<LogId>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
    /// `committed` not yet handed to the WAL.
    committed_dirty: bool,
}

impl Inner {
    fn push(&mut self, e: Entry, size: usize) {
        self.cache.push_back((e, size));
        self.cache_bytes += size;
        while self.cache_bytes > CACHE_BYTES && self.cache.len() > 1 {
            let (_, s) = self.cache.pop_front().expect("non-empty");
            self.cache_bytes -= s;
        }
    }

    fn truncate_from(&mut self, index: u64) {
        while self.cache.back().is_some_and(|(e, _)| e.index() >= index) {
            let (_, s) = self.cache.pop_back().expect("non-empty");
            self.cache_bytes -= s;
        }
    }

    fn purge_to(&mut self, index: u64) {
        while self.cache.front().is_some_and(|(e, _)| e.index() <= index) {
            let (_, s) = self.cache.pop_front().expect("non-empty");
            self.cache_bytes -= s;
        }
    }
}

fn wal_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Write the first log of an adopted etcd member into the new, empty
/// `wal`: the log continues after `purged` (its snapshot's log id) with
/// `entries` (contiguous from `purged + 1`), with `vote` and the
/// `committed` hint, all durable when this returns.
pub(crate) fn write_adopted<F: ferrocd_wal::Fs>(
    wal: &mut Wal<F>,
    purged: LogId,
    entries: &[Entry],
    vote: Vote,
    committed: Option<LogId>,
) -> io::Result<()> {
    let w = |e: ferrocd_wal::WriteError| io::Error::other(e.to_string());
    wal.reset_buffered(purged.index() + 1).map_err(w)?;
    wal.append_meta(META_PURGED, &encode(&Some(purged))?)
        .map_err(w)?;
    wal.append_meta(META_VOTE, &encode(&vote)?).map_err(w)?;
    wal.append_meta(META_COMMITTED, &encode(&committed)?)
        .map_err(w)?;
    for (next, e) in (purged.index() + 1..).zip(entries) {
        if e.index() != next {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("adopted entry {} where {next} was expected", e.index()),
            ));
        }
        wal.append_entry(e.index(), &encode(e)?).map_err(w)?;
    }
    wal.sync().map_err(w)?;
    Ok(())
}

impl LogStore {
    /// Recover the raft log state from an opened WAL and start its group
    /// commit thread.
    pub fn open<F: Fs>(wal: Wal<F>) -> io::Result<(Self, Worker<F>)> {
        Self::open_observed(wal, None)
    }

    /// [`LogStore::open`], reporting every WAL sync to `observer`.
    pub fn open_observed<F: Fs>(
        mut wal: Wal<F>,
        observer: Option<ferrocd_wal::SyncObserver>,
    ) -> io::Result<(Self, Worker<F>)> {
        let meta = wal.meta().clone();
        let vote: Option<Vote> = meta.get(&META_VOTE).map(|b| decode(b)).transpose()?;
        let committed: Option<LogId> = match meta.get(&META_COMMITTED) {
            Some(b) => decode(b)?,
            None => None,
        };
        let last_purged: Option<LogId> = match meta.get(&META_PURGED) {
            Some(b) => decode(b)?,
            None => None,
        };
        let mut last_log_id = last_purged;
        let mut inner = Inner {
            cache: VecDeque::new(),
            cache_bytes: 0,
            first_index: None,
            wal_next: wal.next_index(),
            last_log_id: None,
            last_purged,
            vote,
            committed,
            committed_dirty: false,
        };
        if let Some(last) = wal.last_index() {
            // Warm the cache with the tail (a restart re-applies it).
            let purged = last_purged.map_or(0, |l| l.index());
            let first = wal
                .first_index()
                .unwrap_or(0)
                .max(last_purged.map_or(0, |_| purged + 1));
            if first <= last {
                let from = first.max(last.saturating_sub(4096));
                for (index, payload) in wal.entries(from, last).map_err(wal_err)? {
                    let e: Entry = decode(&payload)?;
                    if e.index() != index {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("wal entry {index} holds raft index {}", e.index()),
                        ));
                    }
                    last_log_id = Some(e.log_id());
                    inner.push(e, payload.len());
                }
            }
        }
        inner.last_log_id = last_log_id;
        if let (Some(first), Some(_)) = (wal.first_index(), wal.last_index()) {
            inner.first_index = Some(first.max(last_purged.map_or(0, |l| l.index() + 1)));
        }
        let (gc, worker) = GroupCommit::start_observed(wal, observer);
        Ok((
            Self {
                gc,
                inner: Arc::new(Mutex::new(inner)),
            },
            worker,
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("log store lock")
    }

    /// Write the pending committed hint now (clean shutdown).
    pub async fn flush(&self) -> io::Result<()> {
        let ops = {
            let mut i = self.lock();
            if !i.committed_dirty {
                return Ok(());
            }
            i.committed_dirty = false;
            vec![WalOp::Meta {
                key: META_COMMITTED,
                payload: encode(&i.committed)?,
            }]
        };
        self.gc.commit(ops).await.map(|_| ()).map_err(wal_err)
    }

    async fn read_range(&self, start: u64, end_inclusive: u64) -> io::Result<Vec<Entry>> {
        let start = {
            let i = self.lock();
            match i.first_index {
                Some(f) => start.max(f),
                None => return Ok(Vec::new()),
            }
        };
        if start > end_inclusive {
            return Ok(Vec::new());
        }
        {
            let i = self.lock();
            if let Some((front, _)) = i.cache.front()
                && front.index() <= start
            {
                let off = (start - front.index()) as usize;
                return Ok(i
                    .cache
                    .iter()
                    .skip(off)
                    .take_while(|(e, _)| e.index() <= end_inclusive)
                    .map(|(e, _)| e.clone())
                    .collect());
            }
        }
        let raw = self.gc.read(start, end_inclusive).await.map_err(wal_err)?;
        raw.iter().map(|(_, p)| decode(p)).collect()
    }
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s + 1,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => *e,
        Bound::Excluded(e) => match e.checked_sub(1) {
            Some(e) => e,
            None => return (1, 0),
        },
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (start, end) = bounds(&range);
        let last = match self.lock().last_log_id {
            Some(l) => l.index(),
            None => return Ok(Vec::new()),
        };
        self.read_range(start, end.min(last)).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.lock().vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let i = self.lock();
        Ok(LogState {
            last_purged_log_id: i.last_purged,
            last_log_id: i.last_log_id.or(i.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let payload = encode(vote)?;
        self.gc
            .commit(vec![WalOp::Meta {
                key: META_VOTE,
                payload,
            }])
            .await
            .map_err(wal_err)?;
        self.lock().vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        let mut i = self.lock();
        i.committed = committed;
        i.committed_dirty = true;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut ops = Vec::new();
        let mut encoded = Vec::new();
        let mut first_new = None;
        // One entry the proposer marked as a single voter's batch.
        let mut sync_here = None;
        for e in entries {
            sync_here = match (sync_here, &e.payload) {
                (None, openraft::EntryPayload::Normal(p)) => Some(p.wants_sync_here()),
                _ => Some(false),
            };
            let payload = encode(&e)?;
            first_new.get_or_insert(e.index());
            encoded.push((e, payload.len()));
            ops.push(WalOp::Entry {
                index: encoded.last().expect("pushed").0.index(),
                payload,
            });
        }
        let pending = {
            let mut i = self.lock();
            if let Some(f) = first_new {
                if i.wal_next.is_some_and(|n| n != f) {
                    // The log jumps (a snapshot was installed past the
                    // WAL's end, or below it): restart the WAL at `f`.
                    ops.insert(0, WalOp::Reset { next: f });
                    i.first_index = Some(f);
                }
                let last = f + encoded.len() as u64 - 1;
                i.wal_next = Some(last + 1);
            }
            if i.committed_dirty {
                i.committed_dirty = false;
                ops.push(WalOp::Meta {
                    key: META_COMMITTED,
                    payload: encode(&i.committed)?,
                });
            }
            for (e, size) in encoded {
                if i.first_index.is_none() {
                    i.first_index = Some(e.index());
                }
                i.last_log_id = Some(e.log_id());
                i.push(e, size);
            }
            // Submitted (or written here) under the lock so the WAL sees
            // appends in the order the cache does.
            if sync_here == Some(true) {
                match self.gc.try_commit_here(ops) {
                    Ok(r) => {
                        drop(i);
                        let r = r.map(|_| ()).map_err(wal_err);
                        if let Err(e) = &r {
                            tracing::error!(error = %e, "wal append failed");
                        }
                        callback.io_completed(r);
                        return Ok(());
                    }
                    Err(ops) => self.gc.submit(ops),
                }
            } else {
                self.gc.submit(ops)
            }
        };
        tokio::spawn(async move {
            let r = pending.await.map(|_| ()).map_err(wal_err);
            if let Err(e) = &r {
                tracing::error!(error = %e, "wal append failed");
            }
            callback.io_completed(r);
        });
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |l| l.index() + 1);
        {
            let mut i = self.lock();
            i.truncate_from(from);
            if i.last_log_id.is_some_and(|l| l.index() >= from) {
                i.last_log_id = last_log_id.or(i.last_purged);
            }
            if i.first_index.is_some_and(|f| f >= from) {
                i.first_index = None;
            }
            if i.wal_next.is_none_or(|n| from < n) {
                i.wal_next = (from > 0).then_some(from);
            }
        }
        self.gc
            .commit(vec![WalOp::Truncate { index: from }])
            .await
            .map_err(wal_err)?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        self.gc
            .commit(vec![WalOp::Meta {
                key: META_PURGED,
                payload: encode(&Some(log_id))?,
            }])
            .await
            .map_err(wal_err)?;
        {
            let mut i = self.lock();
            i.last_purged = Some(log_id);
            i.purge_to(log_id.index());
            i.first_index = i
                .first_index
                .map(|f| f.max(log_id.index() + 1))
                .filter(|f| i.last_log_id.is_some_and(|l| *f <= l.index()));
            if i.last_log_id.is_none_or(|l| l.index() < log_id.index()) {
                i.last_log_id = Some(log_id);
            }
        }
        self.gc
            .purge_before(log_id.index() + 1)
            .await
            .map_err(wal_err)?;
        Ok(())
    }
}
