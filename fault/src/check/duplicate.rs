//! `applied twice`: no write took effect more than once.
//!
//! Every value the harness writes is unique, so a value in two put events
//! means one request was applied twice: the bug this harness was built to
//! catch (a write forwarded to a leader, re-proposed after a leader change
//! although the first proposal had committed). Each violation names the
//! value, every revision and key it is at, and the operation that wrote
//! it, whatever that operation's outcome.

use std::collections::HashMap;

use super::{Check, Ctx, describe, written};

pub(crate) const NAME: &str = "applied twice";

pub(crate) fn check(cx: &Ctx<'_>) -> Check {
    let h = cx.h;
    let log = &cx.log;
    let mut writers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, op) in h.ops.iter().enumerate() {
        if let Some((_, value)) = written(&op.call) {
            writers.entry(value).or_default().push(i);
        }
    }
    let mut dups: Vec<(i64, String)> = Vec::new();
    let mut values = 0;
    for (value, evs) in log.values() {
        values += 1;
        if evs.len() < 2 {
            continue;
        }
        let at: Vec<String> = evs
            .iter()
            .map(|&e| {
                let e = log.event(e);
                format!("{} (key {})", e.kv.mod_revision, e.kv.key)
            })
            .collect();
        let by: Vec<String> = writers
            .get(value)
            .map(|w| w.iter().map(|&i| describe(h, i)).collect())
            .unwrap_or_else(|| vec!["no operation".into()]);
        let first = evs.iter().map(|&e| log.event(e).kv.mod_revision).min();
        dups.push((
            first.unwrap_or(0),
            format!(
                "value {value} applied {} times, at revisions {}; written by {}",
                evs.len(),
                at.join(", "),
                by.join("; ")
            ),
        ));
    }
    // In revision order, so the report reads like the run.
    dups.sort();
    Check {
        name: NAME,
        violations: dups.into_iter().map(|(_, s)| s).collect(),
        stats: format!("{values} values in {} events", log.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testutil::*;
    use crate::history::{Call, Outcome, Response};

    #[test]
    fn a_value_in_two_puts_is_named_with_its_revisions() {
        let p = op(
            3,
            0,
            10,
            Call::Put {
                key: "a".into(),
                value: "c3-1".into(),
                lease: None,
            },
            Outcome::Ok(Response::Put { revision: 2 }),
        );
        let once = history(vec![p.clone()], vec![put_ev("a", "c3-1", 2, 2, 1)]);
        assert!(crate::check::check(&once).get(NAME).unwrap().ok());
        let twice = history(
            vec![p],
            vec![put_ev("a", "c3-1", 2, 2, 1), put_ev("a", "c3-1", 2, 3, 2)],
        );
        let c = crate::check::check(&twice).get(NAME).unwrap().clone();
        assert_eq!(c.violations.len(), 1);
        let v = &c.violations[0];
        assert!(
            v.contains("c3-1 applied 2 times, at revisions 2 (key a), 3 (key a)"),
            "{v}"
        );
        assert!(v.contains("client 3"), "{v}");
    }
}
