//! A chat room: every text message a client sends goes, unchanged, to every
//! connected client, its sender included.
//!
//! ```sh
//! cargo run -p ws-core --example broadcast -- 127.0.0.1:8000
//! ```
//!
//! Each message is framed (and compressed, for clients that negotiated
//! permessage-deflate without context takeover) once, as a
//! [`PreparedMessage`], and the same bytes are queued on every connection.
//! A slow client never blocks the others: each has a bounded queue, and a
//! message that finds it full is skipped for that client (Python
//! `websockets`' `broadcast()` makes the same choice); a client that keeps
//! falling behind is dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{self, error::TrySendError};
use ws_core::deflate::DeflateConfig;
use ws_core::stream::WebSocket;
use ws_core::{Config, Event, Message, PreparedMessage};

/// Messages waiting for one client; past this, it is skipped.
const CLIENT_QUEUE: usize = 256;
/// Consecutive skips after which a client is dropped.
const MAX_SKIPS: u32 = 1024;

/// The connected clients, each by the sender of its queue.
#[derive(Default)]
struct Room {
    clients: Mutex<HashMap<u64, Client>>,
    next_id: AtomicU64,
}

struct Client {
    queue: mpsc::Sender<PreparedMessage>,
    skipped: u32,
}

impl Room {
    fn join(&self, queue: mpsc::Sender<PreparedMessage>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.insert(id, Client { queue, skipped: 0 });
        id
    }

    fn leave(&self, id: u64) {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.remove(&id);
    }

    /// Queues `message` for every client without waiting for any of them.
    fn broadcast(&self, message: &PreparedMessage) {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.retain(|_, client| match client.queue.try_send(message.clone()) {
            Ok(()) => {
                client.skipped = 0;
                true
            }
            Err(TrySendError::Full(_)) => {
                client.skipped += 1;
                client.skipped < MAX_SKIPS
            }
            Err(TrySendError::Closed(_)) => false,
        });
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8000".to_owned());
    let listener = TcpListener::bind(&address).await?;
    println!("listening on ws://{}", listener.local_addr()?);
    let room = Arc::new(Room::default());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = accepted?;
                let room = Arc::clone(&room);
                tokio::spawn(async move {
                    if let Err(error) = serve(stream, &room).await {
                        eprintln!("{peer}: {error}");
                    }
                });
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

async fn serve(stream: TcpStream, room: &Room) -> Result<(), ws_core::Error> {
    stream.set_nodelay(true)?;
    // No context takeover on our side: then a message is compressed once
    // for every client, whatever each has received before.
    let deflate = DeflateConfig::default().no_context_takeover(true);
    let config = Config::default().deflate(Some(deflate));
    let (socket, _request) =
        WebSocket::accept_with(stream, config, |_| Ok(Default::default())).await?;
    let (mut read, mut write) = socket.split();
    let (queue, mut messages) = mpsc::channel::<PreparedMessage>(CLIENT_QUEUE);
    let id = room.join(queue);
    let writer = tokio::spawn(async move {
        while let Some(message) = messages.recv().await {
            write.send_prepared(&message).await?;
        }
        Ok::<_, ws_core::Error>(write)
    });
    let received = async {
        while let Some(event) = read.recv().await? {
            if let Event::Text(text) = event {
                room.broadcast(&PreparedMessage::new(Message::Text(text)));
            }
        }
        Ok::<_, ws_core::Error>(())
    }
    .await;
    room.leave(id);
    if let Ok(Ok(write)) = writer.await {
        drop(read.reunite(write));
    }
    received
}
