//! A queue of coarse deadlines that the runtime's IO driver wakes through a
//! Linux timerfd: timers without tokio's time driver (see [`super`]).
//!
//! The queue is a heap of records (deadline, entry). A [`Sleep`] owns its
//! entry; the heap holds it weakly, so a dropped `Sleep` costs nothing but a
//! record that is skipped when it comes due, and the heap is compacted when
//! such records outnumber the live ones. The timerfd is set to the earliest
//! record's deadline whenever that changes; one task per queue waits for it
//! to become readable and wakes whatever came due.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

/// Records beyond twice the live timers that the heap tolerates before it
/// drops the stale ones.
const STALE_SLACK: usize = 1024;

/// The queue; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Queue {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    timerfd: AsyncFd<OwnedFd>,
    heap: Mutex<Heap>,
    /// `Sleep`s alive, to know when the heap is mostly stale records.
    live: AtomicUsize,
}

#[derive(Debug, Default)]
struct Heap {
    records: BinaryHeap<Reverse<Record>>,
    /// What the timerfd is set to.
    armed: Option<Instant>,
}

#[derive(Debug)]
struct Record {
    deadline: Instant,
    entry: Weak<Entry>,
}

// Records order by deadline alone: ties may come due in any order.
impl Ord for Record {
    fn cmp(&self, other: &Self) -> Ordering {
        self.deadline.cmp(&other.deadline)
    }
}
impl PartialOrd for Record {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Record {
    fn eq(&self, other: &Self) -> bool {
        self.deadline == other.deadline
    }
}
impl Eq for Record {}

/// One timer's state, shared between its `Sleep` and the queue's records.
#[derive(Debug)]
struct Entry {
    /// Set when the deadline has passed; read without the lock by
    /// [`Sleep::is_elapsed`] and the fast path of `poll`.
    fired: AtomicBool,
    state: Mutex<EntryState>,
}

#[derive(Debug)]
struct EntryState {
    deadline: Instant,
    /// The deadline of the record that will look at this entry next; a
    /// record for any other deadline is stale. `None` once fired.
    queued: Option<Instant>,
    waker: Option<Waker>,
}

/// Locks, carrying on past a panic elsewhere: every update under these locks
/// leaves the state consistent between statements.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Queue {
    /// A queue on the current runtime's IO driver, and the task that drives
    /// it, spawned on the current runtime.
    ///
    /// # Errors
    ///
    /// When the timerfd cannot be created or registered.
    pub(crate) fn start() -> io::Result<Self> {
        let timerfd = rustix::time::timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        let queue = Self {
            shared: Arc::new(Shared {
                timerfd: register(timerfd)?,
                heap: Mutex::new(Heap::default()),
                live: AtomicUsize::new(0),
            }),
        };
        tokio::spawn(queue.clone().drive());
        Ok(queue)
    }

    /// A timer that fires at `deadline`.
    pub(crate) fn sleep_until(&self, deadline: Instant) -> Sleep {
        let entry = Arc::new(Entry {
            fired: AtomicBool::new(false),
            state: Mutex::new(EntryState {
                deadline,
                queued: Some(deadline),
                waker: None,
            }),
        });
        self.shared.live.fetch_add(1, AtomicOrdering::Relaxed);
        self.push(deadline, &entry);
        Sleep {
            queue: self.clone(),
            entry,
        }
    }

    fn push(&self, deadline: Instant, entry: &Arc<Entry>) {
        let mut heap = lock(&self.shared.heap);
        let live = self.shared.live.load(AtomicOrdering::Relaxed);
        if heap.records.len() > live.saturating_mul(2).saturating_add(STALE_SLACK) {
            heap.records.retain(|Reverse(record)| record.is_current());
        }
        heap.records.push(Reverse(Record {
            deadline,
            entry: Arc::downgrade(entry),
        }));
        self.arm(&mut heap);
    }

    /// Sets the timerfd to the earliest record, if that changed.
    fn arm(&self, heap: &mut Heap) {
        let earliest = heap.records.peek().map(|Reverse(record)| record.deadline);
        if earliest == heap.armed {
            return;
        }
        let after = earliest.map(|deadline| deadline.saturating_duration_since(Instant::now()));
        match set_timerfd(&self.shared.timerfd, after) {
            Ok(()) => heap.armed = earliest,
            // Only a bad descriptor or bad arguments fail, neither of which
            // this code passes; leaving `armed` as it was retries next time.
            Err(error) => tracing::error!(%error, "setting the timer failed"),
        }
    }

    /// The queue's task: wakes the timers that came due each time the
    /// timerfd fires. Ends only with the runtime.
    async fn drive(self) {
        let mut due = Vec::new();
        loop {
            let readable = self.shared.timerfd.readable().await;
            let Ok(mut readable) = readable else {
                tracing::error!("the timer queue lost its timerfd; timers stop");
                return;
            };
            // Reading resets the timerfd's readiness; the count it reads
            // (expirations since the last read) is not needed.
            // A read takes every expiration, so the timerfd stays
            // unreadable until it fires again.
            let mut expirations = [0u8; 8];
            let read = rustix::io::read(readable.get_inner(), &mut expirations[..]);
            readable.clear_ready();
            match read {
                Ok(_) => {}
                Err(rustix::io::Errno::AGAIN) => continue,
                Err(error) => tracing::debug!(%error, "reading the timerfd failed"),
            }
            self.take_due(Instant::now(), &mut due);
            for waker in due.drain(..) {
                waker.wake();
            }
        }
    }

    /// Marks every timer due by `now` fired, collects their wakers into
    /// `due`, and sets the timerfd to what comes next.
    fn take_due(&self, now: Instant, due: &mut Vec<Waker>) {
        let mut heap = lock(&self.shared.heap);
        while let Some(Reverse(record)) = heap.records.peek()
            && record.deadline <= now
        {
            let Some(Reverse(record)) = heap.records.pop() else {
                break;
            };
            let Some(entry) = record.entry.upgrade() else {
                continue;
            };
            let mut state = lock(&entry.state);
            if state.queued != Some(record.deadline) {
                continue;
            }
            if state.deadline <= now {
                state.queued = None;
                entry.fired.store(true, AtomicOrdering::Release);
                due.extend(state.waker.take());
            } else {
                // Reset to a later deadline since this record was made.
                let later = state.deadline;
                state.queued = Some(later);
                drop(state);
                heap.records.push(Reverse(Record {
                    deadline: later,
                    entry: Arc::downgrade(&entry),
                }));
            }
        }
        // The timerfd fired, so it is disarmed whatever `armed` says.
        heap.armed = None;
        self.arm(&mut heap);
    }
}

impl Record {
    /// Whether the record is the one its entry waits on.
    fn is_current(&self) -> bool {
        self.entry
            .upgrade()
            .is_some_and(|entry| lock(&entry.state).queued == Some(self.deadline))
    }
}

/// Registers the timerfd with the current runtime's IO driver, for
/// readability.
#[allow(unsafe_code)]
fn register(timerfd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: `register` asks that the descriptor be open and the same for
    // the whole life of the `AsyncFd`. The `OwnedFd` is moved into it, so
    // nothing else can close it, and `OwnedFd::as_raw_fd` always returns the
    // descriptor it owns.
    unsafe { AsyncFd::register_with_interest(timerfd, Interest::READABLE) }
        .map_err(|failed| failed.into_parts().1)
}

/// Sets the timerfd to fire once after `after`, or disarms it for `None`.
fn set_timerfd(timerfd: &AsyncFd<OwnedFd>, after: Option<Duration>) -> io::Result<()> {
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let value = match after {
        None => zero,
        // Zero would disarm: a deadline already passed fires at once.
        Some(after) => Timespec::try_from(after.max(Duration::from_nanos(1))).unwrap_or(Timespec {
            tv_sec: i64::MAX,
            tv_nsec: 0,
        }),
    };
    let spec = Itimerspec {
        it_interval: zero,
        it_value: value,
    };
    rustix::time::timerfd_settime(timerfd.get_ref(), TimerfdTimerFlags::empty(), &spec)?;
    Ok(())
}

/// A timer on a [`Queue`]: a future that completes at its deadline.
#[derive(Debug)]
pub(crate) struct Sleep {
    queue: Queue,
    entry: Arc<Entry>,
}

impl Sleep {
    /// When it fires.
    pub(crate) fn deadline(&self) -> Instant {
        lock(&self.entry.state).deadline
    }

    /// Whether it has fired.
    pub(crate) fn is_elapsed(&self) -> bool {
        self.entry.fired.load(AtomicOrdering::Acquire)
    }

    /// Sets a new deadline; it may fire again.
    pub(crate) fn reset(&mut self, deadline: Instant) {
        let mut state = lock(&self.entry.state);
        state.deadline = deadline;
        self.entry.fired.store(false, AtomicOrdering::Release);
        // A record at or before the new deadline re-queues the entry when
        // it comes due; otherwise this deadline needs a record of its own.
        if state.queued.is_some_and(|queued| queued <= deadline) {
            return;
        }
        state.queued = Some(deadline);
        drop(state);
        self.queue.push(deadline, &self.entry);
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_elapsed() {
            return Poll::Ready(());
        }
        let mut state = lock(&self.entry.state);
        // Checked again under the lock the queue fires under, so a firing
        // between the two checks is not missed.
        if self.is_elapsed() {
            return Poll::Ready(());
        }
        match &mut state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            waker => *waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.queue.shared.live.fetch_sub(1, AtomicOrdering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test]
    async fn a_timer_fires_at_its_deadline_and_not_before() {
        let queue = Queue::start().unwrap();
        let started = Instant::now();
        let sleep = queue.sleep_until(started + millis(30));
        assert!(!sleep.is_elapsed());
        sleep.await;
        assert!(started.elapsed() >= millis(30));
    }

    #[tokio::test]
    async fn timers_fire_in_deadline_order_whatever_order_they_were_made_in() {
        let queue = Queue::start().unwrap();
        let now = Instant::now();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for n in [40u64, 10, 30, 20] {
            let sleep = queue.sleep_until(now + millis(n));
            let tx = tx.clone();
            tokio::spawn(async move {
                sleep.await;
                let _ = tx.send(n);
            });
        }
        drop(tx);
        let mut order = Vec::new();
        while let Some(n) = rx.recv().await {
            order.push(n);
        }
        assert_eq!(order, [10, 20, 30, 40]);
    }

    #[tokio::test]
    async fn a_reset_moves_the_deadline_either_way() {
        let queue = Queue::start().unwrap();
        let started = Instant::now();
        let mut later = queue.sleep_until(started + millis(10));
        later.reset(started + millis(60));
        let mut sooner = queue.sleep_until(started + Duration::from_secs(3600));
        sooner.reset(started + millis(20));
        (&mut sooner).await;
        assert!(!later.is_elapsed(), "moved later, so not yet fired");
        (&mut later).await;
        assert!(started.elapsed() >= millis(60));
        // A fired timer reset into the future waits again.
        later.reset(Instant::now() + millis(10));
        assert!(!later.is_elapsed());
        later.await;
    }

    #[tokio::test]
    async fn a_deadline_already_passed_fires_at_once() {
        let queue = Queue::start().unwrap();
        let past = Instant::now().checked_sub(millis(5)).unwrap();
        queue.sleep_until(past).await;
    }

    #[tokio::test]
    async fn dropped_timers_leave_no_more_than_the_slack_behind() {
        let queue = Queue::start().unwrap();
        let far = Instant::now() + Duration::from_secs(3600);
        let kept = queue.sleep_until(far);
        for _ in 0..10 * STALE_SLACK {
            drop(queue.sleep_until(far));
        }
        let records = lock(&queue.shared.heap).records.len();
        // Compaction starts past twice the live timers (the kept one and
        // the one being made) and the slack.
        assert!(records <= 2 * 2 + STALE_SLACK + 1, "{records} records");
        assert!(!kept.is_elapsed());
        // The live one survived the compaction and still fires.
        let mut kept = kept;
        kept.reset(Instant::now() + millis(5));
        kept.await;
    }
}
