//! ferrocd-net: the wire.
//!
//! Will hold the binary protocol (codec, server loop, Rust client), the
//! etcd-compatible gRPC shim, the HTTP/JSON gateway and the peer transport
//! (see `DESIGN.md`).
//!
//! What exists now: [`pb`], the etcd v3 gRPC API (packages `etcdserverpb`,
//! `mvccpb`, `authpb`, `v3lockpb`, `v3electionpb`) generated from our own
//! `.proto` files in `net/proto/`, with tonic clients and server traits.
//! The clients talk to a real etcd too (`tests/etcd_wire.rs`).
//!
//! [`KvShim`] serves etcd's KV service over any [`KvService`] (the node
//! implements it; a store-backed test double drives it in
//! `tests/kv_shim.rs`), with etcd's request checks.
//!
//! [`WatchShim`], [`LeaseShim`] and [`ClusterShim`] (Maintenance.Status,
//! Cluster.MemberList) serve the stream and lease APIs over
//! [`WatchService`], [`LeaseService`] and [`ClusterService`].
//!
//! [`EtcdError`]: etcd's client-visible errors with their gRPC codes and
//! exact messages, in one table (`status`), and the mapping from store
//! errors.
//!
//! [`LockShim`] and [`ElectionShim`] serve etcd's v3lock and v3election
//! services over any [`ConcurrencyService`] (KV + Watch + Lease), with the
//! recipes of etcd's `concurrency` package run on the server.
//!
//! [`Gateway`]: etcd's HTTP/JSON gateway (`/v3/kv/range`, `/v3/watch`, …,
//! `/health`, `/version`, `/metrics`) over the same service impls;
//! [`client_router`] and [`serve_client`] put it and the gRPC services on
//! one port. [`Metrics`]: the Prometheus registry with etcd's metric names.
//!
//! [`tls`]: rustls configs for the client and peer ports and for our
//! clients; [`serve_client_tls`] runs the whole client port inside TLS.
//! [`ClientIdentity::of`] gives a request's verified client-certificate
//! CN (every protocol of the port; see `identity`).

mod auth;
pub mod client;
mod concurrency;
pub mod convert;
mod election;
pub mod fast;
mod gateway;
mod identity;
mod kv;
mod lease;
mod lock;
mod maintenance;
mod metrics;
pub mod pb;
pub mod peer;
mod status;
pub mod tls;
mod watch;

pub use auth::{AuthInfo, AuthReply, AuthRequest, AuthService, AuthShim, Authorizer, Credentials};
pub use concurrency::ConcurrencyService;
pub use election::{ElectionShim, ObserveStream};
pub use gateway::{
    ClientConn, ConnRead, ConnWrite, FastHandler, Gateway, HealthCheck, Prefixed, Versions,
    client_router, serve_client, serve_client_tls, serve_client_with_fast,
};
pub use identity::{ClientIdentity, ConnInfo};
pub use kv::{KvService, KvShim, ServerInfo};
pub use lease::{LeaseService, LeaseShim, LeaseTtl};
pub use lock::LockShim;
pub use maintenance::{ClusterService, ClusterShim, MemberChange, MemberInfo, NodeStatus};
pub use metrics::{
    CallKind, GrpcMetrics, GrpcMetricsLayer, METHODS, Metrics, MetricsBody, MetricsFuture,
};
pub use status::EtcdError;
pub use watch::{WatchService, WatchShim};
