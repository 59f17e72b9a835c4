//! `make-mirror [options] <destination>`: etcdctl 3.5's mirror of the
//! source cluster's keys (all, or `--prefix`) into another cluster.
//!
//! As etcd's mirror syncer: the keys as of the source's current revision
//! are read in pages of 1000 and put one by one at the destination (under
//! `--dest-prefix`, which replaces the first `--prefix` in each key;
//! `--no-dest-prefix` strips it; without either they keep their names),
//! then a watch from the next revision replays every change, one
//! transaction per source revision (split at `--max-txn-ops` operations,
//! etcdctl 3.6's flag; 3.5 has none and never splits). Leases are not
//! carried. Every 30 s the number of keys mirrored so far is printed on a
//! line of its own, as etcdctl does. It runs until interrupted or until
//! the watch fails: a compacted revision is `Error: etcdserver: mvcc:
//! required revision has been compacted` (exit 1).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Args;
use ferrocd_net::client::{Client, GetOptions, Txn, TxnOp, WatchOptions};
use ferrocd_net::pb::mvccpb;

use crate::error::{Fail, R};
use crate::{Ctx, out};

/// etcd's mirror syncer page size.
const BATCH: i64 = 1000;
/// How often etcdctl prints the count.
const REPORT_EVERY: Duration = Duration::from_secs(30);

/// `make-mirror`.
#[derive(Debug, Args)]
pub struct MirrorArgs {
    /// <destination>
    pub args: Vec<String>,
    /// Key-value prefix to mirror
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// destination prefix to mirror a prefix to a different prefix in the destination cluster
    #[arg(long = "dest-prefix", default_value = "")]
    pub dest_prefix: String,
    /// mirror key-values to the root of the destination cluster
    #[arg(long = "no-dest-prefix")]
    pub no_dest_prefix: bool,
    /// Verify certificates of TLS enabled secure servers using this CA bundle
    #[arg(long = "dest-cacert")]
    pub dest_cacert: Option<String>,
    /// Identify secure client using this TLS certificate file for the destination cluster
    #[arg(long = "dest-cert")]
    pub dest_cert: Option<String>,
    /// Identify secure client using this TLS key file
    #[arg(long = "dest-key")]
    pub dest_key: Option<String>,
    /// Disable transport security for client connections
    #[arg(long = "dest-insecure-transport", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub dest_insecure_transport: bool,
    /// Destination username[:password] for authentication (prompt if password is not supplied)
    #[arg(long = "dest-user")]
    pub dest_user: Option<String>,
    /// Destination password for authentication (if this option is used, --user option shouldn't include password)
    #[arg(long = "dest-password")]
    pub dest_password: Option<String>,
    /// Maximum number of operations permitted in a transaction during syncing updates (etcdctl 3.6)
    #[arg(long = "max-txn-ops", default_value_t = 128)]
    pub max_txn_ops: usize,
}

/// The key's name at the destination: the first `from` replaced by `to`
/// (Go's `strings.Replace(k, from, to, 1)`; an empty `from` puts `to` in
/// front).
fn rename(key: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    if from == to {
        return key.to_vec();
    }
    let at = if from.is_empty() {
        Some(0)
    } else {
        key.windows(from.len()).position(|w| w == from)
    };
    match at {
        Some(i) => [&key[..i], to, &key[i + from.len()..]].concat(),
        None => key.to_vec(),
    }
}

/// The end of the range of keys starting with `p` (etcd's
/// `GetPrefixRangeEnd`): `p` with its last byte below 0xff incremented
/// and the rest cut; "\0" (to the end) when every byte is 0xff.
fn prefix_end(p: &[u8]) -> Vec<u8> {
    match p.iter().rposition(|&b| b < 0xff) {
        Some(i) => {
            let mut end = p[..=i].to_vec();
            end[i] += 1;
            end
        }
        None => vec![0],
    }
}

/// One transaction per source revision: the events of a watch response
/// cut where the revision changes, or where a batch reaches `max` ops.
fn batches(events: &[mvccpb::Event], max: usize) -> Vec<&[mvccpb::Event]> {
    let rev = |e: &mvccpb::Event| e.kv.as_ref().map_or(0, |kv| kv.mod_revision);
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=events.len() {
        let cut =
            i == events.len() || rev(&events[i]) != rev(&events[start]) || i - start >= max.max(1);
        if cut {
            out.push(&events[start..i]);
            start = i;
        }
    }
    out
}

/// The destination client: `<destination>` with the global dial and
/// command timeouts and the `--dest-*` TLS and auth flags.
async fn destination(ctx: &Ctx, a: &MirrorArgs) -> R<Client> {
    let mut g = ctx.g.clone();
    g.endpoints = vec![a.args[0].clone()];
    g.cacert = a.dest_cacert.clone();
    g.cert = a.dest_cert.clone();
    g.key = a.dest_key.clone();
    g.insecure_transport = a.dest_insecure_transport;
    g.insecure_skip_tls_verify = false;
    g.user = a.dest_user.clone();
    g.password = a.dest_password.clone();
    let dctx = Ctx { g, fmt: ctx.fmt };
    dctx.client().await
}

/// `make-mirror`.
pub async fn make_mirror(ctx: &Ctx, a: MirrorArgs) -> R {
    if a.args.len() != 1 {
        return Err(Fail::args("make-mirror takes one destination argument"));
    }
    if a.no_dest_prefix && !a.dest_prefix.is_empty() {
        return Err(Fail::args(
            "`--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one",
        ));
    }
    let dc = destination(ctx, &a).await?;
    let c = ctx.client().await?;
    let from = a.prefix.as_bytes().to_vec();
    let to = if a.no_dest_prefix {
        Vec::new()
    } else if a.dest_prefix.is_empty() {
        from.clone()
    } else {
        a.dest_prefix.as_bytes().to_vec()
    };
    let total = Arc::new(AtomicU64::new(0));
    let reporter = {
        let total = total.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REPORT_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                out(&format!("{}\n", total.load(Ordering::Relaxed)));
            }
        })
    };
    let r = mirror(&c, &dc, &from, &to, a.max_txn_ops, &total).await;
    reporter.abort();
    r
}

/// Initial sync, then the updates, until the watch fails.
async fn mirror(
    c: &Client,
    dc: &Client,
    from: &[u8],
    to: &[u8],
    max_ops: usize,
    total: &AtomicU64,
) -> R {
    // etcd's syncer takes the revision of a one-key read.
    let rev = c.get("foo", None).await?.header.map_or(0, |h| h.revision);
    // The whole key space from "\0" on, or the prefix's range (its end
    // fixed: later pages start past the prefix itself).
    let (mut key, scope) = if from.is_empty() {
        (vec![0u8], GetOptions::new().with_from_key())
    } else {
        (
            from.to_vec(),
            GetOptions::new().with_range(prefix_end(from)),
        )
    };
    loop {
        let page = c
            .get(
                key.clone(),
                Some(scope.clone().with_limit(BATCH).with_revision(rev)),
            )
            .await?;
        for kv in &page.kvs {
            dc.put(rename(&kv.key, from, to), kv.value.clone(), None)
                .await?;
            total.fetch_add(1, Ordering::Relaxed);
        }
        match page.kvs.last() {
            Some(last) if page.more => {
                key = last.key.clone();
                key.push(0);
            }
            _ => break,
        }
    }
    let (wkey, wopts) = if from.is_empty() {
        (vec![0u8], WatchOptions::new().with_from_key())
    } else {
        (from.to_vec(), WatchOptions::new().with_prefix())
    };
    let mut w = c
        .watch_resuming(wkey, Some(wopts.with_start_revision(rev + 1)))
        .await?;
    loop {
        let r = w.message().await?;
        if r.compact_revision != 0 {
            return Err(Fail::err(
                "etcdserver: mvcc: required revision has been compacted",
            ));
        }
        if r.canceled {
            return Err(Fail::err(if r.cancel_reason.is_empty() {
                "watch canceled".to_string()
            } else {
                r.cancel_reason
            }));
        }
        for batch in batches(&r.events, max_ops) {
            let ops: Vec<TxnOp> = batch
                .iter()
                .filter_map(|ev| {
                    let kv = ev.kv.as_ref()?;
                    let k = rename(&kv.key, from, to);
                    Some(if ev.r#type == mvccpb::event::EventType::Delete as i32 {
                        TxnOp::delete(k, None)
                    } else {
                        TxnOp::put(k, kv.value.clone(), None)
                    })
                })
                .collect();
            let n = ops.len() as u64;
            dc.txn(Txn::new().and_then(ops)).await?;
            total.fetch_add(n, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_replaces_the_first_occurrence() {
        assert_eq!(rename(b"/a/x", b"/a/", b"/b/"), b"/b/x");
        assert_eq!(rename(b"/a/x", b"/a/", b""), b"x");
        assert_eq!(rename(b"k/a/", b"/a/", b"/b/"), b"k/b/");
        assert_eq!(rename(b"x", b"", b"/m/"), b"/m/x");
        assert_eq!(rename(b"/a/x", b"/a/", b"/a/"), b"/a/x");
    }

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/a/"), b"/a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
    }

    fn ev(rev: i64) -> mvccpb::Event {
        mvccpb::Event {
            r#type: 0,
            kv: Some(mvccpb::KeyValue {
                mod_revision: rev,
                ..Default::default()
            }),
            prev_kv: None,
        }
    }

    #[test]
    fn one_txn_per_revision_split_at_max() {
        let evs = [ev(5), ev(5), ev(6), ev(7), ev(7), ev(7)];
        let sizes = |max| {
            batches(&evs, max)
                .iter()
                .map(|b| b.len())
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes(128), [2, 1, 3]);
        assert_eq!(sizes(2), [2, 1, 2, 1]);
        assert!(batches(&[], 128).is_empty());
    }
}
