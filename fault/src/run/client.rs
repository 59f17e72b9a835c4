//! The clients: sequential loops of seeded-random operations, each one
//! recorded as an [`Operation`] with its invocation and completion times.
//!
//! A client sends one request at a time to one member over tonic (no
//! retries; a per-request timeout, [`REQUEST_TIMEOUT`]). Keys come from a
//! small set (`k/0` … `k/{keys-1}`), so reads, CAS and deletes contend;
//! every put writes a value unique in the run (`c<client>-<counter>`), so
//! a value names the write that put it. Lease keys (`l/c<client>-<n>`)
//! are written once under a fresh lease and only go by revoke or expiry.
//!
//! Outcomes: a server answer is `Ok`; any error is `Unknown` (a write may
//! still apply later; for a read, the checker ignores it). No error is
//! recorded as `Fail`: over gRPC the harness cannot tell "not applied"
//! from "not answered" for any error except a few etcd documents, and a
//! wrong `Fail` would make the checker's verdict wrong, not just weak.
//!
//! After an error a client waits [`ERROR_BACKOFF`] (a dead member refuses
//! connections in microseconds, and a flood of unknown writes makes the
//! history harder to check without testing more). Roaming clients then
//! move to the next member they may use.

use std::time::Duration;

use ferrocd_net::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use ferrocd_net::pb::etcdserverpb::kv_client::KvClient;
use ferrocd_net::pb::etcdserverpb::lease_client::LeaseClient;
use ferrocd_net::pb::etcdserverpb::{
    Compare, DeleteRangeRequest, LeaseGrantRequest, LeaseRevokeRequest, PutRequest, RangeRequest,
    RequestOp, TxnRequest, request_op, response_op,
};
use ferrocd_net::pb::mvccpb::KeyValue;
use tokio::time::Instant;
use tonic::transport::Channel;

use super::Clock;
use super::cluster::channel;
use super::rng::Rng;
use crate::history::{Call, Kv, Operation, Outcome, Response};

/// The per-request bound. etcd answers a request without a leader after
/// its request timeout (5 s + 2 election timeouts); 3 s keeps a client
/// cycling during an election-free outage and is well above a healthy
/// round trip (milliseconds).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause after an error before the next request.
pub const ERROR_BACKOFF: Duration = Duration::from_millis(200);

/// Which operations a client chooses from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// Everything: puts, deletes, CAS, both kinds of reads, leases.
    Full,
    /// Puts and CAS only (the leader-kill scenario's writers).
    Writes,
}

/// One client's assignment.
#[derive(Debug, Clone)]
pub struct Plan {
    pub id: u32,
    /// Client URLs of all members, by index.
    pub urls: Vec<String>,
    /// Members this client may use, first the one it starts on.
    pub members: Vec<usize>,
    /// Move to the next allowed member after an error.
    pub roams: bool,
    pub mix: Mix,
    pub keys: usize,
    pub seed: u64,
}

/// The key `k/<n>`.
pub fn key(n: usize) -> String {
    format!("k/{n}")
}

fn kv_of(k: &KeyValue) -> Kv {
    Kv {
        key: String::from_utf8_lossy(&k.key).into_owned(),
        value: String::from_utf8_lossy(&k.value).into_owned(),
        create_revision: k.create_revision,
        mod_revision: k.mod_revision,
        version: k.version,
        lease: k.lease,
    }
}

fn error_text(s: &tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

struct Client {
    plan: Plan,
    rng: Rng,
    at: usize,
    kv: KvClient<Channel>,
    lease: LeaseClient<Channel>,
    counter: u64,
    /// The newest mod_revision this client saw per key (0: absent or
    /// unknown), for choosing CAS expectations that can hold.
    seen: Vec<i64>,
    /// Leases this client granted and has not revoked.
    leases: Vec<i64>,
    ops: Vec<Operation>,
}

/// Run a client until `until`; returns its operations in order.
pub async fn run(plan: Plan, clock: Clock, until: Instant) -> anyhow::Result<Vec<Operation>> {
    let rng = Rng::stream(plan.seed, 1000 + u64::from(plan.id));
    let ch = channel(&plan.urls[plan.members[0]], REQUEST_TIMEOUT)?;
    let mut c = Client {
        seen: vec![0; plan.keys],
        kv: KvClient::new(ch.clone()),
        lease: LeaseClient::new(ch),
        plan,
        rng,
        at: 0,
        counter: 0,
        leases: Vec::new(),
        ops: Vec::new(),
    };
    while Instant::now() < until {
        let failed = c.step(&clock).await;
        if failed {
            tokio::time::sleep(ERROR_BACKOFF).await;
            if c.plan.roams && c.plan.members.len() > 1 {
                c.at = (c.at + 1) % c.plan.members.len();
                let ch = channel(&c.plan.urls[c.member()], REQUEST_TIMEOUT)?;
                c.kv = KvClient::new(ch.clone());
                c.lease = LeaseClient::new(ch);
            }
        }
    }
    Ok(c.ops)
}

impl Client {
    fn member(&self) -> usize {
        self.plan.members[self.at]
    }

    fn value(&mut self) -> String {
        self.counter += 1;
        format!("c{}-{}", self.plan.id, self.counter)
    }

    /// One operation (two for a lease grant followed by its put); returns
    /// whether the last one failed.
    async fn step(&mut self, clock: &Clock) -> bool {
        let k = self.rng.below(self.plan.keys);
        let roll = self.rng.range(0, 100);
        match self.plan.mix {
            Mix::Writes => {
                if roll < 50 {
                    self.put(clock, k).await
                } else {
                    self.cas(clock, k).await
                }
            }
            // Percentages: put 24, CAS 20, delete 8, linearizable get 20,
            // serializable get 12, lease grant + put 9, revoke 7.
            Mix::Full => match roll {
                0..24 => self.put(clock, k).await,
                24..44 => self.cas(clock, k).await,
                44..52 => self.delete(clock, k).await,
                52..72 => self.get(clock, k, false).await,
                72..84 => self.get(clock, k, true).await,
                84..93 => self.grant_and_put(clock).await,
                _ => match self.leases.len() {
                    0 => self.grant_and_put(clock).await,
                    n => {
                        let id = self.leases.swap_remove(self.rng.below(n));
                        self.revoke(clock, id).await
                    }
                },
            },
        }
    }

    fn record(&mut self, start: u64, clock: &Clock, call: Call, outcome: Outcome) -> bool {
        let failed = !matches!(outcome, Outcome::Ok(_));
        self.ops.push(Operation {
            client: self.plan.id,
            member: self.member(),
            start,
            end: clock.now(),
            call,
            outcome,
        });
        failed
    }

    async fn put(&mut self, clock: &Clock, k: usize) -> bool {
        let (key, value) = (key(k), self.value());
        let start = clock.now();
        let r = self
            .kv
            .put(PutRequest {
                key: key.clone().into_bytes(),
                value: value.clone().into_bytes(),
                ..Default::default()
            })
            .await;
        let outcome = match r {
            Ok(r) => {
                let revision = r.into_inner().header.map_or(0, |h| h.revision);
                self.seen[k] = revision;
                Outcome::Ok(Response::Put { revision })
            }
            Err(e) => Outcome::Unknown {
                error: error_text(&e),
            },
        };
        self.record(
            start,
            clock,
            Call::Put {
                key,
                value,
                lease: None,
            },
            outcome,
        )
    }

    async fn cas(&mut self, clock: &Clock, k: usize) -> bool {
        let (key, value) = (key(k), self.value());
        // Mostly the last revision seen (it holds if nobody wrote since),
        // sometimes "absent" (holds after a delete).
        let expect = if self.rng.chance(20) { 0 } else { self.seen[k] };
        // As etcd's clients test absence: create_revision == 0. Any other
        // expectation compares mod_revision (history.rs: `expect`).
        let (target, union) = if expect == 0 {
            (CompareTarget::Create, TargetUnion::CreateRevision(0))
        } else {
            (CompareTarget::Mod, TargetUnion::ModRevision(expect))
        };
        let start = clock.now();
        let r = self
            .kv
            .txn(TxnRequest {
                compare: vec![Compare {
                    result: CompareResult::Equal as i32,
                    target: target as i32,
                    key: key.clone().into_bytes(),
                    target_union: Some(union),
                    ..Default::default()
                }],
                success: vec![RequestOp {
                    request: Some(request_op::Request::RequestPut(PutRequest {
                        key: key.clone().into_bytes(),
                        value: value.clone().into_bytes(),
                        ..Default::default()
                    })),
                }],
                failure: vec![RequestOp {
                    request: Some(request_op::Request::RequestRange(RangeRequest {
                        key: key.clone().into_bytes(),
                        ..Default::default()
                    })),
                }],
            })
            .await;
        let outcome = match r {
            Ok(r) => {
                let r = r.into_inner();
                let revision = r.header.map_or(0, |h| h.revision);
                let mut current = None;
                if r.succeeded {
                    self.seen[k] = revision;
                } else {
                    for op in &r.responses {
                        if let Some(response_op::Response::ResponseRange(rr)) = &op.response {
                            current = rr.kvs.first().map(kv_of);
                        }
                    }
                    self.seen[k] = current.as_ref().map_or(0, |c| c.mod_revision);
                }
                Outcome::Ok(Response::Cas {
                    revision,
                    succeeded: r.succeeded,
                    current,
                })
            }
            Err(e) => Outcome::Unknown {
                error: error_text(&e),
            },
        };
        self.record(start, clock, Call::Cas { key, expect, value }, outcome)
    }

    async fn delete(&mut self, clock: &Clock, k: usize) -> bool {
        let key = key(k);
        let start = clock.now();
        let r = self
            .kv
            .delete_range(DeleteRangeRequest {
                key: key.clone().into_bytes(),
                ..Default::default()
            })
            .await;
        let outcome = match r {
            Ok(r) => {
                let r = r.into_inner();
                self.seen[k] = 0;
                Outcome::Ok(Response::Delete {
                    revision: r.header.map_or(0, |h| h.revision),
                    deleted: r.deleted,
                })
            }
            Err(e) => Outcome::Unknown {
                error: error_text(&e),
            },
        };
        self.record(start, clock, Call::Delete { key }, outcome)
    }

    async fn get(&mut self, clock: &Clock, k: usize, serializable: bool) -> bool {
        let key = key(k);
        let start = clock.now();
        let r = self
            .kv
            .range(RangeRequest {
                key: key.clone().into_bytes(),
                serializable,
                ..Default::default()
            })
            .await;
        let outcome = match r {
            Ok(r) => {
                let r = r.into_inner();
                let kv = r.kvs.first().map(kv_of);
                self.seen[k] = kv.as_ref().map_or(0, |c| c.mod_revision);
                Outcome::Ok(Response::Get {
                    revision: r.header.map_or(0, |h| h.revision),
                    kv,
                })
            }
            Err(e) => Outcome::Unknown {
                error: error_text(&e),
            },
        };
        self.record(start, clock, Call::Get { key, serializable }, outcome)
    }

    /// LeaseGrant, then (if granted) a put of a fresh lease key under it.
    async fn grant_and_put(&mut self, clock: &Clock) -> bool {
        let ttl = self.rng.range(3, 9) as i64;
        let start = clock.now();
        let r = self
            .lease
            .lease_grant(LeaseGrantRequest { ttl, id: 0 })
            .await;
        let id = match r {
            Ok(r) => {
                let r = r.into_inner();
                if !r.error.is_empty() {
                    let error = r.error.clone();
                    return self.record(
                        start,
                        clock,
                        Call::LeaseGrant { ttl },
                        Outcome::Unknown { error },
                    );
                }
                self.record(
                    start,
                    clock,
                    Call::LeaseGrant { ttl },
                    Outcome::Ok(Response::LeaseGrant {
                        revision: r.header.map_or(0, |h| h.revision),
                        id: r.id,
                        ttl: r.ttl,
                    }),
                );
                r.id
            }
            Err(e) => {
                return self.record(
                    start,
                    clock,
                    Call::LeaseGrant { ttl },
                    Outcome::Unknown {
                        error: error_text(&e),
                    },
                );
            }
        };
        self.leases.push(id);
        let (key, value) = (
            format!("l/c{}-{}", self.plan.id, self.counter + 1),
            self.value(),
        );
        let start = clock.now();
        let r = self
            .kv
            .put(PutRequest {
                key: key.clone().into_bytes(),
                value: value.clone().into_bytes(),
                lease: id,
                ..Default::default()
            })
            .await;
        let outcome = match r {
            Ok(r) => Outcome::Ok(Response::Put {
                revision: r.into_inner().header.map_or(0, |h| h.revision),
            }),
            Err(e) => Outcome::Unknown {
                error: error_text(&e),
            },
        };
        self.record(
            start,
            clock,
            Call::Put {
                key,
                value,
                lease: Some(id),
            },
            outcome,
        )
    }

    async fn revoke(&mut self, clock: &Clock, id: i64) -> bool {
        let start = clock.now();
        let r = self.lease.lease_revoke(LeaseRevokeRequest { id }).await;
        let outcome = match r {
            Ok(r) => Outcome::Ok(Response::LeaseRevoke {
                revision: r.into_inner().header.map_or(0, |h| h.revision),
            }),
            Err(e) => Outcome::Unknown {
                error: error_text(&e),
            },
        };
        self.record(start, clock, Call::LeaseRevoke { id }, outcome)
    }
}
