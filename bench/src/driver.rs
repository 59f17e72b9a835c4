//! Runs a workload's clients against one request budget: `--clients`
//! tasks, each with one request in flight, take request numbers from a
//! shared counter until `--total` is reached or `--max-secs` has passed.
//! Each client records its latencies in a histogram of its own (no shared
//! lock on the hot path); they are merged at the end.

use std::future::Future;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::cli::RunArgs;
use crate::server;

/// One client of a workload: issues request number `i`.
pub(crate) trait Client: Send + 'static {
    fn call(&mut self, i: u64) -> impl Future<Output = Result<(), tonic::Status>> + Send;
}

/// What a run measured.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// Latency of every successful request, in microseconds.
    pub hist: Histogram<u64>,
    pub completed: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// From the first request sent to the last answer.
    pub elapsed: Duration,
    /// Server CPU time spent during the run, with `--server-pid` (summed
    /// over the pids).
    pub server_cpu: Option<Duration>,
    /// Server peak RSS after the run, with `--server-pid` (summed).
    pub server_peak_rss_kib: Option<u64>,
    /// ferrobench's own CPU time (every thread) over the same span as
    /// `server_cpu`: the load generator shares the cores with the server
    /// and can be what limits a run.
    pub client_cpu: Duration,
}

/// The largest latency the histogram holds (an hour, in µs); longer ones
/// are recorded as this.
const MAX_LATENCY_US: u64 = 3_600_000_000;

pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

#[derive(Debug, Default)]
struct Shared {
    warm: AtomicU64,
    next: AtomicU64,
    completed: AtomicU64,
    errors: AtomicU64,
    finished: AtomicBool,
}

/// Runs `clients` to completion and measures.
///
/// Closed loop by default: each client sends its next request when the
/// previous one is answered. With `--rate R`, open loop: request `i` is
/// due at `start + i/R` and its latency is measured from that due time,
/// not from when a client got round to sending it, so a stalled server is
/// charged for the requests it held up (coordinated-omission correction,
/// as wrk2 does). `--warmup N` requests run first and are not measured.
pub(crate) async fn drive<C: Client>(run: &RunArgs, clients: Vec<C>) -> anyhow::Result<Outcome> {
    let shared = Arc::new(Shared::default());
    let total = run.total_ops();
    let max = Duration::from_secs_f64(run.max_secs().max(0.0));
    let warmup = run.warmup;
    let rate = run.rate.filter(|r| *r > 0.0);
    let n = clients.len();
    // Every client, and this task, meet here when the warm-up is done.
    let gate = Arc::new(tokio::sync::Barrier::new(n + 1));
    let (start_tx, start_rx) = tokio::sync::watch::channel(None::<Instant>);
    let live = (!run.quiet).then(|| Arc::new(std::sync::Mutex::new(histogram())));
    let mut tasks = Vec::with_capacity(n);
    for mut client in clients {
        let shared = shared.clone();
        let gate = gate.clone();
        let mut start_rx = start_rx.clone();
        let live = live.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram();
            let mut first_error = None;
            loop {
                let w = shared.warm.fetch_add(1, Ordering::Relaxed);
                if w >= warmup {
                    break;
                }
                // Warm-up requests use numbers past the measured ones, so
                // a measured run still starts at request 0.
                let _ = client.call(u64::MAX / 2 + w).await;
            }
            gate.wait().await;
            let start = loop {
                if let Some(s) = *start_rx.borrow_and_update() {
                    break s;
                }
                if start_rx.changed().await.is_err() {
                    return (hist, first_error);
                }
            };
            let deadline = start + max;
            loop {
                let i = shared.next.fetch_add(1, Ordering::Relaxed);
                if i >= total || Instant::now() >= deadline {
                    break;
                }
                let t = match rate {
                    Some(r) => {
                        let due = start + Duration::from_secs_f64(i as f64 / r);
                        if due >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(due.into()).await;
                        due
                    }
                    None => Instant::now(),
                };
                match client.call(i).await {
                    Ok(()) => {
                        let us = (t.elapsed().as_micros() as u64).clamp(1, MAX_LATENCY_US);
                        hist.record(us).expect("within bounds");
                        if let Some(l) = &live {
                            let _ = l.lock().expect("live histogram").record(us);
                        }
                        shared.completed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                        first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            (hist, first_error)
        }));
    }
    gate.wait().await;
    let cpu_before = server::cpu_time_sum(&run.server_pid)?;
    let own_before = server::own_cpu_time()?;
    let start = Instant::now();
    let _ = start_tx.send(Some(start));
    let progress = live.map(|l| {
        tokio::spawn(progress(
            shared.clone(),
            l,
            run.total.filter(|_| run.duration.is_none()),
            start,
        ))
    });
    let mut hist = histogram();
    let mut first_error = None;
    for t in tasks {
        let (h, e) = t.await?;
        hist.add(h).expect("same bounds");
        if first_error.is_none() {
            first_error = e;
        }
    }
    let elapsed = start.elapsed();
    shared.finished.store(true, Ordering::Relaxed);
    if let Some(p) = progress {
        p.await?;
    }
    let own_after = server::own_cpu_time()?;
    let server_cpu = match cpu_before {
        Some(before) => server::cpu_time_sum(&run.server_pid)?.map(|c| c.saturating_sub(before)),
        None => None,
    };
    let server_peak_rss_kib = server::peak_rss_kib_sum(&run.server_pid)?;
    Ok(Outcome {
        hist,
        completed: shared.completed.load(Ordering::Relaxed),
        errors: shared.errors.load(Ordering::Relaxed),
        first_error,
        elapsed,
        server_cpu,
        server_peak_rss_kib,
        client_cpu: own_after.saturating_sub(own_before),
    })
}

/// Progress on stderr: a bar (or, with `--total` unknown, a spinner)
/// with the current rate and the p99 of the last interval; on a pipe, a
/// plain line every five seconds (so logs stay short).
async fn progress(
    shared: Arc<Shared>,
    live: Arc<std::sync::Mutex<Histogram<u64>>>,
    total: Option<u64>,
    start: Instant,
) {
    let tty = std::io::stderr().is_terminal();
    let every = Duration::from_millis(if tty { 500 } else { 5000 });
    let bar = tty.then(|| {
        let b = match total {
            Some(t) => indicatif::ProgressBar::new(t),
            None => indicatif::ProgressBar::new_spinner(),
        };
        b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        let style = indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> ");
        b.set_style(style);
        b
    });
    let mut last = (start, 0u64);
    while !shared.finished.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = Instant::now();
        if now - last.0 < every {
            continue;
        }
        let done = shared.completed.load(Ordering::Relaxed);
        let errors = shared.errors.load(Ordering::Relaxed);
        let rate = (done - last.1) as f64 / (now - last.0).as_secs_f64();
        let p99 = {
            let mut h = live.lock().expect("live histogram");
            let v = h.value_at_quantile(0.99);
            h.reset();
            v
        };
        let msg = format!(
            "{rate:.0} ops/s, p99 {:.2} ms, {errors} errors",
            p99 as f64 / 1e3
        );
        match &bar {
            Some(b) => {
                b.set_position(done);
                b.set_message(msg);
            }
            None => eprintln!(
                "{:>6.1}s  {done}{} ok, {msg}",
                (now - start).as_secs_f64(),
                total.map_or(String::new(), |t| format!("/{t}"))
            ),
        }
        last = (now, done);
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
}
