//! The suite from the pinned `crossbario/autobahn-testsuite` image, for
//! machines without the Python port beside the checkout (GitHub Actions).
//!
//! The container shares the host's network (`--net=host`), reads its spec from
//! `/config` and writes its reports to `/reports`, which is the directory
//! holding the local run's report directories (`target/autobahn`): the
//! comparison reads them from the same places either way.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};

use super::compare::Selection;
use crate::process;

/// The image, pinned: the same suite release as the Python port.
pub const IMAGE: &str = "crossbario/autobahn-testsuite:25.10.1";

/// The mount points inside the container.
const CONFIG: &str = "/config";
const REPORTS: &str = "/reports";

/// The container of the fuzzingserver, named so that it can be stopped.
pub const FUZZINGSERVER_CONTAINER: &str = "xtask-autobahn-fuzzingserver";

/// The fuzzingclient's spec: test the server at `url` as `agent`, writing
/// the reports to `/reports/<report_dir>`.
pub fn fuzzingclient_spec(
    url: &str,
    agent: &str,
    selection: &Selection,
    report_dir: &str,
) -> Value {
    json!({
        "outdir": format!("{REPORTS}/{report_dir}"),
        "servers": [{"agent": agent, "url": url}],
        "cases": selection.patterns(),
        "exclude-cases": [],
        "exclude-agent-cases": {},
    })
}

/// The fuzzingserver's spec: listen at `url` and write the reports to
/// `/reports/<report_dir>`.
pub fn fuzzingserver_spec(url: &str, selection: &Selection, report_dir: &str) -> Value {
    json!({
        "url": url,
        "outdir": format!("{REPORTS}/{report_dir}"),
        "cases": selection.patterns(),
        "exclude-cases": [],
        "exclude-agent-cases": {},
    })
}

/// `docker run` of `wstest` in `mode` with the spec `spec_file` (a file name
/// in `config`), the reports going to `reports`.
pub fn wstest_command(
    config: &Path,
    reports: &Path,
    mode: &str,
    spec_file: &str,
    name: Option<&str>,
) -> Command {
    let mut command = Command::new("docker");
    command.args(["run", "--rm", "--net=host"]);
    if let Some(name) = name {
        command.args(["--name", name]);
    }
    command
        .arg("-v")
        .arg(format!("{}:{CONFIG}:ro", config.display()))
        .arg("-v")
        .arg(format!("{}:{REPORTS}", reports.display()))
        .args([IMAGE, "wstest", "-m", mode, "-s"])
        .arg(format!("{CONFIG}/{spec_file}"));
    if mode == "fuzzingserver" {
        // No web UI on port 8080.
        command.args(["-u", "0"]);
    }
    command
}

/// Writes `spec` to `config/name`.
pub fn write_spec(config: &Path, name: &str, spec: &Value) -> Result<()> {
    std::fs::create_dir_all(config)
        .with_context(|| format!("could not create {}", config.display()))?;
    let path = config.join(name);
    let text = serde_json::to_string_pretty(spec).context("could not serialise the spec")?;
    std::fs::write(&path, text).with_context(|| format!("could not write {}", path.display()))
}

/// Stops the fuzzingserver's container (its reports of the cases run are
/// already written by `updateReports`).
pub fn stop_fuzzingserver() -> Result<()> {
    let output = process::run(
        Command::new("docker")
            .args(["stop", FUZZINGSERVER_CONTAINER])
            .stdin(Stdio::null()),
        None,
        Duration::from_secs(60),
    )?;
    ensure!(
        output.status.success(),
        "`docker stop {FUZZINGSERVER_CONTAINER}` failed: {}",
        output.describe()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fuzzingclient_spec_names_the_server_the_cases_and_the_mounted_report_dir() {
        let selection = Selection::parse("1.*,6.4.3").unwrap();
        let spec = fuzzingclient_spec("ws://127.0.0.1:9001", "ws-server", &selection, "server");
        assert_eq!(
            spec,
            json!({
                "outdir": "/reports/server",
                "servers": [{"agent": "ws-server", "url": "ws://127.0.0.1:9001"}],
                "cases": ["1.*", "6.4.3"],
                "exclude-cases": [],
                "exclude-agent-cases": {},
            })
        );
    }

    #[test]
    fn the_fuzzingserver_spec_names_its_url_the_cases_and_the_mounted_report_dir() {
        let spec = fuzzingserver_spec("ws://127.0.0.1:9002", &Selection::all(), "client");
        assert_eq!(
            spec,
            json!({
                "url": "ws://127.0.0.1:9002",
                "outdir": "/reports/client",
                "cases": ["*"],
                "exclude-cases": [],
                "exclude-agent-cases": {},
            })
        );
    }

    #[test]
    fn wstest_runs_in_the_pinned_image_on_the_host_network() {
        let command = wstest_command(
            Path::new("/w/target/autobahn/docker-config"),
            Path::new("/w/target/autobahn"),
            "fuzzingserver",
            "fuzzingserver.json",
            Some(FUZZINGSERVER_CONTAINER),
        );
        let args: Vec<String> = command
            .get_args()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect();
        assert_eq!(command.get_program(), "docker");
        assert_eq!(
            args,
            [
                "run",
                "--rm",
                "--net=host",
                "--name",
                FUZZINGSERVER_CONTAINER,
                "-v",
                "/w/target/autobahn/docker-config:/config:ro",
                "-v",
                "/w/target/autobahn:/reports",
                IMAGE,
                "wstest",
                "-m",
                "fuzzingserver",
                "-s",
                "/config/fuzzingserver.json",
                "-u",
                "0",
            ]
        );
    }
}
