//! The v2 store inside an etcd `.snap` file: JSON of a tree of nodes.
//! What etcd 3.4.23 and 3.5.1 write (checked on real files):
//!
//! ```text
//! {"Root": node, "WatcherHub": {...}}           WatcherHub: ignored
//! node: {"Path": "/0/members", "CreatedIndex": n, "ModifiedIndex": n,
//!        "ExpireTime": "...", "Value": "...", "Children": {name: node, ...} | null}
//!
//! /0                                   etcd's own (StoreClusterPrefix)
//! /0/members/<id hex>/raftAttributes   {"peerURLs": [...], "isLearner": true}   (isLearner omitted when false)
//! /0/members/<id hex>/attributes       {"name": "...", "clientURLs": [...]}      (absent until the member publishes)
//! /0/removed_members/<id hex>          empty value
//! /0/version                           cluster version, e.g. "3.5.0"
//! /1                                   v2 user keys (StoreKeysPrefix): /v2/keys/a/b is /1/a/b
//! /2                                   v2 auth (users, roles), when it was ever enabled
//! ```
//!
//! `<id hex>` is the member id in lowercase hex without leading zeros.
//! As in etcd's `nodeToMember`, a member dir holding anything but those
//! two keys, or no `raftAttributes`, is an error. serde_json stops
//! nesting at 128 levels, so a hostile file cannot overflow the stack.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A cluster member, as etcd stores it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Member {
    /// Member id.
    pub id: u64,
    /// `--name` (empty until the member has started and published it).
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs (empty until published).
    pub client_urls: Vec<String>,
    /// A learner (non-voting) member.
    pub is_learner: bool,
}

/// The part of the v2 store that matters when adopting an etcd dir.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct V2Store {
    /// Members, by id.
    pub members: Vec<Member>,
    /// Ids of removed members (they may never rejoin), ascending.
    pub removed: Vec<u64>,
    /// `/0/version`, the cluster version, when set.
    pub cluster_version: Option<String>,
    /// Number of nodes (dirs and keys) under `/1`: v2 user data, written
    /// through etcd's v2 API (3.4 `--enable-v2`). 0 on a v3-only cluster.
    pub user_nodes: u64,
    /// Top-level nodes other than `/0` and `/1` (e.g. `"2"`, v2 auth).
    pub other_roots: Vec<String>,
}

#[derive(Deserialize)]
struct Doc {
    #[serde(rename = "Root")]
    root: Node,
}

#[derive(Deserialize)]
struct Node {
    #[serde(rename = "Value", default)]
    value: String,
    #[serde(rename = "Children", default)]
    children: Option<BTreeMap<String, Node>>,
}

#[derive(Deserialize)]
struct RaftAttributes {
    #[serde(rename = "peerURLs", default)]
    peer_urls: Vec<String>,
    #[serde(rename = "isLearner", default)]
    is_learner: bool,
}

#[derive(Deserialize)]
struct Attributes {
    #[serde(default)]
    name: String,
    #[serde(rename = "clientURLs", default)]
    client_urls: Vec<String>,
}

/// The JSON of a member in a conf change's context (etcd's
/// `membership.Member`: id, raft attributes and attributes in one object).
#[derive(Deserialize)]
pub(crate) struct MemberJson {
    id: u64,
    #[serde(rename = "peerURLs", default)]
    peer_urls: Vec<String>,
    #[serde(rename = "isLearner", default)]
    is_learner: bool,
    #[serde(default)]
    name: String,
    #[serde(rename = "clientURLs", default)]
    client_urls: Vec<String>,
}

impl From<MemberJson> for Member {
    fn from(m: MemberJson) -> Self {
        Self {
            id: m.id,
            name: m.name,
            peer_urls: m.peer_urls,
            client_urls: m.client_urls,
            is_learner: m.is_learner,
        }
    }
}

fn member_id(key: &str, path: &str) -> Result<u64, String> {
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{path}/{key}: not a member id in hex"));
    }
    u64::from_str_radix(key, 16).map_err(|e| format!("{path}/{key}: not a member id: {e}"))
}

fn children(n: &Node) -> impl Iterator<Item = (&String, &Node)> {
    n.children.iter().flat_map(|c| c.iter())
}

/// Nodes in the subtree below `n` (not counting `n`), without recursion.
fn count_below(n: &Node) -> u64 {
    let mut stack = vec![n];
    let mut count = 0u64;
    while let Some(n) = stack.pop() {
        for (_, c) in children(n) {
            count += 1;
            stack.push(c);
        }
    }
    count
}

fn member(id: u64, dir: &Node) -> Result<Member, String> {
    let path = format!("/0/members/{id:x}");
    let mut m = Member {
        id,
        ..Member::default()
    };
    let mut raft = None;
    for (k, v) in children(dir) {
        match k.as_str() {
            "raftAttributes" => {
                let a: RaftAttributes = serde_json::from_str(&v.value)
                    .map_err(|e| format!("{path}/raftAttributes: {e}"))?;
                raft = Some(a);
            }
            "attributes" => {
                let a: Attributes = serde_json::from_str(&v.value)
                    .map_err(|e| format!("{path}/attributes: {e}"))?;
                m.name = a.name;
                m.client_urls = a.client_urls;
            }
            other => return Err(format!("{path}: unexpected key {other:?}")),
        }
    }
    let raft = raft.ok_or_else(|| format!("{path}: no raftAttributes"))?;
    m.peer_urls = raft.peer_urls;
    m.is_learner = raft.is_learner;
    Ok(m)
}

impl V2Store {
    /// Parse the v2 store JSON of a snapshot; the error says what is wrong
    /// and where in the tree.
    pub fn parse(json: &[u8]) -> Result<Self, String> {
        let doc: Doc = serde_json::from_slice(json).map_err(|e| format!("JSON: {e}"))?;
        let mut out = V2Store::default();
        for (name, node) in children(&doc.root) {
            match name.as_str() {
                "0" => {}
                "1" => out.user_nodes = count_below(node),
                other => out.other_roots.push(other.to_string()),
            }
        }
        let Some(internal) = doc.root.children.as_ref().and_then(|c| c.get("0")) else {
            return Ok(out);
        };
        for (name, node) in children(internal) {
            match name.as_str() {
                "members" => {
                    for (key, dir) in children(node) {
                        let id = member_id(key, "/0/members")?;
                        out.members.push(member(id, dir)?);
                    }
                }
                "removed_members" => {
                    for (key, _) in children(node) {
                        out.removed.push(member_id(key, "/0/removed_members")?);
                    }
                }
                "version" => out.cluster_version = Some(node.value.clone()),
                _ => {}
            }
        }
        out.members.sort_by_key(|m| m.id);
        out.removed.sort_unstable();
        Ok(out)
    }
}
