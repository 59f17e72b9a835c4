//! A cluster of `ferrocd` processes on loopback, each member's peer port
//! behind a [`Proxies`] listener, optionally each data dir on a lossyfs
//! mount; and the process-level faults (kill, stop, pause, resume).
//!
//! Flags are etcd's. Each member advertises its proxy as its peer URL
//! (`--initial-cluster` lists proxies), and listens for peers on its own
//! port behind it. Ports are fixed for the life of the round: a member's
//! peer URL is stored state. The proxy reads ferrocd's peer hello, so it
//! cannot front an etcd (whose peers speak HTTP): with `proxy: false`
//! members advertise their own peer ports and the nemesis leaves links
//! alone, which lets a real etcd 3.5 run the same load, process faults and
//! checker as a reference.
//!
//! Processes run with `--shards 1`: a round's 3–5 members share 2 cores
//! with the harness (and with other rounds), and each shard is pinned.
//! Timers are etcd's defaults divided by 2 (`--heartbeat-interval 50
//! --election-timeout 500`): fail-over takes ~0.5–1 s instead of 1–2 s,
//! so a 30 s round sees more faults healed and more elections.
//!
//! Everything is cleaned up in `Drop` (kill by PID, SIGCONT first for a
//! paused one, unmount), so a panicking round leaves no process behind.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, bail};
use ferrocd_net::pb::etcdserverpb::maintenance_client::MaintenanceClient;
use ferrocd_net::pb::etcdserverpb::{MemberListRequest, StatusRequest, StatusResponse};
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use super::lossy::Mount;
use crate::proxy::Proxies;

/// How long SIGTERM gets before SIGKILL (a clean stop takes well under a
/// second; 10 s is etcd's own graceful-stop bound).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a started cluster gets to elect a leader and serve.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Raft heartbeat and election timeout (ms) given to every member.
pub const HEARTBEAT_MS: u64 = 50;
pub const ELECTION_MS: u64 = 500;

/// Ports handed out by this process and not yet released: parallel rounds
/// probe free ports at the same time, and two of them must not pick the
/// same one between the probe and the server's bind.
static TAKEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// A loopback port that was free a moment ago and that no other round of
/// this process holds.
pub fn free_port() -> std::io::Result<u16> {
    loop {
        let p = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut t = TAKEN.lock().expect("ports lock");
        if !t.contains(&p) {
            t.push(p);
            return Ok(p);
        }
    }
}

fn release_port(p: u16) {
    TAKEN.lock().expect("ports lock").retain(|&q| q != p);
}

/// What a cluster is made of.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The server binary (etcd's flags).
    pub server: PathBuf,
    pub members: usize,
    /// The round's directory: data dirs, logs, mounts.
    pub dir: PathBuf,
    /// `--initial-cluster-token`.
    pub token: String,
    /// The `ferrocd-lossyfs` binary: each data dir on its own mount.
    pub lossy: Option<PathBuf>,
    /// Peer links through [`Proxies`] (ferrocd's peer protocol only).
    pub proxy: bool,
}

/// One member process.
#[derive(Debug)]
pub struct Member {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    paused: bool,
    starts: u32,
    mount: Option<Mount>,
}

impl Member {
    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }
}

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    spec: Spec,
    pub members: Vec<Member>,
    pub proxies: Proxies,
    /// Member ids by index (from MemberList once the cluster served).
    pub ids: Vec<u64>,
    /// Exits the harness did not cause (a crash): `member: status`.
    pub crashes: Vec<String>,
}

/// A gRPC channel to `url` that connects on first use, with a per-request
/// timeout (no retries anywhere: an error is an outcome).
pub fn channel(url: &str, timeout: Duration) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(url.to_string())?
        .connect_timeout(Duration::from_secs(1))
        .timeout(timeout)
        .connect_lazy())
}

fn signal(pid: u32, sig: libc::c_int) -> std::io::Result<()> {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours;
    // the pid is one of our own children that has not been reaped (the
    // callers hold its `Child` and only reap through it), so it cannot
    // name a recycled process.
    let r = unsafe { libc::kill(pid as libc::pid_t, sig) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl Cluster {
    /// Start every member (and its proxy and mount), wait until all serve
    /// and agree on a leader, and learn the member ids.
    pub async fn start(spec: Spec) -> anyhow::Result<Cluster> {
        std::fs::create_dir_all(&spec.dir)
            .with_context(|| format!("create {}", spec.dir.display()))?;
        let mut members = Vec::new();
        let mut backends = Vec::new();
        for i in 0..spec.members {
            let (client_port, peer_port) = (free_port()?, free_port()?);
            backends.push(SocketAddr::from(([127, 0, 0, 1], peer_port)));
            let mount = match &spec.lossy {
                Some(bin) => Some(Mount::start(bin, &spec.dir, i).await?),
                None => None,
            };
            let data_dir = match &mount {
                Some(m) => m.path().join("data"),
                None => spec.dir.join(format!("m{i}.data")),
            };
            members.push(Member {
                name: format!("m{i}"),
                client_port,
                peer_port,
                data_dir,
                log: spec.dir.join(format!("m{i}.log")),
                child: None,
                paused: false,
                starts: 0,
                mount,
            });
        }
        let proxies = Proxies::start(&backends).await?;
        let mut c = Cluster {
            spec,
            members,
            proxies,
            ids: Vec::new(),
            crashes: Vec::new(),
        };
        for i in 0..c.members.len() {
            c.spawn(i)?;
        }
        c.wait_ready(READY_TIMEOUT).await?;
        c.learn_ids().await?;
        Ok(c)
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The peer URL member `j` advertises: its proxy, or with
    /// `proxy: false` its own peer port.
    pub fn peer_url(&self, j: usize) -> String {
        if self.spec.proxy {
            format!("http://{}", self.proxies.addr(j))
        } else {
            format!("http://127.0.0.1:{}", self.members[j].peer_port)
        }
    }

    fn initial_cluster(&self) -> String {
        (0..self.members.len())
            .map(|j| format!("{}={}", self.members[j].name, self.peer_url(j)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Start member `i`'s process (it must not be running).
    pub fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let initial = self.initial_cluster();
        let advertised = self.peer_url(i);
        let m = &mut self.members[i];
        assert!(m.child.is_none(), "member {i} started twice");
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .with_context(|| format!("open {}", m.log.display()))?;
        writeln!(log, "==== harness: start #{} of {}", m.starts + 1, m.name)?;
        let client = m.client_url();
        let args: Vec<String> = vec![
            "--name".into(),
            m.name.clone(),
            "--data-dir".into(),
            m.data_dir.display().to_string(),
            "--listen-client-urls".into(),
            client.clone(),
            "--advertise-client-urls".into(),
            client,
            "--listen-peer-urls".into(),
            format!("http://127.0.0.1:{}", m.peer_port),
            "--initial-advertise-peer-urls".into(),
            advertised,
            "--initial-cluster".into(),
            initial,
            "--initial-cluster-token".into(),
            self.spec.token.clone(),
            "--initial-cluster-state".into(),
            "new".into(),
            "--heartbeat-interval".into(),
            HEARTBEAT_MS.to_string(),
            "--election-timeout".into(),
            ELECTION_MS.to_string(),
        ];
        let mut cmd = Command::new(&self.spec.server);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // `--shards` is ferrocd's own flag; an etcd binary would refuse it.
        if is_ferrocd(&self.spec.server) {
            cmd.args(["--shards", "1"]);
        }
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("start {}", self.spec.server.display()))?;
        m.child = Some(child);
        m.paused = false;
        m.starts += 1;
        Ok(())
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    /// SIGKILL member `i` and reap it.
    pub fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        self.note_crashes();
        let m = &mut self.members[i];
        let Some(mut child) = m.child.take() else {
            bail!("kill {}: not running", m.name);
        };
        child.kill().context("SIGKILL")?;
        child.wait().context("reap")?;
        m.paused = false;
        Ok(())
    }

    /// SIGTERM member `i`, SIGKILL after [`STOP_TIMEOUT`]; returns whether
    /// it stopped by itself.
    pub async fn stop(&mut self, i: usize) -> anyhow::Result<bool> {
        self.note_crashes();
        let m = &mut self.members[i];
        let Some(mut child) = m.child.take() else {
            bail!("stop {}: not running", m.name);
        };
        if m.paused {
            signal(child.id(), libc::SIGCONT)?;
            m.paused = false;
        }
        signal(child.id(), libc::SIGTERM)?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if child.try_wait()?.is_some() {
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        child.kill()?;
        child.wait()?;
        Ok(false)
    }

    /// SIGSTOP member `i`.
    pub fn pause(&mut self, i: usize) -> anyhow::Result<()> {
        let m = &mut self.members[i];
        let pid = m.pid().context("pause: not running")?;
        signal(pid, libc::SIGSTOP)?;
        m.paused = true;
        Ok(())
    }

    /// SIGCONT member `i` (if paused).
    pub fn resume(&mut self, i: usize) -> anyhow::Result<()> {
        let m = &mut self.members[i];
        if let (true, Some(pid)) = (m.paused, m.pid()) {
            signal(pid, libc::SIGCONT)?;
        }
        m.paused = false;
        Ok(())
    }

    /// Revert everything member `i`'s data dir did not fsync (it must be
    /// dead or frozen by SIGSTOP: a running process would keep writing
    /// through the cut; a frozen one's open files fail after it).
    pub fn cut(&mut self, i: usize) -> anyhow::Result<String> {
        let m = &self.members[i];
        if m.child.is_some() && !m.paused {
            bail!("cut {}: the member still runs", m.name);
        }
        m.mount
            .as_ref()
            .context("cut: not on lossyfs (run with --lossy)")?
            // A frozen member's files are open: cut at once (a power cut),
            // rather than wait for them to close.
            .cut(m.paused)
    }

    /// Record members that exited without the harness asking (crashes),
    /// and forget their processes so a heal restarts them.
    pub fn note_crashes(&mut self) {
        for m in &mut self.members {
            if let Some(c) = &mut m.child
                && let Ok(Some(status)) = c.try_wait()
            {
                self.crashes
                    .push(format!("{} exited by itself: {status}", m.name));
                m.child = None;
                m.paused = false;
            }
        }
    }

    /// Every link up, every member resumed and running.
    pub fn heal(&mut self) -> anyhow::Result<()> {
        self.proxies.heal();
        self.note_crashes();
        for i in 0..self.members.len() {
            self.resume(i)?;
            if !self.is_running(i) {
                self.spawn(i)?;
            }
        }
        Ok(())
    }

    /// `Status` of member `i` (2 s bound).
    pub async fn status(&self, i: usize) -> anyhow::Result<StatusResponse> {
        let ch = channel(&self.members[i].client_url(), Duration::from_secs(2))?;
        Ok(MaintenanceClient::new(ch)
            .status(StatusRequest {})
            .await?
            .into_inner())
    }

    /// The leader's index, if every answering member agrees on one that is
    /// itself answering.
    pub async fn leader(&self) -> Option<usize> {
        let mut leader = None;
        for i in 0..self.members.len() {
            if !self.is_running(i) || self.members[i].paused {
                continue;
            }
            let Ok(s) = self.status(i).await else {
                continue;
            };
            if s.leader == 0 {
                continue;
            }
            match leader {
                None => leader = Some(s.leader),
                Some(l) if l != s.leader => return None,
                Some(_) => {}
            }
        }
        let idx = self.ids.iter().position(|&id| Some(id) == leader)?;
        Some(idx)
    }

    /// Wait until every member answers Status and names the same leader.
    pub async fn wait_ready(&mut self, bound: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + bound;
        let mut last = String::new();
        loop {
            self.note_crashes();
            if let Some(c) = self.crashes.first() {
                bail!("{c} while starting (see {})", self.spec.dir.display());
            }
            let mut leaders = Vec::new();
            for i in 0..self.members.len() {
                match self.status(i).await {
                    Ok(s) => leaders.push(s.leader),
                    Err(e) => last = format!("m{i}: {e}"),
                }
            }
            if leaders.len() == self.members.len()
                && leaders[0] != 0
                && leaders.iter().all(|&l| l == leaders[0])
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "cluster not ready in {bound:?}: leaders {leaders:?}, last error {last} (logs in {})",
                    self.spec.dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Member ids from MemberList, matched to indexes by peer URL (the
    /// proxy addresses), handed to the proxies.
    async fn learn_ids(&mut self) -> anyhow::Result<()> {
        let ch = channel(&self.members[0].client_url(), Duration::from_secs(2))?;
        let list = ferrocd_net::pb::etcdserverpb::cluster_client::ClusterClient::new(ch)
            .member_list(MemberListRequest {
                linearizable: false,
            })
            .await?
            .into_inner();
        let mut ids = vec![0; self.members.len()];
        for m in &list.members {
            let j = (0..self.members.len())
                .find(|&j| m.peer_ur_ls.contains(&self.peer_url(j)))
                .with_context(|| format!("member {:x} with unknown peer URLs", m.id))?;
            ids[j] = m.id;
        }
        if ids.contains(&0) {
            bail!("MemberList lacks members: {ids:x?}");
        }
        self.proxies
            .set_ids(ids.iter().enumerate().map(|(j, &id)| (id, j)));
        self.ids = ids;
        Ok(())
    }
}

/// Have the kernel SIGKILL the child when the thread that started it
/// ends: `Drop` cleans up after an error or a panic, but not after the
/// harness itself is killed (Ctrl-C, a test timeout), and a member left
/// running would hold its ports and keep writing. The spawning thread is a
/// runtime worker, which lives as long as the harness's runtime.
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only
    // calls prctl(2), which is async-signal-safe; it allocates nothing and
    // touches no lock.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Whether `bin` is a ferrocd (its file name says so): ferrocd-only flags
/// are passed only then, so an etcd binary can prove the harness itself.
fn is_ferrocd(bin: &Path) -> bool {
    bin.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.contains("ferrocd"))
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                if m.paused {
                    let _ = signal(c.id(), libc::SIGCONT);
                }
                let _ = c.kill();
                let _ = c.wait();
            }
            release_port(m.client_port);
            release_port(m.peer_port);
            // The mount's own Drop unmounts it, now that nothing has a
            // file open on it.
            m.mount.take();
        }
    }
}
