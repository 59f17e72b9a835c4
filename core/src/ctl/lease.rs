//! `lease grant|revoke|timetolive|list|keep-alive`. etcdctl prints some of
//! these through clientv3's own structs (header fields inlined, Go field
//! names), so their JSON differs from the protobuf messages'.

use std::fmt::Write as _;

use clap::{Args, Subcommand};
use ferrocd_net::pb::etcdserverpb as pb;

use crate::error::{EXIT_BAD_CONNECTION, Fail, R};
use crate::kv::parse_lease;
use crate::print::{self, Format, Obj};
use crate::{Ctx, out};

/// `lease …`.
#[derive(Debug, Subcommand)]
pub enum LeaseCmd {
    /// Creates leases
    Grant(Positional),
    /// Revokes leases
    Revoke(Positional),
    /// Get lease information
    Timetolive(TtlArgs),
    /// List all active leases
    List(Positional),
    /// Keeps leases alive (renew)
    #[command(name = "keep-alive")]
    KeepAlive(KeepAliveArgs),
}

/// Positional arguments only.
#[derive(Debug, Args)]
pub struct Positional {
    /// arguments
    pub args: Vec<String>,
}

/// `lease timetolive`.
#[derive(Debug, Args)]
pub struct TtlArgs {
    /// Get keys attached to this lease
    #[arg(long)]
    pub keys: bool,
    /// <leaseID>
    pub args: Vec<String>,
}

/// `lease keep-alive`.
#[derive(Debug, Args)]
pub struct KeepAliveArgs {
    /// Resets the keep-alive time to its original value and exits immediately
    #[arg(long)]
    pub once: bool,
    /// <leaseID>
    pub args: Vec<String>,
}

/// `lease …`.
pub async fn run(ctx: &Ctx, cmd: LeaseCmd) -> R {
    match cmd {
        LeaseCmd::Grant(a) => grant(ctx, a).await,
        LeaseCmd::Revoke(a) => revoke(ctx, a).await,
        LeaseCmd::Timetolive(a) => timetolive(ctx, a).await,
        LeaseCmd::List(_) => list(ctx).await,
        LeaseCmd::KeepAlive(a) => keep_alive(ctx, a).await,
    }
}

fn flat(h: Option<&pb::ResponseHeader>) -> Obj {
    print::header_fields(Obj::new(), h)
}

async fn grant(ctx: &Ctx, a: Positional) -> R {
    if a.args.len() != 1 {
        return Err(Fail::args("lease grant command needs TTL argument"));
    }
    let ttl: i64 = a.args[0].parse().map_err(|_| {
        Fail::args(format!(
            "bad TTL (strconv.ParseInt: parsing {}: invalid syntax)",
            print::goq(a.args[0].as_bytes())
        ))
    })?;
    let c = ctx.client().await?;
    let r = c.lease_grant(ttl, 0).await?;
    if !r.error.is_empty() {
        return Err(Fail::err(format!("failed to grant lease ({})", r.error)));
    }
    let s = match ctx.fmt {
        Format::Simple => format!("lease {:016x} granted with TTL({}s)\n", r.id, r.ttl),
        Format::Json => {
            flat(r.header.as_ref())
                .num("ID", r.id)
                .num("TTL", r.ttl)
                .str("Error", &r.error)
                .end()
                + "\n"
        }
        Format::Fields => {
            let mut s = String::new();
            print::header_lines(&mut s, r.header.as_ref());
            let _ = writeln!(s, "\"ID\" : {}\n\"TTL\" : {}", r.id, r.ttl);
            s
        }
        Format::Table => return Err(ctx.fmt.unsupported()),
    };
    out(&s);
    Ok(())
}

fn lease_arg(args: &[String], usage: &str) -> R<i64> {
    if args.len() != 1 {
        return Err(Fail::args(usage));
    }
    parse_lease(&args[0], "bad lease ID arg")
}

async fn revoke(ctx: &Ctx, a: Positional) -> R {
    let id = lease_arg(&a.args, "lease revoke command needs 1 argument")?;
    let c = ctx.client().await?;
    let r = c
        .lease_revoke(id)
        .await
        .map_err(|e| Fail::err(format!("failed to revoke lease ({})", e.message())))?;
    let s = match ctx.fmt {
        Format::Simple => format!("lease {id:016x} revoked\n"),
        Format::Json => {
            Obj::new()
                .raw_opt("header", print::header_json(r.header.as_ref()))
                .end()
                + "\n"
        }
        Format::Fields => {
            let mut s = String::new();
            print::header_lines(&mut s, r.header.as_ref());
            s
        }
        Format::Table => return Err(ctx.fmt.unsupported()),
    };
    out(&s);
    Ok(())
}

async fn timetolive(ctx: &Ctx, a: TtlArgs) -> R {
    let id = lease_arg(
        &a.args,
        "lease timetolive command needs lease ID as argument",
    )?;
    let c = ctx.client().await?;
    let r = c.lease_time_to_live(id, a.keys).await?;
    let s = match ctx.fmt {
        Format::Simple => {
            if r.granted_ttl == 0 && r.ttl == -1 {
                format!("lease {id:016x} already expired\n")
            } else {
                let mut s = format!(
                    "lease {:016x} granted with TTL({}s), remaining({}s)",
                    r.id, r.granted_ttl, r.ttl
                );
                if a.keys {
                    let keys: Vec<String> = r
                        .keys
                        .iter()
                        .map(|k| String::from_utf8_lossy(k).into_owned())
                        .collect();
                    let _ = write!(s, ", attached keys([{}])", keys.join(" "));
                }
                s + "\n"
            }
        }
        Format::Json => {
            let keys = if r.keys.is_empty() {
                "null".to_string()
            } else {
                print::array(
                    r.keys
                        .iter()
                        .map(|k| format!("\"{}\"", print::base64(k)))
                        .collect(),
                )
            };
            flat(r.header.as_ref())
                .num("id", r.id)
                .num("ttl", r.ttl)
                .num("granted-ttl", r.granted_ttl)
                .raw("keys", &keys)
                .end()
                + "\n"
        }
        Format::Fields => {
            let mut s = String::new();
            print::header_lines(&mut s, r.header.as_ref());
            let _ = writeln!(s, "\"ID\" : {}", r.id);
            let _ = writeln!(s, "\"TTL\" : {}", r.ttl);
            let _ = writeln!(s, "\"GrantedTTL\" : {}", r.granted_ttl);
            for k in &r.keys {
                let _ = writeln!(s, "\"Key\" : {}", print::goq(k));
            }
            s
        }
        Format::Table => return Err(ctx.fmt.unsupported()),
    };
    out(&s);
    Ok(())
}

async fn list(ctx: &Ctx) -> R {
    let c = ctx.client().await?;
    let r = c.leases().await?;
    let s = match ctx.fmt {
        Format::Simple => {
            let mut s = format!("found {} leases\n", r.leases.len());
            for l in &r.leases {
                let _ = writeln!(s, "{:016x}", l.id);
            }
            s
        }
        Format::Json => {
            let leases = print::array(
                r.leases
                    .iter()
                    .map(|l| Obj::new().num("id", l.id).end())
                    .collect(),
            );
            flat(r.header.as_ref()).raw("leases", &leases).end() + "\n"
        }
        Format::Fields => {
            let mut s = String::new();
            print::header_lines(&mut s, r.header.as_ref());
            for l in &r.leases {
                let _ = writeln!(s, "\"ID\" : {}", l.id);
            }
            s
        }
        Format::Table => return Err(ctx.fmt.unsupported()),
    };
    out(&s);
    Ok(())
}

fn keep_alive_out(ctx: &Ctx, r: &pb::LeaseKeepAliveResponse) -> R<String> {
    Ok(match ctx.fmt {
        Format::Simple => format!("lease {:016x} keepalived with TTL({})\n", r.id, r.ttl),
        Format::Json => {
            flat(r.header.as_ref())
                .num("ID", r.id)
                .num("TTL", r.ttl)
                .end()
                + "\n"
        }
        Format::Fields => {
            let mut s = String::new();
            print::header_lines(&mut s, r.header.as_ref());
            let _ = writeln!(s, "\"ID\" : {}\n\"TTL\" : {}", r.id, r.ttl);
            s
        }
        Format::Table => return Err(ctx.fmt.unsupported()),
    })
}

async fn keep_alive(ctx: &Ctx, a: KeepAliveArgs) -> R {
    let id = lease_arg(
        &a.args,
        "lease keep-alive command needs lease ID as argument",
    )?;
    let c = ctx.client().await?;
    let not_found = || Fail::new(EXIT_BAD_CONNECTION, "etcdserver: requested lease not found");
    let (mut keeper, mut stream) = c
        .lease_keep_alive(id)
        .await
        .map_err(|e| Fail::new(EXIT_BAD_CONNECTION, e.message()))?;
    let first = stream
        .message()
        .await
        .map_err(|e| Fail::new(EXIT_BAD_CONNECTION, e.message()))?
        .ok_or_else(not_found)?;
    if first.ttl <= 0 {
        return Err(not_found());
    }
    out(&keep_alive_out(ctx, &first)?);
    if a.once {
        return Ok(());
    }
    let mut ttl = first.ttl;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(
            (ttl as u64 * 1000 / 3).max(500),
        ))
        .await;
        if keeper.keep_alive().await.is_err() {
            break;
        }
        match stream.message().await {
            Ok(Some(r)) if r.ttl > 0 => {
                ttl = r.ttl;
                out(&keep_alive_out(ctx, &r)?);
            }
            _ => break,
        }
    }
    if ctx.fmt == Format::Simple {
        out(&format!("lease {id:016x} expired or revoked.\n"));
    }
    Ok(())
}
