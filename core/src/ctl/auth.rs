//! `auth enable|disable|status`, `user …` and `role …`, all through the
//! client's generic `call::<M>()` (the client has no auth helpers).

use std::fmt::Write as _;

use clap::{ArgAction, Args, Subcommand};
use ferrocd_net::fast::methods as m;
use ferrocd_net::pb::authpb;
use ferrocd_net::pb::etcdserverpb as pb;

use crate::error::{Fail, R};
use crate::print::{self, Format, Obj};
use crate::{Ctx, out, read_password};

/// `auth …`.
#[derive(Debug, Subcommand)]
pub enum AuthCmd {
    /// Enables authentication
    Enable,
    /// Disables authentication
    Disable,
    /// Returns authentication status
    Status,
}

/// `user …`.
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Adds a new user
    Add(UserAddArgs),
    /// Deletes a user
    Delete(Pos),
    /// Gets detailed information of a user
    Get(UserGetArgs),
    /// Lists all users
    List,
    /// Changes password of user
    Passwd(PasswdArgs),
    /// Grants a role to a user
    #[command(name = "grant-role")]
    GrantRole(Pos),
    /// Revokes a role from a user
    #[command(name = "revoke-role")]
    RevokeRole(Pos),
}

/// `role …`.
#[derive(Debug, Subcommand)]
pub enum RoleCmd {
    /// Adds a new role
    Add(Pos),
    /// Deletes a role
    Delete(Pos),
    /// Gets detailed information of a role
    Get(Pos),
    /// Lists all roles
    List,
    /// Grants a key to a role
    #[command(name = "grant-permission")]
    GrantPermission(PermArgs),
    /// Revokes a key from a role
    #[command(name = "revoke-permission")]
    RevokePermission(PermArgs),
}

/// Positional arguments.
#[derive(Debug, Args)]
pub struct Pos {
    /// arguments
    pub args: Vec<String>,
}

/// `user add`.
#[derive(Debug, Args)]
pub struct UserAddArgs {
    /// Read password from stdin instead of interactive terminal
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true")]
    pub interactive: bool,
    /// Supply password from the command line flag
    #[arg(long = "new-user-password", default_value = "")]
    pub new_user_password: String,
    /// Create a user without password (CN based auth only)
    #[arg(long = "no-password")]
    pub no_password: bool,
    /// <user name or user:password>
    pub args: Vec<String>,
}

/// `user get`.
#[derive(Debug, Args)]
pub struct UserGetArgs {
    /// Show permissions of roles granted to the user
    #[arg(long)]
    pub detail: bool,
    /// <user name>
    pub args: Vec<String>,
}

/// `user passwd`.
#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// If true, read password from stdin instead of interactive terminal
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true")]
    pub interactive: bool,
    /// <user name>
    pub args: Vec<String>,
}

/// `role grant-permission|revoke-permission`.
#[derive(Debug, Args)]
pub struct PermArgs {
    /// grant a prefix permission
    #[arg(long)]
    pub prefix: bool,
    /// grant a permission of keys that are greater than or equal to the given key using byte compare
    #[arg(long = "from-key")]
    pub from_key: bool,
    /// arguments
    pub args: Vec<String>,
}

fn header_only(ctx: &Ctx, h: Option<&pb::ResponseHeader>, simple: String) -> R<String> {
    Ok(match ctx.fmt {
        Format::Simple => simple,
        Format::Json => Obj::new().raw_opt("header", print::header_json(h)).end() + "\n",
        Format::Fields => {
            let mut s = String::new();
            print::header_lines(&mut s, h);
            s
        }
        Format::Table => return Err(ctx.fmt.unsupported()),
    })
}

/// `auth …`.
pub async fn auth(ctx: &Ctx, cmd: AuthCmd) -> R {
    let c = ctx.client().await?;
    match cmd {
        AuthCmd::Enable => {
            c.call::<m::AuthEnable>(pb::AuthEnableRequest {}).await?;
            out("Authentication Enabled\n");
        }
        AuthCmd::Disable => {
            c.call::<m::AuthDisable>(pb::AuthDisableRequest {}).await?;
            out("Authentication Disabled\n");
        }
        AuthCmd::Status => {
            let r = c.call::<m::AuthStatus>(pb::AuthStatusRequest {}).await?;
            let s = match ctx.fmt {
                Format::Simple => format!(
                    "Authentication Status: {}\nAuthRevision: {}\n",
                    r.enabled, r.auth_revision
                ),
                Format::Json => {
                    Obj::new()
                        .raw_opt("header", print::header_json(r.header.as_ref()))
                        .bool_oe("enabled", r.enabled)
                        .num_oe("authRevision", r.auth_revision.into())
                        .end()
                        + "\n"
                }
                f => return Err(f.unsupported()),
            };
            out(&s);
        }
    }
    Ok(())
}

fn read_stdin_line() -> R<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| Fail::io(e.to_string()))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn new_password(name: &str, interactive: bool) -> R<String> {
    if !interactive {
        return read_stdin_line();
    }
    let p1 = read_password(&format!("Password of {name}: "))?;
    if p1.is_empty() {
        return Err(Fail::args("empty password"));
    }
    let p2 = read_password(&format!("Type password of {name} again for confirmation: "))?;
    if p1 != p2 {
        return Err(Fail::args("given passwords are different"));
    }
    Ok(p1)
}

/// `user …`.
pub async fn user(ctx: &Ctx, cmd: UserCmd) -> R {
    match cmd {
        UserCmd::Add(a) => {
            if a.args.len() != 1 {
                return Err(Fail::args(
                    "user add command requires user name as its argument",
                ));
            }
            let (name, password) = match a.args[0].split_once(':') {
                Some((n, p)) => (n.to_string(), p.to_string()),
                None if a.no_password => (a.args[0].clone(), String::new()),
                None if !a.new_user_password.is_empty() => {
                    (a.args[0].clone(), a.new_user_password.clone())
                }
                None => (a.args[0].clone(), new_password(&a.args[0], a.interactive)?),
            };
            let c = ctx.client().await?;
            let r = c
                .call::<m::UserAdd>(pb::AuthUserAddRequest {
                    name: name.clone(),
                    password,
                    options: Some(authpb::UserAddOptions {
                        no_password: a.no_password,
                    }),
                    ..Default::default()
                })
                .await?;
            out(&header_only(
                ctx,
                r.header.as_ref(),
                format!("User {name} created\n"),
            )?);
        }
        UserCmd::Delete(a) => {
            let name = one(
                &a.args,
                "user delete command requires user name as its argument",
            )?;
            let c = ctx.client().await?;
            let r = c
                .call::<m::UserDelete>(pb::AuthUserDeleteRequest { name: name.clone() })
                .await?;
            out(&header_only(
                ctx,
                r.header.as_ref(),
                format!("User {name} deleted\n"),
            )?);
        }
        UserCmd::Get(a) => {
            let name = one(
                &a.args,
                "user get command requires user name as its argument",
            )?;
            let c = ctx.client().await?;
            let r = c
                .call::<m::UserGet>(pb::AuthUserGetRequest { name: name.clone() })
                .await?;
            let s = match ctx.fmt {
                // etcdctl: the name, then each role as `role get` prints it.
                _ if a.detail => {
                    let mut s = format!("User: {name}\n");
                    for role in &r.roles {
                        let rr = c
                            .call::<m::RoleGet>(pb::AuthRoleGetRequest { role: role.clone() })
                            .await?;
                        s.push('\n');
                        match role_out(ctx, role, &rr) {
                            Ok(x) => s.push_str(&x),
                            Err(e) => {
                                out(&s);
                                return Err(e);
                            }
                        }
                    }
                    s
                }
                Format::Simple => {
                    let roles: String = r.roles.iter().map(|x| format!(" {x}")).collect();
                    format!("User: {name}\nRoles:{roles}\n")
                }
                Format::Json => {
                    Obj::new()
                        .raw_opt("header", print::header_json(r.header.as_ref()))
                        .strs_oe("roles", &r.roles)
                        .end()
                        + "\n"
                }
                f => return Err(f.unsupported()),
            };
            out(&s);
        }
        UserCmd::List => {
            let c = ctx.client().await?;
            let r = c.call::<m::UserList>(pb::AuthUserListRequest {}).await?;
            let s = match ctx.fmt {
                Format::Simple => r.users.iter().map(|u| format!("{u}\n")).collect(),
                Format::Json => {
                    Obj::new()
                        .raw_opt("header", print::header_json(r.header.as_ref()))
                        .strs_oe("users", &r.users)
                        .end()
                        + "\n"
                }
                f => return Err(f.unsupported()),
            };
            out(&s);
        }
        UserCmd::Passwd(a) => {
            let name = one(
                &a.args,
                "user passwd command requires user name as its argument",
            )?;
            let password = new_password(&name, a.interactive)?;
            let c = ctx.client().await?;
            let r = c
                .call::<m::UserChangePassword>(pb::AuthUserChangePasswordRequest {
                    name,
                    password,
                    ..Default::default()
                })
                .await?;
            out(&header_only(
                ctx,
                r.header.as_ref(),
                "Password updated\n".into(),
            )?);
        }
        UserCmd::GrantRole(a) => {
            let [user, role] = two(
                &a.args,
                "user grant command requires user name and role name as its argument",
            )?;
            let c = ctx.client().await?;
            let r = c
                .call::<m::UserGrantRole>(pb::AuthUserGrantRoleRequest {
                    user: user.clone(),
                    role: role.clone(),
                })
                .await?;
            out(&header_only(
                ctx,
                r.header.as_ref(),
                format!("Role {role} is granted to user {user}\n"),
            )?);
        }
        UserCmd::RevokeRole(a) => {
            let [user, role] = two(
                &a.args,
                "user revoke-role requires user name and role name as its argument",
            )?;
            let c = ctx.client().await?;
            let r = c
                .call::<m::UserRevokeRole>(pb::AuthUserRevokeRoleRequest {
                    name: user.clone(),
                    role: role.clone(),
                })
                .await?;
            out(&header_only(
                ctx,
                r.header.as_ref(),
                format!("Role {role} is revoked from user {user}\n"),
            )?);
        }
    }
    Ok(())
}

fn one(args: &[String], usage: &str) -> R<String> {
    if args.len() != 1 {
        return Err(Fail::args(usage));
    }
    Ok(args[0].clone())
}

fn two(args: &[String], usage: &str) -> R<[String; 2]> {
    if args.len() != 2 {
        return Err(Fail::args(usage));
    }
    Ok([args[0].clone(), args[1].clone()])
}

fn perm_line(p: &authpb::Permission) -> String {
    let key = String::from_utf8_lossy(&p.key);
    if p.range_end.is_empty() {
        format!("\t{key}\n")
    } else if p.range_end == [0] {
        format!("\t[{key}, <open ended>\n")
    } else {
        let end = String::from_utf8_lossy(&p.range_end);
        if p.range_end == print::prefix_end(&p.key) {
            format!("\t[{key}, {end}) (prefix {key})\n")
        } else {
            format!("\t[{key}, {end})\n")
        }
    }
}

/// A RoleGet response in the context's format.
fn role_out(ctx: &Ctx, name: &str, r: &pb::AuthRoleGetResponse) -> R<String> {
    Ok(match ctx.fmt {
        Format::Simple => role_simple(name, r),
        Format::Json => {
            let perms = r
                .perm
                .iter()
                .map(|p| {
                    Obj::new()
                        .num_oe("permType", p.perm_type.into())
                        .bytes_oe("key", &p.key)
                        .bytes_oe("range_end", &p.range_end)
                        .end()
                })
                .collect();
            Obj::new()
                .raw_opt("header", print::header_json(r.header.as_ref()))
                .arr_oe("perm", perms)
                .end()
                + "\n"
        }
        Format::Fields => {
            let mut s = String::new();
            print::header_lines(&mut s, r.header.as_ref());
            for p in &r.perm {
                let t = authpb::permission::Type::try_from(p.perm_type)
                    .map(|t| t.as_str_name())
                    .unwrap_or("READ");
                let _ = writeln!(s, "\"PermType\" :  {t}");
                let _ = writeln!(s, "\"Key\" : {}", print::goq(&p.key));
                let _ = writeln!(s, "\"RangeEnd\" : {}", print::goq(&p.range_end));
            }
            s
        }
        Format::Table => return Err(ctx.fmt.unsupported()),
    })
}

fn role_simple(name: &str, r: &pb::AuthRoleGetResponse) -> String {
    use authpb::permission::Type;
    let mut s = format!("Role {name}\nKV Read:\n");
    for p in &r.perm {
        if p.perm_type == Type::Read as i32 || p.perm_type == Type::Readwrite as i32 {
            s.push_str(&perm_line(p));
        }
    }
    s.push_str("KV Write:\n");
    for p in &r.perm {
        if p.perm_type == Type::Write as i32 || p.perm_type == Type::Readwrite as i32 {
            s.push_str(&perm_line(p));
        }
    }
    s
}

/// The key and range end of a permission command line.
fn perm_range(a: &PermArgs, key: &str, end: Option<&String>) -> R<(Vec<u8>, Vec<u8>)> {
    if a.prefix && a.from_key {
        return Err(Fail::args(
            "--from-key and --prefix flags are mutually exclusive",
        ));
    }
    let k = key.as_bytes().to_vec();
    Ok(if a.prefix {
        if end.is_some() {
            return Err(Fail::args("unexpected endkey argument with --prefix flag"));
        }
        let e = if k.is_empty() {
            vec![0]
        } else {
            print::prefix_end(&k)
        };
        (if k.is_empty() { vec![0] } else { k }, e)
    } else if a.from_key {
        if end.is_some() {
            return Err(Fail::args(
                "unexpected endkey argument with --from-key flag",
            ));
        }
        (if k.is_empty() { vec![0] } else { k }, vec![0])
    } else {
        (k, end.map(|e| e.as_bytes().to_vec()).unwrap_or_default())
    })
}

/// `role …`.
pub async fn role(ctx: &Ctx, cmd: RoleCmd) -> R {
    match cmd {
        RoleCmd::Add(a) => {
            let name = one(
                &a.args,
                "role add command requires role name as its argument",
            )?;
            let c = ctx.client().await?;
            let r = c
                .call::<m::RoleAdd>(pb::AuthRoleAddRequest { name: name.clone() })
                .await?;
            out(&header_only(
                ctx,
                r.header.as_ref(),
                format!("Role {name} created\n"),
            )?);
        }
        RoleCmd::Delete(a) => {
            let name = one(
                &a.args,
                "role delete command requires role name as its argument",
            )?;
            let c = ctx.client().await?;
            let r = c
                .call::<m::RoleDelete>(pb::AuthRoleDeleteRequest { role: name.clone() })
                .await?;
            out(&header_only(
                ctx,
                r.header.as_ref(),
                format!("Role {name} deleted\n"),
            )?);
        }
        RoleCmd::Get(a) => {
            let name = one(
                &a.args,
                "role get command requires role name as its argument",
            )?;
            let c = ctx.client().await?;
            let r = c
                .call::<m::RoleGet>(pb::AuthRoleGetRequest { role: name.clone() })
                .await?;
            out(&role_out(ctx, &name, &r)?);
        }
        RoleCmd::List => {
            let c = ctx.client().await?;
            let r = c.call::<m::RoleList>(pb::AuthRoleListRequest {}).await?;
            let s = match ctx.fmt {
                Format::Simple => r.roles.iter().map(|u| format!("{u}\n")).collect(),
                Format::Json => {
                    Obj::new()
                        .raw_opt("header", print::header_json(r.header.as_ref()))
                        .strs_oe("roles", &r.roles)
                        .end()
                        + "\n"
                }
                Format::Fields => {
                    let mut s = String::new();
                    print::header_lines(&mut s, r.header.as_ref());
                    s.push_str("\"Roles\" :");
                    for role in &r.roles {
                        s.push(' ');
                        s.push_str(&print::goq(role.as_bytes()));
                    }
                    s.push('\n');
                    s
                }
                Format::Table => return Err(ctx.fmt.unsupported()),
            };
            out(&s);
        }
        RoleCmd::GrantPermission(a) => {
            if a.args.len() < 3 || a.args.len() > 4 {
                return Err(Fail::args(
                    "role grant command requires role name, permission type, and key [endkey] as its argument",
                ));
            }
            let ty = match a.args[1].to_uppercase().as_str() {
                "READ" => authpb::permission::Type::Read,
                "WRITE" => authpb::permission::Type::Write,
                "READWRITE" => authpb::permission::Type::Readwrite,
                _ => {
                    return Err(Fail::args(format!(
                        "invalid permission type: {}",
                        a.args[1]
                    )));
                }
            };
            let (key, range_end) = perm_range(&a, &a.args[2], a.args.get(3))?;
            let name = a.args[0].clone();
            let c = ctx.client().await?;
            let r = c
                .call::<m::RoleGrantPermission>(pb::AuthRoleGrantPermissionRequest {
                    name: name.clone(),
                    perm: Some(authpb::Permission {
                        perm_type: ty as i32,
                        key,
                        range_end,
                    }),
                })
                .await?;
            out(&header_only(
                ctx,
                r.header.as_ref(),
                format!("Role {name} updated\n"),
            )?);
        }
        RoleCmd::RevokePermission(a) => {
            if a.args.len() < 2 || a.args.len() > 3 {
                return Err(Fail::args(
                    "role revoke-permission command requires role name and key [endkey] as its argument",
                ));
            }
            let (key, range_end) = perm_range(&a, &a.args[1], a.args.get(2))?;
            let name = a.args[0].clone();
            let c = ctx.client().await?;
            let r = c
                .call::<m::RoleRevokePermission>(pb::AuthRoleRevokePermissionRequest {
                    role: name.clone(),
                    key: key.clone(),
                    range_end: range_end.clone(),
                })
                .await?;
            let k = String::from_utf8_lossy(&key);
            let simple = if range_end.is_empty() {
                format!("Permission of key {k} is revoked from role {name}\n")
            } else if range_end == [0] {
                format!("Permission of range [{k}, <open ended> is revoked from role {name}\n")
            } else {
                format!(
                    "Permission of range [{k}, {}) is revoked from role {name}\n",
                    String::from_utf8_lossy(&range_end)
                )
            };
            out(&header_only(ctx, r.header.as_ref(), simple)?);
        }
    }
    Ok(())
}
