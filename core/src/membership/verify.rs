//! etcd's checks of the bootstrap flags, made only when a member starts
//! without data (etcd's `VerifyBootstrap` for `--initial-cluster-state
//! new`, `VerifyJoinExisting` for `existing`): a restart on a data dir
//! keeps the membership it has and ignores these flags, as etcd does.
//!
//! The messages are etcd 3.5.1's, word for word (core/tests/ops compares
//! them with a real etcd's):
//! - `couldn't find local name "a" in the initial cluster configuration`;
//! - `--initial-cluster has a=URL but missing from
//!   --initial-advertise-peer-urls=URLS (DETAIL)`, and the reverse
//!   `--initial-advertise-peer-urls has URL but missing from
//!   --initial-cluster=a=URLS` (etcd names the advertised URLs there), or
//!   `failed to resolve URLS to match --initial-cluster=a=URLS (DETAIL)`
//!   when the two sets hold the same URLs a different number of times;
//! - `initial cluster a=URL,b=URL has duplicate url`.
//!
//! Host names other than `localhost` are resolved before comparing (as
//! etcd does, once; etcd retries for up to 30 s on failure, this compares
//! an unresolvable name as written).

use std::collections::{BTreeMap, BTreeSet};
use std::net::ToSocketAddrs;

use url::Url;

use crate::config::{ClusterState, Config};
use crate::membership::derive::{member_id, url_string as show, url_strings};

/// The checks etcd makes before bootstrapping without data; `Err` holds
/// etcd's message.
pub(crate) fn verify(cfg: &Config) -> Result<(), String> {
    has_local_member(cfg)?;
    if cfg.initial_cluster_state == ClusterState::New {
        advertise_matches_cluster(cfg)?;
    }
    if has_duplicate_url(&cfg.initial_cluster) {
        return Err(format!(
            "initial cluster {} has duplicate url",
            urls_map(&cfg.initial_cluster)
        ));
    }
    Ok(())
}

fn has_local_member(cfg: &Config) -> Result<(), String> {
    if cfg.initial_cluster.contains_key(&cfg.name) {
        Ok(())
    } else {
        Err(format!(
            "couldn't find local name {:?} in the initial cluster configuration",
            cfg.name
        ))
    }
}

/// etcd's `URLsMap.String()`: every `name=url`, sorted, comma-joined.
fn urls_map(m: &BTreeMap<String, Vec<Url>>) -> String {
    let mut pairs: Vec<String> = m
        .iter()
        .flat_map(|(name, urls)| urls.iter().map(move |u| format!("{name}={}", show(u))))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
fn go_quoted(v: &[String]) -> String {
    let inner: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", inner.join(" "))
}

/// `u` with its host resolved to an address (not `localhost`, as etcd).
fn resolved(u: &Url) -> String {
    let s = show(u);
    let (Some(host), Some(port)) = (u.host_str(), u.port()) else {
        return s;
    };
    if host == "localhost" || matches!(u.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_))) {
        return s;
    }
    match (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
    {
        Some(addr) => format!("{}://{addr}", u.scheme()),
        None => s,
    }
}

/// etcd's `URLStringsEqual` of the sorted advertised and initial URLs:
/// `Err` holds its explanation.
fn urls_equal(advertised: &[Url], initial: &[Url]) -> Result<(), String> {
    let mut a: Vec<String> = advertised.iter().map(show).collect();
    let mut b: Vec<String> = initial.iter().map(show).collect();
    a.sort();
    b.sort();
    if a.len() != b.len() {
        return Err(format!("len({}) != len({})", go_quoted(&a), go_quoted(&b)));
    }
    let mut ra: Vec<(String, String)> = advertised.iter().map(|u| (resolved(u), show(u))).collect();
    let mut rb: Vec<(String, String)> = initial.iter().map(|u| (resolved(u), show(u))).collect();
    ra.sort();
    rb.sort();
    for ((xa, fa), (xb, fb)) in ra.iter().zip(&rb) {
        if xa != xb {
            return Err(format!(
                "{xa:?}(resolved from {fa:?}) != {xb:?}(resolved from {fb:?})"
            ));
        }
    }
    Ok(())
}

fn advertise_matches_cluster(cfg: &Config) -> Result<(), String> {
    let initial = cfg
        .initial_cluster
        .get(&cfg.name)
        .cloned()
        .unwrap_or_default();
    let advertised = &cfg.initial_advertise_peer_urls;
    let Err(detail) = urls_equal(advertised, &initial) else {
        return Ok(());
    };
    let mut ap: Vec<String> = advertised.iter().map(show).collect();
    ap.sort();
    let ap_set: BTreeSet<String> = ap.iter().cloned().collect();
    let init_set: BTreeSet<String> = initial.iter().map(show).collect();
    let missing: Vec<String> = init_set
        .iter()
        .filter(|u| !ap_set.contains(*u))
        .map(|u| format!("{}={u}", cfg.name))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "--initial-cluster has {} but missing from --initial-advertise-peer-urls={} ({detail})",
            missing.join(","),
            ap.join(",")
        ));
    }
    let own = BTreeMap::from([(cfg.name.clone(), advertised.clone())]);
    let missing: Vec<String> = ap_set
        .iter()
        .filter(|u| !init_set.contains(*u))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "--initial-advertise-peer-urls has {} but missing from --initial-cluster={}",
            missing.join(","),
            urls_map(&own)
        ));
    }
    Err(format!(
        "failed to resolve {} to match --initial-cluster={} ({detail})",
        ap.join(","),
        urls_map(&own)
    ))
}

/// etcd's `ValidateClusterAndAssignIDs` for a member joining with
/// `--initial-cluster-state existing`: `existing` is the cluster's
/// membership as a peer reported it (cluster `cluster_id`), and
/// `--initial-cluster` must list exactly its members, by peer URLs.
/// `Err` holds etcd 3.5.1's message (the cluster printed as etcd prints
/// it, members in id order; removed ids are not reported by the peer and
/// print empty).
pub(crate) fn validate_join(
    cfg: &Config,
    cluster_id: u64,
    existing: &[(u64, crate::raft::Member)],
) -> Result<(), String> {
    let mut ems = existing.to_vec();
    ems.sort_by_key(|(id, _)| *id);
    let mut lms: Vec<(u64, Vec<Url>)> = cfg
        .initial_cluster
        .values()
        .map(|urls| {
            let id = member_id(&url_strings(urls), &cfg.initial_cluster_token);
            (id, urls.clone())
        })
        .collect();
    lms.sort_by_key(|(id, _)| *id);
    let cluster = {
        let members: Vec<String> = ems
            .iter()
            .map(|(id, m)| {
                format!(
                    "&{{ID:{id:x} RaftAttributes:{{PeerURLs:[{}] IsLearner:false}} \
                     Attributes:{{Name:{} ClientURLs:[{}]}}}}",
                    m.peer_urls.join(" "),
                    m.name,
                    m.client_urls.join(" ")
                )
            })
            .collect();
        format!(
            "{{ClusterID:{cluster_id:x} Members:[{}] RemovedMemberIDs:[]}}",
            members.join(" ")
        )
    };
    if ems.len() != lms.len() {
        return Err(format!(
            "error validating peerURLs {cluster}: member count is unequal"
        ));
    }
    for (id, m) in &ems {
        let theirs: Vec<Url> = m
            .peer_urls
            .iter()
            .filter_map(|u| Url::parse(u).ok())
            .collect();
        let mut last = "<nil>".to_string();
        let found = lms.iter().any(|(_, ours)| match urls_equal(&theirs, ours) {
            Ok(()) => true,
            Err(e) => {
                last = e;
                false
            }
        });
        if !found {
            return Err(format!(
                "error validating peerURLs {cluster}: PeerURLs: no match found for existing \
                 member ({id:x}, [{}]), last resolver error ({last})",
                m.peer_urls.join(" ")
            ));
        }
    }
    Ok(())
}

/// etcd's `CheckDuplicateURL`: one URL under two names, or twice anywhere.
fn has_duplicate_url(m: &BTreeMap<String, Vec<Url>>) -> bool {
    let mut seen = BTreeSet::new();
    m.values().flatten().any(|u| !seen.insert(show(u)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: &[&str]) -> Config {
        crate::config::parse(args.iter().copied(), &[])
            .expect("flags parse")
            .config
    }

    fn err(args: &[&str]) -> String {
        verify(&cfg(args)).expect_err("refused")
    }

    const ADV: &str = "--initial-advertise-peer-urls";
    const IC: &str = "--initial-cluster";

    #[test]
    fn matching_flags_pass() {
        let ok = cfg(&[
            "--name",
            "a",
            ADV,
            "http://127.0.0.1:2380",
            IC,
            "a=http://127.0.0.1:2380,b=http://127.0.0.1:2381",
        ]);
        assert_eq!(verify(&ok), Ok(()));
        // Order does not matter.
        let ok = cfg(&[
            "--name",
            "a",
            ADV,
            "http://127.0.0.1:2382,http://127.0.0.1:2381",
            IC,
            "a=http://127.0.0.1:2381,a=http://127.0.0.1:2382",
        ]);
        assert_eq!(verify(&ok), Ok(()));
    }

    #[test]
    fn messages_are_etcds() {
        assert_eq!(
            err(&[
                "--name",
                "a",
                ADV,
                "http://127.0.0.1:23801",
                IC,
                "b=http://127.0.0.1:23801"
            ]),
            "couldn't find local name \"a\" in the initial cluster configuration"
        );
        assert_eq!(
            err(&[
                "--name",
                "a",
                ADV,
                "http://127.0.0.1:23801",
                IC,
                "a=http://127.0.0.1:23901"
            ]),
            "--initial-cluster has a=http://127.0.0.1:23901 but missing from \
             --initial-advertise-peer-urls=http://127.0.0.1:23801 \
             (\"http://127.0.0.1:23801\"(resolved from \"http://127.0.0.1:23801\") != \
             \"http://127.0.0.1:23901\"(resolved from \"http://127.0.0.1:23901\"))"
        );
        assert_eq!(
            err(&[
                "--name",
                "a",
                ADV,
                "http://127.0.0.1:23801,http://127.0.0.1:23802",
                IC,
                "a=http://127.0.0.1:23801",
            ]),
            "--initial-advertise-peer-urls has http://127.0.0.1:23802 but missing from \
             --initial-cluster=a=http://127.0.0.1:23801,a=http://127.0.0.1:23802"
        );
        assert_eq!(
            err(&[
                "--name",
                "a",
                ADV,
                "http://127.0.0.1:23801",
                IC,
                "a=http://127.0.0.1:23801,a=http://127.0.0.1:23801",
            ]),
            "failed to resolve http://127.0.0.1:23801 to match \
             --initial-cluster=a=http://127.0.0.1:23801 \
             (len([\"http://127.0.0.1:23801\"]) != \
             len([\"http://127.0.0.1:23801\" \"http://127.0.0.1:23801\"]))"
        );
        assert_eq!(
            err(&[
                "--name",
                "a",
                ADV,
                "http://127.0.0.1:23801",
                IC,
                "a=http://127.0.0.1:23801,b=http://127.0.0.1:23801",
            ]),
            "initial cluster a=http://127.0.0.1:23801,b=http://127.0.0.1:23801 has duplicate url"
        );
    }

    #[test]
    fn joining_skips_the_advertise_check_but_not_the_others() {
        let join = cfg(&[
            "--name",
            "a",
            "--initial-cluster-state",
            "existing",
            ADV,
            "http://127.0.0.1:23801",
            IC,
            "a=http://127.0.0.1:23999,b=http://127.0.0.1:23998",
        ]);
        assert_eq!(verify(&join), Ok(()));
        let join = cfg(&[
            "--name",
            "c",
            "--initial-cluster-state",
            "existing",
            ADV,
            "http://127.0.0.1:23801",
            IC,
            "a=http://127.0.0.1:23999",
        ]);
        assert!(
            verify(&join)
                .unwrap_err()
                .starts_with("couldn't find local name")
        );
    }
}
