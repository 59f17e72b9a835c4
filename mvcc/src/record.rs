//! Records of the revision store: one rkyv archive per revision, read in
//! place.
//!
//! A record is the archive of [`RecordRef`] (etcd's `mvccpb.KeyValue` plus
//! a flags word). Its bytes live either in an owned 16-byte-aligned buffer
//! (written by this process) or inside a memory-mapped snapshot; both are
//! reached through [`RecordBytes`], which clones as one refcount bump so the
//! B+tree can path-copy leaves cheaply.
//!
//! Layout of one archive (rkyv 0.8, little-endian, root at the end):
//!
//! ```text
//! +--------------------+--------------------+--------------------------------------+
//! | key bytes (pad 8)  | value bytes (pad 8)| root: ArchivedRecord, 56 bytes       |
//! +--------------------+--------------------+--------------------------------------+
//! root = key: RelPtr+len (8) | value: RelPtr+len (8) | create_revision i64 | mod_revision i64
//!        | version i64 | lease i64 | flags u32 | pad 4
//! ```
//!
//! Trust: owned bytes come from our own serializer; mapped bytes are checked
//! with bytecheck (`rkyv::access`) once when the snapshot is loaded. After
//! that, [`RecordBytes::archived`] uses `access_unchecked`: the bytes never
//! change (owned buffers are never written again, mappings are read-only and
//! kept alive by the `Arc<Mmap>`).

use std::sync::Arc;

use memmap2::Mmap;
use rkyv::util::AlignedVec;
use rkyv::with::InlineAsBox;

use crate::kv::KeyValue;

/// Flag bit: the record is a tombstone (a delete); etcd marks these with a
/// `t` suffix on the revision key, we keep it in the record.
pub(crate) const FLAG_TOMBSTONE: u32 = 1;

/// The archived form's source: borrowed fields, so serializing a put copies
/// the key and value once, straight into the archive.
#[derive(rkyv::Archive, rkyv::Serialize)]
#[rkyv(archived = ArchivedRecordOf)]
pub(crate) struct RecordRef<'a> {
    #[rkyv(with = InlineAsBox)]
    pub(crate) key: &'a [u8],
    #[rkyv(with = InlineAsBox)]
    pub(crate) value: &'a [u8],
    pub(crate) create_revision: i64,
    pub(crate) mod_revision: i64,
    pub(crate) version: i64,
    pub(crate) lease: i64,
    pub(crate) flags: u32,
}

impl RecordRef<'_> {
    /// Serialize into a fresh, exactly sized aligned buffer.
    pub(crate) fn to_bytes(&self) -> RecordBytes {
        // key + value + 16 bytes of padding + the 56-byte root: one
        // allocation of the right size instead of rkyv's doubling growth.
        let cap = self.key.len() + self.value.len() + 16 + 64;
        let buf = rkyv::api::high::to_bytes_in::<_, rkyv::rancor::Error>(
            self,
            AlignedVec::<16>::with_capacity(cap),
        )
        .expect("serializing into a Vec cannot fail");
        RecordBytes::Owned(Arc::new(buf))
    }
}

/// The archived record. rkyv carries `RecordRef`'s lifetime into the
/// archived type as a marker only; the archive borrows nothing.
pub(crate) type ArchivedRecord = ArchivedRecordOf<'static>;

/// Where a record's archive lives.
#[derive(Clone)]
pub(crate) enum RecordBytes {
    /// Written by this process.
    Owned(Arc<AlignedVec<16>>),
    /// Inside a loaded snapshot; `offset` is 16-byte aligned.
    Mapped {
        map: Arc<Mmap>,
        offset: usize,
        len: u32,
    },
}

impl std::fmt::Debug for RecordBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Owned(b) => write!(f, "Owned({} bytes)", b.len()),
            Self::Mapped { offset, len, .. } => write!(f, "Mapped(@{offset}, {len} bytes)"),
        }
    }
}

impl RecordBytes {
    /// The archive bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Self::Owned(b) => b.as_slice(),
            Self::Mapped { map, offset, len } => &map[*offset..*offset + *len as usize],
        }
    }

    /// The archived record, without validation (see the module notes).
    pub(crate) fn archived(&self) -> &ArchivedRecord {
        // SAFETY: owned bytes were produced by `RecordRef::to_bytes` and
        // mapped bytes passed `rkyv::access::<ArchivedRecord>` when the
        // snapshot was loaded (`snapshot::load_mapped`); both are immutable
        // and 16-byte aligned, so they still hold a valid `ArchivedRecord`
        // with its root at the end.
        unsafe { rkyv::access_unchecked::<ArchivedRecord>(self.bytes()) }
    }

    /// Heap bytes this record holds (0 when mapped): buffer capacity plus the
    /// `Arc` header.
    #[cfg(test)]
    pub(crate) fn heap_size(&self) -> usize {
        match self {
            Self::Owned(b) => b.capacity() + 40,
            Self::Mapped { .. } => 0,
        }
    }
}

/// Check that `bytes` hold a valid record archive (bytecheck).
pub(crate) fn validate(bytes: &[u8]) -> Result<&ArchivedRecord, String> {
    rkyv::access::<ArchivedRecord, rkyv::rancor::Error>(bytes).map_err(|e| e.to_string())
}

impl ArchivedRecord {
    /// Whether this is a delete.
    pub(crate) fn is_tombstone(&self) -> bool {
        self.flags.to_native() & FLAG_TOMBSTONE != 0
    }
}

/// A borrowed, zero-copy view of a key-value read from the store: the key
/// and value slices point into the record's archive.
#[derive(Clone, Copy)]
pub struct KvRef<'a> {
    rec: &'a ArchivedRecord,
    keys_only: bool,
}

impl std::fmt::Debug for KvRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvRef")
            .field("key", &self.key())
            .field("create_revision", &self.create_revision())
            .field("mod_revision", &self.mod_revision())
            .field("version", &self.version())
            .field("value_len", &self.value().len())
            .field("lease", &self.lease())
            .finish()
    }
}

impl<'a> KvRef<'a> {
    pub(crate) fn new(rec: &'a RecordBytes) -> Self {
        Self {
            rec: rec.archived(),
            keys_only: false,
        }
    }

    pub(crate) fn with_keys_only(mut self, keys_only: bool) -> Self {
        self.keys_only = keys_only;
        self
    }

    /// The key.
    pub fn key(&self) -> &'a [u8] {
        &self.rec.key
    }

    /// The value (empty for `keys_only` reads).
    pub fn value(&self) -> &'a [u8] {
        if self.keys_only { &[] } else { &self.rec.value }
    }

    /// Revision that created the key's current generation.
    pub fn create_revision(&self) -> i64 {
        self.rec.create_revision.to_native()
    }

    /// Main revision of the key's last change.
    pub fn mod_revision(&self) -> i64 {
        self.rec.mod_revision.to_native()
    }

    /// The key's version.
    pub fn version(&self) -> i64 {
        self.rec.version.to_native()
    }

    /// Attached lease, 0 for none.
    pub fn lease(&self) -> i64 {
        self.rec.lease.to_native()
    }

    /// An owned copy.
    pub fn to_key_value(&self) -> KeyValue {
        KeyValue {
            key: self.key().to_vec(),
            create_revision: self.create_revision(),
            mod_revision: self.mod_revision(),
            version: self.version(),
            value: self.value().to_vec(),
            lease: self.lease(),
        }
    }
}

impl From<KvRef<'_>> for KeyValue {
    fn from(r: KvRef<'_>) -> Self {
        r.to_key_value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_size() {
        let value = [7u8; 256];
        let rec = RecordRef {
            key: b"some/key",
            value: &value,
            create_revision: 2,
            mod_revision: 5,
            version: 3,
            lease: 9,
            flags: 0,
        }
        .to_bytes();
        assert_eq!(rec.bytes().len() % 8, 0);
        assert_eq!(rec.bytes().as_ptr() as usize % 16, 0);
        validate(rec.bytes()).expect("valid");
        let kv = KvRef::new(&rec);
        assert_eq!(kv.key(), b"some/key");
        assert_eq!(kv.value(), &value[..]);
        assert_eq!(
            (
                kv.create_revision(),
                kv.mod_revision(),
                kv.version(),
                kv.lease()
            ),
            (2, 5, 3, 9)
        );
        assert!(!rec.archived().is_tombstone());
        assert!(kv.with_keys_only(true).value().is_empty());
        // One allocation of about the payload: no doubling slack.
        assert!(
            rec.heap_size() < 256 + 8 + 16 + 64 + 40 + 1,
            "{}",
            rec.heap_size()
        );
    }
}
