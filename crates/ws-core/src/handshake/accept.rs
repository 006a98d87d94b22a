//! The `Sec-WebSocket-Key` / `Sec-WebSocket-Accept` pair (RFC 6455 §1.3, §4.2.2).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest as _, Sha1};

/// The fixed GUID that RFC 6455 appends to the client's key before hashing.
///
/// It exists so that a server proves it understood the WebSocket handshake,
/// rather than echoing the key back like a generic HTTP server might.
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Computes the `Sec-WebSocket-Accept` value a server must send for `key`.
///
/// `key` is the `Sec-WebSocket-Key` header value exactly as the client sent it
/// (OWS-trimmed, never decoded or case-folded): the RFC hashes the base64 text,
/// not the 16 bytes it encodes.
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(WEBSOCKET_GUID.as_bytes());
    STANDARD.encode(sha.finalize())
}

/// Generates a fresh `Sec-WebSocket-Key` for a client request.
///
/// RFC 6455 §4.1 asks for 16 randomly selected bytes, base64-encoded, chosen
/// anew for every connection so that caches and proxies cannot replay an
/// earlier handshake.
pub fn generate_key() -> String {
    STANDARD.encode(rand::random::<[u8; 16]>())
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

    #[test]
    fn accept_key_matches_rfc6455_section_1_3_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn accept_key_hashes_the_key_text_exactly_as_given() {
        // A key differing only in letter case is a different key.
        assert_ne!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            accept_key(b"DGhlIHNhbXBsZSBub25jZQ==")
        );
    }

    #[test]
    fn generated_key_is_base64_of_16_bytes() {
        let key = generate_key();
        assert_eq!(key.len(), 24);
        assert_eq!(STANDARD.decode(&key).unwrap().len(), 16);
    }

    #[test]
    fn generated_keys_differ_between_calls() {
        assert_ne!(generate_key(), generate_key());
    }
}
