//! An in-memory filesystem that models durability exactly, for crash and
//! fault tests.
//!
//! Every file (inode) has *durable* contents and *current* contents;
//! [`File::sync_data`] copies current to durable. Every directory has
//! durable and current entries; creates, renames and removes change the
//! current entries, and [`Fs::sync_dir`] makes them durable. [`SimFs::crash`]
//! returns the filesystem a power loss leaves: durable entries pointing at
//! durable contents, nothing else.
//!
//! Faults: [`SimFs::inject`] makes the next write or sync fail with an
//! errno (EIO, ENOSPC), once. [`SimFs::fill_after`] models a disk that
//! fills up: after that many more bytes, writes fail with ENOSPC (the
//! write that crosses the line stores its first whole pages, as a short
//! buffered write on Linux does) until [`SimFs::free_space`].

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{File, Fs, parent_of};

/// A fault to inject once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The next `write_at` fails with this errno and writes nothing.
    Write(i32),
    /// The next `sync_data` fails with this errno; nothing becomes durable.
    Sync(i32),
}

#[derive(Debug, Default, Clone)]
struct Inode {
    durable: Vec<u8>,
    current: Vec<u8>,
}

#[derive(Debug, Default, Clone)]
struct Dir {
    /// name → inode id (files) or `None` (subdirectory).
    durable: BTreeMap<String, Option<u64>>,
    current: BTreeMap<String, Option<u64>>,
}

#[derive(Debug, Default)]
struct State {
    inodes: HashMap<u64, Inode>,
    dirs: HashMap<PathBuf, Dir>,
    next_inode: u64,
    faults: Vec<Fault>,
    /// Bytes that may still be written or allocated (`None`: no limit).
    space_left: Option<u64>,
}

impl State {
    /// Take up to `want` bytes of space: how many fit (all when there is
    /// no limit).
    fn take_space(&mut self, want: u64) -> u64 {
        match &mut self.space_left {
            None => want,
            Some(left) => {
                let got = want.min(*left);
                *left -= got;
                got
            }
        }
    }
}

/// The page size of a short write (see `SimFile::write_at`).
const PAGE: usize = 4096;

fn enospc() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOSPC)
}

/// The simulated filesystem; clones share state. The root directory `/`
/// always exists.
#[derive(Debug, Clone)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

impl Default for SimFs {
    fn default() -> Self {
        Self::new()
    }
}

fn split(path: &Path) -> io::Result<(PathBuf, String)> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad path"))?;
    Ok((parent_of(path).to_path_buf(), name.to_string()))
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: not found", path.display()),
    )
}

impl SimFs {
    /// An empty filesystem with `/` (and `.`).
    pub fn new() -> Self {
        let mut st = State::default();
        st.dirs.insert(PathBuf::from("/"), Dir::default());
        st.dirs.insert(PathBuf::from("."), Dir::default());
        Self {
            state: Arc::new(Mutex::new(st)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The filesystem a power loss leaves now: only durable directory
    /// entries, each file with only its durable contents. Directories whose
    /// own entry in the parent is not durable vanish with their contents.
    pub fn crash(&self) -> SimFs {
        let st = self.lock();
        let mut out = State {
            next_inode: st.next_inode,
            ..State::default()
        };
        // Keep a directory only if every ancestor entry is durable.
        for (path, dir) in &st.dirs {
            let reachable = {
                let mut ok = true;
                let mut p = path.as_path();
                while let Some(parent) = p.parent() {
                    if parent.as_os_str().is_empty() {
                        break;
                    }
                    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    let durable = st
                        .dirs
                        .get(parent)
                        .is_some_and(|d| d.durable.get(name) == Some(&None));
                    if !durable {
                        ok = false;
                        break;
                    }
                    p = parent;
                }
                ok || path == Path::new("/") || path == Path::new(".")
            };
            if !reachable {
                continue;
            }
            out.dirs.insert(
                path.clone(),
                Dir {
                    durable: dir.durable.clone(),
                    current: dir.durable.clone(),
                },
            );
            for id in dir.durable.values().flatten() {
                let data = st
                    .inodes
                    .get(id)
                    .map(|i| i.durable.clone())
                    .unwrap_or_default();
                out.inodes.insert(
                    *id,
                    Inode {
                        durable: data.clone(),
                        current: data,
                    },
                );
            }
        }
        SimFs {
            state: Arc::new(Mutex::new(out)),
        }
    }

    /// The disk fills up after `bytes` more bytes written or allocated:
    /// from then on writes and allocations fail with ENOSPC (the one that
    /// crosses the line writes what fits first). Space never returns by
    /// itself (removing files does not free it); see
    /// [`SimFs::free_space`].
    pub fn fill_after(&self, bytes: u64) {
        self.lock().space_left = Some(bytes);
    }

    /// Space is back: no limit on writes any more.
    pub fn free_space(&self) {
        self.lock().space_left = None;
    }

    /// Fail the next matching operation once.
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    /// Current contents of a file (for tests that corrupt or inspect it).
    pub fn contents(&self, path: &Path) -> io::Result<Vec<u8>> {
        let st = self.lock();
        let id = lookup(&st, path)?;
        Ok(st.inodes[&id].current.clone())
    }

    /// Replace a file's contents, durably (a test's "the disk now holds
    /// this": torn writes, bit flips).
    pub fn set_contents(&self, path: &Path, data: Vec<u8>) -> io::Result<()> {
        let mut st = self.lock();
        let id = lookup(&st, path)?;
        let ino = st.inodes.get_mut(&id).expect("inode");
        ino.current = data.clone();
        ino.durable = data;
        Ok(())
    }
}

fn lookup(st: &State, path: &Path) -> io::Result<u64> {
    let (dir, name) = split(path)?;
    st.dirs
        .get(&dir)
        .and_then(|d| d.current.get(&name).copied().flatten())
        .ok_or_else(|| not_found(path))
}

fn take_fault(st: &mut State, write: bool) -> Option<i32> {
    let pos = st.faults.iter().position(|f| {
        matches!(
            (f, write),
            (Fault::Write(_), true) | (Fault::Sync(_), false)
        )
    })?;
    match st.faults.remove(pos) {
        Fault::Write(e) | Fault::Sync(e) => Some(e),
    }
}

impl Fs for SimFs {
    type File = SimFile;

    fn create(&self, path: &Path) -> io::Result<SimFile> {
        let mut st = self.lock();
        let (dir, name) = split(path)?;
        let id = st.next_inode;
        let d = st.dirs.get_mut(&dir).ok_or_else(|| not_found(&dir))?;
        if d.current.contains_key(&name) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: exists", path.display()),
            ));
        }
        d.current.insert(name, Some(id));
        st.next_inode += 1;
        st.inodes.insert(id, Inode::default());
        Ok(SimFile {
            fs: self.clone(),
            id,
        })
    }

    fn open(&self, path: &Path) -> io::Result<SimFile> {
        let st = self.lock();
        let id = lookup(&st, path)?;
        Ok(SimFile {
            fs: self.clone(),
            id,
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.lock();
        let (fd, fname) = split(from)?;
        let (td, tname) = split(to)?;
        let id = st
            .dirs
            .get_mut(&fd)
            .and_then(|d| d.current.remove(&fname))
            .ok_or_else(|| not_found(from))?;
        st.dirs
            .get_mut(&td)
            .ok_or_else(|| not_found(&td))?
            .current
            .insert(tname, id);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        let (dir, name) = split(path)?;
        st.dirs
            .get_mut(&dir)
            .and_then(|d| d.current.remove(&name))
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = self.lock();
        let d = st.dirs.get(dir).ok_or_else(|| not_found(dir))?;
        Ok(d.current
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| k.clone())
            .collect())
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        let (parent, name) = split(path)?;
        let p = st.dirs.get_mut(&parent).ok_or_else(|| not_found(&parent))?;
        if p.current.contains_key(&name) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "exists"));
        }
        p.current.insert(name, None);
        st.dirs.insert(path.to_path_buf(), Dir::default());
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let st = self.lock();
        if st.dirs.contains_key(path) {
            return true;
        }
        split(path).is_ok_and(|(dir, name)| {
            st.dirs
                .get(&dir)
                .is_some_and(|d| d.current.contains_key(&name))
        })
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        let d = st.dirs.get_mut(dir).ok_or_else(|| not_found(dir))?;
        d.durable = d.current.clone();
        Ok(())
    }
}

/// A file of [`SimFs`].
#[derive(Debug)]
pub struct SimFile {
    fs: SimFs,
    id: u64,
}

impl File for SimFile {
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut st = self.fs.lock();
        if let Some(errno) = take_fault(&mut st, true) {
            return Err(io::Error::from_raw_os_error(errno));
        }
        let fits = st.take_space(buf.len() as u64) as usize;
        // A short write stops at a page boundary of the file: the kernel
        // copies a buffered write into the page cache page by page and the
        // filesystem reserves space per page, so the first bytes that
        // land are whole 4 KiB pages (none when the first page does not
        // fit). Recovery's torn-write rule relies on it (`recovery`).
        let stored = if fits == buf.len() {
            fits
        } else {
            ((offset as usize + fits) / PAGE * PAGE).saturating_sub(offset as usize)
        };
        let data = &mut st.inodes.get_mut(&self.id).expect("inode").current;
        let end = offset as usize + stored;
        if data.len() < end {
            data.resize(end, 0);
        }
        data[offset as usize..end].copy_from_slice(&buf[..stored]);
        if fits < buf.len() {
            return Err(enospc());
        }
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut st = self.fs.lock();
        if let Some(errno) = take_fault(&mut st, false) {
            return Err(io::Error::from_raw_os_error(errno));
        }
        let ino = st.inodes.get_mut(&self.id).expect("inode");
        ino.durable = ino.current.clone();
        Ok(())
    }

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let st = self.fs.lock();
        let data = &st.inodes[&self.id].current;
        let start = (offset as usize).min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn allocate(&mut self, len: u64) -> io::Result<()> {
        let mut st = self.fs.lock();
        let have = st.inodes[&self.id].current.len() as u64;
        if have < len {
            // fallocate is all or nothing.
            let want = len - have;
            if st.space_left.is_some_and(|left| left < want) {
                return Err(enospc());
            }
            st.take_space(want);
            let data = &mut st.inodes.get_mut(&self.id).expect("inode").current;
            data.resize(len as usize, 0);
        }
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let mut st = self.fs.lock();
        st.inodes
            .get_mut(&self.id)
            .expect("inode")
            .current
            .resize(len as usize, 0);
        Ok(())
    }

    fn len(&mut self) -> io::Result<u64> {
        Ok(self.fs.lock().inodes[&self.id].current.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_data_and_entries_are_lost() {
        let fs = SimFs::new();
        fs.create_dir(Path::new("/d")).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        let mut a = fs.create(Path::new("/d/a")).unwrap();
        a.write_at(b"hello", 0).unwrap();
        a.sync_data().unwrap();
        // data synced, entry not: the file is gone after a crash
        assert!(!fs.crash().exists(Path::new("/d/a")));
        fs.sync_dir(Path::new("/d")).unwrap();
        a.write_at(b" world", 5).unwrap();
        let after = fs.crash();
        assert_eq!(after.contents(Path::new("/d/a")).unwrap(), b"hello");
        // renames need a dir sync too
        fs.rename(Path::new("/d/a"), Path::new("/d/b")).unwrap();
        let after = fs.crash();
        assert!(after.exists(Path::new("/d/a")) && !after.exists(Path::new("/d/b")));
    }

    #[test]
    fn unsynced_directory_vanishes() {
        let fs = SimFs::new();
        fs.create_dir(Path::new("/d")).unwrap();
        let mut f = fs.create(Path::new("/d/a")).unwrap();
        f.write_at(b"x", 0).unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(Path::new("/d")).unwrap();
        assert!(
            !fs.crash().exists(Path::new("/d/a")),
            "parent entry of /d not durable"
        );
    }

    #[test]
    fn faults_fire_once() {
        let fs = SimFs::new();
        let mut f = fs.create(Path::new("/a")).unwrap();
        fs.inject(Fault::Sync(libc::EIO));
        f.write_at(b"x", 0).unwrap();
        assert_eq!(f.sync_data().unwrap_err().raw_os_error(), Some(libc::EIO));
        f.sync_data().unwrap();
        fs.inject(Fault::Write(libc::ENOSPC));
        assert_eq!(
            f.write_at(b"y", 1).unwrap_err().raw_os_error(),
            Some(libc::ENOSPC)
        );
    }

    #[test]
    fn a_full_disk_writes_what_fits_then_refuses() {
        let fs = SimFs::new();
        let mut f = fs.create(Path::new("/a")).unwrap();
        fs.fill_after(PAGE as u64 + 5);
        f.write_at(b"abc", 0).unwrap();
        // Crosses the line: only its whole first page lands, [3, 4096).
        let e = f.write_at(&[7u8; PAGE + 100], 3).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        let got = fs.contents(Path::new("/a")).unwrap();
        assert_eq!(got.len(), PAGE);
        assert_eq!(
            (&got[..3], got[3..].iter().all(|b| *b == 7)),
            (&b"abc"[..], true)
        );
        assert_eq!(
            f.write_at(b"x", 0).unwrap_err().raw_os_error(),
            Some(libc::ENOSPC)
        );
        assert_eq!(
            f.allocate(2 * PAGE as u64).unwrap_err().raw_os_error(),
            Some(libc::ENOSPC)
        );
        // Reads and syncs still work; space comes back when freed.
        f.sync_data().unwrap();
        fs.free_space();
        f.write_at(b"x", 0).unwrap();
        f.allocate(2 * PAGE as u64).unwrap();
        assert_eq!(fs.contents(Path::new("/a")).unwrap().len(), 2 * PAGE);
    }
}
