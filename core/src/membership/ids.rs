//! Member and cluster ids, kept in `member/ids` so a restart keeps them
//! whatever the flags say: derived from the flags by etcd's rule
//! ([`crate::membership::derive`]) for a new cluster; a joining member
//! discovers its own from the cluster.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use ferrocd_net::EtcdError;
use ferrocd_net::tls::ClientConfig;

use crate::config::{ClusterState, Config};
use crate::membership::derive::{cluster_id, member_id, url_strings};
use crate::raft::{KIND_MEMBERS, Member};

/// Cluster and member ids (etcd computes them the same way: sha1 of the
/// peer URLs + token, and of the member ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    /// Cluster id.
    pub cluster_id: u64,
    /// This member's id.
    pub member_id: u64,
}

/// Read or create `member/ids` (cluster id and member id, hex, one per
/// line), durably: a restart keeps its ids whatever the flags say, as
/// etcd keeps them in its WAL.
pub(crate) async fn load_or_create_ids(
    member_dir: &Path,
    cfg: &Config,
    dialer: Option<Arc<ClientConfig>>,
) -> anyhow::Result<Ids> {
    let path = member_dir.join("ids");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let mut it = text.lines().map(|l| {
            u64::from_str_radix(l.trim(), 16).with_context(|| format!("{}: bad id", path.display()))
        });
        let cluster_id = it.next().context("ids file is empty")??;
        let member_id = it.next().context("ids file has no member id")??;
        return Ok(Ids {
            cluster_id,
            member_id,
        });
    }
    if cfg.initial_cluster_state == ClusterState::Existing {
        let ids = discover_ids(cfg, dialer).await?;
        write_ids(member_dir, ids)?;
        return Ok(ids);
    }
    let mut members = Vec::new();
    let mut me = None;
    for (name, urls) in &cfg.initial_cluster {
        let id = member_id(&url_strings(urls), &cfg.initial_cluster_token);
        if *name == cfg.name {
            me = Some(id);
        }
        members.push(id);
    }
    let Some(member_id) = me else {
        bail!(
            "couldn't find local name {:?} in the initial cluster configuration",
            cfg.name
        );
    };
    let ids = Ids {
        cluster_id: cluster_id(&members),
        member_id,
    };
    write_ids(member_dir, ids)?;
    Ok(ids)
}

/// Write `member/ids` durably.
pub(crate) fn write_ids(member_dir: &Path, ids: Ids) -> anyhow::Result<()> {
    let path = member_dir.join("ids");
    let tmp = member_dir.join("ids.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "{:016x}\n{:016x}", ids.cluster_id, ids.member_id)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(member_dir)?.sync_all()?;
    Ok(())
}

/// etcd's join (`--initial-cluster-state existing`): ask the other members
/// of `--initial-cluster` for the cluster's membership and find this member
/// (added before with MemberAdd) by its peer URLs.
async fn discover_ids(cfg: &Config, dialer: Option<Arc<ClientConfig>>) -> anyhow::Result<Ids> {
    let mine = url_strings(&cfg.initial_advertise_peer_urls);
    let mut last = String::from("no other member in --initial-cluster");
    for _ in 0..30 {
        for urls in cfg.initial_cluster.values() {
            let urls = url_strings(urls);
            if urls == mine {
                continue;
            }
            let probe = Member {
                peer_urls: urls,
                ..Member::default()
            };
            let Some(addr) = probe.peer_addr() else {
                continue;
            };
            let client = ferrocd_net::peer::PeerClient::new(
                addr.clone(),
                ferrocd_net::peer::Hello {
                    cluster_id: 0,
                    from: 0,
                    to: 0,
                },
            )
            .with_tls(probe.peer_tls().then(|| dialer.clone()).flatten());
            let r = client
                .call(KIND_MEMBERS, Vec::new(), Duration::from_secs(2))
                .await;
            match r {
                Ok(bytes) => {
                    let r: Result<(u64, Vec<(u64, Member)>), EtcdError> =
                        crate::raft::decode(&bytes)?;
                    let (cluster_id, members) = r.map_err(|e| anyhow::anyhow!("{addr}: {e}"))?;
                    crate::membership::verify::validate_join(cfg, cluster_id, &members)
                        .map_err(anyhow::Error::msg)?;
                    let me = members.iter().find(|(_, m)| {
                        let mut a = m.peer_urls.clone();
                        let mut b = mine.clone();
                        a.sort();
                        b.sort();
                        a == b
                    });
                    let Some((member_id, _)) = me else {
                        bail!(
                            "the cluster (asked {addr}) has no member with peer URLs {mine:?}: \
                             add it first with `etcdctl member add`"
                        );
                    };
                    return Ok(Ids {
                        cluster_id,
                        member_id: *member_id,
                    });
                }
                Err(e) => last = e.to_string(),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("could not reach the existing cluster: {last}")
}
