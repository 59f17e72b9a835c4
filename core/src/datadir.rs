//! Whose data dir is this? ferrocd starts only on a data dir it wrote
//! itself, and never changes one it did not write.
//!
//! A ferrocd data dir holds a marker file, `<data-dir>/FERROCD`, whose one
//! line names the format version (`ferrocd data dir format 1`). It is the
//! first thing written into a fresh dir: `FERROCD.tmp`, fsynced, renamed,
//! the dir fsynced; only then does the node create `member/`, its ids, the
//! WAL and the snapshots. [`prepare`] runs before anything under the data
//! dir (or a separate `--wal-dir`) is created or opened for writing, and
//! decides from what is on disk, reading only:
//!
//! | on disk | verdict |
//! |---|---|
//! | no dir, or no file in it at any depth | fresh: the marker is written |
//! | marker with format 1 | ours (files in `member/`) |
//! | marker with format 2 | ours: an adopted etcd dir (ferrocd's files in `ferrocd/`, etcd's untouched in `member/`); refused if `ferrocd/ids` is missing |
//! | marker with a higher format | refused: written by a newer ferrocd |
//! | marker that does not parse | refused |
//! | no marker, etcd's files (bbolt `member/snap/db`, WAL segments in etcd's framing) | an etcd data dir: [`Prepared::Etcd`], nothing written; the node adopts it (`adopt`), writing the format 2 marker last |
//! | no marker, ferrocd's layout from before the marker (below) | adopted once: the marker is written |
//! | anything else | refused: not a ferrocd data dir |
//!
//! A refusal changes nothing: no mkdir, no lock file, no temp file.
//!
//! ferrocd's layout from before the marker is recognised by content, not by
//! names (etcd's dir also has `member/wal/<seq>-<index>.wal` and
//! `member/snap`): `member/ids` is exactly two lines of 16 lowercase hex
//! digits (cluster id, member id), and the WAL dir holds at least one
//! segment that opens as ferrocd's do (`docs/FORMAT.md`): WAL format v1
//! with the Crc record (24-byte header, type 3, zero reserved bytes, a
//! crc32 that verifies), v2 with a batch header (type 7, its own crc32,
//! offset 0) and then the Crc record; every other segment opens the same
//! way or is all zeros (a segment is preallocated and synced before its
//! first write). A crc32 that verifies over a 28-byte record is a 1 in
//! 2^32 accident, and etcd writes no `member/ids`. A pre-marker dir whose
//! segment start is damaged (a torn first write) is refused, not guessed
//! at: refusing changes nothing and can be undone by hand.
//!
//! The WAL dir (`--wal-dir` or `member/wal`) is checked on every start,
//! also for our own data dir: a `--wal-dir` pointed at etcd's WAL would
//! otherwise be "recovered" (its first bytes are not our records, so the
//! whole segment would be cut as a torn tail).

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use ferrocd_wal::record::{self, Kind};
use ferrocd_wal::{self as wal, UringFs};

/// The marker's name, in the data dir.
pub const MARKER: &str = "FERROCD";
/// The data dir format this build writes for a fresh dir: ferrocd's files
/// in `member/` (`ids`, `wal/`, `snap/`).
pub const FORMAT: u32 = 1;
/// The format of an etcd data dir that ferrocd adopted: etcd's files stay
/// as they were in `member/` (or `--wal-dir`), ferrocd's are in
/// `ferrocd/` (`ids`, `snap/`, `wal/`; with `--wal-dir`, its WAL is
/// `<wal-dir>/ferrocd`). See `adopt`.
pub const FORMAT_ADOPTED: u32 = 2;
/// The newest format this build reads.
pub const NEWEST: u32 = FORMAT_ADOPTED;
/// The name of ferrocd's own dir in an adopted etcd data dir (and in
/// its `--wal-dir`).
pub const ADOPTED_DIR: &str = "ferrocd";
/// Where the marker is written before its rename.
const MARKER_TMP: &str = "FERROCD.tmp";
/// The marker's text before the version number.
const MARKER_PREFIX: &str = "ferrocd data dir format ";
/// A marker is one short line; anything longer is not ours (and is not
/// read whole).
const MARKER_MAX: u64 = 64;
/// How deep the emptiness walk and the evidence list go: etcd's deepest
/// file is `member/snap/db`, ours `member/wal/<segment>`. A deeper tree is
/// not empty, whatever is at the bottom.
const MAX_DEPTH: usize = 8;
/// The most bytes read of a segment's start: a v2 batch header holds a
/// crc per 512-byte sector of its write, 4 bytes each, so 2 MiB covers a
/// first write of 256 MiB (the largest record is 256 MiB).
const MAX_HEAD: usize = 2 << 20;
/// How many found paths a refusal names.
const MAX_FOUND: usize = 6;
/// bbolt's meta page magic (little-endian u32 at byte 16 of page 0): what
/// etcd's backend `member/snap/db` is.
const BOLT_MAGIC: u32 = 0xED0C_DAED;
/// etcd's WAL record type of the first record in every segment
/// (`crcType`).
const ETCD_CRC_TYPE: u8 = 4;

/// Why a data dir is refused. The text is the whole message the operator
/// sees; nothing was changed on disk.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// etcd's data.
    #[error(
        "{dir} is an etcd data dir (found {found}); ferrocd does not start on etcd's data \
         and has changed nothing in it: stop etcd cleanly, back the dir up, and restore \
         its backend into a new dir with `ferroctl snapshot restore {db} --skip-hash-check \
         --data-dir <new dir>` (with this member's --name, --initial-cluster and \
         --initial-cluster-token), or point --data-dir elsewhere",
        dir = .dir.display(),
        found = .found.join(", "),
        db = .dir.join("member/snap/db").display()
    )]
    Etcd {
        /// The dir (data dir, or the `--wal-dir` that holds etcd's WAL).
        dir: PathBuf,
        /// What gave it away, relative to `dir`.
        found: Vec<String>,
    },
    /// Something else.
    #[error(
        "{dir} is not empty and is not a ferrocd data dir (found {found}); ferrocd has \
         changed nothing in it: point {flag} at an empty or missing dir, or at a ferrocd \
         data dir",
        dir = .dir.display(),
        found = .found.join(", ")
    )]
    Foreign {
        /// The dir.
        dir: PathBuf,
        /// The first few entries found, relative to `dir`.
        found: Vec<String>,
        /// `--data-dir` or `--wal-dir`.
        flag: &'static str,
    },
    /// A marker from a newer ferrocd.
    #[error(
        "{path} says data dir format {found}, but this ferrocd reads formats 1 to {supported} only; \
         it was written by a newer ferrocd: run that version (nothing was changed)",
        path = .path.display()
    )]
    Newer {
        /// The marker.
        path: PathBuf,
        /// The version in it.
        found: u32,
        /// [`FORMAT`].
        supported: u32,
    },
    /// A marker that is not ours.
    #[error(
        "{path} is not a ferrocd marker (expected one line `{MARKER_PREFIX}<n>`, found {text:?}); \
         nothing was changed",
        path = .path.display()
    )]
    BadMarker {
        /// The marker.
        path: PathBuf,
        /// Its first bytes.
        text: String,
    },
    /// An adopted etcd dir whose ferrocd files are gone.
    #[error(
        "{dir} says it is an etcd data dir that ferrocd adopted (format 2), but ferrocd's \
         files are missing ({missing}); nothing was changed: restore them from a backup, or \
         remove {marker} (and the {adopted} dir) to adopt etcd's files again — writes made \
         through ferrocd since the adoption would be lost",
        dir = .dir.display(),
        missing = .missing.display(),
        marker = .dir.join(MARKER).display(),
        adopted = ADOPTED_DIR
    )]
    HalfAdopted {
        /// The data dir.
        dir: PathBuf,
        /// What is missing.
        missing: PathBuf,
    },
    /// Reading or writing failed.
    #[error("{what} {path}: {source}", path = .path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What [`prepare`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// No data yet: the marker was written.
    Fresh,
    /// A ferrocd data dir with its marker.
    Own,
    /// ferrocd's layout from before the marker: the marker was written.
    Adopted,
    /// An etcd data dir (nothing was written): adopt it (`adopt`), which
    /// writes the marker with [`FORMAT_ADOPTED`] last.
    Etcd {
        /// What gave it away, relative to the data dir.
        found: Vec<String>,
    },
}

/// Where a data dir's ferrocd files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The marker's format.
    pub format: u32,
    /// `ids`, `snap/` (and `wal/` without `--wal-dir`).
    pub member_dir: PathBuf,
    /// The WAL.
    pub wal_dir: PathBuf,
}

impl Layout {
    /// The layout of format `format` for `data_dir` and `wal_dir`.
    pub fn of(format: u32, data_dir: &Path, wal_dir: Option<&Path>) -> Layout {
        let member_dir = if format == FORMAT_ADOPTED {
            data_dir.join(ADOPTED_DIR)
        } else {
            data_dir.join("member")
        };
        let wal_dir = match (format == FORMAT_ADOPTED, wal_dir) {
            (false, Some(w)) => w.to_path_buf(),
            (true, Some(w)) => w.join(ADOPTED_DIR),
            (_, None) => member_dir.join("wal"),
        };
        Layout {
            format,
            member_dir,
            wal_dir,
        }
    }

    /// The layout of the ferrocd data dir at `data_dir` (its marker says
    /// which format).
    pub fn read(data_dir: &Path, wal_dir: Option<&Path>) -> Result<Layout> {
        let format = read_marker(&data_dir.join(MARKER))?;
        Ok(Self::of(format, data_dir, wal_dir))
    }
}

/// What [`inspect`] found, without writing anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// No file at any depth (or no dir).
    Empty,
    /// A marker with [`FORMAT`].
    Own,
    /// ferrocd's layout without a marker.
    Legacy,
    /// etcd's data (no marker): what gave it away, relative to the data
    /// dir.
    Etcd(Vec<String>),
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The one call at start, before anything under `data_dir` or `wal_dir`
/// is touched: refuse a dir that is not ours (nothing written), else make
/// sure the marker is there (written and durable before returning).
pub fn prepare(data_dir: &Path, wal_dir: Option<&Path>) -> Result<Prepared> {
    let found = inspect(data_dir, wal_dir)?;
    match found {
        Found::Own => return Ok(Prepared::Own),
        Found::Etcd(found) => return Ok(Prepared::Etcd { found }),
        Found::Empty => {
            // A separate WAL dir of a fresh data dir must hold no log: a
            // log without its ids and snapshots is not a member.
            if let Some(w) = wal_dir
                && !tree_is_empty(w)?
            {
                return Err(refusal(w, "--wal-dir")?);
            }
        }
        Found::Legacy => {}
    }
    write_marker(data_dir)?;
    Ok(match found {
        Found::Empty => Prepared::Fresh,
        _ => Prepared::Adopted,
    })
}

/// Create `data_dir` (durably) and write the marker into it: for a dir
/// that [`inspect`] found empty (`ferroctl snapshot restore` calls it
/// before making the member dir).
pub fn write_marker(data_dir: &Path) -> Result<()> {
    write_marker_format(data_dir, FORMAT)
}

/// [`write_marker`] with format `format` (an adopted etcd dir's marker,
/// written last, is the adoption's commit point).
pub fn write_marker_format(data_dir: &Path, format: u32) -> Result<()> {
    wal::create_dir_all_durable(&UringFs, data_dir).map_err(io_err("creating", data_dir))?;
    let path = data_dir.join(MARKER);
    let tmp = data_dir.join(MARKER_TMP);
    {
        let mut f = fs::File::create(&tmp).map_err(io_err("creating", &tmp))?;
        writeln!(f, "{MARKER_PREFIX}{format}").map_err(io_err("writing", &tmp))?;
        f.sync_all().map_err(io_err("syncing", &tmp))?;
    }
    fs::rename(&tmp, &path).map_err(io_err("renaming", &tmp))?;
    fs::File::open(data_dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing", data_dir))?;
    Ok(())
}

/// Classify `data_dir` (and the WAL dir: `wal_dir`, else `member/wal`)
/// reading only; a dir that is not ours is an [`Error`].
pub fn inspect(data_dir: &Path, wal_dir: Option<&Path>) -> Result<Found> {
    let marker = data_dir.join(MARKER);
    let own_wal = data_dir.join("member").join("wal");
    let wal = wal_dir.unwrap_or(&own_wal);
    match fs::symlink_metadata(&marker) {
        Ok(_) => {
            let format = read_marker(&marker)?;
            let layout = Layout::of(format, data_dir, wal_dir);
            // Our own dir: the log must still be ours.
            if (wal_dir.is_some() || format == FORMAT_ADOPTED)
                && !tree_is_empty(&layout.wal_dir)?
                && scan_wal(&layout.wal_dir)?.etcd.is_some()
            {
                return Err(refusal(&layout.wal_dir, "--wal-dir")?);
            }
            // The marker of an adopted dir is written last: its files
            // must be there.
            if format == FORMAT_ADOPTED {
                let ids = layout.member_dir.join("ids");
                if !ids.is_file() {
                    return Err(Error::HalfAdopted {
                        dir: data_dir.to_path_buf(),
                        missing: ids,
                    });
                }
            }
            return Ok(Found::Own);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("reading", &marker)(e)),
    }
    if tree_is_empty(data_dir)? || only_fixtures(data_dir)? {
        return Ok(Found::Empty);
    }
    if !fs::metadata(data_dir)
        .map_err(io_err("reading", data_dir))?
        .is_dir()
    {
        return Err(Error::Foreign {
            dir: data_dir.to_path_buf(),
            found: vec!["a file, not a directory".into()],
            flag: "--data-dir",
        });
    }
    let evidence = etcd_evidence(data_dir, wal)?;
    if !evidence.is_empty() {
        return Ok(Found::Etcd(evidence));
    }
    if is_legacy(data_dir, wal)? {
        return Ok(Found::Legacy);
    }
    Err(refusal(data_dir, "--data-dir")?)
}

/// The refusal for a non-empty dir that is not ours: etcd's (its WAL in a
/// separate dir) or anything else.
fn refusal(dir: &Path, flag: &'static str) -> Result<Error> {
    if flag == "--wal-dir"
        && let Some(seg) = scan_wal(dir)?.etcd
    {
        return Ok(Error::Etcd {
            dir: dir.to_path_buf(),
            found: vec![seg],
        });
    }
    Ok(Error::Foreign {
        dir: dir.to_path_buf(),
        found: list(dir)?,
        flag,
    })
}

/// The marker's version ([`FORMAT`] or [`FORMAT_ADOPTED`]), or an error.
fn read_marker(path: &Path) -> Result<u32> {
    let f = fs::File::open(path).map_err(io_err("reading", path))?;
    let mut bytes = Vec::new();
    f.take(MARKER_MAX)
        .read_to_end(&mut bytes)
        .map_err(io_err("reading", path))?;
    let bad = || Error::BadMarker {
        path: path.to_path_buf(),
        text: String::from_utf8_lossy(&bytes).into_owned(),
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
    let line = text.strip_suffix('\n').ok_or_else(bad)?;
    let digits = line.strip_prefix(MARKER_PREFIX).ok_or_else(bad)?;
    // Plain decimal only: `u32::from_str` would also take `+1`.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let found: u32 = digits.parse().map_err(|_| bad())?;
    if found > NEWEST {
        return Err(Error::Newer {
            path: path.to_path_buf(),
            found,
            supported: NEWEST,
        });
    }
    if found == 0 {
        return Err(bad());
    }
    Ok(found)
}

/// Whether `data_dir` holds nothing but `fixtures/` (the certificates
/// `--auto-tls` generates at start, before the data dir is prepared, as
/// etcd writes them there) and empty dirs.
fn only_fixtures(data_dir: &Path) -> Result<bool> {
    let rd = match fs::read_dir(data_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => return Ok(false),
        Err(e) => return Err(io_err("reading", data_dir)(e)),
    };
    for entry in rd {
        let entry = entry.map_err(io_err("reading", data_dir))?;
        let path = entry.path();
        let is_dir = entry
            .file_type()
            .map_err(io_err("reading", &path))?
            .is_dir();
        let fixtures = is_dir && entry.file_name() == "fixtures";
        let fine = fixtures || (is_dir && tree_is_empty(&path)?);
        if !fine {
            return Ok(false);
        }
    }
    Ok(true)
}

/// True when `dir` is missing or holds no file at any depth (only empty
/// dirs, or our own half-written marker from a start cut short).
fn tree_is_empty(dir: &Path) -> Result<bool> {
    fn walk(dir: &Path, depth: usize) -> Result<bool> {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound && depth == 0 => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotADirectory && depth == 0 => return Ok(false),
            Err(e) => return Err(io_err("reading", dir)(e)),
        };
        for entry in rd {
            let entry = entry.map_err(io_err("reading", dir))?;
            let ty = entry
                .file_type()
                .map_err(io_err("reading", &entry.path()))?;
            if depth == 0 && entry.file_name() == MARKER_TMP && ty.is_file() {
                continue;
            }
            if !ty.is_dir() || depth + 1 >= MAX_DEPTH || !walk(&entry.path(), depth + 1)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
    walk(dir, 0)
}

/// Up to [`MAX_FOUND`] entries of `dir`, sorted, relative to it.
fn list(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let rd = fs::read_dir(dir).map_err(io_err("reading", dir))?;
    for entry in rd {
        let entry = entry.map_err(io_err("reading", dir))?;
        let mut name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            name.push('/');
        }
        names.push(name);
    }
    names.sort();
    let more = names.len().saturating_sub(MAX_FOUND);
    names.truncate(MAX_FOUND);
    if more > 0 {
        names.push(format!("and {more} more"));
    }
    Ok(names)
}

/// The first `n` bytes of `path` (fewer if it is shorter); `None` if it
/// is not a regular file.
fn head(path: &Path, n: usize) -> Result<Option<Vec<u8>>> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("reading", path)(e)),
    }
    let f = fs::File::open(path).map_err(io_err("reading", path))?;
    let mut buf = Vec::with_capacity(n);
    f.take(n as u64)
        .read_to_end(&mut buf)
        .map_err(io_err("reading", path))?;
    Ok(Some(buf))
}

/// What the `.wal` files of a WAL dir open with.
#[derive(Debug, Default)]
struct WalScan {
    /// Segments that open with ferrocd's verified Crc record.
    ours: usize,
    /// All-zero segments (preallocated, nothing written yet).
    zero: usize,
    /// Segments that are neither.
    other: usize,
    /// The first segment in etcd's framing (its name).
    etcd: Option<String>,
}

fn scan_wal(dir: &Path) -> Result<WalScan> {
    let mut scan = WalScan::default();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(scan);
        }
        Err(e) => return Err(io_err("reading", dir)(e)),
    };
    let mut names: Vec<String> = Vec::new();
    for entry in rd {
        let entry = entry.map_err(io_err("reading", dir))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    for name in names {
        if wal::SegmentName::parse(&name).is_none() {
            continue;
        }
        let path = dir.join(&name);
        let Some(h) = head(&path, 32)? else {
            scan.other += 1;
            continue;
        };
        // A v2 segment opens with a batch header whose length is in its
        // first 4 bytes; read it and the Crc record after it.
        let h = if h.len() >= record::HEADER_LEN && h[4] == Kind::Batch as u8 {
            let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
            let need = record::encoded_len(len.min(MAX_HEAD)) + 32;
            head(&path, need.min(MAX_HEAD))?.unwrap_or_default()
        } else {
            h
        };
        if opens_like_ferrocd(&h) {
            scan.ours += 1;
        } else if !h.is_empty() && h.iter().all(|b| *b == 0) {
            scan.zero += 1;
        } else {
            scan.other += 1;
            if is_etcd_segment(&h) && scan.etcd.is_none() {
                scan.etcd = Some(name);
            }
        }
    }
    Ok(scan)
}

/// A Crc record (type 3, index 0, 4-byte payload) at the start of `buf`
/// whose crc32 verifies, seeded with the value it carries.
fn crc_record_at(buf: &[u8]) -> bool {
    match record::decode(buf) {
        Ok((r, _)) => {
            r.kind == Kind::Crc
                && r.index == 0
                && <[u8; 4]>::try_from(r.payload)
                    .is_ok_and(|seed| r.verify(u32::from_le_bytes(seed)))
        }
        Err(_) => false,
    }
}

/// ferrocd's segment start: format v1 opens with the Crc record; format
/// v2 opens with a batch header (type 7, crc32 seeded with 0, its payload
/// opening with its own offset, 0) and then the Crc record.
fn opens_like_ferrocd(buf: &[u8]) -> bool {
    match record::decode(buf) {
        Ok((r, _)) if r.kind == Kind::Crc => crc_record_at(buf),
        Ok((r, used)) if r.kind == Kind::Batch => {
            r.verify(0) && r.payload.get(..8) == Some(&[0u8; 8][..]) && crc_record_at(&buf[used..])
        }
        _ => false,
    }
}

/// etcd's WAL framing (`wal/encoder.go`): a little-endian u64 whose low 56
/// bits are the record length and whose top byte is `0x80 | padding` when
/// the record is padded to 8 bytes; the record is a protobuf
/// `walpb.Record` whose first field is `type` (tag `0x08`), and every
/// segment opens with a `crcType` (4) record.
fn is_etcd_segment(head: &[u8]) -> bool {
    if head.len() < 10 {
        return false;
    }
    let word = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
    let len = word & 0x00FF_FFFF_FFFF_FFFF;
    let top = (word >> 56) as u8;
    let padded_ok = top == 0 || (top & 0x80 != 0 && top & 0x78 == 0);
    padded_ok && (2..1 << 20).contains(&len) && head[8] == 0x08 && head[9] == ETCD_CRC_TYPE
}

/// What in `data_dir` (and `wal`) is etcd's, relative to `data_dir`.
fn etcd_evidence(data_dir: &Path, wal: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let db = data_dir.join("member").join("snap").join("db");
    if let Some(h) = head(&db, 24)?
        && h.len() >= 24
        && u32::from_le_bytes([h[16], h[17], h[18], h[19]]) == BOLT_MAGIC
    {
        found.push("member/snap/db".to_string());
    }
    if let Some(seg) = scan_wal(wal)?.etcd {
        let rel = match wal.strip_prefix(data_dir) {
            Ok(r) => r.join(&seg).display().to_string(),
            Err(_) => wal.join(&seg).display().to_string(),
        };
        found.push(rel);
    }
    Ok(found)
}

/// ferrocd's layout from before the marker (see the module docs).
fn is_legacy(data_dir: &Path, wal: &Path) -> Result<bool> {
    let ids = data_dir.join("member").join("ids");
    let Some(bytes) = head(&ids, 64)? else {
        return Ok(false);
    };
    let ids_ok = std::str::from_utf8(&bytes).is_ok_and(|t| {
        let lines: Vec<&str> = t.split_terminator('\n').collect();
        t.ends_with('\n')
            && lines.len() == 2
            && lines.iter().all(|l| {
                l.len() == 16
                    && l.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
    });
    if !ids_ok {
        return Ok(false);
    }
    let scan = scan_wal(wal)?;
    Ok(scan.ours > 0 && scan.other == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("ferrocd-datadir-")
            .tempdir()
            .expect("tempdir")
    }

    /// A format v1 segment's start: the Crc record.
    fn ferrocd_segment() -> Vec<u8> {
        let mut buf = Vec::new();
        record::encode(&mut buf, Kind::Crc, 0, &0u32.to_le_bytes(), 0);
        buf.resize(4096, 0);
        buf
    }

    /// A format v2 segment's start: a batch header (offset 0, a crc table
    /// of `sectors` entries, crc seeded with 0), then the Crc record.
    fn ferrocd_v2_segment(sectors: usize) -> Vec<u8> {
        let mut body = Vec::new();
        record::encode(&mut body, Kind::Crc, 0, &0u32.to_le_bytes(), 0);
        let mut payload = 0u64.to_le_bytes().to_vec();
        payload.resize(8 + 4 * sectors, 0);
        let mut buf = Vec::new();
        let total = (record::encoded_len(payload.len()) + body.len()) as u64;
        record::encode(&mut buf, Kind::Batch, total, &payload, 0);
        buf.extend_from_slice(&body);
        buf.resize(buf.len() + 4096, 0);
        buf
    }

    #[test]
    fn segment_starts_are_told_apart() {
        assert!(opens_like_ferrocd(&ferrocd_segment()));
        for sectors in [2, 100, 5000] {
            let seg = ferrocd_v2_segment(sectors);
            assert!(opens_like_ferrocd(&seg), "{sectors}");
            // Any flipped bit in the batch header or the Crc record.
            let end = record::encoded_len(8 + 4 * sectors) + 32;
            // Every 7th bit of small headers, a spread of a large one's.
            for bit in (0..end * 8).step_by(if sectors > 100 { 613 } else { 7 }) {
                let mut bad = seg.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                assert!(!opens_like_ferrocd(&bad), "{sectors} bit {bit}");
            }
        }
        let mut etcd = ETCD_HEAD.to_vec();
        etcd.resize(64, 0);
        assert!(!opens_like_ferrocd(&etcd));
        assert!(is_etcd_segment(&etcd));
        assert!(!is_etcd_segment(&ferrocd_segment()));
        assert!(!is_etcd_segment(&ferrocd_v2_segment(2)));
        assert!(!opens_like_ferrocd(&[0u8; 64]));
    }

    /// The first bytes of a real etcd 3.5.1 segment: a padded crcType
    /// record (`08 04 10 00`, 4 bytes of padding).
    const ETCD_HEAD: [u8; 16] = [4, 0, 0, 0, 0, 0, 0, 0x84, 8, 4, 0x10, 0, 0, 0, 0, 0];

    #[test]
    fn fresh_dir_gets_the_marker_and_is_ours_after() {
        let d = tmp();
        let dir = d.path().join("data");
        assert_eq!(prepare(&dir, None).unwrap(), Prepared::Fresh);
        assert_eq!(
            fs::read_to_string(dir.join(MARKER)).unwrap(),
            "ferrocd data dir format 1\n"
        );
        assert!(!dir.join("FERROCD.tmp").exists());
        assert_eq!(prepare(&dir, None).unwrap(), Prepared::Own);
    }

    #[test]
    fn tree_of_empty_dirs_and_a_torn_marker_count_as_empty() {
        let d = tmp();
        fs::create_dir_all(d.path().join("member/wal")).unwrap();
        fs::write(d.path().join("FERROCD.tmp"), b"ferrocd da").unwrap();
        assert_eq!(inspect(d.path(), None).unwrap(), Found::Empty);
    }

    #[test]
    fn auto_tls_fixtures_alone_count_as_empty() {
        let d = tmp();
        fs::create_dir_all(d.path().join("fixtures/client")).unwrap();
        fs::write(d.path().join("fixtures/client/cert.pem"), b"x").unwrap();
        fs::create_dir_all(d.path().join("member")).unwrap();
        assert_eq!(inspect(d.path(), None).unwrap(), Found::Empty);
        // anything else beside them is still not ours
        fs::write(d.path().join("notes.txt"), b"x").unwrap();
        assert!(inspect(d.path(), None).is_err());
    }

    #[test]
    fn markers_other_than_formats_1_and_2_are_refused() {
        for (text, newer) in [
            ("ferrocd data dir format 3\n", true),
            ("ferrocd data dir format 4000000000\n", true),
            ("ferrocd data dir format 0\n", false),
            ("ferrocd data dir format 1", false),
            ("ferrocd data dir format +1\n", false),
            ("ferrocd data dir format 99999999999\n", false),
            ("hello\n", false),
            ("", false),
        ] {
            let d = tmp();
            fs::write(d.path().join(MARKER), text).unwrap();
            let e = prepare(d.path(), None).unwrap_err();
            match e {
                Error::Newer {
                    found, supported, ..
                } => {
                    assert!(newer, "{text:?}");
                    assert!(found > supported);
                    let msg = e.to_string();
                    assert!(msg.contains(&format!("format {found}")), "{msg}");
                    assert!(msg.contains("formats 1 to 2 only"), "{msg}");
                }
                Error::BadMarker { .. } => assert!(!newer, "{text:?}"),
                other => panic!("{text:?}: {other}"),
            }
            assert_eq!(fs::read_to_string(d.path().join(MARKER)).unwrap(), text);
        }
    }

    #[test]
    fn etcd_dir_is_named_and_untouched() {
        let d = tmp();
        fs::create_dir_all(d.path().join("member/wal")).unwrap();
        fs::create_dir_all(d.path().join("member/snap")).unwrap();
        let mut db = vec![0u8; 4096];
        db[16..20].copy_from_slice(&BOLT_MAGIC.to_le_bytes());
        fs::write(d.path().join("member/snap/db"), &db).unwrap();
        let mut seg = ETCD_HEAD.to_vec();
        seg.resize(4096, 0);
        let name = "0000000000000000-0000000000000000.wal";
        fs::write(d.path().join("member/wal").join(name), &seg).unwrap();
        let p = prepare(d.path(), None).unwrap();
        let Prepared::Etcd { found } = &p else {
            panic!("{p:?}")
        };
        assert_eq!(
            found,
            &vec!["member/snap/db".to_string(), format!("member/wal/{name}")]
        );
        assert!(!d.path().join(MARKER).exists());
        // The WAL alone gives it away too.
        fs::remove_file(d.path().join("member/snap/db")).unwrap();
        assert!(matches!(prepare(d.path(), None), Ok(Prepared::Etcd { .. })));
        assert!(!d.path().join(MARKER).exists());
    }

    #[test]
    fn adopted_dirs_keep_ferrocds_files_apart() {
        let d = tmp();
        let l = Layout::of(FORMAT_ADOPTED, d.path(), None);
        assert_eq!(l.member_dir, d.path().join("ferrocd"));
        assert_eq!(l.wal_dir, d.path().join("ferrocd/wal"));
        let w = d.path().join("w");
        let l = Layout::of(FORMAT_ADOPTED, d.path(), Some(&w));
        assert_eq!(l.wal_dir, w.join("ferrocd"));
        let l = Layout::of(FORMAT, d.path(), Some(&w));
        assert_eq!((l.member_dir, l.wal_dir), (d.path().join("member"), w));
        // The marker of an adopted dir without ferrocd's files: refused.
        write_marker_format(d.path(), FORMAT_ADOPTED).unwrap();
        let e = prepare(d.path(), None).unwrap_err();
        assert!(matches!(e, Error::HalfAdopted { .. }), "{e}");
        fs::create_dir_all(d.path().join("ferrocd")).unwrap();
        fs::write(d.path().join("ferrocd/ids"), "0\n0\n").unwrap();
        assert_eq!(prepare(d.path(), None).unwrap(), Prepared::Own);
        assert_eq!(Layout::read(d.path(), None).unwrap().format, FORMAT_ADOPTED);
    }

    #[test]
    fn legacy_layout_is_adopted_and_near_misses_are_not() {
        let d = tmp();
        let member = d.path().join("member");
        fs::create_dir_all(member.join("wal")).unwrap();
        fs::write(member.join("ids"), "00000000000000ab\n00000000000000cd\n").unwrap();
        let seg = member.join("wal/0000000000000000-0000000000000000.wal");
        fs::write(&seg, ferrocd_segment()).unwrap();
        assert_eq!(inspect(d.path(), None).unwrap(), Found::Legacy);

        // One flipped bit in the segment header: the crc fails.
        let mut bad = ferrocd_segment();
        bad[8] ^= 1;
        fs::write(&seg, &bad).unwrap();
        assert!(matches!(
            prepare(d.path(), None),
            Err(Error::Foreign { .. })
        ));
        fs::write(&seg, ferrocd_segment()).unwrap();
        // ids in another format.
        fs::write(member.join("ids"), "ab\ncd\n").unwrap();
        assert!(matches!(
            prepare(d.path(), None),
            Err(Error::Foreign { .. })
        ));
        assert!(!d.path().join(MARKER).exists());

        fs::write(member.join("ids"), "00000000000000ab\n00000000000000cd\n").unwrap();
        assert_eq!(prepare(d.path(), None).unwrap(), Prepared::Adopted);
        assert_eq!(prepare(d.path(), None).unwrap(), Prepared::Own);
    }

    #[test]
    fn separate_wal_dir_is_checked() {
        let d = tmp();
        let data = d.path().join("data");
        let wal_dir = d.path().join("wal");
        fs::create_dir_all(&wal_dir).unwrap();
        let mut seg = ETCD_HEAD.to_vec();
        seg.resize(4096, 0);
        fs::write(wal_dir.join("0000000000000000-0000000000000000.wal"), &seg).unwrap();
        // A fresh data dir with etcd's WAL beside it: refused, nothing made.
        let e = prepare(&data, Some(&wal_dir)).unwrap_err();
        assert!(matches!(e, Error::Etcd { .. }), "{e}");
        assert!(!data.exists());
        // Our own data dir pointed at etcd's WAL: refused as well.
        write_marker(&data).unwrap();
        let e = prepare(&data, Some(&wal_dir)).unwrap_err();
        assert!(matches!(e, Error::Etcd { .. }), "{e}");
        // Random files in the WAL dir of a fresh data dir.
        let data2 = d.path().join("data2");
        let wal2 = d.path().join("wal2");
        fs::create_dir_all(&wal2).unwrap();
        fs::write(wal2.join("junk"), b"x").unwrap();
        let e = prepare(&data2, Some(&wal2)).unwrap_err();
        assert!(e.to_string().contains("--wal-dir"), "{e}");
        assert!(!data2.exists());
    }

    #[test]
    fn other_files_are_listed() {
        let d = tmp();
        for i in 0..8 {
            fs::write(d.path().join(format!("f{i}")), b"x").unwrap();
        }
        let e = prepare(d.path(), None).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("is not empty and is not a ferrocd data dir"),
            "{msg}"
        );
        assert!(msg.contains("f0, f1, f2, f3, f4, f5, and 2 more"), "{msg}");
    }
}
