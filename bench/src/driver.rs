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
}

/// The largest latency the histogram holds (an hour, in µs); longer ones
/// are recorded as this.
const MAX_LATENCY_US: u64 = 3_600_000_000;

pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

#[derive(Debug, Default)]
struct Shared {
    next: AtomicU64,
    completed: AtomicU64,
    errors: AtomicU64,
    finished: AtomicBool,
}

/// Runs `clients` to completion and measures.
pub(crate) async fn drive<C: Client>(run: &RunArgs, clients: Vec<C>) -> anyhow::Result<Outcome> {
    let shared = Arc::new(Shared::default());
    let total = run.total;
    let max = Duration::from_secs_f64(run.max_secs.max(0.0));
    let cpu_before = server::cpu_time_sum(&run.server_pid)?;

    let start = Instant::now();
    let deadline = start + max;
    let progress = (!run.quiet).then(|| tokio::spawn(progress(shared.clone(), total, start)));
    let mut tasks = Vec::with_capacity(clients.len());
    for mut client in clients {
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram();
            let mut first_error = None;
            loop {
                let i = shared.next.fetch_add(1, Ordering::Relaxed);
                if i >= total || Instant::now() >= deadline {
                    break;
                }
                let t = Instant::now();
                match client.call(i).await {
                    Ok(()) => {
                        let us = (t.elapsed().as_micros() as u64).clamp(1, MAX_LATENCY_US);
                        hist.record(us).expect("within bounds");
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
    })
}

/// Progress on stderr: a line rewritten in place on a terminal every half
/// second, else a line every five seconds (so logs stay short).
async fn progress(shared: Arc<Shared>, total: u64, start: Instant) {
    let tty = std::io::stderr().is_terminal();
    let every = Duration::from_millis(if tty { 500 } else { 5000 });
    let tick = Duration::from_millis(100);
    let mut last = (start, 0u64);
    let mut printed = false;
    while !shared.finished.load(Ordering::Relaxed) {
        tokio::time::sleep(tick).await;
        let now = Instant::now();
        if now - last.0 < every {
            continue;
        }
        let done = shared.completed.load(Ordering::Relaxed);
        let errors = shared.errors.load(Ordering::Relaxed);
        let rate = (done - last.1) as f64 / (now - last.0).as_secs_f64();
        let line = format!(
            "{:>6.1}s  {done}/{total} ok, {errors} errors, {rate:.0} ops/s",
            (now - start).as_secs_f64()
        );
        if tty {
            eprint!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
        printed = true;
        last = (now, done);
    }
    if tty && printed {
        eprintln!();
    }
}
