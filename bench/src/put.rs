//! `ferrobench put`: one Put RPC per request. Request `i` writes key
//! `i mod key-space` (decimal, zero-padded to `--key-size` bytes) with a
//! `--val-size` value.

use anyhow::{Context, bail};
use ferrocd_net::pb::etcdserverpb::PutRequest;

use crate::cli::PutArgs;
use crate::driver::{self, Client};
use crate::report::Report;
use crate::{conn, report};

struct Putter {
    conn: conn::Conn,
    key_size: usize,
    key_space: u64,
    value: Vec<u8>,
}

impl Client for Putter {
    fn call(
        &mut self,
        i: u64,
    ) -> impl std::future::Future<Output = Result<(), tonic::Status>> + Send {
        let req = PutRequest {
            key: key(i % self.key_space, self.key_size),
            value: self.value.clone(),
            ..Default::default()
        };
        let mut conn = self.conn.clone();
        async move { conn.put(req).await }
    }
}

/// Key number `n` in decimal, zero-padded to `size` bytes.
pub(crate) fn key(n: u64, size: usize) -> Vec<u8> {
    format!("{n:0size$}").into_bytes()
}

pub(crate) fn run(args: &PutArgs) -> anyhow::Result<()> {
    let run = &args.run;
    let key_size = args.key_size as usize;
    let key_space = args.key_space.unwrap_or(run.total).max(1);
    // Decimal keys of key_size digits hold 10^key_size distinct keys.
    if key_size < 20 && key_space > 10u64.pow(key_size as u32) {
        bail!("--key-space {key_space} does not fit in {key_size}-byte decimal keys");
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(t) = run.threads {
        rt.worker_threads(t.max(1));
    }
    let rt = rt.enable_all().build().context("tokio runtime")?;
    let outcome = rt.block_on(async {
        let channels = conn::connect_all(
            &run.endpoints,
            run.conns,
            std::time::Duration::from_secs_f64(run.request_timeout_secs),
            run.protocol,
        )
        .await?;
        let clients = (0..run.clients as usize)
            .map(|c| Putter {
                conn: channels[c % channels.len()].clone(),
                key_size,
                key_space,
                value: vec![b'v'; args.val_size as usize],
            })
            .collect();
        driver::drive(run, clients).await
    })?;
    let report = Report {
        workload: "put",
        run,
        params: vec![
            ("key_size", args.key_size.into()),
            ("val_size", args.val_size.into()),
            ("key_space", key_space.into()),
        ],
        outcome: &outcome,
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

#[cfg(test)]
mod tests {
    use super::key;

    #[test]
    fn keys_are_fixed_size_decimal() {
        assert_eq!(key(42, 8), b"00000042");
        assert_eq!(key(0, 1), b"0");
    }
}
