//! Which watchers a changed key concerns: watchers grouped by their exact
//! range, groups indexed by key.
//!
//! - A *group* is every watcher with one exact [`KeyRange`]. Control-plane
//!   clients watch a few prefixes many times over (every kubelet, every
//!   informer), so 100k watchers on one prefix are one group: an event finds
//!   the group once and then walks a dense `Vec` of watcher slots.
//! - Single-key groups sit in a `HashMap` keyed by the key (one lookup per
//!   event, whatever the number of watchers); ranges (prefix, interval,
//!   from-key) sit in an [`IntervalMap`], O(log n + matches) per event.
//! - `members` holds only the *synced* watchers of a group (those fed by
//!   `notify`); unsynced ones keep a reference (`refs`) so the range stays
//!   known for catch-up, but cost `notify` nothing.
//!
//! Slots (watcher and group ids) are `u32` indexes into slabs; a watcher
//! remembers its position in `members` so removal is a `swap_remove`.

use std::collections::HashMap;

use super::interval::IntervalMap;
use crate::kv::KeyRange;

/// A group's slot.
pub(crate) type GroupId = u32;

/// Watchers sharing one exact range.
#[derive(Debug)]
pub(crate) struct Group {
    /// The range.
    pub(crate) range: KeyRange,
    /// Synced watcher slots, unordered.
    pub(crate) members: Vec<u32>,
    /// Watchers (synced or not) using the group; 0 = free slot.
    refs: u32,
}

/// Groups by key and by range; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Index {
    groups: Vec<Group>,
    free: Vec<GroupId>,
    by_key: HashMap<Vec<u8>, GroupId>,
    by_range: IntervalMap<GroupId>,
}

impl Index {
    /// The group for `range`, created if new; counts one more user.
    pub(crate) fn acquire(&mut self, range: &KeyRange) -> GroupId {
        let found = if range.is_single() {
            self.by_key.get(&range.start).copied()
        } else {
            self.by_range.get(range).copied()
        };
        if let Some(g) = found {
            self.groups[g as usize].refs += 1;
            return g;
        }
        let group = Group {
            range: range.clone(),
            members: Vec::new(),
            refs: 1,
        };
        let g = match self.free.pop() {
            Some(g) => {
                self.groups[g as usize] = group;
                g
            }
            None => {
                self.groups.push(group);
                GroupId::try_from(self.groups.len() - 1).expect("fewer than 2^32 groups")
            }
        };
        if range.is_single() {
            self.by_key.insert(range.start.clone(), g);
        } else {
            self.by_range.insert(range.clone(), g);
        }
        g
    }

    /// One user fewer; the group goes away with its last user.
    pub(crate) fn release(&mut self, g: GroupId) {
        let group = &mut self.groups[g as usize];
        group.refs -= 1;
        if group.refs > 0 {
            return;
        }
        debug_assert!(group.members.is_empty());
        let range = std::mem::replace(
            &mut group.range,
            KeyRange {
                start: Vec::new(),
                end: None,
            },
        );
        group.members = Vec::new();
        if range.is_single() {
            self.by_key.remove(&range.start);
        } else {
            self.by_range.remove(&range);
        }
        self.free.push(g);
    }

    pub(crate) fn group(&self, g: GroupId) -> &Group {
        &self.groups[g as usize]
    }

    /// Add a synced watcher; returns its position in `members`.
    pub(crate) fn add_member(&mut self, g: GroupId, slot: u32) -> u32 {
        let m = &mut self.groups[g as usize].members;
        m.push(slot);
        u32::try_from(m.len() - 1).expect("fewer than 2^32 watchers")
    }

    /// Remove the member at `pos`; returns the slot moved into `pos`, whose
    /// position the caller must update.
    pub(crate) fn remove_member(&mut self, g: GroupId, pos: u32) -> Option<u32> {
        let m = &mut self.groups[g as usize].members;
        m.swap_remove(pos as usize);
        m.get(pos as usize).copied()
    }

    /// Call `f` for every group whose range contains `key`.
    pub(crate) fn matching(&self, key: &[u8], f: &mut impl FnMut(GroupId)) {
        if let Some(&g) = self.by_key.get(key) {
            f(g);
        }
        self.by_range.stab(key, &mut |&g| f(g));
    }

    /// Number of live groups (for tests and stats).
    #[cfg(test)]
    pub(crate) fn groups(&self) -> usize {
        self.by_key.len() + self.by_range.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_share_and_go_away() {
        let mut ix = Index::default();
        let a = ix.acquire(&KeyRange::single(b"a"));
        let a2 = ix.acquire(&KeyRange::single(b"a"));
        let p = ix.acquire(&KeyRange::prefix(b"a"));
        assert_eq!(a, a2);
        assert_ne!(a, p);
        assert_eq!(ix.groups(), 2);
        ix.add_member(a, 7);
        ix.add_member(p, 8);
        let mut got = Vec::new();
        ix.matching(b"a", &mut |g| got.push(g));
        got.sort_unstable();
        assert_eq!(got, vec![a.min(p), a.max(p)]);
        got.clear();
        ix.matching(b"ab", &mut |g| got.push(g));
        assert_eq!(got, vec![p]);

        assert_eq!(ix.remove_member(a, 0), None);
        ix.release(a);
        ix.release(a);
        assert_eq!(ix.groups(), 1);
        got.clear();
        ix.matching(b"a", &mut |g| got.push(g));
        assert_eq!(got, vec![p]);
        // The freed slot is reused.
        assert_eq!(ix.acquire(&KeyRange::new(b"x", b"\0")), a);
    }
}
