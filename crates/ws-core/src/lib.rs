//! The WebSocket protocol (RFC 6455) as a sans-IO library.
//!
//! `ws-core` never reads or writes a socket. Bytes from the peer go in, and
//! [`Event`]s come out; messages to send go in, and bytes for the wire come out.
//! Everything the RFC asks for lives here once: the opening handshake on both
//! sides ([`handshake`]), framing and masking, fragmentation, incremental
//! UTF-8 validation, ping/pong, the closing handshake ([`CloseCode`],
//! [`CloseFrame`]), size limits ([`Config`]) and permessage-deflate
//! ([`deflate`]).
//!
//! Two thin adapters move the bytes: [`blocking::WebSocket`] over
//! `std::io::Read + Write`, and [`stream::WebSocket`] over tokio's
//! `AsyncRead + AsyncWrite` (feature `tokio`, on by default). Both `send`
//! (queue a message and write it out); a [`Connection`] on its own only
//! `queue`s, and the caller writes what it has queued.
//!
//! # Crate layout
//!
//! - The root: the protocol state machine ([`Connection`], [`Config`],
//!   [`Role`], [`State`]), what goes in and out of it ([`Message`],
//!   [`Event`], [`CloseCode`], [`CloseFrame`], [`OpCode`]) and its errors
//!   ([`Error`], [`ProtocolError`]).
//! - [`blocking`] and [`stream`]: the adapters.
//! - [`handshake`]: the HTTP/1.1 opening handshake without I/O, for servers
//!   that route plain HTTP themselves and clients that build their request.
//! - [`deflate`]: permessage-deflate settings and negotiation.
//! - [`http`](mod@http) and [`hyper`](mod@hyper): the server's handshake
//!   on the `http` crate's types, and a hyper 1.x (or axum) request upgraded
//!   to a [`stream::WebSocket`] (features `http` and `hyper`, off by default).
//! - [`http2`](mod@http2): WebSockets over HTTP/2 streams (RFC 8441), a
//!   server for accepted HTTP/2 connections and a client that opens many
//!   WebSockets on one, both ending in a [`stream::WebSocket`] (feature
//!   `http2`, off by default).
//! - [`client`]: `connect(url)` with name resolution, Happy Eyeballs,
//!   proxies and TLS (feature `client`, off by default).
//! - [`low_level`]: building blocks for writing your own adapter or test
//!   peer (frame headers, masking, the key exchange);
//!   less stable than the rest.
//!
//! # Features
//!
//! | feature | default | what it brings | dependencies |
//! |---|---|---|---|
//! | `tokio` | on | [`stream::WebSocket`] and its halves, and [`low_level::shutdown_and_drain`] | `tokio` (`io-util`, and `net` for [`stream::ReadReady`] on `TcpStream`) |
//! | `futures` | on | `Stream` and `Sink` for the tokio adapter and its halves (turns `tokio` on) | `futures-core`, `futures-sink` |
//! | `deflate` | on | permessage-deflate: [`deflate`], `Config::deflate`, `Connection::enable_deflate` | `flate2` (zlib-rs backend), `libdeflater` |
//! | `url` | on | [`ClientRequest::new`](handshake::ClientRequest::new) from a `ws://` or `wss://` URL | `url` |
//! | `http` | off | [`http::accept`]: an `http::Request` validated, the `http::Response` to send and the connection it becomes | `http` |
//! | `http2` | off | [`http2`](mod@http2): RFC 8441 extended CONNECT, server ([`http2::serve`]) and client ([`http2::Client`]), over any `AsyncRead + AsyncWrite` (turns `http` and `tokio` on) | `h2` |
//! | `hyper` | off | [`hyper::upgrade`]: a hyper 1.x or axum request upgraded to a [`stream::WebSocket`] (turns `http` and `tokio` on) | `hyper` (no features), `hyper-util` (`tokio`) |
//! | `client` | off | [`client::connect`]: a `ws://` or `wss://` URL to a [`stream::WebSocket`], through HTTP CONNECT or SOCKS5 proxies (also from `*_proxy`/`no_proxy`), with TLS, client certificates and timeouts (turns `tokio` and `url` on) | `tokio` (`time`), `rustls` and `tokio-rustls` (ring), `rustls-webpki`, `webpki-roots`, `pkcs8` (encrypted keys) |
//!
//! With none of them the crate is the protocol, the handshake and the
//! blocking adapter, on `sha1`, `base64`, `rand`, `httparse`, `bytes` and
//! `thiserror`. Without `deflate`, RSV1 is never allowed and no extension is
//! offered or accepted; without `url`,
//! [`ClientRequest::from_parts`](handshake::ClientRequest::from_parts) takes
//! the host, port and path.
//!
//! # Example: tokio, with the read and write halves in two tasks
//!
//! ```
//! # #[cfg(all(feature = "tokio", feature = "url"))]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tokio::net::{TcpListener, TcpStream};
//! use ws_core::handshake::ClientRequest;
//! use ws_core::stream::WebSocket;
//! use ws_core::{CloseCode, Config, Event};
//!
//! let listener = TcpListener::bind("127.0.0.1:0").await?;
//! let url = format!("ws://{}/", listener.local_addr()?);
//!
//! // The server echoes; pings and the closing handshake are answered by the
//! // protocol itself.
//! let server = tokio::spawn(async move {
//!     let (stream, _) = listener.accept().await?;
//!     let mut socket = WebSocket::accept(stream).await?;
//!     while let Some(event) = socket.recv().await? {
//!         if let Some(message) = event.into_message() {
//!             socket.send(message).await?;
//!         }
//!     }
//!     Ok::<_, ws_core::Error>(())
//! });
//!
//! // The client reads in one task and writes in another.
//! let request = ClientRequest::new(&url)?;
//! let stream = TcpStream::connect((request.host(), request.port())).await?;
//! let (socket, _) = WebSocket::connect(stream, &request, Config::default()).await?;
//! let (mut read, mut write) = socket.split();
//! let writer = tokio::spawn(async move {
//!     for text in ["one", "two", "three"] {
//!         write.send_text(text).await?;
//!     }
//!     Ok::<_, ws_core::Error>(write)
//! });
//! let mut replies = Vec::new();
//! while replies.len() < 3 {
//!     if let Some(Event::Text(text)) = read.recv().await? {
//!         replies.push(text.as_str().to_owned());
//!     }
//! }
//! assert_eq!(replies, ["one", "two", "three"]);
//! let mut write = writer.await??;
//! write.close(CloseCode::NORMAL, "done").await?;
//! // The server's close, then the end of TCP.
//! while read.recv().await?.is_some() {}
//! server.await??;
//! # Ok(())
//! # }
//! # #[cfg(not(all(feature = "tokio", feature = "url")))]
//! # fn main() {}
//! ```
//!
//! `split` halves, `futures::Stream`/`Sink` (feature `futures`), write
//! backpressure ([`Config::write_high_water`]) and
//! [`PreparedMessage`] (one message framed once for many connections) are
//! in [`stream`] and [`prepared`]; `crates/ws-core/examples` has an echo
//! server, a client and a broadcasting chat room.
//!
//! # Example: a blocking echo server
//!
//! ```
//! use std::net::{TcpListener, TcpStream};
//! use ws_core::blocking::WebSocket;
//! use ws_core::handshake::ClientRequest;
//! use ws_core::{CloseCode, Config, Event, Message};
//!
//! # #[cfg(feature = "url")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let url = format!("ws://{}/", listener.local_addr()?);
//!
//! let server = std::thread::spawn(move || -> Result<(), ws_core::Error> {
//!     let (stream, _) = listener.accept()?;
//!     let mut socket = WebSocket::accept(stream)?;
//!     // Echo every message; pings and the close handshake are answered
//!     // by the protocol itself.
//!     while let Some(event) = socket.recv()? {
//!         if let Some(message) = event.into_message() {
//!             socket.send(message)?;
//!         }
//!     }
//!     Ok(())
//! });
//!
//! let request = ClientRequest::new(&url)?;
//! let stream = TcpStream::connect((request.host(), request.port()))?;
//! let (mut client, _) = WebSocket::connect(stream, &request, Config::default())?;
//! client.send_text("Hello, World")?;
//! assert_eq!(client.recv()?, Some(Event::Text("Hello, World".into())));
//! client.close(CloseCode::NORMAL, "done")?;
//! assert!(matches!(client.recv()?, Some(Event::Close(Some(frame))) if frame.code == CloseCode::NORMAL));
//! assert_eq!(client.recv()?, None);
//! server.join().expect("server thread")?;
//! # let _ = Message::from("unused");
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "url"))]
//! # fn main() {}
//! ```
//!
//! # Memory
//!
//! Buffers are allocated on demand and follow the traffic: reads reserve a
//! few KiB, or up to the rest of a large frame; an empty read buffer over
//! 64 KiB is released before the next read, and
//! [`Connection::shrink_buffers`] releases everything an idle connection does
//! not need. An idle [`Connection`] costs 256 bytes and no heap (pinned by the
//! `idle_connection_cost` test); the adapters add the read reservation (4 KiB)
//! while a read is pending. permessage-deflate state is extra and documented
//! in [`deflate`].

#![cfg_attr(docsrs, feature(doc_cfg))]
// The crate docs link to feature-gated items; without those features the
// links have no target, which is expected.
#![cfg_attr(
    not(all(
        feature = "tokio",
        feature = "deflate",
        feature = "url",
        feature = "http",
        feature = "hyper",
        feature = "client"
    )),
    allow(rustdoc::broken_intra_doc_links)
)]

pub mod blocking;
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod client;
mod close;
#[cfg(feature = "deflate")]
#[cfg_attr(docsrs, doc(cfg(feature = "deflate")))]
pub mod deflate;
#[cfg(not(feature = "deflate"))]
mod deflate_off;
mod error;
mod frame;
pub mod handshake;
mod head_buffer;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
#[cfg(feature = "http2")]
#[cfg_attr(docsrs, doc(cfg(feature = "http2")))]
pub mod http2;
#[cfg(feature = "hyper")]
#[cfg_attr(docsrs, doc(cfg(feature = "hyper")))]
pub mod hyper;
pub mod low_level;
mod mask;
mod message;
mod outbound;
pub mod prepared;
mod protocol;
mod spare;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod stream;
mod utf8;

pub use close::{CloseCode, CloseFrame, MAX_REASON_LEN};
pub use error::{Error, ProtocolError};
pub use frame::{MAX_CONTROL_PAYLOAD, OpCode};
pub use message::{Event, Message, Utf8Bytes};
pub use prepared::PreparedMessage;
pub use protocol::{Config, Connection, Role, State};

// The README's example, compiled and run as a doctest.
#[cfg(all(doctest, feature = "tokio", feature = "url"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
