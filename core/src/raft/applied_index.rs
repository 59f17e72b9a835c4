//! The log index this member's state machine has applied, and the tasks
//! waiting for it: a read at its read index, a request a follower
//! forwarded (answered once this member has applied it too), a token
//! issued by an entry not applied here yet.
//!
//! The state machine publishes the index after each applied batch (and
//! snapshot install), once the store shows it. A waiter whose index is
//! reached is woken through its shard's mailbox ([`super::mailbox`]):
//! one message per shard per batch. (openraft's own wait, used before,
//! woke every waiter on every change of the raft metrics, and each
//! wake-up cloned the metrics, about 2 KiB with maps, and cost a
//! cross-thread wake of its task.)

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;

use super::mailbox::{self, Mailbox, Wake, Wakes};

/// Waiters whose answer went away (timed out) are dropped when this
/// many are registered, and then at twice what is left.
const PRUNE_AT: usize = 1024;

/// See the module docs.
#[derive(Debug)]
pub struct AppliedIndex {
    index: AtomicU64,
    waiters: Mutex<Waiters>,
}

#[derive(Debug)]
struct Waiter {
    tx: oneshot::Sender<()>,
    mailbox: Option<Mailbox>,
}

#[derive(Debug)]
struct Waiters {
    by_index: BTreeMap<u64, Vec<Waiter>>,
    count: usize,
    prune_at: usize,
    /// Set by [`AppliedIndex::close`]: no more waiting.
    closed: bool,
}

impl AppliedIndex {
    /// Applied up to `index` (0: nothing).
    pub(crate) fn new(index: u64) -> Self {
        AppliedIndex {
            index: AtomicU64::new(index),
            waiters: Mutex::new(Waiters {
                by_index: BTreeMap::new(),
                count: 0,
                prune_at: PRUNE_AT,
                closed: false,
            }),
        }
    }

    /// The applied index.
    pub fn get(&self) -> u64 {
        self.index.load(Ordering::Acquire)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.waiters.lock().expect("applied index lock")
    }

    /// `index` is applied and the store shows it: wake everyone waiting
    /// for it or less. Never lowers the index.
    pub(crate) fn publish(&self, index: u64) {
        let due = {
            let mut w = self.lock();
            // Under the lock: a waiter checks the index under it too, so
            // it either sees this index or is registered before it and
            // woken here.
            self.index.fetch_max(index, Ordering::AcqRel);
            if w.by_index.first_key_value().is_none_or(|(&i, _)| i > index) {
                return;
            }
            let later = w.by_index.split_off(&(index + 1));
            let due = std::mem::replace(&mut w.by_index, later);
            w.count -= due.values().map(Vec::len).sum::<usize>();
            due
        };
        let mut wakes = Wakes::default();
        for waiter in due.into_values().flatten() {
            wakes.push(waiter.mailbox, Wake::Applied(waiter.tx));
        }
        wakes.send();
    }

    /// Stop: every waiter returns `false` now, and later ones at once
    /// unless their index is applied already.
    pub(crate) fn close(&self) {
        let mut w = self.lock();
        w.closed = true;
        w.by_index.clear();
        w.count = 0;
    }

    /// Wait until `index` is applied, for at most `timeout`; `false` if
    /// it was not by then (or [`AppliedIndex::close`] was called).
    pub(crate) async fn wait(&self, index: u64, timeout: Duration) -> bool {
        if self.get() >= index {
            return true;
        }
        let rx = {
            let mut w = self.lock();
            if self.get() >= index {
                return true;
            }
            if w.closed {
                return false;
            }
            let (tx, rx) = oneshot::channel();
            w.by_index.entry(index).or_default().push(Waiter {
                tx,
                mailbox: mailbox::this_thread(),
            });
            w.count += 1;
            if w.count >= w.prune_at {
                w.by_index.retain(|_, v| {
                    v.retain(|waiter| !waiter.tx.is_closed());
                    !v.is_empty()
                });
                w.count = w.by_index.values().map(Vec::len).sum();
                w.prune_at = (2 * w.count).max(PRUNE_AT);
            }
            rx
        };
        matches!(tokio::time::timeout(timeout, rx).await, Ok(Ok(())))
    }

    /// Waiters registered (for tests).
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.lock().count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const LONG: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn an_applied_index_answers_at_once() {
        let a = AppliedIndex::new(5);
        assert!(a.wait(5, Duration::ZERO).await);
        assert!(a.wait(3, Duration::ZERO).await);
        assert_eq!(a.waiting(), 0);
    }

    #[tokio::test]
    async fn waiters_wake_when_their_index_is_published_and_not_before() {
        let a = Arc::new(AppliedIndex::new(0));
        let mut tasks = Vec::new();
        for i in [3u64, 5, 5, 9] {
            let a = a.clone();
            tasks.push((i, tokio::spawn(async move { a.wait(i, LONG).await })));
        }
        while a.waiting() < 4 {
            tokio::task::yield_now().await;
        }
        a.publish(5);
        for (i, t) in tasks.iter_mut() {
            if *i <= 5 {
                assert!(t.await.unwrap(), "waiter for {i}");
            }
        }
        assert_eq!(a.waiting(), 1);
        assert!(!tasks[3].1.is_finished());
        a.publish(4); // never lowers
        assert_eq!(a.get(), 5);
        a.publish(9);
        assert!((&mut tasks[3].1).await.unwrap());
        assert_eq!(a.waiting(), 0);
    }

    #[tokio::test]
    async fn a_wait_times_out_and_close_releases_everyone() {
        let a = Arc::new(AppliedIndex::new(1));
        assert!(!a.wait(2, Duration::from_millis(10)).await);
        let b = a.clone();
        let t = tokio::spawn(async move { b.wait(7, LONG).await });
        while a.waiting() < 2 {
            tokio::task::yield_now().await;
        }
        a.close();
        assert!(!t.await.unwrap());
        assert!(!a.wait(2, LONG).await, "closed: no new waits");
        assert!(a.wait(1, LONG).await, "an applied index still answers");
    }

    #[tokio::test]
    async fn timed_out_waiters_are_pruned() {
        let a = AppliedIndex::new(0);
        for i in 0..PRUNE_AT as u64 {
            assert!(!a.wait(10 + i, Duration::ZERO).await);
        }
        // The last registration pruned the ones before it (their
        // receivers were dropped when they timed out).
        assert!(a.waiting() < 2, "{} left", a.waiting());
    }

    #[test]
    fn wakes_go_through_the_waiters_mailbox() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let a = Arc::new(AppliedIndex::new(0));
        rt.block_on(async {
            mailbox::open_mailbox();
            let b = a.clone();
            let t = tokio::spawn(async move { b.wait(2, LONG).await });
            while a.waiting() < 1 {
                tokio::task::yield_now().await;
            }
            // Published from another thread, as the raft thread does.
            let c = a.clone();
            std::thread::spawn(move || c.publish(2)).join().unwrap();
            assert!(t.await.unwrap());
        });
    }
}
