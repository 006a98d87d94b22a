//! What the server answered: its `101` and what it agreed to.

use std::net::SocketAddr;

use crate::handshake::{Headers, Negotiated, ResponseHead};

use super::proxy::Proxy;

/// The server's `101 Switching Protocols` response to a
/// [`connect`](super::connect) (or, over HTTP/2, its `200` to the extended
/// CONNECT), and how the connection was made.
#[derive(Debug, Clone)]
pub struct Response {
    head: ResponseHead,
    negotiated: Negotiated,
    peer_addr: SocketAddr,
    proxy: Option<Proxy>,
    version: HttpVersion,
}

/// The HTTP version that carried the opening handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpVersion {
    /// An HTTP/1.1 upgrade (RFC 6455): the WebSocket owns the connection.
    Http11,
    /// An extended CONNECT on an HTTP/2 stream (RFC 8441).
    Http2,
}

impl std::fmt::Display for HttpVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Http11 => "HTTP/1.1",
            Self::Http2 => "HTTP/2",
        })
    }
}

impl Response {
    pub(crate) fn new(
        head: ResponseHead,
        negotiated: Negotiated,
        peer_addr: SocketAddr,
        proxy: Option<Proxy>,
        version: HttpVersion,
    ) -> Self {
        Self {
            head,
            negotiated,
            peer_addr,
            proxy,
            version,
        }
    }

    /// Which HTTP version carried the handshake: HTTP/2 when
    /// `Http2Mode` asked for it and the server allowed
    /// it, HTTP/1.1 otherwise.
    pub fn http_version(&self) -> HttpVersion {
        self.version
    }

    /// The status code: 101 (200 over HTTP/2).
    pub fn status(&self) -> u16 {
        self.head.status
    }

    /// The reason phrase as sent (`Switching Protocols`, or anything; empty
    /// over HTTP/2, which has none).
    pub fn reason(&self) -> &str {
        &self.head.reason
    }

    /// The response's header fields, in wire order.
    pub fn headers(&self) -> &Headers {
        &self.head.headers
    }

    /// The subprotocol the server chose among those the request offered.
    pub fn protocol(&self) -> Option<&str> {
        self.negotiated.protocol.as_deref()
    }

    /// The extensions the server accepted (its `Sec-WebSocket-Extensions`),
    /// e.g. `permessage-deflate; server_no_context_takeover`; the socket
    /// already runs them.
    pub fn extensions(&self) -> Option<&str> {
        self.negotiated.extensions.as_deref()
    }

    /// The subprotocol and extensions together.
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }

    /// The address the TCP connection went to: the server's, or the
    /// proxy's when there is one.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// The proxy the connection went through, if any.
    pub fn proxy(&self) -> Option<&Proxy> {
        self.proxy.as_ref()
    }
}
