//! `wss://`: the certificate and key loaded at startup, and the transport
//! that carries both plain and TLS connections.
//!
//! TLS is rustls with the `ring` provider (no OpenSSL, no C toolchain beyond
//! what `ring` builds). The configuration offers ALPN `http/1.1`, the
//! protocol a WebSocket upgrade speaks ([`Server::with_tls`] adds `h2`
//! first when HTTP/2 is on), and requests no client certificate.
//!
//! [`Server::with_tls`]: crate::Server::with_tls

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

/// A PEM file larger than this is refused: a certificate chain or a key is a
/// few KiB, so a larger file is the wrong file (and must not be read whole).
pub const MAX_PEM_FILE: u64 = 1 << 20;

/// Which of the two files a [`TlsError`] is about, named as on the command
/// line so the message points at the argument to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemFile {
    /// The certificate chain (`--tls-cert`).
    Certificate,
    /// The private key (`--tls-key`).
    Key,
}

impl fmt::Display for PemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Certificate => "--tls-cert",
            Self::Key => "--tls-key",
        })
    }
}

/// Why the certificate and key could not be used; every message names the
/// file and the problem on one line.
#[derive(Debug)]
pub enum TlsError {
    /// The file could not be read (missing, unreadable, a directory, too large).
    Read {
        /// Which file.
        file: PemFile,
        /// Its path.
        path: PathBuf,
        /// What went wrong.
        error: io::Error,
    },
    /// The file is not valid PEM.
    Pem {
        /// Which file.
        file: PemFile,
        /// Its path.
        path: PathBuf,
        /// The parser's complaint.
        error: pem::Error,
    },
    /// The certificate file holds no `CERTIFICATE` section.
    NoCertificate(PathBuf),
    /// The key file holds no PKCS#8, PKCS#1 (RSA) or SEC1 (EC) private key.
    NoKey(PathBuf),
    /// rustls refused the pair: an unsupported key type, or a key that does
    /// not belong to the certificate.
    Unusable {
        /// The certificate's path.
        cert: PathBuf,
        /// The key's path.
        key: PathBuf,
        /// rustls's reason.
        error: rustls::Error,
    },
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { file, path, error } => {
                write!(
                    f,
                    "cannot read {file} {}: {}",
                    path.display(),
                    io_text(error)
                )
            }
            Self::Pem { file, path, error } => {
                write!(f, "{file} {} is not valid PEM: {error}", path.display())
            }
            Self::NoCertificate(path) => write!(
                f,
                "--tls-cert {} holds no certificate (expected a PEM \"BEGIN CERTIFICATE\" section)",
                path.display()
            ),
            Self::NoKey(path) => write!(
                f,
                "--tls-key {} holds no private key (expected PEM \"BEGIN PRIVATE KEY\", \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\")",
                path.display()
            ),
            Self::Unusable { cert, key, error } => match error {
                rustls::Error::InconsistentKeys(_) => write!(
                    f,
                    "--tls-key {} does not match the certificate in --tls-cert {}",
                    key.display(),
                    cert.display()
                ),
                other => write!(
                    f,
                    "cannot use --tls-cert {} with --tls-key {}: {other}",
                    cert.display(),
                    key.display()
                ),
            },
        }
    }
}

impl std::error::Error for TlsError {}

/// An I/O error without the `(os error 2)` that the number adds nothing to.
fn io_text(error: &io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(start) if text.ends_with(')') => text.get(..start).unwrap_or(&text).to_owned(),
        _ => text,
    }
}

/// Loads a PEM certificate chain (leaf first) and its private key (PKCS#8,
/// RSA or EC) and builds the configuration every TLS connection uses.
pub fn load_pem_files(cert: &Path, key: &Path) -> Result<TlsConfig, TlsError> {
    let cert_pem = read_bounded(PemFile::Certificate, cert)?;
    let key_pem = read_bounded(PemFile::Key, key)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::Pem {
            file: PemFile::Certificate,
            path: cert.to_owned(),
            error,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_owned()));
    }
    let private_key = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(private_key) => private_key,
        Err(pem::Error::NoItemsFound) => return Err(TlsError::NoKey(key.to_owned())),
        Err(error) => {
            return Err(TlsError::Pem {
                file: PemFile::Key,
                path: key.to_owned(),
                error,
            });
        }
    };
    server_config(chain, private_key).map_err(|error| TlsError::Unusable {
        cert: cert.to_owned(),
        key: key.to_owned(),
        error,
    })
}

/// The server's TLS configuration, shared by every connection.
pub type TlsConfig = Arc<rustls::ServerConfig>;

/// The configuration for a certificate chain and its key: rustls's safe
/// default protocol versions (TLS 1.2 and 1.3) on the `ring` provider, ALPN
/// `http/1.1`.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<TlsConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Reads a whole file of at most [`MAX_PEM_FILE`] bytes.
fn read_bounded(file: PemFile, path: &Path) -> Result<Vec<u8>, TlsError> {
    let read_error = |error| TlsError::Read {
        file,
        path: path.to_owned(),
        error,
    };
    let mut contents = Vec::new();
    File::open(path)
        .and_then(|opened| opened.take(MAX_PEM_FILE + 1).read_to_end(&mut contents))
        .map_err(read_error)?;
    if contents.len() as u64 > MAX_PEM_FILE {
        return Err(read_error(io::Error::other(
            "larger than 1 MiB, which no certificate or key is",
        )));
    }
    Ok(contents)
}

/// Why a connection's TLS handshake did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// The handshake failed: plain HTTP or garbage sent to a TLS port, a
    /// client that does not trust the certificate and gave up, no common
    /// protocol version or cipher suite.
    Failed,
    /// The handshake did not finish in time.
    TimedOut,
}

/// Runs the TLS handshake when the server has TLS (without TLS, the stream
/// is returned as it is). A failure is the client's problem, but one an
/// operator wants to see (a client that does not trust the certificate, a
/// `ws://` URL aimed at a `wss://` port): it is logged at info level.
pub async fn accept(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<&TlsConfig>,
) -> Result<Transport, TlsFailure> {
    let Some(config) = tls else {
        return Ok(Transport::Plain(stream));
    };
    match TlsAcceptor::from(Arc::clone(config)).accept(stream).await {
        Ok(stream) => Ok(Transport::Tls(Box::new(stream))),
        Err(error) => {
            tracing::info!(%peer, %error, "TLS handshake failed; connection dropped");
            Err(TlsFailure::Failed)
        }
    }
}

/// [`accept`] bounded by `timeout`.
pub async fn accept_within(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<&TlsConfig>,
    timeout: Duration,
) -> Result<Transport, TlsFailure> {
    match crate::timers::timeout(timeout, accept(stream, peer, tls)).await {
        Ok(transport) => transport,
        Err(_) => {
            tracing::info!(%peer, ?timeout, "TLS handshake timed out; connection dropped");
            Err(TlsFailure::TimedOut)
        }
    }
}

/// A connection's byte stream: plain TCP, or TLS over TCP.
///
/// An enum rather than a boxed trait object, so that the plain path costs a
/// branch, not a virtual call, per read and write. Vectored writes pass
/// through on both (the WebSocket adapter sends large payloads without
/// copying them into one buffer).
#[derive(Debug)]
pub enum Transport {
    /// `ws://` and plain HTTP.
    Plain(TcpStream),
    /// `wss://` and HTTPS, after the TLS handshake.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Transport {
    /// The protocol ALPN chose in the TLS handshake (`h2`, `http/1.1`), if
    /// any; `None` on plain TCP.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        match self {
            Self::Plain(_) => None,
            Self::Tls(stream) => stream.get_ref().1.alpn_protocol(),
        }
    }
}

/// The TLS configuration with ALPN `h2` offered before `http/1.1`: a client
/// that can (a browser over `https://`) then speaks HTTP/2.
pub fn with_http2(config: &TlsConfig) -> TlsConfig {
    let mut config = rustls::ServerConfig::clone(config);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

impl ws_core::stream::ReadReady for Transport {
    #[inline]
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self {
            Self::Plain(stream) => stream.poll_read_ready(cx),
            // rustls may hold decrypted bytes the socket's readiness does not
            // show: always "ready", so reads use a buffer as usual.
            Self::Tls(_) => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncRead for Transport {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Self::Tls(stream) => match Pin::new(stream.as_mut()).poll_read(cx, buf) {
                // A client that ends TLS without `close_notify` has ended the
                // stream as far as WebSocket is concerned: the protocol
                // detects truncation itself (no close frame), as on TCP.
                Poll::Ready(Err(error)) if error.kind() == io::ErrorKind::UnexpectedEof => {
                    Poll::Ready(Ok(()))
                }
                other => other,
            },
        }
    }
}

impl AsyncWrite for Transport {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(stream) => stream.is_write_vectored(),
            Self::Tls(stream) => stream.is_write_vectored(),
        }
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    /// On TLS this sends `close_notify` before ending the TCP write side, so
    /// the client can tell a complete response from a truncated one.
    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    struct Pems {
        dir: PathBuf,
        cert: PathBuf,
        key: PathBuf,
    }

    impl Drop for Pems {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// A self-signed certificate for `localhost` and its key, in a fresh
    /// directory; `name` keeps parallel tests apart.
    fn pems(name: &str) -> Pems {
        let dir =
            std::env::temp_dir().join(format!("ws-server-tls-unit-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
        Pems { dir, cert, key }
    }

    fn message(result: Result<TlsConfig, TlsError>) -> String {
        match result {
            Ok(_) => panic!("loading succeeded"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn a_certificate_and_its_pkcs8_key_load() {
        let files = pems("good");
        assert!(load_pem_files(&files.cert, &files.key).is_ok());
    }

    #[test]
    fn the_acceptor_offers_http_1_1_over_alpn() {
        let files = pems("alpn");
        let config = load_pem_files(&files.cert, &files.key).unwrap();
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
    }

    #[test]
    fn a_missing_file_is_named_with_its_option_and_the_os_reason() {
        let files = pems("missing");
        let absent = files.dir.join("absent.pem");
        assert_eq!(
            message(load_pem_files(&absent, &files.key)),
            format!(
                "cannot read --tls-cert {}: No such file or directory",
                absent.display()
            )
        );
        assert!(message(load_pem_files(&files.cert, &absent)).starts_with("cannot read --tls-key"));
    }

    #[test]
    fn a_key_file_without_a_key_says_so() {
        let files = pems("nokey");
        // The certificate is valid PEM, but not a key.
        assert_eq!(
            message(load_pem_files(&files.cert, &files.cert)),
            format!(
                "--tls-key {} holds no private key (expected PEM \"BEGIN PRIVATE KEY\", \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\")",
                files.cert.display()
            )
        );
    }

    #[test]
    fn a_certificate_file_without_a_certificate_says_so() {
        let files = pems("nocert");
        let text = message(load_pem_files(&files.key, &files.key));
        assert!(text.starts_with("--tls-cert "), "{text}");
        assert!(text.contains("holds no certificate"), "{text}");
    }

    #[test]
    fn garbage_is_no_certificate_and_broken_pem_is_invalid_pem() {
        let files = pems("garbage");
        let garbage = files.dir.join("garbage.pem");
        std::fs::write(&garbage, b"\x00\x01 not pem at all").unwrap();
        assert!(message(load_pem_files(&garbage, &files.key)).contains("holds no certificate"));
        let broken = files.dir.join("broken.pem");
        let mut file = File::create(&broken).unwrap();
        file.write_all(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")
            .unwrap();
        let text = message(load_pem_files(&broken, &files.key));
        assert!(text.contains("is not valid PEM"), "{text}");
    }

    #[test]
    fn a_key_of_another_certificate_is_a_mismatch() {
        let first = pems("mismatch-a");
        let second = pems("mismatch-b");
        assert_eq!(
            message(load_pem_files(&first.cert, &second.key)),
            format!(
                "--tls-key {} does not match the certificate in --tls-cert {}",
                second.key.display(),
                first.cert.display()
            )
        );
    }

    #[test]
    fn an_oversized_file_is_refused_without_reading_it_whole() {
        let files = pems("huge");
        let huge = files.dir.join("huge.pem");
        std::fs::write(&huge, vec![b'A'; (MAX_PEM_FILE + 10) as usize]).unwrap();
        assert!(message(load_pem_files(&huge, &files.key)).contains("larger than 1 MiB"));
    }
}
