//! A file's bytes, held sparsely: 64 KiB chunks in a map, a missing chunk
//! reads as zeros.
//!
//! ferrocd preallocates 64 MiB WAL segments with `fallocate` and then
//! fills them a few KiB at a time; a flat `Vec<u8>` would cost 64 MiB of
//! zeros per segment per member from the first byte. Here a segment costs
//! what was written to it, rounded up to 64 KiB.
//!
//! Invariant: bytes of a chunk at or past `len` are zero, so growing the
//! file (`set_len`) never has to clear anything.

use std::collections::BTreeMap;

/// Chunk size: a power of two, big enough that a 4 KiB append rarely
/// allocates and small enough that a sparse 64 MiB file stays cheap.
const CHUNK: u64 = 64 * 1024;

/// Sparse file contents.
#[derive(Debug, Default)]
pub(crate) struct Data {
    len: u64,
    chunks: BTreeMap<u64, Box<[u8]>>,
}

impl Data {
    /// The file's size in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Bytes of memory held by chunks (a multiple of 64 KiB).
    pub(crate) fn allocated(&self) -> u64 {
        self.chunks.len() as u64 * CHUNK
    }

    /// Copy bytes from `off` into `buf`, up to the end of the file; returns
    /// how many were copied (0 at or past the end).
    pub(crate) fn read(&self, off: u64, buf: &mut [u8]) -> usize {
        if off >= self.len {
            return 0;
        }
        let n = (buf.len() as u64).min(self.len - off) as usize;
        let mut done = 0;
        while done < n {
            let pos = off + done as u64;
            let (idx, within) = (pos / CHUNK, (pos % CHUNK) as usize);
            let take = (n - done).min(CHUNK as usize - within);
            match self.chunks.get(&idx) {
                Some(c) => buf[done..done + take].copy_from_slice(&c[within..within + take]),
                None => buf[done..done + take].fill(0),
            }
            done += take;
        }
        n
    }

    /// Write `src` at `off`, growing the file if it ends past `len`
    /// (the gap, if any, reads as zeros).
    pub(crate) fn write(&mut self, off: u64, src: &[u8]) {
        let mut done = 0;
        while done < src.len() {
            let pos = off + done as u64;
            let (idx, within) = (pos / CHUNK, (pos % CHUNK) as usize);
            let take = (src.len() - done).min(CHUNK as usize - within);
            let part = &src[done..done + take];
            // Zeros into a missing chunk change nothing: undo replays of
            // preallocated (zero) regions then cost no memory.
            if let Some(c) = self.chunks.get_mut(&idx) {
                c[within..within + take].copy_from_slice(part);
            } else if part.iter().any(|&b| b != 0) {
                let mut c = vec![0u8; CHUNK as usize].into_boxed_slice();
                c[within..within + take].copy_from_slice(part);
                self.chunks.insert(idx, c);
            }
            done += take;
        }
        self.len = self.len.max(off + src.len() as u64);
    }

    /// Set the size: shrinking drops the bytes past `len` (and clears the
    /// tail of the last chunk, keeping the invariant), growing adds zeros.
    pub(crate) fn set_len(&mut self, len: u64) {
        if len < self.len {
            let first_gone = len.div_ceil(CHUNK);
            self.chunks.split_off(&first_gone);
            if !len.is_multiple_of(CHUNK)
                && let Some(c) = self.chunks.get_mut(&(len / CHUNK))
            {
                c[(len % CHUNK) as usize..].fill(0);
            }
        }
        self.len = len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(d: &Data) -> Vec<u8> {
        let mut v = vec![0xAA; d.len() as usize];
        assert_eq!(d.read(0, &mut v), d.len() as usize);
        v
    }

    #[test]
    fn write_read_across_chunks_and_gaps() {
        let mut d = Data::default();
        let mut model = Vec::new();
        let writes: [(u64, usize, u8); 4] = [
            (10, 100, 1),
            (CHUNK - 3, 10, 2),
            (5 * CHUNK + 7, 3, 3),
            (0, 1, 4),
        ];
        for (off, n, b) in writes {
            d.write(off, &vec![b; n]);
            let end = off as usize + n;
            if model.len() < end {
                model.resize(end, 0);
            }
            model[off as usize..end].fill(b);
        }
        assert_eq!(read_all(&d), model);
        // The gap between chunk 1 and chunk 5 holds no memory.
        assert_eq!(d.allocated(), 3 * CHUNK);
        let mut short = [9u8; 8];
        assert_eq!(d.read(d.len() - 2, &mut short), 2);
        assert_eq!(d.read(d.len(), &mut short), 0);
    }

    #[test]
    fn shrink_then_grow_reads_zeros() {
        let mut d = Data::default();
        d.write(0, &vec![7u8; 3 * CHUNK as usize]);
        d.set_len(CHUNK + 5);
        assert_eq!(d.allocated(), 2 * CHUNK);
        d.set_len(3 * CHUNK);
        let v = read_all(&d);
        assert!(v[..CHUNK as usize + 5].iter().all(|&b| b == 7));
        assert!(v[CHUNK as usize + 5..].iter().all(|&b| b == 0));
    }

    #[test]
    fn zeros_into_holes_allocate_nothing() {
        let mut d = Data::default();
        d.set_len(64 << 20);
        d.write(4096, &[0u8; 8192]);
        assert_eq!(d.allocated(), 0);
        assert_eq!(d.len(), 64 << 20);
    }
}
