//! The file layer the WAL sits on: a small filesystem trait so the same
//! log code runs on the real disk ([`UringFs`]: `pwrite` + `fdatasync` for
//! the durable append, io_uring for other writes) and on [`SimFs`], an in-memory filesystem that models exactly
//! what survives a power loss (unsynced data *and* unsynced directory
//! entries are lost) and injects I/O errors.
//!
//! `kill -9` never tests fsync (the page cache survives it); durability
//! tests use [`SimFs::crash`].

mod sim;
mod uring;

use std::io;
use std::path::{Path, PathBuf};

pub use sim::{Fault, SimFs};
pub use uring::UringFs;

/// A filesystem: the directory operations the WAL needs.
pub trait Fs: Send + 'static {
    /// The file type.
    type File: File;

    /// Create `path` (truncating nothing: it must not exist) for read+write.
    fn create(&self, path: &Path) -> io::Result<Self::File>;
    /// Open an existing file for read+write.
    fn open(&self, path: &Path) -> io::Result<Self::File>;
    /// Rename atomically (the new name is durable after [`Fs::sync_dir`]).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Remove a file (durable after [`Fs::sync_dir`]).
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// File names in a directory (not paths), in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Create one directory; `AlreadyExists` if it is there.
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// Whether a file or directory exists.
    fn exists(&self, path: &Path) -> bool;
    /// Make the directory's entries (creates, renames, removes) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// An open file.
pub trait File: Send + 'static {
    /// Write all of `buf` at `offset`.
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Make the file's data (and the metadata needed to read it) durable.
    fn sync_data(&mut self) -> io::Result<()>;
    /// Write all of `buf` at `offset`, then `sync_data`. Backends with a
    /// faster way for the pair override this.
    fn write_and_sync(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.write_at(buf, offset)?;
        self.sync_data()
    }
    /// Read up to `buf.len()` bytes at `offset`; returns how many (0 at end).
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Reserve space so the file is at least `len` bytes, zero-filled.
    fn allocate(&mut self, len: u64) -> io::Result<()>;
    /// Set the file's length (shrinking drops data, growing adds zeros).
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// The file's length.
    fn len(&mut self) -> io::Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&mut self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Read the whole file.
    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        let len = self.len()? as usize;
        let mut buf = vec![0u8; len];
        let mut done = 0;
        while done < len {
            let n = self.read_at(&mut buf[done..], done as u64)?;
            if n == 0 {
                buf.truncate(done);
                break;
            }
            done += n;
        }
        Ok(buf)
    }
}

/// Create `dir` and any missing parents, syncing each new directory and
/// its parent so the whole path is durable before anything in it is
/// relied on (etcd 3.4 skips the data dir's parent; a power loss right
/// after the first start then leaves no member).
pub fn create_dir_all_durable<F: Fs>(fs: &F, dir: &Path) -> io::Result<()> {
    let mut missing: Vec<PathBuf> = Vec::new();
    let mut p = Some(dir);
    while let Some(d) = p {
        if d.as_os_str().is_empty() || fs.exists(d) {
            break;
        }
        missing.push(d.to_path_buf());
        p = d.parent();
    }
    for d in missing.iter().rev() {
        match fs.create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        fs.sync_dir(d)?;
        fs.sync_dir(parent_of(d))?;
    }
    Ok(())
}

/// The directory holding `path` (`.` for a bare name).
pub(crate) fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
