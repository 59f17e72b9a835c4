//! The connections of one run: `--conns` connections spread round-robin
//! over `--endpoints`, each a tonic channel (one HTTP/2 connection,
//! `--protocol grpc`) or a ferrocd binary-protocol client (one fast
//! connection, `--protocol fast`). Workloads issue etcd's messages through
//! [`Conn`] and never see which one it is.

use std::time::Duration;

use anyhow::{Context, bail};
use ferrocd_net::client::{Client, ConnectOptions, Protocol as ClientProtocol};
use ferrocd_net::fast::methods::{self as m, Unary};
use ferrocd_net::pb::etcdserverpb::kv_client::KvClient;
use ferrocd_net::pb::etcdserverpb::{PutRequest, RangeRequest};
use tonic::transport::{Channel, Endpoint};

use crate::cli::Protocol;

/// One connection of a run (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) enum Conn {
    Grpc(KvClient<Channel>),
    Fast(Client),
}

impl Conn {
    pub(crate) async fn put(&mut self, req: PutRequest) -> Result<(), tonic::Status> {
        match self {
            Conn::Grpc(kv) => kv.put(req).await.map(|_| ()),
            Conn::Fast(c) => c.call::<m::Put>(req).await.map(|_| ()).map_err(status),
        }
    }

    pub(crate) async fn range(&mut self, req: RangeRequest) -> Result<(), tonic::Status> {
        match self {
            Conn::Grpc(kv) => kv.range(req).await.map(|_| ()),
            Conn::Fast(c) => c.call::<m::Range>(req).await.map(|_| ()).map_err(status),
        }
    }
}

fn status(e: ferrocd_net::client::Error) -> tonic::Status {
    tonic::Status::new(e.code(), e.message())
}

/// Opens `conns` connections; fails if any endpoint does not answer within
/// a few seconds.
pub(crate) async fn connect_all(
    endpoints: &[String],
    conns: u32,
    request_timeout: Duration,
    protocol: Protocol,
) -> anyhow::Result<Vec<Conn>> {
    if endpoints.is_empty() {
        bail!("no --endpoints given");
    }
    let mut out = Vec::with_capacity(conns as usize);
    for i in 0..conns as usize {
        let ep = &endpoints[i % endpoints.len()];
        let conn = match protocol {
            Protocol::Grpc => {
                let uri = if ep.contains("://") {
                    ep.clone()
                } else {
                    format!("http://{ep}")
                };
                let ch = Endpoint::from_shared(uri.clone())
                    .with_context(|| format!("bad endpoint {ep:?}"))?
                    .connect_timeout(Duration::from_secs(5))
                    .timeout(request_timeout)
                    .tcp_nodelay(true)
                    .connect()
                    .await
                    .with_context(|| format!("connecting to {uri}"))?;
                Conn::Grpc(KvClient::new(ch))
            }
            Protocol::Fast => {
                let opts = ConnectOptions::new()
                    .with_protocol(ClientProtocol::Fast)
                    .with_dial_timeout(Duration::from_secs(5))
                    .with_timeout(request_timeout);
                let c = Client::connect([ep.as_str()], Some(opts))
                    .await
                    .with_context(|| format!("connecting to {ep} (binary protocol)"))?;
                Conn::Fast(c)
            }
        };
        out.push(conn);
    }
    Ok(out)
}

/// `Put` is not idempotent: the client never resends it, so a bench
/// error is a real error.
const _: () = assert!(!m::Put::IDEMPOTENT);
