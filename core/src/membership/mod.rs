//! Membership: this member's ids ([`ids`]), the replicated membership
//! as the wire lists it, etcd's member changes (made one at a time by the
//! leader, checked against raft's latest membership), and publishing this
//! member's name and client URLs into it.

pub mod derive;
pub(crate) mod force;
pub mod ids;
pub(crate) mod verify;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferrocd_mvcc as mvcc;
use ferrocd_net::{EtcdError, MemberChange, MemberInfo};
use openraft::ChangeMembers;
use openraft::async_runtime::WatchReceiver;
use tokio::sync::Notify;

use crate::leader::{LeaderLink, raft_err};
use crate::raft::{KIND_MEMBER_CHANGE, KIND_PUBLISH, Member, Raft};
use derive::member_id;
use ids::Ids;

/// A membership change's raft error: `NotLeader` whenever this member does
/// not lead (the callers retry through the leader until their deadline).
fn membership_err(
    e: openraft::errors::RaftError<
        crate::raft::TypeConfig,
        openraft::errors::ClientWriteError<crate::raft::TypeConfig>,
    >,
) -> EtcdError {
    match e.forward_to_leader() {
        Some(_) => EtcdError::NotLeader,
        None => raft_err(e),
    }
}

/// This member's view of the membership, and its changes.
pub(crate) struct Membership {
    raft: Raft,
    link: LeaderLink,
    /// The store (answers carry its revision).
    store: Arc<mvcc::Store>,
    ids: Ids,
    /// `--initial-cluster-token` (mixed into added members' ids).
    token: String,
    /// This member's attributes, as published.
    me: Member,
    /// Held while a membership change is checked and made.
    changes: tokio::sync::Mutex<()>,
    /// `etcd_server_learner_promote_successes`.
    metrics: ferrocd_net::Metrics,
}

impl Membership {
    pub(crate) fn new(
        raft: Raft,
        link: LeaderLink,
        store: Arc<mvcc::Store>,
        ids: Ids,
        token: String,
        me: Member,
        metrics: ferrocd_net::Metrics,
    ) -> Arc<Self> {
        Arc::new(Membership {
            raft,
            link,
            store,
            ids,
            token,
            me,
            changes: tokio::sync::Mutex::new(()),
            metrics,
        })
    }

    /// This member's ids.
    pub(crate) fn ids(&self) -> Ids {
        self.ids
    }

    /// This member's name.
    pub(crate) fn name(&self) -> &str {
        &self.me.name
    }

    /// The current members and the store's revision.
    pub(crate) fn list(&self) -> (Vec<MemberInfo>, i64) {
        (self.infos(None), self.store.revision())
    }

    /// etcd's MemberAdd/Remove/Update/Promote: made by the leader (here
    /// or over the peer port), retried across leader changes until the
    /// request timeout.
    pub(crate) async fn change(
        &self,
        change: MemberChange,
    ) -> Result<(Option<MemberInfo>, Vec<MemberInfo>, i64), EtcdError> {
        let deadline = Instant::now() + self.link.request_timeout();
        loop {
            if self.raft.is_leader() {
                match self.change_here(change.clone()).await {
                    Err(EtcdError::NotLeader) => {}
                    r => return r,
                }
            }
            match self.link.call(KIND_MEMBER_CHANGE, &change).await {
                // Leadership moved (e.g. the leader was just removed).
                Err(EtcdError::LeaderChanged) | Err(EtcdError::NotLeader)
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                r => return r,
            }
        }
    }

    /// Record member `id`'s attributes in the membership (this member
    /// must lead).
    pub(crate) async fn publish_here(&self, id: u64, m: Member) -> Result<(), EtcdError> {
        let mut nodes = BTreeMap::new();
        nodes.insert(id, m);
        self.change_membership_serial(ChangeMembers::SetNodes(nodes))
            .await
            .map(|_| ())
            .map_err(membership_err)
    }

    /// The members as the wire lists them, from `membership` (or the
    /// current one).
    fn infos(&self, membership: Option<&openraft::Membership<u64, Member>>) -> Vec<MemberInfo> {
        let current;
        let membership = match membership {
            Some(m) => m,
            None => {
                let m = self.raft.metrics();
                current = m.borrow_watched().membership_config.membership().clone();
                &current
            }
        };
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(id, node)| MemberInfo {
                id: *id,
                name: node.name.clone(),
                peer_urls: node.peer_urls.clone(),
                client_urls: node.client_urls.clone(),
                is_learner: !voters.contains(id),
            })
            .collect()
    }

    /// `change_membership`, waiting out a change already in progress
    /// (openraft allows one at a time; etcd's requests queue behind each
    /// other) up to the request timeout.
    async fn change_membership_serial(
        &self,
        change: ChangeMembers<u64, Member>,
    ) -> Result<
        openraft::raft::ClientWriteResponse<crate::raft::TypeConfig>,
        openraft::errors::RaftError<
            crate::raft::TypeConfig,
            openraft::errors::ClientWriteError<crate::raft::TypeConfig>,
        >,
    > {
        use openraft::errors::{ChangeMembershipError, ClientWriteError};
        let deadline = Instant::now() + self.link.request_timeout();
        loop {
            let r = self.raft.change_membership(change.clone(), false).await;
            let busy = matches!(
                r.as_ref().err().and_then(|e| e.api_error()),
                Some(ClientWriteError::ChangeMembershipError(
                    ChangeMembershipError::InProgress(_)
                ))
            );
            if !busy || Instant::now() >= deadline {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// (cluster id, members) for a joining member.
    pub(crate) fn for_discovery(&self) -> (u64, Vec<(u64, Member)>) {
        let m = self.raft.metrics();
        let m = m.borrow_watched();
        let members = m
            .membership_config
            .membership()
            .nodes()
            .map(|(id, n)| (*id, n.clone()))
            .collect();
        (self.ids.cluster_id, members)
    }

    /// A membership change on this member, which must lead (etcd's
    /// `cluster.go` checks: unknown member, peer URLs in use, promoting a
    /// voter or a learner that is behind).
    pub(crate) async fn change_here(
        &self,
        change: MemberChange,
    ) -> Result<(Option<MemberInfo>, Vec<MemberInfo>, i64), EtcdError> {
        if !self.raft.is_leader() {
            return Err(EtcdError::NotLeader);
        }
        // One change at a time, checked against the membership as the
        // changes before it left it: a MemberAdd resent after an unknown
        // outcome (the forward broke, the leader changed) then finds its
        // first copy's peer URLs and answers etcd's "Peer URLs already
        // exists" instead of adding a second member; a resent remove or
        // promote answers "member not found" / "can only promote a
        // learner member", as etcd answers a client that resends them.
        let _serial = self.changes.lock().await;
        let (replication, last_index) = {
            let m = self.raft.metrics();
            let m = m.borrow_watched();
            (
                m.replication.clone().unwrap_or_default(),
                m.last_log_index.unwrap_or(0),
            )
        };
        // The raft state's own effective membership (the latest in the
        // log, committed or not), not the metrics, which trail it.
        let membership = self
            .raft
            .with_raft_state(|st| st.membership_state.effective().membership().clone())
            .await
            .map_err(raft_err)?;
        let known = |id: u64| {
            membership
                .get_node(&id)
                .cloned()
                .ok_or(EtcdError::MemberNotFound)
        };
        let is_voter = |id: u64| membership.voter_ids().any(|v| v == id);
        let mut added = None;
        let resp = match change {
            MemberChange::Add { peer_urls, learner } => {
                let urls: Vec<String> = peer_urls
                    .iter()
                    .map(|u| {
                        url::Url::parse(u)
                            .map(|u| u.as_str().trim_end_matches('/').to_string())
                            .map_err(|_| EtcdError::MemberBadUrls)
                    })
                    .collect::<Result<_, _>>()?;
                if urls.is_empty() {
                    return Err(EtcdError::MemberBadUrls);
                }
                if membership
                    .nodes()
                    .any(|(_, n)| n.peer_urls.iter().any(|u| urls.contains(u)))
                {
                    return Err(EtcdError::PeerUrlExist);
                }
                // etcd mixes the time in, so a re-added member gets a new id.
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let id = member_id(&urls, &format!("{}{now}", self.token));
                let member = Member {
                    name: String::new(),
                    peer_urls: urls.clone(),
                    client_urls: Vec::new(),
                };
                let mut nodes = BTreeMap::new();
                nodes.insert(id, member);
                let mut r = self
                    .change_membership_serial(ChangeMembers::AddNodes(nodes))
                    .await
                    .map_err(membership_err)?;
                if !learner {
                    r = self
                        .change_membership_serial(ChangeMembers::AddVoterIds(
                            [id].into_iter().collect(),
                        ))
                        .await
                        .map_err(membership_err)?;
                }
                added = Some(MemberInfo {
                    id,
                    name: String::new(),
                    peer_urls: urls,
                    client_urls: Vec::new(),
                    is_learner: learner,
                });
                r
            }
            MemberChange::Remove { id } => {
                known(id)?;
                let c = if is_voter(id) {
                    ChangeMembers::RemoveVoters([id].into_iter().collect())
                } else {
                    ChangeMembers::RemoveNodes([id].into_iter().collect())
                };
                self.change_membership_serial(c)
                    .await
                    .map_err(membership_err)?
            }
            MemberChange::Update { id, peer_urls } => {
                let mut m = known(id)?;
                m.peer_urls = peer_urls;
                let mut nodes = BTreeMap::new();
                nodes.insert(id, m);
                self.change_membership_serial(ChangeMembers::SetNodes(nodes))
                    .await
                    .map_err(membership_err)?
            }
            MemberChange::Promote { id } => {
                known(id)?;
                if is_voter(id) {
                    return Err(EtcdError::MemberNotLearner);
                }
                // etcd: the learner's log must be within 90% of the leader's.
                let matched = replication
                    .get(&id)
                    .cloned()
                    .flatten()
                    .map_or(0, |l| l.index);
                if (matched as f64) < 0.9 * last_index as f64 {
                    return Err(EtcdError::LearnerNotReady);
                }
                let r = self
                    .change_membership_serial(ChangeMembers::AddVoterIds(
                        [id].into_iter().collect(),
                    ))
                    .await
                    .map_err(membership_err)?;
                // Counted by the leader that promoted, as etcd does.
                self.metrics.learner_promoted();
                r
            }
        };
        let members = self.infos(resp.membership.as_ref());
        Ok((added, members, self.store.revision()))
    }

    /// etcd's publish: make this member's name and client URLs part of
    /// the replicated membership, retrying until it sticks.
    pub(crate) async fn publish(self: Arc<Self>, stop: Arc<Notify>) {
        let me = self.me.clone();
        loop {
            let current = {
                let m = self.raft.metrics();
                let m = m.borrow_watched();
                m.membership_config
                    .membership()
                    .get_node(&self.ids.member_id)
                    .cloned()
            };
            if current.as_ref() == Some(&me) {
                return;
            }
            let r = if self.raft.is_leader() {
                self.publish_here(self.ids.member_id, me.clone()).await
            } else {
                self.link.call(KIND_PUBLISH, &me).await
            };
            match r {
                Ok(()) => {
                    tracing::info!(name = %me.name, "published member attributes");
                    return;
                }
                Err(e) => tracing::debug!(error = %e, "publishing member attributes; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stop.notified() => return,
            }
        }
    }
}
