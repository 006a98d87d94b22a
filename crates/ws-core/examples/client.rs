//! A client: connects to the `ws://` URL given as the first argument, sends
//! three messages, prints the replies, closes with 1000 and exits 0.
//!
//! ```sh
//! cargo run -p ws-core --example client -- ws://127.0.0.1:8000/
//! ```

use std::time::Duration;

use tokio::net::TcpStream;
use ws_core::handshake::ClientRequest;
use ws_core::stream::WebSocket;
use ws_core::{CloseCode, Config, Event};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .ok_or("usage: client ws://HOST:PORT/PATH")?;
    let request = ClientRequest::new(&url)?;
    let stream = TcpStream::connect((request.host(), request.port())).await?;
    let (mut socket, _negotiated) = WebSocket::connect(stream, &request, Config::default()).await?;
    for text in ["one", "two", "three"] {
        socket.send_text(text).await?;
    }
    let mut replies = 0;
    while replies < 3 {
        match tokio::time::timeout(Duration::from_secs(10), socket.recv()).await?? {
            Some(Event::Text(text)) => {
                println!("{text}");
                replies += 1;
            }
            Some(Event::Binary(data)) => {
                println!("{} bytes of binary", data.len());
                replies += 1;
            }
            Some(_) => {}
            None => return Err("the server closed before replying".into()),
        }
    }
    socket.close(CloseCode::NORMAL, "done").await?;
    // The server's close, then the end of TCP.
    tokio::time::timeout(Duration::from_secs(10), async {
        while socket.recv().await?.is_some() {}
        Ok::<_, ws_core::Error>(())
    })
    .await??;
    Ok(())
}
