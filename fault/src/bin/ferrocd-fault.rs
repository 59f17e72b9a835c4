//! `ferrocd-fault`: run seeded rounds of the fault-injection harness
//! against a server binary and check every recorded history.
//!
//! ```text
//! ferrocd-fault --server target/debug/ferrocd --rounds 8 --parallel 2 \
//!     --duration 30s --lossy target/debug/ferrocd-lossyfs --out /tmp/fault
//! ```
//!
//! Rounds get seeds S, S+1, …; with `--members mixed` (the default) every
//! 4th round has 5 members, the others 3; `--members 1` runs one member
//! (its faults: kill, pause, restart and, with `--lossy`, power cuts). One line per round (seed,
//! members, operations, faults by kind, verdict, seconds), a summary at
//! the end; the exit status is non-zero if any round failed. A failed
//! round keeps its directory (history, member logs, data); a passed one is
//! deleted (its `history.jsonl` kept with `--keep-histories`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use ferrocd_fault::check;
use ferrocd_fault::run::{self, Round, Scenario};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Members {
    /// One member (no peer links: kills, pauses, restarts, power cuts).
    #[value(name = "1")]
    One,
    #[value(name = "3")]
    Three,
    #[value(name = "5")]
    Five,
    /// 3, and 5 for every 4th round.
    Mixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ScenarioArg {
    /// Every op kind on every member, ≥ 3 faults of ≥ 2 kinds per round.
    Mixed,
    /// 3 members, 12 writers on the followers, the leader SIGKILLed after 2 s.
    LeaderKill,
    /// Every op kind on every member, the leader power-cut every 3 s (needs --lossy).
    LeaderPowerCut,
}

/// Run seeded fault-injection rounds against a ferrocd (or etcd) binary.
#[derive(Debug, Parser)]
#[command(name = "ferrocd-fault")]
struct Args {
    /// The server binary (takes etcd's flags).
    #[arg(long)]
    server: PathBuf,
    /// Members per round.
    #[arg(long, value_enum, default_value = "mixed")]
    members: Members,
    /// The first round's seed; round k gets seed + k.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 1)]
    rounds: u64,
    /// Load per round (the faults run inside it).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Rounds run at the same time.
    #[arg(long, default_value_t = 1)]
    parallel: usize,
    /// The `ferrocd-lossyfs` binary: put every data dir on a lossyfs mount
    /// and add the lose-unsynced fault.
    #[arg(long)]
    lossy: Option<PathBuf>,
    /// Where round directories go.
    #[arg(long, default_value = "target/fault-runs")]
    out: PathBuf,
    #[arg(long, value_enum, default_value = "mixed")]
    scenario: ScenarioArg,
    /// Client loops per round.
    #[arg(long, default_value_t = 12)]
    clients: usize,
    /// Keep `history.jsonl` of passing rounds (their data is deleted).
    #[arg(long)]
    keep_histories: bool,
    /// Members dial each other directly, without the peer proxies (no
    /// partitions or delays): for a server that does not speak ferrocd's
    /// peer protocol, e.g. a reference run against etcd 3.5.
    #[arg(long)]
    no_proxy: bool,
}

/// One round's line and verdict.
struct Line {
    text: String,
    passed: bool,
    ops: usize,
    faults: usize,
}

async fn one(args: Arc<Args>, k: u64) -> Line {
    let seed = args.seed + k;
    let members = match (args.members, args.scenario) {
        (_, ScenarioArg::LeaderKill) | (Members::Three, _) => 3,
        (Members::One, _) => 1,
        (Members::Five, _) => 5,
        (Members::Mixed, _) if k % 4 == 3 => 5,
        (Members::Mixed, _) => 3,
    };
    let dir = args.out.join(format!("seed-{seed}-m{members}"));
    let _ = std::fs::remove_dir_all(&dir);
    let mut r = Round::new(&args.server, members, seed, &dir);
    r.duration = args.duration;
    r.lossy = args.lossy.clone();
    r.clients = args.clients;
    // One member has no peer links to cut or delay.
    r.proxy = !args.no_proxy && members > 1;
    r.scenario = match args.scenario {
        ScenarioArg::Mixed => Scenario::Mixed,
        ScenarioArg::LeaderKill => Scenario::LeaderKill,
        ScenarioArg::LeaderPowerCut => Scenario::LeaderPowerCut,
    };
    let began = Instant::now();
    let done = match run::run(&r).await {
        Ok(d) => d,
        Err(e) => {
            return Line {
                text: format!(
                    "seed {seed} members {members}: ERROR {e:#} ({:.1}s; kept {})",
                    began.elapsed().as_secs_f64(),
                    dir.display()
                ),
                passed: false,
                ops: 0,
                faults: 0,
            };
        }
    };
    // The checker is CPU-bound (the per-key linearizability search): off
    // the runtime's workers, so parallel rounds keep their clients timely.
    let history = done.history.clone();
    let report = tokio::task::spawn_blocking(move || check::check(&history))
        .await
        .expect("checker panicked");
    let passed = report.ok() && done.problems.is_empty();
    let mut text = format!(
        "seed {seed} members {members}: {} — {} {:.1}s",
        run::summary(&done.history),
        if passed { "PASS" } else { "FAIL" },
        done.elapsed.as_secs_f64()
    );
    if passed {
        if args.keep_histories {
            let kept = args
                .out
                .join(format!("seed-{seed}-m{members}.history.jsonl"));
            let _ = std::fs::rename(&done.path, &kept);
        }
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        for p in &done.problems {
            text.push_str(&format!("\n    runner: {p}"));
        }
        text.push_str(&format!("\n    kept {}\n{report}", dir.display()));
        let _ = std::fs::write(dir.join("report.txt"), report.to_string());
    }
    Line {
        text,
        passed,
        ops: done.history.ops.len(),
        faults: done.history.faults.len(),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    anyhow::ensure!(args.parallel >= 1, "--parallel must be at least 1");
    anyhow::ensure!(
        args.server.is_file(),
        "no server binary at {}",
        args.server.display()
    );
    std::fs::create_dir_all(&args.out).with_context(|| format!("create {}", args.out.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let began = Instant::now();
    let (passed, failed, ops, faults) = rt.block_on(async {
        let sem = Arc::new(tokio::sync::Semaphore::new(args.parallel));
        let mut set = tokio::task::JoinSet::new();
        let mut lines = Vec::new();
        for k in 0..args.rounds {
            let permit = sem.clone().acquire_owned().await.expect("semaphore open");
            let args = args.clone();
            set.spawn(async move {
                let l = one(args, k).await;
                drop(permit);
                l
            });
            // Print finished rounds while the next ones start.
            while let Some(l) = set.try_join_next() {
                let l = l.expect("round task panicked");
                println!("{}", l.text);
                lines.push(l);
            }
        }
        while let Some(l) = set.join_next().await {
            let l = l.expect("round task panicked");
            println!("{}", l.text);
            lines.push(l);
        }
        let passed = lines.iter().filter(|l| l.passed).count();
        let ops: usize = lines.iter().map(|l| l.ops).sum();
        let faults: usize = lines.iter().map(|l| l.faults).sum();
        (passed, lines.len() - passed, ops, faults)
    });
    println!(
        "{} rounds: {passed} passed, {failed} failed; {ops} operations, {faults} faults; {:.0}s",
        passed + failed,
        began.elapsed().as_secs_f64()
    );
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}
