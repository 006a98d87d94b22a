//! Parking (`--park-after`): an idle plaintext connection leaves its task
//! and waits in the server's parking lot; its client sees no difference.
//!
//! Each test waits until the metrics show the connection parked, then does
//! what a client of a connection in its task could do.

// Test helpers may panic: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use common::{
    IO_TIMEOUT, ServerProcess, expect_close, http_exchange, next_event, raw_upgrade, read_response,
    sample, scrape,
};
use ws_core::{CloseCode, Config, Connection, Event, OpCode, Role};

/// Short enough that the tests park at once, long enough that an echo
/// exchange does not.
const PARK_AFTER: &str = "50ms";

fn server(args: &[&str]) -> ServerProcess {
    let mut all = vec!["--park-after", PARK_AFTER, "--log-level", "info"];
    all.extend_from_slice(args);
    ServerProcess::start(&all)
}

/// Waits until a sample of the server's metrics has `value`; the scrape
/// that had it.
///
/// A scrape refused with 503 is tried again: at a connection limit the
/// previous scrape's connection may not have ended yet.
fn wait_for_sample(server: &ServerProcess, name: &str, value: u64) -> String {
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let response = http_exchange(server, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert!(matches!(response.status, 200 | 503), "{}", response.body);
        if response.status == 200 && sample(&response.body, name) == Some(value) {
            return response.body;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never became {value}:\n{}",
            response.body
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_until_parked(server: &ServerProcess, connections: u64) -> String {
    wait_for_sample(server, "ws_server_connections_parked", connections)
}

/// The bytes a client sends for `queue`'s frames (masked, as a client must).
fn client_frames(queue: impl FnOnce(&mut Connection)) -> Vec<u8> {
    let mut connection = Connection::new(Role::Client, Config::default());
    queue(&mut connection);
    connection.take_outbound()
}

/// The next event on a raw stream, without answering pings.
fn raw_next_event(stream: &mut TcpStream, connection: &mut Connection) -> Option<Event> {
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

#[test]
fn a_parked_connection_echoes_as_soon_as_the_client_sends_again() {
    let server = server(&[]);
    let mut client = server.connect();
    client.send_text("before").unwrap();
    assert_eq!(next_event(&mut client), Event::Text("before".into()));
    wait_until_parked(&server, 1);
    client.send_text("after").unwrap();
    assert_eq!(next_event(&mut client), Event::Text("after".into()));
    // It parks again once idle, and wakes again.
    wait_until_parked(&server, 1);
    client.send_binary(&[1, 2, 3]).unwrap();
    assert_eq!(next_event(&mut client), Event::Binary(vec![1, 2, 3].into()));
}

#[test]
fn a_connection_busy_enough_to_hold_its_buffers_still_parks_once_quiet() {
    // Hundreds of messages within the first park checks (10, 20, 40 ms
    // apart) make the connection hold its buffers between messages; the
    // check that finds it quiet must give them back, or it could not park.
    let server = server(&[]);
    let mut client = server.connect();
    for burst in 0..8u8 {
        for _ in 0..200 {
            client.connection_mut().queue_binary(&[burst; 20]).unwrap();
        }
        client.flush().unwrap();
        for _ in 0..200 {
            assert_eq!(
                next_event(&mut client),
                Event::Binary(vec![burst; 20].into())
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let parked = wait_until_parked(&server, 1);
    assert_eq!(
        sample(&parked, "ws_server_messages_received_total"),
        Some(1600)
    );
    client.send_text("after").unwrap();
    assert_eq!(next_event(&mut client), Event::Text("after".into()));
}

#[test]
fn a_connection_quiet_after_its_upgrade_parks_long_before_park_after() {
    // Parking early is what keeps a burst of new connections from holding
    // a task each at once (see `Clock::park_delay`).
    let server = ServerProcess::start(&["--park-after", "60s", "--log-level", "info"]);
    let mut client = server.connect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while sample(&scrape(&server), "ws_server_connections_parked") != Some(1) {
        assert!(
            Instant::now() < deadline,
            "not parked 20 s into a 60 s park_after"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Woken at once, it no longer parks quickly: it waits the whole 60 s.
    client.send_text("busy").unwrap();
    assert_eq!(next_event(&mut client), Event::Text("busy".into()));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        sample(&scrape(&server), "ws_server_connections_parked"),
        Some(0)
    );
}

#[test]
fn a_message_that_arrives_in_pieces_while_parked_is_echoed_whole() {
    let server = server(&[]);
    let mut stream = raw_upgrade(&server);
    let mut connection = Connection::new(Role::Client, Config::default());
    wait_until_parked(&server, 1);

    // One frame, split inside its header and inside its payload: the
    // connection does not park with part of a frame read.
    let frame = client_frames(|c| c.queue_text("in three pieces").unwrap());
    let (first, rest) = frame.split_at(1);
    let (second, third) = rest.split_at(8);
    for piece in [first, second] {
        stream.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(150));
        wait_for_sample(&server, "ws_server_connections_parked", 0);
    }
    stream.write_all(third).unwrap();
    assert_eq!(
        raw_next_event(&mut stream, &mut connection),
        Some(Event::Text("in three pieces".into()))
    );

    // A fragmented message: nor with a message half received.
    wait_until_parked(&server, 1);
    let start = client_frames(|c| c.queue_fragment(OpCode::Text, b"half ", false).unwrap());
    stream.write_all(&start).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    wait_for_sample(&server, "ws_server_connections_parked", 0);
    let end = client_frames(|c| {
        c.queue_fragment(OpCode::Text, b"half ", false).unwrap();
        c.take_outbound();
        c.queue_fragment(OpCode::Continuation, b"and half", true)
            .unwrap();
    });
    stream.write_all(&end).unwrap();
    assert_eq!(
        raw_next_event(&mut stream, &mut connection),
        Some(Event::Text("half and half".into()))
    );
}

#[test]
fn a_parked_connection_is_pinged_then_closed_at_its_idle_timeout() {
    let server = server(&["--idle-timeout", "400ms", "--close-timeout", "300ms"]);
    let mut stream = raw_upgrade(&server);
    let mut connection = Connection::new(Role::Client, Config::default());
    wait_until_parked(&server, 1);
    let ping = raw_next_event(&mut stream, &mut connection);
    assert!(matches!(ping, Some(Event::Ping(_))), "{ping:?}");
    let close = raw_next_event(&mut stream, &mut connection);
    assert!(
        matches!(&close, Some(Event::Close(Some(frame))) if frame.code.0 == 1001 && frame.reason == "idle timeout"),
        "{close:?}"
    );
    let log = server.wait_for_log("connection closed");
    assert!(log.contains("close_code=1001"), "{log}");
    assert!(log.contains("closed_by=\"server\""), "{log}");
}

#[test]
fn a_parked_connection_that_answers_its_idle_pings_stays_open() {
    let server = server(&["--idle-timeout", "200ms"]);
    let mut client = server.connect();
    // The blocking client answers each ping with a pong as it receives it;
    // the connection parks between them.
    for _ in 0..3 {
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
    assert!(!server.stderr().contains("connection closed"));
}

#[cfg(unix)]
#[test]
fn a_parked_connection_gets_1001_at_shutdown() {
    let mut server = server(&[]);
    let mut client = server.connect();
    client.send_text("one").unwrap();
    assert_eq!(next_event(&mut client), Event::Text("one".into()));
    wait_until_parked(&server, 1);
    server.signal("TERM");
    assert_eq!(expect_close(&mut client), Some(1001));
    let status = server.wait_exit();
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(
        server.stdout_line().as_deref(),
        Some("shut down: served 1 connection (http=1.1: 1, http=2: 0), echoed 1 message")
    );
    let log = server.stderr();
    assert!(log.contains("messages_in=1"), "{log}");
    assert!(log.contains("close_code=1001"), "{log}");
    assert!(log.contains("clean=true"), "{log}");
}

#[test]
fn a_client_that_closes_while_parked_is_noticed_and_reported() {
    let server = server(&[]);

    // With a close frame.
    let mut client = server.connect();
    client.send_text("bye").unwrap();
    assert_eq!(next_event(&mut client), Event::Text("bye".into()));
    wait_until_parked(&server, 1);
    client.close(CloseCode::NORMAL, "done").unwrap();
    assert_eq!(expect_close(&mut client), Some(1000));
    let log = server.wait_for_log("connection closed");
    assert!(log.contains("messages_in=1"), "{log}");
    assert!(log.contains("closed_by=\"client\""), "{log}");
    wait_for_sample(
        &server,
        "ws_server_closes_total{closed_by=\"client\",code=\"1000\"}",
        1,
    );

    // TCP ends (FIN) without a close frame.
    let stream = raw_upgrade(&server);
    wait_until_parked(&server, 1);
    stream.shutdown(Shutdown::Write).unwrap();
    wait_for_sample(
        &server,
        "ws_server_closes_total{closed_by=\"transport\",code=\"1006\"}",
        1,
    );

    // TCP is reset: closing with the echo unread makes the kernel send RST.
    let mut stream = raw_upgrade(&server);
    stream
        .write_all(&client_frames(|c| c.queue_text("unread").unwrap()))
        .unwrap();
    wait_for_sample(&server, "ws_server_messages_sent_total", 2);
    wait_until_parked(&server, 1);
    drop(stream);
    wait_for_sample(
        &server,
        "ws_server_closes_total{closed_by=\"transport\",code=\"1006\"}",
        2,
    );
    wait_for_sample(&server, "ws_server_connections_parked", 0);
    wait_for_sample(&server, "ws_server_connections_open", 0);
}

#[test]
fn parked_connections_count_as_open_and_against_the_limit() {
    let server = server(&["--max-connections", "3"]);
    let _clients: Vec<_> = (0..2).map(|_| server.connect()).collect();
    let text = wait_until_parked(&server, 2);
    assert_eq!(sample(&text, "ws_server_connections_open"), Some(2));
    assert_eq!(
        sample(&text, "ws_server_connections_by_http_open{http=\"1.1\"}"),
        Some(2)
    );
    // The scrape's own connection is the third.
    assert_eq!(sample(&text, "ws_server_tcp_connections_open"), Some(3));

    // A third WebSocket fills the limit (once the scrape's connection has
    // ended); a fourth connection gets 503.
    let request = ws_core::handshake::ClientRequest::new(&server.url()).unwrap();
    let deadline = Instant::now() + IO_TIMEOUT;
    let _third = loop {
        match ws_core::blocking::WebSocket::connect(server.tcp(), &request, Config::default()) {
            Ok((client, _)) => break client,
            Err(error) => assert!(Instant::now() < deadline, "{error}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut refused = server.tcp();
    refused
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut refused).status, 503);
}

#[test]
fn with_park_after_off_no_connection_parks() {
    let server = ServerProcess::start(&["--park-after", "off"]);
    let mut client = server.connect();
    std::thread::sleep(Duration::from_millis(300));
    let text = scrape(&server);
    assert_eq!(sample(&text, "ws_server_connections_parked"), Some(0));
    assert_eq!(sample(&text, "ws_server_connections_open"), Some(1));
    client.send_text("in its task").unwrap();
    assert_eq!(next_event(&mut client), Event::Text("in its task".into()));
}
