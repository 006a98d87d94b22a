//! The byte stream under a connection: TCP, or TLS over TCP.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::tls::TlsStream;
use crate::stream::ReadReady;

/// The stream [`connect`](super::connect) opens: TCP for `ws://`, TLS over
/// TCP for `wss://` (through a proxy's tunnel or not), or, with feature
/// `http2` and `Http2Mode`, one stream of an HTTP/2
/// connection. An enum, not a trait object, so a plain connection pays a
/// branch rather than a virtual call per read, and callers keep one socket
/// type, `WebSocket<Transport>`, whichever protocol carried the handshake;
/// `Send` and `Unpin`, for `tokio::spawn` and the halves of
/// [`split`](crate::stream::WebSocket::split).
#[derive(Debug)]
#[non_exhaustive]
pub enum Transport {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`, after the TLS handshake (boxed: the TLS state is large).
    Tls(Box<TlsStream>),
    /// A WebSocket over an HTTP/2 stream (RFC 8441), `ws://` with prior
    /// knowledge or `wss://` after ALPN chose `h2`. The HTTP/2 connection
    /// (TCP or TLS) runs in a task of its own and ends with its last
    /// stream.
    #[cfg(feature = "http2")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http2")))]
    Http2(Box<Http2Transport>),
}

/// The [`Transport::Http2`] stream and the addresses of the connection
/// under it (which lives in its own task, out of reach).
#[cfg(feature = "http2")]
#[cfg_attr(docsrs, doc(cfg(feature = "http2")))]
#[derive(Debug)]
pub struct Http2Transport {
    stream: crate::http2::Http2Stream,
    peer: SocketAddr,
    local: SocketAddr,
}

#[cfg(feature = "http2")]
impl Http2Transport {
    pub(crate) fn new(
        stream: crate::http2::Http2Stream,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> Self {
        Self {
            stream,
            peer,
            local,
        }
    }

    /// The HTTP/2 stream (its identifier, whether the closing handshake
    /// is done).
    pub fn stream(&self) -> &crate::http2::Http2Stream {
        &self.stream
    }
}

impl Transport {
    /// The TCP stream underneath (to the proxy, when there is one); `None`
    /// over HTTP/2, whose connection belongs to its own task.
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Self::Plain(stream) => Some(stream),
            Self::Tls(stream) => Some(stream.get_ref().0),
            #[cfg(feature = "http2")]
            Self::Http2(_) => None,
        }
    }

    /// The address of the TCP peer: the server's, or the proxy's.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self {
            #[cfg(feature = "http2")]
            Self::Http2(http2) => Ok(http2.peer),
            _ => self.tcp().ok_or(io::ErrorKind::NotConnected)?.peer_addr(),
        }
    }

    /// The local address of the TCP connection.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            #[cfg(feature = "http2")]
            Self::Http2(http2) => Ok(http2.local),
            _ => self.tcp().ok_or(io::ErrorKind::NotConnected)?.local_addr(),
        }
    }

    /// The rustls connection state (negotiated version, ALPN, the server's
    /// certificates), for `wss://` over HTTP/1.1 (over HTTP/2 the TLS
    /// stream belongs to the connection's task).
    pub fn tls_connection(&self) -> Option<&rustls::ClientConnection> {
        match self {
            Self::Tls(stream) => Some(stream.get_ref().1),
            _ => None,
        }
    }
}

/// Plain TCP waits for readiness; TLS may hold decrypted bytes the socket
/// does not show, so it is always ready (and `recv_lean` reads with a
/// buffer, as `recv` does).
impl ReadReady for Transport {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Plain(stream) => stream.poll_read_ready(cx),
            Self::Tls(_) => Poll::Ready(Ok(())),
            #[cfg(feature = "http2")]
            Self::Http2(http2) => http2.stream.poll_read_ready(cx),
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Self::Tls(stream) => match Pin::new(stream).poll_read(cx, buf) {
                // Many servers end TLS without `close_notify` once the
                // WebSocket closing handshake is done. The WebSocket protocol
                // detects truncation itself (no close frame: abnormal
                // closure), so this is the end of the stream, as on TCP.
                Poll::Ready(Err(error)) if error.kind() == io::ErrorKind::UnexpectedEof => {
                    Poll::Ready(Ok(()))
                }
                other => other,
            },
            #[cfg(feature = "http2")]
            Self::Http2(http2) => Pin::new(&mut http2.stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Self::Tls(stream) => Pin::new(stream).poll_write(cx, buf),
            #[cfg(feature = "http2")]
            Self::Http2(http2) => Pin::new(&mut http2.stream).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Self::Tls(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            #[cfg(feature = "http2")]
            Self::Http2(http2) => Pin::new(&mut http2.stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(stream) => stream.is_write_vectored(),
            Self::Tls(stream) => stream.is_write_vectored(),
            #[cfg(feature = "http2")]
            Self::Http2(http2) => http2.stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Self::Tls(stream) => Pin::new(stream).poll_flush(cx),
            #[cfg(feature = "http2")]
            Self::Http2(http2) => Pin::new(&mut http2.stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Self::Tls(stream) => Pin::new(stream).poll_shutdown(cx),
            #[cfg(feature = "http2")]
            Self::Http2(http2) => Pin::new(&mut http2.stream).poll_shutdown(cx),
        }
    }
}
