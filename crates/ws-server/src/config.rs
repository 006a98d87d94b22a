//! What the server is told to do: limits, timeouts and handshake policy.

use std::time::Duration;

use ws_core::deflate::DeflateConfig;
use ws_core::handshake::{AcceptOptions, HandshakeError, UpgradeRequest};

/// The server's settings; [`Default`] gives the documented CLI defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The largest message accepted; a larger one closes the connection with 1009.
    pub max_message_size: usize,
    /// The largest frame accepted; a larger one closes the connection with 1009.
    pub max_frame_size: usize,
    /// Open connections beyond this number get `503 Service Unavailable`.
    /// A WebSocket over HTTP/2 counts as a connection of its own: an HTTP/2
    /// connection counts once for its first WebSocket stream (or once with
    /// none), and once more for each further one; a stream past the limit
    /// is refused with 503 on that stream alone.
    pub max_connections: usize,
    /// The most echoed bytes a connection may have waiting to be written.
    /// Past it the server stops reading from that client until the client
    /// reads; if the backlog is still over the cap after
    /// [`close_timeout`](Self::close_timeout), the client is dropped. See
    /// [`default_max_backlog`] for the default.
    pub max_backlog: usize,
    /// Time for a client to send its complete request head (and for the
    /// server to answer it).
    pub handshake_timeout: Duration,
    /// Silence after which a connection is pinged, and closed with 1001 if
    /// the silence lasts as long again; `None` keeps silent connections open.
    pub idle_timeout: Option<Duration>,
    /// The longest silence after which a plaintext HTTP/1.1 WebSocket with
    /// nothing buffered or queued leaves its task and waits in the server's
    /// parking lot, which holds it in a fraction of a task's memory, until
    /// the client sends again, its idle timeout comes or the server stops.
    /// A connection parks after 10 ms of silence at first; each check that
    /// finds it busy doubles that, up to this, and one woken soon after
    /// parking waits this long from then on. Clients see no difference.
    /// `None` keeps every connection in its task, as do systems other than
    /// Linux (the lot watches parked sockets with an epoll instance).
    pub park_after: Option<Duration>,
    /// How long to wait for the peer's close frame after the server sent one;
    /// also how long a client may leave the server's writes blocked (reading
    /// nothing at all) or its backlog over [`max_backlog`](Self::max_backlog)
    /// before it is dropped.
    pub close_timeout: Duration,
    /// How long a shutdown waits for open connections to finish their
    /// closing handshakes.
    pub shutdown_timeout: Duration,
    /// The subprotocols the server may select, in order of preference; empty
    /// selects whatever the client offers first.
    pub protocols: Vec<String>,
    /// The `Origin` values accepted; empty accepts any.
    pub allowed_origins: Vec<String>,
    /// permessage-deflate settings; `None` declines every offer.
    pub deflate: Option<DeflateConfig>,
    /// Serve HTTP/2 (RFC 8441 WebSockets, the page, `/healthz`,
    /// `/metrics`): offered over TLS with ALPN `h2`, and taken on the
    /// plaintext port when a client opens with the HTTP/2 preface (prior
    /// knowledge). Off, only HTTP/1.1 is spoken.
    pub http2: bool,
    /// The streams (WebSockets and plain requests) one HTTP/2 client may
    /// have open at once: `SETTINGS_MAX_CONCURRENT_STREAMS`.
    pub max_streams_per_connection: u32,
}

/// Streams one HTTP/2 client may have open at once, by default.
pub const DEFAULT_MAX_STREAMS_PER_CONNECTION: u32 = 100;

impl Default for ServerConfig {
    fn default() -> Self {
        let core = ws_core::Config::default();
        Self {
            max_message_size: core.max_message_size,
            max_frame_size: core.max_frame_size,
            max_connections: 10_000,
            max_backlog: default_max_backlog(core.max_message_size),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: None,
            park_after: Some(Duration::from_secs(1)),
            close_timeout: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(5),
            protocols: Vec::new(),
            allowed_origins: Vec::new(),
            deflate: Some(DeflateConfig::default()),
            http2: true,
            max_streams_per_connection: DEFAULT_MAX_STREAMS_PER_CONNECTION,
        }
    }
}

/// Room for smaller echoes beside one message of the largest size.
pub const BACKLOG_HEADROOM: usize = 4 << 20;

/// The default cap on a connection's unsent output: one message of the
/// largest size plus 4 MiB.
///
/// A client that sends a message of the largest size and then reads its echo
/// never reaches the cap, however slow its link, so a well-behaved client is
/// never throttled; a client that keeps sending without reading reaches it
/// after little more than one large message. The memory a connection can pin
/// is then bounded by the cap, one message being assembled and the adapter's
/// read-ahead (one frame plus 64 KiB): 52 MiB with the default 16 MiB limits.
pub fn default_max_backlog(max_message_size: usize) -> usize {
    max_message_size.saturating_add(BACKLOG_HEADROOM)
}

impl ServerConfig {
    /// The protocol limits handed to each connection.
    pub fn core_config(&self) -> ws_core::Config {
        ws_core::Config::default()
            .max_frame_size(self.max_frame_size)
            .max_message_size(self.max_message_size)
            .deflate(self.deflate.clone())
            // The echo loop keeps the backlog under --max-backlog itself
            // (it stops reading and drains past it), so ws-core never has
            // to refuse an echo.
            .write_high_water(self.max_backlog.saturating_add(1))
            .write_low_water(self.max_backlog)
    }

    /// The HTTP/2 limits of each connection: the streams per connection,
    /// and ws-core's documented windows.
    pub fn http2_settings(&self) -> ws_core::http2::Settings {
        ws_core::http2::Settings::default().max_concurrent_streams(self.max_streams_per_connection)
    }

    /// The server's decision on a valid upgrade request: the origin check,
    /// then the subprotocol.
    ///
    /// A request without `Origin` passes the check: browsers always send the
    /// header, and any other client could send whatever value it liked, so
    /// refusing its absence would protect nothing.
    pub fn choose(&self, request: &UpgradeRequest) -> Result<AcceptOptions, HandshakeError> {
        if let Some(origin) = &request.origin
            && !self.origin_allowed(origin)
        {
            return Err(HandshakeError::ForbiddenOrigin(origin.clone()));
        }
        let protocol = if self.protocols.is_empty() {
            // Any subprotocol suits an echo, and a browser fails a connection
            // whose offered subprotocols were all ignored.
            request.protocols.first().cloned()
        } else {
            let supported: Vec<&str> = self.protocols.iter().map(String::as_str).collect();
            request.select_protocol(&supported)
        };
        Ok(AcceptOptions::default().protocol(protocol))
    }

    /// Origins are compared as browsers serialise them (scheme, host, port;
    /// case-insensitive), so a configured trailing slash is ignored.
    fn origin_allowed(&self, origin: &str) -> bool {
        self.allowed_origins.is_empty()
            || self
                .allowed_origins
                .iter()
                .any(|allowed| allowed.trim_end_matches('/').eq_ignore_ascii_case(origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ws_core::handshake::{parse_request_head, validate_upgrade};

    fn request(extra_headers: &str) -> UpgradeRequest {
        let raw = format!(
            "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             {extra_headers}\r\n"
        );
        let (head, _) = parse_request_head(raw.as_bytes(), 4096).unwrap().unwrap();
        validate_upgrade(head).unwrap()
    }

    #[test]
    fn default_selects_the_first_offered_subprotocol() {
        let accept = ServerConfig::default()
            .choose(&request("Sec-WebSocket-Protocol: chat, superchat\r\n"))
            .unwrap();
        assert_eq!(accept.protocol.as_deref(), Some("chat"));
    }

    #[test]
    fn no_subprotocol_is_selected_when_none_is_offered() {
        let accept = ServerConfig::default().choose(&request("")).unwrap();
        assert_eq!(accept.protocol, None);
    }

    #[test]
    fn configured_subprotocols_restrict_the_choice_in_server_order() {
        let config = ServerConfig {
            protocols: vec!["superchat".into(), "chat".into()],
            ..ServerConfig::default()
        };
        let offered = request("Sec-WebSocket-Protocol: chat, superchat\r\n");
        assert_eq!(
            config.choose(&offered).unwrap().protocol.as_deref(),
            Some("superchat")
        );
        let other = request("Sec-WebSocket-Protocol: mqtt\r\n");
        assert_eq!(config.choose(&other).unwrap().protocol, None);
    }

    #[test]
    fn listed_origins_pass_and_others_are_forbidden() {
        let config = ServerConfig {
            allowed_origins: vec!["https://Good.example/".into()],
            ..ServerConfig::default()
        };
        assert!(
            config
                .choose(&request("Origin: https://good.example\r\n"))
                .is_ok()
        );
        let refused = config
            .choose(&request("Origin: https://evil.example\r\n"))
            .unwrap_err();
        assert_eq!(refused.status(), 403);
        assert!(config.choose(&request("")).is_ok());
    }

    #[test]
    fn any_origin_passes_when_none_is_configured() {
        assert!(
            ServerConfig::default()
                .choose(&request("Origin: https://anything.example\r\n"))
                .is_ok()
        );
    }
}
