//! `ws_core::client::connect` over plain TCP against in-process servers on
//! 127.0.0.1: the socket and the response, every address tried, and the
//! errors a local server can provoke.

// Test helpers may panic: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;
use ws_core::client::{self, Connector, Error, Phase, Transport};
use ws_core::handshake::{AcceptOptions, ClientRequest, HandshakeError};
use ws_core::stream::WebSocket;
use ws_core::{CloseCode, Config, Event};

/// The longest any test waits for anything.
const LIMIT: Duration = Duration::from_secs(30);

/// An echo server for one connection that picks the subprotocol `chat`
/// when offered and permessage-deflate when the client offers it.
async fn echo_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let config = Config::default().deflate(Some(ws_core::deflate::DeflateConfig::default()));
        let (mut socket, _) = WebSocket::accept_with(stream, config, |request| {
            let chat = request.protocols.iter().any(|p| p == "chat");
            Ok(AcceptOptions::default().protocol(chat.then(|| "chat".to_owned())))
        })
        .await
        .unwrap();
        while let Ok(Some(event)) = socket.recv().await {
            if let Some(message) = event.into_message() {
                socket.send(message).await.unwrap();
            }
        }
    });
    (address, task)
}

/// A port on 127.0.0.1 on which nothing listens.
fn closed_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A server for one connection that reads the request and answers `answer`.
async fn answering(answer: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).await.unwrap() == 1 {
            head.push(byte[0]);
        }
        stream.write_all(answer).await.unwrap();
        let _ = stream.shutdown().await;
        // Keep the socket until the client has read everything.
        let _ = timeout(LIMIT, stream.read(&mut byte)).await;
    });
    address
}

async fn roundtrip(socket: &mut WebSocket<Transport>, text: &str) {
    socket.send_text(text).await.unwrap();
    match timeout(LIMIT, socket.recv()).await.unwrap().unwrap() {
        Some(Event::Text(reply)) => assert_eq!(reply.as_str(), text),
        other => panic!("expected the echo, got {other:?}"),
    }
}

#[tokio::test]
async fn connect_returns_the_socket_and_the_servers_response() {
    let (address, server) = echo_server().await;
    let request = ClientRequest::new(&format!("ws://{address}/chat"))
        .unwrap()
        .protocol("chat");
    let config = Config::default().deflate(Some(ws_core::deflate::DeflateConfig::default()));
    let (mut socket, response) = Connector::new()
        .no_proxy()
        .config(config)
        .connect_request(&request)
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    assert_eq!(response.reason(), "Switching Protocols");
    assert!(response.headers().has_token("Upgrade", "websocket"));
    assert_eq!(response.protocol(), Some("chat"));
    assert!(
        response
            .extensions()
            .is_some_and(|e| e.starts_with("permessage-deflate")),
        "{:?}",
        response.extensions()
    );
    assert_eq!(response.peer_addr(), address);
    assert!(response.proxy().is_none());
    assert!(socket.connection().deflate_enabled());
    assert!(matches!(socket.get_ref(), Transport::Plain(_)));
    roundtrip(&mut socket, "hello, compressed hello, compressed hello").await;
    socket.close(CloseCode::NORMAL, "done").await.unwrap();
    while timeout(LIMIT, socket.recv())
        .await
        .unwrap()
        .unwrap()
        .is_some()
    {}
    server.await.unwrap();
}

#[tokio::test]
async fn the_free_function_connects_with_the_defaults() {
    let (address, server) = echo_server().await;
    // The defaults read the proxy environment; this test's URL is on
    // loopback and the test environment sets no proxy.
    let (mut socket, response) = client::connect(&format!("ws://{address}/")).await.unwrap();
    assert_eq!(response.protocol(), None);
    roundtrip(&mut socket, "plain").await;
    drop(socket);
    server.await.unwrap();
}

#[tokio::test]
async fn a_refusing_first_address_is_followed_by_the_second() {
    let (open, server) = echo_server().await;
    let closed = closed_address();
    let (mut socket, response) = Connector::new()
        .no_proxy()
        // A day's delay: only the refusal can start the second attempt.
        .happy_eyeballs_delay(Duration::from_secs(86_400))
        .resolve("ws.test", [closed, open])
        .connect("ws://ws.test/")
        .await
        .unwrap();
    assert_eq!(response.peer_addr(), open);
    roundtrip(&mut socket, "second address").await;
    drop(socket);
    server.await.unwrap();
}

#[tokio::test]
async fn a_refused_connection_names_every_address_tried() {
    let (first, second) = (closed_address(), closed_address());
    let error = Connector::new()
        .no_proxy()
        .resolve("ws.test", [first, second])
        .connect("ws://ws.test:9/")
        .await
        .unwrap_err();
    let Error::Connect {
        host,
        port,
        attempts,
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!((host.as_str(), *port), ("ws.test", 9));
    let tried: Vec<SocketAddr> = attempts.iter().map(|(address, _)| *address).collect();
    assert_eq!(tried, [first, second]);
    assert!(
        attempts
            .iter()
            .all(|(_, e)| e.kind() == io::ErrorKind::ConnectionRefused)
    );
    let text = error.to_string();
    assert!(
        text.starts_with("cannot connect to ws.test:9: Connection refused (tried "),
        "{text}"
    );
}

#[tokio::test]
async fn a_404_is_a_rejection_with_its_status_and_body() {
    let address = answering(
        b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nno such path\n",
    )
    .await;
    let error = Connector::new()
        .no_proxy()
        .connect(&format!("ws://{address}/missing"))
        .await
        .unwrap_err();
    let rejection = error.rejection().unwrap_or_else(|| panic!("{error:?}"));
    assert_eq!(rejection.status, 404);
    assert_eq!(rejection.body_first_line().as_deref(), Some("no such path"));
    assert_eq!(
        rejection.headers.get_str("Content-Type"),
        Some("text/plain")
    );
    assert_eq!(
        error.to_string(),
        "server answered HTTP/1.1 404 Not Found instead of 101 Switching Protocols: \"no such path\""
    );
}

#[tokio::test]
async fn a_101_with_a_wrong_accept_key_is_a_handshake_error() {
    let address = answering(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: bm90IHRoZSByaWdodCBrZXk=\r\n\r\n",
    )
    .await;
    let error = client::connect(&format!("ws://{address}/"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Handshake(HandshakeError::InvalidAccept)),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_server_that_closes_without_answering_is_an_eof() {
    let address = answering(b"").await;
    let error = client::connect(&format!("ws://{address}/"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_silent_server_times_out_in_the_handshake_phase() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        // Accept and read, never answer.
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut sink = Vec::new();
        let _ = timeout(LIMIT, stream.read_to_end(&mut sink)).await;
    });
    let limit = Duration::from_millis(200);
    let error = Connector::new()
        .no_proxy()
        .handshake_timeout(limit)
        .connect(&format!("ws://{address}/"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Timeout {
                phase: Phase::Handshake,
                after
            } if after == limit
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "timed out after 200ms waiting for the handshake response"
    );
    server.abort();
}

#[tokio::test]
async fn a_url_that_is_not_ws_is_a_url_error() {
    let error = client::connect("http://example.test/").await.unwrap_err();
    assert!(
        matches!(&error, Error::Url(HandshakeError::UnsupportedScheme(s)) if s == "http"),
        "{error:?}"
    );
}

fn assert_send<T: Send>(_: &T) {}

#[tokio::test]
async fn the_connect_future_and_the_socket_are_send() {
    let future = client::connect("ws://127.0.0.1:9/");
    assert_send(&future);
    drop(future);
    let connector = Connector::new();
    let request = ClientRequest::new("wss://127.0.0.1:9/").unwrap();
    let future = connector.connect_request(&request);
    assert_send(&future);
    drop(future);

    // And used from spawned tasks, the halves in two of them.
    let (address, server) = echo_server().await;
    let url = format!("ws://{address}/");
    let socket = tokio::spawn(async move { client::connect(&url).await.map(|(socket, _)| socket) })
        .await
        .unwrap()
        .unwrap();
    let (mut read, mut write) = socket.split();
    let writer = tokio::spawn(async move {
        write.send_text("from a task").await.unwrap();
        write
    });
    let reply = timeout(LIMIT, read.recv()).await.unwrap().unwrap();
    assert_eq!(reply, Some(Event::Text("from a task".into())));
    drop(writer.await.unwrap());
    drop(read);
    server.await.unwrap();
}

#[tokio::test]
async fn tcp_nodelay_is_on_by_default_and_can_be_turned_off() {
    let (address, server) = echo_server().await;
    let (socket, _) = Connector::new()
        .no_proxy()
        .nodelay(false)
        .connect(&format!("ws://{address}/"))
        .await
        .unwrap();
    assert!(!socket.get_ref().tcp().unwrap().nodelay().unwrap());
    drop(socket);
    server.await.unwrap();
    let (address, server) = echo_server().await;
    let (socket, _) = Connector::new()
        .no_proxy()
        .connect(&format!("ws://{address}/"))
        .await
        .unwrap();
    assert!(socket.get_ref().tcp().unwrap().nodelay().unwrap());
    drop(socket);
    server.await.unwrap();
}
