//! The byte stream under a connection: ws-core's client
//! [`Transport`](ws_core::client::Transport), TCP or TLS over TCP.
//!
//! The session reads and writes it through ws-core's split halves, so
//! reading never waits on the peer's receive window (a server that stops
//! reading while its own writes are blocked cannot deadlock us) and the
//! write queue is bounded by ws-core's high-water mark.

pub use ws_core::client::Transport;
