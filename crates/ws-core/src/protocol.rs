//! The connection state machine: bytes in, events out; commands in, bytes out.

use bytes::{Buf, Bytes, BytesMut};

use crate::close::{CloseCode, MAX_REASON_LEN, parse_close_payload, truncate_reason};
#[cfg(feature = "deflate")]
use crate::deflate::{Deflate, DeflateConfig, DeflateParams};
#[cfg(not(feature = "deflate"))]
use crate::deflate_off::Deflate;
use crate::error::{Error, ProtocolError};
use crate::frame::{FrameHeader, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, OpCode};
use crate::mask::{apply_mask, extend_masked};
use crate::message::{Event, Message, Utf8Bytes};
use crate::outbound::Outbound;
use crate::prepared::{Framed, PreparedMessage};
use crate::spare;
use crate::utf8::Utf8Validator;

/// Which end of the connection this is; it decides the direction of masking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Masks what it sends; rejects masked frames.
    Client,
    /// Sends unmasked; rejects unmasked frames.
    Server,
}

/// Limits and options of a connection.
///
/// Start from the defaults and change what you need with the builder methods,
/// which have the fields' names:
///
/// ```
/// use ws_core::Config;
///
/// let config = Config::default()
///     .max_message_size(1 << 20)
///     .max_frame_size(64 << 10);
/// assert_eq!(config.max_message_size, 1 << 20);
/// ```
///
/// The fields are public to read. The struct is `#[non_exhaustive]`, so
/// options can be added in a minor release: it cannot be built with a struct
/// literal outside this crate, only from [`Config::default()`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The largest frame payload accepted. Default 16 MiB; see
    /// [`max_frame_size()`](Self::max_frame_size()).
    pub max_frame_size: usize,
    /// The largest message accepted, all fragments together. Default 16 MiB;
    /// see [`max_message_size()`](Self::max_message_size()).
    pub max_message_size: usize,
    /// How many queued, unwritten bytes make senders wait. Default 1 MiB;
    /// see [`write_high_water()`](Self::write_high_water()).
    pub write_high_water: usize,
    /// How far the write queue must drain before a waiting sender resumes.
    /// Default 256 KiB; see [`write_low_water()`](Self::write_low_water()).
    pub write_low_water: usize,
    /// permessage-deflate (RFC 7692), `None` for off. Default off; see
    /// [`deflate()`](Self::deflate()). Only with the `deflate` feature.
    #[cfg(feature = "deflate")]
    #[cfg_attr(docsrs, doc(cfg(feature = "deflate")))]
    pub deflate: Option<DeflateConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_frame_size: 16 << 20,
            max_message_size: 16 << 20,
            write_high_water: 1 << 20,
            write_low_water: 256 << 10,
            #[cfg(feature = "deflate")]
            deflate: None,
        }
    }
}

impl Config {
    /// The largest frame payload accepted; a larger one fails the connection
    /// with 1009 before any of it is buffered. Default 16 MiB.
    ///
    /// An uncompressed frame's payload stays in the read buffer until the
    /// frame is complete, so this bounds what one frame from the peer can
    /// make the connection hold. Lower it for a server with many untrusted
    /// clients; peers that send large messages in one frame need it at least
    /// as large as those messages.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// The largest message accepted (all fragments together); a larger one
    /// fails the connection with 1009 as soon as a frame header announces it.
    /// Default 16 MiB. With permessage-deflate it bounds the inflated size,
    /// enforced while inflating.
    ///
    /// A message is handed out whole, so this is the most memory one message
    /// can take. Lower it when messages are small and peers are untrusted;
    /// raise it for bulk transfers, at the price of that memory per
    /// connection receiving one.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Async sends wait, and `queue` refuses new messages with
    /// [`Error::WriteBufferFull`], once this many bytes are queued unwritten.
    /// Default 1 MiB.
    ///
    /// A peer slower than the application costs at most this much memory
    /// (plus one message). A higher mark absorbs longer bursts towards a slow
    /// reader without making the sender wait, at the price of that memory per
    /// connection; a lower one bounds memory tighter and makes senders wait
    /// sooner.
    pub fn write_high_water(mut self, bytes: usize) -> Self {
        self.write_high_water = bytes;
        self
    }

    /// A waiting send resumes once the queue drains to this. Default
    /// 256 KiB; a value above [`write_high_water`](Self::write_high_water())
    /// counts as the high-water mark.
    ///
    /// The gap between the marks decides how often a sender to a slow reader
    /// wakes up: a lower mark means fewer wake-ups, a higher one a shorter
    /// wait (and a transport that never runs out of queued bytes to write).
    pub fn write_low_water(mut self, bytes: usize) -> Self {
        self.write_low_water = bytes;
        self
    }

    /// permessage-deflate (RFC 7692): when set, a client offers it and a
    /// server accepts a compatible offer. Default `None` (off).
    ///
    /// Compression makes text such as JSON several times smaller on the
    /// wire, but costs CPU for every message and memory per connection:
    /// with context takeover, up to about 370 KiB for the compressor and
    /// 46 KiB for the decompressor (see [`crate::deflate`] for the table and
    /// the settings that shrink it). Worth it for slow links and compressible
    /// traffic, rarely for a busy server on a fast network.
    #[cfg(feature = "deflate")]
    #[cfg_attr(docsrs, doc(cfg(feature = "deflate")))]
    pub fn deflate(mut self, deflate: Option<DeflateConfig>) -> Self {
        self.deflate = deflate;
        self
    }
}

/// Where the connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// We sent a close frame and are waiting for the peer's; messages the
    /// peer sent before it saw ours are still delivered.
    Closing,
    /// The closing handshake is over, or the connection failed; nothing more
    /// will be received. Write out what is queued, then end the transport (a
    /// server closes TCP first, a client waits for the server to).
    Closed,
}

/// Unwritten pongs past which [`Connection::replies_backlogged`] holds:
/// at most 127 bytes each, so about 128 KiB.
pub const MAX_UNWRITTEN_PONGS: u16 = 1024;

/// The RSV bit permessage-deflate uses to mark a compressed message.
pub(crate) const RSV1: u8 = 0b100;

/// Reads start with at least this much free space.
const MIN_READ: usize = 4096;
/// An empty read buffer larger than this is released, so that a connection
/// that once carried a large message does not keep its buffer while idle.
const SHRINK_ABOVE: usize = 64 * 1024;

/// The frame whose payload is arriving.
#[derive(Debug, Clone, Copy)]
struct IncomingFrame {
    header: FrameHeader,
    /// Payload length (checked against the frame limit, so it fits).
    len: usize,
    /// Payload bytes already unmasked and validated.
    processed: usize,
    /// The payload is validated as UTF-8 as it arrives.
    text: bool,
    /// Part of a compressed message: inflated into the assembly as it arrives.
    compressed: bool,
}

impl IncomingFrame {
    /// Payload bytes already processed that still sit at the front of the
    /// read buffer. An uncompressed frame keeps its payload there until it
    /// is complete (so that it can be handed out without a copy); a
    /// compressed frame is inflated as it arrives, so none of its is held.
    fn held(&self) -> usize {
        if self.compressed { 0 } else { self.processed }
    }

    /// Payload bytes already taken out of the read buffer.
    fn consumed(&self) -> usize {
        self.processed - self.held()
    }
}

/// The size limits a connection enforces.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_frame_size: usize,
    max_message_size: usize,
    write_high_water: usize,
    write_low_water: usize,
}

/// The type of a data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Binary,
}

/// A fragmented message being reassembled.
#[derive(Debug)]
struct Assembly {
    kind: Kind,
    /// Payload received so far; grown exactly, never past the message limit.
    buf: Vec<u8>,
    /// Bytes announced by the frame headers seen so far.
    announced: usize,
    /// The message is compressed (RSV1 on its first frame); `buf` holds the
    /// inflated payload.
    compressed: bool,
}

/// One end of a WebSocket connection, after the opening handshake: the
/// protocol state machine, bytes in, events out; commands in, bytes out.
///
/// A `Connection` never touches a socket. The caller
///
/// 1. puts received bytes in ([`receive`](Connection::receive), or straight into
///    [`read_buffer`](Connection::read_buffer)),
/// 2. takes events out with [`next_event`](Connection::next_event) until it
///    returns `Ok(None)`,
/// 3. **always** writes what [`outbound`](Connection::outbound) holds before it
///    waits for anything else.
///
/// Messages and control frames are queued ([`queue`](Connection::queue),
/// [`queue_ping`](Connection::queue_ping), [`close`](Connection::close), ...)
/// into the same outbound buffer. Replies the protocol owes the peer (a
/// pong, the echo of a close, the close frame that fails a connection) are
/// queued there by `next_event` itself, so they reach the wire even if the
/// application never sends anything.
///
/// # After our close
///
/// Once we have sent a close ([`State::Closing`]), nothing more can be sent,
/// but `next_event` keeps delivering what the peer sent before it saw our
/// close (data messages included, checked against the same limits) until
/// its close frame arrives as [`Event::Close`]. Replies to the last requests
/// are therefore not lost when the application closes right after sending
/// them. Pings received then are reported but no longer answered.
#[derive(Debug)]
pub struct Connection {
    role: Role,
    /// The limits of [`Config`]; the deflate settings are used only when
    /// deflate is enabled, and kept by the codec then.
    limits: Limits,
    read: BytesMut,
    frame: Option<IncomingFrame>,
    message: Option<Box<Assembly>>,
    utf8: Utf8Validator,
    out: Outbound,
    /// The fragmented message we are sending, if any, and its text validator.
    sending: Option<(Kind, Utf8Validator)>,
    /// RSV bits that negotiated extensions define (none without extensions).
    allowed_rsv: u8,
    /// permessage-deflate, when negotiated.
    deflate: Option<Box<Deflate>>,
    close_sent: bool,
    close_received: bool,
    /// Bytes had arrived behind the peer's close frame (and were dropped).
    input_behind_close: bool,
    failed: bool,
    /// A reply the protocol owes the peer (pong, close) was queued and has
    /// not been written yet.
    reply_queued: bool,
    /// Pongs queued since the outbound queue was last empty.
    unwritten_pongs: u16,
    /// How much a read should have room for, from the sizes of recent
    /// frames: a connection whose buffer was released while idle gets one
    /// large enough for its usual frame, not several small reads.
    read_hint: u32,
}

impl Connection {
    /// A connection that starts with bytes that arrived behind the
    /// handshake head (taken over without a copy).
    pub fn with_received(role: Role, config: Config, received: BytesMut) -> Self {
        let mut connection = Self::new(role, config);
        connection.read = received;
        connection
    }

    /// A connection in the open state.
    pub fn new(role: Role, config: Config) -> Self {
        Self {
            role,
            limits: Limits {
                max_frame_size: config.max_frame_size,
                max_message_size: config.max_message_size,
                write_high_water: config.write_high_water,
                write_low_water: config.write_low_water.min(config.write_high_water),
            },
            read: BytesMut::new(),
            frame: None,
            message: None,
            utf8: Utf8Validator::new(),
            out: Outbound::default(),
            sending: None,
            allowed_rsv: 0,
            deflate: None,
            close_sent: false,
            close_received: false,
            input_behind_close: false,
            failed: false,
            reply_queued: false,
            unwritten_pongs: 0,
            read_hint: MIN_READ as u32,
        }
    }

    /// Switches on permessage-deflate with the parameters the handshake
    /// negotiated (see [`crate::deflate`]); RSV1 becomes legal on the first
    /// frame of a data message.
    #[cfg(feature = "deflate")]
    #[cfg_attr(docsrs, doc(cfg(feature = "deflate")))]
    pub fn enable_deflate(&mut self, params: DeflateParams, config: &DeflateConfig) {
        self.deflate = Some(Box::new(Deflate::new(params, self.role, config)));
        self.allowed_rsv |= RSV1;
    }

    /// Whether permessage-deflate is in use (never without the `deflate`
    /// feature).
    pub fn deflate_enabled(&self) -> bool {
        self.deflate.is_some()
    }

    /// Which end this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The largest frame payload accepted.
    pub fn max_frame_size(&self) -> usize {
        self.limits.max_frame_size
    }

    /// The largest message accepted.
    pub fn max_message_size(&self) -> usize {
        self.limits.max_message_size
    }

    /// Where the connection is in its life.
    pub fn state(&self) -> State {
        if self.close_received || self.failed {
            State::Closed
        } else if self.close_sent {
            State::Closing
        } else {
            State::Open
        }
    }

    /// Whether we have sent (or queued) a close frame.
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// Whether the closing handshake completed: both close frames were
    /// exchanged, the connection did not fail, and nothing arrived behind
    /// the peer's close frame. The transport can then be closed at once: a
    /// peer that follows the protocol sends nothing more, so there is no
    /// unread input whose discarding would make the kernel reset the
    /// connection.
    pub fn closed_cleanly(&self) -> bool {
        self.close_received && self.close_sent && !self.failed && !self.input_behind_close
    }

    // ---- input ----

    /// Adds received bytes (copying them); take the events out with
    /// [`next_event`](Self::next_event).
    pub fn receive(&mut self, data: &[u8]) {
        if self.state() != State::Closed {
            self.read.extend_from_slice(data);
        }
    }

    /// The buffer received bytes go into, with free space reserved for the
    /// next read: read from the transport straight into its spare capacity
    /// (e.g. with `read_buf`), then call [`next_event`](Self::next_event).
    ///
    /// The reservation follows the traffic: a few KiB for small messages, up
    /// to the rest of the frame for a large one. Between frames, half of
    /// that room is enough: the space that messages already taken out of
    /// the buffer used is then reclaimed once per several small messages
    /// rather than on every read. An empty buffer that grew large is
    /// released first, so idle connections stay small.
    pub fn read_buffer(&mut self) -> &mut BytesMut {
        if self.read.capacity() > SHRINK_ABOVE && self.read.len() < MIN_READ {
            let mut fresh = spare::take();
            fresh.extend_from_slice(&self.read);
            self.read = fresh;
        } else if self.read.capacity() == 0 {
            self.read = spare::take();
        }
        let frame_rest = match self.frame {
            Some(frame) => frame
                .len
                .saturating_sub(frame.consumed().saturating_add(self.read.len())),
            None => 0,
        };
        let wanted = frame_rest
            .clamp(MIN_READ, SHRINK_ABOVE)
            .max(self.read_hint as usize);
        let free = self.read.capacity() - self.read.len();
        if free < wanted && (frame_rest > 0 || free < wanted / 2) {
            self.read.reserve(wanted);
        }
        &mut self.read
    }

    /// Received bytes not yet processed.
    pub fn buffered_input(&self) -> usize {
        self.read.len()
    }

    /// Reports that the transport has ended. Fine after the closing
    /// handshake; before it, this is an abnormal closure (1006).
    pub fn receive_eof(&mut self) -> Result<(), Error> {
        if self.state() == State::Closed {
            return Ok(());
        }
        self.failed = true;
        self.release_input();
        Err(Error::AbnormalClosure)
    }

    /// The next event from the bytes received so far, or `Ok(None)` when more
    /// bytes are needed (or the connection is closed).
    ///
    /// On a protocol violation the close frame with the matching code is
    /// queued, the state becomes [`State::Closed`], and the error is returned:
    /// write out the outbound bytes and drop the connection.
    pub fn next_event(&mut self) -> Result<Option<Event>, Error> {
        if !self.out.has_remaining() {
            self.reply_queued = false;
            self.unwritten_pongs = 0;
        }
        loop {
            if self.state() == State::Closed {
                return Ok(None);
            }
            let frame = match self.frame {
                Some(frame) => frame,
                None => match FrameHeader::decode(&self.read) {
                    Ok(None) => return Ok(None),
                    Ok(Some((header, header_len))) => {
                        match self.whole_message(header, header_len) {
                            Ok(Some(event)) => return Ok(Some(event)),
                            Ok(None) => {}
                            Err(error) => return Err(self.fail(error)),
                        }
                        self.read.advance(header_len);
                        match self.start_frame(header) {
                            Ok(frame) => frame,
                            Err(error) => return Err(self.fail(error)),
                        }
                    }
                    Err(error) => return Err(self.fail(error)),
                },
            };
            match self.progress(frame) {
                Ok(Progress::NeedMore) => return Ok(None),
                Ok(Progress::Event(event)) => return Ok(Some(event)),
                Ok(Progress::FrameDone) => {}
                Err(error) => return Err(self.fail(error)),
            }
        }
    }

    /// The commonest frame of all, taken in one step: a whole, unfragmented,
    /// uncompressed data message whose payload is already buffered, with no
    /// other message in progress. Anything else (`Ok(None)`, with nothing
    /// consumed) goes through [`start_frame`](Self::start_frame) and
    /// [`progress`](Self::progress), which check and process it alike but
    /// keep the frame's state between reads; this path skips storing and
    /// re-reading that state, about a tenth of a small echo's instructions.
    fn whole_message(
        &mut self,
        header: FrameHeader,
        header_len: usize,
    ) -> Result<Option<Event>, ProtocolError> {
        let eligible = header.fin
            && header.rsv == 0
            && matches!(header.opcode, OpCode::Text | OpCode::Binary)
            && header.mask.is_some() == (self.role == Role::Server)
            && self.message.is_none();
        let len = usize::try_from(header.payload_len).unwrap_or(usize::MAX);
        let within_limits = len <= self.limits.max_frame_size.min(self.limits.max_message_size);
        if !eligible || !within_limits || self.read.len().saturating_sub(header_len) < len {
            return Ok(None);
        }
        self.read.advance(header_len);
        self.note_frame_size(len);
        if let Some(payload) = self.read.get_mut(..len) {
            if let Some(key) = header.mask {
                apply_mask(payload, key, 0);
            }
            if header.opcode == OpCode::Text && std::str::from_utf8(payload).is_err() {
                return Err(ProtocolError::InvalidUtf8);
            }
        }
        let payload = self.read.split_to(len).freeze();
        Ok(Some(if header.opcode == OpCode::Text {
            Event::Text(Utf8Bytes::from_validated(payload))
        } else {
            Event::Binary(payload)
        }))
    }

    /// Feeds a data frame's size into the read size hint: a slowly decaying
    /// maximum of recent frame sizes.
    fn note_frame_size(&mut self, len: usize) {
        let whole = len
            .saturating_add(MAX_HEADER_LEN)
            .clamp(MIN_READ, SHRINK_ABOVE) as u32;
        self.read_hint = whole.max(self.read_hint - self.read_hint / 4);
    }

    /// Checks a new frame header against the connection's state and limits.
    fn start_frame(&mut self, header: FrameHeader) -> Result<IncomingFrame, ProtocolError> {
        if header.rsv & !self.allowed_rsv != 0 {
            return Err(ProtocolError::ReservedBits(header.rsv));
        }
        let rsv1 = header.rsv & RSV1 != 0;
        if rsv1 && (header.opcode == OpCode::Continuation || header.opcode.is_control()) {
            return Err(ProtocolError::CompressedNonFirstFrame);
        }
        match (self.role, header.mask) {
            (Role::Server, None) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, Some(_)) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        let compressed = rsv1
            || header.opcode == OpCode::Continuation
                && self
                    .message
                    .as_ref()
                    .is_some_and(|message| message.compressed);
        let limit = if header.opcode.is_control() {
            // Capped at 125 bytes by the RFC, whatever the limit.
            MAX_CONTROL_PAYLOAD
        } else if compressed {
            // Incompressible data grows a little when deflated: a message of
            // the limit must still fit. Compressed frames are inflated as
            // they arrive, never buffered whole, so this costs no memory.
            deflate_bound(self.limits.max_frame_size)
        } else {
            self.limits.max_frame_size
        };
        let len = usize::try_from(header.payload_len)
            .ok()
            .filter(|&len| len <= limit)
            .ok_or(ProtocolError::FrameTooLarge {
                size: header.payload_len,
                limit,
            })?;
        if !header.opcode.is_control() {
            self.note_frame_size(len);
        }
        let mut frame = IncomingFrame {
            header,
            len,
            processed: 0,
            text: false,
            compressed: false,
        };
        if header.opcode.is_control() {
            self.frame = Some(frame);
            return Ok(frame);
        }
        // Data frames that arrive after we sent close are processed like any
        // other, under the same limits: RFC 6455 forbids *sending* data after
        // a close, and the peer may have sent these (replies to what we sent)
        // before it saw ours. Dropping them would lose data in flight.
        let too_large = ProtocolError::MessageTooLarge {
            limit: self.limits.max_message_size,
        };
        match (header.opcode, self.message.as_mut()) {
            (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Continuation, Some(message)) if message.compressed => {
                // The limit applies to the inflated size, checked while inflating.
                frame.compressed = true;
            }
            (OpCode::Continuation, Some(message)) => {
                message.announced = message
                    .announced
                    .checked_add(len)
                    .filter(|&total| total <= self.limits.max_message_size)
                    .ok_or(too_large)?;
                frame.text = message.kind == Kind::Text;
            }
            (_, Some(_)) => return Err(ProtocolError::ExpectedContinuation),
            (opcode, None) => {
                let kind = if opcode == OpCode::Text {
                    Kind::Text
                } else {
                    Kind::Binary
                };
                if kind == Kind::Text {
                    self.utf8.reset();
                }
                if rsv1 {
                    frame.compressed = true;
                    self.message = Some(Box::new(Assembly {
                        kind,
                        buf: Vec::new(),
                        announced: 0,
                        compressed: true,
                    }));
                } else {
                    if len > self.limits.max_message_size {
                        return Err(too_large);
                    }
                    frame.text = kind == Kind::Text;
                    if !header.fin {
                        self.message = Some(Box::new(Assembly {
                            kind,
                            buf: Vec::new(),
                            announced: len,
                            compressed: false,
                        }));
                    }
                }
            }
        }
        self.frame = Some(frame);
        Ok(frame)
    }

    /// Unmasks and validates the newly arrived part of the payload; completes
    /// the frame when all of it is here.
    fn progress(&mut self, mut frame: IncomingFrame) -> Result<Progress, ProtocolError> {
        let available = self.read.len().min(frame.len);
        if frame.compressed {
            return self.progress_compressed(frame);
        }
        if available > frame.processed {
            if let Some(fresh) = self.read.get_mut(frame.processed..available) {
                if let Some(key) = frame.header.mask {
                    apply_mask(fresh, key, frame.processed);
                }
                if frame.text {
                    self.utf8
                        .feed(fresh)
                        .map_err(|_| ProtocolError::InvalidUtf8)?;
                }
            }
            frame.processed = available;
        }
        if frame.processed < frame.len {
            self.frame = Some(frame);
            return Ok(Progress::NeedMore);
        }
        self.frame = None;
        let payload = self.read.split_to(frame.len).freeze();
        let event = match frame.header.opcode {
            OpCode::Ping => {
                if !self.close_sent {
                    self.queue_frame(OpCode::Pong, true, &payload);
                    self.reply_queued = true;
                    self.unwritten_pongs = self.unwritten_pongs.saturating_add(1);
                }
                Some(Event::Ping(payload))
            }
            OpCode::Pong => Some(Event::Pong(payload)),
            OpCode::Close => Some(self.receive_close(&payload)?),
            _ => self.complete_data_frame(frame, payload)?,
        };
        Ok(event.map_or(Progress::FrameDone, Progress::Event))
    }

    /// Unmasks and inflates the newly arrived part of a compressed frame,
    /// consuming it from the read buffer; finishes the message on its last
    /// frame.
    fn progress_compressed(&mut self, mut frame: IncomingFrame) -> Result<Progress, ProtocolError> {
        let limit = self.limits.max_message_size;
        let arrived = (frame.len - frame.processed).min(self.read.len());
        let (Some(deflate), Some(message)) = (self.deflate.as_deref_mut(), self.message.as_mut())
        else {
            return Err(ProtocolError::CompressedNonFirstFrame);
        };
        let utf8 = &mut self.utf8;
        let text = message.kind == Kind::Text;
        // Inflated text is validated piece by piece, as it is produced.
        let mut check = |inflated: &[u8]| {
            if text {
                utf8.feed(inflated).map_err(|_| ProtocolError::InvalidUtf8)
            } else {
                Ok(())
            }
        };
        if let Some(fresh) = self.read.get_mut(..arrived) {
            if let Some(key) = frame.header.mask {
                apply_mask(fresh, key, frame.processed);
            }
            deflate.decompress(fresh, &mut message.buf, limit, &mut check)?;
        }
        self.read.advance(arrived);
        frame.processed += arrived;
        if frame.processed < frame.len {
            self.frame = Some(frame);
            return Ok(Progress::NeedMore);
        }
        self.frame = None;
        if !frame.header.fin {
            return Ok(Progress::FrameDone);
        }
        deflate.finish_message(&mut message.buf, limit, &mut check)?;
        let kind = message.kind;
        let payload = self.message.take().map(|m| m.buf).unwrap_or_default();
        self.finish_message(kind, Bytes::from(payload))
            .map(Progress::Event)
    }

    /// Handles the end of a data frame: a message, or one more fragment.
    fn complete_data_frame(
        &mut self,
        frame: IncomingFrame,
        payload: Bytes,
    ) -> Result<Option<Event>, ProtocolError> {
        let kind = match (frame.header.opcode, self.message.as_mut()) {
            (OpCode::Continuation, Some(message)) => {
                extend_exact(&mut message.buf, &payload, self.limits.max_message_size)?;
                if !frame.header.fin {
                    return Ok(None);
                }
                message.kind
            }
            (OpCode::Text | OpCode::Binary, Some(message)) if !frame.header.fin => {
                extend_exact(&mut message.buf, &payload, self.limits.max_message_size)?;
                return Ok(None);
            }
            (OpCode::Text, _) => return self.finish_message(Kind::Text, payload).map(Some),
            (_, _) => return self.finish_message(Kind::Binary, payload).map(Some),
        };
        let assembled = self.message.take().map(|m| m.buf).unwrap_or_default();
        self.finish_message(kind, Bytes::from(assembled)).map(Some)
    }

    fn finish_message(&mut self, kind: Kind, payload: Bytes) -> Result<Event, ProtocolError> {
        Ok(match kind {
            Kind::Text => {
                self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
                Event::Text(Utf8Bytes::from_validated(payload))
            }
            Kind::Binary => Event::Binary(payload),
        })
    }

    /// A close frame from the peer: answer it (once) and stop receiving.
    fn receive_close(&mut self, payload: &[u8]) -> Result<Event, ProtocolError> {
        let frame = parse_close_payload(payload)?;
        if !self.close_sent {
            // RFC 6455 §5.5.1: echo the status code received.
            let code = frame.as_ref().map(|frame| frame.code);
            self.queue_close(code, "");
            self.close_sent = true;
            self.reply_queued = true;
        }
        self.close_received = true;
        self.input_behind_close = !self.read.is_empty();
        self.release_input();
        Ok(Event::Close(frame))
    }

    /// Fails the connection: queue the close frame that says why (unless a
    /// close was already sent) and stop receiving.
    fn fail(&mut self, error: ProtocolError) -> Error {
        if !self.close_sent {
            let reason = error.to_string();
            self.queue_close(Some(error.close_code()), &reason);
            self.close_sent = true;
            self.reply_queued = true;
        }
        self.failed = true;
        self.release_input();
        Error::Protocol(error)
    }

    fn release_input(&mut self) {
        self.read.clear();
        spare::give(std::mem::take(&mut self.read));
        self.frame = None;
        self.message = None;
    }

    // ---- output ----

    /// Queues a whole message: its frame goes into the outbound buffer, to
    /// be written by the caller (see [`outbound`](Self::outbound)). Owned
    /// payloads are not copied where the protocol allows it (a server's large
    /// payloads go out by reference).
    pub fn queue(&mut self, message: Message) -> Result<(), Error> {
        self.check_can_send_message()?;
        let (opcode, payload) = match message {
            Message::Text(text) => (OpCode::Text, text.into_bytes()),
            Message::Binary(bytes) => (OpCode::Binary, bytes),
        };
        if self.compresses(opcode, &payload) {
            return self.queue_compressed(opcode, &payload);
        }
        self.queue_frame_bytes(opcode, payload);
        Ok(())
    }

    /// Queues a [`PreparedMessage`]: the frame it holds is shared, not
    /// copied or built again.
    ///
    /// A server queues the prepared frame by reference; a client copies the
    /// payload and masks it with a fresh key, as RFC 6455 requires of every
    /// client frame. With permessage-deflate the message is compressed when
    /// [`queue`](Self::queue) would compress it: once per compression setting
    /// and shared when this side sends with no context takeover, with this
    /// connection's own compressor otherwise (see [`crate::prepared`]).
    ///
    /// Refused like any message after a close was sent ([`Error::Closed`])
    /// or while a fragmented message is being sent.
    pub fn queue_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        self.check_can_send_message()?;
        let opcode = message.opcode();
        if !self.compresses(opcode, message.as_bytes()) {
            self.queue_framed(opcode, 0, message.plain());
            return Ok(());
        }
        let shared = match self.deflate.as_deref_mut() {
            Some(deflate) => match deflate.standalone_key() {
                Some(key) => {
                    message.compressed(key, |payload, out| deflate.compress(payload, out))?
                }
                None => None,
            },
            None => None,
        };
        match shared {
            Some(framed) => {
                self.queue_framed(opcode, RSV1, framed);
                Ok(())
            }
            None => self.queue_compressed(opcode, message.as_bytes()),
        }
    }

    /// Queues a prepared frame: shared by a server, masked afresh by a client.
    fn queue_framed(&mut self, opcode: OpCode, rsv: u8, framed: &Framed) {
        match self.role {
            Role::Server => self.out.push_shared(framed.frame()),
            Role::Client => self.queue_frame_rsv(opcode, true, rsv, framed.payload()),
        }
    }

    /// Queues a text message (copying it).
    pub fn queue_text(&mut self, text: &str) -> Result<(), Error> {
        self.check_can_send_message()?;
        self.queue_message(OpCode::Text, text.as_bytes())
    }

    /// Queues a binary message (copying it).
    pub fn queue_binary(&mut self, data: &[u8]) -> Result<(), Error> {
        self.check_can_send_message()?;
        self.queue_message(OpCode::Binary, data)
    }

    /// Queues a whole message, compressed when deflate is on and it pays.
    fn queue_message(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), Error> {
        if self.compresses(opcode, payload) {
            return self.queue_compressed(opcode, payload);
        }
        self.queue_frame(opcode, true, payload);
        Ok(())
    }

    /// Whether a message's `payload` goes out compressed.
    fn compresses(&self, opcode: OpCode, payload: &[u8]) -> bool {
        self.deflate
            .as_deref()
            .is_some_and(|deflate| deflate.compresses(payload, opcode == OpCode::Text))
    }

    /// Queues a message compressed, RSV1 set on its only frame.
    fn queue_compressed(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), Error> {
        let Some(deflate) = self.deflate.as_deref_mut() else {
            return Err(Error::Compression("permessage-deflate is not enabled"));
        };
        // The thread's output buffer is reused from message to message.
        let mut compressed = Deflate::take_output();
        let result = deflate.compress(payload, &mut compressed);
        // A message compressed alone that did not shrink goes out as it is
        // (with context takeover it is part of the history and must be sent).
        let alone = deflate.standalone_key().is_some();
        if result.is_ok() {
            if alone && compressed.len() >= payload.len() {
                self.queue_frame(opcode, true, payload);
            } else {
                self.queue_frame_rsv(opcode, true, RSV1, &compressed);
            }
        }
        Deflate::give_output(compressed);
        result.map_err(Error::Compression)
    }

    /// Queues one frame of a fragmented message: `Text` or `Binary` starts
    /// it, `Continuation` continues it, `fin` ends it. Control frames may be
    /// sent between fragments. Text fragments are checked to be valid UTF-8
    /// across fragment boundaries.
    pub fn queue_fragment(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        fin: bool,
    ) -> Result<(), Error> {
        if self.close_sent {
            return Err(Error::Closed);
        }
        let mut sending = match (opcode, self.sending.take()) {
            (OpCode::Text, None) => (Kind::Text, Utf8Validator::new()),
            (OpCode::Binary, None) => (Kind::Binary, Utf8Validator::new()),
            (OpCode::Continuation, Some(sending)) => sending,
            (OpCode::Continuation, None) => {
                return Err(Error::InvalidUse(
                    "continuation frame with no message started",
                ));
            }
            (OpCode::Text | OpCode::Binary, Some(sending)) => {
                self.sending = Some(sending);
                return Err(Error::InvalidUse(
                    "a fragmented message is still being sent",
                ));
            }
            _ => return Err(Error::InvalidUse("control frames cannot be fragmented")),
        };
        if sending.0 == Kind::Text {
            let valid = sending
                .1
                .feed(payload)
                .and_then(|()| if fin { sending.1.finish() } else { Ok(()) });
            if valid.is_err() {
                self.sending = Some(sending);
                return Err(Error::InvalidUse("text fragment is not valid UTF-8"));
            }
        }
        self.queue_frame(opcode, fin, payload);
        if !fin {
            self.sending = Some(sending);
        }
        Ok(())
    }

    /// Queues a ping (at most 125 bytes of payload).
    pub fn queue_ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.queue_control(OpCode::Ping, payload)
    }

    /// Queues an unsolicited pong (pings are answered automatically).
    pub fn queue_pong(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.queue_control(OpCode::Pong, payload)
    }

    /// Starts the closing handshake by queuing the close frame. Calling it
    /// again, or after the peer's close, does nothing: a close frame is sent
    /// at most once.
    ///
    /// The code must be one that may be sent (1000–1003, 1007–1014,
    /// 3000–4999) and the reason at most 123 bytes.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        if !code.is_sendable() {
            return Err(Error::InvalidUse("this close code may not be sent"));
        }
        if reason.len() > MAX_REASON_LEN {
            return Err(Error::InvalidUse("close reason longer than 123 bytes"));
        }
        if !self.close_sent {
            self.queue_close(Some(code), reason);
            self.close_sent = true;
            // A message being received is kept: the peer finishes it.
        }
        Ok(())
    }

    /// The bytes queued for the wire. Write them out and
    /// [`advance`](Buf::advance) past what was written.
    pub fn outbound(&mut self) -> &mut Outbound {
        &mut self.out
    }

    /// Whether bytes are waiting to be written.
    pub fn wants_write(&self) -> bool {
        self.out.has_remaining()
    }

    /// Whether a reply the protocol owes the peer (a pong, a close) is queued
    /// and unwritten. An adapter that hands an event to the application
    /// writes the outbound bytes first when this is true, so that replies
    /// never wait for the application's next call.
    pub fn reply_pending(&self) -> bool {
        self.reply_queued && self.out.has_remaining()
    }

    /// Takes all queued bytes as one vector (copying them): convenient for
    /// tests and simple callers; writers should use [`outbound`](Self::outbound).
    pub fn take_outbound(&mut self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.out.remaining());
        while self.out.has_remaining() {
            let chunk = self.out.chunk();
            let n = chunk.len();
            bytes.extend_from_slice(chunk);
            self.out.advance(n);
        }
        bytes
    }

    /// Releases empty buffers that grew large; call it when the connection
    /// goes idle. An idle connection then holds only its fixed-size state.
    pub fn shrink_buffers(&mut self) {
        if self.read.is_empty() && self.read.capacity() > 0 {
            // A buffer goes back with all its room (see `read_buffer`): the
            // stock hands it out for writes too, which would otherwise find
            // it part used and reallocate.
            self.read.reserve(MIN_READ);
            spare::give(std::mem::take(&mut self.read));
        }
        self.out.shrink(0);
        if let Some(deflate) = self
            .deflate
            .as_deref_mut()
            .filter(|_| self.message.is_none())
        {
            deflate.shrink();
        }
    }

    /// Heap bytes held by the buffers, for memory accounting.
    pub fn buffered_capacity(&self) -> usize {
        self.read.capacity()
            + self.out.capacity()
            + self.message.as_ref().map_or(0, |m| m.buf.capacity())
    }

    /// Whether the bytes queued and not yet written are at or over the
    /// high-water mark: new messages are refused with
    /// [`Error::WriteBufferFull`] until they are written out. The replies the
    /// protocol owes (pong, close) are still queued, so a peer that sends
    /// without reading is bounded by the adapters, which stop reading while
    /// this holds.
    pub fn write_buffer_full(&self) -> bool {
        self.out.remaining() >= self.limits.write_high_water
    }

    /// Whether a peer has been sending pings faster than it reads our
    /// pongs: more than [`MAX_UNWRITTEN_PONGS`] are queued unwritten. An
    /// adapter that keeps reading while its writes wait (a read half) stops
    /// reading while this holds, which bounds what such a peer can make us
    /// queue without ever blocking on a peer that only waits for us to read
    /// its data.
    pub fn replies_backlogged(&self) -> bool {
        self.unwritten_pongs > MAX_UNWRITTEN_PONGS && self.out.has_remaining()
    }

    /// Whether the queue has drained to the low-water mark, where a sender
    /// that waited for room may go on.
    pub fn write_buffer_drained(&self) -> bool {
        self.out.remaining() <= self.limits.write_low_water
    }

    fn check_can_send_message(&self) -> Result<(), Error> {
        if self.close_sent {
            return Err(Error::Closed);
        }
        if self.write_buffer_full() {
            return Err(Error::WriteBufferFull);
        }
        if self.sending.is_some() {
            return Err(Error::InvalidUse(
                "a fragmented message is still being sent",
            ));
        }
        Ok(())
    }

    fn queue_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), Error> {
        if self.close_sent {
            return Err(Error::Closed);
        }
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(Error::InvalidUse(
                "control frame payload longer than 125 bytes",
            ));
        }
        self.queue_frame(opcode, true, payload);
        Ok(())
    }

    fn queue_close(&mut self, code: Option<CloseCode>, reason: &str) {
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        let len = match code {
            None => 0,
            Some(code) => {
                let reason = truncate_reason(reason).as_bytes();
                let [high, low] = code.0.to_be_bytes();
                payload[0] = high;
                payload[1] = low;
                if let Some(slot) = payload.get_mut(2..2 + reason.len()) {
                    slot.copy_from_slice(reason);
                }
                2 + reason.len()
            }
        };
        self.queue_frame(OpCode::Close, true, payload.get(..len).unwrap_or_default());
    }

    /// The frame header for a frame we send (masked with a fresh key by a client).
    fn outgoing_header(&self, opcode: OpCode, fin: bool, len: usize) -> FrameHeader {
        self.outgoing_header_rsv(opcode, fin, 0, len)
    }

    fn outgoing_header_rsv(&self, opcode: OpCode, fin: bool, rsv: u8, len: usize) -> FrameHeader {
        FrameHeader {
            fin,
            rsv,
            opcode,
            mask: match self.role {
                Role::Client => Some(rand::random()),
                Role::Server => None,
            },
            payload_len: len as u64,
        }
    }

    fn queue_frame(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) {
        self.queue_frame_rsv(opcode, fin, 0, payload);
    }

    fn queue_frame_rsv(&mut self, opcode: OpCode, fin: bool, rsv: u8, payload: &[u8]) {
        let header = self.outgoing_header_rsv(opcode, fin, rsv, payload.len());
        let tail = self.out.tail();
        let before = tail.len();
        tail.reserve(header.encoded_len() + payload.len());
        header.encode(tail);
        match header.mask {
            Some(key) => extend_masked(tail, payload, key),
            None => tail.extend_from_slice(payload),
        }
        let written = tail.len() - before;
        self.out.grew(written);
    }

    fn queue_frame_bytes(&mut self, opcode: OpCode, payload: Bytes) {
        if self.role == Role::Client {
            self.queue_frame(opcode, true, &payload);
            return;
        }
        let header = self.outgoing_header(opcode, true, payload.len());
        self.out
            .push_frame(header.encode_into(&mut [0; MAX_HEADER_LEN]), payload);
    }
}

/// What processing the read buffer led to.
enum Progress {
    NeedMore,
    FrameDone,
    Event(Event),
}

/// The longest compressed frame allowed for a frame limit of `len`: what
/// deflate can make of `len` bytes in the worst case. Stored blocks add 5
/// bytes per block, and a compressor that codes every literal with the fixed
/// Huffman table (zlib-ng's "quick" level 1 does) spends up to 9 bits per
/// byte: 12.5% more.
fn deflate_bound(len: usize) -> usize {
    len.saturating_add(len >> 3).saturating_add(1024)
}

/// Appends `data` to `buf`, growing it geometrically but never past `limit`.
fn extend_exact(buf: &mut Vec<u8>, data: &[u8], limit: usize) -> Result<(), ProtocolError> {
    let needed = buf.len() + data.len();
    if needed > limit {
        return Err(ProtocolError::MessageTooLarge { limit });
    }
    if needed > buf.capacity() {
        let target = needed.max(buf.capacity() * 2).min(limit);
        buf.reserve_exact(target - buf.len());
    }
    buf.extend_from_slice(data);
    Ok(())
}
