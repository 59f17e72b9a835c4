//! `lock` and `elect`: etcdctl's client-side recipes (as its concurrency
//! package works: a session lease, a key `<name>/<lease hex>` under the
//! name, ownership by lowest create revision, waiting for the deletion of
//! the key just ahead) built on KV, Lease and Watch only, so they work
//! against any server that has those (ferrocd included), not only one with
//! the v3lock/v3election services.

use clap::Args;
use ferrocd_net::client::{
    Client, Compare, CompareOp, GetOptions, KeepAliveHandle, PutOptions, SortOrder, SortTarget,
    Txn, TxnOp, WatchOptions,
};
use ferrocd_net::pb::etcdserverpb::response_op::Response;
use ferrocd_net::pb::mvccpb;

use crate::error::{Fail, R};
use crate::print;
use crate::{Ctx, out};

/// `lock`.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// timeout for session
    #[arg(long, default_value_t = 10)]
    pub ttl: i64,
    /// <lockname> [exec-command arg1 arg2 ...]
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// `elect`.
#[derive(Debug, Args)]
pub struct ElectArgs {
    /// observe leader election
    #[arg(short = 'l', long)]
    pub listen: bool,
    /// timeout for session
    #[arg(long, default_value_t = 60)]
    pub ttl: i64,
    /// <election-name> [proposal]
    pub args: Vec<String>,
}

/// A session: a lease kept alive while the command runs.
struct Session {
    lease: i64,
    _keep: KeepAliveHandle,
}

async fn session(c: &Client, ttl: i64) -> R<Session> {
    let g = c.lease_grant(ttl, 0).await?;
    let keep = c.keep_lease_alive(g.id).await?;
    Ok(Session {
        lease: g.id,
        _keep: keep,
    })
}

fn first_created(pfx: &[u8]) -> GetOptions {
    GetOptions::new()
        .with_range(print::prefix_end(pfx))
        .with_sort(SortTarget::Create, SortOrder::Ascend)
        .with_limit(1)
}

/// Create our key under `pfx` (or find it) and wait until it is the
/// oldest: the key-value we own, and the revision it was ours at (the
/// header etcdctl reports as `ETCD_LOCK_REV`).
async fn acquire(c: &Client, pfx: &[u8], lease: i64, value: &[u8]) -> R<(mvccpb::KeyValue, i64)> {
    let mut key = pfx.to_vec();
    key.extend_from_slice(format!("{lease:x}").as_bytes());
    let t = Txn::new()
        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
        .and_then([
            TxnOp::put(
                key.clone(),
                value.to_vec(),
                Some(PutOptions::new().with_lease(lease)),
            ),
            TxnOp::get(pfx.to_vec(), Some(first_created(pfx))),
        ])
        .or_else([
            TxnOp::get(key.clone(), None),
            TxnOp::get(pfx.to_vec(), Some(first_created(pfx))),
        ]);
    let r = c.txn(t).await?;
    let rev = r.header.as_ref().map(|h| h.revision).unwrap_or_default();
    let my_rev = if r.succeeded {
        rev
    } else {
        match r.responses.first().and_then(|o| o.response.as_ref()) {
            Some(Response::ResponseRange(g)) => {
                g.kvs.first().map(|kv| kv.create_revision).unwrap_or(rev)
            }
            _ => rev,
        }
    };
    let mine = mvccpb::KeyValue {
        key: key.clone(),
        value: value.to_vec(),
        create_revision: my_rev,
        lease,
        ..Default::default()
    };
    // Wait for every older key to go.
    let mut waited = false;
    loop {
        let older = c
            .get(
                pfx.to_vec(),
                Some(
                    GetOptions::new()
                        .with_range(print::prefix_end(pfx))
                        .with_max_create_revision(my_rev - 1)
                        .with_sort(SortTarget::Create, SortOrder::Descend)
                        .with_limit(1),
                ),
            )
            .await?;
        let Some(last) = older.kvs.first() else {
            let at = if waited { header_rev(&older) } else { rev };
            return Ok((mine, at));
        };
        waited = true;
        let from = older
            .header
            .as_ref()
            .map(|h| h.revision)
            .unwrap_or_default()
            + 1;
        let (_w, mut s) = c
            .watch(
                last.key.clone(),
                Some(WatchOptions::new().with_start_revision(from)),
            )
            .await?;
        'wait: loop {
            match s.message().await? {
                None => break 'wait,
                Some(r) => {
                    if r.canceled || r.compact_revision != 0 {
                        break 'wait;
                    }
                    if r.events
                        .iter()
                        .any(|e| e.r#type == mvccpb::event::EventType::Delete as i32)
                    {
                        break 'wait;
                    }
                }
            }
        }
    }
}

fn header_rev(r: &ferrocd_net::pb::etcdserverpb::RangeResponse) -> i64 {
    r.header.as_ref().map(|h| h.revision).unwrap_or_default()
}

async fn release(c: &Client, s: &Session, key: &[u8]) {
    let _ = c.delete(key.to_vec(), None).await;
    let _ = c.lease_revoke(s.lease).await;
}

/// Until SIGINT or SIGTERM.
async fn until_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// `lock`.
pub async fn lock(ctx: &Ctx, a: LockArgs) -> R {
    let Some((name, cmd)) = a.args.split_first() else {
        return Err(Fail::args(
            "lock takes a lock name argument and an optional command to execute",
        ));
    };
    let cmd: Vec<String> = match cmd.first().map(String::as_str) {
        Some("--") => cmd[1..].to_vec(),
        _ => cmd.to_vec(),
    };
    let c = ctx.client().await?;
    let s = session(&c, a.ttl).await?;
    let pfx = format!("{name}/").into_bytes();
    let (kv, rev) = acquire(&c, &pfx, s.lease, b"").await?;
    if cmd.is_empty() {
        out(&format!(
            "{}\n{}\n",
            print::raw(&kv.key, ctx.g.hex),
            print::raw(&kv.value, ctx.g.hex)
        ));
        until_signal().await;
        release(&c, &s, &kv.key).await;
        return Ok(());
    }
    // As etcdctl: the command learns the lock's key and revision.
    let key_env = String::from_utf8_lossy(&kv.key).into_owned();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&cmd[0])
            .args(&cmd[1..])
            .env("ETCD_LOCK_KEY", key_env)
            .env("ETCD_LOCK_REV", rev.to_string())
            .status()
    })
    .await
    .map_err(|e| Fail::err(e.to_string()))?;
    release(&c, &s, &kv.key).await;
    match status {
        Ok(st) if st.success() => Ok(()),
        Ok(st) => Err(Fail::new(st.code().unwrap_or(1), "")),
        Err(e) => Err(Fail::err(e.to_string())),
    }
}

/// `elect`.
pub async fn elect(ctx: &Ctx, a: ElectArgs) -> R {
    if a.args.is_empty() || a.args.len() > 2 {
        return Err(Fail::args(
            "elect takes one election name argument and an optional proposal argument",
        ));
    }
    let pfx = format!("{}/", a.args[0]).into_bytes();
    let c = ctx.client().await?;
    if a.listen {
        return observe(ctx, &c, &pfx).await;
    }
    let Some(proposal) = a.args.get(1) else {
        return Err(Fail::args("no proposal argument but -l not set"));
    };
    let s = session(&c, a.ttl).await?;
    let (kv, _) = acquire(&c, &pfx, s.lease, proposal.as_bytes()).await?;
    out(&format!(
        "{}\n{}\n",
        print::raw(&kv.key, ctx.g.hex),
        print::raw(&kv.value, ctx.g.hex)
    ));
    until_signal().await;
    release(&c, &s, &kv.key).await;
    Ok(())
}

/// `elect -l`: print the leader (key and value) whenever it changes.
async fn observe(ctx: &Ctx, c: &Client, pfx: &[u8]) -> R {
    let mut last: Option<(Vec<u8>, Vec<u8>)> = None;
    loop {
        let r = c.get(pfx.to_vec(), Some(first_created(pfx))).await?;
        if let Some(kv) = r.kvs.first() {
            let now = (kv.key.clone(), kv.value.clone());
            if last.as_ref() != Some(&now) {
                out(&format!(
                    "{}\n{}\n",
                    print::raw(&kv.key, ctx.g.hex),
                    print::raw(&kv.value, ctx.g.hex)
                ));
                last = Some(now);
            }
        }
        let from = r.header.as_ref().map(|h| h.revision).unwrap_or_default() + 1;
        let (_w, mut s) = c
            .watch(
                pfx.to_vec(),
                Some(WatchOptions::new().with_prefix().with_start_revision(from)),
            )
            .await?;
        loop {
            tokio::select! {
                m = s.message() => match m? {
                    None => return Err(Fail::err("watch closed")),
                    Some(r) if !r.events.is_empty() => break,
                    Some(r) if r.canceled => return Err(Fail::err(r.cancel_reason)),
                    Some(_) => {}
                },
                _ = until_signal() => return Ok(()),
            }
        }
    }
}
