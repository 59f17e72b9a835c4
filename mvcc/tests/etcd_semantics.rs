//! etcd 3.5 edge cases, one test each: revision bookkeeping, request
//! checks, duplicate keys in txns, compaction bounds, count/limit/more,
//! sort, leases.

use ferrocd_mvcc::{
    Compare, CompareResult, CompareTarget, Config, DeleteRangeRequest, Error, EventKind, KeyRange,
    PutRequest, RangeRequest, RequestOp, ResponseOp, SortOrder, SortTarget, Store, TxnRequest,
};

fn put(s: &Store, k: &str, v: &str) -> i64 {
    let mut b = s.write();
    let r = b.put(&PutRequest::new(k, v)).unwrap().response.revision;
    b.commit();
    r
}

fn keys(s: &Store, req: &RangeRequest) -> Vec<String> {
    s.snapshot()
        .range(req)
        .unwrap()
        .kvs
        .iter()
        .map(|kv| String::from_utf8(kv.key().to_vec()).unwrap())
        .collect()
}

#[test]
fn empty_store_is_at_revision_one_and_first_put_gets_two() {
    let s = Store::default();
    assert_eq!(s.revision(), 1);
    assert_eq!(put(&s, "a", "1"), 2);
    let kv = s.snapshot().get(b"a").map(|kv| kv.to_key_value()).unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 2, 1));
}

#[test]
fn noop_delete_and_read_only_txn_do_not_bump_revision() {
    let s = Store::default();
    put(&s, "a", "1");
    let mut b = s.write();
    let d = b.delete_range(&DeleteRangeRequest::new("zz", "")).unwrap();
    assert_eq!((d.response.deleted, d.response.revision), (0, 2));
    assert!(d.events.is_empty());
    let t = b
        .txn(&TxnRequest {
            success: vec![RequestOp::Range(RangeRequest::new("a", ""))],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(t.response.revision, 2);
    assert_eq!(b.revision(), 2);
    b.commit();
    assert_eq!(s.revision(), 2);
}

#[test]
fn put_request_checks() {
    let s = Store::default();
    let mut b = s.write();
    let mut p = PutRequest::new("a", "v");
    p.ignore_value = true;
    assert_eq!(b.put(&p).unwrap_err(), Error::ValueProvided);
    p.value.clear();
    assert_eq!(b.put(&p).unwrap_err(), Error::KeyNotFound);
    let mut q = PutRequest::new("a", "");
    q.ignore_lease = true;
    q.lease = 5;
    assert_eq!(b.put(&q).unwrap_err(), Error::LeaseProvided);
    assert_eq!(
        b.put(&PutRequest::new("", "x")).unwrap_err(),
        Error::EmptyKey
    );
    let mut l = PutRequest::new("a", "x");
    l.lease = 7;
    assert_eq!(b.put(&l).unwrap_err(), Error::LeaseNotFound);
    assert_eq!(b.revision(), 1, "failed requests change nothing");
    b.put(&PutRequest::new("a", "old")).unwrap();
    let r = b.put(&p).unwrap();
    assert_eq!(r.events[0].kv.value, b"old");
    assert_eq!(r.events[0].kv.version, 2);
}

#[test]
fn duplicate_keys_in_txn() {
    let s = Store::default();
    let mut b = s.write();
    let p = |k: &str| RequestOp::Put(PutRequest::new(k, "v"));
    let d = |k: &str, e: &str| RequestOp::DeleteRange(DeleteRangeRequest::new(k, e));
    let txn = |success: Vec<RequestOp>| TxnRequest {
        success,
        ..Default::default()
    };
    assert_eq!(
        b.txn(&txn(vec![p("a"), p("a")])).unwrap_err(),
        Error::DuplicateKey
    );
    assert_eq!(
        b.txn(&txn(vec![d("a", "c"), p("b")])).unwrap_err(),
        Error::DuplicateKey
    );
    assert_eq!(
        b.txn(&txn(vec![p("b"), d("b", "")])).unwrap_err(),
        Error::DuplicateKey
    );
    // Nested put against an outer delete, and two nested puts.
    assert_eq!(
        b.txn(&txn(vec![d("a", "z"), RequestOp::Txn(txn(vec![p("k")]))]))
            .unwrap_err(),
        Error::DuplicateKey
    );
    assert_eq!(
        b.txn(&txn(vec![
            RequestOp::Txn(txn(vec![p("k")])),
            RequestOp::Txn(txn(vec![p("k")]))
        ]))
        .unwrap_err(),
        Error::DuplicateKey
    );
    // Allowed: overlapping deletes, then/else putting the same key, and
    // (etcd quirk) a from-key delete with a put inside it.
    assert!(b.txn(&txn(vec![d("a", "c"), d("b", "d")])).is_ok());
    let both = TxnRequest {
        success: vec![p("k")],
        failure: vec![p("k")],
        ..Default::default()
    };
    assert!(b.txn(&txn(vec![RequestOp::Txn(both)])).is_ok());
    assert!(b.txn(&txn(vec![d("a", "\0"), p("b")])).is_ok());
    // Success and failure are checked separately.
    assert!(
        b.txn(&TxnRequest {
            success: vec![p("x")],
            failure: vec![p("x")],
            ..Default::default()
        })
        .is_ok()
    );
}

#[test]
fn txn_ops_see_earlier_writes_at_the_new_revision() {
    let s = Store::default();
    put(&s, "a", "1");
    let mut b = s.write();
    let t = b
        .txn(&TxnRequest {
            compare: vec![Compare {
                result: CompareResult::Equal,
                target: CompareTarget::Value(b"1".to_vec()),
                key: b"a".to_vec(),
                range_end: vec![],
            }],
            success: vec![
                RequestOp::Put(PutRequest::new("a", "2")),
                RequestOp::Range(RangeRequest::new("a", "")),
                RequestOp::Put(PutRequest::new("b", "3")),
            ],
            failure: vec![],
        })
        .unwrap();
    assert!(t.response.succeeded);
    assert_eq!(t.response.revision, 3);
    let ResponseOp::Range(r) = &t.response.responses[1] else {
        panic!()
    };
    assert_eq!(
        (r.kvs[0].value.as_slice(), r.kvs[0].mod_revision, r.revision),
        (&b"2"[..], 3, 3)
    );
    assert_eq!(t.events.len(), 2);
    assert!(t.events.iter().all(|e| e.kv.mod_revision == 3));
}

#[test]
fn compare_over_a_range_needs_every_key() {
    let s = Store::default();
    put(&s, "p/a", "1");
    put(&s, "p/b", "2");
    let mut b = s.write();
    let cmp = |v: i64| Compare {
        result: CompareResult::Greater,
        target: CompareTarget::Mod(v),
        key: b"p/".to_vec(),
        range_end: b"p0".to_vec(),
    };
    let t = |v| TxnRequest {
        compare: vec![cmp(v)],
        ..Default::default()
    };
    assert!(b.txn(&t(1)).unwrap().response.succeeded);
    assert!(!b.txn(&t(2)).unwrap().response.succeeded);
    // A value compare on a missing key always fails; version compares 0.
    let missing = |target| TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal,
            target,
            key: b"nope".to_vec(),
            range_end: vec![],
        }],
        ..Default::default()
    };
    assert!(
        !b.txn(&missing(CompareTarget::Value(vec![])))
            .unwrap()
            .response
            .succeeded
    );
    assert!(
        b.txn(&missing(CompareTarget::Version(0)))
            .unwrap()
            .response
            .succeeded
    );
}

/// etcd 3.5.1: a fresh store reports compact revision -1, `compact(0)`
/// succeeds once, and a second `compact(0)` is `Compacted`.
#[test]
fn compact_zero_on_a_fresh_store() {
    let s = Store::default();
    assert_eq!(s.snapshot().compact_revision(), -1);
    assert_eq!(s.snapshot().hash_kv(0).unwrap().compact_revision, -1);
    let mut b = s.write();
    b.compact(0).unwrap();
    assert_eq!(
        b.compact(0).unwrap_err(),
        Error::Compacted {
            compact_revision: 0
        }
    );
}

#[test]
fn compacted_and_future_revisions() {
    let s = Store::default();
    for i in 0..5 {
        put(&s, "a", &i.to_string());
    }
    let mut b = s.write();
    assert_eq!(
        b.compact(7).unwrap_err(),
        Error::FutureRevision {
            current_revision: 6
        }
    );
    assert_eq!(b.compact(4).unwrap(), 6);
    assert_eq!(
        b.compact(4).unwrap_err(),
        Error::Compacted {
            compact_revision: 4
        }
    );
    assert_eq!(
        b.compact(3).unwrap_err(),
        Error::Compacted {
            compact_revision: 4
        }
    );
    b.commit();
    s.finish_compaction();
    let v = s.snapshot();
    let at = |rev| {
        v.range(&RangeRequest {
            revision: rev,
            ..RangeRequest::new("a", "")
        })
        .map(|r| r.kvs[0].value().to_vec())
    };
    assert_eq!(
        at(3).unwrap_err(),
        Error::Compacted {
            compact_revision: 4
        }
    );
    assert_eq!(
        at(4).unwrap(),
        b"2",
        "reading at the compacted revision works"
    );
    assert_eq!(
        at(7).unwrap_err(),
        Error::FutureRevision {
            current_revision: 6
        }
    );
    assert_eq!(v.record_count(), 3, "revisions 4, 5, 6 remain");
    assert_eq!(
        v.events(&KeyRange::single(b"a"), 3, 10, false, 0)
            .unwrap_err(),
        Error::Compacted {
            compact_revision: 4
        }
    );
    assert_eq!(
        v.events(&KeyRange::single(b"a"), 4, 10, false, 0)
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        v.hash_kv(4).unwrap_err(),
        Error::Compacted {
            compact_revision: 4
        }
    );
}

#[test]
fn compaction_removes_deleted_keys_entirely() {
    let s = Store::default();
    put(&s, "a", "1");
    let mut b = s.write();
    b.delete_range(&DeleteRangeRequest::new("a", "")).unwrap();
    b.compact(3).unwrap();
    assert_eq!(b.compact_step(10), ferrocd_mvcc::CompactProgress::Done);
    b.commit();
    assert_eq!(
        (s.snapshot().key_count(), s.snapshot().record_count()),
        (0, 0)
    );
}

#[test]
fn count_only_limit_and_more() {
    let s = Store::default();
    for k in ["a", "b", "c", "d"] {
        put(&s, k, k);
    }
    let v = s.snapshot();
    let r = v
        .range(&RangeRequest {
            limit: 2,
            ..RangeRequest::new("a", "\0")
        })
        .unwrap();
    assert_eq!((r.kvs.len(), r.count, r.more), (2, 4, true));
    let r = v
        .range(&RangeRequest {
            limit: 4,
            ..RangeRequest::new("a", "\0")
        })
        .unwrap();
    assert_eq!((r.kvs.len(), r.count, r.more), (4, 4, false));
    let r = v
        .range(&RangeRequest {
            count_only: true,
            limit: 1,
            ..RangeRequest::new("\0", "\0")
        })
        .unwrap();
    assert_eq!((r.kvs.len(), r.count, r.more), (0, 4, false));
    // Filters do not reduce count.
    let r = v
        .range(&RangeRequest {
            min_mod_revision: 4,
            ..RangeRequest::new("a", "e")
        })
        .unwrap();
    assert_eq!((r.kvs.len(), r.count), (2, 4));
    let r = v
        .range(&RangeRequest {
            keys_only: true,
            ..RangeRequest::new("b", "")
        })
        .unwrap();
    assert!(r.kvs[0].value().is_empty());
    assert_eq!(r.revision, 5);
}

#[test]
fn sort_orders() {
    let s = Store::default();
    put(&s, "c", "1");
    put(&s, "a", "3");
    put(&s, "b", "2");
    put(&s, "a", "0");
    let req = |sort_order, sort_target| RangeRequest {
        sort_order,
        sort_target,
        ..RangeRequest::new("\0", "\0")
    };
    assert_eq!(
        keys(&s, &req(SortOrder::Descend, SortTarget::Key)),
        ["c", "b", "a"]
    );
    assert_eq!(
        keys(&s, &req(SortOrder::None, SortTarget::Value)),
        ["a", "c", "b"],
        "non-key target sorts ascending"
    );
    assert_eq!(
        keys(&s, &req(SortOrder::Descend, SortTarget::Mod)),
        ["a", "b", "c"]
    );
    assert_eq!(
        keys(&s, &req(SortOrder::Ascend, SortTarget::Create)),
        ["c", "a", "b"]
    );
    assert_eq!(
        keys(&s, &req(SortOrder::Descend, SortTarget::Version)),
        ["a", "b", "c"]
    );
    // Sort before limit when an order is given.
    let mut r = req(SortOrder::Descend, SortTarget::Key);
    r.limit = 1;
    assert_eq!(keys(&s, &r), ["c"]);
}

#[test]
fn lease_revoke_deletes_keys_in_one_revision() {
    let s = Store::default();
    let mut b = s.write();
    assert_eq!(b.lease_grant(0, 10).unwrap_err(), Error::LeaseNotFound);
    b.lease_grant(7, 10).unwrap();
    assert_eq!(b.lease_grant(7, 10).unwrap_err(), Error::LeaseExists);
    for k in ["x", "y", "z"] {
        b.put(&PutRequest {
            lease: 7,
            ..PutRequest::new(k, "v")
        })
        .unwrap();
    }
    // Re-putting "z" without the lease detaches it.
    b.put(&PutRequest::new("z", "w")).unwrap();
    b.commit();
    assert_eq!(s.snapshot().lease_keys(7), [&b"x"[..], &b"y"[..]]);
    let mut b = s.write();
    let r = b.lease_revoke(7).unwrap();
    assert_eq!(r.response, 6);
    assert_eq!(r.events.len(), 2);
    assert!(
        r.events
            .iter()
            .all(|e| e.kind == EventKind::Delete && e.kv.mod_revision == 6)
    );
    assert_eq!(b.lease_revoke(7).unwrap_err(), Error::LeaseNotFound);
    b.lease_grant(8, 10).unwrap();
    assert_eq!(
        b.lease_revoke(8).unwrap().response,
        6,
        "revoking an empty lease bumps nothing"
    );
    b.commit();
    assert!(s.snapshot().get(b"z").is_some());
    assert!(!s.snapshot().has_lease(7));
}

#[test]
fn events_carry_prev_kv_by_policy() {
    let s = Store::new(Config {
        event_prev_kv: ferrocd_mvcc::EventPrevKv::Omit,
        ..Config::default()
    });
    put(&s, "a", "1");
    let mut b = s.write();
    let r = b
        .put(&PutRequest {
            prev_kv: true,
            ..PutRequest::new("a", "2")
        })
        .unwrap();
    assert!(r.events[0].prev_kv.is_none());
    assert_eq!(r.response.prev_kv.unwrap().value, b"1");
    b.commit();
    let h = s
        .snapshot()
        .events(&KeyRange::single(b"a"), 1, 10, true, 0)
        .unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[1].prev_kv.as_ref().unwrap().value, b"1");
}

/// The size `Status` reports grows with writes and shrinks when a
/// compaction drops old revisions.
#[test]
fn size_follows_writes_and_compaction() {
    let store = Store::default();
    assert_eq!(store.snapshot().size_bytes(), 0);
    let mut b = store.write();
    for i in 0..10 {
        b.put(&PutRequest::new("k", vec![b'x'; 100 + i])).unwrap();
    }
    b.commit();
    let full = store.snapshot().size_bytes();
    assert!(full > 10 * 100, "{full}");
    let mut b = store.write();
    b.compact(store.revision()).unwrap();
    b.commit();
    store.finish_compaction();
    let after = store.snapshot().size_bytes();
    assert!(after > 100 && after < full / 5, "{after} of {full}");
}

/// A batch's requests can share one events buffer (`*_into`): each
/// request's events follow the earlier ones with its own revision, and a
/// request that fails leaves the buffer and the revision as they were.
#[test]
fn requests_of_a_batch_append_to_one_events_buffer() {
    let s = Store::default();
    put(&s, "b", "0");
    let mut b = s.write();
    let mut events = Vec::new();
    let r = b.put_into(&PutRequest::new("a", "1"), &mut events).unwrap();
    assert_eq!(r.revision, 3);
    // Fails before changing anything (no such key for ignore_value).
    let bad = PutRequest {
        ignore_value: true,
        ..PutRequest::new("zz", "")
    };
    assert_eq!(b.put_into(&bad, &mut events), Err(Error::KeyNotFound));
    assert_eq!(events.len(), 1);
    assert_eq!(b.revision(), 3);
    // A txn of two puts: one revision, two events after the first.
    let txn = TxnRequest {
        compare: vec![],
        success: vec![
            RequestOp::Put(PutRequest::new("a", "2")),
            RequestOp::Put(PutRequest::new("c", "3")),
        ],
        failure: vec![],
    };
    assert_eq!(b.txn_into(&txn, &mut events).unwrap().revision, 4);
    let del = b
        .delete_range_into(&DeleteRangeRequest::new("b", ""), &mut events)
        .unwrap();
    assert_eq!((del.revision, del.deleted), (5, 1));
    // Deleting nothing: no revision, no event.
    let none = b
        .delete_range_into(&DeleteRangeRequest::new("nope", ""), &mut events)
        .unwrap();
    assert_eq!((none.revision, none.deleted), (5, 0));
    let got: Vec<(EventKind, &[u8], i64)> = events
        .iter()
        .map(|e| (e.kind, &e.kv.key[..], e.kv.mod_revision))
        .collect();
    assert_eq!(
        got,
        vec![
            (EventKind::Put, &b"a"[..], 3),
            (EventKind::Put, &b"a"[..], 4),
            (EventKind::Put, &b"c"[..], 4),
            (EventKind::Delete, &b"b"[..], 5),
        ]
    );
    // The previous key-values ride on the events (the hub's default).
    assert_eq!(events[1].prev_kv.as_ref().unwrap().value, b"1");
    assert_eq!(events[3].prev_kv.as_ref().unwrap().value, b"0");
    b.commit();
    assert_eq!(s.revision(), 5);
}

/// Each physical compaction step reports the revision records it removed
/// (etcd's compacted db keys) and its pause; no step runs without a job.
#[test]
fn compaction_steps_report_removed_records() {
    let s = Store::new(Config {
        compaction_batch: 2,
        ..Config::default()
    });
    for k in ["a", "b", "c"] {
        put(&s, k, "1");
        put(&s, k, "2");
    }
    let mut b = s.write();
    b.compact(s.snapshot().revision()).unwrap();
    b.commit();
    let mut steps = Vec::new();
    s.finish_compaction_observed(|st| steps.push(*st));
    // Two keys, then one: each key's first revision goes.
    let removed: Vec<u64> = steps.iter().map(|st| st.keys_removed).collect();
    assert_eq!(removed, vec![2, 1]);
    assert!(steps.iter().all(|st| st.pause >= st.index));
    let mut again = 0;
    s.finish_compaction_observed(|_| again += 1);
    assert_eq!(again, 0);
}
