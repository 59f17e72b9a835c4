//! Automatic compaction (`--auto-compaction-mode`, `--auto-compaction-retention`)
//! as etcd 3.5's `v3compactor` decides it, sans-IO: the node calls
//! [`Compactor::tick`] every [`Compactor::poll_interval`] with the time,
//! the current revision and whether it leads, proposes the revision it
//! gets (if any) through raft like a client's Compact, and reports the
//! outcome with [`Compactor::done`]. Every member runs one; only the
//! leader compacts (etcd pauses the compactor on followers, which keep
//! sampling).
//!
//! - periodic, retention `P`: every `R = min(P, 1h) / 10` the current
//!   revision is sampled, keeping `P / R + 1` samples, so the oldest is
//!   the revision of `P` (and a tick) ago. The first compaction waits `P` after start
//!   (a bare number is hours: `--auto-compaction-retention 24` keeps a
//!   day), later ones `min(P, 1h)` after the last success; each compacts
//!   to the oldest sample. A failed compaction is retried at the next
//!   tick (`R` later). A member that becomes leader compacts at its next
//!   tick if its last success (or start) is long enough ago.
//! - revision, retention `N`: every 5 minutes, compact to `current - N`
//!   when that is positive and not the revision compacted to last time;
//!   a failure is retried 5 minutes later.
//!
//! "Compacted" (someone compacted further already) counts as success, as
//! in etcd.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::AutoCompaction;

const HOUR: Duration = Duration::from_secs(3600);
/// etcd's revision compactor period (`revInterval`).
const REVISION_PERIOD: Duration = Duration::from_secs(300);
/// etcd's `retryDivisor`.
const RETRY_DIVISOR: u32 = 10;

/// See the module docs.
#[derive(Debug)]
pub struct Compactor {
    mode: AutoCompaction,
    /// Periodic: sampled revisions, oldest first.
    samples: VecDeque<i64>,
    /// Periodic: when the last compaction succeeded (start at first).
    last_success: Instant,
    /// Periodic: time from `last_success` to the next compaction (the
    /// retention until the first one, then `min(P, 1h)`).
    wait: Duration,
    /// Revision: the revision compacted to last (0: none).
    last_rev: i64,
    /// The revision [`Compactor::tick`] handed out last.
    pending: Option<i64>,
}

impl Compactor {
    /// A compactor for `mode`, started at `now` with the store at
    /// `revision` (the first sample).
    pub fn new(mode: AutoCompaction, now: Instant, revision: i64) -> Self {
        let wait = match mode {
            AutoCompaction::Periodic(p) => p,
            _ => Duration::ZERO,
        };
        Self {
            mode,
            samples: VecDeque::from([revision]),
            last_success: now,
            wait,
            last_rev: 0,
            pending: None,
        }
    }

    /// How often [`Compactor::tick`] must be called (`None`: off).
    pub fn poll_interval(&self) -> Option<Duration> {
        match self.mode {
            AutoCompaction::Off => None,
            AutoCompaction::Periodic(p) => Some(retry_interval(p)),
            AutoCompaction::Revision(_) => Some(REVISION_PERIOD),
        }
    }

    /// One poll interval has passed: the revision to compact to, if this
    /// member leads and one is due. Report the outcome with
    /// [`Compactor::done`].
    pub fn tick(&mut self, now: Instant, revision: i64, leader: bool) -> Option<i64> {
        let out = match self.mode {
            AutoCompaction::Off => None,
            AutoCompaction::Revision(keep) => {
                let target = revision - keep;
                (leader && target > 0 && target != self.last_rev).then_some(target)
            }
            AutoCompaction::Periodic(p) => {
                let due = leader && now.duration_since(self.last_success) >= self.wait;
                let out = due.then(|| {
                    if self.wait == p {
                        self.wait = compact_interval(p);
                    }
                    self.samples[0]
                });
                // The sample for the next round (etcd takes it at the top
                // of its loop, right after compacting).
                self.samples.push_back(revision);
                let keep = retentions(p);
                while self.samples.len() > keep {
                    self.samples.pop_front();
                }
                out
            }
        };
        self.pending = out;
        out
    }

    /// The compaction [`Compactor::tick`] asked for finished at `now`:
    /// `ok` when it succeeded or the store was compacted further already.
    pub fn done(&mut self, now: Instant, ok: bool) {
        let Some(rev) = self.pending.take() else {
            return;
        };
        if ok {
            self.last_success = now;
            self.last_rev = rev;
        }
    }
}

/// etcd's `getCompactInterval`: the retention, at most an hour.
fn compact_interval(p: Duration) -> Duration {
    p.min(HOUR)
}

/// etcd's `getRetryInterval`: a tenth of the compact interval.
fn retry_interval(p: Duration) -> Duration {
    (compact_interval(p) / RETRY_DIVISOR).max(Duration::from_millis(1))
}

/// etcd's `getRetentions`: samples kept, so the oldest is `p` old.
fn retentions(p: Duration) -> usize {
    (p.as_nanos() / retry_interval(p).as_nanos()) as usize + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_never_compacts() {
        let t0 = Instant::now();
        let mut c = Compactor::new(AutoCompaction::Off, t0, 1);
        assert_eq!(c.poll_interval(), None);
        assert_eq!(c.tick(t0 + HOUR, 100, true), None);
    }

    /// Drive `c` like the node does: tick every poll interval from `t0`
    /// for `ticks` ticks, the revision given by `rev(tick)`; every
    /// compaction succeeds. Returns (tick, revision) of the compactions.
    fn drive(
        c: &mut Compactor,
        t0: Instant,
        ticks: u32,
        rev: impl Fn(u32) -> i64,
        leader: impl Fn(u32) -> bool,
    ) -> Vec<(u32, i64)> {
        let every = c.poll_interval().unwrap();
        let mut out = Vec::new();
        for i in 1..=ticks {
            let now = t0 + every * i;
            if let Some(r) = c.tick(now, rev(i), leader(i)) {
                c.done(now, true);
                out.push((i, r));
            }
        }
        out
    }

    #[test]
    fn revision_mode_every_five_minutes() {
        let t0 = Instant::now();
        let mut c = Compactor::new(AutoCompaction::Revision(10), t0, 1);
        assert_eq!(c.poll_interval(), Some(REVISION_PERIOD));
        // The first tick (5 minutes after start) compacts already.
        let revs = [100, 100, 150, 5, 160];
        let out = drive(&mut c, t0, 5, |i| revs[i as usize - 1], |_| true);
        // Unchanged revision: nothing; fewer revisions than kept: nothing.
        assert_eq!(out, vec![(1, 90), (3, 140), (5, 150)]);
    }

    #[test]
    fn revision_mode_retries_a_failure_and_waits_for_leadership() {
        let t0 = Instant::now();
        let mut c = Compactor::new(AutoCompaction::Revision(10), t0, 1);
        let t = |i: u32| t0 + REVISION_PERIOD * i;
        assert_eq!(c.tick(t(1), 100, false), None, "followers do not compact");
        assert_eq!(c.tick(t(2), 100, true), Some(90));
        c.done(t(2), false);
        assert_eq!(c.tick(t(3), 100, true), Some(90), "a failure is retried");
        c.done(t(3), true);
        assert_eq!(c.tick(t(4), 100, true), None);
    }

    #[test]
    fn periodic_under_an_hour_compacts_every_retention() {
        let t0 = Instant::now();
        let p = Duration::from_secs(60);
        let mut c = Compactor::new(AutoCompaction::Periodic(p), t0, 1);
        // Samples every 6 s; one write per second.
        assert_eq!(c.poll_interval(), Some(Duration::from_secs(6)));
        let out = drive(&mut c, t0, 30, |i| 1 + 6 * i as i64, |_| true);
        // After a minute, the revision at start; then every minute the
        // oldest of the 11 samples: the revision of a minute and a tick
        // before (as etcd's window of `P / R + 1` samples gives).
        assert_eq!(out, vec![(10, 1), (20, 55), (30, 115)]);
    }

    #[test]
    fn periodic_over_an_hour_waits_the_retention_then_compacts_hourly() {
        let t0 = Instant::now();
        let p = Duration::from_secs(24 * 3600);
        let mut c = Compactor::new(AutoCompaction::Periodic(p), t0, 0);
        // Samples every 6 minutes (a tenth of an hour), 241 kept.
        assert_eq!(c.poll_interval(), Some(Duration::from_secs(360)));
        // The revision is the number of ticks so far.
        let out = drive(&mut c, t0, 260, |i| i as i64, |_| true);
        // First at 24 h (tick 240) to the revision at start, then every
        // hour (10 ticks) to the oldest of 241 samples (24 h and a tick
        // before).
        assert_eq!(out, vec![(240, 0), (250, 9), (260, 19)]);
    }

    #[test]
    fn periodic_new_leader_compacts_at_its_next_tick() {
        let t0 = Instant::now();
        let p = Duration::from_secs(60);
        let mut c = Compactor::new(AutoCompaction::Periodic(p), t0, 1);
        // A follower for 2 minutes (it samples all along), then leader:
        // it compacts at once, to a revision a minute old.
        let out = drive(&mut c, t0, 40, |i| 1 + 6 * i as i64, |i| i > 20);
        assert_eq!(out, vec![(21, 61), (31, 121)]);
    }

    #[test]
    fn periodic_failure_is_retried_at_the_next_tick() {
        let t0 = Instant::now();
        let p = Duration::from_secs(10);
        let mut c = Compactor::new(AutoCompaction::Periodic(p), t0, 1);
        let t = |i: u32| t0 + Duration::from_secs(i as u64);
        for i in 1..10 {
            assert_eq!(c.tick(t(i), 1 + i as i64, true), None);
        }
        assert_eq!(c.tick(t(10), 11, true), Some(1));
        c.done(t(10), false);
        assert_eq!(c.tick(t(11), 12, true), Some(1), "retried a tick later");
        c.done(t(11), true);
        assert_eq!(c.tick(t(12), 13, true), None);
    }
}
