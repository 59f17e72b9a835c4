//! etcd's Election service (`/v3electionpb.Election/*`), as etcd 3.5's
//! server runs it (`v3election` over `concurrency.Election`; recipe and
//! errors in [`crate::concurrency`]).
//!
//! - `Campaign(name, lease, value)`: like a lock, with `value` in the own
//!   key (an existing own key with another value is updated first); the
//!   answer's `LeaderKey` has the key's create revision as `rev`, and the
//!   header of the first txn. Cancelled while waiting: the key is
//!   deleted if still the one created then.
//! - `Proclaim(leader, value)`: put only while `create_revision(key) ==
//!   leader.rev`, else `election: not leader`.
//! - `Resign(leader)`: delete under the same condition; not being leader
//!   any more is no error (etcd answers the failed txn's header).
//! - `Leader(name)`: the oldest key under `<name>/`, or `election: no
//!   leader`.
//! - `Observe(name)`: the leader now (or, with none, the first key put
//!   under the name), then each change of its value, then on its deletion
//!   the next leader, and so on, for as long as the client listens.
//!
//! Quirk kept from etcd: `Campaign`, `Proclaim` and `Resign` with lease 0
//! grant a fresh 60 s session lease (Proclaim attaches the key to it).

use std::pin::Pin;
use std::sync::Arc;

use ferrocd_mvcc::{self as mvcc, KeyRange};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::concurrency::{
    Access, CleanUp, ConcError, ConcurrencyService, created_at, first_created, own_key, prefix,
    txn_kvs,
};
use crate::convert::key_value;
use crate::pb::v3electionpb as pb;

/// The gRPC Election service over a node.
#[derive(Debug)]
pub struct ElectionShim<S> {
    node: Arc<S>,
}

impl<S: ConcurrencyService> ElectionShim<S> {
    /// Serve `node`.
    pub fn new(node: Arc<S>) -> Self {
        Self { node }
    }

    /// The tonic service.
    pub fn into_server(self) -> pb::election_server::ElectionServer<Self> {
        pb::election_server::ElectionServer::new(self)
    }

    /// One Observe stream (the gRPC method and the binary protocol both
    /// run theirs through here).
    pub fn observe_stream(&self, req: Request<pb::LeaderRequest>) -> ObserveStream {
        let a = Access::new(self.node.clone(), &req);
        let pfx = prefix(&req.into_inner().name);
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            tokio::select! {
                () = observe(a, pfx, &tx) => {}
                () = tx.closed() => {}
            }
        });
        Box::pin(ReceiverStream::new(rx))
    }
}

/// Put `value` into `key` if it was created at `rev`; the txn's revision.
async fn proclaim<S: ConcurrencyService>(
    a: &Access<S>,
    key: &[u8],
    rev: i64,
    lease: i64,
    value: &[u8],
) -> Result<i64, Status> {
    let r = a
        .txn(mvcc::TxnRequest {
            compare: vec![created_at(key, rev)],
            success: vec![mvcc::RequestOp::Put(mvcc::PutRequest {
                lease,
                ..mvcc::PutRequest::new(key.to_vec(), value.to_vec())
            })],
            failure: Vec::new(),
        })
        .await?;
    if !r.succeeded {
        return Err(ConcError::NotLeader.into());
    }
    Ok(r.revision)
}

/// Delete `key` if it was created at `rev`; the txn's revision.
async fn resign<S: ConcurrencyService>(a: &Access<S>, key: &[u8], rev: i64) -> Result<i64, Status> {
    a.txn(mvcc::TxnRequest {
        compare: vec![created_at(key, rev)],
        success: vec![mvcc::RequestOp::DeleteRange(mvcc::DeleteRangeRequest::new(
            key.to_vec(),
            Vec::new(),
        ))],
        failure: Vec::new(),
    })
    .await
    .map(|r| r.revision)
}

/// etcd's `Election.Campaign`: (leader key, header revision).
async fn campaign<S: ConcurrencyService>(
    a: &Access<S>,
    name: &[u8],
    lease: i64,
    value: &[u8],
) -> Result<(pb::LeaderKey, i64), Status> {
    let lease = a.session_lease(lease).await?;
    let pfx = prefix(name);
    let key = own_key(&pfx, lease);
    let r = a
        .txn(mvcc::TxnRequest {
            compare: vec![created_at(&key, 0)],
            success: vec![mvcc::RequestOp::Put(mvcc::PutRequest {
                lease,
                ..mvcc::PutRequest::new(key.clone(), value.to_vec())
            })],
            failure: vec![mvcc::RequestOp::Range(mvcc::RangeRequest::new(
                key.clone(),
                Vec::new(),
            ))],
        })
        .await?;
    let mut rev = r.revision;
    if !r.succeeded
        && let Some(kv) = txn_kvs(&r, 0).first()
    {
        rev = kv.create_revision;
        if kv.value != value
            && let Err(e) = proclaim(a, &key, rev, lease, value).await
        {
            let _ = resign(a, &key, rev).await;
            return Err(e);
        }
    }
    let undo = CleanUp::new(a, &key, Some(rev));
    let waited = a.wait_deletes(&pfx, rev - 1).await;
    // Cancelled requests never get here: dropping `undo` resigns. Any
    // other failure keeps the key, as etcd does.
    undo.disarm();
    waited?;
    Ok((
        pb::LeaderKey {
            name: name.to_vec(),
            key,
            rev,
            lease,
        },
        r.revision,
    ))
}

/// The current leader: the oldest key under `pfx`.
async fn leader<S: ConcurrencyService>(
    a: &Access<S>,
    pfx: &[u8],
) -> Result<(mvcc::KeyValue, i64), Status> {
    let r = a.range(first_created(pfx)).await?;
    let rev = r.revision;
    r.kvs
        .into_iter()
        .next()
        .map(|kv| (kv, rev))
        .ok_or_else(|| ConcError::NoLeader.into())
}

/// etcd's `Election.observe`, sending until the receiver goes away or a
/// read fails (which ends the stream without an error, as in etcd).
async fn observe<S: ConcurrencyService>(
    a: Access<S>,
    pfx: Vec<u8>,
    tx: &mpsc::Sender<Result<pb::LeaderResponse, Status>>,
) {
    let send = |kv: mvcc::KeyValue, rev: i64| pb::LeaderResponse {
        header: a.header(rev),
        kv: Some(key_value(kv)),
    };
    loop {
        let Ok(r) = a.range(first_created(&pfx)).await else {
            return;
        };
        let (kv, rev) = match r.kvs.into_iter().next() {
            Some(kv) => (kv, r.revision),
            None => {
                // No leader: the first key put under the name is.
                let Ok(mut w) = a.watch(
                    KeyRange::new(&pfx, &crate::client::prefix_end(&pfx)),
                    r.revision,
                ) else {
                    return;
                };
                loop {
                    let resp = w.next().await;
                    if resp.canceled {
                        return;
                    }
                    if let Some(e) = resp.events.iter().find(|e| e.kind == mvcc::EventKind::Put) {
                        break (e.kv.clone(), e.kv.mod_revision);
                    }
                }
            }
        };
        let key = kv.key.clone();
        if tx.send(Ok(send(kv, rev))).await.is_err() {
            return;
        }
        // Follow the leader's key until it is deleted.
        let Ok(mut w) = a.watch(KeyRange::new(&key, &[]), rev + 1) else {
            return;
        };
        'key: loop {
            let resp = w.next().await;
            if resp.canceled {
                return;
            }
            for e in resp.events.iter() {
                if e.kind == mvcc::EventKind::Delete {
                    break 'key;
                }
                if tx
                    .send(Ok(send(e.kv.clone(), resp.revision)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// The answers of one Observe stream.
pub type ObserveStream = Pin<Box<dyn Stream<Item = Result<pb::LeaderResponse, Status>> + Send>>;

#[tonic::async_trait]
impl<S: ConcurrencyService> pb::election_server::Election for ElectionShim<S> {
    type ObserveStream = ObserveStream;

    async fn campaign(
        &self,
        req: Request<pb::CampaignRequest>,
    ) -> Result<Response<pb::CampaignResponse>, Status> {
        let a = Access::new(self.node.clone(), &req);
        let r = req.into_inner();
        let (leader, rev) = campaign(&a, &r.name, r.lease, &r.value).await?;
        Ok(Response::new(pb::CampaignResponse {
            header: a.header(rev),
            leader: Some(leader),
        }))
    }

    async fn proclaim(
        &self,
        req: Request<pb::ProclaimRequest>,
    ) -> Result<Response<pb::ProclaimResponse>, Status> {
        let a = Access::new(self.node.clone(), &req);
        let r = req.into_inner();
        let l = r.leader.ok_or(ConcError::MissingLeaderKey)?;
        let lease = a.session_lease(l.lease).await?;
        let rev = proclaim(&a, &l.key, l.rev, lease, &r.value).await?;
        Ok(Response::new(pb::ProclaimResponse {
            header: a.header(rev),
        }))
    }

    async fn leader(
        &self,
        req: Request<pb::LeaderRequest>,
    ) -> Result<Response<pb::LeaderResponse>, Status> {
        let a = Access::new(self.node.clone(), &req);
        let (kv, rev) = leader(&a, &prefix(&req.into_inner().name)).await?;
        Ok(Response::new(pb::LeaderResponse {
            header: a.header(rev),
            kv: Some(key_value(kv)),
        }))
    }

    async fn observe(
        &self,
        req: Request<pb::LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        Ok(Response::new(self.observe_stream(req)))
    }

    async fn resign(
        &self,
        req: Request<pb::ResignRequest>,
    ) -> Result<Response<pb::ResignResponse>, Status> {
        let a = Access::new(self.node.clone(), &req);
        let l = req.into_inner().leader.ok_or(ConcError::MissingLeaderKey)?;
        // etcd opens a session here too: lease 0 grants one.
        a.session_lease(l.lease).await?;
        let rev = resign(&a, &l.key, l.rev).await?;
        Ok(Response::new(pb::ResignResponse {
            header: a.header(rev),
        }))
    }
}
