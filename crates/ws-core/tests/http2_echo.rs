//! WebSockets over HTTP/2 (RFC 8441) between ws-core's own client and
//! server in one process: echo, deflate, many streams on one connection,
//! halves, the orderly end of a stream, and `Send` futures.

// Test helpers may panic: that is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod http2_support;

use bytes::Bytes;
use http2_support::{TIMEOUT, client_with, deflate, finish, request, round_trip};
use tokio::io::AsyncReadExt;
use ws_core::http2::{
    Client, Http2WebSocket, ServerConnection, Settings, WebSocketRequest, serve, serve_with,
};
use ws_core::{CloseCode, Config, Event, Message, Role};

fn assert_send<T: Send>(_: &T) {}

#[tokio::test]
async fn text_and_a_1_mib_binary_come_back_unchanged() {
    let client = client_with(Config::default(), Settings::default()).await;
    let (mut socket, negotiated) = client
        .connect(&request("/echo"), Config::default())
        .await
        .unwrap();
    assert_eq!(negotiated.protocol, None);
    assert_eq!(negotiated.extensions, None);
    assert_eq!(socket.connection().role(), Role::Client);
    round_trip(&mut socket, Message::Text("hello over h2".into())).await;
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    round_trip(&mut socket, Message::Binary(Bytes::from(big))).await;
    round_trip(&mut socket, Message::Text("".into())).await;
}

#[tokio::test]
async fn permessage_deflate_is_negotiated_and_used() {
    let client = client_with(deflate(), Settings::default()).await;
    let (mut socket, negotiated) = client.connect(&request("/"), deflate()).await.unwrap();
    let extensions = negotiated.extensions.expect("deflate negotiated");
    assert!(extensions.starts_with("permessage-deflate"), "{extensions}");
    assert!(socket.connection().deflate_enabled());
    round_trip(&mut socket, Message::Text("squeeze ".repeat(10_000).into())).await;
    let big = Bytes::from(vec![7u8; 1024 * 1024]);
    round_trip(&mut socket, Message::Binary(big)).await;
}

#[tokio::test]
async fn deflate_offer_declined_by_a_server_without_it() {
    let client = client_with(Config::default(), Settings::default()).await;
    let (mut socket, negotiated) = client.connect(&request("/"), deflate()).await.unwrap();
    assert_eq!(negotiated.extensions, None);
    assert!(!socket.connection().deflate_enabled());
    round_trip(&mut socket, Message::Text("plain".into())).await;
}

#[tokio::test]
async fn the_subprotocol_is_negotiated() {
    let client = client_with(Config::default(), Settings::default()).await;
    let offer = request("/chat").protocol("superchat").protocol("chat");
    let (mut socket, negotiated) = client.connect(&offer, Config::default()).await.unwrap();
    assert_eq!(negotiated.protocol.as_deref(), Some("chat"));
    round_trip(&mut socket, Message::Text("hi".into())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_websockets_share_one_connection_concurrently() {
    let client = client_with(deflate(), Settings::default()).await;
    let mut tasks = Vec::new();
    for index in 0..10u8 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let (mut socket, _) = client
                .connect(&request(&format!("/stream/{index}")), deflate())
                .await
                .unwrap();
            for round in 0..20u32 {
                let text = format!("stream {index} round {round}");
                round_trip(&mut socket, Message::Text(text.into())).await;
                let binary = Bytes::from(vec![index; 50_000 + round as usize]);
                round_trip(&mut socket, Message::Binary(binary)).await;
            }
            socket.close(CloseCode::NORMAL, "done").await.unwrap();
            finish(&mut socket).await
        }));
    }
    for task in tasks {
        let last = tokio::time::timeout(TIMEOUT, task).await.unwrap().unwrap();
        match last {
            Some(Event::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::NORMAL),
            other => panic!("expected the close echo, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_halves_work_over_a_stream() {
    let client = client_with(Config::default(), Settings::default()).await;
    let (socket, _) = client
        .connect(&request("/"), Config::default())
        .await
        .unwrap();
    let (mut read, mut write) = socket.split();
    assert_send(&read);
    assert_send(&write);
    let writer = tokio::spawn(async move {
        for index in 0..50 {
            write.send_text(&format!("message {index}")).await.unwrap();
        }
        write
    });
    for index in 0..50 {
        let event = tokio::time::timeout(TIMEOUT, read.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(event, Some(Event::Text(format!("message {index}").into())));
    }
    let write = writer.await.unwrap();
    let socket = read.reunite(write).unwrap();
    drop(socket);
}

/// The server closes; the client answers; the stream then ends with
/// END_STREAM both ways (an orderly end, no reset), which the client's
/// transport reads as end of input.
#[tokio::test]
async fn a_closing_handshake_ends_the_stream_with_end_stream() {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    let mut closed_tx = Some(closed_tx);
    tokio::spawn(serve(
        server_io,
        Config::default(),
        Settings::default(),
        move |request: WebSocketRequest| {
            let mut socket = request.accept().unwrap();
            let closed_tx = closed_tx.take();
            tokio::spawn(async move {
                socket.close(CloseCode::GOING_AWAY, "bye").await.unwrap();
                let last = finish(&mut socket).await;
                let done = socket.get_ref().closing_handshake_done();
                if let Some(tx) = closed_tx {
                    let _ = tx.send((last, done));
                }
            });
        },
    ));
    let (client, connection) = Client::handshake(client_io, Settings::default())
        .await
        .unwrap();
    tokio::spawn(connection);
    let (mut socket, _) = client
        .connect(&request("/"), Config::default())
        .await
        .unwrap();
    match finish(&mut socket).await {
        Some(Event::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::GOING_AWAY),
        other => panic!("expected the server's close, got {other:?}"),
    }
    assert!(socket.get_ref().closing_handshake_done());
    // recv returned the end because the server's END_STREAM arrived; a
    // reset would read as an error here.
    let (mut stream, _connection) = socket.into_parts();
    let mut rest = [0u8; 16];
    assert_eq!(stream.read(&mut rest).await.unwrap(), 0);

    let (last, done) = tokio::time::timeout(TIMEOUT, closed_rx)
        .await
        .unwrap()
        .unwrap();
    assert!(done, "the server saw both close frames");
    match last {
        Some(Event::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::GOING_AWAY),
        other => panic!("expected the client's close reply, got {other:?}"),
    }
}

/// The futures and sockets of both sides can move between threads.
#[tokio::test]
async fn futures_and_sockets_are_send() {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let server = ServerConnection::handshake(server_io, Config::default(), Settings::default());
    assert_send(&server);
    let served = serve(
        tokio::io::duplex(64).0,
        Config::default(),
        Settings::default(),
        |_| {},
    );
    assert_send(&served);
    let served_with = serve_with(
        tokio::io::duplex(64).0,
        Config::default(),
        Settings::default(),
        |_| {},
        |_| {},
    );
    assert_send(&served_with);
    drop((served, served_with));

    let server = tokio::spawn(async move {
        let mut connection = server.await.unwrap();
        let next = connection.next_request();
        assert_send(&next);
        drop(next);
        while let Some(Ok(incoming)) = connection.next_request().await {
            if let ws_core::http2::Incoming::WebSocket(request) = incoming {
                assert_send(&request);
                let socket = request.accept().unwrap();
                tokio::spawn(http2_support::echo(socket));
            }
        }
    });
    let handshake = Client::handshake(client_io, Settings::default());
    assert_send(&handshake);
    let (client, connection) = handshake.await.unwrap();
    assert_send(&client);
    assert_send(&connection);
    tokio::spawn(connection);
    let first = request("/");
    let connect = client.connect(&first, Config::default());
    assert_send(&connect);
    let (mut socket, _): (Http2WebSocket, _) = connect.await.unwrap();
    assert_send(&socket);
    {
        let recv = socket.recv();
        assert_send(&recv);
    }
    {
        let send = socket.send(Message::Text("x".into()));
        assert_send(&send);
    }
    round_trip(&mut socket, Message::Text("sent".into())).await;
    drop(socket);
    drop(client);
    server.abort();
}

/// A port that serves HTTP/1.1 too: the server reads the first bytes with
/// the HTTP/1.1 handshake, sees the HTTP/2 preface, and hands the bytes it
/// read and the socket to HTTP/2 (RFC 9113 §3.3, prior knowledge).
#[tokio::test]
async fn prior_knowledge_is_told_from_http_1_1_by_its_first_bytes() {
    use tokio::io::AsyncReadExt as _;
    use ws_core::handshake::ServerHandshake;
    use ws_core::http2::{Preface, Prefixed, detect_preface};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut handshake = ServerHandshake::new(Config::default());
        loop {
            assert_ne!(tcp.read_buf(handshake.read_buffer()).await.unwrap(), 0);
            match detect_preface(handshake.read_buffer()) {
                Preface::Partial => continue,
                Preface::Http2 => break,
                other => panic!("{other:?}"),
            }
        }
        let io = Prefixed::new(handshake.into_leftover(), tcp);
        serve(io, Config::default(), Settings::default(), |request| {
            tokio::spawn(http2_support::echo(request.accept().unwrap()));
        })
        .await
        .unwrap();
    });
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let (client, connection) = Client::handshake(tcp, Settings::default()).await.unwrap();
    tokio::spawn(connection);
    let (mut socket, _) = client
        .connect(&request("/"), Config::default())
        .await
        .unwrap();
    round_trip(&mut socket, Message::Text("prior knowledge".into())).await;
}
