//! The built-in web console (`--listen-ui-urls`, off by default).
//!
//! One router serves, on its own listener:
//! - the console's static files under the mount path (`/ui/` for
//!   `http://127.0.0.1:2381/ui`), compiled into the binary
//!   ([`ASSETS`]): nothing is fetched from anywhere else at run time, and
//!   the pages' Content-Security-Policy forbids it;
//! - the `/v3` JSON gateway, `/metrics`, `/health` and `/version`, exactly
//!   as on the client port (the same [`Gateway`] over the same service
//!   objects): every read, write, watch, lease and auth call the console
//!   makes is the call a JSON client would make, with the user's token,
//!   so it can do nothing its user could not;
//! - `<mount>/api/cluster`, the one call of its own: the members with each
//!   one's status (role, raft term and index, applied index, db size),
//!   which a browser could not ask the other members for itself. A member
//!   asks the others over the peer port ([`ClusterService::member_status`]).
//!   Like `Status` and `MemberList`, it needs no permission, only a valid
//!   token when one is given.
//!
//! A page on another site must not drive the console's API on this
//! reachable loopback port: calls other than GET/HEAD whose
//! `Sec-Fetch-Site` or `Origin` say they come from another origin are
//! refused with 403 (curl and other non-browser clients send neither). A
//! GET is let through (a link from elsewhere opens the console; another
//! origin cannot read what it answers). On a loopback listener a request
//! must name the host by IP or `localhost`: a DNS name there can only be
//! a DNS-rebinding page, which the browser would take for same-origin.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use tonic::Status;

use crate::auth::Credentials;
use crate::gateway::access::hostname;
use crate::gateway::{Gateway, error, with_metadata};
use crate::maintenance::{ClusterService, NodeStatus};

/// One embedded file: (name under the mount path, content type, bytes).
pub const ASSETS: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("assets/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("assets/style.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("assets/favicon.svg"),
    ),
];

/// What the console's pages may load: their own files and their own
/// origin's API, nothing else.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// The mount path of a `--listen-ui-urls` URL's path: `/ui` for `/ui` and
/// `/ui/`, `` (the root) for `` and `/`.
pub fn mount_path(url_path: &str) -> String {
    let p = url_path.trim_end_matches('/');
    if p.is_empty() {
        String::new()
    } else if p.starts_with('/') {
        p.to_owned()
    } else {
        format!("/{p}")
    }
}

/// The console's router: its files under `mount` (see [`mount_path`]),
/// `<mount>/api/cluster`, and `gateway`'s routes. `loopback`: the
/// listener is bound to a loopback address, so only IP literals and
/// `localhost` are accepted as `Host` (see [`host_refused`]).
pub fn router<C: ClusterService>(
    mount: &str,
    cluster: Arc<C>,
    gateway: Gateway,
    loopback: bool,
) -> Router {
    let mount = mount_path(mount);
    let mut r = gateway.into_router();
    for (name, ctype, body) in ASSETS {
        let route = if *name == "index.html" {
            format!("{mount}/")
        } else {
            format!("{mount}/{name}")
        };
        r = r.route(&route, get(move || async move { asset(ctype, body) }));
    }
    let home = format!("{mount}/");
    if !mount.is_empty() {
        let to = home.clone();
        r = r.route(&mount, get(move || async move { redirect(&to) }));
        r = r.route("/", get(move || async move { redirect(&home) }));
    }
    r = r.route(
        &format!("{mount}/api/cluster"),
        get(move |req: http::Request<Body>| {
            let c = cluster.clone();
            async move { cluster_view(&*c, req).await }
        }),
    );
    r.layer(axum::middleware::from_fn(move |req, next| {
        same_origin_only(loopback, req, next)
    }))
}

fn asset(ctype: &'static str, body: &'static str) -> http::Response<Body> {
    let mut r = http::Response::new(Body::from(body));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

fn redirect(to: &str) -> http::Response<Body> {
    let mut r = http::Response::new(Body::empty());
    *r.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// Refuses a request a browser says comes from another origin, and on a
/// loopback listener one that names the host by a DNS name.
async fn same_origin_only(
    loopback: bool,
    req: http::Request<Body>,
    next: axum::middleware::Next,
) -> http::Response<Body> {
    if loopback && let Some(host) = host_refused(req.headers()) {
        tracing::warn!(
            host,
            "console refused a request for a host name on a loopback listener"
        );
        return error::text_response(
            StatusCode::FORBIDDEN,
            format!(
                "host {host:?} refused: this console listens on loopback only and answers requests \
                 for an IP address or localhost (a DNS name here is what a DNS-rebinding page sends)\n"
            ),
        );
    }
    // Reading is harmless (another origin cannot read the answers: no
    // CORS headers), and a link from another site to the console must
    // open it; only calls that act are refused.
    let safe = matches!(*req.method(), http::Method::GET | http::Method::HEAD);
    if !safe && let Some(why) = cross_origin(req.headers()) {
        tracing::warn!(path = %req.uri().path(), why, "console refused a cross-origin request");
        return error::text_response(
            StatusCode::FORBIDDEN,
            format!("cross-origin request refused: {why}\n"),
        );
    }
    next.run(req).await
}

/// On a loopback listener, the `Host` of a request that must be refused:
/// a DNS name other than `localhost`. Such a listener is reached by name
/// only through DNS rebinding (a page on another site whose name now
/// resolves to 127.0.0.1, making the browser treat the console as its
/// own origin), so an IP literal or `localhost` is required.
fn host_refused(headers: &http::HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let name = hostname(host);
    let ok = name.parse::<std::net::IpAddr>().is_ok() || name.eq_ignore_ascii_case("localhost");
    (!ok).then(|| host.to_owned())
}

/// Why `headers` mark a request from another origin, if they do.
fn cross_origin(headers: &http::HeaderMap) -> Option<&'static str> {
    if let Some(site) = headers.get("sec-fetch-site") {
        // `none`: typed into the address bar or a bookmark.
        if !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return Some("Sec-Fetch-Site is not same-origin");
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).map(HeaderValue::as_bytes);
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, h)| h.as_bytes());
        if origin_host.is_none() || origin_host != host {
            return Some("Origin does not match Host");
        }
    }
    None
}

/// One member in `<mount>/api/cluster`. Ids are hex strings: a u64 does
/// not fit a JavaScript number.
#[derive(Debug, Serialize)]
struct MemberView {
    id: String,
    name: String,
    peer_urls: Vec<String>,
    client_urls: Vec<String>,
    is_learner: bool,
    /// `leader`, `follower`, `learner`, or `unknown` (no answer).
    role: &'static str,
    /// Answered, knows a leader, and no alarm is raised.
    healthy: bool,
    status: Option<StatusView>,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct StatusView {
    version: String,
    db_size: i64,
    db_size_in_use: i64,
    leader: String,
    raft_term: u64,
    raft_index: u64,
    raft_applied_index: u64,
    revision: i64,
    errors: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ClusterView {
    cluster_id: String,
    /// The member serving the console.
    member_id: String,
    members: Vec<MemberView>,
}

fn hex(id: u64) -> String {
    format!("{id:x}")
}

async fn cluster_view<C: ClusterService>(
    node: &C,
    req: http::Request<Body>,
) -> http::Response<Body> {
    let (parts, _) = req.into_parts();
    let cred = Credentials::of(&with_metadata((), &parts));
    if let Err(e) = node.authorize(cred).await {
        return error::error_response(&Status::from(e));
    }
    let members = match node.members().await {
        Ok((m, _)) => m,
        Err(e) => return error::error_response(&Status::from(e)),
    };
    // `member_status` bounds each call itself (a dead member is an error
    // within its timeout), so the slowest member bounds the view.
    let statuses = futures_util::future::join_all(members.iter().map(|m| async move {
        node.member_status(m.id)
            .await
            .map_err(|e| e.message().to_owned())
    }))
    .await;
    let members = members
        .into_iter()
        .zip(statuses)
        .map(|(m, s)| member_view(m, s))
        .collect();
    let info = node.info();
    let view = ClusterView {
        cluster_id: hex(info.cluster_id),
        member_id: hex(info.member_id),
        members,
    };
    let mut r = http::Response::new(Body::from(serde_json::to_vec(&view).unwrap_or_default()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn member_view(m: crate::maintenance::MemberInfo, s: Result<NodeStatus, String>) -> MemberView {
    let (role, healthy, status, error) = match s {
        Ok(s) => {
            let role = if s.is_learner || m.is_learner {
                "learner"
            } else if s.leader == m.id {
                "leader"
            } else {
                "follower"
            };
            // As etcd's /health: a leader known and no alarm raised.
            let error = if s.leader == 0 {
                Some("no leader".to_owned())
            } else if !s.errors.is_empty() {
                Some(format!("alarm: {}", s.errors.join(", ")))
            } else {
                None
            };
            let healthy = error.is_none();
            let view = StatusView {
                version: s.version,
                db_size: s.db_size,
                db_size_in_use: s.db_size_in_use,
                leader: hex(s.leader),
                raft_term: s.raft_term,
                raft_index: s.raft_index,
                raft_applied_index: s.raft_applied_index,
                revision: s.revision,
                errors: s.errors,
            };
            (role, healthy, Some(view), error)
        }
        Err(e) => ("unknown", false, None, Some(e)),
    };
    MemberView {
        id: hex(m.id),
        name: m.name,
        peer_urls: m.peer_urls,
        client_urls: m.client_urls,
        is_learner: m.is_learner,
        role,
        healthy,
        status,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths() {
        assert_eq!(mount_path(""), "");
        assert_eq!(mount_path("/"), "");
        assert_eq!(mount_path("/ui"), "/ui");
        assert_eq!(mount_path("/ui/"), "/ui");
        assert_eq!(mount_path("/a/b//"), "/a/b");
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn cross_origin_requests_are_told_apart() {
        // curl: neither header.
        assert_eq!(cross_origin(&headers(&[("host", "127.0.0.1:2381")])), None);
        // The console's own fetch.
        assert_eq!(
            cross_origin(&headers(&[
                ("host", "127.0.0.1:2381"),
                ("origin", "http://127.0.0.1:2381"),
                ("sec-fetch-site", "same-origin"),
            ])),
            None
        );
        assert!(
            cross_origin(&headers(&[
                ("host", "127.0.0.1:2381"),
                ("sec-fetch-site", "cross-site"),
            ]))
            .is_some()
        );
        // Another port on the same host is another origin.
        assert!(
            cross_origin(&headers(&[
                ("host", "127.0.0.1:2381"),
                ("origin", "http://127.0.0.1:8080"),
            ]))
            .is_some()
        );
        assert!(
            cross_origin(&headers(&[("host", "127.0.0.1:2381"), ("origin", "null")])).is_some()
        );
    }

    #[test]
    fn a_loopback_console_answers_ip_literals_and_localhost_only() {
        for ok in [
            "127.0.0.1:2381",
            "localhost:2381",
            "LOCALHOST",
            "[::1]:2381",
            "10.0.0.1",
        ] {
            assert_eq!(host_refused(&headers(&[("host", ok)])), None, "{ok}");
        }
        for bad in [
            "evil.example:2381",
            "evil.example",
            "127.0.0.1.nip.io:2381",
            "[zz]:1",
        ] {
            assert!(host_refused(&headers(&[("host", bad)])).is_some(), "{bad}");
        }
        // HTTP/1.0 without Host: nothing to judge.
        assert_eq!(host_refused(&http::HeaderMap::new()), None);
    }

    #[test]
    fn every_asset_is_referenced_by_the_page_or_is_the_page() {
        let index = ASSETS[0].2;
        for (name, _, body) in ASSETS {
            assert!(!body.is_empty(), "{name} is empty");
            if *name != "index.html" {
                assert!(index.contains(name), "index.html does not load {name}");
            }
        }
        // Nothing from elsewhere: no absolute URLs in what the page loads.
        for (name, _, body) in ASSETS {
            assert!(!body.contains("src=\"http"), "{name} loads a remote script");
            assert!(!body.contains("href=\"http"), "{name} links a remote file");
        }
    }
}
