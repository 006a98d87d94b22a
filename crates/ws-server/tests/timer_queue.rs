//! The library's server on a runtime without tokio's time driver, its
//! deadlines in the timer queue (`ws_server::timers::start_queue`). A test
//! file of its own: the queue is the process's, and the other tests pause
//! tokio's clock, which only tokio's timers follow.
#![cfg(target_os = "linux")]
// Test helpers may panic: a panic is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ws_core::Event;
use ws_core::blocking::WebSocket;
use ws_core::handshake::ClientRequest;
use ws_server::{Server, ServerConfig, timers};

/// Runs a server on a runtime with IO only on a thread of its own, until
/// `stop` is sent; returns its address.
fn serve_without_a_time_driver(
    config: ServerConfig,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> (SocketAddr, std::thread::JoinHandle<ws_server::Summary>) {
    let (bound, address) = std::sync::mpsc::channel();
    let serving = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        runtime.block_on(async move {
            timers::start_queue().unwrap();
            let again = timers::start_queue().unwrap_err();
            assert_eq!(again.kind(), ErrorKind::AlreadyExists);
            let server = Server::bind("127.0.0.1:0", config).await.unwrap();
            bound.send(server.local_addr().unwrap()).unwrap();
            server
                .run(async {
                    let _ = stop.await;
                })
                .await
        })
    });
    (address.recv().unwrap(), serving)
}

#[test]
fn every_deadline_of_the_server_runs_on_the_timer_queue() {
    let config = ServerConfig {
        handshake_timeout: Duration::from_millis(200),
        park_after: Some(Duration::from_millis(50)),
        shutdown_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let (address, serving) = serve_without_a_time_driver(config, stopped);
    // Bounds every read below, so a deadline that never fires fails the
    // test instead of hanging it.
    let bound = Some(Duration::from_secs(10));

    // The handshake timeout drops a socket that sends nothing.
    let mut silent = TcpStream::connect(address).unwrap();
    silent.set_read_timeout(bound).unwrap();
    let mut byte = [0u8; 1];
    match silent.read(&mut byte) {
        Ok(0) => {}
        Err(error) if error.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("the silent socket was not dropped: {other:?}"),
    }

    // A connection echoes, parks at its park check once quiet, and echoes
    // again when woken.
    let request = ClientRequest::new(&format!("ws://{address}/")).unwrap();
    let stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(bound).unwrap();
    let (mut client, _) = WebSocket::connect(stream, &request, ws_core::Config::default()).unwrap();
    client.send_text("before parking").unwrap();
    assert_eq!(
        client.recv().unwrap(),
        Some(Event::Text("before parking".into()))
    );
    wait_until_parked(address, 1);
    client.send_text("after parking").unwrap();
    assert_eq!(
        client.recv().unwrap(),
        Some(Event::Text("after parking".into()))
    );

    // Shutdown closes it with 1001 and ends.
    stop.send(()).unwrap();
    let closed = client.recv().unwrap();
    assert!(
        matches!(&closed, Some(Event::Close(Some(frame))) if frame.code.0 == 1001),
        "{closed:?}"
    );
    drop(client);
    let summary = serving.join().unwrap();
    assert_eq!(summary.messages_echoed, 2);
}

/// Waits, up to 10 s, until the server reports `count` parked connections.
fn wait_until_parked(address: SocketAddr, count: u64) {
    let wanted = format!("ws_server_connections_parked {count}\n");
    for _ in 0..500 {
        let mut http = TcpStream::connect(address).unwrap();
        http.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut scrape = String::new();
        http.read_to_string(&mut scrape).unwrap();
        if scrape.contains(&wanted) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the connection never parked");
}
