//! Maintenance: `move-leader`, `alarm list|disarm`, `defrag`,
//! `snapshot save` (and `snapshot status|restore`, which need ferrocd's
//! own snapshot format and say so).

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Instant;

use clap::{Args, Subcommand};
use ferrocd_net::pb::etcdserverpb as pb;

use crate::error::{Fail, R};
use crate::print::{self, Format, Obj};
use crate::{Ctx, out};

/// `move-leader`.
#[derive(Debug, Args)]
pub struct MoveLeaderArgs {
    /// <transferee-member-id>
    pub args: Vec<String>,
}

/// `alarm …`.
#[derive(Debug, Subcommand)]
pub enum AlarmCmd {
    /// Disarms all alarms
    Disarm,
    /// Lists all alarms
    List,
}

/// `defrag`.
#[derive(Debug, Args)]
pub struct DefragArgs {
    /// use all endpoints from the cluster member list
    #[arg(long)]
    pub cluster: bool,
}

/// `snapshot …`.
#[derive(Debug, Subcommand)]
pub enum SnapshotCmd {
    /// Stores an etcd node backend snapshot to a given file
    Save(SnapArgs),
    /// Gets backend snapshot status of a given file (not supported yet)
    Status(SnapArgs),
    /// Restores an etcd member snapshot to an etcd directory (not supported yet)
    Restore(SnapArgs),
}

/// `snapshot save|status|restore`.
#[derive(Debug, Args)]
pub struct SnapArgs {
    /// <filename>
    pub args: Vec<String>,
}

/// `move-leader`.
pub async fn move_leader(ctx: &Ctx, a: MoveLeaderArgs) -> R {
    if a.args.len() != 1 {
        return Err(Fail::args("move-leader command needs 1 argument"));
    }
    let target = u64::from_str_radix(&a.args[0], 16).map_err(|_| {
        Fail::args(format!(
            "strconv.ParseUint: parsing {}: invalid syntax",
            print::goq(a.args[0].as_bytes())
        ))
    })?;
    // The request must reach the leader: find it among the endpoints.
    let mut leader = None;
    for ep in &ctx.g.endpoints {
        let Ok(c) = ctx.client_for(std::slice::from_ref(ep)).await else {
            continue;
        };
        if let Ok(s) = c.status().await
            && s.header.as_ref().map(|h| h.member_id) == Some(s.leader)
        {
            leader = Some((c, s.leader));
            break;
        }
    }
    let Some((c, from)) = leader else {
        return Err(Fail::err(format!(
            "no leader endpoint given at [{}]",
            ctx.g.endpoints.join(" ")
        )));
    };
    c.move_leader(target).await?;
    out(&format!(
        "Leadership transferred from {from:x} to {target:x}\n"
    ));
    Ok(())
}

fn alarm_name(a: &pb::AlarmMember) -> &'static str {
    pb::AlarmType::try_from(a.alarm)
        .map(|t| t.as_str_name())
        .unwrap_or("NONE")
}

fn alarm_out(ctx: &Ctx, r: &pb::AlarmResponse) -> R<String> {
    Ok(match ctx.fmt {
        Format::Simple => {
            let mut s = String::new();
            for a in &r.alarms {
                let _ = writeln!(s, "memberID:{} alarm:{} ", a.member_id, alarm_name(a));
            }
            s
        }
        Format::Json => {
            Obj::new()
                .raw_opt("header", print::header_json(r.header.as_ref()))
                .arr_oe(
                    "alarms",
                    r.alarms
                        .iter()
                        .map(|a| {
                            Obj::new()
                                .num_oe("memberID", a.member_id.into())
                                .num_oe("alarm", a.alarm.into())
                                .end()
                        })
                        .collect(),
                )
                .end()
                + "\n"
        }
        Format::Fields => {
            let mut s = String::new();
            print::header_lines(&mut s, r.header.as_ref());
            for a in &r.alarms {
                let _ = writeln!(s, "\"MemberID\" : {}", a.member_id);
                let _ = writeln!(s, "\"AlarmType\" : {}", alarm_name(a));
            }
            s
        }
        Format::Table => return Err(ctx.fmt.unsupported()),
    })
}

/// `alarm list|disarm`.
pub async fn alarm(ctx: &Ctx, cmd: AlarmCmd) -> R {
    let c = ctx.client().await?;
    let list = c.alarm(pb::AlarmRequest::default()).await?;
    let r = match cmd {
        AlarmCmd::List => list,
        AlarmCmd::Disarm => {
            let mut ret = pb::AlarmResponse::default();
            for a in &list.alarms {
                let r = c
                    .alarm(pb::AlarmRequest {
                        action: pb::alarm_request::AlarmAction::Deactivate as i32,
                        member_id: a.member_id,
                        alarm: a.alarm,
                    })
                    .await?;
                ret.header = r.header;
                ret.alarms.extend(r.alarms);
            }
            ret
        }
    };
    out(&alarm_out(ctx, &r)?);
    Ok(())
}

/// `defrag`.
pub async fn defrag(ctx: &Ctx, a: DefragArgs) -> R {
    let eps = crate::endpoint::endpoints(ctx, a.cluster).await?;
    let mut failed = false;
    for ep in &eps {
        let r = match ctx.client_for(std::slice::from_ref(ep)).await {
            Err(f) => Err(f.msg),
            Ok(c) => c.defragment().await.map(|_| ()).map_err(|e| e.message()),
        };
        match r {
            Ok(()) => out(&format!("Finished defragmenting etcd member[{ep}]\n")),
            Err(e) => {
                eprintln!("Failed to defragment etcd member[{ep}] ({e})");
                failed = true;
            }
        }
    }
    if failed { Err(Fail::err("")) } else { Ok(()) }
}

/// `snapshot save|status|restore`.
pub async fn snapshot(ctx: &Ctx, cmd: SnapshotCmd) -> R {
    match cmd {
        SnapshotCmd::Save(a) => save(ctx, a).await,
        SnapshotCmd::Status(_) | SnapshotCmd::Restore(_) => Err(Fail::feature(
            "snapshot status and restore are not supported yet (they need ferrocd's own \
             snapshot format; for an etcd snapshot use `etcdutl snapshot status|restore`)",
        )),
    }
}

async fn save(ctx: &Ctx, a: SnapArgs) -> R {
    if a.args.len() != 1 {
        return Err(Fail::args("snapshot save expects one argument"));
    }
    if ctx.g.endpoints.len() != 1 {
        return Err(Fail::args(format!(
            "snapshot must be requested to one selected node, not multiple [{}]",
            ctx.g.endpoints.join(" ")
        )));
    }
    let path = &a.args[0];
    let part = format!("{path}.part");
    let ep = &ctx.g.endpoints[0];
    let c = ctx.client().await?;
    let start = Instant::now();
    eprintln!("fetching snapshot from {ep}");
    let mut stream = c.snapshot().await?;
    let mut f = std::fs::File::create(&part)
        .map_err(|e| Fail::io(format!("could not open {part} ({e})")))?;
    let mut total: u64 = 0;
    let mut next_report: u64 = 16 << 20;
    while let Some(chunk) = stream.message().await? {
        f.write_all(&chunk.blob)
            .map_err(|e| Fail::io(format!("could not write {part} ({e})")))?;
        total += chunk.blob.len() as u64;
        if total >= next_report {
            eprintln!(
                "fetched {} (remaining {})",
                print::humanize_bytes(total),
                print::humanize_bytes(chunk.remaining_bytes)
            );
            next_report = total + (16 << 20);
        }
    }
    f.sync_all().map_err(|e| Fail::io(e.to_string()))?;
    drop(f);
    std::fs::rename(&part, path)
        .map_err(|e| Fail::io(format!("could not rename {part} to {path} ({e})")))?;
    eprintln!(
        "fetched snapshot from {ep}: {} in {}",
        print::humanize_bytes(total),
        print::go_duration(start.elapsed())
    );
    out(&format!("Snapshot saved at {path}\n"));
    Ok(())
}
