//! `/livez` and `/readyz`, as etcd serves them from 3.5.11 on (3.5.1,
//! the release we follow elsewhere, has neither; Kubernetes' healthz
//! handlers are their model):
//!
//! - `GET` only; another method is `405 Method Not Allowed` with
//!   `Allow: GET`.
//! - Each endpoint runs its named checks in order. All pass: `200` with
//!   `ok\n`; with `?verbose` (any value) one line per check first,
//!   `[+]<name> ok`.
//! - One fails: `503` with every check's line, the failed ones as
//!   `[-]<name> failed: <reason>`, whatever `verbose` says (etcd always
//!   explains a failure), then an empty line (Go's `http.Error` adds a
//!   newline to the text).
//! - `?exclude=<name>` (repeatable) skips a check: it is neither run nor
//!   listed. An unknown name is ignored, as etcd ignores it for
//!   compatibility between versions.
//! - `/livez/<name>` and `/readyz/<name>` run that one check.
//!
//! The checks themselves are the node's (see `core`'s server): etcd's
//! `serializable_read` for `/livez`; `data_corruption`,
//! `serializable_read` and `linearizable_read` for `/readyz`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::any;
use http::{HeaderValue, Method, StatusCode, header};

use super::error::text_response;

/// One check's run: `Ok`, or why it failed.
pub type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A named check of `/livez` or `/readyz`.
#[derive(Clone)]
pub struct Check {
    /// etcd's name for it, e.g. `serializable_read`.
    pub name: &'static str,
    /// Runs it.
    pub run: Arc<dyn Fn() -> CheckFuture + Send + Sync>,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check").field("name", &self.name).finish()
    }
}

/// What a query asks: `verbose`, and the checks to leave out.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Query {
    pub(crate) verbose: bool,
    pub(crate) exclude: Vec<String>,
}

impl Query {
    /// Parses a raw query string (`verbose&exclude=a&exclude=b`), as Go's
    /// `URL.Query()` reads it: `verbose` counts when present at all.
    pub(crate) fn parse(raw: Option<&str>) -> Query {
        let mut q = Query::default();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "verbose" => q.verbose = true,
                "exclude" => q.exclude.push(percent_decode(v)),
                _ => {}
            }
        }
        q
    }
}

/// `%XX` escapes and `+` as a space, as a query value is decoded.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| char::from(c).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        // Two hex digits: at most 0xff.
                        out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The answer for check outcomes `(name, result)`, in order.
pub(crate) fn render(
    outcomes: &[(&str, Result<(), String>)],
    verbose: bool,
) -> (StatusCode, String) {
    let mut lines = String::new();
    let mut failed = false;
    for (name, r) in outcomes {
        match r {
            Ok(()) => lines.push_str(&format!("[+]{name} ok\n")),
            Err(why) => {
                failed = true;
                lines.push_str(&format!("[-]{name} failed: {why}\n"));
            }
        }
    }
    if failed {
        lines.push('\n');
        return (StatusCode::SERVICE_UNAVAILABLE, lines);
    }
    if !verbose {
        lines.clear();
    }
    lines.push_str("ok\n");
    (StatusCode::OK, lines)
}

async fn answer(checks: &[Check], method: &Method, query: Option<&str>) -> http::Response<Body> {
    if method != Method::GET {
        let mut r = text_response(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        return r;
    }
    let q = Query::parse(query);
    let mut outcomes = Vec::with_capacity(checks.len());
    for c in checks {
        if q.exclude.iter().any(|e| e == c.name) {
            continue;
        }
        outcomes.push((c.name, (c.run)().await));
    }
    let (status, body) = render(&outcomes, q.verbose);
    text_response(status, body)
}

/// The routes of one endpoint (`/livez` or `/readyz`) and its checks'
/// sub-paths.
pub(crate) fn routes(router: Router, path: &'static str, checks: Vec<Check>) -> Router {
    let all = Arc::new(checks);
    let mut router = {
        let all = all.clone();
        router.route(
            path,
            any(move |req: http::Request<Body>| {
                let all = all.clone();
                async move { answer(&all, req.method(), req.uri().query()).await }
            }),
        )
    };
    for c in all.iter() {
        let one = Arc::new(vec![c.clone()]);
        router = router.route(
            &format!("{path}/{}", c.name),
            any(move |req: http::Request<Body>| {
                let one = one.clone();
                async move { answer(&one, req.method(), req.uri().query()).await }
            }),
        );
    }
    router
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_read_as_go_reads_them() {
        assert_eq!(Query::parse(None), Query::default());
        assert_eq!(
            Query::parse(Some("verbose")),
            Query {
                verbose: true,
                exclude: vec![]
            }
        );
        assert_eq!(
            Query::parse(Some(
                "verbose=false&exclude=data_corruption&exclude=a%5Fb&x=1"
            )),
            Query {
                verbose: true,
                exclude: vec!["data_corruption".into(), "a_b".into()]
            }
        );
    }

    #[test]
    fn answers_follow_etcds_format() {
        let ok = [("serializable_read", Ok(())), ("linearizable_read", Ok(()))];
        assert_eq!(render(&ok, false), (StatusCode::OK, "ok\n".into()));
        assert_eq!(
            render(&ok, true),
            (
                StatusCode::OK,
                "[+]serializable_read ok\n[+]linearizable_read ok\nok\n".into()
            )
        );
        let bad = [
            (
                "data_corruption",
                Err("alarm activated: CORRUPT".to_string()),
            ),
            ("serializable_read", Ok(())),
        ];
        let want = "[-]data_corruption failed: alarm activated: CORRUPT\n\
                    [+]serializable_read ok\n\n";
        assert_eq!(
            render(&bad, false),
            (StatusCode::SERVICE_UNAVAILABLE, want.into())
        );
        assert_eq!(render(&[], false), (StatusCode::OK, "ok\n".into()));
    }
}
