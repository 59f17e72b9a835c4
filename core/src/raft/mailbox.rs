//! Wake-ups from the raft thread to the shards, one message per shard
//! per batch.
//!
//! A request task on a shard waits for the raft thread twice over: for
//! its answer (the proposer) and, on a follower or for a read, for this
//! member to have applied an index ([`super::AppliedIndex`]). Waking a
//! task of a shard's current-thread runtime from another thread costs an
//! `eventfd` write each (tokio's remote wake-up), and a batch's answers
//! were 15 % of the raft thread's CPU at 256 clients when each woke its
//! task. So each shard opens a mailbox ([`open_mailbox`]); the raft
//! thread groups a batch's wake-ups by mailbox ([`Wakes`]) and sends one
//! message to each, and the shard's mailbox task completes them there,
//! locally. A thread without a mailbox (the raft thread serving a
//! follower's forwards, tests) is woken directly.

use std::cell::RefCell;

use ferrocd_net::EtcdError;
use tokio::sync::{mpsc, oneshot};

use super::outcome::Applied;

/// A proposer's answer: the outcome and the log index of the entry that
/// gave it.
pub(crate) type Reply = Result<(Applied, u64), EtcdError>;

/// One wake-up.
pub(crate) enum Wake {
    /// A request's answer.
    Reply(oneshot::Sender<Reply>, Reply),
    /// The index a task waits for is applied.
    Applied(oneshot::Sender<()>),
}

impl Wake {
    fn complete(self) {
        match self {
            Wake::Reply(tx, r) => {
                let _ = tx.send(r);
            }
            Wake::Applied(tx) => {
                let _ = tx.send(());
            }
        }
    }
}

/// Wake-ups for one shard, handed over together.
type Delivery = Vec<Wake>;

/// A shard's mailbox: its task completes the wake-ups on the shard.
pub(crate) type Mailbox = mpsc::UnboundedSender<Delivery>;

thread_local! {
    /// This thread's mailbox, when it is a shard that opened one.
    static MAILBOX: RefCell<Option<Mailbox>> = const { RefCell::new(None) };
}

/// Open this thread's mailbox: from now on, the wake-ups of tasks that
/// wait from this thread arrive in one message per batch, and a task
/// spawned here (on the current tokio runtime, which must be this
/// thread's own) completes them. Called once by each shard.
pub(crate) fn open_mailbox() {
    let (tx, mut rx) = mpsc::unbounded_channel::<Delivery>();
    tokio::spawn(async move {
        while let Some(delivery) = rx.recv().await {
            complete(delivery);
        }
    });
    MAILBOX.with(|m| *m.borrow_mut() = Some(tx));
}

/// This thread's mailbox (`None`: not a shard that opened one).
pub(crate) fn this_thread() -> Option<Mailbox> {
    MAILBOX.with(|m| m.borrow().clone())
}

fn complete(delivery: Delivery) {
    for w in delivery {
        w.complete();
    }
}

/// A batch's wake-ups, grouped by the mailbox they go through.
#[derive(Default)]
pub(crate) struct Wakes {
    direct: Delivery,
    boxed: Vec<(Mailbox, Delivery)>,
}

impl Wakes {
    pub(crate) fn push(&mut self, mailbox: Option<Mailbox>, wake: Wake) {
        let Some(mb) = mailbox else {
            self.direct.push(wake);
            return;
        };
        match self.boxed.iter_mut().find(|(m, _)| m.same_channel(&mb)) {
            Some((_, d)) => d.push(wake),
            None => self.boxed.push((mb, vec![wake])),
        }
    }

    /// One message per mailbox; a closed one (its shard stopped) is
    /// completed here.
    pub(crate) fn send(self) {
        complete(self.direct);
        for (mb, d) in self.boxed {
            if let Err(mpsc::error::SendError(d)) = mb.send(d) {
                complete(d);
            }
        }
    }
}
