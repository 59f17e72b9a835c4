//! Space management as etcd 3.5 does it: `--quota-backend-bytes`, the
//! NOSPACE alarm (replicated through raft, kept across restarts),
//! `alarm list|disarm`, dbSize / dbSizeInUse and Defragment.
//!
//! What these tests expect was seen on a real etcd 3.5.1 started with
//! `--quota-backend-bytes 16777216` and 1 MB puts: the put past the quota
//! fails with `etcdserver: mvcc: database space exceeded` (gRPC
//! ResourceExhausted), so do every later put and lease grant; gets,
//! deletes, compaction and defrag work; `alarm list` prints
//! `memberID:<id> alarm:NOSPACE `; endpoint status lists the same text in
//! `errors`; compaction lowers dbSizeInUse but not dbSize; disarming
//! before a defrag lets the alarm come straight back on the next big
//! put; after compaction + defrag + disarm puts go again.

#[path = "../common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{CtlOutput, Server, tempdir};
use ferrocd_net::pb::etcdserverpb as pb;
use pb::kv_client::KvClient;

const NOSPACE: &str = "etcdserver: mvcc: database space exceeded";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// (member id, dbSize, dbSizeInUse, errors) from `endpoint status -w json`.
fn status(out: &CtlOutput) -> (u64, i64, i64, Vec<String>) {
    let v = out.json();
    let s = &v[0]["Status"];
    let errors = s["errors"]
        .as_array()
        .map(|a| a.iter().map(|e| e.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    (
        s["header"]["member_id"].as_u64().unwrap(),
        s["dbSize"].as_i64().unwrap_or(0),
        s["dbSizeInUse"].as_i64().unwrap_or(0),
        errors,
    )
}

fn revision(s: &Server) -> i64 {
    s.ctl(&["get", "x", "-w", "json"]).json()["header"]["revision"]
        .as_i64()
        .unwrap()
}

/// A txn through gRPC: (code, message) of its error, or `None` when it
/// went through.
fn txn(ep: &str, req: pb::TxnRequest) -> Option<(tonic::Code, String)> {
    rt().block_on(async {
        let mut kv = KvClient::new(common::connect(ep).await);
        kv.txn(req)
            .await
            .err()
            .map(|s| (s.code(), s.message().to_string()))
    })
}

fn op_put(k: &str) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
            key: k.into(),
            value: b"v".to_vec(),
            ..Default::default()
        })),
    }
}

fn op_get(k: &str) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(pb::request_op::Request::RequestRange(pb::RangeRequest {
            key: k.into(),
            ..Default::default()
        })),
    }
}

fn op_del(k: &str) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(pb::request_op::Request::RequestDeleteRange(
            pb::DeleteRangeRequest {
                key: k.into(),
                ..Default::default()
            },
        )),
    }
}

#[test]
fn nospace_alarm_single_member_as_etcd() {
    let tmp = tempdir();
    let s = Server::start_with(
        &tmp.path().join("data"),
        &["--quota-backend-bytes", "200000"],
    );
    let ep = s.endpoint();
    let lease = s.ctl(&["lease", "grant", "600"]).ok().to_string();
    let lease = lease.split_whitespace().nth(1).unwrap().to_string();
    let big = "x".repeat(30_000);
    let mut refused = None;
    for i in 0..20 {
        let out = s.ctl(&["put", &format!("k{i}"), &big]);
        if out.code != Some(0) {
            refused = Some((i, out));
            break;
        }
    }
    let (n, out) = refused.expect("a 200 kB quota never refused 600 kB of puts");
    assert!(n >= 3, "refused after only {n} puts of 30 kB");
    assert!(out.stderr.contains(&format!("Error: {NOSPACE}")), "{out:?}");
    let (id, full_size, _, errors) = status(&s.ctl(&["endpoint", "status", "-w", "json"]));
    let listed = format!("memberID:{id} alarm:NOSPACE ");
    assert_eq!(errors, vec![listed.clone()]);
    assert_eq!(s.ctl(&["alarm", "list"]).ok(), format!("{listed}\n"));
    let js = s.ctl(&["alarm", "list", "-w", "json"]).json();
    assert_eq!(js["alarms"][0]["memberID"].as_u64(), Some(id));
    assert_eq!(js["alarms"][0]["alarm"].as_i64(), Some(1));

    // Writes that add data are refused, whatever their size...
    let small = s.ctl(&["put", "other", "v"]);
    assert!(small.stderr.contains(NOSPACE), "{small:?}");
    let grant = s.ctl(&["lease", "grant", "60"]);
    assert!(
        grant
            .stderr
            .contains(&format!("Error: failed to grant lease ({NOSPACE})")),
        "{grant:?}"
    );
    let put_txn = pb::TxnRequest {
        success: vec![op_get("k0"), op_put("t")],
        ..Default::default()
    };
    assert_eq!(
        txn(&ep, put_txn),
        Some((tonic::Code::ResourceExhausted, NOSPACE.to_string()))
    );
    // ...reads, read-only and delete-only txns, deletes, lease revokes
    // and compaction are not.
    let read_txn = pb::TxnRequest {
        success: vec![op_get("k0")],
        failure: vec![op_del("nothing")],
        ..Default::default()
    };
    assert_eq!(txn(&ep, read_txn), None);
    assert_eq!(s.ctl(&["get", "k0", "--keys-only"]).ok().trim(), "k0");
    assert_eq!(s.ctl(&["del", "k", "--prefix"]).ok().trim(), n.to_string());
    assert!(s.ctl(&["lease", "revoke", &lease]).ok().contains("revoked"));
    let rev = revision(&s);
    s.ctl(&["compaction", &rev.to_string()]).ok();
    // Compaction frees records (in use) but not the backend (dbSize).
    let (_, size, in_use, _) = status(&s.ctl(&["endpoint", "status", "-w", "json"]));
    assert!(
        size >= full_size,
        "dbSize {size} shrank below {full_size} without a defrag"
    );
    assert!(
        in_use < 1000,
        "dbSizeInUse {in_use} after deleting everything"
    );

    // Disarmed before a defrag, the next big put raises it again.
    assert_eq!(s.ctl(&["alarm", "disarm"]).ok(), format!("{listed}\n"));
    let again = s.ctl(&["put", "k", &big]);
    assert!(again.stderr.contains(NOSPACE), "{again:?}");
    assert_eq!(s.ctl(&["alarm", "list"]).ok(), format!("{listed}\n"));

    // Defragment shrinks the backend; disarm; writes go again.
    assert_eq!(
        s.ctl(&["defrag"]).ok(),
        format!("Finished defragmenting etcd member[{ep}]\n")
    );
    let (_, size, _, errors) = status(&s.ctl(&["endpoint", "status", "-w", "json"]));
    assert!(
        size < full_size / 4,
        "dbSize {size} after defrag (was {full_size})"
    );
    assert_eq!(errors, vec![listed.clone()], "defrag does not disarm");
    assert_eq!(s.ctl(&["alarm", "disarm"]).ok(), format!("{listed}\n"));
    assert_eq!(s.ctl(&["alarm", "list"]).ok(), "");
    assert_eq!(s.ctl(&["alarm", "disarm"]).ok(), "");
    assert_eq!(s.ctl(&["put", "k", &big]).ok().trim(), "OK");
    assert!(
        s.ctl(&["lease", "grant", "60"])
            .ok()
            .contains("granted with TTL(60s)")
    );
    let (_, _, _, errors) = status(&s.ctl(&["endpoint", "status", "-w", "json"]));
    assert!(errors.is_empty(), "{errors:?}");
}

/// Three `ferrocd` members on loopback (a trimmed copy of the cluster
/// test's harness: these tests need restarts, not proxies).
struct Cluster {
    members: Vec<(String, u16, u16, PathBuf, Option<Child>)>,
    initial: String,
    extra: Vec<String>,
    starts: u32,
}

impl Cluster {
    fn start(root: &Path, n: usize, extra: &[&str]) -> Cluster {
        let members: Vec<_> = (0..n)
            .map(|i| {
                (
                    format!("m{i}"),
                    common::free_port(),
                    common::free_port(),
                    root.join(format!("m{i}")),
                    None,
                )
            })
            .collect();
        let initial = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.0, m.2))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = Cluster {
            members,
            initial,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            starts: 0,
        };
        for i in 0..n {
            c.spawn(i);
        }
        for i in 0..n {
            c.wait_ready(i);
        }
        c
    }

    fn spawn(&mut self, i: usize) {
        self.starts += 1;
        let (name, client, peer, dir, child) = &mut self.members[i];
        let log = std::fs::File::create(dir.with_extension(format!("log{}", self.starts))).unwrap();
        let curl = format!("http://127.0.0.1:{client}");
        let purl = format!("http://127.0.0.1:{peer}");
        *child = Some(
            Command::new(env!("CARGO_BIN_EXE_ferrocd"))
                .args(["--name", name, "--data-dir"])
                .arg(&*dir)
                .args(["--listen-client-urls", &curl])
                .args(["--advertise-client-urls", &curl])
                .args(["--listen-peer-urls", &purl])
                .args(["--initial-advertise-peer-urls", &purl])
                .args(["--initial-cluster", &self.initial])
                .args(["--initial-cluster-state", "new", "--log-level", "warn"])
                .args(&self.extra)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("spawn ferrocd"),
        );
    }

    fn wait_ready(&self, i: usize) {
        let t = Instant::now();
        while common::http_get(self.members[i].1, "/health").map(|r| r.0) != Some(200) {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "member {i} not ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].4.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn ep(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.members[i].1)
    }

    /// `etcdctl --endpoints <member i>`.
    fn ctl(&self, i: usize, args: &[&str]) -> CtlOutput {
        ctl(&self.ep(i), args)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

fn ctl(endpoints: &str, args: &[&str]) -> CtlOutput {
    let out = Command::new(common::etcdctl_bin())
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            endpoints,
            "--dial-timeout=3s",
            "--command-timeout=15s",
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run etcdctl");
    CtlOutput {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
    }
}

#[test]
fn nospace_on_three_members_survives_a_restart_and_clears_after_defrag() {
    let tmp = tempdir();
    // Frequent snapshots with a short log behind them: after the restart
    // the alarm can only come from the snapshot.
    let mut c = Cluster::start(
        tmp.path(),
        3,
        &[
            "--quota-backend-bytes",
            "300000",
            "--snapshot-count",
            "5",
            "--experimental-snapshot-catchup-entries",
            "1",
        ],
    );
    let big = "y".repeat(40_000);
    let mut refused = None;
    for i in 0..20 {
        let out = c.ctl(0, &["put", &format!("k{i:02}"), &big]);
        if out.code != Some(0) {
            refused = Some(out);
            break;
        }
    }
    let out = refused.expect("a 300 kB quota never refused 800 kB of puts");
    assert!(out.stderr.contains(NOSPACE), "{out:?}");
    let (id0, _, _, _) = status(&c.ctl(0, &["endpoint", "status", "-w", "json"]));
    let listed = format!("memberID:{id0} alarm:NOSPACE ");

    // Every member knows the alarm and refuses writes; reads work.
    for i in 0..3 {
        // `alarm list` is linearizable (a member may not have applied the
        // alarm yet when the refused put returns); Status is local, as
        // etcd's, so it comes after.
        assert_eq!(c.ctl(i, &["alarm", "list"]).ok(), format!("{listed}\n"));
        let (_, _, _, errors) = status(&c.ctl(i, &["endpoint", "status", "-w", "json"]));
        assert_eq!(errors, vec![listed.clone()], "member {i}");
        let put = c.ctl(i, &["put", "small", "v"]);
        assert!(put.stderr.contains(NOSPACE), "member {i}: {put:?}");
        assert_eq!(
            txn(
                &c.ep(i),
                pb::TxnRequest {
                    success: vec![op_put("t")],
                    ..Default::default()
                }
            ),
            Some((tonic::Code::ResourceExhausted, NOSPACE.to_string())),
            "member {i}"
        );
        assert_eq!(c.ctl(i, &["get", "k00", "--keys-only"]).ok().trim(), "k00");
    }
    // Deletes go through (and push the log past a few snapshots).
    for i in 0..6 {
        assert_eq!(c.ctl(i % 3, &["del", &format!("k{i:02}")]).ok().trim(), "1");
    }

    // A restarted member still has the alarm and refuses writes.
    c.kill(2);
    c.spawn(2);
    c.wait_ready(2);
    assert_eq!(c.ctl(2, &["alarm", "list"]).ok(), format!("{listed}\n"));
    let put = c.ctl(2, &["put", "small", "v"]);
    assert!(put.stderr.contains(NOSPACE), "restarted: {put:?}");

    // Free the space: delete, compact, defrag every member, disarm.
    c.ctl(1, &["del", "k", "--prefix"]).ok();
    let rev = c.ctl(1, &["get", "x", "-w", "json"]).json()["header"]["revision"]
        .as_i64()
        .unwrap();
    c.ctl(1, &["compaction", &rev.to_string()]).ok();
    // Defragment is local, as etcd's: let every member apply the
    // compaction first (a linearizable read waits for it).
    for i in 0..3 {
        c.ctl(i, &["get", "x"]).ok();
    }
    let before: Vec<i64> = (0..3)
        .map(|i| status(&c.ctl(i, &["endpoint", "status", "-w", "json"])).1)
        .collect();
    let all = (0..3).map(|i| c.ep(i)).collect::<Vec<_>>().join(",");
    let defrag = ctl(&all, &["defrag", "--cluster"]).ok().to_string();
    assert_eq!(defrag.lines().count(), 3, "{defrag}");
    for (i, was) in before.iter().enumerate() {
        let line = format!(
            "Finished defragmenting etcd member[http://127.0.0.1:{}]",
            c.members[i].1
        );
        assert!(defrag.lines().any(|l| l == line), "{defrag}");
        let (_, size, _, _) = status(&c.ctl(i, &["endpoint", "status", "-w", "json"]));
        assert!(
            size < 40_000 && size < *was,
            "member {i}: dbSize {size} after defrag (was {was})"
        );
    }
    assert_eq!(c.ctl(0, &["alarm", "disarm"]).ok(), format!("{listed}\n"));
    for i in 0..3 {
        assert_eq!(c.ctl(i, &["alarm", "list"]).ok(), "", "member {i}");
        assert_eq!(
            c.ctl(i, &["put", &format!("after{i}"), &big]).ok().trim(),
            "OK"
        );
    }
}

/// `defrag` on a member with plenty of room: dbSize shrinks to the live
/// data after compaction, and the data is all there afterwards (also
/// after a restart, which loads the defragmented snapshot).
#[test]
fn defrag_shrinks_db_size_and_keeps_the_data() {
    let tmp = tempdir();
    let mut s = Server::start(&tmp.path().join("data"));
    let big = "z".repeat(20_000);
    for i in 0..30 {
        s.ctl(&["put", &format!("k{}", i % 3), &big]).ok();
    }
    let (_, grown, in_use, _) = status(&s.ctl(&["endpoint", "status", "-w", "json"]));
    assert!(grown >= 30 * 20_000, "dbSize {grown} after 600 kB of puts");
    assert!(in_use >= 30 * 20_000, "in use {in_use}");
    let rev = revision(&s);
    s.ctl(&["compaction", &rev.to_string()]).ok();
    let (_, compacted, in_use, _) = status(&s.ctl(&["endpoint", "status", "-w", "json"]));
    assert!(compacted >= grown, "compaction alone shrank dbSize");
    assert!(
        in_use < 4 * 20_000 + 4096,
        "in use {in_use} after compaction"
    );
    assert_eq!(
        s.ctl(&["defrag"]).ok(),
        format!("Finished defragmenting etcd member[{}]\n", s.endpoint())
    );
    let (_, size, in_use2, _) = status(&s.ctl(&["endpoint", "status", "-w", "json"]));
    assert!(size < grown / 4, "dbSize {size} after defrag (was {grown})");
    assert!(size >= in_use2, "dbSize {size} below in use {in_use2}");
    s.terminate().unwrap();
    s.restart();
    let (_, after_restart, _, _) = status(&s.ctl(&["endpoint", "status", "-w", "json"]));
    assert_eq!(after_restart, size, "a restart sees the same backend");
    let keys = s
        .ctl(&["get", "k", "--prefix", "--keys-only"])
        .ok()
        .to_string();
    assert_eq!(
        keys.split_whitespace().collect::<Vec<_>>(),
        vec!["k0", "k1", "k2"]
    );
    assert_eq!(s.ctl(&["get", "k1", "--print-value-only"]).ok().trim(), big);
}

/// `--auto-compaction-mode periodic --auto-compaction-retention 2s`
/// (etcd accepts a duration; a bare number is hours): revisions are
/// compacted once they are older than the retention, never before.
#[test]
fn periodic_auto_compaction_keeps_the_retention() {
    let tmp = tempdir();
    let s = Server::start_with(
        &tmp.path().join("data"),
        &[
            "--auto-compaction-mode",
            "periodic",
            "--auto-compaction-retention",
            "2s",
        ],
    );
    for i in 0..10 {
        s.ctl(&["put", "a", &i.to_string()]).ok();
    }
    let written = Instant::now();
    let last = revision(&s);
    let compacted = |rev: i64| {
        let out = s.ctl(&["get", "a", &format!("--rev={rev}")]);
        if out.code == Some(0) {
            return false;
        }
        assert!(
            out.stderr
                .contains("etcdserver: mvcc: required revision has been compacted"),
            "{out:?}"
        );
        true
    };
    while !compacted(last - 1) {
        assert!(
            written.elapsed() < Duration::from_secs(10),
            "revision {} not compacted 10 s after it was written (retention 2 s)",
            last - 1
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = written.elapsed();
    assert!(
        took >= Duration::from_millis(1900),
        "compacted {took:?} after the write, inside the 2 s retention"
    );
    // The newest revision is never compacted away (it is the key's value).
    assert_eq!(s.ctl(&["get", "a", "--print-value-only"]).ok().trim(), "9");
}

/// Unmounts a test tmpfs (lazily: a killed server may still hold files).
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The data dir on a disk that fills up: a 72 MiB tmpfs (the WAL
/// preallocates one 64 MiB segment; the roll to the next one finds no
/// space). The put that hits the full disk gets the error (not a hang),
/// the member stops with status 1 (etcd exits when it cannot write its
/// WAL), and once the disk has room again a restart serves every
/// acknowledged put. Needs a tmpfs mount (root); elsewhere it says so and
/// checks nothing (the WAL-level tests in `wal/tests/full.rs` cover the
/// same ground through `SimFs`).
#[test]
fn full_disk_stops_the_member_and_a_restart_keeps_every_acknowledged_put() {
    let tmp = tempdir();
    let disk = tmp.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=72m", "tmpfs"])
        .arg(&disk)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("note: cannot mount a tmpfs here (needs root); not testing a full disk");
        return;
    }
    let _mount = Mount(disk.clone());
    let mut s = Server::start(&disk.join("data"));
    let value = "v".repeat(1 << 20);
    let ep = s.endpoint();
    let (acked, failed) = rt().block_on(async {
        let mut kv = KvClient::new(common::connect(&ep).await)
            .max_decoding_message_size(4 << 20)
            .max_encoding_message_size(4 << 20);
        let mut acked = 0;
        for i in 0..120 {
            let put = pb::PutRequest {
                key: format!("k{i:03}").into_bytes(),
                value: value.clone().into_bytes(),
                ..Default::default()
            };
            let r = tokio::time::timeout(Duration::from_secs(30), kv.put(put)).await;
            match r {
                Ok(Ok(_)) => acked = i + 1,
                Ok(Err(status)) => return (acked, status),
                Err(_) => panic!("put {i} hung for 30 s on a full disk"),
            }
        }
        panic!("120 MiB of puts fit a 72 MiB disk");
    });
    assert!(
        failed.message().contains("No space left on device"),
        "{failed:?}"
    );
    let status = s
        .wait_exit(Duration::from_secs(20))
        .expect("the member kept running with a failed WAL");
    assert_eq!(status.code(), Some(1), "{status:?}");
    // An operator makes room; the member comes back with everything.
    let grown = Command::new("mount")
        .args(["-o", "remount,size=256m"])
        .arg(&disk)
        .status()
        .unwrap();
    assert!(grown.success());
    // It replays ~70 MB of WAL (a debug build on a busy machine: give it
    // time).
    s.restart_within(Duration::from_secs(120));
    let keys = s
        .ctl(&["get", "k", "--prefix", "--keys-only"])
        .ok()
        .to_string();
    let keys: Vec<&str> = keys.split_whitespace().collect();
    assert!(
        keys.len() >= acked,
        "{} keys, {acked} acknowledged",
        keys.len()
    );
    for (i, key) in keys.iter().take(acked).enumerate() {
        assert_eq!(*key, format!("k{i:03}"));
    }
    let last = format!("k{:03}", acked - 1);
    let v = s
        .ctl(&["get", &last, "--print-value-only"])
        .ok()
        .to_string();
    assert_eq!(v.trim_end().len(), value.len());
    assert_eq!(s.ctl(&["put", "after", "v"]).ok().trim(), "OK");
}
