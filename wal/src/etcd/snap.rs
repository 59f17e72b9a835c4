//! etcd's `.snap` files (`member/snap/<term:016x>-<index:016x>.snap`):
//! loading one, and choosing the one etcd would restart from.
//!
//! ```text
//! file (snappb.Snapshot):  1 crc uint32 = CRC-32C(data), not chained | 2 data bytes
//! data (raftpb.Snapshot):  1 data bytes: etcd's v2 store as JSON (see v2store)
//!                          2 metadata (raftpb.SnapshotMetadata):
//!                              1 conf_state (ConfState) | 2 index uint64 | 3 term uint64
//! ```
//!
//! A file is loadable when, as in etcd's `snap.Read`: it is not empty, its
//! `data` is not empty and its `crc` not 0, the crc matches, and `data`
//! decodes. Candidates are the files whose name ends in `.snap` (so not
//! `db`, `<index>.snap.db`, `*.snap.broken`), newest first by name (the
//! names are fixed-width hex, so term then index). etcd renames a file
//! that fails to load to `*.broken` and tries the next; this reader never
//! renames: it reports the file as skipped and goes on.

use std::path::{Path, PathBuf};

use prost::Message;

use super::error::{Error, Result, io_err};
use super::frame::crc32c_update;
use super::pb;
use super::v2store::V2Store;
use super::{ConfState, SkippedSnapshot, SnapshotPoint};

/// A `.snap` file, loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The file.
    pub file: PathBuf,
    /// Index and term of the last entry the snapshot covers (from its
    /// metadata, not its name).
    pub point: SnapshotPoint,
    /// The raft configuration at that index.
    pub conf_state: ConfState,
    /// The state machine's part: etcd's v2 store as JSON, as stored.
    pub data: Vec<u8>,
    /// What the v2 store holds that matters to adopting the dir.
    pub store: V2Store,
}

fn broken(file: &Path, expected: &str, found: impl Into<String>) -> Error {
    Error::Corrupt {
        file: file.to_path_buf(),
        offset: 0,
        expected: expected.into(),
        found: found.into(),
    }
}

/// Check and decode a `.snap` file's bytes (no v2 store parsing).
fn decode_file(file: &Path, bytes: &[u8]) -> Result<Decoded> {
    if bytes.is_empty() {
        return Err(broken(file, "a snapshot", "an empty file"));
    }
    let f = pb::SnapFile::decode(bytes).map_err(|e| {
        broken(
            file,
            "a snappb.Snapshot",
            format!("undecodable bytes ({e})"),
        )
    })?;
    if f.data.is_empty() || f.crc == 0 {
        return Err(broken(
            file,
            "a snapshot with data and a crc",
            format!("{} bytes of data, crc {:#010x}", f.data.len(), f.crc),
        ));
    }
    let crc = crc32c_update(0, &f.data);
    if crc != f.crc {
        return Err(Error::Crc {
            file: file.to_path_buf(),
            offset: 0,
            expected: crc,
            found: f.crc,
        });
    }
    let s = pb::RaftSnapshot::decode(f.data.as_slice()).map_err(|e| {
        broken(
            file,
            "a raftpb.Snapshot",
            format!("undecodable bytes ({e})"),
        )
    })?;
    let m = s.metadata.unwrap_or_default();
    let point = SnapshotPoint {
        index: m.index,
        term: m.term,
    };
    Ok((
        point,
        m.conf_state.map(ConfState::from).unwrap_or_default(),
        s.data,
    ))
}

type Decoded = (SnapshotPoint, ConfState, Vec<u8>);

/// Parse the v2 store of a decoded file.
fn build(file: &Path, (point, conf_state, data): Decoded) -> Result<Snapshot> {
    let store = V2Store::parse(&data).map_err(|reason| Error::V2Store {
        file: file.to_path_buf(),
        reason,
    })?;
    Ok(Snapshot {
        file: file.to_path_buf(),
        point,
        conf_state,
        data,
        store,
    })
}

/// Check and decode a `.snap` file, and parse its v2 store.
pub fn load_snapshot(file: &Path) -> Result<Snapshot> {
    let bytes = std::fs::read(file).map_err(io_err(file))?;
    build(file, decode_file(file, &bytes)?)
}

/// The `.snap` files in `dir`, newest (greatest name) first. A missing
/// dir has none (etcd creates it at start; this reader creates nothing).
fn snap_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut names = Vec::new();
    for e in rd {
        let e = e.map_err(io_err(dir))?;
        let name = e.file_name();
        if name.as_encoded_bytes().ends_with(b".snap") {
            names.push(name);
        }
    }
    names.sort_by(|a, b| b.cmp(a));
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

/// The newest loadable `.snap` in `dir` that `accept` takes (by its
/// metadata's point), and the newer files passed over. A file that does
/// not load (crc, decoding, empty) is skipped; an I/O error, or a chosen
/// file whose v2 store does not parse (etcd would stop on it too), is an
/// error.
pub(crate) fn choose(
    dir: &Path,
    accept: &dyn Fn(SnapshotPoint) -> bool,
) -> Result<(Option<Snapshot>, Vec<SkippedSnapshot>)> {
    let mut skipped = Vec::new();
    for file in snap_files(dir)? {
        let bytes = std::fs::read(&file).map_err(io_err(&file))?;
        match decode_file(&file, &bytes) {
            Ok(d) if !accept(d.0) => skipped.push(SkippedSnapshot { file, reason: None }),
            Ok(d) => return Ok((Some(build(&file, d)?), skipped)),
            Err(e) => skipped.push(SkippedSnapshot {
                file,
                reason: Some(e),
            }),
        }
    }
    Ok((None, skipped))
}

/// The newest loadable `.snap` file in `snap_dir`, WAL unseen: the rule of
/// etcd releases before `ValidSnapshotEntries` (3.4.23 and 3.5 have it:
/// [`read_member`](super::read_member) follows them and also asks the
/// WAL). `None` when there is none or the dir is missing.
pub fn read_snapshot(snap_dir: &Path) -> Result<Option<Snapshot>> {
    Ok(choose(snap_dir, &|_| true)?.0)
}
