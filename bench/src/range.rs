//! `ferrobench range`: one Range RPC per request, reading key
//! `i mod key-space` of a key space written once before the run (not
//! measured), linearizable or serializable.

use anyhow::{Context, bail};
use ferrocd_net::pb::etcdserverpb::{PutRequest, RangeRequest};

use crate::cli::{Consistency, RangeArgs};
use crate::driver::{self, Client};
use crate::put::key;
use crate::report::Report;
use crate::{conn, report};

struct Reader {
    conn: conn::Conn,
    key_size: usize,
    key_space: u64,
    serializable: bool,
}

impl Client for Reader {
    fn call(
        &mut self,
        i: u64,
    ) -> impl std::future::Future<Output = Result<(), tonic::Status>> + Send {
        let req = RangeRequest {
            key: key(i % self.key_space, self.key_size),
            serializable: self.serializable,
            ..Default::default()
        };
        let mut conn = self.conn.clone();
        async move { conn.range(req).await }
    }
}

pub(crate) fn run(args: &RangeArgs) -> anyhow::Result<()> {
    let run = &args.run;
    let key_size = args.key_size as usize;
    let key_space = args.key_space.max(1);
    if key_size < 20 && key_space > 10u64.pow(key_size as u32) {
        bail!("--key-space {key_space} does not fit in {key_size}-byte decimal keys");
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(t) = run.threads {
        rt.worker_threads(t.max(1));
    }
    let rt = rt.enable_all().build().context("tokio runtime")?;
    let outcome = rt.block_on(async {
        let conns = conn::connect_all(
            &run.endpoints,
            run.conns,
            std::time::Duration::from_secs_f64(run.request_timeout_secs),
            run.protocol,
        )
        .await?;
        // Prefill, 64 puts in flight.
        let value = vec![b'v'; args.val_size as usize];
        let mut next = 0u64;
        while next < key_space {
            let batch: Vec<_> = (next..(next + 64).min(key_space))
                .map(|n| {
                    let mut c = conns[0].clone();
                    let req = PutRequest {
                        key: key(n, key_size),
                        value: value.clone(),
                        ..Default::default()
                    };
                    async move { c.put(req).await }
                })
                .collect();
            for r in futures_join(batch).await {
                r.context("prefill")?;
            }
            next += 64;
        }
        let clients = (0..run.clients as usize)
            .map(|c| Reader {
                conn: conns[c % conns.len()].clone(),
                key_size,
                key_space,
                serializable: args.consistency == Consistency::S,
            })
            .collect();
        driver::drive(run, clients).await
    })?;
    let report = Report {
        workload: match args.consistency {
            Consistency::L => "range-linearizable",
            Consistency::S => "range-serializable",
        },
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

/// Await every future (spawned, so they run concurrently).
async fn futures_join<F>(fs: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = fs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("prefill task"));
    }
    out
}
