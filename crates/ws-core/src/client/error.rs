//! Why opening a connection failed: one enum for every step of
//! [`connect`](super::connect), each variant keeping its cause.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::handshake::{HandshakeError, Rejection};

use super::proxy::{Proxy, ProxyUrlError};
use super::tls;

/// Why [`connect`](super::connect) failed.
///
/// The variants follow the steps of a connection: the URL, the proxy
/// choice, name resolution, TCP, the proxy's tunnel, TLS, and the WebSocket
/// handshake. Each keeps what a program needs to react (the addresses tried,
/// the proxy's status, rustls's error, the server's status and body) and
/// its message is one line meant for a person.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL is not a `ws://` or `wss://` URL that can be used (another
    /// scheme, no host, a fragment, credentials).
    #[error("{}", strip_handshake_prefix(.0))]
    Url(#[source] HandshakeError),

    /// A proxy environment variable (`https_proxy`, `all_proxy`, ...) holds
    /// something that is not a proxy URL.
    #[error("invalid proxy in {variable}: {source}")]
    ProxyEnv {
        /// The variable's name, as it is spelled in the environment.
        variable: &'static str,
        /// What is wrong with its value.
        source: ProxyUrlError,
    },

    /// The host name could not be resolved.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The name that was looked up.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },

    /// The host name resolved to no address at all.
    #[error("cannot resolve {host}: no addresses found")]
    NoAddresses {
        /// The name that was looked up.
        host: String,
    },

    /// Every address of the host refused the connection or could not be
    /// reached.
    #[error("{}", connect_message(host, *port, attempts))]
    Connect {
        /// The host as given (a name or an address).
        host: String,
        /// The port.
        port: u16,
        /// Each address tried and why it failed, in the order the attempts
        /// failed (the last one is the last word).
        attempts: Vec<(SocketAddr, io::Error)>,
    },

    /// The proxy could not be reached: its name did not resolve, or it
    /// refused the TCP connection. `source` is the [`Resolve`](Self::Resolve),
    /// [`NoAddresses`](Self::NoAddresses) or [`Connect`](Self::Connect)
    /// error for the proxy's own address.
    #[error("cannot reach proxy {proxy}: {source}")]
    ProxyUnreachable {
        /// The proxy (its `Display` leaves the password out).
        proxy: Proxy,
        /// Why it could not be reached.
        source: Box<Error>,
    },

    /// The proxy answered but would not open the tunnel: an HTTP proxy's
    /// non-2xx answer to `CONNECT` (407 for missing credentials), a SOCKS5
    /// reply code, or refused SOCKS5 credentials.
    #[error("proxy {proxy} refused: {message}")]
    ProxyRefused {
        /// The proxy.
        proxy: Proxy,
        /// The HTTP status of an HTTP proxy's answer, or the SOCKS5 reply
        /// code (RFC 1928 §6) of a SOCKS5 proxy; `None` when the refusal
        /// came before a reply (authentication).
        status: Option<u16>,
        /// What the proxy said, as one line: the HTTP status line, or the
        /// SOCKS5 reply explained.
        message: String,
    },

    /// The proxy's answer does not follow its protocol, or it closed the
    /// connection in the middle of it.
    #[error("proxy {proxy} answered something unexpected: {message}")]
    ProxyProtocol {
        /// The proxy.
        proxy: Proxy,
        /// What was wrong.
        message: String,
    },

    /// Reading from or writing to the proxy failed.
    #[error("proxy {proxy} failed: {source}")]
    ProxyIo {
        /// The proxy.
        proxy: Proxy,
        /// The I/O error.
        source: io::Error,
    },

    /// A time limit expired.
    #[error("timed out after {} {phase}", DisplayDuration(*after))]
    Timeout {
        /// The step that was under way.
        phase: Phase,
        /// The limit that expired.
        after: Duration,
    },

    /// The TLS configuration could not be built (an unreadable CA file, a
    /// key that does not match its certificate, a wrong passphrase).
    #[error(transparent)]
    TlsConfig(#[from] TlsConfigError),

    /// The URL's host cannot be a TLS server name.
    #[error("{host:?} is not a valid TLS server name")]
    InvalidServerName {
        /// The host.
        host: String,
    },

    /// The TLS handshake failed: the server's certificate was not accepted
    /// (see [`rustls_error`](Self::rustls_error)), the server refused ours,
    /// or the server does not speak TLS.
    ///
    /// With TLS 1.3 a server checks a client certificate after the client
    /// has finished its side, so a refusal of ours can surface while the
    /// WebSocket handshake is read: it is reported here too.
    #[error("TLS handshake failed: {}", tls::describe(source, host))]
    Tls {
        /// The name the certificate was checked against (the URL's host).
        host: String,
        /// The I/O error, which carries a `rustls::Error` when rustls
        /// refused something.
        source: io::Error,
    },

    /// HTTP/2 was required ([`Http2Mode::On`](super::Http2Mode::On)) and
    /// the server cannot carry a WebSocket over it.
    #[cfg(feature = "http2")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http2")))]
    #[error("the server cannot carry WebSockets over HTTP/2: {0}")]
    Http2Unavailable(NoHttp2),

    /// The server answered the upgrade request with another status than
    /// 101: its status, headers and the start of its body.
    #[error("{}", strip_handshake_prefix(&HandshakeError::Rejected(.0.clone())))]
    Rejected(Box<Rejection>),

    /// The server's 101 answer is not valid for the request (a wrong
    /// `Sec-WebSocket-Accept`, a subprotocol or extension that was not
    /// offered, a malformed or oversized head).
    #[error("{}", strip_handshake_prefix(.0))]
    Handshake(#[source] HandshakeError),

    /// Reading or writing failed during the WebSocket handshake; an
    /// `UnexpectedEof` means the server closed without answering.
    #[error("{}", io_message(.0))]
    Io(#[source] io::Error),
}

impl Error {
    /// The rustls error behind a [`Tls`](Self::Tls) failure, if rustls
    /// refused something (a certificate, an alert from the server).
    pub fn rustls_error(&self) -> Option<&rustls::Error> {
        match self {
            Self::Tls { source, .. } => tls::rustls_error(source),
            _ => None,
        }
    }

    /// The server's refusal, for [`Rejected`](Self::Rejected).
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            Self::Rejected(rejection) => Some(rejection),
            _ => None,
        }
    }
}

/// Why a server cannot carry WebSockets over HTTP/2, for
/// [`Error::Http2Unavailable`].
#[cfg(feature = "http2")]
#[cfg_attr(docsrs, doc(cfg(feature = "http2")))]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoHttp2 {
    /// TLS's ALPN did not choose `h2`: the server chose this protocol
    /// (`http/1.1`), or none.
    Alpn(Option<String>),
    /// The server's HTTP/2 SETTINGS do not enable extended CONNECT
    /// (`SETTINGS_ENABLE_CONNECT_PROTOCOL`, RFC 8441 §3).
    ExtendedConnectDisabled,
    /// Plaintext with prior knowledge: the server did not answer the
    /// HTTP/2 preface in HTTP/2 (an HTTP/1.1-only server); the error.
    NotHttp2(String),
}

#[cfg(feature = "http2")]
impl fmt::Display for NoHttp2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Alpn(Some(protocol)) => write!(
                f,
                "TLS ALPN chose {protocol:?}, not \"h2\" (the server does not offer HTTP/2)"
            ),
            Self::Alpn(None) => f.write_str(
                "TLS ALPN chose no protocol, not \"h2\" (the server does not offer HTTP/2)",
            ),
            Self::ExtendedConnectDisabled => f.write_str(
                "its HTTP/2 SETTINGS do not enable extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL, RFC 8441)",
            ),
            Self::NotHttp2(error) => write!(
                f,
                "it did not answer the HTTP/2 preface (prior knowledge) in HTTP/2: {error}"
            ),
        }
    }
}

/// The step a [`Error::Timeout`] interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Name resolution, TCP, and the proxy's tunnel when there is one.
    Connect,
    /// The TLS handshake.
    Tls,
    /// The WebSocket opening handshake (the request written, the 101 read).
    Handshake,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "connecting",
            Self::Tls => "in the TLS handshake",
            Self::Handshake => "waiting for the handshake response",
        })
    }
}

/// Which PEM file a [`TlsConfigError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PemFile {
    /// A file of certificates to trust.
    Trusted,
    /// The client certificate chain.
    ClientCertificate,
    /// The client certificate's private key.
    ClientKey,
}

impl fmt::Display for PemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Trusted => "CA file",
            Self::ClientCertificate => "client certificate",
            Self::ClientKey => "client key",
        })
    }
}

/// Why [`TlsOptions::build`](super::TlsOptions::build) failed: the file and
/// what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// The file could not be read.
    #[error("cannot read {file} {}: {}", path.display(), io_message(source))]
    Read {
        /// Which file.
        file: PemFile,
        /// Its path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file is larger than any PEM file of certificates or keys.
    #[error("cannot read {file} {}: larger than {} MiB", path.display(), limit >> 20)]
    TooLarge {
        /// Which file.
        file: PemFile,
        /// Its path.
        path: PathBuf,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The file is not valid PEM.
    #[error("{file} {} is not valid PEM: {reason}", path.display())]
    InvalidPem {
        /// Which file.
        file: PemFile,
        /// Its path.
        path: PathBuf,
        /// The PEM parser's reason.
        reason: String,
    },
    /// The file holds no `BEGIN CERTIFICATE` section.
    #[error("{file} {} holds no certificate (expected a PEM \"BEGIN CERTIFICATE\" section)", path.display())]
    NoCertificate {
        /// Which file.
        file: PemFile,
        /// Its path.
        path: PathBuf,
    },
    /// A certificate of a trusted file cannot be a trust anchor.
    #[error("{} {}: certificate {index} cannot be a trust anchor: {source}", PemFile::Trusted, path.display())]
    NotATrustAnchor {
        /// The file's path.
        path: PathBuf,
        /// The certificate's position in the file, from 1.
        index: usize,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// The file holds no private key.
    #[error("{} holds no private key (expected PEM \"BEGIN PRIVATE KEY\", \"BEGIN ENCRYPTED PRIVATE KEY\", \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\")", path.display())]
    NoPrivateKey {
        /// The file's path.
        path: PathBuf,
    },
    /// The key is encrypted and no passphrase was given.
    #[error("the private key in {} is encrypted: a passphrase is needed", path.display())]
    PassphraseRequired {
        /// The key file's path.
        path: PathBuf,
    },
    /// The key could not be decrypted with the passphrase: a wrong
    /// passphrase, or an encryption scheme that is not supported.
    #[error("cannot decrypt the private key in {}: {reason}", path.display())]
    Decrypt {
        /// The key file's path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key is in OpenSSL's legacy encrypted format (`Proc-Type:
    /// 4,ENCRYPTED`), which has no standard; PKCS#8 is supported.
    #[error("the private key in {} uses OpenSSL's legacy encryption; convert it with `openssl pkcs8 -topk8 -v2 aes-256-cbc -in OLD -out NEW`", path.display())]
    LegacyEncryptedKey {
        /// The key file's path.
        path: PathBuf,
    },
    /// The private key does not belong to the certificate.
    #[error("the key in {} does not match the certificate in {}", key.display(), certificate.display())]
    KeyMismatch {
        /// The certificate file.
        certificate: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the client certificate or its key.
    #[error("cannot use the client certificate {}: {source}", certificate.display())]
    ClientCertificate {
        /// The certificate file.
        certificate: PathBuf,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// rustls could not build the certificate verifier (with
    /// `without_webpki_roots` and no trusted file, nothing is trusted).
    #[error("cannot verify server certificates: {0}")]
    Verifier(String),
    /// rustls could not build a configuration.
    #[error("TLS setup failed: {0}")]
    Rustls(#[source] rustls::Error),
}

/// An I/O error as people know it: `Connection refused`, without the
/// `(os error 111)` the number adds nothing to.
pub(crate) fn io_message(error: &io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(start) if text.ends_with(')') => text.get(..start).unwrap_or(&text).to_owned(),
        _ => text,
    }
}

fn strip_handshake_prefix(error: &HandshakeError) -> String {
    let text = error.to_string();
    match text.strip_prefix("handshake: ") {
        Some(rest) => rest.to_owned(),
        None => text,
    }
}

/// `host:port`, with brackets around an IPv6 address.
pub(crate) fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn connect_message(host: &str, port: u16, attempts: &[(SocketAddr, io::Error)]) -> String {
    let target = authority(host, port);
    match attempts {
        [] => format!("cannot connect to {target}"),
        [(_, error)] => format!("cannot connect to {target}: {}", io_message(error)),
        [.., (_, last)] => {
            let tried: Vec<String> = attempts
                .iter()
                .map(|(address, error)| format!("{address}: {}", io_message(error)))
                .collect();
            format!(
                "cannot connect to {target}: {} (tried {})",
                io_message(last),
                tried.join(", ")
            )
        }
    }
}

/// A duration as it is usually written: `10s`, `250ms`, `1.5s`.
struct DisplayDuration(Duration);

impl fmt::Display for DisplayDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        if millis.is_multiple_of(1000) {
            write!(f, "{}s", millis / 1000)
        } else if millis < 1000 {
            write!(f, "{millis}ms")
        } else {
            let seconds = format!("{:.3}", self.0.as_secs_f64());
            write!(f, "{}s", seconds.trim_end_matches('0'))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn connect_failure_names_every_address_tried() {
        let one = Error::Connect {
            host: "localhost".into(),
            port: 9,
            attempts: vec![(
                "127.0.0.1:9".parse().unwrap(),
                io::Error::from(io::ErrorKind::ConnectionRefused),
            )],
        };
        assert_eq!(
            one.to_string(),
            "cannot connect to localhost:9: connection refused"
        );
        let two = Error::Connect {
            host: "::1".into(),
            port: 9,
            attempts: vec![
                (
                    "[::1]:9".parse().unwrap(),
                    io::Error::from_raw_os_error(111),
                ),
                ("[::1]:9".parse().unwrap(), io::Error::other("unreachable")),
            ],
        };
        let text = two.to_string();
        assert!(
            text.starts_with("cannot connect to [::1]:9: unreachable (tried [::1]:9: "),
            "{text}"
        );
        assert!(!text.contains("os error"), "{text}");
    }

    #[test]
    fn timeouts_name_the_phase_and_the_limit() {
        let error = Error::Timeout {
            phase: Phase::Tls,
            after: Duration::from_millis(1500),
        };
        assert_eq!(
            error.to_string(),
            "timed out after 1.5s in the TLS handshake"
        );
        let error = Error::Timeout {
            phase: Phase::Handshake,
            after: Duration::from_millis(250),
        };
        assert_eq!(
            error.to_string(),
            "timed out after 250ms waiting for the handshake response"
        );
    }

    #[test]
    fn a_rejection_shows_the_status_and_the_body_start() {
        let error = Error::Rejected(Box::new(Rejection {
            status: 404,
            reason: "Not Found".into(),
            headers: crate::handshake::Headers::new(),
            body: b"no such path\n".to_vec(),
        }));
        assert_eq!(
            error.to_string(),
            "server answered HTTP/1.1 404 Not Found instead of 101 Switching Protocols: \"no such path\""
        );
        assert_eq!(error.rejection().map(|r| r.status), Some(404));
    }
}
