//! Transactions with etcd 3.5's exact order of checks and effects:
//!
//! 1. Request checks (etcd does these in the gRPC layer, before raft):
//!    empty keys, `ignore_value` with a value, `ignore_lease` with a lease,
//!    then `checkIntervals` on `success` and on `failure` separately
//!    (`DuplicateKey`: a key put twice, or put inside a range deleted, at any
//!    nesting depth of one branch; deletes may overlap each other; then/else
//!    of a nested txn may put the same key; a from-key delete
//!    (`range_end = "\0"`) never conflicts, because etcd checks it as the
//!    literal interval `[key, "\0")`, which is empty).
//! 2. Every compare, nested ones included, is evaluated against the state
//!    before the txn (etcd's `compareToPath`), choosing a path.
//! 3. Along that path: every put is checked (`ignore_*` needs the key to
//!    exist now → `KeyNotFound`; the lease must exist → `LeaseNotFound`),
//!    then every range's revision (`FutureRevision` above the current
//!    revision, `Compacted` below the compacted one).
//! 4. Ops run in order in one write transaction; later ops see earlier
//!    ones' writes.
//!
//! Compares over a range (`range_end` non-empty) hold only if every key in
//! the range satisfies them; an empty range fails a `Value` compare and
//! compares other targets against zero (a missing key has version 0, etc.).

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::kv::{KeyRange, KeyValue};
use crate::range;
use crate::record::KvRef;
use crate::request::{
    Compare, CompareResult, CompareTarget, RequestOp, ResponseOp, TxnRequest, TxnResponse,
};
use crate::state::State;
use crate::write::{TxnWrite, validate_delete, validate_put};

/// The branch each (nested) txn takes: `succeeded`, then the paths of the
/// nested txns of that branch in op order.
struct Path {
    succeeded: bool,
    nested: Vec<Path>,
}

/// Run `req` as one write transaction on `tw` (which must be fresh).
pub(crate) fn apply(tw: &mut TxnWrite<'_>, req: &TxnRequest) -> Result<TxnResponse> {
    validate(req)?;
    check_intervals(&req.success)?;
    check_intervals(&req.failure)?;
    let path = compare_to_path(tw.state, req);
    check_puts(tw.state, req, &path)?;
    check_ranges(tw.state, req, &path)?;
    // An `ignore_*` put can still find its key gone when a from-key delete
    // earlier in the txn removed it (checkIntervals does not see from-key
    // deletes). etcd 3.5 panics there; we fail the txn with `KeyNotFound`
    // and roll back, keeping an O(1) copy of the state only for such txns.
    let saved = has_ignore_put(req, &path).then(|| tw.state.clone());
    match run(tw, req, &path) {
        Ok(mut resp) => {
            resp.revision = tw.read_rev();
            Ok(resp)
        }
        Err(e) => {
            *tw.state = saved.expect("only ignore_* puts fail after the checks");
            tw.drop_events();
            Err(e)
        }
    }
}

/// Whether the chosen path has a put with `ignore_value` / `ignore_lease`.
fn has_ignore_put(req: &TxnRequest, path: &Path) -> bool {
    let mut nested = path.nested.iter();
    branch(req, path.succeeded).iter().any(|op| match op {
        RequestOp::Put(p) => p.ignore_value || p.ignore_lease,
        RequestOp::Txn(t) => has_ignore_put(t, nested.next().expect("one path per nested txn")),
        _ => false,
    })
}

/// etcd's `checkTxnRequest` per op (without the ops-count limit, which is
/// the node's configuration).
fn validate(req: &TxnRequest) -> Result<()> {
    for op in req.success.iter().chain(&req.failure) {
        match op {
            RequestOp::Range(r) if r.key.is_empty() => return Err(Error::EmptyKey),
            RequestOp::Range(_) => {}
            RequestOp::Put(p) => validate_put(p)?,
            RequestOp::DeleteRange(d) => validate_delete(d)?,
            RequestOp::Txn(t) => validate(t)?,
        }
    }
    Ok(())
}

/// A delete's key set as etcd's interval tree sees it.
struct DelInterval<'a> {
    key: &'a [u8],
    range_end: &'a [u8],
}

impl DelInterval<'_> {
    fn contains(&self, k: &[u8]) -> bool {
        if self.range_end.is_empty() {
            self.key == k
        } else {
            // Literal half-open interval; "\0" as end is NOT from-key here.
            self.key <= k && k < self.range_end
        }
    }
}

/// etcd's `checkIntervals`: the puts of `ops` (recursively) and the deletes,
/// or `DuplicateKey`.
fn check_intervals(ops: &[RequestOp]) -> Result<(HashSet<&[u8]>, Vec<DelInterval<'_>>)> {
    let mut dels: Vec<DelInterval<'_>> = ops
        .iter()
        .filter_map(|op| match op {
            RequestOp::DeleteRange(d) => Some(DelInterval {
                key: &d.key,
                range_end: &d.range_end,
            }),
            _ => None,
        })
        .collect();
    let mut puts: HashSet<&[u8]> = HashSet::new();
    let hits = |dels: &[DelInterval<'_>], k: &[u8]| dels.iter().any(|d| d.contains(k));
    for op in ops {
        let RequestOp::Txn(t) = op else { continue };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || hits(&dels, k) {
                return Err(Error::DuplicateKey);
            }
            puts.insert(k);
        }
        for k in &puts_else {
            if (puts.contains(k) && !puts_then.contains(k)) || hits(&dels, k) {
                return Err(Error::DuplicateKey);
            }
            puts.insert(k);
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        let RequestOp::Put(p) = op else { continue };
        if puts.contains(&p.key[..]) || hits(&dels, &p.key) {
            return Err(Error::DuplicateKey);
        }
        puts.insert(&p.key);
    }
    Ok((puts, dels))
}

fn branch(req: &TxnRequest, succeeded: bool) -> &[RequestOp] {
    if succeeded {
        &req.success
    } else {
        &req.failure
    }
}

fn compare_to_path(state: &State, req: &TxnRequest) -> Path {
    let succeeded = req.compare.iter().all(|c| compare(state, c));
    let nested = branch(req, succeeded)
        .iter()
        .filter_map(|op| match op {
            RequestOp::Txn(t) => Some(compare_to_path(state, t)),
            _ => None,
        })
        .collect();
    Path { succeeded, nested }
}

/// etcd's `applyCompare` at the current revision.
fn compare(state: &State, c: &Compare) -> bool {
    // One key (the common compare-and-swap): a lookup, no allocation.
    if c.range_end.is_empty() {
        return match state.kv_at(&c.key, state.revision) {
            Some(r) => compare_kv(c, &KvRef::new(r)),
            None => compare_missing(c),
        };
    }
    let range = KeyRange::new(&c.key, &c.range_end);
    let (recs, _) = state.range_keys(&range, state.revision, 0);
    if recs.is_empty() {
        return compare_missing(c);
    }
    recs.into_iter().all(|r| compare_kv(c, &KvRef::new(r)))
}

/// A compare on keys that do not exist: a value compare fails (etcd),
/// any other compares against zero.
fn compare_missing(c: &Compare) -> bool {
    !matches!(c.target, CompareTarget::Value(_)) && compare_kv(c, &KeyValue::default())
}

/// The fields a compare reads, for stored and missing keys alike.
trait CompareFields {
    fn value(&self) -> &[u8];
    fn version(&self) -> i64;
    fn create(&self) -> i64;
    fn modified(&self) -> i64;
    fn lease(&self) -> i64;
}

impl CompareFields for KeyValue {
    fn value(&self) -> &[u8] {
        &self.value
    }
    fn version(&self) -> i64 {
        self.version
    }
    fn create(&self) -> i64 {
        self.create_revision
    }
    fn modified(&self) -> i64 {
        self.mod_revision
    }
    fn lease(&self) -> i64 {
        self.lease
    }
}

impl CompareFields for KvRef<'_> {
    fn value(&self) -> &[u8] {
        KvRef::value(self)
    }
    fn version(&self) -> i64 {
        KvRef::version(self)
    }
    fn create(&self) -> i64 {
        self.create_revision()
    }
    fn modified(&self) -> i64 {
        self.mod_revision()
    }
    fn lease(&self) -> i64 {
        KvRef::lease(self)
    }
}

fn compare_kv(c: &Compare, kv: &impl CompareFields) -> bool {
    let ord = match &c.target {
        CompareTarget::Value(v) => kv.value().cmp(v),
        CompareTarget::Version(v) => kv.version().cmp(v),
        CompareTarget::Create(v) => kv.create().cmp(v),
        CompareTarget::Mod(v) => kv.modified().cmp(v),
        CompareTarget::Lease(v) => kv.lease().cmp(v),
    };
    match c.result {
        CompareResult::Equal => ord.is_eq(),
        CompareResult::NotEqual => ord.is_ne(),
        CompareResult::Greater => ord.is_gt(),
        CompareResult::Less => ord.is_lt(),
    }
}

/// etcd's `checkRequestPut` along the path, against the pre-txn state.
fn check_puts(state: &State, req: &TxnRequest, path: &Path) -> Result<()> {
    let mut nested = path.nested.iter();
    for op in branch(req, path.succeeded) {
        match op {
            RequestOp::Txn(t) => {
                check_puts(state, t, nested.next().expect("one path per nested txn"))?
            }
            RequestOp::Put(p) => {
                if (p.ignore_value || p.ignore_lease)
                    && state.kv_at(&p.key, state.revision).is_none()
                {
                    return Err(Error::KeyNotFound);
                }
                if p.lease != 0 && !state.leases.contains_key(&p.lease) {
                    return Err(Error::LeaseNotFound);
                }
            }
            RequestOp::Range(_) | RequestOp::DeleteRange(_) => {}
        }
    }
    Ok(())
}

/// etcd's `checkRequestRange` along the path.
fn check_ranges(state: &State, req: &TxnRequest, path: &Path) -> Result<()> {
    let mut nested = path.nested.iter();
    for op in branch(req, path.succeeded) {
        match op {
            RequestOp::Txn(t) => {
                check_ranges(state, t, nested.next().expect("one path per nested txn"))?
            }
            RequestOp::Range(r) if r.revision == 0 => {}
            RequestOp::Range(r) if r.revision > state.revision => {
                return Err(Error::FutureRevision {
                    current_revision: state.revision,
                });
            }
            // etcd's compacted revision starts at -1, ours at 0: only a real
            // compaction makes negative revisions fail here, as in etcd.
            RequestOp::Range(r)
                if state.compact_revision > 0 && r.revision < state.compact_revision =>
            {
                return Err(Error::Compacted {
                    compact_revision: state.compact_revision,
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// etcd's `applyTxn`; after the checks above only an `ignore_*` put whose
/// key a from-key delete removed can fail.
fn run(tw: &mut TxnWrite<'_>, req: &TxnRequest, path: &Path) -> Result<TxnResponse> {
    let mut nested = path.nested.iter();
    let mut responses = Vec::new();
    for op in branch(req, path.succeeded) {
        let resp = match op {
            RequestOp::Range(r) => {
                let current = tw.read_rev();
                let rr = range::range(tw.state, r, current)
                    .expect("range revision checked before the txn ran");
                ResponseOp::Range(rr.to_response())
            }
            RequestOp::Put(p) => ResponseOp::Put(tw.apply_put(p)?),
            RequestOp::DeleteRange(d) => ResponseOp::DeleteRange(tw.apply_delete_range(d)),
            RequestOp::Txn(t) => {
                ResponseOp::Txn(run(tw, t, nested.next().expect("one path per nested txn"))?)
            }
        };
        responses.push(resp);
    }
    Ok(TxnResponse {
        revision: 0,
        succeeded: path.succeeded,
        responses,
    })
}
