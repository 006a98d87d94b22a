//! An echo server on `tokio-tungstenite`, in the style of its `echo-server`
//! example: accept, upgrade with `accept_async`, then send back every text
//! and binary message (`ws.next()` → `ws.send()`). Pings and the closing
//! handshake are answered by tungstenite itself.

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;

fn main() -> bench_peers::Result<()> {
    let address = bench_peers::listen_address()?;
    bench_peers::runtime()?.block_on(async move {
        let listener = bench_peers::bind(address, "ws").await?;
        loop {
            let (stream, _) = listener.accept().await?;
            tokio::spawn(async move {
                if let Err(error) = serve(stream).await {
                    eprintln!("tungstenite-echo: {error}");
                }
            });
        }
    })
}

async fn serve(stream: TcpStream) -> bench_peers::Result<()> {
    stream.set_nodelay(true)?;
    let mut ws = tokio_tungstenite::accept_async(stream).await?;
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_text() || message.is_binary() {
            ws.send(message).await?;
        }
    }
    Ok(())
}
