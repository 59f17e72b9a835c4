//! `ferroctl snapshot restore`: a fresh ferrocd data dir from an etcd
//! backend file (saved from ferrocd or from etcd), as `etcdutl snapshot
//! restore` makes an etcd data dir.
//!
//! The new cluster gets etcd's ids from `--initial-cluster` and
//! `--initial-cluster-token` (as a new cluster computes them); the data dir
//! holds `member/ids`, an empty `member/wal/` and one snapshot in
//! `member/snap/` with the whole history, the leases and the new
//! membership (see `raft::write_restored_snapshot`). Restoring the same
//! file with the same flags for every member gives one cluster.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferrocd_mvcc as mvcc;
use ferrocd_wal::{self as wal, UringFs};

use crate::backend;
use crate::membership::derive::{cluster_id, member_id, url_strings};
use crate::membership::ids::{Ids, write_ids};
use crate::raft::{Member, write_restored_snapshot};

/// etcdutl's restore flags.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--name`.
    pub name: String,
    /// `--initial-cluster`.
    pub initial_cluster: String,
    /// `--initial-cluster-token`.
    pub initial_cluster_token: String,
    /// `--initial-advertise-peer-urls` (unused by the layout: ids come
    /// from `--initial-cluster`, as etcdutl's).
    pub initial_advertise_peer_urls: String,
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// `--wal-dir` (default `<data-dir>/member/wal`).
    pub wal_dir: Option<PathBuf>,
    /// `--skip-hash-check`.
    pub skip_hash_check: bool,
}

/// What was restored.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The new ids.
    pub ids: Ids,
    /// Store revision.
    pub revision: i64,
    /// The snapshot file written.
    pub snapshot: PathBuf,
}

/// The Go rendering of a byte slice (`[1 2 3]`), as etcdutl prints hashes.
fn go_bytes(b: &[u8]) -> String {
    let v: Vec<String> = b.iter().map(u8::to_string).collect();
    format!("[{}]", v.join(" "))
}

fn dir_is_empty(p: &Path) -> bool {
    match std::fs::read_dir(p) {
        Ok(mut d) => d.next().is_none(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// Restore `file` into a new data dir. Errors carry etcdutl's messages;
/// nothing is created unless the file and the flags are good.
pub fn restore(file: &Path, o: &Options) -> Result<Restored, String> {
    let data =
        std::fs::read(file).map_err(|e| format!("open {}: {}", file.display(), os_msg(&e)))?;
    let cluster =
        crate::config::parse_initial_cluster(&o.initial_cluster).map_err(|e| e.to_string())?;
    let mut members = BTreeMap::new();
    let mut me = None;
    for (name, urls) in &cluster {
        let urls = url_strings(urls);
        let id = member_id(&urls, &o.initial_cluster_token);
        if *name == o.name {
            me = Some(id);
        }
        members.insert(
            id,
            Member {
                name: name.clone(),
                peer_urls: urls,
                client_urls: Vec::new(),
            },
        );
    }
    let Some(member) = me else {
        return Err(format!(
            "couldn't find local name {:?} in the initial cluster configuration",
            o.name
        ));
    };
    if !dir_is_empty(&o.data_dir) {
        return Err(format!(
            "data-dir {:?} not empty or could not be read",
            o.data_dir.display().to_string()
        ));
    }
    let db = match backend::verify(&data, o.skip_hash_check) {
        Ok(db) => db,
        Err(backend::FileError::NoHash(_)) => {
            return Err("snapshot missing hash but --skip-hash-check=false".into());
        }
        Err(backend::FileError::HashMismatch { expected, found }) => {
            let unhex = |s: &str| {
                (0..s.len())
                    .step_by(2)
                    .filter_map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
                    .collect::<Vec<u8>>()
            };
            return Err(format!(
                "expected sha256 {}, got {}",
                go_bytes(&unhex(&expected)),
                go_bytes(&unhex(&found))
            ));
        }
        Err(e) => return Err(e.to_string()),
    };
    let loaded = backend::load(db, mvcc::Config::default()).map_err(|e| e.to_string())?;
    // The raft log starts over: the store's consistent index with it.
    let store = {
        let mut b = loaded.store.write();
        b.set_consistent_index(0);
        b.commit();
        loaded.store
    };
    let ids = Ids {
        cluster_id: cluster_id(&members.keys().copied().collect::<Vec<_>>()),
        member_id: member,
    };
    let fs = UringFs;
    let member_dir = o.data_dir.join("member");
    let io = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
    crate::datadir::write_marker(&o.data_dir).map_err(|e| e.to_string())?;
    wal::create_dir_all_durable(&fs, &member_dir).map_err(|e| io("creating the member dir", &e))?;
    let wal_dir = o.wal_dir.clone().unwrap_or_else(|| member_dir.join("wal"));
    wal::create_dir_all_durable(&fs, &wal_dir).map_err(|e| io("creating the wal dir", &e))?;
    let snap = write_restored_snapshot(&member_dir.join("snap"), &store, members, loaded.auth)
        .map_err(|e| io("writing the snapshot", &e))?;
    write_ids(&member_dir, ids).map_err(|e| io("writing member/ids", &e))?;
    Ok(Restored {
        ids,
        revision: store.revision(),
        snapshot: snap.path,
    })
}

/// An I/O error as Go words it (`no such file or directory`).
fn os_msg(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_lowercase(),
        None => s,
    }
}
