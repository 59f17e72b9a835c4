//! etcd's Lock service (`/v3lockpb.Lock/*`): a distributed mutex per name,
//! as etcd 3.5's server runs it (`v3lock` over `concurrency.Mutex`;
//! recipe and errors in [`crate::concurrency`]).
//!
//! `Lock(name, lease)`: the own key `<name>/<lease hex>` is created with
//! the lease unless it exists (the same lease locking again gets its key
//! back); the lock is held once every older key under `<name>/` is gone,
//! and the answer carries the key. If the own key is gone by then (the
//! lease expired while waiting) the answer is `mutex: session is
//! expired`; if the request goes away while waiting, the key is deleted.
//! `Unlock(key)` deletes the key.

use std::sync::Arc;

use ferrocd_mvcc as mvcc;
use tonic::{Request, Response, Status};

use crate::concurrency::{
    Access, CleanUp, ConcError, ConcurrencyService, first_created, own_key, prefix, txn_kvs,
};
use crate::pb::v3lockpb as pb;

/// The gRPC Lock service over a node.
#[derive(Debug)]
pub struct LockShim<S> {
    node: Arc<S>,
}

impl<S: ConcurrencyService> LockShim<S> {
    /// Serve `node`.
    pub fn new(node: Arc<S>) -> Self {
        Self { node }
    }

    /// The tonic service.
    pub fn into_server(self) -> pb::lock_server::LockServer<Self> {
        pb::lock_server::LockServer::new(self)
    }
}

/// etcd's `Mutex.Lock`: returns the own key and the header revision.
async fn lock<S: ConcurrencyService>(
    a: &Access<S>,
    name: &[u8],
    lease: i64,
) -> Result<(Vec<u8>, i64), Status> {
    let lease = a.session_lease(lease).await?;
    let pfx = prefix(name);
    let key = own_key(&pfx, lease);
    let r = a
        .txn(mvcc::TxnRequest {
            compare: vec![crate::concurrency::created_at(&key, 0)],
            success: vec![
                mvcc::RequestOp::Put(mvcc::PutRequest {
                    lease,
                    ..mvcc::PutRequest::new(key.clone(), Vec::new())
                }),
                mvcc::RequestOp::Range(first_created(&pfx)),
            ],
            failure: vec![
                mvcc::RequestOp::Range(mvcc::RangeRequest::new(key.clone(), Vec::new())),
                mvcc::RequestOp::Range(first_created(&pfx)),
            ],
        })
        .await?;
    let my_rev = if r.succeeded {
        r.revision
    } else {
        txn_kvs(&r, 0)
            .first()
            .map_or(r.revision, |kv| kv.create_revision)
    };
    match txn_kvs(&r, 1).first() {
        None => return Ok((key, r.revision)),
        Some(owner) if owner.create_revision == my_rev => return Ok((key, r.revision)),
        Some(_) => {}
    }
    let undo = CleanUp::new(a, &key, None);
    if let Err(e) = a.wait_deletes(&pfx, my_rev - 1).await {
        undo.run().await;
        return Err(e);
    }
    // Is the own key still there (its lease may have expired meanwhile)?
    let g = match a
        .range(mvcc::RangeRequest::new(key.clone(), Vec::new()))
        .await
    {
        Ok(g) => g,
        Err(e) => {
            undo.run().await;
            return Err(e);
        }
    };
    undo.disarm();
    if g.kvs.is_empty() {
        return Err(ConcError::SessionExpired.into());
    }
    Ok((key, g.revision))
}

#[tonic::async_trait]
impl<S: ConcurrencyService> pb::lock_server::Lock for LockShim<S> {
    async fn lock(
        &self,
        req: Request<pb::LockRequest>,
    ) -> Result<Response<pb::LockResponse>, Status> {
        let a = Access::new(self.node.clone(), &req);
        let r = req.into_inner();
        let (key, rev) = lock(&a, &r.name, r.lease).await?;
        Ok(Response::new(pb::LockResponse {
            header: a.header(rev),
            key,
        }))
    }

    async fn unlock(
        &self,
        req: Request<pb::UnlockRequest>,
    ) -> Result<Response<pb::UnlockResponse>, Status> {
        let a = Access::new(self.node.clone(), &req);
        let rev = a.delete(&req.into_inner().key).await?;
        Ok(Response::new(pb::UnlockResponse {
            header: a.header(rev),
        }))
    }
}
