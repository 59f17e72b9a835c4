//! ferrocd-net: the wire.
//!
//! Will hold the binary protocol (codec, server loop, Rust client), the
//! etcd-compatible gRPC shim, the HTTP/JSON gateway and the peer transport
//! (see `DESIGN.md`). Nothing is implemented yet: this crate is empty on
//! purpose until the single-node server issue fills it.
