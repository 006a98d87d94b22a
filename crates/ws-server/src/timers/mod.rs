//! The server's deadlines, and how they can run without tokio's time driver.
//!
//! tokio's time driver works at every wake-up of the runtime that hosts it:
//! it reads the clock twice more, converts the next deadline into an epoll
//! timeout and turns its wheel, about 450 instructions each time. A runtime
//! with a few busy connections wakes for nearly every message, so at one
//! connection that is a sixth of an echo (2,939 instructions per message
//! against fastwebsockets' 2,382, whose runtime has no time driver). The
//! server's deadlines are coarse and rarely due (its timers are re-armed
//! when they fire, not per message), so on Linux it can keep them in a queue
//! of its own ([`start_queue`]) that the runtime's IO driver wakes through a
//! timerfd, and the runtime can be built with IO only (2,478 instructions
//! per echo at one connection). tokio's time driver on a thread of its own
//! was tried first and lost twice: a second thread makes glibc wrap every
//! `send`, `recv` and `epoll_wait` for thread cancellation (2,585
//! instructions), and at 1,000 connections registering and firing timers
//! across threads cost 18 % more CPU per message.
//!
//! The server makes every timer through this module. Without a queue the
//! timers are tokio's, on the current runtime's time driver: a library
//! user's runtime built with `enable_all`, and a test's paused clock.

use std::future::{Future, IntoFuture};
use std::io;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

#[cfg(target_os = "linux")]
mod timerfd;

/// Whether this system can run the server's timers in a queue of their own
/// ([`start_queue`]); without it the runtime needs tokio's time driver.
pub const QUEUE_SUPPORTED: bool = cfg!(target_os = "linux");

#[cfg(target_os = "linux")]
static QUEUE: OnceLock<timerfd::Queue> = OnceLock::new();

/// Runs the server's timers from now on in a queue that the current
/// runtime's IO driver wakes through a timerfd, instead of on tokio's time
/// driver, so that the runtime can be built with `enable_io` only.
///
/// Call it once, inside the runtime that runs the server, before the server
/// starts: it spawns the queue's task there, which lives as long as that
/// runtime. The queue is the process's: every server in the process uses it.
///
/// # Errors
///
/// `Unsupported` where [`QUEUE_SUPPORTED`] is false; `AlreadyExists` when
/// called twice; otherwise when the timerfd cannot be created or registered.
///
/// # Panics
///
/// Outside a tokio runtime with IO enabled.
pub fn start_queue() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let already =
            || io::Error::new(io::ErrorKind::AlreadyExists, "the timer queue runs already");
        if QUEUE.get().is_some() {
            return Err(already());
        }
        QUEUE.set(timerfd::Queue::start()?).map_err(|_| already())
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a timer queue needs Linux's timerfd",
        ))
    }
}

/// A deadline far enough away to mean "never".
pub(crate) const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `now + period`, or a far deadline if that does not fit in an `Instant`.
pub(crate) fn far_or(now: Instant, period: Duration) -> Instant {
    now.checked_add(period)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}

/// A future that completes at its deadline, and can be moved to another.
#[derive(Debug)]
pub(crate) struct Sleep {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Tokio(Pin<Box<tokio::time::Sleep>>),
    #[cfg(target_os = "linux")]
    Queued(timerfd::Sleep),
}

impl Sleep {
    /// When it completes.
    pub(crate) fn deadline(&self) -> Instant {
        match &self.kind {
            Kind::Tokio(sleep) => sleep.deadline(),
            #[cfg(target_os = "linux")]
            Kind::Queued(sleep) => sleep.deadline(),
        }
    }

    /// Whether the deadline has passed, as far as the timer knows: a timer
    /// that has not fired yet answers `false`.
    pub(crate) fn is_elapsed(&self) -> bool {
        match &self.kind {
            Kind::Tokio(sleep) => sleep.is_elapsed(),
            #[cfg(target_os = "linux")]
            Kind::Queued(sleep) => sleep.is_elapsed(),
        }
    }

    /// Moves the deadline, sooner or later; a timer that fired fires again.
    pub(crate) fn reset(&mut self, deadline: Instant) {
        match &mut self.kind {
            Kind::Tokio(sleep) => sleep.as_mut().reset(deadline),
            #[cfg(target_os = "linux")]
            Kind::Queued(sleep) => sleep.reset(deadline),
        }
    }
}

impl std::future::Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.kind {
            Kind::Tokio(sleep) => sleep.as_mut().poll(cx),
            #[cfg(target_os = "linux")]
            Kind::Queued(sleep) => Pin::new(sleep).poll(cx),
        }
    }
}

/// A timer that completes at `deadline`.
pub(crate) fn sleep_until(deadline: Instant) -> Sleep {
    #[cfg(target_os = "linux")]
    if let Some(queue) = QUEUE.get() {
        return Sleep {
            kind: Kind::Queued(queue.sleep_until(deadline)),
        };
    }
    Sleep {
        kind: Kind::Tokio(Box::pin(tokio::time::sleep_until(deadline))),
    }
}

/// A timer that completes after `duration`.
pub(crate) fn sleep(duration: Duration) -> Sleep {
    sleep_until(far_or(Instant::now(), duration))
}

/// The deadline of a [`timeout`] passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Elapsed;

pin_project_lite::pin_project! {
    /// A future bounded in time: [`timeout`] and [`timeout_at`]. A struct
    /// rather than an `async fn`, whose state would hold the future twice
    /// (as the argument and inside `select!`): the handshake's future is
    /// large, and a larger task per connection kept 30 bytes more per idle
    /// connection at 10,000 (freed tasks stay in the allocator's lists).
    #[derive(Debug)]
    pub(crate) struct Timeout<F> {
        #[pin]
        future: F,
        sleep: Sleep,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The future first, as tokio's `timeout` does: its output counts
        // even when the deadline passed while it waited to be polled.
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        Pin::new(this.sleep).poll(cx).map(|()| Err(Elapsed))
    }
}

/// `future`'s output, or [`Elapsed`] if it is not ready by `deadline`.
pub(crate) fn timeout_at<F: IntoFuture>(deadline: Instant, future: F) -> Timeout<F::IntoFuture> {
    Timeout {
        future: future.into_future(),
        sleep: sleep_until(deadline),
    }
}

/// `future`'s output, or [`Elapsed`] if it is not ready within `duration`
/// from now.
pub(crate) fn timeout<F: IntoFuture>(duration: Duration, future: F) -> Timeout<F::IntoFuture> {
    timeout_at(far_or(Instant::now(), duration), future)
}
