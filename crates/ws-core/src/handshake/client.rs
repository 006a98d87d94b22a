//! Client side: build the upgrade request, parse the server's response head,
//! and check it against what we asked for (RFC 6455 §4.1).

use super::accept::{accept_key, generate_key};
use super::error::{HandshakeError, REJECTION_BODY_LIMIT, Rejection};
use super::headers::{Headers, from_httparse, trim_ows, write_header};

/// How many response header fields httparse may store; see the server side.
const MAX_HEADERS: usize = 128;

/// An opening-handshake request to send, built from a `ws://` URL
/// ([`new`](Self::new), feature `url`) or from its parts
/// ([`from_parts`](Self::from_parts)).
///
/// It owns the random `Sec-WebSocket-Key`, which [`validate_response`] needs
/// to check the server's answer, so keep it until the response is validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRequest {
    host: String,
    port: u16,
    secure: bool,
    host_header: String,
    resource: String,
    key: String,
    protocols: Vec<String>,
    origin: Option<String>,
    extensions: Option<String>,
    headers: Vec<(String, String)>,
}

impl ClientRequest {
    /// Parses `url` and prepares a request with a fresh key.
    ///
    /// `ws://` and `wss://` are accepted (the caller provides the TLS layer
    /// for `wss`, see [`is_secure`](Self::is_secure)); anything else fails
    /// with [`HandshakeError::UnsupportedScheme`] carrying the scheme. The
    /// port defaults to 80 (`ws`) or 443 (`wss`), the resource to `/`. Fragments are refused (RFC 6455
    /// §3 forbids them) and so are credentials in the URL, which would
    /// otherwise be silently dropped: send an `Authorization` header instead.
    #[cfg(feature = "url")]
    #[cfg_attr(docsrs, doc(cfg(feature = "url")))]
    pub fn new(url: &str) -> Result<Self, HandshakeError> {
        let parsed = url::Url::parse(url)
            .map_err(|e| HandshakeError::InvalidUrl(format!("{url:?}: {e}")))?;
        let (secure, default_port) = match parsed.scheme() {
            "ws" => (false, 80),
            "wss" => (true, 443),
            other => return Err(HandshakeError::UnsupportedScheme(other.to_owned())),
        };
        if parsed.fragment().is_some() {
            return Err(HandshakeError::InvalidUrl(format!(
                "{url:?}: fragments are not allowed in WebSocket URLs"
            )));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(HandshakeError::InvalidUrl(format!(
                "{url:?}: credentials in the URL are not supported, send an Authorization header"
            )));
        }
        let host = match parsed.host() {
            Some(url::Host::Domain(domain)) => domain.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            // The bare address is what socket APIs take; HTTP wants brackets.
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => {
                return Err(HandshakeError::InvalidUrl(format!("{url:?}: missing host")));
            }
        };
        let port = parsed.port().unwrap_or(default_port);
        let mut resource = match parsed.path() {
            "" => "/".to_owned(),
            path => path.to_owned(),
        };
        if let Some(query) = parsed.query() {
            resource.push('?');
            resource.push_str(query);
        }
        // Url percent-encodes the path and query, so no SP or CTL can appear.
        Ok(Self::with_target(secure, host, port, resource))
    }

    /// Prepares a request with a fresh key from the parts of a URL, without
    /// parsing one: whether it is `wss` (`secure`), the host (a name, an IPv4
    /// address, or an IPv6 address with or without brackets), the TCP port,
    /// and the resource (the path, with `?query` if any).
    ///
    /// The parts are checked, not encoded: the host must be ASCII (IDNA
    /// names in their `xn--` form), and the resource must start with `/` and
    /// be percent-encoded already (no spaces, control characters, non-ASCII
    /// or `#`). Anything else fails with [`HandshakeError::InvalidUrl`].
    ///
    /// ```
    /// use ws_core::handshake::ClientRequest;
    ///
    /// let request = ClientRequest::from_parts(false, "::1", 9001, "/chat?room=1")?;
    /// assert_eq!(request.host(), "::1");
    /// assert!(String::from_utf8_lossy(&request.to_bytes()).contains("Host: [::1]:9001\r\n"));
    /// # Ok::<(), ws_core::handshake::HandshakeError>(())
    /// ```
    pub fn from_parts(
        secure: bool,
        host: &str,
        port: u16,
        resource: &str,
    ) -> Result<Self, HandshakeError> {
        let bare = host
            .strip_prefix('[')
            .and_then(|inner| inner.strip_suffix(']'))
            .unwrap_or(host);
        // An IPv6 address, or an RFC 3986 reg-name: unreserved characters,
        // sub-delims and percent-encodings.
        let host_ok = if bare.contains(':') {
            bare.parse::<std::net::Ipv6Addr>().is_ok()
        } else {
            !bare.is_empty()
                && bare
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b))
        };
        if !host_ok {
            return Err(HandshakeError::InvalidUrl(format!("invalid host {host:?}")));
        }
        let resource_ok = resource.starts_with('/')
            && resource.bytes().all(|b| b.is_ascii_graphic() && b != b'#');
        if !resource_ok {
            return Err(HandshakeError::InvalidUrl(format!(
                "invalid resource {resource:?}: it must start with / and be percent-encoded"
            )));
        }
        Ok(Self::with_target(
            secure,
            bare.to_owned(),
            port,
            resource.to_owned(),
        ))
    }

    /// A request with a fresh key for checked parts; `host` is bare (an IPv6
    /// address without brackets).
    fn with_target(secure: bool, host: String, port: u16, resource: String) -> Self {
        let default_port = if secure { 443 } else { 80 };
        let bracketed = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let host_header = if port == default_port {
            bracketed
        } else {
            format!("{bracketed}:{port}")
        };
        Self {
            host,
            port,
            secure,
            host_header,
            resource,
            key: generate_key(),
            protocols: Vec::new(),
            origin: None,
            extensions: None,
            headers: Vec::new(),
        }
    }

    /// Offers a subprotocol; call once per protocol, in order of preference.
    pub fn protocol(mut self, p: impl Into<String>) -> Self {
        self.protocols.push(p.into());
        self
    }

    /// Sets the `Origin` header (what a browser would send; some servers
    /// require it).
    pub fn origin(mut self, o: impl Into<String>) -> Self {
        self.origin = Some(o.into());
        self
    }

    /// Adds an extra header, e.g. `Authorization`. Names that are not HTTP
    /// tokens are dropped and control characters in values become spaces.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sends this `Host` header (and HTTP/2 `:authority`) instead of the
    /// one built from the URL, as curl's `-H 'Host: ...'` and wscat's
    /// `--host` do: for a virtual host reached by address, or a server
    /// behind a name it does not know. Only the header changes: the TCP
    /// connection still goes to [`host`](Self::host) and
    /// [`port`](Self::port), and TLS still sends and checks the URL's host.
    ///
    /// The value must be a non-empty header value without surrounding
    /// whitespace or control characters; anything else fails with
    /// [`HandshakeError::InvalidUrl`] and leaves nothing half-set.
    ///
    /// ```
    /// use ws_core::handshake::ClientRequest;
    ///
    /// let request = ClientRequest::from_parts(false, "127.0.0.1", 8000, "/")?
    ///     .host_header("chat.example")?;
    /// assert_eq!(request.host(), "127.0.0.1");
    /// assert!(String::from_utf8_lossy(&request.to_bytes()).contains("\r\nHost: chat.example\r\n"));
    /// # Ok::<(), ws_core::handshake::HandshakeError>(())
    /// ```
    pub fn host_header(mut self, value: impl Into<String>) -> Result<Self, HandshakeError> {
        let value = value.into();
        let valid = !value.is_empty()
            && value.trim_matches([' ', '\t']) == value
            && value.bytes().all(|b| b == b'\t' || !b.is_ascii_control());
        if !valid {
            return Err(HandshakeError::InvalidUrl(format!(
                "invalid Host header {value:?}: it must be a non-empty header value"
            )));
        }
        self.host_header = value;
        Ok(self)
    }

    /// The `Host` header this request sends: the URL's host (bracketed if
    /// IPv6) with the port unless it is the scheme's default, or the value
    /// given to [`host_header`](Self::host_header).
    pub fn host_header_value(&self) -> &str {
        &self.host_header
    }

    /// Sets the raw `Sec-WebSocket-Extensions` offer, e.g.
    /// `permessage-deflate; client_max_window_bits`; replaces an earlier one.
    pub fn extensions(mut self, offer: impl Into<String>) -> Self {
        self.extensions = Some(offer.into());
        self
    }

    /// The host to connect to: a name or an IP address, IPv6 without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Whether the URL was `wss://`: the connection must be wrapped in TLS
    /// (with `host()` as the server name) before the request is sent.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The TCP port to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `Sec-WebSocket-Key` this request sends.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The request target: path plus `?query` if any, never empty.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The subprotocols offered, in order.
    pub fn protocols(&self) -> &[String] {
        &self.protocols
    }

    /// The extension offer, if any.
    pub fn extension_offer(&self) -> Option<&str> {
        self.extensions.as_deref()
    }

    /// The `Host` header value (an HTTP/2 request's `:authority`): the
    /// host, bracketed if IPv6, with the port unless it is the default.
    #[cfg(feature = "http2")]
    pub(crate) fn authority(&self) -> &str {
        &self.host_header
    }

    /// The `Origin` header to send, if any.
    #[cfg(feature = "http2")]
    pub(crate) fn origin_header(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// The extra headers to send, in order.
    #[cfg(feature = "http2")]
    pub(crate) fn extra_headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The request head to write to the socket, blank line included.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"GET ");
        // `new` takes a resource percent-encoded by Url and `from_parts`
        // checks it, so no SP or CTL can appear.
        out.extend_from_slice(self.resource.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        write_header(&mut out, "Host", &self.host_header);
        write_header(&mut out, "Upgrade", "websocket");
        write_header(&mut out, "Connection", "Upgrade");
        write_header(&mut out, "Sec-WebSocket-Key", &self.key);
        write_header(&mut out, "Sec-WebSocket-Version", "13");
        if !self.protocols.is_empty() {
            write_header(
                &mut out,
                "Sec-WebSocket-Protocol",
                &self.protocols.join(", "),
            );
        }
        if let Some(origin) = &self.origin {
            write_header(&mut out, "Origin", origin);
        }
        if let Some(extensions) = &self.extensions {
            write_header(&mut out, "Sec-WebSocket-Extensions", extensions);
        }
        for (name, value) in &self.headers {
            write_header(&mut out, name, value);
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// A parsed HTTP response head.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResponseHead {
    /// The status code, e.g. 101.
    pub status: u16,
    /// The reason phrase as sent (may be empty).
    pub reason: String,
    /// The header fields in wire order.
    pub headers: Headers,
}

/// Parses an HTTP response head from the start of `buf`, incrementally.
///
/// Same contract as `parse_request_head`: `Ok(None)` means read more;
/// `consumed` is the head's length including the blank line, and the bytes
/// after it (the first frames, or a rejection body) are the caller's to keep;
/// `HeadTooLarge` once `max_head_size` bytes hold no complete head.
pub fn parse_response_head(
    buf: &[u8],
    max_head_size: usize,
) -> Result<Option<(ResponseHead, usize)>, HandshakeError> {
    let window = buf.get(..max_head_size).unwrap_or(buf);
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut storage);
    match response.parse(window) {
        Ok(httparse::Status::Complete(consumed)) => {
            let head = ResponseHead {
                status: response.code.unwrap_or_default(),
                reason: response.reason.unwrap_or_default().to_owned(),
                headers: from_httparse(response.headers),
            };
            Ok(Some((head, consumed)))
        }
        Ok(httparse::Status::Partial) if window.len() >= max_head_size => {
            Err(HandshakeError::HeadTooLarge {
                limit: max_head_size,
            })
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(error) => Err(HandshakeError::MalformedHead(error.to_string())),
    }
}

/// What the server agreed to in its 101.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Negotiated {
    /// The subprotocol the server chose, one of those offered.
    pub protocol: Option<String>,
    /// The server's `Sec-WebSocket-Extensions` value(s), comma-joined; every
    /// extension in it was offered, but parameters are left to the extension.
    pub extensions: Option<String>,
}

/// Checks the server's response head against `request` (RFC 6455 §4.1).
///
/// `body_prefix` is whatever followed the head in the bytes already read; it
/// becomes the body of [`HandshakeError::Rejected`] when the status is not 101
/// (at most [`REJECTION_BODY_LIMIT`] bytes, and no more than `Content-Length`).
/// On success it is the start of the WebSocket stream and is not looked at.
///
/// Checks, in order: status 101; `Upgrade` with a `websocket` token;
/// `Connection` with an `upgrade` token; exactly one `Sec-WebSocket-Accept`
/// equal to the accept value of our key; every accepted extension was offered;
/// at most one subprotocol, and one we offered.
pub fn validate_response(
    request: &ClientRequest,
    head: ResponseHead,
    body_prefix: &[u8],
) -> Result<Negotiated, HandshakeError> {
    if head.status != 101 {
        return Err(rejected(head, body_prefix));
    }
    if !head.headers.has_token("Upgrade", "websocket") {
        return Err(HandshakeError::MissingUpgradeInResponse);
    }
    if !head.headers.has_token("Connection", "upgrade") {
        return Err(HandshakeError::MissingConnectionInResponse);
    }
    let expected = accept_key(request.key.as_bytes());
    let mut accepts = head.headers.get_all("Sec-WebSocket-Accept");
    let accept_matches = accepts
        .next()
        .is_some_and(|value| trim_ows(value) == expected.as_bytes());
    if !accept_matches || accepts.next().is_some() {
        return Err(HandshakeError::InvalidAccept);
    }
    let extensions = check_extensions(request, &head.headers)?;
    let protocol = check_protocol(request, &head.headers)?;
    Ok(Negotiated {
        protocol,
        extensions,
    })
}

/// Checks the server's answer to an extended CONNECT (RFC 8441 §5) against
/// `request`, as [`validate_response`] checks a 101: status 200 (any other
/// is [`HandshakeError::ConnectRejected`] with `body_prefix` as its body, at
/// most [`REJECTION_BODY_LIMIT`] bytes), then the extensions and the
/// subprotocol by the same rules. There is no key and no accept to check.
#[cfg(feature = "http2")]
pub(crate) fn validate_connect_response(
    request: &ClientRequest,
    status: u16,
    headers: Headers,
    body_prefix: &[u8],
) -> Result<Negotiated, HandshakeError> {
    if status != 200 {
        let keep = body_prefix.len().min(REJECTION_BODY_LIMIT);
        return Err(HandshakeError::ConnectRejected(Box::new(Rejection {
            status,
            reason: String::new(),
            headers,
            body: body_prefix.get(..keep).unwrap_or_default().to_vec(),
        })));
    }
    let extensions = check_extensions(request, &headers)?;
    let protocol = check_protocol(request, &headers)?;
    Ok(Negotiated {
        protocol,
        extensions,
    })
}

fn rejected(head: ResponseHead, body_prefix: &[u8]) -> HandshakeError {
    let declared = head
        .headers
        .get_str("Content-Length")
        .and_then(|length| length.parse::<usize>().ok())
        .unwrap_or(usize::MAX);
    let keep = body_prefix.len().min(REJECTION_BODY_LIMIT).min(declared);
    HandshakeError::Rejected(Box::new(Rejection {
        status: head.status,
        reason: head.reason,
        headers: head.headers,
        body: body_prefix.get(..keep).unwrap_or_default().to_vec(),
    }))
}

/// The name part of an extension element: `permessage-deflate; x=1` → `permessage-deflate`.
fn extension_name(element: &str) -> &str {
    element.split(';').next().unwrap_or_default().trim()
}

fn check_extensions(
    request: &ClientRequest,
    headers: &Headers,
) -> Result<Option<String>, HandshakeError> {
    let accepted = headers.list("Sec-WebSocket-Extensions");
    if accepted.is_empty() {
        return Ok(None);
    }
    let offer = request.extensions.as_deref().unwrap_or_default();
    let offered: Vec<&str> = offer.split(',').map(extension_name).collect();
    if let Some(unoffered) = accepted.iter().find(|element| {
        let name = extension_name(element);
        !offered
            .iter()
            .any(|o| !o.is_empty() && o.eq_ignore_ascii_case(name))
    }) {
        return Err(HandshakeError::UnexpectedExtensions(unoffered.clone()));
    }
    Ok(Some(accepted.join(", ")))
}

fn check_protocol(
    request: &ClientRequest,
    headers: &Headers,
) -> Result<Option<String>, HandshakeError> {
    let mut chosen = headers.list("Sec-WebSocket-Protocol");
    match chosen.len() {
        0 => Ok(None),
        1 => {
            let protocol = chosen.pop().unwrap_or_default();
            if request.protocols.contains(&protocol) {
                Ok(Some(protocol))
            } else {
                Err(HandshakeError::UnexpectedProtocol(protocol))
            }
        }
        // RFC 6455 §4.2.2: the server picks one subprotocol, not a list.
        _ => Err(HandshakeError::UnexpectedProtocol(chosen.join(", "))),
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
    use crate::handshake::server::{
        AcceptOptions, DEFAULT_MAX_HEAD_SIZE, accept_response, parse_request_head, validate_upgrade,
    };
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    fn text(request: &ClientRequest) -> String {
        String::from_utf8(request.to_bytes()).unwrap()
    }

    fn response(raw: &str) -> (ResponseHead, Vec<u8>) {
        let (head, consumed) = parse_response_head(raw.as_bytes(), DEFAULT_MAX_HEAD_SIZE)
            .unwrap()
            .unwrap();
        (head, raw.as_bytes()[consumed..].to_vec())
    }

    /// A correct 101 for `request`, with `extra` header lines spliced in.
    fn switching(request: &ClientRequest, extra: &str) -> ResponseHead {
        response(&format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n{extra}\r\n",
            accept_key(request.key().as_bytes())
        ))
        .0
    }

    #[test]
    fn host_header_replaces_the_url_host_in_the_header_only() {
        let request = ClientRequest::from_parts(true, "10.0.0.1", 8443, "/")
            .unwrap()
            .host_header("chat.example:443")
            .unwrap();
        let text = text(&request);
        assert!(text.contains("\r\nHost: chat.example:443\r\n"), "{text}");
        assert_eq!(text.matches("Host:").count(), 1, "{text}");
        assert_eq!((request.host(), request.port()), ("10.0.0.1", 8443));
        assert_eq!(request.host_header_value(), "chat.example:443");
    }

    #[test]
    fn host_header_refuses_values_that_are_not_header_values() {
        for bad in ["", " a", "a ", "a\r\nX: y", "a\0b"] {
            let request = ClientRequest::from_parts(false, "h", 80, "/").unwrap();
            assert!(
                matches!(request.host_header(bad), Err(HandshakeError::InvalidUrl(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    #[cfg(feature = "url")]
    fn request_for_path_and_query_is_exact() {
        let request = ClientRequest::new("ws://example.com/chat?x=1").unwrap();
        assert_eq!(request.host(), "example.com");
        assert_eq!(request.port(), 80);
        assert_eq!(request.resource(), "/chat?x=1");
        assert_eq!(
            text(&request),
            format!(
                "GET /chat?x=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n\r\n",
                request.key()
            )
        );
    }

    #[test]
    #[cfg(feature = "url")]
    fn host_header_carries_a_non_default_port() {
        let request = ClientRequest::new("ws://127.0.0.1:9001").unwrap();
        assert_eq!((request.host(), request.port()), ("127.0.0.1", 9001));
        assert_eq!(request.resource(), "/");
        assert!(text(&request).starts_with("GET / HTTP/1.1\r\nHost: 127.0.0.1:9001\r\n"));
    }

    #[test]
    #[cfg(feature = "url")]
    fn ipv6_host_is_bare_for_connecting_and_bracketed_in_host_header() {
        let request = ClientRequest::new("ws://[::1]:8080/").unwrap();
        assert_eq!((request.host(), request.port()), ("::1", 8080));
        assert!(text(&request).contains("\r\nHost: [::1]:8080\r\n"));
        let request = ClientRequest::new("ws://[::1]/").unwrap();
        assert!(text(&request).contains("\r\nHost: [::1]\r\n"));
    }

    #[test]
    #[cfg(feature = "url")]
    fn default_port_80_is_omitted_from_host_header() {
        let request = ClientRequest::new("ws://example.com:80/").unwrap();
        assert_eq!(request.port(), 80);
        assert!(text(&request).contains("\r\nHost: example.com\r\n"));
    }

    #[test]
    fn each_request_gets_a_fresh_16_byte_key() {
        let a = ClientRequest::from_parts(false, "example.com", 80, "/").unwrap();
        let b = ClientRequest::from_parts(false, "example.com", 80, "/").unwrap();
        assert_ne!(a.key(), b.key());
        assert_ne!(a.to_bytes(), b.to_bytes());
        assert_eq!(STANDARD.decode(a.key()).unwrap().len(), 16);
    }

    #[test]
    #[cfg(feature = "url")]
    fn wss_defaults_to_port_443_and_omits_it_from_host() {
        let request = ClientRequest::new("wss://example.com/chat").unwrap();
        assert!(request.is_secure());
        assert_eq!(request.port(), 443);
        let bytes = String::from_utf8(request.to_bytes()).unwrap();
        assert!(bytes.contains("\r\nHost: example.com\r\n"), "{bytes}");
        let other = ClientRequest::new("wss://example.com:8443/").unwrap();
        assert!(
            String::from_utf8(other.to_bytes())
                .unwrap()
                .contains("Host: example.com:8443\r\n")
        );
        assert!(!ClientRequest::new("ws://example.com/").unwrap().is_secure());
    }

    #[test]
    #[cfg(feature = "url")]
    fn schemes_other_than_ws_and_wss_are_unsupported() {
        assert_eq!(
            ClientRequest::new("http://example.com/").unwrap_err(),
            HandshakeError::UnsupportedScheme("http".into())
        );
    }

    #[test]
    #[cfg(feature = "url")]
    fn unparsable_url_is_invalid() {
        assert!(matches!(
            ClientRequest::new("not a url"),
            Err(HandshakeError::InvalidUrl(_))
        ));
        assert!(matches!(
            ClientRequest::new("ws://"),
            Err(HandshakeError::InvalidUrl(_))
        ));
    }

    #[test]
    #[cfg(feature = "url")]
    fn url_with_fragment_or_credentials_is_invalid() {
        assert!(matches!(
            ClientRequest::new("ws://example.com/#frag"),
            Err(HandshakeError::InvalidUrl(_))
        ));
        assert!(matches!(
            ClientRequest::new("ws://user:pw@example.com/"),
            Err(HandshakeError::InvalidUrl(_))
        ));
    }

    #[test]
    fn from_parts_brackets_ipv6_and_omits_default_ports() {
        let request = ClientRequest::from_parts(false, "[::1]", 80, "/").unwrap();
        assert_eq!(request.host(), "::1");
        assert!(text(&request).contains("Host: [::1]\r\n"));
        let request = ClientRequest::from_parts(true, "example.com", 443, "/a?b=c").unwrap();
        assert!(request.is_secure());
        assert_eq!((request.port(), request.resource()), (443, "/a?b=c"));
        assert!(text(&request).contains("Host: example.com\r\n"));
        let request = ClientRequest::from_parts(true, "example.com", 80, "/").unwrap();
        assert!(text(&request).contains("Host: example.com:80\r\n"));
    }

    #[test]
    fn from_parts_refuses_what_would_break_the_request_line_or_host() {
        for (host, resource) in [
            ("", "/"),
            ("exa mple.com", "/"),
            ("example.com/x", "/"),
            ("user@example.com", "/"),
            ("::zz", "/"),
            ("h\u{e9}llo.example", "/"),
            ("example.com", ""),
            ("example.com", "chat"),
            ("example.com", "/a b"),
            ("example.com", "/a\r\nX: y"),
            ("example.com", "/caf\u{e9}"),
            ("example.com", "/#frag"),
        ] {
            assert!(
                matches!(
                    ClientRequest::from_parts(false, host, 80, resource),
                    Err(HandshakeError::InvalidUrl(_))
                ),
                "{host:?} {resource:?}"
            );
        }
    }

    #[test]
    #[cfg(feature = "url")]
    fn from_parts_builds_what_new_builds() {
        let parsed = ClientRequest::new("wss://[::1]:8443/chat?room=1").unwrap();
        let parts = ClientRequest::from_parts(true, "::1", 8443, "/chat?room=1").unwrap();
        let without_key = |request: &ClientRequest| text(request).replace(request.key(), "");
        assert_eq!(without_key(&parsed), without_key(&parts));
        assert_eq!((parsed.host(), parsed.port()), (parts.host(), parts.port()));
    }

    #[test]
    fn optional_headers_follow_the_required_ones() {
        let request = ClientRequest::from_parts(false, "h", 80, "/")
            .unwrap()
            .protocol("chat")
            .protocol("superchat")
            .origin("http://h")
            .extensions("permessage-deflate")
            .header("Authorization", "Bearer t");
        let text = text(&request);
        let tail = text.split_once("Sec-WebSocket-Version: 13\r\n").unwrap().1;
        assert_eq!(
            tail,
            "Sec-WebSocket-Protocol: chat, superchat\r\nOrigin: http://h\r\nSec-WebSocket-Extensions: permessage-deflate\r\nAuthorization: Bearer t\r\n\r\n"
        );
    }

    #[test]
    fn extra_header_cannot_inject_lines() {
        let request = ClientRequest::from_parts(false, "h", 80, "/")
            .unwrap()
            .header("X-A", "v\r\nEvil: 1");
        let (head, consumed) = parse_request_head(&request.to_bytes(), DEFAULT_MAX_HEAD_SIZE)
            .unwrap()
            .unwrap();
        assert_eq!(consumed, request.to_bytes().len());
        assert!(!head.headers.contains("Evil"));
    }

    #[test]
    fn accepts_a_correct_101() {
        let request = ClientRequest::from_parts(false, "h", 80, "/").unwrap();
        assert_eq!(
            validate_response(&request, switching(&request, ""), b""),
            Ok(Negotiated::default())
        );
    }

    #[test]
    fn response_upgrade_and_connection_are_token_lists_case_insensitive() {
        let request = ClientRequest::from_parts(false, "h", 80, "/").unwrap();
        let head = response(&format!(
            "HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nCONNECTION: keep-alive, upgrade\r\nsec-websocket-accept: {}\r\n\r\n",
            accept_key(request.key().as_bytes())
        ))
        .0;
        assert!(validate_response(&request, head, b"").is_ok());
    }

    #[test]
    fn wrong_accept_is_invalid_accept() {
        let request = ClientRequest::from_parts(false, "h", 80, "/").unwrap();
        let head = response(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        )
        .0;
        assert_eq!(
            validate_response(&request, head, b""),
            Err(HandshakeError::InvalidAccept)
        );
    }

    #[test]
    fn missing_or_repeated_accept_is_invalid_accept() {
        let request = ClientRequest::from_parts(false, "h", 80, "/").unwrap();
        let head = response(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        )
        .0;
        assert_eq!(
            validate_response(&request, head, b""),
            Err(HandshakeError::InvalidAccept)
        );
        let again = format!(
            "Sec-WebSocket-Accept: {}\r\n",
            accept_key(request.key().as_bytes())
        );
        let head = switching(&request, &again);
        assert_eq!(
            validate_response(&request, head, b""),
            Err(HandshakeError::InvalidAccept)
        );
    }

    #[test]
    fn accept_with_different_case_is_invalid() {
        let request = ClientRequest::from_parts(false, "h", 80, "/").unwrap();
        let head = response(&format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            accept_key(request.key().as_bytes()).to_ascii_lowercase()
        ))
        .0;
        assert_eq!(
            validate_response(&request, head, b""),
            Err(HandshakeError::InvalidAccept)
        );
    }

    #[test]
    fn status_200_is_rejected_with_status_and_body_first_line() {
        let request = ClientRequest::from_parts(false, "h", 80, "/").unwrap();
        let (head, body) = response(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 23\r\n\r\nthis is not a ws server\nsecond line",
        );
        let Err(HandshakeError::Rejected(rejection)) = validate_response(&request, head, &body)
        else {
            panic!("expected a rejection");
        };
        assert_eq!(rejection.status, 200);
        assert_eq!(rejection.status_line(), "HTTP/1.1 200 OK");
        assert_eq!(
            rejection.body_first_line().as_deref(),
            Some("this is not a ws server")
        );
        // Content-Length bounds the body: what follows is not part of it.
        assert_eq!(rejection.body, b"this is not a ws server");
        assert_eq!(
            rejection.headers.get_str("content-type"),
            Some("text/plain")
        );
    }

    #[test]
    fn rejection_body_is_capped_at_1_kib() {
        let request = ClientRequest::from_parts(false, "h", 80, "/").unwrap();
        let (head, _) = response("HTTP/1.1 500 Internal Server Error\r\n\r\n");
        let Err(HandshakeError::Rejected(rejection)) =
            validate_response(&request, head, &[b'x'; 5000])
        else {
            panic!("expected a rejection");
        };
        assert_eq!(rejection.body.len(), REJECTION_BODY_LIMIT);
    }

    #[test]
    fn unoffered_protocol_is_unexpected() {
        let request = ClientRequest::from_parts(false, "h", 80, "/")
            .unwrap()
            .protocol("chat");
        let head = switching(&request, "Sec-WebSocket-Protocol: mqtt\r\n");
        assert_eq!(
            validate_response(&request, head, b""),
            Err(HandshakeError::UnexpectedProtocol("mqtt".into()))
        );
        let request = ClientRequest::from_parts(false, "h", 80, "/").unwrap();
        let head = switching(&request, "Sec-WebSocket-Protocol: chat\r\n");
        assert_eq!(
            validate_response(&request, head, b""),
            Err(HandshakeError::UnexpectedProtocol("chat".into()))
        );
    }

    #[test]
    fn more_than_one_protocol_is_unexpected() {
        let request = ClientRequest::from_parts(false, "h", 80, "/")
            .unwrap()
            .protocol("chat")
            .protocol("superchat");
        let head = switching(&request, "Sec-WebSocket-Protocol: chat, superchat\r\n");
        assert_eq!(
            validate_response(&request, head, b""),
            Err(HandshakeError::UnexpectedProtocol("chat, superchat".into()))
        );
    }

    #[test]
    fn offered_protocol_is_negotiated() {
        let request = ClientRequest::from_parts(false, "h", 80, "/")
            .unwrap()
            .protocol("chat")
            .protocol("superchat");
        let head = switching(&request, "Sec-WebSocket-Protocol: superchat\r\n");
        assert_eq!(
            validate_response(&request, head, b"").unwrap().protocol,
            Some("superchat".into())
        );
    }

    #[test]
    fn extensions_without_offer_are_unexpected() {
        let request = ClientRequest::from_parts(false, "h", 80, "/").unwrap();
        let head = switching(&request, "Sec-WebSocket-Extensions: permessage-deflate\r\n");
        assert_eq!(
            validate_response(&request, head, b""),
            Err(HandshakeError::UnexpectedExtensions(
                "permessage-deflate".into()
            ))
        );
    }

    #[test]
    fn extension_not_in_offer_is_unexpected() {
        let request = ClientRequest::from_parts(false, "h", 80, "/")
            .unwrap()
            .extensions("permessage-deflate; client_max_window_bits");
        let head = switching(
            &request,
            "Sec-WebSocket-Extensions: permessage-deflate, x-webkit-deflate-frame\r\n",
        );
        assert_eq!(
            validate_response(&request, head, b""),
            Err(HandshakeError::UnexpectedExtensions(
                "x-webkit-deflate-frame".into()
            ))
        );
    }

    #[test]
    fn offered_extension_is_negotiated_with_its_parameters() {
        let request = ClientRequest::from_parts(false, "h", 80, "/")
            .unwrap()
            .extensions("permessage-deflate; client_max_window_bits");
        let head = switching(
            &request,
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n",
        );
        assert_eq!(
            validate_response(&request, head, b"").unwrap().extensions,
            Some("permessage-deflate; server_no_context_takeover".into())
        );
    }

    #[test]
    fn missing_upgrade_in_response_is_an_error() {
        let request = ClientRequest::from_parts(false, "h", 80, "/").unwrap();
        let head = response(&format!(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            accept_key(request.key().as_bytes())
        ))
        .0;
        assert_eq!(
            validate_response(&request, head, b""),
            Err(HandshakeError::MissingUpgradeInResponse)
        );
    }

    #[test]
    fn missing_connection_in_response_is_an_error() {
        let request = ClientRequest::from_parts(false, "h", 80, "/").unwrap();
        let head = response(&format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            accept_key(request.key().as_bytes())
        ))
        .0;
        assert_eq!(
            validate_response(&request, head, b""),
            Err(HandshakeError::MissingConnectionInResponse)
        );
    }

    #[test]
    fn response_head_parse_is_incremental_and_keeps_trailing_bytes() {
        let raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00";
        let head_len = raw.len() - 2;
        for end in 0..head_len {
            assert_eq!(parse_response_head(&raw[..end], 1024), Ok(None));
        }
        let (head, consumed) = parse_response_head(raw, 1024).unwrap().unwrap();
        assert_eq!((head.status, consumed), (101, head_len));
        assert_eq!(head.reason, "Switching Protocols");
    }

    #[test]
    fn response_head_over_the_limit_is_too_large() {
        let raw = b"HTTP/1.1 101 Switching Protocols\r\nX: yyyyyyyyyyyy";
        assert_eq!(
            parse_response_head(raw, 40),
            Err(HandshakeError::HeadTooLarge { limit: 40 })
        );
    }

    #[test]
    fn malformed_response_head_is_an_error() {
        assert!(matches!(
            parse_response_head(b"HTTP/1.1 abc OK\r\n\r\n", 1024),
            Err(HandshakeError::MalformedHead(_))
        ));
    }

    #[test]
    fn round_trip_client_request_through_server_and_back() {
        let request = ClientRequest::from_parts(false, "::1", 9001, "/chat?room=1")
            .unwrap()
            .protocol("chat")
            .protocol("superchat")
            .origin("http://localhost")
            .extensions("permessage-deflate");

        let mut wire = request.to_bytes();
        wire.extend_from_slice(b"\x81\x80"); // a first frame right behind the head
        let (head, consumed) = parse_request_head(&wire, DEFAULT_MAX_HEAD_SIZE)
            .unwrap()
            .unwrap();
        assert_eq!(&wire[consumed..], b"\x81\x80");
        let upgrade = validate_upgrade(head).unwrap();
        assert_eq!(upgrade.host, "[::1]:9001");
        assert_eq!(upgrade.path(), "/chat");
        assert_eq!(upgrade.query(), Some("room=1"));
        assert_eq!(upgrade.key, request.key());
        assert_eq!(upgrade.origin.as_deref(), Some("http://localhost"));
        assert_eq!(upgrade.protocols, vec!["chat", "superchat"]);

        let accept = AcceptOptions {
            protocol: upgrade.select_protocol(&["superchat"]),
            extensions: Some("permessage-deflate".into()),
            headers: Vec::new(),
        };
        let answer = accept_response(&upgrade, &accept);
        let (head, consumed) = parse_response_head(&answer, DEFAULT_MAX_HEAD_SIZE)
            .unwrap()
            .unwrap();
        assert_eq!(consumed, answer.len());
        assert_eq!(
            validate_response(&request, head, &answer[consumed..]),
            Ok(Negotiated {
                protocol: Some("superchat".into()),
                extensions: Some("permessage-deflate".into()),
            })
        );
    }
}
