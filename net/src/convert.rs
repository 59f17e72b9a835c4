//! Protobuf ↔ store types for the KV service, field by field, with etcd's
//! request checks (`v3rpc/key.go`): empty keys, sort options out of range,
//! `ignore_value` with a value, `ignore_lease` with a lease, too many txn
//! operations. A request that fails a check is refused before it reaches
//! the node and changes nothing.

use ferrocd_mvcc as mvcc;

use crate::pb::etcdserverpb as pb;
use crate::pb::mvccpb;
use crate::status::EtcdError;

/// A store key-value as the wire's.
pub fn key_value(kv: mvcc::KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

fn sort_order(v: i32) -> Result<mvcc::SortOrder, EtcdError> {
    use pb::range_request::SortOrder as S;
    match S::try_from(v).map_err(|_| EtcdError::InvalidSortOption)? {
        S::None => Ok(mvcc::SortOrder::None),
        S::Ascend => Ok(mvcc::SortOrder::Ascend),
        S::Descend => Ok(mvcc::SortOrder::Descend),
    }
}

fn sort_target(v: i32) -> Result<mvcc::SortTarget, EtcdError> {
    use pb::range_request::SortTarget as S;
    match S::try_from(v).map_err(|_| EtcdError::InvalidSortOption)? {
        S::Key => Ok(mvcc::SortTarget::Key),
        S::Version => Ok(mvcc::SortTarget::Version),
        S::Create => Ok(mvcc::SortTarget::Create),
        S::Mod => Ok(mvcc::SortTarget::Mod),
        S::Value => Ok(mvcc::SortTarget::Value),
    }
}

/// A checked range request and whether it may be served serializably.
pub fn range_request(r: pb::RangeRequest) -> Result<(mvcc::RangeRequest, bool), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    Ok((
        mvcc::RangeRequest {
            key: r.key,
            range_end: r.range_end,
            limit: r.limit,
            revision: r.revision,
            sort_order: sort_order(r.sort_order)?,
            sort_target: sort_target(r.sort_target)?,
            keys_only: r.keys_only,
            count_only: r.count_only,
            min_mod_revision: r.min_mod_revision,
            max_mod_revision: r.max_mod_revision,
            min_create_revision: r.min_create_revision,
            max_create_revision: r.max_create_revision,
        },
        r.serializable,
    ))
}

/// A checked put request.
pub fn put_request(r: pb::PutRequest) -> Result<mvcc::PutRequest, EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(EtcdError::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(EtcdError::LeaseProvided);
    }
    Ok(mvcc::PutRequest {
        key: r.key,
        value: r.value,
        lease: r.lease,
        prev_kv: r.prev_kv,
        ignore_value: r.ignore_value,
        ignore_lease: r.ignore_lease,
    })
}

/// A checked delete request.
pub fn delete_request(r: pb::DeleteRangeRequest) -> Result<mvcc::DeleteRangeRequest, EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    Ok(mvcc::DeleteRangeRequest {
        key: r.key,
        range_end: r.range_end,
        prev_kv: r.prev_kv,
    })
}

fn compare(c: pb::Compare) -> Result<mvcc::Compare, EtcdError> {
    use pb::compare::{CompareResult as R, TargetUnion as U};
    if c.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    let result = match R::try_from(c.result)
        .map_err(|_| EtcdError::Unknown("invalid compare result".into()))?
    {
        R::Equal => mvcc::CompareResult::Equal,
        R::Greater => mvcc::CompareResult::Greater,
        R::Less => mvcc::CompareResult::Less,
        R::NotEqual => mvcc::CompareResult::NotEqual,
    };
    // etcd reads the union by the `target` field; a missing union value is
    // the zero value of that target.
    use pb::compare::CompareTarget as T;
    let target = match T::try_from(c.target)
        .map_err(|_| EtcdError::Unknown("invalid compare target".into()))?
    {
        T::Version => mvcc::CompareTarget::Version(match c.target_union {
            Some(U::Version(v)) => v,
            _ => 0,
        }),
        T::Create => mvcc::CompareTarget::Create(match c.target_union {
            Some(U::CreateRevision(v)) => v,
            _ => 0,
        }),
        T::Mod => mvcc::CompareTarget::Mod(match c.target_union {
            Some(U::ModRevision(v)) => v,
            _ => 0,
        }),
        T::Value => mvcc::CompareTarget::Value(match c.target_union {
            Some(U::Value(v)) => v,
            _ => Vec::new(),
        }),
        T::Lease => mvcc::CompareTarget::Lease(match c.target_union {
            Some(U::Lease(v)) => v,
            _ => 0,
        }),
    };
    Ok(mvcc::Compare {
        result,
        target,
        key: c.key,
        range_end: c.range_end,
    })
}

fn request_op(op: pb::RequestOp, max_ops: usize) -> Result<mvcc::RequestOp, EtcdError> {
    use pb::request_op::Request as R;
    match op.request {
        Some(R::RequestRange(r)) => Ok(mvcc::RequestOp::Range(range_request(r)?.0)),
        Some(R::RequestPut(r)) => Ok(mvcc::RequestOp::Put(put_request(r)?)),
        Some(R::RequestDeleteRange(r)) => Ok(mvcc::RequestOp::DeleteRange(delete_request(r)?)),
        Some(R::RequestTxn(t)) => Ok(mvcc::RequestOp::Txn(txn_request(t, max_ops)?)),
        // etcd answers an empty op with an empty response; refuse it
        // instead of guessing (no client sends one).
        None => Err(EtcdError::Unknown("etcdserver: empty request op".into())),
    }
}

/// A checked txn: at most `max_ops` compares, and at most `max_ops` ops in
/// each branch (etcd's `--max-txn-ops`, checked per nesting level).
pub fn txn_request(t: pb::TxnRequest, max_ops: usize) -> Result<mvcc::TxnRequest, EtcdError> {
    if t.compare.len() > max_ops || t.success.len() > max_ops || t.failure.len() > max_ops {
        return Err(EtcdError::TooManyOps);
    }
    Ok(mvcc::TxnRequest {
        compare: t
            .compare
            .into_iter()
            .map(compare)
            .collect::<Result<_, _>>()?,
        success: t
            .success
            .into_iter()
            .map(|o| request_op(o, max_ops))
            .collect::<Result<_, _>>()?,
        failure: t
            .failure
            .into_iter()
            .map(|o| request_op(o, max_ops))
            .collect::<Result<_, _>>()?,
    })
}

/// A header for `revision`; cluster, member and term come from the node.
pub fn header(info: &crate::kv::ServerInfo, revision: i64) -> Option<pb::ResponseHeader> {
    Some(pb::ResponseHeader {
        cluster_id: info.cluster_id,
        member_id: info.member_id,
        revision,
        raft_term: info.raft_term,
    })
}

/// The store's range response on the wire.
pub fn range_response(info: &crate::kv::ServerInfo, r: mvcc::RangeResponse) -> pb::RangeResponse {
    pb::RangeResponse {
        header: header(info, r.revision),
        kvs: r.kvs.into_iter().map(key_value).collect(),
        more: r.more,
        count: r.count,
    }
}

/// The store's put response on the wire.
pub fn put_response(info: &crate::kv::ServerInfo, r: mvcc::PutResponse) -> pb::PutResponse {
    pb::PutResponse {
        header: header(info, r.revision),
        prev_kv: r.prev_kv.map(key_value),
    }
}

/// The store's delete response on the wire.
pub fn delete_response(
    info: &crate::kv::ServerInfo,
    r: mvcc::DeleteRangeResponse,
) -> pb::DeleteRangeResponse {
    pb::DeleteRangeResponse {
        header: header(info, r.revision),
        deleted: r.deleted,
        prev_kvs: r.prev_kvs.into_iter().map(key_value).collect(),
    }
}

/// The store's txn response on the wire. As etcd 3.5 (checked through
/// its gateway): only the top-level header carries cluster, member and
/// term; responses inside the txn carry a header with just the revision,
/// and a nested txn's header is empty (revision 0, as the store reports).
pub fn txn_response(info: &crate::kv::ServerInfo, r: mvcc::TxnResponse) -> pb::TxnResponse {
    let mut out = txn_inner(r);
    out.header = header(info, out.header.map_or(0, |h| h.revision));
    out
}

fn txn_inner(r: mvcc::TxnResponse) -> pb::TxnResponse {
    use pb::response_op::Response as R;
    let inner = crate::kv::ServerInfo::default();
    pb::TxnResponse {
        header: header(&inner, r.revision),
        succeeded: r.succeeded,
        responses: r
            .responses
            .into_iter()
            .map(|op| pb::ResponseOp {
                response: Some(match op {
                    mvcc::ResponseOp::Range(x) => R::ResponseRange(range_response(&inner, x)),
                    mvcc::ResponseOp::Put(x) => R::ResponsePut(put_response(&inner, x)),
                    mvcc::ResponseOp::DeleteRange(x) => {
                        R::ResponseDeleteRange(delete_response(&inner, x))
                    }
                    mvcc::ResponseOp::Txn(x) => R::ResponseTxn(txn_inner(x)),
                }),
            })
            .collect(),
    }
}
