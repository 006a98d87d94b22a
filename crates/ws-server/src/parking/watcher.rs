//! How the parking lot watches its sockets: an epoll instance of its own.
//!
//! A socket registered with tokio's IO driver carries the driver's record of
//! it (a `ScheduledIo`, 128 bytes aligned to 128 behind an `Arc`: 256 bytes
//! and the allocator's rounding) for as long as it is registered, and a
//! waker to call. A parked socket leaves the driver instead
//! (`TcpStream::into_std`) and is watched here: the kernel keeps its
//! registration, keyed by the parking space, and the driver watches the one
//! descriptor of the lot's epoll instance for all of them.
//!
//! Each socket is watched once (`EPOLLONESHOT`) and level-triggered, so a
//! socket that has input by the time it is watched reports it at once, and
//! one that reported stays quiet until it is watched again. A report under
//! a key that no longer names the socket's parking space (it was resumed
//! for its idle check, then parked again) finds nothing to resume.

use std::io;
use std::net::TcpStream;

#[cfg(target_os = "linux")]
pub(crate) use epoll::Watcher;
#[cfg(not(target_os = "linux"))]
pub(crate) use unsupported::Watcher;

#[cfg(target_os = "linux")]
mod epoll {
    use std::mem::MaybeUninit;
    use std::os::fd::OwnedFd;
    use std::sync::Arc;

    use rustix::event::epoll::{self, CreateFlags, Event, EventData, EventFlags};
    use rustix::io::Errno;
    use rustix::time::Timespec;
    use tokio::io::unix::AsyncFd;

    use super::{TcpStream, io};

    /// Events taken from the kernel per `epoll_wait`; more are taken by
    /// calling again.
    const BATCH: usize = 256;

    /// Returns at once: the runtime's driver already said events are there.
    const NO_WAIT: Timespec = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };

    /// The lot's epoll instance: watches sockets, from any thread.
    #[derive(Debug)]
    pub(crate) struct Watcher {
        epoll: Arc<OwnedFd>,
    }

    impl Watcher {
        pub(crate) fn new() -> io::Result<Self> {
            let epoll = Arc::new(epoll::create(CreateFlags::CLOEXEC)?);
            Ok(Self { epoll })
        }

        /// Reports `key` once `socket` has input, its end or an error (or
        /// at once if it has already).
        ///
        /// A socket stays in the instance when it leaves the lot, disarmed
        /// once it reported (or armed under a key that names nothing any
        /// more, if its idle check resumed it): taking it out would be one
        /// more system call per resumption. So it is re-armed here, and
        /// added only the first time it parks.
        pub(crate) fn watch(&self, socket: &TcpStream, key: u64) -> io::Result<()> {
            let flags = EventFlags::IN | EventFlags::RDHUP | EventFlags::ONESHOT;
            let data = EventData::new_u64(key);
            match epoll::modify(&*self.epoll, socket, data, flags) {
                Err(Errno::NOENT) => epoll::add(&*self.epoll, socket, data, flags)?,
                result => result?,
            }
            Ok(())
        }

        /// The receiving end, for the lot's driver: registered with the
        /// current runtime.
        pub(crate) fn events(&self) -> io::Result<Events> {
            let epoll = crate::readiness::register_readable(Arc::clone(&self.epoll))?;
            Ok(Events { epoll })
        }
    }

    /// The keys of watched sockets as they report.
    #[derive(Debug)]
    pub(crate) struct Events {
        epoll: AsyncFd<Arc<OwnedFd>>,
    }

    impl Events {
        /// Waits until a watched socket reports, then adds the keys of all
        /// that have to `keys`. Cancel-safe: nothing is taken from the kernel
        /// before the last await.
        pub(crate) async fn next(&mut self, keys: &mut Vec<u64>) -> io::Result<()> {
            loop {
                let mut ready = self.epoll.readable().await?;
                take_all(ready.get_inner(), keys)?;
                // Emptied: the driver reports the next event afresh.
                ready.clear_ready();
                if !keys.is_empty() {
                    return Ok(());
                }
            }
        }
    }

    /// Adds the keys of every event waiting in `epoll` to `keys`, without
    /// waiting.
    fn take_all(epoll: &OwnedFd, keys: &mut Vec<u64>) -> io::Result<()> {
        let mut batch = [MaybeUninit::<Event>::uninit(); BATCH];
        loop {
            let (events, _) = epoll::wait(epoll, &mut batch, Some(&NO_WAIT))?;
            keys.extend(events.iter().map(|event| event.data.u64()));
            if events.len() < BATCH {
                return Ok(());
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use std::io::Write;
        use std::net::TcpListener;
        use std::time::Duration;

        use super::*;

        /// A connected pair: the near end is watched, the far end writes.
        fn pair() -> (TcpStream, TcpStream) {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let far = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (near, _) = listener.accept().unwrap();
            (near, far)
        }

        /// The keys of the next reports, if any come within `wait`.
        async fn reported_within(wait: Duration, events: &mut Events) -> Option<Vec<u64>> {
            let mut keys = Vec::new();
            let next = events.next(&mut keys);
            match tokio::time::timeout(wait, next).await {
                Ok(result) => {
                    result.unwrap();
                    Some(keys)
                }
                Err(_) => None,
            }
        }

        /// The keys of the next reports (a generous bound for a loaded machine).
        async fn next_keys(events: &mut Events) -> Vec<u64> {
            reported_within(Duration::from_secs(10), events)
                .await
                .unwrap()
        }

        /// Whether nothing is reported for a while.
        async fn quiet(events: &mut Events) -> bool {
            reported_within(Duration::from_millis(200), events)
                .await
                .is_none()
        }

        #[tokio::test]
        async fn a_watched_socket_reports_its_key_once_per_watch() {
            let watcher = Watcher::new().unwrap();
            let mut events = watcher.events().unwrap();
            let (near, mut far) = pair();
            let (silent, _silent_far) = pair();
            watcher.watch(&near, 7).unwrap();
            watcher.watch(&silent, 8).unwrap();
            assert!(quiet(&mut events).await, "nothing to read yet");
            far.write_all(b"x").unwrap();
            assert_eq!(next_keys(&mut events).await, [7]);
            // Reported once: the input still unread does not report again...
            assert!(quiet(&mut events).await);
            // ...until the socket is watched again, under its new key, at once.
            watcher.watch(&near, 9).unwrap();
            assert_eq!(next_keys(&mut events).await, [9]);
        }

        #[tokio::test]
        async fn more_reports_than_one_batch_are_all_taken() {
            rlimit::increase_nofile_limit(4096).unwrap();
            let watcher = Watcher::new().unwrap();
            let mut events = watcher.events().unwrap();
            let count = BATCH as u64 + 44;
            let pairs: Vec<_> = (0..count).map(|_| pair()).collect();
            for (key, (near, far)) in (0..).zip(&pairs) {
                watcher.watch(near, key).unwrap();
                (&*far).write_all(b"x").unwrap();
            }
            let mut keys = Vec::new();
            while keys.len() < pairs.len() {
                keys.extend(next_keys(&mut events).await);
            }
            keys.sort_unstable();
            assert_eq!(keys, (0..count).collect::<Vec<_>>());
        }

        #[tokio::test]
        async fn the_peer_going_away_is_reported_too() {
            let watcher = Watcher::new().unwrap();
            let mut events = watcher.events().unwrap();
            let (near, far) = pair();
            watcher.watch(&near, 1).unwrap();
            drop(far);
            assert_eq!(next_keys(&mut events).await, [1]);
        }
    }
}

/// Without epoll the lot takes no connection (see [`Lot::accepts`]), and a
/// watcher cannot be made.
///
/// [`Lot::accepts`]: super::Lot::accepts
#[cfg(not(target_os = "linux"))]
mod unsupported {
    use super::{TcpStream, io};

    /// Never made: [`new`](Self::new) fails.
    #[derive(Debug)]
    pub(crate) enum Watcher {}

    impl Watcher {
        pub(crate) fn new() -> io::Result<Self> {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "parking idle connections needs epoll (Linux)",
            ))
        }

        pub(crate) fn watch(&self, _socket: &TcpStream, _key: u64) -> io::Result<()> {
            match *self {}
        }

        pub(crate) fn events(&self) -> io::Result<Events> {
            match *self {}
        }
    }

    /// Never made, like [`Watcher`].
    #[derive(Debug)]
    pub(crate) enum Events {}

    impl Events {
        pub(crate) async fn next(&mut self, _keys: &mut Vec<u64>) -> io::Result<()> {
            match *self {}
        }
    }
}
