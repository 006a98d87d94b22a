//! Command-line arguments and the parsers for their values.
//!
//! Value parsers return one-line messages; clap prints them as usage errors
//! (exit status 2) before anything connects.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use ws_core::CloseCode;
use ws_core::MAX_REASON_LEN;
// The value parsers ws-client shares with the load generator live in
// ws-bench (ws-client depends on it); re-exported where they always were.
pub use ws_bench::parse::{
    parse_auth, parse_duration, parse_header, parse_host, parse_origin, parse_protocol, parse_size,
};

use ws_bench::args::HandshakeArgs;
use ws_core::client::Proxy;

/// The exit status table, interactive commands and examples shown by `--help`.
const AFTER_HELP: &str = "\
When to close (MESSAGE arguments, -x, piped stdin):
    Replies are counted, not matched (WebSocket has no request ids): after the
    last message is sent, ws-client waits until --expect N messages (default:
    one per message sent) have arrived AND then --wait (default 200ms) has
    passed without another one; every message that arrives is printed. So a
    server that answers twice, or greets first, still has all of its messages
    shown. If more messages arrive than expected, a note on stderr says so.
    -1 stops at the first message; -E closes as soon as the input ends; --wait 0
    closes as soon as N messages are in. Waiting is bounded by --timeout.

Exit status:
    0  success: the exchange finished and the connection closed normally (the
       peer's close code 1000, 1001 or none)
    1  other error (I/O error mid-connection, unreadable file, non-UTF-8 text input, ...)
    2  usage error (bad arguments, malformed URL or proxy URL)
    3  connection failed (refused, DNS failure, unreachable; the proxy failed or refused)
    4  handshake failed (TLS or certificate error, non-101 answer, wrong
       Sec-WebSocket-Accept, invalid response; with --http2, a server that
       offers no HTTP/2 or no extended CONNECT)
    5  protocol error (the peer violated the protocol, or dropped the connection
       without a close)
    6  timeout (--timeout or --ping-timeout expired)
    7  the peer closed with another code (an application code 3000-4999, or
       1002-1014): the code and reason are printed on stderr
  130  interrupted (Ctrl-C or SIGTERM) before the exchange finished

Interactive mode (stdin and stdout are terminals; with only stdin one, the
commands below work and lines are read without editing):
    A '> ' prompt with line editing (arrows, Home/End, Ctrl-W, ...), history
    (Up/Down; kept in memory, in a file only with --history-file), incoming
    messages printed above the input line marked '< ', Tab completing the
    commands below, colours unless NO_COLOR is set or --no-color. Received
    text has control characters escaped (\\x1b ...) whenever stdout is a
    terminal; piped, it is written exactly. Ctrl-C or Ctrl-D closes with 1000.

Commands (interactive, or --commands):
    /ping [data]              send a ping; its pong is shown with the round trip time
    /pong [data]              send an unsolicited pong
    /close [code [reason]]    close the connection (default 1000)
    /binary <hex>             send bytes, e.g. /binary 48656c6c6f
    /help                     list the commands
    //text                    send a line that starts with '/'

URLs:
    ws://HOST[:PORT][/PATH] and wss://...; also as typed elsewhere: HOST:PORT[/PATH]
    (ws://, or wss:// for port 443), and http(s)://... (mapped to ws(s)://
    with a note on stderr).

Input formats:
    -t/--text (the default) sends each line as a text message, -b/--binary as a
    binary one, --base64 decodes each line (or MESSAGE) and sends the bytes as
    binary (and prints binary messages received as base64), --jsonrpc sends
    each line 'method [params]' (params: a JSON array or object) as a JSON-RPC
    2.0 request with ids 1, 2, ..., and -0 separates messages with NUL bytes
    instead of newlines, both ways.

TLS (wss://):
    The certificate is verified against Mozilla's root certificates bundled in
    the binary (webpki-roots: the same CAs on every machine; the system's store
    is not read), plus those of --cafile. SNI and the name check use the URL's host.

Proxies:
    Without --proxy or --no-proxy, as curl and Python websockets do: for ws://,
    ws_proxy then http_proxy; for wss://, wss_proxy then https_proxy; then
    all_proxy (each lowercase first, then uppercase). no_proxy (or NO_PROXY) lists
    hosts reached directly: names (subdomains match, a leading dot is optional),
    IP addresses, CIDR ranges, each with an optional :PORT, or * for all. As with
    curl, loopback addresses go through the proxy unless no_proxy lists them.

Load generator:
    ws-client bench URL [OPTIONS]   echo throughput and latency, handshakes per
                                    second, idle connections (ws-client bench --help)

Listen mode:
    ws-client -l 8000 waits for ONE WebSocket client on 127.0.0.1:8000 (or
    -l 0.0.0.0:8000, -l [::]:8000), answers its handshake and then behaves as
    when connecting: interactive, piped, or --echo (a one-connection echo peer).

Examples:
    ws-client ws://127.0.0.1:8000 'Hello, World'
    ws-client localhost:8000/chat
    ws-client -l 8000                        # and in another terminal:
    ws-client ws://127.0.0.1:8000/
    seq 1000 | ws-client ws://127.0.0.1:8000/ > replies.txt
    ws-client ws://127.0.0.1:8000/ --file in.bin --output raw > out.bin
    ws-client ws://127.0.0.1:8000/ --echo -q
    ws-client ws://example.com/chat -H 'X-Token: 42' --protocol chat.v1 --show-control
    ws-client wss://localhost:8443/ --cafile ca.pem 'over TLS'
    ws-client wss://example.com/ --proxy http://user:pass@proxy:3128 hello";

/// Command-line arguments of `ws-client`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "ws-client",
    version,
    about = "A command-line WebSocket (RFC 6455) client",
    long_about = "A command-line WebSocket (RFC 6455) client.\n\n\
        With MESSAGE arguments it sends each as a text message, prints every message \
        received on its own line on stdout, and once as many replies as messages sent \
        have arrived (and --wait passed without another one), closes with 1000. \
        Without MESSAGE it sends each line of stdin (an interactive prompt when stdin \
        and stdout are terminals). Diagnostics go to stderr; stdout carries only \
        received data. -v shows the handshake; RUST_LOG=debug logs connection \
        details on stderr.",
    after_help = AFTER_HELP,
    override_usage = "ws-client [OPTIONS] [URL] [MESSAGE]...\n       \
        ws-client bench URL [OPTIONS]    the load generator (see ws-bench --help)",
    args_override_self = true
)]
pub struct Cli {
    /// The server's `ws://` or `wss://` URL (empty when `-c` or `-l` is
    /// used; [`Cli::resolve`] then moves a positional value to the
    /// messages).
    #[arg(
        value_name = "URL",
        default_value = "",
        hide_default_value = true,
        help = "The server: ws://HOST[:PORT][/PATH][?QUERY], wss://..., or HOST:PORT[/PATH]"
    )]
    pub url: String,

    /// Messages to send, each as one text message (binary with --binary);
    /// without any, lines are read from stdin.
    #[arg(value_name = "MESSAGE")]
    pub messages: Vec<String>,

    /// The server's URL, as wscat takes it (the positional URL may then be
    /// left out: every positional argument is a message).
    #[arg(
        short = 'c',
        long = "connect",
        value_name = "URL",
        conflicts_with = "listen"
    )]
    pub connect: Option<String>,

    /// Wait for one WebSocket client on HOST:PORT, or on 127.0.0.1 when only
    /// a port is given, instead of connecting; then talk to it as usual.
    #[arg(short = 'l', long = "listen", value_name = "[HOST:]PORT", value_parser = parse_listen)]
    pub listen: Option<SocketAddr>,

    /// A message to send, like a MESSAGE argument (wscat's -x); repeatable.
    #[arg(short = 'x', long = "execute", value_name = "MESSAGE")]
    pub execute: Vec<String>,

    /// After the expected replies, wait until no message has arrived for
    /// this long before closing ('200ms', '2s'; 0 closes at once).
    #[arg(short = 'w', long = "wait", value_name = "DURATION", default_value = "200ms", value_parser = parse_duration)]
    pub wait: Duration,

    /// Send messages and stdin lines as text messages (the default).
    #[arg(short = 't', long = "text", conflicts_with_all = ["binary", "base64"])]
    pub text: bool,

    /// Send messages and stdin lines as binary messages instead of text.
    #[arg(short = 'b', long)]
    pub binary: bool,

    /// Decode each stdin line (and MESSAGE) from base64 and send the bytes as
    /// a binary message; print received binary messages as base64.
    #[arg(long, conflicts_with_all = ["binary", "jsonrpc"])]
    pub base64: bool,

    /// Send each line (a method name, then optionally its params as a JSON
    /// array or object) as a JSON-RPC 2.0 request with an incrementing id.
    #[arg(long, conflicts_with = "binary")]
    pub jsonrpc: bool,

    /// Messages are separated by NUL bytes instead of newlines, on stdin and
    /// on stdout.
    #[arg(short = '0', long = "null")]
    pub null: bool,

    /// Stop after the first message received (send the input, print one
    /// message, close).
    #[arg(short = '1', long = "one-message", conflicts_with_all = ["expect", "echo"])]
    pub one_message: bool,

    /// Close as soon as the input ends, without waiting for replies.
    #[arg(short = 'E', long = "exit-on-eof", conflicts_with_all = ["expect", "one_message"])]
    pub exit_on_eof: bool,

    /// Follow redirects (301, 302, 303, 307, 308) to ws://, wss://, http://
    /// or https:// URLs, at most --max-redirects times.
    #[arg(short = 'L', long = "location")]
    pub follow_redirects: bool,

    /// The most redirects -L follows.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub max_redirects: usize,

    /// Show the request and response heads, the negotiated subprotocol and
    /// extensions on stderr.
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// No colours in interactive mode (also when NO_COLOR is set).
    #[arg(long)]
    pub no_color: bool,

    /// Load and save the interactive history in this file (by default it
    /// is kept in memory only).
    #[arg(long, value_name = "PATH")]
    pub history_file: Option<PathBuf>,

    /// Send the bytes of a file as one binary message ('-' reads all of stdin).
    #[arg(short = 'f', long, value_name = "PATH", conflicts_with = "messages")]
    pub file: Option<PathBuf>,

    /// Stay connected and send back every message received (text as text,
    /// binary as binary) until the server closes.
    #[arg(short = 'e', long)]
    pub echo: bool,

    /// Add a header to the upgrade request; repeatable.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,

    /// Send this Host header instead of the URL's host (wscat's --host;
    /// `-H 'Host: ...'` does the same): the connection, SNI and the
    /// certificate check still use the URL's host.
    #[arg(long, value_name = "HOST[:PORT]", value_parser = parse_host)]
    pub host: Option<String>,

    /// HTTP Basic authentication.
    #[arg(long, value_name = "USER:PASSWORD", visible_alias = "basic-auth", value_parser = parse_auth)]
    pub auth: Option<String>,

    /// `-s/--protocol` and `-o/--origin`, declared once with ws-bench.
    #[command(flatten)]
    pub handshake: HandshakeArgs,

    /// Bound on connecting, the handshake and waiting for replies and the
    /// close reply ('10s', '500ms', plain seconds; 0 waits forever).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Send a ping this often ('5s', '500ms', plain seconds).
    #[arg(long, value_name = "DURATION", value_parser = parse_interval)]
    pub ping_interval: Option<Duration>,

    /// Fail (exit 6) when a ping gets no pong within this long; pings are
    /// sent every --ping-interval, or every DURATION without one.
    #[arg(long, value_name = "DURATION", value_parser = parse_interval)]
    pub ping_timeout: Option<Duration>,

    /// Largest message (and frame) accepted from the server; a larger one
    /// fails the connection with 1009 ('1048576', '64KiB', '16MiB', '1GiB').
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = parse_size)]
    pub max_message_size: usize,

    /// Open the WebSocket over HTTP/2 (RFC 8441 extended CONNECT): --http2
    /// (= on) requires it and fails (exit 4) when the server does not offer
    /// h2 or extended CONNECT; --http2=auto uses it when TLS ALPN and the
    /// server's SETTINGS allow, else HTTP/1.1. wss:// asks with ALPN, ws://
    /// with prior knowledge (on only). -v shows which was used.
    #[arg(
        long,
        value_enum,
        value_name = "MODE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "on",
        default_value_t = Http2Flag::Off
    )]
    pub http2: Http2Flag,

    /// Do not offer permessage-deflate (RFC 7692); by default it is offered,
    /// and used if the server accepts it.
    #[arg(long)]
    pub no_deflate: bool,

    /// Also trust the certificates in this PEM file for wss:// (besides
    /// the bundled Mozilla roots): a CA's, or the server's own self-signed
    /// one (even a CA:TRUE one, as `openssl req -x509` makes); repeatable.
    #[arg(long, value_name = "PATH", visible_alias = "ca")]
    pub cafile: Vec<PathBuf>,

    /// Do not verify the server's certificate (wss://): anyone on the path
    /// can then read and change the traffic. Warns on stderr unless -q.
    /// -n is the same (wscat's --no-check).
    #[arg(
        short = 'k',
        long,
        visible_short_alias = 'n',
        visible_alias = "no-check"
    )]
    pub insecure: bool,

    /// Client certificate (PEM chain, leaf first) for servers that ask for
    /// one; its key comes from --key, or from the same file.
    #[arg(long, value_name = "PATH")]
    pub cert: Option<PathBuf>,

    /// The PEM private key of --cert (PKCS#8, RSA or EC; an encrypted
    /// PKCS#8 key needs --passphrase).
    #[arg(long, value_name = "PATH", requires = "cert")]
    pub key: Option<PathBuf>,

    /// The passphrase of an encrypted --key (or of the key in --cert);
    /// better given in the environment, where `ps` does not show it.
    #[arg(
        long,
        value_name = "TEXT",
        env = "WS_CLIENT_KEY_PASSPHRASE",
        hide_env_values = true,
        requires = "cert"
    )]
    pub passphrase: Option<String>,

    /// Connect through a proxy: http://[USER:PASSWORD@]HOST[:PORT] (HTTP
    /// CONNECT), socks5://... (the client resolves the server's name) or
    /// socks5h://... (the proxy resolves it). Overrides the proxy
    /// environment variables (see below).
    #[arg(long, value_name = "URL", value_parser = parse_proxy, overrides_with = "no_proxy")]
    pub proxy: Option<Proxy>,

    /// Connect directly, ignoring the proxy environment variables (and an
    /// earlier --proxy: the last of the two wins).
    #[arg(long, overrides_with = "proxy")]
    pub no_proxy: bool,

    /// Print pings, pongs and the close code and reason on stderr.
    #[arg(short = 'P', long, visible_alias = "show-ping-pong")]
    pub show_control: bool,

    /// How binary messages are printed: the bytes and a newline (text), lowercase
    /// hex, standard base64, or the bytes exactly with nothing added (raw).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    /// The close code we close with.
    #[arg(long, value_name = "CODE", default_value = "1000", value_parser = parse_close_code)]
    pub close_code: CloseCode,

    /// The reason sent with our close (at most 123 bytes).
    #[arg(long, value_name = "TEXT", default_value = "", value_parser = parse_close_reason)]
    pub close_reason: String,

    /// Keep the connection open after the replies (and after the end of
    /// piped input), printing messages, until the peer closes or Ctrl-C.
    #[arg(long, conflicts_with_all = ["one_message", "exit_on_eof"])]
    pub no_close: bool,

    /// How many messages to wait for before closing [default: one per message sent].
    #[arg(long, value_name = "N", conflicts_with = "echo")]
    pub expect: Option<usize>,

    /// Interpret /commands in stdin lines even when stdin is not a terminal.
    #[arg(long, conflicts_with_all = ["messages", "file", "echo"])]
    pub commands: bool,

    /// No informational output on stderr (errors are still printed).
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// `--http2[=MODE]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Http2Flag {
    /// HTTP/1.1 only (the default).
    Off,
    /// HTTP/2 only: fail when the server cannot carry WebSockets over it.
    On,
    /// HTTP/2 when the server allows it, else HTTP/1.1.
    Auto,
}

impl Http2Flag {
    /// ws-core's mode for this flag.
    pub fn mode(self) -> ws_core::client::Http2Mode {
        use ws_core::client::Http2Mode;
        match self {
            Self::Off => Http2Mode::Off,
            Self::On => Http2Mode::On,
            Self::Auto => Http2Mode::Auto,
        }
    }
}

/// How binary messages are written to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// The bytes as they are, followed by a newline.
    Text,
    /// Lowercase hexadecimal, followed by a newline.
    Hex,
    /// Standard base64 with padding, followed by a newline.
    Base64,
    /// The bytes exactly, nothing added: for byte-for-byte round trips.
    Raw,
}

impl Cli {
    /// Applies the rules between arguments that clap cannot express: `-c`
    /// names the URL (a positional value is then the first message), `-x`
    /// adds messages, and `-1`/`-E` set how many replies to wait for.
    /// Called by [`crate::run`] before anything else.
    pub fn resolve(mut self) -> Result<Self, String> {
        if let Some(url) = self.connect.take() {
            if !self.url.is_empty() {
                self.messages.insert(0, std::mem::take(&mut self.url));
            }
            self.url = url;
        } else if self.listen.is_some() && !self.url.is_empty() {
            self.messages.insert(0, std::mem::take(&mut self.url));
        }
        if self.url.is_empty() && self.listen.is_none() {
            return Err(
                "no URL: give ws://HOST[:PORT]/PATH (or -c URL), or -l PORT to listen".to_owned(),
            );
        }
        self.messages.append(&mut self.execute);
        if self.file.is_some() && !self.messages.is_empty() {
            return Err("--file cannot be combined with messages".to_owned());
        }
        if self.one_message {
            self.expect = Some(1);
            self.wait = Duration::ZERO;
        }
        if self.exit_on_eof {
            self.expect = Some(0);
            self.wait = Duration::ZERO;
        }
        if self.base64 {
            self.output = OutputFormat::Base64;
        }
        if self.ping_interval.is_none() {
            self.ping_interval = self.ping_timeout;
        }
        Ok(self)
    }
}

/// Parses `[HOST:]PORT` for `--listen`: a bare port binds 127.0.0.1, an
/// IPv6 host is written in brackets (`[::]:8000`).
pub fn parse_listen(arg: &str) -> Result<SocketAddr, String> {
    let arg = arg.trim();
    if let Ok(port) = arg.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Ok(address) = arg.parse::<SocketAddr>() {
        return Ok(address);
    }
    match arg.rsplit_once(':') {
        Some(("localhost", port)) => port
            .parse::<u16>()
            .map(|port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
            .map_err(|_| format!("{port:?} is not a port number")),
        _ => Err(format!(
            "{arg:?} is not [HOST:]PORT (e.g. 8000, 0.0.0.0:8000, [::1]:8000)"
        )),
    }
}

/// Parses a proxy URL (see [`Proxy::parse`]).
pub fn parse_proxy(arg: &str) -> Result<Proxy, String> {
    Proxy::parse(arg).map_err(|error| error.to_string())
}

/// Parses a non-zero duration (for intervals).
pub fn parse_interval(arg: &str) -> Result<Duration, String> {
    let duration = parse_duration(arg)?;
    if duration.is_zero() {
        return Err("the interval must be greater than zero".to_owned());
    }
    Ok(duration)
}

/// Parses a close code we may send: 1000–1003, 1007–1014 or 3000–4999.
pub fn parse_close_code(arg: &str) -> Result<CloseCode, String> {
    let code: u16 = arg
        .trim()
        .parse()
        .map_err(|_| format!("{arg:?} is not a close code (a number such as 1000)"))?;
    let code = CloseCode(code);
    if code.is_sendable() {
        Ok(code)
    } else {
        Err(format!(
            "close code {} may not be sent; use 1000-1003, 1007-1014 or 3000-4999",
            code.0
        ))
    }
}

/// Parses a close reason: at most 123 bytes of UTF-8.
pub fn parse_close_reason(arg: &str) -> Result<String, String> {
    if arg.len() > MAX_REASON_LEN {
        Err(format!(
            "the close reason is {} bytes long; at most {MAX_REASON_LEN} fit in a close frame",
            arg.len()
        ))
    } else {
        Ok(arg.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_of_zero_is_refused() {
        assert!(parse_interval("0s").is_err());
        assert_eq!(parse_interval("5s"), Ok(Duration::from_secs(5)));
    }

    #[test]
    fn close_code_must_be_sendable() {
        assert_eq!(parse_close_code("1000"), Ok(CloseCode::NORMAL));
        assert_eq!(parse_close_code("4000"), Ok(CloseCode(4000)));
        assert!(parse_close_code("1005").is_err());
        assert!(parse_close_code("999").is_err());
        assert!(parse_close_code("normal").is_err());
    }

    #[test]
    fn close_reason_is_limited_to_123_bytes() {
        assert!(parse_close_reason(&"x".repeat(123)).is_ok());
        assert!(parse_close_reason(&"x".repeat(124)).is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn message_arguments_and_repeated_options_are_collected() {
        let cli = Cli::try_parse_from([
            "ws-client",
            "ws://127.0.0.1:1/",
            "a",
            "b",
            "-H",
            "X-A: 1",
            "-H",
            "X-B: 2",
            "--protocol",
            "one",
            "--protocol",
            "two",
            "--timeout",
            "500ms",
        ])
        .unwrap();
        assert_eq!(cli.messages, ["a", "b"]);
        assert_eq!(cli.headers.len(), 2);
        assert_eq!(cli.handshake.protocols, ["one", "two"]);
        assert_eq!(cli.timeout, Duration::from_millis(500));
        assert_eq!(cli.close_code, CloseCode::NORMAL);
        assert_eq!(cli.max_message_size, 16 << 20);
        assert_eq!(cli.http2, Http2Flag::Off);
    }

    #[test]
    fn http2_alone_means_on_and_takes_auto_after_an_equals_sign() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("ws-client").chain(args.iter().copied())).unwrap()
        };
        let on = parse(&["--http2", "ws://h/", "m"]);
        assert_eq!((on.http2, on.url.as_str()), (Http2Flag::On, "ws://h/"));
        assert_eq!(parse(&["ws://h/", "--http2=auto"]).http2, Http2Flag::Auto);
        assert_eq!(parse(&["ws://h/", "--http2=off"]).http2, Http2Flag::Off);
        assert!(Cli::try_parse_from(["ws-client", "ws://h/", "--http2=maybe"]).is_err());
    }

    #[test]
    fn file_and_messages_cannot_be_combined() {
        assert!(Cli::try_parse_from(["ws-client", "ws://h/", "a", "--file", "x"]).is_err());
    }
}
