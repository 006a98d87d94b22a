//! Opening the connection: the request from the arguments and the route
//! (direct or through a proxy, TLS for `wss://`), then ws-core's
//! `client::Connector` for name resolution, TCP, the proxy's tunnel, TLS
//! and the handshake. Its errors become exit statuses and one-line
//! messages here.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rustls::{AlertDescription, CertificateError};
use tokio::time::Instant;
use tracing::debug;
use ws_core::Config;
use ws_core::client::{
    self, Connector, Http2Mode, PemFile, Phase, Proxy, TlsConfigError, TlsOptions,
};
use ws_core::handshake::{ClientRequest, HandshakeError};
use ws_core::stream::WebSocket;

use crate::cli::Cli;
use crate::failure::{Exit, Failure, io_message};
use crate::output::note;
use crate::transport::Transport;

/// The warning `-k/--insecure` prints (unless `-q`) before connecting.
pub const INSECURE_WARNING: &str = "warning: --insecure: the server's certificate is not verified";

/// Builds the upgrade request the arguments describe.
///
/// URL problems are usage errors.
pub fn build_request(cli: &Cli) -> Result<ClientRequest, Failure> {
    let mut request = ClientRequest::new(&cli.url).map_err(|error| match error {
        HandshakeError::UnsupportedScheme(scheme) => Failure::new(
            Exit::Usage,
            format!(
                "unsupported URL scheme {scheme:?} in {}; use ws://HOST[:PORT]/PATH or wss://...",
                cli.url
            ),
        ),
        HandshakeError::InvalidUrl(reason) => {
            Failure::new(Exit::Usage, format!("invalid URL {reason}"))
        }
        other => Failure::new(Exit::Usage, other.to_string()),
    })?;
    let has_authorization = cli
        .headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("authorization"));
    if let Some(credentials) = &cli.auth {
        if has_authorization {
            return Err(Failure::new(
                Exit::Usage,
                "--auth and -H 'Authorization: ...' cannot be combined",
            ));
        }
        request = request.header(
            "Authorization",
            format!("Basic {}", STANDARD.encode(credentials)),
        );
    }
    for protocol in &cli.handshake.protocols {
        request = request.protocol(protocol.clone());
    }
    if let Some(origin) = &cli.handshake.origin {
        request = request.origin(origin.clone());
    }
    request = ws_bench::parse::apply_headers(request, &cli.headers)
        .map_err(|message| Failure::new(Exit::Usage, message))?;
    if let Some(host) = &cli.host {
        request = request
            .host_header(host.clone())
            .map_err(|error| Failure::new(Exit::Usage, error.to_string()))?;
    }
    Ok(request)
}

/// `host:port` as a user writes it, with brackets around an IPv6 address.
pub fn authority(request: &ClientRequest) -> String {
    if request.host().contains(':') {
        format!("[{}]:{}", request.host(), request.port())
    } else {
        format!("{}:{}", request.host(), request.port())
    }
}

/// How to reach the server: through a proxy or not, with TLS or not.
#[derive(Debug, Clone, Default)]
pub struct Route {
    /// The proxy to tunnel through.
    pub proxy: Option<Proxy>,
    /// The TLS configuration, for `wss://`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Whether to go over HTTP/2 (`--http2`).
    pub http2: Http2Mode,
}

/// The route the arguments and the environment describe for `request`:
/// `--proxy`, else (unless `--no-proxy`) the proxy environment variables;
/// TLS for `wss://`, warning about `--insecure` on stderr unless `-q`.
pub fn route(cli: &Cli, request: &ClientRequest) -> Result<Route, Failure> {
    let proxy = if cli.no_proxy {
        None
    } else if let Some(proxy) = &cli.proxy {
        Some(proxy.clone())
    } else {
        Proxy::from_env(
            request.is_secure(),
            request.host(),
            request.port(),
            |name| std::env::var(name).ok(),
        )
        .map_err(|error| Failure::new(Exit::Usage, error.to_string()))?
    };
    if let Some(proxy) = &proxy {
        debug!(%proxy, "using a proxy");
    }
    let tls = if request.is_secure() {
        if cli.insecure && !cli.quiet {
            note(&format!("ws-client: {INSECURE_WARNING}"));
        }
        let config = tls_options(cli)
            .build()
            .map_err(|error| tls_config_failure(cli, error))?;
        Some(config)
    } else {
        None
    };
    Ok(Route {
        proxy,
        tls,
        http2: cli.http2.mode(),
    })
}

/// What the TLS options say: `--cafile`, `-k`, `--cert`, `--key`,
/// `--passphrase`.
pub fn tls_options(cli: &Cli) -> TlsOptions {
    let mut options = TlsOptions::new();
    for path in &cli.cafile {
        options = options.trust_pem_file(path);
    }
    if cli.insecure {
        options = options.danger_accept_invalid_certificates();
    }
    if let Some(cert) = &cli.cert {
        options = options.client_certificate_pem_file(cert);
    }
    if let Some(key) = &cli.key {
        options = options.client_key_pem_file(key);
    }
    if let Some(passphrase) = &cli.passphrase {
        options = options.key_passphrase(passphrase.clone());
    }
    options
}

/// A TLS file that cannot be used is exit status 1, naming the option
/// and the file.
fn tls_config_failure(cli: &Cli, error: TlsConfigError) -> Failure {
    let option = |file: PemFile| match file {
        PemFile::Trusted => "--cafile",
        PemFile::ClientKey if cli.key.is_some() => "--key",
        _ => "--cert",
    };
    let key_option = option(PemFile::ClientKey);
    let shown = |path: &Path| path.display().to_string();
    let message = match error {
        TlsConfigError::Read { file, path, source } => {
            format!(
                "cannot read {} {}: {}",
                option(file),
                shown(&path),
                io_message(&source)
            )
        }
        TlsConfigError::TooLarge { file, path, .. } => {
            format!(
                "cannot read {} {}: larger than 16 MiB",
                option(file),
                shown(&path)
            )
        }
        TlsConfigError::InvalidPem { file, path, reason } => {
            format!(
                "{} {} is not valid PEM: {reason}",
                option(file),
                shown(&path)
            )
        }
        TlsConfigError::NoCertificate { file, path } => format!(
            "{} {} holds no certificate (expected a PEM \"BEGIN CERTIFICATE\" section)",
            option(file),
            shown(&path)
        ),
        TlsConfigError::NotATrustAnchor {
            path,
            index,
            source,
        } => format!(
            "--cafile {}: certificate {index} cannot be a trust anchor: {source}",
            shown(&path)
        ),
        TlsConfigError::NoPrivateKey { path } => format!(
            "{key_option} {} holds no private key (expected PEM \"BEGIN PRIVATE KEY\", \"BEGIN ENCRYPTED PRIVATE KEY\", \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\"{})",
            shown(&path),
            if cli.key.is_none() {
                "; give it with --key"
            } else {
                ""
            }
        ),
        TlsConfigError::PassphraseRequired { path } => format!(
            "the private key in {key_option} {} is encrypted: give its passphrase with --passphrase (or WS_CLIENT_KEY_PASSPHRASE)",
            shown(&path)
        ),
        TlsConfigError::Decrypt { path, reason } => format!(
            "cannot decrypt the private key in {key_option} {}: {reason} (see --passphrase)",
            shown(&path)
        ),
        TlsConfigError::KeyMismatch { certificate, key } => format!(
            "the key in {} does not match the certificate in --cert {}",
            shown(&key),
            shown(&certificate)
        ),
        TlsConfigError::ClientCertificate {
            certificate,
            source,
        } => format!("cannot use --cert {}: {source}", shown(&certificate)),
        other => other.to_string(),
    };
    Failure::new(Exit::Other, message)
}

/// Connects (through the route's proxy, if any), runs the TLS handshake for
/// `wss://`, and performs the WebSocket handshake, all before `deadline` (if
/// any).
pub async fn open(
    request: &ClientRequest,
    route: &Route,
    config: Config,
    deadline: Option<Instant>,
    timeout_text: &str,
) -> Result<(WebSocket<Transport>, client::Response), Failure> {
    let mut connector = Connector::new()
        .config(config)
        .connect_timeout(None)
        .handshake_timeout(None)
        .open_timeout(deadline.map(|deadline| deadline.saturating_duration_since(Instant::now())))
        .http2(route.http2);
    connector = match &route.proxy {
        Some(proxy) => connector.proxy(proxy.clone()),
        None => connector.no_proxy(),
    };
    if let Some(tls) = &route.tls {
        connector = connector.tls_config(Arc::clone(tls));
    }
    let (socket, response) = connector
        .connect_request(request)
        .await
        .map_err(|error| failure(error, request, route.proxy.as_ref(), timeout_text))?;
    debug!(peer = %response.peer_addr(), "connected");
    Ok((socket, response))
}

/// A connection failure as an exit status and one line, `timeout_text`
/// being the `--timeout` as the user wrote it.
pub fn failure(
    error: client::Error,
    request: &ClientRequest,
    proxy: Option<&Proxy>,
    timeout_text: &str,
) -> Failure {
    use client::Error;
    let target = authority(request);
    let last_error = |attempts: &[(std::net::SocketAddr, std::io::Error)]| {
        attempts
            .last()
            .map(|(_, error)| io_message(error))
            .unwrap_or_default()
    };
    match error {
        Error::Url(_) | Error::ProxyEnv { .. } | Error::InvalidServerName { .. } => {
            Failure::new(Exit::Usage, error.to_string())
        }
        Error::Resolve { host, source } => Failure::new(
            Exit::Connect,
            format!("cannot resolve {host}: {}", io_message(&source)),
        ),
        Error::NoAddresses { .. } => Failure::new(Exit::Connect, error.to_string()),
        Error::Connect { attempts, .. } => Failure::new(
            Exit::Connect,
            format!("cannot connect to {target}: {}", last_error(&attempts)),
        ),
        Error::ProxyUnreachable { proxy, source } => Failure::new(
            Exit::Connect,
            match *source {
                Error::Resolve { source, .. } => format!(
                    "cannot resolve proxy {}: {}",
                    proxy.host(),
                    io_message(&source)
                ),
                Error::NoAddresses { .. } => {
                    format!("cannot resolve proxy {}: no addresses found", proxy.host())
                }
                Error::Connect { attempts, .. } => {
                    format!("cannot connect to proxy {proxy}: {}", last_error(&attempts))
                }
                other => format!("cannot reach proxy {proxy}: {other}"),
            },
        ),
        Error::ProxyRefused { message, .. } => {
            Failure::new(Exit::Connect, format!("proxy refused: {message}"))
        }
        Error::ProxyIo { proxy, source } => Failure::new(
            Exit::Connect,
            format!("proxy {proxy} failed: {}", io_message(&source)),
        ),
        Error::ProxyProtocol { .. } => Failure::new(Exit::Connect, error.to_string()),
        Error::Timeout { phase, .. } => Failure::new(
            Exit::Timeout,
            match (phase, proxy) {
                (Phase::Connect, None) => {
                    format!("timed out after {timeout_text} connecting to {target}")
                }
                (Phase::Connect, Some(proxy)) => format!(
                    "timed out after {timeout_text} connecting to {target} through proxy {proxy}"
                ),
                (Phase::Tls, _) => {
                    format!("timed out after {timeout_text} in the TLS handshake with {target}")
                }
                (Phase::Handshake, _) => format!(
                    "timed out after {timeout_text} waiting for the handshake response from {target}"
                ),
                (other, _) => format!("timed out after {timeout_text} {other}"),
            },
        ),
        Error::Tls { .. } => {
            let hint = match error.rustls_error() {
                Some(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
                    " (trust its CA with --cafile, or skip verification with -k)"
                }
                Some(rustls::Error::AlertReceived(
                    AlertDescription::CertificateRequired
                    | AlertDescription::HandshakeFailure
                    | AlertDescription::BadCertificate
                    | AlertDescription::UnknownCA,
                )) => " (if the server wants a client certificate, give it with --cert and --key)",
                _ => "",
            };
            Failure::new(Exit::Handshake, format!("{error}{hint}"))
        }
        Error::Http2Unavailable(_) => Failure::new(
            Exit::Handshake,
            format!("handshake failed: {error} (--http2=auto falls back to HTTP/1.1)"),
        ),
        Error::Rejected(rejection) => Failure::from_handshake(ws_core::Error::Handshake(
            HandshakeError::Rejected(rejection),
        )),
        Error::Handshake(error) => Failure::from_handshake(ws_core::Error::Handshake(error)),
        Error::Io(error) => Failure::from_handshake(ws_core::Error::Io(error)),
        Error::TlsConfig(error) => Failure::new(Exit::Other, error.to_string()),
        other => Failure::new(Exit::Other, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("ws-client").chain(args.iter().copied())).unwrap()
    }

    fn request_text(args: &[&str]) -> String {
        String::from_utf8(build_request(&cli(args)).unwrap().to_bytes()).unwrap()
    }

    #[test]
    fn wss_defaults_to_port_443_and_takes_a_tls_route() {
        let cli = cli(&["wss://example.com/", "--no-proxy"]);
        let request = build_request(&cli).unwrap();
        assert_eq!(authority(&request), "example.com:443");
        let route = route(&cli, &request).unwrap();
        assert!(route.tls.is_some());
        assert!(route.proxy.is_none());
        let plain = build_request(&self::cli(&["ws://example.com/"])).unwrap();
        assert!(
            self::route(&self::cli(&["ws://example.com/", "--no-proxy"]), &plain)
                .unwrap()
                .tls
                .is_none()
        );
    }

    #[test]
    fn proxy_flag_overrides_the_environment() {
        let cli = cli(&["ws://example.com/", "--proxy", "socks5h://127.0.0.1:9"]);
        let request = build_request(&cli).unwrap();
        let proxy = route(&cli, &request).unwrap().proxy.unwrap();
        assert_eq!(proxy.to_string(), "socks5h://127.0.0.1:9");
    }

    #[test]
    fn other_schemes_and_malformed_urls_are_usage_errors() {
        for url in [
            "http://example.com/",
            "example.com:80",
            "ws://",
            "ws://h/#frag",
        ] {
            let failure = build_request(&cli(&[url])).unwrap_err();
            assert_eq!(failure.exit, Exit::Usage, "{url}: {}", failure.message);
        }
    }

    #[test]
    fn auth_becomes_a_basic_authorization_header() {
        let text = request_text(&["ws://h/", "--auth", "aladdin:opensesame"]);
        assert!(
            text.contains("\r\nAuthorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l\r\n"),
            "{text}"
        );
    }

    #[test]
    fn auth_and_an_authorization_header_cannot_be_combined() {
        let args = ["ws://h/", "--auth", "a:b", "-H", "authorization: Bearer x"];
        let failure = build_request(&cli(&args)).unwrap_err();
        assert_eq!(failure.exit, Exit::Usage);
    }

    #[test]
    fn protocols_origin_and_headers_are_in_the_request() {
        let text = request_text(&[
            "ws://h/",
            "-s",
            "one",
            "-s",
            "two",
            "-o",
            "http://o.test",
            "-H",
            "X-A: 1",
        ]);
        assert!(
            text.contains("\r\nSec-WebSocket-Protocol: one, two\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nOrigin: http://o.test\r\n"), "{text}");
        assert!(text.contains("\r\nX-A: 1\r\n"), "{text}");
    }

    #[test]
    fn host_and_a_host_header_replace_the_host_but_not_the_target() {
        let text = request_text(&["ws://127.0.0.1:9/", "-H", "Host: a.example"]);
        assert!(text.contains("\r\nHost: a.example\r\n"), "{text}");
        let request =
            build_request(&cli(&["ws://127.0.0.1:9/", "--host", "b.example:81"])).unwrap();
        let text = String::from_utf8(request.to_bytes()).unwrap();
        assert!(text.contains("\r\nHost: b.example:81\r\n"), "{text}");
        assert_eq!(text.matches("Host:").count(), 1, "{text}");
        assert_eq!(authority(&request), "127.0.0.1:9");
    }

    #[test]
    fn authority_brackets_ipv6_addresses() {
        let request = build_request(&cli(&["ws://[::1]:9001/"])).unwrap();
        assert_eq!(authority(&request), "[::1]:9001");
        let request = build_request(&cli(&["ws://localhost/"])).unwrap();
        assert_eq!(authority(&request), "localhost:80");
    }
}
