//! A WebSocket over any tokio `AsyncRead + AsyncWrite` (feature `tokio`).
//!
//! The adapter only moves bytes: every protocol decision is the
//! [`Connection`]'s. It keeps the sans-IO contract: replies the protocol owes
//! the peer are written before an event is handed out, and everything queued
//! is written before the adapter waits to read.
//!
//! [`recv`](WebSocket::recv) is cancel-safe: dropping its future (in a
//! `tokio::select!`) loses neither received bytes nor an event.

#[cfg(feature = "futures")]
mod ecosystem;
mod split;

use std::future::Future;
use std::io;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

pub use split::{ReadHalf, ReuniteError, WriteHalf};

use crate::close::CloseCode;
use crate::error::{Error, is_disconnect};
use crate::handshake::{
    AcceptOptions, ClientHandshake, ClientRequest, HandshakeError, Negotiated, ServerHandshake,
    UpgradeRequest,
};
use crate::message::{Event, Message};
use crate::protocol::{Config, Connection, Role, State};

/// A WebSocket connection over an async stream.
#[derive(Debug)]
pub struct WebSocket<S> {
    stream: S,
    connection: Connection,
    /// An event taken from the connection whose delivery waits on a write;
    /// kept here so that a cancelled `recv` does not lose it. Boxed: it is
    /// rarely there, and an idle connection should not carry its size.
    pending: Option<Box<Result<Event, Error>>>,
    /// The peer's end of input was read while a write was blocked.
    input_ended: bool,
    /// A sender found the write queue full and waits for the low-water mark.
    draining: bool,
    /// `recv` is waiting to read, with nothing buffered to process.
    parked: bool,
    /// `recv` is waiting for a write of what was queued to finish.
    flushing: bool,
    /// `recv_lean` keeps the buffers while it waits (see
    /// [`WebSocket::hold_buffers`]).
    holding: bool,
}

/// Waits until a transport is readable, without reading from it.
type PollReady<S> = fn(&S, &mut Context<'_>) -> Poll<io::Result<()>>;

/// A transport that can wait until it is readable without a buffer, which
/// lets [`WebSocket::recv_lean`] hold no memory for idle connections.
///
/// An implementation may return `Ready` early (spuriously, or always, for a
/// transport such as TLS that may hold decrypted bytes the socket's
/// readiness does not show): `recv_lean` then reads with a buffer as `recv`
/// does. It must not return `Pending` while bytes can be read.
pub trait ReadReady {
    /// Polls until reading would make progress.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl ReadReady for tokio::net::TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::net::TcpStream::poll_read_ready(self, cx)
    }
}

/// How far past the frame limit a blocked write may read ahead.
const READ_AHEAD: usize = 64 * 1024;

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Performs the server side of the opening handshake with default limits,
    /// selecting no subprotocol and no extension.
    pub async fn accept(stream: S) -> Result<Self, Error> {
        Self::accept_with(stream, Config::default(), |_| Ok(AcceptOptions::default()))
            .await
            .map(|(socket, _)| socket)
    }

    /// Performs the server side of the opening handshake. `choose` sees the
    /// validated request and picks the subprotocol and extensions, or refuses;
    /// a refusal or an invalid request is answered with the matching HTTP
    /// error before it is returned.
    pub async fn accept_with<F>(
        mut stream: S,
        config: Config,
        choose: F,
    ) -> Result<(Self, UpgradeRequest), Error>
    where
        F: FnOnce(&UpgradeRequest) -> Result<AcceptOptions, HandshakeError>,
    {
        let mut handshake = ServerHandshake::new(config);
        let answer = loop {
            match handshake.request() {
                Ok(Some(_)) => break handshake.accept(choose),
                Ok(None) => {}
                Err(refused) => break Err(refused),
            }
            if stream.read_buf(handshake.read_buffer()).await? == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
        };
        let response = match &answer {
            Ok(accepted) => &accepted.response,
            Err(refused) => &refused.response,
        };
        stream.write_all(response).await?;
        let accepted = answer.map_err(HandshakeError::from)?;
        let socket = Self::from_connection(stream, accepted.connection);
        Ok((socket, accepted.request))
    }

    /// Performs the client side of the opening handshake on a connected
    /// stream, validating the server's answer strictly.
    pub async fn connect(
        mut stream: S,
        request: &ClientRequest,
        config: Config,
    ) -> Result<(Self, Negotiated), Error> {
        let mut handshake = ClientHandshake::new(request, config);
        stream.write_all(handshake.request_bytes()).await?;
        loop {
            if stream.read_buf(handshake.read_buffer()).await? == 0 {
                handshake.receive_eof();
            }
            match handshake.step()? {
                ControlFlow::Continue(more) => handshake = more,
                ControlFlow::Break((connection, negotiated)) => {
                    return Ok((Self::from_connection(stream, connection), negotiated));
                }
            }
        }
    }

    /// Wraps a stream whose handshake is already done (a server that routes
    /// plain HTTP itself builds the [`Connection`] from the bytes behind the
    /// head).
    pub fn from_connection(stream: S, connection: Connection) -> Self {
        Self {
            stream,
            connection,
            pending: None,
            input_ended: false,
            draining: false,
            parked: false,
            flushing: false,
            holding: false,
        }
    }

    /// The next event, reading as needed. Returns `Ok(None)` once the
    /// connection is closed: after the closing handshake, the transport's end,
    /// or a protocol error already returned.
    ///
    /// Events already buffered are returned without I/O, so a loop that
    /// [`queue`](Self::queue)s replies gets them written in one go when the
    /// buffer runs dry. A client keeps reading after the closing handshake
    /// until the server ends the TCP connection (RFC 6455 §7.1.1): wrap the
    /// call in a timeout if the server may not.
    ///
    /// Cancel-safe: dropping the future (in a `tokio::select!`) loses
    /// neither received bytes nor an event.
    pub async fn recv(&mut self) -> Result<Option<Event>, Error> {
        std::future::poll_fn(|cx| self.poll_recv_with(cx, None, Writer::Own)).await
    }

    /// The poll behind [`recv`](Self::recv), for code that implements
    /// futures by hand.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Event>, Error>> {
        self.poll_recv_with(cx, None, Writer::Own)
    }

    /// Like [`recv`](Self::recv), but holds no read or write buffer while
    /// the connection is idle: it waits for the transport to become readable
    /// before it reserves a buffer, and releases the buffers (and
    /// permessage-deflate state that no context takeover makes disposable)
    /// whenever everything received has been processed and everything queued
    /// written. For servers holding many mostly idle connections; the cost is
    /// an allocation when an idle connection wakes up. Cancel-safe like `recv`.
    pub async fn recv_lean(&mut self) -> Result<Option<Event>, Error>
    where
        S: ReadReady,
    {
        std::future::poll_fn(|cx| self.poll_recv_with(cx, Some(S::poll_read_ready), Writer::Own))
            .await
    }

    /// Makes [`recv_lean`](Self::recv_lean) keep the read and write buffers
    /// while it waits (`true`), or give them back again (`false`, the
    /// default); it still waits for readability before it reads.
    ///
    /// Giving the buffers back and taking them again costs a few percent of
    /// a small message's processing, and saves nothing when the next message
    /// comes within milliseconds. A server that sees which of its
    /// connections are busy (by their message rate) can hold their buffers
    /// and let only the quiet ones wait lean. Takes effect at the next wait;
    /// [`Connection::shrink_buffers`] releases buffers held meanwhile.
    pub fn hold_buffers(&mut self, hold: bool) {
        self.holding = hold;
    }

    /// The receive loop. `ready`, when given, waits for the transport to
    /// become readable without a buffer, so that the buffers can be released
    /// while the connection is idle; `writer` says whether this task owns
    /// the writes or shares them with a write half.
    pub(crate) fn poll_recv_with(
        &mut self,
        cx: &mut Context<'_>,
        ready: Option<PollReady<S>>,
        writer: Writer<'_>,
    ) -> Poll<Result<Option<Event>, Error>> {
        loop {
            // Woken while waiting to read: nothing was buffered or queued
            // when the wait began, and nothing can have been buffered since
            // (reading ahead clears the flag), so go straight back to the
            // read unless the application queued something meanwhile.
            let woken = std::mem::take(&mut self.parked);
            let resume_read = woken && !self.connection.wants_write();
            if !resume_read {
                if self.flushing {
                    // A write of what was queued was left waiting: finish it
                    // before taking in more events, so that a peer that does
                    // not read cannot make us queue more than what was read
                    // ahead meanwhile.
                    ready!(self.poll_write_queued(cx, writer))?;
                    self.flushing = false;
                }
                let event = match self.pending.take() {
                    Some(pending) => Some(*pending),
                    None => self.connection.next_event().transpose(),
                };
                if let Some(event) = event {
                    // Replies the protocol owes go out before the event is
                    // handed over, and a failure's close frame before its
                    // error.
                    if event.is_err() || self.connection.reply_pending() {
                        match self.poll_write_queued(cx, writer) {
                            Poll::Ready(Ok(())) => {}
                            Poll::Ready(Err(error)) => {
                                self.pending = Some(Box::new(event));
                                return Poll::Ready(Err(error));
                            }
                            Poll::Pending => {
                                self.pending = Some(Box::new(event));
                                return Poll::Pending;
                            }
                        }
                    }
                    return Poll::Ready(event.map(Some));
                }
                // Everything queued is written before we wait to read.
                let buffered = self.connection.buffered_input();
                match self.poll_write_queued(cx, writer) {
                    Poll::Ready(written) => written?,
                    Poll::Pending => {
                        self.flushing = true;
                        return Poll::Pending;
                    }
                }
                if self.connection.buffered_input() != buffered {
                    // Read ahead while the write waited: process that first.
                    continue;
                }
                if self.connection.state() == State::Closed {
                    if self.connection.role() == Role::Client {
                        ready!(self.poll_drain_until_eof(cx))?;
                    }
                    return Poll::Ready(Ok(None));
                }
            }
            let read = if self.input_ended {
                0
            } else {
                match self.poll_read_more(cx, ready, woken) {
                    Poll::Ready(read) => read?,
                    Poll::Pending => {
                        self.parked = true;
                        return Poll::Pending;
                    }
                }
            };
            if read == 0 {
                self.connection.receive_eof()?;
                return Poll::Ready(Ok(None));
            }
        }
    }

    /// Writes what is queued, as `writer` allows: a task that owns the
    /// writes waits for all of them (reading ahead meanwhile); a read half
    /// does not wait, so that the application's bulk writes never hold up
    /// its events nor deadlock with a peer that stops reading while its own
    /// writes are blocked. It leaves the rest to the write half or to its
    /// own next poll (a writable transport wakes both halves), except while
    /// the peer sends pings faster than it reads our pongs
    /// ([`Connection::replies_backlogged`]): then it stops reading until
    /// they are written, which bounds what such a peer costs.
    fn poll_write_queued(
        &mut self,
        cx: &mut Context<'_>,
        writer: Writer<'_>,
    ) -> Poll<Result<(), Error>> {
        match writer {
            Writer::Own => self.poll_flush_with(cx, ReadAhead::Yes),
            Writer::Shared(waker) => {
                let mut write_cx = Context::from_waker(waker);
                match self.poll_flush_with(&mut write_cx, ReadAhead::No) {
                    Poll::Pending if self.connection.replies_backlogged() => Poll::Pending,
                    Poll::Pending => Poll::Ready(Ok(())),
                    ready => ready,
                }
            }
        }
    }

    /// Reads once into the connection's buffer; returns the bytes read.
    /// `woken`: this poll follows a wait to read (most likely a wake-up
    /// because the transport became readable).
    fn poll_read_more(
        &mut self,
        cx: &mut Context<'_>,
        ready: Option<PollReady<S>>,
        woken: bool,
    ) -> Poll<io::Result<usize>> {
        let lean = ready.is_some() && self.connection.buffered_input() == 0;
        if let (true, Some(ready)) = (lean, ready) {
            // Wait without a buffer; part of a frame, when buffered, is kept.
            // The buffers are given back only when there is a wait: a busy
            // connection, whose socket is readable again by the time it
            // looks, keeps its read buffer from one message to the next.
            // A poll that follows a wait to read was most likely woken by
            // input: it reads at once (giving the buffers back again if the
            // wake-up was spurious) instead of asking for readiness twice.
            if !woken && ready(&self.stream, cx)?.is_pending() {
                if !self.holding {
                    self.connection.shrink_buffers();
                }
                return Poll::Pending;
            }
        }
        let polled = poll_read_buf(&mut self.stream, cx, self.connection.read_buffer());
        if polled.is_pending() && lean && !self.holding {
            // Readiness was stale (or the transport, like TLS, always says
            // ready): give the buffer back before waiting.
            self.connection.shrink_buffers();
        }
        polled
    }

    /// Queues a message without writing it: it goes out with the next
    /// [`flush`](Self::flush), [`send`](Self::send) or [`recv`](Self::recv)
    /// that has to wait.
    ///
    /// Fails with [`Error::WriteBufferFull`] while the bytes queued and not
    /// yet written are over the high-water mark
    /// ([`Config::write_high_water`]): write them out with `flush` (or let
    /// `recv` do it) and try again, or drop the message.
    pub fn queue(&mut self, message: Message) -> Result<(), Error> {
        self.connection.queue(message)
    }

    /// Sends a message and writes it out. While the queue is over its
    /// high-water mark, it first waits until the peer has taken enough for
    /// the queue to drop below the low-water mark.
    pub async fn send(&mut self, message: Message) -> Result<(), Error> {
        self.wait_for_room().await?;
        self.connection.queue(message)?;
        self.flush().await
    }

    /// Sends a text message and writes it out (see [`send`](Self::send)).
    pub async fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.wait_for_room().await?;
        self.connection.queue_text(text)?;
        self.flush().await
    }

    /// Sends a binary message and writes it out (see [`send`](Self::send)).
    pub async fn send_binary(&mut self, data: &[u8]) -> Result<(), Error> {
        self.wait_for_room().await?;
        self.connection.queue_binary(data)?;
        self.flush().await
    }

    /// Sends a ping and writes it out.
    pub async fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.connection.queue_ping(payload)?;
        self.flush().await
    }

    /// Starts the closing handshake; keep calling [`recv`](Self::recv) until
    /// it returns `Ok(None)` to receive the peer's answer.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.connection.close(code, reason)?;
        self.flush().await
    }

    /// Writes out everything queued, with vectored writes when the queue
    /// holds large payloads by reference.
    ///
    /// While the peer is not taking our bytes, this keeps reading theirs into
    /// the connection's buffer (up to the frame limit and 64 KiB more), so
    /// that two peers that both write before they read cannot deadlock; the
    /// bytes are processed by the next [`recv`](Self::recv).
    pub async fn flush(&mut self) -> Result<(), Error> {
        std::future::poll_fn(|cx| self.poll_flush_with(cx, ReadAhead::Yes)).await
    }

    /// Waits until the queue is under its low-water mark, if it is over its
    /// high-water mark.
    async fn wait_for_room(&mut self) -> Result<(), Error> {
        std::future::poll_fn(|cx| self.poll_room(cx, ReadAhead::Yes)).await
    }

    /// Ready once a message may be queued: at once below the high-water
    /// mark, else when writing has brought the queue under the low-water
    /// mark.
    pub(crate) fn poll_room(
        &mut self,
        cx: &mut Context<'_>,
        read_ahead: ReadAhead,
    ) -> Poll<Result<(), Error>> {
        if !self.draining && !self.connection.write_buffer_full() {
            return Poll::Ready(Ok(()));
        }
        // Remembered across polls: a sender that found the queue full goes
        // on only at the low-water mark, not as soon as it dips under the
        // high one.
        self.draining = true;
        while !self.connection.write_buffer_drained() {
            ready!(self.poll_write_once(cx, read_ahead))?;
        }
        self.draining = false;
        Poll::Ready(Ok(()))
    }

    /// Writes everything queued, then flushes the transport.
    pub(crate) fn poll_flush_with(
        &mut self,
        cx: &mut Context<'_>,
        read_ahead: ReadAhead,
    ) -> Poll<Result<(), Error>> {
        while self.connection.wants_write() {
            ready!(self.poll_write_once(cx, read_ahead))?;
        }
        Pin::new(&mut self.stream)
            .poll_flush(cx)
            .map_err(Error::from)
    }

    /// One write of queued bytes (vectored when the queue holds several
    /// chunks). While the write is blocked and `read_ahead` allows it, reads
    /// the peer's bytes into the connection's buffer, up to the frame limit
    /// and 64 KiB more, so that two peers that both write before they read
    /// cannot deadlock.
    fn poll_write_once(
        &mut self,
        cx: &mut Context<'_>,
        read_ahead: ReadAhead,
    ) -> Poll<Result<(), Error>> {
        loop {
            let outbound = self.connection.outbound();
            let first = outbound.chunk();
            // One chunk (the common case: small echoes) goes out with a plain
            // write; writev costs more in the kernel for a single buffer.
            let polled = if first.len() == outbound.remaining() {
                Pin::new(&mut self.stream).poll_write(cx, first)
            } else {
                let mut slices = [io::IoSlice::new(&[]); 16];
                let count = outbound.chunks_vectored(&mut slices);
                let slices = slices.get(..count).unwrap_or_default();
                Pin::new(&mut self.stream).poll_write_vectored(cx, slices)
            };
            match polled {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero).into()));
                }
                Poll::Ready(Ok(written)) => {
                    outbound.advance(written);
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error.into())),
                Poll::Pending => {
                    let limit = self.connection.max_frame_size().saturating_add(READ_AHEAD);
                    if read_ahead == ReadAhead::No
                        || self.input_ended
                        || self.connection.buffered_input() >= limit
                    {
                        return Poll::Pending;
                    }
                    match self.poll_read_ahead(cx, limit) {
                        Poll::Ready(Ok(0)) => {
                            self.input_ended = true;
                            return Poll::Pending;
                        }
                        // Read something: try the write again, which also
                        // registers for its readiness before we wait.
                        Poll::Ready(Ok(_)) => {}
                        Poll::Ready(Err(error)) => return Poll::Ready(Err(error.into())),
                        Poll::Pending => return Poll::Pending,
                    }
                }
            }
        }
    }

    /// Reads whatever the peer has sent into the connection's buffer,
    /// without processing it, up to `limit` buffered bytes.
    fn poll_read_ahead(&mut self, cx: &mut Context<'_>, limit: usize) -> Poll<io::Result<usize>> {
        // What is read here waits for `recv` to process it.
        self.parked = false;
        let buffer = self.connection.read_buffer();
        let start = buffer.len();
        // Zero-filled rather than uninitialised: this path runs only while
        // writes are blocked, and it keeps the adapter free of `unsafe`.
        // The buffer's spare capacity can be far larger than asked for (a
        // reallocation keeps the size of the original allocation), so the
        // read is cut at the limit.
        buffer.resize(buffer.capacity().min(limit).max(start + 1), 0);
        let mut read = ReadBuf::new(buffer.get_mut(start..).unwrap_or_default());
        let result = Pin::new(&mut self.stream).poll_read(cx, &mut read);
        let filled = read.filled().len();
        buffer.truncate(start + filled);
        result.map_ok(|()| filled)
    }

    /// After the closing handshake a client reads (and drops) what is left
    /// until the server ends TCP (RFC 6455 §7.1.1).
    fn poll_drain_until_eof(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        loop {
            let scratch = self.connection.read_buffer();
            scratch.clear();
            let read = ready!(poll_read_buf(&mut self.stream, cx, scratch));
            self.connection.read_buffer().clear();
            match read {
                Ok(0) => {
                    self.connection.shrink_buffers();
                    return Poll::Ready(Ok(()));
                }
                Ok(_) => {}
                Err(error) if is_disconnect(&error) => return Poll::Ready(Ok(())),
                Err(error) => return Poll::Ready(Err(error.into())),
            }
        }
    }

    /// Queues a [`PreparedMessage`](crate::PreparedMessage) without writing
    /// it, sharing its frame (see [`Connection::queue_prepared`]); refused
    /// like [`queue`](Self::queue) over the high-water mark.
    pub fn queue_prepared(&mut self, message: &crate::PreparedMessage) -> Result<(), Error> {
        self.connection.queue_prepared(message)
    }

    /// Sends a [`PreparedMessage`](crate::PreparedMessage) and writes it
    /// out (see [`send`](Self::send)).
    pub async fn send_prepared(&mut self, message: &crate::PreparedMessage) -> Result<(), Error> {
        self.wait_for_room().await?;
        self.connection.queue_prepared(message)?;
        self.flush().await
    }

    /// Splits the socket into a read half and a write half for two tasks
    /// (see [`ReadHalf`] and [`WriteHalf`]).
    pub fn split(self) -> (ReadHalf<S>, WriteHalf<S>) {
        split::split(self)
    }

    /// The protocol state.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The protocol state, to queue frames (fragments, pongs) directly.
    pub fn connection_mut(&mut self) -> &mut Connection {
        // The caller may feed input (`receive`): `recv` must look at it.
        self.parked = false;
        &mut self.connection
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The underlying stream and the protocol state.
    pub fn into_parts(self) -> (S, Connection) {
        (self.stream, self.connection)
    }
}

impl<S> WebSocket<S> {
    /// Takes the transport out, keeping everything else in a
    /// `WebSocket<()>`: the protocol state, buffered bytes, and a received
    /// event still waiting on a write. [`attach`](WebSocket::attach) puts a
    /// transport back.
    ///
    /// For a server that takes an idle connection's socket out of its
    /// runtime and puts it back later (ws-server parks idle connections
    /// this way, with no reactor registration while they wait), or that
    /// wraps the transport in another layer after the handshake. Unlike
    /// [`into_parts`](WebSocket::into_parts) and
    /// [`from_connection`](WebSocket::from_connection), nothing about a wait
    /// in progress is lost.
    pub fn detach(self) -> (S, WebSocket<()>) {
        self.swap_stream(())
    }

    /// Puts `stream` in place of the transport, keeping everything else,
    /// and returns the one it replaced.
    fn swap_stream<T>(self, stream: T) -> (S, WebSocket<T>) {
        let Self {
            stream: old,
            connection,
            pending,
            input_ended,
            draining,
            parked,
            flushing,
            holding,
        } = self;
        let moved = WebSocket {
            stream,
            connection,
            pending,
            input_ended,
            draining,
            parked,
            flushing,
            holding,
        };
        (old, moved)
    }
}

impl WebSocket<()> {
    /// Puts a transport into a connection [`detach`](WebSocket::detach)ed
    /// from its own: the same connection, the same peer behind it.
    pub fn attach<S>(self, stream: S) -> WebSocket<S> {
        let ((), attached) = self.swap_stream(stream);
        attached
    }
}

/// Whether a blocked write may read the peer's bytes meanwhile. Only the
/// task that reads may: a write half that read would take the read half's
/// wake-ups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadAhead {
    Yes,
    No,
}

/// Who writes for a receiving task.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Writer<'a> {
    /// The socket is used from one task: `recv` waits for every write.
    Own,
    /// A read half: writes register this waker, which wakes whichever half
    /// waits, and `recv` does not wait for them unless the peer floods pings
    /// faster than it reads the pongs (`Connection::replies_backlogged`).
    Shared(&'a Waker),
}

/// Reads once into the spare capacity of `buf`, through tokio's `read_buf`
/// (which reads into uninitialised memory without a copy); dropping the
/// future after `Pending` loses nothing.
fn poll_read_buf<S: AsyncRead + Unpin>(
    stream: &mut S,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    std::pin::pin!(stream.read_buf(buf)).poll(cx)
}
