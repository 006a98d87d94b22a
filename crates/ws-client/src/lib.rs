//! `ws-client`: a command-line WebSocket client built on `ws-core`.
//!
//! The binary is a thin `main` over [`run`]; the pieces live here so that
//! they can be tested: argument parsing ([`cli`]), slash commands
//! ([`command`]), exit statuses ([`failure`]), output formats ([`output`]),
//! the connection ([`connect`], over `ws_core::client`: resolution, proxies,
//! TLS; [`transport`]) and the conversation ([`session`]). All protocol
//! decisions (handshake validation, framing, pongs, the closing handshake,
//! limits) are `ws-core`'s.
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
pub mod output;
pub mod session;
pub mod transport;

pub use ws_bench::{failure, signals};

use std::collections::VecDeque;

use tokio::time::Instant;
use ws_core::{Config, Message};

use crate::cli::Cli;
use crate::failure::Failure;
use crate::input::Input;
use crate::output::note;
use crate::session::{Mode, Session, timeout_text};

/// Runs the client as the arguments say; `Ok` is exit status 0.
///
/// `stdin_is_terminal` decides interactive mode (slash commands, a banner,
/// no timeout on the conversation) when messages come from stdin.
pub async fn run(cli: Cli, stdin_is_terminal: bool) -> Result<(), Failure> {
    let start = Instant::now();
    let request = connect::build_request(&cli)?;
    let route = connect::route(&cli, &request)?;
    let timeout = Some(cli.timeout).filter(|t| !t.is_zero());

    let items = if let Some(path) = &cli.file {
        Some(VecDeque::from([Message::Binary(
            input::read_file(path)?.into(),
        )]))
    } else if !cli.messages.is_empty() {
        Some(
            cli.messages
                .iter()
                .map(|text| {
                    if cli.binary {
                        Message::Binary(text.clone().into_bytes().into())
                    } else {
                        Message::from(text.clone())
                    }
                })
                .collect(),
        )
    } else {
        None
    };
    let from_stdin = items.is_none() && !cli.echo;
    let interactive = from_stdin && stdin_is_terminal;
    let mode = Mode {
        interactive,
        commands: from_stdin && (interactive || cli.commands),
        keep_open: cli.echo || cli.no_close,
        timeout,
    };

    let config = Config::default()
        .max_frame_size(cli.max_message_size)
        .max_message_size(cli.max_message_size)
        .deflate((!cli.no_deflate).then(ws_core::deflate::DeflateConfig::default));
    let handshake_deadline = timeout.map(|t| start + t);
    let (ws, negotiated) = connect::open(
        &request,
        &route,
        config,
        handshake_deadline,
        &timeout_text(timeout),
    )
    .await?;

    if interactive && !cli.quiet {
        match &negotiated.protocol {
            Some(protocol) => note(&format!("connected to {} (protocol: {protocol})", cli.url)),
            None => note(&format!("connected to {}", cli.url)),
        }
        note("type a message and press Enter; /help lists the commands, Ctrl-D closes");
    }

    // Messages known up front make the whole run one bounded exchange.
    let (input, deadline) = match items {
        Some(items) if !mode.keep_open => (Input::Items(items), handshake_deadline),
        Some(items) => (Input::Items(items), None),
        None if cli.echo => (Input::Nothing, None),
        None => (input::stdin_lines()?, None),
    };
    Session::new(ws, &cli, mode, deadline).run(input).await
}
