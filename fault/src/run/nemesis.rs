//! The nemesis: a seeded schedule of faults injected while the clients
//! run, each recorded as a [`Fault`] (start, end, what).
//!
//! A round of length `D` is cut into `K = max(3, (D − 2.5 s) / 5 s)`
//! slots after a 1.5 s warm-up; each slot holds one fault, healed before
//! the next slot starts, so at most one member is faulty at a time and a
//! majority can make progress (a minority/majority split of 5 leaves 3).
//! The kinds of the first two slots differ, so every round has at least
//! 3 faults of at least 2 kinds. Kinds:
//!
//! | what | does | how long |
//! |---|---|---|
//! | `kill i` | SIGKILL, restart | down 0.5–3 s |
//! | `kill-leader i` | SIGKILL the member Status names leader, restart | down 0.5–3 s |
//! | `lose-unsynced i` | SIGSTOP, lossyfs `power-cut` (what was not fsynced is gone; the mounts' fsyncs take 5 ms, so a member under load has writes in flight), SIGKILL, restart; the leader half the time (only with `--lossy`) | down 0.5–2 s |
//! | `pause i` | SIGSTOP, SIGCONT | 1–5 s |
//! | `restart i` | SIGTERM (SIGKILL after 10 s), start | down 0.2–1 s |
//! | `partition {i} \| {rest}` | every link to and from `i` down | 1–5 s |
//! | `partition {a,b} \| {rest}` | minority/majority split (5 members) | 1–5 s |
//! | `partition a -> b` | the one link `a → b` down (directed) | 1–5 s |
//! | `partition a -> *` | every link from `a` down, links to `a` up | 1–5 s |
//! | `delay i Nms` | every link to and from `i` delayed 50–200 ms | 2–5 s |
//!
//! Each hold is capped to its slot (minus 300 ms), so a 15 s round still
//! fits 3 faults.

use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;

use super::Clock;
use super::cluster::Cluster;
use super::rng::Rng;
use crate::history::Fault;
use crate::proxy::Link;

/// Warm-up before the first fault.
const WARMUP: Duration = Duration::from_millis(1500);
/// Nominal slot length; the slot count follows from it.
const SLOT: Duration = Duration::from_secs(5);

/// A fault kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Kill,
    KillLeader,
    LoseUnsynced,
    Pause,
    Restart,
    Isolate,
    Split,
    Directed,
    Delay,
}

impl Kind {
    /// The kinds a round may use, with their weights.
    fn table(lossy: bool, links: bool) -> Vec<(Kind, u64)> {
        let mut t = vec![
            (Kind::Kill, 10),
            (Kind::KillLeader, 10),
            (Kind::Pause, 10),
            (Kind::Restart, 8),
        ];
        if links {
            t.extend([
                (Kind::Isolate, 10),
                (Kind::Split, 6),
                (Kind::Directed, 10),
                (Kind::Delay, 8),
            ]);
        }
        if lossy {
            // The fault lossyfs exists for: weigh it like two others.
            t.push((Kind::LoseUnsynced, 20));
        }
        t
    }

    fn pick(rng: &mut Rng, lossy: bool, links: bool) -> Kind {
        let t = Kind::table(lossy, links);
        let total: u64 = t.iter().map(|(_, w)| w).sum();
        let mut x = rng.range(0, total);
        for (k, w) in t {
            if x < w {
                return k;
            }
            x -= w;
        }
        unreachable!("weights cover the range")
    }
}

/// The kinds of a round's slots: at least 3, the first two different.
/// `links`: partitions and delays may be chosen (the peer proxies run).
pub fn plan(seed: u64, duration: Duration, lossy: bool, links: bool) -> Vec<Kind> {
    let mut rng = Rng::stream(seed, 1);
    let usable = duration.saturating_sub(WARMUP + Duration::from_secs(1));
    let k = ((usable.as_millis() / SLOT.as_millis()) as usize).max(3);
    let mut kinds: Vec<Kind> = (0..k).map(|_| Kind::pick(&mut rng, lossy, links)).collect();
    while kinds[1] == kinds[0] {
        kinds[1] = Kind::pick(&mut rng, lossy, links);
    }
    kinds
}

fn set_name(s: &[usize]) -> String {
    let v: Vec<String> = s.iter().map(ToString::to_string).collect();
    format!("{{{}}}", v.join(","))
}

/// Run the schedule against `c` until `duration` after `t0`; returns the
/// faults injected. Every fault is healed before this returns.
pub async fn run(
    c: &mut Cluster,
    seed: u64,
    duration: Duration,
    lossy: bool,
    clock: &Clock,
    t0: Instant,
) -> anyhow::Result<Vec<Fault>> {
    let kinds = plan(seed, duration, lossy, c.spec().proxy);
    let mut rng = Rng::stream(seed, 2);
    let usable = duration.saturating_sub(WARMUP + Duration::from_secs(1));
    let slot = usable / kinds.len() as u32;
    let mut faults = Vec::new();
    for (s, kind) in kinds.into_iter().enumerate() {
        tokio::time::sleep_until(t0 + WARMUP + slot * s as u32).await;
        let cap = slot.saturating_sub(Duration::from_millis(300));
        faults.push(inject(c, kind, &mut rng, cap, clock).await?);
    }
    Ok(faults)
}

/// A hold of `lo..hi` ms, capped.
fn hold(rng: &mut Rng, lo: u64, hi: u64, cap: Duration) -> Duration {
    rng.millis(lo, hi).min(cap)
}

/// Inject one fault and heal it.
pub async fn inject(
    c: &mut Cluster,
    kind: Kind,
    rng: &mut Rng,
    cap: Duration,
    clock: &Clock,
) -> anyhow::Result<Fault> {
    let n = c.len();
    let i = rng.below(n);
    let start = clock.now();
    let what = match kind {
        Kind::Kill | Kind::KillLeader => {
            let (who, name) = match kind {
                Kind::KillLeader => match c.leader().await {
                    Some(l) => (l, "kill-leader"),
                    // No agreed leader right now (an election): any member.
                    None => (i, "kill"),
                },
                _ => (i, "kill"),
            };
            if c.is_running(who) {
                c.kill(who)?;
            }
            tokio::time::sleep(hold(rng, 500, 3000, cap)).await;
            c.spawn(who)?;
            format!("{name} {who}")
        }
        Kind::LoseUnsynced => {
            // A power cut: the member is frozen (SIGSTOP) with whatever it
            // had written but not yet fsynced, the file system drops that
            // (and fails the frozen process's open files), then the member
            // dies. A plain kill first would let it finish its in-flight
            // syncs, leaving nothing to lose. Half the time the leader:
            // it may have committed entries its own disk does not hold yet.
            let i = if rng.below(2) == 0 {
                c.leader().await.unwrap_or(i)
            } else {
                i
            };
            let running = c.is_running(i);
            if running {
                c.pause(i)?;
            }
            let answer = c.cut(i).context("lose-unsynced");
            if running {
                c.kill(i)?;
            }
            let answer = answer?;
            tokio::time::sleep(hold(rng, 500, 2000, cap)).await;
            c.spawn(i)?;
            format!("lose-unsynced {i} ({answer})")
        }
        Kind::Pause => {
            c.pause(i)?;
            tokio::time::sleep(hold(rng, 1000, 5000, cap)).await;
            c.resume(i)?;
            format!("pause {i}")
        }
        Kind::Restart => {
            let clean = c.stop(i).await?;
            tokio::time::sleep(hold(rng, 200, 1000, cap)).await;
            c.spawn(i)?;
            if clean {
                format!("restart {i}")
            } else {
                format!("restart {i} (SIGTERM ignored for 10 s: killed)")
            }
        }
        Kind::Isolate | Kind::Split => {
            let size = if kind == Kind::Split { (n - 1) / 2 } else { 1 };
            let mut minority = vec![i];
            while minority.len() < size {
                let j = rng.below(n);
                if !minority.contains(&j) {
                    minority.push(j);
                }
            }
            minority.sort_unstable();
            let majority: Vec<usize> = (0..n).filter(|j| !minority.contains(j)).collect();
            for &a in &minority {
                for &b in &majority {
                    c.proxies.set_link(a, b, Link::Down);
                    c.proxies.set_link(b, a, Link::Down);
                }
            }
            tokio::time::sleep(hold(rng, 1000, 5000, cap)).await;
            c.proxies.heal();
            format!(
                "partition {} | {}",
                set_name(&minority),
                set_name(&majority)
            )
        }
        Kind::Directed => {
            let all = rng.chance(50);
            let what = if all {
                for b in (0..n).filter(|&b| b != i) {
                    c.proxies.set_link(i, b, Link::Down);
                }
                format!("partition {i} -> * (directed)")
            } else {
                let b = (i + 1 + rng.below(n - 1)) % n;
                c.proxies.set_link(i, b, Link::Down);
                format!("partition {i} -> {b} (directed)")
            };
            tokio::time::sleep(hold(rng, 1000, 5000, cap)).await;
            c.proxies.heal();
            what
        }
        Kind::Delay => {
            let d = rng.millis(50, 200);
            for b in (0..n).filter(|&b| b != i) {
                c.proxies.set_link(i, b, Link::Delay(d));
                c.proxies.set_link(b, i, Link::Delay(d));
            }
            tokio::time::sleep(hold(rng, 2000, 5000, cap)).await;
            c.proxies.heal();
            format!("delay {i} {}ms", d.as_millis())
        }
    };
    Ok(Fault {
        start,
        end: clock.now(),
        what,
    })
}

/// The kind named by a fault's `what` (its first word).
pub fn kind_name(what: &str) -> &str {
    what.split(' ').next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plan_has_three_faults_of_two_kinds() {
        for seed in 0..500 {
            for (secs, lossy, links) in [(15, false, true), (20, true, true), (30, false, false)] {
                let p = plan(seed, Duration::from_secs(secs), lossy, links);
                assert!(p.len() >= 3, "seed {seed}: {p:?}");
                assert_ne!(p[0], p[1], "seed {seed}");
                if !lossy {
                    assert!(!p.contains(&Kind::LoseUnsynced), "seed {seed}: {p:?}");
                }
                if !links {
                    let link = [Kind::Isolate, Kind::Split, Kind::Directed, Kind::Delay];
                    assert!(!p.iter().any(|k| link.contains(k)), "seed {seed}: {p:?}");
                }
            }
        }
        let p = |s| plan(s, Duration::from_secs(30), true, true);
        assert_eq!(p(3).len(), 5);
        assert_eq!(p(3), p(3));
    }
}
