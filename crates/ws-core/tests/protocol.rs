//! The connection state machine against RFC 6455 §5–§7, one rule per test.
// Test helpers may panic: that is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use bytes::{Bytes, BytesMut};
use ws_core::low_level::{FrameHeader, encode_frame};
use ws_core::{
    CloseCode, CloseFrame, Config, Connection, Error, Event, Message, OpCode, ProtocolError, Role,
    State,
};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A frame as a client sends it (masked).
fn client_frame(opcode: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        fin,
        mask: Some(KEY),
        ..FrameHeader::new(opcode, 0)
    };
    let mut out = BytesMut::new();
    encode_frame(&mut out, header, payload);
    out.to_vec()
}

/// A frame as a server sends it (unmasked).
fn server_frame(opcode: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        fin,
        ..FrameHeader::new(opcode, 0)
    };
    let mut out = BytesMut::new();
    encode_frame(&mut out, header, payload);
    out.to_vec()
}

fn server() -> Connection {
    Connection::new(Role::Server, Config::default())
}

fn server_with_limits(max_frame_size: usize, max_message_size: usize) -> Connection {
    Connection::new(
        Role::Server,
        Config::default()
            .max_frame_size(max_frame_size)
            .max_message_size(max_message_size),
    )
}

/// Every event the bytes produce, stopping at the first error.
fn events(connection: &mut Connection, bytes: &[u8]) -> Result<Vec<Event>, Error> {
    connection.receive(bytes);
    let mut events = Vec::new();
    while let Some(event) = connection.next_event()? {
        events.push(event);
    }
    Ok(events)
}

/// Decodes the server's (unmasked) output into (opcode, payload) pairs.
fn frames_sent(connection: &mut Connection) -> Vec<(OpCode, Vec<u8>)> {
    let bytes = connection.take_outbound();
    let mut rest = &bytes[..];
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let (header, len) = FrameHeader::decode(rest).unwrap().unwrap();
        let end = len + header.payload_len as usize;
        let mut payload = rest[len..end].to_vec();
        if let Some(key) = header.mask {
            ws_core::low_level::apply_mask(&mut payload, key, 0);
        }
        frames.push((header.opcode, payload));
        rest = &rest[end..];
    }
    frames
}

fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    payload
}

/// Asserts the connection failed with `expected` and queued a close frame
/// carrying its code.
fn assert_failed_with(
    connection: &mut Connection,
    result: Result<Vec<Event>, Error>,
    expected: ProtocolError,
) {
    match result {
        Err(Error::Protocol(error)) => assert_eq!(error, expected),
        other => panic!("expected {expected:?}, got {other:?}"),
    }
    assert_eq!(connection.state(), State::Closed);
    let sent = frames_sent(connection);
    assert_eq!(sent.len(), 1, "exactly one close frame: {sent:?}");
    let (opcode, payload) = &sent[0];
    assert_eq!(*opcode, OpCode::Close);
    let code = u16::from_be_bytes([payload[0], payload[1]]);
    assert_eq!(code, expected.close_code().0);
}

// ---- §5.2, §5.7: framing ----

#[test]
fn rfc_unmasked_hello_is_a_text_event_for_a_client() {
    let mut client = Connection::new(Role::Client, Config::default());
    let got = events(&mut client, &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]).unwrap();
    assert_eq!(got, [Event::Text("Hello".into())]);
}

#[test]
fn rfc_masked_hello_is_a_text_event_for_a_server() {
    let bytes = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    assert_eq!(
        events(&mut server(), &bytes).unwrap(),
        [Event::Text("Hello".into())]
    );
}

#[test]
fn rfc_fragmented_hello_is_one_message() {
    let mut client = Connection::new(Role::Client, Config::default());
    let bytes = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
    assert_eq!(
        events(&mut client, &bytes).unwrap(),
        [Event::Text("Hello".into())]
    );
}

#[test]
fn rfc_ping_is_answered_with_masked_pong_by_a_client() {
    let mut client = Connection::new(Role::Client, Config::default());
    let got = events(&mut client, &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]).unwrap();
    assert_eq!(got, [Event::Ping("Hello".as_bytes().into())]);
    let pong = client.take_outbound();
    assert_eq!(&pong[..2], [0x8a, 0x85], "masked pong of 5 bytes");
    let mut payload = pong[6..].to_vec();
    ws_core::low_level::apply_mask(&mut payload, pong[2..6].try_into().unwrap(), 0);
    assert_eq!(payload, b"Hello");
}

#[test]
fn server_rejects_unmasked_frame() {
    let mut connection = server();
    let result = events(&mut connection, &server_frame(OpCode::Text, true, b"hi"));
    assert_failed_with(&mut connection, result, ProtocolError::UnmaskedFrame);
}

#[test]
fn client_rejects_masked_frame() {
    let mut connection = Connection::new(Role::Client, Config::default());
    let result = events(&mut connection, &client_frame(OpCode::Text, true, b"hi"));
    match result {
        Err(Error::Protocol(ProtocolError::MaskedFrame)) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(connection.state(), State::Closed);
}

#[test]
fn rejects_reserved_bits_without_a_negotiated_extension() {
    for rsv in [0b100u8, 0b010, 0b001] {
        let mut connection = server();
        let mut frame = client_frame(OpCode::Text, true, b"x");
        frame[0] |= rsv << 4;
        let result = events(&mut connection, &frame);
        assert_failed_with(&mut connection, result, ProtocolError::ReservedBits(rsv));
    }
}

#[test]
fn rejects_reserved_opcode_with_1002() {
    let mut connection = server();
    let mut frame = client_frame(OpCode::Binary, true, b"x");
    frame[0] = 0x83;
    let result = events(&mut connection, &frame);
    assert_failed_with(&mut connection, result, ProtocolError::ReservedOpcode(3));
}

#[test]
fn rejects_fragmented_ping() {
    let mut connection = server();
    let result = events(&mut connection, &client_frame(OpCode::Ping, false, b"x"));
    assert_failed_with(
        &mut connection,
        result,
        ProtocolError::FragmentedControlFrame,
    );
}

#[test]
fn rejects_control_frame_longer_than_125_bytes() {
    let mut connection = server();
    let result = events(
        &mut connection,
        &client_frame(OpCode::Ping, true, &[0; 126]),
    );
    assert_failed_with(
        &mut connection,
        result,
        ProtocolError::ControlFrameTooLong(126),
    );
}

#[test]
fn rejects_64_bit_length_with_the_top_bit_set() {
    let mut connection = server();
    let bytes = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
    let result = events(&mut connection, &bytes);
    assert_failed_with(&mut connection, result, ProtocolError::LengthOverflow);
}

// ---- §5.4: fragmentation ----

#[test]
fn reassembles_fragmented_message_with_control_frames_interleaved() {
    let mut connection = server();
    let mut bytes = client_frame(OpCode::Binary, false, b"one ");
    bytes.extend(client_frame(OpCode::Ping, true, b"p"));
    bytes.extend(client_frame(OpCode::Continuation, false, b"two "));
    bytes.extend(client_frame(OpCode::Pong, true, b"q"));
    bytes.extend(client_frame(OpCode::Continuation, true, b"three"));
    let got = events(&mut connection, &bytes).unwrap();
    assert_eq!(
        got,
        [
            Event::Ping("p".as_bytes().into()),
            Event::Pong("q".as_bytes().into()),
            Event::Binary("one two three".as_bytes().into()),
        ]
    );
    assert_eq!(
        frames_sent(&mut connection),
        [(OpCode::Pong, b"p".to_vec())]
    );
}

#[test]
fn continuation_with_nothing_to_continue_is_protocol_error() {
    let mut connection = server();
    let result = events(
        &mut connection,
        &client_frame(OpCode::Continuation, true, b"x"),
    );
    assert_failed_with(
        &mut connection,
        result,
        ProtocolError::UnexpectedContinuation,
    );
}

#[test]
fn new_data_frame_inside_fragmented_message_is_protocol_error() {
    let mut connection = server();
    let mut bytes = client_frame(OpCode::Text, false, b"a");
    bytes.extend(client_frame(OpCode::Binary, true, b"b"));
    let result = events(&mut connection, &bytes);
    assert_failed_with(&mut connection, result, ProtocolError::ExpectedContinuation);
}

#[test]
fn empty_fragments_make_an_empty_message() {
    let mut connection = server();
    let mut bytes = client_frame(OpCode::Text, false, b"");
    bytes.extend(client_frame(OpCode::Continuation, true, b""));
    assert_eq!(
        events(&mut connection, &bytes).unwrap(),
        [Event::Text("".into())]
    );
}

// ---- §8.1: UTF-8 ----

#[test]
fn invalid_utf8_fails_before_message_end() {
    let mut connection = server();
    let mut bytes = client_frame(OpCode::Text, false, "κόσμε".as_bytes());
    bytes.extend(client_frame(OpCode::Continuation, false, b"\xed\xa0\x80"));
    // No final fragment: the error must come from what is known already.
    let result = events(&mut connection, &bytes);
    assert_failed_with(&mut connection, result, ProtocolError::InvalidUtf8);
}

#[test]
fn invalid_utf8_fails_inside_a_partly_arrived_frame() {
    let mut connection = server();
    let mut payload = b"valid start ".to_vec();
    payload.push(0xff);
    payload.extend(std::iter::repeat_n(b'x', 10_000));
    let frame = client_frame(OpCode::Text, true, &payload);
    // Header (8 bytes) plus the payload up to and including the bad byte.
    let cut = 8 + 13;
    connection.receive(&frame[..cut - 1]);
    assert_eq!(connection.next_event().unwrap(), None);
    let result = events(&mut connection, &frame[cut - 1..cut]);
    assert_failed_with(&mut connection, result, ProtocolError::InvalidUtf8);
}

#[test]
fn text_message_ending_inside_a_code_point_is_invalid() {
    let mut connection = server();
    let result = events(
        &mut connection,
        &client_frame(OpCode::Text, true, b"caf\xc3"),
    );
    assert_failed_with(&mut connection, result, ProtocolError::InvalidUtf8);
}

#[test]
fn overlong_surrogate_and_too_large_code_points_are_invalid() {
    for bad in [
        &b"\xc0\xaf"[..],
        b"\xe0\x80\xaf",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
    ] {
        let mut connection = server();
        let result = events(&mut connection, &client_frame(OpCode::Text, true, bad));
        assert_failed_with(&mut connection, result, ProtocolError::InvalidUtf8);
    }
}

#[test]
fn binary_messages_are_not_validated_as_utf8() {
    let got = events(
        &mut server(),
        &client_frame(OpCode::Binary, true, b"\xff\xfe"),
    )
    .unwrap();
    assert_eq!(got, [Event::Binary(b"\xff\xfe"[..].to_vec().into())]);
}

// ---- limits ----

#[test]
fn frame_over_the_limit_fails_with_1009_from_its_header_alone() {
    let mut connection = server_with_limits(1024, 1 << 20);
    let frame = client_frame(OpCode::Binary, true, &[0; 1025]);
    let result = events(&mut connection, &frame[..8]);
    assert_failed_with(
        &mut connection,
        result,
        ProtocolError::FrameTooLarge {
            size: 1025,
            limit: 1024,
        },
    );
}

#[test]
fn frame_announcing_2_pow_63_minus_1_bytes_fails_with_1009() {
    let mut connection = server();
    let mut bytes = vec![0x82, 0xFF];
    bytes.extend((i64::MAX as u64).to_be_bytes());
    bytes.extend(KEY);
    let result = events(&mut connection, &bytes);
    assert_failed_with(
        &mut connection,
        result,
        ProtocolError::FrameTooLarge {
            size: i64::MAX as u64,
            limit: 16 << 20,
        },
    );
    assert!(connection.buffered_capacity() < 64 * 1024);
}

#[test]
fn message_of_exactly_the_limit_is_accepted() {
    let mut connection = server_with_limits(1000, 1000);
    let mut bytes = client_frame(OpCode::Binary, false, &[1; 600]);
    bytes.extend(client_frame(OpCode::Continuation, true, &[2; 400]));
    let got = events(&mut connection, &bytes).unwrap();
    assert!(matches!(&got[..], [Event::Binary(payload)] if payload.len() == 1000));
}

#[test]
fn a_whole_frame_already_received_is_held_to_both_limits() {
    // Whole frames in the buffer take a shorter path than frames that
    // arrive in pieces; the limits are the same.
    let frame = |len: usize| client_frame(OpCode::Binary, true, &vec![3; len]);
    let got = events(&mut server_with_limits(1000, 800), &frame(800)).unwrap();
    assert!(matches!(&got[..], [Event::Binary(payload)] if payload.len() == 800));

    let mut connection = server_with_limits(1000, 800);
    let result = events(&mut connection, &frame(801));
    assert_failed_with(
        &mut connection,
        result,
        ProtocolError::MessageTooLarge { limit: 800 },
    );

    let mut connection = server_with_limits(800, 1000);
    let result = events(&mut connection, &frame(801));
    assert_failed_with(
        &mut connection,
        result,
        ProtocolError::FrameTooLarge {
            size: 801,
            limit: 800,
        },
    );
}

#[test]
fn fragmented_message_over_the_limit_fails_with_1009_at_the_header() {
    let mut connection = server_with_limits(1000, 1000);
    let mut bytes = client_frame(OpCode::Binary, false, &[1; 600]);
    let second = client_frame(OpCode::Continuation, true, &[2; 401]);
    bytes.extend(&second[..8]);
    let result = events(&mut connection, &bytes);
    assert_failed_with(
        &mut connection,
        result,
        ProtocolError::MessageTooLarge { limit: 1000 },
    );
}

// ---- §5.5.2, §5.5.3: ping and pong ----

#[test]
fn ping_fed_while_the_user_sends_nothing_still_produces_a_pong_on_the_wire() {
    let mut connection = server();
    connection.receive(&client_frame(OpCode::Ping, true, b"are you there"));
    assert_eq!(
        connection.next_event().unwrap(),
        Some(Event::Ping("are you there".as_bytes().into()))
    );
    assert!(connection.reply_pending());
    assert_eq!(
        frames_sent(&mut connection),
        [(OpCode::Pong, b"are you there".to_vec())]
    );
}

#[test]
fn pong_goes_out_before_data_the_user_sends_next() {
    let mut connection = server();
    connection.receive(&client_frame(OpCode::Ping, true, b"1"));
    connection.next_event().unwrap();
    connection.queue_text("after").unwrap();
    assert_eq!(
        frames_sent(&mut connection),
        [
            (OpCode::Pong, b"1".to_vec()),
            (OpCode::Text, b"after".to_vec())
        ]
    );
}

#[test]
fn pongs_are_surfaced_and_not_answered() {
    let mut connection = server();
    let got = events(&mut connection, &client_frame(OpCode::Pong, true, b"beat")).unwrap();
    assert_eq!(got, [Event::Pong("beat".as_bytes().into())]);
    assert!(!connection.wants_write());
}

// ---- §5.5.1, §7: closing ----

#[test]
fn close_is_answered_once_with_the_same_code() {
    let mut connection = server();
    let got = events(
        &mut connection,
        &client_frame(OpCode::Close, true, &close_payload(4000, "bye")),
    )
    .unwrap();
    assert_eq!(
        got,
        [Event::Close(Some(CloseFrame::new(CloseCode(4000), "bye")))]
    );
    assert_eq!(connection.state(), State::Closed);
    assert_eq!(
        frames_sent(&mut connection),
        [(OpCode::Close, 4000u16.to_be_bytes().to_vec())]
    );
    connection.close(CloseCode::NORMAL, "").unwrap();
    assert!(!connection.wants_write(), "close is not sent twice");
}

#[test]
fn empty_close_is_answered_with_an_empty_close() {
    let mut connection = server();
    let got = events(&mut connection, &client_frame(OpCode::Close, true, b"")).unwrap();
    assert_eq!(got, [Event::Close(None)]);
    assert_eq!(frames_sent(&mut connection), [(OpCode::Close, vec![])]);
}

#[test]
fn close_code_1005_on_the_wire_is_protocol_error() {
    let mut connection = server();
    let result = events(
        &mut connection,
        &client_frame(OpCode::Close, true, &close_payload(1005, "")),
    );
    assert_failed_with(
        &mut connection,
        result,
        ProtocolError::InvalidCloseCode(1005),
    );
}

#[test]
fn close_with_one_byte_payload_is_protocol_error() {
    let mut connection = server();
    let result = events(&mut connection, &client_frame(OpCode::Close, true, &[3]));
    assert_failed_with(&mut connection, result, ProtocolError::CloseFrameTooShort);
}

#[test]
fn close_with_invalid_utf8_reason_is_1007() {
    let mut connection = server();
    let mut payload = close_payload(1000, "");
    payload.push(0xff);
    let result = events(
        &mut connection,
        &client_frame(OpCode::Close, true, &payload),
    );
    assert_failed_with(&mut connection, result, ProtocolError::InvalidCloseReason);
}

#[test]
fn after_we_sent_close_data_in_flight_is_delivered_until_the_reply() {
    let mut connection = server();
    connection.close(CloseCode::GOING_AWAY, "shutdown").unwrap();
    assert_eq!(connection.state(), State::Closing);
    let sent = frames_sent(&mut connection);
    assert_eq!(sent, [(OpCode::Close, close_payload(1001, "shutdown"))]);
    // The peer sent these before it saw our close: they are not lost.
    let mut bytes = client_frame(OpCode::Text, true, b"late");
    bytes.extend(client_frame(OpCode::Binary, false, b"frag"));
    bytes.extend(client_frame(OpCode::Continuation, true, b"ment"));
    bytes.extend(client_frame(OpCode::Close, true, &close_payload(1001, "")));
    let got = events(&mut connection, &bytes).unwrap();
    assert_eq!(
        got,
        [
            Event::Text("late".into()),
            Event::Binary(Bytes::from_static(b"fragment")),
            Event::Close(Some(CloseFrame::new(CloseCode::GOING_AWAY, "")))
        ]
    );
    assert_eq!(connection.state(), State::Closed);
    assert!(!connection.wants_write(), "our close is not sent twice");
}

#[test]
fn sending_after_close_is_refused() {
    let mut connection = server();
    connection.close(CloseCode::NORMAL, "").unwrap();
    assert!(matches!(connection.queue_text("x"), Err(Error::Closed)));
    assert!(matches!(connection.queue_ping(b""), Err(Error::Closed)));
}

#[test]
fn bytes_after_the_peers_close_are_ignored() {
    let mut connection = server();
    let mut bytes = client_frame(OpCode::Close, true, &close_payload(1000, ""));
    bytes.extend(client_frame(OpCode::Text, true, b"ignored"));
    let got = events(&mut connection, &bytes).unwrap();
    assert_eq!(got.len(), 1);
}

#[test]
fn a_close_answered_is_a_clean_close() {
    let mut connection = server();
    assert!(!connection.closed_cleanly());
    events(&mut connection, &client_frame(OpCode::Close, true, b"")).unwrap();
    assert!(connection.closed_cleanly());
}

#[test]
fn a_close_we_started_is_clean_only_once_answered() {
    let mut connection = server();
    connection.close(CloseCode::GOING_AWAY, "").unwrap();
    assert!(!connection.closed_cleanly());
    events(&mut connection, &client_frame(OpCode::Close, true, b"")).unwrap();
    assert!(connection.closed_cleanly());
}

#[test]
fn bytes_behind_the_close_or_a_failure_make_a_close_unclean() {
    let mut behind = server();
    let mut bytes = client_frame(OpCode::Close, true, b"");
    bytes.extend(client_frame(OpCode::Text, true, b"more"));
    events(&mut behind, &bytes).unwrap();
    assert!(!behind.closed_cleanly(), "the peer is still sending");

    let mut failed = server();
    let result = events(&mut failed, &client_frame(OpCode::Close, true, &[3]));
    assert!(result.is_err());
    assert!(!failed.closed_cleanly());
}

#[test]
fn unsendable_close_codes_and_long_reasons_are_refused() {
    let mut connection = server();
    assert!(matches!(
        connection.close(CloseCode::NO_STATUS, ""),
        Err(Error::InvalidUse(_))
    ));
    assert!(matches!(
        connection.close(CloseCode::NORMAL, &"x".repeat(124)),
        Err(Error::InvalidUse(_))
    ));
    assert!(!connection.wants_write());
    connection
        .close(CloseCode::NORMAL, &"x".repeat(123))
        .unwrap();
}

#[test]
fn end_of_transport_before_close_is_abnormal() {
    let mut connection = server();
    assert!(matches!(
        connection.receive_eof(),
        Err(Error::AbnormalClosure)
    ));
    let mut closed = server();
    events(&mut closed, &client_frame(OpCode::Close, true, b"")).unwrap();
    assert!(closed.receive_eof().is_ok());
}

#[test]
fn failing_after_a_close_was_sent_does_not_send_a_second_close() {
    let mut connection = server();
    connection.close(CloseCode::NORMAL, "").unwrap();
    connection.take_outbound();
    let result = events(
        &mut connection,
        &server_frame(OpCode::Text, true, b"unmasked"),
    );
    assert!(result.is_err());
    assert!(!connection.wants_write());
}

#[test]
fn after_we_sent_close_data_is_still_held_to_the_limits() {
    let mut connection = Connection::new(Role::Server, Config::default().max_message_size(8));
    connection.close(CloseCode::NORMAL, "").unwrap();
    connection.take_outbound();
    let result = events(
        &mut connection,
        &client_frame(OpCode::Binary, true, b"nine bytes"),
    );
    assert!(
        matches!(
            result,
            Err(Error::Protocol(ProtocolError::MessageTooLarge { limit: 8 }))
        ),
        "{result:?}"
    );
    assert_eq!(connection.state(), State::Closed);
    assert!(!connection.wants_write(), "no second close");

    let mut connection = server();
    connection.close(CloseCode::NORMAL, "").unwrap();
    connection.take_outbound();
    let result = events(&mut connection, &client_frame(OpCode::Text, true, b"\xff"));
    assert!(
        matches!(result, Err(Error::Protocol(ProtocolError::InvalidUtf8))),
        "{result:?}"
    );
}

// ---- sending ----

#[test]
fn server_sends_unmasked_minimal_frames() {
    let mut connection = server();
    connection.queue_text("Hello").unwrap();
    assert_eq!(
        connection.take_outbound(),
        [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
    );
}

#[test]
fn client_masks_every_frame_with_a_fresh_key() {
    let mut connection = Connection::new(Role::Client, Config::default());
    connection.queue_text("Hello").unwrap();
    connection.queue_text("Hello").unwrap();
    let bytes = connection.take_outbound();
    assert_eq!(bytes.len(), 22);
    assert_eq!(bytes[1], 0x85);
    let mut server = server();
    let got = events(&mut server, &bytes).unwrap();
    assert_eq!(
        got,
        [Event::Text("Hello".into()), Event::Text("Hello".into())]
    );
}

#[test]
fn owned_large_payload_is_echoed_without_a_copy() {
    let mut connection = server();
    let payload = bytes::Bytes::from(vec![9u8; 100_000]);
    connection.queue(Message::Binary(payload.clone())).unwrap();
    let outbound = connection.outbound();
    use bytes::Buf;
    let header = outbound.chunk().to_vec();
    assert_eq!(header.len(), 10);
    outbound.advance(10);
    assert_eq!(outbound.chunk().as_ptr(), payload.as_ptr());
}

#[test]
fn fragments_are_sent_in_sequence_and_checked() {
    let mut connection = server();
    assert!(
        connection
            .queue_fragment(OpCode::Continuation, b"x", true)
            .is_err()
    );
    connection
        .queue_fragment(OpCode::Text, "caf".as_bytes(), false)
        .unwrap();
    assert!(connection.queue_text("interleaved").is_err());
    connection.queue_ping(b"ok between fragments").unwrap();
    assert!(
        connection
            .queue_fragment(OpCode::Continuation, b"\xff", true)
            .is_err()
    );
    connection
        .queue_fragment(OpCode::Continuation, "é".as_bytes(), true)
        .unwrap();
    let sent = frames_sent(&mut connection);
    let opcodes: Vec<OpCode> = sent.iter().map(|(op, _)| *op).collect();
    assert_eq!(opcodes, [OpCode::Text, OpCode::Ping, OpCode::Continuation]);
}

// ---- memory ----

#[test]
fn read_buffer_shrinks_back_after_a_large_message() {
    let mut connection = server();
    let frame = client_frame(OpCode::Binary, true, &vec![7u8; 1 << 20]);
    let mut peak = 0;
    let mut received = 0;
    for chunk in frame.chunks(64 * 1024) {
        let buffer = connection.read_buffer();
        buffer.extend_from_slice(chunk);
        peak = peak.max(connection.buffered_capacity());
        while let Some(event) = connection.next_event().unwrap() {
            received += event.into_message().unwrap().len();
        }
    }
    assert_eq!(received, 1 << 20);
    assert!(peak >= 1 << 20, "the buffer grew to hold the frame: {peak}");
    connection.read_buffer();
    assert!(
        connection.buffered_capacity() <= 64 * 1024,
        "{}",
        connection.buffered_capacity()
    );
    connection.shrink_buffers();
    assert_eq!(connection.buffered_capacity(), 0);
}

#[test]
fn small_messages_share_a_read_buffer_until_half_its_room_is_used() {
    let mut connection = server();
    let frame = client_frame(OpCode::Binary, true, &[5; 100]);
    let mut reclaimed = 0;
    let mut expected_start = None;
    for _ in 0..60 {
        let buffer = connection.read_buffer();
        // Every read between frames has at least 2 KiB of room.
        assert!(buffer.capacity() - buffer.len() >= 2048);
        if expected_start.is_some_and(|start| start != buffer.as_ptr() as usize) {
            reclaimed += 1;
        }
        buffer.extend_from_slice(&frame);
        let start = buffer.as_ptr() as usize;
        let event = connection.next_event().unwrap();
        assert!(matches!(event, Some(Event::Binary(payload)) if payload.len() == 100));
        // The message was split off the front of the buffer.
        expected_start = Some(start + frame.len());
    }
    // The room the messages used is reclaimed about once per 19 of them
    // (2 KiB of a 4 KiB buffer), not before every read.
    assert!((1..=6).contains(&reclaimed), "reclaimed {reclaimed} times");
}

#[test]
fn a_large_frame_gets_room_for_its_rest_up_to_64_kib() {
    let mut connection = server();
    let frame = client_frame(OpCode::Binary, true, &vec![9; 200_000]);
    let (start, mut rest) = frame.split_at(10_000);
    connection.read_buffer().extend_from_slice(start);
    assert_eq!(connection.next_event().unwrap(), None);
    let buffer = connection.read_buffer();
    assert!(buffer.capacity() - buffer.len() >= 64 * 1024);
    while !rest.is_empty() {
        let buffer = connection.read_buffer();
        let room = buffer.capacity() - buffer.len();
        let (piece, left) = rest.split_at(room.min(rest.len()));
        // Room for the whole rest of the frame, or at least 64 KiB of it.
        assert!(
            room >= rest.len().min(64 * 1024),
            "room {room}, rest {}",
            rest.len()
        );
        buffer.extend_from_slice(piece);
        rest = left;
    }
    let event = connection.next_event().unwrap();
    assert!(matches!(event, Some(Event::Binary(payload)) if payload.len() == 200_000));
}

#[test]
fn idle_connection_cost() {
    let connection = server();
    let size = std::mem::size_of_val(&connection);
    assert_eq!(connection.buffered_capacity(), 0, "no buffer until traffic");
    // The figure the crate documentation quotes.
    assert!(size <= 256, "Connection is {size} bytes");
}
