//! The auth gate: who a request comes from (simple or JWT tokens,
//! client certificates), passwords (bcrypt, checked and hashed here: the
//! log never holds one), Authenticate, and the auth store requests that
//! go through raft. The auth store itself is `auth.rs`.

use std::sync::Arc;
use std::time::Instant;

use ferrocd_net::{AuthInfo, AuthReply, AuthRequest, Credentials, EtcdError};

use crate::auth::{AuthAnswer, AuthOp, Caller, Jwt, Perm, PermKind};
use crate::config::Config;
use crate::leader::{LeaderLink, raft_err};
use crate::proposer::{Proposer, unexpected};
use crate::raft::{Applied, Op, SmShared};
use crate::read_index::ReadIndex;

/// `--auth-token jwt,…`'s signer, `None` for simple tokens (read before
/// the data dir is touched: a bad option stops the start).
pub(crate) fn jwt_from_config(cfg: &Config) -> anyhow::Result<Option<Jwt>> {
    match cfg.auth_token.split_once(',') {
        Some(("jwt", opts)) => Ok(Some(
            Jwt::from_options(opts).map_err(|e| anyhow::anyhow!(e))?,
        )),
        None if cfg.auth_token == "jwt" => {
            anyhow::bail!("jwt: sign-method is required (--auth-token jwt,sign-method=…)")
        }
        _ => Ok(None),
    }
}

/// This member's auth gate.
pub(crate) struct AuthGate {
    sm: Arc<SmShared>,
    link: LeaderLink,
    proposer: Arc<Proposer>,
    reads: Arc<ReadIndex>,
    /// `--auth-token jwt,…`: signed tokens instead of simple ones.
    jwt: Option<Jwt>,
    /// `--bcrypt-cost`.
    bcrypt_cost: u32,
    /// `--client-cert-auth`: a verified client certificate's common name
    /// names the user when no token is given.
    client_cert_auth: bool,
}

impl AuthGate {
    /// The gate `cfg` asks for; `jwt` from [`jwt_from_config`].
    pub(crate) fn new(
        cfg: &Config,
        jwt: Option<Jwt>,
        sm: Arc<SmShared>,
        link: LeaderLink,
        proposer: Arc<Proposer>,
        reads: Arc<ReadIndex>,
    ) -> Self {
        AuthGate {
            sm,
            link,
            proposer,
            reads,
            jwt,
            bcrypt_cost: cfg.bcrypt_cost,
            client_cert_auth: cfg.client_tls.client_cert_auth,
        }
    }

    /// etcd's `doSerialize` tail: a read served for a user whose
    /// credentials predate an auth change that landed meanwhile fails
    /// with `revision of auth store is old` (the client re-authenticates).
    pub(crate) fn still_current(&self, caller: &Caller) -> Result<(), EtcdError> {
        // Only a user has credentials that can go stale (auth off: every
        // caller is anonymous, and the store is not even looked at).
        let Caller::User { revision, .. } = caller else {
            return Ok(());
        };
        let auth = self.sm.auth.load();
        if auth.enabled && *revision != 0 && *revision != auth.revision {
            return Err(EtcdError::AuthOldRevision);
        }
        Ok(())
    }

    /// The user of a simple token, once this member has applied the
    /// entry that assigned it (a token is `<prefix>.<raft index>`; a
    /// client may ask a follower that has not applied it yet).
    async fn simple_token_user(&self, token: &str) -> Option<String> {
        let index = crate::auth::simple_token_index(token)?;
        let applied = self.sm.applied_log_id().map_or(0, |l| l.index());
        if index > applied
            && !self
                .sm
                .applied_index
                .wait(index, self.link.request_timeout())
                .await
        {
            return None;
        }
        self.sm
            .tokens
            .lock()
            .expect("tokens lock")
            .lookup(token, Instant::now())
    }

    /// A password's bcrypt hash (on a blocking thread: it is slow on
    /// purpose), or the client's own hash (base64, as etcd takes it).
    async fn hash_password(&self, password: String, hashed: String) -> Result<Vec<u8>, EtcdError> {
        if !hashed.is_empty() {
            use base64::Engine as _;
            return base64::engine::general_purpose::STANDARD
                .decode(hashed)
                .map_err(|_| EtcdError::Unknown("auth: invalid hashed password".into()));
        }
        let cost = self.bcrypt_cost;
        tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
            .await
            .map_err(raft_err)?
            .map(String::into_bytes)
            .map_err(raft_err)
    }

    /// etcd's Authenticate: check the password against the store as of a
    /// linearizable read, then replicate the token assignment; retried
    /// when the auth store changed in between.
    async fn authenticate(
        &self,
        name: String,
        password: String,
    ) -> Result<(AuthReply, i64), EtcdError> {
        for _ in 0..5 {
            self.reads.linearize().await?;
            let st = self.sm.auth.load_full();
            if !st.enabled {
                return Err(EtcdError::AuthNotEnabled);
            }
            let hash = match st.users.get(&name) {
                Some(u) if !u.no_password => String::from_utf8_lossy(&u.password).into_owned(),
                _ => return Err(EtcdError::AuthFailed),
            };
            let pw = password.clone();
            let user = name.clone();
            let ok = tokio::task::spawn_blocking(move || {
                bcrypt::verify(pw, &hash).unwrap_or_else(|e| {
                    // A stored hash bcrypt cannot read (e.g. restored from
                    // a foreign file): no password matches it.
                    tracing::warn!(%user, error = %e, "unreadable password hash");
                    false
                })
            })
            .await
            .map_err(raft_err)?;
            if !ok {
                tracing::info!(user = %name, "invalid password");
                return Err(EtcdError::AuthFailed);
            }
            let prefix = self.jwt.is_none().then(crate::auth::simple_token_prefix);
            let op = AuthOp::Authenticate {
                name: name.clone(),
                prefix,
                checked_revision: st.revision,
            };
            match self.proposer.propose(Op::Auth(op), Caller::Anonymous).await {
                Ok(Applied::Auth(
                    AuthAnswer::Authenticated {
                        name,
                        revision,
                        token,
                    },
                    rev,
                )) => {
                    let token = match (&self.jwt, token) {
                        (Some(jwt), _) => jwt.sign(&name, revision).map_err(EtcdError::Unknown)?,
                        (None, Some(t)) => t,
                        (None, None) => {
                            return Err(EtcdError::Unknown("internal: no token assigned".into()));
                        }
                    };
                    return Ok((AuthReply::Token(token), rev));
                }
                Ok(a) => return Err(unexpected("authenticate", a)),
                Err(EtcdError::AuthOldRevision) => {
                    tracing::info!(user = %name, "auth store changed while checking a password; retrying");
                }
                Err(e) => return Err(e),
            }
        }
        Err(EtcdError::AuthOldRevision)
    }

    /// etcd's token check: the user a request comes from (`None` while
    /// auth is off, or for a request with neither token nor client
    /// certificate name).
    pub(crate) async fn authorize(&self, cred: Credentials) -> Result<Option<AuthInfo>, EtcdError> {
        let (enabled, revision) = {
            let auth = self.sm.auth.load();
            (auth.enabled, auth.revision)
        };
        if !enabled {
            return Ok(None);
        }
        if let Some(token) = cred.token {
            let user = match &self.jwt {
                Some(jwt) => jwt
                    .verify(&token)
                    .map(|(user, revision)| AuthInfo { user, revision }),
                None => self
                    .simple_token_user(&token)
                    .await
                    .map(|user| AuthInfo { user, revision }),
            };
            return match user {
                Some(u) => Ok(Some(u)),
                None => {
                    tracing::warn!("invalid auth token");
                    Err(EtcdError::InvalidAuthToken)
                }
            };
        }
        if self.client_cert_auth
            && let Some(user) = cred.common_name
        {
            return Ok(Some(AuthInfo { user, revision }));
        }
        Ok(None)
    }

    /// An auth request: Authenticate checks the password here, the rest
    /// are replicated (passwords hashed here first: the log never holds
    /// one).
    pub(crate) async fn auth(
        &self,
        who: Option<AuthInfo>,
        req: AuthRequest,
    ) -> Result<(AuthReply, i64), EtcdError> {
        let op = match req {
            AuthRequest::Authenticate { name, password } => {
                return self.authenticate(name, password).await;
            }
            AuthRequest::Enable => AuthOp::Enable,
            AuthRequest::Disable => AuthOp::Disable,
            AuthRequest::Status => AuthOp::Status,
            AuthRequest::UserAdd {
                name,
                password,
                hashed_password,
                no_password,
            } => {
                let password = if no_password {
                    Vec::new()
                } else {
                    self.hash_password(password, hashed_password).await?
                };
                AuthOp::UserAdd {
                    name,
                    password,
                    no_password,
                }
            }
            AuthRequest::UserGet { name } => AuthOp::UserGet { name },
            AuthRequest::UserList => AuthOp::UserList,
            AuthRequest::UserDelete { name } => AuthOp::UserDelete { name },
            AuthRequest::UserChangePassword {
                name,
                password,
                hashed_password,
            } => {
                let password = self.hash_password(password, hashed_password).await?;
                AuthOp::UserChangePassword { name, password }
            }
            AuthRequest::UserGrantRole { user, role } => AuthOp::UserGrantRole { user, role },
            AuthRequest::UserRevokeRole { name, role } => AuthOp::UserRevokeRole { name, role },
            AuthRequest::RoleAdd { name } => AuthOp::RoleAdd { name },
            AuthRequest::RoleGet { role } => AuthOp::RoleGet { role },
            AuthRequest::RoleList => AuthOp::RoleList,
            AuthRequest::RoleDelete { role } => AuthOp::RoleDelete { role },
            AuthRequest::RoleGrantPermission { name, perm } => {
                let perm = match perm {
                    None => None,
                    Some(p) => Some(Perm {
                        kind: PermKind::from_i32(p.perm_type).ok_or(EtcdError::InvalidAuthMgmt)?,
                        key: p.key,
                        range_end: p.range_end,
                    }),
                };
                AuthOp::RoleGrantPermission { name, perm }
            }
            AuthRequest::RoleRevokePermission {
                role,
                key,
                range_end,
            } => AuthOp::RoleRevokePermission {
                role,
                key,
                range_end,
            },
        };
        let what = op.name();
        match self
            .proposer
            .propose(Op::Auth(op), Caller::from_info(who))
            .await?
        {
            Applied::Auth(answer, rev) => {
                let reply = match answer {
                    AuthAnswer::Done | AuthAnswer::Authenticated { .. } => AuthReply::Done,
                    AuthAnswer::Status { enabled, revision } => {
                        AuthReply::Status { enabled, revision }
                    }
                    AuthAnswer::Names(n) => AuthReply::Names(n),
                    AuthAnswer::Perms(p) => {
                        AuthReply::Perms(p.into_iter().map(permission).collect())
                    }
                };
                tracing::info!(op = what, "auth store request applied");
                Ok((reply, rev))
            }
            a => Err(unexpected(what, a)),
        }
    }
}

fn permission(p: Perm) -> ferrocd_net::pb::authpb::Permission {
    ferrocd_net::pb::authpb::Permission {
        perm_type: p.kind.to_i32(),
        key: p.key,
        range_end: p.range_end,
    }
}
