//! Project automation, run as `cargo xtask <command>`.
//!
//! - `ci`: format check, clippy with warnings as errors, the whole test suite,
//!   then `e2e`, `hostile --quick`, `interop` and `autobahn`, stopping at the
//!   first failure.
//! - `e2e`: the real `ws-server` and `ws-client` binaries against each other
//!   over loopback, including the failure paths and a graceful shutdown.
//! - `interop`: the binaries against independent implementations (the Python
//!   `websockets` library and a headless Chromium), installed by the task.
//! - `autobahn`: the Autobahn|Testsuite against both binaries, every case's
//!   verdict compared with the committed expectation files.
//! - `hostile`, `soak`, `bench`: hostile peers, a soak run, benchmarks.

mod autobahn;
mod bench;
mod ci;
mod e2e;
mod examples;
mod hostile;
mod interop;
mod interop_h2;
mod interop_tls;
mod process;
mod report;
mod soak;
mod workspace;

use std::process::ExitCode;

use workspace::Workspace;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  ci        cargo fmt --check, cargo clippy --all-features -D warnings,
            cargo test --workspace --all-features, then e2e, hostile --quick,
            interop and autobahn; stops at the first failure
  e2e       ws-server and ws-client against each other over loopback
  interop   the binaries against Python `websockets` and a headless Chromium,
            over ws:// and wss://, and ws-client through tinyproxy (HTTP
            CONNECT) and Dante (SOCKS5); installs them under target/interop,
            and Debian's chromium, tinyproxy and dante-server with apt-get
            when missing
  hostile   hostile peers (slowloris, huge frames, floods, never-reading and
            vanishing clients ...) against ws-server; --quick for CI's variant,
            --release to test the release build
  soak      N clients echoing mixed messages for a while, every echo verified;
            --connections N (1000), --duration SECS (60), --release
  autobahn  the Autobahn|Testsuite (all 517 cases) against the release
            ws-server and ws-client --echo, each case's verdict compared with
            xtask/autobahn/expected-{server,client}.json; --server, --client,
            --cases PATTERNS, --full, --update-expected, --docker
            (cargo xtask autobahn --help)
  bench     ws-server against fastwebsockets, tokio-tungstenite and a TCP floor
            (release builds, pinned CPUs, medians); writes target/bench/report.md;
            --quick, --deflate, --cells, ... (cargo xtask bench --help)

environment:
  XTASK_CHROMIUM   the browser `interop` drives instead of /usr/bin/chromium
                   (no install is attempted for it)
  XTASK_AUTOBAHN_DIR  the Python port of the Autobahn|Testsuite `autobahn`
                   runs (default: ../shared/autobahn beside the checkout)
  XTASK_AUTOBAHN=docker  `ci` skips `autobahn` when that port is absent,
                   because a docker job runs `cargo xtask autobahn --docker`";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().map(String::as_str);
    if let Some("-h" | "--help" | "help") = command {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    // `hostile`, `soak`, `bench` and `autobahn` take options of their own.
    type WithOptions = fn(&Workspace, &[String]) -> anyhow::Result<()>;
    let with_options: Option<WithOptions> = match command {
        Some("hostile") => Some(hostile::run),
        Some("soak") => Some(soak::run),
        Some("bench") => Some(bench::run),
        Some("autobahn") => Some(autobahn::run),
        _ => None,
    };
    if let Some(run) = with_options {
        let options = args.get(1..).unwrap_or_default();
        return match Workspace::locate().and_then(|workspace| run(&workspace, options)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("xtask: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    if args.len() > 1 {
        eprintln!(
            "xtask: unexpected arguments after `{}`\n\n{USAGE}",
            args.join(" ")
        );
        return ExitCode::from(2);
    }
    let run: fn(&Workspace) -> anyhow::Result<()> = match command {
        Some("ci") => ci::run,
        Some("e2e") => e2e::run,
        Some("interop") => interop::run,
        Some(other) => {
            eprintln!("xtask: unknown command `{other}`\n\n{USAGE}");
            return ExitCode::from(2);
        }
        None => {
            eprintln!("xtask: no command given\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match Workspace::locate().and_then(|workspace| run(&workspace)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}
