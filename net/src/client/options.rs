//! Builders for requests, named and shaped as in the `etcd-client` crate.

use crate::pb::etcdserverpb as pb;

/// The end of the range holding every key that starts with `key` (etcd's
/// `GetPrefixRangeEnd`): the prefix with its last byte below 0xff raised
/// by one; all-0xff (or empty) prefixes range to the end (`"\0"`).
pub fn prefix_end(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[derive(Debug, Clone, Default)]
enum End {
    #[default]
    Key,
    Prefix,
    FromKey,
    Explicit(Vec<u8>),
}

impl End {
    fn resolve(&self, key: &[u8]) -> Vec<u8> {
        match self {
            End::Key => Vec::new(),
            End::Prefix => prefix_end(key),
            End::FromKey => vec![0],
            End::Explicit(e) => e.clone(),
        }
    }
}

/// Sort order of a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    /// Key order (no sort).
    None,
    /// Smallest first.
    Ascend,
    /// Largest first.
    Descend,
}

/// Field a range sorts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortTarget {
    /// The key.
    Key,
    /// The version.
    Version,
    /// The create revision.
    Create,
    /// The mod revision.
    Mod,
    /// The value.
    Value,
}

/// Options of [`crate::client::Client::get`].
#[derive(Debug, Clone, Default)]
pub struct GetOptions {
    end: End,
    req: pb::RangeRequest,
}

impl GetOptions {
    /// A point read.
    pub fn new() -> Self {
        Self::default()
    }
    /// Every key with the key as prefix.
    pub fn with_prefix(mut self) -> Self {
        self.end = End::Prefix;
        self
    }
    /// Every key from the key on.
    pub fn with_from_key(mut self) -> Self {
        self.end = End::FromKey;
        self
    }
    /// Keys in `[key, end)`.
    pub fn with_range(mut self, end: impl Into<Vec<u8>>) -> Self {
        self.end = End::Explicit(end.into());
        self
    }
    /// At most `n` keys.
    pub fn with_limit(mut self, n: i64) -> Self {
        self.req.limit = n;
        self
    }
    /// Read at an earlier revision.
    pub fn with_revision(mut self, rev: i64) -> Self {
        self.req.revision = rev;
        self
    }
    /// Sort the result.
    pub fn with_sort(mut self, target: SortTarget, order: SortOrder) -> Self {
        self.req.sort_target = match target {
            SortTarget::Key => pb::range_request::SortTarget::Key,
            SortTarget::Version => pb::range_request::SortTarget::Version,
            SortTarget::Create => pb::range_request::SortTarget::Create,
            SortTarget::Mod => pb::range_request::SortTarget::Mod,
            SortTarget::Value => pb::range_request::SortTarget::Value,
        } as i32;
        self.req.sort_order = match order {
            SortOrder::None => pb::range_request::SortOrder::None,
            SortOrder::Ascend => pb::range_request::SortOrder::Ascend,
            SortOrder::Descend => pb::range_request::SortOrder::Descend,
        } as i32;
        self
    }
    /// Serve from the member's local state, without a quorum round.
    pub fn with_serializable(mut self) -> Self {
        self.req.serializable = true;
        self
    }
    /// Leave values out.
    pub fn with_keys_only(mut self) -> Self {
        self.req.keys_only = true;
        self
    }
    /// Only count.
    pub fn with_count_only(mut self) -> Self {
        self.req.count_only = true;
        self
    }
    /// Only keys modified at or after `rev`.
    pub fn with_min_mod_revision(mut self, rev: i64) -> Self {
        self.req.min_mod_revision = rev;
        self
    }
    /// Only keys modified at or before `rev`.
    pub fn with_max_mod_revision(mut self, rev: i64) -> Self {
        self.req.max_mod_revision = rev;
        self
    }
    /// Only keys created at or after `rev`.
    pub fn with_min_create_revision(mut self, rev: i64) -> Self {
        self.req.min_create_revision = rev;
        self
    }
    /// Only keys created at or before `rev`.
    pub fn with_max_create_revision(mut self, rev: i64) -> Self {
        self.req.max_create_revision = rev;
        self
    }
    /// The request for `key`.
    pub fn build(self, key: Vec<u8>) -> pb::RangeRequest {
        pb::RangeRequest {
            range_end: self.end.resolve(&key),
            key,
            ..self.req
        }
    }
}

/// Options of [`crate::client::Client::put`].
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    req: pb::PutRequest,
}

impl PutOptions {
    /// A plain put.
    pub fn new() -> Self {
        Self::default()
    }
    /// Attach the key to a lease.
    pub fn with_lease(mut self, id: i64) -> Self {
        self.req.lease = id;
        self
    }
    /// Return the previous key-value.
    pub fn with_prev_key(mut self) -> Self {
        self.req.prev_kv = true;
        self
    }
    /// Keep the current value (change only the lease).
    pub fn with_ignore_value(mut self) -> Self {
        self.req.ignore_value = true;
        self
    }
    /// Keep the current lease (change only the value).
    pub fn with_ignore_lease(mut self) -> Self {
        self.req.ignore_lease = true;
        self
    }
    /// The request.
    pub fn build(self, key: Vec<u8>, value: Vec<u8>) -> pb::PutRequest {
        pb::PutRequest {
            key,
            value,
            ..self.req
        }
    }
}

/// Options of [`crate::client::Client::delete`].
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    end: End,
    prev_kv: bool,
}

impl DeleteOptions {
    /// Delete one key.
    pub fn new() -> Self {
        Self::default()
    }
    /// Every key with the key as prefix.
    pub fn with_prefix(mut self) -> Self {
        self.end = End::Prefix;
        self
    }
    /// Every key from the key on.
    pub fn with_from_key(mut self) -> Self {
        self.end = End::FromKey;
        self
    }
    /// Keys in `[key, end)`.
    pub fn with_range(mut self, end: impl Into<Vec<u8>>) -> Self {
        self.end = End::Explicit(end.into());
        self
    }
    /// Return the deleted key-values.
    pub fn with_prev_key(mut self) -> Self {
        self.prev_kv = true;
        self
    }
    /// The request.
    pub fn build(self, key: Vec<u8>) -> pb::DeleteRangeRequest {
        pb::DeleteRangeRequest {
            range_end: self.end.resolve(&key),
            key,
            prev_kv: self.prev_kv,
        }
    }
}

/// Options of [`crate::client::Client::watch`].
#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    end: End,
    req: pb::WatchCreateRequest,
}

impl WatchOptions {
    /// Watch one key from now on.
    pub fn new() -> Self {
        Self::default()
    }
    /// Every key with the key as prefix.
    pub fn with_prefix(mut self) -> Self {
        self.end = End::Prefix;
        self
    }
    /// Every key from the key on.
    pub fn with_from_key(mut self) -> Self {
        self.end = End::FromKey;
        self
    }
    /// Keys in `[key, end)`.
    pub fn with_range(mut self, end: impl Into<Vec<u8>>) -> Self {
        self.end = End::Explicit(end.into());
        self
    }
    /// Replay history from `rev`.
    pub fn with_start_revision(mut self, rev: i64) -> Self {
        self.req.start_revision = rev;
        self
    }
    /// Send each event's previous key-value.
    pub fn with_prev_key(mut self) -> Self {
        self.req.prev_kv = true;
        self
    }
    /// Periodic progress notifications while idle.
    pub fn with_progress_notify(mut self) -> Self {
        self.req.progress_notify = true;
        self
    }
    /// Leave put events out.
    pub fn with_filter_put(mut self) -> Self {
        self.req
            .filters
            .push(pb::watch_create_request::FilterType::Noput as i32);
        self
    }
    /// Leave delete events out.
    pub fn with_filter_delete(mut self) -> Self {
        self.req
            .filters
            .push(pb::watch_create_request::FilterType::Nodelete as i32);
        self
    }
    /// Split large revisions over several responses.
    pub fn with_fragment(mut self) -> Self {
        self.req.fragment = true;
        self
    }
    /// Ask for this watch id (0: the server picks).
    pub fn with_watch_id(mut self, id: i64) -> Self {
        self.req.watch_id = id;
        self
    }
    /// The create request for `key`.
    pub fn build(self, key: Vec<u8>) -> pb::WatchCreateRequest {
        pb::WatchCreateRequest {
            range_end: self.end.resolve(&key),
            key,
            ..self.req
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `=`
    Equal,
    /// `>`
    Greater,
    /// `<`
    Less,
    /// `!=`
    NotEqual,
}

/// One guard of a [`Txn`].
#[derive(Debug, Clone)]
pub struct Compare(pb::Compare);

impl Compare {
    fn new(
        key: impl Into<Vec<u8>>,
        op: CompareOp,
        target: pb::compare::CompareTarget,
        union: pb::compare::TargetUnion,
    ) -> Self {
        let result = match op {
            CompareOp::Equal => pb::compare::CompareResult::Equal,
            CompareOp::Greater => pb::compare::CompareResult::Greater,
            CompareOp::Less => pb::compare::CompareResult::Less,
            CompareOp::NotEqual => pb::compare::CompareResult::NotEqual,
        };
        Compare(pb::Compare {
            result: result as i32,
            target: target as i32,
            key: key.into(),
            range_end: Vec::new(),
            target_union: Some(union),
        })
    }
    /// Compare the value.
    pub fn value(key: impl Into<Vec<u8>>, op: CompareOp, value: impl Into<Vec<u8>>) -> Self {
        use pb::compare::{CompareTarget as T, TargetUnion as U};
        Self::new(key, op, T::Value, U::Value(value.into()))
    }
    /// Compare the version.
    pub fn version(key: impl Into<Vec<u8>>, op: CompareOp, version: i64) -> Self {
        use pb::compare::{CompareTarget as T, TargetUnion as U};
        Self::new(key, op, T::Version, U::Version(version))
    }
    /// Compare the create revision (0: the key does not exist).
    pub fn create_revision(key: impl Into<Vec<u8>>, op: CompareOp, rev: i64) -> Self {
        use pb::compare::{CompareTarget as T, TargetUnion as U};
        Self::new(key, op, T::Create, U::CreateRevision(rev))
    }
    /// Compare the mod revision.
    pub fn mod_revision(key: impl Into<Vec<u8>>, op: CompareOp, rev: i64) -> Self {
        use pb::compare::{CompareTarget as T, TargetUnion as U};
        Self::new(key, op, T::Mod, U::ModRevision(rev))
    }
    /// Compare the lease.
    pub fn lease(key: impl Into<Vec<u8>>, op: CompareOp, lease: i64) -> Self {
        use pb::compare::{CompareTarget as T, TargetUnion as U};
        Self::new(key, op, T::Lease, U::Lease(lease))
    }
    /// Apply to every key with the key as prefix.
    pub fn with_prefix(mut self) -> Self {
        self.0.range_end = prefix_end(&self.0.key);
        self
    }
    /// Apply to keys in `[key, end)`.
    pub fn with_range(mut self, end: impl Into<Vec<u8>>) -> Self {
        self.0.range_end = end.into();
        self
    }
}

impl From<Compare> for pb::Compare {
    fn from(c: Compare) -> Self {
        c.0
    }
}

/// One operation of a [`Txn`] branch.
#[derive(Debug, Clone)]
pub struct TxnOp(pb::RequestOp);

impl TxnOp {
    /// A read.
    pub fn get(key: impl Into<Vec<u8>>, opts: Option<GetOptions>) -> Self {
        let r = opts.unwrap_or_default().build(key.into());
        TxnOp(pb::RequestOp {
            request: Some(pb::request_op::Request::RequestRange(r)),
        })
    }
    /// A put.
    pub fn put(
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        opts: Option<PutOptions>,
    ) -> Self {
        let r = opts.unwrap_or_default().build(key.into(), value.into());
        TxnOp(pb::RequestOp {
            request: Some(pb::request_op::Request::RequestPut(r)),
        })
    }
    /// A delete.
    pub fn delete(key: impl Into<Vec<u8>>, opts: Option<DeleteOptions>) -> Self {
        let r = opts.unwrap_or_default().build(key.into());
        TxnOp(pb::RequestOp {
            request: Some(pb::request_op::Request::RequestDeleteRange(r)),
        })
    }
    /// A nested transaction.
    pub fn txn(t: Txn) -> Self {
        TxnOp(pb::RequestOp {
            request: Some(pb::request_op::Request::RequestTxn(t.into())),
        })
    }
}

impl From<TxnOp> for pb::RequestOp {
    fn from(o: TxnOp) -> Self {
        o.0
    }
}

/// A transaction: if every compare holds, the `and_then` ops, else the
/// `or_else` ops, atomically in one revision.
#[derive(Debug, Clone, Default)]
pub struct Txn(pb::TxnRequest);

impl Txn {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }
    /// Guards.
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.0.compare.extend(compares.into_iter().map(Into::into));
        self
    }
    /// Ops when every guard holds.
    pub fn and_then(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.0.success.extend(ops.into_iter().map(Into::into));
        self
    }
    /// Ops otherwise.
    pub fn or_else(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.0.failure.extend(ops.into_iter().map(Into::into));
        self
    }
}

impl From<Txn> for pb::TxnRequest {
    fn from(t: Txn) -> Self {
        t.0
    }
}

impl From<pb::TxnRequest> for Txn {
    fn from(t: pb::TxnRequest) -> Self {
        Txn(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_are_etcds() {
        assert_eq!(prefix_end(b"abc"), b"abd");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
        assert_eq!(prefix_end(b""), b"\0");
    }

    #[test]
    fn builders_fill_the_request() {
        let r = GetOptions::new()
            .with_prefix()
            .with_limit(3)
            .with_sort(SortTarget::Mod, SortOrder::Descend)
            .build(b"/a/".to_vec());
        assert_eq!(r.range_end, b"/a0");
        assert_eq!((r.limit, r.sort_target, r.sort_order), (3, 3, 2));
        let d = DeleteOptions::new().with_from_key().build(b"k".to_vec());
        assert_eq!(d.range_end, b"\0");
    }
}
