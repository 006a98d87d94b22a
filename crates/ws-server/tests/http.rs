//! Plain HTTP on the WebSocket port, and the answers to bad handshakes.

// Test helpers may panic: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::Write;

use common::{ServerProcess, http_exchange, next_event, read_response, upgrade_request_with};
use ws_core::Event;
use ws_core::handshake::ClientRequest;

#[test]
fn healthz_answers_200_ok() {
    let server = ServerProcess::start(&[]);
    let response = http_exchange(&server, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "ok");
    assert_eq!(response.header("Connection"), Some("close"));
}

#[test]
fn root_serves_the_built_in_page() {
    let server = ServerProcess::start(&[]);
    let response = http_exchange(&server, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        response.header("Content-Length"),
        Some(response.body.len().to_string().as_str())
    );
    assert!(response.body.contains("new WebSocket("));
    for id in [
        "message",
        "send",
        "log",
        "status",
        "close",
        "url",
        "send-hex",
        "send-file",
        "ping",
        "close-reason",
        "counter",
    ] {
        assert!(
            response.body.contains(&format!("id=\"{id}\"")),
            "page lacks #{id}"
        );
    }
}

#[test]
fn head_request_gets_headers_only() {
    let server = ServerProcess::start(&[]);
    let response = http_exchange(&server, "HEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "");
    let length: usize = response.header("Content-Length").unwrap().parse().unwrap();
    assert!(length > 0);
}

#[test]
fn unknown_path_is_404_with_connection_close() {
    let server = ServerProcess::start(&[]);
    let response = http_exchange(&server, "GET /missing HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(response.status, 404);
    assert_eq!(response.header("Connection"), Some("close"));
}

#[test]
fn post_is_405_with_allow() {
    let server = ServerProcess::start(&[]);
    // The body is never read: the answer must still arrive intact.
    let response = http_exchange(
        &server,
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\r\nhello=world",
    );
    assert_eq!(response.status, 405);
    assert_eq!(response.header("Allow"), Some("GET, HEAD"));
    assert_eq!(response.header("Connection"), Some("close"));
}

#[test]
fn post_upgrade_is_405() {
    let server = ServerProcess::start(&[]);
    let request = upgrade_request_with("Host", "Host: 127.0.0.1\r\n").replacen("GET", "POST", 1);
    let response = http_exchange(&server, &request);
    assert_eq!(response.status, 405);
    assert_eq!(response.header("Allow"), Some("GET"));
}

#[test]
fn upgrade_without_key_is_400_with_the_reason() {
    let server = ServerProcess::start(&[]);
    let response = http_exchange(&server, &upgrade_request_with("Sec-WebSocket-Key", ""));
    assert_eq!(response.status, 400);
    assert_eq!(
        response.body.trim_end(),
        "handshake: missing Sec-WebSocket-Key header"
    );
    assert_eq!(response.header("Connection"), Some("close"));
}

#[test]
fn upgrade_with_invalid_key_is_400() {
    let server = ServerProcess::start(&[]);
    let request = upgrade_request_with("Sec-WebSocket-Key", "Sec-WebSocket-Key: short\r\n");
    assert_eq!(http_exchange(&server, &request).status, 400);
}

#[test]
fn upgrade_with_version_8_is_426_naming_version_13() {
    let server = ServerProcess::start(&[]);
    let request = upgrade_request_with("Sec-WebSocket-Version", "Sec-WebSocket-Version: 8\r\n");
    let response = http_exchange(&server, &request);
    assert_eq!(response.status, 426);
    assert_eq!(response.header("Sec-WebSocket-Version"), Some("13"));
}

#[test]
fn malformed_request_is_400() {
    let server = ServerProcess::start(&[]);
    let response = http_exchange(&server, "GET / HTTP/1.1\r\nBad Header\r\n\r\n");
    assert_eq!(response.status, 400);
}

#[test]
fn oversized_request_head_is_431() {
    let server = ServerProcess::start(&[]);
    let mut stream = server.tcp();
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: localhost\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(huge.as_bytes());
    let response = read_response(&mut stream);
    assert_eq!(response.status, 431);
    // A page request is no handshake, and the answer does not call it one.
    assert!(!response.body.contains("handshake"), "{}", response.body);
    assert!(response.body.starts_with("431 "), "{}", response.body);
}

#[test]
fn oversized_upgrade_request_is_a_431_refused_handshake() {
    let server = ServerProcess::start(&[]);
    let mut stream = server.tcp();
    let huge = upgrade_request_with(
        "Sec-WebSocket-Version",
        &format!(
            "Sec-WebSocket-Version: 13\r\nX-Filler: {}\r\n",
            "a".repeat(64 * 1024)
        ),
    );
    let _ = stream.write_all(huge.as_bytes());
    let response = read_response(&mut stream);
    assert_eq!(response.status, 431);
    assert!(
        response.body.starts_with("handshake: "),
        "{}",
        response.body
    );
}

#[test]
fn other_origin_is_403_and_allowed_origin_connects() {
    let server = ServerProcess::start(&["--allowed-origin", "http://good.example"]);
    let request =
        upgrade_request_with("Host", "Host: 127.0.0.1\r\nOrigin: http://evil.example\r\n");
    let response = http_exchange(&server, &request);
    assert_eq!(response.status, 403);
    assert!(response.body.contains("evil.example"), "{}", response.body);

    let request = ClientRequest::new(&server.url())
        .unwrap()
        .origin("http://good.example");
    let (mut client, _) = server.connect_with(request);
    client.send_text("welcome").unwrap();
    assert_eq!(next_event(&mut client), Event::Text("welcome".into()));
}

#[test]
fn server_keeps_serving_after_bad_requests() {
    let server = ServerProcess::start(&[]);
    for garbage in [
        "\x00\x01\x02\r\n\r\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\r\n\r\n",
        "GET / HTTP/9.9\r\n\r\n",
        "GET\r\n\r\n",
    ] {
        let status = http_exchange(&server, garbage).status;
        assert_eq!(status, 400, "for {garbage:?}");
    }
    let mut client = server.connect();
    client.send_text("alive").unwrap();
    assert_eq!(next_event(&mut client), Event::Text("alive".into()));
}
