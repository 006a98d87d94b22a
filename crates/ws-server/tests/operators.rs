//! For operators: `GET /metrics` after real traffic, and every option read
//! from a `WS_SERVER_*` environment variable.

// Test helpers may panic: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{
    IO_TIMEOUT, ServerProcess, expect_close, http_exchange, next_event, raw_upgrade, read_response,
    sample, scrape, upgrade_request_with, ws_server_command,
};
use ws_core::blocking::WebSocket;
use ws_core::deflate::DeflateConfig;
use ws_core::handshake::ClientRequest;
use ws_core::{CloseCode, Config, Event, Message};

/// Scrapes until `name` reads `expected`, for what the server counts after
/// the client can see it (a connection the client dropped); returns the
/// last scrape. Fails the test if it never does.
fn wait_for_sample(server: &ServerProcess, name: &str, expected: u64) -> String {
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let text = scrape(server);
        if sample(&text, name) == Some(expected) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never read {expected}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_samples(text: &str, expected: &[(&str, u64)]) {
    for &(name, value) in expected {
        assert_eq!(sample(text, name), Some(value), "{name} in\n{text}");
    }
}

#[test]
fn metrics_have_help_and_type_lines_in_the_text_format() {
    let server = ServerProcess::start(&[]);
    let text = scrape(&server);
    let names: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .map(|rest| rest.split(' ').next().unwrap())
        .collect();
    for name in [
        "ws_server_connections_open",
        "ws_server_connections_total",
        "ws_server_messages_received_total",
        "ws_server_messages_sent_total",
        "ws_server_message_bytes_received_total",
        "ws_server_message_bytes_sent_total",
        "ws_server_upgrades_refused_total",
        "ws_server_closes_total",
        "ws_server_deflate_negotiated_total",
    ] {
        assert!(names.contains(&name), "no # TYPE for {name}:\n{text}");
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no # HELP for {name}"
        );
    }
    // Every sample line is NAME[{LABELS}] VALUE, under its own # TYPE.
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<u64>().is_ok(), "{line}");
        let name = series.split('{').next().unwrap();
        assert!(names.contains(&name), "sample without # TYPE: {line}");
    }
}

#[test]
fn metrics_count_real_traffic_exactly() {
    let server = ServerProcess::start(&[]);

    // A client with permessage-deflate that stays open: 4 messages, 115 bytes.
    let request = ClientRequest::new(&server.url()).unwrap();
    let config = Config::default().deflate(Some(DeflateConfig::default()));
    let (mut open, negotiated) = WebSocket::connect(server.tcp(), &request, config).unwrap();
    assert!(negotiated.extensions.is_some());
    for text in ["hello", "0123456789", ""] {
        open.send_text(text).unwrap();
        assert_eq!(next_event(&mut open), Event::Text(text.into()));
    }
    open.send(Message::Binary(vec![7u8; 100].into())).unwrap();
    assert_eq!(next_event(&mut open), Event::Binary(vec![7u8; 100].into()));

    // A client without deflate on another path, closing with 4001: 1
    // message, 2 bytes.
    let request = ClientRequest::new(&format!("{}any/path", server.url())).unwrap();
    let (mut closing, _) = WebSocket::connect(server.tcp(), &request, Config::default()).unwrap();
    closing.send_text("hi").unwrap();
    assert_eq!(next_event(&mut closing), Event::Text("hi".into()));
    closing.close(CloseCode(4001), "done").unwrap();
    assert_eq!(expect_close(&mut closing), Some(4001));

    // A protocol violation: the server fails the connection with 1002
    // (an unmasked frame), and ends TCP once it has counted it.
    let mut violator = raw_upgrade(&server);
    violator.write_all(&[0x81, 0x02, b'n', b'o']).unwrap();
    let mut rest = Vec::new();
    violator.read_to_end(&mut rest).unwrap();
    // A close frame (0x88) whose code is 1002 (0x03ea).
    assert_eq!(rest.first(), Some(&0x88), "{rest:?}");
    assert_eq!(rest.get(2..4), Some(&[0x03, 0xea][..]), "{rest:?}");

    // Refused upgrades and plain requests.
    for (request, status) in [
        (upgrade_request_with("Sec-WebSocket-Key", ""), 400),
        (
            upgrade_request_with("Sec-WebSocket-Version", "Sec-WebSocket-Version: 8\r\n"),
            426,
        ),
        (
            upgrade_request_with("Host", "Host: 127.0.0.1\r\n").replacen("GET", "POST", 1),
            405,
        ),
        (
            "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n".to_owned(),
            200,
        ),
        (
            "GET /missing HTTP/1.1\r\nHost: localhost\r\n\r\n".to_owned(),
            404,
        ),
    ] {
        assert_eq!(http_exchange(&server, &request).status, status);
    }

    let text = scrape(&server);
    assert_samples(
        &text,
        &[
            ("ws_server_connections_open", 1),
            ("ws_server_connections_total", 3),
            ("ws_server_deflate_negotiated_total", 1),
            ("ws_server_messages_received_total", 5),
            ("ws_server_messages_sent_total", 5),
            ("ws_server_message_bytes_received_total", 117),
            ("ws_server_message_bytes_sent_total", 117),
            ("ws_server_upgrades_refused_total{status=\"400\"}", 1),
            ("ws_server_upgrades_refused_total{status=\"405\"}", 1),
            ("ws_server_upgrades_refused_total{status=\"426\"}", 1),
            ("ws_server_upgrades_refused_total{status=\"403\"}", 0),
            ("ws_server_upgrades_refused_total{status=\"503\"}", 0),
            ("ws_server_http_requests_total{status=\"200\"}", 1),
            ("ws_server_http_requests_total{status=\"404\"}", 1),
            (
                "ws_server_closes_total{closed_by=\"client\",code=\"4001\"}",
                1,
            ),
            (
                "ws_server_closes_total{closed_by=\"server\",code=\"1002\"}",
                1,
            ),
        ],
    );
    let closes = text
        .lines()
        .filter(|line| line.starts_with("ws_server_closes_total{"))
        .count();
    assert_eq!(closes, 2, "{text}");

    // The open client closes normally; the scrape before counts as a 200.
    open.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(expect_close(&mut open), Some(1000));
    let text = scrape(&server);
    assert_samples(
        &text,
        &[
            ("ws_server_connections_open", 0),
            ("ws_server_connections_total", 3),
            (
                "ws_server_closes_total{closed_by=\"client\",code=\"1000\"}",
                1,
            ),
            ("ws_server_http_requests_total{status=\"200\"}", 2),
        ],
    );

    // A client that drops TCP without a closing handshake.
    let dropped = server.connect();
    drop(dropped);
    wait_for_sample(
        &server,
        "ws_server_closes_total{closed_by=\"transport\",code=\"1006\"}",
        1,
    );
}

#[test]
fn connections_refused_over_the_limit_are_counted_as_503() {
    let server = ServerProcess::start(&["--max-connections", "1"]);
    let mut only = server.connect();
    let mut refused = 0;
    for _ in 0..2 {
        let mut stream = server.tcp();
        stream
            .write_all(
                ClientRequest::new(&server.url())
                    .unwrap()
                    .to_bytes()
                    .as_ref(),
            )
            .unwrap();
        assert_eq!(read_response(&mut stream).status, 503);
        refused += 1;
    }
    only.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(expect_close(&mut only), Some(1000));
    // The slot frees once the connection's task ends, a moment after the
    // client saw the end of TCP: a scrape before then is refused (and
    // counted) too.
    let deadline = Instant::now() + IO_TIMEOUT;
    let text = loop {
        let response = http_exchange(&server, "GET /metrics HTTP/1.1\r\nHost: h\r\n\r\n");
        if response.status == 200 {
            break response.body;
        }
        assert_eq!(response.status, 503);
        refused += 1;
        assert!(Instant::now() < deadline, "the slot never freed");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_samples(
        &text,
        &[("ws_server_upgrades_refused_total{status=\"503\"}", refused)],
    );
}

/// `ws-server` with `WS_SERVER_*` variables and arguments (port 0 unless the
/// test says otherwise).
fn start_with_env(env: &[(&str, &str)], args: &[&str]) -> ServerProcess {
    let mut command = ws_server_command();
    command.envs(env.iter().copied()).args(args);
    ServerProcess::spawn(command)
}

/// Whether a new WebSocket connection is accepted (true) or refused with 503.
fn upgrade_accepted(server: &ServerProcess) -> bool {
    let mut stream = server.tcp();
    let request = ClientRequest::new(&server.url()).unwrap();
    stream.write_all(request.to_bytes().as_ref()).unwrap();
    let head = common::read_head(&mut stream);
    match head.split(' ').nth(1) {
        Some("101") => true,
        Some("503") => false,
        _ => panic!("unexpected answer {head}"),
    }
}

#[test]
fn an_environment_variable_sets_its_option() {
    let server = start_with_env(
        &[
            ("WS_SERVER_LISTEN", "127.0.0.1:0"),
            ("WS_SERVER_MAX_CONNECTIONS", "1"),
        ],
        &[],
    );
    assert!(server.addr.ip().is_loopback());
    let _first = server.connect();
    assert!(!upgrade_accepted(&server), "the second connection got in");
}

#[test]
fn the_command_line_wins_over_the_environment() {
    let server = start_with_env(
        &[
            ("WS_SERVER_LISTEN", "not an address"),
            ("WS_SERVER_MAX_CONNECTIONS", "1"),
        ],
        &["--listen", "127.0.0.1:0", "--max-connections", "2"],
    );
    let _first = server.connect();
    let _second = server.connect();
    assert!(!upgrade_accepted(&server), "the third connection got in");
}

#[test]
fn boolean_and_list_variables_take_their_values() {
    let offer = |server: &ServerProcess, protocol: &str| {
        let request = ClientRequest::new(&server.url())
            .unwrap()
            .protocol("other")
            .protocol(protocol);
        let config = Config::default().deflate(Some(DeflateConfig::default()));
        WebSocket::connect(server.tcp(), &request, config)
            .unwrap()
            .1
    };
    let plain = start_with_env(
        &[
            ("WS_SERVER_LISTEN", "127.0.0.1:0"),
            ("WS_SERVER_NO_DEFLATE", "yes"),
            ("WS_SERVER_PROTOCOL", "mqtt,chat"),
        ],
        &[],
    );
    let negotiated = offer(&plain, "chat");
    assert_eq!(negotiated.extensions, None);
    assert_eq!(negotiated.protocol.as_deref(), Some("chat"));

    let deflating = start_with_env(
        &[
            ("WS_SERVER_LISTEN", "127.0.0.1:0"),
            ("WS_SERVER_NO_DEFLATE", "0"),
        ],
        &[],
    );
    assert!(offer(&deflating, "chat").extensions.is_some());
}

#[test]
fn an_invalid_variable_is_a_usage_error_naming_the_option() {
    let output = ws_server_command()
        .env("WS_SERVER_MAX_CONNECTIONS", "lots")
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--max-connections"), "{stderr}");
    assert!(stderr.contains("lots"), "{stderr}");
}

#[test]
fn help_names_the_environment_variables() {
    let output = ws_server_command().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for name in [
        "WS_SERVER_LISTEN",
        "WS_SERVER_MAX_CONNECTIONS",
        "WS_SERVER_TLS_CERT",
        "WS_SERVER_NO_DEFLATE",
        "WS_SERVER_LOG_LEVEL",
    ] {
        assert!(help.contains(&format!("[env: {name}=")), "{name}:\n{help}");
    }
}
