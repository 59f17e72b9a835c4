//! Segment file names: `<seq:016x>-<index:016x>.wal`, etcd's scheme.
//!
//! `seq` numbers segments 0, 1, 2, … with no gaps (purging removes a
//! prefix); `index` is the raft index of the first entry the segment was
//! opened for (the log's next index at the time, 0 if any was allowed).
//! Both are 16 lowercase hex digits, so names sort in `seq` order. A reset
//! inside a segment does not rename it; the next segment's `index`
//! continues from the reset, so after a reset to a lower index `index`
//! can go down from one segment to the next (nothing relies on it rising).

/// A parsed segment name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SegmentName {
    /// Sequence number.
    pub seq: u64,
    /// First raft index the segment was opened for.
    pub index: u64,
}

impl SegmentName {
    /// The file name.
    pub fn file_name(&self) -> String {
        format!("{:016x}-{:016x}.wal", self.seq, self.index)
    }

    /// Parse a file name; `None` if it is not a segment name.
    pub fn parse(name: &str) -> Option<Self> {
        let stem = name.strip_suffix(".wal")?;
        let (seq, index) = stem.split_once('-')?;
        if seq.len() != 16 || index.len() != 16 {
            return None;
        }
        let hex = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                .then(|| u64::from_str_radix(s, 16).ok())
                .flatten()
        };
        Some(Self {
            seq: hex(seq)?,
            index: hex(index)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (seq, index) in [(0, 0), (1, 1), (0x1f, 0xabcdef), (u64::MAX, u64::MAX)] {
            let n = SegmentName { seq, index };
            assert_eq!(SegmentName::parse(&n.file_name()), Some(n));
        }
        assert_eq!(
            SegmentName {
                seq: 1,
                index: 0x10
            }
            .file_name(),
            "0000000000000001-0000000000000010.wal"
        );
        for bad in [
            "x.wal",
            "0-0.wal",
            "0000000000000001-0000000000000010.snap",
            "000000000000000G-0000000000000010.wal",
            "0000000000000001-000000000000001A.wal",
        ] {
            assert_eq!(SegmentName::parse(bad), None, "{bad}");
        }
    }
}
