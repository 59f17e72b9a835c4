//! Replays the fuzz seed corpus (`fuzz/corpus/etcd_snap_parts/`) through
//! the decoders of an etcd `.snap` file's parts and of conf change
//! entries, as the fuzz target does: every input goes through
//! `V2Store::parse`, `ConfChange::decode` (and `.member()`) and
//! `ConfChangeV2::decode`, and none may panic. A seed's name is
//! `<valid|bad>-<decoder>-<what>`: `v2store`, `confchange` (decode and
//! member), `confchangev2`, or `snapfile` (a whole `.snap` file, loaded
//! here through a temp file with `load_snapshot`, which the fuzz target
//! does not run); `bad-garbage-*` fails all three decoders. Regenerate
//! the seeds with `FERROCD_WRITE_CORPUS=1`.

use std::path::PathBuf;

use ferrocd_wal::etcd::{ConfChange, ConfChangeV2, V2Store, crc32c_update, load_snapshot};

#[path = "../../fuzz/corpus_replay.rs"]
mod corpus_replay;
use corpus_replay::{bytes, hex, uint};

fn corpus_dir() -> PathBuf {
    corpus_replay::dir(env!("CARGO_MANIFEST_DIR"), "etcd_snap_parts")
}

/// One v2 store node as etcd's JSON has it, keyed by its last path
/// element (from `wal/src/etcd/tests.rs`).
fn node(path: &str, value: &str, children: Option<&str>) -> String {
    let ch = children.map_or("null".to_string(), |c| format!("{{{c}}}"));
    format!(
        r#""{}":{{"Path":"{path}","CreatedIndex":1,"ModifiedIndex":1,"ExpireTime":"0001-01-01T00:00:00Z","Value":{},"Children":{ch}}}"#,
        path.rsplit('/').next().unwrap(),
        serde_json::to_string(value).unwrap()
    )
}

fn doc(children: &str) -> String {
    format!(
        r#"{{"Root":{{"Path":"/","Value":"","Children":{{{children}}}}},"WatcherHub":{{"EventHistory":null}}}}"#
    )
}

/// A v2 store like etcd 3.4's: one started member, one unstarted learner,
/// one removed member, the cluster version, and v2 user keys under /1.
fn store_json() -> String {
    let m1 = node(
        "/0/members/bdae9bbc11dd390d",
        "",
        Some(&format!(
            "{},{}",
            node(
                "/0/members/bdae9bbc11dd390d/attributes",
                r#"{"name":"n1","clientURLs":["http://127.0.0.1:2379"]}"#,
                None
            ),
            node(
                "/0/members/bdae9bbc11dd390d/raftAttributes",
                r#"{"peerURLs":["http://127.0.0.1:2380"]}"#,
                None
            )
        )),
    );
    let m2 = node(
        "/0/members/856172158b65d17",
        "",
        Some(&node(
            "/0/members/856172158b65d17/raftAttributes",
            r#"{"peerURLs":["http://127.0.0.1:23999"],"isLearner":true}"#,
            None,
        )),
    );
    let members = node("/0/members", "", Some(&format!("{m1},{m2}")));
    let removed = node(
        "/0/removed_members",
        "",
        Some(&node("/0/removed_members/5e3fca24330ecd85", "", None)),
    );
    let version = node("/0/version", "3.4.0", None);
    let internal = node("/0", "", Some(&format!("{members},{removed},{version}")));
    let user = node(
        "/1",
        "",
        Some(&node(
            "/1/v2dir",
            "",
            Some(&node("/1/v2dir/v2key", "v2value", None)),
        )),
    );
    doc(&format!("{internal},{user}"))
}

/// A `.snap` file: snappb.Snapshot {1 crc, 2 data: raftpb.Snapshot {1 data:
/// the v2 store JSON, 2 metadata {1 conf_state {1 voters}, 2 index,
/// 3 term}}}.
fn snap_file(index: u64, term: u64, voters: &[u64], json: &[u8]) -> Vec<u8> {
    let mut conf = Vec::new();
    for &v in voters {
        uint(&mut conf, 1, v);
    }
    let mut meta = Vec::new();
    bytes(&mut meta, 1, &conf);
    uint(&mut meta, 2, index);
    uint(&mut meta, 3, term);
    let mut raft = Vec::new();
    bytes(&mut raft, 1, json);
    bytes(&mut raft, 2, &meta);
    let mut file = Vec::new();
    uint(&mut file, 1, u64::from(crc32c_update(0, &raft)));
    bytes(&mut file, 2, &raft);
    file
}

/// raftpb.ConfChange {1 id, 2 type, 3 node_id, 4 context}.
fn conf_change(id: u64, kind: u64, node_id: u64, context: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    uint(&mut out, 1, id);
    uint(&mut out, 2, kind);
    uint(&mut out, 3, node_id);
    if !context.is_empty() {
        bytes(&mut out, 4, context);
    }
    out
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let store = store_json();
    let empty_root = br#"{"Root":{"Path":"/","CreatedIndex":0,"ModifiedIndex":0,"ExpireTime":"0001-01-01T00:00:00Z","Value":"","Children":null},"WatcherHub":{"EventHistory":null}}"#;
    let auth_root = doc(&format!(
        "{},{}",
        node("/1", "", Some("")),
        node("/2", "", Some(&node("/2/users", "", Some(""))))
    ));
    // `{"Children":{"a":` nests two objects: 1000 of them are 2000 levels,
    // far past serde_json's 128.
    let deep_tree = format!(
        r#"{{"Root":{{"Children":{{"1":{}"#,
        r#"{"Children":{"a":"#.repeat(1000)
    );
    // serde_json skips an ignored value without recursing: this depth in
    // an ignored field parses.
    let deep_ignored = format!(
        r#"{{"WatcherHub":{}{},"Root":{{"Value":"","Children":null}}}}"#,
        "[".repeat(20_000),
        "]".repeat(20_000)
    );
    // 50 levels of dirs under /1 (101 nested objects, under the limit).
    let deep_ok = format!(
        r#"{{"Root":{{"Children":{{"1":{}{{"Value":"v"}}{}}}}}}}"#,
        r#"{"Children":{"a":"#.repeat(50),
        "}}".repeat(50)
    );
    let unexpected = store.replace("attributes\":{", "attrs\":{");
    let no_raft = store.replace("raftAttributes\":{", "raftAttrs\":{");
    let not_id = store.replace("\"5e3fca24330ecd85\"", "\"zz\"");
    assert!(unexpected != store && no_raft != store && not_id != store);

    // `member add x --learner` and `member remove` from etcd 3.5.1's WAL.
    let add_learner = hex(concat!(
        "08a2fce1ad89cae8863910031897bad9c595e485ab0822507b226964223a36303036393330333232393032",
        "34353931312c227065657255524c73223a5b22687474703a2f2f3132372e302e302e313a3233393939225d",
        "2c2269734c6561726e6572223a747275657d"
    ));
    let remove = hex("08a5fce1ad89cae8863910011897bad9c595e485ab08");
    // The bootstrap conf change of a real etcd 3.5.1 segment (the data of
    // its first entry).
    let bootstrap = hex(concat!(
        "08001000188df2f48ec1f7a6d7bd01224d",
        "7b226964223a31333636383033333135313137313930313730392c227065657255524c73223a5b22687474",
        "703a2f2f3132372e302e302e313a3233383031225d2c226e616d65223a226e31227d",
    ));
    let update = conf_change(
        9,
        2,
        0x0856_1721_58b6_5d17,
        br#"{"id":600693032290245911,"peerURLs":["http://127.0.0.1:24000"],"name":"x","clientURLs":["http://127.0.0.1:2379"]}"#,
    );
    // raftpb.ConfChangeV2 {1 transition: joint explicit, 2 changes:
    // [{1 type: AddLearnerNode, 2 node 7}, {RemoveNode, 8}], 3 context}.
    let mut v2 = Vec::new();
    uint(&mut v2, 1, 2);
    bytes(&mut v2, 2, &[0x08, 3, 0x10, 7]);
    bytes(&mut v2, 2, &[0x08, 1, 0x10, 8]);
    bytes(&mut v2, 3, b"x");

    let snap = snap_file(22, 2, &[0xbdae_9bbc_11dd_390d], store.as_bytes());
    let mut snap_crc = snap.clone();
    let n = snap_crc.len();
    snap_crc[n - 20] ^= 1;

    vec![
        ("valid-v2store-members", store.clone().into_bytes()),
        ("valid-v2store-empty-root", empty_root.to_vec()),
        ("valid-v2store-auth-root", auth_root.into_bytes()),
        ("bad-v2store-deep-tree", deep_tree.into_bytes()),
        ("valid-v2store-deep-ignored", deep_ignored.into_bytes()),
        ("valid-v2store-deep-user-keys", deep_ok.into_bytes()),
        ("bad-v2store-unexpected-key", unexpected.into_bytes()),
        ("bad-v2store-no-raft-attributes", no_raft.into_bytes()),
        ("bad-v2store-not-member-id", not_id.into_bytes()),
        (
            "bad-v2store-truncated",
            store.as_bytes()[..store.len() / 2].to_vec(),
        ),
        ("bad-v2store-array", b"[]".to_vec()),
        ("valid-confchange-add-learner", add_learner.clone()),
        ("valid-confchange-remove", remove.clone()),
        ("valid-confchange-bootstrap", bootstrap),
        ("valid-confchange-update", update),
        ("bad-confchange-type", vec![0x10, 9]),
        (
            "bad-confchange-member-json",
            conf_change(1, 0, 7, br#"{"id":"seven"}"#),
        ),
        (
            "bad-confchange-truncated",
            add_learner[..add_learner.len() - 10].to_vec(),
        ),
        ("bad-confchange-truncated-varint", remove[..4].to_vec()),
        ("valid-confchangev2-joint", v2),
        ("bad-confchangev2-transition", vec![0x08, 5]),
        ("bad-confchangev2-change-type", vec![0x12, 2, 0x08, 9]),
        ("bad-garbage-ff", vec![0xff; 16]),
        ("bad-garbage-bytes", vec![0x0a, 0x05, 1]),
        ("valid-snapfile-etcd-3.4", snap),
        ("bad-snapfile-crc", snap_crc),
        (
            "bad-snapfile-v2store",
            snap_file(55, 2, &[0xbdae_9bbc_11dd_390d], b"[]"),
        ),
    ]
}

#[test]
fn corpus_replays_without_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let snap_path = tmp.path().join("0000000000000002-0000000000000016.snap");
    corpus_replay::replay(&corpus_dir(), &seeds(), |name, data| {
        // What the fuzz target runs, with its checks.
        let store = V2Store::parse(data);
        if let Ok(s) = &store {
            assert!(s.members.is_sorted_by_key(|m| m.id), "{name}: {s:?}");
            assert!(s.removed.is_sorted(), "{name}: {s:?}");
        }
        let cc = ConfChange::decode(data);
        let member = cc.as_ref().ok().map(ConfChange::member);
        let cc2 = ConfChangeV2::decode(data);
        // Not in the fuzz target: the whole-file loader, through a file.
        std::fs::write(&snap_path, data).unwrap();
        let snap = load_snapshot(&snap_path);

        let mut parts = name.splitn(3, '-');
        let (verdict, decoder) = (parts.next().unwrap(), parts.next().unwrap_or(""));
        let ok = match decoder {
            "v2store" => store.is_ok(),
            "confchange" => cc.is_ok() && member.as_ref().is_some_and(Result::is_ok),
            "confchangev2" => cc2.is_ok(),
            "snapfile" => snap.is_ok(),
            "garbage" => store.is_ok() || cc.is_ok() || cc2.is_ok(),
            _ => return,
        };
        let detail = format!("{store:?} / {cc:?} {member:?} / {cc2:?} / {snap:?}");
        match verdict {
            "valid" => assert!(ok, "{name}: {detail}"),
            "bad" => assert!(!ok, "{name}: {detail}"),
            _ => {}
        }
    });
}

#[test]
fn seeds_match_the_corpus() {
    corpus_replay::seeds_match(&corpus_dir(), &seeds());
}

#[test]
fn valid_seeds_decode_to_what_etcd_wrote() {
    let s = V2Store::parse(store_json().as_bytes()).unwrap();
    assert_eq!(s.members.len(), 2);
    assert_eq!(s.removed, vec![0x5e3f_ca24_330e_cd85]);
    assert_eq!(s.cluster_version.as_deref(), Some("3.4.0"));
    assert_eq!(s.user_nodes, 2);
    let (_, deep) = seeds()
        .into_iter()
        .find(|(n, _)| *n == "valid-v2store-deep-user-keys")
        .unwrap();
    assert_eq!(V2Store::parse(&deep).unwrap().user_nodes, 50);
    let (_, bootstrap) = seeds()
        .into_iter()
        .find(|(n, _)| *n == "valid-confchange-bootstrap")
        .unwrap();
    let m = ConfChange::decode(&bootstrap)
        .unwrap()
        .member()
        .unwrap()
        .unwrap();
    assert_eq!((m.id, m.name.as_str()), (13668033151171901709, "n1"));
}

#[test]
fn deep_seeds_stop_at_the_nesting_limit() {
    // They must reach serde_json's limit, not fail earlier on a type.
    for (name, bytes) in seeds() {
        if name.starts_with("bad-v2store-deep-") {
            let e = V2Store::parse(&bytes).unwrap_err();
            assert!(e.contains("recursion limit exceeded"), "{name}: {e}");
        }
    }
}
