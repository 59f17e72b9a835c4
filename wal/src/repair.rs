//! Repairing a log that recovery refuses: the operator's way past
//! corruption, run knowingly (`ferroctl wal repair`).
//!
//! [`repair`] reads the log as recovery does, finds the first damage that
//! recovery would refuse ([`crate::OpenError::Corrupt`]) and plans to drop
//! the damaged record and everything after it in the log: the rest of its
//! segment and every later segment. The plan lists each dropped record by
//! kind and raft index (bytes that no longer decode as a count), and the
//! last index the log keeps. [`RepairMode::DryRun`] only plans;
//! [`RepairMode::Apply`] then
//! 1. removes the later segments, newest first, and syncs the directory;
//! 2. writes the damaged segment's replacement to `<name>.repair` — its
//!    bytes before the damaged write, then that write's good records
//!    before the damage under a new batch header (their crcs do not
//!    change: the header is outside the chain), zeros after — syncs it,
//!    renames it over the segment and syncs the directory.
//!
//! Each step is durable before the next, so a repair stopped half way
//! leaves either the old segment (run it again: the same plan) or the new
//! one. Acknowledged entries are dropped: for a cluster member, rejoining
//! from the others (docs/RECOVERY.md) loses nothing and is the better way.

use std::path::{Path, PathBuf};

use crate::batch;
use crate::error::OpenError;
use crate::fs::{File, Fs};
use crate::log::{Config, TornTail};
use crate::record::{self, DecodeError, Kind};
use crate::recovery;

/// Whether [`repair`] changes anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepairMode {
    /// Plan and report only; no file is touched.
    DryRun,
    /// Plan, then drop what the plan says, durably.
    Apply,
}

/// One thing a repair drops, in log order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dropped {
    /// A record that still decodes (its crc is not checked: the chain is
    /// broken before it).
    Record {
        /// Its segment.
        file: PathBuf,
        /// Its offset there.
        offset: u64,
        /// Its type: `entry`, `meta`, `truncate` or `reset`.
        kind: &'static str,
        /// The raft index (entry), key (meta), first index dropped
        /// (truncate) or next index (reset).
        index: u64,
        /// Whether it is the damaged record itself.
        damaged: bool,
    },
    /// Bytes that do not decode as records, from `offset` to the segment's
    /// last nonzero byte.
    Undecodable {
        /// The segment.
        file: PathBuf,
        /// Where they start.
        offset: u64,
        /// How many.
        bytes: u64,
    },
}

impl Dropped {
    /// The raft index, when this is an entry.
    pub fn entry_index(&self) -> Option<u64> {
        match self {
            Dropped::Record {
                kind: "entry",
                index,
                ..
            } => Some(*index),
            _ => None,
        }
    }
}

/// What a repair drops and keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairPlan {
    /// The damaged segment.
    pub file: PathBuf,
    /// Offset of the damaged record or batch header.
    pub offset: u64,
    /// Recovery's reason.
    pub reason: String,
    /// The crc expected there.
    pub expected: u32,
    /// The crc found.
    pub found: u32,
    /// The damaged segment keeps its bytes before this offset (then the
    /// damaged write's good records, rewritten).
    pub cut_at: u64,
    /// Records of the damaged write kept (rewritten under a new header).
    pub kept_of_write: usize,
    /// Later segments removed, oldest first.
    pub removed: Vec<PathBuf>,
    /// Everything dropped, in log order; the damaged record first.
    pub dropped: Vec<Dropped>,
    /// The log's last entry index after the repair (`None`: no entry).
    pub last_index_after: Option<u64>,
}

/// What [`repair`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// `None`: recovery opens the log as it is (a torn last write, if
    /// any, is cut at open; that needs no repair).
    pub plan: Option<RepairPlan>,
    /// Whether the plan was carried out.
    pub applied: bool,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Replay one kept record onto the last index (as recovery does).
fn replay(last: &mut Option<u64>, kind: Kind, index: u64) {
    match kind {
        Kind::Entry => *last = Some(index),
        Kind::Truncate if last.is_some_and(|l| index <= l) => *last = index.checked_sub(1),
        Kind::Reset if index > 0 => *last = Some(index - 1),
        _ => {}
    }
}

/// The records from `from` to the last nonzero byte of `data`, without
/// the crc chain (it is broken at the damage).
fn walk(file: &Path, data: &[u8], from: u64, damaged_at: Option<u64>, out: &mut Vec<Dropped>) {
    let nz = data
        .iter()
        .rposition(|b| *b != 0)
        .map_or(0, |p| p as u64 + 1);
    let mut pos = from;
    while pos < nz {
        let (rec, n) = match record::decode(&data[pos as usize..]) {
            Ok(r) => r,
            Err(DecodeError::Zero) | Err(_) => {
                out.push(Dropped::Undecodable {
                    file: file.to_path_buf(),
                    offset: pos,
                    bytes: nz - pos,
                });
                return;
            }
        };
        let kind = match rec.kind {
            Kind::Entry => Some("entry"),
            Kind::Meta => Some("meta"),
            Kind::Truncate => Some("truncate"),
            Kind::Reset => Some("reset"),
            Kind::Crc | Kind::Ack | Kind::Batch => None,
        };
        if let Some(kind) = kind {
            out.push(Dropped::Record {
                file: file.to_path_buf(),
                offset: pos,
                kind,
                index: rec.index,
                damaged: damaged_at == Some(pos),
            });
        }
        pos += n as u64;
    }
}

/// Plan (and with [`RepairMode::Apply`] carry out) the repair of the log
/// in `dir`; see the module docs. Errors other than corruption
/// (a missing segment, I/O) are returned as they are: repair does not
/// guess about them.
pub fn repair<F: Fs>(
    fs: &F,
    dir: &Path,
    config: &Config,
    mode: RepairMode,
) -> Result<Repair, OpenError> {
    let names = crate::log::segment_names(fs, dir)?;
    let mut seed = None;
    let mut last: Option<u64> = None;
    for (i, name) in names.iter().enumerate() {
        let path = dir.join(name.file_name());
        let data = fs
            .open(&path)
            .and_then(|mut f| f.read_all())
            .map_err(io_err(&path))?;
        if i == 0 && name.index > 0 {
            last = Some(name.index - 1);
        }
        let limit = config.segment_size.max(data.len() as u64);
        let s = recovery::scan(&data, seed, limit);
        let is_last = i + 1 == names.len();
        let d = match s.damage {
            None => None,
            Some(d) if is_last && d.torn && config.torn_tail == TornTail::Truncate => None,
            Some(d) => Some(d),
        };
        let Some(d) = d else {
            for (kind, index, _, _) in &s.records {
                replay(&mut last, *kind, *index);
            }
            seed = Some(s.crc);
            continue;
        };
        // A file cut short reads as zeros past its end (as in recovery).
        let mut data = data;
        if data.len() < d.offset as usize {
            data.resize(d.offset as usize, 0);
        }
        // Keep every good record before the damage.
        for (kind, index, _, _) in &s.records {
            replay(&mut last, *kind, *index);
        }
        let (cut_at, rebuilt, kept_of_write) = match d.write {
            Some(w) if d.offset > w.body_start => {
                let body = &data[w.body_start as usize..d.offset as usize];
                let mut out = Vec::new();
                batch::encode(&mut out, w.start, body);
                out.extend_from_slice(body);
                (w.start, out, s.records.len() - d.cut_records)
            }
            Some(w) => (w.start, Vec::new(), 0),
            None => (d.offset, Vec::new(), 0),
        };
        let mut dropped = Vec::new();
        walk(&path, &data, d.offset, Some(d.offset), &mut dropped);
        let mut removed = Vec::new();
        for later in &names[i + 1..] {
            let p = dir.join(later.file_name());
            let bytes = fs
                .open(&p)
                .and_then(|mut f| f.read_all())
                .map_err(io_err(&p))?;
            walk(&p, &bytes, 0, None, &mut dropped);
            removed.push(p);
        }
        let plan = RepairPlan {
            file: path.clone(),
            offset: d.offset,
            reason: d.reason,
            expected: d.expected,
            found: d.found,
            cut_at,
            kept_of_write,
            removed,
            dropped,
            last_index_after: last,
        };
        if mode == RepairMode::Apply {
            apply(fs, dir, config, &plan, &data, &rebuilt)?;
        }
        return Ok(Repair {
            plan: Some(plan),
            applied: mode == RepairMode::Apply,
        });
    }
    Ok(Repair {
        plan: None,
        applied: false,
    })
}

fn apply<F: Fs>(
    fs: &F,
    dir: &Path,
    config: &Config,
    plan: &RepairPlan,
    data: &[u8],
    rebuilt: &[u8],
) -> Result<(), OpenError> {
    for p in plan.removed.iter().rev() {
        fs.remove(p).map_err(io_err(p))?;
    }
    fs.sync_dir(dir).map_err(io_err(dir))?;
    let mut tmp = plan.file.clone().into_os_string();
    tmp.push(".repair");
    let tmp = PathBuf::from(tmp);
    if fs.exists(&tmp) {
        fs.remove(&tmp).map_err(io_err(&tmp))?;
    }
    let mut bytes = data[..plan.cut_at as usize].to_vec();
    bytes.extend_from_slice(rebuilt);
    let size = (data.len() as u64).max(config.segment_size);
    let mut f = fs.create(&tmp).map_err(io_err(&tmp))?;
    f.allocate(size).map_err(io_err(&tmp))?;
    f.write_and_sync(&bytes, 0).map_err(io_err(&tmp))?;
    drop(f);
    fs.rename(&tmp, &plan.file).map_err(io_err(&plan.file))?;
    fs.sync_dir(dir).map_err(io_err(dir))?;
    Ok(())
}
