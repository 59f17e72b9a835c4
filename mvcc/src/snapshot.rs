//! Store snapshots: a streamed sequence of 16-byte-aligned frames whose
//! bodies are rkyv archives, loaded by memory-mapping and validating, with
//! records left in the mapping (zero copy). Full byte layout:
//! docs/FORMAT.md, `## MVCC snapshot`.
//!
//! ```text
//! payload:  "FCDMVSNP" | version u32 LE | 0u32 | frames ...
//! frame:    kind u32 LE | len u32 LE | crc32(body) u32 LE | 0u32
//!           | main i64 BE | sub i64 BE | body (len bytes) | zero pad to 16
//! frames:   META, KEY × key_count (key order), RECORD × record_count
//!           ((main, sub) order), END
//! ```
//!
//! A standalone file ([`save_file`]) puts a 64-byte header before the
//! payload:
//!
//! ```text
//! "FCDMVCCF" | version u32 LE | header_len u32 LE (64) | payload_len u64 LE
//! | payload_crc32 u32 LE | 0 (32 bytes) | header_crc32 u32 LE (over bytes 0..60)
//! ```
//!
//! Loading checks every frame's bounds, kind, order and crc32, validates
//! every archive with bytecheck, and checks that every revision the key
//! index names has a record; anything wrong is `Error::Snapshot` with the
//! reason and offset, never a panic. Mapped files must not be modified
//! while a store built from them is alive (the mapping is read-only for us,
//! but another process truncating the file would fault readers).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;
use rkyv::util::AlignedVec;
use rkyv::with::InlineAsBox;

use crate::btree::BTree;
use crate::error::{Error, Result};
use crate::key_index::{Generation, KeyIndex};
use crate::record::{self, RecordBytes};
use crate::revision::Revision;
use crate::state::{Key, PendingCompaction, State};

const PAYLOAD_MAGIC: &[u8; 8] = b"FCDMVSNP";
const FILE_MAGIC: &[u8; 8] = b"FCDMVCCF";
/// 2: leases carry their TTL.
const VERSION: u32 = 2;
const FRAME_HEADER: usize = 32;
/// Bytes before the payload in a standalone file; a multiple of 16 so the
/// payload (and every record in it) stays 16-byte aligned in the mapping.
pub(crate) const FILE_HEADER: usize = 64;

const KIND_META: u32 = 1;
const KIND_KEY: u32 = 2;
const KIND_RECORD: u32 = 3;
const KIND_END: u32 = 4;

/// The META frame's body.
#[derive(rkyv::Archive, rkyv::Serialize)]
struct Meta {
    revision: i64,
    compact_revision: i64,
    consistent_index: u64,
    /// Revision of an unfinished physical compaction, 0 for none; loading
    /// restarts it from the first key.
    pending_compaction: i64,
    key_count: u64,
    record_count: u64,
    /// Granted leases: (id, TTL in seconds), by id.
    leases: Vec<(i64, i64)>,
}

/// A KEY frame's body: one key index entry.
#[derive(rkyv::Archive, rkyv::Serialize)]
struct KeyEntry<'a> {
    #[rkyv(with = InlineAsBox)]
    key: &'a [u8],
    modified: [i64; 2],
    generations: Vec<GenEntry>,
}

#[derive(rkyv::Archive, rkyv::Serialize)]
struct GenEntry {
    ver: i64,
    created: [i64; 2],
    revs: Vec<[i64; 2]>,
}

/// Counts bytes and keeps a running crc32 of what passes through.
struct CrcWriter<W> {
    inner: W,
    crc: crc32fast::Hasher,
    written: u64,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn write_frame(w: &mut impl Write, kind: u32, rev: Revision, body: &[u8]) -> io::Result<u64> {
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "snapshot frame over 4 GiB"))?;
    let mut h = [0u8; FRAME_HEADER];
    h[0..4].copy_from_slice(&kind.to_le_bytes());
    h[4..8].copy_from_slice(&len.to_le_bytes());
    h[8..12].copy_from_slice(&crc32fast::hash(body).to_le_bytes());
    h[16..32].copy_from_slice(&rev.to_bytes());
    w.write_all(&h)?;
    w.write_all(body)?;
    let pad = (16 - body.len() % 16) % 16;
    w.write_all(&[0u8; 16][..pad])?;
    Ok((FRAME_HEADER + body.len() + pad) as u64)
}

fn archive<T>(value: &T, buf: AlignedVec<16>) -> AlignedVec<16>
where
    T: for<'a> rkyv::Serialize<
            rkyv::api::high::HighSerializer<
                AlignedVec<16>,
                rkyv::ser::allocator::ArenaHandle<'a>,
                rkyv::rancor::Error,
            >,
        >,
{
    rkyv::api::high::to_bytes_in::<_, rkyv::rancor::Error>(value, buf)
        .expect("serializing into memory cannot fail")
}

/// Stream `state` as a payload; returns the bytes written.
pub(crate) fn write_payload(state: &State, w: &mut impl Write) -> io::Result<u64> {
    let mut w = BufWriter::with_capacity(1 << 20, w);
    let mut total = 16u64;
    let mut head = [0u8; 16];
    head[..8].copy_from_slice(PAYLOAD_MAGIC);
    head[8..12].copy_from_slice(&VERSION.to_le_bytes());
    w.write_all(&head)?;
    let meta = Meta {
        revision: state.revision,
        compact_revision: state.compact_revision,
        consistent_index: state.consistent_index,
        pending_compaction: state.pending_compaction.as_ref().map_or(0, |p| p.revision),
        key_count: state.keys.len() as u64,
        record_count: state.revs.len() as u64,
        leases: state.leases.iter().map(|(id, ttl)| (*id, *ttl)).collect(),
    };
    let mut buf = archive(&meta, AlignedVec::new());
    total += write_frame(&mut w, KIND_META, Revision::default(), &buf)?;
    for (key, ki) in state.keys.iter() {
        let entry = KeyEntry {
            key,
            modified: [ki.modified.main, ki.modified.sub],
            generations: ki
                .generations
                .iter()
                .map(|g| GenEntry {
                    ver: g.ver,
                    created: [g.created.main, g.created.sub],
                    revs: g.revs.iter().map(|r| [r.main, r.sub]).collect(),
                })
                .collect(),
        };
        buf.clear();
        buf = archive(&entry, buf);
        total += write_frame(&mut w, KIND_KEY, Revision::default(), &buf)?;
    }
    for (rev, rec) in state.revs.iter() {
        total += write_frame(&mut w, KIND_RECORD, *rev, rec.bytes())?;
    }
    total += write_frame(&mut w, KIND_END, Revision::default(), &[])?;
    w.flush()?;
    Ok(total)
}

fn snap_err(path: &str, reason: impl Into<String>) -> Error {
    Error::Snapshot {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// Save to `path` durably (see the module notes for the header).
pub(crate) fn save_file(state: &State, path: &Path) -> Result<()> {
    let name = path.display().to_string();
    let io = |e: io::Error| snap_err(&name, format!("write: {e}"));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(&[0u8; FILE_HEADER]).map_err(io)?;
    let mut cw = CrcWriter {
        inner: &mut f,
        crc: crc32fast::Hasher::new(),
        written: 0,
    };
    write_payload(state, &mut cw).map_err(io)?;
    let (len, crc) = (cw.written, cw.crc.finalize());
    let mut h = [0u8; FILE_HEADER];
    h[0..8].copy_from_slice(FILE_MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(FILE_HEADER as u32).to_le_bytes());
    h[16..24].copy_from_slice(&len.to_le_bytes());
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    let hcrc = crc32fast::hash(&h[..60]);
    h[60..64].copy_from_slice(&hcrc.to_le_bytes());
    f.seek(SeekFrom::Start(0)).map_err(io)?;
    f.write_all(&h).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    Ok(())
}

/// Map and load a file written by [`save_file`].
pub(crate) fn load_file(path: &Path) -> Result<State> {
    let name = path.display().to_string();
    let f = File::open(path).map_err(|e| snap_err(&name, format!("open: {e}")))?;
    // SAFETY: the file is a sealed snapshot (written, fsynced and renamed
    // into place by `save_file`); nothing in this process writes it, and the
    // module notes require that no one else modifies it while mapped.
    let map = unsafe { Mmap::map(&f) }.map_err(|e| snap_err(&name, format!("mmap: {e}")))?;
    let h = map.get(..FILE_HEADER).ok_or_else(|| {
        snap_err(
            &name,
            format!("file of {} bytes is shorter than the header", map.len()),
        )
    })?;
    if &h[0..8] != FILE_MAGIC {
        return Err(snap_err(&name, "bad magic: not a ferrocd mvcc snapshot"));
    }
    let le32 = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes"));
    let (want, got) = (le32(&h[60..64]), crc32fast::hash(&h[..60]));
    if want != got {
        return Err(snap_err(
            &name,
            format!("header crc32 mismatch: expected {want:#010x}, found {got:#010x}"),
        ));
    }
    let version = le32(&h[8..12]);
    if version != VERSION {
        return Err(snap_err(&name, format!("unsupported version {version}")));
    }
    let len = u64::from_le_bytes(h[16..24].try_into().expect("8 bytes"));
    if len != (map.len() - FILE_HEADER) as u64 {
        return Err(snap_err(
            &name,
            format!(
                "payload length {len} but file holds {} bytes after the header",
                map.len() - FILE_HEADER
            ),
        ));
    }
    let (want, got) = (le32(&h[24..28]), crc32fast::hash(&map[FILE_HEADER..]));
    if want != got {
        return Err(snap_err(
            &name,
            format!("payload crc32 mismatch: expected {want:#010x}, found {got:#010x}"),
        ));
    }
    load_mapped(Arc::new(map), FILE_HEADER, len as usize, &name)
}

/// A frame read from the mapping.
struct Frame<'m> {
    kind: u32,
    rev: Revision,
    body: &'m [u8],
    /// Absolute offset of `body` in the mapping.
    body_at: usize,
}

struct Reader<'m> {
    map: &'m [u8],
    pos: usize,
    end: usize,
    name: &'m str,
}

impl<'m> Reader<'m> {
    fn err(&self, reason: impl std::fmt::Display) -> Error {
        snap_err(self.name, format!("at offset {}: {reason}", self.pos))
    }

    fn next(&mut self, want: u32) -> Result<Frame<'m>> {
        if self.end - self.pos < FRAME_HEADER {
            return Err(self.err("truncated: frame header past the end"));
        }
        let h = &self.map[self.pos..self.pos + FRAME_HEADER];
        let le32 = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes"));
        let (kind, len, crc) = (le32(&h[0..4]), le32(&h[4..8]) as usize, le32(&h[8..12]));
        if kind != want {
            return Err(self.err(format!("frame kind {kind}, expected {want}")));
        }
        let rev = Revision::from_bytes(&h[16..32]).expect("16 bytes");
        // Bytes no checksum covers must be exactly as written, so every
        // flipped bit in a payload is detected.
        if le32(&h[12..16]) != 0 || (kind != KIND_RECORD && rev != Revision::default()) {
            return Err(self.err("nonzero reserved frame header bytes"));
        }
        let body_at = self.pos + FRAME_HEADER;
        let padded = len.div_ceil(16) * 16;
        if self.end - body_at < padded {
            return Err(self.err(format!("truncated: frame body of {len} bytes past the end")));
        }
        let body = &self.map[body_at..body_at + len];
        let got = crc32fast::hash(body);
        if got != crc {
            return Err(self.err(format!(
                "frame crc32 mismatch: expected {crc:#010x}, found {got:#010x}"
            )));
        }
        if self.map[body_at + len..body_at + padded]
            .iter()
            .any(|b| *b != 0)
        {
            return Err(self.err("nonzero frame padding"));
        }
        self.pos = body_at + padded;
        Ok(Frame {
            kind,
            rev,
            body,
            body_at,
        })
    }
}

fn rev_of(a: &[rkyv::rend::i64_le; 2]) -> Revision {
    Revision::new(a[0].to_native(), a[1].to_native())
}

/// Load the payload at `offset..offset + len` of `map`.
pub(crate) fn load_mapped(map: Arc<Mmap>, offset: usize, len: usize, name: &str) -> Result<State> {
    if offset.checked_add(len).is_none_or(|e| e > map.len()) {
        return Err(snap_err(
            name,
            format!(
                "payload {offset}+{len} outside the {}-byte mapping",
                map.len()
            ),
        ));
    }
    // The mapping starts page-aligned, so offset alignment is address
    // alignment; records need 16.
    if !offset.is_multiple_of(16) || !(map.as_ptr() as usize + offset).is_multiple_of(16) {
        return Err(snap_err(
            name,
            format!("payload offset {offset} is not 16-byte aligned"),
        ));
    }
    let mut rd = Reader {
        map: &map[..],
        pos: offset,
        end: offset + len,
        name,
    };
    if len < 16 || &map[offset..offset + 8] != PAYLOAD_MAGIC {
        return Err(rd.err("bad payload magic"));
    }
    let version = u32::from_le_bytes(map[offset + 8..offset + 12].try_into().expect("4 bytes"));
    if version != VERSION || map[offset + 12..offset + 16] != [0; 4] {
        return Err(rd.err(format!("unsupported payload version {version}")));
    }
    rd.pos += 16;

    let f = rd.next(KIND_META)?;
    let meta = rkyv::access::<ArchivedMeta, rkyv::rancor::Error>(f.body)
        .map_err(|e| rd.err(format!("meta: {e}")))?;
    let key_count = meta.key_count.to_native();
    let record_count = meta.record_count.to_native();
    let remaining = (rd.end - rd.pos) as u64 / FRAME_HEADER as u64;
    if key_count.saturating_add(record_count) > remaining {
        return Err(rd.err(format!(
            "{key_count} keys and {record_count} records cannot fit in the payload"
        )));
    }

    let mut keys: Vec<(Key, Arc<KeyIndex>)> = Vec::with_capacity(key_count as usize);
    for _ in 0..key_count {
        let f = rd.next(KIND_KEY)?;
        let e = rkyv::access::<ArchivedKeyEntry<'static>, rkyv::rancor::Error>(f.body)
            .map_err(|e| rd.err(format!("key entry: {e}")))?;
        let generations: Vec<Generation> = e
            .generations
            .iter()
            .map(|g| Generation {
                ver: g.ver.to_native(),
                created: rev_of(&g.created),
                revs: g.revs.iter().map(rev_of).collect(),
            })
            .collect();
        let ok = !generations.is_empty()
            && generations
                .iter()
                .enumerate()
                .all(|(i, g)| !g.revs.is_empty() || i == generations.len() - 1)
            && generations
                .iter()
                .flat_map(|g| &g.revs)
                .is_sorted_by(|a, b| a < b);
        if !ok || e.key.is_empty() {
            return Err(rd.err("malformed key index entry"));
        }
        if keys.last().is_some_and(|(k, _)| **k >= e.key[..]) {
            return Err(rd.err("key entries out of order"));
        }
        let ki = KeyIndex {
            modified: rev_of(&e.modified),
            generations,
        };
        keys.push((Key::from(&e.key[..]), Arc::new(ki)));
    }

    let mut revs: Vec<(Revision, RecordBytes)> = Vec::with_capacity(record_count as usize);
    for _ in 0..record_count {
        let f = rd.next(KIND_RECORD)?;
        record::validate(f.body).map_err(|e| rd.err(format!("record {:?}: {e}", f.rev)))?;
        if revs.last().is_some_and(|(r, _)| *r >= f.rev) {
            return Err(rd.err("records out of revision order"));
        }
        revs.push((
            f.rev,
            RecordBytes::Mapped {
                map: map.clone(),
                offset: f.body_at,
                len: f.body.len() as u32,
            },
        ));
    }
    let end = rd.next(KIND_END)?;
    debug_assert_eq!(end.kind, KIND_END);
    if rd.pos != rd.end {
        return Err(rd.err(format!("{} bytes after the END frame", rd.end - rd.pos)));
    }

    let mut state = State {
        keys: BTree::from_sorted(keys),
        revs: BTree::from_sorted(revs),
        leases: BTree::from_sorted(
            meta.leases
                .iter()
                .map(|l| (l.0.to_native(), l.1.to_native())),
        ),
        lease_keys: BTree::new(),
        revision: meta.revision.to_native(),
        compact_revision: meta.compact_revision.to_native(),
        consistent_index: meta.consistent_index.to_native(),
        pending_compaction: None,
        record_bytes: 0,
        written_bytes: 0,
    };
    state.record_bytes = state.revs.iter().map(|(_, b)| b.bytes().len() as u64).sum();
    state.written_bytes = state.record_bytes;
    if state.leases.len() != meta.leases.len() {
        return Err(snap_err(name, "lease ids out of order"));
    }
    // Every revision the index names must have a record, or reads would
    // find nothing where the index promises a value.
    for (key, ki) in state.keys.iter() {
        for r in ki.generations.iter().flat_map(|g| &g.revs) {
            match state.revs.get(r) {
                Some(rec) if rec.archived().key[..] == key[..] => {}
                _ => {
                    return Err(snap_err(
                        name,
                        format!("key index names revision {r:?} without a matching record"),
                    ));
                }
            }
        }
    }
    let pending = meta.pending_compaction.to_native();
    if pending != 0 {
        state.pending_compaction = Some(PendingCompaction {
            revision: pending,
            done_through: None,
        });
    }
    state.rebuild_lease_keys();
    Ok(state)
}
