//! Collects the HTTP head of the opening handshake from a byte stream.
//!
//! [`ServerHandshake`](crate::handshake::ServerHandshake) and
//! [`ClientHandshake`](crate::handshake::ClientHandshake) read into it until
//! a complete head parses; whatever arrived behind the head (the first
//! frames, sent eagerly by some clients and servers) is handed to the
//! [`Connection`](crate::Connection) untouched.

use bytes::BytesMut;

use crate::handshake::{
    HandshakeError, REJECTION_BODY_LIMIT, RequestHead, ResponseHead, parse_request_head,
    parse_response_head,
};
use crate::spare;

/// How much a read asks for while waiting for a head.
const HEAD_READ: usize = 1024;

/// Bytes received while waiting for a complete HTTP head.
#[derive(Debug)]
pub(crate) struct HeadBuffer {
    buf: BytesMut,
    limit: usize,
}

impl HeadBuffer {
    /// An empty buffer that refuses heads longer than `limit` bytes.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            limit,
        }
    }

    /// Changes the longest head accepted.
    pub(crate) fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// The buffer to read into, with room reserved for the next read.
    pub(crate) fn read_buffer(&mut self) -> &mut BytesMut {
        if self.buf.capacity() == 0 {
            // The bytes behind the head become the connection's read buffer,
            // which goes back to the stock once the connection idles.
            self.buf = spare::take();
        }
        self.buf.reserve(HEAD_READ);
        &mut self.buf
    }

    /// Adds received bytes (copying them).
    pub(crate) fn receive(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Parses a request head if one is complete, removing it from the buffer.
    pub(crate) fn parse_request(&mut self) -> Result<Option<RequestHead>, HandshakeError> {
        let parsed = parse_request_head(&self.buf, self.limit)?;
        Ok(parsed.map(|(head, len)| {
            let _ = self.buf.split_to(len);
            head
        }))
    }

    /// Parses a response head if one is complete, removing it from the buffer.
    pub(crate) fn parse_response(&mut self) -> Result<Option<ResponseHead>, HandshakeError> {
        let parsed = parse_response_head(&self.buf, self.limit)?;
        Ok(parsed.map(|(head, len)| {
            let _ = self.buf.split_to(len);
            head
        }))
    }

    /// The bytes that arrived behind the head.
    pub(crate) fn into_remaining(self) -> BytesMut {
        self.buf
    }

    /// The bytes that arrived behind the head, without taking them.
    pub(crate) fn remaining(&self) -> &[u8] {
        &self.buf
    }
}

/// Whether more of a refusal's body should be read before reporting it, up
/// to [`REJECTION_BODY_LIMIT`] bytes: a non-101 response whose
/// `Content-Length` promises body bytes that have not arrived yet, or one
/// without a length that says `Connection: close` (its body ends where the
/// server closes, RFC 9112 §6.3) until `eof`. Any other body's end is
/// unknown (chunked, or a server that keeps the connection open), and
/// waiting for it could hang: what has arrived is reported.
pub(crate) fn rejection_body_incomplete(
    response: &ResponseHead,
    received: usize,
    eof: bool,
) -> bool {
    if response.status == 101 || eof || received >= REJECTION_BODY_LIMIT {
        return false;
    }
    let headers = &response.headers;
    match headers.get_str("Content-Length") {
        Some(length) => length
            .parse::<usize>()
            .is_ok_and(|declared| received < declared),
        None => !headers.contains("Transfer-Encoding") && headers.has_token("Connection", "close"),
    }
}
