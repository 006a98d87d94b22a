//! One HTTP/2 stream as the byte stream a WebSocket runs on: tokio's
//! `AsyncRead + AsyncWrite` over h2's `RecvStream` and `SendStream`, with
//! flow control both ways and RFC 8441 §5's mapping of how the WebSocket
//! ended onto how the stream ends.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use h2::{RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::stream::ReadReady;

/// The transport of a WebSocket over HTTP/2: one stream of an HTTP/2
/// connection (the [`Http2WebSocket`](super::Http2WebSocket)'s `S`).
///
/// - **Reading** hands out the stream's DATA and returns the flow-control
///   window for exactly the bytes handed out, so a WebSocket that stops
///   reading stops the peer once the stream's window is used up: unread
///   data never grows past the window.
/// - **Writing** sends only as much as the peer's window allows and waits
///   (`Pending`) for the peer to open it again, so the WebSocket's write
///   queue fills, `send` waits and `queue` reports the buffer full, as over
///   a TCP socket whose peer stops reading.
/// - **Ending** follows RFC 8441 §5: once the closing handshake has been
///   both sent and received, `END_STREAM` goes out at once (the TCP FIN of
///   RFC 6455). Dropped before that with a close frame sent (a WebSocket
///   that failed with 1002, 1007 …), `END_STREAM` follows the close frame
///   as FIN does over TCP, and HTTP/2 resets the stream if the peer goes
///   on sending; dropped without one (a task that gave up), the stream is
///   reset with `CANCEL`. Only that stream ends: the connection and its
///   other WebSockets go on. `shutdown` sends `END_STREAM` explicitly.
///
/// To know when the closing handshake is done, the transport follows the
/// WebSocket frame boundaries in both directions, reading frame headers
/// only (never payloads, and nothing is buffered for it).
#[derive(Debug)]
pub struct Http2Stream {
    send: SendStream<Bytes>,
    recv: RecvStream,
    /// DATA received and not yet handed out (its window not yet returned).
    unread: Bytes,
    /// Frames written, to see the close frame go out.
    written: CloseWatch,
    /// Frames read, to see the peer's close frame arrive.
    read: CloseWatch,
    /// `END_STREAM` (or a reset) has been sent: nothing more goes out.
    send_ended: bool,
}

impl Http2Stream {
    pub(crate) fn new(send: SendStream<Bytes>, recv: RecvStream) -> Self {
        Self {
            send,
            recv,
            unread: Bytes::new(),
            written: CloseWatch::default(),
            read: CloseWatch::default(),
            send_ended: false,
        }
    }

    /// The HTTP/2 stream identifier, for logs.
    pub fn stream_id(&self) -> u32 {
        u32::from(self.send.stream_id())
    }

    /// Whether both close frames have passed: the closing handshake is
    /// complete.
    pub fn closing_handshake_done(&self) -> bool {
        self.written.closed && self.read.closed
    }

    /// Sends `END_STREAM` once the closing handshake is complete.
    fn end_if_closed(&mut self) {
        if !self.send_ended && self.closing_handshake_done() {
            self.end_stream();
        }
    }

    fn end_stream(&mut self) {
        self.send_ended = true;
        // Fails only when the stream is already reset or closed, which ends
        // it as well.
        let _ = self.send.send_data(Bytes::new(), true);
    }
}

impl Drop for Http2Stream {
    fn drop(&mut self) {
        if self.send_ended {
            return;
        }
        if self.written.closed {
            // Our close frame went out but the peer's never came: a failure
            // (1002, 1007 ...) or a closing handshake given up. As over TCP,
            // where the close frame is followed by FIN, END_STREAM follows
            // it here, so that the frame is delivered: h2 discards the data
            // of a stream it resets with CANCEL. If the peer still sends,
            // h2 then resets the stream (a server with NO_ERROR, RFC 9113
            // §8.1).
            self.end_stream();
        }
        // Otherwise (no close frame at all: a task that gave up, a
        // transport error) h2 resets the stream with CANCEL as its handles
        // go (RFC 8441 §5). Either way only this stream ends.
    }
}

/// An h2 error as the I/O error the WebSocket adapter reports: a reset or
/// a lost connection reads as `ConnectionReset` (a disconnect), an I/O
/// error as itself.
pub(crate) fn to_io(error: h2::Error) -> io::Error {
    if error.is_io() {
        return error
            .into_io()
            .unwrap_or_else(|| io::Error::from(io::ErrorKind::ConnectionReset));
    }
    if error.is_reset() || error.is_go_away() {
        return io::Error::new(io::ErrorKind::ConnectionReset, error);
    }
    io::Error::other(error)
}

impl AsyncRead for Http2Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        while this.unread.is_empty() {
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => this.unread = data,
                // END_STREAM: the peer's orderly end.
                None => return Poll::Ready(Ok(())),
                Some(Err(error)) => return Poll::Ready(Err(to_io(error))),
            }
        }
        let take = this.unread.len().min(buf.remaining());
        let chunk = this.unread.split_to(take);
        buf.put_slice(&chunk);
        this.read.feed(&chunk);
        // The window opens again only for what the reader has taken.
        this.recv
            .flow_control()
            .release_capacity(take)
            .map_err(to_io)?;
        this.end_if_closed();
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Http2Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.send_ended {
            return Poll::Ready(Err(io::Error::from(io::ErrorKind::BrokenPipe)));
        }
        // Ask for room for the whole buffer, and send only what the peer's
        // window grants: h2 would buffer the rest without bound.
        this.send.reserve_capacity(buf.len());
        while this.send.capacity() == 0 {
            match ready!(this.send.poll_capacity(cx)) {
                Some(Ok(_)) => {}
                Some(Err(error)) => return Poll::Ready(Err(to_io(error))),
                // The stream can no longer send: reset by the peer, or the
                // connection is gone.
                None => {
                    return match this.send.poll_reset(cx) {
                        Poll::Ready(Ok(reason)) => Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::ConnectionReset,
                            format!("HTTP/2 stream reset by the peer: {reason:?}"),
                        ))),
                        Poll::Ready(Err(error)) => Poll::Ready(Err(to_io(error))),
                        Poll::Pending => {
                            Poll::Ready(Err(io::Error::from(io::ErrorKind::BrokenPipe)))
                        }
                    };
                }
            }
        }
        let take = this.send.capacity().min(buf.len());
        let chunk = buf.get(..take).unwrap_or_default();
        this.send
            .send_data(Bytes::copy_from_slice(chunk), false)
            .map_err(to_io)?;
        this.written.feed(chunk);
        this.end_if_closed();
        Poll::Ready(Ok(take))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // What `send_data` took is the connection's to write.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.send_ended {
            self.end_stream();
        }
        Poll::Ready(Ok(()))
    }
}

/// Always ready: h2 cannot wait for a stream's data without taking it, so
/// [`recv_lean`](crate::stream::WebSocket::recv_lean) reads with a buffer,
/// as `recv` does.
impl ReadReady for Http2Stream {
    fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Follows WebSocket frame boundaries in one direction's bytes, looking at
/// headers only, until a close frame has passed whole.
#[derive(Debug, Default)]
struct CloseWatch {
    /// The current frame's header bytes so far (at most 14).
    header: [u8; 14],
    header_len: usize,
    /// Payload bytes of the current frame still to pass.
    payload_left: u64,
    /// Whether the current frame is a close frame.
    is_close: bool,
    /// A close frame has passed whole.
    closed: bool,
}

impl CloseWatch {
    fn feed(&mut self, mut bytes: &[u8]) {
        while !self.closed && !bytes.is_empty() {
            if self.payload_left > 0 {
                let skip = usize::try_from(self.payload_left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                bytes.advance(skip);
                self.payload_left -= skip as u64;
                self.frame_done_if_complete();
                continue;
            }
            let Some((&byte, rest)) = bytes.split_first() else {
                break;
            };
            bytes = rest;
            if let Some(slot) = self.header.get_mut(self.header_len) {
                *slot = byte;
            }
            self.header_len += 1;
            if let Some(payload) = self.header_complete() {
                self.is_close = self.header[0] & 0x0F == 0x8;
                self.payload_left = payload;
                self.header_len = 0;
                self.frame_done_if_complete();
            }
        }
    }

    /// The payload length once the header bytes so far make a whole header.
    fn header_complete(&self) -> Option<u64> {
        let [_, second, extended @ ..] = &self.header;
        if self.header_len < 2 {
            return None;
        }
        let masked = second & 0x80 != 0;
        let (extra, length) = match second & 0x7F {
            126 => (2, None),
            127 => (8, None),
            short => (0, Some(u64::from(short))),
        };
        let needed = 2 + extra + if masked { 4 } else { 0 };
        if self.header_len < needed {
            return None;
        }
        let length = length.unwrap_or_else(|| {
            extended
                .iter()
                .take(extra)
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
        });
        Some(length)
    }

    fn frame_done_if_complete(&mut self) {
        if self.payload_left == 0 && self.is_close {
            self.closed = true;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::CloseWatch;
    use crate::protocol::{Connection, Role};
    use crate::{CloseCode, Config};

    fn watch(bytes: &[u8], split: usize) -> bool {
        let mut watch = CloseWatch::default();
        watch.feed(&bytes[..split]);
        watch.feed(&bytes[split..]);
        watch.closed
    }

    fn wire(role: Role, build: impl FnOnce(&mut Connection)) -> Vec<u8> {
        let mut connection = Connection::new(role, Config::default());
        build(&mut connection);
        connection.take_outbound()
    }

    #[test]
    fn sees_a_close_frame_pass_after_data_frames_of_every_length_form_split_anywhere() {
        for role in [Role::Client, Role::Server] {
            let bytes = wire(role, |c| {
                c.queue_text("hi").unwrap();
                c.queue_binary(&[7; 300]).unwrap();
                c.queue_binary(&[9; 70_000]).unwrap();
                c.close(CloseCode::NORMAL, "bye").unwrap();
            });
            for split in [0, 1, 5, 100, 400, 70_300, bytes.len() - 1, bytes.len()] {
                assert!(watch(&bytes, split), "{role:?} split at {split}");
            }
            assert!(!watch(&bytes[..bytes.len() - 1], 0), "{role:?} unfinished");
        }
    }

    #[test]
    fn data_that_looks_like_a_close_inside_a_payload_is_not_one() {
        let bytes = wire(Role::Server, |c| {
            c.queue_binary(&[0x88, 0x00, 0x88, 0x00]).unwrap();
        });
        assert!(!watch(&bytes, 0));
    }
}
