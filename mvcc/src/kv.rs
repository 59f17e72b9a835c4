//! The data model handed to callers: key-values, events and key ranges.
//!
//! These are owned values for the API edge (the node, the wire shims). The
//! store's read path can also hand out borrowed views of archived records;
//! those convert into these types with `to_owned`-style helpers.

/// A key's state at one revision, as etcd's `mvccpb.KeyValue`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct KeyValue {
    /// The key; never empty.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// Revision of the put that created the key's current generation.
    pub create_revision: i64,
    /// Main revision of the last change to the key.
    pub mod_revision: i64,
    /// 1 on create, +1 per put; a delete resets the history.
    pub version: i64,
    /// The value.
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// Attached lease id, 0 for none.
    pub lease: i64,
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A put (create or update).
    Put,
    /// A delete (by DeleteRange, txn or lease revocation).
    Delete,
}

/// One change, as etcd's `mvccpb.Event`.
///
/// For a delete, `kv` holds the key, `mod_revision` = the delete's revision
/// and every other field zero, as etcd sends it (a tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key-value after the change (a tombstone for deletes).
    pub kv: KeyValue,
    /// The key-value before the change, when it was asked for and existed.
    pub prev_kv: Option<KeyValue>,
}

/// The keys a request names, from etcd's `(key, range_end)` pair.
///
/// - `range_end` empty: the single key `key`.
/// - `range_end == [0]`: every key `>= key` ("from key"); with `key == [0]`
///   too, every key.
/// - otherwise: the half-open interval `[key, range_end)`; prefix requests
///   arrive as `range_end = prefix_end(key)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyRange {
    /// Inclusive start.
    pub start: Vec<u8>,
    /// Exclusive end; `None` = unbounded (from-key). For a single key this is
    /// `Some(key + [0])`.
    pub end: Option<Vec<u8>>,
}

impl KeyRange {
    /// Interpret etcd's `(key, range_end)`.
    pub fn new(key: &[u8], range_end: &[u8]) -> Self {
        if range_end.is_empty() {
            let mut end = key.to_vec();
            end.push(0);
            return Self {
                start: key.to_vec(),
                end: Some(end),
            };
        }
        if range_end == [0] {
            return Self {
                start: key.to_vec(),
                end: None,
            };
        }
        Self {
            start: key.to_vec(),
            end: Some(range_end.to_vec()),
        }
    }

    /// The single key `key`.
    pub fn single(key: &[u8]) -> Self {
        Self::new(key, &[])
    }

    /// Every key with `prefix`.
    pub fn prefix(prefix: &[u8]) -> Self {
        Self::new(prefix, &prefix_end(prefix))
    }

    /// Whether this names exactly one key.
    pub fn is_single(&self) -> bool {
        match &self.end {
            Some(end) => {
                end.len() == self.start.len() + 1
                    && end.starts_with(&self.start)
                    && end.last() == Some(&0)
            }
            None => false,
        }
    }

    /// Whether `key` falls inside.
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && self.end.as_deref().is_none_or(|end| key < end)
    }

    /// Whether the range is empty (`end <= start`), as etcd treats a
    /// `range_end` below `key`: nothing matches.
    pub fn is_empty(&self) -> bool {
        self.end
            .as_deref()
            .is_some_and(|end| end <= self.start.as_slice())
    }
}

/// etcd's `GetPrefixRangeEnd`: the smallest key greater than every key with
/// `prefix`: drop trailing 0xff bytes, then add one to the last byte. A
/// prefix of only 0xff bytes (or empty) has no such key: `[0]` (from-key).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(&last) = end.last() {
        if last < 0xff {
            *end.last_mut().expect("non-empty") += 1;
            return end;
        }
        end.pop();
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_carries() {
        assert_eq!(prefix_end(b"a"), b"b");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
        assert_eq!(prefix_end(b""), b"\0");
    }

    #[test]
    fn ranges() {
        let single = KeyRange::single(b"foo");
        assert!(single.is_single());
        assert!(single.contains(b"foo"));
        assert!(!single.contains(b"foo\0"));
        assert!(!single.contains(b"fo"));

        let from = KeyRange::new(b"b", b"\0");
        assert!(from.contains(b"b") && from.contains(b"zzz") && !from.contains(b"a"));
        let all = KeyRange::new(b"\0", b"\0");
        assert!(all.contains(b"\0") && all.contains(b"\xff"));

        let p = KeyRange::prefix(b"a/");
        assert!(p.contains(b"a/") && p.contains(b"a/x") && !p.contains(b"a0"));
        assert!(!p.is_single());

        assert!(KeyRange::new(b"b", b"a").is_empty());
    }
}
