//! The Python and Node clients, installed on first use into a cache dir
//! and reused after: a venv from `clients/python/requirements.txt` (the
//! shared conformance suite's pins) and a `node_modules` from
//! `clients/node/package-lock.json` (`npm ci`).
//!
//! The cache is `$FERROCD_INTEROP_CACHE`, else
//! `$XDG_CACHE_HOME/ferrocd-interop`, else `~/.cache/ferrocd-interop`.
//! Each install is keyed by the file it installs from: a `.installed` file
//! beside it holds that file's text, and a change reinstalls. Tests run as
//! parallel processes, so an install holds an exclusive lock on
//! `<name>.lock` (waiting at most [`LOCK_WAIT`]).
//!
//! When an install is impossible (no `python3 -m venv`, no `npm`, no
//! registry), the tests fail with the installer's output: a client that
//! was not run proves nothing.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process;

/// How long one install (venv creation plus pip, or `npm ci`) may take.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a test waits for another test's install to finish.
const LOCK_WAIT: Duration = Duration::from_secs(360);

/// This target's helper files (`clients/`).
pub fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/clients")
}

fn cache_dir() -> PathBuf {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let dir = if let Some(d) = env("FERROCD_INTEROP_CACHE") {
        PathBuf::from(d)
    } else if let Some(d) = env("XDG_CACHE_HOME") {
        PathBuf::from(d).join("ferrocd-interop")
    } else if let Some(h) = env("HOME") {
        PathBuf::from(h).join(".cache/ferrocd-interop")
    } else {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("ferrocd-interop")
    };
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("create the client cache {}: {e}", dir.display()));
    dir
}

/// Holds `<cache>/<name>.lock` exclusively while alive.
struct Lock(#[allow(dead_code)] File);

fn lock(cache: &Path, name: &str) -> Lock {
    let path = cache.join(format!("{name}.lock"));
    let f = File::create(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match f.try_lock() {
            Ok(()) => return Lock(f),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("lock {}: {e}", path.display()),
        }
    }
}

/// `dir` is installed from `source` (the text recorded in
/// `dir/.installed`); otherwise runs `install` on an emptied `dir` and
/// records it. Returns `dir`.
fn installed(name: &str, source: &Path, install: impl FnOnce(&Path)) -> PathBuf {
    let cache = cache_dir();
    let _lock = lock(&cache, name);
    let dir = cache.join(name);
    let marker = dir.join(".installed");
    let want = std::fs::read_to_string(source)
        .unwrap_or_else(|e| panic!("read {}: {e}", source.display()));
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(want.as_str()) {
        return dir;
    }
    eprintln!("installing {name} into {} ...", dir.display());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    install(&dir);
    std::fs::write(&marker, want).unwrap_or_else(|e| panic!("write {}: {e}", marker.display()));
    dir
}

#[track_caller]
fn step(cmd: &mut Command, what: &str) {
    let out = process::run(cmd, None, INSTALL_TIMEOUT);
    assert_eq!(
        out.code,
        Some(0),
        "{what} failed (the interop tests need it; see scripts/test)\nstdout: {}\nstderr: {}",
        out.text(),
        out.stderr
    );
}

/// The venv's `python`, with etcd3 and its pins installed.
pub fn python() -> PathBuf {
    let reqs = clients_dir().join("python/requirements.txt");
    let dir = installed("python", &reqs, |dir| {
        step(
            Command::new("python3").arg("-m").arg("venv").arg(dir),
            "python3 -m venv",
        );
        step(
            Command::new(dir.join("bin/pip"))
                .args(["install", "-q", "--disable-pip-version-check", "-r"])
                .arg(&reqs),
            "pip install -r clients/python/requirements.txt",
        );
    });
    dir.join("bin/python")
}

/// The `node_modules` dir with etcd3 and its locked dependencies.
pub fn node_modules() -> PathBuf {
    let src = clients_dir().join("node");
    let lockfile = src.join("package-lock.json");
    let dir = installed("node", &lockfile, |dir| {
        for f in ["package.json", "package-lock.json"] {
            std::fs::copy(src.join(f), dir.join(f))
                .unwrap_or_else(|e| panic!("copy {f} into {}: {e}", dir.display()));
        }
        // No install scripts: nothing in the tree needs one (protobufjs's
        // postinstall only checks versions).
        step(
            Command::new("npm")
                .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
                .current_dir(dir),
            "npm ci (clients/node)",
        );
    });
    dir.join("node_modules")
}
