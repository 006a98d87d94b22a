//! The relay of `cargo xtask autobahn --http2`: the suite's fuzzingclient
//! speaks WebSocket over HTTP/1.1 only, so each of its connections is
//! carried over its own extended CONNECT stream (RFC 8441) on one shared,
//! prior-knowledge HTTP/2 connection to ws-server.
//!
//! The relay answers the suite's upgrade itself, with a 101 that mirrors
//! ws-server's 200 (the subprotocol and the permessage-deflate answer; the
//! client's offer goes into the CONNECT unchanged), then copies raw bytes
//! both ways: it never parses or re-frames a WebSocket frame, so the
//! verdicts must be those of the direct run. An end of input on one side
//! becomes the other's (TCP FIN ⇄ `END_STREAM`); a reset or an error on one
//! side drops the other (stream reset ⇄ the socket closed at once).

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use h2::{Ping, Reason, RecvStream, SendStream};
use http::{HeaderMap, Method, Request, Version};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// The largest HTTP/1.1 upgrade request head the relay reads.
const HEAD_LIMIT: usize = 16 * 1024;
/// How long the suite may take to send its upgrade request, and ws-server
/// to answer the CONNECT.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the relay may take to connect to ws-server and get its SETTINGS.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the relay's thread may take to end once told to.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The windows the relay grants ws-server: large enough that section 9's
/// 16 MiB messages are not slowed down by window updates.
const STREAM_WINDOW: u32 = 1024 * 1024;
const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;
/// The relay's answer when the CONNECT could not be made.
const BAD_GATEWAY: &[u8] =
    b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
/// Bytes read from the suite at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Header fields of the suite's request carried into the CONNECT.
const FORWARDED: [&str; 4] = [
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "origin",
];
/// Header fields of ws-server's 200 copied into the 101.
const MIRRORED: [&str; 2] = ["sec-websocket-protocol", "sec-websocket-extensions"];

/// What the relay did, for the run's summary.
#[derive(Debug, Default)]
struct Counters {
    /// WebSockets relayed (CONNECT answered with 200).
    relayed: AtomicUsize,
    /// Upgrades refused (by ws-server or the relay).
    refused: AtomicUsize,
}

/// A running relay; stopped when dropped.
pub struct Relay {
    addr: SocketAddr,
    counters: Arc<Counters>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    /// Connects to ws-server at `upstream` (prior-knowledge HTTP/2, which
    /// must enable extended CONNECT) and listens on a loopback port.
    pub fn start(upstream: SocketAddr) -> Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .context("the relay could not listen on 127.0.0.1")?;
        listener
            .set_nonblocking(true)
            .context("the relay's listener")?;
        let addr = listener.local_addr().context("the relay's address")?;
        let counters = Arc::new(Counters::default());
        let (stop, stopped) = oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let shared = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("h2relay".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = ready_tx.send(Err(anyhow!(error).context("the relay's runtime")));
                        return;
                    }
                };
                runtime.block_on(serve(listener, upstream, shared, ready_tx, stopped));
            })
            .context("could not start the relay's thread")?;
        let relay = Self {
            addr,
            counters,
            stop: Some(stop),
            thread: Some(thread),
        };
        match ready_rx.recv_timeout(START_TIMEOUT + Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(relay),
            Ok(Err(error)) => Err(error),
            Err(_) => bail!("the relay did not connect to ws-server in time"),
        }
    }

    /// `ws://127.0.0.1:PORT`, for the suite.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// What the relay did, one line.
    pub fn summary(&self) -> String {
        format!(
            "{} WebSocket(s) relayed over one HTTP/2 connection, {} upgrade(s) refused",
            self.counters.relayed.load(Ordering::Relaxed),
            self.counters.refused.load(Ordering::Relaxed)
        )
    }

    /// Ends the relay: every stream and the HTTP/2 connection.
    pub fn stop(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let deadline = std::time::Instant::now() + STOP_TIMEOUT;
        while !thread.is_finished() {
            ensure!(
                std::time::Instant::now() < deadline,
                "the relay did not stop within {} s",
                STOP_TIMEOUT.as_secs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        thread
            .join()
            .map_err(|_| anyhow!("the relay's thread panicked"))
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// The relay's thread: the HTTP/2 connection, then one task per accepted
/// connection until told to stop (dropping the runtime ends them all).
async fn serve(
    listener: std::net::TcpListener,
    upstream: SocketAddr,
    counters: Arc<Counters>,
    ready: std::sync::mpsc::Sender<Result<()>>,
    mut stopped: oneshot::Receiver<()>,
) {
    let started = tokio::time::timeout(START_TIMEOUT, connect_upstream(upstream))
        .await
        .map_err(|_| anyhow!("ws-server at {upstream} did not complete the HTTP/2 handshake"))
        .and_then(|connected| connected);
    let listener = started.and_then(|send| {
        TcpListener::from_std(listener)
            .map(|listener| (send, listener))
            .context("the relay's listener")
    });
    let (send, listener) = match listener {
        Ok(started) => {
            let _ = ready.send(Ok(()));
            started
        }
        Err(error) => {
            let _ = ready.send(Err(error));
            return;
        }
    };
    let authority = upstream.to_string();
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => {
                let Ok((socket, _)) = accepted else { continue };
                let send = send.clone();
                let counters = Arc::clone(&counters);
                let authority = authority.clone();
                tokio::spawn(async move {
                    if let Err(error) = relay(socket, send, &authority, &counters).await {
                        eprintln!("xtask autobahn: relay: {error:#}");
                    }
                });
            }
        }
    }
}

/// The HTTP/2 connection to ws-server, once its SETTINGS are known.
async fn connect_upstream(upstream: SocketAddr) -> Result<SendRequest<Bytes>> {
    let tcp = TcpStream::connect(upstream)
        .await
        .with_context(|| format!("the relay could not connect to ws-server at {upstream}"))?;
    let _ = tcp.set_nodelay(true);
    let (send, mut connection) = h2::client::Builder::new()
        .enable_push(false)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .handshake::<_, Bytes>(tcp)
        .await
        .context("the HTTP/2 handshake with ws-server")?;
    let mut ping_pong = connection
        .ping_pong()
        .context("the HTTP/2 connection's pings")?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            eprintln!("xtask autobahn: relay: the HTTP/2 connection to ws-server ended: {error}");
        }
    });
    // The server's SETTINGS come first: once the PING is answered they apply.
    ping_pong
        .ping(Ping::opaque())
        .await
        .context("ws-server did not answer the relay's PING")?;
    ensure!(
        send.is_extended_connect_protocol_enabled(),
        "ws-server at {upstream} does not enable extended CONNECT over HTTP/2"
    );
    Ok(send)
}

/// The suite's upgrade request, as far as the relay needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Upgrade {
    path: String,
    host: Option<String>,
    key: String,
    /// The forwarded fields, in the order received.
    fields: Vec<(String, String)>,
}

/// Parses the head of an upgrade request from `buf`: `None` while
/// incomplete, else the request and the head's length.
fn parse_upgrade(buf: &[u8]) -> Result<Option<(Upgrade, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    let length = match request.parse(buf).context("a malformed HTTP/1.1 request")? {
        httparse::Status::Complete(length) => length,
        httparse::Status::Partial => return Ok(None),
    };
    ensure!(
        request.method == Some("GET"),
        "not a GET: {:?}",
        request.method
    );
    let path = request.path.context("no request target")?.to_owned();
    let (mut host, mut key, mut upgrade) = (None, None, false);
    let mut fields = Vec::new();
    for header in request.headers.iter() {
        let name = header.name.to_ascii_lowercase();
        let value = std::str::from_utf8(header.value)
            .with_context(|| format!("the {name} field is not UTF-8"))?
            .trim()
            .to_owned();
        match name.as_str() {
            "host" => host = Some(value),
            "sec-websocket-key" => key = Some(value),
            "upgrade" => upgrade |= value.eq_ignore_ascii_case("websocket"),
            _ if FORWARDED.contains(&name.as_str()) => fields.push((name, value)),
            _ => {}
        }
    }
    ensure!(upgrade, "not a WebSocket upgrade");
    let key = key.context("no Sec-WebSocket-Key")?;
    Ok(Some((
        Upgrade {
            path,
            host,
            key,
            fields,
        },
        length,
    )))
}

/// The extended CONNECT for `upgrade` (RFC 8441 §4): the client's offer
/// (version, subprotocols, extensions, origin) forwarded unchanged.
fn connect_request(upgrade: &Upgrade, authority: &str) -> Result<Request<()>> {
    let authority = upgrade.host.as_deref().unwrap_or(authority);
    let mut request = Request::builder()
        .method(Method::CONNECT)
        .version(Version::HTTP_2)
        .uri(format!("http://{authority}{}", upgrade.path))
        .extension(h2::ext::Protocol::from_static("websocket"));
    for (name, value) in &upgrade.fields {
        request = request.header(name.as_str(), value.as_str());
    }
    request.body(()).context("the CONNECT request")
}

/// The 101 for the suite: ws-server's answer (subprotocol, extensions)
/// mirrored, with the accept key of the client's own key.
fn switching_protocols(key: &str, answer: &HeaderMap) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n",
        ws_core::low_level::accept_key(key.as_bytes())
    )
    .into_bytes();
    append_fields(&mut head, answer, &MIRRORED);
    head.extend_from_slice(b"\r\n");
    head
}

/// The refusal for the suite when ws-server answered the CONNECT with
/// `status` (its `Sec-WebSocket-Version` kept, as a 426 carries it).
fn refusal(status: http::StatusCode, answer: &HeaderMap) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: 0\r\nConnection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Refused")
    )
    .into_bytes();
    append_fields(&mut head, answer, &["sec-websocket-version"]);
    head.extend_from_slice(b"\r\n");
    head
}

/// Appends every `names` field of `fields` as an HTTP/1.1 header line.
fn append_fields(head: &mut Vec<u8>, fields: &HeaderMap, names: &[&str]) {
    for name in names {
        for value in fields.get_all(*name) {
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
    }
}

/// Reads the suite's request head: the request and any bytes after it.
async fn read_upgrade(socket: &mut TcpStream) -> Result<(Upgrade, Bytes)> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if let Some((upgrade, length)) = parse_upgrade(&buf)? {
            let _ = buf.split_to(length);
            return Ok((upgrade, buf.freeze()));
        }
        ensure!(
            buf.len() < HEAD_LIMIT,
            "the request head is over {HEAD_LIMIT} bytes"
        );
        buf.reserve(1024);
        let read = socket.read_buf(&mut buf).await?;
        ensure!(read > 0, "the connection ended before the request head did");
    }
}

/// Relays one of the suite's connections.
async fn relay(
    mut socket: TcpStream,
    send: SendRequest<Bytes>,
    authority: &str,
    counters: &Counters,
) -> Result<()> {
    let _ = socket.set_nodelay(true);
    let handshake = async {
        let (upgrade, early) = read_upgrade(&mut socket).await?;
        let connect = connect_request(&upgrade, authority)?;
        let mut send = send.ready().await.context("the HTTP/2 connection")?;
        let (response, stream) = send
            .send_request(connect, false)
            .context("sending the CONNECT")?;
        let response = response
            .await
            .context("ws-server's answer to the CONNECT")?;
        anyhow::Ok((upgrade, early, response, stream))
    };
    let outcome = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await;
    let (upgrade, early, response, send_stream) = match outcome {
        Ok(Ok(done)) => done,
        Ok(Err(error)) => {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            let _ = socket.write_all(BAD_GATEWAY).await;
            return Err(error);
        }
        Err(_) => {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            bail!("the handshake took over {} s", HANDSHAKE_TIMEOUT.as_secs());
        }
    };
    let (parts, recv_stream) = response.into_parts();
    if parts.status != http::StatusCode::OK {
        counters.refused.fetch_add(1, Ordering::Relaxed);
        socket
            .write_all(&refusal(parts.status, &parts.headers))
            .await?;
        return Ok(());
    }
    socket
        .write_all(&switching_protocols(&upgrade.key, &parts.headers))
        .await?;
    counters.relayed.fetch_add(1, Ordering::Relaxed);
    let (read, write) = socket.into_split();
    pump(read, write, early, send_stream, recv_stream).await;
    Ok(())
}

/// Copies bytes both ways until both directions ended, or one failed (then
/// the other is dropped at once: the socket closes, the stream is reset).
async fn pump(
    read: OwnedReadHalf,
    write: OwnedWriteHalf,
    early: Bytes,
    send: SendStream<Bytes>,
    recv: RecvStream,
) {
    let up = tcp_to_h2(read, early, send);
    let down = h2_to_tcp(recv, write);
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        let ended_well = tokio::select! {
            ended = &mut up, if !up_done => { up_done = true; ended.is_ok() }
            ended = &mut down, if !down_done => { down_done = true; ended.is_ok() }
        };
        if !ended_well {
            return;
        }
    }
}

/// The suite's bytes onto the stream; its FIN becomes `END_STREAM`, a
/// failed read a reset.
async fn tcp_to_h2(
    mut read: OwnedReadHalf,
    early: Bytes,
    mut send: SendStream<Bytes>,
) -> Result<()> {
    send_all(&mut send, early).await?;
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        buf.reserve(READ_CHUNK);
        match read.read_buf(&mut buf).await {
            Ok(0) => {
                // Fails only when the stream is already over.
                let _ = send.send_data(Bytes::new(), true);
                return Ok(());
            }
            Ok(_) => send_all(&mut send, buf.split().freeze()).await?,
            Err(error) => {
                send.send_reset(Reason::CANCEL);
                return Err(error.into());
            }
        }
    }
}

/// Sends `data` as the peer's flow-control window allows.
async fn send_all(send: &mut SendStream<Bytes>, mut data: Bytes) -> Result<()> {
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let capacity = poll_fn(|cx| send.poll_capacity(cx))
            .await
            .context("the stream ended")?
            .context("the stream was reset")?;
        if capacity > 0 {
            let chunk = data.split_to(capacity.min(data.len()));
            send.send_data(chunk, false)
                .context("the stream was reset")?;
        }
    }
    Ok(())
}

/// The stream's bytes onto the socket, returning the window as they are
/// written; `END_STREAM` becomes FIN, a reset an error (the socket is
/// dropped).
async fn h2_to_tcp(mut recv: RecvStream, mut write: OwnedWriteHalf) -> Result<()> {
    while let Some(data) = recv.data().await {
        let data = data.context("the stream was reset")?;
        write.write_all(&data).await?;
        let _ = recv.flow_control().release_capacity(data.len());
    }
    write.shutdown().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: &[u8] = b"GET /chat?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9001\r\n\
        Upgrade: WebSocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
        Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\
        Origin: http://example.com\r\nUser-Agent: AutobahnTestSuite\r\n\r\n\x81\x80";

    fn upgrade() -> Upgrade {
        let Some((upgrade, length)) = parse_upgrade(REQUEST).unwrap() else {
            panic!("the head is complete");
        };
        assert_eq!(&REQUEST[length..], b"\x81\x80");
        upgrade
    }

    #[test]
    fn an_incomplete_head_asks_for_more() {
        assert!(parse_upgrade(&REQUEST[..40]).unwrap().is_none());
    }

    #[test]
    fn a_request_that_is_not_an_upgrade_is_refused() {
        assert!(parse_upgrade(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").is_err());
        let no_key = b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n";
        assert!(parse_upgrade(no_key).is_err());
        assert!(parse_upgrade(b"POST / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n").is_err());
    }

    #[test]
    fn the_connect_forwards_the_offer_unchanged() {
        let connect = connect_request(&upgrade(), "127.0.0.1:1").unwrap();
        assert_eq!(connect.method(), Method::CONNECT);
        assert_eq!(connect.version(), Version::HTTP_2);
        assert_eq!(connect.uri().to_string(), "http://127.0.0.1:9001/chat?x=1");
        assert_eq!(
            connect.extensions().get::<h2::ext::Protocol>(),
            Some(&h2::ext::Protocol::from_static("websocket"))
        );
        let headers = connect.headers();
        let all = |name: &str| -> Vec<&str> {
            headers
                .get_all(name)
                .iter()
                .map(|value| value.to_str().unwrap())
                .collect()
        };
        assert_eq!(all("sec-websocket-version"), ["13"]);
        assert_eq!(all("sec-websocket-protocol"), ["chat, superchat"]);
        assert_eq!(
            all("sec-websocket-extensions"),
            [
                "permessage-deflate; client_max_window_bits",
                "permessage-deflate; server_no_context_takeover"
            ]
        );
        assert_eq!(all("origin"), ["http://example.com"]);
        // No HTTP/1.1 connection fields, no key, nothing else.
        assert_eq!(headers.len(), 5);
    }

    #[test]
    fn without_host_the_connect_names_ws_server() {
        let mut upgrade = upgrade();
        upgrade.host = None;
        let connect = connect_request(&upgrade, "127.0.0.1:7").unwrap();
        assert_eq!(connect.uri().to_string(), "http://127.0.0.1:7/chat?x=1");
    }

    #[test]
    fn the_101_mirrors_the_answer_of_the_200() {
        let mut answer = HeaderMap::new();
        answer.insert("sec-websocket-protocol", "chat".parse().unwrap());
        answer.insert(
            "sec-websocket-extensions",
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=15"
                .parse()
                .unwrap(),
        );
        answer.insert("server", "ws-server".parse().unwrap());
        let head = String::from_utf8(switching_protocols(&upgrade().key, &answer)).unwrap();
        assert_eq!(
            head,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             sec-websocket-protocol: chat\r\n\
             sec-websocket-extensions: permessage-deflate; server_no_context_takeover; \
             client_max_window_bits=15\r\n\r\n"
        );
    }

    #[test]
    fn a_200_without_answers_gives_a_bare_101() {
        let head =
            String::from_utf8(switching_protocols(&upgrade().key, &HeaderMap::new())).unwrap();
        assert!(!head.contains("sec-websocket-protocol"), "{head}");
        assert!(!head.contains("sec-websocket-extensions"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "{head}");
    }

    #[test]
    fn a_refusal_keeps_the_status_and_the_supported_version() {
        let mut answer = HeaderMap::new();
        answer.insert("sec-websocket-version", "13".parse().unwrap());
        let head = String::from_utf8(refusal(http::StatusCode::UPGRADE_REQUIRED, &answer)).unwrap();
        assert!(
            head.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
            "{head}"
        );
        assert!(head.contains("sec-websocket-version: 13\r\n"), "{head}");
    }
}
