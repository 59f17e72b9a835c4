//! `member list|add|remove|update|promote`.

use std::fmt::Write as _;

use clap::{Args, Subcommand};
use ferrocd_net::pb::etcdserverpb as pb;

use crate::error::{Fail, R};
use crate::print::{self, Format, Obj};
use crate::{Ctx, out};

/// `member …`.
#[derive(Debug, Subcommand)]
pub enum MemberCmd {
    /// Lists all members in the cluster
    List(NoArgs),
    /// Adds a member into the cluster
    Add(AddArgs),
    /// Removes a member from the cluster
    Remove(IdArgs),
    /// Updates a member in the cluster
    Update(UpdateArgs),
    /// Promotes a non-voting member in the cluster
    Promote(IdArgs),
}

/// No flags.
#[derive(Debug, Args)]
pub struct NoArgs {
    /// (none)
    pub args: Vec<String>,
}

/// `member add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// comma separated peer URLs for the new member.
    #[arg(long = "peer-urls", default_value = "")]
    pub peer_urls: String,
    /// indicates if the new member is raft learner
    #[arg(long)]
    pub learner: bool,
    /// <memberName>
    pub args: Vec<String>,
}

/// `member remove|promote`.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// <memberID>
    pub args: Vec<String>,
}

/// `member update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// comma separated peer URLs for the updated member.
    #[arg(long = "peer-urls", default_value = "")]
    pub peer_urls: String,
    /// <memberID>
    pub args: Vec<String>,
}

/// `member …`.
pub async fn run(ctx: &Ctx, cmd: MemberCmd) -> R {
    match cmd {
        MemberCmd::List(_) => {
            let c = ctx.client().await?;
            let r = c.member_list().await?;
            out(&list_out(ctx, &r)?);
            Ok(())
        }
        MemberCmd::Add(a) => add(ctx, a).await,
        MemberCmd::Remove(a) => {
            let id = member_id(&a.args)?;
            let c = ctx.client().await?;
            let r = c.member_remove(id).await?;
            out(&changed(
                ctx,
                "removed from",
                id,
                r.header.as_ref(),
                &r.members,
            )?);
            Ok(())
        }
        MemberCmd::Update(a) => {
            let id = member_id(&a.args)?;
            if a.peer_urls.is_empty() {
                return Err(Fail::args("member peer urls not provided"));
            }
            let urls = a.peer_urls.split(',').map(str::to_string).collect();
            let c = ctx.client().await?;
            let r = c.member_update(id, urls).await?;
            out(&changed(
                ctx,
                "updated in",
                id,
                r.header.as_ref(),
                &r.members,
            )?);
            Ok(())
        }
        MemberCmd::Promote(a) => {
            let id = member_id(&a.args)?;
            let c = ctx.client().await?;
            let r = c.member_promote(id).await?;
            out(&changed(
                ctx,
                "promoted in",
                id,
                r.header.as_ref(),
                &r.members,
            )?);
            Ok(())
        }
    }
}

fn member_id(args: &[String]) -> R<u64> {
    if args.len() != 1 {
        return Err(Fail::args("member ID is not provided"));
    }
    u64::from_str_radix(&args[0], 16).map_err(|_| {
        Fail::args(format!(
            "bad member ID arg (strconv.ParseUint: parsing {}: invalid syntax), expecting ID in Hex",
            print::goq(args[0].as_bytes())
        ))
    })
}

/// A member as JSON.
pub fn member_json(m: &pb::Member) -> String {
    Obj::new()
        .num_oe("ID", m.id.into())
        .str_oe("name", &m.name)
        .strs_oe("peerURLs", &m.peer_ur_ls)
        .strs_oe("clientURLs", &m.client_ur_ls)
        .bool_oe("isLearner", m.is_learner)
        .end()
}

fn members_obj(o: Obj, h: Option<&pb::ResponseHeader>, ms: &[pb::Member]) -> Obj {
    o.raw_opt("header", print::header_json(h))
        .arr_oe("members", ms.iter().map(member_json).collect())
}

fn list_out(ctx: &Ctx, r: &pb::MemberListResponse) -> R<String> {
    let row = |m: &pb::Member| {
        vec![
            format!("{:x}", m.id),
            if m.name.is_empty() {
                "unstarted"
            } else {
                "started"
            }
            .to_string(),
            m.name.clone(),
            m.peer_ur_ls.join(", "),
            m.client_ur_ls.join(", "),
            m.is_learner.to_string(),
        ]
    };
    Ok(match ctx.fmt {
        Format::Simple => {
            let mut s = String::new();
            for m in &r.members {
                s.push_str(&row(m).join(", "));
                s.push('\n');
            }
            s
        }
        Format::Json if ctx.g.hex => list_json_hex(r),
        Format::Json => members_obj(Obj::new(), r.header.as_ref(), &r.members).end() + "\n",
        Format::Fields => {
            let mut s = String::new();
            print::header_lines(&mut s, r.header.as_ref());
            for m in &r.members {
                let _ = writeln!(s, "\"ID\" : {}", m.id);
                let _ = writeln!(s, "\"Name\" : {}", print::goq(m.name.as_bytes()));
                for u in &m.peer_ur_ls {
                    let _ = writeln!(s, "\"PeerURL\" : {}", print::goq(u.as_bytes()));
                }
                for u in &m.client_ur_ls {
                    let _ = writeln!(s, "\"ClientURL\" : {}", print::goq(u.as_bytes()));
                }
                let _ = writeln!(s, "\"IsLearner\" : {}\n", m.is_learner);
            }
            s
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = r.members.iter().map(row).collect();
            print::table(
                &[
                    "ID",
                    "STATUS",
                    "NAME",
                    "PEER ADDRS",
                    "CLIENT ADDRS",
                    "IS LEARNER",
                ],
                &rows,
            )
        }
    })
}

/// etcdctl's own JSON for `member list --hex`: ids as hex strings, and
/// its spelling `clientURLS`.
fn list_json_hex(r: &pb::MemberListResponse) -> String {
    let h = r.header.unwrap_or_default();
    let header = Obj::new()
        .str("cluster_id", &format!("{:x}", h.cluster_id))
        .str("member_id", &format!("{:x}", h.member_id))
        .num_oe("revision", h.revision.into())
        .num_oe("raft_term", h.raft_term.into())
        .end();
    let urls = |v: &[String]| {
        if v.is_empty() {
            "null".to_string()
        } else {
            print::array(v.iter().map(|u| print::json_str(u)).collect())
        }
    };
    let members = r
        .members
        .iter()
        .map(|m| {
            Obj::new()
                .str("ID", &format!("{:x}", m.id))
                .str("name", &m.name)
                .raw("peerURLs", &urls(&m.peer_ur_ls))
                .raw("clientURLS", &urls(&m.client_ur_ls))
                .end()
        })
        .collect();
    Obj::new()
        .raw("header", &header)
        .raw("members", &print::array(members))
        .end()
        + "\n"
}

fn changed(
    ctx: &Ctx,
    what: &str,
    id: u64,
    h: Option<&pb::ResponseHeader>,
    ms: &[pb::Member],
) -> R<String> {
    Ok(match ctx.fmt {
        Format::Simple => format!(
            "Member {:16x} {what} cluster {:16x}\n",
            id,
            h.map(|h| h.cluster_id).unwrap_or_default()
        ),
        Format::Json => members_obj(Obj::new(), h, ms).end() + "\n",
        f => return Err(f.unsupported()),
    })
}

async fn add(ctx: &Ctx, a: AddArgs) -> R {
    if a.args.len() != 1 {
        return Err(Fail::args("member name not provided"));
    }
    if a.peer_urls.is_empty() {
        return Err(Fail::args("member peer urls not provided"));
    }
    let name = &a.args[0];
    let urls: Vec<String> = a.peer_urls.split(',').map(str::to_string).collect();
    let c = ctx.client().await?;
    let r = c.member_add(urls.clone(), a.learner).await?;
    let new_id = r.member.as_ref().map(|m| m.id).unwrap_or_default();
    let s = match ctx.fmt {
        Format::Simple => {
            let mut conf = Vec::new();
            for m in &r.members {
                for u in &m.peer_ur_ls {
                    let n = if m.id == new_id { name } else { &m.name };
                    conf.push(format!("{n}={u}"));
                }
            }
            format!(
                "Member {:16x} added to cluster {:16x}\n\nETCD_NAME=\"{name}\"\nETCD_INITIAL_CLUSTER=\"{}\"\nETCD_INITIAL_ADVERTISE_PEER_URLS=\"{}\"\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n",
                new_id,
                r.header.as_ref().map(|h| h.cluster_id).unwrap_or_default(),
                conf.join(","),
                urls.join(",")
            )
        }
        Format::Json => {
            let o = Obj::new()
                .raw_opt("header", print::header_json(r.header.as_ref()))
                .raw_opt("member", r.member.as_ref().map(member_json))
                .arr_oe("members", r.members.iter().map(member_json).collect());
            o.end() + "\n"
        }
        f => return Err(f.unsupported()),
    };
    out(&s);
    Ok(())
}
