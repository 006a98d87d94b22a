//! Collects the HTTP head of the opening handshake from a byte stream.
//!
//! The adapters read into it until a complete head parses; whatever arrived
//! behind the head (the first frames, sent eagerly by some clients and servers)
//! is handed to the [`Connection`](crate::Connection) untouched.

use bytes::BytesMut;

use crate::handshake::{
    Accept, HandshakeError, RequestHead, ResponseHead, UpgradeRequest, accept_response,
    parse_request_head, parse_response_head, reject_response, validate_upgrade,
};

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

/// The server's answer to a complete request head: validates it as an
/// upgrade, lets `choose` pick the subprotocol and extensions (or refuse),
/// and returns the bytes to write — the 101 response, or the rejection to
/// send before closing.
pub fn answer_upgrade<F>(
    head: RequestHead,
    choose: F,
) -> Result<(UpgradeRequest, Vec<u8>), (HandshakeError, Vec<u8>)>
where
    F: FnOnce(&UpgradeRequest) -> Result<Accept, HandshakeError>,
{
    let reject = |error: HandshakeError| {
        let response = reject_response(&error);
        (error, response)
    };
    let request = validate_upgrade(head).map_err(reject)?;
    let accept = choose(&request).map_err(reject)?;
    let response = accept_response(&request, &accept);
    Ok((request, response))
}
