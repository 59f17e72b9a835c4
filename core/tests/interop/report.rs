//! The scenario every client library runs, and the one checker for what
//! they report.
//!
//! The Python and Node scripts (`clients/`) and the Rust client
//! (`rust_client.rs`) run the same steps on a fresh single-member server
//! (revision 1) and print one JSON report:
//!
//! | section | steps | revisions |
//! |---|---|---|
//! | `kv` | put `foo`; get it; put `dir/a dir/b dir/c dirx`; range prefix `dir/`; delete `dir/b`; range again; txn `value(foo) = bar ? put foo baz : get foo` twice (wins, then loses); get `foo` | 2; –; 3–6; –; 7; –; 8, none; – |
//! | `watch` | watch prefix `w/` (created before any write); put `w/1`, put `w/2`, delete `w/1`, put `x`, put `w/2`, put `w/3`; collect 5 events | 9–14 (12 is `x`, outside) |
//! | `lease` | grant TTL 2; put `l/key` on it; keep alive for 5 s (past the TTL twice over); time-to-live with keys; get `l/key`; revoke; get `l/key`; time-to-live | 15; revoke 16 |
//! | `large` | put `big` = 1.4 MiB (under `--max-request-bytes`, 1.5 MiB); get it (sha256); put 1.8 MiB (etcd's InvalidArgument "request is too large"); put 2.5 MiB (over gRPC's limit, 1.5 MiB + 512 KiB: ResourceExhausted); revision | 17; the refused puts write nothing |
//! | `snapshot` | Maintenance.Snapshot to a file; its size | – |
//!
//! [`check`] asserts every field exactly, except the number of keep-alives
//! (at least 3) and the remaining TTL (0 to 2 s), and checks the snapshot
//! file with [`check_snapshot`]. The same expectations hold against etcd
//! 3.5.1 (the `etcd_*` tests run each client there too).

use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{common, process};

/// The lease's TTL (seconds).
pub const LEASE_TTL: i64 = 2;
/// How long the clients keep the lease alive (seconds): past the TTL.
pub const KEEPALIVE_SECS: u64 = 5;
/// 1.4 MiB: under etcd's default `--max-request-bytes` (1.5 MiB).
pub const LARGE: usize = 1_468_006;
/// 1.8 MiB: over `--max-request-bytes`, under gRPC's own limit.
pub const TOO_LARGE: usize = 1_887_436;
/// 2.5 MiB: over gRPC's limit (`--max-request-bytes` + 512 KiB).
pub const OVER_LIMIT: usize = 2_621_440;

/// The large values' bytes: every byte value, not valid UTF-8 (the
/// scripts build the same).
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + 7) % 251) as u8).collect()
}

pub fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// The scripts' argument: where to connect and write, and the sizes.
pub fn config(endpoint: &str, snapshot: &Path) -> Value {
    json!({
        "endpoint": endpoint,
        "snapshot": snapshot,
        "lease_ttl": LEASE_TTL,
        "keepalive_secs": KEEPALIVE_SECS,
        "large": LARGE,
        "too_large": TOO_LARGE,
        "over_limit": OVER_LIMIT,
    })
}

/// What a key read back as: value and the three revisions.
pub fn kv_meta(value: &str, create: i64, modified: i64, version: i64) -> Value {
    json!({"value": value, "create_revision": create, "mod_revision": modified,
           "version": version})
}

/// gRPC's message for a request over its limit, as grpc-go words it; `N`
/// is the encoded `PutRequest` (key `big`: 1 + 1 + 3 bytes, the value's
/// tag and 4-byte length: 1 + 4).
pub fn over_limit_message() -> String {
    let n = OVER_LIMIT + 10;
    let max = 1536 * 1024 + 512 * 1024;
    format!("grpc: received message larger than max ({n} vs. {max})")
}

fn section<'a>(report: &'a Value, name: &str) -> &'a Value {
    report
        .get(name)
        .unwrap_or_else(|| panic!("no `{name}` in the report: {report}"))
}

/// Checks a client's report (see the module docs); `snapshot` is the file
/// its snapshot step wrote.
#[track_caller]
pub fn check(report: &Value, snapshot: &Path) {
    let client = report["client"].as_str().unwrap_or("?");
    eprintln!("checking the report of {client}");

    assert_eq!(
        section(report, "kv"),
        &json!({
            "put_rev": 2,
            "get": kv_meta("bar", 2, 2, 1),
            "put_revs": [3, 4, 5, 6],
            "prefix": [["dir/a", "1"], ["dir/b", "2"], ["dir/c", "3"]],
            "delete": {"deleted": 1, "revision": 7},
            "prefix_after": [["dir/a", "1"], ["dir/c", "3"]],
            "cas_won": true,
            "cas_lost": false,
            "cas_lost_value": "baz",
            "after_cas": kv_meta("baz", 2, 8, 2),
        }),
        "{client}: unary calls"
    );

    let ev = |t: &str, k: &str, v: &str, rev: i64| json!({"type": t, "key": k, "value": v, "mod_revision": rev});
    assert_eq!(
        section(report, "watch"),
        &json!({
            "write_revs": [9, 10, 11, 12, 13, 14],
            "events": [
                ev("PUT", "w/1", "a", 9),
                ev("PUT", "w/2", "b", 10),
                ev("DELETE", "w/1", "", 11),
                ev("PUT", "w/2", "c", 13),
                ev("PUT", "w/3", "d", 14),
            ],
        }),
        "{client}: watch"
    );

    let lease = section(report, "lease");
    let keepalives = lease["keepalives"].as_i64().unwrap_or(0);
    assert!(
        keepalives >= 3,
        "{client}: {keepalives} keep-alives answered in {KEEPALIVE_SECS} s: {lease}"
    );
    let ttl = lease["ttl"].as_i64().unwrap_or(-1);
    assert!(
        (0..=LEASE_TTL).contains(&ttl),
        "{client}: a lease kept alive has {ttl} s left: {lease}"
    );
    assert_eq!(
        lease,
        &json!({
            "granted_ttl": LEASE_TTL,
            "put_rev": 15,
            "keepalives": keepalives,
            "ttl": ttl,
            "granted_ttl_after": LEASE_TTL,
            "keys": ["l/key"],
            "key_after_keepalive": kv_meta("v", 15, 15, 1),
            "key_after_revoke": null,
            "ttl_after_revoke": -1,
            "revision_after_revoke": 16,
        }),
        "{client}: lease"
    );

    let mut large = section(report, "large").clone();
    // Node's etcd3 also names its error class; the rest is common.
    for e in ["too_large", "over_limit"] {
        if let Some(o) = large[e].as_object_mut() {
            o.remove("class");
        }
    }
    assert_eq!(
        large,
        json!({
            "put_rev": 17,
            "len": LARGE,
            "sha256": sha256_hex(&pattern(LARGE)),
            "too_large": {"code": "INVALID_ARGUMENT",
                          "message": "etcdserver: request is too large"},
            "over_limit": {"code": "RESOURCE_EXHAUSTED", "message": over_limit_message()},
            "revision_after": 17,
        }),
        "{client}: large values"
    );

    let bytes = section(report, "snapshot")["bytes"].as_u64().unwrap_or(0);
    let status = check_snapshot(snapshot, 17);
    assert_eq!(
        bytes,
        std::fs::metadata(snapshot).map(|m| m.len()).unwrap_or(0),
        "{client}: the reported snapshot size is the file's"
    );
    // Every bucket's keys: the 16 key revisions and etcd's meta, members,
    // cluster and lease records, as etcd 3.5.1 writes them for this run.
    assert_eq!(status["totalKey"], 22, "{client}: snapshot status {status}");
}

/// Checks a snapshot file as etcd writes one: a bolt file (4 KiB pages)
/// followed by the SHA-256 of it, large enough to hold the 1.4 MiB value,
/// that etcdctl 3.5.1's `snapshot status` reads at `revision`. Returns
/// that status.
#[track_caller]
pub fn check_snapshot(path: &Path, revision: i64) -> Value {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        b.len() > LARGE && b.len() < 64 << 20,
        "snapshot {} is {} bytes",
        path.display(),
        b.len()
    );
    let (db, sum) = b.split_at(b.len() - 32);
    assert_eq!(db.len() % 4096, 0, "snapshot: not whole 4 KiB pages");
    assert_eq!(
        Sha256::digest(db).as_slice(),
        sum,
        "snapshot: the last 32 bytes are not the SHA-256 of the rest"
    );
    let out = process::run(
        std::process::Command::new(crate::etcdctl::Etcdctl::v35().bin())
            .env("ETCDCTL_API", "3")
            .args(["snapshot", "status", "-w", "json"])
            .arg(path),
        None,
        common::CTL_TIMEOUT,
    );
    let status: Value = serde_json::from_str(&out.ok("etcdctl snapshot status"))
        .unwrap_or_else(|e| panic!("snapshot status is not JSON ({e}): {}", out.text()));
    assert_eq!(status["revision"], revision, "snapshot status {status}");
    assert_eq!(
        status["totalSize"].as_u64(),
        Some(db.len() as u64),
        "snapshot status {status}"
    );
    status
}
