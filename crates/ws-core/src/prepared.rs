//! Encode once, send to many: a message framed (and compressed) once and
//! queued on any number of connections.
//!
//! A server that broadcasts (a chat room, a price feed, a game state) sends
//! the same message to thousands of connections. Sent as a [`Message`], it is
//! framed, copied, and with permessage-deflate compressed again for every
//! one of them. A [`PreparedMessage`] holds the work that does not depend on
//! the connection, done once:
//!
//! - **Server, uncompressed**: the whole frame, header and payload, is one
//!   shared buffer. Queueing it is a reference-count increment and a push
//!   onto the connection's [`Outbound`](crate::low_level::Outbound) queue; the
//!   payload is not copied. Frames shorter than 512 bytes are copied into
//!   the connection's write buffer instead: that measured cheaper as soon as
//!   a few frames queue up before a write, since each shared frame is one
//!   more slice for the vectored write.
//! - **Client**: see [below](#clients-mask-every-frame-afresh).
//! - **permessage-deflate without context takeover** on the sending side
//!   (`server_no_context_takeover` for a server, `client_no_context_takeover`
//!   for a client): a compressed message depends only on the payload, the
//!   negotiated window and the compression level. The compressed frame is
//!   computed on first use for each such setting, by the first connection
//!   that needs it, and cached in the prepared message; every later
//!   connection with the same setting shares it. A broadcast typically sees
//!   one or two settings; up to four are cached, and a connection with a
//!   fifth compresses for itself.
//! - **permessage-deflate with context takeover** on the sending side: each
//!   compressed message depends on everything the connection compressed
//!   before, so there is nothing to share. The connection compresses the
//!   message with its own compressor, exactly as
//!   [`Connection::queue`](crate::Connection::queue) would: the same bytes, the same
//!   compression ratio, and the compressor's history stays in step with the
//!   peer's decompressor. That costs a compression per connection; a server
//!   that broadcasts a lot should negotiate no context takeover
//!   ([`DeflateConfig::no_context_takeover`](crate::deflate::DeflateConfig::no_context_takeover))
//!   to get the shared path.
//!
//!   Sending such a message uncompressed instead (RFC 7692 allows an
//!   uncompressed message on a deflate connection) would be as cheap as the
//!   shared path, but it would silently undo what the connection negotiated:
//!   the JSON-like text deflate is used for shrinks several times over (the
//!   broadcast bench's 16 KiB payload to a sixth alone, and a repeat of a
//!   similar message to a fraction of that with context takeover), and for a
//!   fan-out the outgoing bandwidth is usually the scarcer resource. The
//!   choice of CPU against bandwidth belongs to the negotiation, so the
//!   prepared path honours it; the peer's decompressor stays in step because
//!   the message goes through the same compressor as any other.
//!
//! A message that the connection would not compress (deflate off, shorter
//! than [`DeflateConfig::min_size`](crate::deflate::DeflateConfig::min_size),
//! or a window the backend cannot compress with) goes out as the shared
//! uncompressed frame, as it would with [`Connection::queue`](crate::Connection::queue).
//!
//! # Clients mask every frame afresh
//!
//! RFC 6455 §5.3 requires every frame a client sends to be masked with a
//! fresh key that the application cannot predict, so that no one who
//! controls part of a payload can choose the bytes that appear on the wire
//! (the attack on intermediaries' caches that masking exists to stop).
//! gorilla/websocket's `PreparedMessage` frames a client message once, with
//! one key, and sends those bytes on every connection: after the first send
//! the key is public, and every later copy is predictable. Here a client
//! connection copies and masks the payload with its own fresh key, as for
//! any message; only the compressed payload (when it can be shared) is
//! computed once. Clients rarely broadcast, so this costs little where it
//! matters.
//!
//! # Write backpressure
//!
//! A queued prepared message counts in the connection's
//! [`outbound().remaining()`](bytes::Buf::remaining) with its full frame
//! length, like any other frame: a limit on that counts the shared bytes
//! once per connection that has not written them yet.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use bytes::{Bytes, BytesMut};

#[cfg(feature = "deflate")]
use crate::deflate::StandaloneKey;
#[cfg(not(feature = "deflate"))]
use crate::deflate_off::StandaloneKey;
use crate::error::Error;
use crate::frame::{FrameHeader, OpCode};
use crate::message::{Message, Utf8Bytes};
use crate::protocol::RSV1;

/// How many compressed encodings (one per compression setting) a prepared
/// message caches.
const CACHED_ENCODINGS: usize = 4;

/// A message framed once, to be queued on many connections with
/// [`Connection::queue_prepared`](crate::Connection::queue_prepared).
///
/// Cloning is a reference-count increment, and the type is `Send + Sync`: one
/// prepared message can be handed to every task or thread that serves a
/// connection. What is shared, and what each connection still does for
/// itself, is described in the [module documentation](self).
///
/// # Example: one update to every subscriber
///
/// ```
/// use ws_core::{Config, Connection, Event, PreparedMessage, Role};
///
/// # fn main() -> Result<(), ws_core::Error> {
/// let mut subscribers: Vec<Connection> = (0..3)
///     .map(|_| Connection::new(Role::Server, Config::default()))
///     .collect();
///
/// let update = PreparedMessage::text(r#"{"symbol":"ACME","price":42}"#);
/// for connection in &mut subscribers {
///     // Framed once, above; each connection only queues it (by reference
///     // from 512 bytes; a frame this small is cheaper to copy).
///     connection.queue_prepared(&update)?;
/// }
///
/// // Each subscriber's peer receives an ordinary text message.
/// for connection in &mut subscribers {
///     let mut peer = Connection::new(Role::Client, Config::default());
///     peer.receive(&connection.take_outbound());
///     assert_eq!(
///         peer.next_event()?,
///         Some(Event::Text(r#"{"symbol":"ACME","price":42}"#.into()))
///     );
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PreparedMessage {
    inner: Arc<Inner>,
}

struct Inner {
    opcode: OpCode,
    /// The uncompressed frame as a server sends it; the payload is the tail
    /// of the same buffer.
    plain: Framed,
    /// Compressed frames, one per compression setting, filled in order.
    compressed: [OnceLock<Compressed>; CACHED_ENCODINGS],
    /// Held while a compressed frame is computed, so that each setting is
    /// compressed once even when connections on several threads ask for it
    /// at the same time.
    filling: Mutex<()>,
}

/// A compressed frame and the setting it was compressed with.
struct Compressed {
    key: StandaloneKey,
    framed: Framed,
}

/// A complete unmasked frame and where its payload starts.
pub(crate) struct Framed {
    frame: Bytes,
    header_len: usize,
}

impl Framed {
    /// Frames `payload` as a server sends it: FIN set, unmasked.
    fn new(opcode: OpCode, rsv: u8, payload: &[u8]) -> Self {
        let header = FrameHeader {
            rsv,
            ..FrameHeader::new(opcode, payload.len() as u64)
        };
        let header_len = header.encoded_len();
        let mut frame = BytesMut::with_capacity(header_len + payload.len());
        header.encode(&mut frame);
        frame.extend_from_slice(payload);
        Self {
            frame: frame.freeze(),
            header_len,
        }
    }

    /// The whole frame, as a server queues it.
    pub(crate) fn frame(&self) -> &Bytes {
        &self.frame
    }

    /// The payload alone, for a client to mask.
    pub(crate) fn payload(&self) -> &[u8] {
        self.frame.get(self.header_len..).unwrap_or_default()
    }
}

impl PreparedMessage {
    /// Prepares `message`: frames it once (one copy of the payload, into
    /// the buffer every server connection will share). Compressed frames are
    /// computed later, by the first connection that needs each.
    pub fn new(message: Message) -> Self {
        let (opcode, payload) = match &message {
            Message::Text(text) => (OpCode::Text, text.as_bytes()),
            Message::Binary(bytes) => (OpCode::Binary, &bytes[..]),
        };
        Self {
            inner: Arc::new(Inner {
                opcode,
                plain: Framed::new(opcode, 0, payload),
                compressed: Default::default(),
                filling: Mutex::new(()),
            }),
        }
    }

    /// Prepares a text message.
    pub fn text(text: impl Into<Utf8Bytes>) -> Self {
        Self::new(Message::Text(text.into()))
    }

    /// Prepares a binary message.
    pub fn binary(data: impl Into<Bytes>) -> Self {
        Self::new(Message::Binary(data.into()))
    }

    /// The message, as a [`Message`] sharing the prepared buffer (no copy).
    pub fn message(&self) -> Message {
        let start = self.inner.plain.header_len;
        let frame = &self.inner.plain.frame;
        let payload = frame.slice(start.min(frame.len())..);
        match self.inner.opcode {
            OpCode::Text => Message::Text(Utf8Bytes::from_validated(payload)),
            _ => Message::Binary(payload),
        }
    }

    /// Whether this is a text message.
    pub fn is_text(&self) -> bool {
        self.inner.opcode == OpCode::Text
    }

    /// The payload bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.inner.plain.payload()
    }

    /// The payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }

    /// How many compressed encodings (one per distinct compression setting
    /// among the connections it was queued on) have been computed and
    /// cached so far. Connections with context takeover compress for
    /// themselves and add none.
    pub fn compressed_encodings(&self) -> usize {
        self.inner
            .compressed
            .iter()
            .filter(|slot| slot.get().is_some())
            .count()
    }

    /// The opcode of the message's frame.
    pub(crate) fn opcode(&self) -> OpCode {
        self.inner.opcode
    }

    /// The uncompressed frame.
    pub(crate) fn plain(&self) -> &Framed {
        &self.inner.plain
    }

    /// The compressed frame for `key`, computed with `compress` (which must
    /// compress a whole message alone, as a no-context-takeover compressor
    /// with that key does) if no connection has asked for it yet.
    ///
    /// `Ok(None)` when every cache slot holds another setting: the caller
    /// compresses for itself.
    pub(crate) fn compressed(
        &self,
        key: StandaloneKey,
        compress: impl FnOnce(&[u8], &mut Vec<u8>) -> Result<(), &'static str>,
    ) -> Result<Option<&Framed>, Error> {
        if let Some(found) = self.cached(key) {
            return Ok(Some(found));
        }
        let _filling = self
            .inner
            .filling
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Another connection may have filled it while this one waited.
        if let Some(found) = self.cached(key) {
            return Ok(Some(found));
        }
        let Some(slot) = self.inner.compressed.iter().find(|s| s.get().is_none()) else {
            return Ok(None);
        };
        let mut compressed = Vec::new();
        compress(self.as_bytes(), &mut compressed).map_err(Error::Compression)?;
        let framed = Framed::new(self.inner.opcode, RSV1, &compressed);
        Ok(Some(
            &slot.get_or_init(|| Compressed { key, framed }).framed,
        ))
    }

    fn cached(&self, key: StandaloneKey) -> Option<&Framed> {
        self.inner
            .compressed
            .iter()
            .map_while(OnceLock::get)
            .find(|compressed| compressed.key == key)
            .map(|compressed| &compressed.framed)
    }
}

impl From<Message> for PreparedMessage {
    fn from(message: Message) -> Self {
        Self::new(message)
    }
}

impl fmt::Debug for PreparedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedMessage")
            .field("opcode", &self.inner.opcode)
            .field("len", &self.len())
            .field("compressed_encodings", &self.compressed_encodings())
            .finish()
    }
}
