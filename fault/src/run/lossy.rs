//! One member's data dir on a `ferrocd-lossyfs` mount: a FUSE file system
//! in memory that can forget what was not fsynced.
//!
//! The lossyfs process is started as `ferrocd-lossyfs MOUNTPOINT --control
//! SOCKET`; on the unix socket the line `cut` reverts every file and
//! directory entry to its last fsynced state and is answered `ok <bytes>
//! <entries>`. The runner cuts only while the member is dead (SIGKILL,
//! cut, restart): that is a power loss of one machine.
//!
//! Unmounting: `umount2(MNT_DETACH)` as root (lossyfs mounts with mount(2)
//! then), else `fusermount3 -u -z`; the daemon exits when its mount goes
//! and is killed if it has not within 5 s.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a new mount gets to appear (the daemon only has to start).
const MOUNT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a `cut` may take: it copies the member's files back, a few
/// MiB at most in a round.
const CUT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the daemon gets to exit after its mount is gone.
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// `ferrocd-lossyfs --fsync-delay-ms` for the harness's mounts.
const FSYNC_DELAY_MS: &str = "5";

/// A mounted lossyfs.
#[derive(Debug)]
pub struct Mount {
    path: PathBuf,
    socket: PathBuf,
    daemon: Option<Child>,
}

fn mounted(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.display().to_string();
    // Field 5 is the mount point (octal escapes for spaces: our paths
    // have none).
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

impl Mount {
    /// Mount member `i`'s lossyfs under `dir` and wait until it serves.
    pub async fn start(bin: &Path, dir: &Path, i: usize) -> anyhow::Result<Mount> {
        let path = dir.join(format!("m{i}.mnt"));
        let socket = dir.join(format!("m{i}.lossyfs.sock"));
        std::fs::create_dir_all(&path)?;
        let path = path.canonicalize()?;
        let log = std::fs::File::create(dir.join(format!("m{i}.lossyfs.log")))?;
        let mut cmd = Command::new(bin);
        cmd.arg(&path)
            .arg("--control")
            .arg(&socket)
            // A slow disk, so a power cut under load finds writes whose
            // fdatasync has not returned (with memory-speed syncs it never
            // did: every cut dropped nothing).
            .args(["--fsync-delay-ms", FSYNC_DELAY_MS])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        super::cluster::die_with_parent(&mut cmd);
        let daemon = cmd
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let mut m = Mount {
            path,
            socket,
            daemon: Some(daemon),
        };
        let deadline = Instant::now() + MOUNT_TIMEOUT;
        while !(mounted(&m.path) && m.socket.exists()) {
            if let Some(d) = &mut m.daemon
                && let Some(st) = d.try_wait()?
            {
                m.daemon = None;
                bail!("lossyfs for m{i} exited: {st} (see m{i}.lossyfs.log)");
            }
            if Instant::now() > deadline {
                bail!("lossyfs for m{i} not mounted in {MOUNT_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(m)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Revert everything not fsynced; returns the daemon's answer
    /// (`ok <bytes> <entries>`). `power`: at once, with files still open
    /// (`power-cut`), else after the daemon saw them closed (`cut`).
    pub fn cut(&self, power: bool) -> anyhow::Result<String> {
        let mut s = UnixStream::connect(&self.socket)
            .with_context(|| format!("connect {}", self.socket.display()))?;
        s.set_read_timeout(Some(CUT_TIMEOUT))?;
        s.write_all(if power { b"power-cut\n" } else { b"cut\n" })?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line)?;
        let line = line.trim().to_string();
        if !line.starts_with("ok ") {
            bail!("lossyfs cut answered {line:?}");
        }
        Ok(line)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if mounted(&self.path) {
            let c = std::ffi::CString::new(self.path.as_os_str().as_encoded_bytes())
                .expect("no NUL in a path");
            // SAFETY: umount2 reads the NUL-terminated path, which lives
            // until the call returns; it touches no other memory of ours.
            let r = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            if r != 0 {
                let _ = Command::new("fusermount3")
                    .args(["-u", "-z"])
                    .arg(&self.path)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        if let Some(mut d) = self.daemon.take() {
            let deadline = Instant::now() + EXIT_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = d.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}
