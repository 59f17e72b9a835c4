//! `endpoint status|health|hashkv`: one connection per endpoint (or per
//! member client URL with `--cluster`).

use std::fmt::Write as _;
use std::time::Instant;

use clap::{Args, Subcommand};
use ferrocd_net::pb::etcdserverpb as pb;
use futures_util::future::join_all;
use tonic::Code;

use crate::error::{Fail, R};
use crate::print::{self, Format, Obj};
use crate::{Ctx, out};

/// `endpoint …`.
#[derive(Debug, Subcommand)]
pub enum EndpointCmd {
    /// Checks the healthiness of endpoints specified in `--endpoints` flag
    Health(ClusterArgs),
    /// Prints out the status of endpoints specified in `--endpoints` flag
    Status(ClusterArgs),
    /// Prints the KV history hash for each endpoint in --endpoints
    Hashkv(HashArgs),
}

/// `--cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// use all endpoints from the cluster member list
    #[arg(long)]
    pub cluster: bool,
}

/// `endpoint hashkv`.
#[derive(Debug, Args)]
pub struct HashArgs {
    /// use all endpoints from the cluster member list
    #[arg(long)]
    pub cluster: bool,
    /// maximum revision to hash (default: all revisions)
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub rev: i64,
}

/// `endpoint …`.
pub async fn run(ctx: &Ctx, cmd: EndpointCmd) -> R {
    match cmd {
        EndpointCmd::Health(a) => health(ctx, &endpoints(ctx, a.cluster).await?).await,
        EndpointCmd::Status(a) => status(ctx, &endpoints(ctx, a.cluster).await?).await,
        EndpointCmd::Hashkv(a) => hashkv(ctx, &endpoints(ctx, a.cluster).await?, a.rev).await,
    }
}

/// `--endpoints`, or with `--cluster` every member's client URLs.
pub async fn endpoints(ctx: &Ctx, cluster: bool) -> R<Vec<String>> {
    if !cluster {
        return Ok(ctx.g.endpoints.clone());
    }
    let c = ctx.client().await?;
    let r = c.member_list().await?;
    let mut eps: Vec<String> = Vec::new();
    for m in &r.members {
        for u in &m.client_ur_ls {
            if !eps.contains(u) {
                eps.push(u.clone());
            }
        }
    }
    Ok(eps)
}

struct Health {
    ep: String,
    ok: bool,
    took: String,
    error: String,
}

async fn check(ctx: &Ctx, ep: &str) -> Health {
    let mut took = std::time::Duration::ZERO;
    let (ok, error) = match ctx.client_for(&[ep.to_string()]).await {
        Err(f) => (false, f.msg),
        Ok(c) => {
            // etcdctl dials lazily: its time is the proposal's alone.
            let start = Instant::now();
            let got = c.get("health", None).await;
            took = start.elapsed();
            match got {
                Ok(_) => alarms(&c).await,
                Err(e) if e.code() == Code::PermissionDenied => (true, String::new()),
                Err(e) => (false, e.message()),
            }
        }
    };
    Health {
        ep: ep.to_string(),
        ok,
        took: print::go_duration(took),
        error,
    }
}

/// Healthy only without active alarms.
async fn alarms(c: &ferrocd_net::client::Client) -> (bool, String) {
    match c.alarm(pb::AlarmRequest::default()).await {
        Ok(r) if r.alarms.is_empty() => (true, String::new()),
        Ok(r) => {
            let names: Vec<&str> = r
                .alarms
                .iter()
                .map(|a| {
                    pb::AlarmType::try_from(a.alarm)
                        .map(|t| t.as_str_name())
                        .unwrap_or("UNKNOWN")
                })
                .collect();
            (false, format!("Active Alarm(s): {}", names.join(" ")))
        }
        Err(e) => (
            false,
            format!("Unable to fetch the alarm list: {}", e.message()),
        ),
    }
}

async fn health(ctx: &Ctx, eps: &[String]) -> R {
    // All at once, as etcdctl does; reported in endpoint order.
    let hs = join_all(eps.iter().map(|ep| check(ctx, ep))).await;
    let s = match ctx.fmt {
        Format::Simple => {
            let mut s = String::new();
            for h in &hs {
                if h.ok {
                    let _ = writeln!(
                        s,
                        "{} is healthy: successfully committed proposal: took = {}",
                        h.ep, h.took
                    );
                } else {
                    eprintln!(
                        "{} is unhealthy: failed to commit proposal: {}",
                        h.ep, h.error
                    );
                }
            }
            s
        }
        Format::Json => {
            print::array(
                hs.iter()
                    .map(|h| {
                        Obj::new()
                            .str("endpoint", &h.ep)
                            .bool("health", h.ok)
                            .str("took", &h.took)
                            .str_oe("error", &h.error)
                            .end()
                    })
                    .collect(),
            ) + "\n"
        }
        Format::Fields => {
            let mut s = String::new();
            for h in &hs {
                let _ = writeln!(s, "\"Endpoint\" : {}", print::goq(h.ep.as_bytes()));
                let _ = writeln!(s, "\"Health\" : {}", h.ok);
                let _ = writeln!(s, "\"Took\" : {}", h.took);
                let _ = writeln!(s, "\"Error\" : {}\n", h.error);
            }
            s
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = hs
                .iter()
                .map(|h| {
                    vec![
                        h.ep.clone(),
                        h.ok.to_string(),
                        h.took.clone(),
                        h.error.clone(),
                    ]
                })
                .collect();
            print::table(&["ENDPOINT", "HEALTH", "TOOK", "ERROR"], &rows)
        }
    };
    out(&s);
    if hs.iter().all(|h| h.ok) {
        Ok(())
    } else {
        Err(Fail::err("unhealthy cluster"))
    }
}

fn go_strs(v: &[String]) -> String {
    format!("[{}]", v.join(" "))
}

async fn status(ctx: &Ctx, eps: &[String]) -> R {
    let mut list = Vec::new();
    let mut failed = false;
    let rs = join_all(eps.iter().map(|ep| async move {
        match ctx.client_for(std::slice::from_ref(ep)).await {
            Err(f) => Err(f.msg),
            Ok(c) => c.status().await.map_err(|e| e.message()),
        }
    }))
    .await;
    for (ep, r) in eps.iter().zip(rs) {
        match r {
            Ok(r) => list.push((ep.clone(), r)),
            Err(e) => {
                eprintln!("Failed to get the status of endpoint {ep} ({e})");
                failed = true;
            }
        }
    }
    let s = match ctx.fmt {
        Format::Simple => {
            let mut s = String::new();
            for (ep, r) in &list {
                let _ = writeln!(
                    s,
                    "{}, {:x}, {}, {}, {}, {}, {}, {}, {}, {}",
                    ep,
                    r.header.as_ref().map(|h| h.member_id).unwrap_or_default(),
                    r.version,
                    print::humanize_bytes(r.db_size.max(0) as u64),
                    is_leader(r),
                    r.is_learner,
                    r.raft_term,
                    r.raft_index,
                    r.raft_applied_index,
                    r.errors.join(", ")
                );
            }
            s
        }
        Format::Json => {
            print::array(
                list.iter()
                    .map(|(ep, r)| {
                        let st = Obj::new()
                            .raw_opt("header", print::header_json(r.header.as_ref()))
                            .str_oe("version", &r.version)
                            .num_oe("dbSize", r.db_size.into())
                            .num_oe("leader", r.leader.into())
                            .num_oe("raftIndex", r.raft_index.into())
                            .num_oe("raftTerm", r.raft_term.into())
                            .num_oe("raftAppliedIndex", r.raft_applied_index.into())
                            .strs_oe("errors", &r.errors)
                            .num_oe("dbSizeInUse", r.db_size_in_use.into())
                            .bool_oe("isLearner", r.is_learner)
                            .end();
                        Obj::new().str("Endpoint", ep).raw("Status", &st).end()
                    })
                    .collect(),
            ) + "\n"
        }
        Format::Fields => {
            let mut s = String::new();
            for (ep, r) in &list {
                print::header_lines(&mut s, r.header.as_ref());
                let _ = writeln!(s, "\"Version\" : {}", print::goq(r.version.as_bytes()));
                let _ = writeln!(s, "\"DBSize\" : {}", r.db_size);
                let _ = writeln!(s, "\"Leader\" : {}", r.leader);
                let _ = writeln!(s, "\"IsLearner\" : {}", r.is_learner);
                let _ = writeln!(s, "\"RaftIndex\" : {}", r.raft_index);
                let _ = writeln!(s, "\"RaftTerm\" : {}", r.raft_term);
                let _ = writeln!(s, "\"RaftAppliedIndex\" : {}", r.raft_applied_index);
                let _ = writeln!(s, "\"Errors\" : {}", go_strs(&r.errors));
                let _ = writeln!(s, "\"Endpoint\" : {}\n", print::goq(ep.as_bytes()));
            }
            s
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|(ep, r)| {
                    vec![
                        ep.clone(),
                        format!(
                            "{:x}",
                            r.header.as_ref().map(|h| h.member_id).unwrap_or_default()
                        ),
                        r.version.clone(),
                        print::humanize_bytes(r.db_size.max(0) as u64),
                        is_leader(r).to_string(),
                        r.is_learner.to_string(),
                        r.raft_term.to_string(),
                        r.raft_index.to_string(),
                        r.raft_applied_index.to_string(),
                        r.errors.join(", "),
                    ]
                })
                .collect();
            print::table(
                &[
                    "ENDPOINT",
                    "ID",
                    "VERSION",
                    "DB SIZE",
                    "IS LEADER",
                    "IS LEARNER",
                    "RAFT TERM",
                    "RAFT INDEX",
                    "RAFT APPLIED INDEX",
                    "ERRORS",
                ],
                &rows,
            )
        }
    };
    out(&s);
    if failed { Err(Fail::err("")) } else { Ok(()) }
}

fn is_leader(r: &pb::StatusResponse) -> bool {
    r.header.as_ref().map(|h| h.member_id) == Some(r.leader)
}

async fn hashkv(ctx: &Ctx, eps: &[String], rev: i64) -> R {
    let mut list = Vec::new();
    let mut failed = None;
    let rs = join_all(eps.iter().map(|ep| async move {
        match ctx.client_for(std::slice::from_ref(ep)).await {
            Err(f) => Err(f.msg),
            Ok(c) => c.hash_kv(rev).await.map_err(|e| e.message()),
        }
    }))
    .await;
    for (ep, r) in eps.iter().zip(rs) {
        match r {
            Ok(r) => list.push((ep.clone(), r)),
            Err(e) => {
                eprintln!("Failed to get the hash of endpoint {ep} ({e})");
                failed = Some(e);
            }
        }
    }
    let s = match ctx.fmt {
        Format::Simple => {
            let mut s = String::new();
            for (ep, r) in &list {
                let _ = writeln!(s, "{ep}, {}", r.hash);
            }
            s
        }
        Format::Json => {
            print::array(
                list.iter()
                    .map(|(ep, r)| {
                        // etcd 3.5.1's HashKVResponse has no hash_revision.
                        let h = Obj::new()
                            .raw_opt("header", print::header_json(r.header.as_ref()))
                            .num_oe("hash", r.hash.into())
                            .num_oe("compact_revision", r.compact_revision.into())
                            .end();
                        Obj::new().str("Endpoint", ep).raw("HashKV", &h).end()
                    })
                    .collect(),
            ) + "\n"
        }
        Format::Fields => {
            let mut s = String::new();
            for (ep, r) in &list {
                print::header_lines(&mut s, r.header.as_ref());
                let _ = writeln!(s, "\"Endpoint\" : {}", print::goq(ep.as_bytes()));
                let _ = writeln!(s, "\"Hash\" : {}\n", r.hash);
            }
            s
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|(ep, r)| vec![ep.clone(), r.hash.to_string()])
                .collect();
            print::table(&["ENDPOINT", "HASH"], &rows)
        }
    };
    out(&s);
    // Unlike status, etcdctl ends hashkv with the (last) error.
    match failed {
        Some(e) => Err(Fail::err(e)),
        None => Ok(()),
    }
}
