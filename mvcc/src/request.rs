//! Requests and responses of the store, shaped after etcd's
//! `etcdserverpb` messages (same fields, same meanings) so the wire shims
//! convert field by field. Headers are reduced to the `revision` the store
//! decides; the node fills in cluster id, member id and raft term.

use crate::kv::KeyValue;
use crate::record::KvRef;

/// etcd's `RangeRequest.SortOrder`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum SortOrder {
    /// No sorting (key order) — unless the target is not `Key`, in which
    /// case etcd sorts ascending.
    #[default]
    None,
    /// Smallest first.
    Ascend,
    /// Largest first.
    Descend,
}

/// etcd's `RangeRequest.SortTarget`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum SortTarget {
    /// By key.
    #[default]
    Key,
    /// By version.
    Version,
    /// By create revision.
    Create,
    /// By mod revision.
    Mod,
    /// By value bytes.
    Value,
}

/// etcd's `RangeRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct RangeRequest {
    /// First key (must not be empty).
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// See [`crate::KeyRange::new`].
    #[serde(with = "serde_bytes")]
    pub range_end: Vec<u8>,
    /// Most keys returned; `<= 0` is no limit.
    pub limit: i64,
    /// Read at this revision; `<= 0` is the current one.
    pub revision: i64,
    /// Sort order.
    pub sort_order: SortOrder,
    /// Sort field.
    pub sort_target: SortTarget,
    /// Leave values out.
    pub keys_only: bool,
    /// Only count.
    pub count_only: bool,
    /// Keep kvs with `mod_revision >= this` (0: no bound).
    pub min_mod_revision: i64,
    /// Keep kvs with `mod_revision <= this` (0: no bound).
    pub max_mod_revision: i64,
    /// Keep kvs with `create_revision >= this` (0: no bound).
    pub min_create_revision: i64,
    /// Keep kvs with `create_revision <= this` (0: no bound).
    pub max_create_revision: i64,
}

impl RangeRequest {
    /// A plain read of `[key, range_end)`.
    pub fn new(key: impl Into<Vec<u8>>, range_end: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            range_end: range_end.into(),
            ..Self::default()
        }
    }
}

/// A range answered from a [`crate::ReadView`]: borrowed key-values.
#[derive(Debug, Clone)]
pub struct RangeResult<'a> {
    /// Matching key-values after filters, sort and limit.
    pub kvs: Vec<KvRef<'a>>,
    /// Keys in the range at the read revision, before filters and limit.
    pub count: i64,
    /// Whether `limit` cut matching key-values off.
    pub more: bool,
    /// Header revision: the store's current revision (not the read one).
    pub revision: i64,
}

impl RangeResult<'_> {
    /// Owned copy.
    pub fn to_response(&self) -> RangeResponse {
        RangeResponse {
            kvs: self.kvs.iter().map(KvRef::to_key_value).collect(),
            count: self.count,
            more: self.more,
            revision: self.revision,
        }
    }
}

/// etcd's `RangeResponse`, owned (inside txn responses).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct RangeResponse {
    /// Matching key-values.
    pub kvs: Vec<KeyValue>,
    /// See [`RangeResult::count`].
    pub count: i64,
    /// See [`RangeResult::more`].
    pub more: bool,
    /// Header revision.
    pub revision: i64,
}

/// etcd's `PutRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct PutRequest {
    /// The key (must not be empty).
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// The value.
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// Lease to attach, 0 for none.
    pub lease: i64,
    /// Return the previous key-value.
    pub prev_kv: bool,
    /// Keep the current value (error if the key does not exist).
    pub ignore_value: bool,
    /// Keep the current lease (error if the key does not exist).
    pub ignore_lease: bool,
}

impl PutRequest {
    /// A plain put.
    pub fn new(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
            ..Self::default()
        }
    }
}

/// etcd's `PutResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct PutResponse {
    /// Header revision (the put's revision).
    pub revision: i64,
    /// The previous key-value, when asked for and present.
    pub prev_kv: Option<KeyValue>,
}

/// etcd's `DeleteRangeRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct DeleteRangeRequest {
    /// First key (must not be empty).
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// See [`crate::KeyRange::new`].
    #[serde(with = "serde_bytes")]
    pub range_end: Vec<u8>,
    /// Return the deleted key-values.
    pub prev_kv: bool,
}

impl DeleteRangeRequest {
    /// Delete `[key, range_end)`.
    pub fn new(key: impl Into<Vec<u8>>, range_end: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            range_end: range_end.into(),
            prev_kv: false,
        }
    }
}

/// etcd's `DeleteRangeResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct DeleteRangeResponse {
    /// Header revision: the delete's revision, or the unchanged current one
    /// when nothing was deleted.
    pub revision: i64,
    /// Keys deleted.
    pub deleted: i64,
    /// The deleted key-values, when asked for.
    pub prev_kvs: Vec<KeyValue>,
}

/// etcd's `Compare.CompareResult`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum CompareResult {
    /// `==`
    Equal,
    /// `>`
    Greater,
    /// `<`
    Less,
    /// `!=`
    NotEqual,
}

/// etcd's `Compare.target` with its `target_union` value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum CompareTarget {
    /// Compare the version.
    Version(i64),
    /// Compare the create revision.
    Create(i64),
    /// Compare the mod revision.
    Mod(i64),
    /// Compare the value bytes.
    Value(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Compare the lease id.
    Lease(i64),
}

/// etcd's `Compare`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Compare {
    /// How to compare.
    pub result: CompareResult,
    /// What to compare, against which value.
    pub target: CompareTarget,
    /// The key.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// Non-empty: every key in `[key, range_end)` must satisfy the compare.
    #[serde(with = "serde_bytes")]
    pub range_end: Vec<u8>,
}

/// etcd's `RequestOp`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RequestOp {
    /// A range.
    Range(RangeRequest),
    /// A put.
    Put(PutRequest),
    /// A delete.
    DeleteRange(DeleteRangeRequest),
    /// A nested transaction.
    Txn(TxnRequest),
}

/// etcd's `TxnRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct TxnRequest {
    /// All must hold for `success` to run, else `failure` runs.
    pub compare: Vec<Compare>,
    /// Ops when every compare holds.
    pub success: Vec<RequestOp>,
    /// Ops otherwise.
    pub failure: Vec<RequestOp>,
}

/// etcd's `ResponseOp`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ResponseOp {
    /// For a range.
    Range(RangeResponse),
    /// For a put.
    Put(PutResponse),
    /// For a delete.
    DeleteRange(DeleteRangeResponse),
    /// For a nested txn.
    Txn(TxnResponse),
}

/// etcd's `TxnResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct TxnResponse {
    /// Header revision. For the outer txn: the txn's revision (or the
    /// current one when it changed nothing). Nested txns report 0, as etcd
    /// 3.5 leaves their header unset.
    pub revision: i64,
    /// Whether the compares held.
    pub succeeded: bool,
    /// One response per op of the branch that ran.
    pub responses: Vec<ResponseOp>,
}

/// etcd's `HashKVResponse` fields the store computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashKv {
    /// crc32 (IEEE) over the records, see [`crate::ReadView::hash_kv`].
    pub hash: u32,
    /// The compacted revision when hashed.
    pub compact_revision: i64,
    /// The store's current revision (header revision).
    pub revision: i64,
}

/// A write's outcome plus the events it produced, in (main, sub) order, for
/// the watch hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied<R> {
    /// The response.
    pub response: R,
    /// Events, empty when nothing changed.
    pub events: Vec<crate::Event>,
}
