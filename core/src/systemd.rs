//! systemd's service notification protocol (`Type=notify` units, which
//! etcd's unit files use): `READY=1` once the member serves clients,
//! `STOPPING=1` when it starts shutting down, and `WATCHDOG=1` every half
//! `WATCHDOG_USEC` while the member runs, if the unit sets `WatchdogSec=`.
//!
//! Each message is one datagram to the Unix socket named by
//! `$NOTIFY_SOCKET` (a path, or `@name` for an abstract socket), sent by
//! the `sd-notify` crate. Without `$NOTIFY_SOCKET` nothing is sent. A
//! failed send is logged and otherwise ignored, as etcd does: the member
//! serves either way, and systemd's own timeouts report a unit that never
//! became ready.

use std::time::Duration;

use sd_notify::NotifyState;

/// Tell systemd the member serves clients (etcd sends this once its
/// server is ready and its client listeners accept).
pub(crate) fn ready() {
    send(&[NotifyState::Ready], "READY=1");
}

/// Tell systemd the member is shutting down.
pub(crate) fn stopping() {
    send(&[NotifyState::Stopping], "STOPPING=1");
}

/// Keep systemd's watchdog fed: `WATCHDOG=1` every half of the interval
/// the unit asked for (`$WATCHDOG_USEC`, for this process if
/// `$WATCHDOG_PID` names one), for as long as the task runs. `None` when
/// no watchdog is asked for.
pub(crate) fn watchdog() -> Option<impl Future<Output = ()> + Send + 'static> {
    let interval = sd_notify::watchdog_enabled()?;
    let every = (interval / 2).max(Duration::from_millis(1));
    tracing::info!(
        interval_ms = interval.as_millis() as u64,
        "feeding systemd's watchdog"
    );
    Some(async move {
        loop {
            if let Err(e) = sd_notify::notify(&[NotifyState::Watchdog]) {
                tracing::warn!(error = %e, "failed to feed systemd's watchdog");
            }
            tokio::time::sleep(every).await;
        }
    })
}

fn send(state: &[NotifyState], what: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    match sd_notify::notify(state) {
        Ok(()) => tracing::info!(
            message = what,
            socket = %socket.to_string_lossy(),
            "notified systemd"
        ),
        Err(e) => tracing::warn!(
            message = what,
            socket = %socket.to_string_lossy(),
            error = %e,
            "failed to notify systemd"
        ),
    }
}
