//! `ws_core::hyper::upgrade` behind a real hyper 1.x server: the future and
//! the socket are `Send` and run in `tokio::spawn`, the halves work,
//! permessage-deflate is negotiated and used, a frame sent in the same write
//! as the request head is not lost, and refusals reach the client.

// Test helpers may panic: that is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use ws_core::deflate::DeflateConfig;
use ws_core::handshake::{ClientHandshake, ClientProgress, ClientRequest};
use ws_core::hyper::{HyperWebSocket, UpgradeFuture};
use ws_core::stream::{ReadHalf, WebSocket, WriteHalf};
use ws_core::{CloseCode, Config, Connection, Event, Message, Role};

const TIMEOUT: Duration = Duration::from_secs(10);

fn assert_send<T: Send>(_: &T) {}

fn deflate() -> Config {
    Config::default().deflate(Some(DeflateConfig::default()))
}

/// Upgrades every request and echoes through the halves, each in a task.
async fn handle(mut request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    match ws_core::hyper::upgrade(&mut request, deflate()) {
        Ok((response, socket)) => {
            assert_send(&socket);
            let offered = request.headers().contains_key("sec-websocket-extensions");
            assert_eq!(
                socket.accepted().and_then(|a| a.deflate()).is_some(),
                offered
            );
            tokio::spawn(echo_in_halves(socket));
            Ok(response.map(|()| Full::default()))
        }
        Err(refused) => Ok(ws_core::http::refusal(&refused).map(Full::from)),
    }
}

async fn echo_in_halves(socket: UpgradeFuture) {
    let socket: HyperWebSocket = socket.await.expect("upgrade");
    let (mut read, mut write): (ReadHalf<_>, WriteHalf<_>) = socket.split();
    assert_send(&read);
    assert_send(&write);
    let (echoes, mut to_send) = tokio::sync::mpsc::channel::<Message>(4);
    let writer = tokio::spawn(async move {
        while let Some(message) = to_send.recv().await {
            write.send(message).await?;
        }
        Ok::<_, ws_core::Error>(write)
    });
    while let Ok(Some(event)) = read.recv().await {
        if let Some(message) = event.into_message() {
            echoes.send(message).await.unwrap();
        }
    }
    drop(echoes);
    let _ = writer.await;
}

/// A hyper HTTP/1.1 server with upgrades on 127.0.0.1:0.
async fn server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(handle))
                    .with_upgrades()
                    .await;
            });
        }
    });
    address
}

/// Sends `raw` and reads until the server closes, returning the response.
async fn exchange(address: SocketAddr, raw: &str) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(raw.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut response))
        .await
        .expect("the server closes after a refusal")
        .unwrap();
    String::from_utf8(response).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_in_the_same_write_as_the_head_is_echoed_with_deflate() {
    let address = server().await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.set_nodelay(true).unwrap();

    // The request head and a first (uncompressed) frame in one write.
    let request = ClientRequest::new(&format!("ws://{address}/any/path")).unwrap();
    let mut handshake = ClientHandshake::new(&request, deflate());
    let mut early = Connection::new(Role::Client, Config::default());
    early.queue_text("sent with the request head").unwrap();
    let mut bytes = handshake.request_bytes().to_vec();
    bytes.extend_from_slice(&early.take_outbound());
    stream.write_all(&bytes).await.unwrap();

    // The 101, then a client connection over whatever followed it.
    let (connection, negotiated) = loop {
        let read = tokio::time::timeout(TIMEOUT, stream.read_buf(handshake.read_buffer()))
            .await
            .unwrap()
            .unwrap();
        assert_ne!(read, 0, "the server closed before answering");
        match handshake.advance().unwrap() {
            ClientProgress::NeedMore(more) => handshake = more,
            ClientProgress::Done(connection, negotiated) => break (connection, negotiated),
            other => panic!("{other:?}"),
        }
    };
    assert!(
        negotiated
            .extensions
            .as_deref()
            .is_some_and(|e| e.starts_with("permessage-deflate")),
        "deflate negotiated: {negotiated:?}"
    );
    assert!(connection.deflate_enabled());
    let mut client = WebSocket::from_connection(stream, connection);

    let recv = async |client: &mut WebSocket<TcpStream>| {
        tokio::time::timeout(TIMEOUT, client.recv())
            .await
            .expect("an echo within the timeout")
            .unwrap()
    };
    assert_eq!(
        recv(&mut client).await,
        Some(Event::Text("sent with the request head".into()))
    );

    let text = "compressible, compressible, compressible ".repeat(500);
    client.send_text(&text).await.unwrap();
    assert_eq!(recv(&mut client).await, Some(Event::Text(text.into())));

    let data: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    client.send_binary(&data).await.unwrap();
    assert_eq!(recv(&mut client).await, Some(Event::Binary(data.into())));

    client.ping(b"still there?").await.unwrap();
    assert_eq!(
        recv(&mut client).await,
        Some(Event::Pong(Bytes::from_static(b"still there?")))
    );

    client.close(CloseCode::NORMAL, "done").await.unwrap();
    assert!(matches!(
        recv(&mut client).await,
        Some(Event::Close(Some(frame))) if frame.code == CloseCode::NORMAL
    ));
    assert_eq!(recv(&mut client).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upgrade_future_is_send_and_runs_in_tokio_spawn() {
    let address = server().await;
    // The client side too, through `tokio::spawn`, which requires `Send`.
    let client = tokio::spawn(async move {
        let request = ClientRequest::new(&format!("ws://{address}/")).unwrap();
        let stream = TcpStream::connect(address).await.unwrap();
        let (mut socket, negotiated) = WebSocket::connect(stream, &request, Config::default())
            .await
            .unwrap();
        assert_eq!(negotiated.extensions, None, "deflate only when offered");
        socket.send_text("hello").await.unwrap();
        let echo = tokio::time::timeout(TIMEOUT, socket.recv()).await.unwrap();
        socket.close(CloseCode::NORMAL, "").await.unwrap();
        echo.unwrap()
    });
    assert_eq!(client.await.unwrap(), Some(Event::Text("hello".into())));
}

#[tokio::test]
async fn plain_get_is_refused_with_426() {
    let address = server().await;
    let response = exchange(
        address,
        "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 426 "), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("\r\nupgrade: websocket\r\n")
    );
    assert!(response.ends_with("handshake: Upgrade header is missing or has no websocket token\n"));
}

#[tokio::test]
async fn wrong_version_is_refused_with_426_naming_13() {
    let address = server().await;
    let response = exchange(
        address,
        "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 426 "), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("\r\nsec-websocket-version: 13\r\n"),
        "{response}"
    );
}

#[tokio::test]
async fn missing_key_is_refused_with_400() {
    let address = server().await;
    let response = exchange(
        address,
        "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
}
