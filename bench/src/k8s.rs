//! `ferrobench k8s`: a Kubernetes-like control-plane mix over `--objects`
//! objects of 1–10 KiB under `/registry/<kind>/<namespace>/<name>` (five
//! kinds, `--namespaces` namespaces), with one watch per kind prefix open
//! for the whole run (as API servers keep them). Request `i` (chosen by a
//! hash of `i`, repeatable):
//!
//! - 40 %: get one object (linearizable);
//! - 35 %: update one object as `GuaranteedUpdate` does: a txn guarded on
//!   the mod revision last seen (`== seen → put, else get`);
//! - 15 %: one page of a list: a range over the kind's prefix with
//!   `--page-size` as limit, from the start or from a continuation key;
//! - 10 %: create (txn `create_revision == 0 → put`) or delete an object
//!   outside the prefilled set.
//!
//! Latencies of all four go into one histogram; the counts per kind of
//! request and the watch events seen are printed on stderr.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ferrocd_net::client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, Txn, TxnOp, WatchOptions,
};

use crate::cli::K8sArgs;
use crate::conn;
use crate::driver;
use crate::exec::execute;
use crate::mixed::mix;
use crate::txn::seen_after;

const KINDS: [&str; 5] = [
    "pods",
    "configmaps",
    "secrets",
    "services",
    "endpointslices",
];

fn object_key(n: u64, namespaces: u64) -> Vec<u8> {
    let kind = KINDS[(n % KINDS.len() as u64) as usize];
    format!("/registry/{kind}/ns-{}/obj-{n:08}", n % namespaces).into_bytes()
}

/// 1–10 KiB, fixed per object.
fn object_value(n: u64, generation: u64) -> Vec<u8> {
    let size = 1024 + (mix(n) % (9 * 1024)) as usize;
    let mut v = format!("{{\"gen\":{generation},\"pad\":\"").into_bytes();
    v.resize(size - 2, b'x');
    v.extend_from_slice(b"\"}");
    v
}

#[derive(Default)]
struct Counts {
    get: AtomicU64,
    update: AtomicU64,
    conflict: AtomicU64,
    list: AtomicU64,
    churn: AtomicU64,
}

struct Op {
    conn: Client,
    objects: u64,
    namespaces: u64,
    page: i64,
    seen: Arc<std::sync::Mutex<HashMap<u64, i64>>>,
    counts: Arc<Counts>,
}

impl driver::Client for Op {
    fn call(
        &mut self,
        i: u64,
    ) -> impl std::future::Future<Output = Result<(), tonic::Status>> + Send {
        let h = mix(i);
        let pick = h % 100;
        let n = (h >> 8) % self.objects;
        let (conn, seen, counts) = (self.conn.clone(), self.seen.clone(), self.counts.clone());
        let (ns, page) = (self.namespaces, self.page);
        async move {
            match pick {
                0..40 => {
                    counts.get.fetch_add(1, Ordering::Relaxed);
                    conn.get(object_key(n, ns), None).await.map(|_| ())
                }
                40..75 => {
                    counts.update.fetch_add(1, Ordering::Relaxed);
                    let k = object_key(n, ns);
                    let rev = seen.lock().expect("seen").get(&n).copied().unwrap_or(0);
                    let txn = Txn::new()
                        .when([Compare::mod_revision(k.clone(), CompareOp::Equal, rev)])
                        .and_then([TxnOp::put(k.clone(), object_value(n, i), None)])
                        .or_else([TxnOp::get(k, None)]);
                    conn.txn(txn).await.map(|r| {
                        if !r.succeeded {
                            counts.conflict.fetch_add(1, Ordering::Relaxed);
                        }
                        seen.lock().expect("seen").insert(n, seen_after(&r));
                    })
                }
                75..90 => {
                    counts.list.fetch_add(1, Ordering::Relaxed);
                    let kind = KINDS[(n % KINDS.len() as u64) as usize];
                    let prefix = format!("/registry/{kind}/").into_bytes();
                    // First page, or a continuation after some object.
                    let from = if h & 1 == 0 {
                        prefix.clone()
                    } else {
                        let mut k = object_key(n, ns);
                        k.push(0);
                        k
                    };
                    let end = ferrocd_net::client::prefix_end(&prefix);
                    conn.get(
                        from,
                        Some(GetOptions::new().with_range(end).with_limit(page)),
                    )
                    .await
                    .map(|_| ())
                }
                _ => {
                    counts.churn.fetch_add(1, Ordering::Relaxed);
                    let k = format!("/registry/pods/ns-0/churn-{:06}", n % 1000).into_bytes();
                    if h & 2 == 0 {
                        let txn = Txn::new()
                            .when([Compare::create_revision(k.clone(), CompareOp::Equal, 0)])
                            .and_then([TxnOp::put(k, object_value(n, 0), None)]);
                        conn.txn(txn).await.map(|_| ())
                    } else {
                        conn.delete(k, Some(DeleteOptions::new())).await.map(|_| ())
                    }
                }
            }
            .map_err(conn::status)
        }
    }
}

pub(crate) fn run(args: &K8sArgs) -> anyhow::Result<()> {
    let run = &args.run;
    let objects = args.objects.max(KINDS.len() as u64);
    let namespaces = args.namespaces.max(1);
    let params = vec![
        ("objects", objects.into()),
        ("namespaces", namespaces.into()),
        ("page_size", args.page_size.into()),
    ];
    let clients = run.clients as usize;
    let page = args.page_size as i64;
    let counts = Arc::new(Counts::default());
    let events = Arc::new(AtomicU64::new(0));
    let (c2, e2) = (counts.clone(), events.clone());
    let r = execute(run, "k8s", params, |conns| async move {
        crate::exec::prefill(
            &conns[0],
            objects,
            |n| object_key(n, namespaces),
            |n| object_value(n, 0),
        )
        .await?;
        let seen = Arc::new(std::sync::Mutex::new(HashMap::new()));
        for kind in KINDS {
            let r = conns[0]
                .get(
                    format!("/registry/{kind}/"),
                    Some(GetOptions::new().with_prefix().with_keys_only()),
                )
                .await?;
            for kv in r.kvs {
                let name = String::from_utf8_lossy(&kv.key).into_owned();
                if let Some(n) = name.rsplit("obj-").next().and_then(|s| s.parse().ok()) {
                    seen.lock().expect("seen").insert(n, kv.mod_revision);
                }
            }
            // One watch per kind, drained for the whole run.
            let (w, mut s) = conns[0]
                .watch(
                    format!("/registry/{kind}/"),
                    Some(WatchOptions::new().with_prefix()),
                )
                .await?;
            let e = e2.clone();
            tokio::spawn(async move {
                let _keep = w;
                while let Ok(Some(r)) = s.message().await {
                    e.fetch_add(r.events.len() as u64, Ordering::Relaxed);
                }
            });
        }
        Ok((0..clients)
            .map(|c| Op {
                conn: conns[c % conns.len()].clone(),
                objects,
                namespaces,
                page,
                seen: seen.clone(),
                counts: c2.clone(),
            })
            .collect())
    });
    if !run.quiet {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        eprintln!(
            "k8s: {} gets, {} updates ({} lost a race), {} list pages, {} creates/deletes, {} watch events",
            l(&counts.get),
            l(&counts.update),
            l(&counts.conflict),
            l(&counts.list),
            l(&counts.churn),
            l(&events)
        );
    }
    r
}
