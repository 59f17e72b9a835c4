//! The production file layer. The WAL's durable append is `pwrite` +
//! `fdatasync` from the WAL's own thread (see `write_and_sync`: io_uring
//! was measured slower there); plain writes and fallocate go through
//! io_uring (one ring per open file, 8 entries); opens, renames,
//! directory listings and reads use std.
//!
//! # Safety
//! The only unsafe code pushes submission entries that point at caller
//! buffers. Every push is followed by `submit_and_wait` for all of its
//! completions before the function returns, so the buffers outlive the
//! kernel's use of them.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use io_uring::{IoUring, opcode, squeue, types};

use super::{File, Fs};

/// The real filesystem, with io_uring on the write path.
#[derive(Debug, Clone, Copy, Default)]
pub struct UringFs;

/// A file of [`UringFs`].
pub struct UringFile {
    file: std::fs::File,
    ring: IoUring,
}

impl std::fmt::Debug for UringFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringFile")
            .field("fd", &self.file.as_raw_fd())
            .finish()
    }
}

impl UringFile {
    fn new(file: std::fs::File) -> io::Result<Self> {
        Ok(Self {
            file,
            ring: IoUring::new(8)?,
        })
    }

    /// Submit `entries` (already linked as the caller wants) and wait for
    /// all of them; return each result (negative = -errno).
    fn run(&mut self, entries: &[squeue::Entry]) -> io::Result<Vec<i32>> {
        {
            let mut sq = self.ring.submission();
            for e in entries {
                // SAFETY: each entry references either no memory or a
                // buffer borrowed by the caller for the duration of this
                // call; we wait for every completion below before
                // returning, so the kernel never sees a dangling pointer.
                unsafe { sq.push(e) }
                    .map_err(|_| io::Error::other("io_uring submission queue full"))?;
            }
        }
        let mut results = vec![0i32; entries.len()];
        let mut seen = 0;
        while seen < entries.len() {
            match self.ring.submit_and_wait(entries.len() - seen) {
                Ok(_) => {}
                // Interrupted, or the kernel is short of resources / the
                // completion queue is full: our entries may already be in
                // flight, so wait again rather than return while the
                // kernel could still read the caller's buffer.
                Err(e)
                    if e.kind() == io::ErrorKind::Interrupted
                        || matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EBUSY)) =>
                {
                    std::thread::yield_now();
                    continue;
                }
                // EFAULT/EINVAL/EBADF: the ring itself is unusable; nothing
                // we pushed can be in flight on a ring the kernel refuses.
                Err(e) => return Err(e),
            }
            for cqe in self.ring.completion() {
                let i = cqe.user_data() as usize;
                if i < results.len() {
                    results[i] = cqe.result();
                    seen += 1;
                }
            }
        }
        Ok(results)
    }

    fn write_entry(&self, buf: &[u8], offset: u64, idx: u64) -> squeue::Entry {
        let fd = types::Fd(self.file.as_raw_fd());
        opcode::Write::new(fd, buf.as_ptr(), buf.len() as u32)
            .offset(offset)
            .build()
            .user_data(idx)
    }
}

fn check(res: i32) -> io::Result<usize> {
    if res < 0 {
        Err(io::Error::from_raw_os_error(-res))
    } else {
        Ok(res as usize)
    }
}

/// Largest single write submitted (io_uring lengths are u32; stay well
/// below to keep each submission bounded).
const MAX_WRITE: usize = 1 << 30;

impl File for UringFile {
    fn write_at(&mut self, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            let chunk = &buf[..buf.len().min(MAX_WRITE)];
            let e = self.write_entry(chunk, offset, 0);
            let n = check(self.run(&[e])?[0])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "io_uring write wrote nothing",
                ));
            }
            buf = &buf[n..];
            offset += n as u64;
        }
        Ok(())
    }

    /// `fdatasync(2)` from the calling thread, not an io_uring op: an
    /// fsync op never completes inline, io_uring hands it to a kernel
    /// worker thread (`iou-wrk`) and the WAL's thread then waits for that
    /// worker — one more thread and wake-up per sync.
    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// The durable append: `pwrite(2)` and `fdatasync(2)` from the WAL's
    /// own thread, which exists to block on them. io_uring bought nothing
    /// here: its fsync always runs on a kernel worker, and a buffered
    /// ext4 write is often punted to one too. Measured with
    /// `core/examples/pipeline`, one proposer, alternating, 2026-12-07: p50
    /// put 231–240 µs and 166–170 µs of CPU per put with the linked
    /// io_uring write + fdatasync; 216–232 µs / 147–162 µs with an io_uring
    /// write and the fdatasync syscall; 194–203 µs / 130–145 µs with both
    /// syscalls (docs/BENCHMARKS.md).
    fn write_and_sync(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)?;
        self.sync_data()
    }

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }

    fn allocate(&mut self, len: u64) -> io::Result<()> {
        let fd = types::Fd(self.file.as_raw_fd());
        let e = opcode::Fallocate::new(fd, len).build().user_data(0);
        check(self.run(&[e])?[0]).map(|_| ())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn len(&mut self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}

impl Fs for UringFs {
    type File = UringFile;

    fn create(&self, path: &Path) -> io::Result<UringFile> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        UringFile::new(f)
    }

    fn open(&self, path: &Path) -> io::Result<UringFile> {
        let f = OpenOptions::new().read(true).write(true).open(path)?;
        UringFile::new(f)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            if e.file_type()?.is_file()
                && let Some(name) = e.file_name().to_str()
            {
                out.push(name.to_string());
            }
        }
        Ok(out)
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        // fsync on a directory fd (O_RDONLY) through io_uring.
        let d = std::fs::File::open(dir)?;
        let mut ring = IoUring::new(2)?;
        let e = opcode::Fsync::new(types::Fd(d.as_raw_fd()))
            .build()
            .user_data(0);
        // SAFETY: the entry references no memory; `d` outlives the wait.
        unsafe { ring.submission().push(&e) }
            .map_err(|_| io::Error::other("io_uring submission queue full"))?;
        loop {
            match ring.submit_and_wait(1) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        let cqe = ring
            .completion()
            .next()
            .ok_or_else(|| io::Error::other("io_uring: no completion"))?;
        check(cqe.result()).map(|_| ())
    }
}
