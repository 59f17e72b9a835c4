//! lossyfs: an in-memory FUSE file system that loses, on command, every
//! byte and every directory entry that was not fsynced — what a power cut
//! does, which `kill -9` never shows (the page cache survives it).
//!
//! A `ferrocd` member runs with its `--data-dir` on the mount; the harness
//! kills it, sends `cut` on the control socket, and restarts it on what a
//! real disk would have kept. The layer has to sit under the process: the
//! WAL writes through io_uring (which FUSE serves from io_uring's worker
//! threads) and snapshots are read through `mmap`.
//!
//! - [`Model`]: the state and its durability rules (undo logs for file
//!   bytes, synced copies of directory entry maps); no FUSE in it.
//! - [`LossyFs`]: the FUSE file system over a shared model (the pure-Rust
//!   `fuser` crate: no libfuse; as root it mounts with mount(2), otherwise
//!   through `fusermount3` from Debian's `fuse3`, which is also what
//!   unmounts a mount whose daemon died: `fusermount3 -u MOUNTPOINT`).
//! - [`Control`]: the control socket's line protocol (`cut`, `sync-all`,
//!   `stats`).
//! - [`Daemon`]: mount + control socket + session loop, as the
//!   `ferrocd-lossyfs` binary runs them.

mod control;
mod data;
mod fs;
mod model;

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use fuser::{Config, MountOption, Session, SessionACL, SessionUnmounter};

pub use control::Control;
pub use fs::LossyFs;
pub use model::{CutReport, Model, Stats};

/// A mounted lossyfs with its control socket bound, not yet serving.
#[derive(Debug)]
pub struct Daemon {
    session: Session<LossyFs>,
    control: PathBuf,
}

impl Daemon {
    /// Mount an empty file system on `mountpoint` and bind the control
    /// socket at `control` (a leftover socket file there is replaced).
    /// Every fsync waits `fsync_delay` before it makes anything durable.
    pub fn mount(
        mountpoint: &Path,
        control: &Path,
        fsync_delay: std::time::Duration,
    ) -> io::Result<Self> {
        let model = Arc::new(Mutex::new(Model::new()));
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("lossyfs".into()),
            MountOption::Subtype("lossyfs".into()),
            MountOption::NoAtime,
            MountOption::NoDev,
            MountOption::NoSuid,
        ];
        config.acl = SessionACL::Owner;
        // One thread: requests are served in the order the kernel sends
        // them, and the model is behind one lock anyway.
        config.n_threads = Some(1);
        let session = Session::new(
            LossyFs::new(model.clone(), fsync_delay),
            mountpoint,
            &config,
        )
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "mount lossyfs on {}: {e} (needs /dev/fuse, and root or \
                         fusermount3 from Debian's fuse3)",
                    mountpoint.display()
                ),
            )
        })?;
        if let Ok(m) = std::fs::symlink_metadata(control)
            && m.file_type().is_socket()
        {
            std::fs::remove_file(control)?;
        }
        let listener = UnixListener::bind(control).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("bind control socket {}: {e}", control.display()),
            )
        })?;
        Control::new(model, Some(session.notifier())).serve(listener);
        Ok(Self {
            session,
            control: control.to_owned(),
        })
    }

    /// A handle that unmounts from another thread (a signal handler's),
    /// which ends [`Daemon::run`].
    pub fn unmounter(&mut self) -> SessionUnmounter {
        self.session.unmount_callable()
    }

    /// Serve until the file system is unmounted; removes the control
    /// socket on the way out.
    pub fn run(self) -> io::Result<()> {
        let r = self.session.run();
        let _ = std::fs::remove_file(&self.control);
        r
    }
}
