//! Watch hub costs with many watchers on one core: 100k watchers on
//! distinct keys, and 100k watchers on one shared prefix. Reports the
//! registration rate, memory per watcher (RSS growth / watchers), the time
//! to notify one event (and, for the shared prefix, to fan it out to every
//! watcher and drain the responses).
//!
//! `cargo bench -p ferrocd-mvcc --bench watch`

use std::hint::black_box;
use std::time::{Duration, Instant};

use ferrocd_mvcc::{
    Event, EventKind, Hub, KeyRange, KeyValue, WatchConfig, WatchRequest, prefix_end,
};

const WATCHERS: usize = 100_000;

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn req(range: KeyRange) -> WatchRequest {
    WatchRequest {
        stream: 1,
        range,
        start_revision: 0,
        prev_kv: false,
        no_put: false,
        no_delete: false,
        progress_notify: false,
    }
}

fn event(key: &[u8], rev: i64) -> Event {
    Event {
        kind: EventKind::Put,
        kv: KeyValue {
            key: key.to_vec(),
            create_revision: 2,
            mod_revision: rev,
            version: 1,
            value: vec![0u8; 256],
            lease: 0,
        },
        prev_kv: None,
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    samples[((samples.len() as f64 - 1.0) * p) as usize]
}

fn main() {
    println!("| case | register | memory / watcher | notify, 1 event | notify + drain |");
    println!("|---|---|---|---|---|");

    // Distinct keys.
    {
        let before = rss_bytes();
        let mut hub = Hub::new(WatchConfig::default(), 1);
        let keys: Vec<Vec<u8>> = (0..WATCHERS)
            .map(|i| format!("/registry/pods/ns/pod-{i:08}").into_bytes())
            .collect();
        let t = Instant::now();
        for k in &keys {
            hub.watch(req(KeyRange::single(k))).unwrap();
        }
        let reg = t.elapsed();
        let mem = rss_bytes().saturating_sub(before) as f64 / WATCHERS as f64;
        let mut notify = Vec::new();
        let mut total = Vec::new();
        let mut rev = 1;
        for i in 0..20_000usize {
            rev += 1;
            let ev = [event(&keys[(i * 7919) % WATCHERS], rev)];
            let t = Instant::now();
            hub.notify(rev, &ev);
            let n = t.elapsed();
            let out = hub.drain(Instant::now());
            total.push(t.elapsed());
            notify.push(n);
            assert_eq!(out.len(), 1);
            black_box(out);
        }
        println!(
            "| 100k watchers, distinct keys | {:.0}k/s | {:.0} B | p50 {:?}, p99 {:?} | p50 {:?}, p99 {:?} |",
            WATCHERS as f64 / reg.as_secs_f64() / 1000.0,
            mem,
            percentile(&mut notify, 0.5),
            percentile(&mut notify, 0.99),
            percentile(&mut total, 0.5),
            percentile(&mut total, 0.99),
        );
    }

    // One shared prefix.
    {
        let before = rss_bytes();
        let mut hub = Hub::new(WatchConfig::default(), 1);
        let prefix = b"/registry/pods/".to_vec();
        let t = Instant::now();
        for _ in 0..WATCHERS {
            hub.watch(req(KeyRange::new(&prefix, &prefix_end(&prefix))))
                .unwrap();
        }
        let reg = t.elapsed();
        let mem = rss_bytes().saturating_sub(before) as f64 / WATCHERS as f64;
        let mut notify = Vec::new();
        let mut total = Vec::new();
        let mut rev = 1;
        for i in 0..20usize {
            rev += 1;
            let ev = [event(format!("/registry/pods/ns/pod-{i}").as_bytes(), rev)];
            let t = Instant::now();
            hub.notify(rev, &ev);
            let n = t.elapsed();
            let out = hub.drain(Instant::now());
            total.push(t.elapsed());
            notify.push(n);
            assert_eq!(out.len(), WATCHERS);
            black_box(out);
        }
        println!(
            "| 100k watchers, one prefix (fan-out to all) | {:.0}k/s | {:.0} B | p50 {:?}, p99 {:?} | p50 {:?}, p99 {:?} |",
            WATCHERS as f64 / reg.as_secs_f64() / 1000.0,
            mem,
            percentile(&mut notify, 0.5),
            percentile(&mut notify, 0.99),
            percentile(&mut total, 0.5),
            percentile(&mut total, 0.99),
        );
    }
}
