//! Plain HTTP beside the WebSocket endpoint: the test page, the health check,
//! the metrics, and the errors for everything else. Every response closes
//! the connection.

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use ws_core::handshake::{RequestHead, http_response};

use crate::metrics::Metrics;
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

/// The status and the complete response bytes for a request that is not a
/// WebSocket upgrade: the page at `/`, `ok` at `/healthz`, the server's
/// `metrics` at `/metrics`.
pub fn route(head: &RequestHead, metrics: &Metrics) -> (u16, Vec<u8>) {
    let rendered;
    let (content_type, body): (&str, &[u8]) = match head.path() {
        "/" => ("text/html; charset=utf-8", PAGE.as_bytes()),
        "/healthz" => ("text/plain; charset=utf-8", HEALTHY.as_bytes()),
        "/metrics" => {
            rendered = metrics.render();
            (METRICS_CONTENT_TYPE, rendered.as_bytes())
        }
        _ => return error(404, "not found", &[]),
    };
    match head.method.as_str() {
        "GET" => (200, http_response(200, &COMMON_HEADERS, content_type, body)),
        "HEAD" => {
            // The same head as GET, Content-Length included, without the body.
            let mut response = http_response(200, &COMMON_HEADERS, content_type, body);
            response.truncate(response.len().saturating_sub(body.len()));
            (200, response)
        }
        _ => error(405, "method not allowed", &[("Allow", "GET, HEAD")]),
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
    match tokio::time::timeout(LINGER, stream.write_all(response)).await {
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
