//! What the fuzz targets share: how an input is cut into reads, a driver that
//! feeds a [`Connection`] the way an adapter does, and an oracle that predicts
//! exactly which frames the connection must have queued for the wire.
//!
//! A fuzz target fails by panicking, so the checks here are plain asserts.

use ws_core::MAX_REASON_LEN;
use ws_core::deflate::{DeflateConfig, DeflateParams};
use ws_core::low_level::{FrameHeader, parse_close_payload};
use ws_core::{
    CloseCode, CloseFrame, Config, Connection, Error, Event, Message, OpCode, ProtocolError, Role,
    State,
};

/// How an input cuts its byte stream into reads: read sizes taken from its
/// first bytes, used in a cycle.
#[derive(Debug, Clone)]
pub struct ChunkPlan {
    sizes: Vec<usize>,
}

impl ChunkPlan {
    /// Reads the plan from the front of `data`, steered by `control`: its two
    /// low bits give the number of size bytes (1–4), bit 2 makes the reads
    /// 61 times larger (a prime, so that reads drift across frame boundaries).
    /// Returns the plan and the stream that follows it.
    pub fn take(control: u8, data: &[u8]) -> (Self, &[u8]) {
        let count = usize::from(control & 3) + 1;
        let scale = if control & 4 != 0 { 61 } else { 1 };
        let (spec, rest) = data.split_at(count.min(data.len()));
        let mut sizes: Vec<usize> = spec
            .iter()
            .map(|&b| (usize::from(b) % 64 + 1) * scale)
            .collect();
        if sizes.is_empty() {
            sizes.push(1);
        }
        (Self { sizes }, rest)
    }

    /// One read of the whole stream.
    pub fn whole() -> Self {
        Self {
            sizes: vec![usize::MAX],
        }
    }

    /// The reads of `data`, in order.
    pub fn chunks<'a>(&self, data: &'a [u8]) -> Chunks<'a> {
        Chunks {
            rest: data,
            sizes: self.sizes.clone(),
            next: 0,
        }
    }
}

/// The reads of a stream, following a [`ChunkPlan`].
#[derive(Debug)]
pub struct Chunks<'a> {
    rest: &'a [u8],
    sizes: Vec<usize>,
    next: usize,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let size = self.sizes.get(self.next % self.sizes.len()).copied()?;
        self.next += 1;
        let (chunk, rest) = self.rest.split_at(size.min(self.rest.len()));
        self.rest = rest;
        Some(chunk)
    }
}

/// One thing that happened on a connection, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `next_event` returned this event.
    Event(Event),
    /// `next_event` failed the connection with this violation.
    Failed(ProtocolError),
    /// The driver echoed a message and `send` accepted it.
    Echoed(Message),
    /// The driver started the closing handshake with this code.
    Closed(CloseCode),
}

/// The permessage-deflate agreement of a connection, if it has one, with
/// the local settings (level, minimum size) it was switched on with.
pub type DeflateSetup = Option<(DeflateParams, DeflateConfig)>;

/// A connection of `role` with `config` and, if given, deflate switched on.
pub fn connection(role: Role, config: Config, deflate: &DeflateSetup) -> Connection {
    let mut conn = Connection::new(role, config);
    if let Some((params, deflate_config)) = deflate {
        conn.enable_deflate(*params, deflate_config);
    }
    conn
}

/// Reads the deflate setting from a control byte: bit 3 switches it on, bit
/// 4 picks the smallest windows and no context takeover either way.
pub fn deflate_from(control: u8) -> DeflateSetup {
    if control & 0x08 == 0 {
        return None;
    }
    let params = if control & 0x10 != 0 {
        DeflateParams::default()
            .server_no_context_takeover(true)
            .client_no_context_takeover(true)
            .server_max_window_bits(9)
            .client_max_window_bits(9)
    } else {
        DeflateParams::default()
    };
    Some((params, DeflateConfig::default()))
}

/// Feeds a connection its reads and drains it as an adapter must: events out
/// until none is left, then everything queued goes to the "wire".
#[derive(Debug)]
pub struct Driver {
    conn: Connection,
    deflate: DeflateSetup,
    log: Vec<Step>,
    wire: Vec<u8>,
    echo: bool,
    reads: usize,
}

impl Driver {
    /// A driver for `conn`, whose deflate agreement is `deflate`; with
    /// `echo`, every message received is sent back. Bytes the connection
    /// already holds are processed at once.
    pub fn new(conn: Connection, deflate: DeflateSetup, echo: bool) -> Self {
        assert_eq!(conn.deflate_enabled(), deflate.is_some());
        let mut driver = Self {
            conn,
            deflate,
            log: Vec::new(),
            wire: Vec::new(),
            echo,
            reads: 0,
        };
        driver.drain();
        driver
    }

    /// How many steps happened so far.
    pub fn steps(&self) -> usize {
        self.log.len()
    }

    /// One read from the transport: every other one goes straight into the
    /// connection's read buffer, as the adapters read, the rest through
    /// `receive`.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.reads += 1;
        if self.reads.is_multiple_of(2) && self.conn.state() != State::Closed {
            self.conn.read_buffer().extend_from_slice(chunk);
        } else {
            self.conn.receive(chunk);
        }
        self.drain();
    }

    /// The application starts the closing handshake.
    pub fn close(&mut self, code: CloseCode) {
        let first = !self.conn.close_sent();
        let result = self.conn.close(code, CLOSE_REASON);
        assert!(result.is_ok(), "close({code}) refused: {result:?}");
        assert!(self.conn.close_sent());
        if first {
            self.log.push(Step::Closed(code));
        }
        self.wire.extend(self.conn.take_outbound());
    }

    fn drain(&mut self) {
        loop {
            let closed_before = self.conn.state() == State::Closed;
            match self.conn.next_event() {
                Ok(None) => break,
                Ok(Some(event)) => {
                    assert!(
                        !closed_before,
                        "event {event:?} after the connection closed"
                    );
                    if matches!(event, Event::Close(_)) {
                        assert_eq!(self.conn.state(), State::Closed);
                        assert!(self.conn.close_sent(), "close received but none sent");
                    }
                    self.log.push(Step::Event(event.clone()));
                    if let Some(message) = event.into_message().filter(|_| self.echo) {
                        self.echo(message);
                    }
                }
                Err(Error::Protocol(error)) => {
                    assert!(
                        !closed_before,
                        "error {error:?} after the connection closed"
                    );
                    self.log.push(Step::Failed(error));
                    assert_eq!(self.conn.state(), State::Closed);
                    assert!(self.conn.close_sent(), "failed without a close frame");
                }
                Err(other) => panic!("next_event returned a non-protocol error: {other:?}"),
            }
            self.wire.extend(self.conn.take_outbound());
        }
        self.wire.extend(self.conn.take_outbound());
    }

    fn echo(&mut self, message: Message) {
        let may_send = !self.conn.close_sent();
        match self.conn.queue(message.clone()) {
            Ok(()) => {
                assert!(may_send, "send accepted after close was sent");
                self.log.push(Step::Echoed(message));
            }
            Err(Error::Closed) => assert!(!may_send, "send refused before close was sent"),
            Err(other) => panic!("send failed with {other:?}"),
        }
    }

    /// Ends the transport and checks every invariant; returns what happened
    /// and what the peer made of the output, for comparisons between runs.
    pub fn finish(mut self) -> (Vec<Step>, Vec<Event>) {
        let role = self.conn.role();
        if self.conn.state() == State::Closed {
            // A closed connection ignores whatever else arrives.
            self.conn.receive(&peer_ping(role));
            assert!(matches!(self.conn.next_event(), Ok(None)));
            assert!(!self.conn.wants_write(), "a closed connection queued bytes");
        }
        let was_closed = self.conn.state() == State::Closed;
        let eof = self.conn.receive_eof();
        assert_eq!(eof.is_ok(), was_closed, "receive_eof: {eof:?}");
        assert_eq!(self.conn.state(), State::Closed);
        assert!(!self.conn.wants_write(), "end of input queued bytes");
        assert!(matches!(self.conn.next_event(), Ok(None)));
        check_framing(&self.wire, role, self.deflate.is_some());
        let seen = replay(&self.wire, role, &self.deflate);
        check_oracle(&self.log, &seen);
        (self.log, seen)
    }
}

/// The reason the driver gives when it closes.
const CLOSE_REASON: &str = "fuzz driver closing";

/// A well-formed ping as the peer of `role` would send it.
fn peer_ping(role: Role) -> Vec<u8> {
    match role {
        Role::Server => vec![0x89, 0x80, 1, 2, 3, 4],
        Role::Client => vec![0x89, 0x00],
    }
}

/// Checks the framing of what a connection of `role` wrote: whole frames
/// only, final, no reserved bit but the deflate bit (and that only on data
/// frames, when deflate is on), masked exactly when a client sent them, a
/// valid close frame at most once and nothing after it.
pub fn check_framing(mut bytes: &[u8], role: Role, deflate: bool) {
    let mut closed = false;
    while !bytes.is_empty() {
        let decoded = FrameHeader::decode(bytes);
        let Ok(Some((header, header_len))) = decoded else {
            panic!("output is not a frame header: {decoded:?} in {bytes:02x?}");
        };
        assert!(!closed, "frame {header:?} written after the close frame");
        let data = matches!(header.opcode, OpCode::Text | OpCode::Binary);
        let allowed_rsv = if deflate && data { 0b100 } else { 0 };
        assert_eq!(header.rsv & !allowed_rsv, 0, "reserved bits in {header:?}");
        assert!(header.fin, "unexpected fragment in output");
        assert_eq!(header.mask.is_some(), role == Role::Client, "masking");
        let end = usize::try_from(header.payload_len)
            .ok()
            .and_then(|len| len.checked_add(header_len))
            .filter(|&end| end <= bytes.len());
        let Some(end) = end else {
            panic!("output frame {header:?} is truncated");
        };
        if header.opcode == OpCode::Close {
            let mut payload = bytes.get(header_len..end).unwrap_or_default().to_vec();
            if let Some(key) = header.mask {
                ws_core::low_level::apply_mask(&mut payload, key, 0);
            }
            let parsed = parse_close_payload(&payload);
            assert!(parsed.is_ok(), "invalid close frame written: {parsed:?}");
            closed = true;
        }
        bytes = bytes.get(end..).unwrap_or_default();
    }
}

/// What the peer makes of the bytes a connection of `role` wrote: a strict
/// connection of the other role, with the same deflate agreement, must
/// accept all of it.
pub fn replay(wire: &[u8], role: Role, deflate: &DeflateSetup) -> Vec<Event> {
    let peer_role = match role {
        Role::Server => Role::Client,
        Role::Client => Role::Server,
    };
    let roomy = Config::default()
        .max_frame_size(1 << 26)
        .max_message_size(1 << 26);
    let mut peer = connection(peer_role, roomy, deflate);
    peer.receive(wire);
    let mut events = Vec::new();
    loop {
        match peer.next_event() {
            Ok(Some(event)) => events.push(event),
            Ok(None) => break,
            Err(error) => panic!("the peer rejects our output: {error}\n{wire:02x?}"),
        }
    }
    events
}

/// Checks what the peer saw against the log: a pong per ping received while
/// no close was sent, every echo, and exactly one close — the echo of the
/// peer's code, the code of the violation, or ours — if any closing started.
pub fn check_oracle(log: &[Step], seen: &[Event]) {
    let mut expected = Vec::new();
    let mut close_sent = false;
    for step in log {
        match step {
            Step::Event(Event::Ping(payload)) if !close_sent => {
                expected.push(Event::Pong(payload.clone()));
            }
            Step::Event(Event::Close(frame)) if !close_sent => {
                close_sent = true;
                let echo = frame.as_ref().map(|frame| CloseFrame::new(frame.code, ""));
                expected.push(Event::Close(echo));
            }
            Step::Failed(error) if !close_sent => {
                close_sent = true;
                let frame = CloseFrame::new(error.close_code(), error.to_string());
                expected.push(Event::Close(Some(frame)));
            }
            Step::Closed(code) => {
                assert!(!close_sent, "closed twice in the log");
                close_sent = true;
                expected.push(Event::Close(Some(CloseFrame::new(*code, CLOSE_REASON))));
            }
            Step::Echoed(Message::Text(text)) => expected.push(Event::Text(text.clone())),
            Step::Echoed(Message::Binary(bytes)) => expected.push(Event::Binary(bytes.clone())),
            _ => {}
        }
    }
    assert_eq!(seen.len(), expected.len(), "the peer saw {seen:?}");
    for (seen, expected) in seen.iter().zip(&expected) {
        match (seen, expected) {
            (Event::Close(Some(seen)), Event::Close(Some(expected))) => {
                // A long reason is cut to fit the frame, at a char boundary.
                assert_eq!(seen.code, expected.code);
                assert!(seen.reason.len() <= MAX_REASON_LEN);
                assert!(expected.reason.starts_with(&seen.reason), "{seen:?}");
                if expected.reason.len() <= MAX_REASON_LEN {
                    assert_eq!(seen.reason, expected.reason);
                }
            }
            _ => assert_eq!(seen, expected),
        }
    }
}

/// What must not depend on where the reads end when deflate is on: the log
/// with failures reduced to their close code, and the peer's view with
/// close frames reduced to their code. Damaged compressed text can show
/// first as invalid UTF-8 or as invalid deflate data depending on how much
/// was inflated at once; both close with 1007.
pub fn read_boundary_invariant(
    outcome: &(Vec<Step>, Vec<Event>),
) -> (Vec<Result<Step, u16>>, Vec<Result<Event, Option<u16>>>) {
    let steps = outcome
        .0
        .iter()
        .map(|step| match step {
            Step::Failed(error) => Err(error.close_code().0),
            other => Ok(other.clone()),
        })
        .collect();
    let seen = outcome
        .1
        .iter()
        .map(|event| match event {
            Event::Close(frame) => Err(frame.as_ref().map(|frame| frame.code.0)),
            other => Ok(other.clone()),
        })
        .collect();
    (steps, seen)
}

/// Runs `stream` through a fresh connection of `role`, read by read.
pub fn run_connection(
    role: Role,
    config: Config,
    deflate: &DeflateSetup,
    stream: &[u8],
    plan: &ChunkPlan,
) -> (Vec<Step>, Vec<Event>) {
    let mut driver = Driver::new(connection(role, config, deflate), deflate.clone(), false);
    for chunk in plan.chunks(stream) {
        driver.feed(chunk);
    }
    driver.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ping_from_client() -> Vec<u8> {
        vec![0x89, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2]
    }

    #[test]
    fn a_ping_is_answered_by_its_pong() {
        let (log, seen) = run_connection(
            Role::Server,
            Config::default(),
            &None,
            &ping_from_client(),
            &ChunkPlan::whole(),
        );
        assert_eq!(log, vec![Step::Event(Event::Ping("hi".into()))]);
        assert_eq!(seen, vec![Event::Pong("hi".into())]);
    }

    #[test]
    fn compressed_echo_reaches_the_peer_intact() {
        let deflate = deflate_from(0x08);
        let text = "a message long enough to be compressed, ".repeat(4);
        let mut client = connection(Role::Client, Config::default(), &deflate);
        client.queue_text(&text).unwrap();
        let bytes = client.take_outbound();
        assert_eq!(bytes[0] & 0x40, 0x40, "the client compressed it");
        let mut driver = Driver::new(
            connection(Role::Server, Config::default(), &deflate),
            deflate,
            true,
        );
        driver.feed(&bytes);
        let (_, seen) = driver.finish();
        assert_eq!(seen, vec![Event::Text(text.into())]);
    }

    #[test]
    #[should_panic(expected = "the peer saw")]
    fn oracle_notices_a_missing_pong() {
        check_oracle(&[Step::Event(Event::Ping("hi".into()))], &[]);
    }

    #[test]
    #[should_panic(expected = "after the close frame")]
    fn framing_check_notices_a_frame_after_close() {
        check_framing(&[0x88, 0x00, 0x8a, 0x00], Role::Server, false);
    }

    #[test]
    #[should_panic(expected = "masking")]
    fn framing_check_notices_an_unmasked_client_frame() {
        check_framing(&[0x8a, 0x00], Role::Client, false);
    }

    #[test]
    #[should_panic(expected = "reserved bits")]
    fn framing_check_notices_a_compressed_pong() {
        check_framing(&[0xca, 0x00], Role::Server, true);
    }

    #[test]
    fn chunk_plan_covers_the_stream_in_order() {
        let (plan, stream) = ChunkPlan::take(0x01, &[2, 0, b'a', b'b', b'c', b'd', b'e']);
        let chunks: Vec<&[u8]> = plan.chunks(stream).collect();
        assert_eq!(chunks, vec![&b"abc"[..], b"d", b"e"]);
    }
}
