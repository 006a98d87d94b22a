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
//! 100 WebSockets at once per connection.

use tokio::net::TcpListener;
use ws_core::deflate::DeflateConfig;
use ws_core::http2::{Http2WebSocket, Settings, WebSocketRequest};
use ws_core::{Config, Error};

fn on_websocket(request: WebSocketRequest) {
    // A refusal (400, 426 naming version 13) has been answered on the
    // stream when `accept` fails.
    match request.accept() {
        Ok(socket) => drop(tokio::spawn(echo(socket))),
        Err(error) => eprintln!("refused: {error}"),
    }
}

async fn echo(mut socket: Http2WebSocket) -> Result<(), Error> {
    // Pings are answered and the closing handshake completed by `recv`.
    while let Some(event) = socket.recv().await? {
        if let Some(message) = event.into_message() {
            socket.send(message).await?;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8000".to_owned());
    let listener = TcpListener::bind(&address).await?;
    println!("listening on {}", listener.local_addr()?);
    let config = Config::default().deflate(Some(DeflateConfig::default()));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = accepted?;
                stream.set_nodelay(true)?;
                let config = config.clone();
                tokio::spawn(async move {
                    let served =
                        ws_core::http2::serve(stream, config, Settings::default(), on_websocket);
                    if let Err(error) = served.await {
                        eprintln!("{peer}: {error}");
                    }
                });
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    Ok(())
}
