//! etcd's `--force-new-cluster`: after losing quorum, restart one
//! member's data as a one-member cluster, keeping every key, revision,
//! lease, user and the cluster id.
//!
//! Before raft starts, the member's effective membership (the last
//! membership entry in its log, else its snapshot's) is replaced by one
//! that holds only this member: a new vote for itself in a term above
//! every term it has seen, then a membership entry in that term after its
//! last entry, both durable. raft then elects this member (the only
//! voter) and commits that entry; applying it puts every other member into
//! the removed ids, so a former member that comes back is told it was
//! removed and stops (as etcd's do). Other members join again with
//! `member add` and fresh data dirs.
//!
//! etcd drops the entries after its last known commit index first; this
//! keeps them: an entry that was not committed had no acknowledged client
//! and may be applied or not (its client saw no answer), while an entry
//! that was committed and acknowledged but not yet known to be committed
//! here would be lost by dropping it.
//!
//! Run again on a data dir that already is a one-member cluster, it
//! changes nothing. A crash part way leaves either the old state (plus a
//! higher vote, harmless) or the new entry, which the next start finds.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};
use openraft::EntryPayload;
use openraft::storage::{IOFlushed, RaftLogReader, RaftLogStorage};
use openraft::vote::RaftLeaderId;

use crate::raft::{Entry, LogId, LogStore, Member, SmShared, TypeConfig, Vote};

/// Entries read per step while looking for the last membership entry.
const SCAN_STEP: u64 = 1024;

/// The last membership in the log, or the applied one.
async fn effective_membership(
    log: &mut LogStore,
    sm: &SmShared,
) -> anyhow::Result<openraft::Membership<u64, Member>> {
    let state = log.get_log_state().await?;
    let first = state.last_purged_log_id.map_or(0, |l| l.index() + 1);
    if let Some(last) = state.last_log_id {
        let mut end = last.index() + 1;
        while end > first {
            let start = end.saturating_sub(SCAN_STEP).max(first);
            let entries = log.try_get_log_entries(start..end).await?;
            for e in entries.iter().rev() {
                if let EntryPayload::Membership(m) = &e.payload {
                    return Ok(m.clone());
                }
            }
            end = start;
        }
    }
    Ok(sm.applied_membership())
}

/// Make this member's data a one-member cluster (see the module docs).
pub(crate) async fn force_new_cluster(
    log: &mut LogStore,
    sm: &SmShared,
    me: u64,
) -> anyhow::Result<()> {
    let membership = effective_membership(log, sm)
        .await
        .context("--force-new-cluster: reading the membership")?;
    let nodes: BTreeMap<u64, Member> = membership.nodes().map(|(id, m)| (*id, m.clone())).collect();
    let Some(mine) = nodes.get(&me).cloned() else {
        bail!(
            "--force-new-cluster: member {me:x} is not in its own membership (it was removed); \
             nothing was changed"
        );
    };
    let others: Vec<String> = nodes
        .keys()
        .filter(|id| **id != me)
        .map(|id| format!("{id:x}"))
        .collect();
    if others.is_empty() {
        tracing::info!("--force-new-cluster: already a one-member cluster; nothing to change");
        return Ok(());
    }
    let state = log.get_log_state().await?;
    let last = state.last_log_id;
    let vote = log.read_vote().await?;
    let log_term = last.map_or(0, |l| l.committed_leader_id().term);
    let vote_term = vote.map_or(0, |v| v.leader_id().term);
    let term = log_term.max(vote_term) + 1;
    let index = last.map_or(0, |l| l.index() + 1);
    let vote = Vote::new_committed(term, me);
    log.save_vote(&vote).await?;
    let single =
        openraft::Membership::new(vec![BTreeSet::from([me])], BTreeMap::from([(me, mine)]))
            .context("--force-new-cluster: the one-member membership")?;
    let entry = Entry {
        log_id: LogId::new(
            openraft::alias::LeaderIdOf::<TypeConfig>::new(term, me).to_committed(),
            index,
        ),
        payload: EntryPayload::Membership(single),
    };
    log.append(vec![entry], IOFlushed::noop()).await?;
    // Ordered after the append in the WAL: once this is durable, so is
    // the entry.
    log.save_vote(&vote).await?;
    tracing::warn!(
        removed = ?others,
        term,
        index,
        "--force-new-cluster: this member's data is now a one-member cluster"
    );
    Ok(())
}
