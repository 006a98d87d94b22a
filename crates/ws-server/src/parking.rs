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
//! its task: the echo loop hands over its socket and state, which become a
//! [`Parked`] record (the socket, the WebSocket's state, the connection's
//! tally, its idle-timeout bookkeeping and the guard that counts it as open),
//! and the task ends.
//!
//! A parked socket is not registered with the runtime either: it leaves
//! tokio's IO driver, whose record of a socket costs 256 bytes, and the lot's
//! own epoll instance watches it instead (see [`watcher`]), under its key
//! (its slot and the slot's generation). The one [`drive`] task of the
//! server waits for that instance's events, and spawns a task for each
//! connection that has input: the socket goes back to the driver and the
//! echo loop resumes where it stopped. The driver also keeps the one timer
//! for the idle timeouts of all parked connections: a connection whose idle
//! check comes is resumed, and its echo loop pings or closes it as it would
//! have in its task. At shutdown every parked connection is resumed and
//! closed with 1001 like the others. Without epoll (other systems than
//! Linux) connections do not park.
//!
//! Parking and waking happen at most once per idle period, never per
//! message, so one mutex for the whole lot is enough. They cost three
//! `epoll_ctl` calls (out of tokio's driver, armed in the lot's instance,
//! back into the driver) and a share of the lot's `epoll_wait`: about 8 µs
//! more per park and wake-up than when a parked socket stayed registered
//! with the driver (1,000 clients each sending a message every 1.3 s, so
//! that every message wakes a parked connection: server CPU per message
//! 77 µs against 70, medians of three). A connection woken within
//! `park_after` of parking waits that long before it parks again, so this
//! is paid at most once per `park_after` (1 s by default) by a connection,
//! for 370 bytes less per idle connection.
//!
//! What parking saves shows in the process's RSS as the freed task cells
//! are reused (by the next connections' tasks, or the lot's records): the
//! allocator keeps them rather than giving them back. So a connection parks
//! after only 10 ms of quiet until it shows that its quiet spells are short
//! (see `Clock::park_delay`): waiting a whole second, 10,000 connections
//! opened within half a second were all still in their tasks when the last
//! one opened, and RSS stayed at that high-water mark (1,590 bytes per
//! connection); parking after 10 ms, they cost about 960 bytes each, and
//! about 630 since the lot watches them itself.

mod watcher;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use ws_core::stream::WebSocket;

use crate::connection::{self, Clock, Socket, Tally, WriteDeadline};
use crate::metered::Metered;
use crate::server::ActiveGuard;
use crate::tls::Transport;
use watcher::Watcher;

/// A connection waiting in the lot: everything its echo loop needs to go on.
pub(crate) struct Parked {
    /// The socket, out of the runtime's IO driver while it waits.
    socket: std::net::TcpStream,
    /// What the socket's [`Metered`] layer had counted.
    bytes_read: u64,
    /// The WebSocket's state, its transport detached.
    websocket: WebSocket<()>,
    /// What the "connection closed" report will say so far.
    tally: Tally,
    /// The idle-timeout bookkeeping, as the echo loop left it.
    clock: Clock,
    /// Counts the connection as open, and as a task a shutdown waits for.
    active: ActiveGuard,
}

/// A connection whose socket could not leave or rejoin the runtime's IO
/// driver: closed by the failure (tokio's conversions consume the socket),
/// and to be reported with the error.
pub(crate) struct Lost {
    pub(crate) error: io::Error,
    pub(crate) tally: Tally,
    pub(crate) active: ActiveGuard,
}

impl Parked {
    /// Takes a connection's socket out of the runtime's IO driver, to park.
    ///
    /// Fails for a TLS connection (the echo loop parks only plaintext ones)
    /// and if the driver cannot let the socket go (an `epoll_ctl` that only
    /// fails for a socket it does not hold): the socket is then closed.
    pub(crate) fn new(
        socket: Box<Socket>,
        tally: Tally,
        clock: Clock,
        active: ActiveGuard,
    ) -> Result<Self, Lost> {
        let (layers, websocket) = socket.detach();
        let (transport, bytes_read) = layers.into_inner().into_parts();
        let socket = match transport {
            Transport::Plain(stream) => stream.into_std(),
            Transport::Tls(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a TLS connection cannot park",
            )),
        };
        match socket {
            Ok(socket) => Ok(Self {
                socket,
                bytes_read,
                websocket,
                tally,
                clock,
                active,
            }),
            Err(error) => Err(Lost {
                error,
                tally,
                active,
            }),
        }
    }

    /// Puts the socket back into the current runtime's IO driver, to resume
    /// the connection: its socket, tally, clock and guard.
    pub(crate) fn resume(self) -> Result<(Box<Socket>, Tally, Clock, ActiveGuard), Lost> {
        let Self {
            socket,
            bytes_read,
            websocket,
            tally,
            clock,
            active,
        } = self;
        match TcpStream::from_std(socket) {
            Ok(stream) => {
                let limit = active.shared().config.close_timeout;
                let metered = Metered::resumed(Transport::Plain(stream), bytes_read);
                let socket = Box::new(websocket.attach(WriteDeadline::new(metered, limit)));
                Ok((socket, tally, clock, active))
            }
            Err(error) => Err(Lost {
                error,
                tally,
                active,
            }),
        }
    }

    /// Closes the connection without resuming it, and reports it as a
    /// dropped task would be.
    pub(crate) fn abandon(self) {
        connection::abandon(self.tally, &self.active);
    }

    /// The metrics' count of parked connections.
    fn gauge(&self) -> &AtomicU64 {
        &self.active.shared().metrics.parked
    }
}

/// Names a parking space: a slot, and how many connections it has held, so
/// that a key that outlived its connection (a late event, a deadline of a
/// connection that was resumed) finds the slot taken by another or empty,
/// and does nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    slot: u32,
    generation: u32,
}

impl Key {
    /// The key as the watcher carries it.
    fn to_u64(self) -> u64 {
        u64::from(self.generation) << 32 | u64::from(self.slot)
    }

    fn from_u64(key: u64) -> Self {
        Self {
            // The low half.
            slot: key as u32,
            generation: (key >> 32) as u32,
        }
    }
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
    /// Wakes the driver: a nearer idle deadline came in, or the lot closed.
    bell: Notify,
    /// Watches the parked sockets; `None` where connections cannot park.
    watcher: Option<Watcher>,
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
    /// Set at shutdown (or when the driver cannot watch): nothing parks any
    /// more.
    closed: bool,
    slots: Vec<Space>,
    /// Empty slots, reused before the lot grows.
    vacant: Vec<u32>,
    /// Connections parked now.
    parked: usize,
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
    /// A lot with its watcher; where none can be made (not Linux, or no
    /// descriptor left), connections do not park.
    pub(crate) fn new() -> Self {
        let watcher = match Watcher::new() {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::debug!(%error, "idle connections will not park");
                None
            }
        };
        Self {
            spaces: Mutex::new(Spaces::default()),
            bell: Notify::new(),
            watcher,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Spaces> {
        // The lot's state stays consistent between statements that could
        // panic, so a poisoned lock is still usable.
        self.spaces.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether connections may park here: read when a connection's task
    /// starts.
    pub(crate) fn accepts(&self) -> bool {
        self.watcher.is_some() && !self.lock().closed
    }

    /// Parks a connection until its socket has input, its idle check comes
    /// or the server stops. A connection that cannot park (the lot is
    /// closed, or its socket cannot be watched) goes on at once in a new
    /// task.
    pub(crate) fn park(&self, parked: Parked) {
        let mut spaces = self.lock();
        let place = match &self.watcher {
            Some(watcher) if !spaces.closed => spaces.vacant_key().map(|key| (watcher, key)),
            _ => None,
        };
        let Some((watcher, key)) = place else {
            drop(spaces);
            tokio::spawn(connection::resume(Box::new(parked)));
            return;
        };
        // Watched while the lot is locked: input that is already there (it
        // reports at once) waits for the connection to be in its space.
        if let Err(error) = watcher.watch(&parked.socket, key.to_u64()) {
            tracing::debug!(%error, "a connection could not park");
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

    /// The connections to resume now (those of `reported` keys, and those
    /// due for their idle check), and the next idle deadline; `None` once
    /// the lot is closed.
    #[allow(clippy::vec_box)]
    fn due(
        &self,
        now: Instant,
        reported: &mut Vec<u64>,
        resume: &mut Vec<Box<Parked>>,
    ) -> Option<Option<Instant>> {
        let mut spaces = self.lock();
        if spaces.closed {
            return None;
        }
        for key in reported.drain(..) {
            resume.extend(spaces.take(Key::from_u64(key)));
        }
        let next = loop {
            let Some(&Reverse((deadline, key))) = spaces.deadlines.peek() else {
                break None;
            };
            if deadline > now {
                break Some(deadline);
            }
            spaces.deadlines.pop();
            resume.extend(spaces.take(key));
        };
        Some(next)
    }

    /// Stops parking, for good: the driver cannot watch.
    fn refuse(&self, error: &io::Error) {
        tracing::warn!(%error, "the parking lot cannot watch its sockets; idle connections stay in their tasks");
        for parked in self.close() {
            tokio::spawn(connection::resume(parked));
        }
    }
}

/// The lot's driver, one task per server: resumes each connection whose
/// socket has input or whose idle check came, each in a task of its own,
/// until the lot closes.
pub(crate) async fn drive(lot: Arc<Lot>) {
    // Without a watcher the lot takes no connection: nothing to drive.
    let Some(watcher) = &lot.watcher else {
        return;
    };
    let mut events = match watcher.events() {
        Ok(events) => events,
        Err(error) => {
            lot.refuse(&error);
            return;
        }
    };
    // "No deadline" is a far one, so that the timer can always be armed.
    let far = crate::timers::far_or(Instant::now(), crate::timers::FAR_FUTURE);
    let timer = crate::timers::sleep_until(far);
    tokio::pin!(timer);
    let mut reported = Vec::new();
    let mut resume = Vec::new();
    let mut fired = false;
    loop {
        let Some(next) = lot.due(Instant::now(), &mut reported, &mut resume) else {
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
            result = events.next(&mut reported) => {
                if let Err(error) = result {
                    lot.refuse(&error);
                    return;
                }
                false
            }
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
            parked.abandon();
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

    #[test]
    fn a_key_survives_the_watcher_round_trip() {
        let key = Key {
            slot: 0xdead_beef,
            generation: 0x0102_0304,
        };
        assert_eq!(Key::from_u64(key.to_u64()), key);
        let first = Key {
            slot: 0,
            generation: 1,
        };
        assert_ne!(first.to_u64(), Key { slot: 1, ..first }.to_u64());
    }

    #[tokio::test]
    async fn a_closed_lot_stops_its_driver_and_takes_no_connection() {
        let lot = Arc::new(Lot::new());
        let driver = tokio::spawn(drive(Arc::clone(&lot)));
        assert!(lot.close().is_empty());
        assert!(!lot.accepts());
        tokio::time::timeout(std::time::Duration::from_secs(5), driver)
            .await
            .unwrap()
            .unwrap();
    }
}
