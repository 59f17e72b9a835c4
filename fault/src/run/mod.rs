//! The harness runner: one round is a fresh cluster, clients and watchers
//! recording a history while the nemesis injects faults, then a heal, a
//! wait for every member to agree, the final read, and `history.jsonl`.
//!
//! - [`cluster`]: the processes, their proxies and lossyfs mounts;
//! - [`client`], [`watcher`]: the load and what it records;
//! - [`nemesis`]: the seeded fault schedule;
//! - [`finale`]: heal, converge, read the final state.
//!
//! Scenarios: [`Scenario::Mixed`] is the general round (every op kind on
//! every member, ≥ 3 faults of ≥ 2 kinds); [`Scenario::LeaderKill`] is
//! issue #18's reproduction of the duplicate apply (3 members, 12 writers
//! of puts and CAS on the two followers, the leader SIGKILLed after 2 s).

pub mod client;
pub mod cluster;
pub mod finale;
pub mod lossy;
pub mod nemesis;
pub mod rng;
pub mod watcher;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use crate::history::{Fault, History, Operation, Outcome, Record};

/// The run's monotonic clock: nanoseconds since the round started.
#[derive(Debug, Clone, Copy)]
pub struct Clock(std::time::Instant);

impl Clock {
    pub fn start() -> Clock {
        Clock(std::time::Instant::now())
    }

    pub fn now(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

/// What a round does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Every op kind on every member under a seeded fault schedule.
    Mixed,
    /// Writers on the followers, the leader SIGKILLed after 2 s (issue #18).
    LeaderKill,
    /// Every op kind on every member; every 3 s a power cut of the leader
    /// (frozen, lossyfs `power-cut`, killed, restarted 0.5 s later). Needs
    /// `lossy`. A leader may have committed entries its own disk does not
    /// hold yet: the cut takes them, and it must not lead again in its old
    /// term (issue #18's harness found members diverging that way).
    LeaderPowerCut,
}

/// One round's settings.
#[derive(Debug, Clone)]
pub struct Round {
    pub server: PathBuf,
    pub members: usize,
    pub seed: u64,
    /// Length of the load (the faults run inside it).
    pub duration: Duration,
    pub lossy: Option<PathBuf>,
    /// The round's own directory (created; data, logs, history).
    pub dir: PathBuf,
    pub scenario: Scenario,
    /// Client loops (12 by default: enough contention on 8 keys, light
    /// enough that 2–3 rounds share 2 cores).
    pub clients: usize,
    /// Watch streams (3: one from revision 1, two from their start).
    pub watchers: usize,
    /// Keys the clients share.
    pub keys: usize,
    /// Peer links through the proxies (partitions and delays possible);
    /// `false` for a server that does not speak ferrocd's peer protocol
    /// (a reference run against etcd).
    pub proxy: bool,
}

impl Round {
    /// The defaults for a seed.
    pub fn new(server: &Path, members: usize, seed: u64, dir: &Path) -> Round {
        Round {
            server: server.to_path_buf(),
            members,
            seed,
            duration: Duration::from_secs(30),
            lossy: None,
            dir: dir.to_path_buf(),
            scenario: Scenario::Mixed,
            clients: 12,
            watchers: 3,
            keys: 8,
            // One member has no peer links to proxy.
            proxy: members > 1,
        }
    }
}

/// What a round did (the history itself is in `dir/history.jsonl`).
#[derive(Debug, Clone)]
pub struct Finished {
    pub history: History,
    /// Path of `history.jsonl`.
    pub path: PathBuf,
    /// Problems the runner saw itself: a member that crashed, a cluster
    /// that did not converge. Any of them fails the round.
    pub problems: Vec<String>,
    pub elapsed: Duration,
}

/// Counts for a round's summary line.
pub fn summary(h: &History) -> String {
    let ok = h
        .ops
        .iter()
        .filter(|o| matches!(o.outcome, Outcome::Ok(_)))
        .count();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &h.faults {
        *kinds.entry(nemesis::kind_name(&f.what)).or_default() += 1;
    }
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k}×{n}")).collect();
    let events: usize = h.watches.iter().map(|w| w.events.len()).sum();
    format!(
        "ops {} ({} ok), watch events {}, faults {} [{}]",
        h.ops.len(),
        ok,
        events,
        h.faults.len(),
        kinds.join(" ")
    )
}

/// Run one round. Errors are the runner's own failures (a cluster that
/// never started); what the servers did wrong is in the outcome.
pub async fn run(r: &Round) -> anyhow::Result<Finished> {
    let began = Instant::now();
    std::fs::create_dir_all(&r.dir)?;
    let clock = Clock::start();
    let members = match r.scenario {
        Scenario::Mixed | Scenario::LeaderPowerCut => r.members,
        Scenario::LeaderKill => 3,
    };
    let mut c = cluster::Cluster::start(cluster::Spec {
        server: r.server.clone(),
        members,
        dir: r.dir.clone(),
        token: format!("fault-{}", r.seed),
        lossy: r.lossy.clone(),
        proxy: r.proxy,
    })
    .await?;
    let urls: Vec<String> = c.members.iter().map(|m| m.client_url()).collect();

    // Who writes where.
    let leader = c.leader().await;
    let (mix, homes): (client::Mix, Vec<usize>) = match r.scenario {
        Scenario::Mixed | Scenario::LeaderPowerCut => (client::Mix::Full, (0..members).collect()),
        Scenario::LeaderKill => {
            let l = leader.ok_or_else(|| anyhow::anyhow!("no leader after start"))?;
            (
                client::Mix::Writes,
                (0..members).filter(|&j| j != l).collect(),
            )
        }
    };
    let t0 = Instant::now();
    let until = t0 + r.duration;
    let mut clients = tokio::task::JoinSet::new();
    for id in 0..r.clients as u32 {
        let first = homes[id as usize % homes.len()];
        let mut allowed = vec![first];
        allowed.extend(homes.iter().copied().filter(|&j| j != first));
        let plan = client::Plan {
            id,
            urls: urls.clone(),
            members: allowed,
            // One in three moves to another member after an error; the
            // rest stay, so a restarted member gets its clients back.
            roams: r.scenario != Scenario::LeaderKill && id % 3 == 0,
            mix,
            keys: r.keys,
            seed: r.seed,
        };
        clients.spawn(client::run(plan, clock, until));
    }
    let mut watchers = tokio::task::JoinSet::new();
    for id in 0..r.watchers as u32 {
        let plan = watcher::Plan {
            id,
            urls: urls.clone(),
            first: id as usize % members,
            from_one: id == 0,
        };
        watchers.spawn(watcher::run(plan, clock, until));
    }

    let mut problems = Vec::new();
    let faults: Vec<Fault> = match r.scenario {
        Scenario::Mixed => {
            let lossy = r.lossy.is_some();
            match nemesis::run(&mut c, r.seed, r.duration, lossy, &clock, t0).await {
                Ok(f) => f,
                Err(e) => {
                    problems.push(format!("nemesis: {e:#}"));
                    Vec::new()
                }
            }
        }
        Scenario::LeaderPowerCut => {
            anyhow::ensure!(
                r.lossy.is_some(),
                "the leader-power-cut scenario needs lossyfs"
            );
            let mut faults = Vec::new();
            let mut at = t0 + Duration::from_millis(1500);
            while at + Duration::from_secs(1) < until {
                tokio::time::sleep_until(at).await;
                at += Duration::from_secs(3);
                let Some(l) = c.leader().await else {
                    continue;
                };
                let start = clock.now();
                c.pause(l)?;
                let cut = c.cut(l);
                c.kill(l)?;
                let cut = cut?;
                tokio::time::sleep(Duration::from_millis(500)).await;
                c.spawn(l)?;
                faults.push(Fault {
                    start,
                    end: clock.now(),
                    what: format!("lose-unsynced {l} (leader; {cut})"),
                });
            }
            faults
        }
        Scenario::LeaderKill => {
            tokio::time::sleep_until(t0 + Duration::from_secs(2)).await;
            let l = leader.expect("checked above");
            let start = clock.now();
            c.kill(l)?;
            // Down until the load ends; the heal restarts it.
            tokio::time::sleep_until(until).await;
            vec![Fault {
                start,
                end: clock.now(),
                what: format!("kill-leader {l}"),
            }]
        }
    };
    let mut ops: Vec<Operation> = Vec::new();
    while let Some(r) = clients.join_next().await {
        ops.extend(r??);
    }
    let mut watches = Vec::new();
    while let Some(w) = watchers.join_next().await {
        watches.extend(w?);
    }
    ops.sort_by_key(|o| (o.start, o.client));
    watches.sort_by_key(|w| (w.watcher, w.start));

    let final_state = finale::settle_and_read(&mut c, &clock, &mut problems).await;
    c.note_crashes();
    problems.extend(c.crashes.iter().cloned());
    let history = History {
        seed: r.seed,
        members,
        ops,
        watches,
        faults,
        final_state: Some(final_state),
    };
    let path = r.dir.join("history.jsonl");
    write_history(&path, &history, &r.server)?;
    drop(c);
    Ok(Finished {
        history,
        path,
        problems,
        elapsed: began.elapsed(),
    })
}

/// Write `history.jsonl`: the meta line, then ops, watches, faults and the
/// final state, one record per line.
pub fn write_history(path: &Path, h: &History, server: &Path) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut line = |r: &Record| -> anyhow::Result<()> {
        serde_json::to_writer(&mut out, r)?;
        out.write_all(b"\n")?;
        Ok(())
    };
    line(&Record::Meta {
        seed: h.seed,
        members: h.members,
        server: server.display().to_string(),
    })?;
    for o in &h.ops {
        line(&Record::Op(o.clone()))?;
    }
    for w in &h.watches {
        line(&Record::Watch(w.clone()))?;
    }
    for f in &h.faults {
        line(&Record::Fault(f.clone()))?;
    }
    if let Some(f) = &h.final_state {
        line(&Record::Final(f.clone()))?;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(())
}
