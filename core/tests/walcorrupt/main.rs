//! Issue #18, end to end: a single member, 20 puts, SIGKILL, one byte of
//! the last entry record's payload flipped in the WAL. The record was
//! complete and acknowledged, so recovery must not take it for a torn
//! write: the member refuses to start (non-zero exit, the segment file and
//! byte offset in its error, every file of the data dir byte-identical
//! afterwards). `ferroctl wal repair` without `--confirm` lists the entry
//! it would drop and changes nothing; with `--confirm` it drops exactly
//! that entry, and the member starts with 19 keys. Without the damage,
//! the restart serves all 20.

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{NAME, Server, server_bin, tempdir};
use ferrocd_wal::record::{self, Kind};

/// How long the refused start may take to exit.
const EXIT_WITHIN: Duration = Duration::from_secs(30);

fn put_20(server: &Server) {
    for i in 1..=20 {
        server
            .ctl(&["put", &format!("k{i:02}"), &format!("value {i}")])
            .ok();
    }
}

fn keys(server: &Server) -> Vec<String> {
    server
        .ctl(&["get", "k", "--prefix", "--keys-only"])
        .ok()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Every file under `dir`, with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// The newest WAL segment, the offset of its last entry record and that
/// entry's raft index.
fn last_entry(data_dir: &Path) -> (PathBuf, usize, u64) {
    let wal = data_dir.join("member/wal");
    let mut segs: Vec<PathBuf> = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    segs.sort();
    let tail = segs.pop().expect("a segment");
    let data = std::fs::read(&tail).unwrap();
    let (mut at, mut last) = (0, None);
    while let Ok((rec, n)) = record::decode(&data[at..]) {
        if rec.kind == Kind::Entry {
            last = Some((at, rec.index));
        }
        at += n;
    }
    let (at, index) = last.expect("an entry record");
    (tail, at, index)
}

fn ferroctl(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferroctl"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ferroctl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Start the member on its data dir and ports as `server` does, expecting
/// it to exit by itself; its exit code and output.
fn start_expecting_exit(server: &Server) -> (Option<i32>, String) {
    let log = server.data_dir().with_extension("refused.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(server_bin())
        .args(["--name", NAME, "--data-dir"])
        .arg(server.data_dir())
        .args(["--listen-client-urls", &server.client_url()])
        .args(["--advertise-client-urls", &server.client_url()])
        .args(["--listen-peer-urls", &server.peer_url()])
        .args(["--initial-advertise-peer-urls", &server.peer_url()])
        .args([
            "--initial-cluster",
            &format!("{NAME}={}", server.peer_url()),
        ])
        .args(["--initial-cluster-state", "new"])
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let Some(status) = common::wait_child(&mut child, EXIT_WITHIN) else {
        panic!(
            "the member started on a corrupt WAL and kept running: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    };
    (status.code(), std::fs::read_to_string(&log).unwrap())
}

#[test]
fn issue_18_flipped_byte_in_the_last_entry_is_refused_then_repaired() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let mut server = Server::start(&data);
    put_20(&server);
    server.kill();

    let (tail, at, index) = last_entry(&data);
    let mut bytes = std::fs::read(&tail).unwrap();
    bytes[at + 24 + 5] ^= 0x08; // inside the payload
    std::fs::write(&tail, &bytes).unwrap();
    let before = files(&data);

    let (code, log) = start_expecting_exit(&server);
    assert_ne!(code, Some(0), "{log}");
    let tail_name = tail.display().to_string();
    assert!(
        log.contains(&tail_name) && log.contains(&format!("byte offset {at}")),
        "the error names the file and offset: {log}"
    );
    assert!(log.contains("ferroctl wal repair"), "{log}");
    assert_eq!(files(&data), before, "a refused start changes nothing");

    let d = data.to_str().unwrap();
    let (code, out, err) = ferroctl(&["wal", "repair", "--data-dir", d]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains(&format!("entry {index} (the damaged record)"))
            && out.contains(&format!("raft entries dropped: {index}\n"))
            && out.contains("dry run"),
        "{out}"
    );
    assert_eq!(files(&data), before, "a dry run changes nothing");

    let (code, out, err) = ferroctl(&["wal", "repair", "--data-dir", d, "--confirm"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains(&format!("raft entries dropped: {index}\n")) && out.contains("repaired"),
        "{out}"
    );
    println!("{out}");

    server.restart();
    let want: Vec<String> = (1..=19).map(|i| format!("k{i:02}")).collect();
    assert_eq!(keys(&server), want);
    // It takes writes again.
    server.ctl(&["put", "k20", "again"]).ok();
    assert_eq!(keys(&server).len(), 20);
}

#[test]
fn issue_18_without_damage_every_key_survives_kill_9() {
    let dir = tempdir();
    let data = dir.path().join("data");
    let mut server = Server::start(&data);
    put_20(&server);
    server.kill();
    let d = data.to_str().unwrap();
    let (code, out, _) = ferroctl(&["wal", "repair", "--data-dir", d]);
    assert_eq!(code, Some(0));
    assert!(out.contains("nothing to repair"), "{out}");
    server.restart();
    let want: Vec<String> = (1..=20).map(|i| format!("k{i:02}")).collect();
    assert_eq!(keys(&server), want);
}
