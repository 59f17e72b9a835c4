//! B+tree nodes: sorted leaves holding entries and internal nodes holding
//! separators and `Arc`-shared children.
//!
//! Children are `Arc`s so that a published root can be shared by every
//! reader while the writer path-copies: `Arc::make_mut` mutates a node in
//! place when the writer holds the only reference and clones it (a shallow
//! copy: keys, values and child `Arc`s) when a snapshot still shares it.
//!
//! An internal node with children `c0..cn` has separators `k1..kn`; child
//! `ci` holds the keys in `[k(i), k(i+1))`, so a key descends into child
//! `partition_point(|s| s <= key)`.

use std::sync::Arc;

/// Most entries in a leaf and most children in an internal node. 64 keeps a
/// leaf of 16-byte revisions within a few cache lines per binary-search step
/// and gives depth 4 for 16M entries; a path copy clones at most
/// `depth × 64` entries.
pub(crate) const MAX: usize = 64;

/// Fewest entries (or children) in a non-root node after a removal. A
/// quarter rather than a half makes alternating insert/remove at a boundary
/// cheap (no merge/split ping-pong) while still bounding depth at
/// `1 + log16(len)`.
pub(crate) const MIN: usize = MAX / 4;

/// Depth no valid tree reaches: with fanout ≥ 16 below the root, 2^64
/// entries need 17 levels. Iterators size their stacks from this.
pub(crate) const MAX_DEPTH: usize = 20;

/// A node; `Clone` is the shallow copy that path copying makes.
#[derive(Clone)]
pub(crate) enum Node<K, V> {
    Leaf(Leaf<K, V>),
    Internal(Internal<K, V>),
}

/// Sorted keys with their values, `keys.len() == vals.len()`.
#[derive(Clone)]
pub(crate) struct Leaf<K, V> {
    pub(crate) keys: Vec<K>,
    pub(crate) vals: Vec<V>,
}

/// Separators and children, `keys.len() + 1 == children.len()`.
#[derive(Clone)]
pub(crate) struct Internal<K, V> {
    pub(crate) keys: Vec<K>,
    pub(crate) children: Vec<Arc<Node<K, V>>>,
}

impl<K, V> Node<K, V> {
    /// Entries of a leaf, children of an internal node.
    pub(crate) fn len(&self) -> usize {
        match self {
            Node::Leaf(l) => l.keys.len(),
            Node::Internal(n) => n.children.len(),
        }
    }

    /// The smallest key under this node (`None` only for an empty leaf).
    #[cfg(test)]
    pub(crate) fn first_key(&self) -> Option<&K> {
        match self {
            Node::Leaf(l) => l.keys.first(),
            Node::Internal(n) => n.children.first().and_then(|c| c.first_key()),
        }
    }
}

impl<K: Ord, V> Internal<K, V> {
    /// Index of the child that may hold `key`.
    pub(crate) fn child_for<Q>(&self, key: &Q) -> usize
    where
        K: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.keys.partition_point(|s| s.borrow() <= key)
    }
}
