//! WebSockets over HTTP/2 (RFC 8441), server and client (feature `http2`).
//!
//! A WebSocket over HTTP/2 is one stream of an HTTP/2 connection: the
//! client opens it with an extended CONNECT (`:method CONNECT`, `:protocol
//! websocket`, `:scheme`, `:path`, `:authority`, `sec-websocket-version:
//! 13`), the server answers `200`, and from then on the stream's DATA
//! carries WebSocket frames exactly as TCP does, masking included. Many
//! WebSockets share one connection (one TLS handshake, one socket), each
//! with its own flow control.
//!
//! Both sides end in the same [`stream::WebSocket`](crate::stream::WebSocket)
//! as over TCP ([`Http2WebSocket`]): the same events, halves,
//! `Stream`/`Sink`, permessage-deflate, limits and write backpressure.
//! What differs is the transport, [`Http2Stream`]:
//!
//! - HTTP/2 flow control works both ways: a WebSocket that stops reading
//!   stops the peer at the stream's window; a peer that stops reading makes
//!   `send` wait and `queue` report the buffer full, as over TCP.
//! - The closing handshake ends the stream with `END_STREAM`; a WebSocket
//!   dropped without one (a failure) resets its stream with `CANCEL`
//!   (RFC 8441 §5). Either way the connection and its other WebSockets go
//!   on.
//!
//! # Server
//!
//! [`ServerConnection::handshake`] takes an accepted connection (TLS after
//! ALPN chose `h2`, or plaintext whose first bytes are the HTTP/2 preface:
//! [`detect_preface`] tells, and [`Prefixed`] gives the bytes read back),
//! announces `SETTINGS_ENABLE_CONNECT_PROTOCOL = 1` with the limits of
//! [`Settings`] (at most 100 concurrent streams by default), and yields
//! each request as [`Incoming`]: a [`WebSocketRequest`] to accept with the
//! HTTP/1.1 path's validation, subprotocol choice and origin policy (and
//! its refusals, each an HTTP/2 response on that stream: 400, 426 with
//! `sec-websocket-version: 13`, 403), or an [`HttpRequest`] to answer.
//! [`serve`] and [`serve_with`] run that loop with callbacks.
//!
//! # Client
//!
//! [`Client::handshake`] runs HTTP/2 on a connected stream and waits for
//! the server's SETTINGS; [`Client::connect`] opens a WebSocket on a new
//! stream, as many as the server allows, and fails with a typed
//! [`HandshakeError`](crate::handshake::HandshakeError) when the server
//! does not allow extended CONNECT or refuses.
//!
//! # Example
//!
//! A server and a client on the two ends of an in-memory pipe:
//!
//! ```
//! use ws_core::handshake::ClientRequest;
//! use ws_core::http2::{Client, Settings, serve};
//! use ws_core::{Config, Event, Message};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (client_io, server_io) = tokio::io::duplex(64 * 1024);
//! tokio::spawn(serve(server_io, Config::default(), Settings::default(), |request| {
//!     if let Ok(mut socket) = request.accept() {
//!         tokio::spawn(async move {
//!             while let Ok(Some(Event::Text(text))) = socket.recv().await {
//!                 let _ = socket.send(Message::Text(text)).await;
//!             }
//!         });
//!     }
//! }));
//!
//! let (client, connection) = Client::handshake(client_io, Settings::default()).await?;
//! tokio::spawn(connection);
//! let request = ClientRequest::from_parts(false, "localhost", 80, "/echo")?;
//! let (mut socket, _negotiated) = client.connect(&request, Config::default()).await?;
//! socket.send_text("over HTTP/2").await?;
//! assert_eq!(socket.recv().await?, Some(Event::Text("over HTTP/2".into())));
//! # Ok(())
//! # }
//! ```
//!
//! # Why h2, not hyper's HTTP/2
//!
//! hyper 1.x serves extended CONNECT too (axum 0.8's WebSocket over HTTP/2
//! is hyper's `Upgraded` on an h2 stream), but its client cannot wait for
//! the server's SETTINGS nor tell whether they allow extended CONNECT, and
//! its upgraded stream cannot choose between `END_STREAM` and
//! `RST_STREAM` by how the WebSocket ended. On h2 directly, both sides are
//! a few hundred lines and ws-core needs no executor.

mod client;
mod io;
mod preface;
mod server;

use http::{HeaderMap, HeaderName, HeaderValue};

pub use client::{Client, ClientConnection};
pub use io::Http2Stream;
pub use preface::{PREFACE, Preface, Prefixed, detect_preface};
pub use server::{HttpRequest, Incoming, ServerConnection, WebSocketRequest, serve, serve_with};

use crate::handshake::DEFAULT_MAX_HEAD_SIZE;

/// A WebSocket over an HTTP/2 stream: the tokio adapter over
/// [`Http2Stream`]. `Send`, and so are its halves.
pub type Http2WebSocket = crate::stream::WebSocket<Http2Stream>;

/// The HTTP/2 limits of a connection, either side, with documented
/// defaults: memory per connection is bounded by the connection window
/// (data received and not yet read) plus the send buffers.
///
/// ```
/// let settings = ws_core::http2::Settings::default()
///     .max_concurrent_streams(1000)
///     .stream_window(1024 * 1024);
/// # let _ = settings;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    max_concurrent_streams: u32,
    stream_window: u32,
    connection_window: u32,
    max_header_list_size: u32,
    max_send_buffer_size: usize,
}

/// Streams a server lets a client open at once, by default.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 100;
/// Each stream's receive window, by default: what a peer may send before
/// the WebSocket reads it (256 KiB).
pub const DEFAULT_STREAM_WINDOW: u32 = 256 * 1024;
/// The connection's receive window, by default (4 MiB): sixteen streams'
/// worth, so that a few WebSockets that stop reading cannot stall the
/// others sharing the connection.
pub const DEFAULT_CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;
/// The largest HTTP/2 stream window (RFC 9113 §6.9.1).
const MAX_WINDOW: u32 = (1 << 31) - 1;

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            stream_window: DEFAULT_STREAM_WINDOW,
            connection_window: DEFAULT_CONNECTION_WINDOW,
            max_header_list_size: u32::try_from(DEFAULT_MAX_HEAD_SIZE).unwrap_or(u32::MAX),
            max_send_buffer_size: DEFAULT_STREAM_WINDOW as usize,
        }
    }
}

impl Settings {
    /// Server: how many streams (WebSockets and plain requests) a client may
    /// have open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`); one more is
    /// refused with `RST_STREAM(REFUSED_STREAM)`. Default 100.
    pub fn max_concurrent_streams(mut self, streams: u32) -> Self {
        self.max_concurrent_streams = streams;
        self
    }

    /// Each stream's receive window, in bytes (at most 2³¹ − 1): how much a
    /// peer may send on one WebSocket before it reads. Default
    /// [`DEFAULT_STREAM_WINDOW`].
    pub fn stream_window(mut self, bytes: u32) -> Self {
        self.stream_window = bytes.min(MAX_WINDOW);
        self
    }

    /// The connection's receive window, in bytes (at most 2³¹ − 1): how
    /// much all streams together may hold unread. Default
    /// [`DEFAULT_CONNECTION_WINDOW`].
    pub fn connection_window(mut self, bytes: u32) -> Self {
        self.connection_window = bytes.min(MAX_WINDOW);
        self
    }

    /// The largest header block accepted, in bytes, as HPACK decodes it
    /// (`SETTINGS_MAX_HEADER_LIST_SIZE`). Default 16 KiB, the HTTP/1.1
    /// head limit.
    pub fn max_header_list_size(mut self, bytes: u32) -> Self {
        self.max_header_list_size = bytes;
        self
    }

    /// The most data one stream may have handed to HTTP/2 and not yet
    /// written to the socket, in bytes. Default 256 KiB.
    pub fn max_send_buffer_size(mut self, bytes: usize) -> Self {
        self.max_send_buffer_size = bytes;
        self
    }
}

/// Adds `fields` to `headers`, dropping names that are not valid header
/// names, values that are not valid values, and the fields HTTP/2 forbids
/// (RFC 9113 §8.2.2), which would make h2 refuse the whole message.
fn header_map<'a>(headers: &mut HeaderMap, fields: impl IntoIterator<Item = (&'a str, &'a str)>) {
    for (name, value) in fields {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            continue;
        };
        let forbidden = matches!(
            name.as_str(),
            "connection" | "upgrade" | "keep-alive" | "proxy-connection" | "transfer-encoding"
        ) || (name == http::header::TE && value != "trailers");
        if !forbidden {
            headers.append(name, value);
        }
    }
}
