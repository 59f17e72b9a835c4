//! ferrocd-net: the wire. It knows nothing of raft or shards: a node
//! implements the service traits and this crate serves them.
//!
//! - [`pb`]: the etcd v3 gRPC API (packages `etcdserverpb`, `mvccpb`,
//!   `authpb`, `v3lockpb`, `v3electionpb`) generated from our own `.proto`
//!   files in `net/proto/`, with tonic clients and server traits.
//! - The shims serve etcd's services over the node's traits, with etcd's
//!   request checks and errors: [`KvShim`] ([`KvService`]), [`WatchShim`]
//!   ([`WatchService`]), [`LeaseShim`] ([`LeaseService`]), [`ClusterShim`]
//!   (Maintenance and Cluster over [`ClusterService`]: status, alarms,
//!   defragment, hash, snapshot, membership, [`Downgrade`]), [`AuthShim`]
//!   ([`AuthService`]), and [`LockShim`] / [`ElectionShim`] (etcd's
//!   concurrency recipes over the KV, Watch and Lease traits). Every
//!   request names its caller through [`Authorizer`] ([`Credentials`]:
//!   token metadata or a client certificate's name); the node checks its
//!   permissions.
//! - [`EtcdError`]: etcd's client-visible errors with their gRPC codes and
//!   exact messages, in one table (`status`); [`check_frames`] gives bad
//!   gRPC request framing (oversized, truncated) etcd's status too.
//! - [`Gateway`]: etcd's HTTP/JSON gateway (`/v3/...`, `/health`,
//!   `/version`, `/metrics`) over the same service objects;
//!   [`serve_client_tls`] puts it, gRPC and the binary protocol ([`fast`],
//!   sniffed by its preamble) on one port, in TLS on `https://` URLs
//!   ([`tls`]); [`ClientIdentity::of`] gives a request's verified
//!   client-certificate name on every protocol of the port.
//! - [`console`]: the built-in web console (`--listen-ui-urls`): embedded
//!   HTML/CSS/JS over the same gateway, and the members' status view.
//! - [`client`]: the Rust client (both protocols, pool, fail-over, safe
//!   retries, auth, TLS). [`peer`]: the transport between members.
//!   [`Metrics`]: the Prometheus registry with etcd's metric names.

mod auth;
pub mod client;
mod concurrency;
pub mod console;
pub mod convert;
mod downgrade;
mod election;
pub mod fast;
mod frames;
mod gateway;
pub mod h2;
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
pub use downgrade::{ClusterVersion, Downgrade};
pub use election::{ElectionShim, ObserveStream};
pub use frames::check_frames;
pub use gateway::{
    AccessControl, Check, CheckFuture, ClientConn, ConnRead, ConnWrite, FastHandler, Gateway,
    H2Handler, HealthCheck, Prefixed, Versions, client_router, h2_handler, serve_client,
    serve_client_tls, serve_client_with_fast,
};
pub use identity::{ClientIdentity, ConnInfo};
pub use kv::{KvService, KvShim, ServerInfo};
pub use lease::{LeaseService, LeaseShim, LeaseTtl};
pub use lock::LockShim;
pub use maintenance::{ClusterService, ClusterShim, MemberChange, MemberInfo, NodeStatus};
pub use metrics::{
    CallKind, CountedBody, GrpcMetrics, GrpcMetricsLayer, METHODS, Metrics, MetricsBody,
    MetricsFuture, PeerSeries, StoreOps,
};
pub use status::EtcdError;
pub use watch::{WatchService, WatchShim};
