//! openraft's state machine on the `mvcc` store.
//!
//! Apply: the entries openraft hands over in one call are applied in one
//! `mvcc::WriteBatch` (each request gets its own revision, as in etcd) and
//! published with one commit; then the watch hub hears the batch's
//! events, the lessor hears grants and revokes, and the proposers waiting
//! on these entries get their results. A write is therefore answered only
//! after it is durable (openraft applies committed entries only) and
//! visible to readers.
//!
//! Snapshots are mvcc snapshots inside the `wal` crate's snapshot files
//! (`snap/<term>-<index>.snap`); the payload starts with openraft's
//! snapshot meta and the node's own replicated state that does not live
//! in the store (the alarm list; see docs/FORMAT.md, "Raft snapshot
//! payload"). They are loaded through a memory map: records stay in the
//! mapping.
//!
//! Alarms (etcd's `alarm` bucket): `Op::Alarm` raises or clears an alarm
//! on every member; while any NOSPACE alarm is raised, puts, txns with a
//! put and lease grants are refused at apply (etcd's capped applier), so
//! every member refuses the same writes.
//!
//! Backend size (see DESIGN.md, "Space"): `db_size` is the newest
//! snapshot file plus the record bytes written since it; `db_size_in_use`
//! is the live record bytes.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use ferrocd_mvcc as mvcc;
use ferrocd_wal::{SnapStore, SnapshotFile, UringFs};
use futures_util::{Stream, TryStreamExt};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};

use crate::auth::{AuthState, SimpleTokens, TokenEffect};

use super::applied::AppliedState;
use super::applied_index::AppliedIndex;
use super::apply::{Apply, LeaseChange};
use super::sessions::Sessions;
use super::{Command, Entry, LogId, Outcomes, TypeConfig, decode, encode};
use crate::lessor::Lessor;
use crate::watches::Watches;
use ferrocd_net::Metrics;

/// etcd's `warnApplyDuration`: an apply slower than this is counted in
/// `etcd_server_slow_apply_total`.
const SLOW_APPLY: std::time::Duration = std::time::Duration::from_millis(100);

type Membership = openraft::alias::StoredMembershipOf<TypeConfig>;
type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotData>;

/// The backend's size as etcd's Status reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbSize {
    /// etcd's `dbSize`: the newest snapshot file plus the record bytes
    /// written since (they sit in the WAL until the next snapshot).
    /// Compaction does not lower it; a new snapshot (Defragment) does.
    pub total: u64,
    /// etcd's `dbSizeInUse`: bytes of the records the store holds (every
    /// revision not compacted away).
    pub in_use: u64,
}

/// A snapshot handed to openraft: a verified file in the snap directory.
#[derive(Debug, Clone)]
pub struct SnapshotData {
    /// The file.
    pub file: SnapshotFile,
}

/// What a snapshot payload starts with besides openraft's meta: state
/// the node replicates outside the store. Encoded (postcard) right after
/// the meta, inside the length-prefixed area, so a file written before
/// it existed (meta only) still loads, with no alarms; the request
/// sessions follow as a value of their own, so a file written before
/// they existed loads with none, and the removed member ids follow them
/// the same way.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct NodeState {
    /// Raised alarms, (member id, alarm type), ascending.
    alarms: Vec<(u64, i32)>,
    /// The auth store.
    auth: AuthState,
    /// Requests seen (exactly-once apply), encoded after the two above.
    #[serde(skip)]
    sessions: Sessions,
    /// Members removed from the cluster (etcd's `members_removed`),
    /// ascending, encoded after the sessions.
    #[serde(skip)]
    removed: Vec<u64>,
}

/// The newest snapshot file's bytes (0: none) and the store's
/// `written_bytes` as of it.
#[derive(Debug, Clone, Copy)]
struct SnapshotSize {
    bytes: u64,
    written_at: u64,
}

/// State shared by the state machine, the snapshot builder and the node.
pub struct SmShared {
    /// The store.
    pub store: Arc<mvcc::Store>,
    /// Watchers.
    pub watches: Arc<Watches>,
    /// Lease deadlines.
    pub lessor: Mutex<Lessor>,
    applied: Mutex<AppliedState>,
    /// The applied index, published after each batch, and its waiters.
    pub applied_index: Arc<AppliedIndex>,
    /// The newest snapshot's size, for `db_size`: a lock of its own,
    /// because every write's quota check reads it on a shard thread while
    /// the apply loop holds `applied` for a whole batch.
    snapshot_size: Mutex<SnapshotSize>,
    snaps: SnapStore<UringFs>,
    max_snapshots: usize,
    pub(crate) metrics: Metrics,
    /// Set when a compaction left physical work for the background.
    compacting: Mutex<bool>,
    /// When the first chunk of the snapshot being received from the
    /// leader came (`etcd_snap_db_save_total_duration_seconds`).
    pub(crate) receiving_snapshot: Mutex<Option<Instant>>,
    /// The replicated auth store (replaced whole on every change).
    pub auth: arc_swap::ArcSwap<AuthState>,
    /// This member's simple tokens.
    pub tokens: Mutex<SimpleTokens>,
    /// Members removed from the cluster (replicated: changed by applying
    /// membership entries, under the applied lock, and saved in
    /// snapshots). Read without a lock by the peer port on every request.
    removed: arc_swap::ArcSwap<std::collections::BTreeSet<u64>>,
    /// Store views taken for snapshots (built or installed) by this
    /// process, numbered from 1 (taken under the applied lock).
    snap_views: AtomicU64,
    /// The highest such number whose snapshot is saved (Defragment waits
    /// for one whose view was taken after it finished compacting).
    snap_saved: AtomicU64,
}

impl std::fmt::Debug for SmShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmShared")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl SmShared {
    fn applied(&self) -> MutexGuard<'_, AppliedState> {
        self.applied.lock().expect("applied lock")
    }

    /// Requests the exactly-once table holds outcomes for, and its
    /// sessions (for tests and metrics).
    pub fn sessions_held(&self) -> (usize, usize) {
        let a = self.applied();
        (a.sessions.outcomes(), a.sessions.len())
    }

    /// The raised alarms, (member id, alarm type), ascending; only those
    /// of type `alarm` unless it is 0 (NONE: all).
    pub fn alarms(&self, alarm: i32) -> Vec<(u64, i32)> {
        self.applied()
            .alarms
            .iter()
            .filter(|&&(_, a)| alarm == 0 || a == alarm)
            .copied()
            .collect()
    }

    /// Whether alarm `alarm` is raised for `member`.
    pub fn has_alarm(&self, member: u64, alarm: i32) -> bool {
        self.applied().alarms.contains(&(member, alarm))
    }

    /// The backend's size (see [`DbSize`]).
    pub fn db_size(&self) -> DbSize {
        let s = *self.snapshot_size.lock().expect("snapshot size lock");
        let view = self.store.snapshot();
        DbSize {
            total: s.bytes + view.written_bytes().saturating_sub(s.written_at),
            in_use: view.size_bytes(),
        }
    }

    /// How many store views were taken for snapshots so far: a snapshot
    /// numbered above this one shows the store as it is now or later.
    pub fn snapshot_views(&self) -> u64 {
        self.snap_views.load(Ordering::SeqCst)
    }

    /// The number of the newest snapshot view saved (see
    /// [`SmShared::snapshot_views`]).
    pub fn snapshot_saved(&self) -> u64 {
        self.snap_saved.load(Ordering::SeqCst)
    }

    /// The last applied log id.
    pub fn applied_log_id(&self) -> Option<LogId> {
        self.applied().log_id
    }

    /// A view of the store and the log id applied into it, taken together
    /// (the apply loop commits while holding the applied lock).
    pub fn view_and_log_id(&self) -> (mvcc::ReadView, Option<LogId>, AuthState) {
        let applied = self.applied();
        (
            self.store.snapshot(),
            applied.log_id,
            (**self.auth.load()).clone(),
        )
    }

    /// The applied (committed) membership.
    pub fn applied_membership(&self) -> openraft::Membership<u64, super::Member> {
        self.applied().membership.membership().clone()
    }

    /// Whether member `id` has been removed from the cluster.
    pub fn is_removed(&self, id: u64) -> bool {
        self.removed.load().contains(&id)
    }

    /// The members removed from the cluster, ascending.
    pub fn removed_members(&self) -> Vec<u64> {
        self.removed.load().iter().copied().collect()
    }

    /// Whether member `id` is in the applied (committed) membership.
    pub fn applied_membership_has(&self, id: u64) -> bool {
        self.applied()
            .membership
            .membership()
            .get_node(&id)
            .is_some()
    }

    /// The snapshot directory.
    pub fn snap_dir(&self) -> &Path {
        self.snaps.dir()
    }

    /// Verify snapshot file `term`-`index` in the snap directory.
    pub fn verify_snapshot(&self, term: u64, index: u64) -> io::Result<SnapshotFile> {
        self.snaps.verify(term, index)
    }

    /// Physical compaction, in steps, off the apply path.
    pub fn finish_compaction(&self) {
        // Each step holds the store's writer lock: etcd's compaction
        // pauses, with the key index's part apart.
        self.store.finish_compaction_observed(|step| {
            self.metrics
                .compaction_step(step.keys_removed, step.pause, step.index)
        });
        *self.compacting.lock().expect("compacting lock") = false;
    }
}

/// The state machine handle openraft owns (a clone is the builder).
#[derive(Clone, Debug)]
pub struct StateMachine {
    shared: Arc<SmShared>,
}

/// Bytes in front of the mvcc payload: `u32 LE meta length`, postcard
/// `SnapshotMeta` then postcard [`NodeState`] (both inside that length),
/// zero padding to a multiple of 16 (the mvcc payload must start 16-byte
/// aligned in the mapping).
fn meta_prefix(meta: &SnapshotMeta, node: &NodeState) -> io::Result<Vec<u8>> {
    let mut m = encode(meta)?;
    m.extend_from_slice(&encode(node)?);
    m.extend_from_slice(&encode(&node.sessions)?);
    m.extend_from_slice(&encode(&node.removed)?);
    let mut out = Vec::with_capacity(m.len() + 20);
    out.extend_from_slice(&(m.len() as u32).to_le_bytes());
    out.extend_from_slice(&m);
    out.resize(out.len().next_multiple_of(16), 0);
    Ok(out)
}

/// The openraft meta at the front of a snapshot's payload, and where the
/// mvcc payload behind it starts (offset from the payload's start).
fn parse_meta(file: &SnapshotFile, payload: &[u8]) -> io::Result<(SnapshotMeta, NodeState, usize)> {
    let bad = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {why}", file.path.display()),
        )
    };
    if payload.len() < 4 {
        return Err(bad("payload shorter than its length"));
    }
    let mlen = u32::from_le_bytes(payload[..4].try_into().expect("4 bytes")) as usize;
    let prefix = (4 + mlen).next_multiple_of(16);
    if prefix > payload.len() {
        return Err(bad("snapshot meta longer than the payload"));
    }
    let (meta, rest) = postcard::take_from_bytes::<SnapshotMeta>(&payload[4..4 + mlen])
        .map_err(|e| bad(&format!("snapshot meta: {e}")))?;
    // Files written before the node state existed end here: no alarms.
    let node = if rest.is_empty() {
        NodeState::default()
    } else {
        let (mut node, rest) = postcard::take_from_bytes::<NodeState>(rest)
            .map_err(|e| bad(&format!("node state: {e}")))?;
        // Files written before the sessions existed end here: none.
        if !rest.is_empty() {
            let (sessions, rest) = postcard::take_from_bytes::<Sessions>(rest)
                .map_err(|e| bad(&format!("request sessions: {e}")))?;
            node.sessions = sessions;
            // Files written before removed ids were kept end here: none.
            if !rest.is_empty() {
                node.removed = decode(rest).map_err(|e| bad(&format!("removed members: {e}")))?;
            }
        }
        node
    };
    Ok((meta, node, prefix))
}

/// Write the first snapshot of a restored member (`ferroctl snapshot
/// restore`) into `snap_dir`: `store` as applied up to log index 0 (the
/// index of the entry `Raft::initialize` would write) with `members` as
/// the voters. Every member restored with the same flags writes the same
/// log id and membership, so they form one cluster; openraft starts with
/// the log empty after it and the first leader appends from index 1.
pub fn write_restored_snapshot(
    snap_dir: &Path,
    store: &mvcc::Store,
    members: std::collections::BTreeMap<u64, super::Member>,
    auth: AuthState,
) -> io::Result<SnapshotFile> {
    use openraft::vote::RaftLeaderId;
    let first = *members.keys().next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "a restored cluster needs a member",
        )
    })?;
    let leader = openraft::alias::LeaderIdOf::<TypeConfig>::new(0, first).to_committed();
    let log_id = LogId::new(leader, 0);
    let voters = members.keys().copied().collect();
    let membership = openraft::Membership::new(vec![voters], members)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    write_snapshot_at(
        snap_dir,
        store,
        log_id,
        membership,
        auth,
        Vec::new(),
        Vec::new(),
    )
}

/// Write a snapshot of `store` as applied up to `log_id` with
/// `membership`, the auth store, raised alarms and removed members, into
/// `snap_dir` (a restored member's first snapshot, an adopted etcd
/// member's).
pub(crate) fn write_snapshot_at(
    snap_dir: &Path,
    store: &mvcc::Store,
    log_id: LogId,
    membership: openraft::Membership<u64, super::Member>,
    auth: AuthState,
    alarms: Vec<(u64, i32)>,
    removed: Vec<u64>,
) -> io::Result<SnapshotFile> {
    let meta = SnapshotMeta {
        last_log_id: Some(log_id),
        last_membership: Membership::new(Some(log_id), membership),
    };
    let node = NodeState {
        alarms,
        auth,
        sessions: Sessions::default(),
        removed,
    };
    let prefix = meta_prefix(&meta, &node)?;
    let snaps = SnapStore::open(UringFs, snap_dir)?;
    let view = store.snapshot();
    let (term, index) = (log_id.committed_leader_id().term, log_id.index());
    snaps.save_with(term, index, |w| {
        w.write_all(&prefix)?;
        view.write_snapshot(&mut &mut *w).map(|_| ())
    })
}

/// Map a verified snapshot file and load its meta and store.
fn load_snapshot(
    file: &SnapshotFile,
    config: mvcc::Config,
) -> io::Result<(SnapshotMeta, NodeState, mvcc::Store)> {
    let f = std::fs::File::open(&file.path)?;
    // SAFETY: snapshot files are sealed (written to a temp file, fsynced,
    // renamed) and never modified in place; nothing truncates a file
    // while it is mapped (purge unlinks, which keeps the mapping valid).
    let map = Arc::new(unsafe { memmap2::Mmap::map(&f)? });
    let start = file.payload_offset as usize;
    let end = start + file.payload_len as usize;
    if map.len() < end {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: payload shorter than its length", file.path.display()),
        ));
    }
    let (meta, node, prefix) = parse_meta(file, &map[start..end])?;
    let store = mvcc::Store::load_mapped(map, start + prefix, end - start - prefix, config)
        .map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", file.path.display()),
            )
        })?;
    Ok((meta, node, store))
}

/// Bytes a snapshot file takes on disk.
fn file_bytes(file: &SnapshotFile) -> u64 {
    std::fs::metadata(&file.path).map_or(file.payload_offset + file.payload_len, |m| m.len())
}

/// Only the meta of a verified snapshot file (a few hundred bytes read;
/// the store behind it stays on disk).
fn read_meta(file: &SnapshotFile) -> io::Result<SnapshotMeta> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(&file.path)?;
    let mut len = [0u8; 4];
    f.read_exact_at(&mut len, file.payload_offset)?;
    let mlen = u32::from_le_bytes(len) as u64;
    let want = (4 + mlen).next_multiple_of(16).min(file.payload_len) as usize;
    let mut head = vec![0u8; want];
    f.read_exact_at(&mut head, file.payload_offset)?;
    parse_meta(file, &head).map(|(m, _, _)| m)
}

impl StateMachine {
    /// Open the state machine on `snap_dir`: the newest valid snapshot, or
    /// an empty store.
    pub fn open(
        snap_dir: &Path,
        store_config: mvcc::Config,
        watch_config: mvcc::WatchConfig,
        lessor: Lessor,
        metrics: Metrics,
        max_snapshots: usize,
        token_ttl: std::time::Duration,
    ) -> io::Result<Self> {
        let snaps = SnapStore::open(UringFs, snap_dir)?;
        let (log_id, membership, node, snapshot_bytes, store) = match snaps.load_newest_valid()? {
            Some(file) => {
                let t = Instant::now();
                let (meta, node, store) = load_snapshot(&file, store_config)?;
                tracing::info!(
                    file = %file.path.display(),
                    revision = store.revision(),
                    ms = t.elapsed().as_millis() as u64,
                    "loaded snapshot"
                );
                if !node.alarms.is_empty() {
                    tracing::warn!(alarms = ?node.alarms, "alarms raised (from the snapshot)");
                }
                let bytes = file_bytes(&file);
                (meta.last_log_id, meta.last_membership, node, bytes, store)
            }
            None => (
                None,
                Membership::default(),
                NodeState::default(),
                0,
                mvcc::Store::new(store_config),
            ),
        };
        let written_at_snapshot = store.snapshot().written_bytes();
        let now = Instant::now();
        let mut lessor = lessor;
        for (id, ttl) in store.snapshot().lease_ttls() {
            lessor.grant(id, ttl, now);
        }
        let watches = Arc::new(Watches::new(
            watch_config,
            store.revision(),
            metrics.clone(),
        ));
        Ok(Self {
            shared: Arc::new(SmShared {
                store: Arc::new(store),
                watches,
                lessor: Mutex::new(lessor),
                applied_index: Arc::new(AppliedIndex::new(log_id.map_or(0, |l| l.index()))),
                applied: Mutex::new(AppliedState {
                    log_id,
                    membership,
                    alarms: node.alarms.into_iter().collect(),
                    sessions: node.sessions,
                }),
                snapshot_size: Mutex::new(SnapshotSize {
                    bytes: snapshot_bytes,
                    written_at: written_at_snapshot,
                }),
                snaps,
                max_snapshots,
                metrics,
                compacting: Mutex::new(false),
                receiving_snapshot: Mutex::new(None),
                auth: arc_swap::ArcSwap::from_pointee(node.auth),
                removed: arc_swap::ArcSwap::from_pointee(node.removed.into_iter().collect()),
                tokens: Mutex::new(SimpleTokens::new(token_ttl)),
                snap_views: AtomicU64::new(0),
                snap_saved: AtomicU64::new(0),
            }),
        })
    }

    /// The shared state.
    pub fn shared(&self) -> Arc<SmShared> {
        self.shared.clone()
    }

    /// Apply a batch of committed entries (no await): each entry's
    /// commands in order through [`Apply`], one store commit for the
    /// batch, then the side effects. Returns each entry's [`Outcomes`]
    /// (empty for blank and membership entries), which openraft's apply
    /// hands to the entries' proposers.
    pub fn apply_entries(&self, entries: Vec<Entry>) -> io::Result<Vec<Outcomes>> {
        let sh = &*self.shared;
        let started = Instant::now();
        let mut a = Apply::new(sh.store.write(), sh.applied(), sh.auth.load_full());
        let mut replies = Vec::with_capacity(entries.len());
        let mut last = None;
        for entry in entries {
            let index = entry.index();
            a.wb.set_consistent_index(index);
            last = Some(entry.log_id());
            let outcomes = match &entry.payload {
                EntryPayload::Blank => Outcomes::default(),
                EntryPayload::Membership(m) => {
                    // A member in the last membership and not in this one
                    // is removed for good (etcd's `members_removed`): its
                    // peer requests are answered "removed" from now on.
                    let gone: Vec<u64> = a
                        .applied
                        .membership
                        .membership()
                        .nodes()
                        .map(|(id, _)| *id)
                        .filter(|id| m.get_node(id).is_none())
                        .collect();
                    if !gone.is_empty() {
                        let mut set = (**sh.removed.load()).clone();
                        set.extend(gone);
                        sh.removed.store(Arc::new(set));
                    }
                    a.applied.membership = Membership::new(Some(entry.log_id()), m.clone());
                    Outcomes::default()
                }
                // The leader applies the commands it built; every other
                // member (and the leader after a restart) decodes them.
                EntryPayload::Normal(p) => {
                    // Each request timed by its kind and outcome
                    // (`etcd_server_apply_duration_seconds`).
                    let mut timed = |cmd: &Command| {
                        let t = Instant::now();
                        let r = a.command(cmd, index);
                        let ok = matches!(r, Ok(_) | Err(ferrocd_net::EtcdError::Compacted));
                        sh.metrics
                            .observe_apply(cmd.op.apply_label(), ok, t.elapsed());
                        r
                    };
                    Outcomes(match p.take_local() {
                        Some(cmds) => cmds.iter().map(|c| timed(c)).collect(),
                        None => p.commands()?.iter().map(&mut timed).collect(),
                    })
                }
            };
            replies.push(outcomes);
        }
        let Apply {
            wb,
            mut applied,
            auth,
            auth_changed,
            events,
            leases,
            compacted,
            token_effects,
            ops,
        } = a;
        let revision = wb.revision();
        wb.commit();
        if auth_changed {
            sh.auth.store(auth);
        }
        if !token_effects.is_empty() {
            let now = Instant::now();
            let mut tokens = sh.tokens.lock().expect("tokens lock");
            for e in token_effects {
                tokens.effect(e, now);
            }
        }
        let took = started.elapsed();
        sh.metrics.observe_backend_commit(took);
        sh.metrics.store_ops(&ops);
        // etcd warns about, and counts, an apply over 100 ms; ours apply
        // a batch of entries at a time, so a slow batch counts once.
        if took > SLOW_APPLY {
            sh.metrics.slow_apply();
        }
        if last.is_some() {
            applied.log_id = last;
        }
        drop(applied);
        if let Some(last) = last {
            sh.applied_index.publish(last.index());
        }

        sh.watches.notify(revision, &events);
        if !leases.is_empty() {
            // In log order (issue #19's batch model test: all grants then
            // all revokes lost a lease granted again after its revoke).
            let now = Instant::now();
            let mut lessor = sh.lessor.lock().expect("lessor lock");
            for change in leases {
                match change {
                    LeaseChange::Grant { id, ttl } => {
                        lessor.grant(id, ttl, now);
                        sh.metrics.lease_granted();
                        sh.metrics.observe_lease_ttl(ttl);
                    }
                    LeaseChange::Revoke { id } => {
                        lessor.revoke(id);
                        sh.metrics.lease_revoked();
                    }
                }
            }
        }
        if compacted {
            let mut c = sh.compacting.lock().expect("compacting lock");
            if !*c {
                *c = true;
                let shared = self.shared.clone();
                std::thread::Builder::new()
                    .name("compact".into())
                    .spawn(move || {
                        let started = Instant::now();
                        shared.finish_compaction();
                        // One run finishes every compaction applied while
                        // it ran (etcd runs one per Compact).
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs());
                        shared.metrics.compaction_done(started.elapsed(), now);
                    })
                    .expect("spawn the compaction thread");
            }
        }
        Ok(replies)
    }

    fn build(&self) -> io::Result<Snapshot> {
        let sh = &*self.shared;
        let (meta, node, view, number) = {
            let applied = sh.applied();
            let number = sh.snap_views.fetch_add(1, Ordering::SeqCst) + 1;
            let meta = SnapshotMeta {
                last_log_id: applied.log_id,
                last_membership: applied.membership.clone(),
            };
            let node = NodeState {
                alarms: applied.alarms.iter().copied().collect(),
                auth: (**sh.auth.load()).clone(),
                sessions: applied.sessions.clone(),
                removed: sh.removed.load().iter().copied().collect(),
            };
            (meta, node, sh.store.snapshot(), number)
        };
        let (term, index) = meta
            .last_log_id
            .map_or((0, 0), |l| (l.committed_leader_id().term, l.index()));
        let t = Instant::now();
        let prefix = meta_prefix(&meta, &node)?;
        let marshalled = t.elapsed();
        let (file, times) = sh.snaps.save_timed(term, index, |w| {
            w.write_all(&prefix)?;
            view.write_snapshot(&mut &mut *w).map(|_| ())
        })?;
        // etcd's snapshotter: marshalling (our meta, then the store
        // streamed as it is serialized), the file's fsync, the whole save.
        sh.metrics
            .snapshot_saved(marshalled + times.write, times.fsync, t.elapsed());
        tracing::info!(
            file = %file.path.display(),
            revision = view.revision(),
            bytes = file.payload_len,
            ms = t.elapsed().as_millis() as u64,
            "saved snapshot"
        );
        {
            // Newer entries may have applied meanwhile: what they wrote
            // after `view` stays counted.
            *sh.snapshot_size.lock().expect("snapshot size lock") = SnapshotSize {
                bytes: file_bytes(&file),
                written_at: view.written_bytes(),
            };
        }
        sh.snap_saved.fetch_max(number, Ordering::SeqCst);
        if let Err(e) = sh.snaps.purge(sh.max_snapshots) {
            tracing::warn!(error = %e, "purging old snapshots failed");
        }
        Ok(Snapshot {
            meta,
            snapshot: SnapshotData { file },
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.build())
            .await
            .map_err(io::Error::other)?
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, Membership), io::Error> {
        let a = self.shared.applied();
        Ok((a.log_id, a.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut batch = Vec::new();
        while let Some(e) = entries.try_next().await? {
            batch.push(e);
        }
        let (entries, responders): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let outcomes = self.apply_entries(entries)?;
        for (r, o) in responders.into_iter().zip(outcomes) {
            if let Some(r) = r {
                r.send(o);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        let metrics = self.shared.metrics.clone();
        metrics.set_snapshot_applying(true);
        // Boxed: the steps' future is large (see the peer client).
        let r = Box::pin(self.install_snapshot_steps(meta, snapshot)).await;
        metrics.set_snapshot_applying(false);
        r
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let Some(file) = self.shared.snaps.load_newest_valid()? else {
            return Ok(None);
        };
        // Only the meta: the file was verified by `load_newest_valid`, and
        // the store it holds is already the one in memory or the one being
        // sent.
        let meta = read_meta(&file)?;
        Ok(Some(Snapshot {
            meta,
            snapshot: SnapshotData { file },
        }))
    }
}

impl StateMachine {
    /// [`RaftStateMachine::install_snapshot`]'s work.
    async fn install_snapshot_steps(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let sh = &*self.shared;
        // A snapshot received from the leader lives elsewhere until it is
        // ours: copy it into the snap directory (durably), so a restart
        // and `get_current_snapshot` find it.
        let file = if snapshot.file.path.parent() == Some(sh.snaps.dir()) {
            snapshot.file.clone()
        } else {
            let src = snapshot.file.clone();
            let (term, index) = (src.term, src.index);
            let this = self.clone();
            tokio::task::spawn_blocking(move || {
                use std::io::{Read, Seek, SeekFrom};
                let mut f = std::fs::File::open(&src.path)?;
                f.seek(SeekFrom::Start(src.payload_offset))?;
                let mut payload = f.take(src.payload_len);
                let t = Instant::now();
                let (file, times) = this
                    .shared
                    .snaps
                    .save_timed(term, index, |w| std::io::copy(&mut payload, w).map(|_| ()))?;
                // etcd's `.snap.db` save of a leader's snapshot: its fsync
                // and the whole save.
                this.shared
                    .metrics
                    .snapshot_db_saved(times.fsync, t.elapsed());
                Ok::<_, io::Error>(file)
            })
            .await
            .map_err(io::Error::other)??
        };
        let snapshot = SnapshotData { file };
        let (file_meta, node, store) = load_snapshot(&snapshot.file, sh.store.config().clone())?;
        if file_meta.last_log_id != meta.last_log_id {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: snapshot covers {:?}, openraft installs {:?}",
                    snapshot.file.path.display(),
                    file_meta.last_log_id,
                    meta.last_log_id
                ),
            ));
        }
        let mut applied = sh.applied();
        let leases = store.snapshot().lease_ttls();
        let written = store.snapshot().written_bytes();
        sh.store.install(store);
        sh.auth.store(Arc::new(node.auth));
        sh.tokens
            .lock()
            .expect("tokens lock")
            .effect(TokenEffect::Clear, Instant::now());
        applied.log_id = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        applied.alarms = node.alarms.into_iter().collect();
        applied.sessions = node.sessions;
        sh.removed
            .store(Arc::new(node.removed.into_iter().collect()));
        *sh.snapshot_size.lock().expect("snapshot size lock") = SnapshotSize {
            bytes: file_bytes(&snapshot.file),
            written_at: written,
        };
        let number = sh.snap_views.fetch_add(1, Ordering::SeqCst) + 1;
        sh.snap_saved.fetch_max(number, Ordering::SeqCst);
        drop(applied);
        if let Some(last) = meta.last_log_id {
            sh.applied_index.publish(last.index());
        }
        let now = Instant::now();
        let mut lessor = sh.lessor.lock().expect("lessor lock");
        for id in lessor.ids() {
            lessor.revoke(id);
        }
        for (id, ttl) in leases {
            lessor.grant(id, ttl, now);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{ALARM_CORRUPT, ALARM_NOSPACE, Applied, RequestId, Seen};

    fn file() -> SnapshotFile {
        SnapshotFile {
            path: "test.snap".into(),
            term: 1,
            index: 7,
            payload_offset: 0,
            payload_len: 0,
        }
    }

    fn meta() -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: None,
            last_membership: Membership::default(),
        }
    }

    #[test]
    fn node_state_round_trips_behind_the_meta() {
        let mut auth = AuthState::default();
        auth.apply(
            &crate::auth::Caller::Internal,
            &crate::auth::AuthOp::RoleAdd { name: "r".into() },
            1,
        )
        .unwrap();
        let mut sessions = Sessions::default();
        let id = RequestId {
            member: 1,
            incarnation: 2,
            seq: 3,
        };
        assert_eq!(sessions.begin(id, 1, 5), Seen::New);
        sessions.finish(id, &Ok(Applied::Compact(4)));
        let node = NodeState {
            alarms: vec![(3, ALARM_NOSPACE), (9, ALARM_CORRUPT)],
            auth,
            sessions,
            removed: vec![0x11, 0xabcdef],
        };
        let mut payload = meta_prefix(&meta(), &node).unwrap();
        assert_eq!(payload.len() % 16, 0);
        let prefix = payload.len();
        payload.extend_from_slice(b"mvcc payload");
        let (m, n, at) = parse_meta(&file(), &payload).unwrap();
        assert_eq!(m, meta());
        assert_eq!(n, node);
        assert_eq!(at, prefix);
    }

    /// A file written before the node state existed (meta only) loads
    /// with no alarms.
    #[test]
    fn meta_only_payload_loads_without_alarms() {
        let m = encode(&meta()).unwrap();
        let mut payload = (m.len() as u32).to_le_bytes().to_vec();
        payload.extend_from_slice(&m);
        payload.resize(payload.len().next_multiple_of(16), 0);
        let (back, node, _) = parse_meta(&file(), &payload).unwrap();
        assert_eq!(back, meta());
        assert_eq!(node, NodeState::default());
    }

    /// A file written before the request sessions existed (meta, alarms
    /// and auth) loads with none.
    #[test]
    fn node_state_without_sessions_loads() {
        let old = NodeState {
            alarms: vec![(3, ALARM_NOSPACE)],
            ..NodeState::default()
        };
        let mut m = encode(&meta()).unwrap();
        m.extend_from_slice(&encode(&old).unwrap());
        let mut payload = (m.len() as u32).to_le_bytes().to_vec();
        payload.extend_from_slice(&m);
        payload.resize(payload.len().next_multiple_of(16), 0);
        let (_, node, _) = parse_meta(&file(), &payload).unwrap();
        assert_eq!(node, old);
        assert!(node.sessions.is_empty());
    }

    /// A file written before removed members were kept (meta, node
    /// state, sessions) loads with none.
    #[test]
    fn node_state_without_removed_members_loads() {
        let mut sessions = Sessions::default();
        let id = RequestId {
            member: 1,
            incarnation: 2,
            seq: 3,
        };
        assert_eq!(sessions.begin(id, 1, 5), Seen::New);
        let old = NodeState {
            alarms: vec![(3, ALARM_NOSPACE)],
            sessions,
            ..NodeState::default()
        };
        let mut m = encode(&meta()).unwrap();
        m.extend_from_slice(&encode(&old).unwrap());
        m.extend_from_slice(&encode(&old.sessions).unwrap());
        let mut payload = (m.len() as u32).to_le_bytes().to_vec();
        payload.extend_from_slice(&m);
        payload.resize(payload.len().next_multiple_of(16), 0);
        let (_, node, _) = parse_meta(&file(), &payload).unwrap();
        assert_eq!(node, old);
        assert!(node.removed.is_empty());
    }

    #[test]
    fn a_bad_node_state_is_refused() {
        let mut m = encode(&meta()).unwrap();
        m.extend_from_slice(&[0xff; 12]);
        let mut payload = (m.len() as u32).to_le_bytes().to_vec();
        payload.extend_from_slice(&m);
        payload.resize(payload.len().next_multiple_of(16), 0);
        let e = parse_meta(&file(), &payload).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("node state"), "{e}");
    }
}
