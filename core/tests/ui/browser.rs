//! Headless Chromium for the console tests, driven over WebDriver.
//!
//! [`Browser::start`] spawns a `chromedriver` of its own on a free loopback
//! port and opens one session with a fresh profile in a temporary
//! directory, so tests never share cookies, storage or a driver. Each test
//! starts its own.
//!
//! Binaries, found in this order (a missing one fails the test and says
//! what to install; a browser test that skips proves nothing):
//! - chromedriver: `$CHROMEDRIVER`, `chromedriver` on `PATH`,
//!   `/usr/lib/chromium/chromedriver` (Debian's `chromium-driver`);
//! - the browser: `$CHROMIUM`, then `chromium`, `chromium-browser`,
//!   `google-chrome` on `PATH` (Debian's `chromium`).
//!
//! Everything is bounded: chromedriver must answer within
//! [`DRIVER_READY_TIMEOUT`], one WebDriver command within
//! [`COMMAND_TIMEOUT`], and helpers that act on an element first wait up to
//! [`ELEMENT_TIMEOUT`] for it. The helpers panic with what they waited for,
//! the page's URL and the start of its text, which is what a failed console
//! test needs to be read. On a panicking test, dropping the browser also
//! prints the page's JavaScript console and the end of chromedriver's log.
//!
//! Dropping a [`Browser`] (or [`Browser::close`]) ends the WebDriver session,
//! which makes chromedriver quit Chromium, then stops chromedriver by its
//! pid (SIGTERM, then SIGKILL after [`DRIVER_STOP_TIMEOUT`]) and reaps it.

// The smoke test uses a few helpers; the console tests use the rest.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// How long a fresh chromedriver gets to answer `/status`.
pub const DRIVER_READY_TIMEOUT: Duration = Duration::from_secs(20);
/// The bound on one WebDriver command (a navigation included).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Browser::click`], [`Browser::fill`], [`Browser::select`],
/// [`Browser::text`] and the alert helpers wait for their target.
pub const ELEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long SIGTERM gets before SIGKILL.
pub const DRIVER_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// The polling interval of the `wait_*` helpers.
const POLL: Duration = Duration::from_millis(50);
/// How much of the page's text a panic message quotes.
const TEXT_IN_PANIC: usize = 2000;

/// The arguments Chromium gets. `--no-sandbox` because tests (and CI) run as
/// root, where Chromium refuses to start sandboxed; `--disable-dev-shm-usage`
/// because containers often have a 64 MiB `/dev/shm`; a fixed window size
/// and scale factor so screenshots are comparable from run to run.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
    "--force-device-scale-factor=1",
    "--no-first-run",
    "--no-default-browser-check",
];

/// One headless Chromium session with its own chromedriver.
pub struct Browser {
    /// `None` once [`Browser::close`] has ended the session.
    client: Option<Client>,
    session_id: String,
    driver: Child,
    driver_port: u16,
    /// Holds chromedriver's log and Chromium's profile; removed on drop,
    /// after both processes are gone.
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("session_id", &self.session_id)
            .field("driver_pid", &self.driver.id())
            .field("driver_port", &self.driver_port)
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl Browser {
    /// Starts chromedriver and opens a session (see the module docs).
    pub async fn start() -> Browser {
        let driver_bin = find_chromedriver();
        let chromium = find_chromium();
        let dir = tempfile::Builder::new()
            .prefix("ferrocd-ui-")
            .tempdir()
            .expect("tempdir for the browser");
        let profile = dir.path().join("profile");
        std::fs::create_dir_all(&profile).expect("create the browser profile dir");
        let log = dir.path().join("chromedriver.log");

        // Another process may take the port between our probe and
        // chromedriver's bind; then chromedriver exits and we try another.
        let mut last = String::new();
        for _ in 0..3 {
            let port = crate::common::free_port();
            let log_file = std::fs::File::create(&log).expect("create chromedriver.log");
            let mut driver = Command::new(&driver_bin)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("dup log fd"))
                .stderr(log_file)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", driver_bin.display()));
            match wait_driver_ready(&mut driver, port).await {
                Ok(()) => {
                    return Self::open_session(driver, port, dir, &chromium, &profile).await;
                }
                Err(e) => {
                    last = format!("{e}\nchromedriver.log:\n{}", read_tail(&log, 4000));
                    stop_process(&mut driver);
                }
            }
        }
        panic!(
            "chromedriver {} did not start: {last}",
            driver_bin.display()
        );
    }

    async fn open_session(
        mut driver: Child,
        port: u16,
        dir: tempfile::TempDir,
        chromium: &Path,
        profile: &Path,
    ) -> Browser {
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.to_string_lossy(),
                "args": args,
            },
            // Keep the page's console so a failed test can print it.
            "goog:loggingPrefs": { "browser": "ALL" },
            // A confirm() left open must fail the next command, not be
            // answered behind the test's back.
            "unhandledPromptBehavior": "ignore",
            "timeouts": { "pageLoad": COMMAND_TIMEOUT.as_millis() as u64, "script": COMMAND_TIMEOUT.as_millis() as u64 },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let url = format!("http://127.0.0.1:{port}");
        let connect = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await;
        let client = match connect {
            Ok(c) => c,
            Err(e) => {
                stop_process(&mut driver);
                panic!(
                    "no WebDriver session from chromedriver with {}: {e}\nchromedriver.log:\n{}",
                    chromium.display(),
                    read_tail(&dir.path().join("chromedriver.log"), 4000)
                );
            }
        };
        let session_id = client
            .session_id()
            .await
            .ok()
            .flatten()
            .expect("chromedriver returned a session id");
        Browser {
            client: Some(client),
            session_id,
            driver,
            driver_port: port,
            dir,
        }
    }

    /// The fantoccini client, for what the helpers don't cover.
    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("browser session is open")
    }

    /// Navigates to `url` and waits for its load event.
    pub async fn goto(&self, url: &str) {
        if let Err(e) = self.bounded("goto", self.client().goto(url)).await {
            panic!("goto {url}: {e}\n{}", self.context().await);
        }
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        match self
            .bounded("current_url", self.client().current_url())
            .await
        {
            Ok(u) => u.to_string(),
            Err(e) => panic!("current_url: {e}"),
        }
    }

    /// The visible text of the whole page (`document.body.innerText`).
    pub async fn page_text(&self) -> String {
        self.exec(
            "return document.body ? document.body.innerText : '';",
            vec![],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// The element matching `css` now (no waiting), or a panic.
    pub async fn find(&self, css: &str) -> Element {
        match self.try_find(css).await {
            Some(e) => e,
            None => panic!("no element matches {css:?}\n{}", self.context().await),
        }
    }

    /// The element matching `css` now, if any.
    pub async fn try_find(&self, css: &str) -> Option<Element> {
        self.bounded(css, self.client().find(Locator::Css(css)))
            .await
            .ok()
    }

    /// Every element matching `css` now, in document order.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        match self
            .bounded(css, self.client().find_all(Locator::Css(css)))
            .await
        {
            Ok(v) => v,
            Err(e) => panic!("find_all {css:?}: {e}\n{}", self.context().await),
        }
    }

    /// Waits until an element matching `css` is present and displayed.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Element {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.try_find(css).await
                && e.is_displayed().await.unwrap_or(false)
            {
                return e;
            }
            if Instant::now() >= deadline {
                panic!(
                    "waited {timeout:?} for {css:?} to be present and displayed\n{}",
                    self.context().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until no element matching `css` is displayed (absent or
    /// hidden), e.g. a deleted row or a closed dialog.
    pub async fn wait_gone(&self, css: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let shown = match self.try_find(css).await {
                Some(e) => e.is_displayed().await.unwrap_or(false),
                None => false,
            };
            if !shown {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "waited {timeout:?} for {css:?} to go away\n{}",
                    self.context().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the text of the element matching `css` contains
    /// `needle`; returns that text. The element may be replaced meanwhile
    /// (it is looked up again on every poll).
    pub async fn wait_text(&self, css: &str, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut seen = None;
        loop {
            if let Some(e) = self.try_find(css).await
                && let Ok(t) = e.text().await
            {
                if t.contains(needle) {
                    return t;
                }
                seen = Some(t);
            }
            if Instant::now() >= deadline {
                panic!(
                    "waited {timeout:?} for the text of {css:?} to contain {needle:?}; \
                     its text was {seen:?}\n{}",
                    self.context().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Clicks the element matching `css`, once it is displayed.
    pub async fn click(&self, css: &str) {
        let e = self.wait_for(css, ELEMENT_TIMEOUT).await;
        if let Err(err) = self.bounded(css, e.click()).await {
            panic!("click {css:?}: {err}\n{}", self.context().await);
        }
    }

    /// Replaces the value of the input or textarea matching `css` with
    /// `text` (clear, then typed keys, so the page sees `input` events).
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.wait_for(css, ELEMENT_TIMEOUT).await;
        let r = async {
            e.clear().await?;
            e.send_keys(text).await
        };
        if let Err(err) = self.bounded(css, r).await {
            panic!(
                "fill {css:?} with {text:?}: {err}\n{}",
                self.context().await
            );
        }
    }

    /// Chooses the `<option value=value>` of the `<select>` matching `css`.
    pub async fn select(&self, css: &str, value: &str) {
        let e = self.wait_for(css, ELEMENT_TIMEOUT).await;
        if let Err(err) = self.bounded(css, e.select_by_value(value)).await {
            panic!(
                "select {value:?} in {css:?}: {err}\n{}",
                self.context().await
            );
        }
    }

    /// The visible text of the element matching `css`, once it is displayed.
    pub async fn text(&self, css: &str) -> String {
        let e = self.wait_for(css, ELEMENT_TIMEOUT).await;
        match self.bounded(css, e.text()).await {
            Ok(t) => t,
            Err(err) => panic!("text of {css:?}: {err}\n{}", self.context().await),
        }
    }

    /// The current `value` of the input, textarea or select matching `css`.
    pub async fn value(&self, css: &str) -> String {
        let e = self.wait_for(css, ELEMENT_TIMEOUT).await;
        match self.bounded(css, e.prop("value")).await {
            Ok(v) => v.unwrap_or_default(),
            Err(err) => panic!("value of {css:?}: {err}\n{}", self.context().await),
        }
    }

    /// Runs `js` as a function body in the page (`arguments[i]` are `args`)
    /// and returns what it returns.
    pub async fn exec(&self, js: &str, args: Vec<Value>) -> Value {
        match self
            .bounded("execute", self.client().execute(js, args))
            .await
        {
            Ok(v) => v,
            Err(e) => panic!("executing {js:?}: {e}"),
        }
    }

    /// Waits for a `window.confirm`/`alert`/`prompt` dialog, accepts it,
    /// and returns its message.
    pub async fn accept_alert(&self) -> String {
        let text = self.wait_alert().await;
        if let Err(e) = self.bounded("accept", self.client().accept_alert()).await {
            panic!("accepting the dialog {text:?}: {e}");
        }
        text
    }

    /// Waits for a dialog, dismisses it (`confirm` returns false), and
    /// returns its message.
    pub async fn dismiss_alert(&self) -> String {
        let text = self.wait_alert().await;
        if let Err(e) = self.bounded("dismiss", self.client().dismiss_alert()).await {
            panic!("dismissing the dialog {text:?}: {e}");
        }
        text
    }

    async fn wait_alert(&self) -> String {
        let deadline = Instant::now() + ELEMENT_TIMEOUT;
        loop {
            if let Ok(t) = self
                .bounded("alert text", self.client().get_alert_text())
                .await
            {
                return t;
            }
            if Instant::now() >= deadline {
                panic!(
                    "waited {ELEMENT_TIMEOUT:?} for a dialog (confirm/alert)\n{}",
                    self.context().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Saves a PNG of the viewport as `<name>.png` in `$FERROCD_UI_SHOTS`,
    /// else in `<CARGO_TARGET_TMPDIR>/ui-shots/`; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = std::env::var_os("FERROCD_UI_SHOTS")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-shots"));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("create screenshot dir {}: {e}", dir.display()));
        let png = match self.bounded("screenshot", self.client().screenshot()).await {
            Ok(png) => png,
            Err(e) => panic!("screenshot {name}: {e}"),
        };
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// The page's JavaScript console so far (errors, warnings, logs), one
    /// line each, from chromedriver's log endpoint. Reading drains it.
    pub fn console_log(&self) -> Vec<String> {
        let path = format!("/session/{}/se/log", self.session_id);
        let Some((200, body)) = driver_http(
            self.driver_port,
            "POST",
            &path,
            Some(r#"{"type":"browser"}"#),
        ) else {
            return Vec::new();
        };
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        v["value"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e["level"].as_str().unwrap_or("?"),
                            e["message"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Ends the session and stops chromedriver, reporting a failure to end
    /// the session (dropping does the same but can only log it).
    pub async fn close(mut self) {
        if let Some(c) = self.client.take() {
            let r = tokio::time::timeout(COMMAND_TIMEOUT, c.close()).await;
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("ending the WebDriver session: {e}"),
                Err(_) => panic!("ending the WebDriver session took over {COMMAND_TIMEOUT:?}"),
            }
        }
        // Drop stops chromedriver.
    }

    /// `fut` bounded by [`COMMAND_TIMEOUT`]; a timeout reads as an error.
    async fn bounded<T, E: std::fmt::Display>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, E>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(COMMAND_TIMEOUT, fut).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!("{what}: no answer within {COMMAND_TIMEOUT:?}")),
        }
    }

    /// The page's URL and the start of its text, for panic messages. Never
    /// panics itself (it runs inside other panics' formatting).
    async fn context(&self) -> String {
        let Some(c) = self.client.as_ref() else {
            return "(session closed)".into();
        };
        let url = match tokio::time::timeout(Duration::from_secs(5), c.current_url()).await {
            Ok(Ok(u)) => u.to_string(),
            _ => "?".into(),
        };
        let text = tokio::time::timeout(
            Duration::from_secs(5),
            c.execute(
                "return document.body ? document.body.innerText : '';",
                vec![],
            ),
        )
        .await;
        let text = match text {
            Ok(Ok(Value::String(t))) => {
                let mut t = t;
                if t.len() > TEXT_IN_PANIC {
                    let mut cut = TEXT_IN_PANIC;
                    while !t.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    t.truncate(cut);
                    t.push_str(" …");
                }
                t
            }
            Ok(Err(e)) => format!("(unreadable: {e})"),
            _ => "(unreadable)".into(),
        };
        format!("page: {url}\npage text:\n{text}")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let console = self.console_log();
            if !console.is_empty() {
                eprintln!("browser console:\n{}", console.join("\n"));
            }
            eprintln!(
                "chromedriver.log (end):\n{}",
                read_tail(&self.dir.path().join("chromedriver.log"), 4000)
            );
        }
        if self.client.take().is_some() {
            // fantoccini ends the session from a background task once the
            // client is dropped, which would race the kill below; end it
            // here, synchronously, so chromedriver quits Chromium first.
            let path = format!("/session/{}", self.session_id);
            if driver_http(self.driver_port, "DELETE", &path, None).is_none() {
                eprintln!(
                    "warning: could not end WebDriver session {}",
                    self.session_id
                );
            }
        }
        stop_process(&mut self.driver);
    }
}

/// chromedriver: `$CHROMEDRIVER`, `PATH`, then Debian's location.
fn find_chromedriver() -> PathBuf {
    if let Some(p) = std::env::var_os("CHROMEDRIVER").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "$CHROMEDRIVER is {}, which is no file",
            p.display()
        );
        return p;
    }
    on_path("chromedriver")
        .or_else(|| {
            let p = PathBuf::from("/usr/lib/chromium/chromedriver");
            p.is_file().then_some(p)
        })
        .unwrap_or_else(|| {
            panic!(
                "no chromedriver ($CHROMEDRIVER, PATH, /usr/lib/chromium/chromedriver): \
                 the web console tests need a headless Chromium; install Debian's chromium \
                 and chromium-driver (apt-get install chromium chromium-driver); scripts/test does"
            )
        })
}

/// The browser: `$CHROMIUM`, then the usual names on `PATH`.
fn find_chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("CHROMIUM").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "$CHROMIUM is {}, which is no file",
            p.display()
        );
        return p;
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| on_path(name))
        .unwrap_or_else(|| {
            panic!(
                "no Chromium ($CHROMIUM, or chromium, chromium-browser, google-chrome on PATH): \
                 the web console tests need a headless Chromium; install Debian's chromium \
                 and chromium-driver (apt-get install chromium chromium-driver); scripts/test does"
            )
        })
}

/// The first executable file called `name` in `$PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Polls chromedriver's `/status` until it says ready, it exits, or
/// [`DRIVER_READY_TIMEOUT`] passes.
async fn wait_driver_ready(driver: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + DRIVER_READY_TIMEOUT;
    loop {
        if let Some(status) = driver.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("chromedriver exited with {status}"));
        }
        let probe = tokio::task::spawn_blocking(move || driver_http(port, "GET", "/status", None))
            .await
            .ok()
            .flatten();
        if let Some((200, body)) = probe
            && serde_json::from_str::<Value>(&body).is_ok_and(|v| v["value"]["ready"] == true)
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "chromedriver on port {port} not ready within {DRIVER_READY_TIMEOUT:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One request to chromedriver on a fresh connection: (status, body).
/// Synchronous, for `Drop`; bounded by socket timeouts. chromedriver keeps
/// the connection open whatever `Connection` says, so the body is read by
/// its `Content-Length` (which chromedriver always sends), not to the end.
fn driver_http(port: u16, method: &str, path: &str, body: Option<&str>) -> Option<(u16, String)> {
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    // Ending a session waits for Chromium to exit, which takes a moment.
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut resp = Vec::new();
    let mut buf = [0u8; 8192];
    let (head_len, code, len) = loop {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        resp.extend_from_slice(&buf[..n]);
        if let Some(end) = resp.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&resp[..end]).to_ascii_lowercase();
            let code: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())?;
            break (end + 4, code, len);
        }
    };
    while resp.len() < head_len + len {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        resp.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&resp[head_len..head_len + len]).into_owned();
    Some((code, body))
}

/// SIGTERM to `child` by its pid, SIGKILL if it is still there after
/// [`DRIVER_STOP_TIMEOUT`]; then reaps it.
fn stop_process(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill(2) with the pid of our own unreaped child, which cannot
    // have been reused by another process: it stays a zombie until we wait.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + DRIVER_STOP_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The last `max` bytes of a log file, for panic messages.
fn read_tail(path: &Path, max: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return format!("({} unreadable)", path.display());
    };
    let start = bytes.len().saturating_sub(max);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}
