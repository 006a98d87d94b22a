//! Descriptors of the server's own (a timerfd, the parking lot's epoll
//! instance) registered with the runtime's IO driver, so that a task can
//! wait for them to become readable.

use std::io;
use std::os::fd::OwnedFd;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Registers `fd` with the current runtime's IO driver, for readability.
#[allow(unsafe_code)]
pub(crate) fn register_readable(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: `register` asks that the descriptor be open and the same for
    // the whole life of the `AsyncFd`. The `OwnedFd` is moved into it, so
    // nothing else can close it, and `OwnedFd::as_raw_fd` always returns the
    // descriptor it owns.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
        .map_err(|failed| failed.into_parts().1)
}
