//! The `ferrobench` binary from outside: argument errors, `plot`, and a
//! small `compare` against the servers this machine has (ferrocd from the
//! workspace's target dir, `/usr/bin/etcd` when installed), including its
//! Ctrl-C path.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ferrobench");

fn ferrobench(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("ETCD_BIN")
        .stdin(Stdio::null())
        .output()
        .expect("running ferrobench")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh directory under the system temp dir.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ferrobench-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn unknown_workload_is_named() {
    let o = ferrobench(&[
        "compare",
        "--workloads",
        "put,bogus",
        "--out",
        "/nonexistent/x",
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("unknown workload \"bogus\""), "{e}");
    assert!(e.contains("known: put, range-l, range-s"), "{e}");
    // Nothing was created: the workloads are checked first.
    assert!(!Path::new("/nonexistent/x").exists());
}

#[test]
fn bad_numbers_are_refused() {
    for (args, want) in [
        (&["--rounds", "0"][..], "--rounds"),
        (&["--rounds", "many"][..], "--rounds"),
        (&["--members", "2"][..], "members must be 1 or 3"),
        (&["--max-secs", "0"][..], "seconds must be a number above 0"),
        (&["--total", "0"][..], "--total"),
    ] {
        let mut all = vec!["compare", "--out", "/nonexistent/x"];
        all.extend_from_slice(args);
        let o = ferrobench(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    let o = ferrobench(&["compare"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--out"), "{}", stderr(&o));
}

#[test]
fn nothing_to_compare() {
    let d = scratch("nothing");
    let o = ferrobench(&[
        "compare",
        "--no-etcd",
        "--ferrocd",
        "/nonexistent/ferrocd",
        "--out",
        d.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--ferrocd /nonexistent/ferrocd: not an executable"),
        "{}",
        stderr(&o)
    );
    let o = ferrobench(&[
        "compare",
        "--no-etcd",
        "--no-ferrocd",
        "--out",
        d.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("nothing to compare"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn plot_draws_hgrm_files() {
    let d = scratch("plot");
    let golden = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/uniform-1-10000us.hgrm"
    );
    let out = d.join("p.svg");
    let o = ferrobench(&[
        "plot",
        out.to_str().unwrap(),
        golden,
        golden,
        "--label",
        "first & <one>",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.starts_with("<?xml"));
    assert_eq!(svg.matches("<path ").count(), 2);
    assert!(svg.contains("first &amp; &lt;one&gt;"));
    assert!(svg.contains(">uniform-1-10000us</text>"));
    // A file that is neither .hgrm nor a report.
    let bad = d.join("bad.txt");
    std::fs::write(&bad, "hello\n").unwrap();
    let o = ferrobench(&["plot", out.to_str().unwrap(), bad.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("not a .hgrm or ferrobench JSON report"),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// ferrocd from the target dir this test binary was built in.
fn ferrocd() -> Option<PathBuf> {
    let profile_dir = Path::new(BIN).parent()?;
    let target = profile_dir.parent()?;
    [target.join("release/ferrocd"), target.join("debug/ferrocd")]
        .into_iter()
        .find(|p| p.is_file())
}

/// Asserts no process mentions `needle` (servers under a test's data dir),
/// killing any that do (they are this test's) before failing.
fn assert_none_left(needle: &str) {
    let left = processes_mentioning(needle);
    for pid in &left {
        if let Ok(pid) = pid.parse::<libc::pid_t>() {
            // SAFETY: kill takes no pointers; the process runs a server from
            // this test's own scratch dir.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
    assert!(left.is_empty(), "processes outlived compare: {left:?}");
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline"))
            && String::from_utf8_lossy(&cmd).contains(needle)
        {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

/// The smallest real comparison: one member, one round, a few hundred
/// requests; ferrocd, plus Debian's etcd when installed.
#[test]
fn compare_smoke() {
    let Some(ferrocd) = ferrocd() else {
        eprintln!("skipped: no ferrocd binary (cargo build --release -p ferrocd-core)");
        return;
    };
    let d = scratch("compare");
    let data = d.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let out = d.join("out");
    let mut args = vec![
        "compare".to_string(),
        "--ferrocd".into(),
        ferrocd.display().to_string(),
        "--members".into(),
        "1".into(),
        "--rounds".into(),
        "1".into(),
        "--total".into(),
        "200".into(),
        "--clients".into(),
        "4".into(),
        "--conns".into(),
        "2".into(),
        "--workloads".into(),
        "put,range-s".into(),
        "--data-root".into(),
        data.display().to_string(),
        "--out".into(),
        out.display().to_string(),
        "--quiet".into(),
    ];
    let etcd = Path::new("/usr/bin/etcd").is_file();
    if !etcd {
        args.push("--no-etcd".into());
    }
    let started = Instant::now();
    let o = Command::new(BIN)
        .args(&args)
        .env_remove("ETCD_BIN")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(started.elapsed() < Duration::from_secs(60));
    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), md);
    let targets = if etcd { 2 } else { 1 };
    assert_eq!(
        md.lines().filter(|l| l.starts_with("| put | ")).count(),
        targets,
        "{md}"
    );
    assert_eq!(
        md.lines().filter(|l| l.starts_with("| range-s | ")).count(),
        targets,
        "{md}"
    );
    for f in [
        "put-ferrocd-r1.json",
        "put-ferrocd-r1.hgrm",
        "put-ferrocd.hgrm",
        "range-s-ferrocd-r1.json",
        "put.svg",
        "range-s.svg",
        "compare.json",
        "logs/put-ferrocd-r1-m0.log",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    if etcd {
        // One report per round and workload, named after the version.
        let names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        for w in ["put", "range-s"] {
            let runs = names
                .iter()
                .filter(|n| n.starts_with(&format!("{w}-etcd-")) && n.ends_with("-r1.json"))
                .count();
            assert_eq!(runs, 1, "{w}: {names:?}");
        }
    }
    let svg = std::fs::read_to_string(out.join("put.svg")).unwrap();
    assert_eq!(svg.matches("<path ").count(), targets);
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("put-ferrocd-r1.json")).unwrap())
            .unwrap();
    assert_eq!(j["completed"], 200);
    assert!(j["server"]["cpu_secs"].as_f64().is_some(), "{j}");
    assert!(j["client"]["cpu_secs"].as_f64().is_some(), "{j}");
    assert!(md.contains("| client CPU ms / 1k |"), "{md}");
    // Every server was stopped and its data dir removed.
    assert_none_left(&format!("{}/ferrobench-data", data.display()));
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(&d);
}

/// SIGINT in the middle of a run: compare stops its servers and says so.
#[test]
fn compare_stops_servers_on_sigint() {
    let Some(ferrocd) = ferrocd() else {
        eprintln!("skipped: no ferrocd binary (cargo build --release -p ferrocd-core)");
        return;
    };
    let d = scratch("sigint");
    let data = d.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let out = d.join("out");
    let mut child = Command::new(BIN)
        .args(["compare", "--no-etcd", "--ferrocd"])
        .arg(&ferrocd)
        .args(["--rounds", "3", "--total", "100000000", "--max-secs", "20"])
        .args(["--workloads", "put", "--quiet", "--data-root"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until a server runs and the workload has started.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !out.join("put-ferrocd-r1.stderr").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let servers = format!("{}/ferrobench-data", data.display());
    assert!(
        !processes_mentioning(&servers).is_empty(),
        "no server running"
    );
    // SAFETY: kill takes no pointers; the pid is our own unreaped child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("compare did not exit within 20 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert_none_left(&servers);
    assert!(err.contains("interrupted"), "{err}");
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(&d);
}

/// SIGKILL of compare itself (no cleanup possible): its servers die with it.
#[test]
fn servers_die_with_a_killed_compare() {
    let Some(ferrocd) = ferrocd() else {
        eprintln!("skipped: no ferrocd binary (cargo build --release -p ferrocd-core)");
        return;
    };
    let d = scratch("sigkill");
    let data = d.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let out = d.join("out");
    let mut child = Command::new(BIN)
        .args(["compare", "--no-etcd", "--ferrocd"])
        .arg(&ferrocd)
        .args(["--rounds", "1", "--total", "100000000", "--max-secs", "20"])
        .args(["--workloads", "put", "--quiet", "--data-root"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !out.join("put-ferrocd-r1.stderr").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let servers = format!("{}/ferrobench-data", data.display());
    assert!(
        !processes_mentioning(&servers).is_empty(),
        "no server running"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_mentioning(&servers).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_none_left(&servers);
    let _ = std::fs::remove_dir_all(&d);
}
