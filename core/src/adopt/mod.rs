//! Adopting an etcd data dir: ferrocd started on what etcd 3.4 or 3.5 left
//! on disk (the unit-file swap) continues as the same member of the same
//! cluster, with every key, revision, lease, user, role and member.
//!
//! What is read (never written: etcd's files stay as they were, so going
//! back to etcd is possible):
//! - the backend `member/snap/db` (bbolt) at its consistent index C:
//!   keys with their revisions and versions, the compacted revision,
//!   leases, the auth store ([`crate::backend::load`]);
//! - etcd's newest usable `.snap` (membership and removed members, from
//!   its v2 store) and its WAL from there ([`ferrocd_wal::etcd`]): the
//!   member and cluster ids, the hard state, and the entries.
//!
//! What is written, all under `<data-dir>/ferrocd.adopting/` (and
//! `<wal-dir>/ferrocd.adopting/` with `--wal-dir`), then renamed to
//! `ferrocd/` and made durable, then the data dir's marker with format 2
//! (`datadir::FORMAT_ADOPTED`) — the commit point:
//! - `ids` (etcd's member and cluster ids);
//! - a snapshot at log id (term of C, C): the backend's store, the
//!   membership as of C (the `.snap`'s, then every conf change and member
//!   attribute publication in the WAL up to C), auth, removed members;
//! - a WAL whose log continues after C with every entry etcd's WAL holds
//!   after C, at the same index and term, translated
//!   ([`requests::translate`]): client requests become ferrocd's requests
//!   (applied by raft at start exactly as ferrocd applies its own), conf
//!   changes and member attributes become membership entries, the rest
//!   blank entries. Uncommitted entries are carried too: raft decides
//!   about them as etcd's raft would have. The vote is for this member in
//!   a term above every term etcd saw, so the first election is new.
//!
//! A crash before the marker leaves etcd's dir untouched plus ferrocd's
//! half-written dirs, which the next start removes before adopting again;
//! after the marker the member is ferrocd's. Members of a cluster adopted
//! one by one may stand at different indexes: entries carry etcd's terms
//! and indexes, so raft levels them (a member behind gets the leader's
//! entries or its snapshot).
//!
//! Refused, with nothing changed: an etcd 3.4 dir whose v2 store holds
//! user keys (ferrocd has no v2 store yet), a WAL that holds v2 writes of
//! user data, a member that its cluster removed, a backend older than
//! etcd's snapshot, a WAL that ends before the backend's consistent index,
//! etcd's WAL or `.snap` damage (as etcd would refuse it).

pub(crate) mod requests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use ferrocd_mvcc as mvcc;
use ferrocd_wal::etcd::{self, ConfChange, ConfChangeKind, EntryKind};
use ferrocd_wal::{self as wal, UringFs};
use openraft::EntryPayload;
use openraft::vote::RaftLeaderId;

use crate::config::Config;
use crate::datadir::{self, FORMAT_ADOPTED, Layout};
use crate::membership::ids::{Ids, write_ids};
use crate::raft::{Entry, LogId, Member, Proposal, TypeConfig, Vote};
use requests::{TranslateError, Translated};

/// The staging dir's name, beside `ferrocd/`.
const STAGING: &str = "ferrocd.adopting";

/// The log id of etcd's entry (`term`, `index`): etcd's entries have no
/// leader id, so every adopted entry names leader 0 (no member has id 0),
/// the same on every member of an adopted cluster.
fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(
        openraft::alias::LeaderIdOf::<TypeConfig>::new(term, 0).to_committed(),
        index,
    )
}

/// etcd's membership as it evolves through the log.
#[derive(Debug, Default, Clone)]
struct Members {
    nodes: BTreeMap<u64, Member>,
    learners: BTreeSet<u64>,
    removed: BTreeSet<u64>,
}

impl Members {
    fn from_snapshot(snap: Option<&etcd::Snapshot>) -> Members {
        let mut m = Members::default();
        if let Some(s) = snap {
            for x in &s.store.members {
                m.nodes.insert(
                    x.id,
                    Member {
                        name: x.name.clone(),
                        peer_urls: x.peer_urls.clone(),
                        client_urls: x.client_urls.clone(),
                    },
                );
                if x.is_learner {
                    m.learners.insert(x.id);
                }
            }
            m.removed.extend(s.store.removed.iter().copied());
        }
        m
    }

    /// Apply a conf change entry (etcd's `ApplyConfChange` on its member
    /// list).
    fn conf_change(&mut self, data: &[u8], index: u64) -> anyhow::Result<()> {
        let cc = ConfChange::decode(data).with_context(|| format!("etcd entry {index}"))?;
        let member = cc.member().with_context(|| format!("etcd entry {index}"))?;
        match cc.kind {
            ConfChangeKind::AddNode | ConfChangeKind::AddLearnerNode => {
                let learner = cc.kind == ConfChangeKind::AddLearnerNode;
                match (self.nodes.get_mut(&cc.node_id), member) {
                    // A learner promoted (etcd 3.5 proposes AddNode for it).
                    (Some(_), _) if !learner => {
                        self.learners.remove(&cc.node_id);
                    }
                    (_, Some(m)) => {
                        self.nodes.insert(
                            cc.node_id,
                            Member {
                                name: m.name,
                                peer_urls: m.peer_urls,
                                client_urls: m.client_urls,
                            },
                        );
                        if learner || m.is_learner {
                            self.learners.insert(cc.node_id);
                        } else {
                            self.learners.remove(&cc.node_id);
                        }
                    }
                    (_, None) => bail!("etcd entry {index}: a member added without its attributes"),
                }
            }
            ConfChangeKind::RemoveNode => {
                self.nodes.remove(&cc.node_id);
                self.learners.remove(&cc.node_id);
                self.removed.insert(cc.node_id);
            }
            ConfChangeKind::UpdateNode => {
                if let (Some(n), Some(m)) = (self.nodes.get_mut(&cc.node_id), member) {
                    n.peer_urls = m.peer_urls;
                }
            }
        }
        Ok(())
    }

    fn attributes(&mut self, id: u64, name: String, client_urls: Vec<String>) {
        // etcd ignores attributes of a member that is gone.
        if let Some(n) = self.nodes.get_mut(&id) {
            n.name = name;
            n.client_urls = client_urls;
        }
    }

    fn membership(&self) -> anyhow::Result<openraft::Membership<u64, Member>> {
        let voters: BTreeSet<u64> = self
            .nodes
            .keys()
            .filter(|id| !self.learners.contains(id))
            .copied()
            .collect();
        if voters.is_empty() {
            bail!("etcd's membership has no voting member");
        }
        openraft::Membership::new(vec![voters], self.nodes.clone())
            .map_err(|e| anyhow::anyhow!("etcd's membership: {e}"))
    }
}

/// Remove what an adoption cut short left (no marker yet: nothing of it
/// was ever served).
fn remove_leftovers(dirs: &[PathBuf]) -> anyhow::Result<()> {
    for d in dirs {
        match std::fs::symlink_metadata(d) {
            Ok(_) => {
                tracing::info!(dir = %d.display(), "removing an adoption that was cut short");
                std::fs::remove_dir_all(d).with_context(|| format!("removing {}", d.display()))?;
                if let Some(p) = d.parent() {
                    sync_dir(p)?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", d.display())),
        }
    }
    Ok(())
}

/// The file layer's directory fsync (what the WAL and snapshots use).
fn sync_dir(p: &Path) -> anyhow::Result<()> {
    wal::Fs::sync_dir(&UringFs, p).with_context(|| format!("syncing {}", p.display()))
}

/// Where adoption stops early: a test hook (`FERROCD_ADOPT_CRASH_AFTER`
/// = `staged` | `renamed`) that exits the process there, as a crash
/// would, so the tests can show the next start recovers.
fn crash_point(step: &str) {
    if std::env::var("FERROCD_ADOPT_CRASH_AFTER").is_ok_and(|s| s == step) {
        tracing::error!(step, "FERROCD_ADOPT_CRASH_AFTER: exiting as a crash would");
        std::process::exit(86);
    }
}

/// Adopt the etcd data dir at `cfg.data_dir` (see the module docs).
pub(crate) fn adopt(cfg: &Config, found: &[String]) -> anyhow::Result<()> {
    let t = Instant::now();
    let data_dir = &cfg.data_dir;
    tracing::info!(
        data_dir = %data_dir.display(),
        found = ?found,
        "found an etcd data dir: adopting it (etcd's files are only read)"
    );
    let layout = Layout::of(FORMAT_ADOPTED, data_dir, cfg.wal_dir.as_deref());
    let staging = data_dir.join(STAGING);
    let staging_wal = match &cfg.wal_dir {
        Some(w) => w.join(STAGING),
        None => staging.join("wal"),
    };
    let mut leftovers = vec![staging.clone(), layout.member_dir.clone()];
    if cfg.wal_dir.is_some() {
        leftovers.push(staging_wal.clone());
        leftovers.push(layout.wal_dir.clone());
    }
    remove_leftovers(&leftovers)?;

    let db = data_dir.join("member").join("snap").join("db");
    if !db.is_file() {
        bail!(
            "{}: etcd's backend is missing; ferrocd adopts an etcd data dir with its backend \
             and WAL (nothing was changed)",
            db.display()
        );
    }
    let md = etcd::read_member(data_dir, cfg.wal_dir.as_deref())
        .context("reading etcd's WAL and snapshots (nothing was changed)")?;
    if let Some(tt) = &md.wal.torn_tail {
        tracing::warn!(
            file = %tt.file.display(),
            offset = tt.offset,
            reason = %tt.reason,
            "etcd's WAL ends in a torn write (as etcd would, reading up to it)"
        );
    }
    if let Some(s) = &md.snapshot
        && s.store.user_nodes > 0
    {
        bail!(
            "{}: etcd's v2 store holds {} user keys or dirs; ferrocd has no v2 store yet, so \
             adopting this dir would lose them (nothing was changed): migrate them to v3 first \
             (etcdctl migrate with etcd 3.4) or keep running etcd",
            s.file.display(),
            s.store.user_nodes
        );
    }
    let me = md.wal.metadata.node_id;
    let cluster = md.wal.metadata.cluster_id;

    let file = std::fs::File::open(&db).with_context(|| format!("opening {}", db.display()))?;
    // SAFETY: etcd is stopped (its flock on the backend is not held; the
    // unit-file swap starts ferrocd after etcd exits) and this process
    // never writes the file; the map is dropped before this returns.
    let map = unsafe { memmap2::Mmap::map(&file) }
        .with_context(|| format!("mapping {}", db.display()))?;
    let loaded = crate::backend::load(
        &map,
        mvcc::Config {
            compaction_batch: cfg.compaction_batch_limit.max(1),
            ..mvcc::Config::default()
        },
    )
    .with_context(|| format!("reading etcd's backend {}", db.display()))?;
    drop(map);
    let c = loaded.consistent_index;
    let from = md.wal.from;
    if c < from.index {
        bail!(
            "etcd's backend is at index {c}, older than its snapshot at {} (etcd would not \
             start on this dir either; nothing was changed)",
            from.index
        );
    }

    // Membership up to C; the term of entry C.
    let mut members = Members::from_snapshot(md.snapshot.as_ref());
    let mut term_c = (c == from.index).then_some(from.term);
    for e in md.wal.entries.iter().take_while(|e| e.index <= c) {
        if e.index == c {
            term_c = Some(e.term);
        }
        match e.kind {
            EntryKind::ConfChange => members.conf_change(&e.data, e.index)?,
            EntryKind::ConfChangeV2 => bail!(
                "etcd entry {}: a ConfChangeV2 (joint consensus), which etcd 3.4 and 3.5 never \
                 write; nothing was changed",
                e.index
            ),
            EntryKind::Normal => {
                if let Translated::MemberAttributes {
                    id,
                    name,
                    client_urls,
                } = translated(cfg, &e.data, e.index, e.term)?
                {
                    members.attributes(id, name, client_urls);
                }
            }
        }
    }
    let Some(term_c) = term_c else {
        bail!(
            "etcd's WAL ends at index {} before its backend's consistent index {c} (nothing was \
             changed)",
            md.wal.last_index()
        );
    };
    if members.removed.contains(&me) {
        bail!(
            "etcd member {me:x} was removed from its cluster; its data dir must not be used \
             again (nothing was changed)"
        );
    }
    let snapshot_members = members.clone();
    let base = log_id(term_c, c);

    // The tail after C, entry for entry.
    let mut tail = Vec::new();
    for e in md.wal.entries.iter().filter(|e| e.index > c) {
        let payload = match e.kind {
            EntryKind::ConfChange => {
                members.conf_change(&e.data, e.index)?;
                EntryPayload::Membership(members.membership()?)
            }
            EntryKind::ConfChangeV2 => bail!(
                "etcd entry {}: a ConfChangeV2 (joint consensus), which etcd 3.4 and 3.5 never \
                 write; nothing was changed",
                e.index
            ),
            EntryKind::Normal => match translated(cfg, &e.data, e.index, e.term)? {
                Translated::Command(cmd) => EntryPayload::Normal(
                    Proposal::single(&cmd).with_context(|| format!("etcd entry {}", e.index))?,
                ),
                Translated::MemberAttributes {
                    id,
                    name,
                    client_urls,
                } => {
                    members.attributes(id, name, client_urls);
                    EntryPayload::Membership(members.membership()?)
                }
                Translated::Skip(_) => EntryPayload::Blank,
            },
        };
        tail.push(Entry {
            log_id: log_id(e.term, e.index),
            payload,
        });
    }
    let last_term = md.wal.entries.last().map_or(from.term, |e| e.term);
    let hs = md.wal.hard_state;
    let commit = hs.commit.min(md.wal.last_index());
    let committed = (commit > c).then(|| {
        let term = md
            .wal
            .entries
            .iter()
            .find(|e| e.index == commit)
            .map_or(term_c, |e| e.term);
        log_id(term, commit)
    });
    // A vote for itself in a term above every term etcd saw: the next
    // election is a new term everywhere.
    let vote = Vote::new(hs.term.max(last_term) + 1, me);

    // Stage.
    let fs = UringFs;
    wal::create_dir_all_durable(&fs, &staging)
        .with_context(|| format!("creating {}", staging.display()))?;
    write_ids(
        &staging,
        Ids {
            cluster_id: cluster,
            member_id: me,
        },
    )?;
    crate::raft::write_snapshot_at(
        &staging.join("snap"),
        &loaded.store,
        base,
        snapshot_members.membership()?,
        loaded.auth,
        Vec::new(),
        snapshot_members.removed.iter().copied().collect(),
    )
    .context("writing ferrocd's first snapshot")?;
    wal::create_dir_all_durable(&fs, &staging_wal)
        .with_context(|| format!("creating {}", staging_wal.display()))?;
    {
        let (mut log, _) = wal::Wal::open(fs, &staging_wal, wal::Config::default())
            .with_context(|| format!("creating the WAL in {}", staging_wal.display()))?;
        crate::raft::write_adopted(&mut log, base, &tail, vote, committed)
            .context("writing ferrocd's WAL")?;
    }
    sync_dir(&staging)?;
    crash_point("staged");

    // Switch: the WAL first (with --wal-dir), then the member dir, then
    // the marker.
    if cfg.wal_dir.is_some() {
        std::fs::rename(&staging_wal, &layout.wal_dir)
            .with_context(|| format!("renaming {}", staging_wal.display()))?;
        sync_dir(layout.wal_dir.parent().expect("the wal dir's parent"))?;
    }
    std::fs::rename(&staging, &layout.member_dir)
        .with_context(|| format!("renaming {}", staging.display()))?;
    sync_dir(data_dir)?;
    crash_point("renamed");
    datadir::write_marker_format(data_dir, FORMAT_ADOPTED)?;
    tracing::info!(
        member_id = %format!("{me:x}"),
        cluster_id = %format!("{cluster:x}"),
        consistent_index = c,
        revision = loaded.store.revision(),
        compacted = loaded.store.snapshot().compact_revision(),
        wal_tail_entries = tail.len(),
        committed = commit,
        members = members.nodes.len(),
        ms = t.elapsed().as_millis() as u64,
        dir = %layout.member_dir.display(),
        "adopted the etcd data dir (etcd's files are unchanged; see README \"Moving from etcd\" \
         for the way back)"
    );
    Ok(())
}

fn translated(cfg: &Config, data: &[u8], index: u64, term: u64) -> anyhow::Result<Translated> {
    // etcd's apply raised a shorter TTL to its minimum, ferrocd's takes
    // it as given; every member of an adopted cluster runs with etcd's
    // same timing flags, so each translates an entry the same way.
    requests::translate_with(data, index, term, cfg.min_lease_ttl()).map_err(|e| match e {
        TranslateError::V2Data { path } => anyhow::anyhow!(
            "etcd entry {index} writes v2 key {path:?}; ferrocd has no v2 store yet, so \
             adopting this dir would lose it (nothing was changed)"
        ),
        e => anyhow::anyhow!("etcd entry {index}: {e} (nothing was changed)"),
    })
}

/// Decode and translate one etcd entry payload (an `EntryNormal`'s data)
/// as adoption does, with etcd's default timing: the fuzz target's and the
/// corpus replay's entry point. `Err` holds why it is refused.
pub fn check_entry(data: &[u8], index: u64, term: u64) -> Result<(), String> {
    requests::translate_with(data, index, term, 2)
        .map(|_| ())
        .map_err(|e| e.to_string())
}
