//! TLS on real `ferrocd` processes (etcd 3.5's flags), with a CA and
//! certificates made by the test (rcgen):
//!
//! - one member with an `https://` client URL: gRPC and the binary
//!   protocol through our client, the `/v3` gateway and `/health` through
//!   a TLS HTTP/1.1 client, etcdctl 3.5.1 with `--cacert`; clients that
//!   do not trust the CA, or speak plaintext, get nothing;
//! - `--client-cert-auth`: a client without a certificate, or with one
//!   from another CA, is refused (ours and etcdctl);
//! - three members with `https://` peer URLs and
//!   `--peer-client-cert-auth` elect a leader and replicate; a member
//!   whose peer certificate comes from another CA cannot join and says
//!   why in its log;
//! - start-up refusals with etcd's messages;
//! - `security`: auto-TLS, CRLs, allowed CN/hostnames, cipher suites and
//!   TLS versions.
//!
//! Every wait is bounded; processes are killed by PID when dropped.

#[path = "../common/mod.rs"]
mod common;
/// Auto-TLS, CRLs, allowed names, cipher suites and TLS versions.
mod security;
#[path = "../../../net/src/tls_testing.rs"]
mod tls_testing;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferrocd_net::client::{Client, ClientTls, ConnectOptions, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tls_testing::Ca;

const READY: Duration = Duration::from_secs(30);

/// A `ferrocd` process; killed (by its PID) when dropped.
struct Proc {
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    fn spawn(dir: &Path, args: &[String]) -> Proc {
        let log = dir.with_extension("log");
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ferrocd"))
            .arg("--data-dir")
            .arg(dir)
            .args(["--log-level", "warn", "--shards", "1"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        Proc {
            child: Some(child),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// A single member: client URL `https://` (with `client_flags`), peer URL
/// plain.
fn single(dir: &Path, client: u16, client_flags: &[String]) -> Proc {
    let peer = common::free_port();
    let curl = format!("https://127.0.0.1:{client}");
    let purl = format!("http://127.0.0.1:{peer}");
    let mut args = s(&[
        "--name",
        "n1",
        "--listen-client-urls",
        &curl,
        "--advertise-client-urls",
        &curl,
        "--listen-peer-urls",
        &purl,
        "--initial-advertise-peer-urls",
        &purl,
        "--initial-cluster",
        &format!("n1={purl}"),
    ]);
    args.extend_from_slice(client_flags);
    Proc::spawn(dir, &args)
}

fn opts(protocol: Protocol, tls: Option<ClientTls>) -> ConnectOptions {
    let o = ConnectOptions::new()
        .with_protocol(protocol)
        .with_dial_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(5));
    match tls {
        Some(t) => o.with_tls(t),
        None => o,
    }
}

/// Connects and asks `Status` until it answers.
async fn ready(ep: &str, o: ConnectOptions, p: &Proc) -> Client {
    let deadline = Instant::now() + READY;
    let mut last = String::new();
    while Instant::now() < deadline {
        match Client::connect([ep], Some(o.clone())).await {
            Ok(c) => match c.status().await {
                Ok(st) if st.leader != 0 => return c,
                Ok(_) => last = "no leader".into(),
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{ep} not ready: {last}\n{}", p.log());
}

/// One HTTP/1.1 request over TLS; `(status line, body)`.
async fn https(port: u16, tls: &ClientTls, method: &str, path: &str, body: &str) -> String {
    let cfg = tls.client_config(&[b"http/1.1"]).unwrap();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = tls.server_name("127.0.0.1").unwrap();
    let mut st = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    st.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), st.read_to_end(&mut out))
        .await
        .unwrap()
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

/// etcdctl 3.5.1 (or `$ETCDCTL_BIN`) with `args`: `(exit code, stdout,
/// stderr)`, killed after 15 s.
fn etcdctl(args: &[String]) -> (Option<i32>, String, String) {
    let mut child = Command::new(common::etcdctl_bin())
        .env("ETCDCTL_API", "3")
        .args(["--dial-timeout=2s", "--command-timeout=4s"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn etcdctl");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_over_https() {
    let tmp = common::tempdir();
    let ca = Ca::new(tmp.path(), "ca");
    let (cert, key) = ca.issue("server");
    let port = common::free_port();
    let p = single(
        &tmp.path().join("n1"),
        port,
        &s(&["--cert-file", &path(&cert), "--key-file", &path(&key)]),
    );
    let ep = format!("https://127.0.0.1:{port}");
    let trust = ClientTls::with_ca(ca.pem());

    // gRPC through our client
    let g = ready(&ep, opts(Protocol::Grpc, Some(trust.clone())), &p).await;
    assert_eq!(g.protocol().await.unwrap(), Protocol::Grpc);
    g.put("k", "grpc", None).await.unwrap();
    assert_eq!(g.get("k", None).await.unwrap().kvs[0].value, b"grpc");

    // the binary protocol inside TLS, a watch stream included
    let f = Client::connect([&ep], Some(opts(Protocol::Auto, Some(trust.clone()))))
        .await
        .unwrap();
    assert_eq!(f.protocol().await.unwrap(), Protocol::Fast);
    assert_eq!(f.get("k", None).await.unwrap().kvs[0].value, b"grpc");
    let (_w, mut events) = f.watch("w", None).await.unwrap();
    f.put("w", "fast", None).await.unwrap();
    let got = loop {
        let r = tokio::time::timeout(Duration::from_secs(5), events.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Some(e) = r.events.first() {
            break e.kv.clone().unwrap().value;
        }
    };
    assert_eq!(got, b"fast");
    // a bare host:port speaks TLS when the client has TLS options
    let bare = Client::connect(
        [format!("127.0.0.1:{port}")],
        Some(opts(Protocol::Fast, Some(trust.clone()))),
    )
    .await
    .unwrap();
    assert_eq!(bare.get("w", None).await.unwrap().kvs[0].value, b"fast");

    // the JSON gateway and /health over TLS (HTTP/1.1)
    let r = https(port, &trust, "POST", "/v3/kv/range", r#"{"key":"aw=="}"#).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.contains(r#""value":"Z3JwYw==""#), "{r}");
    let r = https(port, &trust, "GET", "/health", "").await;
    assert!(r.contains(r#"{"health":"true""#), "{r}");

    // a client that does not trust the CA (the system's roots)
    let e = Client::connect(
        [&ep],
        Some(opts(Protocol::Grpc, Some(ClientTls::default()))),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("invalid peer certificate"), "{e}");
    let e = Client::connect(
        [&ep],
        Some(opts(Protocol::Fast, Some(ClientTls::default()))),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("invalid peer certificate"), "{e}");
    // plaintext to the TLS port gets no answer
    let plain = Client::connect(
        [format!("http://127.0.0.1:{port}")],
        Some(opts(Protocol::Grpc, None)),
    )
    .await;
    if let Ok(c) = plain {
        assert!(c.get("k", None).await.is_err());
    }
    assert!(p.log().contains("rejected connection"), "{}", p.log());

    // etcdctl 3.5.1 with --cacert, and without
    let ca_flag = format!("--cacert={}", path(&ca.pem()));
    let (code, out, err) = etcdctl(&s(&["--endpoints", &ep, &ca_flag, "put", "e", "ctl"]));
    assert_eq!((code, out.as_str()), (Some(0), "OK\n"), "{err}");
    let (code, out, err) = etcdctl(&s(&["--endpoints", &ep, &ca_flag, "get", "e"]));
    assert_eq!((code, out.as_str()), (Some(0), "e\nctl\n"), "{err}");
    let (code, _, _) = etcdctl(&s(&["--endpoints", &ep, "get", "e"]));
    assert_ne!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_cert_auth_refuses_strangers() {
    let tmp = common::tempdir();
    let ca = Ca::new(tmp.path(), "ca");
    let other = Ca::new(tmp.path(), "other");
    let (cert, key) = ca.issue("server");
    let port = common::free_port();
    let p = single(
        &tmp.path().join("n1"),
        port,
        &s(&[
            "--cert-file",
            &path(&cert),
            "--key-file",
            &path(&key),
            "--trusted-ca-file",
            &path(&ca.pem()),
            "--client-cert-auth",
        ]),
    );
    let ep = format!("https://127.0.0.1:{port}");
    let (alice, alice_key) = ca.issue("alice");
    let good = ClientTls::with_ca(ca.pem()).identity(&alice, &alice_key);
    let g = ready(&ep, opts(Protocol::Grpc, Some(good.clone())), &p).await;
    g.put("k", "v", None).await.unwrap();
    let f = Client::connect([&ep], Some(opts(Protocol::Fast, Some(good.clone()))))
        .await
        .unwrap();
    assert_eq!(f.get("k", None).await.unwrap().kvs[0].value, b"v");

    // No certificate; a certificate from another CA: no call succeeds.
    let (mallory, mallory_key) = other.issue("mallory");
    let strangers = [
        ClientTls::with_ca(ca.pem()),
        ClientTls::with_ca(ca.pem()).identity(&mallory, &mallory_key),
    ];
    for t in strangers {
        for proto in [Protocol::Grpc, Protocol::Fast] {
            match Client::connect([&ep], Some(opts(proto, Some(t.clone())))).await {
                Err(_) => {}
                Ok(c) => {
                    let r = c.get("k", None).await;
                    assert!(r.is_err(), "{proto:?} {t:?} got {r:?}");
                }
            }
        }
    }
    let log = p.log();
    assert!(log.contains("rejected connection"), "{log}");

    // etcdctl with --cert/--key, and without
    let ca_flag = format!("--cacert={}", path(&ca.pem()));
    let (code, out, err) = etcdctl(&s(&[
        "--endpoints",
        &ep,
        &ca_flag,
        &format!("--cert={}", path(&alice)),
        &format!("--key={}", path(&alice_key)),
        "get",
        "k",
    ]));
    assert_eq!((code, out.as_str()), (Some(0), "k\nv\n"), "{err}");
    let (code, out, _) = etcdctl(&s(&["--endpoints", &ep, &ca_flag, "get", "k"]));
    assert_ne!(code, Some(0), "{out}");
}

/// Three members with `https://` peer URLs; member `i` gets its peer
/// certificate (and the CA it trusts) from `cas[i]`. Client ports are
/// plain.
fn peer_tls_cluster(root: &Path, cas: [&Ca; 3]) -> (Vec<Proc>, Vec<u16>) {
    let peers: Vec<u16> = (0..3).map(|_| common::free_port()).collect();
    let clients: Vec<u16> = (0..3).map(|_| common::free_port()).collect();
    let initial = (0..3)
        .map(|i| format!("m{i}=https://127.0.0.1:{}", peers[i]))
        .collect::<Vec<_>>()
        .join(",");
    let procs = (0..3)
        .map(|i| {
            let (cert, key) = cas[i].issue(&format!("m{i}"));
            let purl = format!("https://127.0.0.1:{}", peers[i]);
            let curl = format!("http://127.0.0.1:{}", clients[i]);
            Proc::spawn(
                &root.join(format!("m{i}")),
                &s(&[
                    "--name",
                    &format!("m{i}"),
                    "--listen-client-urls",
                    &curl,
                    "--advertise-client-urls",
                    &curl,
                    "--listen-peer-urls",
                    &purl,
                    "--initial-advertise-peer-urls",
                    &purl,
                    "--initial-cluster",
                    &initial,
                    "--peer-cert-file",
                    &path(&cert),
                    "--peer-key-file",
                    &path(&key),
                    "--peer-trusted-ca-file",
                    &path(&cas[i].pem()),
                    "--peer-client-cert-auth",
                ]),
            )
        })
        .collect();
    (procs, clients)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_tls_cluster_elects_and_replicates() {
    let tmp = common::tempdir();
    let ca = Ca::new(tmp.path(), "ca");
    let (procs, clients) = peer_tls_cluster(tmp.path(), [&ca, &ca, &ca]);
    let mut cs = Vec::new();
    for (p, port) in procs.iter().zip(&clients) {
        cs.push(ready(&format!("127.0.0.1:{port}"), opts(Protocol::Grpc, None), p).await);
    }
    let leaders: Vec<u64> = {
        let mut v = Vec::new();
        for c in &cs {
            v.push(c.status().await.unwrap().leader);
        }
        v
    };
    assert!(
        leaders.iter().all(|l| *l == leaders[0] && *l != 0),
        "{leaders:?}"
    );
    let members = cs[0].member_list().await.unwrap().members;
    assert_eq!(members.len(), 3);
    assert!(
        members
            .iter()
            .all(|m| m.peer_ur_ls.iter().all(|u| u.starts_with("https://"))),
        "{members:?}"
    );
    // A write through each member is seen by every member.
    for (i, c) in cs.iter().enumerate() {
        c.put(format!("k{i}"), format!("v{i}"), None).await.unwrap();
    }
    for c in &cs {
        for i in 0..3 {
            let r = c.get(format!("k{i}"), None).await.unwrap();
            assert_eq!(r.kvs[0].value, format!("v{i}").into_bytes());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_with_a_foreign_peer_certificate_cannot_join() {
    let tmp = common::tempdir();
    let ca = Ca::new(tmp.path(), "ca");
    let other = Ca::new(tmp.path(), "other");
    let (procs, clients) = peer_tls_cluster(tmp.path(), [&ca, &ca, &other]);
    // m0 and m1 are a quorum of 3.
    let c0 = ready(
        &format!("127.0.0.1:{}", clients[0]),
        opts(Protocol::Grpc, None),
        &procs[0],
    )
    .await;
    let _c1 = ready(
        &format!("127.0.0.1:{}", clients[1]),
        opts(Protocol::Grpc, None),
        &procs[1],
    )
    .await;
    c0.put("k", "v", None).await.unwrap();
    // m2 never hears from a leader and says why.
    let deadline = Instant::now() + Duration::from_secs(15);
    let log = loop {
        let log = procs[2].log();
        if log.contains("invalid peer certificate") || Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(log.contains("failed to dial peer"), "{log}");
    assert!(
        log.contains("invalid peer certificate: UnknownIssuer"),
        "{log}"
    );
    let m2 = Client::connect(
        [format!("127.0.0.1:{}", clients[2])],
        Some(opts(Protocol::Grpc, None).with_timeout(Duration::from_secs(2))),
    )
    .await;
    if let Ok(c) = m2 {
        assert!(
            c.get("k", None).await.is_err(),
            "m2 serves without a leader"
        );
    }
    // The others refused it too.
    let l0 = procs[0].log();
    assert!(
        l0.contains("rejected peer connection") || l0.contains("failed to dial peer"),
        "{l0}"
    );
    // The cluster still works without it.
    c0.put("k", "v2", None).await.unwrap();
}

#[test]
fn https_urls_without_certificates_are_refused_at_start() {
    let tmp = common::tempdir();
    let port = common::free_port();
    let run = |flags: &[String]| {
        let out = Command::new(env!("CARGO_BIN_EXE_ferrocd"))
            .arg("--data-dir")
            .arg(tmp.path().join("d"))
            .args(flags)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let curl = format!("https://127.0.0.1:{port}");
    let (code, err) = run(&s(&[
        "--listen-client-urls",
        &curl,
        "--advertise-client-urls",
        &curl,
    ]));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!(
        "TLS key/cert (--cert-file, --key-file) must be provided for client url {curl} with HTTPS scheme"
    )), "{err}");
    let (code, err) = run(&s(&[
        "--listen-client-urls",
        &curl,
        "--advertise-client-urls",
        &curl,
        "--cert-file",
        "/nonexistent/server.pem",
        "--key-file",
        "/nonexistent/server-key.pem",
    ]));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("open /nonexistent/server.pem: no such file or directory"),
        "{err}"
    );
    assert!(!tmp.path().join("d").exists(), "the data dir was touched");
}

/// With auth enabled and `--client-cert-auth`, a request without a token
/// runs as the user its certificate names (etcd's rule), over gRPC and
/// the binary protocol alike; a token still wins; the JSON gateway never
/// takes a certificate's name (etcd ignores it there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_common_name_is_the_user_when_auth_is_on() {
    use ferrocd_net::fast::methods as m;
    use ferrocd_net::pb::authpb;
    use ferrocd_net::pb::etcdserverpb as pb;

    let tmp = common::tempdir();
    let ca = Ca::new(tmp.path(), "ca");
    let (cert, key) = ca.issue("server");
    let port = common::free_port();
    let p = single(
        &tmp.path().join("n1"),
        port,
        &s(&[
            "--cert-file",
            &path(&cert),
            "--key-file",
            &path(&key),
            "--trusted-ca-file",
            &path(&ca.pem()),
            "--client-cert-auth",
        ]),
    );
    let ep = format!("https://127.0.0.1:{port}");
    let tls_for = |cn: &str| {
        let (c, k) = ca.issue(cn);
        ClientTls::with_ca(ca.pem()).identity(&c, &k)
    };
    let root = ready(&ep, opts(Protocol::Grpc, Some(tls_for("root"))), &p).await;
    // root (no password: certificate only), alice with readwrite on /a/.
    root.call::<m::UserAdd>(pb::AuthUserAddRequest {
        name: "root".into(),
        options: Some(authpb::UserAddOptions { no_password: true }),
        ..Default::default()
    })
    .await
    .unwrap();
    root.call::<m::UserAdd>(pb::AuthUserAddRequest {
        name: "alice".into(),
        password: "pw".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    for role in ["root", "a"] {
        root.call::<m::RoleAdd>(pb::AuthRoleAddRequest { name: role.into() })
            .await
            .unwrap();
    }
    root.call::<m::RoleGrantPermission>(pb::AuthRoleGrantPermissionRequest {
        name: "a".into(),
        perm: Some(authpb::Permission {
            perm_type: authpb::permission::Type::Readwrite as i32,
            key: b"/a/".to_vec(),
            range_end: b"/a0".to_vec(),
        }),
    })
    .await
    .unwrap();
    for (user, role) in [("root", "root"), ("alice", "a")] {
        root.call::<m::UserGrantRole>(pb::AuthUserGrantRoleRequest {
            user: user.into(),
            role: role.into(),
        })
        .await
        .unwrap();
    }
    root.call::<m::AuthEnable>(pb::AuthEnableRequest {})
        .await
        .unwrap();
    // root by certificate alone may administer.
    let st = root
        .call::<m::AuthStatus>(pb::AuthStatusRequest {})
        .await
        .unwrap();
    assert!(st.enabled);
    for proto in [Protocol::Grpc, Protocol::Fast] {
        let alice = Client::connect([&ep], Some(opts(proto, Some(tls_for("alice")))))
            .await
            .unwrap();
        alice.put("/a/x", "v", None).await.unwrap();
        let e = alice.put("/b", "v", None).await.unwrap_err();
        assert!(
            e.to_string().contains("permission denied"),
            "{proto:?}: {e}"
        );
        // A name no user has: denied, not anonymous.
        let nobody = Client::connect([&ep], Some(opts(proto, Some(tls_for("nobody")))))
            .await
            .unwrap();
        let e = nobody.get("/a/x", None).await.unwrap_err();
        assert!(
            e.to_string().contains("permission denied"),
            "{proto:?}: {e}"
        );
    }
    // The gateway: the certificate names nobody.
    let out = https(
        port,
        &tls_for("alice"),
        "POST",
        "/v3/kv/put",
        r#"{"key":"L2EveQ==","value":"dg=="}"#,
    )
    .await;
    assert!(out.contains("user name is empty"), "{out}");
}

/// `https://` console and metrics URLs use the client certificate: the
/// console's page and gateway, and `/metrics`, over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_and_metrics_over_https() {
    let tmp = common::tempdir();
    let ca = Ca::new(tmp.path(), "ca");
    let (cert, key) = ca.issue("server");
    let port = common::free_port();
    let ui = common::free_port();
    let metrics = common::free_port();
    let p = single(
        &tmp.path().join("n1"),
        port,
        &s(&[
            "--cert-file",
            &path(&cert),
            "--key-file",
            &path(&key),
            "--listen-ui-urls",
            &format!("https://127.0.0.1:{ui}/ui"),
            "--listen-metrics-urls",
            &format!("https://127.0.0.1:{metrics}"),
        ]),
    );
    let trust = ClientTls::with_ca(ca.pem());
    ready(
        &format!("https://127.0.0.1:{port}"),
        opts(Protocol::Grpc, Some(trust.clone())),
        &p,
    )
    .await;
    let page = https(ui, &trust, "GET", "/ui/", "").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("<script src=\"app.js\""), "{page}");
    let put = https(
        ui,
        &trust,
        "POST",
        "/v3/kv/put",
        r#"{"key":"YQ==","value":"Yg=="}"#,
    )
    .await;
    assert!(put.starts_with("HTTP/1.1 200"), "{put}");
    let m = https(metrics, &trust, "GET", "/metrics", "").await;
    assert!(
        m.starts_with("HTTP/1.1 200") && m.contains("etcd_server_has_leader"),
        "{m}"
    );
}
