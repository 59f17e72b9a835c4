//! After the load: heal everything, wait until the members agree, and
//! read the final state the checker compares the history with.
//!
//! "Agree" is every member answering Status with the same revision and
//! the same applied raft index, twice in a row 200 ms apart (a lease that
//! expires meanwhile moves all of them; two equal polls mean they caught
//! up with each other, not just crossed). The bound is [`SETTLE_TIMEOUT`];
//! a cluster that does not settle is a failed round, and the final read is
//! still made so the history shows how far apart the members were.

use std::time::Duration;

use ferrocd_net::pb::etcdserverpb::HashKvRequest;
use ferrocd_net::pb::etcdserverpb::LeaseLeasesRequest;
use ferrocd_net::pb::etcdserverpb::lease_client::LeaseClient;
use ferrocd_net::pb::etcdserverpb::maintenance_client::MaintenanceClient;
use tokio::time::Instant;
use tokio_stream::StreamExt;

use super::Clock;
use super::cluster::{Cluster, channel};
use super::watcher;
use crate::history::Final;

/// How long the healed cluster gets to agree (a restarted member replays
/// its WAL and catches up in seconds; 60 s allows for a snapshot install
/// on a loaded machine).
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the final watch gets to deliver every event up to the final
/// revision (a few thousand events).
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Heal, settle, read. Problems (no settle, a failed read) go to
/// `problems`; the final state holds whatever could be read.
pub async fn settle_and_read(c: &mut Cluster, clock: &Clock, problems: &mut Vec<String>) -> Final {
    if let Err(e) = c.heal() {
        problems.push(format!("heal: {e:#}"));
    }
    let (revision, reader) = match settle(c).await {
        Ok(r) => (r, 0),
        Err(e) => {
            problems.push(format!("settle: {e:#}"));
            // Read anyway, from the first member that answers, up to what
            // it has, so the history shows what survived.
            let mut found = (0, 0);
            for i in 0..c.len() {
                if let Ok(s) = c.status(i).await {
                    found = (s.header.map_or(0, |h| h.revision), i);
                    break;
                }
            }
            found
        }
    };
    let time = clock.now();
    let url = c.members[reader].client_url();
    let events = match read_events(&url, revision).await {
        Ok(e) => e,
        Err(e) => {
            problems.push(format!("final watch: {e:#}"));
            Vec::new()
        }
    };
    let mut hashes = Vec::new();
    for (i, m) in c.members.iter().enumerate() {
        let r = async {
            let ch = channel(&m.client_url(), Duration::from_secs(10))?;
            let h = MaintenanceClient::new(ch)
                .hash_kv(HashKvRequest { revision })
                .await?
                .into_inner();
            anyhow::Ok((h.hash, h.compact_revision))
        }
        .await;
        hashes.push((i, r.map_err(|e| format!("{e:#}"))));
    }
    let leases = async {
        let ch = channel(&url, Duration::from_secs(5))?;
        let l = LeaseClient::new(ch)
            .lease_leases(LeaseLeasesRequest {})
            .await?
            .into_inner();
        anyhow::Ok(l.leases.iter().map(|l| l.id).collect::<Vec<_>>())
    }
    .await
    .unwrap_or_else(|e| {
        problems.push(format!("final LeaseLeases: {e:#}"));
        Vec::new()
    });
    Final {
        time,
        events,
        revision,
        hashes,
        leases,
    }
}

/// Wait until every member reports the same revision and applied index
/// in two polls in a row; returns that revision.
pub async fn settle(c: &mut Cluster) -> anyhow::Result<i64> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    c.wait_ready(SETTLE_TIMEOUT).await?;
    let mut previous = None;
    let mut last = String::new();
    while Instant::now() < deadline {
        let mut seen = Vec::new();
        for i in 0..c.len() {
            match c.status(i).await {
                Ok(s) => seen.push((s.header.map_or(0, |h| h.revision), s.raft_applied_index)),
                Err(e) => last = format!("m{i}: {e}"),
            }
        }
        if seen.len() == c.len() && seen.iter().all(|s| *s == seen[0]) {
            if previous == Some(seen[0]) {
                return Ok(seen[0].0);
            }
            previous = Some(seen[0]);
        } else {
            last = format!("{last}; (revision, applied) per member {seen:?}");
            previous = None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("members did not agree in {SETTLE_TIMEOUT:?}: {last}")
}

/// Every event from revision 1 through `revision`, by a watch on `url`.
async fn read_events(url: &str, revision: i64) -> anyhow::Result<Vec<crate::history::Event>> {
    let mut events = Vec::new();
    if revision <= 1 {
        // Revision 1 is the empty store: nothing was ever written.
        return Ok(events);
    }
    let (_keep, mut stream) = watcher::open(url, 1).await?;
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let resp = match tokio::time::timeout(left, stream.next()).await {
            Err(_) => anyhow::bail!(
                "events up to revision {revision} not delivered in {READ_TIMEOUT:?} ({} so far)",
                events.len()
            ),
            Ok(None) => anyhow::bail!("final watch ended"),
            Ok(Some(r)) => r?,
        };
        if resp.canceled {
            anyhow::bail!("final watch canceled: {}", resp.cancel_reason);
        }
        let mut done = false;
        for e in &resp.events {
            let ev = watcher::event_of(e);
            if ev.kv.mod_revision > revision {
                done = true;
                continue;
            }
            done |= ev.kv.mod_revision == revision;
            events.push(ev);
        }
        if done {
            break;
        }
    }
    // etcd sends one revision's events together; in case a server splits
    // them, take whatever else of `revision` arrives in the next 200 ms.
    while Instant::now() < deadline
        && let Ok(Some(Ok(resp))) =
            tokio::time::timeout(Duration::from_millis(200), stream.next()).await
    {
        events.extend(
            resp.events
                .iter()
                .map(watcher::event_of)
                .filter(|e| e.kv.mod_revision <= revision),
        );
    }
    Ok(events)
}
