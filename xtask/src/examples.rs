//! ws-core's examples under `cargo xtask e2e`: each runs as a user would run
//! it, and an independent peer (Python `websockets`, in the interop
//! virtualenv) drives it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Result, bail, ensure};

use crate::interop::ensure_websockets;
use crate::process::{self, Service};
use crate::report::Report;
use crate::workspace::Workspace;

/// The peer, run with the virtualenv's Python.
const DRIVER: &str = include_str!("examples.py");

/// Clients in the broadcast check, each receiving every message.
const BROADCAST_CLIENTS: usize = 100;

/// How long a driver may take, and an example to start or stop.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The examples' checks, each counted in `report`.
pub fn checks(report: &mut Report, workspace: &Workspace) {
    let setup = report.check("build ws-core's examples and the Python peer", || {
        Setup::prepare(workspace)
    });
    let Some(setup) = setup else {
        for name in CHECKS {
            report.fail(name, "no examples or no Python peer");
        }
        return;
    };
    let [echo, broadcast, client, hyper_echo, axum_echo] = CHECKS;
    report.check(echo, || {
        setup.serve("echo_server", |url| setup.drive(&["echo", url]))
    });
    report.check(broadcast, || {
        let clients = BROADCAST_CLIENTS.to_string();
        setup.serve("broadcast", |url| {
            setup.drive(&["broadcast", url, &clients])
        })
    });
    report.check(client, || {
        let program = setup.example("client");
        setup.drive(&["client", &program.display().to_string()])
    });
    // The framework examples: the same echo check, and the plain HTTP
    // request a browser or a probe sends refused (hyper) or served (axum).
    report.check(hyper_echo, || {
        setup.serve("hyper_echo", |url| {
            let any_path = format!("{url}/any/path?x=1");
            setup.drive(&["echo", &any_path])?;
            setup.drive(&["refusal", &any_path])
        })
    });
    report.check(axum_echo, || {
        setup.serve("axum_echo", |url| {
            let socket = format!("{url}/ws");
            setup.drive(&["echo", &socket])?;
            setup.drive(&["refusal", &socket])?;
            setup.drive(&["page", &format!("{url}/")])
        })
    });
}

const CHECKS: [&str; 5] = [
    "example echo_server: text with permessage-deflate, 1 MiB binary, ping, close 1000 (Python websockets)",
    "example broadcast: 100 Python clients each receive every client's message",
    "example client: three replies from a Python echo server, close 1000, exit 0",
    "example hyper_echo (any path): text with permessage-deflate, 1 MiB binary, ping, close 1000; plain GET refused with 426",
    "example axum_echo (/ws): text with permessage-deflate, 1 MiB binary, ping, close 1000; plain GET of /ws refused with 426; page at /",
];

struct Setup {
    python: PathBuf,
    driver: PathBuf,
    examples: PathBuf,
}

/// Builds ws-core's examples, the hyper and axum ones (feature `hyper`) and
/// the client (feature `client`) included, and returns the directory that
/// holds them.
pub(crate) fn build(workspace: &Workspace) -> Result<PathBuf> {
    let mut build = workspace.cargo_command();
    build
        .args([
            "build",
            "-p",
            "ws-core",
            "--features",
            "hyper,client",
            "--examples",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    let status = process::status_within(&mut build, Duration::from_secs(40 * 60))?;
    ensure!(
        status.success(),
        "`cargo build -p ws-core --features hyper,client --examples` failed ({status})"
    );
    Ok(workspace.target.join("debug").join("examples"))
}

/// The path of example `name` in `examples`, the directory [`build`] returns.
pub(crate) fn example(examples: &Path, name: &str) -> PathBuf {
    examples.join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

impl Setup {
    fn prepare(workspace: &Workspace) -> Result<Self> {
        let examples = build(workspace)?;
        let python = ensure_websockets(&workspace.target.join("interop").join("venv"))?;
        let driver = workspace.scratch("examples")?.join("examples.py");
        std::fs::write(&driver, DRIVER)?;
        Ok(Self {
            python,
            driver,
            examples,
        })
    }

    fn example(&self, name: &str) -> PathBuf {
        example(&self.examples, name)
    }

    /// Starts a server example on a free port, runs `drive` against it,
    /// then stops it with Ctrl-C (SIGINT), which must end it with status 0.
    fn serve(&self, name: &str, drive: impl FnOnce(&str) -> Result<()>) -> Result<()> {
        let mut command = Command::new(self.example(name));
        command.arg("127.0.0.1:0");
        let server = Service::start(name, &mut command, TIMEOUT)?;
        let driven = drive(server.url());
        let exited = server.interrupt(TIMEOUT)?;
        driven?;
        ensure!(
            exited.status.success(),
            "`{name}` exited with {} on Ctrl-C",
            exited.status
        );
        Ok(())
    }

    /// Runs the Python peer; its stderr says what failed.
    fn drive(&self, args: &[&str]) -> Result<()> {
        let output = process::run(
            Command::new(&self.python).arg(&self.driver).args(args),
            None,
            TIMEOUT,
        )?;
        if !output.status.success() {
            bail!("{}", output.stderr_text().trim());
        }
        Ok(())
    }
}
