//! The etcd Watch service (`/etcdserverpb.Watch/Watch`): one bidirectional
//! stream per client stream, many watchers on it (etcd's
//! `v3rpc/watch.go` wire rules).
//!
//! The node keeps the watchers (a [`WatchService`] over the mvcc hub); this
//! shim owns the wire: watch ids per stream (client-chosen or counting from
//! 0), `created` / `canceled` responses, filters, fragmenting large
//! responses when the client asked for it, and closing the stream's
//! watchers when the client goes away.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use ferrocd_mvcc::{self as mvcc, KeyRange, StreamId, WatcherId};
use prost::Message;
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{AuthInfo, Authorizer, Credentials};
use crate::convert;
use crate::kv::ServerInfo;
use crate::pb::etcdserverpb as pb;
use crate::pb::mvccpb;
use crate::status::EtcdError;

/// The cancel reason of a watch refused by auth, as etcd 3.5.1 words it
/// (a gRPC error's text).
const WATCH_DENIED: &str =
    "rpc error: code = PermissionDenied desc = etcdserver: permission denied";

/// Responses moved from the hub per wake-up.
const DRAIN_BATCH: usize = 64;

/// What the node provides for watches (a thin layer over `mvcc::Hub`).
pub trait WatchService: Authorizer {
    /// Header fields.
    fn info(&self) -> ServerInfo;
    /// A new stream and the waker the node pokes when it has responses.
    fn open_stream(&self) -> (StreamId, Arc<Notify>);
    /// The client went away.
    fn close_stream(&self, stream: StreamId);
    /// Whether `who` may watch `key`..`range_end` (read permission, as
    /// etcd checks each create request).
    fn watch_permitted(
        &self,
        who: Option<&AuthInfo>,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), EtcdError>;
    /// Register a watcher; returns it and the current revision.
    fn watch(&self, stream: StreamId, req: mvcc::WatchRequest) -> (WatcherId, i64);
    /// Cancel a watcher.
    fn cancel(&self, id: WatcherId) -> bool;
    /// A progress request on the stream.
    fn request_progress(&self, stream: StreamId);
    /// Move queued responses of the stream into `out`.
    fn drain(&self, stream: StreamId, max: usize, out: &mut Vec<mvcc::WatchResponse>) -> usize;
    /// The current revision.
    fn revision(&self) -> i64;
    /// Whether this member knows a leader (for clients that require one).
    fn has_leader(&self) -> bool;
    /// How often a require-leader stream checks for a leader; three
    /// misses in a row end it (etcd: the election timeout).
    fn leader_check_interval(&self) -> std::time::Duration;
}

/// The gRPC Watch service over a [`WatchService`].
#[derive(Debug)]
pub struct WatchShim<S> {
    node: Arc<S>,
    max_request_bytes: usize,
    /// `etcd_debugging_mvcc_watch_stream_total`.
    metrics: Option<crate::Metrics>,
}

impl<S: WatchService> WatchShim<S> {
    /// Serve `node`; fragmenting watchers get responses of at most
    /// `max_request_bytes` (etcd's `--max-request-bytes`).
    pub fn new(node: Arc<S>, max_request_bytes: usize) -> Self {
        Self {
            node,
            max_request_bytes,
            metrics: None,
        }
    }

    /// Count the open streams in `metrics`
    /// (`etcd_debugging_mvcc_watch_stream_total`).
    #[must_use]
    pub fn with_metrics(mut self, metrics: &crate::Metrics) -> Self {
        self.metrics = Some(metrics.clone());
        self
    }

    /// The tonic service.
    pub fn into_server(self) -> pb::watch_server::WatchServer<Self> {
        pb::watch_server::WatchServer::new(self)
    }
}

/// One wire watcher.
#[derive(Debug, Clone, Copy)]
struct Wire {
    id: i64,
    fragment: bool,
}

/// Per-stream state of the shim.
struct Session<S> {
    node: Arc<S>,
    stream: StreamId,
    by_hub: HashMap<WatcherId, Wire>,
    by_wire: HashMap<i64, WatcherId>,
    next_id: i64,
    max_bytes: usize,
}

fn header(info: &ServerInfo, revision: i64) -> Option<pb::ResponseHeader> {
    convert::header(info, revision)
}

/// An mvcc event as the wire's.
pub fn event(e: &mvcc::Event) -> mvccpb::Event {
    mvccpb::Event {
        r#type: match e.kind {
            mvcc::EventKind::Put => mvccpb::event::EventType::Put as i32,
            mvcc::EventKind::Delete => mvccpb::event::EventType::Delete as i32,
        },
        kv: Some(convert::key_value(e.kv.clone())),
        prev_kv: e.prev_kv.clone().map(convert::key_value),
    }
}

impl<S: WatchService> Session<S> {
    fn create(
        &mut self,
        c: pb::WatchCreateRequest,
        who: Result<Option<AuthInfo>, EtcdError>,
    ) -> pb::WatchResponse {
        let info = self.node.info();
        // etcd: an empty key means "\0", the smallest key.
        let key = if c.key.is_empty() { vec![0] } else { c.key };
        // etcd refuses a watch the caller may not read with a created and
        // canceled response (watch id -1); etcd 3.5.1 gives this one reason
        // for every refusal (no user, bad token, no permission).
        if who
            .and_then(|w| self.node.watch_permitted(w.as_ref(), &key, &c.range_end))
            .is_err()
        {
            return pb::WatchResponse {
                header: header(&info, self.node.revision()),
                watch_id: -1,
                created: true,
                canceled: true,
                cancel_reason: WATCH_DENIED.to_owned(),
                ..Default::default()
            };
        }
        let wire_id = if c.watch_id != 0 {
            if self.by_wire.contains_key(&c.watch_id) {
                return pb::WatchResponse {
                    header: header(&info, self.node.revision()),
                    watch_id: c.watch_id,
                    created: true,
                    canceled: true,
                    cancel_reason: "mvcc: duplicate watch ID provided on the WatchStream".into(),
                    ..Default::default()
                };
            }
            c.watch_id
        } else {
            while self.by_wire.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            let id = self.next_id;
            self.next_id += 1;
            id
        };
        let no_put = c
            .filters
            .contains(&(pb::watch_create_request::FilterType::Noput as i32));
        let no_delete = c
            .filters
            .contains(&(pb::watch_create_request::FilterType::Nodelete as i32));
        let req = mvcc::WatchRequest {
            range: KeyRange::new(&key, &c.range_end),
            start_revision: c.start_revision,
            prev_kv: c.prev_kv,
            no_put,
            no_delete,
            progress_notify: c.progress_notify,
        };
        let (hub_id, rev) = self.node.watch(self.stream, req);
        self.by_hub.insert(
            hub_id,
            Wire {
                id: wire_id,
                fragment: c.fragment,
            },
        );
        self.by_wire.insert(wire_id, hub_id);
        pb::WatchResponse {
            header: header(&info, rev),
            watch_id: wire_id,
            created: true,
            ..Default::default()
        }
    }

    fn cancel(&mut self, wire_id: i64) -> Option<pb::WatchResponse> {
        let hub_id = self.by_wire.remove(&wire_id)?;
        self.by_hub.remove(&hub_id);
        self.node.cancel(hub_id);
        Some(pb::WatchResponse {
            header: header(&self.node.info(), self.node.revision()),
            watch_id: wire_id,
            canceled: true,
            ..Default::default()
        })
    }

    /// Wire responses for one hub response (several when fragmented).
    fn convert(&mut self, r: mvcc::WatchResponse, out: &mut Vec<pb::WatchResponse>) {
        let info = self.node.info();
        let wire = match r.watcher {
            None => Wire {
                id: -1,
                fragment: false,
            },
            Some(id) => match self.by_hub.get(&id) {
                Some(w) => *w,
                // Canceled meanwhile: etcd drops such responses too.
                None => return,
            },
        };
        if r.canceled
            && let Some(id) = r.watcher
        {
            self.by_hub.remove(&id);
            self.by_wire.remove(&wire.id);
        }
        let events: Vec<mvccpb::Event> = r.events.iter().map(event).collect();
        let base = pb::WatchResponse {
            header: header(&info, r.revision),
            watch_id: wire.id,
            canceled: r.canceled,
            compact_revision: r.compact_revision,
            cancel_reason: if r.canceled && r.compact_revision != 0 {
                "etcdserver: mvcc: required revision has been compacted".into()
            } else {
                String::new()
            },
            ..Default::default()
        };
        if !wire.fragment || events.iter().map(|e| e.encoded_len()).sum::<usize>() <= self.max_bytes
        {
            out.push(pb::WatchResponse { events, ..base });
            return;
        }
        // etcd's fragmenting: chunks of at most max_bytes (at least one
        // event each), `fragment` on every chunk but the last.
        let mut chunk = Vec::new();
        let mut size = 0;
        for e in events {
            let n = e.encoded_len();
            if !chunk.is_empty() && size + n > self.max_bytes {
                out.push(pb::WatchResponse {
                    events: std::mem::take(&mut chunk),
                    fragment: true,
                    ..base.clone()
                });
                size = 0;
            }
            size += n;
            chunk.push(e);
        }
        out.push(pb::WatchResponse {
            events: chunk,
            ..base
        });
    }
}

/// The responses of one watch stream.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl<S: WatchService> pb::watch_server::Watch for WatchShim<S> {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        req: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        // etcd's require-leader streams (`clientv3.WithRequireLeader`,
        // which Kubernetes uses for watches): refused without a leader,
        // and ended with `etcdserver: no leader` once the member has had
        // none for three checks in a row.
        let require_leader = req
            .metadata()
            .get("hasleader")
            .is_some_and(|v| v.as_bytes() == b"true");
        let cred = Credentials::of(&req);
        let inbound = req.into_inner();
        self.session(inbound, require_leader, cred)
            .map(Response::new)
    }
}

impl<S: WatchService> WatchShim<S> {
    /// One watch stream: requests in, responses out. The gRPC method and
    /// the binary protocol both run their streams through here.
    /// `cred` names the caller: each create request is checked against
    /// its read permissions.
    pub fn session<I>(
        &self,
        mut inbound: I,
        require_leader: bool,
        cred: Credentials,
    ) -> Result<WatchStream, Status>
    where
        I: Stream<Item = Result<pb::WatchRequest, Status>> + Send + Unpin + 'static,
    {
        if require_leader && !self.node.has_leader() {
            return Err(crate::status::EtcdError::NoLeader.into());
        }
        let (tx, rx) = mpsc::channel::<Result<pb::WatchResponse, Status>>(128);
        let node = self.node.clone();
        let max_bytes = self.max_request_bytes;
        let open = self.metrics.clone().map(crate::metrics::OpenStream::new);
        tokio::spawn(async move {
            // Counted while the stream's task runs.
            let _open = open;
            let (stream, wake) = node.open_stream();
            let mut s = Session {
                node: node.clone(),
                stream,
                by_hub: HashMap::new(),
                by_wire: HashMap::new(),
                next_id: 0,
                max_bytes,
            };
            let mut hub_out = Vec::new();
            let mut wire_out = Vec::new();
            let mut check = tokio::time::interval(node.leader_check_interval());
            check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut misses = 0u32;
            'run: loop {
                tokio::select! {
                    _ = check.tick(), if require_leader => {
                        if node.has_leader() {
                            misses = 0;
                        } else {
                            misses += 1;
                            if misses >= 3 {
                                let _ = tx
                                    .send(Err(crate::status::EtcdError::NoLeader.into()))
                                    .await;
                                break 'run;
                            }
                        }
                    }
                    msg = inbound.next() => {
                        let req = match msg {
                            Some(Ok(r)) => r,
                            // Client closed its side or the transport failed.
                            None => break 'run,
                            // A bad frame (`frames.rs`): the stream ends
                            // with its status, as etcd's does.
                            Some(Err(e)) => {
                                let _ = tx.send(Err(e)).await;
                                break 'run;
                            }
                        };
                        use pb::watch_request::RequestUnion as U;
                        let resp = match req.request_union {
                            Some(U::CreateRequest(c)) => {
                                let who = node.authorize(cred.clone()).await;
                                Some(s.create(c, who))
                            }
                            Some(U::CancelRequest(c)) => s.cancel(c.watch_id),
                            Some(U::ProgressRequest(_)) => {
                                node.request_progress(stream);
                                None
                            }
                            None => None,
                        };
                        if let Some(r) = resp
                            && tx.send(Ok(r)).await.is_err()
                        {
                            break 'run;
                        }
                    }
                    _ = wake.notified() => {
                        loop {
                            hub_out.clear();
                            if node.drain(stream, DRAIN_BATCH, &mut hub_out) == 0 {
                                break;
                            }
                            for r in hub_out.drain(..) {
                                s.convert(r, &mut wire_out);
                            }
                            for r in wire_out.drain(..) {
                                if tx.send(Ok(r)).await.is_err() {
                                    break 'run;
                                }
                            }
                        }
                    }
                    _ = tx.closed() => break 'run,
                }
            }
            node.close_stream(stream);
        });
        Ok(Box::pin(ReceiverStream::new(rx)))
    }
}
