//! The opening handshake on the [`http`] crate's types (feature
//! `http`), for servers whose framework hands over an `http::Request`:
//! hyper, axum, and the rest of the tower ecosystem.
//!
//! One call, [`accept`] (or [`accept_with`] to choose a subprotocol or
//! refuse an origin), validates the request exactly as
//! [`stream::WebSocket::accept`](crate::stream::WebSocket::accept) does and
//! returns both halves of the answer together: the `101 Switching Protocols`
//! response to send, and the [`Accepted`] upgrade that becomes the
//! [`Connection`]. Both come from the same negotiation, so the
//! permessage-deflate parameters the response announces are the ones the
//! connection uses; there is no `enable_deflate` to forget.
//!
//! Moving the bytes after the 101 is the framework's business; with hyper
//! (and so axum), [`crate::hyper::upgrade`] does it all.
//!
//! # Requests that are not upgrades
//!
//! A request without `Upgrade: websocket` (a browser opening the page, a
//! health check) fails with [`HandshakeError::NotAnUpgrade`]: a typed error,
//! not a response, so a handler that serves both can route on it, or on
//! [`is_upgrade_request`] before trying. Every other error is a refused
//! WebSocket request; [`refusal`] turns any error into the response that
//! says why, with the status ws-core's own server sends (400, 403, 405, 426
//! with `Sec-WebSocket-Version: 13`, 431).
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "deflate")]
//! use ws_core::deflate::DeflateConfig;
//! use ws_core::handshake::HandshakeError;
//! use ws_core::{Config, Role};
//!
//! # #[cfg(feature = "deflate")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let request = http::Request::get("/chat")
//!     .header("Host", "example.com")
//!     .header("Upgrade", "websocket")
//!     .header("Connection", "Upgrade")
//!     .header("Sec-WebSocket-Version", "13")
//!     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
//!     .header("Sec-WebSocket-Extensions", "permessage-deflate")
//!     .body(())?;
//!
//! let config = Config::default().deflate(Some(DeflateConfig::default()));
//! match ws_core::http::accept(&request, config) {
//!     Ok((response, accepted)) => {
//!         assert_eq!(response.status(), http::StatusCode::SWITCHING_PROTOCOLS);
//!         assert_eq!(response.headers()["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
//!         // A server keeps no compression state between messages unless
//!         // asked to (`DeflateConfig::context_takeover`).
//!         assert_eq!(
//!             response.headers()["sec-websocket-extensions"],
//!             "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
//!         );
//!         // Send `response`; once the framework has switched protocols:
//!         let connection = accepted.into_connection(Default::default());
//!         assert_eq!(connection.role(), Role::Server);
//!         assert!(connection.deflate_enabled());
//!     }
//!     // Plain HTTP: serve the page, or refuse it as below.
//!     Err(HandshakeError::NotAnUpgrade) => unreachable!(),
//!     Err(error) => {
//!         let response = ws_core::http::refusal(&error);
//!         # let _ = response;
//!     }
//! }
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "deflate"))]
//! # fn main() {}
//! ```

use ::http::header::{CONTENT_LENGTH, HOST};
use ::http::{HeaderName, HeaderValue, Request, Response, StatusCode, Version};
use bytes::BytesMut;

#[cfg(feature = "deflate")]
use crate::deflate::DeflateParams;
use crate::handshake::{
    AcceptOptions, HandshakeError, Headers, RequestHead, ResponseHead, ServerHandshake,
    UpgradeRequest, parse_response_head, reject_response,
};
use crate::protocol::{Config, Connection};

/// Whether `request` asks for a WebSocket at all (its `Upgrade` header
/// carries the `websocket` token), as [`RequestHead::is_upgrade`] decides
/// for a raw head. `false`: route it as plain HTTP.
///
/// ```
/// let page = http::Request::get("/").header("Host", "h").body(())?;
/// assert!(!ws_core::http::is_upgrade_request(&page));
/// let ws = http::Request::get("/").header("Upgrade", "WebSocket").body(())?;
/// assert!(ws_core::http::is_upgrade_request(&ws));
/// # Ok::<(), http::Error>(())
/// ```
pub fn is_upgrade_request<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get_all(::http::header::UPGRADE)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .any(|token| trim(token).eq_ignore_ascii_case(b"websocket"))
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i.saturating_add(1));
    bytes.get(start..end).unwrap_or_default()
}

/// `request`'s method, target, version and headers as the [`RequestHead`]
/// that [`validate_upgrade`](crate::handshake::validate_upgrade) checks.
///
/// The headers come in the `HeaderMap`'s order (grouped by name, values of
/// one name in the order received) with lowercase names. A request without
/// a `Host` header (HTTP/2 carries it in `:authority`) gets one from the
/// URI's authority. HTTP/2 and later count as "1.1 or later"; since they
/// forbid the `Upgrade` header, such a request fails here as
/// [`HandshakeError::NotAnUpgrade`]: RFC 8441's extended CONNECT is served
/// by the `http2` feature's `ws_core::http2`, which validates this same head
/// by the extended CONNECT rules.
///
/// ```
/// let request = http::Request::get("/chat?room=1").header("Host", "h").body(())?;
/// let head = ws_core::http::request_head(&request);
/// assert_eq!(head.path(), "/chat");
/// assert_eq!(head.query(), Some("room=1"));
/// assert_eq!(head.headers.get_str("host"), Some("h"));
/// # Ok::<(), http::Error>(())
/// ```
pub fn request_head<B>(request: &Request<B>) -> RequestHead {
    let mut headers = Headers::new();
    for (name, value) in request.headers() {
        headers.push(name.as_str(), value.as_bytes());
    }
    if !request.headers().contains_key(HOST)
        && let Some(authority) = request.uri().authority()
    {
        headers.push(HOST.as_str(), authority.as_str());
    }
    let minor_version = match request.version() {
        Version::HTTP_09 | Version::HTTP_10 => 0,
        _ => 1,
    };
    RequestHead {
        method: request.method().as_str().to_owned(),
        target: request.uri().to_string(),
        minor_version,
        headers,
    }
}

/// Validates `request` as a WebSocket upgrade and answers it with no
/// subprotocol, accepting permessage-deflate when `config` enables it and
/// the client offers it.
///
/// Returns the `101 Switching Protocols` response to send and the
/// [`Accepted`] upgrade to turn into the connection once the framework has
/// switched protocols, or the [`HandshakeError`] to answer with
/// [`refusal`] ([`HandshakeError::NotAnUpgrade`] for plain HTTP). See the
/// [module documentation](self) for an example.
pub fn accept<B>(
    request: &Request<B>,
    config: Config,
) -> Result<(Response<()>, Accepted), HandshakeError> {
    accept_with(request, config, |_| Ok(AcceptOptions::default()))
}

/// [`accept`], with `choose` deciding on the validated request, as in
/// [`stream::WebSocket::accept_with`](crate::stream::WebSocket::accept_with):
/// it picks the subprotocol and extra response headers, or refuses (for
/// example [`HandshakeError::ForbiddenOrigin`], answered with 403). When it
/// names no extensions itself and `config` enables permessage-deflate, the
/// client's offer is negotiated.
///
/// ```
/// use ws_core::Config;
/// use ws_core::handshake::{AcceptOptions, HandshakeError};
///
/// let request = http::Request::get("/")
///     .header("Host", "h")
///     .header("Origin", "https://evil.example")
///     .header("Upgrade", "websocket")
///     .header("Connection", "Upgrade")
///     .header("Sec-WebSocket-Version", "13")
///     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
///     .header("Sec-WebSocket-Protocol", "chat")
///     .body(())?;
///
/// let result = ws_core::http::accept_with(&request, Config::default(), |request| {
///     match request.origin.as_deref() {
///         Some("https://example.com") | None => {}
///         Some(other) => return Err(HandshakeError::ForbiddenOrigin(other.to_owned())),
///     }
///     Ok(AcceptOptions::default().protocol(request.select_protocol(&["chat"])))
/// });
/// let Err(error) = result else { unreachable!() };
/// assert_eq!(ws_core::http::refusal(&error).status(), http::StatusCode::FORBIDDEN);
/// # Ok::<(), http::Error>(())
/// ```
pub fn accept_with<B, F>(
    request: &Request<B>,
    config: Config,
    choose: F,
) -> Result<(Response<()>, Accepted), HandshakeError>
where
    F: FnOnce(&UpgradeRequest) -> Result<AcceptOptions, HandshakeError>,
{
    // The same answer as every other path (ServerHandshake), and its 101
    // parsed back: the same bytes a raw `accept_with` writes, so both paths
    // announce the same negotiation, and the connection runs what it says.
    let accepted = ServerHandshake::from_head(request_head(request), config)
        .accept(choose)
        .map_err(HandshakeError::from)?;
    let (response, _body) = to_http(&accepted.response);
    let protocol = response
        .headers()
        .get(::http::header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    Ok((response, Accepted { accepted, protocol }))
}

/// The response refusing a request that failed with `error`: the status
/// ([`HandshakeError::status`]), headers and one-line `text/plain` body of
/// ws-core's own [`reject_response`], so a framework refuses exactly as
/// ws-core's server does. A 405 carries `Allow: GET`; a 426 carries
/// `Upgrade: websocket` and `Sec-WebSocket-Version: 13`. It keeps
/// `Connection: close` (the connection is not reused after a refused
/// handshake) and leaves `Content-Length` to the framework.
///
/// ```
/// use ws_core::handshake::HandshakeError;
///
/// let response = ws_core::http::refusal(&HandshakeError::UnsupportedVersion("8".into()));
/// assert_eq!(response.status(), http::StatusCode::UPGRADE_REQUIRED);
/// assert_eq!(response.headers()["sec-websocket-version"], "13");
/// let response = ws_core::http::refusal(&HandshakeError::MissingKey);
/// assert_eq!(response.status(), http::StatusCode::BAD_REQUEST);
/// assert_eq!(response.body(), "handshake: missing Sec-WebSocket-Key header\n");
/// ```
pub fn refusal(error: &HandshakeError) -> Response<String> {
    let raw = reject_response(error);
    let (response, body) = to_http(&raw);
    response.map(|()| String::from_utf8_lossy(body).into_owned())
}

/// A WebSocket upgrade that [`accept`] answered with a 101: what was
/// negotiated, and the [`Connection`] it becomes once the framework has
/// switched protocols.
#[derive(Debug)]
pub struct Accepted {
    accepted: crate::handshake::Accepted,
    protocol: Option<String>,
}

impl Accepted {
    /// The validated request: path, query, `Origin`, offered subprotocols
    /// and every header.
    pub fn request(&self) -> &UpgradeRequest {
        &self.accepted.request
    }

    /// The subprotocol the response announced, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The permessage-deflate parameters the response announced, if any:
    /// the ones the connection uses.
    #[cfg(feature = "deflate")]
    #[cfg_attr(docsrs, doc(cfg(feature = "deflate")))]
    pub fn deflate(&self) -> Option<DeflateParams> {
        self.accepted.deflate
    }

    /// The server side of the connection, with the negotiated extensions on.
    /// `received` is what the peer sent after the request head and the
    /// framework has already read (empty when the transport replays it, as
    /// hyper's `Upgraded` does).
    pub fn into_connection(self, received: BytesMut) -> Connection {
        let mut connection = self.accepted.connection;
        if !received.is_empty() {
            connection.receive(&received);
        }
        connection
    }

    /// The tokio adapter over `stream`, the transport the framework switched
    /// to WebSocket (it must replay any bytes read behind the request head).
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn into_websocket<S>(self, stream: S) -> crate::stream::WebSocket<S>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        crate::stream::WebSocket::from_connection(stream, self.into_connection(BytesMut::new()))
    }
}

/// One of ws-core's own responses as an `http::Response` and its body.
///
/// `Content-Length` is dropped (the framework sets it from the body it
/// sends). Names and values were sanitised when the bytes were written, so
/// every field converts; one that would not is dropped, as the writer drops
/// fields whose names are not tokens.
fn to_http(bytes: &[u8]) -> (Response<()>, &[u8]) {
    let Ok(Some((head, consumed))) = parse_response_head(bytes, bytes.len()) else {
        // Unreachable: the bytes are a response ws-core just wrote.
        let mut response = Response::new(());
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        return (response, &[]);
    };
    let ResponseHead {
        status, headers, ..
    } = head;
    let mut response = Response::new(());
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for header in &headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(header.name.as_bytes()),
            HeaderValue::from_bytes(&header.value),
        ) else {
            continue;
        };
        if name != CONTENT_LENGTH {
            response.headers_mut().append(name, value);
        }
    }
    (response, bytes.get(consumed..).unwrap_or_default())
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

    fn upgrade_request() -> ::http::request::Builder {
        Request::get("/chat?room=1")
            .header("Host", "127.0.0.1:8000")
            .header("Upgrade", "websocket")
            .header("Connection", "keep-alive, Upgrade")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
    }

    fn refused(builder: ::http::request::Builder) -> (HandshakeError, Response<String>) {
        let request = builder.body(()).unwrap();
        let error = accept(&request, Config::default()).unwrap_err();
        let response = refusal(&error);
        (error, response)
    }

    #[test]
    fn valid_upgrade_gets_a_101_with_the_accept_key_and_nothing_else() {
        let request = upgrade_request().body(()).unwrap();
        let (response, accepted) = accept(&request, Config::default()).unwrap();
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        let headers = response.headers();
        assert_eq!(headers["upgrade"], "websocket");
        assert_eq!(headers["connection"], "Upgrade");
        assert_eq!(
            headers["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(headers.len(), 3);
        assert_eq!(accepted.request().path(), "/chat");
        assert_eq!(accepted.request().query(), Some("room=1"));
        assert_eq!(accepted.protocol(), None);
        let connection = accepted.into_connection(BytesMut::new());
        assert_eq!(connection.role(), crate::Role::Server);
    }

    #[test]
    fn plain_get_is_a_typed_not_an_upgrade_error() {
        let request = Request::get("/").header("Host", "h").body(()).unwrap();
        assert!(!is_upgrade_request(&request));
        let error = accept(&request, Config::default()).unwrap_err();
        assert_eq!(error, HandshakeError::NotAnUpgrade);
        let response = refusal(&error);
        assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(response.headers()["upgrade"], "websocket");
    }

    #[test]
    fn missing_or_invalid_headers_are_400() {
        let cases = [
            upgrade_request().header("Sec-WebSocket-Key", "second"),
            Request::get("/")
                .header("Host", "h")
                .header("Upgrade", "websocket")
                .header("Connection", "Upgrade")
                .header("Sec-WebSocket-Version", "13"),
            Request::get("/")
                .header("Host", "h")
                .header("Upgrade", "websocket")
                .header("Sec-WebSocket-Version", "13")
                .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            Request::get("/")
                .header("Host", "h")
                .header("Upgrade", "websocket")
                .header("Connection", "Upgrade")
                .header("Sec-WebSocket-Version", "13")
                .header("Sec-WebSocket-Key", "tooshort"),
        ];
        for builder in cases {
            let (error, response) = refused(builder);
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{error}");
            assert_eq!(response.body(), &format!("{error}\n"));
            assert_eq!(response.headers()["connection"], "close");
            assert!(response.headers().get("content-length").is_none());
        }
    }

    #[test]
    fn http_1_0_is_400() {
        let (error, response) = refused(upgrade_request().version(Version::HTTP_10));
        assert_eq!(error, HandshakeError::UnsupportedHttpVersion);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn wrong_version_is_426_naming_13() {
        let request = Request::get("/")
            .header("Host", "h")
            .header("Upgrade", "websocket")
            .header("Connection", "Upgrade")
            .header("Sec-WebSocket-Version", "8")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
        let (error, response) = refused(request);
        assert_eq!(error, HandshakeError::UnsupportedVersion("8".to_owned()));
        assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(response.headers()["sec-websocket-version"], "13");
        assert_eq!(response.headers()["upgrade"], "websocket");
    }

    #[test]
    fn post_is_405_with_allow_get() {
        let (_, response) = refused(upgrade_request().method("POST"));
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()["allow"], "GET");
    }

    #[test]
    fn refused_origin_is_403() {
        let request = upgrade_request()
            .header("Origin", "https://evil.example")
            .body(())
            .unwrap();
        let error = accept_with(&request, Config::default(), |request| {
            Err(HandshakeError::ForbiddenOrigin(
                request.origin.clone().unwrap_or_default(),
            ))
        })
        .unwrap_err();
        assert_eq!(refusal(&error).status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn refusal_matches_the_raw_rejection_byte_for_byte_in_status_and_body() {
        for error in [
            HandshakeError::NotAnUpgrade,
            HandshakeError::MissingHost,
            HandshakeError::InvalidKey,
            HandshakeError::ForbiddenOrigin("o".to_owned()),
            HandshakeError::HeadTooLarge { limit: 1 },
        ] {
            let raw = reject_response(&error);
            let (head, consumed) = parse_response_head(&raw, raw.len()).unwrap().unwrap();
            let response = refusal(&error);
            assert_eq!(response.status().as_u16(), head.status);
            assert_eq!(response.body().as_bytes(), &raw[consumed..]);
            for header in &head.headers {
                if header.name.eq_ignore_ascii_case("content-length") {
                    continue;
                }
                assert_eq!(
                    response.headers()[header.name.as_str()].as_bytes(),
                    &header.value[..]
                );
            }
        }
    }

    #[test]
    fn subprotocol_choice_is_announced_and_reported() {
        let request = upgrade_request()
            .header("Sec-WebSocket-Protocol", "chat, superchat")
            .body(())
            .unwrap();
        let (response, accepted) = accept_with(&request, Config::default(), |request| {
            Ok(AcceptOptions::default()
                .protocol(request.select_protocol(&["superchat", "chat"]))
                .header("Set-Cookie", "a=1"))
        })
        .unwrap();
        assert_eq!(response.headers()["sec-websocket-protocol"], "superchat");
        assert_eq!(response.headers()["set-cookie"], "a=1");
        assert_eq!(accepted.protocol(), Some("superchat"));
    }

    #[test]
    fn host_comes_from_the_authority_when_the_header_is_absent() {
        let request = Request::get("http://example.com:8080/x").body(()).unwrap();
        let head = request_head(&request);
        assert_eq!(head.headers.get_str("host"), Some("example.com:8080"));
        assert_eq!(head.path(), "/x");
    }

    #[cfg(feature = "deflate")]
    mod deflate {
        use super::*;
        use crate::deflate::DeflateConfig;

        #[test]
        fn offer_is_negotiated_and_the_connection_uses_what_the_response_says() {
            let request = upgrade_request()
                .header(
                    "Sec-WebSocket-Extensions",
                    "permessage-deflate; client_max_window_bits; server_no_context_takeover",
                )
                .body(())
                .unwrap();
            let config = Config::default().deflate(Some(DeflateConfig::default()));
            let (response, accepted) = accept(&request, config).unwrap();
            let params = accepted.deflate().unwrap();
            assert!(params.server_no_context_takeover);
            assert_eq!(
                response.headers()["sec-websocket-extensions"],
                params.to_header().as_str()
            );
            assert!(accepted.into_connection(BytesMut::new()).deflate_enabled());
        }

        #[test]
        fn no_offer_or_deflate_off_means_neither_header_nor_compression() {
            let plain = upgrade_request().body(()).unwrap();
            let on = Config::default().deflate(Some(DeflateConfig::default()));
            let (response, accepted) = accept(&plain, on).unwrap();
            assert!(response.headers().get("sec-websocket-extensions").is_none());
            assert_eq!(accepted.deflate(), None);
            assert!(!accepted.into_connection(BytesMut::new()).deflate_enabled());

            let offered = upgrade_request()
                .header("Sec-WebSocket-Extensions", "permessage-deflate")
                .body(())
                .unwrap();
            let (response, accepted) = accept(&offered, Config::default()).unwrap();
            assert!(response.headers().get("sec-websocket-extensions").is_none());
            assert!(!accepted.into_connection(BytesMut::new()).deflate_enabled());
        }
    }
}
