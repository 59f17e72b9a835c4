//! Watch hub costs with many watchers on one core:
//!
//! - 100k watchers on distinct keys (exact-key hash index);
//! - 100k watchers on one shared prefix (one group, every event fans out
//!   to all of them);
//! - 100k watchers on distinct prefixes (100k ranges in the interval
//!   treap, each event matching one).
//!
//! Reports the registration rate, memory per watcher (live heap bytes the
//! registration added / watchers: slabs, groups, index, including `Vec` and
//! hash-table slack, not the allocator's own overhead), the
//! time for `notify` of one event (p50 / p99), and `notify` + `drain` of the
//! responses (what the wire would also pay). Plus catch-up: 100k watchers
//! on distinct keys starting 1000 revisions back, synced from a model
//! history.
//!
//! `cargo bench -p ferrocd-mvcc --bench watch` (release, harness = false)

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use ferrocd_mvcc::{
    Event, EventKind, History, Hub, KeyRange, KeyValue, Result, WatchConfig, WatchRequest,
};

const WATCHERS: usize = 100_000;

/// Counts live heap bytes, so memory per watcher is exact (RSS would reuse
/// what the previous case freed).
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees carry over; the counter is a side
// effect that touches no memory the allocator hands out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours, passed through.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours, passed through.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as ours, passed through.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live_bytes() -> isize {
    LIVE.load(Ordering::Relaxed)
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

fn pod(i: usize) -> Vec<u8> {
    format!("/registry/pods/ns/pod-{i:08}").into_bytes()
}

/// Register `ranges` on 1000 streams, notify `rounds` one-event batches
/// with keys from `key_of`, print one table row.
fn case(
    name: &str,
    ranges: &[KeyRange],
    rounds: usize,
    key_of: impl Fn(usize) -> Vec<u8>,
    fanout: usize,
) {
    let before = live_bytes();
    let mut hub = Hub::new(WatchConfig::default(), 1);
    let t = Instant::now();
    for (i, r) in ranges.iter().enumerate() {
        hub.watch((i % 1000) as u64, WatchRequest::new(r.clone()));
    }
    let reg = t.elapsed();
    let mem = (live_bytes() - before) as f64 / ranges.len() as f64;
    let mut notify = Vec::new();
    let mut total = Vec::new();
    let mut out = Vec::with_capacity(fanout);
    let mut rev = 1;
    for i in 0..rounds {
        rev += 1;
        let ev = [event(&key_of(i), rev)];
        let t = Instant::now();
        hub.notify(rev, &ev);
        let n = t.elapsed();
        out.clear();
        hub.drain(&mut out);
        total.push(t.elapsed());
        notify.push(n);
        assert_eq!(out.len(), fanout);
        black_box(&out);
    }
    println!(
        "| {name} | {:.0}k/s | {:.0} B | p50 {:?}, p99 {:?} | p50 {:?}, p99 {:?} |",
        ranges.len() as f64 / reg.as_secs_f64() / 1000.0,
        mem,
        percentile(&mut notify, 0.5),
        percentile(&mut notify, 0.99),
        percentile(&mut total, 0.5),
        percentile(&mut total, 0.99),
    );
}

/// One put per revision on key `rev % keys`, as a model history indexed by
/// key (so catch-up cost is the hub's, not a scan).
struct Log {
    current: i64,
    by_key: BTreeMap<Vec<u8>, Vec<i64>>,
}

impl History for Log {
    fn current_revision(&self) -> i64 {
        self.current
    }
    fn compacted_revision(&self) -> i64 {
        0
    }
    fn events(
        &self,
        range: &KeyRange,
        from: i64,
        to: i64,
        _prev_kv: bool,
        limit: usize,
    ) -> Result<Vec<Event>> {
        let mut out: Vec<Event> = Vec::new();
        let keys = self.by_key.range(range.start.clone()..);
        for (key, revs) in keys.take_while(|(k, _)| range.contains(k)) {
            for &rev in revs.iter().filter(|&&r| r >= from && r <= to) {
                out.push(event(key, rev));
            }
        }
        out.sort_by_key(|e| e.kv.mod_revision);
        if limit > 0 && out.len() > limit {
            let last = out[limit - 1].kv.mod_revision;
            out.retain(|e| e.kv.mod_revision <= last);
        }
        Ok(out)
    }
}

fn catch_up() {
    let keys = WATCHERS;
    let mut hub = Hub::new(WatchConfig::default(), 1);
    let mut log = Log {
        current: 1 + 1000,
        by_key: BTreeMap::new(),
    };
    for rev in 2..=log.current {
        let key = pod(rev as usize % keys);
        hub.notify(rev, &[event(&key, rev)]);
        log.by_key.entry(key).or_default().push(rev);
    }
    // Each watcher starts 1000 revisions back on its own key: 1000 of the
    // 100k have one event to replay, all must scan.
    let t = Instant::now();
    for i in 0..WATCHERS {
        hub.watch(
            (i % 1000) as u64,
            WatchRequest {
                start_revision: 2,
                ..WatchRequest::new(KeyRange::single(&pod(i)))
            },
        );
    }
    let mut out = Vec::new();
    let mut calls = 0;
    while hub.unsynced_len() > 0 {
        hub.sync_unsynced(&log, 10_000).unwrap();
        hub.drain(&mut out);
        calls += 1;
    }
    let took = t.elapsed();
    println!(
        "\ncatch-up: {WATCHERS} watchers on distinct keys, start 1000 revisions back (1000 of them have an event to replay), {} responses, {calls} sync calls: {:?} ({:.2} µs/watcher, including the model history's lookups)",
        out.len(),
        took,
        took.as_secs_f64() * 1e6 / WATCHERS as f64
    );
}

fn main() {
    println!("| case | register | memory / watcher | notify, 1 event | notify + drain |");
    println!("|---|---|---|---|---|");

    let distinct: Vec<KeyRange> = (0..WATCHERS).map(|i| KeyRange::single(&pod(i))).collect();
    case(
        "100k watchers, distinct keys",
        &distinct,
        20_000,
        |i| pod((i * 7919) % WATCHERS),
        1,
    );
    drop(distinct);

    let shared: Vec<KeyRange> = (0..WATCHERS)
        .map(|_| KeyRange::prefix(b"/registry/pods/"))
        .collect();
    case(
        "100k watchers, one prefix (fan-out to all)",
        &shared,
        50,
        |i| format!("/registry/pods/ns/pod-{i}").into_bytes(),
        WATCHERS,
    );
    drop(shared);

    let prefixes: Vec<KeyRange> = (0..WATCHERS)
        .map(|i| {
            let mut p = pod(i);
            p.push(b'/');
            KeyRange::prefix(&p)
        })
        .collect();
    case(
        "100k watchers, distinct prefixes (interval treap)",
        &prefixes,
        20_000,
        |i| {
            let mut k = pod((i * 7919) % WATCHERS);
            k.extend_from_slice(b"/status");
            k
        },
        1,
    );
    drop(prefixes);

    catch_up();
}
