//! `ws_core::client` with `Http2Mode`: WebSockets over HTTP/2 (RFC 8441)
//! against in-process servers on 127.0.0.1: plaintext with prior
//! knowledge, TLS with ALPN (an rcgen CA), and the ways a server falls
//! short (ALPN without `h2`, SETTINGS without extended CONNECT, a server
//! that speaks only HTTP/1.1), typed with `On` and fallen back from with
//! `Auto`.

// Test helpers may panic: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::time::timeout;
use ws_core::client::{Connector, Error, Http2Mode, HttpVersion, NoHttp2, Response, Transport};
use ws_core::http2::{Settings, serve};
use ws_core::stream::WebSocket;
use ws_core::{Config, Event};

/// The longest any test waits for anything.
const LIMIT: Duration = Duration::from_secs(20);

/// What a server does with a connection that speaks HTTP/2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum H2 {
    /// Serves WebSockets (ws-core's server: extended CONNECT enabled).
    WebSockets,
    /// An HTTP/2 server without `SETTINGS_ENABLE_CONNECT_PROTOCOL`.
    NoExtendedConnect,
}

/// A server on 127.0.0.1 for any number of connections, each echoing
/// WebSockets: over HTTP/2 when ALPN chose `h2` (TLS) or `plain_h2` says so
/// (plaintext), over HTTP/1.1 otherwise. Returns the port and the count of
/// connections accepted.
async fn server(
    tls: Option<(Arc<rustls::ServerConfig>, H2)>,
    plain_h2: Option<H2>,
) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some((config, h2)) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(config);
                        let Ok(Ok(stream)) = timeout(LIMIT, acceptor.accept(tcp)).await else {
                            return;
                        };
                        let alpn_h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                        serve_one(stream, alpn_h2.then_some(h2)).await;
                    }
                    None => serve_one(tcp, plain_h2).await,
                }
            });
        }
    });
    (port, accepted)
}

async fn serve_one<S>(io: S, h2: Option<H2>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match h2 {
        Some(H2::WebSockets) => {
            let _ = serve(io, Config::default(), Settings::default(), |request| {
                if let Ok(socket) = request.accept() {
                    tokio::spawn(echo_h2(socket));
                }
            })
            .await;
        }
        Some(H2::NoExtendedConnect) => {
            let Ok(Ok(mut connection)) = timeout(LIMIT, h2::server::handshake(io)).await else {
                return;
            };
            while let Ok(Some(_)) = timeout(LIMIT, connection.accept()).await {}
        }
        None => {
            let Ok(Ok(mut socket)) = timeout(LIMIT, WebSocket::accept(io)).await else {
                return;
            };
            while let Ok(Ok(Some(event))) = timeout(LIMIT, socket.recv()).await {
                if let Some(message) = event.into_message() {
                    let _ = socket.send(message).await;
                }
            }
        }
    }
}

async fn echo_h2(mut socket: ws_core::http2::Http2WebSocket) {
    while let Ok(Ok(Some(event))) = timeout(LIMIT, socket.recv()).await {
        if let Some(message) = event.into_message()
            && socket.send(message).await.is_err()
        {
            break;
        }
    }
}

/// A CA and a leaf for `localhost` and 127.0.0.1: the server's rustls
/// configuration offering `alpn`, and a client configuration trusting the CA.
fn tls_pair(alpn: &[&[u8]]) -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "ws-core h2 test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
    server.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(ca.der().to_vec())).unwrap();
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    (Arc::new(server), Arc::new(client))
}

async fn echo(socket: &mut WebSocket<Transport>, text: &str) {
    socket.send_text(text).await.unwrap();
    let reply = timeout(LIMIT, socket.recv()).await.unwrap().unwrap();
    assert_eq!(reply, Some(Event::Text(text.to_owned().into())));
}

fn connector(mode: Http2Mode) -> Connector {
    Connector::new()
        .no_proxy()
        .http2(mode)
        .handshake_timeout(LIMIT)
}

/// Connects with `mode` over TLS to a server whose ALPN offers `alpn` and
/// that serves `h2` once ALPN has chosen HTTP/2; with the count of
/// connections the server accepted.
async fn connect_wss(
    alpn: &[&[u8]],
    h2: H2,
    mode: Http2Mode,
) -> (
    Result<(WebSocket<Transport>, Response), Error>,
    Arc<AtomicUsize>,
) {
    let (server_tls, client_tls) = tls_pair(alpn);
    let (port, accepted) = server(Some((server_tls, h2)), None).await;
    let connected = connector(mode)
        .tls_config(client_tls)
        .connect(&format!("wss://localhost:{port}/"))
        .await;
    (connected, accepted)
}

#[tokio::test]
async fn on_over_ws_uses_prior_knowledge_and_echoes_on_an_h2_stream() {
    let (port, _) = server(None, Some(H2::WebSockets)).await;
    let (mut socket, response) = connector(Http2Mode::On)
        .connect(&format!("ws://127.0.0.1:{port}/chat"))
        .await
        .unwrap();
    assert_eq!(response.http_version(), HttpVersion::Http2);
    assert_eq!(response.status(), 200);
    assert!(matches!(socket.get_ref(), Transport::Http2(_)));
    assert_eq!(socket.get_ref().peer_addr().unwrap().port(), port);
    echo(&mut socket, "over HTTP/2").await;
    echo(&mut socket, "twice").await;
}

#[tokio::test]
async fn on_over_wss_negotiates_h2_with_alpn() {
    let (connected, _) = connect_wss(&[b"h2", b"http/1.1"], H2::WebSockets, Http2Mode::On).await;
    let (mut socket, response) = connected.unwrap();
    assert_eq!(response.http_version(), HttpVersion::Http2);
    echo(&mut socket, "over TLS and HTTP/2").await;
}

#[tokio::test]
async fn off_over_wss_stays_on_http_1_1_even_when_the_server_offers_h2() {
    let (connected, _) = connect_wss(&[b"h2", b"http/1.1"], H2::WebSockets, Http2Mode::Off).await;
    let (mut socket, response) = connected.unwrap();
    assert_eq!(response.http_version(), HttpVersion::Http11);
    assert_eq!(response.status(), 101);
    echo(&mut socket, "HTTP/1.1").await;
}

#[tokio::test]
async fn on_fails_typed_when_alpn_does_not_choose_h2() {
    let (connected, _) = connect_wss(&[b"http/1.1"], H2::WebSockets, Http2Mode::On).await;
    let error = connected.unwrap_err();
    assert!(
        matches!(error, Error::Http2Unavailable(NoHttp2::Alpn(_))),
        "{error:?}"
    );
    assert!(error.to_string().contains("h2"), "{error}");
}

#[tokio::test]
async fn on_fails_typed_without_extended_connect() {
    let (port, _) = server(None, Some(H2::NoExtendedConnect)).await;
    let error = connector(Http2Mode::On)
        .connect(&format!("ws://127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Http2Unavailable(NoHttp2::ExtendedConnectDisabled)
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("extended CONNECT"), "{error}");
}

#[tokio::test]
async fn on_against_an_http_1_1_only_plaintext_server_fails_typed() {
    let (port, _) = server(None, None).await;
    let error = connector(Http2Mode::On)
        .connect(&format!("ws://127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Http2Unavailable(NoHttp2::NotHttp2(_))),
        "{error:?}"
    );
}

#[tokio::test]
async fn auto_goes_on_over_http_1_1_when_alpn_chooses_it() {
    let (connected, accepted) = connect_wss(&[b"http/1.1"], H2::WebSockets, Http2Mode::Auto).await;
    let (mut socket, response) = connected.unwrap();
    assert_eq!(response.http_version(), HttpVersion::Http11);
    echo(&mut socket, "fell back").await;
    // The same TLS connection went on.
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn auto_uses_h2_when_the_server_allows_it() {
    let (connected, _) = connect_wss(&[b"h2", b"http/1.1"], H2::WebSockets, Http2Mode::Auto).await;
    let (mut socket, response) = connected.unwrap();
    assert_eq!(response.http_version(), HttpVersion::Http2);
    echo(&mut socket, "h2 when offered").await;
}

#[tokio::test]
async fn auto_opens_a_new_http_1_1_connection_without_extended_connect() {
    let (connected, accepted) = connect_wss(
        &[b"h2", b"http/1.1"],
        H2::NoExtendedConnect,
        Http2Mode::Auto,
    )
    .await;
    let (mut socket, response) = connected.unwrap();
    assert_eq!(response.http_version(), HttpVersion::Http11);
    echo(&mut socket, "second connection").await;
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}
