//! Opening and closing the connections of a run: the target is resolved
//! once, every connection gets a fresh handshake key, and the handshake and
//! the closing handshake are ws-core's (through its tokio adapter).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Buf;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, lookup_host};
use tokio::time::timeout;
use ws_core::deflate::{DeflateConfig, DeflateParams, negotiate_client};
use ws_core::handshake::{ClientRequest, HandshakeError, Negotiated};
use ws_core::http2::{Client, Http2Stream, Settings};
use ws_core::stream::WebSocket;
use ws_core::{CloseCode, Config, Connection};

use crate::args::{BenchArgs, BenchMode, MAX_SIZE};
use crate::failure::{Exit, Failure, io_message};
use crate::stats::OpenFailure;

/// How long the closing handshake at the end of a run may take.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the connections go, and how they are opened.
#[derive(Debug)]
pub struct Target {
    /// The URL as given.
    pub url: String,
    /// The address every connection goes to (resolved once).
    pub address: SocketAddr,
    /// The `ws://` URL of the upgrade requests.
    request_url: String,
    /// Subprotocols to offer.
    protocols: Vec<String>,
    /// Extra request headers.
    headers: Vec<(String, String)>,
    /// The Origin header, if any.
    origin: Option<String>,
    /// The limits of every connection, and the deflate settings to offer.
    pub config: Config,
    /// Bound on connect plus handshake.
    pub connect_timeout: Duration,
}

impl Target {
    /// Parses the URL and resolves its host; URL problems are usage errors,
    /// resolution problems connection failures.
    pub async fn resolve(args: &BenchArgs) -> Result<Self, Failure> {
        let url = match (args.mode, args.url.strip_prefix("tcp://")) {
            (BenchMode::Tcp, Some(rest)) => format!("ws://{rest}"),
            _ => args.url.clone(),
        };
        let request = ClientRequest::new(&url).map_err(|error| url_failure(&args.url, error))?;
        if request.is_secure() {
            // The figures would be the TLS library's more than the server's.
            return Err(Failure::new(
                Exit::Usage,
                format!(
                    "the load generator speaks plain ws:// only, not wss://: point it at the \
                     server's ws:// listener ({})",
                    args.url
                ),
            ));
        }
        // No context takeover in either direction. The client's frames are
        // compressed once and sent many times, so it cannot keep context; and
        // the run repeats one payload, which a server keeping its context
        // would compress to a back-reference: every message compressed on
        // its own gives the figures real traffic would.
        // --browser-offer: what Chromium and Python `websockets` offer.
        let deflate = args
            .deflate
            .then(|| DeflateConfig::default().no_context_takeover(!args.browser_offer));
        let address = lookup_host((request.host(), request.port()))
            .await
            .map_err(|error| {
                Failure::new(
                    Exit::Connect,
                    format!("cannot resolve {}: {}", request.host(), io_message(&error)),
                )
            })?
            .next()
            .ok_or_else(|| {
                Failure::new(
                    Exit::Connect,
                    format!("cannot resolve {}: no addresses found", request.host()),
                )
            })?;
        Ok(Self {
            url: args.url.clone(),
            address,
            request_url: url,
            protocols: args.handshake.protocols.clone(),
            headers: args.headers.clone(),
            origin: args.handshake.origin.clone(),
            config: Config::default()
                .max_frame_size(MAX_SIZE.max(Config::default().max_frame_size))
                .max_message_size(MAX_SIZE.max(Config::default().max_message_size))
                .deflate(deflate),
            connect_timeout: args.connect_timeout,
        })
    }

    /// A TCP connection with Nagle's algorithm off (every frame is sent at once).
    pub async fn connect_tcp(&self) -> Result<TcpStream, (OpenFailure, String)> {
        let connect = TcpStream::connect(self.address);
        let stream = timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| {
                (
                    OpenFailure::Connect,
                    format!("timed out connecting to {}", self.address),
                )
            })?
            .map_err(|error| {
                (
                    OpenFailure::Connect,
                    format!("cannot connect to {}: {}", self.address, io_message(&error)),
                )
            })?;
        stream.set_nodelay(true).map_err(|error| {
            (
                OpenFailure::Connect,
                format!("cannot set TCP_NODELAY: {}", io_message(&error)),
            )
        })?;
        Ok(stream)
    }

    /// Connects and performs the handshake, within the connect timeout.
    pub async fn open(&self) -> Result<Opened, (OpenFailure, String)> {
        let stream = self.connect_tcp().await?;
        let request = self.fresh_request()?;
        let handshake = WebSocket::connect(stream, &request, self.config.clone());
        self.finish(handshake).await
    }

    /// An HTTP/2 connection (TCP, prior knowledge) whose SETTINGS allow
    /// WebSockets, within the connect timeout; its I/O runs in a task of
    /// its own until the last WebSocket on it is gone.
    pub async fn connect_http2(&self) -> Result<Client, (OpenFailure, String)> {
        let stream = self.connect_tcp().await?;
        let handshake = Client::handshake(stream, Settings::default());
        let (client, connection) = timeout(self.connect_timeout, handshake)
            .await
            .map_err(|_| {
                (
                    OpenFailure::Handshake,
                    format!("timed out in the HTTP/2 handshake with {}", self.url),
                )
            })?
            .map_err(|error| {
                (
                    OpenFailure::Handshake,
                    format!(
                        "the server did not answer in HTTP/2 (prior knowledge): {}",
                        Failure::from_session(error).message
                    ),
                )
            })?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        if !client.extended_connect_enabled() {
            return Err((
                OpenFailure::Handshake,
                "the server's HTTP/2 SETTINGS do not enable extended CONNECT (RFC 8441): \
                 it cannot carry WebSockets over HTTP/2"
                    .to_owned(),
            ));
        }
        Ok(client)
    }

    /// Opens a WebSocket on a new stream of `client`'s HTTP/2 connection,
    /// within the connect timeout (which also bounds the wait for a free
    /// stream under the server's SETTINGS_MAX_CONCURRENT_STREAMS).
    pub async fn open_http2(
        &self,
        client: &Client,
    ) -> Result<Opened<Http2Stream>, (OpenFailure, String)> {
        let request = self.fresh_request()?;
        let handshake = client.connect(&request, self.config.clone());
        self.finish(handshake).await
    }

    /// Waits for a WebSocket handshake (over TCP or HTTP/2) within the
    /// connect timeout and checks what it negotiated.
    async fn finish<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        handshake: impl Future<Output = Result<(WebSocket<S>, Negotiated), ws_core::Error>>,
    ) -> Result<Opened<S>, (OpenFailure, String)> {
        let (ws, negotiated) = timeout(self.connect_timeout, handshake)
            .await
            .map_err(|_| {
                (
                    OpenFailure::Handshake,
                    format!(
                        "timed out waiting for the handshake response from {}",
                        self.url
                    ),
                )
            })?
            .map_err(|error| {
                (
                    OpenFailure::Handshake,
                    Failure::from_handshake(error).message,
                )
            })?;
        let deflate = self.deflate(&negotiated)?;
        let (stream, connection) = ws.into_parts();
        Ok(Opened {
            stream,
            connection,
            deflate,
        })
    }

    /// permessage-deflate as the server accepted it, when it was offered.
    fn deflate(
        &self,
        negotiated: &Negotiated,
    ) -> Result<Option<DeflateParams>, (OpenFailure, String)> {
        match (&self.config.deflate, &negotiated.extensions) {
            (None, _) => Ok(None),
            (Some(config), Some(extensions)) => negotiate_client(extensions, config)
                .map(Some)
                .map_err(|error| (OpenFailure::Handshake, format!("handshake failed: {error}"))),
            (Some(_), None) => Err((
                OpenFailure::Handshake,
                "--deflate was given but the server did not accept permessage-deflate".to_owned(),
            )),
        }
    }

    /// The request with a key of its own (ws-core makes one per request);
    /// the URL parsed once already, so parsing it again cannot fail.
    fn fresh_request(&self) -> Result<ClientRequest, (OpenFailure, String)> {
        let mut request = ClientRequest::new(&self.request_url)
            .map_err(|error| (OpenFailure::Handshake, error.to_string()))?;
        for protocol in &self.protocols {
            request = request.protocol(protocol.clone());
        }
        if let Some(origin) = &self.origin {
            request = request.origin(origin.clone());
        }
        crate::parse::apply_headers(request, &self.headers)
            .map_err(|error| (OpenFailure::Handshake, error))
    }
}

/// A connection after a successful handshake: over TCP, or (with
/// `--http2`) over an HTTP/2 stream.
#[derive(Debug)]
pub struct Opened<S = TcpStream> {
    /// The socket.
    pub stream: S,
    /// The protocol state, holding any bytes that came behind the 101.
    pub connection: Connection,
    /// permessage-deflate as negotiated, when it was offered.
    pub deflate: Option<DeflateParams>,
}

/// Ends a connection with the closing handshake (close 1000, wait for the
/// server's close and the end of TCP), discarding echoes still in flight.
pub async fn close<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    connection: Connection,
) -> Result<(), String> {
    let mut ws = WebSocket::from_connection(stream, connection);
    let closing = async {
        ws.close(CloseCode::NORMAL, "").await?;
        while ws.recv().await?.is_some() {}
        Ok::<(), ws_core::Error>(())
    };
    match timeout(CLOSE_TIMEOUT, closing).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(format!(
            "closing handshake: {}",
            Failure::from_session(error).message
        )),
        Err(_) => Err(format!(
            "closing handshake: no answer within {} s",
            CLOSE_TIMEOUT.as_secs()
        )),
    }
}

/// Writes what the protocol queued on its own (pongs the server is owed).
pub async fn flush_protocol<S: AsyncWrite + Unpin>(
    stream: &mut S,
    connection: &mut Connection,
) -> Result<(), String> {
    while connection.wants_write() {
        let outbound = connection.outbound();
        let written = stream
            .write(outbound.chunk())
            .await
            .map_err(|error| format!("write failed: {}", io_message(&error)))?;
        if written == 0 {
            return Err("write failed: the socket accepts no more data".to_owned());
        }
        outbound.advance(written);
    }
    Ok(())
}

/// A URL that cannot be used, as a usage error.
fn url_failure(url: &str, error: HandshakeError) -> Failure {
    match error {
        HandshakeError::UnsupportedScheme(scheme) => Failure::new(
            Exit::Usage,
            format!("unsupported URL scheme {scheme:?} in {url}; use ws://HOST[:PORT]/PATH"),
        ),
        HandshakeError::InvalidUrl(reason) => {
            Failure::new(Exit::Usage, format!("invalid URL {reason}"))
        }
        other => Failure::new(Exit::Usage, other.to_string()),
    }
}
