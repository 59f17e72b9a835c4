//! The control socket: a unix stream socket taking one command per line
//! and answering one line each.
//!
//! | command | answer |
//! |---|---|
//! | `cut` | `ok <bytes dropped> <entries dropped>`, and ` open=<n>` after it when `n` handles were open (they are stale now: their I/O fails with EIO) |
//! | `power-cut` | as `cut`, but at once: a power cut under a process that still has files open (the harness freezes the member with SIGSTOP first); writes whose fsync has not made them durable yet are dropped, and those fsyncs fail |
//! | `sync-all` | `ok` (everything is durable now) |
//! | `stats` | `ok files=.. dirs=.. bytes=.. allocated=.. unsynced-bytes=.. undo-bytes=.. unsynced-entries=.. open-handles=.. cuts=..` |
//! | anything else | `err <reason>` (nothing changes) |
//!
//! A cut is meant for a mount no process has files open on (the harness
//! kills the member first); it waits up to a second for handles still
//! open to close (the kernel sends a killed process's RELEASEs after it
//! is gone), then cuts anyway. After the model is reverted, and with its lock
//! released, every inode is invalidated in the kernel (attributes and
//! cached pages) so no reader sees bytes the cut took back. The lock must
//! be released first: invalidating a page waits for reads of it in
//! flight, and those wait for the FUSE thread, which needs the lock.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use fuser::{INodeNo, Notifier};

use super::model::{CutReport, Model};

/// How long `cut` waits for open handles to close. close(2) on FUSE
/// does not wait for the RELEASE it sends, so the handles of a process
/// just killed (or of a file just closed) close a few milliseconds after
/// the caller moved on; a cut in that window would report them as open.
const CUT_GRACE: Duration = Duration::from_secs(1);

/// Longest command line accepted; a longer one is answered `err` and the
/// connection closed (the commands are a few bytes).
const MAX_LINE: usize = 4096;

/// Shared state of the control socket's connections.
#[derive(Clone)]
pub struct Control {
    model: Arc<Mutex<Model>>,
    notifier: Option<Notifier>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("notifier", &self.notifier.is_some())
            .finish_non_exhaustive()
    }
}

impl Control {
    /// Commands on `model`; `notifier` (None only in tests without a
    /// mount) is how the kernel is told to forget cached pages after a cut.
    pub fn new(model: Arc<Mutex<Model>>, notifier: Option<Notifier>) -> Self {
        Self { model, notifier }
    }

    /// Run one command line; returns the answer line (no newline).
    pub fn command(&self, line: &str) -> String {
        match line.trim() {
            c @ ("cut" | "power-cut") => {
                let r = if c == "cut" {
                    self.cut()
                } else {
                    self.model.lock().expect("lossyfs model lock").cut()
                };
                if let Some(n) = &self.notifier {
                    for ino in &r.inodes {
                        // ENOENT: the kernel holds no inode of that number;
                        // nothing cached to drop.
                        let _ = n.inval_inode(INodeNo(*ino), 0, 0);
                    }
                }
                let mut out = format!("ok {} {}", r.bytes, r.entries);
                if r.open_handles > 0 {
                    out.push_str(&format!(" open={}", r.open_handles));
                }
                out
            }
            "sync-all" => {
                self.model.lock().expect("lossyfs model lock").sync_all();
                "ok".to_string()
            }
            "stats" => {
                let s = self.model.lock().expect("lossyfs model lock").stats();
                format!(
                    "ok files={} dirs={} bytes={} allocated={} unsynced-bytes={} \
                     undo-bytes={} unsynced-entries={} open-handles={} cuts={}",
                    s.files,
                    s.dirs,
                    s.bytes,
                    s.allocated,
                    s.unsynced_bytes,
                    s.undo_bytes,
                    s.unsynced_entries,
                    s.open_handles,
                    s.cuts
                )
            }
            "" => "err empty command".to_string(),
            other => format!("err unknown command {other:?} (cut, power-cut, sync-all, stats)"),
        }
    }

    /// Cut once no handle is open, or after [`CUT_GRACE`] regardless.
    fn cut(&self) -> CutReport {
        let deadline = Instant::now() + CUT_GRACE;
        loop {
            let mut m = self.model.lock().expect("lossyfs model lock");
            if m.open_handles() == 0 || Instant::now() >= deadline {
                return m.cut();
            }
            drop(m);
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Answer commands on one connection until it closes.
    fn serve_conn(&self, stream: UnixStream) -> std::io::Result<()> {
        let mut out = stream.try_clone()?;
        let mut rd = BufReader::new(stream);
        let mut line = String::new();
        loop {
            line.clear();
            let n = (&mut rd).take(MAX_LINE as u64).read_line(&mut line)?;
            if n == 0 {
                return Ok(());
            }
            if !line.ends_with('\n') && n == MAX_LINE {
                writeln!(out, "err line longer than {MAX_LINE} bytes")?;
                return Ok(());
            }
            let answer = self.command(&line);
            writeln!(out, "{answer}")?;
        }
    }

    /// Accept connections forever, one thread each.
    pub fn serve(self, listener: UnixListener) -> thread::JoinHandle<()> {
        thread::Builder::new()
            .name("lossyfs-control".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    let Ok(conn) = conn else { continue };
                    let me = self.clone();
                    let _ = thread::Builder::new()
                        .name("lossyfs-conn".into())
                        .spawn(move || {
                            if let Err(e) = me.serve_conn(conn) {
                                eprintln!("lossyfs: control connection: {e}");
                            }
                        });
                }
            })
            .expect("spawn the control thread")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_errors() {
        let c = Control::new(Arc::new(Mutex::new(Model::new())), None);
        assert_eq!(c.command("cut\n"), "ok 0 0");
        assert_eq!(c.command("sync-all"), "ok");
        assert!(c.command("stats").starts_with("ok files=0 dirs=1 "));
        assert!(c.command("stats").ends_with(" cuts=1"));
        assert!(c.command("cutt").starts_with("err unknown command"));
        assert_eq!(c.command(""), "err empty command");
    }
}
