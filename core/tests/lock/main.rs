//! The v3lock and v3election services against a real ferrocd, over gRPC,
//! the binary protocol (both through the Rust client) and the `/v3`
//! gateway: waiters woken in create-revision order, withdrawn when their
//! caller goes away, etcd 3.5.1's errors (codes and literal messages as a
//! real etcd 3.5.1 answered them), mutual exclusion under contention with
//! `ferroctl lock` and `etcdctl lock` processes (a shared counter read and
//! written back inside the lock comes out exact), holders killed with
//! SIGKILL, and ferroctl's client-side recipe interoperating with the
//! server-side services.

#[path = "../common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, tempdir};
use ferrocd_net::client::{Client, ConnectOptions, Error, GetOptions, Protocol};
use ferrocd_net::fast::methods as m;
use ferrocd_net::pb::v3electionpb as el;
use tokio::sync::mpsc;
use tonic::Code;

/// The longest a step that should happen waits.
const STEP: Duration = Duration::from_secs(10);
/// How long a waiter must stay blocked to count as blocked.
const BLOCKED: Duration = Duration::from_millis(400);

fn fresh() -> (tempfile::TempDir, Server) {
    let dir = tempdir();
    let server = Server::start(&dir.path().join("data"));
    (dir, server)
}

/// A client without a call timeout (Lock and Campaign wait as long as
/// the lock is held); the tests bound every wait themselves.
async fn client(server: &Server, protocol: Protocol) -> Client {
    let c = Client::connect(
        [server.endpoint()],
        Some(ConnectOptions::new().with_protocol(protocol)),
    )
    .await
    .expect("connect");
    assert_eq!(c.protocol().await.unwrap(), protocol);
    c
}

fn failure<T: std::fmt::Debug>(r: Result<T, Error>) -> (Code, String) {
    let e = r.expect_err("call should fail");
    (e.code(), e.message())
}

fn unknown(msg: &str) -> (Code, String) {
    (Code::Unknown, msg.to_string())
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {STEP:?}"))
}

/// Keys under `name/`, oldest first.
async fn keys(c: &Client, name: &str) -> Vec<String> {
    let r = c
        .get(
            format!("{name}/"),
            Some(GetOptions::new().with_prefix().with_sort(
                ferrocd_net::client::SortTarget::Create,
                ferrocd_net::client::SortOrder::Ascend,
            )),
        )
        .await
        .unwrap();
    r.kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}

/// Waits until `key` exists (a waiter has queued).
async fn until_exists(c: &Client, key: &str) {
    let deadline = Instant::now() + STEP;
    while c.get(key, None).await.unwrap().kvs.is_empty() {
        assert!(Instant::now() < deadline, "{key} never appeared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until nothing is under `name/`.
async fn until_empty(c: &Client, name: &str) {
    let deadline = Instant::now() + STEP;
    loop {
        let k = keys(c, name).await;
        if k.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "keys left under {name}/: {k:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn lock_order(c: &Client, name: &str) {
    let lease = |ttl| {
        let c = c.clone();
        async move { c.lease_grant(ttl, 0).await.unwrap().id }
    };
    let (l1, l2, l3) = (lease(30).await, lease(30).await, lease(30).await);
    let a = within("uncontended lock", c.lock(name, l1)).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&a.key), format!("{name}/{l1:x}"));
    let rev = a.header.as_ref().unwrap().revision;
    let kv = c.get(a.key.clone(), None).await.unwrap().kvs.remove(0);
    assert_eq!((kv.create_revision, kv.lease, kv.value.len()), (rev, l1, 0));
    // The same lease locking again gets its own key back at once.
    let again = within("relock", c.lock(name, l1)).await.unwrap();
    assert_eq!(again.key, a.key);

    let (tx, mut rx) = mpsc::unbounded_channel();
    for (who, l) in [("b", l2), ("c", l3)] {
        let (c2, tx, n) = (c.clone(), tx.clone(), name.to_string());
        tokio::spawn(async move {
            let _ = tx.send((who, c2.lock(n, l).await));
        });
        // Queue b before c: c's key is created after b's.
        until_exists(c, &format!("{name}/{l:x}")).await;
    }
    assert_eq!(
        keys(c, name).await,
        [l1, l2, l3].map(|l| format!("{name}/{l:x}"))
    );
    tokio::time::sleep(BLOCKED).await;
    assert!(rx.try_recv().is_err(), "a waiter got the lock while held");

    c.unlock(a.key).await.unwrap();
    let (who, b) = within("b wakes", rx.recv()).await.unwrap();
    assert_eq!(who, "b");
    let b = b.unwrap();
    assert_eq!(String::from_utf8_lossy(&b.key), format!("{name}/{l2:x}"));
    tokio::time::sleep(BLOCKED).await;
    assert!(rx.try_recv().is_err(), "c woke while b holds the lock");
    c.unlock(b.key).await.unwrap();
    let (who, cr) = within("c wakes", rx.recv()).await.unwrap();
    assert_eq!(who, "c");
    let cr = cr.unwrap();
    // The answer's header is no older than the deletion that woke it.
    assert!(cr.header.unwrap().revision > rev);
    c.unlock(cr.key).await.unwrap();
    assert!(keys(c, name).await.is_empty());
}

#[tokio::test]
async fn lock_waiters_wake_in_create_revision_order() {
    let (_d, server) = fresh();
    for (p, name) in [
        (Protocol::Grpc, "order-grpc"),
        (Protocol::Fast, "order-fast"),
    ] {
        let c = client(&server, p).await;
        lock_order(&c, name).await;
    }
}

async fn election_flow(c: &Client, name: &str) {
    let l1 = c.lease_grant(30, 0).await.unwrap().id;
    let l2 = c.lease_grant(30, 0).await.unwrap().id;
    assert_eq!(
        failure(c.leader(name).await),
        unknown("election: no leader")
    );
    let mut obs = c.observe(name).await.unwrap();
    let a = within("campaign", c.campaign(name, "one", l1))
        .await
        .unwrap();
    let la = a.leader.clone().unwrap();
    assert_eq!(la.name, name.as_bytes());
    assert_eq!(String::from_utf8_lossy(&la.key), format!("{name}/{l1:x}"));
    assert_eq!((la.rev, la.lease), (a.header.unwrap().revision, l1));
    let seen = within("observe first", obs.message())
        .await
        .unwrap()
        .unwrap();
    let kv = seen.kv.unwrap();
    assert_eq!(
        (kv.key.clone(), kv.value),
        (la.key.clone(), b"one".to_vec())
    );
    assert_eq!(seen.header.unwrap().revision, la.rev);

    let ld = c.leader(name).await.unwrap().kv.unwrap();
    assert_eq!((ld.value, ld.create_revision), (b"one".to_vec(), la.rev));
    c.proclaim(la.clone(), "two").await.unwrap();
    let seen = within("observe proclaim", obs.message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.kv.unwrap().value, b"two");

    // A second candidate waits.
    let (tx, mut rx) = mpsc::unbounded_channel();
    {
        let (c2, name) = (c.clone(), name.to_string());
        tokio::spawn(async move {
            let _ = tx.send(c2.campaign(name, "bee", l2).await);
        });
    }
    until_exists(c, &format!("{name}/{l2:x}")).await;
    tokio::time::sleep(BLOCKED).await;
    assert!(rx.try_recv().is_err(), "second candidate elected early");

    let stale = el::LeaderKey {
        rev: la.rev + 100,
        ..la.clone()
    };
    assert_eq!(
        failure(c.proclaim(stale.clone(), "x").await),
        unknown("election: not leader")
    );
    // Resign when not leader: no error, nothing deleted.
    c.resign(stale).await.unwrap();
    assert_eq!(keys(c, name).await.len(), 2);
    for r in [
        c.call::<m::Proclaim>(el::ProclaimRequest {
            leader: None,
            value: b"v".to_vec(),
        })
        .await
        .map(drop),
        c.call::<m::Resign>(el::ResignRequest { leader: None })
            .await
            .map(drop),
    ] {
        assert_eq!(failure(r), unknown("\"leader\" field must be provided"));
    }

    c.resign(la.clone()).await.unwrap();
    let b = within("second elected", rx.recv()).await.unwrap().unwrap();
    let lb = b.leader.unwrap();
    assert_eq!(String::from_utf8_lossy(&lb.key), format!("{name}/{l2:x}"));
    let seen = within("observe new leader", obs.message())
        .await
        .unwrap()
        .unwrap();
    let kv = seen.kv.unwrap();
    assert_eq!((kv.key, kv.value), (lb.key.clone(), b"bee".to_vec()));
    assert_eq!(
        failure(c.proclaim(la, "x").await),
        unknown("election: not leader")
    );
    // Campaigning again with the same lease and another value updates it.
    let again = within("recampaign", c.campaign(name, "bee2", l2))
        .await
        .unwrap();
    assert_eq!(again.leader.unwrap().rev, lb.rev);
    let seen = within("observe value", obs.message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.kv.unwrap().value, b"bee2");
    c.resign(lb).await.unwrap();
    assert_eq!(
        failure(c.leader(name).await),
        unknown("election: no leader")
    );
    drop(obs);
    until_empty(c, name).await;
}

#[tokio::test]
async fn election_campaign_proclaim_leader_observe_resign() {
    let (_d, server) = fresh();
    for (p, name) in [(Protocol::Grpc, "el-grpc"), (Protocol::Fast, "el-fast")] {
        let c = client(&server, p).await;
        election_flow(&c, name).await;
    }
}

async fn errors_and_leases(c: &Client, name: &str) {
    // etcd 3.5.1 answers these with code 2 (its services see the KV's
    // errors through a client).
    assert_eq!(
        failure(c.lock(name, 0x7777).await),
        unknown("etcdserver: requested lease not found")
    );
    assert_eq!(
        failure(c.campaign(name, "v", 0x7777).await),
        unknown("etcdserver: requested lease not found")
    );
    assert_eq!(
        failure(c.unlock(Vec::new()).await),
        unknown("etcdserver: key is not provided")
    );
    // Unlocking a key that is not there is fine.
    c.unlock(format!("{name}/nothing")).await.unwrap();

    // Lease 0: the server grants a 60 s lease nobody keeps alive.
    let z = within("lock lease 0", c.lock(format!("{name}-0"), 0))
        .await
        .unwrap();
    let kv = c.get(z.key.clone(), None).await.unwrap().kvs.remove(0);
    let ttl = c.lease_time_to_live(kv.lease, false).await.unwrap();
    assert_eq!(ttl.granted_ttl, 60);
    assert_eq!(
        String::from_utf8_lossy(&z.key),
        format!("{name}-0/{:x}", kv.lease)
    );
    c.lease_revoke(kv.lease).await.unwrap();

    // etcd 3.5.1's quirk: Proclaim with lease 0 and rev 0 on a missing
    // key creates it, on a fresh 60 s lease.
    let q = format!("{name}-q/1");
    c.proclaim(
        el::LeaderKey {
            name: name.as_bytes().to_vec(),
            key: q.clone().into_bytes(),
            rev: 0,
            lease: 0,
        },
        "v",
    )
    .await
    .unwrap();
    let kv = c.get(q, None).await.unwrap().kvs.remove(0);
    let ttl = c.lease_time_to_live(kv.lease, false).await.unwrap();
    assert_eq!((kv.value, ttl.granted_ttl), (b"v".to_vec(), 60));
    c.lease_revoke(kv.lease).await.unwrap();

    // A waiter that goes away withdraws its key (Lock and Campaign).
    let holder = c.lease_grant(30, 0).await.unwrap().id;
    let waiter = c.lease_grant(30, 0).await.unwrap().id;
    let held = c.lock(name, holder).await.unwrap();
    let leader = c.campaign(name, "x", holder).await.unwrap();
    for what in ["lock", "campaign"] {
        let call = async {
            match what {
                "lock" => c.lock(name, waiter).await.map(drop),
                _ => c.campaign(name, "y", waiter).await.map(drop),
            }
        };
        assert!(
            tokio::time::timeout(Duration::from_millis(600), call)
                .await
                .is_err(),
            "{what} did not wait"
        );
        let deadline = Instant::now() + STEP;
        loop {
            let k = keys(c, name).await;
            if k == [format!("{name}/{holder:x}")] {
                break;
            }
            assert!(Instant::now() < deadline, "{what}: waiter key left: {k:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // The waiter's lease expires while it waits: etcd's answer once the
    // holder lets go.
    let short = c.lease_grant(1, 0).await.unwrap().id;
    let (tx, mut rx) = mpsc::unbounded_channel();
    {
        let (c2, name) = (c.clone(), name.to_string());
        tokio::spawn(async move {
            let _ = tx.send(c2.lock(name, short).await);
        });
    }
    until_exists(c, &format!("{name}/{short:x}")).await;
    // Expired and revoked: the waiter's key is gone.
    let deadline = Instant::now() + STEP;
    while !c
        .get(format!("{name}/{short:x}"), None)
        .await
        .unwrap()
        .kvs
        .is_empty()
    {
        assert!(Instant::now() < deadline, "lease never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rx.try_recv().is_err());
    c.unlock(held.key).await.unwrap();
    assert_eq!(
        failure(within("expired waiter", rx.recv()).await.unwrap()),
        unknown("mutex: session is expired")
    );
    c.resign(leader.leader.unwrap()).await.unwrap();
    until_empty(c, name).await;
}

#[tokio::test]
async fn errors_lease_zero_cancel_and_expiry_as_etcd() {
    let (_d, server) = fresh();
    for (p, name) in [(Protocol::Grpc, "err-grpc"), (Protocol::Fast, "err-fast")] {
        let c = client(&server, p).await;
        errors_and_leases(&c, name).await;
    }
}

fn b64(s: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for ch in s.chunks(3) {
        let n = ch
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= ch.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn post(server: &Server, path: &str, body: &str) -> (u16, serde_json::Value) {
    let (code, text) = common::http_post(server.client_port(), path, body)
        .unwrap_or_else(|| panic!("no answer to {path}"));
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
    (code, v)
}

/// Reads a streaming gateway answer until `want` lines of results came.
fn stream_lines(port: u16, path: &str, body: &str, want: usize) -> (std::net::TcpStream, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut got = String::new();
    let deadline = Instant::now() + STEP;
    while got.matches("{\"result\":").count() < want {
        assert!(Instant::now() < deadline, "stream lines: {got}");
        let mut buf = [0u8; 4096];
        match s.read(&mut buf) {
            Ok(0) => panic!("stream closed: {got}"),
            Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(_) => {}
        }
    }
    (s, got)
}

#[test]
fn gateway_lock_and_election_as_etcd() {
    let (_d, server) = fresh();
    let (st, r) = post(&server, "/v3/lease/grant", r#"{"TTL":30}"#);
    assert_eq!(st, 200);
    let lid: i64 = r["ID"].as_str().unwrap().parse().unwrap();

    let (st, r) = post(
        &server,
        "/v3/lock/lock",
        &format!(r#"{{"name":"{}","lease":{lid}}}"#, b64(b"gw")),
    );
    assert_eq!(st, 200, "{r}");
    let key = r["key"].as_str().unwrap().to_string();
    assert_eq!(key, b64(format!("gw/{lid:x}").as_bytes()));
    // A waiter whose HTTP client goes away withdraws its key.
    let (_, r) = post(&server, "/v3/lease/grant", r#"{"TTL":30}"#);
    let gone: i64 = r["ID"].as_str().unwrap().parse().unwrap();
    let waiter_key = b64(format!("gw/{gone:x}").as_bytes());
    {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", server.client_port())).unwrap();
        let body = format!(r#"{{"name":"{}","lease":{gone}}}"#, b64(b"gw"));
        write!(
            s,
            "POST /v3/lock/lock HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let deadline = Instant::now() + STEP;
        loop {
            let (_, r) = post(
                &server,
                "/v3/kv/range",
                &format!(r#"{{"key":"{waiter_key}"}}"#),
            );
            if r["count"].as_str() == Some("1") {
                break;
            }
            assert!(Instant::now() < deadline, "waiter key never appeared");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let deadline = Instant::now() + STEP;
    loop {
        let (_, r) = post(
            &server,
            "/v3/kv/range",
            &format!(r#"{{"key":"{waiter_key}"}}"#),
        );
        if r.get("count").is_none() {
            break;
        }
        assert!(Instant::now() < deadline, "gone waiter's key left: {r}");
        std::thread::sleep(Duration::from_millis(20));
    }

    // A second locker blocks until the unlock.
    let port = server.client_port();
    let second = std::thread::spawn(move || {
        common::http_post(
            port,
            "/v3/lock/lock",
            &format!(r#"{{"name":"{}"}}"#, b64(b"gw")),
        )
    });
    std::thread::sleep(Duration::from_millis(800));
    assert!(!second.is_finished(), "second Lock returned while held");
    let (st, _) = post(&server, "/v3/lock/unlock", &format!(r#"{{"key":"{key}"}}"#));
    assert_eq!(st, 200);
    let (st, body) = second.join().unwrap().expect("second lock answered");
    assert_eq!(st, 200, "{body}");

    // Errors: etcd 3.5.1's bodies, 500 (code 2).
    let (st, r) = post(
        &server,
        "/v3/lock/lock",
        &format!(r#"{{"name":"{}","lease":12345}}"#, b64(b"gw")),
    );
    assert_eq!(st, 500, "{r}");
    let raw = common::http_post(
        server.client_port(),
        "/v3/lock/lock",
        &format!(r#"{{"name":"{}","lease":12345}}"#, b64(b"gw")),
    );
    assert_eq!(
        raw,
        Some((
            500,
            r#"{"error":"etcdserver: requested lease not found","code":2,"message":"etcdserver: requested lease not found"}"#
                .to_string()
        ))
    );
    let (st, r) = post(&server, "/v3/lock/unlock", "{}");
    assert_eq!(
        (st, r["code"].as_i64(), r["message"].as_str()),
        (500, Some(2), Some("etcdserver: key is not provided"))
    );
    let (st, r) = post(
        &server,
        "/v3/election/leader",
        &format!(r#"{{"name":"{}"}}"#, b64(b"ge")),
    );
    assert_eq!(
        (st, r["code"].as_i64(), r["error"].as_str()),
        (500, Some(2), Some("election: no leader"))
    );
    let (st, r) = post(&server, "/v3/election/proclaim", "{}");
    assert_eq!(
        (st, r["message"].as_str()),
        (500, Some("\"leader\" field must be provided"))
    );
    let (st, r) = post(&server, "/v3/election/resign", "{}");
    assert_eq!(
        (st, r["message"].as_str()),
        (500, Some("\"leader\" field must be provided"))
    );

    // Observe, campaign, proclaim, leader, resign.
    let name = b64(b"ge");
    let (mut obs, _) = {
        let port = server.client_port();
        let body = format!(r#"{{"name":"{name}"}}"#);
        let h = std::thread::spawn(move || stream_lines(port, "/v3/election/observe", &body, 1));
        std::thread::sleep(Duration::from_millis(300));
        let (st, r) = post(
            &server,
            "/v3/election/campaign",
            &format!(
                r#"{{"name":"{name}","lease":{lid},"value":"{}"}}"#,
                b64(b"me")
            ),
        );
        assert_eq!(st, 200, "{r}");
        let leader = r["leader"].clone();
        assert_eq!(leader["name"].as_str(), Some(name.as_str()));
        assert_eq!(leader["rev"], r["header"]["revision"]);
        let (s, got) = h.join().unwrap();
        assert!(got.contains(&b64(b"me")), "{got}");
        let (st, r) = post(
            &server,
            "/v3/election/proclaim",
            &format!(r#"{{"leader":{leader},"value":"{}"}}"#, b64(b"me2")),
        );
        assert_eq!(st, 200, "{r}");
        let (_, r) = post(
            &server,
            "/v3/election/leader",
            &format!(r#"{{"name":"{name}"}}"#),
        );
        assert_eq!(r["kv"]["value"].as_str(), Some(b64(b"me2").as_str()));
        let (st, _) = post(
            &server,
            "/v3/election/resign",
            &format!(r#"{{"leader":{leader}}}"#),
        );
        assert_eq!(st, 200);
        // Resigning again (no longer leader) is no error either.
        let (st, _) = post(
            &server,
            "/v3/election/resign",
            &format!(r#"{{"leader":{leader}}}"#),
        );
        assert_eq!(st, 200);
        (s, got)
    };
    // The observer saw the proclaimed value.
    let mut rest = String::new();
    let deadline = Instant::now() + STEP;
    while !rest.contains(&b64(b"me2")) {
        assert!(Instant::now() < deadline, "observer: {rest}");
        let mut buf = [0u8; 4096];
        if let Ok(n) = obs.read(&mut buf) {
            rest.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    let (st, r) = post(
        &server,
        "/v3/election/leader",
        &format!(r#"{{"name":"{name}"}}"#),
    );
    assert_eq!(
        (st, r["error"].as_str()),
        (500, Some("election: no leader"))
    );
}

// ----- processes: ferroctl and etcdctl -----

fn ferroctl() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ferroctl"))
}

/// etcdctl 3.5.1, if there is one.
fn etcdctl_351() -> Option<PathBuf> {
    let p = common::etcdctl_bin();
    let out = Command::new(&p).arg("version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("etcdctl version: 3.5.1") {
        Some(p)
    } else {
        eprintln!("note: no etcdctl 3.5.1 ({}); skipping its run", p.display());
        None
    }
}

fn ctl(bin: &Path, server: &Server) -> Command {
    let mut c = Command::new(bin);
    c.env("ETCDCTL_API", "3")
        .env("ETCDCTL_ENDPOINTS", server.endpoint())
        .env("CTL", ferroctl())
        .stdin(Stdio::null());
    c
}

/// Spawns `cmd` with its stdout in `file`.
fn spawn_to(mut cmd: Command, file: &Path) -> Child {
    cmd.stdout(std::fs::File::create(file).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits (bounded) until `file` contains `needle`.
fn until_printed(file: &Path, needle: &str) -> String {
    let deadline = Instant::now() + STEP;
    loop {
        let got = std::fs::read_to_string(file).unwrap_or_default();
        if got.contains(needle) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{} never printed {needle:?}: {got:?}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` at most `within`; kills it and panics after.
fn wait(mut child: Child, within: Duration, what: &str) -> std::process::Output {
    let deadline = Instant::now() + within;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what} ran past {within:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// N workers, each running `lock counter -- sh -c <read, add one, write>`
/// M times with `bin`; the counter must come out exactly N*M.
fn contention(server: &Server, bin: &Path, name: &str, workers: usize, iterations: usize) {
    let counter = format!("{name}-counter");
    // Read with ferroctl, add one, write back: a lost update shows as a
    // short count.
    let script = format!(
        r#"v=$("$CTL" get --print-value-only {counter}); "$CTL" put {counter} $(( ${{v:-0}} + 1 )) >/dev/null"#
    );
    let started = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let mut runs = Vec::new();
            for _ in 0..iterations {
                let mut cmd = ctl(bin, server);
                cmd.args(["lock", "--ttl", "5", name, "--", "sh", "-c", &script])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                runs.push(cmd);
            }
            std::thread::spawn(move || {
                for cmd in runs {
                    let out = wait(
                        {
                            let mut cmd = cmd;
                            cmd.spawn().unwrap()
                        },
                        Duration::from_secs(60),
                        "lock run",
                    );
                    assert!(
                        out.status.success(),
                        "worker {w}: {:?} {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let out = ctl(&ferroctl(), server)
        .args(["get", "--print-value-only", &counter])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        (workers * iterations).to_string(),
        "{} with {workers}x{iterations} lock runs",
        bin.display()
    );
    eprintln!(
        "{}: {workers}x{iterations} locked increments in {:?}",
        bin.display(),
        started.elapsed()
    );
}

#[test]
fn lock_contention_counter_is_exact() {
    let (_d, server) = fresh();
    contention(&server, &ferroctl(), "cnt-ferroctl", 6, 5);
    if let Some(etcdctl) = etcdctl_351() {
        contention(&server, &etcdctl, "cnt-etcdctl", 6, 4);
    }
}

fn rt() -> tokio::runtime::Runtime {
    // Threads of its own: spawned calls proceed while the test waits for
    // processes.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn kill(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a process this test started.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

#[test]
fn killed_holders_release_once_their_lease_expires() {
    let (d, server) = fresh();
    let rt = rt();
    let c = rt.block_on(client(&server, Protocol::Grpc));
    let pidfile = d.path().join("holder.pid");
    let log = d.path().join("after.log");
    // The holder runs a long command; ferroctl is then SIGKILLed (its
    // command too), so nobody releases the lock: its 2 s lease must.
    let holder = ctl(&ferroctl(), &server)
        .args([
            "lock",
            "--ttl",
            "2",
            "killed",
            "--",
            "sh",
            "-c",
            &format!("echo $$ > {}; exec sleep 60", pidfile.display()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + STEP;
    while std::fs::read_to_string(&pidfile).map_or(true, |s| s.trim().is_empty()) {
        assert!(Instant::now() < deadline, "holder never ran its command");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Waiters: ferroctl processes and a server-side Lock over gRPC.
    let waiters: Vec<Child> = (0..3)
        .map(|i| {
            ctl(&ferroctl(), &server)
                .args([
                    "lock",
                    "killed",
                    "--",
                    "sh",
                    "-c",
                    &format!("echo w{i} >> {}", log.display()),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let grpc_lease = rt.block_on(c.lease_grant(30, 0)).unwrap().id;
    let grpc_waiter = {
        let c = c.clone();
        // Lets go at once, so the ferroctl waiters behind it go on too.
        rt.spawn(async move {
            let held = c.lock("killed", grpc_lease).await?;
            c.unlock(held.key.clone()).await?;
            Ok::<_, Error>(held)
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let mut holder = holder;
    holder.kill().unwrap();
    holder.wait().unwrap();
    let sleeper: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    kill(sleeper, libc::SIGKILL);
    let killed_at = Instant::now();
    // The lease (last renewed at most a third of its TTL ago) outlives
    // the holder by over a second: nobody may run before it expires.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !log.exists(),
        "a waiter ran while the killed holder's lease lived"
    );
    for (i, w) in waiters.into_iter().enumerate() {
        let out = wait(w, Duration::from_secs(30), "waiter after the kill");
        assert!(out.status.success(), "waiter {i}: {out:?}");
        eprintln!("waiter {i} done {:?} after the kill", killed_at.elapsed());
    }
    // They went on once the 2 s lease expired, not after their own or
    // the gRPC waiter's 30 s leases.
    assert!(killed_at.elapsed() < Duration::from_secs(10));
    let got = rt
        .block_on(async { tokio::time::timeout(STEP, grpc_waiter).await })
        .expect("gRPC Lock after the kill")
        .unwrap()
        .unwrap();
    let lines = std::fs::read_to_string(&log).unwrap();
    assert_eq!(lines.lines().count(), 3, "{lines}");
    assert!(got.key.starts_with(b"killed/"));
    assert!(
        rt.block_on(c.get("killed/", Some(GetOptions::new().with_prefix())))
            .unwrap()
            .kvs
            .is_empty()
    );
}

#[test]
fn ferroctl_recipe_and_server_services_exclude_each_other() {
    let (d, server) = fresh();
    let rt = rt();
    let c = rt.block_on(client(&server, Protocol::Fast));

    // A ferroctl holder blocks a server-side Lock.
    let mut cmd = ctl(&ferroctl(), &server);
    cmd.args(["lock", "mix"]);
    let out = d.path().join("holder.out");
    let holder = spawn_to(cmd, &out);
    let first = until_printed(&out, "\n");
    assert!(first.starts_with("mix/"), "{first}");
    let lease = rt.block_on(c.lease_grant(30, 0)).unwrap().id;
    let waiter = {
        let c = c.clone();
        rt.spawn(async move { c.lock("mix", lease).await })
    };
    std::thread::sleep(BLOCKED * 2);
    assert!(!waiter.is_finished(), "Lock returned while ferroctl holds");
    kill(holder.id(), libc::SIGINT);
    wait(holder, STEP, "ferroctl lock after SIGINT");
    let held = rt
        .block_on(async { tokio::time::timeout(STEP, waiter).await })
        .expect("Lock after ferroctl released")
        .unwrap()
        .unwrap();

    // The server-side holder blocks a ferroctl lock.
    let mark = d.path().join("ran");
    let blocked = ctl(&ferroctl(), &server)
        .args([
            "lock",
            "mix",
            "--",
            "sh",
            "-c",
            &format!("echo $ETCD_LOCK_KEY > {}", mark.display()),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(BLOCKED * 2);
    assert!(!mark.exists(), "ferroctl ran its command while Lock holds");
    rt.block_on(c.unlock(held.key)).unwrap();
    let out = wait(blocked, STEP, "ferroctl lock after Unlock");
    assert!(out.status.success(), "{out:?}");
    let key = std::fs::read_to_string(&mark).unwrap();
    assert!(key.starts_with("mix/"), "ETCD_LOCK_KEY {key:?}");

    // Elections: a ferroctl candidate leads, Campaign waits; `elect -l`
    // reports a server-side leader.
    let mut cmd = ctl(&ferroctl(), &server);
    cmd.args(["elect", "mixel", "p1"]);
    let out = d.path().join("cand.out");
    let cand = spawn_to(cmd, &out);
    until_printed(&out, "p1");
    let lease = rt.block_on(c.lease_grant(30, 0)).unwrap().id;
    let campaign = {
        let c = c.clone();
        rt.spawn(async move { c.campaign("mixel", "p2", lease).await })
    };
    std::thread::sleep(BLOCKED * 2);
    assert!(!campaign.is_finished(), "Campaign won while ferroctl leads");
    let l = rt.block_on(c.leader("mixel")).unwrap().kv.unwrap();
    assert_eq!(l.value, b"p1");
    kill(cand.id(), libc::SIGINT);
    wait(cand, STEP, "ferroctl elect after SIGINT");
    let won = rt
        .block_on(async { tokio::time::timeout(STEP, campaign).await })
        .expect("Campaign after ferroctl resigned")
        .unwrap()
        .unwrap();
    let mut cmd = ctl(&ferroctl(), &server);
    cmd.args(["elect", "-l", "mixel"]);
    let out = d.path().join("obs.out");
    let obs = spawn_to(cmd, &out);
    until_printed(&out, "p2");
    kill(obs.id(), libc::SIGINT);
    wait(obs, STEP, "ferroctl elect -l after SIGINT");
    rt.block_on(c.resign(won.leader.unwrap())).unwrap();
}
