//! Opening a connection from a URL: `connect("wss://...")` to a
//! [`stream::WebSocket`](crate::stream::WebSocket) (feature `client`).
//!
//! [`connect`] does every step a client needs before the first message:
//!
//! 1. the proxy: an explicit one, or the one the environment names
//!    (`wss_proxy`/`https_proxy`, `ws_proxy`/`http_proxy`, `all_proxy`,
//!    honouring `no_proxy`, as curl and Python `websockets` do); HTTP
//!    `CONNECT` with Basic credentials from the proxy URL, or SOCKS5
//!    (`socks5h://` lets the proxy resolve the name);
//! 2. name resolution, then every address in turn, Happy Eyeballs style
//!    (RFC 8305: the families interleaved, the next attempt started after
//!    250 ms or as soon as one fails);
//! 3. TLS for `wss://` with rustls: SNI, ALPN `http/1.1`, the bundled
//!    Mozilla roots by default, or [`TlsOptions`] (trusted PEM files, a
//!    client certificate with an optionally encrypted key) or a
//!    `rustls::ClientConfig` of your own;
//! 4. the WebSocket handshake, validated strictly: an HTTP/1.1 upgrade,
//!    or with feature `http2` and [`Connector::http2`], an extended CONNECT
//!    on an HTTP/2 stream (RFC 8441).
//!
//! Each step has a time limit ([`Connector`] sets them) and each failure
//! is an [`Error`] variant that keeps its cause. The result is the socket
//! over a [`Transport`] (TCP or TLS, `Send`) and the server's [`Response`].
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let (mut socket, response) = ws_core::client::connect("wss://echo.example/chat").await?;
//! println!("connected, subprotocol {:?}", response.protocol());
//! socket.send_text("hello").await?;
//! # Ok(())
//! # }
//! ```
//!
//! With options:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use ws_core::client::{Connector, Proxy, TlsOptions};
//! use ws_core::handshake::ClientRequest;
//!
//! let tls = TlsOptions::new()
//!     .trust_pem_file("ca.pem")
//!     .client_certificate_pem_file("client.pem")
//!     .client_key_pem_file("client.key")
//!     .key_passphrase("correct horse")
//!     .build()?;
//! let request = ClientRequest::new("wss://internal.example/feed")?.protocol("feed.v2");
//! let (socket, response) = Connector::new()
//!     .proxy(Proxy::parse("http://user:secret@proxy.example:3128")?)
//!     .tls_config(tls)
//!     .open_timeout(Duration::from_secs(5))
//!     .connect_request(&request)
//!     .await?;
//! # drop((socket, response));
//! # Ok(())
//! # }
//! ```

mod error;
mod proxy;
mod resolve;
mod response;
mod tls;
mod transport;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, timeout_at};

#[cfg(feature = "http2")]
pub use error::NoHttp2;
pub use error::{Error, PemFile, Phase, TlsConfigError};
pub use proxy::{Proxy, ProxyKind, ProxyUrlError};
pub use response::{HttpVersion, Response};
pub use tls::{TlsOptions, TlsStream};
#[cfg(feature = "http2")]
pub use transport::Http2Transport;
pub use transport::Transport;

use crate::Config;
use crate::handshake::{
    ClientHandshake, ClientProgress, ClientRequest, HandshakeError, parse_response_head,
};
use crate::stream::WebSocket;
use resolve::Dialer;

/// The default limit on name resolution, TCP and the proxy's tunnel.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default limit on the TLS and WebSocket handshakes together.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a WebSocket connection to a `ws://` or `wss://` URL with the
/// defaults of [`Connector::new`]: the proxy from the environment, the
/// bundled Mozilla roots for `wss://`, [`Config::default`], 10 s to
/// connect and 10 s for the handshakes.
pub async fn connect(url: &str) -> Result<(WebSocket<Transport>, Response), Error> {
    Connector::new().connect(url).await
}

/// Which proxy a [`Connector`] uses.
#[derive(Debug, Clone)]
enum ProxyChoice {
    /// The one the environment names for the URL, if any.
    Environment,
    /// None at all.
    Direct,
    /// This one, whatever the environment says.
    Explicit(Proxy),
}

/// The options of a connection: the protocol configuration, the proxy, TLS,
/// Happy Eyeballs and the time limits. Built once, it can open any number
/// of connections (`&self`), from several tasks.
///
/// Compared with tokio-tungstenite's `connect_async_tls_with_config(request,
/// config, nodelay, connector)` this is a builder, so options can be added
/// without breaking calls, and it covers what that leaves to the caller
/// (proxies, timeouts, all addresses); Python `websockets`' `connect(uri,
/// proxy=..., ssl=..., open_timeout=...)` is the closest in scope.
#[derive(Debug, Clone)]
pub struct Connector {
    #[cfg(feature = "http2")]
    http2: Http2Mode,
    config: Config,
    proxy: ProxyChoice,
    tls: Option<Arc<rustls::ClientConfig>>,
    dialer: Dialer,
    connect_timeout: Option<Duration>,
    handshake_timeout: Option<Duration>,
    open_timeout: Option<Duration>,
}

impl Default for Connector {
    fn default() -> Self {
        Self::new()
    }
}

impl Connector {
    /// The defaults: [`Config::default`], the proxy from the environment,
    /// the bundled Mozilla roots, `TCP_NODELAY`, a 250 ms Happy Eyeballs
    /// delay, [`DEFAULT_CONNECT_TIMEOUT`] and [`DEFAULT_HANDSHAKE_TIMEOUT`],
    /// no overall limit.
    pub fn new() -> Self {
        Self {
            #[cfg(feature = "http2")]
            http2: Http2Mode::Off,
            config: Config::default(),
            proxy: ProxyChoice::Environment,
            tls: None,
            dialer: Dialer::default(),
            connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
            open_timeout: None,
        }
    }

    /// Whether the WebSocket goes over HTTP/2 (RFC 8441): see
    /// [`Http2Mode`]; the default is [`Http2Mode::Off`]. The socket type
    /// stays `WebSocket<Transport>` ([`Transport::Http2`]) and
    /// [`Response::http_version`] tells which protocol carried it.
    #[cfg(feature = "http2")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http2")))]
    pub fn http2(mut self, mode: Http2Mode) -> Self {
        self.http2 = mode;
        self
    }

    /// The connection's configuration (limits, permessage-deflate: with
    /// `Config::deflate` set, the request offers it).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Connects through this proxy, whatever the environment says.
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.proxy = ProxyChoice::Explicit(proxy);
        self
    }

    /// Connects directly, ignoring the proxy environment variables.
    pub fn no_proxy(mut self) -> Self {
        self.proxy = ProxyChoice::Direct;
        self
    }

    /// Uses the proxy the environment names, as [`Proxy::from_env`] reads
    /// it (the default).
    pub fn proxy_from_env(mut self) -> Self {
        self.proxy = ProxyChoice::Environment;
        self
    }

    /// The TLS configuration for `wss://`: from [`TlsOptions::build`], or
    /// any `rustls::ClientConfig` (set its `alpn_protocols` to
    /// `http/1.1` for servers that insist on ALPN). With
    /// `Http2Mode::On` or `Auto` (feature `http2`) the ALPN list of the
    /// HTTP/2 attempt is replaced by `h2` (and `http/1.1`).
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// The limit on name resolution, TCP and the proxy's tunnel (default
    /// [`DEFAULT_CONNECT_TIMEOUT`]); `None` for none.
    pub fn connect_timeout(mut self, limit: impl Into<Option<Duration>>) -> Self {
        self.connect_timeout = limit.into();
        self
    }

    /// The limit on the TLS and WebSocket handshakes together, from the
    /// end of the connect phase (default [`DEFAULT_HANDSHAKE_TIMEOUT`]);
    /// `None` for none.
    pub fn handshake_timeout(mut self, limit: impl Into<Option<Duration>>) -> Self {
        self.handshake_timeout = limit.into();
        self
    }

    /// A limit on the whole opening, every phase together (default none),
    /// as Python `websockets`' `open_timeout`. It applies on top of the
    /// two above: the first limit to expire ends the attempt.
    pub fn open_timeout(mut self, limit: impl Into<Option<Duration>>) -> Self {
        self.open_timeout = limit.into();
        self
    }

    /// How long an attempt to one address runs alone before the next
    /// address is tried alongside it (RFC 8305's Connection Attempt Delay,
    /// default 250 ms). A failed attempt starts the next one at once.
    pub fn happy_eyeballs_delay(mut self, delay: Duration) -> Self {
        self.dialer.attempt_delay = delay;
        self
    }

    /// Connects to these addresses instead of resolving `host` (the
    /// server's or a proxy's name), in this order, as curl's `--resolve`
    /// and reqwest's `resolve_to_addrs` do: for a staging server behind a
    /// production name, or a test. An address's port is used as given,
    /// unless it is 0, which stands for the URL's (or proxy's) port. TLS
    /// still checks the certificate against `host`.
    pub fn resolve(
        mut self,
        host: &str,
        addresses: impl IntoIterator<Item = std::net::SocketAddr>,
    ) -> Self {
        Arc::make_mut(&mut self.dialer.overrides)
            .insert(host.to_ascii_lowercase(), addresses.into_iter().collect());
        self
    }

    /// Whether to set `TCP_NODELAY` (default on: small messages leave at
    /// once instead of waiting for the previous one's acknowledgement).
    pub fn nodelay(mut self, nodelay: bool) -> Self {
        self.dialer.nodelay = nodelay;
        self
    }

    /// The proxy a connection for `request` goes through, if any: the
    /// explicit one, or the environment's ([`Proxy::from_env`]).
    pub fn proxy_for(&self, request: &ClientRequest) -> Result<Option<Proxy>, Error> {
        match &self.proxy {
            ProxyChoice::Direct => Ok(None),
            ProxyChoice::Explicit(proxy) => Ok(Some(proxy.clone())),
            ProxyChoice::Environment => Proxy::from_env(
                request.is_secure(),
                request.host(),
                request.port(),
                |name| std::env::var(name).ok(),
            ),
        }
    }

    /// Opens a connection to a `ws://` or `wss://` URL.
    pub async fn connect(&self, url: &str) -> Result<(WebSocket<Transport>, Response), Error> {
        let request = ClientRequest::new(url).map_err(Error::Url)?;
        self.connect_request(&request).await
    }

    /// Opens a connection for a prepared request (subprotocols, origin,
    /// headers of your own).
    pub async fn connect_request(
        &self,
        request: &ClientRequest,
    ) -> Result<(WebSocket<Transport>, Response), Error> {
        let open = Limit::after(self.open_timeout);
        #[cfg(feature = "http2")]
        match self.http2 {
            Http2Mode::On => {
                if let Some(opened) = self.connect_http2(request, open, true).await? {
                    return Ok(opened);
                }
            }
            // Plaintext has no ALPN to ask with, and HTTP/2 prior
            // knowledge would fail with an HTTP/1.1 server: Auto asks only
            // over TLS.
            Http2Mode::Auto if request.is_secure() => {
                if let Some(opened) = self.connect_http2(request, open, false).await? {
                    return Ok(opened);
                }
            }
            Http2Mode::Auto | Http2Mode::Off => {}
        }
        let (transport, peer_addr, proxy, limit) = self.establish(request, open, None).await?;
        self.upgrade(transport, request, peer_addr, proxy, limit)
            .await
    }

    /// TCP (through the proxy, if any), then TLS for `wss://`, offering
    /// `alpn` instead of the TLS configuration's protocols when given.
    /// Returns the transport, the TCP peer, the proxy and the limit on the
    /// handshakes.
    async fn establish(
        &self,
        request: &ClientRequest,
        open: Limit,
        alpn: Option<Vec<Vec<u8>>>,
    ) -> Result<(Transport, std::net::SocketAddr, Option<Proxy>, Limit), Error> {
        let proxy = self.proxy_for(request)?;
        let (host, port) = (request.host(), request.port());
        let dial = async {
            match &proxy {
                None => self.dialer.dial(host, port).await,
                Some(proxy) => proxy::tunnel(&self.dialer, proxy, host, port).await,
            }
        };
        let connect_limit = Limit::after(self.connect_timeout).earliest(open);
        let (tcp, peer_addr) = connect_limit.run(Phase::Connect, dial).await??;

        let handshake_limit = Limit::after(self.handshake_timeout).earliest(open);
        let transport = if request.is_secure() {
            let mut config = match &self.tls {
                Some(config) => Arc::clone(config),
                None => tls::default_config()?,
            };
            if let Some(protocols) = alpn {
                let mut own = (*config).clone();
                own.alpn_protocols = protocols;
                config = Arc::new(own);
            }
            let stream = handshake_limit
                .run(Phase::Tls, tls::handshake(tcp, host, config))
                .await??;
            Transport::Tls(Box::new(stream))
        } else {
            Transport::Plain(tcp)
        };
        Ok((transport, peer_addr, proxy, handshake_limit))
    }

    /// The HTTP/1.1 upgrade on an established transport.
    async fn upgrade(
        &self,
        transport: Transport,
        request: &ClientRequest,
        peer_addr: std::net::SocketAddr,
        proxy: Option<Proxy>,
        limit: Limit,
    ) -> Result<(WebSocket<Transport>, Response), Error> {
        let opening = websocket_handshake(transport, request, self.config.clone());
        let (socket, head, negotiated) = limit.run(Phase::Handshake, opening).await??;
        let response = Response::new(head, negotiated, peer_addr, proxy, HttpVersion::Http11);
        Ok((socket, response))
    }

    /// A WebSocket over HTTP/2: ALPN `h2` (and `http/1.1` unless
    /// `required`) for `wss://`, prior knowledge for `ws://`. With
    /// `required` every way the server falls short is an
    /// [`Error::Http2Unavailable`]; without, ALPN choosing `http/1.1`
    /// goes on with an HTTP/1.1 upgrade on the same connection, and
    /// SETTINGS without extended CONNECT give `None`: the caller opens a
    /// new connection for HTTP/1.1 (this one speaks HTTP/2 now).
    #[cfg(feature = "http2")]
    async fn connect_http2(
        &self,
        request: &ClientRequest,
        open: Limit,
        required: bool,
    ) -> Result<Option<(WebSocket<Transport>, Response)>, Error> {
        use crate::http2::{Client, Settings};

        let alpn = if required {
            vec![tls::ALPN_H2.to_vec()]
        } else {
            vec![tls::ALPN_H2.to_vec(), tls::ALPN_HTTP_1_1.to_vec()]
        };
        let established = self
            .establish(request, open, request.is_secure().then_some(alpn))
            .await;
        let (transport, peer_addr, proxy, limit) = match established {
            // A server that offers ALPN but not `h2` may refuse the TLS
            // handshake outright (rustls servers do).
            Err(error)
                if required
                    && matches!(
                        error.rustls_error(),
                        Some(rustls::Error::AlertReceived(
                            rustls::AlertDescription::NoApplicationProtocol
                        ))
                    ) =>
            {
                return Err(Error::Http2Unavailable(NoHttp2::Alpn(None)));
            }
            other => other?,
        };
        if let Some(tls) = transport.tls_connection() {
            let chosen = tls.alpn_protocol();
            if chosen != Some(tls::ALPN_H2) {
                if required {
                    let chosen = chosen.map(|p| String::from_utf8_lossy(p).into_owned());
                    return Err(Error::Http2Unavailable(NoHttp2::Alpn(chosen)));
                }
                return self
                    .upgrade(transport, request, peer_addr, proxy, limit)
                    .await
                    .map(Some);
            }
        }
        let secure = request.is_secure();
        let local_addr = transport.local_addr().map_err(Error::Io)?;
        let handshake = Client::handshake(transport, Settings::default());
        let (client, connection) = match limit.run(Phase::Handshake, handshake).await? {
            Ok(pair) => pair,
            Err(error) if !secure => {
                return Err(Error::Http2Unavailable(NoHttp2::NotHttp2(
                    error.to_string(),
                )));
            }
            Err(error) => return Err(http2_error(error)),
        };
        // The connection does the I/O of every stream; it ends once the
        // handle below and the WebSocket are gone.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        if !client.extended_connect_enabled() {
            if required {
                return Err(Error::Http2Unavailable(NoHttp2::ExtendedConnectDisabled));
            }
            return Ok(None);
        }
        let opening = client.connect_with_headers(request, self.config.clone());
        let (socket, negotiated, headers) = limit
            .run(Phase::Handshake, opening)
            .await?
            .map_err(http2_error)?;
        let (stream, connection) = socket.into_parts();
        let transport = Transport::Http2(Box::new(transport::Http2Transport::new(
            stream, peer_addr, local_addr,
        )));
        let head = crate::handshake::ResponseHead {
            status: 200,
            reason: String::new(),
            headers,
        };
        let response = Response::new(head, negotiated, peer_addr, proxy, HttpVersion::Http2);
        Ok(Some((
            WebSocket::from_connection(transport, connection),
            response,
        )))
    }
}

/// Whether [`Connector`] carries the WebSocket over HTTP/2 (RFC 8441: an
/// extended CONNECT on one stream of an HTTP/2 connection) or over an
/// HTTP/1.1 upgrade (feature `http2`).
///
/// Neither tokio-tungstenite nor fastwebsockets nor Python `websockets`
/// has a client for RFC 8441; curl's `--http2` / `--http2-prior-knowledge`
/// is the model: `On` is curl's prior knowledge for `http://` and
/// `h2`-only ALPN for `https://`, `Auto` is its `--http2`.
#[cfg(feature = "http2")]
#[cfg_attr(docsrs, doc(cfg(feature = "http2")))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Http2Mode {
    /// HTTP/1.1 only (the default): ALPN offers `http/1.1`.
    #[default]
    Off,
    /// HTTP/2 only: `wss://` offers ALPN `h2` alone, `ws://` speaks HTTP/2
    /// at once (prior knowledge, RFC 9113 §3.3). Fails with
    /// [`Error::Http2Unavailable`] when ALPN does not choose `h2`, a
    /// plaintext server does not answer in HTTP/2, or its SETTINGS do not
    /// enable extended CONNECT.
    On,
    /// HTTP/2 when the server allows it, else HTTP/1.1: `wss://` offers
    /// ALPN `h2` and `http/1.1`; when ALPN chooses `http/1.1` the upgrade
    /// goes on over the same TLS connection, and when the server's HTTP/2
    /// SETTINGS lack extended CONNECT a new connection is opened for
    /// HTTP/1.1. `ws://` uses HTTP/1.1 (plaintext has no negotiation).
    Auto,
}

/// A failure of the HTTP/2 client as a [`connect`] error: a refusal of
/// the extended CONNECT is a [`Error::Rejected`], as a non-101 answer is.
#[cfg(feature = "http2")]
fn http2_error(error: crate::Error) -> Error {
    match error {
        crate::Error::Handshake(HandshakeError::ConnectRejected(rejection)) => {
            Error::Rejected(rejection)
        }
        crate::Error::Handshake(HandshakeError::ExtendedConnectDisabled) => {
            Error::Http2Unavailable(NoHttp2::ExtendedConnectDisabled)
        }
        crate::Error::Handshake(error) => Error::Handshake(error),
        crate::Error::Io(error) => Error::Io(error),
        other => Error::Io(io::Error::other(other.to_string())),
    }
}

/// A deadline and the limit it came from (for the error).
#[derive(Debug, Clone, Copy)]
struct Limit(Option<(Instant, Duration)>);

impl Limit {
    fn after(limit: Option<Duration>) -> Self {
        Self(limit.map(|limit| (Instant::now() + limit, limit)))
    }

    fn earliest(self, other: Self) -> Self {
        match (self.0, other.0) {
            (Some(a), Some(b)) => Self(Some(if b.0 < a.0 { b } else { a })),
            (a, b) => Self(a.or(b)),
        }
    }

    async fn run<F: Future>(self, phase: Phase, future: F) -> Result<F::Output, Error> {
        match self.0 {
            None => Ok(future.await),
            Some((deadline, after)) => timeout_at(deadline, future)
                .await
                .map_err(|_| Error::Timeout { phase, after }),
        }
    }
}

/// The WebSocket opening handshake over an open transport, keeping the
/// response head for [`Response`].
async fn websocket_handshake(
    mut stream: Transport,
    request: &ClientRequest,
    config: Config,
) -> Result<
    (
        WebSocket<Transport>,
        crate::handshake::ResponseHead,
        crate::handshake::Negotiated,
    ),
    Error,
> {
    let host = request.host();
    // With TLS 1.3 the server checks a client certificate after the
    // client's side of the TLS handshake is done, so its refusal comes with
    // the first read: it is a TLS failure all the same.
    let failed = |error: io::Error| {
        if tls::rustls_error(&error).is_some() {
            Error::Tls {
                host: host.to_owned(),
                source: error,
            }
        } else {
            Error::Io(error)
        }
    };
    let mut handshake = ClientHandshake::new(request, config);
    stream
        .write_all(handshake.request_bytes())
        .await
        .map_err(failed)?;
    stream.flush().await.map_err(failed)?;
    let mut head = None;
    loop {
        if stream
            .read_buf(handshake.read_buffer())
            .await
            .map_err(failed)?
            == 0
        {
            handshake.receive_eof();
        }
        if head.is_none() {
            // The head is parsed again by the handshake, which consumes it:
            // a copy is kept for the caller (a few hundred bytes, once).
            if let Ok(Some((parsed, _))) = parse_response_head(handshake.read_buffer(), usize::MAX)
            {
                head = Some(parsed);
            }
        }
        match handshake.advance() {
            Ok(ClientProgress::NeedMore(more)) => handshake = more,
            Ok(ClientProgress::Closed) => {
                return Err(Error::Io(io::Error::from(io::ErrorKind::UnexpectedEof)));
            }
            Ok(ClientProgress::Done(connection, negotiated)) => {
                let head = head.ok_or(Error::Handshake(HandshakeError::MalformedHead(
                    "no response head".to_owned(),
                )))?;
                return Ok((
                    WebSocket::from_connection(stream, connection),
                    head,
                    negotiated,
                ));
            }
            Err(HandshakeError::Rejected(rejection)) => return Err(Error::Rejected(rejection)),
            Err(error) => return Err(Error::Handshake(error)),
        }
    }
}
