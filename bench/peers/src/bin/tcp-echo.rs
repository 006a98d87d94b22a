//! A plain TCP echo server: the floor the WebSocket servers are measured
//! against (the same ping-pong with no framing, masking or handshake).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Matches the read size a WebSocket server typically uses.
const BUFFER: usize = 64 * 1024;

fn main() -> bench_peers::Result<()> {
    let address = bench_peers::listen_address()?;
    bench_peers::runtime()?.block_on(async move {
        let listener = bench_peers::bind(address, "tcp").await?;
        loop {
            let (stream, _) = listener.accept().await?;
            tokio::spawn(async move {
                if let Err(error) = serve(stream).await {
                    eprintln!("tcp-echo: {error}");
                }
            });
        }
    })
}

async fn serve(mut stream: TcpStream) -> bench_peers::Result<()> {
    stream.set_nodelay(true)?;
    let mut buffer = vec![0u8; BUFFER];
    loop {
        let read = stream.read(&mut buffer).await?;
        let Some(data) = buffer.get(..read).filter(|data| !data.is_empty()) else {
            return Ok(());
        };
        stream.write_all(data).await?;
    }
}
