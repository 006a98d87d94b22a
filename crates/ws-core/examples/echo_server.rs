//! An echo server on the tokio adapter, with each connection's read and
//! write halves in two tasks.
//!
//! ```sh
//! cargo run -p ws-core --example echo_server -- 127.0.0.1:8000
//! ```
//!
//! Prints `listening on ws://ADDR` once it accepts connections and stops on
//! Ctrl-C. permessage-deflate is accepted when a client offers it. Pings are
//! answered and the closing handshake completed by the read half on its own;
//! the write half only sends the echoes.

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use ws_core::deflate::DeflateConfig;
use ws_core::stream::WebSocket;
use ws_core::{Config, Message};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8000".to_owned());
    let listener = TcpListener::bind(&address).await?;
    println!("listening on ws://{}", listener.local_addr()?);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = accepted?;
                tokio::spawn(async move {
                    if let Err(error) = serve(stream).await {
                        eprintln!("{peer}: {error}");
                    }
                });
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

async fn serve(stream: TcpStream) -> Result<(), ws_core::Error> {
    stream.set_nodelay(true)?;
    let config = Config::default().deflate(Some(DeflateConfig::default()));
    let (socket, _request) =
        WebSocket::accept_with(stream, config, |_| Ok(Default::default())).await?;
    let (mut read, mut write) = socket.split();
    // A small queue between the halves: when the client reads slowly, the
    // writer waits for room (ws-core's write buffer) and the reader waits
    // for the writer, so the server never holds more than a few messages.
    let (echoes, mut to_send) = mpsc::channel::<Message>(16);
    let writer = tokio::spawn(async move {
        while let Some(message) = to_send.recv().await {
            write.send(message).await?;
        }
        Ok::<_, ws_core::Error>(write)
    });
    while let Some(event) = read.recv().await? {
        if let Some(message) = event.into_message()
            && echoes.send(message).await.is_err()
        {
            break;
        }
    }
    drop(echoes);
    // Keep the write half until the writer is done, so that its drop does
    // not close a connection that is still echoing.
    if let Ok(Ok(write)) = writer.await {
        drop(read.reunite(write));
    }
    Ok(())
}
