//! `ferrobench watch`: event latency from write to delivery. `--watchers`
//! watch streams (spread over the connections) all watch the prefix
//! `watch/`; the clients put keys under it, each value starting with its
//! send time (µs since the run's epoch, u64 LE). Every watcher records
//! `delivery - send` for every event into its histogram; the report's
//! latencies are those, its ops/s the events delivered per second over all
//! watchers. Events a watcher did not get within 10 s of the last put
//! count as errors.

use std::time::{Duration, Instant};

use anyhow::Context;
use ferrocd_net::client::{Client, WatchOptions};
use ferrocd_net::pb::etcdserverpb::PutRequest;
use hdrhistogram::Histogram;

use crate::cli::WatchArgs;
use crate::conn;
use crate::driver::{self, Outcome};
use crate::exec::{finish, key, runtime};

struct Writer {
    conn: Client,
    key_size: usize,
    key_space: u64,
    val_size: usize,
    epoch: Instant,
}

impl driver::Client for Writer {
    fn call(
        &mut self,
        i: u64,
    ) -> impl std::future::Future<Output = Result<(), tonic::Status>> + Send {
        let mut value = (self.epoch.elapsed().as_micros() as u64)
            .to_le_bytes()
            .to_vec();
        value.resize(self.val_size.max(8), b'v');
        let req = PutRequest {
            key: key("watch/", i % self.key_space, self.key_size),
            value,
            ..Default::default()
        };
        let conn = self.conn.clone();
        async move {
            conn.call::<ferrocd_net::fast::methods::Put>(req)
                .await
                .map(|_| ())
                .map_err(conn::status)
        }
    }
}

pub(crate) fn run(args: &WatchArgs) -> anyhow::Result<()> {
    let run = &args.run;
    let rt = runtime(run)?;
    let epoch = Instant::now();
    let (outcome, puts) = rt.block_on(async {
        let conns = conn::connect_all(
            &run.endpoints,
            run.conns,
            Duration::from_secs_f64(run.request_timeout_secs),
            run.protocol,
            run.tls(),
            run.user()?,
        )
        .await?;
        let mut watchers = Vec::new();
        // Set once the writers are done: (events each watcher must see,
        // when to give up).
        let (target_tx, target_rx) = tokio::sync::watch::channel(None::<(u64, Instant)>);
        for w in 0..args.watchers as usize {
            let c = &conns[w % conns.len()];
            let (watcher, mut stream) = c
                .watch("watch/", Some(WatchOptions::new().with_prefix()))
                .await
                .context("opening a watch")?;
            let created = stream.message().await?.context("watch stream closed")?;
            anyhow::ensure!(created.created, "first watch response is not `created`");
            let mut target = target_rx.clone();
            watchers.push(tokio::spawn(async move {
                let _keep = watcher;
                let mut hist = driver::histogram();
                let mut seen = 0u64;
                loop {
                    if let Some((want, deadline)) = *target.borrow_and_update()
                        && (seen >= want || Instant::now() >= deadline)
                    {
                        break;
                    }
                    let r = tokio::select! {
                        r = stream.message() => match r {
                            Ok(Some(r)) => r,
                            _ => break,
                        },
                        _ = target.changed() => continue,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    };
                    let now = epoch.elapsed().as_micros() as u64;
                    for ev in r.events {
                        let sent = ev
                            .kv
                            .as_ref()
                            .and_then(|kv| kv.value.get(..8))
                            .map_or(now, |b| u64::from_le_bytes(b.try_into().expect("8")));
                        let _ = hist.record(now.saturating_sub(sent).max(1));
                        seen += 1;
                    }
                }
                (hist, seen)
            }));
            let _ = &target_tx;
        }
        let clients = (0..run.clients as usize)
            .map(|c| Writer {
                conn: conns[c % conns.len()].clone(),
                key_size: args.key_size as usize,
                key_space: args.key_space.max(1),
                val_size: args.val_size as usize,
                epoch,
            })
            .collect();
        let puts = driver::drive(run, clients).await?;
        // Let the watchers drain what is on its way, then close them.
        // Warm-up puts are watched too (and recorded).
        let want = puts.completed + run.warmup;
        let _ = target_tx.send(Some((want, Instant::now() + Duration::from_secs(10))));
        let mut hist = driver::histogram();
        let mut delivered = 0u64;
        let mut missing = 0u64;
        for w in watchers {
            let (h, seen): (Histogram<u64>, u64) = w.await?;
            hist.add(&h).expect("same bounds");
            delivered += seen;
            missing += want.saturating_sub(seen);
        }
        drop(conns);
        let outcome = Outcome {
            hist,
            completed: delivered,
            errors: missing + puts.errors,
            first_error: (missing > 0)
                .then(|| format!("{missing} events not delivered within 10 s"))
                .or(puts.first_error.clone()),
            elapsed: puts.elapsed,
            server_cpu: puts.server_cpu,
            server_peak_rss_kib: puts.server_peak_rss_kib,
            client_cpu: puts.client_cpu,
        };
        anyhow::Ok((outcome, puts.completed))
    })?;
    let params = vec![
        ("watchers", args.watchers.into()),
        ("puts", puts.into()),
        ("key_size", args.key_size.into()),
        ("val_size", args.val_size.into()),
    ];
    finish(run, "watch", params, &outcome)
}
