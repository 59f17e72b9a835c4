//! The history checker: does a recorded [`History`] obey etcd v3's
//! guarantees?
//!
//! [`check`] runs one checker per invariant, each in its own file, and
//! collects their verdicts in a [`Report`]:
//!
//! | check | file | what must hold |
//! |---|---|---|
//! | `event log` | `log.rs` | the final event log is well formed: revisions 2..=R without gap (a fresh etcd is at revision 1 and its first write makes revision 2, checked against etcd 3.5.1), versions and create revisions consistent, several events in one revision only for a lease's deletions |
//! | `revision bounds` | `bounds.rs` | no response names a revision beyond the log, no returned key is newer than its response |
//! | `acknowledged writes` | `writes.rs` | an acknowledged write is in the log exactly at its response revision, a failed one nowhere; every event in the log was written by some operation that may have taken effect |
//! | `applied twice` | `duplicate.rs` | no value is in two put events |
//! | `cas outcomes` | `cas.rs` | a compare-and-swap succeeded exactly when the key's mod revision was the expected one |
//! | `reads` | `reads.rs` | a read returned the key as the log has it at the read's revision |
//! | `linearizable per key` | `linearizable.rs`, `wgl.rs` | the operations on each key can be ordered as a sequential register would run them (a Wing & Gong search with Lowe's memoization, as porcupine does) |
//! | `real-time order` | `order.rs` | an operation that completed before another began saw an older (or the same) revision |
//! | `watch` | `watch.rs` | every stream delivered exactly the log's events under its prefix from its start revision, in order, and a watcher's streams join without gap or overlap |
//! | `leases` | `lease.rs` | no lease's keys were deleted before its TTL ran out, a revoke deleted all its keys at once, an expired lease and its keys are gone |
//! | `convergence` | `convergence.rs` | every member answered the same HashKV |
//!
//! The checkers share an index of the final event log ([`log`]) and
//! real-time bounds on when each revision was created ([`timeline`]).
//! Every value the harness writes is unique in a run, so a put's value
//! names the operation that wrote it.

use std::fmt;

use crate::history::{Call, Final, History, Operation, Outcome, Response};

mod bounds;
mod cas;
mod convergence;
mod duplicate;
mod lease;
mod linearizable;
mod log;
mod order;
mod reads;
mod timeline;
mod watch;
mod wgl;
mod writes;

use log::Log;
use timeline::Timeline;

/// The verdict of every checker on one history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub checks: Vec<Check>,
}

/// The verdict of one checker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The invariant, e.g. `applied twice`.
    pub name: &'static str,
    /// One line per violation; empty when the invariant holds.
    pub violations: Vec<String>,
    /// What was checked (counts, search effort), for the report.
    pub stats: String,
}

impl Check {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

impl Report {
    /// Whether every check holds.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(Check::ok)
    }

    /// The check called `name`, if the report has it.
    pub fn get(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// Violations printed per check; a run that breaks an invariant often
/// breaks it thousands of times, and the first few tell the story.
const SHOWN: usize = 20;

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            let verdict = if c.ok() { "ok  " } else { "FAIL" };
            write!(f, "{verdict} {}: {}", c.name, c.stats)?;
            if !c.ok() {
                write!(f, " ({} violations)", c.violations.len())?;
            }
            writeln!(f)?;
            for v in c.violations.iter().take(SHOWN) {
                writeln!(f, "    - {v}")?;
            }
            if c.violations.len() > SHOWN {
                writeln!(f, "    ... and {} more", c.violations.len() - SHOWN)?;
            }
        }
        let failed = self.checks.iter().filter(|c| !c.ok()).count();
        if failed == 0 {
            writeln!(f, "all {} checks hold", self.checks.len())
        } else {
            writeln!(f, "{failed} of {} checks failed", self.checks.len())
        }
    }
}

/// Check a history against every invariant.
pub fn check(h: &History) -> Report {
    let Some(fin) = h.final_state.as_ref() else {
        // Without the final log no write can be found and no read compared.
        return Report {
            checks: vec![Check {
                name: log::NAME,
                violations: vec!["the history has no final record; nothing can be checked".into()],
                stats: format!(
                    "{} operations, {} watch streams",
                    h.ops.len(),
                    h.watches.len()
                ),
            }],
        };
    };
    let log = Log::new(fin);
    let time = Timeline::new(h);
    let cx = Ctx { h, fin, log, time };
    Report {
        checks: vec![
            log::check(&cx),
            bounds::check(&cx),
            writes::check(&cx),
            duplicate::check(&cx),
            cas::check(&cx),
            reads::check(&cx),
            linearizable::check(&cx, wgl::STEP_LIMIT),
            order::check(&cx),
            watch::check(&cx),
            lease::check(&cx),
            convergence::check(&cx),
        ],
    }
}

/// What every checker reads.
pub(crate) struct Ctx<'a> {
    pub h: &'a History,
    pub fin: &'a Final,
    pub log: Log<'a>,
    pub time: Timeline,
}

/// The revision in an `Ok` response's header.
pub(crate) fn response_revision(op: &Operation) -> Option<i64> {
    match &op.outcome {
        Outcome::Ok(r) => Some(match r {
            Response::Put { revision }
            | Response::Delete { revision, .. }
            | Response::Cas { revision, .. }
            | Response::Get { revision, .. }
            | Response::LeaseGrant { revision, .. }
            | Response::LeaseRevoke { revision } => *revision,
        }),
        _ => None,
    }
}

/// Whether the operation is ordered in real time with every other: all of
/// them except serializable reads, which a member answers from its own
/// (possibly stale) state.
pub(crate) fn is_linearizable(op: &Operation) -> bool {
    !matches!(
        op.call,
        Call::Get {
            serializable: true,
            ..
        }
    )
}

/// The key and value an operation writes (puts and compare-and-swaps).
pub(crate) fn written(call: &Call) -> Option<(&str, &str)> {
    match call {
        Call::Put { key, value, .. } | Call::Cas { key, value, .. } => Some((key, value)),
        _ => None,
    }
}

/// Nanoseconds since the run's start as seconds, for messages.
pub(crate) fn secs(ns: u64) -> String {
    if ns == u64::MAX {
        return "inf".into();
    }
    format!(
        "{}.{:06}s",
        ns / 1_000_000_000,
        (ns % 1_000_000_000) / 1_000
    )
}

/// One operation, for a violation message: `op#12 client 3 on member 1
/// [1.000100s..1.002000s] put k=v -> ok rev 7`.
pub(crate) fn describe(h: &History, i: usize) -> String {
    let op = &h.ops[i];
    let call = match &op.call {
        Call::Put { key, value, lease } => match lease {
            Some(l) => format!("put {key}={value} lease {l:x}"),
            None => format!("put {key}={value}"),
        },
        Call::Delete { key } => format!("delete {key}"),
        Call::Cas { key, expect, value } => format!("cas {key} if mod_rev={expect} then ={value}"),
        Call::Get { key, serializable } => {
            if *serializable {
                format!("serializable get {key}")
            } else {
                format!("get {key}")
            }
        }
        Call::LeaseGrant { ttl } => format!("lease-grant ttl {ttl}s"),
        Call::LeaseRevoke { id } => format!("lease-revoke {id:x}"),
    };
    let outcome = match &op.outcome {
        Outcome::Ok(r) => match r {
            Response::Put { revision } => format!("ok rev {revision}"),
            Response::Delete { revision, deleted } => {
                format!("ok rev {revision} deleted {deleted}")
            }
            Response::Cas {
                revision,
                succeeded,
                current,
            } => match (succeeded, current) {
                (true, _) => format!("ok rev {revision} succeeded"),
                (false, None) => format!("ok rev {revision} failed, key absent"),
                (false, Some(kv)) => format!(
                    "ok rev {revision} failed, key ={} mod_rev {}",
                    kv.value, kv.mod_revision
                ),
            },
            Response::Get { revision, kv } => match kv {
                None => format!("ok rev {revision} absent"),
                Some(kv) => format!(
                    "ok rev {revision} ={} mod_rev {}",
                    kv.value, kv.mod_revision
                ),
            },
            Response::LeaseGrant { revision, id, ttl } => {
                format!("ok rev {revision} id {id:x} ttl {ttl}s")
            }
            Response::LeaseRevoke { revision } => format!("ok rev {revision}"),
        },
        Outcome::Fail { error } => format!("fail ({error})"),
        Outcome::Unknown { error } => format!("unknown ({error})"),
    };
    format!(
        "op#{i} client {} on member {} [{}..{}] {call} -> {outcome}",
        op.client,
        op.member,
        secs(op.start),
        secs(op.end)
    )
}

/// Test helpers shared by the checkers' unit tests.
#[cfg(test)]
pub(crate) mod testutil {
    use crate::history::{Call, Event, EventKind, Final, History, Kv, Operation, Outcome};

    pub fn kv(key: &str, value: &str, create: i64, modr: i64, version: i64) -> Kv {
        Kv {
            key: key.into(),
            value: value.into(),
            create_revision: create,
            mod_revision: modr,
            version,
            lease: 0,
        }
    }

    pub fn put_ev(key: &str, value: &str, create: i64, modr: i64, version: i64) -> Event {
        Event {
            kind: EventKind::Put,
            kv: kv(key, value, create, modr, version),
        }
    }

    pub fn del_ev(key: &str, rev: i64) -> Event {
        Event {
            kind: EventKind::Delete,
            kv: kv(key, "", 0, rev, 0),
        }
    }

    pub fn op(client: u32, start: u64, end: u64, call: Call, outcome: Outcome) -> Operation {
        Operation {
            client,
            member: 0,
            start,
            end,
            call,
            outcome,
        }
    }

    pub fn history(ops: Vec<Operation>, events: Vec<Event>) -> History {
        let revision = events.last().map_or(1, |e| e.kv.mod_revision);
        History {
            seed: 0,
            members: 1,
            ops,
            watches: vec![],
            faults: vec![],
            final_state: Some(Final {
                time: 1_000_000_000_000,
                events,
                revision,
                hashes: vec![(0, Ok((7, 0)))],
                leases: vec![],
            }),
        }
    }
}
