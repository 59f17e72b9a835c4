//! etcd 3.5's other security flags on real processes, each with a
//! refused and an allowed case over real handshakes:
//!
//! - `--auto-tls` serves a generated certificate (kept under
//!   `<data-dir>/fixtures/client`, reused on restart) that clients reach
//!   only by skipping verification (client-cert auth given with it is
//!   dropped, as etcd 3.5.1 drops it); `--peer-auto-tls` members form a
//!   cluster over `https://` peer URLs;
//! - `--client-crl-file`, `--peer-crl-file`: a revoked client
//!   certificate is refused;
//! - `--client-cert-allowed-hostname`, `--peer-cert-allowed-cn`,
//!   `--peer-cert-allowed-hostname`: a certificate without the name is
//!   refused (a member with one cannot join);
//! - `--cipher-suites`, `--tls-min-version`, `--tls-max-version` limit
//!   what a handshake can negotiate;
//! - bad values stop the start with etcd 3.5.1's messages (checked
//!   against etcd 3.5.1 itself where it has the flag).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferrocd_net::client::{Client, ClientTls, Protocol};
use ferrocd_net::tls::{Protocol as TlsProtocol, TlsVersion};
use tokio_rustls::rustls::{CipherSuite, ProtocolVersion};

use super::tls_testing::Ca;
use super::{Proc, common, etcdctl, opts, path, ready, s, single};

/// A client that accepts any server certificate.
fn skip_verify() -> ClientTls {
    ClientTls {
        insecure_skip_verify: true,
        ..ClientTls::default()
    }
}

/// A TLS handshake with the client port: the negotiated version and
/// suite, or the error.
async fn handshake(port: u16, tls: &ClientTls) -> Result<(ProtocolVersion, CipherSuite), String> {
    let cfg = tls.client_config(&[b"h2"]).map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = tls.server_name("127.0.0.1").unwrap();
    let st = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_rustls::TlsConnector::from(cfg).connect(name, tcp),
    )
    .await
    .map_err(|_| "handshake timed out".to_string())?
    .map_err(|e| e.to_string())?;
    let (_, conn) = st.get_ref();
    Ok((
        conn.protocol_version().unwrap(),
        conn.negotiated_cipher_suite().unwrap().suite(),
    ))
}

/// Whether `tls` gets an answer from the member (gRPC and the binary
/// protocol agree).
async fn answers(ep: &str, tls: &ClientTls) -> bool {
    let mut got = Vec::new();
    for proto in [Protocol::Grpc, Protocol::Fast] {
        let ok = match Client::connect([ep], Some(opts(proto, Some(tls.clone())))).await {
            Ok(c) => c.get("k", None).await.is_ok(),
            Err(_) => false,
        };
        got.push(ok);
    }
    assert_eq!(got[0], got[1], "gRPC and the binary protocol disagree");
    got[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_tls_serves_a_generated_certificate() {
    let tmp = common::tempdir();
    let dir = tmp.path().join("n1");
    let port = common::free_port();
    // etcd 3.5.1 drops client-cert auth and the CA with a generated pair
    // (a client without a certificate is served): so do we, and say so.
    let ca = Ca::new(tmp.path(), "ca");
    let flags = s(&[
        "--auto-tls",
        "--self-signed-cert-validity",
        "2",
        "--client-cert-auth",
        "--trusted-ca-file",
        &path(&ca.pem()),
    ]);
    let p = single(&dir, port, &flags);
    let ep = format!("https://127.0.0.1:{port}");
    let c = ready(&ep, opts(Protocol::Grpc, Some(skip_verify())), &p).await;
    c.put("k", "v", None).await.unwrap();
    let cert = dir.join("fixtures").join("client").join("cert.pem");
    let key = dir.join("fixtures").join("client").join("key.pem");
    assert!(cert.is_file() && key.is_file(), "{}", p.log());
    let log = p.log();
    assert!(log.contains("automatically generate certificates"), "{log}");
    assert!(
        log.contains("--client-cert-auth, --trusted-ca-file"),
        "{log}"
    );
    // A client that verifies (against the system's roots) is refused;
    // skipping verification works.
    let e = handshake(port, &ClientTls::default()).await.unwrap_err();
    assert!(e.contains("invalid peer certificate"), "{e}");
    assert!(answers(&ep, &skip_verify()).await);
    let (code, out, err) = etcdctl(&s(&[
        "--endpoints",
        &ep,
        "--insecure-skip-tls-verify",
        "--insecure-transport=false",
        "get",
        "k",
    ]));
    assert_eq!((code, out.as_str()), (Some(0), "k\nv\n"), "{err}");
    let (code, _, _) = etcdctl(&s(&["--endpoints", &ep, "get", "k"]));
    assert_ne!(code, Some(0));

    // A restart reuses the pair.
    let before = std::fs::read(&cert).unwrap();
    drop(p);
    let p = single(&dir, port, &flags);
    let c = ready(&ep, opts(Protocol::Grpc, Some(skip_verify())), &p).await;
    assert_eq!(c.get("k", None).await.unwrap().kvs[0].value, b"v");
    assert_eq!(std::fs::read(&cert).unwrap(), before);
    assert!(!p.log().contains("automatically generate certificates"));
}

/// Three members with `https://` peer URLs, member `i` started with
/// `peer_flags(i)`; client ports plain.
fn cluster(root: &Path, peer_flags: impl Fn(usize) -> Vec<String>) -> (Vec<Proc>, Vec<String>) {
    let peers: Vec<u16> = (0..3).map(|_| common::free_port()).collect();
    let clients: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", common::free_port()))
        .collect();
    let initial = (0..3)
        .map(|i| format!("m{i}=https://127.0.0.1:{}", peers[i]))
        .collect::<Vec<_>>()
        .join(",");
    let procs = (0..3)
        .map(|i| {
            let purl = format!("https://127.0.0.1:{}", peers[i]);
            let curl = format!("http://{}", clients[i]);
            let mut args = s(&[
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
            ]);
            args.extend(peer_flags(i));
            Proc::spawn(&root.join(format!("m{i}")), &args)
        })
        .collect();
    (procs, clients)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_auto_tls_cluster_elects_and_replicates() {
    let tmp = common::tempdir();
    let (procs, clients) = cluster(tmp.path(), |_| s(&["--peer-auto-tls"]));
    let mut cs = Vec::new();
    for (p, ep) in procs.iter().zip(&clients) {
        cs.push(ready(ep, opts(Protocol::Grpc, None), p).await);
    }
    for (i, c) in cs.iter().enumerate() {
        c.put(format!("k{i}"), format!("v{i}"), None).await.unwrap();
    }
    for c in &cs {
        for i in 0..3 {
            let r = c.get(format!("k{i}"), None).await.unwrap();
            assert_eq!(r.kvs[0].value, format!("v{i}").into_bytes());
        }
    }
    for i in 0..3 {
        let f = tmp.path().join(format!("m{i}/fixtures/peer/cert.pem"));
        assert!(f.is_file(), "{}", f.display());
    }
    // Every member advertises its https:// peer URL.
    let members = cs[0].member_list().await.unwrap().members;
    assert!(
        members
            .iter()
            .all(|m| m.peer_ur_ls.iter().all(|u| u.starts_with("https://"))),
        "{members:?}"
    );
}

/// Members 0 and 1 present `good` peer certificates, member 2 a `bad`
/// one (same CA), all under `--peer-client-cert-auth` and `flag`: 0 and 1
/// form a quorum, 2 is refused with etcd's reason.
async fn allowed_peer_names(
    flag: &[&str],
    good: Vec<rcgen::SanType>,
    bad: Vec<rcgen::SanType>,
    cns: [&str; 2],
) {
    let tmp = common::tempdir();
    let ca = Ca::new(tmp.path(), "ca");
    let certs: Vec<_> = (0..3)
        .map(|i| {
            let (cn, sans) = if i < 2 {
                (cns[0], good.clone())
            } else {
                (cns[1], bad.clone())
            };
            // members 0 and 1 share one pair (the same file names)
            ca.issue_for(cn, sans)
        })
        .collect();
    let (procs, clients) = cluster(tmp.path(), |i| {
        let mut v = s(&[
            "--peer-cert-file",
            &path(&certs[i].0),
            "--peer-key-file",
            &path(&certs[i].1),
            "--peer-trusted-ca-file",
            &path(&ca.pem()),
            "--peer-client-cert-auth",
        ]);
        v.extend(s(flag));
        v
    });
    let c0 = ready(&clients[0], opts(Protocol::Grpc, None), &procs[0]).await;
    let _c1 = ready(&clients[1], opts(Protocol::Grpc, None), &procs[1]).await;
    c0.put("k", "v", None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let why = "client certificate authentication failed";
    let logs = loop {
        let logs: String = procs.iter().map(|p| p.log()).collect();
        if logs.contains(why) || Instant::now() > deadline {
            break logs;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(logs.contains(why), "{logs}");
    let m2 = Client::connect(
        [&clients[2]],
        Some(opts(Protocol::Grpc, None).with_timeout(Duration::from_secs(2))),
    )
    .await;
    if let Ok(c) = m2 {
        assert!(
            c.get("k", None).await.is_err(),
            "m2 serves without a leader"
        );
    }
    c0.put("k", "v2", None).await.unwrap();
}

/// `--peer-crl-file` (DER here): the connections a member with a revoked
/// peer certificate opens are refused at the handshake. (etcd checks CRLs
/// on the listener only, and so do we: the connections the others open to
/// it are not.) The quorum of the others works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_crl_refuses_a_revoked_member() {
    let tmp = common::tempdir();
    let ca = Ca::new(tmp.path(), "ca");
    let certs = [ca.issue("m0"), ca.issue("m1"), ca.issue("revoked")];
    let crl = ca.crl(&["revoked"], true);
    let (procs, clients) = cluster(tmp.path(), |i| {
        s(&[
            "--peer-cert-file",
            &path(&certs[i].0),
            "--peer-key-file",
            &path(&certs[i].1),
            "--peer-trusted-ca-file",
            &path(&ca.pem()),
            "--peer-client-cert-auth",
            "--peer-crl-file",
            &path(&crl),
        ])
    });
    let c0 = ready(&clients[0], opts(Protocol::Grpc, None), &procs[0]).await;
    let _c1 = ready(&clients[1], opts(Protocol::Grpc, None), &procs[1]).await;
    c0.put("k", "v", None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let why = "invalid peer certificate: Revoked";
    let logs = loop {
        let logs = procs[0].log() + &procs[1].log();
        if logs.contains(why) || Instant::now() > deadline {
            break logs;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(logs.contains("rejected peer connection"), "{logs}");
    assert!(logs.contains(why), "{logs}");
    c0.put("k", "v2", None).await.unwrap();
}

fn sans(dns: &str) -> Vec<rcgen::SanType> {
    vec![
        rcgen::SanType::DnsName(dns.try_into().unwrap()),
        rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_cert_allowed_cn_refuses_other_names() {
    // etcd's usual setup: every member's peer certificate has one CN.
    allowed_peer_names(
        &["--peer-cert-allowed-cn", "etcd-peer"],
        sans("localhost"),
        sans("localhost"),
        ["etcd-peer", "intruder"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_cert_allowed_hostname_refuses_other_names() {
    allowed_peer_names(
        &["--peer-cert-allowed-hostname", "peer.example"],
        sans("peer.example"),
        sans("other.example"),
        ["peer", "other"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_crl_and_allowed_hostname_refuse_certificates() {
    let tmp = common::tempdir();
    let ca = Ca::new(tmp.path(), "ca");
    let (cert, key) = ca.issue("server");
    let (alice, alice_key) = ca.issue("alice");
    let (mallory, mallory_key) = ca.issue("mallory");
    let (named, named_key) = ca.issue_for("bob", sans("client.example"));
    let auth = |extra: &[&str]| {
        let mut v = s(&[
            "--cert-file",
            &path(&cert),
            "--key-file",
            &path(&key),
            "--trusted-ca-file",
            &path(&ca.pem()),
            "--client-cert-auth",
        ]);
        v.extend(s(extra));
        v
    };
    let trust = |c: &Path, k: &Path| ClientTls::with_ca(ca.pem()).identity(c, k);

    // --client-crl-file: mallory's certificate is revoked.
    let crl = ca.crl(&["mallory"], false);
    let port = common::free_port();
    let p = single(
        &tmp.path().join("crl"),
        port,
        &auth(&["--client-crl-file", &path(&crl)]),
    );
    let ep = format!("https://127.0.0.1:{port}");
    ready(
        &ep,
        opts(Protocol::Grpc, Some(trust(&alice, &alice_key))),
        &p,
    )
    .await;
    assert!(answers(&ep, &trust(&alice, &alice_key)).await);
    assert!(!answers(&ep, &trust(&mallory, &mallory_key)).await);
    assert!(p.log().contains("Revoked"), "{}", p.log());
    let ctl = |c: &Path, k: &Path| {
        etcdctl(&s(&[
            "--endpoints",
            &ep,
            &format!("--cacert={}", path(&ca.pem())),
            &format!("--cert={}", path(c)),
            &format!("--key={}", path(k)),
            "put",
            "k",
            "v",
        ]))
    };
    let (code, out, err) = ctl(&alice, &alice_key);
    assert_eq!((code, out.as_str()), (Some(0), "OK\n"), "{err}");
    let (code, _, _) = ctl(&mallory, &mallory_key);
    assert_ne!(code, Some(0));
    drop(p);

    // --client-cert-allowed-hostname: only a certificate for that name.
    let port = common::free_port();
    let p = single(
        &tmp.path().join("host"),
        port,
        &auth(&["--client-cert-allowed-hostname", "client.example"]),
    );
    let ep = format!("https://127.0.0.1:{port}");
    ready(
        &ep,
        opts(Protocol::Grpc, Some(trust(&named, &named_key))),
        &p,
    )
    .await;
    assert!(answers(&ep, &trust(&named, &named_key)).await);
    assert!(!answers(&ep, &trust(&alice, &alice_key)).await);
    assert!(
        p.log().contains("client certificate authentication failed"),
        "{}",
        p.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cipher_suites_and_tls_versions_limit_the_handshake() {
    let tmp = common::tempdir();
    let ca = Ca::new(tmp.path(), "ca");
    let (cert, key) = ca.issue("server");
    let tls = |protocol: TlsProtocol| ClientTls {
        protocol,
        ..ClientTls::with_ca(ca.pem())
    };
    let version = |min: Option<TlsVersion>, max: Option<TlsVersion>, suites: &[&str]| {
        tls(TlsProtocol {
            min,
            max,
            cipher_suites: s(suites),
        })
    };
    use TlsVersion::{Tls12, Tls13};
    let start = |name: &str, extra: &[&str]| {
        let port = common::free_port();
        let mut flags = s(&["--cert-file", &path(&cert), "--key-file", &path(&key)]);
        flags.extend(s(extra));
        (single(&tmp.path().join(name), port, &flags), port)
    };
    let aes256 = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384";
    let aes128 = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256";

    // --cipher-suites: a TLS 1.2 client gets a listed suite or nothing;
    // TLS 1.3 is untouched (Go's rule).
    let (p, port) = start("suites", &["--cipher-suites", aes256]);
    let ep = format!("https://127.0.0.1:{port}");
    ready(
        &ep,
        opts(Protocol::Grpc, Some(ClientTls::with_ca(ca.pem()))),
        &p,
    )
    .await;
    assert_eq!(
        handshake(port, &version(None, Some(Tls12), &[]))
            .await
            .unwrap(),
        (
            ProtocolVersion::TLSv1_2,
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        )
    );
    let e = handshake(port, &version(None, Some(Tls12), &[aes128]))
        .await
        .unwrap_err();
    assert!(e.contains("HandshakeFailure"), "{e}");
    let (v, _) = handshake(port, &ClientTls::with_ca(ca.pem()))
        .await
        .unwrap();
    assert_eq!(v, ProtocolVersion::TLSv1_3);
    drop(p);

    // --tls-min-version TLS1.3: a TLS 1.2 client is refused.
    let (p, port) = start("min13", &["--tls-min-version", "TLS1.3"]);
    let ep = format!("https://127.0.0.1:{port}");
    ready(
        &ep,
        opts(Protocol::Grpc, Some(ClientTls::with_ca(ca.pem()))),
        &p,
    )
    .await;
    assert!(
        handshake(port, &version(None, Some(Tls12), &[]))
            .await
            .is_err()
    );
    let (v, _) = handshake(port, &ClientTls::with_ca(ca.pem()))
        .await
        .unwrap();
    assert_eq!(v, ProtocolVersion::TLSv1_3);
    // etcdctl 3.5.1 offers TLS 1.2 at most: refused at the handshake.
    let ctl = |ep: &str| {
        etcdctl(&s(&[
            "--endpoints",
            ep,
            &format!("--cacert={}", path(&ca.pem())),
            "put",
            "k",
            "v",
        ]))
    };
    let (code, _, err) = ctl(&ep);
    assert_ne!(code, Some(0));
    assert!(err.contains("tls: protocol version not supported"), "{err}");
    drop(p);

    // --tls-max-version TLS1.2: a TLS 1.3-only client is refused.
    let (p, port) = start("max12", &["--tls-max-version", "TLS1.2"]);
    let ep = format!("https://127.0.0.1:{port}");
    ready(
        &ep,
        opts(Protocol::Grpc, Some(ClientTls::with_ca(ca.pem()))),
        &p,
    )
    .await;
    assert!(
        handshake(port, &version(Some(Tls13), None, &[]))
            .await
            .is_err()
    );
    let (v, _) = handshake(port, &ClientTls::with_ca(ca.pem()))
        .await
        .unwrap();
    assert_eq!(v, ProtocolVersion::TLSv1_2);
    let (code, out, err) = ctl(&ep);
    assert_eq!((code, out.as_str()), (Some(0), "OK\n"), "{err}");
}

/// Bad values stop the start (exit 1) with the message etcd 3.5.1 prints
/// for the same flags.
#[test]
fn bad_security_values_are_refused_at_start_as_etcd() {
    let tmp = common::tempdir();
    let run = |bin: &Path, dir: &str, flags: &[&str]| {
        let (client, peer) = (common::free_port(), common::free_port());
        let curl = format!("https://127.0.0.1:{client}");
        let scheme = if flags.contains(&"--peer-cert-file") {
            "https"
        } else {
            "http"
        };
        let purl = format!("{scheme}://127.0.0.1:{peer}");
        let mut child = Command::new(bin)
            .arg("--data-dir")
            .arg(tmp.path().join(dir))
            .args([
                "--listen-client-urls",
                &curl,
                "--advertise-client-urls",
                &curl,
                "--listen-peer-urls",
                &purl,
                "--initial-advertise-peer-urls",
                &purl,
                "--initial-cluster",
                &format!("default={purl}"),
            ])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = common::wait_child(&mut child, Duration::from_secs(20));
        if status.is_none() {
            let _ = child.kill();
        }
        let out = child.wait_with_output().unwrap();
        (
            status.and_then(|s| s.code()),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let ours = Path::new(env!("CARGO_BIN_EXE_ferrocd"));
    let ca = Ca::new(tmp.path(), "ca");
    let (cert, key) = ca.issue("peer");
    let (cert, key) = (path(&cert), path(&key));
    let etcd = common::etcd_35();
    let cases: [(&[&str], &str); 3] = [
        (
            &["--auto-tls", "--cipher-suites", "BOGUS"],
            r#"unexpected TLS cipher suite \"BOGUS\""#,
        ),
        (
            &["--auto-tls", "--self-signed-cert-validity", "0"],
            "selfSignedCertValidity is invalid,it should be greater than 0",
        ),
        (
            &[
                "--auto-tls",
                "--peer-cert-file",
                &cert,
                "--peer-key-file",
                &key,
                "--peer-cert-allowed-cn",
                "a",
                "--peer-cert-allowed-hostname",
                "b",
            ],
            r#"AllowedCN and AllowedHostname are mutually exclusive (cn=\"a\", hostname=\"b\")"#,
        ),
    ];
    for (i, (flags, msg)) in cases.iter().enumerate() {
        let (code, err) = run(&etcd, &format!("etcd{i}"), flags);
        assert_eq!(code, Some(1), "etcd {flags:?}: {err}");
        assert!(err.contains(msg), "etcd {flags:?}: {err}");
        let (code, err) = run(ours, &format!("ours{i}"), flags);
        assert_eq!(code, Some(1), "ours {flags:?}: {err}");
        // etcd logs JSON, so its quotes are escaped there
        assert!(
            err.contains(&msg.replace("\\\"", "\"")),
            "ours {flags:?}: {err}"
        );
    }
    // Flags etcd 3.5.1 does not have (later 3.5 releases' messages).
    for (flags, msg) in [
        (
            &["--tls-min-version", "TLS1.1"][..],
            r#"unexpected TLS version "TLS1.1" (must be one of: TLS1.2, TLS1.3)"#,
        ),
        (
            &["--tls-min-version", "TLS1.3", "--tls-max-version", "TLS1.2"][..],
            "min version (TLS1.3) is greater than max version (TLS1.2)",
        ),
    ] {
        let (code, err) = run(ours, "versions", flags);
        assert_eq!(code, Some(1), "{flags:?}: {err}");
        assert!(err.contains(msg), "{flags:?}: {err}");
    }
}
