//! etcdctl against the server under test, output compared with what etcd
//! 3.5.1's etcdctl prints against etcd 3.5.1 (exact strings; regexes only
//! for cluster, member and lease ids), plus the streaming RPCs (watch,
//! lease keep-alive) through our own tonic clients.
//!
//! Each test starts its own single-member server on a fresh data dir, so
//! revisions are deterministic: a new member is at revision 1 and every
//! write transaction adds one. The server is chosen as `tests/common`
//! describes (`$FERROCD_TEST_SERVER`, the workspace's `ferrocd`, `$ETCD_BIN`).

#[path = "../common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Server, tempdir};
use ferrocd_net::pb::etcdserverpb::lease_client::LeaseClient;
use ferrocd_net::pb::etcdserverpb::watch_client::WatchClient;
use ferrocd_net::pb::etcdserverpb::watch_request::RequestUnion;
use ferrocd_net::pb::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseTimeToLiveRequest, PutRequest, RangeRequest,
    WatchCancelRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest, WatchResponse,
};
use ferrocd_net::pb::mvccpb::event::EventType;
use regex::Regex;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// A stream read waits at most this long.
const STEP: Duration = Duration::from_secs(5);

fn fresh() -> (tempfile::TempDir, Server) {
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    (dir, server)
}

/// Matches `text` against `pattern`; returns the groups (0 = all).
#[track_caller]
fn re(pattern: &str, text: &str) -> Vec<String> {
    let re = Regex::new(pattern).expect("regex");
    let c = re
        .captures(text)
        .unwrap_or_else(|| panic!("{text:?} does not match /{pattern}/"));
    c.iter()
        .map(|m| m.map_or(String::new(), |m| m.as_str().to_string()))
        .collect()
}

/// Checks a JSON response header (all four fields, ids non-zero) and
/// returns its revision.
#[track_caller]
fn header_rev(j: &Value) -> i64 {
    let h = &j["header"];
    assert!(
        h["cluster_id"].as_u64().unwrap_or(0) != 0,
        "cluster_id in {j}"
    );
    assert!(
        h["member_id"].as_u64().unwrap_or(0) != 0,
        "member_id in {j}"
    );
    assert!(
        h["raft_term"].as_u64().unwrap_or(0) != 0,
        "raft_term in {j}"
    );
    h["revision"]
        .as_i64()
        .unwrap_or_else(|| panic!("revision in {j}"))
}

/// The JSON object without its header, for exact comparison.
fn body(j: &Value) -> Value {
    let mut j = j.clone();
    j.as_object_mut().expect("object").remove("header");
    j
}

#[test]
fn put_get_and_json_fields() {
    let (_dir, s) = fresh();
    assert_eq!(s.ctl(&["put", "foo", "bar"]).ok(), "OK\n");
    assert_eq!(s.ctl(&["get", "foo"]).ok(), "foo\nbar\n");
    assert_eq!(s.ctl(&["get", "nope"]).ok(), "");
    assert_eq!(
        s.ctl(&["put", "foo", "bar2", "--prev-kv"]).ok(),
        "OK\nfoo\nbar\n"
    );
    assert_eq!(s.ctl(&["get", "foo", "--print-value-only"]).ok(), "bar2\n");

    let j = s.ctl(&["get", "foo", "-w", "json"]).json();
    assert_eq!(header_rev(&j), 3);
    assert_eq!(
        body(&j),
        json!({
            "kvs": [{"key": "Zm9v", "create_revision": 2, "mod_revision": 3,
                     "version": 2, "value": "YmFyMg=="}],
            "count": 1
        })
    );
    // A miss: the header only (zero values are left out).
    let j = s.ctl(&["get", "nope", "-w", "json"]).json();
    assert_eq!(header_rev(&j), 3);
    assert_eq!(body(&j), json!({}));
    // A put answers with its revision.
    let j = s.ctl(&["put", "k", "v", "-w", "json"]).json();
    assert_eq!(header_rev(&j), 4);
    assert_eq!(body(&j), json!({}));
    // Both cluster-wide ids are the same in every header.
    let a = s.ctl(&["get", "k", "-w", "json"]).json();
    assert_eq!(a["header"]["cluster_id"], j["header"]["cluster_id"]);
    assert_eq!(a["header"]["member_id"], j["header"]["member_id"]);
}

#[test]
fn get_range_options() {
    let (_dir, s) = fresh();
    for (k, v) in [("foo", "bar"), ("foo2", "x"), ("foo3", "y"), ("g", "z")] {
        assert_eq!(s.ctl(&["put", k, v]).ok(), "OK\n");
    }
    // revisions: foo 2, foo2 3, foo3 4, g 5; foo again at 6.
    assert_eq!(s.ctl(&["put", "foo", "bar2"]).ok(), "OK\n");

    assert_eq!(
        s.ctl(&["get", "foo", "--prefix", "--keys-only"]).ok(),
        "foo\n\nfoo2\n\nfoo3\n\n"
    );
    assert_eq!(
        s.ctl(&["get", "foo", "--prefix", "--limit", "2"]).ok(),
        "foo\nbar2\nfoo2\nx\n"
    );
    let j = s
        .ctl(&["get", "foo", "--prefix", "--limit", "2", "-w", "json"])
        .json();
    assert_eq!(header_rev(&j), 6);
    assert_eq!(
        body(&j),
        json!({
            "kvs": [
                {"key": "Zm9v", "create_revision": 2, "mod_revision": 6, "version": 2,
                 "value": "YmFyMg=="},
                {"key": "Zm9vMg==", "create_revision": 3, "mod_revision": 3, "version": 1,
                 "value": "eA=="}
            ],
            "more": true,
            "count": 3
        })
    );
    assert_eq!(
        s.ctl(&[
            "get",
            "foo",
            "--prefix",
            "--sort-by=MODIFY",
            "--order=DESCEND",
            "--keys-only"
        ])
        .ok(),
        "foo\n\nfoo3\n\nfoo2\n\n"
    );
    assert_eq!(
        s.ctl(&[
            "get",
            "foo",
            "--prefix",
            "--sort-by=VALUE",
            "--order=DESCEND"
        ])
        .ok(),
        "foo3\ny\nfoo2\nx\nfoo\nbar2\n"
    );
    assert_eq!(
        s.ctl(&[
            "get",
            "foo",
            "--prefix",
            "--sort-by=CREATE",
            "--print-value-only"
        ])
        .ok(),
        "bar2\nx\ny\n"
    );
    // A range [f, g) and an open range from a key.
    assert_eq!(
        s.ctl(&["get", "f", "g", "--keys-only"]).ok(),
        "foo\n\nfoo2\n\nfoo3\n\n"
    );
    assert_eq!(
        s.ctl(&["get", "foo2", "--from-key", "--keys-only"]).ok(),
        "foo2\n\nfoo3\n\ng\n\n"
    );
    // History: foo was "bar" at revision 2..5, absent at 1.
    assert_eq!(s.ctl(&["get", "foo", "--rev", "2"]).ok(), "foo\nbar\n");
    assert_eq!(s.ctl(&["get", "foo", "--rev", "5"]).ok(), "foo\nbar\n");
    assert_eq!(s.ctl(&["get", "foo", "--rev", "1"]).ok(), "");
    assert_eq!(
        s.ctl(&["get", "foo", "--prefix", "--rev", "3", "--keys-only"])
            .ok(),
        "foo\n\nfoo2\n\n"
    );
    let j = s.ctl(&["get", "foo", "--rev", "2", "-w", "json"]).json();
    // The header carries the current revision, not the one read.
    assert_eq!(header_rev(&j), 6);
    assert_eq!(j["kvs"][0]["value"], "YmFy");
    // A future revision is an error.
    let out = s.ctl(&["get", "foo", "--rev", "100"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("Error: etcdserver: mvcc: required revision is a future revision"),
        "{out:?}"
    );
}

#[test]
fn delete() {
    let (_dir, s) = fresh();
    for (k, v) in [("foo", "bar"), ("foo2", "x"), ("foo3", "y")] {
        s.ctl(&["put", k, v]).ok();
    }
    assert_eq!(s.ctl(&["del", "nope"]).ok(), "0\n");
    assert_eq!(s.ctl(&["del", "foo3", "--prev-kv"]).ok(), "1\nfoo3\ny\n");
    let j = s.ctl(&["del", "foo", "--prefix", "-w", "json"]).json();
    assert_eq!(header_rev(&j), 6);
    assert_eq!(body(&j), json!({"deleted": 2}));
    assert_eq!(s.ctl(&["get", "foo", "--prefix"]).ok(), "");
    // A delete that deletes nothing does not add a revision.
    let j = s.ctl(&["del", "nope", "-w", "json"]).json();
    assert_eq!(header_rev(&j), 6);
    // The version history starts again after a delete.
    s.ctl(&["put", "foo", "again"]).ok();
    let j = s.ctl(&["get", "foo", "-w", "json"]).json();
    assert_eq!(
        j["kvs"][0],
        json!({"key": "Zm9v", "create_revision": 7, "mod_revision": 7, "version": 1,
               "value": "YWdhaW4="})
    );
}

#[test]
fn txn_from_stdin() {
    let (_dir, s) = fresh();
    s.ctl(&["put", "k", "v"]).ok();
    // compares, blank line, success ops, blank line, failure ops, blank line.
    let out = s.ctl_stdin(
        &["txn"],
        Some("value(\"k\") = \"v\"\n\nput k v2\nput t ok\n\nput k vfail\n\n"),
    );
    assert_eq!(out.ok(), "SUCCESS\n\nOK\n\nOK\n");
    let out = s.ctl_stdin(
        &["txn"],
        Some("value(\"k\") = \"zzz\"\n\nput k v3\n\nput k vfail\nget t\n\n"),
    );
    assert_eq!(out.ok(), "FAILURE\n\nOK\n\nt\nok\n");
    assert_eq!(s.ctl(&["get", "k"]).ok(), "k\nvfail\n");
    // Several compares (all must hold), delete in a txn.
    let out = s.ctl_stdin(
        &["txn"],
        Some("mod(\"k\") > \"0\"\nversion(\"t\") = \"1\"\ncreate(\"k\") = \"2\"\n\ndel t\n\n\n"),
    );
    assert_eq!(out.ok(), "SUCCESS\n\n1\n");
    // An empty txn: a read, no new revision.
    let j = s
        .ctl_stdin(&["txn", "-w", "json"], Some("mod(\"k\") > \"0\"\n\n\n\n"))
        .json();
    assert_eq!(header_rev(&j), 5);
    assert_eq!(body(&j), json!({"succeeded": true}));
    let j = s
        .ctl_stdin(
            &["txn", "-w", "json"],
            Some("mod(\"nope\") > \"0\"\n\n\nput a b\n\n"),
        )
        .json();
    assert_eq!(header_rev(&j), 6);
    assert_eq!(j["succeeded"], json!(null), "failure leaves succeeded out");
    assert_eq!(
        j["responses"][0]["Response"]["response_put"]["header"]["revision"],
        json!(6)
    );
}

#[test]
fn watch_prefix_prev_kv_and_history() {
    let (_dir, s) = fresh();
    s.ctl(&["put", "other", "x"]).ok(); // revision 2
    // Start at the next revision: the events arrive whether the watch is
    // created before or after the puts, so there is no race.
    let mut w = s.ctl_spawn(&["watch", "w", "--prefix", "--prev-kv", "--rev", "3"]);
    std::thread::sleep(Duration::from_millis(200));
    s.ctl(&["put", "w1", "a"]).ok(); // 3
    s.ctl(&["put", "w1", "b"]).ok(); // 4
    s.ctl(&["put", "x-not-watched", "c"]).ok(); // 5
    s.ctl(&["del", "w1"]).ok(); // 6
    assert_eq!(
        w.lines(13, STEP),
        [
            "PUT", "w1", "a", //
            "PUT", "w1", "a", "w1", "b", //
            "DELETE", "w1", "b", "w1", ""
        ]
    );
    // Live: a put after the history has been sent.
    s.ctl(&["put", "w2", "live"]).ok(); // 7
    assert_eq!(w.lines(3, STEP), ["PUT", "w2", "live"]);
    w.assert_quiet(Duration::from_millis(300));
    drop(w);

    // History replay from revision 1, without prev-kv.
    let mut h = s.ctl_spawn(&["watch", "w1", "--rev", "1"]);
    assert_eq!(
        h.lines(8, STEP),
        ["PUT", "w1", "a", "PUT", "w1", "b", "DELETE", "w1"]
    );
    // The DELETE's empty value line.
    assert_eq!(h.line(STEP), "");
    h.assert_quiet(Duration::from_millis(300));
    drop(h);

    // JSON: one response with the three events.
    let mut h = s.ctl_spawn(&["watch", "w1", "--rev", "1", "-w", "json"]);
    let line = h.line(STEP);
    let j: Value = serde_json::from_str(&line).expect("json line");
    assert_eq!(
        j["Events"],
        json!([
            {"kv": {"key": "dzE=", "create_revision": 3, "mod_revision": 3, "version": 1,
                    "value": "YQ=="}},
            {"kv": {"key": "dzE=", "create_revision": 3, "mod_revision": 4, "version": 2,
                    "value": "Yg=="}},
            {"type": 1, "kv": {"key": "dzE=", "mod_revision": 6}}
        ]),
        "{j}"
    );
    assert_eq!(j["Header"]["revision"], json!(7), "{j}");
    assert_eq!(j["Canceled"], json!(false));
    assert_eq!(j["CompactRevision"], json!(0));
}

#[test]
fn lease_lifecycle() {
    let (_dir, s) = fresh();
    let out = s.ctl(&["lease", "grant", "10"]).ok().to_string();
    let short = re(r"^lease ([0-9a-f]+) granted with TTL\(10s\)\n$", &out)[1].to_string();
    let out = s.ctl(&["lease", "grant", "60"]).ok().to_string();
    let id = re(r"^lease ([0-9a-f]+) granted with TTL\(60s\)\n$", &out)[1].to_string();
    assert_ne!(id, short);
    let id_num = i64::from_str_radix(&id, 16).expect("hex id");

    assert_eq!(s.ctl(&["put", "--lease", &id, "lk", "lv"]).ok(), "OK\n");
    let j = s.ctl(&["get", "lk", "-w", "json"]).json();
    assert_eq!(j["kvs"][0]["lease"], json!(id_num));

    let out = s.ctl(&["lease", "timetolive", &id]).ok().to_string();
    let c = re(
        r"^lease ([0-9a-f]+) granted with TTL\(60s\), remaining\((\d+)s\)\n$",
        &out,
    );
    assert_eq!(c[1], id);
    let remaining: i64 = c[2].parse().unwrap();
    assert!((55..=60).contains(&remaining), "{out}");
    let out = s
        .ctl(&["lease", "timetolive", &id, "--keys"])
        .ok()
        .to_string();
    re(
        r"^lease [0-9a-f]+ granted with TTL\(60s\), remaining\(\d+s\), attached keys\(\[lk\]\)\n$",
        &out,
    );
    let j = s.ctl(&["lease", "timetolive", &id, "-w", "json"]).json();
    // etcdctl flattens the header into this one.
    assert_eq!(j["id"], json!(id_num));
    assert_eq!(j["granted-ttl"], json!(60));
    assert!(j["ttl"].as_i64().unwrap() > 50, "{j}");
    assert!(j["cluster_id"].as_u64().unwrap() != 0, "{j}");

    assert_eq!(
        s.ctl(&["lease", "keep-alive", "--once", &id]).ok(),
        format!("lease {id} keepalived with TTL(60)\n")
    );

    let out = s.ctl(&["lease", "list"]).ok().to_string();
    let mut lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.remove(0), "found 2 leases");
    lines.sort();
    let mut want = vec![id.as_str(), short.as_str()];
    want.sort();
    assert_eq!(lines, want);

    assert_eq!(
        s.ctl(&["lease", "revoke", &id]).ok(),
        format!("lease {id} revoked\n")
    );
    // Revoking deletes the attached keys.
    assert_eq!(s.ctl(&["get", "lk"]).ok(), "");
    assert_eq!(
        s.ctl(&["lease", "timetolive", &id]).ok(),
        format!("lease {id} already expired\n")
    );
    let out = s.ctl(&["lease", "revoke", &id]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("Error: failed to revoke lease (etcdserver: requested lease not found)"),
        "{out:?}"
    );
    let out = s.ctl(&["lease", "keep-alive", "--once", &id]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("Error: etcdserver: requested lease not found"),
        "{out:?}"
    );
    // A put with an unknown lease fails.
    let out = s.ctl(&["put", "--lease", &id, "x", "y"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("Error: etcdserver: requested lease not found"),
        "{out:?}"
    );
    assert_eq!(
        s.ctl(&["lease", "list"]).ok(),
        format!("found 1 leases\n{short}\n")
    );
}

#[test]
fn compaction() {
    let (_dir, s) = fresh();
    for i in 1..=6 {
        s.ctl(&["put", "k", &format!("v{i}")]).ok(); // revisions 2..=7
    }
    assert_eq!(s.ctl(&["get", "k", "--rev", "3"]).ok(), "k\nv2\n");
    assert_eq!(s.ctl(&["compaction", "5"]).ok(), "compacted revision 5\n");
    for rev in ["3", "4"] {
        let out = s.ctl(&["get", "k", "--rev", rev]);
        assert_eq!(out.code, Some(1), "{out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
        assert!(
            out.stderr
                .contains("Error: etcdserver: mvcc: required revision has been compacted"),
            "{out:?}"
        );
    }
    // The compaction revision itself and later stay readable.
    assert_eq!(s.ctl(&["get", "k", "--rev", "5"]).ok(), "k\nv4\n");
    assert_eq!(s.ctl(&["get", "k", "--rev", "7"]).ok(), "k\nv6\n");
    // Compacting again at or below the bound is an error too.
    let out = s.ctl(&["compaction", "3"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("Error: etcdserver: mvcc: required revision has been compacted"),
        "{out:?}"
    );
    let out = s.ctl(&["compaction", "100"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("Error: etcdserver: mvcc: required revision is a future revision"),
        "{out:?}"
    );
    // A watch from below the bound is cancelled by the server.
    let w = s.ctl_spawn(&["watch", "k", "--rev", "2"]);
    let (code, err) = w.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(5), "{err}");
    assert!(
        err.contains("watch was canceled (etcdserver: mvcc: required revision has been compacted)"),
        "{err}"
    );
    // A watch from the bound replays what is left.
    let mut w = s.ctl_spawn(&["watch", "k", "--rev", "5"]);
    assert_eq!(
        w.lines(9, STEP),
        ["PUT", "k", "v4", "PUT", "k", "v5", "PUT", "k", "v6"]
    );
}

#[test]
fn endpoint_status_and_member_list() {
    let (_dir, s) = fresh();
    s.ctl(&["put", "a", "1"]).ok();
    let j = s.ctl(&["endpoint", "status", "-w", "json"]).json();
    let arr = j.as_array().expect("array");
    assert_eq!(arr.len(), 1, "{j}");
    assert_eq!(arr[0]["Endpoint"], json!(s.endpoint()));
    let st = &arr[0]["Status"];
    assert_eq!(header_rev(st), 2);
    let member = st["header"]["member_id"].as_u64().unwrap();
    let cluster = st["header"]["cluster_id"].as_u64().unwrap();
    assert_eq!(
        st["leader"].as_u64(),
        Some(member),
        "single member leads: {st}"
    );
    re(r"^\d+\.\d+\.\d+", st["version"].as_str().expect("version"));
    assert!(st["dbSize"].as_i64().unwrap() > 0, "{st}");
    assert!(st["dbSizeInUse"].as_i64().unwrap() > 0, "{st}");
    let idx = st["raftIndex"].as_u64().expect("raftIndex");
    let applied = st["raftAppliedIndex"].as_u64().expect("raftAppliedIndex");
    assert!(idx >= applied && applied > 0, "{st}");
    assert!(st["raftTerm"].as_u64().unwrap() > 0, "{st}");
    assert!(st.get("errors").is_none(), "{st}");

    let out = s.ctl(&["endpoint", "status"]).ok().to_string();
    re(
        &format!(
            r"^{}, {member:x}, \d+\.\d+\.\d+, [\d.]+ [kMG]?B, true, false, \d+, {idx}, {applied}, \n$",
            regex::escape(&s.endpoint())
        ),
        &out,
    );

    let j = s.ctl(&["member", "list", "-w", "json"]).json();
    assert_eq!(j["header"]["cluster_id"].as_u64(), Some(cluster));
    assert_eq!(j["header"]["member_id"].as_u64(), Some(member));
    assert_eq!(
        j["members"],
        json!([{"ID": member, "name": common::NAME, "peerURLs": [s.peer_url()],
                "clientURLs": [s.client_url()]}])
    );
    assert_eq!(
        s.ctl(&["member", "list"]).ok(),
        format!(
            "{member:x}, started, {}, {}, {}, false\n",
            common::NAME,
            s.peer_url(),
            s.client_url()
        )
    );

    let out = s.ctl(&["endpoint", "health"]).ok().to_string();
    re(
        &format!(
            r"^{} is healthy: successfully committed proposal: took = ",
            regex::escape(&s.endpoint())
        ),
        &out,
    );
}

/// The `/v3` JSON gateway and `/health` on the client port: bytes in
/// base64, 64-bit integers as strings, errors as `{error, code, message}`
/// with HTTP 400 (what etcd 3.5.1's grpc-gateway answers).
#[test]
fn json_gateway_and_health() {
    let (_dir, s) = fresh();
    let port = s.client_port();
    let post = |path: &str, body: &str| -> (u16, Value) {
        let (code, text) = common::http_post(port, path, body)
            .unwrap_or_else(|| panic!("no HTTP answer to {path}"));
        let j = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
        (code, j)
    };
    let (code, text) = common::http_get(port, "/health").expect("health answers");
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("health JSON"),
        json!({"health": "true", "reason": ""})
    );

    // "Zm9v" = "foo", "YmFy" = "bar".
    let (code, j) = post("/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#);
    assert_eq!(code, 200, "{j}");
    let h = &j["header"];
    assert_eq!(h["revision"], json!("2"), "{j}");
    for f in ["cluster_id", "member_id", "raft_term"] {
        let v = h[f]
            .as_str()
            .unwrap_or_else(|| panic!("{f} as a string: {j}"));
        assert!(v.parse::<u64>().unwrap() > 0, "{j}");
    }
    assert_eq!(body(&j), json!({}));
    let member = h["member_id"].clone();

    let (code, j) = post("/v3/kv/range", r#"{"key":"Zm9v"}"#);
    assert_eq!(code, 200, "{j}");
    assert_eq!(
        body(&j),
        json!({"kvs": [{"key": "Zm9v", "create_revision": "2", "mod_revision": "2",
                        "version": "1", "value": "YmFy"}], "count": "1"})
    );
    let (_, j) = post("/v3/kv/range", r#"{"key":"bm9wZQ=="}"#);
    assert_eq!(body(&j), json!({}), "a miss is the header only");

    let (code, j) = post("/v3/kv/range", r#"{"key":"Zm9v","revision":100}"#);
    assert_eq!(code, 400, "{j}");
    let msg = "etcdserver: mvcc: required revision is a future revision";
    assert_eq!(j, json!({"error": msg, "code": 11, "message": msg}));

    let (code, j) = post("/v3/kv/deleterange", r#"{"key":"Zm9v","prev_kv":true}"#);
    assert_eq!(code, 200, "{j}");
    assert_eq!(j["header"]["revision"], json!("3"));
    assert_eq!(
        body(&j),
        json!({"deleted": "1", "prev_kvs": [{"key": "Zm9v", "create_revision": "2",
               "mod_revision": "2", "version": "1", "value": "YmFy"}]})
    );

    let (code, j) = post("/v3/lease/grant", r#"{"TTL":30}"#);
    assert_eq!(code, 200, "{j}");
    assert_eq!(j["TTL"], json!("30"), "{j}");
    assert!(j["ID"].as_str().unwrap().parse::<i64>().unwrap() > 0, "{j}");

    let (code, j) = post("/v3/maintenance/status", "{}");
    assert_eq!(code, 200, "{j}");
    assert_eq!(j["leader"], member, "{j}");
    assert!(j["version"].is_string(), "{j}");

    let (code, j) = post("/v3/cluster/member/list", "{}");
    assert_eq!(code, 200, "{j}");
    assert_eq!(
        j["members"],
        json!([{"ID": member, "name": common::NAME, "peerURLs": [s.peer_url()],
                "clientURLs": [s.client_url()]}])
    );
}

// ---- streams through our tonic clients ----

async fn next(stream: &mut tonic::Streaming<WatchResponse>) -> WatchResponse {
    tokio::time::timeout(STEP, stream.message())
        .await
        .expect("watch response in time")
        .expect("watch stream ok")
        .expect("watch stream open")
}

/// The bound on one gRPC test, so that a server that never answers fails
/// the test instead of hanging it.
const GRPC_TEST_BOUND: Duration = Duration::from_secs(60);

#[tokio::test]
async fn grpc_watch_create_progress_cancel() {
    tokio::time::timeout(GRPC_TEST_BOUND, watch_create_progress_cancel())
        .await
        .expect("test ran past its bound");
}

async fn watch_create_progress_cancel() {
    let (_dir, s) = fresh();
    let ch = s.channel().await;
    let mut kv = ferrocd_net::pb::etcdserverpb::kv_client::KvClient::new(ch.clone());
    let put = |k: &str, v: &str| PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    };
    kv.put(put("a", "0")).await.unwrap(); // revision 2

    let create = |key: &str, id: i64| WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: key.into(),
            watch_id: id,
            prev_kv: true,
            ..Default::default()
        })),
    };
    let (tx, rx) = mpsc::channel(16);
    // Queued before the call: etcd sends the response headers with its
    // first message, so the call itself waits for one.
    tx.send(create("a", 0)).await.unwrap();
    let mut stream = tokio::time::timeout(
        STEP,
        WatchClient::new(ch.clone()).watch(ReceiverStream::new(rx)),
    )
    .await
    .expect("watch stream opens in time")
    .unwrap()
    .into_inner();
    let created = next(&mut stream).await;
    assert!(created.created, "{created:?}");
    assert!(!created.canceled);
    assert!(created.events.is_empty());
    assert_eq!(created.header.as_ref().unwrap().revision, 2);
    let wid = created.watch_id;

    // A second watcher with a chosen id on another key.
    tx.send(create("b", 7)).await.unwrap();
    let created_b = next(&mut stream).await;
    assert!(
        created_b.created && created_b.watch_id == 7,
        "{created_b:?}"
    );

    kv.put(put("a", "1")).await.unwrap(); // 3
    let ev = next(&mut stream).await;
    assert_eq!(ev.watch_id, wid);
    assert_eq!(ev.header.as_ref().unwrap().revision, 3);
    assert_eq!(ev.events.len(), 1);
    let e = &ev.events[0];
    assert_eq!(e.r#type, EventType::Put as i32);
    let kv1 = e.kv.as_ref().unwrap();
    assert_eq!(
        (&kv1.key[..], &kv1.value[..], kv1.mod_revision, kv1.version),
        (&b"a"[..], &b"1"[..], 3, 2)
    );
    assert_eq!(e.prev_kv.as_ref().unwrap().value, b"0");

    // A progress request: a header-only response at the current revision,
    // addressed to no watcher (-1).
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
    })
    .await
    .unwrap();
    let p = next(&mut stream).await;
    assert!(p.events.is_empty() && !p.created && !p.canceled, "{p:?}");
    assert_eq!(p.header.as_ref().unwrap().revision, 3, "{p:?}");
    assert_eq!(p.watch_id, -1, "{p:?}");

    // Cancel the first watcher; the second still gets its events.
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::CancelRequest(WatchCancelRequest {
            watch_id: wid,
        })),
    })
    .await
    .unwrap();
    let c = next(&mut stream).await;
    assert!(c.canceled, "{c:?}");
    assert_eq!(c.watch_id, wid);
    kv.put(put("a", "2")).await.unwrap(); // 4, nobody watches
    kv.put(put("b", "x")).await.unwrap(); // 5
    let ev = next(&mut stream).await;
    assert_eq!(ev.watch_id, 7, "only watcher 7 is left: {ev:?}");
    assert_eq!(ev.events[0].kv.as_ref().unwrap().mod_revision, 5);

    // Watching from a revision in the past replays history.
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: "a".into(),
            start_revision: 2,
            watch_id: 9,
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let mut revs = Vec::new();
    let deadline = Instant::now() + STEP;
    while revs.len() < 3 && Instant::now() < deadline {
        let r = next(&mut stream).await;
        if r.watch_id == 9 {
            revs.extend(r.events.iter().map(|e| e.kv.as_ref().unwrap().mod_revision));
        }
    }
    assert_eq!(revs, [2, 3, 4]);
}

#[tokio::test]
async fn grpc_lease_keep_alive_stream() {
    tokio::time::timeout(GRPC_TEST_BOUND, lease_keep_alive_stream())
        .await
        .expect("test ran past its bound");
}

async fn lease_keep_alive_stream() {
    let (_dir, s) = fresh();
    let ch = s.channel().await;
    let mut lease = LeaseClient::new(ch.clone());
    let granted = lease
        .lease_grant(LeaseGrantRequest { ttl: 3, id: 0 })
        .await
        .unwrap()
        .into_inner();
    assert!(granted.error.is_empty(), "{granted:?}");
    let id = granted.id;
    let ttl = granted.ttl;
    assert!(id != 0 && ttl >= 3, "{granted:?}");
    let mut kv = ferrocd_net::pb::etcdserverpb::kv_client::KvClient::new(ch.clone());
    kv.put(PutRequest {
        key: "leased".into(),
        value: "v".into(),
        lease: id,
        ..Default::default()
    })
    .await
    .unwrap();

    let (tx, rx) = mpsc::channel(16);
    // Queued before the call, which waits for the first answer's headers.
    tx.send(LeaseKeepAliveRequest { id }).await.unwrap();
    let mut stream = tokio::time::timeout(STEP, lease.lease_keep_alive(ReceiverStream::new(rx)))
        .await
        .expect("keep-alive stream opens in time")
        .unwrap()
        .into_inner();
    // Keep it alive for longer than its TTL.
    let until = Instant::now() + Duration::from_secs(ttl as u64 + 1);
    let mut answers = 0;
    while Instant::now() < until {
        if answers > 0 {
            tx.send(LeaseKeepAliveRequest { id }).await.unwrap();
        }
        let r = tokio::time::timeout(STEP, stream.message())
            .await
            .expect("keep-alive answer in time")
            .unwrap()
            .expect("stream open");
        assert_eq!((r.id, r.ttl), (id, ttl), "{r:?}");
        assert!(r.header.is_some());
        answers += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(answers >= 4);
    let alive = lease
        .lease_time_to_live(LeaseTimeToLiveRequest { id, keys: true })
        .await
        .unwrap()
        .into_inner();
    assert!(alive.ttl > 0, "{alive:?}");
    assert_eq!(alive.granted_ttl, ttl);
    assert_eq!(alive.keys, [b"leased".to_vec()]);

    // An unknown lease: answered on the stream with TTL 0, not an error.
    tx.send(LeaseKeepAliveRequest { id: id + 12345 })
        .await
        .unwrap();
    let r = tokio::time::timeout(STEP, stream.message())
        .await
        .expect("answer in time")
        .unwrap()
        .expect("stream open");
    assert_eq!((r.id, r.ttl), (id + 12345, 0), "{r:?}");

    // Stop refreshing: the lease expires and takes its key with it.
    drop(tx);
    let deadline = Instant::now() + Duration::from_secs(ttl as u64 + 10);
    loop {
        let left = kv
            .range(RangeRequest {
                key: "leased".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        if left.count == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "lease never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let gone = lease
        .lease_time_to_live(LeaseTimeToLiveRequest { id, keys: false })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(gone.ttl, -1, "{gone:?}");
}
