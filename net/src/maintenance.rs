//! The etcd Maintenance and Cluster services over a node: Status, Alarm,
//! Defragment, HashKV, MoveLeader and the membership calls. Hash,
//! Snapshot and Downgrade answer `Unimplemented` until the issues that
//! build them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::convert::header;
use crate::kv::ServerInfo;
use crate::pb::etcdserverpb as pb;
use crate::status::EtcdError;

/// What `Maintenance.Status` reports (etcd's `StatusResponse` less the
/// header).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStatus {
    /// etcd API version we implement (e.g. "3.5.0").
    pub version: String,
    /// etcd's `dbSize`: bytes the backend takes on disk (see DESIGN.md,
    /// "Space").
    pub db_size: i64,
    /// etcd's `dbSizeInUse`: bytes of the records held.
    pub db_size_in_use: i64,
    /// Raised alarms, as etcd's Status lists them
    /// (`memberID:<id> alarm:NOSPACE `).
    pub errors: Vec<String>,
    /// Leader member id (0: none).
    pub leader: u64,
    /// Last raft index.
    pub raft_index: u64,
    /// Raft term.
    pub raft_term: u64,
    /// Last applied raft index.
    pub raft_applied_index: u64,
    /// Whether this member is a learner.
    pub is_learner: bool,
    /// Store revision.
    pub revision: i64,
}

/// A cluster member as the wire's.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberInfo {
    /// Member id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs.
    pub client_urls: Vec<String>,
    /// Learner.
    pub is_learner: bool,
}

/// A membership change, as the Cluster service's requests say it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MemberChange {
    /// MemberAdd.
    Add {
        /// Peer URLs of the new member.
        peer_urls: Vec<String>,
        /// Join as a learner.
        learner: bool,
    },
    /// MemberRemove.
    Remove {
        /// Member id.
        id: u64,
    },
    /// MemberUpdate (peer URLs).
    Update {
        /// Member id.
        id: u64,
        /// New peer URLs.
        peer_urls: Vec<String>,
    },
    /// MemberPromote (learner to voter).
    Promote {
        /// Member id.
        id: u64,
    },
}

/// Cluster and maintenance information a node provides.
pub trait ClusterService: Send + Sync + 'static {
    /// Header fields.
    fn info(&self) -> ServerInfo;
    /// This member's status.
    fn status(&self) -> impl Future<Output = Result<NodeStatus, EtcdError>> + Send;
    /// etcd's Alarm: `action` GET (0), ACTIVATE (1) or DEACTIVATE (2) of
    /// `alarm` (NOSPACE 1, CORRUPT 2) on `member_id`; returns the alarms
    /// the response lists, as (member id, alarm type).
    fn alarm(
        &self,
        action: i32,
        member_id: u64,
        alarm: i32,
    ) -> impl Future<Output = Result<Vec<(u64, i32)>, EtcdError>> + Send;
    /// etcd's Defragment of this member's backend (see DESIGN.md,
    /// "Space"); returns once it is done.
    fn defragment(&self) -> impl Future<Output = Result<(), EtcdError>> + Send;
    /// etcd's HashKV at `revision` (0: current): (hash, compact revision,
    /// hashed revision, header revision).
    fn hash_kv(
        &self,
        revision: i64,
    ) -> impl Future<Output = Result<(u32, i64, i64, i64), EtcdError>> + Send;
    /// etcd's MoveLeader: transfer leadership to `target`; returns the
    /// header revision once `target` leads.
    fn move_leader(&self, target: u64) -> impl Future<Output = Result<i64, EtcdError>> + Send;
    /// etcd's membership changes (MemberAdd, MemberRemove, MemberUpdate,
    /// MemberPromote); the answer is the changed/added member (for add)
    /// and the members afterwards, with the header revision.
    fn change_members(
        &self,
        change: MemberChange,
    ) -> impl Future<Output = Result<(Option<MemberInfo>, Vec<MemberInfo>, i64), EtcdError>> + Send;
    /// The members and the current revision.
    fn members(&self) -> impl Future<Output = Result<(Vec<MemberInfo>, i64), EtcdError>> + Send;
}

/// `Maintenance` and `Cluster` over a [`ClusterService`].
#[derive(Debug)]
pub struct ClusterShim<S> {
    node: Arc<S>,
}

impl<S> Clone for ClusterShim<S> {
    fn clone(&self) -> Self {
        Self {
            node: self.node.clone(),
        }
    }
}

impl<S: ClusterService> ClusterShim<S> {
    /// Serve `node`.
    pub fn new(node: Arc<S>) -> Self {
        Self { node }
    }

    /// The Maintenance tonic service.
    pub fn maintenance_server(&self) -> pb::maintenance_server::MaintenanceServer<Self> {
        pb::maintenance_server::MaintenanceServer::new(self.clone())
    }

    /// The Cluster tonic service.
    pub fn cluster_server(&self) -> pb::cluster_server::ClusterServer<Self> {
        pb::cluster_server::ClusterServer::new(self.clone())
    }
}

fn unimplemented(what: &str) -> Status {
    Status::unimplemented(format!("ferrocd: {what} is not implemented yet"))
}

fn member(m: MemberInfo) -> pb::Member {
    pb::Member {
        id: m.id,
        name: m.name,
        peer_ur_ls: m.peer_urls,
        client_ur_ls: m.client_urls,
        is_learner: m.is_learner,
    }
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<pb::SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl<S: ClusterService> pb::maintenance_server::Maintenance for ClusterShim<S> {
    type SnapshotStream = SnapshotStream;

    async fn alarm(
        &self,
        req: Request<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        let r = req.into_inner();
        let alarms = self
            .node
            .alarm(r.action, r.member_id, r.alarm)
            .await?
            .into_iter()
            .map(|(member_id, alarm)| pb::AlarmMember { member_id, alarm })
            .collect();
        let rev = self.node.status().await.map(|s| s.revision).unwrap_or(0);
        Ok(Response::new(pb::AlarmResponse {
            header: header(&self.node.info(), rev),
            alarms,
        }))
    }

    async fn status(
        &self,
        _req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let s = self.node.status().await?;
        Ok(Response::new(pb::StatusResponse {
            header: header(&self.node.info(), s.revision),
            version: s.version,
            db_size: s.db_size,
            leader: s.leader,
            raft_index: s.raft_index,
            raft_term: s.raft_term,
            raft_applied_index: s.raft_applied_index,
            errors: s.errors,
            db_size_in_use: s.db_size_in_use,
            is_learner: s.is_learner,
        }))
    }

    async fn defragment(
        &self,
        _req: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        self.node.defragment().await?;
        let rev = self.node.status().await.map(|s| s.revision).unwrap_or(0);
        Ok(Response::new(pb::DefragmentResponse {
            header: header(&self.node.info(), rev),
        }))
    }

    async fn hash(
        &self,
        _req: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        Err(unimplemented("Maintenance.Hash"))
    }

    async fn hash_kv(
        &self,
        req: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        let (hash, compact_revision, hash_revision, rev) =
            self.node.hash_kv(req.into_inner().revision).await?;
        Ok(Response::new(pb::HashKvResponse {
            header: header(&self.node.info(), rev),
            hash,
            compact_revision,
            hash_revision,
        }))
    }

    async fn snapshot(
        &self,
        _req: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(unimplemented("Maintenance.Snapshot"))
    }

    async fn move_leader(
        &self,
        req: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        let rev = self.node.move_leader(req.into_inner().target_id).await?;
        Ok(Response::new(pb::MoveLeaderResponse {
            header: header(&self.node.info(), rev),
        }))
    }

    async fn downgrade(
        &self,
        _req: Request<pb::DowngradeRequest>,
    ) -> Result<Response<pb::DowngradeResponse>, Status> {
        Err(unimplemented("Maintenance.Downgrade"))
    }
}

#[tonic::async_trait]
// The Cluster service's headers carry no revision: etcd 3.5 fills only
// cluster id, member id and raft term there (checked against 3.5.1's
// `member list -w json` and `member add -w json`).
impl<S: ClusterService> pb::cluster_server::Cluster for ClusterShim<S> {
    async fn member_add(
        &self,
        req: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        let r = req.into_inner();
        let (added, members, _) = self
            .node
            .change_members(MemberChange::Add {
                peer_urls: r.peer_ur_ls,
                learner: r.is_learner,
            })
            .await?;
        Ok(Response::new(pb::MemberAddResponse {
            header: header(&self.node.info(), 0),
            member: added.map(member),
            members: members.into_iter().map(member).collect(),
        }))
    }

    async fn member_remove(
        &self,
        req: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        let id = req.into_inner().id;
        let (_, members, _) = self
            .node
            .change_members(MemberChange::Remove { id })
            .await?;
        Ok(Response::new(pb::MemberRemoveResponse {
            header: header(&self.node.info(), 0),
            members: members.into_iter().map(member).collect(),
        }))
    }

    async fn member_update(
        &self,
        req: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        let r = req.into_inner();
        let (_, members, _) = self
            .node
            .change_members(MemberChange::Update {
                id: r.id,
                peer_urls: r.peer_ur_ls,
            })
            .await?;
        Ok(Response::new(pb::MemberUpdateResponse {
            header: header(&self.node.info(), 0),
            members: members.into_iter().map(member).collect(),
        }))
    }

    async fn member_list(
        &self,
        _req: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        let (members, _) = self.node.members().await?;
        Ok(Response::new(pb::MemberListResponse {
            header: header(&self.node.info(), 0),
            members: members.into_iter().map(member).collect(),
        }))
    }

    async fn member_promote(
        &self,
        req: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        let id = req.into_inner().id;
        let (_, members, _) = self
            .node
            .change_members(MemberChange::Promote { id })
            .await?;
        Ok(Response::new(pb::MemberPromoteResponse {
            header: header(&self.node.info(), 0),
            members: members.into_iter().map(member).collect(),
        }))
    }
}
