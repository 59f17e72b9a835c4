//! Watchers: long watch streams over the whole key space, each event
//! recorded with the header revision of the response that carried it and
//! its arrival time, for the checker's watch guarantees (ordered, no gaps,
//! no duplicates, agreeing with the final log).
//!
//! A stream that breaks (its member killed, a timeout) is reopened on the
//! next member from the last received revision + 1 and recorded as a new
//! [`WatchRecord`], so every record is one stream as one member served it.

use std::time::Duration;

use ferrocd_net::pb::etcdserverpb::kv_client::KvClient;
use ferrocd_net::pb::etcdserverpb::watch_client::WatchClient;
use ferrocd_net::pb::etcdserverpb::{
    RangeRequest, WatchCreateRequest, WatchRequest, WatchResponse, watch_request,
};
use ferrocd_net::pb::mvccpb;
use tokio::time::Instant;
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};

use super::Clock;
use crate::history::{Event, EventKind, Kv, WatchEvent, WatchRecord};

/// Pause before reopening a broken stream (on another member).
const REOPEN_BACKOFF: Duration = Duration::from_millis(300);

/// Everything: key `\0` with range end `\0` is etcd's "all keys".
pub const ALL: &[u8] = b"\0";

/// One watcher's assignment.
#[derive(Debug, Clone)]
pub struct Plan {
    pub id: u32,
    pub urls: Vec<String>,
    /// The member it starts on; it moves to the next after an error.
    pub first: usize,
    /// Watch from revision 1 instead of from the revision at its start.
    pub from_one: bool,
}

/// A watch event as history records it.
pub fn event_of(e: &mvccpb::Event) -> Event {
    let kv = e.kv.clone().unwrap_or_default();
    Event {
        kind: if e.r#type == mvccpb::event::EventType::Delete as i32 {
            EventKind::Delete
        } else {
            EventKind::Put
        },
        kv: Kv {
            key: String::from_utf8_lossy(&kv.key).into_owned(),
            value: String::from_utf8_lossy(&kv.value).into_owned(),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease,
        },
    }
}

/// A channel with no per-request timeout (a watch stream lives for the
/// whole round); only the connect is bounded.
fn stream_channel(url: &str) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(url.to_string())?
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy())
}

/// Open a watch on every key from `start_revision` at `url`; the sender
/// keeps the request stream open (dropping it cancels the watch).
pub async fn open(
    url: &str,
    start_revision: i64,
) -> anyhow::Result<(
    tokio::sync::mpsc::Sender<WatchRequest>,
    tonic::Streaming<WatchResponse>,
)> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: ALL.to_vec(),
                range_end: ALL.to_vec(),
                start_revision,
                ..Default::default()
            },
        )),
    })
    .await?;
    let mut client = WatchClient::new(stream_channel(url)?);
    let stream = tokio::time::timeout(
        Duration::from_secs(3),
        client.watch(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
    .await
    .map_err(|_| anyhow::anyhow!("watch not opened in 3 s"))??
    .into_inner();
    Ok((tx, stream))
}

/// Run a watcher until `until`; returns its streams.
pub async fn run(plan: Plan, clock: Clock, until: Instant) -> Vec<WatchRecord> {
    let n = plan.urls.len();
    let mut member = plan.first;
    let mut records = Vec::new();
    // The revision to start the next stream at (0: not chosen yet).
    let mut next = if plan.from_one { 1 } else { 0 };
    while Instant::now() < until {
        let url = plan.urls[member].clone();
        let start = clock.now();
        if next == 0 {
            // "From the revision at its start": the member's current
            // revision + 1, read first so the record names it.
            let r = tokio::time::timeout(
                Duration::from_secs(3),
                KvClient::new(stream_channel(&url).expect("valid URL")).range(RangeRequest {
                    key: b"k/".to_vec(),
                    serializable: true,
                    limit: 1,
                    ..Default::default()
                }),
            )
            .await;
            match r {
                Ok(Ok(r)) => next = r.into_inner().header.map_or(0, |h| h.revision) + 1,
                _ => {
                    member = (member + 1) % n;
                    tokio::time::sleep(REOPEN_BACKOFF).await;
                    continue;
                }
            }
        }
        let mut rec = WatchRecord {
            watcher: plan.id,
            member,
            prefix: String::new(),
            start_revision: next,
            start,
            end: start,
            events: Vec::new(),
            closed: String::new(),
        };
        match open(&url, next).await {
            Err(e) => rec.closed = format!("open failed: {e}"),
            Ok((_keep, mut stream)) => loop {
                let left = until.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, stream.next()).await {
                    Err(_) => {
                        rec.closed = "cancelled by harness".into();
                        break;
                    }
                    Ok(None) => {
                        rec.closed = "stream ended".into();
                        break;
                    }
                    Ok(Some(Err(e))) => {
                        rec.closed = format!("{:?}: {}", e.code(), e.message());
                        break;
                    }
                    Ok(Some(Ok(resp))) => {
                        let time = clock.now();
                        let header = resp.header.as_ref().map_or(0, |h| h.revision);
                        for e in &resp.events {
                            let ev = event_of(e);
                            next = ev.kv.mod_revision + 1;
                            rec.events.push(WatchEvent {
                                header,
                                time,
                                event: ev,
                            });
                        }
                        if resp.canceled {
                            rec.closed = format!(
                                "canceled by server: {} (compact revision {})",
                                resp.cancel_reason, resp.compact_revision
                            );
                            break;
                        }
                    }
                }
            },
        }
        rec.end = clock.now();
        let broke = rec.closed != "cancelled by harness";
        records.push(rec);
        if broke {
            member = (member + 1) % n;
            tokio::time::sleep(REOPEN_BACKOFF).await;
        }
    }
    records
}
