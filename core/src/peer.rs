//! The member's side of the peer port: raft messages into openraft, and
//! the node's own requests (forwarded writes, read indexes, lease
//! keep-alives, published attributes, membership, status) into the parts
//! that answer them. Payloads are postcard;
//! a raft message's answer is openraft's `Result<T, String>`, a node
//! request's a typed `Result<T, EtcdError>` (the caller gets the same
//! error back, not a text to match).

use std::sync::Arc;
use std::time::Instant;

use ferrocd_net::EtcdError;
use ferrocd_net::peer::{Hello, PeerHandler};
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use serde::Serialize;

use crate::leases::Leases;
use crate::liveness::Liveness;
use crate::maintenance::Maintenance;
use crate::membership::Membership;
use crate::proposer::Proposer;
use crate::raft::{
    Command, Encoded, KIND_APPEND, KIND_FORWARD, KIND_LEASE_RENEW, KIND_LEASE_TTL,
    KIND_MEMBER_CHANGE, KIND_MEMBERS, KIND_PRE_VOTE, KIND_PUBLISH, KIND_READ_INDEX, KIND_SNAPSHOT,
    KIND_STATUS, KIND_TRANSFER, KIND_VOTE, Member, Raft, SmShared, SnapshotChunk, SnapshotData,
    TypeConfig, decode, encode,
};
use crate::read_index::ReadIndex;

/// The peer port's TLS: the listener's config (`https://` listen peer
/// URLs) and the dialer's (members with `https://` peer URLs).
#[derive(Debug, Clone, Default)]
pub struct PeerTls {
    /// `--peer-cert-file --peer-key-file [--peer-trusted-ca-file
    /// --peer-client-cert-auth]`, when a listen peer URL is https.
    pub server: Option<ferrocd_net::peer::ListenerTls>,
    /// Trust `--peer-trusted-ca-file` (the system's CAs without it),
    /// present the peer certificate.
    pub dialer: Option<Arc<ferrocd_net::tls::ClientConfig>>,
}

impl PeerTls {
    /// Read the peer TLS files named in `cfg` (a bad one stops the start
    /// with Go's `open <file>: ...` message).
    pub fn from_config(cfg: &crate::config::Config) -> anyhow::Result<PeerTls> {
        use anyhow::Context;
        let server = if cfg.listen_peer_urls.iter().any(|u| u.scheme() == "https") {
            let files = cfg
                .peer_tls
                .server()
                .context("https peer URLs need --peer-cert-file and --peer-key-file")?;
            Some(ferrocd_net::peer::ListenerTls {
                config: files.server_config(&[])?,
                client_san: if cfg.peer_skip_client_san_verification {
                    ferrocd_net::peer::ClientSan::Skip
                } else {
                    ferrocd_net::peer::ClientSan::Verify
                },
            })
        } else {
            None
        };
        let https = |urls: &[url::Url]| urls.iter().any(|u| u.scheme() == "https");
        let dialer = if !cfg.peer_tls.is_empty()
            || cfg.initial_cluster.values().any(|u| https(u))
            || https(&cfg.initial_advertise_peer_urls)
        {
            Some(cfg.peer_tls.dialer().client_config(&[])?)
        } else {
            None
        };
        Ok(PeerTls { server, dialer })
    }
}

/// Serves peer requests for one member: the parts that answer them.
pub(crate) struct PeerService {
    pub(crate) raft: Raft,
    pub(crate) sm: Arc<SmShared>,
    pub(crate) proposer: Arc<Proposer>,
    pub(crate) reads: Arc<ReadIndex>,
    pub(crate) members: Arc<Membership>,
    pub(crate) leases: Arc<Leases>,
    pub(crate) liveness: Arc<Liveness>,
    pub(crate) maintenance: Arc<Maintenance>,
}

/// A node request's answer: its typed `Result` (the caller decodes it
/// as [`crate::leader::peer_answer`]).
fn answer<T: Serialize>(r: Result<T, EtcdError>) -> Result<Vec<u8>, String> {
    encode(&r).map_err(|e| e.to_string())
}

/// A raft message's answer: openraft's result, its error as text.
fn raft_answer<T: Serialize, E: std::fmt::Display>(r: Result<T, E>) -> Result<Vec<u8>, String> {
    encode(&r.map_err(|e| e.to_string())).map_err(|e| e.to_string())
}

impl PeerHandler for PeerService {
    fn accept(&self, hello: &Hello) -> Result<(), String> {
        if *hello
            == (Hello {
                cluster_id: 0,
                from: 0,
                to: 0,
            })
        {
            // A joining member that does not know its ids yet: it may only
            // ask for the membership (see `handle`).
            return Ok(());
        }
        let ids = self.members.ids();
        if hello.cluster_id != ids.cluster_id {
            return Err(format!(
                "request cluster ID mismatch (this member {:x} is in cluster {:x}, the caller {:x} in {:x})",
                ids.member_id, ids.cluster_id, hello.from, hello.cluster_id
            ));
        }
        if hello.to != 0 && hello.to != ids.member_id {
            return Err(format!(
                "member {:x} is not {:x} (peer URLs changed?)",
                ids.member_id, hello.to
            ));
        }
        Ok(())
    }

    /// etcd answers a removed member's peer messages with HTTP 410 and
    /// the member stops: the same here, from the replicated removed ids
    /// (so a member that was down while it was removed learns it too).
    fn is_removed(&self, from: u64) -> bool {
        self.sm.is_removed(from)
    }

    fn ordered(&self, kind: u8) -> bool {
        matches!(kind, KIND_APPEND | KIND_SNAPSHOT)
    }

    fn series(&self, from: u64) -> Option<ferrocd_net::PeerSeries> {
        Some(self.sm.metrics.peer(self.liveness.me(), from))
    }

    async fn handle(&self, from: u64, kind: u8, payload: Vec<u8>) -> Result<Vec<u8>, String> {
        if from == 0 && kind != KIND_MEMBERS {
            return Err("a discovery connection may only ask for the members".into());
        }
        let raft = &self.raft;
        let bad = |e: std::io::Error| format!("undecodable request: {e}");
        match kind {
            KIND_APPEND => {
                let req: AppendEntriesRequest<TypeConfig> = decode(&payload).map_err(bad)?;
                let r = raft.append_entries(req).await;
                if r.as_ref().is_ok_and(|resp| resp.is_success()) {
                    self.liveness.note_leader_contact();
                }
                raft_answer(r)
            }
            KIND_VOTE => {
                let req: VoteRequest<TypeConfig> = decode(&payload).map_err(bad)?;
                raft_answer(raft.vote(req).await)
            }
            KIND_PRE_VOTE => {
                let req: VoteRequest<TypeConfig> = decode(&payload).map_err(bad)?;
                raft_answer(raft.pre_vote(req).await)
            }
            KIND_TRANSFER => {
                let req: TransferLeaderRequest<TypeConfig> = decode(&payload).map_err(bad)?;
                raft_answer(raft.handle_transfer_leader(req).await)
            }
            KIND_SNAPSHOT => {
                let chunk: SnapshotChunk = decode(&payload).map_err(bad)?;
                raft_answer(receive_chunk(raft, &self.sm, chunk).await)
            }
            KIND_FORWARD => {
                // Decoded to refuse a malformed command here, before it
                // could reach the log; the bytes go into the batch as
                // they came.
                let cmd: Command = decode(&payload).map_err(bad)?;
                let cmd = Encoded {
                    id: cmd.id,
                    bytes: payload.into(),
                    local: Some(Arc::new(cmd)),
                };
                answer(self.proposer.propose_here(cmd).await)
            }
            KIND_READ_INDEX => answer(self.reads.here().await),
            KIND_LEASE_RENEW => {
                let id: i64 = decode(&payload).map_err(bad)?;
                answer(self.leases.renew_here(id))
            }
            KIND_LEASE_TTL => {
                let id: i64 = decode(&payload).map_err(bad)?;
                answer(self.leases.ttl_here(id))
            }
            KIND_PUBLISH => {
                let m: Member = decode(&payload).map_err(bad)?;
                answer(self.members.publish_here(from, m).await)
            }
            KIND_MEMBER_CHANGE => {
                let c: ferrocd_net::MemberChange = decode(&payload).map_err(bad)?;
                answer(self.members.change_here(c).await)
            }
            KIND_MEMBERS => answer(Ok(self.members.for_discovery())),
            KIND_STATUS => answer(self.maintenance.status().await),
            k => Err(format!("unknown peer request kind {k}")),
        }
    }
}

/// Append a snapshot chunk to `<snap>/<term>-<index>.snap.incoming`; on
/// the last one, make the file durable under its real name, verify it and
/// install it.
async fn receive_chunk(
    raft: &Raft,
    sm: &Arc<SmShared>,
    c: SnapshotChunk,
) -> Result<Option<openraft::raft::SnapshotResponse<TypeConfig>>, String> {
    let dir = sm.snap_dir().to_path_buf();
    let name = format!("{:016x}-{:016x}.snap", c.term, c.index);
    let incoming = dir.join(format!("{name}.incoming"));
    let done = c.offset + c.data.len() as u64 == c.total;
    let (term, index) = (c.term, c.index);
    let path = incoming.clone();
    let data = c.data;
    let offset = c.offset;
    if offset == 0 {
        *sm.receiving_snapshot.lock().expect("receiving lock") = Some(Instant::now());
    }
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(offset == 0)
            .open(&path)?;
        if f.metadata()?.len() != offset {
            return Err(std::io::Error::other(format!(
                "snapshot chunk at {offset} does not follow the {} bytes received",
                f.metadata()?.len()
            )));
        }
        f.write_all_at(&data, offset)?;
        Ok(())
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    if !done {
        return Ok(None);
    }
    let file = {
        let sm = sm.clone();
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            let synced = Instant::now();
            std::fs::File::open(&incoming)?.sync_all()?;
            let fsync = synced.elapsed();
            std::fs::rename(&incoming, dir.join(&name))?;
            std::fs::File::open(&dir)?.sync_all()?;
            // etcd's `.snap.db` save: the fsync, and the whole receipt
            // from the first chunk to the file under its name.
            let started = sm.receiving_snapshot.lock().expect("receiving lock").take();
            sm.metrics
                .snapshot_db_saved(fsync, started.map_or(fsync, |t| t.elapsed()));
            sm.verify_snapshot(term, index)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?
    };
    tracing::info!(
        term,
        index,
        "received a snapshot from the leader; installing"
    );
    let snapshot = openraft::alias::SnapshotOf::<TypeConfig, SnapshotData> {
        meta: c.meta,
        snapshot: SnapshotData { file },
    };
    raft.install_full_snapshot(c.vote, snapshot)
        .await
        .map(Some)
        .map_err(|e| e.to_string())
}
