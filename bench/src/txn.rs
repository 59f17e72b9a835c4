//! `ferrobench txn`: compare-and-swap. Request `i` updates key
//! `i mod key-space` with a txn guarded on the mod revision the client
//! last saw for it (`mod_revision == seen → put, else get`), the way
//! Kubernetes updates an object; a lost race refreshes the client's view
//! from the txn's `get` and counts as a completed request. The fraction of
//! swaps that won is printed on stderr.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ferrocd_net::client::{Client, Compare, CompareOp, Txn, TxnOp};
use ferrocd_net::pb::etcdserverpb::TxnResponse;
use ferrocd_net::pb::etcdserverpb::response_op::Response;

use crate::cli::TxnArgs;
use crate::conn;
use crate::driver;
use crate::exec::{execute, key, prefill};

#[derive(Default)]
pub(crate) struct Tally {
    pub won: AtomicU64,
    pub lost: AtomicU64,
}

struct Swapper {
    conn: Client,
    key_size: usize,
    key_space: u64,
    value: Vec<u8>,
    /// The mod revision last seen per key (prefilled keys start at 0:
    /// the first swap loses and learns the revision).
    seen: Arc<std::sync::Mutex<HashMap<u64, i64>>>,
    tally: Arc<Tally>,
}

impl driver::Client for Swapper {
    fn call(
        &mut self,
        i: u64,
    ) -> impl std::future::Future<Output = Result<(), tonic::Status>> + Send {
        let n = i % self.key_space;
        let k = key("", n, self.key_size);
        let rev = self
            .seen
            .lock()
            .expect("seen")
            .get(&n)
            .copied()
            .unwrap_or(0);
        let txn = Txn::new()
            .when([Compare::mod_revision(k.clone(), CompareOp::Equal, rev)])
            .and_then([TxnOp::put(k.clone(), self.value.clone(), None)])
            .or_else([TxnOp::get(k, None)]);
        let (conn, seen, tally) = (self.conn.clone(), self.seen.clone(), self.tally.clone());
        async move {
            let r = conn.txn(txn).await.map_err(conn::status)?;
            let counter = if r.succeeded { &tally.won } else { &tally.lost };
            counter.fetch_add(1, Ordering::Relaxed);
            let new = seen_after(&r);
            seen.lock().expect("seen").insert(n, new);
            Ok(())
        }
    }
}

/// The mod revision a compare-and-swap txn leaves the client knowing: the
/// txn's own revision when it won, else the key's current one from the
/// `get` of the failure branch (0 when the key is gone).
pub(crate) fn seen_after(r: &TxnResponse) -> i64 {
    if r.succeeded {
        return r.header.as_ref().map_or(0, |h| h.revision);
    }
    match r.responses.first().and_then(|o| o.response.as_ref()) {
        Some(Response::ResponseRange(rr)) => rr.kvs.first().map_or(0, |kv| kv.mod_revision),
        _ => 0,
    }
}

pub(crate) fn run(args: &TxnArgs) -> anyhow::Result<()> {
    let run = &args.run;
    let key_size = args.keys.key_size as usize;
    let key_space = args.keys.key_space.max(1);
    let params = vec![
        ("key_size", args.keys.key_size.into()),
        ("val_size", args.keys.val_size.into()),
        ("key_space", key_space.into()),
    ];
    let clients = run.clients as usize;
    let value = vec![b'v'; args.keys.val_size as usize];
    let tally = Arc::new(Tally::default());
    let t = tally.clone();
    let r = execute(run, "txn-cas", params, |conns| async move {
        let v = value.clone();
        prefill(
            &conns[0],
            key_space,
            |n| key("", n, key_size),
            |_| v.clone(),
        )
        .await?;
        // Learn every key's revision before the measured run.
        let seen = Arc::new(std::sync::Mutex::new(HashMap::new()));
        let all = conns[0]
            .get(
                key("", 0, key_size),
                Some(
                    ferrocd_net::client::GetOptions::new()
                        .with_from_key()
                        .with_keys_only(),
                ),
            )
            .await?;
        for kv in all.kvs {
            if let Some(n) = std::str::from_utf8(&kv.key)
                .ok()
                .and_then(|s| s.parse().ok())
            {
                seen.lock().expect("seen").insert(n, kv.mod_revision);
            }
        }
        Ok((0..clients)
            .map(|c| Swapper {
                conn: conns[c % conns.len()].clone(),
                key_size,
                key_space,
                value: value.clone(),
                seen: seen.clone(),
                tally: t.clone(),
            })
            .collect())
    });
    let (won, lost) = (
        tally.won.load(Ordering::Relaxed),
        tally.lost.load(Ordering::Relaxed),
    );
    if !run.quiet {
        eprintln!("txn-cas: {won} swaps won, {lost} lost a race");
    }
    r
}
