//! `ferrobench compare`: etcd and ferrocd side by side on this machine.
//!
//! For each round, workload and target (targets alternate: A B A B), a
//! fresh server (or a 3-member cluster) starts on free loopback ports with
//! a new data dir; the workload runs as a subprocess of this same binary
//! (`ferrobench <subcommand> … -w json --json-out … --hgrm-out …
//! --server-pid …`) against the leader, so any workload subcommand plugs in
//! by name; then the servers are stopped (SIGTERM, SIGKILL after 10 s).
//! Only processes started here are ever signalled, by PID, also on errors
//! and on Ctrl-C / SIGTERM.
//!
//! `--out DIR` receives every run's JSON and `.hgrm`, the rounds of each
//! workload and target merged (`WORKLOAD-TARGET.hgrm`), one SVG per
//! workload, `compare.json` and `compare.md` (see [`crate::table`]).

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use clap::{Args, CommandFactory};
use ferrocd_net::pb::etcdserverpb::StatusRequest;
use ferrocd_net::pb::etcdserverpb::maintenance_client::MaintenanceClient;
use hdrhistogram::Histogram;
use serde_json::json;

use crate::plot::Series;
use crate::table::{Machine, Meta, Row};
use crate::{hgrm, plot, report, table};

/// `ferrobench compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// An etcd server binary to compare; repeat for several. Default:
    /// `/usr/bin/etcd` (Debian's etcd 3.4) if present, and `$ETCD_BIN`
    /// when set.
    #[arg(long, value_name = "PATH")]
    pub etcd: Vec<PathBuf>,
    /// No etcd target.
    #[arg(long, conflicts_with = "etcd")]
    pub no_etcd: bool,
    /// The ferrocd server binary. Default: `ferrocd` beside this
    /// ferrobench, else `target/release/ferrocd`.
    #[arg(long, value_name = "PATH")]
    pub ferrocd: Option<PathBuf>,
    /// No ferrocd target.
    #[arg(long, conflicts_with = "ferrocd")]
    pub no_ferrocd: bool,
    /// Also measure ferrocd over its binary protocol: a target of its own
    /// (`ferrocd fast`), same binary, every workload with `--protocol fast`.
    #[arg(long, conflicts_with = "no_ferrocd")]
    pub ferrocd_fast: bool,
    /// Members per target: 1, or 3 (a cluster; the workload runs against
    /// the leader and server CPU adds up all three).
    #[arg(long, default_value = "1", value_parser = parse_members)]
    pub members: u8,
    /// Workloads, comma-separated: `put`, `range-l` (linearizable reads),
    /// `range-s` (serializable reads), any other workload subcommand of
    /// ferrobench by its name, or a name defined with `--workload-def`.
    #[arg(long, value_delimiter = ',', default_value = "put,range-s,range-l")]
    pub workloads: Vec<String>,
    /// Defines a workload: `NAME=SUBCOMMAND ARGS…`, e.g.
    /// `put-1k=put --val-size 1024` or `put-c1=put --clients 1 --conns 1`.
    /// compare adds `--endpoints`, `--total`, `--server-pid` and the
    /// output options itself, and `--clients`, `--conns` and `--max-secs`
    /// unless the definition sets them.
    #[arg(long, value_name = "NAME=SUBCOMMAND ARGS")]
    pub workload_def: Vec<String>,
    /// Rounds: every workload runs this many times against each target,
    /// targets alternating.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
    /// Concurrent clients of each run.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub clients: u32,
    /// Connections of each run.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub conns: u32,
    /// Requests per run.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub total: u64,
    /// Bound on each run's measured phase, in seconds.
    #[arg(long, default_value_t = 30.0, value_parser = parse_secs)]
    pub max_secs: f64,
    /// Requests sent before each measured run (same workload, not
    /// recorded); 0 for none.
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,
    /// Seconds a server (every member) has to answer before its round
    /// counts as failed.
    #[arg(long, default_value_t = 30.0, value_parser = parse_secs)]
    pub start_timeout_secs: f64,
    /// Where the data dirs go (default: `$TMPDIR`, else `/tmp`). Use a real
    /// disk, not tmpfs, or fsync costs nothing.
    #[arg(long, value_name = "DIR")]
    pub data_root: Option<PathBuf>,
    /// Directory for the results (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Scale of the latency axis of the plots.
    #[arg(long, value_enum, default_value_t = plot::YScale::Linear)]
    pub y_scale: plot::YScale,
    /// No progress lines on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

fn parse_members(s: &str) -> Result<u8, String> {
    match s {
        "1" => Ok(1),
        "3" => Ok(3),
        _ => Err(format!("{s:?}: members must be 1 or 3")),
    }
}

fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!(
            "{s:?}: seconds must be a number above 0 and at most 86400"
        )),
    }
}

/// A workload of the matrix: its name and the ferrobench arguments
/// (subcommand first) that run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Workload {
    pub name: String,
    pub argv: Vec<String>,
}

/// Built-in workload names.
const BUILTIN: [(&str, &[&str]); 3] = [
    ("put", &["put"]),
    ("range-l", &["range", "--consistency", "l"]),
    ("range-s", &["range", "--consistency", "s"]),
];

/// Subcommands that are not workloads.
const NOT_WORKLOADS: [&str; 3] = ["compare", "plot", "help"];

/// ferrobench's workload subcommands, from the command line definition (so
/// workloads added later are found without a change here).
fn workload_subcommands() -> Vec<String> {
    crate::Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .filter(|n| !NOT_WORKLOADS.contains(&n.as_str()))
        .collect()
}

/// Resolves `--workloads` against the built-ins, `--workload-def` and the
/// workload subcommands.
pub(crate) fn resolve_workloads(
    names: &[String],
    defs: &[String],
) -> anyhow::Result<Vec<Workload>> {
    let subcommands = workload_subcommands();
    let mut defined: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in defs {
        let Some((name, spec)) = d.split_once('=') else {
            bail!("--workload-def {d:?}: expected NAME=SUBCOMMAND ARGS…");
        };
        let name = name.trim();
        let argv: Vec<String> = spec.split_whitespace().map(String::from).collect();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            bail!("--workload-def {d:?}: the name may hold only letters, digits, '-', '_' and '.'");
        }
        match argv.first() {
            Some(sub) if subcommands.contains(sub) => {}
            _ => bail!(
                "--workload-def {d:?}: the spec must start with a workload subcommand ({})",
                subcommands.join(", ")
            ),
        }
        if let Some(o) = COMPARE_SETS.iter().find(|o| sets(&argv, o)) {
            bail!("--workload-def {d:?}: compare sets {o} itself");
        }
        defined.insert(name.to_string(), argv);
    }
    let mut out: Vec<Workload> = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        let argv = if let Some(argv) = defined.get(name) {
            argv.clone()
        } else if let Some((_, argv)) = BUILTIN.iter().find(|(n, _)| *n == name) {
            argv.iter().map(|s| s.to_string()).collect()
        } else if subcommands.iter().any(|s| s == name) {
            vec![name.to_string()]
        } else {
            let mut known: Vec<String> = BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
            for s in &subcommands {
                if !known.contains(s) {
                    known.push(s.clone());
                }
            }
            known.extend(defined.keys().cloned());
            bail!(
                "unknown workload {name:?}; known: {} (or define one with --workload-def NAME=\"SUBCOMMAND ARGS\")",
                known.join(", ")
            );
        };
        if out.iter().any(|w| w.name == name) {
            bail!("workload {name:?} listed twice");
        }
        out.push(Workload {
            name: name.to_string(),
            argv,
        });
    }
    if out.is_empty() {
        bail!("no workloads given");
    }
    Ok(out)
}

/// A server binary to compare.
#[derive(Debug, Clone)]
struct Target {
    label: String,
    /// `label` for file names.
    slug: String,
    bin: PathBuf,
    is_etcd: bool,
    /// Drive it over ferrocd's binary protocol.
    fast: bool,
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The targets, etcds first, with labels from `--version`.
fn targets(args: &CompareArgs) -> anyhow::Result<Vec<Target>> {
    let mut etcds: Vec<PathBuf> = args.etcd.clone();
    if etcds.is_empty() && !args.no_etcd {
        let debian = PathBuf::from("/usr/bin/etcd");
        if is_executable(&debian) {
            etcds.push(debian);
        }
        if let Some(p) = std::env::var_os("ETCD_BIN").filter(|p| !p.is_empty()) {
            let p = PathBuf::from(p);
            if !is_executable(&p) {
                bail!("$ETCD_BIN {} is not an executable file", p.display());
            }
            etcds.push(p);
        }
    }
    let mut out: Vec<Target> = Vec::new();
    for bin in etcds {
        if !is_executable(&bin) {
            bail!("--etcd {}: not an executable file", bin.display());
        }
        let version = run_bounded(Command::new(&bin).arg("--version"), Duration::from_secs(10))
            .with_context(|| format!("{} --version", bin.display()))?;
        let label = version
            .lines()
            .find_map(|l| l.strip_prefix("etcd Version:"))
            .map_or_else(
                || format!("etcd {}", bin.display()),
                |v| format!("etcd {}", v.trim()),
            );
        out.push(Target {
            slug: slug(&label),
            label,
            bin,
            is_etcd: true,
            fast: false,
        });
    }
    if !args.no_ferrocd {
        let bin = match &args.ferrocd {
            Some(p) if is_executable(p) => p.clone(),
            Some(p) => bail!("--ferrocd {}: not an executable file", p.display()),
            None => default_ferrocd().context(
                "no ferrocd binary beside ferrobench nor at target/release/ferrocd \
                 (cargo build --release -p ferrocd-core, or pass --ferrocd PATH or --no-ferrocd)",
            )?,
        };
        if args.ferrocd_fast {
            out.push(Target {
                label: "ferrocd fast".into(),
                slug: "ferrocd-fast".into(),
                bin: bin.clone(),
                is_etcd: false,
                fast: true,
            });
        }
        out.push(Target {
            label: "ferrocd".into(),
            slug: "ferrocd".into(),
            bin,
            is_etcd: false,
            fast: false,
        });
    }
    // Two etcds of one version still need distinct labels.
    for i in 1..out.len() {
        let mut n = 2;
        let base = out[i].label.clone();
        while out[..i].iter().any(|t| t.label == out[i].label) {
            out[i].label = format!("{base} #{n}");
            out[i].slug = slug(&out[i].label);
            n += 1;
        }
    }
    if out.is_empty() {
        bail!(
            "nothing to compare: no etcd found (--etcd PATH, $ETCD_BIN or /usr/bin/etcd) and --no-ferrocd"
        );
    }
    Ok(out)
}

fn default_ferrocd() -> Option<PathBuf> {
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("ferrocd")));
    sibling
        .into_iter()
        .chain([PathBuf::from("target/release/ferrocd")])
        .find(|p| is_executable(p))
}

/// Set by SIGINT, SIGTERM and SIGHUP while `compare` runs.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let handler = on_signal as extern "C" fn(libc::c_int);
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe; `signal` is given a valid signal number and a
        // function with the C ABI it expects.
        unsafe {
            libc::signal(sig, handler as libc::sighandler_t);
        }
    }
}

fn check_interrupted() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted; stopped the processes started so far");
    }
    Ok(())
}

/// Sends `sig` to a child of ours (by its PID) unless it has been reaped.
fn signal_child(child: &mut Child, sig: libc::c_int) {
    if matches!(child.try_wait(), Ok(None)) {
        let pid = child.id() as libc::pid_t;
        // SAFETY: kill takes no pointers; pid is our own unreaped child, so
        // it cannot have been reused by another process.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Stops children: SIGTERM to all, then SIGKILL to those still running
/// after 10 s; reaps them all.
fn stop_children(children: &mut [&mut Child]) {
    for c in children.iter_mut() {
        signal_child(c, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for c in children.iter_mut() {
        while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(c.try_wait(), Ok(None)) {
            eprintln!("pid {} ignored SIGTERM for 10 s; SIGKILL", c.id());
            signal_child(c, libc::SIGKILL);
        }
        let _ = c.wait();
    }
}

/// Waits for `child` up to `limit`; stops it on timeout or interruption.
fn wait_bounded(child: &mut Child, limit: Duration) -> anyhow::Result<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if INTERRUPTED.load(Ordering::SeqCst) || Instant::now() >= deadline {
            stop_children(&mut [child]);
            check_interrupted()?;
            bail!(
                "pid {} still running after {:.0} s; stopped",
                child.id(),
                limit.as_secs_f64()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a short command to completion (bounded) and returns its stdout.
fn run_bounded(cmd: &mut Command, limit: Duration) -> anyhow::Result<String> {
    let out = tempfile_in(&std::env::temp_dir(), "ferrobench-out")?;
    let mut child = die_with_parent(cmd)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out)?)
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    let status = wait_bounded(&mut child, limit);
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    let status = status?;
    if !status.success() {
        bail!("exited with {status}");
    }
    Ok(text)
}

/// Makes the kernel SIGKILL the child if compare itself dies without
/// cleaning up (SIGKILL, a crash): a server never outlives its run.
fn die_with_parent(cmd: &mut Command) -> &mut Command {
    // SAFETY: the hook runs in the child between fork and exec and calls
    // only prctl, which is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// A fresh path under `dir` (not created).
fn tempfile_in(dir: &Path, prefix: &str) -> anyhow::Result<PathBuf> {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    for n in 0..1000u32 {
        let p = dir.join(format!("{prefix}-{}-{nanos}-{n}", std::process::id()));
        if !p.exists() {
            return Ok(p);
        }
    }
    bail!("no free name under {}", dir.display())
}

/// A directory removed when dropped.
#[derive(Debug)]
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Free loopback ports (bound together, then released).
fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .context("binding a loopback port")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// The members of one target's server, stopped when dropped.
#[derive(Debug)]
struct Cluster {
    children: Vec<Child>,
    client_ports: Vec<u16>,
    logs: Vec<PathBuf>,
    _dir: TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut refs: Vec<&mut Child> = self.children.iter_mut().collect();
        stop_children(&mut refs);
    }
}

impl Cluster {
    /// Starts `members` processes of `target` with data under `root`,
    /// logs in `log_prefix-mN.log`.
    fn start(
        target: &Target,
        members: u8,
        root: &Path,
        log_prefix: &Path,
    ) -> anyhow::Result<Cluster> {
        let n = usize::from(members);
        let dir = tempfile_in(root, "ferrobench-data")?;
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = TempDir(dir);
        let ports = free_ports(2 * n)?;
        let (client_ports, peer_ports) = ports.split_at(n);
        let initial: Vec<String> = peer_ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("m{i}=http://127.0.0.1:{p}"))
            .collect();
        let mut cluster = Cluster {
            children: Vec::new(),
            client_ports: client_ports.to_vec(),
            logs: Vec::new(),
            _dir: dir,
        };
        for i in 0..n {
            let log_path = PathBuf::from(format!("{}-m{i}.log", log_prefix.display()));
            let log = std::fs::File::create(&log_path)
                .with_context(|| format!("creating {}", log_path.display()))?;
            let client = format!("http://127.0.0.1:{}", client_ports[i]);
            let peer = format!("http://127.0.0.1:{}", peer_ports[i]);
            let mut cmd = Command::new(&target.bin);
            cmd.arg("--name")
                .arg(format!("m{i}"))
                .arg("--data-dir")
                .arg(cluster._dir.0.join(format!("m{i}")))
                .args([
                    "--listen-client-urls",
                    &client,
                    "--advertise-client-urls",
                    &client,
                ])
                .args([
                    "--listen-peer-urls",
                    &peer,
                    "--initial-advertise-peer-urls",
                    &peer,
                ])
                .args(["--initial-cluster", &initial.join(",")])
                .args([
                    "--initial-cluster-state",
                    "new",
                    "--initial-cluster-token",
                    "bench",
                ])
                .args(["--log-level", "error"]);
            if target.is_etcd {
                // etcd 3.4 logs through capnslog unless told otherwise.
                cmd.args(["--logger", "zap"]);
            }
            // etcd reads ETCD_* variables as flags.
            cmd.env_remove("ETCD_BIN")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                // Own process group: a terminal's Ctrl-C reaches compare,
                // which stops the members itself.
                .process_group(0);
            let child = die_with_parent(&mut cmd)
                .spawn()
                .with_context(|| format!("starting {}", target.bin.display()))?;
            cluster.children.push(child);
            cluster.logs.push(log_path);
        }
        Ok(cluster)
    }

    fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// Waits until every member answers Status and they agree on a leader;
    /// returns the leader's index.
    fn wait_ready(
        &mut self,
        rt: &tokio::runtime::Runtime,
        limit: Duration,
    ) -> anyhow::Result<usize> {
        let deadline = Instant::now() + limit;
        loop {
            check_interrupted()?;
            for (i, c) in self.children.iter_mut().enumerate() {
                if let Some(status) = c.try_wait()? {
                    bail!("member m{i} exited ({status}); {}", tail(&self.logs[i]));
                }
            }
            let last_err = match rt.block_on(statuses(&self.client_ports)) {
                Ok(st) => {
                    let leader = st[0].1;
                    if leader != 0
                        && st.iter().all(|s| s.1 == leader)
                        && let Some(i) = st.iter().position(|s| s.0 == leader)
                    {
                        return Ok(i);
                    }
                    format!("no agreed leader yet (member id, leader id): {st:?}")
                }
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= deadline {
                bail!(
                    "not ready after {:.0} s ({last_err}); {}",
                    limit.as_secs_f64(),
                    tail(&self.logs[0])
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// (member id, leader id) of each member, over gRPC.
async fn statuses(ports: &[u16]) -> anyhow::Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    for p in ports {
        let uri = format!("http://127.0.0.1:{p}");
        let ch = tonic::transport::Endpoint::from_shared(uri.clone())?
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(2))
            .connect()
            .await
            .with_context(|| format!("connecting to {uri}"))?;
        let st = MaintenanceClient::new(ch)
            .status(StatusRequest {})
            .await
            .with_context(|| format!("Status of {uri}"))?
            .into_inner();
        out.push((st.header.map_or(0, |h| h.member_id), st.leader));
    }
    Ok(out)
}

/// The last lines of a log, for error messages.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let last = lines[lines.len().saturating_sub(5)..].join(" | ");
    format!(
        "log {}: {}",
        log.display(),
        if last.is_empty() { "(empty)" } else { &last }
    )
}

/// What one run gave.
#[derive(Debug)]
struct RunResult {
    ops_per_sec: f64,
    completed: u64,
    errors: u64,
    cpu_secs: Option<f64>,
    /// The workload subprocess's own CPU over the measured phase (absent
    /// from reports of a ferrobench older than the field).
    client_cpu_secs: Option<f64>,
    /// Peak RSS of the members added up, KiB.
    peak_rss_kib: Option<u64>,
    hist: Histogram<u64>,
}

/// Sums of a workload against a target over the rounds.
#[derive(Debug, Default)]
struct Acc {
    ops: Vec<f64>,
    completed: u64,
    errors: u64,
    cpu_secs: Option<f64>,
    cpu_missing: bool,
    client_cpu_secs: Option<f64>,
    client_cpu_missing: bool,
    peak_rss_kib: Option<u64>,
    hist: Option<Histogram<u64>>,
    failures: Vec<String>,
}

impl Acc {
    fn add(&mut self, r: RunResult) {
        self.ops.push(r.ops_per_sec);
        self.completed += r.completed;
        self.errors += r.errors;
        match r.cpu_secs {
            Some(c) => *self.cpu_secs.get_or_insert(0.0) += c,
            None => self.cpu_missing = true,
        }
        match r.client_cpu_secs {
            Some(c) => *self.client_cpu_secs.get_or_insert(0.0) += c,
            None => self.client_cpu_missing = true,
        }
        self.peak_rss_kib = self.peak_rss_kib.max(r.peak_rss_kib);
        match &mut self.hist {
            Some(h) => h.add(&r.hist).expect("same bounds"),
            None => self.hist = Some(r.hist),
        }
    }

    /// CPU seconds summed over the rounds, in ms per 1000 operations of
    /// all rounds; `None` when a round lacked the figure or nothing
    /// completed.
    fn ms_per_1k(&self, secs: Option<f64>, missing: bool) -> Option<f64> {
        secs.filter(|_| !missing && self.completed > 0)
            .map(|c| c * 1e6 / self.completed as f64)
    }

    fn row(&self, workload: &str, t: &Target) -> Row {
        let q = |q: f64| {
            self.hist
                .as_ref()
                .filter(|h| !h.is_empty())
                .map(|h| h.value_at_quantile(q))
        };
        Row {
            workload: workload.into(),
            target: t.label.clone(),
            is_etcd: t.is_etcd,
            ops_per_sec: self.ops.clone(),
            completed: self.completed,
            errors: self.errors,
            p50_us: q(0.5),
            p99_us: q(0.99),
            p999_us: q(0.999),
            cpu_ms_per_1k: self.ms_per_1k(self.cpu_secs, self.cpu_missing),
            client_cpu_ms_per_1k: self.ms_per_1k(self.client_cpu_secs, self.client_cpu_missing),
            peak_rss_mib: self.peak_rss_kib.map(|k| k as f64 / 1024.0),
            failures: self.failures.clone(),
        }
    }
}

/// Whether `argv` sets option `name` (`--name V` or `--name=V`).
fn sets(argv: &[String], name: &str) -> bool {
    argv.iter()
        .any(|a| a == name || a.strip_prefix(name).is_some_and(|r| r.starts_with('=')))
}

/// The value a workload's own arguments give `name` (`--x v` or `--x=v`).
fn flag_value(argv: &[String], name: &str) -> Option<String> {
    argv.iter().enumerate().find_map(|(i, a)| {
        if a == name {
            argv.get(i + 1).cloned()
        } else {
            a.strip_prefix(name)
                .and_then(|r| r.strip_prefix('='))
                .map(str::to_string)
        }
    })
}

/// Options compare always sets itself; a `--workload-def` may not.
const COMPARE_SETS: [&str; 9] = [
    "--endpoints",
    "--total",
    "--server-pid",
    "--write-out",
    "-w",
    "--json-out",
    "--hgrm-out",
    "--svg-out",
    "--quiet",
];

/// The command line of one run of `w`: its subcommand and arguments, then
/// the options compare sets (`--clients`, `--conns` and `--max-secs` only
/// where the workload does not set them).
fn bench_args(
    args: &CompareArgs,
    w: &Workload,
    endpoint: &str,
    pids: &[u32],
    total: u64,
    fast: bool,
) -> Vec<String> {
    let mut out = w.argv.clone();
    if fast {
        out.extend(["--protocol".into(), "fast".into()]);
    }
    out.extend(["--endpoints".into(), endpoint.into()]);
    for (name, value) in [
        ("--clients", args.clients.to_string()),
        ("--conns", args.conns.to_string()),
        ("--max-secs", args.max_secs.to_string()),
    ] {
        if !sets(&w.argv, name) {
            out.extend([name.to_string(), value]);
        }
    }
    out.extend(["--total".into(), total.to_string(), "--quiet".into()]);
    if !pids.is_empty() {
        let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
        out.extend(["--server-pid".into(), pids.join(",")]);
    }
    out
}

/// `stem.ext`; unlike `Path::with_extension`, keeps the dots of a stem
/// like `put-etcd-3.4.23-r1`.
fn with_suffix(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Runs one workload subprocess against a started cluster.
fn run_workload(
    args: &CompareArgs,
    exe: &Path,
    w: &Workload,
    endpoint: &str,
    pids: &[u32],
    stem: &Path,
    fast: bool,
) -> anyhow::Result<RunResult> {
    // Prefill and connections come on top of the measured phase.
    let limit = Duration::from_secs_f64(args.max_secs + 120.0);
    if args.warmup > 0 {
        let mut cmd = Command::new(exe);
        cmd.args(bench_args(args, w, endpoint, &[], args.warmup, fast));
        run_bounded(&mut cmd, limit).context("warm-up run")?;
    }
    let json_path = with_suffix(stem, "json");
    let hgrm_path = with_suffix(stem, "hgrm");
    let err_path = with_suffix(stem, "stderr");
    let _ = std::fs::remove_file(&json_path);
    let mut cmd = Command::new(exe);
    cmd.args(bench_args(args, w, endpoint, pids, args.total, fast))
        .args(["-w", "json", "--json-out"])
        .arg(&json_path)
        .arg("--hgrm-out")
        .arg(&hgrm_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path)?)
        .process_group(0);
    let mut child = die_with_parent(&mut cmd)
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let status = wait_bounded(&mut child, limit)?;
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    if stderr.trim().is_empty() {
        let _ = std::fs::remove_file(&err_path);
    }
    let text = match std::fs::read_to_string(&json_path) {
        Ok(t) => t,
        Err(_) => bail!(
            "ferrobench {} exited with {status} and no report: {}",
            w.argv.join(" "),
            stderr.trim()
        ),
    };
    let j: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: bad JSON", json_path.display()))?;
    result_of(&j)
}

/// What a workload's JSON report (`-w json`) says about its run.
fn result_of(j: &serde_json::Value) -> anyhow::Result<RunResult> {
    let hist = hgrm::decode(j["histogram"].as_str().context("no histogram in report")?)?;
    Ok(RunResult {
        ops_per_sec: j["ops_per_sec"].as_f64().unwrap_or(0.0),
        completed: j["completed"].as_u64().unwrap_or(0),
        errors: j["errors"].as_u64().unwrap_or(0),
        cpu_secs: j["server"]["cpu_secs"].as_f64(),
        client_cpu_secs: j["client"]["cpu_secs"].as_f64(),
        peak_rss_kib: j["server"]["peak_rss_kib"].as_u64(),
        hist,
    })
}

/// UTC calendar date and time of `t`, `YYYY-MM-DD HH:MM UTC`.
pub(crate) fn utc_string(t: SystemTime) -> String {
    let s = humantime::format_rfc3339_seconds(t).to_string();
    format!("{} {} UTC", &s[..10], &s[11..16])
}

/// The command line, quoted for a shell where needed.
fn command_line() -> String {
    std::env::args()
        .enumerate()
        .map(|(i, a)| {
            let a = if i == 0 {
                Path::new(&a)
                    .file_name()
                    .map_or(a.clone(), |f| f.to_string_lossy().into())
            } else {
                a
            };
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./,:=@%+".contains(c))
            {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `ferrobench compare`.
pub(crate) fn run(args: &CompareArgs) -> anyhow::Result<()> {
    let workloads = resolve_workloads(&args.workloads, &args.workload_def)?;
    let targets = targets(args)?;
    let exe = std::env::current_exe().context("locating the ferrobench binary")?;
    std::fs::create_dir_all(args.out.join("logs"))
        .with_context(|| format!("creating {}", args.out.display()))?;
    let root = args
        .data_root
        .clone()
        .or_else(|| std::env::var_os("TMPDIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    install_signal_handlers();
    let say = |s: String| {
        if !args.quiet {
            eprintln!("{s}");
        }
    };
    say(format!(
        "compare: {} × {} × {} round(s); results in {}",
        workloads
            .iter()
            .map(|w| w.name.as_str())
            .collect::<Vec<_>>()
            .join(","),
        targets
            .iter()
            .map(|t| t.label.as_str())
            .collect::<Vec<_>>()
            .join(","),
        args.rounds,
        args.out.display()
    ));

    let mut acc: BTreeMap<(usize, usize), Acc> = BTreeMap::new();
    for round in 1..=args.rounds {
        for (wi, w) in workloads.iter().enumerate() {
            for (ti, t) in targets.iter().enumerate() {
                check_interrupted()?;
                let stem = args.out.join(format!("{}-{}-r{round}", w.name, t.slug));
                let log_prefix = args
                    .out
                    .join("logs")
                    .join(format!("{}-{}-r{round}", w.name, t.slug));
                let result = (|| {
                    let mut cluster = Cluster::start(t, args.members, &root, &log_prefix)?;
                    let leader = cluster
                        .wait_ready(&rt, Duration::from_secs_f64(args.start_timeout_secs))
                        .with_context(|| format!("{} did not become ready", t.label))?;
                    let endpoint = format!("127.0.0.1:{}", cluster.client_ports[leader]);
                    run_workload(args, &exe, w, &endpoint, &cluster.pids(), &stem, t.fast)
                })();
                check_interrupted()?;
                let a = acc.entry((wi, ti)).or_default();
                match result {
                    Ok(r) => {
                        say(format!(
                            "round {round}/{}: {} on {}: {:.0} ops/s, p99 {:.3} ms, {} errors",
                            args.rounds,
                            w.name,
                            t.label,
                            r.ops_per_sec,
                            r.hist.value_at_quantile(0.99) as f64 / 1e3,
                            r.errors
                        ));
                        a.add(r);
                    }
                    Err(e) => {
                        eprintln!("round {round}: {} on {}: FAILED: {e:#}", w.name, t.label);
                        a.failures.push(format!("round {round}: {e:#}"));
                    }
                }
            }
        }
    }

    // Merged histograms, plots, the table.
    let mut rows = Vec::new();
    for (wi, w) in workloads.iter().enumerate() {
        let mut series = Vec::new();
        for (ti, t) in targets.iter().enumerate() {
            let a = &acc[&(wi, ti)];
            if let Some(h) = &a.hist {
                report::write(
                    &args.out.join(format!("{}-{}.hgrm", w.name, t.slug)),
                    &hgrm::percentile_distribution(h),
                )?;
                series.push(Series {
                    label: t.label.clone(),
                    points: hgrm::curve(h, 1000.0).into_iter().map(|(p, _)| p).collect(),
                });
            }
            rows.push(a.row(&w.name, t));
        }
        let title = format!(
            "{}: {} clients, {} member(s), {} round(s) merged",
            w.name,
            flag_value(&w.argv, "--clients").unwrap_or_else(|| args.clients.to_string()),
            args.members,
            args.rounds
        );
        report::write(
            &args.out.join(format!("{}.svg", w.name)),
            &plot::svg(&title, &series, args.y_scale),
        )?;
    }
    let meta = Meta {
        command: command_line(),
        date: utc_string(SystemTime::now()),
        machine: Machine::here(),
        members: args.members,
        rounds: args.rounds,
        workloads: workloads
            .iter()
            .map(|w| {
                let shown = bench_args(args, w, "LEADER", &[0], args.total, false)
                    .join(" ")
                    .replace("--server-pid 0", "--server-pid PIDS");
                (w.name.clone(), format!("ferrobench {shown}"))
            })
            .collect(),
        targets: targets
            .iter()
            .map(|t| (t.label.clone(), t.bin.display().to_string()))
            .collect(),
    };
    let md = table::markdown(&meta, &rows);
    report::write(&args.out.join("compare.md"), &md)?;
    let rows_json: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            json!({
                "workload": r.workload, "target": r.target, "etcd": r.is_etcd,
                "ops_per_sec_rounds": r.ops_per_sec, "ops_per_sec": r.mean_ops(),
                "completed": r.completed, "errors": r.errors,
                "p50_us": r.p50_us, "p99_us": r.p99_us, "p99.9_us": r.p999_us,
                "server_cpu_ms_per_1k_ops": r.cpu_ms_per_1k,
                "server_peak_rss_mib": r.peak_rss_mib, "failures": r.failures,
                "client_cpu_ms_per_1k_ops": r.client_cpu_ms_per_1k,
            })
        })
        .collect();
    report::write(
        &args.out.join("compare.json"),
        &format!(
            "{:#}\n",
            json!({"command": meta.command, "date": meta.date, "members": args.members,
                   "rounds": args.rounds, "machine": {"nproc": meta.machine.nproc,
                   "model": meta.machine.model, "kernel": meta.machine.kernel}, "rows": rows_json})
        ),
    )?;
    print!("{md}");
    let failed: usize = rows.iter().map(|r| r.failures.len()).sum();
    let errors: u64 = rows.iter().map(|r| r.errors).sum();
    if failed > 0 || errors > 0 {
        bail!(
            "{failed} run(s) failed and {errors} request(s) erred; see {}",
            args.out.join("compare.md").display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &str) -> Vec<String> {
        s.split(',').map(String::from).collect()
    }

    #[test]
    fn builtin_and_subcommand_workloads() {
        let w = resolve_workloads(&names("put,range-s,range-l,range"), &[]).unwrap();
        assert_eq!(w[0].argv, ["put"]);
        assert_eq!(w[1].argv, ["range", "--consistency", "s"]);
        assert_eq!(w[2].argv, ["range", "--consistency", "l"]);
        assert_eq!(w[3].argv, ["range"]);
    }

    #[test]
    fn defined_workloads() {
        let defs = vec!["put-1k=put --val-size 1024".to_string()];
        let w = resolve_workloads(&names("put-1k"), &defs).unwrap();
        assert_eq!(w[0].argv, ["put", "--val-size", "1024"]);
        let e = resolve_workloads(&names("x"), &["x=compare --out y".into()]).unwrap_err();
        assert!(
            e.to_string()
                .contains("must start with a workload subcommand"),
            "{e}"
        );
        let e = resolve_workloads(&names("x"), &["x".into()]).unwrap_err();
        assert!(e.to_string().contains("NAME=SUBCOMMAND"), "{e}");
        let e = resolve_workloads(&names("x"), &["x=put --total=5".into()]).unwrap_err();
        assert!(e.to_string().contains("compare sets --total itself"), "{e}");
    }

    #[test]
    fn run_arguments() {
        use clap::Parser;
        let cli = crate::Cli::parse_from(["ferrobench", "compare", "--out", "o", "--clients", "8"]);
        let crate::Command::Compare(args) = cli.command else {
            panic!("not compare");
        };
        let defs = vec!["one=put --clients 1 --conns=1".to_string()];
        let w = resolve_workloads(&names("put,one"), &defs).unwrap();
        let put = bench_args(&args, &w[0], "h:1", &[7, 8], 100, false).join(" ");
        assert_eq!(
            put,
            "put --endpoints h:1 --clients 8 --conns 4 --max-secs 30 --total 100 --quiet --server-pid 7,8"
        );
        let one = bench_args(&args, &w[1], "h:1", &[], 5, true).join(" ");
        assert_eq!(
            one,
            "put --clients 1 --conns=1 --protocol fast --endpoints h:1 --max-secs 30 --total 5 --quiet"
        );
        // Every line parses as a ferrobench command.
        for line in [put, one] {
            let argv = std::iter::once("ferrobench").chain(line.split(' '));
            crate::Cli::try_parse_from(argv).unwrap();
        }
    }

    #[test]
    fn unknown_and_repeated_workloads() {
        let e = resolve_workloads(&names("put,bogus"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown workload \"bogus\"; known: put, range-l, range-s"),
            "{e}"
        );
        for not in ["compare", "plot", "help"] {
            assert!(resolve_workloads(&names(not), &[]).is_err(), "{not}");
        }
        let e = resolve_workloads(&names("put,put"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("listed twice"), "{e}");
        assert!(resolve_workloads(&names(""), &[]).is_err());
    }

    #[test]
    fn dates() {
        let at = |s: u64| utc_string(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01 00:00 UTC");
        assert_eq!(at(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(at(1_796_300_000), "2026-12-03 12:13 UTC");
    }

    #[test]
    fn file_names_keep_version_dots() {
        let stem = Path::new("out/put-etcd-3.4.23-r1");
        assert_eq!(
            with_suffix(stem, "json"),
            Path::new("out/put-etcd-3.4.23-r1.json")
        );
    }

    fn result(completed: u64, cpu: Option<f64>, client: Option<f64>) -> RunResult {
        let mut hist = crate::driver::histogram();
        hist.record(100).unwrap();
        RunResult {
            ops_per_sec: 1000.0,
            completed,
            errors: 0,
            cpu_secs: cpu,
            client_cpu_secs: client,
            peak_rss_kib: Some(1024),
            hist,
        }
    }

    #[test]
    fn client_cpu_adds_up_over_rounds_like_server_cpu() {
        let t = Target {
            label: "ferrocd".into(),
            slug: "ferrocd".into(),
            bin: PathBuf::from("ferrocd"),
            is_etcd: false,
            fast: false,
        };
        let mut a = Acc::default();
        a.add(result(10_000, Some(1.0), Some(0.25)));
        a.add(result(30_000, Some(3.0), Some(1.25)));
        let row = a.row("put", &t);
        // (1.0 + 3.0) s over 40k ops, (0.25 + 1.25) s over 40k ops.
        assert_eq!(row.cpu_ms_per_1k, Some(100.0));
        assert_eq!(row.client_cpu_ms_per_1k, Some(37.5));
        // A round whose report lacks the figure (an older ferrobench)
        // leaves it unknown rather than understated.
        a.add(result(10_000, Some(1.0), None));
        let row = a.row("put", &t);
        assert_eq!(row.cpu_ms_per_1k, Some(100.0));
        assert_eq!(row.client_cpu_ms_per_1k, None);
    }

    #[test]
    fn results_from_reports_new_and_old() {
        let mut hist = crate::driver::histogram();
        hist.record(250).unwrap();
        let mut j = json!({
            "ops_per_sec": 5000.0, "completed": 100, "errors": 0,
            "histogram": hgrm::encode(&hist),
            "server": {"cpu_secs": 0.5, "peak_rss_kib": 2048},
            "client": {"cpu_secs": 0.125, "cpu_ms_per_1k_ops": 1250.0},
        });
        let r = result_of(&j).unwrap();
        assert_eq!((r.cpu_secs, r.client_cpu_secs), (Some(0.5), Some(0.125)));
        assert_eq!(r.hist.len(), 1);
        // A report from before the "client" field still reads.
        j.as_object_mut().unwrap().remove("client");
        let r = result_of(&j).unwrap();
        assert_eq!((r.cpu_secs, r.client_cpu_secs), (Some(0.5), None));
    }

    #[test]
    fn slugs_and_ports() {
        assert_eq!(slug("etcd 3.4.23 #2"), "etcd-3.4.23--2");
        let p = free_ports(4).unwrap();
        assert_eq!(p.len(), 4);
        assert!(p.iter().all(|&p| p > 0));
    }
}
