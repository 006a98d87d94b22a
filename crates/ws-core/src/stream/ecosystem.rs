//! `futures::Stream` and `futures::Sink` for the socket and its halves
//! (feature `futures`), so that `StreamExt::split`, `forward`,
//! `select_all` and the rest of the ecosystem apply.
//!
//! The stream yields every [`Event`] (control frames included, as
//! [`WebSocket::recv`] does) and ends after the closing handshake; the sink
//! takes [`Message`]s. `poll_ready` waits while the write queue is over its
//! high-water mark, `poll_flush` writes everything queued, and `poll_close`
//! starts the closing handshake (1000) and writes the close frame: keep
//! polling the stream to receive the peer's answer. Every poll is
//! cancel-safe: nothing is lost when a future built on them is dropped.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{ReadAhead, ReadHalf, WebSocket, WriteHalf};
use crate::close::CloseCode;
use crate::error::Error;
use crate::message::{Event, Message};

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocket<S> {
    type Item = Result<Event, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx).map(Result::transpose)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocket<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_room(cx, ReadAhead::Yes)
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        self.get_mut().connection.queue(message)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_flush_with(cx, ReadAhead::Yes)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let socket = self.get_mut();
        close_once(socket)?;
        socket.poll_flush_with(cx, ReadAhead::Yes)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for ReadHalf<S> {
    type Item = Result<Event, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx).map(Result::transpose)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WriteHalf<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        WriteHalf::poll_ready(self.get_mut(), cx)
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        self.get_mut().queue(message)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        WriteHalf::poll_flush(self.get_mut(), cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let half = self.get_mut();
        ready!(half.poll_close_frame())?;
        WriteHalf::poll_flush(half, cx)
    }
}

/// Queues the close frame unless one was sent (by us or in reply).
fn close_once<S>(socket: &mut WebSocket<S>) -> Result<(), Error> {
    if socket.connection.close_sent() {
        Ok(())
    } else {
        socket.connection.close(CloseCode::NORMAL, "")
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WriteHalf<S> {
    /// Queues the close frame once and wakes the read half to receive the
    /// answer.
    fn poll_close_frame(&mut self) -> Poll<Result<(), Error>> {
        let result = self.with_socket(close_once);
        self.wake_reader();
        Poll::Ready(result)
    }
}
