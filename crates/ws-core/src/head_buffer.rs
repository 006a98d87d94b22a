//! Collects the HTTP head of the opening handshake from a byte stream.
//!
//! The adapters read into it until a complete head parses; whatever arrived
//! behind the head (the first frames, sent eagerly by some clients and servers)
//! is handed to the [`Connection`](crate::Connection) untouched.

use bytes::BytesMut;

#[cfg(feature = "deflate")]
use crate::deflate::{DeflateParams, client_offer, negotiate_client, negotiate_server};
use crate::handshake::{
    AcceptOptions, ClientRequest, HandshakeError, Negotiated, REJECTION_BODY_LIMIT, RequestHead,
    ResponseHead, UpgradeRequest, accept_response, parse_request_head, parse_response_head,
    reject_response, validate_upgrade,
};
use crate::protocol::{Config, Connection, Role};
use crate::spare;

/// How much a read asks for while waiting for a head.
const HEAD_READ: usize = 1024;

/// Bytes received while waiting for a complete HTTP head.
#[derive(Debug)]
pub struct HeadBuffer {
    buf: BytesMut,
    limit: usize,
}

impl HeadBuffer {
    /// An empty buffer that refuses heads longer than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            limit,
        }
    }

    /// The buffer to read into, with room reserved for the next read.
    pub fn read_buffer(&mut self) -> &mut BytesMut {
        if self.buf.capacity() == 0 {
            // The bytes behind the head become the connection's read buffer,
            // which goes back to the stock once the connection idles.
            self.buf = spare::take();
        }
        self.buf.reserve(HEAD_READ);
        &mut self.buf
    }

    /// Adds received bytes (copying them).
    pub fn receive(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Parses a request head if one is complete, removing it from the buffer.
    pub fn parse_request(&mut self) -> Result<Option<RequestHead>, HandshakeError> {
        let parsed = parse_request_head(&self.buf, self.limit)?;
        Ok(parsed.map(|(head, len)| {
            let _ = self.buf.split_to(len);
            head
        }))
    }

    /// Parses a response head if one is complete, removing it from the buffer.
    pub fn parse_response(&mut self) -> Result<Option<ResponseHead>, HandshakeError> {
        let parsed = parse_response_head(&self.buf, self.limit)?;
        Ok(parsed.map(|(head, len)| {
            let _ = self.buf.split_to(len);
            head
        }))
    }

    /// The bytes that arrived behind the head.
    pub fn into_remaining(self) -> BytesMut {
        self.buf
    }

    /// The bytes that arrived behind the head, without taking them.
    pub fn remaining(&self) -> &[u8] {
        &self.buf
    }
}

/// Whether more of a refusal's body should be read before reporting it: a
/// non-101 response whose `Content-Length` promises body bytes (up to
/// [`REJECTION_BODY_LIMIT`]) that have not arrived yet. Without a length the
/// body's end is unknown, and waiting for it could hang.
pub fn rejection_body_incomplete(response: &ResponseHead, received: usize) -> bool {
    if response.status == 101 {
        return false;
    }
    let declared = response
        .headers
        .get_str("Content-Length")
        .and_then(|length| length.parse::<usize>().ok())
        .unwrap_or(0);
    received < declared.min(REJECTION_BODY_LIMIT)
}

/// A validated upgrade, ready to be answered.
#[derive(Debug)]
#[non_exhaustive]
pub struct Upgrade {
    /// The client's request.
    pub request: UpgradeRequest,
    /// The `101 Switching Protocols` response to write.
    pub response: Vec<u8>,
    /// permessage-deflate, if it was negotiated.
    #[cfg(feature = "deflate")]
    #[cfg_attr(docsrs, doc(cfg(feature = "deflate")))]
    pub deflate: Option<DeflateParams>,
}

impl Upgrade {
    /// The server side of the connection, starting with the bytes that
    /// arrived behind the request head, with the negotiated extensions on.
    pub fn connection(&self, config: Config, received: BytesMut) -> Connection {
        #[cfg(feature = "deflate")]
        if let (Some(params), Some(deflate_config)) = (self.deflate, config.deflate.clone()) {
            let mut connection = Connection::with_received(Role::Server, config, received);
            connection.enable_deflate(params, &deflate_config);
            return connection;
        }
        Connection::with_received(Role::Server, config, received)
    }
}

/// The server's answer to a complete request head: validates it as an
/// upgrade, lets `choose` pick the subprotocol (or refuse), negotiates
/// permessage-deflate when `config` enables it and `choose` named no
/// extensions itself, and returns the bytes to write — the 101 response, or
/// the rejection to send before closing.
pub fn answer_upgrade<F>(
    head: RequestHead,
    #[cfg_attr(not(feature = "deflate"), allow(unused_variables))] config: &Config,
    choose: F,
) -> Result<Upgrade, (HandshakeError, Vec<u8>)>
where
    F: FnOnce(&UpgradeRequest) -> Result<AcceptOptions, HandshakeError>,
{
    let reject = |error: HandshakeError| {
        let response = reject_response(&error);
        (error, response)
    };
    let request = validate_upgrade(head).map_err(reject)?;
    let accept = choose(&request).map_err(reject)?;
    #[cfg(feature = "deflate")]
    let (accept, deflate) = negotiate_deflate(&request, accept, config);
    let response = accept_response(&request, &accept);
    Ok(Upgrade {
        request,
        response,
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

/// The client side of the connection after a validated 101 response:
/// checks the server's permessage-deflate parameters against what `config`
/// offered and switches it on.
pub fn client_connection(
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
pub fn with_deflate_offer(
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
