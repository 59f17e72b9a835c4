//! The etcd v3 gRPC API as Rust types: prost messages plus tonic clients and
//! server traits, generated at build time from our `.proto` files in
//! `net/proto/` (see `build.rs`).
//!
//! Packages, services, field numbers and types are etcd 3.5's, so a path is
//! `/etcdserverpb.KV/Range` and bytes on the wire are the ones etcd sends;
//! `net/tests/etcd_wire.rs` checks that against a real etcd. Each module is
//! one proto package; clients live in `<service>_client` (e.g.
//! `etcdserverpb::kv_client::KvClient`), server traits in `<service>_server`.

// Generated code: not ours to restyle. The lints below are allowed here only.

/// Package `etcdserverpb`: the KV, Watch, Lease, Cluster, Maintenance and
/// Auth services.
#[allow(clippy::all, clippy::pedantic, missing_debug_implementations)]
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

/// Package `mvccpb`: the stored record (`KeyValue`) and the watch `Event`.
#[allow(clippy::all, clippy::pedantic, missing_debug_implementations)]
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// Package `authpb`: stored users, roles and permissions.
#[allow(clippy::all, clippy::pedantic, missing_debug_implementations)]
pub mod authpb {
    tonic::include_proto!("authpb");
}

/// Package `v3lockpb`: the Lock service.
#[allow(clippy::all, clippy::pedantic, missing_debug_implementations)]
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}

/// Package `v3electionpb`: the Election service.
#[allow(clippy::all, clippy::pedantic, missing_debug_implementations)]
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}
