//! systemd's view of a member: `Type=notify` units (etcd's, Debian's,
//! and the one this repo ships in `contrib/systemd/`) wait for `READY=1`
//! on `$NOTIFY_SOCKET`. These machines run no systemd, so [`Unit`] does
//! what systemd does with a unit file, as far as these units use it: the
//! `[Service]` section's `Environment=` and `EnvironmentFile=` (the file
//! overrides, a leading `-` makes it optional), the `%H` / `%p`
//! specifiers, `ExecStart=` with `$VAR` split into words, a clean
//! environment, and a datagram socket for the notifications. `User=` is
//! not applied (the tests run as one user).

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, etcd_34, free_port, tempdir};
use crate::ferrocd;

/// Debian's unit file for etcd (package etcd-server).
const DEBIAN_UNIT: &str = "/lib/systemd/system/etcd.service";
/// Debian's environment file for it.
const DEBIAN_DEFAULTS: &str = "/etc/default/etcd";
/// The unit this repo ships.
const OUR_UNIT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../contrib/systemd/ferrocd.service"
);
/// systemd's default `TimeoutStartSec`.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// What systemd takes from a unit's `[Service]` section.
#[derive(Debug)]
struct Unit {
    /// The unit's name without `.service` (`%p`).
    prefix: String,
    env: Vec<(String, String)>,
    /// (optional, path) in order.
    env_files: Vec<(bool, String)>,
    exec_start: String,
    kind: String,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_string()
}

impl Unit {
    fn read(path: &Path) -> Unit {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (Debian's etcd-server package installs etcd's unit; scripts/test installs it)",
                path.display()
            )
        });
        let prefix = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".service"))
            .expect("a .service file")
            .to_string();
        let mut unit = Unit {
            prefix,
            env: Vec::new(),
            env_files: Vec::new(),
            exec_start: String::new(),
            kind: "simple".into(),
        };
        let mut section = String::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if line.starts_with('[') {
                section = line.to_string();
                continue;
            }
            if section != "[Service]" {
                continue;
            }
            let (k, v) = line.split_once('=').expect("key=value");
            let v = unit.specifiers(v.trim());
            match k.trim() {
                "Environment" => {
                    for a in v.split_whitespace() {
                        let a = a.trim_matches('"');
                        let (k, v) = a.split_once('=').expect("Environment=K=V");
                        unit.env.push((k.into(), v.into()));
                    }
                }
                "EnvironmentFile" => match v.strip_prefix('-') {
                    Some(p) => unit.env_files.push((true, p.into())),
                    None => unit.env_files.push((false, v)),
                },
                "ExecStart" => unit.exec_start = v,
                "Type" => unit.kind = v,
                _ => {}
            }
        }
        assert!(
            !unit.exec_start.is_empty(),
            "{}: no ExecStart",
            path.display()
        );
        unit
    }

    fn specifiers(&self, v: &str) -> String {
        v.replace("%%", "\u{0}")
            .replace("%H", &hostname())
            .replace("%p", &self.prefix)
            .replace('\u{0}', "%")
    }

    /// The environment and the command line systemd would start, with
    /// environment files read from `etc_default` instead of
    /// `/etc/default` and the program replaced by `program`.
    fn command(
        &self,
        etc_default: &Path,
        program: &Path,
    ) -> (BTreeMap<String, String>, Vec<String>) {
        let mut env: BTreeMap<String, String> = self.env.iter().cloned().collect();
        for (optional, path) in &self.env_files {
            let path = match path.strip_prefix("/etc/default/") {
                Some(rest) => etc_default.join(rest),
                None => PathBuf::from(path),
            };
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    for line in text.lines().map(str::trim) {
                        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                            continue;
                        }
                        let (k, v) = line.split_once('=').expect("KEY=VALUE");
                        let v = v.trim().trim_matches('"').trim_matches('\'');
                        env.insert(k.trim().to_string(), v.to_string());
                    }
                }
                Err(_) if *optional => {}
                Err(e) => panic!("{}: {e}", path.display()),
            }
        }
        let mut args = Vec::new();
        for (i, word) in self.exec_start.split_whitespace().enumerate() {
            if i == 0 {
                args.push(program.display().to_string());
            } else if let Some(var) = word.strip_prefix("${").and_then(|w| w.strip_suffix('}')) {
                args.push(env.get(var).cloned().unwrap_or_default());
            } else if let Some(var) = word.strip_prefix('$') {
                args.extend(
                    env.get(var)
                        .map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                        .unwrap_or_default(),
                );
            } else {
                args.push(word.to_string());
            }
        }
        (env, args)
    }
}

/// The notification socket and what arrives on it.
struct Notify {
    sock: UnixDatagram,
    path: PathBuf,
}

impl Notify {
    fn new(dir: &Path) -> Notify {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
        Notify { sock, path }
    }

    /// The next message within `within`, if any.
    fn next(&self, within: Duration) -> Option<String> {
        self.sock
            .set_read_timeout(Some(within.max(Duration::from_millis(1))))
            .expect("timeout");
        let mut buf = [0u8; 4096];
        match self.sock.recv(&mut buf) {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => None,
        }
    }

    /// Wait for a message holding `line`; returns the messages seen.
    fn wait_for(&self, line: &str, child: &mut Child, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Some(m) = self.next(Duration::from_millis(200)) {
                let found = m.lines().any(|l| l == line);
                seen.push(m);
                if found {
                    return seen;
                }
            } else if let Ok(Some(st)) = child.try_wait() {
                panic!("exited ({st}) before {line}; messages: {seen:?}");
            }
        }
        panic!("no {line} within {within:?}; messages: {seen:?}");
    }
}

/// A started unit's process, killed on drop.
struct Started(Child);

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One `etcdctl` command at the client port, bounded in time: its
/// stdout, or why it failed.
fn ctl_at(client: u16, args: &[&str]) -> Result<String, String> {
    let out = tempdir();
    let (out_path, err_path) = (out.path().join("stdout"), out.path().join("stderr"));
    let mut child = Command::new(common::etcdctl_bin())
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &format!("127.0.0.1:{client}")])
        .args(["--dial-timeout=3s", "--command-timeout=5s"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn etcdctl");
    let status = common::wait_child(&mut child, Duration::from_secs(15));
    match status {
        Some(s) if s.success() => Ok(std::fs::read_to_string(&out_path).unwrap_or_default()),
        other => Err(format!(
            "{other:?}: {}",
            std::fs::read_to_string(&err_path).unwrap_or_default()
        )),
    }
}

fn sigterm(child: &Child) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) takes no pointers; `pid` is our own unreaped child.
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(rc, 0);
}

/// What one start of a unit saw.
struct Run {
    /// Every notification received.
    messages: Vec<String>,
    /// The value of key `unit` when the member said it was ready (what an
    /// earlier run on the same data dir wrote), before this run wrote
    /// `value` there.
    previous: Option<String>,
}

/// `program` started the way systemd starts `unit`, with an environment
/// file (copied from `defaults` when given) that puts the data dir in
/// `dir/data` and the listeners on free loopback ports; waits for
/// `READY=1`, checks the member serves at that moment (reads key `unit`,
/// writes `value` there), stops it as systemd does (SIGTERM).
fn run_unit(unit: &Path, defaults: Option<&Path>, program: &Path, dir: &Path, value: &str) -> Run {
    let unit = Unit::read(unit);
    assert_eq!(unit.kind, "notify", "etcd's units are Type=notify");
    let etc_default = dir.join("etc-default");
    std::fs::create_dir_all(&etc_default).expect("mkdir");
    let mut file = match defaults {
        Some(d) => std::fs::read_to_string(d).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (installed by Debian's etcd-server, as scripts/test does)",
                d.display()
            )
        }),
        None => String::new(),
    };
    let (client, peer) = (free_port(), free_port());
    file.push_str(&format!(
        "\nETCD_DATA_DIR={data}\n\
         ETCD_LISTEN_CLIENT_URLS=http://127.0.0.1:{client}\n\
         ETCD_ADVERTISE_CLIENT_URLS=http://127.0.0.1:{client}\n\
         ETCD_LISTEN_PEER_URLS=http://127.0.0.1:{peer}\n\
         ETCD_INITIAL_ADVERTISE_PEER_URLS=http://127.0.0.1:{peer}\n",
        data = dir.join("data").display()
    ));
    std::fs::write(etc_default.join(&unit.prefix), file).expect("env file");
    let (env, args) = unit.command(&etc_default, program);
    let _ = std::fs::remove_file(dir.join("notify.sock"));
    let notify = Notify::new(dir);
    let log = dir.join(format!("member-{value}.log"));
    let child = Command::new(&args[0])
        .args(&args[1..])
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .envs(&env)
        .env("NOTIFY_SOCKET", &notify.path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .unwrap_or_else(|e| panic!("start {args:?}: {e}"));
    let mut started = Started(child);
    let mut seen = notify.wait_for("READY=1", &mut started.0, START_TIMEOUT);
    // Ready means serving: a read and a write go through at once.
    let previous = ctl_at(client, &["get", "unit", "--print-value-only"])
        .map(|v| Some(v.trim().to_string()).filter(|v| !v.is_empty()));
    let put = ctl_at(client, &["put", "unit", value]);
    assert!(
        previous.is_ok() && put.is_ok(),
        "{} said READY=1 but did not serve: {previous:?} {put:?}\n{}",
        program.display(),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    sigterm(&started.0);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(m) = notify.next(Duration::from_millis(100)) {
            seen.push(m);
        }
        if started.0.try_wait().expect("try_wait").is_some() {
            while let Some(m) = notify.next(Duration::from_millis(50)) {
                seen.push(m);
            }
            break;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
    }
    Run {
        messages: seen,
        previous: previous.expect("checked above"),
    }
}

/// ferrocd under a name the unit file names (`/usr/bin/etcd` renamed, as
/// a user swapping binaries does): a hard link, or a copy across file
/// systems.
fn renamed(dir: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    if std::fs::hard_link(ferrocd(), &to).is_err() {
        std::fs::copy(ferrocd(), &to).expect("copy ferrocd");
    }
    to
}

/// The swap the issue is about: Debian's etcd 3.4.23 runs under its own
/// unit and environment file and writes a key; then ferrocd, renamed to
/// `etcd`, runs under the same unit on the same data dir: it adopts etcd's
/// data, says READY=1 once, serves etcd's key at that moment, and says
/// STOPPING=1 when systemd stops it.
#[test]
fn issue_21_debian_etcd_unit_starts_ferrocd_as_it_starts_etcd() {
    let dir = tempdir();
    // The reference: etcd under its own unit says READY=1.
    let etcd = run_unit(
        Path::new(DEBIAN_UNIT),
        Some(Path::new(DEBIAN_DEFAULTS)),
        &etcd_34(),
        dir.path(),
        "written-by-etcd",
    );
    assert!(
        etcd.messages
            .iter()
            .any(|m| m.lines().any(|l| l == "READY=1")),
        "{:?}",
        etcd.messages
    );
    let bin = tempdir();
    let run = run_unit(
        Path::new(DEBIAN_UNIT),
        Some(Path::new(DEBIAN_DEFAULTS)),
        &renamed(bin.path(), "etcd"),
        dir.path(),
        "written-by-ferrocd",
    );
    assert_eq!(run.previous.as_deref(), Some("written-by-etcd"));
    let seen = run.messages;
    let lines: Vec<&str> = seen.iter().flat_map(|m| m.lines()).collect();
    let ready = lines.iter().position(|l| *l == "READY=1").expect("READY=1");
    let stopping = lines
        .iter()
        .position(|l| *l == "STOPPING=1")
        .expect("STOPPING=1");
    assert!(ready < stopping, "{lines:?}");
    assert_eq!(
        lines.iter().filter(|l| **l == "READY=1").count(),
        1,
        "{lines:?}"
    );
}

#[test]
fn issue_21_shipped_unit_file_starts_ferrocd() {
    let bin = tempdir();
    let dir = tempdir();
    let seen = run_unit(
        Path::new(OUR_UNIT),
        None,
        &renamed(bin.path(), "ferrocd"),
        dir.path(),
        "ours",
    )
    .messages;
    let lines: Vec<&str> = seen.iter().flat_map(|m| m.lines()).collect();
    assert!(lines.contains(&"READY=1"), "{lines:?}");
    assert!(lines.contains(&"STOPPING=1"), "{lines:?}");
}

/// `WatchdogSec=` gives the service `$WATCHDOG_USEC` (and
/// `$WATCHDOG_PID`): ferrocd sends `WATCHDOG=1` every half interval; a
/// `$WATCHDOG_PID` naming another process means the watchdog is not
/// this process's, and nothing is sent.
#[test]
fn issue_21_watchdog_is_fed_only_when_it_is_ours() {
    for (pid_is_ours, expect_pings) in [(true, true), (false, false)] {
        let dir = tempdir();
        let notify = Notify::new(dir.path());
        let (client, peer) = (free_port(), free_port());
        let mut cmd = Command::new(ferrocd());
        cmd.arg("--data-dir")
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &format!("http://127.0.0.1:{client}"),
            ])
            .args([
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{client}"),
            ])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
            ])
            .env("NOTIFY_SOCKET", &notify.path)
            .env("WATCHDOG_USEC", "300000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if !pid_is_ours {
            // PID 1 is never this test's child.
            cmd.env("WATCHDOG_PID", "1");
        }
        let mut started = Started(cmd.spawn().expect("spawn"));
        notify.wait_for("READY=1", &mut started.0, START_TIMEOUT);
        let until = Instant::now() + Duration::from_millis(1500);
        let mut pings = 0;
        while Instant::now() < until {
            if let Some(m) = notify.next(until.saturating_duration_since(Instant::now())) {
                pings += m.lines().filter(|l| *l == "WATCHDOG=1").count();
            }
        }
        if expect_pings {
            // Every 150 ms: about ten in 1.5 s; allow a slow machine.
            assert!(pings >= 3, "{pings} WATCHDOG=1 in 1.5 s");
        } else {
            assert_eq!(pings, 0, "fed a watchdog that is not ours");
        }
    }
}
