//! Maintenance: `move-leader`, `alarm list|disarm`, `defrag`,
//! `snapshot save|status|restore`, `downgrade validate|enable|cancel`
//! (etcdctl 3.6's; etcdctl 3.5 has none). Snapshot files are etcd's backend files
//! (bbolt plus a trailing sha256, see `ferrocd_core::backend`), the same
//! from ferrocd and from etcd.

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
    /// Gets backend snapshot status of a given file
    Status(SnapArgs),
    /// Restores an etcd member snapshot to an etcd directory
    Restore(RestoreArgs),
}

/// `snapshot restore`: etcdctl 3.5's flags.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// <filename>
    pub args: Vec<String>,
    /// Path to the data directory
    #[arg(long, default_value = "")]
    pub data_dir: String,
    /// Path to the WAL directory (use --data-dir if none given)
    #[arg(long, default_value = "")]
    pub wal_dir: String,
    /// Initial cluster configuration for restore bootstrap
    #[arg(long, default_value = "default=http://localhost:2380")]
    pub initial_cluster: String,
    /// Initial cluster token for the etcd cluster during restore bootstrap
    #[arg(long, default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    /// List of this member's peer URLs to advertise to the rest of the cluster
    #[arg(long, default_value = "http://localhost:2380")]
    pub initial_advertise_peer_urls: String,
    /// Human-readable name for this member
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Ignore snapshot integrity hash value (required if copied from data directory)
    #[arg(long)]
    pub skip_hash_check: bool,
}

/// `snapshot save|status|restore`.
#[derive(Debug, Args)]
pub struct SnapArgs {
    /// <filename>
    pub args: Vec<String>,
}

/// `downgrade …` (etcdctl 3.6's command shape).
#[derive(Debug, Subcommand)]
pub enum DowngradeCmd {
    /// Validate downgrade capability before starting downgrade
    Validate(DowngradeArgs),
    /// Start a downgrade action to cluster
    Enable(DowngradeArgs),
    /// Cancel the ongoing downgrade action to cluster
    Cancel,
}

/// `downgrade validate|enable`.
#[derive(Debug, Args)]
pub struct DowngradeArgs {
    /// <TARGET_VERSION>
    pub args: Vec<String>,
}

/// etcdctl 3.6's checks of a downgrade's target argument.
fn downgrade_target(a: &DowngradeArgs) -> R<&str> {
    match a.args.as_slice() {
        [] => Err(Fail::args("TARGET_VERSION not provided")),
        [v] if v.is_empty() => Err(Fail::args("target version not provided")),
        [v] => Ok(v),
        _ => Err(Fail::args("too many arguments")),
    }
}

/// `downgrade validate|enable|cancel`: etcdctl 3.6's lines
/// (`Downgrade <action> success, cluster version <V>`) or the server's
/// error (exit 1). `-w json` prints the response; fields and table are
/// refused (exit 4).
pub async fn downgrade(ctx: &Ctx, cmd: DowngradeCmd) -> R {
    let fmt = ctx.only(&[Format::Simple, Format::Json])?;
    let (action, name, version) = match &cmd {
        DowngradeCmd::Validate(a) => (0, "validate", downgrade_target(a)?),
        DowngradeCmd::Enable(a) => (1, "enable", downgrade_target(a)?),
        DowngradeCmd::Cancel => (2, "cancel", ""),
    };
    let c = ctx.client().await?;
    let r = c.downgrade(action, version).await?;
    out(&match fmt {
        Format::Json => {
            Obj::new()
                .raw_opt("header", print::header_json(r.header.as_ref()))
                .str_oe("version", &r.version)
                .end()
                + "\n"
        }
        _ => format!("Downgrade {name} success, cluster version {}\n", r.version),
    });
    Ok(())
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
        SnapshotCmd::Status(a) => status(ctx, a),
        SnapshotCmd::Restore(a) => restore(a),
    }
}

/// An I/O error as Go words it (`no such file or directory`).
fn go_io(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_lowercase(),
        None => s,
    }
}

/// `snapshot status`: hash, revision, keys and size as etcdutl computes
/// them. Unlike etcdctl (which ignores it), a trailing sha256 that does
/// not match is an error.
fn status(ctx: &Ctx, a: SnapArgs) -> R {
    use ferrocd_core::backend;
    if a.args.len() != 1 {
        return Err(Fail::args("snapshot status requires exactly one argument"));
    }
    let path = &a.args[0];
    let data = std::fs::read(path).map_err(|e| Fail::err(format!("stat {path}: {}", go_io(&e))))?;
    let db = if data.len() % 512 == backend::SHA256_LEN {
        backend::verify(&data, false).map_err(|e| Fail::err(e.to_string()))?
    } else {
        &data[..]
    };
    let st = backend::status(db).map_err(|e| Fail::err(e.to_string()))?;
    let s = match ctx.fmt {
        Format::Simple => format!(
            "{:x}, {}, {}, {}\n",
            st.hash,
            st.revision,
            st.total_key,
            print::humanize_bytes(st.total_size)
        ),
        Format::Table => print::table(
            &["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"],
            &[vec![
                format!("{:x}", st.hash),
                st.revision.to_string(),
                st.total_key.to_string(),
                print::humanize_bytes(st.total_size),
            ]],
        ),
        Format::Json => format!(
            "{{\"hash\":{},\"revision\":{},\"totalKey\":{},\"totalSize\":{}}}\n",
            st.hash, st.revision, st.total_key, st.total_size
        ),
        Format::Fields => format!(
            "\"Hash\" : {}\n\"Revision\" : {}\n\"Keys\" : {}\n\"Size\" : {}\n",
            st.hash, st.revision, st.total_key, st.total_size
        ),
    };
    out(&s);
    Ok(())
}

/// `snapshot restore`: a new ferrocd data dir (see
/// `ferrocd_core::restore`).
fn restore(a: RestoreArgs) -> R {
    if a.args.len() != 1 {
        return Err(Fail::args("snapshot restore requires exactly one argument"));
    }
    let data_dir = if a.data_dir.is_empty() {
        format!("{}.etcd", a.name)
    } else {
        a.data_dir.clone()
    };
    let o = ferrocd_core::restore::Options {
        name: a.name,
        initial_cluster: a.initial_cluster,
        initial_cluster_token: a.initial_cluster_token,
        initial_advertise_peer_urls: a.initial_advertise_peer_urls,
        data_dir: data_dir.clone().into(),
        wal_dir: (!a.wal_dir.is_empty()).then(|| a.wal_dir.into()),
        skip_hash_check: a.skip_hash_check,
    };
    let path = &a.args[0];
    let r = ferrocd_core::restore::restore(std::path::Path::new(path), &o).map_err(Fail::err)?;
    eprintln!(
        "restored snapshot {path} into {data_dir} (member {:x}, cluster {:x}, revision {}, {})",
        r.ids.member_id,
        r.ids.cluster_id,
        r.revision,
        r.snapshot.display()
    );
    Ok(())
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
