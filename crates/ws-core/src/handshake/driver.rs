//! The opening handshake driven from a byte stream, without I/O: bytes in,
//! the parsed head and the bytes to write out, and finally the
//! [`Connection`] with whatever arrived behind the head.
//!
//! Both adapters and any custom transport run the same loop: read into
//! [`read_buffer`](ServerHandshake::read_buffer), ask the object what
//! happened, write what it returns.

use std::io;
use std::ops::ControlFlow;

use bytes::BytesMut;

#[cfg(feature = "deflate")]
use crate::deflate::{DeflateParams, client_offer, negotiate_client, negotiate_server};
use crate::error::Error;
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
    /// Boxed: a server's opening holds the handshake while it waits for the
    /// head, and needs no room for one until it has arrived.
    request: Option<Box<RequestHead>>,
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

    /// A handshake whose request head was parsed elsewhere (an HTTP
    /// framework's request, converted by [`crate::http`]): ready to answer.
    #[cfg(feature = "http")]
    pub(crate) fn from_head(head: RequestHead, config: Config) -> Self {
        Self {
            config,
            head: HeadBuffer::new(DEFAULT_MAX_HEAD_SIZE),
            request: Some(Box::new(head)),
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
            self.request = self
                .head
                .parse_request()
                .map_err(Refused::new)?
                .map(Box::new);
        }
        Ok(self.request.as_deref())
    }

    /// The request head, if [`request`](Self::request) has returned it.
    pub fn head(&self) -> Option<&RequestHead> {
        self.request.as_deref()
    }

    /// Whether the complete request asks for a WebSocket upgrade (see
    /// [`RequestHead::is_upgrade`]); `false` before the head is complete.
    pub fn is_upgrade(&self) -> bool {
        self.request.as_deref().is_some_and(RequestHead::is_upgrade)
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
            Some(head) => *head,
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
        let answer = answer(&request, self.config, self.head.into_remaining(), choose)
            .map_err(Refused::new)?;
        Ok(Accepted {
            response: accept_response(&request, &answer.options),
            request,
            connection: answer.connection,
            #[cfg(feature = "deflate")]
            deflate: answer.deflate,
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

/// The server's answer to a validated request, over HTTP/1.1 or HTTP/2:
/// what the response announces and the connection that runs exactly that.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The subprotocol, extensions and extra headers to announce.
    pub(crate) options: AcceptOptions,
    /// The server side of the connection, starting with `received`.
    pub(crate) connection: Connection,
    /// permessage-deflate, if it was negotiated (and switched on).
    #[cfg(feature = "deflate")]
    pub(crate) deflate: Option<DeflateParams>,
}

/// Lets `choose` pick the subprotocol and headers for `request` or refuse
/// it, negotiates permessage-deflate when `config` enables it and `choose`
/// named no extensions itself, and builds the server connection with the
/// negotiated extension on, holding the bytes `received` behind the head.
pub(crate) fn answer<F>(
    request: &UpgradeRequest,
    config: Config,
    received: BytesMut,
    choose: F,
) -> Result<Answer, HandshakeError>
where
    F: FnOnce(&UpgradeRequest) -> Result<AcceptOptions, HandshakeError>,
{
    let options = choose(request)?;
    #[cfg(feature = "deflate")]
    let (options, deflate) = negotiate_deflate(request, options, &config);
    // What the response names is what the connection runs.
    #[cfg(feature = "deflate")]
    let enable = deflate.zip(config.deflate.clone());
    #[cfg_attr(not(feature = "deflate"), allow(unused_mut))]
    let mut connection = Connection::with_received(Role::Server, config, received);
    #[cfg(feature = "deflate")]
    if let Some((params, deflate_config)) = enable {
        connection.enable_deflate(params, &deflate_config);
    }
    Ok(Answer {
        options,
        connection,
        #[cfg(feature = "deflate")]
        deflate,
    })
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

    /// [`advance`](Self::advance) for the adapters: `Continue` with the
    /// handshake while it needs more, `Break` with the connection, and the
    /// end before a response head as the I/O error `UnexpectedEof`.
    pub(crate) fn step(self) -> Result<ControlFlow<(Connection, Negotiated), Self>, Error> {
        match self.advance()? {
            ClientProgress::NeedMore(handshake) => Ok(ControlFlow::Continue(handshake)),
            ClientProgress::Done(connection, negotiated) => {
                Ok(ControlFlow::Break((connection, negotiated)))
            }
            ClientProgress::Closed => Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
        }
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

/// The client side of the connection after a validated 101 (or, over
/// HTTP/2, 200) response: checks the server's permessage-deflate
/// parameters against what `config` offered and switches it on.
pub(crate) fn client_connection(
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
pub(crate) fn with_deflate_offer(
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

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::expect_used,
    clippy::panic
)]
mod tests {
    use super::*;
    use crate::handshake::accept::accept_key;
    use crate::handshake::{REJECTION_BODY_LIMIT, Rejection, parse_response_head};
    use crate::message::Event;

    const REQUEST: &[u8] = b"GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: chat\r\n\r\n";

    /// A masked text frame "hi" (mask key zero), as a client sends it.
    const CLIENT_HI: &[u8] = &[0x81, 0x82, 0, 0, 0, 0, b'h', b'i'];
    /// An unmasked text frame "hi", as a server sends it.
    const SERVER_HI: &[u8] = &[0x81, 0x02, b'h', b'i'];

    fn accept_all(request: &UpgradeRequest) -> Result<AcceptOptions, HandshakeError> {
        Ok(AcceptOptions::default().protocol(request.select_protocol(&["chat"])))
    }

    fn server_with(bytes: &[u8]) -> ServerHandshake {
        let mut handshake = ServerHandshake::new(Config::default());
        handshake.receive(bytes);
        handshake
    }

    /// The status, headers and body of a complete response.
    fn parse(response: &[u8]) -> (ResponseHead, String) {
        let (head, consumed) = parse_response_head(response, DEFAULT_MAX_HEAD_SIZE)
            .unwrap()
            .unwrap();
        let body = String::from_utf8(response[consumed..].to_vec()).unwrap();
        (head, body)
    }

    // ---- server ----

    #[test]
    fn a_head_split_at_every_byte_gives_the_same_answer() {
        let whole = server_with(REQUEST).accept(accept_all).unwrap();
        for split in 0..REQUEST.len() {
            let mut handshake = server_with(&REQUEST[..split]);
            assert_eq!(handshake.request(), Ok(None), "split at {split}");
            assert!(!handshake.is_upgrade());
            handshake.receive(&REQUEST[split..]);
            assert_eq!(handshake.request().unwrap().unwrap().path(), "/chat");
            assert!(handshake.is_upgrade());
            let accepted = handshake.accept(accept_all).unwrap();
            assert_eq!(accepted.response, whole.response, "split at {split}");
            assert_eq!(accepted.request, whole.request, "split at {split}");
        }
    }

    #[test]
    fn the_answer_is_the_rfc_101_with_the_chosen_protocol() {
        let accepted = server_with(REQUEST).accept(accept_all).unwrap();
        let (head, body) = parse(&accepted.response);
        assert_eq!(head.status, 101);
        assert_eq!(
            head.headers.get_str("Sec-WebSocket-Accept"),
            Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
        assert_eq!(head.headers.get_str("Sec-WebSocket-Protocol"), Some("chat"));
        assert!(body.is_empty());
        assert_eq!(accepted.request.query(), Some("room=1"));
    }

    #[test]
    fn bytes_behind_the_head_are_handed_to_the_connection() {
        let mut handshake = server_with(REQUEST);
        handshake.receive(CLIENT_HI);
        handshake.receive(&CLIENT_HI[..3]);
        assert!(handshake.request().unwrap().is_some());
        // Bytes received after the head was parsed count too.
        handshake.receive(&CLIENT_HI[3..]);
        let mut connection = handshake.accept(accept_all).unwrap().connection;
        assert_eq!(connection.role(), Role::Server);
        assert_eq!(
            connection.next_event().unwrap(),
            Some(Event::Text("hi".into()))
        );
        assert_eq!(
            connection.next_event().unwrap(),
            Some(Event::Text("hi".into()))
        );
        assert_eq!(connection.next_event().unwrap(), None);
    }

    #[test]
    fn reading_into_the_read_buffer_is_the_same_as_receive() {
        let mut handshake = ServerHandshake::new(Config::default());
        for chunk in REQUEST.chunks(7).chain([CLIENT_HI]) {
            handshake.read_buffer().extend_from_slice(chunk);
        }
        assert!(handshake.request().unwrap().is_some());
        let mut connection = handshake.accept(accept_all).unwrap().connection;
        assert_eq!(
            connection.next_event().unwrap(),
            Some(Event::Text("hi".into()))
        );
    }

    #[test]
    fn an_oversized_head_is_refused_with_431() {
        let mut handshake = ServerHandshake::new(Config::default()).max_head_size(64);
        handshake.receive(&REQUEST[..63]);
        assert_eq!(handshake.request(), Ok(None));
        handshake.receive(&REQUEST[63..64]);
        let refused = handshake.request().unwrap_err();
        assert_eq!(refused.error, HandshakeError::HeadTooLarge { limit: 64 });
        assert_eq!(refused.response, reject_response(&refused.error));
        let (head, body) = parse(&refused.response);
        assert_eq!(head.status, 431);
        assert_eq!(body, "handshake: HTTP head is larger than 64 bytes\n");
        // Asking again gives the same answer, not a panic.
        assert_eq!(handshake.request().unwrap_err(), refused);
    }

    #[test]
    fn a_malformed_head_is_refused_with_400_and_the_reason() {
        let refused = server_with(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
            .request()
            .unwrap_err();
        assert!(matches!(refused.error, HandshakeError::MalformedHead(_)));
        let (head, body) = parse(&refused.response);
        assert_eq!(head.status, 400);
        assert_eq!(body, format!("{}\n", refused.error));
    }

    #[test]
    fn an_invalid_upgrade_is_refused_with_400_and_the_reason() {
        let raw = String::from_utf8(REQUEST.to_vec())
            .unwrap()
            .replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "");
        let refused = server_with(raw.as_bytes()).accept(accept_all).unwrap_err();
        assert_eq!(refused.error, HandshakeError::MissingKey);
        let (head, body) = parse(&refused.response);
        assert_eq!(head.status, 400);
        assert_eq!(body, "handshake: missing Sec-WebSocket-Key header\n");
    }

    #[test]
    fn a_wrong_version_is_refused_with_426_naming_version_13() {
        let raw = String::from_utf8(REQUEST.to_vec())
            .unwrap()
            .replace("Version: 13", "Version: 8");
        let refused = server_with(raw.as_bytes()).accept(accept_all).unwrap_err();
        assert_eq!(
            refused.error,
            HandshakeError::UnsupportedVersion("8".into())
        );
        let (head, _) = parse(&refused.response);
        assert_eq!(head.status, 426);
        assert_eq!(head.headers.get_str("Sec-WebSocket-Version"), Some("13"));
    }

    #[test]
    fn a_refusal_by_the_application_is_answered_with_its_status() {
        let refused = server_with(REQUEST)
            .accept(|_| {
                Err(HandshakeError::ForbiddenOrigin(
                    "https://evil.example".into(),
                ))
            })
            .unwrap_err();
        assert_eq!(parse(&refused.response).0.status, 403);
        assert_eq!(
            HandshakeError::from(refused.clone()),
            HandshakeError::ForbiddenOrigin("https://evil.example".into())
        );
    }

    #[test]
    fn accepting_before_the_head_is_complete_is_refused_not_a_panic() {
        let refused = server_with(&REQUEST[..20]).accept(accept_all).unwrap_err();
        assert_eq!(parse(&refused.response).0.status, 400);
        // Without calling `request` first, a complete head is still parsed.
        assert!(server_with(REQUEST).accept(accept_all).is_ok());
    }

    #[test]
    fn reject_answers_with_any_status_and_headers() {
        let mut handshake = server_with(REQUEST);
        assert!(handshake.request().unwrap().is_some());
        let response = handshake.reject(
            401,
            &[("WWW-Authenticate", "Bearer")],
            b"a token is needed\n",
        );
        let (head, body) = parse(&response);
        assert_eq!((head.status, head.reason.as_str()), (401, "Unauthorized"));
        assert_eq!(head.headers.get_str("WWW-Authenticate"), Some("Bearer"));
        assert_eq!(
            head.headers.get_str("Content-Type"),
            Some("text/plain; charset=utf-8")
        );
        assert!(head.headers.has_token("Connection", "close"));
        assert_eq!(body, "a token is needed\n");
    }

    #[test]
    fn plain_http_is_answered_with_respond() {
        let mut handshake = server_with(b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n");
        let head = handshake.request().unwrap().unwrap();
        assert_eq!(head.path(), "/healthz");
        assert!(!handshake.is_upgrade());
        let response =
            handshake.respond(200, &[("Cache-Control", "no-store")], "text/plain", b"ok");
        assert_eq!(
            response,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\nCache-Control: no-store\r\n\r\nok"
        );
    }

    #[test]
    fn a_plain_request_body_is_the_leftover() {
        let mut handshake =
            server_with(b"POST /form HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\na=1");
        assert_eq!(handshake.head(), None);
        assert_eq!(handshake.request().unwrap().unwrap().method, "POST");
        assert_eq!(handshake.head().unwrap().method, "POST");
        assert_eq!(&handshake.into_leftover()[..], b"a=1");
        // Before a head, everything received is left over.
        assert_eq!(&server_with(b"GET / HT").into_leftover()[..], b"GET / HT");
    }

    #[test]
    fn a_plain_request_is_not_accepted_as_an_upgrade() {
        let refused = server_with(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            .accept(accept_all)
            .unwrap_err();
        assert_eq!(refused.error, HandshakeError::NotAnUpgrade);
        assert_eq!(parse(&refused.response).0.status, 426);
    }

    // ---- client ----

    fn client() -> ClientHandshake {
        let request = ClientRequest::from_parts(false, "example.com", 80, "/chat")
            .unwrap()
            .protocol("chat");
        ClientHandshake::new(&request, Config::default())
    }

    fn switching(handshake: &ClientHandshake, extra: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n{extra}\r\n",
            accept_key(handshake.request().key().as_bytes())
        )
        .into_bytes()
    }

    fn need_more(progress: Result<ClientProgress, HandshakeError>) -> ClientHandshake {
        match progress {
            Ok(ClientProgress::NeedMore(handshake)) => handshake,
            other => panic!("expected NeedMore, got {other:?}"),
        }
    }

    fn rejection(progress: Result<ClientProgress, HandshakeError>) -> Rejection {
        match progress {
            Err(HandshakeError::Rejected(rejection)) => *rejection,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn the_request_bytes_are_the_request() {
        let handshake = client();
        assert_eq!(handshake.request_bytes(), handshake.request().to_bytes());
        assert!(
            handshake
                .request_bytes()
                .starts_with(b"GET /chat HTTP/1.1\r\n")
        );
    }

    #[test]
    fn a_101_split_at_every_byte_gives_the_connection_and_the_bytes_behind_it() {
        let request = client().request().clone();
        let fresh = || ClientHandshake::new(&request, Config::default());
        let mut wire = switching(&fresh(), "Sec-WebSocket-Protocol: chat\r\n");
        let head_len = wire.len();
        wire.extend_from_slice(SERVER_HI);
        for split in 0..head_len {
            let mut handshake = fresh();
            handshake.receive(&wire[..split]);
            let mut handshake = need_more(handshake.advance());
            handshake.receive(&wire[split..]);
            let Ok(ClientProgress::Done(mut connection, negotiated)) = handshake.advance() else {
                panic!("split at {split}");
            };
            assert_eq!(negotiated.protocol.as_deref(), Some("chat"));
            assert_eq!(connection.role(), Role::Client);
            assert_eq!(
                connection.next_event().unwrap(),
                Some(Event::Text("hi".into()))
            );
        }
    }

    #[test]
    fn a_wrong_accept_key_is_an_error() {
        let mut handshake = client();
        handshake.receive(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        );
        assert_eq!(
            handshake.advance().unwrap_err(),
            HandshakeError::InvalidAccept
        );
    }

    #[test]
    fn a_malformed_or_oversized_response_head_is_an_error() {
        let mut handshake = client();
        handshake.receive(b"HTTP/1.1 abc OK\r\n\r\n");
        assert!(matches!(
            handshake.advance(),
            Err(HandshakeError::MalformedHead(_))
        ));
        let mut handshake = client().max_head_size(16);
        handshake.receive(b"HTTP/1.1 101 Switching Protocols\r\n");
        assert_eq!(
            handshake.advance().unwrap_err(),
            HandshakeError::HeadTooLarge { limit: 16 }
        );
    }

    #[test]
    fn a_refusal_body_is_read_up_to_its_content_length() {
        let mut handshake = client();
        handshake.receive(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 19\r\n\r\norigin ");
        let mut handshake = need_more(handshake.advance());
        handshake.receive(b"not allowed\n and what follows");
        let rejection = rejection(handshake.advance());
        assert_eq!(rejection.status, 403);
        assert_eq!(rejection.body, b"origin not allowed\n");
    }

    #[test]
    fn a_refusal_body_cut_short_by_the_end_is_reported_with_what_arrived() {
        let mut handshake = client();
        handshake.receive(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 100\r\n\r\nshort");
        let mut handshake = need_more(handshake.advance());
        handshake.receive_eof();
        assert_eq!(rejection(handshake.advance()).body, b"short");
    }

    #[test]
    fn a_refusal_body_is_bounded() {
        let mut handshake = client();
        handshake.receive(b"HTTP/1.1 500 Oops\r\nContent-Length: 1000000\r\n\r\n");
        let mut handshake = need_more(handshake.advance());
        handshake.receive(&vec![b'x'; REJECTION_BODY_LIMIT + 10]);
        assert_eq!(
            rejection(handshake.advance()).body.len(),
            REJECTION_BODY_LIMIT
        );
    }

    #[test]
    fn a_refusal_body_without_a_length_is_read_until_the_server_closes() {
        let mut handshake = client();
        handshake.receive(b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\nnot ");
        let mut handshake = need_more(handshake.advance());
        handshake.receive(b"here\n");
        let mut handshake = need_more(handshake.advance());
        handshake.receive_eof();
        assert_eq!(rejection(handshake.advance()).body, b"not here\n");
    }

    #[test]
    fn a_refusal_body_whose_end_is_unknown_is_not_waited_for() {
        // Neither a length nor a close: what has arrived is reported at once.
        let mut handshake = client();
        handshake.receive(b"HTTP/1.1 403 Forbidden\r\n\r\npartial");
        assert_eq!(rejection(handshake.advance()).body, b"partial");
        let mut handshake = client();
        handshake.receive(
            b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\n",
        );
        assert_eq!(rejection(handshake.advance()).status, 403);
    }

    #[test]
    fn the_end_before_a_response_head_is_closed() {
        let mut handshake = client();
        handshake.receive_eof();
        assert!(matches!(handshake.advance(), Ok(ClientProgress::Closed)));
        let mut handshake = client();
        handshake.receive(b"HTTP/1.1 101 Switching Protocols\r\n");
        let mut handshake = need_more(handshake.advance());
        handshake.receive_eof();
        assert!(matches!(handshake.advance(), Ok(ClientProgress::Closed)));
    }

    #[test]
    fn client_and_server_objects_complete_a_handshake_between_them() {
        let mut client = client();
        let mut server = ServerHandshake::new(Config::default());
        server.receive(client.request_bytes());
        let accepted = server.accept(accept_all).unwrap();
        client.receive(&accepted.response);
        let Ok(ClientProgress::Done(_, negotiated)) = client.advance() else {
            panic!("the client did not take the server's 101");
        };
        assert_eq!(negotiated.protocol.as_deref(), Some("chat"));
    }

    // ---- permessage-deflate ----

    #[cfg(feature = "deflate")]
    mod deflate {
        use super::*;
        use crate::deflate::DeflateConfig;

        fn deflate_config() -> Config {
            Config::default().deflate(Some(DeflateConfig::default().window_bits(12)))
        }

        fn request_offering(offer: &str) -> Vec<u8> {
            String::from_utf8(REQUEST.to_vec())
                .unwrap()
                .replace(
                    "\r\n\r\n",
                    &format!("\r\nSec-WebSocket-Extensions: {offer}\r\n\r\n"),
                )
                .into_bytes()
        }

        fn offering(offer: &str) -> ServerHandshake {
            let mut handshake = ServerHandshake::new(deflate_config());
            handshake.receive(&request_offering(offer));
            handshake
        }

        #[test]
        fn the_extension_answered_is_the_extension_the_connection_runs() {
            let accepted = offering("permessage-deflate; client_max_window_bits")
                .accept(accept_all)
                .unwrap();
            let params = accepted.deflate.expect("deflate negotiated");
            let (head, _) = parse(&accepted.response);
            assert_eq!(
                head.headers.get_str("Sec-WebSocket-Extensions"),
                Some(params.to_header().as_str())
            );
            assert_eq!(params.server_max_window_bits, 12);
            assert!(accepted.connection.deflate_enabled());
        }

        #[test]
        fn no_offer_or_no_config_means_no_extension_either_side() {
            let accepted = server_with(REQUEST).accept(accept_all).unwrap();
            assert!(
                !parse(&accepted.response)
                    .0
                    .headers
                    .contains("Sec-WebSocket-Extensions")
            );
            assert!(!accepted.connection.deflate_enabled());
            let mut handshake = ServerHandshake::new(Config::default());
            handshake.receive(&request_offering("permessage-deflate"));
            let accepted = handshake.accept(accept_all).unwrap();
            assert!(
                !parse(&accepted.response)
                    .0
                    .headers
                    .contains("Sec-WebSocket-Extensions")
            );
            assert!(!accepted.connection.deflate_enabled());
        }

        #[test]
        fn extensions_named_by_the_application_are_left_to_it() {
            let accepted = offering("permessage-deflate")
                .accept(|_| Ok(AcceptOptions::default().extensions(Some("x-custom".into()))))
                .unwrap();
            assert_eq!(
                parse(&accepted.response)
                    .0
                    .headers
                    .get_str("Sec-WebSocket-Extensions"),
                Some("x-custom")
            );
            assert_eq!(accepted.deflate, None);
            assert!(!accepted.connection.deflate_enabled());
        }

        #[test]
        fn both_objects_agree_on_deflate_and_switch_it_on() {
            let request = ClientRequest::from_parts(false, "example.com", 80, "/").unwrap();
            let mut client = ClientHandshake::new(&request, deflate_config());
            assert!(
                client
                    .request()
                    .extension_offer()
                    .is_some_and(|offer| offer.starts_with("permessage-deflate"))
            );
            let mut server = ServerHandshake::new(deflate_config());
            server.receive(client.request_bytes());
            let accepted = server.accept(|_| Ok(AcceptOptions::default())).unwrap();
            assert!(accepted.connection.deflate_enabled());
            client.receive(&accepted.response);
            let Ok(ClientProgress::Done(connection, negotiated)) = client.advance() else {
                panic!("the client did not take the server's 101");
            };
            assert!(connection.deflate_enabled());
            assert_eq!(
                negotiated.extensions,
                accepted.deflate.map(|params| params.to_header())
            );
        }

        #[test]
        fn a_deflate_answer_the_client_cannot_honour_is_an_error() {
            let request = ClientRequest::from_parts(false, "example.com", 80, "/").unwrap();
            let mut client = ClientHandshake::new(&request, deflate_config());
            let response = switching(
                &client,
                "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=15\r\n",
            );
            client.receive(&response);
            assert!(matches!(
                client.advance(),
                Err(HandshakeError::InvalidExtensionResponse(_))
            ));
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_bytes_in_any_chunks_never_panic_either_side(
                bytes in proptest::collection::vec(any::<u8>(), 0..600),
                cut in 0usize..600,
                eof in any::<bool>(),
            ) {
                let (first, second) = bytes.split_at(cut.min(bytes.len()));
                let mut server = ServerHandshake::new(Config::default()).max_head_size(256);
                server.receive(first);
                let _ = server.request();
                server.receive(second);
                if let Err(refused) = server.request() {
                    prop_assert_eq!(
                        parse_response_head(&refused.response, DEFAULT_MAX_HEAD_SIZE)
                            .ok()
                            .flatten()
                            .map(|(head, _)| head.status),
                        Some(refused.error.status())
                    );
                }
                let _ = server.accept(accept_all);

                let mut client = client().max_head_size(256);
                client.receive(first);
                if let Ok(ClientProgress::NeedMore(mut client)) = client.advance() {
                    client.receive(second);
                    if eof {
                        client.receive_eof();
                    }
                    let _ = client.advance();
                }
            }
        }
    }
}
