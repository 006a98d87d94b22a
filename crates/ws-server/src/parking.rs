//! The parking lot: idle WebSocket connections wait here without a task.
//!
//! An open connection served by a task of its own holds the task's cell for
//! its whole life, about 512 bytes even while nothing happens (tokio's
//! header and trailer around the echo loop's state, aligned to 128 bytes).
//! With 10,000 idle clients that is most of what the server spends on them.
//! So a plaintext HTTP/1.1 connection that has read nothing for a while
//! (10 ms at first, up to
//! [`ServerConfig::park_after`](crate::ServerConfig::park_after) once it has
//! shown it is busy), with nothing buffered, queued or half received, leaves
//! its task: the echo loop
//! hands over a [`Parked`] record (the socket, the connection's tally, its
//! idle-timeout bookkeeping and the guard that counts it as open) and the
//! task ends.
//!
//! A parked connection needs no task and no timer of its own to wake up:
//! its socket's read readiness is registered with a [`Waker`] that only
//! names the parking space (its slot and the slot's generation), and waking
//! it puts that key on the lot's ready queue for the one [`drive`] task of
//! the server. The driver spawns a task that resumes the echo loop where it
//! stopped, and also keeps the one timer for the idle timeouts of all parked
//! connections: a connection whose idle check comes is resumed, and its echo
//! loop pings or closes it as it would have in its task. At shutdown every
//! parked connection is resumed and closed with 1001 like the others.
//!
//! Parking and waking happen at most once per idle period, never per
//! message, so one mutex for the whole lot is enough.
//!
//! What parking saves shows in the process's RSS as the freed task cells
//! are reused (by the next connections' tasks, or the lot's records): the
//! allocator keeps them rather than giving them back. So a connection parks
//! after only 10 ms of quiet until it shows that its quiet spells are short
//! (see `Clock::park_delay`): waiting a whole second, 10,000 connections
//! opened within half a second were all still in their tasks when the last
//! one opened, and RSS stayed at that high-water mark (1,590 bytes per
//! connection); parking after 10 ms, they cost about 960 bytes each.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Wake, Waker};

use tokio::sync::Notify;
use tokio::time::Instant;
use ws_core::stream::ReadReady;

use crate::connection::{self, Clock, Socket, Tally};
use crate::server::ActiveGuard;

/// A connection waiting in the lot: everything its echo loop needs to go on.
pub(crate) struct Parked {
    pub(crate) socket: Box<Socket>,
    /// What the "connection closed" report will say so far.
    pub(crate) tally: Tally,
    /// The idle-timeout bookkeeping, as the echo loop left it.
    pub(crate) clock: Clock,
    /// Counts the connection as open, and as a task a shutdown waits for.
    pub(crate) active: ActiveGuard,
}

impl Parked {
    /// The metrics' count of parked connections.
    fn gauge(&self) -> &AtomicU64 {
        &self.active.shared().metrics.parked
    }
}

/// Names a parking space: a slot, and how many connections it has held, so
/// that a key that outlived its connection (a late wake-up, a deadline of
/// a connection that was resumed) finds the slot taken by another or empty,
/// and does nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    slot: u32,
    generation: u32,
}

/// One parking space.
#[derive(Default)]
struct Space {
    generation: u32,
    parked: Option<Box<Parked>>,
}

/// The server's parking lot (see the module's documentation).
pub(crate) struct Lot {
    spaces: Mutex<Spaces>,
    /// Wakes the driver: keys are ready, a nearer idle deadline came in, or
    /// the lot closed.
    bell: Notify,
}

impl std::fmt::Debug for Lot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lot")
            .field("parked", &self.lock().parked)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Spaces {
    /// Set at shutdown: nothing parks any more.
    closed: bool,
    slots: Vec<Space>,
    /// Empty slots, reused before the lot grows.
    vacant: Vec<u32>,
    /// Connections parked now.
    parked: usize,
    /// Keys whose sockets became readable, for the driver.
    ready: Vec<Key>,
    /// The idle checks of parked connections, earliest first. An entry
    /// stays when its connection is resumed earlier, and is skipped when it
    /// comes up (or dropped when stale entries pile up).
    deadlines: BinaryHeap<Reverse<(Instant, Key)>>,
}

impl Spaces {
    /// Takes the connection a key names, if it is still parked there.
    fn take(&mut self, key: Key) -> Option<Box<Parked>> {
        let space = self.slots.get_mut(key.slot as usize)?;
        if space.generation != key.generation {
            return None;
        }
        let parked = space.parked.take()?;
        self.vacant.push(key.slot);
        self.parked -= 1;
        parked.gauge().fetch_sub(1, Ordering::Relaxed);
        Some(parked)
    }

    /// A free space for a connection, and its key.
    fn vacant_key(&mut self) -> Option<Key> {
        let slot = match self.vacant.pop() {
            Some(slot) => slot,
            None => {
                let slot = u32::try_from(self.slots.len()).ok()?;
                self.slots.push(Space::default());
                slot
            }
        };
        let space = self.slots.get_mut(slot as usize)?;
        space.generation = space.generation.wrapping_add(1);
        Some(Key {
            slot,
            generation: space.generation,
        })
    }

    /// Drops the deadlines of connections no longer parked once they
    /// outnumber the parked ones: a connection that parks and wakes up often
    /// leaves one behind each time.
    fn prune_deadlines(&mut self) {
        if self.deadlines.len() <= 2 * self.parked + 64 {
            return;
        }
        let slots = &self.slots;
        self.deadlines.retain(|Reverse((_, key))| {
            slots
                .get(key.slot as usize)
                .is_some_and(|space| space.generation == key.generation && space.parked.is_some())
        });
    }
}

impl Lot {
    pub(crate) fn new() -> Self {
        Self {
            spaces: Mutex::new(Spaces::default()),
            bell: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Spaces> {
        // The lot's state stays consistent between statements that could
        // panic, so a poisoned lock is still usable.
        self.spaces.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Parks a connection until its socket is readable, its idle check
    /// comes or the server stops. A connection that cannot park (the lot is
    /// closed, or input arrived meanwhile) goes on at once in a new task.
    pub(crate) fn park(self: &Arc<Self>, parked: Parked) {
        let mut spaces = self.lock();
        let key = if spaces.closed {
            None
        } else {
            spaces.vacant_key()
        };
        let Some(key) = key else {
            drop(spaces);
            tokio::spawn(connection::resume(Box::new(parked)));
            return;
        };
        let doorbell = Waker::from(Arc::new(Doorbell {
            lot: Arc::downgrade(self),
            key,
        }));
        // Registered while the lot is locked: a wake-up that comes at once
        // waits for the connection to be in its space.
        let readable = parked
            .socket
            .get_ref()
            .poll_read_ready(&mut Context::from_waker(&doorbell));
        if readable.is_ready() {
            // Input (or an error) arrived since the echo loop last looked.
            spaces.vacant.push(key.slot);
            drop(spaces);
            tokio::spawn(connection::resume(Box::new(parked)));
            return;
        }
        if let Some(deadline) = parked.clock.idle_check() {
            let earliest = spaces
                .deadlines
                .peek()
                .is_none_or(|Reverse((first, _))| deadline < *first);
            spaces.deadlines.push(Reverse((deadline, key)));
            if earliest {
                // The driver's timer is set for a later deadline.
                self.bell.notify_one();
            }
        }
        if let Some(space) = spaces.slots.get_mut(key.slot as usize) {
            parked.gauge().fetch_add(1, Ordering::Relaxed);
            space.parked = Some(Box::new(parked));
            spaces.parked += 1;
        }
        spaces.prune_deadlines();
    }

    /// Closes the lot at shutdown and hands over every connection parked in
    /// it; a connection that tries to park afterwards goes on in a task.
    ///
    /// Boxed as they were parked: [`connection::resume`] takes the box, so
    /// that a task not yet started holds a pointer rather than the record.
    #[allow(clippy::vec_box)]
    pub(crate) fn close(&self) -> Vec<Box<Parked>> {
        let mut spaces = self.lock();
        spaces.closed = true;
        spaces.ready.clear();
        spaces.deadlines.clear();
        spaces.vacant.clear();
        spaces.parked = 0;
        let parked: Vec<_> = std::mem::take(&mut spaces.slots)
            .into_iter()
            .filter_map(|space| space.parked)
            .collect();
        for connection in &parked {
            connection.gauge().fetch_sub(1, Ordering::Relaxed);
        }
        drop(spaces);
        self.bell.notify_one();
        parked
    }

    /// Called by a parked socket's waker.
    fn ring(&self, key: Key) {
        let mut spaces = self.lock();
        if spaces.closed {
            return;
        }
        spaces.ready.push(key);
        drop(spaces);
        self.bell.notify_one();
    }

    /// The connections to resume now (readable, or due for their idle
    /// check), and the next idle deadline; `None` once the lot is closed.
    #[allow(clippy::vec_box)]
    fn due(&self, now: Instant, resume: &mut Vec<Box<Parked>>) -> Option<Option<Instant>> {
        let mut spaces = self.lock();
        if spaces.closed {
            return None;
        }
        let mut ready = std::mem::take(&mut spaces.ready);
        for key in ready.drain(..) {
            resume.extend(spaces.take(key));
        }
        // The (empty) vector goes back: no allocation per wake-up.
        spaces.ready = ready;
        while let Some(&Reverse((deadline, key))) = spaces.deadlines.peek() {
            if deadline > now {
                return Some(Some(deadline));
            }
            spaces.deadlines.pop();
            resume.extend(spaces.take(key));
        }
        Some(None)
    }
}

/// The waker of a parked socket: all it knows is where the connection is
/// parked. One small allocation per parking; the lot is held weakly, so
/// that a waker left in a socket's registration keeps nothing alive.
struct Doorbell {
    lot: Weak<Lot>,
    key: Key,
}

impl Wake for Doorbell {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(lot) = self.lot.upgrade() {
            lot.ring(self.key);
        }
    }
}

/// The lot's driver, one task per server: resumes each connection whose
/// socket became readable or whose idle check came, each in a task of its
/// own, until the lot closes.
pub(crate) async fn drive(lot: Arc<Lot>) {
    let far = Instant::now() + crate::timers::FAR_FUTURE;
    let timer = crate::timers::sleep_until(far);
    tokio::pin!(timer);
    let mut resume = Vec::new();
    let mut fired = false;
    loop {
        let Some(next) = lot.due(Instant::now(), &mut resume) else {
            return;
        };
        for parked in resume.drain(..) {
            tokio::spawn(connection::resume(parked));
        }
        // Reset only when the deadline changes: a reset takes the timer
        // driver's lock.
        let next = next.unwrap_or(far);
        if fired || timer.deadline() != next {
            timer.as_mut().reset(next);
        }
        fired = tokio::select! {
            () = lot.bell.notified() => false,
            () = timer.as_mut() => true,
        };
    }
}

/// Empties the lot when dropped: a server whose `run` is dropped before its
/// shutdown (which resumes the parked connections) closes them, and reports
/// them, as dropping their tasks would.
pub(crate) struct CloseOnDrop(pub(crate) Arc<Lot>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        for parked in self.0.close() {
            connection::abandon(*parked);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_space_has_a_new_key_and_stale_keys_find_nothing() {
        let mut spaces = Spaces::default();
        let first = spaces.vacant_key().unwrap();
        // Nothing parked under the key (the connection went on at once).
        assert!(spaces.take(first).is_none());
        spaces.vacant.push(first.slot);
        let second = spaces.vacant_key().unwrap();
        assert_eq!(second.slot, first.slot);
        assert_ne!(second, first);
        assert!(spaces.take(first).is_none());
        assert!(
            spaces
                .take(Key {
                    slot: 7,
                    generation: 1
                })
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_closed_lot_stops_its_driver_and_ignores_wake_ups() {
        let lot = Arc::new(Lot::new());
        let driver = tokio::spawn(drive(Arc::clone(&lot)));
        assert!(lot.close().is_empty());
        Waker::from(Arc::new(Doorbell {
            lot: Arc::downgrade(&lot),
            key: Key {
                slot: 0,
                generation: 1,
            },
        }))
        .wake();
        tokio::time::timeout(std::time::Duration::from_secs(5), driver)
            .await
            .unwrap()
            .unwrap();
        assert!(lot.lock().ready.is_empty());
    }
}
