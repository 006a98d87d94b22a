//! `wss://`: TLS with rustls (the `ring` provider, no OpenSSL).
//!
//! By default the server's certificate is verified against Mozilla's root
//! certificates as bundled in the crate (`webpki-roots`), so a program
//! trusts the same CAs on every machine whatever the system store holds.
//! [`TlsOptions`] adds PEM files of certificates to trust (a private CA, or
//! a self-signed development certificate), a client certificate whose key
//! may be encrypted, or turns verification off; a `rustls::ClientConfig`
//! of your own goes to [`Connector::tls_config`](super::Connector::tls_config).
//! The URL's host is the name checked and, when it is a name rather than an
//! address, sent as SNI. ALPN offers `http/1.1`, the protocol of the upgrade
//! (with feature `http2`, `Http2Mode` offers `h2` instead
//! or as well, replacing the configuration's list).

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore,
    SignatureScheme,
};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::error::{Error, PemFile, TlsConfigError, io_message};

/// A TLS client stream over TCP (possibly a proxy's tunnel).
pub type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

/// A PEM file larger than this is refused: CA bundles are a few hundred KiB.
const MAX_PEM_FILE: u64 = 16 << 20;

/// The ALPN protocol offered: the upgrade is an HTTP/1.1 request.
pub(crate) const ALPN_HTTP_1_1: &[u8] = b"http/1.1";
/// The ALPN protocol of HTTP/2, offered with `Http2Mode::On` or `Auto`.
#[cfg(feature = "http2")]
pub(crate) const ALPN_H2: &[u8] = b"h2";

/// What to trust and what to present in a TLS handshake, turned into a
/// `rustls::ClientConfig` by [`build`](Self::build).
///
/// ```no_run
/// # async fn run() -> Result<(), ws_core::client::Error> {
/// use ws_core::client::{Connector, TlsOptions};
///
/// // A development server with `openssl req -x509 ...`'s certificate.
/// let tls = TlsOptions::new().trust_pem_file("cert.pem").build()?;
/// let (socket, _response) = Connector::new()
///     .tls_config(tls)
///     .connect("wss://localhost:8443/")
///     .await?;
/// # drop(socket);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default)]
pub struct TlsOptions {
    trusted: Vec<PathBuf>,
    without_webpki_roots: bool,
    accept_invalid_certificates: bool,
    certificate: Option<PathBuf>,
    key: Option<PathBuf>,
    passphrase: Option<String>,
}

/// The passphrase stays out of debug output.
impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("trusted", &self.trusted)
            .field("without_webpki_roots", &self.without_webpki_roots)
            .field(
                "accept_invalid_certificates",
                &self.accept_invalid_certificates,
            )
            .field("certificate", &self.certificate)
            .field("key", &self.key)
            .field("passphrase", &self.passphrase.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

impl TlsOptions {
    /// Verification against the bundled Mozilla roots, no client
    /// certificate: what [`connect`](super::connect) uses for `wss://`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also trusts every certificate in this PEM file (read by
    /// [`build`](Self::build)): the CAs of a private PKI, or a server's own
    /// self-signed certificate.
    ///
    /// A certificate from such a file that the server presents as its own
    /// is accepted as both trust anchor and end-entity, as curl, Python and
    /// browsers' exceptions do, even when it says `CA:TRUE`: that is what
    /// `openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost
    /// -addext subjectAltName=DNS:localhost` makes, and webpki on its own
    /// refuses a CA certificate as a server's. Its validity period and
    /// names are still checked, and the server must prove it holds the key.
    pub fn trust_pem_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.trusted.push(path.into());
        self
    }

    /// Trusts only the files of [`trust_pem_file`](Self::trust_pem_file),
    /// not the bundled Mozilla roots.
    pub fn without_webpki_roots(mut self) -> Self {
        self.without_webpki_roots = true;
        self
    }

    /// Presents the certificate chain in this PEM file (leaf first) when
    /// the server asks for one. Its private key comes from
    /// [`client_key_pem_file`](Self::client_key_pem_file), or else from
    /// the same file.
    pub fn client_certificate_pem_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.certificate = Some(path.into());
        self
    }

    /// The PEM file of the client certificate's private key: PKCS#8
    /// (`BEGIN PRIVATE KEY`, or `BEGIN ENCRYPTED PRIVATE KEY` with a
    /// [`key_passphrase`](Self::key_passphrase)), PKCS#1 RSA or SEC1 EC.
    pub fn client_key_pem_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.key = Some(path.into());
        self
    }

    /// The passphrase of an encrypted PKCS#8 key (PBES2: PBKDF2 or scrypt
    /// with AES-CBC or DES-EDE3-CBC, what `openssl pkcs8 -topk8`, `openssl
    /// genpkey -aes256` and `openssl req -newkey` without `-nodes` write).
    /// Ignored for a key that is not encrypted.
    pub fn key_passphrase(mut self, passphrase: impl Into<String>) -> Self {
        self.passphrase = Some(passphrase.into());
        self
    }

    /// **Dangerous**: accepts any server certificate, whoever it names and
    /// whoever signed it, so anyone on the path can read and change the
    /// traffic. For tests against throw-away servers only; prefer
    /// [`trust_pem_file`](Self::trust_pem_file) with the server's
    /// certificate. Handshake signatures are still checked, which proves
    /// the server holds the key of the certificate it showed (though
    /// nothing says whose certificate that is).
    pub fn danger_accept_invalid_certificates(mut self) -> Self {
        self.accept_invalid_certificates = true;
        self
    }

    /// Reads the files and builds the configuration, with ALPN `http/1.1`.
    pub fn build(&self) -> Result<Arc<ClientConfig>, TlsConfigError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(TlsConfigError::Rustls)?;
        let builder = if self.accept_invalid_certificates {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        } else if self.trusted.is_empty() {
            builder.with_root_certificates(self.root_store())
        } else {
            let mut roots = self.root_store();
            let mut pinned = Vec::new();
            for path in &self.trusted {
                let certificates = read_certificates(PemFile::Trusted, path)?;
                for (index, certificate) in certificates.into_iter().enumerate() {
                    roots.add(certificate.clone()).map_err(|source| {
                        TlsConfigError::NotATrustAnchor {
                            path: path.clone(),
                            index: index + 1,
                            source,
                        }
                    })?;
                    pinned.push(certificate);
                }
            }
            let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|error| TlsConfigError::Verifier(error.to_string()))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(TrustedAsEndEntity {
                    inner: verifier,
                    pinned,
                }))
        };
        let mut config = match &self.certificate {
            Some(certificate) => {
                let key = self.key.as_deref().unwrap_or(certificate);
                let chain = read_certificates(PemFile::ClientCertificate, certificate)?;
                let private_key = read_private_key(key, self.passphrase.as_deref())?;
                builder
                    .with_client_auth_cert(chain, private_key)
                    .map_err(|error| match error {
                        rustls::Error::InconsistentKeys(_) => TlsConfigError::KeyMismatch {
                            certificate: certificate.clone(),
                            key: key.to_owned(),
                        },
                        source => TlsConfigError::ClientCertificate {
                            certificate: certificate.clone(),
                            source,
                        },
                    })?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
        Ok(Arc::new(config))
    }

    /// The bundled roots, unless turned off.
    fn root_store(&self) -> RootCertStore {
        if self.without_webpki_roots {
            RootCertStore::empty()
        } else {
            RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            }
        }
    }
}

/// The configuration of [`TlsOptions::new`], built once per process.
pub(crate) fn default_config() -> Result<Arc<ClientConfig>, TlsConfigError> {
    static DEFAULT: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    if let Some(config) = DEFAULT.get() {
        return Ok(Arc::clone(config));
    }
    let config = TlsOptions::new().build()?;
    Ok(Arc::clone(DEFAULT.get_or_init(|| config)))
}

/// Runs the TLS handshake on a connected stream, `host` being the name to
/// verify (and send as SNI).
pub(crate) async fn handshake(
    stream: TcpStream,
    host: &str,
    config: Arc<ClientConfig>,
) -> Result<TlsStream, Error> {
    let server_name =
        ServerName::try_from(host.to_owned()).map_err(|_| Error::InvalidServerName {
            host: host.to_owned(),
        })?;
    TlsConnector::from(config)
        .connect(server_name, stream)
        .await
        .map_err(|source| Error::Tls {
            host: host.to_owned(),
            source,
        })
}

/// Every certificate in a PEM file; none at all is an error.
fn read_certificates(
    file: PemFile,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let pem = read_bounded(file, path)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsConfigError::InvalidPem {
            file,
            path: path.to_owned(),
            reason: error.to_string(),
        })?;
    if certificates.is_empty() {
        return Err(TlsConfigError::NoCertificate {
            file,
            path: path.to_owned(),
        });
    }
    Ok(certificates)
}

/// Why an encrypted key that parsed did not decrypt, as a person reads it.
///
/// The encrypted structure has already been parsed, so every failure here
/// is in what the passphrase's key produced: a padding error (pkcs5 0.7
/// reports it as `EncryptFailed`), or, about once in 256 wrong passphrases,
/// a padding that checks out by chance over bytes that are not DER.
fn decrypt_error_reason(error: pkcs8::Error) -> String {
    match error {
        pkcs8::Error::EncryptedPrivateKey(
            pkcs8::pkcs5::Error::DecryptFailed | pkcs8::pkcs5::Error::EncryptFailed,
        )
        | pkcs8::Error::Asn1(_)
        | pkcs8::Error::KeyMalformed => "wrong passphrase".to_owned(),
        other => other.to_string(),
    }
}

/// The private key in a PEM file, decrypted with `passphrase` if it is an
/// encrypted PKCS#8 key.
fn read_private_key(
    path: &Path,
    passphrase: Option<&str>,
) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    let pem = read_bounded(PemFile::ClientKey, path)?;
    let invalid = |reason: String| TlsConfigError::InvalidPem {
        file: PemFile::ClientKey,
        path: path.to_owned(),
        reason,
    };
    let text = String::from_utf8_lossy(&pem);
    if let Some(section) = pem_section(&text, "ENCRYPTED PRIVATE KEY") {
        let Some(passphrase) = passphrase else {
            return Err(TlsConfigError::PassphraseRequired {
                path: path.to_owned(),
            });
        };
        let (_, document) =
            pkcs8::Document::from_pem(section).map_err(|error| invalid(error.to_string()))?;
        let encrypted = pkcs8::EncryptedPrivateKeyInfo::try_from(document.as_bytes())
            .map_err(|error| invalid(error.to_string()))?;
        let decrypt_failed = |reason: String| TlsConfigError::Decrypt {
            path: path.to_owned(),
            reason,
        };
        let decrypted = encrypted
            .decrypt(passphrase)
            .map_err(|error| decrypt_failed(decrypt_error_reason(error)))?;
        // A wrong passphrase can still unpad correctly by chance: what
        // comes out must be a private key.
        if pkcs8::PrivateKeyInfo::try_from(decrypted.as_bytes()).is_err() {
            return Err(decrypt_failed("wrong passphrase".to_owned()));
        }
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            decrypted.as_bytes().to_vec(),
        )));
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(TlsConfigError::LegacyEncryptedKey {
            path: path.to_owned(),
        });
    }
    PrivateKeyDer::from_pem_slice(&pem).map_err(|error| match error {
        pem::Error::NoItemsFound => TlsConfigError::NoPrivateKey {
            path: path.to_owned(),
        },
        other => invalid(other.to_string()),
    })
}

/// The first `-----BEGIN {label}-----` ... `-----END {label}-----` section.
fn pem_section<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)?;
    let length = text.get(start..)?.find(&end)? + end.len();
    text.get(start..start + length)
}

fn read_bounded(file: PemFile, path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    let mut contents = Vec::new();
    File::open(path)
        .and_then(|opened| opened.take(MAX_PEM_FILE + 1).read_to_end(&mut contents))
        .map_err(|source| TlsConfigError::Read {
            file,
            path: path.to_owned(),
            source,
        })?;
    if contents.len() as u64 > MAX_PEM_FILE {
        return Err(TlsConfigError::TooLarge {
            file,
            path: path.to_owned(),
            limit: MAX_PEM_FILE,
        });
    }
    Ok(contents)
}

/// The rustls error inside an I/O error, if that is what it is: rustls
/// errors reach the caller wrapped in `io::Error`.
pub(crate) fn rustls_error(error: &io::Error) -> Option<&rustls::Error> {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// Whether webpki refused a certificate for being a CA's.
fn is_ca_used_as_end_entity(error: &OtherError) -> bool {
    matches!(
        error.0.downcast_ref::<webpki::Error>(),
        Some(webpki::Error::CaUsedAsEndEntity)
    )
}

/// Webpki's verification, except that a certificate the user trusted
/// explicitly is accepted as the server's own even when it is a CA's.
#[derive(Debug)]
struct TrustedAsEndEntity {
    inner: Arc<WebPkiServerVerifier>,
    /// The certificates of the trusted files, compared byte for byte.
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for TrustedAsEndEntity {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        match verdict {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(other)))
                if is_ca_used_as_end_entity(&other)
                    && self
                        .pinned
                        .iter()
                        .any(|pinned| pinned.as_ref() == end_entity.as_ref()) =>
            {
                // webpki checks an end-entity's validity period before its
                // basic constraints, so a CA certificate refused as such is
                // current (`an_expired_self_signed_ca_certificate_is_refused`
                // keeps that true); the names are checked here.
                let parsed = ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&parsed, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A TLS failure as a person can act on it.
pub(crate) fn describe(error: &io::Error, host: &str) -> String {
    let Some(tls) = rustls_error(error) else {
        return match error.kind() {
            io::ErrorKind::UnexpectedEof => {
                "the server closed the connection (is it a ws:// server, not wss://?)".to_owned()
            }
            _ => io_message(error),
        };
    };
    match tls {
        rustls::Error::InvalidCertificate(certificate) => describe_certificate(certificate, host),
        rustls::Error::InvalidMessage(_) => {
            "the server's answer is not TLS (is it a ws:// server, not wss://?)".to_owned()
        }
        rustls::Error::AlertReceived(alert) => {
            format!("the server refused the handshake with alert {alert:?}")
        }
        other => other.to_string(),
    }
}

fn describe_certificate(error: &CertificateError, host: &str) -> String {
    match error {
        CertificateError::NotValidForName => format!("certificate is not valid for name {host:?}"),
        CertificateError::NotValidForNameContext { presented, .. } => {
            let names: Vec<String> = presented.iter().map(|name| presented_name(name)).collect();
            if names.is_empty() {
                format!("certificate is not valid for name {host:?} (it names no host)")
            } else {
                format!(
                    "certificate is not valid for name {host:?} (it is for {})",
                    names.join(", ")
                )
            }
        }
        CertificateError::UnknownIssuer => "certificate signed by an unknown issuer".to_owned(),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "certificate expired".to_owned()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "certificate is not valid yet (check the clock)".to_owned()
        }
        CertificateError::Revoked => "certificate revoked".to_owned(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "certificate is not for server authentication".to_owned()
        }
        CertificateError::BadSignature => "certificate has a bad signature".to_owned(),
        CertificateError::Other(other) if is_ca_used_as_end_entity(other) => {
            "certificate is a CA certificate, not a server certificate (if it is self-signed, trust the certificate itself)".to_owned()
        }
        CertificateError::Other(other) => format!("invalid certificate: {}", words(&other.to_string())),
        other => format!("invalid certificate: {}", words(&other.to_string())),
    }
}

/// `UnknownIssuer` → `unknown issuer`: webpki names its errors in CamelCase.
fn words(name: &str) -> String {
    if name.contains(|c: char| !c.is_ascii_alphanumeric()) {
        return name.to_owned();
    }
    let mut text = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        if c.is_ascii_uppercase() && !text.is_empty() {
            text.push(' ');
        }
        text.push(c.to_ascii_lowercase());
    }
    text
}

/// `DnsName("example.test")` → `example.test`, as webpki reports names.
fn presented_name(name: &str) -> String {
    let inner = name
        .strip_prefix("DnsName(")
        .or_else(|| name.strip_prefix("IpAddress("))
        .and_then(|rest| rest.strip_suffix(')'));
    match inner {
        Some(inner) => inner.trim_matches('"').to_owned(),
        None => name.to_owned(),
    }
}

/// [`TlsOptions::danger_accept_invalid_certificates`]: every certificate
/// is accepted. Handshake signatures are
/// still checked, which proves the server holds the key of the certificate
/// it showed (though nothing says whose certificate that is).
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl fmt::Debug for AcceptAnyCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AcceptAnyCertificate")
    }
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn io_error(error: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, error)
    }

    #[test]
    fn a_wrong_passphrase_reads_as_such_however_decryption_fails() {
        // Bad padding, and the one time in 256 that the padding checks out
        // over garbage, which then fails as DER (seen in a CI run).
        for error in [
            pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::DecryptFailed),
            pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::EncryptFailed),
            pkcs8::Error::Asn1(pkcs8::der::Tag::Sequence.value_error()),
            pkcs8::Error::KeyMalformed,
        ] {
            assert_eq!(decrypt_error_reason(error), "wrong passphrase");
        }
        assert_ne!(
            decrypt_error_reason(pkcs8::Error::ParametersMalformed),
            "wrong passphrase"
        );
    }

    #[test]
    fn wrong_host_names_the_host_and_the_certificate_names() {
        let error = io_error(
            CertificateError::NotValidForNameContext {
                expected: ServerName::try_from("wronghost").unwrap(),
                presented: vec![
                    "DnsName(\"example.test\")".to_owned(),
                    "IpAddress(10.0.0.1)".to_owned(),
                ],
            }
            .into(),
        );
        assert_eq!(
            describe(&error, "wronghost"),
            "certificate is not valid for name \"wronghost\" (it is for example.test, 10.0.0.1)"
        );
        let bare = io_error(CertificateError::NotValidForName.into());
        assert_eq!(
            describe(&bare, "wronghost"),
            "certificate is not valid for name \"wronghost\""
        );
    }

    #[test]
    fn unknown_issuer_and_expiry_are_named() {
        let unknown = io_error(CertificateError::UnknownIssuer.into());
        assert_eq!(
            describe(&unknown, "h"),
            "certificate signed by an unknown issuer"
        );
        let expired = io_error(
            CertificateError::ExpiredContext {
                time: UnixTime::since_unix_epoch(std::time::Duration::from_secs(2_000_000_000)),
                not_after: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1)),
            }
            .into(),
        );
        assert_eq!(describe(&expired, "h"), "certificate expired");
    }

    #[test]
    fn other_certificate_errors_read_as_words() {
        let error = io_error(CertificateError::BadEncoding.into());
        assert_eq!(describe(&error, "h"), "invalid certificate: bad encoding");
        assert_eq!(words("CaUsedAsEndEntity"), "ca used as end entity");
        assert_eq!(words("not camel: case"), "not camel: case");
    }

    #[test]
    fn a_plain_server_is_recognised_as_not_tls() {
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert!(describe(&eof, "h").contains("ws:// server"));
        let corrupt = io_error(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        assert!(describe(&corrupt, "h").contains("not TLS"));
    }

    #[test]
    fn an_unreadable_trusted_file_is_named() {
        let error = TlsOptions::new()
            .trust_pem_file("/nonexistent/ca.pem")
            .build()
            .unwrap_err();
        assert!(
            matches!(&error, TlsConfigError::Read { file: PemFile::Trusted, path, .. } if path == Path::new("/nonexistent/ca.pem")),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "cannot read CA file /nonexistent/ca.pem: No such file or directory"
        );
    }

    #[test]
    fn the_passphrase_stays_out_of_debug_output() {
        let options = TlsOptions::new().key_passphrase("hunter2");
        assert!(!format!("{options:?}").contains("hunter2"));
    }

    #[test]
    fn pem_sections_are_found_by_label() {
        let text = "junk\n-----BEGIN A-----\nxx\n-----END A-----\n-----BEGIN B-----\nyy\n-----END B-----\n";
        assert_eq!(
            pem_section(text, "B"),
            Some("-----BEGIN B-----\nyy\n-----END B-----")
        );
        assert_eq!(pem_section(text, "C"), None);
    }

    #[test]
    fn the_default_configuration_offers_http_1_1() {
        let config = default_config().unwrap();
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
    }
}
