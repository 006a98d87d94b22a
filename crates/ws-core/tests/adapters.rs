//! The blocking and tokio adapters keep the sans-IO contract: replies the
//! protocol owes the peer reach the wire while the application only waits.

// Test helpers may panic: that is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ws_core::handshake::{AcceptOptions, ClientRequest, HandshakeError};
use ws_core::low_level::{FrameHeader, encode_frame};
use ws_core::{CloseCode, Config, Event, OpCode};

const TIMEOUT: Duration = Duration::from_secs(10);

fn masked(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        mask: Some([1, 2, 3, 4]),
        ..FrameHeader::new(opcode, 0)
    };
    let mut out = BytesMut::new();
    encode_frame(&mut out, header, payload);
    out.to_vec()
}

/// Sends a raw client handshake and reads the 101 head; returns the stream.
fn raw_client(addr: std::net::SocketAddr, extra: &[u8]) -> TcpStream {
    let request = ClientRequest::new(&format!("ws://{addr}/")).unwrap();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut bytes = request.to_bytes();
    bytes.extend_from_slice(extra);
    stream.write_all(&bytes).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

#[test]
fn blocking_server_answers_a_ping_while_the_application_only_receives() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut socket = ws_core::blocking::WebSocket::accept(stream).unwrap();
        let mut events = Vec::new();
        while let Some(event) = socket.recv().unwrap() {
            events.push(event);
        }
        events
    });
    let mut client = raw_client(addr, &[]);
    client.write_all(&masked(OpCode::Ping, b"idle?")).unwrap();
    let mut pong = [0u8; 7];
    client.read_exact(&mut pong).unwrap();
    assert_eq!(pong, [0x8a, 0x05, b'i', b'd', b'l', b'e', b'?']);
    client
        .write_all(&masked(OpCode::Close, &1000u16.to_be_bytes()))
        .unwrap();
    let mut close = [0u8; 4];
    client.read_exact(&mut close).unwrap();
    assert_eq!(close, [0x88, 0x02, 0x03, 0xe8]);
    // The server ends the TCP connection after the closing handshake.
    assert_eq!(client.read(&mut [0u8; 1]).unwrap(), 0);
    let events = server.join().unwrap();
    assert_eq!(events.len(), 2);
}

#[test]
fn frames_sent_with_the_handshake_request_are_not_lost() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut socket = ws_core::blocking::WebSocket::accept(stream).unwrap();
        socket.recv().unwrap()
    });
    let _client = raw_client(addr, &masked(OpCode::Text, b"eager"));
    assert_eq!(server.join().unwrap(), Some(Event::Text("eager".into())));
}

#[test]
fn refused_origin_gets_403_before_the_error_is_returned() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server =
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            ws_core::blocking::WebSocket::accept_with(stream, Config::default(), |request| {
                match request.origin.as_deref() {
                    Some("https://good.example") => Ok(AcceptOptions::default()),
                    other => Err(HandshakeError::ForbiddenOrigin(
                        other.unwrap_or_default().to_owned(),
                    )),
                }
            })
            .map(|_| ())
        });
    let request = ClientRequest::new(&format!("ws://{addr}/"))
        .unwrap()
        .origin("https://evil.example");
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let error =
        ws_core::blocking::WebSocket::connect(stream, &request, Config::default()).unwrap_err();
    match error {
        ws_core::Error::Handshake(HandshakeError::Rejected(rejection)) => {
            assert_eq!(rejection.status, 403)
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        server.join().unwrap(),
        Err(ws_core::Error::Handshake(HandshakeError::ForbiddenOrigin(
            _
        )))
    ));
}

#[test]
fn blocking_client_and_server_complete_the_closing_handshake() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut socket = ws_core::blocking::WebSocket::accept(stream).unwrap();
        socket
            .close(CloseCode::GOING_AWAY, "shutting down")
            .unwrap();
        let mut last = None;
        while let Some(event) = socket.recv().unwrap() {
            last = Some(event);
        }
        last
    });
    let request = ClientRequest::new(&format!("ws://{addr}/")).unwrap();
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let (mut client, _) =
        ws_core::blocking::WebSocket::connect(stream, &request, Config::default()).unwrap();
    match client.recv().unwrap() {
        Some(Event::Close(Some(frame))) => {
            assert_eq!(frame.code, CloseCode::GOING_AWAY);
            assert_eq!(frame.reason, "shutting down");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(client.recv().unwrap(), None);
    assert!(matches!(
        server.join().unwrap(),
        Some(Event::Close(Some(_)))
    ));
}

/// Sends a client handshake over a raw async stream and reads the server's
/// response head, leaving the stream at the first frame.
async fn upgrade_raw(io: &mut tokio::io::DuplexStream) {
    let request = ClientRequest::new("ws://localhost/").unwrap();
    io.write_all(&request.to_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(io.read_u8().await.unwrap());
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
}

#[tokio::test]
async fn tokio_server_answers_a_ping_while_the_application_only_receives() {
    let (server_io, mut client_io) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(async move {
        let mut socket = ws_core::stream::WebSocket::accept(server_io).await.unwrap();
        let mut count = 0;
        while let Some(_event) = socket.recv().await.unwrap() {
            count += 1;
        }
        count
    });
    upgrade_raw(&mut client_io).await;
    client_io
        .write_all(&masked(OpCode::Ping, b"x"))
        .await
        .unwrap();
    let mut pong = [0u8; 3];
    tokio::time::timeout(TIMEOUT, client_io.read_exact(&mut pong))
        .await
        .expect("pong written without any send by the application")
        .unwrap();
    assert_eq!(pong, [0x8a, 0x01, b'x']);
    client_io
        .write_all(&masked(OpCode::Close, b""))
        .await
        .unwrap();
    let mut close = [0u8; 2];
    client_io.read_exact(&mut close).await.unwrap();
    assert_eq!(close, [0x88, 0x00]);
    assert_eq!(server.await.unwrap(), 2);
}

/// A connection detached from its transport mid-stream and attached to
/// another keeps what it had buffered, a frame half received included, and
/// goes on over the new one.
#[tokio::test]
async fn detach_and_attach_keep_buffered_input_and_a_half_received_frame() {
    let (server_io, mut client_io) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(async move {
        let mut socket = ws_core::stream::WebSocket::accept(server_io).await.unwrap();
        let first = socket.recv().await.unwrap();
        // The second message and half of the third are buffered by now
        // (when the burst came in one read, as it does over a duplex).
        let (io, state) = socket.detach();
        let mut socket = state.attach(tokio::io::BufReader::new(io));
        let mut texts = vec![first];
        for _ in 0..2 {
            texts.push(socket.recv().await.unwrap());
        }
        socket.send_text("over the new transport").await.unwrap();
        texts
    });
    upgrade_raw(&mut client_io).await;
    let mut burst = masked(OpCode::Text, b"one");
    burst.extend_from_slice(&masked(OpCode::Text, b"two"));
    let third = masked(OpCode::Text, b"three");
    let (head, tail) = third.split_at(4);
    burst.extend_from_slice(head);
    client_io.write_all(&burst).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    client_io.write_all(tail).await.unwrap();
    let texts = tokio::time::timeout(TIMEOUT, server)
        .await
        .unwrap()
        .unwrap();
    let texts: Vec<_> = texts
        .into_iter()
        .map(|event| match event {
            Some(Event::Text(text)) => text.as_str().to_owned(),
            other => panic!("expected text, got {other:?}"),
        })
        .collect();
    assert_eq!(texts, ["one", "two", "three"]);
    let mut reply = vec![0u8; 2 + "over the new transport".len()];
    client_io.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply[2..], b"over the new transport");
}

#[tokio::test]
async fn tokio_recv_is_cancel_safe() {
    let (server_io, client_io) = tokio::io::duplex(1024);
    let server = tokio::spawn(async move {
        let mut socket = ws_core::stream::WebSocket::accept(server_io).await.unwrap();
        let mut received = Vec::new();
        let mut ticks = 0u32;
        loop {
            tokio::select! {
                event = socket.recv() => match event.unwrap() {
                    Some(Event::Text(text)) => received.push(text.as_str().to_owned()),
                    Some(_) => {}
                    None => break,
                },
                // Cancels the pending recv over and over while bytes trickle in.
                () = tokio::time::sleep(Duration::from_micros(50)) => ticks += 1,
            }
        }
        (received, ticks)
    });
    let request = ClientRequest::new("ws://localhost/").unwrap();
    let (mut client, _) =
        ws_core::stream::WebSocket::connect(client_io, &request, Config::default())
            .await
            .unwrap();
    let expected: Vec<String> = (0..200)
        .map(|i| format!("message {i} {}", "é".repeat(i % 50)))
        .collect();
    for text in &expected {
        client.send_text(text).await.unwrap();
    }
    client.close(CloseCode::NORMAL, "").await.unwrap();
    while tokio::time::timeout(TIMEOUT, client.recv())
        .await
        .unwrap()
        .unwrap()
        .is_some()
    {}
    let (received, _ticks) = server.await.unwrap();
    assert_eq!(received, expected);
}

#[tokio::test]
async fn tokio_protocol_error_is_reported_after_the_close_frame_is_written() {
    let (server_io, mut client_io) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(async move {
        let mut socket = ws_core::stream::WebSocket::accept(server_io).await.unwrap();
        socket.recv().await
    });
    upgrade_raw(&mut client_io).await;
    client_io
        .write_all(&masked(OpCode::Text, b"\xff"))
        .await
        .unwrap();
    let reason = ws_core::ProtocolError::InvalidUtf8.to_string();
    let mut close = vec![0u8; 4 + reason.len()];
    tokio::time::timeout(TIMEOUT, client_io.read_exact(&mut close))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&close[..2], [0x88, 2 + reason.len() as u8]);
    assert_eq!(u16::from_be_bytes([close[2], close[3]]), 1007);
    assert_eq!(
        &close[4..],
        reason.as_bytes(),
        "the close reason says what was wrong"
    );
    assert!(matches!(
        server.await.unwrap(),
        Err(ws_core::Error::Protocol(
            ws_core::ProtocolError::InvalidUtf8
        ))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_flush_keeps_reading_so_two_writers_cannot_deadlock() {
    // The peer echoes with the blocking adapter: it writes each echo out in
    // full before it reads again. Our side queues far more than the socket
    // buffers hold before it reads: without reading while its writes are
    // blocked, both ends would wait on each other for ever.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        let mut socket = ws_core::blocking::WebSocket::accept(stream).unwrap();
        let mut echoed = 0usize;
        while let Some(event) = socket.recv().unwrap() {
            if let Some(message) = event.into_message() {
                socket.send(message).unwrap();
                echoed += 1;
            }
        }
        echoed
    });
    let request = ClientRequest::new(&format!("ws://{addr}/")).unwrap();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut client, _) = ws_core::stream::WebSocket::connect(stream, &request, Config::default())
        .await
        .unwrap();
    // Messages larger than what the loopback socket buffers hold, so that an
    // echo and the next message are in flight at once.
    let payload = vec![0x5au8; 12 << 20];
    let count = 4;
    let exchange = async {
        // Like an interactive client: receive when something arrived, send
        // the next message otherwise. A send blocks until its bytes are out.
        let (mut sent, mut received) = (0, 0);
        while received < count {
            tokio::select! {
                biased;
                event = client.recv() => match event.unwrap() {
                    Some(Event::Binary(bytes)) => {
                        assert_eq!(bytes.len(), payload.len());
                        received += 1;
                    }
                    other => panic!("{other:?}"),
                },
                () = std::future::ready(()), if sent < count => {
                    client.send(ws_core::Message::Binary(payload.clone().into())).await.unwrap();
                    sent += 1;
                }
            }
        }
        client.close(CloseCode::NORMAL, "").await.unwrap();
        while client.recv().await.unwrap().is_some() {}
    };
    tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .expect("no deadlock between two writers");
    assert_eq!(peer.join().unwrap(), count);
}

#[test]
fn refusal_body_sent_after_the_head_is_still_reported() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request).unwrap();
        let body = "origin not allowed\n";
        let head = format!(
            "HTTP/1.1 403 Forbidden\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.flush().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        stream.write_all(body.as_bytes()).unwrap();
    });
    let request = ClientRequest::new(&format!("ws://{addr}/")).unwrap();
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let error =
        ws_core::blocking::WebSocket::connect(stream, &request, Config::default()).unwrap_err();
    match error {
        ws_core::Error::Handshake(HandshakeError::Rejected(rejection)) => {
            assert_eq!(rejection.status_line(), "HTTP/1.1 403 Forbidden");
            assert_eq!(
                rejection.body_first_line().as_deref(),
                Some("origin not allowed")
            );
        }
        other => panic!("{other:?}"),
    }
    server.join().unwrap();
}

type TokioSocket = ws_core::stream::WebSocket<tokio::net::TcpStream>;

/// Serves one client with `recv_lean` until it closes: `on_message` sees each
/// message before it is echoed, and every 30 ms of waiting (recv_lean is
/// cancel-safe, so the wait can be interrupted) `look` records what the
/// waiting connection holds. Returns the looks.
async fn lean_echo_server<L>(
    listener: tokio::net::TcpListener,
    mut on_message: impl FnMut(&mut TokioSocket, &ws_core::Message),
    mut look: impl FnMut(&TokioSocket) -> L,
) -> Vec<L> {
    let (stream, _) = listener.accept().await.unwrap();
    let mut socket = ws_core::stream::WebSocket::accept(stream).await.unwrap();
    let mut looks = Vec::new();
    loop {
        tokio::select! {
            event = socket.recv_lean() => match event.unwrap() {
                Some(event) => {
                    if let Some(message) = event.into_message() {
                        on_message(&mut socket, &message);
                        socket.queue(message).unwrap();
                    }
                }
                None => break,
            },
            () = tokio::time::sleep(Duration::from_millis(30)) => looks.push(look(&socket)),
        }
    }
    looks
}

/// Sends each payload, expects it back, and pauses 100 ms after each (long
/// enough for the server to look at its waiting connection); then closes.
async fn echo_with_pauses(addr: std::net::SocketAddr, payloads: &[Vec<u8>]) {
    let request = ClientRequest::new(&format!("ws://{addr}/")).unwrap();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut client, _) = ws_core::stream::WebSocket::connect(stream, &request, Config::default())
        .await
        .unwrap();
    for payload in payloads {
        client.send_binary(payload).await.unwrap();
        let echoed = tokio::time::timeout(TIMEOUT, client.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(echoed, Some(Event::Binary(payload.clone().into())));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client.close(CloseCode::NORMAL, "").await.unwrap();
    while client.recv().await.unwrap().is_some() {}
}

#[tokio::test]
async fn recv_lean_holds_no_buffer_while_idle_and_echoes_across_pauses() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(lean_echo_server(
        listener,
        |_, _| {},
        |socket| socket.connection().buffered_capacity(),
    ));
    let payloads = [10usize, 5000, 100_000, 3].map(|size| vec![7u8; size]);
    echo_with_pauses(addr, &payloads).await;
    let idle_capacities = server.await.unwrap();
    assert!(idle_capacities.len() >= 4, "{idle_capacities:?}");
    assert!(
        idle_capacities.iter().all(|&capacity| capacity == 0),
        "an idle connection held buffers: {idle_capacities:?}"
    );
}

#[tokio::test]
async fn recv_lean_holds_its_buffers_across_waits_while_told_to() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Whether the server was told to hold, shared by the two callbacks.
    let holding = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let told = std::sync::Arc::clone(&holding);
    let server = tokio::spawn(lean_echo_server(
        listener,
        // The client says which way to wait next.
        move |socket, message| {
            let hold = message.as_bytes().first() == Some(&1);
            told.store(hold, std::sync::atomic::Ordering::Relaxed);
            socket.hold_buffers(hold);
        },
        // (holding, capacity held) at each look at the waiting connection.
        move |socket| {
            (
                holding.load(std::sync::atomic::Ordering::Relaxed),
                socket.connection().buffered_capacity(),
            )
        },
    ));
    // Held, then lean again (giving back what was held), then held again.
    let payloads = [1u8, 1, 0, 0, 1].map(|hold| vec![hold; 100]);
    echo_with_pauses(addr, &payloads).await;
    let waits = server.await.unwrap();
    let held: Vec<usize> = waits.iter().filter(|w| w.0).map(|w| w.1).collect();
    let lean: Vec<usize> = waits.iter().filter(|w| !w.0).map(|w| w.1).collect();
    assert!(held.len() >= 3 && lean.len() >= 2, "{waits:?}");
    assert!(
        held.iter().all(|&capacity| capacity > 0),
        "a connection told to hold its buffers gave them back: {waits:?}"
    );
    assert!(
        lean.iter().all(|&capacity| capacity == 0),
        "a lean connection kept buffers: {waits:?}"
    );
}

/// A server keeps one `recv` future per connection for as long as the
/// connection lives, so it must not carry buffers of its own (the closing
/// drains read into heap scratch for this reason).
#[tokio::test]
async fn recv_futures_hold_no_buffer_of_their_own() {
    let (near, _far) = tokio::io::duplex(64);
    let connection = ws_core::Connection::new(ws_core::Role::Client, Config::default());
    let mut socket = ws_core::stream::WebSocket::from_connection(near, connection);
    let recv = std::mem::size_of_val(&socket.recv());
    assert!(recv <= 256, "a recv future is {recv} bytes");
}
