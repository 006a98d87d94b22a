//! Close codes and close frame payloads (RFC 6455 §5.5.1, §7.4).

use std::fmt;

use crate::error::ProtocolError;

/// The status code of a close frame.
///
/// Any `u16` can be represented so that codes from the wire can be reported,
/// but only [`is_sendable`](Self::is_sendable) codes may appear in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: Self = Self(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: the peer violated the protocol.
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1003: the endpoint cannot accept this type of data.
    pub const UNSUPPORTED_DATA: Self = Self(1003);
    /// 1005: no status code was present. Never sent on the wire.
    pub const NO_STATUS: Self = Self(1005);
    /// 1006: the connection ended without a close frame. Never sent on the wire.
    pub const ABNORMAL: Self = Self(1006);
    /// 1007: a message's data was inconsistent with its type (invalid UTF-8).
    pub const INVALID_PAYLOAD: Self = Self(1007);
    /// 1008: a message violated the endpoint's policy.
    pub const POLICY_VIOLATION: Self = Self(1008);
    /// 1009: a message or frame was too big to process.
    pub const MESSAGE_TOO_BIG: Self = Self(1009);
    /// 1010: the client expected the server to negotiate an extension.
    pub const MANDATORY_EXTENSION: Self = Self(1010);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: Self = Self(1011);
    /// 1012: the service is restarting.
    pub const SERVICE_RESTART: Self = Self(1012);
    /// 1013: try again later.
    pub const TRY_AGAIN_LATER: Self = Self(1013);
    /// 1014: a gateway received an invalid response.
    pub const BAD_GATEWAY: Self = Self(1014);
    /// 1015: the TLS handshake failed. Never sent on the wire.
    pub const TLS_HANDSHAKE: Self = Self(1015);

    /// Whether this code may appear in a close frame: 1000–1003, 1007–1014
    /// (registered), or 3000–4999 (libraries, frameworks, applications).
    pub fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// The registered name of the code, if it has one.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1000 => "normal closure",
            1001 => "going away",
            1002 => "protocol error",
            1003 => "unsupported data",
            1005 => "no status received",
            1006 => "abnormal closure",
            1007 => "invalid payload data",
            1008 => "policy violation",
            1009 => "message too big",
            1010 => "mandatory extension",
            1011 => "internal error",
            1012 => "service restart",
            1013 => "try again later",
            1014 => "bad gateway",
            1015 => "TLS handshake",
            _ => return None,
        })
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        Self(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{} ({name})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

/// The longest reason that fits a control frame (125 bytes less the code).
pub const MAX_REASON_LEN: usize = 123;

/// The content of a close frame that carried a status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// Why the connection is closing.
    pub code: CloseCode,
    /// A human-readable explanation, possibly empty.
    pub reason: String,
}

impl CloseFrame {
    /// A close frame with the given code and reason.
    pub fn new(code: CloseCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for CloseFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{}: {}", self.code, self.reason)
        }
    }
}

/// Parses a received close payload.
///
/// An empty payload carries no code (`Ok(None)`); otherwise it must hold a
/// sendable code followed by a UTF-8 reason.
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<CloseFrame>, ProtocolError> {
    match payload {
        [] => Ok(None),
        [_] => Err(ProtocolError::CloseFrameTooShort),
        [high, low, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*high, *low]));
            if !code.is_sendable() {
                return Err(ProtocolError::InvalidCloseCode(code.0));
            }
            let reason =
                std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidCloseReason)?;
            Ok(Some(CloseFrame::new(code, reason)))
        }
    }
}

/// The longest prefix of `reason` that fits a close frame, cut at a character
/// boundary.
pub(crate) fn truncate_reason(reason: &str) -> &str {
    let mut end = reason.len().min(MAX_REASON_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_close_payload_has_no_code() {
        assert_eq!(parse_close_payload(b""), Ok(None));
    }

    #[test]
    fn close_payload_of_one_byte_is_protocol_error() {
        assert_eq!(
            parse_close_payload(&[0x03]),
            Err(ProtocolError::CloseFrameTooShort)
        );
    }

    #[test]
    fn close_code_and_reason_are_parsed() {
        let frame = parse_close_payload(b"\x03\xe8bye").unwrap().unwrap();
        assert_eq!(frame, CloseFrame::new(CloseCode::NORMAL, "bye"));
    }

    #[test]
    fn only_registered_and_private_ranges_are_valid_on_the_wire() {
        let valid: Vec<u16> = (0..=u16::MAX)
            .filter(|&code| parse_close_payload(&code.to_be_bytes()).is_ok())
            .collect();
        let expected: Vec<u16> = (1000..=1003)
            .chain(1007..=1014)
            .chain(3000..=4999)
            .collect();
        assert_eq!(valid, expected);
    }

    #[test]
    fn close_code_1005_on_the_wire_is_protocol_error() {
        assert_eq!(
            parse_close_payload(&1005u16.to_be_bytes()),
            Err(ProtocolError::InvalidCloseCode(1005))
        );
    }

    #[test]
    fn close_with_invalid_utf8_reason_is_invalid_payload() {
        let error = parse_close_payload(b"\x03\xe8\xff").unwrap_err();
        assert_eq!(error, ProtocolError::InvalidCloseReason);
        assert_eq!(error.close_code(), CloseCode::INVALID_PAYLOAD);
    }

    #[test]
    fn long_reasons_are_cut_at_a_character_boundary() {
        let reason = "é".repeat(100);
        let cut = truncate_reason(&reason);
        assert_eq!(cut.len(), 122);
        assert_eq!(truncate_reason("short"), "short");
    }

    #[test]
    fn display_names_registered_codes() {
        assert_eq!(
            CloseCode::MESSAGE_TOO_BIG.to_string(),
            "1009 (message too big)"
        );
        assert_eq!(CloseCode(4000).to_string(), "4000");
    }
}
