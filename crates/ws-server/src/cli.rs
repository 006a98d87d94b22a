//! The command line of `ws-server`.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use clap::builder::BoolishValueParser;
use tracing_subscriber::EnvFilter;

use crate::config::{ServerConfig, default_max_backlog};
use crate::units::{
    OptionalDuration, format_size, parse_duration, parse_optional_duration,
    parse_positive_duration, parse_size,
};

/// The longest control frame payload (RFC 6455 §5.5): the frame limit may not
/// go below it, or close frames and pings could not be received.
const MIN_FRAME_SIZE: usize = 125;

/// A WebSocket (RFC 6455) echo server.
///
/// Echoes every text and binary message back to its sender, answers pings,
/// and completes the closing handshake. The same port serves a small test
/// page at `/` and a health check at `/healthz`, over HTTP/1.1 and HTTP/2
/// (WebSockets on HTTP/2 streams, RFC 8441: see --http2).
///
/// Prints `listening on ws://HOST:PORT` (`wss://` with --tls-cert) on
/// stdout once it accepts connections, then `test page: http://HOST:PORT/`.
/// `GET /metrics` serves Prometheus metrics. On SIGINT or SIGTERM it sends
/// close 1001 to every client, waits for their replies (see
/// --shutdown-timeout), prints a one-line summary and exits with status 0.
///
/// Every option can also be set with the environment variable shown beside
/// it (`WS_SERVER_LISTEN=0.0.0.0:8000`); an option on the command line wins
/// over its variable. Boolean variables take true/false, 1/0, yes/no or
/// on/off; list variables take comma-separated values.
#[derive(Debug, Clone, Parser)]
#[command(name = "ws-server", version)]
pub struct Args {
    /// Address to listen on, as HOST:PORT; IPv6 in brackets (`[::1]:8000`).
    /// A bare PORT binds 127.0.0.1 (this machine only; use 0.0.0.0:PORT to
    /// accept other hosts). Port 0 picks a free port, and the ready line
    /// shows the real one.
    #[arg(long, env = "WS_SERVER_LISTEN", value_name = "ADDR", default_value = "127.0.0.1:8000", value_parser = parse_listen)]
    pub listen: String,

    /// Worker threads; 1 runs everything on a single thread
    /// [default: the number of CPU cores].
    #[arg(long, env = "WS_SERVER_THREADS", value_name = "N")]
    pub threads: Option<NonZeroUsize>,

    /// Largest message accepted (bytes, or with KiB/MiB/GiB); a larger one
    /// closes the connection with 1009. A message of exactly this size is
    /// accepted.
    #[arg(long, env = "WS_SERVER_MAX_MESSAGE_SIZE", value_name = "SIZE", default_value = "16MiB", value_parser = parse_size)]
    pub max_message_size: usize,

    /// Largest frame accepted (bytes, or with KiB/MiB/GiB; at least 125); a
    /// larger one closes the connection with 1009.
    #[arg(long, env = "WS_SERVER_MAX_FRAME_SIZE", value_name = "SIZE", default_value = "16MiB", value_parser = parse_frame_size)]
    pub max_frame_size: usize,

    /// Most connections open at once; past it a new connection gets
    /// `HTTP/1.1 503 Service Unavailable` and is closed. Each WebSocket
    /// over HTTP/2 counts as a connection (an HTTP/2 connection counts once
    /// for its first WebSocket, or once while it has none); a stream past
    /// the limit gets 503 on that stream alone.
    #[arg(
        long,
        env = "WS_SERVER_MAX_CONNECTIONS",
        value_name = "N",
        default_value = "10000"
    )]
    pub max_connections: NonZeroUsize,

    /// Most echoed bytes a connection may have waiting to be written (bytes,
    /// or with KiB/MiB/GiB). Past it the server stops reading from that
    /// client until it reads its echoes; a client whose backlog is still over
    /// the cap after --close-timeout, or that reads nothing at all for that
    /// long while the server has data for it, is dropped. The default lets a
    /// client have one largest message and 4 MiB more in flight, so a client
    /// that reads its echoes is never throttled.
    /// [default: --max-message-size + 4MiB]
    #[arg(long, env = "WS_SERVER_MAX_BACKLOG", value_name = "SIZE", value_parser = parse_backlog)]
    pub max_backlog: Option<usize>,

    /// Time a client has to send its complete HTTP request (upgrade or
    /// plain); a slower one is dropped. Durations: 500ms, 10s, 2m, or plain
    /// seconds.
    #[arg(long, env = "WS_SERVER_HANDSHAKE_TIMEOUT", value_name = "DURATION", default_value = "10s", value_parser = parse_positive_duration)]
    pub handshake_timeout: Duration,

    /// Silence after which a connection is pinged; if the silence lasts as
    /// long again, it is closed with 1001. `off` (or 0) keeps silent
    /// connections open.
    #[arg(long, env = "WS_SERVER_IDLE_TIMEOUT", value_name = "DURATION", default_value = "off", value_parser = parse_optional_duration)]
    pub idle_timeout: OptionalDuration,

    /// The longest silence after which an idle plaintext (HTTP/1.1)
    /// WebSocket leaves its task and waits in the server's parking lot,
    /// using less memory, until the client sends again; clients see no
    /// difference. New connections park after 10 ms of silence, busy ones
    /// only after this. `off` (or 0) keeps every connection in its task,
    /// as do systems other than Linux (the lot watches sockets with epoll).
    #[arg(long, env = "WS_SERVER_PARK_AFTER", value_name = "DURATION", default_value = "1s", value_parser = parse_optional_duration)]
    pub park_after: OptionalDuration,

    /// How long to wait for the client's close frame after the server sent
    /// one (shutdown, idle timeout) before dropping the connection; also how
    /// long a client may leave the server's writes blocked (see
    /// --max-backlog).
    #[arg(long, env = "WS_SERVER_CLOSE_TIMEOUT", value_name = "DURATION", default_value = "5s", value_parser = parse_positive_duration)]
    pub close_timeout: Duration,

    /// On SIGINT/SIGTERM, how long to wait for open connections to finish
    /// their closing handshakes before exiting anyway.
    #[arg(long, env = "WS_SERVER_SHUTDOWN_TIMEOUT", value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Subprotocol the server may select (repeatable, or comma-separated;
    /// first listed is preferred). A client offering none of them is served
    /// without a subprotocol. [default: select the first one the client offers]
    #[arg(long = "protocol", env = "WS_SERVER_PROTOCOL", value_name = "NAME", value_delimiter = ',', value_parser = parse_protocol)]
    pub protocols: Vec<String>,

    /// Origin allowed to connect, e.g. `https://example.com` (repeatable, or
    /// comma-separated).
    /// When given, an upgrade request with any other Origin gets 403; a
    /// request without Origin (not a browser) is accepted.
    /// [default: any origin]
    #[arg(long = "allowed-origin", env = "WS_SERVER_ALLOWED_ORIGIN", value_name = "ORIGIN", value_delimiter = ',', value_parser = parse_origin)]
    pub allowed_origins: Vec<String>,

    /// Decline permessage-deflate (RFC 7692): every message goes out as it
    /// is, and no compression state is kept per connection.
    #[arg(long, env = "WS_SERVER_NO_DEFLATE", value_parser = BoolishValueParser::new())]
    pub no_deflate: bool,

    /// Largest deflate window (9-15 bits) the server compresses with and
    /// accepts from clients; smaller windows cost less memory per
    /// connection. A client that cannot be limited to it is served without
    /// compression.
    #[arg(long, env = "WS_SERVER_DEFLATE_WINDOW_BITS", value_name = "BITS", default_value_t = 15, value_parser = clap::value_parser!(u8).range(9..=15))]
    pub deflate_window_bits: u8,

    /// Keep a deflate context per connection and direction, when the client
    /// allows it: repeated content compresses better, but every connection
    /// that has exchanged compressed messages then holds about 420 KiB of
    /// zlib state (290 KiB with --deflate-window-bits 9: hash tables
    /// dominate, whatever the window). By default the server answers with
    /// server_no_context_takeover and client_no_context_takeover and
    /// compresses with one shared state per thread: nothing is kept per
    /// connection between messages.
    #[arg(long, env = "WS_SERVER_DEFLATE_CONTEXT_TAKEOVER", value_parser = BoolishValueParser::new())]
    pub deflate_context_takeover: bool,

    /// Serve `wss://` (and the page over https://) with this PEM certificate
    /// chain, leaf first; needs --tls-key. The ready line then reads
    /// `listening on wss://HOST:PORT`. The TLS handshake counts against
    /// --handshake-timeout; ALPN offers h2 (unless --http2 off) and
    /// http/1.1.
    #[arg(
        long,
        env = "WS_SERVER_TLS_CERT",
        value_name = "PATH",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert: PKCS#8 (`BEGIN PRIVATE KEY`), RSA
    /// (`BEGIN RSA PRIVATE KEY`) or EC (`BEGIN EC PRIVATE KEY`).
    #[arg(
        long,
        env = "WS_SERVER_TLS_KEY",
        value_name = "PATH",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// Serve HTTP/2 too (on or off): WebSockets over HTTP/2 streams (RFC
    /// 8441), many per connection, and the page, /healthz and /metrics.
    /// With --tls-cert, ALPN offers h2 and http/1.1; on a plaintext port, a
    /// client that opens with the HTTP/2 preface (prior knowledge) is
    /// served HTTP/2. Off, the preface is a bad HTTP/1.1 request.
    #[arg(long, env = "WS_SERVER_HTTP2", value_name = "on|off", default_value = "on", value_parser = BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub http2: bool,

    /// Streams (WebSockets and plain requests) one HTTP/2 client may have
    /// open at once (SETTINGS_MAX_CONCURRENT_STREAMS); the client waits, or
    /// gets REFUSED_STREAM, past it.
    #[arg(long, env = "WS_SERVER_MAX_STREAMS_PER_CONNECTION", value_name = "N", default_value = "100", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams_per_connection: u32,

    /// Log filter for stderr: error, warn, info, debug, trace or off, or
    /// tracing directives (ws_server=debug). Overrides RUST_LOG; without
    /// either, the level is info: one line per connection opened and
    /// closed, per plain HTTP request and per failed TLS handshake.
    #[arg(long, env = "WS_SERVER_LOG_LEVEL", value_name = "LEVEL", value_parser = parse_log_filter)]
    pub log_level: Option<String>,
}

impl Args {
    /// The address to bind: `--listen` as given, or `127.0.0.1:PORT` for a
    /// bare port.
    pub fn listen_address(&self) -> String {
        match bare_port(&self.listen) {
            Some(port) => format!("127.0.0.1:{port}"),
            None => self.listen.clone(),
        }
    }

    /// What to tell the user about how `--listen` was read, if anything:
    /// that a bare port binds the loopback address only.
    pub fn listen_note(&self) -> Option<String> {
        bare_port(&self.listen).map(|port| {
            format!(
                "--listen {port} binds 127.0.0.1:{port}, reachable from this machine only; \
                 use --listen 0.0.0.0:{port} (or [::]:{port}) to accept other hosts"
            )
        })
    }

    /// The server settings these arguments describe.
    pub fn server_config(&self) -> ServerConfig {
        ServerConfig {
            max_message_size: self.max_message_size,
            max_frame_size: self.max_frame_size,
            max_connections: self.max_connections.get(),
            max_backlog: self
                .max_backlog
                .unwrap_or_else(|| default_max_backlog(self.max_message_size)),
            handshake_timeout: self.handshake_timeout,
            idle_timeout: self.idle_timeout.0,
            park_after: self.park_after.0,
            close_timeout: self.close_timeout,
            shutdown_timeout: self.shutdown_timeout,
            protocols: self.protocols.clone(),
            allowed_origins: self.allowed_origins.clone(),
            deflate: (!self.no_deflate).then(|| {
                ws_core::deflate::DeflateConfig::default()
                    .window_bits(self.deflate_window_bits)
                    .context_takeover(self.deflate_context_takeover)
            }),
            http2: self.http2,
            max_streams_per_connection: self.max_streams_per_connection,
        }
    }

    /// The certificate and key files, when TLS is asked for (clap makes sure
    /// that both or neither are given).
    pub fn tls_files(&self) -> Option<(&Path, &Path)> {
        self.tls_cert.as_deref().zip(self.tls_key.as_deref())
    }

    /// The number of runtime worker threads: `--threads`, or one per core.
    pub fn worker_threads(&self) -> usize {
        self.threads
            .or_else(|| std::thread::available_parallelism().ok())
            .map_or(1, NonZeroUsize::get)
    }

    /// The log filter: `--log-level`, else `RUST_LOG`, else `info`. An
    /// unusable `RUST_LOG` is reported (as the returned warning) and ignored.
    pub fn log_filter(&self) -> (EnvFilter, Option<String>) {
        if let Some(level) = &self.log_level
            && let Ok(filter) = EnvFilter::try_new(level)
        {
            return (filter, None);
        }
        match std::env::var("RUST_LOG") {
            Ok(value) if !value.trim().is_empty() => match EnvFilter::try_new(&value) {
                Ok(filter) => (filter, None),
                Err(error) => (
                    EnvFilter::new("info"),
                    Some(format!("ignoring RUST_LOG={value:?}: {error}")),
                ),
            },
            _ => (EnvFilter::new("info"), None),
        }
    }
}

/// The port of a `--listen` value that is a bare port number (`8080`).
fn bare_port(text: &str) -> Option<u16> {
    if text.bytes().all(|byte| byte.is_ascii_digit()) {
        text.parse().ok()
    } else {
        None
    }
}

/// Checks the shape of `--listen` here, so a typo is a usage error; the name
/// itself is resolved when binding.
fn parse_listen(text: &str) -> Result<String, String> {
    if text.parse::<SocketAddr>().is_ok() || bare_port(text).is_some() {
        return Ok(text.to_owned());
    }
    let hint = "expected HOST:PORT or PORT, e.g. 127.0.0.1:8000, [::1]:8000, localhost:0 or 8000";
    let (host, port) = text.rsplit_once(':').ok_or(hint)?;
    if host.is_empty() || host.contains(':') || port.parse::<u16>().is_err() {
        return Err(hint.to_owned());
    }
    Ok(text.to_owned())
}

fn parse_frame_size(text: &str) -> Result<usize, String> {
    let size = parse_size(text)?;
    if size < MIN_FRAME_SIZE {
        return Err(format!(
            "must be at least {MIN_FRAME_SIZE} bytes, the largest control frame"
        ));
    }
    Ok(size)
}

fn parse_backlog(text: &str) -> Result<usize, String> {
    match parse_size(text)? {
        0 => Err("must be greater than zero".to_owned()),
        size => Ok(size),
    }
}

fn parse_protocol(text: &str) -> Result<String, String> {
    let name = text.trim();
    if ws_core::handshake::is_token(name) {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "{name:?} is not a valid subprotocol name (an HTTP token)"
        ))
    }
}

fn parse_origin(text: &str) -> Result<String, String> {
    let origin = text.trim();
    match origin.split_once("://") {
        Some((scheme, host))
            if !scheme.is_empty() && !host.is_empty() && !origin.contains(char::is_whitespace) =>
        {
            Ok(origin.to_owned())
        }
        _ => Err(format!(
            "{origin:?} is not an origin; expected SCHEME://HOST[:PORT], e.g. https://example.com"
        )),
    }
}

fn parse_log_filter(text: &str) -> Result<String, String> {
    EnvFilter::try_new(text)
        .map(|_| text.to_owned())
        .map_err(|error| format!("{error}"))
}

/// How the defaults read in messages (the same text `--help` shows).
pub fn describe_limits(config: &ServerConfig) -> String {
    format!(
        "max message {}, max frame {}, max connections {}, max backlog {}",
        format_size(config.max_message_size),
        format_size(config.max_frame_size),
        config.max_connections,
        format_size(config.max_backlog)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("ws-server").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.listen, "127.0.0.1:8000");
        assert_eq!(args.threads, None);
        assert_eq!(args.server_config(), ServerConfig::default());
    }

    #[test]
    fn every_option_is_parsed() {
        let args = parse(&[
            "--listen",
            "[::1]:0",
            "--threads",
            "1",
            "--max-message-size",
            "1KiB",
            "--max-frame-size",
            "512",
            "--max-connections",
            "3",
            "--max-backlog",
            "2MiB",
            "--handshake-timeout",
            "500ms",
            "--idle-timeout",
            "2m",
            "--park-after",
            "250ms",
            "--close-timeout",
            "1s",
            "--shutdown-timeout",
            "0",
            "--protocol",
            "chat",
            "--protocol",
            "a,b",
            "--allowed-origin",
            "https://example.com",
            "--log-level",
            "debug",
            "--http2",
            "off",
            "--max-streams-per-connection",
            "7",
        ])
        .unwrap();
        assert_eq!(args.worker_threads(), 1);
        let config = args.server_config();
        assert_eq!(config.max_message_size, 1024);
        assert_eq!(config.max_frame_size, 512);
        assert_eq!(config.max_connections, 3);
        assert_eq!(config.max_backlog, 2 << 20);
        assert_eq!(config.handshake_timeout, Duration::from_millis(500));
        assert_eq!(config.idle_timeout, Some(Duration::from_secs(120)));
        assert_eq!(config.park_after, Some(Duration::from_millis(250)));
        assert_eq!(config.close_timeout, Duration::from_secs(1));
        assert_eq!(config.shutdown_timeout, Duration::ZERO);
        assert_eq!(config.protocols, ["chat", "a", "b"]);
        assert_eq!(config.allowed_origins, ["https://example.com"]);
        assert_eq!(args.log_level.as_deref(), Some("debug"));
        assert!(!config.http2);
        assert_eq!(config.max_streams_per_connection, 7);
        assert_eq!(
            config.http2_settings(),
            ws_core::http2::Settings::default().max_concurrent_streams(7)
        );
    }

    #[test]
    fn http2_takes_on_and_off_and_is_on_by_default() {
        assert!(parse(&[]).unwrap().http2);
        for (value, expected) in [("on", true), ("off", false), ("true", true), ("0", false)] {
            assert_eq!(
                parse(&["--http2", value]).unwrap().http2,
                expected,
                "{value}"
            );
        }
        let error = parse(&["--max-streams-per-connection", "0"]).unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::ValueValidation);
    }

    #[test]
    fn listen_accepts_host_port_forms_and_refuses_others() {
        for good in ["127.0.0.1:0", "[::1]:8000", "localhost:80", "0.0.0.0:65535"] {
            let args = parse(&["--listen", good]).unwrap_or_else(|_| panic!("{good} refused"));
            assert_eq!(args.listen_address(), good);
            assert_eq!(args.listen_note(), None);
        }
        for bad in [
            "127.0.0.1",
            "::1:80",
            ":80",
            "host:http",
            "host:70000",
            "",
            "70000",
            "+80",
        ] {
            assert!(parse(&["--listen", bad]).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn a_bare_port_binds_the_loopback_address_and_says_so() {
        let args = parse(&["--listen", "8080"]).unwrap();
        assert_eq!(args.listen_address(), "127.0.0.1:8080");
        let note = args.listen_note().unwrap();
        assert!(note.contains("127.0.0.1:8080"), "{note}");
        assert!(note.contains("0.0.0.0:8080"), "{note}");
        assert_eq!(
            parse(&["--listen", "0"]).unwrap().listen_address(),
            "127.0.0.1:0"
        );
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["--threads", "0"][..],
            &["--max-connections", "0"],
            &["--max-frame-size", "100"],
            &["--max-message-size", "lots"],
            &["--max-backlog", "0"],
            &["--handshake-timeout", "0s"],
            &["--close-timeout", "soon"],
            &["--protocol", "has space"],
            &["--allowed-origin", "example.com"],
            &["--log-level", "[[["],
        ] {
            let error = parse(args).unwrap_err();
            assert_eq!(
                error.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{args:?}"
            );
        }
    }

    #[test]
    fn boolean_flags_need_no_value_on_the_command_line() {
        let args = parse(&["--no-deflate", "--deflate-context-takeover"]).unwrap();
        assert!(args.no_deflate && args.deflate_context_takeover);
        assert_eq!(args.server_config().deflate, None);
        let args = parse(&["--deflate-context-takeover"]).unwrap();
        assert!(!args.no_deflate);
        assert!(args.server_config().deflate.is_some());
    }

    #[test]
    fn tls_needs_both_the_certificate_and_the_key() {
        assert_eq!(parse(&[]).unwrap().tls_files(), None);
        let args = parse(&["--tls-cert", "c.pem", "--tls-key", "k.pem"]).unwrap();
        assert_eq!(
            args.tls_files(),
            Some((Path::new("c.pem"), Path::new("k.pem")))
        );
        for half in [&["--tls-cert", "c.pem"], &["--tls-key", "k.pem"]] {
            let error = parse(half).unwrap_err();
            assert_eq!(
                error.kind(),
                clap::error::ErrorKind::MissingRequiredArgument,
                "{half:?}"
            );
        }
    }

    #[test]
    fn default_backlog_follows_the_message_limit() {
        let args = parse(&["--max-message-size", "1MiB"]).unwrap();
        assert_eq!(args.server_config().max_backlog, 5 << 20);
        assert_eq!(parse(&[]).unwrap().server_config().max_backlog, 20 << 20);
    }

    #[test]
    fn log_level_flag_overrides_the_environment() {
        let args = parse(&["--log-level", "warn"]).unwrap();
        let (filter, warning) = args.log_filter();
        assert_eq!(filter.to_string(), "warn");
        assert_eq!(warning, None);
    }

    #[test]
    fn help_documents_every_option_and_its_default() {
        let help = Args::command().render_long_help().to_string();
        for expected in [
            "--listen",
            "[default: 127.0.0.1:8000]",
            "--threads",
            "[default: the number of CPU cores]",
            "--max-message-size",
            "[default: 16MiB]",
            "--max-frame-size",
            "--max-connections",
            "[default: 10000]",
            "--max-backlog",
            "[default: --max-message-size + 4MiB]",
            "--handshake-timeout",
            "[default: 10s]",
            "--idle-timeout",
            "[default: off]",
            "--close-timeout",
            "--shutdown-timeout",
            "[default: 5s]",
            "--protocol",
            "--allowed-origin",
            "--log-level",
            "RUST_LOG",
            "--http2",
            "[default: on]",
            "--max-streams-per-connection",
            "[default: 100]",
        ] {
            assert!(
                help.contains(expected),
                "--help lacks {expected:?}:\n{help}"
            );
        }
    }

    #[test]
    fn every_option_has_an_environment_variable_shown_in_help() {
        let command = Args::command();
        let help = command.clone().render_long_help().to_string();
        let mut options = 0;
        for arg in command.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            options += 1;
            let env = arg
                .get_env()
                .and_then(|name| name.to_str())
                .unwrap_or_else(|| panic!("--{long} has no environment variable"));
            let expected = format!("WS_SERVER_{}", long.to_uppercase().replace('-', "_"));
            assert_eq!(env, expected, "--{long}");
            assert!(
                help.contains(&format!("[env: {env}=")),
                "--help lacks {env}:\n{help}"
            );
        }
        assert_eq!(options, 21);
    }

    #[test]
    fn limits_are_described_in_cli_units() {
        assert_eq!(
            describe_limits(&ServerConfig::default()),
            "max message 16MiB, max frame 16MiB, max connections 10000, max backlog 20MiB"
        );
    }
}
