//! etcd's Auth service (`/etcdserverpb.Auth/*`) and the caller identity
//! every other service checks permissions against.
//!
//! A request names its caller with a token in the `token` metadata (gRPC,
//! the binary protocol's TOKEN frame) or `authorization` (the JSON
//! gateway's `Authorization` header), as etcd reads them; with
//! `--client-cert-auth` a TLS client certificate's common name stands in
//! when no token is given. [`Authorizer::authorize`] turns that into an
//! [`AuthInfo`] (or `None` while auth is disabled, or for an anonymous
//! caller), which the shims hand to the node with the request: reads are
//! checked before they are served, writes where they are applied (the
//! user travels in the raft entry, as etcd's request header carries it).

use std::future::Future;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::convert::header;
use crate::identity::ClientIdentity;
use crate::kv::ServerInfo;
use crate::pb::authpb;
use crate::pb::etcdserverpb as pb;
use crate::status::EtcdError;

/// An authenticated caller: the user and the auth store revision its
/// credentials were checked at (etcd's `AuthInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct AuthInfo {
    /// User name.
    pub user: String,
    /// Auth store revision the credentials were checked at.
    pub revision: u64,
}

/// What a request carries to name its caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// `token` (or `authorization`) metadata.
    pub token: Option<String>,
    /// A verified client certificate's common name.
    pub common_name: Option<String>,
}

impl Credentials {
    /// The credentials of a tonic request (gRPC, gateway and binary
    /// protocol requests all arrive as one). A request relayed by the
    /// JSON gateway carries no certificate identity (etcd ignores the
    /// gateway's own certificate as well).
    pub fn of<T>(req: &Request<T>) -> Self {
        let md = req.metadata();
        let token = md
            .get("token")
            .or_else(|| md.get("authorization"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let common_name = ClientIdentity::of(req).map(|c| c.common_name.clone());
        Self { token, common_name }
    }
}

/// Who is calling: every service trait of a node requires it.
pub trait Authorizer: Send + Sync + 'static {
    /// The caller named by `cred`: `Ok(None)` while auth is disabled or
    /// when no credentials are given (the request is then checked as
    /// anonymous: etcd's `user name is empty`), `Err` for a token that is
    /// not valid (`invalid auth token`).
    fn authorize(
        &self,
        cred: Credentials,
    ) -> impl Future<Output = Result<Option<AuthInfo>, EtcdError>> + Send;
}

/// A request of the Auth service, passwords still in clear (the node
/// hashes them before anything is replicated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRequest {
    /// AuthEnable.
    Enable,
    /// AuthDisable.
    Disable,
    /// AuthStatus.
    Status,
    /// Authenticate.
    Authenticate {
        /// User.
        name: String,
        /// Password.
        password: String,
    },
    /// UserAdd.
    UserAdd {
        /// User.
        name: String,
        /// Password (ignored with `no_password`).
        password: String,
        /// A bcrypt hash the client computed, used instead of `password`.
        hashed_password: String,
        /// The user cannot authenticate with a password (TLS CN only).
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
    /// UserChangePassword.
    UserChangePassword {
        /// User.
        name: String,
        /// New password.
        password: String,
        /// A bcrypt hash the client computed, used instead of `password`.
        hashed_password: String,
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
        /// The permission (`None`: etcd's `permission not given`).
        perm: Option<authpb::Permission>,
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

/// What an Auth request answers besides the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthReply {
    /// Nothing more.
    Done,
    /// Authenticate: the token.
    Token(String),
    /// AuthStatus.
    Status {
        /// Enabled.
        enabled: bool,
        /// Auth store revision.
        revision: u64,
    },
    /// UserGet (roles) or UserList/RoleList (names).
    Names(Vec<String>),
    /// RoleGet.
    Perms(Vec<authpb::Permission>),
}

/// The Auth operations a node provides.
pub trait AuthService: Authorizer {
    /// Header fields.
    fn info(&self) -> ServerInfo;
    /// Run one Auth request for `who`; returns the answer and the header
    /// revision.
    fn auth(
        &self,
        who: Option<AuthInfo>,
        req: AuthRequest,
    ) -> impl Future<Output = Result<(AuthReply, i64), EtcdError>> + Send;
}

/// The gRPC Auth service over an [`AuthService`].
#[derive(Debug)]
pub struct AuthShim<S> {
    node: Arc<S>,
}

impl<S> Clone for AuthShim<S> {
    fn clone(&self) -> Self {
        Self {
            node: self.node.clone(),
        }
    }
}

impl<S: AuthService> AuthShim<S> {
    /// Serve `node`.
    pub fn new(node: Arc<S>) -> Self {
        Self { node }
    }

    /// The tonic service.
    pub fn into_server(self) -> pb::auth_server::AuthServer<Self> {
        pb::auth_server::AuthServer::new(self)
    }

    async fn call(&self, cred: Credentials, r: AuthRequest) -> Result<(AuthReply, i64), Status> {
        // Authenticate takes no token: etcd checks only the password.
        let who = if matches!(r, AuthRequest::Authenticate { .. }) {
            None
        } else {
            self.node.authorize(cred).await?
        };
        Ok(self.node.auth(who, r).await?)
    }

    fn header(&self, rev: i64) -> Option<pb::ResponseHeader> {
        header(&self.node.info(), rev)
    }
}

fn names(reply: AuthReply) -> Vec<String> {
    match reply {
        AuthReply::Names(n) => n,
        _ => Vec::new(),
    }
}

#[tonic::async_trait]
impl<S: AuthService> pb::auth_server::Auth for AuthShim<S> {
    async fn auth_enable(
        &self,
        req: Request<pb::AuthEnableRequest>,
    ) -> Result<Response<pb::AuthEnableResponse>, Status> {
        let (_, rev) = self
            .call(Credentials::of(&req), AuthRequest::Enable)
            .await?;
        Ok(Response::new(pb::AuthEnableResponse {
            header: self.header(rev),
        }))
    }

    async fn auth_disable(
        &self,
        req: Request<pb::AuthDisableRequest>,
    ) -> Result<Response<pb::AuthDisableResponse>, Status> {
        let (_, rev) = self
            .call(Credentials::of(&req), AuthRequest::Disable)
            .await?;
        Ok(Response::new(pb::AuthDisableResponse {
            header: self.header(rev),
        }))
    }

    async fn auth_status(
        &self,
        req: Request<pb::AuthStatusRequest>,
    ) -> Result<Response<pb::AuthStatusResponse>, Status> {
        let (reply, rev) = self
            .call(Credentials::of(&req), AuthRequest::Status)
            .await?;
        let (enabled, auth_revision) = match reply {
            AuthReply::Status { enabled, revision } => (enabled, revision),
            _ => (false, 0),
        };
        Ok(Response::new(pb::AuthStatusResponse {
            header: self.header(rev),
            enabled,
            auth_revision,
        }))
    }

    async fn authenticate(
        &self,
        req: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        let cred = Credentials::of(&req);
        let r = req.into_inner();
        let (reply, rev) = self
            .call(
                cred,
                AuthRequest::Authenticate {
                    name: r.name,
                    password: r.password,
                },
            )
            .await?;
        let token = match reply {
            AuthReply::Token(t) => t,
            _ => String::new(),
        };
        Ok(Response::new(pb::AuthenticateResponse {
            header: self.header(rev),
            token,
        }))
    }

    async fn user_add(
        &self,
        req: Request<pb::AuthUserAddRequest>,
    ) -> Result<Response<pb::AuthUserAddResponse>, Status> {
        let cred = Credentials::of(&req);
        let r = req.into_inner();
        let (_, rev) = self
            .call(
                cred,
                AuthRequest::UserAdd {
                    name: r.name,
                    password: r.password,
                    hashed_password: r.hashed_password,
                    no_password: r.options.is_some_and(|o| o.no_password),
                },
            )
            .await?;
        Ok(Response::new(pb::AuthUserAddResponse {
            header: self.header(rev),
        }))
    }

    async fn user_get(
        &self,
        req: Request<pb::AuthUserGetRequest>,
    ) -> Result<Response<pb::AuthUserGetResponse>, Status> {
        let cred = Credentials::of(&req);
        let name = req.into_inner().name;
        let (reply, rev) = self.call(cred, AuthRequest::UserGet { name }).await?;
        Ok(Response::new(pb::AuthUserGetResponse {
            header: self.header(rev),
            roles: names(reply),
        }))
    }

    async fn user_list(
        &self,
        req: Request<pb::AuthUserListRequest>,
    ) -> Result<Response<pb::AuthUserListResponse>, Status> {
        let (reply, rev) = self
            .call(Credentials::of(&req), AuthRequest::UserList)
            .await?;
        Ok(Response::new(pb::AuthUserListResponse {
            header: self.header(rev),
            users: names(reply),
        }))
    }

    async fn user_delete(
        &self,
        req: Request<pb::AuthUserDeleteRequest>,
    ) -> Result<Response<pb::AuthUserDeleteResponse>, Status> {
        let cred = Credentials::of(&req);
        let name = req.into_inner().name;
        let (_, rev) = self.call(cred, AuthRequest::UserDelete { name }).await?;
        Ok(Response::new(pb::AuthUserDeleteResponse {
            header: self.header(rev),
        }))
    }

    async fn user_change_password(
        &self,
        req: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Result<Response<pb::AuthUserChangePasswordResponse>, Status> {
        let cred = Credentials::of(&req);
        let r = req.into_inner();
        let (_, rev) = self
            .call(
                cred,
                AuthRequest::UserChangePassword {
                    name: r.name,
                    password: r.password,
                    hashed_password: r.hashed_password,
                },
            )
            .await?;
        Ok(Response::new(pb::AuthUserChangePasswordResponse {
            header: self.header(rev),
        }))
    }

    async fn user_grant_role(
        &self,
        req: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Result<Response<pb::AuthUserGrantRoleResponse>, Status> {
        let cred = Credentials::of(&req);
        let r = req.into_inner();
        let (_, rev) = self
            .call(
                cred,
                AuthRequest::UserGrantRole {
                    user: r.user,
                    role: r.role,
                },
            )
            .await?;
        Ok(Response::new(pb::AuthUserGrantRoleResponse {
            header: self.header(rev),
        }))
    }

    async fn user_revoke_role(
        &self,
        req: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Result<Response<pb::AuthUserRevokeRoleResponse>, Status> {
        let cred = Credentials::of(&req);
        let r = req.into_inner();
        let (_, rev) = self
            .call(
                cred,
                AuthRequest::UserRevokeRole {
                    name: r.name,
                    role: r.role,
                },
            )
            .await?;
        Ok(Response::new(pb::AuthUserRevokeRoleResponse {
            header: self.header(rev),
        }))
    }

    async fn role_add(
        &self,
        req: Request<pb::AuthRoleAddRequest>,
    ) -> Result<Response<pb::AuthRoleAddResponse>, Status> {
        let cred = Credentials::of(&req);
        let name = req.into_inner().name;
        let (_, rev) = self.call(cred, AuthRequest::RoleAdd { name }).await?;
        Ok(Response::new(pb::AuthRoleAddResponse {
            header: self.header(rev),
        }))
    }

    async fn role_get(
        &self,
        req: Request<pb::AuthRoleGetRequest>,
    ) -> Result<Response<pb::AuthRoleGetResponse>, Status> {
        let cred = Credentials::of(&req);
        let role = req.into_inner().role;
        let (reply, rev) = self.call(cred, AuthRequest::RoleGet { role }).await?;
        let perm = match reply {
            AuthReply::Perms(p) => p,
            _ => Vec::new(),
        };
        Ok(Response::new(pb::AuthRoleGetResponse {
            header: self.header(rev),
            perm,
        }))
    }

    async fn role_list(
        &self,
        req: Request<pb::AuthRoleListRequest>,
    ) -> Result<Response<pb::AuthRoleListResponse>, Status> {
        let (reply, rev) = self
            .call(Credentials::of(&req), AuthRequest::RoleList)
            .await?;
        Ok(Response::new(pb::AuthRoleListResponse {
            header: self.header(rev),
            roles: names(reply),
        }))
    }

    async fn role_delete(
        &self,
        req: Request<pb::AuthRoleDeleteRequest>,
    ) -> Result<Response<pb::AuthRoleDeleteResponse>, Status> {
        let cred = Credentials::of(&req);
        let role = req.into_inner().role;
        let (_, rev) = self.call(cred, AuthRequest::RoleDelete { role }).await?;
        Ok(Response::new(pb::AuthRoleDeleteResponse {
            header: self.header(rev),
        }))
    }

    async fn role_grant_permission(
        &self,
        req: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<pb::AuthRoleGrantPermissionResponse>, Status> {
        let cred = Credentials::of(&req);
        let r = req.into_inner();
        let (_, rev) = self
            .call(
                cred,
                AuthRequest::RoleGrantPermission {
                    name: r.name,
                    perm: r.perm,
                },
            )
            .await?;
        Ok(Response::new(pb::AuthRoleGrantPermissionResponse {
            header: self.header(rev),
        }))
    }

    async fn role_revoke_permission(
        &self,
        req: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<pb::AuthRoleRevokePermissionResponse>, Status> {
        let cred = Credentials::of(&req);
        let r = req.into_inner();
        let (_, rev) = self
            .call(
                cred,
                AuthRequest::RoleRevokePermission {
                    role: r.role,
                    key: r.key,
                    range_end: r.range_end,
                },
            )
            .await?;
        Ok(Response::new(pb::AuthRoleRevokePermissionResponse {
            header: self.header(rev),
        }))
    }
}
