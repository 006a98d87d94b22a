#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The `ws-client` binary against small in-process servers on loopback.
//!
//! Test helpers may panic: a failed setup step or assertion fails the test.
//! Every server socket has a read timeout and every client run an
//! `assert_cmd` timeout, so a hang fails instead of blocking CI.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use assert_cmd::Command;
use bytes::BytesMut;
use predicates::prelude::*;
use ws_core::blocking::WebSocket;
use ws_core::handshake::{AcceptOptions, HandshakeError};
use ws_core::low_level::{FrameHeader, encode_frame};
use ws_core::{CloseCode, Config, Event, Message, OpCode};

/// The longest any client run may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(30);
/// The longest a server waits for the client.
const SERVER_LIMIT: Duration = Duration::from_secs(20);

/// The client with a short `--timeout` and a hard limit on the run.
fn client(url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ws-client"));
    command
        .arg(url)
        .args(["--timeout", "5s"])
        .timeout(RUN_LIMIT);
    command
}

fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    (listener, url)
}

/// Accepts one TCP connection, with a read timeout so a test cannot hang.
fn accept_tcp(listener: &TcpListener) -> TcpStream {
    let (stream, _) = listener.accept().unwrap();
    stream.set_read_timeout(Some(SERVER_LIMIT)).unwrap();
    stream.set_write_timeout(Some(SERVER_LIMIT)).unwrap();
    stream
}

/// A server for one WebSocket connection, running `serve` on it.
fn ws_server<T: Send + 'static>(
    serve: impl FnOnce(WebSocket<TcpStream>) -> T + Send + 'static,
) -> (String, JoinHandle<T>) {
    let (listener, url) = listen();
    let handle = thread::spawn(move || {
        let stream = accept_tcp(&listener);
        serve(WebSocket::accept(stream).unwrap())
    });
    (url, handle)
}

/// Echoes every message until the client closes; returns the messages.
fn echo(mut socket: WebSocket<TcpStream>) -> Vec<Message> {
    let mut seen = Vec::new();
    while let Some(event) = socket.recv().unwrap() {
        if let Some(message) = event.into_message() {
            seen.push(message.clone());
            socket.send(message).unwrap();
        }
    }
    seen
}

fn echo_server() -> (String, JoinHandle<Vec<Message>>) {
    ws_server(echo)
}

/// Closes from the server side and waits for the client's answer.
fn close_and_drain(socket: &mut WebSocket<TcpStream>, code: CloseCode, reason: &str) {
    socket.close(code, reason).unwrap();
    while socket.recv().unwrap().is_some() {}
}

/// Reads an HTTP request head (up to the blank line) from `stream`.
fn read_request_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// A server that reads the upgrade request, writes `response` in one go,
/// and then waits for the client to go away.
fn raw_server(response: &'static [u8]) -> (String, JoinHandle<()>) {
    let (listener, url) = listen();
    let handle = thread::spawn(move || {
        let mut stream = accept_tcp(&listener);
        read_request_head(&mut stream);
        stream.write_all(response).unwrap();
        let _ = stream.read_to_end(&mut Vec::new());
    });
    (url, handle)
}

/// A file in the temporary directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn with_contents(name: &str, contents: &[u8]) -> Self {
        let path =
            std::env::temp_dir().join(format!("ws-client-test-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

// ---- messages ----

#[test]
fn message_argument_is_echoed_on_stdout_and_exit_is_zero() {
    let (url, server) = echo_server();
    client(&url)
        .arg("Hello, World")
        .assert()
        .success()
        .stdout("Hello, World\n")
        .stderr("");
    assert_eq!(server.join().unwrap(), [Message::from("Hello, World")]);
}

#[test]
fn ipv6_loopback_url_works() {
    let Ok(listener) = TcpListener::bind("[::1]:0") else {
        // No IPv6 on this machine: nothing to test.
        return;
    };
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let server = thread::spawn(move || echo(WebSocket::accept(accept_tcp(&listener)).unwrap()));
    client(&url)
        .arg("over v6")
        .assert()
        .success()
        .stdout("over v6\n");
    assert_eq!(server.join().unwrap(), [Message::from("over v6")]);
}

#[test]
fn several_messages_are_sent_in_order_and_each_reply_printed() {
    let (url, server) = echo_server();
    client(&url)
        .args(["one", "two", "three"])
        .assert()
        .success()
        .stdout("one\ntwo\nthree\n");
    assert_eq!(server.join().unwrap().len(), 3);
}

#[test]
fn client_closes_with_the_requested_code_and_reason() {
    let (url, server) = ws_server(|mut socket| {
        let message = socket.recv().unwrap().unwrap();
        socket.send(message.into_message().unwrap()).unwrap();
        let close = socket.recv().unwrap();
        while socket.recv().unwrap().is_some() {}
        close
    });
    client(&url)
        .args(["hi", "--close-code", "4000", "--close-reason", "done here"])
        .assert()
        .success()
        .stdout("hi\n");
    match server.join().unwrap() {
        Some(Event::Close(Some(frame))) => {
            assert_eq!(frame.code, CloseCode(4000));
            assert_eq!(frame.reason, "done here");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[test]
fn stdin_lines_are_sent_in_order_and_all_1000_replies_printed() {
    let (url, server) = echo_server();
    let input: String = (0..1000).map(|i| format!("line {i}\n")).collect();
    client(&url)
        .write_stdin(input.clone())
        .assert()
        .success()
        .stdout(input);
    let seen = server.join().unwrap();
    assert_eq!(seen.len(), 1000);
    assert_eq!(seen[999], Message::from("line 999"));
}

#[test]
fn large_lines_to_an_echo_server_that_stops_reading_while_writing_do_not_deadlock() {
    // The blocking echo server does not read while its echo is blocked; if
    // the client stopped reading while sending, 30 MB would wedge both.
    let (url, server) = echo_server();
    let line = "x".repeat(3 << 20);
    let input = format!("{line}\n").repeat(10);
    let output = client(&url)
        .args(["--timeout", "20s"])
        .write_stdin(input.clone())
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stdout == input.as_bytes(), "the echoed lines differ");
    assert_eq!(server.join().unwrap().len(), 10);
}

#[test]
fn file_dash_reads_the_message_from_stdin() {
    let (url, server) = echo_server();
    client(&url)
        .args(["--file", "-", "--output", "hex"])
        .write_stdin(&b"\x00\x01\n"[..])
        .assert()
        .success()
        .stdout("00010a\n");
    assert_eq!(
        server.join().unwrap(),
        [Message::from(b"\x00\x01\n".to_vec())]
    );
}

#[test]
fn stdin_crlf_line_endings_are_stripped() {
    let (url, server) = echo_server();
    client(&url)
        .write_stdin("a\r\nb\r\n")
        .assert()
        .success()
        .stdout("a\nb\n");
    assert_eq!(
        server.join().unwrap(),
        [Message::from("a"), Message::from("b")]
    );
}

#[test]
fn binary_flag_sends_stdin_lines_as_binary_messages() {
    let (url, server) = echo_server();
    client(&url)
        .arg("--binary")
        .write_stdin("x\ny\n")
        .assert()
        .success()
        .stdout("x\ny\n");
    assert_eq!(
        server.join().unwrap(),
        [Message::from(b"x".to_vec()), Message::from(b"y".to_vec())]
    );
}

#[test]
fn empty_stdin_closes_normally_without_sending() {
    let (url, server) = echo_server();
    client(&url).write_stdin("").assert().success().stdout("");
    assert!(server.join().unwrap().is_empty());
}

#[test]
fn non_utf8_line_in_text_mode_is_refused_with_exit_1() {
    let (url, _server) = echo_server();
    client(&url)
        .write_stdin(&b"ok\n\xff\xfe\n"[..])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "line 2 of stdin is not valid UTF-8; use --binary",
        ));
}

#[test]
fn binary_file_round_trips_byte_for_byte_with_raw_output() {
    let mut state = 0x2545_f491_u32;
    let contents: Vec<u8> = (0..300_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect();
    let file = TempFile::with_contents("roundtrip.bin", &contents);
    let (url, server) = echo_server();
    let output = client(&url)
        .arg("--file")
        .arg(&file.0)
        .args(["--output", "raw"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(
        output.stdout == contents,
        "the echoed bytes differ from the file"
    );
    assert_eq!(server.join().unwrap(), [Message::from(contents)]);
}

#[test]
fn unreadable_file_fails_with_exit_1_before_connecting() {
    client("ws://127.0.0.1:9/")
        .args(["--file", "/nonexistent/ws-client/input.bin"])
        .assert()
        .code(1)
        .stderr(
            "ws-client: cannot read /nonexistent/ws-client/input.bin: No such file or directory\n",
        );
}

#[test]
fn binary_messages_print_as_hex_or_base64() {
    for (format, printed) in [("hex", "0001feff\n"), ("base64", "AAH+/w==\n")] {
        let (url, _server) = ws_server(|mut socket| {
            socket.send_binary(&[0x00, 0x01, 0xfe, 0xff]).unwrap();
            close_and_drain(&mut socket, CloseCode::NORMAL, "");
        });
        client(&url)
            .args(["--no-close", "--output", format])
            .assert()
            .success()
            .stdout(printed);
    }
}

#[test]
fn expect_zero_closes_right_after_sending() {
    let (url, server) = ws_server(|mut socket| {
        // A sink: takes messages, never answers them.
        let mut seen = Vec::new();
        while let Some(event) = socket.recv().unwrap() {
            seen.extend(event.into_message());
        }
        seen
    });
    client(&url)
        .args(["--expect", "0", "fire and forget"])
        .assert()
        .success()
        .stdout("");
    assert_eq!(server.join().unwrap(), [Message::from("fire and forget")]);
}

#[test]
fn no_close_keeps_printing_until_the_server_closes() {
    let (url, _server) = ws_server(|mut socket| {
        let message = socket.recv().unwrap().unwrap().into_message().unwrap();
        socket.send(message).unwrap();
        socket.send_text("late").unwrap();
        close_and_drain(&mut socket, CloseCode::GOING_AWAY, "shutting down");
    });
    client(&url)
        .args(["--no-close", "a"])
        .assert()
        .success()
        .stdout("a\nlate\n");
}

// ---- --echo ----

#[test]
fn echo_mode_returns_what_a_server_that_speaks_first_sends() {
    let (url, server) = ws_server(|mut socket| {
        socket.send_text("first").unwrap();
        socket.send_binary(b"\x00second").unwrap();
        socket.send_text("third").unwrap();
        let mut echoed = Vec::new();
        while echoed.len() < 3 {
            match socket.recv().unwrap() {
                Some(event) => echoed.extend(event.into_message()),
                None => break,
            }
        }
        close_and_drain(&mut socket, CloseCode::NORMAL, "");
        echoed
    });
    client(&url)
        .args(["--echo", "--output", "hex"])
        .assert()
        .success()
        .stdout("first\n007365636f6e64\nthird\n");
    assert_eq!(
        server.join().unwrap(),
        [
            Message::from("first"),
            Message::from(b"\x00second".to_vec()),
            Message::from("third"),
        ]
    );
}

// ---- control frames and commands ----

#[test]
fn commands_send_ping_and_close_and_show_control_reports_them() {
    let (url, _server) = echo_server();
    let assert = client(&url)
        .args(["--commands", "--show-control"])
        .write_stdin("/ping hi\n/close 4000 bye\nnever sent\n")
        .assert()
        .success()
        .stdout("");
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    let mut lines: Vec<&str> = stderr.lines().collect();
    // The pong may arrive before or after our close goes out; the rest is ordered.
    assert_eq!(lines.first(), Some(&"> ping: hi"), "{stderr}");
    assert_eq!(lines.last(), Some(&"< close: 4000"), "{stderr}");
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "< close: 4000",
            "< pong: hi",
            "> close: 4000 bye",
            "> ping: hi"
        ],
        "{stderr}"
    );
}

#[test]
fn double_slash_and_binary_command_send_data() {
    let (url, server) = echo_server();
    client(&url)
        .arg("--commands")
        .write_stdin("//literal\n/binary 48656c6c6f\n")
        .assert()
        .success()
        .stdout("/literal\nHello\n");
    assert_eq!(
        server.join().unwrap(),
        [Message::from("/literal"), Message::from(b"Hello".to_vec())]
    );
}

#[test]
fn unknown_command_is_reported_and_not_sent() {
    let (url, server) = echo_server();
    client(&url)
        .arg("--commands")
        .write_stdin("/frobnicate\nafter\n")
        .assert()
        .success()
        .stdout("after\n")
        .stderr(predicate::str::contains("unknown command /frobnicate"));
    assert_eq!(server.join().unwrap(), [Message::from("after")]);
}

#[test]
fn without_commands_slash_lines_are_sent_literally() {
    let (url, server) = echo_server();
    client(&url)
        .write_stdin("/close\n")
        .assert()
        .success()
        .stdout("/close\n");
    assert_eq!(server.join().unwrap(), [Message::from("/close")]);
}

#[test]
fn ping_interval_sends_pings_and_shows_the_pongs() {
    let (url, _server) = ws_server(|mut socket| {
        // Answer the first ping (the pong is automatic), then end.
        loop {
            match socket.recv().unwrap() {
                Some(Event::Ping(payload)) => {
                    socket
                        .send_text(&format!("got ping {}", String::from_utf8_lossy(&payload)))
                        .unwrap();
                    break;
                }
                Some(_) => {}
                None => return,
            }
        }
        close_and_drain(&mut socket, CloseCode::NORMAL, "");
    });
    client(&url)
        .args(["--no-close", "--ping-interval", "50ms", "--show-control"])
        .assert()
        .success()
        .stdout("got ping 1\n")
        .stderr(predicate::str::starts_with("> ping: 1\n< pong: 1\n").and(
            predicate::str::ends_with("< close: 1000 (normal closure)\n"),
        ));
}

// ---- request options ----

#[test]
fn headers_auth_origin_and_protocols_reach_the_server() {
    let (listener, url) = listen();
    let server = thread::spawn(move || {
        let stream = accept_tcp(&listener);
        let (mut socket, request) = WebSocket::accept_with(stream, Config::default(), |request| {
            Ok(AcceptOptions::default().protocol(request.select_protocol(&["chat.v2"])))
        })
        .unwrap();
        let headers = request.headers();
        let summary = format!(
            "{}|{}|{}|{}",
            headers.get_str("Authorization").unwrap_or("-"),
            request.origin.as_deref().unwrap_or("-"),
            headers.get_str("X-Token").unwrap_or("-"),
            request.protocols.join(","),
        );
        socket.send_text(&summary).unwrap();
        close_and_drain(&mut socket, CloseCode::NORMAL, "");
    });
    client(&url)
        .args([
            "--no-close",
            "--auth",
            "alice:s3cret",
            "--origin",
            "http://example.test",
            "-H",
            "X-Token: 42",
            "--protocol",
            "chat.v1",
            "--protocol",
            "chat.v2",
        ])
        .assert()
        .success()
        .stdout("Basic YWxpY2U6czNjcmV0|http://example.test|42|chat.v1,chat.v2\n");
    server.join().unwrap();
}

#[test]
fn host_and_a_host_header_override_the_host_the_server_sees() {
    for args in [
        ["--host", "chat.example:8080"],
        ["-H", "Host: chat.example:8080"],
    ] {
        let (listener, url) = listen();
        let server = thread::spawn(move || {
            let stream = accept_tcp(&listener);
            let (mut socket, request) =
                WebSocket::accept_with(stream, Config::default(), |_| Ok(AcceptOptions::default()))
                    .unwrap();
            let hosts: Vec<_> = request
                .headers()
                .get_all("Host")
                .map(|host| String::from_utf8_lossy(host).into_owned())
                .collect();
            socket.send_text(&hosts.join("|")).unwrap();
            close_and_drain(&mut socket, CloseCode::NORMAL, "");
        });
        client(&url)
            .arg("--no-close")
            .args(args)
            .assert()
            .success()
            .stdout("chat.example:8080\n");
        server.join().unwrap();
    }
}

#[test]
fn help_shows_the_bench_subcommand() {
    for flag in ["-h", "--help"] {
        Command::new(env!("CARGO_BIN_EXE_ws-client"))
            .arg(flag)
            .assert()
            .success()
            .stdout(predicate::str::contains(
                "ws-client bench URL [OPTIONS]    the load generator (see ws-bench --help)",
            ));
    }
}

#[test]
fn oversized_message_from_server_fails_with_1009_and_exit_5() {
    let (url, server) = ws_server(|mut socket| {
        socket.send_binary(&[7u8; 2048]).unwrap();
        socket.recv()
    });
    client(&url)
        .args(["--no-close", "--max-message-size", "1KiB"])
        .assert()
        .code(5)
        .stdout("")
        .stderr(
            predicate::str::contains("exceeds the limit of 1024 bytes")
                .and(predicate::str::contains("1009")),
        );
    match server.join().unwrap() {
        Ok(Some(Event::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::MESSAGE_TOO_BIG),
        other => panic!("expected close 1009, got {other:?}"),
    }
}

// ---- exit codes ----

#[test]
fn refused_connection_exits_3() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    client(&format!("ws://127.0.0.1:{port}/"))
        .arg("hello")
        .assert()
        .code(3)
        .stdout("")
        .stderr(format!(
            "ws-client: cannot connect to 127.0.0.1:{port}: Connection refused\n"
        ));
}

#[test]
fn plain_http_200_answer_exits_4_with_status_and_body_line() {
    let (url, _server) = raw_server(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n\r\njust a web page\nmore\n",
    );
    client(&url)
        .arg("hello")
        .assert()
        .code(4)
        .stdout("")
        .stderr("ws-client: handshake rejected: HTTP/1.1 200 OK: just a web page\n");
}

#[test]
fn forbidden_origin_exits_4_with_the_servers_reason() {
    let (listener, url) = listen();
    let server = thread::spawn(move || {
        let stream = accept_tcp(&listener);
        let result = WebSocket::accept_with(stream, Config::default(), |request| {
            Err(HandshakeError::ForbiddenOrigin(
                request.origin.clone().unwrap_or_default(),
            ))
        });
        assert!(result.is_err());
    });
    client(&url)
        .args(["--origin", "http://evil.test", "hello"])
        .assert()
        .code(4)
        .stderr(
            "ws-client: handshake rejected: HTTP/1.1 403 Forbidden: handshake: origin \"http://evil.test\" is not allowed\n",
        );
    server.join().unwrap();
}

#[test]
fn wrong_accept_key_exits_4() {
    let (url, _server) = raw_server(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
    );
    client(&url)
        .arg("hello")
        .assert()
        .code(4)
        .stdout("")
        .stderr("ws-client: handshake failed: Sec-WebSocket-Accept is missing or does not match the key sent\n");
}

#[test]
fn silent_server_times_out_with_exit_6() {
    let (listener, url) = listen();
    let _server = thread::spawn(move || {
        let mut stream = accept_tcp(&listener);
        let _ = stream.read_to_end(&mut Vec::new());
    });
    client(&url)
        .args(["--timeout", "800ms", "hello"])
        .assert()
        .code(6)
        .stdout("")
        .stderr(format!(
            "ws-client: timed out after 800ms waiting for the handshake response from {}\n",
            url.trim_start_matches("ws://").trim_end_matches('/')
        ));
}

#[test]
fn server_that_never_replies_times_out_with_exit_6() {
    let (url, _server) = ws_server(|mut socket| while let Ok(Some(_)) = socket.recv() {});
    client(&url)
        // Long enough for the handshake on a loaded machine, so that it is the
        // wait for the reply that times out.
        .args(["--timeout", "2s", "anyone there?"])
        .assert()
        .code(6)
        .stdout("")
        .stderr("ws-client: timed out after 2s waiting for replies (0 of 1 received)\n");
}

#[test]
fn server_closing_with_an_error_code_exits_7() {
    let (url, _server) = ws_server(|mut socket| {
        socket.recv().unwrap();
        close_and_drain(&mut socket, CloseCode::POLICY_VIOLATION, "no thanks");
    });
    client(&url).arg("hello").assert().code(7).stderr(
        "ws-client: the server closed the connection with 1008 (policy violation): no thanks\n",
    );
}

#[test]
fn server_closing_with_an_application_code_exits_7_with_the_code_printed() {
    let (url, _server) = ws_server(|mut socket| {
        let message = socket.recv().unwrap().unwrap();
        socket.send(message.into_message().unwrap()).unwrap();
        close_and_drain(&mut socket, CloseCode(4001), "session over");
    });
    client(&url)
        .args(["--no-close", "hello"])
        .assert()
        .code(7)
        .stdout("hello\n")
        .stderr("ws-client: the server closed the connection with 4001: session over\n");
}

#[test]
fn server_closing_with_1001_exits_0() {
    let (url, _server) = ws_server(|mut socket| {
        socket.recv().unwrap();
        close_and_drain(&mut socket, CloseCode::GOING_AWAY, "restarting");
    });
    client(&url).arg("hello").assert().success().stderr("");
}

#[test]
fn server_dropping_tcp_without_close_exits_5() {
    let (url, _server) = ws_server(|mut socket| {
        socket.recv().unwrap();
        drop(socket);
    });
    client(&url)
        .arg("hello")
        .assert()
        .code(5)
        .stderr(predicate::str::contains("dropped the connection"));
}

#[test]
fn server_protocol_violation_exits_5() {
    let (listener, url) = listen();
    let _server = thread::spawn(move || {
        let mut stream = accept_tcp(&listener);
        let stream_for_ws = stream.try_clone().unwrap();
        let socket = WebSocket::accept(stream_for_ws).unwrap();
        // A masked frame from a server is a protocol violation (RFC 6455 §5.1).
        stream
            .write_all(&[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2])
            .unwrap();
        let _ = stream.read_to_end(&mut Vec::new());
        drop(socket);
    });
    client(&url)
        .args(["--no-close"])
        .assert()
        .code(5)
        .stderr("ws-client: protocol error: masked frame from a server (closed the connection with 1002 (protocol error))\n");
}

#[test]
fn malformed_url_is_a_usage_error() {
    client("not a url")
        .arg("hello")
        .assert()
        .code(2)
        .stderr(predicate::str::starts_with("ws-client: invalid URL"));
    client("ftp://127.0.0.1:9/")
        .arg("hello")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unsupported URL scheme \"ftp\""));
}

#[test]
fn invalid_option_values_are_usage_errors() {
    for args in [
        &["--close-code", "1005"][..],
        &["-H", "no colon here"],
        &["--timeout", "soon"],
        &["--max-message-size", "0"],
        &["--output", "pdf"],
    ] {
        client("ws://127.0.0.1:9/")
            .args(args)
            .assert()
            .code(2)
            .stdout("");
    }
}

#[test]
fn help_documents_every_exit_code() {
    let assert = Command::new(env!("CARGO_BIN_EXE_ws-client"))
        .arg("--help")
        .timeout(RUN_LIMIT)
        .assert()
        .success();
    let help = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    for line in [
        "0  success",
        "1  other error",
        "2  usage error",
        "3  connection failed",
        "4  handshake failed",
        "5  protocol error",
        "6  timeout",
        "7  the peer closed with another code",
    ] {
        assert!(help.contains(line), "--help lacks {line:?}");
    }
}

// ---- permessage-deflate ----

/// Echoes over a connection that negotiated deflate if the client offered
/// it; returns what the client offered and whether deflate was on.
fn deflate_echo_server() -> (String, JoinHandle<(Vec<String>, bool)>) {
    let (listener, url) = listen();
    let server = thread::spawn(move || {
        let stream = accept_tcp(&listener);
        let config = Config::default().deflate(Some(ws_core::deflate::DeflateConfig::default()));
        let (mut socket, request) =
            WebSocket::accept_with(stream, config, |_| Ok(AcceptOptions::default())).unwrap();
        let enabled = socket.connection().deflate_enabled();
        while let Some(event) = socket.recv().unwrap() {
            if let Some(message) = event.into_message() {
                socket.send(message).unwrap();
            }
        }
        (request.extensions, enabled)
    });
    (url, server)
}

#[test]
fn deflate_is_offered_by_default_and_used_when_accepted() {
    let (url, server) = deflate_echo_server();
    let message = "compress me please, compress me please, compress me please ".repeat(20);
    client(&url)
        .arg(&message)
        .assert()
        .success()
        .stdout(format!("{message}\n"));
    let (offered, enabled) = server.join().unwrap();
    assert_eq!(offered, ["permessage-deflate; client_max_window_bits"]);
    assert!(enabled);
}

#[test]
fn no_deflate_makes_no_offer() {
    let (url, server) = deflate_echo_server();
    client(&url)
        .args(["--no-deflate", "plain"])
        .assert()
        .success()
        .stdout("plain\n");
    let (offered, enabled) = server.join().unwrap();
    assert!(offered.is_empty());
    assert!(!enabled);
}

// ---- closing while a large message is arriving ----

/// A server that answers the upgrade, sends the first 100 KiB of a 1 MiB
/// binary frame and reports that on `started`; when the client's close
/// arrives it sends the rest of the frame and its close reply (1000), then
/// waits for the client to end TCP. Returns the client's close code.
fn server_sending_a_large_frame() -> (String, mpsc::Receiver<()>, JoinHandle<Option<u16>>) {
    let (listener, url) = listen();
    let (started_tx, started) = mpsc::channel();
    let handle = thread::spawn(move || {
        let socket = WebSocket::accept(accept_tcp(&listener)).unwrap();
        let (mut stream, mut connection) = socket.into_parts();
        let mut frame = BytesMut::new();
        encode_frame(
            &mut frame,
            FrameHeader::new(OpCode::Binary, 0),
            &vec![0x42; 1 << 20],
        );
        let (first, rest) = frame.split_at(100 * 1024);
        stream.write_all(first).unwrap();
        started_tx.send(()).unwrap();
        let mut buf = [0u8; 4096];
        let code = loop {
            match connection.next_event().unwrap() {
                Some(Event::Close(frame)) => break frame.map(|frame| frame.code.0),
                Some(_) => continue,
                None => {}
            }
            let n = stream.read(&mut buf).unwrap();
            assert_ne!(n, 0, "the client ended TCP without a close frame");
            connection.receive(&buf[..n]);
        };
        stream.write_all(rest).unwrap();
        stream.write_all(&[0x88, 0x02, 0x03, 0xe8]).unwrap();
        let _ = stream.read_to_end(&mut Vec::new());
        code
    });
    (url, started, handle)
}

/// Runs the client against that server and, once the frame is half sent,
/// lets `interrupt` make it close; returns its exit status and stderr.
fn close_while_a_large_message_arrives(
    args: &[&str],
    interrupt: impl FnOnce(&mut std::process::Child),
) -> (std::process::ExitStatus, String, Option<u16>) {
    let (url, started, server) = server_sending_a_large_frame();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ws-client"))
        .arg(&url)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    started.recv_timeout(SERVER_LIMIT).unwrap();
    // Let the client take in part of the frame.
    thread::sleep(Duration::from_millis(300));
    interrupt(&mut child);
    let status = wait_bounded(&mut child);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status, stderr, server.join().unwrap())
}

#[test]
fn close_command_while_a_large_message_arrives_closes_cleanly() {
    let (status, stderr, code) =
        close_while_a_large_message_arrives(&["--commands", "--show-control"], |child| {
            let stdin = child.stdin.as_mut().unwrap();
            stdin.write_all(b"/close\n").unwrap();
            stdin.flush().unwrap();
        });
    assert!(status.success(), "{status:?}: {stderr}");
    assert_eq!(code, Some(1000));
    assert!(stderr.contains("< close: 1000"), "{stderr}");
}

#[cfg(unix)]
#[test]
fn ctrl_c_while_a_large_message_arrives_closes_cleanly() {
    let (status, stderr, code) =
        close_while_a_large_message_arrives(&["--no-close", "--show-control"], |child| {
            let pid = child.id().to_string();
            let killed = std::process::Command::new("kill")
                .args(["-INT", &pid])
                .status()
                .unwrap();
            assert!(killed.success());
        });
    assert!(status.success(), "{status:?}: {stderr}");
    assert_eq!(code, Some(1000));
    assert!(stderr.contains("< close: 1000"), "{stderr}");
}

// ---- replies in flight when we close ----

/// A server that waits until it has read the client's message *and* its
/// close, then sends `replies` (text) and its close reply (1000): the
/// replies reach the client after it sent its close.
fn server_answering_after_the_close(
    replies: &'static [&'static str],
) -> (String, JoinHandle<Vec<Event>>) {
    let (listener, url) = listen();
    let handle = thread::spawn(move || {
        let socket = WebSocket::accept(accept_tcp(&listener)).unwrap();
        let (mut stream, mut connection) = socket.into_parts();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match connection.next_event().unwrap() {
                Some(event @ Event::Close(_)) => {
                    seen.push(event);
                    break;
                }
                Some(event) => seen.push(event),
                None => {
                    let n = stream.read(&mut buf).unwrap();
                    assert_ne!(n, 0, "the client ended TCP without a close frame");
                    connection.receive(&buf[..n]);
                }
            }
        }
        let mut out = BytesMut::new();
        for reply in replies {
            encode_frame(
                &mut out,
                FrameHeader::new(OpCode::Text, 0),
                reply.as_bytes(),
            );
        }
        encode_frame(
            &mut out,
            FrameHeader::new(OpCode::Close, 0),
            &1000u16.to_be_bytes(),
        );
        stream.write_all(&out).unwrap();
        let _ = stream.read_to_end(&mut Vec::new());
        seen
    });
    (url, handle)
}

#[test]
fn close_command_does_not_lose_replies_already_in_flight() {
    let (url, server) = server_answering_after_the_close(&["hello"]);
    client(&url)
        .arg("--commands")
        .write_stdin("hello\n/close\n")
        .assert()
        .success()
        .stdout("hello\n");
    let seen = server.join().unwrap();
    assert_eq!(seen.first(), Some(&Event::Text("hello".into())));
}

// ---- when to close: counted replies and a quiet period ----

/// Answers every message twice (`a` gets `a-1` and `a-2`), after a
/// greeting if `greet`; echoes until the client closes.
fn chatty_server(greet: bool) -> (String, JoinHandle<Vec<Message>>) {
    ws_server(move |mut socket| {
        if greet {
            socket.send_text("welcome").unwrap();
        }
        let mut seen = Vec::new();
        while let Some(event) = socket.recv().unwrap() {
            if let Event::Text(text) = event {
                seen.push(Message::Text(text.clone()));
                socket.send_text(&format!("{text}-1")).unwrap();
                socket.send_text(&format!("{text}-2")).unwrap();
            }
        }
        seen
    })
}

#[test]
fn a_server_answering_twice_has_every_reply_printed_and_noted() {
    let (url, server) = chatty_server(false);
    client(&url)
        .args(["--wait", "2s", "a", "b"])
        .assert()
        .success()
        .stdout("a-1\na-2\nb-1\nb-2\n")
        .stderr("ws-client: note: 4 messages received, 2 expected (--expect; see --help)\n");
    assert_eq!(server.join().unwrap().len(), 2);
}

#[test]
fn a_greeting_does_not_hide_a_reply() {
    let (url, _server) = ws_server(|mut socket| {
        socket.send_text("welcome").unwrap();
        echo(socket)
    });
    client(&url)
        .args(["--wait", "2s", "hello"])
        .assert()
        .success()
        .stdout("welcome\nhello\n")
        .stderr(predicate::str::contains("2 messages received, 1 expected"));
}

#[test]
fn one_message_prints_only_the_first_message_and_conflicts_with_expect() {
    let (url, server) = chatty_server(true);
    client(&url)
        .args(["--expect", "1", "-w", "0", "-1", "x"])
        .assert()
        .code(2);
    // -1 and --expect conflict; -1 alone prints exactly one message.
    client(&url)
        .args(["-1", "x"])
        .assert()
        .success()
        .stdout("welcome\n");
    server.join().unwrap();
}

#[test]
fn exit_on_eof_closes_without_waiting_for_replies() {
    let (url, server) = ws_server(|mut socket| {
        let mut seen = Vec::new();
        while let Some(event) = socket.recv().unwrap() {
            seen.extend(event.into_message());
        }
        seen
    });
    // The server never answers: without -E this would time out (exit 6).
    client(&url)
        .args(["-E", "--timeout", "20s"])
        .write_stdin("one\ntwo\n")
        .assert()
        .success()
        .stdout("");
    assert_eq!(
        server.join().unwrap(),
        [Message::from("one"), Message::from("two")]
    );
}

// ---- flags people's fingers know ----

#[test]
fn dash_c_takes_the_url_and_positional_arguments_are_messages() {
    let (url, server) = echo_server();
    Command::new(env!("CARGO_BIN_EXE_ws-client"))
        .args(["-c", &url, "first", "-x", "second"])
        .timeout(RUN_LIMIT)
        .assert()
        .success()
        .stdout("first\nsecond\n");
    assert_eq!(
        server.join().unwrap(),
        [Message::from("first"), Message::from("second")]
    );
}

#[test]
fn no_url_at_all_is_a_usage_error() {
    Command::new(env!("CARGO_BIN_EXE_ws-client"))
        .timeout(RUN_LIMIT)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no URL"));
}

#[test]
fn text_and_binary_modes() {
    let (url, server) = echo_server();
    client(&url)
        .args(["-b", "--output", "hex"])
        .write_stdin("hi\n")
        .assert()
        .success()
        .stdout("6869\n");
    assert_eq!(server.join().unwrap(), [Message::from(b"hi".to_vec())]);
    let (url, server) = echo_server();
    client(&url)
        .args(["-t", "hi"])
        .assert()
        .success()
        .stdout("hi\n");
    assert_eq!(server.join().unwrap(), [Message::from("hi")]);
    client("ws://127.0.0.1:9/")
        .args(["-t", "-b", "x"])
        .assert()
        .code(2);
}

#[test]
fn base64_decodes_input_and_encodes_binary_output() {
    let (url, server) = echo_server();
    client(&url)
        .arg("--base64")
        .write_stdin("AP8=\naGk=\n")
        .assert()
        .success()
        .stdout("AP8=\naGk=\n");
    assert_eq!(
        server.join().unwrap(),
        [Message::from(vec![0, 255]), Message::from(b"hi".to_vec())]
    );
    client("ws://127.0.0.1:9/")
        .args(["--base64", "not base64!"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("message 1 is not valid base64"));
}

#[test]
fn nul_separates_messages_both_ways() {
    let (url, server) = echo_server();
    client(&url)
        .arg("-0")
        .write_stdin(&b"two\nlines\0second"[..])
        .assert()
        .success()
        .stdout(&b"two\nlines\0second\0"[..]);
    assert_eq!(
        server.join().unwrap(),
        [Message::from("two\nlines"), Message::from("second")]
    );
}

#[test]
fn jsonrpc_wraps_each_line_with_an_incrementing_id() {
    let (url, server) = echo_server();
    client(&url)
        .arg("--jsonrpc")
        .write_stdin("add [1, 2]\nstatus\n")
        .assert()
        .success()
        .stdout(concat!(
            r#"{"id":1,"jsonrpc":"2.0","method":"add","params":[1,2]}"#,
            "\n",
            r#"{"id":2,"jsonrpc":"2.0","method":"status"}"#,
            "\n"
        ));
    assert_eq!(server.join().unwrap().len(), 2);
    let (url, _server) = echo_server();
    client(&url)
        .arg("--jsonrpc")
        .write_stdin("add 1\n")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "line 1 of stdin is the params of add must be a JSON array or object",
        ));
}

#[test]
fn short_n_skips_the_certificate_check_and_no_close_is_long_only() {
    use clap::Parser;
    use ws_client::cli::Cli;
    let cli = Cli::try_parse_from(["ws-client", "-n", "wss://h/"]).unwrap();
    assert!(cli.insecure && !cli.no_close);
    let cli = Cli::try_parse_from(["ws-client", "--no-check", "wss://h/"]).unwrap();
    assert!(cli.insecure);
    let cli = Cli::try_parse_from(["ws-client", "--no-close", "ws://h/"]).unwrap();
    assert!(cli.no_close && !cli.insecure);
    // -t is --text now; --timeout is long-only.
    let cli = Cli::try_parse_from(["ws-client", "-t", "ws://h/", "--timeout", "3s"]).unwrap();
    assert!(cli.text);
    assert_eq!(cli.timeout, Duration::from_secs(3));
}

#[test]
fn ping_timeout_fails_when_no_pong_comes() {
    let (listener, url) = listen();
    let _server = thread::spawn(move || {
        // Answers the handshake, then reads without ever answering a ping.
        let socket = WebSocket::accept(accept_tcp(&listener)).unwrap();
        let (mut stream, _) = socket.into_parts();
        let _ = stream.read_to_end(&mut Vec::new());
    });
    client(&url)
        .args(["--no-close", "--ping-timeout", "300ms"])
        .assert()
        .code(6)
        .stderr("ws-client: no pong from the server within 300ms (--ping-timeout)\n");
}

#[test]
fn verbose_shows_the_request_head_and_what_was_negotiated() {
    let (listener, url) = listen();
    let _server = thread::spawn(move || {
        let stream = accept_tcp(&listener);
        let (socket, _) = WebSocket::accept_with(stream, Config::default(), |request| {
            Ok(AcceptOptions::default().protocol(request.select_protocol(&["chat"])))
        })
        .unwrap();
        echo(socket)
    });
    let assert = client(&url)
        .args(["-v", "-s", "chat", "--no-deflate", "hi"])
        .assert()
        .success()
        .stdout("hi\n");
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(
        stderr.starts_with("> GET / HTTP/1.1\n> Host: 127.0.0.1:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("> Sec-WebSocket-Protocol: chat\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("\n< HTTP/1.1 101 Switching Protocols\n"),
        "{stderr}"
    );
    // The server's own header lines, as it sent them.
    assert!(stderr.contains("\n< Upgrade: websocket\n"), "{stderr}");
    assert!(stderr.contains("\n< Sec-WebSocket-Accept: "), "{stderr}");
    assert!(
        stderr.contains("\n< Sec-WebSocket-Protocol: chat\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("< subprotocol: chat\n< extensions: none\n"),
        "{stderr}"
    );
}

#[test]
fn piped_output_keeps_control_characters_exactly() {
    let (url, _server) = ws_server(|mut socket| {
        socket.recv().unwrap();
        socket.send_text("\x1b[31mred\x07").unwrap();
        close_and_drain(&mut socket, CloseCode::NORMAL, "");
    });
    client(&url)
        .arg("x")
        .assert()
        .success()
        .stdout("\x1b[31mred\x07\n");
}

// ---- URLs as typed ----

#[test]
fn host_and_port_without_a_scheme_connect_with_a_note() {
    let (url, server) = echo_server();
    let typed = url.trim_start_matches("ws://").to_owned();
    client(&typed)
        .arg("hi")
        .assert()
        .success()
        .stdout("hi\n")
        .stderr(format!("ws-client: note: connecting to {url}\n"));
    assert_eq!(server.join().unwrap(), [Message::from("hi")]);
}

#[test]
fn http_url_is_mapped_to_ws_with_a_note() {
    let (url, server) = echo_server();
    let typed = url.replacen("ws://", "http://", 1);
    client(&typed)
        .arg("hi")
        .assert()
        .success()
        .stdout("hi\n")
        .stderr(predicate::str::contains("http:// means ws://"));
    assert_eq!(server.join().unwrap().len(), 1);
}

#[test]
fn tls_server_on_a_ws_url_suggests_wss() {
    // A TLS alert record (what a TLS server answers to plain HTTP), to the
    // upgrade request and to the client's second look.
    let (listener, url) = listen();
    let _server = thread::spawn(move || {
        for _ in 0..2 {
            let mut stream = accept_tcp(&listener);
            read_request_head(&mut stream);
            stream.write_all(b"\x15\x03\x01\x00\x02\x02\x46").unwrap();
        }
    });
    client(&url)
        .arg("hi")
        .assert()
        .code(4)
        .stderr(predicate::str::contains(format!(
            "this looks like a TLS server: use {}",
            url.replacen("ws://", "wss://", 1)
        )));
}

#[test]
fn html_error_page_is_summarised_not_printed() {
    let (url, _server) = raw_server(
        b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 92\r\n\r\n\
<!DOCTYPE HTML>\n<html><head><title>No such room</title></head><body><p>x</p></body></html>\n\n",
    );
    client(&url)
        .arg("hi")
        .assert()
        .code(4)
        .stderr("ws-client: handshake rejected: HTTP/1.1 404 Not Found: No such room\n");
}

/// Answers the upgrade request with a redirect to `location`.
fn redirecting_server(status: &'static str, location: String) -> (String, JoinHandle<()>) {
    let (listener, url) = listen();
    let handle = thread::spawn(move || {
        let mut stream = accept_tcp(&listener);
        read_request_head(&mut stream);
        let response =
            format!("HTTP/1.1 {status}\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n");
        stream.write_all(response.as_bytes()).unwrap();
        let _ = stream.read_to_end(&mut Vec::new());
    });
    (url, handle)
}

#[test]
fn location_flag_follows_redirects() {
    let (target, server) = echo_server();
    let (url, _redirect) = redirecting_server(
        "301 Moved Permanently",
        target.replacen("ws://", "http://", 1),
    );
    client(&url)
        .args(["-L", "hi"])
        .assert()
        .success()
        .stdout("hi\n")
        .stderr(format!("ws-client: redirected to {target}\n"));
    assert_eq!(server.join().unwrap(), [Message::from("hi")]);
}

#[test]
fn redirects_are_not_followed_without_the_flag_and_are_bounded_with_it() {
    let (url, _redirect) = redirecting_server("302 Found", "ws://127.0.0.1:9/".to_owned());
    client(&url)
        .arg("hi")
        .assert()
        .code(4)
        .stderr(predicate::str::ends_with(
            "(Location: ws://127.0.0.1:9/); -L follows redirects\n",
        ));
    let (url, _redirect) = redirecting_server("307 Temporary Redirect", "/elsewhere".to_owned());
    client(&url)
        .args(["-L", "--max-redirects", "0", "hi"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("more than 0 redirects"));
}

// ---- --listen ----

/// Starts `ws-client -l 127.0.0.1:0 ARGS` and reads the URL it listens on
/// from its first line on stderr.
fn listening_client(
    args: &[&str],
) -> (
    std::process::Child,
    String,
    std::io::BufReader<std::process::ChildStderr>,
) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ws-client"))
        .args(["-l", "127.0.0.1:0", "--timeout", "20s"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let url = line
        .trim_end()
        .strip_prefix("ws-client: listening on ")
        .and_then(|rest| rest.strip_suffix(" for one client"))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, url, stderr)
}

/// A blocking client connected to `url`.
fn connect_to(url: &str) -> WebSocket<TcpStream> {
    let request = ws_core::handshake::ClientRequest::new(url).unwrap();
    let stream = TcpStream::connect((request.host(), request.port())).unwrap();
    stream.set_read_timeout(Some(SERVER_LIMIT)).unwrap();
    WebSocket::connect(stream, &request, Config::default())
        .unwrap()
        .0
}

/// Waits for `child` to exit, killing it (and failing the test) after
/// `RUN_LIMIT`.
fn wait_bounded(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + RUN_LIMIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("ws-client did not exit");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` to exit (bounded), returning its status and stdout.
fn finish(mut child: std::process::Child) -> (std::process::ExitStatus, String) {
    let status = wait_bounded(&mut child);
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    (status, stdout)
}

#[test]
fn listen_with_echo_is_a_one_connection_echo_peer() {
    let (child, url, _stderr) = listening_client(&["--echo"]);
    let mut socket = connect_to(&url);
    socket.send_text("ping me back").unwrap();
    let reply = socket.recv().unwrap().unwrap();
    assert_eq!(reply.into_message(), Some(Message::from("ping me back")));
    close_and_drain(&mut socket, CloseCode::NORMAL, "");
    let (status, stdout) = finish(child);
    assert!(status.success(), "{status:?}");
    assert_eq!(stdout, "ping me back\n");
}

#[test]
fn listen_sends_piped_lines_to_the_client_and_prints_its_messages() {
    let (mut child, url, _stderr) = listening_client(&["--no-close"]);
    let mut stdin = child.stdin.take().unwrap();
    let mut socket = connect_to(&url);
    stdin.write_all(b"from the listener\n").unwrap();
    drop(stdin);
    let got = socket.recv().unwrap().unwrap();
    assert_eq!(got.into_message(), Some(Message::from("from the listener")));
    socket.send_text("from the client").unwrap();
    close_and_drain(&mut socket, CloseCode::NORMAL, "");
    let (status, stdout) = finish(child);
    assert!(status.success(), "{status:?}");
    assert_eq!(stdout, "from the client\n");
}

#[test]
fn listen_address_forms() {
    use ws_client::cli::parse_listen;
    assert_eq!(parse_listen("8000").unwrap().to_string(), "127.0.0.1:8000");
    assert_eq!(
        parse_listen("0.0.0.0:80").unwrap().to_string(),
        "0.0.0.0:80"
    );
    assert_eq!(parse_listen("[::1]:9").unwrap().to_string(), "[::1]:9");
    assert_eq!(
        parse_listen("localhost:7").unwrap().to_string(),
        "127.0.0.1:7"
    );
    assert!(parse_listen("nowhere:x").is_err());
}
