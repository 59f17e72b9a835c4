//! `reads`: a read returned the key exactly as the log has it at the
//! read's header revision (value, create and mod revisions, version,
//! lease).
//!
//! This holds for serializable reads too: a member answers one from its
//! own applied state, whose revision is the header's, so a serializable
//! read may be old but never inconsistent with the revision it names.
//! Whether a linearizable read is recent enough is the `real-time order`
//! and `linearizable per key` checks' business.

use crate::history::{Call, Outcome, Response};

use super::cas::show;
use super::{Check, Ctx, describe};

pub(crate) const NAME: &str = "reads";

pub(crate) fn check(cx: &Ctx<'_>) -> Check {
    let h = cx.h;
    let mut v = Vec::new();
    let (mut lin, mut ser) = (0, 0);
    for (i, op) in h.ops.iter().enumerate() {
        let Call::Get { key, serializable } = &op.call else {
            continue;
        };
        let Outcome::Ok(resp) = &op.outcome else {
            continue;
        };
        let Response::Get { revision, kv } = resp else {
            v.push(format!(
                "answer does not match the request: {}",
                describe(h, i)
            ));
            continue;
        };
        if *serializable {
            ser += 1;
        } else {
            lin += 1;
        }
        let want = cx.log.state_at(key, *revision);
        if kv.as_ref() != want {
            v.push(format!(
                "returned {} but the log has {} at revision {revision}: {}",
                show(kv.as_ref()),
                show(want),
                describe(h, i)
            ));
        }
    }
    Check {
        name: NAME,
        violations: v,
        stats: format!("{lin} linearizable and {ser} serializable reads"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testutil::*;

    #[test]
    fn a_read_must_match_its_revision() {
        let get = |serializable, revision, kv| {
            op(
                0,
                0,
                10,
                Call::Get {
                    key: "a".into(),
                    serializable,
                },
                Outcome::Ok(Response::Get { revision, kv }),
            )
        };
        let ev = vec![put_ev("a", "1", 2, 2, 1), put_ev("a", "2", 2, 3, 2)];
        let one = kv("a", "1", 2, 2, 1);
        let ok = history(
            vec![get(true, 2, Some(one.clone())), get(false, 1, None)],
            ev.clone(),
        );
        assert!(crate::check::check(&ok).get(NAME).unwrap().ok());
        let stale = history(vec![get(false, 3, Some(one))], ev.clone());
        assert!(!crate::check::check(&stale).get(NAME).unwrap().ok());
        let wrong_version = history(vec![get(true, 2, Some(kv("a", "1", 2, 2, 2)))], ev);
        assert!(!crate::check::check(&wrong_version).get(NAME).unwrap().ok());
    }
}
