//! `wss://` with `ws_core::client` against in-process rustls servers, with
//! certificates made by the test (rcgen): a custom `ClientConfig`,
//! [`TlsOptions`] trusting a PEM file (a self-signed CA:TRUE certificate
//! included), verification failures, and client certificates whose key is
//! encrypted.

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

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    date_time_ymd,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, RootCertStore};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use ws_core::Event;
use ws_core::client::{Connector, Error, TlsConfigError, TlsOptions, Transport};
use ws_core::stream::WebSocket;

/// The longest any test waits for anything.
const LIMIT: Duration = Duration::from_secs(30);

/// Files of one test in a directory of their own, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("ws-core-client-tls-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A certificate and its key.
struct Identity {
    der: CertificateDer<'static>,
    pem: String,
    key: KeyPair,
}

impl Identity {
    fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }
}

/// A CA that signs leaves.
struct Ca {
    params: CertificateParams,
    identity: Identity,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

impl Ca {
    fn new() -> Self {
        let params = ca_params("ws-core test CA");
        let key = KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        Self {
            params,
            identity: Identity {
                der: certificate.der().clone(),
                pem: certificate.pem(),
                key,
            },
        }
    }

    fn leaf(&self, names: &[&str]) -> Identity {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let params = CertificateParams::new(names).unwrap();
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.params, &self.identity.key);
        let certificate = params.signed_by(&key, &issuer).unwrap();
        Identity {
            der: certificate.der().clone(),
            pem: certificate.pem(),
            key,
        }
    }
}

/// What `openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost
/// -addext subjectAltName=DNS:localhost` makes: a self-signed certificate
/// with `CA:TRUE`, used by the server as its own.
fn self_signed_ca_true(name: &str, expired: bool) -> Identity {
    let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    if expired {
        params.not_before = date_time_ymd(2001, 1, 1);
        params.not_after = date_time_ymd(2002, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let certificate = params.self_signed(&key).unwrap();
    Identity {
        der: certificate.der().clone(),
        pem: certificate.pem(),
        key,
    }
}

/// A rustls server on 127.0.0.1 for one connection, offering ALPN
/// `http/1.1` and, with `client_ca`, demanding a client certificate signed
/// by it; it echoes one WebSocket connection.
async fn wss_server(
    identity: &Identity,
    client_ca: Option<CertificateDer<'static>>,
) -> (u16, JoinHandle<()>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(ca).unwrap();
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(vec![identity.der.clone()], identity.private_key())
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let Ok(Ok(stream)) = timeout(LIMIT, acceptor.accept(stream)).await else {
            return;
        };
        let Ok(mut socket) = WebSocket::accept(stream).await else {
            return;
        };
        while let Ok(Ok(Some(event))) = timeout(LIMIT, socket.recv()).await {
            if let Some(message) = event.into_message() {
                let _ = socket.send(message).await;
            }
        }
    });
    (port, task)
}

async fn echo(socket: &mut WebSocket<Transport>, text: &str) {
    socket.send_text(text).await.unwrap();
    let reply = timeout(LIMIT, socket.recv()).await.unwrap().unwrap();
    assert_eq!(reply, Some(Event::Text(text.to_owned().into())));
}

fn connector(tls: Arc<rustls::ClientConfig>) -> Connector {
    Connector::new().no_proxy().tls_config(tls)
}

fn certificate_error(error: &Error) -> &CertificateError {
    match error.rustls_error() {
        Some(rustls::Error::InvalidCertificate(certificate)) => certificate,
        _ => panic!("not a certificate error: {error:?}"),
    }
}

#[tokio::test]
async fn wss_with_a_client_config_of_our_own() {
    let ca = Ca::new();
    let (port, server) = wss_server(&ca.leaf(&["localhost"]), None).await;
    let mut roots = RootCertStore::empty();
    roots.add(ca.identity.der.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let (mut socket, response) = connector(Arc::new(config))
        .connect(&format!("wss://localhost:{port}/"))
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    let tls = socket.get_ref().tls_connection().unwrap();
    // This configuration offers no ALPN: none is negotiated.
    assert_eq!(tls.alpn_protocol(), None);
    echo(&mut socket, "over TLS").await;
    drop(socket);
    server.await.unwrap();
}

#[tokio::test]
async fn tls_options_trust_a_ca_file_and_offer_http_1_1() {
    let scratch = Scratch::new("cafile");
    let ca = Ca::new();
    let ca_file = scratch.write("ca.pem", &ca.identity.pem);
    let (port, server) = wss_server(&ca.leaf(&["localhost", "127.0.0.1"]), None).await;
    let tls = TlsOptions::new().trust_pem_file(&ca_file).build().unwrap();
    let (mut socket, _) = connector(tls)
        .connect(&format!("wss://127.0.0.1:{port}/"))
        .await
        .unwrap();
    let alpn = socket.get_ref().tls_connection().unwrap().alpn_protocol();
    assert_eq!(alpn, Some(&b"http/1.1"[..]));
    echo(&mut socket, "trusted").await;
    drop(socket);
    server.await.unwrap();
}

#[tokio::test]
async fn a_self_signed_ca_true_certificate_is_trusted_from_its_own_file() {
    let scratch = Scratch::new("selfsigned");
    let identity = self_signed_ca_true("localhost", false);
    let file = scratch.write("cert.pem", &identity.pem);

    // webpki alone refuses it as a server certificate, even as a root:
    // what `--cafile cert.pem` did before.
    let (port, server) = wss_server(&identity, None).await;
    let mut roots = RootCertStore::empty();
    roots.add(identity.der.clone()).unwrap();
    let plain = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let error = connector(Arc::new(plain))
        .connect(&format!("wss://localhost:{port}/"))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("is a CA certificate"), "{error}");
    server.await.unwrap();

    // Trusted through TlsOptions, it is both anchor and end-entity.
    let (port, server) = wss_server(&identity, None).await;
    let tls = TlsOptions::new().trust_pem_file(&file).build().unwrap();
    let (mut socket, _) = connector(tls)
        .connect(&format!("wss://localhost:{port}/"))
        .await
        .unwrap();
    echo(&mut socket, "self-signed").await;
    drop(socket);
    server.await.unwrap();
}

/// Connects to `wss://localhost` whose server shows a self-signed CA:TRUE
/// certificate for `name`, trusted from its file; returns the error.
async fn refused_self_signed(test: &str, name: &str, expired: bool) -> Error {
    let scratch = Scratch::new(test);
    let identity = self_signed_ca_true(name, expired);
    let file = scratch.write("cert.pem", &identity.pem);
    let (port, server) = wss_server(&identity, None).await;
    let tls = TlsOptions::new().trust_pem_file(&file).build().unwrap();
    let error = connector(tls)
        .connect(&format!("wss://localhost:{port}/"))
        .await
        .unwrap_err();
    server.await.unwrap();
    error
}

#[tokio::test]
async fn an_expired_self_signed_ca_certificate_is_refused() {
    let error = refused_self_signed("selfexpired", "localhost", true).await;
    assert!(
        matches!(
            certificate_error(&error),
            CertificateError::Expired | CertificateError::ExpiredContext { .. }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "TLS handshake failed: certificate expired"
    );
}

#[tokio::test]
async fn a_self_signed_ca_certificate_for_another_name_is_refused() {
    let error = refused_self_signed("selfname", "example.test", false).await;
    assert!(
        matches!(
            certificate_error(&error),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_unknown_issuer_is_a_tls_error_with_the_rustls_reason() {
    let ca = Ca::new();
    let (port, server) = wss_server(&ca.leaf(&["localhost"]), None).await;
    // The default: the bundled Mozilla roots, which do not know this CA.
    let error = Connector::new()
        .no_proxy()
        .connect(&format!("wss://localhost:{port}/"))
        .await
        .unwrap_err();
    assert_eq!(certificate_error(&error), &CertificateError::UnknownIssuer);
    assert!(matches!(&error, Error::Tls { host, .. } if host == "localhost"));
    assert_eq!(
        error.to_string(),
        "TLS handshake failed: certificate signed by an unknown issuer"
    );
    server.await.unwrap();
}

#[tokio::test]
async fn accepting_invalid_certificates_connects_to_an_untrusted_server() {
    let ca = Ca::new();
    let (port, server) = wss_server(&ca.leaf(&["example.test"]), None).await;
    let tls = TlsOptions::new()
        .danger_accept_invalid_certificates()
        .build()
        .unwrap();
    let (mut socket, _) = connector(tls)
        .connect(&format!("wss://127.0.0.1:{port}/"))
        .await
        .unwrap();
    echo(&mut socket, "unverified").await;
    drop(socket);
    server.await.unwrap();
}

#[tokio::test]
async fn wss_to_a_plain_server_is_a_tls_error_that_says_so() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut hello = [0u8; 512];
        let _ = stream.read(&mut hello).await;
        let _ = stream
            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await;
    });
    let error = Connector::new()
        .no_proxy()
        .connect(&format!("wss://127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Tls { .. }), "{error:?}");
    assert!(error.to_string().contains("not wss://"), "{error}");
    server.await.unwrap();
}

/// PKCS#8 encrypted with PBES2 (PBKDF2-SHA256, AES-256-CBC), as
/// `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes it.
fn encrypted_pem(identity: &Identity, passphrase: &str) -> String {
    use pkcs8::pkcs5::pbes2;
    let der = identity.key.serialize_der();
    let info = pkcs8::PrivateKeyInfo::try_from(der.as_slice()).unwrap();
    let params = pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, b"saltsalt", &[7u8; 16]).unwrap();
    let encrypted = info.encrypt_with_params(params, passphrase).unwrap();
    encrypted
        .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_client_certificate_with_an_encrypted_key_is_presented() {
    let scratch = Scratch::new("mtls");
    let ca = Ca::new();
    let ca_file = scratch.write("ca.pem", &ca.identity.pem);
    let client = ca.leaf(&["client.test"]);
    let cert_file = scratch.write("client.pem", &client.pem);
    let key_file = scratch.write("client.key", &encrypted_pem(&client, "open sesame"));
    let (port, server) = wss_server(&ca.leaf(&["localhost"]), Some(ca.identity.der.clone())).await;
    let options = TlsOptions::new()
        .trust_pem_file(&ca_file)
        .client_certificate_pem_file(&cert_file)
        .client_key_pem_file(&key_file);

    let missing = options.clone().build().unwrap_err();
    assert!(
        matches!(&missing, TlsConfigError::PassphraseRequired { path } if *path == key_file),
        "{missing:?}"
    );
    let wrong = options
        .clone()
        .key_passphrase("open barley")
        .build()
        .unwrap_err();
    assert!(
        matches!(&wrong, TlsConfigError::Decrypt { reason, .. } if reason == "wrong passphrase"),
        "{wrong:?}"
    );

    let tls = options.key_passphrase("open sesame").build().unwrap();
    let (mut socket, _) = connector(tls)
        .connect(&format!("wss://localhost:{port}/"))
        .await
        .unwrap();
    echo(&mut socket, "with a certificate").await;
    drop(socket);
    server.await.unwrap();
}

#[tokio::test]
async fn without_the_demanded_client_certificate_the_error_is_tls() {
    let scratch = Scratch::new("mtlsmissing");
    let ca = Ca::new();
    let ca_file = scratch.write("ca.pem", &ca.identity.pem);
    let (port, server) = wss_server(&ca.leaf(&["localhost"]), Some(ca.identity.der.clone())).await;
    let tls = TlsOptions::new().trust_pem_file(&ca_file).build().unwrap();
    // With TLS 1.3 the refusal arrives during the WebSocket handshake; it
    // is a TLS error all the same.
    let error = connector(tls)
        .connect(&format!("wss://localhost:{port}/"))
        .await
        .unwrap_err();
    assert!(
        matches!(error.rustls_error(), Some(rustls::Error::AlertReceived(_))),
        "{error:?}"
    );
    server.await.unwrap();
}

#[test]
fn a_key_encrypted_as_openssl_3_req_does_by_default_is_opened() {
    // `openssl req -newkey rsa:2048` without `-nodes`: PBES2 with
    // PBKDF2-SHA256 and DES-EDE3-CBC.
    use pkcs8::pkcs5::pbes2;
    let scratch = Scratch::new("des3");
    let ca = Ca::new();
    let client = ca.leaf(&["client.test"]);
    let der = client.key.serialize_der();
    let params = pbes2::Parameters {
        kdf: pbes2::Pbkdf2Params::hmac_with_sha256(2048, b"saltsalt")
            .unwrap()
            .into(),
        encryption: pbes2::EncryptionScheme::DesEde3Cbc { iv: &[3u8; 8] },
    };
    let pem = pkcs8::PrivateKeyInfo::try_from(der.as_slice())
        .unwrap()
        .encrypt_with_params(params, "s3cret")
        .unwrap()
        .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
        .unwrap();
    let cert = scratch.write("client.pem", &client.pem);
    let key = scratch.write("client.key", &pem);
    let options = TlsOptions::new()
        .client_certificate_pem_file(&cert)
        .client_key_pem_file(&key);
    assert!(options.clone().key_passphrase("s3cret").build().is_ok());
    let wrong = options.key_passphrase("secret").build().unwrap_err();
    assert!(
        matches!(&wrong, TlsConfigError::Decrypt { .. }),
        "{wrong:?}"
    );
}

#[test]
fn a_key_that_does_not_match_its_certificate_is_named() {
    let scratch = Scratch::new("mismatch");
    let ca = Ca::new();
    let one = ca.leaf(&["one.test"]);
    let other = ca.leaf(&["other.test"]);
    let cert = scratch.write("one.pem", &one.pem);
    let key = scratch.write("other.key", &other.key.serialize_pem());
    let error = TlsOptions::new()
        .client_certificate_pem_file(&cert)
        .client_key_pem_file(&key)
        .build()
        .unwrap_err();
    assert!(
        matches!(&error, TlsConfigError::KeyMismatch { certificate, key: k } if *certificate == cert && *k == key),
        "{error:?}"
    );
}
