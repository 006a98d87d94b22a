//! The permessage-deflate codec when the `deflate` feature is off: a type
//! that has no values, so a connection's `Option<Box<Deflate>>` is always
//! `None`, RSV1 is never allowed, and the compressed paths of
//! [`Connection`](crate::Connection) are dead code.

use std::convert::Infallible;
use std::fmt;

use crate::error::ProtocolError;

/// Never constructed: without a codec there is no compressed encoding to
/// share (see [`PreparedMessage`](crate::PreparedMessage)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StandaloneKey(Infallible);

/// Never constructed: see the module docs.
pub(crate) struct Deflate {
    never: Infallible,
}

impl fmt::Debug for Deflate {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.never {}
    }
}

impl Deflate {
    pub(crate) fn compresses(&self, _payload: &[u8], _text: bool) -> bool {
        match self.never {}
    }

    /// Called by the send path, which never runs.
    pub(crate) fn take_output() -> Vec<u8> {
        Vec::new()
    }

    /// Called by the send path, which never runs.
    pub(crate) fn give_output(_output: Vec<u8>) {}

    pub(crate) fn compress(
        &mut self,
        _input: &[u8],
        _out: &mut Vec<u8>,
    ) -> Result<(), &'static str> {
        match self.never {}
    }

    pub(crate) fn decompress(
        &mut self,
        _input: &[u8],
        _out: &mut Vec<u8>,
        _limit: usize,
        _check: &mut dyn FnMut(&[u8]) -> Result<(), ProtocolError>,
    ) -> Result<(), ProtocolError> {
        match self.never {}
    }

    pub(crate) fn finish_message(
        &mut self,
        _out: &mut Vec<u8>,
        _limit: usize,
        _check: &mut dyn FnMut(&[u8]) -> Result<(), ProtocolError>,
    ) -> Result<(), ProtocolError> {
        match self.never {}
    }

    pub(crate) fn shrink(&mut self) {
        match self.never {}
    }

    pub(crate) fn standalone_key(&self) -> Option<StandaloneKey> {
        match self.never {}
    }
}
