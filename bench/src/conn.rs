//! The connections of one run: `--conns` tonic channels (one HTTP/2
//! connection each), spread round-robin over `--endpoints`.

use std::time::Duration;

use anyhow::{Context, bail};
use tonic::transport::{Channel, Endpoint};

/// Opens `conns` connections; fails if any endpoint does not answer within
/// a few seconds.
pub(crate) async fn connect_all(
    endpoints: &[String],
    conns: u32,
    request_timeout: Duration,
) -> anyhow::Result<Vec<Channel>> {
    if endpoints.is_empty() {
        bail!("no --endpoints given");
    }
    let mut out = Vec::with_capacity(conns as usize);
    for i in 0..conns as usize {
        let ep = &endpoints[i % endpoints.len()];
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
        out.push(ch);
    }
    Ok(out)
}
