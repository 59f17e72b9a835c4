//! The final event log: an index the other checkers query (a key's state
//! at any revision, the put events of a value, the events of a revision),
//! and the `event log` check that the log itself is well formed.
//!
//! Facts from etcd 3.5.1 (checked by hand against the binary): a fresh
//! store is at revision 1 and holds no event there; the first write makes
//! revision 2; a delete of an absent key, a compare that failed, a lease
//! grant and the revoke of a lease without keys make no revision; a revoke
//! (or expiry) of a lease with keys deletes them all in one revision, the
//! only request of the harness's workload that puts several events in one
//! revision. So the log's revisions run 2..=R without a gap.

use std::collections::{BTreeMap, HashMap};

use crate::history::{Event, EventKind, Final, Kv};

use super::{Check, Ctx};

pub(crate) const NAME: &str = "event log";

/// The final event log, indexed.
pub(crate) struct Log<'a> {
    events: &'a [Event],
    /// Event indices by revision (`kv.mod_revision`), in log order.
    by_rev: BTreeMap<i64, Vec<usize>>,
    /// Per key: (revision, the key after it; `None` = deleted), ascending.
    keys: HashMap<&'a str, Vec<(i64, Option<&'a Kv>)>>,
    /// Put events (indices) by value.
    puts: HashMap<&'a str, Vec<usize>>,
}

impl<'a> Log<'a> {
    pub fn new(fin: &'a Final) -> Log<'a> {
        let events = &fin.events[..];
        let mut by_rev: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        let mut puts: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, e) in events.iter().enumerate() {
            by_rev.entry(e.kv.mod_revision).or_default().push(i);
            if e.kind == EventKind::Put {
                puts.entry(&e.kv.value).or_default().push(i);
            }
        }
        // Built in revision order so a log out of order (reported by the
        // check) still gives each key its states in revision order.
        let mut keys: HashMap<&str, Vec<(i64, Option<&Kv>)>> = HashMap::new();
        for (&rev, idx) in &by_rev {
            for &i in idx {
                let e = &events[i];
                let state = (e.kind == EventKind::Put).then_some(&e.kv);
                keys.entry(&e.kv.key).or_default().push((rev, state));
            }
        }
        Log {
            events,
            by_rev,
            keys,
            puts,
        }
    }

    pub fn event(&self, i: usize) -> &'a Event {
        &self.events[i]
    }

    /// The key as it was at `rev` (after every event of `rev`).
    pub fn state_at(&self, key: &str, rev: i64) -> Option<&'a Kv> {
        let hist = self.keys.get(key)?;
        let n = hist.partition_point(|(r, _)| *r <= rev);
        if n == 0 { None } else { hist[n - 1].1 }
    }

    /// Event indices of revision `rev`.
    pub fn at(&self, rev: i64) -> &[usize] {
        self.by_rev.get(&rev).map_or(&[], |v| &v[..])
    }

    /// Revisions in `lo..=hi` with their event indices, ascending.
    pub fn range(&self, lo: i64, hi: i64) -> impl Iterator<Item = (i64, &[usize])> + '_ {
        let empty = lo > hi;
        self.by_rev
            .range(lo..=hi.max(lo))
            .filter(move |_| !empty)
            .map(|(r, v)| (*r, &v[..]))
    }

    /// Put events (indices) carrying `value`.
    pub fn puts_of(&self, value: &str) -> &[usize] {
        self.puts.get(value).map_or(&[], |v| &v[..])
    }

    /// Every value in a put event, with its events.
    pub fn values(&self) -> impl Iterator<Item = (&'a str, &[usize])> + '_ {
        self.puts.iter().map(|(v, i)| (*v, &i[..]))
    }

    /// Every revision with its event indices, ascending.
    pub fn revisions(&self) -> impl Iterator<Item = (i64, &[usize])> + '_ {
        self.by_rev.iter().map(|(r, v)| (*r, &v[..]))
    }

    /// Every key the log names, with its states in revision order.
    pub fn keys(&self) -> impl Iterator<Item = (&'a str, &[(i64, Option<&'a Kv>)])> + '_ {
        self.keys.iter().map(|(k, v)| (*k, &v[..]))
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }
}

/// The key's mod revision, 0 when absent (etcd's compare value for "the key
/// does not exist").
pub(crate) fn mod_rev(kv: Option<&Kv>) -> i64 {
    kv.map_or(0, |kv| kv.mod_revision)
}

pub(crate) fn check(cx: &Ctx<'_>) -> Check {
    let fin = cx.fin;
    let log = &cx.log;
    let mut v = Vec::new();

    if let Some(w) = fin
        .events
        .windows(2)
        .position(|w| w[1].kv.mod_revision < w[0].kv.mod_revision)
    {
        v.push(format!(
            "events out of revision order: event {} has revision {} after event {} with {}",
            w + 1,
            fin.events[w + 1].kv.mod_revision,
            w,
            fin.events[w].kv.mod_revision
        ));
    }

    let mut expect_rev = 2;
    for (rev, idx) in log.revisions() {
        if rev != expect_rev {
            v.push(if rev < expect_rev {
                format!("event at revision {rev}: revision 1 holds no event in etcd")
            } else {
                format!(
                    "revisions {expect_rev}..={} have no event (a gap in the log)",
                    rev - 1
                )
            });
        }
        expect_rev = rev + 1;
        if idx.len() > 1 {
            // Only a lease's revoke or expiry changes several keys at once
            // in this workload, and it only deletes.
            if let Some(&i) = idx.iter().find(|&&i| log.event(i).kind == EventKind::Put) {
                v.push(format!(
                    "revision {rev} has {} events, one a put of {}: only a lease's deletion makes several events in one revision",
                    idx.len(),
                    log.event(i).kv.key
                ));
            }
            let mut keys: Vec<&str> = idx.iter().map(|&i| &log.event(i).kv.key[..]).collect();
            keys.sort_unstable();
            if let Some(k) = keys.windows(2).find(|w| w[0] == w[1]) {
                v.push(format!("revision {rev} changes key {} twice", k[0]));
            }
        }
    }
    if fin.events.is_empty() {
        if fin.revision != 1 {
            v.push(format!(
                "final revision is {} but the log has no event (a fresh store is at 1)",
                fin.revision
            ));
        }
    } else if expect_rev - 1 != fin.revision {
        v.push(format!(
            "the log ends at revision {} but the final revision is {}",
            expect_rev - 1,
            fin.revision
        ));
    }

    // Each key's versions: a put of an absent key creates it (create
    // revision = its revision, version 1); a put of a present key keeps the
    // create revision and adds one to the version; a delete needs the key.
    for (key, states) in log.keys() {
        let mut prev: Option<&Kv> = None;
        for &(rev, state) in states {
            match (prev, state) {
                (None, Some(kv)) if kv.create_revision != rev || kv.version != 1 => {
                    v.push(format!(
                        "put of absent key {key} at revision {rev} has create_revision {} version {} (want {rev}, 1)",
                        kv.create_revision, kv.version
                    ));
                }
                (Some(p), Some(kv))
                    if kv.create_revision != p.create_revision || kv.version != p.version + 1 =>
                {
                    v.push(format!(
                        "put of key {key} at revision {rev} has create_revision {} version {} (want {}, {})",
                        kv.create_revision,
                        kv.version,
                        p.create_revision,
                        p.version + 1
                    ));
                }
                (None, None) => {
                    v.push(format!(
                        "delete event of absent key {key} at revision {rev}"
                    ));
                }
                _ => {}
            }
            prev = state;
        }
    }

    Check {
        name: NAME,
        violations: v,
        stats: format!(
            "{} events, {} keys, revision {}",
            log.len(),
            log.keys.len(),
            fin.revision
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testutil::*;
    use crate::check::timeline::Timeline;

    fn run(events: Vec<crate::history::Event>) -> Check {
        let h = history(vec![], events);
        let fin = h.final_state.as_ref().unwrap();
        let cx = Ctx {
            h: &h,
            fin,
            log: Log::new(fin),
            time: Timeline::new(&h),
        };
        check(&cx)
    }

    #[test]
    fn state_at_follows_the_key() {
        let h = history(
            vec![],
            vec![
                put_ev("a", "1", 2, 2, 1),
                put_ev("b", "x", 3, 3, 1),
                put_ev("a", "2", 2, 4, 2),
                del_ev("a", 5),
            ],
        );
        let log = Log::new(h.final_state.as_ref().unwrap());
        assert_eq!(log.state_at("a", 1), None);
        assert_eq!(log.state_at("a", 2).unwrap().value, "1");
        assert_eq!(log.state_at("a", 3).unwrap().value, "1");
        assert_eq!(log.state_at("a", 4).unwrap().value, "2");
        assert_eq!(log.state_at("a", 5), None);
        assert_eq!(log.state_at("zz", 5), None);
        assert_eq!(log.puts_of("2"), &[2]);
        assert_eq!(log.at(3), &[1]);
        assert_eq!(log.range(3, 4).count(), 2);
        assert_eq!(log.range(5, 4).count(), 0);
    }

    #[test]
    fn a_well_formed_log_passes() {
        let c = run(vec![
            put_ev("a", "1", 2, 2, 1),
            put_ev("a", "2", 2, 3, 2),
            del_ev("a", 4),
            put_ev("a", "3", 5, 5, 1),
        ]);
        assert!(c.ok(), "{:?}", c.violations);
    }

    #[test]
    fn gaps_disorder_and_bad_versions_fail() {
        let c = run(vec![put_ev("a", "1", 2, 2, 1), put_ev("a", "2", 2, 4, 2)]);
        assert!(c.violations.iter().any(|v| v.contains("gap")), "{c:?}");

        let c = run(vec![put_ev("a", "1", 3, 3, 1), put_ev("b", "2", 2, 2, 1)]);
        assert!(c.violations.iter().any(|v| v.contains("order")), "{c:?}");

        let c = run(vec![put_ev("a", "1", 2, 2, 1), put_ev("a", "2", 2, 3, 3)]);
        assert!(
            c.violations.iter().any(|v| v.contains("version 3")),
            "{c:?}"
        );

        let c = run(vec![put_ev("a", "1", 2, 2, 1), del_ev("b", 3)]);
        assert!(
            c.violations.iter().any(|v| v.contains("absent key b")),
            "{c:?}"
        );

        let c = run(vec![put_ev("a", "1", 1, 1, 1)]);
        assert!(
            c.violations.iter().any(|v| v.contains("revision 1")),
            "{c:?}"
        );
    }
}
