//! Three real `ferrocd` members on loopback: static bootstrap, the shared
//! conformance suite's cluster cases (and the single-node KV/watch/lease
//! cases through a follower-first endpoint list), and a leader killed with
//! `kill -9` under write load through every member.

#[path = "../common/mod.rs"]
mod common;

// The console's browser harness (tests/ui), for the member table of a
// real three-member cluster.
#[path = "../ui/browser.rs"]
mod browser;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ferrocd_net::pb::etcdserverpb::kv_client::KvClient;
use ferrocd_net::pb::etcdserverpb::maintenance_client::MaintenanceClient;
use ferrocd_net::pb::etcdserverpb::{HashKvRequest, PutRequest, RangeRequest, StatusRequest};

struct Member {
    /// The peer port other members dial (a test proxy), if not `peer`.
    advertised_peer: Option<u16>,
    /// `--initial-cluster-state` and `--initial-cluster` of this member.
    state: &'static str,
    initial: Option<String>,
    name: String,
    client: u16,
    peer: u16,
    dir: PathBuf,
    child: Option<Child>,
    starts: u32,
    /// Flags for this member only (e.g. a console port).
    own: Vec<String>,
}

struct Cluster {
    members: Vec<Member>,
    initial: String,
    extra: Vec<String>,
}

impl Cluster {
    fn start(root: &Path, n: usize) -> Cluster {
        Self::start_with(root, n, &[])
    }

    fn start_with(root: &Path, n: usize, extra: &[&str]) -> Cluster {
        Self::start_proxied(root, n, extra, None)
    }

    /// `proxies[i]`: the port member i advertises (a proxy to its peer
    /// port).
    fn start_proxied(
        root: &Path,
        n: usize,
        extra: &[&str],
        proxies: Option<&[(u16, u16)]>,
    ) -> Cluster {
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                advertised_peer: None,
                state: "new",
                initial: None,
                name: format!("m{i}"),
                client: common::free_port(),
                peer: common::free_port(),
                dir: root.join(format!("m{i}")),
                child: None,
                starts: 0,
                own: Vec::new(),
            })
            .collect();
        let mut members = members;
        if let Some(p) = proxies {
            for (m, (listen, advertised)) in members.iter_mut().zip(p) {
                m.peer = *listen;
                m.advertised_peer = Some(*advertised);
            }
        }
        let initial = members
            .iter()
            .map(|m| {
                format!(
                    "{}=http://127.0.0.1:{}",
                    m.name,
                    m.advertised_peer.unwrap_or(m.peer)
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        let mut c = Cluster {
            members,
            initial,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        for i in 0..n {
            c.spawn(i);
        }
        for i in 0..n {
            c.wait_ready(i);
        }
        c
    }

    fn spawn(&mut self, i: usize) {
        let extra = self.extra.clone();
        let initial = self.members[i]
            .initial
            .clone()
            .unwrap_or_else(|| self.initial.clone());
        let m = &mut self.members[i];
        m.starts += 1;
        let log = std::fs::File::create(m.dir.with_extension(format!("log{}", m.starts))).unwrap();
        let curl = format!("http://127.0.0.1:{}", m.client);
        let purl = format!("http://127.0.0.1:{}", m.peer);
        let apurl = format!("http://127.0.0.1:{}", m.advertised_peer.unwrap_or(m.peer));
        let child = Command::new(env!("CARGO_BIN_EXE_ferrocd"))
            .args(["--name", &m.name, "--data-dir"])
            .arg(&m.dir)
            .args([
                "--listen-client-urls",
                &curl,
                "--advertise-client-urls",
                &curl,
            ])
            .args([
                "--listen-peer-urls",
                &purl,
                "--initial-advertise-peer-urls",
                &apurl,
            ])
            .args(["--initial-cluster", &initial, "--log-level", "warn"])
            .args(["--initial-cluster-state", m.state])
            .args(&extra)
            .args(&m.own)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn ferrocd");
        m.child = Some(child);
    }

    fn wait_ready(&self, i: usize) {
        let port = self.members[i].client;
        let t = Instant::now();
        loop {
            if let Some((200, _)) = common::http_get(port, "/health") {
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "member {i} not ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A new member's slot (not started): joins with state `existing`.
    fn add_slot(&mut self, root: &Path) -> usize {
        let i = self.members.len();
        let peer = common::free_port();
        let initial = format!("{},m{i}=http://127.0.0.1:{peer}", self.initial);
        self.members.push(Member {
            advertised_peer: None,
            state: "existing",
            initial: Some(initial),
            name: format!("m{i}"),
            client: common::free_port(),
            peer,
            dir: root.join(format!("m{i}")),
            child: None,
            starts: 0,
            own: Vec::new(),
        });
        i
    }

    fn exited(&mut self, i: usize) -> bool {
        match self.members[i].child.as_mut() {
            Some(c) => c.try_wait().ok().flatten().is_some(),
            None => true,
        }
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// A client putting `prefix{i:06}` keys through `ep` until `stop` (or
/// `secs`); returns every acknowledged key with its revision. A put with
/// no answer within 5 s is unknown, not acknowledged.
fn spawn_writer(
    rt: &tokio::runtime::Runtime,
    ep: &str,
    prefix: String,
    stop: &Arc<AtomicBool>,
    secs: u64,
) -> tokio::task::JoinHandle<BTreeMap<String, i64>> {
    let (ep, stop) = (ep.to_string(), stop.clone());
    rt.spawn(async move {
        let mut acked = BTreeMap::new();
        let mut kv = KvClient::new(common::connect(&ep).await);
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            let key = format!("{prefix}{i:06}");
            let put = kv.put(PutRequest {
                key: key.clone().into_bytes(),
                value: b"v".to_vec(),
                ..Default::default()
            });
            if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(5), put).await {
                acked.insert(key, r.into_inner().header.unwrap().revision);
            }
            i += 1;
        }
        acked
    })
}

/// Wait until every member reports the same revision (at least `min_rev`)
/// and the same HashKV.
async fn hashes_agree(eps: &[String], min_rev: i64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let mut hashes = Vec::new();
        for ep in eps {
            let mut m = MaintenanceClient::new(common::connect(ep).await);
            let h = m
                .hash_kv(HashKvRequest { revision: 0 })
                .await
                .unwrap()
                .into_inner();
            hashes.push((h.header.unwrap().revision, h.hash));
        }
        if hashes.windows(2).all(|w| w[0] == w[1]) && hashes[0].0 >= min_rev {
            return;
        }
        assert!(Instant::now() < deadline, "members disagree: {hashes:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// (member id, leader id) per endpoint.
async fn statuses(eps: &[String]) -> Vec<(u64, u64, i64)> {
    let mut out = Vec::new();
    for ep in eps {
        let mut c = MaintenanceClient::new(common::connect(ep).await);
        let s = c.status(StatusRequest {}).await.unwrap().into_inner();
        let h = s.header.unwrap();
        out.push((h.member_id, s.leader, h.revision));
    }
    out
}

#[test]
fn shared_conformance_suite_three_members() {
    let tmp = common::tempdir();
    let c = Cluster::start(tmp.path(), 3);
    // A follower first: the single-member cases then go through forwarding.
    let mut eps = c.endpoints();
    eps.rotate_left(1);
    // The whole suite (lock, election, auth, snapshot, defrag and alarm
    // cases included) plus its cluster cases.
    let mut args = vec!["--cluster"];
    args.extend(eps.iter().map(String::as_str));
    let r = common::conformance(&args);
    assert!(r.ok, "conformance: {}\n{}", r.summary, r.details);
    let last = r.summary;
    eprintln!("conformance (3 members): {last}");
}

#[test]
fn leader_kill_9_under_load_loses_no_acknowledged_write() {
    let tmp = common::tempdir();
    let mut c = Cluster::start(tmp.path(), 3);
    let rt = rt();
    let eps = c.endpoints();
    let st = rt.block_on(statuses(&eps));
    let leader_id = st[0].1;
    let leader = st
        .iter()
        .position(|s| s.0 == leader_id)
        .expect("a leader member");

    // Writers through every member, each its own keys, for a bounded time.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = eps
        .iter()
        .enumerate()
        .map(|(w, ep)| spawn_writer(&rt, ep, format!("w{w}/"), &stop, 20))
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let killed_at = Instant::now();
    c.kill(leader);
    // Fail-over: the first write through a survivor after the kill.
    let survivor = eps[(leader + 1) % 3].clone();
    let failover = rt.block_on(async {
        let mut kv = KvClient::new(common::connect(&survivor).await);
        loop {
            let put = kv.put(PutRequest {
                key: b"failover".to_vec(),
                value: b"x".to_vec(),
                ..Default::default()
            });
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), put).await {
                return killed_at.elapsed();
            }
            assert!(
                killed_at.elapsed() < Duration::from_secs(30),
                "no write succeeded after the leader died"
            );
        }
    });
    eprintln!("fail-over: first write {failover:?} after kill -9 of the leader");
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<BTreeMap<String, i64>> = writers
        .into_iter()
        .map(|h| rt.block_on(h).unwrap())
        .collect();
    let total: usize = acked.iter().map(|a| a.len()).sum();
    assert!(total > 50, "only {total} writes were acknowledged");

    // The old leader comes back and catches up.
    c.spawn(leader);
    c.wait_ready(leader);
    rt.block_on(async {
        for ep in &eps {
            let mut kv = KvClient::new(common::connect(ep).await);
            for a in &acked {
                for (key, rev) in a {
                    let r = kv
                        .range(RangeRequest {
                            key: key.clone().into_bytes(),
                            ..Default::default()
                        })
                        .await
                        .unwrap()
                        .into_inner();
                    assert_eq!(r.kvs.len(), 1, "{key} (acked at {rev}) missing on {ep}");
                    assert_eq!(r.kvs[0].mod_revision, *rev, "{key} on {ep}");
                }
            }
        }
        // Every member at the same revision with the same HashKV.
        hashes_agree(&eps, 0, Duration::from_secs(10)).await;
    });
}

/// A follower that was down while the leader snapshotted and purged its
/// log behind the snapshot catches up by snapshot install (streamed in
/// chunks), then follows the log again.
#[test]
fn lagging_follower_catches_up_by_snapshot() {
    let tmp = common::tempdir();
    let mut c = Cluster::start_with(
        tmp.path(),
        3,
        &[
            "--snapshot-count",
            "20",
            "--experimental-snapshot-catchup-entries",
            "5",
        ],
    );
    let rt = rt();
    let eps = c.endpoints();
    let st = rt.block_on(statuses(&eps));
    let leader_id = st[0].1;
    let follower = st
        .iter()
        .position(|s| s.0 != leader_id)
        .expect("a follower");
    let other = (0..3).find(|i| *i != follower).unwrap();
    c.kill(follower);
    rt.block_on(async {
        let mut kv = KvClient::new(common::connect(&eps[other]).await);
        for i in 0..150 {
            kv.put(PutRequest {
                key: format!("lag/{i:04}").into_bytes(),
                value: vec![b'v'; 512],
                ..Default::default()
            })
            .await
            .unwrap();
        }
    });
    c.spawn(follower);
    c.wait_ready(follower);
    rt.block_on(async {
        let mut kv = KvClient::new(common::connect(&eps[follower]).await);
        let r = kv
            .range(RangeRequest {
                key: b"lag/".to_vec(),
                range_end: b"lag0".to_vec(),
                count_only: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.count, 150, "the restarted follower has every key");
        // And it keeps following the log after the snapshot.
        let mut kv = KvClient::new(common::connect(&eps[other]).await);
        kv.put(PutRequest {
            key: b"after".to_vec(),
            value: b"x".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    });
    let snaps = std::fs::read_dir(c.members[follower].dir.join("member/snap"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".snap"))
        .count();
    assert!(snaps > 0, "the follower holds no snapshot file");
    // It saved the leader's snapshot as etcd saves a `.snap.db`, timed.
    let (_, metrics) = common::http_get(c.members[follower].client, "/metrics").unwrap();
    for name in [
        "etcd_snap_db_save_total_duration_seconds_count",
        "etcd_snap_db_fsync_duration_seconds_count",
    ] {
        let n: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        assert!(n >= 1.0, "{name} {n}");
    }
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let st = statuses(&eps).await;
            if st.iter().all(|s| s.2 == st[0].2) {
                break;
            }
            assert!(Instant::now() < deadline, "revisions differ: {st:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

/// etcd's membership workflow under write load: add a learner, start it
/// with `--initial-cluster-state existing`, promote it once it caught up,
/// then remove the leader. Writes keep succeeding (through a member that
/// stays), every acknowledged one is on the new member, and the removed
/// member stops by itself.
#[test]
fn membership_changes_under_write_load() {
    use ferrocd_net::pb::etcdserverpb::cluster_client::ClusterClient;
    use ferrocd_net::pb::etcdserverpb::{
        MemberAddRequest, MemberListRequest, MemberPromoteRequest, MemberRemoveRequest,
    };
    let tmp = common::tempdir();
    let mut c = Cluster::start(tmp.path(), 3);
    let rt = rt();
    let eps = c.endpoints();
    let st = rt.block_on(statuses(&eps));
    let leader_id = st[0].1;
    let leader = st.iter().position(|s| s.0 == leader_id).unwrap();
    let stay = (leader + 1) % 3;
    let stay_ep = eps[stay].clone();

    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(&rt, &stay_ep, "mem/".into(), &stop, 40);

    let new = c.add_slot(tmp.path());
    let new_peer = format!("http://127.0.0.1:{}", c.members[new].peer);
    let new_peer_port = c.members[new].peer;
    let new_id = rt.block_on(async {
        let mut cl = ClusterClient::new(common::connect(&stay_ep).await);
        let r = cl
            .member_add(MemberAddRequest {
                peer_ur_ls: vec![new_peer.clone()],
                is_learner: true,
            })
            .await
            .expect("member add")
            .into_inner();
        let m = r.member.expect("the added member");
        assert!(m.is_learner);
        assert_eq!(r.members.len(), 4);
        // A second add with the same peer URL is refused as etcd does.
        let dup = cl
            .member_add(MemberAddRequest {
                peer_ur_ls: vec![new_peer.clone()],
                is_learner: true,
            })
            .await
            .unwrap_err();
        assert_eq!(dup.message(), "etcdserver: Peer URLs already exists");
        m.id
    });
    c.spawn(new);
    c.wait_ready(new);
    rt.block_on(async {
        let mut cl = ClusterClient::new(common::connect(&stay_ep).await);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match cl.member_promote(MemberPromoteRequest { id: new_id }).await {
                Ok(r) => {
                    let r = r.into_inner();
                    assert!(r.members.iter().all(|m| !m.is_learner), "{:?}", r.members);
                    break;
                }
                Err(e) if e.message().contains("in sync with leader") => {
                    assert!(Instant::now() < deadline, "the learner never caught up");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("promote: {e}"),
            }
        }
        // Promoting a voter is refused as etcd does.
        let again = cl
            .member_promote(MemberPromoteRequest { id: new_id })
            .await
            .unwrap_err();
        assert_eq!(
            again.message(),
            "etcdserver: can only promote a learner member"
        );
        // Remove the leader.
        let r = cl
            .member_remove(MemberRemoveRequest { id: leader_id })
            .await
            .expect("remove the leader")
            .into_inner();
        assert_eq!(r.members.len(), 3);
        assert!(r.members.iter().all(|m| m.id != leader_id));
        let gone = cl
            .member_remove(MemberRemoveRequest { id: leader_id })
            .await
            .unwrap_err();
        assert_eq!(gone.message(), "etcdserver: member not found");
        let l = cl
            .member_list(MemberListRequest { linearizable: true })
            .await
            .unwrap()
            .into_inner();
        assert!(
            l.members
                .iter()
                .any(|m| m.id == new_id && m.name == format!("m{new}"))
        );
        // MemberUpdate: the new peer URLs are in the replicated member list.
        // (localhost: still the member it was, so the cluster keeps its quorum.)
        let moved = format!("http://localhost:{new_peer_port}");
        let u = cl
            .member_update(ferrocd_net::pb::etcdserverpb::MemberUpdateRequest {
                id: new_id,
                peer_ur_ls: vec![moved.clone()],
            })
            .await
            .expect("member update")
            .into_inner();
        assert!(
            u.members
                .iter()
                .any(|m| m.id == new_id && m.peer_ur_ls == vec![moved.clone()])
        );
        let missing = cl
            .member_update(ferrocd_net::pb::etcdserverpb::MemberUpdateRequest {
                id: 0x1234,
                peer_ur_ls: vec![moved.clone()],
            })
            .await
            .unwrap_err();
        assert_eq!(missing.message(), "etcdserver: member not found");
    });
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let acked = rt.block_on(writer).unwrap();
    assert!(acked.len() > 20, "only {} writes acknowledged", acked.len());
    let t = Instant::now();
    while !c.exited(leader) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the removed member did not stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let new_ep = format!("127.0.0.1:{}", c.members[new].client);
    rt.block_on(async {
        let mut kv = KvClient::new(common::connect(&new_ep).await);
        for (key, rev) in &acked {
            let r = kv
                .range(RangeRequest {
                    key: key.clone().into_bytes(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(r.kvs.len(), 1, "{key} missing on the new member");
            assert_eq!(r.kvs[0].mod_revision, *rev);
        }
    });
}

/// Issue 21: a removed follower kept running for 30 s and more, listed
/// itself, served stale reads and forwarded writes (only a removed leader
/// stopped). etcd 3.4's removed member exits within 5 s, with status 0,
/// and so must ferrocd's: a follower never receives the entry that
/// removes it, so it learns it from the first peer it calls (which
/// answers "removed" from the replicated removed ids). A member that was
/// down while it was removed learns it the same way when it comes back.
#[test]
fn issue_21_removed_followers_stop_even_one_that_was_down() {
    use ferrocd_net::pb::etcdserverpb::cluster_client::ClusterClient;
    use ferrocd_net::pb::etcdserverpb::{MemberListRequest, MemberRemoveRequest};
    let tmp = common::tempdir();
    let mut c = Cluster::start(tmp.path(), 3);
    let rt = rt();
    let eps = c.endpoints();
    let st = rt.block_on(statuses(&eps));
    let leader_id = st[0].1;
    let leader = st.iter().position(|s| s.0 == leader_id).unwrap();
    let (down, live) = ((leader + 1) % 3, (leader + 2) % 3);
    let remove = |id: u64| {
        rt.block_on(async {
            let mut cl = ClusterClient::new(common::connect(&eps[leader]).await);
            let r = cl
                .member_remove(MemberRemoveRequest { id })
                .await
                .expect("member remove")
                .into_inner();
            assert!(r.members.iter().all(|m| m.id != id));
        })
    };
    let stops_within = |c: &mut Cluster, i: usize, what: &str| {
        let t = Instant::now();
        let status = loop {
            if let Some(s) = c.members[i].child.as_mut().unwrap().try_wait().unwrap() {
                break s;
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "{what}: still running 5 s after its removal"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(status.code(), Some(0), "{what}: {status}");
        let m = &c.members[i];
        let log = std::fs::read_to_string(m.dir.with_extension(format!("log{}", m.starts)))
            .unwrap_or_default();
        assert!(
            log.contains("permanently removed from the cluster"),
            "{what}: {log}"
        );
    };

    // Removed while down: it comes back, is told by its peers, stops.
    c.kill(down);
    remove(st[down].0);
    c.spawn(down);
    stops_within(&mut c, down, "the member removed while it was down");

    // A live follower: stops, and the cluster (now the leader alone)
    // keeps serving.
    remove(st[live].0);
    stops_within(&mut c, live, "the removed follower");
    rt.block_on(async {
        let mut kv = KvClient::new(common::connect(&eps[leader]).await);
        kv.put(PutRequest {
            key: b"after".to_vec(),
            value: b"removal".to_vec(),
            ..Default::default()
        })
        .await
        .expect("the remaining member serves writes");
        let mut cl = ClusterClient::new(common::connect(&eps[leader]).await);
        let l = cl
            .member_list(MemberListRequest { linearizable: true })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(l.members.len(), 1, "{:?}", l.members);
    });
    // Started again, the removed follower stops again at once.
    c.spawn(live);
    stops_within(&mut c, live, "the removed follower, restarted");
}

/// Issue 21: a removed learner never campaigns, so it never calls a peer
/// by itself: it learns its removal by asking its peers once no leader is
/// heard from, and stops (status 0) within etcd 3.4's 5 s.
#[test]
fn issue_21_removed_learner_stops() {
    use ferrocd_net::pb::etcdserverpb::cluster_client::ClusterClient;
    use ferrocd_net::pb::etcdserverpb::{MemberAddRequest, MemberRemoveRequest};
    let tmp = common::tempdir();
    let mut c = Cluster::start(tmp.path(), 1);
    let rt = rt();
    let ep = c.endpoints()[0].clone();
    let new = c.add_slot(tmp.path());
    let peer = format!("http://127.0.0.1:{}", c.members[new].peer);
    let id = rt.block_on(async {
        let mut cl = ClusterClient::new(common::connect(&ep).await);
        let r = cl
            .member_add(MemberAddRequest {
                peer_ur_ls: vec![peer],
                is_learner: true,
            })
            .await
            .expect("member add")
            .into_inner();
        r.member.expect("added").id
    });
    c.spawn(new);
    c.wait_ready(new);
    rt.block_on(async {
        let mut cl = ClusterClient::new(common::connect(&ep).await);
        cl.member_remove(MemberRemoveRequest { id })
            .await
            .expect("remove the learner");
    });
    let t = Instant::now();
    let status = loop {
        if let Some(s) = c.members[new].child.as_mut().unwrap().try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the removed learner still runs 5 s after its removal"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "{status}");
}

/// Issue 21: `--force-new-cluster` was refused, so after losing quorum
/// the only way back was an older snapshot. As etcd: a member restarted
/// with it becomes a one-member cluster with all its data (keys,
/// revisions, cluster and member ids); it stays one on later restarts
/// without the flag; a former member that comes back is told it was
/// removed and stops.
#[test]
fn issue_21_force_new_cluster_after_losing_two_of_three() {
    use ferrocd_net::pb::etcdserverpb::MemberListRequest;
    use ferrocd_net::pb::etcdserverpb::cluster_client::ClusterClient;
    let tmp = common::tempdir();
    let mut c = Cluster::start(tmp.path(), 3);
    let rt = rt();
    let eps = c.endpoints();
    let before = rt.block_on(async {
        let mut kv = KvClient::new(common::connect(&eps[0]).await);
        for i in 0..50 {
            kv.put(PutRequest {
                key: format!("force/{i:02}").into_bytes(),
                value: vec![b'v'; 10 + i],
                ..Default::default()
            })
            .await
            .expect("put");
        }
        let st = statuses(&eps).await;
        // Every member has applied everything before two of them die.
        hashes_agree(&eps, st[0].2, Duration::from_secs(10)).await;
        st
    });
    let survivor = 2;
    // The revision of the member that took the writes: it answered each
    // one after applying it. The survivor's own status, taken at the
    // same time, may lag a few entries behind it (a follower that did
    // not take the write); `hashes_agree` waited for it to catch up.
    let (my_id, revision) = (before[survivor].0, before[0].2);
    let cluster_id = rt.block_on(async {
        let mut m = MaintenanceClient::new(common::connect(&eps[survivor]).await);
        m.status(StatusRequest {})
            .await
            .unwrap()
            .into_inner()
            .header
            .unwrap()
            .cluster_id
    });
    c.kill(0);
    c.kill(1);
    c.kill(survivor);
    c.members[survivor].own = vec!["--force-new-cluster".into()];
    c.spawn(survivor);
    c.wait_ready(survivor);
    let check = |c: &Cluster, extra_revisions: i64| {
        rt.block_on(async {
            let ep = &c.endpoints()[survivor];
            let mut kv = KvClient::new(common::connect(ep).await);
            let r = kv
                .range(RangeRequest {
                    key: b"force/".to_vec(),
                    range_end: b"force0".to_vec(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(r.kvs.len(), 50);
            assert_eq!(
                r.header.as_ref().unwrap().revision,
                revision + extra_revisions
            );
            assert_eq!(r.header.as_ref().unwrap().cluster_id, cluster_id);
            assert_eq!(r.header.as_ref().unwrap().member_id, my_id);
            let mut cl = ClusterClient::new(common::connect(ep).await);
            let l = cl
                .member_list(MemberListRequest { linearizable: true })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(l.members.len(), 1, "{:?}", l.members);
            assert_eq!(l.members[0].id, my_id);
        })
    };
    check(&c, 0);
    rt.block_on(async {
        let mut kv = KvClient::new(common::connect(&c.endpoints()[survivor]).await);
        let r = kv
            .put(PutRequest {
                key: b"force/after".to_vec(),
                value: b"x".to_vec(),
                ..Default::default()
            })
            .await
            .expect("the one-member cluster takes writes")
            .into_inner();
        assert_eq!(r.header.unwrap().revision, revision + 1);
    });
    // Without the flag it stays a one-member cluster.
    c.kill(survivor);
    c.members[survivor].own.clear();
    c.spawn(survivor);
    c.wait_ready(survivor);
    rt.block_on(async {
        let mut kv = KvClient::new(common::connect(&c.endpoints()[survivor]).await);
        let r = kv
            .range(RangeRequest {
                key: b"force/after".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.kvs.len(), 1);
    });
    // A former member comes back with its old data: it is told it was
    // removed, and stops.
    c.spawn(0);
    let t = Instant::now();
    let status = loop {
        if let Some(s) = c.members[0].child.as_mut().unwrap().try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "a former member kept running after --force-new-cluster"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
}

/// A member started with another `--initial-cluster-token` computes other
/// ids: the cluster refuses its peer connections and it never joins.
#[test]
fn member_of_another_cluster_is_refused() {
    let tmp = common::tempdir();
    let c = Cluster::start(tmp.path(), 3);
    // Probe the peer port as a member of another cluster would.
    let rt = rt();
    let r = rt.block_on(async {
        let client = ferrocd_net::peer::PeerClient::new(
            format!("127.0.0.1:{}", c.members[0].peer),
            ferrocd_net::peer::Hello {
                cluster_id: 0x1234,
                from: 0x99,
                to: 0,
            },
        );
        client.call(3, Vec::new(), Duration::from_secs(2)).await
    });
    match r {
        Err(ferrocd_net::peer::PeerError::Unreachable { why, .. }) => {
            assert!(why.contains("cluster ID mismatch"), "{why}")
        }
        r => panic!("a foreign member was answered: {r:?}"),
    }
}

/// A peer-port proxy that understands peer frames: while a member is
/// isolated, every frame from or to it is dropped (a network partition of
/// that member's peer traffic: connections stay up, nothing gets through).
struct Partition {
    isolated: Arc<std::sync::Mutex<Option<u64>>>,
}

impl Partition {
    fn new() -> Self {
        Partition {
            isolated: Arc::new(std::sync::Mutex::new(None)),
        }
    }

    fn isolate(&self, member: Option<u64>) {
        *self.isolated.lock().unwrap() = member;
    }

    /// Proxy `listen` → `target`, for the member with id `owner` (set later).
    fn spawn(
        &self,
        rt: &tokio::runtime::Runtime,
        listen: u16,
        target: u16,
        owner: Arc<AtomicU64Cell>,
    ) {
        let isolated = self.isolated.clone();
        rt.spawn(async move {
            use tokio::io::AsyncReadExt;
            let l = tokio::net::TcpListener::bind(("127.0.0.1", listen))
                .await
                .unwrap();
            loop {
                let Ok((mut inbound, _)) = l.accept().await else {
                    continue;
                };
                let (isolated, owner) = (isolated.clone(), owner.clone());
                tokio::spawn(async move {
                    let mut head = [0u8; 13];
                    if inbound.read_exact(&mut head).await.is_err() {
                        return;
                    }
                    let len = u32::from_le_bytes(head[..4].try_into().unwrap()) as usize;
                    let mut payload = vec![0u8; len.saturating_sub(9)];
                    if inbound.read_exact(&mut payload).await.is_err() {
                        return;
                    }
                    let from = if payload.len() == 24 {
                        u64::from_le_bytes(payload[8..16].try_into().unwrap())
                    } else {
                        0
                    };
                    let owner2 = owner.clone();
                    let cut =
                        move |iso: Option<u64>| iso.is_some_and(|m| m == from || m == owner.get());
                    let cut2 =
                        move |iso: Option<u64>| iso.is_some_and(|m| m == from || m == owner2.get());
                    let Ok(out) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    let (mut out_r, mut out_w) = out.into_split();
                    let (mut in_r, mut in_w) = inbound.into_split();
                    use tokio::io::AsyncWriteExt;
                    if out_w.write_all(&head).await.is_err()
                        || out_w.write_all(&payload).await.is_err()
                    {
                        return;
                    }
                    // Frame by frame, both ways; frames of an isolated
                    // member are black-holed (a partition drops packets, it
                    // does not close connections).
                    async fn pump(
                        r: &mut tokio::net::tcp::OwnedReadHalf,
                        w: &mut tokio::net::tcp::OwnedWriteHalf,
                        drop_now: impl Fn() -> bool,
                    ) {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        loop {
                            let mut h = [0u8; 13];
                            if r.read_exact(&mut h).await.is_err() {
                                return;
                            }
                            let n = u32::from_le_bytes(h[..4].try_into().unwrap()) as usize - 9;
                            let mut body = vec![0u8; n];
                            if r.read_exact(&mut body).await.is_err() {
                                return;
                            }
                            if drop_now() {
                                continue;
                            }
                            if w.write_all(&h).await.is_err() || w.write_all(&body).await.is_err() {
                                return;
                            }
                        }
                    }
                    let (i1, i2) = (isolated.clone(), isolated.clone());
                    let up = pump(&mut in_r, &mut out_w, move || cut(*i1.lock().unwrap()));
                    let down = pump(&mut out_r, &mut in_w, move || cut2(*i2.lock().unwrap()));
                    tokio::select! {
                        _ = up => {}
                        _ = down => {}
                    }
                });
            }
        });
    }
}

/// A member id the proxy learns after the cluster starts.
struct AtomicU64Cell(std::sync::atomic::AtomicU64);

impl AtomicU64Cell {
    fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A follower cut off from its peers cannot serve linearizable reads or
/// writes (they fail within the request timeout with etcd's errors); the
/// majority keeps serving; after healing the member converges.
#[test]
fn minority_partition_then_heal() {
    let tmp = common::tempdir();
    let rt = rt();
    let part = Partition::new();
    let ports: Vec<(u16, u16)> = (0..3)
        .map(|_| (common::free_port(), common::free_port()))
        .collect();
    let owners: Vec<Arc<AtomicU64Cell>> = (0..3)
        .map(|_| Arc::new(AtomicU64Cell(std::sync::atomic::AtomicU64::new(0))))
        .collect();
    for (i, (listen, advertised)) in ports.iter().enumerate() {
        part.spawn(&rt, *advertised, *listen, owners[i].clone());
    }
    let c = Cluster::start_proxied(tmp.path(), 3, &[], Some(&ports));
    let eps = c.endpoints();
    let st = rt.block_on(statuses(&eps));
    for (i, s) in st.iter().enumerate() {
        owners[i].0.store(s.0, Ordering::SeqCst);
    }
    let leader_id = st[0].1;
    let victim = st.iter().position(|s| s.0 != leader_id).unwrap();
    let healthy = (0..3).find(|i| *i != victim).unwrap();
    // A require-leader watch (Kubernetes' kind) on the member about to be
    // cut off.
    let watch_end = {
        let ep = eps[victim].clone();
        rt.spawn(async move {
            use ferrocd_net::pb::etcdserverpb::watch_client::WatchClient;
            use ferrocd_net::pb::etcdserverpb::{WatchCreateRequest, WatchRequest, watch_request};
            let mut w = WatchClient::new(common::connect(&ep).await);
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            tx.send(WatchRequest {
                request_union: Some(watch_request::RequestUnion::CreateRequest(
                    WatchCreateRequest {
                        key: b"p/".to_vec(),
                        range_end: b"p0".to_vec(),
                        ..Default::default()
                    },
                )),
            })
            .await
            .unwrap();
            let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
            req.metadata_mut()
                .insert("hasleader", "true".parse().unwrap());
            let mut stream = w.watch(req).await.expect("watch").into_inner();
            let started = Instant::now();
            loop {
                match tokio::time::timeout(Duration::from_secs(30), stream.message()).await {
                    Ok(Ok(Some(_))) => continue,
                    Ok(Err(e)) => return (e.message().to_string(), started.elapsed()),
                    other => return (format!("{other:?}"), started.elapsed()),
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    part.isolate(Some(st[victim].0));
    rt.block_on(async {
        let mut good = KvClient::new(common::connect(&eps[healthy]).await);
        for i in 0..20 {
            good.put(PutRequest {
                key: format!("p/{i}").into_bytes(),
                value: b"v".to_vec(),
                ..Default::default()
            })
            .await
            .expect("the majority keeps serving writes");
        }
        let mut cut = KvClient::new(common::connect(&eps[victim]).await);
        let t = Instant::now();
        let w = cut
            .put(PutRequest {
                key: b"p/minority".to_vec(),
                value: b"v".to_vec(),
                ..Default::default()
            })
            .await;
        assert!(
            w.is_err(),
            "a write through the isolated member succeeded: {w:?}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the write took {:?} to fail",
            t.elapsed()
        );
        let msg = w.unwrap_err().message().to_string();
        assert!(
            msg == "etcdserver: request timed out" || msg == "etcdserver: no leader",
            "{msg}"
        );
        let r = cut
            .range(RangeRequest {
                key: b"p/0".to_vec(),
                ..Default::default()
            })
            .await;
        assert!(
            r.is_err(),
            "a linearizable read on the isolated member succeeded"
        );
        // Serializable reads are local (and may be stale).
        cut.range(RangeRequest {
            key: b"p/0".to_vec(),
            serializable: true,
            ..Default::default()
        })
        .await
        .expect("serializable read on the isolated member");
    });
    let (why, after) = rt.block_on(watch_end).unwrap();
    assert_eq!(
        why, "etcdserver: no leader",
        "require-leader watch ended after {after:?}"
    );
    part.isolate(None);
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut kv = KvClient::new(common::connect(&eps[victim]).await);
            let r = kv
                .range(RangeRequest {
                    key: b"p/".to_vec(),
                    range_end: b"p0".to_vec(),
                    count_only: true,
                    ..Default::default()
                })
                .await;
            if let Ok(r) = r
                && r.into_inner().count == 20
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the healed member did not converge"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let st = statuses(&eps).await;
        assert!(st.iter().all(|s| s.1 == st[0].1 && s.1 != 0), "{st:?}");
    });
}

/// Linearizable reads that arrive together share read-index rounds (no
/// log entry, and far fewer leadership confirmations than reads), through
/// the leader and through a follower.
#[test]
fn concurrent_linearizable_reads_share_read_index_rounds() {
    let tmp = common::tempdir();
    let c = Cluster::start(tmp.path(), 3);
    let rt = rt();
    let eps = c.endpoints();
    let metric = |port: u16, name: &str| -> u64 {
        let (_, body) = common::http_get(port, "/metrics").expect("metrics");
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    for (i, ep) in eps.iter().enumerate() {
        let port = c.members[i].client;
        let (reads0, rounds0) = (
            metric(port, "ferrocd_server_linearizable_reads_total"),
            metric(port, "ferrocd_server_read_index_rounds_total"),
        );
        let raft0 = rt.block_on(statuses(std::slice::from_ref(ep)))[0].2;
        rt.block_on(async {
            let ch = common::connect(ep).await;
            let mut tasks = Vec::new();
            for _ in 0..200 {
                let mut kv = KvClient::new(ch.clone());
                tasks.push(tokio::spawn(async move {
                    kv.range(RangeRequest {
                        key: b"x".to_vec(),
                        ..Default::default()
                    })
                    .await
                    .map(|_| ())
                }));
            }
            for t in tasks {
                t.await.unwrap().expect("linearizable read");
            }
        });
        let reads = metric(port, "ferrocd_server_linearizable_reads_total") - reads0;
        let rounds = metric(port, "ferrocd_server_read_index_rounds_total") - rounds0;
        assert_eq!(reads, 200, "member {i}");
        assert!(
            rounds < reads / 2,
            "member {i}: {rounds} rounds for {reads} reads"
        );
        // Reads change nothing: the store revision did not move.
        assert_eq!(rt.block_on(statuses(std::slice::from_ref(ep)))[0].2, raft0);
    }
}

/// Five members: two of them (the leader among them) die and the other
/// three keep a quorum and serve; the two come back and catch up.
#[test]
fn five_members_survive_two_failures() {
    let tmp = common::tempdir();
    let mut c = Cluster::start(tmp.path(), 5);
    let rt = rt();
    let eps = c.endpoints();
    let st = rt.block_on(statuses(&eps));
    assert!(st.iter().all(|s| s.1 == st[0].1 && s.1 != 0), "{st:?}");
    let leader = st.iter().position(|s| s.0 == st[0].1).unwrap();
    let other = (leader + 1) % 5;
    c.kill(leader);
    c.kill(other);
    let alive: Vec<usize> = (0..5).filter(|i| *i != leader && *i != other).collect();
    rt.block_on(async {
        let mut kv = KvClient::new(common::connect(&eps[alive[0]]).await);
        let t = Instant::now();
        for i in 0..50 {
            loop {
                let put = kv.put(PutRequest {
                    key: format!("five/{i}").into_bytes(),
                    value: b"v".to_vec(),
                    ..Default::default()
                });
                if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(3), put).await {
                    break;
                }
                assert!(
                    t.elapsed() < Duration::from_secs(30),
                    "three of five did not serve"
                );
            }
        }
    });
    c.spawn(leader);
    c.spawn(other);
    c.wait_ready(leader);
    c.wait_ready(other);
    rt.block_on(hashes_agree(&eps, 51, Duration::from_secs(20)));
}

/// Auth is replicated state: users, roles and the enabled flag set through
/// one member hold on every member; a simple token handed out by one
/// member is good on the others (the Authenticate entry assigns it
/// everywhere); writes forwarded from a follower are checked as the user
/// who sent them; a restarted member still enforces auth.
#[test]
fn auth_is_enforced_by_every_member() {
    use ferrocd_net::pb::authpb;
    use ferrocd_net::pb::etcdserverpb::auth_client::AuthClient;
    use ferrocd_net::pb::etcdserverpb::{
        AuthEnableRequest, AuthRoleAddRequest, AuthRoleGrantPermissionRequest, AuthUserAddRequest,
        AuthUserGrantRoleRequest, AuthenticateRequest,
    };

    let tmp = common::tempdir();
    let mut c = Cluster::start(tmp.path(), 3);
    let eps = c.endpoints();
    let put = |ep: String, key: &'static str, token: Option<String>| async move {
        let mut r = tonic::Request::new(PutRequest {
            key: key.into(),
            value: b"v".to_vec(),
            ..Default::default()
        });
        if let Some(t) = token {
            r.metadata_mut().insert("token", t.parse().unwrap());
        }
        KvClient::new(common::connect(&ep).await)
            .put(r)
            .await
            .map(|_| ())
            .map_err(|s| s.message().to_string())
    };
    rt().block_on(async {
        let mut a = AuthClient::new(common::connect(&eps[0]).await);
        for name in ["root", "w"] {
            a.user_add(AuthUserAddRequest {
                name: name.into(),
                password: "pw".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        }
        for role in ["root", "rw"] {
            a.role_add(AuthRoleAddRequest { name: role.into() })
                .await
                .unwrap();
        }
        a.role_grant_permission(AuthRoleGrantPermissionRequest {
            name: "rw".into(),
            perm: Some(authpb::Permission {
                perm_type: authpb::permission::Type::Readwrite as i32,
                key: b"/k/".to_vec(),
                range_end: b"/k0".to_vec(),
            }),
        })
        .await
        .unwrap();
        for (user, role) in [("root", "root"), ("w", "rw")] {
            a.user_grant_role(AuthUserGrantRoleRequest {
                user: user.into(),
                role: role.into(),
            })
            .await
            .unwrap();
        }
        a.auth_enable(AuthEnableRequest {}).await.unwrap();
        let token = AuthClient::new(common::connect(&eps[1]).await)
            .authenticate(AuthenticateRequest {
                name: "w".into(),
                password: "pw".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .token;
        for ep in &eps {
            assert_eq!(
                put(ep.clone(), "/k/x", Some(token.clone())).await,
                Ok(()),
                "{ep}"
            );
            assert_eq!(
                put(ep.clone(), "/x", Some(token.clone())).await,
                Err("etcdserver: permission denied".into()),
                "{ep}"
            );
            assert_eq!(
                put(ep.clone(), "/k/x", None).await,
                Err("etcdserver: user name is empty".into()),
                "{ep}"
            );
        }
    });
    c.kill(2);
    c.spawn(2);
    c.wait_ready(2);
    rt().block_on(async {
        assert_eq!(
            put(eps[2].clone(), "/k/x", None).await,
            Err("etcdserver: user name is empty".into()),
            "a restarted member still enforces auth"
        );
    });
}

/// The web console's cluster view (`<mount>/api/cluster`) on one member
/// reports every member, asked over the peer port: one leader, the same
/// term everywhere, applied indexes that catch up; a killed member shows
/// as unreachable while the others stay healthy.
#[test]
fn console_cluster_view_asks_every_member() {
    let tmp = common::tempdir();
    let mut c = Cluster::start(tmp.path(), 3);
    let ui = common::free_port();
    // Member 1 serves the console (a follower or the leader: either way
    // it must reach the other two).
    c.kill(1);
    c.members[1].own = vec![
        "--listen-ui-urls".into(),
        format!("http://127.0.0.1:{ui}/ui"),
    ];
    c.spawn(1);
    c.wait_ready(1);
    let view = |within: Duration, ok: &dyn Fn(&serde_json::Value) -> bool| {
        let t = Instant::now();
        loop {
            let v = common::http_get(ui, "/ui/api/cluster")
                .filter(|(code, _)| *code == 200)
                .map(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).unwrap());
            if let Some(v) = v {
                if ok(&v) {
                    return v;
                }
                assert!(t.elapsed() < within, "cluster view never settled: {v}");
            } else {
                assert!(t.elapsed() < within, "no cluster view");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    // Healthy, and each has published its client URLs (a member does so
    // through the leader once it is up).
    let all_healthy = |v: &serde_json::Value| {
        v["members"].as_array().unwrap().iter().all(|m| {
            m["healthy"] == true && m["client_urls"].as_array().is_some_and(|u| !u.is_empty())
        })
    };
    let v = view(Duration::from_secs(20), &all_healthy);
    let members = v["members"].as_array().unwrap();
    assert_eq!(members.len(), 3, "{v}");
    let leaders: Vec<_> = members.iter().filter(|m| m["role"] == "leader").collect();
    assert_eq!(leaders.len(), 1, "one leader: {v}");
    let terms: Vec<_> = members.iter().map(|m| &m["status"]["raft_term"]).collect();
    assert!(terms.iter().all(|t| *t == terms[0]), "one term: {v}");
    for m in members {
        assert_eq!(m["status"]["leader"], leaders[0]["id"], "{v}");
        let name = m["name"].as_str().unwrap();
        let i: usize = name[1..].parse().unwrap();
        assert_eq!(
            m["client_urls"][0],
            format!("http://127.0.0.1:{}", c.members[i].client),
            "{v}"
        );
    }
    let console_member = v["member_id"].as_str().unwrap();
    assert!(
        members
            .iter()
            .any(|m| m["id"] == console_member && m["name"] == "m1")
    );

    // The same in the console's member table, in a browser.
    let rt = rt();
    let b = rt.block_on(browser::Browser::start());
    rt.block_on(async {
        let wait = Duration::from_secs(10);
        b.goto(&format!("http://127.0.0.1:{ui}/ui/#/cluster")).await;
        b.wait_text("#cluster-summary", "3 members, leader", wait)
            .await;
        let rows = b.find_all("#members tbody tr").await;
        assert_eq!(rows.len(), 3);
        let table = b.text("#members tbody").await;
        assert_eq!(table.matches("leader").count(), 1, "{table}");
        assert_eq!(table.matches("follower").count(), 2, "{table}");
        assert_eq!(table.matches("healthy").count(), 3, "{table}");
        assert!(table.contains("(this member)"), "{table}");
        b.screenshot("cluster-3").await;
    });

    // A learner joins: shown as one, asked like the others.
    let new = c.add_slot(tmp.path());
    let learner_peer = format!("http://127.0.0.1:{}", c.members[new].peer);
    let ep0 = c.endpoints()[0].clone();
    rt.block_on(async {
        use ferrocd_net::pb::etcdserverpb::MemberAddRequest;
        use ferrocd_net::pb::etcdserverpb::cluster_client::ClusterClient;
        ClusterClient::new(common::connect(&ep0).await)
            .member_add(MemberAddRequest {
                peer_ur_ls: vec![learner_peer],
                is_learner: true,
            })
            .await
            .expect("add a learner");
    });
    c.spawn(new);
    c.wait_ready(new);
    let v = view(Duration::from_secs(20), &|v| {
        v["members"].as_array().unwrap().len() == 4 && all_healthy(v)
    });
    let learner = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "m3")
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(learner["role"], "learner", "{v}");
    assert_eq!(learner["is_learner"], true, "{v}");
    rt.block_on(async {
        b.wait_text("#cluster-summary", "4 members", Duration::from_secs(10))
            .await;
        let row = format!(
            r#"#members tr[data-member="{}"]"#,
            learner["id"].as_str().unwrap()
        );
        let text = b.wait_text(&row, "learner", Duration::from_secs(10)).await;
        assert!(text.contains("m3") && text.contains("healthy"), "{text}");
    });

    // A member that is down: reported, not waited for.
    let down = if leaders[0]["name"] == "m0" { 2 } else { 0 };
    let down_id = members
        .iter()
        .find(|m| m["name"] == format!("m{down}").as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    c.kill(down);
    let v = view(Duration::from_secs(20), &|v| {
        v["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == format!("m{down}").as_str() && m["role"] == "unknown")
    });
    for m in v["members"].as_array().unwrap() {
        if m["name"] == format!("m{down}").as_str() {
            assert_eq!(m["healthy"], false, "{v}");
            assert!(m["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
            assert!(m["status"].is_null(), "{v}");
        } else {
            assert_eq!(m["healthy"], true, "the others stay healthy: {v}");
        }
    }
    rt.block_on(async {
        let row = format!(r#"#members tr[data-member="{down_id}"]"#);
        let text = b
            .wait_text(&row, "unhealthy", Duration::from_secs(15))
            .await;
        assert!(text.contains("unknown"), "{text}");
        b.close().await;
    });
}
