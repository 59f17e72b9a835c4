//! `/metrics` against etcd's names (issue #23), and `/livez` / `/readyz`.
//!
//! `names.txt` lists every name etcd 3.4.23 and 3.5.1 export and every
//! name etcd's monitoring mixin queries, with whether ferrocd serves it.
//! The tests keep it honest both ways: etcd's own `/metrics` must have no
//! name the file lacks, and every "served" name must be on each member of
//! a live three-member ferrocd cluster with etcd's type. The counters
//! move with their events: a leader change, puts, ranges, health checks,
//! client and peer traffic.

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, tempdir};

/// One fixture line: etcd's type and ferrocd's status.
struct Entry {
    kind: String,
    served: bool,
}

fn fixture() -> BTreeMap<String, Entry> {
    let text = include_str!("names.txt");
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut f = line.split_whitespace();
        let (name, kind, _sources, status) = (
            f.next().unwrap(),
            f.next().unwrap(),
            f.next().unwrap(),
            f.next().expect("a status"),
        );
        assert!(
            status == "served" || status == "not-served:" || status == "missing:",
            "bad status in {line:?}"
        );
        assert!(
            status == "served" || f.next().is_some(),
            "a name not served needs its reason: {line:?}"
        );
        let dup = out.insert(
            name.to_string(),
            Entry {
                kind: kind.to_string(),
                served: status == "served",
            },
        );
        assert!(dup.is_none(), "{name} listed twice");
    }
    out
}

/// `# TYPE name kind` lines of a scrape: name → kind.
fn types(scrape: &str) -> BTreeMap<String, String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, k)| (n.to_string(), k.to_string()))
        .collect()
}

/// The value of the sample line `series` (name and labels exactly as
/// written), if present.
fn value(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The sum of every sample of `name` (all label sets).
fn sum(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// A GET that may take up to `within` (a readiness check waits for a
/// read index round): (status, body). HTTP/1.0, so that Go's server does
/// not answer a large `/metrics` in chunks.
fn get_within(port: u16, path: &str, within: Duration) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(within)).ok()?;
    s.set_write_timeout(Some(within)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

fn scrape(port: u16) -> String {
    let (code, body) = get_within(port, "/metrics", Duration::from_secs(5)).expect("GET /metrics");
    assert_eq!(code, 200);
    assert!(
        body.ends_with('\n') && !body.contains('\r'),
        "a whole, unchunked scrape"
    );
    body
}

/// Some traffic, so that etcd creates its lazily made series.
fn exercise(s: &Server) {
    s.ctl(&["put", "a", "1"]).ok();
    s.ctl(&["put", "b", "2"]).ok();
    s.ctl(&["get", "a"]).ok();
    s.ctl(&["del", "b"]).ok();
    s.ctl_stdin(&["txn"], Some("\nput c 3\n\n\n")).ok();
    let lease = s.ctl(&["lease", "grant", "100"]);
    let id = lease.ok().split_whitespace().nth(1).unwrap().to_string();
    s.ctl(&["put", "--lease", &id, "l", "x"]).ok();
    s.ctl(&["lease", "keep-alive", "--once", &id]).ok();
    s.ctl(&["compact", "3"]).ok();
    s.ctl(&["defrag"]).ok();
    let _ = common::http_get(s.client_port(), "/health");
}

/// Every name etcd exports is in the fixture, with the same type.
#[test]
fn fixture_lists_every_name_etcd_exports() {
    let want = fixture();
    for (release, bin) in [("3.4.23", common::etcd_34()), ("3.5.1", common::etcd_35())] {
        let tmp = tempdir();
        let s = Server::start_bin(&bin, &tmp.path().join("data"), &[]);
        exercise(&s);
        let got = types(&scrape(s.client_port()));
        assert!(got.len() > 80, "etcd {release} exported only {}", got.len());
        let mut unlisted = Vec::new();
        for (name, kind) in &got {
            match want.get(name) {
                None => unlisted.push(name.clone()),
                Some(e) => assert_eq!(&e.kind, kind, "etcd {release}'s type of {name}"),
            }
        }
        assert!(
            unlisted.is_empty(),
            "etcd {release} exports names names.txt lacks: {unlisted:?}"
        );
    }
}

/// A three-member ferrocd cluster on loopback.
struct Cluster {
    children: Vec<Option<Child>>,
    clients: Vec<u16>,
}

impl Cluster {
    fn start(root: &Path) -> Cluster {
        let peers: Vec<u16> = (0..3).map(|_| common::free_port()).collect();
        let clients: Vec<u16> = (0..3).map(|_| common::free_port()).collect();
        let initial = (0..3)
            .map(|i| format!("m{i}=http://127.0.0.1:{}", peers[i]))
            .collect::<Vec<_>>()
            .join(",");
        let children = (0..3)
            .map(|i| {
                let curl = format!("http://127.0.0.1:{}", clients[i]);
                let purl = format!("http://127.0.0.1:{}", peers[i]);
                let log = std::fs::File::create(root.join(format!("m{i}.log"))).unwrap();
                Some(
                    Command::new(env!("CARGO_BIN_EXE_ferrocd"))
                        .args(["--name", &format!("m{i}"), "--data-dir"])
                        .arg(root.join(format!("m{i}")))
                        .args([
                            "--listen-client-urls",
                            &curl,
                            "--advertise-client-urls",
                            &curl,
                        ])
                        .args(["--listen-peer-urls", &purl])
                        .args(["--initial-advertise-peer-urls", &purl])
                        .args(["--initial-cluster", &initial, "--log-level", "warn"])
                        .stdin(Stdio::null())
                        .stdout(log.try_clone().unwrap())
                        .stderr(log)
                        .spawn()
                        .expect("spawn ferrocd"),
                )
            })
            .collect();
        let c = Cluster { children, clients };
        for &port in &c.clients {
            wait_until(Duration::from_secs(30), "a member serves /health", || {
                matches!(common::http_get(port, "/health"), Some((200, _)))
            });
        }
        c
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn ctl(&self, i: usize, args: &[&str]) -> String {
        let out = Command::new(common::etcdctl_bin())
            .arg(format!("--endpoints=127.0.0.1:{}", self.clients[i]))
            .args(args)
            .output()
            .expect("run etcdctl");
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The leader's index, by `etcd_server_is_leader`.
    fn leader(&self) -> Option<usize> {
        (0..3).find(|&i| {
            self.children[i].is_some()
                && value(&scrape(self.clients[i]), "etcd_server_is_leader") == Some(1.0)
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}

fn wait_until(within: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < within, "not within {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every served name on every member with etcd's type; counters that move
/// with their events; a leader change counted by every member; without
/// a leader `/readyz` fails while `/livez` still answers ok.
#[test]
fn served_names_and_their_events_on_a_three_member_cluster() {
    let want = fixture();
    let tmp = tempdir();
    let mut c = Cluster::start(tmp.path());
    let leader = {
        let mut l = None;
        wait_until(Duration::from_secs(10), "a leader", || {
            l = c.leader();
            l.is_some()
        });
        l.unwrap()
    };
    let follower = (leader + 1) % 3;

    // Counters before, on the follower the client talks to and on all.
    let before: Vec<String> = c.clients.iter().map(|&p| scrape(p)).collect();
    c.ctl(follower, &["put", "k", "v"]);
    c.ctl(follower, &["get", "k"]);
    c.ctl(follower, &["get", "k", "--consistency=s"]);
    let health_ok = |s: &str| value(s, "etcd_server_health_success").unwrap();
    assert!(matches!(
        common::http_get(c.clients[follower], "/health"),
        Some((200, _))
    ));
    // Puts are applied on every member: each counts it (etcd counts in
    // its store too).
    for (&port, b) in c.clients.iter().zip(&before) {
        wait_until(Duration::from_secs(5), "the put counted everywhere", || {
            value(&scrape(port), "etcd_mvcc_put_total")
                == Some(value(b, "etcd_mvcc_put_total").unwrap() + 1.0)
        });
    }
    let after = scrape(c.clients[follower]);
    let b = &before[follower];
    let moved = |name: &str| value(&after, name).unwrap() - value(b, name).unwrap();
    assert_eq!(moved("etcd_mvcc_range_total"), 2.0);
    assert_eq!(health_ok(&after) - health_ok(b), 1.0);
    // The put: `k` and `v` (a 6-byte message), the gets: `k` (3 bytes,
    // and the serializable flag); answers are larger.
    assert!(moved("etcd_network_client_grpc_received_bytes_total") >= 6.0 + 3.0 + 3.0);
    assert!(moved("etcd_network_client_grpc_sent_bytes_total") > 30.0);
    // etcdctl 3.5's three unary calls, by its `client-api-version`.
    let by_version = r#"etcd_server_client_requests_total{client_api_version="3.5",type="unary"}"#;
    assert_eq!(
        value(&after, by_version).unwrap() - value(b, by_version).unwrap_or(0.0),
        3.0
    );
    // The put's entry went into every member's WAL, and every member
    // timed its apply.
    let applied_puts =
        r#"etcd_server_apply_duration_seconds_count{op="Put",success="true",version="v3"}"#;
    for (&port, b) in c.clients.iter().zip(&before) {
        let now = scrape(port);
        let wal = "etcd_disk_wal_write_bytes_total";
        assert!(value(&now, wal).unwrap() > value(b, wal).unwrap());
        assert_eq!(
            value(&now, applied_puts).unwrap() - value(b, applied_puts).unwrap_or(0.0),
            1.0
        );
    }
    let put_msgs = r#"grpc_server_msg_received_total{grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"}"#;
    assert_eq!(moved(put_msgs), 1.0);
    // The follower forwarded the put to the leader and heard from it.
    assert!(
        sum(&after, "etcd_network_peer_sent_bytes_total")
            > sum(b, "etcd_network_peer_sent_bytes_total")
    );
    assert!(
        sum(&after, "etcd_network_peer_received_bytes_total")
            > sum(b, "etcd_network_peer_received_bytes_total")
    );
    // The leader measures heartbeat round trips to each follower.
    let on_leader = scrape(c.clients[leader]);
    assert!(
        sum(
            &on_leader,
            "etcd_network_peer_round_trip_time_seconds_count"
        ) > 0.0
    );
    assert_eq!(value(&on_leader, "etcd_server_is_leader"), Some(1.0));
    assert_eq!(
        value(&on_leader, "etcd_server_proposals_pending"),
        Some(0.0)
    );

    // Every served name, on every member, with etcd's type (after a
    // client call: etcd makes the client request series on the first).
    for (i, &port) in c.clients.iter().enumerate() {
        c.ctl(i, &["get", "k"]);
        let got = types(&scrape(port));
        for (name, e) in want.iter().filter(|(_, e)| e.served) {
            assert_eq!(
                got.get(name),
                Some(&e.kind),
                "member {i}: {name} missing or of another type"
            );
        }
        let text = scrape(port);
        assert_eq!(value(&text, "etcd_server_has_leader"), Some(1.0));
        assert!(text.contains(r#"etcd_server_version{server_version="3.5.0"} 1"#));
        assert!(text.contains("etcd_server_id{server_id=\""));
    }

    // A leader change: every member sees one more.
    let seen: Vec<f64> = c
        .clients
        .iter()
        .map(|&p| value(&scrape(p), "etcd_server_leader_changes_seen_total").unwrap())
        .collect();
    assert!(
        seen.iter().all(|&n| n >= 1.0),
        "the first election counts: {seen:?}"
    );
    let target = scrape(c.clients[follower]);
    let target_id = target
        .lines()
        .find_map(|l| l.strip_prefix("etcd_server_id{server_id=\""))
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    c.ctl(leader, &["move-leader", &target_id]);
    for (&port, &n0) in c.clients.iter().zip(&seen) {
        wait_until(Duration::from_secs(10), "the leader change counted", || {
            value(&scrape(port), "etcd_server_leader_changes_seen_total").is_some_and(|n| n > n0)
        });
    }
    assert_eq!(c.leader(), Some(follower));

    // No leader: two members gone, the third is alive but not ready.
    let last = (follower + 1) % 3;
    c.kill(follower);
    c.kill((last + 1) % 3);
    let port = c.clients[last];
    wait_until(Duration::from_secs(15), "the leader lost", || {
        value(&scrape(port), "etcd_server_has_leader") == Some(0.0)
    });
    assert_eq!(
        common::http_get(port, "/livez"),
        Some((200, "ok\n".to_string()))
    );
    let (code, body) = get_within(port, "/readyz", Duration::from_secs(20)).expect("GET /readyz");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.starts_with(
            "[+]data_corruption ok\n[+]serializable_read ok\n[-]linearizable_read failed: "
        ),
        "{body}"
    );
    assert_eq!(
        get_within(
            port,
            "/readyz?exclude=linearizable_read",
            Duration::from_secs(5)
        ),
        Some((200, "ok\n".to_string()))
    );
    let failures = value(&scrape(port), "etcd_server_health_failures").unwrap();
    assert!(matches!(common::http_get(port, "/health"), Some((503, _))));
    assert_eq!(
        value(&scrape(port), "etcd_server_health_failures"),
        Some(failures + 1.0)
    );
    // Proposals without a leader fail (and count).
    let failed = value(&scrape(port), "etcd_server_proposals_failed_total").unwrap();
    let out = Command::new(common::etcdctl_bin())
        .arg(format!("--endpoints=127.0.0.1:{port}"))
        .args(["--command-timeout=20s", "put", "x", "y"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        value(&scrape(port), "etcd_server_proposals_failed_total"),
        Some(failed + 1.0)
    );
    // `/readyz`'s read index round found no leader until its request
    // timeout: a slow read index, as etcd counts a timed-out one.
    wait_until(Duration::from_secs(20), "a slow read index", || {
        value(&scrape(port), "etcd_server_slow_read_indexes_total").is_some_and(|n| n >= 1.0)
    });
}

/// `/livez` and `/readyz` in etcd 3.5.11+'s format, with `verbose`,
/// `exclude` and one check's sub-path; a CORRUPT alarm makes the member
/// unready, a NOSPACE alarm does not (etcd checks only CORRUPT there).
#[test]
fn livez_and_readyz() {
    let tmp = tempdir();
    let s = Server::start(&tmp.path().join("data"));
    let port = s.client_port();
    let get = |path: &str| get_within(port, path, Duration::from_secs(20)).expect(path);
    assert_eq!(get("/livez"), (200, "ok\n".into()));
    assert_eq!(
        get("/livez?verbose"),
        (200, "[+]serializable_read ok\nok\n".into())
    );
    assert_eq!(get("/readyz"), (200, "ok\n".into()));
    assert_eq!(
        get("/readyz?verbose"),
        (
            200,
            "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\nok\n".into()
        )
    );
    assert_eq!(
        get("/readyz?verbose&exclude=serializable_read&exclude=no_such_check"),
        (
            200,
            "[+]data_corruption ok\n[+]linearizable_read ok\nok\n".into()
        )
    );
    assert_eq!(get("/readyz/data_corruption"), (200, "ok\n".into()));
    assert_eq!(
        common::http_post(port, "/livez", "").map(|r| r.0),
        Some(405)
    );

    let member = {
        let (_, body) = common::http_post(port, "/v3/maintenance/status", "{}").unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["header"]["member_id"].as_str().unwrap().to_string()
    };
    let alarm = |kind: &str| {
        let body = format!(r#"{{"action":"ACTIVATE","memberID":"{member}","alarm":"{kind}"}}"#);
        let (code, text) = common::http_post(port, "/v3/maintenance/alarm", &body).unwrap();
        assert_eq!(code, 200, "{text}");
    };
    alarm("NOSPACE");
    assert_eq!(get("/readyz"), (200, "ok\n".into()));
    alarm("CORRUPT");
    let failed = "[-]data_corruption failed: alarm activated: CORRUPT\n";
    assert_eq!(
        get("/readyz"),
        (
            503,
            format!("{failed}[+]serializable_read ok\n[+]linearizable_read ok\n\n")
        )
    );
    assert_eq!(get("/readyz/data_corruption"), (503, format!("{failed}\n")));
    assert_eq!(get("/readyz?exclude=data_corruption"), (200, "ok\n".into()));
    assert_eq!(get("/livez"), (200, "ok\n".into()));
}

/// Lease, maintenance and scrape series move with their events on one
/// member.
#[test]
fn lease_maintenance_and_scrape_series_move() {
    let tmp = tempdir();
    let s = Server::start(&tmp.path().join("data"));
    let before = scrape(s.client_port());
    s.ctl(&["lease", "grant", "100"]).ok();
    s.ctl(&["defrag"]).ok();
    s.ctl(&["endpoint", "hashkv"]).ok();
    s.ctl_stdin(
        &["txn"],
        Some("value(\"a\") = \"1\"\n\n\nput a 1\nput b 2\n\n"),
    )
    .ok();
    let after = scrape(s.client_port());
    let moved = |name: &str| value(&after, name).unwrap() - value(&before, name).unwrap();
    assert_eq!(moved("etcd_debugging_lease_granted_total"), 1.0);
    assert_eq!(moved("etcd_debugging_lease_ttl_total_count"), 1.0);
    assert_eq!(
        moved("etcd_disk_backend_defrag_duration_seconds_count"),
        1.0
    );
    assert_eq!(moved("etcd_mvcc_hash_rev_duration_seconds_count"), 1.0);
    // The txn's compare failed: one range (the compare) and two puts ran
    // in one store transaction.
    assert_eq!(moved("etcd_mvcc_txn_total"), 1.0);
    assert_eq!(moved("etcd_mvcc_put_total"), 2.0);
    assert_eq!(moved("etcd_debugging_mvcc_put_total"), 2.0);
    // `a`=`1` and `b`=`2`: four key and value bytes.
    assert_eq!(moved("etcd_debugging_mvcc_total_put_size_in_bytes"), 4.0);
    // A gateway call counts as the gRPC message it stands for: a Range of
    // key `a` is 3 bytes.
    let range = r#"grpc_server_msg_received_total{grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"}"#;
    let bytes = "etcd_network_client_grpc_received_bytes_total";
    let b = scrape(s.client_port());
    let (code, _) =
        common::http_post(s.client_port(), "/v3/kv/range", r#"{"key":"YQ=="}"#).unwrap();
    assert_eq!(code, 200);
    let a = scrape(s.client_port());
    assert_eq!(value(&a, range).unwrap() - value(&b, range).unwrap(), 1.0);
    assert_eq!(value(&a, bytes).unwrap() - value(&b, bytes).unwrap(), 3.0);
    // A watch stream counts while it is open.
    let streams = "etcd_debugging_mvcc_watch_stream_total";
    assert_eq!(value(&scrape(s.client_port()), streams), Some(0.0));
    let watcher = s.ctl_spawn(&["watch", "w"]);
    wait_until(Duration::from_secs(10), "the watch stream counted", || {
        value(&scrape(s.client_port()), streams) == Some(1.0)
    });
    // Its events count once sent; none is left pending, no watcher slow.
    let events = "etcd_debugging_mvcc_events_total";
    let sent = value(&scrape(s.client_port()), events).unwrap();
    s.ctl(&["put", "w", "1"]).ok();
    s.ctl(&["del", "w"]).ok();
    wait_until(Duration::from_secs(10), "the watch events counted", || {
        value(&scrape(s.client_port()), events) == Some(sent + 2.0)
    });
    let now = scrape(s.client_port());
    assert_eq!(
        value(&now, "etcd_debugging_mvcc_pending_events_total"),
        Some(0.0)
    );
    assert_eq!(
        value(&now, "etcd_debugging_mvcc_slow_watcher_total"),
        Some(0.0)
    );
    drop(watcher);
    wait_until(Duration::from_secs(10), "the watch stream gone", || {
        value(&scrape(s.client_port()), streams) == Some(0.0)
    });
    // A compaction: timed once its physical part (a thread) finishes; it
    // removes `a`'s first revision and `w`'s put and delete, in one step
    // (one pause each for the store and its key index).
    s.ctl(&["put", "a", "2"]).ok();
    s.ctl(&["compact", "5"]).ok();
    wait_until(Duration::from_secs(10), "the compaction timed", || {
        let now = scrape(s.client_port());
        value(
            &now,
            "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds_count",
        ) == Some(1.0)
            && value(&now, "etcd_debugging_mvcc_db_compaction_last").is_some_and(|t| t > 1e9)
    });
    let now = scrape(s.client_port());
    assert!(value(&now, "etcd_debugging_mvcc_db_compaction_keys_total").unwrap() >= 2.0);
    for pause in ["db", "index"] {
        let count =
            format!("etcd_debugging_mvcc_{pause}_compaction_pause_duration_milliseconds_count");
        assert_eq!(value(&now, &count), Some(1.0), "{count}");
    }
    // This scrape is the second one and counts once done.
    assert_eq!(
        moved(r#"promhttp_metric_handler_requests_total{code="200"}"#),
        1.0
    );
    assert_eq!(
        value(&after, "promhttp_metric_handler_requests_in_flight"),
        Some(1.0)
    );
}

/// A member that saves a snapshot (every 5 entries here) times it as
/// etcd's snapshotter does: marshalling, fsync and the whole save.
#[test]
fn snapshot_saves_are_timed() {
    let tmp = tempdir();
    let s = Server::start_with(&tmp.path().join("data"), &["--snapshot-count", "5"]);
    for i in 0..12 {
        s.ctl(&["put", &format!("k{i}"), "v"]).ok();
    }
    wait_until(
        Duration::from_secs(20),
        "a snapshot saved and timed",
        || {
            let now = scrape(s.client_port());
            [
                "etcd_debugging_snap_save_total_duration_seconds_count",
                "etcd_debugging_snap_save_marshalling_duration_seconds_count",
                "etcd_snap_fsync_duration_seconds_count",
            ]
            .iter()
            .all(|n| value(&now, n).is_some_and(|c| c >= 1.0))
        },
    );
    // etcdctl snapshot save: the backend file for the stream is timed.
    let backend = "etcd_disk_backend_snapshot_duration_seconds_count";
    let before = value(&scrape(s.client_port()), backend).unwrap();
    let db = tmp.path().join("backup.db");
    s.ctl(&["snapshot", "save", db.to_str().unwrap()]).ok();
    assert_eq!(value(&scrape(s.client_port()), backend), Some(before + 1.0));
}
