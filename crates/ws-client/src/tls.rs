//! `wss://`: TLS with rustls (the `ring` provider, no OpenSSL).
//!
//! The server's certificate is verified against Mozilla's root certificates
//! as bundled in the binary (`webpki-roots`), so the client trusts the same
//! CAs on every machine whatever the system store holds, plus the CAs of
//! each `--cafile`. The URL's host is the name checked and, when it is a
//! name rather than an address, sent as SNI. `-k/--insecure` accepts any
//! certificate. ALPN offers `http/1.1`, the protocol of the upgrade.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::cli::Cli;
use crate::failure::{Exit, Failure, io_message};

/// A TLS client stream over TCP (possibly a proxy's tunnel).
pub type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

/// The warning `-k/--insecure` prints (unless `-q`) before connecting.
pub const INSECURE_WARNING: &str = "warning: --insecure: the server's certificate is not verified";

/// A PEM file larger than this is refused: CA bundles are a few hundred KiB.
const MAX_PEM_FILE: u64 = 16 << 20;

/// What the command line says about TLS.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// PEM files of CAs trusted besides the bundled roots.
    pub cafiles: Vec<PathBuf>,
    /// Accept any server certificate.
    pub insecure: bool,
    /// A client certificate chain (PEM), presented when the server asks.
    pub cert: Option<PathBuf>,
    /// Its private key; `None` reads it from the certificate file.
    pub key: Option<PathBuf>,
}

impl TlsOptions {
    /// The TLS options of a command line.
    pub fn from_cli(cli: &Cli) -> Self {
        Self {
            cafiles: cli.cafile.clone(),
            insecure: cli.insecure,
            cert: cli.cert.clone(),
            key: cli.key.clone(),
        }
    }
}

/// Builds the client's TLS configuration. A file that cannot be read or
/// holds nothing usable is exit status 1, naming the file and the option.
pub fn client_config(options: &TlsOptions) -> Result<Arc<ClientConfig>, Failure> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|error| Failure::new(Exit::Other, format!("TLS setup failed: {error}")))?;
    let builder = if options.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
    } else {
        builder.with_root_certificates(root_store(&options.cafiles)?)
    };
    let mut config = match &options.cert {
        Some(cert) => {
            let key = options.key.as_deref().unwrap_or(cert);
            let (chain, private_key) = client_identity(cert, key)?;
            builder
                .with_client_auth_cert(chain, private_key)
                .map_err(|error| {
                    Failure::new(
                        Exit::Other,
                        match error {
                            rustls::Error::InconsistentKeys(_) => format!(
                                "the key in {} does not match the certificate in --cert {}",
                                key.display(),
                                cert.display()
                            ),
                            other => format!("cannot use --cert {}: {other}", cert.display()),
                        },
                    )
                })?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The bundled Mozilla roots and the CAs of every `--cafile`.
fn root_store(cafiles: &[PathBuf]) -> Result<RootCertStore, Failure> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for path in cafiles {
        let certificates = read_certificates("--cafile", path)?;
        for (index, certificate) in certificates.into_iter().enumerate() {
            roots.add(certificate).map_err(|error| {
                Failure::new(
                    Exit::Other,
                    format!(
                        "--cafile {}: certificate {} cannot be a trust anchor: {error}",
                        path.display(),
                        index + 1
                    ),
                )
            })?;
        }
    }
    Ok(roots)
}

fn client_identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Failure> {
    let chain = read_certificates("--cert", cert)?;
    let key_option = if key == cert { "--cert" } else { "--key" };
    let pem = read_bounded(key_option, key)?;
    let private_key = PrivateKeyDer::from_pem_slice(&pem).map_err(|error| {
        Failure::new(
            Exit::Other,
            match error {
                pem::Error::NoItemsFound => format!(
                    "{key_option} {} holds no private key (expected PEM \"BEGIN PRIVATE KEY\", \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\"{})",
                    key.display(),
                    if key == cert { "; give it with --key" } else { "" }
                ),
                other => format!("{key_option} {} is not valid PEM: {other}", key.display()),
            },
        )
    })?;
    Ok((chain, private_key))
}

/// Every certificate in a PEM file; none at all is an error.
fn read_certificates(option: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, Failure> {
    let pem = read_bounded(option, path)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| {
            Failure::new(
                Exit::Other,
                format!("{option} {} is not valid PEM: {error}", path.display()),
            )
        })?;
    if certificates.is_empty() {
        return Err(Failure::new(
            Exit::Other,
            format!(
                "{option} {} holds no certificate (expected a PEM \"BEGIN CERTIFICATE\" section)",
                path.display()
            ),
        ));
    }
    Ok(certificates)
}

fn read_bounded(option: &str, path: &Path) -> Result<Vec<u8>, Failure> {
    let failure = |reason: String| {
        Failure::new(
            Exit::Other,
            format!("cannot read {option} {}: {reason}", path.display()),
        )
    };
    let mut contents = Vec::new();
    File::open(path)
        .and_then(|file| file.take(MAX_PEM_FILE + 1).read_to_end(&mut contents))
        .map_err(|error| failure(io_message(&error)))?;
    if contents.len() as u64 > MAX_PEM_FILE {
        return Err(failure("larger than 16 MiB".to_owned()));
    }
    Ok(contents)
}

/// Runs the TLS handshake on a connected stream, `host` being the name to
/// verify (and send as SNI). Every failure is a handshake failure (exit 4)
/// explained in one line.
pub async fn connect(
    stream: TcpStream,
    host: &str,
    config: Arc<ClientConfig>,
) -> Result<TlsStream, Failure> {
    let server_name = ServerName::try_from(host.to_owned()).map_err(|_| {
        Failure::new(
            Exit::Usage,
            format!("{host:?} is not a valid TLS server name"),
        )
    })?;
    TlsConnector::from(config)
        .connect(server_name, stream)
        .await
        .map_err(|error| {
            Failure::new(
                Exit::Handshake,
                format!("TLS handshake failed: {}", describe(&error, host)),
            )
        })
}

/// The TLS error inside an I/O error, if that is what it is: rustls errors
/// reach the caller wrapped in `io::Error`.
pub fn tls_error(error: &io::Error) -> Option<&rustls::Error> {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// A TLS failure as a user can act on it.
pub fn describe(error: &io::Error, host: &str) -> String {
    let Some(tls) = tls_error(error) else {
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
            let hint = match alert {
                rustls::AlertDescription::CertificateRequired
                | rustls::AlertDescription::HandshakeFailure
                | rustls::AlertDescription::BadCertificate
                | rustls::AlertDescription::UnknownCA => {
                    " (if the server wants a client certificate, give it with --cert and --key)"
                }
                _ => "",
            };
            format!("the server refused the handshake with alert {alert:?}{hint}")
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
        CertificateError::UnknownIssuer => "certificate signed by an unknown issuer (trust its CA with --cafile, or skip verification with -k)".to_owned(),
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
        CertificateError::Other(other) => match other.to_string().as_str() {
            "CaUsedAsEndEntity" => {
                "certificate is a CA certificate, not a server certificate".to_owned()
            }
            name => format!("invalid certificate: {}", words(name)),
        },
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

/// `--insecure`: every certificate is accepted. Handshake signatures are
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
mod tests {
    use super::*;

    fn io_error(error: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, error)
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
        assert!(describe(&unknown, "h").starts_with("certificate signed by an unknown issuer"));
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
    fn an_unreadable_cafile_is_exit_1_naming_the_file() {
        let options = TlsOptions {
            cafiles: vec![PathBuf::from("/nonexistent/ca.pem")],
            ..TlsOptions::default()
        };
        let failure = client_config(&options).unwrap_err();
        assert_eq!(failure.exit, Exit::Other);
        assert_eq!(
            failure.message,
            "cannot read --cafile /nonexistent/ca.pem: No such file or directory"
        );
    }

    #[test]
    fn the_default_configuration_offers_http_1_1() {
        let config = client_config(&TlsOptions::default()).unwrap();
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
    }
}
