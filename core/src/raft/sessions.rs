//! Exactly-once proposals: the applied state's table of client requests
//! the log has seen, so a request proposed twice takes effect once.
//!
//! Why a request can reach the log twice: a member that takes a client
//! write forwards it to the leader and, when the forward fails in a way
//! that does not say whether it arrived (the connection broke, the leader
//! died or stepped down after appending it), proposes it again — the
//! client is still waiting, and etcd's clients expect the member to try
//! until its request timeout. The first copy may already be in a
//! majority's log and commit under the next leader; the second copy then
//! commits after it. Without this table both applied (issue #18: a put at
//! two revisions, a CAS answered `succeeded = false` whose put was in the
//! history).
//!
//! How: every request carries a [`RequestId`] — the member process that
//! took it from the client (member id and a random incarnation drawn at
//! start, so ids never repeat across restarts) and a sequence number
//! counted by that process — and the process's `floor`: the lowest
//! sequence number it still waits for. Every member applies the log in
//! the same order, so the table below is the same on every member and
//! travels in snapshots. At apply:
//! - a sequence number already applied in its session: a duplicate, not
//!   applied again, answered with the first copy's outcome;
//! - below the session's floor: the origin has finished with it (it got
//!   an answer, or gave up and told its client the outcome is unknown), so
//!   a copy that turns up now is stale and is not applied: applying it
//!   could be a second effect, and nobody waits for it;
//! - otherwise it applies and its outcome is kept until the floor passes.
//!
//! Bounds: a session keeps the outcomes of requests at or above its floor,
//! i.e. roughly its requests in flight; the floor moves up as requests
//! finish. If one request stays in flight while many finish (it cannot
//! outlive the request timeout, 7 s by default), at most
//! [`MAX_DONE_PER_SESSION`] outcomes are kept: the oldest are dropped and
//! the floor raised past them, so a late copy of those is stale (never a
//! second effect). At most [`MAX_SESSIONS`] sessions are kept (one per
//! member process that has proposed); beyond that the one that proposed
//! least recently (by log index) goes. A copy from an evicted session
//! would be taken as new; it would have to reach the log after more than
//! a thousand newer member processes proposed, while an unresolved copy
//! lives at most until the next leader commits or overwrites it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::outcome::{Applied, ApplyError};

/// Sessions kept (member processes that proposed).
pub const MAX_SESSIONS: usize = 1024;
/// Outcomes kept per session at or above its floor.
pub const MAX_DONE_PER_SESSION: usize = 65_536;

/// One client request, named across members and restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestId {
    /// The member that took the request from its client.
    pub member: u64,
    /// That member process's incarnation: random, drawn at start.
    pub incarnation: u64,
    /// Counted by that process from 1.
    pub seq: u64,
}

impl RequestId {
    /// An entry written before request ids existed (member and
    /// incarnation 0): the table neither checks nor keeps it.
    pub fn is_legacy(&self) -> bool {
        self.member == 0 && self.incarnation == 0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:x}.{:x}.{}", self.member, self.incarnation, self.seq)
    }
}

/// A request's outcome as kept for its duplicates: what the store said,
/// or etcd's error message (errors travel as their message, as on the
/// peer wire).
pub type Outcome = Result<Applied, String>;

/// What the table says of a request about to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// First time: apply it, then [`Sessions::finish`].
    New,
    /// Applied before: answer this, change nothing.
    Duplicate(Outcome),
    /// Below its session's floor and not kept: do not apply.
    Stale,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Session {
    /// Requests below this are finished at the origin.
    floor: u64,
    /// Outcomes of applied requests at or above `floor`.
    done: BTreeMap<u64, Outcome>,
    /// Log index of the session's latest request (eviction order).
    last_index: u64,
}

/// The table. Equal on every member that applied the same log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sessions {
    map: HashMap<(u64, u64), Session>,
}

/// The encoded form (snapshots): sessions in key order, so equal tables
/// encode to equal bytes.
#[derive(Serialize, Deserialize)]
struct Encoded(Vec<((u64, u64), Session)>);

impl Serialize for Sessions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut v: Vec<_> = self.map.iter().map(|(k, s)| (*k, s.clone())).collect();
        v.sort_by_key(|(k, _)| *k);
        Encoded(v).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Sessions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Encoded(v) = Encoded::deserialize(d)?;
        Ok(Sessions {
            map: v.into_iter().collect(),
        })
    }
}

impl Sessions {
    /// Look `id` up as the request at log `index` (with its origin's
    /// `floor`) begins to apply.
    pub fn begin(&mut self, id: RequestId, floor: u64, index: u64) -> Seen {
        if id.is_legacy() {
            return Seen::New;
        }
        let key = (id.member, id.incarnation);
        if !self.map.contains_key(&key) && self.map.len() >= MAX_SESSIONS {
            self.evict_one();
        }
        let s = self.map.entry(key).or_default();
        s.last_index = s.last_index.max(index);
        if floor > s.floor {
            s.floor = floor;
            // Usually one or two outcomes fall below the new floor.
            while let Some(e) = s.done.first_entry()
                && *e.key() < floor
            {
                drop(e.remove());
            }
        }
        if let Some(o) = s.done.get(&id.seq) {
            return Seen::Duplicate(o.clone());
        }
        if id.seq < s.floor {
            return Seen::Stale;
        }
        Seen::New
    }

    /// Keep the outcome of `id`, which [`Sessions::begin`] called new.
    pub fn finish(&mut self, id: RequestId, outcome: &Result<Applied, ApplyError>) {
        if id.is_legacy() {
            return;
        }
        let Some(s) = self.map.get_mut(&(id.member, id.incarnation)) else {
            return;
        };
        s.done.insert(
            id.seq,
            outcome
                .as_ref()
                .map_err(|e| e.message().to_string())
                .cloned(),
        );
        if s.done.len() > MAX_DONE_PER_SESSION
            && let Some((oldest, _)) = s.done.pop_first()
        {
            s.floor = s.floor.max(oldest + 1);
        }
    }

    /// Drop the session that proposed least recently.
    fn evict_one(&mut self) {
        if let Some(k) = self
            .map
            .iter()
            .min_by_key(|(_, s)| s.last_index)
            .map(|(k, _)| *k)
        {
            self.map.remove(&k);
        }
    }

    /// Sessions held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Outcomes held, over all sessions.
    pub fn outcomes(&self) -> usize {
        self.map.values().map(|s| s.done.len()).sum()
    }
}

/// The origin's half: numbers this process's requests and knows which it
/// still waits for (their lowest is the `floor` every request carries).
#[derive(Debug)]
pub struct Origin {
    member: u64,
    incarnation: u64,
    state: Mutex<(u64, BTreeSet<u64>)>,
}

/// A request in flight at its origin; dropping it (answered, given up,
/// or its client went away) lets the floor pass it.
#[derive(Debug)]
pub struct InFlight<'a> {
    origin: &'a Origin,
    /// The request's id.
    pub id: RequestId,
    /// The origin's floor when the request began (at most `id.seq`).
    pub floor: u64,
}

impl Origin {
    /// The origin of member `member`'s requests in this process.
    pub fn new(member: u64) -> Self {
        Origin {
            member,
            incarnation: rand::random(),
            state: Mutex::new((0, BTreeSet::new())),
        }
    }

    /// Number a new request and hold it in flight.
    pub fn begin(&self) -> InFlight<'_> {
        let mut st = self.state.lock().expect("origin lock");
        st.0 += 1;
        let seq = st.0;
        st.1.insert(seq);
        let floor = *st.1.first().expect("just inserted");
        InFlight {
            origin: self,
            id: RequestId {
                member: self.member,
                incarnation: self.incarnation,
                seq,
            },
            floor,
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.origin
            .state
            .lock()
            .expect("origin lock")
            .1
            .remove(&self.id.seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(member: u64, seq: u64) -> RequestId {
        RequestId {
            member,
            incarnation: 7,
            seq,
        }
    }

    fn put(rev: i64) -> Result<Applied, ApplyError> {
        Ok(Applied::Put(ferrocd_mvcc::PutResponse {
            revision: rev,
            prev_kv: None,
        }))
    }

    #[test]
    fn a_second_copy_gets_the_first_outcome() {
        let mut t = Sessions::default();
        assert_eq!(t.begin(id(1, 5), 5, 10), Seen::New);
        t.finish(id(1, 5), &put(3));
        let first = put(3).map_err(|e: ApplyError| e.to_string());
        assert_eq!(t.begin(id(1, 5), 5, 12), Seen::Duplicate(first));
        // Another member's seq 5 is another request.
        assert_eq!(t.begin(id(2, 5), 1, 13), Seen::New);
        // Another incarnation of member 1 too.
        let other = RequestId {
            incarnation: 8,
            ..id(1, 5)
        };
        assert_eq!(t.begin(other, 1, 14), Seen::New);
    }

    #[test]
    fn legacy_entries_pass_through() {
        let mut t = Sessions::default();
        let old = RequestId {
            member: 0,
            incarnation: 0,
            seq: 41,
        };
        assert_eq!(t.begin(old, 0, 1), Seen::New);
        t.finish(old, &put(2));
        assert_eq!(t.begin(old, 0, 2), Seen::New);
        assert!(t.is_empty());
    }

    #[test]
    fn errors_are_kept_as_their_message() {
        let mut t = Sessions::default();
        assert_eq!(t.begin(id(1, 1), 1, 1), Seen::New);
        t.finish(id(1, 1), &Err(ApplyError::Compacted));
        assert_eq!(
            t.begin(id(1, 1), 1, 2),
            Seen::Duplicate(Err(ApplyError::Compacted.message().to_string()))
        );
        assert_eq!(
            ApplyError::from_message(ApplyError::Compacted.message()),
            ApplyError::Compacted
        );
    }

    #[test]
    fn the_floor_drops_finished_requests_and_refuses_their_late_copies() {
        let mut t = Sessions::default();
        for seq in 1..=4 {
            assert_eq!(t.begin(id(1, seq), 1, seq), Seen::New);
            t.finish(id(1, seq), &put(seq as i64));
        }
        assert_eq!(t.outcomes(), 4);
        // The origin finished 1..=2 (floor 3 rides on request 5).
        assert_eq!(t.begin(id(1, 5), 3, 5), Seen::New);
        assert_eq!(t.outcomes(), 2);
        // A late copy of 2: stale, not applied.
        assert_eq!(t.begin(id(1, 2), 1, 6), Seen::Stale);
        // A copy of 3 (still kept) is a duplicate; an older floor riding
        // on a reordered request never lowers the floor.
        assert!(matches!(t.begin(id(1, 3), 1, 7), Seen::Duplicate(_)));
        assert_eq!(t.begin(id(1, 1), 1, 8), Seen::Stale);
    }

    #[test]
    fn a_request_never_finished_below_the_floor_is_stale_not_new() {
        // The origin gave up on 2 (its client was told the outcome is
        // unknown); its copy arrives after a request carrying floor 3.
        let mut t = Sessions::default();
        assert_eq!(t.begin(id(1, 3), 3, 1), Seen::New);
        assert_eq!(t.begin(id(1, 2), 2, 2), Seen::Stale);
    }

    #[test]
    fn outcomes_per_session_are_bounded() {
        let mut t = Sessions::default();
        // Request 1 stays in flight (floor 1) while many others finish.
        let n = MAX_DONE_PER_SESSION as u64 + 10;
        for seq in 2..=n + 1 {
            assert_eq!(t.begin(id(1, seq), 1, seq), Seen::New);
            t.finish(id(1, seq), &put(1));
        }
        assert_eq!(t.outcomes(), MAX_DONE_PER_SESSION);
        // The oldest outcomes went and the floor passed them: their copies
        // are stale, never applied twice; request 1 itself too.
        assert_eq!(t.begin(id(1, 2), 1, n + 2), Seen::Stale);
        assert_eq!(t.begin(id(1, 1), 1, n + 3), Seen::Stale);
        assert!(matches!(
            t.begin(id(1, n + 1), 1, n + 4),
            Seen::Duplicate(_)
        ));
    }

    #[test]
    fn sessions_are_bounded_and_the_least_recent_goes() {
        let mut t = Sessions::default();
        for m in 0..MAX_SESSIONS as u64 {
            assert_eq!(t.begin(id(m, 1), 1, 100 + m), Seen::New);
            t.finish(id(m, 1), &put(1));
        }
        // Member 0 proposes again: now member 1 is the least recent.
        assert!(matches!(t.begin(id(0, 1), 1, 5000), Seen::Duplicate(_)));
        assert_eq!(t.begin(id(9999, 1), 1, 5001), Seen::New);
        assert_eq!(t.len(), MAX_SESSIONS);
        assert!(matches!(t.begin(id(0, 1), 1, 5002), Seen::Duplicate(_)));
        assert!(matches!(t.begin(id(2, 1), 1, 5003), Seen::Duplicate(_)));
        // Member 1's session went: its request is unknown again.
        assert_eq!(t.begin(id(1, 1), 1, 5004), Seen::New);
    }

    #[test]
    fn the_floor_is_the_oldest_request_in_flight() {
        let o = Origin::new(9);
        let a = o.begin();
        let b = o.begin();
        assert_eq!((a.id.seq, a.floor), (1, 1));
        assert_eq!((b.id.seq, b.floor), (2, 1));
        drop(a);
        let c = o.begin();
        assert_eq!((c.id.seq, c.floor), (3, 2));
        drop(b);
        drop(c);
        let d = o.begin();
        assert_eq!((d.id.seq, d.floor), (4, 4));
        assert_eq!(d.id.member, 9);
        assert_ne!(Origin::new(9).incarnation, o.incarnation);
    }

    #[test]
    fn encoding_is_canonical_and_round_trips() {
        let mut a = Sessions::default();
        let mut b = Sessions::default();
        for m in [3u64, 1, 2] {
            a.begin(id(m, 1), 1, m);
            a.finish(id(m, 1), &put(m as i64));
        }
        for m in [1u64, 2, 3] {
            b.begin(id(m, 1), 1, m);
            b.finish(id(m, 1), &put(m as i64));
        }
        let ea = postcard::to_stdvec(&a).unwrap();
        assert_eq!(ea, postcard::to_stdvec(&b).unwrap());
        let back: Sessions = postcard::from_bytes(&ea).unwrap();
        assert_eq!(back, a);
    }
}
