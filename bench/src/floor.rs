//! `ferrobench floor`: what a lone durable write costs on this machine
//! before any server code runs.
//!
//! A single client's put can never be faster than one `fdatasync`, one
//! loopback round trip and the thread hand-offs its server makes. This
//! measures those floors with no server at all, each as a p50/p90/p99 of
//! `--total` operations, in one run, so a single-client latency can be
//! read against them:
//! - `fdatasync`: `pwrite` of a request-sized record + `fdatasync`, in a
//!   preallocated, zero-filled file (as the WAL writes its segments);
//! - `tcp + fdatasync, one thread`: a client sends a request over
//!   loopback TCP; the thread that reads it writes and syncs it and
//!   answers (no hand-off);
//! - `tcp + fdatasync, one hand-off`: the reading thread hands the
//!   request to a second thread, which writes and syncs it and hands it
//!   back, and the reader answers (the least a server with client-port
//!   threads apart from its log's thread can do: ferrocd's shard → raft
//!   thread → shard).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use hdrhistogram::Histogram;

/// `ferrobench floor`.
#[derive(Debug, Clone, Args)]
pub struct FloorArgs {
    /// Directory for the test file (use the filesystem the data dir is on).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Operations per figure.
    #[arg(long, default_value_t = 3000)]
    pub total: u64,
    /// Request size in bytes (a put of a 256-byte value is about 300).
    #[arg(long, default_value_t = 300)]
    pub size: usize,
}

/// Answer size in bytes.
const ANSWER: usize = 50;
/// The file is preallocated and zero-filled to this size; writes wrap.
const FILE_BYTES: u64 = 64 << 20;

/// One figure of the floor: its name and latencies in microseconds.
pub struct Figure {
    pub name: &'static str,
    pub hist: Histogram<u64>,
}

pub fn run(args: &FloorArgs) -> anyhow::Result<()> {
    let path = args
        .dir
        .join(format!(".ferrobench-floor-{}", std::process::id()));
    let r = measure(&path, args.total, args.size);
    let _ = std::fs::remove_file(&path);
    for f in r? {
        let q = |p: f64| f.hist.value_at_quantile(p);
        println!(
            "{:<32} p50 {:>5} us  p90 {:>5} us  p99 {:>5} us  ({} ops)",
            f.name,
            q(0.5),
            q(0.9),
            q(0.99),
            f.hist.len()
        );
    }
    Ok(())
}

/// The three figures, measured one after the other on one file.
pub fn measure(path: &Path, total: u64, size: usize) -> anyhow::Result<Vec<Figure>> {
    anyhow::ensure!(total > 0 && size > 0, "--total and --size must be positive");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    let zeros = vec![0u8; 1 << 20];
    for at in (0..FILE_BYTES).step_by(zeros.len()) {
        file.write_all_at(&zeros, at)?;
    }
    file.sync_all()?;
    let slots = FILE_BYTES / size as u64;
    let mut log = Log {
        file,
        slots,
        size,
        next: 0,
    };

    let mut bare = hist();
    let record = vec![7u8; size];
    for _ in 0..total {
        let t = Instant::now();
        log.append(&record)?;
        record_us(&mut bare, t);
    }
    let one = round_trips(total, size, Server::OneThread(log.clone()))?;
    let handoff = round_trips(total, size, Server::HandOff(log))?;
    Ok(vec![
        Figure {
            name: "fdatasync",
            hist: bare,
        },
        Figure {
            name: "tcp + fdatasync, one thread",
            hist: one,
        },
        Figure {
            name: "tcp + fdatasync, one hand-off",
            hist: handoff,
        },
    ])
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

fn record_us(h: &mut Histogram<u64>, since: Instant) {
    let us = since.elapsed().as_micros().max(1) as u64;
    h.saturating_record(us);
}

/// The file, written round-robin in request-sized slots.
struct Log {
    file: std::fs::File,
    slots: u64,
    size: usize,
    next: u64,
}

impl Log {
    fn clone(&self) -> Log {
        Log {
            file: self.file.try_clone().expect("dup the test file"),
            slots: self.slots,
            size: self.size,
            next: self.next,
        }
    }

    fn append(&mut self, record: &[u8]) -> std::io::Result<()> {
        let at = (self.next % self.slots) * self.size as u64;
        self.next += 1;
        self.file.write_all_at(record, at)?;
        self.file.sync_data()
    }
}

enum Server {
    OneThread(Log),
    HandOff(Log),
}

/// A client on this thread, the server on others; latencies of `total`
/// request/answer round trips.
fn round_trips(total: u64, size: usize, server: Server) -> anyhow::Result<Histogram<u64>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let srv = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut req = vec![0u8; size];
        match server {
            Server::OneThread(mut log) => {
                while s.read_exact(&mut req).is_ok() {
                    log.append(&req)?;
                    s.write_all(&req[..ANSWER.min(size)])?;
                }
            }
            Server::HandOff(mut log) => {
                let (to_log, requests) = mpsc::channel::<Vec<u8>>();
                let (to_reader, answers) = mpsc::channel::<std::io::Result<Vec<u8>>>();
                let syncer = std::thread::spawn(move || {
                    for r in requests {
                        let done = log.append(&r).map(|()| r);
                        if to_reader.send(done).is_err() {
                            return;
                        }
                    }
                });
                while s.read_exact(&mut req).is_ok() {
                    to_log
                        .send(std::mem::replace(&mut req, vec![0u8; size]))
                        .expect("syncer runs");
                    req = answers.recv().expect("syncer answers")?;
                    s.write_all(&req[..ANSWER.min(size)])?;
                }
                drop(to_log);
                let _ = syncer.join();
            }
        }
        Ok(())
    });
    let mut c = TcpStream::connect(addr)?;
    c.set_nodelay(true)?;
    let mut h = hist();
    let req = vec![1u8; size];
    let mut answer = vec![0u8; ANSWER.min(size)];
    for _ in 0..total {
        let t = Instant::now();
        c.write_all(&req)?;
        c.read_exact(&mut answer)?;
        record_us(&mut h, t);
    }
    drop(c);
    srv.join().expect("server thread")?;
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_figure_counts_its_operations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("floor");
        let figures = measure(&path, 20, 300).unwrap();
        let names: Vec<_> = figures.iter().map(|f| f.name).collect();
        assert_eq!(
            names,
            [
                "fdatasync",
                "tcp + fdatasync, one thread",
                "tcp + fdatasync, one hand-off"
            ]
        );
        for f in &figures {
            assert_eq!(f.hist.len(), 20, "{}", f.name);
            assert!(f.hist.min() >= 1, "{}", f.name);
        }
    }

    #[test]
    fn writes_wrap_within_the_preallocated_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(dir.path().join("f")).unwrap();
        let mut log = Log {
            file,
            slots: 3,
            size: 4,
            next: 0,
        };
        for i in 0..7u8 {
            log.append(&[i; 4]).unwrap();
        }
        let data = std::fs::read(dir.path().join("f")).unwrap();
        assert_eq!(data, [[6u8; 4], [4; 4], [5; 4]].concat());
    }
}
