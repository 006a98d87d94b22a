//! The process: command line, ready line, logs, signals and exit status.

// Test helpers may panic: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use bytes::BytesMut;
use common::{IO_TIMEOUT, ServerProcess, expect_close, next_event, raw_upgrade};
use predicates::prelude::*;
use ws_core::low_level::{FrameHeader, encode_frame};
use ws_core::{CloseCode, Config, Connection, Event, OpCode, Role};

fn ws_server() -> Command {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin!("ws-server"));
    command.timeout(common::IO_TIMEOUT);
    command
}

#[test]
fn ready_line_shows_the_real_port() {
    let server = ServerProcess::start(&[]);
    assert!(server.addr.ip().is_loopback());
    assert_ne!(server.addr.port(), 0);
}

#[test]
fn the_line_after_the_ready_line_shows_the_test_page_url() {
    let server = ServerProcess::start(&[]);
    assert_eq!(server.page_url, format!("http://{}/", server.addr));
    let response = common::http_exchange(&server, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(response.body.contains("new WebSocket("));
}

#[test]
fn a_bare_port_binds_the_loopback_address_and_says_so() {
    let mut command = common::ws_server_command();
    command.args(["--listen", "0"]);
    let server = ServerProcess::spawn(command);
    assert_eq!(server.addr.ip(), std::net::Ipv4Addr::LOCALHOST);
    assert_ne!(server.addr.port(), 0);
    let log = server.wait_for_log("--listen 0 binds 127.0.0.1:0");
    assert!(log.contains("0.0.0.0:0"), "{log}");
    let mut client = server.connect();
    client.send_text("local").unwrap();
    assert_eq!(next_event(&mut client), Event::Text("local".into()));
}

#[cfg(unix)]
#[test]
fn sigterm_sends_1001_to_clients_prints_a_summary_and_exits_0() {
    let mut server = ServerProcess::start(&[]);
    let mut client = server.connect();
    let mut other = server.connect();
    for text in ["one", "two"] {
        client.send_text(text).unwrap();
        assert_eq!(next_event(&mut client), Event::Text(text.into()));
    }
    server.signal("TERM");
    // The client's close reply is sent by ws-core as it receives the close.
    assert_eq!(expect_close(&mut client), Some(1001));
    assert_eq!(expect_close(&mut other), Some(1001));
    let status = server.wait_exit();
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(
        server.stdout_line().as_deref(),
        Some("shut down: served 2 connections (http=1.1: 2, http=2: 0), echoed 2 messages")
    );
}

#[cfg(unix)]
#[test]
fn sigint_shuts_down_the_same_way_and_counts_in_the_singular() {
    let mut server = ServerProcess::start(&[]);
    let mut client = server.connect();
    client.send_text("one").unwrap();
    assert_eq!(next_event(&mut client), Event::Text("one".into()));
    server.signal("INT");
    assert_eq!(expect_close(&mut client), Some(1001));
    assert!(server.wait_exit().success());
    assert_eq!(
        server.stdout_line().as_deref(),
        Some("shut down: served 1 connection (http=1.1: 1, http=2: 0), echoed 1 message")
    );
}

#[cfg(unix)]
#[test]
fn shutdown_stops_accepting_new_connections() {
    let mut server = ServerProcess::start(&["--shutdown-timeout", "2s"]);
    let _client = raw_upgrade(&server);
    server.signal("TERM");
    // The client above never answers the close, so the server is still
    // waiting (up to the shutdown timeout) when we try to connect.
    server.wait_for_log("no longer accepting");
    assert!(std::net::TcpStream::connect(server.addr).is_err());
    assert!(server.wait_exit().success());
}

#[cfg(unix)]
#[test]
fn shutdown_gives_up_on_silent_clients_after_the_timeout() {
    let mut server = ServerProcess::start(&["--shutdown-timeout", "300ms"]);
    let mut stream = raw_upgrade(&server);
    server.signal("TERM");
    // Read the close but never answer it.
    let mut connection = Connection::new(Role::Client, Config::default());
    let mut buf = [0u8; 256];
    let event = loop {
        if let Some(event) = connection.next_event().unwrap() {
            break event;
        }
        let n = std::io::Read::read(&mut stream, &mut buf).unwrap();
        assert_ne!(n, 0, "closed without a close frame");
        connection.receive(&buf[..n]);
    };
    assert!(matches!(event, Event::Close(Some(frame)) if frame.code == CloseCode::GOING_AWAY));
    assert!(server.wait_exit().success());
    assert_eq!(
        server.stdout_line().as_deref(),
        Some("shut down: served 1 connection (http=1.1: 1, http=2: 0), echoed 0 messages")
    );
}

#[cfg(unix)]
#[test]
fn connection_end_is_logged_at_info_without_payloads() {
    let mut server = ServerProcess::start(&[]);
    let mut client = server.connect();
    client.send_text("secret-payload-text").unwrap();
    assert_eq!(
        next_event(&mut client),
        Event::Text("secret-payload-text".into())
    );
    client.close(CloseCode(4001), "done").unwrap();
    assert_eq!(expect_close(&mut client), Some(4001));
    let log = server.wait_for_log("connection closed");
    let line = log
        .lines()
        .find(|line| line.contains("connection closed"))
        .unwrap();
    for field in [
        " INFO ",
        "peer=127.0.0.1:",
        "duration=",
        "messages_in=1",
        "bytes_in=19",
        "messages_out=1",
        "bytes_out=19",
        "close_code=4001",
        "closed_by=\"client\"",
        "clean=true",
    ] {
        assert!(line.contains(field), "log line lacks {field:?}: {line}");
    }
    server.signal("TERM");
    assert!(server.wait_exit().success());
    assert!(!server.stderr().contains("secret-payload-text"));
}

#[test]
fn connection_open_is_logged_at_info_with_path_subprotocol_and_extensions() {
    let server = ServerProcess::start(&[]);
    let request = ws_core::handshake::ClientRequest::new(&format!("{}room/7?x=1", server.url()))
        .unwrap()
        .protocol("chat");
    let config = Config::default().deflate(Some(ws_core::deflate::DeflateConfig::default()));
    let (mut client, _) =
        ws_core::blocking::WebSocket::connect(server.tcp(), &request, config).unwrap();
    client.send_text("hi").unwrap();
    assert_eq!(next_event(&mut client), Event::Text("hi".into()));
    let log = server.wait_for_log("connection opened");
    let line = log
        .lines()
        .find(|line| line.contains("connection opened"))
        .unwrap();
    for field in [
        " INFO ",
        "peer=127.0.0.1:",
        "path=\"/room/7\"",
        "protocol=\"chat\"",
        "extensions=\"permessage-deflate; server_no_context_takeover",
    ] {
        assert!(line.contains(field), "log line lacks {field:?}: {line}");
    }

    let mut plain = server.connect();
    plain.send_text("hi").unwrap();
    assert_eq!(next_event(&mut plain), Event::Text("hi".into()));
    // The server's stderr is collected by a thread of its own: the line may
    // reach the test after the echo does.
    let deadline = Instant::now() + IO_TIMEOUT;
    let line = loop {
        let log = server.stderr();
        if let Some(line) = log
            .lines()
            .filter(|line| line.contains("connection opened"))
            .nth(1)
        {
            break line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no second connection line:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    for field in ["path=\"/\"", "protocol=\"none\"", "extensions=\"none\""] {
        assert!(line.contains(field), "log line lacks {field:?}: {line}");
    }
}

#[test]
fn plain_http_requests_are_logged_at_info() {
    let server = ServerProcess::start(&[]);
    let response = common::http_exchange(
        &server,
        "GET /healthz?probe=1 HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert_eq!(response.status, 200);
    let log = server.wait_for_log("http request");
    let line = log
        .lines()
        .find(|line| line.contains("http request"))
        .unwrap();
    for field in [
        " INFO ",
        "method=\"GET\"",
        "path=\"/healthz\"",
        "status=200",
    ] {
        assert!(line.contains(field), "log line lacks {field:?}: {line}");
    }
}

#[test]
fn log_level_flag_silences_info() {
    let server = ServerProcess::start(&["--log-level", "warn"]);
    let mut client = server.connect();
    client.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(expect_close(&mut client), Some(1000));
    // A warning is still logged: provoke one, then check no info line came.
    let response = common::http_exchange(
        &server,
        &common::upgrade_request_with("Sec-WebSocket-Key", ""),
    );
    assert_eq!(response.status, 400);
    let log = server.wait_for_log("upgrade refused");
    assert!(!log.contains("connection closed"), "{log}");
}

#[test]
fn rust_log_sets_the_level_and_the_flag_overrides_it() {
    let start = |rust_log: &str, args: &[&str]| {
        let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin!("ws-server"));
        command
            .env("RUST_LOG", rust_log)
            .args(["--listen", "127.0.0.1:0"])
            .args(args);
        ServerProcess::spawn(command)
    };
    let quiet = start("error", &[]);
    let verbose = start("error", &["--log-level", "info"]);
    for server in [&quiet, &verbose] {
        let mut client = server.connect();
        client.close(CloseCode::NORMAL, "").unwrap();
        assert_eq!(expect_close(&mut client), Some(1000));
    }
    verbose.wait_for_log("connection closed");
    // The quiet server closed its connection before the verbose one logged.
    assert!(
        !quiet.stderr().contains("connection closed"),
        "{}",
        quiet.stderr()
    );
}

#[test]
fn help_documents_every_option_with_its_default() {
    ws_server().arg("--help").assert().success().stdout(
        predicate::str::contains("--listen <ADDR>")
            .and(predicate::str::contains("[default: 127.0.0.1:8000]"))
            .and(predicate::str::contains("--threads <N>"))
            .and(predicate::str::contains("--max-message-size <SIZE>"))
            .and(predicate::str::contains("[default: 16MiB]"))
            .and(predicate::str::contains("--max-frame-size <SIZE>"))
            .and(predicate::str::contains("--max-connections <N>"))
            .and(predicate::str::contains("[default: 10000]"))
            .and(predicate::str::contains("--handshake-timeout <DURATION>"))
            .and(predicate::str::contains("[default: 10s]"))
            .and(predicate::str::contains("--idle-timeout <DURATION>"))
            .and(predicate::str::contains("[default: off]"))
            .and(predicate::str::contains("--close-timeout <DURATION>"))
            .and(predicate::str::contains("--shutdown-timeout <DURATION>"))
            .and(predicate::str::contains("[default: 5s]"))
            .and(predicate::str::contains("--protocol <NAME>"))
            .and(predicate::str::contains("--allowed-origin <ORIGIN>"))
            .and(predicate::str::contains("--log-level <LEVEL>"))
            .and(predicate::str::contains("RUST_LOG")),
    );
}

#[test]
fn bad_arguments_are_usage_errors_with_exit_2() {
    for args in [
        &["--max-message-size", "huge"][..],
        &["--handshake-timeout", "10 parsecs"],
        &["--listen", "nowhere"],
        &["--threads", "0"],
        &["--no-such-flag"],
    ] {
        ws_server()
            .args(args)
            .assert()
            .code(2)
            .stdout(predicate::str::is_empty())
            .stderr(predicate::str::contains("error:"));
    }
}

#[test]
fn port_in_use_fails_with_one_line_and_exit_1() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    ws_server()
        .args(["--listen", &addr])
        .assert()
        .code(1)
        .stdout(predicate::str::is_empty())
        .stderr(
            predicate::str::contains(format!("ws-server: cannot listen on {addr}:"))
                .and(predicate::function(|text: &str| text.lines().count() == 1)),
        );
}

/// A masked frame as a client sends it.
fn client_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        mask: Some([0x11, 0x22, 0x33, 0x44]),
        ..FrameHeader::new(opcode, 0)
    };
    let mut out = BytesMut::new();
    encode_frame(&mut out, header, payload);
    out.to_vec()
}

/// Reads from a raw client until the server's close frame; returns its code.
fn read_until_close(stream: &mut TcpStream) -> Option<u16> {
    let mut connection = Connection::new(Role::Client, Config::default());
    let mut buf = [0u8; 4096];
    loop {
        match connection.next_event().unwrap() {
            Some(Event::Close(frame)) => return frame.map(|frame| frame.code.0),
            Some(_) => continue,
            None => {}
        }
        let n = stream.read(&mut buf).unwrap();
        assert_ne!(n, 0, "closed without a close frame");
        connection.receive(&buf[..n]);
    }
}

/// A client is 20,000 bytes into a 64 KiB frame when `interrupt` makes the
/// server close; 500 ms later it sends the rest of the frame and its close
/// reply. The server must drop the rest of the frame, read the reply and
/// end TCP after a clean closing handshake; returns its log line.
fn server_closes_while_client_is_mid_frame(
    server: &ServerProcess,
    interrupt: impl FnOnce(&ServerProcess),
) -> String {
    let mut stream = raw_upgrade(server);
    let frame = client_frame(OpCode::Binary, &vec![0x5a; 64 * 1024]);
    let (sent, rest) = frame.split_at(20_000);
    stream.write_all(sent).unwrap();
    interrupt(server);
    assert_eq!(read_until_close(&mut stream), Some(1001));
    std::thread::sleep(Duration::from_millis(500));
    stream.write_all(rest).unwrap();
    stream
        .write_all(&client_frame(OpCode::Close, &1001u16.to_be_bytes()))
        .unwrap();
    let mut after = Vec::new();
    stream.read_to_end(&mut after).unwrap();
    assert_eq!(after, b"", "nothing may follow the server's close");
    let log = server.wait_for_log("connection closed");
    log.lines()
        .find(|line| line.contains("connection closed"))
        .unwrap()
        .to_owned()
}

#[cfg(unix)]
#[test]
fn shutdown_while_a_client_is_mid_frame_completes_the_closing_handshake() {
    let mut server = ServerProcess::start(&["--close-timeout", "5s"]);
    let line = server_closes_while_client_is_mid_frame(&server, |server| server.signal("TERM"));
    for field in ["close_code=1001", "closed_by=\"server\"", "clean=true"] {
        assert!(line.contains(field), "log line lacks {field:?}: {line}");
    }
    assert!(server.wait_exit().success());
}

#[test]
fn idle_timeout_while_a_client_is_mid_frame_completes_the_closing_handshake() {
    // The client sends nothing for two idle periods: a ping, then close 1001.
    let server = ServerProcess::start(&["--idle-timeout", "200ms", "--close-timeout", "5s"]);
    let line = server_closes_while_client_is_mid_frame(&server, |_| {});
    for field in ["close_code=1001", "closed_by=\"server\"", "clean=true"] {
        assert!(line.contains(field), "log line lacks {field:?}: {line}");
    }
}
