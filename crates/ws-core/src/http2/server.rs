//! The server side: an accepted HTTP/2 connection whose extended CONNECT
//! streams become WebSockets (RFC 8441 §4–§5).

use std::fmt;

use bytes::{Bytes, BytesMut};
use h2::RecvStream;
use h2::server::SendResponse;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};

use super::io::{Http2Stream, to_io};
use super::{Http2WebSocket, Settings, header_map};
use crate::error::Error;
use crate::handshake::{
    AcceptOptions, HandshakeError, UpgradeRequest, answer, validate_extended_connect,
};
use crate::protocol::Config;
use crate::stream::WebSocket;

/// An accepted HTTP/2 connection, server side: yields its requests, each
/// WebSocket (extended CONNECT) or plain HTTP, for the application to
/// answer.
///
/// The connection makes progress (for every stream, WebSockets included)
/// only while [`next_request`](Self::next_request) is being awaited: run it
/// in a loop in the connection's own task, and hand each request to a task
/// of its own or answer it at once. [`serve`](super::serve) is that loop.
///
/// ```no_run
/// use ws_core::Config;
/// use ws_core::http2::{Incoming, ServerConnection, Settings};
///
/// # async fn run(tcp: tokio::net::TcpStream) -> Result<(), ws_core::Error> {
/// let mut connection = ServerConnection::handshake(tcp, Config::default(), Settings::default()).await?;
/// while let Some(request) = connection.next_request().await {
///     match request? {
///         Incoming::WebSocket(request) => {
///             // A refusal (400, 403, 426) has been answered when this fails.
///             if let Ok(mut socket) = request.accept() {
///                 tokio::spawn(async move {
///                     while let Ok(Some(event)) = socket.recv().await {
///                         // ...
///                         # let _ = event;
///                     }
///                 });
///             }
///         }
///         Incoming::Http(request) => request.not_found()?,
///         _ => {}
///     }
/// }
/// # Ok(())
/// # }
/// ```
pub struct ServerConnection<S> {
    inner: h2::server::Connection<S, Bytes>,
    config: Config,
}

impl<S> fmt::Debug for ServerConnection<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConnection")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ServerConnection<S> {
    /// Runs the server side of the HTTP/2 handshake on `io`, an accepted
    /// connection (TCP after ALPN `h2` over TLS, or plaintext with prior
    /// knowledge): reads the client's preface and sends our SETTINGS, with
    /// `SETTINGS_ENABLE_CONNECT_PROTOCOL = 1` and the limits of `settings`.
    /// The WebSockets it accepts use `config`.
    ///
    /// A peer that is not speaking HTTP/2 fails it with [`Error::Io`]; one
    /// that says nothing keeps it waiting, so put a timeout around it.
    pub async fn handshake(io: S, config: Config, settings: Settings) -> Result<Self, Error> {
        let mut builder = h2::server::Builder::new();
        builder
            .enable_connect_protocol()
            .max_concurrent_streams(settings.max_concurrent_streams)
            .initial_window_size(settings.stream_window)
            .initial_connection_window_size(settings.connection_window)
            .max_header_list_size(settings.max_header_list_size)
            .max_send_buffer_size(settings.max_send_buffer_size);
        let inner = builder.handshake(io).await.map_err(to_io)?;
        Ok(Self { inner, config })
    }

    /// The next request on the connection, driving the connection (and so
    /// every stream on it) meanwhile; `None` once the connection has ended.
    ///
    /// Cancel-safe: dropping the future (in a `tokio::select!` with a
    /// shutdown signal) loses no request.
    ///
    /// A stream past [`Settings::max_concurrent_streams`] is refused by
    /// HTTP/2 itself (`RST_STREAM` with `REFUSED_STREAM`) and never shows up
    /// here. An error is the connection's: it has ended.
    pub async fn next_request(&mut self) -> Option<Result<Incoming, Error>> {
        let (request, respond) = match self.inner.accept().await? {
            Ok(accepted) => accepted,
            Err(error) => return Some(Err(to_io(error).into())),
        };
        let websocket = request.method() == Method::CONNECT
            && request
                .extensions()
                .get::<h2::ext::Protocol>()
                .is_some_and(|protocol| protocol.as_str().eq_ignore_ascii_case("websocket"));
        Some(Ok(if websocket {
            let (parts, body) = request.into_parts();
            Incoming::WebSocket(WebSocketRequest {
                head: Request::from_parts(parts, ()),
                body,
                respond,
                config: self.config.clone(),
            })
        } else {
            Incoming::Http(HttpRequest { request, respond })
        }))
    }

    /// Starts a graceful shutdown: a `GOAWAY` tells the client to open no
    /// more streams, and the connection ends once the open ones have (keep
    /// calling [`next_request`](Self::next_request) until it returns
    /// `None`). Close the WebSockets first (1001) for a clean shutdown.
    pub fn graceful_shutdown(&mut self) {
        self.inner.graceful_shutdown();
    }
}

/// A request on an HTTP/2 connection: a WebSocket or plain HTTP.
#[derive(Debug)]
#[non_exhaustive]
pub enum Incoming {
    /// An extended CONNECT with `:protocol websocket` (RFC 8441 §4): accept
    /// or refuse it.
    WebSocket(WebSocketRequest),
    /// Any other request (a page, a health check): answer it.
    Http(HttpRequest),
}

/// An extended CONNECT asking for a WebSocket, not yet answered: validate
/// and answer it with [`accept`](Self::accept) or
/// [`accept_with`](Self::accept_with), or [`reject`](Self::reject) it.
/// Dropped unanswered, the stream is reset.
#[derive(Debug)]
pub struct WebSocketRequest {
    head: Request<()>,
    body: RecvStream,
    respond: SendResponse<Bytes>,
    config: Config,
}

impl WebSocketRequest {
    /// The request: its URI (`:scheme`, `:authority`, `:path`) and headers,
    /// for routing before answering.
    pub fn request(&self) -> &Request<()> {
        &self.head
    }

    /// The HTTP/2 stream identifier, for logs.
    pub fn stream_id(&self) -> u32 {
        u32::from(self.respond.stream_id())
    }

    /// Validates the request and accepts it with no subprotocol,
    /// permessage-deflate when the configuration enables it and the client
    /// offers it. See [`accept_with`](Self::accept_with).
    pub fn accept(self) -> Result<Http2WebSocket, Error> {
        self.accept_with(|_| Ok(AcceptOptions::default()))
            .map(|(socket, _)| socket)
    }

    /// Validates the request (RFC 8441 §4–§5: `:method CONNECT`,
    /// `:protocol websocket`, `:scheme`, `:path`, and the HTTP/1.1 rules
    /// where they apply: `:authority` for `Host`, `sec-websocket-version:
    /// 13`), lets `choose` pick the subprotocol and
    /// headers or refuse (e.g. [`HandshakeError::ForbiddenOrigin`] for an
    /// origin policy), negotiates permessage-deflate when the configuration
    /// enables it and `choose` names no extensions, and answers `200` with
    /// what was chosen. Returns the WebSocket (server role: the client's
    /// frames must be masked) and the validated request.
    ///
    /// A refusal is answered before it is returned, as an HTTP/2 response
    /// on this stream alone: 400 for a missing or invalid field, 426 with
    /// `sec-websocket-version: 13` for another version, 403 for a refused
    /// origin, with the reason as a `text/plain` body; the error is
    /// [`Error::Handshake`]. Other streams are not affected.
    pub fn accept_with<F>(mut self, choose: F) -> Result<(Http2WebSocket, UpgradeRequest), Error>
    where
        F: FnOnce(&UpgradeRequest) -> Result<AcceptOptions, HandshakeError>,
    {
        let protocol = self.head.extensions().get::<h2::ext::Protocol>();
        let head = crate::http::request_head(&self.head);
        let answered = validate_extended_connect(
            head,
            protocol.map(h2::ext::Protocol::as_str),
            self.head.uri().scheme_str(),
        )
        .and_then(|request| {
            answer(&request, self.config.clone(), BytesMut::new(), choose)
                .map(|answer| (request, answer))
        });
        let (request, answer) = match answered {
            Ok(answered) => answered,
            Err(error) => {
                send_refusal(&mut self.respond, &error)?;
                return Err(error.into());
            }
        };
        let mut response = Response::new(());
        let headers = response.headers_mut();
        let options = &answer.options;
        let negotiated = [
            ("sec-websocket-protocol", options.protocol.as_deref()),
            ("sec-websocket-extensions", options.extensions.as_deref()),
        ];
        let chosen = negotiated
            .iter()
            .filter_map(|(name, value)| value.map(|value| (*name, value)));
        let extra = options
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()));
        header_map(headers, chosen.chain(extra));
        let send = self.respond.send_response(response, false).map_err(to_io)?;
        let stream = Http2Stream::new(send, self.body);
        Ok((
            WebSocket::from_connection(stream, answer.connection),
            request,
        ))
    }

    /// Refuses the request with `status` (e.g. 401, 404 or 503) and `body`
    /// as `text/plain`, on this stream alone.
    pub fn reject(mut self, status: StatusCode, body: &str) -> Result<(), Error> {
        send_text(&mut self.respond, status, HeaderMap::new(), body)
    }
}

/// The refusal of a request that failed with `error`: the status, headers
/// and body of [`crate::http::refusal`] (so HTTP/1.1 and HTTP/2 refuse
/// alike), less the fields HTTP/2 forbids (`Connection`, `Upgrade`).
fn send_refusal(respond: &mut SendResponse<Bytes>, error: &HandshakeError) -> Result<(), Error> {
    let (parts, body) = crate::http::refusal(error).into_parts();
    send(respond, Response::from_parts(parts, ()), Bytes::from(body))
}

/// Answers a stream with `status`, `headers` and a `text/plain` `body`.
fn send_text(
    respond: &mut SendResponse<Bytes>,
    status: StatusCode,
    mut headers: HeaderMap,
    body: &str,
) -> Result<(), Error> {
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    send(respond, response, Bytes::copy_from_slice(body.as_bytes()))
}

/// Sends `response` and its whole `body`, ending the stream.
fn send(
    respond: &mut SendResponse<Bytes>,
    response: Response<()>,
    body: Bytes,
) -> Result<(), Error> {
    let mut headers = HeaderMap::new();
    let (mut parts, ()) = response.into_parts();
    header_map(
        &mut headers,
        parts
            .headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?))),
    );
    parts.headers = headers;
    let response = Response::from_parts(parts, ());
    let mut stream = respond
        .send_response(response, body.is_empty())
        .map_err(to_io)?;
    if !body.is_empty() {
        stream.send_data(body, true).map_err(to_io)?;
    }
    Ok(())
}

/// A plain HTTP request on an HTTP/2 connection (not a WebSocket): answer
/// it with [`respond`](Self::respond) or [`not_found`](Self::not_found).
/// Dropped unanswered, the stream is reset.
#[derive(Debug)]
pub struct HttpRequest {
    request: Request<RecvStream>,
    respond: SendResponse<Bytes>,
}

impl HttpRequest {
    /// The request, with its body as h2's stream.
    pub fn request(&self) -> &Request<RecvStream> {
        &self.request
    }

    /// Answers with `response`, its body sent whole (meant for pages and
    /// health checks: the body is held until the client's window takes
    /// it). Fields HTTP/2 forbids (`Connection`, `Upgrade`, `Keep-Alive`,
    /// `Transfer-Encoding`, `Proxy-Connection`) are dropped.
    pub fn respond(mut self, response: Response<Bytes>) -> Result<(), Error> {
        let (parts, body) = response.into_parts();
        let body = if self.request.method() == Method::HEAD {
            Bytes::new()
        } else {
            body
        };
        send(&mut self.respond, Response::from_parts(parts, ()), body)
    }

    /// Answers `404 Not Found` with a one-line `text/plain` body.
    pub fn not_found(mut self) -> Result<(), Error> {
        send_text(
            &mut self.respond,
            StatusCode::NOT_FOUND,
            HeaderMap::new(),
            "not found\n",
        )
    }
}

/// Serves an accepted HTTP/2 connection until it ends: every WebSocket
/// request goes to `on_websocket` (which accepts or refuses it, and spawns
/// the task that runs the socket), every other request is answered 404.
/// See [`serve_with`] to answer plain HTTP too.
///
/// ```no_run
/// use ws_core::Config;
/// use ws_core::http2::{Settings, serve};
///
/// # async fn run(tcp: tokio::net::TcpStream) -> Result<(), ws_core::Error> {
/// serve(tcp, Config::default(), Settings::default(), |request| {
///     if let Ok(mut socket) = request.accept() {
///         tokio::spawn(async move {
///             while let Ok(Some(event)) = socket.recv().await {
///                 # let _ = event;
///             }
///         });
///     }
/// })
/// .await
/// # }
/// ```
pub async fn serve<S, W>(
    io: S,
    config: Config,
    settings: Settings,
    on_websocket: W,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    W: FnMut(WebSocketRequest),
{
    serve_with(io, config, settings, on_websocket, |request| {
        // The client has gone or reset the stream; nothing to answer.
        let _ = request.not_found();
    })
    .await
}

/// [`serve`], with `on_http` answering the requests that are not
/// WebSockets (a page, `/healthz`).
pub async fn serve_with<S, W, H>(
    io: S,
    config: Config,
    settings: Settings,
    mut on_websocket: W,
    mut on_http: H,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    W: FnMut(WebSocketRequest),
    H: FnMut(HttpRequest),
{
    let mut connection = ServerConnection::handshake(io, config, settings).await?;
    while let Some(request) = connection.next_request().await {
        match request? {
            Incoming::WebSocket(request) => on_websocket(request),
            Incoming::Http(request) => on_http(request),
        }
    }
    Ok(())
}
