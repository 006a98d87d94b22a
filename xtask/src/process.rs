//! Child processes that cannot outlive their checks: every wait has a
//! deadline, and a process still running when its guard drops is ended
//! (SIGTERM first so it can clean up after itself, then SIGKILL).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

/// How often a running child is polled: short next to any check's duration.
const POLL: Duration = Duration::from_millis(10);

/// How long a child gets to exit on SIGTERM before it is killed, and how long
/// its output pipes get to drain once it has exited.
const GRACE: Duration = Duration::from_secs(3);

/// How much of a child's stderr is kept for failure messages.
const STDERR_TAIL: usize = 16 * 1024;

/// What a finished command left behind.
#[derive(Debug)]
pub struct Output {
    /// How it ended.
    pub status: ExitStatus,
    /// Everything it wrote on stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote on stderr.
    pub stderr: Vec<u8>,
}

impl Output {
    /// The exit code, `None` when a signal ended it.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Stdout as text, invalid UTF-8 replaced.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stderr as text, invalid UTF-8 replaced.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// The status and what stderr said, on one line, for a failure reason.
    pub fn describe(&self) -> String {
        let stderr = one_line(&self.stderr_text());
        if stderr.is_empty() {
            format!("{}, nothing on stderr", self.status)
        } else {
            format!("{}, stderr: {stderr}", self.status)
        }
    }
}

/// Text folded onto one line and shortened, so a reason never breaks the
/// one-line-per-check output.
pub fn one_line(text: &str) -> String {
    const MAX: usize = 400;
    let folded = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" | ");
    let count = folded.chars().count();
    if count > MAX {
        // Both ends: a tool's first line says what it is, its last what failed.
        let head: String = folded.chars().take(MAX / 2).collect();
        let tail: String = folded.chars().skip(count - MAX / 2).collect();
        format!("{head} … {tail}")
    } else {
        folded
    }
}

/// Runs `command` to completion with `stdin` as its input (or none), capturing
/// its output; a command still running after `timeout` is ended and reported
/// as an error.
pub fn run(command: &mut Command, stdin: Option<Vec<u8>>, timeout: Duration) -> Result<Output> {
    let name = program_name(command);
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut process = Guarded::spawn(&name, command)?;
    if let (Some(mut pipe), Some(data)) = (process.child.stdin.take(), stdin) {
        // A writer of its own: a child that answers while still reading would
        // otherwise deadlock against us on a full pipe. It is not joined: if
        // the child never reads, the write ends with EPIPE once it is killed.
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    let stdout = collect(process.child.stdout.take());
    let stderr = collect(process.child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = process.child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            process.end();
            let stderr = one_line(&String::from_utf8_lossy(&drained(&stderr)));
            bail!(
                "`{name}` did not finish within {} s and was killed{}",
                timeout.as_secs_f32(),
                if stderr.is_empty() {
                    String::new()
                } else {
                    format!("; stderr: {stderr}")
                }
            );
        }
        thread::sleep(POLL);
    };
    Ok(Output {
        status,
        stdout: drained(&stdout),
        stderr: drained(&stderr),
    })
}

/// Runs `command` with the stdio it was given, waiting at most `timeout`.
pub fn status_within(command: &mut Command, timeout: Duration) -> Result<ExitStatus> {
    let name = program_name(command);
    let mut process = Guarded::spawn(&name, command)?;
    match process.wait_timeout(timeout)? {
        Some(status) => Ok(status),
        None => {
            process.end();
            bail!(
                "`{name}` did not finish within {} s and was killed",
                timeout.as_secs()
            )
        }
    }
}

fn program_name(command: &Command) -> String {
    let program = command.get_program().to_string_lossy();
    std::path::Path::new(program.as_ref())
        .file_name()
        .map_or_else(
            || program.to_string(),
            |name| name.to_string_lossy().into_owned(),
        )
}

/// Reads a pipe to its end on a thread of its own.
fn collect<R: Read + Send + 'static>(pipe: Option<R>) -> Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        thread::spawn(move || {
            let mut data = Vec::new();
            let _ = pipe.read_to_end(&mut data);
            let _ = sender.send(data);
        });
    }
    receiver
}

/// What a collector read, waiting briefly: a grandchild that inherited the
/// pipe could otherwise hold it open forever.
fn drained(receiver: &Receiver<Vec<u8>>) -> Vec<u8> {
    receiver.recv_timeout(GRACE).unwrap_or_default()
}

/// A child process that is ended when the guard drops.
#[derive(Debug)]
pub struct Guarded {
    child: Child,
    name: String,
}

impl Guarded {
    /// Starts `command`.
    pub fn spawn(name: &str, command: &mut Command) -> Result<Self> {
        let child = command
            .spawn()
            .with_context(|| format!("could not start `{name}`"))?;
        Ok(Self {
            child,
            name: name.to_owned(),
        })
    }

    /// Sends SIGTERM, through the `kill` command to stay free of `unsafe`.
    pub fn terminate(&self) -> Result<()> {
        self.signal("TERM")
    }

    /// Sends a signal by name (`TERM`, `INT`) with the `kill` command.
    pub fn signal(&self, name: &str) -> Result<()> {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("could not run `kill`")?;
        ensure!(
            status.success(),
            "`kill -{name}` on `{}` failed ({status})",
            self.name
        );
        Ok(())
    }

    /// Waits for the child to exit, `None` if it is still running at the end.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .with_context(|| format!("could not wait for `{}`", self.name))?
            {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            thread::sleep(POLL);
        }
    }

    /// Ends the child if it still runs: SIGTERM, then SIGKILL after a grace
    /// period (a Node script needs the SIGTERM to close its browser).
    fn end(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        if self.terminate().is_ok() && matches!(self.wait_timeout(GRACE), Ok(Some(_))) {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.end();
    }
}

/// A long-running process: a server that announces its address with a line
/// `listening on ws://HOST:PORT` on stdout, or a client that stays connected.
#[derive(Debug)]
pub struct Service {
    process: Guarded,
    lines: Receiver<String>,
    stderr: StderrTail,
    // Held open so a peer that watches its stdin (the Python one) ends when
    // this task dies without a chance to kill it.
    _stdin: Option<ChildStdin>,
    url: String,
}

impl Service {
    /// Starts `command` and waits up to `timeout` for its ready line.
    pub fn start(name: &str, command: &mut Command, timeout: Duration) -> Result<Self> {
        Self::start_until(
            name,
            command,
            timeout,
            "`listening on ws://HOST:PORT` line",
            parse_ready_line,
        )
    }

    /// Starts `command` and waits up to `timeout` for a stdout line that
    /// `ready` accepts (`wanted` describes it); what `ready` returns is kept
    /// as [`url`](Self::url).
    pub fn start_until(
        name: &str,
        command: &mut Command,
        timeout: Duration,
        wanted: &str,
        ready: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut process = Guarded::spawn(name, command)?;
        let stdin = process.child.stdin.take();
        let stdout = process
            .child
            .stdout
            .take()
            .context("stdout was not piped")?;
        let stderr = StderrTail::start(process.child.stderr.take());
        let (sender, lines) = mpsc::channel();
        // Drains stdout for the whole life of the process, so that it never
        // blocks on a full pipe.
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + timeout;
        let mut before = Vec::new();
        loop {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some(url) = ready(&line) {
                        return Ok(Self {
                            process,
                            lines,
                            stderr,
                            _stdin: stdin,
                            url,
                        });
                    }
                    before.push(line);
                }
                Err(RecvTimeoutError::Timeout) => bail!(
                    "`{name}` printed no {wanted} within {} s{}",
                    timeout.as_secs(),
                    context_of(&before, &stderr.text())
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    let status = process.wait_timeout(GRACE)?;
                    bail!(
                        "`{name}` closed its stdout before printing its {wanted} ({}){}",
                        status.map_or_else(|| "still running".to_owned(), |s| s.to_string()),
                        context_of(&before, &stderr.text_at_exit())
                    )
                }
            }
        }
    }

    /// The `ws://HOST:PORT` address from the ready line.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `http://HOST:PORT` address of the same listener.
    pub fn http_url(&self) -> String {
        self.url.replacen("ws://", "http://", 1)
    }

    /// The `HOST:PORT` part of the address.
    pub fn authority(&self) -> &str {
        self.url.trim_start_matches("ws://").trim_end_matches('/')
    }

    /// The last lines of what it wrote on stderr so far, on one line.
    pub fn stderr_tail(&self) -> String {
        self.stderr.text()
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit; returns the exit
    /// status and the lines printed on stdout after the ready line.
    pub fn terminate(self, timeout: Duration) -> Result<Exited> {
        self.process.terminate()?;
        self.exit_within(timeout, "after SIGTERM")
    }

    /// Sends SIGINT (Ctrl-C) and waits up to `timeout` for the exit.
    pub fn interrupt(self, timeout: Duration) -> Result<Exited> {
        self.process.signal("INT")?;
        self.exit_within(timeout, "after Ctrl-C (SIGINT)")
    }

    /// Waits up to `timeout` for the process to exit by itself (`why` says
    /// after what, for the error).
    pub fn exit_within(mut self, timeout: Duration, why: &str) -> Result<Exited> {
        let Some(status) = self.process.wait_timeout(timeout)? else {
            bail!(
                "`{}` still runs {} s {why}{}",
                self.process.name,
                timeout.as_secs(),
                context_of(&[], &self.stderr.text())
            );
        };
        let mut lines = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(GRACE) {
            lines.push(line);
        }
        Ok(Exited {
            status,
            lines,
            stderr: self.stderr.text_at_exit(),
        })
    }
}

/// How a [`Service`] ended.
#[derive(Debug)]
pub struct Exited {
    /// Its exit status.
    pub status: ExitStatus,
    /// The lines it printed on stdout after its ready line.
    pub lines: Vec<String>,
    /// The end of its stderr, on one line.
    pub stderr: String,
}

fn context_of(stdout: &[String], stderr: &str) -> String {
    let mut context = String::new();
    if !stdout.is_empty() {
        context.push_str(&format!("; stdout: {}", one_line(&stdout.join("\n"))));
    }
    if !stderr.is_empty() {
        context.push_str(&format!("; stderr: {stderr}"));
    }
    context
}

/// The last [`STDERR_TAIL`] bytes of a pipe, read for as long as the process
/// lives.
#[derive(Debug)]
struct StderrTail {
    kept: Arc<Mutex<Vec<u8>>>,
    // Disconnected once the reader has seen the end of the pipe.
    done: Receiver<()>,
}

impl StderrTail {
    fn start<R: Read + Send + 'static>(pipe: Option<R>) -> Self {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let (finished, done) = mpsc::channel::<()>();
        if let Some(mut pipe) = pipe {
            let kept = Arc::clone(&kept);
            thread::spawn(move || {
                let _finished = finished;
                let mut chunk = [0u8; 4096];
                while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                    let Ok(mut kept) = kept.lock() else { break };
                    kept.extend_from_slice(chunk.get(..n).unwrap_or_default());
                    let excess = kept.len().saturating_sub(STDERR_TAIL);
                    kept.drain(..excess);
                }
            });
        }
        Self { kept, done }
    }

    /// What was read so far, on one line.
    fn text(&self) -> String {
        let bytes = self.kept.lock().map(|b| b.clone()).unwrap_or_default();
        one_line(&String::from_utf8_lossy(&bytes))
    }

    /// Once the process has exited: everything, after the reader caught up.
    fn text_at_exit(&self) -> String {
        let _ = self.done.recv_timeout(GRACE);
        self.text()
    }
}

/// A loopback port free at the time of asking: bound, then released.
pub fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("could not bind a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Starts `command` with its output in `log`, and waits up to `timeout`
/// until 127.0.0.1:`port` takes connections: for programs that announce
/// nothing on stdout (a proxy, a test suite's server).
pub fn start_listening(
    name: &str,
    command: &mut Command,
    port: u16,
    log: &Path,
    timeout: Duration,
) -> Result<Guarded> {
    let log_file = std::fs::File::create(log)
        .with_context(|| format!("could not create {}", log.display()))?;
    let log_err = log_file
        .try_clone()
        .context("could not share the log file")?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file))
        .stderr(Stdio::from(log_err));
    let mut process = Guarded::spawn(name, command)?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(process);
        }
        if let Some(status) = process.wait_timeout(Duration::ZERO)? {
            bail!(
                "`{name}` exited ({status}) before listening on {addr}; its log: {}",
                log_tail(log)
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "`{name}` did not listen on {addr} within {} s; its log: {}",
                timeout.as_secs(),
                log_tail(log)
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The last lines of a log file, on one line.
pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    one_line(&tail.join("\n"))
}

/// The `ws://HOST:PORT` of a line `listening on ws://HOST:PORT`.
pub fn parse_ready_line(line: &str) -> Option<String> {
    let url = line.trim_end().strip_prefix("listening on ")?;
    let authority = url.strip_prefix("ws://")?;
    let port = authority.rsplit_once(':')?.1.trim_end_matches('/');
    (!port.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0)).then(|| url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_line_yields_the_url_with_its_real_port() {
        assert_eq!(
            parse_ready_line("listening on ws://127.0.0.1:40123").as_deref(),
            Some("ws://127.0.0.1:40123")
        );
        assert_eq!(
            parse_ready_line("listening on ws://[::1]:8080\n").as_deref(),
            Some("ws://[::1]:8080")
        );
    }

    #[test]
    fn ready_line_rejects_other_lines_and_port_zero() {
        assert_eq!(parse_ready_line("starting"), None);
        assert_eq!(parse_ready_line("listening on http://127.0.0.1:80"), None);
        assert_eq!(parse_ready_line("listening on ws://127.0.0.1:0"), None);
        assert_eq!(parse_ready_line("listening on ws://127.0.0.1"), None);
    }

    #[test]
    fn one_line_folds_lines_and_bounds_length() {
        assert_eq!(one_line("a\n\n  b  \nc"), "a | b | c");
        let long = format!("first {} last", "x".repeat(1000));
        let short = one_line(&long);
        assert!(short.chars().count() <= 403, "{short}");
        assert!(
            short.starts_with("first ") && short.ends_with(" last"),
            "{short}"
        );
    }

    #[test]
    fn run_feeds_stdin_and_captures_both_outputs() {
        let output = run(
            Command::new("sh").args(["-c", "cat; echo oops >&2; exit 3"]),
            Some(b"through\n".to_vec()),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(output.code(), Some(3));
        assert_eq!(output.stdout, b"through\n");
        assert_eq!(output.stderr_text(), "oops\n");
    }

    #[test]
    fn run_kills_a_command_that_outlives_its_timeout() {
        let started = Instant::now();
        let error = run(
            Command::new("sleep").arg("30"),
            None,
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(error.to_string().contains("did not finish"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(25));
    }

    #[test]
    fn service_reports_the_url_and_its_exit_on_sigterm() {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "trap 'echo bye; exit 0' TERM; echo noise; echo 'listening on ws://127.0.0.1:4567'; \
             while :; do sleep 0.05; done",
        ]);
        let service = Service::start("sh", &mut command, Duration::from_secs(10)).unwrap();
        assert_eq!(service.url(), "ws://127.0.0.1:4567");
        assert_eq!(service.http_url(), "http://127.0.0.1:4567");
        assert_eq!(service.authority(), "127.0.0.1:4567");
        let exited = service.terminate(Duration::from_secs(10)).unwrap();
        assert!(exited.status.success(), "{}", exited.status);
        assert_eq!(exited.lines, ["bye"]);
    }

    #[test]
    fn service_that_exits_early_is_an_error_naming_its_output() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo 'address in use' >&2; exit 1"]);
        let error = Service::start("sh", &mut command, Duration::from_secs(10)).unwrap_err();
        let message = format!("{error:#}");
        assert!(
            message.contains("closed its stdout before printing"),
            "{message}"
        );
        assert!(message.contains("stderr: address in use"), "{message}");
    }
}
