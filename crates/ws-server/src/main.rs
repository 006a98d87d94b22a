//! `ws-server`: the command line over [`ws_server::Server`].

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use ws_server::Server;
use ws_server::cli::{Args, describe_limits};
use ws_server::timers;

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(&args);
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line, no backtrace: `{:#}` joins the context chain.
            eprintln!("ws-server: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(args: &Args) {
    let (filter, warning) = args.log_filter();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    if let Some(warning) = warning {
        tracing::warn!("{warning}");
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let threads = args.worker_threads();
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    // Where it can, the server keeps its deadlines in a queue of its own,
    // and the runtime goes without tokio's time driver (see `timers`).
    builder.enable_io();
    if !timers::QUEUE_SUPPORTED {
        builder.enable_time();
    }
    let runtime = builder.build().context("cannot start the async runtime")?;
    // Certificate problems are reported before anything listens.
    let tls = match args.tls_files() {
        Some((cert, key)) => Some(ws_server::tls::load_pem_files(cert, key)?),
        None => None,
    };
    runtime.block_on(async {
        if timers::QUEUE_SUPPORTED {
            timers::start_queue().context("cannot start the timer queue")?;
        }
        let config = args.server_config();
        let limits = describe_limits(&config);
        let listen = args.listen_address();
        let mut server = Server::bind(listen.as_str(), config)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        if let Some(tls) = tls {
            server = server.with_tls(tls);
        }
        let addr = server
            .local_addr()
            .context("cannot read the listening address")?;
        // Handlers go in before the ready line: a script may signal the
        // moment it has read it.
        let signals = Signals::install().context("cannot install signal handlers")?;
        tracing::info!(%addr, threads, "{limits}");
        if let Some(note) = args.listen_note() {
            tracing::info!("{note}");
        }
        // Scripts parse this first line: it stays exactly `listening on URL`.
        print_line(&format!("listening on {}://{addr}", server.scheme()));
        print_line(&format!("test page: {}", server.page_url()?));
        let summary = server.run(signals.first()).await;
        print_line(&format!("shut down: {summary}"));
        Ok(())
    })
}

/// Writes a line to stdout and flushes it. Scripts wait on these lines; if
/// stdout is gone there is nobody to tell, and that must not stop the server.
fn print_line(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
}

/// SIGINT and SIGTERM (Ctrl-C elsewhere), registered as soon as they are
/// installed rather than on first poll.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    #[cfg(unix)]
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    #[cfg(not(unix))]
    fn install() -> std::io::Result<Self> {
        Ok(Self {})
    }

    /// Completes on the first signal.
    #[cfg(unix)]
    async fn first(mut self) {
        let name = tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        };
        tracing::info!("received {name}; shutting down");
    }

    #[cfg(not(unix))]
    async fn first(self) {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("received Ctrl-C; shutting down");
        } else {
            std::future::pending::<()>().await;
        }
    }
}
