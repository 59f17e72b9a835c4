//! Durable append cost on the machine's disk: the WAL (io_uring write +
//! linked fdatasync per batch) next to a bare `pwrite` + `fdatasync` loop on
//! a preallocated file in the same directory, in the same run.
//!
//! `cargo bench -p ferrocd-wal --bench append -- [--dir DIR] [--secs S]`
//! (default dir: `target/wal-bench`, on the same disk as the build; each
//! row runs about `S` seconds, default 1.5).

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferrocd_wal::{Config, TornTail, UringFs, Wal};
use hdrhistogram::Histogram;

/// One case's measurements (merged over interleaved rounds).
struct Sample {
    what: String,
    h: Histogram<u64>,
    elapsed: Duration,
    batch: usize,
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds")
}

fn row(what: String, h: &Histogram<u64>, batch: usize, elapsed: Duration) -> Sample {
    Sample {
        what,
        h: h.clone(),
        elapsed,
        batch,
    }
}

fn bare(dir: &Path, size: usize, secs: Duration) -> Sample {
    let path = dir.join("bare.dat");
    let _ = std::fs::remove_file(&path);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    // Preallocated exactly as the WAL preallocates its segments
    // (fallocate: unwritten extents), so both pay the same metadata work.
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall on an fd we own; no memory is passed.
    let rc = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, 64 << 20) };
    assert_eq!(rc, 0, "fallocate: {}", std::io::Error::last_os_error());
    f.sync_all().unwrap();
    let buf = vec![0x5au8; size];
    let mut h = hist();
    let mut off = 0u64;
    let start = Instant::now();
    while start.elapsed() < secs {
        let t = Instant::now();
        f.write_all_at(&buf, off).unwrap();
        f.sync_data().unwrap();
        h.record(t.elapsed().as_nanos() as u64).unwrap();
        off = (off + size as u64) % (60 << 20);
    }
    let el = start.elapsed();
    std::fs::remove_file(&path).unwrap();
    row(format!("bare pwrite+fdatasync, {size} B"), &h, 1, el)
}

/// The same loop through the WAL's io_uring file (write + linked
/// fdatasync), without the WAL: separates the cost of io_uring's async
/// fdatasync from the WAL's own work.
fn uring(dir: &Path, size: usize, secs: Duration) -> Sample {
    use ferrocd_wal::{File, Fs};
    let path = dir.join("uring.dat");
    let _ = std::fs::remove_file(&path);
    let mut f = UringFs.create(&path).unwrap();
    f.allocate(64 << 20).unwrap();
    f.sync_data().unwrap();
    let buf = vec![0x5au8; size];
    let mut h = hist();
    let mut off = 0u64;
    let start = Instant::now();
    while start.elapsed() < secs {
        let t = Instant::now();
        f.write_and_sync(&buf, off).unwrap();
        h.record(t.elapsed().as_nanos() as u64).unwrap();
        off = (off + size as u64) % (60 << 20);
    }
    let el = start.elapsed();
    std::fs::remove_file(&path).unwrap();
    row(
        format!("io_uring write+fdatasync (linked), {size} B"),
        &h,
        1,
        el,
    )
}

/// One io_uring `Write` with `RWF_DSYNC` (durable like write+fdatasync
/// for that range) instead of a linked write + fdatasync pair: the
/// alternative the WAL could use.
fn uring_dsync(dir: &Path, size: usize, secs: Duration) -> Sample {
    use std::os::fd::AsRawFd;
    let path = dir.join("dsync.dat");
    let _ = std::fs::remove_file(&path);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    // SAFETY: plain syscall on an fd we own; no memory is passed.
    let rc = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, 64 << 20) };
    assert_eq!(rc, 0);
    f.sync_all().unwrap();
    let mut ring = io_uring::IoUring::new(8).unwrap();
    let buf = vec![0x5au8; size];
    let mut h = hist();
    let mut off = 0u64;
    let start = Instant::now();
    while start.elapsed() < secs {
        let t = Instant::now();
        let e = io_uring::opcode::Write::new(
            io_uring::types::Fd(f.as_raw_fd()),
            buf.as_ptr(),
            size as u32,
        )
        .offset(off)
        .rw_flags(libc::RWF_DSYNC)
        .build();
        // SAFETY: `buf` outlives the submission; we wait for its completion
        // before touching it again.
        unsafe { ring.submission().push(&e) }.unwrap();
        ring.submit_and_wait(1).unwrap();
        let cqe = ring.completion().next().unwrap();
        assert_eq!(cqe.result(), size as i32);
        h.record(t.elapsed().as_nanos() as u64).unwrap();
        off = (off + size as u64) % (60 << 20);
    }
    let el = start.elapsed();
    std::fs::remove_file(&path).unwrap();
    row(
        format!("io_uring write RWF_DSYNC (one op), {size} B"),
        &h,
        1,
        el,
    )
}

fn wal(dir: &Path, size: usize, batch: usize, secs: Duration) -> Sample {
    let wdir = dir.join(format!("wal-{size}-{batch}"));
    let _ = std::fs::remove_dir_all(&wdir);
    let cfg = Config {
        segment_size: 64 << 20,
        keep_segments: 2,
        torn_tail: TornTail::Truncate,
    };
    let (mut w, _) = Wal::open(UringFs, &wdir, cfg).unwrap();
    let payload = vec![0x5au8; size];
    let mut h = hist();
    let mut index = 1u64;
    let start = Instant::now();
    while start.elapsed() < secs {
        let t = Instant::now();
        for _ in 0..batch {
            w.append_entry(index, &payload).unwrap();
            index += 1;
        }
        w.sync().unwrap();
        h.record(t.elapsed().as_nanos() as u64).unwrap();
        if index % 8192 < batch as u64 {
            let _ = w.purge_before(index);
        }
    }
    let el = start.elapsed();
    drop(w);
    std::fs::remove_dir_all(&wdir).unwrap();
    row(format!("wal, batch {batch}, {size} B"), &h, batch, el)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wal-bench");
    let mut secs = Duration::from_millis(1500);
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--dir" => {
                dir = PathBuf::from(&args[i + 1]);
                i += 1;
            }
            "--secs" => {
                secs = Duration::from_secs_f64(args[i + 1].parse().expect("--secs takes seconds"));
                i += 1;
            }
            "--bench" => {}
            other => panic!("unknown argument {other}; use --dir DIR --secs S"),
        }
        i += 1;
    }
    std::fs::create_dir_all(&dir).unwrap();
    // The VM's fdatasync latency drifts by tens of percent between runs, so
    // the cases are interleaved: ROUNDS rounds, each running every case for
    // secs / ROUNDS, histograms merged per case.
    const ROUNDS: u32 = 3;
    let slice = secs / ROUNDS;
    eprintln!(
        "dir {}, {:?} per case in {ROUNDS} interleaved rounds",
        dir.display(),
        secs
    );
    let mut merged: Vec<Sample> = Vec::new();
    for round in 0..ROUNDS {
        let mut k = 0;
        for size in [128usize, 4096] {
            let mut samples = vec![
                bare(&dir, size, slice),
                uring(&dir, size, slice),
                uring_dsync(&dir, size, slice),
            ];
            for batch in [1usize, 16, 256] {
                samples.push(wal(&dir, size, batch, slice));
            }
            for smp in samples {
                if round == 0 {
                    merged.push(smp);
                } else {
                    let m = &mut merged[k];
                    m.h.add(&smp.h).expect("same histogram bounds");
                    m.elapsed += smp.elapsed;
                }
                k += 1;
            }
        }
        eprintln!("round {} of {ROUNDS} done", round + 1);
    }
    println!("| case | records/s | syncs/s | p50 per sync | p99 per sync |");
    println!("|---|---|---|---|---|");
    for m in &merged {
        let syncs = m.h.len() as f64 / m.elapsed.as_secs_f64();
        println!(
            "| {} | {:.0} | {:.0} | {:.1} µs | {:.1} µs |",
            m.what,
            syncs * m.batch as f64,
            syncs,
            m.h.value_at_quantile(0.5) as f64 / 1000.0,
            m.h.value_at_quantile(0.99) as f64 / 1000.0
        );
    }
}
