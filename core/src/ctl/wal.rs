//! `ferroctl wal repair`: the operator's way past a WAL that the member
//! refuses to open (corruption, not a torn write; docs/RECOVERY.md).
//!
//! Offline: run it on a stopped member's data dir. Without `--confirm` it
//! only prints what it would drop — the damaged record and everything
//! after it, each by kind and raft index — and the last index the log
//! keeps; with `--confirm` it drops exactly that, durably (through the
//! wal crate's file layer: fsync of the rewritten segment and of the
//! directory). Dropping acknowledged entries is the price; a member of a
//! healthy cluster should rather rejoin from the others.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use ferrocd_wal::{self as wal, Dropped, RepairMode, UringFs};

use crate::error::{Fail, R};
use crate::out;

/// `ferroctl wal …`.
#[derive(Debug, Subcommand)]
pub enum WalCmd {
    /// Drops a corrupt WAL record and everything after it (dry run unless --confirm)
    Repair(RepairArgs),
}

/// `ferroctl wal repair`.
#[derive(Debug, Args)]
pub struct RepairArgs {
    /// the member's data dir (its WAL is <data-dir>/member/wal)
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// the WAL dir, when the member runs with --wal-dir
    #[arg(long)]
    pub wal_dir: Option<PathBuf>,
    /// drop what the dry run lists; without it nothing is changed
    #[arg(long)]
    pub confirm: bool,
}

/// Run a `wal` subcommand.
pub fn run(cmd: WalCmd) -> R {
    match cmd {
        WalCmd::Repair(a) => repair(a),
    }
}

fn repair(a: RepairArgs) -> R {
    // Only a ferrocd data dir: the same check a member makes at start,
    // so an etcd dir (or anything else) is refused untouched.
    let Some(data_dir) = &a.data_dir else {
        return Err(Fail::args(
            "wal repair needs --data-dir (with --wal-dir too when the member runs with one)",
        ));
    };
    match ferrocd_core::datadir::inspect(data_dir, a.wal_dir.as_deref()) {
        Ok(ferrocd_core::datadir::Found::Own | ferrocd_core::datadir::Found::Legacy) => {}
        Ok(ferrocd_core::datadir::Found::Etcd(found)) => {
            return Err(Fail::err(format!(
                "{} is an etcd data dir (found {}): ferrocd repairs only its own WAL",
                data_dir.display(),
                found.join(", ")
            )));
        }
        Ok(ferrocd_core::datadir::Found::Empty) => {
            return Err(Fail::args(format!(
                "{}: no ferrocd data dir there",
                data_dir.display()
            )));
        }
        Err(e) => return Err(Fail::err(e.to_string())),
    }
    let dir = match ferrocd_core::datadir::Layout::read(data_dir, a.wal_dir.as_deref()) {
        Ok(l) => l.wal_dir,
        // A dir from before the marker: the format 1 layout.
        Err(_) => {
            ferrocd_core::datadir::Layout::of(
                ferrocd_core::datadir::FORMAT,
                data_dir,
                a.wal_dir.as_deref(),
            )
            .wal_dir
        }
    };
    if !dir.is_dir() {
        return Err(Fail::args(format!(
            "{}: no such WAL directory",
            dir.display()
        )));
    }
    let mode = if a.confirm {
        RepairMode::Apply
    } else {
        RepairMode::DryRun
    };
    let cfg = wal::Config::default();
    let done = wal::repair(&UringFs, &dir, &cfg, mode).map_err(|e| Fail::err(e.to_string()))?;
    let Some(plan) = done.plan else {
        out(&format!(
            "{}: nothing to repair: the log opens as it is (a torn last write, if any, is cut when the member starts)\n",
            dir.display()
        ));
        return Ok(());
    };
    let mut s = format!(
        "damage: {} at byte offset {}: {} (expected crc {:#010x}, found {:#010x})\n",
        plan.file.display(),
        plan.offset,
        plan.reason,
        plan.expected,
        plan.found
    );
    s.push_str(if done.applied {
        "dropped:\n"
    } else {
        "would drop:\n"
    });
    for d in &plan.dropped {
        match d {
            Dropped::Record {
                file,
                offset,
                kind,
                index,
                damaged,
            } => {
                let what = match *kind {
                    "entry" => format!("entry {index}"),
                    "meta" => format!("metadata record (key {index})"),
                    "truncate" => format!("truncate record (drops entries >= {index})"),
                    "reset" => format!("reset record (next index {index})"),
                    other => format!("{other} {index}"),
                };
                let tag = if *damaged {
                    " (the damaged record)"
                } else {
                    ""
                };
                s.push_str(&format!(
                    "  {what}{tag}: {} offset {offset}\n",
                    file.display()
                ));
            }
            Dropped::Undecodable {
                file,
                offset,
                bytes,
            } => s.push_str(&format!(
                "  {bytes} bytes that do not decode as records: {} offset {offset}\n",
                file.display()
            )),
        }
    }
    for f in &plan.removed {
        s.push_str(&format!("  the segment file {}\n", f.display()));
    }
    let entries: Vec<String> = plan
        .dropped
        .iter()
        .filter_map(Dropped::entry_index)
        .map(|i| i.to_string())
        .collect();
    s.push_str(&format!(
        "raft entries dropped: {}\n",
        if entries.is_empty() {
            "none".to_string()
        } else {
            entries.join(", ")
        }
    ));
    s.push_str(&format!(
        "the log keeps entries up to index {}; {} keeps its bytes before offset {}{}\n",
        plan.last_index_after
            .map_or("(none)".to_string(), |i| i.to_string()),
        plan.file.display(),
        plan.cut_at,
        if plan.kept_of_write > 0 {
            format!(
                " and the {} good records of the damaged write before the damage",
                plan.kept_of_write
            )
        } else {
            String::new()
        }
    ));
    if done.applied {
        s.push_str("repaired (synced to disk); the member can start\n");
    } else {
        s.push_str(
            "dry run: nothing was changed; run again with --confirm to drop the above \
             (a member of a cluster can instead rejoin from the others: docs/RECOVERY.md)\n",
        );
    }
    out(&s);
    Ok(())
}
