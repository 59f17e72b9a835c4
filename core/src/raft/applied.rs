//! The applied state besides the store: the applied log id and
//! membership, the alarms, the exactly-once sessions, and the sizes the
//! backend reports. One lock holds it (`SmShared`); a batch being applied
//! holds it throughout (`apply::Apply`).

use std::collections::BTreeSet;

use super::sessions::Sessions;
use super::{LogId, TypeConfig};

type Membership = openraft::alias::StoredMembershipOf<TypeConfig>;

/// etcd's `AlarmType` NOSPACE.
pub const ALARM_NOSPACE: i32 = 1;
/// etcd's `AlarmType` CORRUPT.
pub const ALARM_CORRUPT: i32 = 2;

/// etcd's name of an alarm type.
pub(crate) fn alarm_name(alarm: i32) -> &'static str {
    match alarm {
        0 => "NONE",
        ALARM_NOSPACE => "NOSPACE",
        ALARM_CORRUPT => "CORRUPT",
        _ => "UNKNOWN",
    }
}

/// The applied state besides the store (under one lock; see
/// `apply::Apply`).
pub(super) struct AppliedState {
    pub(super) log_id: Option<LogId>,
    pub(super) membership: Membership,
    /// Raised alarms, (member id, alarm type): replicated state.
    pub(super) alarms: BTreeSet<(u64, i32)>,
    /// Requests seen, for exactly-once apply: replicated state.
    pub(super) sessions: Sessions,
}

impl AppliedState {
    pub(super) fn nospace(&self) -> bool {
        self.alarms.iter().any(|&(_, a)| a == ALARM_NOSPACE)
    }
}
