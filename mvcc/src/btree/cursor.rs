//! Ordered iteration with seek over one tree version.
//!
//! A [`Iter`] borrows the root it started from, so it sees exactly that
//! snapshot no matter what the writer publishes meanwhile. It keeps the path
//! from the root as a stack of `(internal node, child index)`; advancing past
//! the end of a leaf pops until a node has a next child and descends along
//! its leftmost edge. Each step is amortised O(1), a seek O(depth · log fanout).

use std::borrow::Borrow;
use std::ops::Bound;
use std::sync::Arc;

use super::node::{Internal, Leaf, MAX_DEPTH, Node};

/// Forward iterator over `(&K, &V)` in key order.
pub(crate) struct Iter<'a, K, V> {
    stack: Vec<(&'a Internal<K, V>, usize)>,
    leaf: Option<&'a Leaf<K, V>>,
    idx: usize,
}

impl<'a, K: Ord, V> Iter<'a, K, V> {
    /// An iterator positioned at the first key not below `start`.
    pub(crate) fn seek<Q>(root: Option<&'a Arc<Node<K, V>>>, start: Bound<&Q>) -> Self
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let mut it = Iter {
            stack: Vec::with_capacity(MAX_DEPTH),
            leaf: None,
            idx: 0,
        };
        let Some(mut node) = root else { return it };
        loop {
            match &**node {
                Node::Internal(n) => {
                    let ci = match start {
                        Bound::Included(k) | Bound::Excluded(k) => n.child_for(k),
                        Bound::Unbounded => 0,
                    };
                    it.stack.push((n, ci));
                    node = &n.children[ci];
                }
                Node::Leaf(l) => {
                    it.idx = match start {
                        Bound::Included(k) => l.keys.partition_point(|x| x.borrow() < k),
                        Bound::Excluded(k) => l.keys.partition_point(|x| x.borrow() <= k),
                        Bound::Unbounded => 0,
                    };
                    it.leaf = Some(l);
                    return it;
                }
            }
        }
    }

    /// Move to the leftmost leaf of the next subtree; `false` at the end.
    fn next_leaf(&mut self) -> bool {
        while let Some((n, ci)) = self.stack.pop() {
            if ci + 1 < n.children.len() {
                self.stack.push((n, ci + 1));
                let mut node = &n.children[ci + 1];
                loop {
                    match &**node {
                        Node::Internal(m) => {
                            self.stack.push((m, 0));
                            node = &m.children[0];
                        }
                        Node::Leaf(l) => {
                            self.leaf = Some(l);
                            self.idx = 0;
                            return true;
                        }
                    }
                }
            }
        }
        self.leaf = None;
        false
    }
}

impl<'a, K: Ord, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let leaf = self.leaf?;
            if self.idx < leaf.keys.len() {
                let i = self.idx;
                self.idx += 1;
                return Some((&leaf.keys[i], &leaf.vals[i]));
            }
            if !self.next_leaf() {
                return None;
            }
        }
    }
}
