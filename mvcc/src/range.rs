//! Range reads with etcd 3.5's exact semantics (`applierV3backend.Range`
//! over `storeTxnRead.rangeKeys`):
//!
//! 1. `revision > current` → `FutureRevision`; `<= 0` reads the current
//!    revision; `< compact_revision` → `Compacted` (reading *at* the
//!    compacted revision works: compaction keeps each key's newest revision
//!    at or below it).
//! 2. `count_only`: `count` = keys alive in the range, no kvs, `more` false.
//! 3. The limit is pushed down to the index as `limit + 1` only when there
//!    is no sort order and no min/max mod/create filter; otherwise every
//!    matching key is fetched first. Quirk kept from etcd: order `None`
//!    with a non-`Key` target still pushes the limit down, so only the
//!    first `limit + 1` keys (in key order) get sorted (step 5).
//! 4. Filters drop kvs (`max_mod`, `min_mod`, `max_create`, `min_create`);
//!    `count` is NOT reduced by them: it is always the number of keys alive
//!    in the range at the read revision.
//! 5. Sort: a non-`Key` target with order `None` sorts ascending. etcd uses
//!    Go's unstable `sort.Sort`, so ties are in unspecified order there;
//!    here the sort is stable and ties stay in ascending key order (for
//!    `Descend` too).
//! 6. Truncate to `limit` and set `more` when something was cut.
//! 7. The header revision is the current revision, not the read one.

use crate::error::{Error, Result};
use crate::kv::KeyRange;
use crate::record::KvRef;
use crate::request::{RangeRequest, RangeResult, SortOrder, SortTarget};
use crate::state::State;

/// Answer `req` from `state`, whose visible revision is `current`.
pub(crate) fn range<'a>(
    state: &'a State,
    req: &RangeRequest,
    current: i64,
) -> Result<RangeResult<'a>> {
    if req.key.is_empty() {
        return Err(Error::EmptyKey);
    }
    let at = read_revision(state, req.revision, current)?;
    let range = KeyRange::new(&req.key, &req.range_end);
    if req.count_only {
        return Ok(RangeResult {
            kvs: Vec::new(),
            count: state.count_keys(&range, at),
            more: false,
            revision: current,
        });
    }
    let filtered = req.sort_order != SortOrder::None
        || req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0;
    let fetch = if filtered || req.limit <= 0 {
        0
    } else {
        req.limit as usize + 1
    };
    let (recs, count) = state.range_keys(&range, at, fetch);
    let mut kvs: Vec<KvRef<'a>> = recs
        .into_iter()
        .map(|r| KvRef::new(r).with_keys_only(req.keys_only))
        .filter(|kv| {
            (req.max_mod_revision == 0 || kv.mod_revision() <= req.max_mod_revision)
                && (req.min_mod_revision == 0 || kv.mod_revision() >= req.min_mod_revision)
                && (req.max_create_revision == 0 || kv.create_revision() <= req.max_create_revision)
                && (req.min_create_revision == 0 || kv.create_revision() >= req.min_create_revision)
        })
        .collect();
    sort(&mut kvs, req.sort_order, req.sort_target);
    let mut more = false;
    if req.limit > 0 && kvs.len() > req.limit as usize {
        kvs.truncate(req.limit as usize);
        more = true;
    }
    Ok(RangeResult {
        kvs,
        count,
        more,
        revision: current,
    })
}

/// The revision a read at `requested` sees, or why it cannot.
pub(crate) fn read_revision(state: &State, requested: i64, current: i64) -> Result<i64> {
    if requested > current {
        return Err(Error::FutureRevision {
            current_revision: current,
        });
    }
    let at = if requested <= 0 { current } else { requested };
    if at < state.compact_revision {
        return Err(Error::Compacted {
            compact_revision: state.compact_revision,
        });
    }
    Ok(at)
}

/// Sort as etcd does, stably (see the module notes).
fn sort(kvs: &mut [KvRef<'_>], order: SortOrder, target: SortTarget) {
    let order = if target != SortTarget::Key && order == SortOrder::None {
        SortOrder::Ascend
    } else {
        order
    };
    let cmp = |a: &KvRef<'_>, b: &KvRef<'_>| match target {
        SortTarget::Key => a.key().cmp(b.key()),
        SortTarget::Version => a.version().cmp(&b.version()),
        SortTarget::Create => a.create_revision().cmp(&b.create_revision()),
        SortTarget::Mod => a.mod_revision().cmp(&b.mod_revision()),
        // Compare the stored value even for keys_only reads.
        SortTarget::Value => a
            .with_keys_only(false)
            .value()
            .cmp(b.with_keys_only(false).value()),
    };
    match order {
        SortOrder::None => {}
        SortOrder::Ascend if target == SortTarget::Key => {}
        SortOrder::Ascend => kvs.sort_by(cmp),
        SortOrder::Descend => kvs.sort_by(|a, b| cmp(b, a)),
    }
}
