//! gRPC's standard health service (`grpc.health.v1.Health`), which etcd
//! registers and load balancers and client libraries probe: SERVING on a
//! member that has a leader.

#[path = "../common/mod.rs"]
mod common;

use common::{Server, tempdir};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

#[test]
fn grpc_health_check_reports_serving() {
    let tmp = tempdir();
    let s = Server::start(&tmp.path().join("data"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut h = HealthClient::new(s.channel().await);
        let r = h
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("health check")
            .into_inner();
        assert_eq!(
            r.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
    });
}

/// `--listen-metrics-urls` serves `/metrics`, `/health` and `/version` on
/// a port of its own (and not the key-value API), as etcd does.
#[test]
fn metrics_urls_serve_metrics_and_health() {
    let tmp = tempdir();
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let _s = Server::start_with(&tmp.path().join("data"), &["--listen-metrics-urls", &url]);
    let (code, body) = common::http_get(port, "/metrics").expect("metrics");
    assert_eq!(code, 200);
    assert!(body.contains("grpc_server_handled_total"), "{body}");
    assert_eq!(
        common::http_get(port, "/health"),
        Some((200, r#"{"health":"true","reason":""}"#.into()))
    );
    assert_eq!(common::http_get(port, "/version").map(|r| r.0), Some(200));
    let (code, _) = common::http_post(port, "/v3/kv/range", r#"{"key":"YQ=="}"#).unwrap();
    assert_eq!(code, 404, "no KV API on the metrics port");
}

/// `--listen-ui-urls`: the console's files, the same `/v3` gateway as the
/// client port, and a refusal for requests a browser marks as coming from
/// another site. (What the pages do is tested in a browser: tests/ui.)
#[test]
fn console_listener_serves_its_files_and_the_gateway() {
    let tmp = tempdir();
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}/ui");
    let s = Server::start_with(&tmp.path().join("data"), &["--listen-ui-urls", &url]);
    let (code, page) = common::http_get(port, "/ui/").expect("index");
    assert_eq!(code, 200);
    assert!(page.contains("<script src=\"app.js\""), "{page}");
    for f in ["app.js", "style.css", "favicon.svg"] {
        let (code, body) = common::http_get(port, &format!("/ui/{f}")).unwrap();
        assert_eq!(code, 200, "{f}");
        assert!(!body.is_empty(), "{f}");
    }
    assert_eq!(common::http_get(port, "/ui").map(|r| r.0), Some(302));
    assert_eq!(common::http_get(port, "/").map(|r| r.0), Some(302));
    assert_eq!(
        common::http_get(port, "/ui/nope.js").map(|r| r.0),
        Some(404)
    );

    // A write through the console port is visible on the client port.
    let (code, _) = common::http_post(
        port,
        "/v3/kv/put",
        r#"{"key":"Y29uc29sZQ==","value":"eWVz"}"#,
    )
    .unwrap();
    assert_eq!(code, 200);
    let (_, body) =
        common::http_post(s.client_port(), "/v3/kv/range", r#"{"key":"Y29uc29sZQ=="}"#).unwrap();
    assert!(body.contains(r#""value":"eWVz""#), "{body}");

    let (code, body) = common::http_get(port, "/ui/api/cluster").unwrap();
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["members"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["members"][0]["role"], "leader", "{v}");
    assert_eq!(v["members"][0]["healthy"], true, "{v}");
    assert_eq!(v["members"][0]["status"]["revision"], 2, "{v}");

    // What a page on another site would send: refused, nothing written.
    let host = format!("127.0.0.1:{port}");
    let put = |extra: &[(&str, &str)]| {
        let mut headers = vec![("Host", host.as_str()), ("Content-Type", "text/plain")];
        headers.extend_from_slice(extra);
        raw_http(
            port,
            "POST",
            "/v3/kv/put",
            &headers,
            r#"{"key":"ZXZpbA==","value":"eA=="}"#,
        )
        .0
    };
    assert_eq!(put(&[("Origin", "http://evil.example")]), 403);
    assert_eq!(put(&[("Sec-Fetch-Site", "cross-site")]), 403);
    let own = format!("http://127.0.0.1:{port}");
    assert_eq!(
        put(&[("Origin", own.as_str()), ("Sec-Fetch-Site", "same-origin")]),
        200
    );
    // DNS rebinding: a page on another site whose name now resolves to
    // 127.0.0.1 sends its own name as Host; a loopback console refuses it.
    let evil = format!("evil.example:{port}");
    let (code, _, text) = raw_http(port, "GET", "/ui/api/cluster", &[("Host", &evil)], "");
    assert_eq!(code, 403, "{text}");
    assert!(text.contains("DNS-rebinding"), "{text}");

    // A link from another site still opens the console.
    let (code, _, text) = raw_http(
        port,
        "GET",
        "/ui/",
        &[("Host", &host), ("Sec-Fetch-Site", "cross-site")],
        "",
    );
    assert_eq!(code, 200, "{text}");
    let (_, body) =
        common::http_post(s.client_port(), "/v3/kv/range", r#"{"key":"ZXZpbA=="}"#).unwrap();
    assert!(
        body.contains(r#""count":"1""#),
        "only the same-origin put landed: {body}"
    );
}

/// Console and metrics URLs with https need the client certificate.
#[test]
fn https_console_url_without_a_certificate_is_refused() {
    let tmp = tempdir();
    let out = std::process::Command::new(common::server_bin())
        .arg("--data-dir")
        .arg(tmp.path().join("d"))
        .args(["--listen-ui-urls", "https://127.0.0.1:1/ui"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "--listen-ui-urls: https://127.0.0.1:1/ui: https needs --cert-file and --key-file"
        ),
        "{err}"
    );
}

/// One raw HTTP/1.1 request: (status, lower-cased headers, body).
fn raw_http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += &format!("Content-Length: {}\r\n\r\n{body}", body.len());
    c.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status.parse().unwrap(), headers, body.to_owned())
}

/// `--cors` and `--host-whitelist` on the client port, next to etcd 3.5.1
/// with the same flags: the same statuses, CORS headers and 421 text.
#[test]
fn cors_and_host_whitelist_answer_as_etcd() {
    // (flags, method, headers besides Host)
    type Case<'a> = (&'a [&'a str], &'a str, &'a [(&'a str, &'a str)]);
    let cases: &[Case] = &[
        (&[], "POST", &[]),
        (&[], "POST", &[("Origin", "http://x.example:80")]),
        (&[], "OPTIONS", &[("Origin", "http://x.example:80")]),
        (&["--cors", "http://a.example:80"], "POST", &[]),
        (
            &["--cors", "http://a.example:80"],
            "POST",
            &[("Origin", "http://a.example:80")],
        ),
        (
            &["--cors", "http://a.example:80"],
            "POST",
            &[("Origin", "http://c.example:80")],
        ),
        (
            &["--cors", "http://a.example:80"],
            "OPTIONS",
            &[("Origin", "http://c.example:80")],
        ),
    ];
    let hosts = ["127.0.0.1", "good.example", "evil.example", "localhost"];
    let whitelist = ["--host-whitelist", "good.example,127.0.0.1"];
    let answers = |bin: &std::path::Path| {
        let mut out = Vec::new();
        for (flags, method, extra) in cases {
            let tmp = tempdir();
            let mut all: Vec<&str> = flags.to_vec();
            all.extend_from_slice(&whitelist);
            let s = common::Server::start_bin(bin, &tmp.path().join("d"), &all);
            let port = s.client_port();
            for h in hosts {
                let host = format!("{h}:{port}");
                let mut headers = vec![("Host", host.as_str())];
                headers.extend_from_slice(extra);
                let (status, hs, body) =
                    raw_http(port, method, "/v3/kv/range", &headers, r#"{"key":"YQ=="}"#);
                let mut cors: Vec<_> = hs
                    .into_iter()
                    .filter(|(k, _)| k.starts_with("access-control-"))
                    .collect();
                cors.sort();
                // The 421 text is compared whole; a 200's JSON holds ids.
                let body = if status == 421 || body.is_empty() {
                    body
                } else {
                    "(answer)".into()
                };
                out.push(format!(
                    "{flags:?} {method} {extra:?} Host {h}: {status} {cors:?} {body}"
                ));
            }
        }
        out
    };
    let ours = answers(&common::server_bin());
    // What etcd 3.5.1 does, as seen when this test was written (and
    // checked again below when $ETCD_BIN is there).
    assert!(
        ours[2].contains(": 421 [] \netcd received your request"),
        "{ours:#?}"
    );
    assert!(
        ours[0].contains(r#"("access-control-allow-origin", "*")"#),
        "{ours:#?}"
    );
    if let Some(etcd) = common::etcd_bin() {
        let theirs = answers(&etcd);
        for (a, b) in ours.iter().zip(&theirs) {
            assert_eq!(a, b, "ferrocd vs etcd 3.5.1");
        }
    }

    // gRPC is not HTTP/1 and is not subject to the whitelist.
    let tmp = tempdir();
    let s = Server::start_with(&tmp.path().join("d"), &["--host-whitelist", "only.example"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use ferrocd_net::pb::etcdserverpb::PutRequest;
        use ferrocd_net::pb::etcdserverpb::kv_client::KvClient;
        KvClient::new(s.channel().await)
            .put(PutRequest {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                ..Default::default()
            })
            .await
            .expect("gRPC put with a host whitelist");
    });
    let (code, _) = common::http_get(s.client_port(), "/health").unwrap();
    assert_eq!(code, 421, "HTTP for 127.0.0.1 is not on the whitelist");
}
