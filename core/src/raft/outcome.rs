//! What applying a command answers: its [`Applied`] result or an
//! [`ApplyError`] (the store refused it and changed nothing).

use ferrocd_mvcc as mvcc;

use crate::auth::AuthAnswer;

/// What an applied command returns to its proposer (also sent back to a
/// follower that forwarded the command).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Applied {
    /// Put.
    Put(mvcc::PutResponse),
    /// DeleteRange.
    DeleteRange(mvcc::DeleteRangeResponse),
    /// Txn.
    Txn(mvcc::TxnResponse),
    /// Compact: the store revision.
    Compact(i64),
    /// LeaseGrant: id and TTL.
    LeaseGrant {
        /// Id.
        id: i64,
        /// TTL.
        ttl: i64,
    },
    /// LeaseRevoke: the header revision.
    LeaseRevoke(i64),
    /// An auth op's answer, with the header revision.
    Auth(AuthAnswer, i64),
    /// Alarm: what the response lists (the alarm raised or cleared, or
    /// nothing when there was nothing to change), as (member, type).
    Alarm(Vec<(u64, i32)>),
}

/// A command that the store refused (it changed nothing).
pub type ApplyError = ferrocd_net::EtcdError;
