//! `ferrobench lease-churn`: one request is a lease's whole life — grant
//! (`--ttl`), put a key attached to it, revoke (which deletes the key) —
//! three RPCs, timed together.

use ferrocd_net::client::{Client, PutOptions};

use crate::cli::LeaseArgs;
use crate::conn;
use crate::driver;
use crate::exec::{execute, key};

struct Churner {
    conn: Client,
    key_size: usize,
    ttl: i64,
    value: Vec<u8>,
}

impl driver::Client for Churner {
    fn call(
        &mut self,
        i: u64,
    ) -> impl std::future::Future<Output = Result<(), tonic::Status>> + Send {
        let (conn, ttl, value) = (self.conn.clone(), self.ttl, self.value.clone());
        let k = key("lease/", i, self.key_size);
        async move {
            let id = conn.lease_grant(ttl, 0).await.map_err(conn::status)?.id;
            conn.put(k, value, Some(PutOptions::new().with_lease(id)))
                .await
                .map_err(conn::status)?;
            conn.lease_revoke(id).await.map_err(conn::status)?;
            Ok(())
        }
    }
}

pub(crate) fn run(args: &LeaseArgs) -> anyhow::Result<()> {
    let run = &args.run;
    let params = vec![
        ("key_size", args.key_size.into()),
        ("val_size", args.val_size.into()),
        ("ttl", args.ttl.into()),
    ];
    let clients = run.clients as usize;
    let (key_size, ttl) = (args.key_size as usize, args.ttl);
    let value = vec![b'v'; args.val_size as usize];
    execute(run, "lease-churn", params, |conns| async move {
        Ok((0..clients)
            .map(|c| Churner {
                conn: conns[c % conns.len()].clone(),
                key_size,
                ttl,
                value: value.clone(),
            })
            .collect())
    })
}
