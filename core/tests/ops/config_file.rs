//! Issue 23: etcd's `--config-file`. One YAML file that sets every option
//! ferrocd serves is read by etcd 3.5.1 and by ferrocd, on the same ports
//! one after the other, with flags and `ETCD_*` variables beside it that
//! both must ignore: both serve the member the file describes (same name,
//! URLs, member and cluster ids, TLS, request limit, logs). Bad files are
//! refused by both with the same message and exit status.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::{self, etcd_35, etcdctl_bin, free_port, tempdir};
use crate::ferrocd;
use crate::logs::{Proc, json_lines, refusal, refused};
use crate::tls_testing::Ca;

/// The file, with `{DIR}`, `{CLIENT}`, `{PEER}`, `{METRICS}`, `{UI}`
/// and the certificate paths to fill in. Durations are nanoseconds, as
/// etcd's YAML wants them. etcd 3.5.1 ignores the keys later 3.5
/// releases added (`max-concurrent-streams`, `socket-options`,
/// `experimental-snapshot-catch-up-entries`) and ferrocd's own
/// (`shards`, `log-format`, `listen-ui-urls`,
/// `experimental-peer-skip-client-san-verification`).
const FILE: &str = r#"# etcd 3.5's configuration file, every option ferrocd serves.
name: cfg-member
data-dir: {DIR}/data
wal-dir: {DIR}/wal
snapshot-count: 5000
max-snapshots: 3
max-wals: 3
heartbeat-interval: 50
election-timeout: 500
quota-backend-bytes: 1073741824
max-txn-ops: 64
max-request-bytes: 4096
max-concurrent-streams: 1000
grpc-keepalive-min-time: 4000000000
grpc-keepalive-interval: 3600000000000
grpc-keepalive-timeout: 10000000000
socket-options:
  reuse-port: false
  reuse-address: true
listen-peer-urls: https://127.0.0.1:{PEER}
listen-client-urls: https://127.0.0.1:{CLIENT}
initial-advertise-peer-urls: https://127.0.0.1:{PEER}
advertise-client-urls: https://127.0.0.1:{CLIENT}
listen-metrics-urls: http://127.0.0.1:{METRICS}
initial-cluster: cfg-member=https://127.0.0.1:{PEER}
initial-cluster-state: 'new'
initial-cluster-token: cfg-token
strict-reconfig-check: true
pre-vote: true
force-new-cluster: false
auto-compaction-mode: revision
auto-compaction-retention: "1000"
experimental-compaction-batch-limit: 500
experimental-snapshot-catch-up-entries: 1000
experimental-watch-progress-notify-interval: 300000000000
experimental-peer-skip-client-san-verification: false
cors: "*"
host-whitelist: localhost,127.0.0.1
auth-token: simple
bcrypt-cost: 10
auth-token-ttl: 600
logger: zap
log-level: warn
log-outputs: [{DIR}/member.log]
client-transport-security:
  cert-file: {CERT}
  key-file: {KEY}
  client-cert-auth: true
  trusted-ca-file: {CA}
peer-transport-security:
  cert-file: {CERT}
  key-file: {KEY}
  client-cert-auth: true
  trusted-ca-file: {CA}
shards: 2
log-format: json
listen-ui-urls: http://127.0.0.1:{UI}/ui
"#;

/// `etcdctl` over TLS with the client certificate; (status, stdout, stderr).
fn ctl(
    port: u16,
    ca: &Path,
    cert: &Path,
    key: &Path,
    args: &[&str],
) -> (Option<i32>, String, String) {
    let out = Command::new(etcdctl_bin())
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints=https://127.0.0.1:{port}"))
        .arg(format!("--cacert={}", ca.display()))
        .arg(format!("--cert={}", cert.display()))
        .arg(format!("--key={}", key.display()))
        .args(["--dial-timeout=3s", "--command-timeout=10s"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("etcdctl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn issue_23_one_config_file_read_by_etcd_3_5_and_ferrocd() {
    let dir = tempdir();
    let ca = Ca::new(dir.path(), "ca");
    let (cert, key) = ca.issue("member");
    let (client, peer, metrics, ui) = (free_port(), free_port(), free_port(), free_port());
    let mut seen: Vec<(Value, Value)> = Vec::new();
    for bin in [etcd_35(), ferrocd()] {
        let name = bin.file_name().unwrap().to_string_lossy().to_string();
        let base = dir.path().join(&name);
        std::fs::create_dir_all(&base).unwrap();
        let text = FILE
            .replace("{DIR}", base.to_str().unwrap())
            .replace("{CLIENT}", &client.to_string())
            .replace("{PEER}", &peer.to_string())
            .replace("{METRICS}", &metrics.to_string())
            .replace("{UI}", &ui.to_string())
            .replace("{CERT}", cert.to_str().unwrap())
            .replace("{KEY}", key.to_str().unwrap())
            .replace("{CA}", ca.pem().to_str().unwrap());
        let file = base.join("etcd.conf.yml");
        std::fs::write(&file, text).unwrap();
        // Flags and variables that would say otherwise (and would even
        // conflict with each other): the file wins over all of them.
        let args: Vec<String> = [
            "--config-file",
            file.to_str().unwrap(),
            "--name",
            "from-flag",
            "--initial-cluster-token",
            "flag-token",
            "--log-outputs",
            "stdout",
            "--log-level",
            "debug",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let env = [
            ("ETCD_NAME", "from-env"),
            ("ETCD_MAX_REQUEST_BYTES", "100000000"),
            ("ETCD_LISTEN_CLIENT_URLS", "http://127.0.0.1:1"),
        ];
        let mut p = Proc::spawn(&bin, &args, &env, &base.join("run"));
        p.wait_health(metrics);

        let (code, out, err) = ctl(
            client,
            &ca.pem(),
            &cert,
            &key,
            &["member", "list", "-w", "json"],
        );
        assert_eq!(code, Some(0), "{name}: {err}");
        let members: Value = serde_json::from_str(&out).unwrap();
        let m = &members["members"][0];
        assert_eq!(
            members["members"].as_array().unwrap().len(),
            1,
            "{name}: {out}"
        );
        assert_eq!(m["name"], "cfg-member", "{name}");
        assert_eq!(
            m["clientURLs"][0],
            format!("https://127.0.0.1:{client}"),
            "{name}"
        );
        assert_eq!(
            m["peerURLs"][0],
            format!("https://127.0.0.1:{peer}"),
            "{name}"
        );

        let (code, out, err) = ctl(
            client,
            &ca.pem(),
            &cert,
            &key,
            &["endpoint", "status", "-w", "json"],
        );
        assert_eq!(code, Some(0), "{name}: {err}");
        let status: Value = serde_json::from_str(&out).unwrap();
        let s = &status[0]["Status"];
        assert_eq!(s["header"]["member_id"], m["ID"], "{name}: {out}");
        assert_eq!(s["leader"], m["ID"], "{name}: {out}");

        // max-request-bytes 4096 from the file, not 100 MB from ETCD_.
        let (code, _, err) = ctl(client, &ca.pem(), &cert, &key, &["put", "small", "v"]);
        assert_eq!(code, Some(0), "{name}: {err}");
        let big = "x".repeat(5000);
        let (code, _, err) = ctl(client, &ca.pem(), &cert, &key, &["put", "big", &big]);
        assert_ne!(code, Some(0), "{name}");
        assert!(err.contains("request is too large"), "{name}: {err}");

        // client-cert-auth from the file: no certificate, no answer.
        let bare = Command::new(etcdctl_bin())
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints=https://127.0.0.1:{client}"))
            .arg(format!("--cacert={}", ca.pem().display()))
            .args(["--dial-timeout=2s", "--command-timeout=3s", "get", "small"])
            .stdin(Stdio::null())
            .output()
            .expect("etcdctl");
        assert_ne!(
            bare.status.code(),
            Some(0),
            "{name}: served a client without a certificate"
        );

        if name == "ferrocd" {
            // ferrocd's own key: the console on its port.
            assert_eq!(
                common::http_get(ui, "/ui/").map(|(c, _)| c),
                Some(200),
                "console"
            );
        }

        // Logs: into the file at warn, nothing on stdout (the flag said
        // stdout and debug).
        let (stdout, stderr) = p.stop();
        assert_eq!(stdout, "", "{name}");
        assert!(
            json_lines(&stderr, false, &name).is_empty(),
            "{name}: {stderr}"
        );
        let log = std::fs::read_to_string(base.join("member.log"))
            .unwrap_or_else(|e| panic!("{name}: member.log: {e}"));
        for l in json_lines(&log, true, &name) {
            assert!(l["level"] == "warn" || l["level"] == "error", "{name}: {l}");
        }
        seen.push((m.clone(), members["header"]["cluster_id"].clone()));
        // Let the ports go before the next one binds them.
        std::thread::sleep(Duration::from_millis(200));
    }
    // The same member and cluster ids: both derived them from the same
    // peer URLs and token, from the file.
    assert_eq!(seen[0], seen[1]);
}

/// Bad files: both refuse, with the same exit status and, where the
/// message is about the file's content rather than the YAML parser's
/// wording, the same message.
#[test]
fn issue_23_bad_config_files_are_refused_as_etcd_3_5() {
    let dir = tempdir();
    let pre = "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal";
    // (file, exit status, message both give: `None` = compare the start
    // only, up to the parser's own words)
    let cases: &[(&str, i32, Option<String>)] = &[
        (
            "grpc-keepalive-min-time: 5s\n",
            1,
            Some(format!(
                "{pre} string into Go struct field configYAML.grpc-keepalive-min-time of type time.Duration"
            )),
        ),
        (
            "heartbeat-interval: \"100\"\n",
            1,
            Some(format!(
                "{pre} string into Go struct field configYAML.heartbeat-interval of type uint"
            )),
        ),
        (
            "snapshot-count: -1\n",
            1,
            Some(format!(
                "{pre} number -1 into Go struct field configYAML.snapshot-count of type uint64"
            )),
        ),
        (
            "log-outputs: stdout\n",
            1,
            Some(format!(
                "{pre} string into Go struct field configYAML.log-outputs of type []string"
            )),
        ),
        (
            "listen-client-urls: [http://127.0.0.1:2379]\n",
            1,
            Some(format!(
                "{pre} array into Go struct field configYAML.listen-client-urls of type string"
            )),
        ),
        (
            "auto-compaction-retention: 1\n",
            1,
            Some(format!(
                "{pre} number into Go struct field configYAML.auto-compaction-retention of type string"
            )),
        ),
        (
            "client-transport-security:\n  cert-file: 5\n",
            1,
            Some(format!(
                "{pre} number into Go struct field securityConfig.client-transport-security.cert-file of type string"
            )),
        ),
        (
            // YAML 1.1: a plain `yes` is a boolean.
            "name: yes\n",
            1,
            Some(format!(
                "{pre} bool into Go struct field configYAML.name of type string"
            )),
        ),
        (
            "logger: capnslog\n",
            1,
            Some("--logger=capnslog is removed in v3.5".into()),
        ),
        (
            "log-level: loud\n",
            2,
            Some("panic: unrecognized level: \"loud\"".into()),
        ),
        ("name: [x\n", 1, None),
    ];
    for (i, (yaml, code, want)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("bad-{i}.yml"));
        std::fs::write(&file, yaml).unwrap();
        let mut got = Vec::new();
        for bin in [etcd_35(), ferrocd()] {
            let name = bin.file_name().unwrap().to_string_lossy().to_string();
            let args = vec![
                "--config-file".to_string(),
                file.to_str().unwrap().to_string(),
            ];
            let (status, _, stderr) = refused(&bin, &args, &dir.path().join(format!("{name}-{i}")));
            assert_eq!(status, Some(*code), "{name} {yaml:?}:\n{stderr}");
            got.push(refusal(&stderr));
        }
        match want {
            Some(w) => {
                assert_eq!(&got[0], w, "etcd {yaml:?}");
                assert_eq!(&got[1], w, "ferrocd {yaml:?}");
            }
            None => {
                for g in &got {
                    assert!(
                        // The line and the words are each parser's own.
                        g.starts_with("error converting YAML to JSON: yaml: line "),
                        "{yaml:?}: {g}"
                    );
                }
            }
        }
    }
    // A missing file: the same words.
    let missing = dir.path().join("missing.yml");
    let mut got = Vec::new();
    for bin in [etcd_35(), ferrocd()] {
        let args = vec![
            "--config-file".to_string(),
            missing.to_str().unwrap().to_string(),
        ];
        let (status, _, stderr) = refused(&bin, &args, &dir.path().join("missing"));
        assert_eq!(status, Some(1), "{stderr}");
        got.push(refusal(&stderr));
    }
    assert_eq!(
        got[0],
        format!("open {}: no such file or directory", missing.display())
    );
    assert_eq!(got[0], got[1]);
}
