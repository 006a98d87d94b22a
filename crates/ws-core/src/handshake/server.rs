//! Server side: parse the client's request head, validate it as an upgrade
//! (RFC 6455 §4.2.1), and write the 101 or a rejection.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::accept::accept_key;
use super::error::HandshakeError;
use super::headers::{Headers, from_httparse, trim_ows, write_header};

/// A sensible cap on the request head: browsers send 0.5–2 KiB, and cookies
/// rarely push that past 8 KiB. Anything larger is treated as abuse (431).
pub const DEFAULT_MAX_HEAD_SIZE: usize = 16 * 1024;

/// How many header fields httparse may store. Real clients send well under 64;
/// the margin keeps unusual-but-honest clients working, and beyond it the
/// request is rejected as malformed rather than silently truncated.
const MAX_HEADERS: usize = 128;

/// A parsed HTTP request head, before any WebSocket validation.
///
/// Servers that also serve plain HTTP look at this first (see
/// [`RequestHead::is_upgrade`]) and only call [`validate_upgrade`] for upgrades.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestHead {
    /// The request method as sent, e.g. `GET`.
    pub method: String,
    /// The request target as sent: usually origin-form (`/chat?room=1`).
    pub target: String,
    /// The HTTP minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// The header fields in wire order.
    pub headers: Headers,
}

impl RequestHead {
    /// The path part of the target, without the query; `/` if it is empty.
    ///
    /// An absolute-form target (`http://host/path`, which RFC 9112 requires
    /// servers to accept) is reduced to its path as well.
    pub fn path(&self) -> &str {
        let resource = origin_form(&self.target);
        let path = resource.split_once('?').map_or(resource, |(path, _)| path);
        if path.is_empty() { "/" } else { path }
    }

    /// The query part of the target (after `?`), if there is one.
    pub fn query(&self) -> Option<&str> {
        origin_form(&self.target)
            .split_once('?')
            .map(|(_, query)| query)
    }

    /// Whether the request asks for a WebSocket upgrade (`Upgrade` carries the
    /// `websocket` token). A `false` here means: route it as plain HTTP.
    pub fn is_upgrade(&self) -> bool {
        self.headers.has_token("Upgrade", "websocket")
    }
}

/// Strips `scheme://authority` from an absolute-form target.
fn origin_form(target: &str) -> &str {
    if target.starts_with('/') {
        return target;
    }
    match target.split_once("://") {
        Some((_, rest)) => rest
            .find(['/', '?'])
            .and_then(|i| rest.get(i..))
            .unwrap_or(""),
        None => target,
    }
}

/// Parses an HTTP request head from the start of `buf`, incrementally.
///
/// - `Ok(None)`: the head is incomplete; read more and call again with the
///   whole buffer.
/// - `Ok(Some((head, consumed)))`: `consumed` is the head's length including
///   the blank line. Bytes after it already belong to the WebSocket stream
///   (a client may send its first frame right behind the request), so the
///   caller must keep `buf[consumed..]`.
/// - `Err(HeadTooLarge)` as soon as `buf` holds `max_head_size` bytes without
///   a complete head: waiting for more would only let a peer make us buffer
///   without bound.
pub fn parse_request_head(
    buf: &[u8],
    max_head_size: usize,
) -> Result<Option<(RequestHead, usize)>, HandshakeError> {
    // Never look past the limit, so that the cost of a parse is bounded too.
    let window = buf.get(..max_head_size).unwrap_or(buf);
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut storage);
    match request.parse(window) {
        Ok(httparse::Status::Complete(consumed)) => {
            let head = RequestHead {
                method: request.method.unwrap_or_default().to_owned(),
                target: request.path.unwrap_or_default().to_owned(),
                minor_version: request.version.unwrap_or_default(),
                headers: from_httparse(request.headers),
            };
            Ok(Some((head, consumed)))
        }
        Ok(httparse::Status::Partial) if window.len() >= max_head_size => {
            Err(HandshakeError::HeadTooLarge {
                limit: max_head_size,
            })
        }
        Ok(httparse::Status::Partial) => Ok(None),
        // RFC 6585 §5: header fields too large collectively: 431, as for size.
        Err(httparse::Error::TooManyHeaders) => {
            Err(HandshakeError::TooManyHeaders { limit: MAX_HEADERS })
        }
        Err(error) => Err(HandshakeError::MalformedHead(error.to_string())),
    }
}

/// A request that passed [`validate_upgrade`], with the handshake fields
/// pulled out for the application to decide on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpgradeRequest {
    /// The full request head, for routing and for any header not pulled out.
    pub head: RequestHead,
    /// `Sec-WebSocket-Key` exactly as sent (OWS-trimmed only); empty for a
    /// WebSocket over HTTP/2, which has no key (RFC 8441 §5).
    pub key: String,
    /// The `Host` header value (over HTTP/2, the `:authority`).
    pub host: String,
    /// The `Origin` header, if sent (browsers always send it): the input to an
    /// origin check against cross-site WebSocket hijacking.
    pub origin: Option<String>,
    /// The subprotocols the client offered, in its order.
    pub protocols: Vec<String>,
    /// The extension offers, one element each (e.g.
    /// `permessage-deflate; client_max_window_bits`), in the client's order.
    pub extensions: Vec<String>,
}

impl UpgradeRequest {
    /// The request path without the query.
    pub fn path(&self) -> &str {
        self.head.path()
    }

    /// The query string, if any.
    pub fn query(&self) -> Option<&str> {
        self.head.query()
    }

    /// All request headers, e.g. for `Authorization` or cookies.
    pub fn headers(&self) -> &Headers {
        &self.head.headers
    }

    /// The `Sec-WebSocket-Accept` value that answers this request's key.
    pub fn accept_key(&self) -> String {
        accept_key(self.key.as_bytes())
    }

    /// Picks the subprotocol to answer with: the first of `supported` (the
    /// server's order of preference) that the client offered, matched exactly.
    pub fn select_protocol(&self, supported: &[&str]) -> Option<String> {
        supported
            .iter()
            .find(|candidate| self.protocols.iter().any(|p| p == *candidate))
            .map(|p| (*p).to_owned())
    }
}

/// Checks that `head` is a valid WebSocket opening handshake (RFC 6455
/// §4.2.1) and extracts its fields.
///
/// Checks run in this order, so the first problem found decides the status:
/// method GET (405), HTTP/1.1 or later (400), `Host` (400), `Upgrade` with a
/// `websocket` token (426), `Connection` with an `upgrade` token (400),
/// `Sec-WebSocket-Version: 13` (426), `Sec-WebSocket-Key` of exactly 16
/// base64-encoded bytes (400). Header names and the `Upgrade`/`Connection`
/// tokens are case-insensitive; the key is kept exactly as sent.
pub fn validate_upgrade(head: RequestHead) -> Result<UpgradeRequest, HandshakeError> {
    // RFC 9110 §9.1: method names are case-sensitive, so `get` is not GET.
    if head.method != "GET" {
        return Err(HandshakeError::MethodNotAllowed(head.method));
    }
    if head.minor_version < 1 {
        return Err(HandshakeError::UnsupportedHttpVersion);
    }
    let host = validate_host(&head.headers)?;
    if !head.headers.has_token("Upgrade", "websocket") {
        return Err(HandshakeError::NotAnUpgrade);
    }
    if !head.headers.has_token("Connection", "upgrade") {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    validate_version(&head.headers)?;
    let key = validate_key(&head.headers)?;
    Ok(upgrade_request(head, key, host))
}

/// Checks that `head`, an HTTP/2 request whose `:protocol` pseudo-header is
/// `protocol`, is a WebSocket opening handshake by extended CONNECT (RFC
/// 8441 §4–§5), with the rules of [`validate_upgrade`] where the two agree.
///
/// Checks run in this order: method CONNECT and `:protocol` `websocket`
/// (otherwise [`HandshakeError::NotAnUpgrade`]: route it as plain HTTP), a
/// `:scheme` and a non-empty `:path` (400), `:authority` (carried as the
/// `Host` header, 400), `sec-websocket-version: 13` (426). There is no key:
/// the request's [`UpgradeRequest::key`] is empty.
#[cfg(feature = "http2")]
pub(crate) fn validate_extended_connect(
    head: RequestHead,
    protocol: Option<&str>,
    scheme: Option<&str>,
) -> Result<UpgradeRequest, HandshakeError> {
    // RFC 8441 §4: `:protocol` names an HTTP Upgrade token, and those are
    // case-insensitive (RFC 9110 §7.8), as `Upgrade: websocket` is.
    let websocket = protocol.is_some_and(|p| p.eq_ignore_ascii_case("websocket"));
    if head.method != "CONNECT" || !websocket {
        return Err(HandshakeError::NotAnUpgrade);
    }
    if scheme.is_none_or(str::is_empty) {
        return Err(HandshakeError::MalformedHead(
            "extended CONNECT without :scheme".to_owned(),
        ));
    }
    if !origin_form(&head.target).starts_with('/') {
        return Err(HandshakeError::MalformedHead(
            "extended CONNECT without :path".to_owned(),
        ));
    }
    let host = validate_host(&head.headers)?;
    validate_version(&head.headers)?;
    Ok(upgrade_request(head, String::new(), host))
}

/// The fields of a validated request, pulled out for the application.
fn upgrade_request(head: RequestHead, key: String, host: String) -> UpgradeRequest {
    UpgradeRequest {
        key,
        host,
        origin: head.headers.get_str("Origin").map(str::to_owned),
        protocols: head.headers.list("Sec-WebSocket-Protocol"),
        extensions: head.headers.list("Sec-WebSocket-Extensions"),
        head,
    }
}

fn validate_host(headers: &Headers) -> Result<String, HandshakeError> {
    let mut hosts = headers.get_all("Host");
    let host = hosts.next().ok_or(HandshakeError::MissingHost)?;
    // RFC 9112 §3.2: two Host fields make the request ambiguous; answer 400.
    if hosts.next().is_some() {
        return Err(HandshakeError::MalformedHead(
            "more than one Host header".to_owned(),
        ));
    }
    let host = std::str::from_utf8(trim_ows(host))
        .map_err(|_| HandshakeError::MalformedHead("Host header is not UTF-8".to_owned()))?;
    if host.is_empty() {
        return Err(HandshakeError::MissingHost);
    }
    Ok(host.to_owned())
}

fn validate_version(headers: &Headers) -> Result<(), HandshakeError> {
    let sent: Vec<String> = headers
        .get_all("Sec-WebSocket-Version")
        .map(|v| String::from_utf8_lossy(trim_ows(v)).into_owned())
        .collect();
    match sent.as_slice() {
        [version] if version == "13" => Ok(()),
        _ => Err(HandshakeError::UnsupportedVersion(sent.join(", "))),
    }
}

fn validate_key(headers: &Headers) -> Result<String, HandshakeError> {
    let mut keys = headers.get_all("Sec-WebSocket-Key");
    let key = keys.next().ok_or(HandshakeError::MissingKey)?;
    // RFC 6455 §11.3.1: the key must not appear more than once.
    if keys.next().is_some() {
        return Err(HandshakeError::InvalidKey);
    }
    let key = trim_ows(key);
    match STANDARD.decode(key) {
        Ok(decoded) if decoded.len() == 16 => {}
        _ => return Err(HandshakeError::InvalidKey),
    }
    // Valid base64 is ASCII, so this cannot fail after a successful decode.
    String::from_utf8(key.to_vec()).map_err(|_| HandshakeError::InvalidKey)
}

/// The parts of the `101 Switching Protocols` answer that the server
/// chooses: the subprotocol and extensions it selected, and extra headers.
/// The default accepts the upgrade with none of them.
///
/// Returned by the `choose` callback of the adapters' `accept_with` and
/// given to [`accept_response`].
///
/// ```
/// use ws_core::handshake::{AcceptOptions, HandshakeError, UpgradeRequest};
///
/// fn choose(request: &UpgradeRequest) -> Result<AcceptOptions, HandshakeError> {
///     Ok(AcceptOptions::default()
///         .protocol(request.select_protocol(&["chat.v2", "chat"]))
///         .header("Set-Cookie", "session=1"))
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AcceptOptions {
    /// The chosen subprotocol; it must be one the client offered (see
    /// [`UpgradeRequest::select_protocol`]) or the client will fail.
    pub protocol: Option<String>,
    /// The accepted extensions, as the `Sec-WebSocket-Extensions` value.
    pub extensions: Option<String>,
    /// Extra response headers, e.g. `Set-Cookie`.
    pub headers: Vec<(String, String)>,
}

impl AcceptOptions {
    /// Sets the chosen subprotocol (`None`: none); it must be one the client
    /// offered, which [`UpgradeRequest::select_protocol`] guarantees.
    pub fn protocol(mut self, protocol: Option<String>) -> Self {
        self.protocol = protocol;
        self
    }

    /// Sets the accepted extensions, as the `Sec-WebSocket-Extensions` value
    /// (`None`: none). The adapters negotiate permessage-deflate themselves
    /// when this is `None` and [`Config::deflate`](crate::Config::deflate())
    /// is set.
    pub fn extensions(mut self, extensions: Option<String>) -> Self {
        self.extensions = extensions;
        self
    }

    /// Adds a response header, e.g. `Set-Cookie`. Names that are not HTTP
    /// tokens are dropped and control characters in values become spaces.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// The `101 Switching Protocols` response completing the handshake.
///
/// Header names that are not HTTP tokens are dropped and control characters
/// in values replaced by spaces, so application data cannot split the response.
pub fn accept_response(request: &UpgradeRequest, accept: &AcceptOptions) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
    write_header(&mut out, "Upgrade", "websocket");
    write_header(&mut out, "Connection", "Upgrade");
    write_header(&mut out, "Sec-WebSocket-Accept", &request.accept_key());
    if let Some(protocol) = &accept.protocol {
        write_header(&mut out, "Sec-WebSocket-Protocol", protocol);
    }
    if let Some(extensions) = &accept.extensions {
        write_header(&mut out, "Sec-WebSocket-Extensions", extensions);
    }
    for (name, value) in &accept.headers {
        write_header(&mut out, name, value);
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The complete response refusing a handshake that failed with `error`.
///
/// The status is [`HandshakeError::status`]; the body is the error's one-line
/// message plus a newline, as `text/plain`. A 405 carries `Allow: GET`; a 426
/// carries `Upgrade: websocket` and `Sec-WebSocket-Version: 13` (RFC 6455
/// §4.4 tells the client which version to retry with). The connection is to
/// be closed after it is sent.
pub fn reject_response(error: &HandshakeError) -> Vec<u8> {
    let status = error.status();
    let mut body: String = error
        .to_string()
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    body.push('\n');
    let mut extra: Vec<(&str, &str)> = Vec::new();
    // RFC 9110 §7.8: whoever sends Upgrade must also list it in Connection.
    let mut connection = "close";
    match status {
        405 => extra.push(("Allow", "GET")),
        426 => {
            extra.push(("Upgrade", "websocket"));
            extra.push(("Sec-WebSocket-Version", "13"));
            connection = "Upgrade, close";
        }
        _ => {}
    }
    build_response(
        status,
        &extra,
        connection,
        "text/plain; charset=utf-8",
        body.as_bytes(),
    )
}

/// A complete, self-contained HTTP/1.1 response after which the server closes
/// the connection: for plain HTTP routes beside the WebSocket endpoint (health
/// checks, a status page) and custom rejections (e.g. 401).
///
/// Adds `Content-Type`, `Content-Length` and `Connection: close`. The reason
/// phrase is the standard one for common codes (`404 Not Found`) and empty
/// for others, which is valid HTTP. A `status` outside 100–999 is not a
/// valid status code and is sent as 500.
pub fn http_response(
    status: u16,
    extra_headers: &[(&str, &str)],
    content_type: &str,
    body: &[u8],
) -> Vec<u8> {
    build_response(status, extra_headers, "close", content_type, body)
}

fn build_response(
    status: u16,
    extra_headers: &[(&str, &str)],
    connection: &str,
    content_type: &str,
    body: &[u8],
) -> Vec<u8> {
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
    let mut out = Vec::with_capacity(160 + body.len());
    // The reason phrase may be empty, but the space before it is mandatory.
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status)).as_bytes());
    write_header(&mut out, "Content-Type", content_type);
    write_header(&mut out, "Content-Length", &body.len().to_string());
    write_header(&mut out, "Connection", connection);
    for (name, value) in extra_headers {
        write_header(&mut out, name, value);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// The standard reason phrase for common status codes, or `""` for others
/// (an empty reason phrase is valid HTTP; clients must not rely on it).
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
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
    use crate::handshake::client::parse_response_head;

    const CHROMIUM: &str = "GET /chat?room=1 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nConnection: Upgrade\r\nPragma: no-cache\r\nCache-Control: no-cache\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\nUpgrade: websocket\r\nOrigin: http://127.0.0.1:8000\r\nSec-WebSocket-Version: 13\r\nAccept-Encoding: gzip, deflate, br, zstd\r\nAccept-Language: en-US,en;q=0.9\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\nSec-WebSocket-Protocol: chat, superchat\r\n\r\n";

    const MINIMAL: &str = "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

    fn parse(raw: &str) -> RequestHead {
        let (head, consumed) = parse_request_head(raw.as_bytes(), DEFAULT_MAX_HEAD_SIZE)
            .unwrap()
            .unwrap();
        assert_eq!(consumed, raw.len());
        head
    }

    fn validate(raw: &str) -> Result<UpgradeRequest, HandshakeError> {
        validate_upgrade(parse(raw))
    }

    /// MINIMAL with one header line replaced (or removed when `line` is empty).
    fn minimal_with(name: &str, line: &str) -> String {
        let mut out = String::new();
        for l in MINIMAL.split_inclusive("\r\n") {
            if l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
            {
                out.push_str(line);
            } else {
                out.push_str(l);
            }
        }
        out
    }

    fn split_response(bytes: &[u8]) -> (crate::handshake::ResponseHead, Vec<u8>) {
        let (head, consumed) = parse_response_head(bytes, DEFAULT_MAX_HEAD_SIZE)
            .unwrap()
            .unwrap();
        (head, bytes[consumed..].to_vec())
    }

    #[test]
    fn accepts_chromium_request_verbatim() {
        let request = validate(CHROMIUM).unwrap();
        assert_eq!(request.path(), "/chat");
        assert_eq!(request.query(), Some("room=1"));
        assert_eq!(request.host, "127.0.0.1:8000");
        assert_eq!(request.origin.as_deref(), Some("http://127.0.0.1:8000"));
        assert_eq!(request.protocols, vec!["chat", "superchat"]);
        assert_eq!(
            request.extensions,
            vec!["permessage-deflate; client_max_window_bits"]
        );
        assert_eq!(request.key, "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(request.accept_key(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(
            request.headers().get_str("accept-language"),
            Some("en-US,en;q=0.9")
        );
    }

    #[test]
    fn accepts_firefox_connection_keep_alive_upgrade() {
        let raw = minimal_with("Connection", "Connection: keep-alive, Upgrade\r\n");
        assert!(validate(&raw).is_ok());
    }

    #[test]
    fn accepts_mixed_case_header_names_and_token_values() {
        let raw = "GET / HTTP/1.1\r\nhOsT: h\r\nUPGRADE: WebSocket\r\nconnection: UPGRADE\r\nsec-websocket-version: 13\r\nSEC-WEBSOCKET-KEY: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        let request = validate(raw).unwrap();
        assert_eq!(request.host, "h");
        assert_eq!(request.key, "dGhlIHNhbXBsZSBub25jZQ==");
    }

    #[test]
    fn key_is_used_exactly_as_sent_never_case_folded() {
        // Decodes to 16 bytes; letter case matters to base64 and to the accept hash.
        let key = "AbCdEfGhIjKlMnOpQrStUw==";
        let raw = minimal_with(
            "Sec-WebSocket-Key",
            &format!("Sec-WebSocket-Key: {key}\r\n"),
        );
        let request = validate(&raw).unwrap();
        assert_eq!(request.key, key);
        assert_eq!(request.accept_key(), accept_key(key.as_bytes()));
        assert_ne!(
            request.accept_key(),
            accept_key(key.to_ascii_lowercase().as_bytes())
        );
    }

    #[test]
    fn key_is_trimmed_of_optional_whitespace() {
        let raw = minimal_with(
            "Sec-WebSocket-Key",
            "Sec-WebSocket-Key: \t dGhlIHNhbXBsZSBub25jZQ== \t\r\n",
        );
        assert_eq!(validate(&raw).unwrap().key, "dGhlIHNhbXBsZSBub25jZQ==");
    }

    #[test]
    fn incremental_parse_returns_none_until_the_last_byte() {
        let bytes = CHROMIUM.as_bytes();
        for end in 0..bytes.len() {
            assert_eq!(
                parse_request_head(&bytes[..end], DEFAULT_MAX_HEAD_SIZE).unwrap(),
                None,
                "complete after {end} of {} bytes",
                bytes.len()
            );
        }
        let (_, consumed) = parse_request_head(bytes, DEFAULT_MAX_HEAD_SIZE)
            .unwrap()
            .unwrap();
        assert_eq!(consumed, bytes.len());
    }

    #[test]
    fn bytes_after_the_blank_line_are_not_consumed() {
        let mut buf = MINIMAL.as_bytes().to_vec();
        buf.extend_from_slice(&[0x81, 0x85, 1, 2, 3, 4]);
        let (_, consumed) = parse_request_head(&buf, DEFAULT_MAX_HEAD_SIZE)
            .unwrap()
            .unwrap();
        assert_eq!(consumed, MINIMAL.len());
        assert_eq!(&buf[consumed..], &[0x81, 0x85, 1, 2, 3, 4]);
    }

    #[test]
    fn head_reaching_the_limit_without_terminator_is_too_large() {
        let mut buf = b"GET / HTTP/1.1\r\nX-Filler: ".to_vec();
        buf.resize(64, b'a');
        assert_eq!(parse_request_head(&buf[..63], 64), Ok(None));
        assert_eq!(
            parse_request_head(&buf, 64),
            Err(HandshakeError::HeadTooLarge { limit: 64 })
        );
    }

    #[test]
    fn head_longer_than_the_limit_is_too_large_even_when_complete() {
        assert_eq!(
            parse_request_head(MINIMAL.as_bytes(), MINIMAL.len() - 1),
            Err(HandshakeError::HeadTooLarge {
                limit: MINIMAL.len() - 1
            })
        );
        assert!(matches!(
            parse_request_head(MINIMAL.as_bytes(), MINIMAL.len()),
            Ok(Some((_, n))) if n == MINIMAL.len()
        ));
    }

    #[test]
    fn garbage_is_a_malformed_head() {
        assert!(matches!(
            parse_request_head(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 1024),
            Err(HandshakeError::MalformedHead(_))
        ));
        assert!(matches!(
            parse_request_head(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 1024),
            Err(HandshakeError::MalformedHead(_))
        ));
    }

    #[test]
    fn more_headers_than_storage_is_431() {
        let mut raw = String::from("GET / HTTP/1.1\r\n");
        for i in 0..=MAX_HEADERS {
            raw.push_str(&format!("X-{i}: v\r\n"));
        }
        raw.push_str("\r\n");
        let error = parse_request_head(raw.as_bytes(), DEFAULT_MAX_HEAD_SIZE).unwrap_err();
        assert_eq!(error, HandshakeError::TooManyHeaders { limit: MAX_HEADERS });
        assert_eq!(error.status(), 431);
        assert!(
            String::from_utf8(reject_response(&error))
                .unwrap()
                .starts_with("HTTP/1.1 431 ")
        );
    }

    #[test]
    fn path_and_query_split_the_target() {
        let mut head = parse(MINIMAL);
        assert_eq!((head.path(), head.query()), ("/", None));
        head.target = "/a/b?x=1&y=2".into();
        assert_eq!((head.path(), head.query()), ("/a/b", Some("x=1&y=2")));
        head.target = "http://example.com:8080/ws?t=1".into();
        assert_eq!((head.path(), head.query()), ("/ws", Some("t=1")));
        head.target = "http://example.com".into();
        assert_eq!((head.path(), head.query()), ("/", None));
    }

    #[test]
    fn is_upgrade_requires_websocket_token() {
        assert!(parse(MINIMAL).is_upgrade());
        let plain = parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(!plain.is_upgrade());
        let h2c = parse("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\n\r\n");
        assert!(!h2c.is_upgrade());
    }

    #[test]
    fn rejects_non_get_method_with_405() {
        let raw = MINIMAL.replacen("GET", "POST", 1);
        assert_eq!(
            validate(&raw).unwrap_err(),
            HandshakeError::MethodNotAllowed("POST".into())
        );
    }

    #[test]
    fn rejects_http_1_0() {
        let raw = MINIMAL.replacen("HTTP/1.1", "HTTP/1.0", 1);
        assert_eq!(
            validate(&raw).unwrap_err(),
            HandshakeError::UnsupportedHttpVersion
        );
    }

    #[test]
    fn rejects_missing_or_empty_host() {
        assert_eq!(
            validate(&minimal_with("Host", "")).unwrap_err(),
            HandshakeError::MissingHost
        );
        assert_eq!(
            validate(&minimal_with("Host", "Host: \r\n")).unwrap_err(),
            HandshakeError::MissingHost
        );
    }

    #[test]
    fn rejects_duplicate_host() {
        let raw = minimal_with("Host", "Host: a\r\nHost: b\r\n");
        assert!(matches!(
            validate(&raw),
            Err(HandshakeError::MalformedHead(_))
        ));
    }

    #[test]
    fn rejects_missing_or_wrong_upgrade() {
        assert_eq!(
            validate(&minimal_with("Upgrade", "")).unwrap_err(),
            HandshakeError::NotAnUpgrade
        );
        assert_eq!(
            validate(&minimal_with("Upgrade", "Upgrade: h2c\r\n")).unwrap_err(),
            HandshakeError::NotAnUpgrade
        );
    }

    #[test]
    fn rejects_connection_without_upgrade_token() {
        assert_eq!(
            validate(&minimal_with("Connection", "")).unwrap_err(),
            HandshakeError::MissingConnectionUpgrade
        );
        assert_eq!(
            validate(&minimal_with("Connection", "Connection: keep-alive\r\n")).unwrap_err(),
            HandshakeError::MissingConnectionUpgrade
        );
    }

    #[test]
    fn rejects_missing_or_unsupported_version() {
        assert_eq!(
            validate(&minimal_with("Sec-WebSocket-Version", "")).unwrap_err(),
            HandshakeError::UnsupportedVersion(String::new())
        );
        assert_eq!(
            validate(&minimal_with(
                "Sec-WebSocket-Version",
                "Sec-WebSocket-Version: 8\r\n"
            ))
            .unwrap_err(),
            HandshakeError::UnsupportedVersion("8".into())
        );
        assert_eq!(
            validate(&minimal_with(
                "Sec-WebSocket-Version",
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 8\r\n"
            ))
            .unwrap_err(),
            HandshakeError::UnsupportedVersion("13, 8".into())
        );
    }

    #[test]
    fn rejects_missing_key() {
        assert_eq!(
            validate(&minimal_with("Sec-WebSocket-Key", "")).unwrap_err(),
            HandshakeError::MissingKey
        );
    }

    #[test]
    fn rejects_key_that_is_not_base64() {
        let raw = minimal_with(
            "Sec-WebSocket-Key",
            "Sec-WebSocket-Key: not base64 at all!!!\r\n",
        );
        assert_eq!(validate(&raw).unwrap_err(), HandshakeError::InvalidKey);
    }

    #[test]
    fn rejects_key_that_decodes_to_15_bytes() {
        let key = STANDARD.encode([7u8; 15]);
        let raw = minimal_with(
            "Sec-WebSocket-Key",
            &format!("Sec-WebSocket-Key: {key}\r\n"),
        );
        assert_eq!(validate(&raw).unwrap_err(), HandshakeError::InvalidKey);
    }

    #[test]
    fn rejects_key_that_decodes_to_17_bytes() {
        let key = STANDARD.encode([7u8; 17]);
        let raw = minimal_with(
            "Sec-WebSocket-Key",
            &format!("Sec-WebSocket-Key: {key}\r\n"),
        );
        assert_eq!(validate(&raw).unwrap_err(), HandshakeError::InvalidKey);
    }

    #[test]
    fn rejects_unpadded_key() {
        let raw = minimal_with(
            "Sec-WebSocket-Key",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n",
        );
        assert_eq!(validate(&raw).unwrap_err(), HandshakeError::InvalidKey);
    }

    #[test]
    fn rejects_repeated_key() {
        let raw = minimal_with(
            "Sec-WebSocket-Key",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        );
        assert_eq!(validate(&raw).unwrap_err(), HandshakeError::InvalidKey);
    }

    #[test]
    fn checks_run_in_rfc_order_method_first() {
        // Everything is wrong; the method decides.
        let head = parse("PUT / HTTP/1.0\r\n\r\n");
        assert_eq!(
            validate_upgrade(head).unwrap_err(),
            HandshakeError::MethodNotAllowed("PUT".into())
        );
        // Version and key both wrong; the version decides.
        let raw = minimal_with("Sec-WebSocket-Version", "").replace("dGhl", "!!!!");
        assert_eq!(
            validate(&raw).unwrap_err(),
            HandshakeError::UnsupportedVersion(String::new())
        );
    }

    #[test]
    fn accept_response_is_the_rfc_101() {
        let request = validate(MINIMAL).unwrap();
        let bytes = accept_response(&request, &AcceptOptions::default());
        assert_eq!(
            bytes,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
    }

    #[test]
    fn accept_response_carries_protocol_extensions_and_extra_headers() {
        let request = validate(CHROMIUM).unwrap();
        let accept = AcceptOptions {
            protocol: request.select_protocol(&["superchat", "chat"]),
            extensions: Some("permessage-deflate".into()),
            headers: vec![("Set-Cookie".into(), "a=b".into())],
        };
        let (head, rest) = split_response(&accept_response(&request, &accept));
        assert_eq!(head.status, 101);
        assert!(rest.is_empty());
        assert_eq!(
            head.headers.get_str("Sec-WebSocket-Protocol"),
            Some("superchat")
        );
        assert_eq!(
            head.headers.get_str("Sec-WebSocket-Extensions"),
            Some("permessage-deflate")
        );
        assert_eq!(head.headers.get_str("Set-Cookie"), Some("a=b"));
    }

    #[test]
    fn select_protocol_prefers_server_order_and_needs_an_offer() {
        let request = validate(CHROMIUM).unwrap();
        assert_eq!(
            request.select_protocol(&["superchat", "chat"]),
            Some("superchat".into())
        );
        assert_eq!(request.select_protocol(&["mqtt"]), None);
        assert_eq!(request.select_protocol(&["CHAT"]), None);
    }

    /// Parses a rejection and checks the parts every rejection shares.
    fn check_rejection(error: &HandshakeError, status: u16) -> crate::handshake::ResponseHead {
        let (head, body) = split_response(&reject_response(error));
        assert_eq!(head.status, status);
        assert_eq!(head.reason, reason_phrase(status));
        assert_eq!(body, format!("{error}\n").into_bytes());
        assert_eq!(
            head.headers.get_str("Content-Length"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(
            head.headers.get_str("Content-Type"),
            Some("text/plain; charset=utf-8")
        );
        assert!(head.headers.has_token("Connection", "close"));
        head
    }

    #[test]
    fn rejection_405_has_allow_get() {
        let head = check_rejection(&HandshakeError::MethodNotAllowed("POST".into()), 405);
        assert_eq!(head.headers.get_str("Allow"), Some("GET"));
    }

    #[test]
    fn rejection_426_for_version_has_sec_websocket_version_13() {
        let head = check_rejection(&HandshakeError::UnsupportedVersion("8".into()), 426);
        assert_eq!(head.headers.get_str("Sec-WebSocket-Version"), Some("13"));
        assert_eq!(head.headers.get_str("Upgrade"), Some("websocket"));
        assert!(head.headers.has_token("Connection", "upgrade"));
    }

    #[test]
    fn rejection_426_for_plain_http_names_the_protocol_to_upgrade_to() {
        let head = check_rejection(&HandshakeError::NotAnUpgrade, 426);
        assert_eq!(head.headers.get_str("Upgrade"), Some("websocket"));
        assert_eq!(head.headers.get_str("Sec-WebSocket-Version"), Some("13"));
    }

    #[test]
    fn rejection_431_for_oversized_head() {
        let head = check_rejection(&HandshakeError::HeadTooLarge { limit: 16384 }, 431);
        assert!(!head.headers.contains("Upgrade"));
    }

    #[test]
    fn rejection_403_for_forbidden_origin() {
        check_rejection(&HandshakeError::ForbiddenOrigin("http://evil".into()), 403);
    }

    #[test]
    fn rejection_400_for_each_bad_request_error() {
        for error in [
            HandshakeError::MalformedHead("invalid token".into()),
            HandshakeError::UnsupportedHttpVersion,
            HandshakeError::MissingHost,
            HandshakeError::MissingConnectionUpgrade,
            HandshakeError::MissingKey,
            HandshakeError::InvalidKey,
        ] {
            let head = check_rejection(&error, 400);
            assert!(!head.headers.contains("Allow"));
            assert!(!head.headers.contains("Sec-WebSocket-Version"));
        }
    }

    #[test]
    fn rejection_body_is_exactly_the_one_line_reason() {
        let (_, body) = split_response(&reject_response(&HandshakeError::MissingKey));
        assert_eq!(body, b"handshake: missing Sec-WebSocket-Key header\n");
    }

    #[test]
    fn http_response_has_length_type_and_close() {
        let bytes = http_response(404, &[("X-Why", "nope")], "text/html", b"<p>gone</p>");
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 11\r\nConnection: close\r\nX-Why: nope\r\n\r\n<p>gone</p>"
        );
    }

    #[test]
    fn http_response_with_unknown_code_has_empty_reason_and_invalid_code_becomes_500() {
        let (head, _) = split_response(&http_response(599, &[], "text/plain", b""));
        assert_eq!((head.status, head.reason.as_str()), (599, ""));
        let (head, _) = split_response(&http_response(42, &[], "text/plain", b""));
        assert_eq!(head.status, 500);
    }

    #[test]
    fn reason_phrase_covers_the_codes_the_server_sends() {
        for (code, phrase) in [
            (200, "OK"),
            (400, "Bad Request"),
            (403, "Forbidden"),
            (404, "Not Found"),
            (405, "Method Not Allowed"),
            (426, "Upgrade Required"),
            (431, "Request Header Fields Too Large"),
            (500, "Internal Server Error"),
            (503, "Service Unavailable"),
        ] {
            assert_eq!(reason_phrase(code), phrase);
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parse_request_head_never_panics_and_stays_within_input(
                bytes in proptest::collection::vec(any::<u8>(), 0..512),
                limit in 0usize..600,
            ) {
                if let Ok(Some((_, consumed))) = parse_request_head(&bytes, limit) {
                    prop_assert!(consumed <= bytes.len());
                    prop_assert!(consumed <= limit);
                }
            }

            #[test]
            fn any_valid_key_round_trips_into_the_accept_value(key in any::<[u8; 16]>()) {
                let key = STANDARD.encode(key);
                let raw = minimal_with("Sec-WebSocket-Key", &format!("Sec-WebSocket-Key: {key}\r\n"));
                let request = validate(&raw).unwrap();
                prop_assert_eq!(request.accept_key(), accept_key(key.as_bytes()));
            }

        }
    }
}
