//! A copy-on-write B+tree, generic over key and value, used for every index
//! of the store (key index, revision store, lease index).
//!
//! - [`BTree`] is a root `Arc` plus a length. Cloning it is O(1) and yields an
//!   independent snapshot: the writer's later changes path-copy shared nodes
//!   (see [`mutator`]) and never touch what a clone sees.
//! - Readers iterate with [`cursor::Iter`] without any lock.
//! - Values should be cheap to clone (`Arc`s, small handles): a path copy
//!   clones up to 64 values per level.

mod cursor;
mod mutator;
mod node;

use std::borrow::Borrow;
use std::ops::Bound;
use std::sync::Arc;

pub(crate) use cursor::Iter;
use node::Node;

/// An ordered map with O(1) snapshots.
pub(crate) struct BTree<K, V> {
    root: Option<Arc<Node<K, V>>>,
    len: usize,
}

impl<K, V> Clone for BTree<K, V> {
    fn clone(&self) -> Self {
        Self {
            root: self.root.clone(),
            len: self.len,
        }
    }
}

impl<K, V> Default for BTree<K, V> {
    fn default() -> Self {
        Self { root: None, len: 0 }
    }
}

impl<K, V> std::fmt::Debug for BTree<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BTree")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<K: Ord + Clone, V: Clone> BTree<K, V> {
    /// An empty tree.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Build from entries sorted by strictly increasing key.
    pub(crate) fn from_sorted(entries: impl IntoIterator<Item = (K, V)>) -> Self {
        let root = mutator::bulk_load(entries);
        let mut t = Self { root, len: 0 };
        t.len = t.iter().count();
        t
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no entries.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entry for `key`.
    pub(crate) fn get_key_value<Q>(&self, key: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let mut node = self.root.as_ref()?;
        loop {
            match &**node {
                Node::Internal(n) => node = &n.children[n.child_for(key)],
                Node::Leaf(l) => {
                    let i = l.keys.binary_search_by(|k| k.borrow().cmp(key)).ok()?;
                    return Some((&l.keys[i], &l.vals[i]));
                }
            }
        }
    }

    /// The value for `key`.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.get_key_value(key).map(|(_, v)| v)
    }

    /// Whether `key` is present.
    pub(crate) fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.get(key).is_some()
    }

    /// A mutable reference to the value for `key`, path-copying shared nodes.
    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        if !self.contains_key(key) {
            return None;
        }
        let mut node = self.root.as_mut()?;
        loop {
            match Arc::make_mut(node) {
                Node::Internal(n) => {
                    let ci = n.child_for(key);
                    node = &mut n.children[ci];
                }
                Node::Leaf(l) => {
                    let i = l.keys.binary_search_by(|k| k.borrow().cmp(key)).ok()?;
                    return Some(&mut l.vals[i]);
                }
            }
        }
    }

    /// Insert or replace; returns the previous value.
    pub(crate) fn insert(&mut self, key: K, val: V) -> Option<V> {
        let Some(root) = self.root.as_mut() else {
            self.root = Some(Arc::new(Node::Leaf(node::Leaf {
                keys: vec![key],
                vals: vec![val],
            })));
            self.len = 1;
            return None;
        };
        let (old, split) = mutator::insert(root, key, val);
        if let Some((sep, right)) = split {
            let left = self.root.take().expect("root present");
            self.root = Some(Arc::new(Node::Internal(node::Internal {
                keys: vec![sep],
                children: vec![left, right],
            })));
        }
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Remove `key`; returns its value.
    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        if !self.contains_key(key) {
            return None;
        }
        let root = self.root.as_mut()?;
        let old = mutator::remove(root, key);
        debug_assert!(old.is_some());
        self.len -= 1;
        // Shrink: an internal root with one child hands the root down; an
        // empty leaf root means an empty tree.
        loop {
            match self.root.as_deref() {
                Some(Node::Internal(n)) if n.children.len() == 1 => {
                    self.root = Some(n.children[0].clone());
                }
                Some(Node::Leaf(l)) if l.keys.is_empty() => self.root = None,
                _ => break,
            }
        }
        old
    }

    /// Entries in key order starting at `start`.
    pub(crate) fn range_from<Q>(&self, start: Bound<&Q>) -> Iter<'_, K, V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        Iter::seek(self.root.as_ref(), start)
    }

    /// All entries in key order.
    pub(crate) fn iter(&self) -> Iter<'_, K, V> {
        Iter::seek::<K>(self.root.as_ref(), Bound::Unbounded)
    }

    /// Levels from root to leaves (0 when empty).
    #[cfg(test)]
    pub(crate) fn depth(&self) -> usize {
        let mut d = 0;
        let mut node = self.root.as_ref();
        while let Some(n) = node {
            d += 1;
            node = match &**n {
                Node::Internal(i) => i.children.first(),
                Node::Leaf(_) => None,
            };
        }
        d
    }

    /// Check the structural invariants (sorted, separators, fill, equal
    /// depth); panics with a description. Tests only.
    #[cfg(test)]
    pub(crate) fn check(&self) {
        fn walk<K: Ord, V>(
            n: &Node<K, V>,
            lo: Option<&K>,
            hi: Option<&K>,
            is_root: bool,
            depth: usize,
            leaf_depth: &mut Option<usize>,
        ) -> usize {
            if !is_root {
                assert!(n.len() >= node::MIN, "underfull node: {}", n.len());
            }
            assert!(n.len() <= node::MAX, "overfull node");
            match n {
                Node::Leaf(l) => {
                    assert_eq!(l.keys.len(), l.vals.len());
                    assert!(l.keys.windows(2).all(|w| w[0] < w[1]), "leaf unsorted");
                    if let (Some(lo), Some(f)) = (lo, l.keys.first()) {
                        assert!(f >= lo);
                    }
                    if let (Some(hi), Some(l)) = (hi, l.keys.last()) {
                        assert!(l < hi);
                    }
                    match leaf_depth {
                        Some(d) => assert_eq!(*d, depth, "leaves at different depths"),
                        None => *leaf_depth = Some(depth),
                    }
                    l.keys.len()
                }
                Node::Internal(i) => {
                    assert_eq!(i.keys.len() + 1, i.children.len());
                    assert!(i.children.len() >= 2);
                    assert!(
                        i.keys.windows(2).all(|w| w[0] < w[1]),
                        "separators unsorted"
                    );
                    let mut total = 0;
                    for (ci, c) in i.children.iter().enumerate() {
                        let clo = if ci == 0 { lo } else { Some(&i.keys[ci - 1]) };
                        let chi = if ci == i.keys.len() {
                            hi
                        } else {
                            Some(&i.keys[ci])
                        };
                        assert!(c.first_key().is_some());
                        total += walk(c, clo, chi, false, depth + 1, leaf_depth);
                    }
                    total
                }
            }
        }
        let mut leaf_depth = None;
        let n = self
            .root
            .as_ref()
            .map_or(0, |r| walk(r, None, None, true, 1, &mut leaf_depth));
        assert_eq!(n, self.len, "len mismatch");
        assert!(self.depth() <= node::MAX_DEPTH);
    }
}

#[cfg(test)]
mod btree_test;
