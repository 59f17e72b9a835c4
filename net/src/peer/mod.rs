//! The peer transport: request/response RPCs between members on the peer
//! port, over one long-lived TCP connection per (caller, callee) pair.
//!
//! `net` does not know raft: payloads are bytes, request kinds are numbers
//! the node chooses (see `frame` for the bytes on the wire).
//!
//! - [`PeerClient`]: connects lazily, handshakes ([`Hello`]: cluster id,
//!   caller, callee), then pipelines: every call gets a request id, many
//!   can be in flight, responses come back by id. Frames queued while the
//!   socket is busy go out together in one write (so heartbeats to a peer
//!   batch naturally). A broken connection fails the calls in flight and
//!   is re-dialed on the next call, with exponential backoff (50 ms
//!   doubling to 2 s) after failed dials.
//! - [`serve_peers`]: accepts connections, checks the hello through the
//!   [`PeerHandler`] (a member of another cluster is refused with an error
//!   frame and the connection closed), then answers requests: kinds the
//!   handler calls ordered are handled one at a time in arrival order
//!   (raft appends must not overtake each other); the others run
//!   concurrently.
//! - A member removed from the cluster is answered [`RESPONSE_REMOVED`],
//!   for its hello or any request, when the handler says so
//!   ([`PeerHandler::is_removed`]); its client then fails the call with
//!   [`PeerError::Removed`] and runs the hook it was given
//!   ([`PeerClient::on_removed`]), so a removed member learns it from the
//!   first peer it calls — how etcd's removed followers learn it too.
//! - TLS (`https://` peer URLs, etcd's `--peer-*` flags): the dialer
//!   ([`PeerClient::with_tls`]) verifies the callee's certificate against
//!   the peer CA and presents its own; the listener ([`serve_peers_tls`])
//!   requires and verifies the caller's with `--peer-client-cert-auth`. A
//!   failed handshake is logged on both sides with its reason; the dialer
//!   logs each new dial failure once (not every retry).

pub(crate) mod frame;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use frame::{
    DecodeError, Frame, HEADER, Hello, KIND_HELLO, MAX_FRAME, REMOVED, RESPONSE_ERR, RESPONSE_OK,
    RESPONSE_REMOVED,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::metrics::PeerSeries;

/// How a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// Could not connect (or the handshake failed); retry later.
    #[error("peer {addr} unreachable: {why}")]
    Unreachable {
        /// Address.
        addr: String,
        /// Why.
        why: String,
    },
    /// The connection broke with the call in flight.
    #[error("connection to {0} closed")]
    Closed(String),
    /// No answer in time.
    #[error("request to {0} timed out")]
    Timeout(String),
    /// The peer answered with an error.
    #[error("{0}")]
    Remote(String),
    /// The peer says this member has been removed from the cluster.
    #[error("{REMOVED}")]
    Removed,
}

/// Why a dial failed.
enum DialError {
    /// Connecting, TLS or the handshake failed (the reason).
    Failed(String),
    /// The peer answered the hello with [`RESPONSE_REMOVED`].
    Removed,
}

impl From<String> for DialError {
    fn from(why: String) -> Self {
        DialError::Failed(why)
    }
}

/// What runs when a peer says this member was removed.
pub type RemovedHook = Arc<dyn Fn() + Send + Sync>;

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Vec<u8>, PeerError>>>>>;

struct Conn {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    pending: Pending,
    /// Set by the reader when the connection ends (EOF, reset, bad
    /// frame): the writer may still be idle then, so an open `tx` does
    /// not mean a live connection.
    closed: Arc<AtomicBool>,
}

impl Conn {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst) || self.tx.is_closed()
    }
}

struct Dial {
    conn: Option<Arc<Conn>>,
    retry_at: Option<Instant>,
    backoff: Duration,
    /// The last dial failure, logged once until it changes.
    last_error: Option<String>,
}

/// A caller's side of the connection to one peer. Cheap to clone.
#[derive(Clone)]
pub struct PeerClient {
    addr: Arc<str>,
    hello: Hello,
    tls: Option<Arc<rustls::ClientConfig>>,
    next_id: Arc<AtomicU64>,
    dial: Arc<tokio::sync::Mutex<Dial>>,
    on_removed: Option<RemovedHook>,
    /// This member's series for the peer.
    series: Option<PeerSeries>,
}

impl std::fmt::Debug for PeerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerClient")
            .field("addr", &self.addr)
            .field("hello", &self.hello)
            .finish_non_exhaustive()
    }
}

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);
/// A TLS handshake (and the hello after it) may take a little longer.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

fn fail_all(pending: &Pending, err: PeerError) {
    let waiting: Vec<_> = pending
        .lock()
        .expect("pending lock")
        .drain()
        .map(|(_, tx)| tx)
        .collect();
    for tx in waiting {
        let _ = tx.send(Err(err.clone()));
    }
}

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> Result<Frame, String> {
    loop {
        match Frame::decode(buf) {
            Ok((f, n)) => {
                buf.drain(..n);
                return Ok(f);
            }
            Err(DecodeError::Malformed(why)) => return Err(why),
            Err(DecodeError::Incomplete(_)) => {}
        }
        let mut chunk = [0u8; 64 * 1024];
        let n = r.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Write queued frames, many per syscall when they pile up.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut w: W,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    series: Option<PeerSeries>,
) {
    let mut out = Vec::new();
    while let Some(first) = rx.recv().await {
        out.clear();
        out.extend_from_slice(&first);
        while out.len() < (1 << 20) {
            match rx.try_recv() {
                Ok(more) => out.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if w.write_all(&out).await.is_err() {
            return;
        }
        if let Some(s) = &series {
            s.sent(out.len());
        }
    }
    let _ = w.shutdown().await;
}

impl PeerClient {
    /// A client for the peer at `addr` (`host:port`); nothing is dialed
    /// until the first call.
    pub fn new(addr: impl Into<String>, hello: Hello) -> Self {
        Self {
            addr: addr.into().into(),
            hello,
            tls: None,
            next_id: Arc::new(AtomicU64::new(1)),
            dial: Arc::new(tokio::sync::Mutex::new(Dial {
                conn: None,
                retry_at: None,
                backoff: BACKOFF_MIN,
                last_error: None,
            })),
            on_removed: None,
            series: None,
        }
    }

    /// Count this client's traffic, failures and connections in `series`
    /// (`etcd_network_peer_*`, `etcd_network_active_peers`, ...).
    pub fn with_metrics(mut self, series: PeerSeries) -> Self {
        self.series = Some(series);
        self
    }

    /// The series given to [`PeerClient::with_metrics`].
    pub fn series(&self) -> Option<&PeerSeries> {
        self.series.as_ref()
    }

    /// Run `hook` whenever the peer answers that this member has been
    /// removed from the cluster (besides failing the call with
    /// [`PeerError::Removed`]).
    pub fn on_removed(mut self, hook: RemovedHook) -> Self {
        self.on_removed = Some(hook);
        self
    }

    fn removed(&self) -> PeerError {
        if let Some(hook) = &self.on_removed {
            hook();
        }
        PeerError::Removed
    }

    /// Speak TLS to the peer (its peer URL is `https://`), verifying its
    /// certificate for the address's host (an IP must be in its IP SANs).
    pub fn with_tls(mut self, tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        self.tls = tls;
        self
    }

    /// The address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    async fn connect(&self) -> Result<Arc<Conn>, PeerError> {
        let mut d = self.dial.lock().await;
        if let Some(c) = &d.conn
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        d.conn = None;
        let unreachable = |why: String| PeerError::Unreachable {
            addr: self.addr.to_string(),
            why,
        };
        if let Some(at) = d.retry_at
            && Instant::now() < at
        {
            return Err(unreachable("backing off after a failed dial".into()));
        }
        match self.dial_once().await {
            Err(DialError::Removed) => {
                d.retry_at = Some(Instant::now() + d.backoff);
                d.backoff = (d.backoff * 2).min(BACKOFF_MAX);
                Err(self.removed())
            }
            Ok(c) => {
                d.backoff = BACKOFF_MIN;
                d.retry_at = None;
                if d.last_error.take().is_some() {
                    tracing::info!(peer = %self.addr, "peer connection established");
                }
                let c = Arc::new(c);
                d.conn = Some(c.clone());
                Ok(c)
            }
            Err(DialError::Failed(why)) => {
                if d.last_error.as_deref() != Some(why.as_str()) {
                    tracing::warn!(peer = %self.addr, error = %why, "failed to dial peer");
                    d.last_error = Some(why.clone());
                }
                d.retry_at = Some(Instant::now() + d.backoff);
                d.backoff = (d.backoff * 2).min(BACKOFF_MAX);
                Err(unreachable(why))
            }
        }
    }

    async fn dial_once(&self) -> Result<Conn, DialError> {
        let stream = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(&*self.addr))
            .await
            .map_err(|_| "dial timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let Some(tls) = &self.tls else {
            let (r, w) = stream.into_split();
            return self.hello(r, w).await;
        };
        let host = self.addr.rsplit_once(':').map_or(&*self.addr, |(h, _)| h);
        let name = crate::tls::ClientTls::default()
            .server_name(host)
            .map_err(|e| e.to_string())?;
        let connect = tokio_rustls::TlsConnector::from(tls.clone()).connect(name, stream);
        let stream = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, connect)
            .await
            .map_err(|_| "tls: handshake timed out".to_string())?
            .map_err(|e| format!("tls: {e}"))?;
        let (r, w) = tokio::io::split(stream);
        self.hello(r, w).await
    }

    /// The handshake on a connected stream, then the reader and writer
    /// tasks.
    async fn hello<R, W>(&self, mut r: R, mut w: W) -> Result<Conn, DialError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let mut out = Vec::new();
        Frame {
            kind: KIND_HELLO,
            id: 0,
            payload: self.hello.encode(),
        }
        .encode(&mut out);
        w.write_all(&out).await.map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let resp = tokio::time::timeout(DIAL_TIMEOUT, read_frame(&mut r, &mut buf))
            .await
            .map_err(|_| "handshake timed out".to_string())??;
        if resp.kind == RESPONSE_REMOVED {
            return Err(DialError::Removed);
        }
        if resp.kind == RESPONSE_ERR {
            return Err(String::from_utf8_lossy(&resp.payload).into_owned().into());
        }
        if resp.kind != RESPONSE_OK | KIND_HELLO {
            return Err(format!("unexpected handshake answer kind {}", resp.kind).into());
        }
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(w, rx, self.series.clone()));
        let p = pending.clone();
        let addr = self.addr.to_string();
        let closed = Arc::new(AtomicBool::new(false));
        let closing = closed.clone();
        let series = self.series.clone();
        if let Some(s) = &series {
            s.connected(true);
        }
        tokio::spawn(async move {
            loop {
                let f = match read_frame(&mut r, &mut buf).await {
                    Ok(f) => f,
                    Err(_) => break,
                };
                if let Some(s) = &series {
                    s.received(HEADER + f.payload.len());
                }
                let tx = p.lock().expect("pending lock").remove(&f.id);
                if let Some(tx) = tx {
                    let r = match f.kind {
                        RESPONSE_ERR => Err(PeerError::Remote(
                            String::from_utf8_lossy(&f.payload).into_owned(),
                        )),
                        RESPONSE_REMOVED => Err(PeerError::Removed),
                        _ => Ok(f.payload),
                    };
                    let _ = tx.send(r);
                }
            }
            // Closed first: a call that registers after the drain below
            // sees it and fails at once instead of waiting out its timeout.
            closing.store(true, Ordering::SeqCst);
            if let Some(s) = &series {
                s.connected(false);
            }
            fail_all(&p, PeerError::Closed(addr));
        });
        Ok(Conn {
            tx,
            pending,
            closed,
        })
    }

    /// Send request `kind` (1..=127) and wait up to `timeout` for its
    /// answer.
    pub async fn call(
        &self,
        kind: u8,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, PeerError> {
        // Boxed: a call's future is large, and nesting it here would
        // double what callers (openraft's tasks) carry on their stacks.
        let r = Box::pin(self.call_once(kind, payload, timeout)).await;
        // Not sent or not answered: etcd counts a message it could not
        // deliver (an answer with an error was delivered).
        if let (
            Err(PeerError::Unreachable { .. } | PeerError::Closed(_) | PeerError::Timeout(_)),
            Some(s),
        ) = (&r, &self.series)
        {
            s.send_failed();
        }
        r
    }

    async fn call_once(
        &self,
        kind: u8,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, PeerError> {
        debug_assert!(kind > KIND_HELLO && kind < RESPONSE_OK);
        let conn = self.connect().await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        conn.pending.lock().expect("pending lock").insert(id, tx);
        let mut out = Vec::with_capacity(HEADER + payload.len());
        Frame { kind, id, payload }.encode(&mut out);
        if conn.closed.load(Ordering::SeqCst) || conn.tx.send(out).is_err() {
            conn.pending.lock().expect("pending lock").remove(&id);
            return Err(PeerError::Closed(self.addr.to_string()));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Err(PeerError::Removed))) => Err(self.removed()),
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(PeerError::Closed(self.addr.to_string())),
            Err(_) => {
                conn.pending.lock().expect("pending lock").remove(&id);
                Err(PeerError::Timeout(self.addr.to_string()))
            }
        }
    }
}

/// What a member does with peer requests.
pub trait PeerHandler: Send + Sync + 'static {
    /// Accept or refuse a connection by its hello (`Err`: the reason,
    /// sent back to the caller).
    fn accept(&self, hello: &Hello) -> Result<(), String>;
    /// Whether member `from` has been removed from the cluster: its
    /// hello and requests are answered [`RESPONSE_REMOVED`].
    fn is_removed(&self, from: u64) -> bool {
        let _ = from;
        false
    }
    /// Whether requests of `kind` must be handled one at a time, in the
    /// order they arrive on a connection.
    fn ordered(&self, kind: u8) -> bool;
    /// The series to count member `from`'s connection in (bytes both
    /// ways, failed requests); none by default.
    fn series(&self, from: u64) -> Option<PeerSeries> {
        let _ = from;
        None
    }
    /// Handle one request from member `from`.
    fn handle(
        &self,
        from: u64,
        kind: u8,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, String>> + Send;
}

/// Serve peer connections on `listener` until `shutdown` resolves.
pub async fn serve_peers<H: PeerHandler>(
    listener: tokio::net::TcpListener,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) {
    serve_peers_tls(listener, handler, None, shutdown).await
}

/// Whether a peer's client certificate must name the address it calls
/// from (etcd's default; `--experimental-peer-skip-client-san-verification`
/// skips it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientSan {
    /// The caller's IP must be one of the certificate's IP SANs, or one of
    /// its DNS SANs must resolve to it.
    Verify,
    /// Any address.
    Skip,
}

/// A TLS peer listener's settings.
#[derive(Debug, Clone)]
pub struct ListenerTls {
    /// Certificate, key, and client verification (`--peer-client-cert-auth`).
    pub config: Arc<rustls::ServerConfig>,
    /// Checking a verified client certificate against the caller's address.
    pub client_san: ClientSan,
}

/// etcd's check of a peer's client certificate against the address it
/// called from: one of its IP SANs is that address, or one of its DNS
/// SANs resolves to it.
async fn check_client_san(cert: &[u8], remote: std::net::IpAddr) -> Result<(), String> {
    let der = rustls::pki_types::CertificateDer::from(cert);
    let ee = webpki::EndEntityCert::try_from(&der).map_err(|e| format!("tls: {e}"))?;
    let ip = rustls::pki_types::ServerName::IpAddress(remote.into());
    if ee.verify_is_valid_for_subject_name(&ip).is_ok() {
        return Ok(());
    }
    let names: Vec<String> = ee.valid_dns_names().map(str::to_string).collect();
    for name in &names {
        let resolved = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::lookup_host((name.as_str(), 0)),
        )
        .await;
        if let Ok(Ok(mut addrs)) = resolved
            && addrs.any(|a| a.ip() == remote)
        {
            return Ok(());
        }
    }
    Err(format!(
        "tls: {remote:?} does not match the certificate's IP addresses or any of DNSNames {names:?}"
    ))
}

/// [`serve_peers`], inside TLS when `tls` is given (an `https://` peer
/// URL). A failed handshake (or a client certificate that does not name
/// the caller's address, see [`ClientSan`]) closes the connection and is
/// logged with its reason, as etcd logs it ("rejected connection").
pub async fn serve_peers_tls<H: PeerHandler>(
    listener: tokio::net::TcpListener,
    handler: Arc<H>,
    tls: Option<ListenerTls>,
    shutdown: impl Future<Output = ()>,
) {
    let client_san = tls.as_ref().map_or(ClientSan::Skip, |t| t.client_san);
    let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(t.config));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            r = listener.accept() => {
                let Ok((stream, remote)) = r else { continue };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                match &acceptor {
                    None => {
                        let (r, w) = stream.into_split();
                        tokio::spawn(serve_conn(r, w, handler));
                    }
                    Some(acceptor) => {
                        let accept = acceptor.accept(stream);
                        tokio::spawn(async move {
                            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, accept).await {
                                Ok(Ok(s)) => {
                                    let cert = s.get_ref().1.peer_certificates()
                                        .and_then(|c| c.first())
                                        .map(|c| c.to_vec());
                                    if let (ClientSan::Verify, Some(cert)) = (client_san, cert)
                                        && let Err(e) = check_client_san(&cert, remote.ip()).await
                                    {
                                        return tracing::warn!(
                                            remote_addr = %remote, error = %e,
                                            "rejected peer connection"
                                        );
                                    }
                                    let (r, w) = tokio::io::split(s);
                                    serve_conn(r, w, handler).await
                                }
                                Ok(Err(e)) => tracing::warn!(
                                    remote_addr = %remote, error = %e,
                                    "rejected peer connection"
                                ),
                                Err(_) => tracing::warn!(
                                    remote_addr = %remote,
                                    error = "tls: handshake timed out",
                                    "rejected peer connection"
                                ),
                            }
                        });
                    }
                }
            }
        }
    }
}

fn removed_response(id: u64) -> Vec<u8> {
    let f = Frame {
        kind: RESPONSE_REMOVED,
        id,
        payload: REMOVED.as_bytes().to_vec(),
    };
    let mut out = Vec::with_capacity(HEADER + f.payload.len());
    f.encode(&mut out);
    out
}

fn response(kind: u8, id: u64, r: Result<Vec<u8>, String>) -> Vec<u8> {
    let f = match r {
        Ok(payload) => Frame {
            kind: RESPONSE_OK | kind,
            id,
            payload,
        },
        Err(why) => Frame {
            kind: RESPONSE_ERR,
            id,
            payload: why.into_bytes(),
        },
    };
    let mut out = Vec::with_capacity(HEADER + f.payload.len());
    f.encode(&mut out);
    out
}

/// A request the member failed to process counts as a receive failure
/// (`etcd_network_peer_received_failures_total`).
fn count_failure(series: &Option<PeerSeries>, r: &Result<Vec<u8>, String>) {
    if let (Some(s), Err(_)) = (series, r) {
        s.receive_failed();
    }
}

async fn serve_conn<H, R, W>(mut r: R, w: W, handler: Arc<H>)
where
    H: PeerHandler,
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let mut buf = Vec::new();
    let Ok(first) = read_frame(&mut r, &mut buf).await else {
        return;
    };
    // The caller is known from its hello on (0 for one that did not say).
    let series = Hello::decode(&first.payload)
        .ok()
        .filter(|h| first.kind == KIND_HELLO && h.from != 0)
        .and_then(|h| handler.series(h.from));
    tokio::spawn(write_loop(w, rx, series.clone()));
    if let Some(s) = &series {
        s.received(HEADER + first.payload.len());
    }
    let hello = if first.kind == KIND_HELLO {
        Hello::decode(&first.payload).map_err(|e| e.to_string())
    } else {
        Err(format!("expected a hello, got kind {}", first.kind))
    };
    let hello = match hello.and_then(|h| handler.accept(&h).map(|()| h)) {
        Ok(h) if h.from != 0 && handler.is_removed(h.from) => {
            tracing::warn!(
                from = %format!("{:x}", h.from),
                "refused a peer connection from a removed member"
            );
            let _ = tx.send(removed_response(first.id));
            return;
        }
        Ok(h) => {
            let _ = tx.send(response(KIND_HELLO, first.id, Ok(Vec::new())));
            h
        }
        Err(why) => {
            tracing::warn!(reason = %why, "refused a peer connection");
            let _ = tx.send(response(KIND_HELLO, first.id, Err(why)));
            return;
        }
    };
    loop {
        let f = match read_frame(&mut r, &mut buf).await {
            Ok(f) => f,
            Err(why) => {
                if why != "connection closed" {
                    tracing::warn!(from = hello.from, reason = %why, "closing a peer connection");
                }
                return;
            }
        };
        if let Some(s) = &series {
            s.received(HEADER + f.payload.len());
        }
        if f.kind == KIND_HELLO || f.kind >= RESPONSE_OK {
            tracing::warn!(
                from = hello.from,
                kind = f.kind,
                "unexpected peer frame; closing"
            );
            return;
        }
        if handler.is_removed(hello.from) {
            if tx.send(removed_response(f.id)).is_err() {
                return;
            }
            continue;
        }
        if handler.ordered(f.kind) {
            let r = handler.handle(hello.from, f.kind, f.payload).await;
            count_failure(&series, &r);
            if tx.send(response(f.kind, f.id, r)).is_err() {
                return;
            }
        } else {
            let (h, tx, series) = (handler.clone(), tx.clone(), series.clone());
            tokio::spawn(async move {
                let r = h.handle(hello.from, f.kind, f.payload).await;
                count_failure(&series, &r);
                let _ = tx.send(response(f.kind, f.id, r));
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo {
        cluster: u64,
    }

    impl PeerHandler for Echo {
        fn accept(&self, h: &Hello) -> Result<(), String> {
            if h.cluster_id == self.cluster {
                Ok(())
            } else {
                Err(format!(
                    "request cluster ID mismatch (got {:x})",
                    h.cluster_id
                ))
            }
        }
        fn ordered(&self, kind: u8) -> bool {
            kind == 2
        }
        async fn handle(&self, from: u64, kind: u8, payload: Vec<u8>) -> Result<Vec<u8>, String> {
            if kind == 4 {
                return Err("nope".into());
            }
            if kind == 3 {
                // Slow, unordered: must not hold back the others.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let mut v = from.to_le_bytes().to_vec();
            v.extend_from_slice(&payload);
            Ok(v)
        }
    }

    async fn server(cluster: u64) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(serve_peers(
            l,
            Arc::new(Echo { cluster }),
            std::future::pending(),
        ));
        addr
    }

    /// A peer that restarts (its connection ends while the caller is
    /// idle): the next call dials again instead of writing into the dead
    /// connection and waiting out its whole timeout (a follower's forward
    /// to a leader that restarted used to hang until the request timed
    /// out).
    #[tokio::test]
    async fn a_call_after_the_peer_restarted_dials_again() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        // Each connection: the hello, one answered call, then closed.
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                let mut buf = Vec::new();
                let Ok(_) = read_frame(&mut s, &mut buf).await else {
                    continue;
                };
                let mut out = Vec::new();
                Frame {
                    kind: RESPONSE_OK | KIND_HELLO,
                    id: 0,
                    payload: Vec::new(),
                }
                .encode(&mut out);
                if s.write_all(&out).await.is_err() {
                    continue;
                }
                let Ok(f) = read_frame(&mut s, &mut buf).await else {
                    continue;
                };
                out.clear();
                Frame {
                    kind: RESPONSE_OK | f.kind,
                    id: f.id,
                    payload: f.payload,
                }
                .encode(&mut out);
                let _ = s.write_all(&out).await;
                drop(s);
            }
        });
        let c = PeerClient::new(
            addr,
            Hello {
                cluster_id: 1,
                from: 2,
                to: 3,
            },
        );
        let t = Duration::from_secs(60);
        for i in 0..3u8 {
            let r = tokio::time::timeout(Duration::from_secs(20), c.call(2, vec![i], t))
                .await
                .expect("a call on a connection the peer closed hung");
            assert_eq!(r.unwrap(), vec![i]);
            // Idle while the peer goes away.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    #[tokio::test]
    async fn calls_pipeline_and_errors_come_back() {
        let addr = server(9).await;
        let c = PeerClient::new(
            addr,
            Hello {
                cluster_id: 9,
                from: 5,
                to: 0,
            },
        );
        let t = Duration::from_secs(5);
        let slow = {
            let c = c.clone();
            tokio::spawn(async move { c.call(3, b"slow".to_vec(), t).await })
        };
        let started = Instant::now();
        let mut calls = Vec::new();
        for i in 0..100u8 {
            let c = c.clone();
            calls.push(tokio::spawn(async move { c.call(2, vec![i], t).await }));
        }
        for (i, h) in calls.into_iter().enumerate() {
            let mut want = 5u64.to_le_bytes().to_vec();
            want.push(i as u8);
            assert_eq!(h.await.unwrap().unwrap(), want);
        }
        assert!(
            started.elapsed() < Duration::from_millis(200),
            "ordered calls waited for the slow one"
        );
        assert!(slow.await.unwrap().is_ok());
        assert_eq!(
            c.call(4, vec![], t).await,
            Err(PeerError::Remote("nope".into()))
        );
    }

    #[tokio::test]
    async fn other_clusters_are_refused() {
        let addr = server(9).await;
        let c = PeerClient::new(
            addr,
            Hello {
                cluster_id: 8,
                from: 5,
                to: 0,
            },
        );
        match c.call(2, vec![], Duration::from_secs(2)).await {
            Err(PeerError::Unreachable { why, .. }) => {
                assert!(why.contains("cluster ID mismatch"), "{why}")
            }
            r => panic!("{r:?}"),
        }
    }

    /// A TLS peer port with peer-client-cert-auth, trusting `ca`.
    async fn tls_server(ca: &crate::tls::testing::Ca) -> String {
        tls_server_san(ca, ClientSan::Verify).await
    }

    async fn tls_server_san(ca: &crate::tls::testing::Ca, client_san: ClientSan) -> String {
        let (cert, key) = ca.issue("server");
        let cfg = crate::tls::ServerTls {
            cert,
            key,
            trusted_ca: Some(ca.pem()),
            client_cert_auth: true,
            ..Default::default()
        }
        .server_config(&[])
        .unwrap();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(serve_peers_tls(
            l,
            Arc::new(Echo { cluster: 9 }),
            Some(ListenerTls {
                config: cfg,
                client_san,
            }),
            std::future::pending(),
        ));
        addr
    }

    fn tls_client(addr: &str, tls: crate::tls::ClientTls) -> PeerClient {
        let hello = Hello {
            cluster_id: 9,
            from: 5,
            to: 0,
        };
        PeerClient::new(addr, hello).with_tls(Some(tls.client_config(&[]).unwrap()))
    }

    #[tokio::test]
    async fn tls_peers_verify_each_other() {
        use crate::tls::{ClientTls, testing::Ca};
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new(dir.path(), "ca");
        let other = Ca::new(dir.path(), "other");
        let addr = tls_server(&ca).await;
        let t = Duration::from_secs(5);

        let (cert, key) = ca.issue("peer");
        let good = tls_client(&addr, ClientTls::with_ca(ca.pem()).identity(&cert, &key));
        let mut want = 5u64.to_le_bytes().to_vec();
        want.push(7);
        assert_eq!(good.call(2, vec![7], t).await.unwrap(), want);

        let unreachable = |r: Result<Vec<u8>, PeerError>| match r {
            Err(PeerError::Unreachable { why, .. }) => why,
            r => panic!("{r:?}"),
        };
        // No client certificate: the server refuses the handshake (with
        // TLS 1.3 the client learns it from the alert on its first read).
        let anonymous = tls_client(&addr, ClientTls::with_ca(ca.pem()));
        let why = unreachable(anonymous.call(2, vec![], t).await);
        assert!(why.contains("CertificateRequired"), "{why}");
        // A certificate from another CA.
        let (cert2, key2) = other.issue("intruder");
        let intruder = tls_client(&addr, ClientTls::with_ca(ca.pem()).identity(&cert2, &key2));
        let why = unreachable(intruder.call(2, vec![], t).await);
        assert!(why.contains("alert"), "{why}");
        // The dialer does not trust a server from another CA.
        let wrong_roots = tls_client(
            &addr,
            ClientTls::with_ca(other.pem()).identity(&cert2, &key2),
        );
        let why = unreachable(wrong_roots.call(2, vec![], t).await);
        assert!(why.contains("invalid peer certificate"), "{why}");
        // Plaintext to a TLS port: no hello answer.
        let plain = PeerClient::new(
            addr.clone(),
            Hello {
                cluster_id: 9,
                from: 5,
                to: 0,
            },
        );
        assert!(plain.call(2, vec![], t).await.is_err());
        // The good client still works.
        assert!(good.call(2, vec![1], t).await.is_ok());
    }

    #[tokio::test]
    async fn client_certificates_must_name_the_callers_address() {
        use crate::tls::{ClientTls, testing::Ca};
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new(dir.path(), "ca");
        let t = Duration::from_secs(5);
        // Valid chain, but for another address and an unresolvable name.
        let (cert, key) = ca.issue_for(
            "elsewhere",
            vec![
                rcgen::SanType::IpAddress("10.9.9.9".parse().unwrap()),
                rcgen::SanType::DnsName("peer.invalid".try_into().unwrap()),
            ],
        );
        let tls = ClientTls::with_ca(ca.pem()).identity(&cert, &key);
        let verify = tls_server_san(&ca, ClientSan::Verify).await;
        assert!(
            tls_client(&verify, tls.clone())
                .call(2, vec![], t)
                .await
                .is_err()
        );
        let skip = tls_server_san(&ca, ClientSan::Skip).await;
        assert!(tls_client(&skip, tls).call(2, vec![], t).await.is_ok());
        // A DNS SAN that resolves to the caller is enough.
        let (cert, key) = ca.issue_for(
            "byname",
            vec![rcgen::SanType::DnsName("localhost".try_into().unwrap())],
        );
        let by_name = ClientTls::with_ca(ca.pem()).identity(&cert, &key);
        assert!(
            tls_client(&verify, by_name)
                .call(2, vec![], t)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn dead_peer_is_unreachable_then_backs_off() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        let c = PeerClient::new(
            addr,
            Hello {
                cluster_id: 1,
                from: 1,
                to: 2,
            },
        );
        let t = Duration::from_millis(500);
        assert!(matches!(
            c.call(2, vec![], t).await,
            Err(PeerError::Unreachable { .. })
        ));
        match c.call(2, vec![], t).await {
            Err(PeerError::Unreachable { why, .. }) => {
                assert!(why.contains("backing off"), "{why}")
            }
            r => panic!("{r:?}"),
        }
    }
}
