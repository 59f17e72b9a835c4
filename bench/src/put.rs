//! `ferrobench put`: one Put RPC per request. Request `i` writes key
//! `i mod key-space` (decimal, zero-padded to `--key-size` bytes) with a
//! `--val-size` value.

use anyhow::bail;
use ferrocd_net::client::Client;
use ferrocd_net::fast::methods::Put;
use ferrocd_net::pb::etcdserverpb::PutRequest;

use crate::cli::PutArgs;
use crate::conn;
use crate::driver;
use crate::exec::{execute, key};

struct Putter {
    conn: Client,
    key_size: usize,
    key_space: u64,
    value: Vec<u8>,
}

impl driver::Client for Putter {
    fn call(
        &mut self,
        i: u64,
    ) -> impl std::future::Future<Output = Result<(), tonic::Status>> + Send {
        let req = PutRequest {
            key: key("", i % self.key_space, self.key_size),
            value: self.value.clone(),
            ..Default::default()
        };
        let conn = self.conn.clone();
        async move {
            conn.call::<Put>(req)
                .await
                .map(|_| ())
                .map_err(conn::status)
        }
    }
}

pub(crate) fn run(args: &PutArgs) -> anyhow::Result<()> {
    let run = &args.run;
    let key_size = args.key_size as usize;
    let key_space = args
        .key_space
        .unwrap_or(run.total.unwrap_or(1_000_000))
        .max(1);
    // Decimal keys of key_size digits hold 10^key_size distinct keys.
    if key_size < 20 && key_space > 10u64.pow(key_size as u32) {
        bail!("--key-space {key_space} does not fit in {key_size}-byte decimal keys");
    }
    let params = vec![
        ("key_size", args.key_size.into()),
        ("val_size", args.val_size.into()),
        ("key_space", key_space.into()),
    ];
    let clients = run.clients as usize;
    let value = vec![b'v'; args.val_size as usize];
    execute(run, "put", params, |conns| async move {
        Ok((0..clients)
            .map(|c| Putter {
                conn: conns[c % conns.len()].clone(),
                key_size,
                key_space,
                value: value.clone(),
            })
            .collect())
    })
}
