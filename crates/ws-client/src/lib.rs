//! `ws-client`: a command-line WebSocket client built on `ws-core`.
//!
//! The binary is a thin `main` over [`run`]; the pieces live here so that
//! they can be tested: argument parsing ([`cli`]), URLs as typed
//! ([`url_forms`]), slash commands ([`command`]), input encodings ([`input`],
//! [`jsonrpc`]), exit statuses ([`failure`]), output formats ([`output`]),
//! the connection ([`connect`], over `ws_core::client`: resolution, proxies,
//! TLS; [`transport`]) or a listening socket ([`listen`]), the conversation
//! ([`session`]) and its interactive line editor ([`interactive`]). All
//! protocol decisions (handshake validation, framing, pongs, the closing
//! handshake, limits) are `ws-core`'s.
//!
//! `ws-client bench` is the load generator of the `ws-bench` crate, run
//! under this name: ws-client depends on it, so the pieces both binaries
//! use live there ([`failure`] and [`signals`] are re-exported from it, as
//! are some of [`cli`]'s value parsers and [`output`]'s descriptions).
//!
//! # Example
//!
//! ```
//! use clap::Parser;
//! use ws_client::cli::Cli;
//!
//! let cli = Cli::try_parse_from(["ws-client", "ws://127.0.0.1:8000/", "Hello, World"])?;
//! let request = ws_client::connect::build_request(&cli)?;
//! assert_eq!((request.host(), request.port()), ("127.0.0.1", 8000));
//!
//! let error = Cli::try_parse_from(["ws-client", "http://example.com/"])
//!     .map(|cli| ws_client::connect::build_request(&cli));
//! assert!(matches!(error, Ok(Err(failure)) if failure.exit == ws_client::failure::Exit::Usage));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod cli;
pub mod command;
pub mod connect;
pub mod input;
pub mod interactive;
pub mod jsonrpc;
pub mod listen;
pub mod output;
pub mod session;
pub mod transport;
pub mod url_forms;

pub use ws_bench::{failure, signals};

use std::collections::VecDeque;
use std::net::SocketAddr;

use tokio::time::Instant;
use ws_core::client::{Http2Mode, HttpVersion};
use ws_core::handshake::{ClientRequest, Negotiated};
use ws_core::stream::WebSocket;
use ws_core::{Config, Message};

use crate::cli::Cli;
use crate::failure::{Exit, Failure};
use crate::input::{Encoder, Input};
use crate::output::{Palette, colours_wanted, describe_payload, note};
use crate::session::{Mode, Session, Ui, timeout_text};
use crate::transport::Transport;

/// Which of the standard streams are terminals.
#[derive(Debug, Clone, Copy, Default)]
pub struct Terminals {
    /// stdin is a terminal: messages are typed.
    pub stdin: bool,
    /// stdout is a terminal: received text is escaped.
    pub stdout: bool,
}

/// Runs the client as the arguments say; `Ok` is exit status 0.
///
/// The interactive mode (slash commands, a banner, no timeout on the
/// conversation) is used when messages come from a terminal on stdin; the
/// line editor too when stdout is a terminal as well (with stdout
/// redirected, lines are read plainly and the output stays exact).
pub async fn run(cli: Cli, terminals: Terminals) -> Result<(), Failure> {
    let mut cli = cli
        .resolve()
        .map_err(|message| Failure::new(Exit::Usage, message))?;
    let start = Instant::now();
    let timeout = Some(cli.timeout).filter(|t| !t.is_zero());

    let items = if let Some(path) = &cli.file {
        Some(VecDeque::from([Message::Binary(
            input::read_file(path)?.into(),
        )]))
    } else if !cli.messages.is_empty() {
        let mut encoder = Encoder::from_cli(&cli);
        let mut items = VecDeque::new();
        for (index, text) in cli.messages.iter().enumerate() {
            let message = encoder.encode(text.clone().into_bytes()).map_err(|why| {
                Failure::new(Exit::Usage, format!("message {} is {why}", index + 1))
            })?;
            items.push_back(message);
        }
        Some(items)
    } else {
        None
    };
    let from_stdin = items.is_none() && !cli.echo;
    let interactive = from_stdin && terminals.stdin;
    let editing = interactive && terminals.stdout;
    let listening = cli.listen.is_some();
    let mode = Mode {
        interactive,
        commands: from_stdin && (interactive || cli.commands),
        keep_open: cli.echo || cli.no_close,
        timeout,
        peer: if listening { "client" } else { "server" },
    };
    let palette = Palette::new(
        editing && colours_wanted(cli.no_color, std::env::var("NO_COLOR").ok().as_deref()),
    );

    let config = Config::default()
        .max_frame_size(cli.max_message_size)
        .max_message_size(cli.max_message_size)
        .deflate((!cli.no_deflate).then(ws_core::deflate::DeflateConfig::default));
    let (ws, negotiated, deadline) = match cli.listen {
        Some(address) => {
            let (ws, negotiated, peer) = accept_client(&cli, address, config).await?;
            if !cli.quiet {
                note(&format!("ws-client: client connected from {peer}"));
            }
            (ws, negotiated, timeout.map(|t| Instant::now() + t))
        }
        None => {
            let deadline = timeout.map(|t| start + t);
            let (ws, negotiated) = connect_following_redirects(&mut cli, config, deadline).await?;
            (ws, negotiated, deadline)
        }
    };
    if cli.verbose {
        describe_negotiated(&negotiated, listening);
    }

    if interactive && !cli.quiet {
        let target = match cli.listen {
            Some(_) => "the client".to_owned(),
            None => cli.url.clone(),
        };
        match &negotiated.protocol {
            Some(protocol) => {
                note(&palette.status(&format!("connected to {target} (protocol: {protocol})")))
            }
            None => note(&palette.status(&format!("connected to {target}"))),
        }
        note(&palette.status(
            "type a message and press Enter; /help lists the commands (Tab completes); Ctrl-D closes",
        ));
    }

    // Messages known up front make the whole run one bounded exchange.
    let mut editor = None;
    let (input, deadline) = match items {
        Some(items) if !mode.keep_open => (Input::Items(items), deadline),
        Some(items) => (Input::Items(items), None),
        None if cli.echo => (Input::Nothing, None),
        None if editing => {
            let started = interactive::start(palette, cli.history_file.clone())?;
            let input = started.input;
            editor = Some((started.screen, started.terminal));
            (input, None)
        }
        None => (input::stdin_lines(cli.null)?, None),
    };
    let ui = match &editor {
        Some((screen, _)) => Ui::Interactive {
            screen: screen.clone(),
            palette,
        },
        None => Ui::Plain {
            escape: terminals.stdout,
        },
    };
    let result = Session::new(ws, &cli, mode, deadline, ui).run(input).await;
    // Puts the terminal back before main reports a failure.
    drop(editor);
    result
}

/// Connects to `cli.url` (as typed: see [`url_forms`]), following
/// redirects with `-L`; leaves the final URL in `cli.url`.
async fn connect_following_redirects(
    cli: &mut Cli,
    config: Config,
    deadline: Option<Instant>,
) -> Result<(WebSocket<Transport>, Negotiated), Failure> {
    let (url, rewritten) = url_forms::normalize(&cli.url);
    if let Some(rewritten) = rewritten
        && !cli.quiet
    {
        note(&format!("ws-client: {rewritten}"));
    }
    cli.url = url;
    let timeout = Some(cli.timeout).filter(|t| !t.is_zero());
    let mut redirects = 0;
    loop {
        let request = connect::build_request(cli)?;
        let route = connect::route(cli, &request)?;
        if cli.verbose {
            describe_request(&request, route.http2);
        }
        let failure = match connect::open(
            &request,
            &route,
            config.clone(),
            deadline,
            &timeout_text(timeout),
        )
        .await
        {
            Ok((socket, response)) => {
                if cli.verbose {
                    describe_response(&response);
                }
                return Ok((socket, response.negotiated().clone()));
            }
            Err(failure) => failure,
        };
        let Some(location) = failure.redirect.clone() else {
            if failure.not_http && !request.is_secure() && route.proxy.is_none() {
                return Err(tls_hint(failure, &request, &cli.url).await);
            }
            return Err(failure);
        };
        if !cli.follow_redirects {
            return Err(Failure::new(
                failure.exit,
                format!("{}; -L follows redirects", failure.message),
            ));
        }
        if redirects == cli.max_redirects {
            return Err(Failure::new(
                failure.exit,
                format!(
                    "{}: more than {} redirects (--max-redirects)",
                    failure.message, cli.max_redirects
                ),
            ));
        }
        redirects += 1;
        let next = redirect_target(&cli.url, &location)
            .map_err(|why| Failure::new(Exit::Handshake, format!("{}: {why}", failure.message)))?;
        if !cli.quiet {
            note(&format!("ws-client: redirected to {next}"));
        }
        cli.url = next;
    }
}

/// How long the second look at a server that did not answer in HTTP may
/// take.
const TLS_PROBE_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The answer to a `ws://` upgrade was not HTTP: connect once more and look
/// at the first bytes; a TLS record (content type 21 or 22, version 3.x)
/// means the server speaks TLS on that port, and the message says to use
/// `wss://`.
async fn tls_hint(failure: Failure, request: &ClientRequest, url: &str) -> Failure {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let probe = async {
        // A direct look, bounded by TLS_PROBE_LIMIT: the hint is about the
        // server's port, so no proxy is involved.
        let mut stream = tokio::net::TcpStream::connect((request.host(), request.port()))
            .await
            .ok()?;
        stream.write_all(&request.to_bytes()).await.ok()?;
        let mut head = [0u8; 3];
        stream.read_exact(&mut head).await.ok()?;
        Some(head)
    };
    match tokio::time::timeout(TLS_PROBE_LIMIT, probe).await {
        Ok(Some(head)) if url_forms::is_tls_record(&head) => Failure::new(
            Exit::Handshake,
            format!(
                "handshake failed: this looks like a TLS server: use {}",
                url.replacen("ws://", "wss://", 1)
            ),
        ),
        _ => failure,
    }
}

/// The URL a redirect from `current` to `location` leads to: resolved
/// against `current` when relative, with http(s) mapped to ws(s).
pub fn redirect_target(current: &str, location: &str) -> Result<String, String> {
    let base = url::Url::parse(current).map_err(|error| format!("bad URL {current}: {error}"))?;
    let mut next = base
        .join(location.trim())
        .map_err(|error| format!("cannot follow the redirect to {location:?}: {error}"))?;
    let scheme = match next.scheme() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        other => {
            return Err(format!(
                "cannot follow a redirect to a {other}:// URL ({location})"
            ));
        }
    };
    if next.scheme() != scheme {
        // The text form is rebuilt: `set_scheme` refuses some special-scheme changes.
        let text = next.as_str().replacen(next.scheme(), scheme, 1);
        next = url::Url::parse(&text).map_err(|error| format!("bad redirect {text}: {error}"))?;
    }
    Ok(next.to_string())
}

/// `-v`: the request head, `> `-marked, on stderr: the HTTP/1.1 upgrade,
/// or with `--http2` (on) the extended CONNECT's pseudo-header fields
/// followed by the same fields minus those HTTP/2 has no use for.
fn describe_request(request: &ClientRequest, http2: Http2Mode) {
    let bytes = request.to_bytes();
    if http2 == Http2Mode::On {
        let scheme = if request.is_secure() { "https" } else { "http" };
        note("> HTTP/2 extended CONNECT (RFC 8441)");
        note("> :method: CONNECT");
        note("> :protocol: websocket");
        note(&format!("> :scheme: {scheme}"));
        note(&format!("> :path: {}", request.resource()));
        note(&format!("> :authority: {}", request.host_header_value()));
        let h1_only = ["host", "upgrade", "connection", "sec-websocket-key"];
        // HTTP/2 field names are lowercase.
        for line in String::from_utf8_lossy(&bytes).lines().skip(1) {
            if let Some((name, value)) = line.split_once(':') {
                let name = name.to_ascii_lowercase();
                if !h1_only.contains(&name.as_str()) {
                    note(&format!("> {name}:{value}"));
                }
            }
        }
        return;
    }
    if http2 == Http2Mode::Auto && request.is_secure() {
        note("> (HTTP/2 offered with TLS ALPN; HTTP/1.1 form shown)");
    }
    for line in String::from_utf8_lossy(&bytes).lines() {
        if !line.is_empty() {
            note(&format!("> {line}"));
        }
    }
}

/// `-v`: the server's response head, `< `-marked, on stderr (control
/// characters a server put in its headers escaped).
fn describe_response(response: &ws_core::client::Response) {
    let version = response.http_version();
    let status_line = match version {
        HttpVersion::Http2 => format!("< HTTP/2 {}", response.status()),
        _ => format!(
            "< HTTP/1.1 {} {}",
            response.status(),
            output::escape_control(response.reason().as_bytes())
        ),
    };
    note(&status_line);
    for header in response.headers().iter() {
        note(&format!(
            "< {}: {}",
            output::escape_control(header.name.as_bytes()),
            output::escape_control(&header.value)
        ));
    }
    match version {
        HttpVersion::Http2 => {
            note("< over HTTP/2: a WebSocket on an extended CONNECT stream (RFC 8441)")
        }
        _ => note("< over HTTP/1.1 (Upgrade, Connection and Sec-WebSocket-Accept checked)"),
    }
}

/// `-v`: what the handshake agreed, on stderr.
fn describe_negotiated(negotiated: &Negotiated, listening: bool) {
    if listening {
        note("< HTTP/1.1 101 Switching Protocols (sent)");
    }
    let protocol = negotiated.protocol.as_deref().unwrap_or("none");
    let extensions = negotiated.extensions.as_deref().unwrap_or("none");
    note(&format!(
        "< subprotocol: {}",
        describe_payload(protocol.as_bytes())
    ));
    note(&format!(
        "< extensions: {}",
        describe_payload(extensions.as_bytes())
    ));
}

/// `--listen`: binds, says where, and waits for one client.
async fn accept_client(
    cli: &Cli,
    address: SocketAddr,
    config: Config,
) -> Result<(WebSocket<Transport>, Negotiated, SocketAddr), Failure> {
    let listener = listen::Listener::bind(address).await?;
    let bound = listener.local_addr()?;
    if !cli.quiet {
        let host = match bound {
            SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
            SocketAddr::V4(v4) => v4.ip().to_string(),
        };
        note(&format!(
            "ws-client: listening on ws://{host}:{}/ for one client",
            bound.port()
        ));
    }
    let quiet = cli.quiet;
    listener
        .accept_one(config, &cli.handshake.protocols, cli.verbose, |line| {
            if !quiet {
                note(&format!("ws-client: {line}"));
            }
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_resolve_relative_locations_and_map_http_schemes() {
        assert_eq!(redirect_target("ws://a:1/x/y", "/z").unwrap(), "ws://a:1/z");
        assert_eq!(
            redirect_target("ws://a:1/x", "https://b/chat").unwrap(),
            "wss://b/chat"
        );
        assert_eq!(
            redirect_target("wss://a/", "http://c:8080/").unwrap(),
            "ws://c:8080/"
        );
        assert!(redirect_target("ws://a/", "ftp://b/").is_err());
    }
}
