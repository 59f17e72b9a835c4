//! Automatic compaction (`--auto-compaction-mode`, `--auto-compaction-retention`)
//! as etcd 3.5's compactors decide it, sans-IO: [`Compactor::tick`] gets the
//! time and the current revision and says which revision to compact to.
//!
//! - periodic, retention `R`: the revision is sampled every `I / 10`,
//!   where `I = R` below one hour and one hour above; every `I` the store
//!   is compacted to the oldest sample still inside the window, i.e. the
//!   revision the store had `R` ago.
//! - revision, retention `N`: every 5 minutes, compact to `current - N`
//!   when that moved since the last compaction.
//!
//! Only the leader runs it; compactions go through raft like a client's.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::AutoCompaction;

const HOUR: Duration = Duration::from_secs(3600);
/// etcd's revision compactor period.
const REVISION_PERIOD: Duration = Duration::from_secs(300);

/// See the module docs.
#[derive(Debug)]
pub struct Compactor {
    mode: AutoCompaction,
    /// (sample time, revision), oldest first.
    samples: VecDeque<(Instant, i64)>,
    next_sample: Option<Instant>,
    next_compact: Option<Instant>,
    last: i64,
}

impl Compactor {
    /// A compactor for `mode`.
    pub fn new(mode: AutoCompaction) -> Self {
        Self {
            mode,
            samples: VecDeque::new(),
            next_sample: None,
            next_compact: None,
            last: 0,
        }
    }

    /// How often [`Compactor::tick`] needs to be called (`None`: off).
    pub fn poll_interval(&self) -> Option<Duration> {
        match self.mode {
            AutoCompaction::Off => None,
            AutoCompaction::Periodic(r) => Some((interval(r) / 10).max(Duration::from_millis(100))),
            AutoCompaction::Revision(_) => Some(REVISION_PERIOD),
        }
    }

    /// Start over (e.g. after leadership moved here): no samples, timers
    /// restart from `now`.
    pub fn reset(&mut self) {
        self.samples.clear();
        self.next_sample = None;
        self.next_compact = None;
    }

    /// The revision to compact to now, if any.
    pub fn tick(&mut self, now: Instant, revision: i64) -> Option<i64> {
        match self.mode {
            AutoCompaction::Off => None,
            AutoCompaction::Revision(keep) => {
                let at = *self.next_compact.get_or_insert(now + REVISION_PERIOD);
                if now < at {
                    return None;
                }
                self.next_compact = Some(now + REVISION_PERIOD);
                let target = revision - keep;
                (target > 0 && target != self.last).then(|| {
                    self.last = target;
                    target
                })
            }
            AutoCompaction::Periodic(retention) => {
                let every = interval(retention);
                let step = (every / 10).max(Duration::from_millis(1));
                if self.next_sample.is_none_or(|t| now >= t) {
                    self.samples.push_back((now, revision));
                    self.next_sample = Some(now + step);
                }
                // Samples older than the retention window are no longer needed,
                // except the newest of them (the revision R ago).
                while self.samples.len() > 1 && now.duration_since(self.samples[1].0) >= retention {
                    self.samples.pop_front();
                }
                let at = *self.next_compact.get_or_insert(now + every);
                if now < at {
                    return None;
                }
                self.next_compact = Some(now + every);
                let &(t, rev) = self.samples.front()?;
                (now.duration_since(t) >= retention && rev > self.last && rev > 1).then(|| {
                    self.last = rev;
                    rev
                })
            }
        }
    }
}

fn interval(retention: Duration) -> Duration {
    if retention < HOUR { retention } else { HOUR }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_never_compacts() {
        let mut c = Compactor::new(AutoCompaction::Off);
        assert_eq!(c.poll_interval(), None);
        assert_eq!(c.tick(Instant::now(), 100), None);
    }

    #[test]
    fn revision_mode_every_five_minutes() {
        let t0 = Instant::now();
        let mut c = Compactor::new(AutoCompaction::Revision(10));
        assert_eq!(c.tick(t0, 100), None, "first period has not passed");
        assert_eq!(c.tick(t0 + REVISION_PERIOD, 100), Some(90));
        // No writes since: nothing new to compact.
        assert_eq!(c.tick(t0 + 2 * REVISION_PERIOD, 100), None);
        assert_eq!(c.tick(t0 + 3 * REVISION_PERIOD, 150), Some(140));
        // Fewer revisions than kept: nothing.
        let mut c = Compactor::new(AutoCompaction::Revision(1000));
        assert_eq!(c.tick(t0 + REVISION_PERIOD, 100), None);
    }

    #[test]
    fn periodic_keeps_the_retention_window() {
        let t0 = Instant::now();
        let r = Duration::from_secs(60);
        let mut c = Compactor::new(AutoCompaction::Periodic(r));
        assert_eq!(c.poll_interval(), Some(Duration::from_secs(6)));
        // One write per second; tick every 6 s.
        let mut out = Vec::new();
        for s in (0..=180).step_by(6) {
            if let Some(rev) = c.tick(t0 + Duration::from_secs(s), 1 + s as i64) {
                out.push((s, rev));
            }
        }
        // Every minute, compact to the revision of a minute before.
        assert_eq!(out, vec![(60, 1), (120, 61), (180, 121)][1..].to_vec());
    }
}
