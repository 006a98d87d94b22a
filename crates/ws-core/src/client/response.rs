//! What the server answered: its `101` and what it agreed to.

use std::net::SocketAddr;

use crate::handshake::{Headers, Negotiated, ResponseHead};

use super::proxy::Proxy;

/// The server's `101 Switching Protocols` response to a
/// [`connect`](super::connect), and how the connection was made.
#[derive(Debug, Clone)]
pub struct Response {
    head: ResponseHead,
    negotiated: Negotiated,
    peer_addr: SocketAddr,
    proxy: Option<Proxy>,
}

impl Response {
    pub(crate) fn new(
        head: ResponseHead,
        negotiated: Negotiated,
        peer_addr: SocketAddr,
        proxy: Option<Proxy>,
    ) -> Self {
        Self {
            head,
            negotiated,
            peer_addr,
            proxy,
        }
    }

    /// The status code: 101.
    pub fn status(&self) -> u16 {
        self.head.status
    }

    /// The reason phrase as sent (`Switching Protocols`, or anything).
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
