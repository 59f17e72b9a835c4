//! `check perf` and `check datascale`: etcdctl 3.5's load checks.
//!
//! - `check perf [--load s|m|l|xl] [--prefix P] [--auto-compact]
//!   [--auto-defrag]`: 60 s of puts (256-byte keys under `P`, 1 KiB
//!   values) at the load's rate (150, 1000, 8000, 15000 writes/s) from as
//!   many concurrent workers (50, 200, 500, 1000), then etcdctl's verdict
//!   lines: throughput above 90 % of the rate, slowest request under
//!   0.5 s, standard deviation under 0.1 s, `PASS` or `FAIL` (exit 1).
//!   Interrupted (SIGINT), it stops sending, deletes the prefix and gives
//!   its verdict on what it sent, as etcdctl does.
//! - `check datascale [--load …] [--prefix P] [--auto-compact]
//!   [--auto-defrag]`: puts 10^4, 10^5, 10^6 or 3·10^6 keys (512-byte
//!   keys, 512-byte values) from 50 … 1000 workers and reports the growth
//!   of the first endpoint's `process_resident_memory_bytes` (its
//!   `/metrics`) as `PASS: Approximate system memory used : N MB.`.
//!
//! Both refuse an unknown load (exit 4) and a prefix that holds keys
//! (exit 3), delete the prefix afterwards, then compact to that revision
//! (`Compacting with revision N`, `Compacted with revision N`) and
//! defragment every endpoint (`Defragmenting "ep"`, `Defragmented "ep"`)
//! when asked. Progress goes to stdout as
//! etcdctl's progress bar prints it when stdout is not a terminal: the
//! counters, the percentage and the time left, rewritten after `\r`
//! every 200 ms (etcdctl also draws the bar itself on a terminal; ferroctl
//! never does).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use ferrocd_net::client::{Client, DeleteOptions, GetOptions};
use tokio::sync::Mutex;

use crate::error::{EXIT_ERROR, EXIT_INVALID_INPUT, Fail, R};
use crate::{Ctx, out, print};

/// `check …`.
#[derive(Debug, Subcommand)]
pub enum CheckCmd {
    /// Check the performance of the etcd cluster
    Perf(CheckArgs),
    /// Check the memory usage of holding data for different workloads on a given server endpoint.
    Datascale(DatascaleArgs),
}

/// `check perf`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The performance check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)
    #[arg(long, default_value = "s")]
    pub load: String,
    /// The prefix for writing the performance check's keys.
    #[arg(long, default_value = "/etcdctl-check-perf/")]
    pub prefix: String,
    /// Compact storage with last revision after test is finished.
    #[arg(long = "auto-compact")]
    pub auto_compact: bool,
    /// Defragment storage after test is finished.
    #[arg(long = "auto-defrag")]
    pub auto_defrag: bool,
}

/// `check datascale`.
#[derive(Debug, Args)]
pub struct DatascaleArgs {
    /// The datascale check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)
    #[arg(long, default_value = "s")]
    pub load: String,
    /// The prefix for writing the datascale check's keys.
    #[arg(long, default_value = "/etcdctl-check-datascale/")]
    pub prefix: String,
    /// Compact storage with last revision after test is finished.
    #[arg(long = "auto-compact")]
    pub auto_compact: bool,
    /// Defragment storage after test is finished.
    #[arg(long = "auto-defrag")]
    pub auto_defrag: bool,
}

/// etcdctl's load names: `s`/`small` … `xl`/`xLarge`, as an index.
fn load_index(load: &str) -> R<usize> {
    match load {
        "s" | "small" => Ok(0),
        "m" | "medium" => Ok(1),
        "l" | "large" => Ok(2),
        "xl" | "xLarge" => Ok(3),
        _ => Err(Fail::feature(format!("unknown load option {load}"))),
    }
}

/// (writes/s, workers, seconds) per perf load, as etcdctl 3.5.
const PERF: [(u64, usize, u64); 4] = [
    (150, 50, 60),
    (1000, 200, 60),
    (8000, 500, 60),
    (15000, 1000, 60),
];
/// (keys, bytes per key-value, workers) per datascale load, as etcdctl 3.5.
const DATASCALE: [(u64, usize, usize); 4] = [
    (10_000, 1024, 50),
    (100_000, 1024, 200),
    (1_000_000, 1024, 500),
    (3_000_000, 1000, 1000),
];
/// Connections the workers share (etcdctl opens one per worker; a few
/// multiplexed connections carry the same concurrency).
const MAX_CONNECTIONS: usize = 8;

/// etcd's `report` statistics over the finished requests.
#[derive(Debug, Default, PartialEq)]
struct Stats {
    /// Successful requests per second over the whole run.
    rps: f64,
    /// Slowest successful request, seconds.
    slowest: f64,
    /// Population standard deviation of the latencies, seconds.
    stddev: f64,
    /// Failed requests by message, in first-seen order.
    errors: Vec<(String, u64)>,
}

impl Stats {
    fn of(lats: &[f64], errs: &[String], total: Duration) -> Stats {
        let mut errors: Vec<(String, u64)> = Vec::new();
        for e in errs {
            match errors.iter_mut().find(|(m, _)| m == e) {
                Some((_, n)) => *n += 1,
                None => errors.push((e.clone(), 1)),
            }
        }
        let n = lats.len() as f64;
        let (slowest, stddev) = if lats.is_empty() {
            (0.0, 0.0)
        } else {
            let mean = lats.iter().sum::<f64>() / n;
            let var = lats.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n;
            (lats.iter().cloned().fold(0.0, f64::max), var.sqrt())
        };
        let secs = total.as_secs_f64();
        Stats {
            rps: if secs > 0.0 { n / secs } else { 0.0 },
            slowest,
            stddev,
            errors,
        }
    }
}

/// The line etcdctl's progress bar prints without a terminal:
/// ` cur / total  pct%` plus the time left (`00m56s`) while running, the
/// time taken (Go's duration in whole seconds) once finished.
fn bar_line(cur: u64, total: u64, started: Instant, changed: Instant, done: bool) -> String {
    let pct = if total == 0 {
        0.0
    } else {
        cur as f64 * 100.0 / total as f64
    };
    let mut s = format!(" {cur} / {total}  {pct:6.2}%");
    if done {
        let secs = started.elapsed().as_secs();
        s += &format!(" {}", print::go_duration(Duration::from_secs(secs)));
    } else if cur > 0 {
        let per = changed.duration_since(started).as_secs_f64() / cur as f64;
        let left = (total.saturating_sub(cur)) as f64 * per - changed.elapsed().as_secs_f64();
        let left = left as u64;
        if left > 0 {
            let (h, m, sec) = (left / 3600, left / 60 % 60, left % 60);
            s += &if h > 0 {
                format!(" {h}h{m:02}m{sec:02}s")
            } else {
                format!(" {m:02}m{sec:02}s")
            };
        }
    }
    s
}

/// A progress bar redrawn every 200 ms until dropped.
struct Bar {
    cur: Arc<AtomicU64>,
    /// Nanoseconds from `started` to the last change.
    changed: Arc<AtomicU64>,
    started: Instant,
    total: u64,
    task: tokio::task::JoinHandle<()>,
}

impl Bar {
    fn start(total: u64) -> Bar {
        let cur = Arc::new(AtomicU64::new(0));
        let changed = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let task = {
            let (cur, changed) = (cur.clone(), changed.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(200));
                loop {
                    tick.tick().await;
                    let at = started + Duration::from_nanos(changed.load(Ordering::Relaxed));
                    let line = bar_line(cur.load(Ordering::Relaxed), total, started, at, false);
                    out(&format!("\r{line}"));
                }
            })
        };
        Bar {
            cur,
            changed,
            started,
            total,
            task,
        }
    }

    fn add(&self, n: u64) {
        self.cur.fetch_add(n, Ordering::Relaxed);
        self.changed
            .store(self.started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// The final line and its newline.
    fn finish(self) {
        self.task.abort();
        let line = bar_line(
            self.cur.load(Ordering::Relaxed),
            self.total,
            self.started,
            self.started,
            true,
        );
        out(&format!("\r{line}\n"));
    }

    /// Stop redrawing, leaving the line as it is (an interrupted perf
    /// check: etcdctl's verdict follows on the same line).
    fn stop(self) {
        self.task.abort();
    }
}

/// A key under `prefix`: the zigzag varint of a random 63-bit number,
/// zero-padded to `size` bytes (etcdctl's `binary.PutVarint` into a
/// zeroed buffer).
fn random_key(prefix: &str, size: usize) -> Vec<u8> {
    let mut k = prefix.as_bytes().to_vec();
    let n: i64 = rand::random::<i64>() & i64::MAX;
    let mut z = (n as u64) << 1; // zigzag of a non-negative number
    let mut body = Vec::with_capacity(size);
    while z >= 0x80 {
        body.push((z as u8) | 0x80);
        z >>= 7;
    }
    body.push(z as u8);
    body.resize(size, 0);
    k.extend_from_slice(&body);
    k
}

/// Worker clients: up to [`MAX_CONNECTIONS`] connections.
async fn clients(ctx: &Ctx, workers: usize) -> R<Vec<Client>> {
    let mut v = Vec::new();
    for _ in 0..workers.clamp(1, MAX_CONNECTIONS) {
        v.push(ctx.client().await?);
    }
    Ok(v)
}

/// Refuse a prefix that already holds keys (exit 3).
async fn prefix_empty(c: &Client, prefix: &str, quote_cmd: bool) -> R {
    let r = c
        .get(prefix, Some(GetOptions::new().with_prefix().with_limit(1)))
        .await?;
    if r.kvs.is_empty() {
        return Ok(());
    }
    let cmd = format!("etcdctl del --prefix {prefix}");
    let cmd = if quote_cmd { format!("'{cmd}'") } else { cmd };
    Err(Fail::new(
        EXIT_INVALID_INPUT,
        format!(
            "prefix {} has keys. Delete with {cmd} first",
            print::goq(prefix.as_bytes())
        ),
    ))
}

/// Latencies (s) of the successful puts and the messages of the failed.
#[derive(Default)]
struct Results {
    lats: Vec<f64>,
    errs: Vec<String>,
}

/// `workers` tasks taking puts from `rx` until it closes.
fn spawn_workers(
    clients: &[Client],
    workers: usize,
    rx: tokio::sync::mpsc::Receiver<(Vec<u8>, Vec<u8>)>,
    on_done: impl Fn() + Send + Sync + 'static,
) -> Vec<tokio::task::JoinHandle<Results>> {
    let rx = Arc::new(Mutex::new(rx));
    let on_done = Arc::new(on_done);
    (0..workers)
        .map(|i| {
            let c = clients[i % clients.len()].clone();
            let (rx, on_done) = (rx.clone(), on_done.clone());
            tokio::spawn(async move {
                let mut res = Results::default();
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some((k, v)) = next else { break };
                    let st = Instant::now();
                    match c.put(k, v, None).await {
                        Ok(_) => res.lats.push(st.elapsed().as_secs_f64()),
                        Err(e) => res.errs.push(e.message().to_string()),
                    }
                    on_done();
                }
                res
            })
        })
        .collect()
}

async fn gather(handles: Vec<tokio::task::JoinHandle<Results>>) -> Results {
    let mut all = Results::default();
    for h in handles {
        if let Ok(r) = h.await {
            all.lats.extend(r.lats);
            all.errs.extend(r.errs);
        }
    }
    all
}

/// etcdctl's check-time compaction (physical), with its two lines.
async fn compact(c: &Client, rev: i64) -> R {
    out(&format!("Compacting with revision {rev}\n"));
    c.compact(rev, true).await?;
    out(&format!("Compacted with revision {rev}\n"));
    Ok(())
}

/// etcdctl's check-time defragmentation of every endpoint; the first
/// failure ends the command (exit 1).
async fn defrag_all(ctx: &Ctx) -> R {
    for ep in &ctx.g.endpoints {
        let q = print::goq(ep.as_bytes());
        out(&format!("Defragmenting {q}\n"));
        ctx.client_for(std::slice::from_ref(ep))
            .await?
            .defragment()
            .await?;
        out(&format!("Defragmented {q}\n"));
    }
    Ok(())
}

/// Delete the prefix: the revision after it.
async fn delete_prefix(c: &Client, prefix: &str) -> R<i64> {
    let r = c
        .delete(prefix, Some(DeleteOptions::new().with_prefix()))
        .await?;
    Ok(r.header.map_or(0, |h| h.revision))
}

/// `check perf|datascale`.
pub async fn run(ctx: &Ctx, cmd: CheckCmd) -> R {
    match cmd {
        CheckCmd::Perf(a) => perf(ctx, a).await,
        CheckCmd::Datascale(a) => datascale(ctx, a).await,
    }
}

async fn perf(ctx: &Ctx, a: CheckArgs) -> R {
    let (limit, workers, secs) = PERF[load_index(&a.load)?];
    let cs = clients(ctx, workers).await?;
    prefix_empty(&cs[0], &a.prefix, true).await?;
    let interrupted = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(tokio::sync::Notify::new());
    {
        let (interrupted, stop) = (interrupted.clone(), stop.clone());
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupted.store(true, Ordering::SeqCst);
                stop.notify_waiters();
            }
        });
    }
    let bar = Bar::start(secs);
    let (tx, rx) = tokio::sync::mpsc::channel(workers);
    let handles = spawn_workers(&cs, workers, rx, || {});
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let value = vec![0u8; 1024];
    let prefix = a.prefix.clone();
    // The rate limiter: one put every 1/limit s, until the deadline or
    // an interrupt.
    let producer = {
        let stop = stop.clone();
        let interrupted = interrupted.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / limit as f64));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = stop.notified() => break,
                }
                if interrupted.load(Ordering::SeqCst)
                    || tx
                        .send((random_key(&prefix, 256), value.clone()))
                        .await
                        .is_err()
                {
                    break;
                }
            }
        })
    };
    // One second of the bar per second of the run.
    let ticker = {
        let stop = stop.clone();
        let bar_cur = bar.cur.clone();
        let bar_changed = bar.changed.clone();
        let started = bar.started;
        tokio::spawn(async move {
            for _ in 0..secs {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.notified() => return,
                }
                bar_cur.fetch_add(1, Ordering::Relaxed);
                bar_changed.store(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
        })
    };
    let _ = producer.await;
    let res = gather(handles).await;
    let total = start.elapsed();
    if interrupted.load(Ordering::SeqCst) {
        ticker.abort();
        bar.stop();
    } else {
        let _ = ticker.await;
        bar.finish();
    }
    // etcdctl reports a failed deletion and goes on, without compacting.
    match delete_prefix(&cs[0], &a.prefix).await {
        Ok(rev) if a.auto_compact => compact(&cs[0], rev).await?,
        Ok(_) => {}
        Err(f) => out(&format!(
            "FAIL: Cleanup failed during key deletion: ERROR({})\n",
            f.msg
        )),
    }
    if a.auto_defrag {
        defrag_all(ctx).await?;
    }
    let s = Stats::of(&res.lats, &res.errs, total);
    let mut ok = true;
    let mut o = String::new();
    if !s.errors.is_empty() {
        o += "FAIL: too many errors\n";
        for (m, n) in &s.errors {
            o += &format!("FAIL: ERROR({m}) -> {n}\n");
        }
        ok = false;
    }
    if s.rps / limit as f64 <= 0.9 {
        o += &format!("FAIL: Throughput too low: {} writes/s\n", s.rps as i64);
        ok = false;
    } else {
        o += &format!("PASS: Throughput is {} writes/s\n", s.rps as i64);
    }
    if s.slowest > 0.5 {
        o += &format!("Slowest request took too long: {:.6}s\n", s.slowest);
        ok = false;
    } else {
        o += &format!("PASS: Slowest request took {:.6}s\n", s.slowest);
    }
    if s.stddev > 0.1 {
        o += &format!("FAIL: Stddev too high: {:.6}s\n", s.stddev);
        ok = false;
    } else {
        o += &format!("PASS: Stddev is {:.6}s\n", s.stddev);
    }
    o += if ok { "PASS\n" } else { "FAIL\n" };
    out(&o);
    if ok {
        Ok(())
    } else {
        Err(Fail::new(EXIT_ERROR, ""))
    }
}

/// The first endpoint's `process_resident_memory_bytes` (0: unreadable).
async fn resident_bytes(ctx: &Ctx) -> f64 {
    let Some(ep) = ctx.g.endpoints.first() else {
        return 0.0;
    };
    match metrics(ctx, ep).await {
        Some(text) => text
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0),
        None => 0.0,
    }
}

/// GET `/metrics` of `ep` (`host:port`, `http://…` or `https://…`; TLS
/// with the global TLS flags), within the command timeout.
async fn metrics(ctx: &Ctx, ep: &str) -> Option<String> {
    let tls = ctx.tls();
    let (https, hostport) = match ep.split_once("://") {
        Some((scheme, rest)) => (scheme == "https", rest),
        None => (tls.is_some(), ep),
    };
    let hostport = hostport.trim_end_matches('/').to_string();
    let fetch = async {
        let tcp = tokio::net::TcpStream::connect(&hostport).await.ok()?;
        let req = hyper::Request::get("/metrics")
            .header(hyper::header::HOST, &hostport)
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .ok()?;
        let body = if https {
            let t = tls.unwrap_or_default();
            let cfg = t.client_config(&[b"http/1.1"]).ok()?;
            let host = hostport
                .rsplit_once(':')
                .map_or(hostport.as_str(), |(h, _)| h);
            let name = t.server_name(host).ok()?;
            let s = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, tcp)
                .await
                .ok()?;
            get(s, req).await?
        } else {
            get(tcp, req).await?
        };
        String::from_utf8(body.to_vec()).ok()
    };
    tokio::time::timeout(ctx.g.command_timeout, fetch)
        .await
        .ok()
        .flatten()
}

/// One HTTP/1.1 request on `io`; the whole body.
async fn get<IO>(
    io: IO,
    req: hyper::Request<http_body_util::Empty<bytes::Bytes>>,
) -> Option<bytes::Bytes>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use http_body_util::BodyExt;
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .ok()?;
    tokio::spawn(conn);
    let body = send.send_request(req).await.ok()?.into_body();
    Some(body.collect().await.ok()?.to_bytes())
}

async fn datascale(ctx: &Ctx, a: DatascaleArgs) -> R {
    let (limit, kv_size, workers) = DATASCALE[load_index(&a.load)?];
    let cs = clients(ctx, workers).await?;
    prefix_empty(&cs[0], &a.prefix, false).await?;
    let before = resident_bytes(ctx).await;
    if before == 0.0 {
        out("FAIL: Could not read process_resident_memory_bytes before the put operations.\n");
        return Err(Fail::new(EXIT_ERROR, ""));
    }
    out(&format!(
        "Start data scale check for work load [{limit} key-value pairs, {kv_size} bytes per key-value, {workers} concurrent clients].\n"
    ));
    let bar = Arc::new(Bar::start(limit));
    let (tx, rx) = tokio::sync::mpsc::channel(workers);
    let handles = {
        let bar = bar.clone();
        spawn_workers(&cs, workers, rx, move || bar.add(1))
    };
    let value = vec![0u8; 512];
    for _ in 0..limit {
        if tx
            .send((random_key(&a.prefix, 512), value.clone()))
            .await
            .is_err()
        {
            break;
        }
    }
    drop(tx);
    let res = gather(handles).await;
    if let Ok(bar) = Arc::try_unwrap(bar) {
        bar.finish();
    }
    let after = resident_bytes(ctx).await;
    if after == 0.0 {
        out("FAIL: Could not read process_resident_memory_bytes after the put operations.\n");
        return Err(Fail::new(EXIT_ERROR, ""));
    }
    let rev = delete_prefix(&cs[0], &a.prefix).await?;
    if a.auto_compact {
        compact(&cs[0], rev).await?;
    }
    if a.auto_defrag {
        defrag_all(ctx).await?;
    }
    let s = Stats::of(&res.lats, &res.errs, Duration::ZERO);
    if !s.errors.is_empty() {
        let mut o = String::from("FAIL: too many errors\n");
        for (m, n) in &s.errors {
            o += &format!("FAIL: ERROR({m}) -> {n}\n");
        }
        o += "FAIL\n";
        out(&o);
        return Err(Fail::new(EXIT_ERROR, ""));
    }
    let mb = (after - before) / (1024.0 * 1024.0);
    out(&format!(
        "PASS: Approximate system memory used : {mb:.2} MB.\n"
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads() {
        for (names, i) in [
            (["s", "small"], 0),
            (["m", "medium"], 1),
            (["l", "large"], 2),
            (["xl", "xLarge"], 3),
        ] {
            for n in names {
                assert_eq!(load_index(n).ok(), Some(i), "{n}");
            }
        }
        let f = load_index("xs").unwrap_err();
        assert_eq!((f.code, f.msg.as_str()), (4, "unknown load option xs"));
    }

    #[test]
    fn stats_as_etcds_report() {
        let s = Stats::of(
            &[0.1, 0.3],
            &["boom".into(), "bang".into(), "boom".into()],
            Duration::from_secs(2),
        );
        assert_eq!(s.rps, 1.0);
        assert_eq!(s.slowest, 0.3);
        assert!((s.stddev - 0.1).abs() < 1e-12, "{}", s.stddev);
        assert_eq!(s.errors, [("boom".to_string(), 2), ("bang".to_string(), 1)]);
        assert_eq!(Stats::of(&[], &[], Duration::ZERO), Stats::default());
    }

    #[test]
    fn bar_lines_as_etcdctls() {
        let t0 = Instant::now();
        assert_eq!(bar_line(0, 60, t0, t0, false), " 0 / 60    0.00%");
        assert_eq!(bar_line(3, 60, t0, t0, false), " 3 / 60    5.00%");
        let t = bar_line(10_000, 10_000, t0, t0, true);
        assert_eq!(t, " 10000 / 10000  100.00% 0s");
    }

    #[test]
    fn keys_are_prefix_and_padded_varint() {
        let k = random_key("/p/", 256);
        assert_eq!(k.len(), 3 + 256);
        assert!(k.starts_with(b"/p/"));
        assert_eq!(k[k.len() - 1], 0);
        assert_ne!(random_key("/p/", 256), k);
    }
}
