//! The etcd Lease service (`/etcdserverpb.Lease/*`) over a node, with
//! etcd's wire rules (`v3rpc/lease.go`): a keep-alive on an unknown or
//! expired lease answers TTL 0 (not an error), time-to-live of an unknown
//! lease answers TTL -1, a revoke of an unknown lease is
//! `etcdserver: requested lease not found`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{AuthInfo, Authorizer, Credentials};
use crate::convert::header;
use crate::kv::ServerInfo;
use crate::pb::etcdserverpb as pb;
use crate::status::EtcdError;

/// A lease's time to live.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseTtl {
    /// Remaining seconds.
    pub ttl: i64,
    /// Granted TTL.
    pub granted_ttl: i64,
    /// Attached keys, when asked for.
    pub keys: Vec<Vec<u8>>,
}

/// The lease operations a node provides; `who` is the caller (a revoke
/// needs write permission on every key of the lease, time-to-live with
/// keys read permission, as in etcd).
pub trait LeaseService: Authorizer {
    /// Header fields.
    fn info(&self) -> ServerInfo;
    /// The current revision (lease responses carry it).
    fn revision(&self) -> i64;
    /// Grant a lease (`id` 0: the node picks one); returns (id, ttl).
    fn grant(
        &self,
        who: Option<AuthInfo>,
        id: i64,
        ttl: i64,
    ) -> impl Future<Output = Result<(i64, i64), EtcdError>> + Send;
    /// Revoke a lease and delete its keys; returns the header revision.
    fn revoke(
        &self,
        who: Option<AuthInfo>,
        id: i64,
    ) -> impl Future<Output = Result<i64, EtcdError>> + Send;
    /// Keep a lease alive; returns its TTL. `LeaseNotFound` for unknown or
    /// expired leases.
    fn keep_alive(&self, id: i64) -> impl Future<Output = Result<i64, EtcdError>> + Send;
    /// A lease's remaining TTL (and keys); `LeaseNotFound` if unknown.
    fn time_to_live(
        &self,
        who: Option<AuthInfo>,
        id: i64,
        keys: bool,
    ) -> impl Future<Output = Result<LeaseTtl, EtcdError>> + Send;
    /// Every lease id.
    fn leases(&self) -> impl Future<Output = Result<Vec<i64>, EtcdError>> + Send;
}

/// The gRPC Lease service over a [`LeaseService`].
#[derive(Debug)]
pub struct LeaseShim<S> {
    node: Arc<S>,
}

impl<S: LeaseService> LeaseShim<S> {
    /// Serve `node`.
    pub fn new(node: Arc<S>) -> Self {
        Self { node }
    }

    /// The tonic service.
    pub fn into_server(self) -> pb::lease_server::LeaseServer<Self> {
        pb::lease_server::LeaseServer::new(self)
    }

    /// One keep-alive stream: lease ids in, TTLs out. The gRPC method and
    /// the binary protocol both run their streams through here.
    pub fn keep_alive_session<I>(&self, mut inbound: I) -> KeepAliveStream
    where
        I: Stream<Item = Result<pb::LeaseKeepAliveRequest, Status>> + Send + Unpin + 'static,
    {
        let (tx, rx) = mpsc::channel(16);
        let node = self.node.clone();
        tokio::spawn(async move {
            loop {
                let id = match inbound.next().await {
                    Some(Ok(r)) => r.id,
                    None => return,
                    // A bad frame (`frames.rs`): the stream ends with its
                    // status, as etcd's does.
                    Some(Err(e)) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                let resp = match node.keep_alive(id).await {
                    Ok(ttl) => Ok(ttl),
                    Err(EtcdError::LeaseNotFound) => Ok(0),
                    Err(e) => Err(Status::from(e)),
                };
                let failed = resp.is_err();
                let msg = resp.map(|ttl| pb::LeaseKeepAliveResponse {
                    header: header(&node.info(), node.revision()),
                    id,
                    ttl,
                });
                if tx.send(msg).await.is_err() || failed {
                    return;
                }
            }
        });
        Box::pin(ReceiverStream::new(rx))
    }
}

/// The answers of one keep-alive stream.
pub type KeepAliveStream =
    Pin<Box<dyn Stream<Item = Result<pb::LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl<S: LeaseService> pb::lease_server::Lease for LeaseShim<S> {
    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_grant(
        &self,
        req: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        let who = self.node.authorize(Credentials::of(&req)).await?;
        let r = req.into_inner();
        let (id, ttl) = self.node.grant(who, r.id, r.ttl).await?;
        Ok(Response::new(pb::LeaseGrantResponse {
            header: header(&self.node.info(), self.node.revision()),
            id,
            ttl,
            error: String::new(),
        }))
    }

    async fn lease_revoke(
        &self,
        req: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        let who = self.node.authorize(Credentials::of(&req)).await?;
        let rev = self.node.revoke(who, req.into_inner().id).await?;
        Ok(Response::new(pb::LeaseRevokeResponse {
            header: header(&self.node.info(), rev),
        }))
    }

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        Ok(Response::new(self.keep_alive_session(req.into_inner())))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        let who = self.node.authorize(Credentials::of(&req)).await?;
        let r = req.into_inner();
        let t = match self.node.time_to_live(who, r.id, r.keys).await {
            Ok(t) => t,
            Err(EtcdError::LeaseNotFound) => LeaseTtl {
                ttl: -1,
                ..Default::default()
            },
            Err(e) => return Err(e.into()),
        };
        Ok(Response::new(pb::LeaseTimeToLiveResponse {
            header: header(&self.node.info(), self.node.revision()),
            id: r.id,
            ttl: t.ttl,
            granted_ttl: t.granted_ttl,
            keys: t.keys,
        }))
    }

    async fn lease_leases(
        &self,
        _req: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        let ids = self.node.leases().await?;
        Ok(Response::new(pb::LeaseLeasesResponse {
            header: header(&self.node.info(), self.node.revision()),
            leases: ids.into_iter().map(|id| pb::LeaseStatus { id }).collect(),
        }))
    }
}
