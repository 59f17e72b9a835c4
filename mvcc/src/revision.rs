//! Revisions: the store's clock.
//!
//! A revision is `(main, sub)`: `main` is the cluster-wide revision, +1 per
//! write transaction that changes something; `sub` orders the changes inside
//! one transaction (0, 1, 2, …). This is etcd's `revision` exactly.
//!
//! Encoding (used as B+tree keys and in snapshots): 16 bytes, `main` then
//! `sub`, each big-endian, so comparing the bytes compares the revisions.
//!
//! ```text
//! 0               8               16
//! +---------------+---------------+
//! | main (i64 BE) | sub (i64 BE)  |
//! +---------------+---------------+
//! ```

/// A `(main, sub)` revision. Ordered by `main`, then `sub`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision {
    /// The store revision of the transaction.
    pub main: i64,
    /// The index of the change inside that transaction.
    pub sub: i64,
}

impl Revision {
    /// Size of [`Revision::to_bytes`].
    pub const ENCODED_LEN: usize = 16;

    /// A revision.
    pub const fn new(main: i64, sub: i64) -> Self {
        Self { main, sub }
    }

    /// Big-endian encoding: byte order equals numeric order for
    /// non-negative revisions (the only ones the store makes).
    pub fn to_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.main.to_be_bytes());
        out[8..].copy_from_slice(&self.sub.to_be_bytes());
        out
    }

    /// Inverse of [`Revision::to_bytes`]; `None` if `b` is not 16 bytes.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let b: &[u8; 16] = b.try_into().ok()?;
        let main = i64::from_be_bytes(b[..8].try_into().ok()?);
        let sub = i64::from_be_bytes(b[8..].try_into().ok()?);
        Some(Self { main, sub })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_order_is_numeric_order() {
        let revs = [
            Revision::new(0, 0),
            Revision::new(1, 0),
            Revision::new(1, 1),
            Revision::new(1, 256),
            Revision::new(2, 0),
            Revision::new(256, 0),
            Revision::new(i64::MAX, 0),
        ];
        for w in revs.windows(2) {
            assert!(w[0] < w[1]);
            assert!(w[0].to_bytes() < w[1].to_bytes());
            assert_eq!(Revision::from_bytes(&w[1].to_bytes()), Some(w[1]));
        }
        assert_eq!(Revision::from_bytes(&[0; 15]), None);
    }
}
