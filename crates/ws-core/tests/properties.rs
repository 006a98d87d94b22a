//! Properties of the connection state machine over generated frame streams:
//! valid streams round-trip into the messages they carry, however they are
//! cut into reads; any input at all, valid or not, leaves the connection in a
//! sane state with well-formed output.
// Test helpers may panic: that is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use bytes::BytesMut;
use proptest::prelude::*;
use ws_core::deflate::{
    DeflateConfig, DeflateParams, client_offer, negotiate_client, negotiate_server,
};
use ws_core::low_level::{FrameHeader, encode_frame, parse_close_payload};
use ws_core::{
    CloseCode, CloseFrame, Config, Connection, Error, Event, Message, OpCode, ProtocolError, Role,
    State,
};

// ---- generated valid streams ----

/// A control frame the peer sends between (or inside) messages.
#[derive(Debug, Clone)]
enum Control {
    Ping(Vec<u8>),
    Pong(Vec<u8>),
}

/// The content of a data message.
#[derive(Debug, Clone)]
enum Payload {
    Text(String),
    Binary(Vec<u8>),
}

impl Payload {
    fn bytes(&self) -> &[u8] {
        match self {
            Self::Text(text) => text.as_bytes(),
            Self::Binary(bytes) => bytes,
        }
    }
}

/// One data message, cut into fragments at `cuts` (byte positions, which may
/// fall inside a UTF-8 sequence or repeat, giving empty fragments), with
/// control frames slipped between the fragments.
#[derive(Debug, Clone)]
struct Fragmented {
    payload: Payload,
    cuts: Vec<usize>,
    between: Vec<Option<Control>>,
}

#[derive(Debug, Clone)]
enum Item {
    Message(Fragmented),
    Control(Control),
}

/// A valid stream from one peer: items, then optionally a close frame
/// (`Some(None)` is a close without a status code) followed by bytes that
/// must be ignored.
#[derive(Debug, Clone)]
struct ValidStream {
    items: Vec<Item>,
    close: Option<Option<(u16, String)>>,
    after_close: Vec<u8>,
    key_seed: u64,
}

fn control() -> impl Strategy<Value = Control> {
    let payload = prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..8),
        1 => proptest::collection::vec(any::<u8>(), 125..=125),
    ];
    prop_oneof![
        payload.clone().prop_map(Control::Ping),
        payload.prop_map(Control::Pong),
    ]
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        // Mostly short messages, any Unicode (multi-byte sequences included).
        6 => ".{0,24}".prop_map(Payload::Text),
        6 => proptest::collection::vec(any::<u8>(), 0..48).prop_map(Payload::Binary),
        // 16-bit lengths.
        2 => ("[a-zé😀]", 50usize..120).prop_map(|(c, n)| Payload::Text(c.repeat(n))),
        1 => (any::<u8>(), 126usize..400).prop_map(|(b, n)| Payload::Binary(pattern(b, n))),
        // A 64-bit length, rarely: it costs time in debug builds.
        1 => (any::<u8>(), 0x1_0000usize..0x1_0040).prop_map(|(b, n)| Payload::Binary(pattern(b, n))),
    ]
}

/// `n` bytes that differ from each other, so that a misplaced byte shows.
fn pattern(seed: u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| seed.wrapping_add((i % 251) as u8)).collect()
}

fn fragmented() -> impl Strategy<Value = Fragmented> {
    (
        payload(),
        proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
        proptest::collection::vec(proptest::option::weighted(0.4, control()), 0..4),
    )
        .prop_map(|(payload, cuts, between)| {
            let len = payload.bytes().len();
            let mut cuts: Vec<usize> = cuts.iter().map(|index| index.index(len + 1)).collect();
            cuts.sort_unstable();
            Fragmented {
                payload,
                cuts,
                between,
            }
        })
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        3 => fragmented().prop_map(Item::Message),
        1 => control().prop_map(Item::Control),
    ]
}

fn sendable_code() -> impl Strategy<Value = u16> {
    prop_oneof![1000u16..=1003, 1007u16..=1014, 3000u16..=4999]
}

fn valid_stream() -> impl Strategy<Value = ValidStream> {
    (
        proptest::collection::vec(item(), 0..8),
        proptest::option::of(proptest::option::of((sendable_code(), ".{0,20}"))),
        proptest::collection::vec(any::<u8>(), 0..16),
        any::<u64>(),
    )
        .prop_map(|(items, close, after_close, key_seed)| ValidStream {
            items,
            close,
            after_close,
            key_seed,
        })
}

/// splitmix64: masking keys that differ per frame, reproducible from a seed.
struct Keys(u64);

impl Keys {
    fn next(&mut self) -> [u8; 4] {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        let [a, b, c, d, ..] = (z ^ (z >> 31)).to_le_bytes();
        [a, b, c, d]
    }
}

impl ValidStream {
    /// The bytes the peer of a `receiver` sends: masked towards a server.
    fn encode(&self, receiver: Role) -> Vec<u8> {
        let mut keys = Keys(self.key_seed);
        let mut out = BytesMut::new();
        let mut frame = |opcode: OpCode, fin: bool, payload: &[u8]| {
            let header = FrameHeader {
                fin,
                mask: (receiver == Role::Server).then(|| keys.next()),
                ..FrameHeader::new(opcode, 0)
            };
            encode_frame(&mut out, header, payload);
        };
        fn control_frame(frame: &mut dyn FnMut(OpCode, bool, &[u8]), c: &Control) {
            match c {
                Control::Ping(p) => frame(OpCode::Ping, true, p),
                Control::Pong(p) => frame(OpCode::Pong, true, p),
            }
        }
        for item in &self.items {
            match item {
                Item::Control(c) => control_frame(&mut frame, c),
                Item::Message(message) => {
                    let bytes = message.payload.bytes();
                    let first = match message.payload {
                        Payload::Text(_) => OpCode::Text,
                        Payload::Binary(_) => OpCode::Binary,
                    };
                    let mut start = 0;
                    for (i, &cut) in message.cuts.iter().enumerate() {
                        let opcode = if i == 0 { first } else { OpCode::Continuation };
                        frame(opcode, false, &bytes[start..cut]);
                        start = cut;
                        if let Some(Some(c)) = message.between.get(i) {
                            control_frame(&mut frame, c);
                        }
                    }
                    let opcode = if message.cuts.is_empty() {
                        first
                    } else {
                        OpCode::Continuation
                    };
                    frame(opcode, true, &bytes[start..]);
                }
            }
        }
        if let Some(close) = &self.close {
            let payload = match close {
                None => Vec::new(),
                Some((code, reason)) => [&code.to_be_bytes()[..], reason.as_bytes()].concat(),
            };
            frame(OpCode::Close, true, &payload);
            out.extend_from_slice(&self.after_close);
        }
        out.to_vec()
    }

    /// The events a receiver must report, in order.
    fn expected_events(&self) -> Vec<Event> {
        let control_event = |c: &Control| match c {
            Control::Ping(p) => Event::Ping(p.clone().into()),
            Control::Pong(p) => Event::Pong(p.clone().into()),
        };
        let mut events = Vec::new();
        for item in &self.items {
            match item {
                Item::Control(c) => events.push(control_event(c)),
                Item::Message(message) => {
                    let gaps = message.cuts.len();
                    events.extend(
                        message
                            .between
                            .iter()
                            .take(gaps)
                            .flatten()
                            .map(control_event),
                    );
                    events.push(match &message.payload {
                        Payload::Text(text) => Event::Text(text.clone().into()),
                        Payload::Binary(bytes) => Event::Binary(bytes.clone().into()),
                    });
                }
            }
        }
        if let Some(close) = &self.close {
            events.push(Event::Close(close.as_ref().map(|(code, reason)| {
                CloseFrame::new(CloseCode(*code), reason.clone())
            })));
        }
        events
    }
}

// ---- running a connection ----

/// A frame a connection wrote, unmasked: (opcode, payload).
type Sent = (OpCode, Vec<u8>);

/// Everything a connection did with one input.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    events: Vec<Event>,
    error: Option<ProtocolError>,
    sent: Vec<Sent>,
}

impl Outcome {
    /// What must not depend on where the reads end when deflate is on: the
    /// events, whether the connection failed, and the frames sent with close
    /// frames reduced to their code.
    ///
    /// Damaged compressed text can show first as invalid UTF-8 or as invalid
    /// deflate data depending on how much was inflated at once: both close
    /// with 1007, but the reasons differ.
    fn as_seen_with_deflate(&self) -> (Vec<Event>, bool, Vec<Sent>) {
        let sent = self
            .sent
            .iter()
            .map(|(opcode, payload)| match opcode {
                OpCode::Close => (*opcode, payload.get(..2).unwrap_or_default().to_vec()),
                _ => (*opcode, payload.clone()),
            })
            .collect();
        (self.events.clone(), self.error.is_some(), sent)
    }
}

/// Feeds `bytes` to a fresh connection in reads of `sizes` (cycled), taking
/// events out until none is left and writing out everything queued after
/// each, as an adapter does. Checks the invariants that hold for any input.
fn run(
    role: Role,
    config: Config,
    deflate: Option<DeflateParams>,
    bytes: &[u8],
    sizes: &[usize],
) -> Outcome {
    let mut conn = Connection::new(role, config);
    if let Some(params) = deflate {
        conn.enable_deflate(params, &DeflateConfig::default());
    }
    let mut wire = Vec::new();
    let mut events = Vec::new();
    let mut error = None;
    let mut rest = bytes;
    for (read, &size) in sizes.iter().cycle().enumerate() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.clamp(1, rest.len()));
        rest = tail;
        // Every other read goes straight into the read buffer, as the
        // adapters read.
        if read % 2 == 1 && conn.state() != State::Closed {
            conn.read_buffer().extend_from_slice(chunk);
        } else {
            conn.receive(chunk);
        }
        loop {
            let closed = conn.state() == State::Closed;
            match conn.next_event() {
                Ok(None) => break,
                Ok(Some(event)) => {
                    assert!(!closed, "event {event:?} after the connection closed");
                    events.push(event);
                }
                Err(Error::Protocol(violation)) => {
                    assert!(!closed, "error {violation:?} after the connection closed");
                    assert_eq!(conn.state(), State::Closed);
                    error = Some(violation);
                }
                Err(other) => panic!("next_event failed with a non-protocol error: {other:?}"),
            }
            wire.extend(conn.take_outbound());
        }
        wire.extend(conn.take_outbound());
    }
    if error.is_some() {
        assert!(matches!(conn.next_event(), Ok(None)));
    }
    let sent = parse_wire(&wire, role);
    check_replies(&events, error, &sent);
    Outcome {
        events,
        error,
        sent,
    }
}

/// Parses the bytes a connection of `role` wrote: whole frames, final, no
/// reserved bits, masked exactly when a client sent them, at most one close
/// frame (with a valid payload) and nothing after it.
fn parse_wire(mut bytes: &[u8], role: Role) -> Vec<Sent> {
    let mut frames: Vec<Sent> = Vec::new();
    while !bytes.is_empty() {
        let (header, header_len) = FrameHeader::decode(bytes)
            .expect("output frame header is valid")
            .expect("output frame header is complete");
        assert!(
            !frames.iter().any(|(opcode, _)| *opcode == OpCode::Close),
            "{header:?} written after the close frame"
        );
        assert!(header.fin && header.rsv == 0, "{header:?}");
        assert_eq!(header.mask.is_some(), role == Role::Client, "{header:?}");
        let end = header_len + usize::try_from(header.payload_len).unwrap();
        assert!(end <= bytes.len(), "output frame {header:?} is truncated");
        let mut payload = bytes[header_len..end].to_vec();
        if let Some(key) = header.mask {
            ws_core::low_level::apply_mask(&mut payload, key, 0);
        }
        if header.opcode == OpCode::Close {
            assert!(parse_close_payload(&payload).is_ok(), "{payload:?}");
        }
        frames.push((header.opcode, payload));
        bytes = &bytes[end..];
    }
    frames
}

/// The frames written are exactly those the events call for: a pong per
/// ping received before any close was sent, then one close frame — the echo
/// of the peer's code, or the code of the violation — if the connection
/// closed.
fn check_replies(events: &[Event], error: Option<ProtocolError>, sent: &[Sent]) {
    let mut expected: Vec<Sent> = Vec::new();
    let mut closed = false;
    for event in events {
        match event {
            Event::Ping(payload) => expected.push((OpCode::Pong, payload.to_vec())),
            Event::Close(frame) => {
                let code = frame.as_ref().map(|f| f.code.0.to_be_bytes().to_vec());
                expected.push((OpCode::Close, code.unwrap_or_default()));
                closed = true;
            }
            _ => {}
        }
    }
    match (error, closed) {
        (Some(violation), false) => {
            assert_eq!(sent.len(), expected.len() + 1, "sent {sent:?}");
            let (opcode, payload) = sent.last().unwrap();
            assert_eq!(*opcode, OpCode::Close);
            let frame = parse_close_payload(payload).unwrap().unwrap();
            assert_eq!(frame.code, violation.close_code());
            assert!(violation.to_string().starts_with(&frame.reason));
            assert_eq!(&sent[..expected.len()], &expected[..]);
        }
        (Some(violation), true) => panic!("{violation:?} after the close frame"),
        (None, _) => assert_eq!(sent, &expected[..]),
    }
}

fn small_limits() -> Config {
    Config::default().max_frame_size(64).max_message_size(128)
}

fn any_config() -> impl Strategy<Value = Config> {
    prop_oneof![Just(Config::default()), Just(small_limits())]
}

fn any_role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Server), Just(Role::Client)]
}

/// Read sizes: mostly small, so that frames are cut everywhere.
fn read_sizes() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(
        prop_oneof![4 => 1usize..8, 2 => 8usize..64, 1 => 64usize..4096],
        1..6,
    )
}

/// Frame-shaped input: headers with every field drawn (reserved opcodes and
/// bits, either masking, any length form), payloads shorter or longer than
/// announced, invalid UTF-8 and close codes.
fn frame_soup() -> impl Strategy<Value = Vec<u8>> {
    // The announced length is usually the payload's, so that the frames
    // after it are seen; otherwise any value in any of the three forms
    // (non-minimal ones and a 64-bit length with its top bit set included).
    let announced = prop_oneof![
        6 => Just(None),
        1 => (0u64..=125).prop_map(|n| Some((n, n as u8))),
        1 => (0u64..300).prop_map(|n| Some((n, 126))),
        1 => any::<u64>().prop_map(|n| Some((n >> (n % 64), 127))),
    ];
    let frame = (
        any::<bool>(),
        prop_oneof![6 => Just(0u8), 1 => 0u8..8],
        prop_oneof![8 => prop::sample::select(vec![0u8, 1, 2, 8, 9, 10]), 1 => 0u8..16],
        any::<Option<[u8; 4]>>(),
        announced,
        proptest::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(fin, rsv, opcode, mask, announced, payload)| {
            let mut out = vec![(u8::from(fin) << 7) | (rsv << 4) | opcode];
            let mask_bit = if mask.is_some() { 0x80 } else { 0 };
            match announced {
                None => out.push(mask_bit | payload.len() as u8),
                Some((n, 126)) => {
                    out.push(mask_bit | 126);
                    out.extend_from_slice(&(n as u16).to_be_bytes());
                }
                Some((n, 127)) => {
                    out.push(mask_bit | 127);
                    out.extend_from_slice(&n.to_be_bytes());
                }
                Some((_, short)) => out.push(mask_bit | short),
            }
            if let Some(key) = mask {
                out.extend_from_slice(&key);
            }
            out.extend_from_slice(&payload);
            out
        });
    proptest::collection::vec(frame, 0..10).prop_map(|frames| frames.concat())
}

// ---- generated compressed streams ----

fn deflate_params() -> impl Strategy<Value = DeflateParams> {
    (any::<bool>(), any::<bool>(), 8u8..=15, 8u8..=15).prop_map(
        |(server_no_context_takeover, client_no_context_takeover, server_bits, client_bits)| {
            DeflateParams::default()
                .server_no_context_takeover(server_no_context_takeover)
                .client_no_context_takeover(client_no_context_takeover)
                .server_max_window_bits(server_bits)
                .client_max_window_bits(client_bits)
        },
    )
}

/// The same agreement seen from the other end.
fn mirrored(params: DeflateParams) -> DeflateParams {
    DeflateParams::default()
        .server_no_context_takeover(params.client_no_context_takeover)
        .client_no_context_takeover(params.server_no_context_takeover)
        .server_max_window_bits(params.client_max_window_bits)
        .client_max_window_bits(params.server_max_window_bits)
}

/// Payloads that compress well, besides the general ones.
fn compressible_payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        2 => payload(),
        2 => ("[a-z é]{1,8}", 1usize..120).prop_map(|(word, n)| Payload::Text(word.repeat(n))),
        1 => (any::<u8>(), 0usize..2000).prop_map(|(b, n)| Payload::Binary(vec![b; n])),
    ]
}

/// Messages compressed by a real sender (this crate's server side), then cut
/// into fragments (the first keeps RSV1) with a ping possibly slipped in
/// after the first fragment.
#[derive(Debug, Clone)]
struct CompressedStream {
    /// The agreement as the sender sees it.
    params: DeflateParams,
    level: u32,
    min_size: usize,
    messages: Vec<(Payload, Vec<prop::sample::Index>, Option<Vec<u8>>)>,
    key_seed: u64,
}

fn compressed_stream() -> impl Strategy<Value = CompressedStream> {
    (
        deflate_params(),
        0u32..=9,
        // 0 compresses empty messages too (see
        // `consecutive_empty_compressed_messages_round_trip`).
        prop_oneof![Just(0usize), Just(64), 0usize..200],
        proptest::collection::vec(
            (
                compressible_payload(),
                proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
                proptest::option::weighted(0.3, proptest::collection::vec(any::<u8>(), 0..8)),
            ),
            1..6,
        ),
        any::<u64>(),
    )
        .prop_map(
            |(params, level, min_size, messages, key_seed)| CompressedStream {
                params,
                level,
                min_size,
                messages,
                key_seed,
            },
        )
}

impl CompressedStream {
    /// The bytes towards a receiver of `role` (masked towards a server), the
    /// agreement as that receiver sees it, and the events it must report.
    fn encode(&self, receiver: Role) -> (Vec<u8>, DeflateParams, Vec<Event>) {
        let mut sender = Connection::new(Role::Server, Config::default());
        let sender_config = DeflateConfig::default()
            .level(self.level)
            .min_size(self.min_size);
        sender.enable_deflate(self.params, &sender_config);
        let mut keys = Keys(self.key_seed);
        let mut out = BytesMut::new();
        let mut events = Vec::new();
        let mut frame = |out: &mut BytesMut, opcode: OpCode, rsv: u8, fin: bool, payload: &[u8]| {
            let header = FrameHeader {
                fin,
                rsv,
                mask: (receiver == Role::Server).then(|| keys.next()),
                ..FrameHeader::new(opcode, 0)
            };
            encode_frame(out, header, payload);
        };
        for (payload, cuts, ping) in &self.messages {
            let message = match payload {
                Payload::Text(text) => Message::Text(text.clone().into()),
                Payload::Binary(bytes) => Message::Binary(bytes.clone().into()),
            };
            sender.queue(message.clone()).unwrap();
            let wire = sender.take_outbound();
            let (header, header_len) = FrameHeader::decode(&wire).unwrap().unwrap();
            let body = &wire[header_len..];
            assert_eq!(
                body.len() as u64,
                header.payload_len,
                "one frame per message"
            );
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(body.len() + 1)).collect();
            cuts.sort_unstable();
            let mut start = 0;
            for (i, &cut) in cuts.iter().enumerate() {
                let (opcode, rsv) = if i == 0 {
                    (header.opcode, header.rsv)
                } else {
                    (OpCode::Continuation, 0)
                };
                frame(&mut out, opcode, rsv, false, &body[start..cut]);
                start = cut;
                if let (0, Some(ping)) = (i, ping) {
                    frame(&mut out, OpCode::Ping, 0, true, ping);
                    events.push(Event::Ping(ping.clone().into()));
                }
            }
            let (opcode, rsv) = if cuts.is_empty() {
                (header.opcode, header.rsv)
            } else {
                (OpCode::Continuation, 0)
            };
            frame(&mut out, opcode, rsv, true, &body[start..]);
            events.push(match message {
                Message::Text(text) => Event::Text(text),
                Message::Binary(bytes) => Event::Binary(bytes),
                other => unreachable!("only text and binary messages exist: {other:?}"),
            });
        }
        let params = match receiver {
            Role::Server => mirrored(self.params),
            Role::Client => self.params,
        };
        (out.to_vec(), params, events)
    }
}

/// A valid stream of either kind, for damaging.
#[derive(Debug, Clone)]
enum Source {
    Plain(ValidStream),
    Compressed(CompressedStream),
}

impl Source {
    fn encode(&self, receiver: Role) -> (Vec<u8>, Option<DeflateParams>) {
        match self {
            Self::Plain(stream) => (stream.encode(receiver), None),
            Self::Compressed(stream) => {
                let (bytes, params, _) = stream.encode(receiver);
                (bytes, Some(params))
            }
        }
    }
}

// ---- properties ----

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Valid message streams, encoded as the peer would, come out as the
    /// messages (reassembled) with the control frames in order, and every
    /// ping is answered by its pong. Having deflate on changes nothing for
    /// uncompressed messages.
    #[test]
    fn valid_streams_round_trip(
        stream in valid_stream(),
        role in any_role(),
        deflate in proptest::option::of(deflate_params()),
    ) {
        let bytes = stream.encode(role);
        let outcome = run(role, Config::default(), deflate, &bytes, &[usize::MAX]);
        prop_assert_eq!(outcome.error, None);
        prop_assert_eq!(&outcome.events, &stream.expected_events());
        let pings: Vec<Vec<u8>> = outcome.events.iter().filter_map(|e| match e {
            Event::Ping(p) => Some(p.to_vec()),
            _ => None,
        }).collect();
        let pongs: Vec<Vec<u8>> = outcome.sent.iter()
            .filter(|(opcode, _)| *opcode == OpCode::Pong)
            .map(|(_, p)| p.clone())
            .collect();
        prop_assert_eq!(pongs, pings);
    }

    /// Reading a valid stream in pieces of any sizes, one byte at a time
    /// included, gives the same events and the same output as one read.
    #[test]
    fn valid_streams_split_anywhere_give_the_same_events(
        stream in valid_stream(),
        role in any_role(),
        sizes in read_sizes(),
    ) {
        let bytes = stream.encode(role);
        let whole = run(role, Config::default(), None, &bytes, &[usize::MAX]);
        let pieces = run(role, Config::default(), None, &bytes, &sizes);
        prop_assert_eq!(&pieces, &whole);
        if bytes.len() < 4096 {
            let bytewise = run(role, Config::default(), None, &bytes, &[1]);
            prop_assert_eq!(&bytewise, &whole);
        }
        prop_assert_eq!(&whole.events, &stream.expected_events());
    }

    /// permessage-deflate: messages compressed by this crate, under any
    /// agreement (window sizes, context takeover) and level, fragmented
    /// after compression and read in any pieces, come out as sent.
    #[test]
    fn compressed_streams_round_trip_split_anywhere(
        stream in compressed_stream(),
        role in any_role(),
        sizes in read_sizes(),
    ) {
        let (bytes, params, expected) = stream.encode(role);
        let whole = run(role, Config::default(), Some(params), &bytes, &[usize::MAX]);
        prop_assert_eq!(whole.error, None);
        prop_assert_eq!(&whole.events, &expected);
        let pieces = run(role, Config::default(), Some(params), &bytes, &sizes);
        prop_assert_eq!(&pieces, &whole);
    }

    /// Whatever each side is configured with, the server's answer to our
    /// client's offer is accepted by that client, and both ends agree on
    /// every parameter.
    #[test]
    fn our_client_and_server_agree_on_deflate(
        client_bits in 8u8..=15,
        client_no_context_takeover: bool,
        server_bits in 8u8..=15,
        server_no_context_takeover: bool,
    ) {
        let client = DeflateConfig::default().window_bits(client_bits).no_context_takeover(client_no_context_takeover);
        let server = DeflateConfig::default().window_bits(server_bits).no_context_takeover(server_no_context_takeover);
        let offer = client_offer(&client);
        let agreed = negotiate_server(std::slice::from_ref(&offer), &server);
        prop_assert!(agreed.is_some(), "server declined {:?}", offer);
        let agreed = agreed.unwrap();
        let answer = agreed.to_header();
        prop_assert_eq!(negotiate_client(&answer, &client), Ok(agreed), "answer {:?}", answer);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any bytes at all, on either side, in any reads, with or without
    /// deflate: no panic, nothing after an error, well-formed output with at
    /// most one close frame, and the same outcome as reading them at once
    /// (with deflate, up to the close code and reason).
    #[test]
    fn garbage_never_breaks_a_connection(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..512),
            frame_soup(),
        ],
        role in any_role(),
        config in any_config(),
        deflate in proptest::option::of(deflate_params()),
        sizes in read_sizes(),
    ) {
        let pieces = run(role, config.clone(), deflate, &bytes, &sizes);
        let whole = run(role, config, deflate, &bytes, &[usize::MAX]);
        if deflate.is_some() {
            prop_assert_eq!(pieces.as_seen_with_deflate(), whole.as_seen_with_deflate());
        } else {
            prop_assert_eq!(pieces, whole);
        }
    }

    /// A valid stream, plain or compressed, with one bit flipped or one byte
    /// replaced: the same guarantees as for garbage, and whatever arrived
    /// intact before the damage is still reported.
    #[test]
    fn damaged_streams_fail_cleanly(
        source in prop_oneof![
            valid_stream().prop_map(Source::Plain),
            compressed_stream().prop_map(Source::Compressed),
        ],
        role in any_role(),
        config in any_config(),
        position in any::<prop::sample::Index>(),
        damage in prop_oneof![
            (0u32..8).prop_map(|bit| (true, 1u8 << bit)),
            any::<u8>().prop_map(|byte| (false, byte)),
        ],
        sizes in read_sizes(),
    ) {
        let (mut bytes, deflate) = source.encode(role);
        prop_assume!(!bytes.is_empty());
        let at = position.index(bytes.len());
        let (flip, value) = damage;
        bytes[at] = if flip { bytes[at] ^ value } else { value };
        let pieces = run(role, config.clone(), deflate, &bytes, &sizes);
        let whole = run(role, config.clone(), deflate, &bytes, &[usize::MAX]);
        if deflate.is_some() {
            prop_assert_eq!(pieces.as_seen_with_deflate(), whole.as_seen_with_deflate());
        } else {
            prop_assert_eq!(&pieces, &whole);
        }
        // The frames wholly before the damage decode as in the intact stream.
        let intact = run(role, config, deflate, &bytes[..at], &[usize::MAX]);
        prop_assert!(
            whole.events.starts_with(&intact.events),
            "{:?} vs {:?}", whole.events, intact.events
        );
    }
}

// ---- examples: RFC 7692, and the bugs these properties found (now fixed) ----

/// A frame as a client sends it.
fn client_frame(opcode: OpCode, rsv: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        fin,
        rsv,
        mask: Some([0x37, 0xfa, 0x21, 0x3d]),
        ..FrameHeader::new(opcode, 0)
    };
    let mut out = BytesMut::new();
    encode_frame(&mut out, header, payload);
    out.to_vec()
}

/// RFC 7692 §7.2.3.1: "Hello" compressed.
const HELLO_DEFLATED: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

#[test]
fn compressed_hello_from_rfc_7692_is_received() {
    let mut server = Connection::new(Role::Server, Config::default());
    server.enable_deflate(DeflateParams::default(), &DeflateConfig::default());
    server.receive(&client_frame(OpCode::Text, 0b100, true, &HELLO_DEFLATED));
    assert_eq!(
        server.next_event().unwrap(),
        Some(Event::Text("Hello".into()))
    );
}

#[test]
fn compressed_frame_arriving_after_close_is_delivered() {
    let mut server = Connection::new(Role::Server, Config::default());
    server.enable_deflate(DeflateParams::default(), &DeflateConfig::default());
    let frame = client_frame(OpCode::Text, 0b100, true, &HELLO_DEFLATED);
    // The header and part of the payload are in when the application
    // starts the closing handshake.
    let (head, tail) = frame.split_at(frame.len() - 3);
    server.receive(head);
    assert!(matches!(server.next_event(), Ok(None)));
    server.close(CloseCode::NORMAL, "").unwrap();
    server.take_outbound();
    server.receive(tail);
    // The client sent it before it saw our close: it is delivered, and the
    // server still waits for the client's close.
    let event = server.next_event();
    assert_eq!(event.unwrap(), Some(Event::Text("Hello".into())));
    assert_eq!(server.state(), State::Closing);
    server.receive(&client_frame(
        OpCode::Close,
        0,
        true,
        &1000u16.to_be_bytes(),
    ));
    assert!(matches!(server.next_event(), Ok(Some(Event::Close(_)))));
}

/// A text message whose inflated content is invalid UTF-8 from its first
/// byte and also longer than the message limit, compressed by this crate.
fn compressed_text_invalid_from_the_start() -> Vec<u8> {
    let mut sender = Connection::new(Role::Server, Config::default());
    sender.enable_deflate(DeflateParams::default(), &DeflateConfig::default());
    let mut payload = vec![0xff];
    payload.extend_from_slice(&[b'a'; 300]);
    sender.queue(Message::Binary(payload.into())).unwrap();
    let mut frame = sender.take_outbound();
    assert_eq!(frame[0], 0xc2, "a compressed binary frame");
    frame[0] = 0xc1;
    frame
}

#[test]
fn compressed_text_violation_does_not_depend_on_read_boundaries() {
    let frame = compressed_text_invalid_from_the_start();
    let config = Config::default()
        .max_frame_size(1 << 20)
        .max_message_size(128);
    let params = Some(DeflateParams::default());
    let whole = run(Role::Client, config.clone(), params, &frame, &[usize::MAX]);
    let bytewise = run(Role::Client, config, params, &frame, &[1]);
    // The first violation in the message is its first byte: invalid UTF-8.
    assert_eq!(bytewise.error, Some(ProtocolError::InvalidUtf8));
    assert_eq!(whole.error, bytewise.error, "whole: {whole:?}");
}

#[test]
fn consecutive_empty_compressed_messages_round_trip() {
    let everything = DeflateConfig::default().min_size(0);
    let mut sender = Connection::new(Role::Server, Config::default());
    sender.enable_deflate(DeflateParams::default(), &everything);
    let mut receiver = Connection::new(Role::Client, Config::default());
    receiver.enable_deflate(DeflateParams::default(), &DeflateConfig::default());
    for i in 0..3 {
        sender.queue(Message::Text("".into())).unwrap();
        let frame = sender.take_outbound();
        // RFC 7692 §7.2.3.6: an empty message compresses to at least 0x00;
        // zlib emits nothing for a second sync flush without input.
        assert!(frame.len() > 2, "message {i} went out as {frame:02x?}");
        receiver.receive(&frame);
        assert_eq!(receiver.next_event().unwrap(), Some(Event::Text("".into())));
    }
}

/// Found by the `frames` fuzz target: "Hello" compressed (a stored block,
/// context kept), then a compressed binary frame, cut short, whose data
/// copies from the window past the 128-byte message limit and is also
/// invalid deflate.
const OVERSIZED_AND_INVALID: [u8; 45] = [
    0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00, 0xc2, 0x34, 0x2b,
    0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0xa3, 0xff, 0xff, 0xff, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c,
    0x6c, 0x6f, 0x00, 0xc2, 0x34, 0x2b, 0xff, 0xff, 0x88, 0x02, 0x03, 0xe9, 0xff,
];

#[test]
fn oversized_and_invalid_compressed_message_fails_the_same_whatever_the_reads() {
    let config = Config::default().max_frame_size(64).max_message_size(128);
    let params = Some(DeflateParams::default());
    let whole = run(
        Role::Client,
        config.clone(),
        params,
        &OVERSIZED_AND_INVALID,
        &[usize::MAX],
    );
    assert_eq!(whole.events, vec![Event::Text("Hello".into())]);
    for size in [1, 2, 3] {
        let pieces = run(
            Role::Client,
            config.clone(),
            params,
            &OVERSIZED_AND_INVALID,
            &[size],
        );
        assert_eq!(
            pieces.error.map(|e| e.close_code()),
            whole.error.map(|e| e.close_code()),
            "reads of {size}: {:?}, whole: {:?}",
            pieces.error,
            whole.error
        );
    }
}

// ---- our close while the peer is mid-frame ----
//
// We may start the closing handshake at any moment: on shutdown, on an idle
// timeout, on the user's `/close`. The peer's frames keep arriving until it
// has read our close, and a data frame can be half received when we send it.
// Whatever the cut, the connection must read the rest of the stream frame by
// frame and end with the peer's close, never with a protocol error.

/// The peer's side of a connection we close: a valid stream (plain or
/// compressed) that ends with the peer's close frame.
fn stream_ending_in_close() -> impl Strategy<Value = Source> {
    prop_oneof![
        (
            valid_stream(),
            proptest::option::of((sendable_code(), ".{0,20}"))
        )
            .prop_map(|(mut stream, code)| {
                stream.close = Some(code);
                Source::Plain(stream)
            }),
        compressed_stream().prop_map(Source::Compressed),
    ]
}

impl Source {
    /// The bytes towards a `receiver` (a compressed stream gets a close frame
    /// with code 1000 appended), the deflate agreement as the receiver sees
    /// it, and the events it must report if it does not close first.
    fn encode_with_close(&self, receiver: Role) -> (Vec<u8>, Option<DeflateParams>, Vec<Event>) {
        match self {
            Self::Plain(stream) => (stream.encode(receiver), None, stream.expected_events()),
            Self::Compressed(stream) => {
                let (mut bytes, params, mut events) = stream.encode(receiver);
                let header = FrameHeader {
                    mask: (receiver == Role::Server).then_some([9, 8, 7, 6]),
                    ..FrameHeader::new(OpCode::Close, 0)
                };
                let mut close = BytesMut::new();
                encode_frame(&mut close, header, &1000u16.to_be_bytes());
                bytes.extend_from_slice(&close);
                events.push(Event::Close(Some(CloseFrame::new(CloseCode::NORMAL, ""))));
                (bytes, Some(params), events)
            }
        }
    }
}

/// A connection of `role` with deflate enabled as agreed.
fn connection(role: Role, deflate: Option<DeflateParams>) -> Connection {
    let mut conn = Connection::new(role, Config::default());
    if let Some(params) = deflate {
        conn.enable_deflate(params, &DeflateConfig::default());
    }
    conn
}

/// Checks what a connection we closed reported and wrote: no error, the
/// peer's close last, every control frame of the stream, every data message
/// of it (those that arrive after our close are delivered too), and on the wire
/// pongs followed by exactly one close frame: ours (1000), or the echo of
/// the peer's when its close came first.
fn check_closed_midway(
    events: &[Event],
    expected: &[Event],
    wire: &[u8],
    role: Role,
) -> Result<(), TestCaseError> {
    let is_data = |event: &&Event| matches!(event, Event::Text(_) | Event::Binary(_));
    prop_assert_eq!(events.last(), expected.last(), "ends with the peer's close");
    let control: Vec<&Event> = events.iter().filter(|e| !is_data(e)).collect();
    let expected_control: Vec<&Event> = expected.iter().filter(|e| !is_data(e)).collect();
    prop_assert_eq!(control, expected_control);
    let data: Vec<&Event> = events.iter().filter(is_data).collect();
    let expected_data: Vec<&Event> = expected.iter().filter(is_data).collect();
    prop_assert_eq!(data, expected_data, "every data message is delivered");
    let sent = parse_wire(wire, role);
    let (last, replies) = sent.split_last().expect("a close frame was written");
    // Ours, or the echo of the peer's if it closed before we did.
    let echo = match expected.last() {
        Some(Event::Close(Some(frame))) => frame.code.0.to_be_bytes().to_vec(),
        _ => Vec::new(),
    };
    let ours = 1000u16.to_be_bytes().to_vec();
    prop_assert!(
        last.0 == OpCode::Close && (last.1 == ours || last.1 == echo),
        "last frame written: {:?}",
        last
    );
    prop_assert!(
        replies.iter().all(|(opcode, _)| *opcode == OpCode::Pong),
        "{:?}",
        sent
    );
    Ok(())
}

/// Feeds `bytes` in reads of `sizes` and sends our close once `close_at`
/// bytes are in (and their events taken out), as an adapter does; returns
/// the events, the first error and everything written.
fn run_closing_at(
    conn: &mut Connection,
    bytes: &[u8],
    sizes: &[usize],
    close_at: usize,
) -> (Vec<Event>, Option<Error>, Vec<u8>) {
    let mut events = Vec::new();
    let mut wire = Vec::new();
    let mut fed = 0;
    let mut sizes = sizes.iter().cycle();
    loop {
        loop {
            match conn.next_event() {
                Ok(Some(event)) => events.push(event),
                Ok(None) => break,
                Err(error) => return (events, Some(error), conn.take_outbound()),
            }
            wire.extend(conn.take_outbound());
        }
        wire.extend(conn.take_outbound());
        if fed == close_at {
            conn.close(CloseCode::NORMAL, "").unwrap();
            wire.extend(conn.take_outbound());
        }
        if fed == bytes.len() || conn.state() == State::Closed {
            break;
        }
        // Reads end at the close point, so that the close comes after
        // exactly `close_at` bytes.
        let limit = if fed < close_at {
            close_at
        } else {
            bytes.len()
        };
        let size = (*sizes.next().unwrap()).clamp(1, limit - fed);
        conn.receive(&bytes[fed..fed + size]);
        fed += size;
    }
    (events, None, wire)
}

/// A transport in memory for the adapters: hands out `input` in reads of
/// the given sizes, says "would block" once when `pause_at` bytes have been
/// read (the moment the test closes), and keeps what is written.
struct Scripted {
    input: Vec<u8>,
    read: usize,
    sizes: Vec<usize>,
    reads: usize,
    pause_at: Option<usize>,
    written: Vec<u8>,
}

impl Scripted {
    fn new(input: Vec<u8>, sizes: Vec<usize>, pause_at: usize) -> Self {
        Self {
            input,
            read: 0,
            sizes,
            reads: 0,
            pause_at: Some(pause_at),
            written: Vec::new(),
        }
    }

    /// The next read, or `None` to pause.
    fn next_read(&mut self, room: usize) -> Option<&[u8]> {
        if self.pause_at == Some(self.read) {
            self.pause_at = None;
            return None;
        }
        let end = match self.pause_at {
            Some(pause) if pause > self.read => pause,
            _ => self.input.len(),
        };
        let size = self.sizes[self.reads % self.sizes.len()].clamp(1, room.max(1));
        self.reads += 1;
        let start = self.read;
        self.read = (start + size).min(end);
        Some(&self.input[start..self.read])
    }
}

impl std::io::Read for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(chunk) = self.next_read(buf.len()) else {
            return Err(std::io::ErrorKind::WouldBlock.into());
        };
        buf[..chunk.len()].copy_from_slice(chunk);
        Ok(chunk.len())
    }
}

impl std::io::Write for Scripted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The same transport for tokio: the pause is a `Pending` read, and the
/// test learns of it through `paused`, as a timer or a shutdown signal
/// would interrupt a `recv` that waits.
struct AsyncScripted {
    inner: Scripted,
    paused: std::sync::Arc<tokio::sync::Notify>,
}

impl tokio::io::AsyncRead for AsyncScripted {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let room = buf.remaining();
        match self.inner.next_read(room) {
            Some(chunk) => {
                buf.put_slice(chunk);
                std::task::Poll::Ready(Ok(()))
            }
            None => {
                // No waker is kept: the `recv` waiting here is dropped by
                // the test's `select!`, and the next one reads on.
                self.paused.notify_one();
                std::task::Poll::Pending
            }
        }
    }
}

impl tokio::io::AsyncWrite for AsyncScripted {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.inner.written.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// An adapter run over a scripted peer that closes when it pauses:
/// (role, deflate, peer's bytes, read sizes, close point) -> (events, the
/// end of the receive loop, what was written).
type AdapterRun = fn(
    Role,
    Option<DeflateParams>,
    Vec<u8>,
    Vec<usize>,
    usize,
) -> (Vec<Event>, Result<(), Error>, Vec<u8>);

/// The adapters' property: `run` over `source`, closing after the prefix
/// `close_at` picks, ends without an error, as [`check_closed_midway`] says.
fn adapter_closes_midway(
    run: AdapterRun,
    source: &Source,
    role: Role,
    sizes: Vec<usize>,
    close_at: prop::sample::Index,
) -> Result<(), TestCaseError> {
    let (bytes, deflate, expected) = source.encode_with_close(role);
    let close_at = close_at.index(bytes.len() + 1);
    let (events, result, wire) = run(role, deflate, bytes, sizes, close_at);
    prop_assert!(result.is_ok(), "{:?} after {:?}", result, events);
    check_closed_midway(&events, &expected, &wire, role)
}

/// Runs the blocking adapter over a scripted peer; closes when it pauses.
fn blocking_closing_at(
    role: Role,
    deflate: Option<DeflateParams>,
    bytes: Vec<u8>,
    sizes: Vec<usize>,
    close_at: usize,
) -> (Vec<Event>, Result<(), Error>, Vec<u8>) {
    let transport = Scripted::new(bytes, sizes, close_at);
    let mut socket =
        ws_core::blocking::WebSocket::from_connection(transport, connection(role, deflate));
    let mut events = Vec::new();
    let result = loop {
        match socket.recv() {
            Ok(Some(event)) => events.push(event),
            Ok(None) => break Ok(()),
            Err(Error::Io(error)) if error.kind() == std::io::ErrorKind::WouldBlock => {
                if let Err(error) = socket.close(CloseCode::NORMAL, "") {
                    break Err(error);
                }
            }
            Err(error) => break Err(error),
        }
    };
    let (transport, _) = socket.into_parts();
    (events, result, transport.written)
}

/// Runs the tokio adapter over a scripted peer; closes when it pauses.
fn tokio_closing_at(
    role: Role,
    deflate: Option<DeflateParams>,
    bytes: Vec<u8>,
    sizes: Vec<usize>,
    close_at: usize,
) -> (Vec<Event>, Result<(), Error>, Vec<u8>) {
    let paused = std::sync::Arc::new(tokio::sync::Notify::new());
    let transport = AsyncScripted {
        inner: Scripted::new(bytes, sizes, close_at),
        paused: paused.clone(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let mut socket =
            ws_core::stream::WebSocket::from_connection(transport, connection(role, deflate));
        let mut events = Vec::new();
        let result = loop {
            tokio::select! {
                biased;
                event = socket.recv() => match event {
                    Ok(Some(event)) => events.push(event),
                    Ok(None) => break Ok(()),
                    Err(error) => break Err(error),
                },
                () = paused.notified() => {
                    if let Err(error) = socket.close(CloseCode::NORMAL, "").await {
                        break Err(error);
                    }
                }
            }
        };
        let (transport, _) = socket.into_parts();
        (events, result, transport.inner.written)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Our close after any prefix of a valid stream, read in any pieces:
    /// the rest is read frame by frame (data dropped, control frames seen)
    /// and the connection ends with the peer's close.
    #[test]
    fn our_close_at_any_point_ends_with_the_peers_close(
        source in stream_ending_in_close(),
        role in any_role(),
        sizes in read_sizes(),
        close_at in any::<prop::sample::Index>(),
    ) {
        let (bytes, deflate, expected) = source.encode_with_close(role);
        let close_at = close_at.index(bytes.len() + 1);
        let mut conn = connection(role, deflate);
        let (events, error, wire) = run_closing_at(&mut conn, &bytes, &sizes, close_at);
        prop_assert!(error.is_none(), "{:?} after {:?}", error, events);
        prop_assert_eq!(conn.state(), State::Closed);
        check_closed_midway(&events, &expected, &wire, role)?;
    }

    /// The same through the blocking adapter: the application closes when
    /// a read would block (a read timeout, say).
    #[test]
    fn blocking_adapter_closing_at_any_point_ends_with_the_peers_close(
        source in stream_ending_in_close(),
        role in any_role(),
        sizes in read_sizes(),
        close_at in any::<prop::sample::Index>(),
    ) {
        adapter_closes_midway(blocking_closing_at, &source, role, sizes, close_at)?;
    }

    /// The same through the tokio adapter: the application closes while a
    /// `recv` waits for the rest of a frame (a shutdown signal, say).
    #[test]
    fn tokio_adapter_closing_at_any_point_ends_with_the_peers_close(
        source in stream_ending_in_close(),
        role in any_role(),
        sizes in read_sizes(),
        close_at in any::<prop::sample::Index>(),
    ) {
        adapter_closes_midway(tokio_closing_at, &source, role, sizes, close_at)?;
    }
}

/// The case of the issue, small: a 64 KiB binary frame of which 20 KiB
/// are in when the client closes; then the rest, two more frames and the
/// server's close.
#[test]
fn close_while_a_large_frame_is_half_received_reads_on_to_the_peers_close() {
    let mut peer = Connection::new(Role::Server, Config::default());
    for _ in 0..3 {
        peer.queue_binary(&pattern(7, 64 * 1024)).unwrap();
    }
    peer.close(CloseCode::NORMAL, "bye").unwrap();
    let bytes = peer.take_outbound();
    let mut client = Connection::new(Role::Client, Config::default());
    let (events, error, wire) = run_closing_at(&mut client, &bytes, &[8192], 20 * 1024);
    assert!(error.is_none(), "{error:?}");
    let message = Event::Binary(pattern(7, 64 * 1024).into());
    assert_eq!(
        events,
        vec![
            message.clone(),
            message.clone(),
            message,
            Event::Close(Some(CloseFrame::new(CloseCode::NORMAL, "bye")))
        ]
    );
    assert_eq!(parse_wire(&wire, Role::Client).len(), 1);
    assert!(client.closed_cleanly());
}
