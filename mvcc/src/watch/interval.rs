//! An interval map from key ranges to values, answering "which ranges
//! contain this key" (a stabbing query) in O(log n + matches) expected.
//!
//! Range watchers are grouped by their exact range (see `index`), so this map
//! holds one entry per *distinct* range. It is a treap (a binary search tree
//! ordered by `(start, end)`, heap-ordered by random priorities, so it stays
//! balanced in expectation whatever order ranges arrive in) augmented with,
//! per subtree, the node holding the largest end. A stabbing query for `key`
//! skips a subtree whose largest end is `<= key` (nothing there reaches the
//! key) and a right subtree whose node starts after `key` (everything there
//! starts later still).
//!
//! Why ours: it is ~200 lines, std only, and a `BTreeMap` of starts alone
//! would make every event scan all ranges that start before its key, which
//! is linear in distinct ranges when they overlap.
//!
//! Nodes live in a `Vec` slab addressed by `u32` (children, the max-end
//! pointer), so the tree is a few allocations, not one per node. `end ==
//! None` (from-key, unbounded) sorts after every bounded end.

use std::cmp::Ordering;
use std::hash::BuildHasher;

use crate::kv::KeyRange;

const NIL: u32 = u32::MAX;

#[derive(Debug)]
struct Node<V> {
    range: KeyRange,
    value: V,
    left: u32,
    right: u32,
    prio: u64,
    /// The node in this subtree with the largest end.
    max_end: u32,
}

/// Map from distinct [`KeyRange`]s to values with stabbing queries.
#[derive(Debug)]
pub(crate) struct IntervalMap<V> {
    nodes: Vec<Option<Node<V>>>,
    free: Vec<u32>,
    root: u32,
    len: usize,
    /// xorshift64 state for priorities; seeded per process so an adversary
    /// cannot pick an insertion order that degenerates the tree.
    rng: u64,
}

/// `(start, end)` order; an unbounded end is the largest.
fn cmp_range(a: &KeyRange, b: &KeyRange) -> Ordering {
    a.start
        .cmp(&b.start)
        .then_with(|| cmp_end(a.end.as_deref(), b.end.as_deref()))
}

fn cmp_end(a: Option<&[u8]>, b: Option<&[u8]>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => x.cmp(y),
    }
}

/// Whether an interval ending at `end` (exclusive) reaches past `key`.
fn end_after(end: Option<&[u8]>, key: &[u8]) -> bool {
    end.is_none_or(|e| e > key)
}

impl<V> Default for IntervalMap<V> {
    fn default() -> Self {
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64);
        Self {
            nodes: Vec::new(),
            free: Vec::new(),
            root: NIL,
            len: 0,
            rng: seed | 1,
        }
    }
}

impl<V> IntervalMap<V> {
    /// Number of distinct ranges.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn node(&self, i: u32) -> &Node<V> {
        self.nodes[i as usize].as_ref().expect("live node")
    }

    fn node_mut(&mut self, i: u32) -> &mut Node<V> {
        self.nodes[i as usize].as_mut().expect("live node")
    }

    fn find(&self, range: &KeyRange) -> u32 {
        let mut t = self.root;
        while t != NIL {
            let n = self.node(t);
            t = match cmp_range(range, &n.range) {
                Ordering::Less => n.left,
                Ordering::Greater => n.right,
                Ordering::Equal => return t,
            };
        }
        NIL
    }

    /// The value stored for exactly `range`.
    pub(crate) fn get(&self, range: &KeyRange) -> Option<&V> {
        match self.find(range) {
            NIL => None,
            t => Some(&self.node(t).value),
        }
    }

    /// Store `value` for `range`, which must not be present.
    pub(crate) fn insert(&mut self, range: KeyRange, value: V) {
        debug_assert!(self.get(&range).is_none(), "range already present");
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let (l, r) = self.split(self.root, &range, false);
        let node = Node {
            range,
            value,
            left: NIL,
            right: NIL,
            prio: self.rng,
            max_end: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = Some(node);
                i
            }
            None => {
                self.nodes.push(Some(node));
                u32::try_from(self.nodes.len() - 1).expect("fewer than 2^32 ranges")
            }
        };
        self.node_mut(i).max_end = i;
        let left = self.merge(l, i);
        self.root = self.merge(left, r);
        self.len += 1;
    }

    /// Remove `range`, returning its value.
    pub(crate) fn remove(&mut self, range: &KeyRange) -> Option<V> {
        let (l, r) = self.split(self.root, range, false);
        let (m, r) = self.split(r, range, true);
        self.root = self.merge(l, r);
        if m == NIL {
            return None;
        }
        debug_assert!(self.node(m).left == NIL && self.node(m).right == NIL);
        let node = self.nodes[m as usize].take().expect("live node");
        self.free.push(m);
        self.len -= 1;
        Some(node.value)
    }

    /// Call `f` with the value of every range that contains `key`.
    pub(crate) fn stab(&self, key: &[u8], f: &mut impl FnMut(&V)) {
        self.stab_from(self.root, key, f);
    }

    fn stab_from(&self, t: u32, key: &[u8], f: &mut impl FnMut(&V)) {
        if t == NIL {
            return;
        }
        let n = self.node(t);
        if !end_after(self.node(n.max_end).range.end.as_deref(), key) {
            return; // every range below ends at or before the key
        }
        self.stab_from(n.left, key, f);
        if n.range.start.as_slice() <= key {
            if end_after(n.range.end.as_deref(), key) {
                f(&n.value);
            }
            self.stab_from(n.right, key, f);
        }
    }

    /// Recompute `t`'s max-end pointer from itself and its children.
    fn update(&mut self, t: u32) {
        let n = self.node(t);
        let mut m = t;
        for c in [n.left, n.right] {
            if c != NIL {
                let cm = self.node(c).max_end;
                if cmp_end(
                    self.node(cm).range.end.as_deref(),
                    self.node(m).range.end.as_deref(),
                ) == Ordering::Greater
                {
                    m = cm;
                }
            }
        }
        self.node_mut(t).max_end = m;
    }

    /// Split `t` into (keys before `key`, the rest); with `take_equal`,
    /// (keys `<= key`, keys after it).
    fn split(&mut self, t: u32, key: &KeyRange, take_equal: bool) -> (u32, u32) {
        if t == NIL {
            return (NIL, NIL);
        }
        let ord = cmp_range(&self.node(t).range, key);
        let goes_left = ord == Ordering::Less || (take_equal && ord == Ordering::Equal);
        if goes_left {
            let (l, r) = self.split(self.node(t).right, key, take_equal);
            self.node_mut(t).right = l;
            self.update(t);
            (t, r)
        } else {
            let (l, r) = self.split(self.node(t).left, key, take_equal);
            self.node_mut(t).left = r;
            self.update(t);
            (l, t)
        }
    }

    /// Join two treaps where every key of `a` sorts before every key of `b`.
    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.node(a).prio > self.node(b).prio {
            let r = self.merge(self.node(a).right, b);
            self.node_mut(a).right = r;
            self.update(a);
            a
        } else {
            let l = self.merge(a, self.node(b).left);
            self.node_mut(b).left = l;
            self.update(b);
            b
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tiny deterministic generator for the brute-force comparison.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    fn key(i: u64) -> Vec<u8> {
        vec![b'a' + (i / 8) as u8, b'0' + (i % 8) as u8]
    }

    #[test]
    fn matches_brute_force() {
        let mut rng = Rng(0x1234_5678);
        let mut map = IntervalMap::default();
        let mut model: Vec<(KeyRange, u32)> = Vec::new();
        for step in 0..1500u32 {
            if rng.next(3) > 0 || model.is_empty() {
                let s = key(rng.next(40));
                let range = match rng.next(4) {
                    0 => KeyRange::new(&s, b"\0"),
                    1 => KeyRange::prefix(&s[..1]),
                    _ => KeyRange::new(&s, &key(rng.next(40))),
                };
                if map.get(&range).is_none() {
                    map.insert(range.clone(), step);
                    model.push((range, step));
                }
            } else {
                let i = rng.next(model.len() as u64) as usize;
                let (range, v) = model.swap_remove(i);
                assert_eq!(map.remove(&range), Some(v));
                assert_eq!(map.remove(&range), None);
            }
            assert_eq!(map.len(), model.len());
            for probe in 0..40 {
                let k = key(probe);
                let mut got = Vec::new();
                map.stab(&k, &mut |v| got.push(*v));
                got.sort_unstable();
                let mut want: Vec<u32> = model
                    .iter()
                    .filter(|(r, _)| r.contains(&k))
                    .map(|(_, v)| *v)
                    .collect();
                want.sort_unstable();
                assert_eq!(got, want, "key {k:?}");
            }
        }
    }

    #[test]
    fn empty_and_unbounded() {
        let mut map = IntervalMap::default();
        map.insert(KeyRange::new(b"b", b"a"), 1); // empty: never matches
        map.insert(KeyRange::new(b"\0", b"\0"), 2); // every key
        let mut got = Vec::new();
        map.stab(b"b", &mut |v| got.push(*v));
        assert_eq!(got, vec![2]);
        assert_eq!(map.get(&KeyRange::new(b"b", b"a")), Some(&1));
    }
}
