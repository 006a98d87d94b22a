//! `-l/--listen [HOST:]PORT`: wait for one WebSocket client and answer its
//! opening handshake (ws-core's server side), so that the session can talk
//! to it exactly as it talks to a server. Plain `ws://` only.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::time::timeout;
use ws_core::Config;
use ws_core::handshake::{AcceptOptions, Negotiated};
use ws_core::stream::WebSocket;

use crate::failure::{Exit, Failure, io_message};
use crate::output::describe_payload;
use crate::signals::Signals;
use crate::transport::Transport;

/// How long a client that connected may take to send its upgrade request.
const HANDSHAKE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A bound listening socket, before a client came.
#[derive(Debug)]
pub struct Listener {
    listener: TcpListener,
}

impl Listener {
    /// Binds `address` (port 0 picks a free port).
    pub async fn bind(address: SocketAddr) -> Result<Self, Failure> {
        let listener = TcpListener::bind(address).await.map_err(|error| {
            Failure::new(
                Exit::Connect,
                format!("cannot listen on {address}: {}", io_message(&error)),
            )
        })?;
        Ok(Self { listener })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> Result<SocketAddr, Failure> {
        self.listener.local_addr().map_err(|error| {
            Failure::new(
                Exit::Other,
                format!("cannot read the listening address: {}", io_message(&error)),
            )
        })
    }

    /// Waits for a client whose handshake succeeds (a client that fails its
    /// handshake is answered with the HTTP error and the next one is
    /// awaited), choosing the first of `protocols` that it offers. Ctrl-C
    /// while waiting is exit 130. `report` gets one line per event worth
    /// telling (a refused request; with `verbose`, the request head).
    pub async fn accept_one(
        self,
        config: Config,
        protocols: &[String],
        verbose: bool,
        mut report: impl FnMut(String),
    ) -> Result<(WebSocket<Transport>, Negotiated, SocketAddr), Failure> {
        let mut signals = Signals::new();
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => accepted.map_err(|error| {
                    Failure::new(Exit::Connect, format!("cannot accept a connection: {}", io_message(&error)))
                })?,
                () = signals.recv() => {
                    return Err(Failure::new(Exit::Interrupted, "interrupted while waiting for a client"));
                }
            };
            let _ = stream.set_nodelay(true);
            let mut shown = None;
            let handshake =
                WebSocket::accept_with(Transport::Plain(stream), config.clone(), |request| {
                    if verbose {
                        shown = Some(describe_request(request));
                    }
                    let offered: Vec<&str> = protocols.iter().map(String::as_str).collect();
                    Ok(AcceptOptions::default().protocol(request.select_protocol(&offered)))
                });
            let result = timeout(HANDSHAKE_LIMIT, handshake).await;
            if let Some(head) = shown {
                report(head);
            }
            match result {
                Ok(Ok((socket, request))) => {
                    let negotiated = negotiated_of(&socket, &request, protocols);
                    return Ok((socket, negotiated, peer));
                }
                Ok(Err(error)) => report(format!("refused a connection from {peer}: {error}")),
                Err(_) => report(format!(
                    "dropped a connection from {peer}: no upgrade request within 10s"
                )),
            }
        }
    }
}

/// What was agreed with the client.
fn negotiated_of(
    socket: &WebSocket<Transport>,
    request: &ws_core::handshake::UpgradeRequest,
    protocols: &[String],
) -> Negotiated {
    let mut negotiated = Negotiated::default();
    let offered: Vec<&str> = protocols.iter().map(String::as_str).collect();
    negotiated.protocol = request.select_protocol(&offered);
    if socket.connection().deflate_enabled() {
        negotiated.extensions = Some("permessage-deflate".to_owned());
    }
    negotiated
}

/// The client's request head, `> `-marked, for `-v`.
fn describe_request(request: &ws_core::handshake::UpgradeRequest) -> String {
    let head = &request.head;
    let mut text = format!(
        "> {} {} HTTP/1.{}",
        head.method, head.target, head.minor_version
    );
    for header in head.headers.iter() {
        text.push_str(&format!(
            "\n> {}: {}",
            header.name,
            describe_payload(&header.value)
        ));
    }
    text
}
