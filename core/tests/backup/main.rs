//! Backups as etcd users take them: `snapshot save` from a running
//! ferrocd (an etcd backend file: bbolt + sha256), `snapshot status` with
//! ferroctl and with real etcdctl 3.5 / Debian's 3.4, `snapshot restore`
//! into a fresh data dir that ferrocd serves (one member and three), real
//! etcd's files restored into ferrocd and ferrocd's into real etcd, and
//! corrupt files refused.

#[path = "../common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Run a command to its end, within 30 s (its output read as it comes,
/// so a big answer cannot fill the pipe and stall it).
fn run(mut cmd: Command) -> Output {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = reader(Box::new(child.stdout.take().unwrap()));
    let err = reader(Box::new(child.stderr.take().unwrap()));
    let Some(status) = common::wait_child(&mut child, Duration::from_secs(30)) else {
        panic!("{cmd:?} ran past 30 s");
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn ferroctl(args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferroctl"));
    c.args(["--dial-timeout=3s", "--command-timeout=20s"])
        .args(args);
    run(c)
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// One ferrocd process on a restored (or fresh) data dir.
struct Member {
    child: Option<Child>,
    client: u16,
    log: PathBuf,
}

impl Member {
    fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client)
    }

    fn ctl(&self, args: &[&str]) -> Output {
        let ep = self.endpoint();
        let mut all = vec!["--endpoints", &ep];
        all.extend_from_slice(args);
        ferroctl(&all)
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "ferrocd exited: {s}\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if common::http_get(self.client, "/health")
                .is_some_and(|(c, b)| c == 200 && b.contains(r#""health":"true""#))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not ready in 30 s\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Start ferrocd `name` on `dir` with these ports and `--initial-cluster`.
fn spawn(dir: &Path, name: &str, client: u16, peer: u16, initial: &str, token: &str) -> Member {
    let log = dir.with_extension("log");
    let out = std::fs::File::create(&log).unwrap();
    let curl = format!("http://127.0.0.1:{client}");
    let purl = format!("http://127.0.0.1:{peer}");
    let child = Command::new(env!("CARGO_BIN_EXE_ferrocd"))
        .args(["--name", name, "--data-dir"])
        .arg(dir)
        .args([
            "--listen-client-urls",
            &curl,
            "--advertise-client-urls",
            &curl,
        ])
        .args([
            "--listen-peer-urls",
            &purl,
            "--initial-advertise-peer-urls",
            &purl,
        ])
        .args([
            "--initial-cluster",
            initial,
            "--initial-cluster-token",
            token,
        ])
        .args(["--log-level", "warn"])
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    Member {
        child: Some(child),
        client,
        log,
    }
}

/// Writes with history: overwrites, a delete, a lease with a key, a
/// compaction. Returns the lease id (hex).
fn write_history(ctl: &dyn Fn(&[&str]) -> Output) -> String {
    ok(&ctl(&["put", "a", "1"]));
    ok(&ctl(&["put", "b", "2"]));
    ok(&ctl(&["put", "a", "3"]));
    ok(&ctl(&["del", "b"]));
    let l = ok(&ctl(&["lease", "grant", "600"]));
    let lease = l.split_whitespace().nth(1).unwrap().to_string();
    ok(&ctl(&["put", "c", "4", "--lease", &lease]));
    for i in 0..50 {
        ok(&ctl(&["put", &format!("k/{i:03}"), &"x".repeat(i * 40)]));
    }
    ok(&ctl(&["compaction", "3"]));
    lease
}

/// etcdctl `snapshot status -w json` on `file` with `bin`, if it runs.
fn etcdctl_status(bin: &Path, file: &Path) -> Option<serde_json::Value> {
    if !bin.exists() {
        eprintln!("note: {} missing; skipped", bin.display());
        return None;
    }
    let mut c = Command::new(bin);
    c.env("ETCDCTL_API", "3")
        .args(["snapshot", "status", "-w", "json"])
        .arg(file);
    Some(json(&ok(&run(c))))
}

/// `Maintenance.Hash` over gRPC.
fn hash(endpoint: &str) -> u32 {
    use ferrocd_net::pb::etcdserverpb::HashRequest;
    use ferrocd_net::pb::etcdserverpb::maintenance_client::MaintenanceClient;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = MaintenanceClient::new(common::connect(endpoint).await);
        tokio::time::timeout(Duration::from_secs(10), c.hash(HashRequest {}))
            .await
            .expect("Hash within 10 s")
            .expect("Hash")
            .into_inner()
            .hash
    })
}

fn status(file: &Path) -> serde_json::Value {
    json(&ok(&ferroctl(&[
        "snapshot",
        "status",
        "-w",
        "json",
        file.to_str().unwrap(),
    ])))
}

#[test]
fn save_status_restore_one_member() {
    let dir = common::tempdir();
    let (client, peer) = (common::free_port(), common::free_port());
    let initial = format!("s1=http://127.0.0.1:{peer}");
    let mut src = spawn(
        &dir.path().join("src"),
        "s1",
        client,
        peer,
        &initial,
        "etcd-cluster",
    );
    src.wait_ready();
    let lease = write_history(&|a| src.ctl(a));
    let before = ok(&src.ctl(&["get", "", "--prefix", "-w", "json"]));
    let at3 = ok(&src.ctl(&["get", "a", "--rev", "3", "-w", "json"]));

    let file = dir.path().join("backup.db");
    let saved = src.ctl(&["snapshot", "save", file.to_str().unwrap()]);
    assert!(ok(&saved).contains("Snapshot saved at"));
    // Equal state, equal file: a second save is byte-identical.
    let file2 = dir.path().join("backup2.db");
    ok(&src.ctl(&["snapshot", "save", file2.to_str().unwrap()]));
    assert_eq!(
        std::fs::read(&file).unwrap(),
        std::fs::read(&file2).unwrap()
    );

    let st = status(&file);
    assert_eq!(st["revision"], 56, "{st}");
    assert!(st["totalKey"].as_u64().unwrap() > 50, "{st}");
    assert!(st["totalSize"].as_u64().unwrap() > 0, "{st}");
    for bin in [common::etcdctl_bin(), PathBuf::from("/usr/bin/etcdctl")] {
        if let Some(v) = etcdctl_status(&bin, &file) {
            assert_eq!(v, st, "{} reads the same status", bin.display());
        }
    }
    // Maintenance.Hash: stable while nothing changes.
    assert_eq!(hash(&src.endpoint()), hash(&src.endpoint()));
    drop(src);

    let rdir = dir.path().join("restored");
    let (client, peer) = (common::free_port(), common::free_port());
    let initial = format!("r1=http://127.0.0.1:{peer}");
    let r = ferroctl(&[
        "snapshot",
        "restore",
        file.to_str().unwrap(),
        "--data-dir",
        rdir.to_str().unwrap(),
        "--name",
        "r1",
        "--initial-cluster",
        &initial,
        "--initial-cluster-token",
        "tok",
        "--initial-advertise-peer-urls",
        &format!("http://127.0.0.1:{peer}"),
    ]);
    ok(&r);
    // A second restore into the same dir is refused, as etcdctl's.
    let again = ferroctl(&[
        "snapshot",
        "restore",
        file.to_str().unwrap(),
        "--data-dir",
        rdir.to_str().unwrap(),
        "--name",
        "r1",
        "--initial-cluster",
        &initial,
    ]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty or could not be read"));

    let mut m = spawn(&rdir, "r1", client, peer, &initial, "tok");
    m.wait_ready();
    let after = ok(&m.ctl(&["get", "", "--prefix", "-w", "json"]));
    let strip = |s: &str| {
        let mut v = json(s);
        v.as_object_mut().unwrap().remove("header");
        v
    };
    assert_eq!(
        strip(&after),
        strip(&before),
        "keys, revisions, versions, leases"
    );
    assert_eq!(
        strip(&ok(&m.ctl(&["get", "a", "--rev", "3", "-w", "json"]))),
        strip(&at3),
        "history"
    );
    let compacted = m.ctl(&["get", "a", "--rev", "2"]);
    assert!(
        !compacted.status.success(),
        "revisions below the compaction stay compacted"
    );
    let leases = ok(&m.ctl(&["lease", "list"]));
    assert!(leases.contains(&lease), "{leases}");
    let ttl = ok(&m.ctl(&["lease", "timetolive", &lease, "--keys"]));
    assert!(ttl.contains("attached keys([c])"), "{ttl}");
    // The restored member is a new cluster with the new flags' ids.
    let ml = json(&ok(&m.ctl(&["member", "list", "-w", "json"])));
    assert_eq!(ml["members"].as_array().unwrap().len(), 1);
    assert_eq!(ml["members"][0]["name"], "r1");
    // It writes on from the restored revision, and keeps it all across a
    // restart.
    let put = json(&ok(&m.ctl(&["put", "new", "v", "-w", "json"])));
    assert_eq!(put["header"]["revision"], 57);
    let mut c = m.child.take().unwrap();
    c.kill().unwrap();
    c.wait().unwrap();
    let mut m = spawn(&rdir, "r1", client, peer, &initial, "tok");
    m.wait_ready();
    assert_eq!(ok(&m.ctl(&["get", "a", "--print-value-only"])).trim(), "3");
    assert_eq!(
        ok(&m.ctl(&["get", "new", "--print-value-only"])).trim(),
        "v"
    );
}

#[test]
fn restore_three_members_from_one_file() {
    let dir = common::tempdir();
    let (client, peer) = (common::free_port(), common::free_port());
    let initial = format!("s1=http://127.0.0.1:{peer}");
    let mut src = spawn(
        &dir.path().join("src"),
        "s1",
        client,
        peer,
        &initial,
        "etcd-cluster",
    );
    src.wait_ready();
    write_history(&|a| src.ctl(a));
    let file = dir.path().join("backup.db");
    ok(&src.ctl(&["snapshot", "save", file.to_str().unwrap()]));
    drop(src);

    let ports: Vec<(u16, u16)> = (0..3)
        .map(|_| (common::free_port(), common::free_port()))
        .collect();
    let initial = ports
        .iter()
        .enumerate()
        .map(|(i, (_, p))| format!("m{i}=http://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut members = Vec::new();
    for (i, (c, p)) in ports.iter().enumerate() {
        let d = dir.path().join(format!("m{i}"));
        ok(&ferroctl(&[
            "snapshot",
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            d.to_str().unwrap(),
            "--name",
            &format!("m{i}"),
            "--initial-cluster",
            &initial,
            "--initial-cluster-token",
            "tok3",
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{p}"),
        ]));
        members.push(spawn(&d, &format!("m{i}"), *c, *p, &initial, "tok3"));
    }
    for m in &mut members {
        m.wait_ready();
    }
    let ml = json(&ok(&members[0].ctl(&["member", "list", "-w", "json"])));
    assert_eq!(ml["members"].as_array().unwrap().len(), 3, "{ml}");
    ok(&members[1].ctl(&["put", "after", "restore"]));
    for m in &members {
        assert_eq!(ok(&m.ctl(&["get", "a", "--print-value-only"])).trim(), "3");
        assert_eq!(
            ok(&m.ctl(&["get", "after", "--print-value-only"])).trim(),
            "restore"
        );
        assert_eq!(
            ok(&m.ctl(&["get", "k/049", "--print-value-only"]))
                .trim()
                .len(),
            49 * 40
        );
    }
    // Every member has the same state: equal Hash and HashKV.
    let eps = members
        .iter()
        .map(Member::endpoint)
        .collect::<Vec<_>>()
        .join(",");
    let hashes = json(&ok(&ferroctl(&[
        "--endpoints",
        &eps,
        "endpoint",
        "hashkv",
        "-w",
        "json",
    ])));
    let hs: Vec<_> = hashes
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["HashKV"]["hash"].clone())
        .collect();
    assert!(hs.windows(2).all(|w| w[0] == w[1]), "{hashes}");
    let h: Vec<u32> = members.iter().map(|m| hash(&m.endpoint())).collect();
    assert!(
        h.windows(2).all(|w| w[0] == w[1]),
        "Maintenance.Hash differs: {h:?}"
    );
}

#[test]
fn corrupt_and_truncated_files_are_refused() {
    let dir = common::tempdir();
    let (client, peer) = (common::free_port(), common::free_port());
    let initial = format!("s1=http://127.0.0.1:{peer}");
    let mut src = spawn(
        &dir.path().join("src"),
        "s1",
        client,
        peer,
        &initial,
        "etcd-cluster",
    );
    src.wait_ready();
    write_history(&|a| src.ctl(a));
    let file = dir.path().join("backup.db");
    ok(&src.ctl(&["snapshot", "save", file.to_str().unwrap()]));
    let good = std::fs::read(&file).unwrap();

    let bad = dir.path().join("bad.db");
    let mut b = good.clone();
    let n = b.len();
    b[n / 2] ^= 0x40;
    std::fs::write(&bad, &b).unwrap();
    let trunc = dir.path().join("trunc.db");
    std::fs::write(&trunc, &good[..good.len() / 2]).unwrap();
    let nosha = dir.path().join("nosha.db");
    std::fs::write(&nosha, &good[..good.len() - 32]).unwrap();

    let st = ferroctl(&["snapshot", "status", bad.to_str().unwrap()]);
    assert_eq!(st.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&st.stderr).contains("expected sha256"),
        "{st:?}"
    );
    let st = ferroctl(&["snapshot", "status", trunc.to_str().unwrap()]);
    assert_eq!(st.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&st.stderr).contains("invalid database"),
        "{st:?}"
    );
    // A db without its checksum (copied from a data dir) has a status...
    ok(&ferroctl(&["snapshot", "status", nosha.to_str().unwrap()]));

    for (f, want) in [
        (&bad, "Error: expected sha256 ["),
        (&trunc, "snapshot missing hash but --skip-hash-check=false"),
        (&nosha, "snapshot missing hash but --skip-hash-check=false"),
    ] {
        let d = dir.path().join("r");
        let r = ferroctl(&[
            "snapshot",
            "restore",
            f.to_str().unwrap(),
            "--data-dir",
            d.to_str().unwrap(),
        ]);
        assert_eq!(r.status.code(), Some(1), "{r:?}");
        assert!(String::from_utf8_lossy(&r.stderr).contains(want), "{r:?}");
        assert!(!d.exists(), "a refused restore creates nothing");
    }
    // ...and restores with --skip-hash-check.
    let d = dir.path().join("r");
    ok(&ferroctl(&[
        "snapshot",
        "restore",
        nosha.to_str().unwrap(),
        "--data-dir",
        d.to_str().unwrap(),
        "--skip-hash-check",
    ]));
    assert!(d.join("member/ids").exists());
    let missing = ferroctl(&["snapshot", "status", "/nonexistent.db"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("Error: stat /nonexistent.db: no such file or directory")
    );
}

/// Migration both ways with a real etcd 3.5.1 (`$ETCD_BIN`): etcd's saved
/// file restored into ferrocd serves the same keys; ferrocd's file
/// restored with `etcdutl` starts a real etcd with the same keys.
#[test]
fn migrate_from_and_to_real_etcd() {
    let Some(etcd) = common::etcd_bin() else {
        return;
    };
    let etcdutl = etcd.with_file_name("etcdutl");
    let dir = common::tempdir();
    let e = common::Server::start_bin(&etcd, &dir.path().join("etcd"), &[]);
    let ectl = |a: &[&str]| e.ctl(a);
    for (k, v) in [("a", "1"), ("b", "2"), ("a", "3")] {
        assert!(ectl(&["put", k, v]).code == Some(0));
    }
    let before = ectl(&["get", "", "--prefix", "-w", "json"]).json();
    let efile = dir.path().join("etcd.db");
    assert_eq!(
        ectl(&["snapshot", "save", efile.to_str().unwrap()]).code,
        Some(0)
    );
    assert_eq!(
        status(&efile),
        etcdctl_status(&common::etcdctl_bin(), &efile).unwrap()
    );

    let (client, peer) = (common::free_port(), common::free_port());
    let initial = format!("f1=http://127.0.0.1:{peer}");
    let fdir = dir.path().join("f1");
    ok(&ferroctl(&[
        "snapshot",
        "restore",
        efile.to_str().unwrap(),
        "--data-dir",
        fdir.to_str().unwrap(),
        "--name",
        "f1",
        "--initial-cluster",
        &initial,
    ]));
    let mut f = spawn(&fdir, "f1", client, peer, &initial, "etcd-cluster");
    f.wait_ready();
    let mut after = json(&ok(&f.ctl(&["get", "", "--prefix", "-w", "json"])));
    let mut before2 = before.clone();
    after.as_object_mut().unwrap().remove("header");
    before2.as_object_mut().unwrap().remove("header");
    assert_eq!(after, before2);

    // ferrocd's file into a real etcd, big enough for branch pages and
    // overflow pages in every tree bbolt reads.
    bulk_put(&f.endpoint(), 2000);
    let fall = strip(&ok(&f.ctl(&["get", "", "--prefix", "-w", "json"])));
    assert_eq!(fall["count"], 2 + 2000 - 286);
    let ffile = dir.path().join("ferrocd.db");
    ok(&f.ctl(&["snapshot", "save", ffile.to_str().unwrap()]));
    let edir = dir.path().join("etcd2");
    let (c2, p2) = (common::free_port(), common::free_port());
    let init2 = format!("e2=http://127.0.0.1:{p2}");
    let mut cmd = Command::new(&etcdutl);
    cmd.args(["snapshot", "restore"])
        .arg(&ffile)
        .arg("--data-dir")
        .arg(&edir)
        .args([
            "--name",
            "e2",
            "--initial-cluster",
            &init2,
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{p2}"),
        ]);
    ok(&run(cmd));
    let curl = format!("http://127.0.0.1:{c2}");
    let purl = format!("http://127.0.0.1:{p2}");
    let log = std::fs::File::create(dir.path().join("etcd2.log")).unwrap();
    let child = Command::new(&etcd)
        .args(["--name", "e2", "--data-dir"])
        .arg(&edir)
        .args([
            "--listen-client-urls",
            &curl,
            "--advertise-client-urls",
            &curl,
        ])
        .args([
            "--listen-peer-urls",
            &purl,
            "--initial-advertise-peer-urls",
            &purl,
        ])
        .args(["--initial-cluster", &init2])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut e2 = Member {
        child: Some(child),
        client: c2,
        log: dir.path().join("etcd2.log"),
    };
    e2.wait_ready();
    let got = strip(&ok(&e2.ctl(&["get", "", "--prefix", "-w", "json"])));
    assert_eq!(got, fall);
    // The restored etcd writes on (bbolt rewrites our pages).
    ok(&e2.ctl(&["put", "after", "x"]));
    assert_eq!(
        ok(&e2.ctl(&["get", "after", "--print-value-only"])).trim(),
        "x"
    );
}

fn strip(s: &str) -> serde_json::Value {
    let mut v = json(s);
    v.as_object_mut().unwrap().remove("header");
    v
}

/// `n` puts over gRPC (values up to 300 bytes, every 500th one 10 KB),
/// then a delete of every 7th key.
fn bulk_put(endpoint: &str, n: usize) {
    use ferrocd_net::pb::etcdserverpb::kv_client::KvClient;
    use ferrocd_net::pb::etcdserverpb::{DeleteRangeRequest, PutRequest};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = KvClient::new(common::connect(endpoint).await);
        let deadline = Instant::now() + Duration::from_secs(120);
        for i in 0..n {
            assert!(Instant::now() < deadline, "bulk puts past 120 s");
            let len = if i % 500 == 0 { 10_000 } else { i % 300 };
            c.put(PutRequest {
                key: format!("bulk/{i:05}").into_bytes(),
                value: vec![b'v'; len],
                ..Default::default()
            })
            .await
            .unwrap();
        }
        for i in (0..n).step_by(7) {
            c.delete_range(DeleteRangeRequest {
                key: format!("bulk/{i:05}").into_bytes(),
                ..Default::default()
            })
            .await
            .unwrap();
        }
    });
}
