//! Building blocks for writing your own adapter or test peer; less stable
//! than the rest of the API.
//!
//! An application needs none of this: [`blocking::WebSocket`] and
//! [`stream::WebSocket`] do the handshake and move the bytes, and a
//! [`Connection`] driven by hand needs only the crate root. What is here is
//! what those adapters are made of, for code that moves bytes some other way
//! (another runtime, a custom transport, a server that routes plain HTTP
//! itself), and what a test needs to play a peer that misbehaves on purpose:
//!
//! - the key exchange by hand: [`accept_key`], [`generate_key`],
//!   [`WEBSOCKET_GUID`];
//! - frames by hand: [`FrameHeader`], [`encode_frame`], [`apply_mask`],
//!   [`parse_close_payload`];
//! - [`Outbound`], the type of [`Connection::outbound`], and
//!   [`MAX_UNWRITTEN_PONGS`], the bound behind
//!   [`Connection::replies_backlogged`];
//! - [`Utf8Validator`], the incremental validator text messages go through;
//! - for transports: [`is_disconnect`] and, with the `tokio` feature,
//!   [`shutdown_and_drain`].
//!
//! The handshake driven from a byte stream is not here but in
//! [`handshake`](crate::handshake): [`ServerHandshake`] and
//! [`ClientHandshake`] are what both adapters run, and what an adapter of
//! your own runs too.
//!
//! ```
//! use ws_core::low_level::{FrameHeader, encode_frame};
//! use ws_core::{Config, Connection, Event, OpCode, Role};
//!
//! // A test peer writes a masked text frame by hand...
//! let header = FrameHeader {
//!     mask: Some([1, 2, 3, 4]),
//!     ..FrameHeader::new(OpCode::Text, 0)
//! };
//! let mut wire = bytes::BytesMut::new();
//! encode_frame(&mut wire, header, b"hi");
//! // ...and a server connection reads it.
//! let mut server = Connection::new(Role::Server, Config::default());
//! server.receive(&wire);
//! assert_eq!(server.next_event()?, Some(Event::Text("hi".into())));
//! # Ok::<(), ws_core::Error>(())
//! ```
//!
//! These items follow semver like every public item, but they show more of
//! how the crate works than the rest of the API does, so they are the first
//! to change when the crate's insides do: expect breaking releases to touch
//! them more often.
//!
//! [`blocking::WebSocket`]: crate::blocking::WebSocket
//! [`stream::WebSocket`]: crate::stream::WebSocket
//! [`Connection`]: crate::Connection
//! [`ServerHandshake`]: crate::handshake::ServerHandshake
//! [`ClientHandshake`]: crate::handshake::ClientHandshake
//! [`Connection::outbound`]: crate::Connection::outbound
//! [`Connection::replies_backlogged`]: crate::Connection::replies_backlogged

pub use crate::close::parse_close_payload;
pub use crate::error::is_disconnect;
pub use crate::frame::{FrameHeader, encode_frame};
pub use crate::handshake::accept::{WEBSOCKET_GUID, accept_key, generate_key};
pub use crate::mask::apply_mask;
pub use crate::outbound::Outbound;
pub use crate::protocol::MAX_UNWRITTEN_PONGS;
pub use crate::utf8::{InvalidUtf8, Utf8Validator};

#[cfg(feature = "tokio")]
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How much [`shutdown_and_drain`] reads at a time.
#[cfg(feature = "tokio")]
const DRAIN_CHUNK: usize = 4096;

/// Ends a transport the way an endpoint should once the closing handshake
/// is over (or it failed the connection): shuts the write side, so that the
/// peer sees the end at once, then reads and drops what the peer still
/// sends, up to `max_drain` bytes, until it closes too. Dropping a socket
/// with unread input makes the kernel answer with a reset, which can destroy
/// the close frame before the peer reads it. Bound the call with a timeout.
///
/// A failed shutdown still drains; its error is returned afterwards.
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub async fn shutdown_and_drain<S>(stream: &mut S, max_drain: usize) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let shutdown = stream.shutdown().await;
    // On the heap, not in the future: an array here would make every
    // future that awaits this one (a server's per-connection task, for the
    // whole life of the connection) 4 KiB larger.
    let mut scratch = vec![0u8; DRAIN_CHUNK];
    let mut drained = 0usize;
    while drained < max_drain {
        match stream.read(&mut scratch).await? {
            0 => break,
            read => drained = drained.saturating_add(read),
        }
    }
    shutdown
}
