//! etcd's derivations, which the rest of membership builds on: member
//! and cluster ids (sha1 of peer URLs and token, of member ids) and the
//! text form of a URL etcd compares and prints.

use sha1::{Digest, Sha1};

/// etcd's member id: sha1(sorted peer URLs joined + cluster token), first
/// 8 bytes big-endian.
pub fn member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut h = Sha1::new();
    h.update(urls.concat().as_bytes());
    h.update(token.as_bytes());
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

/// etcd's cluster id: sha1 of the sorted member ids (8 bytes BE each).
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut h = Sha1::new();
    for id in ids {
        h.update(id.to_be_bytes());
    }
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

/// A URL as etcd compares and prints it: its text without a trailing `/`.
pub(crate) fn url_string(u: &url::Url) -> String {
    u.as_str().trim_end_matches('/').to_string()
}

/// [`url_string`] of each.
pub(crate) fn url_strings(urls: &[url::Url]) -> Vec<String> {
    urls.iter().map(url_string).collect()
}
