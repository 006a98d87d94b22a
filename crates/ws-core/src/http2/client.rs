//! The client side: WebSockets opened as extended CONNECT streams on an
//! HTTP/2 connection the client set up (RFC 8441 §4–§5).

use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use h2::{Ping, Reason, RecvStream};
use http::{Method, Request, Version};
use tokio::io::{AsyncRead, AsyncWrite};

use super::io::{Http2Stream, to_io};
use super::{Http2WebSocket, Settings, header_map};
use crate::error::Error;
use crate::handshake::{
    ClientRequest, HandshakeError, Headers, Negotiated, REJECTION_BODY_LIMIT, client_connection,
    validate_connect_response, with_deflate_offer,
};
use crate::protocol::Config;
use crate::stream::WebSocket;

/// A handle to an HTTP/2 connection that opens WebSockets on it, one
/// stream each: as many as the server's `SETTINGS_MAX_CONCURRENT_STREAMS`
/// allows at once ([`connect`](Self::connect) waits for a free one). Cheap
/// to clone, `Send`; the connection lives while a handle or a WebSocket
/// does and its [`ClientConnection`] is being polled.
///
/// ```no_run
/// use ws_core::Config;
/// use ws_core::handshake::ClientRequest;
/// use ws_core::http2::{Client, Settings};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let tcp = tokio::net::TcpStream::connect("127.0.0.1:8000").await?;
/// let (client, connection) = Client::handshake(tcp, Settings::default()).await?;
/// tokio::spawn(connection);
/// let request = ClientRequest::from_parts(false, "127.0.0.1", 8000, "/chat")?;
/// let (mut first, _) = client.connect(&request, Config::default()).await?;
/// let (mut second, _) = client.connect(&request, Config::default()).await?;
/// first.send_text("one").await?;
/// second.send_text("two").await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    send: SendRequest<Bytes>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("extended_connect_enabled", &self.extended_connect_enabled())
            .finish_non_exhaustive()
    }
}

/// The HTTP/2 connection behind a [`Client`]: a future that does its I/O
/// for every stream, to spawn (or poll beside the WebSockets). It resolves
/// when the connection ends: once the handles and WebSockets are dropped,
/// or on an error.
#[must_use = "the connection does no I/O unless it is polled"]
pub struct ClientConnection<S> {
    inner: h2::client::Connection<S, Bytes>,
}

impl<S> fmt::Debug for ClientConnection<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConnection").finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Future for ClientConnection<S> {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.get_mut().inner)
            .poll(cx)
            .map_err(|error| to_io(error).into())
    }
}

impl Client {
    /// Runs the client side of the HTTP/2 handshake on `io`, a connected
    /// stream (TCP for plaintext with prior knowledge, or TLS after ALPN
    /// chose `h2`), and waits for the server's SETTINGS, so that
    /// [`extended_connect_enabled`](Self::extended_connect_enabled) tells
    /// whether it can carry WebSockets.
    ///
    /// Returns the handle and the connection future to spawn. A server that
    /// never answers keeps this waiting: put a timeout around it.
    pub async fn handshake<S>(
        io: S,
        settings: Settings,
    ) -> Result<(Self, ClientConnection<S>), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut builder = h2::client::Builder::new();
        builder
            .enable_push(false)
            .initial_window_size(settings.stream_window)
            .initial_connection_window_size(settings.connection_window)
            .max_header_list_size(settings.max_header_list_size)
            .max_send_buffer_size(settings.max_send_buffer_size);
        let (send, mut connection) = builder.handshake::<_, Bytes>(io).await.map_err(to_io)?;
        // The server's SETTINGS is the first frame it sends (RFC 9113
        // §3.4), and h2 applies it before reading on, so once our PING's
        // answer is back the settings are known.
        let mut ping_pong = connection.ping_pong().ok_or(Error::InvalidUse(
            "the HTTP/2 connection's pings were taken",
        ))?;
        {
            let mut pong = pin!(ping_pong.ping(Ping::opaque()));
            poll_fn(|cx| {
                if let Poll::Ready(pong) = pong.as_mut().poll(cx) {
                    return Poll::Ready(pong.map(drop).map_err(to_io));
                }
                match Pin::new(&mut connection).poll(cx) {
                    Poll::Ready(Ok(())) => {
                        Poll::Ready(Err(io::Error::from(io::ErrorKind::UnexpectedEof)))
                    }
                    Poll::Ready(Err(error)) => Poll::Ready(Err(to_io(error))),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await?;
        }
        Ok((Self { send }, ClientConnection { inner: connection }))
    }

    /// Whether the server's SETTINGS enable extended CONNECT
    /// (`SETTINGS_ENABLE_CONNECT_PROTOCOL = 1`, RFC 8441 §3): without it,
    /// [`connect`](Self::connect) fails with
    /// [`HandshakeError::ExtendedConnectDisabled`].
    pub fn extended_connect_enabled(&self) -> bool {
        self.send.is_extended_connect_protocol_enabled()
    }

    /// How many streams, and so WebSockets, the server lets this client
    /// have open at once (its `SETTINGS_MAX_CONCURRENT_STREAMS`; `usize::MAX`
    /// when it sets no limit). [`connect`](Self::connect) past it waits for
    /// a stream to end.
    pub fn max_concurrent_streams(&self) -> usize {
        self.send.current_max_send_streams()
    }

    /// Opens a WebSocket on a new stream: sends the extended CONNECT for
    /// `request` (its host and port as `:authority`, its resource as
    /// `:path`, `https` as `:scheme` when it is `wss`, its subprotocols,
    /// `Origin`, extra headers, and the permessage-deflate offer when
    /// `config` enables it and the request makes none), and checks the
    /// answer as the HTTP/1.1 client checks a 101: status 200, only offered
    /// extensions, at most one subprotocol and one offered.
    ///
    /// Returns the WebSocket (client role: our frames are masked, as over
    /// TCP) and what was negotiated. Fails with
    /// [`HandshakeError::ExtendedConnectDisabled`] when the server does not
    /// allow extended CONNECT, [`HandshakeError::ConnectRejected`] with the
    /// status and the start of the body for any other status than 200, and
    /// the HTTP/1.1 client's errors for a response that does not match the
    /// request; the stream is reset then, the connection goes on.
    pub async fn connect(
        &self,
        request: &ClientRequest,
        config: Config,
    ) -> Result<(Http2WebSocket, Negotiated), Error> {
        self.connect_with_headers(request, config)
            .await
            .map(|(socket, negotiated, _)| (socket, negotiated))
    }

    /// [`connect`](Self::connect), also returning the `200`'s header
    /// fields (for `client::Response`).
    pub(crate) async fn connect_with_headers(
        &self,
        request: &ClientRequest,
        config: Config,
    ) -> Result<(Http2WebSocket, Negotiated, Headers), Error> {
        if !self.extended_connect_enabled() {
            return Err(HandshakeError::ExtendedConnectDisabled.into());
        }
        let request = with_deflate_offer(request, &config);
        let connect = connect_request(&request)?;
        let mut send = self.send.clone().ready().await.map_err(to_io)?;
        let (response, mut send_stream) = send.send_request(connect, false).map_err(to_io)?;
        let response = response.await.map_err(to_io)?;
        let (parts, mut body) = response.into_parts();
        let mut headers = Headers::new();
        for (name, value) in &parts.headers {
            headers.push(name.as_str(), value.as_bytes());
        }
        let status = parts.status.as_u16();
        let prefix = if status == 200 {
            Vec::new()
        } else {
            body_prefix(&mut body).await
        };
        let negotiated = validate_connect_response(&request, status, headers.clone(), &prefix)
            .and_then(|negotiated| {
                client_connection(config, &negotiated, BytesMut::new())
                    .map(|connection| (connection, negotiated))
            });
        match negotiated {
            Ok((connection, negotiated)) => {
                let stream = Http2Stream::new(send_stream, body);
                Ok((
                    WebSocket::from_connection(stream, connection),
                    negotiated,
                    headers,
                ))
            }
            Err(error) => {
                send_stream.send_reset(Reason::CANCEL);
                Err(error.into())
            }
        }
    }
}

/// The extended CONNECT for `request` (RFC 8441 §4).
fn connect_request(request: &ClientRequest) -> Result<Request<()>, Error> {
    let scheme = if request.is_secure() { "https" } else { "http" };
    let uri = format!("{scheme}://{}{}", request.authority(), request.resource());
    let mut connect = Request::builder()
        .method(Method::CONNECT)
        .version(Version::HTTP_2)
        .uri(uri)
        .extension(h2::ext::Protocol::from_static("websocket"))
        .body(())
        .map_err(|error| HandshakeError::InvalidUrl(error.to_string()))?;
    let protocols = request.protocols().join(", ");
    let fields = [
        ("sec-websocket-version", Some("13")),
        (
            "sec-websocket-protocol",
            Some(protocols.as_str()).filter(|p| !p.is_empty()),
        ),
        ("origin", request.origin_header()),
        ("sec-websocket-extensions", request.extension_offer()),
    ];
    let present = fields
        .iter()
        .filter_map(|(name, value)| value.map(|value| (*name, value)));
    let extra = request
        .extra_headers()
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()));
    header_map(connect.headers_mut(), present.chain(extra));
    Ok(connect)
}

/// The start of a refusal's body, at most [`REJECTION_BODY_LIMIT`] bytes.
async fn body_prefix(body: &mut RecvStream) -> Vec<u8> {
    let mut prefix = Vec::new();
    while prefix.len() < REJECTION_BODY_LIMIT {
        let Some(Ok(data)) = poll_fn(|cx| body.poll_data(cx)).await else {
            break;
        };
        let _ = body.flow_control().release_capacity(data.len());
        let keep = data.len().min(REJECTION_BODY_LIMIT - prefix.len());
        prefix.extend_from_slice(data.get(..keep).unwrap_or_default());
    }
    prefix
}
