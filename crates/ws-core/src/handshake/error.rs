//! Everything that can go wrong in an opening handshake, on either side.

use super::headers::Headers;

/// At most this many body bytes of a non-101 response are kept in a
/// [`Rejection`]: enough for an error message, bounded against a hostile peer.
pub const REJECTION_BODY_LIMIT: usize = 1024;

/// Why an opening handshake failed.
///
/// Server-side variants map to the HTTP status a server should answer with
/// (see [`HandshakeError::status`] and `reject_response`); client-side variants
/// describe what was wrong with the server's answer. Every message starts with
/// `handshake: ` and is a single line, so it can be used as a response body or
/// a log line as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The head did not end within `limit` bytes (answered with 431).
    #[error("handshake: HTTP head is larger than {limit} bytes")]
    HeadTooLarge {
        /// The configured maximum head size, in bytes.
        limit: usize,
    },
    /// The bytes are not a valid HTTP/1.x head (answered with 400).
    #[error("handshake: malformed HTTP head: {0}")]
    MalformedHead(String),
    /// The request method is not GET (answered with 405 and `Allow: GET`).
    #[error("handshake: method {0:?} is not allowed, only GET")]
    MethodNotAllowed(String),
    /// The request is HTTP/1.0; RFC 6455 requires HTTP/1.1 or later (400).
    #[error("handshake: HTTP/1.1 or later is required")]
    UnsupportedHttpVersion,
    /// The request has no usable `Host` header (400).
    #[error("handshake: missing Host header")]
    MissingHost,
    /// The request's `Upgrade` header is missing or lacks the `websocket`
    /// token (426, with `Upgrade: websocket`).
    ///
    /// 426 rather than 400 because this is typically a plain HTTP request to a
    /// WebSocket-only endpoint: the request itself is fine, it just is not an
    /// upgrade, and 426 tells the client which protocol it must switch to.
    #[error("handshake: Upgrade header is missing or has no websocket token")]
    NotAnUpgrade,
    /// The request's `Connection` header lacks the `upgrade` token (400).
    #[error("handshake: Connection header is missing or has no upgrade token")]
    MissingConnectionUpgrade,
    /// `Sec-WebSocket-Version` is missing (empty string) or not `13`; carries
    /// the value(s) sent (426, with `Sec-WebSocket-Version: 13`).
    #[error("handshake: {}", version_message(.0))]
    UnsupportedVersion(String),
    /// The request has no `Sec-WebSocket-Key` header (400).
    #[error("handshake: missing Sec-WebSocket-Key header")]
    MissingKey,
    /// `Sec-WebSocket-Key` is not base64 of exactly 16 bytes, or appears more
    /// than once (400).
    #[error("handshake: Sec-WebSocket-Key is not base64 of exactly 16 bytes")]
    InvalidKey,
    /// The server refused the request's `Origin`; carries the origin (403).
    #[error("handshake: origin {0:?} is not allowed")]
    ForbiddenOrigin(String),
    /// The request carried more header fields than the server stores
    /// (431 Request Header Fields Too Large).
    #[error("handshake: more than {limit} header fields")]
    TooManyHeaders {
        /// The number of header fields accepted.
        limit: usize,
    },
    /// Client side: the URL could not be parsed or cannot be used for a
    /// WebSocket connection; carries the reason.
    #[error("handshake: invalid URL: {0}")]
    InvalidUrl(String),
    /// Client side: the URL's scheme is neither `ws` nor `wss`; carries the
    /// scheme.
    #[error("handshake: unsupported URL scheme {0:?}, expected ws or wss")]
    UnsupportedScheme(String),
    /// Client side: the server answered with something other than 101.
    #[error("handshake: {}", rejected_message(.0))]
    Rejected(Box<Rejection>),
    /// Client side: `Sec-WebSocket-Accept` is missing, repeated, or does not
    /// match our key.
    #[error("handshake: Sec-WebSocket-Accept is missing or does not match the key sent")]
    InvalidAccept,
    /// Client side: the server chose a subprotocol we did not offer, or more
    /// than one; carries what it sent.
    #[error("handshake: server chose subprotocol {0:?}, which was not offered")]
    UnexpectedProtocol(String),
    /// Client side: the server accepted an extension we did not offer; carries
    /// what it sent.
    #[error("handshake: server accepted extensions {0:?}, which were not offered")]
    UnexpectedExtensions(String),
    /// Client side: the server's extension parameters are invalid or cannot
    /// be honoured (e.g. an unknown permessage-deflate parameter); carries why.
    #[error("handshake: cannot use the server's extension response: {0}")]
    InvalidExtensionResponse(String),
    /// Client side, over HTTP/2: the server answered the extended CONNECT
    /// with a status other than 200 (RFC 8441 §5); carries the status,
    /// headers and the start of the body.
    #[error("handshake: {}", connect_rejected_message(.0))]
    ConnectRejected(Box<Rejection>),
    /// Client side, over HTTP/2: the server's SETTINGS lack
    /// `SETTINGS_ENABLE_CONNECT_PROTOCOL = 1` (RFC 8441 §3), so it cannot
    /// carry a WebSocket on this connection: use HTTP/1.1 instead.
    #[error(
        "handshake: the HTTP/2 server does not allow extended CONNECT (no SETTINGS_ENABLE_CONNECT_PROTOCOL), so it cannot carry WebSockets"
    )]
    ExtendedConnectDisabled,
    /// Client side: the 101 response lacks `Upgrade: websocket`.
    #[error("handshake: response has no Upgrade: websocket header")]
    MissingUpgradeInResponse,
    /// Client side: the 101 response lacks `Connection: upgrade`.
    #[error("handshake: response has no Connection: upgrade header")]
    MissingConnectionInResponse,
}

fn version_message(sent: &str) -> String {
    if sent.is_empty() {
        "missing Sec-WebSocket-Version header".to_owned()
    } else {
        format!("unsupported Sec-WebSocket-Version {sent:?}, only 13 is supported")
    }
}

fn rejected_message(rejection: &Rejection) -> String {
    let mut message = format!(
        "server answered {} instead of 101 Switching Protocols",
        rejection.status_line()
    );
    if let Some(line) = rejection.body_first_line() {
        // Debug formatting escapes control characters, keeping the message on one line.
        message.push_str(&format!(": {line:?}"));
    }
    message
}

fn connect_rejected_message(rejection: &Rejection) -> String {
    let status = rejection.status;
    let mut message = match super::server::reason_phrase(status) {
        "" => format!("server answered the extended CONNECT with {status} instead of 200"),
        reason => {
            format!("server answered the extended CONNECT with {status} {reason} instead of 200")
        }
    };
    if let Some(line) = rejection.body_first_line() {
        message.push_str(&format!(": {line:?}"));
    }
    message
}

impl HandshakeError {
    /// The server's refusal, over HTTP/1.1 ([`Rejected`](Self::Rejected))
    /// or HTTP/2 ([`ConnectRejected`](Self::ConnectRejected)); `None` for
    /// any other error.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            Self::Rejected(rejection) | Self::ConnectRejected(rejection) => Some(rejection),
            _ => None,
        }
    }

    /// The HTTP status code a server answers this error with.
    ///
    /// Client-side variants never reach a server's response; they report 400
    /// so that the mapping is total.
    pub fn status(&self) -> u16 {
        match self {
            Self::HeadTooLarge { .. } | Self::TooManyHeaders { .. } => 431,
            Self::MethodNotAllowed(_) => 405,
            Self::NotAnUpgrade | Self::UnsupportedVersion(_) => 426,
            Self::ForbiddenOrigin(_) => 403,
            Self::MalformedHead(_)
            | Self::UnsupportedHttpVersion
            | Self::MissingHost
            | Self::MissingConnectionUpgrade
            | Self::MissingKey
            | Self::InvalidKey
            | Self::InvalidUrl(_)
            | Self::UnsupportedScheme(_)
            | Self::Rejected(_)
            | Self::ConnectRejected(_)
            | Self::ExtendedConnectDisabled
            | Self::InvalidAccept
            | Self::UnexpectedProtocol(_)
            | Self::UnexpectedExtensions(_)
            | Self::InvalidExtensionResponse(_)
            | Self::MissingUpgradeInResponse
            | Self::MissingConnectionInResponse => 400,
        }
    }
}

/// A server's non-101 answer to our upgrade request, kept so the user can see
/// why the server refused (a 403 page, a 401 challenge, a redirect target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The response status code.
    pub status: u16,
    /// The reason phrase as sent (may be empty).
    pub reason: String,
    /// The response headers.
    pub headers: Headers,
    /// The first body bytes already received, at most [`REJECTION_BODY_LIMIT`],
    /// raw (not de-chunked).
    pub body: Vec<u8>,
}

impl Rejection {
    /// The status line, e.g. `HTTP/1.1 403 Forbidden`, for messages.
    pub fn status_line(&self) -> String {
        let reason = self.reason.trim();
        if reason.is_empty() {
            format!("HTTP/1.1 {}", self.status)
        } else {
            format!("HTTP/1.1 {} {reason}", self.status)
        }
    }

    /// The first non-blank line of the body, trimmed, if there is one.
    ///
    /// Servers, this crate's included, usually put the reason on that line.
    pub fn body_first_line(&self) -> Option<String> {
        String::from_utf8_lossy(&self.body)
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty())
            .map(str::to_owned)
    }
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

    fn rejection(body: &[u8]) -> Rejection {
        Rejection {
            status: 403,
            reason: "Forbidden".to_owned(),
            headers: Headers::new(),
            body: body.to_vec(),
        }
    }

    #[test]
    fn error_is_at_most_32_bytes() {
        assert!(std::mem::size_of::<HandshakeError>() <= 32);
    }

    #[test]
    fn every_message_starts_with_handshake_prefix_and_is_one_line() {
        let errors = [
            HandshakeError::HeadTooLarge { limit: 16 },
            HandshakeError::MalformedHead("invalid token".into()),
            HandshakeError::MethodNotAllowed("POST".into()),
            HandshakeError::UnsupportedHttpVersion,
            HandshakeError::MissingHost,
            HandshakeError::NotAnUpgrade,
            HandshakeError::MissingConnectionUpgrade,
            HandshakeError::UnsupportedVersion(String::new()),
            HandshakeError::UnsupportedVersion("8".into()),
            HandshakeError::MissingKey,
            HandshakeError::InvalidKey,
            HandshakeError::ForbiddenOrigin("http://evil\r\n".into()),
            HandshakeError::InvalidUrl("x".into()),
            HandshakeError::UnsupportedScheme("wss".into()),
            HandshakeError::Rejected(Box::new(rejection(b"line one\nline two"))),
            HandshakeError::InvalidAccept,
            HandshakeError::UnexpectedProtocol("x".into()),
            HandshakeError::UnexpectedExtensions("x".into()),
            HandshakeError::MissingUpgradeInResponse,
            HandshakeError::MissingConnectionInResponse,
        ];
        for error in errors {
            let message = error.to_string();
            assert!(message.starts_with("handshake: "), "{message}");
            assert!(!message.contains(['\r', '\n']), "{message}");
        }
    }

    #[test]
    fn missing_and_wrong_version_have_distinct_messages() {
        assert_eq!(
            HandshakeError::UnsupportedVersion(String::new()).to_string(),
            "handshake: missing Sec-WebSocket-Version header"
        );
        assert_eq!(
            HandshakeError::UnsupportedVersion("8".into()).to_string(),
            "handshake: unsupported Sec-WebSocket-Version \"8\", only 13 is supported"
        );
    }

    #[test]
    fn status_maps_each_server_error_to_its_http_code() {
        assert_eq!(HandshakeError::HeadTooLarge { limit: 1 }.status(), 431);
        assert_eq!(HandshakeError::MalformedHead(String::new()).status(), 400);
        assert_eq!(HandshakeError::MethodNotAllowed("PUT".into()).status(), 405);
        assert_eq!(HandshakeError::UnsupportedHttpVersion.status(), 400);
        assert_eq!(HandshakeError::MissingHost.status(), 400);
        assert_eq!(HandshakeError::NotAnUpgrade.status(), 426);
        assert_eq!(HandshakeError::MissingConnectionUpgrade.status(), 400);
        assert_eq!(HandshakeError::UnsupportedVersion("8".into()).status(), 426);
        assert_eq!(HandshakeError::MissingKey.status(), 400);
        assert_eq!(HandshakeError::InvalidKey.status(), 400);
        assert_eq!(HandshakeError::ForbiddenOrigin("o".into()).status(), 403);
        assert_eq!(HandshakeError::InvalidAccept.status(), 400);
    }

    #[test]
    fn rejection_status_line_includes_reason_when_present() {
        let mut r = rejection(b"");
        assert_eq!(r.status_line(), "HTTP/1.1 403 Forbidden");
        r.reason.clear();
        assert_eq!(r.status_line(), "HTTP/1.1 403");
    }

    #[test]
    fn rejection_body_first_line_skips_blank_lines_and_trims() {
        assert_eq!(
            rejection(b"\r\n  origin not allowed \r\nmore").body_first_line(),
            Some("origin not allowed".to_owned())
        );
        assert_eq!(rejection(b" \r\n").body_first_line(), None);
        assert_eq!(rejection(b"").body_first_line(), None);
    }

    #[test]
    fn rejected_message_names_status_and_body_line() {
        let error = HandshakeError::Rejected(Box::new(rejection(b"go away\n")));
        assert_eq!(
            error.to_string(),
            "handshake: server answered HTTP/1.1 403 Forbidden instead of 101 Switching Protocols: \"go away\""
        );
    }
}
