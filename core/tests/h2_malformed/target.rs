//! The endpoints a case runs against: ferrocd (this workspace's binary)
//! or a real etcd 3.5.1 (`$ETCD_BIN`, required: CI sets it, and a missing
//! one fails rather than skips), each a fresh single-member server with
//! its own data dir, and what `/proc` says about its process.

use std::time::Duration;

use crate::common::{Server, tempdir};

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Ferrocd,
    Etcd,
}

/// One running server, removed (process and data dir) when dropped.
pub struct Target {
    pub side: Side,
    // Dropped before `_dir`: the process goes before its data dir.
    server: Server,
    _dir: tempfile::TempDir,
}

impl Target {
    /// A fresh server of `side`, started with `extra` flags.
    pub fn start(side: Side, extra: &[&str]) -> Target {
        let dir = tempdir();
        let bin = match side {
            // This workspace's binary, or `$FERROCD_TEST_SERVER`.
            Side::Ferrocd => crate::common::server_bin(),
            Side::Etcd => crate::common::etcd_35(),
        };
        let server = Server::start_bin(&bin, &dir.path().join("member"), extra);
        Target {
            side,
            server,
            _dir: dir,
        }
    }

    pub fn port(&self) -> u16 {
        self.server.client_port()
    }

    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    /// The server's resident set, in KiB (`VmRSS` in `/proc/PID/status`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.server.pid()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// CPU time the server has used so far (user + system, from
    /// `/proc/PID/stat`).
    pub fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.server.pid()))
            .expect("read /proc/PID/stat");
        // Fields after the command name (which may hold spaces, hence the
        // last ')'): state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')').expect("comm") + 2..];
        let f: Vec<u64> = rest
            .split_whitespace()
            .skip(11)
            .take(2)
            .map(|x| x.parse().expect("number"))
            .collect();
        // SAFETY: sysconf takes no pointers and has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_millis((f[0] + f[1]) * 1000 / hz)
    }

    /// The server's log tail, for failure messages.
    pub fn log_tail(&self) -> String {
        self.server.log_tail()
    }
}
