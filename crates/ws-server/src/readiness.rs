//! Descriptors of the server's own (a timerfd, the parking lot's epoll
//! instance) registered with the runtime's IO driver, so that a task can
//! wait for them to become readable.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Registers `fd` with the current runtime's IO driver, for readability.
///
/// Shared, so that the owner can keep using the descriptor (the parking
/// lot's epoll instance is changed from any thread) without a duplicate: a
/// `dup` made when the driver task starts showed as a descriptor more than
/// just after the server started.
#[allow(unsafe_code)]
pub(crate) fn register_readable(fd: Arc<OwnedFd>) -> io::Result<AsyncFd<Arc<OwnedFd>>> {
    // SAFETY: `register` asks that the descriptor be open and the same for
    // the whole life of the `AsyncFd`. The `AsyncFd` holds a reference to
    // the `OwnedFd`, which closes its descriptor only when the last
    // reference is dropped, and `OwnedFd::as_raw_fd` always returns the
    // descriptor it owns.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
        .map_err(|failed| failed.into_parts().1)
}
