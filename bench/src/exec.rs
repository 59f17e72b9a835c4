//! What every workload does around its own requests: a tokio runtime,
//! the connections, the workload's setup (prefill, clients), the measured
//! run, the report and the exit status.

use std::future::Future;

use anyhow::{Context, bail};
use ferrocd_net::client::Client;
use serde_json::Value;

use crate::cli::RunArgs;
use crate::driver::{self, Outcome};
use crate::report::{self, Report};

/// A runtime with `--threads` workers.
pub(crate) fn runtime(run: &RunArgs) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(t) = run.threads {
        rt.worker_threads(t.max(1));
    }
    rt.enable_all().build().context("tokio runtime")
}

/// Connect, let `build` prepare the server and make the clients, drive
/// them, print the report; fails when any request failed.
pub(crate) fn execute<C, F, Fut>(
    run: &RunArgs,
    workload: &'static str,
    params: Vec<(&'static str, Value)>,
    build: F,
) -> anyhow::Result<()>
where
    C: driver::Client,
    F: FnOnce(Vec<Client>) -> Fut,
    Fut: Future<Output = anyhow::Result<Vec<C>>>,
{
    let rt = runtime(run)?;
    let outcome = rt.block_on(async {
        let conns = crate::conn::connect_all(
            &run.endpoints,
            run.conns,
            std::time::Duration::from_secs_f64(run.request_timeout_secs),
            run.protocol,
            run.tls(),
            run.user()?,
        )
        .await?;
        let clients = build(conns).await?;
        driver::drive(run, clients).await
    })?;
    finish(run, workload, params, &outcome)
}

/// Print the report; an error when any request failed.
pub(crate) fn finish(
    run: &RunArgs,
    workload: &'static str,
    params: Vec<(&'static str, Value)>,
    outcome: &Outcome,
) -> anyhow::Result<()> {
    let report = Report {
        workload,
        run,
        params,
        outcome,
    };
    report::print(&report, run.write_out)?;
    if outcome.errors > 0 {
        bail!(
            "{} of {} requests failed; first error: {}",
            outcome.errors,
            outcome.errors + outcome.completed,
            outcome.first_error.as_deref().unwrap_or("?")
        );
    }
    Ok(())
}

/// Write `keys` keys (`key(n)` → `value(n)`), 64 puts in flight, before a
/// run (not measured).
pub(crate) async fn prefill(
    client: &Client,
    keys: u64,
    key: impl Fn(u64) -> Vec<u8>,
    value: impl Fn(u64) -> Vec<u8>,
) -> anyhow::Result<()> {
    let mut next = 0u64;
    while next < keys {
        let batch: Vec<_> = (next..(next + 64).min(keys))
            .map(|n| {
                let c = client.clone();
                let (k, v) = (key(n), value(n));
                tokio::spawn(async move { c.put(k, v, None).await })
            })
            .collect();
        for h in batch {
            h.await.context("prefill task")?.context("prefill")?;
        }
        next += 64;
    }
    Ok(())
}

/// Key number `n` in decimal, zero-padded to `size` bytes, after `prefix`.
pub(crate) fn key(prefix: &str, n: u64, size: usize) -> Vec<u8> {
    let mut k = prefix.as_bytes().to_vec();
    k.extend_from_slice(format!("{n:0size$}").as_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::key;

    #[test]
    fn keys_are_fixed_size_decimal() {
        assert_eq!(key("", 42, 8), b"00000042");
        assert_eq!(key("a/", 0, 1), b"a/0");
    }
}
