//! The etcd Maintenance and Cluster services over a node.
//!
//! Headers are etcd 3.5.1's (`tests/maint_wire` compares every RPC):
//! Defragment, MoveLeader and the Snapshot messages carry none; Status,
//! Alarm, Hash and HashKV carry cluster id, member id, revision and raft
//! term; the Cluster service's carry no revision. Downgrade's request is
//! checked here ([`Downgrade`]); the node answers it.
//!
//! Snapshot streams the node's backend file as etcd 3.5 does: 32 KiB
//! blobs, each with the bytes remaining after it, then one last message
//! holding the sha256 of everything sent (`etcdctl snapshot save` appends
//! it to the file; `snapshot restore` checks it).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::auth::{AuthInfo, Authorizer, Credentials};
use crate::convert::header;
use crate::downgrade::Downgrade;
use crate::kv::ServerInfo;
use crate::pb::etcdserverpb as pb;
use crate::status::EtcdError;

/// What `Maintenance.Status` reports (etcd's `StatusResponse` less the
/// header). Serializable: a member asks another for it over the peer port
/// (the console's cluster view).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
pub trait ClusterService: Authorizer {
    /// Header fields.
    fn info(&self) -> ServerInfo;
    /// Whether `who` may run the admin-only maintenance calls (Defragment,
    /// Snapshot, Hash, HashKV need the root role once auth is enabled).
    fn admin_permitted(&self, who: Option<&AuthInfo>) -> Result<(), EtcdError>;
    /// This member's status.
    fn status(&self) -> impl Future<Output = Result<NodeStatus, EtcdError>> + Send;
    /// The status of member `id`: this member answers itself, another is
    /// asked over the peer port, within a short timeout (an unreachable
    /// member is an error, not a wait).
    fn member_status(&self, id: u64) -> impl Future<Output = Result<NodeStatus, EtcdError>> + Send;
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
    /// etcd's MoveLeader: transfer leadership to `target`; returns once
    /// `target` leads.
    fn move_leader(&self, target: u64) -> impl Future<Output = Result<(), EtcdError>> + Send;
    /// etcd's membership changes (MemberAdd, MemberRemove, MemberUpdate,
    /// MemberPromote); the answer is the changed/added member (for add)
    /// and the members afterwards, with the header revision.
    fn change_members(
        &self,
        change: MemberChange,
    ) -> impl Future<Output = Result<(Option<MemberInfo>, Vec<MemberInfo>, i64), EtcdError>> + Send;
    /// The members and the current revision.
    fn members(&self) -> impl Future<Output = Result<(Vec<MemberInfo>, i64), EtcdError>> + Send;
    /// etcd's Snapshot: the backend file of a consistent view of this
    /// member's state, open for reading at offset 0, and its size.
    fn snapshot(&self) -> impl Future<Output = Result<(std::fs::File, u64), EtcdError>> + Send;
    /// etcd's Hash: the backend's hash and the header revision.
    fn hash(&self) -> impl Future<Output = Result<(u32, i64), EtcdError>> + Send;
    /// etcd's Downgrade (a checked request): the cluster version, or why
    /// the cluster cannot do it.
    fn downgrade(&self, req: Downgrade) -> impl Future<Output = Result<String, EtcdError>> + Send;
}

/// etcd's snapshot send buffer.
const SNAPSHOT_CHUNK: usize = 32 * 1024;

/// Stream `file` (`size` bytes) as etcd's Snapshot responses, reading on a
/// blocking thread; a read error ends the stream with `Internal`.
fn snapshot_stream(
    mut file: std::fs::File,
    size: u64,
) -> tokio_stream::wrappers::ReceiverStream<Result<pb::SnapshotResponse, Status>> {
    use sha2::Digest;
    use std::io::Read;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut h = sha2::Sha256::new();
        let mut sent = 0u64;
        while sent < size {
            let n = (size - sent).min(SNAPSHOT_CHUNK as u64) as usize;
            let mut buf = vec![0u8; n];
            if let Err(e) = file.read_exact(&mut buf) {
                tracing::warn!(error = %e, "reading the snapshot file failed");
                let _ = tx.blocking_send(Err(Status::internal(format!("snapshot: {e}"))));
                return;
            }
            h.update(&buf);
            sent += n as u64;
            let r = pb::SnapshotResponse {
                header: None,
                remaining_bytes: size - sent,
                blob: buf,
            };
            if tx.blocking_send(Ok(r)).is_err() {
                return; // the client went away
            }
        }
        let _ = tx.blocking_send(Ok(pb::SnapshotResponse {
            header: None,
            remaining_bytes: 0,
            blob: h.finalize().to_vec(),
        }));
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
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
    /// etcd's `authMaintenanceServer` check: the caller must hold root.
    /// etcd answers these refusals with its auth package's errors as they
    /// are (code Unknown, `auth: …`), not the `etcdserver:` statuses the
    /// other services use; so do we.
    async fn admin<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let raw = |e: EtcdError| {
            let m = e.message();
            Status::unknown(format!(
                "auth: {}",
                m.strip_prefix("etcdserver: ").unwrap_or(m)
            ))
        };
        let who = self
            .node
            .authorize(Credentials::of(req))
            .await
            .map_err(raw)?;
        self.node.admin_permitted(who.as_ref()).map_err(raw)
    }

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
        // etcd routes alarms through raft with the caller in the header: a
        // token given must be valid (no permission is needed).
        self.node.authorize(Credentials::of(&req)).await?;
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
        req: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        self.admin(&req).await?;
        self.node.defragment().await?;
        Ok(Response::new(pb::DefragmentResponse { header: None }))
    }

    async fn hash(
        &self,
        req: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        self.admin(&req).await?;
        let (hash, rev) = self.node.hash().await?;
        Ok(Response::new(pb::HashResponse {
            header: header(&self.node.info(), rev),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        req: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        self.admin(&req).await?;
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
        req: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        self.admin(&req).await?;
        let (file, size) = self.node.snapshot().await?;
        Ok(Response::new(Box::pin(snapshot_stream(file, size))))
    }

    async fn move_leader(
        &self,
        req: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        self.node.move_leader(req.into_inner().target_id).await?;
        Ok(Response::new(pb::MoveLeaderResponse { header: None }))
    }

    async fn downgrade(
        &self,
        req: Request<pb::DowngradeRequest>,
    ) -> Result<Response<pb::DowngradeResponse>, Status> {
        let r = req.into_inner();
        let d = Downgrade::parse(r.action, &r.version)?;
        let version = self.node.downgrade(d).await?;
        let rev = self.node.status().await.map(|s| s.revision).unwrap_or(0);
        Ok(Response::new(pb::DowngradeResponse {
            header: header(&self.node.info(), rev),
            version,
        }))
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
