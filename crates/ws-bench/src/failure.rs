//! Why a run failed, as one line for stderr and a documented exit status:
//! ws-client's table, whose codes the load generator uses too (it adds no
//! code of its own).

use std::fmt;
use std::io;
use std::time::Duration;

use ws_core::handshake::HandshakeError;
use ws_core::low_level::is_disconnect;
use ws_core::{CloseFrame, Error};

/// The exit status of `ws-client`; the table is in `--help` and the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: the exchange finished and the connection closed normally.
    Success,
    /// 1: anything else (I/O error mid-connection, unreadable file, ...).
    Other,
    /// 2: bad arguments, URL or proxy URL.
    Usage,
    /// 3: the TCP connection could not be made (refused, DNS, unreachable),
    /// or the proxy could not be reached or refused the tunnel.
    Connect,
    /// 4: the TLS handshake failed (certificate not trusted, expired, for
    /// another name), or the server did not accept the WebSocket handshake.
    Handshake,
    /// 5: the peer violated the protocol, or dropped the connection
    /// without a close.
    Protocol,
    /// 6: `--timeout` (or `--ping-timeout`) expired.
    Timeout,
    /// 7: the peer closed with a code other than 1000, 1001 or none: an
    /// application's code (3000-4999) or one of RFC 6455's error codes.
    PeerClosed,
    /// 130: Ctrl-C or SIGTERM ended a run before it finished.
    Interrupted,
}

impl Exit {
    /// The process exit status.
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Other => 1,
            Self::Usage => 2,
            Self::Connect => 3,
            Self::Handshake => 4,
            Self::Protocol => 5,
            Self::Timeout => 6,
            Self::PeerClosed => 7,
            Self::Interrupted => 130,
        }
    }
}

/// A failed run: what to tell the user, and how to exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The exit status.
    pub exit: Exit,
    /// One line, without the program's prefix (`ws-client: `, `ws-bench: `).
    pub message: String,
    /// The `Location` of a redirect (301, 302, 303, 307, 308) that refused
    /// the handshake, for `-L` to follow.
    pub redirect: Option<String>,
    /// The answer to the upgrade request was not HTTP (a TLS server on a
    /// `ws://` URL, say).
    pub not_http: bool,
}

impl Failure {
    /// A failure with the given exit status and message.
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
            redirect: None,
            not_http: false,
        }
    }

    /// A timeout: `what` says what we were waiting for.
    pub fn timeout(after: Duration, what: &str) -> Self {
        Self::new(
            Exit::Timeout,
            format!("timed out after {} {what}", format_duration(after)),
        )
    }

    /// The peer's close frame carried a code other than 1000/1001 (`peer`
    /// is "server" or "client").
    pub fn closed_with_code(frame: &CloseFrame, peer: &str) -> Self {
        Self::new(
            Exit::PeerClosed,
            format!(
                "the {peer} closed the connection with {}",
                one_line(&frame.to_string())
            ),
        )
    }

    /// An error from the opening handshake (after the TCP connection was made).
    pub fn from_handshake(error: Error) -> Self {
        match error {
            Error::Handshake(HandshakeError::Rejected(rejection)) => {
                let mut message = format!("handshake rejected: {}", rejection.status_line());
                if let Some(line) = summarise_body(&rejection.body) {
                    message.push_str(": ");
                    message.push_str(&one_line(&line));
                }
                let location = rejection.headers.get_str("Location");
                if let Some(location) = location {
                    message.push_str(&format!(" (Location: {})", one_line(location)));
                }
                let mut failure = Self::new(Exit::Handshake, message);
                if matches!(rejection.status, 301 | 302 | 303 | 307 | 308) {
                    failure.redirect = location.map(str::to_owned);
                }
                failure
            }
            Error::Handshake(HandshakeError::MalformedHead(_)) => Self {
                not_http: true,
                ..Self::new(
                    Exit::Handshake,
                    "handshake failed: the answer is not HTTP (for a TLS server, use wss://)",
                )
            },
            Error::Handshake(error) => Self::new(
                Exit::Handshake,
                format!(
                    "handshake failed: {}",
                    strip_prefix(&error.to_string(), "handshake: ")
                ),
            ),
            Error::Io(error) if error.kind() == io::ErrorKind::UnexpectedEof => Self::new(
                Exit::Handshake,
                "handshake failed: the server closed the connection without answering the upgrade request",
            ),
            Error::Io(error) => Self::new(
                Exit::Handshake,
                format!("handshake failed: {}", io_message(&error)),
            ),
            other => Self::new(Exit::Handshake, format!("handshake failed: {other}")),
        }
    }

    /// An error on an open connection.
    pub fn from_session(error: Error) -> Self {
        match error {
            Error::Protocol(error) => Self::new(
                Exit::Protocol,
                format!(
                    "protocol error: {} (closed the connection with {})",
                    strip_prefix(&error.to_string(), "protocol: "),
                    error.close_code()
                ),
            ),
            Error::AbnormalClosure => Self::new(
                Exit::Protocol,
                "the server dropped the connection without a closing handshake",
            ),
            Error::Io(error) if is_disconnect(&error) => Self::new(
                Exit::Protocol,
                format!("the server dropped the connection: {}", io_message(&error)),
            ),
            Error::Io(error) => {
                Self::new(Exit::Other, format!("I/O error: {}", io_message(&error)))
            }
            Error::Handshake(error) => Self::new(Exit::Handshake, error.to_string()),
            other => Self::new(Exit::Other, other.to_string()),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// An I/O error as users know it: `Connection refused`, without the
/// `(os error 111)` that the number adds nothing to.
pub fn io_message(error: &io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(start) if text.ends_with(')') => text.get(..start).unwrap_or(&text).to_owned(),
        _ => text,
    }
}

/// Renders a duration the way it is written on the command line.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else if millis < 1000 {
        format!("{millis}ms")
    } else {
        let seconds = format!("{:.3}", duration.as_secs_f64());
        format!("{}s", seconds.trim_end_matches('0'))
    }
}

fn strip_prefix<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.strip_prefix(prefix).unwrap_or(text)
}

/// The part of an error page worth a line: for HTML, the `<title>` or else
/// the first text outside tags; otherwise the first non-empty line.
pub fn summarise_body(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim_start();
    let lower = trimmed.to_ascii_lowercase();
    if !(lower.starts_with("<!doctype html")
        || lower.starts_with("<html")
        || lower.starts_with("<?xml"))
    {
        return trimmed
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty())
            .map(str::to_owned);
    }
    // ASCII lowercasing keeps byte offsets, so positions in `lower` are
    // positions in `trimmed`.
    if let Some(start) = lower.find("<title") {
        let after = lower
            .get(start..)
            .and_then(|rest| rest.find('>'))
            .map(|end| start + end + 1);
        if let Some(open) = after {
            let close = lower
                .get(open..)
                .and_then(|rest| rest.find("</title"))
                .map_or(trimmed.len(), |end| open + end);
            let title = collapse_spaces(trimmed.get(open..close).unwrap_or_default());
            if !title.is_empty() {
                return Some(title);
            }
        }
    }
    // The first text between tags, outside <head>, <script> and <style>.
    let mut rest = trimmed;
    let mut skip_until: Option<&str> = None;
    while let Some(open) = rest.find('<') {
        let text = collapse_spaces(rest.get(..open).unwrap_or_default());
        if skip_until.is_none() && !text.is_empty() {
            return Some(text);
        }
        let tail = rest.get(open..).unwrap_or_default();
        let close = tail.find('>').map_or(tail.len(), |end| end + 1);
        let tag = tail.get(..close).unwrap_or_default().to_ascii_lowercase();
        match skip_until {
            Some(end) if tag.starts_with(end) => skip_until = None,
            Some(_) => {}
            None if tag.starts_with("<script") => skip_until = Some("</script"),
            None if tag.starts_with("<style") => skip_until = Some("</style"),
            None if tag.starts_with("<head") => skip_until = Some("</head"),
            None => {}
        }
        rest = tail.get(close..).unwrap_or_default();
    }
    let text = collapse_spaces(rest);
    (!text.is_empty()).then_some(text)
}

fn collapse_spaces(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Text from the server is shown on one line: control characters escaped.
fn one_line(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ws_core::handshake::{Headers, Rejection};
    use ws_core::{CloseCode, ProtocolError};

    fn rejected(status: u16, reason: &str, headers: Headers, body: &[u8]) -> Error {
        Error::Handshake(HandshakeError::Rejected(Box::new(Rejection {
            status,
            reason: reason.to_owned(),
            headers,
            body: body.to_vec(),
        })))
    }

    #[test]
    fn exit_codes_match_the_documented_table() {
        let codes: Vec<u8> = [
            Exit::Success,
            Exit::Other,
            Exit::Usage,
            Exit::Connect,
            Exit::Handshake,
            Exit::Protocol,
            Exit::Timeout,
            Exit::PeerClosed,
            Exit::Interrupted,
        ]
        .into_iter()
        .map(Exit::code)
        .collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 6, 7, 130]);
    }

    #[test]
    fn rejection_names_status_line_and_first_body_line() {
        let failure = Failure::from_handshake(rejected(
            403,
            "Forbidden",
            Headers::new(),
            b"origin not allowed\nmore",
        ));
        assert_eq!(failure.exit, Exit::Handshake);
        assert_eq!(
            failure.message,
            "handshake rejected: HTTP/1.1 403 Forbidden: origin not allowed"
        );
    }

    #[test]
    fn rejection_without_body_is_just_the_status_line() {
        let failure = Failure::from_handshake(rejected(404, "Not Found", Headers::new(), b""));
        assert_eq!(
            failure.message,
            "handshake rejected: HTTP/1.1 404 Not Found"
        );
    }

    #[test]
    fn redirect_shows_its_location() {
        let mut headers = Headers::new();
        headers.push("Location", "ws://elsewhere/");
        let failure = Failure::from_handshake(rejected(301, "Moved Permanently", headers, b""));
        assert_eq!(
            failure.message,
            "handshake rejected: HTTP/1.1 301 Moved Permanently (Location: ws://elsewhere/)"
        );
    }

    #[test]
    fn wrong_accept_is_a_handshake_failure() {
        let failure = Failure::from_handshake(Error::Handshake(HandshakeError::InvalidAccept));
        assert_eq!(failure.exit, Exit::Handshake);
        assert_eq!(
            failure.message,
            "handshake failed: Sec-WebSocket-Accept is missing or does not match the key sent"
        );
    }

    #[test]
    fn eof_during_handshake_is_a_handshake_failure() {
        let error = Error::Io(io::Error::from(io::ErrorKind::UnexpectedEof));
        assert_eq!(Failure::from_handshake(error).exit, Exit::Handshake);
    }

    #[test]
    fn protocol_violation_names_the_rule_and_the_close_code() {
        let failure = Failure::from_session(Error::Protocol(ProtocolError::MaskedFrame));
        assert_eq!(failure.exit, Exit::Protocol);
        assert_eq!(
            failure.message,
            "protocol error: masked frame from a server (closed the connection with 1002 (protocol error))"
        );
    }

    #[test]
    fn dropped_connection_is_a_protocol_error() {
        assert_eq!(
            Failure::from_session(Error::AbnormalClosure).exit,
            Exit::Protocol
        );
        let reset = Error::Io(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(Failure::from_session(reset).exit, Exit::Protocol);
    }

    #[test]
    fn other_io_errors_are_other() {
        let error = Error::Io(io::Error::other("disk on fire"));
        let failure = Failure::from_session(error);
        assert_eq!(failure.exit, Exit::Other);
        assert_eq!(failure.message, "I/O error: disk on fire");
    }

    #[test]
    fn peer_close_with_another_code_is_exit_7_with_code_and_reason() {
        let frame = CloseFrame::new(CloseCode::MESSAGE_TOO_BIG, "too big");
        let failure = Failure::closed_with_code(&frame, "server");
        assert_eq!(failure.exit, Exit::PeerClosed);
        assert_eq!(
            failure.message,
            "the server closed the connection with 1009 (message too big): too big"
        );
        let frame = CloseFrame::new(CloseCode(4001), "bye\x1b[2J");
        let failure = Failure::closed_with_code(&frame, "client");
        assert_eq!(
            failure.message,
            "the client closed the connection with 4001: bye\\u{1b}[2J"
        );
    }

    #[test]
    fn html_error_pages_are_summarised_by_title_or_first_text() {
        let page = b"<!DOCTYPE HTML>\n<html><head><title>404 Not\n Found</title></head><body>x</body></html>";
        assert_eq!(summarise_body(page).as_deref(), Some("404 Not Found"));
        let untitled =
            b"<html><head><style>p{}</style></head><body><h1> Bad   gateway </h1></body></html>";
        assert_eq!(summarise_body(untitled).as_deref(), Some("Bad gateway"));
        assert_eq!(
            summarise_body(b"\n  plain reason\nmore").as_deref(),
            Some("plain reason")
        );
        assert_eq!(summarise_body(b"<html></html>"), None);
        assert_eq!(summarise_body(b""), None);
    }

    #[test]
    fn redirect_rejection_carries_its_location() {
        let mut headers = Headers::new();
        headers.push("Location", "ws://elsewhere/");
        let failure = Failure::from_handshake(rejected(308, "Permanent Redirect", headers, b""));
        assert_eq!(failure.redirect.as_deref(), Some("ws://elsewhere/"));
        let mut headers = Headers::new();
        headers.push("Location", "ws://elsewhere/");
        let failure = Failure::from_handshake(rejected(403, "Forbidden", headers, b""));
        assert_eq!(failure.redirect, None);
    }

    #[test]
    fn an_answer_that_is_not_http_suggests_wss() {
        let failure = Failure::from_handshake(Error::Handshake(HandshakeError::MalformedHead(
            "invalid HTTP version".to_owned(),
        )));
        assert_eq!(failure.exit, Exit::Handshake);
        assert!(
            failure.message.contains("use wss://"),
            "{}",
            failure.message
        );
    }

    #[test]
    fn os_error_number_is_dropped_from_io_messages() {
        let error = io::Error::from_raw_os_error(111);
        assert!(!io_message(&error).contains("os error"));
        assert_eq!(io_message(&io::Error::other("plain")), "plain");
    }

    #[test]
    fn durations_print_as_typed() {
        assert_eq!(format_duration(Duration::from_secs(10)), "10s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn server_text_is_kept_on_one_line() {
        assert_eq!(one_line("a\r\nb"), "a\\r\\nb");
    }
}
