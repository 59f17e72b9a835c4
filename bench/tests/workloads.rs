//! Every ferrobench workload, briefly, against a live ferrocd (the
//! workspace's own server binary, built by the same test run): each run
//! must complete without errors and print a well-formed JSON report. Runs
//! are tiny and bounded in count and time; nothing here measures speed.
//! Argument errors exit non-zero with a message.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `target/<profile>/<name>`, next to this test's own binary's `deps/`.
fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is not built; run the workspace's tests (`cargo nextest run --workspace`)",
        p.display()
    );
    p
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let (c, p) = (free_port(), free_port());
    let client = format!("http://127.0.0.1:{c}");
    let peer = format!("http://127.0.0.1:{p}");
    let child = Command::new(bin("ferrocd"))
        .args(["--name", "b1", "--data-dir"])
        .arg(dir.path().join("data"))
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
        .args([
            "--initial-cluster",
            &format!("b1={peer}"),
            "--log-level",
            "error",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ferrocd");
    let endpoint = format!("127.0.0.1:{c}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&endpoint).is_err() {
        assert!(Instant::now() < deadline, "ferrocd did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        child,
        endpoint,
        _dir: dir,
    }
}

/// `ferrobench ARGS -w json -q`, bounded; the parsed report.
fn bench(args: &[&str]) -> serde_json::Value {
    let out = Command::new(bin("ferrobench"))
        .args(args)
        .args(["-w", "json", "-q", "--max-secs", "30"])
        .output()
        .expect("run ferrobench");
    assert!(
        out.status.success(),
        "ferrobench {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn every_workload_completes_with_a_well_formed_report() {
    let s = start();
    let ep = s.endpoint.as_str();
    let runs: &[(&[&str], &str, u64)] = &[
        (&["put", "--total", "200", "--clients", "8"], "put", 200),
        (
            &[
                "range",
                "--total",
                "300",
                "--clients",
                "8",
                "--key-space",
                "50",
                "--consistency",
                "s",
            ],
            "range-serializable",
            300,
        ),
        (
            &[
                "range",
                "--total",
                "100",
                "--key-space",
                "50",
                "--keys-per-range",
                "5",
            ],
            "range-n-linearizable",
            100,
        ),
        (
            &[
                "txn",
                "--total",
                "200",
                "--clients",
                "8",
                "--key-space",
                "20",
            ],
            "txn-cas",
            200,
        ),
        (
            &[
                "mixed",
                "--total",
                "300",
                "--clients",
                "8",
                "--protocol",
                "fast",
            ],
            "mixed",
            300,
        ),
        (
            &["lease-churn", "--total", "50", "--clients", "4"],
            "lease-churn",
            50,
        ),
        (
            &[
                "k8s",
                "--total",
                "200",
                "--clients",
                "8",
                "--objects",
                "100",
            ],
            "k8s",
            200,
        ),
        // 100 puts seen by 5 watchers: 500 events.
        (
            &[
                "watch",
                "--total",
                "100",
                "--clients",
                "2",
                "--watchers",
                "5",
            ],
            "watch",
            500,
        ),
        (
            &[
                "put",
                "--total",
                "100",
                "--rate",
                "500",
                "--warmup",
                "20",
                "--protocol",
                "fast",
            ],
            "put",
            100,
        ),
    ];
    for (args, workload, completed) in runs {
        let mut a = args.to_vec();
        a.extend(["--endpoints", ep]);
        let pid = s.child.id().to_string();
        a.extend(["--server-pid", &pid]);
        let j = bench(&a);
        assert_eq!(j["workload"], *workload, "{args:?}");
        assert_eq!(j["completed"], *completed, "{args:?}: {j}");
        assert_eq!(j["errors"], 0, "{args:?}");
        let lat = &j["latency_us"];
        for q in ["p50", "p99", "max"] {
            assert!(
                lat[q].as_u64().is_some_and(|v| v > 0),
                "{args:?}: {q} in {lat}"
            );
        }
        assert!(lat["p50"].as_u64() <= lat["max"].as_u64());
        assert!(j["server"]["cpu_secs"].as_f64().is_some(), "{j}");
        assert!(j["client"]["cpu_secs"].as_f64().is_some(), "{j}");
    }
}

#[test]
fn argument_errors_exit_non_zero_with_a_message() {
    for (args, says) in [
        (&["put", "--clients", "0"][..], "--clients"),
        (
            &["mixed", "--read-ratio", "1.5", "--endpoints", "127.0.0.1:1"],
            "read-ratio",
        ),
        (&["nosuch"], "unrecognized subcommand"),
        (
            &["put", "--duration", "1", "--max-secs", "2"],
            "cannot be used with",
        ),
        (
            &[
                "put",
                "--key-size",
                "2",
                "--key-space",
                "1000",
                "--endpoints",
                "127.0.0.1:1",
            ],
            "does not fit",
        ),
    ] {
        let out = Command::new(bin("ferrobench")).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
