//! `cargo xtask interop`: the binaries against independent implementations,
//! installed by the task itself: the Python `websockets` library (in a
//! virtualenv under `target/interop`) and a headless Chromium (Debian's,
//! driven by playwright-core from npm, never a browser of playwright's own);
//! TLS and proxies in `interop_tls`, HTTP/2 (RFC 8441) in `interop_h2`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

use crate::e2e::{self, Budget, Client, exit, expect_failure};
use crate::process::{self, Output, Service, one_line};
use crate::report::Report;
use crate::workspace::Workspace;

/// The `websockets` release the checks are written against.
const WEBSOCKETS_VERSION: &str = "17.4";
/// The playwright-core release that drives the browser.
const PLAYWRIGHT_VERSION: &str = "1.65.1";
const NODE_WS_VERSION: &str = "8.23.1";
/// The browser used unless `XTASK_CHROMIUM` names another.
const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

/// The Python client's five checks, the 16 MiB echo among them.
const PYTHON_CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
/// The browser script bounds itself at 60 s; this catches a stuck Node.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);
const NODE_WS_TIMEOUT: Duration = Duration::from_secs(90);
/// All ws-client runs against the Python server together.
const CLIENT_BUDGET: Duration = Duration::from_secs(120);
const QUICK: Duration = Duration::from_secs(30);
const PIP_TIMEOUT: Duration = Duration::from_secs(5 * 60);
const NPM_TIMEOUT: Duration = Duration::from_secs(5 * 60);
const APT_UPDATE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
const APT_INSTALL_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// Runs the checks and prints the report.
pub fn run(workspace: &Workspace) -> Result<()> {
    let mut report = Report::new();
    if report
        .check("build ws-server and ws-client", || {
            workspace.build_binaries()
        })
        .is_none()
    {
        return report.finish();
    }
    let dir = workspace.target.join("interop");
    std::fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    python_checks(&mut report, workspace, &dir);
    browser_checks(&mut report, workspace, &dir);
    node_ws_checks(&mut report, workspace, &dir);
    crate::interop_tls::run(&mut report, workspace, &dir);
    crate::interop_h2::run(&mut report, workspace, &dir);
    report.finish()
}

fn python_checks(report: &mut Report, workspace: &Workspace, dir: &Path) {
    let venv = dir.join("venv");
    let Some(python) = report.check(
        &format!(
            "python websockets {WEBSOCKETS_VERSION} in {}",
            shown(workspace, &venv)
        ),
        || ensure_websockets(&venv),
    ) else {
        return;
    };
    let script = workspace.path("xtask/interop/websockets_peer.py");

    peer_client_checks(
        report,
        workspace,
        "websockets client -> ws-server",
        PYTHON_CLIENT_TIMEOUT,
        |url| {
            let mut command = Command::new(&python);
            command.arg(&script).args(["client", url]);
            command
        },
    );

    let group = "ws-client -> websockets server";
    let mut command = Command::new(&python);
    command.arg(&script).arg("serve");
    match Service::start("websockets server", &mut command, QUICK) {
        Ok(peer) => client_checks(report, workspace, group, &peer),
        Err(error) => report.fail(group, &format!("{error:#}")),
    }
}

fn client_checks(report: &mut Report, workspace: &Workspace, group: &str, peer: &Service) {
    let budget = Budget::new(CLIENT_BUDGET);
    let client = Client::new(workspace, &budget);
    let url = format!("{}/", peer.url());
    let url = url.as_str();
    let name = |check: &str| format!("{group}: {check}");
    report.check(&name("ASCII text echoed"), || {
        e2e::echo_text(&client, url, &["Hello, Python!"])
    });
    report.check(&name("multi-byte UTF-8 text echoed"), || {
        e2e::echo_text(&client, url, &["héllo wörld — 日本語 🎉🦀", "second ✓"])
    });
    report.check(&name("1000 lines through stdin echoed in order"), || {
        e2e::echo_stdin_lines(&client, url)
    });
    let scratch = workspace.scratch("interop");
    report.check(&name("1 MiB binary file echoed byte for byte"), || {
        e2e::echo_binary_file(&client, url, &scratch?)
    });
    report.check(
        &name("server's close 4000: exit 7 (closed with a code), the code shown"),
        || {
            let close_url = format!("{}/close/4000", peer.url());
            let output = client.run(&[&close_url, "hello"], None)?;
            expect_failure(&output, exit::PEER_CLOSED, &["4000"])
        },
    );
}

fn browser_checks(report: &mut Report, workspace: &Workspace, dir: &Path) {
    let chromium = report.check("chromium available", ensure_chromium);
    let prefix = dir.join("node");
    let playwright = report.check(
        &format!(
            "playwright-core {PLAYWRIGHT_VERSION} in {}",
            shown(workspace, &prefix)
        ),
        || ensure_playwright(&prefix),
    );
    let (Some(chromium), Some(())) = (chromium, playwright) else {
        return;
    };
    let group = "chromium -> ws-server page";
    match e2e::start_ws_server(workspace) {
        Ok(server) => {
            let page = format!("{}/", server.http_url());
            let mut command = Command::new("node");
            command
                .arg(workspace.path("xtask/interop/browser_check.mjs"))
                .arg(&page)
                .arg(&prefix)
                .arg(&chromium);
            let output = process::run(&mut command, None, BROWSER_TIMEOUT);
            relay_script(report, group, output, Some(&server));
        }
        Err(error) => report.fail(group, &format!("{error:#}")),
    }
    axum_page_check(report, workspace, &prefix, &chromium);
}

/// The axum example's page, whose socket is upgraded by
/// `ws_core::hyper::upgrade` at `/ws`, loaded once in the same Chromium and
/// driven by the same script (the page keeps ws-server's element ids).
fn axum_page_check(report: &mut Report, workspace: &Workspace, prefix: &Path, chromium: &Path) {
    let group = "chromium -> axum_echo example page";
    let Some(examples) = report.check(&format!("{group}: examples build"), || {
        crate::examples::build(workspace)
    }) else {
        return;
    };
    let mut command = Command::new(crate::examples::example(&examples, "axum_echo"));
    command.arg("127.0.0.1:0");
    match Service::start("axum_echo", &mut command, QUICK) {
        Ok(server) => {
            let page = format!("{}/", server.http_url());
            let mut command = Command::new("node");
            command
                .arg(workspace.path("xtask/interop/browser_check.mjs"))
                .arg(&page)
                .arg(prefix)
                .arg(chromium);
            let output = process::run(&mut command, None, BROWSER_TIMEOUT);
            relay_script(report, group, output, Some(&server));
            report.check(&format!("{group}: axum_echo exits 0 on Ctrl-C"), || {
                let exited = server.interrupt(QUICK)?;
                ensure!(
                    exited.status.success(),
                    "axum_echo exited with {}",
                    exited.status
                );
                Ok(())
            });
        }
        Err(error) => report.fail(group, &format!("{error:#}")),
    }
}

/// Relays a helper script's check lines under `group`; a script that
/// crashed, or failed without saying which check, is a failure of its own,
/// reported with the tail of `server`'s stderr when there is a server.
pub(crate) fn relay_script(
    report: &mut Report,
    group: &str,
    output: Result<Output>,
    server: Option<&Service>,
) {
    let output = match output {
        Ok(output) => output,
        Err(error) => {
            report.fail(group, &format!("{error:#}"));
            return;
        }
    };
    let failed_before = report.failed();
    let found = report.relay(&format!("{group}: "), &output.stdout_text());
    let server_log = server.map(Service::stderr_tail).unwrap_or_default();
    let server_log = if server_log.is_empty() {
        String::new()
    } else {
        format!("; ws-server stderr: {server_log}")
    };
    if found == 0 {
        report.fail(
            group,
            &format!(
                "the script reported no check ({}){server_log}",
                output.describe()
            ),
        );
    } else if !output.status.success() && report.failed() == failed_before {
        report.fail(
            group,
            &format!("the script failed ({}){server_log}", output.describe()),
        );
    }
}

/// A path as the user would type it: relative to the workspace when inside.
fn shown(workspace: &Workspace, path: &Path) -> String {
    path.strip_prefix(&workspace.root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The virtualenv's Python, with the pinned `websockets` installed.
pub(crate) fn ensure_websockets(venv: &Path) -> Result<PathBuf> {
    let python = venv.join("bin").join("python");
    if has_websockets(&python) {
        return Ok(python);
    }
    if !runs(Command::new(&python).arg("--version")) {
        create_venv(venv)?;
    }
    eprintln!(
        "xtask: installing websockets {WEBSOCKETS_VERSION} into {}",
        venv.display()
    );
    let output = process::run(
        Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            &format!("websockets=={WEBSOCKETS_VERSION}"),
        ]),
        None,
        PIP_TIMEOUT,
    )?;
    ensure!(
        output.status.success(),
        "pip install websockets=={WEBSOCKETS_VERSION} failed: {}",
        output.describe()
    );
    ensure!(
        has_websockets(&python),
        "websockets {WEBSOCKETS_VERSION} is still not importable after pip install"
    );
    Ok(python)
}

fn has_websockets(python: &Path) -> bool {
    let probe = format!(
        "import sys, websockets; sys.exit(websockets.__version__ != '{WEBSOCKETS_VERSION}')"
    );
    runs(Command::new(python).args(["-c", &probe]))
}

/// Creates (or recreates, when broken) the virtualenv; Debian's python3 needs
/// its `python3-venv` package for that, installed when missing.
fn create_venv(venv: &Path) -> Result<()> {
    if !runs(Command::new("python3").arg("--version")) {
        apt_install(&["python3", "python3-venv"]).context("python3 is not installed")?;
    }
    let create = || {
        process::run(
            Command::new("python3")
                .args(["-m", "venv", "--clear"])
                .arg(venv),
            None,
            Duration::from_secs(120),
        )
    };
    eprintln!("xtask: creating a virtualenv in {}", venv.display());
    let mut output = create()?;
    if !output.status.success() {
        eprintln!("xtask: `python3 -m venv` failed; installing python3-venv");
        apt_install(&["python3-venv"])
            .with_context(|| format!("`python3 -m venv` failed: {}", output.describe()))?;
        output = create()?;
    }
    ensure!(
        output.status.success(),
        "`python3 -m venv {}` failed: {}",
        venv.display(),
        output.describe()
    );
    Ok(())
}

/// The browser to drive: `XTASK_CHROMIUM`, or Debian's chromium, installed
/// with apt-get when missing.
pub(crate) fn ensure_chromium() -> Result<PathBuf> {
    let chromium = match std::env::var_os("XTASK_CHROMIUM").filter(|v| !v.is_empty()) {
        Some(path) => {
            let path = PathBuf::from(path);
            ensure!(
                path.is_file(),
                "XTASK_CHROMIUM={} does not exist",
                path.display()
            );
            path
        }
        None => {
            let path = PathBuf::from(DEFAULT_CHROMIUM);
            if !path.is_file() {
                eprintln!("xtask: {DEFAULT_CHROMIUM} is missing; installing Debian's chromium");
                apt_install(&["chromium"]).with_context(|| {
                    format!("{DEFAULT_CHROMIUM} is missing and could not be installed")
                })?;
                ensure!(
                    path.is_file(),
                    "apt-get installed chromium but {DEFAULT_CHROMIUM} is still missing"
                );
            }
            path
        }
    };
    let output = process::run(Command::new(&chromium).arg("--version"), None, QUICK)?;
    ensure!(
        output.status.success(),
        "`{} --version` failed: {}",
        chromium.display(),
        output.describe()
    );
    eprintln!("xtask: using {}", one_line(&output.stdout_text()));
    Ok(chromium)
}

/// Node's `ws` library against ws-server with permessage-deflate: `ws`
/// must inflate messages ws-server compressed on their own (ending with a
/// BFINAL block, RFC 7692 §7.2.3.3), and ws-server what `ws` compressed.
fn node_ws_checks(report: &mut Report, workspace: &Workspace, dir: &Path) {
    let prefix = dir.join("node");
    let installed = report.check(
        &format!("node ws {NODE_WS_VERSION} in {}", shown(workspace, &prefix)),
        || ensure_npm_package(&prefix, "ws", NODE_WS_VERSION),
    );
    if installed.is_none() {
        return;
    }
    let script = workspace.path("xtask/interop/ws_peer.mjs");
    peer_client_checks(
        report,
        workspace,
        "node ws client -> ws-server",
        NODE_WS_TIMEOUT,
        |url| {
            let mut command = Command::new("node");
            command.arg(&script).arg(url).arg(&prefix);
            command
        },
    );
}

/// Starts ws-server, runs the peer's client script (`command` for the
/// server's URL) against it, relays the script's check lines under `group`,
/// and checks that the server then stops cleanly.
fn peer_client_checks(
    report: &mut Report,
    workspace: &Workspace,
    group: &str,
    timeout: Duration,
    command: impl FnOnce(&str) -> Command,
) {
    match e2e::start_ws_server(workspace) {
        Ok(server) => {
            let url = format!("{}/", server.url());
            let output = process::run(&mut command(&url), None, timeout);
            relay_script(report, group, output, Some(&server));
            report.check(&format!("{group}: ws-server exits 0 on SIGTERM"), || {
                e2e::stop_ws_server(server)
            });
        }
        Err(error) => report.fail(group, &format!("{error:#}")),
    }
}

/// playwright-core installed under `prefix`, and Node.js to run it.
pub(crate) fn ensure_playwright(prefix: &Path) -> Result<()> {
    ensure_npm_package(prefix, "playwright-core", PLAYWRIGHT_VERSION)
}

/// The npm package `name` at exactly `version` installed under `prefix`
/// (Debian's Node.js and npm first, if missing).
fn ensure_npm_package(prefix: &Path, name: &str, version: &str) -> Result<()> {
    if !runs(Command::new("node").arg("--version")) || !runs(Command::new("npm").arg("--version")) {
        eprintln!("xtask: node or npm is missing; installing Debian's nodejs and npm");
        apt_install(&["nodejs", "npm"]).context("Node.js and npm are not installed")?;
    }
    let manifest = prefix.join("node_modules").join(name).join("package.json");
    if installed_version(&manifest).as_deref() == Some(version) {
        return Ok(());
    }
    std::fs::create_dir_all(prefix)
        .with_context(|| format!("could not create {}", prefix.display()))?;
    eprintln!(
        "xtask: installing {name} {version} into {}",
        prefix.display()
    );
    let mut command = Command::new("npm");
    command
        .arg("install")
        .arg("--prefix")
        .arg(prefix)
        .args([
            "--no-audit",
            "--no-fund",
            "--save-exact",
            &format!("{name}@{version}"),
        ])
        // playwright-core downloads nothing, but make sure of it.
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
    let output = process::run(&mut command, None, NPM_TIMEOUT)?;
    ensure!(
        output.status.success(),
        "npm install {name}@{version} failed: {}",
        output.describe()
    );
    let found = installed_version(&manifest);
    ensure!(
        found.as_deref() == Some(version),
        "npm install succeeded but {} reads version {found:?}",
        manifest.display()
    );
    Ok(())
}

/// The `"version"` of an npm package manifest.
fn installed_version(manifest: &Path) -> Option<String> {
    let text = std::fs::read_to_string(manifest).ok()?;
    let after = text.split_once("\"version\"")?.1;
    let value = after
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    Some(value.split_once('"')?.0.to_owned())
}

/// Whether a quick command runs and succeeds.
fn runs(command: &mut Command) -> bool {
    process::run(command, None, QUICK).is_ok_and(|output| output.status.success())
}

/// Installs Debian packages: as root directly, otherwise through `sudo -n`.
pub(crate) fn apt_install(packages: &[&str]) -> Result<()> {
    ensure!(
        runs(Command::new("apt-get").arg("--version")),
        "apt-get is not available to install {}",
        packages.join(" ")
    );
    let root = process::run(Command::new("id").arg("-u"), None, QUICK)
        .is_ok_and(|output| output.stdout_text().trim() == "0");
    let apt = |args: &[&str]| {
        let mut command = if root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.args(["-n", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
            sudo
        };
        command.env("DEBIAN_FRONTEND", "noninteractive").args(args);
        command
    };
    if !root && !runs(Command::new("sudo").args(["-n", "true"])) {
        bail!(
            "installing {} needs root: run as root, or with password-less sudo",
            packages.join(" ")
        );
    }
    eprintln!("xtask: apt-get update");
    let output = process::run(&mut apt(&["update", "-q"]), None, APT_UPDATE_TIMEOUT)?;
    ensure!(
        output.status.success(),
        "apt-get update failed: {}",
        output.describe()
    );
    eprintln!(
        "xtask: apt-get install {} (this takes a few minutes)",
        packages.join(" ")
    );
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend_from_slice(packages);
    let output = process::run(&mut apt(&args), None, APT_INSTALL_TIMEOUT)?;
    ensure!(
        output.status.success(),
        "apt-get install {} failed: {}",
        packages.join(" "),
        output.describe()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_version_reads_an_npm_manifest() {
        let dir = std::env::temp_dir().join(format!("xtask-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let manifest = dir.join("package.json");
        std::fs::write(
            &manifest,
            "{\n  \"name\": \"playwright-core\",\n  \"version\": \"1.65.1\"\n}",
        )
        .unwrap();
        assert_eq!(installed_version(&manifest).as_deref(), Some("1.65.1"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(installed_version(&manifest), None);
    }
}
