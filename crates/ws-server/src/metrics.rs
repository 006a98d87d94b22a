//! The server's counters, served at `GET /metrics` in the Prometheus text
//! exposition format (version 0.0.4).
//!
//! Every counter is a relaxed atomic: nothing here takes a lock, and a
//! scrape reads while connections keep counting. The per-message counters
//! (messages and payload bytes each way) are updated as each message is
//! echoed, so open connections are counted too; they are spread over
//! [`SHARDS`] cache lines, chosen per connection, so that worker threads
//! serving different connections rarely write to the same line. Everything
//! else changes once per connection at most.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The per-message counters are spread over this many cache lines.
pub const SHARDS: usize = 16;

/// The statuses an upgrade (or a plain request) can be refused or answered
/// with, each with its own counter; anything else is counted as `other`.
const STATUSES: [u16; 10] = [200, 400, 403, 404, 405, 408, 426, 431, 500, 503];

/// Close codes counted one by one: every code a close frame can carry
/// (1000–4999), 1005 (none sent) and 1006 (no close frame) included.
const FIRST_CODE: u16 = 1000;
const LAST_CODE: u16 = 4999;
const CODES: usize = (LAST_CODE - FIRST_CODE) as usize + 1;

/// Who ended a WebSocket connection, as the `closed_by` label reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedBy {
    /// The client sent the first close frame.
    Client,
    /// The server sent the first close frame (shutdown, idle timeout, a
    /// protocol violation) or dropped a client that did not read.
    Server,
    /// The TCP connection ended without a closing handshake.
    Transport,
}

impl ClosedBy {
    const ALL: [Self; 3] = [Self::Client, Self::Server, Self::Transport];

    /// The label value: `client`, `server` or `transport`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Server => "server",
            Self::Transport => "transport",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Client => 0,
            Self::Server => 1,
            Self::Transport => 2,
        }
    }
}

/// The per-message counters of the connections assigned to one shard, on a
/// cache line of their own.
///
/// An echo server sends back what it receives, so a message costs two
/// atomic additions: one message and its bytes, received and sent. The
/// rare message received but not echoed (one that arrives after the server
/// sent its close) is counted apart; received is the sum of both.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Traffic {
    messages_echoed: AtomicU64,
    bytes_echoed: AtomicU64,
    messages_not_echoed: AtomicU64,
    bytes_not_echoed: AtomicU64,
}

impl Traffic {
    /// Counts a data message of `len` payload bytes received and sent back
    /// (queued for the wire).
    #[inline]
    pub fn echoed(&self, len: u64) {
        self.messages_echoed.fetch_add(1, Ordering::Relaxed);
        self.bytes_echoed.fetch_add(len, Ordering::Relaxed);
    }

    /// Counts a data message of `len` payload bytes received but not sent
    /// back.
    pub fn not_echoed(&self, len: u64) {
        self.messages_not_echoed.fetch_add(1, Ordering::Relaxed);
        self.bytes_not_echoed.fetch_add(len, Ordering::Relaxed);
    }
}

/// The HTTP version a WebSocket was opened over: an HTTP/1.1 upgrade (one
/// TCP connection each) or an HTTP/2 extended CONNECT (a stream of a shared
/// connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/1.1 `Upgrade: websocket` (RFC 6455).
    Http1,
    /// HTTP/2 extended CONNECT (RFC 8441).
    Http2,
}

impl HttpVersion {
    /// Both versions, in the order they are shown.
    pub const ALL: [Self; 2] = [Self::Http1, Self::Http2];

    /// The version as the logs and the `http` label read: `1.1` or `2`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Http1 => "1.1",
            Self::Http2 => "2",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Http1 => 0,
            Self::Http2 => 1,
        }
    }
}

/// How the opening of a plain HTTP request or an upgrade ended, for the
/// counters by status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A plain HTTP request (the page, `/healthz`, `/metrics`, a 404 ...)
    /// answered with this status.
    Http(u16),
    /// An upgrade request (or a connection over the limit) refused with this
    /// status.
    Refused(u16),
}

/// Every counter the server keeps; rendered by [`Metrics::render`].
#[derive(Debug)]
pub struct Metrics {
    /// TCP connections being served, in any phase (TLS, the request head,
    /// a WebSocket session, the final linger).
    pub(crate) tcp_open: AtomicUsize,
    /// WebSocket streams over HTTP/2 beyond the first on their connection:
    /// with `tcp_open`, what `--max-connections` bounds.
    pub(crate) extra_streams: AtomicUsize,
    /// WebSockets open now and opened in all, by HTTP version.
    open_by_version: [AtomicU64; 2],
    total_by_version: [AtomicU64; 2],
    /// HTTP/2 connections served (TLS with ALPN `h2`, or prior knowledge).
    http2_connections: AtomicU64,
    /// WebSocket connections open now (upgraded and not yet ended).
    websocket_open: AtomicU64,
    /// Of those, the ones waiting in the parking lot (see `parking`).
    pub(crate) parked: AtomicU64,
    /// WebSocket connections that completed the opening handshake.
    websocket_total: AtomicU64,
    /// Of those, the ones that negotiated permessage-deflate.
    deflate_negotiated: AtomicU64,
    traffic: [Traffic; SHARDS],
    /// Upgrades refused, by status (index in `STATUSES`, then `other`).
    refused: [AtomicU64; STATUSES.len() + 1],
    /// Plain HTTP requests answered, by status.
    http: [AtomicU64; STATUSES.len() + 1],
    /// TLS handshakes that failed.
    tls_failures: AtomicU64,
    /// Connections dropped because the opening (TLS and the request head)
    /// did not finish within the handshake timeout.
    handshake_timeouts: AtomicU64,
    /// WebSocket connections ended, by who ended them and the close code;
    /// `CODES` counters per closer, then one for any other code.
    closes: Box<[AtomicU64]>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// All counters at zero.
    pub fn new() -> Self {
        Self {
            tcp_open: AtomicUsize::new(0),
            extra_streams: AtomicUsize::new(0),
            open_by_version: Default::default(),
            total_by_version: Default::default(),
            http2_connections: AtomicU64::new(0),
            websocket_open: AtomicU64::new(0),
            parked: AtomicU64::new(0),
            websocket_total: AtomicU64::new(0),
            deflate_negotiated: AtomicU64::new(0),
            traffic: Default::default(),
            refused: Default::default(),
            http: Default::default(),
            tls_failures: AtomicU64::new(0),
            handshake_timeouts: AtomicU64::new(0),
            closes: (0..ClosedBy::ALL.len() * (CODES + 1))
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    /// Counts a WebSocket connection that completed its opening handshake
    /// over `version` (and is open from now on), and returns the
    /// per-message counters it is to use.
    pub fn opened(&self, deflate: bool, version: HttpVersion) -> &Traffic {
        let sequence = self.websocket_total.fetch_add(1, Ordering::Relaxed);
        self.websocket_open.fetch_add(1, Ordering::Relaxed);
        if let Some(open) = self.open_by_version.get(version.index()) {
            open.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(total) = self.total_by_version.get(version.index()) {
            total.fetch_add(1, Ordering::Relaxed);
        }
        if deflate {
            self.deflate_negotiated.fetch_add(1, Ordering::Relaxed);
        }
        self.traffic(sequence)
    }

    /// The traffic counters a connection adds to: one of several shards, so
    /// that busy connections on different threads do not write to the same
    /// cache line. Any `key` will do; the shards are summed.
    pub(crate) fn traffic(&self, key: u64) -> &Traffic {
        let shard = (key % SHARDS as u64) as usize;
        // `shard` is below SHARDS, so this is always `Some`.
        self.traffic.get(shard).unwrap_or(&self.traffic[0])
    }

    /// Counts the end of a WebSocket connection counted by
    /// [`opened`](Self::opened) with the same `version`.
    pub fn closed(&self, by: ClosedBy, code: u16, version: HttpVersion) {
        self.websocket_open.fetch_sub(1, Ordering::Relaxed);
        if let Some(open) = self.open_by_version.get(version.index()) {
            open.fetch_sub(1, Ordering::Relaxed);
        }
        let slot = if (FIRST_CODE..=LAST_CODE).contains(&code) {
            usize::from(code - FIRST_CODE)
        } else {
            CODES
        };
        if let Some(counter) = self.closes.get(by.index() * (CODES + 1) + slot) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a plain HTTP answer or a refused upgrade.
    pub fn answered(&self, answer: Answer) {
        let (counters, status) = match answer {
            Answer::Http(status) => (&self.http, status),
            Answer::Refused(status) => (&self.refused, status),
        };
        let slot = STATUSES
            .iter()
            .position(|&known| known == status)
            .unwrap_or(STATUSES.len());
        if let Some(counter) = counters.get(slot) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a TLS handshake that failed (a timeout counts as a
    /// [handshake timeout](Self::handshake_timed_out) instead).
    pub fn tls_failed(&self) {
        self.tls_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection dropped because its opening (TLS and the request
    /// head) did not finish within the handshake timeout.
    pub fn handshake_timed_out(&self) {
        self.handshake_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an HTTP/2 connection whose HTTP/2 handshake completed.
    pub fn http2_connection(&self) {
        self.http2_connections.fetch_add(1, Ordering::Relaxed);
    }

    /// WebSockets open now over `version`.
    pub fn open_over(&self, version: HttpVersion) -> u64 {
        self.open_by_version
            .get(version.index())
            .map_or(0, |open| open.load(Ordering::Relaxed))
    }

    /// WebSockets opened over `version` since the start.
    pub fn total_over(&self, version: HttpVersion) -> u64 {
        self.total_by_version
            .get(version.index())
            .map_or(0, |total| total.load(Ordering::Relaxed))
    }

    /// What `--max-connections` bounds: TCP connections in any phase, plus
    /// the WebSocket streams over HTTP/2 beyond the first on their
    /// connection.
    pub fn connection_slots(&self) -> usize {
        self.tcp_open
            .load(Ordering::Relaxed)
            .saturating_add(self.extra_streams.load(Ordering::Relaxed))
    }

    /// WebSocket connections that completed the opening handshake.
    pub fn connections_total(&self) -> u64 {
        self.websocket_total.load(Ordering::Relaxed)
    }

    /// Data messages sent back to clients, open connections included.
    pub fn messages_sent(&self) -> u64 {
        self.traffic
            .iter()
            .map(|shard| shard.messages_echoed.load(Ordering::Relaxed))
            .sum()
    }

    /// The counters in the Prometheus text exposition format (0.0.4): a
    /// `# HELP` and a `# TYPE` line per metric, then its samples.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let sum = |field: fn(&Traffic) -> &AtomicU64| -> u64 {
            self.traffic.iter().map(|shard| load(field(shard))).sum()
        };
        let echoed = sum(|shard| &shard.messages_echoed);
        let echoed_bytes = sum(|shard| &shard.bytes_echoed);
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let one = |value: u64| [(String::new(), value)];
        metric(
            "ws_server_connections_open",
            "gauge",
            "WebSocket connections open now.",
            &one(load(&self.websocket_open)),
        );
        metric(
            "ws_server_connections_parked",
            "gauge",
            "WebSocket connections open now that wait, idle, without a task of their own (counted in ws_server_connections_open too; see --park-after).",
            &one(load(&self.parked)),
        );
        metric(
            "ws_server_connections_total",
            "counter",
            "WebSocket connections that completed the opening handshake.",
            &one(load(&self.websocket_total)),
        );
        let by_version = |counters: &[AtomicU64; 2]| -> Vec<(String, u64)> {
            HttpVersion::ALL
                .iter()
                .zip(counters)
                .map(|(version, counter)| {
                    (format!("{{http=\"{}\"}}", version.label()), load(counter))
                })
                .collect()
        };
        metric(
            "ws_server_connections_by_http_open",
            "gauge",
            "WebSocket connections open now, by the HTTP version they were opened over (1.1: upgrade; 2: extended CONNECT stream).",
            &by_version(&self.open_by_version),
        );
        metric(
            "ws_server_connections_by_http_total",
            "counter",
            "WebSocket connections that completed the opening handshake, by HTTP version.",
            &by_version(&self.total_by_version),
        );
        metric(
            "ws_server_http2_connections_total",
            "counter",
            "HTTP/2 connections served (TLS with ALPN h2, or plaintext with prior knowledge).",
            &one(load(&self.http2_connections)),
        );
        metric(
            "ws_server_tcp_connections_open",
            "gauge",
            "TCP connections being served in any phase (TLS, HTTP, WebSocket).",
            &one(self.tcp_open.load(Ordering::Relaxed) as u64),
        );
        metric(
            "ws_server_deflate_negotiated_total",
            "counter",
            "WebSocket connections that negotiated permessage-deflate.",
            &one(load(&self.deflate_negotiated)),
        );
        metric(
            "ws_server_messages_received_total",
            "counter",
            "Text and binary messages received from clients.",
            &one(echoed.saturating_add(sum(|shard| &shard.messages_not_echoed))),
        );
        metric(
            "ws_server_messages_sent_total",
            "counter",
            "Text and binary messages sent to clients (echoes).",
            &one(echoed),
        );
        metric(
            "ws_server_message_bytes_received_total",
            "counter",
            "Payload bytes of the messages received (after decompression).",
            &one(echoed_bytes.saturating_add(sum(|shard| &shard.bytes_not_echoed))),
        );
        metric(
            "ws_server_message_bytes_sent_total",
            "counter",
            "Payload bytes of the messages sent (before compression).",
            &one(echoed_bytes),
        );
        metric(
            "ws_server_upgrades_refused_total",
            "counter",
            "Upgrade requests refused, by HTTP status (503: over --max-connections).",
            &by_status(&self.refused),
        );
        metric(
            "ws_server_http_requests_total",
            "counter",
            "Plain HTTP requests (not upgrades) answered, by HTTP status.",
            &by_status(&self.http),
        );
        metric(
            "ws_server_tls_handshake_failures_total",
            "counter",
            "TLS handshakes that failed (plain HTTP or garbage on a TLS port, a client that gave up).",
            &one(load(&self.tls_failures)),
        );
        metric(
            "ws_server_handshake_timeouts_total",
            "counter",
            "Connections dropped because TLS and the request head did not finish within --handshake-timeout.",
            &one(load(&self.handshake_timeouts)),
        );
        let mut closes = Vec::new();
        for by in ClosedBy::ALL {
            let base = by.index() * (CODES + 1);
            for slot in 0..=CODES {
                let value = self.closes.get(base + slot).map_or(0, load);
                if value == 0 {
                    continue;
                }
                let code = if slot == CODES {
                    "other".to_owned()
                } else {
                    (usize::from(FIRST_CODE) + slot).to_string()
                };
                closes.push((
                    format!("{{closed_by=\"{}\",code=\"{code}\"}}", by.label()),
                    value,
                ));
            }
        }
        metric(
            "ws_server_closes_total",
            "counter",
            "WebSocket connections ended, by who started the close and the close code \
             (1005: the close frame had no code; 1006: no closing handshake).",
            &closes,
        );
        out
    }
}

/// One sample per known status (zeros included, so that a rate over them
/// exists before the first event), then `other` if it is not zero.
fn by_status(counters: &[AtomicU64]) -> Vec<(String, u64)> {
    let mut samples: Vec<(String, u64)> = STATUSES
        .iter()
        .zip(counters)
        .map(|(status, counter)| {
            (
                format!("{{status=\"{status}\"}}"),
                counter.load(Ordering::Relaxed),
            )
        })
        .collect();
    let other = counters
        .get(STATUSES.len())
        .map_or(0, |counter| counter.load(Ordering::Relaxed));
    if other > 0 {
        samples.push(("{status=\"other\"}".to_owned(), other));
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample `name` (with its labels, as rendered).
    fn sample(text: &str, name: &str) -> Option<u64> {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|value| value.parse().ok())
    }

    #[test]
    fn fresh_metrics_are_zero_with_help_and_type_for_every_metric() {
        let text = Metrics::new().render();
        for name in [
            "ws_server_connections_open",
            "ws_server_connections_total",
            "ws_server_messages_received_total",
            "ws_server_message_bytes_sent_total",
            "ws_server_closes_total",
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
        }
        assert_eq!(sample(&text, "ws_server_connections_open"), Some(0));
        assert_eq!(
            sample(&text, "ws_server_upgrades_refused_total{status=\"403\"}"),
            Some(0)
        );
        assert!(!text.contains("ws_server_closes_total{"));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn traffic_from_every_shard_is_summed() {
        let metrics = Metrics::new();
        for _ in 0..SHARDS + 3 {
            let traffic = metrics.opened(false, HttpVersion::Http1);
            traffic.echoed(10);
        }
        metrics.opened(true, HttpVersion::Http2).not_echoed(7);
        let text = metrics.render();
        let echoing = (SHARDS + 3) as u64;
        assert_eq!(
            sample(&text, "ws_server_connections_total"),
            Some(echoing + 1)
        );
        assert_eq!(
            sample(&text, "ws_server_connections_open"),
            Some(echoing + 1)
        );
        assert_eq!(
            sample(&text, "ws_server_messages_received_total"),
            Some(echoing + 1)
        );
        assert_eq!(
            sample(&text, "ws_server_messages_sent_total"),
            Some(echoing)
        );
        assert_eq!(
            sample(&text, "ws_server_message_bytes_received_total"),
            Some(10 * echoing + 7)
        );
        assert_eq!(
            sample(&text, "ws_server_message_bytes_sent_total"),
            Some(10 * echoing)
        );
        assert_eq!(metrics.messages_sent(), echoing);
    }

    #[test]
    fn closes_are_counted_by_closer_and_code() {
        let metrics = Metrics::new();
        let _ = metrics.opened(true, HttpVersion::Http1);
        let _ = metrics.opened(false, HttpVersion::Http2);
        let _ = metrics.opened(false, HttpVersion::Http2);
        metrics.closed(ClosedBy::Client, 1000, HttpVersion::Http1);
        metrics.closed(ClosedBy::Client, 4321, HttpVersion::Http2);
        metrics.closed(ClosedBy::Transport, 1006, HttpVersion::Http2);
        let text = metrics.render();
        assert_eq!(
            sample(
                &text,
                "ws_server_closes_total{closed_by=\"client\",code=\"1000\"}"
            ),
            Some(1)
        );
        assert_eq!(
            sample(
                &text,
                "ws_server_closes_total{closed_by=\"client\",code=\"4321\"}"
            ),
            Some(1)
        );
        assert_eq!(
            sample(
                &text,
                "ws_server_closes_total{closed_by=\"transport\",code=\"1006\"}"
            ),
            Some(1)
        );
        assert_eq!(sample(&text, "ws_server_connections_open"), Some(0));
        assert_eq!(sample(&text, "ws_server_deflate_negotiated_total"), Some(1));
    }

    #[test]
    fn websockets_are_counted_by_http_version() {
        let metrics = Metrics::new();
        let _ = metrics.opened(false, HttpVersion::Http1);
        let _ = metrics.opened(false, HttpVersion::Http2);
        let _ = metrics.opened(true, HttpVersion::Http2);
        metrics.closed(ClosedBy::Client, 1000, HttpVersion::Http2);
        metrics.http2_connection();
        let text = metrics.render();
        let open = |http| format!("ws_server_connections_by_http_open{{http=\"{http}\"}}");
        let total = |http| format!("ws_server_connections_by_http_total{{http=\"{http}\"}}");
        assert_eq!(sample(&text, &open("1.1")), Some(1));
        assert_eq!(sample(&text, &open("2")), Some(1));
        assert_eq!(sample(&text, &total("1.1")), Some(1));
        assert_eq!(sample(&text, &total("2")), Some(2));
        assert_eq!(sample(&text, "ws_server_http2_connections_total"), Some(1));
        assert_eq!(metrics.open_over(HttpVersion::Http2), 1);
        assert_eq!(metrics.total_over(HttpVersion::Http2), 2);
    }

    #[test]
    fn an_unknown_status_or_code_is_counted_as_other() {
        let metrics = Metrics::new();
        metrics.answered(Answer::Refused(418));
        metrics.answered(Answer::Refused(403));
        metrics.answered(Answer::Http(200));
        let _ = metrics.opened(false, HttpVersion::Http1);
        metrics.closed(ClosedBy::Server, 0, HttpVersion::Http1);
        let text = metrics.render();
        assert_eq!(
            sample(&text, "ws_server_upgrades_refused_total{status=\"other\"}"),
            Some(1)
        );
        assert_eq!(
            sample(&text, "ws_server_upgrades_refused_total{status=\"403\"}"),
            Some(1)
        );
        assert_eq!(
            sample(&text, "ws_server_http_requests_total{status=\"200\"}"),
            Some(1)
        );
        assert_eq!(
            sample(
                &text,
                "ws_server_closes_total{closed_by=\"server\",code=\"other\"}"
            ),
            Some(1)
        );
    }
}
