//! The file system's state, with no FUSE in it: inodes, what is durable,
//! and the cut that throws away everything that is not.
//!
//! What survives a cut is what Linux promises across a power cut:
//! - a file's bytes and size as of its last `fsync`/`fdatasync`. Each
//!   file keeps an undo log since that sync: `(offset, old bytes)` for
//!   every write or shrink that touched bytes below the synced size, plus
//!   the synced size itself. A sync drops the log (no copy of the file);
//!   a cut replays it backwards and sets the size back. Bytes at or past
//!   the synced size are never logged: the cut truncates them anyway.
//! - a directory's entries as of its last `fsyncdir`. The first change
//!   after a sync copies the entry map (directories here hold tens of
//!   names); `fsyncdir` drops the copy, a cut restores it. A rename changes
//!   two directories and is undone in each that was not synced.
//!
//! After a cut, inodes no longer reachable from the root are gone (a file
//! created and fsynced in a directory that never was), open handles are
//! stale (their I/O fails with EIO), and inode numbers are never reused,
//! so the kernel cannot mistake a dropped inode for a new one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::time::SystemTime;

use fuser::{Errno, FileAttr, FileType, INodeNo};

use super::data::Data;

/// The root directory's inode number (FUSE's fixed value).
pub(crate) const ROOT: u64 = 1;

/// `fallocate` modes handled: 0 (allocate and extend) and
/// `FALLOC_FL_KEEP_SIZE`. Punching holes, zero/collapse/insert ranges are
/// refused with EOPNOTSUPP (ferrocd uses none of them).
const FALLOC_KEEP_SIZE: i32 = libc::FALLOC_FL_KEEP_SIZE;

/// Size `statfs` reports: 1 TiB, of which what is stored is used. ferrocd
/// checks free space before it preallocates; a plausible large number
/// keeps that check out of the way, as a big real disk would.
const REPORTED_BYTES: u64 = 1 << 40;
/// Block size `statfs` and `stat` report.
const BLOCK: u64 = 4096;

/// The owner and times of an inode.
#[derive(Debug, Clone, Copy)]
struct Meta {
    perm: u16,
    uid: u32,
    gid: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
}

impl Meta {
    fn new(mode: u32, uid: u32, gid: u32) -> Self {
        let now = SystemTime::now();
        Self {
            perm: (mode & 0o7777) as u16,
            uid,
            gid,
            atime: now,
            mtime: now,
            ctime: now,
        }
    }

    fn touch(&mut self) {
        let now = SystemTime::now();
        self.mtime = now;
        self.ctime = now;
    }
}

/// One write's worth of bytes to put back on a cut.
#[derive(Debug)]
struct Undo {
    off: u64,
    old: Vec<u8>,
}

#[derive(Debug)]
struct FileNode {
    data: Data,
    /// The size at the last sync (0 for a file never synced).
    synced_len: u64,
    /// Changes below `synced_len` since the last sync, oldest first.
    undo: Vec<Undo>,
    /// Bytes written, zero-extended or cut off (below the synced size)
    /// since the last sync: what a cut reverts.
    unsynced_bytes: u64,
    /// Current directory entries naming this file.
    nlink: u32,
    meta: Meta,
}

impl FileNode {
    /// Log the bytes in `[from, to)` that a change is about to overwrite,
    /// as far as they lie below both the current and the synced size.
    fn save(&mut self, from: u64, to: u64) {
        let end = to.min(self.data.len()).min(self.synced_len);
        if from < end {
            let mut old = vec![0u8; (end - from) as usize];
            self.data.read(from, &mut old);
            self.undo.push(Undo { off: from, old });
        }
    }

    fn write(&mut self, off: u64, buf: &[u8]) {
        self.save(off, off + buf.len() as u64);
        self.data.write(off, buf);
        self.unsynced_bytes += buf.len() as u64;
        self.meta.touch();
    }

    fn set_len(&mut self, len: u64) {
        let cur = self.data.len();
        if len < cur {
            self.save(len, cur);
            self.unsynced_bytes += cur.min(self.synced_len).saturating_sub(len);
        } else {
            self.unsynced_bytes += len - cur;
        }
        self.data.set_len(len);
        self.meta.touch();
    }

    fn sync(&mut self) {
        self.undo.clear();
        self.synced_len = self.data.len();
        self.unsynced_bytes = 0;
    }

    /// Put back the synced state; returns the bytes that were unsynced.
    fn revert(&mut self) -> u64 {
        let dropped = self.unsynced_bytes;
        for u in self.undo.drain(..).rev() {
            self.data.write(u.off, &u.old);
        }
        self.data.set_len(self.synced_len);
        self.unsynced_bytes = 0;
        dropped
    }
}

type Entries = BTreeMap<OsString, u64>;

#[derive(Debug)]
struct DirNode {
    entries: Entries,
    /// The entries at the last `fsyncdir`, kept only while they differ.
    synced: Option<Entries>,
    meta: Meta,
}

impl DirNode {
    /// Call before changing `entries`: keeps the synced map on first change.
    fn will_change(&mut self) {
        if self.synced.is_none() {
            self.synced = Some(self.entries.clone());
        }
    }

    /// Names whose target differs between the current and synced maps.
    fn unsynced_entries(&self) -> u64 {
        let Some(s) = &self.synced else { return 0 };
        let changed = self
            .entries
            .iter()
            .filter(|(k, v)| s.get(*k) != Some(v))
            .count();
        let gone = s.keys().filter(|k| !self.entries.contains_key(*k)).count();
        (changed + gone) as u64
    }
}

#[derive(Debug)]
enum Node {
    File(FileNode),
    Dir(DirNode),
}

impl Node {
    fn meta(&self) -> &Meta {
        match self {
            Node::File(f) => &f.meta,
            Node::Dir(d) => &d.meta,
        }
    }

    fn meta_mut(&mut self) -> &mut Meta {
        match self {
            Node::File(f) => &mut f.meta,
            Node::Dir(d) => &mut d.meta,
        }
    }

    fn kind(&self) -> FileType {
        match self {
            Node::File(_) => FileType::RegularFile,
            Node::Dir(_) => FileType::Directory,
        }
    }
}

/// What a cut threw away.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CutReport {
    /// Unsynced bytes reverted, plus the synced bytes of files that were
    /// dropped because no synced directory entry named them.
    pub bytes: u64,
    /// Directory entries put back to their synced state (a name added,
    /// removed or pointed elsewhere counts once).
    pub entries: u64,
    /// Handles that were open at the cut; they are now stale.
    pub open_handles: u64,
    /// Every inode still there, for the kernel's cache to forget.
    pub inodes: Vec<u64>,
}

/// A summary for the control socket's `stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Regular files held (linked or not).
    pub files: u64,
    /// Directories, the root included.
    pub dirs: u64,
    /// Sum of file sizes.
    pub bytes: u64,
    /// Memory held by file contents.
    pub allocated: u64,
    /// Bytes a cut would revert (not counting dropped files).
    pub unsynced_bytes: u64,
    /// Bytes kept in undo logs.
    pub undo_bytes: u64,
    /// Directory entries a cut would revert.
    pub unsynced_entries: u64,
    /// Open file and directory handles.
    pub open_handles: u64,
    /// Cuts so far.
    pub cuts: u64,
}

/// The whole file system.
#[derive(Debug)]
pub struct Model {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    /// Open handles: fh → inode. Cleared by a cut; an fh not here is stale.
    handles: HashMap<u64, u64>,
    next_fh: u64,
    cuts: u64,
}

impl Default for Model {
    fn default() -> Self {
        Self::new()
    }
}

type Res<T> = Result<T, Errno>;

impl Model {
    /// An empty file system: the root directory, synced, mode 0755.
    pub fn new() -> Self {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node::Dir(DirNode {
                entries: Entries::new(),
                synced: None,
                meta: Meta::new(0o755, 0, 0),
            }),
        );
        Self {
            nodes,
            next_ino: ROOT + 1,
            handles: HashMap::new(),
            next_fh: 1,
            cuts: 0,
        }
    }

    fn node(&self, ino: u64) -> Res<&Node> {
        self.nodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> Res<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    fn dir(&self, ino: u64) -> Res<&DirNode> {
        match self.node(ino)? {
            Node::Dir(d) => Ok(d),
            Node::File(_) => Err(Errno::ENOTDIR),
        }
    }

    fn dir_mut(&mut self, ino: u64) -> Res<&mut DirNode> {
        match self.node_mut(ino)? {
            Node::Dir(d) => Ok(d),
            Node::File(_) => Err(Errno::ENOTDIR),
        }
    }

    fn file_mut(&mut self, ino: u64) -> Res<&mut FileNode> {
        match self.node_mut(ino)? {
            Node::File(f) => Ok(f),
            Node::Dir(_) => Err(Errno::EISDIR),
        }
    }

    /// The handle must be open (not stale) and on `ino`.
    fn check_handle(&self, fh: u64, ino: u64) -> Res<()> {
        match self.handles.get(&fh) {
            Some(&i) if i == ino => Ok(()),
            _ => Err(Errno::EIO),
        }
    }

    /// The attributes the kernel sees.
    pub fn attr(&self, ino: u64) -> Res<FileAttr> {
        let n = self.node(ino)?;
        let m = n.meta();
        let (size, blocks, nlink) = match n {
            Node::File(f) => (f.data.len(), f.data.allocated() / 512, f.nlink),
            Node::Dir(d) => (BLOCK, BLOCK / 512, 2 + self.subdirs(d)),
        };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks,
            atime: m.atime,
            mtime: m.mtime,
            ctime: m.ctime,
            crtime: m.ctime,
            kind: n.kind(),
            perm: m.perm,
            nlink,
            uid: m.uid,
            gid: m.gid,
            rdev: 0,
            blksize: BLOCK as u32,
            flags: 0,
        })
    }

    fn subdirs(&self, d: &DirNode) -> u32 {
        d.entries
            .values()
            .filter(|i| matches!(self.nodes.get(i), Some(Node::Dir(_))))
            .count() as u32
    }

    /// Find `name` in directory `parent`.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Res<FileAttr> {
        let ino = *self.dir(parent)?.entries.get(name).ok_or(Errno::ENOENT)?;
        self.attr(ino)
    }

    fn check_name(name: &OsStr) -> Res<()> {
        if name.is_empty() || name == "." || name == ".." {
            return Err(Errno::EINVAL);
        }
        if name.len() > 255 {
            return Err(Errno::ENAMETOOLONG);
        }
        Ok(())
    }

    fn add_node(&mut self, parent: u64, name: &OsStr, node: Node) -> Res<FileAttr> {
        Self::check_name(name)?;
        let d = self.dir_mut(parent)?;
        if d.entries.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let d = self.dir_mut(parent)?;
        d.will_change();
        d.entries.insert(name.to_owned(), ino);
        d.meta.touch();
        self.nodes.insert(ino, node);
        self.attr(ino)
    }

    /// Create an empty regular file (never synced: a cut drops it unless
    /// `parent` is fsynced after this).
    pub fn create(
        &mut self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Res<FileAttr> {
        self.add_node(
            parent,
            name,
            Node::File(FileNode {
                data: Data::default(),
                synced_len: 0,
                undo: Vec::new(),
                unsynced_bytes: 0,
                nlink: 1,
                meta: Meta::new(mode, uid, gid),
            }),
        )
    }

    /// Create an empty directory; its own (empty) entry list counts as
    /// synced, its name in `parent` does not until `parent` is fsynced.
    pub fn mkdir(
        &mut self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Res<FileAttr> {
        self.add_node(
            parent,
            name,
            Node::Dir(DirNode {
                entries: Entries::new(),
                synced: None,
                meta: Meta::new(mode, uid, gid),
            }),
        )
    }

    /// Remove a file's name.
    pub fn unlink(&mut self, parent: u64, name: &OsStr) -> Res<()> {
        let ino = *self.dir(parent)?.entries.get(name).ok_or(Errno::ENOENT)?;
        let f = self.file_mut(ino)?;
        f.nlink -= 1;
        f.meta.ctime = SystemTime::now();
        let d = self.dir_mut(parent)?;
        d.will_change();
        d.entries.remove(name);
        d.meta.touch();
        self.gc();
        Ok(())
    }

    /// Remove an empty directory.
    pub fn rmdir(&mut self, parent: u64, name: &OsStr) -> Res<()> {
        if name == "." {
            return Err(Errno::EINVAL);
        }
        let ino = *self.dir(parent)?.entries.get(name).ok_or(Errno::ENOENT)?;
        if !self.dir(ino)?.entries.is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        let d = self.dir_mut(parent)?;
        d.will_change();
        d.entries.remove(name);
        d.meta.touch();
        self.gc();
        Ok(())
    }

    /// Whether `anc` is `ino` or one of its ancestors (directories only).
    fn contains(&self, anc: u64, ino: u64) -> bool {
        if anc == ino {
            return true;
        }
        let Ok(d) = self.dir(anc) else { return false };
        d.entries.values().any(|&c| self.contains(c, ino))
    }

    /// Rename, replacing a target of the same kind (an empty directory or
    /// a file) as POSIX does. `noreplace`: fail with EEXIST instead.
    pub fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        noreplace: bool,
    ) -> Res<()> {
        Self::check_name(newname)?;
        let src = *self.dir(parent)?.entries.get(name).ok_or(Errno::ENOENT)?;
        let target = self.dir(newparent)?.entries.get(newname).copied();
        if target == Some(src) {
            return Ok(());
        }
        let src_is_dir = matches!(self.node(src)?, Node::Dir(_));
        if src_is_dir && self.contains(src, newparent) {
            return Err(Errno::EINVAL);
        }
        if let Some(t) = target {
            if noreplace {
                return Err(Errno::EEXIST);
            }
            match (self.node(t)?, src_is_dir) {
                (Node::Dir(_), false) => return Err(Errno::EISDIR),
                (Node::File(_), true) => return Err(Errno::ENOTDIR),
                (Node::Dir(d), true) if !d.entries.is_empty() => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
            if let Node::File(f) = self.node_mut(t)? {
                f.nlink -= 1;
            }
        }
        let d = self.dir_mut(parent)?;
        d.will_change();
        d.entries.remove(name);
        d.meta.touch();
        let nd = self.dir_mut(newparent)?;
        nd.will_change();
        nd.entries.insert(newname.to_owned(), src);
        nd.meta.touch();
        self.node_mut(src)?.meta_mut().ctime = SystemTime::now();
        self.gc();
        Ok(())
    }

    /// A second name for a file.
    pub fn link(&mut self, ino: u64, newparent: u64, newname: &OsStr) -> Res<FileAttr> {
        Self::check_name(newname)?;
        if matches!(self.node(ino)?, Node::Dir(_)) {
            return Err(Errno::EPERM);
        }
        let nd = self.dir_mut(newparent)?;
        if nd.entries.contains_key(newname) {
            return Err(Errno::EEXIST);
        }
        nd.will_change();
        nd.entries.insert(newname.to_owned(), ino);
        nd.meta.touch();
        let f = self.file_mut(ino)?;
        f.nlink += 1;
        f.meta.ctime = SystemTime::now();
        self.attr(ino)
    }

    /// Change mode, owner, size or times. `fh`, when given (ftruncate),
    /// must not be stale.
    #[allow(clippy::too_many_arguments)]
    pub fn setattr(
        &mut self,
        ino: u64,
        fh: Option<u64>,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<SystemTime>,
        mtime: Option<SystemTime>,
    ) -> Res<FileAttr> {
        if let Some(fh) = fh {
            self.check_handle(fh, ino)?;
        }
        if let Some(len) = size {
            self.file_mut(ino)?.set_len(len);
        }
        let m = self.node_mut(ino)?.meta_mut();
        if let Some(mode) = mode {
            m.perm = (mode & 0o7777) as u16;
        }
        if let Some(uid) = uid {
            m.uid = uid;
        }
        if let Some(gid) = gid {
            m.gid = gid;
        }
        if let Some(t) = atime {
            m.atime = t;
        }
        if let Some(t) = mtime {
            m.mtime = t;
        }
        m.ctime = SystemTime::now();
        self.attr(ino)
    }

    /// Open a file (`dir == false`) or a directory; returns the handle.
    pub fn open(&mut self, ino: u64, dir: bool) -> Res<u64> {
        match (self.node(ino)?, dir) {
            (Node::Dir(_), false) => return Err(Errno::EISDIR),
            (Node::File(_), true) => return Err(Errno::ENOTDIR),
            _ => {}
        }
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, ino);
        Ok(fh)
    }

    /// Close a handle; a stale one closes without error.
    pub fn release(&mut self, fh: u64) {
        if self.handles.remove(&fh).is_some() {
            self.gc();
        }
    }

    /// Read up to `size` bytes at `off`.
    pub fn read(&self, fh: u64, ino: u64, off: u64, size: u32) -> Res<Vec<u8>> {
        self.check_handle(fh, ino)?;
        let Node::File(f) = self.node(ino)? else {
            return Err(Errno::EISDIR);
        };
        let mut buf = vec![0u8; (size as u64).min(f.data.len().saturating_sub(off)) as usize];
        let n = f.data.read(off, &mut buf);
        buf.truncate(n);
        Ok(buf)
    }

    /// Write `buf` at `off`; returns the bytes written (all of them).
    pub fn write(&mut self, fh: u64, ino: u64, off: u64, buf: &[u8]) -> Res<u32> {
        self.check_handle(fh, ino)?;
        off.checked_add(buf.len() as u64)
            .filter(|&e| e <= i64::MAX as u64)
            .ok_or(Errno::EFBIG)?;
        self.file_mut(ino)?.write(off, buf);
        Ok(buf.len() as u32)
    }

    /// `fallocate`: mode 0 extends the size to `off + len` (zeros, no
    /// memory), `FALLOC_FL_KEEP_SIZE` changes nothing visible.
    pub fn fallocate(&mut self, fh: u64, ino: u64, off: u64, len: u64, mode: i32) -> Res<()> {
        self.check_handle(fh, ino)?;
        if mode & !FALLOC_KEEP_SIZE != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        let end = off
            .checked_add(len)
            .filter(|&e| e <= i64::MAX as u64)
            .ok_or(Errno::EFBIG)?;
        let f = self.file_mut(ino)?;
        if mode & FALLOC_KEEP_SIZE == 0 && end > f.data.len() {
            f.set_len(end);
        }
        Ok(())
    }

    /// `fsync`/`fdatasync` of a file: its bytes and size become durable.
    pub fn fsync(&mut self, fh: u64, ino: u64) -> Res<()> {
        self.check_handle(fh, ino)?;
        self.file_mut(ino)?.sync();
        Ok(())
    }

    /// `fsync` of a directory: its entries become durable.
    pub fn fsyncdir(&mut self, fh: u64, ino: u64) -> Res<()> {
        self.check_handle(fh, ino)?;
        self.dir_mut(ino)?.synced = None;
        self.gc();
        Ok(())
    }

    /// A directory's entries with `.` and `..`, in name order.
    pub fn readdir(&self, fh: u64, ino: u64) -> Res<Vec<(u64, FileType, OsString)>> {
        self.check_handle(fh, ino)?;
        let d = self.dir(ino)?;
        let mut out = vec![
            (ino, FileType::Directory, OsString::from(".")),
            // The parent is not tracked; the kernel answers `..` itself.
            (ino, FileType::Directory, OsString::from("..")),
        ];
        for (name, &i) in &d.entries {
            if let Ok(n) = self.node(i) {
                out.push((i, n.kind(), name.clone()));
            }
        }
        Ok(out)
    }

    /// `(blocks, free blocks, files, free files, block size)` for statfs.
    pub fn statfs(&self) -> (u64, u64, u64, u64, u32) {
        let used: u64 = self
            .nodes
            .values()
            .map(|n| match n {
                Node::File(f) => f.data.len().div_ceil(BLOCK),
                Node::Dir(_) => 1,
            })
            .sum();
        let total = REPORTED_BYTES / BLOCK;
        let files = 1 << 20;
        (
            total,
            total.saturating_sub(used),
            files,
            files.saturating_sub(self.nodes.len() as u64),
            BLOCK as u32,
        )
    }

    /// Make everything durable (for setting up a run).
    pub fn sync_all(&mut self) {
        for n in self.nodes.values_mut() {
            match n {
                Node::File(f) => f.sync(),
                Node::Dir(d) => d.synced = None,
            }
        }
        self.gc();
    }

    /// Drop everything not durable, as a power cut would.
    pub fn cut(&mut self) -> CutReport {
        self.cuts += 1;
        let mut r = CutReport {
            open_handles: self.handles.len() as u64,
            ..CutReport::default()
        };
        self.handles.clear();
        for n in self.nodes.values_mut() {
            match n {
                Node::File(f) => r.bytes += f.revert(),
                Node::Dir(d) => {
                    r.entries += d.unsynced_entries();
                    if let Some(s) = d.synced.take() {
                        d.entries = s;
                    }
                }
            }
        }
        let live = self.reachable();
        self.nodes.retain(|ino, n| {
            let keep = live.contains(ino);
            if !keep && let Node::File(f) = n {
                r.bytes += f.data.len();
            }
            keep
        });
        // Link counts follow the restored entries.
        let mut links: HashMap<u64, u32> = HashMap::new();
        for n in self.nodes.values() {
            if let Node::Dir(d) = n {
                for &i in d.entries.values() {
                    *links.entry(i).or_default() += 1;
                }
            }
        }
        for (ino, n) in &mut self.nodes {
            if let Node::File(f) = n {
                f.nlink = links.get(ino).copied().unwrap_or(0);
            }
        }
        r.inodes = self.nodes.keys().copied().collect();
        r.inodes.sort_unstable();
        r
    }

    /// Inodes reachable from the root through current entries.
    fn reachable(&self) -> HashSet<u64> {
        self.reach(false)
    }

    /// Inodes reachable through current or synced entries, or open.
    fn reach(&self, with_synced: bool) -> HashSet<u64> {
        let mut seen = HashSet::from([ROOT]);
        let mut todo = vec![ROOT];
        while let Some(i) = todo.pop() {
            let Some(Node::Dir(d)) = self.nodes.get(&i) else {
                continue;
            };
            let synced = d
                .synced
                .iter()
                .filter(|_| with_synced)
                .flat_map(|s| s.values());
            for &c in d.entries.values().chain(synced) {
                if seen.insert(c) {
                    todo.push(c);
                }
            }
        }
        if with_synced {
            for &i in self.handles.values() {
                seen.insert(i);
            }
        }
        seen
    }

    /// Free inodes that no name (current or synced) and no handle reaches:
    /// a cut could not bring them back and nobody can reach them now.
    fn gc(&mut self) {
        let live = self.reach(true);
        if live.len() < self.nodes.len() {
            self.nodes.retain(|i, _| live.contains(i));
        }
    }

    /// Open file and directory handles.
    pub fn open_handles(&self) -> usize {
        self.handles.len()
    }

    /// Counters for `stats`.
    pub fn stats(&self) -> Stats {
        let mut s = Stats {
            open_handles: self.handles.len() as u64,
            cuts: self.cuts,
            ..Stats::default()
        };
        for n in self.nodes.values() {
            match n {
                Node::File(f) => {
                    s.files += 1;
                    s.bytes += f.data.len();
                    s.allocated += f.data.allocated();
                    s.unsynced_bytes += f.unsynced_bytes;
                    s.undo_bytes += f.undo.iter().map(|u| u.old.len() as u64).sum::<u64>();
                }
                Node::Dir(d) => {
                    s.dirs += 1;
                    s.unsynced_entries += d.unsynced_entries();
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    fn file(m: &mut Model, parent: u64, name: &str) -> (u64, u64) {
        let ino = m.create(parent, os(name), 0o644, 0, 0).unwrap().ino.0;
        (ino, m.open(ino, false).unwrap())
    }

    fn sync_dir(m: &mut Model, ino: u64) {
        let fh = m.open(ino, true).unwrap();
        m.fsyncdir(fh, ino).unwrap();
        m.release(fh);
    }

    fn contents(m: &mut Model, parent: u64, name: &str) -> Option<Vec<u8>> {
        let ino = m.lookup(parent, os(name)).ok()?.ino.0;
        let fh = m.open(ino, false).unwrap();
        let v = m.read(fh, ino, 0, u32::MAX).unwrap();
        m.release(fh);
        Some(v)
    }

    #[test]
    fn unsynced_bytes_and_size_revert_synced_stay() {
        let mut m = Model::new();
        let (ino, fh) = file(&mut m, ROOT, "a");
        sync_dir(&mut m, ROOT);
        m.write(fh, ino, 0, b"hello world").unwrap();
        m.fsync(fh, ino).unwrap();
        m.write(fh, ino, 6, b"WORLD and more").unwrap();
        m.setattr(ino, Some(fh), None, None, None, Some(3), None, None)
            .unwrap();
        m.write(fh, ino, 8, b"zz").unwrap();
        m.release(fh);
        let r = m.cut();
        // 14 written, 8 cut off below the synced size, 2 written.
        assert_eq!((r.bytes, r.entries, r.open_handles), (24, 0, 0));
        assert_eq!(contents(&mut m, ROOT, "a").unwrap(), b"hello world");
    }

    #[test]
    fn preallocated_file_keeps_synced_prefix() {
        let mut m = Model::new();
        let (ino, fh) = file(&mut m, ROOT, "seg");
        m.fallocate(fh, ino, 0, 1 << 20, 0).unwrap();
        m.fsync(fh, ino).unwrap();
        sync_dir(&mut m, ROOT);
        m.write(fh, ino, 0, &[1; 100]).unwrap();
        m.fsync(fh, ino).unwrap();
        m.write(fh, ino, 100, &[2; 100]).unwrap();
        assert_eq!(m.stats().undo_bytes, 100);
        m.cut();
        let v = contents(&mut m, ROOT, "seg").unwrap();
        assert_eq!(v.len(), 1 << 20);
        assert!(v[..100].iter().all(|&b| b == 1));
        assert!(v[100..].iter().all(|&b| b == 0));
        // KEEP_SIZE changes nothing visible; other modes are refused.
        let fh = m.open(ino, false).unwrap();
        m.fallocate(fh, ino, 0, 4 << 20, FALLOC_KEEP_SIZE).unwrap();
        assert_eq!(m.attr(ino).unwrap().size, 1 << 20);
        let punch = libc::FALLOC_FL_PUNCH_HOLE | FALLOC_KEEP_SIZE;
        assert_eq!(m.fallocate(fh, ino, 0, 10, punch), Err(Errno::EOPNOTSUPP));
    }

    #[test]
    fn entries_need_fsyncdir() {
        let mut m = Model::new();
        let dir = m.mkdir(ROOT, os("d"), 0o755, 0, 0).unwrap().ino.0;
        sync_dir(&mut m, ROOT);
        let (a, fh) = file(&mut m, dir, "synced-file-unsynced-dir");
        m.write(fh, a, 0, b"x").unwrap();
        m.fsync(fh, a).unwrap();
        m.release(fh);
        let r = m.cut();
        assert_eq!((r.bytes, r.entries), (1, 1));
        assert!(m.lookup(dir, os("synced-file-unsynced-dir")).is_err());
        assert_eq!(m.stats().files, 0);

        let (b, fh) = file(&mut m, dir, "kept");
        m.write(fh, b, 0, b"y").unwrap();
        m.fsync(fh, b).unwrap();
        m.release(fh);
        sync_dir(&mut m, dir);
        m.cut();
        assert_eq!(contents(&mut m, dir, "kept").unwrap(), b"y");
    }

    #[test]
    fn rename_and_unlink_undone_without_fsyncdir() {
        let mut m = Model::new();
        let d1 = m.mkdir(ROOT, os("d1"), 0o755, 0, 0).unwrap().ino.0;
        let d2 = m.mkdir(ROOT, os("d2"), 0o755, 0, 0).unwrap().ino.0;
        let (a, fh) = file(&mut m, d1, "a");
        m.write(fh, a, 0, b"data").unwrap();
        m.release(fh);
        let (_, fh) = file(&mut m, d1, "b");
        m.release(fh);
        m.sync_all();
        m.rename(d1, os("a"), d2, os("moved"), false).unwrap();
        m.unlink(d1, os("b")).unwrap();
        assert_eq!(m.stats().unsynced_entries, 3);
        let r = m.cut();
        assert_eq!(r.entries, 3);
        assert_eq!(contents(&mut m, d1, "a").unwrap(), b"data");
        assert!(contents(&mut m, d1, "b").is_some());
        assert!(m.lookup(d2, os("moved")).is_err());
        assert_eq!(m.attr(a).unwrap().nlink, 1);
        // Synced both ways, the rename holds.
        m.rename(d1, os("a"), d2, os("moved"), false).unwrap();
        sync_dir(&mut m, d1);
        sync_dir(&mut m, d2);
        m.cut();
        assert_eq!(contents(&mut m, d2, "moved").unwrap(), b"data");
    }

    #[test]
    fn rename_rules() {
        let mut m = Model::new();
        let d = m.mkdir(ROOT, os("d"), 0o755, 0, 0).unwrap().ino.0;
        let sub = m.mkdir(d, os("sub"), 0o755, 0, 0).unwrap().ino.0;
        let (_, fh) = file(&mut m, ROOT, "f");
        m.release(fh);
        let (_, fh) = file(&mut m, ROOT, "g");
        m.release(fh);
        assert_eq!(
            m.rename(ROOT, os("d"), sub, os("x"), false),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            m.rename(ROOT, os("f"), ROOT, os("g"), true),
            Err(Errno::EEXIST)
        );
        assert_eq!(
            m.rename(ROOT, os("f"), ROOT, os("d"), false),
            Err(Errno::EISDIR)
        );
        assert_eq!(
            m.rename(ROOT, os("d"), ROOT, os("f"), false),
            Err(Errno::ENOTDIR)
        );
        assert_eq!(m.rmdir(ROOT, os("d")), Err(Errno::ENOTEMPTY));
        m.rename(ROOT, os("f"), ROOT, os("g"), false).unwrap();
        // The replaced file had no other name and no handle: freed.
        assert_eq!(m.stats().files, 1);
    }

    #[test]
    fn stale_handles_fail_after_cut() {
        let mut m = Model::new();
        let (ino, fh) = file(&mut m, ROOT, "a");
        m.sync_all();
        m.write(fh, ino, 0, b"x").unwrap();
        let r = m.cut();
        assert_eq!(r.open_handles, 1);
        assert_eq!(m.write(fh, ino, 0, b"y"), Err(Errno::EIO));
        assert_eq!(m.read(fh, ino, 0, 1), Err(Errno::EIO));
        assert_eq!(m.fsync(fh, ino), Err(Errno::EIO));
        m.release(fh);
        assert_eq!(contents(&mut m, ROOT, "a").unwrap(), b"");
    }

    #[test]
    fn unlinked_open_file_lives_until_release() {
        let mut m = Model::new();
        let (ino, fh) = file(&mut m, ROOT, "a");
        m.unlink(ROOT, os("a")).unwrap();
        m.write(fh, ino, 0, b"still here").unwrap();
        assert_eq!(m.read(fh, ino, 0, 100).unwrap(), b"still here");
        m.release(fh);
        assert_eq!(m.stats().files, 0);
    }
}
