//! The way to the leader: who leads now (waiting for one up to a
//! deadline), and calls to it over the peer port that retry across
//! leader changes and broken connections. Used by every part that must
//! reach the leader: the proposer (forwarded writes), read index,
//! leases, membership.

use std::time::{Duration, Instant};

use ferrocd_net::EtcdError;
use openraft::async_runtime::WatchReceiver;

use crate::raft::{Member, PeerNetwork, Raft};

/// What a member answered over the peer port: its typed `Result`.
pub(crate) fn peer_answer<Resp: for<'a> serde::Deserialize<'a>>(
    bytes: &[u8],
) -> Result<Resp, EtcdError> {
    crate::raft::decode::<Result<Resp, EtcdError>>(bytes).map_err(raft_err)?
}

/// Any other failure, with its text.
pub(crate) fn raft_err(e: impl std::fmt::Display) -> EtcdError {
    EtcdError::Unknown(e.to_string())
}

/// A raft API error as etcd's: not the leader (someone else leads, or
/// nobody does), else the text.
pub(crate) fn leader_err<E>(e: openraft::errors::RaftError<crate::raft::TypeConfig, E>) -> EtcdError
where
    E: std::error::Error
        + openraft::TryAsRef<openraft::errors::ForwardToLeader<crate::raft::TypeConfig>>,
{
    match e.forward_to_leader() {
        Some(f) if f.leader_id.is_none() => EtcdError::NoLeader,
        Some(_) => EtcdError::NotLeader,
        None => raft_err(e),
    }
}

/// This member's way to the leader. Cheap to clone.
#[derive(Clone)]
pub(crate) struct LeaderLink {
    raft: Raft,
    network: PeerNetwork,
    me: u64,
    election_timeout: Duration,
}

impl LeaderLink {
    pub(crate) fn new(
        raft: Raft,
        network: PeerNetwork,
        me: u64,
        election_timeout: Duration,
    ) -> Self {
        LeaderLink {
            raft,
            network,
            me,
            election_timeout,
        }
    }

    /// How long a request waits for a leader before failing.
    pub(crate) fn request_timeout(&self) -> Duration {
        // etcd: 5 s plus two election timeouts.
        Duration::from_secs(5) + 2 * self.election_timeout
    }

    /// The leader as (id, member), waiting up to `deadline` for one.
    pub(crate) async fn leader_until(&self, deadline: Instant) -> Result<(u64, Member), EtcdError> {
        loop {
            let (leader, node) = {
                let m = self.raft.metrics();
                let m = m.borrow_watched();
                let l = m.current_leader;
                let n = l.and_then(|l| m.membership_config.membership().get_node(&l).cloned());
                (l, n)
            };
            if let (Some(l), Some(n)) = (leader, node) {
                return Ok((l, n));
            }
            if Instant::now() >= deadline {
                return Err(EtcdError::NoLeader);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Call the leader over the peer port, retrying (new leader, broken
    /// connection) until the request timeout. Only for requests that may
    /// be delivered twice: reads, keep-alives, and forwarded proposals
    /// (their id makes a second copy take effect once).
    pub(crate) async fn call<Req: serde::Serialize, Resp: for<'a> serde::Deserialize<'a>>(
        &self,
        kind: u8,
        req: &Req,
    ) -> Result<Resp, EtcdError> {
        let deadline = Instant::now() + self.request_timeout();
        let payload = crate::raft::encode(req).map_err(raft_err)?;
        self.call_until(kind, payload, deadline, &mut false).await
    }

    /// [`LeaderLink::call`] with an encoded request, until `deadline`;
    /// sets `sent` once a call may have reached a leader. Answers
    /// `LeaderChanged` when this member leads meanwhile (the caller
    /// retries locally).
    pub(crate) async fn call_until<Resp: for<'a> serde::Deserialize<'a>>(
        &self,
        kind: u8,
        payload: Vec<u8>,
        deadline: Instant,
        sent: &mut bool,
    ) -> Result<Resp, EtcdError> {
        loop {
            let (leader, member) = self.leader_until(deadline).await?;
            if leader == self.me {
                return Err(EtcdError::LeaderChanged);
            }
            let client = self.network.client(leader, &member);
            let left = deadline.saturating_duration_since(Instant::now());
            *sent = true;
            match client.call(kind, payload.clone(), left).await {
                Ok(bytes) => return peer_answer(&bytes),
                Err(ferrocd_net::peer::PeerError::Remote(m)) => {
                    return Err(EtcdError::from_message(&m));
                }
                Err(e) => {
                    if Instant::now() >= deadline {
                        tracing::debug!(error = %e, "leader unreachable");
                        return Err(EtcdError::Timeout);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}
