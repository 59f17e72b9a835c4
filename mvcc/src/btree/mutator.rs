//! Writes: insert, remove and in-place update with path copying, and bulk
//! loading from sorted input.
//!
//! Every write goes through `Arc::make_mut` on each node of the root-to-leaf
//! path: nodes the writer owns alone are changed in place, nodes a published
//! snapshot still shares are shallow-copied first, so readers never see a
//! change. Splits happen on the way back up when a node exceeds
//! [`MAX`]; underflow below [`MIN`] is repaired by merging with, or
//! redistributing against, a sibling, so depth stays logarithmic.

use std::borrow::Borrow;
use std::sync::Arc;

use super::node::{Internal, Leaf, MAX, MIN, Node};

/// A split's result: the separator moving up and the new right sibling.
pub(crate) type Split<K, V> = (K, Arc<Node<K, V>>);

/// Insert into the subtree; returns the old value and, when the node split,
/// the separator and the new right sibling.
pub(crate) fn insert<K: Ord + Clone, V: Clone>(
    node: &mut Arc<Node<K, V>>,
    key: K,
    val: V,
) -> (Option<V>, Option<Split<K, V>>) {
    match Arc::make_mut(node) {
        Node::Leaf(l) => match l.keys.binary_search(&key) {
            Ok(i) => (Some(std::mem::replace(&mut l.vals[i], val)), None),
            Err(i) => {
                l.keys.insert(i, key);
                l.vals.insert(i, val);
                if l.keys.len() <= MAX {
                    return (None, None);
                }
                let mid = l.keys.len() / 2;
                let right = Leaf {
                    keys: l.keys.split_off(mid),
                    vals: l.vals.split_off(mid),
                };
                let sep = right.keys[0].clone();
                (None, Some((sep, Arc::new(Node::Leaf(right)))))
            }
        },
        Node::Internal(n) => {
            let ci = n.child_for(&key);
            let (old, split) = insert(&mut n.children[ci], key, val);
            if let Some((sep, right)) = split {
                n.keys.insert(ci, sep);
                n.children.insert(ci + 1, right);
                if n.children.len() > MAX {
                    return (old, Some(split_internal(n)));
                }
            }
            (old, None)
        }
    }
}

/// Split an over-full internal node in two halves; returns the separator
/// that moves up and the right half.
fn split_internal<K, V>(n: &mut Internal<K, V>) -> Split<K, V> {
    let mid = n.children.len() / 2;
    let children = n.children.split_off(mid);
    let keys = n.keys.split_off(mid);
    let sep = n
        .keys
        .pop()
        .expect("an internal node has mid-1 >= 1 separators");
    (sep, Arc::new(Node::Internal(Internal { keys, children })))
}

/// Remove `key` from the subtree (the caller checked it is present, so no
/// path is copied for nothing).
pub(crate) fn remove<K, V: Clone, Q>(node: &mut Arc<Node<K, V>>, key: &Q) -> Option<V>
where
    K: Ord + Clone + Borrow<Q>,
    Q: Ord + ?Sized,
{
    match Arc::make_mut(node) {
        Node::Leaf(l) => {
            let i = l.keys.binary_search_by(|k| k.borrow().cmp(key)).ok()?;
            l.keys.remove(i);
            Some(l.vals.remove(i))
        }
        Node::Internal(n) => {
            let ci = n.child_for(key);
            let old = remove(&mut n.children[ci], key);
            if n.children[ci].len() < MIN {
                rebalance(n, ci);
            }
            old
        }
    }
}

/// Repair child `ci` of `n` after it fell below [`MIN`]: merge it with a
/// neighbour when both fit in one node, else split their entries evenly.
fn rebalance<K: Clone, V: Clone>(n: &mut Internal<K, V>, ci: usize) {
    if n.children.len() < 2 {
        return;
    }
    let li = if ci > 0 { ci - 1 } else { 0 };
    let (a, b) = n.children.split_at_mut(li + 1);
    let left = Arc::make_mut(&mut a[li]);
    let right = Arc::make_mut(&mut b[0]);
    match (left, right) {
        (Node::Leaf(l), Node::Leaf(r)) => {
            if l.keys.len() + r.keys.len() <= MAX {
                l.keys.append(&mut r.keys);
                l.vals.append(&mut r.vals);
                n.keys.remove(li);
                n.children.remove(li + 1);
            } else {
                l.keys.append(&mut r.keys);
                l.vals.append(&mut r.vals);
                let mid = l.keys.len() / 2;
                r.keys = l.keys.split_off(mid);
                r.vals = l.vals.split_off(mid);
                n.keys[li] = r.keys[0].clone();
            }
        }
        (Node::Internal(l), Node::Internal(r)) => {
            // Pull the separator down between the two halves, concatenate,
            // and (if too big for one node) split again in the middle.
            l.keys.push(n.keys[li].clone());
            l.keys.append(&mut r.keys);
            l.children.append(&mut r.children);
            if l.children.len() <= MAX {
                n.keys.remove(li);
                n.children.remove(li + 1);
            } else {
                let mid = l.children.len() / 2;
                r.children = l.children.split_off(mid);
                r.keys = l.keys.split_off(mid);
                n.keys[li] = l.keys.pop().expect("mid-1 >= 1 separators");
            }
        }
        _ => unreachable!("siblings are on the same level"),
    }
}

/// Build a balanced tree from entries sorted by strictly increasing key.
/// Leaves and internal nodes are filled to 3/4 so that the first inserts
/// after a load do not split every node; sizes are spread evenly so no node
/// ends below [`MIN`].
pub(crate) fn bulk_load<K: Clone, V>(
    entries: impl IntoIterator<Item = (K, V)>,
) -> Option<Arc<Node<K, V>>> {
    const FILL: usize = MAX * 3 / 4;
    let (keys, vals): (Vec<K>, Vec<V>) = entries.into_iter().unzip();
    if keys.is_empty() {
        return None;
    }
    let mut level: Vec<(K, Arc<Node<K, V>>)> = Vec::new();
    let mut keys = keys.into_iter();
    let mut vals = vals.into_iter();
    for size in even_chunks(keys.len(), FILL) {
        let leaf = Leaf {
            keys: keys.by_ref().take(size).collect::<Vec<_>>(),
            vals: vals.by_ref().take(size).collect::<Vec<_>>(),
        };
        level.push((leaf.keys[0].clone(), Arc::new(Node::Leaf(leaf))));
    }
    while level.len() > 1 {
        let mut next = Vec::new();
        let mut items = level.into_iter();
        for size in even_chunks(items.len(), FILL) {
            let group: Vec<_> = items.by_ref().take(size).collect();
            let first = group[0].0.clone();
            let mut keys = Vec::with_capacity(size - 1);
            let mut children = Vec::with_capacity(size);
            for (i, (k, c)) in group.into_iter().enumerate() {
                if i > 0 {
                    keys.push(k);
                }
                children.push(c);
            }
            next.push((first, Arc::new(Node::Internal(Internal { keys, children }))));
        }
        level = next;
    }
    level.pop().map(|(_, root)| root)
}

/// Sizes of `ceil(n / fill)` chunks covering `n`, differing by at most one.
fn even_chunks(n: usize, fill: usize) -> impl Iterator<Item = usize> {
    let count = n.div_ceil(fill).max(1);
    (0..count).map(move |i| n / count + usize::from(i < n % count))
}
