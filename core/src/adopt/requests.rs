//! etcd's raft entry payloads, translated into what ferrocd applies.
//!
//! When ferrocd adopts an etcd 3.4/3.5 data dir, the entries etcd's WAL
//! holds after its backend's consistent index never reached that backend;
//! ferrocd replays them through its own apply path. [`translate`]
//! turns one such entry's `Data` (an `EntryNormal` payload) into a
//! [`Translated`]: a ferrocd [`Command`], a member's published attributes,
//! or a reason to skip it.
//!
//! # Decoding
//!
//! As etcd's `applyEntryNormal` does: an empty payload is the no-op a new
//! leader appends; other bytes are an `etcdserverpb.InternalRaftRequest`,
//! or, when they do not decode as one, a bare v2 `etcdserverpb.Request`.
//! etcd 3.4 proposes its v2 requests bare (member attributes, the cluster
//! version, v2 API writes, SYNC, the `/health` probe's QGET); such bytes
//! never decode as an InternalRaftRequest, because the Request's method
//! (field 2, a string such as `PUT`) lands on the InternalRaftRequest's
//! `v2` message field and is not a valid message. The `v2` field holds the
//! same Request; no 3.4/3.5 code sets it, it is translated all the same.
//!
//! Field numbers, from etcd's `raft_internal.proto`, `etcdserver.proto`
//! and `membershippb/membership.proto` at v3.4.45 and v3.5.17 (the same
//! number wherever both versions have the field; the Put, Txn, lease,
//! alarm and auth requests inside are `rpc.proto`'s, as `ferrocd_net`
//! generates them):
//! ```text
//! InternalRaftRequest  ID 1  v2 2  range 3  put 4  delete_range 5  txn 6
//!                      compaction 7  lease_grant 8  lease_revoke 9
//!                      alarm 10  lease_checkpoint 11  header 100
//!                      auth_enable 1000  auth_disable 1011
//!                      authenticate 1012  auth_status 1013 (3.4.31+, 3.5)
//!                      auth_user_add 1100  auth_user_delete 1101
//!                      auth_user_get 1102  auth_user_change_password 1103
//!                      auth_user_grant_role 1104  auth_user_revoke_role 1105
//!                      auth_user_list 1106  auth_role_list 1107
//!                      auth_role_add 1200  auth_role_delete 1201
//!                      auth_role_get 1202  auth_role_grant_permission 1203
//!                      auth_role_revoke_permission 1204
//!                      cluster_version_set 1300  cluster_member_attr_set 1301
//!                      downgrade_info_set 1302  (1300-1302: 3.5 only)
//! RequestHeader        ID 1  username 2  auth_revision 3
//! InternalAuthenticateRequest  name 1  password 2  simple_token 3
//! ClusterVersionSetRequest     ver 1
//! ClusterMemberAttrSetRequest  member_ID 1  member_attributes 2
//! Attributes                   name 1  client_urls 2
//! DowngradeInfoSetRequest      enabled 1  ver 2
//! Request (v2, proto2)  ID 1  Method 2  Path 3  Val 4  Dir 5  PrevValue 6
//!                       PrevIndex 7  PrevExist 8  Expiration 9  Wait 10
//!                       Since 11  Recursive 12  Sorted 13  Quorum 14
//!                       Time 15  Stream 16  Refresh 17
//! ```
//!
//! # What becomes what
//!
//! - Put, DeleteRange, Txn, Compaction, LeaseGrant, LeaseRevoke, Alarm
//!   ACTIVATE/DEACTIVATE and every auth change (enable, disable, user
//!   add/delete/change password/grant/revoke, role add/delete/grant/revoke
//!   permission) become the [`Op`] ferrocd's own proposer would build, run
//!   as the request header's user. etcd checked permissions at apply time
//!   with that header; ferrocd's apply checks the same way, so a request
//!   etcd refused is refused again and changes nothing.
//! - A member publishing its name and client URLs (3.5's
//!   ClusterMemberAttrSet; 3.4's v2 PUT of `/0/members/<hex id>/attributes`)
//!   becomes [`Translated::MemberAttributes`].
//! - Skipped, with the reason: the cluster version (3.5's
//!   ClusterVersionSet, 3.4's v2 PUT of `/0/version`), 3.5's
//!   DowngradeInfoSet, v2 SYNC (expires v2 TTL keys) and QGET, other v2
//!   writes of etcd's own `/0/...` keys, and the reads etcd routes through
//!   raft (Range, AuthStatus, UserGet/UserList/RoleGet/RoleList, Alarm
//!   GET). Authenticate: the simple token it assigned does not survive a
//!   restart in etcd either. LeaseCheckpoint: ferrocd keeps no
//!   checkpoints, so the lease's TTL starts over when a leader takes it,
//!   as etcd's does after a restart without checkpointing. Requests etcd's
//!   apply refused before looking at the store (a TTL over `MaxLeaseTTL`,
//!   a password bcrypt will not hash, a hashed password that is not
//!   base64) are skipped too: they changed nothing in etcd.
//! - Refused ([`TranslateError`]): any other v2 write (user data: etcd's
//!   v2 API stores key `/foo` at `/1/foo`, its v2 auth under `/2/`), as
//!   ferrocd has no v2 store; bytes that are not an etcd request; requests
//!   ferrocd cannot represent.
//!
//! # Passwords
//!
//! etcd 3.5's proposer hashes a new password (bcrypt, its `--bcrypt-cost`)
//! and puts the base64 of the hash in `hashedPassword`; etcd 3.4 puts the
//! plain `password` in the log and hashes it at apply, on every member,
//! each with its own random salt. The rule applied is etcd 3.5's
//! `selectPassword`, which is how etcd itself replays 3.4 entries after an
//! upgrade: a password with no hash is hashed, otherwise the hash is
//! decoded (so both empty gives an empty hash: no password logs in). The
//! hash ferrocd computes must be the same on every member of a migrated
//! cluster, so its salt is not random: it is the first 16 bytes of
//! SHA-256 over a fixed label, the entry's index and term (big-endian)
//! and the user name. That salt is unique per entry, so it still does what
//! a salt is for (no two stored hashes share one); it is not secret, and
//! neither is a random one stored beside the hash. The cost is etcd's
//! default, 10, and the hash is written in Go's `$2a$` form.
//!
//! # Leases
//!
//! etcd's apply raises a TTL below its minimum (`ceil(1.5 × election
//! timeout)`) to it and stores the raised TTL; ferrocd's proposer does
//! that before proposing and its apply stores the TTL as given, so the
//! translation raises it: to etcd's default minimum (2 s) in
//! [`translate`], to the one it is given in [`translate_with`].

use base64::Engine as _;
use ferrocd_net::EtcdError;
use ferrocd_net::convert;
use ferrocd_net::pb::etcdserverpb as pb;
use prost::Message as _;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::auth::{AuthOp, Caller, Perm, PermKind};
use crate::raft::{Command, Op, RequestId};

/// The bcrypt cost etcd hashes with unless `--bcrypt-cost` says otherwise
/// (Go's `bcrypt.DefaultCost`).
pub(crate) const ETCD_BCRYPT_COST: u32 = 10;

/// bcrypt reads at most 72 bytes of a password. Go's bcrypt refuses longer
/// ones since golang.org/x/crypto v0.5.0 (etcd 3.4.28+, 3.5.10+ build
/// with it), where older etcd releases hashed the first 72 bytes; this
/// follows the current releases.
const BCRYPT_MAX_PASSWORD: usize = 72;

/// What the salt of a replayed password hash starts from (see the module
/// docs): changing it changes every hash an adoption computes.
const SALT_LABEL: &[u8] = b"ferrocd adopt: etcd 3.4 password salt\0";

/// The v2 store's prefix for etcd's own keys (membership, cluster
/// version); user keys are under `/1`, v2 auth under `/2`.
const V2_INTERNAL: &str = "/0";

/// What one etcd entry becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Translated {
    /// Apply this as ferrocd applies its own requests.
    Command(Command),
    /// A member published its name and client URLs (etcd 3.5
    /// ClusterMemberAttrSet; etcd 3.4: a v2 PUT of
    /// `/0/members/<hex id>/attributes` with JSON `{"name","clientURLs"}`).
    MemberAttributes {
        /// The member.
        id: u64,
        /// Its `--name`.
        name: String,
        /// Its advertised client URLs.
        client_urls: Vec<String>,
    },
    /// Nothing for ferrocd to apply; the reason, for logs.
    Skip(&'static str),
}

/// Why an etcd entry cannot be replayed: the adoption stops.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum TranslateError {
    /// etcd 3.4's v2 store holds user data: ferrocd has no v2 store.
    #[error(
        "etcd's v2 store holds user data (a v2 write of {path:?}); ferrocd has no v2 store: \
         remove or migrate the v2 keys before adopting"
    )]
    V2Data {
        /// The v2 store path written.
        path: String,
    },
    /// Not an etcd request (undecodable), with the reason.
    #[error("not an etcd request: {0}")]
    Malformed(String),
    /// A request kind ferrocd cannot apply.
    #[error("an etcd request ferrocd cannot apply: {0}")]
    Unsupported(&'static str),
}

/// etcd's minimum lease TTL with its default timings: `ceil(1.5 ×
/// election timeout)` = `ceil(1.5 × 1000 ms)` (etcd computes it as
/// `3 × election ticks / 2` heartbeats of 100 ms).
#[cfg(test)]
pub(crate) const ETCD_DEFAULT_MIN_LEASE_TTL: i64 = 2;

/// Translate the payload of the etcd entry at `index` (of `term`), for an
/// etcd that ran with the default `--election-timeout` and
/// `--heartbeat-interval` (see [`translate_with`]).
#[cfg(test)]
pub(crate) fn translate(data: &[u8], index: u64, term: u64) -> Result<Translated, TranslateError> {
    translate_with(data, index, term, ETCD_DEFAULT_MIN_LEASE_TTL)
}

/// Translate the payload of the etcd entry at `index` (of `term`).
///
/// `min_lease_ttl` is the minimum lease TTL in seconds that etcd's apply
/// raised a shorter one to: `ceil(1.5 × election timeout)` of the etcd
/// that wrote the entry, which is the one ferrocd computes for its
/// [`crate::Lessor`] from the same flags.
///
/// The command's id is a legacy one (member and incarnation 0, sequence
/// `index`): the exactly-once table neither checks nor keeps it, and each
/// entry is replayed once.
pub(crate) fn translate_with(
    data: &[u8],
    index: u64,
    term: u64,
    min_lease_ttl: i64,
) -> Result<Translated, TranslateError> {
    if data.is_empty() {
        return Ok(Translated::Skip("empty entry: a new leader's no-op"));
    }
    let at = At {
        index,
        term,
        min_lease_ttl,
    };
    let (step, caller) = match InternalRaftRequest::decode(data) {
        Ok(r) => {
            let caller = caller(r.header.as_ref());
            (request(r, at)?, caller)
        }
        // etcd: "backward compatible", a bare v2 Request.
        Err(as_internal) => match V2Request::decode(data) {
            Ok(r) => (v2(r)?, Caller::Anonymous),
            Err(as_v2) => {
                return Err(TranslateError::Malformed(format!(
                    "neither an InternalRaftRequest ({as_internal}) nor a v2 Request ({as_v2})"
                )));
            }
        },
    };
    Ok(match step {
        Step::Apply(op) => Translated::Command(Command {
            id: RequestId {
                member: 0,
                incarnation: 0,
                seq: index,
            },
            floor: 0,
            op,
            caller,
        }),
        Step::Attributes {
            id,
            name,
            client_urls,
        } => Translated::MemberAttributes {
            id,
            name,
            client_urls,
        },
        Step::Skip(why) => Translated::Skip(why),
    })
}

/// Where the entry sits, and the one setting a translation needs.
#[derive(Debug, Clone, Copy)]
struct At {
    index: u64,
    term: u64,
    min_lease_ttl: i64,
}

/// What one request becomes before the shared parts (the command's id
/// and caller) are added.
enum Step {
    Apply(Op),
    Attributes {
        id: u64,
        name: String,
        client_urls: Vec<String>,
    },
    Skip(&'static str),
}

/// Who etcd ran the request as: the header's user at the auth revision
/// its token was checked at, else nobody. ferrocd's apply treats
/// [`Caller::Anonymous`] as etcd's apply treats an empty user: with auth
/// disabled every check passes; with auth enabled a key request fails
/// `user name is empty` (`isOpPermitted`) and an auth change fails the
/// admin check (`IsAdminPermitted`). A user with auth revision 0 fails
/// `user name is empty` in both.
fn caller(header: Option<&RequestHeader>) -> Caller {
    match header {
        Some(h) if !h.username.is_empty() => Caller::User {
            name: h.username.clone(),
            revision: h.auth_revision,
        },
        _ => Caller::Anonymous,
    }
}

/// One InternalRaftRequest, in the order etcd 3.5's `applierV3backend`
/// looks at its fields (etcd sets one; the order decides which one counts
/// if more are set).
fn request(r: InternalRaftRequest, at: At) -> Result<Step, TranslateError> {
    use Step::{Apply, Skip};
    if let Some(v) = r.v2 {
        return v2(v);
    }
    // etcd 3.5 applies these three before anything else, without the auth
    // check.
    if r.cluster_version_set.is_some() {
        return Ok(Skip("cluster version set: ferrocd reports its own version"));
    }
    if let Some(a) = r.cluster_member_attr_set {
        return member_attr_set(a);
    }
    if r.downgrade_info_set.is_some() {
        return Ok(Skip("downgrade info set: ferrocd has no downgrade mode"));
    }
    if r.range.is_some() {
        return Ok(Skip("range: a read"));
    }
    if let Some(p) = r.put {
        let p = convert::put_request(p).map_err(refused("put"))?;
        return Ok(Apply(Op::Put(p)));
    }
    if let Some(d) = r.delete_range {
        let d = convert::delete_request(d).map_err(refused("delete range"))?;
        return Ok(Apply(Op::DeleteRange(d)));
    }
    if let Some(t) = r.txn {
        // No limit on the number of ops: etcd's proposer already took it.
        let t = convert::txn_request(t, usize::MAX).map_err(refused("txn"))?;
        return Ok(Apply(Op::Txn(t)));
    }
    if let Some(c) = r.compaction {
        // `physical` only made etcd's client wait for the compaction to
        // reach the disk.
        return Ok(Apply(Op::Compact {
            revision: c.revision,
        }));
    }
    if let Some(g) = r.lease_grant {
        return Ok(lease_grant(g, at));
    }
    if let Some(l) = r.lease_revoke {
        return Ok(Apply(Op::LeaseRevoke { id: l.id }));
    }
    if r.lease_checkpoint.is_some() {
        return Ok(Skip(
            "lease checkpoint: ferrocd keeps none (the TTL starts over, as etcd's does \
             after a restart without checkpointing)",
        ));
    }
    if let Some(a) = r.alarm {
        return Ok(alarm(a));
    }
    if r.authenticate.is_some() {
        return Ok(Skip(
            "authenticate: its simple token does not survive a restart (nor does etcd's)",
        ));
    }
    if r.auth_enable.is_some() {
        return Ok(auth(AuthOp::Enable));
    }
    if r.auth_disable.is_some() {
        return Ok(auth(AuthOp::Disable));
    }
    if r.auth_status.is_some() {
        return Ok(Skip("auth status: a read"));
    }
    if let Some(u) = r.auth_user_add {
        return Ok(user_add(u, at));
    }
    if let Some(u) = r.auth_user_delete {
        return Ok(auth(AuthOp::UserDelete { name: u.name }));
    }
    if let Some(u) = r.auth_user_change_password {
        return Ok(change_password(u, at));
    }
    if let Some(u) = r.auth_user_grant_role {
        return Ok(auth(AuthOp::UserGrantRole {
            user: u.user,
            role: u.role,
        }));
    }
    if r.auth_user_get.is_some() {
        return Ok(Skip("user get: a read"));
    }
    if let Some(u) = r.auth_user_revoke_role {
        return Ok(auth(AuthOp::UserRevokeRole {
            name: u.name,
            role: u.role,
        }));
    }
    if let Some(ro) = r.auth_role_add {
        return Ok(auth(AuthOp::RoleAdd { name: ro.name }));
    }
    if let Some(ro) = r.auth_role_grant_permission {
        return grant_permission(ro);
    }
    if r.auth_role_get.is_some() {
        return Ok(Skip("role get: a read"));
    }
    if let Some(ro) = r.auth_role_revoke_permission {
        return Ok(auth(AuthOp::RoleRevokePermission {
            role: ro.role,
            key: ro.key,
            range_end: ro.range_end,
        }));
    }
    if let Some(ro) = r.auth_role_delete {
        return Ok(auth(AuthOp::RoleDelete { role: ro.role }));
    }
    if r.auth_user_list.is_some() {
        return Ok(Skip("user list: a read"));
    }
    if r.auth_role_list.is_some() {
        return Ok(Skip("role list: a read"));
    }
    // Only a header or ID, or fields of a request etcd 3.4/3.5 does not
    // know: their apply panics on it ("not implemented apply").
    Err(TranslateError::Unsupported(
        "an InternalRaftRequest with no request etcd 3.4/3.5 knows",
    ))
}

fn auth(op: AuthOp) -> Step {
    Step::Apply(Op::Auth(op))
}

/// A request etcd's gRPC layer would have refused (e.g. an empty key):
/// etcd never proposes one, so these bytes are not what etcd wrote.
fn refused(what: &'static str) -> impl Fn(EtcdError) -> TranslateError {
    move |e| TranslateError::Malformed(format!("{what}: {e}"))
}

/// etcd's lessor `Grant`: a TTL over `MaxLeaseTTL` is refused, a TTL
/// below the minimum raised to it.
fn lease_grant(g: pb::LeaseGrantRequest, at: At) -> Step {
    if g.ttl > crate::MAX_LEASE_TTL {
        return Step::Skip("lease grant over MaxLeaseTTL: etcd's apply refused it");
    }
    Step::Apply(Op::LeaseGrant {
        id: g.id,
        ttl: g.ttl.max(at.min_lease_ttl),
    })
}

/// etcd 3.5's alarm apply. (etcd 3.4 also records an ACTIVATE of NONE,
/// which raises nothing and only shows in alarm lists; 3.5 ignores it.)
fn alarm(a: pb::AlarmRequest) -> Step {
    use pb::alarm_request::AlarmAction;
    let activate = match AlarmAction::try_from(a.action) {
        Ok(AlarmAction::Get) => return Step::Skip("alarm get: a read"),
        Ok(AlarmAction::Activate) if a.alarm == pb::AlarmType::None as i32 => {
            return Step::Skip("alarm activate of NONE: raises nothing");
        }
        Ok(AlarmAction::Activate) => true,
        Ok(AlarmAction::Deactivate) => false,
        Err(_) => return Step::Skip("alarm action etcd does not know: its apply does nothing"),
    };
    Step::Apply(Op::Alarm {
        activate,
        member_id: a.member_id,
        alarm: a.alarm,
    })
}

/// etcd's UserAdd: a missing `options` is a user with a password.
fn user_add(u: pb::AuthUserAddRequest, at: At) -> Step {
    let no_password = u.options.is_some_and(|o| o.no_password);
    let password = if no_password {
        Vec::new()
    } else {
        match select_password(&u.name, &u.password, &u.hashed_password, at) {
            Ok(p) => p,
            Err(why) => return Step::Skip(why),
        }
    };
    auth(AuthOp::UserAdd {
        name: u.name,
        password,
        no_password,
    })
}

/// etcd's UserChangePassword. (For a no-password user etcd keeps the
/// empty password; ferrocd's apply does the same with the hash given.)
fn change_password(u: pb::AuthUserChangePasswordRequest, at: At) -> Step {
    match select_password(&u.name, &u.password, &u.hashed_password, at) {
        Ok(password) => auth(AuthOp::UserChangePassword {
            name: u.name,
            password,
        }),
        Err(why) => Step::Skip(why),
    }
}

/// etcd 3.5's `selectPassword`: a plain password without a hash (written
/// by etcd 3.4) is hashed here, else the hash is the base64 one (written
/// by etcd 3.5's proposer). Err: why etcd's apply refused the request.
fn select_password(
    name: &str,
    password: &str,
    hashed: &str,
    at: At,
) -> Result<Vec<u8>, &'static str> {
    if !password.is_empty() && hashed.is_empty() {
        return hash_password(name, password, at);
    }
    base64::engine::general_purpose::STANDARD
        .decode(hashed)
        .map_err(|_| "hashed password not base64: etcd's apply refused it")
}

/// bcrypt at etcd's default cost with a salt every member derives alike
/// (see the module docs).
fn hash_password(name: &str, password: &str, at: At) -> Result<Vec<u8>, &'static str> {
    if password.len() > BCRYPT_MAX_PASSWORD {
        return Err("password over 72 bytes: etcd's bcrypt refused to hash it");
    }
    let digest = Sha256::new()
        .chain_update(SALT_LABEL)
        .chain_update(at.index.to_be_bytes())
        .chain_update(at.term.to_be_bytes())
        .chain_update(name.as_bytes())
        .finalize();
    let mut salt = [0u8; 16];
    salt.copy_from_slice(&digest[..16]);
    // At most 72 bytes, so nothing is truncated; the only error is a cost
    // out of range, and the cost is fixed.
    bcrypt::hash_with_salt(password, ETCD_BCRYPT_COST, salt)
        .map(|h| h.format_for_version(bcrypt::Version::TwoA).into_bytes())
        .map_err(|_| "bcrypt refused the password")
}

/// ferrocd's auth gate does the same conversion for its own requests.
fn grant_permission(r: pb::AuthRoleGrantPermissionRequest) -> Result<Step, TranslateError> {
    let perm = r
        .perm
        .map(|p| {
            // etcd stores any number and grants nothing for an unknown
            // one; ferrocd's permissions have no such kind.
            let kind = PermKind::from_i32(p.perm_type).ok_or(TranslateError::Unsupported(
                "a permission type other than READ, WRITE, READWRITE",
            ))?;
            Ok(Perm {
                kind,
                key: p.key,
                range_end: p.range_end,
            })
        })
        .transpose()?;
    Ok(auth(AuthOp::RoleGrantPermission { name: r.name, perm }))
}

/// etcd 3.5's ClusterMemberAttrSet.
fn member_attr_set(r: ClusterMemberAttrSetRequest) -> Result<Step, TranslateError> {
    let a = r.member_attributes.ok_or_else(|| {
        TranslateError::Malformed(
            "cluster member attributes set without attributes (etcd's apply panics on it)".into(),
        )
    })?;
    Ok(Step::Attributes {
        id: r.member_id,
        name: a.name,
        client_urls: a.client_urls,
    })
}

/// A v2 Request, as etcd's `applyV2Request` and `applierV2store` see it.
fn v2(r: V2Request) -> Result<Step, TranslateError> {
    match r.method.as_str() {
        "SYNC" => {
            return Ok(Step::Skip(
                "v2 sync: expires the v2 store's TTL keys (ferrocd has no v2 store)",
            ));
        }
        "QGET" => return Ok(Step::Skip("v2 quorum get: a read")),
        "PUT" | "POST" | "DELETE" => {}
        // etcd proposes only the five methods above: these bytes are more
        // likely not a Request at all.
        other => {
            return Err(TranslateError::Malformed(format!(
                "v2 Request with method {other:?}"
            )));
        }
    }
    let internal = r.path == V2_INTERNAL
        || r.path
            .strip_prefix(V2_INTERNAL)
            .is_some_and(|rest| rest.starts_with('/'));
    if !internal {
        return Err(TranslateError::V2Data { path: r.path });
    }
    // etcd's Put looks at these two paths only when the PUT has no
    // condition (prevExist, prevIndex, prevValue), as etcd's own are.
    let plain_put =
        r.method == "PUT" && r.prev_exist.is_none() && r.prev_index == 0 && r.prev_value.is_empty();
    if plain_put {
        if let Some(id) = attributes_member(&r.path) {
            return member_attributes_json(id, &r.val);
        }
        if r.path == "/0/version" {
            return Ok(Step::Skip(
                "v2 cluster version set: ferrocd reports its own version",
            ));
        }
    }
    Ok(Step::Skip(
        "v2 write of etcd's own keys under /0 (membership bookkeeping), not user data",
    ))
}

/// The member of `/0/members/<1 to 16 hex digits>/attributes` (etcd's
/// `storeMemberAttributeRegexp`, whose ids are `%x`).
fn attributes_member(path: &str) -> Option<u64> {
    let hex = path
        .strip_prefix("/0/members/")?
        .strip_suffix("/attributes")?;
    if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// etcd 3.4's published attributes, `{"name":..,"clientURLs":[..]}`, read
/// as Go's `json.Unmarshal` into etcd's `Attributes` reads them: keys
/// match ignoring case, null is the zero value, other keys are ignored.
fn member_attributes_json(id: u64, val: &str) -> Result<Step, TranslateError> {
    let bad = |why: &str| {
        TranslateError::Malformed(format!(
            "member {id:x} attributes {val:?}: {why} (etcd's apply panics on it)"
        ))
    };
    let obj = match serde_json::from_str::<Value>(val).map_err(|e| bad(&e.to_string()))? {
        Value::Null => Map::new(),
        Value::Object(o) => o,
        _ => return Err(bad("not an object")),
    };
    let name = match json_field(&obj, "name") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(bad("name is not a string")),
    };
    let client_urls = match json_field(&obj, "clientURLs") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(urls)) => urls
            .iter()
            .map(|u| match u {
                Value::Null => Ok(String::new()),
                Value::String(s) => Ok(s.clone()),
                _ => Err(bad("a client URL is not a string")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad("clientURLs is not a list")),
    };
    Ok(Step::Attributes {
        id,
        name,
        client_urls,
    })
}

/// Go's rule: the exact key first, else one equal ignoring case.
fn json_field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

// etcd's messages that `ferrocd_net` does not generate (they never cross
// the client API). Strings etcd only logs or ignores are `bytes` here, so
// one that is not UTF-8 does not make the whole entry undecodable.

/// `etcdserverpb.InternalRaftRequest` (raft_internal.proto).
#[derive(Clone, PartialEq, prost::Message)]
struct InternalRaftRequest {
    #[prost(message, optional, tag = "100")]
    header: Option<RequestHeader>,
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(message, optional, tag = "2")]
    v2: Option<V2Request>,
    #[prost(message, optional, tag = "3")]
    range: Option<pb::RangeRequest>,
    #[prost(message, optional, tag = "4")]
    put: Option<pb::PutRequest>,
    #[prost(message, optional, tag = "5")]
    delete_range: Option<pb::DeleteRangeRequest>,
    #[prost(message, optional, tag = "6")]
    txn: Option<pb::TxnRequest>,
    #[prost(message, optional, tag = "7")]
    compaction: Option<pb::CompactionRequest>,
    #[prost(message, optional, tag = "8")]
    lease_grant: Option<pb::LeaseGrantRequest>,
    #[prost(message, optional, tag = "9")]
    lease_revoke: Option<pb::LeaseRevokeRequest>,
    #[prost(message, optional, tag = "10")]
    alarm: Option<pb::AlarmRequest>,
    /// etcd 3.4+.
    #[prost(message, optional, tag = "11")]
    lease_checkpoint: Option<pb::LeaseCheckpointRequest>,
    #[prost(message, optional, tag = "1000")]
    auth_enable: Option<pb::AuthEnableRequest>,
    #[prost(message, optional, tag = "1011")]
    auth_disable: Option<pb::AuthDisableRequest>,
    /// etcd 3.4.31+ and 3.5.
    #[prost(message, optional, tag = "1013")]
    auth_status: Option<pb::AuthStatusRequest>,
    #[prost(message, optional, tag = "1012")]
    authenticate: Option<InternalAuthenticateRequest>,
    /// `hashedPassword` (4) is etcd 3.5's; etcd 3.4 writes `password` (2).
    #[prost(message, optional, tag = "1100")]
    auth_user_add: Option<pb::AuthUserAddRequest>,
    #[prost(message, optional, tag = "1101")]
    auth_user_delete: Option<pb::AuthUserDeleteRequest>,
    #[prost(message, optional, tag = "1102")]
    auth_user_get: Option<pb::AuthUserGetRequest>,
    /// `hashedPassword` (3) is etcd 3.5's; etcd 3.4 writes `password` (2).
    #[prost(message, optional, tag = "1103")]
    auth_user_change_password: Option<pb::AuthUserChangePasswordRequest>,
    #[prost(message, optional, tag = "1104")]
    auth_user_grant_role: Option<pb::AuthUserGrantRoleRequest>,
    #[prost(message, optional, tag = "1105")]
    auth_user_revoke_role: Option<pb::AuthUserRevokeRoleRequest>,
    #[prost(message, optional, tag = "1106")]
    auth_user_list: Option<pb::AuthUserListRequest>,
    #[prost(message, optional, tag = "1107")]
    auth_role_list: Option<pb::AuthRoleListRequest>,
    #[prost(message, optional, tag = "1200")]
    auth_role_add: Option<pb::AuthRoleAddRequest>,
    #[prost(message, optional, tag = "1201")]
    auth_role_delete: Option<pb::AuthRoleDeleteRequest>,
    #[prost(message, optional, tag = "1202")]
    auth_role_get: Option<pb::AuthRoleGetRequest>,
    #[prost(message, optional, tag = "1203")]
    auth_role_grant_permission: Option<pb::AuthRoleGrantPermissionRequest>,
    #[prost(message, optional, tag = "1204")]
    auth_role_revoke_permission: Option<pb::AuthRoleRevokePermissionRequest>,
    /// etcd 3.5 (3.4 writes a v2 PUT of `/0/version`).
    #[prost(message, optional, tag = "1300")]
    cluster_version_set: Option<ClusterVersionSetRequest>,
    /// etcd 3.5 (3.4 writes a v2 PUT of `/0/members/<id>/attributes`).
    #[prost(message, optional, tag = "1301")]
    cluster_member_attr_set: Option<ClusterMemberAttrSetRequest>,
    /// etcd 3.5.
    #[prost(message, optional, tag = "1302")]
    downgrade_info_set: Option<DowngradeInfoSetRequest>,
}

/// `etcdserverpb.RequestHeader`: set by etcd 3.x's proposer on every v3
/// request.
#[derive(Clone, PartialEq, prost::Message)]
struct RequestHeader {
    #[prost(uint64, tag = "1")]
    id: u64,
    /// The authenticated user, empty without one.
    #[prost(string, tag = "2")]
    username: String,
    /// The auth revision the user's token was checked at.
    #[prost(uint64, tag = "3")]
    auth_revision: u64,
}

/// `etcdserverpb.InternalAuthenticateRequest` (skipped).
#[derive(Clone, PartialEq, prost::Message)]
struct InternalAuthenticateRequest {
    #[prost(bytes = "vec", tag = "1")]
    name: Vec<u8>,
    /// Early 3.4 releases keep the password here; later ones blank it.
    #[prost(bytes = "vec", tag = "2")]
    password: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    simple_token: Vec<u8>,
}

/// `membershippb.ClusterVersionSetRequest` (etcd 3.5; skipped).
#[derive(Clone, PartialEq, prost::Message)]
struct ClusterVersionSetRequest {
    #[prost(bytes = "vec", tag = "1")]
    ver: Vec<u8>,
}

/// `membershippb.ClusterMemberAttrSetRequest` (etcd 3.5).
#[derive(Clone, PartialEq, prost::Message)]
struct ClusterMemberAttrSetRequest {
    #[prost(uint64, tag = "1")]
    member_id: u64,
    #[prost(message, optional, tag = "2")]
    member_attributes: Option<Attributes>,
}

/// `membershippb.Attributes`.
#[derive(Clone, PartialEq, prost::Message)]
struct Attributes {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, repeated, tag = "2")]
    client_urls: Vec<String>,
}

/// `membershippb.DowngradeInfoSetRequest` (etcd 3.5; skipped).
#[derive(Clone, PartialEq, prost::Message)]
struct DowngradeInfoSetRequest {
    #[prost(bool, tag = "1")]
    enabled: bool,
    #[prost(bytes = "vec", tag = "2")]
    ver: Vec<u8>,
}

/// `etcdserverpb.Request` (etcdserver.proto, proto2, the same in 3.4 and
/// 3.5): a v2 store request. gogoproto writes every non-nullable field,
/// zero or not; decoding does not care. Only the fields read here and
/// their neighbours' wire types matter: a field of the wrong wire type
/// fails the decode, as it does in etcd.
#[derive(Clone, PartialEq, prost::Message)]
struct V2Request {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(string, tag = "2")]
    method: String,
    #[prost(string, tag = "3")]
    path: String,
    #[prost(string, tag = "4")]
    val: String,
    #[prost(bool, tag = "5")]
    dir: bool,
    #[prost(string, tag = "6")]
    prev_value: String,
    #[prost(uint64, tag = "7")]
    prev_index: u64,
    /// Nullable: unset and false differ.
    #[prost(bool, optional, tag = "8")]
    prev_exist: Option<bool>,
    #[prost(int64, tag = "9")]
    expiration: i64,
    #[prost(bool, tag = "10")]
    wait: bool,
    #[prost(uint64, tag = "11")]
    since: u64,
    #[prost(bool, tag = "12")]
    recursive: bool,
    #[prost(bool, tag = "13")]
    sorted: bool,
    #[prost(bool, tag = "14")]
    quorum: bool,
    #[prost(int64, tag = "15")]
    time: i64,
    #[prost(bool, tag = "16")]
    stream: bool,
    #[prost(bool, optional, tag = "17")]
    refresh: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrocd_mvcc as mvcc;
    use ferrocd_net::pb::authpb;

    const MIN_TTL: i64 = 3;

    fn tr(data: &[u8]) -> Result<Translated, TranslateError> {
        translate_with(data, 7, 3, MIN_TTL)
    }

    fn enc(r: &InternalRaftRequest) -> Vec<u8> {
        r.encode_to_vec()
    }

    /// The op of a translated command run as `Anonymous` at index 7.
    fn op(data: &[u8]) -> Op {
        match tr(data) {
            Ok(Translated::Command(c)) => {
                assert_eq!(
                    c.id,
                    RequestId {
                        member: 0,
                        incarnation: 0,
                        seq: 7
                    }
                );
                assert_eq!(c.floor, 0);
                assert_eq!(c.caller, Caller::Anonymous);
                c.op
            }
            other => panic!("not a command: {other:?}"),
        }
    }

    fn skipped(data: &[u8]) -> &'static str {
        match tr(data) {
            Ok(Translated::Skip(why)) => why,
            other => panic!("not skipped: {other:?}"),
        }
    }

    fn auth_op(data: &[u8]) -> AuthOp {
        match op(data) {
            Op::Auth(a) => a,
            other => panic!("not an auth op: {other:?}"),
        }
    }

    /// A protobuf varint, to build tags from the numbers in etcd's proto
    /// text (independent of the structs under test).
    fn varint(mut n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }

    #[test]
    fn put_from_bytes_written_by_hand() {
        // InternalRaftRequest { ID: 42, header: { ID: 7, username: "alice",
        // auth_revision: 5 }, put: { key: "k", value: "v" } }, tags from
        // raft_internal.proto (ID 1, header 100, put 4) and rpc.proto.
        let data = [
            0x08, 0x2a, // ID = 42
            0xa2, 0x06, 11, // header (100, length-delimited), 11 bytes
            0x08, 0x07, // header.ID = 7
            0x12, 5, b'a', b'l', b'i', b'c', b'e', // header.username
            0x18, 0x05, // header.auth_revision = 5
            0x22, 6, // put (4), 6 bytes
            0x0a, 1, b'k', // key
            0x12, 1, b'v', // value
        ];
        let Ok(Translated::Command(c)) = tr(&data) else {
            panic!("{:?}", tr(&data));
        };
        assert_eq!(c.op, Op::Put(mvcc::PutRequest::new("k", "v")));
        assert_eq!(
            c.caller,
            Caller::User {
                name: "alice".into(),
                revision: 5
            }
        );
        assert_eq!(c.id.seq, 7);
        assert!(c.id.is_legacy());
    }

    #[test]
    fn user_add_from_bytes_written_by_hand() {
        // etcd 3.4: auth_user_add (1100) { name: "bob", password: "pw" }.
        let plain = [
            0xe2, 0x44, 9, // auth_user_add (1100), 9 bytes
            0x0a, 3, b'b', b'o', b'b', // name (1)
            0x12, 2, b'p', b'w', // password (2)
        ];
        let AuthOp::UserAdd {
            name,
            password,
            no_password,
        } = auth_op(&plain)
        else {
            panic!()
        };
        assert_eq!(name, "bob");
        assert!(!no_password);
        let hash = String::from_utf8(password.clone()).unwrap();
        assert!(hash.starts_with("$2a$10$"), "{hash}");
        assert!(bcrypt::verify("pw", &hash).unwrap());
        assert!(!bcrypt::verify("pW", &hash).unwrap());
        // Every member computes the same hash for the same entry.
        let AuthOp::UserAdd {
            password: again, ..
        } = auth_op(&plain)
        else {
            panic!()
        };
        assert_eq!(again, password);

        // etcd 3.5: hashedPassword (4) = base64("$2a$04$..."), options (3)
        // absent.
        let hashed = bcrypt::hash("pw", 4).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&hashed);
        let mut data = vec![0xe2, 0x44, (5 + 2 + b64.len()) as u8];
        data.extend_from_slice(&[0x0a, 3, b'b', b'o', b'b']);
        data.extend_from_slice(&[0x22, b64.len() as u8]);
        data.extend_from_slice(b64.as_bytes());
        assert_eq!(
            auth_op(&data),
            AuthOp::UserAdd {
                name: "bob".into(),
                password: hashed.into_bytes(),
                no_password: false
            }
        );

        // options (3) { no_password (1): true }.
        let data = [0xe2, 0x44, 9, 0x0a, 3, b'b', b'o', b'b', 0x1a, 2, 0x08, 1];
        assert_eq!(
            auth_op(&data),
            AuthOp::UserAdd {
                name: "bob".into(),
                password: Vec::new(),
                no_password: true
            }
        );
    }

    #[test]
    fn member_attributes_from_bytes_written_by_hand() {
        // etcd 3.5: cluster_member_attr_set (1301) { member_ID (1): 0x1234,
        // member_attributes (2) { name (1): "m1", client_urls (2): "u" } }.
        let data = [
            0xaa, 0x51, 12, // cluster_member_attr_set, 12 bytes
            0x08, 0xb4, 0x24, // member_ID = 0x1234
            0x12, 7, // member_attributes, 7 bytes
            0x0a, 2, b'm', b'1', // name
            0x12, 1, b'u', // client_urls[0]
        ];
        assert_eq!(
            tr(&data).unwrap(),
            Translated::MemberAttributes {
                id: 0x1234,
                name: "m1".into(),
                client_urls: vec!["u".into()]
            }
        );

        // etcd 3.4: a bare v2 Request { ID (1): 1, Method (2): "PUT",
        // Path (3): "/0/members/ab/attributes", Val (4): JSON }, as
        // gogoproto writes it: every non-nullable field, zero or not, in
        // order (Dir 5, PrevValue 6, PrevIndex 7, Expiration 9 .. Stream 16;
        // the nullable PrevExist 8 and Refresh 17 left out).
        let path = b"/0/members/ab/attributes";
        let val = br#"{"name":"m2","clientURLs":["http://a:2379","http://b:2379"]}"#;
        let mut data = vec![0x08, 1, 0x12, 3, b'P', b'U', b'T'];
        data.extend_from_slice(&[0x1a, path.len() as u8]);
        data.extend_from_slice(path);
        data.extend_from_slice(&[0x22, val.len() as u8]);
        data.extend_from_slice(val);
        data.extend_from_slice(&[0x28, 0, 0x32, 0, 0x38, 0, 0x48, 0, 0x50, 0, 0x58, 0]);
        data.extend_from_slice(&[0x60, 0, 0x68, 0, 0x70, 0, 0x78, 0, 0x80, 0x01, 0]);
        assert_eq!(
            tr(&data).unwrap(),
            Translated::MemberAttributes {
                id: 0xab,
                name: "m2".into(),
                client_urls: vec!["http://a:2379".into(), "http://b:2379".into()]
            }
        );
    }

    #[test]
    fn every_field_number_is_etcds() {
        // (field number in etcd's proto text, the request with only it set)
        let mut cases: Vec<(u64, InternalRaftRequest)> = Vec::new();
        let mut add = |n: u64, f: &dyn Fn(&mut InternalRaftRequest)| {
            let mut r = InternalRaftRequest::default();
            f(&mut r);
            cases.push((n, r));
        };
        add(2, &|r| r.v2 = Some(V2Request::default()));
        add(3, &|r| r.range = Some(Default::default()));
        add(4, &|r| r.put = Some(Default::default()));
        add(5, &|r| r.delete_range = Some(Default::default()));
        add(6, &|r| r.txn = Some(Default::default()));
        add(7, &|r| r.compaction = Some(Default::default()));
        add(8, &|r| r.lease_grant = Some(Default::default()));
        add(9, &|r| r.lease_revoke = Some(Default::default()));
        add(10, &|r| r.alarm = Some(Default::default()));
        add(11, &|r| r.lease_checkpoint = Some(Default::default()));
        add(100, &|r| r.header = Some(Default::default()));
        add(1000, &|r| r.auth_enable = Some(Default::default()));
        add(1011, &|r| r.auth_disable = Some(Default::default()));
        add(1012, &|r| r.authenticate = Some(Default::default()));
        add(1013, &|r| r.auth_status = Some(Default::default()));
        add(1100, &|r| r.auth_user_add = Some(Default::default()));
        add(1101, &|r| r.auth_user_delete = Some(Default::default()));
        add(1102, &|r| r.auth_user_get = Some(Default::default()));
        add(1103, &|r| {
            r.auth_user_change_password = Some(Default::default())
        });
        add(1104, &|r| r.auth_user_grant_role = Some(Default::default()));
        add(1105, &|r| {
            r.auth_user_revoke_role = Some(Default::default())
        });
        add(1106, &|r| r.auth_user_list = Some(Default::default()));
        add(1107, &|r| r.auth_role_list = Some(Default::default()));
        add(1200, &|r| r.auth_role_add = Some(Default::default()));
        add(1201, &|r| r.auth_role_delete = Some(Default::default()));
        add(1202, &|r| r.auth_role_get = Some(Default::default()));
        add(1203, &|r| {
            r.auth_role_grant_permission = Some(Default::default())
        });
        add(1204, &|r| {
            r.auth_role_revoke_permission = Some(Default::default())
        });
        add(1300, &|r| r.cluster_version_set = Some(Default::default()));
        add(1301, &|r| {
            r.cluster_member_attr_set = Some(Default::default())
        });
        add(1302, &|r| r.downgrade_info_set = Some(Default::default()));
        for (n, r) in &cases {
            let mut want = varint((n << 3) | 2);
            want.push(0); // an empty message
            assert_eq!(enc(r), want, "field {n}");
        }
        // Scalars: InternalRaftRequest.ID (1), and the inner messages.
        let r = InternalRaftRequest {
            id: 1,
            ..Default::default()
        };
        assert_eq!(enc(&r), [0x08, 1]);
        let h = RequestHeader {
            id: 1,
            username: "u".into(),
            auth_revision: 2,
        };
        assert_eq!(h.encode_to_vec(), [0x08, 1, 0x12, 1, b'u', 0x18, 2]);
        let a = InternalAuthenticateRequest {
            name: b"n".to_vec(),
            password: b"p".to_vec(),
            simple_token: b"t".to_vec(),
        };
        assert_eq!(
            a.encode_to_vec(),
            [0x0a, 1, b'n', 0x12, 1, b'p', 0x1a, 1, b't']
        );
        let v = ClusterVersionSetRequest {
            ver: b"3.5.0".to_vec(),
        };
        assert_eq!(v.encode_to_vec()[..2], [0x0a, 5]);
        let d = DowngradeInfoSetRequest {
            enabled: true,
            ver: b"3.4.0".to_vec(),
        };
        assert_eq!(d.encode_to_vec()[..4], [0x08, 1, 0x12, 5]);
        let v2 = V2Request {
            id: 1,
            method: "m".into(),
            path: "p".into(),
            val: "v".into(),
            dir: true,
            prev_value: "x".into(),
            prev_index: 2,
            prev_exist: Some(true),
            expiration: 3,
            wait: true,
            since: 4,
            recursive: true,
            sorted: true,
            quorum: true,
            time: 5,
            stream: true,
            refresh: Some(true),
        };
        let mut want = vec![
            0x08, 1, 0x12, 1, b'm', 0x1a, 1, b'p', 0x22, 1, b'v', 0x28, 1,
        ];
        want.extend_from_slice(&[0x32, 1, b'x', 0x38, 2, 0x40, 1, 0x48, 3, 0x50, 1]);
        want.extend_from_slice(&[0x58, 4, 0x60, 1, 0x68, 1, 0x70, 1, 0x78, 5]);
        want.extend_from_slice(&[0x80, 0x01, 1, 0x88, 0x01, 1]);
        assert_eq!(v2.encode_to_vec(), want);
    }

    #[test]
    fn kv_requests() {
        let put = pb::PutRequest {
            key: b"a".to_vec(),
            value: b"1".to_vec(),
            lease: 9,
            prev_kv: true,
            ..Default::default()
        };
        let r = InternalRaftRequest {
            put: Some(put.clone()),
            ..Default::default()
        };
        assert_eq!(op(&enc(&r)), Op::Put(convert::put_request(put).unwrap()));

        let del = pb::DeleteRangeRequest {
            key: b"a".to_vec(),
            range_end: b"z".to_vec(),
            prev_kv: true,
        };
        let r = InternalRaftRequest {
            delete_range: Some(del),
            ..Default::default()
        };
        let mut want = mvcc::DeleteRangeRequest::new("a", "z");
        want.prev_kv = true;
        assert_eq!(op(&enc(&r)), Op::DeleteRange(want));

        // More ops than etcd's default --max-txn-ops (128): etcd took it.
        let put_op = |k: &str| pb::RequestOp {
            request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                key: k.as_bytes().to_vec(),
                value: b"v".to_vec(),
                ..Default::default()
            })),
        };
        let txn = pb::TxnRequest {
            compare: vec![pb::Compare {
                key: b"a".to_vec(),
                target: pb::compare::CompareTarget::Version as i32,
                target_union: Some(pb::compare::TargetUnion::Version(0)),
                ..Default::default()
            }],
            success: (0..200).map(|i| put_op(&format!("k{i}"))).collect(),
            failure: vec![put_op("f")],
        };
        let r = InternalRaftRequest {
            txn: Some(txn.clone()),
            ..Default::default()
        };
        let Op::Txn(t) = op(&enc(&r)) else { panic!() };
        assert_eq!(t, convert::txn_request(txn, usize::MAX).unwrap());
        assert_eq!(t.success.len(), 200);

        let r = InternalRaftRequest {
            compaction: Some(pb::CompactionRequest {
                revision: 12,
                physical: true,
            }),
            ..Default::default()
        };
        assert_eq!(op(&enc(&r)), Op::Compact { revision: 12 });

        // What etcd's gRPC layer refuses is not something etcd wrote.
        let r = InternalRaftRequest {
            put: Some(pb::PutRequest::default()),
            ..Default::default()
        };
        assert!(matches!(tr(&enc(&r)), Err(TranslateError::Malformed(_))));
    }

    #[test]
    fn leases() {
        let grant = |id, ttl| InternalRaftRequest {
            lease_grant: Some(pb::LeaseGrantRequest { ttl, id }),
            ..Default::default()
        };
        assert_eq!(op(&enc(&grant(5, 60))), Op::LeaseGrant { id: 5, ttl: 60 });
        // etcd's apply raised a short TTL to its minimum.
        assert_eq!(
            op(&enc(&grant(5, 1))),
            Op::LeaseGrant {
                id: 5,
                ttl: MIN_TTL
            }
        );
        assert_eq!(
            op(&enc(&grant(5, crate::MAX_LEASE_TTL))),
            Op::LeaseGrant {
                id: 5,
                ttl: crate::MAX_LEASE_TTL
            }
        );
        skipped(&enc(&grant(5, crate::MAX_LEASE_TTL + 1)));
        // etcd's default timings: 2 s.
        let Ok(Translated::Command(c)) = translate(&enc(&grant(5, 1)), 7, 3) else {
            panic!()
        };
        assert_eq!(c.op, Op::LeaseGrant { id: 5, ttl: 2 });

        let r = InternalRaftRequest {
            lease_revoke: Some(pb::LeaseRevokeRequest { id: 5 }),
            ..Default::default()
        };
        assert_eq!(op(&enc(&r)), Op::LeaseRevoke { id: 5 });

        let r = InternalRaftRequest {
            lease_checkpoint: Some(pb::LeaseCheckpointRequest {
                checkpoints: vec![pb::LeaseCheckpoint {
                    id: 5,
                    remaining_ttl: 30,
                }],
            }),
            ..Default::default()
        };
        assert!(skipped(&enc(&r)).contains("checkpoint"));
    }

    #[test]
    fn alarms() {
        use pb::alarm_request::AlarmAction;
        let alarm = |action: AlarmAction, alarm: pb::AlarmType| InternalRaftRequest {
            alarm: Some(pb::AlarmRequest {
                action: action as i32,
                member_id: 0xabc,
                alarm: alarm as i32,
            }),
            ..Default::default()
        };
        assert_eq!(
            op(&enc(&alarm(AlarmAction::Activate, pb::AlarmType::Nospace))),
            Op::Alarm {
                activate: true,
                member_id: 0xabc,
                alarm: 1
            }
        );
        assert_eq!(
            op(&enc(&alarm(
                AlarmAction::Deactivate,
                pb::AlarmType::Corrupt
            ))),
            Op::Alarm {
                activate: false,
                member_id: 0xabc,
                alarm: 2
            }
        );
        skipped(&enc(&alarm(AlarmAction::Get, pb::AlarmType::None)));
        skipped(&enc(&alarm(AlarmAction::Activate, pb::AlarmType::None)));
        let mut r = alarm(AlarmAction::Get, pb::AlarmType::None);
        r.alarm.as_mut().unwrap().action = 9;
        skipped(&enc(&r));
    }

    #[test]
    fn auth_changes() {
        let cases: Vec<(InternalRaftRequest, AuthOp)> = vec![
            (
                InternalRaftRequest {
                    auth_enable: Some(pb::AuthEnableRequest {}),
                    ..Default::default()
                },
                AuthOp::Enable,
            ),
            (
                InternalRaftRequest {
                    auth_disable: Some(pb::AuthDisableRequest {}),
                    ..Default::default()
                },
                AuthOp::Disable,
            ),
            (
                InternalRaftRequest {
                    auth_user_delete: Some(pb::AuthUserDeleteRequest { name: "u".into() }),
                    ..Default::default()
                },
                AuthOp::UserDelete { name: "u".into() },
            ),
            (
                InternalRaftRequest {
                    auth_user_grant_role: Some(pb::AuthUserGrantRoleRequest {
                        user: "u".into(),
                        role: "r".into(),
                    }),
                    ..Default::default()
                },
                AuthOp::UserGrantRole {
                    user: "u".into(),
                    role: "r".into(),
                },
            ),
            (
                InternalRaftRequest {
                    auth_user_revoke_role: Some(pb::AuthUserRevokeRoleRequest {
                        name: "u".into(),
                        role: "r".into(),
                    }),
                    ..Default::default()
                },
                AuthOp::UserRevokeRole {
                    name: "u".into(),
                    role: "r".into(),
                },
            ),
            (
                InternalRaftRequest {
                    auth_role_add: Some(pb::AuthRoleAddRequest { name: "r".into() }),
                    ..Default::default()
                },
                AuthOp::RoleAdd { name: "r".into() },
            ),
            (
                InternalRaftRequest {
                    auth_role_delete: Some(pb::AuthRoleDeleteRequest { role: "r".into() }),
                    ..Default::default()
                },
                AuthOp::RoleDelete { role: "r".into() },
            ),
            (
                InternalRaftRequest {
                    auth_role_grant_permission: Some(pb::AuthRoleGrantPermissionRequest {
                        name: "r".into(),
                        perm: Some(authpb::Permission {
                            perm_type: 2,
                            key: b"a".to_vec(),
                            range_end: b"b".to_vec(),
                        }),
                    }),
                    ..Default::default()
                },
                AuthOp::RoleGrantPermission {
                    name: "r".into(),
                    perm: Some(Perm {
                        kind: PermKind::ReadWrite,
                        key: b"a".to_vec(),
                        range_end: b"b".to_vec(),
                    }),
                },
            ),
            (
                InternalRaftRequest {
                    auth_role_grant_permission: Some(pb::AuthRoleGrantPermissionRequest {
                        name: "r".into(),
                        perm: None,
                    }),
                    ..Default::default()
                },
                AuthOp::RoleGrantPermission {
                    name: "r".into(),
                    perm: None,
                },
            ),
            (
                InternalRaftRequest {
                    auth_role_revoke_permission: Some(pb::AuthRoleRevokePermissionRequest {
                        role: "r".into(),
                        key: b"a".to_vec(),
                        range_end: b"b".to_vec(),
                    }),
                    ..Default::default()
                },
                AuthOp::RoleRevokePermission {
                    role: "r".into(),
                    key: b"a".to_vec(),
                    range_end: b"b".to_vec(),
                },
            ),
        ];
        for (r, want) in cases {
            assert_eq!(auth_op(&enc(&r)), want);
        }
        for (kind, n) in [(PermKind::Read, 0), (PermKind::Write, 1)] {
            let r = InternalRaftRequest {
                auth_role_grant_permission: Some(pb::AuthRoleGrantPermissionRequest {
                    name: "r".into(),
                    perm: Some(authpb::Permission {
                        perm_type: n,
                        key: b"a".to_vec(),
                        range_end: Vec::new(),
                    }),
                }),
                ..Default::default()
            };
            let AuthOp::RoleGrantPermission { perm: Some(p), .. } = auth_op(&enc(&r)) else {
                panic!()
            };
            assert_eq!(p.kind, kind);
        }
        let r = InternalRaftRequest {
            auth_role_grant_permission: Some(pb::AuthRoleGrantPermissionRequest {
                name: "r".into(),
                perm: Some(authpb::Permission {
                    perm_type: 3,
                    key: b"a".to_vec(),
                    range_end: Vec::new(),
                }),
            }),
            ..Default::default()
        };
        assert!(matches!(tr(&enc(&r)), Err(TranslateError::Unsupported(_))));
    }

    #[test]
    fn change_password_both_versions() {
        let change = |password: &str, hashed: &str| InternalRaftRequest {
            auth_user_change_password: Some(pb::AuthUserChangePasswordRequest {
                name: "u".into(),
                password: password.into(),
                hashed_password: hashed.into(),
            }),
            ..Default::default()
        };
        // etcd 3.4: the plain password.
        let AuthOp::UserChangePassword { name, password } = auth_op(&enc(&change("new", "")))
        else {
            panic!()
        };
        assert_eq!(name, "u");
        let hash = String::from_utf8(password).unwrap();
        assert!(bcrypt::verify("new", &hash).unwrap());
        // The salt is the entry's: another index, another hash.
        let Ok(Translated::Command(c)) = translate_with(&enc(&change("new", "")), 8, 3, MIN_TTL)
        else {
            panic!()
        };
        let Op::Auth(AuthOp::UserChangePassword {
            password: other, ..
        }) = c.op
        else {
            panic!()
        };
        assert_ne!(other, hash.as_bytes());
        assert!(bcrypt::verify("new", std::str::from_utf8(&other).unwrap()).unwrap());

        // etcd 3.5: the base64 hash (taken over the plain password, as
        // etcd's selectPassword does).
        let b64 = base64::engine::general_purpose::STANDARD.encode("$2a$04$hash");
        assert_eq!(
            auth_op(&enc(&change("ignored", &b64))),
            AuthOp::UserChangePassword {
                name: "u".into(),
                password: b"$2a$04$hash".to_vec()
            }
        );
        // Neither: an empty hash, as etcd 3.5 stores (no password logs in).
        assert_eq!(
            auth_op(&enc(&change("", ""))),
            AuthOp::UserChangePassword {
                name: "u".into(),
                password: Vec::new()
            }
        );
        // etcd's apply refused these.
        assert!(skipped(&enc(&change("", "not base64!"))).contains("base64"));
        assert!(skipped(&enc(&change(&"x".repeat(73), ""))).contains("72"));
        let AuthOp::UserChangePassword { password, .. } =
            auth_op(&enc(&change(&"x".repeat(72), "")))
        else {
            panic!()
        };
        assert!(bcrypt::verify("x".repeat(72), std::str::from_utf8(&password).unwrap()).unwrap());
    }

    #[test]
    fn header_is_the_caller() {
        let put = Some(pb::PutRequest {
            key: b"k".to_vec(),
            ..Default::default()
        });
        let caller_of = |header: Option<RequestHeader>| {
            let r = InternalRaftRequest {
                header,
                put: put.clone(),
                ..Default::default()
            };
            match tr(&enc(&r)) {
                Ok(Translated::Command(c)) => c.caller,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(caller_of(None), Caller::Anonymous);
        assert_eq!(
            caller_of(Some(RequestHeader {
                id: 3,
                username: String::new(),
                auth_revision: 4
            })),
            Caller::Anonymous
        );
        assert_eq!(
            caller_of(Some(RequestHeader {
                id: 3,
                username: "root".into(),
                auth_revision: 4
            })),
            Caller::User {
                name: "root".into(),
                revision: 4
            }
        );
    }

    #[test]
    fn reads_and_etcd_internals_are_skipped() {
        let cases = [
            InternalRaftRequest {
                range: Some(pb::RangeRequest {
                    key: b"a".to_vec(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            InternalRaftRequest {
                auth_status: Some(pb::AuthStatusRequest {}),
                ..Default::default()
            },
            InternalRaftRequest {
                auth_user_get: Some(pb::AuthUserGetRequest { name: "u".into() }),
                ..Default::default()
            },
            InternalRaftRequest {
                auth_user_list: Some(pb::AuthUserListRequest {}),
                ..Default::default()
            },
            InternalRaftRequest {
                auth_role_get: Some(pb::AuthRoleGetRequest { role: "r".into() }),
                ..Default::default()
            },
            InternalRaftRequest {
                auth_role_list: Some(pb::AuthRoleListRequest {}),
                ..Default::default()
            },
            InternalRaftRequest {
                authenticate: Some(InternalAuthenticateRequest {
                    name: b"u".to_vec(),
                    password: vec![0xff],
                    simple_token: b"abc.1".to_vec(),
                }),
                ..Default::default()
            },
            InternalRaftRequest {
                cluster_version_set: Some(ClusterVersionSetRequest {
                    ver: b"3.5.0".to_vec(),
                }),
                ..Default::default()
            },
            InternalRaftRequest {
                downgrade_info_set: Some(DowngradeInfoSetRequest {
                    enabled: true,
                    ver: b"3.4.0".to_vec(),
                }),
                ..Default::default()
            },
        ];
        for r in &cases {
            skipped(&enc(r));
        }
        assert!(skipped(&[]).contains("no-op"));
    }

    fn v2_put(path: &str, val: &str) -> V2Request {
        V2Request {
            id: 1,
            method: "PUT".into(),
            path: path.into(),
            val: val.into(),
            ..Default::default()
        }
    }

    /// `r` bare (etcd 3.4) and in InternalRaftRequest.v2 translate alike.
    fn v2_both(r: V2Request) -> Result<Translated, TranslateError> {
        let bare = tr(&r.encode_to_vec());
        let wrapped = tr(&enc(&InternalRaftRequest {
            v2: Some(r),
            ..Default::default()
        }));
        assert_eq!(format!("{bare:?}"), format!("{wrapped:?}"));
        bare
    }

    #[test]
    fn v2_requests() {
        let attrs = v2_both(v2_put(
            "/0/members/8e9e05c52164694d/attributes",
            r#"{"name":"infra1","clientURLs":["http://127.0.0.1:2379"]}"#,
        ));
        assert_eq!(
            attrs.unwrap(),
            Translated::MemberAttributes {
                id: 0x8e9e05c52164694d,
                name: "infra1".into(),
                client_urls: vec!["http://127.0.0.1:2379".into()]
            }
        );
        // Go's JSON: keys ignore case, null and missing are empty.
        assert_eq!(
            v2_both(v2_put("/0/members/1/attributes", r#"{"Name":"n","x":1}"#)).unwrap(),
            Translated::MemberAttributes {
                id: 1,
                name: "n".into(),
                client_urls: Vec::new()
            }
        );
        assert!(matches!(
            v2_both(v2_put("/0/members/1/attributes", r#"{"name":3}"#)),
            Err(TranslateError::Malformed(_))
        ));
        assert!(matches!(
            v2_both(v2_put("/0/members/1/attributes", "{")),
            Err(TranslateError::Malformed(_))
        ));

        let skips = [
            v2_put("/0/version", "3.4.0"),
            v2_put(
                "/0/members/1/raftAttributes",
                r#"{"peerURLs":["http://a"]}"#,
            ),
            v2_put("/0/members/12345678901234567/attributes", "{}"),
            V2Request {
                prev_exist: Some(true),
                ..v2_put("/0/members/1/attributes", "{}")
            },
            V2Request {
                method: "DELETE".into(),
                ..v2_put("/0/members/1", "")
            },
            V2Request {
                method: "SYNC".into(),
                time: 1,
                ..Default::default()
            },
            // etcd's /health probe.
            V2Request {
                method: "QGET".into(),
                ..Default::default()
            },
        ];
        for r in skips {
            assert!(matches!(v2_both(r), Ok(Translated::Skip(_))));
        }

        // User data: etcd's v2 API keeps key /foo at /1/foo.
        for r in [
            v2_put("/1/foo", "bar"),
            V2Request {
                method: "POST".into(),
                ..v2_put("/1/queue", "x")
            },
            V2Request {
                method: "DELETE".into(),
                ..v2_put("/1/foo", "")
            },
            v2_put("/2/users/root", "{}"),
            v2_put("/00/x", ""),
        ] {
            let path = r.path.clone();
            match v2_both(r) {
                Err(TranslateError::V2Data { path: p }) => assert_eq!(p, path),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            v2_both(V2Request {
                method: "GET".into(),
                ..v2_put("/1/foo", "")
            }),
            Err(TranslateError::Malformed(_))
        ));
    }

    #[test]
    fn member_attributes_of_etcd_35() {
        let r = InternalRaftRequest {
            header: Some(RequestHeader {
                id: 1,
                ..Default::default()
            }),
            cluster_member_attr_set: Some(ClusterMemberAttrSetRequest {
                member_id: 0xfeed,
                member_attributes: Some(Attributes {
                    name: "m".into(),
                    client_urls: vec!["https://m:2379".into()],
                }),
            }),
            ..Default::default()
        };
        assert_eq!(
            tr(&enc(&r)).unwrap(),
            Translated::MemberAttributes {
                id: 0xfeed,
                name: "m".into(),
                client_urls: vec!["https://m:2379".into()]
            }
        );
        let r = InternalRaftRequest {
            cluster_member_attr_set: Some(ClusterMemberAttrSetRequest {
                member_id: 0xfeed,
                member_attributes: None,
            }),
            ..Default::default()
        };
        assert!(matches!(tr(&enc(&r)), Err(TranslateError::Malformed(_))));
    }

    #[test]
    fn bad_bytes() {
        for data in [
            &b"not protobuf"[..],
            &[0xff, 0xff, 0xff],
            &[0x22, 10, 0x0a],
            &[0x0f],
        ] {
            assert!(
                matches!(tr(data), Err(TranslateError::Malformed(_))),
                "{data:?}: {:?}",
                tr(data)
            );
        }
        // Only a header: etcd's apply panics ("not implemented apply").
        let r = InternalRaftRequest {
            id: 5,
            header: Some(RequestHeader {
                id: 5,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(matches!(tr(&enc(&r)), Err(TranslateError::Unsupported(_))));
    }
}
