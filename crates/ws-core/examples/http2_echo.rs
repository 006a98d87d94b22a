//! An echo server for WebSockets over HTTP/2 (RFC 8441), plaintext with
//! prior knowledge (h2c): every connection speaks HTTP/2 from its first
//! byte, every extended CONNECT on any path becomes a WebSocket that sends
//! each message back, and any other request gets 404.
//!
//! ```sh
//! cargo run -p ws-core --features http2 --example http2_echo -- 127.0.0.1:8000
//! ```
//!
//! Prints `listening on ADDR` once it accepts connections and stops on
//! Ctrl-C. permessage-deflate is accepted when a client offers it; at most
//! 100 WebSockets at once per connection. One line on stderr per refused
//! request and per failed connection or WebSocket.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use ws_core::deflate::DeflateConfig;
use ws_core::http2::{Http2WebSocket, Settings, WebSocketRequest};
use ws_core::{Config, Error};

/// Serves one HTTP/2 connection: each WebSocket stream in a task of its
/// own, until the client goes away.
async fn connection(tcp: TcpStream, peer: SocketAddr, config: Config) {
    let on_websocket = |request: WebSocketRequest| {
        let stream = request.stream_id();
        // A refusal (400, 426 naming version 13) has been answered on the
        // stream when `accept` fails.
        match request.accept() {
            Ok(socket) => {
                tokio::spawn(async move {
                    if let Err(error) = echo_stream(socket).await {
                        eprintln!("{peer} stream {stream}: {error}");
                    }
                });
            }
            Err(error) => eprintln!("{peer} stream {stream}: refused: {error}"),
        }
    };
    let served = ws_core::http2::serve(tcp, config, Settings::default(), on_websocket);
    if let Err(error) = served.await {
        eprintln!("{peer}: {error}");
    }
}

/// Sends every data message back; pings are answered and the closing
/// handshake completed inside `recv`, which then returns `None`.
async fn echo_stream(mut socket: Http2WebSocket) -> Result<(), Error> {
    loop {
        let Some(event) = socket.recv().await? else {
            return Ok(());
        };
        let Some(message) = event.into_message() else {
            continue;
        };
        socket.send(message).await?;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = std::env::args().nth(1);
    let listener = TcpListener::bind(listen.as_deref().unwrap_or("127.0.0.1:8000")).await?;
    println!("listening on {}", listener.local_addr()?);
    let config = Config::default().deflate(Some(DeflateConfig::default()));
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = &mut stop => return Ok(()),
        };
        tcp.set_nodelay(true)?;
        tokio::spawn(connection(tcp, peer, config.clone()));
    }
}
