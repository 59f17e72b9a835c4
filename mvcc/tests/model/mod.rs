//! A plain model of etcd 3.5's KV semantics on std maps, one function per
//! operation, for property tests of the store. It keeps the full history
//! of every key (compaction only moves the bound), so it shares no data
//! structure or algorithm with the store.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashSet};

use ferrocd_mvcc::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResponse, Error, Event,
    EventKind, KeyRange, KeyValue, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp,
    ResponseOp, SortOrder, SortTarget, TxnRequest, TxnResponse,
};

/// Deletes as `(key, range_end)`.
type Dels = Vec<(Vec<u8>, Vec<u8>)>;

/// The model store.
#[derive(Debug, Clone)]
pub struct Model {
    pub rev: i64,
    pub compacted: i64,
    /// key → (main revision, state after it: `None` = deleted).
    pub history: BTreeMap<Vec<u8>, Vec<(i64, Option<KeyValue>)>>,
    pub leases: BTreeSet<i64>,
    /// Every event ever, in order.
    pub events: Vec<Event>,
}

impl Default for Model {
    fn default() -> Self {
        Self {
            rev: 1,
            compacted: -1,
            history: BTreeMap::new(),
            leases: BTreeSet::new(),
            events: Vec::new(),
        }
    }
}

/// A write in progress: revision `begin + 1`, `changes` so far.
struct Tx {
    begin: i64,
    changes: usize,
    events: Vec<Event>,
}

impl Tx {
    fn read_rev(&self) -> i64 {
        self.begin + i64::from(self.changes > 0)
    }
}

impl Model {
    /// A key's state at `rev`.
    pub fn kv_at(&self, key: &[u8], rev: i64) -> Option<KeyValue> {
        let h = self.history.get(key)?;
        h.iter()
            .rev()
            .find(|(r, _)| *r <= rev)
            .and_then(|(_, kv)| kv.clone())
    }

    /// Keys alive at `rev` in `range`, with their state, in key order.
    pub fn alive(&self, range: &KeyRange, rev: i64) -> Vec<KeyValue> {
        self.history
            .keys()
            .filter(|k| range.contains(k) && !range.is_empty())
            .filter_map(|k| self.kv_at(k, rev))
            .collect()
    }

    fn range_at(&self, req: &RangeRequest, current: i64) -> Result<RangeResponse, Error> {
        if req.key.is_empty() {
            return Err(Error::EmptyKey);
        }
        if req.revision > current {
            return Err(Error::FutureRevision {
                current_revision: current,
            });
        }
        let at = if req.revision <= 0 {
            current
        } else {
            req.revision
        };
        if at < self.compacted {
            return Err(Error::Compacted {
                compact_revision: self.compacted,
            });
        }
        let all = self.alive(&KeyRange::new(&req.key, &req.range_end), at);
        let count = all.len() as i64;
        if req.count_only {
            return Ok(RangeResponse {
                kvs: vec![],
                count,
                more: false,
                revision: current,
            });
        }
        // etcd quirk: with sort order NONE and no filter, the limit (+1) is
        // applied in key order before the implied ascending sort of a
        // non-KEY target.
        let pushdown = req.sort_order == SortOrder::None
            && req.min_mod_revision == 0
            && req.max_mod_revision == 0
            && req.min_create_revision == 0
            && req.max_create_revision == 0
            && req.limit > 0;
        let take = if pushdown {
            req.limit as usize + 1
        } else {
            usize::MAX
        };
        let mut kvs: Vec<KeyValue> = all
            .into_iter()
            .take(take)
            .filter(|kv| req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
            .filter(|kv| req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
            .filter(|kv| {
                req.max_create_revision == 0 || kv.create_revision <= req.max_create_revision
            })
            .filter(|kv| {
                req.min_create_revision == 0 || kv.create_revision >= req.min_create_revision
            })
            .collect();
        let mut order = req.sort_order;
        if req.sort_target != SortTarget::Key && order == SortOrder::None {
            order = SortOrder::Ascend;
        }
        let field = |kv: &KeyValue| -> (Vec<u8>, i64) {
            match req.sort_target {
                SortTarget::Key => (kv.key.clone(), 0),
                SortTarget::Version => (vec![], kv.version),
                SortTarget::Create => (vec![], kv.create_revision),
                SortTarget::Mod => (vec![], kv.mod_revision),
                SortTarget::Value => (kv.value.clone(), 0),
            }
        };
        match order {
            SortOrder::None => {}
            SortOrder::Ascend => kvs.sort_by_key(|kv| field(kv)),
            SortOrder::Descend => kvs.sort_by_key(|kv| std::cmp::Reverse(field(kv))),
        }
        let mut more = false;
        if req.limit > 0 && kvs.len() > req.limit as usize {
            kvs.truncate(req.limit as usize);
            more = true;
        }
        if req.keys_only {
            for kv in &mut kvs {
                kv.value.clear();
            }
        }
        Ok(RangeResponse {
            kvs,
            count,
            more,
            revision: current,
        })
    }

    /// etcd Range at the current revision.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, Error> {
        self.range_at(req, self.rev)
    }

    fn lease_of(&self, key: &[u8], rev: i64) -> i64 {
        self.kv_at(key, rev).map_or(0, |kv| kv.lease)
    }

    fn raw_put(&mut self, tx: &mut Tx, key: &[u8], value: Vec<u8>, lease: i64) -> Option<KeyValue> {
        let rev = tx.begin + 1;
        let prev = self.kv_at(key, rev);
        let (create, version) = match &prev {
            Some(p) => (p.create_revision, p.version + 1),
            None => (rev, 1),
        };
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision: create,
            mod_revision: rev,
            version,
            value,
            lease,
        };
        self.history
            .entry(key.to_vec())
            .or_default()
            .push((rev, Some(kv.clone())));
        tx.changes += 1;
        tx.events.push(Event {
            kind: EventKind::Put,
            kv,
            prev_kv: prev.clone(),
        });
        prev
    }

    fn raw_delete(&mut self, tx: &mut Tx, key: &[u8]) -> KeyValue {
        let rev = tx.begin + 1;
        let prev = self.kv_at(key, rev).expect("alive");
        self.history
            .entry(key.to_vec())
            .or_default()
            .push((rev, None));
        tx.changes += 1;
        let kv = KeyValue {
            key: key.to_vec(),
            mod_revision: rev,
            ..KeyValue::default()
        };
        tx.events.push(Event {
            kind: EventKind::Delete,
            kv,
            prev_kv: Some(prev.clone()),
        });
        prev
    }

    fn begin(&self) -> Tx {
        Tx {
            begin: self.rev,
            changes: 0,
            events: Vec::new(),
        }
    }

    fn end(&mut self, tx: Tx) -> Vec<Event> {
        if tx.changes > 0 {
            self.rev = tx.begin + 1;
        }
        self.events.extend(tx.events.iter().cloned());
        tx.events
    }

    fn do_put(&mut self, tx: &mut Tx, req: &PutRequest) -> Result<PutResponse, Error> {
        let cur = self.kv_at(&req.key, tx.read_rev());
        if (req.ignore_value || req.ignore_lease) && cur.is_none() {
            return Err(Error::KeyNotFound);
        }
        let value = if req.ignore_value {
            cur.as_ref().unwrap().value.clone()
        } else {
            req.value.clone()
        };
        let lease = if req.ignore_lease {
            cur.as_ref().unwrap().lease
        } else {
            req.lease
        };
        let prev = self.raw_put(tx, &req.key, value, lease);
        Ok(PutResponse {
            revision: tx.begin + 1,
            prev_kv: if req.prev_kv { prev } else { None },
        })
    }

    fn do_delete(&mut self, tx: &mut Tx, req: &DeleteRangeRequest) -> DeleteRangeResponse {
        let keys: Vec<Vec<u8>> = self
            .alive(&KeyRange::new(&req.key, &req.range_end), tx.read_rev())
            .into_iter()
            .map(|kv| kv.key)
            .collect();
        let mut prev_kvs = Vec::new();
        for k in &keys {
            let p = self.raw_delete(tx, k);
            if req.prev_kv {
                prev_kvs.push(p);
            }
        }
        let revision = if !keys.is_empty() || tx.changes > 0 {
            tx.begin + 1
        } else {
            tx.begin
        };
        DeleteRangeResponse {
            revision,
            deleted: keys.len() as i64,
            prev_kvs,
        }
    }

    fn check_put(req: &PutRequest) -> Result<(), Error> {
        if req.key.is_empty() {
            return Err(Error::EmptyKey);
        }
        if req.ignore_value && !req.value.is_empty() {
            return Err(Error::ValueProvided);
        }
        if req.ignore_lease && req.lease != 0 {
            return Err(Error::LeaseProvided);
        }
        Ok(())
    }

    /// etcd Put.
    pub fn put(&mut self, req: &PutRequest) -> Result<(PutResponse, Vec<Event>), Error> {
        Self::check_put(req)?;
        if req.lease != 0 && !self.leases.contains(&req.lease) {
            return Err(Error::LeaseNotFound);
        }
        let mut tx = self.begin();
        let resp = self.do_put(&mut tx, req)?;
        Ok((resp, self.end(tx)))
    }

    /// etcd DeleteRange.
    pub fn delete_range(
        &mut self,
        req: &DeleteRangeRequest,
    ) -> Result<(DeleteRangeResponse, Vec<Event>), Error> {
        if req.key.is_empty() {
            return Err(Error::EmptyKey);
        }
        let mut tx = self.begin();
        let resp = self.do_delete(&mut tx, req);
        Ok((resp, self.end(tx)))
    }

    fn check_ops(ops: &[RequestOp]) -> Result<(), Error> {
        for op in ops {
            match op {
                RequestOp::Range(r) if r.key.is_empty() => return Err(Error::EmptyKey),
                RequestOp::Put(p) => Self::check_put(p)?,
                RequestOp::DeleteRange(d) if d.key.is_empty() => return Err(Error::EmptyKey),
                RequestOp::Txn(t) => {
                    Self::check_ops(&t.success)?;
                    Self::check_ops(&t.failure)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Is `k` in the delete `(key, range_end)` as etcd's interval check sees it?
    fn del_hits(d: &(Vec<u8>, Vec<u8>), k: &[u8]) -> bool {
        if d.1.is_empty() {
            d.0 == k
        } else {
            d.0.as_slice() <= k && k < d.1.as_slice()
        }
    }

    /// etcd checkIntervals.
    fn intervals(ops: &[RequestOp]) -> Result<(HashSet<Vec<u8>>, Dels), Error> {
        let mut dels: Vec<(Vec<u8>, Vec<u8>)> = ops
            .iter()
            .filter_map(|op| {
                if let RequestOp::DeleteRange(d) = op {
                    Some((d.key.clone(), d.range_end.clone()))
                } else {
                    None
                }
            })
            .collect();
        let mut puts = HashSet::new();
        for op in ops {
            if let RequestOp::Txn(t) = op {
                let (pt, dt) = Self::intervals(&t.success)?;
                let (pe, de) = Self::intervals(&t.failure)?;
                for k in &pt {
                    if puts.contains(k) || dels.iter().any(|d| Self::del_hits(d, k)) {
                        return Err(Error::DuplicateKey);
                    }
                    puts.insert(k.clone());
                }
                for k in &pe {
                    if (puts.contains(k) && !pt.contains(k))
                        || dels.iter().any(|d| Self::del_hits(d, k))
                    {
                        return Err(Error::DuplicateKey);
                    }
                    puts.insert(k.clone());
                }
                dels.extend(dt);
                dels.extend(de);
            }
        }
        for op in ops {
            if let RequestOp::Put(p) = op {
                if puts.contains(&p.key) || dels.iter().any(|d| Self::del_hits(d, &p.key)) {
                    return Err(Error::DuplicateKey);
                }
                puts.insert(p.key.clone());
            }
        }
        Ok((puts, dels))
    }

    fn compare_one(&self, c: &Compare) -> bool {
        let kvs = self.alive(&KeyRange::new(&c.key, &c.range_end), self.rev);
        let check = |kv: &KeyValue| {
            let ord = match &c.target {
                CompareTarget::Value(v) => kv.value.cmp(v),
                CompareTarget::Version(v) => kv.version.cmp(v),
                CompareTarget::Create(v) => kv.create_revision.cmp(v),
                CompareTarget::Mod(v) => kv.mod_revision.cmp(v),
                CompareTarget::Lease(v) => kv.lease.cmp(v),
            };
            match c.result {
                CompareResult::Equal => ord.is_eq(),
                CompareResult::NotEqual => ord.is_ne(),
                CompareResult::Greater => ord.is_gt(),
                CompareResult::Less => ord.is_lt(),
            }
        };
        if kvs.is_empty() {
            return !matches!(c.target, CompareTarget::Value(_)) && check(&KeyValue::default());
        }
        kvs.iter().all(check)
    }

    /// Branch choices, pre-order, all against the state before the txn.
    fn path(&self, t: &TxnRequest, out: &mut Vec<bool>) {
        let ok = t.compare.iter().all(|c| self.compare_one(c));
        out.push(ok);
        for op in if ok { &t.success } else { &t.failure } {
            if let RequestOp::Txn(n) = op {
                self.path(n, out);
            }
        }
    }

    fn chosen_ops<'t>(
        t: &'t TxnRequest,
        path: &mut std::slice::Iter<'_, bool>,
        out: &mut Vec<&'t RequestOp>,
    ) {
        let ok = *path.next().unwrap();
        for op in if ok { &t.success } else { &t.failure } {
            if let RequestOp::Txn(n) = op {
                Self::chosen_ops(n, path, out);
            } else {
                out.push(op);
            }
        }
    }

    fn run(
        &mut self,
        tx: &mut Tx,
        t: &TxnRequest,
        path: &mut std::slice::Iter<'_, bool>,
    ) -> Result<TxnResponse, Error> {
        let ok = *path.next().unwrap();
        let mut responses = Vec::new();
        for op in if ok { &t.success } else { &t.failure } {
            responses.push(match op {
                RequestOp::Range(r) => ResponseOp::Range(self.range_at(r, tx.read_rev()).unwrap()),
                RequestOp::Put(p) => ResponseOp::Put(self.do_put(tx, p)?),
                RequestOp::DeleteRange(d) => ResponseOp::DeleteRange(self.do_delete(tx, d)),
                RequestOp::Txn(n) => ResponseOp::Txn(self.run(tx, n, path)?),
            });
        }
        Ok(TxnResponse {
            revision: 0,
            succeeded: ok,
            responses,
        })
    }

    /// etcd Txn.
    pub fn txn(&mut self, t: &TxnRequest) -> Result<(TxnResponse, Vec<Event>), Error> {
        Self::check_ops(&t.success)?;
        Self::check_ops(&t.failure)?;
        Self::intervals(&t.success)?;
        Self::intervals(&t.failure)?;
        let mut path = Vec::new();
        self.path(t, &mut path);
        let mut ops = Vec::new();
        Self::chosen_ops(t, &mut path.iter(), &mut ops);
        for op in &ops {
            if let RequestOp::Put(p) = op {
                if (p.ignore_value || p.ignore_lease) && self.kv_at(&p.key, self.rev).is_none() {
                    return Err(Error::KeyNotFound);
                }
                if p.lease != 0 && !self.leases.contains(&p.lease) {
                    return Err(Error::LeaseNotFound);
                }
            }
        }
        for op in &ops {
            if let RequestOp::Range(r) = op {
                if r.revision != 0 && r.revision > self.rev {
                    return Err(Error::FutureRevision {
                        current_revision: self.rev,
                    });
                }
                if r.revision != 0 && self.compacted > 0 && r.revision < self.compacted {
                    return Err(Error::Compacted {
                        compact_revision: self.compacted,
                    });
                }
            }
        }
        // etcd panics when an ignore_* put finds its key removed by a
        // from-key delete earlier in the txn; the store fails it cleanly.
        let saved = self.clone();
        let mut tx = self.begin();
        match self.run(&mut tx, t, &mut path.iter()) {
            Ok(mut resp) => {
                resp.revision = tx.read_rev();
                Ok((resp, self.end(tx)))
            }
            Err(e) => {
                *self = saved;
                Err(e)
            }
        }
    }

    /// etcd Compact (the model keeps history; only the bound moves).
    pub fn compact(&mut self, rev: i64) -> Result<i64, Error> {
        if rev <= self.compacted {
            return Err(Error::Compacted {
                compact_revision: self.compacted,
            });
        }
        if rev > self.rev {
            return Err(Error::FutureRevision {
                current_revision: self.rev,
            });
        }
        self.compacted = rev;
        Ok(self.rev)
    }

    pub fn grant(&mut self, id: i64) -> Result<(), Error> {
        if id == 0 {
            return Err(Error::LeaseNotFound);
        }
        if !self.leases.insert(id) {
            return Err(Error::LeaseExists);
        }
        Ok(())
    }

    pub fn revoke(&mut self, id: i64) -> Result<(i64, Vec<Event>), Error> {
        if !self.leases.remove(&id) {
            return Err(Error::LeaseNotFound);
        }
        let keys: Vec<Vec<u8>> = self
            .alive(&KeyRange::new(b"\0", b"\0"), self.rev)
            .into_iter()
            .filter(|kv| kv.lease == id)
            .map(|kv| kv.key)
            .collect();
        let mut tx = self.begin();
        for k in &keys {
            self.raw_delete(&mut tx, k);
        }
        let ev = self.end(tx);
        Ok((self.rev, ev))
    }

    pub fn lease_keys(&self, id: i64) -> Vec<Vec<u8>> {
        self.alive(&KeyRange::new(b"\0", b"\0"), self.rev)
            .into_iter()
            .filter(|kv| kv.lease == id)
            .map(|kv| kv.key)
            .collect()
    }

    /// Watch history after a completed compaction: events with
    /// `from <= main <= to` in `range`; at exactly the compacted revision
    /// deletes are gone (etcd drops tombstones at the bound), and so are
    /// puts of keys deleted in that same revision.
    pub fn history_events(
        &self,
        range: &KeyRange,
        from: i64,
        to: i64,
        prev_kv: bool,
    ) -> Result<Vec<Event>, Error> {
        if from < self.compacted {
            return Err(Error::Compacted {
                compact_revision: self.compacted,
            });
        }
        Ok(self
            .events
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                e.kv.mod_revision >= from
                    && e.kv.mod_revision <= to.min(self.rev)
                    && range.contains(&e.kv.key)
            })
            // At the bound only each key's last change survives, and only
            // if it is a put (a put and a from-key delete of the same key can
            // share one revision; compaction drops both).
            .filter(|(i, e)| {
                e.kv.mod_revision != self.compacted
                    || (e.kind == EventKind::Put
                        && !self.events[i + 1..].iter().any(|l| {
                            l.kv.mod_revision == self.compacted
                                && l.kv.key == e.kv.key
                                && l.kind == EventKind::Delete
                        }))
            })
            .map(|(_, e)| e)
            .map(|e| {
                let mut e = e.clone();
                e.prev_kv = if prev_kv && e.kv.mod_revision > self.compacted {
                    self.kv_at(&e.kv.key, e.kv.mod_revision - 1)
                } else {
                    None
                };
                e
            })
            .collect())
    }
}
