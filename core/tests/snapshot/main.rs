//! Raft snapshots: with a small `--snapshot-count` the node writes
//! snapshot files as it goes, and a restart (clean or `kill -9`) recovers
//! from the newest snapshot plus the WAL after it, with every key,
//! revision, lease and the compaction bound intact.

#[path = "../common/mod.rs"]
mod common;

use common::{Server, tempdir};

fn snap_files(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("member/snap"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".snap"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn restart_recovers_from_snapshot_plus_wal() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    let mut s = Server::start_with(&data, &["--snapshot-count", "25"]);
    let lease = s.ctl(&["lease", "grant", "600"]).ok().to_string();
    let lease_id = lease
        .split_whitespace()
        .nth(1)
        .expect("lease id")
        .to_string();
    for i in 0..90 {
        let k = format!("k{i:03}");
        let v = format!("v{i}");
        if i % 10 == 0 {
            s.ctl(&["put", &k, &v, "--lease", &lease_id]).ok();
        } else {
            s.ctl(&["put", &k, &v]).ok();
        }
    }
    s.ctl(&["compaction", "20"]).ok();
    let before = s.ctl(&["get", "k", "--prefix", "-w", "json"]).json();
    let rev = before["header"]["revision"].as_i64().unwrap();
    let snaps = snap_files(&data);
    assert!(
        !snaps.is_empty(),
        "no snapshot after 90 writes with --snapshot-count 25"
    );

    for (how, kill) in [("SIGTERM", false), ("kill -9", true)] {
        if kill {
            s.kill();
        } else {
            s.terminate().expect("clean stop");
        }
        s.restart();
        let after = s.ctl(&["get", "k", "--prefix", "-w", "json"]).json();
        assert_eq!(after["kvs"], before["kvs"], "keys after {how}");
        assert_eq!(
            after["header"]["revision"].as_i64(),
            Some(rev),
            "revision after {how}"
        );
        let ttl = s
            .ctl(&["lease", "timetolive", &lease_id, "--keys"])
            .ok()
            .to_string();
        assert!(
            ttl.contains("attached keys([k000"),
            "lease after {how}: {ttl}"
        );
        let compacted = s.ctl_stdin(&["get", "k001", "--rev", "5"], None);
        assert!(
            compacted
                .stderr
                .contains("required revision has been compacted"),
            "compaction bound after {how}: {compacted:?}"
        );
    }
    // Writes keep going after a snapshot-based recovery.
    s.ctl(&["put", "after", "x"]).ok();
    let j = s.ctl(&["get", "after", "-w", "json"]).json();
    assert_eq!(j["kvs"][0]["mod_revision"].as_i64(), Some(rev + 1));
}
