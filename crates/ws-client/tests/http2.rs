//! `--http2` and `--http2=auto` against in-process servers on 127.0.0.1
//! built from ws-core's HTTP/2 server (`ws_core::http2::serve`): echo over
//! h2 with prior knowledge (ws://) and with ALPN (wss://, an rcgen CA given
//! with --cafile), a clear failure (exit 4) against an HTTP/1.1-only
//! server, and auto falling back to HTTP/1.1.

// Test helpers may panic: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use assert_cmd::Command;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::time::timeout;
use ws_core::Config;
use ws_core::http2::{Settings, serve};
use ws_core::stream::WebSocket;

/// The longest any client run may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(30);
/// The longest a server waits for anything.
const LIMIT: Duration = Duration::from_secs(20);

/// Runs an echo server on a thread of its own: HTTP/2 WebSockets (ws-core's
/// server, extended CONNECT enabled) when `h2` is true for plaintext or
/// when ALPN chose `h2`, an HTTP/1.1 upgrade otherwise. Returns the port.
fn spawn_server(tls: Option<Arc<rustls::ServerConfig>>, h2: bool) -> u16 {
    let (ports, port) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            ports.send(listener.local_addr().unwrap().port()).unwrap();
            while let Ok(Ok((tcp, _))) = timeout(LIMIT, listener.accept()).await {
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        Some(config) => {
                            let acceptor = tokio_rustls::TlsAcceptor::from(config);
                            let Ok(Ok(stream)) = timeout(LIMIT, acceptor.accept(tcp)).await else {
                                return;
                            };
                            let alpn_h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                            serve_one(stream, alpn_h2).await;
                        }
                        None => serve_one(tcp, h2).await,
                    }
                });
            }
        });
    });
    port.recv().unwrap()
}

async fn serve_one<S>(io: S, h2: bool)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if h2 {
        let _ = serve(io, Config::default(), Settings::default(), |request| {
            if let Ok(mut socket) = request.accept() {
                tokio::spawn(async move {
                    while let Ok(Ok(Some(event))) = timeout(LIMIT, socket.recv()).await {
                        if let Some(message) = event.into_message() {
                            let _ = socket.send(message).await;
                        }
                    }
                });
            }
        })
        .await;
        return;
    }
    let Ok(Ok(mut socket)) = timeout(LIMIT, WebSocket::accept(io)).await else {
        return;
    };
    while let Ok(Ok(Some(event))) = timeout(LIMIT, socket.recv()).await {
        if let Some(message) = event.into_message() {
            let _ = socket.send(message).await;
        }
    }
}

/// A CA (its PEM in a temporary file, removed on drop) and a server
/// configuration for `localhost` offering `alpn`.
struct Tls {
    ca_file: PathBuf,
    server: Arc<rustls::ServerConfig>,
}

impl Tls {
    fn new(test: &str, alpn: &[&[u8]]) -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "ws-client h2 test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let mut server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
        server.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let ca_file = std::env::temp_dir().join(format!(
            "ws-client-http2-{}-{test}-ca.pem",
            std::process::id()
        ));
        std::fs::write(&ca_file, ca.pem()).unwrap();
        Self {
            ca_file,
            server: Arc::new(server),
        }
    }
}

impl Drop for Tls {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca_file);
    }
}

fn client(url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ws-client"));
    command
        .arg(url)
        .args(["--timeout", "10s", "--no-proxy"])
        .timeout(RUN_LIMIT);
    command
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn http2_over_ws_uses_prior_knowledge_and_echoes() {
    let port = spawn_server(None, true);
    let assert = client(&format!("ws://127.0.0.1:{port}/chat"))
        .args(["--http2", "-v", "hello", "again"])
        .assert()
        .success()
        .stdout("hello\nagain\n");
    let stderr = stderr(assert.get_output());
    assert!(stderr.contains("> :method: CONNECT\n"), "{stderr}");
    assert!(stderr.contains("> :path: /chat\n"), "{stderr}");
    assert!(stderr.contains("\n< HTTP/2 200\n"), "{stderr}");
    assert!(stderr.contains("< over HTTP/2"), "{stderr}");
}

#[test]
fn http2_over_wss_negotiates_h2_with_alpn() {
    let tls = Tls::new("alpn", &[b"h2", b"http/1.1"]);
    let port = spawn_server(Some(Arc::clone(&tls.server)), true);
    let assert = client(&format!("wss://localhost:{port}/"))
        .arg("--cafile")
        .arg(&tls.ca_file)
        .args(["--http2", "-v", "over TLS"])
        .assert()
        .success()
        .stdout("over TLS\n");
    let stderr = stderr(assert.get_output());
    assert!(stderr.contains("\n< HTTP/2 200\n"), "{stderr}");
}

#[test]
fn http2_against_an_http_1_1_only_server_fails_with_exit_4_and_says_why() {
    let port = spawn_server(None, false);
    client(&format!("ws://127.0.0.1:{port}/"))
        .args(["--http2", "hello"])
        .assert()
        .code(4)
        .stdout("")
        .stderr(predicates::str::contains(
            "the server cannot carry WebSockets over HTTP/2",
        ))
        .stderr(predicates::str::contains("--http2=auto"));

    let tls = Tls::new("refused", &[b"http/1.1"]);
    let port = spawn_server(Some(Arc::clone(&tls.server)), false);
    client(&format!("wss://localhost:{port}/"))
        .arg("--cafile")
        .arg(&tls.ca_file)
        .args(["--http2", "hello"])
        .assert()
        .code(4)
        .stderr(predicates::str::contains("\"h2\""));
}

#[test]
fn http2_auto_falls_back_to_http_1_1() {
    let tls = Tls::new("auto", &[b"http/1.1"]);
    let port = spawn_server(Some(Arc::clone(&tls.server)), false);
    let assert = client(&format!("wss://localhost:{port}/"))
        .arg("--cafile")
        .arg(&tls.ca_file)
        .args(["--http2=auto", "-v", "fell back"])
        .assert()
        .success()
        .stdout("fell back\n");
    let stderr = stderr(assert.get_output());
    assert!(
        stderr.contains("\n< HTTP/1.1 101 Switching Protocols\n"),
        "{stderr}"
    );
    assert!(stderr.contains("< over HTTP/1.1"), "{stderr}");
}
