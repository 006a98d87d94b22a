//! `wss://`: the `ws-client` binary against the real ws-server (in-process,
//! with TLS) and against small rustls servers, with certificates made by
//! the test (rcgen).

// Test helpers may panic: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use assert_cmd::Command;
use predicates::prelude::*;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    date_time_ymd,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use ws_server::{Server, ServerConfig};

/// The longest any client run may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// A test CA in a fresh directory, with the PEM of its certificate written.
struct Ca {
    dir: PathBuf,
    params: CertificateParams,
    key: KeyPair,
    der: CertificateDer<'static>,
    pem: PathBuf,
}

/// A leaf certificate and its key, as DER and as PEM files.
struct Leaf {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_pem: PathBuf,
    key_pem: PathBuf,
}

impl Ca {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ws-client-tls-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("ws-client test CA {test}"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        let pem = dir.join("ca.pem");
        std::fs::write(&pem, certificate.pem()).unwrap();
        Self {
            dir,
            params,
            key,
            der: certificate.der().clone(),
            pem,
        }
    }

    /// A leaf for `names`, valid now unless `expired`.
    fn leaf(&self, file: &str, names: &[&str], expired: bool) -> Leaf {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        if expired {
            params.not_before = date_time_ymd(2001, 1, 1);
            params.not_after = date_time_ymd(2002, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        let certificate = params.signed_by(&key, &issuer).unwrap();
        let cert_pem = self.dir.join(format!("{file}.pem"));
        let key_pem = self.dir.join(format!("{file}.key"));
        std::fs::write(&cert_pem, certificate.pem()).unwrap();
        std::fs::write(&key_pem, key.serialize_pem()).unwrap();
        Leaf {
            chain: vec![certificate.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            cert_pem,
            key_pem,
        }
    }
}

impl Drop for Ca {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The real ws-server with TLS on 127.0.0.1:0, in a thread of its own,
/// shut down when dropped.
struct WssServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl WssServer {
    fn start(leaf: &Leaf) -> Self {
        let tls = ws_server::tls::load_pem_files(&leaf.cert_pem, &leaf.key_pem).unwrap();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let config = ServerConfig {
                    shutdown_timeout: Duration::from_secs(1),
                    ..ServerConfig::default()
                };
                let server = Server::bind("127.0.0.1:0", config)
                    .await
                    .unwrap()
                    .with_tls(tls);
                addr_tx.send(server.local_addr().unwrap()).unwrap();
                server
                    .run(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        let addr = addr_rx.recv_timeout(RUN_LIMIT).unwrap();
        Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn url(&self, host: &str) -> String {
        format!("wss://{host}:{}/", self.addr.port())
    }
}

impl Drop for WssServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The client with a short `--timeout`, no proxy from the environment, and
/// a hard limit on the run.
fn client(url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ws-client"));
    command
        .arg(url)
        .args(["--timeout", "5s", "--no-proxy"])
        .timeout(RUN_LIMIT);
    command
}

#[test]
fn echo_over_wss_with_the_ca_from_cafile_exits_0() {
    let ca = Ca::new("echo");
    let leaf = ca.leaf("server", &["localhost", "127.0.0.1"], false);
    let server = WssServer::start(&leaf);
    for host in ["localhost", "127.0.0.1"] {
        client(&server.url(host))
            .args(["--cafile", ca.pem.to_str().unwrap(), "hello", "wörld"])
            .assert()
            .code(0)
            .stdout("hello\nwörld\n")
            .stderr("");
    }
}

#[test]
fn a_certificate_for_another_name_is_a_handshake_failure_naming_both() {
    let ca = Ca::new("wronghost");
    let leaf = ca.leaf("server", &["example.test"], false);
    let server = WssServer::start(&leaf);
    client(&server.url("127.0.0.1"))
        .args(["--cafile", ca.pem.to_str().unwrap(), "hello"])
        .assert()
        .code(4)
        .stdout("")
        .stderr(
            "ws-client: TLS handshake failed: certificate is not valid for name \"127.0.0.1\" (it is for example.test)\n",
        );
}

#[test]
fn an_untrusted_certificate_is_a_handshake_failure() {
    let ca = Ca::new("untrusted");
    let leaf = ca.leaf("server", &["localhost"], false);
    let server = WssServer::start(&leaf);
    client(&server.url("localhost"))
        .arg("hello")
        .assert()
        .code(4)
        .stderr(predicate::str::starts_with(
            "ws-client: TLS handshake failed: certificate signed by an unknown issuer",
        ));
}

#[test]
fn an_expired_certificate_is_a_handshake_failure() {
    let ca = Ca::new("expired");
    let leaf = ca.leaf("server", &["localhost"], true);
    let server = WssServer::start(&leaf);
    client(&server.url("localhost"))
        .args(["--cafile", ca.pem.to_str().unwrap(), "hello"])
        .assert()
        .code(4)
        .stderr("ws-client: TLS handshake failed: certificate expired\n");
}

#[test]
fn insecure_accepts_an_untrusted_certificate_with_a_warning() {
    let ca = Ca::new("insecure");
    let leaf = ca.leaf("server", &["example.test"], false);
    let server = WssServer::start(&leaf);
    client(&server.url("127.0.0.1"))
        .args(["-k", "hello"])
        .assert()
        .code(0)
        .stdout("hello\n")
        .stderr("ws-client: warning: --insecure: the server's certificate is not verified\n");
    client(&server.url("127.0.0.1"))
        .args(["--insecure", "-q", "hello"])
        .assert()
        .code(0)
        .stdout("hello\n")
        .stderr("");
}

#[test]
fn wss_to_a_plain_ws_port_is_a_handshake_failure_that_says_so() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(RUN_LIMIT)).unwrap();
        let mut hello = [0u8; 512];
        let _ = stream.read(&mut hello);
        // What a plain HTTP server answers to a ClientHello.
        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    });
    client(&format!("wss://127.0.0.1:{port}/"))
        .arg("hello")
        .assert()
        .code(4)
        .stderr(predicate::str::contains(
            "is it a ws:// server, not wss://?",
        ));
    server.join().unwrap();
}

#[test]
fn an_unreadable_cafile_is_exit_1_naming_it() {
    client("wss://127.0.0.1:9/")
        .args(["--cafile", "/nonexistent/ca.pem", "hello"])
        .assert()
        .code(1)
        .stderr("ws-client: cannot read --cafile /nonexistent/ca.pem: No such file or directory\n");
}

/// A rustls server on a thread of its own that demands a client certificate
/// signed by `client_ca`, then echoes one WebSocket connection with ws-core.
fn mutual_tls_server(leaf: &Leaf, client_ca: CertificateDer<'static>) -> (u16, JoinHandle<()>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(client_ca).unwrap();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()
            .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(leaf.chain.clone(), leaf.key.clone_key())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let serve = async {
                let (stream, _) = listener.accept().await.unwrap();
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let mut socket = ws_core::stream::WebSocket::accept(stream).await.unwrap();
                while let Ok(Some(event)) = socket.recv().await {
                    if let Some(message) = event.into_message() {
                        socket.send(message).await.unwrap();
                    }
                }
            };
            let _ = tokio::time::timeout(RUN_LIMIT, serve).await;
        });
    });
    (port, handle)
}

#[test]
fn a_client_certificate_is_presented_when_the_server_demands_one() {
    let ca = Ca::new("mtls");
    let server_leaf = ca.leaf("server", &["localhost"], false);
    let client_leaf = ca.leaf("client", &["client.test"], false);
    let (port, server) = mutual_tls_server(&server_leaf, ca.der.clone());
    client(&format!("wss://localhost:{port}/"))
        .args(["--cafile", ca.pem.to_str().unwrap()])
        .args(["--cert", client_leaf.cert_pem.to_str().unwrap()])
        .args(["--key", client_leaf.key_pem.to_str().unwrap()])
        .arg("with a certificate")
        .assert()
        .code(0)
        .stdout("with a certificate\n");
    server.join().unwrap();
}

#[test]
fn without_the_demanded_client_certificate_the_handshake_fails_with_a_hint() {
    let ca = Ca::new("mtlsmissing");
    let server_leaf = ca.leaf("server", &["localhost"], false);
    let (port, server) = mutual_tls_server(&server_leaf, ca.der.clone());
    // TLS 1.3 clients finish their side before the server checks the
    // certificate, so the refusal may come with the first read instead.
    let output = client(&format!("wss://localhost:{port}/"))
        .args(["--cafile", ca.pem.to_str().unwrap(), "hello"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("--cert and --key"), "{stderr}");
    server.join().unwrap();
}

#[test]
fn wss_goes_through_an_http_connect_proxy_end_to_end() {
    let ca = Ca::new("viaproxy");
    let leaf = ca.leaf("server", &["localhost"], false);
    let server = WssServer::start(&leaf);
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let target = server.addr;
    let relay = thread::spawn(move || {
        let (mut inbound, _) = proxy.accept().unwrap();
        inbound.set_read_timeout(Some(RUN_LIMIT)).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && inbound.read(&mut byte).unwrap() == 1 {
            head.push(byte[0]);
        }
        let outbound = TcpStream::connect(target).unwrap();
        inbound
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .unwrap();
        let (mut up_in, mut up_out) = (inbound.try_clone().unwrap(), outbound.try_clone().unwrap());
        let upstream = thread::spawn(move || {
            let _ = std::io::copy(&mut up_in, &mut up_out);
            let _ = up_out.shutdown(std::net::Shutdown::Write);
        });
        let (mut down_in, mut down_out) = (outbound, inbound);
        let _ = std::io::copy(&mut down_in, &mut down_out);
        let _ = down_out.shutdown(std::net::Shutdown::Write);
        let _ = upstream.join();
        String::from_utf8(head).unwrap()
    });
    client(&format!("wss://localhost:{}/", target.port()))
        .args(["--cafile", ca.pem.to_str().unwrap()])
        .args(["--proxy", &proxy_url, "tunnelled"])
        .assert()
        .code(0)
        .stdout("tunnelled\n");
    let head = relay.join().unwrap();
    assert!(
        head.starts_with(&format!(
            "CONNECT localhost:{0} HTTP/1.1\r\nHost: localhost:{0}\r\n",
            target.port()
        )),
        "{head}"
    );
}

/// What `openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost
/// -addext subjectAltName=DNS:localhost` makes: a self-signed certificate
/// with `CA:TRUE`, written with its key into `dir`.
fn self_signed_ca_true(dir: &std::path::Path) -> Leaf {
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().unwrap();
    let certificate = params.self_signed(&key).unwrap();
    let cert_pem = dir.join("self-signed.pem");
    let key_pem = dir.join("self-signed.key");
    std::fs::write(&cert_pem, certificate.pem()).unwrap();
    std::fs::write(&key_pem, key.serialize_pem()).unwrap();
    Leaf {
        chain: vec![certificate.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        cert_pem,
        key_pem,
    }
}

#[test]
fn a_self_signed_ca_certificate_is_trusted_with_ca_as_wscat_does() {
    // #17 defect 5: this failed with "certificate is a CA certificate, not a
    // server certificate".
    let ca = Ca::new("selfsigned");
    let leaf = self_signed_ca_true(&ca.dir);
    let server = WssServer::start(&leaf);
    for option in ["--ca", "--cafile"] {
        client(&server.url("localhost"))
            .args([option, leaf.cert_pem.to_str().unwrap(), "self-signed"])
            .assert()
            .code(0)
            .stdout("self-signed\n")
            .stderr("");
    }
}

#[test]
fn a_self_signed_ca_certificate_that_is_not_trusted_says_what_to_do() {
    let ca = Ca::new("selfuntrusted");
    let leaf = self_signed_ca_true(&ca.dir);
    let server = WssServer::start(&leaf);
    client(&server.url("localhost"))
        .arg("hello")
        .assert()
        .code(4)
        .stderr(predicate::str::contains("trust the certificate itself"));
}

/// The key of `leaf` as encrypted PKCS#8 (PBES2, PBKDF2-SHA256 and
/// AES-256-CBC, as `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes it).
fn encrypted_key(leaf: &Leaf, dir: &std::path::Path, passphrase: &str) -> PathBuf {
    use pkcs8::pkcs5::pbes2;
    let PrivateKeyDer::Pkcs8(der) = &leaf.key else {
        panic!("rcgen keys are PKCS#8");
    };
    let info = pkcs8::PrivateKeyInfo::try_from(der.secret_pkcs8_der()).unwrap();
    let params = pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, b"saltsalt", &[9u8; 16]).unwrap();
    let pem = info
        .encrypt_with_params(params, passphrase)
        .unwrap()
        .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
        .unwrap();
    let path = dir.join("client-encrypted.key");
    std::fs::write(&path, pem.as_bytes()).unwrap();
    path
}

#[test]
fn an_encrypted_client_key_is_opened_with_the_passphrase() {
    let ca = Ca::new("mtlsencrypted");
    let server_leaf = ca.leaf("server", &["localhost"], false);
    let client_leaf = ca.leaf("client", &["client.test"], false);
    let key = encrypted_key(&client_leaf, &ca.dir, "open sesame");
    let with_key = |command: &mut Command| {
        command
            .args(["--ca", ca.pem.to_str().unwrap()])
            .args(["--cert", client_leaf.cert_pem.to_str().unwrap()])
            .args(["--key", key.to_str().unwrap()]);
    };

    let mut missing = client("wss://localhost:9/");
    with_key(&mut missing);
    missing
        .env_remove("WS_CLIENT_KEY_PASSPHRASE")
        .arg("hello")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "is encrypted: give its passphrase with --passphrase",
        ));
    let mut wrong = client("wss://localhost:9/");
    with_key(&mut wrong);
    wrong
        .args(["--passphrase", "open barley", "hello"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("wrong passphrase"));

    let (port, server) = mutual_tls_server(&server_leaf, ca.der.clone());
    let mut right = client(&format!("wss://localhost:{port}/"));
    with_key(&mut right);
    right
        .env("WS_CLIENT_KEY_PASSPHRASE", "open sesame")
        .arg("encrypted key")
        .assert()
        .code(0)
        .stdout("encrypted key\n");
    server.join().unwrap();
}
