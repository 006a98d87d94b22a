//! Opening the connection: the request from the arguments, the route
//! (direct or through a proxy, TLS for `wss://`), name resolution, TCP, and
//! the handshake (validated by ws-core).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::net::{TcpStream, lookup_host};
use tokio::time::{Instant, timeout_at};
use tracing::debug;
use ws_core::Config;
use ws_core::handshake::{ClientRequest, HandshakeError, Negotiated};
use ws_core::stream::WebSocket;

use crate::cli::Cli;
use crate::failure::{Exit, Failure, io_message};
use crate::output::note;
use crate::proxy::{self, Proxy};
use crate::tls::{self, TlsOptions};
use crate::transport::Transport;

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
    for protocol in &cli.protocols {
        request = request.protocol(protocol.clone());
    }
    if let Some(origin) = &cli.origin {
        request = request.origin(origin.clone());
    }
    for (name, value) in &cli.headers {
        request = request.header(name.clone(), value.clone());
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

/// Resolves the host and connects to the first address that answers.
pub async fn connect_tcp(request: &ClientRequest) -> Result<TcpStream, Failure> {
    let target = authority(request);
    let addresses = lookup_host((request.host(), request.port()))
        .await
        .map_err(|error| {
            Failure::new(
                Exit::Connect,
                format!("cannot resolve {}: {}", request.host(), io_message(&error)),
            )
        })?;
    let mut last_error = None;
    for address in addresses {
        debug!(%address, "connecting");
        match TcpStream::connect(address).await {
            Ok(stream) => {
                // Interactive lines and pings are small: send them at once.
                if let Err(error) = stream.set_nodelay(true) {
                    debug!(%error, "cannot set TCP_NODELAY");
                }
                return Ok(stream);
            }
            Err(error) => {
                debug!(%address, %error, "connection failed");
                last_error = Some(error);
            }
        }
    }
    Err(Failure::new(
        Exit::Connect,
        match last_error {
            Some(error) => format!("cannot connect to {target}: {}", io_message(&error)),
            None => format!("cannot resolve {}: no addresses found", request.host()),
        },
    ))
}

/// How to reach the server: through a proxy or not, with TLS or not.
#[derive(Debug, Clone, Default)]
pub struct Route {
    /// The proxy to tunnel through.
    pub proxy: Option<Proxy>,
    /// The TLS configuration, for `wss://`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
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
        proxy::from_env(
            request.is_secure(),
            request.host(),
            request.port(),
            |name| std::env::var(name).ok(),
        )
        .map_err(|error| Failure::new(Exit::Usage, error))?
    };
    if let Some(proxy) = &proxy {
        debug!(%proxy, "using a proxy");
    }
    let tls = if request.is_secure() {
        if cli.insecure && !cli.quiet {
            note(&format!("ws-client: {}", tls::INSECURE_WARNING));
        }
        Some(tls::client_config(&TlsOptions::from_cli(cli))?)
    } else {
        None
    };
    Ok(Route { proxy, tls })
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
) -> Result<(WebSocket<Transport>, Negotiated), Failure> {
    let target = authority(request);
    let stream = match &route.proxy {
        None => {
            with_deadline(deadline, connect_tcp(request), || {
                Failure::new(
                    Exit::Timeout,
                    format!("timed out after {timeout_text} connecting to {target}"),
                )
            })
            .await??
        }
        Some(proxy) => {
            let tunnel = proxy::connect(proxy, request.host(), request.port());
            with_deadline(deadline, tunnel, || {
                Failure::new(
                    Exit::Timeout,
                    format!("timed out after {timeout_text} connecting to {target} through proxy {proxy}"),
                )
            })
            .await??
        }
    };
    let transport = match &route.tls {
        None => Transport::Plain(stream),
        Some(config) => {
            let handshake = tls::connect(stream, request.host(), Arc::clone(config));
            let stream = with_deadline(deadline, handshake, || {
                Failure::new(
                    Exit::Timeout,
                    format!("timed out after {timeout_text} in the TLS handshake with {target}"),
                )
            })
            .await??;
            Transport::Tls(Box::new(stream))
        }
    };
    let handshake = WebSocket::connect(transport, request, config);
    let opened = with_deadline(deadline, handshake, || {
        Failure::new(
            Exit::Timeout,
            format!(
                "timed out after {timeout_text} waiting for the handshake response from {target}"
            ),
        )
    })
    .await?;
    opened.map_err(|error| match &error {
        // With TLS 1.3 the server checks a client certificate after the
        // client's side of the TLS handshake is done, so its refusal comes
        // with the first read: during the WebSocket handshake.
        ws_core::Error::Io(io) if tls::tls_error(io).is_some() => Failure::new(
            Exit::Handshake,
            format!(
                "TLS handshake failed: {}",
                tls::describe(io, request.host())
            ),
        ),
        _ => Failure::from_handshake(error),
    })
}

async fn with_deadline<F: Future>(
    deadline: Option<Instant>,
    future: F,
    on_timeout: impl FnOnce() -> Failure,
) -> Result<F::Output, Failure> {
    match deadline {
        Some(deadline) => timeout_at(deadline, future).await.map_err(|_| on_timeout()),
        None => Ok(future.await),
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
    fn authority_brackets_ipv6_addresses() {
        let request = build_request(&cli(&["ws://[::1]:9001/"])).unwrap();
        assert_eq!(authority(&request), "[::1]:9001");
        let request = build_request(&cli(&["ws://localhost/"])).unwrap();
        assert_eq!(authority(&request), "localhost:80");
    }
}
