//! An echo server on hyper 1.x: every request, on any path, is upgraded
//! with `ws_core::hyper::upgrade`, and each message is sent back.
//!
//! ```sh
//! cargo run -p ws-core --features hyper --example hyper_echo -- 127.0.0.1:8000
//! ```
//!
//! Prints `listening on ws://ADDR` once it accepts connections and stops on
//! Ctrl-C. permessage-deflate is accepted when a client offers it; a plain
//! HTTP request gets the 426 refusal that says it must upgrade.

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use ws_core::Config;
use ws_core::deflate::DeflateConfig;
use ws_core::hyper::HyperWebSocket;

async fn handle(mut request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let config = Config::default().deflate(Some(DeflateConfig::default()));
    match ws_core::hyper::upgrade(&mut request, config) {
        Ok((response, socket)) => {
            tokio::spawn(async move {
                if let Ok(socket) = socket.await {
                    let _ = echo(socket).await;
                }
            });
            Ok(response.map(|()| Full::default()))
        }
        Err(refused) => Ok(ws_core::http::refusal(&refused).map(Full::from)),
    }
}

async fn echo(mut socket: HyperWebSocket) -> Result<(), ws_core::Error> {
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
    println!("listening on ws://{}", listener.local_addr()?);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = accepted?;
                stream.set_nodelay(true)?;
                tokio::spawn(async move {
                    let connection = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service_fn(handle))
                        .with_upgrades();
                    if let Err(error) = connection.await {
                        eprintln!("{peer}: {error}");
                    }
                });
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
