//! Snapshot files: `<snap dir>/<term:016x>-<index:016x>.snap`.
//!
//! ```text
//! 0        8        12       16        24        32             40        44         48      4096
//! +--------+--------+--------+---------+---------+--------------+---------+----------+-------+---------+
//! | magic  | version| 0      | term    | index   | payload len  | payload | header   | zeros | payload |
//! | FRCDSNAP| u32 LE |        | u64 LE  | u64 LE  | u64 LE       | crc u32 | crc u32  |       | ...     |
//! +--------+--------+--------+---------+---------+--------------+---------+----------+-------+---------+
//! ```
//!
//! The payload starts at byte 4096, page-aligned, so a reader can map the
//! file and hand the payload to a zero-copy decoder. The header crc covers
//! bytes 0..44; the payload crc (crc32, IEEE) covers the payload.
//!
//! Saving writes `<name>.tmp`, fsyncs it, renames it into place and fsyncs
//! the directory: a crash leaves either no snapshot or a whole one (plus
//! perhaps a `.tmp` that [`SnapStore::purge`] removes).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::fs::{File, Fs, create_dir_all_durable};

/// Offset of the payload in a snapshot file.
pub const PAYLOAD_OFFSET: u64 = 4096;
const MAGIC: &[u8; 8] = b"FRCDSNAP";
const VERSION: u32 = 1;
/// Write and read in chunks of this size (bounded memory for big payloads).
const CHUNK: usize = 1 << 20;

/// A verified snapshot file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFile {
    /// Where it is.
    pub path: PathBuf,
    /// Raft term of the last entry it covers.
    pub term: u64,
    /// Raft index of the last entry it covers.
    pub index: u64,
    /// Byte offset of the payload ([`PAYLOAD_OFFSET`]).
    pub payload_offset: u64,
    /// Payload length.
    pub payload_len: u64,
}

/// How long the parts of a [`SnapStore::save_timed`] took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaveTimes {
    /// Creating the file and streaming the payload into it.
    pub write: std::time::Duration,
    /// The file's `fdatasync`.
    pub fsync: std::time::Duration,
}

/// The snapshot directory.
#[derive(Debug)]
pub struct SnapStore<F: Fs> {
    fs: F,
    dir: PathBuf,
}

fn name(term: u64, index: u64) -> String {
    format!("{term:016x}-{index:016x}.snap")
}

fn parse(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".snap")?;
    let (t, i) = stem.split_once('-')?;
    let lower_hex = |x: &str| {
        x.len() == 16
            && x.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !lower_hex(t) || !lower_hex(i) {
        return None;
    }
    Some((
        u64::from_str_radix(t, 16).ok()?,
        u64::from_str_radix(i, 16).ok()?,
    ))
}

/// Streams the payload to the temp file, counting and checksumming.
struct PayloadWriter<'a, W: File> {
    file: &'a mut W,
    at: u64,
    buf: Vec<u8>,
    hasher: crc32fast::Hasher,
    len: u64,
}

impl<W: File> PayloadWriter<'_, W> {
    fn flush_buf(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.file.write_at(&self.buf, self.at)?;
            self.at += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }
}

impl<W: File> Write for PayloadWriter<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.hasher.update(data);
        self.len += data.len() as u64;
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush_buf()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_buf()
    }
}

fn header(term: u64, index: u64, len: u64, crc: u32) -> Vec<u8> {
    let mut h = vec![0u8; PAYLOAD_OFFSET as usize];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&term.to_le_bytes());
    h[24..32].copy_from_slice(&index.to_le_bytes());
    h[32..40].copy_from_slice(&len.to_le_bytes());
    h[40..44].copy_from_slice(&crc.to_le_bytes());
    let hc = crc32fast::hash(&h[0..44]);
    h[44..48].copy_from_slice(&hc.to_le_bytes());
    h
}

impl<F: Fs> SnapStore<F> {
    /// Open (durably creating) the snapshot directory.
    pub fn open(fs: F, dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        create_dir_all_durable(&fs, &dir)?;
        Ok(Self { fs, dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Write a snapshot whose payload `write` streams; atomic and durable
    /// when this returns.
    pub fn save_with(
        &self,
        term: u64,
        index: u64,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<SnapshotFile> {
        self.save_timed(term, index, write).map(|(f, _)| f)
    }

    /// [`SnapStore::save_with`], also saying how long the payload took to
    /// stream and the file to sync.
    pub fn save_timed(
        &self,
        term: u64,
        index: u64,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<(SnapshotFile, SaveTimes)> {
        let mut times = SaveTimes::default();
        let final_path = self.dir.join(name(term, index));
        let tmp = self.dir.join(format!("{}.tmp", name(term, index)));
        if self.fs.exists(&tmp) {
            self.fs.remove(&tmp)?;
        }
        let r = self.write_tmp(&tmp, term, index, write, &mut times);
        if r.is_err() {
            // A failed write (disk full, EIO) must not leave its partial
            // temp file taking the space a retry needs; a crash leaves it
            // behind, and the next save of the same snapshot replaces it.
            let _ = self.fs.remove(&tmp);
        }
        let len = r?;
        self.fs.rename(&tmp, &final_path)?;
        self.fs.sync_dir(&self.dir)?;
        Ok((
            SnapshotFile {
                path: final_path,
                term,
                index,
                payload_offset: PAYLOAD_OFFSET,
                payload_len: len,
            },
            times,
        ))
    }

    /// The temp file of [`SnapStore::save_with`], written and synced;
    /// returns the payload length.
    fn write_tmp(
        &self,
        tmp: &Path,
        term: u64,
        index: u64,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
        times: &mut SaveTimes,
    ) -> io::Result<u64> {
        let started = std::time::Instant::now();
        let mut file = self.fs.create(tmp)?;
        let mut w = PayloadWriter {
            file: &mut file,
            at: PAYLOAD_OFFSET,
            buf: Vec::with_capacity(CHUNK),
            hasher: crc32fast::Hasher::new(),
            len: 0,
        };
        write(&mut w)?;
        w.flush_buf()?;
        let (len, crc) = (w.len, w.hasher.clone().finalize());
        file.write_at(&header(term, index, len, crc), 0)?;
        times.write = started.elapsed();
        let synced = std::time::Instant::now();
        file.sync_data()?;
        times.fsync = synced.elapsed();
        Ok(len)
    }

    /// Every snapshot file name as (term, index), newest first.
    pub fn list(&self) -> io::Result<Vec<(u64, u64)>> {
        let mut v: Vec<(u64, u64)> = self
            .fs
            .list(&self.dir)?
            .iter()
            .filter_map(|n| parse(n))
            .collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        Ok(v)
    }

    /// Check one snapshot file: header, length and payload crc.
    pub fn verify(&self, term: u64, index: u64) -> io::Result<SnapshotFile> {
        let path = self.dir.join(name(term, index));
        let bad = |why: String| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {why}", path.display()),
            )
        };
        let mut f = self.fs.open(&path)?;
        let mut h = vec![0u8; PAYLOAD_OFFSET as usize];
        let n = f.read_at(&mut h, 0)?;
        if n < 48 {
            return Err(bad("shorter than its header".into()));
        }
        if &h[0..8] != MAGIC {
            return Err(bad("not a ferrocd snapshot (bad magic)".into()));
        }
        let stored_hc = u32::from_le_bytes([h[44], h[45], h[46], h[47]]);
        if crc32fast::hash(&h[0..44]) != stored_hc {
            return Err(bad("header crc mismatch".into()));
        }
        let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
        if version != VERSION {
            return Err(bad(format!("unknown format version {version}")));
        }
        let u64_at = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().expect("8 bytes"));
        let (t, i, len) = (u64_at(16), u64_at(24), u64_at(32));
        let crc = u32::from_le_bytes([h[40], h[41], h[42], h[43]]);
        if (t, i) != (term, index) {
            return Err(bad(format!("header says term {t} index {i}")));
        }
        let file_len = f.len()?;
        if file_len != PAYLOAD_OFFSET + len {
            return Err(bad(format!(
                "payload is {} bytes, header says {len}",
                file_len.saturating_sub(PAYLOAD_OFFSET)
            )));
        }
        let mut hasher = crc32fast::Hasher::new();
        let mut buf = vec![0u8; CHUNK];
        let mut at = PAYLOAD_OFFSET;
        while at < file_len {
            let want = ((file_len - at) as usize).min(CHUNK);
            let n = f.read_at(&mut buf[..want], at)?;
            if n == 0 {
                return Err(bad("short read".into()));
            }
            hasher.update(&buf[..n]);
            at += n as u64;
        }
        let found = hasher.finalize();
        if found != crc {
            return Err(bad(format!(
                "payload crc mismatch: expected {crc:#010x}, found {found:#010x}"
            )));
        }
        Ok(SnapshotFile {
            path,
            term,
            index,
            payload_offset: PAYLOAD_OFFSET,
            payload_len: len,
        })
    }

    /// The newest snapshot that verifies; corrupt ones are skipped with a
    /// warning (an older valid one plus the WAL still recovers the node).
    pub fn load_newest_valid(&self) -> io::Result<Option<SnapshotFile>> {
        for (term, index) in self.list()? {
            match self.verify(term, index) {
                Ok(s) => return Ok(Some(s)),
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    tracing::warn!(error = %e, "snapshot: skipping corrupt file");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Keep the newest `keep` snapshots (at least 1), remove older ones and
    /// leftover `.tmp` files; syncs the directory. Returns how many files
    /// were removed.
    pub fn purge(&self, keep: usize) -> io::Result<usize> {
        let mut removed = 0;
        for n in self.fs.list(&self.dir)? {
            if n.ends_with(".snap.tmp") {
                self.fs.remove(&self.dir.join(n))?;
                removed += 1;
            }
        }
        for (term, index) in self.list()?.into_iter().skip(keep.max(1)) {
            self.fs.remove(&self.dir.join(name(term, index)))?;
            removed += 1;
        }
        if removed > 0 {
            self.fs.sync_dir(&self.dir)?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::SimFs;

    #[test]
    fn save_verify_corrupt_purge_crash() {
        let fs = SimFs::new();
        let store = SnapStore::open(fs.clone(), "/data/member/snap").unwrap();
        let payload: Vec<u8> = (0..3_000_000u32).map(|i| i as u8).collect();
        let s1 = store.save_with(1, 10, |w| w.write_all(b"old")).unwrap();
        let s2 = store.save_with(2, 20, |w| w.write_all(&payload)).unwrap();
        assert_eq!(s2.payload_len, payload.len() as u64);
        assert_eq!(store.load_newest_valid().unwrap(), Some(s2.clone()));
        let mut data = fs.contents(&s2.path).unwrap();
        assert_eq!(&data[PAYLOAD_OFFSET as usize..], &payload[..]);

        // A flipped payload byte: skipped, the older one is used.
        data[PAYLOAD_OFFSET as usize + 12345] ^= 1;
        fs.set_contents(&s2.path, data).unwrap();
        assert_eq!(store.load_newest_valid().unwrap(), Some(s1.clone()));
        let e = store.verify(2, 20).unwrap_err();
        assert!(e.to_string().contains("payload crc mismatch"), "{e}");

        // Everything saved survives a crash (file and directory synced).
        let after = SnapStore::open(fs.crash(), "/data/member/snap").unwrap();
        assert_eq!(after.list().unwrap(), vec![(2, 20), (1, 10)]);
        assert_eq!(after.purge(1).unwrap(), 1);
        assert_eq!(after.list().unwrap(), vec![(2, 20)]);
    }
}
