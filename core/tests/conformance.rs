//! The shared black-box conformance suite (`../shared/conformance`, real
//! clients: etcdctl, the Python `etcd3` package, the `/v3` gateway) against
//! a real `ferrocd` process: every single-node KV, watch and lease case,
//! plus the status, health, member-list, defrag and empty alarm-list
//! cases. The lock, election, auth and snapshot cases belong to later
//! issues and are filtered out here.
//!
//! The suite's expectations were recorded with Debian's etcdctl 3.4 (its
//! `-w json` field names differ from 3.5's), so `ETCDCTL` points there when
//! it is installed (`scripts/test` installs it).

#[path = "common/mod.rs"]
mod common;

const CASES: &str = "^(kv_|rev_|txn_|compact_|gateway_|watch_|lease_|endpoint_|http_|member_list|defrag|alarm_list_empty)";

#[test]
fn shared_conformance_suite_single_node() {
    let dir = common::tempdir();
    let server = common::Server::start(&dir.path().join("data"));
    let r = common::conformance(&["--filter", CASES, &server.endpoint()]);
    assert!(
        r.ok,
        "conformance: {}\n{}\n--- server log (tail):\n{}",
        r.summary,
        r.details,
        server.log_tail()
    );
    eprintln!("conformance: {}", r.summary);
}
