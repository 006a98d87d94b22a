//! The opening handshake driven from a byte stream, without I/O: bytes in,
//! the parsed head and the bytes to write out, and finally the
//! [`Connection`] with whatever arrived behind the head.
//!
//! Both adapters and any custom transport run the same loop: read into
//! [`read_buffer`](ServerHandshake::read_buffer), ask the object what
//! happened, write what it returns.

use bytes::BytesMut;

#[cfg(feature = "deflate")]
use crate::deflate::{DeflateParams, client_offer, negotiate_client, negotiate_server};
use crate::head_buffer::{HeadBuffer, rejection_body_incomplete};
use crate::protocol::{Config, Connection, Role};

use super::client::{ClientRequest, Negotiated, ResponseHead, validate_response};
use super::error::HandshakeError;
use super::server::{
    AcceptOptions, DEFAULT_MAX_HEAD_SIZE, RequestHead, UpgradeRequest, accept_response,
    http_response, reject_response, validate_upgrade,
};

/// The server side of the opening handshake, fed with the bytes the client
/// sends.
///
/// 1. Read into [`read_buffer`](Self::read_buffer) (or hand over what was
///    read with [`receive`](Self::receive)) until [`request`](Self::request)
///    returns the head. An invalid or oversized head is a [`Refused`] whose
///    response (400, 405, 426 or 431) is to be written before closing.
/// 2. Answer it, which ends the handshake: [`accept`](Self::accept) an
///    upgrade, [`reject`](Self::reject) it with a status of your own, or
///    [`respond`](Self::respond) to a plain HTTP request
///    ([`is_upgrade`](Self::is_upgrade) tells them apart).
///
/// Nothing here reads, writes or panics, whatever the bytes.
///
/// ```
/// use ws_core::handshake::{AcceptOptions, ServerHandshake};
/// use ws_core::{Config, Event};
///
/// let mut handshake = ServerHandshake::new(Config::default());
/// handshake.receive(b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n");
/// assert!(handshake.request().map_err(|refused| refused.error)?.is_none());
/// handshake.receive(b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n");
/// handshake.receive(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
/// // A first frame, sent right behind the head: a masked text "hi".
/// handshake.receive(&[0x81, 0x82, 0, 0, 0, 0, b'h', b'i']);
/// let head = handshake.request().map_err(|refused| refused.error)?;
/// assert_eq!(head.map(|head| head.path()), Some("/chat"));
///
/// let mut accepted = handshake
///     .accept(|_request| Ok(AcceptOptions::default()))
///     .map_err(|refused| refused.error)?;
/// assert!(accepted.response.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
/// // Write `accepted.response`; the connection already holds the frame.
/// assert_eq!(accepted.connection.next_event()?, Some(Event::Text("hi".into())));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ServerHandshake {
    config: Config,
    head: HeadBuffer,
    request: Option<RequestHead>,
}

impl ServerHandshake {
    /// A handshake that has received nothing yet, for a connection with
    /// `config` (its limits, and permessage-deflate when
    /// [`Config::deflate`](crate::Config::deflate()) is set). Heads longer
    /// than [`DEFAULT_MAX_HEAD_SIZE`] are refused; see
    /// [`max_head_size`](Self::max_head_size).
    pub fn new(config: Config) -> Self {
        Self {
            config,
            head: HeadBuffer::new(DEFAULT_MAX_HEAD_SIZE),
            request: None,
        }
    }

    /// Sets the longest request head accepted, in bytes: a longer one is
    /// refused with 431 as soon as this many bytes hold no complete head.
    pub fn max_head_size(mut self, limit: usize) -> Self {
        self.head.set_limit(limit);
        self
    }

    /// The buffer to read into: append to it (tokio's `read_buf`, or a read
    /// into its spare capacity), then call [`request`](Self::request).
    pub fn read_buffer(&mut self) -> &mut BytesMut {
        self.head.read_buffer()
    }

    /// Adds bytes received from the client (copying them).
    pub fn receive(&mut self, data: &[u8]) {
        self.head.receive(data);
    }

    /// The request head once it is complete; `Ok(None)` while more bytes are
    /// needed. `Err` when the bytes are not an acceptable HTTP request head
    /// (malformed, or too large): write its response and close.
    ///
    /// The head is parsed once; later calls return it again.
    pub fn request(&mut self) -> Result<Option<&RequestHead>, Refused> {
        if self.request.is_none() {
            self.request = self.head.parse_request().map_err(Refused::new)?;
        }
        Ok(self.request.as_ref())
    }

    /// The request head, if [`request`](Self::request) has returned it.
    pub fn head(&self) -> Option<&RequestHead> {
        self.request.as_ref()
    }

    /// Whether the complete request asks for a WebSocket upgrade (see
    /// [`RequestHead::is_upgrade`]); `false` before the head is complete.
    pub fn is_upgrade(&self) -> bool {
        self.request.as_ref().is_some_and(RequestHead::is_upgrade)
    }

    /// Accepts the upgrade: validates the request (RFC 6455 §4.2.1), lets
    /// `choose` pick the subprotocol and headers or refuse (e.g. with
    /// [`HandshakeError::ForbiddenOrigin`]), and negotiates
    /// permessage-deflate when the configuration enables it and `choose`
    /// named no extensions itself.
    ///
    /// On success, [`Accepted`] holds the `101` to write and the
    /// [`Connection`], which starts with the bytes that arrived behind the
    /// head and runs exactly the extensions the response names. Extensions
    /// that `choose` names itself are written as given and left to the
    /// caller to run (see [`Accepted::connection`]).
    ///
    /// A request that is not a valid upgrade, a refusal by `choose`, or a
    /// call before [`request`](Self::request) returned a head (400) is a
    /// [`Refused`].
    pub fn accept<F>(mut self, choose: F) -> Result<Accepted, Refused>
    where
        F: FnOnce(&UpgradeRequest) -> Result<AcceptOptions, HandshakeError>,
    {
        let head = match self.request.take() {
            Some(head) => head,
            None => self
                .head
                .parse_request()
                .map_err(Refused::new)?
                .ok_or_else(|| {
                    Refused::new(HandshakeError::MalformedHead(
                        "the request head is incomplete".to_owned(),
                    ))
                })?,
        };
        let request = validate_upgrade(head).map_err(Refused::new)?;
        let accept = choose(&request).map_err(Refused::new)?;
        #[cfg(feature = "deflate")]
        let (accept, deflate) = negotiate_deflate(&request, accept, &self.config);
        let response = accept_response(&request, &accept);
        // What the response names is what the connection runs.
        #[cfg(feature = "deflate")]
        let enable = deflate.zip(self.config.deflate.clone());
        #[cfg_attr(not(feature = "deflate"), allow(unused_mut))]
        let mut connection =
            Connection::with_received(Role::Server, self.config, self.head.into_remaining());
        #[cfg(feature = "deflate")]
        if let Some((params, deflate_config)) = enable {
            connection.enable_deflate(params, &deflate_config);
        }
        Ok(Accepted {
            response,
            request,
            connection,
            #[cfg(feature = "deflate")]
            deflate,
        })
    }

    /// Refuses the request with `status` (e.g. 401 with a
    /// `WWW-Authenticate` header, or 503): the complete response to write
    /// before closing, with `body` as `text/plain` (see [`http_response`]).
    pub fn reject(self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
        http_response(status, headers, "text/plain; charset=utf-8", body)
    }

    /// Answers a plain HTTP request (one that is not an upgrade): the
    /// complete response to write before closing (see [`http_response`]).
    pub fn respond(
        self,
        status: u16,
        headers: &[(&str, &str)],
        content_type: &str,
        body: &[u8],
    ) -> Vec<u8> {
        http_response(status, headers, content_type, body)
    }

    /// Ends the handshake without an answer: the bytes received behind the
    /// head (a request body, say), or every byte received if no head was
    /// returned.
    pub fn into_leftover(self) -> BytesMut {
        self.head.into_remaining()
    }
}

/// `accept` with the permessage-deflate answer to the client's offers, when
/// `config` enables it and `accept` names no extensions itself.
#[cfg(feature = "deflate")]
fn negotiate_deflate(
    request: &UpgradeRequest,
    mut accept: AcceptOptions,
    config: &Config,
) -> (AcceptOptions, Option<DeflateParams>) {
    let Some(deflate_config) = config
        .deflate
        .as_ref()
        .filter(|_| accept.extensions.is_none())
    else {
        return (accept, None);
    };
    let deflate = negotiate_server(&request.extensions, deflate_config);
    accept.extensions = deflate.map(|params| params.to_header());
    (accept, deflate)
}

/// An accepted upgrade: what [`ServerHandshake::accept`] returns.
///
/// ```
/// # use ws_core::handshake::{AcceptOptions, ServerHandshake};
/// # use ws_core::Config;
/// # let mut handshake = ServerHandshake::new(Config::default());
/// # handshake.receive(b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
/// # handshake.receive(b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
/// let accepted = handshake
///     .accept(|_| Ok(AcceptOptions::default()))
///     .map_err(|refused| refused.error)?;
/// let response: Vec<u8> = accepted.response; // write this, then
/// let connection = accepted.connection; // speak WebSocket with this
/// # assert!(response.starts_with(b"HTTP/1.1 101 "));
/// # let _ = connection;
/// # Ok::<(), ws_core::handshake::HandshakeError>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Accepted {
    /// The `101 Switching Protocols` response to write.
    pub response: Vec<u8>,
    /// The validated request, for the application (path, headers, origin).
    pub request: UpgradeRequest,
    /// The server side of the connection, holding the bytes that arrived
    /// behind the request head, with permessage-deflate on when it was
    /// negotiated. Extensions named by the `choose` callback itself are not
    /// switched on: run them with, e.g.,
    /// [`Connection::enable_deflate`](crate::Connection::enable_deflate).
    pub connection: Connection,
    /// permessage-deflate, if it was negotiated (and switched on).
    #[cfg(feature = "deflate")]
    #[cfg_attr(docsrs, doc(cfg(feature = "deflate")))]
    pub deflate: Option<DeflateParams>,
}

/// A refused handshake: why, and the complete HTTP response that says so, to
/// be written before the connection is closed.
///
/// ```
/// use ws_core::Config;
/// use ws_core::handshake::{HandshakeError, ServerHandshake};
///
/// let mut handshake = ServerHandshake::new(Config::default());
/// handshake.receive(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n");
/// let refused = handshake.request().unwrap_err();
/// assert!(matches!(refused.error, HandshakeError::MalformedHead(_)));
/// assert!(refused.response.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refused {
    /// Why the handshake was refused; [`HandshakeError::status`] is the
    /// response's status.
    pub error: HandshakeError,
    /// The response to write (see [`reject_response`]).
    pub response: Vec<u8>,
}

impl Refused {
    fn new(error: HandshakeError) -> Self {
        let response = reject_response(&error);
        Self { error, response }
    }
}

impl From<Refused> for HandshakeError {
    fn from(refused: Refused) -> Self {
        refused.error
    }
}

/// The client side of the opening handshake: the request to write, then fed
/// with the bytes the server sends until [`advance`](Self::advance) returns
/// the connection.
///
/// A refusal (any status but 101) is reported as
/// [`HandshakeError::Rejected`] with the start of its body: a body whose
/// `Content-Length` is known is read up to it (at most
/// [`REJECTION_BODY_LIMIT`](super::REJECTION_BODY_LIMIT) bytes), one
/// delimited by `Connection: close` until
/// [`receive_eof`](Self::receive_eof).
///
/// ```
/// use ws_core::handshake::{AcceptOptions, ClientHandshake, ClientProgress, ClientRequest, ServerHandshake};
/// use ws_core::Config;
///
/// let request = ClientRequest::from_parts(false, "example.com", 80, "/chat")?.protocol("chat");
/// let mut client = ClientHandshake::new(&request, Config::default());
///
/// // The server's side, in memory.
/// let mut server = ServerHandshake::new(Config::default());
/// server.receive(client.request_bytes());
/// let accepted = server
///     .accept(|request| Ok(AcceptOptions::default().protocol(request.select_protocol(&["chat"]))))
///     .map_err(|refused| refused.error)?;
///
/// client.receive(&accepted.response);
/// match client.advance()? {
///     ClientProgress::Done(_connection, negotiated) => {
///         assert_eq!(negotiated.protocol.as_deref(), Some("chat"));
///     }
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), ws_core::handshake::HandshakeError>(())
/// ```
#[derive(Debug)]
pub struct ClientHandshake {
    config: Config,
    request: ClientRequest,
    request_bytes: Vec<u8>,
    head: HeadBuffer,
    response: Option<ResponseHead>,
    eof: bool,
}

impl ClientHandshake {
    /// A handshake for `request` on a connection with `config`. When the
    /// config enables permessage-deflate and the request makes no extension
    /// offer of its own, the request offers it. Response heads longer than
    /// [`DEFAULT_MAX_HEAD_SIZE`] are refused; see
    /// [`max_head_size`](Self::max_head_size).
    pub fn new(request: &ClientRequest, config: Config) -> Self {
        let request = with_deflate_offer(request, &config);
        Self {
            request_bytes: request.to_bytes(),
            request,
            config,
            head: HeadBuffer::new(DEFAULT_MAX_HEAD_SIZE),
            response: None,
            eof: false,
        }
    }

    /// Sets the longest response head accepted, in bytes.
    pub fn max_head_size(mut self, limit: usize) -> Self {
        self.head.set_limit(limit);
        self
    }

    /// The request as sent (with the deflate offer, if one was added).
    pub fn request(&self) -> &ClientRequest {
        &self.request
    }

    /// The request head to write before reading anything.
    pub fn request_bytes(&self) -> &[u8] {
        &self.request_bytes
    }

    /// The buffer to read into: append to it, then call
    /// [`advance`](Self::advance).
    pub fn read_buffer(&mut self) -> &mut BytesMut {
        self.head.read_buffer()
    }

    /// Adds bytes received from the server (copying them).
    pub fn receive(&mut self, data: &[u8]) {
        self.head.receive(data);
    }

    /// Records that the server closed the connection (a read returned 0):
    /// the next [`advance`](Self::advance) reports a refusal with the body
    /// that has arrived, or [`ClientProgress::Closed`] if not even the head
    /// has.
    pub fn receive_eof(&mut self) {
        self.eof = true;
    }

    /// Takes the handshake as far as the bytes received allow.
    ///
    /// `Err` when the response is malformed or too large, refuses the
    /// upgrade ([`HandshakeError::Rejected`]), or does not match the request
    /// (a wrong `Sec-WebSocket-Accept`, a subprotocol or extension that was
    /// not offered).
    pub fn advance(mut self) -> Result<ClientProgress, HandshakeError> {
        let response = match self.response.take() {
            Some(response) => response,
            None => match self.head.parse_response()? {
                Some(response) => response,
                None if self.eof => return Ok(ClientProgress::Closed),
                None => return Ok(ClientProgress::NeedMore(self)),
            },
        };
        if rejection_body_incomplete(&response, self.head.remaining().len(), self.eof) {
            self.response = Some(response);
            return Ok(ClientProgress::NeedMore(self));
        }
        let negotiated = validate_response(&self.request, response, self.head.remaining())?;
        let connection = client_connection(self.config, &negotiated, self.head.into_remaining())?;
        Ok(ClientProgress::Done(connection, negotiated))
    }
}

/// How far a [`ClientHandshake`] got: see [`ClientHandshake::advance`].
///
/// ```
/// use ws_core::handshake::{ClientHandshake, ClientProgress, ClientRequest};
/// use ws_core::Config;
///
/// let request = ClientRequest::from_parts(false, "example.com", 80, "/")?;
/// let mut handshake = ClientHandshake::new(&request, Config::default());
/// handshake.receive(b"HTTP/1.1 101 Switching");
/// let ClientProgress::NeedMore(mut handshake) = handshake.advance()? else {
///     panic!("half a status line is not a response");
/// };
/// handshake.receive_eof();
/// assert!(matches!(handshake.advance()?, ClientProgress::Closed));
/// # Ok::<(), ws_core::handshake::HandshakeError>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientProgress {
    /// More bytes are needed: read into the handshake's
    /// [`read_buffer`](ClientHandshake::read_buffer) (or call
    /// [`receive_eof`](ClientHandshake::receive_eof) when the server has
    /// closed) and advance it again.
    NeedMore(ClientHandshake),
    /// The server closed the connection before a complete response head.
    Closed,
    /// The server accepted: the client side of the connection, holding the
    /// bytes that arrived behind the 101, with permessage-deflate on when
    /// it was negotiated; and what was negotiated.
    Done(Connection, Negotiated),
}

/// The client side of the connection after a validated 101 response:
/// checks the server's permessage-deflate parameters against what `config`
/// offered and switches it on.
fn client_connection(
    config: Config,
    #[cfg_attr(not(feature = "deflate"), allow(unused_variables))] negotiated: &Negotiated,
    received: BytesMut,
) -> Result<Connection, HandshakeError> {
    #[cfg(feature = "deflate")]
    if let (Some(deflate_config), Some(extensions)) = (&config.deflate, &negotiated.extensions) {
        let params = negotiate_client(extensions, deflate_config)
            .map_err(HandshakeError::InvalidExtensionResponse)?;
        let deflate_config = deflate_config.clone();
        let mut connection = Connection::with_received(Role::Client, config, received);
        connection.enable_deflate(params, &deflate_config);
        return Ok(connection);
    }
    Ok(Connection::with_received(Role::Client, config, received))
}

/// The request to send: `request` with the permessage-deflate offer added
/// when `config` enables it and the request makes no offer of its own (as
/// it is, otherwise).
fn with_deflate_offer(
    request: &ClientRequest,
    #[cfg_attr(not(feature = "deflate"), allow(unused_variables))] config: &Config,
) -> ClientRequest {
    #[cfg(feature = "deflate")]
    if let Some(deflate_config) = config
        .deflate
        .as_ref()
        .filter(|_| request.extension_offer().is_none())
    {
        return request.clone().extensions(client_offer(deflate_config));
    }
    request.clone()
}
