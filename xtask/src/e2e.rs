//! `cargo xtask e2e`: the real `ws-server` and `ws-client` processes over
//! loopback: echoes checked byte for byte with their exit codes, the failure
//! paths, and a graceful shutdown on SIGTERM.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::process::{self, Output, Service, one_line};
use crate::report::Report;
use crate::workspace::Workspace;

/// The most one check may take; generous for a debug build on a busy machine.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// The whole run, builds aside: a hang anywhere fails instead of blocking CI.
const BUDGET: Duration = Duration::from_secs(120);

/// How long the server gets to print its ready line, and to exit on SIGTERM.
pub const SERVER_TIMEOUT: Duration = Duration::from_secs(15);

/// Exit codes of the `ws-client` contract.
pub mod exit {
    /// A usage error: bad arguments, a malformed URL.
    pub const USAGE: i32 = 2;
    /// Refused, unreachable, DNS failure.
    pub const CONNECTION_FAILED: i32 = 3;
    /// Not a valid 101 answer.
    pub const HANDSHAKE_FAILED: i32 = 4;
    /// The peer closed with a code other than 1000/1001 (shown on stderr).
    pub const PEER_CLOSED: i32 = 7;
}

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
    let budget = Budget::new(BUDGET);
    let scratch = workspace.scratch("e2e")?;
    let client = Client::new(workspace, &budget);

    let server = report.check("ws-server prints its ready line", || {
        start_ws_server(workspace)
    });
    match &server {
        Some(server) => echo_checks(&mut report, &client, server, &scratch),
        None => {
            for name in ECHO_CHECKS {
                report.fail(name, "ws-server did not start");
            }
        }
    }
    failure_checks(&mut report, &client);
    crate::examples::checks(&mut report, workspace);
    let [lingering_name, stop_name, going_away_name] = SHUTDOWN_CHECKS;
    let Some(server) = server else {
        for name in SHUTDOWN_CHECKS {
            report.fail(name, "ws-server did not start");
        }
        return report.finish();
    };
    let lingering = report.check(lingering_name, || {
        connect_lingering_client(&client, server.url())
    });
    report.check(stop_name, || stop_ws_server(server));
    match lingering {
        Some(lingering) => {
            report.check(going_away_name, || expect_going_away(lingering));
        }
        None => report.fail(going_away_name, "no client was connected"),
    }
    report.finish()
}

/// Starts `ws-server` (the dev build) on a free loopback port.
pub fn start_ws_server(workspace: &Workspace) -> Result<Service> {
    start_ws_server_binary(&workspace.binary("ws-server"), &[])
}

/// Starts the `ws-server` at `binary` on a free loopback port, with `args`
/// added to its command line.
pub fn start_ws_server_binary(binary: &Path, args: &[&str]) -> Result<Service> {
    let mut command = Command::new(binary);
    command.args(["--listen", "127.0.0.1:0"]).args(args);
    Service::start("ws-server", &mut command, SERVER_TIMEOUT)
}

/// Ends `ws-server` with SIGTERM, expecting exit 0 after its summary line.
pub fn stop_ws_server(server: Service) -> Result<()> {
    let exited = server.terminate(SERVER_TIMEOUT)?;
    ensure!(
        exited.status.success(),
        "expected exit code 0 on SIGTERM, got {}{}",
        exited.status,
        stderr_note(&exited.stderr)
    );
    ensure!(
        exited.lines.iter().any(|line| !line.trim().is_empty()),
        "exited 0 but printed no summary line on stdout after SIGTERM"
    );
    Ok(())
}

fn stderr_note(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; stderr: {stderr}")
    }
}

/// Sent by the client that witnesses the shutdown.
const SHUTDOWN_PROBE: &str = "still here";

/// A client that stays connected (`--no-close`) after its message came back,
/// so that the server's shutdown reaches it.
fn connect_lingering_client(client: &Client<'_>, url: &str) -> Result<Service> {
    let mut command = Command::new(&client.binary);
    command.args([url, SHUTDOWN_PROBE, "--no-close", "--show-control"]);
    Service::start_until(
        "ws-client",
        &mut command,
        client.budget.next()?,
        &format!("echo of {SHUTDOWN_PROBE:?}"),
        |line| (line == SHUTDOWN_PROBE).then(String::new),
    )
}

/// After SIGTERM, the server's close 1001 ends the lingering client with exit 0
/// (1001 is not an error), and the client shows the code.
fn expect_going_away(lingering: Service) -> Result<()> {
    let exited = lingering.exit_within(SERVER_TIMEOUT, "after the server's SIGTERM")?;
    ensure!(
        exited.status.code() == Some(0),
        "expected exit code 0, got {}{}",
        exited.status,
        stderr_note(&exited.stderr)
    );
    ensure!(
        exited.stderr.contains("1001"),
        "the client's stderr does not show close code 1001: {:?}",
        exited.stderr
    );
    Ok(())
}

const SHUTDOWN_CHECKS: [&str; 3] = [
    "a client stays connected with --no-close",
    "ws-server exits 0 on SIGTERM after a summary line",
    "the connected client gets close 1001 and exits 0",
];

const ECHO_CHECKS: [&str; 6] = [
    "GET /healthz answers 200 ok",
    "ASCII text echoed",
    "multi-byte UTF-8 text echoed",
    "several messages echoed in order",
    "1000 lines through stdin echoed in order",
    "1 MiB binary file echoed byte for byte",
];

fn echo_checks(report: &mut Report, client: &Client<'_>, server: &Service, scratch: &Path) {
    let url = server.url();
    let [healthz, ascii, utf8, several, stdin, binary] = ECHO_CHECKS;
    report.check(healthz, || {
        let (status, body) = http_get(server.authority(), "/healthz", client.budget.next()?)?;
        ensure!(
            status.split_whitespace().nth(1) == Some("200"),
            "status line `{status}`"
        );
        ensure!(body.trim() == "ok", "body {body:?}, expected \"ok\"");
        Ok(())
    });
    report.check(ascii, || echo_text(client, url, &["Hello, WebSocket!"]));
    report.check(utf8, || {
        echo_text(client, url, &["héllo wörld — Grüße, 日本語, Ελληνικά 🎉🦀"])
    });
    report.check(several, || {
        echo_text(client, url, &["first", "second message", "third: ✓"])
    });
    report.check(stdin, || echo_stdin_lines(client, url));
    report.check(binary, || echo_binary_file(client, url, scratch));
}

/// Sends `messages` as arguments and expects each back on its own line.
pub fn echo_text(client: &Client<'_>, url: &str, messages: &[&str]) -> Result<()> {
    let mut args = vec![url];
    args.extend_from_slice(messages);
    let output = client.run(&args, None)?;
    let expected: String = messages.iter().map(|m| format!("{m}\n")).collect();
    expect_stdout(&output, expected.as_bytes())
}

/// Sends 1000 lines through stdin and expects them back in order.
pub fn echo_stdin_lines(client: &Client<'_>, url: &str) -> Result<()> {
    let input = thousand_lines();
    let output = client.run(&[url], Some(input.clone().into_bytes()))?;
    expect_stdout(&output, input.as_bytes())
}

/// Sends a 1 MiB binary file and expects its bytes back exactly (raw output).
pub fn echo_binary_file(client: &Client<'_>, url: &str, scratch: &Path) -> Result<()> {
    let data = pseudo_random_bytes(1 << 20);
    let file = scratch.join("one-mib.bin");
    std::fs::write(&file, &data).with_context(|| format!("could not write {}", file.display()))?;
    let file_arg = file.to_string_lossy();
    let output = client.run(&[url, "--file", &file_arg, "--output", "raw"], None)?;
    expect_stdout(&output, &data)
}

fn failure_checks(report: &mut Report, client: &Client<'_>) {
    report.check("no server listening: exit 3 (connection failed)", || {
        let port = process::free_port()?;
        let url = format!("ws://127.0.0.1:{port}/");
        let output = client.run(&[&url, "hello"], None)?;
        expect_failure(&output, exit::CONNECTION_FAILED, &[])
    });
    report.check(
        "plain HTTP endpoint: exit 4 (handshake failed) showing the status",
        || {
            let endpoint = PlainHttp::start()?;
            let url = format!("ws://{}/chat", endpoint.addr);
            let output = client.run(&[&url, "hello"], None)?;
            expect_failure(
                &output,
                exit::HANDSHAKE_FAILED,
                &["200", PlainHttp::BODY_LINE],
            )
        },
    );
    report.check("malformed URL: exit 2 (usage error)", || {
        let output = client.run(&["not a url", "hello"], None)?;
        expect_failure(&output, exit::USAGE, &["not a url"])
    });
}

/// `ws-client` runs bounded by the check timeout and the whole run's budget.
pub struct Client<'a> {
    binary: PathBuf,
    budget: &'a Budget,
}

impl<'a> Client<'a> {
    /// The client of `workspace`'s build.
    pub fn new(workspace: &Workspace, budget: &'a Budget) -> Self {
        Self {
            binary: workspace.binary("ws-client"),
            budget,
        }
    }

    /// Runs `ws-client ARGS`, with `stdin` as its input or none.
    pub fn run(&self, args: &[&str], stdin: Option<Vec<u8>>) -> Result<Output> {
        let timeout = self.budget.next()?;
        process::run(Command::new(&self.binary).args(args), stdin, timeout)
    }
}

/// The time left for a run of checks.
pub struct Budget {
    end: Instant,
    total: Duration,
}

impl Budget {
    /// A budget of `total` from now.
    pub fn new(total: Duration) -> Self {
        Self {
            end: Instant::now() + total,
            total,
        }
    }

    /// The time the next check may take: [`CHECK_TIMEOUT`] or what is left.
    pub fn next(&self) -> Result<Duration> {
        let left = self.end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!(
                "time budget of {} s for the run exhausted",
                self.total.as_secs()
            );
        }
        Ok(left.min(CHECK_TIMEOUT))
    }
}

/// Exit code 0, and stdout exactly `expected`.
pub fn expect_stdout(output: &Output, expected: &[u8]) -> Result<()> {
    ensure!(
        output.code() == Some(0),
        "expected exit code 0, got {}",
        output.describe()
    );
    if output.stdout != expected {
        let at = output
            .stdout
            .iter()
            .zip(expected)
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| output.stdout.len().min(expected.len()));
        bail!(
            "stdout differs from what was sent: {} bytes received, {} expected, first \
             difference at byte {at}; received starts {:?}",
            output.stdout.len(),
            expected.len(),
            one_line(&String::from_utf8_lossy(
                output
                    .stdout
                    .get(..output.stdout.len().min(80))
                    .unwrap_or_default()
            ))
        );
    }
    Ok(())
}

/// The documented exit code, and one clear message on stderr containing each
/// of `shown`: no panic, no backtrace, no `Debug` dump.
pub fn expect_failure(output: &Output, code: i32, shown: &[&str]) -> Result<()> {
    ensure!(
        output.code() == Some(code),
        "expected exit code {code}, got {}",
        output.describe()
    );
    let stderr = output.stderr_text();
    ensure!(
        !stderr.trim().is_empty(),
        "exit code {code} but nothing on stderr"
    );
    for marker in [
        "panicked at",
        "stack backtrace",
        "RUST_BACKTRACE",
        "Os {",
        "kind: ",
    ] {
        ensure!(
            !stderr.contains(marker),
            "stderr is not a clear message (contains `{marker}`): {}",
            one_line(&stderr)
        );
    }
    for text in shown {
        ensure!(
            stderr.contains(text),
            "stderr does not show `{text}`: {}",
            one_line(&stderr)
        );
    }
    Ok(())
}

/// 1000 distinct lines, some with multi-byte characters.
fn thousand_lines() -> String {
    (1..=1000)
        .map(|i| {
            let extra = if i % 7 == 0 {
                " — ünïcödé ✓ 🦀"
            } else {
                ""
            };
            format!("line {i:04} of 1000{extra}\n")
        })
        .collect()
}

/// Deterministic bytes covering every value, invalid UTF-8 included
/// (xorshift64*, so a failure reproduces).
pub fn pseudo_random_bytes(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        bytes.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// A `GET` over a fresh connection: the status line and the body.
pub fn http_get(authority: &str, path: &str, timeout: Duration) -> Result<(String, String)> {
    let addr = resolve(authority)?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("could not connect to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(end) = find(&received, b"\r\n\r\n") {
            let head =
                String::from_utf8_lossy(received.get(..end).unwrap_or_default()).into_owned();
            let length = content_length(&head);
            let body_start = end + 4;
            let complete = match length {
                Some(length) => received.len() >= body_start + length,
                None => false,
            };
            if complete {
                let body = received.get(body_start..).unwrap_or_default();
                let body = body.get(..length.unwrap_or(body.len())).unwrap_or(body);
                let status = head.lines().next().unwrap_or_default().to_owned();
                return Ok((status, String::from_utf8_lossy(body).into_owned()));
            }
        }
        ensure!(
            Instant::now() < deadline,
            "no complete answer within {} s",
            timeout.as_secs()
        );
        let n = stream.read(&mut chunk).context("reading the answer")?;
        if n == 0 {
            // Closed without a Content-Length: the body runs to the end.
            let end = find(&received, b"\r\n\r\n")
                .context("connection closed before a full HTTP head")?;
            let head = String::from_utf8_lossy(received.get(..end).unwrap_or_default());
            let status = head.lines().next().unwrap_or_default().to_owned();
            let body = received.get(end + 4..).unwrap_or_default();
            return Ok((status, String::from_utf8_lossy(body).into_owned()));
        }
        received.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

fn resolve(authority: &str) -> Result<SocketAddr> {
    authority
        .to_socket_addrs()
        .with_context(|| format!("bad address `{authority}`"))?
        .next()
        .with_context(|| format!("`{authority}` resolves to nothing"))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn content_length(head: &str) -> Option<usize> {
    head.lines().skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })
}

/// A loopback HTTP server that answers every request `200 OK` with a small
/// body, as a web server that is not a WebSocket endpoint would.
pub struct PlainHttp {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PlainHttp {
    /// The first line of the body the client should show.
    pub const BODY_LINE: &'static str = "plain HTTP here, not a WebSocket endpoint";

    /// Listens on a free loopback port until dropped.
    pub fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("could not bind 127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = thread::spawn({
            let stop = Arc::clone(&stop);
            move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let _ = Self::answer(stream);
                        }
                        Err(_) => thread::sleep(Duration::from_millis(10)),
                    }
                }
            }
        });
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    fn answer(mut stream: TcpStream) -> std::io::Result<()> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut head = Vec::new();
        let mut chunk = [0u8; 1024];
        while find(&head, b"\r\n\r\n").is_none() && head.len() < 64 * 1024 {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
        let body = format!("{}\nsecond line\n", Self::BODY_LINE);
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )?;
        stream.flush()
    }
}

impl Drop for PlainHttp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_random_bytes_are_reproducible_and_not_utf8() {
        let a = pseudo_random_bytes(1 << 20);
        assert_eq!(a.len(), 1 << 20);
        assert_eq!(a, pseudo_random_bytes(1 << 20));
        assert!(std::str::from_utf8(&a).is_err());
        let mut seen = [false; 256];
        for &byte in &a {
            seen[usize::from(byte)] = true;
        }
        assert!(seen.iter().all(|&s| s), "every byte value appears");
    }

    #[test]
    fn thousand_lines_are_distinct() {
        let text = thousand_lines();
        let lines: std::collections::HashSet<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1000);
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn plain_http_answers_200_with_its_body() {
        let endpoint = PlainHttp::start().unwrap();
        let (status, body) =
            http_get(&endpoint.addr.to_string(), "/chat", Duration::from_secs(10)).unwrap();
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(body.starts_with(PlainHttp::BODY_LINE), "{body}");
    }

    #[test]
    fn content_length_is_read_case_insensitively() {
        assert_eq!(
            content_length("HTTP/1.1 200 OK\r\ncontent-LENGTH: 12"),
            Some(12)
        );
        assert_eq!(content_length("HTTP/1.1 200 OK\r\nServer: x"), None);
    }

    #[test]
    fn expect_failure_rejects_a_panic_message() {
        let output = Output {
            status: exit_status(3),
            stdout: Vec::new(),
            stderr: b"thread 'main' panicked at src/main.rs:1:1".to_vec(),
        };
        assert!(expect_failure(&output, 3, &[]).is_err());
        let clean = Output {
            status: exit_status(3),
            stdout: Vec::new(),
            stderr: b"ws-client: could not connect to 127.0.0.1:1: connection refused\n".to_vec(),
        };
        assert!(expect_failure(&clean, 3, &["refused"]).is_ok());
        assert!(expect_failure(&clean, 4, &[]).is_err());
    }

    fn exit_status(code: i32) -> std::process::ExitStatus {
        use std::os::unix::process::ExitStatusExt;
        std::process::ExitStatus::from_raw(code << 8)
    }
}
