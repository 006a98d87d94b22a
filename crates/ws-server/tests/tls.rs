//! `wss://`: the real binary with `--tls-cert/--tls-key`, certificates made
//! by the test (rcgen), clients on rustls.

// Test helpers may panic: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use ws_core::blocking::WebSocket;
use ws_core::handshake::ClientRequest;
use ws_core::{Config, Event};

/// Every blocking read and wait gives up after this long, so that a hang
/// fails the test instead of blocking CI.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// A test CA and a leaf it signed, written as PEM files in a fresh directory.
struct Pki {
    dir: PathBuf,
    ca: CertificateDer<'static>,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    /// A CA, and a leaf for `names` (DNS names or IP addresses).
    fn new(test: &str, names: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("ws-server-tls-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "ws-server test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(names)
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, leaf.pem()).unwrap();
        std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
        Self {
            dir,
            ca: ca.der().clone(),
            cert,
            key,
        }
    }

    /// A client configuration that trusts only this CA, offering `alpn`.
    fn client_config(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    fn args(&self) -> Vec<String> {
        vec![
            "--tls-cert".to_owned(),
            self.cert.display().to_string(),
            "--tls-key".to_owned(),
            self.key.display().to_string(),
        ]
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `ws-server`, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    page_url: String,
    _stdout: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts the server on 127.0.0.1:0 and waits for its `wss://` ready line.
    fn start(args: &[String]) -> Self {
        let mut child = server_command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ws-server");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = lines.recv_timeout(IO_TIMEOUT).expect("a ready line");
        let addr = line
            .strip_prefix("listening on wss://")
            .unwrap_or_else(|| panic!("unexpected ready line {line:?}"))
            .parse()
            .unwrap();
        let line = lines.recv_timeout(IO_TIMEOUT).expect("a test page line");
        let page_url = line.strip_prefix("test page: ").unwrap().to_owned();
        Self {
            child,
            addr,
            page_url,
            _stdout: lines,
            stderr,
        }
    }

    /// Waits until the log holds `needle`; returns the log.
    fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            let log = self.stderr.lock().unwrap().clone();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "log never showed {needle:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn tcp(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream
    }

    /// A TLS connection to `name`, handshake completed.
    fn tls(&self, config: Arc<ClientConfig>, name: &str) -> TlsStream {
        let server_name = ServerName::try_from(name.to_owned()).unwrap();
        let connection = ClientConnection::new(config, server_name).unwrap();
        let mut stream = StreamOwned::new(connection, self.tcp());
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .expect("TLS handshake");
        }
        stream
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server_command(args: &[String]) -> Command {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin!("ws-server"));
    // The environment's WS_SERVER_* variables would set options.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("WS_SERVER_") {
            command.env_remove(name);
        }
    }
    command.args(["--listen", "127.0.0.1:0"]).args(args);
    command
}

/// Reads until the server ends the connection (its end of stream, or a
/// reset); fails if the socket's read timeout expires first.
fn read_until_closed(stream: &mut impl Read) -> Vec<u8> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return received,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("the server did not end the connection within {IO_TIMEOUT:?}")
            }
            Err(_) => return received,
        }
    }
}

#[test]
fn wss_echo_works_and_alpn_selects_http_1_1() {
    let pki = Pki::new("echo", &["localhost", "127.0.0.1"]);
    let server = Server::start(&pki.args());
    let stream = server.tls(pki.client_config(&[b"http/1.1"]), "localhost");
    assert_eq!(stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    let url = format!("wss://localhost:{}/", server.addr.port());
    let request = ClientRequest::new(&url).unwrap();
    let (mut client, _) = WebSocket::connect(stream, &request, Config::default()).unwrap();
    client.send_text("över TLS").unwrap();
    assert_eq!(client.recv().unwrap(), Some(Event::Text("över TLS".into())));
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    client.send_binary(&payload).unwrap();
    assert_eq!(client.recv().unwrap(), Some(Event::Binary(payload.into())));
}

#[test]
fn a_client_offering_no_alpn_is_served_too() {
    let pki = Pki::new("noalpn", &["127.0.0.1"]);
    let server = Server::start(&pki.args());
    let stream = server.tls(pki.client_config(&[]), "127.0.0.1");
    assert_eq!(stream.conn.alpn_protocol(), None);
    let request = ClientRequest::new(&format!("wss://{}/", server.addr)).unwrap();
    let (mut client, _) = WebSocket::connect(stream, &request, Config::default()).unwrap();
    client.send_text("hi").unwrap();
    assert_eq!(client.recv().unwrap(), Some(Event::Text("hi".into())));
}

#[test]
fn the_page_and_health_check_are_served_over_https() {
    let pki = Pki::new("https", &["localhost"]);
    let server = Server::start(&pki.args());
    for (path, expected) in [("/healthz", "\r\n\r\nok"), ("/", "location.protocol")] {
        let mut stream = server.tls(pki.client_config(&[b"http/1.1"]), "localhost");
        write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        stream.flush().unwrap();
        let response = String::from_utf8_lossy(&read_until_closed(&mut stream)).into_owned();
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.contains(expected), "{path}: {response}");
    }
}

#[test]
fn plain_http_and_garbage_on_the_tls_port_are_dropped_without_disturbing_others() {
    let pki = Pki::new("garbage", &["localhost"]);
    let server = Server::start(&pki.args());
    // A TLS client connected before the intruders keeps working after them.
    let stream = server.tls(pki.client_config(&[b"http/1.1"]), "localhost");
    let request = ClientRequest::new(&format!("wss://localhost:{}/", server.addr.port())).unwrap();
    let (mut client, _) = WebSocket::connect(stream, &request, Config::default()).unwrap();

    for intruder in [
        &b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"[..],
        b"\x00\xff garbage \x16\x03\x01\x00\x00 more",
    ] {
        let mut tcp = server.tcp();
        tcp.write_all(intruder).unwrap();
        let answer = read_until_closed(&mut tcp);
        // No HTTP answer in clear text: at most a TLS alert record.
        assert!(
            !answer.starts_with(b"HTTP/"),
            "{:?}",
            String::from_utf8_lossy(&answer)
        );
    }

    client.send_text("still here").unwrap();
    assert_eq!(
        client.recv().unwrap(),
        Some(Event::Text("still here".into()))
    );
    let fresh = server.tls(pki.client_config(&[b"http/1.1"]), "localhost");
    let (mut second, _) = WebSocket::connect(fresh, &request, Config::default()).unwrap();
    second.send_text("new").unwrap();
    assert_eq!(second.recv().unwrap(), Some(Event::Text("new".into())));
}

#[test]
fn a_failed_tls_handshake_is_logged_at_info_and_counted() {
    let pki = Pki::new("failed", &["localhost"]);
    let server = Server::start(&pki.args());
    assert_eq!(
        server.page_url,
        format!("https://{}/", server.addr),
        "the test page is served over https"
    );
    let mut tcp = server.tcp();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    read_until_closed(&mut tcp);
    let log = server.wait_for_log("TLS handshake failed");
    let line = log
        .lines()
        .find(|line| line.contains("TLS handshake failed"))
        .unwrap();
    assert!(line.contains(" INFO "), "{line}");
    assert!(line.contains("peer=127.0.0.1:"), "{line}");

    let mut stream = server.tls(pki.client_config(&[b"http/1.1"]), "localhost");
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    stream.flush().unwrap();
    let response = String::from_utf8_lossy(&read_until_closed(&mut stream)).into_owned();
    assert!(
        response.contains("\nws_server_tls_handshake_failures_total 1\n"),
        "{response}"
    );
}

#[test]
fn a_client_that_never_starts_the_tls_handshake_is_dropped_at_the_handshake_timeout() {
    let pki = Pki::new("slow", &["localhost"]);
    let mut args = pki.args();
    args.extend(["--handshake-timeout".to_owned(), "300ms".to_owned()]);
    let server = Server::start(&args);
    let mut silent = server.tcp();
    assert!(read_until_closed(&mut silent).is_empty());
}

fn startup_failure(args: &[String]) -> (Option<i32>, String) {
    let mut child = server_command(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    (status.code(), stderr)
}

fn path_arg(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn a_missing_certificate_file_is_a_startup_error_naming_it() {
    let pki = Pki::new("missingcert", &["localhost"]);
    let absent = pki.dir.join("absent.pem");
    let (code, stderr) = startup_failure(&[
        "--tls-cert".into(),
        path_arg(&absent),
        "--tls-key".into(),
        path_arg(&pki.key),
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        format!(
            "ws-server: cannot read --tls-cert {}: No such file or directory\n",
            absent.display()
        )
    );
}

#[test]
fn a_key_file_holding_garbage_is_a_startup_error_naming_it() {
    let pki = Pki::new("garbagekey", &["localhost"]);
    let garbage = pki.dir.join("garbage.pem");
    std::fs::write(&garbage, "this is not a key\n").unwrap();
    let (code, stderr) = startup_failure(&[
        "--tls-cert".into(),
        path_arg(&pki.cert),
        "--tls-key".into(),
        path_arg(&garbage),
    ]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with(&format!(
            "ws-server: --tls-key {} holds no private key",
            garbage.display()
        )),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn a_certificate_without_its_key_is_a_usage_error() {
    let pki = Pki::new("half", &["localhost"]);
    let (code, stderr) = startup_failure(&["--tls-cert".into(), path_arg(&pki.cert)]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--tls-key"), "{stderr}");
}

#[test]
fn a_tls_client_over_the_connection_limit_reads_503_over_tls() {
    let pki = Pki::new("limit", &["localhost"]);
    let mut args = pki.args();
    args.extend(["--max-connections".to_owned(), "1".to_owned()]);
    let server = Server::start(&args);
    let request = ClientRequest::new(&format!("wss://localhost:{}/", server.addr.port())).unwrap();
    let stream = server.tls(pki.client_config(&[b"http/1.1"]), "localhost");
    let (mut first, _) = WebSocket::connect(stream, &request, Config::default()).unwrap();
    first.send_text("holding the slot").unwrap();
    assert_eq!(
        first.recv().unwrap(),
        Some(Event::Text("holding the slot".into()))
    );

    let mut second = server.tls(pki.client_config(&[b"http/1.1"]), "localhost");
    let response = String::from_utf8_lossy(&read_until_closed(&mut second)).into_owned();
    assert!(
        response.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{response}"
    );
}
