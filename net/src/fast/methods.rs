//! The method table of the binary protocol: one row per etcd RPC, with
//! its frame kind, its gRPC path (the client uses the same table to speak
//! gRPC to servers without the fast path), its request and response
//! messages and whether a client may resend it after a failure.
//!
//! Kinds are part of the wire format (`docs/FORMAT.md`): never reuse or
//! renumber one. 1..=99 are unary calls, 100..=119 streams.

use crate::fast::codec::{self, PayloadError};
use crate::pb::etcdserverpb as pb;
use crate::pb::{v3electionpb as el, v3lockpb as lk};

/// One unary RPC.
pub trait Unary: Send + Sync + 'static {
    /// Request message.
    type Req: crate::fast::codec::Message;
    /// Response message.
    type Resp: crate::fast::codec::Message;
    /// Frame kind.
    const KIND: u8;
    /// gRPC path.
    const PATH: &'static str;
    /// Whether sending it twice is harmless (reads, status, lists), so a
    /// client may resend it to another member after a failure whose
    /// outcome it cannot know.
    const IDEMPOTENT: bool;
}

macro_rules! unary_methods {
    ($($name:ident = $kind:literal, $path:literal, $req:ty => $resp:ty, $idem:literal;)*) => {
        $(
            #[doc = concat!("`", $path, "`")]
            #[derive(Debug, Clone, Copy)]
            pub struct $name;
            impl Unary for $name {
                type Req = $req;
                type Resp = $resp;
                const KIND: u8 = $kind;
                const PATH: &'static str = $path;
                const IDEMPOTENT: bool = $idem;
            }
        )*
        /// Every unary kind, for tests that walk the table.
        pub const UNARY_KINDS: &[(u8, &str)] = &[$(($kind, $path)),*];

        fn reencode_unary(kind: u8, payload: &[u8]) -> Option<Result<Vec<u8>, PayloadError>> {
            match kind {
                $($kind => Some(codec::decode::<$req>(payload).map(|m| codec::encode(&m))),)*
                _ => None,
            }
        }
    };
}

unary_methods! {
    Range = 1, "/etcdserverpb.KV/Range", pb::RangeRequest => pb::RangeResponse, true;
    Put = 2, "/etcdserverpb.KV/Put", pb::PutRequest => pb::PutResponse, false;
    DeleteRange = 3, "/etcdserverpb.KV/DeleteRange", pb::DeleteRangeRequest => pb::DeleteRangeResponse, false;
    Txn = 4, "/etcdserverpb.KV/Txn", pb::TxnRequest => pb::TxnResponse, false;
    Compact = 5, "/etcdserverpb.KV/Compact", pb::CompactionRequest => pb::CompactionResponse, false;

    LeaseGrant = 10, "/etcdserverpb.Lease/LeaseGrant", pb::LeaseGrantRequest => pb::LeaseGrantResponse, false;
    LeaseRevoke = 11, "/etcdserverpb.Lease/LeaseRevoke", pb::LeaseRevokeRequest => pb::LeaseRevokeResponse, false;
    LeaseTimeToLive = 12, "/etcdserverpb.Lease/LeaseTimeToLive", pb::LeaseTimeToLiveRequest => pb::LeaseTimeToLiveResponse, true;
    LeaseLeases = 13, "/etcdserverpb.Lease/LeaseLeases", pb::LeaseLeasesRequest => pb::LeaseLeasesResponse, true;

    MemberAdd = 20, "/etcdserverpb.Cluster/MemberAdd", pb::MemberAddRequest => pb::MemberAddResponse, false;
    MemberRemove = 21, "/etcdserverpb.Cluster/MemberRemove", pb::MemberRemoveRequest => pb::MemberRemoveResponse, false;
    MemberUpdate = 22, "/etcdserverpb.Cluster/MemberUpdate", pb::MemberUpdateRequest => pb::MemberUpdateResponse, false;
    MemberList = 23, "/etcdserverpb.Cluster/MemberList", pb::MemberListRequest => pb::MemberListResponse, true;
    MemberPromote = 24, "/etcdserverpb.Cluster/MemberPromote", pb::MemberPromoteRequest => pb::MemberPromoteResponse, false;

    Alarm = 30, "/etcdserverpb.Maintenance/Alarm", pb::AlarmRequest => pb::AlarmResponse, false;
    Status = 31, "/etcdserverpb.Maintenance/Status", pb::StatusRequest => pb::StatusResponse, true;
    Defragment = 32, "/etcdserverpb.Maintenance/Defragment", pb::DefragmentRequest => pb::DefragmentResponse, false;
    Hash = 33, "/etcdserverpb.Maintenance/Hash", pb::HashRequest => pb::HashResponse, true;
    HashKv = 34, "/etcdserverpb.Maintenance/HashKV", pb::HashKvRequest => pb::HashKvResponse, true;
    MoveLeader = 35, "/etcdserverpb.Maintenance/MoveLeader", pb::MoveLeaderRequest => pb::MoveLeaderResponse, false;
    Downgrade = 36, "/etcdserverpb.Maintenance/Downgrade", pb::DowngradeRequest => pb::DowngradeResponse, false;

    AuthEnable = 40, "/etcdserverpb.Auth/AuthEnable", pb::AuthEnableRequest => pb::AuthEnableResponse, false;
    AuthDisable = 41, "/etcdserverpb.Auth/AuthDisable", pb::AuthDisableRequest => pb::AuthDisableResponse, false;
    AuthStatus = 42, "/etcdserverpb.Auth/AuthStatus", pb::AuthStatusRequest => pb::AuthStatusResponse, true;
    Authenticate = 43, "/etcdserverpb.Auth/Authenticate", pb::AuthenticateRequest => pb::AuthenticateResponse, true;
    UserAdd = 44, "/etcdserverpb.Auth/UserAdd", pb::AuthUserAddRequest => pb::AuthUserAddResponse, false;
    UserGet = 45, "/etcdserverpb.Auth/UserGet", pb::AuthUserGetRequest => pb::AuthUserGetResponse, true;
    UserList = 46, "/etcdserverpb.Auth/UserList", pb::AuthUserListRequest => pb::AuthUserListResponse, true;
    UserDelete = 47, "/etcdserverpb.Auth/UserDelete", pb::AuthUserDeleteRequest => pb::AuthUserDeleteResponse, false;
    UserChangePassword = 48, "/etcdserverpb.Auth/UserChangePassword", pb::AuthUserChangePasswordRequest => pb::AuthUserChangePasswordResponse, false;
    UserGrantRole = 49, "/etcdserverpb.Auth/UserGrantRole", pb::AuthUserGrantRoleRequest => pb::AuthUserGrantRoleResponse, false;
    UserRevokeRole = 50, "/etcdserverpb.Auth/UserRevokeRole", pb::AuthUserRevokeRoleRequest => pb::AuthUserRevokeRoleResponse, false;
    RoleAdd = 51, "/etcdserverpb.Auth/RoleAdd", pb::AuthRoleAddRequest => pb::AuthRoleAddResponse, false;
    RoleGet = 52, "/etcdserverpb.Auth/RoleGet", pb::AuthRoleGetRequest => pb::AuthRoleGetResponse, true;
    RoleList = 53, "/etcdserverpb.Auth/RoleList", pb::AuthRoleListRequest => pb::AuthRoleListResponse, true;
    RoleDelete = 54, "/etcdserverpb.Auth/RoleDelete", pb::AuthRoleDeleteRequest => pb::AuthRoleDeleteResponse, false;
    RoleGrantPermission = 55, "/etcdserverpb.Auth/RoleGrantPermission", pb::AuthRoleGrantPermissionRequest => pb::AuthRoleGrantPermissionResponse, false;
    RoleRevokePermission = 56, "/etcdserverpb.Auth/RoleRevokePermission", pb::AuthRoleRevokePermissionRequest => pb::AuthRoleRevokePermissionResponse, false;

    Lock = 70, "/v3lockpb.Lock/Lock", lk::LockRequest => lk::LockResponse, false;
    Unlock = 71, "/v3lockpb.Lock/Unlock", lk::UnlockRequest => lk::UnlockResponse, false;

    Campaign = 80, "/v3electionpb.Election/Campaign", el::CampaignRequest => el::CampaignResponse, false;
    Proclaim = 81, "/v3electionpb.Election/Proclaim", el::ProclaimRequest => el::ProclaimResponse, false;
    Leader = 82, "/v3electionpb.Election/Leader", el::LeaderRequest => el::LeaderResponse, true;
    Resign = 83, "/v3electionpb.Election/Resign", el::ResignRequest => el::ResignResponse, false;
}

/// One streaming RPC: the client sends `Req`s (bidi) or one `Req`
/// (server streaming), the server answers a stream of `Resp`s.
pub trait Streaming: Send + Sync + 'static {
    /// Client message.
    type Req: crate::fast::codec::Message;
    /// Server message.
    type Resp: crate::fast::codec::Message;
    /// Frame kind.
    const KIND: u8;
    /// gRPC path.
    const PATH: &'static str;
}

macro_rules! stream_methods {
    ($($name:ident = $kind:literal, $path:literal, $req:ty => $resp:ty;)*) => {
        $(
            #[doc = concat!("`", $path, "` (stream)")]
            #[derive(Debug, Clone, Copy)]
            pub struct $name;
            impl Streaming for $name {
                type Req = $req;
                type Resp = $resp;
                const KIND: u8 = $kind;
                const PATH: &'static str = $path;
            }
        )*
        /// Every stream kind.
        pub const STREAM_KINDS: &[(u8, &str)] = &[$(($kind, $path)),*];

        fn reencode_stream(kind: u8, payload: &[u8]) -> Option<Result<Vec<u8>, PayloadError>> {
            match kind {
                $($kind => Some(codec::decode::<$req>(payload).map(|m| codec::encode(&m))),)*
                _ => None,
            }
        }
    };
}

/// Validate a client payload of `kind` the way the server does, and
/// encode the decoded request again (the fuzz target checks that this
/// round trip is stable). `None`: no request has this kind.
pub fn reencode_request(kind: u8, payload: &[u8]) -> Option<Result<Vec<u8>, PayloadError>> {
    reencode_unary(kind, payload).or_else(|| reencode_stream(kind, payload))
}

stream_methods! {
    Watch = 100, "/etcdserverpb.Watch/Watch", pb::WatchRequest => pb::WatchResponse;
    LeaseKeepAlive = 101, "/etcdserverpb.Lease/LeaseKeepAlive", pb::LeaseKeepAliveRequest => pb::LeaseKeepAliveResponse;
    Snapshot = 102, "/etcdserverpb.Maintenance/Snapshot", pb::SnapshotRequest => pb::SnapshotResponse;
    Observe = 103, "/v3electionpb.Election/Observe", el::LeaderRequest => el::LeaderResponse;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_unique_and_in_their_ranges() {
        let mut seen = std::collections::HashSet::new();
        for (k, p) in UNARY_KINDS {
            assert!((1..=99).contains(k), "{p}");
            assert!(seen.insert(*k), "kind {k} twice");
        }
        for (k, p) in STREAM_KINDS {
            assert!((100..=119).contains(k), "{p}");
            assert!(seen.insert(*k), "kind {k} twice");
        }
    }
}
