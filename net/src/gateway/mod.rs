//! The HTTP/JSON gateway: etcd's `/v3/...` endpoints over the same tonic
//! service impls that serve gRPC, plus `/health`, `/livez`, `/readyz`
//! (`probe`), `/version` and `/metrics`.
//!
//! etcd 3.5 runs grpc-gateway in front of its own gRPC server; we call the
//! service traits directly (no loopback connection) and keep its wire
//! behaviour, checked against etcd 3.5.1:
//! - `POST` only; the body is one request message in the proto3 JSON
//!   mapping (`json`), an empty body is the empty message;
//! - a unary answer is `200` with the response message; an error is the
//!   status mapped from the gRPC code with `{"error","code","message"}`
//!   (`error`);
//! - `/v3/watch` and `/v3/lease/keepalive` take one or more concatenated
//!   request objects and answer with newline-separated `{"result":...}`
//!   lines (`stream`); `/v3beta` and `/v3alpha` are accepted as aliases.
//!
//! A gateway call is counted in `/metrics` under its gRPC method, as it
//! would be in etcd, where the gateway is a gRPC client of the server.

pub(crate) mod access;
mod conn;
pub(crate) mod error;
mod json;
mod port;
mod probe;
mod stream;

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::{Code, Status};

use crate::metrics::Metrics;
use crate::pb::etcdserverpb::auth_server::Auth;
use crate::pb::etcdserverpb::cluster_server::Cluster;
use crate::pb::etcdserverpb::kv_server::Kv;
use crate::pb::etcdserverpb::lease_server::Lease;
use crate::pb::etcdserverpb::maintenance_server::Maintenance;
use crate::pb::etcdserverpb::watch_server::Watch;
use crate::pb::v3electionpb::election_server::Election;
use crate::pb::v3lockpb::lock_server::Lock;

pub use access::AccessControl;
pub use conn::{ClientConn, ConnRead, ConnWrite, Prefixed};
pub use port::{
    FastHandler, H2Handler, client_router, h2_handler, serve_client, serve_client_tls,
    serve_client_with_fast,
};
pub use probe::{Check, CheckFuture};

/// The API prefixes etcd's gateways have used: `/v3` (3.4+), `/v3beta`
/// (3.3, still served by 3.5), `/v3alpha` (3.2).
const PREFIXES: [&str; 3] = ["/v3", "/v3beta", "/v3alpha"];

/// The largest request body read. etcd caps a request at 1.5 MiB
/// (`--max-request-bytes`); base64 and JSON quoting grow that by about a
/// third, so 4 MiB leaves room without letting a client hold much memory.
const MAX_BODY: usize = 4 << 20;

/// The versions `/version` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    /// The etcd server version we are compatible with (`etcdserver`), e.g.
    /// `3.5.1`.
    pub server: String,
    /// The cluster version (`etcdcluster`), e.g. `3.5.0`.
    pub cluster: String,
}

/// A health probe for `/health`: `Ok` is healthy, `Err(reason)` answers 503
/// with the reason, as etcd does (e.g. `"RAFT NO LEADER"`).
pub type HealthCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Builds the gateway's axum router. Add the services the node has; the
/// routes of a missing service answer 404, as unknown paths do.
///
/// ```ignore
/// let gw = Gateway::new(versions, metrics.clone())
///     .kv(kv.clone())
///     .watch(watch.clone())
///     .into_router();
/// ```
pub struct Gateway {
    router: Router,
    versions: Versions,
    metrics: Metrics,
    health: Option<HealthCheck>,
    /// `/livez`'s and `/readyz`'s checks.
    livez: Vec<Check>,
    readyz: Vec<Check>,
    /// `--cors` / `--host-whitelist`, and whether the listener is TLS.
    access: Option<(Arc<AccessControl>, bool)>,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("versions", &self.versions)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway with `/health` (always healthy until [`Gateway::health`]
    /// sets a probe), `/version` and `/metrics`.
    pub fn new(versions: Versions, metrics: Metrics) -> Self {
        Self {
            router: Router::new(),
            versions,
            metrics,
            health: None,
            livez: Vec::new(),
            readyz: Vec::new(),
            access: None,
        }
    }

    /// etcd's access control on these routes (see `access`): CORS
    /// headers and, on a plaintext listener (`tls` false), the host
    /// whitelist.
    #[must_use]
    pub fn access(mut self, rules: Arc<AccessControl>, tls: bool) -> Self {
        self.access = Some((rules, tls));
        self
    }

    /// The probe behind `/health`.
    #[must_use]
    pub fn health(mut self, check: HealthCheck) -> Self {
        self.health = Some(check);
        self
    }

    /// The checks of `/livez` and `/readyz` (see `probe`); without them
    /// both answer `ok` while the process serves.
    #[must_use]
    pub fn probes(mut self, livez: Vec<Check>, readyz: Vec<Check>) -> Self {
        self.livez = livez;
        self.readyz = readyz;
        self
    }

    /// `/v3/kv/{range,put,deleterange,txn,compaction}`.
    #[must_use]
    pub fn kv<K: Kv>(self, kv: Arc<K>) -> Self {
        let (a, b, c, d, e) = (kv.clone(), kv.clone(), kv.clone(), kv.clone(), kv);
        self.unary(&["/kv/range"], "/etcdserverpb.KV/Range", move |r| {
            let s = a.clone();
            async move { s.range(r).await }
        })
        .unary(&["/kv/put"], "/etcdserverpb.KV/Put", move |r| {
            let s = b.clone();
            async move { s.put(r).await }
        })
        .unary(
            &["/kv/deleterange"],
            "/etcdserverpb.KV/DeleteRange",
            move |r| {
                let s = c.clone();
                async move { s.delete_range(r).await }
            },
        )
        .unary(&["/kv/txn"], "/etcdserverpb.KV/Txn", move |r| {
            let s = d.clone();
            async move { s.txn(r).await }
        })
        .unary(&["/kv/compaction"], "/etcdserverpb.KV/Compact", move |r| {
            let s = e.clone();
            async move { s.compact(r).await }
        })
    }

    /// `/v3/watch`: the watch stream as `{"result":...}` lines. The request
    /// side stays open until the client goes away, so watches outlive the
    /// request body (etcd keeps them too).
    #[must_use]
    pub fn watch<W: Watch>(self, watch: Arc<W>) -> Self {
        self.streaming(
            &["/watch"],
            "/etcdserverpb.Watch/Watch",
            stream::RequestEnd::KeepOpen,
            move |r| {
                let s = watch.clone();
                async move { s.watch(r).await }
            },
        )
    }

    /// `/v3/lease/{grant,revoke,keepalive,timetolive,leases}` (and etcd's
    /// `/v3/kv/lease/...` aliases for the last three but keepalive).
    #[must_use]
    pub fn lease<L: Lease>(self, lease: Arc<L>) -> Self {
        let (a, b, c, d, e) = (
            lease.clone(),
            lease.clone(),
            lease.clone(),
            lease.clone(),
            lease,
        );
        self.unary(
            &["/lease/grant"],
            "/etcdserverpb.Lease/LeaseGrant",
            move |r| {
                let s = a.clone();
                async move { s.lease_grant(r).await }
            },
        )
        .unary(
            &["/lease/revoke", "/kv/lease/revoke"],
            "/etcdserverpb.Lease/LeaseRevoke",
            move |r| {
                let s = b.clone();
                async move { s.lease_revoke(r).await }
            },
        )
        .unary(
            &["/lease/timetolive", "/kv/lease/timetolive"],
            "/etcdserverpb.Lease/LeaseTimeToLive",
            move |r| {
                let s = c.clone();
                async move { s.lease_time_to_live(r).await }
            },
        )
        .unary(
            &["/lease/leases", "/kv/lease/leases"],
            "/etcdserverpb.Lease/LeaseLeases",
            move |r| {
                let s = d.clone();
                async move { s.lease_leases(r).await }
            },
        )
        .streaming(
            &["/lease/keepalive"],
            "/etcdserverpb.Lease/LeaseKeepAlive",
            stream::RequestEnd::OneAnswerEach,
            move |r| {
                let s = e.clone();
                async move { s.lease_keep_alive(r).await }
            },
        )
    }

    /// `/v3/maintenance/{alarm,status,defragment,hash,snapshot,
    /// transfer-leadership,downgrade}`.
    #[must_use]
    pub fn maintenance<M: Maintenance>(self, m: Arc<M>) -> Self {
        let (a, b, c, d, e, f, g) = (
            m.clone(),
            m.clone(),
            m.clone(),
            m.clone(),
            m.clone(),
            m.clone(),
            m,
        );
        self.unary(
            &["/maintenance/alarm"],
            "/etcdserverpb.Maintenance/Alarm",
            move |r| {
                let s = a.clone();
                async move { s.alarm(r).await }
            },
        )
        .unary(
            &["/maintenance/status"],
            "/etcdserverpb.Maintenance/Status",
            move |r| {
                let s = b.clone();
                async move { s.status(r).await }
            },
        )
        .unary(
            &["/maintenance/defragment"],
            "/etcdserverpb.Maintenance/Defragment",
            move |r| {
                let s = c.clone();
                async move { s.defragment(r).await }
            },
        )
        // etcd's proto maps both Hash and HashKV to this path; its gateway
        // serves Hash, and so do we.
        .unary(
            &["/maintenance/hash"],
            "/etcdserverpb.Maintenance/Hash",
            move |r| {
                let s = d.clone();
                async move { s.hash(r).await }
            },
        )
        .unary(
            &["/maintenance/transfer-leadership"],
            "/etcdserverpb.Maintenance/MoveLeader",
            move |r| {
                let s = e.clone();
                async move { s.move_leader(r).await }
            },
        )
        .unary(
            &["/maintenance/downgrade"],
            "/etcdserverpb.Maintenance/Downgrade",
            move |r| {
                let s = f.clone();
                async move { s.downgrade(r).await }
            },
        )
        .server_streaming(
            &["/maintenance/snapshot"],
            "/etcdserverpb.Maintenance/Snapshot",
            move |r| {
                let s = g.clone();
                async move { s.snapshot(r).await }
            },
        )
    }

    /// `/v3/cluster/member/{add,remove,update,list,promote}`.
    #[must_use]
    pub fn cluster<C: Cluster>(self, cluster: Arc<C>) -> Self {
        let (a, b, c, d, e) = (
            cluster.clone(),
            cluster.clone(),
            cluster.clone(),
            cluster.clone(),
            cluster,
        );
        self.unary(
            &["/cluster/member/add"],
            "/etcdserverpb.Cluster/MemberAdd",
            move |r| {
                let s = a.clone();
                async move { s.member_add(r).await }
            },
        )
        .unary(
            &["/cluster/member/remove"],
            "/etcdserverpb.Cluster/MemberRemove",
            move |r| {
                let s = b.clone();
                async move { s.member_remove(r).await }
            },
        )
        .unary(
            &["/cluster/member/update"],
            "/etcdserverpb.Cluster/MemberUpdate",
            move |r| {
                let s = c.clone();
                async move { s.member_update(r).await }
            },
        )
        .unary(
            &["/cluster/member/list"],
            "/etcdserverpb.Cluster/MemberList",
            move |r| {
                let s = d.clone();
                async move { s.member_list(r).await }
            },
        )
        .unary(
            &["/cluster/member/promote"],
            "/etcdserverpb.Cluster/MemberPromote",
            move |r| {
                let s = e.clone();
                async move { s.member_promote(r).await }
            },
        )
    }

    /// `/v3/auth/{enable,disable,status,authenticate}`,
    /// `/v3/auth/user/{add,get,list,delete,changepw,grant,revoke}` and
    /// `/v3/auth/role/{add,get,list,delete,grant,revoke}`.
    #[must_use]
    pub fn auth<A: Auth>(self, auth: Arc<A>) -> Self {
        macro_rules! routes {
            ($gw:expr, $($path:literal => $method:literal $call:ident,)*) => {
                $gw$(.unary(&[$path], concat!("/etcdserverpb.Auth/", $method), {
                    let a = auth.clone();
                    move |r| {
                        let s = a.clone();
                        async move { s.$call(r).await }
                    }
                }))*
            };
        }
        routes!(self,
            "/auth/enable" => "AuthEnable" auth_enable,
            "/auth/disable" => "AuthDisable" auth_disable,
            "/auth/status" => "AuthStatus" auth_status,
            "/auth/authenticate" => "Authenticate" authenticate,
            "/auth/user/add" => "UserAdd" user_add,
            "/auth/user/get" => "UserGet" user_get,
            "/auth/user/list" => "UserList" user_list,
            "/auth/user/delete" => "UserDelete" user_delete,
            "/auth/user/changepw" => "UserChangePassword" user_change_password,
            "/auth/user/grant" => "UserGrantRole" user_grant_role,
            "/auth/user/revoke" => "UserRevokeRole" user_revoke_role,
            "/auth/role/add" => "RoleAdd" role_add,
            "/auth/role/get" => "RoleGet" role_get,
            "/auth/role/list" => "RoleList" role_list,
            "/auth/role/delete" => "RoleDelete" role_delete,
            "/auth/role/grant" => "RoleGrantPermission" role_grant_permission,
            "/auth/role/revoke" => "RoleRevokePermission" role_revoke_permission,
        )
    }

    /// `/v3/lock/{lock,unlock}`. A lock request waits as long as the lock
    /// is held elsewhere; a client that goes away while waiting withdraws
    /// it (the request's future is dropped, as a gRPC cancel does).
    #[must_use]
    pub fn lock<L: Lock>(self, lock: Arc<L>) -> Self {
        let (a, b) = (lock.clone(), lock);
        self.unary(&["/lock/lock"], "/v3lockpb.Lock/Lock", move |r| {
            let s = a.clone();
            async move { s.lock(r).await }
        })
        .unary(&["/lock/unlock"], "/v3lockpb.Lock/Unlock", move |r| {
            let s = b.clone();
            async move { s.unlock(r).await }
        })
    }

    /// `/v3/election/{campaign,proclaim,leader,resign}` and the
    /// `/v3/election/observe` stream (`{"result":...}` lines).
    #[must_use]
    pub fn election<E: Election>(self, election: Arc<E>) -> Self {
        let (a, b, c, d, e) = (
            election.clone(),
            election.clone(),
            election.clone(),
            election.clone(),
            election,
        );
        self.unary(
            &["/election/campaign"],
            "/v3electionpb.Election/Campaign",
            move |r| {
                let s = a.clone();
                async move { s.campaign(r).await }
            },
        )
        .unary(
            &["/election/proclaim"],
            "/v3electionpb.Election/Proclaim",
            move |r| {
                let s = b.clone();
                async move { s.proclaim(r).await }
            },
        )
        .unary(
            &["/election/leader"],
            "/v3electionpb.Election/Leader",
            move |r| {
                let s = c.clone();
                async move { s.leader(r).await }
            },
        )
        .unary(
            &["/election/resign"],
            "/v3electionpb.Election/Resign",
            move |r| {
                let s = d.clone();
                async move { s.resign(r).await }
            },
        )
        .server_streaming(
            &["/election/observe"],
            "/v3electionpb.Election/Observe",
            move |r| {
                let s = e.clone();
                async move { s.observe(r).await }
            },
        )
    }

    /// The finished router: the service routes plus `/health`, `/version`
    /// and `/metrics`.
    pub fn into_router(self) -> Router {
        let health = self.health;
        let version = format!(
            r#"{{"etcdserver":{},"etcdcluster":{}}}"#,
            serde_json::Value::from(self.versions.server),
            serde_json::Value::from(self.versions.cluster),
        );
        let metrics = self.metrics;
        let access = self.access;
        let health_metrics = metrics.clone();
        let router = probe::routes(self.router, "/livez", self.livez);
        let router = probe::routes(router, "/readyz", self.readyz);
        let router = router
            .route(
                "/health",
                get(move || {
                    let health = health.clone();
                    let metrics = health_metrics.clone();
                    async move { health_response(health.as_deref(), &metrics) }
                }),
            )
            .route(
                "/version",
                get(move || {
                    let body = version.clone();
                    async move { json_response(StatusCode::OK, Bytes::from(body), false) }
                }),
            )
            .route(
                "/metrics",
                get(move || {
                    let metrics = metrics.clone();
                    async move {
                        let mut r = http::Response::new(Body::from(metrics.render()));
                        r.headers_mut().insert(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static(Metrics::CONTENT_TYPE),
                        );
                        r
                    }
                }),
            );
        match access {
            Some((rules, tls)) => router.layer(axum::middleware::from_fn(move |req, next| {
                access::check(rules.clone(), tls, req, next)
            })),
            None => router,
        }
    }

    fn route_all(mut self, paths: &[&str], route: axum::routing::MethodRouter) -> Self {
        for prefix in PREFIXES {
            for path in paths {
                self.router = self.router.route(&format!("{prefix}{path}"), route.clone());
            }
        }
        self
    }

    fn unary<Req, Resp, F, Fut>(self, paths: &[&str], grpc_path: &str, call: F) -> Self
    where
        Req: DeserializeOwned + Default + prost::Message + Send + 'static,
        Resp: Serialize + prost::Message + Send + 'static,
        F: Fn(tonic::Request<Req>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<tonic::Response<Resp>, Status>> + Send + 'static,
    {
        let counted = Counted::new(&self.metrics, grpc_path);
        let route = post(move |req: http::Request<Body>| {
            let call = call.clone();
            let counted = counted.clone();
            async move {
                let (parts, msg) = match read_request::<Req>(req).await {
                    Ok(m) => m,
                    Err(e) => return error::error_with(Code::InvalidArgument, &e),
                };
                let timer = counted.start();
                // Counted as the gRPC messages they stand for (etcd's
                // gateway is a gRPC client of its server).
                counted
                    .metrics
                    .message_received(counted.index, msg.encoded_len());
                let res = call(with_metadata(msg, &parts)).await;
                if let Ok(r) = &res {
                    counted
                        .metrics
                        .message_sent(counted.index, r.get_ref().encoded_len());
                }
                let (code, resp) = match res {
                    Ok(r) => match serde_json::to_vec(r.get_ref()) {
                        Ok(body) => (Code::Ok, json_response(StatusCode::OK, body.into(), true)),
                        Err(e) => {
                            let st = Status::internal(e.to_string());
                            (st.code(), error::error_response(&st))
                        }
                    },
                    Err(st) => (st.code(), error::error_response(&st)),
                };
                if let Some(t) = timer {
                    t.finish(code);
                }
                resp
            }
        });
        self.route_all(paths, route)
    }
}

/// A method's place in the metrics, looked up once when its route is added.
#[derive(Clone)]
struct Counted {
    metrics: Metrics,
    index: Option<usize>,
}

impl Counted {
    fn new(metrics: &Metrics, grpc_path: &str) -> Self {
        Self {
            metrics: metrics.clone(),
            index: metrics.method_index(grpc_path),
        }
    }

    fn start(&self) -> Option<crate::metrics::CallTimer> {
        // The gateway's calls carry no client API version (etcd's gateway
        // dials the server without one).
        self.index.map(|i| self.metrics.start_call(i, None))
    }
}

/// Reads the whole body (up to [`MAX_BODY`]).
async fn read_body(body: Body) -> Result<Bytes, String> {
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|e| e.to_string())
}

/// One request message from the body; an empty body is the empty message,
/// as in etcd (`{}` and `` both reach the server's checks).
async fn read_request<Req: DeserializeOwned + Default>(
    req: http::Request<Body>,
) -> Result<(http::request::Parts, Req), String> {
    let (parts, body) = req.into_parts();
    let bytes = read_body(body).await?;
    if bytes.trim_ascii().is_empty() {
        return Ok((parts, Req::default()));
    }
    let msg = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    Ok((parts, msg))
}

/// Wraps a message in a tonic request carrying the HTTP headers that
/// grpc-gateway forwards as metadata: `Authorization`, and every
/// `Grpc-Metadata-<key>` as `<key>`; and the connection's
/// [`crate::ConnInfo`] (its client certificate), as gRPC requests have it.
pub(crate) fn with_metadata<T>(msg: T, parts: &http::request::Parts) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Some(info) = parts.extensions.get::<crate::ConnInfo>() {
        // etcd's gateway is a gRPC client of its own server, and etcd
        // ignores the certificate name on gateway requests: a JSON caller
        // names its user with a token only.
        req.extensions_mut().insert(crate::ConnInfo {
            remote: info.remote,
            identity: None,
        });
    }
    for (name, value) in &parts.headers {
        let key = if name == header::AUTHORIZATION {
            Some(name.as_str())
        } else {
            name.as_str().strip_prefix("grpc-metadata-")
        };
        let Some(key) = key else { continue };
        if let (Ok(k), Ok(v)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            value.to_str().map(MetadataValue::try_from),
        ) && let Ok(v) = v
        {
            req.metadata_mut().insert(k, v);
        }
    }
    req
}

/// A JSON response; successful calls also carry the header etcd's gateway
/// copies from the gRPC response.
fn json_response(status: StatusCode, body: Bytes, from_grpc: bool) -> http::Response<Body> {
    let mut r = http::Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if from_grpc {
        h.insert(
            "grpc-metadata-content-type",
            HeaderValue::from_static("application/grpc"),
        );
    }
    r
}

/// etcd's `/health`: `{"health":"true","reason":""}` as text/plain, 503
/// with the reason when unhealthy.
/// Each answer counts in `etcd_server_health_{success,failures}`.
fn health_response(
    check: Option<&(dyn Fn() -> Result<(), String> + Send + Sync)>,
    metrics: &Metrics,
) -> http::Response<Body> {
    let (status, healthy, reason) = match check.map_or(Ok(()), |f| f()) {
        Ok(()) => (StatusCode::OK, "true", String::new()),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, "false", reason),
    };
    metrics.health_checked(status == StatusCode::OK);
    let body = format!(
        r#"{{"health":"{healthy}","reason":{}}}"#,
        serde_json::Value::from(reason)
    );
    let mut r = http::Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
