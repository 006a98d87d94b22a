//! An echo server on axum: `GET /ws` is a WebSocket that sends every
//! message back, and `/` serves a page that talks to it from a browser.
//! axum is a dev-dependency for this example only: `ws_core::hyper::upgrade`
//! takes axum's `Request` as it is, because axum serves with hyper.
//!
//! ```sh
//! cargo run -p ws-core --features hyper --example axum_echo -- 127.0.0.1:8000
//! ```
//!
//! Prints `listening on ws://ADDR` once it accepts connections (the
//! WebSocket is at `/ws`, the page at `/`) and stops on Ctrl-C.
//! permessage-deflate is accepted when a client offers it. Each connection's
//! read and write halves run in two tasks, as in the `echo_server` example.

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{Html, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use ws_core::deflate::DeflateConfig;
use ws_core::hyper::HyperWebSocket;
use ws_core::{Config, Message};

async fn ws(mut request: Request) -> Response {
    let config = Config::default().deflate(Some(DeflateConfig::default()));
    match ws_core::hyper::upgrade(&mut request, config) {
        Ok((response, socket)) => {
            tokio::spawn(async move {
                if let Ok(socket) = socket.await {
                    let _ = echo(socket).await;
                }
            });
            response.map(|()| Body::empty())
        }
        Err(refused) => ws_core::http::refusal(&refused).map(Body::from),
    }
}

async fn echo(socket: HyperWebSocket) -> Result<(), ws_core::Error> {
    let (mut read, mut write) = socket.split();
    // A small queue between the halves: a slow reader makes the writer wait
    // (ws-core's write buffer) and the writer makes this reader wait.
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

/// The page: a socket to `/ws` on the same host, a box to send from and a
/// log of what comes back. Its element ids are those of ws-server's page,
/// which `cargo xtask interop` drives in Chromium.
const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>ws-core axum echo</title>
<p>status: <span id="status">connecting</span>, extensions: <span id="extensions"></span></p>
<input id="message" value="Hello, axum"> <button id="send">send</button> <button id="close">close</button>
<div id="log"></div>
<script>
const ws = new WebSocket(`ws://${location.host}/ws`);
const status = document.getElementById("status");
ws.onopen = () => {
  status.textContent = "open";
  document.getElementById("extensions").textContent = ws.extensions;
};
ws.onclose = (event) => { status.textContent = `closed ${event.code} ${event.reason}`; };
ws.onmessage = (event) => {
  const line = document.createElement("div");
  line.className = "received";
  line.textContent = event.data;
  document.getElementById("log").append(line);
};
document.getElementById("send").onclick = () => ws.send(document.getElementById("message").value);
document.getElementById("close").onclick = () => ws.close(1000, "bye");
</script>
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8000".to_owned());
    let app = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/ws", get(ws));
    let listener = TcpListener::bind(&address).await?;
    println!("listening on ws://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
