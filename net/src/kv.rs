//! The etcd KV service (`/etcdserverpb.KV/*`) over a node.
//!
//! `net` knows nothing of raft or shards: a node implements [`KvService`]
//! on store types, and [`KvShim`] serves it over gRPC — request checks and
//! conversions in `convert`, errors through the one table in `status`,
//! headers filled from [`ServerInfo`].

use std::future::Future;
use std::sync::Arc;

use ferrocd_mvcc as mvcc;
use tonic::{Request, Response, Status};

use crate::auth::{AuthInfo, Authorizer, Credentials};
use crate::convert;
use crate::pb::etcdserverpb as pb;
use crate::status::EtcdError;

/// What every response header carries besides the revision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerInfo {
    /// The cluster id.
    pub cluster_id: u64,
    /// This member's id.
    pub member_id: u64,
    /// The current raft term.
    pub raft_term: u64,
}

/// The KV operations a node provides, on store types. Writes resolve once
/// durable on a majority and applied; `range` with `serializable` may be
/// served from the local store without a raft round. `who` is the caller
/// ([`Authorizer::authorize`]); the node checks its permissions.
pub trait KvService: Authorizer {
    /// Header fields for responses.
    fn info(&self) -> ServerInfo;
    /// Range read.
    fn range(
        &self,
        who: Option<AuthInfo>,
        req: mvcc::RangeRequest,
        serializable: bool,
    ) -> impl Future<Output = Result<mvcc::RangeResponse, EtcdError>> + Send;
    /// Put.
    fn put(
        &self,
        who: Option<AuthInfo>,
        req: mvcc::PutRequest,
    ) -> impl Future<Output = Result<mvcc::PutResponse, EtcdError>> + Send;
    /// Delete a key or range.
    fn delete_range(
        &self,
        who: Option<AuthInfo>,
        req: mvcc::DeleteRangeRequest,
    ) -> impl Future<Output = Result<mvcc::DeleteRangeResponse, EtcdError>> + Send;
    /// Transaction.
    fn txn(
        &self,
        who: Option<AuthInfo>,
        req: mvcc::TxnRequest,
    ) -> impl Future<Output = Result<mvcc::TxnResponse, EtcdError>> + Send;
    /// Compact history below `revision`; returns the store revision.
    fn compact(
        &self,
        who: Option<AuthInfo>,
        revision: i64,
        physical: bool,
    ) -> impl Future<Output = Result<i64, EtcdError>> + Send;
}

/// The gRPC KV service over a [`KvService`].
#[derive(Debug)]
pub struct KvShim<S> {
    node: Arc<S>,
    max_txn_ops: usize,
}

impl<S: KvService> KvShim<S> {
    /// Serve `node`; txns with more than `max_txn_ops` compares or ops per
    /// branch are refused (etcd's `--max-txn-ops`, default 128).
    pub fn new(node: Arc<S>, max_txn_ops: usize) -> Self {
        Self { node, max_txn_ops }
    }

    /// The tonic service to add to a server.
    pub fn into_server(self) -> pb::kv_server::KvServer<Self> {
        pb::kv_server::KvServer::new(self)
    }
}

impl<S: KvService> KvShim<S> {
    // The four hot calls as plain async fns of the caller's credentials
    // and message: the binary protocol and the HTTP/2 server's hot path
    // call these directly, with credentials they keep per connection (a
    // `tonic::Request` costs a header map and a copy of the connection's
    // info per request; tonic's trait methods also box their future, a
    // heap allocation and a copy of the whole future). The gRPC trait
    // methods below delegate to them.

    /// KV Range.
    pub async fn call_range(
        &self,
        cred: Credentials,
        req: pb::RangeRequest,
    ) -> Result<pb::RangeResponse, Status> {
        let who = self.node.authorize(cred).await?;
        let (r, serializable) = convert::range_request(req)?;
        let resp = self.node.range(who, r, serializable).await?;
        Ok(convert::range_response(&self.node.info(), resp))
    }

    /// KV Put.
    pub async fn call_put(
        &self,
        cred: Credentials,
        req: pb::PutRequest,
    ) -> Result<pb::PutResponse, Status> {
        let who = self.node.authorize(cred).await?;
        let r = convert::put_request(req)?;
        let resp = self.node.put(who, r).await?;
        Ok(convert::put_response(&self.node.info(), resp))
    }

    /// KV DeleteRange.
    pub async fn call_delete_range(
        &self,
        cred: Credentials,
        req: pb::DeleteRangeRequest,
    ) -> Result<pb::DeleteRangeResponse, Status> {
        let who = self.node.authorize(cred).await?;
        let r = convert::delete_request(req)?;
        let resp = self.node.delete_range(who, r).await?;
        Ok(convert::delete_response(&self.node.info(), resp))
    }

    /// KV Txn.
    pub async fn call_txn(
        &self,
        cred: Credentials,
        req: pb::TxnRequest,
    ) -> Result<pb::TxnResponse, Status> {
        let who = self.node.authorize(cred).await?;
        let r = convert::txn_request(req, self.max_txn_ops)?;
        let resp = self.node.txn(who, r).await?;
        Ok(convert::txn_response(&self.node.info(), resp))
    }
}

#[tonic::async_trait]
impl<S: KvService> pb::kv_server::Kv for KvShim<S> {
    async fn range(
        &self,
        req: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let cred = Credentials::of(&req);
        self.call_range(cred, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        let cred = Credentials::of(&req);
        self.call_put(cred, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn delete_range(
        &self,
        req: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let cred = Credentials::of(&req);
        self.call_delete_range(cred, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn txn(&self, req: Request<pb::TxnRequest>) -> Result<Response<pb::TxnResponse>, Status> {
        let cred = Credentials::of(&req);
        self.call_txn(cred, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn compact(
        &self,
        req: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        let who = self.node.authorize(Credentials::of(&req)).await?;
        let r = req.into_inner();
        let rev = self.node.compact(who, r.revision, r.physical).await?;
        Ok(Response::new(pb::CompactionResponse {
            header: convert::header(&self.node.info(), rev),
        }))
    }
}
