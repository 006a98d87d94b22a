//! `cargo xtask interop`, HTTP/2 (RFC 8441): WebSockets on extended CONNECT
//! streams between the binaries and independent implementations: Chromium
//! loading ws-server's page over `https://` (ALPN h2) and opening `wss://`
//! to the same origin; Node's `http2` module as a client (10 WebSocket
//! streams on one connection) and as a server that ws-client talks to; and
//! ws-client `--http2` against ws-server, with prior knowledge on `ws://`
//! and with ALPN on `wss://`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};

use crate::e2e::{self, Budget, Client, expect_stdout};
use crate::interop::relay_script;
use crate::interop_tls::{Pki, run_browser_trusting};
use crate::process::{self, Output, Service, one_line};
use crate::report::Report;
use crate::workspace::Workspace;

/// All ws-client runs of this part together.
const CLIENT_BUDGET: Duration = Duration::from_secs(120);
/// The browser script bounds itself at 60 s; this catches a stuck Node.
/// The Node client bounds itself at 30 s.
const NODE_TIMEOUT: Duration = Duration::from_secs(45);
const QUICK: Duration = Duration::from_secs(15);

/// Runs the HTTP/2 checks into `report`; `dir` is the interop directory
/// (`target/interop`), where the npm prefix lives and where this part keeps
/// its certificates.
pub fn run(report: &mut Report, workspace: &Workspace, dir: &Path) {
    let budget = Budget::new(CLIENT_BUDGET);
    let client = Client::new(workspace, &budget);
    let peer = workspace.path("xtask/interop/h2_peer.mjs");

    let Some(pki) = report.check("h2: test CA and a certificate for localhost", || {
        Pki::create(&dir.join("h2-tls"))
    }) else {
        return;
    };
    let log = pki.dir.join("ws-server.log");
    match start_logged_wss_server(workspace, &pki, &log) {
        Ok(server) => {
            let port = server
                .url()
                .rsplit(':')
                .next()
                .unwrap_or_default()
                .to_owned();
            browser_check(report, workspace, dir, &pki, &log, &port);
            let group = "node http2 client -> wss ws-server (ALPN h2)";
            let url = format!("https://localhost:{port}/");
            let output = process::run(
                Command::new("node")
                    .arg(&peer)
                    .arg("client")
                    .arg(&url)
                    .arg(&pki.ca),
                None,
                NODE_TIMEOUT,
            );
            relay_script(report, group, output, Some(&server));
            let url = format!("wss://localhost:{port}/");
            ws_client_checks(
                report,
                &client,
                "ws-client --http2 -> wss ws-server (ALPN h2)",
                &url,
                &["--cafile", &pki.ca_arg()],
                &pki.dir,
            );
            report.check("h2: wss ws-server exits 0 on SIGTERM", || {
                e2e::stop_ws_server(server)
            });
        }
        Err(error) => report.fail("h2: wss ws-server starts", &format!("{error:#}")),
    }

    match e2e::start_ws_server(workspace) {
        Ok(server) => {
            let group = "node http2 client -> ws-server (prior knowledge)";
            let url = format!("{}/", server.http_url());
            let output = process::run(
                Command::new("node").arg(&peer).arg("client").arg(&url),
                None,
                NODE_TIMEOUT,
            );
            relay_script(report, group, output, Some(&server));
            let url = format!("{}/", server.url());
            ws_client_checks(
                report,
                &client,
                "ws-client --http2 -> ws-server (prior knowledge)",
                &url,
                &[],
                &pki.dir,
            );
            report.check("h2: ws-server exits 0 on SIGTERM", || {
                e2e::stop_ws_server(server)
            });
        }
        Err(error) => report.fail("h2: ws-server starts", &format!("{error:#}")),
    }

    let group = "ws-client --http2 -> node http2 server (prior knowledge)";
    let mut command = Command::new("node");
    command.arg(&peer).arg("serve");
    match Service::start("node http2 server", &mut command, QUICK) {
        Ok(server) => {
            let url = format!("{}/", server.url());
            report.check(
                &format!("{group}: text echoed, exit 0, -v shows HTTP/2"),
                || {
                    let output =
                        client.run(&["--http2", "-v", &url, "héllo Node", "second ✓"], None)?;
                    expect_stdout(&output, "héllo Node\nsecond ✓\n".as_bytes())?;
                    expect_http2_shown(&output)
                },
            );
            report.check(
                &format!("{group}: the server saw the stream's close 1000"),
                || {
                    let log = server.stderr_tail();
                    ensure!(
                        log.contains("WebSocket opened") && log.contains("close 1000"),
                        "the node server's log: {log}"
                    );
                    Ok(())
                },
            );
            report.check(&format!("{group}: node server ends on SIGTERM"), || {
                let exited = server.terminate(QUICK)?;
                ensure!(
                    exited.status.success(),
                    "node exited with {}",
                    exited.status
                );
                Ok(())
            });
        }
        Err(error) => report.fail(group, &format!("{error:#}")),
    }
}

/// Chromium loads the page over `https://` with HTTP/2 and opens `wss://`
/// on the same origin; the page's checks are relayed, and ws-server's own
/// log must show the WebSockets opened over HTTP/2.
fn browser_check(
    report: &mut Report,
    workspace: &Workspace,
    dir: &Path,
    pki: &Pki,
    log: &Path,
    port: &str,
) {
    let group = "chromium -> wss ws-server over HTTP/2";
    if !run_browser_trusting(
        report,
        workspace,
        dir,
        pki,
        group,
        "browser_h2_check.mjs",
        port,
    ) {
        return;
    }
    report.check(
        &format!(
            "{group}: ws-server logged the WebSockets with http=2, on the page's connection"
        ),
        || {
            let log = std::fs::read_to_string(log)
                .with_context(|| format!("could not read {}", log.display()))?;
            ensure!(
                !log.lines()
                    .any(|line| line.contains("connection opened") && line.contains(" http=1.1 ")),
                "a WebSocket was opened over HTTP/1.1: {}",
                one_line(&log)
            );
            let page_peer = log
                .lines()
                .filter(|line| line.contains("http request") && line.contains(" http=2 "))
                .find(|line| line.contains(" path=\"/\" "))
                .and_then(|line| field(line, "peer"))
                .with_context(|| {
                    format!("no `http request` for / over http=2: {}", one_line(&log))
                })?;
            let sockets: Vec<_> = log
                .lines()
                .filter(|line| line.contains("connection opened") && line.contains(" http=2 "))
                .collect();
            ensure!(
                sockets.len() >= 2,
                "{} `connection opened` line(s) with http=2 (the page's socket and the check's expected): {}",
                sockets.len(),
                one_line(&log)
            );
            ensure!(
                sockets
                    .iter()
                    .all(|line| field(line, "peer") == Some(page_peer)),
                "a WebSocket stream is not on the page's connection from {page_peer}: {}",
                one_line(&sockets.join("\n"))
            );
            Ok(())
        },
    );
}

/// The value of `name=VALUE` in a log line of `tracing`'s text format.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let prefix = format!("{name}=");
    line.split(' ')
        .find_map(|word| word.strip_prefix(prefix.as_str()))
}

/// ws-server with `--tls-cert/--tls-key` on a free loopback port, its
/// stderr (the log) written to `log` in full, through `sh` which `exec`s it
/// (so signals reach ws-server itself).
fn start_logged_wss_server(workspace: &Workspace, pki: &Pki, log: &Path) -> Result<Service> {
    let mut command = Command::new("sh");
    command
        .args(["-c", "log=$1; shift; exec \"$@\" 2>\"$log\"", "sh"])
        .arg(log)
        .arg(workspace.binary("ws-server"))
        .args(["--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&pki.cert)
        .arg("--tls-key")
        .arg(&pki.key);
    Service::start_until(
        "ws-server (TLS, h2)",
        &mut command,
        QUICK,
        "`listening on wss://HOST:PORT` line",
        |line| {
            let url = line.trim_end().strip_prefix("listening on ")?;
            let port = url.strip_prefix("wss://")?.rsplit_once(':')?.1;
            port.parse::<u16>().ok().filter(|&p| p != 0)?;
            Some(url.to_owned())
        },
    )
}

/// ws-client `--http2` against `url` (with `extra` arguments): text and
/// 1 MiB of binary (written under `scratch`) echoed, and `-v` shows the
/// HTTP/2 response.
fn ws_client_checks(
    report: &mut Report,
    client: &Client<'_>,
    group: &str,
    url: &str,
    extra: &[&str],
    scratch: &Path,
) {
    let args = |rest: &[&str]| -> Vec<String> {
        ["--http2"]
            .iter()
            .chain(extra)
            .chain(rest)
            .map(|s| (*s).to_owned())
            .collect()
    };
    let run = |rest: &[&str]| -> Result<Output> {
        let all = args(rest);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        client.run(&all, None)
    };
    report.check(&format!("{group}: text echoed, -v shows HTTP/2"), || {
        let output = run(&["-v", url, "héllo over h2", "second ✓"])?;
        expect_stdout(&output, "héllo over h2\nsecond ✓\n".as_bytes())?;
        expect_http2_shown(&output)
    });
    report.check(
        &format!("{group}: 1 MiB binary echoed byte for byte"),
        || {
            let data = e2e::pseudo_random_bytes(1 << 20);
            let file = scratch.join("one-mib.bin");
            std::fs::write(&file, &data)
                .with_context(|| format!("could not write {}", file.display()))?;
            let path = file.display().to_string();
            let output = run(&[url, "--file", &path, "--output", "raw"])?;
            expect_stdout(&output, &data)
        },
    );
}

/// `-v` printed the HTTP/2 response line.
fn expect_http2_shown(output: &Output) -> Result<()> {
    let stderr = output.stderr_text();
    ensure!(
        stderr.lines().any(|line| line.starts_with("< HTTP/2 200")),
        "-v shows no `< HTTP/2 200` line: {}",
        one_line(&stderr)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_reads_a_value_from_a_tracing_line() {
        let line = "2026-12-04T13:59:32Z  INFO ws_server::http2: connection opened \
                    peer=127.0.0.1:57774 http=2 stream=3 path=\"/\"";
        assert_eq!(field(line, "peer"), Some("127.0.0.1:57774"));
        assert_eq!(field(line, "http"), Some("2"));
        assert_eq!(field(line, "stream"), Some("3"));
        assert_eq!(field(line, "closed_by"), None);
    }
}
