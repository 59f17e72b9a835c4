//! An async Rust client for ferrocd — and for any etcd v3 server.
//!
//! It speaks ferrocd's binary protocol ([`crate::fast`]) where the server
//! offers it and etcd's gRPC API everywhere else ([`Protocol`]), with the
//! same calls, messages (the `etcdserverpb` types of [`crate::pb`]) and
//! errors either way. Shaped after the `etcd-client` crate:
//!
//! ```no_run
//! use ferrocd_net::client::{Client, GetOptions, PutOptions};
//!
//! # async fn demo() -> Result<(), ferrocd_net::client::Error> {
//! let client = Client::connect(["127.0.0.1:2379"], None).await?;
//! client.put("foo", "bar", None).await?;
//! let resp = client.get("foo", None).await?;
//! assert_eq!(resp.kvs[0].value, b"bar");
//!
//! // Everything under a prefix, newest first, at most ten.
//! let page = client
//!     .get("/registry/", Some(GetOptions::new().with_prefix().with_limit(10)))
//!     .await?;
//! println!("{} of {} keys", page.kvs.len(), page.count);
//! # Ok(())
//! # }
//! ```
//!
//! - **Endpoints, pool and fail-over**: calls go to one member at a time,
//!   over a pool of connections to it ([`ConnectOptions::with_connections`],
//!   used in turn); when a connection fails the next call dials the next
//!   endpoint.
//! - **Retries only where safe**: a call whose request may have reached a
//!   server is resent only if it is idempotent (reads, status, lists —
//!   [`crate::fast::methods::Unary::IDEMPOTENT`]); writes are resent only
//!   when they certainly never left this process, or when a member refused
//!   them as not the leader (`etcdserver: not leader` / `no leader`: a
//!   ferrocd member answers these only when nothing of the request left
//!   it; once an attempt may have reached a leader it answers
//!   `etcdserver: request timed out` instead, which is not resent — the
//!   member's own retries carry one request id, so they take effect once).
//!   A timed-out write is unknown, not lost.
//! - **Leader forwarding**: members forward writes to the leader
//!   themselves; a member that answers `etcdserver: not leader` or
//!   `etcdserver: no leader` makes the client try the next endpoint.
//! - Helpers: [`Client::keep_lease_alive`] keeps a lease alive in the
//!   background; [`Client::watch_resuming`] is a watch that survives
//!   reconnects, resuming after the last revision it delivered.

mod error;
mod fast;
mod grpc;
mod options;
mod streams;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::Code;

pub use error::{Error, Result};
pub use options::{
    Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, SortOrder, SortTarget, Txn, TxnOp,
    WatchOptions, prefix_end,
};
pub use streams::{
    KeepAliveHandle, LeaseKeepAliveStream, LeaseKeeper, ObserveStream, ResumingWatch,
    SnapshotStream, WatchStream, Watcher,
};

use crate::fast::methods::{self as m, Unary};
use crate::pb::etcdserverpb as pb;
pub use crate::tls::ClientTls;

/// Which wire protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// ferrocd's binary protocol where the server answers its handshake,
    /// gRPC otherwise (an etcd).
    #[default]
    Auto,
    /// Only the binary protocol.
    Fast,
    /// Only gRPC.
    Grpc,
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    dial_timeout: Duration,
    timeout: Option<Duration>,
    protocol: Protocol,
    require_leader: bool,
    user: Option<(String, String)>,
    connections: usize,
    tls: Option<ClientTls>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            tls: None,
            connections: 1,
            dial_timeout: Duration::from_secs(2),
            timeout: None,
            protocol: Protocol::Auto,
            require_leader: false,
            user: None,
        }
    }
}

impl ConnectOptions {
    /// Defaults: 2 s dial timeout (etcdctl's), no call timeout, [`Protocol::Auto`].
    pub fn new() -> Self {
        Self::default()
    }
    /// Time allowed to connect to one endpoint.
    pub fn with_dial_timeout(mut self, t: Duration) -> Self {
        self.dial_timeout = t;
        self
    }
    /// Time allowed for each call, retries included.
    pub fn with_timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
    /// The wire protocol.
    pub fn with_protocol(mut self, p: Protocol) -> Self {
        self.protocol = p;
        self
    }
    /// Streams fail when the member has no leader (etcd's
    /// `WithRequireLeader`).
    pub fn with_require_leader(mut self, yes: bool) -> Self {
        self.require_leader = yes;
        self
    }
    /// Connections in the pool (default 1), all to the same member, used
    /// in turn. ferrocd serves each connection on one shard (one core):
    /// a busy client spreads its load over the member's cores with about
    /// one connection per core.
    pub fn with_connections(mut self, n: usize) -> Self {
        self.connections = n.max(1);
        self
    }
    /// Speak TLS (both protocols) to every endpoint but `http://` ones:
    /// trust `tls.ca` (the system's CAs without one), present
    /// `tls.cert`/`tls.key` to servers that verify clients (etcdctl's
    /// `--cacert --cert --key --insecure-skip-tls-verify`). Without this,
    /// only `https://` endpoints use TLS, trusting the system's CAs.
    pub fn with_tls(mut self, tls: ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }
    /// Authenticate as `user` (only needed when auth is enabled).
    pub fn with_user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.user = Some((user.into(), password.into()));
        self
    }
}

#[derive(Debug, Clone)]
enum Conn {
    Fast(fast::Conn),
    Grpc(grpc::Conn),
}

#[derive(Debug)]
struct State {
    /// Endpoint of the current (or next) connection.
    current: usize,
    /// The pool: `connections` connections to `endpoints[current]`.
    conn: Option<(Vec<Conn>, u64)>,
    generation: u64,
}

/// One endpoint: where, and whether to speak TLS there.
#[derive(Debug, Clone)]
struct Target {
    addr: String,
    tls: bool,
}

/// TLS client configs, built once per client (the fast protocol offers
/// no ALPN; gRPC asks for `h2`).
#[derive(Debug, Clone)]
pub(crate) struct Tls {
    pub(crate) opts: ClientTls,
    pub(crate) fast: Arc<rustls::ClientConfig>,
    pub(crate) grpc: Arc<rustls::ClientConfig>,
}

impl Tls {
    /// Connect TLS over `tcp` to `addr` (`host:port`).
    pub(crate) async fn connect(
        cfg: &Arc<rustls::ClientConfig>,
        opts: &ClientTls,
        addr: &str,
        tcp: tokio::net::TcpStream,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        let name = opts.server_name(host).map_err(std::io::Error::other)?;
        tokio_rustls::TlsConnector::from(cfg.clone())
            .connect(name, tcp)
            .await
    }
}

#[derive(Debug)]
struct Inner {
    endpoints: Vec<Target>,
    tls: Option<Tls>,
    opts: ConnectOptions,
    state: tokio::sync::Mutex<State>,
    token: Mutex<Option<String>>,
    /// Round-robin over the pool.
    next: AtomicUsize,
}

/// A client of a ferrocd or etcd cluster; cheap to clone, shares its
/// connection.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// `host:port` from an etcd-style endpoint (`http://host:port`,
/// `https://host:port`, `host:port`).
pub fn endpoint_addr(ep: &str) -> Result<String> {
    Ok(endpoint_target(ep, false)?.addr)
}

/// An endpoint's address, and whether to speak TLS there: `https://`
/// always, `http://` never, a bare `host:port` when the client has TLS
/// options (as etcdctl decides it).
fn endpoint_target(ep: &str, tls_configured: bool) -> Result<Target> {
    let (rest, tls) = if let Some(r) = ep.strip_prefix("http://") {
        (r, false)
    } else if let Some(r) = ep.strip_prefix("https://") {
        (r, true)
    } else if ep.starts_with("unix://") || ep.starts_with("unixs://") {
        return Err(Error::InvalidArgs(format!(
            "endpoint {ep}: unix sockets are not supported by this client"
        )));
    } else {
        (ep, tls_configured)
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || !rest.contains(':') {
        return Err(Error::InvalidArgs(format!(
            "endpoint {ep}: want host:port or http(s)://host:port"
        )));
    }
    Ok(Target {
        addr: rest.to_string(),
        tls,
    })
}

impl Client {
    /// Connect to the first reachable endpoint.
    pub async fn connect<E: AsRef<str>, S: AsRef<[E]>>(
        endpoints: S,
        options: Option<ConnectOptions>,
    ) -> Result<Client> {
        let opts = options.unwrap_or_default();
        let endpoints = endpoints
            .as_ref()
            .iter()
            .map(|e| endpoint_target(e.as_ref(), opts.tls.is_some()))
            .collect::<Result<Vec<_>>>()?;
        if endpoints.is_empty() {
            return Err(Error::InvalidArgs("no endpoints".into()));
        }
        let tls = if endpoints.iter().any(|t| t.tls) {
            let o = opts.tls.clone().unwrap_or_default();
            let bad = |e: crate::tls::TlsError| Error::InvalidArgs(e.to_string());
            Some(Tls {
                fast: o.client_config(&[]).map_err(bad)?,
                grpc: o.client_config(&[b"h2"]).map_err(bad)?,
                opts: o,
            })
        } else {
            None
        };
        let client = Client {
            inner: Arc::new(Inner {
                endpoints,
                tls,
                opts,
                state: tokio::sync::Mutex::new(State {
                    current: 0,
                    conn: None,
                    generation: 0,
                }),
                token: Mutex::new(None),
                next: AtomicUsize::new(0),
            }),
        };
        client.conn().await?;
        if let Some((user, password)) = client.inner.opts.user.clone() {
            let resp = client
                .call::<m::Authenticate>(pb::AuthenticateRequest {
                    name: user,
                    password,
                })
                .await?;
            *client.inner.token.lock().expect("token lock") = Some(resp.token);
            // Reconnect so the connection carries the token from its start.
            client.inner.state.lock().await.conn = None;
            client.conn().await?;
        }
        Ok(client)
    }

    /// The protocol of the current connection (`Fast` or `Grpc`).
    pub async fn protocol(&self) -> Result<Protocol> {
        Ok(match self.conn().await?.0 {
            Conn::Fast(_) => Protocol::Fast,
            Conn::Grpc(_) => Protocol::Grpc,
        })
    }

    /// The endpoint the client talks to now.
    pub async fn current_endpoint(&self) -> String {
        let st = self.inner.state.lock().await;
        self.inner.endpoints[st.current].addr.clone()
    }

    /// A connection of the pool (round-robin), dialing endpoints in turn
    /// when there is none.
    async fn conn(&self) -> Result<(Conn, u64)> {
        let mut st = self.inner.state.lock().await;
        if let Some((pool, g)) = &st.conn {
            let alive = pool.iter().all(|c| match c {
                Conn::Fast(f) => !f.is_closed(),
                Conn::Grpc(_) => true,
            });
            if alive {
                let i = self.inner.next.fetch_add(1, Ordering::Relaxed) % pool.len();
                return Ok((pool[i].clone(), *g));
            }
            st.conn = None;
            st.current = (st.current + 1) % self.inner.endpoints.len();
        }
        let mut errors = Vec::new();
        let n = self.inner.endpoints.len();
        for i in 0..n {
            let idx = (st.current + i) % n;
            let first = match self.dial(idx, None).await {
                Ok(c) => c,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            // The rest of the pool speaks what the first one found.
            let mut pool = vec![first.clone()];
            for _ in 1..self.inner.opts.connections {
                match self.dial(idx, Some(&first)).await {
                    Ok(c) => pool.push(c),
                    Err(e) => {
                        errors.push(e);
                        break;
                    }
                }
            }
            if pool.len() < self.inner.opts.connections {
                continue;
            }
            st.current = idx;
            st.generation += 1;
            st.conn = Some((pool, st.generation));
            return Ok((first, st.generation));
        }
        Err(Error::Connect(errors.join("; ")))
    }

    /// One connection to endpoint `idx`: the fast protocol where the
    /// options and the server allow it, gRPC otherwise; `like` pins the
    /// protocol to that connection's.
    async fn dial(&self, idx: usize, like: Option<&Conn>) -> std::result::Result<Conn, String> {
        let o = &self.inner.opts;
        let target = &self.inner.endpoints[idx];
        let addr = &target.addr;
        let tls = if target.tls {
            self.inner.tls.as_ref()
        } else {
            None
        };
        let token = self.inner.token.lock().expect("token lock").clone();
        let try_fast = match like {
            Some(Conn::Fast(_)) => true,
            Some(Conn::Grpc(_)) => false,
            None => o.protocol != Protocol::Grpc,
        };
        if try_fast {
            let flags = if o.require_leader {
                crate::fast::FLAG_REQUIRE_LEADER
            } else {
                0
            };
            match fast::Conn::dial(addr, tls, o.dial_timeout, flags, token.as_deref()).await {
                fast::Dial::Up(c) => return Ok(Conn::Fast(c)),
                fast::Dial::Down(e) => return Err(e),
                fast::Dial::NotFast if o.protocol == Protocol::Fast || like.is_some() => {
                    return Err(format!("{addr} does not speak the fast protocol"));
                }
                // An etcd: speak gRPC to it.
                fast::Dial::NotFast => {}
            }
        }
        let mut c = grpc::Conn::dial(addr, tls, o.dial_timeout, o.require_leader).await?;
        if let Some(t) = &token {
            c.set_token(t);
        }
        Ok(Conn::Grpc(c))
    }

    /// Forget connection `generation` (it failed); the next call dials the
    /// next endpoint.
    async fn drop_conn(&self, generation: u64) {
        let mut st = self.inner.state.lock().await;
        if st.conn.as_ref().is_some_and(|(_, g)| *g == generation) {
            st.conn = None;
            st.current = (st.current + 1) % self.inner.endpoints.len();
        }
    }

    /// Any unary RPC of etcd's API, by its [`crate::fast::methods`] row:
    /// the raw request and response messages.
    ///
    /// ```no_run
    /// # async fn demo(client: ferrocd_net::client::Client) -> Result<(), ferrocd_net::client::Error> {
    /// use ferrocd_net::fast::methods::Status;
    /// use ferrocd_net::pb::etcdserverpb::StatusRequest;
    /// let status = client.call::<Status>(StatusRequest {}).await?;
    /// println!("leader {:x}", status.leader);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn call<M: Unary>(&self, req: M::Req) -> Result<M::Resp> {
        match self.inner.opts.timeout {
            Some(t) => tokio::time::timeout(t, self.call_retrying::<M>(req))
                .await
                .unwrap_or(Err(Error::Timeout)),
            None => self.call_retrying::<M>(req).await,
        }
    }

    async fn call_retrying<M: Unary>(&self, req: M::Req) -> Result<M::Resp> {
        let n = self.inner.endpoints.len();
        let mut attempt = 0usize;
        loop {
            let (conn, generation) = self.conn().await?;
            let r = match &conn {
                Conn::Fast(c) => c.unary::<M>(&req).await,
                Conn::Grpc(c) => c.unary::<M>(req.clone()).await,
            };
            let e = match r {
                Ok(resp) => return Ok(resp),
                Err(e) => e,
            };
            let refused = e.error.code() == Code::Unavailable
                && matches!(
                    e.error.message().as_str(),
                    "etcdserver: not leader" | "etcdserver: no leader"
                );
            if e.broken || refused {
                self.drop_conn(generation).await;
            }
            let safe = !e.sent || refused || (M::IDEMPOTENT && e.error.code() == Code::Unavailable);
            attempt += 1;
            if !safe || attempt >= 2 * n.max(2) {
                return Err(e.error);
            }
            if attempt >= n {
                tokio::time::sleep(Duration::from_millis(100 * attempt as u64)).await;
            }
        }
    }

    // ----- KV -----

    /// Read `key` (or a range, see [`GetOptions`]).
    pub async fn get(
        &self,
        key: impl Into<Vec<u8>>,
        opts: Option<GetOptions>,
    ) -> Result<pb::RangeResponse> {
        self.call::<m::Range>(opts.unwrap_or_default().build(key.into()))
            .await
    }

    /// Write `key`.
    pub async fn put(
        &self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        opts: Option<PutOptions>,
    ) -> Result<pb::PutResponse> {
        self.call::<m::Put>(opts.unwrap_or_default().build(key.into(), value.into()))
            .await
    }

    /// Delete `key` (or a range, see [`DeleteOptions`]).
    pub async fn delete(
        &self,
        key: impl Into<Vec<u8>>,
        opts: Option<DeleteOptions>,
    ) -> Result<pb::DeleteRangeResponse> {
        self.call::<m::DeleteRange>(opts.unwrap_or_default().build(key.into()))
            .await
    }

    /// A transaction.
    ///
    /// ```no_run
    /// # async fn demo(client: ferrocd_net::client::Client) -> Result<(), ferrocd_net::client::Error> {
    /// use ferrocd_net::client::{Compare, CompareOp, Txn, TxnOp};
    /// // Create "lock" only if nobody has.
    /// let resp = client
    ///     .txn(
    ///         Txn::new()
    ///             .when([Compare::create_revision("lock", CompareOp::Equal, 0)])
    ///             .and_then([TxnOp::put("lock", "me", None)])
    ///             .or_else([TxnOp::get("lock", None)]),
    ///     )
    ///     .await?;
    /// println!("won: {}", resp.succeeded);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn txn(&self, txn: Txn) -> Result<pb::TxnResponse> {
        self.call::<m::Txn>(txn.into()).await
    }

    /// Compact history below `revision`.
    pub async fn compact(&self, revision: i64, physical: bool) -> Result<pb::CompactionResponse> {
        self.call::<m::Compact>(pb::CompactionRequest { revision, physical })
            .await
    }

    // ----- Leases -----

    /// Grant a lease of `ttl` seconds (`id` 0: the server picks one).
    pub async fn lease_grant(&self, ttl: i64, id: i64) -> Result<pb::LeaseGrantResponse> {
        self.call::<m::LeaseGrant>(pb::LeaseGrantRequest { ttl, id })
            .await
    }

    /// Revoke a lease and delete its keys.
    pub async fn lease_revoke(&self, id: i64) -> Result<pb::LeaseRevokeResponse> {
        self.call::<m::LeaseRevoke>(pb::LeaseRevokeRequest { id })
            .await
    }

    /// A lease's remaining time (and its keys, with `keys`).
    pub async fn lease_time_to_live(
        &self,
        id: i64,
        keys: bool,
    ) -> Result<pb::LeaseTimeToLiveResponse> {
        self.call::<m::LeaseTimeToLive>(pb::LeaseTimeToLiveRequest { id, keys })
            .await
    }

    /// Every lease.
    pub async fn leases(&self) -> Result<pb::LeaseLeasesResponse> {
        self.call::<m::LeaseLeases>(pb::LeaseLeasesRequest {}).await
    }

    // ----- Cluster -----

    /// The members.
    pub async fn member_list(&self) -> Result<pb::MemberListResponse> {
        self.call::<m::MemberList>(pb::MemberListRequest {
            linearizable: false,
        })
        .await
    }

    /// Add a member (or a learner).
    pub async fn member_add(
        &self,
        peer_urls: Vec<String>,
        learner: bool,
    ) -> Result<pb::MemberAddResponse> {
        self.call::<m::MemberAdd>(pb::MemberAddRequest {
            peer_ur_ls: peer_urls,
            is_learner: learner,
        })
        .await
    }

    /// Remove a member.
    pub async fn member_remove(&self, id: u64) -> Result<pb::MemberRemoveResponse> {
        self.call::<m::MemberRemove>(pb::MemberRemoveRequest { id })
            .await
    }

    /// Change a member's peer URLs.
    pub async fn member_update(
        &self,
        id: u64,
        peer_urls: Vec<String>,
    ) -> Result<pb::MemberUpdateResponse> {
        self.call::<m::MemberUpdate>(pb::MemberUpdateRequest {
            id,
            peer_ur_ls: peer_urls,
        })
        .await
    }

    /// Promote a learner.
    pub async fn member_promote(&self, id: u64) -> Result<pb::MemberPromoteResponse> {
        self.call::<m::MemberPromote>(pb::MemberPromoteRequest { id })
            .await
    }

    // ----- Maintenance -----

    /// The connected member's status.
    pub async fn status(&self) -> Result<pb::StatusResponse> {
        self.call::<m::Status>(pb::StatusRequest {}).await
    }

    /// Hash of the key-value store at `revision` (0: current).
    pub async fn hash_kv(&self, revision: i64) -> Result<pb::HashKvResponse> {
        self.call::<m::HashKv>(pb::HashKvRequest { revision }).await
    }

    /// Hand leadership to member `target`; must reach the leader.
    pub async fn move_leader(&self, target: u64) -> Result<pb::MoveLeaderResponse> {
        self.call::<m::MoveLeader>(pb::MoveLeaderRequest { target_id: target })
            .await
    }

    /// List, activate or deactivate alarms.
    pub async fn alarm(&self, req: pb::AlarmRequest) -> Result<pb::AlarmResponse> {
        self.call::<m::Alarm>(req).await
    }

    /// Defragment the connected member's backend.
    pub async fn defragment(&self) -> Result<pb::DefragmentResponse> {
        self.call::<m::Defragment>(pb::DefragmentRequest {}).await
    }

    /// etcd's Downgrade: `action` VALIDATE (0), ENABLE (1) or CANCEL (2)
    /// with a target `version` (`major.minor`).
    pub async fn downgrade(&self, action: i32, version: &str) -> Result<pb::DowngradeResponse> {
        self.call::<m::Downgrade>(pb::DowngradeRequest {
            action,
            version: version.to_string(),
        })
        .await
    }

    // ----- Lock and election (server-side recipes) -----

    /// Acquire lock `name` with `lease` (0: the server grants a 60 s lease
    /// nobody keeps alive); waits while others hold it. Dropping the
    /// future withdraws the request (the server deletes the waiter's key).
    /// The answer's `key` is what [`Client::unlock`] takes.
    ///
    /// ```no_run
    /// # async fn demo(client: ferrocd_net::client::Client) -> Result<(), ferrocd_net::client::Error> {
    /// let lease = client.lease_grant(10, 0).await?.id;
    /// let held = client.lock("jobs", lease).await?;
    /// // ... critical section ...
    /// client.unlock(held.key).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn lock(
        &self,
        name: impl Into<Vec<u8>>,
        lease: i64,
    ) -> Result<crate::pb::v3lockpb::LockResponse> {
        self.call::<m::Lock>(crate::pb::v3lockpb::LockRequest {
            name: name.into(),
            lease,
        })
        .await
    }

    /// Release a lock: delete the key [`Client::lock`] returned.
    pub async fn unlock(
        &self,
        key: impl Into<Vec<u8>>,
    ) -> Result<crate::pb::v3lockpb::UnlockResponse> {
        self.call::<m::Unlock>(crate::pb::v3lockpb::UnlockRequest { key: key.into() })
            .await
    }

    /// Campaign in election `name` with `lease` and `value`; resolves once
    /// leader. Dropping the future withdraws the candidacy.
    pub async fn campaign(
        &self,
        name: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        lease: i64,
    ) -> Result<el::CampaignResponse> {
        self.call::<m::Campaign>(el::CampaignRequest {
            name: name.into(),
            lease,
            value: value.into(),
        })
        .await
    }

    /// As leader, set the election's value (`election: not leader` if no
    /// longer).
    pub async fn proclaim(
        &self,
        leader: el::LeaderKey,
        value: impl Into<Vec<u8>>,
    ) -> Result<el::ProclaimResponse> {
        self.call::<m::Proclaim>(el::ProclaimRequest {
            leader: Some(leader),
            value: value.into(),
        })
        .await
    }

    /// The election's leader (`election: no leader` if none).
    pub async fn leader(&self, name: impl Into<Vec<u8>>) -> Result<el::LeaderResponse> {
        self.call::<m::Leader>(el::LeaderRequest { name: name.into() })
            .await
    }

    /// Give up leadership (no error if no longer leader).
    pub async fn resign(&self, leader: el::LeaderKey) -> Result<el::ResignResponse> {
        self.call::<m::Resign>(el::ResignRequest {
            leader: Some(leader),
        })
        .await
    }
}

use crate::pb::v3electionpb as el;
