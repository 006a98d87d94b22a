//! WebSockets over HTTP/2 (RFC 8441): the real binary, spoken to with
//! ws-core's HTTP/2 client over plaintext (prior knowledge) and over TLS
//! (ALPN `h2`), plain requests with the h2 crate, and hostile peers with raw
//! HTTP/2 frames.

// Test helpers may panic: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{IO_TIMEOUT, ServerProcess, sample};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use ws_core::deflate::DeflateConfig;
use ws_core::handshake::{ClientRequest, HandshakeError};
use ws_core::http2::{Client, Http2WebSocket, PREFACE, Settings};
use ws_core::{Config, Error, Event, Message};

/// A client configuration offering permessage-deflate.
fn deflate() -> Config {
    Config::default().deflate(Some(DeflateConfig::default()))
}

/// An HTTP/2 client over `io`, and the task driving its connection (it ends
/// when the connection does).
async fn h2_client<S>(io: S) -> (Client, JoinHandle<Result<(), Error>>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (client, connection) = timeout(IO_TIMEOUT, Client::handshake(io, Settings::default()))
        .await
        .expect("the HTTP/2 handshake in time")
        .expect("an HTTP/2 handshake");
    (client, tokio::spawn(connection))
}

/// An HTTP/2 client with prior knowledge over plain TCP.
async fn plain_client(server: &ServerProcess) -> (Client, JoinHandle<Result<(), Error>>) {
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    h2_client(tcp).await
}

/// A WebSocket opened on `client`, with `config`.
async fn open(client: &Client, config: Config) -> Http2WebSocket {
    let request = ClientRequest::from_parts(false, "localhost", 80, "/echo").unwrap();
    let (socket, _) = timeout(IO_TIMEOUT, client.connect(&request, config))
        .await
        .expect("the extended CONNECT answered in time")
        .expect("a WebSocket stream");
    socket
}

/// Sends `message` and expects it back unchanged.
async fn round_trip(socket: &mut Http2WebSocket, message: Message) {
    let expected = match &message {
        Message::Text(text) => Event::Text(text.clone()),
        Message::Binary(bytes) => Event::Binary(bytes.clone()),
        other => panic!("not a data message: {other:?}"),
    };
    timeout(IO_TIMEOUT, socket.send(message))
        .await
        .expect("sent in time")
        .unwrap();
    let echoed = timeout(IO_TIMEOUT, socket.recv())
        .await
        .expect("echoed in time")
        .unwrap();
    assert_eq!(echoed, Some(expected));
}

/// Text, a 1 MiB binary and a compressible text on each of 10 WebSockets
/// opened at once on one connection, each offering permessage-deflate;
/// returns them, still open.
async fn ten_websockets_echo(client: &Client) -> Vec<Http2WebSocket> {
    let mut sockets = Vec::new();
    for _ in 0..10 {
        let request = ClientRequest::from_parts(false, "localhost", 80, "/echo").unwrap();
        let (socket, negotiated) = client.connect(&request, deflate()).await.unwrap();
        let extensions = negotiated.extensions.expect("deflate negotiated");
        assert!(extensions.starts_with("permessage-deflate"), "{extensions}");
        sockets.push(socket);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (index, mut socket) in sockets.into_iter().enumerate() {
        tasks.spawn(async move {
            round_trip(&mut socket, Message::Text(format!("hello {index}").into())).await;
            let big: Vec<u8> = (0..1 << 20).map(|i| ((i + index) % 251) as u8).collect();
            round_trip(&mut socket, Message::Binary(Bytes::from(big))).await;
            let text = format!("squeeze {index} ").repeat(5_000);
            round_trip(&mut socket, Message::Text(text.into())).await;
            socket
        });
    }
    let mut open = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let mut socket = joined.unwrap();
        // Still open after the others' traffic.
        round_trip(&mut socket, Message::Text("still open".into())).await;
        open.push(socket);
    }
    open
}

/// A plain `GET path` over HTTP/2 on `io`: the status, headers and body.
async fn h2_get<S>(io: S, authority: &str, path: &str) -> (u16, http::HeaderMap, String)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (send, connection) = h2::client::handshake(io).await.unwrap();
    tokio::spawn(connection);
    let mut send = send.ready().await.unwrap();
    let request = http::Request::get(format!("{authority}{path}"))
        .body(())
        .unwrap();
    let (response, _) = send.send_request(request, true).unwrap();
    let response = timeout(IO_TIMEOUT, response).await.unwrap().unwrap();
    let (parts, mut body) = response.into_parts();
    let mut bytes = Vec::new();
    while let Some(chunk) = timeout(IO_TIMEOUT, body.data()).await.unwrap() {
        let chunk = chunk.unwrap();
        body.flow_control().release_capacity(chunk.len()).unwrap();
        bytes.extend_from_slice(&chunk);
    }
    (
        parts.status.as_u16(),
        parts.headers,
        String::from_utf8(bytes).unwrap(),
    )
}

/// Runs a blocking wait (on the server's log or exit) off the runtime.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work).await.unwrap()
}

/// The 503 refusal of a stream, or a panic.
fn refused_status(result: Result<(Http2WebSocket, ws_core::handshake::Negotiated), Error>) -> u16 {
    match result {
        Err(Error::Handshake(error @ HandshakeError::ConnectRejected(_))) => {
            error.rejection().unwrap().status
        }
        Err(other) => panic!("refused with {other:?}"),
        Ok(_) => panic!("accepted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prior_knowledge_carries_ten_websockets_on_one_connection() {
    let server = Arc::new(ServerProcess::start(&[]));
    let (client, _connection) = plain_client(&server).await;
    assert!(client.extended_connect_enabled());
    assert_eq!(client.max_concurrent_streams(), 100);
    let _open = ten_websockets_echo(&client).await;

    let log = {
        let server = Arc::clone(&server);
        blocking(move || server.wait_for_log("http=2")).await
    };
    let opened = log
        .lines()
        .find(|line| line.contains("connection opened"))
        .unwrap();
    assert!(opened.contains("http=2"), "{opened}");
    assert!(opened.contains("stream="), "{opened}");
    assert!(
        opened.contains("extensions=\"permessage-deflate\""),
        "{opened}"
    );

    let addr = server.addr;
    let authority = format!("http://{addr}");
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (status, headers, body) = h2_get(tcp, &authority, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    assert_eq!(headers["x-websockets-open-http2"], "10");
    assert_eq!(headers["x-websockets-total-http2"], "10");
    assert_eq!(headers["x-websockets-open-http1"], "0");
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (status, headers, body) = h2_get(tcp, &authority, "/").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(body, ws_server::http::PAGE);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (status, _, metrics) = h2_get(tcp, &authority, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        sample(&metrics, "ws_server_connections_by_http_total{http=\"2\"}"),
        Some(10)
    );
    assert_eq!(
        sample(&metrics, "ws_server_connections_by_http_open{http=\"1.1\"}"),
        Some(0)
    );
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (status, _, _) = h2_get(tcp, &authority, "/nowhere").await;
    assert_eq!(status, 404);

    // HTTP/1.1 on the same port is untouched.
    let mut http1 = blocking({
        let server = Arc::clone(&server);
        move || server.connect()
    })
    .await;
    http1.send_text("over HTTP/1.1").unwrap();
    assert_eq!(
        http1.recv().unwrap(),
        Some(Event::Text("over HTTP/1.1".into()))
    );
    let log = blocking({
        let server = Arc::clone(&server);
        move || server.wait_for_log("http=1.1")
    })
    .await;
    let opened = log
        .lines()
        .find(|line| line.contains("connection opened") && line.contains("http=1.1"))
        .unwrap();
    assert!(!opened.contains("stream="), "{opened}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origin_policy_and_subprotocols_apply_to_http2_streams() {
    let server = ServerProcess::start(&[
        "--allowed-origin",
        "https://good.example",
        "--protocol",
        "chat",
    ]);
    let (client, _connection) = plain_client(&server).await;
    let request = ClientRequest::from_parts(false, "localhost", 80, "/")
        .unwrap()
        .origin("https://evil.example")
        .protocol("superchat")
        .protocol("chat");
    let refused = client.connect(&request, Config::default()).await;
    assert_eq!(refused_status(refused), 403);
    let request = request.origin("https://good.example");
    let (mut socket, negotiated) = client.connect(&request, Config::default()).await.unwrap();
    assert_eq!(negotiated.protocol.as_deref(), Some("chat"));
    round_trip(&mut socket, Message::Text("allowed".into())).await;
}

/// A test CA and a leaf for `localhost` it signed, as PEM files.
struct Pki {
    dir: PathBuf,
    ca: CertificateDer<'static>,
}

impl Pki {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ws-server-h2-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "ws-server h2 test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).unwrap();
        Self {
            dir,
            ca: ca.der().clone(),
        }
    }

    fn args(&self) -> [String; 4] {
        [
            "--tls-cert".to_owned(),
            self.dir.join("cert.pem").display().to_string(),
            "--tls-key".to_owned(),
            self.dir.join("key.pem").display().to_string(),
        ]
    }

    /// A TLS connection to `server` offering `alpn`, handshake done.
    async fn connect(
        &self,
        server: &ServerProcess,
        alpn: &[&[u8]],
    ) -> tokio_rustls::client::TlsStream<TcpStream> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        timeout(IO_TIMEOUT, connector.connect(name, tcp))
            .await
            .unwrap()
            .unwrap()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_alpn_h2_serves_websockets_the_page_and_healthz() {
    let pki = Pki::new("alpn");
    let server = ServerProcess::start(&pki.args().each_ref().map(String::as_str));
    let tls = pki.connect(&server, &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (client, _connection) = h2_client(tls).await;
    assert!(client.extended_connect_enabled());
    let _open = ten_websockets_echo(&client).await;

    let authority = "https://localhost";
    let tls = pki.connect(&server, &[b"h2"]).await;
    let (status, headers, body) = h2_get(tls, authority, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    assert_eq!(headers["x-websockets-open-http2"], "10");
    let tls = pki.connect(&server, &[b"h2"]).await;
    let (status, _, body) = h2_get(tls, authority, "/").await;
    assert_eq!(status, 200);
    assert!(body.contains("location.protocol"));

    // A client offering only http/1.1 gets it, and upgrades as before.
    let tls = pki.connect(&server, &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let request = ClientRequest::new(&format!("wss://localhost:{}/", server.addr.port())).unwrap();
    let (mut socket, _) = ws_core::stream::WebSocket::connect(tls, &request, Config::default())
        .await
        .unwrap();
    socket.send_text("over TLS and HTTP/1.1").await.unwrap();
    assert_eq!(
        socket.recv().await.unwrap(),
        Some(Event::Text("over TLS and HTTP/1.1".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_h2_connection_past_the_limit_reads_503_on_its_stream() {
    let pki = Pki::new("limit");
    let mut args = pki.args().to_vec();
    args.extend(["--max-connections".to_owned(), "1".to_owned()]);
    let server = ServerProcess::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (client, _connection) = h2_client(pki.connect(&server, &[b"h2"]).await).await;
    let mut holder = open(&client, Config::default()).await;
    round_trip(&mut holder, Message::Text("holding the slot".into())).await;

    let (late, _connection) = h2_client(pki.connect(&server, &[b"h2"]).await).await;
    let request = ClientRequest::from_parts(true, "localhost", 443, "/").unwrap();
    assert_eq!(
        refused_status(late.connect(&request, Config::default()).await),
        503
    );
    round_trip(&mut holder, Message::Text("still holding".into())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_off_offers_no_h2_and_takes_the_preface_for_a_bad_request() {
    let pki = Pki::new("off");
    let mut args = pki.args().to_vec();
    args.extend(["--http2".to_owned(), "off".to_owned()]);
    let tls_server = ServerProcess::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let tls = pki.connect(&tls_server, &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));

    let server = ServerProcess::start(&["--http2", "off"]);
    let response = blocking(move || {
        let mut tcp = server.tcp();
        tcp.write_all(PREFACE).unwrap();
        let response = common::read_response(&mut tcp);
        (response, server)
    })
    .await
    .0;
    assert_eq!(response.status, 400, "{response:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_stream_with_1001_then_goes_away() {
    let server = Arc::new(ServerProcess::start(&[]));
    let (client, connection) = plain_client(&server).await;
    let mut sockets = Vec::new();
    for index in 0..3 {
        let mut socket = open(&client, Config::default()).await;
        round_trip(&mut socket, Message::Text(format!("{index}").into())).await;
        sockets.push(socket);
    }
    drop(client);
    server.signal("TERM");
    for mut socket in sockets {
        let event = timeout(IO_TIMEOUT, socket.recv()).await.unwrap().unwrap();
        match event {
            Some(Event::Close(Some(frame))) => assert_eq!(frame.code.0, 1001),
            other => panic!("expected close 1001, got {other:?}"),
        }
        // The closing handshake completes: the stream ends in order.
        assert_eq!(
            timeout(IO_TIMEOUT, socket.recv()).await.unwrap().unwrap(),
            None
        );
    }
    // GOAWAY, then the connection ends.
    timeout(IO_TIMEOUT, connection)
        .await
        .expect("the connection ends after GOAWAY")
        .unwrap()
        .unwrap();
    let server = Arc::into_inner(server).unwrap();
    let (status, summary) = blocking(move || {
        let mut server = server;
        let status = server.wait_exit();
        let mut summary = String::new();
        while let Some(line) = server.stdout_line() {
            summary = line;
        }
        (status, summary)
    })
    .await;
    assert!(status.success());
    assert_eq!(
        summary,
        "shut down: served 3 connections (http=1.1: 0, http=2: 3), echoed 3 messages"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_past_max_connections_get_503_on_that_stream_alone() {
    let server = Arc::new(ServerProcess::start(&[
        "--max-connections",
        "3",
        "--max-streams-per-connection",
        "8",
    ]));
    let (client, _connection) = plain_client(&server).await;
    assert_eq!(client.max_concurrent_streams(), 8);
    let mut sockets = Vec::new();
    for _ in 0..3 {
        sockets.push(open(&client, Config::default()).await);
    }
    let request = ClientRequest::from_parts(false, "localhost", 80, "/").unwrap();
    let refused = client.connect(&request, Config::default()).await;
    assert_eq!(refused_status(refused), 503);
    // An HTTP/1.1 connection is over the limit too.
    let response = blocking({
        let server = Arc::clone(&server);
        move || {
            common::http_exchange(
                &server,
                &common::upgrade_request_with("Host", "Host: x\r\n"),
            )
        }
    })
    .await;
    assert_eq!(response.status, 503);
    // The streams already open go on; once one ends, a new one fits.
    for socket in &mut sockets {
        round_trip(socket, Message::Text("still here".into())).await;
    }
    let mut first = sockets.remove(0);
    first
        .close(ws_core::CloseCode::NORMAL, "done")
        .await
        .unwrap();
    while timeout(IO_TIMEOUT, first.recv())
        .await
        .unwrap()
        .unwrap()
        .is_some()
    {}
    drop(first);
    let mut fresh = None;
    for _ in 0..100 {
        // The server releases the slot when the session has ended, just
        // after the close it sent.
        match client.connect(&request, Config::default()).await {
            Ok((socket, _)) => {
                fresh = Some(socket);
                break;
            }
            Err(error) => assert_eq!(refused_status(Err(error)), 503),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut fresh = fresh.expect("a stream fits once one has ended");
    round_trip(&mut fresh, Message::Text("fits".into())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_with_streams_that_never_finish_is_sent_away_and_dropped() {
    let server = ServerProcess::start(&[
        "--handshake-timeout",
        "300ms",
        "--close-timeout",
        "300ms",
        "--max-streams-per-connection",
        "4",
    ]);
    // No stream at all: GOAWAY at the handshake timeout, and the end.
    let (client, connection) = plain_client(&server).await;
    timeout(IO_TIMEOUT, connection)
        .await
        .expect("an HTTP/2 connection without streams is ended")
        .unwrap()
        .unwrap();
    drop(client);

    // Streams opened with a request whose body never comes, up to the
    // limit: each is answered, and the connection still ends.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (send, connection) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(connection);
    let mut send = send.ready().await.unwrap();
    let mut bodies = Vec::new();
    for _ in 0..4 {
        send = send.ready().await.unwrap();
        let request = http::Request::post(format!("http://{}/", server.addr))
            .body(())
            .unwrap();
        let (response, body) = send.send_request(request, false).unwrap();
        let response = timeout(IO_TIMEOUT, response).await.unwrap().unwrap();
        assert_eq!(response.status(), 405);
        assert_eq!(send.current_max_send_streams(), 4);
        bodies.push(body);
    }
    let ended = timeout(IO_TIMEOUT, connection)
        .await
        .expect("a connection whose streams never finish is dropped");
    drop((ended, bodies));

    // A partial preface and silence: the handshake timeout, as over HTTP/1.1.
    let mut tcp = server.tcp();
    tcp.write_all(&PREFACE[..10]).unwrap();
    let mut rest = Vec::new();
    // The end of the stream, before the read timeout.
    let read = tcp.read_to_end(&mut rest);
    assert!(read.is_ok(), "{read:?}");
    assert!(rest.is_empty(), "{rest:?}");
}

/// The server's resident memory, in KiB.
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// An HTTP/2 frame: a 9-byte header and the payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_and_ping_floods_stay_bounded_and_others_are_served() {
    let server = Arc::new(ServerProcess::start(&[]));
    // Another client, connected before the floods, keeps echoing.
    let (client, _connection) = plain_client(&server).await;
    let mut bystander = open(&client, Config::default()).await;
    round_trip(&mut bystander, Message::Text("before".into())).await;
    let before = resident_kib(server.pid());

    // Each flood: SETTINGS and PINGs (each owed an ACK) written as fast as
    // the server takes them, never reading the ACKs; 64 MiB at most.
    let mut floods = Vec::new();
    for kind in [0x4u8, 0x6] {
        let server = Arc::clone(&server);
        floods.push(std::thread::spawn(move || {
            let mut tcp = server.tcp();
            tcp.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut opening = PREFACE.to_vec();
            opening.extend(frame(0x4, 0, 0, &[]));
            tcp.write_all(&opening).unwrap();
            let one = match kind {
                // SETTINGS_INITIAL_WINDOW_SIZE = 65535, again and again.
                0x4 => frame(0x4, 0, 0, &[0, 4, 0, 0, 0xff, 0xff]),
                _ => frame(0x6, 0, 0, b"floodpng"),
            };
            let batch = one.repeat(64 * 1024 / one.len());
            let mut written = 0usize;
            while written < 64 << 20 {
                match tcp.write_all(&batch) {
                    Ok(()) => written += batch.len(),
                    // The server stopped reading (its ACKs are not read):
                    // the flood is held back by TCP, not buffered.
                    Err(_) => break,
                }
            }
            written
        }));
    }
    let mut total = 0;
    for flood in floods {
        let written = blocking(move || flood.join().unwrap()).await;
        // Valid frames, taken until the unread ACKs filled the socket.
        assert!(written > 64 * 1024, "{written}");
        assert!(written < 64 << 20, "the server read a {written}-byte flood");
        total += written;
    }

    // Others are still served, and the floods cost little memory.
    round_trip(&mut bystander, Message::Text("during".into())).await;
    let mut fresh = open(&plain_client(&server).await.0, Config::default()).await;
    round_trip(&mut fresh, Message::Text("new".into())).await;
    let after = resident_kib(server.pid());
    assert!(
        after < before + 32 * 1024,
        "resident memory grew from {before} KiB to {after} KiB after {total} bytes of floods"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_never_reads_its_echoes_is_paused_and_dropped_alone() {
    let server = Arc::new(ServerProcess::start(&[
        "--max-backlog",
        "64KiB",
        "--close-timeout",
        "1s",
    ]));
    let (client, _connection) = plain_client(&server).await;
    let mut reader = open(&client, Config::default()).await;
    // A client's blocked send reads ahead up to its frame limit (so that
    // two peers writing at once cannot deadlock): a small limit keeps the
    // hog from reading much of anything.
    let small = Config::default()
        .max_frame_size(64 * 1024)
        .max_message_size(64 * 1024);
    let mut hog = open(&client, small).await;
    // The hog sends and never reads: the server's echoes fill its stream
    // window, the backlog passes the cap, and the server stops reading it.
    let hogging = tokio::spawn(async move {
        let chunk = Bytes::from(vec![1u8; 32 * 1024]);
        let mut sent = 0usize;
        while sent < 64 << 20 {
            if hog.send(Message::Binary(chunk.clone())).await.is_err() {
                return (sent, true);
            }
            sent += chunk.len();
        }
        (sent, false)
    });
    // Meanwhile the other stream on the same connection echoes.
    for index in 0..50 {
        round_trip(&mut reader, Message::Text(format!("{index}").into())).await;
    }
    let log = blocking({
        let server = Arc::clone(&server);
        move || server.wait_for_log("close_code=1006")
    })
    .await;
    assert!(
        log.contains("client read nothing while the server had data for it; dropped")
            || log.contains("client does not read its echoes; dropped"),
        "{log}"
    );
    // What the server took in from the hog is bounded by the stream's
    // window, the backlog cap and one read-ahead, not by what it sent.
    let closed = log
        .lines()
        .find(|line| line.contains("connection closed") && line.contains("close_code=1006"))
        .unwrap();
    assert!(closed.contains("http=2"), "{closed}");
    let bytes_in: u64 = closed
        .split_whitespace()
        .find_map(|field| field.strip_prefix("bytes_in="))
        .and_then(|value| value.parse().ok())
        .unwrap();
    assert!(bytes_in < 2 << 20, "{closed}");
    let (sent, failed) = timeout(IO_TIMEOUT, hogging).await.unwrap().unwrap();
    assert!(failed, "the hog's stream ended after {sent} bytes");
    // The connection and the other stream go on.
    round_trip(&mut reader, Message::Text("after".into())).await;
    let mut fresh = open(&client, Config::default()).await;
    round_trip(&mut fresh, Message::Text("fresh".into())).await;
}
