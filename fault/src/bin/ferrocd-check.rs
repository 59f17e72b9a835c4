//! `ferrocd-check <history.jsonl>`: check a recorded history and print
//! the report (one line per check, violations indented under it).
//!
//! Exit status: 0 every check holds, 1 some check failed, 2 the file could
//! not be read or parsed (or the arguments are wrong), so a script can
//! tell "the system broke a guarantee" from "there was nothing to check".

use std::process::ExitCode;

use ferrocd_fault::check::check;
use ferrocd_fault::history::History;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path] = &args[..] else {
        eprintln!("usage: ferrocd-check <history.jsonl>");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ferrocd-check: cannot read {path}: {e}");
            return ExitCode::from(2);
        }
    };
    let history = match History::parse(&text) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("ferrocd-check: {path} is not a history: {e}");
            return ExitCode::from(2);
        }
    };
    let report = check(&history);
    print!("{report}");
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
