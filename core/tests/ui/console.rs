//! The console's views, driven as a user would drive them: keys (tree,
//! list, detail, history, create, edit with compare-and-swap, conflicts,
//! bad input, delete, delete prefix), watch, leases, cluster, and login
//! with auth enabled. Another client writes through the client port's
//! JSON gateway meanwhile; what the console did is checked there too.
//!
//! The screenshots of the main views land in `$FERROCD_UI_SHOTS` (the
//! ones in `docs/ui/` were taken with `FERROCD_UI_SHOTS=docs/ui`).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::common::{self, Server, tempdir};

const WAIT: Duration = Duration::from_secs(10);

fn b64(s: &str) -> String {
    STANDARD.encode(s)
}

fn unb64(s: &Value) -> String {
    String::from_utf8(STANDARD.decode(s.as_str().unwrap_or("")).unwrap()).unwrap()
}

/// A ferrocd with the console on, and another client of it.
struct Setup {
    server: Server,
    ui: u16,
    _tmp: tempfile::TempDir,
}

impl Setup {
    fn start() -> Setup {
        Self::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Setup {
        let tmp = tempdir();
        let ui = common::free_port();
        let url = format!("http://127.0.0.1:{ui}/ui");
        let mut flags = vec!["--listen-ui-urls", &url];
        flags.extend_from_slice(extra);
        let server = Server::start_with(&tmp.path().join("data"), &flags);
        Setup {
            server,
            ui,
            _tmp: tmp,
        }
    }

    fn url(&self, view: &str) -> String {
        format!("http://127.0.0.1:{}/ui/#/{view}", self.ui)
    }

    /// A JSON gateway call on the client port (as root when `token`).
    fn call(&self, path: &str, body: Value, token: Option<&str>) -> Value {
        let (code, text) = common::http_post_with(
            self.server.client_port(),
            &format!("/v3/{path}"),
            &body.to_string(),
            token,
        )
        .unwrap_or_else(|| panic!("{path}: no answer"));
        assert_eq!(code, 200, "{path} {body}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// The user `root` (password `rootpw`) with the root role, which
    /// enabling auth needs.
    fn add_root(&self) {
        self.call(
            "auth/user/add",
            json!({"name": "root", "password": "rootpw"}),
            None,
        );
        self.call("auth/role/add", json!({"name": "root"}), None);
        self.call(
            "auth/user/grant",
            json!({"user": "root", "role": "root"}),
            None,
        );
    }

    fn put(&self, key: &str, value: &str) -> i64 {
        let r = self.call(
            "kv/put",
            json!({"key": b64(key), "value": b64(value)}),
            None,
        );
        r["header"]["revision"].as_str().unwrap().parse().unwrap()
    }

    /// (value, mod revision, version) of `key`.
    fn get(&self, key: &str) -> Option<(String, i64, i64)> {
        self.get_as(key, None)
    }

    fn get_as(&self, key: &str, token: Option<&str>) -> Option<(String, i64, i64)> {
        let r = self.call("kv/range", json!({"key": b64(key)}), token);
        let kv = r["kvs"].get(0)?;
        let n = |f: &str| kv[f].as_str().unwrap_or("0").parse().unwrap();
        Some((unb64(&kv["value"]), n("mod_revision"), n("version")))
    }

    fn count(&self, prefix: &str) -> i64 {
        let end = {
            let mut e = prefix.as_bytes().to_vec();
            *e.last_mut().unwrap() += 1;
            String::from_utf8(e).unwrap()
        };
        let r = self.call(
            "kv/range",
            json!({"key": b64(prefix), "range_end": b64(&end), "count_only": true}),
            None,
        );
        r["count"].as_str().unwrap_or("0").parse().unwrap()
    }

    fn revision(&self) -> i64 {
        let r = self.call("kv/range", json!({"key": b64("x")}), None);
        r["header"]["revision"].as_str().unwrap().parse().unwrap()
    }

    async fn open(&self, view: &str) -> Browser {
        let b = Browser::start().await;
        b.goto(&self.url(view)).await;
        b.wait_for("body[data-ready]", WAIT).await;
        b
    }
}

/// Every visible form control has a label (a `<label>`, or an
/// `aria-label`) and every visible button a name.
async fn controls_are_labelled(b: &Browser) {
    let unlabelled = b
        .exec(
            r#"const bad = [];
            for (const e of document.querySelectorAll('input, select, textarea, button')) {
              if (!e.offsetParent) continue;
              const named = e.tagName === 'BUTTON'
                ? (e.textContent.trim() || e.getAttribute('aria-label'))
                : (e.labels.length || e.getAttribute('aria-label'));
              if (!named) bad.push(e.outerHTML.slice(0, 120));
            }
            return bad;"#,
            vec![],
        )
        .await;
    assert_eq!(unlabelled, json!([]), "unlabelled controls");
}

/// The JS console must stay free of errors (a CSP violation or an
/// exception would show up there).
fn no_page_errors(b: &Browser) {
    let severe: Vec<_> = b
        .console_log()
        .into_iter()
        .filter(|l| l.starts_with("SEVERE") && !l.contains("favicon"))
        // The console logs nothing itself; failed API calls it made on
        // purpose (a 400 for a bad request) show as network errors.
        .filter(|l| !l.contains("Failed to load resource"))
        .collect();
    assert!(severe.is_empty(), "errors in the page: {severe:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_edit_conflict_and_delete_keys() {
    let s = Setup::start();
    s.put("/app/config", r#"{"replicas":3,"name":"web"}"#);
    s.put("/app/db/host", "db1");
    s.put("/app/db/port", "5432");
    s.put("/other", "keep me");
    let b = s.open("keys").await;

    // Browse the tree down to a key; JSON is pretty-printed.
    b.click(r#"[data-dir="/"]"#).await;
    b.click(r#"[data-dir="/app/"]"#).await;
    b.wait_for(r#"[data-dir="/app/db/"]"#, WAIT).await;
    b.click(r#"[data-key="/app/config"]"#).await;
    b.wait_text("#detail-key", "/app/config", WAIT).await;
    let shown = b.text("#detail-value").await;
    assert!(shown.contains("\"replicas\": 3"), "{shown}");
    assert_eq!(b.text("#detail-shown-as").await, "(JSON)");
    b.screenshot("keys").await;
    b.select("#detail-format", "hex").await;
    b.wait_text("#detail-value", "7b 22 72 65", WAIT).await;

    // Create a key.
    b.click("#key-new").await;
    controls_are_labelled(&b).await;
    b.fill("#edit-key", "/app/new").await;
    b.fill("#edit-value", "hello").await;
    b.click("#edit-save").await;
    b.wait_text("#detail-key", "/app/new", WAIT).await;
    b.wait_text("#detail-version", "1", WAIT).await;
    assert_eq!(s.get("/app/new").unwrap().0, "hello");

    // Edit it: a compare-and-swap on the revision shown.
    b.click("#detail-edit").await;
    b.fill("#edit-value", "hello again").await;
    b.click("#edit-save").await;
    b.wait_text("#detail-version", "2", WAIT).await;
    let (v, rev2, _) = s.get("/app/new").unwrap();
    assert_eq!(v, "hello again");

    // History: both versions, the older one readable.
    b.click("#detail-history").await;
    b.wait_text("#history-entries", "created at revision", WAIT)
        .await;
    let first = rev2 - 1;
    let older = format!(r#"[data-rev="{first}"]"#);
    b.click(&older).await;
    b.wait_text("#detail-at", &format!("revision {first}"), WAIT)
        .await;
    b.wait_text("#detail-value", "hello", WAIT).await;
    b.click("#detail-current").await;
    b.wait_text("#detail-value", "hello again", WAIT).await;

    // Compacted versions are gone, and the history says so.
    s.call("kv/compaction", json!({"revision": rev2.to_string()}), None);
    b.click("#detail-history").await;
    b.wait_text("#history-entries", "older versions are compacted", WAIT)
        .await;
    assert!(b.try_find(&older).await.is_none());

    // Someone else changes the key while the user edits it: the save is
    // refused and shows what is there now; nothing is overwritten.
    b.click("#detail-edit").await;
    b.fill("#edit-value", "mine").await;
    s.put("/app/new", "theirs");
    b.click("#edit-save").await;
    let conflict = b.wait_text("#edit-conflict", "Conflict", WAIT).await;
    assert!(
        conflict.contains(&format!("you saw revision {rev2}")),
        "{conflict}"
    );
    b.wait_text("#conflict-current", "theirs", WAIT).await;
    b.screenshot("edit-conflict").await;
    assert_eq!(s.get("/app/new").unwrap().0, "theirs");
    b.click("#conflict-reload").await;
    b.wait_text("#detail-value", "theirs", WAIT).await;

    // Creating a key that exists is a conflict too.
    b.click("#key-new").await;
    b.fill("#edit-key", "/app/config").await;
    b.fill("#edit-value", "clobber").await;
    b.click("#edit-save").await;
    b.wait_text("#edit-conflict", "already exists", WAIT).await;
    assert!(s.get("/app/config").unwrap().0.contains("replicas"));

    // Bad input: a clear message, nothing written.
    let before = s.revision();
    b.click("#key-new").await;
    b.fill("#edit-key", "").await;
    b.fill("#edit-value", "x").await;
    b.click("#edit-save").await;
    b.wait_text("#edit-error", "must not be empty", WAIT).await;
    b.fill("#edit-key", "/app/json").await;
    b.select("#edit-format", "json").await;
    b.fill("#edit-value", "{\"unclosed\": ").await;
    b.click("#edit-save").await;
    b.wait_text("#edit-error", "not valid JSON", WAIT).await;
    b.select("#edit-format", "text").await;
    // 2 MiB: over etcd's default 1.5 MiB request limit.
    b.exec(
        "document.querySelector('#edit-value').value = 'x'.repeat(2 << 20)",
        vec![],
    )
    .await;
    b.click("#edit-save").await;
    b.wait_text("#edit-error", "etcdserver: request is too large", WAIT)
        .await;
    assert_eq!(s.revision(), before, "bad input changed nothing");
    assert!(s.get("/app/json").is_none());

    // A large value shows its start, and all of it on request.
    let big: String = (0..100_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    s.put("/app/big", &big);
    b.click(r#"[data-dir="/app/"]"#).await;
    b.click(r#"[data-dir="/app/"]"#).await;
    b.click(r#"[data-key="/app/big"]"#).await;
    b.wait_text(
        "#detail-show-all",
        "Showing the first 64 KiB of 98 KiB",
        WAIT,
    )
    .await;
    let shown = b
        .exec(
            "return document.querySelector('#detail-value').textContent.length",
            vec![],
        )
        .await;
    assert_eq!(shown, json!(65536));
    b.click("#detail-show-all").await;
    b.wait_gone("#detail-show-all", WAIT).await;
    let shown = b
        .exec(
            "return document.querySelector('#detail-value').textContent.length",
            vec![],
        )
        .await;
    assert_eq!(shown, json!(100_000));

    // Delete one key (after a confirm step).
    b.click(r#"[data-key="/app/new"]"#).await;
    b.wait_text("#detail-key", "/app/new", WAIT).await;
    b.click("#detail-delete").await;
    b.wait_text("#confirm-text", "Delete the key /app/new?", WAIT)
        .await;
    b.click("#confirm-ok").await;
    b.wait_text("#banner-text", "Deleted /app/new", WAIT).await;
    assert!(s.get("/app/new").is_none());

    // Delete a prefix: the confirm step says how many keys go; cancel
    // first, then confirm.
    b.fill("#keys-prefix", "/app/db/").await;
    b.click("#prefix-delete").await;
    b.wait_text("#confirm-text", "Delete all 2 keys", WAIT)
        .await;
    b.click("#confirm-cancel").await;
    assert_eq!(s.count("/app/db/"), 2, "cancel deletes nothing");
    b.click("#prefix-delete").await;
    b.wait_text("#confirm-text", "Delete all 2 keys", WAIT)
        .await;
    b.click("#confirm-ok").await;
    b.wait_text("#banner-text", "Deleted 2 keys", WAIT).await;
    assert_eq!(s.count("/app/db/"), 0);
    assert_eq!(s.get("/other").unwrap().0, "keep me");
    assert!(s.get("/app/config").is_some());
    no_page_errors(&b);
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_prefixes_load_a_page_at_a_time() {
    let s = Setup::start();
    for i in 0..230 {
        s.put(&format!("/many/k{i:03}"), "v");
    }
    for i in 0..105 {
        s.put(&format!("/dirs/d{i:03}/a"), "v");
        s.put(&format!("/dirs/d{i:03}/b"), "v");
    }
    // (the last directory holds more keys than one read returns)
    for i in 0..99 {
        s.put(&format!("/exact/d{i:03}/a"), "v");
    }
    for i in 0..150 {
        s.put(&format!("/exact/d099/k{i:03}"), "v");
    }
    let b = s.open("keys").await;
    let count = |css: &'static str| {
        let b = &b;
        async move { b.find_all(css).await.len() }
    };
    b.click(r#"[data-dir="/"]"#).await;
    b.click(r#"[data-dir="/many/"]"#).await;
    b.wait_for(r#"[data-more="/many/"]"#, WAIT).await;
    assert_eq!(count(r#"button[data-key^="/many/"]"#).await, 100);
    b.click(r#"[data-more="/many/"]"#).await;
    b.wait_for(r#"[data-key="/many/k199"]"#, WAIT).await;
    assert_eq!(count(r#"button[data-key^="/many/"]"#).await, 200);
    b.click(r#"[data-more="/many/"]"#).await;
    b.wait_for(r#"[data-key="/many/k229"]"#, WAIT).await;
    assert_eq!(count(r#"button[data-key^="/many/"]"#).await, 230);
    assert!(b.try_find(r#"[data-more="/many/"]"#).await.is_none());

    // 105 directories of two keys each: a page is 100 directories, not
    // 100 keys.
    b.click(r#"[data-dir="/dirs/"]"#).await;
    b.wait_for(r#"[data-more="/dirs/"]"#, WAIT).await;
    assert_eq!(count(r#"button[data-dir^="/dirs/d"]"#).await, 100);
    b.click(r#"[data-more="/dirs/"]"#).await;
    b.wait_for(r#"[data-dir="/dirs/d104/"]"#, WAIT).await;
    assert_eq!(count(r#"button[data-dir^="/dirs/d"]"#).await, 105);

    // Exactly a page of directories: no "Load more" that would find
    // nothing.
    b.click(r#"[data-dir="/exact/"]"#).await;
    b.wait_for(r#"[data-dir="/exact/d099/"]"#, WAIT).await;
    assert_eq!(count(r#"button[data-dir^="/exact/d"]"#).await, 100);
    assert!(b.try_find(r#"[data-more="/exact/"]"#).await.is_none());

    // Another separator: the tree splits on it.
    b.fill("#keys-sep", ":").await;
    b.fill("#keys-prefix", "/dirs/d001").await;
    b.click("#keys-go").await;
    b.wait_for(r#"[data-key="/dirs/d001/a"]"#, WAIT).await;

    // The flat list, with a prefix search, a page at a time.
    b.select("#keys-mode", "list").await;
    b.fill("#keys-sep", "/").await;
    b.fill("#keys-prefix", "/many/").await;
    b.click("#keys-go").await;
    b.wait_text("#keys-count", "Showing 100 of 230 keys", WAIT)
        .await;
    b.click("#keys-more").await;
    b.wait_text("#keys-count", "Showing 200 of 230 keys", WAIT)
        .await;
    b.click("#keys-more").await;
    b.wait_text("#keys-count", "230 keys", WAIT).await;
    b.wait_gone("#keys-more", WAIT).await;
    assert_eq!(count("#keys-list button").await, 230);
    no_page_errors(&b);
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_shows_events_live_and_pauses() {
    let s = Setup::start();
    s.put("/w/a", "0");
    let b = s.open("watch").await;
    controls_are_labelled(&b).await;
    b.fill("#watch-prefix", "/w/").await;
    b.click("#watch-prevkv").await;
    b.click("#watch-start").await;
    b.wait_text("#watch-state", "Watching keys starting with \"/w/\"", WAIT)
        .await;
    let rev = s.put("/w/a", "1");
    let row = b.wait_text("#watch-events tbody", "/w/a", WAIT).await;
    assert!(row.contains(&rev.to_string()), "{row}");
    s.put("/outside", "x");
    s.put("/w/a", "2");
    b.wait_text("#watch-events tbody tr:first-child", "2", WAIT)
        .await;
    // The previous value came with it.
    let first = b.text("#watch-events tbody tr:first-child").await;
    assert!(first.contains("PUT") && first.ends_with('1'), "{first}");

    // Paused: events are held, not shown; resumed: shown.
    b.click("#watch-pause").await;
    s.put("/w/b", "held");
    b.wait_text("#watch-state", "1 new events held", WAIT).await;
    assert!(!b.text("#watch-events tbody").await.contains("/w/b"));
    b.click("#watch-pause").await;
    b.wait_text("#watch-events tbody", "/w/b", WAIT).await;
    s.call("kv/deleterange", json!({"key": b64("/w/a")}), None);
    b.wait_text("#watch-events tbody tr:first-child", "DELETE", WAIT)
        .await;
    let all = b.text("#watch-events tbody").await;
    assert!(!all.contains("/outside"), "{all}");
    b.screenshot("watch").await;

    b.click("#watch-stop").await;
    b.wait_text("#watch-state", "Not watching (stopped)", WAIT)
        .await;
    s.put("/w/c", "after stop");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!b.text("#watch-events tbody").await.contains("/w/c"));

    // Replaying history from a revision.
    b.fill("#watch-rev", &rev.to_string()).await;
    b.click("#watch-start").await;
    b.wait_text("#watch-events tbody", "/w/c", WAIT).await;
    no_page_errors(&b);
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_list_their_keys_and_revoke() {
    let s = Setup::start();
    let g = s.call("lease/grant", json!({"TTL": 600}), None);
    let id: u64 = g["ID"].as_str().unwrap().parse().unwrap();
    let hex = format!("{id:x}");
    for k in ["/lease/a", "/lease/b"] {
        s.call(
            "kv/put",
            json!({"key": b64(k), "value": b64("v"), "lease": id.to_string()}),
            None,
        );
    }
    s.call("lease/grant", json!({"TTL": 300}), None);
    let b = s.open("leases").await;
    b.wait_text("#lease-count", "2 leases", WAIT).await;
    controls_are_labelled(&b).await;
    let row = format!(r#"tr[data-lease="{hex}"]"#);
    let text = b.wait_text(&row, "2 keys", WAIT).await;
    assert!(text.contains("600 s"), "{text}");
    b.click(&format!(r#"[data-lease-keys="{hex}"]"#)).await;
    b.wait_for(&format!(r#"{row} [data-key="/lease/b"]"#), WAIT)
        .await;
    b.screenshot("leases").await;

    // A key's detail shows its lease and what is left of it.
    b.click(&format!(r#"{row} [data-key="/lease/a"]"#)).await;
    b.wait_text("#detail-lease", &format!("{hex} (TTL "), WAIT)
        .await;

    b.goto(&s.url("leases")).await;
    b.click(&format!(r#"[data-revoke="{hex}"]"#)).await;
    b.wait_text("#confirm-text", "delete its 2 keys", WAIT)
        .await;
    b.click("#confirm-ok").await;
    b.wait_text("#banner-text", &format!("Revoked lease {hex}"), WAIT)
        .await;
    b.wait_text("#lease-count", "1 lease", WAIT).await;
    assert!(s.get("/lease/a").is_none() && s.get("/lease/b").is_none());
    no_page_errors(&b);
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_view_shows_members_and_load() {
    let s = Setup::start();
    let b = s.open("cluster").await;
    let row = b.wait_text("#members tbody", "leader", WAIT).await;
    assert!(
        row.contains("healthy") && row.contains("(this member)"),
        "{row}"
    );
    assert!(
        row.contains(&format!("http://127.0.0.1:{}", s.server.client_port())),
        "{row}"
    );
    b.wait_text("#cluster-summary", "1 member, leader n1", WAIT)
        .await;
    b.wait_text("#alarms", "none", WAIT).await;
    // Some load for the chart, taken from the node's /metrics.
    for i in 0..200 {
        s.put(&format!("/load/{i}"), "v");
    }
    let summary = b
        .wait_text("#chart-summary", "requests/s", Duration::from_secs(15))
        .await;
    assert!(summary.contains("p99"), "{summary}");
    // A few more samples, so the chart shows lines (bounded: 6 s, 3000
    // puts at most).
    let t = std::time::Instant::now();
    for i in 0..3000 {
        if t.elapsed() > Duration::from_secs(6) {
            break;
        }
        s.put(&format!("/load/{}", i % 100), "w");
    }
    b.screenshot("cluster").await;

    // A raised alarm shows, and makes the member unhealthy (as /health).
    let id = s.call("maintenance/status", json!({}), None)["header"]["member_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let alarm = |action: &str| {
        s.call(
            "maintenance/alarm",
            json!({"action": action, "memberID": id, "alarm": "NOSPACE"}),
            None,
        )
    };
    alarm("ACTIVATE");
    b.wait_text("#alarms", "NOSPACE on member", WAIT).await;
    b.wait_text("#members tbody", "unhealthy: alarm", WAIT)
        .await;
    alarm("DEACTIVATE");
    b.wait_text("#alarms", "none", WAIT).await;
    b.wait_gone("#members td.health.down", WAIT).await;
    b.wait_for("#members td.health.up", WAIT).await;
    no_page_errors(&b);
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_the_console_acts_as_the_user() {
    let s = Setup::start();
    s.put("/pub/notice", "hello readers");
    s.put("/private/secret", "no");
    let call = |p: &str, body: Value| s.call(p, body, None);
    s.add_root();
    call(
        "auth/user/add",
        json!({"name": "alice", "password": "alicepw"}),
    );
    call("auth/role/add", json!({"name": "reader"}));
    call(
        "auth/role/grant",
        json!({"name": "reader", "perm": {"permType": "READ", "key": b64("/pub/"), "range_end": b64("/pub0")}}),
    );
    call(
        "auth/user/grant",
        json!({"user": "alice", "role": "reader"}),
    );
    call("auth/enable", json!({}));

    let b = s.open("keys").await;
    b.wait_for("#view-login", WAIT).await;
    controls_are_labelled(&b).await;
    assert!(b.try_find("#view-keys:not([hidden])").await.is_none());
    b.fill("#login-user", "alice").await;
    b.fill("#login-password", "wrong").await;
    b.click("#login-submit").await;
    b.wait_text("#login-error", "authentication failed", WAIT)
        .await;
    b.screenshot("login").await;
    b.fill("#login-password", "alicepw").await;
    b.click("#login-submit").await;
    b.wait_text("#who", "user: alice", WAIT).await;

    // She may read /pub/, nothing else, and may not write.
    b.fill("#keys-prefix", "/pub/").await;
    b.click("#keys-go").await;
    b.click(r#"[data-key="/pub/notice"]"#).await;
    b.wait_text("#detail-value", "hello readers", WAIT).await;
    b.click("#detail-edit").await;
    b.fill("#edit-value", "defaced").await;
    b.click("#edit-save").await;
    b.wait_text("#edit-error", "permission denied", WAIT).await;
    let root = s.call(
        "auth/authenticate",
        json!({"name": "root", "password": "rootpw"}),
        None,
    );
    let token = root["token"].as_str().unwrap().to_owned();
    assert_eq!(
        s.get_as("/pub/notice", Some(&token)).unwrap().0,
        "hello readers"
    );
    b.fill("#keys-prefix", "/private/").await;
    b.click("#keys-go").await;
    b.wait_text("#keys-tree", "permission denied", WAIT).await;

    // Logging out forgets the token.
    b.click("#logout").await;
    b.wait_for("#view-login", WAIT).await;
    let token_left = b
        .exec("return sessionStorage.getItem('ferrocd.token')", vec![])
        .await;
    assert!(token_left.is_null(), "{token_left}");
    no_page_errors(&b);
    b.close().await;
}

/// A token that expired sends the user back to the login, saying why; the
/// page does not go on with an anonymous identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_asks_to_log_in_again() {
    let s = Setup::start_with(&["--auth-token-ttl", "1"]);
    s.add_root();
    s.put("k", "v");
    s.call("auth/enable", json!({}), None);
    let b = s.open("keys").await;
    b.fill("#login-user", "root").await;
    b.fill("#login-password", "rootpw").await;
    b.click("#login-submit").await;
    b.wait_text("#who", "user: root", WAIT).await;
    b.wait_for(r#"[data-key="k"]"#, WAIT).await;
    // Idle past the token's TTL (1 s; simple tokens expire unused).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    b.click("#keys-go").await;
    b.wait_text("#login-error", "Your session expired", WAIT)
        .await;
    b.wait_text("#who", "not logged in", WAIT).await;
    no_page_errors(&b);
    b.close().await;
}
