//! End-to-end tests of the web console: headless Chromium, driven over
//! WebDriver by `browser::Browser`, against a real ferrocd on loopback
//! ports (`common::Server`).
//!
//! They need Debian's `chromium` and `chromium-driver` (`scripts/test`
//! installs them) and fail, rather than skip, without them. Screenshots go
//! to `$FERROCD_UI_SHOTS`, else `<CARGO_TARGET_TMPDIR>/ui-shots/`.

#[path = "../common/mod.rs"]
mod common;

mod browser;
mod console;

use std::time::Duration;

use browser::Browser;
use common::{Server, tempdir};

/// The harness itself: the browser starts, reaches a ferrocd, reads a page
/// and takes a screenshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_reaches_a_ferrocd() {
    let tmp = tempdir();
    let s = Server::start_with(&tmp.path().join("data"), &[]);
    let b = Browser::start().await;

    b.goto(&format!("http://127.0.0.1:{}/version", s.client_port()))
        .await;
    let text = b
        .wait_text("body", "etcdserver", Duration::from_secs(10))
        .await;
    assert!(text.contains("etcdcluster"), "{text}");

    let shot = b.screenshot("smoke").await;
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("read {}: {e}", shot.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is no PNG",
        shot.display()
    );
    b.close().await;
}
