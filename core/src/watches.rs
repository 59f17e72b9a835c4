//! The node's watch hub: `mvcc::Hub` (sans-IO) behind a mutex, plus a
//! waker per stream.
//!
//! - The apply loop calls [`Watches::notify`] once per applied batch and
//!   wakes the streams that got responses.
//! - Each wire stream owns a [`StreamId`], waits on its `Notify`, and
//!   drains its responses.
//! - [`Watches::run_syncer`] catches lagging (unsynced) watchers up from
//!   the store and drives progress notifications: woken when a watcher
//!   needs history, and every 100 ms otherwise.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ferrocd_mvcc::{self as mvcc, Event, Hub, StreamId, WatchRequest, WatchResponse, WatcherId};
use tokio::sync::Notify;

/// Catch-up work per syncer pass, in events.
const SYNC_EVENTS: usize = 10_000;

/// See the module docs.
#[derive(Debug)]
pub struct Watches {
    hub: Mutex<Hub>,
    wakers: Mutex<HashMap<StreamId, Arc<Notify>>>,
    next_stream: AtomicU64,
    kick: Notify,
}

impl Watches {
    /// A hub at `revision` (the store's, after recovery).
    pub fn new(config: mvcc::WatchConfig, revision: i64) -> Self {
        Self {
            hub: Mutex::new(Hub::new(config, revision)),
            wakers: Mutex::new(HashMap::new()),
            next_stream: AtomicU64::new(1),
            kick: Notify::new(),
        }
    }

    fn hub(&self) -> MutexGuard<'_, Hub> {
        self.hub.lock().expect("watch hub lock")
    }

    fn wake_ready(&self, hub: &Hub) {
        let ready: Vec<StreamId> = hub.ready_streams().collect();
        if ready.is_empty() {
            return;
        }
        let wakers = self.wakers.lock().expect("watch wakers lock");
        for s in ready {
            if let Some(n) = wakers.get(&s) {
                n.notify_one();
            }
        }
    }

    /// A committed batch: the store's revision after it and its events.
    pub fn notify(&self, revision: i64, events: &[Event]) {
        let mut hub = self.hub();
        if revision <= hub.revision() {
            return;
        }
        hub.notify(revision, events);
        self.wake_ready(&hub);
        if hub.unsynced_len() > 0 {
            self.kick.notify_one();
        }
    }

    /// A new wire stream.
    pub fn open_stream(&self) -> (StreamId, Arc<Notify>) {
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let n = Arc::new(Notify::new());
        self.wakers
            .lock()
            .expect("watch wakers lock")
            .insert(id, n.clone());
        (id, n)
    }

    /// The stream went away: its watchers and queued responses go too.
    pub fn close_stream(&self, stream: StreamId) {
        self.hub().close_stream(stream);
        self.wakers
            .lock()
            .expect("watch wakers lock")
            .remove(&stream);
    }

    /// Register a watcher; returns it and the hub's revision (for the
    /// created response's header).
    pub fn watch(&self, stream: StreamId, req: WatchRequest) -> (WatcherId, i64) {
        let mut hub = self.hub();
        let id = hub.watch(stream, req);
        let rev = hub.revision();
        if hub.unsynced_len() > 0 {
            self.kick.notify_one();
        }
        (id, rev)
    }

    /// Cancel a watcher; false if unknown.
    pub fn cancel(&self, id: WatcherId) -> bool {
        let mut hub = self.hub();
        let r = hub.cancel(id);
        self.wake_ready(&hub);
        r
    }

    /// A progress request on `stream`.
    pub fn request_progress(&self, stream: StreamId) {
        let mut hub = self.hub();
        hub.request_progress(stream);
        self.wake_ready(&hub);
    }

    /// Move up to `max` queued responses of `stream` into `out`.
    pub fn drain(&self, stream: StreamId, max: usize, out: &mut Vec<WatchResponse>) -> usize {
        let mut hub = self.hub();
        let n = hub.drain_stream(stream, max, out);
        if hub.unsynced_len() > 0 {
            // Draining made room for watchers that fell behind.
            self.kick.notify_one();
        }
        n
    }

    /// Live watchers.
    pub fn len(&self) -> usize {
        self.hub().len()
    }

    /// No watchers.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One syncer pass: catch-up from `store` and progress ticks.
    pub fn sync_once(&self, store: &mvcc::Store) {
        let mut hub = self.hub();
        if hub.unsynced_len() > 0 {
            let view = store.snapshot();
            if let Err(e) = hub.sync_unsynced(&view, SYNC_EVENTS) {
                tracing::warn!(error = %e, "watch catch-up failed; retrying");
            }
        }
        hub.tick(Instant::now());
        self.wake_ready(&hub);
    }

    /// Run the syncer until `stop` is notified.
    pub async fn run_syncer(self: Arc<Self>, store: Arc<mvcc::Store>, stop: Arc<Notify>) {
        loop {
            self.sync_once(&store);
            let more = self.hub().unsynced_len() > 0;
            let wait = if more {
                Duration::from_millis(1)
            } else {
                Duration::from_millis(100)
            };
            tokio::select! {
                _ = stop.notified() => return,
                _ = self.kick.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
