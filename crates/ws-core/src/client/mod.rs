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
//! 4. the WebSocket handshake, validated strictly.
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

pub use error::{Error, PemFile, Phase, TlsConfigError};
pub use proxy::{Proxy, ProxyKind, ProxyUrlError};
pub use response::Response;
pub use tls::{TlsOptions, TlsStream};
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
            config: Config::default(),
            proxy: ProxyChoice::Environment,
            tls: None,
            dialer: Dialer::default(),
            connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
            open_timeout: None,
        }
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
    /// `http/1.1` for servers that insist on ALPN).
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
            let config = match &self.tls {
                Some(config) => Arc::clone(config),
                None => tls::default_config()?,
            };
            let stream = handshake_limit
                .run(Phase::Tls, tls::handshake(tcp, host, config))
                .await??;
            Transport::Tls(Box::new(stream))
        } else {
            Transport::Plain(tcp)
        };
        let opening = websocket_handshake(transport, request, self.config.clone());
        let (socket, head, negotiated) = handshake_limit.run(Phase::Handshake, opening).await??;
        Ok((socket, Response::new(head, negotiated, peer_addr, proxy)))
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
