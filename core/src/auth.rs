//! etcd's auth store: users, roles, permissions and the checks every
//! request goes through once auth is enabled (etcd 3.5 `server/auth`).
//!
//! [`AuthState`] is replicated state: every change is an [`AuthOp`] in the
//! raft log, applied on every member by [`AuthState::apply`], and the whole
//! state travels in the state machine's snapshots. Passwords are stored as
//! bcrypt hashes only (computed by the proposing member, as etcd 3.5 does,
//! so the log never holds a password).
//!
//! Checks follow etcd's rules exactly: a request proposed without a user
//! while auth is enabled is `user name is empty`; a user whose credentials
//! were checked at an older auth revision than the store's is `revision of
//! auth store is old` (the client re-authenticates); the root role may do
//! everything; other users need a role whose permissions cover the whole
//! key range asked for (read for ranges, compares and watches, write for
//! puts and deletes).
//!
//! Tokens: [`SimpleTokens`] are etcd's simple tokens (`<16 letters>.<raft
//! index>`), assigned on every member when the Authenticate entry applies,
//! expiring after `--auth-token-ttl` without use and dropped when their
//! user is deleted or changes password; they do not survive a restart
//! (neither do etcd's). JWT tokens are signed and checked in
//! `node.rs` (stateless).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use ferrocd_mvcc as mvcc;
use ferrocd_net::EtcdError;
use serde::{Deserialize, Serialize};

/// The root user and role.
pub const ROOT: &str = "root";

/// A permission type (etcd's `authpb.Permission.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PermKind {
    /// READ.
    Read,
    /// WRITE.
    Write,
    /// READWRITE.
    ReadWrite,
}

impl PermKind {
    /// From the wire's number.
    pub fn from_i32(v: i32) -> Option<Self> {
        match v {
            0 => Some(Self::Read),
            1 => Some(Self::Write),
            2 => Some(Self::ReadWrite),
            _ => None,
        }
    }

    /// The wire's number.
    pub fn to_i32(self) -> i32 {
        match self {
            Self::Read => 0,
            Self::Write => 1,
            Self::ReadWrite => 2,
        }
    }

    fn grants(self, need: Need) -> bool {
        matches!(
            (self, need),
            (Self::ReadWrite, _) | (Self::Read, Need::Read) | (Self::Write, Need::Write)
        )
    }
}

/// What a request needs on a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Range, compare, watch, prev_kv.
    Read,
    /// Put, delete.
    Write,
}

/// A key permission of a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Perm {
    /// Type.
    pub kind: PermKind,
    /// Key.
    pub key: Vec<u8>,
    /// Empty: the key alone; `\0`: every key from `key` on; else the
    /// half-open range `key..range_end`.
    pub range_end: Vec<u8>,
}

/// A user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// bcrypt hash (empty for a no-password user).
    pub password: Vec<u8>,
    /// Granted roles, sorted.
    pub roles: Vec<String>,
    /// Created with `--no-password`: authenticates by TLS common name only.
    pub no_password: bool,
}

/// A role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// Permissions, sorted by key.
    pub perms: Vec<Perm>,
}

/// The replicated auth store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthState {
    /// Auth enabled.
    pub enabled: bool,
    /// Bumped by every change of users, roles or the enabled flag.
    pub revision: u64,
    /// Users by name.
    pub users: BTreeMap<String, User>,
    /// Roles by name.
    pub roles: BTreeMap<String, Role>,
}

/// A fresh store: auth off, revision 1 (etcd commits revision 1 when it
/// creates its auth buckets).
impl Default for AuthState {
    fn default() -> Self {
        Self {
            enabled: false,
            revision: 1,
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
        }
    }
}

/// Who a replicated request runs as (etcd's request header user).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Caller {
    /// No credentials.
    Anonymous,
    /// A user and the auth revision its credentials were checked at.
    User {
        /// Name.
        name: String,
        /// Auth revision.
        revision: u64,
    },
    /// The node itself (lease expiry, auto-compaction): never checked.
    Internal,
}

impl Caller {
    /// From the caller a shim resolved.
    pub fn from_info(who: Option<ferrocd_net::AuthInfo>) -> Self {
        match who {
            Some(w) => Self::User {
                name: w.user,
                revision: w.revision,
            },
            None => Self::Anonymous,
        }
    }
}

/// A change (or a read that etcd routes through raft) of the auth store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthOp {
    /// AuthEnable.
    Enable,
    /// AuthDisable.
    Disable,
    /// AuthStatus.
    Status,
    /// Authenticate (the password was checked by the proposer); a simple
    /// token `<prefix>.<entry index>` is assigned where `prefix` is set.
    Authenticate {
        /// User.
        name: String,
        /// Simple token prefix (None with JWT tokens).
        prefix: Option<String>,
        /// The auth revision the password was checked at.
        checked_revision: u64,
    },
    /// UserAdd with the password already hashed.
    UserAdd {
        /// User.
        name: String,
        /// bcrypt hash (empty with `no_password`).
        password: Vec<u8>,
        /// No-password user.
        no_password: bool,
    },
    /// UserGet.
    UserGet {
        /// User.
        name: String,
    },
    /// UserList.
    UserList,
    /// UserDelete.
    UserDelete {
        /// User.
        name: String,
    },
    /// UserChangePassword with the password already hashed.
    UserChangePassword {
        /// User.
        name: String,
        /// bcrypt hash.
        password: Vec<u8>,
    },
    /// UserGrantRole.
    UserGrantRole {
        /// User.
        user: String,
        /// Role.
        role: String,
    },
    /// UserRevokeRole.
    UserRevokeRole {
        /// User.
        name: String,
        /// Role.
        role: String,
    },
    /// RoleAdd.
    RoleAdd {
        /// Role.
        name: String,
    },
    /// RoleGet.
    RoleGet {
        /// Role.
        role: String,
    },
    /// RoleList.
    RoleList,
    /// RoleDelete.
    RoleDelete {
        /// Role.
        role: String,
    },
    /// RoleGrantPermission.
    RoleGrantPermission {
        /// Role.
        name: String,
        /// The permission (None: `permission not given`).
        perm: Option<Perm>,
    },
    /// RoleRevokePermission.
    RoleRevokePermission {
        /// Role.
        role: String,
        /// Key.
        key: Vec<u8>,
        /// Range end.
        range_end: Vec<u8>,
    },
}

impl AuthOp {
    /// etcd's `needAdminPermission`: everything but Authenticate and the
    /// two reads a user may do on itself.
    fn needs_admin(&self) -> bool {
        !matches!(
            self,
            Self::Authenticate { .. } | Self::UserGet { .. } | Self::RoleGet { .. }
        )
    }

    /// The name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Enable => "auth_enable",
            Self::Disable => "auth_disable",
            Self::Status => "auth_status",
            Self::Authenticate { .. } => "authenticate",
            Self::UserAdd { .. } => "user_add",
            Self::UserGet { .. } => "user_get",
            Self::UserList => "user_list",
            Self::UserDelete { .. } => "user_delete",
            Self::UserChangePassword { .. } => "user_change_password",
            Self::UserGrantRole { .. } => "user_grant_role",
            Self::UserRevokeRole { .. } => "user_revoke_role",
            Self::RoleAdd { .. } => "role_add",
            Self::RoleGet { .. } => "role_get",
            Self::RoleList => "role_list",
            Self::RoleDelete { .. } => "role_delete",
            Self::RoleGrantPermission { .. } => "role_grant_permission",
            Self::RoleRevokePermission { .. } => "role_revoke_permission",
        }
    }
}

/// What an applied [`AuthOp`] answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthAnswer {
    /// Nothing more.
    Done,
    /// Authenticate: the user (and its auth revision) a token is for; the
    /// simple token assigned, if any.
    Authenticated {
        /// User.
        name: String,
        /// Auth revision.
        revision: u64,
        /// The simple token.
        token: Option<String>,
    },
    /// AuthStatus.
    Status {
        /// Enabled.
        enabled: bool,
        /// Revision.
        revision: u64,
    },
    /// UserGet roles, UserList users, RoleList roles.
    Names(Vec<String>),
    /// RoleGet.
    Perms(Vec<Perm>),
}

/// Side effects of an applied op on this member's simple tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenEffect {
    /// None.
    None,
    /// Assign `token` to `user` (at raft `index`).
    Assign {
        /// Token.
        token: String,
        /// User.
        user: String,
        /// The Authenticate entry's index.
        index: u64,
    },
    /// Drop the user's tokens (deleted, password changed).
    Invalidate(String),
    /// Drop every token (auth disabled).
    Clear,
}

/// A bound of a key interval: `None` is past every key.
type Bound<'a> = Option<&'a [u8]>;

/// The half-open interval a (key, range_end) pair names, etcd's way:
/// empty end = the key alone, `\0` = every key from `key` on.
fn interval(key: &[u8], range_end: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    if range_end.is_empty() {
        let mut end = key.to_vec();
        end.push(0);
        (key.to_vec(), Some(end))
    } else if range_end == [0] {
        (key.to_vec(), None)
    } else {
        (key.to_vec(), Some(range_end.to_vec()))
    }
}

fn bound_ge(a: Bound<'_>, b: Bound<'_>) -> bool {
    match (a, b) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => a >= b,
    }
}

impl AuthState {
    /// The user's permissions of `need` cover `key`..`range_end` (etcd's
    /// interval-tree check: the union of the permitted intervals must
    /// contain the whole requested one).
    fn covers(&self, user: &User, key: &[u8], range_end: &[u8], need: Need) -> bool {
        let mut ivs: Vec<(Vec<u8>, Option<Vec<u8>>)> = user
            .roles
            .iter()
            .filter_map(|r| self.roles.get(r))
            .flat_map(|r| r.perms.iter())
            .filter(|p| p.kind.grants(need))
            .map(|p| interval(&p.key, &p.range_end))
            .collect();
        ivs.sort();
        let (start, end) = interval(key, range_end);
        if let Some(e) = &end
            && e.as_slice() <= start.as_slice()
        {
            // An empty range asks for nothing but still names `key`: etcd
            // checks it as a point.
            return ivs
                .iter()
                .any(|(s, e)| s.as_slice() <= key && !bound_ge(Some(key), e.as_deref()));
        }
        let mut reached: Vec<u8> = start;
        for (s, e) in &ivs {
            if s.as_slice() > reached.as_slice() {
                break;
            }
            match e {
                None => return true,
                Some(e) if e.as_slice() > reached.as_slice() => reached = e.clone(),
                Some(_) => {}
            }
            if bound_ge(Some(&reached), end.as_deref()) {
                return true;
            }
        }
        false
    }

    /// etcd's `isOpPermitted`.
    pub fn check(
        &self,
        caller: &Caller,
        key: &[u8],
        range_end: &[u8],
        need: Need,
    ) -> Result<(), EtcdError> {
        if !self.enabled {
            return Ok(());
        }
        let (name, revision) = match caller {
            Caller::Internal => return Ok(()),
            Caller::Anonymous => return Err(EtcdError::UserEmpty),
            Caller::User { name, revision } => (name, *revision),
        };
        if revision == 0 {
            return Err(EtcdError::UserEmpty);
        }
        if revision < self.revision {
            return Err(EtcdError::AuthOldRevision);
        }
        let Some(user) = self.users.get(name) else {
            return Err(EtcdError::PermissionDenied);
        };
        if user.roles.iter().any(|r| r == ROOT) || self.covers(user, key, range_end, need) {
            Ok(())
        } else {
            Err(EtcdError::PermissionDenied)
        }
    }

    /// etcd's `IsAdminPermitted`.
    pub fn check_admin(&self, caller: &Caller) -> Result<(), EtcdError> {
        if !self.enabled {
            return Ok(());
        }
        let name = match caller {
            Caller::Internal => return Ok(()),
            Caller::Anonymous => return Err(EtcdError::UserEmpty),
            Caller::User { name, .. } if name.is_empty() => return Err(EtcdError::UserEmpty),
            Caller::User { name, .. } => name,
        };
        match self.users.get(name) {
            None => Err(EtcdError::UserNotFound),
            Some(u) if u.roles.iter().any(|r| r == ROOT) => Ok(()),
            Some(_) => Err(EtcdError::PermissionDenied),
        }
    }

    /// The permission checks etcd's auth applier runs on a write request
    /// before applying it (`lease_keys` lists a lease's keys).
    pub fn check_request<'a>(
        &self,
        caller: &Caller,
        req: &Request<'a>,
        lease_keys: &dyn Fn(i64) -> Vec<Vec<u8>>,
    ) -> Result<(), EtcdError> {
        if !self.enabled || *caller == Caller::Internal {
            return Ok(());
        }
        match req {
            Request::Put(p) => {
                self.check(caller, &p.key, &[], Need::Write)?;
                self.check_lease_puts(caller, p.lease, lease_keys)?;
                if p.prev_kv {
                    self.check(caller, &p.key, &[], Need::Read)?;
                }
                Ok(())
            }
            Request::Delete(d) => {
                self.check(caller, &d.key, &d.range_end, Need::Write)?;
                if d.prev_kv {
                    self.check(caller, &d.key, &d.range_end, Need::Read)?;
                }
                Ok(())
            }
            Request::Range(r) => self.check(caller, &r.key, &r.range_end, Need::Read),
            Request::Txn(t) => self.check_txn(caller, t),
            Request::LeaseRevoke(id) => self.check_lease_puts(caller, *id, lease_keys),
        }
    }

    /// etcd's `checkTxnAuth`, descending into nested transactions (etcd
    /// 3.5 skips them; a nested write must not escape the check).
    pub fn check_txn(&self, caller: &Caller, t: &mvcc::TxnRequest) -> Result<(), EtcdError> {
        for c in &t.compare {
            self.check(caller, &c.key, &c.range_end, Need::Read)?;
        }
        for op in t.success.iter().chain(&t.failure) {
            match op {
                mvcc::RequestOp::Range(r) => {
                    self.check(caller, &r.key, &r.range_end, Need::Read)?;
                }
                mvcc::RequestOp::Put(p) => self.check(caller, &p.key, &[], Need::Write)?,
                mvcc::RequestOp::DeleteRange(d) => {
                    if d.prev_kv {
                        self.check(caller, &d.key, &d.range_end, Need::Read)?;
                    }
                    self.check(caller, &d.key, &d.range_end, Need::Write)?;
                }
                mvcc::RequestOp::Txn(t) => self.check_txn(caller, t)?,
            }
        }
        Ok(())
    }

    /// etcd's `checkLeasePuts`: attaching to (or revoking) a lease needs
    /// write permission on every key already attached to it.
    fn check_lease_puts(
        &self,
        caller: &Caller,
        lease: i64,
        lease_keys: &dyn Fn(i64) -> Vec<Vec<u8>>,
    ) -> Result<(), EtcdError> {
        if lease == 0 || self.check_admin(caller).is_ok() {
            return Ok(());
        }
        for k in lease_keys(lease) {
            self.check(caller, &k, &[], Need::Write)?;
        }
        Ok(())
    }

    fn bump(&mut self) {
        self.revision += 1;
    }

    /// Apply `op` for `caller` at raft `index`; the state changes only
    /// when the answer is `Ok`.
    pub fn apply(
        &mut self,
        caller: &Caller,
        op: &AuthOp,
        index: u64,
    ) -> Result<(AuthAnswer, TokenEffect), EtcdError> {
        if op.needs_admin() {
            self.check_admin(caller)?;
        }
        let done = Ok((AuthAnswer::Done, TokenEffect::None));
        match op {
            AuthOp::Enable => {
                if self.enabled {
                    return done;
                }
                let root = self.users.get(ROOT).ok_or(EtcdError::RootUserNotExist)?;
                if !root.roles.iter().any(|r| r == ROOT) {
                    return Err(EtcdError::RootRoleNotExist);
                }
                self.enabled = true;
                done
            }
            AuthOp::Disable => {
                if !self.enabled {
                    return done;
                }
                self.enabled = false;
                self.bump();
                Ok((AuthAnswer::Done, TokenEffect::Clear))
            }
            AuthOp::Status => Ok((
                AuthAnswer::Status {
                    enabled: self.enabled,
                    revision: self.revision,
                },
                TokenEffect::None,
            )),
            AuthOp::Authenticate {
                name,
                prefix,
                checked_revision,
            } => {
                if !self.enabled {
                    return Err(EtcdError::AuthNotEnabled);
                }
                let user = self.users.get(name).ok_or(EtcdError::AuthFailed)?;
                if user.no_password {
                    return Err(EtcdError::AuthFailed);
                }
                // The password was checked against an older store (changed
                // or user re-created since): the proposer checks it again.
                if *checked_revision != self.revision {
                    return Err(EtcdError::AuthOldRevision);
                }
                let token = prefix.as_ref().map(|p| format!("{p}.{index}"));
                let effect = match &token {
                    Some(t) => TokenEffect::Assign {
                        token: t.clone(),
                        user: name.clone(),
                        index,
                    },
                    None => TokenEffect::None,
                };
                Ok((
                    AuthAnswer::Authenticated {
                        name: name.clone(),
                        revision: self.revision,
                        token,
                    },
                    effect,
                ))
            }
            AuthOp::UserAdd {
                name,
                password,
                no_password,
            } => {
                if name.is_empty() {
                    return Err(EtcdError::UserEmpty);
                }
                if self.users.contains_key(name) {
                    return Err(EtcdError::UserAlreadyExist);
                }
                self.users.insert(
                    name.clone(),
                    User {
                        password: password.clone(),
                        roles: Vec::new(),
                        no_password: *no_password,
                    },
                );
                self.bump();
                done
            }
            AuthOp::UserGet { name } => {
                if self.check_admin(caller).is_err() && !is_user(caller, name) {
                    // etcd answers the admin check's error.
                    self.check_admin(caller)?;
                }
                let u = self.users.get(name).ok_or(EtcdError::UserNotFound)?;
                Ok((AuthAnswer::Names(u.roles.clone()), TokenEffect::None))
            }
            AuthOp::UserList => Ok((
                AuthAnswer::Names(self.users.keys().cloned().collect()),
                TokenEffect::None,
            )),
            AuthOp::UserDelete { name } => {
                if self.enabled && name == ROOT {
                    return Err(EtcdError::InvalidAuthMgmt);
                }
                if self.users.remove(name).is_none() {
                    return Err(EtcdError::UserNotFound);
                }
                self.bump();
                Ok((AuthAnswer::Done, TokenEffect::Invalidate(name.clone())))
            }
            AuthOp::UserChangePassword { name, password } => {
                let u = self.users.get_mut(name).ok_or(EtcdError::UserNotFound)?;
                if !u.no_password {
                    u.password = password.clone();
                }
                self.bump();
                Ok((AuthAnswer::Done, TokenEffect::Invalidate(name.clone())))
            }
            AuthOp::UserGrantRole { user, role } => {
                if !self.users.contains_key(user) {
                    return Err(EtcdError::UserNotFound);
                }
                if role != ROOT && !self.roles.contains_key(role) {
                    return Err(EtcdError::RoleNotFound);
                }
                let u = self.users.get_mut(user).expect("checked above");
                match u.roles.binary_search(role) {
                    Ok(_) => return done,
                    Err(i) => u.roles.insert(i, role.clone()),
                }
                self.bump();
                done
            }
            AuthOp::UserRevokeRole { name, role } => {
                if self.enabled && name == ROOT && role == ROOT {
                    return Err(EtcdError::InvalidAuthMgmt);
                }
                let u = self.users.get_mut(name).ok_or(EtcdError::UserNotFound)?;
                let before = u.roles.len();
                u.roles.retain(|r| r != role);
                if u.roles.len() == before {
                    return Err(EtcdError::RoleNotGranted);
                }
                self.bump();
                done
            }
            AuthOp::RoleAdd { name } => {
                if name.is_empty() {
                    return Err(EtcdError::RoleEmpty);
                }
                if self.roles.contains_key(name) {
                    return Err(EtcdError::RoleAlreadyExist);
                }
                self.roles.insert(name.clone(), Role::default());
                self.bump();
                done
            }
            AuthOp::RoleGet { role } => {
                if self.check_admin(caller).is_err() && !has_role(self, caller, role) {
                    self.check_admin(caller)?;
                }
                let r = self.roles.get(role).ok_or(EtcdError::RoleNotFound)?;
                Ok((AuthAnswer::Perms(r.perms.clone()), TokenEffect::None))
            }
            AuthOp::RoleList => Ok((
                AuthAnswer::Names(self.roles.keys().cloned().collect()),
                TokenEffect::None,
            )),
            AuthOp::RoleDelete { role } => {
                if self.enabled && role == ROOT {
                    return Err(EtcdError::InvalidAuthMgmt);
                }
                if self.roles.remove(role).is_none() {
                    return Err(EtcdError::RoleNotFound);
                }
                for u in self.users.values_mut() {
                    u.roles.retain(|r| r != role);
                }
                self.bump();
                done
            }
            AuthOp::RoleGrantPermission { name, perm } => {
                let perm = perm.as_ref().ok_or(EtcdError::PermissionNotGiven)?;
                if !valid_permission_range(&perm.key, &perm.range_end) {
                    return Err(EtcdError::InvalidAuthMgmt);
                }
                let r = self.roles.get_mut(name).ok_or(EtcdError::RoleNotFound)?;
                match r
                    .perms
                    .iter_mut()
                    .find(|p| p.key == perm.key && p.range_end == perm.range_end)
                {
                    Some(p) => p.kind = perm.kind,
                    None => {
                        r.perms.push(perm.clone());
                        r.perms.sort_by(|a, b| a.key.cmp(&b.key));
                    }
                }
                self.bump();
                done
            }
            AuthOp::RoleRevokePermission {
                role,
                key,
                range_end,
            } => {
                let r = self.roles.get_mut(role).ok_or(EtcdError::RoleNotFound)?;
                let before = r.perms.len();
                r.perms
                    .retain(|p| !(p.key == *key && p.range_end == *range_end));
                if r.perms.len() == before {
                    return Err(EtcdError::PermissionNotGranted);
                }
                self.bump();
                done
            }
        }
    }
}

fn is_user(caller: &Caller, name: &str) -> bool {
    matches!(caller, Caller::User { name: n, .. } if n == name)
}

fn has_role(st: &AuthState, caller: &Caller, role: &str) -> bool {
    match caller {
        Caller::User { name, .. } => st
            .users
            .get(name)
            .is_some_and(|u| u.roles.iter().any(|r| r == role)),
        _ => false,
    }
}

/// etcd's `isValidPermissionRange`: the key is set and the range (when
/// one is given and is not "from key on") is not empty.
fn valid_permission_range(key: &[u8], range_end: &[u8]) -> bool {
    if key.is_empty() {
        return false;
    }
    if range_end.is_empty() || range_end == [0] {
        return true;
    }
    key < range_end
}

/// A request whose permissions the apply step checks.
#[derive(Debug, Clone, Copy)]
pub enum Request<'a> {
    /// Put.
    Put(&'a mvcc::PutRequest),
    /// DeleteRange.
    Delete(&'a mvcc::DeleteRangeRequest),
    /// Range (read-only txn parts are checked through `Txn`).
    Range(&'a mvcc::RangeRequest),
    /// Txn.
    Txn(&'a mvcc::TxnRequest),
    /// LeaseRevoke.
    LeaseRevoke(i64),
}

/// A simple token's user and deadline.
#[derive(Debug)]
struct TokenEntry {
    user: String,
    deadline: Instant,
}

/// This member's simple tokens (etcd's `tokenSimple`).
#[derive(Debug)]
pub struct SimpleTokens {
    ttl: Duration,
    tokens: HashMap<String, TokenEntry>,
    /// Entries up to here were applied before this process started (they
    /// are replayed from the log): their tokens stay lost, as etcd's do
    /// across a restart, whether or not a snapshot covered them.
    replayed_until: u64,
}

impl SimpleTokens {
    /// Tokens that expire after `ttl` without use.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            tokens: HashMap::new(),
            replayed_until: 0,
        }
    }

    /// Entries up to `index` are replays of an earlier run.
    pub fn set_replayed_until(&mut self, index: u64) {
        self.replayed_until = index;
    }

    /// Apply a token side effect.
    pub fn effect(&mut self, e: TokenEffect, now: Instant) {
        match e {
            TokenEffect::None => {}
            TokenEffect::Assign { index, .. } if index <= self.replayed_until => {}
            TokenEffect::Assign { token, user, .. } => {
                self.tokens.retain(|_, t| t.deadline > now);
                self.tokens.insert(
                    token,
                    TokenEntry {
                        user,
                        deadline: now + self.ttl,
                    },
                );
            }
            TokenEffect::Invalidate(user) => self.tokens.retain(|_, t| t.user != user),
            TokenEffect::Clear => self.tokens.clear(),
        }
    }

    /// The user of a live token; its deadline moves on (etcd resets the
    /// TTL on every use).
    pub fn lookup(&mut self, token: &str, now: Instant) -> Option<String> {
        let t = self.tokens.get_mut(token)?;
        if t.deadline <= now {
            self.tokens.remove(token);
            return None;
        }
        t.deadline = now + self.ttl;
        Some(t.user.clone())
    }
}

/// The raft index a simple token was assigned at (`<prefix>.<index>`).
pub fn simple_token_index(token: &str) -> Option<u64> {
    let (prefix, index) = token.split_once('.')?;
    if prefix.is_empty() || index.contains('.') {
        return None;
    }
    index.parse().ok()
}

/// A fresh simple token prefix: 16 random ASCII letters, as etcd's.
pub fn simple_token_prefix() -> String {
    use rand::Rng as _;
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut rng = rand::rng();
    (0..16)
        .map(|_| LETTERS[rng.random_range(0..LETTERS.len())] as char)
        .collect()
}

/// etcd's JWT token provider (`--auth-token jwt,sign-method=RS256,
/// pub-key=…,priv-key=…,ttl=5m`): tokens carry the user and the auth
/// revision they were issued at and are checked by signature alone, so
/// every member accepts every member's tokens and they survive restarts.
pub struct Jwt {
    alg: jsonwebtoken::Algorithm,
    encoding: Option<jsonwebtoken::EncodingKey>,
    decoding: jsonwebtoken::DecodingKey,
    ttl: Duration,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwt")
            .field("alg", &self.alg)
            .field("verify_only", &self.encoding.is_none())
            .field("ttl", &self.ttl)
            .finish()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: u64,
}

impl Jwt {
    /// From the options after `jwt,` (`key=value` pairs, etcd's names).
    pub fn from_options(opts: &str) -> Result<Self, String> {
        use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
        let mut map = HashMap::new();
        for pair in opts.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("invalid auth token option {pair:?}"))?;
            if map.insert(k, v).is_some() {
                return Err(format!("duplicate auth token option {k:?}"));
            }
        }
        let method = map
            .get("sign-method")
            .ok_or("jwt: sign-method is required")?;
        let alg: Algorithm = method
            .parse()
            .map_err(|_| format!("jwt: unknown sign-method {method:?}"))?;
        let ttl = match map.get("ttl") {
            Some(t) => humantime::parse_duration(t).map_err(|e| format!("jwt: ttl {t:?}: {e}"))?,
            None => Duration::from_secs(300),
        };
        let read = |k: &str| -> Result<Option<Vec<u8>>, String> {
            map.get(k)
                .map(|p| std::fs::read(p).map_err(|e| format!("jwt: {k} {p}: {e}")))
                .transpose()
        };
        let (private, public) = (read("priv-key")?, read("pub-key")?);
        let bad = |e: jsonwebtoken::errors::Error| format!("jwt: bad key: {e}");
        let (encoding, decoding) = match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let secret = private.ok_or("jwt: HMAC needs priv-key (the shared secret)")?;
                (
                    Some(EncodingKey::from_secret(&secret).map_err(&bad)?),
                    DecodingKey::from_secret(&secret).map_err(&bad)?,
                )
            }
            _ => {
                let public = public.ok_or("jwt: pub-key is required")?;
                type Parse<K> = fn(&[u8]) -> Result<K, jsonwebtoken::errors::Error>;
                let (enc, dec): (Parse<EncodingKey>, Parse<DecodingKey>) = match alg {
                    Algorithm::ES256 | Algorithm::ES384 => {
                        (EncodingKey::from_ec_pem, DecodingKey::from_ec_pem)
                    }
                    Algorithm::EdDSA => (EncodingKey::from_ed_pem, DecodingKey::from_ed_pem),
                    _ => (EncodingKey::from_rsa_pem, DecodingKey::from_rsa_pem),
                };
                let encoding = private.map(|k| enc(&k)).transpose().map_err(&bad)?;
                (encoding, dec(&public).map_err(&bad)?)
            }
        };
        Ok(Self {
            alg,
            encoding,
            decoding,
            ttl,
        })
    }

    /// A token for `user` at auth `revision`.
    pub fn sign(&self, user: &str, revision: u64) -> Result<String, String> {
        let key = self
            .encoding
            .as_ref()
            .ok_or("auth: JWT token provider is verify-only (no priv-key)")?;
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            + self.ttl;
        let claims = Claims {
            username: user.to_owned(),
            revision,
            exp: exp.as_secs(),
        };
        jsonwebtoken::encode(&jsonwebtoken::Header::new(self.alg), &claims, key)
            .map_err(|e| e.to_string())
    }

    /// The (user, revision) of a valid, unexpired token.
    pub fn verify(&self, token: &str) -> Option<(String, u64)> {
        let mut v = jsonwebtoken::Validation::new(self.alg);
        v.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .ok()
            .map(|d| (d.claims.username, d.claims.revision))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> Caller {
        Caller::User {
            name: name.into(),
            revision: u64::MAX,
        }
    }

    fn grant(st: &mut AuthState, role: &str, kind: PermKind, key: &str, end: &[u8]) {
        st.apply(
            &Caller::Internal,
            &AuthOp::RoleGrantPermission {
                name: role.into(),
                perm: Some(Perm {
                    kind,
                    key: key.as_bytes().to_vec(),
                    range_end: end.to_vec(),
                }),
            },
            1,
        )
        .unwrap();
    }

    /// root with the root role, user `u` with role `r`, auth enabled.
    fn setup() -> AuthState {
        let mut st = AuthState::default();
        let i = &Caller::Internal;
        for op in [
            AuthOp::UserAdd {
                name: ROOT.into(),
                password: vec![],
                no_password: false,
            },
            AuthOp::UserGrantRole {
                user: ROOT.into(),
                role: ROOT.into(),
            },
            AuthOp::UserAdd {
                name: "u".into(),
                password: vec![],
                no_password: false,
            },
            AuthOp::RoleAdd { name: "r".into() },
            AuthOp::UserGrantRole {
                user: "u".into(),
                role: "r".into(),
            },
            AuthOp::Enable,
        ] {
            st.apply(i, &op, 1).unwrap();
        }
        st
    }

    #[test]
    fn enable_needs_root_with_root_role() {
        let mut st = AuthState::default();
        let i = &Caller::Internal;
        assert_eq!(
            st.apply(i, &AuthOp::Enable, 1),
            Err(EtcdError::RootUserNotExist)
        );
        st.apply(
            i,
            &AuthOp::UserAdd {
                name: ROOT.into(),
                password: vec![],
                no_password: false,
            },
            1,
        )
        .unwrap();
        assert_eq!(
            st.apply(i, &AuthOp::Enable, 1),
            Err(EtcdError::RootRoleNotExist)
        );
        assert!(!st.enabled);
    }

    #[test]
    fn anonymous_and_old_revisions_are_refused() {
        let st = setup();
        assert_eq!(
            st.check(&Caller::Anonymous, b"a", b"", Need::Read),
            Err(EtcdError::UserEmpty)
        );
        let old = Caller::User {
            name: ROOT.into(),
            revision: st.revision - 1,
        };
        assert_eq!(
            st.check(&old, b"a", b"", Need::Read),
            Err(EtcdError::AuthOldRevision)
        );
        assert_eq!(st.check(&user(ROOT), b"a", b"\0", Need::Write), Ok(()));
        assert_eq!(
            st.check(&user("ghost"), b"a", b"", Need::Read),
            Err(EtcdError::PermissionDenied)
        );
    }

    #[test]
    fn ranges_must_be_covered_by_the_union_of_permissions() {
        let mut st = setup();
        grant(&mut st, "r", PermKind::Read, "a", b"c");
        grant(&mut st, "r", PermKind::ReadWrite, "c", b"e");
        grant(&mut st, "r", PermKind::Write, "k", b"");
        grant(&mut st, "r", PermKind::Read, "x", b"\0");
        let u = user("u");
        let ok = |k: &str, e: &[u8], n| st.check(&u, k.as_bytes(), e, n).is_ok();
        assert!(ok("a", b"", Need::Read));
        assert!(ok("b", b"e", Need::Read), "two adjacent grants cover b..e");
        assert!(!ok("b", b"f", Need::Read));
        assert!(!ok("a", b"c", Need::Write));
        assert!(ok("c", b"e", Need::Write));
        assert!(ok("k", b"", Need::Write));
        assert!(!ok("k", b"", Need::Read));
        assert!(!ok("k", b"l", Need::Write), "a point grant is not a range");
        assert!(ok("x", b"\0", Need::Read));
        assert!(ok("zzz", b"", Need::Read));
        assert!(!ok("w", b"\0", Need::Read));
        // Revoking a permission takes it away.
        st.apply(
            &Caller::Internal,
            &AuthOp::RoleRevokePermission {
                role: "r".into(),
                key: b"x".to_vec(),
                range_end: b"\0".to_vec(),
            },
            1,
        )
        .unwrap();
        let u = user("u");
        assert!(st.check(&u, b"zzz", b"", Need::Read).is_err());
    }

    #[test]
    fn nested_txn_writes_are_checked() {
        let mut st = setup();
        grant(&mut st, "r", PermKind::ReadWrite, "a", b"b");
        let mut inner = mvcc::TxnRequest::default();
        inner
            .success
            .push(mvcc::RequestOp::Put(mvcc::PutRequest::new("z", "v")));
        let mut outer = mvcc::TxnRequest::default();
        outer
            .success
            .push(mvcc::RequestOp::Put(mvcc::PutRequest::new("a1", "v")));
        assert_eq!(st.check_txn(&user("u"), &outer), Ok(()));
        outer.failure.push(mvcc::RequestOp::Txn(inner));
        assert_eq!(
            st.check_txn(&user("u"), &outer),
            Err(EtcdError::PermissionDenied)
        );
    }

    #[test]
    fn admin_ops_and_root_protection() {
        let mut st = setup();
        let u = user("u");
        assert_eq!(
            st.apply(&u, &AuthOp::RoleAdd { name: "x".into() }, 1),
            Err(EtcdError::PermissionDenied)
        );
        assert_eq!(
            st.apply(&Caller::Anonymous, &AuthOp::UserList, 1),
            Err(EtcdError::UserEmpty)
        );
        // A user may read itself and its roles, not others'.
        assert_eq!(
            st.apply(&u, &AuthOp::UserGet { name: "u".into() }, 1)
                .map(|a| a.0),
            Ok(AuthAnswer::Names(vec!["r".into()]))
        );
        assert_eq!(
            st.apply(&u, &AuthOp::UserGet { name: ROOT.into() }, 1),
            Err(EtcdError::PermissionDenied)
        );
        assert!(
            st.apply(&u, &AuthOp::RoleGet { role: "r".into() }, 1)
                .is_ok()
        );
        let r = user(ROOT);
        assert_eq!(
            st.apply(&r, &AuthOp::UserDelete { name: ROOT.into() }, 1),
            Err(EtcdError::InvalidAuthMgmt)
        );
        assert_eq!(
            st.apply(
                &r,
                &AuthOp::UserRevokeRole {
                    name: ROOT.into(),
                    role: ROOT.into()
                },
                1
            ),
            Err(EtcdError::InvalidAuthMgmt)
        );
        assert_eq!(
            st.apply(&r, &AuthOp::RoleDelete { role: ROOT.into() }, 1),
            Err(EtcdError::InvalidAuthMgmt)
        );
        // Deleting a role takes it from its users.
        st.apply(&r, &AuthOp::RoleDelete { role: "r".into() }, 1)
            .unwrap();
        assert!(st.users["u"].roles.is_empty());
    }

    #[test]
    fn authenticate_assigns_a_token_and_changes_invalidate_it() {
        let mut st = setup();
        let rev = st.revision;
        let (answer, effect) = st
            .apply(
                &Caller::Anonymous,
                &AuthOp::Authenticate {
                    name: "u".into(),
                    prefix: Some("abc".into()),
                    checked_revision: rev,
                },
                42,
            )
            .unwrap();
        assert_eq!(
            answer,
            AuthAnswer::Authenticated {
                name: "u".into(),
                revision: rev,
                token: Some("abc.42".into())
            }
        );
        let now = Instant::now();
        let mut tokens = SimpleTokens::new(Duration::from_secs(300));
        tokens.effect(effect, now);
        assert_eq!(tokens.lookup("abc.42", now), Some("u".into()));
        // A replay of the same entry after a restart assigns nothing.
        let mut restarted = SimpleTokens::new(Duration::from_secs(300));
        restarted.set_replayed_until(42);
        restarted.effect(
            TokenEffect::Assign {
                token: "abc.42".into(),
                user: "u".into(),
                index: 42,
            },
            now,
        );
        assert_eq!(restarted.lookup("abc.42", now), None);
        assert_eq!(simple_token_index("abc.42"), Some(42));
        assert_eq!(simple_token_index("abc"), None);
        // Expiry without use.
        assert_eq!(
            tokens.lookup("abc.42", now + Duration::from_secs(301)),
            None
        );
        // A stale password check is refused.
        assert_eq!(
            st.apply(
                &Caller::Anonymous,
                &AuthOp::Authenticate {
                    name: "u".into(),
                    prefix: None,
                    checked_revision: rev - 1,
                },
                43,
            ),
            Err(EtcdError::AuthOldRevision)
        );
        let (_, e) = st
            .apply(&user(ROOT), &AuthOp::UserDelete { name: "u".into() }, 44)
            .unwrap();
        assert_eq!(e, TokenEffect::Invalidate("u".into()));
    }
}
