//! `ws_core::client` through in-process proxies on 127.0.0.1: HTTP CONNECT
//! (with Basic credentials from the proxy URL, and a 407 without them) and
//! SOCKS5, to an in-process echo server.

// Test helpers may panic: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, copy_bidirectional};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use ws_core::client::{Connector, Error, Proxy};
use ws_core::stream::WebSocket;
use ws_core::{Config, Event};

/// The longest any test waits for anything.
const LIMIT: Duration = Duration::from_secs(30);

/// An echo server for one connection.
async fn echo_server() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut socket = WebSocket::accept(stream).await.unwrap();
        while let Ok(Some(event)) = socket.recv().await {
            if let Some(message) = event.into_message() {
                socket.send(message).await.unwrap();
            }
        }
    });
    (address, task)
}

async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).await.unwrap() == 1 {
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// An HTTP CONNECT proxy for one connection that tunnels to `target`.
/// With `authorization`, a request without that exact
/// `Proxy-Authorization` line gets 407. Returns the request head.
async fn http_proxy(
    target: SocketAddr,
    authorization: Option<&'static str>,
) -> (SocketAddr, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut inbound, _) = listener.accept().await.unwrap();
        let head = read_head(&mut inbound).await;
        if authorization.is_some_and(|line| !head.contains(line)) {
            inbound
                .write_all(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n\
                      Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n",
                )
                .await
                .unwrap();
            return head;
        }
        let mut outbound = TcpStream::connect(target).await.unwrap();
        inbound
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .unwrap();
        let _ = timeout(LIMIT, copy_bidirectional(&mut inbound, &mut outbound)).await;
        head
    });
    (address, task)
}

/// A SOCKS5 proxy (no authentication) for one connection that tunnels to
/// `target`; returns the address type and address bytes it was asked for.
async fn socks5_proxy(target: SocketAddr) -> (SocketAddr, JoinHandle<(u8, Vec<u8>, u16)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut inbound, _) = listener.accept().await.unwrap();
        let mut greeting = [0u8; 2];
        inbound.read_exact(&mut greeting).await.unwrap();
        assert_eq!(greeting[0], 5);
        let mut methods = vec![0u8; usize::from(greeting[1])];
        inbound.read_exact(&mut methods).await.unwrap();
        assert!(methods.contains(&0));
        inbound.write_all(&[5, 0]).await.unwrap();
        let mut request = [0u8; 4];
        inbound.read_exact(&mut request).await.unwrap();
        assert_eq!(&request[..3], &[5, 1, 0]);
        let length = match request[3] {
            1 => 4,
            4 => 16,
            3 => usize::from(inbound.read_u8().await.unwrap()),
            other => panic!("address type {other}"),
        };
        let mut requested = vec![0u8; length];
        inbound.read_exact(&mut requested).await.unwrap();
        let port = inbound.read_u16().await.unwrap();
        let mut outbound = TcpStream::connect(target).await.unwrap();
        inbound
            .write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0])
            .await
            .unwrap();
        let _ = timeout(LIMIT, copy_bidirectional(&mut inbound, &mut outbound)).await;
        (request[3], requested, port)
    });
    (address, task)
}

async fn echo_once(connector: &Connector, url: &str, text: &str) -> ws_core::client::Response {
    let (mut socket, response) = timeout(LIMIT, connector.connect(url))
        .await
        .unwrap()
        .unwrap();
    socket.send_text(text).await.unwrap();
    let reply = timeout(LIMIT, socket.recv()).await.unwrap().unwrap();
    assert_eq!(reply, Some(Event::Text(text.to_owned().into())));
    socket.close(ws_core::CloseCode::NORMAL, "").await.unwrap();
    while timeout(LIMIT, socket.recv())
        .await
        .unwrap()
        .unwrap()
        .is_some()
    {}
    response
}

#[tokio::test]
async fn http_connect_tunnels_with_basic_credentials_from_the_proxy_url() {
    let (target, server) = echo_server().await;
    // "user:pa:ss", the colon of the password percent-encoded in the URL.
    let (proxy_address, proxy_task) = http_proxy(
        target,
        Some("\r\nProxy-Authorization: Basic dXNlcjpwYTpzcw==\r\n"),
    )
    .await;
    let proxy = Proxy::parse(&format!("http://user:pa%3Ass@{proxy_address}")).unwrap();
    let connector = Connector::new().proxy(proxy.clone());
    let response = echo_once(
        &connector,
        &format!("ws://localhost:{}/", target.port()),
        "tunnelled",
    )
    .await;
    assert_eq!(response.proxy(), Some(&proxy));
    assert_eq!(response.peer_addr(), proxy_address);
    let head = proxy_task.await.unwrap();
    assert!(
        head.starts_with(&format!(
            "CONNECT localhost:{0} HTTP/1.1\r\nHost: localhost:{0}\r\n",
            target.port()
        )),
        "{head}"
    );
    server.await.unwrap();
}

#[tokio::test]
async fn a_407_is_a_proxy_refusal_with_its_status() {
    let (proxy_address, proxy_task) =
        http_proxy("127.0.0.1:9".parse().unwrap(), Some("Proxy-Authorization")).await;
    let proxy = Proxy::parse(&format!("http://{proxy_address}")).unwrap();
    let error = Connector::new()
        .proxy(proxy)
        .connect("ws://127.0.0.1:9/")
        .await
        .unwrap_err();
    match &error {
        Error::ProxyRefused {
            status, message, ..
        } => {
            assert_eq!(*status, Some(407));
            assert_eq!(message, "HTTP/1.1 407 Proxy Authentication Required");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        error.to_string(),
        format!("proxy http://{proxy_address} refused: HTTP/1.1 407 Proxy Authentication Required")
    );
    assert!(!proxy_task.await.unwrap().contains("Proxy-Authorization"));
}

#[tokio::test]
async fn socks5h_leaves_the_name_to_the_proxy() {
    let (target, server) = echo_server().await;
    let (proxy_address, proxy_task) = socks5_proxy(target).await;
    let connector =
        Connector::new().proxy(Proxy::parse(&format!("socks5h://{proxy_address}")).unwrap());
    echo_once(
        &connector,
        &format!("ws://localhost:{}/", target.port()),
        "socks",
    )
    .await;
    let (kind, requested, port) = proxy_task.await.unwrap();
    assert_eq!(
        (kind, requested.as_slice(), port),
        (3, &b"localhost"[..], target.port())
    );
    server.await.unwrap();
}

#[tokio::test]
async fn socks5_sends_the_address_it_resolved() {
    let (target, server) = echo_server().await;
    let (proxy_address, proxy_task) = socks5_proxy(target).await;
    let connector = Connector::new()
        .proxy(Proxy::parse(&format!("socks5://{proxy_address}")).unwrap())
        .config(Config::default());
    echo_once(
        &connector,
        &format!("ws://127.0.0.1:{}/", target.port()),
        "socks",
    )
    .await;
    let (kind, requested, port) = proxy_task.await.unwrap();
    assert_eq!(
        (kind, requested.as_slice(), port),
        (1, &[127, 0, 0, 1][..], target.port())
    );
    server.await.unwrap();
}

#[tokio::test]
async fn an_unreachable_proxy_says_so_with_the_address_tried() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = Proxy::parse(&format!("http://{dead}")).unwrap();
    let error = Connector::new()
        .proxy(proxy)
        .connect("ws://127.0.0.1:9/")
        .await
        .unwrap_err();
    match &error {
        Error::ProxyUnreachable { source, .. } => match source.as_ref() {
            Error::Connect { attempts, .. } => assert_eq!(attempts[0].0, dead),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    assert_eq!(
        error.to_string(),
        format!(
            "cannot reach proxy http://{dead}: cannot connect to 127.0.0.1:{}: Connection refused",
            dead.port()
        )
    );
}

#[tokio::test]
async fn no_proxy_ignores_an_explicit_choice_made_before() {
    let (target, server) = echo_server().await;
    let dead = Proxy::parse("http://127.0.0.1:9").unwrap();
    let connector = Connector::new().proxy(dead).no_proxy();
    let response = echo_once(&connector, &format!("ws://{target}/"), "direct").await;
    assert!(response.proxy().is_none());
    server.await.unwrap();
}
