//! Owned read and write halves of a [`WebSocket`], for two tasks.
//!
//! Both halves share the socket behind a mutex that is held only inside a
//! poll, never across an await: each `recv`, `send` or `flush` locks, makes
//! what progress it can, and unlocks before it waits. The read half answers
//! the peer on its own (pongs, the close echo, a failure's close frame go
//! out while the write half is idle or parked elsewhere) because the halves
//! share one outbound queue and whichever half runs writes what is queued.
//!
//! Writes of either half register one waker that wakes both halves, so a
//! half never loses the wake-up the other half's registration would replace
//! (a transport such as tokio's `TcpStream` keeps one write waker). Only the
//! read half reads from the transport.
//!
//! Of the two known designs, this is tokio-tungstenite's (a lock shared by
//! the halves, as `futures::lock::BiLock`) rather than fastwebsockets'
//! "obligated send", where the read half hands its replies to a closure the
//! application supplies: here the replies need nothing from the application.
//! The lock costs one uncontended acquisition per poll; an unsplit
//! [`WebSocket`] takes none.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use tokio::io::{AsyncRead, AsyncWrite};

use super::{ReadAhead, WebSocket, Writer};
use crate::close::CloseCode;
use crate::error::Error;
use crate::message::{Event, Message};
use crate::protocol::Connection;

/// The receiving half of a split [`WebSocket`]: events come out here, and
/// the protocol's replies to them are written from here.
#[derive(Debug)]
pub struct ReadHalf<S> {
    shared: Arc<Shared<S>>,
}

/// The sending half of a split [`WebSocket`].
#[derive(Debug)]
pub struct WriteHalf<S> {
    shared: Arc<Shared<S>>,
}

/// [`ReadHalf::reunite`] was given halves of two different sockets; both
/// are handed back.
#[derive(Debug)]
pub struct ReuniteError<S>(pub ReadHalf<S>, pub WriteHalf<S>);

impl<S> std::fmt::Display for ReuniteError<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the halves belong to different WebSockets")
    }
}

impl<S: std::fmt::Debug> std::error::Error for ReuniteError<S> {}

/// Which half a waker belongs to.
const READ: usize = 0;
const WRITE: usize = 1;

#[derive(Debug)]
struct Shared<S> {
    socket: Mutex<WebSocket<S>>,
    /// The halves' tasks, as last seen waiting; woken by `wake_both`.
    parked: Arc<Parked>,
    /// A waker that wakes both halves, registered by every write.
    wake_both: Waker,
    /// What dropping a half does: `Drop` cannot require the transport's
    /// traits, so the function is chosen where they are known (`split`).
    on_drop: fn(&Shared<S>, usize),
}

#[derive(Debug, Default)]
struct Parked {
    wakers: Mutex<[Option<Waker>; 2]>,
    /// Set by `reunite`, so that the halves' drops leave the socket alone.
    reunited: std::sync::atomic::AtomicBool,
}

impl Parked {
    fn park(&self, half: usize, waker: &Waker) {
        let mut wakers = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = wakers.get_mut(half) {
            match slot {
                Some(parked) if parked.will_wake(waker) => {}
                _ => *slot = Some(waker.clone()),
            }
        }
    }

    fn wake_half(&self, half: usize) {
        let waker = {
            let mut wakers = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
            wakers.get_mut(half).and_then(Option::take)
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Wake for Parked {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wake_half(READ);
        self.wake_half(WRITE);
    }
}

impl<S> Shared<S> {
    fn lock(&self) -> MutexGuard<'_, WebSocket<S>> {
        // A panic while locked leaves the socket in a state its own methods
        // keep consistent (no poll leaves it half updated); go on with it.
        self.socket.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Splits `socket`; see [`WebSocket::split`].
pub(super) fn split<S>(socket: WebSocket<S>) -> (ReadHalf<S>, WriteHalf<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let parked = Arc::new(Parked::default());
    let shared = Arc::new(Shared {
        socket: Mutex::new(socket),
        wake_both: Waker::from(Arc::clone(&parked)),
        parked,
        on_drop: close_on_drop::<S>,
    });
    (
        ReadHalf {
            shared: Arc::clone(&shared),
        },
        WriteHalf { shared },
    )
}

/// Runs `poll` on the locked socket; parks `half`'s task if it returns
/// `Pending`.
fn poll_locked<S, T>(
    shared: &Shared<S>,
    half: usize,
    cx: &mut Context<'_>,
    poll: impl FnOnce(&mut WebSocket<S>, &mut Context<'_>, &Waker) -> Poll<T>,
) -> Poll<T> {
    // Parked before polling, so that a wake-up between the poll and the
    // parking cannot be lost.
    shared.parked.park(half, cx.waker());
    let mut socket = shared.lock();
    poll(&mut socket, cx, &shared.wake_both)
}

impl<S: AsyncRead + AsyncWrite + Unpin> ReadHalf<S> {
    /// The next event, as [`WebSocket::recv`]; the protocol's replies are
    /// written from here, whatever the write half is doing. Cancel-safe.
    pub async fn recv(&mut self) -> Result<Option<Event>, Error> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The poll behind [`recv`](Self::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Event>, Error>> {
        poll_locked(&self.shared, READ, cx, |socket, cx, wake_both| {
            socket.poll_recv_with(cx, None, Writer::Shared(wake_both))
        })
    }

    /// Runs `f` on the protocol state (under the halves' lock: keep it
    /// short), e.g. to look at [`Connection::state`].
    pub fn with_connection<T>(&mut self, f: impl FnOnce(&mut Connection) -> T) -> T {
        f(self.shared.lock().connection_mut())
    }

    /// Whether `write` is the other half of this socket.
    pub fn is_pair_of(&self, write: &WriteHalf<S>) -> bool {
        Arc::ptr_eq(&self.shared, &write.shared)
    }

    /// Puts the halves back together.
    pub fn reunite(self, write: WriteHalf<S>) -> Result<WebSocket<S>, ReuniteError<S>> {
        if !self.is_pair_of(&write) {
            return Err(ReuniteError(self, write));
        }
        let shared = Arc::clone(&self.shared);
        shared
            .parked
            .reunited
            .store(true, std::sync::atomic::Ordering::Release);
        drop(self);
        drop(write);
        match Arc::try_unwrap(shared) {
            Ok(shared) => Ok(shared
                .socket
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner)),
            // Both halves were dropped above, and nothing else holds `Shared`.
            Err(_) => unreachable_reunite(),
        }
    }
}

/// `reunite` dropped every other owner of the shared state, so its
/// `try_unwrap` cannot fail; this keeps the impossible branch free of a
/// panic in library code while still saying what went wrong.
#[cold]
fn unreachable_reunite<T>() -> T {
    #[allow(clippy::panic)]
    {
        panic!("ws-core: the halves of a socket were still shared while being reunited")
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WriteHalf<S> {
    /// Sends a message and writes it out, as [`WebSocket::send`]: waits for
    /// room first while the queue is over its high-water mark.
    pub async fn send(&mut self, message: Message) -> Result<(), Error> {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await?;
        self.queue(message)?;
        self.flush().await
    }

    /// Sends a text message and writes it out.
    pub async fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.send(Message::from(text.to_owned())).await
    }

    /// Sends a binary message and writes it out.
    pub async fn send_binary(&mut self, data: &[u8]) -> Result<(), Error> {
        self.send(Message::Binary(bytes::Bytes::copy_from_slice(data)))
            .await
    }

    /// Queues a message without writing it; fails with
    /// [`Error::WriteBufferFull`] while the queue is over its high-water
    /// mark (see [`WebSocket::queue`]).
    pub fn queue(&mut self, message: Message) -> Result<(), Error> {
        self.shared.lock().queue(message)
    }

    /// Queues a [`PreparedMessage`](crate::PreparedMessage) without writing
    /// it, sharing its frame; refused like [`queue`](Self::queue) over the
    /// high-water mark.
    pub fn queue_prepared(&mut self, message: &crate::PreparedMessage) -> Result<(), Error> {
        self.with_connection(|connection| connection.queue_prepared(message))
    }

    /// Sends a [`PreparedMessage`](crate::PreparedMessage) and writes it
    /// out, waiting for room first as [`send`](Self::send) does.
    pub async fn send_prepared(&mut self, message: &crate::PreparedMessage) -> Result<(), Error> {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await?;
        self.queue_prepared(message)?;
        self.flush().await
    }

    /// Sends a ping and writes it out; its pong arrives at the read half.
    pub async fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.shared.lock().connection_mut().queue_ping(payload)?;
        self.flush().await
    }

    /// Starts the closing handshake and writes the close frame; the read
    /// half receives the peer's answer and then ends.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.with_socket(|socket| socket.connection_mut().close(code, reason))?;
        self.wake_reader();
        self.flush().await
    }

    /// Runs `f` on the protocol state (under the halves' lock: keep it
    /// short), to queue what the methods above do not cover (fragments,
    /// unsolicited pongs) or to look at the queue; [`flush`](Self::flush)
    /// writes it out.
    pub fn with_connection<T>(&mut self, f: impl FnOnce(&mut Connection) -> T) -> T {
        f(self.shared.lock().connection_mut())
    }

    /// Runs `f` on the locked socket.
    pub(super) fn with_socket<T>(&self, f: impl FnOnce(&mut WebSocket<S>) -> T) -> T {
        f(&mut self.shared.lock())
    }

    /// Wakes the read half, which may have something to answer or to end.
    pub(super) fn wake_reader(&self) {
        self.shared.parked.wake_half(READ);
    }

    /// Writes out everything queued (by either half).
    pub async fn flush(&mut self) -> Result<(), Error> {
        std::future::poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// Ready once a message may be queued (under the high-water mark, or
    /// drained to the low-water mark after being over it).
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        poll_locked(&self.shared, WRITE, cx, |socket, _, wake_both| {
            socket.poll_room(&mut Context::from_waker(wake_both), ReadAhead::No)
        })
    }

    /// The poll behind [`flush`](Self::flush).
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        poll_locked(&self.shared, WRITE, cx, |socket, _, wake_both| {
            socket.poll_flush_with(&mut Context::from_waker(wake_both), ReadAhead::No)
        })
    }

    /// Whether `read` is the other half of this socket.
    pub fn is_pair_of(&self, read: &ReadHalf<S>) -> bool {
        read.is_pair_of(self)
    }
}

/// Dropping a half ends the connection cleanly: the close frame (1000) is
/// queued unless one was sent, what is queued is written as far as the
/// transport takes it now, and the other half is woken to finish: a read
/// half then reads the peer's answer and ends, a write half's sends fail
/// with [`Error::Closed`].
fn close_on_drop<S>(shared: &Shared<S>, other: usize)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if shared
        .parked
        .reunited
        .load(std::sync::atomic::Ordering::Acquire)
    {
        return;
    }
    {
        let mut socket = shared.lock();
        if !socket.connection().close_sent() {
            // Cannot fail: the code is sendable and the reason empty.
            let _ = socket.connection_mut().close(CloseCode::NORMAL, "");
        }
        let mut cx = Context::from_waker(&shared.wake_both);
        let _ = socket.poll_flush_with(&mut cx, ReadAhead::No);
    }
    shared.parked.wake_half(other);
}

impl<S> Drop for ReadHalf<S> {
    fn drop(&mut self) {
        (self.shared.on_drop)(&self.shared, WRITE);
    }
}

impl<S> Drop for WriteHalf<S> {
    fn drop(&mut self) {
        (self.shared.on_drop)(&self.shared, READ);
    }
}
