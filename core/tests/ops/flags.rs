//! etcd's bootstrap checks of `--initial-cluster` against `--name` and
//! `--initial-advertise-peer-urls`: the same flags given to etcd 3.5.1
//! and to ferrocd on a fresh data dir give the same message and exit
//! status 1; a restart on a data dir ignores them (both serve).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{self, etcd_35, free_port, tempdir, wait_child};
use crate::ferrocd;

/// How long a refused start may take.
const REFUSE_WITHIN: Duration = Duration::from_secs(20);

/// Start `bin` with the client/peer listeners and `flags` on `data_dir`;
/// expect it to exit 1 and return its stderr.
fn refused(bin: &Path, data_dir: &Path, client: u16, peer: u16, flags: &[String]) -> String {
    let log = data_dir.with_extension("log");
    let out = std::fs::File::create(&log).expect("log");
    let mut child = Command::new(bin)
        .arg("--data-dir")
        .arg(data_dir)
        .args([
            "--listen-client-urls",
            &format!("http://127.0.0.1:{client}"),
        ])
        .args([
            "--advertise-client-urls",
            &format!("http://127.0.0.1:{client}"),
        ])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args(flags)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .expect("spawn");
    let status = wait_child(&mut child, REFUSE_WITHIN);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let status = status.unwrap_or_else(|| {
        panic!(
            "{} did not refuse {flags:?} (killed after {REFUSE_WITHIN:?}):\n{text}",
            bin.display()
        )
    });
    assert_eq!(
        status.code(),
        Some(1),
        "{}: {flags:?}\n{text}",
        bin.display()
    );
    text
}

/// The error etcd logged (`"error":"..."` of its fatal line), unescaped.
fn etcd_error(log: &str) -> String {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["level"] == "fatal")
        .find_map(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no fatal error line in etcd's log:\n{log}"))
}

/// The error ferrocd printed (`ferrocd: ...` on stderr).
fn ferrocd_error(log: &str) -> String {
    log.lines()
        .find_map(|l| l.strip_prefix("ferrocd: "))
        .unwrap_or_else(|| panic!("no `ferrocd: ` line on stderr:\n{log}"))
        .to_string()
}

/// Every case: (what, flags with `{P}` for the peer port, `{Q}` for
/// another free port).
const CASES: &[(&str, &[&str])] = &[
    (
        "advertised URL not in --initial-cluster",
        &[
            "--name",
            "a",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:{P}",
            "--initial-cluster",
            "a=http://127.0.0.1:{Q}",
        ],
    ),
    (
        "an advertised URL more than --initial-cluster has",
        &[
            "--name",
            "a",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:{P},http://127.0.0.1:{Q}",
            "--initial-cluster",
            "a=http://127.0.0.1:{P}",
        ],
    ),
    (
        "localhost is not 127.0.0.1",
        &[
            "--name",
            "a",
            "--initial-advertise-peer-urls",
            "http://localhost:{P}",
            "--initial-cluster",
            "a=http://127.0.0.1:{P}",
        ],
    ),
    (
        "the same URL twice for this member",
        &[
            "--name",
            "a",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:{P}",
            "--initial-cluster",
            "a=http://127.0.0.1:{P},a=http://127.0.0.1:{P}",
        ],
    ),
    (
        "one URL for two members",
        &[
            "--name",
            "a",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:{P}",
            "--initial-cluster",
            "a=http://127.0.0.1:{P},b=http://127.0.0.1:{P}",
        ],
    ),
    (
        "this member missing from --initial-cluster",
        &[
            "--name",
            "a",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:{P}",
            "--initial-cluster",
            "b=http://127.0.0.1:{P}",
        ],
    ),
    (
        "joining: this member missing",
        &[
            "--name",
            "c",
            "--initial-cluster-state",
            "existing",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:{P}",
            "--initial-cluster",
            "a=http://127.0.0.1:{Q}",
        ],
    ),
    (
        "joining: one URL for two members",
        &[
            "--name",
            "a",
            "--initial-cluster-state",
            "existing",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:{P}",
            "--initial-cluster",
            "a=http://127.0.0.1:{Q},b=http://127.0.0.1:{Q}",
        ],
    ),
];

#[test]
fn issue_21_bootstrap_flag_checks_match_etcd_3_5() {
    let etcd = etcd_35();
    let dir = tempdir();
    for (i, (what, flags)) in CASES.iter().enumerate() {
        let (client, peer, other) = (free_port(), free_port(), free_port());
        let flags: Vec<String> = flags
            .iter()
            .map(|f| {
                f.replace("{P}", &peer.to_string())
                    .replace("{Q}", &other.to_string())
            })
            .collect();
        let e_dir = dir.path().join(format!("etcd-{i}"));
        let f_dir = dir.path().join(format!("ferrocd-{i}"));
        let want = etcd_error(&refused(&etcd, &e_dir, client, peer, &flags));
        let got = ferrocd_error(&refused(&ferrocd(), &f_dir, client, peer, &flags));
        assert_eq!(got, want, "{what}: {flags:?}");
    }
}

/// A member that bootstrapped restarts with any `--initial-cluster`:
/// etcd reads its membership from its data and ignores the flag, and so
/// does ferrocd (it used to refuse a missing name at parse time).
#[test]
fn issue_21_restart_ignores_the_bootstrap_flags() {
    let dir = tempdir();
    for bin in [etcd_35(), ferrocd()] {
        let data = dir
            .path()
            .join(bin.file_name().expect("name").to_string_lossy().to_string());
        let mut s = common::Server::start_bin(&bin, &data, &[]);
        s.ctl(&["put", "k", "v"]).ok();
        s.terminate().expect("stops");
        let other = free_port();
        let log = data.with_extension("restart.log");
        let mut child = Command::new(&bin)
            .args(["--name", common::NAME])
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen-client-urls", &s.client_url()])
            .args(["--advertise-client-urls", &s.client_url()])
            .args(["--listen-peer-urls", &s.peer_url()])
            .args(["--initial-advertise-peer-urls", &s.peer_url()])
            .args([
                "--initial-cluster",
                &format!("elsewhere=http://127.0.0.1:{other}"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut got = String::new();
        while std::time::Instant::now() < deadline {
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "{} refused to restart ({st}):\n{}",
                    bin.display(),
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            let out = s.ctl(&["get", "k", "--print-value-only"]);
            if out.code == Some(0) {
                got = out.stdout.trim().to_string();
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(got, "v", "{}", bin.display());
    }
}

/// A member joining with `--initial-cluster-state existing` must list the
/// cluster's members exactly (etcd's `ValidateClusterAndAssignIDs`; the
/// joining member is added as a learner here, so the one-member cluster
/// keeps its quorum):
/// one member too many, or a member under other peer URLs, is refused
/// with etcd's message, by etcd 3.5.1 and by ferrocd alike.
#[test]
fn issue_21_joining_checks_the_cluster_as_etcd_does() {
    let dir = tempdir();
    for bin in [etcd_35(), ferrocd()] {
        let name = bin.file_name().expect("name").to_string_lossy().to_string();
        let a = common::Server::start_bin(&bin, &dir.path().join(format!("{name}-a")), &[]);
        let (client, peer, other) = (free_port(), free_port(), free_port());
        let peer_url = format!("http://127.0.0.1:{peer}");
        let added = a
            .ctl(&[
                "member",
                "add",
                "b",
                "--learner",
                "--peer-urls",
                &peer_url,
                "-w",
                "json",
            ])
            .json();
        let b_id = added["member"]["ID"]
            .as_u64()
            .expect("the added member's id");
        let a_peer = a.peer_url();
        let cases = [
            (
                format!(
                    "{}={a_peer},b={peer_url},c=http://127.0.0.1:{other}",
                    common::NAME
                ),
                "member count is unequal".to_string(),
            ),
            (
                format!("{}={a_peer},b=http://127.0.0.1:{other}", common::NAME),
                format!(
                    "PeerURLs: no match found for existing member ({b_id:x}, [{peer_url}]), \
                     last resolver error"
                ),
            ),
        ];
        for (i, (initial, want)) in cases.iter().enumerate() {
            let flags: Vec<String> = [
                "--name",
                "b",
                "--initial-cluster-state",
                "existing",
                "--initial-advertise-peer-urls",
                &peer_url,
                "--initial-cluster",
                initial,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let b_dir = dir.path().join(format!("{name}-b{i}"));
            let log = refused(&bin, &b_dir, client, peer, &flags);
            let err = if name == "ferrocd" {
                ferrocd_error(&log)
            } else {
                etcd_error(&log)
            };
            let (prefix, rest) = err
                .split_once("}: ")
                .unwrap_or_else(|| panic!("{name}: {err}"));
            assert!(
                prefix.starts_with("error validating peerURLs {ClusterID:"),
                "{name}: {err}"
            );
            assert!(
                rest.starts_with(want.as_str()),
                "{name}: {rest}\nwant: {want}"
            );
        }
    }
}
