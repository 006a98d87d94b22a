//! WebSockets over HTTP/2 (RFC 8441) when things go wrong: refusals as
//! HTTP/2 responses seen by the client as typed errors, a server without
//! extended CONNECT, a peer that never reads, a protocol error on one
//! stream among others, and the per-connection stream limit.

// Test helpers may panic: that is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod http2_support;

use std::future::poll_fn;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http2_support::{TIMEOUT, client_with, finish, request, round_trip};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ws_core::handshake::{HandshakeError, Rejection};
use ws_core::http2::{Client, Settings};
use ws_core::{CloseCode, Config, Error, Event, Message};

/// Long enough for a blocked operation to show it is blocked; a test that
/// waits this long only concludes that something did not finish.
const BLOCKED: Duration = Duration::from_millis(300);

fn rejection(error: Error) -> Rejection {
    match error {
        Error::Handshake(HandshakeError::ConnectRejected(rejection)) => *rejection,
        other => panic!("expected a refused extended CONNECT, got {other:?}"),
    }
}

#[tokio::test]
async fn a_refused_origin_is_a_403_with_the_reason() {
    let client = client_with(Config::default(), Settings::default()).await;
    let bad = request("/origin").origin("https://evil.example");
    let error = client.connect(&bad, Config::default()).await.unwrap_err();
    let message = error.to_string();
    let rejection = rejection(error);
    assert_eq!(rejection.status, 403);
    assert!(
        rejection
            .body_first_line()
            .is_some_and(|line| line.contains("evil.example")),
        "{rejection:?}"
    );
    assert!(
        message.contains("403 Forbidden instead of 200"),
        "{message}"
    );

    // The same connection still opens WebSockets, and a good origin passes.
    let good = request("/origin").origin("https://good.example");
    let (mut socket, _) = client.connect(&good, Config::default()).await.unwrap();
    round_trip(&mut socket, Message::Text("still fine".into())).await;
}

#[tokio::test]
async fn another_websocket_version_is_a_426_naming_13() {
    let client = client_with(Config::default(), Settings::default()).await;
    // A second version field next to the client's own 13.
    let odd = request("/").header("Sec-WebSocket-Version", "8");
    let rejection = rejection(client.connect(&odd, Config::default()).await.unwrap_err());
    assert_eq!(rejection.status, 426);
    assert_eq!(
        rejection.headers.get_str("sec-websocket-version"),
        Some("13")
    );
    // HTTP/2 forbids the connection-specific fields of the HTTP/1.1 426.
    assert!(!rejection.headers.contains("upgrade"));
    assert!(!rejection.headers.contains("connection"));
}

#[tokio::test]
async fn an_invalid_header_is_a_400() {
    let client = client_with(Config::default(), Settings::default()).await;
    let ambiguous = request("/")
        .header("Host", "a.example")
        .header("Host", "b.example");
    let error = client
        .connect(&ambiguous, Config::default())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("400 Bad Request"), "{error}");
    let rejection = rejection(error);
    assert_eq!(rejection.status, 400);
    assert!(
        rejection
            .body_first_line()
            .is_some_and(|line| line.contains("more than one Host")),
        "{rejection:?}"
    );
}

/// Extended CONNECTs that the typed client would never send, from a raw h2
/// client: each gets its HTTP/2 response, and the connection lives on.
#[tokio::test]
async fn raw_requests_get_the_precise_status_on_their_stream_only() {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    http2_support::spawn_server(server_io, Config::default(), Settings::default());
    let (send, mut connection) = h2::client::handshake(client_io).await.unwrap();
    let mut ping_pong = connection.ping_pong().unwrap();
    tokio::spawn(connection);
    // The answer to a PING comes after the server's SETTINGS.
    ping_pong.ping(h2::Ping::opaque()).await.unwrap();
    let mut send = send.ready().await.unwrap();
    assert!(send.is_extended_connect_protocol_enabled());

    let connect = |version: Option<&str>| {
        let mut builder = Request::builder()
            .method(Method::CONNECT)
            .uri("http://localhost/")
            .extension(h2::ext::Protocol::from_static("websocket"));
        if let Some(version) = version {
            builder = builder.header("sec-websocket-version", version);
        }
        builder.body(()).unwrap()
    };
    let cases = [
        (
            connect(None),
            StatusCode::UPGRADE_REQUIRED,
            "missing Sec-WebSocket-Version",
        ),
        (connect(Some("8")), StatusCode::UPGRADE_REQUIRED, "\"8\""),
        (
            Request::get("http://localhost/healthz").body(()).unwrap(),
            StatusCode::NOT_FOUND,
            "not found",
        ),
    ];
    for (request, status, reason) in cases {
        let (response, _stream) = send.send_request(request, false).unwrap();
        let response = tokio::time::timeout(TIMEOUT, response)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(response.status(), status);
        if status == StatusCode::UPGRADE_REQUIRED {
            assert_eq!(response.headers()["sec-websocket-version"], "13");
        }
        let mut body = response.into_body();
        let mut text = Vec::new();
        while let Some(data) = poll_fn(|cx| body.poll_data(cx)).await {
            text.extend_from_slice(&data.unwrap());
        }
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains(reason), "{status}: {text:?}");
    }

    // A valid one: 200 without content-length, the subprotocol chosen; the
    // server role then requires masked frames, exactly as over TCP.
    let valid = Request::builder()
        .method(Method::CONNECT)
        .uri("http://localhost/chat")
        .extension(h2::ext::Protocol::from_static("websocket"))
        .header("sec-websocket-version", "13")
        .header("sec-websocket-protocol", "chat")
        .body(())
        .unwrap();
    let (response, mut stream) = send.send_request(valid, false).unwrap();
    let response = tokio::time::timeout(TIMEOUT, response)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!response.headers().contains_key("content-length"));
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
    // An unmasked text frame "hi".
    stream
        .send_data(Bytes::from_static(&[0x81, 0x02, b'h', b'i']), false)
        .unwrap();
    let mut body = response.into_body();
    let close = poll_fn(|cx| body.poll_data(cx)).await.unwrap().unwrap();
    assert_eq!(&close[..4], &[0x88, close[1], 0x03, 0xEA], "{close:?}");
}

#[tokio::test]
async fn a_server_without_extended_connect_is_a_typed_error() {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        // HTTP/2, but SETTINGS_ENABLE_CONNECT_PROTOCOL is never sent.
        let mut connection = h2::server::handshake(server_io).await.unwrap();
        while let Some(Ok((_request, mut respond))) = connection.accept().await {
            let response = http::Response::builder().status(404).body(()).unwrap();
            let _ = respond.send_response(response, true);
        }
    });
    let (client, connection) = Client::handshake(client_io, Settings::default())
        .await
        .unwrap();
    tokio::spawn(connection);
    assert!(!client.extended_connect_enabled());
    let error = client
        .connect(&request("/"), Config::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Handshake(HandshakeError::ExtendedConnectDisabled)
        ),
        "{error:?}"
    );
}

/// A client that sends and never reads its echoes: the server's echoes stop
/// at the client's stream window, the server stops reading while its echo
/// cannot be written, and then the client's sends wait and its `queue`
/// says full. Nothing grows
/// past the windows and queues, and the connection's other streams go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_never_reads_its_echoes_stays_bounded() {
    // Small frame limits: a blocked write reads ahead up to the frame limit
    // (and 64 KiB more) on both sides, so that two peers that write before
    // they read cannot deadlock; with the default 16 MiB that would be the
    // bound.
    let limits = Config::default()
        .max_frame_size(64 * 1024)
        .max_message_size(64 * 1024);
    let server_config = limits.clone();
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    http2_support::spawn_server(server_io, server_config, Settings::default());
    let (client, connection) = Client::handshake(client_io, Settings::default())
        .await
        .unwrap();
    tokio::spawn(connection);
    let (mut deaf, _) = client.connect(&request("/"), limits).await.unwrap();

    let chunk = Bytes::from(vec![1u8; 16 * 1024]);
    let mut sent = 0usize;
    let mut blocked = false;
    while sent < 64 * 1024 * 1024 {
        match tokio::time::timeout(BLOCKED, deaf.send(Message::Binary(chunk.clone()))).await {
            Ok(result) => {
                result.unwrap();
                sent += chunk.len();
            }
            Err(_) => {
                blocked = true;
                break;
            }
        }
    }
    assert!(blocked, "sent {sent} bytes to a peer that never reads");
    // Client queue (1 MiB) and read-ahead (128 KiB), both stream windows
    // (256 KiB each), the server's read-ahead (128 KiB) and queue (1 MiB),
    // with room for frame headers.
    assert!(sent < 4 * 1024 * 1024, "{sent} bytes went out");
    // The non-blocking path says full too.
    let mut refused = false;
    for _ in 0..1024 {
        match deaf.queue(Message::Binary(chunk.clone())) {
            Ok(()) => {}
            Err(Error::WriteBufferFull) => {
                refused = true;
                break;
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(refused, "queue never said full");

    // Another WebSocket on the same connection is not held up.
    let (mut other, _) = client
        .connect(&request("/"), Config::default())
        .await
        .unwrap();
    round_trip(&mut other, Message::Text("not stuck".into())).await;
    round_trip(&mut other, Message::Binary(Bytes::from(vec![2u8; 60_000]))).await;
}

/// A frame with a reserved opcode fails that WebSocket (close 1002, then
/// the end of the server's side of the stream), and only that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_error_on_one_stream_leaves_the_others_working() {
    let client = client_with(Config::default(), Settings::default()).await;
    let (mut bystander, _) = client
        .connect(&request("/"), Config::default())
        .await
        .unwrap();
    let (failing, _) = client
        .connect(&request("/"), Config::default())
        .await
        .unwrap();
    round_trip(&mut bystander, Message::Text("before".into())).await;

    let (mut stream, _connection) = failing.into_parts();
    // FIN, reserved opcode 0x3, masked, empty.
    stream.write_all(&[0x83, 0x80, 0, 0, 0, 0]).await.unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 256];
    loop {
        match tokio::time::timeout(TIMEOUT, stream.read(&mut buffer))
            .await
            .unwrap()
        {
            Ok(0) => break,
            Ok(read) => received.extend_from_slice(&buffer[..read]),
            // h2's reset of the stream (NO_ERROR: the server has ended its
            // side) may overtake the end of input.
            Err(error) => {
                assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
                break;
            }
        }
    }
    // The server's close frame with code 1002 got through before its side
    // of the stream ended.
    assert_eq!(
        &received[..4],
        &[0x88, received[1], 0x03, 0xEA],
        "{received:?}"
    );
    round_trip(&mut bystander, Message::Text("after".into())).await;
    let (mut newcomer, _) = client
        .connect(&request("/"), Config::default())
        .await
        .unwrap();
    round_trip(&mut newcomer, Message::Text("new".into())).await;
}

/// Past the server's SETTINGS_MAX_CONCURRENT_STREAMS, a new WebSocket waits
/// for a stream to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_limit_holds_a_new_websocket_until_one_ends() {
    let client = client_with(
        Config::default(),
        Settings::default().max_concurrent_streams(2),
    )
    .await;
    let (mut first, _) = client
        .connect(&request("/"), Config::default())
        .await
        .unwrap();
    let (mut second, _) = client
        .connect(&request("/"), Config::default())
        .await
        .unwrap();
    let third = {
        let client = client.clone();
        tokio::spawn(async move { client.connect(&request("/"), Config::default()).await })
    };
    tokio::time::sleep(BLOCKED).await;
    assert!(
        !third.is_finished(),
        "a third stream opened past the limit of 2"
    );
    round_trip(&mut second, Message::Text("two".into())).await;

    first.close(CloseCode::NORMAL, "").await.unwrap();
    assert!(matches!(finish(&mut first).await, Some(Event::Close(_))));
    drop(first);
    let (mut third, _) = tokio::time::timeout(TIMEOUT, third)
        .await
        .expect("the third WebSocket opens once the first has ended")
        .unwrap()
        .unwrap();
    round_trip(&mut third, Message::Text("three".into())).await;
}

/// A WebSocket dropped without a close frame resets its stream (CANCEL):
/// the peer reads an error, not an orderly end, and the connection goes on.
#[tokio::test]
async fn a_websocket_dropped_without_closing_resets_its_stream_only() {
    let client = client_with(Config::default(), Settings::default()).await;
    let (mut dropped, _) = client
        .connect(&request("/drop"), Config::default())
        .await
        .unwrap();
    let error = tokio::time::timeout(TIMEOUT, dropped.recv())
        .await
        .unwrap()
        .unwrap_err();
    match error {
        Error::Io(error) => assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset),
        other => panic!("expected the reset, got {other:?}"),
    }
    let (mut next, _) = client
        .connect(&request("/"), Config::default())
        .await
        .unwrap();
    round_trip(&mut next, Message::Text("connection alive".into())).await;
}

/// A server shutting down the way ws-server will: close 1001 on every
/// WebSocket, then GOAWAY; the connection ends once the streams have, and
/// a new WebSocket is refused meanwhile without hurting the open one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_closes_the_websockets_then_the_connection() {
    use ws_core::http2::{Incoming, ServerConnection};

    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let (shutdown_tx, mut shutdown_rx) = tokio::sync::mpsc::channel::<()>(1);
    let server = tokio::spawn(async move {
        let mut connection =
            ServerConnection::handshake(server_io, Config::default(), Settings::default())
                .await
                .unwrap();
        let (close_tx, _) = tokio::sync::broadcast::channel::<()>(1);
        let mut tasks = Vec::new();
        let mut shutting_down = false;
        loop {
            tokio::select! {
                request = connection.next_request() => match request {
                    Some(Ok(Incoming::WebSocket(request))) => {
                        let mut socket = request.accept().unwrap();
                        let mut close_rx = close_tx.subscribe();
                        tasks.push(tokio::spawn(async move {
                            loop {
                                tokio::select! {
                                    event = socket.recv() => match event {
                                        Ok(Some(event)) => {
                                            if let Some(message) = event.into_message() {
                                                socket.send(message).await.unwrap();
                                            }
                                        }
                                        Ok(None) | Err(_) => return,
                                    },
                                    _ = close_rx.recv() => {
                                        socket.close(CloseCode::GOING_AWAY, "shutdown").await.unwrap();
                                        while let Ok(Some(_)) = socket.recv().await {}
                                        return;
                                    }
                                }
                            }
                        }));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => panic!("{error}"),
                    None => return tasks.len(),
                },
                _ = shutdown_rx.recv(), if !shutting_down => {
                    shutting_down = true;
                    let _ = close_tx.send(());
                    connection.graceful_shutdown();
                }
            }
        }
    });
    let (client, connection) = Client::handshake(client_io, Settings::default())
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let (mut socket, _) = client
        .connect(&request("/"), Config::default())
        .await
        .unwrap();
    round_trip(&mut socket, Message::Text("before".into())).await;

    shutdown_tx.send(()).await.unwrap();
    match finish(&mut socket).await {
        Some(Event::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::GOING_AWAY),
        other => panic!("expected 1001, got {other:?}"),
    }
    // GOAWAY: no new streams on this connection.
    let refused = client.connect(&request("/"), Config::default()).await;
    assert!(refused.is_err(), "a stream opened after GOAWAY");
    drop(socket);
    drop(client);
    let served = tokio::time::timeout(TIMEOUT, server)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(served, 1);
    tokio::time::timeout(TIMEOUT, connection)
        .await
        .expect("the client's connection ends after GOAWAY")
        .unwrap()
        .unwrap();
}
