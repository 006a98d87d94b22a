//! The command line of `ws-bench` (also `ws-client bench`) and the checks
//! on its values.
//!
//! Short options mean what they mean to ws-client (`-t` text, `-b` binary,
//! `-H` header, `-s` subprotocol, `-o` origin, `-q` quiet) or to the load
//! generators people know (`-c` connections and `-d` duration, as in wrk and
//! h2load); `-c` is therefore not wscat's "connect": the URL is the first
//! argument.
//!
//! Every run is bounded: at most [`MAX_CONNECTIONS`] connections and
//! [`MAX_DURATION`] of measurement, so that a typo cannot turn the load
//! generator into something that runs for a day or opens a million sockets.

use std::num::NonZeroU32;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::parse::{parse_duration, parse_header, parse_origin, parse_protocol, parse_size};

/// The most connections one run may open.
pub const MAX_CONNECTIONS: usize = 100_000;
/// The longest measurement one run may take.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// The longest warmup.
pub const MAX_WARMUP: Duration = Duration::from_secs(600);
/// The most messages one connection may have outstanding.
pub const MAX_IN_FLIGHT: usize = 1024;
/// The largest payload (the client accepts echoes up to this size).
pub const MAX_SIZE: usize = 16 << 20;
/// The measurement when `--duration` is not given (except in idle mode,
/// which holds its connections until interrupted).
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);

const AFTER_HELP: &str = "\
Modes:
    echo     (default) each connection keeps --in-flight messages outstanding
             and sends a new one as each echo arrives (closed loop); every echo
             is checked byte for byte against what was sent
    connect  handshakes per second: connect, upgrade, close with 1000, wait for
             the server's close; --connections loops run concurrently
    idle     open --connections connections, print 'N connections open' once
             all are up, and hold them until SIGINT/SIGTERM (or --duration)
    tcp      baseline: the same ping-pong of --size bytes over plain TCP,
             against a TCP echo server (tcp://HOST:PORT or ws://HOST:PORT)

Output:
    A summary on stdout (one JSON object with --json): messages, messages/s,
    MB/s (payload bytes echoed per second, 1 MB = 10^6 bytes), latency
    percentiles from send to echo, errors, mismatches, wire and payload bytes,
    and the load generator's own CPU time over the measured window. A progress
    line goes to stderr once per second (-q hides it); its clock starts again
    with each phase, so the measuring line counts from the start of the
    measurement. Large numbers are grouped by thousands (12 345) on a terminal
    only: in a pipe or a file, and always in JSON, they are plain digits. The
    idle mode's 'N connections open' line is plain too. --server-pid adds the
    CPU time of a local server process per message (or its memory growth per
    idle connection): the figure to judge a server by, since the load
    generator shares the machine.

Frames:
    One thread drives every connection. Frames are built once per connection
    before the run: a small pool of pre-masked frames, each with its own random
    mask key, sent in rotation. Mask keys are therefore reused, which RFC 6455
    asks clients not to do; that is acceptable for a load generator pointed at
    one's own server, not for anything else. With --deflate the frames are also
    compressed once, each on its own; no context takeover is negotiated in
    either direction, since a server keeping its context would compress the
    repeated payload to almost nothing.

Exit status:
    0    the run finished with no error and no mismatch
    1    errors or mismatches occurred (the summary says how many), or another
         failure (out of file descriptors, ...)
    2    usage error
    3    no connection could be made (refused, DNS failure, unreachable)
    4    no handshake succeeded (the server refused the upgrade, ...)
    130  interrupted by SIGINT/SIGTERM in echo, connect or tcp mode (the
         summary of the window so far is printed); in idle mode that is the
         normal end and exits 0

Short options:
    -t, -b, -H, -s, -o and -q mean what they mean to ws-client (text, binary,
    header, subprotocol, origin, quiet). -c is --connections and -d --duration,
    as in wrk and h2load: -c is not wscat's 'connect', the URL is the first
    argument. Every other option is long only.

Examples:
    ws-bench ws://127.0.0.1:8000/
    ws-bench ws://127.0.0.1:8000/ -c 10 --size 16KiB --in-flight 4
    ws-bench ws://127.0.0.1:8000/ --mode connect -c 16 --json
    ws-bench ws://127.0.0.1:8000/ --mode idle -c 10000 --connect-rate 2000
    ws-bench ws://127.0.0.1:8000/ --deflate --payload json --size 1KiB -t
    ws-bench ws://127.0.0.1:8000/ --http2 -c 1000 --streams-per-connection 100
    ws-client bench ws://127.0.0.1:8000/    (the same program, the same options)";

/// Arguments of `ws-bench` (and `ws-client bench`).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "ws-bench",
    bin_name = "ws-bench",
    version,
    about = "Load generator: echo throughput and latency, handshakes per second, idle connections",
    long_about = "Load generator for WebSocket echo servers.\n\n\
        Opens --connections connections on one thread, waits until all are up, \
        runs --warmup unrecorded, then measures for --duration. Only the URL given \
        is contacted; runs are bounded in connections (at most 100000) and time \
        (at most 1 hour).",
    after_help = AFTER_HELP,
    args_override_self = true
)]
pub struct BenchArgs {
    /// The server.
    #[arg(
        value_name = "URL",
        help = "The server: ws://HOST[:PORT][/PATH] (tcp://HOST:PORT with --mode tcp)"
    )]
    pub url: String,

    /// What to measure.
    #[arg(long, value_enum, default_value_t = BenchMode::Echo)]
    pub mode: BenchMode,

    /// Connections to open (in connect mode: handshake loops run concurrently).
    #[arg(short = 'c', long, value_name = "N", default_value = "100", value_parser = parse_connections)]
    pub connections: usize,

    /// Payload bytes per message ('20', '1KiB', '16KiB'; 0 sends empty messages).
    #[arg(long, value_name = "BYTES", default_value = "20", value_parser = parse_payload_size)]
    pub size: usize,

    /// Messages outstanding per connection (closed loop).
    #[arg(long, value_name = "K", default_value = "1", value_parser = parse_in_flight)]
    pub in_flight: usize,

    /// Send text messages (the payload as valid UTF-8).
    #[arg(short = 't', long, conflicts_with = "binary")]
    pub text: bool,

    /// Send binary messages (the default).
    #[arg(short = 'b', long)]
    pub binary: bool,

    /// What the payload holds: random bytes (incompressible; random printable
    /// ASCII with --text), JSON-like text (compressible), or zero bytes.
    #[arg(long, value_enum, value_name = "KIND", default_value_t = PayloadKind::Random)]
    pub payload: PayloadKind,

    /// Unrecorded time after all connections are up ('1s', '500ms', 0).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_warmup)]
    pub warmup: Duration,

    /// Measured time [default: 10s; idle mode: until interrupted].
    #[arg(short = 'd', long, value_name = "DURATION", value_parser = parse_measure)]
    pub duration: Option<Duration>,

    /// Connections opened per second [default: as fast as possible, with at
    /// most 256 handshakes in flight].
    #[arg(long, value_name = "PER_SECOND")]
    pub connect_rate: Option<NonZeroU32>,

    /// Bound on connecting plus the handshake, per connection.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_measure)]
    pub connect_timeout: Duration,

    /// Offer permessage-deflate (no context takeover either way, so every
    /// message is compressed on its own) and send pre-compressed frames; a
    /// server that declines it fails the handshake.
    #[arg(long)]
    pub deflate: bool,

    /// Open the WebSockets over HTTP/2 (RFC 8441 extended CONNECT, ws://
    /// with prior knowledge), --streams-per-connection of them on each
    /// HTTP/2 connection (echo mode). -c still counts WebSockets.
    #[arg(long)]
    pub http2: bool,

    /// With --http2: how many WebSockets share one HTTP/2 connection (the
    /// server's SETTINGS_MAX_CONCURRENT_STREAMS bounds it; ws-server
    /// allows 100 by default).
    #[arg(long, value_name = "K", default_value = "1", requires = "http2", value_parser = parse_streams)]
    pub streams_per_connection: usize,

    /// With --deflate, offer it as browsers do (`permessage-deflate;
    /// client_max_window_bits`), leaving context takeover to the server.
    #[arg(long, requires = "deflate")]
    pub browser_offer: bool,

    /// In idle mode, each connection first sends one message (--size,
    /// --payload, --text) and waits for its echo, then idles: the memory
    /// figure then includes what a server keeps after a message.
    #[arg(long)]
    pub idle_echo: bool,

    /// Add a header to every upgrade request; repeatable.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,

    /// `-s/--protocol` and `-o/--origin`, as ws-client has them.
    #[command(flatten)]
    pub handshake: HandshakeArgs,

    /// A local server process (Linux): report its CPU time per message over
    /// the measured window, or in idle mode its memory growth per connection.
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,

    /// Print the results as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,

    /// No progress line on stderr.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// What a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchMode {
    /// Echo throughput and latency (closed loop).
    Echo,
    /// Handshakes per second.
    Connect,
    /// Hold idle connections.
    Idle,
    /// Plain TCP ping-pong (the baseline).
    Tcp,
}

impl BenchMode {
    /// The name used in the output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Echo => "echo",
            Self::Connect => "connect",
            Self::Idle => "idle",
            Self::Tcp => "tcp",
        }
    }
}

/// The content of the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PayloadKind {
    /// Random bytes: deflate cannot shrink them.
    Random,
    /// JSON-like records: deflate shrinks them several-fold.
    Json,
    /// Zero bytes.
    Zeros,
}

impl PayloadKind {
    /// The name used in the output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Random => "random",
            Self::Json => "json",
            Self::Zeros => "zeros",
        }
    }
}

impl BenchArgs {
    /// The checks that involve more than one option; the message is a usage
    /// error.
    pub fn validate(&self) -> Result<(), String> {
        if self.idle_echo && self.mode != BenchMode::Idle {
            return Err("--idle-echo needs --mode idle".to_owned());
        }
        if self.http2 && self.mode != BenchMode::Echo {
            return Err("--http2 works in echo mode only".to_owned());
        }
        if self.mode == BenchMode::Tcp {
            if self.size == 0 {
                return Err("--mode tcp needs --size of at least 1 byte".to_owned());
            }
            if self.deflate || self.text {
                return Err("--deflate and --text have no meaning with --mode tcp".to_owned());
            }
        }
        Ok(())
    }

    /// The measured time: `--duration`, or the default of the mode (`None`:
    /// idle mode holds its connections until interrupted).
    pub fn measure(&self) -> Option<Duration> {
        match (self.duration, self.mode) {
            (Some(duration), _) => Some(duration),
            (None, BenchMode::Idle) => None,
            (None, _) => Some(DEFAULT_DURATION),
        }
    }
}

/// The most WebSockets one HTTP/2 connection may carry in a run.
pub const MAX_STREAMS_PER_CONNECTION: usize = 10_000;

/// Parses `--streams-per-connection`: 1 to [`MAX_STREAMS_PER_CONNECTION`].
pub fn parse_streams(arg: &str) -> Result<usize, String> {
    let count: usize = arg
        .trim()
        .parse()
        .map_err(|_| format!("{arg:?} is not a number of streams"))?;
    if count == 0 || count > MAX_STREAMS_PER_CONNECTION {
        return Err(format!(
            "the number of streams per connection must be between 1 and {MAX_STREAMS_PER_CONNECTION}"
        ));
    }
    Ok(count)
}

/// Parses a connection count: 1 to [`MAX_CONNECTIONS`].
pub fn parse_connections(arg: &str) -> Result<usize, String> {
    if arg.contains("://") {
        return Err(format!(
            "-c is --connections (as in wrk and h2load), not wscat's 'connect': \
             give the URL {arg} as the first argument"
        ));
    }
    let count: usize = arg
        .trim()
        .parse()
        .map_err(|_| format!("{arg:?} is not a number of connections"))?;
    if count == 0 || count > MAX_CONNECTIONS {
        return Err(format!(
            "the number of connections must be between 1 and {MAX_CONNECTIONS}"
        ));
    }
    Ok(count)
}

/// Parses a payload size: 0, or a size as `--max-message-size` takes it, up
/// to [`MAX_SIZE`].
pub fn parse_payload_size(arg: &str) -> Result<usize, String> {
    if arg.trim() == "0" {
        return Ok(0);
    }
    let size = parse_size(arg)?;
    if size > MAX_SIZE {
        return Err(format!("the payload can be at most {} MiB", MAX_SIZE >> 20));
    }
    Ok(size)
}

/// Parses the number of messages in flight: 1 to [`MAX_IN_FLIGHT`].
pub fn parse_in_flight(arg: &str) -> Result<usize, String> {
    let count: usize = arg
        .trim()
        .parse()
        .map_err(|_| format!("{arg:?} is not a number of messages"))?;
    if count == 0 || count > MAX_IN_FLIGHT {
        return Err(format!(
            "messages in flight must be between 1 and {MAX_IN_FLIGHT}"
        ));
    }
    Ok(count)
}

/// Parses the warmup: zero allowed, at most [`MAX_WARMUP`].
pub fn parse_warmup(arg: &str) -> Result<Duration, String> {
    let duration = parse_duration(arg)?;
    if duration > MAX_WARMUP {
        return Err(format!(
            "the warmup can be at most {} minutes",
            MAX_WARMUP.as_secs() / 60
        ));
    }
    Ok(duration)
}

/// Parses a measured time: more than zero, at most [`MAX_DURATION`].
pub fn parse_measure(arg: &str) -> Result<Duration, String> {
    let duration = parse_duration(arg)?;
    if duration.is_zero() {
        return Err("the duration must be greater than zero".to_owned());
    }
    if duration > MAX_DURATION {
        return Err(format!(
            "the duration can be at most {} hour",
            MAX_DURATION.as_secs() / 3600
        ));
    }
    Ok(duration)
}

/// The upgrade request's `-s/--protocol` and `-o/--origin`, declared once
/// for ws-bench and ws-client (which flatten them into their own
/// arguments), so that the two spell and check them alike.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct HandshakeArgs {
    /// Offer a subprotocol, in order of preference; repeatable.
    #[arg(
        short = 's',
        long = "protocol",
        value_name = "NAME",
        visible_alias = "subprotocol",
        value_parser = parse_protocol
    )]
    pub protocols: Vec<String>,

    /// Send an Origin header with the upgrade request.
    #[arg(short = 'o', long, value_name = "ORIGIN", value_parser = parse_origin)]
    pub origin: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<BenchArgs, clap::Error> {
        BenchArgs::try_parse_from(
            ["bench", "ws://127.0.0.1:1/"]
                .into_iter()
                .chain(args.iter().copied()),
        )
    }

    #[test]
    fn defaults_follow_the_issue() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.mode, BenchMode::Echo);
        assert_eq!(args.connections, 100);
        assert_eq!(args.size, 20);
        assert_eq!(args.in_flight, 1);
        assert!(!args.text);
        assert_eq!(args.warmup, Duration::from_secs(1));
        assert_eq!(args.measure(), Some(Duration::from_secs(10)));
        assert_eq!(args.connect_rate, None);
        assert!(!args.deflate);
        assert_eq!(args.payload, PayloadKind::Random);
    }

    #[test]
    fn idle_mode_holds_until_interrupted_unless_a_duration_is_given() {
        assert_eq!(parse(&["--mode", "idle"]).unwrap().measure(), None);
        let args = parse(&["--mode", "idle", "--duration", "3s"]).unwrap();
        assert_eq!(args.measure(), Some(Duration::from_secs(3)));
    }

    #[test]
    fn sizes_take_suffixes_and_zero() {
        assert_eq!(parse(&["--size", "16KiB"]).unwrap().size, 16 << 10);
        assert_eq!(parse(&["--size", "0"]).unwrap().size, 0);
        assert!(parse(&["--size", "17MiB"]).is_err());
        assert!(parse(&["--size", "lots"]).is_err());
    }

    #[test]
    fn connections_are_bounded() {
        assert_eq!(parse(&["-c", "100000"]).unwrap().connections, 100_000);
        assert!(parse(&["-c", "100001"]).is_err());
        assert!(parse(&["-c", "0"]).is_err());
    }

    #[test]
    fn durations_are_bounded() {
        assert!(parse(&["--duration", "1h"]).is_ok());
        assert!(parse(&["--duration", "61m"]).is_err());
        assert!(parse(&["--duration", "0"]).is_err());
        assert!(parse(&["--warmup", "0"]).is_ok());
        assert!(parse(&["--warmup", "11m"]).is_err());
    }

    #[test]
    fn in_flight_is_bounded() {
        assert_eq!(parse(&["--in-flight", "16"]).unwrap().in_flight, 16);
        assert!(parse(&["--in-flight", "0"]).is_err());
        assert!(parse(&["--in-flight", "1025"]).is_err());
    }

    #[test]
    fn text_and_binary_conflict() {
        assert!(parse(&["--text", "--binary"]).is_err());
        assert!(parse(&["--text"]).unwrap().text);
    }

    #[test]
    fn connect_rate_must_be_positive() {
        assert!(parse(&["--connect-rate", "0"]).is_err());
        assert_eq!(
            parse(&["--connect-rate", "500"]).unwrap().connect_rate,
            NonZeroU32::new(500)
        );
    }

    #[test]
    fn tcp_mode_refuses_empty_payloads_and_websocket_options() {
        assert!(
            parse(&["--mode", "tcp", "--size", "0"])
                .unwrap()
                .validate()
                .is_err()
        );
        assert!(
            parse(&["--mode", "tcp", "--deflate"])
                .unwrap()
                .validate()
                .is_err()
        );
        assert!(
            parse(&["--mode", "tcp", "--text"])
                .unwrap()
                .validate()
                .is_err()
        );
        assert!(parse(&["--mode", "tcp"]).unwrap().validate().is_ok());
    }

    #[test]
    fn short_options_mean_what_they_mean_to_ws_client() {
        let args = parse(&[
            "-t", "-H", "X-A: 1", "-s", "chat", "-o", "http://o", "-q", "-c", "3", "-d", "2s",
        ])
        .unwrap();
        assert!(args.text && args.quiet);
        assert_eq!(args.headers, [("X-A".to_owned(), "1".to_owned())]);
        assert_eq!(args.handshake.protocols, ["chat"]);
        assert_eq!(args.handshake.origin.as_deref(), Some("http://o"));
        assert_eq!(args.connections, 3);
        assert_eq!(args.duration, Some(Duration::from_secs(2)));
        assert!(parse(&["-b"]).unwrap().binary);
        let long = parse(&["--subprotocol", "a", "--protocol", "b", "--origin", "x"]).unwrap();
        assert_eq!(long.handshake.protocols, ["a", "b"]);
    }

    #[test]
    fn a_url_after_c_is_explained() {
        let error = parse(&["-c", "ws://127.0.0.1:1/"]).unwrap_err().to_string();
        assert!(error.contains("-c is --connections"), "{error}");
    }

    #[test]
    fn bench_cli_definition_is_consistent() {
        use clap::CommandFactory;
        BenchArgs::command().debug_assert();
    }

    #[test]
    fn help_documents_mask_key_reuse_and_exit_status() {
        use clap::CommandFactory;
        let help = BenchArgs::command().render_long_help().to_string();
        assert!(help.contains("Mask keys are therefore reused"), "{help}");
        assert!(help.contains("Exit status"), "{help}");
    }
}
