//! `ferrobench range`: one Range RPC per request over a key space written
//! once before the run (not measured): request `i` reads `--keys-per-range`
//! keys from key `i mod key-space`, linearizable or serializable.

use anyhow::bail;
use ferrocd_net::client::Client;
use ferrocd_net::fast::methods::Range;
use ferrocd_net::pb::etcdserverpb::RangeRequest;

use crate::cli::{Consistency, RangeArgs};
use crate::conn;
use crate::driver;
use crate::exec::{execute, key, prefill};

struct Reader {
    conn: Client,
    key_size: usize,
    key_space: u64,
    keys: u64,
    serializable: bool,
}

impl driver::Client for Reader {
    fn call(
        &mut self,
        i: u64,
    ) -> impl std::future::Future<Output = Result<(), tonic::Status>> + Send {
        let first = i % self.key_space;
        let req = RangeRequest {
            key: key("", first, self.key_size),
            range_end: if self.keys > 1 {
                key("", first + self.keys, self.key_size)
            } else {
                Vec::new()
            },
            limit: if self.keys > 1 { self.keys as i64 } else { 0 },
            serializable: self.serializable,
            ..Default::default()
        };
        let conn = self.conn.clone();
        async move {
            conn.call::<Range>(req)
                .await
                .map(|_| ())
                .map_err(conn::status)
        }
    }
}

pub(crate) fn run(args: &RangeArgs) -> anyhow::Result<()> {
    let run = &args.run;
    let key_size = args.key_size as usize;
    let key_space = args.key_space.max(1);
    if key_size < 20 && key_space + args.keys_per_range > 10u64.pow(key_size as u32) {
        bail!("--key-space {key_space} does not fit in {key_size}-byte decimal keys");
    }
    let workload = match (args.consistency, args.keys_per_range > 1) {
        (Consistency::L, false) => "range-linearizable",
        (Consistency::S, false) => "range-serializable",
        (Consistency::L, true) => "range-n-linearizable",
        (Consistency::S, true) => "range-n-serializable",
    };
    let params = vec![
        ("key_size", args.key_size.into()),
        ("val_size", args.val_size.into()),
        ("key_space", key_space.into()),
        ("keys_per_range", args.keys_per_range.into()),
    ];
    let clients = run.clients as usize;
    let val_size = args.val_size as usize;
    let (keys, serializable) = (
        args.keys_per_range.max(1),
        args.consistency == Consistency::S,
    );
    execute(run, workload, params, |conns| async move {
        prefill(
            &conns[0],
            key_space,
            |n| key("", n, key_size),
            |_| vec![b'v'; val_size],
        )
        .await?;
        Ok((0..clients)
            .map(|c| Reader {
                conn: conns[c % conns.len()].clone(),
                key_size,
                key_space,
                keys,
                serializable,
            })
            .collect())
    })
}
