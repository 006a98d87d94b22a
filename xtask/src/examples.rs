//! ws-core's examples under `cargo xtask e2e`: each runs as a user would run
//! it, and an independent peer (Python `websockets`, in the interop
//! virtualenv) drives it.

use std::path::PathBuf;
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
    let [echo, broadcast, client] = CHECKS;
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
}

const CHECKS: [&str; 3] = [
    "example echo_server: text with permessage-deflate, 1 MiB binary, ping, close 1000 (Python websockets)",
    "example broadcast: 100 Python clients each receive every client's message",
    "example client: three replies from a Python echo server, close 1000, exit 0",
];

struct Setup {
    python: PathBuf,
    driver: PathBuf,
    examples: PathBuf,
}

impl Setup {
    fn prepare(workspace: &Workspace) -> Result<Self> {
        let mut build = workspace.cargo_command();
        build
            .args(["build", "-p", "ws-core", "--examples"])
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
        let status = process::status_within(&mut build, Duration::from_secs(40 * 60))?;
        ensure!(
            status.success(),
            "`cargo build -p ws-core --examples` failed ({status})"
        );
        let python = ensure_websockets(&workspace.target.join("interop").join("venv"))?;
        let driver = workspace.scratch("examples")?.join("examples.py");
        std::fs::write(&driver, DRIVER)?;
        Ok(Self {
            python,
            driver,
            examples: workspace.target.join("debug").join("examples"),
        })
    }

    fn example(&self, name: &str) -> PathBuf {
        self.examples
            .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
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
