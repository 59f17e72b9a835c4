//! One HTTP/2 connection: a single task that reads frames, runs the calls
//! and writes the answers, with no task per request (see the module docs
//! of [`super`]).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::future::{AbortHandle, Abortable, BoxFuture};
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::task::AtomicWaker;
use http_body::{Body, Frame};
use http_body_util::combinators::UnsyncBoxBody;
use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::{Code, Status};

use super::frame::{self as f, Head, Reason, flag, kind, setting};
use super::hpack;
use crate::auth::Credentials;
use crate::frames::{Reader, Reads};
use crate::identity::ConnInfo;
use crate::kv::{KvService, KvShim};
use crate::metrics::{CallTimer, Metrics};

/// A boxed error, as tower and http-body use it.
type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A response body from the service.
pub type RespBody = UnsyncBoxBody<Bytes, BoxError>;
/// A service call's future.
type CallFuture = BoxFuture<'static, (u32, Done)>;

/// The connection's settings, from etcd's flags.
#[derive(Debug, Clone)]
pub struct Config {
    /// `--max-concurrent-streams`: SETTINGS_MAX_CONCURRENT_STREAMS, and
    /// the streams over it are refused.
    pub max_concurrent_streams: u32,
    /// The largest gRPC message a call may send (tonic's decoding limit
    /// on the other path): `--max-request-bytes` plus gRPC's overhead.
    pub max_message: usize,
    /// `--grpc-keepalive-interval` (`None`: no pings from the server).
    pub keepalive_interval: Option<Duration>,
    /// `--grpc-keepalive-timeout`: how long a ping may go unanswered.
    pub keepalive_timeout: Duration,
    /// `--grpc-keepalive-min-time`: a client that pings more often than
    /// this (or at all while it has no call open, within two hours) gets a
    /// strike; past [`MAX_PING_STRIKES`], GOAWAY ENHANCE_YOUR_CALM
    /// "too_many_pings", as grpc-go's keepalive enforcement does for etcd.
    pub keepalive_min_time: Duration,
}

/// Pings out of policy a client may send (grpc-go's `maxPingStrikes`).
const MAX_PING_STRIKES: u32 = 2;
/// How often a client with no call open may ping (grpc-go's
/// `defaultPingTimeout`, used when streamless pings are not permitted).
const IDLE_PING_MIN: Duration = Duration::from_secs(2 * 3600);

/// Each stream's receive window (SETTINGS_INITIAL_WINDOW_SIZE): a whole
/// request of `--max-request-bytes` (1.5 MiB by default) in one go.
const STREAM_WINDOW: u32 = 4 << 20;
/// The connection's receive window.
const CONN_WINDOW: u32 = 16 << 20;
/// A header block (HEADERS and its CONTINUATIONs) may not be longer.
const MAX_HEADER_BLOCK: usize = 256 << 10;
/// Frames longer than this are refused (our SETTINGS_MAX_FRAME_SIZE is the
/// default).
const MAX_FRAME: usize = f::DEFAULT_MAX_FRAME as usize;
/// The read buffer.
const READ_BUF: usize = 256 << 10;
/// Above this many unwritten bytes the connection stops reading new
/// frames and pulling response bodies: a client that does not read gets
/// no more than this buffered for it.
const WRITE_HIGH: usize = 1 << 20;
/// Above this many response bytes waiting for the client's window, the
/// connection runs none of its calls (it still reads frames: the window
/// it waits for comes that way).
const QUEUED_HIGH: usize = 16 << 20;
/// A streaming response's body is not pulled while this much of it waits
/// for flow-control window.
const STREAM_OUT_HIGH: usize = 256 << 10;
/// More client resets of running calls than this within [`RESET_PERIOD`]
/// close the connection (ENHANCE_YOUR_CALM): the "rapid reset" attack.
const MAX_RESETS: u32 = 1000;
const RESET_PERIOD: Duration = Duration::from_secs(1);

/// The KV calls served without tonic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hot {
    Range,
    Put,
    DeleteRange,
    Txn,
}

impl Hot {
    fn of(path: &str) -> Option<Hot> {
        Some(match path {
            "/etcdserverpb.KV/Range" => Hot::Range,
            "/etcdserverpb.KV/Put" => Hot::Put,
            "/etcdserverpb.KV/DeleteRange" => Hot::DeleteRange,
            "/etcdserverpb.KV/Txn" => Hot::Txn,
            _ => return None,
        })
    }

    fn path(self) -> &'static str {
        match self {
            Hot::Range => "/etcdserverpb.KV/Range",
            Hot::Put => "/etcdserverpb.KV/Put",
            Hot::DeleteRange => "/etcdserverpb.KV/DeleteRange",
            Hot::Txn => "/etcdserverpb.KV/Txn",
        }
    }
}

/// What a finished call left.
enum Done {
    /// A hot call's answer: the encoded response message.
    Hot(Result<Bytes, Status>, Option<CallTimer>),
    /// The service's response.
    Service(http::Response<RespBody>),
    /// The call's deadline (grpc-timeout) passed.
    Deadline(Option<CallTimer>),
    /// Reset by the client, or the connection ended.
    Aborted,
}

/// A request body the connection feeds and the service reads.
#[derive(Debug, Default)]
struct Inbox {
    chunks: VecDeque<Bytes>,
    end: bool,
    /// The client reset the stream: the body ends with an error.
    reset: bool,
    /// The service's reader, waiting for more.
    reader: Option<Waker>,
}

/// Bytes the services read from their request bodies, to give back as
/// flow-control window: `(stream, bytes)`.
#[derive(Debug, Default)]
struct Credits {
    taken: Mutex<Vec<(u32, usize)>>,
    conn: AtomicWaker,
}

/// The request body handed to the service.
#[derive(Debug)]
pub struct RecvBody {
    stream: u32,
    inbox: Arc<Mutex<Inbox>>,
    credits: Arc<Credits>,
}

impl Body for RecvBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let mut inbox = self.inbox.lock().expect("inbox lock");
        if let Some(chunk) = inbox.chunks.pop_front() {
            drop(inbox);
            self.credits
                .taken
                .lock()
                .expect("credits lock")
                .push((self.stream, chunk.len()));
            self.credits.conn.wake();
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if inbox.reset {
            return Poll::Ready(Some(Err(Status::cancelled("the client reset the stream"))));
        }
        if inbox.end {
            return Poll::Ready(None);
        }
        inbox.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        let inbox = self.inbox.lock().expect("inbox lock");
        inbox.end && inbox.chunks.is_empty()
    }
}

impl Inbox {
    fn wake(&mut self) {
        if let Some(w) = self.reader.take() {
            w.wake();
        }
    }
}

/// How a stream's request arrives.
enum Req {
    /// A hot call collecting its message.
    Hot {
        method: Hot,
        /// The message's prefix and bytes, as far as they came.
        buf: BytesMut,
        /// Reads the body as etcd does (its errors are etcd's).
        reader: Reader,
        token: Option<http::HeaderValue>,
        deadline: Option<Duration>,
        api_version: Option<std::borrow::Cow<'static, [u8]>>,
    },
    /// Fed to the service's [`RecvBody`].
    Body(Arc<Mutex<Inbox>>),
    /// All read (or not wanted any more).
    Done,
}

/// What is left to send after a stream's queued data.
enum Tail {
    /// Trailers (a header block), with END_STREAM.
    Trailers(Vec<u8>),
    /// An empty DATA frame with END_STREAM (a response without trailers).
    End,
}

struct Stream {
    req: Req,
    /// The client sent END_STREAM.
    recv_closed: bool,
    /// What the client may still send before we give window back.
    recv_window: i64,
    /// What we may still send.
    send_window: i64,
    /// DATA payload waiting for window.
    out: VecDeque<Bytes>,
    out_bytes: usize,
    tail: Option<Tail>,
    /// The response body being pulled.
    body: Option<RespBody>,
    /// The running call.
    abort: Option<AbortHandle>,
}

impl Stream {
    fn new(req: Req, send_window: i64) -> Stream {
        Stream {
            req,
            recv_closed: false,
            recv_window: i64::from(STREAM_WINDOW),
            send_window,
            out: VecDeque::new(),
            out_bytes: 0,
            tail: None,
            body: None,
            abort: None,
        }
    }
}

/// A request's header fields, sorted out as they are decoded.
#[derive(Default)]
struct Fields {
    method: Option<Vec<u8>>,
    path: Option<String>,
    scheme: Option<Vec<u8>>,
    /// Anything etcd's Go server takes: etcdctl 3.4 sends
    /// `http://host:port` here.
    authority: Option<Vec<u8>>,
    /// The other fields, for the service.
    regular: Vec<(Vec<u8>, Vec<u8>)>,
    token: Option<http::HeaderValue>,
    deadline: Option<Duration>,
    /// `client-api-version` (etcd_server_client_requests_total).
    api_version: Option<std::borrow::Cow<'static, [u8]>>,
    /// The request may be a hot call: gRPC, not compressed.
    hot_ok: bool,
    /// A malformed request (RFC 9113 §8.1.1): a stream error.
    bad: bool,
    seen_regular: bool,
    size: usize,
}

impl Fields {
    fn add(&mut self, n: &[u8], v: &[u8]) {
        self.size += n.len() + v.len() + 32;
        if self.size > MAX_HEADER_BLOCK {
            return;
        }
        if n.first() == Some(&b':') {
            if self.seen_regular {
                self.bad = true;
            }
            let slot = match n {
                b":method" => &mut self.method,
                b":scheme" => &mut self.scheme,
                b":authority" => &mut self.authority,
                b":path" => {
                    if self.path.is_some() {
                        self.bad = true;
                    }
                    self.path = Some(String::from_utf8_lossy(v).into_owned());
                    self.hot_ok = Hot::of(self.path.as_deref().unwrap_or("")).is_some();
                    return;
                }
                _ => {
                    self.bad = true;
                    return;
                }
            };
            if slot.is_some() {
                self.bad = true;
            }
            *slot = Some(v.to_vec());
            return;
        }
        self.seen_regular = true;
        if n.iter().any(u8::is_ascii_uppercase)
            || matches!(
                n,
                b"connection"
                    | b"keep-alive"
                    | b"proxy-connection"
                    | b"transfer-encoding"
                    | b"upgrade"
            )
            || (n == b"te" && v != b"trailers")
        {
            self.bad = true;
            return;
        }
        match n {
            b"grpc-encoding" if v != b"identity" => self.hot_ok = false,
            b"content-type" if !v.starts_with(b"application/grpc") => self.hot_ok = false,
            b"token" | b"authorization" if self.token.is_none() => {
                self.token = http::HeaderValue::from_bytes(v).ok();
            }
            b"grpc-timeout" => self.deadline = grpc_timeout(v),
            b"client-api-version" if self.api_version.is_none() => {
                self.api_version = Some(crate::metrics::client_version(v));
            }
            _ => {}
        }
        // Kept for the service: whether the call is hot is only known at
        // the end of the block.
        self.regular.push((n.to_vec(), v.to_vec()));
    }
}

/// A connection error: GOAWAY with this reason, then close.
#[derive(Debug)]
struct ConnError(Reason, &'static str);

/// The service that gets every call but the hot ones.
pub trait Service:
    tower::Service<
        http::Request<RecvBody>,
        Response = http::Response<RespBody>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<T> Service for T where
    T: tower::Service<
            http::Request<RecvBody>,
            Response = http::Response<RespBody>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// One connection's state.
#[allow(missing_debug_implementations)]
pub struct Conn<S, V> {
    kv: Arc<KvShim<S>>,
    svc: V,
    metrics: Metrics,
    info: ConnInfo,
    cfg: Arc<Config>,
    dec: hpack::Decoder,
    streams: HashMap<u32, Stream>,
    /// The highest stream id the client opened.
    last_stream: u32,
    /// A header block in progress: stream, HEADERS flags, bytes so far.
    block: Option<(u32, u8, Vec<u8>)>,
    peer_max_frame: usize,
    peer_initial_window: i64,
    send_conn: i64,
    recv_conn: i64,
    /// Receive window used and not yet given back (connection).
    recv_conn_used: usize,
    /// Streams with data waiting for window.
    blocked: VecDeque<u32>,
    calls: FuturesUnordered<CallFuture>,
    /// Streams whose response body is being pulled.
    pulling: Vec<u32>,
    credits: Arc<Credits>,
    wbuf: Vec<u8>,
    /// Response bytes queued in the streams, waiting for window.
    queued: usize,
    rbuf: Vec<u8>,
    rlo: usize,
    rhi: usize,
    /// The client closed its side, or a GOAWAY went out: no new streams.
    read_closed: bool,
    goaway_sent: bool,
    /// A connection error: flush and close.
    fatal: bool,
    resets: u32,
    resets_since: Instant,
    ping: Option<Pin<Box<tokio::time::Sleep>>>,
    ping_outstanding: bool,
    /// The client's last ping, and its strikes against the keepalive
    /// policy; our sending HEADERS or DATA clears the strikes.
    client_ping: Option<Instant>,
    ping_strikes: u32,
    wrote_since_ping: bool,
    /// The server is stopping (it sent GOAWAY NO_ERROR).
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
    stopping: bool,
}

impl<S, V> Conn<S, V>
where
    S: KvService,
    V: Service,
{
    /// A connection whose client has already been seen to send the preface
    /// (it is still unread).
    pub fn new(
        kv: Arc<KvShim<S>>,
        svc: V,
        metrics: Metrics,
        info: ConnInfo,
        cfg: Arc<Config>,
        shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Self {
        let mut wbuf = Vec::with_capacity(64 << 10);
        f::put_settings(
            &mut wbuf,
            &[
                (setting::MAX_CONCURRENT_STREAMS, cfg.max_concurrent_streams),
                (setting::INITIAL_WINDOW_SIZE, STREAM_WINDOW),
                (setting::MAX_HEADER_LIST_SIZE, MAX_HEADER_BLOCK as u32),
            ],
        );
        f::put_window_update(&mut wbuf, 0, CONN_WINDOW - f::DEFAULT_WINDOW);
        let ping = cfg
            .keepalive_interval
            .map(|d| Box::pin(tokio::time::sleep(d)));
        Conn {
            kv,
            svc,
            metrics,
            info,
            cfg,
            dec: hpack::Decoder::new(4096),
            streams: HashMap::new(),
            last_stream: 0,
            block: None,
            peer_max_frame: MAX_FRAME,
            peer_initial_window: i64::from(f::DEFAULT_WINDOW),
            send_conn: i64::from(f::DEFAULT_WINDOW),
            recv_conn: i64::from(CONN_WINDOW),
            recv_conn_used: 0,
            blocked: VecDeque::new(),
            calls: FuturesUnordered::new(),
            pulling: Vec::new(),
            credits: Arc::default(),
            wbuf,
            queued: 0,
            rbuf: vec![0; READ_BUF],
            rlo: 0,
            rhi: 0,
            read_closed: false,
            goaway_sent: false,
            fatal: false,
            resets: 0,
            resets_since: Instant::now(),
            ping,
            ping_outstanding: false,
            client_ping: None,
            ping_strikes: 0,
            wrote_since_ping: false,
            shutdown,
            stopping: false,
        }
    }

    /// Serve the connection until it ends.
    pub async fn serve<T: AsyncRead + AsyncWrite + Unpin>(mut self, mut io: T) {
        // The preface, then frames.
        let mut pre = [0u8; 24];
        if tokio::io::AsyncReadExt::read_exact(&mut io, &mut pre)
            .await
            .is_err()
            || &pre != f::PREFACE
        {
            return;
        }
        std::future::poll_fn(|cx| self.poll(cx, &mut io)).await;
        for s in self.streams.values_mut() {
            cancel(s);
        }
    }

    fn poll<T: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut T,
    ) -> Poll<()> {
        self.credits.conn.register(cx.waker());
        loop {
            let mut progress = false;
            if !self.stopping && self.shutdown.as_mut().poll(cx).is_ready() {
                self.stopping = true;
                self.goaway(Reason::NoError, "");
                progress = true;
            }
            if let Some(p) = self.ping.as_mut()
                && p.as_mut().poll(cx).is_ready()
            {
                if self.ping_outstanding {
                    tracing::debug!("h2: keepalive ping unanswered, closing");
                    return Poll::Ready(());
                }
                f::put_frame(&mut self.wbuf, kind::PING, 0, 0, &[0; 8]);
                self.ping_outstanding = true;
                let next = tokio::time::Instant::now() + self.cfg.keepalive_timeout;
                p.as_mut().reset(next);
                progress = true;
            }
            // Read and handle frames.
            // Reading goes on while answers wait for window: the client's
            // WINDOW_UPDATEs arrive this way (new calls wait unpolled).
            if !self.read_closed && !self.fatal && self.wbuf.len() < WRITE_HIGH {
                if self.rhi == self.rbuf.len() {
                    self.rbuf.copy_within(self.rlo..self.rhi, 0);
                    self.rhi -= self.rlo;
                    self.rlo = 0;
                }
                let mut rb = ReadBuf::new(&mut self.rbuf[self.rhi..]);
                match Pin::new(&mut *io).poll_read(cx, &mut rb) {
                    Poll::Ready(Ok(())) => {
                        let n = rb.filled().len();
                        if n == 0 {
                            // The client closed the connection (gRPC
                            // clients never half-close): its streams end
                            // with it, a watch included, as etcd's do.
                            return Poll::Ready(());
                        } else {
                            self.rhi += n;
                            if let Err(e) = self.frames() {
                                tracing::debug!(reason = ?e.0, what = e.1, "h2: connection error");
                                self.goaway(e.0, e.1);
                                self.fatal = true;
                            }
                        }
                        progress = true;
                    }
                    Poll::Ready(Err(_)) => return Poll::Ready(()),
                    Poll::Pending => {}
                }
            }
            // Run the calls, unless their answers already wait for a client
            // that does not read: a call not polled does no work and holds
            // no answer (a Range's answer exists once it has run), so a
            // connection's memory stays near QUEUED_HIGH plus one answer.
            while self.queued < QUEUED_HIGH
                && let Poll::Ready(Some((id, done))) = self.calls.poll_next_unpin(cx)
            {
                self.finish(id, done);
                progress = true;
            }
            // Window given back by the services' request bodies.
            let taken = std::mem::take(&mut *self.credits.taken.lock().expect("credits lock"));
            for (id, n) in taken {
                self.give_back(id, n);
                progress = true;
            }
            // Response bodies.
            if self.wbuf.len() < WRITE_HIGH && self.pull_bodies(cx) {
                progress = true;
            }
            // Write.
            while !self.wbuf.is_empty() {
                match Pin::new(&mut *io).poll_write(cx, &self.wbuf) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(()),
                    Poll::Ready(Ok(n)) => {
                        self.wbuf.drain(..n);
                        progress = true;
                    }
                    Poll::Pending => break,
                }
            }
            if self.wbuf.is_empty() {
                if let Poll::Ready(Err(_)) = Pin::new(&mut *io).poll_flush(cx) {
                    return Poll::Ready(());
                }
                if self.fatal || ((self.read_closed || self.goaway_sent) && self.streams.is_empty())
                {
                    let _ = Pin::new(&mut *io).poll_shutdown(cx);
                    return Poll::Ready(());
                }
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    /// Handle every whole frame in the read buffer.
    fn frames(&mut self) -> Result<(), ConnError> {
        // The buffer is lent out while its frames are handled.
        let rbuf = std::mem::take(&mut self.rbuf);
        let r = self.frames_in(&rbuf);
        self.rbuf = rbuf;
        r?;
        if self.rlo == self.rhi {
            self.rlo = 0;
            self.rhi = 0;
        }
        Ok(())
    }

    fn frames_in(&mut self, rbuf: &[u8]) -> Result<(), ConnError> {
        while self.rhi - self.rlo >= f::HEAD {
            let head = Head::parse(&rbuf[self.rlo..]);
            if head.len > MAX_FRAME {
                return Err(ConnError(
                    Reason::FrameSize,
                    "frame larger than MAX_FRAME_SIZE",
                ));
            }
            if self.rhi - self.rlo < f::HEAD + head.len {
                break;
            }
            let start = self.rlo + f::HEAD;
            self.rlo = start + head.len;
            self.frame(head, &rbuf[start..start + head.len])?;
            if self.fatal {
                break;
            }
        }
        Ok(())
    }

    fn frame(&mut self, h: Head, p: &[u8]) -> Result<(), ConnError> {
        if let Some((id, _, _)) = &self.block
            && (h.kind != kind::CONTINUATION || h.stream != *id)
        {
            return Err(ConnError(Reason::Protocol, "expected CONTINUATION"));
        }
        match h.kind {
            kind::DATA => self.on_data(h, p),
            kind::HEADERS => {
                if h.stream == 0 {
                    return Err(ConnError(Reason::Protocol, "HEADERS on stream 0"));
                }
                let mut b = f::unpad(h.flags, p)
                    .ok_or(ConnError(Reason::Protocol, "padding longer than the frame"))?;
                if h.flags & flag::PRIORITY != 0 {
                    if b.len() < 5 {
                        return Err(ConnError(Reason::FrameSize, "short HEADERS priority"));
                    }
                    let dep = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff;
                    if dep == h.stream {
                        self.rst(h.stream, Reason::Protocol);
                        return Ok(());
                    }
                    b = &b[5..];
                }
                if h.flags & flag::END_HEADERS != 0 {
                    self.on_headers(h.stream, h.flags, b)
                } else {
                    self.block = Some((h.stream, h.flags, b.to_vec()));
                    Ok(())
                }
            }
            kind::CONTINUATION => {
                let Some((id, flags, mut block)) = self.block.take() else {
                    return Err(ConnError(Reason::Protocol, "CONTINUATION without HEADERS"));
                };
                if block.len() + p.len() > MAX_HEADER_BLOCK {
                    return Err(ConnError(Reason::EnhanceYourCalm, "header block too large"));
                }
                block.extend_from_slice(p);
                if h.flags & flag::END_HEADERS != 0 {
                    self.on_headers(id, flags, &block)
                } else {
                    self.block = Some((id, flags, block));
                    Ok(())
                }
            }
            kind::PRIORITY => {
                if h.stream == 0 {
                    return Err(ConnError(Reason::Protocol, "PRIORITY on stream 0"));
                }
                if p.len() != 5 {
                    self.rst(h.stream, Reason::FrameSize);
                }
                Ok(())
            }
            kind::RST_STREAM => {
                if h.stream == 0 {
                    return Err(ConnError(Reason::Protocol, "RST_STREAM on stream 0"));
                }
                if p.len() != 4 {
                    return Err(ConnError(Reason::FrameSize, "RST_STREAM length"));
                }
                if h.stream > self.last_stream {
                    return Err(ConnError(Reason::Protocol, "RST_STREAM on an idle stream"));
                }
                if let Some(mut s) = self.streams.remove(&h.stream) {
                    self.queued -= s.out_bytes;
                    let running = s.abort.is_some() || s.body.is_some();
                    self.release(&mut s);
                    if running {
                        let now = Instant::now();
                        if now.duration_since(self.resets_since) > RESET_PERIOD {
                            self.resets = 0;
                            self.resets_since = now;
                        }
                        self.resets += 1;
                        if self.resets > MAX_RESETS {
                            return Err(ConnError(Reason::EnhanceYourCalm, "too many resets"));
                        }
                    }
                }
                Ok(())
            }
            kind::SETTINGS => self.on_settings(h, p),
            kind::PUSH_PROMISE => Err(ConnError(Reason::Protocol, "PUSH_PROMISE from a client")),
            kind::PING => {
                if h.stream != 0 {
                    return Err(ConnError(Reason::Protocol, "PING on a stream"));
                }
                if p.len() != 8 {
                    return Err(ConnError(Reason::FrameSize, "PING length"));
                }
                if h.flags & flag::ACK != 0 {
                    self.ping_outstanding = false;
                    if let (Some(t), Some(d)) = (self.ping.as_mut(), self.cfg.keepalive_interval) {
                        t.as_mut().reset(tokio::time::Instant::now() + d);
                    }
                } else {
                    self.ping_policy()?;
                    f::put_frame(&mut self.wbuf, kind::PING, flag::ACK, 0, p);
                }
                Ok(())
            }
            kind::GOAWAY => {
                if h.stream != 0 {
                    return Err(ConnError(Reason::Protocol, "GOAWAY on a stream"));
                }
                self.read_closed = true;
                Ok(())
            }
            kind::WINDOW_UPDATE => self.on_window_update(h, p),
            // Unknown frame types are ignored (RFC 9113 §4.1).
            _ => Ok(()),
        }
    }

    /// A client PING, checked against `--grpc-keepalive-min-time` as
    /// grpc-go checks it.
    fn ping_policy(&mut self) -> Result<(), ConnError> {
        let now = Instant::now();
        let last = self.client_ping.replace(now);
        if std::mem::take(&mut self.wrote_since_ping) {
            self.ping_strikes = 0;
            return Ok(());
        }
        let min = if self.streams.is_empty() {
            IDLE_PING_MIN
        } else {
            self.cfg.keepalive_min_time
        };
        if last.is_some_and(|t| now.duration_since(t) < min) {
            self.ping_strikes += 1;
        }
        if self.ping_strikes > MAX_PING_STRIKES {
            return Err(ConnError(Reason::EnhanceYourCalm, "too_many_pings"));
        }
        Ok(())
    }

    fn on_settings(&mut self, h: Head, p: &[u8]) -> Result<(), ConnError> {
        if h.stream != 0 {
            return Err(ConnError(Reason::Protocol, "SETTINGS on a stream"));
        }
        if h.flags & flag::ACK != 0 {
            if !p.is_empty() {
                return Err(ConnError(Reason::FrameSize, "SETTINGS ACK with a payload"));
            }
            return Ok(());
        }
        if !p.len().is_multiple_of(6) {
            return Err(ConnError(Reason::FrameSize, "SETTINGS length"));
        }
        for s in p.chunks_exact(6) {
            let id = u16::from_be_bytes([s[0], s[1]]);
            let v = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
            match id {
                setting::ENABLE_PUSH if v > 1 => {
                    return Err(ConnError(Reason::Protocol, "ENABLE_PUSH not 0 or 1"));
                }
                setting::INITIAL_WINDOW_SIZE => {
                    if i64::from(v) > f::MAX_WINDOW {
                        return Err(ConnError(Reason::FlowControl, "INITIAL_WINDOW_SIZE"));
                    }
                    let delta = i64::from(v) - self.peer_initial_window;
                    self.peer_initial_window = i64::from(v);
                    for s in self.streams.values_mut() {
                        s.send_window += delta;
                        if s.send_window > f::MAX_WINDOW {
                            return Err(ConnError(Reason::FlowControl, "window overflow"));
                        }
                    }
                    if delta > 0 {
                        self.blocked.extend(self.streams.keys().copied());
                        self.send_blocked();
                    }
                }
                setting::MAX_FRAME_SIZE => {
                    if !(f::DEFAULT_MAX_FRAME..=f::MAX_MAX_FRAME).contains(&v) {
                        return Err(ConnError(Reason::Protocol, "MAX_FRAME_SIZE out of range"));
                    }
                    self.peer_max_frame = v as usize;
                }
                // HEADER_TABLE_SIZE: our encoder uses no dynamic table;
                // the others limit what we do not do (push) or send.
                _ => {}
            }
        }
        f::put_frame(&mut self.wbuf, kind::SETTINGS, flag::ACK, 0, &[]);
        Ok(())
    }

    fn on_window_update(&mut self, h: Head, p: &[u8]) -> Result<(), ConnError> {
        if p.len() != 4 {
            return Err(ConnError(Reason::FrameSize, "WINDOW_UPDATE length"));
        }
        let inc = i64::from(u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff);
        if h.stream == 0 {
            if inc == 0 {
                return Err(ConnError(Reason::Protocol, "WINDOW_UPDATE of 0"));
            }
            self.send_conn += inc;
            if self.send_conn > f::MAX_WINDOW {
                return Err(ConnError(Reason::FlowControl, "connection window overflow"));
            }
            self.send_blocked();
            return Ok(());
        }
        if h.stream > self.last_stream {
            return Err(ConnError(
                Reason::Protocol,
                "WINDOW_UPDATE on an idle stream",
            ));
        }
        let Some(s) = self.streams.get_mut(&h.stream) else {
            return Ok(());
        };
        if inc == 0 {
            self.rst(h.stream, Reason::Protocol);
            return Ok(());
        }
        s.send_window += inc;
        if s.send_window > f::MAX_WINDOW {
            self.rst(h.stream, Reason::FlowControl);
            return Ok(());
        }
        self.send(h.stream);
        Ok(())
    }

    fn on_data(&mut self, h: Head, p: &[u8]) -> Result<(), ConnError> {
        if h.stream == 0 {
            return Err(ConnError(Reason::Protocol, "DATA on stream 0"));
        }
        if h.stream > self.last_stream {
            return Err(ConnError(Reason::Protocol, "DATA on an idle stream"));
        }
        let len = p.len();
        self.recv_conn -= len as i64;
        if self.recv_conn < 0 {
            return Err(ConnError(Reason::FlowControl, "connection window exceeded"));
        }
        let data =
            f::unpad(h.flags, p).ok_or(ConnError(Reason::Protocol, "padding longer than DATA"))?;
        // Padding is given back at once.
        self.used_conn(len - data.len());
        let end = h.flags & flag::END_STREAM != 0;
        let Some(s) = self.streams.get_mut(&h.stream) else {
            self.used_conn(data.len());
            self.rst(h.stream, Reason::StreamClosed);
            return Ok(());
        };
        if s.recv_closed {
            self.used_conn(data.len());
            self.rst(h.stream, Reason::StreamClosed);
            return Ok(());
        }
        s.recv_window -= len as i64;
        if s.recv_window < 0 {
            self.used_conn(data.len());
            self.rst(h.stream, Reason::FlowControl);
            return Ok(());
        }
        if end {
            s.recv_closed = true;
        }
        let mut failed = None;
        let mut complete = false;
        let give_now = match &mut s.req {
            Req::Hot { buf, reader, .. } => {
                match reader.feed(data) {
                    Ok(n) => {
                        buf.extend_from_slice(&data[..n]);
                        complete = reader.complete();
                    }
                    Err(e) => failed = Some(Status::from(e)),
                }
                true
            }
            Req::Body(inbox) => {
                let mut i = inbox.lock().expect("inbox lock");
                if !data.is_empty() {
                    i.chunks.push_back(Bytes::copy_from_slice(data));
                }
                i.end = end;
                i.wake();
                // Empty DATA: nothing for the reader to take.
                data.is_empty()
            }
            Req::Done => true,
        };
        if let Some(st) = failed {
            s.req = Req::Done;
            self.used_conn(data.len());
            self.respond_status(h.stream, &st);
            return Ok(());
        }
        if complete && !end {
            // The one message is here; what follows is not read (as
            // grpc-go), and the call starts now.
            self.give_back(h.stream, data.len());
            self.request_complete(h.stream);
            return Ok(());
        }
        if give_now {
            self.give_back(h.stream, data.len());
        }
        if end {
            self.request_complete(h.stream);
        }
        Ok(())
    }

    fn on_headers(&mut self, id: u32, flags: u8, block: &[u8]) -> Result<(), ConnError> {
        let mut h = Fields::default();
        self.dec
            .decode(block, |n, v| h.add(n, v))
            .map_err(|e| ConnError(Reason::Compression, e.0))?;
        if h.size > MAX_HEADER_BLOCK {
            return Err(ConnError(Reason::EnhanceYourCalm, "header list too large"));
        }
        let end = flags & flag::END_STREAM != 0;
        if let Some(s) = self.streams.get_mut(&id) {
            // Trailers from the client: they must end the stream.
            if s.recv_closed {
                self.rst(id, Reason::StreamClosed);
                return Ok(());
            }
            if !end {
                self.rst(id, Reason::Protocol);
                return Ok(());
            }
            s.recv_closed = true;
            if let Req::Body(inbox) = &s.req {
                let mut i = inbox.lock().expect("inbox lock");
                i.end = true;
                i.wake();
            }
            self.request_complete(id);
            return Ok(());
        }
        if id.is_multiple_of(2) || id <= self.last_stream {
            return Err(ConnError(Reason::Protocol, "bad stream id"));
        }
        self.last_stream = id;
        if self.goaway_sent {
            // Past our GOAWAY: not processed (the client may retry).
            return Ok(());
        }
        if self.streams.len() >= self.cfg.max_concurrent_streams as usize {
            self.rst(id, Reason::RefusedStream);
            return Ok(());
        }
        let (Some(method), Some(path)) = (h.method.take(), h.path.take()) else {
            self.rst(id, Reason::Protocol);
            return Ok(());
        };
        if h.bad {
            self.rst(id, Reason::Protocol);
            return Ok(());
        }
        let hot = Hot::of(&path).filter(|_| h.hot_ok && method == b"POST");
        if let Some(m) = hot {
            let mut s = Stream::new(
                Req::Hot {
                    method: m,
                    buf: BytesMut::new(),
                    reader: Reader::new(Reads::One, self.cfg.max_message),
                    token: h.token.take(),
                    deadline: h.deadline,
                    api_version: h.api_version.take(),
                },
                self.peer_initial_window,
            );
            s.recv_closed = end;
            self.streams.insert(id, s);
            if end {
                self.request_complete(id);
            }
            return Ok(());
        }
        let inbox = Arc::new(Mutex::new(Inbox {
            end,
            ..Inbox::default()
        }));
        let body = RecvBody {
            stream: id,
            inbox: inbox.clone(),
            credits: self.credits.clone(),
        };
        let uri = match (&h.scheme, &h.authority) {
            (Some(s), Some(a)) => http::Uri::builder()
                .scheme(&s[..])
                .authority(&a[..])
                .path_and_query(path.as_str())
                .build()
                .or_else(|_| path.parse()),
            _ => path.parse(),
        };
        let mut req = http::Request::builder();
        for (n, v) in h.regular {
            let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(&n),
                http::HeaderValue::from_bytes(&v),
            ) else {
                self.rst(id, Reason::Protocol);
                return Ok(());
            };
            req = req.header(name, value);
        }
        let (Ok(uri), Ok(method)) = (uri, http::Method::from_bytes(&method)) else {
            self.rst(id, Reason::Protocol);
            return Ok(());
        };
        let Ok(mut r) = req
            .method(method)
            .uri(uri)
            .version(http::Version::HTTP_2)
            .body(body)
        else {
            self.rst(id, Reason::Protocol);
            return Ok(());
        };
        r.extensions_mut().insert(self.info.clone());
        let svc = self.svc.clone();
        let (handle, reg) = AbortHandle::new_pair();
        let deadline = h.deadline;
        // The call's future is made inside the box: moving a made one in
        // copies its whole state (kilobytes for a KV call).
        self.calls.push(Box::pin(async move {
            let call = tower::ServiceExt::oneshot(svc, r);
            let done = match with_deadline(Abortable::new(call, reg), deadline).await {
                Some(Ok(Ok(resp))) => Done::Service(resp),
                Some(Ok(Err(never))) => match never {},
                Some(Err(_aborted)) => Done::Aborted,
                None => Done::Deadline(None),
            };
            (id, done)
        }));
        let mut s = Stream::new(Req::Body(inbox), self.peer_initial_window);
        s.abort = Some(handle);
        s.recv_closed = end;
        self.streams.insert(id, s);
        Ok(())
    }

    /// The client finished sending `id`'s request: start a hot call.
    fn request_complete(&mut self, id: u32) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        let Req::Hot {
            method,
            buf,
            reader,
            token,
            deadline,
            api_version,
        } = std::mem::replace(&mut s.req, Req::Done)
        else {
            return;
        };
        let timer = self
            .metrics
            .method_index(method.path())
            .map(|i| self.metrics.start_call(i, api_version.as_deref()));
        let msg = match reader
            .finish()
            .map_err(Status::from)
            .and_then(|()| grpc_message(buf.freeze()))
        {
            Ok(m) => {
                self.metrics
                    .message_received(timer.as_ref().map(CallTimer::index), m.len());
                m
            }
            Err(st) => {
                if let Some(t) = timer {
                    t.finish(st.code());
                }
                self.respond_status(id, &st);
                return;
            }
        };
        let kv = self.kv.clone();
        let info = self.info.clone();
        let (handle, reg) = AbortHandle::new_pair();
        s.abort = Some(handle);
        // Made inside the box (see `on_headers`).
        self.calls.push(Box::pin(async move {
            let call = Abortable::new(hot_call(kv, method, msg, token, info), reg);
            let done = match with_deadline(call, deadline).await {
                Some(Ok(r)) => Done::Hot(r, timer),
                Some(Err(_)) => Done::Aborted,
                None => Done::Deadline(timer),
            };
            (id, done)
        }));
    }

    /// A call finished: answer it.
    fn finish(&mut self, id: u32, done: Done) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        s.abort = None;
        match done {
            Done::Aborted => {}
            Done::Deadline(timer) => {
                let st = Status::deadline_exceeded("context deadline exceeded");
                if let Some(t) = timer {
                    t.finish(st.code());
                }
                self.respond_status(id, &st);
            }
            Done::Hot(Err(st), timer) => {
                if let Some(t) = timer {
                    t.finish(st.code());
                }
                self.respond_status(id, &st);
            }
            Done::Hot(Ok(msg), timer) => {
                // One framed message: its payload is what etcd counts.
                self.metrics.message_sent(
                    timer.as_ref().map(CallTimer::index),
                    msg.len().saturating_sub(5),
                );
                if let Some(t) = timer {
                    t.finish(Code::Ok);
                }
                let mut block = Vec::with_capacity(32);
                hpack::status(&mut block, 200);
                hpack::content_type(&mut block, b"application/grpc");
                self.headers(id, &block, false);
                let mut trailers = Vec::with_capacity(16);
                hpack::field(&mut trailers, b"grpc-status", b"0");
                let s = self.streams.get_mut(&id).expect("stream");
                s.out_bytes += msg.len();
                self.queued += msg.len();
                s.out.push_back(msg);
                s.tail = Some(Tail::Trailers(trailers));
                self.send(id);
            }
            Done::Service(resp) => {
                let (parts, body) = resp.into_parts();
                let mut block = Vec::with_capacity(64);
                hpack::status(&mut block, parts.status.as_u16());
                put_header_map(&mut block, &parts.headers);
                if body.is_end_stream() {
                    self.headers(id, &block, true);
                    self.local_done(id);
                    return;
                }
                self.headers(id, &block, false);
                let s = self.streams.get_mut(&id).expect("stream");
                s.body = Some(body);
                self.pulling.push(id);
            }
        }
    }

    /// Pull the response bodies whose streams are not waiting for window.
    fn pull_bodies(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        let mut i = 0;
        while i < self.pulling.len() {
            let id = self.pulling[i];
            let Some(s) = self.streams.get_mut(&id) else {
                self.pulling.swap_remove(i);
                continue;
            };
            let Some(body) = s.body.as_mut() else {
                self.pulling.swap_remove(i);
                continue;
            };
            if s.out_bytes >= STREAM_OUT_HIGH {
                i += 1;
                continue;
            }
            match Pin::new(body).poll_frame(cx) {
                Poll::Pending => {
                    i += 1;
                    continue;
                }
                Poll::Ready(Some(Ok(frame))) => {
                    progress = true;
                    match frame.into_data() {
                        Ok(d) => {
                            if !d.is_empty() {
                                s.out_bytes += d.len();
                                self.queued += d.len();
                                s.out.push_back(d);
                            }
                        }
                        Err(frame) => {
                            let mut block = Vec::with_capacity(32);
                            if let Ok(t) = frame.into_trailers() {
                                put_header_map(&mut block, &t);
                            }
                            s.body = None;
                            s.tail = Some(Tail::Trailers(block));
                        }
                    }
                }
                Poll::Ready(None) => {
                    progress = true;
                    s.body = None;
                    s.tail = Some(Tail::End);
                }
                Poll::Ready(Some(Err(e))) => {
                    progress = true;
                    tracing::debug!(stream = id, error = %e, "h2: response body failed");
                    s.body = None;
                    self.pulling.swap_remove(i);
                    self.rst(id, Reason::Internal);
                    continue;
                }
            }
            self.send(id);
            if self.streams.get(&id).is_none_or(|s| s.body.is_none()) {
                self.pulling.swap_remove(i);
            }
        }
        progress
    }

    /// Send what `id` has queued, as far as the windows allow; then its
    /// tail.
    fn send(&mut self, id: u32) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        while let Some(chunk) = s.out.front_mut() {
            let room = self
                .send_conn
                .min(s.send_window)
                .min(self.peer_max_frame as i64);
            if room <= 0 {
                if !self.blocked.contains(&id) {
                    self.blocked.push_back(id);
                }
                return;
            }
            let n = chunk.len().min(room as usize);
            let part = chunk.split_to(n);
            if chunk.is_empty() {
                s.out.pop_front();
            }
            s.out_bytes -= n;
            self.queued -= n;
            s.send_window -= n as i64;
            self.wrote_since_ping = true;
            self.send_conn -= n as i64;
            let last = s.out.is_empty() && matches!(s.tail, Some(Tail::End));
            f::put_frame(
                &mut self.wbuf,
                kind::DATA,
                if last { flag::END_STREAM } else { 0 },
                id,
                &part,
            );
            if last {
                s.tail = None;
                self.local_done(id);
                return;
            }
        }
        match s.tail.take() {
            Some(Tail::Trailers(block)) => {
                self.headers(id, &block, true);
                self.local_done(id);
            }
            Some(Tail::End) => {
                f::put_frame(&mut self.wbuf, kind::DATA, flag::END_STREAM, id, &[]);
                self.local_done(id);
            }
            None => {}
        }
    }

    /// Retry the streams that waited for window.
    fn send_blocked(&mut self) {
        for _ in 0..self.blocked.len() {
            if self.send_conn <= 0 {
                return;
            }
            let Some(id) = self.blocked.pop_front() else {
                return;
            };
            self.send(id);
        }
    }

    /// Our side of `id` ended.
    fn local_done(&mut self, id: u32) {
        let Some(mut s) = self.streams.remove(&id) else {
            return;
        };
        self.queued -= s.out_bytes;
        if !s.recv_closed {
            // The answer is complete; the rest of the request is not
            // wanted (RFC 9113 §8.1).
            self.release(&mut s);
            f::put_rst(&mut self.wbuf, id, Reason::NoError);
        }
    }

    /// A trailers-only answer with `st`.
    fn respond_status(&mut self, id: u32, st: &Status) {
        let mut block = Vec::with_capacity(64);
        hpack::status(&mut block, 200);
        hpack::content_type(&mut block, b"application/grpc");
        let mut map = http::HeaderMap::new();
        if st.add_header(&mut map).is_err() {
            let _ = Status::new(st.code(), "").add_header(&mut map);
        }
        put_header_map(&mut block, &map);
        if let Some(s) = self.streams.get_mut(&id) {
            s.out.clear();
            self.queued -= s.out_bytes;
            s.out_bytes = 0;
            s.body = None;
        }
        self.headers(id, &block, true);
        self.local_done(id);
    }

    /// Appends a header block as HEADERS (+ CONTINUATION) frames.
    fn headers(&mut self, id: u32, block: &[u8], end_stream: bool) {
        self.wrote_since_ping = true;
        let max = self.peer_max_frame;
        let mut chunks = block.chunks(max).peekable();
        let first = chunks.next().unwrap_or(&[]);
        let mut flags = if end_stream { flag::END_STREAM } else { 0 };
        if chunks.peek().is_none() {
            flags |= flag::END_HEADERS;
        }
        f::put_frame(&mut self.wbuf, kind::HEADERS, flags, id, first);
        while let Some(c) = chunks.next() {
            let fl = if chunks.peek().is_none() {
                flag::END_HEADERS
            } else {
                0
            };
            f::put_frame(&mut self.wbuf, kind::CONTINUATION, fl, id, c);
        }
    }

    /// `s` is gone: stop its call, and give back the connection window
    /// that its request bytes nobody read still hold (a unary call reads
    /// one message; what follows it is never read).
    fn release(&mut self, s: &mut Stream) {
        cancel(s);
        if let Req::Body(inbox) = &s.req {
            let left: usize = inbox
                .lock()
                .expect("inbox lock")
                .chunks
                .drain(..)
                .map(|c| c.len())
                .sum();
            if left > 0 {
                self.used_conn(left);
            }
        }
    }

    fn rst(&mut self, id: u32, reason: Reason) {
        if let Some(mut s) = self.streams.remove(&id) {
            self.queued -= s.out_bytes;
            self.release(&mut s);
        }
        f::put_rst(&mut self.wbuf, id, reason);
    }

    fn goaway(&mut self, reason: Reason, debug: &str) {
        if !self.goaway_sent || reason != Reason::NoError {
            f::put_goaway(&mut self.wbuf, self.last_stream, reason, debug);
        }
        self.goaway_sent = true;
    }

    /// `n` bytes of `id`'s DATA were consumed: give the window back.
    fn give_back(&mut self, id: u32, n: usize) {
        self.used_conn(n);
        if let Some(s) = self.streams.get_mut(&id)
            && !s.recv_closed
        {
            s.recv_window += n as i64;
            if s.recv_window <= i64::from(STREAM_WINDOW / 2) {
                let inc = i64::from(STREAM_WINDOW) - s.recv_window;
                s.recv_window += inc;
                f::put_window_update(&mut self.wbuf, id, inc as u32);
            }
        }
    }

    fn used_conn(&mut self, n: usize) {
        self.recv_conn_used += n;
        if self.recv_conn_used >= (CONN_WINDOW / 2) as usize {
            let inc = self.recv_conn_used;
            self.recv_conn += inc as i64;
            self.recv_conn_used = 0;
            f::put_window_update(&mut self.wbuf, 0, inc as u32);
        }
    }
}

/// Stop a stream's call and body.
fn cancel(s: &mut Stream) {
    if let Some(a) = s.abort.take() {
        a.abort();
    }
    s.body = None;
    if let Req::Body(inbox) = &s.req {
        let mut i = inbox.lock().expect("inbox lock");
        if !i.end {
            i.reset = true;
        }
        i.wake();
    }
}

/// Appends every field of `map` (lowercase names, as `http` keeps them),
/// without the connection-specific ones HTTP/2 forbids.
fn put_header_map(block: &mut Vec<u8>, map: &http::HeaderMap) {
    for (n, v) in map {
        if matches!(
            n.as_str(),
            "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade"
        ) {
            continue;
        }
        if n == http::header::CONTENT_TYPE {
            hpack::content_type(block, v.as_bytes());
        } else {
            hpack::field(block, n.as_str().as_bytes(), v.as_bytes());
        }
    }
}

/// A gRPC `grpc-timeout` value (RFC: up to 8 digits and a unit).
fn grpc_timeout(v: &[u8]) -> Option<Duration> {
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit[0] {
        b'H' => Duration::from_secs(n.saturating_mul(3600)),
        b'M' => Duration::from_secs(n.saturating_mul(60)),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// `fut`, or `None` once `deadline` has passed.
async fn with_deadline<F: Future>(fut: F, deadline: Option<Duration>) -> Option<F::Output> {
    match deadline {
        None => Some(fut.await),
        Some(d) => tokio::time::timeout(d, fut).await.ok(),
    }
}

/// The one message of a unary request body that a [`Reader`] found
/// complete: its bytes after the prefix.
fn grpc_message(mut buf: Bytes) -> Result<Bytes, Status> {
    if buf.len() < 5 {
        return Err(Status::unknown("EOF"));
    }
    if buf[0] != 0 {
        return Err(Status::internal(
            "grpc: compressed flag set with identity or empty encoding",
        ));
    }
    Ok(buf.split_off(5))
}

/// A gRPC length-prefixed message.
fn framed<M: Message>(m: &M) -> Bytes {
    let len = m.encoded_len();
    let mut out = Vec::with_capacity(5 + len);
    out.push(0);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    m.encode(&mut out).expect("a Vec grows");
    Bytes::from(out)
}

/// Run a hot call on the KV service object, as its gRPC method would.
async fn hot_call<S: KvService>(
    kv: Arc<KvShim<S>>,
    method: Hot,
    msg: Bytes,
    token: Option<http::HeaderValue>,
    info: ConnInfo,
) -> Result<Bytes, Status> {
    fn decode<M: Message + Default>(b: Bytes) -> Result<M, Status> {
        M::decode(b)
            .map_err(|e| Status::internal(format!("failed to decode Protobuf message: {e}")))
    }
    // What `Credentials::of` would read from the tonic request the other
    // calls get: the token as visible ASCII, the certificate's name.
    let cred = Credentials {
        token: token.and_then(|t| t.to_str().ok().map(str::to_owned)),
        common_name: info.identity.map(|i| i.common_name),
    };
    Ok(match method {
        Hot::Range => framed(&kv.call_range(cred, decode(msg)?).await?),
        Hot::Put => framed(&kv.call_put(cred, decode(msg)?).await?),
        Hot::DeleteRange => framed(&kv.call_delete_range(cred, decode(msg)?).await?),
        Hot::Txn => framed(&kv.call_txn(cred, decode(msg)?).await?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_as_grpc_writes_them() {
        assert_eq!(grpc_timeout(b"100m"), Some(Duration::from_millis(100)));
        assert_eq!(grpc_timeout(b"5S"), Some(Duration::from_secs(5)));
        assert_eq!(grpc_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(grpc_timeout(b"7u"), Some(Duration::from_micros(7)));
        assert_eq!(grpc_timeout(b"m"), None);
        assert_eq!(grpc_timeout(b"123456789S"), None);
        assert_eq!(grpc_timeout(b"10x"), None);
    }

    #[test]
    fn a_read_message_loses_its_prefix_and_a_compressed_one_is_refused() {
        assert_eq!(
            grpc_message(Bytes::from_static(b"\0\0\0\0\x02ab")).unwrap(),
            Bytes::from_static(b"ab")
        );
        assert_eq!(
            grpc_message(Bytes::from_static(b"\0\0\0\0\x00")).unwrap(),
            Bytes::new()
        );
        for bad in [&b""[..], b"\0\0\0", b"\x01\0\0\0\x00"] {
            assert!(
                grpc_message(Bytes::copy_from_slice(bad)).is_err(),
                "{bad:?}"
            );
        }
    }
}
