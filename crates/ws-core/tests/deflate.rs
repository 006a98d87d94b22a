//! permessage-deflate on a connection (RFC 7692 §6–§7), one rule per test.

// Test helpers may panic: that is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use bytes::BytesMut;
use rand::{Rng, SeedableRng};
use ws_core::deflate::{DeflateConfig, DeflateParams};
use ws_core::low_level::{FrameHeader, encode_frame};
use ws_core::{Config, Connection, Error, Event, Message, OpCode, ProtocolError, Role, State};

fn with_deflate(role: Role, params: DeflateParams, config: DeflateConfig) -> Connection {
    let mut connection = Connection::new(role, Config::default());
    connection.enable_deflate(params, &config);
    connection
}

fn eager() -> DeflateConfig {
    DeflateConfig::default().min_size(0)
}

fn client() -> Connection {
    with_deflate(Role::Client, DeflateParams::default(), eager())
}

fn server() -> Connection {
    with_deflate(Role::Server, DeflateParams::default(), eager())
}

fn events(connection: &mut Connection, bytes: &[u8]) -> Result<Vec<Event>, Error> {
    connection.receive(bytes);
    let mut events = Vec::new();
    while let Some(event) = connection.next_event()? {
        events.push(event);
    }
    Ok(events)
}

fn masked_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        mask: Some([9, 8, 7, 6]),
        ..FrameHeader::new(OpCode::Binary, 0)
    };
    let mut out = BytesMut::new();
    encode_frame(&mut out, header, payload);
    out[0] = first_byte;
    out.to_vec()
}

fn hello() -> Vec<Event> {
    vec![Event::Text("Hello".into())]
}

fn close_code_sent(connection: &mut Connection) -> u16 {
    let out = connection.take_outbound();
    let (header, len) = FrameHeader::decode(&out).unwrap().unwrap();
    assert_eq!(header.opcode, OpCode::Close);
    u16::from_be_bytes([out[len], out[len + 1]])
}

// ---- RFC 7692 §7.2.3 examples, byte for byte ----

#[test]
fn rfc_compressed_hello() {
    assert_eq!(
        events(
            &mut client(),
            &[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
        )
        .unwrap(),
        hello()
    );
}

#[test]
fn rfc_hello_twice_with_context_takeover() {
    let mut client = client();
    let mut bytes = vec![0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    bytes.extend([0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00]);
    assert_eq!(
        events(&mut client, &bytes).unwrap(),
        [hello(), hello()].concat()
    );
}

#[test]
fn rfc_stored_block() {
    let bytes = [
        0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    assert_eq!(events(&mut client(), &bytes).unwrap(), hello());
}

#[test]
fn rfc_fragmented_compressed_message() {
    let bytes = [
        0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00,
    ];
    assert_eq!(events(&mut client(), &bytes).unwrap(), hello());
}

#[test]
fn rfc_block_with_bfinal_set() {
    let bytes = [0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    assert_eq!(events(&mut client(), &bytes).unwrap(), hello());
}

#[test]
fn rfc_two_deflate_blocks_in_one_message() {
    let bytes = [
        0xc1, 0x0d, 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
    ];
    assert_eq!(events(&mut client(), &bytes).unwrap(), hello());
}

#[test]
fn server_sends_the_rfc_bytes_for_hello() {
    let mut server = server();
    server.queue_text("Hello").unwrap();
    assert_eq!(
        server.take_outbound(),
        [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
    );
}

// ---- rules ----

#[test]
fn rsv1_on_a_continuation_frame_is_protocol_error() {
    let mut server = server();
    let mut bytes = masked_frame(0x01, b"abc");
    bytes.extend(masked_frame(0xC0, b"def"));
    let result = events(&mut server, &bytes);
    assert!(matches!(
        result,
        Err(Error::Protocol(ProtocolError::CompressedNonFirstFrame))
    ));
    assert_eq!(close_code_sent(&mut server), 1002);
}

#[test]
fn rsv1_on_a_control_frame_is_protocol_error() {
    let mut server = server();
    let result = events(&mut server, &masked_frame(0xC9, b""));
    assert!(matches!(
        result,
        Err(Error::Protocol(ProtocolError::CompressedNonFirstFrame))
    ));
    assert_eq!(close_code_sent(&mut server), 1002);
}

#[test]
fn rsv1_without_deflate_is_protocol_error() {
    let mut plain = Connection::new(Role::Server, Config::default());
    let result = events(
        &mut plain,
        &masked_frame(0xC1, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]),
    );
    assert!(matches!(
        result,
        Err(Error::Protocol(ProtocolError::ReservedBits(0b100)))
    ));
    assert_eq!(close_code_sent(&mut plain), 1002);
}

#[test]
fn corrupt_deflate_stream_is_1007() {
    let mut server = server();
    let result = events(&mut server, &masked_frame(0xC2, &[0xff; 16]));
    assert!(matches!(
        result,
        Err(Error::Protocol(ProtocolError::InvalidCompressedData))
    ));
    assert_eq!(close_code_sent(&mut server), 1007);
}

#[test]
fn compressed_text_with_invalid_utf8_is_1007() {
    let mut sender = with_deflate(Role::Client, DeflateParams::default(), eager());
    // Compress invalid UTF-8 as if it were text: send it as binary, then flip the opcode.
    sender.queue_binary(b"caf\xc3\x28 and more bytes").unwrap();
    let mut bytes = sender.take_outbound();
    bytes[0] = 0xC1;
    let mut server = server();
    let result = events(&mut server, &bytes);
    assert!(matches!(
        result,
        Err(Error::Protocol(ProtocolError::InvalidUtf8))
    ));
    assert_eq!(close_code_sent(&mut server), 1007);
}

#[test]
fn decompression_bomb_ends_with_1009_within_the_limit() {
    let bomb_config = DeflateConfig::default().level(9).min_size(0);
    let mut attacker = with_deflate(Role::Client, DeflateParams::default(), bomb_config);
    attacker.queue_binary(&vec![0u8; 64 << 20]).unwrap();
    let bomb = attacker.take_outbound();
    assert!(
        bomb.len() < 128 * 1024,
        "a small frame: {} bytes",
        bomb.len()
    );
    let limit = 1 << 20;
    let mut server = Connection::new(
        Role::Server,
        Config::default()
            .max_frame_size(limit)
            .max_message_size(limit),
    );
    server.enable_deflate(DeflateParams::default(), &eager());
    let mut peak = 0;
    let mut result = Ok(None);
    for chunk in bomb.chunks(1024) {
        server.receive(chunk);
        result = server.next_event();
        peak = peak.max(server.buffered_capacity());
        if result.is_err() {
            break;
        }
    }
    assert!(
        matches!(
            result,
            Err(Error::Protocol(ProtocolError::MessageTooLarge { .. }))
        ),
        "{result:?}"
    );
    assert!(peak <= limit + 64 * 1024, "peak buffered {peak}");
    assert_eq!(close_code_sent(&mut server), 1009);
    assert_eq!(server.state(), State::Closed);
}

#[test]
fn small_messages_go_out_uncompressed() {
    let mut server = with_deflate(
        Role::Server,
        DeflateParams::default(),
        DeflateConfig::default(),
    );
    server.queue_text("tiny").unwrap();
    assert_eq!(server.take_outbound(), [0x81, 0x04, b't', b'i', b'n', b'y']);
}

#[test]
fn control_frames_are_never_compressed() {
    let mut server = server();
    server
        .queue_ping(b"a ping payload that would compress well well well well")
        .unwrap();
    assert_eq!(server.take_outbound()[0], 0x89);
}

#[test]
fn round_trips_random_messages_at_every_window_size_with_and_without_context_takeover() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7692);
    for bits in 9..=15u8 {
        for no_takeover in [false, true] {
            let params = DeflateParams::default()
                .server_no_context_takeover(no_takeover)
                .client_no_context_takeover(no_takeover)
                .server_max_window_bits(bits)
                .client_max_window_bits(bits);
            let mut client = with_deflate(Role::Client, params, eager());
            let mut server = with_deflate(Role::Server, params, eager());
            for round in 0..20 {
                let len = rng.random_range(0..5000);
                let message = if round % 2 == 0 {
                    let words = ["alpha", "beta", "{\"key\":", "42}", "ωμέγα", " "];
                    let mut text = String::new();
                    while text.len() < len {
                        text.push_str(words[rng.random_range(0..words.len())]);
                    }
                    Message::Text(text.into())
                } else {
                    let mut bytes = vec![0u8; len];
                    rng.fill(&mut bytes[..]);
                    Message::Binary(bytes.into())
                };
                client.queue(message.clone()).unwrap();
                let wire = client.take_outbound();
                let got = events(&mut server, &wire).unwrap();
                assert_eq!(got.len(), 1);
                assert_eq!(
                    got[0].clone().into_message(),
                    Some(message.clone()),
                    "bits {bits} round {round}"
                );
                server.queue(message.clone()).unwrap();
                let wire = server.take_outbound();
                let got = events(&mut client, &wire).unwrap();
                assert_eq!(
                    got[0].clone().into_message(),
                    Some(message),
                    "bits {bits} round {round}"
                );
            }
        }
    }
}

#[test]
fn compressible_text_shrinks_on_the_wire() {
    let mut server = server();
    let json = r#"{"type":"update","id":12345,"values":[1,2,3,4,5],"status":"ok"}"#.repeat(16);
    server.queue_text(&json).unwrap();
    let wire = server.take_outbound();
    assert!(
        wire.len() * 4 < json.len(),
        "{} of {}",
        wire.len(),
        json.len()
    );
    assert_eq!(wire[0], 0xC1, "RSV1 on the first and only frame");
}

#[test]
fn incompressible_message_of_exactly_the_limit_is_accepted_compressed() {
    let limit = 1 << 20;
    let config = Config::default()
        .max_frame_size(limit)
        .max_message_size(limit);
    let mut sender = Connection::new(Role::Client, config.clone());
    sender.enable_deflate(DeflateParams::default(), &eager());
    let mut random = vec![0u8; limit];
    rand::rngs::StdRng::seed_from_u64(1).fill(&mut random[..]);
    sender.queue_binary(&random).unwrap();
    let wire = sender.take_outbound();
    assert!(
        wire.len() > limit,
        "stored blocks grew the payload: {}",
        wire.len()
    );
    let mut receiver = Connection::new(Role::Server, config);
    receiver.enable_deflate(DeflateParams::default(), &eager());
    let got = events(&mut receiver, &wire).unwrap();
    assert_eq!(got, [Event::Binary(random.into())]);
}
