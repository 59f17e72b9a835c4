//! The client port's HTTP/2 server: gRPC (and the `/v3` gateway over
//! HTTP/2) on framing of our own, in the spirit of the binary protocol.
//!
//! Why not hyper and h2: on a gRPC put the shard threads spent most of
//! their CPU in the transport (h2, hyper, tower, tonic's codec, a task
//! per request), and h2 refuses requests that etcd's Go server takes —
//! etcdctl 3.4 sends an `:authority` of `http://host:port`, which h2
//! answers with RST_STREAM PROTOCOL_ERROR (issue #20).
//!
//! - One task per connection ([`Conn::serve`]) reads frames from one
//!   buffer, runs the calls as futures it polls itself (no task per
//!   request), and writes every answer into one buffer flushed with one
//!   write per wake-up.
//! - KV Range, Put, DeleteRange and Txn (the hot calls) are decoded from
//!   the request's DATA with prost and answered from the KV service
//!   object's own methods, as the binary protocol does; every other call
//!   (streams, the other services, the JSON gateway, compressed requests)
//!   goes through the same tower service tonic's server ran, with a
//!   request body the connection feeds and a response body it pulls.
//! - Flow control both ways (RFC 9113 §5.2): our windows are given back as
//!   the calls consume their requests; responses wait for the client's.
//!   A client that stops reading stops its own connection, with at most
//!   about 1 MiB written for it.
//! - HPACK: decoded by loona-hpack; our header blocks use no dynamic
//!   table ([`hpack`]).

mod conn;
mod frame;
mod hpack;

pub use conn::{Config, Conn, RecvBody, RespBody, Service};
pub use frame::PREFACE;
