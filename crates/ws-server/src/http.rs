//! Plain HTTP beside the WebSocket endpoint: the test page, the health check,
//! the metrics, and the errors for everything else. Every response closes
//! the connection.

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use ws_core::handshake::{RequestHead, http_response};

use crate::metrics::{HttpVersion, Metrics};
use crate::tcp::{LINGER, linger};

/// The test page served at `/`.
pub const PAGE: &str = include_str!("page.html");

/// The body of `GET /healthz`.
pub const HEALTHY: &str = "ok";

/// The content type of `GET /metrics`: the Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Headers on every plain response: the page is built in, so caches need not
/// keep it, and browsers should not guess content types.
const COMMON_HEADERS: [(&str, &str); 2] = [
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
];

/// The answer to a plain request (not a WebSocket), the same over HTTP/1.1
/// and HTTP/2: [`route`] writes it as HTTP/1.1, [`http2_response`] as an
/// HTTP/2 response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// Headers besides the content type (and, over HTTP/1.1, the length and
    /// `Connection: close`).
    pub headers: Vec<(&'static str, String)>,
    /// The body (sent for `GET`; `HEAD` gets the head alone).
    pub body: Bytes,
}

/// Answers `method` on `path` (its query ignored): the page at `/`, `ok`
/// at `/healthz` (with the WebSockets open and served by HTTP version in
/// `X-WebSockets-*` headers), the server's `metrics` at `/metrics`; 405
/// for another method than `GET` or `HEAD`, 404 for another path.
pub fn page(method: &str, path: &str, metrics: &Metrics) -> Page {
    let path = path.split_once('?').map_or(path, |(path, _)| path);
    let mut headers: Vec<(&'static str, String)> = COMMON_HEADERS
        .iter()
        .map(|(name, value)| (*name, (*value).to_owned()))
        .collect();
    let (content_type, body) = match path {
        "/" => (
            "text/html; charset=utf-8",
            Bytes::from_static(PAGE.as_bytes()),
        ),
        "/healthz" => {
            for (version, open, total) in [
                (
                    HttpVersion::Http1,
                    "X-WebSockets-Open-Http1",
                    "X-WebSockets-Total-Http1",
                ),
                (
                    HttpVersion::Http2,
                    "X-WebSockets-Open-Http2",
                    "X-WebSockets-Total-Http2",
                ),
            ] {
                headers.push((open, metrics.open_over(version).to_string()));
                headers.push((total, metrics.total_over(version).to_string()));
            }
            (
                "text/plain; charset=utf-8",
                Bytes::from_static(HEALTHY.as_bytes()),
            )
        }
        "/metrics" => (METRICS_CONTENT_TYPE, Bytes::from(metrics.render())),
        _ => return error_page(404, "not found", &[]),
    };
    if !matches!(method, "GET" | "HEAD") {
        return error_page(405, "method not allowed", &[("Allow", "GET, HEAD")]);
    }
    Page {
        status: 200,
        content_type,
        headers,
        body,
    }
}

/// The status and the complete response bytes for a request that is not a
/// WebSocket upgrade (see [`page`]), as HTTP/1.1.
pub fn route(head: &RequestHead, metrics: &Metrics) -> (u16, Vec<u8>) {
    let page = page(&head.method, head.path(), metrics);
    let headers: Vec<(&str, &str)> = page
        .headers
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    let mut response = http_response(page.status, &headers, page.content_type, &page.body);
    if head.method == "HEAD" {
        // The same head as GET, Content-Length included, without the body.
        response.truncate(response.len().saturating_sub(page.body.len()));
    }
    (page.status, response)
}

/// `page` as an HTTP/2 response (ws-core leaves the body out for `HEAD`).
pub fn http2_response(page: Page) -> http::Response<Bytes> {
    let mut response = http::Response::new(page.body);
    *response.status_mut() =
        http::StatusCode::from_u16(page.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(page.content_type),
    );
    for (name, value) in page.headers {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            headers.append(name, value);
        }
    }
    response
}

fn error_page(status: u16, message: &str, extra: &[(&'static str, &str)]) -> Page {
    let mut headers: Vec<(&'static str, String)> = COMMON_HEADERS
        .iter()
        .chain(extra)
        .map(|(name, value)| (*name, (*value).to_owned()))
        .collect();
    headers.shrink_to_fit();
    Page {
        status,
        content_type: "text/plain; charset=utf-8",
        headers,
        body: Bytes::from(format!("{status} {message}\n")),
    }
}

/// A plain-text error response whose body says what went wrong.
pub fn error(status: u16, message: &str, headers: &[(&str, &str)]) -> (u16, Vec<u8>) {
    let mut all = COMMON_HEADERS.to_vec();
    all.extend_from_slice(headers);
    let body = format!("{status} {message}\n");
    (
        status,
        http_response(status, &all, "text/plain; charset=utf-8", body.as_bytes()),
    )
}

/// Writes a final response and closes the connection gracefully (see
/// [`linger`]: the request may hold bytes the server never read).
pub async fn respond_and_close<S>(mut stream: S, response: &[u8])
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match crate::timers::timeout(LINGER, stream.write_all(response)).await {
        Ok(Ok(())) => linger(stream).await,
        Ok(Err(error)) => tracing::debug!(%error, "writing the final response failed"),
        Err(_) => tracing::debug!("client does not read the final response"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ws_core::handshake::parse_request_head;

    fn head(method: &str, target: &str) -> RequestHead {
        let raw = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        parse_request_head(raw.as_bytes(), 4096).unwrap().unwrap().0
    }

    fn route_plain(head: &RequestHead) -> (u16, Vec<u8>) {
        route(head, &Metrics::new())
    }

    fn text(response: &[u8]) -> String {
        String::from_utf8(response.to_vec()).unwrap()
    }

    #[test]
    fn root_serves_the_page_as_html() {
        let (status, response) = route_plain(&head("GET", "/"));
        assert_eq!(status, 200);
        let response = text(&response);
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(response.contains("Content-Type: text/html; charset=utf-8\r\n"));
        assert!(response.ends_with(PAGE));
    }

    #[test]
    fn root_with_a_query_still_serves_the_page() {
        assert_eq!(route_plain(&head("GET", "/?debug=1")).0, 200);
    }

    #[test]
    fn healthz_answers_ok() {
        let (status, response) = route_plain(&head("GET", "/healthz"));
        assert_eq!(status, 200);
        assert!(text(&response).ends_with("\r\n\r\nok"));
    }

    #[test]
    fn healthz_shows_the_websockets_by_http_version_in_headers() {
        let metrics = Metrics::new();
        let _ = metrics.opened(false, HttpVersion::Http2);
        let _ = metrics.opened(false, HttpVersion::Http2);
        let _ = metrics.opened(false, HttpVersion::Http1);
        metrics.closed(crate::metrics::ClosedBy::Client, 1000, HttpVersion::Http1);
        let response = text(&route(&head("GET", "/healthz"), &metrics).1);
        for line in [
            "X-WebSockets-Open-Http1: 0\r\n",
            "X-WebSockets-Total-Http1: 1\r\n",
            "X-WebSockets-Open-Http2: 2\r\n",
            "X-WebSockets-Total-Http2: 2\r\n",
        ] {
            assert!(response.contains(line), "{line:?} in {response}");
        }
    }

    #[test]
    fn an_http2_response_carries_the_same_status_headers_and_body() {
        let response = http2_response(page("GET", "/nope", &Metrics::new()));
        assert_eq!(response.status(), 404);
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; charset=utf-8"
        );
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert_eq!(&response.body()[..], b"404 not found\n");
        let response = http2_response(page("POST", "/", &Metrics::new()));
        assert_eq!(response.status(), 405);
        assert_eq!(response.headers()["allow"], "GET, HEAD");
    }

    #[test]
    fn metrics_are_served_in_the_prometheus_text_format() {
        let (status, response) = route_plain(&head("GET", "/metrics"));
        assert_eq!(status, 200);
        let response = text(&response);
        assert!(response.contains(&format!("Content-Type: {METRICS_CONTENT_TYPE}\r\n")));
        assert!(response.contains("\r\n\r\n# HELP ws_server_connections_open "));
        assert!(response.contains("\nws_server_connections_total 0\n"));
    }

    #[test]
    fn head_request_gets_the_length_but_no_body() {
        let (status, response) = route_plain(&head("HEAD", "/"));
        assert_eq!(status, 200);
        let response = text(&response);
        assert!(response.ends_with("\r\n\r\n"));
        assert!(response.contains(&format!("Content-Length: {}\r\n", PAGE.len())));
    }

    #[test]
    fn unknown_path_is_404_and_closes() {
        let (status, response) = route_plain(&head("GET", "/nope"));
        assert_eq!(status, 404);
        let response = text(&response);
        assert!(response.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(response.contains("Connection: close\r\n"));
    }

    #[test]
    fn other_methods_are_405_with_allow() {
        for method in ["POST", "PUT", "DELETE"] {
            let (status, response) = route_plain(&head(method, "/"));
            assert_eq!(status, 405);
            assert!(text(&response).contains("Allow: GET, HEAD\r\n"));
        }
    }

    #[test]
    fn page_is_self_contained_and_keeps_its_test_ids() {
        for id in [
            "message",
            "send",
            "log",
            "status",
            "close",
            "connect",
            "extensions",
            // The URL field, binary sends, the round trip, the close code
            // and reason, the message counter.
            "url",
            "hex",
            "send-hex",
            "file",
            "send-file",
            "ping",
            "rtt",
            "close-code",
            "close-reason",
            "counter",
        ] {
            assert!(PAGE.contains(&format!("id=\"{id}\"")), "page lacks #{id}");
        }
        // Honest about what its round trip measures.
        assert!(PAGE.contains("Browsers cannot send WebSocket pings"));
        assert!(PAGE.contains("not a ping frame"));
        for external in [
            "src=\"http",
            "href=\"http",
            "src=\"//",
            "href=\"//",
            "@import",
        ] {
            assert!(!PAGE.contains(external), "page loads {external}");
        }
    }
}
