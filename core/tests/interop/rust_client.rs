//! The scenario with the `etcd-client` crate (tonic), reporting what it
//! saw in the same JSON as the Python and Node scripts (see `report.rs`).
//! Every call is bounded by the client's 10 s timeout, every stream read
//! by [`STEP`].

use std::path::Path;
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, Error, EventType, GetOptions,
    KeyValue, LeaseTimeToLiveOptions, PutOptions, ResponseHeader, Txn, TxnOp, TxnOpResponse,
    WatchOptions,
};
use serde_json::{Value, json};
use tokio::time::timeout;

use crate::report::{self, KEEPALIVE_SECS, LARGE, LEASE_TTL, OVER_LIMIT, TOO_LARGE, kv_meta};

/// The bound on one stream read.
const STEP: Duration = Duration::from_secs(10);

type Result<T> = std::result::Result<T, Error>;

fn rev(h: Option<&ResponseHeader>) -> i64 {
    h.map(ResponseHeader::revision).unwrap_or(-1)
}

fn meta(kv: Option<&KeyValue>) -> Value {
    kv.map(|kv| {
        kv_meta(
            kv.value_str().expect("UTF-8"),
            kv.create_revision(),
            kv.mod_revision(),
            kv.version(),
        )
    })
    .unwrap_or(Value::Null)
}

async fn get(c: &mut Client, key: &str) -> Result<Value> {
    Ok(meta(c.get(key, None).await?.kvs().first()))
}

async fn prefix(c: &mut Client, p: &str) -> Result<Value> {
    let r = c.get(p, Some(GetOptions::new().with_prefix())).await?;
    Ok(r.kvs()
        .iter()
        .map(|kv| json!([kv.key_str().expect("UTF-8"), kv.value_str().expect("UTF-8")]))
        .collect())
}

/// A gRPC status as the scripts report one: its code in gRPC's spelling
/// (`INVALID_ARGUMENT`) and its message.
fn rpc_error<T>(r: Result<T>) -> Value {
    match r {
        Ok(_) => Value::Null,
        Err(Error::GRpcStatus(s)) => {
            let mut code = String::new();
            for (i, ch) in format!("{:?}", s.code()).chars().enumerate() {
                if ch.is_uppercase() && i > 0 {
                    code.push('_');
                }
                code.push(ch.to_ascii_uppercase());
            }
            json!({"code": code, "message": s.message()})
        }
        Err(e) => json!({"code": "NOT_A_STATUS", "message": e.to_string()}),
    }
}

async fn kv(c: &mut Client) -> Result<Value> {
    let put_rev = rev(c.put("foo", "bar", None).await?.header());
    let got = get(c, "foo").await?;
    let mut put_revs = Vec::new();
    for (k, v) in [
        ("dir/a", "1"),
        ("dir/b", "2"),
        ("dir/c", "3"),
        ("dirx", "no"),
    ] {
        put_revs.push(rev(c.put(k, v, None).await?.header()));
    }
    let before = prefix(c, "dir/").await?;
    let d = c.delete("dir/b", None).await?;
    let after = prefix(c, "dir/").await?;
    let cas = || {
        Txn::new()
            .when([Compare::value("foo", CompareOp::Equal, "bar")])
            .and_then([TxnOp::put("foo", "baz", None)])
            .or_else([TxnOp::get("foo", None)])
    };
    let won = c.txn(cas()).await?;
    let lost = c.txn(cas()).await?;
    let lost_value = match lost.op_responses().first() {
        Some(TxnOpResponse::Get(g)) => g
            .kvs()
            .first()
            .map(|kv| kv.value_str().expect("UTF-8").to_string()),
        _ => None,
    };
    Ok(json!({
        "put_rev": put_rev,
        "get": got,
        "put_revs": put_revs,
        "prefix": before,
        "delete": {"deleted": d.deleted(), "revision": rev(d.header())},
        "prefix_after": after,
        "cas_won": won.succeeded(),
        "cas_lost": lost.succeeded(),
        "cas_lost_value": lost_value,
        "after_cas": get(c, "foo").await?,
    }))
}

async fn watch(c: &mut Client) -> Result<Value> {
    let mut w = c
        .watch("w/", Some(WatchOptions::new().with_prefix()))
        .await?;
    // The first answer says the watch is created: only then write.
    let created = timeout(STEP, w.message())
        .await
        .expect("watch create answered")?
        .expect("watch stream open");
    assert!(created.created(), "first watch response: {created:?}");
    let mut revs = Vec::new();
    for (key, value) in [
        ("w/1", Some("a")),
        ("w/2", Some("b")),
        ("w/1", None),
        ("x", Some("outside")),
        ("w/2", Some("c")),
        ("w/3", Some("d")),
    ] {
        let r = match value {
            Some(v) => rev(c.put(key, v, None).await?.header()),
            None => rev(c.delete(key, None::<DeleteOptions>).await?.header()),
        };
        revs.push(r);
    }
    let mut events = Vec::new();
    let deadline = Instant::now() + STEP;
    while events.len() < 5 {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(msg) = timeout(left, w.message()).await else {
            break;
        };
        let Some(resp) = msg? else { break };
        for e in resp.events() {
            let kv = e.kv().expect("event kv");
            events.push(json!({
                "type": if e.event_type() == EventType::Put { "PUT" } else { "DELETE" },
                "key": kv.key_str().expect("UTF-8"),
                "value": kv.value_str().expect("UTF-8"),
                "mod_revision": kv.mod_revision(),
            }));
        }
    }
    w.cancel(created.watch_id()).await?;
    Ok(json!({"write_revs": revs, "events": events}))
}

async fn lease(c: &mut Client) -> Result<Value> {
    let g = c.lease_grant(LEASE_TTL, None).await?;
    let id = g.id();
    let put_rev = rev(c
        .put("l/key", "v", Some(PutOptions::new().with_lease(id)))
        .await?
        .header());
    // `lease_keep_alive` sends the first keep-alive and reads its answer;
    // then one every half second on the same stream.
    let (mut keeper, mut answers) = c.lease_keep_alive(id).await?;
    let mut keepalives = 1;
    let end = Instant::now() + Duration::from_secs(KEEPALIVE_SECS);
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(500)).await;
        keeper.keep_alive().await?;
        let a = timeout(STEP, answers.message())
            .await
            .expect("keep-alive answered")?
            .expect("keep-alive stream open");
        if a.ttl() > 0 {
            keepalives += 1;
        }
    }
    let info = c
        .lease_time_to_live(id, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await?;
    let keys: Vec<String> = info
        .keys()
        .iter()
        .map(|k| String::from_utf8(k.clone()).expect("UTF-8"))
        .collect();
    let alive = get(c, "l/key").await?;
    c.lease_revoke(id).await?;
    let gone = get(c, "l/key").await?;
    let ttl_after = c.lease_time_to_live(id, None).await?.ttl();
    let rev_after = rev(c.get("l/key", None).await?.header());
    Ok(json!({
        "granted_ttl": g.ttl(),
        "put_rev": put_rev,
        "keepalives": keepalives,
        "ttl": info.ttl(),
        "granted_ttl_after": info.granted_ttl(),
        "keys": keys,
        "key_after_keepalive": alive,
        "key_after_revoke": gone,
        "ttl_after_revoke": ttl_after,
        "revision_after_revoke": rev_after,
    }))
}

async fn large(c: &mut Client) -> Result<Value> {
    let put_rev = rev(c.put("big", report::pattern(LARGE), None).await?.header());
    let back = c.get("big", None).await?;
    let value = back.kvs().first().map(KeyValue::value).unwrap_or_default();
    let too_large = rpc_error(c.put("big", report::pattern(TOO_LARGE), None).await);
    let over_limit = rpc_error(c.put("big", report::pattern(OVER_LIMIT), None).await);
    Ok(json!({
        "put_rev": put_rev,
        "len": value.len(),
        "sha256": report::sha256_hex(value),
        "too_large": too_large,
        "over_limit": over_limit,
        "revision_after": rev(c.get("big", None).await?.header()),
    }))
}

async fn snapshot(c: &mut Client, path: &Path) -> Result<Value> {
    let mut s = c.snapshot().await?;
    let mut bytes = Vec::new();
    loop {
        let msg = timeout(STEP, s.message())
            .await
            .expect("snapshot stream answered")?;
        let Some(m) = msg else { break };
        bytes.extend_from_slice(m.blob());
    }
    std::fs::write(path, &bytes).expect("write the snapshot");
    Ok(json!({"bytes": bytes.len()}))
}

/// Runs the scenario against `endpoint` (`127.0.0.1:P`), writing the
/// snapshot to `snapshot_path`; the report.
pub async fn scenario(endpoint: &str, snapshot_path: &Path) -> Value {
    let run = async {
        let opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(10));
        let mut c = Client::connect([endpoint], Some(opts)).await?;
        Ok::<_, Error>(json!({
            "client": "rust etcd-client 0.21",
            "kv": kv(&mut c).await?,
            "watch": watch(&mut c).await?,
            "lease": lease(&mut c).await?,
            "large": large(&mut c).await?,
            "snapshot": snapshot(&mut c, snapshot_path).await?,
        }))
    };
    run.await
        .unwrap_or_else(|e| panic!("etcd-client against {endpoint}: {e}"))
}
