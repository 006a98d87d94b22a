//! `cargo xtask ci`: every check a submission must pass, in order, stopping at
//! the first failure.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::workspace::Workspace;
use crate::{autobahn, e2e, interop, process};

/// Stops a step that hangs (a deadlocked test, say) well inside CI's budget.
const CARGO_STEP_TIMEOUT: Duration = Duration::from_secs(40 * 60);

type Step = (&'static str, fn(&Workspace) -> Result<()>);

const STEPS: [Step; 8] = [
    ("cargo fmt --check", |ws| {
        cargo(ws, &["fmt", "--all", "--", "--check"])
    }),
    (
        "cargo clippy --workspace --all-targets --all-features -- -D warnings",
        |ws| {
            cargo(
                ws,
                &[
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--all-features",
                    "--",
                    "-D",
                    "warnings",
                ],
            )
        },
    ),
    ("ws-core feature combinations", feature_combinations),
    ("cargo test --workspace --all-features", |ws| {
        ensure_tmux()?;
        cargo(ws, &["test", "--workspace", "--all-features"])
    }),
    ("cargo xtask e2e", e2e::run),
    ("cargo xtask hostile --quick", |ws| {
        crate::hostile::run(ws, &["--quick".to_owned()])
    }),
    ("cargo xtask interop", interop::run),
    ("cargo xtask autobahn", autobahn::ci),
];

/// Runs the steps, each under a header on stderr with its duration.
pub fn run(workspace: &Workspace) -> Result<()> {
    let started = Instant::now();
    for (index, (name, step)) in STEPS.iter().enumerate() {
        eprintln!("\n==> xtask ci [{}/{}]: {name}", index + 1, STEPS.len());
        let step_started = Instant::now();
        let result = step(workspace);
        let took = step_started.elapsed().as_secs();
        if let Err(error) = result {
            bail!("ci step `{name}` failed after {took} s: {error:#}");
        }
        eprintln!("==> xtask ci: `{name}` passed in {took} s");
    }
    eprintln!(
        "==> xtask ci: all {} steps passed in {} s",
        STEPS.len(),
        started.elapsed().as_secs()
    );
    Ok(())
}

/// ws-core's optional features, each alone (futures brings tokio) and none
/// at all, as a library crate would depend on it. The workspace build above
/// has them all on, so only this shows a `cfg` that breaks the build, or
/// leaves an unused import or dead code, when one is off. Clippy (a check
/// build) is enough: what differs between the combinations is what
/// compiles, not what runs.
const FEATURE_COMBINATIONS: [&[&str]; 9] = [
    &["--no-default-features"],
    &["--no-default-features", "--features", "tokio"],
    &["--no-default-features", "--features", "futures"],
    &["--no-default-features", "--features", "deflate"],
    &["--no-default-features", "--features", "url"],
    &["--no-default-features", "--features", "http"],
    &["--no-default-features", "--features", "hyper"],
    &["--no-default-features", "--features", "http2"],
    &["--no-default-features", "--features", "client"],
];

fn feature_combinations(workspace: &Workspace) -> Result<()> {
    for features in FEATURE_COMBINATIONS {
        let mut args = vec!["clippy", "--package", "ws-core", "--lib"];
        args.extend_from_slice(features);
        args.extend_from_slice(&["--", "-D", "warnings"]);
        eprintln!("--> cargo {}", args.join(" "));
        cargo(workspace, &args)?;
    }
    Ok(())
}

/// ws-client's interactive tests drive the client in a tmux pane: install
/// Debian's tmux when it is missing (they fail without it when CI is set).
fn ensure_tmux() -> Result<()> {
    let present = std::process::Command::new("tmux")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !present {
        eprintln!("xtask: tmux is missing (ws-client's interactive tests need it); installing it");
        crate::interop::apt_install(&["tmux"])?;
    }
    Ok(())
}

/// Runs `cargo ARGS` with inherited output and fails unless it succeeds.
fn cargo(workspace: &Workspace, args: &[&str]) -> Result<()> {
    let mut command = workspace.cargo_command();
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    let status = process::status_within(&mut command, CARGO_STEP_TIMEOUT)?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}
