//! A queue of coarse deadlines that the runtime's IO driver wakes through a
//! Linux timerfd: timers without tokio's time driver (see [`super`]).
//!
//! Each timer has a slot in a table the queue keeps, and the queue a heap of
//! records (deadline, slot, generation). A slot is reused as soon as its
//! [`Sleep`] is dropped, under a new generation, so a record left behind
//! only costs its 24 bytes until it comes due or the heap is compacted; a
//! timer is no allocation of its own, which matters because a connection's
//! handshake timer is dropped long before its deadline, and separately
//! allocated entries kept alive by their records fragmented the heap (50
//! bytes more per idle connection at 10,000). The timerfd is set to the
//! earliest record whenever that changes; one task per queue waits for it to
//! become readable and wakes whatever came due.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

/// Records beyond twice the live timers that the heap tolerates before it
/// drops the stale ones.
const STALE_SLACK: usize = 64;

/// Room for records the heap keeps however few are queued.
const SHRINK_FLOOR: usize = 64;

/// The queue; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Queue {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    timerfd: AsyncFd<Arc<OwnedFd>>,
    table: Mutex<Table>,
    /// Counts the rounds that fired a timer, so that [`Sleep::is_elapsed`]
    /// takes the lock only when something fired since it last looked.
    fired_rounds: AtomicU64,
}

#[derive(Debug, Default)]
struct Table {
    slots: Vec<Slot>,
    /// Slots whose `Sleep` was dropped, to reuse.
    free: Vec<u32>,
    records: BinaryHeap<Reverse<Record>>,
    /// What the timerfd is set to.
    armed: Option<Instant>,
}

#[derive(Debug)]
struct Slot {
    /// Changes each time the slot is freed, so a record or `Sleep` of an
    /// earlier timer does not act on a later one.
    generation: u32,
    deadline: Instant,
    /// The deadline of the record that will look at this slot next; a
    /// record for any other deadline is stale. `None` once fired.
    queued: Option<Instant>,
    fired: bool,
    waker: Option<Waker>,
}

#[derive(Debug)]
struct Record {
    deadline: Instant,
    slot: u32,
    generation: u32,
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

/// Locks, carrying on past a panic elsewhere: every update under the lock
/// leaves the table consistent between statements.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Table {
    /// The slot of a live timer.
    fn slot(&mut self, slot: u32, generation: u32) -> Option<&mut Slot> {
        let index = usize::try_from(slot).ok()?;
        self.slots
            .get_mut(index)
            .filter(|found| found.generation == generation)
    }

    fn live(&self) -> usize {
        self.slots.len().saturating_sub(self.free.len())
    }

    /// Queues a record for a slot's deadline.
    fn push(&mut self, deadline: Instant, slot: u32, generation: u32) {
        if self.records.len() > self.live().saturating_mul(2).saturating_add(STALE_SLACK) {
            let mut records = std::mem::take(&mut self.records).into_vec();
            records.retain(|record| self.is_current(record));
            self.records = BinaryHeap::from(records);
        }
        self.records.push(Reverse(Record {
            deadline,
            slot,
            generation,
        }));
    }

    /// Whether a record is the one its slot waits on.
    fn is_current(&self, Reverse(record): &Reverse<Record>) -> bool {
        usize::try_from(record.slot)
            .ok()
            .and_then(|index| self.slots.get(index))
            .is_some_and(|slot| {
                slot.generation == record.generation && slot.queued == Some(record.deadline)
            })
    }
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
                timerfd: crate::readiness::register_readable(Arc::new(timerfd))?,
                table: Mutex::new(Table::default()),
                fired_rounds: AtomicU64::new(0),
            }),
        };
        tokio::spawn(queue.clone().drive());
        Ok(queue)
    }

    /// A timer that fires at `deadline`. It takes a slot when first polled,
    /// as tokio's does: a timeout around a future that is ready at once
    /// costs nothing.
    pub(crate) fn sleep_until(&self, deadline: Instant) -> Sleep {
        Sleep {
            queue: self.clone(),
            slot: None,
            deadline,
            fired: AtomicBool::new(false),
            rounds_seen: AtomicU64::new(0),
        }
    }

    /// Gives a timer a slot and queues its deadline; returns the slot and
    /// its generation.
    fn take_slot(&self, table: &mut Table, deadline: Instant) -> (u32, u32) {
        let fresh = |generation| Slot {
            generation,
            deadline,
            queued: Some(deadline),
            fired: false,
            waker: None,
        };
        let reused = table.free.pop().and_then(|slot| {
            let index = usize::try_from(slot).ok()?;
            let found = table.slots.get_mut(index)?;
            *found = fresh(found.generation);
            Some((slot, found.generation))
        });
        // More than 4 billion timers at once is out of the question (each
        // has a connection); the last slot is shared rather than panicking.
        let (slot, generation) = reused.unwrap_or_else(|| {
            table.slots.push(fresh(0));
            let slot = u32::try_from(table.slots.len().saturating_sub(1)).unwrap_or(u32::MAX);
            (slot, 0)
        });
        table.push(deadline, slot, generation);
        self.arm(table);
        (slot, generation)
    }

    /// Sets the timerfd to the earliest record, if that changed.
    fn arm(&self, table: &mut Table) {
        let earliest = table.records.peek().map(|Reverse(record)| record.deadline);
        if earliest == table.armed {
            return;
        }
        let after = earliest.map(|deadline| deadline.saturating_duration_since(Instant::now()));
        match set_timerfd(&self.shared.timerfd, after) {
            Ok(()) => table.armed = earliest,
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
        let mut table = lock(&self.shared.table);
        let mut fired = false;
        while let Some(Reverse(record)) = table.records.peek()
            && record.deadline <= now
        {
            let Some(Reverse(record)) = table.records.pop() else {
                break;
            };
            let Some(slot) = table.slot(record.slot, record.generation) else {
                continue;
            };
            if slot.queued != Some(record.deadline) {
                continue;
            }
            if slot.deadline <= now {
                slot.queued = None;
                slot.fired = true;
                fired = true;
                due.extend(slot.waker.take());
            } else {
                // Reset to a later deadline since this record was made.
                let later = slot.deadline;
                slot.queued = Some(later);
                table.push(later, record.slot, record.generation);
            }
        }
        if fired {
            self.shared
                .fired_rounds
                .fetch_add(1, AtomicOrdering::Release);
        }
        // A burst of timers (a reconnect storm, each connection's first
        // checks) grows the heap; once they have come due it would keep
        // that room for good, 24 bytes a record, so it gives back most of it.
        let len = table.records.len();
        if table.records.capacity() > 4 * len + SHRINK_FLOOR {
            table.records.shrink_to(2 * len + SHRINK_FLOOR);
        }
        // The timerfd fired, so it is disarmed whatever `armed` says.
        table.armed = None;
        self.arm(&mut table);
    }
}

/// Sets the timerfd to fire once after `after`, or disarms it for `None`.
fn set_timerfd(timerfd: &AsyncFd<Arc<OwnedFd>>, after: Option<Duration>) -> io::Result<()> {
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
    /// Its slot and the slot's generation, once polled or reset.
    slot: Option<(u32, u32)>,
    deadline: Instant,
    /// Seen fired; only a reset clears it.
    fired: AtomicBool,
    /// The queue's `fired_rounds` when last looked at.
    rounds_seen: AtomicU64,
}

impl Sleep {
    /// When it fires.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether it has fired (never before it is first polled): two loads,
    /// unless a timer fired anywhere since the last look.
    pub(crate) fn is_elapsed(&self) -> bool {
        if self.fired.load(AtomicOrdering::Relaxed) {
            return true;
        }
        let Some((slot, generation)) = self.slot else {
            return false;
        };
        let rounds = self.queue.shared.fired_rounds.load(AtomicOrdering::Acquire);
        if rounds == self.rounds_seen.load(AtomicOrdering::Relaxed) {
            return false;
        }
        let mut table = lock(&self.queue.shared.table);
        let fired = table.slot(slot, generation).is_some_and(|slot| slot.fired);
        self.rounds_seen.store(rounds, AtomicOrdering::Relaxed);
        self.fired.store(fired, AtomicOrdering::Relaxed);
        fired
    }

    /// Sets a new deadline; it may fire again.
    pub(crate) fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        self.fired.store(false, AtomicOrdering::Relaxed);
        // A timer not polled yet queues its deadline at its first poll.
        let Some((index, generation)) = self.slot else {
            return;
        };
        let mut table = lock(&self.queue.shared.table);
        let Some(slot) = table.slot(index, generation) else {
            return;
        };
        slot.deadline = deadline;
        slot.fired = false;
        // A record at or before the new deadline re-queues the slot when it
        // comes due; otherwise this deadline needs a record of its own.
        if slot.queued.is_some_and(|queued| queued <= deadline) {
            return;
        }
        slot.queued = Some(deadline);
        table.push(deadline, index, generation);
        self.queue.arm(&mut table);
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.fired.load(AtomicOrdering::Relaxed) {
            return Poll::Ready(());
        }
        let this = &mut *self;
        let mut table = lock(&this.queue.shared.table);
        let (index, generation) = match this.slot {
            Some(registered) => registered,
            None => {
                *this.rounds_seen.get_mut() =
                    this.queue.shared.fired_rounds.load(AtomicOrdering::Acquire);
                let registered = this.queue.take_slot(&mut table, this.deadline);
                this.slot = Some(registered);
                registered
            }
        };
        let Some(slot) = table.slot(index, generation) else {
            return Poll::Ready(());
        };
        if slot.fired {
            this.fired.store(true, AtomicOrdering::Relaxed);
            return Poll::Ready(());
        }
        match &mut slot.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            waker => *waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        let Some((index, generation)) = self.slot else {
            return;
        };
        let mut table = lock(&self.queue.shared.table);
        if let Some(slot) = table.slot(index, generation) {
            slot.generation = slot.generation.wrapping_add(1);
            slot.waker = None;
            slot.queued = None;
            table.free.push(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Waits for a timer to fire, failing the test instead of hanging if it
    /// never does (tokio's own clock, which the queue does not use, keeps
    /// this time).
    async fn fires(timer: impl Future<Output = ()>) {
        tokio::time::timeout(Duration::from_secs(10), timer)
            .await
            .expect("the timer fired within 10 s");
    }

    /// A timer that has taken its slot, as its first poll does.
    async fn registered(queue: &Queue, deadline: Instant) -> Sleep {
        let mut sleep = queue.sleep_until(deadline);
        std::future::poll_fn(|cx| {
            let _ = Pin::new(&mut sleep).poll(cx);
            Poll::Ready(())
        })
        .await;
        sleep
    }

    #[tokio::test]
    async fn a_timer_never_polled_takes_no_slot_and_queues_nothing() {
        let queue = Queue::start().unwrap();
        let mut sleep = queue.sleep_until(Instant::now() + Duration::from_secs(3600));
        // A reset only moves the deadline it will queue.
        sleep.reset(Instant::now() + millis(10));
        assert!(!sleep.is_elapsed());
        let taken = {
            let table = lock(&queue.shared.table);
            (table.slots.len(), table.records.len())
        };
        assert_eq!(taken, (0, 0));
        // The first poll takes it.
        fires(sleep).await;
        assert_eq!(lock(&queue.shared.table).slots.len(), 1);
    }

    #[tokio::test]
    async fn a_timer_fires_at_its_deadline_and_not_before() {
        let queue = Queue::start().unwrap();
        let started = Instant::now();
        let sleep = registered(&queue, started + millis(30)).await;
        assert!(!sleep.is_elapsed());
        fires(sleep).await;
        assert!(started.elapsed() >= millis(30));
    }

    #[tokio::test]
    async fn timers_fire_in_deadline_order_whatever_order_they_were_made_in() {
        let queue = Queue::start().unwrap();
        let now = Instant::now();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for n in [40u64, 10, 30, 20] {
            let sleep = registered(&queue, now + millis(n)).await;
            let tx = tx.clone();
            tokio::spawn(async move {
                fires(sleep).await;
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
        let mut later = registered(&queue, started + millis(10)).await;
        later.reset(started + millis(60));
        let mut sooner = registered(&queue, started + Duration::from_secs(3600)).await;
        sooner.reset(started + millis(20));
        fires(&mut sooner).await;
        assert!(!later.is_elapsed(), "moved later, so not yet fired");
        fires(&mut later).await;
        assert!(started.elapsed() >= millis(60));
        // A fired timer reset into the future waits again.
        later.reset(Instant::now() + millis(10));
        assert!(!later.is_elapsed());
        fires(later).await;
    }

    #[tokio::test]
    async fn a_dropped_timer_s_record_does_not_fire_the_timer_reusing_its_slot() {
        let queue = Queue::start().unwrap();
        let started = Instant::now();
        drop(registered(&queue, started + millis(10)).await);
        let reusing = registered(&queue, started + millis(60)).await;
        assert_eq!(
            lock(&queue.shared.table).slots.len(),
            1,
            "the slot is reused"
        );
        fires(reusing).await;
        assert!(started.elapsed() >= millis(60));
    }

    #[tokio::test]
    async fn a_deadline_already_passed_fires_at_once() {
        let queue = Queue::start().unwrap();
        let past = Instant::now().checked_sub(millis(5)).unwrap();
        fires(registered(&queue, past).await).await;
    }

    #[tokio::test]
    async fn dropped_timers_leave_no_more_than_the_slack_behind() {
        let queue = Queue::start().unwrap();
        let far = Instant::now() + Duration::from_secs(3600);
        let kept = registered(&queue, far).await;
        for _ in 0..10 * STALE_SLACK {
            drop(registered(&queue, far).await);
        }
        let records = lock(&queue.shared.table).records.len();
        // Compaction starts past twice the live timers (the kept one and
        // the one being made) and the slack.
        assert!(records <= 2 * 2 + STALE_SLACK + 1, "{records} records");
        assert!(!kept.is_elapsed());
        // The live one survived the compaction and still fires.
        let mut kept = kept;
        kept.reset(Instant::now() + millis(5));
        fires(kept).await;
    }

    #[tokio::test]
    async fn the_heap_gives_back_the_room_of_a_burst_once_it_came_due() {
        let queue = Queue::start().unwrap();
        let soon = Instant::now() + millis(5);
        let mut burst = Vec::new();
        for _ in 0..10_000 {
            burst.push(registered(&queue, soon).await);
        }
        assert!(lock(&queue.shared.table).records.capacity() >= 10_000);
        for sleep in burst {
            fires(sleep).await;
        }
        let capacity = lock(&queue.shared.table).records.capacity();
        assert!(
            capacity <= 4 * SHRINK_FLOOR,
            "room for {capacity} records kept"
        );
    }
}
