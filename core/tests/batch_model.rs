//! issue #19: a batch of client requests in one raft entry applies as if
//! each request had been proposed alone. A failed request (a missing
//! lease, an existing lease id, a compaction out of range, NOSPACE, a
//! permission the caller lacks, an old auth revision) fails only itself;
//! the requests around it in the same batch answer and change the store
//! exactly as they would in entries of their own.
//!
//! The property: one random sequence of commands is applied to two fresh
//! state machines, (A) one command per entry and one entry per apply call
//! (the model: the semantics before batching), and (B) the same commands
//! in the same order cut into random batches, one batch per entry, the
//! entries handed over in randomly sized apply calls. Every command's
//! outcome and the whole end state (store, history, leases, auth, alarms,
//! exactly-once table, the lessor's leases) must be equal. Resent copies (the same request id
//! later in the log) must answer their first copy's outcome, or time out
//! when their origin's floor has passed them.

use std::collections::HashMap;
use std::path::Path;

use ferrocd_core::Lessor;
use ferrocd_core::auth::{AuthAnswer, AuthOp, AuthState, Caller, Perm, PermKind};
use ferrocd_core::raft::{
    ALARM_NOSPACE, Applied, ApplyError, Command, Entry, Op, Proposal, RequestId, StateMachine,
    TypeConfig,
};
use ferrocd_mvcc as mvcc;
use openraft::EntryPayload;
use proptest::prelude::*;

type Outcome = Result<Applied, ApplyError>;

/// Auth revision a fresh user credential carries: never below the store's
/// in these runs (the store's grows by one per auth change).
const FRESH: u64 = 1_000_000;

fn open(dir: &Path) -> StateMachine {
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
}

/// The log entry at `index` holding `cmds` as one proposal: at even
/// indexes as the proposing leader builds it (the commands beside their
/// bytes: apply takes those), at odd ones as any other member gets it
/// (apply decodes the bytes), so both paths are held to the model.
fn entry(index: u64, cmds: &[Command]) -> Entry {
    let encoded: Vec<_> = cmds
        .iter()
        .map(|c| {
            if index.is_multiple_of(2) {
                c.clone().into_encoded().expect("encode")
            } else {
                c.encode().expect("encode")
            }
        })
        .collect();
    openraft::Entry::<_, _> {
        log_id: openraft::testing::log_id::<TypeConfig>(1, 1, index),
        payload: EntryPayload::Normal(Proposal::of(&encoded)),
    }
}

/// Everything replicated that applying commands can change, read back
/// through the public API.
#[derive(Debug, PartialEq)]
struct EndState {
    revision: i64,
    compact_revision: i64,
    kvs: Vec<mvcc::KeyValue>,
    /// Every event still in the history, with previous values.
    history: Vec<mvcc::Event>,
    hash: mvcc::HashKv,
    leases: Vec<(i64, i64)>,
    /// The lessor's leases (what expiry works from), sorted.
    lessor: Vec<i64>,
    auth: AuthState,
    alarms: Vec<(u64, i32)>,
    sessions: (usize, usize),
}

fn end_state(sm: &StateMachine) -> EndState {
    let sh = sm.shared();
    // A compaction's physical part runs on a thread of its own: finish it
    // here so both sides' history is compacted the same way.
    sh.finish_compaction();
    let view = sh.store.snapshot();
    let all = mvcc::RangeRequest::new(vec![0], vec![0]);
    let kvs = view.range(&all).expect("range").to_response().kvs;
    let history = view
        .events(
            &mvcc::KeyRange::new(&[0], &[0]),
            view.compact_revision().max(1),
            view.revision(),
            true,
            0,
        )
        .expect("history");
    let mut lessor = sh.lessor.lock().unwrap().ids();
    lessor.sort_unstable();
    EndState {
        revision: view.revision(),
        compact_revision: view.compact_revision(),
        kvs,
        history,
        hash: view.hash_kv(0).expect("hash"),
        leases: view.lease_ttls(),
        lessor,
        auth: (**sh.auth.load()).clone(),
        alarms: sh.alarms(0),
        sessions: sh.sessions_held(),
    }
}

/// A simple token is `<prefix>.<entry index>`: the index is where the
/// Authenticate landed in the log, which batching changes by design; the
/// rest of the answer must not change.
fn without_token_index(o: &Outcome) -> Outcome {
    match o {
        Ok(Applied::Auth(
            AuthAnswer::Authenticated {
                name,
                revision,
                token: Some(t),
            },
            rev,
        )) => {
            let (prefix, index) = t.rsplit_once('.').expect("simple token");
            assert!(index.parse::<u64>().is_ok(), "token {t}");
            Ok(Applied::Auth(
                AuthAnswer::Authenticated {
                    name: name.clone(),
                    revision: *revision,
                    token: Some(prefix.to_string()),
                },
                *rev,
            ))
        }
        other => other.clone(),
    }
}

/// (A): every command in an entry of its own, applied one entry per call.
fn run_singles(cmds: &[Command]) -> (Vec<Outcome>, EndState) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sm = open(dir.path());
    let mut outcomes = Vec::with_capacity(cmds.len());
    for (i, c) in cmds.iter().enumerate() {
        let mut o = sm
            .apply_entries(vec![entry(i as u64 + 1, std::slice::from_ref(c))])
            .expect("apply");
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].0.len(), 1, "one command, one outcome");
        outcomes.push(o.remove(0).0.remove(0));
    }
    (outcomes, end_state(&sm))
}

/// (B): `batches` (sizes, summing to the number of commands) as entries
/// at consecutive indexes, handed over `calls` entries at a time.
fn run_batches(cmds: &[Command], batches: &[usize], calls: &[usize]) -> (Vec<Outcome>, EndState) {
    assert_eq!(batches.iter().sum::<usize>(), cmds.len());
    assert_eq!(calls.iter().sum::<usize>(), batches.len());
    let dir = tempfile::tempdir().expect("tempdir");
    let sm = open(dir.path());
    let mut entries = Vec::with_capacity(batches.len());
    let mut at = 0;
    for (i, &n) in batches.iter().enumerate() {
        entries.push(entry(i as u64 + 1, &cmds[at..at + n]));
        at += n;
    }
    let mut entries = entries.into_iter();
    let mut outcomes = Vec::with_capacity(cmds.len());
    let mut sizes = batches.iter();
    for &n in calls {
        let call: Vec<_> = entries.by_ref().take(n).collect();
        let replies = sm.apply_entries(call).expect("apply");
        assert_eq!(replies.len(), n, "one reply per entry");
        for r in replies {
            assert_eq!(Some(&r.0.len()), sizes.next(), "one outcome per command");
            outcomes.extend(r.0);
        }
    }
    (outcomes, end_state(&sm))
}

/// Cut `n` items into runs: a cut after item `i` where `bits[i] <
/// threshold` (0: one run of all, 256: runs of one).
fn cut(n: usize, bits: &[u8], threshold: u16) -> Vec<usize> {
    let mut runs = Vec::new();
    let mut len = 0;
    for i in 0..n {
        len += 1;
        if i + 1 == n || u16::from(bits[i % bits.len()]) < threshold {
            runs.push(len);
            len = 0;
        }
    }
    runs
}

// ---- generators ----------------------------------------------------------

const KEYS: [&str; 5] = ["a", "b", "c", "d", "e"];

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(KEYS.to_vec()).prop_map(|k| k.as_bytes().to_vec())
}

/// A key range: one key, from the key on, or up to another key (maybe
/// empty).
fn key_range() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    (key(), 0u8..4, key()).prop_map(|(k, kind, e)| match kind {
        0 | 1 => (k, vec![]),
        2 => (k, vec![0]),
        _ => (k, e),
    })
}

/// Lease ids: 1..=4 are granted now and then, 5 never.
fn lease() -> impl Strategy<Value = i64> {
    prop_oneof![4 => Just(0i64), 3 => 1i64..=5]
}

fn put_req() -> impl Strategy<Value = mvcc::PutRequest> {
    (key(), 0u8..4, lease(), any::<bool>(), 0u8..12).prop_map(|(key, v, lease, prev_kv, flags)| {
        mvcc::PutRequest {
            key,
            value: format!("v{v}").into_bytes(),
            lease,
            prev_kv,
            // Mostly plain; sometimes ValueProvided / LeaseProvided /
            // KeyNotFound.
            ignore_value: flags == 1,
            ignore_lease: flags == 2,
        }
    })
}

fn delete_req() -> impl Strategy<Value = mvcc::DeleteRangeRequest> {
    (key_range(), any::<bool>()).prop_map(|((key, range_end), prev_kv)| mvcc::DeleteRangeRequest {
        key,
        range_end,
        prev_kv,
    })
}

fn compare() -> impl Strategy<Value = mvcc::Compare> {
    use mvcc::{CompareResult as R, CompareTarget as T};
    (
        prop::sample::select(vec![R::Equal, R::Greater, R::Less, R::NotEqual]),
        prop_oneof![
            (0i64..3).prop_map(T::Version),
            (0i64..20).prop_map(T::Create),
            (0i64..20).prop_map(T::Mod),
            (0u8..4).prop_map(|v| T::Value(format!("v{v}").into_bytes())),
            (0i64..=5).prop_map(T::Lease),
        ],
        prop_oneof![3 => key().prop_map(|k| (k, vec![])), 1 => key_range()],
    )
        .prop_map(|(result, target, (key, range_end))| mvcc::Compare {
            result,
            target,
            key,
            range_end,
        })
}

fn flat_op() -> BoxedStrategy<mvcc::RequestOp> {
    prop_oneof![
        3 => put_req().prop_map(mvcc::RequestOp::Put),
        2 => delete_req().prop_map(mvcc::RequestOp::DeleteRange),
        1 => (key_range(), prop_oneof![3 => Just(0i64), 1 => 1i64..25]).prop_map(
            |((key, range_end), revision)| mvcc::RequestOp::Range(mvcc::RangeRequest {
                revision,
                ..mvcc::RangeRequest::new(key, range_end)
            })
        ),
    ]
    .boxed()
}

fn txn_with(op: BoxedStrategy<mvcc::RequestOp>) -> impl Strategy<Value = mvcc::TxnRequest> {
    (
        prop::collection::vec(compare(), 0..3),
        prop::collection::vec(op.clone(), 0..3),
        prop::collection::vec(op, 0..3),
    )
        .prop_map(|(compare, success, failure)| mvcc::TxnRequest {
            compare,
            success,
            failure,
        })
}

/// A txn whose branches may hold a nested txn (one level).
fn txn() -> impl Strategy<Value = mvcc::TxnRequest> {
    let op = prop_oneof![
        5 => flat_op(),
        1 => txn_with(flat_op()).prop_map(mvcc::RequestOp::Txn),
    ];
    txn_with(op.boxed())
}

fn user() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["root", "u", "v"]).prop_map(String::from)
}

fn role() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["root", "r", "s"]).prop_map(String::from)
}

fn auth_op() -> impl Strategy<Value = AuthOp> {
    prop_oneof![
        Just(AuthOp::Enable),
        Just(AuthOp::Disable),
        Just(AuthOp::Status),
        user().prop_map(|name| AuthOp::UserAdd {
            name,
            password: b"bcrypt".to_vec(),
            no_password: false,
        }),
        user().prop_map(|name| AuthOp::UserDelete { name }),
        (user(), role()).prop_map(|(user, role)| AuthOp::UserGrantRole { user, role }),
        (user(), role()).prop_map(|(name, role)| AuthOp::UserRevokeRole { name, role }),
        role().prop_map(|name| AuthOp::RoleAdd { name }),
        role().prop_map(|role| AuthOp::RoleDelete { role }),
        (role(), key_range(), 0i32..3).prop_map(|(name, (key, range_end), kind)| {
            AuthOp::RoleGrantPermission {
                name,
                perm: Some(Perm {
                    kind: PermKind::from_i32(kind).expect("kind"),
                    key,
                    range_end,
                }),
            }
        }),
        (role(), key_range()).prop_map(|(role, (key, range_end))| {
            AuthOp::RoleRevokePermission {
                role,
                key,
                range_end,
            }
        }),
        (user(), any::<bool>(), 5u64..10).prop_map(|(name, simple, checked_revision)| {
            AuthOp::Authenticate {
                name,
                prefix: simple.then(|| "tokenprefix".to_string()),
                checked_revision,
            }
        }),
        user().prop_map(|name| AuthOp::UserGet { name }),
        role().prop_map(|role| AuthOp::RoleGet { role }),
        Just(AuthOp::UserList),
        Just(AuthOp::RoleList),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => put_req().prop_map(Op::Put),
        2 => delete_req().prop_map(Op::DeleteRange),
        5 => txn().prop_map(Op::Txn),
        1 => prop_oneof![3 => 0i64..8, 1 => 0i64..30].prop_map(|revision| Op::Compact { revision }),
        2 => (1i64..=4, 1i64..100).prop_map(|(id, ttl)| Op::LeaseGrant { id, ttl }),
        1 => (1i64..=5).prop_map(|id| Op::LeaseRevoke { id }),
        3 => auth_op().prop_map(Op::Auth),
        1 => Just(Op::Auth(AuthOp::Disable)),
        1 => (prop::bool::weighted(0.6), 1u64..=2, prop_oneof![3 => Just(ALARM_NOSPACE), 1 => Just(2)])
            .prop_map(|(activate, member_id, alarm)| Op::Alarm { activate, member_id, alarm }),
    ]
}

fn caller() -> impl Strategy<Value = Caller> {
    let user = |name: &str, revision| Caller::User {
        name: name.into(),
        revision,
    };
    prop_oneof![
        4 => Just(Caller::Anonymous),
        3 => Just(user("root", FRESH)),
        3 => Just(user("u", FRESH)),
        1 => Just(user("u", 1)),
        1 => Just(user("v", FRESH)),
        1 => Just(Caller::Internal),
    ]
}

/// How a fresh request's floor relates to its sequence number.
#[derive(Debug, Clone, Copy)]
enum Floor {
    /// Its origin still waits for everything (floor 1).
    Oldest,
    /// Its origin is done with everything before it (floor = seq).
    All,
    /// The origin waits for the last `n` before it.
    Lag(u64),
}

#[derive(Debug, Clone)]
enum Step {
    /// A new request of origin `origin` (0: a legacy id, not checked by the
    /// exactly-once table).
    Fresh {
        origin: u8,
        floor: Floor,
        op: Op,
        caller: Caller,
    },
    /// User `root` with the root role, user `u` with role `r` (read-write
    /// on `a`..`c`), then auth enabled: one request each, from `origin`.
    AuthSetup { origin: u8 },
    /// A second copy (same id, floor, op, caller) of an earlier fresh
    /// request.
    Resend(prop::sample::Index),
}

fn step() -> impl Strategy<Value = Step> {
    let floor = prop_oneof![
        3 => Just(Floor::Oldest),
        1 => Just(Floor::All),
        2 => (1u64..4).prop_map(Floor::Lag),
    ];
    let origin = prop_oneof![1 => Just(0u8), 6 => 1u8..4];
    prop_oneof![
        60 => (origin, floor, op(), caller()).prop_map(|(origin, floor, op, caller)| Step::Fresh {
            origin,
            floor,
            op,
            caller,
        }),
        1 => (1u8..4).prop_map(|origin| Step::AuthSetup { origin }),
        7 => any::<prop::sample::Index>().prop_map(Step::Resend),
    ]
}

/// The commands of `steps`, in order; request ids are counted per origin.
fn commands(steps: &[Step]) -> Vec<Command> {
    let mut seqs: HashMap<u8, u64> = HashMap::new();
    let mut fresh: Vec<Command> = Vec::new();
    let mut out = Vec::new();
    let mut new = |origin: u8, floor: Floor, op: Op, caller: Caller| {
        let seq = seqs.entry(origin).or_default();
        *seq += 1;
        let seq = *seq;
        let id = if origin == 0 {
            RequestId {
                member: 0,
                incarnation: 0,
                seq,
            }
        } else {
            RequestId {
                member: u64::from(origin),
                incarnation: 0x1ace,
                seq,
            }
        };
        let floor = match floor {
            Floor::Oldest => 1,
            Floor::All => seq,
            Floor::Lag(n) => seq.saturating_sub(n).max(1),
        };
        Command {
            id,
            floor,
            op,
            caller,
        }
    };
    for s in steps {
        match s {
            Step::Fresh {
                origin,
                floor,
                op,
                caller,
            } => {
                let c = new(*origin, *floor, op.clone(), caller.clone());
                fresh.push(c.clone());
                out.push(c);
            }
            Step::AuthSetup { origin } => {
                let root = Caller::User {
                    name: "root".into(),
                    revision: FRESH,
                };
                for op in auth_setup() {
                    let c = new(*origin, Floor::Oldest, Op::Auth(op), root.clone());
                    fresh.push(c.clone());
                    out.push(c);
                }
            }
            Step::Resend(i) => {
                if !fresh.is_empty() {
                    out.push(fresh[i.index(fresh.len())].clone());
                }
            }
        }
    }
    out
}

fn auth_setup() -> Vec<AuthOp> {
    vec![
        AuthOp::UserAdd {
            name: "root".into(),
            password: b"bcrypt".to_vec(),
            no_password: false,
        },
        AuthOp::UserGrantRole {
            user: "root".into(),
            role: "root".into(),
        },
        AuthOp::UserAdd {
            name: "u".into(),
            password: b"bcrypt".to_vec(),
            no_password: false,
        },
        AuthOp::RoleAdd { name: "r".into() },
        AuthOp::RoleGrantPermission {
            name: "r".into(),
            perm: Some(Perm {
                kind: PermKind::ReadWrite,
                key: b"a".to_vec(),
                range_end: b"c".to_vec(),
            }),
        },
        AuthOp::UserGrantRole {
            user: "u".into(),
            role: "r".into(),
        },
        AuthOp::Enable,
    ]
}

/// What the exactly-once table must answer each resent copy in the
/// one-per-entry run: its first copy's outcome (errors travel as their
/// message), or a timeout once its origin's floor passed it.
fn check_resends(cmds: &[Command], outcomes: &[Outcome]) {
    let mut first: HashMap<RequestId, usize> = HashMap::new();
    let mut floors: HashMap<(u64, u64), u64> = HashMap::new();
    for (i, c) in cmds.iter().enumerate() {
        if c.id.is_legacy() {
            continue;
        }
        let floor = floors.entry((c.id.member, c.id.incarnation)).or_default();
        *floor = (*floor).max(c.floor);
        match first.get(&c.id) {
            None => {
                first.insert(c.id, i);
            }
            Some(&j) => {
                let want = if c.id.seq < *floor {
                    Err(ApplyError::Timeout)
                } else {
                    outcomes[j]
                        .clone()
                        .map_err(|e| ApplyError::from_message(e.message()))
                };
                assert_eq!(outcomes[i], want, "copy #{i} of #{j} ({})", c);
            }
        }
    }
}

fn batches_and_calls() -> impl Strategy<Value = (Vec<u8>, u16, Vec<u8>, u16)> {
    let threshold = || prop_oneof![1 => Just(0u16), 1 => Just(256u16), 3 => 0u16..256];
    (
        prop::collection::vec(any::<u8>(), 1..64),
        threshold(),
        prop::collection::vec(any::<u8>(), 1..64),
        threshold(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// issue #19: batched and one-per-entry apply agree on every outcome
    /// and on the end state.
    #[test]
    fn batches_apply_as_if_each_request_was_alone(
        steps in prop::collection::vec(step(), 1..60),
        (batch_bits, batch_cut, call_bits, call_cut) in batches_and_calls(),
    ) {
        let cmds = commands(&steps);
        prop_assume!(!cmds.is_empty());
        let (a_out, a_end) = run_singles(&cmds);
        check_resends(&cmds, &a_out);
        let batches = cut(cmds.len(), &batch_bits, batch_cut);
        let calls = cut(batches.len(), &call_bits, call_cut);
        let (b_out, b_end) = run_batches(&cmds, &batches, &calls);
        prop_assert_eq!(a_out.len(), b_out.len());
        for (i, (a, b)) in a_out.iter().zip(&b_out).enumerate() {
            prop_assert_eq!(
                without_token_index(a),
                without_token_index(b),
                "command #{} ({}), batches {:?}",
                i,
                &cmds[i],
                &batches
            );
        }
        // The model's lessor follows its store.
        let granted: Vec<i64> = a_end.leases.iter().map(|&(id, _)| id).collect();
        prop_assert_eq!(&a_end.lessor, &granted);
        prop_assert_eq!(
            a_end,
            b_end,
            "batches {:?}, calls {:?}",
            batches,
            calls
        );
    }
}

// ---- specific cases --------------------------------------------------------

fn cmd(seq: u64, op: Op, caller: Caller) -> Command {
    Command {
        id: RequestId {
            member: 1,
            incarnation: 2,
            seq,
        },
        floor: 1,
        op,
        caller,
    }
}

fn put(seq: u64, key: &str, lease: i64) -> Command {
    cmd(
        seq,
        Op::Put(mvcc::PutRequest {
            lease,
            ..mvcc::PutRequest::new(key, "v")
        }),
        Caller::Anonymous,
    )
}

fn put_revision(o: &Outcome) -> i64 {
    match o {
        Ok(Applied::Put(r)) => r.revision,
        other => panic!("expected a put, got {other:?}"),
    }
}

/// Apply `cmds` both ways (all in one batch, and one per entry), assert
/// they agree, return the outcomes.
fn one_batch_vs_singles(cmds: &[Command]) -> Vec<Outcome> {
    let (a_out, a_end) = run_singles(cmds);
    let (b_out, b_end) = run_batches(cmds, &[cmds.len()], &[1]);
    assert_eq!(a_out, b_out);
    assert_eq!(a_end, b_end);
    b_out
}

/// The put with a missing lease fails alone: the puts around it apply at
/// consecutive revisions, as in entries of their own.
#[test]
fn a_put_with_a_missing_lease_fails_only_itself() {
    let o = one_batch_vs_singles(&[put(1, "a", 0), put(2, "b", 7), put(3, "c", 0)]);
    assert_eq!(put_revision(&o[0]), 2);
    assert_eq!(o[1], Err(ApplyError::LeaseNotFound));
    assert_eq!(put_revision(&o[2]), 3);
}

/// NOSPACE raised and cleared inside one batch: only the writes that add
/// data between the two fail; a delete still applies.
#[test]
fn nospace_inside_a_batch_caps_only_the_writes_while_it_is_raised() {
    let alarm = |seq, activate| {
        cmd(
            seq,
            Op::Alarm {
                activate,
                member_id: 9,
                alarm: ALARM_NOSPACE,
            },
            Caller::Anonymous,
        )
    };
    let o = one_batch_vs_singles(&[
        put(1, "a", 0),
        alarm(2, true),
        put(3, "b", 0),
        cmd(4, Op::LeaseGrant { id: 3, ttl: 10 }, Caller::Anonymous),
        cmd(
            5,
            Op::DeleteRange(mvcc::DeleteRangeRequest::new("a", "")),
            Caller::Anonymous,
        ),
        alarm(6, false),
        put(7, "c", 0),
    ]);
    assert_eq!(put_revision(&o[0]), 2);
    assert_eq!(o[1], Ok(Applied::Alarm(vec![(9, ALARM_NOSPACE)])));
    assert_eq!(o[2], Err(ApplyError::NoSpace));
    assert_eq!(o[3], Err(ApplyError::NoSpace));
    assert!(
        matches!(&o[4], Ok(Applied::DeleteRange(r)) if r.deleted == 1 && r.revision == 3),
        "{:?}",
        o[4]
    );
    assert_eq!(put_revision(&o[6]), 4);
}

/// Auth enabled inside a batch: a user's put outside its permission is
/// denied, the ones around it (its own in range, root's, an anonymous one
/// after auth is disabled again) apply; a copy of a request in the same
/// batch answers the first copy's outcome and applies nothing.
#[test]
fn auth_inside_a_batch_denies_only_the_request_without_permission() {
    let root = Caller::User {
        name: "root".into(),
        revision: FRESH,
    };
    let u = Caller::User {
        name: "u".into(),
        revision: FRESH,
    };
    let mut cmds: Vec<Command> = auth_setup()
        .into_iter()
        .zip(1..)
        .map(|(op, seq)| cmd(seq, Op::Auth(op), root.clone()))
        .collect();
    let put_as = |seq, key: &str, who: &Caller| {
        cmd(seq, Op::Put(mvcc::PutRequest::new(key, "v")), who.clone())
    };
    cmds.extend([
        put_as(20, "a", &u),
        put_as(21, "d", &u),
        put_as(22, "d", &root),
        put_as(23, "b", &Caller::Anonymous),
        put_as(20, "a", &u),
        cmd(24, Op::Auth(AuthOp::Disable), root.clone()),
        put_as(25, "e", &Caller::Anonymous),
    ]);
    let o = one_batch_vs_singles(&cmds);
    let n = auth_setup().len();
    assert!(o[..n].iter().all(|r| r.is_ok()), "{o:?}");
    assert_eq!(put_revision(&o[n]), 2);
    assert_eq!(o[n + 1], Err(ApplyError::PermissionDenied));
    assert_eq!(put_revision(&o[n + 2]), 3);
    assert_eq!(o[n + 3], Err(ApplyError::UserEmpty));
    assert_eq!(o[n + 4], o[n], "the copy answers the first outcome");
    assert!(o[n + 5].is_ok());
    assert_eq!(put_revision(&o[n + 6]), 4);
}

/// The lessor (what expires leases on the leader) must hold the leases
/// the store holds, whichever way the grants and revokes were batched.
#[test]
fn the_lessor_hears_grants_and_revokes_in_log_order() {
    let grant = |seq| cmd(seq, Op::LeaseGrant { id: 1, ttl: 60 }, Caller::Anonymous);
    let revoke = |seq| cmd(seq, Op::LeaseRevoke { id: 1 }, Caller::Anonymous);
    let cmds = [grant(1), revoke(2), grant(3)];
    let (a_out, a_end) = run_singles(&cmds);
    assert!(a_out.iter().all(|o| o.is_ok()), "{a_out:?}");
    assert_eq!(
        (a_end.leases.clone(), a_end.lessor),
        (vec![(1, 60)], vec![1])
    );
    // All three in one entry; the grant in an entry before the other two.
    for batches in [vec![3], vec![1, 2]] {
        let calls = vec![1; batches.len()];
        let (b_out, b_end) = run_batches(&cmds, &batches, &calls);
        assert_eq!(b_out, a_out);
        assert_eq!(b_end.leases, vec![(1, 60)]);
        assert_eq!(
            b_end.lessor,
            vec![1],
            "batches {batches:?}: the lessor forgot lease 1"
        );
    }
}
