//! Replays the fuzz seed corpus (`fuzz/corpus/etcd_request/`) through the
//! translation of etcd's raft entry payloads that adopting an etcd data
//! dir runs (`ferrocd_core::adopt::check_entry`: an
//! `etcdserverpb.InternalRaftRequest`, or a bare v2 `Request`) as the fuzz
//! target does: no input may panic it; `valid-*` seeds translate (to a
//! command, member attributes, or a deliberate skip), `bad-*` seeds are
//! refused. Regenerate the seeds with `FERROCD_WRITE_CORPUS=1`.
//!
//! Seeds are built from `ferrocd_net`'s prost types for the requests
//! inside, and by hand for etcd's own envelopes (field numbers from
//! etcd's `raft_internal.proto` and `etcdserver.proto`, listed in
//! `core/src/adopt/requests.rs`).

use std::path::PathBuf;

use base64::Engine as _;
use ferrocd_core::adopt::check_entry;
use ferrocd_net::pb::{authpb, etcdserverpb as pb};
use prost::Message as _;

/// Where the seeds are translated, as the fuzz target does.
const INDEX: u64 = 7;
const TERM: u64 = 3;

#[path = "../../fuzz/corpus_replay.rs"]
mod corpus_replay;
use corpus_replay::{bytes, uint};

fn corpus_dir() -> PathBuf {
    corpus_replay::dir(env!("CARGO_MANIFEST_DIR"), "etcd_request")
}

// InternalRaftRequest field numbers.
const ID: u64 = 1;
const V2: u64 = 2;
const RANGE: u64 = 3;
const PUT: u64 = 4;
const DELETE_RANGE: u64 = 5;
const TXN: u64 = 6;
const COMPACTION: u64 = 7;
const LEASE_GRANT: u64 = 8;
const LEASE_REVOKE: u64 = 9;
const ALARM: u64 = 10;
const HEADER: u64 = 100;
const AUTH_ENABLE: u64 = 1000;
const AUTH_USER_ADD: u64 = 1100;
const AUTH_ROLE_GRANT_PERMISSION: u64 = 1203;
const CLUSTER_VERSION_SET: u64 = 1300;
const CLUSTER_MEMBER_ATTR_SET: u64 = 1301;

/// An InternalRaftRequest as etcd 3.5's proposer writes it: ID, the
/// header (RequestHeader {1 ID, 2 username, 3 auth_revision}), then the
/// one request set.
fn internal(user: &str, field: u64, request: &[u8]) -> Vec<u8> {
    let mut header = Vec::new();
    uint(&mut header, 1, 0x1234);
    if !user.is_empty() {
        bytes(&mut header, 2, user.as_bytes());
        uint(&mut header, 3, 4);
    }
    let mut out = Vec::new();
    uint(&mut out, ID, 0x1234);
    bytes(&mut out, HEADER, &header);
    bytes(&mut out, field, request);
    out
}

/// A v2 `etcdserverpb.Request` as gogoproto writes it (proto2): ID,
/// Method, Path, Val, then every other non-nullable field, zero or not;
/// the nullable PrevExist (8) and Refresh (17) left out.
fn v2(method: &str, path: &str, val: &str) -> Vec<u8> {
    let mut out = Vec::new();
    uint(&mut out, 1, 0x5678);
    bytes(&mut out, 2, method.as_bytes());
    bytes(&mut out, 3, path.as_bytes());
    bytes(&mut out, 4, val.as_bytes());
    uint(&mut out, 5, 0);
    bytes(&mut out, 6, b"");
    for field in [7, 9, 10, 11, 12, 13, 14, 15, 16] {
        uint(&mut out, field, 0);
    }
    out
}

fn put(key: &str, value: &str) -> pb::PutRequest {
    pb::PutRequest {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    // From core/src/adopt/requests.rs: ID 42, header {7, "alice", 5},
    // put {"k", "v"}.
    let hand_put = vec![
        0x08, 0x2a, 0xa2, 0x06, 11, 0x08, 0x07, 0x12, 5, b'a', b'l', b'i', b'c', b'e', 0x18, 0x05,
        0x22, 6, 0x0a, 1, b'k', 0x12, 1, b'v',
    ];
    let txn = pb::TxnRequest {
        compare: vec![pb::Compare {
            key: b"/registry/leases/a".to_vec(),
            target: pb::compare::CompareTarget::Mod as i32,
            target_union: Some(pb::compare::TargetUnion::ModRevision(9)),
            ..Default::default()
        }],
        success: vec![pb::RequestOp {
            request: Some(pb::request_op::Request::RequestPut(put(
                "/registry/leases/a",
                "holder",
            ))),
        }],
        failure: vec![pb::RequestOp {
            request: Some(pb::request_op::Request::RequestRange(pb::RangeRequest {
                key: b"/registry/leases/a".to_vec(),
                ..Default::default()
            })),
        }],
    };
    let delete = pb::DeleteRangeRequest {
        key: b"a".to_vec(),
        range_end: b"b".to_vec(),
        prev_kv: true,
    };
    // etcd 3.5's UserAdd: the proposer's bcrypt hash, in base64.
    let hash = bcrypt::hash_with_salt("pw", 4, [7; 16])
        .unwrap()
        .format_for_version(bcrypt::Version::TwoA);
    let hashed_user = pb::AuthUserAddRequest {
        name: "bob".into(),
        hashed_password: base64::engine::general_purpose::STANDARD.encode(hash),
        ..Default::default()
    };
    let cert_user = pb::AuthUserAddRequest {
        name: "cn-user".into(),
        options: Some(authpb::UserAddOptions { no_password: true }),
        ..Default::default()
    };
    let grant = pb::AuthRoleGrantPermissionRequest {
        name: "reader".into(),
        perm: Some(authpb::Permission {
            perm_type: authpb::permission::Type::Read as i32,
            key: b"/app/".to_vec(),
            range_end: b"/app0".to_vec(),
        }),
    };
    let mut bad_grant = grant.clone();
    bad_grant.perm.as_mut().unwrap().perm_type = 7;
    let alarm = pb::AlarmRequest {
        action: pb::alarm_request::AlarmAction::Activate as i32,
        member_id: 0xbdae_9bbc_11dd_390d,
        alarm: pb::AlarmType::Nospace as i32,
    };
    // membershippb.ClusterMemberAttrSetRequest {1 member_ID, 2 attributes
    // {1 name, 2 client_urls}}.
    let mut attrs = Vec::new();
    bytes(&mut attrs, 1, b"n1");
    bytes(&mut attrs, 2, b"http://127.0.0.1:2379");
    let mut attr_set = Vec::new();
    uint(&mut attr_set, 1, 0xbdae_9bbc_11dd_390d);
    bytes(&mut attr_set, 2, &attrs);
    let member_attributes = v2(
        "PUT",
        "/0/members/bdae9bbc11dd390d/attributes",
        r#"{"name":"n1","clientURLs":["http://127.0.0.1:2379"]}"#,
    );
    let mut in_v2_field = Vec::new();
    uint(&mut in_v2_field, ID, 0x1234);
    bytes(&mut in_v2_field, V2, &member_attributes);

    // ID and header, no request: etcd's apply panics on it.
    let mut header_only = internal("", PUT, &[]);
    header_only.truncate(header_only.len() - 2);
    // etcd 3.4's UserAdd: the plain password, hashed at apply (bcrypt,
    // cost 10: the slowest seed).
    let plain_user = pb::AuthUserAddRequest {
        name: "carol".into(),
        password: "pw".into(),
        ..Default::default()
    };

    vec![
        ("valid-empty", Vec::new()),
        ("valid-put-hand-written", hand_put.clone()),
        (
            "valid-put",
            internal("", PUT, &put("/registry/pods/a", "pod").encode_to_vec()),
        ),
        (
            "valid-delete-range",
            internal("", DELETE_RANGE, &delete.encode_to_vec()),
        ),
        ("valid-txn", internal("alice", TXN, &txn.encode_to_vec())),
        (
            "valid-range",
            internal(
                "",
                RANGE,
                &pb::RangeRequest {
                    key: b"a".to_vec(),
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
        ),
        (
            "valid-compaction",
            internal(
                "",
                COMPACTION,
                &pb::CompactionRequest {
                    revision: 40,
                    physical: true,
                }
                .encode_to_vec(),
            ),
        ),
        (
            "valid-lease-grant",
            internal(
                "",
                LEASE_GRANT,
                &pb::LeaseGrantRequest { ttl: 1, id: 0x77 }.encode_to_vec(),
            ),
        ),
        (
            "valid-lease-revoke",
            internal(
                "",
                LEASE_REVOKE,
                &pb::LeaseRevokeRequest { id: 0x77 }.encode_to_vec(),
            ),
        ),
        (
            "valid-alarm-nospace",
            internal("", ALARM, &alarm.encode_to_vec()),
        ),
        ("valid-auth-enable", internal("root", AUTH_ENABLE, &[])),
        (
            "valid-auth-user-add-hashed",
            internal("root", AUTH_USER_ADD, &hashed_user.encode_to_vec()),
        ),
        (
            "valid-auth-user-add-plain",
            internal("root", AUTH_USER_ADD, &plain_user.encode_to_vec()),
        ),
        (
            "valid-auth-user-add-no-password",
            internal("root", AUTH_USER_ADD, &cert_user.encode_to_vec()),
        ),
        (
            "valid-auth-role-grant-permission",
            internal("root", AUTH_ROLE_GRANT_PERMISSION, &grant.encode_to_vec()),
        ),
        (
            "valid-member-attr-set",
            internal("", CLUSTER_MEMBER_ATTR_SET, &attr_set),
        ),
        (
            "valid-cluster-version-set",
            internal(
                "",
                CLUSTER_VERSION_SET,
                &[0x0a, 5, b'3', b'.', b'5', b'.', b'0'],
            ),
        ),
        ("valid-v2-member-attributes", member_attributes),
        ("valid-v2-member-attributes-in-v2-field", in_v2_field),
        ("valid-v2-cluster-version", v2("PUT", "/0/version", "3.4.0")),
        ("valid-v2-sync", v2("SYNC", "", "")),
        (
            "valid-v2-remove-member",
            v2("DELETE", "/0/members/bdae9bbc11dd390d", ""),
        ),
        ("bad-garbage", vec![0xff; 12]),
        ("bad-truncated-varint", vec![0x08, 0x80]),
        ("bad-truncated-put", hand_put[..hand_put.len() - 3].to_vec()),
        ("bad-v2-user-key", v2("PUT", "/1/foo", "bar")),
        ("bad-v2-user-dir-delete", v2("DELETE", "/1/dir", "")),
        ("bad-v2-auth", v2("PUT", "/2/users/root", "{}")),
        ("bad-v2-method", v2("GET", "/0/members", "")),
        (
            "bad-v2-attributes-json",
            v2("PUT", "/0/members/ab/attributes", r#"{"name":5}"#),
        ),
        ("bad-header-only", header_only),
        (
            "bad-put-empty-key",
            internal("", PUT, &put("", "v").encode_to_vec()),
        ),
        (
            "bad-member-attr-set-no-attributes",
            internal("", CLUSTER_MEMBER_ATTR_SET, &[0x08, 1]),
        ),
        (
            "bad-grant-permission-type",
            internal(
                "root",
                AUTH_ROLE_GRANT_PERMISSION,
                &bad_grant.encode_to_vec(),
            ),
        ),
    ]
}

#[test]
fn corpus_replays_without_panics() {
    corpus_replay::replay(&corpus_dir(), &seeds(), |name, data| {
        let r = check_entry(data, INDEX, TERM);
        if name.starts_with("valid-") {
            assert!(r.is_ok(), "{name}: {r:?}");
        } else if name.starts_with("bad-") {
            assert!(r.is_err(), "{name} translated");
        }
    });
}

#[test]
fn seeds_match_the_corpus() {
    corpus_replay::seeds_match(&corpus_dir(), &seeds());
}

#[test]
fn v2_user_data_is_refused_as_such() {
    // The one refusal adoption explains to the operator: no v2 store.
    let e = check_entry(&v2("PUT", "/1/foo", "bar"), INDEX, TERM).unwrap_err();
    assert!(e.contains("v2 store"), "{e}");
}
