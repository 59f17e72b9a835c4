//! The data of conf change entries ([`EntryKind::ConfChange`] and
//! [`EntryKind::ConfChangeV2`](super::EntryKind::ConfChangeV2)).
//!
//! ```text
//! raftpb.ConfChange:   1 id uint64 (etcd's request id; 0 in bootstrap entries)
//!                      2 type enum: 0 AddNode, 1 RemoveNode, 2 UpdateNode, 3 AddLearnerNode
//!                      3 node_id uint64
//!                      4 context bytes: etcd's member as JSON for add/update/promote
//!                        {"id": 600693032290245911, "peerURLs": [...], "name": "...",
//!                         "clientURLs": [...], "isLearner": true}  (name, clientURLs and
//!                        isLearner omitted when empty); absent for remove
//! raftpb.ConfChangeV2: 1 transition enum: 0 auto, 1 joint implicit, 2 joint explicit
//!                      2 changes: repeated ConfChangeSingle {1 type enum, 2 node_id}
//!                      3 context bytes
//! ```
//!
//! etcd 3.4.23 and 3.5.1 write v1 conf changes for `member add` (with
//! `--learner`: AddLearnerNode), `member remove`, `member update` and
//! `member promote` (checked on real WALs for add and remove); v2 is
//! decoded for completeness.
//!
//! [`EntryKind::ConfChange`]: super::EntryKind::ConfChange

use prost::Message;

use super::error::{Error, Result};
use super::pb;
use super::v2store::{Member, MemberJson};

/// What a conf change does to one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfChangeKind {
    /// Add a voter (or promote a learner).
    AddNode,
    /// Remove a node.
    RemoveNode,
    /// Update a node's attributes (its peer URLs; raft config unchanged).
    UpdateNode,
    /// Add a learner.
    AddLearnerNode,
}

impl ConfChangeKind {
    fn from_i32(v: i32) -> Option<Self> {
        Some(match v {
            0 => Self::AddNode,
            1 => Self::RemoveNode,
            2 => Self::UpdateNode,
            3 => Self::AddLearnerNode,
            _ => return None,
        })
    }
}

/// A decoded `raftpb.ConfChange`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfChange {
    /// etcd's request id.
    pub id: u64,
    /// What it does.
    pub kind: ConfChangeKind,
    /// The node.
    pub node_id: u64,
    /// etcd's member JSON (empty for a removal).
    pub context: Vec<u8>,
}

fn decode_err(what: &'static str, reason: impl Into<String>) -> Error {
    Error::Decode {
        what,
        reason: reason.into(),
    }
}

fn kind(what: &'static str, v: i32) -> Result<ConfChangeKind> {
    ConfChangeKind::from_i32(v).ok_or_else(|| decode_err(what, format!("unknown change type {v}")))
}

impl ConfChange {
    /// Decode an entry's data.
    pub fn decode(data: &[u8]) -> Result<Self> {
        const WHAT: &str = "raftpb.ConfChange";
        let c = pb::ConfChange::decode(data).map_err(|e| decode_err(WHAT, e.to_string()))?;
        Ok(Self {
            id: c.id,
            kind: kind(WHAT, c.r#type)?,
            node_id: c.node_id,
            context: c.context,
        })
    }

    /// The member in the context, `None` when the context is empty.
    pub fn member(&self) -> Result<Option<Member>> {
        if self.context.is_empty() {
            return Ok(None);
        }
        let m: MemberJson = serde_json::from_slice(&self.context)
            .map_err(|e| decode_err("conf change context (member JSON)", e.to_string()))?;
        Ok(Some(m.into()))
    }
}

/// How a [`ConfChangeV2`] enters and leaves joint consensus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfChangeTransition {
    /// Raft's choice: simple when possible, else joint with auto leave.
    Auto,
    /// Joint, left automatically.
    JointImplicit,
    /// Joint, left by an explicit empty conf change.
    JointExplicit,
}

/// A decoded `raftpb.ConfChangeV2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfChangeV2 {
    /// The transition.
    pub transition: ConfChangeTransition,
    /// The changes, `(kind, node id)`.
    pub changes: Vec<(ConfChangeKind, u64)>,
    /// Opaque context.
    pub context: Vec<u8>,
}

impl ConfChangeV2 {
    /// Decode an entry's data.
    pub fn decode(data: &[u8]) -> Result<Self> {
        const WHAT: &str = "raftpb.ConfChangeV2";
        let c = pb::ConfChangeV2::decode(data).map_err(|e| decode_err(WHAT, e.to_string()))?;
        let transition = match c.transition {
            0 => ConfChangeTransition::Auto,
            1 => ConfChangeTransition::JointImplicit,
            2 => ConfChangeTransition::JointExplicit,
            t => return Err(decode_err(WHAT, format!("unknown transition {t}"))),
        };
        let changes = c
            .changes
            .into_iter()
            .map(|s| Ok((kind(WHAT, s.r#type)?, s.node_id)))
            .collect::<Result<_>>()?;
        Ok(Self {
            transition,
            changes,
            context: c.context,
        })
    }
}
