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
    // The four hot calls as plain async fns: the binary protocol calls
    // these directly (tonic's trait methods box their future, a heap
    // allocation and a copy of the whole future per request); the gRPC
    // trait methods below delegate to them.

    /// KV Range.
    pub async fn serve_range(
        &self,
        req: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let who = self.node.authorize(Credentials::of(&req)).await?;
        let (r, serializable) = convert::range_request(req.into_inner())?;
        let resp = self.node.range(who, r, serializable).await?;
        Ok(Response::new(convert::range_response(
            &self.node.info(),
            resp,
        )))
    }

    /// KV Put.
    pub async fn serve_put(
        &self,
        req: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let who = self.node.authorize(Credentials::of(&req)).await?;
        let r = convert::put_request(req.into_inner())?;
        let resp = self.node.put(who, r).await?;
        Ok(Response::new(convert::put_response(
            &self.node.info(),
            resp,
        )))
    }

    /// KV DeleteRange.
    pub async fn serve_delete_range(
        &self,
        req: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let who = self.node.authorize(Credentials::of(&req)).await?;
        let r = convert::delete_request(req.into_inner())?;
        let resp = self.node.delete_range(who, r).await?;
        Ok(Response::new(convert::delete_response(
            &self.node.info(),
            resp,
        )))
    }

    /// KV Txn.
    pub async fn serve_txn(
        &self,
        req: Request<pb::TxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        let who = self.node.authorize(Credentials::of(&req)).await?;
        let r = convert::txn_request(req.into_inner(), self.max_txn_ops)?;
        let resp = self.node.txn(who, r).await?;
        Ok(Response::new(convert::txn_response(
            &self.node.info(),
            resp,
        )))
    }
}

#[tonic::async_trait]
impl<S: KvService> pb::kv_server::Kv for KvShim<S> {
    async fn range(
        &self,
        req: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        self.serve_range(req).await
    }

    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        self.serve_put(req).await
    }

    async fn delete_range(
        &self,
        req: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        self.serve_delete_range(req).await
    }

    async fn txn(&self, req: Request<pb::TxnRequest>) -> Result<Response<pb::TxnResponse>, Status> {
        self.serve_txn(req).await
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
