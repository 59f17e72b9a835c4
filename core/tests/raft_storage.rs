//! openraft's own storage conformance suite (`openraft::testing::log`),
//! run against ferrocd's log store (on the WAL) and state machine (on the
//! mvcc store), each case on a fresh data directory.

use ferrocd_core::Lessor;
use ferrocd_core::raft::{LogStore, StateMachine, TypeConfig};
use ferrocd_mvcc as mvcc;
use ferrocd_wal::{UringFs, Wal};
use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};

struct Builder;

/// Keeps the directory (and the WAL thread's handle) alive for one case.
struct Guard {
    _dir: tempfile::TempDir,
}

impl StoreBuilder<TypeConfig, LogStore, StateMachine, Guard> for Builder {
    async fn build(&self) -> Result<(Guard, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) =
            Wal::open(UringFs, dir.path().join("wal"), Default::default()).expect("open wal");
        let (log, _worker) = LogStore::open(wal).expect("log store");
        let sm = StateMachine::open(
            &dir.path().join("snap"),
            mvcc::Config::default(),
            mvcc::WatchConfig::default(),
            Lessor::new(2),
            ferrocd_net::Metrics::new(),
            5,
            std::time::Duration::from_secs(300),
        )
        .expect("state machine");
        Ok((Guard { _dir: dir }, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite() {
    Suite::test_all(Builder).await.expect("storage suite");
}

/// The log store on a file layer that loses everything not fsynced (data
/// and directory entries): every entry whose append was acknowledged
/// (openraft's `IOFlushed` callback fired) and the vote survive a power
/// loss at any point; entries still in flight may or may not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_power_loss() {
    use ferrocd_core::raft::{Command, Op, Proposal};
    use ferrocd_wal::SimFs;
    use openraft::storage::{IOFlushed, RaftLogReader, RaftLogStorage};
    use openraft::type_config::TypeConfigExt;
    use openraft::{Entry, EntryPayload};

    let entry = |index: u64| Entry::<_, _> {
        log_id: openraft::testing::log_id::<TypeConfig>(3, 1, index),
        payload: EntryPayload::Normal(
            Proposal::single(&Command {
                id: ferrocd_core::raft::RequestId {
                    member: 1,
                    incarnation: 1,
                    seq: index,
                },
                floor: 1,
                op: Op::Put(mvcc::PutRequest::new(format!("k{index}"), vec![7u8; 100])),
                caller: ferrocd_core::auth::Caller::Anonymous,
            })
            .unwrap(),
        ),
    };
    for crash_after in [0u64, 1, 7, 40] {
        let fs = SimFs::new();
        let (wal, _) = Wal::open(fs.clone(), "/data/wal", Default::default()).unwrap();
        let (mut log, _worker) = LogStore::open(wal).unwrap();
        let vote = openraft::Vote::new(3, 1);
        log.save_vote(&vote).await.unwrap();
        let mut acked = 0;
        for i in 1..=crash_after {
            let (tx, rx) = TypeConfig::oneshot();
            log.append([entry(i)], IOFlushed::signal(tx)).await.unwrap();
            rx.await.unwrap().unwrap();
            acked = i;
        }
        // In flight, never acknowledged.
        let (tx, _rx) = TypeConfig::oneshot();
        log.append([entry(acked + 1), entry(acked + 2)], IOFlushed::signal(tx))
            .await
            .unwrap();
        let image = fs.crash();

        let (wal, _) = Wal::open(image, "/data/wal", Default::default()).unwrap();
        let (mut log, _worker) = LogStore::open(wal).unwrap();
        assert_eq!(
            log.read_vote().await.unwrap(),
            Some(vote),
            "vote after crash"
        );
        let state = log.get_log_state().await.unwrap();
        let last = state.last_log_id.map_or(0, |l| l.index);
        assert!(
            last >= acked,
            "crash after {crash_after}: last {last} < acked {acked}"
        );
        let got = log.try_get_log_entries(1..=acked).await.unwrap();
        let want: Vec<_> = (1..=acked).map(entry).collect();
        assert_eq!(got, want, "crash after {crash_after}");
    }
}

/// Regression: a follower whose first entry (index 0, written by its own
/// `initialize`) conflicts with the leader's is truncated with
/// `truncate_after(None)`, which must drop index 0 too; the leader's entry
/// 0 then appends (it failed with "entry index 0 does not follow the last
/// index 0" and stopped raft on every follower of a new 3-member cluster).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_after_none_drops_entry_zero() {
    use openraft::storage::{IOFlushed, RaftLogReader, RaftLogStorage};
    use openraft::type_config::TypeConfigExt;

    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(UringFs, dir.path().join("wal"), Default::default()).unwrap();
    let (mut log, _worker) = LogStore::open(wal).unwrap();
    let mine = openraft::testing::blank_ent::<TypeConfig>(0, 1, 0);
    let theirs = openraft::testing::blank_ent::<TypeConfig>(0, 2, 0);
    for e in [mine, theirs.clone()] {
        if log.get_log_state().await.unwrap().last_log_id.is_some() {
            log.truncate_after(None).await.unwrap();
        }
        let (tx, rx) = TypeConfig::oneshot();
        log.append([e], IOFlushed::signal(tx)).await.unwrap();
        rx.await.unwrap().unwrap();
    }
    assert_eq!(log.try_get_log_entries(0..10).await.unwrap(), vec![theirs]);
}

/// issue #18: a forwarded write was applied twice when the leader died —
/// the follower proposed it again with a fresh id, and both copies
/// committed. Now every copy carries the request's id: the state machine
/// applies the first and answers the others with its outcome, also after
/// a snapshot and a restart from it; a copy below its origin's floor (the
/// origin is done with it) is not applied at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_18_a_request_twice_in_the_log_applies_once() {
    use ferrocd_core::raft::{Applied, Command, Entry, Op, Proposal, RequestId};
    use openraft::EntryPayload;
    use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};

    let open = |dir: &std::path::Path| {
        StateMachine::open(
            &dir.join("snap"),
            mvcc::Config::default(),
            mvcc::WatchConfig::default(),
            Lessor::new(2),
            ferrocd_net::Metrics::new(),
            5,
            std::time::Duration::from_secs(300),
        )
        .expect("state machine")
    };
    let id = |seq: u64| RequestId {
        member: 0xaa,
        incarnation: 0xbb,
        seq,
    };
    let put = |index: u64, seq: u64, floor: u64, value: &str| -> Entry {
        openraft::Entry::<_, _> {
            log_id: openraft::testing::log_id::<TypeConfig>(2, 1, index),
            payload: EntryPayload::Normal(
                Proposal::single(&Command {
                    id: id(seq),
                    floor,
                    op: Op::Put(mvcc::PutRequest::new(format!("k{seq}"), value)),
                    caller: ferrocd_core::auth::Caller::Anonymous,
                })
                .unwrap(),
            ),
        }
    };
    async fn apply(sm: &mut StateMachine, entries: Vec<Entry>) {
        let s = futures_util::stream::iter(entries.into_iter().map(|e| Ok((e, None))));
        sm.apply(s).await.expect("apply");
    }
    // What the entry's proposer hears (openraft's response to it).
    let answer = |sm: &StateMachine, e: Entry| {
        let mut o = sm.apply_entries(vec![e]).expect("apply");
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].0.len(), 1, "one command, one outcome");
        o.remove(0).0.remove(0)
    };
    let revision_of = |sm: &StateMachine, key: &str| {
        let view = sm.shared().store.snapshot();
        let r = view
            .range(&mvcc::RangeRequest::new(
                key.as_bytes().to_vec(),
                Vec::new(),
            ))
            .expect("range")
            .to_response();
        r.kvs
            .iter()
            .map(|kv| (kv.mod_revision, kv.version))
            .collect::<Vec<_>>()
    };

    let dir = tempfile::tempdir().unwrap();
    let mut sm = open(dir.path());
    // Request 1 applies at revision 2; request 2 at 3.
    apply(&mut sm, vec![put(1, 1, 1, "a"), put(2, 2, 1, "b")]).await;
    assert_eq!(revision_of(&sm, "k1"), vec![(2, 1)]);
    // A second copy of request 1 (proposed again after a leader change):
    // its proposer gets the first copy's answer, the store does not move.
    match answer(&sm, put(3, 1, 1, "a")) {
        Ok(Applied::Put(r)) => assert_eq!(r.revision, 2),
        other => panic!("duplicate answered {other:?}"),
    }
    assert_eq!(revision_of(&sm, "k1"), vec![(2, 1)]);
    assert_eq!(sm.shared().store.revision(), 3);

    // The table travels in the snapshot: a restarted member (or one that
    // installed it) still recognises the copy.
    let mut builder = sm.get_snapshot_builder().await;
    builder.build_snapshot().await.expect("snapshot");
    drop(builder);
    drop(sm);
    let mut sm = open(dir.path());
    assert_eq!(sm.shared().store.revision(), 3);
    match answer(&sm, put(4, 2, 1, "b")) {
        Ok(Applied::Put(r)) => assert_eq!(r.revision, 3),
        other => panic!("duplicate after restart answered {other:?}"),
    }
    assert_eq!(sm.shared().store.revision(), 3);

    // Request 3 carries floor 3: the origin is done with 1 and 2, so a
    // late copy of either is stale — not applied, answered "timed out".
    apply(&mut sm, vec![put(5, 3, 3, "c")]).await;
    assert_eq!(sm.shared().store.revision(), 4);
    assert_eq!(
        answer(&sm, put(6, 1, 1, "a")),
        Err(ferrocd_net::EtcdError::Timeout),
        "stale copy"
    );
    assert_eq!(revision_of(&sm, "k1"), vec![(2, 1)]);
    assert_eq!(sm.shared().store.revision(), 4);
    assert_eq!(sm.shared().sessions_held(), (1, 1), "only request 3 kept");
}
