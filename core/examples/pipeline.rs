//! The write pipeline without the network: propose → durable (WAL
//! fdatasync) → applied → answered, in one process, next to a bare
//! `pwrite` + `fdatasync` loop on the same filesystem, so the write path's
//! own cost is a number of its own (issue #19).
//!
//! ```text
//! cargo run --release -p ferrocd-core --example pipeline -- \
//!     [--proposers 1,16,256] [--shards 2] [--total 20000] [--warmup 1000] \
//!     [--value-size 256] [--keys 1000] [--max-seconds 60] [--dir DIR] [--quick]
//! ```
//!
//! Per proposer count, on a fresh single-member node in a temp dir under
//! `--dir` (default: the system temp dir):
//!
//! 1. bare `pwrite` of 300 B at increasing offsets of a preallocated
//!    (fallocate) file + `fdatasync`, 2000 times: the disk's own floor;
//!    then the same with a spinning thread on the measuring core (on an
//!    idle vCPU of the 2-core dev VM the waiter wakes about a 4 ms timer
//!    tick late; the node's busy cores do not pay that);
//! 2. `Node::start` in a one-worker tokio runtime (thread `raft`), as
//!    `server::Server` runs it;
//! 3. `--shards` threads, pinned like the server's shards, each a
//!    current-thread tokio runtime running its share of the proposers;
//!    every proposer loops on `KvService::put` (8-byte keys over `--keys`
//!    keys) until `--warmup` puts, then (all warmed up) until `--total`
//!    more, or `--max-seconds` per phase.
//!
//! Reported per count: latency of a put as its caller sees it (p50, p99,
//! p99.9), throughput, process CPU per 1000 puts over the measured phase
//! (`getrusage(RUSAGE_SELF)`, user + system; split by thread from
//! `/proc/self/task/*/schedstat`: `raft`, `wal`, `iou-wrk` (io_uring's
//! kernel workers, which run the WAL's fdatasync), the proposer shards, and
//! the rest, which includes threads that ended during the run), and the
//! WAL's fdatasyncs from the node's `/metrics` histogram. No network: the
//! whole process is the server plus the proposer loops, which stand in for
//! the gRPC handlers on the shards.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use ferrocd_core::Node;
use ferrocd_mvcc as mvcc;
use ferrocd_net::{KvService, Metrics};
use hdrhistogram::Histogram;

#[derive(Debug, Parser)]
#[command(about = "ferrocd's write pipeline in process, next to bare fdatasync")]
struct Args {
    /// Concurrent proposers; a list runs each count on a fresh node.
    #[arg(long, value_delimiter = ',', default_value = "1,16,256")]
    proposers: Vec<usize>,
    /// Proposer threads (current-thread runtimes, pinned as the server's).
    #[arg(long, default_value_t = 2)]
    shards: usize,
    /// Measured puts per proposer count.
    #[arg(long, default_value_t = 20_000)]
    total: u64,
    /// Puts before the measured phase.
    #[arg(long, default_value_t = 1_000)]
    warmup: u64,
    /// Value bytes per put.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Distinct keys (8 bytes each).
    #[arg(long, default_value_t = 1_000)]
    keys: u64,
    /// Time limit of each phase (warmup, measured) per proposer count.
    #[arg(long, default_value_t = 60)]
    max_seconds: u64,
    /// Where the temp data dirs go (the filesystem under test).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Small totals (2000 puts after 200, 200 bare fdatasyncs).
    #[arg(long)]
    quick: bool,
}

/// Bare fdatasyncs measured before each node starts, and their size.
const BARE_SYNCS: usize = 2_000;
const BARE_BYTES: usize = 300;

fn hist() -> Histogram<u64> {
    // Nanoseconds, up to 10 minutes.
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("histogram bounds")
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1_000.0
}

/// `pwrite` + `fdatasync` of `BARE_BYTES` at increasing offsets of a file
/// preallocated as the WAL preallocates its segments (fallocate: unwritten
/// extents, so both pay the same metadata work per sync).
/// Returns the latencies and the calling thread's CPU over the loop.
fn bare_fdatasync(dir: &Path, count: usize) -> anyhow::Result<(Histogram<u64>, Duration)> {
    use std::os::fd::AsRawFd;
    let path = dir.join("bare.dat");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    let len = (count * BARE_BYTES).next_multiple_of(1 << 20) as libc::off_t;
    // SAFETY: a plain syscall on a descriptor this function owns; no
    // memory is passed.
    let rc = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, len) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("fallocate");
    }
    f.sync_all().context("fsync after fallocate")?;
    let buf = vec![0x5a_u8; BARE_BYTES];
    let mut h = hist();
    let cpu0 = cpu(libc::RUSAGE_THREAD);
    for i in 0..count {
        let t = Instant::now();
        f.write_all_at(&buf, (i * BARE_BYTES) as u64)
            .context("pwrite")?;
        f.sync_data().context("fdatasync")?;
        h.record(t.elapsed().as_nanos() as u64)?;
    }
    let used = cpu(libc::RUSAGE_THREAD) - cpu0;
    drop(f);
    std::fs::remove_file(&path).context("removing the bare file")?;
    Ok((h, used))
}

/// [`bare_fdatasync`] on a thread pinned to one core that a spinning
/// thread keeps busy. On this VM a thread that waits for fdatasync on an
/// idle vCPU wakes up about a timer tick (4 ms) late; a busy core (as the
/// node's are under load) wakes it in time. Both numbers are printed so
/// the node is compared with the floor that applies to it.
fn bare_fdatasync_busy(dir: &Path, count: usize) -> anyhow::Result<(Histogram<u64>, Duration)> {
    use std::sync::atomic::AtomicBool;
    let core = core_affinity::get_core_ids()
        .and_then(|c| c.into_iter().next())
        .context("no core ids")?;
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let spinner = s.spawn(|| {
            core_affinity::set_for_current(core);
            // Bounded: the measurement stops it; the cap guards a stuck one.
            let cap = Instant::now() + Duration::from_secs(600);
            while !stop.load(Ordering::Relaxed) && Instant::now() < cap {
                std::hint::spin_loop();
            }
        });
        let h = s
            .spawn(|| {
                core_affinity::set_for_current(core);
                bare_fdatasync(dir, count)
            })
            .join();
        stop.store(true, Ordering::Relaxed);
        let _ = spinner.join();
        h.map_err(|_| anyhow::anyhow!("the bare fdatasync thread panicked"))?
    })
}

/// User + system CPU of the whole process so far.
fn process_cpu() -> Duration {
    cpu(libc::RUSAGE_SELF)
}

/// User + system CPU of `who` (`RUSAGE_SELF`, `RUSAGE_THREAD`) so far.
fn cpu(who: libc::c_int) -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one `rusage` into the pointer it gets,
    // which points at a zeroed one of the right size.
    let rc = unsafe { libc::getrusage(who, ru.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
    // SAFETY: zeroed is a valid rusage, and getrusage succeeded.
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1_000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU time (ns, from schedstat) of each thread, by thread id, with its
/// name (`comm`).
type Threads = HashMap<u64, (String, u64)>;

/// One thread's name and CPU time from its /proc directory.
fn read_thread(dir: &Path) -> Option<(String, u64)> {
    let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
    let stat = std::fs::read_to_string(dir.join("schedstat")).ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some((comm.trim().to_owned(), ns))
}

/// Every live thread of this process; `None` where /proc does not say.
fn thread_cpu() -> Option<Threads> {
    let mut out = HashMap::new();
    for e in std::fs::read_dir("/proc/self/task").ok()? {
        let e = e.ok()?;
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        // A thread may end between the listing and the reads.
        if let Some(t) = read_thread(&e.path()) {
            out.insert(tid, t);
        }
    }
    Some(out)
}

/// The calling thread's entry, read before it ends (the proposer shards
/// end before the measured phase's last reading).
fn own_thread_cpu() -> Option<(u64, (String, u64))> {
    // SAFETY: gettid takes nothing and cannot fail.
    let tid = unsafe { libc::gettid() } as u64;
    Some((tid, read_thread(Path::new("/proc/thread-self"))?))
}

/// A thread name without its number (`iou-wrk-1234` → `iou-wrk`), so a
/// pool's threads add up under one name.
fn thread_kind(comm: &str) -> &str {
    comm.trim_end_matches(|c: char| c.is_ascii_digit())
        .trim_end_matches('-')
}

/// CPU per thread kind between two readings, most first. Threads that
/// ended in between (and were not added to `after`) are missing.
fn cpu_by_kind(before: &Threads, after: &Threads) -> Vec<(String, Duration)> {
    let mut by: HashMap<String, Duration> = HashMap::new();
    for (tid, (comm, ns)) in after {
        let was = before.get(tid).map_or(0, |(_, ns)| *ns);
        *by.entry(thread_kind(comm).to_owned()).or_default() +=
            Duration::from_nanos(ns.saturating_sub(was));
    }
    let mut v: Vec<_> = by.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// The WAL fdatasync histogram's count and sum (seconds), from the
/// node's metrics as `/metrics` renders them.
fn wal_fsyncs(metrics: &Metrics) -> Option<(u64, f64)> {
    let text = String::from_utf8(metrics.render()).ok()?;
    let value = |name: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse::<f64>()
                .ok()
        })
    };
    Some((
        value("etcd_disk_wal_fsync_duration_seconds_count")? as u64,
        value("etcd_disk_wal_fsync_duration_seconds_sum")?,
    ))
}

/// One loopback port that was free a moment ago.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A single-member config on `data_dir`, parsed as the `ferrocd` binary
/// parses its flags. Only the peer port is bound by `Node::start`.
fn config(data_dir: &Path) -> anyhow::Result<ferrocd_core::Config> {
    let client = format!("http://127.0.0.1:{}", free_port()?);
    let peer = format!("http://127.0.0.1:{}", free_port()?);
    let dir = data_dir.to_str().context("data dir is not UTF-8")?;
    let args = [
        "--name",
        "pipeline",
        "--data-dir",
        dir,
        "--listen-client-urls",
        &client,
        "--advertise-client-urls",
        &client,
        "--listen-peer-urls",
        &peer,
        "--initial-advertise-peer-urls",
        &peer,
        "--initial-cluster",
        &format!("pipeline={peer}"),
    ];
    let parsed = ferrocd_core::config::parse(args, &[])?;
    for w in parsed.warnings {
        eprintln!("config: {w}");
    }
    Ok(parsed.config)
}

/// One proposer count's results.
struct Run {
    proposers: usize,
    /// Bare fdatasync latencies and the measuring thread's CPU.
    bare: (Histogram<u64>, Duration),
    /// The same with the measuring core kept busy.
    bare_busy: (Histogram<u64>, Duration),
    lat: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
    cpu: Duration,
    /// CPU by thread kind (`raft`, `wal`, `pipe-shard`, ...).
    by_thread: Option<Vec<(String, Duration)>>,
    fsyncs: Option<(u64, f64)>,
}

/// What the proposers share.
struct Shared {
    node: Arc<Node>,
    value: Vec<u8>,
    keys: u64,
    warmup: u64,
    total: u64,
    max: Duration,
    /// Tickets handed out in each phase.
    warm_issued: AtomicU64,
    issued: AtomicU64,
    /// Everyone warmed up; then: the measured phase may start.
    warmed: tokio::sync::Barrier,
    go: tokio::sync::Barrier,
}

/// What one proposer measured.
#[derive(Default)]
struct Tally {
    lat: Option<Histogram<u64>>,
    errors: u64,
    first_error: Option<String>,
}

fn key(ticket: u64, keys: u64) -> Vec<u8> {
    // Spread consecutive tickets over the key space.
    format!("k{:07}", ticket.wrapping_mul(2_654_435_761) % keys).into_bytes()
}

async fn proposer(s: Arc<Shared>) -> Tally {
    let mut t = Tally::default();
    let deadline = Instant::now() + s.max;
    loop {
        if Instant::now() >= deadline {
            break;
        }
        let n = s.warm_issued.fetch_add(1, Ordering::Relaxed);
        if n >= s.warmup {
            break;
        }
        let req = mvcc::PutRequest::new(key(n, s.keys), s.value.clone());
        if let Err(e) = KvService::put(&*s.node, None, req).await {
            t.errors += 1;
            t.first_error.get_or_insert_with(|| e.to_string());
        }
    }
    s.warmed.wait().await;
    s.go.wait().await;
    let mut h = hist();
    let deadline = Instant::now() + s.max;
    loop {
        if Instant::now() >= deadline {
            break;
        }
        let n = s.issued.fetch_add(1, Ordering::Relaxed);
        if n >= s.total {
            break;
        }
        let req = mvcc::PutRequest::new(key(n, s.keys), s.value.clone());
        let start = Instant::now();
        match KvService::put(&*s.node, None, req).await {
            Ok(_) => h
                .record(start.elapsed().as_nanos() as u64)
                .expect("in bounds"),
            Err(e) => {
                t.errors += 1;
                t.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    t.lat = Some(h);
    t
}

fn run_one(args: &Args, parent: &Path, proposers: usize, bare_count: usize) -> anyhow::Result<Run> {
    let tmp = tempfile::Builder::new()
        .prefix("ferrocd-pipeline-")
        .tempdir_in(parent)
        .with_context(|| format!("temp dir in {}", parent.display()))?;
    // The disk first, right before the node uses it.
    let bare = bare_fdatasync(tmp.path(), bare_count)?;
    let bare_busy = bare_fdatasync_busy(tmp.path(), bare_count)?;

    let raft_rt = ferrocd_core::server::raft_runtime().context("raft runtime")?;
    let metrics = Metrics::new();
    // A peer port taken between the probe and the bind: try other ports
    // on a fresh data dir.
    let mut node = None;
    for attempt in 0..3 {
        let data_dir = tmp.path().join(format!("data{attempt}"));
        let cfg = config(&data_dir)?;
        match raft_rt.block_on(Node::start(&cfg, metrics.clone())) {
            Ok(n) => {
                node = Some(n);
                break;
            }
            Err(e) => eprintln!("node start (attempt {attempt}): {e:#}"),
        }
    }
    let node = node.context("the node did not start")?;

    let shards = args.shards.max(1).min(proposers.max(1));
    let shared = Arc::new(Shared {
        node: node.clone(),
        value: vec![b'v'; args.value_size],
        keys: args.keys.max(1),
        warmup: args.warmup,
        total: args.total,
        max: Duration::from_secs(args.max_seconds),
        warm_issued: AtomicU64::new(0),
        issued: AtomicU64::new(0),
        warmed: tokio::sync::Barrier::new(proposers + 1),
        go: tokio::sync::Barrier::new(proposers + 1),
    });
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mut handles = Vec::new();
    for i in 0..shards {
        let mine = proposers / shards + usize::from(i < proposers % shards);
        let shared = shared.clone();
        let core = (!cores.is_empty()).then(|| cores[i % cores.len()]);
        let h = std::thread::Builder::new()
            .name(format!("pipe-shard-{i}"))
            .spawn(move || {
                if let Some(c) = core {
                    core_affinity::set_for_current(c);
                }
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("shard runtime");
                let tallies = rt.block_on(async move {
                    let tasks: Vec<_> = (0..mine)
                        .map(|_| tokio::spawn(proposer(shared.clone())))
                        .collect();
                    let mut out = Vec::new();
                    for t in tasks {
                        out.push(t.await.expect("proposer task"));
                    }
                    out
                });
                (tallies, own_thread_cpu())
            })
            .context("spawning a shard")?;
        handles.push(h);
    }

    // Both barriers: a proposer that panicked would leave them waiting,
    // so the wait is bounded.
    let limit = Duration::from_secs(args.max_seconds + 30);
    raft_rt
        .block_on(async { tokio::time::timeout(limit, shared.warmed.wait()).await })
        .context("warmup did not finish")?;
    let cpu0 = process_cpu();
    let threads0 = thread_cpu();
    let fsyncs0 = wal_fsyncs(&metrics);
    let t0 = Instant::now();
    raft_rt
        .block_on(async { tokio::time::timeout(limit, shared.go.wait()).await })
        .context("starting the measured phase")?;
    let mut tallies = Vec::new();
    let mut ended = Vec::new();
    for h in handles {
        match h.join() {
            Ok((t, own)) => {
                tallies.extend(t);
                ended.extend(own);
            }
            Err(_) => bail!("a shard thread panicked"),
        }
    }
    let elapsed = t0.elapsed();
    let cpu = process_cpu() - cpu0;
    let threads1 = thread_cpu().map(|mut t| {
        t.extend(ended);
        t
    });
    let fsyncs1 = wal_fsyncs(&metrics);

    let mut lat = hist();
    let mut errors = 0;
    let mut first_error = None;
    for t in tallies {
        if let Some(h) = &t.lat {
            lat.add(h)?;
        }
        errors += t.errors;
        if first_error.is_none() {
            first_error = t.first_error;
        }
    }
    drop(shared);

    // As `Server::shutdown`: stop raft, flush, join the WAL thread once
    // every handle to the node is gone.
    raft_rt.block_on(node.shutdown());
    let worker = node.take_wal_worker();
    drop(node);
    raft_rt.shutdown_timeout(Duration::from_secs(5));
    if let Some(w) = worker {
        let _ = w.join();
    }
    let path = tmp.path().to_path_buf();
    tmp.close()
        .with_context(|| format!("removing {}", path.display()))?;

    Ok(Run {
        proposers,
        bare,
        bare_busy,
        lat,
        errors,
        first_error,
        elapsed,
        cpu,
        by_thread: threads0
            .zip(threads1)
            .map(|(before, after)| cpu_by_kind(&before, &after)),
        fsyncs: fsyncs0
            .zip(fsyncs1)
            .map(|((c0, s0), (c1, s1))| (c1.saturating_sub(c0), s1 - s0)),
    })
}

/// The server's allocator (see `core/src/main.rs`), so the figures are
/// the server's.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERROCD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,openraft=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_thread_names(true)
        .init();
    let mut bare_count = BARE_SYNCS;
    if args.quick {
        args.total = args.total.min(2_000);
        args.warmup = args.warmup.min(200);
        bare_count = 200;
    }
    if args.proposers.is_empty() || args.proposers.contains(&0) {
        bail!("--proposers: give one or more counts above 0");
    }
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    println!(
        "pipeline: {} measured puts after {} warmup, {} B values, {} keys, {} shard threads, dir {}",
        args.total,
        args.warmup,
        args.value_size,
        args.keys,
        args.shards.max(1),
        parent.display()
    );
    let mut runs = Vec::new();
    for &p in &args.proposers {
        let r = run_one(&args, &parent, p, bare_count)?;
        eprintln!(
            "proposers {p}: {} puts in {:.2} s",
            r.lat.len(),
            r.elapsed.as_secs_f64()
        );
        runs.push(r);
    }

    println!();
    println!(
        "| proposers | puts | errors | ops/s | p50 µs | p99 µs | p99.9 µs | CPU ms/1k puts | raft | wal | iou-wrk | shards | rest | WAL fdatasyncs | puts/fdatasync | mean fdatasync µs |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &runs {
        let puts = r.lat.len();
        let per_k = |d: Duration| {
            if puts == 0 {
                f64::NAN
            } else {
                d.as_secs_f64() * 1e3 * 1_000.0 / puts as f64
            }
        };
        let groups = match &r.by_thread {
            Some(by) => {
                let of = |kind: &str| {
                    by.iter()
                        .find(|(k, _)| k == kind)
                        .map_or(Duration::ZERO, |(_, d)| *d)
                };
                let (raft, wal, uring, shards) =
                    (of("raft"), of("wal"), of("iou-wrk"), of("pipe-shard"));
                let rest = r.cpu.saturating_sub(raft + wal + uring + shards);
                format!(
                    "{:.1} | {:.1} | {:.1} | {:.1} | {:.1}",
                    per_k(raft),
                    per_k(wal),
                    per_k(uring),
                    per_k(shards),
                    per_k(rest)
                )
            }
            None => "– | – | – | – | –".into(),
        };
        let fsyncs = match r.fsyncs {
            Some((n, secs)) if n > 0 => format!(
                "{n} | {:.1} | {:.0}",
                puts as f64 / n as f64,
                secs * 1e6 / n as f64
            ),
            Some((n, _)) => format!("{n} | – | –"),
            None => "– | – | –".into(),
        };
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} | {} | {} |",
            r.proposers,
            puts,
            r.errors,
            puts as f64 / r.elapsed.as_secs_f64(),
            us(r.lat.value_at_quantile(0.5)),
            us(r.lat.value_at_quantile(0.99)),
            us(r.lat.value_at_quantile(0.999)),
            per_k(r.cpu),
            groups,
            fsyncs
        );
    }
    println!();
    for r in &runs {
        let line = |(h, cpu): &(Histogram<u64>, Duration)| {
            format!(
                "p50 {:.0} µs, p90 {:.0} µs, CPU {:.0} µs per sync",
                us(h.value_at_quantile(0.5)),
                us(h.value_at_quantile(0.9)),
                cpu.as_secs_f64() * 1e6 / h.len().max(1) as f64
            )
        };
        println!(
            "bare pwrite {BARE_BYTES} B + fdatasync, {} syncs, before proposers={}: {}; with its core kept busy: {}",
            r.bare.0.len(),
            r.proposers,
            line(&r.bare),
            line(&r.bare_busy)
        );
    }
    for r in &runs {
        let Some(by) = &r.by_thread else { continue };
        let puts = r.lat.len().max(1) as f64;
        let listed: Duration = by.iter().map(|(_, d)| *d).sum();
        let mut parts: Vec<String> = by
            .iter()
            .filter(|(_, d)| !d.is_zero())
            .map(|(k, d)| format!("{k} {:.1}", d.as_secs_f64() * 1e6 / puts))
            .collect();
        parts.push(format!(
            "ended threads and rounding {:.1}",
            r.cpu.saturating_sub(listed).as_secs_f64() * 1e6 / puts
        ));
        println!(
            "CPU ms per 1k puts by thread, proposers={}: {}",
            r.proposers,
            parts.join(", ")
        );
    }
    for r in &runs {
        if let Some(e) = &r.first_error {
            println!("proposers={}: first error: {e}", r.proposers);
        }
    }
    Ok(())
}
