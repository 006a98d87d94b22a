//! `ws-client`: connect to a WebSocket server, send messages, print replies.
//! See `ws-client --help` for the options and the exit status table.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use ws_client::cli::Cli;
use ws_client::failure::Exit;

fn main() -> ExitCode {
    // `ws-client bench ...` is the load generator (the ws-bench crate, also
    // its own `ws-bench` binary), with a command line of its own; "bench" is
    // never a URL, so the client's interface is unchanged.
    if std::env::args_os().nth(1).is_some_and(|arg| arg == "bench") {
        init_logging();
        return ws_bench::main("ws-client bench", std::env::args_os().skip(1));
    }
    let cli = Cli::parse();
    init_logging();

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            report(&format!("cannot start the async runtime: {error}"));
            return ExitCode::from(Exit::Other.code());
        }
    };
    let terminals = ws_client::Terminals {
        stdin: std::io::stdin().is_terminal(),
        stdout: std::io::stdout().is_terminal(),
    };
    let result = runtime.block_on(ws_client::run(cli, terminals));
    // A blocking read of stdin may still be pending; it must not hold the exit.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            report(&failure.message);
            ExitCode::from(failure.exit.code())
        }
    }
}

/// Logs are for debugging (RUST_LOG=debug) and go to stderr: stdout is data.
fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn report(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "ws-client: {message}");
}
