//! Self-tests of the history checker: hand-made histories with known
//! verdicts (each invariant kept and broken for its specific reason,
//! unknown outcomes valid both ways), JSONL fixtures read through the
//! `ferrocd-check` binary, and a randomized test: histories generated from
//! a sequential model with random real-time overlaps must pass, and one
//! mutation must make the check it breaks fail.
//!
//! Histories are built with [`Sim`], a tiny etcd: each call is executed
//! against a `BTreeMap` at the moment the test says, which fills the event
//! log; the test then records the operation with whatever times and
//! outcome the scenario needs, or bends the log behind the model's back.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use ferrocd_fault::check::{Report, check};
use ferrocd_fault::history::{
    Call, Event, EventKind, Fault, Final, History, Kv, Operation, Outcome, Response, WatchEvent,
    WatchRecord,
};

/// Load `fault/tests/fixtures/<name>` and check it. For recorded
/// histories kept as regressions, e.g. `duplicate-apply.jsonl`.
pub fn fixture_report(name: &str) -> Report {
    let text = std::fs::read_to_string(fixture(name)).expect("fixture readable");
    let h = History::parse(&text).expect("fixture parses");
    check(&h)
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The names of the checks that failed.
fn failed(r: &Report) -> Vec<&'static str> {
    r.checks
        .iter()
        .filter(|c| !c.ok())
        .map(|c| c.name)
        .collect()
}

const S: u64 = 1_000_000_000;

/// A sequential etcd model that writes the event log as it goes.
#[derive(Default)]
struct Sim {
    ops: Vec<Operation>,
    watches: Vec<WatchRecord>,
    faults: Vec<Fault>,
    events: Vec<Event>,
    rev: i64,
    kv: BTreeMap<String, Kv>,
    /// Store after each revision (`states[r]`), for stale reads.
    states: Vec<BTreeMap<String, Kv>>,
    /// Live leases: id -> ttl.
    leases: BTreeMap<i64, i64>,
}

impl Sim {
    fn new() -> Sim {
        Sim {
            rev: 1,
            states: vec![BTreeMap::new(), BTreeMap::new()],
            ..Sim::default()
        }
    }

    fn bump(&mut self) -> i64 {
        self.rev += 1;
        self.rev
    }

    fn commit(&mut self) {
        self.states.push(self.kv.clone());
        assert_eq!(self.states.len() as i64, self.rev + 1);
    }

    fn raw_put(&mut self, key: &str, value: &str, lease: i64) -> i64 {
        let rev = self.bump();
        let kv = match self.kv.get(key) {
            Some(p) => Kv {
                key: key.into(),
                value: value.into(),
                create_revision: p.create_revision,
                mod_revision: rev,
                version: p.version + 1,
                lease,
            },
            None => Kv {
                key: key.into(),
                value: value.into(),
                create_revision: rev,
                mod_revision: rev,
                version: 1,
                lease,
            },
        };
        self.events.push(Event {
            kind: EventKind::Put,
            kv: kv.clone(),
        });
        self.kv.insert(key.into(), kv);
        self.commit();
        rev
    }

    fn del_event(&mut self, key: &str, rev: i64) {
        self.kv.remove(key);
        self.events.push(Event {
            kind: EventKind::Delete,
            kv: Kv {
                key: key.into(),
                value: String::new(),
                create_revision: 0,
                mod_revision: rev,
                version: 0,
                lease: 0,
            },
        });
    }

    /// Revoke or expire: every key of the lease goes in one revision.
    fn end_lease(&mut self, id: i64) {
        self.leases.remove(&id);
        let keys: Vec<String> = self
            .kv
            .values()
            .filter(|kv| kv.lease == id)
            .map(|kv| kv.key.clone())
            .collect();
        if !keys.is_empty() {
            let rev = self.bump();
            for k in keys {
                self.del_event(&k, rev);
            }
            self.commit();
        }
    }

    /// Execute a call now; its answer.
    fn exec(&mut self, call: &Call) -> Response {
        match call {
            Call::Put { key, value, lease } => Response::Put {
                revision: self.raw_put(key, value, lease.unwrap_or(0)),
            },
            Call::Delete { key } => {
                if self.kv.contains_key(key) {
                    let rev = self.bump();
                    self.del_event(key, rev);
                    self.commit();
                    Response::Delete {
                        revision: rev,
                        deleted: 1,
                    }
                } else {
                    Response::Delete {
                        revision: self.rev,
                        deleted: 0,
                    }
                }
            }
            Call::Cas { key, expect, value } => {
                let now = self.kv.get(key).map_or(0, |kv| kv.mod_revision);
                if now == *expect {
                    Response::Cas {
                        revision: self.raw_put(key, value, 0),
                        succeeded: true,
                        current: None,
                    }
                } else {
                    Response::Cas {
                        revision: self.rev,
                        succeeded: false,
                        current: self.kv.get(key).cloned(),
                    }
                }
            }
            Call::Get { key, .. } => Response::Get {
                revision: self.rev,
                kv: self.kv.get(key).cloned(),
            },
            Call::LeaseGrant { ttl } => {
                let id = 0x1000 + self.leases.len() as i64 + self.ops.len() as i64 * 0x100;
                self.leases.insert(id, *ttl);
                Response::LeaseGrant {
                    revision: self.rev,
                    id,
                    ttl: *ttl,
                }
            }
            Call::LeaseRevoke { id } => {
                self.end_lease(*id);
                Response::LeaseRevoke { revision: self.rev }
            }
        }
    }

    fn record(&mut self, client: u32, start: u64, end: u64, call: Call, outcome: Outcome) -> usize {
        self.ops.push(Operation {
            client,
            member: client as usize % 3,
            start,
            end,
            call,
            outcome,
        });
        self.ops.len() - 1
    }

    /// Execute and record an `Ok` answer.
    fn ok(&mut self, client: u32, start: u64, end: u64, call: Call) -> Response {
        let r = self.exec(&call);
        self.record(client, start, end, call, Outcome::Ok(r.clone()));
        r
    }

    /// Record an unknown outcome, executing the call if `applied`.
    fn unknown(&mut self, client: u32, start: u64, end: u64, call: Call, applied: bool) {
        if applied {
            self.exec(&call);
        }
        let error = "deadline exceeded".to_string();
        self.record(client, start, end, call, Outcome::Unknown { error });
    }

    fn fail(&mut self, client: u32, start: u64, end: u64, call: Call) {
        let error = "etcdserver: no leader".to_string();
        self.record(client, start, end, call, Outcome::Fail { error });
    }

    /// A serializable read answered from revision `rev`.
    fn stale_get(&mut self, client: u32, start: u64, end: u64, key: &str, rev: i64) {
        let kv = self.states[rev as usize].get(key).cloned();
        let call = Call::Get {
            key: key.into(),
            serializable: true,
        };
        self.record(
            client,
            start,
            end,
            call,
            Outcome::Ok(Response::Get { revision: rev, kv }),
        );
    }

    /// A watch stream that delivered the log's events under `prefix` in
    /// `from..=to`, each arriving at `time`.
    fn watch(&mut self, watcher: u32, prefix: &str, from: i64, to: i64, time: u64) {
        let events = self
            .events
            .iter()
            .filter(|e| e.kv.key.starts_with(prefix))
            .filter(|e| (from..=to).contains(&e.kv.mod_revision))
            .map(|e| WatchEvent {
                header: e.kv.mod_revision,
                time,
                event: e.clone(),
            })
            .collect();
        self.watches.push(WatchRecord {
            watcher,
            member: watcher as usize % 3,
            prefix: prefix.into(),
            start_revision: from,
            start: 0,
            end: time,
            events,
            closed: "cancelled by harness".into(),
        });
    }

    fn finish(self, time: u64) -> History {
        History {
            seed: 0,
            members: 3,
            ops: self.ops,
            watches: self.watches,
            faults: self.faults,
            final_state: Some(Final {
                time,
                events: self.events,
                revision: self.rev,
                hashes: (0..3).map(|m| (m, Ok((0xfeed, 0)))).collect(),
                leases: self.leases.keys().copied().collect(),
            }),
        }
    }
}

fn put(key: &str, value: &str) -> Call {
    Call::Put {
        key: key.into(),
        value: value.into(),
        lease: None,
    }
}

fn put_lease(key: &str, value: &str, id: i64) -> Call {
    Call::Put {
        key: key.into(),
        value: value.into(),
        lease: Some(id),
    }
}

fn get(key: &str) -> Call {
    Call::Get {
        key: key.into(),
        serializable: false,
    }
}

fn del(key: &str) -> Call {
    Call::Delete { key: key.into() }
}

fn cas(key: &str, expect: i64, value: &str) -> Call {
    Call::Cas {
        key: key.into(),
        expect,
        value: value.into(),
    }
}

fn lease_id(r: &Response) -> i64 {
    match r {
        Response::LeaseGrant { id, .. } => *id,
        r => panic!("not a grant: {r:?}"),
    }
}

/// A history that uses every kind of call, with overlaps, unknown
/// outcomes both ways, a failure, a lease revoked and one that expired,
/// and watchers that reconnect.
fn mixed() -> History {
    let mut s = Sim::new();
    s.ok(0, 0, 10, put("k1", "c0-1"));
    s.ok(1, 5, 15, get("k1"));
    s.ok(2, 20, 40, cas("k1", 2, "c2-1"));
    s.ok(0, 25, 45, cas("k1", 2, "c0-2")); // concurrent, loses
    s.unknown(1, 30, 35, put("k2", "c1-1"), true); // gave up before it applied
    s.unknown(3, 30, 35, put("k2", "c3-1"), false);
    s.fail(4, 30, 35, put("k3", "c4-1"));
    s.ok(1, 50, 60, get("k2"));
    s.stale_get(2, 50, 60, "k1", 2);
    s.unknown(3, 70, 80, del("k1"), true);
    s.ok(4, 90, 100, del("k1")); // already gone
    let l1 = lease_id(&s.ok(0, 100, 110, Call::LeaseGrant { ttl: 5 }));
    s.ok(0, 120, 130, put_lease("k4", "c0-3", l1));
    s.ok(1, 120, 130, put_lease("k5", "c1-2", l1));
    s.ok(0, 140, 150, Call::LeaseRevoke { id: l1 });
    let l2 = lease_id(&s.ok(2, 160, 170, Call::LeaseGrant { ttl: 1 }));
    s.ok(2, 180, 190, put_lease("k6", "c2-2", l2));
    s.end_lease(l2); // expired after 1 s
    s.ok(3, 2 * S, 2 * S + 10, get("k6"));
    s.ok(4, 2 * S + 20, 2 * S + 30, put("k1", "c4-2"));
    let last = s.rev;
    s.watch(0, "k", 1, 4, 3 * S);
    s.watch(0, "k", 5, last, 3 * S);
    s.watch(1, "k1", 1, last, 3 * S);
    s.watch(2, "", 0, last, 3 * S); // "from now": compared from its first event
    s.finish(4 * S)
}

#[test]
fn a_mixed_valid_history_passes() {
    let h = mixed();
    let r = check(&h);
    assert!(r.ok(), "{r}");
    assert_eq!(r.checks.len(), 11);
    // Every line of the report names its check.
    let text = r.to_string();
    for c in &r.checks {
        assert!(text.contains(c.name), "{text}");
    }
}

#[test]
fn a_lost_acknowledged_put_fails() {
    let mut h = mixed();
    // An Ok put at a revision where the log has some other write.
    let i = h
        .ops
        .iter()
        .position(|o| o.call == put("k1", "c0-1"))
        .unwrap();
    h.ops[i].call = put("k1", "c0-lost");
    h.ops.push(Operation {
        call: put("k1", "c0-1"),
        outcome: Outcome::Unknown {
            error: "eof".into(),
        },
        ..h.ops[i].clone()
    });
    let r = check(&h);
    assert_eq!(failed(&r), ["acknowledged writes"], "{r}");
    assert!(r.get("acknowledged writes").unwrap().violations[0].contains("lost"));
}

#[test]
fn a_value_applied_twice_fails() {
    let mut s = Sim::new();
    s.ok(0, 0, 10, put("k1", "c0-1"));
    // The same request applied again (a re-proposal after a leader
    // change), while its client was waiting.
    s.ok(1, 20, 30, put("k1", "c1-1"));
    s.raw_put("k1", "c0-1", 0);
    let h = s.finish(S);
    let r = check(&h);
    let dup = r.get("applied twice").unwrap();
    assert_eq!(dup.violations.len(), 1, "{r}");
    assert!(
        dup.violations[0].contains("c0-1 applied 2 times, at revisions 2 (key k1), 4 (key k1)")
    );
    assert!(dup.violations[0].contains("op#0"));
}

#[test]
fn a_cas_that_answered_false_but_applied_fails() {
    let mut s = Sim::new();
    s.ok(0, 0, 10, put("k1", "c0-1"));
    // Answered "compare failed", yet its put is in the log.
    let current = s.kv.get("k1").cloned();
    s.raw_put("k1", "c1-1", 0);
    s.record(
        1,
        20,
        30,
        cas("k1", 2, "c1-1"),
        Outcome::Ok(Response::Cas {
            revision: 2,
            succeeded: false,
            current,
        }),
    );
    let r = check(&s.finish(S));
    let f = failed(&r);
    assert!(f.contains(&"cas outcomes"), "{r}");
    let cas = r.get("cas outcomes").unwrap();
    assert!(
        cas.violations
            .iter()
            .any(|v| v.contains("its put is in the log")),
        "{r}"
    );
    assert!(
        cas.violations
            .iter()
            .any(|v| v.contains("mod revision at 2 was 2")),
        "{r}"
    );
}

#[test]
fn a_stale_linearizable_read_fails() {
    let mut s = Sim::new();
    s.ok(0, 0, 10, put("k1", "c0-1"));
    s.ok(0, 20, 30, put("k1", "c0-2"));
    // Read after the second put completed, answered from revision 2: the
    // answer matches revision 2 (so `reads` holds), but it is stale.
    let kv = s.states[2].get("k1").cloned();
    s.record(
        1,
        40,
        50,
        get("k1"),
        Outcome::Ok(Response::Get { revision: 2, kv }),
    );
    let r = check(&s.finish(S));
    assert_eq!(
        failed(&r),
        ["linearizable per key", "real-time order"],
        "{r}"
    );
    // The same read as a serializable one is allowed.
    let mut s = Sim::new();
    s.ok(0, 0, 10, put("k1", "c0-1"));
    s.ok(0, 20, 30, put("k1", "c0-2"));
    s.stale_get(1, 40, 50, "k1", 2);
    let r = check(&s.finish(S));
    assert!(r.ok(), "{r}");
}

#[test]
fn a_real_time_inversion_across_keys_fails() {
    let mut s = Sim::new();
    s.ok(0, 0, 10, put("a", "c0-1"));
    // A read of another key, invoked after the put completed, answered
    // from revision 1: each key alone is linearizable.
    s.record(
        1,
        20,
        30,
        get("b"),
        Outcome::Ok(Response::Get {
            revision: 1,
            kv: None,
        }),
    );
    let r = check(&s.finish(S));
    assert_eq!(failed(&r), ["real-time order"], "{r}");
    let v = &r.get("real-time order").unwrap().violations[0];
    assert!(v.contains("op#0") && v.contains("op#1"), "{v}");
}

#[test]
fn watch_gap_duplicate_and_disorder_fail() {
    let base = mixed();
    let stream = base.watches.iter().position(|w| w.watcher == 1).unwrap();
    assert!(base.watches[stream].events.len() >= 3);

    let mut gap = base.clone();
    gap.watches[stream].events.remove(1);
    let r = check(&gap);
    assert_eq!(failed(&r), ["watch"], "{r}");
    assert!(r.get("watch").unwrap().violations[0].contains("gap"), "{r}");

    let mut dup = base.clone();
    let e = dup.watches[stream].events[1].clone();
    dup.watches[stream].events.insert(2, e);
    let r = check(&dup);
    assert_eq!(failed(&r), ["watch"], "{r}");
    assert!(
        r.get("watch").unwrap().violations[0].contains("duplicate"),
        "{r}"
    );

    let mut disorder = base.clone();
    disorder.watches[stream].events.swap(0, 1);
    let r = check(&disorder);
    assert_eq!(failed(&r), ["watch"], "{r}");
    assert!(
        r.get("watch").unwrap().violations[0].contains("out of order"),
        "{r}"
    );

    // A reconnection that skips revisions.
    let mut skip = base;
    let second = skip
        .watches
        .iter()
        .position(|w| w.watcher == 0 && w.start_revision == 5)
        .unwrap();
    skip.watches[second].start_revision = 6;
    skip.watches[second]
        .events
        .retain(|e| e.event.kv.mod_revision >= 6);
    let r = check(&skip);
    assert_eq!(failed(&r), ["watch"], "{r}");
    assert!(
        r.get("watch").unwrap().violations[0].contains("never delivered"),
        "{r}"
    );
}

#[test]
fn a_lease_deleted_early_fails() {
    let mut s = Sim::new();
    let id = lease_id(&s.ok(0, 0, 10, Call::LeaseGrant { ttl: 10 }));
    s.ok(0, 20, 30, put_lease("k1", "c0-1", id));
    s.end_lease(id); // no revoke: an expiry
    // Someone saw the deletion 3 s after the grant.
    s.ok(1, 3 * S, 3 * S + 10, get("k1"));
    let r = check(&s.finish(20 * S));
    assert_eq!(failed(&r), ["leases"], "{r}");
    assert!(r.get("leases").unwrap().violations[0].contains("expired early"));

    // Seen 11 s after the grant: fine.
    let mut s = Sim::new();
    let id = lease_id(&s.ok(0, 0, 10, Call::LeaseGrant { ttl: 10 }));
    s.ok(0, 20, 30, put_lease("k1", "c0-1", id));
    s.end_lease(id);
    s.ok(1, 11 * S, 11 * S + 10, get("k1"));
    let r = check(&s.finish(40 * S));
    assert!(r.ok(), "{r}");

    // Seen early, but a revoke with an unknown outcome may have done it.
    let mut s = Sim::new();
    let id = lease_id(&s.ok(0, 0, 10, Call::LeaseGrant { ttl: 10 }));
    s.ok(0, 20, 30, put_lease("k1", "c0-1", id));
    s.unknown(2, S, S + 10, Call::LeaseRevoke { id }, true);
    s.ok(1, 3 * S, 3 * S + 10, get("k1"));
    let r = check(&s.finish(40 * S));
    assert!(r.ok(), "{r}");
}

#[test]
fn an_expired_leases_key_still_present_fails() {
    let mut s = Sim::new();
    let id = lease_id(&s.ok(0, 0, 10, Call::LeaseGrant { ttl: 10 }));
    s.ok(0, 20, 30, put_lease("k1", "c0-1", id));
    // Never expired; the final read is 60 s later.
    let mut h = s.finish(60 * S);
    h.final_state.as_mut().unwrap().leases.clear();
    let r = check(&h);
    assert_eq!(failed(&r), ["leases"], "{r}");
    assert!(r.get("leases").unwrap().violations[0].contains("still in the final state"));
}

#[test]
fn unequal_hashes_fail() {
    let mut h = mixed();
    h.final_state.as_mut().unwrap().hashes[1].1 = Ok((0xbad, 0));
    let r = check(&h);
    assert_eq!(failed(&r), ["convergence"], "{r}");
}

#[test]
fn unknown_outcomes_are_valid_both_ways() {
    for applied in [false, true] {
        let mut s = Sim::new();
        s.ok(0, 0, 10, put("k1", "c0-1"));
        s.unknown(1, 20, 30, put("k1", "c1-1"), applied);
        s.unknown(2, 20, 30, cas("k1", 2, "c2-1"), applied);
        s.unknown(3, 20, 30, del("k2"), applied);
        s.ok(0, 40, 50, get("k1"));
        s.ok(0, 60, 70, put("k2", "c0-2"));
        s.unknown(3, 80, 90, del("k2"), applied);
        s.ok(0, 100, 110, get("k2"));
        let r = check(&s.finish(S));
        assert!(r.ok(), "applied={applied}: {r}");
    }
    // An unknown put that took effect before it was invoked is not valid:
    // its value is at revision 2, which a read that completed before the
    // put was invoked had already seen.
    let mut s = Sim::new();
    s.raw_put("k1", "c1-1", 0);
    s.ok(0, 20, 30, get("k2"));
    let unknown = Outcome::Unknown {
        error: "eof".into(),
    };
    s.record(1, 50, 60, put("k1", "c1-1"), unknown);
    let r = check(&s.finish(S));
    assert_eq!(failed(&r), ["real-time order"], "{r}");
}

#[test]
fn a_history_without_a_final_record_fails() {
    let mut h = mixed();
    h.final_state = None;
    let r = check(&h);
    assert!(!r.ok());
    assert_eq!(r.checks.len(), 1);
}

#[test]
fn histories_round_trip_through_jsonl() {
    let h = mixed();
    let mut text = String::new();
    text.push_str(r#"{"record":"meta","seed":0,"members":3,"server":"model"}"#);
    text.push('\n');
    use ferrocd_fault::history::Record;
    for o in &h.ops {
        text.push_str(&serde_json::to_string(&Record::Op(o.clone())).unwrap());
        text.push('\n');
    }
    for w in &h.watches {
        text.push_str(&serde_json::to_string(&Record::Watch(w.clone())).unwrap());
        text.push('\n');
    }
    let fin = h.final_state.clone().unwrap();
    text.push_str(&serde_json::to_string(&Record::Final(fin)).unwrap());
    text.push('\n');
    let back = History::parse(&text).unwrap();
    assert_eq!(back, h);
}

#[test]
fn histories_in_the_first_format_still_parse() {
    // Recorded before Response was tagged `response`: two `type` keys.
    let old = r#"{"record":"op","client":0,"member":0,"start":1,"end":2,"call":{"type":"put","key":"k","value":"c0-1"},"outcome":{"type":"ok","type":"put","revision":2}}"#;
    let h = History::parse(old).unwrap();
    assert_eq!(h.ops[0].outcome, Outcome::Ok(Response::Put { revision: 2 }));
}

#[test]
fn fixtures_have_their_verdicts() {
    let r = fixture_report("valid-small.jsonl");
    assert!(r.ok(), "{r}");
    let r = fixture_report("lost-write.jsonl");
    assert!(failed(&r).contains(&"acknowledged writes"), "{r}");
}

#[test]
fn the_binary_exits_by_verdict() {
    let run = |path: PathBuf| {
        Command::new(env!("CARGO_BIN_EXE_ferrocd-check"))
            .arg(path)
            .output()
            .expect("ferrocd-check runs")
    };
    let out = run(fixture("valid-small.jsonl"));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("all 11 checks hold"));
    let out = run(fixture("lost-write.jsonl"));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL acknowledged writes"));
    let out = run(fixture("no-such-file.jsonl"));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let garbage = std::env::temp_dir().join(format!("ferrocd-check-{}.jsonl", std::process::id()));
    std::fs::write(&garbage, "{\"record\":\"op\"}\n").unwrap();
    let out = run(garbage.clone());
    let _ = std::fs::remove_file(&garbage);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

// ---------------------------------------------------------------------
// Randomized: a sequential model, random overlaps, one mutation.

/// splitmix64: a tiny seeded generator, so failures replay by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A valid history: `n` operations by `clients` clients on `keys` keys,
/// executed in order at linearization points 1 µs apart, each interval
/// drawn around its point (up to 3 µs either side), a client's operations
/// never overlapping. Unknown outcomes take effect or not; those that do
/// may take effect after the client gave up.
fn generate(seed: u64, clients: u32, keys: u32, n: usize) -> History {
    let mut rng = Rng(seed);
    let mut s = Sim::new();
    let mut free = vec![0u64; clients as usize];
    let mut counter = vec![0u32; clients as usize];
    // Time each revision was made, for the watch arrival times.
    let mut made = vec![0u64; 2];
    let mut t = 10_000u64;
    for _ in 0..n {
        t += 1_000;
        let ready: Vec<u32> = (0..clients).filter(|&c| free[c as usize] < t).collect();
        if ready.is_empty() {
            continue;
        }
        let c = ready[rng.below(ready.len() as u64) as usize];
        let start = (free[c as usize] + 1).max(t - rng.below(3_000)).min(t);
        let end = t + 1 + rng.below(3_000);
        let key = format!("k{}", rng.below(keys as u64));
        counter[c as usize] += 1;
        let value = format!("c{c}-{}", counter[c as usize]);
        let live: Vec<i64> = s.leases.keys().copied().collect();
        let leased = s.kv.get(&key).is_some_and(|kv| kv.lease != 0);
        let call = match rng.below(100) {
            0..=29 => put(&key, &value),
            30..=39 if !live.is_empty() => {
                put_lease(&key, &value, live[rng.below(live.len() as u64) as usize])
            }
            40..=59 => get(&key),
            60..=64 => Call::Get {
                key: key.clone(),
                serializable: true,
            },
            65..=79 => {
                let now = s.kv.get(&key).map_or(0, |kv| kv.mod_revision);
                let expect = match rng.below(4) {
                    0 | 1 => now,
                    2 => 0,
                    _ => rng.below(s.rev as u64 + 1) as i64,
                };
                cas(&key, expect, &value)
            }
            // Leased keys are deleted only by their lease (the runner's
            // rule, which the checker relies on).
            80..=89 if !leased => del(&key),
            90..=94 => Call::LeaseGrant { ttl: 3_600 },
            95..=99 if !live.is_empty() => Call::LeaseRevoke {
                id: live[rng.below(live.len() as u64) as usize],
            },
            _ => get(&key),
        };
        let before = s.rev;
        let is_write = !matches!(call, Call::Get { .. } | Call::LeaseGrant { .. });
        if let Call::Get {
            serializable: true, ..
        } = call
        {
            let rev = s.rev - rng.below(5.min(s.rev as u64)) as i64;
            s.stale_get(c, start, end, &key, rev);
            free[c as usize] = end;
        } else if is_write && rng.chance(10) {
            let applied = rng.chance(50);
            // The client may give up before the write takes effect.
            let end = start + rng.below(end - start + 1);
            s.unknown(c, start, end, call, applied);
            free[c as usize] = end;
        } else if is_write && rng.chance(3) {
            s.fail(c, start, end, call);
            free[c as usize] = end;
        } else {
            s.ok(c, start, end, call);
            free[c as usize] = end;
        }
        for _ in before..s.rev {
            made.push(t);
        }
    }
    // Watchers: one on everything that reconnects twice, one per key.
    let last = s.rev;
    let at = |r: i64| made[r as usize] + 500;
    let cut1 = 1 + rng.below(last as u64) as i64;
    let cut2 = cut1 + rng.below((last - cut1) as u64 + 1) as i64;
    for (from, to) in [(1, cut1), (cut1 + 1, cut2), (cut2 + 1, last)] {
        let time = at(to.max(1));
        s.watch(0, "", from, to, time);
    }
    for k in 0..keys {
        s.watch(1 + k, &format!("k{k}"), 1, last, at(last) + 1);
    }
    // Events arrive when their revision was made, not all at the end.
    for w in &mut s.watches {
        for e in &mut w.events {
            e.time = at(e.event.kv.mod_revision);
        }
    }
    let end = free.iter().copied().max().unwrap_or(0) + 1_000;
    let mut h = s.finish(end.max(t + 10_000));
    h.seed = seed;
    h
}

/// Break one thing; the name of the check that must fail.
fn mutate(h: &mut History, kind: u64, rng: &mut Rng) -> Option<&'static str> {
    let pick = |rng: &mut Rng, idx: Vec<usize>| -> Option<usize> {
        (!idx.is_empty()).then(|| idx[rng.below(idx.len() as u64) as usize])
    };
    let ok_puts: Vec<usize> = (0..h.ops.len())
        .filter(|&i| {
            matches!(h.ops[i].call, Call::Put { .. }) && matches!(h.ops[i].outcome, Outcome::Ok(_))
        })
        .collect();
    match kind % 8 {
        0 => {
            // An acknowledged put whose value is not in the log.
            let i = pick(rng, ok_puts)?;
            if let Call::Put { value, .. } = &mut h.ops[i].call {
                value.push_str("-lost");
            }
            Some("acknowledged writes")
        }
        1 => {
            // A put event applied a second time at the end of the log.
            let fin = h.final_state.as_mut().unwrap();
            let e = fin
                .events
                .iter()
                .rev()
                .find(|e| e.kind == EventKind::Put)?
                .clone();
            let rev = fin.revision + 1;
            let mut again = e.clone();
            let cur = fin
                .events
                .iter()
                .rev()
                .find(|x| x.kv.key == e.kv.key)
                .unwrap();
            again.kv.mod_revision = rev;
            if cur.kind == EventKind::Put {
                again.kv.create_revision = cur.kv.create_revision;
                again.kv.version = cur.kv.version + 1;
            } else {
                again.kv.create_revision = rev;
                again.kv.version = 1;
            }
            fin.events.push(again);
            fin.revision = rev;
            Some("applied twice")
        }
        2 => {
            // A read returns another value than its revision had.
            let i = pick(
                rng,
                (0..h.ops.len())
                    .filter(|&i| {
                        matches!(
                            h.ops[i].outcome,
                            Outcome::Ok(Response::Get { kv: Some(_), .. })
                        )
                    })
                    .collect(),
            )?;
            if let Outcome::Ok(Response::Get { kv: Some(kv), .. }) = &mut h.ops[i].outcome {
                kv.value.push_str("-bogus");
            }
            Some("reads")
        }
        3 => {
            // A compare that held answers "failed".
            let i = pick(
                rng,
                (0..h.ops.len())
                    .filter(|&i| {
                        matches!(
                            h.ops[i].outcome,
                            Outcome::Ok(Response::Cas {
                                succeeded: true,
                                ..
                            })
                        )
                    })
                    .collect(),
            )?;
            if let Outcome::Ok(Response::Cas { succeeded, .. }) = &mut h.ops[i].outcome {
                *succeeded = false;
            }
            Some("cas outcomes")
        }
        4 => {
            let fin = h.final_state.as_mut().unwrap();
            fin.hashes[2].1 = Ok((0xdead, 0));
            Some("convergence")
        }
        5 => {
            // A watch stream misses one event.
            let w = pick(
                rng,
                (0..h.watches.len())
                    .filter(|&w| h.watches[w].events.len() >= 3)
                    .collect(),
            )?;
            let n = h.watches[w].events.len();
            h.watches[w]
                .events
                .remove(1 + rng.below(n as u64 - 2) as usize);
            Some("watch")
        }
        6 => {
            // A watch stream delivers one event twice.
            let w = pick(
                rng,
                (0..h.watches.len())
                    .filter(|&w| !h.watches[w].events.is_empty())
                    .collect(),
            )?;
            let n = h.watches[w].events.len();
            let k = rng.below(n as u64) as usize;
            let e = h.watches[w].events[k].clone();
            h.watches[w].events.insert(k, e);
            Some("watch")
        }
        _ => {
            // The first acknowledged put moved after an operation that
            // completed having seen its revision.
            let &i = ok_puts.iter().min_by_key(|&&i| match h.ops[i].outcome {
                Outcome::Ok(Response::Put { revision }) => revision,
                _ => i64::MAX,
            })?;
            let Outcome::Ok(Response::Put { revision }) = h.ops[i].outcome else {
                return None;
            };
            let seen = (0..h.ops.len())
                .filter(|&j| j != i)
                .filter(|&j| {
                    !matches!(
                        h.ops[j].call,
                        Call::Get {
                            serializable: true,
                            ..
                        }
                    )
                })
                .filter(|&j| match &h.ops[j].outcome {
                    Outcome::Ok(Response::Put { revision: r })
                    | Outcome::Ok(Response::Get { revision: r, .. })
                    | Outcome::Ok(Response::Delete { revision: r, .. })
                    | Outcome::Ok(Response::Cas { revision: r, .. }) => *r >= revision,
                    _ => false,
                })
                .map(|j| h.ops[j].end)
                .min()?;
            h.ops[i].start = seen + 1;
            h.ops[i].end = seen + 2;
            Some("real-time order")
        }
    }
}

#[test]
fn random_valid_histories_pass_and_one_mutation_fails() {
    let t0 = std::time::Instant::now();
    let mut mutated = BTreeMap::<&str, u32>::new();
    for seed in 0..40u64 {
        let h = generate(seed, 12, 4, 400);
        let r = check(&h);
        assert!(r.ok(), "seed {seed}: {r}");
        let mut rng = Rng(seed ^ 0x5eed);
        let mut bad = h.clone();
        // Some mutations need a kind of operation the history lacks.
        let Some(name) = (seed..seed + 8).find_map(|k| mutate(&mut bad, k, &mut rng)) else {
            continue;
        };
        let r = check(&bad);
        assert!(
            !r.get(name).unwrap().ok(),
            "seed {seed}: mutation for {name} went unnoticed:\n{r}"
        );
        *mutated.entry(name).or_default() += 1;
    }
    // Every kind of mutation was tried (kinds rotate with the seed).
    assert_eq!(mutated.len(), 7, "{mutated:?}");
    eprintln!(
        "40 random histories in {:?}; mutations {mutated:?}",
        t0.elapsed()
    );
}

#[test]
fn a_large_history_is_checked_quickly() {
    // ~300 operations per key from 12 clients (the issue's size).
    let h = generate(7, 12, 4, 1_400);
    let t0 = std::time::Instant::now();
    let r = check(&h);
    let took = t0.elapsed();
    assert!(r.ok(), "{r}");
    eprintln!("{} operations checked in {took:?}\n{r}", h.ops.len());
    // Generous for a debug build on a shared 2-core machine; a release
    // build takes a small fraction of it.
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
}
