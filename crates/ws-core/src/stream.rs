//! A WebSocket over any tokio `AsyncRead + AsyncWrite` (feature `tokio`).
//!
//! The adapter only moves bytes: every protocol decision is the
//! [`Connection`]'s. It keeps the sans-IO contract: replies the protocol owes
//! the peer are written before an event is handed out, and everything queued
//! is written before the adapter waits to read.
//!
//! [`recv`](WebSocket::recv) is cancel-safe: dropping its future (in a
//! `tokio::select!`) loses neither received bytes nor an event.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Buf;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::close::CloseCode;
use crate::error::{Error, is_disconnect};
use crate::handshake::{
    AcceptOptions, ClientRequest, DEFAULT_MAX_HEAD_SIZE, HandshakeError, Negotiated,
    UpgradeRequest, reject_response, validate_response,
};
use crate::head_buffer::{
    HeadBuffer, answer_upgrade, client_connection, rejection_body_incomplete, with_deflate_offer,
};
use crate::message::{Event, Message};
use crate::protocol::{Config, Connection, Role, State};

/// A WebSocket connection over an async stream.
#[derive(Debug)]
pub struct WebSocket<S> {
    stream: S,
    connection: Connection,
    /// An event taken from the connection whose delivery waits on a write;
    /// kept here so that a cancelled `recv` does not lose it.
    pending: Option<Result<Event, Error>>,
    /// The peer's end of input was read while a write was blocked.
    input_ended: bool,
}

/// How much the drains read at a time (here and in
/// [`shutdown_and_drain`](crate::low_level::shutdown_and_drain)).
pub(crate) const DRAIN_CHUNK: usize = 4096;

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
        let mut head = HeadBuffer::new(DEFAULT_MAX_HEAD_SIZE);
        let request = loop {
            match head.parse_request() {
                Ok(Some(request)) => break request,
                Ok(None) => {}
                Err(error) => {
                    stream.write_all(&reject_response(&error)).await?;
                    return Err(error.into());
                }
            }
            if stream.read_buf(head.read_buffer()).await? == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
        };
        match answer_upgrade(request, &config, choose) {
            Ok(upgrade) => {
                stream.write_all(&upgrade.response).await?;
                let connection = upgrade.connection(config, head.into_remaining());
                Ok((Self::from_connection(stream, connection), upgrade.request))
            }
            Err((error, response)) => {
                stream.write_all(&response).await?;
                Err(error.into())
            }
        }
    }

    /// Performs the client side of the opening handshake on a connected
    /// stream, validating the server's answer strictly.
    pub async fn connect(
        mut stream: S,
        request: &ClientRequest,
        config: Config,
    ) -> Result<(Self, Negotiated), Error> {
        let request = &with_deflate_offer(request, &config);
        stream.write_all(&request.to_bytes()).await?;
        let mut head = HeadBuffer::new(DEFAULT_MAX_HEAD_SIZE);
        let response = loop {
            if let Some(response) = head.parse_response()? {
                break response;
            }
            if stream.read_buf(head.read_buffer()).await? == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
        };
        while rejection_body_incomplete(&response, head.remaining().len()) {
            if stream.read_buf(head.read_buffer()).await? == 0 {
                break;
            }
        }
        let negotiated = validate_response(request, response, head.remaining())?;
        let connection = client_connection(config, &negotiated, head.into_remaining())?;
        Ok((Self::from_connection(stream, connection), negotiated))
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
    pub async fn recv(&mut self) -> Result<Option<Event>, Error> {
        self.recv_with(None).await
    }

    /// The loop behind [`recv`](Self::recv) and
    /// [`recv_lean`](Self::recv_lean): `ready`, when given, waits for the
    /// transport to become readable without a buffer, so that the buffers
    /// can be released while the connection is idle.
    async fn recv_with(&mut self, ready: Option<PollReady<S>>) -> Result<Option<Event>, Error> {
        loop {
            if self.pending.is_none() {
                self.pending = self.connection.next_event().transpose();
            }
            if let Some(pending) = &self.pending {
                if pending.is_err() || self.connection.reply_pending() {
                    self.flush().await?;
                }
                return self.pending.take().transpose();
            }
            self.flush().await?;
            if self.connection.state() == State::Closed {
                if self.connection.role() == Role::Client {
                    self.drain_until_eof().await?;
                }
                return Ok(None);
            }
            if self.input_ended || self.read_more(ready).await? == 0 {
                self.connection.receive_eof()?;
                return Ok(None);
            }
        }
    }

    /// Reads once into the connection's buffer; returns the bytes read.
    async fn read_more(&mut self, ready: Option<PollReady<S>>) -> io::Result<usize> {
        let Some(ready) = ready else {
            return self.stream.read_buf(self.connection.read_buffer()).await;
        };
        // Readiness can be stale (a read then finds nothing and clears it):
        // one more wait without the buffer is worth it. A transport that
        // always says ready gets a plain read after that, never a busy loop.
        for _ in 0..2 {
            if self.connection.buffered_input() != 0 {
                // Part of a frame is buffered: keep it and wait with it.
                break;
            }
            self.connection.shrink_buffers();
            std::future::poll_fn(|cx| ready(&self.stream, cx)).await?;
            let mut read = std::pin::pin!(self.stream.read_buf(self.connection.read_buffer()));
            let attempt = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
            if let Poll::Ready(result) = attempt {
                return result;
            }
        }
        self.stream.read_buf(self.connection.read_buffer()).await
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
        self.recv_with(Some(S::poll_read_ready)).await
    }

    /// Queues a message without writing it: it goes out with the next
    /// [`flush`](Self::flush), [`send`](Self::send) or [`recv`](Self::recv)
    /// that has to wait.
    pub fn queue(&mut self, message: Message) -> Result<(), Error> {
        self.connection.queue(message)
    }

    /// Sends a message and writes it out.
    pub async fn send(&mut self, message: Message) -> Result<(), Error> {
        self.connection.queue(message)?;
        self.flush().await
    }

    /// Sends a text message and writes it out.
    pub async fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.connection.queue_text(text)?;
        self.flush().await
    }

    /// Sends a binary message and writes it out.
    pub async fn send_binary(&mut self, data: &[u8]) -> Result<(), Error> {
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
        std::future::poll_fn(|cx| self.poll_write_out(cx)).await?;
        self.stream.flush().await?;
        Ok(())
    }

    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        loop {
            if !self.connection.wants_write() {
                return Poll::Ready(Ok(()));
            }
            let outbound = self.connection.outbound();
            let mut slices = [io::IoSlice::new(&[]); 16];
            let count = outbound.chunks_vectored(&mut slices);
            let slices = slices.get(..count).unwrap_or_default();
            // One chunk (the common case: small echoes) goes out with a plain
            // write; writev costs more in the kernel for a single buffer.
            let polled = match slices {
                [single] => Pin::new(&mut self.stream).poll_write(cx, single),
                _ => Pin::new(&mut self.stream).poll_write_vectored(cx, slices),
            };
            match polled {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero).into()));
                }
                Poll::Ready(Ok(written)) => outbound.advance(written),
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error.into())),
                Poll::Pending => {
                    let limit = self.connection.max_frame_size().saturating_add(READ_AHEAD);
                    if self.input_ended || self.connection.buffered_input() >= limit {
                        return Poll::Pending;
                    }
                    match self.poll_read_ahead(cx, limit) {
                        Poll::Ready(Ok(0)) => {
                            self.input_ended = true;
                            return Poll::Pending;
                        }
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

    /// The protocol state.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The protocol state, to queue frames (fragments, pongs) directly.
    pub fn connection_mut(&mut self) -> &mut Connection {
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

    async fn drain_until_eof(&mut self) -> Result<(), Error> {
        // On the heap for the same reason as in `shutdown_and_drain`: this
        // future is part of every `recv` future.
        let mut scratch = vec![0u8; DRAIN_CHUNK];
        loop {
            match self.stream.read(&mut scratch).await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(error) if is_disconnect(&error) => return Ok(()),
                Err(error) => return Err(error.into()),
            }
        }
    }
}
