//! Issue 23: wire details of the Maintenance and Cluster services, side by
//! side with etcd 3.5.1 (`$ETCD_BIN`, required).
//!
//! - Defragment's response carried a header on ferrocd; etcd's has none
//!   (the Rust `etcd-client` crate's `test_defragment` failed on it).
//!   MoveLeader's answer too (`test_move_leader`). The table test calls
//!   every Maintenance and Cluster RPC on both servers and requires the
//!   same header shape: present or not, and which of cluster id, member
//!   id, revision and raft term are set.
//! - Downgrade answered `Unimplemented`. ferrocd has no older version to go
//!   back to, so every target is one it cannot go to: validate and enable
//!   answer etcd's errors for such a target, cancel answers etcd's "no
//!   inflight downgrade job". The downgrade test requires etcd's code and
//!   message wherever etcd 3.5.1 refuses too, and records the one case
//!   where etcd accepts (its own next-lower minor, "3.4").

#[path = "../common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, etcd_35, server_bin, tempdir};
use ferrocd_net::pb::etcdserverpb::cluster_client::ClusterClient;
use ferrocd_net::pb::etcdserverpb::maintenance_client::MaintenanceClient;
use ferrocd_net::pb::etcdserverpb::{
    AlarmRequest, DefragmentRequest, DowngradeRequest, HashKvRequest, HashRequest,
    MemberAddRequest, MemberListRequest, MemberPromoteRequest, MemberRemoveRequest,
    MemberUpdateRequest, MoveLeaderRequest, ResponseHeader, SnapshotRequest, StatusRequest,
};
use tonic::transport::Channel;

/// The bound on one call.
const CALL: Duration = Duration::from_secs(10);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A header's shape: present, and which fields are non-zero
/// (cluster id, member id, revision, raft term).
fn shape(h: &Option<ResponseHeader>) -> String {
    match h {
        None => "none".into(),
        Some(h) => {
            let mut set = Vec::new();
            for (name, on) in [
                ("cluster_id", h.cluster_id != 0),
                ("member_id", h.member_id != 0),
                ("revision", h.revision != 0),
                ("raft_term", h.raft_term != 0),
            ] {
                if on {
                    set.push(name);
                }
            }
            format!("{{{}}}", set.join(","))
        }
    }
}

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(CALL, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {CALL:?}"))
}

/// Wait until `m`'s member has applied its whole log, and a moment more:
/// etcd's raft ignores a membership change proposed while the one before
/// is not yet applied inside raft (the request then waits out its
/// timeout), so each change waits for the one before.
async fn settle(m: &mut MaintenanceClient<Channel>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = bounded("status", m.status(StatusRequest {}))
            .await
            .expect("status")
            .into_inner();
        if s.raft_applied_index >= s.raft_index {
            break;
        }
        assert!(Instant::now() < deadline, "the log was never applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// A second member for `s`'s cluster (a learner once added), started with
/// `--initial-cluster-state existing`; killed on drop.
struct Joiner {
    child: Child,
}

impl Joiner {
    fn start(bin: &Path, dir: &Path, first: &Server, peer: u16, client: u16) -> Joiner {
        let curl = format!("http://127.0.0.1:{client}");
        let purl = format!("http://127.0.0.1:{peer}");
        let initial = format!("{}={},m2={purl}", common::NAME, first.peer_url());
        let log = std::fs::File::create(dir.with_extension("log")).expect("joiner log");
        let child = Command::new(bin)
            .args(["--name", "m2", "--data-dir"])
            .arg(dir)
            .args([
                "--listen-client-urls",
                &curl,
                "--advertise-client-urls",
                &curl,
            ])
            .args(["--listen-peer-urls", &purl])
            .args(["--initial-advertise-peer-urls", &purl])
            .args(["--initial-cluster", &initial])
            .args([
                "--initial-cluster-state",
                "existing",
                "--log-level",
                "error",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("spawn the joiner");
        Joiner { child }
    }
}

impl Drop for Joiner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every Maintenance and Cluster RPC once on a fresh one-member server
/// run by `bin`; the header shape of each answer, as `(rpc, shape)` rows.
fn header_table(bin: &Path) -> Vec<(&'static str, String)> {
    let tmp = tempdir();
    let s = Server::start_bin(bin, &tmp.path().join("d"), &[]);
    let rt = rt();
    let mut rows = Vec::new();
    let (peer, client) = (common::free_port(), common::free_port());
    let joiner_dir = tmp.path().join("m2");
    let mut joiner = None;
    rt.block_on(async {
        let ch: Channel = s.channel().await;
        let mut m = MaintenanceClient::new(ch.clone());
        let mut c = ClusterClient::new(ch);
        let st = bounded("status", m.status(StatusRequest {}))
            .await
            .expect("status")
            .into_inner();
        rows.push(("Status", shape(&st.header)));
        let me = st.header.as_ref().expect("status header").member_id;
        let r = bounded("alarm", m.alarm(AlarmRequest::default()))
            .await
            .expect("alarm")
            .into_inner();
        rows.push(("Alarm", shape(&r.header)));
        let r = bounded("defragment", m.defragment(DefragmentRequest {}))
            .await
            .expect("defragment")
            .into_inner();
        rows.push(("Defragment", shape(&r.header)));
        let r = bounded("hash", m.hash(HashRequest {}))
            .await
            .expect("hash")
            .into_inner();
        rows.push(("Hash", shape(&r.header)));
        let r = bounded("hashkv", m.hash_kv(HashKvRequest { revision: 0 }))
            .await
            .expect("hashkv")
            .into_inner();
        rows.push(("HashKV", shape(&r.header)));
        let mut snap = bounded("snapshot", m.snapshot(SnapshotRequest {}))
            .await
            .expect("snapshot")
            .into_inner();
        let first = bounded("snapshot message", snap.message())
            .await
            .expect("snapshot message")
            .expect("a first message");
        rows.push(("Snapshot (first message)", shape(&first.header)));
        // Read to the end: etcd 3.5.1 holds its backend's read transaction
        // until the stream is drained, and a later write that must grow
        // the file then waits for it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while bounded("snapshot message", snap.message())
            .await
            .expect("snapshot message")
            .is_some()
        {
            assert!(Instant::now() < deadline, "the snapshot never ended");
        }
        let r = bounded(
            "move leader",
            m.move_leader(MoveLeaderRequest { target_id: me }),
        )
        .await
        .expect("move leader to the leader")
        .into_inner();
        rows.push(("MoveLeader (to the leader)", shape(&r.header)));
        let r = bounded("member list", c.member_list(MemberListRequest::default()))
            .await
            .expect("member list")
            .into_inner();
        rows.push(("MemberList", shape(&r.header)));
        let r = bounded(
            "member update",
            c.member_update(MemberUpdateRequest {
                id: me,
                peer_ur_ls: vec![s.peer_url()],
            }),
        )
        .await
        .expect("member update (same URLs)")
        .into_inner();
        rows.push(("MemberUpdate", shape(&r.header)));
        settle(&mut m).await;
        // A learner that never starts: added, then removed (etcd refuses
        // to remove a voter that joined less than 5 s ago).
        let r = bounded(
            "member add",
            c.member_add(MemberAddRequest {
                // Port 1: nothing listens there, and it is not `peer`.
                peer_ur_ls: vec!["http://127.0.0.1:1".into()],
                is_learner: true,
            }),
        )
        .await
        .expect("member add (learner)")
        .into_inner();
        rows.push(("MemberAdd (learner)", shape(&r.header)));
        let id = r.member.expect("the added member").id;
        settle(&mut m).await;
        let r = bounded("member remove", c.member_remove(MemberRemoveRequest { id }))
            .await
            .expect("member remove (learner)")
            .into_inner();
        rows.push(("MemberRemove (learner)", shape(&r.header)));
        settle(&mut m).await;
        // A learner that starts, catches up and is promoted.
        let r = bounded(
            "member add",
            c.member_add(MemberAddRequest {
                peer_ur_ls: vec![format!("http://127.0.0.1:{peer}")],
                is_learner: true,
            }),
        )
        .await
        .expect("member add (learner)")
        .into_inner();
        let id = r.member.expect("the added member").id;
        settle(&mut m).await;
        joiner = Some(Joiner::start(bin, &joiner_dir, &s, peer, client));
        let deadline = Instant::now() + Duration::from_secs(20);
        let r = loop {
            match bounded(
                "member promote",
                c.member_promote(MemberPromoteRequest { id }),
            )
            .await
            {
                Ok(r) => break r.into_inner(),
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "the learner was never promoted: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        rows.push(("MemberPromote", shape(&r.header)));
    });
    drop(joiner);
    rows
}

/// Issue 23: every Maintenance and Cluster answer carries a header exactly
/// when etcd 3.5.1's does, with the same fields set. (Downgrade has no
/// answer to compare: see the downgrade test.)
#[test]
fn issue_23_headers_as_etcd_3_5_1() {
    let etcd = header_table(&etcd_35());
    let ours = header_table(&server_bin());
    let table = |rows: &[(&str, String)]| {
        rows.iter()
            .map(|(rpc, h)| format!("{rpc:28} {h}\n"))
            .collect::<String>()
    };
    eprintln!("etcd 3.5.1:\n{}", table(&etcd));
    assert_eq!(
        table(&ours),
        table(&etcd),
        "ferrocd's headers (left) vs etcd 3.5.1's (right)"
    );
}

/// One Downgrade call: `Ok(version)` or `Err((code, message))`.
async fn downgrade(
    m: &mut MaintenanceClient<Channel>,
    action: i32,
    version: &str,
) -> Result<String, (tonic::Code, String)> {
    bounded(
        "downgrade",
        m.downgrade(DowngradeRequest {
            action,
            version: version.into(),
        }),
    )
    .await
    .map(|r| r.into_inner().version)
    .map_err(|e| (e.code(), e.message().to_string()))
}

const VALIDATE: i32 = 0;
const ENABLE: i32 = 1;
const CANCEL: i32 = 2;

/// Issue 23: Downgrade answers etcd 3.5.1's errors for a target it cannot
/// go to. etcd 3.5.1 accepts only "3.4" (its cluster version's minor
/// less one); ferrocd, with nothing older to go to, refuses that too, with
/// the same error as any other target it cannot go to.
#[test]
fn issue_23_downgrade_as_etcd_3_5_1() {
    let tmp = tempdir();
    let etcd = Server::start_bin(&etcd_35(), &tmp.path().join("etcd"), &[]);
    let ours = Server::start_bin(&server_bin(), &tmp.path().join("ours"), &[]);
    let rt = rt();
    rt.block_on(async {
        let mut e = MaintenanceClient::new(etcd.channel().await);
        let mut o = MaintenanceClient::new(ours.channel().await);
        let invalid = Err((
            tonic::Code::InvalidArgument,
            "etcdserver: invalid downgrade target version".to_string(),
        ));
        let format = Err((
            tonic::Code::InvalidArgument,
            "etcdserver: wrong downgrade target version format".to_string(),
        ));
        let none = Err((
            tonic::Code::FailedPrecondition,
            "etcdserver: no inflight downgrade job".to_string(),
        ));
        let unknown = Err((
            tonic::Code::Unknown,
            "etcdserver: unknown method".to_string(),
        ));
        // Cancel first: neither has a downgrade in progress.
        for (action, version, want) in [
            (CANCEL, "", &none),
            (VALIDATE, "3.3", &invalid),
            (VALIDATE, "3.5", &invalid),
            (VALIDATE, "3.6", &invalid),
            (VALIDATE, "3.5.0", &invalid),
            (VALIDATE, "4.0", &invalid),
            (VALIDATE, "abc", &format),
            (VALIDATE, "", &format),
            (ENABLE, "3.3", &invalid),
            (ENABLE, "3.6", &invalid),
            (ENABLE, "x.y", &format),
            (3, "3.4", &unknown),
        ] {
            let got_e = downgrade(&mut e, action, version).await;
            let got_o = downgrade(&mut o, action, version).await;
            assert_eq!(&got_e, want, "etcd 3.5.1: action {action} {version:?}");
            assert_eq!(&got_o, want, "ferrocd: action {action} {version:?}");
        }
        // "3.4": etcd 3.5.1 validates it (and would start a downgrade);
        // ferrocd has no 3.4 to become and refuses.
        assert_eq!(
            downgrade(&mut e, VALIDATE, "3.4").await,
            Ok("3.5.0".to_string())
        );
        assert_eq!(downgrade(&mut o, VALIDATE, "3.4").await, invalid);
        assert_eq!(downgrade(&mut o, ENABLE, "3.4").await, invalid);
        assert_eq!(downgrade(&mut o, ENABLE, "3.4.0").await, invalid);
        // Nothing started: cancel still has nothing to cancel.
        assert_eq!(downgrade(&mut o, CANCEL, "").await, none);
    });
}
