//! Store throughput on 1M keys with 256-byte values: puts applied in
//! batches of 256 and of 1, point reads and 100-key range reads from 1 and
//! 2 threads, memory per key (RSS / keys), snapshot save and load.
//!
//! Run: `cargo bench -p ferrocd-mvcc --bench store` (release profile).
//! `FERROCD_BENCH_KEYS` overrides the key count. Each timed phase is
//! bounded (a fixed op count or about 2 s), so a run takes under a minute.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrocd_mvcc::{Config, PutRequest, RangeRequest, Store};

const VALUE: usize = 256;
const PHASE: Duration = Duration::from_secs(2);

fn key(i: u64) -> Vec<u8> {
    format!("/registry/pods/ns-{:03}/pod-{i:08}", i % 100).into_bytes()
}

/// Key `i` of `n` in a scattered order (multiplication by a prime modulo n).
fn scattered(i: u64, n: u64) -> u64 {
    (i.wrapping_mul(2_654_435_761)) % n
}

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Run `op` on `threads` threads for about [`PHASE`]; ops per second.
fn timed<F: Fn(u64) + Sync>(threads: usize, op: F) -> f64 {
    let start = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let op = &op;
                s.spawn(move || {
                    let mut n = 0u64;
                    let mut i = t as u64 * 7_919;
                    while start.elapsed() < PHASE {
                        for _ in 0..256 {
                            op(i);
                            i += 1;
                        }
                        n += 256;
                    }
                    n
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("bench thread"))
            .sum()
    });
    total as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let n: u64 = std::env::var("FERROCD_BENCH_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let value = vec![0x5Au8; VALUE];
    let store = Arc::new(Store::new(Config::default()));
    let rss0 = rss_bytes();

    // Load: puts in batches of 256 (creates).
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let mut b = store.write();
        for _ in 0..256.min(n - i) {
            b.put(&PutRequest::new(key(scattered(i, n)), value.clone()))
                .expect("put");
            i += 1;
        }
        b.commit();
    }
    let load = t.elapsed();
    let rss1 = rss_bytes();
    println!("keys: {n}, value: {VALUE} B");
    println!(
        "load (create, batch 256): {:.0} puts/s ({:.2} s)",
        n as f64 / load.as_secs_f64(),
        load.as_secs_f64()
    );
    println!(
        "memory: {:.0} B/key RSS ({} MiB for {n} keys)",
        (rss1 - rss0) as f64 / n as f64,
        (rss1 - rss0) >> 20
    );

    // Updates in batches of 256 and of 1 (each its own commit).
    for batch in [256u64, 1] {
        let start = Instant::now();
        let mut done = 0u64;
        while start.elapsed() < PHASE {
            let mut b = store.write();
            for _ in 0..batch {
                b.put(&PutRequest::new(
                    key(scattered(done * 31 + 7, n)),
                    value.clone(),
                ))
                .expect("put");
                done += 1;
            }
            b.commit();
        }
        println!(
            "update, batch {batch}: {:.0} puts/s",
            done as f64 / start.elapsed().as_secs_f64()
        );
    }

    // Point reads: one snapshot per read (an arc-swap load).
    for threads in [1, 2, 1, 2] {
        let ops = timed(threads, |i| {
            let v = store.snapshot();
            let kv = v.get(&key(scattered(i, n))).expect("present");
            std::hint::black_box(kv.value().len());
        });
        println!("point reads, {threads} thread(s): {ops:.0} reads/s");
    }

    // 100-key ranges: [key(i), key(i + 100)) in one namespace prefix; keys
    // sort by namespace, so take consecutive keys of the sorted order.
    let sorted: Vec<Vec<u8>> = {
        let v = store.snapshot();
        let r = v
            .range(&RangeRequest {
                keys_only: true,
                ..RangeRequest::new("\0", "\0")
            })
            .expect("range");
        r.kvs.iter().map(|kv| kv.key().to_vec()).collect()
    };
    for threads in [1, 2, 1, 2] {
        let ops = timed(threads, |i| {
            let s = (scattered(i, n - 101)) as usize;
            let v = store.snapshot();
            let r = v
                .range(&RangeRequest::new(
                    sorted[s].clone(),
                    sorted[s + 100].clone(),
                ))
                .expect("range");
            assert_eq!(r.kvs.len(), 100);
            std::hint::black_box(r.kvs.iter().map(|kv| kv.value().len()).sum::<usize>());
        });
        println!("100-key range reads, {threads} thread(s): {ops:.0} ranges/s");
    }

    // Snapshot save / load.
    let dir = std::env::temp_dir().join(format!("ferrocd-mvcc-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("bench.snap");
    let t = Instant::now();
    store.snapshot().save(&path).expect("save");
    let save = t.elapsed();
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    drop(store);
    let t = Instant::now();
    let loaded = Store::load(&path, Config::default()).expect("load");
    let load_t = t.elapsed();
    assert!(loaded.snapshot().get(&key(1)).is_some());
    println!(
        "snapshot save: {:.2} s ({} MiB), load (map + validate): {:.2} s",
        save.as_secs_f64(),
        size >> 20,
        load_t.as_secs_f64()
    );
    drop(loaded);
    let _ = std::fs::remove_dir_all(&dir);
}
