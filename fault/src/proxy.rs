//! A user-space TCP proxy in front of every member's peer port, so the
//! nemesis can cut and slow ferrocd's own peer links.
//!
//! Each member advertises the proxy's address as its peer URL; its real
//! `--listen-peer-urls` port sits behind it. Members open one connection
//! per (caller, callee) pair, and the first frame on it is the caller's
//! hello (see `net/src/peer/frame.rs`):
//!
//! ```text
//! 0        4      5        13           21          29          37
//! +--------+------+--------+------------+-----------+-----------+
//! | len=33 | 1    | id u64 | cluster_id | from      | to        |
//! | u32 LE | kind |  LE    | u64 LE     | u64 LE    | u64 LE    |
//! +--------+------+--------+------------+-----------+-----------+
//! ```
//!
//! The proxy reads those 37 bytes to learn `from`, then forwards both ways.
//! A link table `(from, to) → Up | Down | Delay` (member indexes) governs
//! the connections *opened by* `from` to `to`: that connection carries
//! `from`'s requests and `to`'s answers, so `(a, b) = Down` with `(b, a) =
//! Up` is a directed partition (a cannot reach b, b still reaches a).
//! - `Down` closes the existing connections and accepts-then-closes new
//!   ones (the dialer sees a reset hello and backs off, as on a real cut).
//! - `Delay(d)` holds every chunk read in either direction for `d` before
//!   writing it; order is kept and throughput is not capped.
//!
//! Member ids (64-bit, derived by the server from the cluster token) map to
//! indexes through [`Proxies::set_ids`] (the runner reads MemberList) and
//! through the hellos themselves: a hello that reaches member `j`'s proxy
//! names `j`'s id in `to`. A connection whose caller is not known yet (a
//! joining member's discovery hello has `from = 0`) is always forwarded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Bytes of a peer hello frame: 13 of header, 24 of payload.
pub const HELLO_BYTES: usize = 37;
/// The hello frame's kind byte.
const KIND_HELLO: u8 = 1;
/// How long an accepted connection gets to send its hello. The dialer
/// writes it right after connecting; 5 s only guards a stuck caller.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes read per chunk: peer frames batch heartbeats and appends, so most
/// reads are far smaller.
const CHUNK: usize = 64 << 10;

/// The state of one directed link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Link {
    /// Forwarded as is.
    #[default]
    Up,
    /// No connection from `from` to `to`.
    Down,
    /// Every chunk in both directions is held this long.
    Delay(Duration),
}

/// A parsed peer hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    pub cluster_id: u64,
    pub from: u64,
    pub to: u64,
}

/// Why the first bytes of a connection are not a hello.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    #[error("hello frame length {0}, want 33")]
    Length(u32),
    #[error("first frame of kind {0}, want the hello (1)")]
    Kind(u8),
}

impl Hello {
    /// Parse the 37 bytes a caller sends first.
    pub fn parse(b: &[u8; HELLO_BYTES]) -> Result<Hello, HelloError> {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let len = u32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
        if len != 33 {
            return Err(HelloError::Length(len));
        }
        if b[4] != KIND_HELLO {
            return Err(HelloError::Kind(b[4]));
        }
        Ok(Hello {
            cluster_id: u64_at(13),
            from: u64_at(21),
            to: u64_at(29),
        })
    }
}

/// One forwarded connection, for closing it when its link goes down.
#[derive(Debug)]
struct Conn {
    /// The caller's member id (0: unknown).
    from: u64,
    /// The callee's index.
    to: usize,
    /// Dropped to close the connection.
    _cancel: oneshot::Sender<()>,
}

#[derive(Debug, Default)]
struct Shared {
    links: HashMap<(usize, usize), Link>,
    /// Member id → index.
    ids: HashMap<u64, usize>,
    conns: HashMap<u64, Conn>,
}

/// Counters, for the round's summary and the tests.
#[derive(Debug, Default)]
pub struct Counters {
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub cut: AtomicU64,
    pub bad_hello: AtomicU64,
}

/// The proxies of one cluster: one listener per member, one link table.
#[derive(Debug)]
pub struct Proxies {
    shared: Arc<Mutex<Shared>>,
    counters: Arc<Counters>,
    addrs: Vec<std::net::SocketAddr>,
    listeners: Vec<JoinHandle<()>>,
}

impl Proxies {
    /// Bind one listener per member on 127.0.0.1 (free ports) forwarding to
    /// `backends[j]` (the members' real peer ports). Must run inside a
    /// tokio runtime.
    pub async fn start(backends: &[std::net::SocketAddr]) -> std::io::Result<Proxies> {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let counters = Arc::new(Counters::default());
        let next_conn = Arc::new(AtomicU64::new(1));
        let mut addrs = Vec::new();
        let mut listeners = Vec::new();
        for (j, backend) in backends.iter().copied().enumerate() {
            let l = TcpListener::bind("127.0.0.1:0").await?;
            addrs.push(l.local_addr()?);
            let (shared, counters, next_conn) =
                (shared.clone(), counters.clone(), next_conn.clone());
            listeners.push(tokio::spawn(async move {
                loop {
                    let Ok((sock, _)) = l.accept().await else {
                        // EMFILE and the like: back off rather than spin.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    let id = next_conn.fetch_add(1, Ordering::Relaxed);
                    let (shared, counters) = (shared.clone(), counters.clone());
                    tokio::spawn(async move {
                        handle(sock, j, backend, id, shared.clone(), counters).await;
                        shared.lock().expect("proxy lock").conns.remove(&id);
                    });
                }
            }));
        }
        Ok(Proxies {
            shared,
            counters,
            addrs,
            listeners,
        })
    }

    /// The address member `j`'s peers dial (its advertised peer URL).
    pub fn addr(&self, j: usize) -> std::net::SocketAddr {
        self.addrs[j]
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Record which member id is which index (from MemberList).
    pub fn set_ids(&self, ids: impl IntoIterator<Item = (u64, usize)>) {
        let mut s = self.shared.lock().expect("proxy lock");
        s.ids.extend(ids);
    }

    /// The index of a member id, if known.
    pub fn index_of(&self, id: u64) -> Option<usize> {
        self.shared
            .lock()
            .expect("proxy lock")
            .ids
            .get(&id)
            .copied()
    }

    /// Set the link `from → to`; `Down` closes its open connections now.
    pub fn set_link(&self, from: usize, to: usize, link: Link) {
        let mut s = self.shared.lock().expect("proxy lock");
        if link == Link::Up {
            s.links.remove(&(from, to));
        } else {
            s.links.insert((from, to), link);
        }
        if link == Link::Down {
            let ids = s.ids.clone();
            let mut cut = 0;
            // Dropping an entry drops its cancel sender: the connection's
            // task sees it and closes both sockets.
            s.conns.retain(|_, c| {
                let hit = c.to == to && ids.get(&c.from) == Some(&from);
                cut += u64::from(hit);
                !hit
            });
            self.counters.cut.fetch_add(cut, Ordering::Relaxed);
        }
    }

    /// The link `from → to`.
    pub fn link(&self, from: usize, to: usize) -> Link {
        link_of(&self.shared.lock().expect("proxy lock"), from, to)
    }

    /// Every link back up.
    pub fn heal(&self) {
        self.shared.lock().expect("proxy lock").links.clear();
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.shared.lock().expect("proxy lock").conns.len()
    }
}

impl Drop for Proxies {
    fn drop(&mut self) {
        for l in &self.listeners {
            l.abort();
        }
        self.shared.lock().expect("proxy lock").conns.clear();
    }
}

fn link_of(s: &Shared, from: usize, to: usize) -> Link {
    s.links.get(&(from, to)).copied().unwrap_or_default()
}

/// The link a connection from member id `from` to index `to` is under now
/// (`Up` while the caller is unknown).
fn current(shared: &Mutex<Shared>, from: u64, to: usize) -> Link {
    let s = shared.lock().expect("proxy lock");
    match s.ids.get(&from) {
        Some(&f) => link_of(&s, f, to),
        None => Link::Up,
    }
}

async fn handle(
    mut sock: TcpStream,
    to: usize,
    backend: std::net::SocketAddr,
    id: u64,
    shared: Arc<Mutex<Shared>>,
    counters: Arc<Counters>,
) {
    let mut first = [0u8; HELLO_BYTES];
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, sock.read_exact(&mut first)).await {
        Ok(Ok(_)) => match Hello::parse(&first) {
            Ok(h) => h,
            Err(_) => {
                counters.bad_hello.fetch_add(1, Ordering::Relaxed);
                return;
            }
        },
        _ => {
            counters.bad_hello.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let (cancel, mut cancelled) = oneshot::channel();
    {
        let mut s = shared.lock().expect("proxy lock");
        if hello.to != 0 {
            s.ids.entry(hello.to).or_insert(to);
        }
        let down = s
            .ids
            .get(&hello.from)
            .is_some_and(|&f| link_of(&s, f, to) == Link::Down);
        if down {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Registered before any byte goes to the member, so a cut that
        // comes while we dial the backend finds it.
        s.conns.insert(
            id,
            Conn {
                from: hello.from,
                to,
                _cancel: cancel,
            },
        );
    }
    counters.accepted.fetch_add(1, Ordering::Relaxed);
    let Ok(mut up) = TcpStream::connect(backend).await else {
        return;
    };
    let _ = sock.set_nodelay(true);
    let _ = up.set_nodelay(true);
    if up.write_all(&first).await.is_err() {
        return;
    }
    let (cr, cw) = sock.into_split();
    let (ur, uw) = up.into_split();
    let link = {
        let shared = shared.clone();
        move || current(&shared, hello.from, to)
    };
    // Either direction ending ends the connection: peer connections are
    // full duplex and never half-closed on purpose.
    tokio::select! {
        _ = pump(cr, uw, link.clone()) => {}
        _ = pump(ur, cw, link) => {}
        _ = &mut cancelled => {}
    }
}

/// Copy `r` to `w`, holding each chunk for the link's delay at read time.
/// A reader feeds a queue and a writer drains it, so delayed chunks
/// pipeline instead of serializing (a 100 ms delay adds 100 ms latency,
/// not 100 ms per chunk).
async fn pump(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    link: impl Fn() -> Link,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let at = match link() {
                        Link::Delay(d) => Instant::now() + d,
                        _ => Instant::now(),
                    };
                    if tx.send((at, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((at, bytes)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if w.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = w.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello_bytes(from: u64, to: u64) -> [u8; HELLO_BYTES] {
        let mut b = [0u8; HELLO_BYTES];
        b[..4].copy_from_slice(&33u32.to_le_bytes());
        b[4] = KIND_HELLO;
        b[5..13].copy_from_slice(&7u64.to_le_bytes());
        b[13..21].copy_from_slice(&0xc1u64.to_le_bytes());
        b[21..29].copy_from_slice(&from.to_le_bytes());
        b[29..37].copy_from_slice(&to.to_le_bytes());
        b
    }

    #[test]
    fn parses_a_hello_and_refuses_other_frames() {
        let b = hello_bytes(0xa, 0xb);
        assert_eq!(
            Hello::parse(&b),
            Ok(Hello {
                cluster_id: 0xc1,
                from: 0xa,
                to: 0xb
            })
        );
        let mut bad = b;
        bad[4] = 2;
        assert_eq!(Hello::parse(&bad), Err(HelloError::Kind(2)));
        let mut bad = b;
        bad[..4].copy_from_slice(&40u32.to_le_bytes());
        assert_eq!(Hello::parse(&bad), Err(HelloError::Length(40)));
    }

    /// An echo server standing in for a member's peer port: it answers
    /// every byte after the hello with the same byte.
    async fn echo() -> std::net::SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut h = [0u8; HELLO_BYTES];
                    if s.read_exact(&mut h).await.is_err() {
                        return;
                    }
                    let mut b = [0u8; 1024];
                    while let Ok(n) = s.read(&mut b).await {
                        if n == 0 || s.write_all(&b[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        a
    }

    async fn round_trip(s: &mut TcpStream) -> std::io::Result<Duration> {
        let t = Instant::now();
        s.write_all(b"ping").await?;
        let mut b = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(3), s.read_exact(&mut b))
            .await
            .map_err(|_| std::io::Error::other("no echo in 3 s"))??;
        assert_eq!(&b, b"ping");
        Ok(t.elapsed())
    }

    #[tokio::test]
    async fn links_go_down_directed_and_delay() {
        let backend = echo().await;
        // Two "members": index 0 (id 0xa) and 1 (id 0xb), both echo.
        let p = Proxies::start(&[backend, backend]).await.unwrap();
        p.set_ids([(0xa, 0), (0xb, 1)]);

        // a → b: forwarded.
        let mut ab = TcpStream::connect(p.addr(1)).await.unwrap();
        ab.write_all(&hello_bytes(0xa, 0xb)).await.unwrap();
        round_trip(&mut ab).await.unwrap();
        let mut ba = TcpStream::connect(p.addr(0)).await.unwrap();
        ba.write_all(&hello_bytes(0xb, 0xa)).await.unwrap();
        round_trip(&mut ba).await.unwrap();

        // Directed cut a → b: a's open connection dies, a new one is
        // refused, b → a still works.
        p.set_link(0, 1, Link::Down);
        assert!(round_trip(&mut ab).await.is_err(), "cut connection echoed");
        let mut ab2 = TcpStream::connect(p.addr(1)).await.unwrap();
        ab2.write_all(&hello_bytes(0xa, 0xb)).await.unwrap();
        assert!(round_trip(&mut ab2).await.is_err(), "refused link echoed");
        round_trip(&mut ba).await.unwrap();
        assert_eq!(p.link(1, 0), Link::Up);

        // Healed, then delayed by 150 ms: the round trip takes two
        // crossings of the proxy, each held 150 ms.
        p.heal();
        let mut ab3 = TcpStream::connect(p.addr(1)).await.unwrap();
        ab3.write_all(&hello_bytes(0xa, 0xb)).await.unwrap();
        let fast = round_trip(&mut ab3).await.unwrap();
        assert!(fast < Duration::from_millis(100), "undelayed took {fast:?}");
        p.set_link(0, 1, Link::Delay(Duration::from_millis(150)));
        let slow = round_trip(&mut ab3).await.unwrap();
        assert!(slow >= Duration::from_millis(300), "delayed took {slow:?}");
        assert!(p.counters().refused.load(Ordering::Relaxed) >= 1);
        assert!(p.counters().cut.load(Ordering::Relaxed) >= 1);
    }

    #[tokio::test]
    async fn a_bad_first_frame_is_closed_and_counted() {
        let backend = echo().await;
        let p = Proxies::start(&[backend]).await.unwrap();
        let mut s = TcpStream::connect(p.addr(0)).await.unwrap();
        let mut b = hello_bytes(1, 2);
        b[4] = 9;
        s.write_all(&b).await.unwrap();
        assert!(round_trip(&mut s).await.is_err());
        assert_eq!(p.counters().bad_hello.load(Ordering::Relaxed), 1);
    }
}
