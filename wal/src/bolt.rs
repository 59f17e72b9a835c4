//! etcd's backend file format (a bbolt database), written and read without
//! a database engine: [`Writer`] lays out a fresh file from sorted
//! buckets in one pass (etcd's `snapshot save` streams such a file), and
//! [`Db`] reads one (ours or a real etcd's) from a byte slice, checking
//! every bound.
//!
//! No Rust crate fits: `bbolt-rs` (a full engine with file locks, mmap
//! and read-write transactions) is published with no license, and the
//! others are unfinished or use their own layouts. What is needed here is
//! a bulk writer and a validating reader, about four hundred lines.
//!
//! Layout (all integers little-endian, as bbolt writes them on x86-64 and
//! arm64; `PS` = page size, 4096 from [`Writer`]):
//!
//! ```text
//! page:       id u64 | flags u16 | count u16 | overflow u32 | body ...   (PS × (1 + overflow) bytes)
//!             flags: 0x01 branch, 0x02 leaf, 0x04 meta, 0x10 freelist
//! meta body:  magic u32 0xED0CDAED | version u32 2 | page_size u32 | flags u32
//!             | root bucket: root pgid u64, sequence u64 | freelist pgid u64
//!             | pgid (high water mark) u64 | txid u64 | checksum u64
//!             checksum = FNV-1a 64 over the 56 bytes before it
//! leaf elem:  flags u32 (1 = bucket) | pos u32 | ksize u32 | vsize u32
//! branch elem: pos u32 | ksize u32 | pgid u64
//!             pos: from the element header to its key; the value follows
//!             the key
//! bucket value: root pgid u64 | sequence u64 [| inline leaf page when root = 0]
//! ```
//!
//! Pages 0 and 1 are the two metas; the reader takes the valid one with
//! the higher txid. The freelist pgid `u64::MAX` means "no freelist
//! stored" (etcd 3.5 opens its backend with `NoFreelistSync` and writes
//! files like that; bbolt rebuilds the list on a writable open), which is
//! what [`Writer`] writes: a fresh file has no free pages.
//!
//! Determinism: the same buckets give the same bytes (fixed page size,
//! txids and packing), so members with equal state stream equal files.

use std::collections::HashSet;
use std::io::{self, Seek, SeekFrom, Write};

/// The page size [`Writer`] uses (etcd's on Linux x86-64).
pub const PAGE_SIZE: usize = 4096;
const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const PAGE_HEADER: usize = 16;
const ELEM: usize = 16;
const BUCKET_HEADER: usize = 16;
/// Meta fields before the checksum.
const META_LEN: usize = 56;
const FLAG_BRANCH: u16 = 0x01;
const FLAG_LEAF: u16 = 0x02;
const FLAG_META: u16 = 0x04;
const FLAG_FREELIST: u16 = 0x10;
/// Leaf element flag: the value is a nested bucket.
pub const BUCKET_FLAG: u32 = 0x01;
const NO_FREELIST: u64 = u64::MAX;
/// Deepest nesting of trees and buckets the reader follows (a corrupt
/// file must not recurse without bound; bbolt trees over a 4 KiB page are
/// a handful of levels deep even for billions of keys).
const MAX_DEPTH: usize = 64;
/// Page sizes the reader accepts (bbolt takes the OS page size).
const MIN_PAGE: usize = 512;
const MAX_PAGE: usize = 1 << 16;

fn fnv64a(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h ^= u64::from(x);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().expect("2 bytes"))
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

// ---------------------------------------------------------------- writer

/// One element of a tree being written.
struct Elem {
    key: Vec<u8>,
    value: Vec<u8>,
    flags: u32,
}

/// Where a written tree lives.
enum Tree {
    /// Its root page.
    Root(u64),
    /// Small enough to live inside its parent's value (an inline leaf).
    Inline(Vec<u8>),
}

/// The bytes of a nested bucket's value, returned by [`Writer::bucket`]
/// and handed to [`Writer::finish`] (or to another bucket as an element
/// with [`BUCKET_FLAG`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketValue(pub Vec<u8>);

/// Writes a fresh bbolt file: buckets first (each from its sorted
/// key/value pairs), then [`Writer::finish`] with the top-level bucket
/// list, which writes the root tree and the two meta pages.
#[derive(Debug)]
pub struct Writer<W: Write + Seek> {
    w: W,
    next: u64,
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.into())
}

/// Bytes of a page holding these leaf elements, headers included.
fn leaf_size(elems: &[Elem]) -> usize {
    PAGE_HEADER
        + elems
            .iter()
            .map(|e| ELEM + e.key.len() + e.value.len())
            .sum::<usize>()
}

/// A leaf page image (`id` 0 for an inline page), padded to whole pages
/// when `pad`.
fn leaf_page(id: u64, elems: &[Elem], pad: bool) -> Vec<u8> {
    let size = leaf_size(elems);
    let pages = size.div_ceil(PAGE_SIZE).max(1);
    let mut b = Vec::with_capacity(if pad { pages * PAGE_SIZE } else { size });
    page_header(
        &mut b,
        id,
        FLAG_LEAF,
        elems.len(),
        if pad { pages - 1 } else { 0 },
    );
    let mut data = PAGE_HEADER + elems.len() * ELEM;
    for (i, e) in elems.iter().enumerate() {
        let at = PAGE_HEADER + i * ELEM;
        b.extend_from_slice(&e.flags.to_le_bytes());
        b.extend_from_slice(&((data - at) as u32).to_le_bytes());
        b.extend_from_slice(&(e.key.len() as u32).to_le_bytes());
        b.extend_from_slice(&(e.value.len() as u32).to_le_bytes());
        data += e.key.len() + e.value.len();
    }
    for e in elems {
        b.extend_from_slice(&e.key);
        b.extend_from_slice(&e.value);
    }
    if pad {
        b.resize(pages * PAGE_SIZE, 0);
    }
    b
}

fn page_header(b: &mut Vec<u8>, id: u64, flags: u16, count: usize, overflow: usize) {
    b.extend_from_slice(&id.to_le_bytes());
    b.extend_from_slice(&flags.to_le_bytes());
    b.extend_from_slice(&(count as u16).to_le_bytes());
    b.extend_from_slice(&(overflow as u32).to_le_bytes());
}

fn meta_page(id: u64, root: u64, hwm: u64, txid: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(PAGE_SIZE);
    page_header(&mut b, id, FLAG_META, 0, 0);
    b.extend_from_slice(&MAGIC.to_le_bytes());
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&(PAGE_SIZE as u32).to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&root.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&NO_FREELIST.to_le_bytes());
    b.extend_from_slice(&hwm.to_le_bytes());
    b.extend_from_slice(&txid.to_le_bytes());
    let sum = fnv64a(&b[PAGE_HEADER..PAGE_HEADER + META_LEN]);
    b.extend_from_slice(&sum.to_le_bytes());
    b.resize(PAGE_SIZE, 0);
    b
}

impl<W: Write + Seek> Writer<W> {
    /// Start a file at the current position of `w` (which must be 0 for
    /// a file bbolt opens): the two meta pages are reserved and written
    /// by [`Writer::finish`].
    pub fn new(mut w: W) -> io::Result<Self> {
        w.write_all(&[0u8; 2 * PAGE_SIZE])?;
        Ok(Self { w, next: 2 })
    }

    fn write_page(&mut self, bytes: &[u8]) -> io::Result<u64> {
        debug_assert_eq!(bytes.len() % PAGE_SIZE, 0);
        let id = self.next;
        self.w.write_all(bytes)?;
        self.next += (bytes.len() / PAGE_SIZE) as u64;
        Ok(id)
    }

    fn flush_leaf(&mut self, elems: &[Elem], level: &mut Vec<(Vec<u8>, u64)>) -> io::Result<()> {
        let id = self.next;
        let page = leaf_page(id, elems, true);
        self.write_page(&page)?;
        level.push((elems[0].key.clone(), id));
        Ok(())
    }

    /// Write a tree of `items` (keys strictly ascending, non-empty);
    /// inline when allowed and it fits bbolt's inline rule (one leaf of at
    /// most a quarter page, no nested buckets).
    fn tree(
        &mut self,
        items: impl IntoIterator<Item = (Vec<u8>, Vec<u8>, u32)>,
        allow_inline: bool,
    ) -> io::Result<Tree> {
        let mut cur: Vec<Elem> = Vec::new();
        let mut cur_size = PAGE_HEADER;
        let mut level: Vec<(Vec<u8>, u64)> = Vec::new();
        let mut has_bucket = false;
        let mut last: Option<Vec<u8>> = None;
        for (key, value, flags) in items {
            if key.is_empty() {
                return Err(invalid("bolt: empty key"));
            }
            if key.len() > u32::MAX as usize / 2 || value.len() > u32::MAX as usize / 2 {
                return Err(invalid("bolt: key or value too large"));
            }
            if let Some(l) = &last
                && *l >= key
            {
                return Err(invalid("bolt: keys not strictly ascending"));
            }
            last = Some(key.clone());
            has_bucket |= flags & BUCKET_FLAG != 0;
            let add = ELEM + key.len() + value.len();
            if !cur.is_empty() && cur_size + add > PAGE_SIZE {
                self.flush_leaf(&cur, &mut level)?;
                cur.clear();
                cur_size = PAGE_HEADER;
            }
            cur_size += add;
            cur.push(Elem { key, value, flags });
        }
        if level.is_empty() && allow_inline && !has_bucket && cur_size <= PAGE_SIZE / 4 {
            return Ok(Tree::Inline(leaf_page(0, &cur, false)));
        }
        if cur.is_empty() && level.is_empty() {
            // An empty tree still needs its (empty) root leaf.
            let id = self.next;
            self.write_page(&leaf_page(id, &[], true))?;
            return Ok(Tree::Root(id));
        }
        if !cur.is_empty() {
            self.flush_leaf(&cur, &mut level)?;
        }
        // Branch levels until one page holds the root.
        while level.len() > 1 {
            let mut up = Vec::new();
            let mut page: Vec<&(Vec<u8>, u64)> = Vec::new();
            let mut size = PAGE_HEADER;
            let mut groups: Vec<Vec<&(Vec<u8>, u64)>> = Vec::new();
            for e in &level {
                let add = ELEM + e.0.len();
                if !page.is_empty() && size + add > PAGE_SIZE {
                    groups.push(std::mem::take(&mut page));
                    size = PAGE_HEADER;
                }
                size += add;
                page.push(e);
            }
            groups.push(page);
            for g in groups {
                let id = self.next;
                let bytes = branch_page(id, &g);
                self.write_page(&bytes)?;
                up.push((g[0].0.clone(), id));
            }
            level = up;
        }
        Ok(Tree::Root(level[0].1))
    }

    /// Write one bucket from its key/value pairs (keys strictly
    /// ascending, non-empty); returns the bucket's value for its parent.
    pub fn bucket(
        &mut self,
        items: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    ) -> io::Result<BucketValue> {
        self.nested(items.into_iter().map(|(k, v)| (k, v, 0)))
    }

    /// Write a bucket whose elements may themselves be buckets (`flags`
    /// [`BUCKET_FLAG`], value a [`BucketValue`]'s bytes).
    pub fn nested(
        &mut self,
        items: impl IntoIterator<Item = (Vec<u8>, Vec<u8>, u32)>,
    ) -> io::Result<BucketValue> {
        let mut v = Vec::with_capacity(BUCKET_HEADER);
        match self.tree(items, true)? {
            Tree::Root(id) => {
                v.extend_from_slice(&id.to_le_bytes());
                v.extend_from_slice(&0u64.to_le_bytes());
            }
            Tree::Inline(page) => {
                v.extend_from_slice(&0u64.to_le_bytes());
                v.extend_from_slice(&0u64.to_le_bytes());
                v.extend_from_slice(&page);
            }
        }
        Ok(BucketValue(v))
    }

    /// Write the top-level buckets (names strictly ascending) and the meta
    /// pages; returns the sink and the file's size in bytes.
    pub fn finish(mut self, buckets: Vec<(Vec<u8>, BucketValue)>) -> io::Result<(W, u64)> {
        let root = match self.tree(
            buckets.into_iter().map(|(k, v)| (k, v.0, BUCKET_FLAG)),
            false,
        )? {
            Tree::Root(id) => id,
            Tree::Inline(_) => unreachable!("the root tree is never inline"),
        };
        let hwm = self.next;
        let end = self.w.stream_position()?;
        self.w.seek(SeekFrom::Start(0))?;
        // bbolt writes txid n to meta page n % 2; the newer one wins.
        self.w.write_all(&meta_page(0, root, hwm, 2))?;
        self.w.write_all(&meta_page(1, root, hwm, 1))?;
        self.w.seek(SeekFrom::Start(end))?;
        self.w.flush()?;
        Ok((self.w, hwm * PAGE_SIZE as u64))
    }
}

fn branch_page(id: u64, elems: &[&(Vec<u8>, u64)]) -> Vec<u8> {
    let size = PAGE_HEADER + elems.iter().map(|e| ELEM + e.0.len()).sum::<usize>();
    let pages = size.div_ceil(PAGE_SIZE).max(1);
    let mut b = Vec::with_capacity(pages * PAGE_SIZE);
    page_header(&mut b, id, FLAG_BRANCH, elems.len(), pages - 1);
    let mut data = PAGE_HEADER + elems.len() * ELEM;
    for (i, e) in elems.iter().enumerate() {
        let at = PAGE_HEADER + i * ELEM;
        b.extend_from_slice(&((data - at) as u32).to_le_bytes());
        b.extend_from_slice(&(e.0.len() as u32).to_le_bytes());
        b.extend_from_slice(&e.1.to_le_bytes());
        data += e.0.len();
    }
    for e in elems {
        b.extend_from_slice(&e.0);
    }
    b.resize(pages * PAGE_SIZE, 0);
    b
}

// ---------------------------------------------------------------- reader

/// A file that is not a valid bbolt database: what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid database: {reason} (at byte offset {offset})")]
pub struct Invalid {
    /// Byte offset of the structure found wrong.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

fn bad<T>(offset: usize, reason: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid {
        offset: offset as u64,
        reason: reason.into(),
    })
}

/// A bbolt file opened for reading, over its bytes (trailing bytes past
/// the high water mark, such as the sha256 etcd appends to a snapshot,
/// are ignored as bbolt ignores them).
#[derive(Debug, Clone, Copy)]
pub struct Db<'a> {
    data: &'a [u8],
    page_size: usize,
    root: u64,
    hwm: u64,
    txid: u64,
}

/// A bucket: a root page, or an inline leaf inside its parent's value.
#[derive(Debug, Clone, Copy)]
pub struct Bucket<'a> {
    root: u64,
    inline: Option<(&'a [u8], usize)>,
    /// The bucket's sequence (bbolt's `NextSequence` counter).
    pub sequence: u64,
}

/// One element met while walking a bucket.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// Key.
    pub key: &'a [u8],
    /// Value (a nested bucket's header when `bucket`).
    pub value: &'a [u8],
    /// Whether this is a nested bucket.
    pub bucket: bool,
}

fn parse_meta(data: &[u8], at: usize) -> Result<(usize, u64, u64, u64), Invalid> {
    if data.len() < at + PAGE_HEADER + META_LEN + 8 {
        return bad(at, "file too short for a meta page");
    }
    let m = &data[at + PAGE_HEADER..at + PAGE_HEADER + META_LEN + 8];
    if u16_at(data, at + 8) & FLAG_META == 0 {
        return bad(at, "meta page without the meta flag");
    }
    if u32_at(m, 0) != MAGIC {
        return bad(at, "bad magic");
    }
    if u32_at(m, 4) != VERSION {
        return bad(at, format!("unsupported version {}", u32_at(m, 4)));
    }
    if fnv64a(&m[..META_LEN]) != u64_at(m, META_LEN) {
        return bad(at, "meta checksum mismatch");
    }
    let ps = u32_at(m, 8) as usize;
    if !(MIN_PAGE..=MAX_PAGE).contains(&ps) || !ps.is_power_of_two() {
        return bad(at, format!("bad page size {ps}"));
    }
    let (root, hwm, txid) = (u64_at(m, 16), u64_at(m, 40), u64_at(m, 48));
    Ok((ps, root, hwm, txid))
}

impl<'a> Db<'a> {
    /// Open the file in `data`: the valid meta with the higher txid.
    pub fn open(data: &'a [u8]) -> Result<Self, Invalid> {
        let m0 = parse_meta(data, 0);
        // Meta 1 sits one page in; without a valid meta 0 try the page
        // sizes bbolt could have used.
        let m1 = match &m0 {
            Ok((ps, ..)) => parse_meta(data, *ps),
            Err(_) => [4096usize, 8192, 16384, 65536, 512, 1024, 2048, 32768]
                .into_iter()
                .map(|ps| {
                    parse_meta(data, ps).and_then(|m| {
                        if m.0 == ps {
                            Ok(m)
                        } else {
                            bad(ps, "page size mismatch")
                        }
                    })
                })
                .find(Result::is_ok)
                .unwrap_or_else(|| bad(PAGE_SIZE, "no valid second meta page")),
        };
        let mut candidates: Vec<_> = [m0.clone(), m1].into_iter().flatten().collect();
        candidates.sort_by_key(|m| std::cmp::Reverse(m.3));
        let mut last_err = m0.err();
        for (ps, root, hwm, txid) in candidates {
            let db = Db {
                data,
                page_size: ps,
                root,
                hwm,
                txid,
            };
            match db.check_meta() {
                Ok(()) => return Ok(db),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or(Invalid {
            offset: 0,
            reason: "no valid meta page".into(),
        }))
    }

    fn check_meta(&self) -> Result<(), Invalid> {
        let need = self.hwm.checked_mul(self.page_size as u64);
        match need {
            Some(n) if self.hwm >= 3 && n <= self.data.len() as u64 => {}
            _ => {
                return bad(
                    0,
                    format!(
                        "file size {} too small for {} pages of {} bytes",
                        self.data.len(),
                        self.hwm,
                        self.page_size
                    ),
                );
            }
        }
        if self.root < 2 || self.root >= self.hwm {
            return bad(0, format!("root page {} out of range", self.root));
        }
        Ok(())
    }

    /// Size of the database: high water mark × page size (bbolt's
    /// `Tx.Size`, what etcd's `snapshot status` reports as totalSize).
    pub fn size(&self) -> u64 {
        self.hwm * self.page_size as u64
    }

    /// Page size.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// Transaction id of the meta in use.
    pub fn txid(&self) -> u64 {
        self.txid
    }

    /// The root bucket (whose elements are the top-level buckets).
    pub fn root(&self) -> Bucket<'a> {
        Bucket {
            root: self.root,
            inline: None,
            sequence: 0,
        }
    }

    /// A nested bucket from an [`Entry`] whose `bucket` is set.
    pub fn open_bucket(&self, e: &Entry<'a>) -> Result<Bucket<'a>, Invalid> {
        let off = (e.value.as_ptr() as usize).wrapping_sub(self.data.as_ptr() as usize);
        if !e.bucket {
            return bad(off, "not a bucket");
        }
        if e.value.len() < BUCKET_HEADER {
            return bad(off, "bucket value shorter than its header");
        }
        let root = u64_at(e.value, 0);
        let sequence = u64_at(e.value, 8);
        if root == 0 {
            let page = &e.value[BUCKET_HEADER..];
            if page.len() < PAGE_HEADER {
                return bad(off, "inline bucket shorter than a page header");
            }
            Ok(Bucket {
                root: 0,
                inline: Some((page, off + BUCKET_HEADER)),
                sequence,
            })
        } else {
            Ok(Bucket {
                root,
                inline: None,
                sequence,
            })
        }
    }

    /// The top-level bucket `name`, if present.
    pub fn bucket(&self, name: &[u8]) -> Result<Option<Bucket<'a>>, Invalid> {
        let mut found = None;
        self.walk(&self.root(), &mut |e| {
            if e.key == name && e.bucket {
                found = Some(e);
            }
            Ok(())
        })?;
        found.map(|e| self.open_bucket(&e)).transpose()
    }

    /// Visit every element of `b` in key order (nested buckets appear as
    /// elements; open them with [`Db::open_bucket`]). Every page is
    /// visited at most once and trees at most `MAX_DEPTH` (64) deep, so a
    /// corrupt file ends in an error, never in a loop or a panic.
    pub fn walk(
        &self,
        b: &Bucket<'a>,
        f: &mut dyn FnMut(Entry<'a>) -> Result<(), Invalid>,
    ) -> Result<(), Invalid> {
        let mut seen = HashSet::new();
        let mut last: Option<&'a [u8]> = None;
        let mut visit = |e: Entry<'a>| {
            if let Some(l) = last
                && l >= e.key
            {
                let off = (e.key.as_ptr() as usize).wrapping_sub(self.data.as_ptr() as usize);
                return bad(off, "keys out of order");
            }
            last = Some(e.key);
            f(e)
        };
        match b.inline {
            Some((page, off)) => self.node(page, off, 0, &mut seen, &mut visit, true),
            None => self.page(b.root, 0, &mut seen, &mut visit),
        }
    }

    /// Walk every bucket, nested ones included (at most `MAX_DEPTH` (64)
    /// levels); returns how many elements there are. What the fuzz target
    /// and `snapshot status` rely on: any bytes give a count or an error.
    pub fn check(&self) -> Result<u64, Invalid> {
        fn visit(db: &Db<'_>, b: &Bucket<'_>, depth: usize, n: &mut u64) -> Result<(), Invalid> {
            if depth > MAX_DEPTH {
                return bad(0, "buckets nested too deep");
            }
            let mut subs = Vec::new();
            db.walk(b, &mut |e| {
                *n += 1;
                if e.bucket {
                    subs.push(e);
                }
                Ok(())
            })?;
            for e in subs {
                visit(db, &db.open_bucket(&e)?, depth + 1, n)?;
            }
            Ok(())
        }
        let mut n = 0;
        visit(self, &self.root(), 0, &mut n)?;
        Ok(n)
    }

    fn page(
        &self,
        id: u64,
        depth: usize,
        seen: &mut HashSet<u64>,
        f: &mut dyn FnMut(Entry<'a>) -> Result<(), Invalid>,
    ) -> Result<(), Invalid> {
        let off = (id as usize).saturating_mul(self.page_size);
        if id < 2 || id >= self.hwm {
            return bad(
                off,
                format!("page {id} out of range (high water mark {})", self.hwm),
            );
        }
        if depth > MAX_DEPTH {
            return bad(off, "tree too deep");
        }
        if !seen.insert(id) {
            return bad(off, format!("page {id} referenced twice"));
        }
        let head = &self.data[off..off + self.page_size];
        if u64_at(head, 0) != id {
            return bad(off, format!("page {id} holds id {}", u64_at(head, 0)));
        }
        let overflow = u64::from(u32_at(head, 12));
        if id + overflow >= self.hwm {
            return bad(off, format!("page {id} overflows past the high water mark"));
        }
        let len = (overflow as usize + 1) * self.page_size;
        let page = &self.data[off..off + len];
        self.node(page, off, depth, seen, f, false)
    }

    fn node(
        &self,
        page: &'a [u8],
        off: usize,
        depth: usize,
        seen: &mut HashSet<u64>,
        f: &mut dyn FnMut(Entry<'a>) -> Result<(), Invalid>,
        inline: bool,
    ) -> Result<(), Invalid> {
        let flags = u16_at(page, 8);
        let count = u16_at(page, 10) as usize;
        if PAGE_HEADER + count * ELEM > page.len() {
            return bad(off, "element headers past the page end");
        }
        let slice = |at: usize, pos: u32, len: u32| -> Result<&'a [u8], Invalid> {
            let start = at.checked_add(pos as usize);
            let end = start.and_then(|s| s.checked_add(len as usize));
            match (start, end) {
                (Some(s), Some(e)) if e <= page.len() => Ok(&page[s..e]),
                _ => bad(off + at, "element data past the page end"),
            }
        };
        if flags & FLAG_LEAF != 0 && flags & (FLAG_BRANCH | FLAG_META | FLAG_FREELIST) == 0 {
            for i in 0..count {
                let at = PAGE_HEADER + i * ELEM;
                let (eflags, pos, ks, vs) = (
                    u32_at(page, at),
                    u32_at(page, at + 4),
                    u32_at(page, at + 8),
                    u32_at(page, at + 12),
                );
                let key = slice(at, pos, ks)?;
                let value = slice(at, pos.saturating_add(ks), vs)?;
                if key.is_empty() {
                    return bad(off + at, "empty key");
                }
                f(Entry {
                    key,
                    value,
                    bucket: eflags & BUCKET_FLAG != 0,
                })?;
            }
            Ok(())
        } else if flags & FLAG_BRANCH != 0
            && flags & (FLAG_LEAF | FLAG_META | FLAG_FREELIST) == 0
            && !inline
        {
            if count == 0 {
                return bad(off, "empty branch page");
            }
            for i in 0..count {
                let at = PAGE_HEADER + i * ELEM;
                let (pos, ks) = (u32_at(page, at), u32_at(page, at + 4));
                slice(at, pos, ks)?;
                let child = u64_at(page, at + 8);
                self.page(child, depth + 1, seen, f)?;
            }
            Ok(())
        } else {
            bad(off, format!("unexpected page flags {flags:#x}"))
        }
    }
}

#[cfg(test)]
#[path = "bolt_test.rs"]
mod tests;
