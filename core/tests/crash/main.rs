//! Acknowledged writes survive `kill -9`.
//!
//! Each round, [`WRITERS`] concurrent clients put unique keys (one key per
//! put, so every put is its own revision) and record every acknowledged
//! (key, value, revision). At a random moment during the load the server
//! gets SIGKILL; it is restarted on the same data dir and then every write
//! acknowledged so far, in any round, must be there with its value and its
//! revision as `mod_revision` (and `create_revision`, version 1).
//!
//! A put whose answer never came is unknown, not lost: it may be present or
//! not, but if present it has the value that was sent. No key that was never
//! sent may appear. The header revision never goes backwards across
//! restarts, and revisions handed out after a restart are above everything
//! seen before it (a server that forgot its tail and reused revisions would
//! fail here even if the keys came back).
//!
//! `kill -9` leaves the page cache intact, so this proves the restart path
//! (recovery, replay, revision bookkeeping), not fsync; that is `wal`'s
//! `SimFs` tests' job.
//!
//! Seeded: the seed is printed, `FERROCD_TEST_SEED` repeats a run.
//! `FERROCD_CRASH_ROUNDS` changes the number of rounds (default
//! [`ROUNDS`]); the whole test stops starting new rounds after
//! [`TIME_BUDGET`].

#[path = "../common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Rng, Server, tempdir};
use ferrocd_net::pb::etcdserverpb::kv_client::KvClient;
use ferrocd_net::pb::etcdserverpb::{PutRequest, RangeRequest};
use tonic::transport::Channel;

const ROUNDS: u32 = 15;
const WRITERS: usize = 8;
/// Load lasts a random time in this range (ms) before the kill.
const LOAD_MS: (u64, u64) = (300, 1500);
/// No new round starts after this much time.
const TIME_BUDGET: Duration = Duration::from_secs(90);
/// One put waits at most this long; after that its outcome is unknown.
const PUT_TIMEOUT: Duration = Duration::from_secs(5);
/// A writer stops after this many puts in a round, whatever happens.
const MAX_PUTS_PER_WRITER: u64 = 100_000;

/// One put that was sent.
#[derive(Debug, Clone)]
struct Sent {
    value: String,
    /// The revision of the answer; `None` when no answer came.
    acked: Option<i64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let deadline = TIME_BUDGET + Duration::from_secs(60);
    tokio::time::timeout(deadline, run())
        .await
        .expect("crash test ran past its bound");
}

async fn run() {
    let seed = common::seed("crash");
    let mut rng = Rng::new(seed);
    let rounds: u32 = std::env::var("FERROCD_CRASH_ROUNDS")
        .map(|r| r.parse().expect("FERROCD_CRASH_ROUNDS must be a number"))
        .unwrap_or(ROUNDS);
    let dir = tempdir();
    let mut server = tokio::task::block_in_place(|| Server::start(&dir.path().join("data")));
    eprintln!(
        "crash: server pid {} on {}, {rounds} rounds of {WRITERS} writers",
        server.pid(),
        server.endpoint()
    );

    // Every key ever sent, with what we know about it.
    let mut sent: BTreeMap<String, Sent> = BTreeMap::new();
    // The highest revision any answer has shown.
    let mut seen_rev: i64 = 0;
    let started = Instant::now();
    let mut done = 0;
    for round in 0..rounds {
        if started.elapsed() > TIME_BUDGET {
            eprintln!("crash: time budget spent after {round} rounds");
            break;
        }
        let load = Duration::from_millis(rng.range(LOAD_MS.0, LOAD_MS.1));
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let ch = server.channel().await;
            let stop = stop.clone();
            let tag = rng.next_u64();
            writers.push(tokio::spawn(writer(ch, round, w, tag, stop)));
        }
        tokio::time::sleep(load).await;
        tokio::task::block_in_place(|| server.kill());
        stop.store(true, Ordering::SeqCst);

        let floor = seen_rev;
        let (mut acked, mut unknown) = (0, 0);
        for handle in writers {
            for (key, s) in handle.await.expect("writer task") {
                match s.acked {
                    Some(rev) => {
                        assert!(
                            rev > floor,
                            "seed {seed}: {key} acknowledged at revision {rev}, \
                             but revision {floor} was seen before this round"
                        );
                        seen_rev = seen_rev.max(rev);
                        acked += 1;
                    }
                    None => unknown += 1,
                }
                assert!(sent.insert(key, s).is_none(), "keys are unique");
            }
        }

        tokio::task::block_in_place(|| server.restart());
        let (rev, present_unknown) = verify(&server, &sent, round, seed).await;
        assert!(
            rev >= seen_rev,
            "seed {seed}: revision went backwards across the restart: \
             {rev} after restart, {seen_rev} acknowledged before"
        );
        seen_rev = rev;
        eprintln!(
            "crash: round {round}: load {load:?}, {acked} acknowledged, {unknown} unknown \
             ({present_unknown} of them present), revision {rev}"
        );
        done += 1;
    }
    assert!(done >= 3, "only {done} rounds ran");
    let total_acked = sent.values().filter(|s| s.acked.is_some()).count();
    assert!(total_acked > 0, "no write was ever acknowledged");
    eprintln!("crash: {done} rounds, {total_acked} acknowledged writes all present");
}

/// Puts `crash/<round>/<writer>/<seq>` until told to stop or a put fails;
/// returns every key it sent.
async fn writer(
    ch: Channel,
    round: u32,
    w: usize,
    tag: u64,
    stop: Arc<AtomicBool>,
) -> Vec<(String, Sent)> {
    let mut kv = KvClient::new(ch);
    let mut out = Vec::new();
    for seq in 0..MAX_PUTS_PER_WRITER {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let key = format!("crash/{round:03}/{w:02}/{seq:08}");
        let value = format!("{tag:016x}-{seq}");
        let put = kv.put(PutRequest {
            key: key.clone().into_bytes(),
            value: value.clone().into_bytes(),
            ..Default::default()
        });
        let acked = match tokio::time::timeout(PUT_TIMEOUT, put).await {
            Ok(Ok(resp)) => Some(
                resp.into_inner()
                    .header
                    .expect("put answer has a header")
                    .revision,
            ),
            // Failed or timed out: unknown, and this writer is done.
            _ => None,
        };
        let failed = acked.is_none();
        out.push((key, Sent { value, acked }));
        if failed {
            break;
        }
    }
    out
}

/// Reads back every round so far and checks it against what was sent.
/// Returns the header revision and how many of the last round's unknown
/// puts are present.
async fn verify(
    server: &Server,
    sent: &BTreeMap<String, Sent>,
    last_round: u32,
    seed: u64,
) -> (i64, usize) {
    let mut kv = KvClient::new(server.channel().await).max_decoding_message_size(256 << 20);
    let mut header_rev = 0;
    let mut present = HashSet::new();
    let mut present_unknown = 0;
    let mut revs = HashSet::new();
    for round in 0..=last_round {
        let prefix = format!("crash/{round:03}/");
        let mut end = prefix.clone().into_bytes();
        *end.last_mut().expect("non-empty") += 1;
        let resp = tokio::time::timeout(
            Duration::from_secs(10),
            kv.range(RangeRequest {
                key: prefix.into_bytes(),
                range_end: end,
                ..Default::default()
            }),
        )
        .await
        .expect("range in time")
        .expect("range after restart")
        .into_inner();
        let rev = resp.header.expect("header").revision;
        assert!(
            rev >= header_rev,
            "seed {seed}: header revision went backwards between reads"
        );
        header_rev = rev;
        for got in resp.kvs {
            let key = String::from_utf8(got.key).expect("utf-8 key");
            let Some(s) = sent.get(&key) else {
                panic!("seed {seed}: {key} is present but was never sent");
            };
            assert_eq!(
                got.value,
                s.value.as_bytes(),
                "seed {seed}: {key} has a value that was never sent"
            );
            assert!(
                revs.insert(got.mod_revision),
                "seed {seed}: two keys at revision {}",
                got.mod_revision
            );
            match s.acked {
                Some(rev) => assert_eq!(
                    (got.mod_revision, got.create_revision, got.version),
                    (rev, rev, 1),
                    "seed {seed}: {key}: (mod, create, version) differ from the answer"
                ),
                None if round == last_round => present_unknown += 1,
                None => {}
            }
            present.insert(key);
        }
    }
    for (key, s) in sent {
        if let Some(rev) = s.acked {
            assert!(
                present.contains(key),
                "seed {seed}: {key} was acknowledged at revision {rev} and is gone after kill -9"
            );
        }
    }
    (header_rev, present_unknown)
}
