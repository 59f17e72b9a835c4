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
use ferrocd_net::Metrics;
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
    metrics: Metrics,
}

impl Watches {
    /// A hub at `revision` (the store's, after recovery), reporting to
    /// `metrics`.
    pub fn new(config: mvcc::WatchConfig, revision: i64, metrics: Metrics) -> Self {
        Self {
            hub: Mutex::new(Hub::new(config, revision)),
            wakers: Mutex::new(HashMap::new()),
            next_stream: AtomicU64::new(1),
            kick: Notify::new(),
            metrics,
        }
    }

    /// The hub's queued events and unsynced watchers, after every change
    /// (`etcd_debugging_mvcc_{pending_events,slow_watcher}_total`): two
    /// atomic stores under the hub's lock.
    fn report(&self, hub: &Hub) {
        self.metrics
            .set_watch_backlog(hub.queued_events() as u64, hub.unsynced_len() as u64);
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
        self.report(&hub);
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
        {
            let mut hub = self.hub();
            hub.close_stream(stream);
            self.report(&hub);
        }
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
        self.report(&hub);
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
        self.report(&hub);
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
        let from = out.len();
        let n = hub.drain_stream(stream, max, out);
        // Handed to the stream's sender: etcd counts an event once its
        // response is sent (`etcd_debugging_mvcc_events_total`).
        let events: usize = out[from..].iter().map(|r| r.events.len()).sum();
        if events > 0 {
            self.metrics.watch_events_sent(events as u64);
        }
        self.report(&hub);
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
        self.report(&hub);
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
