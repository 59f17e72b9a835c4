//! Group commit: many concurrent appenders, one write and one fdatasync per
//! batch.
//!
//! [`Batcher`] is the sans-IO core: requests go in, and it says when to
//! start a sync and whom to answer. While a sync is in flight, new
//! requests wait; when it finishes, everything that arrived meanwhile goes
//! out as the next batch (one sync for all of them), so the batch size
//! grows with the load and the latency of one request is at most two syncs.
//!
//! [`GroupCommit`] drives it on a dedicated thread that owns the [`Wal`]
//! (the blocking write and fdatasync happen there, never on a shard or a
//! tokio worker). Appenders call [`GroupCommit::commit`] from any executor (the
//! reply is a `tokio::sync::oneshot`, which needs no tokio runtime) or
//! [`GroupCommit::commit_blocking`] from a plain thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::error::{ReadError, WriteError};
use crate::fs::Fs;
use crate::log::{Entries, Wal};

/// One change to the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Append entry `index` (must follow the last one).
    Entry {
        /// Raft index.
        index: u64,
        /// Payload.
        payload: Vec<u8>,
    },
    /// Set metadata `key`.
    Meta {
        /// Key.
        key: u64,
        /// Payload.
        payload: Vec<u8>,
    },
    /// Drop entries `>= index`.
    Truncate {
        /// First index dropped.
        index: u64,
    },
    /// Drop every entry; the next must be `next` (>= 1). See
    /// [`Wal::reset_to`].
    Reset {
        /// Index of the next entry.
        next: u64,
    },
}

/// A command of the [`Batcher`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<T> {
    /// Apply these requests' ops in order, then write and fdatasync once.
    Sync(Vec<T>),
    /// Answer these requests with the outcome of their sync.
    Reply(Vec<T>),
}

/// The sans-IO batching state machine; `T` is whatever identifies a
/// request (a ticket, or the request itself).
#[derive(Debug)]
pub struct Batcher<T> {
    waiting: Vec<T>,
    in_flight: Option<Vec<T>>,
}

impl<T> Default for Batcher<T> {
    fn default() -> Self {
        Self {
            waiting: Vec::new(),
            in_flight: None,
        }
    }
}

impl<T: Clone> Batcher<T> {
    /// A request arrived. Starts a sync at once when none is in flight.
    pub fn submit(&mut self, req: T) -> Vec<Command<T>> {
        self.submit_many([req])
    }

    /// Several requests arrived together (the driver drained its queue):
    /// they all go into the same sync.
    pub fn submit_many(&mut self, reqs: impl IntoIterator<Item = T>) -> Vec<Command<T>> {
        self.waiting.extend(reqs);
        self.start()
    }

    /// The in-flight sync finished (successfully or not: the caller
    /// carries the result to the replies).
    pub fn synced(&mut self) -> Vec<Command<T>> {
        let mut out = Vec::new();
        if let Some(done) = self.in_flight.take() {
            out.push(Command::Reply(done));
        }
        out.extend(self.start());
        out
    }

    /// Requests waiting for the next sync.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    fn start(&mut self) -> Vec<Command<T>> {
        if self.in_flight.is_some() || self.waiting.is_empty() {
            return Vec::new();
        }
        let batch = std::mem::take(&mut self.waiting);
        self.in_flight = Some(batch.clone());
        vec![Command::Sync(batch)]
    }
}

/// One group commit, as reported to a [`SyncObserver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncEvent {
    /// How long the write + fdatasync took.
    pub duration: std::time::Duration,
    /// Requests that shared it.
    pub requests: usize,
    /// Bytes it wrote (batch header and records; 0 when nothing was
    /// buffered).
    pub bytes: u64,
}

/// Called on the wal thread after every sync (metrics); must be cheap.
pub type SyncObserver = std::sync::Arc<dyn Fn(SyncEvent) + Send + Sync>;

/// What the thread answers: the durable last index, or the error.
pub type CommitResult = Result<Option<u64>, WriteError>;

struct Request {
    ops: Vec<Op>,
    reply: oneshot::Sender<CommitResult>,
}

/// Work for the wal thread besides commits (it owns the log).
enum Job {
    Commit(Request),
    Read {
        from: u64,
        to: u64,
        reply: oneshot::Sender<Result<Entries, ReadError>>,
    },
    Purge {
        before: u64,
        reply: oneshot::Sender<Result<usize, WriteError>>,
    },
}

/// A handle to the group-commit thread; clone it freely. The thread stops
/// (and [`Worker::join`] returns the log) when every handle is gone.
#[derive(Clone)]
pub struct GroupCommit {
    tx: mpsc::Sender<Job>,
    /// Jobs submitted and not yet answered.
    outstanding: Arc<AtomicUsize>,
    inline: Arc<dyn Inline>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("outstanding", &self.outstanding.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The log and what both the thread and [`GroupCommit::try_commit_here`]
/// need; the thread holds the lock while it works on a batch.
struct Shared<F: Fs> {
    wal: Mutex<Option<Wal<F>>>,
    outstanding: Arc<AtomicUsize>,
    observer: Option<SyncObserver>,
}

/// [`GroupCommit::try_commit_here`] without the file system's type.
trait Inline: Send + Sync {
    fn try_commit(&self, ops: Vec<Op>) -> Result<CommitResult, Vec<Op>>;
}

impl<F: Fs> Inline for Shared<F> {
    fn try_commit(&self, ops: Vec<Op>) -> Result<CommitResult, Vec<Op>> {
        // Anything queued goes first, so only an idle log takes a write
        // here (and a busy thread holds the lock).
        if self.outstanding.load(Ordering::SeqCst) != 0 {
            return Err(ops);
        }
        let Ok(mut guard) = self.wal.try_lock() else {
            return Err(ops);
        };
        if self.outstanding.load(Ordering::SeqCst) != 0 {
            return Err(ops);
        }
        let Some(wal) = guard.as_mut() else {
            return Err(ops);
        };
        if let Err(e) = validate(&ops, wal.last_index()).and_then(|()| apply(wal, ops)) {
            return Ok(Err(e));
        }
        Ok(sync_observed(wal, &self.observer, 1))
    }
}

/// `wal.sync()`, reported to `observer` as carrying `requests`.
fn sync_observed<F: Fs>(
    wal: &mut Wal<F>,
    observer: &Option<SyncObserver>,
    requests: usize,
) -> CommitResult {
    let started = std::time::Instant::now();
    let before = wal.bytes_written();
    let result = wal.sync();
    if let Some(obs) = observer {
        obs(SyncEvent {
            duration: started.elapsed(),
            requests,
            bytes: wal.bytes_written() - before,
        });
    }
    result
}

/// The thread, for [`Worker::join`].
pub struct Worker<F: Fs> {
    handle: JoinHandle<()>,
    shared: Arc<Shared<F>>,
}

impl<F: Fs> std::fmt::Debug for Worker<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").finish_non_exhaustive()
    }
}

impl<F: Fs> Worker<F> {
    /// Wait for the thread (after every [`GroupCommit`] handle is dropped)
    /// and get the log back.
    pub fn join(self) -> Wal<F> {
        self.handle
            .join()
            .expect("wal group-commit thread panicked");
        self.shared
            .wal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("the log is returned once")
    }
}

impl GroupCommit {
    /// Move `wal` onto a new thread named `wal`.
    pub fn start<F: Fs>(wal: Wal<F>) -> (GroupCommit, Worker<F>) {
        Self::start_observed(wal, None)
    }

    /// [`GroupCommit::start`], reporting every sync to `observer`.
    pub fn start_observed<F: Fs>(
        wal: Wal<F>,
        observer: Option<SyncObserver>,
    ) -> (GroupCommit, Worker<F>) {
        let (tx, rx) = mpsc::channel::<Job>();
        let outstanding = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Shared {
            wal: Mutex::new(Some(wal)),
            outstanding: outstanding.clone(),
            observer,
        });
        let thread_shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name("wal".into())
            .spawn(move || run(&thread_shared, rx))
            .expect("spawn the wal thread");
        (
            GroupCommit {
                tx,
                outstanding,
                inline: shared.clone(),
            },
            Worker { handle, shared },
        )
    }

    /// Apply `ops` and make them durable on the calling thread, when the
    /// log is idle (nothing queued, the thread not working): `Err(ops)`
    /// otherwise, to [`GroupCommit::submit`] instead. Blocks for the
    /// write and fdatasync. For a caller that would only wait for the
    /// thread anyway: it saves the two thread hand-offs per batch (on
    /// this repo's VM about 40 µs of a single client's latency, and
    /// 10–25 % of the CPU per request under load; docs/BENCHMARKS.md
    /// issue #19). Order is kept: a write taken here
    /// had nothing queued before it, and what is submitted meanwhile
    /// waits for the lock.
    pub fn try_commit_here(&self, ops: Vec<Op>) -> Result<CommitResult, Vec<Op>> {
        self.inline.try_commit(ops)
    }

    fn send(&self, job: Job) -> Result<(), Job> {
        self.outstanding.fetch_add(1, Ordering::SeqCst);
        self.tx.send(job).map_err(|mpsc::SendError(j)| {
            self.outstanding.fetch_sub(1, Ordering::SeqCst);
            j
        })
    }

    /// Queue `ops`; the returned [`Pending`] resolves once they are durable
    /// (together with everything queued alongside them). Requests are
    /// applied in the order they are submitted, so one submitter can keep
    /// many in flight.
    pub fn submit(&self, ops: Vec<Op>) -> Pending {
        let (reply, rx) = oneshot::channel();
        let rx = match self.send(Job::Commit(Request { ops, reply })) {
            Ok(()) => Some(rx),
            Err(_) => None,
        };
        Pending { rx }
    }

    /// Apply `ops` and return once they are durable.
    pub async fn commit(&self, ops: Vec<Op>) -> CommitResult {
        self.submit(ops).await
    }

    /// [`GroupCommit::commit`] for plain threads.
    pub fn commit_blocking(&self, ops: Vec<Op>) -> CommitResult {
        self.submit(ops).wait()
    }

    /// Entries `from..=to` (see [`Wal::entries`]), read on the wal thread
    /// between batches, so they reflect every commit answered before.
    pub async fn read(&self, from: u64, to: u64) -> Result<Entries, ReadError> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Read { from, to, reply })
            .map_err(|_| ReadError::Io(gone()))?;
        rx.await.map_err(|_| ReadError::Io(gone()))?
    }

    /// Remove segments wholly before `before` (see [`Wal::purge_before`]).
    pub async fn purge_before(&self, before: u64) -> Result<usize, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Purge { before, reply })
            .map_err(|_| WriteError::Failed)?;
        rx.await.map_err(|_| WriteError::Failed)?
    }
}

fn gone() -> std::io::Error {
    std::io::Error::other("the wal thread has stopped")
}

/// A submitted request; a future (any executor) or [`Pending::wait`].
#[derive(Debug)]
pub struct Pending {
    rx: Option<oneshot::Receiver<CommitResult>>,
}

impl Pending {
    /// Block the thread until the outcome is known. Not from inside an
    /// async runtime's worker (tokio panics there): `.await` instead.
    pub fn wait(self) -> CommitResult {
        match self.rx {
            Some(rx) => rx.blocking_recv().map_err(|_| WriteError::Failed)?,
            None => Err(WriteError::Failed),
        }
    }
}

impl std::future::Future for Pending {
    type Output = CommitResult;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<CommitResult> {
        match self.rx.as_mut() {
            None => std::task::Poll::Ready(Err(WriteError::Failed)),
            Some(rx) => std::pin::Pin::new(rx)
                .poll(cx)
                .map(|r| r.map_err(|_| WriteError::Failed).and_then(|r| r)),
        }
    }
}

/// Check a request against the log's last index without changing anything,
/// so a bad request is refused whole and never half-applied.
fn validate(ops: &[Op], mut last: Option<u64>) -> Result<(), WriteError> {
    for op in ops {
        match op {
            Op::Entry { index, payload } => {
                if let Some(li) = last
                    && *index != li + 1
                {
                    return Err(WriteError::IndexGap {
                        expected_after: li,
                        found: *index,
                    });
                }
                if payload.len() > crate::record::MAX_PAYLOAD {
                    return Err(WriteError::TooLarge(payload.len()));
                }
                last = Some(*index);
            }
            Op::Meta { payload, .. } if payload.len() > crate::record::MAX_PAYLOAD => {
                return Err(WriteError::TooLarge(payload.len()));
            }
            Op::Meta { .. } => {}
            Op::Truncate { index } => {
                if last.is_none_or(|li| *index <= li) {
                    last = index.checked_sub(1);
                }
            }
            Op::Reset { next: 0 } => return Err(WriteError::ResetToZero),
            Op::Reset { next } => last = Some(next - 1),
        }
    }
    Ok(())
}

fn apply<F: Fs>(wal: &mut Wal<F>, ops: Vec<Op>) -> Result<(), WriteError> {
    for op in ops {
        match op {
            Op::Entry { index, payload } => wal.append_entry(index, &payload)?,
            Op::Meta { key, payload } => wal.append_meta(key, &payload)?,
            // Buffered like the rest: made durable by this batch's sync.
            Op::Truncate { index } => wal.truncate_buffered(index)?,
            Op::Reset { next } => wal.reset_buffered(next)?,
        }
    }
    Ok(())
}

fn run<F: Fs>(shared: &Shared<F>, rx: mpsc::Receiver<Job>) {
    let observer = &shared.observer;
    let mut batcher: Batcher<usize> = Batcher::default();
    let mut slots: Vec<Option<Request>> = Vec::new();
    // Block for the first job, then take everything already queued: the
    // commits among them share one sync; reads and purges run after it.
    while let Ok(first) = rx.recv() {
        let mut guard = shared.wal.lock().unwrap_or_else(|e| e.into_inner());
        let wal = guard
            .as_mut()
            .expect("the log is here until the thread ends");
        let mut jobs = 0;
        let mut others = Vec::new();
        for job in std::iter::once(first).chain(rx.try_iter()) {
            jobs += 1;
            match job {
                Job::Commit(req) => slots.push(Some(req)),
                other => others.push(other),
            }
        }
        let mut cmds = if slots.is_empty() {
            Vec::new()
        } else {
            batcher.submit_many(0..slots.len())
        };
        while let Some(cmd) = cmds.pop() {
            match cmd {
                Command::Sync(batch) => {
                    let mut accepted = Vec::new();
                    for slot in batch {
                        let req = slots[slot].take().expect("request in one batch only");
                        match validate(&req.ops, wal.last_index())
                            .and_then(|()| apply(wal, req.ops))
                        {
                            Ok(()) => accepted.push(req.reply),
                            Err(e) => {
                                let _ = req.reply.send(Err(e));
                            }
                        }
                    }
                    let result = sync_observed(wal, observer, accepted.len());
                    for reply in accepted {
                        let r = match &result {
                            Ok(i) => Ok(*i),
                            // Keep the errno: callers match on it.
                            Err(WriteError::Io(e)) => Err(WriteError::Io(match e.raw_os_error() {
                                Some(errno) => std::io::Error::from_raw_os_error(errno),
                                None => std::io::Error::new(e.kind(), e.to_string()),
                            })),
                            Err(_) => Err(WriteError::Failed),
                        };
                        // A caller that gave up is not an error here.
                        let _ = reply.send(r);
                    }
                    cmds.extend(batcher.synced());
                }
                Command::Reply(_) => {
                    // Replies were sent with the sync's outcome above.
                }
            }
        }
        slots.clear();
        for job in others {
            match job {
                Job::Read { from, to, reply } => {
                    let _ = reply.send(wal.entries(from, to));
                }
                Job::Purge { before, reply } => {
                    let _ = reply.send(wal.purge_before(before));
                }
                Job::Commit(_) => unreachable!("commits were batched above"),
            }
        }
        drop(guard);
        shared.outstanding.fetch_sub(jobs, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batcher_starts_at_once_then_groups_what_arrives_meanwhile() {
        let mut b = Batcher::default();
        assert_eq!(b.submit(1), vec![Command::Sync(vec![1])]);
        assert_eq!(b.submit(2), vec![]);
        assert_eq!(b.submit(3), vec![]);
        assert_eq!(b.waiting(), 2);
        assert_eq!(
            b.synced(),
            vec![Command::Reply(vec![1]), Command::Sync(vec![2, 3])]
        );
        assert_eq!(b.synced(), vec![Command::Reply(vec![2, 3])]);
        assert_eq!(b.synced(), vec![]);
        assert_eq!(b.submit(4), vec![Command::Sync(vec![4])]);
    }

    #[test]
    fn requests_drained_together_share_one_sync() {
        let mut b = Batcher::default();
        assert_eq!(b.submit_many([1, 2, 3]), vec![Command::Sync(vec![1, 2, 3])]);
        assert_eq!(b.submit_many([4, 5]), vec![]);
        assert_eq!(
            b.synced(),
            vec![Command::Reply(vec![1, 2, 3]), Command::Sync(vec![4, 5])]
        );
    }

    #[test]
    fn validate_refuses_gaps_whole() {
        let e = |i| Op::Entry {
            index: i,
            payload: vec![],
        };
        assert!(validate(&[e(1), e(2)], None).is_ok());
        assert!(validate(&[e(6), e(7)], Some(5)).is_ok());
        assert!(matches!(
            validate(&[e(6), e(8)], Some(5)),
            Err(WriteError::IndexGap { .. })
        ));
        assert!(validate(&[Op::Truncate { index: 3 }, e(3)], Some(5)).is_ok());
        assert!(validate(&[Op::Truncate { index: 9 }, e(6)], Some(5)).is_ok());
        // A reset sets the next index, above or below the last one.
        assert!(validate(&[Op::Reset { next: 100 }, e(100), e(101)], Some(5)).is_ok());
        assert!(validate(&[e(6), Op::Reset { next: 2 }, e(2)], Some(5)).is_ok());
        assert!(validate(&[Op::Reset { next: 1 }, e(1)], None).is_ok());
        assert!(matches!(
            validate(&[Op::Reset { next: 100 }, e(6)], Some(5)),
            Err(WriteError::IndexGap {
                expected_after: 99,
                found: 6
            })
        ));
        assert!(matches!(
            validate(&[e(6), Op::Reset { next: 0 }], Some(5)),
            Err(WriteError::ResetToZero)
        ));
    }

    #[test]
    fn reset_commits_with_its_entries_in_one_sync() {
        let fs = crate::SimFs::new();
        let (mut wal, _) = Wal::open(fs.clone(), "/w", crate::Config::default()).unwrap();
        wal.append_entry(1, b"a").unwrap();
        wal.sync().unwrap();
        let syncs = wal.sync_count();
        let (gc, worker) = GroupCommit::start(wal);
        let ops = vec![
            Op::Reset { next: 500 },
            Op::Entry {
                index: 500,
                payload: b"x".to_vec(),
            },
        ];
        assert_eq!(gc.commit_blocking(ops).unwrap(), Some(500));
        assert!(matches!(
            gc.commit_blocking(vec![Op::Reset { next: 0 }]),
            Err(WriteError::ResetToZero)
        ));
        drop(gc);
        let wal = worker.join();
        assert_eq!(wal.sync_count(), syncs + 1);
        drop(wal);
        let (_, rec) = Wal::open(fs.crash(), "/w", crate::Config::default()).unwrap();
        assert_eq!((rec.first_index, rec.last_index), (Some(500), Some(500)));
    }

    #[test]
    fn observer_hears_every_sync() {
        use std::sync::Mutex;
        let fs = crate::SimFs::new();
        let (wal, _) = Wal::open(fs, "/w", crate::Config::default()).unwrap();
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let (gc, worker) = GroupCommit::start_observed(
            wal,
            Some(std::sync::Arc::new(move |e: SyncEvent| {
                s2.lock().unwrap().push(e.requests)
            })),
        );
        for i in 1..=3 {
            gc.commit_blocking(vec![Op::Entry {
                index: i,
                payload: vec![1; 8],
            }])
            .unwrap();
        }
        drop(gc);
        worker.join();
        assert_eq!(*seen.lock().unwrap(), vec![1, 1, 1]);
    }
    fn entry(i: u64) -> Op {
        Op::Entry {
            index: i,
            payload: vec![i as u8; 16],
        }
    }

    /// A write on the caller's thread: taken only when nothing is queued
    /// and the thread is idle, durable before it returns (a power cut
    /// right after keeps it), heard by the observer, refused ops come
    /// back unchanged, and order holds with submitted writes.
    #[test]
    fn an_idle_log_commits_on_the_callers_thread() {
        use std::sync::Mutex;
        let fs = crate::SimFs::new();
        let (wal, _) = Wal::open(fs.clone(), "/w", crate::Config::default()).unwrap();
        let seen = Arc::new(Mutex::new(0usize));
        let s2 = seen.clone();
        let (gc, worker) = GroupCommit::start_observed(
            wal,
            Some(Arc::new(move |_e: SyncEvent| *s2.lock().unwrap() += 1)),
        );
        assert_eq!(
            gc.try_commit_here(vec![entry(1)]).unwrap().unwrap(),
            Some(1)
        );
        assert_eq!(*seen.lock().unwrap(), 1);
        // Something queued (or the thread at work): the ops come back.
        gc.outstanding.fetch_add(1, Ordering::SeqCst);
        let back = gc.try_commit_here(vec![entry(2)]).unwrap_err();
        assert_eq!(back, vec![entry(2)]);
        gc.outstanding.fetch_sub(1, Ordering::SeqCst);
        // A bad write is refused whole, here too.
        assert!(matches!(
            gc.try_commit_here(vec![entry(5)]).unwrap(),
            Err(WriteError::IndexGap { .. })
        ));
        // Submitted and inline writes interleave in order.
        let p = gc.submit(vec![entry(2)]);
        let mut next = 3;
        match gc.try_commit_here(vec![entry(3)]) {
            Ok(r) => {
                assert_eq!(r.unwrap(), Some(3));
                next = 4;
            }
            Err(ops) => assert_eq!(ops, vec![entry(3)]),
        }
        assert!(p.wait().is_ok());
        for i in next..=6 {
            match gc.try_commit_here(vec![entry(i)]) {
                Ok(r) => assert_eq!(r.unwrap(), Some(i)),
                Err(ops) => assert_eq!(gc.commit_blocking(ops).unwrap(), Some(i)),
            }
        }
        let outstanding = gc.outstanding.clone();
        drop(gc);
        let wal = worker.join();
        // Every job was answered and counted off.
        assert_eq!(outstanding.load(Ordering::SeqCst), 0);
        drop(wal);
        let (mut wal, rec) = Wal::open(fs.crash(), "/w", crate::Config::default()).unwrap();
        assert_eq!((rec.first_index, rec.last_index), (Some(1), Some(6)));
        let got: Vec<u64> = wal
            .entries(1, 6)
            .unwrap()
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert_eq!(got, vec![1, 2, 3, 4, 5, 6]);
    }
}
