//! `PreparedMessage`: a message framed (and compressed) once, queued on many
//! connections (issue #14, "encode once, send to many"), one rule per test.

// Test helpers may panic: that is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use bytes::{Buf, Bytes};
use ws_core::deflate::{DeflateConfig, DeflateParams};
use ws_core::low_level::FrameHeader;
use ws_core::{
    CloseCode, Config, Connection, Error, Event, Message, OpCode, PreparedMessage, Role,
};

const RSV1: u8 = 0b100;

fn connection(role: Role, deflate: Option<(DeflateParams, DeflateConfig)>) -> Connection {
    let mut connection = Connection::new(role, Config::default());
    if let Some((params, config)) = deflate {
        connection.enable_deflate(params, &config);
    }
    connection
}

fn peer_role(role: Role) -> Role {
    match role {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    }
}

/// Every event `peer` (the other end, with the same negotiated deflate
/// parameters) decodes from `wire`.
fn decode_as_peer(peer: &mut Connection, wire: &[u8]) -> Result<Vec<Event>, Error> {
    peer.receive(wire);
    let mut events = Vec::new();
    while let Some(event) = peer.next_event()? {
        events.push(event);
    }
    Ok(events)
}

/// The first frame's header in `wire`.
fn header(wire: &[u8]) -> FrameHeader {
    FrameHeader::decode(wire).unwrap().unwrap().0
}

fn event_of(message: &Message) -> Event {
    match message.clone() {
        Message::Text(text) => Event::Text(text),
        Message::Binary(bytes) => Event::Binary(bytes),
        other => panic!("{other:?}"),
    }
}

/// JSON-like text: compressible, but with enough variety that `len` bytes
/// compress to well over the size below which shared frames are copied.
fn json(len: usize) -> Message {
    let mut text = String::from("[");
    let mut i: u64 = 1;
    while text.len() < len - 1 {
        i = i.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        text.push_str(&format!(
            "{{\"id\":{},\"px\":{},\"q\":\"{:x}\"}},",
            i >> 50,
            (i >> 20) % 100_000,
            i >> 40
        ));
    }
    text.truncate(len - 1);
    text.push(']');
    Message::from(text)
}

fn no_takeover() -> DeflateParams {
    DeflateParams::default()
        .server_no_context_takeover(true)
        .client_no_context_takeover(true)
}

// ---- uncompressed ----

#[test]
fn server_queues_exactly_the_bytes_send_would() {
    for len in [0, 1, 125, 126, 511, 512, 65_535, 65_536, 100_000] {
        for message in [
            Message::Binary(Bytes::from(vec![0xa5; len])),
            Message::Text("é".repeat(len / 2).into()),
        ] {
            let mut sent = connection(Role::Server, None);
            sent.queue(message.clone()).unwrap();
            let mut prepared = connection(Role::Server, None);
            prepared
                .queue_prepared(&PreparedMessage::new(message.clone()))
                .unwrap();
            assert_eq!(prepared.take_outbound(), sent.take_outbound(), "{len}");
        }
    }
}

#[test]
fn server_connections_share_one_frame_without_copying_it() {
    let prepared = PreparedMessage::binary(vec![7u8; 4096]);
    let mut connections: Vec<_> = (0..8).map(|_| connection(Role::Server, None)).collect();
    for connection in &mut connections {
        // Something already queued: the shared frame goes after it, by reference.
        connection.queue_ping(b"before").unwrap();
        connection.queue_prepared(&prepared).unwrap();
    }
    let frame_len = 4 + 4096;
    for connection in &mut connections {
        // Counted in full in every queue, like any frame (write backpressure
        // sees the shared bytes once per connection).
        assert_eq!(connection.outbound().remaining(), 2 + 6 + frame_len);
        connection.outbound().advance(2 + 6);
        let out = connection.outbound();
        let chunk = out.chunk();
        assert_eq!(chunk.len(), frame_len);
        // The payload in the queue is the prepared message's own bytes.
        assert_eq!(
            chunk[4..].as_ptr(),
            prepared.as_bytes().as_ptr(),
            "shared, not copied"
        );
    }
}

#[test]
fn small_frames_are_copied_and_still_exact() {
    let prepared = PreparedMessage::text("tick");
    let mut connection = connection(Role::Server, None);
    connection.queue_prepared(&prepared).unwrap();
    connection.queue_prepared(&prepared).unwrap();
    let out = connection.outbound();
    // Both small frames sit in one contiguous chunk: one write.
    assert_eq!(out.chunk(), b"\x81\x04tick\x81\x04tick");
}

#[test]
fn client_masks_every_frame_with_its_own_key() {
    let message = Message::from("the same news for everyone, masked apart");
    let prepared = PreparedMessage::new(message.clone());
    let mut keys = Vec::new();
    for _ in 0..16 {
        let mut client = connection(Role::Client, None);
        client.queue_prepared(&prepared).unwrap();
        let wire = client.take_outbound();
        let header = header(&wire);
        keys.push(header.mask.expect("a client frame is masked"));
        let mut server = connection(Role::Server, None);
        assert_eq!(
            decode_as_peer(&mut server, &wire).unwrap(),
            [event_of(&message)]
        );
    }
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 16, "a fresh key per frame and per connection");
}

#[test]
fn the_prepared_message_is_the_message() {
    let text = PreparedMessage::from(Message::from("héllo"));
    assert!(text.is_text());
    assert_eq!(text.message(), Message::from("héllo"));
    assert_eq!(text.len(), "héllo".len());
    let binary = PreparedMessage::binary(Bytes::from_static(b"\x00\x01"));
    assert!(!binary.is_text());
    assert_eq!(
        binary.message(),
        Message::Binary(Bytes::from_static(b"\x00\x01"))
    );
    assert!(PreparedMessage::binary(Vec::new()).is_empty());
}

#[test]
fn clones_share_the_frame_and_cross_threads() {
    fn send_sync<T: Send + Sync + Clone + 'static>() {}
    send_sync::<PreparedMessage>();
    let prepared = PreparedMessage::binary(vec![1u8; 1000]);
    let clone = prepared.clone();
    assert_eq!(clone.as_bytes().as_ptr(), prepared.as_bytes().as_ptr());
}

// ---- refusals, as for any message ----

#[test]
fn refused_after_close_was_sent() {
    let prepared = PreparedMessage::text("too late");
    let mut connection = connection(Role::Server, None);
    connection.close(CloseCode::NORMAL, "bye").unwrap();
    let queued = connection.outbound().remaining();
    assert!(matches!(
        connection.queue_prepared(&prepared),
        Err(Error::Closed)
    ));
    assert_eq!(connection.outbound().remaining(), queued, "nothing queued");
}

#[test]
fn refused_while_a_fragmented_message_is_being_sent() {
    let prepared = PreparedMessage::text("interleaved");
    let mut connection = connection(Role::Server, None);
    connection
        .queue_fragment(OpCode::Text, b"first half", false)
        .unwrap();
    assert!(matches!(
        connection.queue_prepared(&prepared),
        Err(Error::InvalidUse(_))
    ));
    connection
        .queue_fragment(OpCode::Continuation, b", second half", true)
        .unwrap();
    connection.queue_prepared(&prepared).unwrap();
}

// ---- permessage-deflate ----

#[test]
fn no_context_takeover_compresses_once_for_every_server_connection() {
    let message = json(8 << 10);
    let prepared = PreparedMessage::new(message.clone());
    let deflate = Some((no_takeover(), DeflateConfig::default()));
    let mut frames = Vec::new();
    for _ in 0..10 {
        let mut server = connection(Role::Server, deflate.clone());
        server.queue_prepared(&prepared).unwrap();
        let shared = server.outbound().chunk().as_ptr() as usize;
        frames.push((shared, server.take_outbound()));
    }
    assert_eq!(prepared.compressed_encodings(), 1, "compressed once");
    let (first_ptr, first) = &frames[0];
    assert!(first.len() < message.len() / 2, "{} bytes", first.len());
    assert_eq!(header(first).rsv, RSV1);
    for (ptr, wire) in &frames {
        assert_eq!(ptr, first_ptr, "one shared compressed frame");
        let mut client = connection(Role::Client, deflate.clone());
        assert_eq!(
            decode_as_peer(&mut client, wire).unwrap(),
            [event_of(&message)]
        );
    }
    // The same bytes as a normal send with the same setting.
    let mut sent = connection(Role::Server, deflate);
    sent.queue(message).unwrap();
    assert_eq!(sent.take_outbound(), *first);
}

#[test]
fn each_compression_setting_is_compressed_once() {
    let message = json(4 << 10);
    let prepared = PreparedMessage::new(message.clone());
    let settings = [
        (15, 2),
        (10, 2),
        (15, 6),
        (15, 2), // again: no new encoding
    ];
    for round in 0..3 {
        for (bits, level) in settings {
            let params = no_takeover()
                .server_max_window_bits(bits)
                .client_max_window_bits(bits);
            let config = DeflateConfig::default().window_bits(bits).level(level);
            let mut server = connection(Role::Server, Some((params, config.clone())));
            server.queue_prepared(&prepared).unwrap();
            let mut client = connection(Role::Client, Some((params, config)));
            assert_eq!(
                decode_as_peer(&mut client, &server.take_outbound()).unwrap(),
                [event_of(&message)],
                "round {round}, {bits} bits, level {level}"
            );
        }
    }
    assert_eq!(prepared.compressed_encodings(), 3);
}

#[test]
fn settings_beyond_the_cache_compress_per_connection() {
    let message = json(2 << 10);
    let prepared = PreparedMessage::new(message.clone());
    for bits in 9..=15 {
        let params = no_takeover().server_max_window_bits(bits);
        let deflate = Some((params, DeflateConfig::default()));
        let mut server = connection(Role::Server, deflate.clone());
        server.queue_prepared(&prepared).unwrap();
        let mut client = connection(Role::Client, deflate);
        assert_eq!(
            decode_as_peer(&mut client, &server.take_outbound()).unwrap(),
            [event_of(&message)],
            "{bits} bits"
        );
    }
    assert_eq!(prepared.compressed_encodings(), 4, "the cache is bounded");
}

#[test]
fn client_shares_the_compression_and_masks_per_connection() {
    let message = json(4 << 10);
    let prepared = PreparedMessage::new(message.clone());
    let deflate = Some((no_takeover(), DeflateConfig::default()));
    let mut keys = Vec::new();
    for _ in 0..8 {
        let mut client = connection(Role::Client, deflate.clone());
        client.queue_prepared(&prepared).unwrap();
        let wire = client.take_outbound();
        let header = header(&wire);
        assert_eq!(header.rsv, RSV1);
        keys.push(header.mask.expect("masked"));
        let mut server = connection(Role::Server, deflate.clone());
        assert_eq!(
            decode_as_peer(&mut server, &wire).unwrap(),
            [event_of(&message)]
        );
    }
    assert_eq!(prepared.compressed_encodings(), 1);
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 8);
}

#[test]
fn context_takeover_compresses_with_the_connections_own_history() {
    // Default parameters: both sides keep their context between messages.
    let deflate = Some((DeflateParams::default(), DeflateConfig::default()));
    let before = json(3 << 10);
    let broadcast = json(4 << 10);
    let after = json(5 << 10);
    let prepared = PreparedMessage::new(broadcast.clone());
    for role in [Role::Server, Role::Client] {
        for _ in 0..3 {
            let mut sender = connection(role, deflate.clone());
            sender.queue(before.clone()).unwrap();
            sender.queue_prepared(&prepared).unwrap();
            sender.queue(after.clone()).unwrap();
            let wire = sender.take_outbound();
            let mut peer = connection(peer_role(role), deflate.clone());
            assert_eq!(
                decode_as_peer(&mut peer, &wire).unwrap(),
                [event_of(&before), event_of(&broadcast), event_of(&after)],
                "{role:?}: the peer's decompressor stays in step"
            );
            if role == Role::Server {
                // Exactly what sending the message normally produces.
                let mut twin = connection(role, deflate.clone());
                twin.queue(before.clone()).unwrap();
                twin.queue(broadcast.clone()).unwrap();
                twin.queue(after.clone()).unwrap();
                assert_eq!(twin.take_outbound(), wire);
            }
        }
    }
    assert_eq!(prepared.compressed_encodings(), 0, "nothing to share");
}

#[test]
fn context_takeover_on_one_side_only_shares_what_it_can() {
    // The server compresses alone; the client keeps its context.
    let params = DeflateParams::default().server_no_context_takeover(true);
    let deflate = Some((params, DeflateConfig::default()));
    let message = json(4 << 10);
    let prepared = PreparedMessage::new(message.clone());
    let mut client = connection(Role::Client, deflate.clone());
    client.queue_prepared(&prepared).unwrap();
    client.queue(message.clone()).unwrap();
    assert_eq!(
        prepared.compressed_encodings(),
        0,
        "the client compresses itself"
    );
    let mut server = connection(Role::Server, deflate.clone());
    assert_eq!(
        decode_as_peer(&mut server, &client.take_outbound()).unwrap(),
        [event_of(&message), event_of(&message)]
    );
    server.queue_prepared(&prepared).unwrap();
    assert_eq!(prepared.compressed_encodings(), 1, "the server shares");
}

#[test]
fn a_message_deflate_would_not_compress_goes_out_plain() {
    // Below the default 64-byte minimum.
    let prepared = PreparedMessage::text("short");
    let mut server = connection(
        Role::Server,
        Some((no_takeover(), DeflateConfig::default())),
    );
    server.queue_prepared(&prepared).unwrap();
    assert_eq!(server.take_outbound(), b"\x81\x05short");
    assert_eq!(prepared.compressed_encodings(), 0);
}

#[test]
fn broadcast_from_several_threads_compresses_once() {
    let message = json(16 << 10);
    let prepared = PreparedMessage::new(message.clone());
    let deflate = Some((no_takeover(), DeflateConfig::default()));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let prepared = prepared.clone();
            let deflate = deflate.clone();
            std::thread::spawn(move || {
                (0..25)
                    .map(|_| {
                        let mut server = connection(Role::Server, deflate.clone());
                        server.queue_prepared(&prepared).unwrap();
                        server.take_outbound()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut frames = Vec::new();
    for thread in threads {
        frames.extend(thread.join().unwrap());
    }
    assert_eq!(prepared.compressed_encodings(), 1);
    assert!(frames.iter().all(|frame| *frame == frames[0]));
    let mut client = connection(Role::Client, deflate);
    assert_eq!(
        decode_as_peer(&mut client, &frames[0]).unwrap(),
        [event_of(&message)]
    );
}

// ---- the adapters ----

#[test]
fn blocking_adapter_sends_a_prepared_message() {
    use std::os::unix::net::UnixStream;
    let (near, far) = UnixStream::pair().unwrap();
    let prepared = PreparedMessage::text("over the blocking adapter");
    let mut socket =
        ws_core::blocking::WebSocket::from_connection(near, connection(Role::Server, None));
    socket.send_prepared(&prepared).unwrap();
    let mut peer =
        ws_core::blocking::WebSocket::from_connection(far, connection(Role::Client, None));
    assert_eq!(
        peer.recv().unwrap(),
        Some(Event::Text("over the blocking adapter".into()))
    );
}

#[tokio::test]
async fn tokio_adapter_queues_and_sends_prepared_messages() {
    let (near, far) = tokio::io::duplex(64 << 10);
    let prepared = PreparedMessage::binary(vec![3u8; 10_000]);
    let mut socket =
        ws_core::stream::WebSocket::from_connection(near, connection(Role::Server, None));
    socket.queue_prepared(&prepared).unwrap();
    socket.send_prepared(&prepared).await.unwrap();
    let mut peer = ws_core::stream::WebSocket::from_connection(far, connection(Role::Client, None));
    for _ in 0..2 {
        assert_eq!(
            peer.recv().await.unwrap(),
            Some(Event::Binary(Bytes::from(vec![3u8; 10_000])))
        );
    }
}
