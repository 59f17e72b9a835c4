//! `ferrocd-lossyfs MOUNTPOINT --control SOCKET`: mount an in-memory file
//! system that drops everything not fsynced when told `cut` on the
//! control socket (see `ferrocd_fault::lossyfs`).
//!
//! Prints `mounted <MOUNTPOINT>` on stdout once the mount and the socket
//! are ready. SIGTERM or SIGINT unmounts and exits 0; if the mount is busy
//! (a process still has files open on it) it is detached lazily instead
//! (`fusermount3 -u -z`) and the daemon exits when the last file closes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::Parser;
use ferrocd_fault::lossyfs::Daemon;

#[derive(Debug, Parser)]
#[command(
    name = "ferrocd-lossyfs",
    about = "A FUSE file system that loses unsynced data on command"
)]
struct Args {
    /// Where to mount (an existing, empty directory).
    mountpoint: PathBuf,
    /// The control socket to create (unix stream; `cut`, `sync-all`,
    /// `stats`, one per line).
    #[arg(long)]
    control: PathBuf,
    /// Milliseconds every fsync/fdatasync waits before it makes anything
    /// durable (a slow disk; the default 0 is as fast as memory). A cut
    /// that comes meanwhile drops the write and fails the fsync.
    #[arg(long, default_value_t = 0)]
    fsync_delay_ms: u64,
}

/// Block SIGTERM and SIGINT in this thread (and so in every thread it
/// starts after), then return the set for `sigwait`.
fn block_signals() -> std::io::Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data; sigemptyset initializes it fully
    // before any other use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable sigset_t; the calls only write it
    // and the thread's signal mask.
    let rc = unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    Ok(set)
}

fn wait_signal(set: &libc::sigset_t) -> i32 {
    let mut sig = 0;
    loop {
        // SAFETY: `set` is an initialized sigset_t and `sig` a valid out
        // pointer for the duration of the call.
        let rc = unsafe { libc::sigwait(set, &mut sig) };
        if rc == 0 {
            return sig;
        }
    }
}

fn lazy_unmount(mountpoint: &Path) {
    match Command::new("fusermount3")
        .arg("-u")
        .arg("-z")
        .arg(mountpoint)
        .status()
    {
        Ok(s) if s.success() => {}
        Ok(s) => eprintln!("ferrocd-lossyfs: fusermount3 -u -z: {s}"),
        Err(e) => eprintln!("ferrocd-lossyfs: fusermount3 -u -z: {e}"),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let set = match block_signals() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ferrocd-lossyfs: block signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut daemon = match Daemon::mount(
        &args.mountpoint,
        &args.control,
        std::time::Duration::from_millis(args.fsync_delay_ms),
    ) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("ferrocd-lossyfs: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut unmounter = daemon.unmounter();
    let mountpoint = args.mountpoint.clone();
    std::thread::Builder::new()
        .name("lossyfs-signals".into())
        .spawn(move || {
            let sig = wait_signal(&set);
            eprintln!("ferrocd-lossyfs: signal {sig}, unmounting");
            if let Err(e) = unmounter.unmount() {
                eprintln!("ferrocd-lossyfs: unmount: {e}; detaching lazily");
                lazy_unmount(&mountpoint);
            }
        })
        .expect("spawn the signal thread");
    println!("mounted {}", args.mountpoint.display());
    let _ = std::io::stdout().flush();
    match daemon.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrocd-lossyfs: session: {e}");
            ExitCode::FAILURE
        }
    }
}
