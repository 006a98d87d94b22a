//! Limits and timeouts: what a hostile or broken client can cost the server.

// Test helpers may panic: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{
    IO_TIMEOUT, ServerProcess, expect_close, http_exchange, next_event, raw_upgrade, read_response,
};
use ws_core::{Config, Connection, Event, OpCode, Role};

/// Reads from a raw client stream into a client-side `Connection` that never
/// writes anything back (no pong, no close reply), until an event arrives.
fn silent_next_event(stream: &mut TcpStream, connection: &mut Connection) -> Option<Event> {
    let mut buf = [0u8; 1024];
    loop {
        if let Some(event) = connection.next_event().unwrap() {
            return Some(event);
        }
        match stream.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => connection.receive(&buf[..n]),
            Err(error) if error.kind() == ErrorKind::ConnectionReset => return None,
            Err(error) => panic!("read failed: {error}"),
        }
    }
}

/// Whether the server has closed `stream` (EOF or reset) within the I/O timeout.
fn is_closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(error) if error.kind() == ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn message_of_exactly_the_limit_is_accepted() {
    let server = ServerProcess::start(&["--max-message-size", "1KiB"]);
    let mut client = server.connect();
    client.send_binary(&[7u8; 1024]).unwrap();
    assert_eq!(
        next_event(&mut client),
        Event::Binary(vec![7u8; 1024].into())
    );
}

#[test]
fn message_over_the_limit_is_closed_with_1009() {
    let server = ServerProcess::start(&["--max-message-size", "1KiB"]);
    let mut client = server.connect();
    client.send_binary(&[7u8; 1025]).unwrap();
    assert_eq!(expect_close(&mut client), Some(1009));
}

#[test]
fn fragmented_message_over_the_limit_is_closed_with_1009() {
    let server = ServerProcess::start(&["--max-message-size", "1KiB"]);
    let mut client = server.connect();
    let connection = client.connection_mut();
    connection
        .queue_fragment(OpCode::Text, &[b'a'; 600], false)
        .unwrap();
    connection
        .queue_fragment(OpCode::Continuation, &[b'a'; 600], true)
        .unwrap();
    client.flush().unwrap();
    assert_eq!(expect_close(&mut client), Some(1009));
}

#[test]
fn frame_over_the_frame_limit_is_closed_with_1009() {
    let server = ServerProcess::start(&["--max-frame-size", "256", "--max-message-size", "4KiB"]);
    let mut client = server.connect();
    // Fragments within the frame limit make a message the server accepts...
    let connection = client.connection_mut();
    for (opcode, fin) in [(OpCode::Binary, false), (OpCode::Continuation, true)] {
        connection.queue_fragment(opcode, &[1u8; 256], fin).unwrap();
    }
    client.flush().unwrap();
    assert_eq!(
        next_event(&mut client),
        Event::Binary(vec![1u8; 512].into())
    );
    // ...but one frame over it is refused.
    client.send_binary(&[1u8; 257]).unwrap();
    assert_eq!(expect_close(&mut client), Some(1009));
}

#[test]
fn invalid_utf8_is_closed_with_1007() {
    let server = ServerProcess::start(&[]);
    let mut stream = raw_upgrade(&server);
    // A masked (all-zero key) final text frame holding the byte 0xff, which
    // the blocking client would refuse to send.
    stream.write_all(&[0x81, 0x81, 0, 0, 0, 0, 0xff]).unwrap();
    let mut connection = Connection::new(Role::Client, Config::default());
    let close = silent_next_event(&mut stream, &mut connection);
    assert!(
        matches!(&close, Some(Event::Close(Some(frame))) if frame.code.0 == 1007),
        "{close:?}"
    );
}

#[test]
fn protocol_violation_closes_with_1002_and_spares_other_connections() {
    let server = ServerProcess::start(&[]);
    let mut bystander = server.connect();
    let mut offender = raw_upgrade(&server);
    // An unmasked text frame: clients must mask (RFC 6455 §5.1).
    offender.write_all(&[0x81, 0x02, b'h', b'i']).unwrap();
    let mut connection = Connection::new(Role::Client, Config::default());
    let close = silent_next_event(&mut offender, &mut connection);
    assert!(
        matches!(&close, Some(Event::Close(Some(frame))) if frame.code.0 == 1002),
        "{close:?}"
    );
    assert!(is_closed_by_server(&mut offender));
    server.wait_for_log("unmasked frame");

    bystander.send_text("unaffected").unwrap();
    assert_eq!(next_event(&mut bystander), Event::Text("unaffected".into()));
}

#[test]
fn connection_past_the_limit_gets_503_until_a_slot_frees() {
    let server = ServerProcess::start(&["--max-connections", "2"]);
    let first = server.connect();
    let mut second = server.connect();
    let request = common::upgrade_request_with("Host", "Host: 127.0.0.1\r\n");
    let refused = http_exchange(&server, &request);
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("Connection"), Some("close"));

    // The open connections still work.
    second.send_text("still here").unwrap();
    assert_eq!(next_event(&mut second), Event::Text("still here".into()));

    // Closing one frees its slot (once the server has seen the close).
    drop(first);
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let mut stream = server.tcp();
        stream.write_all(request.as_bytes()).unwrap();
        let head = common::read_head(&mut stream);
        if head.starts_with("HTTP/1.1 101 ") {
            break;
        }
        assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
        assert!(Instant::now() < deadline, "slot never freed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn silent_socket_is_dropped_after_the_handshake_timeout() {
    let server = ServerProcess::start(&["--handshake-timeout", "300ms"]);
    let mut silent = server.tcp();
    let mut partial = server.tcp();
    // Half a request head is no better than none.
    partial.write_all(b"GET / HTTP/1.1\r\nHost: loc").unwrap();
    assert!(is_closed_by_server(&mut silent));
    assert!(is_closed_by_server(&mut partial));
    server.wait_for_log("handshake timed out");
}

#[test]
fn handshake_timeout_does_not_cut_a_complete_handshake() {
    let server = ServerProcess::start(&["--handshake-timeout", "300ms"]);
    let mut client = server.connect();
    std::thread::sleep(Duration::from_millis(600));
    client.send_text("after the handshake timeout").unwrap();
    assert_eq!(
        next_event(&mut client),
        Event::Text("after the handshake timeout".into())
    );
}

#[test]
fn idle_connection_is_pinged_then_closed_with_1001_without_a_pong() {
    let server = ServerProcess::start(&["--idle-timeout", "200ms", "--close-timeout", "300ms"]);
    let mut stream = raw_upgrade(&server);
    let mut connection = Connection::new(Role::Client, Config::default());
    let ping = silent_next_event(&mut stream, &mut connection);
    assert!(matches!(ping, Some(Event::Ping(_))), "{ping:?}");
    let close = silent_next_event(&mut stream, &mut connection);
    assert!(
        matches!(&close, Some(Event::Close(Some(frame))) if frame.code.0 == 1001 && frame.reason == "idle timeout"),
        "{close:?}"
    );
    // The close is never answered: the server gives up after --close-timeout
    // (300 ms), well before the default of 5 s would let this read time out.
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    assert!(is_closed_by_server(&mut stream));
}

#[test]
fn idle_connection_that_answers_pings_stays_open() {
    let server = ServerProcess::start(&["--idle-timeout", "150ms"]);
    let mut client = server.connect();
    // The blocking client answers each ping with a pong as it receives it.
    for _ in 0..4 {
        assert!(matches!(next_event(&mut client), Event::Ping(_)));
    }
    client.send_text("still open").unwrap();
    loop {
        match next_event(&mut client) {
            Event::Ping(_) => {}
            event => {
                assert_eq!(event, Event::Text("still open".into()));
                break;
            }
        }
    }
}

#[test]
fn plain_http_over_the_limit_is_also_refused_with_503() {
    let server = ServerProcess::start(&["--max-connections", "1"]);
    let _only = server.connect();
    let mut stream = server.tcp();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut stream).status, 503);
}

/// Running out of file descriptors makes `accept` fail; the server must log,
/// back off and recover, not spin or exit.
#[cfg(target_os = "linux")]
#[test]
fn accept_errors_back_off_and_the_server_recovers() {
    let mut command = std::process::Command::new("sh");
    command.args([
        "-c",
        "ulimit -n 24 && exec \"$0\" --listen 127.0.0.1:0 --threads 1",
        assert_cmd::cargo::cargo_bin!("ws-server").to_str().unwrap(),
    ]);
    let mut server = ServerProcess::spawn(command);
    // More connections than the server has descriptors: the kernel completes
    // them into the backlog, and the server's accept fails with EMFILE.
    let mut flood: Vec<TcpStream> = Vec::new();
    for _ in 0..40 {
        match TcpStream::connect(server.addr) {
            Ok(stream) => flood.push(stream),
            Err(_) => break,
        }
    }
    let log = server.wait_for_log("accept failed");
    std::thread::sleep(Duration::from_millis(500));
    assert!(server.is_running(), "server exited:\n{log}");
    let failures = server.stderr().matches("accept failed").count();
    // With backoff (10 ms doubling to 1 s) this is a handful; a busy loop
    // would log thousands of lines in the same time.
    assert!(
        failures < 50,
        "{failures} accept failures logged: no backoff?"
    );
    drop(flood);
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut client = loop {
        let attempt = TcpStream::connect(server.addr).ok().and_then(|stream| {
            stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            let request = ws_core::handshake::ClientRequest::new(&server.url()).ok()?;
            ws_core::blocking::WebSocket::connect(stream, &request, Config::default()).ok()
        });
        if let Some((client, _)) = attempt {
            break client;
        }
        assert!(
            Instant::now() < deadline,
            "server never recovered:\n{}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    client.send_text("recovered").unwrap();
    assert_eq!(next_event(&mut client), Event::Text("recovered".into()));
}
