//! One binary-protocol connection: a writer task that coalesces queued
//! frames into one write, a reader task that routes each answer to its
//! caller by request id. Any number of calls and streams share it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rkyv::util::AlignedVec;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tonic::Code;

use super::Error;
use crate::fast::codec::{self, ErrorReply, Message};
use crate::fast::methods::{Streaming, Unary};
use crate::fast::{self as proto, KIND_CLOSE, KIND_END, KIND_ERR, KIND_OK};
use crate::peer::frame::{DecodeError, Frame, HEADER};

/// Largest answer accepted (a big range can be large; etcd's client
/// default is math.MaxInt32).
const MAX_ANSWER: usize = 2 << 30;

/// Why a call failed, and whether the request may have reached the server.
#[derive(Debug)]
pub(crate) struct CallError {
    pub(crate) error: Error,
    /// `false` only when the request certainly never left this process.
    pub(crate) sent: bool,
    /// The connection is gone (reconnect elsewhere).
    pub(crate) broken: bool,
}

/// An answer's kind and payload, copied out of the read buffer once,
/// straight into an aligned buffer rkyv reads in place.
type Reply = Result<(u8, AlignedVec<16>), Error>;

enum Pending {
    Unary(oneshot::Sender<Reply>),
    Stream(mpsc::UnboundedSender<Reply>),
}

struct Shared {
    pending: Mutex<HashMap<u64, Pending>>,
    next_id: AtomicU64,
    closed: AtomicBool,
    endpoint: String,
}

/// A live connection (cheap to clone).
#[derive(Clone)]
pub(crate) struct Conn {
    out: mpsc::UnboundedSender<Vec<u8>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("fast::Conn")
            .field("endpoint", &self.shared.endpoint)
            .finish()
    }
}

/// How a fast handshake went.
pub(crate) enum Dial {
    Up(Conn),
    /// TCP connected but the server is not a ferrocd (no fast preamble
    /// came back): try gRPC there.
    NotFast,
    /// Could not connect at all.
    Down(String),
}

impl Conn {
    pub(crate) async fn dial(
        addr: &str,
        tls: Option<&super::Tls>,
        timeout: Duration,
        flags: u16,
        token: Option<&str>,
    ) -> Dial {
        let s = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Dial::Down(format!("dial tcp {addr}: {e}")),
            Err(_) => return Dial::Down(format!("dial tcp {addr}: i/o timeout")),
        };
        let _ = s.set_nodelay(true);
        let conn = match tls {
            None => {
                let mut s = s;
                if let Some(no) = Self::handshake(&mut s, addr, timeout, flags).await {
                    return no;
                }
                // A plain socket splits without a lock.
                let (rd, wr) = s.into_split();
                Conn::start(rd, wr, addr)
            }
            Some(tls) => {
                let handshake = super::Tls::connect(&tls.fast, &tls.opts, addr, s);
                let mut s = match tokio::time::timeout(timeout, handshake).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => return Dial::Down(format!("dial tcp {addr}: tls: {e}")),
                    Err(_) => {
                        return Dial::Down(format!("dial tcp {addr}: tls handshake timed out"));
                    }
                };
                if let Some(no) = Self::handshake(&mut s, addr, timeout, flags).await {
                    return no;
                }
                let (rd, wr) = tokio::io::split(s);
                Conn::start(rd, wr, addr)
            }
        };
        if let Some(t) = token {
            conn.set_token(t);
        }
        Dial::Up(conn)
    }

    /// The fast preamble exchange on a connected (plain or TLS) stream:
    /// `None` when the server accepted it.
    async fn handshake<S>(s: &mut S, addr: &str, timeout: Duration, flags: u16) -> Option<Dial>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if s.write_all(&proto::preamble(proto::VERSION, flags))
            .await
            .is_err()
        {
            return Some(Dial::NotFast);
        }
        let mut pre = [0u8; proto::PREAMBLE];
        // An etcd (or anything else) either closes the connection or waits
        // for more bytes: either way no preamble comes back.
        let got = tokio::time::timeout(timeout, s.read_exact(&mut pre)).await;
        match got {
            Ok(Ok(_)) => {}
            // A TLS alert (the server refused our certificate, or the
            // lack of one: with TLS 1.3 it comes on the first read) is
            // no reason to try gRPC on the same TLS port.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Some(Dial::Down(format!("dial tcp {addr}: tls: {e}")));
            }
            _ => return Some(Dial::NotFast),
        }
        match proto::parse_preamble(&pre) {
            Some((_, proto::STATUS_OK)) => None,
            Some((v, _)) => Some(Dial::Down(format!(
                "{addr} speaks fast protocol version {v}, this client version {}",
                proto::VERSION
            ))),
            None => Some(Dial::NotFast),
        }
    }

    fn start<R, W>(mut rd: R, wr: W, endpoint: &str) -> Conn
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (out, outbox) = mpsc::unbounded_channel::<Vec<u8>>();
        let shared = Arc::new(Shared {
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            endpoint: endpoint.to_string(),
        });
        tokio::spawn(crate::fast::write_coalesced(wr, outbox));
        let sh = shared.clone();
        tokio::spawn(async move {
            let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
            let why = 'read: loop {
                let mut start = 0;
                loop {
                    match Frame::header(&buf[start..], MAX_ANSWER) {
                        Ok((kind, id, total)) => {
                            let payload = codec::aligned(&buf[start + HEADER..start + total]);
                            sh.route(kind, id, payload);
                            start += total;
                        }
                        Err(DecodeError::Incomplete(_)) => break,
                        Err(DecodeError::Malformed(m)) => {
                            break 'read format!("malformed answer: {m}");
                        }
                    }
                }
                buf.drain(..start);
                if buf.capacity() - buf.len() < 16 * 1024 {
                    buf.reserve(64 * 1024);
                }
                match rd.read_buf(&mut buf).await {
                    Ok(0) => break "connection closed by the server".to_string(),
                    Err(e) => break e.to_string(),
                    Ok(_) => {}
                }
            };
            sh.fail_all(&why);
        });
        Conn { out, shared }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    fn set_token(&self, token: &str) {
        let mut f = Vec::new();
        proto::put_frame(&mut f, proto::KIND_TOKEN, 0, token.as_bytes());
        let _ = self.out.send(f);
    }

    fn send(&self, kind: u8, id: u64, payload: &[u8]) -> bool {
        let mut f = Vec::with_capacity(HEADER + payload.len());
        proto::put_frame(&mut f, kind, id, payload);
        self.out.send(f).is_ok()
    }

    fn lost(&self) -> CallError {
        CallError {
            error: Error::status(
                Code::Unavailable,
                format!("connection to {} lost", self.shared.endpoint),
            ),
            sent: false,
            broken: true,
        }
    }

    /// One unary call.
    pub(crate) async fn unary<M: Unary>(&self, req: &M::Req) -> Result<M::Resp, CallError> {
        let payload = codec::encode(req);
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut p = self.shared.pending.lock().expect("pending lock");
            if self.is_closed() {
                return Err(self.lost());
            }
            p.insert(id, Pending::Unary(tx));
        }
        if !self.send(M::KIND, id, &payload) {
            self.shared
                .pending
                .lock()
                .expect("pending lock")
                .remove(&id);
            return Err(self.lost());
        }
        // Dropped before the answer (the caller gave up, e.g. a timeout
        // around a Lock that waits): tell the server, which cancels it.
        let pending = Unanswered {
            conn: self,
            id: Some(id),
        };
        let reply = rx.await.unwrap_or_else(|_| Err(self.lost().error));
        pending.answered();
        decode_reply::<M::Resp>(M::KIND, reply).map_err(|(error, broken)| CallError {
            error,
            sent: true,
            broken,
        })
    }

    /// Open a stream whose first client message is `first`.
    pub(crate) fn open<M: Streaming>(
        &self,
        first: &M::Req,
    ) -> Result<(StreamTx, mpsc::UnboundedReceiver<Reply>), CallError> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut p = self.shared.pending.lock().expect("pending lock");
            if self.is_closed() {
                return Err(self.lost());
            }
            p.insert(id, Pending::Stream(tx));
        }
        if !self.send(M::KIND, id, &codec::encode(first)) {
            self.shared
                .pending
                .lock()
                .expect("pending lock")
                .remove(&id);
            return Err(self.lost());
        }
        Ok((
            StreamTx {
                conn: self.clone(),
                id,
                kind: M::KIND,
            },
            rx,
        ))
    }
}

/// A unary call in flight; dropped unanswered, it sends [`KIND_CLOSE`]
/// with the call's id (the server cancels the call if it still runs).
struct Unanswered<'a> {
    conn: &'a Conn,
    id: Option<u64>,
}

impl Unanswered<'_> {
    fn answered(mut self) {
        self.id = None;
    }
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.conn
                .shared
                .pending
                .lock()
                .expect("pending lock")
                .remove(&id);
            self.conn.send(KIND_CLOSE, id, &[]);
        }
    }
}

/// Decode an answer of a call of `kind`; `Err((error, connection broken))`.
pub(crate) fn decode_reply<T: Message>(kind: u8, reply: Reply) -> Result<T, (Error, bool)> {
    let (k, payload) = reply.map_err(|e| (e, true))?;
    if k == kind | KIND_OK {
        return codec::decode_aligned::<T>(&payload)
            .map_err(|e| (Error::status(Code::Internal, e.to_string()), false));
    }
    if k == KIND_ERR {
        let e = codec::decode_aligned::<ErrorReply>(&payload)
            .map(|r| Error::from(r.into_status()))
            .unwrap_or_else(|e| Error::status(Code::Internal, e.to_string()));
        return Err((e, false));
    }
    Err((
        Error::status(Code::Internal, format!("unexpected answer kind {k}")),
        false,
    ))
}

impl Shared {
    fn route(&self, kind: u8, id: u64, payload: AlignedVec<16>) {
        let mut p = self.pending.lock().expect("pending lock");
        let last = kind == KIND_END || kind == KIND_ERR;
        match p.get(&id) {
            Some(Pending::Unary(_)) => {
                if let Some(Pending::Unary(tx)) = p.remove(&id) {
                    let _ = tx.send(Ok((kind, payload)));
                }
            }
            Some(Pending::Stream(tx)) if tx.send(Ok((kind, payload))).is_err() || last => {
                p.remove(&id);
            }
            Some(Pending::Stream(_)) | None => {}
        }
    }

    fn fail_all(&self, why: &str) {
        let mut p = self.pending.lock().expect("pending lock");
        self.closed.store(true, Ordering::Release);
        let msg = format!("connection to {} lost: {why}", self.endpoint);
        for (_, pending) in p.drain() {
            let e = Err(Error::status(Code::Unavailable, msg.clone()));
            match pending {
                Pending::Unary(tx) => {
                    let _ = tx.send(e);
                }
                Pending::Stream(tx) => {
                    let _ = tx.send(e);
                }
            }
        }
    }
}

/// The client's side of a fast stream; dropping it ends that side.
#[derive(Debug)]
pub(crate) struct StreamTx {
    conn: Conn,
    id: u64,
    kind: u8,
}

impl StreamTx {
    pub(crate) fn send<T: Message>(&self, msg: &T) -> bool {
        self.conn.send(self.kind, self.id, &codec::encode(msg))
    }

    /// Whether the answer has the stream's kind.
    pub(crate) fn kind(&self) -> u8 {
        self.kind
    }
}

impl Drop for StreamTx {
    fn drop(&mut self) {
        // The server ends the stream in answer (KIND_END), which also
        // clears its pending entry here.
        self.conn.send(KIND_CLOSE, self.id, &[]);
    }
}

/// Whether a stream frame ends the stream.
pub(crate) fn is_end(kind: u8) -> bool {
    kind == KIND_END
}
