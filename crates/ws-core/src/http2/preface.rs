//! Plaintext HTTP/2 with prior knowledge on a port that also serves
//! HTTP/1.1: telling the two apart from the first bytes, and handing the
//! bytes already read to HTTP/2.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The client connection preface that opens every HTTP/2 connection (RFC
/// 9113 §3.4), before the client's SETTINGS.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the first bytes of a connection say about its protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Preface {
    /// The bytes start with the whole HTTP/2 preface: serve HTTP/2.
    Http2,
    /// The bytes so far are the start of the preface: read more.
    Partial,
    /// Not HTTP/2 (an HTTP/1.1 request, say).
    Other,
}

/// Classifies the first bytes read from a plaintext connection: whether
/// the client speaks HTTP/2 with prior knowledge (RFC 9113 §3.3).
///
/// An HTTP/1.1 request differs from the preface by its fourth byte at the
/// latest (no method is `PRI`), so a server needs no more than it reads
/// anyway for the request head.
///
/// ```
/// use ws_core::http2::{PREFACE, Preface, detect_preface};
///
/// assert_eq!(detect_preface(b"GET / HTTP/1.1\r\n"), Preface::Other);
/// assert_eq!(detect_preface(b"PRI * HT"), Preface::Partial);
/// assert_eq!(detect_preface(PREFACE), Preface::Http2);
/// ```
pub fn detect_preface(bytes: &[u8]) -> Preface {
    if bytes.starts_with(PREFACE) {
        Preface::Http2
    } else if PREFACE.starts_with(bytes) {
        Preface::Partial
    } else {
        Preface::Other
    }
}

/// A transport whose first reads return bytes already read from it (the
/// preface a server read to choose the protocol, e.g.
/// [`ServerHandshake::into_leftover`](crate::handshake::ServerHandshake::into_leftover)),
/// then read the transport itself. Writes go straight through.
///
/// ```no_run
/// use ws_core::Config;
/// use ws_core::http2::{Prefixed, ServerConnection, Settings};
///
/// # async fn run(tcp: tokio::net::TcpStream, read: bytes::BytesMut) -> Result<(), ws_core::Error> {
/// // `read` holds the bytes that showed it is HTTP/2.
/// let io = Prefixed::new(read, tcp);
/// let mut connection = ServerConnection::handshake(io, Config::default(), Settings::default()).await?;
/// # let _ = connection.next_request().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Prefixed<S> {
    prefix: BytesMut,
    io: S,
}

impl<S> Prefixed<S> {
    /// `io`, whose reads first return `prefix`.
    pub fn new(prefix: BytesMut, io: S) -> Self {
        Self { prefix, io }
    }

    /// The transport.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The bytes not yet read again, and the transport.
    pub fn into_parts(self) -> (BytesMut, S) {
        (self.prefix, self.io)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.prefix.is_empty() {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let take = this.prefix.len().min(buf.remaining());
        buf.put_slice(this.prefix.get(..take).unwrap_or_default());
        this.prefix.advance(take);
        if this.prefix.is_empty() {
            // Give the memory back: the prefix is not read again.
            this.prefix = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn every_prefix_of_the_preface_is_partial_and_a_request_is_not() {
        for end in 0..PREFACE.len() {
            assert_eq!(detect_preface(&PREFACE[..end]), Preface::Partial, "{end}");
        }
        let mut more = PREFACE.to_vec();
        more.extend_from_slice(&[0, 0, 0, 4]);
        assert_eq!(detect_preface(&more), Preface::Http2);
        for request in [&b"GET /"[..], b"POST", b"PRI / HTTP/1.1", b"P\0"] {
            assert_eq!(detect_preface(request), Preface::Other);
        }
    }
}
