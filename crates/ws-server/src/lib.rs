//! `ws-server`: a conformant, hardened WebSocket echo server on ws-core's
//! tokio adapter, as a library so that its tests and other tools can run it
//! in-process. The binary is a thin command line over [`Server`].
//!
//! The server holds no protocol logic of its own: the HTTP head, the upgrade
//! validation, framing, limits and the closing handshake are ws-core's. This
//! crate moves connections through their phases and bounds each in time:
//! the handshake timeout, the idle timeout, the close timeout, the
//! connection limit and the shutdown.
//!
//! WebSockets over HTTP/2 (RFC 8441, ws-core's `http2`) run the same echo
//! session on each extended CONNECT stream: a connection that negotiates
//! ALPN `h2` over TLS, or opens with the HTTP/2 preface on the plaintext
//! port, carries any number of them (see [`ServerConfig::http2`]).
//!
//! # Example
//!
//! ```
//! use ws_core::handshake::ClientRequest;
//! use ws_core::stream::WebSocket;
//! use ws_core::{Config, Event};
//! use ws_server::{Server, ServerConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! runtime.block_on(async {
//!     let server = Server::bind("127.0.0.1:0", ServerConfig::default()).await?;
//!     let url = format!("ws://{}/", server.local_addr()?);
//!     let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//!     let running = tokio::spawn(server.run(async {
//!         let _ = stopped.await;
//!     }));
//!
//!     let request = ClientRequest::new(&url)?;
//!     let stream = tokio::net::TcpStream::connect((request.host(), request.port())).await?;
//!     let (mut client, _) = WebSocket::connect(stream, &request, Config::default()).await?;
//!     client.send_text("Hello, World").await?;
//!     assert_eq!(client.recv().await?, Some(Event::Text("Hello, World".into())));
//!
//!     // Shutting down closes open connections with 1001 (going away).
//!     let _ = stop.send(());
//!     let closed = client.recv().await?;
//!     assert!(matches!(closed, Some(Event::Close(Some(frame))) if frame.code.0 == 1001));
//!     drop(client);
//!     let summary = running.await?;
//!     assert_eq!((summary.connections_served, summary.messages_echoed), (1, 1));
//!     Ok(())
//! })
//! # }
//! ```

pub mod cli;
pub mod config;
mod connection;
pub mod http;
mod http2;
pub mod metered;
pub mod metrics;
mod parking;
#[cfg(target_os = "linux")]
mod readiness;
pub mod server;
pub mod tcp;
pub mod timers;
pub mod tls;
pub mod units;

pub use config::ServerConfig;
pub use server::{Server, Summary};
