//! The `ws-client` binary through in-process proxies (HTTP CONNECT and
//! SOCKS5) to an in-process ws-core echo server, all on loopback.

// Test helpers may panic: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use assert_cmd::Command;
use ws_core::blocking::WebSocket;

/// The longest any client run may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(30);
/// The longest a server or proxy waits for the client.
const SERVER_LIMIT: Duration = Duration::from_secs(20);

/// Every variable the client reads to choose a proxy.
const PROXY_VARIABLES: [&str; 10] = [
    "ws_proxy",
    "WS_PROXY",
    "wss_proxy",
    "WSS_PROXY",
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
];

/// The client with a short `--timeout`, a proxy-free environment (the
/// test's own variables come on top), and a hard limit on the run.
fn client(url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ws-client"));
    for name in PROXY_VARIABLES.iter().chain(&["no_proxy", "NO_PROXY"]) {
        command.env_remove(name);
    }
    command
        .arg(url)
        .args(["--timeout", "5s"])
        .timeout(RUN_LIMIT);
    command
}

fn accept(listener: &TcpListener) -> TcpStream {
    let (stream, _) = listener.accept().unwrap();
    stream.set_read_timeout(Some(SERVER_LIMIT)).unwrap();
    stream.set_write_timeout(Some(SERVER_LIMIT)).unwrap();
    stream
}

/// A ws-core echo server for one connection on 127.0.0.1.
fn echo_server() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let mut socket = WebSocket::accept(accept(&listener)).unwrap();
        while let Ok(Some(event)) = socket.recv() {
            if let Some(message) = event.into_message() {
                socket.send(message).unwrap();
            }
        }
    });
    (addr, handle)
}

/// A port on which nothing listens.
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Copies bytes both ways until both sides have ended.
fn relay(client: TcpStream, server: TcpStream) {
    let (mut client_in, mut server_out) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let upstream = thread::spawn(move || {
        let _ = std::io::copy(&mut client_in, &mut server_out);
        let _ = server_out.shutdown(Shutdown::Write);
    });
    let (mut server_in, mut client_out) = (server, client);
    let _ = std::io::copy(&mut server_in, &mut client_out);
    let _ = client_out.shutdown(Shutdown::Write);
    let _ = upstream.join();
}

fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// An HTTP CONNECT proxy for one connection that tunnels to `target`
/// (whatever the request names, which the test checks in the returned
/// head). With `credentials`, a request without the matching
/// `Proxy-Authorization: Basic` gets 407.
fn http_proxy(target: SocketAddr, credentials: Option<&str>) -> (String, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let expected = credentials.map(|credentials| {
        use base64::Engine as _;
        format!(
            "\r\nProxy-Authorization: Basic {}\r\n",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
    });
    let handle = thread::spawn(move || {
        let mut inbound = accept(&listener);
        let head = read_head(&mut inbound);
        if expected.as_ref().is_some_and(|line| !head.contains(line)) {
            inbound
                .write_all(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n\
                      Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n",
                )
                .unwrap();
            let _ = inbound.shutdown(Shutdown::Write);
            let _ = inbound.read_to_end(&mut Vec::new());
            return head;
        }
        let outbound = TcpStream::connect(target).unwrap();
        inbound
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .unwrap();
        relay(inbound, outbound);
        head
    });
    (url, handle)
}

/// What a SOCKS5 client asked for: its address type and the address.
#[derive(Debug, PartialEq, Eq)]
enum Requested {
    Ipv4(String),
    Ipv6(String),
    Domain(String),
}

/// A SOCKS5 proxy for one connection that tunnels to `target`, requiring
/// RFC 1929 `credentials` (user, password) if given.
fn socks5_proxy(
    target: SocketAddr,
    credentials: Option<(&'static str, &'static str)>,
) -> (SocketAddr, JoinHandle<Option<(Requested, u16)>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let mut inbound = accept(&listener);
        let mut header = [0u8; 2];
        inbound.read_exact(&mut header).unwrap();
        assert_eq!(header[0], 5, "SOCKS version");
        let mut methods = vec![0u8; usize::from(header[1])];
        inbound.read_exact(&mut methods).unwrap();
        if let Some((user, password)) = credentials {
            assert!(
                methods.contains(&2),
                "user/password not offered: {methods:?}"
            );
            inbound.write_all(&[5, 2]).unwrap();
            let mut version_and_len = [0u8; 2];
            inbound.read_exact(&mut version_and_len).unwrap();
            let mut got_user = vec![0u8; usize::from(version_and_len[1])];
            inbound.read_exact(&mut got_user).unwrap();
            let mut len = [0u8; 1];
            inbound.read_exact(&mut len).unwrap();
            let mut got_password = vec![0u8; usize::from(len[0])];
            inbound.read_exact(&mut got_password).unwrap();
            if got_user != user.as_bytes() || got_password != password.as_bytes() {
                inbound.write_all(&[1, 1]).unwrap();
                return None;
            }
            inbound.write_all(&[1, 0]).unwrap();
        } else {
            assert!(methods.contains(&0), "no-auth not offered: {methods:?}");
            inbound.write_all(&[5, 0]).unwrap();
        }
        let mut request = [0u8; 4];
        inbound.read_exact(&mut request).unwrap();
        assert_eq!(&request[..3], &[5, 1, 0], "a CONNECT request");
        let requested = match request[3] {
            1 => {
                let mut ip = [0u8; 4];
                inbound.read_exact(&mut ip).unwrap();
                Requested::Ipv4(std::net::Ipv4Addr::from(ip).to_string())
            }
            4 => {
                let mut ip = [0u8; 16];
                inbound.read_exact(&mut ip).unwrap();
                Requested::Ipv6(std::net::Ipv6Addr::from(ip).to_string())
            }
            3 => {
                let mut len = [0u8; 1];
                inbound.read_exact(&mut len).unwrap();
                let mut name = vec![0u8; usize::from(len[0])];
                inbound.read_exact(&mut name).unwrap();
                Requested::Domain(String::from_utf8(name).unwrap())
            }
            other => panic!("address type {other}"),
        };
        let mut port = [0u8; 2];
        inbound.read_exact(&mut port).unwrap();
        let outbound = TcpStream::connect(target).unwrap();
        inbound
            .write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0])
            .unwrap();
        relay(inbound, outbound);
        Some((requested, u16::from_be_bytes(port)))
    });
    (addr, handle)
}

#[test]
fn http_connect_proxy_tunnels_a_ws_connection() {
    let (target, server) = echo_server();
    let (proxy, seen) = http_proxy(target, None);
    client(&format!("ws://{target}/"))
        .args(["--proxy", &proxy, "through the tunnel"])
        .assert()
        .code(0)
        .stdout("through the tunnel\n");
    let head = seen.join().unwrap();
    assert_eq!(
        head,
        format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n")
    );
    server.join().unwrap();
}

#[test]
fn http_connect_proxy_gets_basic_credentials_from_the_url() {
    let (target, server) = echo_server();
    let (proxy, seen) = http_proxy(target, Some("user:pa:ss"));
    let proxy = proxy.replace("http://", "http://user:pa%3Ass@");
    client(&format!("ws://{target}/"))
        .args(["--proxy", &proxy, "authorised"])
        .assert()
        .code(0)
        .stdout("authorised\n");
    let head = seen.join().unwrap();
    assert!(
        head.contains("\r\nProxy-Authorization: Basic dXNlcjpwYTpzcw==\r\n"),
        "{head}"
    );
    server.join().unwrap();
}

#[test]
fn a_proxy_refusal_reports_its_status_line_with_exit_3() {
    let (proxy, seen) = http_proxy("127.0.0.1:9".parse().unwrap(), Some("user:secret"));
    client("ws://127.0.0.1:9/")
        .args(["--proxy", &proxy, "hello"])
        .assert()
        .code(3)
        .stdout("")
        .stderr("ws-client: proxy refused: HTTP/1.1 407 Proxy Authentication Required\n");
    assert!(!seen.join().unwrap().contains("Proxy-Authorization"));
}

#[test]
fn an_unreachable_proxy_is_a_connection_failure() {
    let port = dead_port();
    client("ws://127.0.0.1:9/")
        .args(["--proxy", &format!("http://127.0.0.1:{port}"), "hello"])
        .assert()
        .code(3)
        .stderr(format!(
            "ws-client: cannot connect to proxy http://127.0.0.1:{port}: Connection refused\n"
        ));
}

#[test]
fn socks5_resolves_the_name_itself_and_sends_an_address() {
    let (target, server) = echo_server();
    let (proxy, seen) = socks5_proxy(target, None);
    client(&format!("ws://localhost:{}/", target.port()))
        .args(["--proxy", &format!("socks5://{proxy}"), "socks"])
        .assert()
        .code(0)
        .stdout("socks\n");
    let (requested, port) = seen.join().unwrap().unwrap();
    assert!(
        requested == Requested::Ipv4("127.0.0.1".into())
            || requested == Requested::Ipv6("::1".into()),
        "{requested:?}"
    );
    assert_eq!(port, target.port());
    server.join().unwrap();
}

#[test]
fn socks5h_leaves_the_name_to_the_proxy() {
    let (target, server) = echo_server();
    let (proxy, seen) = socks5_proxy(target, None);
    client(&format!("ws://localhost:{}/", target.port()))
        .args(["--proxy", &format!("socks5h://{proxy}"), "remote dns"])
        .assert()
        .code(0)
        .stdout("remote dns\n");
    assert_eq!(
        seen.join().unwrap(),
        Some((Requested::Domain("localhost".into()), target.port()))
    );
    server.join().unwrap();
}

#[test]
fn socks5_authenticates_with_the_url_credentials() {
    let (target, server) = echo_server();
    let (proxy, seen) = socks5_proxy(target, Some(("me", "s3cret")));
    client(&format!("ws://{target}/"))
        .args(["--proxy", &format!("socks5://me:s3cret@{proxy}"), "hi"])
        .assert()
        .code(0)
        .stdout("hi\n");
    assert_eq!(
        seen.join().unwrap(),
        Some((Requested::Ipv4("127.0.0.1".into()), target.port()))
    );
    server.join().unwrap();
}

#[test]
fn socks5_wrong_credentials_are_a_refusal_with_exit_3() {
    let (proxy, seen) = socks5_proxy("127.0.0.1:9".parse().unwrap(), Some(("me", "right")));
    client("ws://127.0.0.1:9/")
        .args(["--proxy", &format!("socks5://me:wrong@{proxy}"), "hi"])
        .assert()
        .code(3)
        .stderr("ws-client: proxy refused: the SOCKS5 proxy rejected the user name and password\n");
    assert_eq!(seen.join().unwrap(), None);
}

#[test]
fn http_proxy_from_the_environment_is_used_for_ws() {
    let (target, server) = echo_server();
    let (proxy, seen) = http_proxy(target, None);
    client(&format!("ws://{target}/"))
        .env("http_proxy", &proxy)
        .arg("from env")
        .assert()
        .code(0)
        .stdout("from env\n");
    assert!(seen.join().unwrap().starts_with("CONNECT "));
    server.join().unwrap();
}

#[test]
fn no_proxy_and_the_no_proxy_flag_connect_directly() {
    let dead = format!("http://127.0.0.1:{}", dead_port());
    let (target, server) = echo_server();
    client(&format!("ws://{target}/"))
        .env("http_proxy", &dead)
        .env("no_proxy", "localhost,127.0.0.0/8")
        .arg("direct")
        .assert()
        .code(0)
        .stdout("direct\n");
    server.join().unwrap();
    let (target, server) = echo_server();
    client(&format!("ws://{target}/"))
        .env("all_proxy", &dead)
        .args(["--no-proxy", "direct again"])
        .assert()
        .code(0)
        .stdout("direct again\n");
    server.join().unwrap();
}

#[test]
fn a_malformed_environment_proxy_is_a_usage_error_naming_the_variable() {
    client("ws://127.0.0.1:9/")
        .env("ws_proxy", "ftp://proxy.test")
        .arg("hello")
        .assert()
        .code(2)
        .stderr(
            "ws-client: invalid proxy in ws_proxy: \"ftp://proxy.test\": unsupported proxy scheme \"ftp\"; use http://, socks5:// or socks5h://\n",
        );
}
