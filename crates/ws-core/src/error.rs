//! The crate's error type.
//!
//! Protocol violations by the peer ([`ProtocolError`]) each know the close code
//! the connection must be failed with; the other variants describe misuse,
//! I/O failures and the end of the connection.

use crate::close::CloseCode;
use crate::handshake::HandshakeError;

/// Everything that can go wrong on a WebSocket connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The opening handshake failed.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The peer violated the protocol; the matching close frame has been
    /// queued and the connection must be dropped once it is written.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The connection is closed (or closing) and cannot send or receive this.
    #[error("the connection is closed")]
    Closed,
    /// The transport ended before the closing handshake completed (1006).
    #[error("the connection ended without a closing handshake")]
    AbnormalClosure,
    /// Compressing an outgoing message failed.
    #[error("compression failed: {0}")]
    Compression(&'static str),
    /// The caller asked for something the protocol does not allow.
    #[error("invalid use: {0}")]
    InvalidUse(&'static str),
    /// The write buffer is over its high-water mark
    /// ([`Config::write_high_water`](crate::Config::write_high_water())):
    /// write it out (`flush`, or an async `send` that waits for room) or drop
    /// the message.
    #[error("the write buffer is full")]
    WriteBufferFull,
    /// Reading from or writing to the transport failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Whether an I/O error only says that the peer went away: a reset, an
/// aborted connection, a broken pipe, or a TLS stream that ends without
/// `close_notify` (many peers do that after the closing handshake; rustls
/// reports it as `UnexpectedEof`). After a close these are as good as the
/// transport's end.
pub fn is_disconnect(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof
    )
}

/// A violation of RFC 6455 by the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A frame used an opcode reserved for future use.
    #[error("protocol: reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// An RSV bit was set that no negotiated extension defines.
    #[error("protocol: reserved bits {0:#05b} set without a negotiated extension")]
    ReservedBits(u8),
    /// A control frame had FIN clear.
    #[error("protocol: fragmented control frame")]
    FragmentedControlFrame,
    /// A control frame carried more than 125 bytes.
    #[error("protocol: control frame with {0} bytes of payload (at most 125 allowed)")]
    ControlFrameTooLong(u64),
    /// A 64-bit payload length had its most significant bit set.
    #[error("protocol: 64-bit payload length with the most significant bit set")]
    LengthOverflow,
    /// A client sent an unmasked frame.
    #[error("protocol: unmasked frame from a client")]
    UnmaskedFrame,
    /// A server sent a masked frame.
    #[error("protocol: masked frame from a server")]
    MaskedFrame,
    /// A continuation frame arrived with no fragmented message in progress.
    #[error("protocol: continuation frame with no message to continue")]
    UnexpectedContinuation,
    /// A new text or binary frame arrived inside a fragmented message.
    #[error("protocol: new data frame while a fragmented message is in progress")]
    ExpectedContinuation,
    /// A text message (or close reason) was not valid UTF-8.
    #[error("protocol: invalid UTF-8 in a text message")]
    InvalidUtf8,
    /// A close frame had a one-byte payload.
    #[error("protocol: close frame with a 1-byte payload")]
    CloseFrameTooShort,
    /// A close frame carried a code that may not be sent.
    #[error("protocol: invalid close code {0}")]
    InvalidCloseCode(u16),
    /// A close frame's reason was not valid UTF-8.
    #[error("protocol: close reason is not valid UTF-8")]
    InvalidCloseReason,
    /// RSV1 (the compression bit) was set on a control or continuation frame.
    #[error("protocol: RSV1 set on a control or continuation frame")]
    CompressedNonFirstFrame,
    /// A compressed message was not a valid deflate stream.
    #[error("protocol: invalid compressed data")]
    InvalidCompressedData,
    /// A frame's payload was longer than the configured limit.
    #[error("protocol: frame of {size} bytes exceeds the limit of {limit} bytes")]
    FrameTooLarge {
        /// The announced payload length.
        size: u64,
        /// The configured maximum.
        limit: usize,
    },
    /// A message grew past the configured limit.
    #[error("protocol: message exceeds the limit of {limit} bytes")]
    MessageTooLarge {
        /// The configured maximum.
        limit: usize,
    },
}

impl ProtocolError {
    /// The close code the connection is failed with (RFC 6455 §7.4.1).
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::InvalidUtf8 | Self::InvalidCloseReason | Self::InvalidCompressedData => {
                CloseCode::INVALID_PAYLOAD
            }
            Self::FrameTooLarge { .. } | Self::MessageTooLarge { .. } => CloseCode::MESSAGE_TOO_BIG,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_stay_small() {
        assert!(std::mem::size_of::<ProtocolError>() <= 24);
        assert!(
            std::mem::size_of::<Error>() <= 40,
            "{}",
            std::mem::size_of::<Error>()
        );
    }

    #[test]
    fn violations_map_to_their_close_codes() {
        assert_eq!(
            ProtocolError::InvalidUtf8.close_code(),
            CloseCode::INVALID_PAYLOAD
        );
        assert_eq!(
            ProtocolError::MessageTooLarge { limit: 1 }.close_code(),
            CloseCode::MESSAGE_TOO_BIG
        );
        assert_eq!(
            ProtocolError::UnmaskedFrame.close_code(),
            CloseCode::PROTOCOL_ERROR
        );
    }

    #[test]
    fn messages_say_what_was_wrong() {
        assert_eq!(
            ProtocolError::ControlFrameTooLong(126).to_string(),
            "protocol: control frame with 126 bytes of payload (at most 125 allowed)"
        );
    }
}
