//! An in-process HTTP/2 WebSocket server and client for the http2_* tests.

use std::time::Duration;

use tokio::io::DuplexStream;
use ws_core::deflate::DeflateConfig;
use ws_core::handshake::{AcceptOptions, ClientRequest, HandshakeError};
use ws_core::http2::{Client, Http2WebSocket, Settings, WebSocketRequest, serve_with};
use ws_core::{Config, Event, Message};

/// How long any single step may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(20);

#[allow(dead_code)] // not every test file uses it
pub fn deflate() -> Config {
    Config::default().deflate(Some(DeflateConfig::default()))
}

/// The paths the test server knows:
/// - `/origin` accepts only `Origin: https://good.example` (403 otherwise);
/// - `/chat` selects the subprotocol `chat`;
/// - `/drop` accepts and drops the WebSocket at once;
/// - anything else accepts with no subprotocol.
///
/// Every accepted WebSocket echoes data messages until it ends.
pub fn on_websocket(request: WebSocketRequest) {
    let path = request.request().uri().path().to_owned();
    let accepted = request.accept_with(|upgrade| match path.as_str() {
        "/origin" => match upgrade.origin.as_deref() {
            Some("https://good.example") => Ok(AcceptOptions::default()),
            other => Err(HandshakeError::ForbiddenOrigin(
                other.unwrap_or_default().to_owned(),
            )),
        },
        "/chat" => Ok(AcceptOptions::default().protocol(upgrade.select_protocol(&["chat"]))),
        _ => Ok(AcceptOptions::default()),
    });
    match accepted {
        Ok((socket, _)) if path == "/drop" => drop(socket),
        Ok((socket, _)) => drop(tokio::spawn(echo(socket))),
        Err(_) => {}
    }
}

/// Echoes every data message until the WebSocket ends.
pub async fn echo(mut socket: Http2WebSocket) {
    while let Ok(Some(event)) = socket.recv().await {
        if let Some(message) = event.into_message()
            && socket.send(message).await.is_err()
        {
            break;
        }
    }
}

/// Runs the echo server on `io` with `config` and `settings`; plain HTTP
/// requests get 404.
pub fn spawn_server(io: DuplexStream, config: Config, settings: Settings) {
    tokio::spawn(serve_with(io, config, settings, on_websocket, |request| {
        let _ = request.not_found();
    }));
}

/// A client connected to a fresh echo server over an in-memory pipe.
pub async fn client_with(config: Config, settings: Settings) -> Client {
    let (client_io, server_io) = tokio::io::duplex(256 * 1024);
    spawn_server(server_io, config, settings);
    let (client, connection) =
        tokio::time::timeout(TIMEOUT, Client::handshake(client_io, Settings::default()))
            .await
            .expect("the HTTP/2 handshake finishes")
            .expect("the HTTP/2 handshake succeeds");
    tokio::spawn(connection);
    client
}

pub fn request(path: &str) -> ClientRequest {
    ClientRequest::from_parts(false, "localhost", 8000, path).expect("a valid request")
}

/// Sends `message` and expects it back.
pub async fn round_trip(socket: &mut Http2WebSocket, message: Message) {
    socket.send(message.clone()).await.expect("send");
    let event = tokio::time::timeout(TIMEOUT, socket.recv())
        .await
        .expect("the echo comes back")
        .expect("recv")
        .expect("an event, not the end");
    assert_eq!(event.into_message(), Some(message));
}

/// Receives until the closing handshake is over.
pub async fn finish(socket: &mut Http2WebSocket) -> Option<Event> {
    let mut last = None;
    while let Some(event) = tokio::time::timeout(TIMEOUT, socket.recv())
        .await
        .expect("the socket ends")
        .expect("recv")
    {
        last = Some(event);
    }
    last
}
