//! `cas outcomes`: a compare-and-swap `if mod_revision(key) == expect then
//! put` (expect 0: the key is absent) succeeded exactly when the compare
//! held, per the log.
//!
//! - Succeeded at R: the key's mod revision just before R was `expect`
//!   (that its put is at R is the `acknowledged writes` check).
//! - Failed at R: its value is nowhere in the log, the key's mod revision
//!   at R is not `expect`, and the key it returned is the key at R.
//! - Unknown but in the log at R: the compare held just before R (a
//!   transaction whose compare fails writes nothing).

use crate::history::{Call, Outcome, Response};

use super::log::mod_rev;
use super::{Check, Ctx, describe};

pub(crate) const NAME: &str = "cas outcomes";

pub(crate) fn check(cx: &Ctx<'_>) -> Check {
    let h = cx.h;
    let log = &cx.log;
    let mut v = Vec::new();
    let (mut held, mut failed, mut unknown_applied) = (0, 0, 0);
    for (i, op) in h.ops.iter().enumerate() {
        let Call::Cas { key, expect, value } = &op.call else {
            continue;
        };
        // The put of this value on this key, if it is in the log.
        let applied = log
            .puts_of(value)
            .iter()
            .map(|&e| log.event(e))
            .find(|e| e.kv.key == *key)
            .map(|e| e.kv.mod_revision);
        let compare_before = |rev: i64| {
            let before = mod_rev(log.state_at(key, rev - 1));
            (before != *expect).then(|| {
                format!(
                    "applied at revision {rev} although the key's mod revision was {before}, not {expect}: {}",
                    describe(h, i)
                )
            })
        };
        match &op.outcome {
            Outcome::Ok(Response::Cas {
                revision,
                succeeded: true,
                ..
            }) => {
                held += 1;
                if applied == Some(*revision) {
                    v.extend(compare_before(*revision));
                }
            }
            Outcome::Ok(Response::Cas {
                revision,
                succeeded: false,
                current,
            }) => {
                failed += 1;
                if let Some(r) = applied {
                    v.push(format!(
                        "answered compare failed, but its put is in the log at revision {r}: {}",
                        describe(h, i)
                    ));
                }
                let at = log.state_at(key, *revision);
                if mod_rev(at) == *expect {
                    v.push(format!(
                        "answered compare failed, but the key's mod revision at {revision} was {expect}: {}",
                        describe(h, i)
                    ));
                }
                if at != current.as_ref() {
                    v.push(format!(
                        "returned {} but the log has {} at revision {revision}: {}",
                        show(current.as_ref()),
                        show(at),
                        describe(h, i)
                    ));
                }
            }
            Outcome::Unknown { .. } => {
                if let Some(r) = applied {
                    unknown_applied += 1;
                    v.extend(compare_before(r));
                }
            }
            _ => {}
        }
    }
    Check {
        name: NAME,
        violations: v,
        stats: format!("{held} succeeded, {failed} failed, {unknown_applied} unknown but applied"),
    }
}

pub(crate) fn show(kv: Option<&crate::history::Kv>) -> String {
    match kv {
        None => "absent".into(),
        Some(kv) => format!(
            "{}={} (create {} mod {} version {} lease {:x})",
            kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testutil::*;
    use crate::history::Kv;

    fn cas(
        expect: i64,
        value: &str,
        revision: i64,
        succeeded: bool,
        current: Option<Kv>,
    ) -> crate::history::Operation {
        op(
            1,
            20,
            30,
            Call::Cas {
                key: "a".into(),
                expect,
                value: value.into(),
            },
            Outcome::Ok(Response::Cas {
                revision,
                succeeded,
                current,
            }),
        )
    }

    fn put1() -> crate::history::Operation {
        op(
            0,
            0,
            10,
            Call::Put {
                key: "a".into(),
                value: "1".into(),
                lease: None,
            },
            Outcome::Ok(Response::Put { revision: 2 }),
        )
    }

    fn verdict(h: &crate::history::History) -> Check {
        crate::check::check(h).get(NAME).unwrap().clone()
    }

    #[test]
    fn held_and_failed_compares() {
        let ev = vec![put_ev("a", "1", 2, 2, 1), put_ev("a", "2", 2, 3, 2)];
        assert!(
            verdict(&history(
                vec![put1(), cas(2, "2", 3, true, None)],
                ev.clone()
            ))
            .ok()
        );
        // Succeeded although the mod revision before was 2, not 0.
        let c = verdict(&history(vec![put1(), cas(0, "2", 3, true, None)], ev));
        assert!(c.violations[0].contains("not 0"), "{c:?}");

        let ev = vec![put_ev("a", "1", 2, 2, 1)];
        let cur = Some(kv("a", "1", 2, 2, 1));
        assert!(
            verdict(&history(
                vec![put1(), cas(0, "2", 2, false, cur.clone())],
                ev.clone()
            ))
            .ok()
        );
        // Answered false, but the compare held at 2.
        let c = verdict(&history(
            vec![put1(), cas(2, "2", 2, false, cur.clone())],
            ev.clone(),
        ));
        assert!(c.violations[0].contains("was 2"), "{c:?}");
        // Answered false with a current the log never had.
        let c = verdict(&history(vec![put1(), cas(0, "2", 2, false, None)], ev));
        assert!(c.violations[0].contains("returned absent"), "{c:?}");
        // Answered false but its put is in the log.
        let ev = vec![put_ev("a", "1", 2, 2, 1), put_ev("a", "2", 2, 3, 2)];
        let c = verdict(&history(vec![put1(), cas(0, "2", 2, false, cur)], ev));
        assert!(
            c.violations[0].contains("is in the log at revision 3"),
            "{c:?}"
        );
    }
}
