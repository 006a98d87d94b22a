//! The HTTP/1.1 opening handshake of RFC 6455, both sides, without I/O.
//!
//! Everything here works on bytes the caller has read or will write, so
//! the same code serves blocking, async and test transports.
//!
//! # Driven from a byte stream
//!
//! [`ServerHandshake`] and [`ClientHandshake`] are the whole handshake as
//! the adapters run it: feed them the bytes read, write the bytes they
//! return, and take the [`Connection`](crate::Connection) they hand over,
//! which already holds whatever arrived behind the head. A transport of
//! your own needs nothing else:
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use ws_core::Config;
//! use ws_core::handshake::{AcceptOptions, ServerHandshake};
//!
//! # fn serve(mut stream: std::net::TcpStream) -> Result<(), Box<dyn std::error::Error>> {
//! let mut handshake = ServerHandshake::new(Config::default());
//! let mut chunk = [0u8; 1024];
//! let answer = loop {
//!     match handshake.request() {
//!         Ok(Some(head)) if !head.is_upgrade() => {
//!             let response = handshake.respond(404, &[], "text/plain", b"not here\n");
//!             stream.write_all(&response)?;
//!             return Ok(());
//!         }
//!         Ok(Some(_)) => break handshake.accept(|_| Ok(AcceptOptions::default())),
//!         Ok(None) => {}
//!         Err(refused) => break Err(refused),
//!     }
//!     let read = stream.read(&mut chunk)?;
//!     if read == 0 {
//!         return Ok(());
//!     }
//!     handshake.receive(&chunk[..read]);
//! };
//! match answer {
//!     Ok(accepted) => {
//!         stream.write_all(&accepted.response)?;
//!         let _connection = accepted.connection; // frames from here on
//!     }
//!     Err(refused) => stream.write_all(&refused.response)?,
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # The steps one by one
//!
//! For servers that route plain HTTP themselves and other uses of the
//! pieces on their own:
//!
//! ## Server
//!
//! 1. Read into a buffer and call [`parse_request_head`] until it returns a
//!    head (`Ok(None)` means read more; [`HandshakeError::HeadTooLarge`] ends
//!    the wait once the buffer reaches the limit).
//! 2. Route on the head: [`RequestHead::is_upgrade`] separates WebSocket
//!    upgrades from plain HTTP, which [`http_response`] can answer.
//! 3. [`validate_upgrade`] checks the RFC 6455 §4.2.1 requirements and
//!    returns an [`UpgradeRequest`]; the application may still refuse it (for
//!    example with [`HandshakeError::ForbiddenOrigin`]).
//! 4. Write [`accept_response`] with the chosen [`AcceptOptions`], or
//!    [`reject_response`] for any error and close the connection.
//!
//! ## Client
//!
//! 1. Build a [`ClientRequest`] from a `ws://` URL and write
//!    [`ClientRequest::to_bytes`].
//! 2. Read until [`parse_response_head`] returns a head.
//! 3. [`validate_response`] checks it against the request and returns what
//!    was [`Negotiated`], or [`HandshakeError::Rejected`] with the server's
//!    status and the start of its body.
//!
//! ## Bytes behind the head
//!
//! Both parsers report how many bytes the head took. A peer may send its
//! first WebSocket frames in the same packet as the head, so the bytes after
//! `consumed` belong to the frame decoder: the caller must keep them, not
//! discard the rest of the read buffer.

pub(crate) mod accept;
mod client;
mod driver;
mod error;
mod headers;
mod server;

#[cfg(feature = "http2")]
pub(crate) use client::validate_connect_response;
pub use client::{ClientRequest, Negotiated, ResponseHead, parse_response_head, validate_response};
pub use driver::{Accepted, ClientHandshake, ClientProgress, Refused, ServerHandshake};
#[cfg(feature = "http2")]
pub(crate) use driver::{answer, client_connection, with_deflate_offer};
pub use error::{HandshakeError, REJECTION_BODY_LIMIT, Rejection};
pub use headers::{Header, Headers, is_token};
#[cfg(feature = "http2")]
pub(crate) use server::validate_extended_connect;
pub use server::{
    AcceptOptions, DEFAULT_MAX_HEAD_SIZE, RequestHead, UpgradeRequest, accept_response,
    http_response, parse_request_head, reject_response, validate_upgrade,
};
