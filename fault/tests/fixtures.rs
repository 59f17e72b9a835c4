//! Issue #18: a write sent to a follower could be applied twice when the
//! leader died with it in flight. `fixtures/duplicate-apply.jsonl` is a history the harness
//! recorded on the code before the fix, not edited:
//!
//! ```text
//! ferrocd-fault --server /work/bin/ferrocd-base --scenario leader-kill \
//!     --seed 100 --duration 4s
//! ```
//!
//! (3 members, 12 writers of puts and CAS on the two followers, the leader
//! SIGKILLed after 2 s, the load stopped 2 s later.) Five values are in
//! the final log twice. The checker must keep failing this history
//! whatever else changes in it, and must name the values.

use ferrocd_fault::check;
use ferrocd_fault::history::History;

/// The values the recorded history holds twice (from its final log).
const TWICE: &[&str] = &["c11-24", "c5-23", "c6-23", "c10-24", "c8-25"];

#[test]
fn issue_18_duplicate_apply_fixture_fails_the_checker() {
    let text = include_str!("fixtures/duplicate-apply.jsonl");
    let h = History::parse(text).expect("the fixture parses");
    assert_eq!((h.seed, h.members), (100, 3));
    // The fixture itself shows the duplicate: each value in two put events.
    let fin = h.final_state.as_ref().expect("final record");
    for v in TWICE {
        let n = fin.events.iter().filter(|e| e.kv.value == *v).count();
        assert_eq!(n, 2, "value {v} in {n} events of the fixture's final log");
    }

    let report = check::check(&h);
    assert!(
        !report.ok(),
        "the checker passed a history with a duplicate:\n{report}"
    );
    let twice = report
        .get("applied twice")
        .expect("the report has the no-double-apply check");
    assert!(!twice.ok(), "no-double-apply check passed:\n{report}");
    for v in TWICE {
        assert!(
            twice
                .violations
                .iter()
                .any(|l| l.contains(&format!("value {v} "))),
            "no violation names {v}:\n{report}"
        );
    }
}
