//! The Python and Node scenario scripts (`clients/`), run as child
//! processes with the clients `install.rs` set up; their JSON report is
//! returned for `report::check`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::{install, process, report};

/// One script run's bound: the 5 s keep-alive and a few dozen calls take
/// about 8 s; a client that hangs fails the test here.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

#[track_caller]
fn report_of(mut cmd: Command, what: &str) -> Value {
    let out = process::run(&mut cmd, None, SCRIPT_TIMEOUT);
    let stdout = out.ok(what);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "{what}: no JSON report ({e})\nstdout: {stdout}\nstderr: {}",
            out.stderr
        )
    })
}

/// `clients/python/scenario.py` with the Python etcd3 client.
pub fn python(endpoint: &str, snapshot: &Path) -> Value {
    let python = install::python();
    let mut cmd = Command::new(python);
    cmd.arg(install::clients_dir().join("python/scenario.py"))
        .arg(report::config(endpoint, snapshot).to_string())
        // Nothing written into the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1");
    report_of(cmd, "python etcd3 scenario")
}

/// `clients/node/scenario.mjs` with Node's etcd3 client.
pub fn node(endpoint: &str, snapshot: &Path) -> Value {
    let modules = install::node_modules();
    let mut cfg = report::config(endpoint, snapshot);
    cfg["modules"] = Value::from(modules.to_str().expect("UTF-8 cache path"));
    let mut cmd = Command::new("node");
    cmd.arg(install::clients_dir().join("node/scenario.mjs"))
        .arg(cfg.to_string());
    report_of(cmd, "node etcd3 scenario")
}
