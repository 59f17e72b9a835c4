//! `watch`: etcd's watch guarantees, stream by stream and across a
//! watcher's reconnections.
//!
//! For each stream (a [`WatchRecord`]) with prefix P from start revision
//! S, up to the last revision L it delivered:
//! - ordered: revisions never go back;
//! - unique: no (revision, key) twice;
//! - exact: the events are the log's events under P with revision in
//!   `S..=L`: none missing (a gap), none extra, each with the log's kind
//!   and key-value (value, versions, lease). etcd never splits a revision
//!   across responses ("atomic" in its API guarantees), so L's events must
//!   all be there too. With S = 0 ("from now") the stream is compared from
//!   its first revision;
//! - causal: an event did not arrive before its revision existed (before
//!   the invocation of a linearizable operation that saw an older one).
//!
//! A stream that ended early (error, cancel) is judged on what it
//! delivered. Across one watcher's streams, in order of opening, each
//! resumes where the previous left off (start = last delivered + 1): a
//! later start skips revisions (a gap if the log has events under P
//! there), an earlier one delivers revisions again.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::history::{Event, WatchRecord};

use super::{Check, Ctx, secs};

pub(crate) const NAME: &str = "watch";

/// Violations described per stream; a broken stream tends to break on
/// every later event.
const PER_STREAM: usize = 5;

fn name(w: &WatchRecord) -> String {
    format!(
        "watcher {} stream on member {} from revision {} prefix {:?} [{}..{}]",
        w.watcher,
        w.member,
        w.start_revision,
        w.prefix,
        secs(w.start),
        secs(w.end)
    )
}

fn show(e: &Event) -> String {
    format!(
        "{:?} {}={} (create {} mod {} version {} lease {:x})",
        e.kind,
        e.kv.key,
        e.kv.value,
        e.kv.create_revision,
        e.kv.mod_revision,
        e.kv.version,
        e.kv.lease
    )
}

/// The highest revision a stream delivered.
fn last_rev(w: &WatchRecord) -> Option<i64> {
    w.events.iter().map(|e| e.event.kv.mod_revision).max()
}

fn stream(cx: &Ctx<'_>, w: &WatchRecord) -> Vec<String> {
    let log = &cx.log;
    let mut v = Vec::new();
    let revs: Vec<i64> = w.events.iter().map(|e| e.event.kv.mod_revision).collect();
    if let Some(k) = revs.windows(2).position(|p| p[1] < p[0]) {
        v.push(format!(
            "out of order: revision {} delivered after {}",
            revs[k + 1],
            revs[k]
        ));
    }
    let mut seen = HashSet::new();
    let mut delivered: BTreeMap<i64, Vec<&Event>> = BTreeMap::new();
    for e in &w.events {
        let ev = &e.event;
        if !seen.insert((ev.kv.mod_revision, &ev.kv.key[..])) {
            v.push(format!(
                "duplicate: {} delivered twice (again at {})",
                show(ev),
                secs(e.time)
            ));
            continue;
        }
        delivered.entry(ev.kv.mod_revision).or_default().push(ev);
        if let Some((t, op)) = cx.time.lower(ev.kv.mod_revision)
            && e.time < t
        {
            v.push(format!(
                "revision {} arrived at {} before it existed: {} began at {} and saw an older revision",
                ev.kv.mod_revision,
                secs(e.time),
                super::describe(cx.h, op),
                secs(t)
            ));
        }
    }
    let Some(hi) = last_rev(w) else {
        return v;
    };
    let lo = if w.start_revision > 0 {
        w.start_revision
    } else {
        revs.iter().copied().min().unwrap_or(hi)
    };
    for (&rev, evs) in delivered.range(..lo) {
        v.push(format!(
            "delivered revision {rev} before its start revision {lo}: {}",
            show(evs[0])
        ));
    }
    let mut expected: BTreeMap<i64, Vec<&Event>> = BTreeMap::new();
    for (rev, idx) in log.range(lo, hi) {
        for &i in idx {
            let e = log.event(i);
            if e.kv.key.starts_with(&w.prefix) {
                expected.entry(rev).or_default().push(e);
            }
        }
    }
    let mut all: Vec<i64> = expected
        .keys()
        .chain(delivered.range(lo..).map(|(r, _)| r))
        .copied()
        .collect();
    all.sort_unstable();
    all.dedup();
    for rev in all {
        let want: HashMap<&str, &Event> = expected
            .get(&rev)
            .map(|es| es.iter().map(|e| (&e.kv.key[..], *e)).collect())
            .unwrap_or_default();
        let got: HashMap<&str, &Event> = delivered
            .get(&rev)
            .map(|es| es.iter().map(|e| (&e.kv.key[..], *e)).collect())
            .unwrap_or_default();
        let mut keys: Vec<&str> = want.keys().chain(got.keys()).copied().collect();
        keys.sort_unstable();
        keys.dedup();
        for k in keys {
            match (want.get(k), got.get(k)) {
                (Some(e), None) => v.push(format!("gap: missed revision {rev}: {}", show(e))),
                (None, Some(e)) => v.push(format!(
                    "extra: revision {rev} delivered {} which the log does not have",
                    show(e)
                )),
                (Some(a), Some(b)) if a != b => v.push(format!(
                    "wrong event at revision {rev}: delivered {}, the log has {}",
                    show(b),
                    show(a)
                )),
                _ => {}
            }
        }
    }
    v
}

pub(crate) fn check(cx: &Ctx<'_>) -> Check {
    let h = cx.h;
    let mut v = Vec::new();
    let mut events = 0;
    for w in &h.watches {
        events += w.events.len();
        let found = stream(cx, w);
        if !found.is_empty() {
            let n = found.len();
            for f in found.into_iter().take(PER_STREAM) {
                v.push(format!("{}: {f}", name(w)));
            }
            if n > PER_STREAM {
                v.push(format!("{}: ... and {} more", name(w), n - PER_STREAM));
            }
        }
    }

    // Streams of one watcher join without gap or overlap.
    let mut watchers: BTreeMap<u32, Vec<&WatchRecord>> = BTreeMap::new();
    for w in &h.watches {
        watchers.entry(w.watcher).or_default().push(w);
    }
    for streams in watchers.values_mut() {
        streams.sort_by_key(|w| (w.start, w.start_revision));
        for pair in streams.windows(2) {
            let (p, q) = (pair[0], pair[1]);
            let covered = match last_rev(p) {
                Some(r) => r,
                None if p.start_revision > 0 => p.start_revision - 1,
                None => continue,
            };
            if q.start_revision <= 0 {
                continue;
            }
            if q.start_revision > covered + 1 {
                let skipped: Vec<i64> = cx
                    .log
                    .range(covered + 1, q.start_revision - 1)
                    .filter(|(_, idx)| {
                        idx.iter()
                            .any(|&i| cx.log.event(i).kv.key.starts_with(&q.prefix))
                    })
                    .map(|(r, _)| r)
                    .collect();
                if !skipped.is_empty() {
                    v.push(format!(
                        "{} resumed at revision {} after the previous stream ended at {covered}: revisions {skipped:?} never delivered",
                        name(q),
                        q.start_revision
                    ));
                }
            } else if q.start_revision <= covered {
                let again = q
                    .events
                    .iter()
                    .filter(|e| e.event.kv.mod_revision <= covered)
                    .count();
                if again > 0 {
                    v.push(format!(
                        "{} resumed at revision {} although the previous stream delivered up to {covered}: {again} events delivered again",
                        name(q),
                        q.start_revision
                    ));
                }
            }
        }
    }
    Check {
        name: NAME,
        violations: v,
        stats: format!(
            "{} streams of {} watchers, {events} events",
            h.watches.len(),
            watchers.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testutil::*;
    use crate::history::WatchEvent;

    fn record(watcher: u32, start_revision: i64, events: &[Event]) -> WatchRecord {
        WatchRecord {
            watcher,
            member: 0,
            prefix: "k".into(),
            start_revision,
            start: 0,
            end: 100,
            events: events
                .iter()
                .map(|e| WatchEvent {
                    header: e.kv.mod_revision,
                    time: 50,
                    event: e.clone(),
                })
                .collect(),
            closed: "cancelled by harness".into(),
        }
    }

    fn log() -> Vec<Event> {
        vec![
            put_ev("k1", "a", 2, 2, 1),
            put_ev("x", "b", 3, 3, 1),
            put_ev("k1", "c", 2, 4, 2),
            del_ev("k1", 5),
        ]
    }

    fn verdict(watches: Vec<WatchRecord>) -> Check {
        let mut h = history(vec![], log());
        h.watches = watches;
        check_of(&h)
    }

    fn check_of(h: &crate::history::History) -> Check {
        crate::check::check(h).get(NAME).unwrap().clone()
    }

    #[test]
    fn streams_match_the_log() {
        let l = log();
        // Everything under k from 1; a stream that stopped early; a
        // watcher that resumed where it stopped.
        let c = verdict(vec![
            record(0, 1, &[l[0].clone(), l[2].clone(), l[3].clone()]),
            record(1, 3, &[l[2].clone()]),
            record(2, 1, &[l[0].clone()]),
            record(2, 3, &[l[2].clone(), l[3].clone()]),
        ]);
        assert!(c.ok(), "{c:?}");
    }

    #[test]
    fn gaps_duplicates_disorder_and_wrong_events_fail() {
        let l = log();
        let c = verdict(vec![record(0, 1, &[l[0].clone(), l[3].clone()])]);
        assert!(c.violations[0].contains("gap: missed revision 4"), "{c:?}");

        let c = verdict(vec![record(0, 1, &[l[0].clone(), l[0].clone()])]);
        assert!(c.violations[0].contains("duplicate"), "{c:?}");

        let c = verdict(vec![record(0, 1, &[l[2].clone(), l[0].clone()])]);
        assert!(c.violations[0].contains("out of order"), "{c:?}");

        let mut wrong = l[2].clone();
        wrong.kv.version = 7;
        let c = verdict(vec![record(0, 1, &[l[0].clone(), wrong])]);
        assert!(c.violations[0].contains("wrong event"), "{c:?}");

        // Before its start revision.
        let c = verdict(vec![record(0, 4, &[l[0].clone(), l[2].clone()])]);
        assert!(
            c.violations.iter().any(|v| v.contains("before its start")),
            "{c:?}"
        );
    }

    #[test]
    fn resumption_must_join() {
        let l = log();
        // Resumed at 5 after stopping at 2: revision 4 never delivered.
        let c = verdict(vec![
            record(0, 1, &[l[0].clone()]),
            record(0, 5, &[l[3].clone()]),
        ]);
        assert!(c.violations[0].contains("never delivered"), "{c:?}");
        // Resumed at 2 after delivering 2: delivered again.
        let c = verdict(vec![
            record(0, 1, &[l[0].clone()]),
            record(0, 2, &[l[0].clone(), l[2].clone()]),
        ]);
        assert!(c.violations[0].contains("delivered again"), "{c:?}");
    }
}
