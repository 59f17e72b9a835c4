//! `convergence`: after the faults healed, every member holds the same
//! store: each answered `HashKV(final revision)` and the hashes and
//! compact revisions are equal. A member missing from the answers, or one
//! that answered an error, fails the check too: its store is unverified.

use super::{Check, Ctx};

pub(crate) const NAME: &str = "convergence";

pub(crate) fn check(cx: &Ctx<'_>) -> Check {
    let hashes = &cx.fin.hashes;
    let mut v = Vec::new();
    for m in 0..cx.h.members {
        if !hashes.iter().any(|(i, _)| *i == m) {
            v.push(format!("member {m} gave no HashKV answer"));
        }
    }
    let mut first: Option<(usize, (u32, i64))> = None;
    for (m, r) in hashes {
        match r {
            Err(e) => v.push(format!("member {m} answered HashKV with an error: {e}")),
            Ok(hc) => match first {
                None => first = Some((*m, *hc)),
                Some((m0, h0)) if h0 != *hc => v.push(format!(
                    "member {m} has hash {:08x} compact revision {}, member {m0} has {:08x} compact revision {}",
                    hc.0, hc.1, h0.0, h0.1
                )),
                Some(_) => {}
            },
        }
    }
    if hashes.is_empty() {
        v.push("no member's HashKV was recorded".into());
    }
    Check {
        name: NAME,
        violations: v,
        stats: format!(
            "{} members answered at revision {}",
            hashes.len(),
            cx.fin.revision
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testutil::*;

    #[test]
    fn hashes_must_agree() {
        let mut h = history(vec![], vec![]);
        h.members = 3;
        let fin = h.final_state.as_mut().unwrap();
        fin.hashes = vec![(0, Ok((5, 0))), (1, Ok((5, 0))), (2, Ok((5, 0)))];
        assert!(crate::check::check(&h).get(NAME).unwrap().ok());
        let fin = h.final_state.as_mut().unwrap();
        fin.hashes[2] = (2, Ok((6, 0)));
        let r = crate::check::check(&h);
        assert_eq!(r.get(NAME).unwrap().violations.len(), 1);
        let fin = h.final_state.as_mut().unwrap();
        fin.hashes[2] = (2, Err("deadline exceeded".into()));
        assert!(!crate::check::check(&h).get(NAME).unwrap().ok());
        let fin = h.final_state.as_mut().unwrap();
        fin.hashes.pop();
        assert!(!crate::check::check(&h).get(NAME).unwrap().ok());
    }
}
