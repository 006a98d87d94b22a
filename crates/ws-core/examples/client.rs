//! A client: connects to the `ws://` or `wss://` URL given as the first
//! argument (through the proxy the environment names, if any), sends three
//! messages, prints the replies, closes with 1000 and exits 0.
//!
//! ```sh
//! cargo run -p ws-core --features client --example client -- ws://127.0.0.1:8000/
//! ```

use std::time::Duration;

use ws_core::{CloseCode, Event};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .ok_or("usage: client ws://HOST:PORT/PATH or wss://...")?;
    let (mut socket, _response) = ws_core::client::connect(&url).await?;
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
