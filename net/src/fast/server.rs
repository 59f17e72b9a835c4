//! The server side of the binary protocol: one task per connection reads
//! frames and runs the KV calls (Range, Put, DeleteRange, Txn) itself,
//! polling them beside the socket (a slow call never holds up the ones
//! behind it: answers leave in completion order, the ones that complete
//! together in one message to the writer); every other request runs as a
//! task of its own. One writer task per connection sends answers,
//! coalescing whatever is queued into one write. Everything runs on the
//! shard that accepted the connection; requests call the very gRPC
//! service objects the shard serves, so both protocols have one code
//! path and one set of errors.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Status};

use super::codec::{self, ErrorReply, Message};
use super::methods::{self as m, Streaming, Unary};
use super::{KIND_CLOSE, KIND_END, KIND_ERR, KIND_OK};
use crate::auth::Credentials;
use crate::pb::etcdserverpb as pb;
use crate::pb::etcdserverpb::auth_server::Auth;
use crate::pb::etcdserverpb::cluster_server::Cluster;
use crate::pb::etcdserverpb::kv_server::Kv;
use crate::pb::etcdserverpb::lease_server::Lease;
use crate::pb::etcdserverpb::maintenance_server::Maintenance;
use crate::pb::v3electionpb::election_server::Election;
use crate::pb::v3lockpb::lock_server::Lock;
use crate::peer::frame::{DecodeError, Frame};
use crate::{
    AuthService, AuthShim, ClientConn, ClusterService, ClusterShim, ConnInfo, ElectionShim,
    KvService, KvShim, LeaseService, LeaseShim, LockShim, WatchService, WatchShim,
};

/// How long a new connection may take to send its preamble.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Answers queued per connection before request tasks wait for the socket.
const OUTBOX: usize = 4096;
/// Stream messages queued per stream before the reader waits.
const STREAM_INBOX: usize = 64;

/// Serves the binary protocol over a node's service objects.
#[derive(Debug)]
pub struct FastServer<S> {
    kv: Arc<KvShim<S>>,
    watch: Arc<WatchShim<S>>,
    lease: Arc<LeaseShim<S>>,
    cluster: Arc<ClusterShim<S>>,
    auth: Arc<AuthShim<S>>,
    /// The v3lock and v3election services, when served.
    concurrency: Option<Concurrency<S>>,
    max_frame: usize,
    /// `ferrocd_fast_requests_total{code, method}`: what gRPC's
    /// `grpc_server_handled_total` counts, for the binary protocol.
    handled: Option<prometheus::IntCounterVec>,
    /// `handled`'s OK counters of the four KV calls (Range, Put,
    /// DeleteRange, Txn), looked up once: a label lookup hashes its
    /// labels on every call.
    kv_ok: Option<Arc<[prometheus::IntCounter; 4]>>,
}

/// The lock and election service objects.
type Concurrency<S> = (Arc<LockShim<S>>, Arc<ElectionShim<S>>);

/// What one connection's reader keeps.
struct ConnState {
    /// Client streams in progress, by id.
    streams: HashMap<u64, Inbound>,
    /// The auth token the client set, if any.
    token: Option<Token>,
    /// The token and the client certificate's name, as the KV calls take
    /// them.
    cred: Credentials,
    /// The connection's address and client certificate.
    info: Arc<ConnInfo>,
    /// Answers to the writer task.
    out: mpsc::Sender<Vec<u8>>,
    /// Streams are require-leader streams.
    require_leader: bool,
    /// Calls that may wait for long (Lock, Campaign), by id: a
    /// [`KIND_CLOSE`] with their id, or the connection's end, cancels them
    /// (their services then withdraw the waiter's key), as a gRPC cancel
    /// does.
    waiting: Waiting,
}

/// See [`ConnState::waiting`].
type Waiting = Arc<std::sync::Mutex<HashMap<u64, tokio::task::AbortHandle>>>;

/// A KV call the connection's task runs itself; its output is the
/// answer's frame.
type KvCall = Pin<Box<dyn Future<Output = Vec<u8>> + Send>>;

/// A client-to-server stream in progress.
enum Inbound {
    Watch(mpsc::Sender<Result<pb::WatchRequest, Status>>),
    KeepAlive(mpsc::Sender<Result<pb::LeaseKeepAliveRequest, Status>>),
}

impl<S> FastServer<S>
where
    S: KvService + WatchService + LeaseService + ClusterService + AuthService,
{
    /// Serve the same service objects as the shard's gRPC server. Frames
    /// longer than `max_frame` bytes close their connection.
    pub fn new(
        kv: Arc<KvShim<S>>,
        watch: Arc<WatchShim<S>>,
        lease: Arc<LeaseShim<S>>,
        cluster: Arc<ClusterShim<S>>,
        auth: Arc<AuthShim<S>>,
        max_frame: usize,
    ) -> Self {
        Self {
            kv,
            watch,
            lease,
            cluster,
            auth,
            concurrency: None,
            max_frame,
            handled: None,
            kv_ok: None,
        }
    }

    /// Serve the v3lock and v3election methods too (without them they
    /// answer `Unimplemented`).
    pub fn with_concurrency(
        mut self,
        lock: Arc<LockShim<S>>,
        election: Arc<ElectionShim<S>>,
    ) -> Self {
        self.concurrency = Some((lock, election));
        self
    }

    /// Count every unary request by method and answer code in `metrics`
    /// (`ferrocd_fast_requests_total`). Any number of servers (one per
    /// shard) may share one `Metrics`.
    pub fn with_metrics(mut self, metrics: &crate::Metrics) -> Self {
        let handled = metrics.fast_requests().clone();
        let ok = |path| handled.with_label_values(&["OK", path]);
        self.kv_ok = Some(Arc::new([
            ok(m::Range::PATH),
            ok(m::Put::PATH),
            ok(m::DeleteRange::PATH),
            ok(m::Txn::PATH),
        ]));
        self.handled = Some(handled);
        self
    }

    /// Serve one connection whose first bytes are the fast preamble,
    /// until the client closes it or breaks the protocol.
    /// Plain or inside TLS; every request carries the connection's
    /// [`ConnInfo`] (its client certificate's identity) as gRPC's do.
    pub async fn serve(self: Arc<Self>, mut stream: ClientConn) {
        let info = stream.info().clone();
        let peer = info
            .remote
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let mut pre = [0u8; super::PREAMBLE];
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.read_exact(&mut pre)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "fast: no preamble"),
            Err(_) => return tracing::warn!(%peer, "fast: preamble timed out, closing"),
        }
        let Some((version, flags)) = super::parse_preamble(&pre) else {
            return tracing::warn!(%peer, "fast: bad magic, closing");
        };
        if version != super::VERSION {
            let _ = stream
                .write_all(&super::preamble(super::VERSION, super::STATUS_BAD_VERSION))
                .await;
            return tracing::warn!(
                %peer, version, ours = super::VERSION,
                "fast: client protocol version not supported, closing"
            );
        }
        if stream
            .write_all(&super::preamble(super::VERSION, super::STATUS_OK))
            .await
            .is_err()
        {
            return;
        }
        let require_leader = flags & super::FLAG_REQUIRE_LEADER != 0;
        let (mut rd, wr) = stream.into_split();
        let (out, outbox) = mpsc::channel::<Vec<u8>>(OUTBOX);
        let writer = tokio::spawn(super::write_coalesced(wr, outbox));
        let cred = Credentials {
            token: None,
            common_name: info.identity.as_ref().map(|i| i.common_name.clone()),
        };
        let mut conn = ConnState {
            streams: HashMap::new(),
            token: None,
            cred,
            info: Arc::new(info),
            out: out.clone(),
            require_leader,
            waiting: Waiting::default(),
        };
        let mut calls = FuturesUnordered::<KvCall>::new();
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut start = 0usize;
        'read: loop {
            // Decode every whole frame in the buffer.
            loop {
                match Frame::header(&buf[start..], self.max_frame) {
                    Ok((kind, id, total)) => {
                        let payload = &buf[start + crate::peer::frame::HEADER..start + total];
                        if let Err(reason) =
                            self.handle(kind, id, payload, &mut conn, &mut calls).await
                        {
                            tracing::warn!(%peer, reason, "fast: closing connection");
                            break 'read;
                        }
                        start += total;
                    }
                    Err(DecodeError::Incomplete(_)) => break,
                    Err(DecodeError::Malformed(reason)) => {
                        // Tell the client why before closing, when the
                        // header got as far as an id.
                        if buf.len() - start >= crate::peer::frame::HEADER {
                            let id = u64::from_le_bytes(
                                buf[start + 5..start + 13].try_into().expect("8 bytes"),
                            );
                            let st = Status::resource_exhausted(format!("fast: {reason}"));
                            let _ = out.try_send(error_frame(id, &st));
                        }
                        tracing::warn!(%peer, reason, "fast: malformed frame, closing connection");
                        break 'read;
                    }
                }
            }
            if start > 0 {
                buf.drain(..start);
                start = 0;
            }
            if buf.capacity() - buf.len() < 16 * 1024 {
                buf.reserve(64 * 1024);
            }
            // Read, running the KV calls meanwhile; the answers of calls
            // that complete together go to the writer as one message.
            let read = loop {
                if calls.is_empty() {
                    break rd.read_buf(&mut buf).await;
                }
                tokio::select! {
                    biased;
                    Some(mut frames) = calls.next() => {
                        while let Some(Some(f)) = calls.next().now_or_never() {
                            frames.extend_from_slice(&f);
                        }
                        if out.send(frames).await.is_err() {
                            break 'read;
                        }
                    }
                    r = rd.read_buf(&mut buf) => break r,
                }
            };
            match read {
                Ok(0) | Err(_) => {
                    if !buf.is_empty() {
                        tracing::warn!(
                            %peer,
                            pending = buf.len(),
                            "fast: connection closed in the middle of a frame"
                        );
                    }
                    break;
                }
                Ok(_) => {}
            }
        }
        // The client is gone: so are its waiting calls. Its KV calls
        // finish (a write may be proposed already) and are answered, as
        // their own tasks would be.
        for (_, task) in conn.waiting.lock().expect("waiting lock").drain() {
            task.abort();
        }
        while let Some(frame) = calls.next().await {
            if out.send(frame).await.is_err() {
                break;
            }
        }
        drop(conn);
        drop(out);
        let _ = writer.await;
    }

    /// Start one frame's work. `Err` is a protocol violation: close.
    async fn handle(
        self: &Arc<Self>,
        kind: u8,
        id: u64,
        payload: &[u8],
        conn: &mut ConnState,
        calls: &mut FuturesUnordered<KvCall>,
    ) -> Result<(), String> {
        let ConnState {
            streams,
            token,
            cred,
            info,
            out,
            require_leader,
            waiting,
        } = conn;
        let require_leader = *require_leader;
        if kind == KIND_CLOSE {
            streams.remove(&id);
            let task = waiting.lock().expect("waiting lock").remove(&id);
            if let Some(task) = task {
                task.abort();
                // Ends an Observe stream on the client's side too (a
                // cancelled unary call's id is unknown there by now).
                let mut end = Vec::with_capacity(13);
                super::put_frame(&mut end, KIND_END, id, &[]);
                let _ = out.send(end).await;
            }
            return Ok(());
        }
        if kind == super::KIND_TOKEN {
            let t = std::str::from_utf8(payload)
                .ok()
                .and_then(|t| t.parse::<Token>().ok())
                .ok_or("token frame is not a valid token")?;
            cred.token = t.to_str().ok().map(str::to_owned);
            *token = Some(t);
            return Ok(());
        }
        let tok = Meta {
            token: token.clone(),
            info: info.clone(),
        };
        if let Some(open) = streams.get(&id) {
            // The next message of an open client stream.
            let sent = match open {
                Inbound::Watch(tx) => {
                    push(
                        tx,
                        decode::<pb::WatchRequest>(kind, m::Watch::KIND, payload)?,
                    )
                    .await
                }
                Inbound::KeepAlive(tx) => {
                    push(
                        tx,
                        decode::<pb::LeaseKeepAliveRequest>(
                            kind,
                            m::LeaseKeepAlive::KIND,
                            payload,
                        )?,
                    )
                    .await
                }
            };
            if !sent {
                streams.remove(&id);
            }
            return Ok(());
        }
        // The KV calls: decoded here, run by the connection's task.
        macro_rules! kv {
            ($($method:ident => $call:ident, $ok:literal;)*) => {
                match kind {
                    $(m::$method::KIND => {
                        type M = m::$method;
                        let req = codec::decode::<<M as Unary>::Req>(payload)
                            .map_err(|e| e.to_string())?;
                        let kv = self.kv.clone();
                        let cred = cred.clone();
                        let handled = self.handled.clone();
                        let ok = self.kv_ok.clone();
                        calls.push(Box::pin(async move {
                            match kv.$call(cred, req).await {
                                Ok(resp) => {
                                    if let Some(ok) = ok {
                                        ok[$ok].inc();
                                    }
                                    answer(M::KIND | KIND_OK, id, &resp)
                                }
                                Err(st) => {
                                    count(&handled, st.code(), M::PATH);
                                    error_frame(id, &st)
                                }
                            }
                        }));
                        return Ok(());
                    })*
                    _ => {}
                }
            };
        }
        kv! {
            Range => call_range, 0;
            Put => call_put, 1;
            DeleteRange => call_delete_range, 2;
            Txn => call_txn, 3;
        }
        // One arm per other unary method: decode, call the gRPC service
        // object, answer from a task of its own.
        macro_rules! unary {
            ($($method:ident => $svc:ident . $call:ident,)*) => {
                match kind {
                    $(m::$method::KIND => {
                        let me = self.clone();
                        return self.unary::<m::$method, _, _>(id, payload, out, tok, move |r| async move {
                            me.$svc.$call(r).await
                        }).map(drop);
                    })*
                    _ => {}
                }
            };
        }
        unary! {
            Compact => kv.compact,
            LeaseGrant => lease.lease_grant,
            LeaseRevoke => lease.lease_revoke,
            LeaseTimeToLive => lease.lease_time_to_live,
            LeaseLeases => lease.lease_leases,
            MemberAdd => cluster.member_add,
            MemberRemove => cluster.member_remove,
            MemberUpdate => cluster.member_update,
            MemberList => cluster.member_list,
            MemberPromote => cluster.member_promote,
            Alarm => cluster.alarm,
            Status => cluster.status,
            Defragment => cluster.defragment,
            Hash => cluster.hash,
            HashKv => cluster.hash_kv,
            MoveLeader => cluster.move_leader,
            Downgrade => cluster.downgrade,
            AuthEnable => auth.auth_enable,
            AuthDisable => auth.auth_disable,
            AuthStatus => auth.auth_status,
            Authenticate => auth.authenticate,
            UserAdd => auth.user_add,
            UserGet => auth.user_get,
            UserList => auth.user_list,
            UserDelete => auth.user_delete,
            UserChangePassword => auth.user_change_password,
            UserGrantRole => auth.user_grant_role,
            UserRevokeRole => auth.user_revoke_role,
            RoleAdd => auth.role_add,
            RoleGet => auth.role_get,
            RoleList => auth.role_list,
            RoleDelete => auth.role_delete,
            RoleGrantPermission => auth.role_grant_permission,
            RoleRevokePermission => auth.role_revoke_permission,
        }
        if let Some((lock, election)) = &self.concurrency {
            // Lock and election: unary calls, the waiting ones cancellable.
            macro_rules! conc {
                ($($method:ident => $svc:ident . $call:ident, $waits:literal;)*) => {
                    match kind {
                        $(m::$method::KIND => {
                            let svc = $svc.clone();
                            if !$waits {
                                return self.unary::<m::$method, _, _>(id, payload, out, tok, move |r| async move {
                                    svc.$call(r).await
                                }).map(drop);
                            }
                            let done = waiting.clone();
                            let mut w = waiting.lock().expect("waiting lock");
                            let task = self.unary::<m::$method, _, _>(id, payload, out, tok, move |r| async move {
                                let res = svc.$call(r).await;
                                done.lock().expect("waiting lock").remove(&id);
                                res
                            })?;
                            w.insert(id, task);
                            return Ok(());
                        })*
                        _ => {}
                    }
                };
            }
            conc! {
                Lock => lock.lock, true;
                Unlock => lock.unlock, false;
                Campaign => election.campaign, true;
                Proclaim => election.proclaim, false;
                Leader => election.leader, false;
                Resign => election.resign, false;
            }
            if kind == m::Observe::KIND {
                let req = request(
                    decode::<crate::pb::v3electionpb::LeaderRequest>(kind, kind, payload)?,
                    tok,
                );
                let replies = Ok(election.observe_stream(req));
                // A server stream that lasts until the client closes it
                // (or the connection ends): cancellable like a waiting call.
                let done = waiting.clone();
                let out = out.clone();
                let mut w = waiting.lock().expect("waiting lock");
                let task = tokio::spawn(async move {
                    forward(id, kind, out, replies).await;
                    done.lock().expect("waiting lock").remove(&id);
                });
                w.insert(id, task.abort_handle());
                return Ok(());
            }
        }
        let me = self.clone();
        match kind {
            m::Watch::KIND => {
                let (tx, rx) = mpsc::channel(STREAM_INBOX);
                push(&tx, decode::<pb::WatchRequest>(kind, kind, payload)?).await;
                streams.insert(id, Inbound::Watch(tx));
                let cred = Credentials {
                    token: tok
                        .token
                        .as_ref()
                        .and_then(|t| t.to_str().ok())
                        .map(str::to_owned),
                    common_name: tok.info.identity.as_ref().map(|i| i.common_name.clone()),
                };
                let replies = self
                    .watch
                    .session(ReceiverStream::new(rx), require_leader, cred);
                spawn_stream(id, kind, out.clone(), replies);
            }
            m::LeaseKeepAlive::KIND => {
                let (tx, rx) = mpsc::channel(STREAM_INBOX);
                push(
                    &tx,
                    decode::<pb::LeaseKeepAliveRequest>(kind, kind, payload)?,
                )
                .await;
                streams.insert(id, Inbound::KeepAlive(tx));
                let replies = Ok(self.lease.keep_alive_session(ReceiverStream::new(rx)));
                spawn_stream(id, kind, out.clone(), replies);
            }
            m::Snapshot::KIND => {
                let req = request(decode::<pb::SnapshotRequest>(kind, kind, payload)?, tok);
                let out = out.clone();
                tokio::spawn(async move {
                    let replies = me.cluster.snapshot(req).await.map(|r| r.into_inner());
                    forward(id, kind, out, replies).await;
                });
            }
            k if m::UNARY_KINDS.iter().any(|(u, _)| *u == k)
                || m::STREAM_KINDS.iter().any(|(u, _)| *u == k) =>
            {
                // A method of the protocol this node does not serve yet:
                // the same answer its gRPC server gives.
                let path = m::UNARY_KINDS
                    .iter()
                    .chain(m::STREAM_KINDS)
                    .find(|(u, _)| *u == k)
                    .map_or("", |(_, p)| *p);
                let st = Status::unimplemented(format!("{path} is not implemented"));
                // Awaited: a full outbox must delay this answer, not drop it.
                let _ = out.send(error_frame(id, &st)).await;
            }
            other => return Err(format!("unknown frame kind {other}")),
        }
        Ok(())
    }

    /// Decode a unary request and answer it from a task of its own; a
    /// payload that does not validate is malformed (`Err`: close).
    fn unary<M, F, Fut>(
        &self,
        id: u64,
        payload: &[u8],
        out: &mpsc::Sender<Vec<u8>>,
        token: Meta,
        call: F,
    ) -> Result<tokio::task::AbortHandle, String>
    where
        M: Unary,
        F: FnOnce(Request<M::Req>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<tonic::Response<M::Resp>, Status>> + Send + 'static,
    {
        let out = out.clone();
        let req = codec::decode::<M::Req>(payload).map_err(|e| e.to_string())?;
        let handled = self.handled.clone();
        let task = tokio::spawn(async move {
            let (frame, code) = match call(request(req, token)).await {
                Ok(resp) => (
                    answer(M::KIND | KIND_OK, id, &resp.into_inner()),
                    tonic::Code::Ok,
                ),
                Err(st) => (error_frame(id, &st), st.code()),
            };
            count(&handled, code, M::PATH);
            let _ = out.send(frame).await;
        });
        Ok(task.abort_handle())
    }
}

/// Count a unary request's answer in `ferrocd_fast_requests_total`.
fn count(handled: &Option<prometheus::IntCounterVec>, code: tonic::Code, path: &str) {
    if let Some(h) = handled {
        let name = crate::metrics::CODE_NAMES
            .get(code as usize)
            .copied()
            .unwrap_or("Unknown");
        h.with_label_values(&[name, path]).inc();
    }
}

/// An auth token as gRPC metadata.
type Token = tonic::metadata::MetadataValue<tonic::metadata::Ascii>;

/// What every request of a connection carries besides its message.
#[derive(Clone)]
struct Meta {
    token: Option<Token>,
    info: Arc<ConnInfo>,
}

/// A request as the gRPC service sees it: the connection's token as
/// metadata, its [`ConnInfo`] as an extension (as tonic adds it).
fn request<T>(msg: T, meta: Meta) -> Request<T> {
    let mut r = Request::new(msg);
    if let Some(t) = meta.token {
        r.metadata_mut().insert("token", t);
    }
    r.extensions_mut().insert((*meta.info).clone());
    r
}

/// Decode a stream message whose kind must be `want`.
fn decode<T: Message>(kind: u8, want: u8, payload: &[u8]) -> Result<T, String> {
    if kind != want {
        return Err(format!("frame kind {kind} on a stream of kind {want}"));
    }
    codec::decode::<T>(payload).map_err(|e| e.to_string())
}

/// Queue a message for a stream session; `false` once the session is gone.
///
/// A full inbox makes the connection's reader wait, as HTTP/2 flow control
/// would: a client that floods one stream slows only its own connection.
async fn push<T>(tx: &mpsc::Sender<Result<T, Status>>, msg: T) -> bool {
    tx.send(Ok(msg)).await.is_ok()
}

fn spawn_stream<T: Message>(
    id: u64,
    kind: u8,
    out: mpsc::Sender<Vec<u8>>,
    replies: Result<impl futures_util::Stream<Item = Result<T, Status>> + Send + 'static, Status>,
) {
    tokio::spawn(forward(id, kind, out, replies));
}

/// Send a stream's replies, then its end (or its error).
async fn forward<T: Message>(
    id: u64,
    kind: u8,
    out: mpsc::Sender<Vec<u8>>,
    replies: Result<impl futures_util::Stream<Item = Result<T, Status>> + Send + 'static, Status>,
) {
    let replies = match replies {
        Ok(r) => r,
        Err(st) => {
            let _ = out.send(error_frame(id, &st)).await;
            return;
        }
    };
    let mut replies = std::pin::pin!(replies);
    while let Some(item) = replies.next().await {
        let frame = match item {
            Ok(msg) => answer(kind | KIND_OK, id, &msg),
            Err(st) => {
                let _ = out.send(error_frame(id, &st)).await;
                return;
            }
        };
        if out.send(frame).await.is_err() {
            return;
        }
    }
    let mut end = Vec::with_capacity(13);
    super::put_frame(&mut end, KIND_END, id, &[]);
    let _ = out.send(end).await;
}

fn answer<T: Message>(kind: u8, id: u64, msg: &T) -> Vec<u8> {
    let payload = codec::encode(msg);
    let mut f = Vec::with_capacity(13 + payload.len());
    super::put_frame(&mut f, kind, id, &payload);
    f
}

fn error_frame(id: u64, st: &Status) -> Vec<u8> {
    let payload = codec::encode(&ErrorReply::from_status(st));
    let mut f = Vec::with_capacity(13 + payload.len());
    super::put_frame(&mut f, KIND_ERR, id, &payload);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientIdentity;

    #[test]
    fn requests_carry_the_connection_identity_and_token() {
        let info = ConnInfo {
            remote: Some(SocketAddr::from(([127, 0, 0, 1], 9))),
            identity: Some(ClientIdentity {
                common_name: "alice".into(),
            }),
        };
        let meta = Meta {
            token: Some("tok.1".parse().unwrap()),
            info: Arc::new(info.clone()),
        };
        let r = request(pb::RangeRequest::default(), meta);
        assert_eq!(ClientIdentity::of(&r).unwrap().common_name, "alice");
        assert_eq!(ConnInfo::of(&r), Some(&info));
        assert_eq!(r.metadata().get("token").unwrap(), "tok.1");
        let plain = Meta {
            token: None,
            info: Arc::new(ConnInfo::default()),
        };
        let r = request(pb::RangeRequest::default(), plain);
        assert_eq!(ClientIdentity::of(&r), None);
        assert!(r.metadata().get("token").is_none());
    }
}
