//! `ws-bench`: a load generator for WebSocket echo servers, also run as
//! `ws-client bench` (the same options and output).
//!
//! One thread (a current-thread tokio runtime) drives every connection, each
//! a task: `echo` keeps `--in-flight` messages outstanding per connection
//! and checks every echo byte for byte, `handshakes` measures handshakes per
//! second, `idle` holds connections open, `tcp` is the plain-TCP
//! baseline. The run opens every connection first, then runs the warmup
//! (unrecorded), then measures for `--duration`; [`report`] turns the
//! counters into the summary.
//!
//! Protocol work is ws-core's: the handshake, the frames (built once per
//! connection by a client [`ws_core::Connection`], see [`payload`]), the
//! decoding of echoes and the closing handshake.
//!
//! ws-client depends on this crate (it runs the load generator as `ws-client
//! bench`), so the pieces both binaries need live here rather than in
//! ws-client: exit statuses and failure messages ([`failure`]), option value
//! parsers ([`parse`]), how close frames and control payloads are shown
//! ([`describe`]) and SIGINT/SIGTERM ([`signals`]).
//!
//! # Example
//!
//! ```
//! use clap::Parser;
//! use ws_bench::args::{BenchArgs, BenchMode};
//!
//! let args = BenchArgs::try_parse_from([
//!     "ws-bench", "ws://127.0.0.1:8000/", "--mode", "connect", "-c", "16", "--json",
//! ])?;
//! assert_eq!((args.mode, args.connections), (BenchMode::Connect, 16));
//! assert!(args.validate().is_ok());
//! # Ok::<(), clap::Error>(())
//! ```

pub mod args;
pub mod context;
pub mod describe;
pub mod failure;
pub mod open;
pub mod parse;
pub mod payload;
pub mod proc;
pub mod progress;
pub mod report;
pub mod signals;
pub mod stats;

mod echo;
mod handshakes;
mod idle;
mod tcp;

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches};
use tokio::sync::watch;
use tokio::task::{JoinSet, LocalSet};
use tokio::time::{Instant, sleep_until, timeout};

use crate::args::{BenchArgs, BenchMode};
use crate::context::{Context, Go};
use crate::failure::{Exit, Failure};
use crate::open::{CLOSE_TIMEOUT, Target};
use crate::proc::{CpuWindow, Pid, clock_ticks_per_second, rss_bytes};
use crate::progress::Progress;
use crate::report::{IdleFigures, Summary};
use crate::signals::Signals;
use crate::stats::Window;

/// How often the progress line is printed.
const TICK: Duration = Duration::from_secs(1);
/// How long idle connections settle before the server's memory is read.
const SETTLE: Duration = Duration::from_secs(1);
/// File descriptors the process needs besides its connections.
const SPARE_FILES: u64 = 32;

/// Runs the load generator with `args` (the first being the program's name)
/// and returns the exit status; see `ws-bench --help`.
///
/// `name` is what it calls itself in `--help`, usage errors and its error
/// lines: `ws-bench`, or `ws-client bench` when ws-client delegates to it.
pub fn main(name: &'static str, args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let mut command = BenchArgs::command().name(name).bin_name(name);
    let args = match command
        .try_get_matches_from_mut(args)
        .and_then(|matches| BenchArgs::from_arg_matches(&matches))
    {
        Ok(args) => args,
        Err(error) => error.format(&mut command).exit(),
    };
    if let Err(message) = args.validate() {
        command
            .error(clap::error::ErrorKind::ArgumentConflict, message)
            .exit();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            report_error(name, &format!("cannot start the async runtime: {error}"));
            return ExitCode::from(Exit::Other.code());
        }
    };
    let result = LocalSet::new().block_on(&runtime, run(args.clone()));
    let code = match result {
        Ok(outcome) => finish(name, &args, &outcome),
        Err(failure) => {
            report_error(name, &failure.message);
            failure.exit.code()
        }
    };
    ExitCode::from(code)
}

/// The result of a run that got as far as measuring.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The figures.
    pub summary: Summary,
}

/// Runs the benchmark the arguments describe.
pub async fn run(args: BenchArgs) -> Result<Outcome, Failure> {
    raise_file_limit(args.connections)?;
    if let Some(pid) = args.server_pid
        && proc::cpu_ticks(Pid::Other(pid)).is_none()
    {
        return Err(Failure::new(
            Exit::Usage,
            format!("--server-pid {pid}: no such process can be read in /proc (Linux only)"),
        ));
    }
    let target = Target::resolve(&args).await?;
    let payload = payload::make_payload(args.payload, args.size, args.text);
    let (go, go_receiver) = watch::channel(Go::Wait);
    let (stop, stop_receiver) = watch::channel(false);
    let quiet = args.quiet;
    let mode = args.mode;
    let context = Rc::new(Context::new(
        args,
        target,
        payload,
        go_receiver,
        stop_receiver,
    ));
    let driver = Driver {
        context,
        signals: Signals::new(),
        progress: Progress::new(quiet),
        tasks: JoinSet::new(),
        go,
        stop,
        ticks_per_second: clock_ticks_per_second(),
    };
    match mode {
        BenchMode::Echo | BenchMode::Tcp => driver.closed_loop().await,
        BenchMode::Connect => driver.handshakes().await,
        BenchMode::Idle => driver.idle().await,
    }
}

/// Prints the summary and decides the exit status.
fn finish(name: &str, args: &BenchArgs, outcome: &Outcome) -> u8 {
    let summary = &outcome.summary;
    let mut stdout = std::io::stdout().lock();
    let text = if args.json {
        format!("{}\n", summary.to_json())
    } else {
        summary.to_text(stdout.is_terminal())
    };
    if stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return Exit::Other.code();
    }
    let errors = summary.total_errors();
    if errors > 0 || summary.mismatches > 0 {
        let first = summary
            .first_mismatch
            .as_ref()
            .or(summary.first_error.as_ref())
            .map_or_else(String::new, |first| format!(" (first: {first})"));
        report_error(
            name,
            &format!(
                "{errors} errors and {} mismatches during the run{first}",
                summary.mismatches
            ),
        );
        return Exit::Other.code();
    }
    if summary.interrupted && summary.mode != BenchMode::Idle {
        return Exit::Interrupted.code();
    }
    Exit::Success.code()
}

fn report_error(name: &str, message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{name}: {message}");
}

/// Raises the soft limit on open files to the hard limit, and checks that
/// the connections fit under it.
fn raise_file_limit(connections: usize) -> Result<(), Failure> {
    #[cfg(unix)]
    {
        let needed = connections as u64 + SPARE_FILES;
        let limit = rlimit::increase_nofile_limit(u64::MAX).map_err(|error| {
            Failure::new(
                Exit::Other,
                format!("cannot read the limit on open files: {error}"),
            )
        })?;
        if limit < needed {
            return Err(Failure::new(
                Exit::Other,
                format!(
                    "{connections} connections need about {needed} file descriptors, but the limit \
                     is {limit}: raise the hard limit (ulimit -Hn) or open fewer connections"
                ),
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = (connections, SPARE_FILES);
    Ok(())
}

/// Runs the phases of a run and collects the results.
struct Driver {
    context: Rc<Context>,
    signals: Signals,
    progress: Progress,
    tasks: JoinSet<()>,
    go: watch::Sender<Go>,
    stop: watch::Sender<bool>,
    ticks_per_second: u64,
}

/// CPU time over the measured window, of the load generator and the server.
struct CpuSamples {
    client: Option<Duration>,
    server: Option<Duration>,
}

impl Driver {
    /// Echo and tcp modes: open, warm up, measure, close.
    async fn closed_loop(mut self) -> Result<Outcome, Failure> {
        let context = Rc::clone(&self.context);
        let mode = context.args.mode;
        self.progress.phase("connecting", Instant::now());
        context.start_opening();
        for index in 0..context.args.connections {
            let context = Rc::clone(&context);
            match mode {
                BenchMode::Tcp => self.tasks.spawn_local(tcp::connection(context, index)),
                _ => self.tasks.spawn_local(echo::connection(context, index)),
            };
        }
        if self.wait_settled().await {
            let _ = self.go.send(Go::Abort);
            self.join().await;
            return Ok(self.outcome(true, CpuSamples::none(), None));
        }
        if context.shared.open.get() == 0 {
            let _ = self.go.send(Go::Abort);
            self.join().await;
            return Err(self.no_connection());
        }
        let start = Instant::now() + context.args.warmup;
        let end = start + context.args.measure().unwrap_or(args::DEFAULT_DURATION);
        let window = Window { start, end };
        context.shared.set_window(window);
        let _ = self.go.send(Go::Run(window));
        let (interrupted, cpu) = self.measure(window).await;
        self.join().await;
        Ok(self.outcome(interrupted, cpu, None))
    }

    /// Connect mode: concurrent handshake loops over the window.
    async fn handshakes(mut self) -> Result<Outcome, Failure> {
        let context = Rc::clone(&self.context);
        let start = Instant::now() + context.args.warmup;
        let end = start + context.args.measure().unwrap_or(args::DEFAULT_DURATION);
        let window = Window { start, end };
        context.shared.set_window(window);
        for _ in 0..context.args.connections {
            self.tasks
                .spawn_local(handshakes::handshake_loop(Rc::clone(&context), window));
        }
        let (interrupted, cpu) = self.measure(window).await;
        self.join().await;
        let shared = &context.shared;
        if shared.connected.get() == 0
            && shared.connect_failures.get() + shared.handshake_failures.get() > 0
        {
            return Err(self.no_connection());
        }
        Ok(self.outcome(interrupted, cpu, None))
    }

    /// Idle mode: open, announce, hold, close.
    async fn idle(mut self) -> Result<Outcome, Failure> {
        let context = Rc::clone(&self.context);
        let server = context.args.server_pid.map(Pid::Other);
        let rss_before = server.and_then(rss_bytes);
        let opening = Instant::now();
        self.progress.phase("opening", opening);
        context.start_opening();
        for index in 0..context.args.connections {
            self.tasks
                .spawn_local(idle::connection(Rc::clone(&context), index));
        }
        let mut interrupted = self.wait_settled().await;
        let open_time = opening.elapsed();
        let open = context.shared.open.get();
        if open == 0 && !interrupted {
            self.join().await;
            return Err(self.no_connection());
        }
        self.announce_open(open);
        let holding = Instant::now();
        self.progress.phase("holding", holding);
        let end = context.args.measure().map(|duration| holding + duration);
        let settled = end.map_or(holding + SETTLE, |end| end.min(holding + SETTLE));
        if !interrupted {
            interrupted = self.wait_until(Some(settled)).await;
        }
        let rss_after = server.and_then(rss_bytes);
        if !interrupted {
            interrupted = self.wait_until(end).await;
        }
        let held = holding.elapsed();
        let _ = self.stop.send(true);
        self.join().await;
        let idle = IdleFigures {
            open: open as u64,
            open_time,
            held,
            rss_before,
            rss_after,
        };
        Ok(self.outcome(interrupted, CpuSamples::none(), Some(idle)))
    }

    /// Runs the warmup and the measurement, sampling CPU time at the edges
    /// of the window; returns whether a signal cut it short. The progress
    /// clock starts again with the measurement.
    async fn measure(&mut self, window: Window) -> (bool, CpuSamples) {
        self.progress.phase("warmup", Instant::now());
        let mut interrupted = self.wait_until(Some(window.start)).await;
        self.progress.phase("measuring", window.start);
        let client = CpuWindow::start(Pid::Own);
        let server = self
            .context
            .args
            .server_pid
            .map(|pid| CpuWindow::start(Pid::Other(pid)));
        if !interrupted {
            interrupted = self.wait_until(Some(window.end)).await;
        }
        self.context.shared.stop(Instant::now());
        let cpu = CpuSamples {
            client: client.elapsed(self.ticks_per_second),
            server: server.and_then(|server| server.elapsed(self.ticks_per_second)),
        };
        (interrupted, cpu)
    }

    /// Waits until `deadline` (`None`: until a signal), printing progress;
    /// true if a signal came first.
    async fn wait_until(&mut self, deadline: Option<Instant>) -> bool {
        let mut next_tick = Instant::now() + TICK;
        loop {
            let wake = deadline.map_or(next_tick, |deadline| deadline.min(next_tick));
            tokio::select! {
                () = sleep_until(wake) => {}
                () = self.signals.recv() => return true,
            }
            let now = Instant::now();
            if now >= next_tick {
                self.tick();
                next_tick = (next_tick + TICK).max(now);
            }
            if deadline.is_some_and(|deadline| now >= deadline) {
                return false;
            }
        }
    }

    /// Waits until every connection attempt is over, printing progress; true
    /// if a signal came first.
    async fn wait_settled(&mut self) -> bool {
        let context = Rc::clone(&self.context);
        let mut next_tick = Instant::now() + TICK;
        loop {
            if context.shared.settled.get() >= context.args.connections {
                return false;
            }
            tokio::select! {
                () = context.all_settled.notified() => {}
                () = sleep_until(next_tick) => {
                    self.tick();
                    next_tick += TICK;
                }
                () = self.signals.recv() => return true,
            }
        }
    }

    fn tick(&mut self) {
        let unit = match self.context.args.mode {
            BenchMode::Connect => "handshakes",
            _ => "msg",
        };
        self.progress
            .tick(&self.context.shared, self.context.args.connections, unit);
    }

    /// Waits for every task to close its connection, within a bound; tasks
    /// still running then are ended and counted as errors.
    async fn join(&mut self) {
        let limit = CLOSE_TIMEOUT + self.context.args.connect_timeout * 2 + Duration::from_secs(2);
        let tasks = &mut self.tasks;
        let all = async { while tasks.join_next().await.is_some() {} };
        if timeout(limit, all).await.is_err() {
            let stuck = self.tasks.len();
            self.tasks.abort_all();
            for _ in 0..stuck {
                self.context.shared.error(|| {
                    format!(
                        "{stuck} connections did not finish within {} s",
                        limit.as_secs()
                    )
                });
            }
        }
        self.progress.finish();
    }

    /// Prints that the idle connections are up: on stdout, or on stderr when
    /// stdout is reserved for the JSON object.
    fn announce_open(&mut self, open: usize) {
        let shared = &self.context.shared;
        let failed = shared.connect_failures.get() + shared.handshake_failures.get();
        let mut line = format!("{open} connections open");
        if failed > 0 {
            line.push_str(&format!(" ({failed} failed)"));
        }
        self.progress.finish();
        if self.context.args.json {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        } else {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{line}");
            let _ = stdout.flush();
        }
    }

    /// No connection could be opened: the first error says why.
    fn no_connection(&self) -> Failure {
        let shared = &self.context.shared;
        let exit = if shared.handshake_failures.get() > 0 {
            Exit::Handshake
        } else {
            Exit::Connect
        };
        let why = shared
            .first_error()
            .unwrap_or_else(|| "no attempt finished".to_owned());
        Failure::new(
            exit,
            format!(
                "no connection could be made to {}: {why}",
                self.context.target.url
            ),
        )
    }

    fn outcome(&self, interrupted: bool, cpu: CpuSamples, idle: Option<IdleFigures>) -> Outcome {
        let context = &self.context;
        let args = &context.args;
        let shared = &context.shared;
        let window = shared.window().map_or(Duration::ZERO, |window| {
            window.end.saturating_duration_since(window.start)
        });
        let frame_len = match args.mode {
            BenchMode::Echo => Some(shared.frame_len.get()).filter(|&len| len > 0),
            BenchMode::Tcp => Some(args.size),
            BenchMode::Connect | BenchMode::Idle => None,
        };
        Outcome {
            summary: Summary {
                mode: args.mode,
                url: args.url.clone(),
                connections: args.connections,
                connected: shared.connected.get(),
                size: args.size,
                in_flight: args.in_flight,
                text: args.text,
                payload: args.payload,
                deflate: args.deflate,
                warmup: args.warmup,
                window,
                interrupted,
                count: shared.measured.get(),
                payload_bytes: shared.payload_bytes.get(),
                wire_in: shared.wire_in.get(),
                wire_out: shared.wire_out.get(),
                frame_len,
                latency: shared.latency(),
                errors: shared.errors.get(),
                mismatches: shared.mismatches.get(),
                connect_failures: shared.connect_failures.get(),
                handshake_failures: shared.handshake_failures.get(),
                first_error: shared.first_error(),
                first_mismatch: shared.first_mismatch(),
                client_cpu: cpu.client,
                server_pid: args.server_pid,
                server_cpu: cpu.server,
                idle,
            },
        }
    }
}

impl CpuSamples {
    fn none() -> Self {
        Self {
            client: None,
            server: None,
        }
    }
}
