//! Reaching the server through a proxy: HTTP `CONNECT` (RFC 9110 §9.3.6)
//! and SOCKS5 (RFC 1928, with RFC 1929 username/password), given
//! explicitly or, like curl and Python `websockets`, taken from the
//! environment.
//!
//! The proxy only opens a TCP tunnel; TLS (for `wss://`) and the WebSocket
//! handshake then run through it end to end, so the proxy sees neither.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, lookup_host};
use url::Url;

use super::error::{Error, authority as host_port, io_message};
use super::resolve::Dialer;
use crate::handshake::{DEFAULT_MAX_HEAD_SIZE, parse_response_head};

/// How the proxy is asked to open the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyKind {
    /// An HTTP proxy: `CONNECT host:port HTTP/1.1`.
    Http,
    /// A SOCKS5 proxy. With `remote_dns` (`socks5h://`) the proxy resolves
    /// the server's name; without (`socks5://`) the client does and sends
    /// an address.
    Socks5 {
        /// Whether the proxy resolves the name.
        remote_dns: bool,
    },
}

/// A proxy to tunnel through: `http://[USER:PASSWORD@]HOST[:PORT]`,
/// `socks5://...` or `socks5h://...`.
///
/// ```
/// use ws_core::client::{Proxy, ProxyKind};
///
/// let proxy: Proxy = "http://user:secret@proxy.example:3128".parse()?;
/// assert_eq!(proxy.kind(), ProxyKind::Http);
/// assert_eq!((proxy.host(), proxy.port()), ("proxy.example", 3128));
/// // The password stays out of messages and logs.
/// assert_eq!(proxy.to_string(), "http://proxy.example:3128");
/// # Ok::<(), ws_core::client::ProxyUrlError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    kind: ProxyKind,
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
}

/// Credentials stay out of debug output (and so out of logs).
impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<hidden>"),
            )
            .finish()
    }
}

/// The proxy as a URL, without its password.
impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.kind {
            ProxyKind::Http => "http",
            ProxyKind::Socks5 { remote_dns: false } => "socks5",
            ProxyKind::Socks5 { remote_dns: true } => "socks5h",
        };
        write!(f, "{scheme}://{}", host_port(&self.host, self.port))
    }
}

/// A proxy URL that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?}: {reason}")]
pub struct ProxyUrlError {
    text: String,
    reason: String,
}

impl ProxyUrlError {
    fn new(text: &str, reason: impl Into<String>) -> Self {
        Self {
            text: text.to_owned(),
            reason: reason.into(),
        }
    }

    /// What is wrong, without the URL.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl Proxy {
    /// A proxy without credentials. The host is a name or an IP address
    /// (IPv6 without brackets).
    pub fn new(kind: ProxyKind, host: impl Into<String>, port: u16) -> Self {
        Self {
            kind,
            host: host.into(),
            port,
            credentials: None,
        }
    }

    /// Sets the user name and password: `Proxy-Authorization: Basic` for an
    /// HTTP proxy, RFC 1929 authentication for SOCKS5.
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    /// Parses a proxy URL: `http://[USER:PASSWORD@]HOST[:PORT]` (port 80 by
    /// default), `socks5://…` or `socks5h://…` (port 1080 by default). A URL
    /// without a scheme is an HTTP proxy, as curl takes it. The user name
    /// and password are percent-decoded.
    pub fn parse(text: &str) -> Result<Self, ProxyUrlError> {
        let text = text.trim();
        let with_scheme = if text.contains("://") {
            text.to_owned()
        } else {
            format!("http://{text}")
        };
        let url = Url::parse(&with_scheme)
            .map_err(|error| ProxyUrlError::new(text, error.to_string()))?;
        let (kind, default_port) = match url.scheme() {
            "http" => (ProxyKind::Http, 80),
            "socks5" => (ProxyKind::Socks5 { remote_dns: false }, 1080),
            "socks5h" => (ProxyKind::Socks5 { remote_dns: true }, 1080),
            "https" => {
                return Err(ProxyUrlError::new(
                    text,
                    "TLS to the proxy (https://) is not supported; use http://, socks5:// or socks5h://",
                ));
            }
            other => {
                return Err(ProxyUrlError::new(
                    text,
                    format!(
                        "unsupported proxy scheme {other:?}; use http://, socks5:// or socks5h://"
                    ),
                ));
            }
        };
        let host = match url.host() {
            Some(url::Host::Domain(name)) => name.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(ProxyUrlError::new(text, "the proxy URL has no host")),
        };
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(ProxyUrlError::new(
                text,
                "a proxy URL is SCHEME://[USER:PASSWORD@]HOST[:PORT], without a path",
            ));
        }
        let credentials = if url.username().is_empty() && url.password().is_none() {
            None
        } else {
            let decode = |part: &str| {
                percent_decode(part).map_err(|reason| ProxyUrlError::new(text, reason))
            };
            Some((
                decode(url.username())?,
                decode(url.password().unwrap_or_default())?,
            ))
        };
        Ok(Self {
            kind,
            host,
            port: url.port().unwrap_or(default_port),
            credentials,
        })
    }

    /// The protocol spoken to the proxy.
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// The proxy's host: a name or an IP address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether a user name and password are set.
    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// The proxy the environment asks for to reach `host:port`, if any,
    /// the way curl and Python `websockets` choose it: for `ws://`
    /// (`secure` false) `ws_proxy`, then `http_proxy`; for `wss://`
    /// `wss_proxy`, then `https_proxy`; then `all_proxy`; each in lowercase
    /// first, then uppercase, the first non-empty one winning. `no_proxy`
    /// (or `NO_PROXY`) lists hosts reached directly: names (subdomains
    /// match, a leading dot is optional), IP addresses, CIDR ranges, each
    /// with an optional `:PORT`, or `*` for all. As with curl, loopback
    /// addresses go through the proxy unless `no_proxy` lists them.
    ///
    /// `lookup` reads a variable: `|name| std::env::var(name).ok()` for the
    /// process environment. A malformed value is [`Error::ProxyEnv`],
    /// naming the variable.
    pub fn from_env(
        secure: bool,
        host: &str,
        port: u16,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, Error> {
        let set = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let Some((variable, value)) = proxy_variables(secure)
            .into_iter()
            .find_map(|name| set(name).map(|value| (name, value)))
        else {
            return Ok(None);
        };
        if let Some(no_proxy) = set("no_proxy").or_else(|| set("NO_PROXY"))
            && bypasses(&no_proxy, host, port)
        {
            return Ok(None);
        }
        Self::parse(&value)
            .map(Some)
            .map_err(|source| Error::ProxyEnv { variable, source })
    }
}

impl FromStr for Proxy {
    type Err = ProxyUrlError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

fn percent_decode(text: &str) -> Result<String, String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' {
            let hex = tail
                .get(..2)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or("malformed percent-encoding in the proxy credentials")?;
            bytes.push(hex);
            rest = tail.get(2..).unwrap_or_default();
        } else {
            bytes.push(byte);
            rest = tail;
        }
    }
    String::from_utf8(bytes).map_err(|_| "the proxy credentials are not UTF-8".to_owned())
}

/// The variables consulted for a connection, in order: the WebSocket
/// scheme's own, then the matching HTTP scheme's, then `all_proxy`; each in
/// lowercase first, as curl and Python do.
fn proxy_variables(secure: bool) -> [&'static str; 6] {
    if secure {
        [
            "wss_proxy",
            "WSS_PROXY",
            "https_proxy",
            "HTTPS_PROXY",
            "all_proxy",
            "ALL_PROXY",
        ]
    } else {
        [
            "ws_proxy",
            "WS_PROXY",
            "http_proxy",
            "HTTP_PROXY",
            "all_proxy",
            "ALL_PROXY",
        ]
    }
}

/// Whether a `no_proxy` list names `host:port`: `*` (everything); a domain,
/// with or without a leading dot (or `*.`), matching itself and its
/// subdomains; an IP address; a CIDR range (`10.0.0.0/8`); each optionally
/// with `:port` (IPv6 in brackets for that). Case does not matter.
fn bypasses(no_proxy: &str, host: &str, port: u16) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let host_ip: Option<IpAddr> = host.parse().ok();
    no_proxy
        .split(|c: char| c == ',' || c.is_whitespace())
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let (pattern, entry_port) = split_port(entry);
            if entry_port.is_some_and(|p| p != port) {
                return false;
            }
            let pattern = pattern.to_ascii_lowercase();
            if let Some((network, bits)) = pattern.split_once('/') {
                return host_ip.is_some_and(|ip| in_network(ip, network, bits));
            }
            if let Ok(ip) = pattern.parse::<IpAddr>() {
                return host_ip == Some(ip);
            }
            let domain = pattern
                .trim_start_matches("*.")
                .trim_start_matches('.')
                .trim_end_matches('.');
            !domain.is_empty()
                && (host == domain
                    || host
                        .strip_suffix(domain)
                        .is_some_and(|prefix| prefix.ends_with('.')))
        })
}

/// Splits `host:port`, `[v6]:port`, `[v6]`, or a bare IPv6 address (whose
/// colons are not a port).
fn split_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((ip, tail)) => (ip, tail.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (entry, None),
        };
    }
    match entry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(port) => (host, Some(port)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

fn in_network(ip: IpAddr, network: &str, bits: &str) -> bool {
    let (Ok(network), Ok(bits)) = (network.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (ip, network) {
        (IpAddr::V4(ip), IpAddr::V4(network)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(ip) & mask == u32::from(network) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(network)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(ip) & mask == u128::from(network) & mask
        }
        _ => false,
    }
}

/// Connects to the proxy (all its addresses, as [`Dialer`] dials) and has
/// it open a tunnel to `host:port`. The stream returned carries the
/// tunnel; the address is the proxy's.
pub(crate) async fn tunnel(
    dialer: &Dialer,
    proxy: &Proxy,
    host: &str,
    port: u16,
) -> Result<(TcpStream, SocketAddr), Error> {
    let (mut stream, address) = dialer
        .dial(&proxy.host, proxy.port)
        .await
        .map_err(|source| Error::ProxyUnreachable {
            proxy: proxy.clone(),
            source: Box::new(source),
        })?;
    let tunnel = match proxy.kind {
        ProxyKind::Http => http_connect(&mut stream, proxy, host, port).await,
        ProxyKind::Socks5 { remote_dns } => {
            socks5_connect(&mut stream, proxy, host, port, remote_dns).await
        }
    };
    tunnel.map_err(|error| match error {
        TunnelError::Io(source) => Error::ProxyIo {
            proxy: proxy.clone(),
            source,
        },
        TunnelError::Refused { status, message } => Error::ProxyRefused {
            proxy: proxy.clone(),
            status,
            message,
        },
        TunnelError::Broken(message) => Error::ProxyProtocol {
            proxy: proxy.clone(),
            message,
        },
    })?;
    Ok((stream, address))
}

/// Why a tunnel could not be opened.
#[derive(Debug)]
enum TunnelError {
    Io(std::io::Error),
    /// The proxy said no: its status (HTTP) or reply code (SOCKS5) if it
    /// sent one, and its answer.
    Refused {
        status: Option<u16>,
        message: String,
    },
    /// The proxy's answer does not follow the protocol.
    Broken(String),
}

impl TunnelError {
    fn refused(message: impl Into<String>) -> Self {
        Self::Refused {
            status: None,
            message: message.into(),
        }
    }
}

impl From<std::io::Error> for TunnelError {
    fn from(error: std::io::Error) -> Self {
        if error.kind() == std::io::ErrorKind::UnexpectedEof {
            Self::Broken("it closed the connection".to_owned())
        } else {
            Self::Io(error)
        }
    }
}

/// `CONNECT host:port`, then the proxy's response head, read byte by byte:
/// whatever follows the head belongs to the tunnel and must not be taken.
async fn http_connect<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    proxy: &Proxy,
    host: &str,
    port: u16,
) -> Result<(), TunnelError> {
    let target = host_port(host, port);
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some((user, password)) = &proxy.credentials {
        let token = STANDARD.encode(format!("{user}:{password}"));
        request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    stream.flush().await?;
    let mut head = Vec::with_capacity(256);
    let response = loop {
        let byte = stream.read_u8().await?;
        head.push(byte);
        if byte != b'\n' {
            continue;
        }
        match parse_response_head(&head, DEFAULT_MAX_HEAD_SIZE) {
            Ok(Some((response, _))) => break response,
            Ok(None) => {}
            Err(error) => return Err(TunnelError::Broken(error.to_string())),
        }
    };
    let status_line = format!("HTTP/1.1 {} {}", response.status, response.reason);
    let status_line = status_line.trim_end();
    if (200..300).contains(&response.status) {
        Ok(())
    } else {
        Err(TunnelError::Refused {
            status: Some(response.status),
            message: status_line
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        })
    }
}

/// SOCKS5 version byte.
const SOCKS5: u8 = 5;
const NO_AUTHENTICATION: u8 = 0;
const USERNAME_PASSWORD: u8 = 2;
const NO_ACCEPTABLE_METHOD: u8 = 0xff;
const CONNECT_COMMAND: u8 = 1;
const ADDRESS_IPV4: u8 = 1;
const ADDRESS_DOMAIN: u8 = 3;
const ADDRESS_IPV6: u8 = 4;

/// RFC 1928 method negotiation, RFC 1929 authentication if the proxy picks
/// it, then CONNECT.
async fn socks5_connect<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    proxy: &Proxy,
    host: &str,
    port: u16,
    remote_dns: bool,
) -> Result<(), TunnelError> {
    // Resolve first: a name the client cannot resolve is not the proxy's fault.
    let address = socks_address(host, port, remote_dns).await?;
    let greeting: &[u8] = if proxy.credentials.is_some() {
        &[SOCKS5, 2, NO_AUTHENTICATION, USERNAME_PASSWORD]
    } else {
        &[SOCKS5, 1, NO_AUTHENTICATION]
    };
    stream.write_all(greeting).await?;
    let mut choice = [0u8; 2];
    stream.read_exact(&mut choice).await?;
    match choice {
        [SOCKS5, NO_AUTHENTICATION] => {}
        [SOCKS5, USERNAME_PASSWORD] => match &proxy.credentials {
            Some((user, password)) => authenticate(stream, user, password).await?,
            None => return Err(refused_method()),
        },
        [SOCKS5, NO_ACCEPTABLE_METHOD] => {
            return Err(if proxy.credentials.is_some() {
                TunnelError::refused(
                    "the SOCKS5 proxy accepts neither no authentication nor a user name and password"
                        .to_owned(),
                )
            } else {
                refused_method()
            });
        }
        [version, method] => {
            return Err(TunnelError::Broken(format!(
                "SOCKS version {version}, method {method}"
            )));
        }
    }
    let mut request = vec![SOCKS5, CONNECT_COMMAND, 0];
    request.extend_from_slice(&address);
    stream.write_all(&request).await?;
    let mut reply = [0u8; 4];
    stream.read_exact(&mut reply).await?;
    let [version, code, _, address_type] = reply;
    if version != SOCKS5 {
        return Err(TunnelError::Broken(format!(
            "SOCKS version {version} in the reply"
        )));
    }
    if code != 0 {
        return Err(TunnelError::Refused {
            status: Some(u16::from(code)),
            message: format!(
                "SOCKS5 reply {code} ({}) for {}",
                socks_reply_text(code),
                host_port(host, port)
            ),
        });
    }
    // The address the proxy bound for us: read and ignored.
    let bound = match address_type {
        ADDRESS_IPV4 => 4,
        ADDRESS_IPV6 => 16,
        ADDRESS_DOMAIN => usize::from(stream.read_u8().await?),
        other => {
            return Err(TunnelError::Broken(format!(
                "SOCKS5 address type {other} in the reply"
            )));
        }
    };
    let mut skipped = vec![0u8; bound + 2];
    stream.read_exact(&mut skipped).await?;
    Ok(())
}

fn refused_method() -> TunnelError {
    TunnelError::refused(
        "the SOCKS5 proxy requires authentication; put USER:PASSWORD@ in the proxy URL".to_owned(),
    )
}

async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    user: &str,
    password: &str,
) -> Result<(), TunnelError> {
    let (Ok(user_len), Ok(password_len)) = (u8::try_from(user.len()), u8::try_from(password.len()))
    else {
        return Err(TunnelError::refused(
            "SOCKS5 user names and passwords are limited to 255 bytes".to_owned(),
        ));
    };
    let mut request = vec![1, user_len];
    request.extend_from_slice(user.as_bytes());
    request.push(password_len);
    request.extend_from_slice(password.as_bytes());
    stream.write_all(&request).await?;
    let mut status = [0u8; 2];
    stream.read_exact(&mut status).await?;
    let [_, code] = status;
    if code == 0 {
        Ok(())
    } else {
        Err(TunnelError::refused(
            "the SOCKS5 proxy rejected the user name and password".to_owned(),
        ))
    }
}

/// The SOCKS5 address of the target: a literal IP as such; a name as a
/// domain for `socks5h`, else resolved here to its first address.
async fn socks_address(host: &str, port: u16, remote_dns: bool) -> Result<Vec<u8>, TunnelError> {
    let ip = match host.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) if remote_dns => {
            let len = u8::try_from(host.len()).map_err(|_| {
                TunnelError::refused(format!("host name {host:?} is longer than 255 bytes"))
            })?;
            let mut address = vec![ADDRESS_DOMAIN, len];
            address.extend_from_slice(host.as_bytes());
            address.extend_from_slice(&port.to_be_bytes());
            return Ok(address);
        }
        Err(_) => {
            let resolved: Option<SocketAddr> = lookup_host((host, port))
                .await
                .map_err(|error| {
                    TunnelError::refused(format!(
                        "cannot resolve {host} for the SOCKS5 proxy: {} (socks5h:// lets the proxy resolve it)",
                        io_message(&error)
                    ))
                })?
                .next();
            resolved
                .ok_or_else(|| {
                    TunnelError::refused(format!("cannot resolve {host}: no addresses"))
                })?
                .ip()
        }
    };
    let mut address = match ip {
        IpAddr::V4(ip) => [&[ADDRESS_IPV4][..], &ip.octets()].concat(),
        IpAddr::V6(ip) => [&[ADDRESS_IPV6][..], &ip.octets()].concat(),
    };
    address.extend_from_slice(&port.to_be_bytes());
    Ok(address)
}

/// RFC 1928 §6 reply codes.
fn socks_reply_text(code: u8) -> &'static str {
    match code {
        1 => "general SOCKS server failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unassigned reply code",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn chosen(secure: bool, host: &str, pairs: &[(&str, &str)]) -> Option<String> {
        Proxy::from_env(secure, host, 443, env(pairs))
            .unwrap()
            .map(|proxy| proxy.to_string())
    }

    #[test]
    fn proxy_urls_parse_with_default_ports_and_credentials() {
        let proxy = Proxy::parse("http://user:p%40ss@proxy.test:3128").unwrap();
        assert_eq!(proxy.kind(), ProxyKind::Http);
        assert_eq!((proxy.host(), proxy.port()), ("proxy.test", 3128));
        assert_eq!(
            proxy.credentials,
            Some(("user".to_owned(), "p@ss".to_owned()))
        );
        assert_eq!(Proxy::parse("http://proxy.test").unwrap().port(), 80);
        assert_eq!(
            Proxy::parse("proxy.test:8080").unwrap().kind(),
            ProxyKind::Http
        );
        let socks = Proxy::parse("socks5://[::1]").unwrap();
        assert_eq!(socks.kind(), ProxyKind::Socks5 { remote_dns: false });
        assert_eq!((socks.host(), socks.port()), ("::1", 1080));
        assert_eq!(
            Proxy::parse("socks5h://127.0.0.1:9050/").unwrap().kind(),
            ProxyKind::Socks5 { remote_dns: true }
        );
    }

    #[test]
    fn unsupported_or_malformed_proxy_urls_are_refused() {
        assert!(
            Proxy::parse("https://proxy.test")
                .unwrap_err()
                .reason()
                .contains("not supported")
        );
        assert!(
            Proxy::parse("socks4://proxy.test")
                .unwrap_err()
                .to_string()
                .contains("socks4")
        );
        assert!(Proxy::parse("http://proxy.test/path").is_err());
        assert!(Proxy::parse("http://").is_err());
    }

    #[test]
    fn the_password_never_shows_in_display_or_debug() {
        let proxy = Proxy::parse("http://user:secret@proxy.test:3128").unwrap();
        assert_eq!(proxy.to_string(), "http://proxy.test:3128");
        assert!(!format!("{proxy:?}").contains("secret"));
    }

    #[test]
    fn ws_uses_ws_proxy_then_http_proxy_then_all_proxy() {
        let all = [
            ("ws_proxy", "http://ws.test:1"),
            ("http_proxy", "http://http.test:2"),
            ("all_proxy", "http://all.test:3"),
            ("https_proxy", "http://https.test:4"),
        ];
        assert_eq!(
            chosen(false, "h", &all).as_deref(),
            Some("http://ws.test:1")
        );
        assert_eq!(
            chosen(false, "h", &all[1..]).as_deref(),
            Some("http://http.test:2")
        );
        assert_eq!(
            chosen(false, "h", &all[2..]).as_deref(),
            Some("http://all.test:3")
        );
        // https_proxy is for wss:// only.
        assert_eq!(chosen(false, "h", &all[3..]), None);
    }

    #[test]
    fn wss_uses_wss_proxy_then_https_proxy_then_all_proxy() {
        let all = [
            ("wss_proxy", "socks5h://wss.test:1"),
            ("https_proxy", "http://https.test:2"),
            ("ALL_PROXY", "http://all.test:3"),
            ("http_proxy", "http://http.test:4"),
        ];
        assert_eq!(
            chosen(true, "h", &all).as_deref(),
            Some("socks5h://wss.test:1")
        );
        assert_eq!(
            chosen(true, "h", &all[1..]).as_deref(),
            Some("http://https.test:2")
        );
        assert_eq!(
            chosen(true, "h", &all[2..]).as_deref(),
            Some("http://all.test:3")
        );
        assert_eq!(chosen(true, "h", &all[3..]), None);
    }

    #[test]
    fn lowercase_wins_over_uppercase_and_empty_values_are_unset() {
        let pairs = [
            ("https_proxy", "http://lower.test:1"),
            ("HTTPS_PROXY", "http://upper.test:2"),
        ];
        assert_eq!(
            chosen(true, "h", &pairs).as_deref(),
            Some("http://lower.test:1")
        );
        let pairs = [("wss_proxy", " "), ("HTTPS_PROXY", "http://upper.test:2")];
        assert_eq!(
            chosen(true, "h", &pairs).as_deref(),
            Some("http://upper.test:2")
        );
    }

    #[test]
    fn no_proxy_bypasses_the_environment_proxy() {
        let pairs = [
            ("https_proxy", "http://p.test:1"),
            ("no_proxy", "internal.test, 10.0.0.0/8"),
        ];
        assert_eq!(chosen(true, "api.internal.test", &pairs), None);
        assert_eq!(chosen(true, "10.1.2.3", &pairs), None);
        assert!(chosen(true, "example.com", &pairs).is_some());
        let upper = [("https_proxy", "http://p.test:1"), ("NO_PROXY", "*")];
        assert_eq!(chosen(true, "example.com", &upper), None);
    }

    #[test]
    fn a_malformed_environment_proxy_names_the_variable() {
        let error =
            Proxy::from_env(true, "h", 443, env(&[("https_proxy", "ftp://x")])).unwrap_err();
        assert!(
            matches!(
                &error,
                Error::ProxyEnv {
                    variable: "https_proxy",
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "invalid proxy in https_proxy: \"ftp://x\": unsupported proxy scheme \"ftp\"; use http://, socks5:// or socks5h://"
        );
    }

    #[test]
    fn no_proxy_matches_domains_on_label_boundaries() {
        for list in [
            "example.com",
            ".example.com",
            "*.example.com",
            "EXAMPLE.com",
        ] {
            assert!(bypasses(list, "example.com", 80), "{list}");
            assert!(bypasses(list, "ws.example.com", 80), "{list}");
            assert!(!bypasses(list, "badexample.com", 80), "{list}");
        }
        assert!(bypasses("example.com", "example.com.", 80));
        assert!(!bypasses("", "example.com", 80));
        assert!(!bypasses(" , ", "example.com", 80));
    }

    #[test]
    fn no_proxy_matches_addresses_ranges_and_ports() {
        assert!(bypasses("127.0.0.1", "127.0.0.1", 80));
        assert!(!bypasses("127.0.0.1", "127.0.0.2", 80));
        assert!(bypasses("127.0.0.0/8", "127.9.9.9", 80));
        assert!(!bypasses("127.0.0.0/8", "128.0.0.1", 80));
        assert!(bypasses("::1", "::1", 80));
        assert!(bypasses("[::1]:8080", "::1", 8080));
        assert!(!bypasses("[::1]:8080", "::1", 8081));
        assert!(bypasses("fd00::/8", "fd12::1", 80));
        assert!(bypasses("example.com:443", "example.com", 443));
        assert!(!bypasses("example.com:443", "example.com", 80));
        assert!(bypasses("0.0.0.0/0", "203.0.113.9", 80));
    }

    #[test]
    fn loopback_is_proxied_unless_listed_as_curl_does() {
        let pairs = [("http_proxy", "http://p.test:1")];
        assert!(chosen(false, "127.0.0.1", &pairs).is_some());
        assert!(chosen(false, "localhost", &pairs).is_some());
    }

    /// Runs `client` against a scripted proxy peer on an in-memory pipe.
    async fn scripted<F, Fut>(client: F, proxy_side: &[u8]) -> (Result<(), TunnelError>, Vec<u8>)
    where
        F: FnOnce(tokio::io::DuplexStream) -> Fut,
        Fut: Future<Output = (Result<(), TunnelError>, tokio::io::DuplexStream)>,
    {
        let (near, mut far) = tokio::io::duplex(4096);
        far.write_all(proxy_side).await.unwrap();
        let (result, near) = client(near).await;
        drop(near);
        let mut sent = Vec::new();
        far.read_to_end(&mut sent).await.unwrap();
        (result, sent)
    }

    #[tokio::test]
    async fn http_connect_sends_authority_host_and_basic_credentials() {
        let proxy = Proxy::parse("http://aladdin:opensesame@p.test").unwrap();
        let (result, sent) = scripted(
            |mut s| async {
                let r = http_connect(&mut s, &proxy, "::1", 9001).await;
                (r, s)
            },
            b"HTTP/1.1 200 Connection established\r\n\r\n",
        )
        .await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(
            String::from_utf8(sent).unwrap(),
            "CONNECT [::1]:9001 HTTP/1.1\r\nHost: [::1]:9001\r\n\
             Proxy-Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn http_connect_leaves_bytes_after_the_head_in_the_stream() {
        let proxy = Proxy::parse("http://p.test").unwrap();
        let (near, mut far) = tokio::io::duplex(4096);
        far.write_all(b"HTTP/1.0 200 OK\r\nX: y\r\n\r\nTUNNEL")
            .await
            .unwrap();
        let mut near = near;
        http_connect(&mut near, &proxy, "h", 1).await.unwrap();
        let mut rest = [0u8; 6];
        near.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"TUNNEL");
    }

    #[tokio::test]
    async fn http_connect_refusal_carries_the_status_line() {
        let proxy = Proxy::parse("http://p.test").unwrap();
        let (result, _) = scripted(
            |mut s| async {
                let r = http_connect(&mut s, &proxy, "h", 1).await;
                (r, s)
            },
            b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n",
        )
        .await;
        match result {
            Err(TunnelError::Refused {
                message: line,
                status,
            }) => {
                assert_eq!(line, "HTTP/1.1 407 Proxy Authentication Required");
                assert_eq!(status, Some(407));
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn socks5h_sends_the_domain_and_socks5_an_address() {
        let proxy = Proxy::parse("socks5h://p.test").unwrap();
        let reply = [5, 0, 5, 0, 0, 1, 127, 0, 0, 1, 0, 80];
        let (result, sent) = scripted(
            |mut s| async {
                let r = socks5_connect(&mut s, &proxy, "ws.test", 443, true).await;
                (r, s)
            },
            &reply,
        )
        .await;
        assert!(result.is_ok(), "{result:?}");
        let mut expected = vec![5, 1, 0, 5, 1, 0, 3, 7];
        expected.extend_from_slice(b"ws.test");
        expected.extend_from_slice(&[1, 187]);
        assert_eq!(sent, expected);

        let proxy = Proxy::parse("socks5://p.test").unwrap();
        let (result, sent) = scripted(
            |mut s| async {
                let r = socks5_connect(&mut s, &proxy, "localhost", 80, false).await;
                (r, s)
            },
            &reply,
        )
        .await;
        assert!(result.is_ok(), "{result:?}");
        // localhost resolves here, to 127.0.0.1 or ::1.
        assert!(
            sent == [5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80]
                || sent.get(..7) == Some(&[5, 1, 0, 5, 1, 0, 4][..]),
            "{sent:?}"
        );
    }

    #[tokio::test]
    async fn socks5_authenticates_with_the_url_credentials() {
        let proxy = Proxy::parse("socks5://me:pw@p.test").unwrap();
        let reply = [
            5, 2, 1, 0, 5, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80,
        ];
        let (result, sent) = scripted(
            |mut s| async {
                let r = socks5_connect(&mut s, &proxy, "10.0.0.1", 80, false).await;
                (r, s)
            },
            &reply,
        )
        .await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(
            sent,
            [
                5, 2, 0, 2, // methods: none, user/password
                1, 2, b'm', b'e', 2, b'p', b'w', // RFC 1929
                5, 1, 0, 1, 10, 0, 0, 1, 0, 80 // CONNECT 10.0.0.1:80
            ]
        );
    }

    #[tokio::test]
    async fn socks5_failures_are_explained() {
        let proxy = Proxy::parse("socks5://p.test").unwrap();
        for (reply, expected) in [
            (&[5u8, 0xff][..], "requires authentication"),
            (
                &[5, 0, 5, 5, 0, 1][..],
                "SOCKS5 reply 5 (connection refused)",
            ),
        ] {
            let (result, _) = scripted(
                |mut s| async {
                    let r = socks5_connect(&mut s, &proxy, "10.0.0.1", 80, false).await;
                    (r, s)
                },
                reply,
            )
            .await;
            match result {
                Err(TunnelError::Refused { message: text, .. }) => {
                    assert!(text.contains(expected), "{text}")
                }
                other => panic!("{other:?}"),
            }
        }
        let proxy = Proxy::parse("socks5://u:bad@p.test").unwrap();
        let (result, _) = scripted(
            |mut s| async {
                let r = socks5_connect(&mut s, &proxy, "10.0.0.1", 80, false).await;
                (r, s)
            },
            &[5, 2, 1, 1],
        )
        .await;
        assert!(
            matches!(&result, Err(TunnelError::Refused { message: text, .. }) if text.contains("rejected")),
            "{result:?}"
        );
    }
}
