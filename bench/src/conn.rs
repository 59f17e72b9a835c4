//! The connections of one run: `--conns` clients of `ferrocd-net`'s
//! client library, one connection each, spread round-robin over
//! `--endpoints`, speaking etcd's gRPC (`--protocol grpc`, works against
//! any etcd) or ferrocd's binary protocol (`--protocol fast`), inside TLS
//! with `--cacert/--cert/--key/--insecure-skip-tls-verify` or `https://`
//! endpoints, as `--user` when auth is enabled. The client
//! never resends a write, so a bench error is a real error.

use std::time::Duration;

use anyhow::{Context, bail};
use ferrocd_net::client::{Client, ClientTls, ConnectOptions, Protocol as ClientProtocol};

use crate::cli::Protocol;

/// Opens `conns` connections; fails if any endpoint does not answer within
/// a few seconds.
pub(crate) async fn connect_all(
    endpoints: &[String],
    conns: u32,
    request_timeout: Duration,
    protocol: Protocol,
    tls: Option<ClientTls>,
    user: Option<(String, String)>,
) -> anyhow::Result<Vec<Client>> {
    if endpoints.is_empty() {
        bail!("no --endpoints given");
    }
    let mut out = Vec::with_capacity(conns as usize);
    for i in 0..conns as usize {
        let ep = &endpoints[i % endpoints.len()];
        let mut opts = ConnectOptions::new()
            .with_protocol(match protocol {
                Protocol::Grpc => ClientProtocol::Grpc,
                Protocol::Fast => ClientProtocol::Fast,
            })
            .with_dial_timeout(Duration::from_secs(5))
            .with_timeout(request_timeout);
        if let Some(t) = &tls {
            opts = opts.with_tls(t.clone());
        }
        if let Some((name, password)) = &user {
            opts = opts.with_user(name, password);
        }
        let c = Client::connect([ep.as_str()], Some(opts))
            .await
            .with_context(|| format!("connecting to {ep} ({protocol:?})"))?;
        out.push(c);
    }
    Ok(out)
}

/// A client error as the driver counts it.
pub(crate) fn status(e: ferrocd_net::client::Error) -> tonic::Status {
    tonic::Status::new(e.code(), e.message())
}
