//! etcd's HTTP access control on the client port (`--cors`,
//! `--host-whitelist`), for the HTTP/1 requests (the JSON gateway,
//! `/health`, `/metrics`, `/version`); gRPC and the binary protocol are
//! not HTTP/1 and pass untouched, as in etcd. Checked against etcd 3.5.1:
//!
//! - On a plaintext listener, a request whose `Host` (without its port)
//!   is not in the host whitelist gets `421 Misdirected Request` and
//!   etcd's CVE-2018-5702 text; the default whitelist `*` admits any host,
//!   and TLS listeners are not checked.
//! - CORS: with the default `*` every answer carries
//!   `Access-Control-Allow-Origin: *` and etcd's allowed methods and
//!   headers; with a list of origins only a request whose `Origin` is one
//!   of them gets them (naming that origin). `OPTIONS` answers 200 with an
//!   empty body, whatever the origin.

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Body;
use http::{HeaderValue, Method, StatusCode, header};

/// The access rules of one listener.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessControl {
    /// Allowed CORS origins; `None`: any (`*`, etcd's default).
    pub cors: Option<HashSet<String>>,
    /// Allowed `Host` names; `None`: any (`*`, etcd's default).
    pub hosts: Option<HashSet<String>>,
}

impl AccessControl {
    /// From the flags' values: a list holding `*` allows everything.
    pub fn new(cors: &[String], hosts: &[String]) -> Self {
        let set = |v: &[String]| {
            (!v.iter().any(|s| s == "*")).then(|| v.iter().cloned().collect::<HashSet<_>>())
        };
        Self {
            cors: set(cors),
            hosts: set(hosts),
        }
    }

    /// The host whitelist's check of `host` (a `Host` header, port
    /// included or not).
    fn host_allowed(&self, host: &str) -> bool {
        self.hosts
            .as_ref()
            .is_none_or(|set| set.contains(hostname(host)))
    }
}

/// Go's `httputil.GetHostname`: the host without its port (and without
/// an IPv6 literal's brackets).
pub(crate) fn hostname(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(h, _)| h);
    }
    match host.rsplit_once(':') {
        Some((h, _)) if !h.contains(':') => h,
        _ => host,
    }
}

/// etcd's answer to a `Host` outside the whitelist (CVE-2018-5702); the
/// last newline is Go's `http.Error`'s.
fn misdirected(host: &str) -> http::Response<Body> {
    let quoted = serde_json::to_string(host).unwrap_or_default();
    let text = format!(
        "\netcd received your request, but the Host header was unrecognized.\n\n\
         To fix this, choose one of the following options:\n\
         - Enable TLS, then any HTTPS request will be allowed.\n\
         - Add the hostname you want to use to the whitelist in settings.\n  \
         - e.g. etcd --host-whitelist {quoted}\n\n\
         This requirement has been added to help prevent \"DNS Rebinding\" attacks (CVE-2018-5702).\n\n"
    );
    super::error::text_response(StatusCode::MISDIRECTED_REQUEST, text)
}

fn add_cors(h: &mut http::HeaderMap, origin: HeaderValue) {
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("accept, content-type, authorization"),
    );
}

/// The middleware: `rules` on a listener that speaks TLS (`tls`) or not.
pub(crate) async fn check(
    rules: Arc<AccessControl>,
    tls: bool,
    req: http::Request<Body>,
    next: axum::middleware::Next,
) -> http::Response<Body> {
    if super::error::is_grpc(req.headers()) {
        return next.run(req).await;
    }
    if !tls {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()))
            .unwrap_or("");
        if !rules.host_allowed(host) {
            let name = hostname(host).to_owned();
            tracing::warn!(host = %name, "rejecting HTTP request to prevent DNS rebinding attacks");
            return misdirected(&name);
        }
    }
    let origin = match &rules.cors {
        None => Some(HeaderValue::from_static("*")),
        Some(allowed) => req
            .headers()
            .get(header::ORIGIN)
            .filter(|o| o.to_str().is_ok_and(|o| allowed.contains(o)))
            .cloned(),
    };
    let mut resp = if req.method() == Method::OPTIONS {
        http::Response::new(Body::empty())
    } else {
        next.run(req).await
    };
    if let Some(o) = origin {
        add_cors(resp.headers_mut(), o);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_lose_their_port() {
        assert_eq!(hostname("a.example:2379"), "a.example");
        assert_eq!(hostname("a.example"), "a.example");
        assert_eq!(hostname("[::1]:2379"), "::1");
        assert_eq!(hostname("::1"), "::1");
    }

    #[test]
    fn star_allows_everything_and_a_list_only_itself() {
        let any = AccessControl::new(&["*".into()], &["*".into()]);
        assert!(any.cors.is_none() && any.hosts.is_none());
        assert!(any.host_allowed("evil.example:1"));
        let some = AccessControl::new(&["http://a.example:80".into()], &["good.example".into()]);
        assert!(some.host_allowed("good.example:2379"));
        assert!(!some.host_allowed("evil.example:2379"));
        assert!(!some.host_allowed("localhost:2379"));
    }
}
