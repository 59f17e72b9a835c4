//! `revision bounds`: no answer names a revision the log does not reach,
//! and nothing returned is newer than the answer that carries it.
//!
//! In etcd a response's header revision is the store's revision when the
//! request was served, so it is at least 1 and at most the last revision
//! ever made (the final one: a run makes no write after its final read);
//! a key returned in it was last modified at or before that revision, and
//! a watch response's header is at least the revision of its events.

use crate::history::{Outcome, Response};

use super::{Check, Ctx, describe, response_revision};

pub(crate) const NAME: &str = "revision bounds";

pub(crate) fn check(cx: &Ctx<'_>) -> Check {
    let h = cx.h;
    let last = cx.fin.revision;
    let mut v = Vec::new();
    let mut answered = 0;
    for (i, op) in h.ops.iter().enumerate() {
        let Some(rev) = response_revision(op) else {
            continue;
        };
        answered += 1;
        if rev < 1 || rev > last {
            v.push(format!(
                "response revision {rev} outside 1..={last}: {}",
                describe(h, i)
            ));
        }
        let returned = match &op.outcome {
            Outcome::Ok(Response::Get { kv: Some(kv), .. })
            | Outcome::Ok(Response::Cas {
                current: Some(kv), ..
            }) => Some(kv),
            _ => None,
        };
        if let Some(kv) = returned
            && (kv.mod_revision > rev || kv.create_revision > kv.mod_revision)
        {
            v.push(format!(
                "returned key {} with create_revision {} mod_revision {} in a response at revision {rev}: {}",
                kv.key,
                kv.create_revision,
                kv.mod_revision,
                describe(h, i)
            ));
        }
    }
    let mut events = 0;
    for w in &h.watches {
        for e in &w.events {
            events += 1;
            let r = e.event.kv.mod_revision;
            if r > e.header || r > last || r < 2 {
                v.push(format!(
                    "watcher {} (stream from revision {} on member {}) got an event of {} at revision {r} in a response with header {} (log ends at {last})",
                    w.watcher, w.start_revision, w.member, e.event.kv.key, e.header
                ));
            }
        }
    }
    Check {
        name: NAME,
        violations: v,
        stats: format!("{answered} answers, {events} watch events"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testutil::*;
    use crate::history::Call;

    #[test]
    fn a_revision_past_the_log_fails() {
        let get = |rev, kv| {
            op(
                0,
                0,
                1,
                Call::Get {
                    key: "a".into(),
                    serializable: false,
                },
                Outcome::Ok(Response::Get { revision: rev, kv }),
            )
        };
        let events = vec![put_ev("a", "1", 2, 2, 1)];
        let h = history(vec![get(2, Some(kv("a", "1", 2, 2, 1)))], events.clone());
        assert!(crate::check::check(&h).get(NAME).unwrap().ok());
        let h = history(vec![get(3, None)], events.clone());
        assert!(!crate::check::check(&h).get(NAME).unwrap().ok());
        let h = history(vec![get(1, Some(kv("a", "1", 2, 2, 1)))], events);
        assert!(!crate::check::check(&h).get(NAME).unwrap().ok());
    }
}
