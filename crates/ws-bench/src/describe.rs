//! Received control-frame data for diagnostic lines: payloads and close
//! frames as `ws-client` and `ws-bench` print them.
//!
//! Shared with ws-client, which depends on this crate (for `ws-client
//! bench`) and not the other way round.

use ws_core::{CloseCode, CloseFrame};

/// Lowercase hexadecimal, two digits per byte.
pub fn encode_hex(data: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(data.len() * 2);
    for byte in data {
        for nibble in [byte >> 4, byte & 0x0f] {
            text.push(char::from(
                DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'?'),
            ));
        }
    }
    text
}

/// A control frame payload for a diagnostic line: the text when it is
/// printable UTF-8, `0x`-prefixed hex otherwise.
pub fn describe_payload(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(text) if !text.chars().any(char::is_control) => text.to_owned(),
        _ => format!("0x{}", encode_hex(payload)),
    }
}

/// A close frame for a diagnostic line: `1000 (normal closure) reason`;
/// a close without a code shows as 1005.
pub fn describe_close(frame: Option<&CloseFrame>) -> String {
    match frame {
        None => CloseCode::NO_STATUS.to_string(),
        Some(frame) if frame.reason.is_empty() => frame.code.to_string(),
        Some(frame) => format!(
            "{} {}",
            frame.code,
            describe_payload(frame.reason.as_bytes())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_payload_is_shown_as_text_else_hex() {
        assert_eq!(describe_payload(b"keepalive"), "keepalive");
        assert_eq!(describe_payload(b"\x00\x01"), "0x0001");
        assert_eq!(describe_payload(b""), "");
    }

    #[test]
    fn close_is_described_with_code_name_and_reason() {
        assert_eq!(
            describe_close(Some(&CloseFrame::new(CloseCode::NORMAL, "bye"))),
            "1000 (normal closure) bye"
        );
        assert_eq!(
            describe_close(Some(&CloseFrame::new(CloseCode(4000), ""))),
            "4000"
        );
        assert_eq!(describe_close(None), "1005 (no status received)");
    }
}
