//! What etcd's v3lock and v3election services share (etcd 3.5 builds both
//! from its `clientv3/concurrency` package over an in-process client; we
//! run the same recipes over the node's KV, Watch and Lease services):
//!
//! - a *session lease*: the request's lease, or with lease 0 a fresh lease
//!   of [`SESSION_TTL`] seconds that nobody keeps alive (etcd grants one
//!   and orphans the session, so the key goes after a minute);
//! - the own key `<name>/<lease id in lowercase hex>`;
//! - ownership by the lowest create revision under `<name>/`, waiting for
//!   the deletion of the newest older key, again until none is left;
//! - errors: every failure reaches the wire as `Unknown` with its message,
//!   the recipes' own ([`ConcError`]) and the KV's alike (etcd's services
//!   see the KV's errors through a client, which loses their codes:
//!   checked against etcd 3.5.1, e.g. an unknown lease answers code 2
//!   `etcdserver: requested lease not found`).
//!
//! All store access of the two services goes through [`Access`], built
//! from the request (its metadata): the one place for permission checks.

use std::sync::Arc;

use ferrocd_mvcc::{self as mvcc, KeyRange};
use tonic::Status;

use crate::auth::{AuthInfo, Credentials};
use crate::kv::{KvService, ServerInfo};
use crate::lease::LeaseService;
use crate::status::EtcdError;
use crate::watch::WatchService;

/// TTL of the session lease granted for a request with lease 0 (etcd's
/// `defaultSessionTTL`).
pub(crate) const SESSION_TTL: i64 = 60;

/// Responses moved from the watch hub per wake-up.
const DRAIN_BATCH: usize = 64;

/// What the lock and election services need from a node.
pub trait ConcurrencyService: KvService + WatchService + LeaseService {}
impl<T: KvService + WatchService + LeaseService> ConcurrencyService for T {}

/// The recipes' own errors, with etcd 3.5.1's messages (all `Unknown`,
/// code 2, on the wire and 500 through the gateway, as etcd answers them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConcError {
    /// Leader/Observe with no key under the name.
    NoLeader,
    /// Proclaim (or a Campaign's value update) by a key that is no longer
    /// the one created at the leader's revision.
    NotLeader,
    /// Proclaim/Resign without `leader`.
    MissingLeaderKey,
    /// Lock: the own key was gone once the older keys were.
    SessionExpired,
    /// A watch for a deletion ended without one.
    LostWatcher,
}

impl ConcError {
    pub(crate) fn message(self) -> &'static str {
        match self {
            ConcError::NoLeader => "election: no leader",
            ConcError::NotLeader => "election: not leader",
            ConcError::MissingLeaderKey => "\"leader\" field must be provided",
            ConcError::SessionExpired => "mutex: session is expired",
            ConcError::LostWatcher => "lost watcher waiting for delete",
        }
    }
}

impl From<ConcError> for Status {
    fn from(e: ConcError) -> Status {
        Status::unknown(e.message())
    }
}

/// A store error as these services answer it: `Unknown`, etcd's message.
fn through_client(e: EtcdError) -> Status {
    Status::unknown(e.message())
}

/// `<name>/`.
pub(crate) fn prefix(name: &[u8]) -> Vec<u8> {
    let mut p = name.to_vec();
    p.push(b'/');
    p
}

/// `<prefix><lease hex>`.
pub(crate) fn own_key(pfx: &[u8], lease: i64) -> Vec<u8> {
    let mut k = pfx.to_vec();
    k.extend_from_slice(format!("{lease:x}").as_bytes());
    k
}

/// Every key under `pfx`, oldest first, one: etcd's `WithFirstCreate`.
pub(crate) fn first_created(pfx: &[u8]) -> mvcc::RangeRequest {
    mvcc::RangeRequest {
        limit: 1,
        sort_order: mvcc::SortOrder::Ascend,
        sort_target: mvcc::SortTarget::Create,
        ..mvcc::RangeRequest::new(pfx.to_vec(), crate::client::prefix_end(pfx))
    }
}

/// `create_revision(key) == rev`.
pub(crate) fn created_at(key: &[u8], rev: i64) -> mvcc::Compare {
    mvcc::Compare {
        result: mvcc::CompareResult::Equal,
        target: mvcc::CompareTarget::Create(rev),
        key: key.to_vec(),
        range_end: Vec::new(),
    }
}

/// The key-values of a txn's `i`th response, if it is a range.
pub(crate) fn txn_kvs(r: &mvcc::TxnResponse, i: usize) -> &[mvcc::KeyValue] {
    match r.responses.get(i) {
        Some(mvcc::ResponseOp::Range(g)) => &g.kvs,
        _ => &[],
    }
}

/// The store access of one lock or election request. Everything the two
/// services read, write, grant or watch goes through here, so a
/// permission check (from the request's metadata, e.g. its `token`) can
/// sit in front of each call.
///
/// Auth: as in etcd, whose services call the KV through an in-process
/// client that carries the caller's token, every call is made as the
/// caller — with its credentials resolved afresh each time (a token may
/// expire during a long wait), so a lock or election needs read and write
/// permission on the name's keys.
pub(crate) struct Access<S> {
    node: Arc<S>,
    /// The request's credentials (token, client certificate name).
    cred: Credentials,
    /// The caller as last resolved (watches check against it).
    who: Arc<std::sync::Mutex<Option<AuthInfo>>>,
}

impl<S> Clone for Access<S> {
    fn clone(&self) -> Self {
        Self {
            node: self.node.clone(),
            cred: self.cred.clone(),
            who: self.who.clone(),
        }
    }
}

impl<S: ConcurrencyService> Access<S> {
    pub(crate) fn new<T>(node: Arc<S>, req: &tonic::Request<T>) -> Self {
        Self {
            node,
            cred: Credentials::of(req),
            who: Arc::new(std::sync::Mutex::new(None)),
        }
    }

    /// The caller, resolved now.
    async fn who(&self) -> Result<Option<AuthInfo>, Status> {
        let who = self
            .node
            .authorize(self.cred.clone())
            .await
            .map_err(through_client)?;
        who.clone_into(&mut self.who.lock().expect("who lock"));
        Ok(who)
    }

    pub(crate) fn info(&self) -> ServerInfo {
        KvService::info(&*self.node)
    }

    pub(crate) fn header(&self, revision: i64) -> Option<crate::pb::etcdserverpb::ResponseHeader> {
        crate::convert::header(&self.info(), revision)
    }

    /// A linearizable read.
    pub(crate) async fn range(&self, r: mvcc::RangeRequest) -> Result<mvcc::RangeResponse, Status> {
        let who = self.who().await?;
        self.node.range(who, r, false).await.map_err(through_client)
    }

    pub(crate) async fn txn(&self, r: mvcc::TxnRequest) -> Result<mvcc::TxnResponse, Status> {
        let who = self.who().await?;
        self.node.txn(who, r).await.map_err(through_client)
    }

    /// Delete one key; returns the header revision.
    pub(crate) async fn delete(&self, key: &[u8]) -> Result<i64, Status> {
        if key.is_empty() {
            return Err(through_client(EtcdError::EmptyKey));
        }
        let who = self.who().await?;
        self.node
            .delete_range(who, mvcc::DeleteRangeRequest::new(key.to_vec(), Vec::new()))
            .await
            .map(|r| r.revision)
            .map_err(through_client)
    }

    /// The session lease of a request: `lease`, or for 0 a fresh
    /// [`SESSION_TTL`] lease nobody keeps alive (as etcd does).
    pub(crate) async fn session_lease(&self, lease: i64) -> Result<i64, Status> {
        if lease != 0 {
            return Ok(lease);
        }
        let who = self.who().await?;
        self.node
            .grant(who, 0, SESSION_TTL)
            .await
            .map(|(id, _)| id)
            .map_err(through_client)
    }

    /// A watch of `range` from revision `from` on a stream of its own
    /// (closed when the returned value is dropped).
    /// Checked against the caller as last resolved (a read of the same
    /// keys always comes first).
    pub(crate) fn watch(&self, range: KeyRange, from: i64) -> Result<Watch<S>, Status> {
        let who = self.who.lock().expect("who lock").clone();
        self.node
            .watch_permitted(
                who.as_ref(),
                &range.start,
                range.end.as_deref().unwrap_or(&[0]),
            )
            .map_err(through_client)?;
        let (stream, wake) = self.node.open_stream();
        let mut req = mvcc::WatchRequest::new(range);
        req.start_revision = from;
        self.node.watch(stream, req);
        Ok(Watch {
            node: self.node.clone(),
            stream,
            wake,
            buf: Vec::new(),
        })
    }

    /// Wait until `key` is deleted (watching from revision `from`).
    async fn wait_delete(&self, key: &[u8], from: i64) -> Result<(), Status> {
        let mut w = self.watch(KeyRange::new(key, &[]), from)?;
        loop {
            let r = w.next().await;
            if r.canceled {
                return Err(if r.compact_revision != 0 {
                    through_client(EtcdError::Compacted)
                } else {
                    ConcError::LostWatcher.into()
                });
            }
            if r.events.iter().any(|e| e.kind == mvcc::EventKind::Delete) {
                return Ok(());
            }
        }
    }

    /// etcd's `waitDeletes`: until no key under `pfx` was created at or
    /// before `max_create_rev`, wait for the deletion of the newest such
    /// key. Waiters thus wake in create-revision order, each when the key
    /// just ahead of it goes.
    pub(crate) async fn wait_deletes(&self, pfx: &[u8], max_create_rev: i64) -> Result<(), Status> {
        loop {
            let r = self
                .range(mvcc::RangeRequest {
                    limit: 1,
                    sort_order: mvcc::SortOrder::Descend,
                    sort_target: mvcc::SortTarget::Create,
                    max_create_revision: max_create_rev,
                    ..mvcc::RangeRequest::new(pfx.to_vec(), crate::client::prefix_end(pfx))
                })
                .await?;
            let Some(last) = r.kvs.first() else {
                return Ok(());
            };
            self.wait_delete(&last.key, r.revision).await?;
        }
    }
}

/// One watcher on a stream of its own.
pub(crate) struct Watch<S: WatchService> {
    node: Arc<S>,
    stream: mvcc::StreamId,
    wake: Arc<tokio::sync::Notify>,
    buf: Vec<mvcc::WatchResponse>,
}

impl<S: WatchService> Watch<S> {
    /// The next response (events, progress or cancel).
    pub(crate) async fn next(&mut self) -> mvcc::WatchResponse {
        loop {
            if self.buf.is_empty() {
                self.node.drain(self.stream, DRAIN_BATCH, &mut self.buf);
                // Oldest first.
                self.buf.reverse();
            }
            if let Some(r) = self.buf.pop() {
                return r;
            }
            self.wake.notified().await;
        }
    }
}

impl<S: WatchService> Drop for Watch<S> {
    fn drop(&mut self) {
        self.node.close_stream(self.stream);
    }
}

/// Undoes a waiter's key when its request goes away while it waits (the
/// client cancelled or disconnected: tonic, the gateway and the fast
/// server drop the request's future), as etcd's recipes clean up on a
/// cancelled context.
pub(crate) struct CleanUp<S: ConcurrencyService> {
    access: Option<Access<S>>,
    key: Vec<u8>,
    /// `Some(rev)`: delete only if the key was created at `rev` (an
    /// election's resign); `None`: delete (a lock's unlock).
    created: Option<i64>,
}

impl<S: ConcurrencyService> CleanUp<S> {
    pub(crate) fn new(access: &Access<S>, key: &[u8], created: Option<i64>) -> Self {
        Self {
            access: Some(access.clone()),
            key: key.to_vec(),
            created,
        }
    }

    /// The wait ended: nothing to undo.
    pub(crate) fn disarm(mut self) {
        self.access = None;
    }

    /// Undo now (a failed wait).
    pub(crate) async fn run(mut self) {
        if let Some(a) = self.access.take() {
            undo(a, std::mem::take(&mut self.key), self.created).await;
        }
    }
}

async fn undo<S: ConcurrencyService>(a: Access<S>, key: Vec<u8>, created: Option<i64>) {
    let r = match created {
        None => a.delete(&key).await.map(drop),
        Some(rev) => a
            .txn(mvcc::TxnRequest {
                compare: vec![created_at(&key, rev)],
                success: vec![mvcc::RequestOp::DeleteRange(mvcc::DeleteRangeRequest::new(
                    key.clone(),
                    Vec::new(),
                ))],
                failure: Vec::new(),
            })
            .await
            .map(drop),
    };
    if let Err(e) = r {
        tracing::warn!(key = %String::from_utf8_lossy(&key), error = %e.message(),
            "could not remove the key of a cancelled lock or campaign; its lease will");
    }
}

impl<S: ConcurrencyService> Drop for CleanUp<S> {
    fn drop(&mut self) {
        let Some(a) = self.access.take() else { return };
        let key = std::mem::take(&mut self.key);
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                tracing::debug!(key = %String::from_utf8_lossy(&key),
                    "waiter went away; removing its key");
                h.spawn(undo(a, key, self.created));
            }
            Err(_) => tracing::warn!(key = %String::from_utf8_lossy(&key),
                "waiter went away outside a runtime; its lease will remove its key"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_messages_as_etcd() {
        let p = prefix(b"job");
        assert_eq!(p, b"job/");
        assert_eq!(own_key(&p, 0x694d_7ab2_0c11_a30f), b"job/694d7ab20c11a30f");
        assert_eq!(own_key(b"/", 255), b"/ff");
        // etcd 3.5.1's answers, seen through its gateway: code 2 each.
        for (e, m) in [
            (ConcError::NoLeader, "election: no leader"),
            (ConcError::NotLeader, "election: not leader"),
            (
                ConcError::MissingLeaderKey,
                "\"leader\" field must be provided",
            ),
            (ConcError::SessionExpired, "mutex: session is expired"),
        ] {
            let st = Status::from(e);
            assert_eq!((st.code(), st.message()), (tonic::Code::Unknown, m));
        }
        let st = through_client(EtcdError::LeaseNotFound);
        assert_eq!(
            (st.code(), st.message()),
            (
                tonic::Code::Unknown,
                "etcdserver: requested lease not found"
            )
        );
        let r = first_created(b"a/");
        assert_eq!(
            (r.key.as_slice(), r.range_end.as_slice()),
            (&b"a/"[..], &b"a0"[..])
        );
    }
}
