//! A member's identity and state survive a restart on the same data dir:
//! cluster id, member id, name and URLs (`endpoint status`, MemberList),
//! the revision, the keys, and a granted lease with its attached key and a
//! remaining TTL. Checked after a graceful stop (SIGTERM) and again after
//! `kill -9`.
//!
//! What etcd 3.5.1 does and this test therefore allows: SIGTERM ends the
//! process either with exit code 0 or by the signal itself (etcd re-raises
//! it after cleaning up); a restarted leader renews every lease, so the
//! remaining TTL after a restart is anywhere in `(0, granted]`.

#[path = "../common/mod.rs"]
mod common;

use std::os::unix::process::ExitStatusExt;

use common::{Server, tempdir};
use ferrocd_net::pb::etcdserverpb::MemberListRequest;
use ferrocd_net::pb::etcdserverpb::cluster_client::ClusterClient;
use serde_json::{Value, json};

/// What must be the same before and after a restart.
#[derive(Debug, PartialEq)]
struct Identity {
    cluster_id: u64,
    member_id: u64,
    revision: i64,
    /// (id, name, peer URLs, client URLs) of every member, over gRPC.
    members: Vec<(u64, String, Vec<String>, Vec<String>)>,
    /// `get "" --from-key` as JSON kvs.
    kvs: Value,
}

fn identity(s: &Server) -> Identity {
    let j = s.ctl(&["endpoint", "status", "-w", "json"]).json();
    let h = &j[0]["Status"]["header"];
    let cluster_id = h["cluster_id"].as_u64().expect("cluster_id");
    let member_id = h["member_id"].as_u64().expect("member_id");
    let revision = h["revision"].as_i64().expect("revision");
    assert!(cluster_id != 0 && member_id != 0, "{j}");
    assert_eq!(j[0]["Status"]["leader"].as_u64(), Some(member_id), "{j}");

    let members = members(s);
    let kvs = s.ctl(&["get", "", "--from-key", "-w", "json"]).json()["kvs"].clone();
    Identity {
        cluster_id,
        member_id,
        revision,
        members,
        kvs,
    }
}

fn members(s: &Server) -> Vec<(u64, String, Vec<String>, Vec<String>)> {
    let endpoint = s.endpoint();
    // A runtime of its own on a thread of its own: this test is synchronous.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let ch = common::connect(&endpoint).await;
            let mut cluster = ClusterClient::new(ch);
            let call = cluster.member_list(MemberListRequest {
                linearizable: false,
            });
            let resp = tokio::time::timeout(std::time::Duration::from_secs(10), call)
                .await
                .expect("member list in time")
                .expect("member list")
                .into_inner();
            resp.members
                .into_iter()
                .map(|m| (m.id, m.name, m.peer_ur_ls, m.client_ur_ls))
                .collect()
        })
    })
    .join()
    .expect("member list thread")
}

/// Checks the lease: granted TTL, a remaining TTL in `(0, granted]`, and
/// its attached key.
#[track_caller]
fn check_lease(s: &Server, id: &str, id_num: i64) {
    let j = s
        .ctl(&["lease", "timetolive", id, "--keys", "-w", "json"])
        .json();
    assert_eq!(j["id"], json!(id_num), "{j}");
    assert_eq!(j["granted-ttl"], json!(600), "{j}");
    let ttl = j["ttl"].as_i64().expect("ttl");
    assert!(ttl > 0 && ttl <= 600, "remaining TTL {ttl}: {j}");
    // "bGVhc2Vk" is base64 of "leased".
    assert_eq!(j["keys"], json!(["bGVhc2Vk"]), "{j}");
    let list = s.ctl(&["lease", "list"]).ok().to_string();
    assert!(list.lines().any(|l| l == id), "{list}");
}

#[test]
fn identity_revision_and_lease_survive_restarts() {
    let dir = tempdir();
    let mut s = Server::start(&dir.path().join("data"));
    for i in 0..5 {
        s.ctl(&["put", &format!("k{i}"), &format!("v{i}")]).ok();
    }
    s.ctl(&["del", "k0"]).ok();
    let out = s.ctl(&["lease", "grant", "600"]).ok().to_string();
    let id = out
        .strip_prefix("lease ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("lease grant said {out:?}"))
        .to_string();
    let id_num = i64::from_str_radix(&id, 16).expect("hex lease id");
    s.ctl(&["put", "--lease", &id, "leased", "x"]).ok();
    check_lease(&s, &id, id_num);

    let before = identity(&s);
    assert_eq!(before.revision, 8, "5 puts, 1 delete, 1 leased put");
    assert_eq!(before.members.len(), 1);
    assert_eq!(before.members[0].0, before.member_id);
    assert_eq!(before.members[0].1, common::NAME);
    assert_eq!(before.members[0].2, [s.peer_url()]);
    assert_eq!(before.members[0].3, [s.client_url()]);
    assert_eq!(
        before.kvs.as_array().map(Vec::len),
        Some(5),
        "{:?}",
        before.kvs
    );

    // Graceful stop.
    let status = s.terminate().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        status.success() || status.signal() == Some(libc::SIGTERM),
        "SIGTERM ended the server with {status}"
    );
    s.restart();
    let after = identity(&s);
    assert_eq!(after, before, "state changed across a SIGTERM restart");
    check_lease(&s, &id, id_num);

    // The next write continues from the same revision.
    let j = s.ctl(&["put", "next", "1", "-w", "json"]).json();
    assert_eq!(j["header"]["revision"], json!(before.revision + 1));

    // And once more after kill -9.
    let before = identity(&s);
    s.kill();
    s.restart();
    let after = identity(&s);
    assert_eq!(after, before, "state changed across a kill -9 restart");
    check_lease(&s, &id, id_num);
}
