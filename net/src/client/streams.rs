//! Streams: watch, lease keep-alive, snapshot — one API over both
//! protocols — and the helpers built on them.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

use super::fast::{StreamTx, decode_reply, is_end};
use super::{Client, Conn, Error, Result, WatchOptions};
use crate::fast::codec::Message;
use crate::fast::methods::{self as m, Streaming};
use crate::pb::etcdserverpb as pb;

/// The client's side of an open stream.
#[derive(Debug)]
enum Sender<T> {
    Fast(StreamTx),
    Grpc(mpsc::Sender<T>),
}

impl<T: Message> Sender<T> {
    async fn send(&self, msg: T) -> Result<()> {
        let ok = match self {
            Sender::Fast(tx) => tx.send(&msg),
            Sender::Grpc(tx) => tx.send(msg).await.is_ok(),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::status(tonic::Code::Unavailable, "stream closed"))
        }
    }
}

impl Client {
    /// Open stream `M` with its first message.
    async fn open<M: Streaming>(
        &self,
        first: M::Req,
    ) -> Result<(Sender<M::Req>, BoxStream<'static, Result<M::Resp>>)> {
        let (conn, generation) = self.conn().await?;
        let r = match conn {
            Conn::Fast(c) => c.open::<M>(&first).map(|(tx, rx)| {
                let kind = tx.kind();
                let s =
                    futures_util::stream::unfold((rx, false), move |(mut rx, done)| async move {
                        if done {
                            return None;
                        }
                        let reply = rx.recv().await?;
                        if let Ok((k, _)) = &reply
                            && is_end(*k)
                        {
                            return None;
                        }
                        match decode_reply::<M::Resp>(kind, reply) {
                            Ok(msg) => Some((Ok(msg), (rx, false))),
                            Err((e, _)) => Some((Err(e), (rx, true))),
                        }
                    });
                (Sender::Fast(tx), s.boxed())
            }),
            Conn::Grpc(c) => c
                .open::<M>(first)
                .await
                .map(|(tx, s)| (Sender::Grpc(tx), s)),
        };
        match r {
            Ok(v) => Ok(v),
            Err(e) => {
                if e.broken {
                    self.drop_conn(generation).await;
                }
                Err(e.error)
            }
        }
    }

    /// Open server stream `M` with its one request: over the fast
    /// protocol the client's side stays open (closing it ends the stream),
    /// over gRPC it ends after the request.
    async fn open_server_stream<M: Streaming>(
        &self,
        req: M::Req,
    ) -> Result<(Option<Sender<M::Req>>, BoxStream<'static, Result<M::Resp>>)> {
        let (conn, generation) = self.conn().await?;
        if let Conn::Grpc(c) = conn {
            return match c.server_stream::<M>(req).await {
                Ok(s) => Ok((None, s)),
                Err(e) => {
                    if e.broken {
                        self.drop_conn(generation).await;
                    }
                    Err(e.error)
                }
            };
        }
        let (tx, rx) = self.open::<M>(req).await?;
        Ok((Some(tx), rx))
    }

    /// Watch `key` (see [`WatchOptions`]): the [`Watcher`] adds and
    /// cancels watches on the stream, the [`WatchStream`] yields responses
    /// (the first one is the `created` confirmation).
    ///
    /// ```no_run
    /// # async fn demo(client: ferrocd_net::client::Client) -> Result<(), ferrocd_net::client::Error> {
    /// use ferrocd_net::client::WatchOptions;
    /// let (_watcher, mut stream) = client
    ///     .watch("/config/", Some(WatchOptions::new().with_prefix()))
    ///     .await?;
    /// while let Some(resp) = stream.message().await? {
    ///     for ev in resp.events {
    ///         println!("{:?}", ev.kv.map(|kv| kv.key));
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn watch(
        &self,
        key: impl Into<Vec<u8>>,
        opts: Option<WatchOptions>,
    ) -> Result<(Watcher, WatchStream)> {
        let create = create_request(opts.unwrap_or_default().build(key.into()));
        let (tx, rx) = self.open::<m::Watch>(create).await?;
        Ok((Watcher { tx }, WatchStream { inner: rx }))
    }

    /// A watch of one key or range that survives lost connections: after
    /// a failure it reconnects (to the next endpoint if need be) and
    /// re-creates the watch from the revision after the last one it
    /// delivered, so no event is lost or repeated. A compacted start
    /// revision ends it with an error, as for a plain watch.
    pub async fn watch_resuming(
        &self,
        key: impl Into<Vec<u8>>,
        opts: Option<WatchOptions>,
    ) -> Result<ResumingWatch> {
        let base = opts.unwrap_or_default().build(key.into());
        let (tx, rx) = self.open::<m::Watch>(create_request(base.clone())).await?;
        Ok(ResumingWatch {
            client: self.clone(),
            next_rev: base.start_revision,
            base,
            current: Some((Watcher { tx }, WatchStream { inner: rx })),
        })
    }

    /// Open a keep-alive stream for lease `id`, sending the first ping.
    pub async fn lease_keep_alive(&self, id: i64) -> Result<(LeaseKeeper, LeaseKeepAliveStream)> {
        let (tx, rx) = self
            .open::<m::LeaseKeepAlive>(pb::LeaseKeepAliveRequest { id })
            .await?;
        Ok((LeaseKeeper { id, tx }, LeaseKeepAliveStream { inner: rx }))
    }

    /// Keep lease `id` alive in the background (a ping every third of its
    /// TTL, reconnecting on failure) until the handle is dropped or the
    /// lease is gone. The handle tells the latest TTL the server granted.
    pub async fn keep_lease_alive(&self, id: i64) -> Result<KeepAliveHandle> {
        let (mut keeper, mut stream) = self.lease_keep_alive(id).await?;
        let first = stream
            .message()
            .await?
            .ok_or_else(|| Error::status(tonic::Code::Unavailable, "keep-alive stream closed"))?;
        if first.ttl <= 0 {
            return Err(Error::status(
                tonic::Code::NotFound,
                "etcdserver: requested lease not found",
            ));
        }
        let (ttl_tx, ttl_rx) = tokio::sync::watch::channel(first.ttl);
        let client = self.clone();
        let task = tokio::spawn(async move {
            let mut ttl = first.ttl;
            loop {
                tokio::time::sleep(Duration::from_millis((ttl as u64 * 1000 / 3).max(500))).await;
                let next = match keeper.keep_alive().await {
                    Ok(()) => stream.message().await,
                    Err(e) => Err(e),
                };
                match next {
                    Ok(Some(r)) if r.ttl > 0 => {
                        ttl = r.ttl;
                        let _ = ttl_tx.send(ttl);
                    }
                    // The lease expired or was revoked.
                    Ok(Some(_)) => {
                        let _ = ttl_tx.send(0);
                        return;
                    }
                    Ok(None) | Err(_) => {
                        // Reconnect; give up when the lease is gone.
                        match client.lease_keep_alive(id).await {
                            Ok((k, s)) => {
                                keeper = k;
                                stream = s;
                                match stream.message().await {
                                    Ok(Some(r)) if r.ttl > 0 => ttl = r.ttl,
                                    Ok(Some(_)) => {
                                        let _ = ttl_tx.send(0);
                                        return;
                                    }
                                    _ => ttl = 1,
                                }
                            }
                            Err(_) => ttl = 1,
                        }
                    }
                }
            }
        });
        Ok(KeepAliveHandle { ttl: ttl_rx, task })
    }

    /// Observe election `name`: the leader now (or the first one, when
    /// there is none yet), then every change of leader or of its value.
    /// Dropping the stream ends it.
    pub async fn observe(&self, name: impl Into<Vec<u8>>) -> Result<ObserveStream> {
        let (tx, rx) = self
            .open_server_stream::<m::Observe>(crate::pb::v3electionpb::LeaderRequest {
                name: name.into(),
            })
            .await?;
        Ok(ObserveStream { _tx: tx, inner: rx })
    }

    /// Stream a snapshot of the connected member's store.
    pub async fn snapshot(&self) -> Result<SnapshotStream> {
        let (tx, rx) = self
            .open_server_stream::<m::Snapshot>(pb::SnapshotRequest {})
            .await?;
        Ok(SnapshotStream { _tx: tx, inner: rx })
    }
}

fn create_request(c: pb::WatchCreateRequest) -> pb::WatchRequest {
    pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CreateRequest(c)),
    }
}

/// Adds, cancels and pokes the watches of one stream; dropping it closes
/// the stream.
#[derive(Debug)]
pub struct Watcher {
    tx: Sender<pb::WatchRequest>,
}

impl Watcher {
    /// Another watch on the same stream.
    pub async fn watch(
        &mut self,
        key: impl Into<Vec<u8>>,
        opts: Option<WatchOptions>,
    ) -> Result<()> {
        self.tx
            .send(create_request(opts.unwrap_or_default().build(key.into())))
            .await
    }

    /// Cancel watch `id`.
    pub async fn cancel(&mut self, id: i64) -> Result<()> {
        self.tx
            .send(pb::WatchRequest {
                request_union: Some(pb::watch_request::RequestUnion::CancelRequest(
                    pb::WatchCancelRequest { watch_id: id },
                )),
            })
            .await
    }

    /// Ask for a progress notification.
    pub async fn request_progress(&mut self) -> Result<()> {
        self.tx
            .send(pb::WatchRequest {
                request_union: Some(pb::watch_request::RequestUnion::ProgressRequest(
                    pb::WatchProgressRequest {},
                )),
            })
            .await
    }
}

macro_rules! reply_stream {
    ($name:ident, $item:ty, $doc:literal) => {
        #[doc = $doc]
        pub struct $name {
            inner: BoxStream<'static, Result<$item>>,
        }

        impl $name {
            /// The next message; `None` once the stream is over.
            pub async fn message(&mut self) -> Result<Option<$item>> {
                self.inner.next().await.transpose()
            }
        }

        impl Stream for $name {
            type Item = Result<$item>;
            fn poll_next(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<Option<Self::Item>> {
                self.inner.poll_next_unpin(cx)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(stringify!($name))
            }
        }
    };
}

reply_stream!(WatchStream, pb::WatchResponse, "Watch responses.");
reply_stream!(
    LeaseKeepAliveStream,
    pb::LeaseKeepAliveResponse,
    "Keep-alive answers."
);

/// Leaders of an election, as [`Client::observe`] reports them.
pub struct ObserveStream {
    _tx: Option<Sender<crate::pb::v3electionpb::LeaderRequest>>,
    inner: BoxStream<'static, Result<crate::pb::v3electionpb::LeaderResponse>>,
}

impl ObserveStream {
    /// The next leader (or leader value); `None` when the stream ended.
    pub async fn message(&mut self) -> Result<Option<crate::pb::v3electionpb::LeaderResponse>> {
        self.inner.next().await.transpose()
    }
}

impl std::fmt::Debug for ObserveStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ObserveStream")
    }
}

/// Snapshot chunks, in order.
pub struct SnapshotStream {
    _tx: Option<Sender<pb::SnapshotRequest>>,
    inner: BoxStream<'static, Result<pb::SnapshotResponse>>,
}

impl SnapshotStream {
    /// The next chunk; `None` at the end.
    pub async fn message(&mut self) -> Result<Option<pb::SnapshotResponse>> {
        self.inner.next().await.transpose()
    }
}

impl std::fmt::Debug for SnapshotStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SnapshotStream")
    }
}

/// Sends keep-alive pings for one lease.
#[derive(Debug)]
pub struct LeaseKeeper {
    id: i64,
    tx: Sender<pb::LeaseKeepAliveRequest>,
}

impl LeaseKeeper {
    /// The lease.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// One ping; the answer arrives on the [`LeaseKeepAliveStream`].
    pub async fn keep_alive(&mut self) -> Result<()> {
        self.tx
            .send(pb::LeaseKeepAliveRequest { id: self.id })
            .await
    }
}

/// A background keep-alive ([`Client::keep_lease_alive`]); dropping it
/// stops the pings (the lease then expires after its TTL).
#[derive(Debug)]
pub struct KeepAliveHandle {
    ttl: tokio::sync::watch::Receiver<i64>,
    task: tokio::task::JoinHandle<()>,
}

impl KeepAliveHandle {
    /// The TTL the server granted last; 0 once the lease is gone.
    pub fn ttl(&self) -> i64 {
        *self.ttl.borrow()
    }
}

impl Drop for KeepAliveHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// See [`Client::watch_resuming`].
#[derive(Debug)]
pub struct ResumingWatch {
    client: Client,
    base: pb::WatchCreateRequest,
    next_rev: i64,
    current: Option<(Watcher, WatchStream)>,
}

impl ResumingWatch {
    /// The next response with events (or a progress notification);
    /// reconnects as often as needed. `Err` only for what a reconnect
    /// cannot mend (compacted, canceled by the server, bad request).
    pub async fn message(&mut self) -> Result<pb::WatchResponse> {
        let mut backoff = Duration::from_millis(50);
        loop {
            if self.current.is_none() {
                let mut req = self.base.clone();
                req.start_revision = self.next_rev;
                match self.client.open::<m::Watch>(create_request(req)).await {
                    Ok((tx, rx)) => {
                        self.current = Some((Watcher { tx }, WatchStream { inner: rx }))
                    }
                    Err(e) if is_transient(&e) => {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let (_, stream) = self.current.as_mut().expect("set above");
            match stream.message().await {
                Ok(Some(r)) => {
                    if r.compact_revision > 0 {
                        return Err(Error::status(
                            tonic::Code::OutOfRange,
                            "etcdserver: mvcc: required revision has been compacted",
                        ));
                    }
                    if r.canceled {
                        return Err(Error::status(tonic::Code::Cancelled, r.cancel_reason));
                    }
                    if r.created && r.events.is_empty() {
                        continue;
                    }
                    if let Some(last) = r.events.last().and_then(|e| e.kv.as_ref()) {
                        self.next_rev = last.mod_revision + 1;
                    } else if let Some(h) = &r.header {
                        // Progress: nothing up to the header revision is missed.
                        self.next_rev = self.next_rev.max(h.revision + 1);
                    }
                    return Ok(r);
                }
                Ok(None) => self.current = None,
                Err(e) if is_transient(&e) => self.current = None,
                Err(e) => return Err(e),
            }
        }
    }
}

fn is_transient(e: &Error) -> bool {
    matches!(e, Error::Connect(_))
        || matches!(e.code(), tonic::Code::Unavailable | tonic::Code::Unknown)
}
