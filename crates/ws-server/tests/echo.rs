//! The echo itself: messages, fragments, control frames, the closing
//! handshake and subprotocols, against the real binary.

// Test helpers may panic: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::{Read, Write};

use common::{ServerProcess, expect_close, next_event, raw_upgrade};
use ws_core::handshake::ClientRequest;
use ws_core::{CloseCode, Event, Message, OpCode};

#[test]
fn text_message_comes_back_as_text() {
    let server = ServerProcess::start(&[]);
    let mut client = server.connect();
    client.send_text("héllo, wörld").unwrap();
    assert_eq!(next_event(&mut client), Event::Text("héllo, wörld".into()));
}

#[test]
fn binary_message_comes_back_as_binary() {
    let server = ServerProcess::start(&[]);
    let mut client = server.connect();
    let payload: Vec<u8> = (0..=255).collect();
    client.send_binary(&payload).unwrap();
    assert_eq!(next_event(&mut client), Event::Binary(payload.into()));
}

#[test]
fn empty_messages_are_echoed() {
    let server = ServerProcess::start(&[]);
    let mut client = server.connect();
    client.send_text("").unwrap();
    client.send_binary(b"").unwrap();
    assert_eq!(next_event(&mut client), Event::Text("".into()));
    assert_eq!(next_event(&mut client), Event::Binary(Vec::new().into()));
}

#[test]
fn messages_come_back_in_order_with_their_types() {
    let server = ServerProcess::start(&[]);
    let mut client = server.connect();
    let messages: Vec<Message> = (0..200)
        .map(|i| {
            if i % 3 == 0 {
                Message::Binary(vec![i as u8; i].into())
            } else {
                Message::Text(format!("message {i}").into())
            }
        })
        .collect();
    for message in &messages {
        client.send(message.clone()).unwrap();
    }
    for message in messages {
        assert_eq!(next_event(&mut client).into_message(), Some(message));
    }
}

#[test]
fn large_message_is_echoed_intact() {
    let server = ServerProcess::start(&[]);
    let mut client = server.connect();
    let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    client.send_binary(&payload).unwrap();
    assert_eq!(next_event(&mut client), Event::Binary(payload.into()));
}

#[test]
fn fragmented_text_comes_back_as_one_message() {
    let server = ServerProcess::start(&[]);
    let mut client = server.connect();
    // "é" is split across two fragments to exercise incremental UTF-8.
    let connection = client.connection_mut();
    connection
        .queue_fragment(OpCode::Text, b"frag\xc3", false)
        .unwrap();
    connection
        .queue_fragment(OpCode::Continuation, b"\xa9ment", false)
        .unwrap();
    connection.queue_ping(b"between").unwrap();
    connection
        .queue_fragment(OpCode::Continuation, b"ed", true)
        .unwrap();
    client.flush().unwrap();
    assert_eq!(next_event(&mut client), Event::Pong("between".into()));
    assert_eq!(next_event(&mut client), Event::Text("fragémented".into()));
}

#[test]
fn fragmented_binary_comes_back_as_one_message() {
    let server = ServerProcess::start(&[]);
    let mut client = server.connect();
    let connection = client.connection_mut();
    connection
        .queue_fragment(OpCode::Binary, &[1, 2], false)
        .unwrap();
    connection
        .queue_fragment(OpCode::Continuation, &[], false)
        .unwrap();
    connection
        .queue_fragment(OpCode::Continuation, &[3], true)
        .unwrap();
    client.flush().unwrap();
    assert_eq!(next_event(&mut client), Event::Binary(vec![1, 2, 3].into()));
}

#[test]
fn ping_gets_a_pong_with_the_same_payload() {
    let server = ServerProcess::start(&[]);
    let mut client = server.connect();
    client.ping(b"are you there?").unwrap();
    assert_eq!(
        next_event(&mut client),
        Event::Pong("are you there?".into())
    );
}

#[test]
fn close_code_is_echoed_and_the_server_closes_tcp() {
    let server = ServerProcess::start(&[]);
    let mut client = server.connect();
    client.send_text("last words").unwrap();
    assert_eq!(next_event(&mut client), Event::Text("last words".into()));
    client.close(CloseCode(4000), "bye").unwrap();
    // expect_close also requires EOF: the server ends TCP first (RFC 6455
    // §7.1.1) without waiting for the client; a hang fails on the read timeout.
    assert_eq!(expect_close(&mut client), Some(4000));
}

#[test]
fn close_without_a_code_is_answered_without_a_code() {
    let server = ServerProcess::start(&[]);
    let mut stream = raw_upgrade(&server);
    // A masked close frame with an empty payload.
    stream.write_all(&[0x88, 0x80, 1, 2, 3, 4]).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, [0x88, 0x00]);
}

#[test]
fn frames_sent_behind_the_request_head_are_not_lost() {
    let server = ServerProcess::start(&[]);
    let mut stream = server.tcp();
    let request = ClientRequest::new(&server.url()).unwrap();
    let mut bytes = request.to_bytes();
    // A masked text frame "hi" right behind the head, in the same write.
    let key = [9u8, 8, 7, 6];
    bytes.extend_from_slice(&[0x81, 0x82, key[0], key[1], key[2], key[3]]);
    bytes.extend_from_slice(&[b'h' ^ key[0], b'i' ^ key[1]]);
    stream.write_all(&bytes).unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    while !received.ends_with(&[0x81, 0x02, b'h', b'i']) {
        let n = stream.read(&mut buf).unwrap();
        assert_ne!(n, 0, "closed before the echo: {received:?}");
        received.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn an_upgrade_on_any_path_is_accepted() {
    let server = ServerProcess::start(&[]);
    for path in ["chat", "any/deep/path?room=1", "healthz", "metrics"] {
        let url = format!("{}{path}", server.url());
        let (mut client, _) = server.connect_with(ClientRequest::new(&url).unwrap());
        client.send_text(path).unwrap();
        assert_eq!(next_event(&mut client), Event::Text(path.into()));
    }
}

#[test]
fn first_offered_subprotocol_is_selected_by_default() {
    let server = ServerProcess::start(&[]);
    let request = ClientRequest::new(&server.url())
        .unwrap()
        .protocol("chat.v2")
        .protocol("chat.v1");
    let (mut client, negotiated) = server.connect_with(request);
    assert_eq!(negotiated.protocol.as_deref(), Some("chat.v2"));
    client.send_text("still an echo").unwrap();
    assert_eq!(next_event(&mut client), Event::Text("still an echo".into()));
}

#[test]
fn protocol_flag_restricts_the_choice() {
    let server = ServerProcess::start(&["--protocol", "mqtt", "--protocol", "chat.v1"]);
    let request = ClientRequest::new(&server.url())
        .unwrap()
        .protocol("chat.v2")
        .protocol("chat.v1");
    let (_, negotiated) = server.connect_with(request);
    assert_eq!(negotiated.protocol.as_deref(), Some("chat.v1"));

    let request = ClientRequest::new(&server.url())
        .unwrap()
        .protocol("graphql-ws");
    let (mut client, negotiated) = server.connect_with(request);
    assert_eq!(negotiated.protocol, None);
    client.send_text("served anyway").unwrap();
    assert_eq!(next_event(&mut client), Event::Text("served anyway".into()));
}

#[test]
fn single_thread_runtime_serves_concurrent_clients() {
    let server = ServerProcess::start(&["--threads", "1"]);
    let mut clients: Vec<_> = (0..8).map(|_| server.connect()).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        client.send_text(&format!("client {i}")).unwrap();
    }
    for (i, client) in clients.iter_mut().enumerate() {
        assert_eq!(
            next_event(client),
            Event::Text(format!("client {i}").into())
        );
    }
}

#[test]
fn listens_on_ipv6_loopback_in_brackets() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: IPv6 loopback is not available here");
        return;
    }
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin!("ws-server"));
    command.args(["--listen", "[::1]:0"]);
    let server = ServerProcess::spawn(command);
    assert!(server.addr.is_ipv6(), "ready line shows {}", server.addr);
    assert_ne!(server.addr.port(), 0, "ready line must show the real port");
    let mut client = server.connect();
    client.send_text("over v6").unwrap();
    assert_eq!(next_event(&mut client), Event::Text("over v6".into()));
}
