//! Opening the connection: the request from the arguments, name resolution,
//! TCP, and the handshake (validated by ws-core).

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
use crate::transport::Duplex;

/// Builds the upgrade request the arguments describe.
///
/// URL problems are usage errors: `wss://` gets "TLS is not supported yet".
pub fn build_request(cli: &Cli) -> Result<ClientRequest, Failure> {
    let mut request = ClientRequest::new(&cli.url).map_err(|error| match error {
        HandshakeError::UnsupportedScheme(scheme) => Failure::new(
            Exit::Usage,
            format!(
                "unsupported URL scheme {scheme:?} in {}; use ws://HOST[:PORT]/PATH",
                cli.url
            ),
        ),
        HandshakeError::InvalidUrl(reason) => {
            Failure::new(Exit::Usage, format!("invalid URL {reason}"))
        }
        other => Failure::new(Exit::Usage, other.to_string()),
    })?;
    if request.is_secure() {
        return Err(Failure::new(
            Exit::Usage,
            format!("TLS is not supported yet: cannot connect to {}", cli.url),
        ));
    }
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

/// Connects and performs the handshake, both before `deadline` (if any).
pub async fn open(
    request: &ClientRequest,
    config: Config,
    deadline: Option<Instant>,
    timeout_text: &str,
) -> Result<(WebSocket<Duplex>, Negotiated), Failure> {
    let target = authority(request);
    let stream = with_deadline(deadline, connect_tcp(request), || {
        Failure::new(
            Exit::Timeout,
            format!("timed out after {timeout_text} connecting to {target}"),
        )
    })
    .await??;
    let handshake = WebSocket::connect(Duplex::new(stream), request, config);
    let opened = with_deadline(deadline, handshake, || {
        Failure::new(
            Exit::Timeout,
            format!(
                "timed out after {timeout_text} waiting for the handshake response from {target}"
            ),
        )
    })
    .await?;
    opened.map_err(Failure::from_handshake)
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
    fn wss_is_a_usage_error_saying_tls_is_not_supported_yet() {
        let failure = build_request(&cli(&["wss://example.com/"])).unwrap_err();
        assert_eq!(failure.exit, Exit::Usage);
        assert_eq!(
            failure.message,
            "TLS is not supported yet: cannot connect to wss://example.com/"
        );
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
