//! `cargo xtask bench`: ws-server side by side with reference servers on
//! `fastwebsockets` and `tokio-tungstenite` (and a plain TCP echo as the
//! floor), driven by the `ws-bench` load generator.
//!
//! Fairness: every server runs a single-thread tokio runtime (ws-server with
//! `--threads 1`, and `--log-level warn` since the peers log nothing per
//! connection) pinned to CPU 0, the load generator is pinned to CPU 1, a
//! fresh server process serves each run, the servers alternate A B C, B C A,
//! C A B over the rounds, and medians are reported, with each median's lowest
//! and highest run. The figure a server is judged by is its own CPU time per
//! message over the measured window (read from `/proc/PID/stat` by the load
//! generator), since the load generator shares the machine; messages per
//! second and latency are reported beside it.
//!
//! The reference servers live in `bench/peers`, a Cargo project of its own
//! outside the workspace, so that `cargo xtask ci` never compiles them; this
//! task builds them (`--locked`, into `bench/peers/target`).
//!
//! Everything runs on loopback; every process started is ended when its run
//! is over, on error too (the guards kill on drop), and every run is bounded
//! in time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde_json::Value;

use crate::process;
use crate::workspace::Workspace;

const USAGE: &str = "usage: cargo xtask bench [OPTIONS]

Builds ws-server and ws-bench (release) and the reference servers in
bench/peers, runs the matrix, and writes target/bench/report.md (also printed).

options:
  --quick            1 round, 0.5 s warmup, 2 s per run: for trying it out
  --rounds N         rounds; each starts with the next server in turn [default: 3]
  --warmup SECS      unrecorded time per run [default: 1]
  --duration SECS    measured time per run [default: 4]
  --cells LIST       only these echo cells, e.g. 100x20,10x16KiB (CONNxSIZE)
  --idle N           idle connections for the memory figure; 0 skips [default: 10000]
  --handshakes N     concurrent loops for handshakes/s; 0 skips [default: 8]
  --deflate          add the permessage-deflate tables (ws-server with and
                     without deflate, JSON-like and random payloads; and
                     with --idle, its idle memory after one message each)
  --no-echo          skip the echo matrix
  -h, --help         this text";

/// The matrix of the issues: connections × payload bytes.
const MATRIX: [Cell; 11] = [
    Cell::new(100, 0),
    Cell::new(100, 20),
    Cell::new(10, 1024),
    Cell::new(10, 16 * 1024),
    Cell::new(200, 16 * 1024),
    Cell::new(500, 16 * 1024),
    Cell::new(1, 20),
    Cell::new(1000, 20),
    Cell::new(64, 1024),
    Cell::new(1024, 1024),
    Cell::new(1024, 64 * 1024),
];

/// The deflate table's cells.
const DEFLATE_CELLS: [Cell; 2] = [Cell::new(100, 1024), Cell::new(100, 16 * 1024)];
/// The message each connection of the deflate idle cell echoes first.
const DEFLATE_IDLE_MESSAGE: usize = 1024;

/// How long a server gets to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a server gets to exit on SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Beyond warmup and duration: connecting, closing, process start.
const RUN_SLACK: Duration = Duration::from_secs(60);
/// Builds from cold on two cores take minutes; this only stops a stuck one.
const BUILD_TIMEOUT: Duration = Duration::from_secs(40 * 60);
/// How long idle connections are held (the memory is read after 1 s).
const IDLE_HOLD: &str = "2s";

/// Runs `cargo xtask bench` with `args` (the options after `bench`).
pub fn run(workspace: &Workspace, args: &[String]) -> Result<()> {
    let options = Options::parse(args)
        .map_err(|error| anyhow!("{error:#} (`cargo xtask bench --help` lists the options)"))?;
    let Some(options) = options else {
        println!("{USAGE}");
        return Ok(());
    };
    run_with(workspace, &options)
}

/// What to run.
#[derive(Debug, Clone, PartialEq)]
struct Options {
    rounds: usize,
    warmup: f64,
    duration: f64,
    cells: Vec<Cell>,
    idle: usize,
    handshake_loops: usize,
    deflate: bool,
}

impl Options {
    /// `None` for `--help`.
    fn parse(args: &[String]) -> Result<Option<Self>> {
        let mut options = Self {
            rounds: 3,
            warmup: 1.0,
            duration: 4.0,
            cells: MATRIX.to_vec(),
            idle: 10_000,
            handshake_loops: 8,
            deflate: false,
        };
        let mut quick = false;
        let (mut rounds, mut warmup, mut duration) = (None, None, None);
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || {
                args.next()
                    .with_context(|| format!("{arg} needs a value"))
                    .map(String::as_str)
            };
            match arg.as_str() {
                "-h" | "--help" => return Ok(None),
                "--quick" => quick = true,
                "--deflate" => options.deflate = true,
                "--no-echo" => options.cells.clear(),
                "--rounds" => rounds = Some(parse_count(value()?, "--rounds", 1, 20)?),
                "--warmup" => warmup = Some(parse_seconds(value()?, "--warmup", 0.0)?),
                "--duration" => duration = Some(parse_seconds(value()?, "--duration", 0.1)?),
                "--cells" => options.cells = parse_cells(value()?)?,
                "--idle" => options.idle = parse_count(value()?, "--idle", 0, 100_000)?,
                "--handshakes" => {
                    options.handshake_loops = parse_count(value()?, "--handshakes", 0, 1000)?;
                }
                other => bail!("unknown option {other:?}"),
            }
        }
        if quick {
            options.rounds = 1;
            options.warmup = 0.5;
            options.duration = 2.0;
        }
        options.rounds = rounds.unwrap_or(options.rounds);
        options.warmup = warmup.unwrap_or(options.warmup);
        options.duration = duration.unwrap_or(options.duration);
        Ok(Some(options))
    }

    /// The bound on one load generator run.
    fn run_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.warmup + self.duration) + RUN_SLACK
    }
}

fn parse_count(text: &str, name: &str, min: usize, max: usize) -> Result<usize> {
    let value: usize = text
        .parse()
        .with_context(|| format!("{name} takes a number, got {text:?}"))?;
    ensure!(
        (min..=max).contains(&value),
        "{name} must be between {min} and {max}"
    );
    Ok(value)
}

fn parse_seconds(text: &str, name: &str, min: f64) -> Result<f64> {
    let value: f64 = text
        .trim_end_matches('s')
        .parse()
        .with_context(|| format!("{name} takes seconds, got {text:?}"))?;
    ensure!(
        value >= min && value <= 600.0,
        "{name} must be between {min} and 600 seconds"
    );
    Ok(value)
}

/// `100x20,10x16KiB` → cells.
fn parse_cells(text: &str) -> Result<Vec<Cell>> {
    text.split(',')
        .map(str::trim)
        .filter(|cell| !cell.is_empty())
        .map(|cell| {
            let (connections, size) = cell
                .split_once(['x', 'X', '×'])
                .with_context(|| format!("a cell is CONNECTIONSxSIZE, got {cell:?}"))?;
            let connections = parse_count(connections.trim(), "connections", 1, 100_000)?;
            let size = size.trim();
            let (digits, multiplier) = match size.to_ascii_lowercase() {
                s if s.ends_with("kib") || s.ends_with('k') => {
                    (size.trim_end_matches(char::is_alphabetic), 1024)
                }
                s if s.ends_with('b') => (size.trim_end_matches(['b', 'B']), 1),
                _ => (size, 1),
            };
            let size: usize = digits
                .trim()
                .parse()
                .with_context(|| format!("bad size in cell {cell:?}"))?;
            Ok(Cell::new(connections, size * multiplier))
        })
        .collect::<Result<Vec<_>>>()
        .and_then(|cells| {
            ensure!(!cells.is_empty(), "--cells names no cell");
            Ok(cells)
        })
}

/// Connections × payload bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Cell {
    connections: usize,
    size: usize,
}

impl Cell {
    const fn new(connections: usize, size: usize) -> Self {
        Self { connections, size }
    }

    fn label(self) -> String {
        format!("{} × {}", self.connections, size_label(self.size))
    }
}

fn size_label(size: usize) -> String {
    if size >= 1024 && size.is_multiple_of(1024) {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

/// A server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Contender {
    WsServer,
    Fastwebsockets,
    Tungstenite,
    TcpFloor,
}

impl Contender {
    /// The WebSocket servers, in the order they alternate.
    const WEBSOCKET: [Self; 3] = [Self::WsServer, Self::Fastwebsockets, Self::Tungstenite];

    fn name(self) -> &'static str {
        match self {
            Self::WsServer => "ws-server",
            Self::Fastwebsockets => "fastwebsockets",
            Self::Tungstenite => "tokio-tungstenite",
            Self::TcpFloor => "TCP floor",
        }
    }

    fn log_name(self) -> &'static str {
        match self {
            Self::WsServer => "ws-server",
            Self::Fastwebsockets => "fastwebsockets-echo",
            Self::Tungstenite => "tungstenite-echo",
            Self::TcpFloor => "tcp-echo",
        }
    }
}

/// Where the binaries are, and whether pinning is available.
struct Setup {
    ws_server: PathBuf,
    ws_bench: PathBuf,
    peers: PathBuf,
    logs: PathBuf,
    pinning: bool,
    options: Options,
}

impl Setup {
    /// A command for a server, pinned to CPU 0 when possible.
    fn server_command(&self, server: Contender, max_connections: usize) -> Command {
        let program = match server {
            Contender::WsServer => self.ws_server.clone(),
            other => self.peers.join(other.log_name()),
        };
        let mut command = self.pinned(0, &program);
        command.args(["--listen", "127.0.0.1:0"]);
        if server == Contender::WsServer {
            command.args(["--threads", "1", "--max-connections"]);
            command.arg(max_connections.max(10_000).to_string());
            // Like the peers, which print nothing per connection: the
            // default log line per connection is a write(2) per handshake.
            command.args(["--log-level", "warn"]);
        }
        command
    }

    /// The load generator, pinned to CPU 1 when possible.
    fn client_command(&self, url: &str, pid: u32) -> Command {
        let mut command = self.pinned(1, &self.ws_bench);
        command.args([url, "--json", "--quiet", "--server-pid"]);
        command.arg(pid.to_string());
        command
    }

    fn pinned(&self, cpu: u8, program: &Path) -> Command {
        if self.pinning {
            let mut command = Command::new("taskset");
            command.args(["-c", &cpu.to_string()]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn timing_args(&self) -> [String; 4] {
        [
            "--warmup".to_owned(),
            format!("{}s", self.options.warmup),
            "--duration".to_owned(),
            format!("{}s", self.options.duration),
        ]
    }

    /// Starts `server`, runs the load generator with `args` against it, and
    /// returns the load generator's JSON; the server is stopped in any case.
    fn run(&self, server: Contender, args: &[String], max_connections: usize) -> Result<Value> {
        let process = Running::start(
            server,
            &mut self.server_command(server, max_connections),
            &self.logs,
        )?;
        let mut command = self.client_command(&process.url, process.pid());
        command.args(args);
        let output = process::run(&mut command, None, self.options.run_timeout())?;
        let stdout = output.stdout_text();
        let json: Option<Value> = serde_json::from_str(stdout.trim()).ok();
        process.stop();
        match (output.code(), json) {
            (Some(0), Some(json)) => Ok(json),
            // Errors or mismatches: the figures are there, the caller flags them.
            (Some(1), Some(json)) => Ok(json),
            _ => bail!("ws-bench failed: {}", output.describe()),
        }
    }
}

/// A server process, ended when dropped.
struct Running {
    child: Child,
    url: String,
    name: &'static str,
    /// Keeps draining stdout so the server never blocks on it.
    lines: Receiver<String>,
}

impl Running {
    fn start(server: Contender, command: &mut Command, logs: &Path) -> Result<Self> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(logs.join(format!("{}.log", server.log_name())))
            .context("cannot open the server log")?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", server.log_name()))?;
        let stdout = child.stdout.take().context("stdout was not piped")?;
        let (sender, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    // Nobody listens any more: keep reading so the pipe never fills.
                    continue;
                }
            }
        });
        let mut running = Self {
            child,
            url: String::new(),
            name: server.log_name(),
            lines,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match running.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        running.url = url.trim().to_owned();
                        return Ok(running);
                    }
                }
                Err(_) => bail!(
                    "{} printed no `listening on` line within {} s (see target/bench/logs)",
                    running.name,
                    READY_TIMEOUT.as_secs()
                ),
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL if it does not exit in time.
    fn stop(mut self) {
        self.end();
    }

    fn end(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.end();
    }
}

/// One echo run's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Echo {
    msgs_per_sec: f64,
    server_us: Option<f64>,
    /// The lowest and highest `server_us` of the runs a median was taken
    /// over (of one run: its own figure twice).
    server_us_range: Option<(f64, f64)>,
    p50: Option<f64>,
    p99: Option<f64>,
    client_share: Option<f64>,
    compression: Option<f64>,
    problems: u64,
}

impl Echo {
    fn from_json(json: &Value) -> Self {
        let duration = number(json, "duration_s").unwrap_or_default();
        let server_us = number(json, "server_cpu_us_per_message")
            .or_else(|| number(json, "server_cpu_us_per_handshake"));
        Self {
            msgs_per_sec: number(json, "msgs_per_sec")
                .or_else(|| number(json, "handshakes_per_sec"))
                .unwrap_or_default(),
            server_us,
            server_us_range: server_us.map(|us| (us, us)),
            p50: json.get("latency_us").and_then(|l| number(l, "p50")),
            p99: json.get("latency_us").and_then(|l| number(l, "p99")),
            client_share: number(json, "client_cpu_seconds")
                .filter(|_| duration > 0.0)
                .map(|cpu| cpu / duration),
            compression: number(json, "compression_ratio"),
            problems: json["errors"].as_u64().unwrap_or_default()
                + json["mismatches"].as_u64().unwrap_or_default(),
        }
    }

    /// The median of each figure over the rounds.
    fn median_of(runs: &[Self]) -> Self {
        let pick = |f: fn(&Self) -> Option<f64>| median(runs.iter().filter_map(f).collect());
        Self {
            msgs_per_sec: pick(|e| Some(e.msgs_per_sec)).unwrap_or_default(),
            server_us: pick(|e| e.server_us),
            server_us_range: runs
                .iter()
                .filter_map(|e| e.server_us_range)
                .reduce(|(low, high), (l, h)| (low.min(l), high.max(h))),
            p50: pick(|e| e.p50),
            p99: pick(|e| e.p99),
            client_share: pick(|e| e.client_share),
            compression: pick(|e| e.compression),
            problems: runs.iter().map(|e| e.problems).sum(),
        }
    }
}

/// One idle run's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Idle {
    open: f64,
    before: Option<f64>,
    after: Option<f64>,
    per_connection: Option<f64>,
}

impl Idle {
    fn from_json(json: &Value) -> Self {
        Self {
            open: number(json, "open").unwrap_or_default(),
            before: number(json, "server_rss_before_bytes"),
            after: number(json, "server_rss_after_bytes"),
            per_connection: number(json, "server_rss_per_connection_bytes"),
        }
    }

    fn median_of(runs: &[Self]) -> Self {
        let pick = |f: fn(&Self) -> Option<f64>| median(runs.iter().filter_map(f).collect());
        Self {
            open: pick(|i| Some(i.open)).unwrap_or_default(),
            before: pick(|i| i.before),
            after: pick(|i| i.after),
            per_connection: pick(|i| i.per_connection),
        }
    }
}

fn number(json: &Value, key: &str) -> Option<f64> {
    json.get(key).and_then(Value::as_f64)
}

/// The median (the mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|value| value.is_finite());
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    match values.len() {
        0 => None,
        n if n % 2 == 1 => values.get(middle).copied(),
        _ => Some((values.get(middle - 1)? + values.get(middle)?) / 2.0),
    }
}

/// Everything measured.
#[derive(Debug, Default)]
struct Results {
    echo: Vec<(Cell, BTreeMap<Contender, Echo>)>,
    idle: BTreeMap<Contender, Idle>,
    handshakes: BTreeMap<Contender, Echo>,
    /// (cell, payload) → (plain, deflate).
    deflate: Vec<(Cell, &'static str, Echo, Echo)>,
    /// Idle after one message each: (without deflate, with deflate).
    deflate_idle: Option<(Idle, Idle)>,
    failures: Vec<String>,
}

fn run_with(workspace: &Workspace, options: &Options) -> Result<()> {
    let setup = prepare(workspace, options)?;
    let started = Instant::now();
    let header = machine_header(workspace, &setup);
    let mut results = Results::default();
    let total_runs = count_runs(options);
    let mut done = 0;
    let mut progress = |what: &str| {
        done += 1;
        eprintln!("xtask bench: [{done}/{total_runs}] {what}");
    };

    for &cell in &options.cells {
        let servers: Vec<Contender> = servers_for(cell);
        let mut runs: BTreeMap<Contender, Vec<Echo>> = BTreeMap::new();
        for round in 1..=options.rounds {
            for server in in_turn(&servers, round) {
                let mut args = vec![
                    "--connections".to_owned(),
                    cell.connections.to_string(),
                    "--size".to_owned(),
                    cell.size.to_string(),
                ];
                if server == Contender::TcpFloor {
                    args.extend(["--mode".to_owned(), "tcp".to_owned()]);
                }
                args.extend(setup.timing_args());
                let what = format!("{} {} round {round}", cell.label(), server.name());
                match setup.run(server, &args, cell.connections) {
                    Ok(json) => {
                        let echo = Echo::from_json(&json);
                        progress(&format!(
                            "{what}: {:.0} msg/s, {} us/msg server CPU",
                            echo.msgs_per_sec,
                            echo.server_us
                                .map_or("?".to_owned(), |us| format!("{us:.2}"))
                        ));
                        runs.entry(server).or_default().push(echo);
                    }
                    Err(error) => {
                        progress(&format!("{what}: FAILED {error:#}"));
                        results.failures.push(format!("{what}: {error:#}"));
                    }
                }
            }
        }
        let medians = runs
            .iter()
            .map(|(&server, runs)| (server, Echo::median_of(runs)))
            .collect();
        results.echo.push((cell, medians));
    }

    if options.idle > 0 {
        let mut runs: BTreeMap<Contender, Vec<Idle>> = BTreeMap::new();
        for round in 1..=options.rounds {
            for server in in_turn(&Contender::WEBSOCKET, round) {
                let args = [
                    "--mode".to_owned(),
                    "idle".to_owned(),
                    "--connections".to_owned(),
                    options.idle.to_string(),
                    "--duration".to_owned(),
                    IDLE_HOLD.to_owned(),
                ];
                let what = format!("idle {} {} round {round}", options.idle, server.name());
                match setup.run(server, &args, options.idle + 100) {
                    Ok(json) => {
                        let idle = Idle::from_json(&json);
                        progress(&format!(
                            "{what}: {} B per connection",
                            idle.per_connection
                                .map_or("?".to_owned(), |b| format!("{b:.0}"))
                        ));
                        runs.entry(server).or_default().push(idle);
                    }
                    Err(error) => {
                        progress(&format!("{what}: FAILED {error:#}"));
                        results.failures.push(format!("{what}: {error:#}"));
                    }
                }
            }
        }
        results.idle = runs
            .iter()
            .map(|(&server, runs)| (server, Idle::median_of(runs)))
            .collect();
    }

    if options.handshake_loops > 0 {
        let mut runs: BTreeMap<Contender, Vec<Echo>> = BTreeMap::new();
        for round in 1..=options.rounds {
            for server in in_turn(&Contender::WEBSOCKET, round) {
                let mut args = vec![
                    "--mode".to_owned(),
                    "connect".to_owned(),
                    "--connections".to_owned(),
                    options.handshake_loops.to_string(),
                ];
                args.extend(setup.timing_args());
                let what = format!("handshakes {} round {round}", server.name());
                match setup.run(server, &args, 10_000) {
                    Ok(json) => {
                        let echo = Echo::from_json(&json);
                        progress(&format!("{what}: {:.0} handshakes/s", echo.msgs_per_sec));
                        runs.entry(server).or_default().push(echo);
                    }
                    Err(error) => {
                        progress(&format!("{what}: FAILED {error:#}"));
                        results.failures.push(format!("{what}: {error:#}"));
                    }
                }
            }
        }
        results.handshakes = runs
            .iter()
            .map(|(&server, runs)| (server, Echo::median_of(runs)))
            .collect();
    }

    if options.deflate {
        for cell in DEFLATE_CELLS {
            for payload in ["json", "random"] {
                let (plain, compressed) = off_and_on(
                    &setup,
                    &mut results.failures,
                    &mut progress,
                    &format!("deflate {} {payload}", cell.label()),
                    cell.connections,
                    |deflate| {
                        let mut args = vec![
                            "--connections".to_owned(),
                            cell.connections.to_string(),
                            "--size".to_owned(),
                            cell.size.to_string(),
                            "--payload".to_owned(),
                            payload.to_owned(),
                        ];
                        if payload == "json" {
                            args.push("--text".to_owned());
                        }
                        if deflate {
                            args.push("--deflate".to_owned());
                        }
                        args.extend(setup.timing_args());
                        args
                    },
                    |json| {
                        let echo = Echo::from_json(json);
                        (echo, format!("{:.0} msg/s", echo.msgs_per_sec))
                    },
                );
                results.deflate.push((
                    cell,
                    payload,
                    Echo::median_of(&plain),
                    Echo::median_of(&compressed),
                ));
            }
        }
    }

    if options.deflate && options.idle > 0 {
        let (plain, compressed) = off_and_on(
            &setup,
            &mut results.failures,
            &mut progress,
            &format!("deflate idle {}", options.idle),
            options.idle + 100,
            |deflate| {
                let mut args: Vec<String> = [
                    "--mode",
                    "idle",
                    "--duration",
                    IDLE_HOLD,
                    "--idle-echo",
                    "--payload",
                    "json",
                    "--text",
                ]
                .map(str::to_owned)
                .into();
                args.extend([
                    "--connections".to_owned(),
                    options.idle.to_string(),
                    "--size".to_owned(),
                    DEFLATE_IDLE_MESSAGE.to_string(),
                ]);
                if deflate {
                    args.extend(["--deflate".to_owned(), "--browser-offer".to_owned()]);
                }
                args
            },
            |json| {
                let idle = Idle::from_json(json);
                let per = idle
                    .per_connection
                    .map_or("?".to_owned(), |b| format!("{b:.0}"));
                (idle, format!("{per} B per connection"))
            },
        );
        results.deflate_idle = Some((Idle::median_of(&plain), Idle::median_of(&compressed)));
    }

    let report = render(&header, options, &results, started.elapsed());
    let dir = workspace.target.join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("report.md");
    std::fs::write(&path, &report).with_context(|| format!("cannot write {}", path.display()))?;
    println!("{report}");
    eprintln!("xtask bench: report written to {}", path.display());
    ensure!(
        results.failures.is_empty(),
        "{} runs failed (listed at the end of the report)",
        results.failures.len()
    );
    Ok(())
}

/// Runs ws-server without and with deflate in every round (which goes
/// first alternates), the load generator getting `args(deflate)`; `parse`
/// turns its JSON into a figure and a progress note. Failed runs are listed
/// in `failures`.
fn off_and_on<T>(
    setup: &Setup,
    failures: &mut Vec<String>,
    progress: &mut impl FnMut(&str),
    label: &str,
    max_connections: usize,
    args: impl Fn(bool) -> Vec<String>,
    parse: impl Fn(&Value) -> (T, String),
) -> (Vec<T>, Vec<T>) {
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for round in 1..=setup.options.rounds {
        for deflate in in_turn(&[false, true], round) {
            let what = format!(
                "{label} {} round {round}",
                if deflate { "on" } else { "off" }
            );
            match setup.run(Contender::WsServer, &args(deflate), max_connections) {
                Ok(json) => {
                    let (figure, note) = parse(&json);
                    progress(&format!("{what}: {note}"));
                    if deflate { &mut on } else { &mut off }.push(figure);
                }
                Err(error) => {
                    progress(&format!("{what}: FAILED {error:#}"));
                    failures.push(format!("{what}: {error:#}"));
                }
            }
        }
    }
    (off, on)
}

/// The order of the runs in `round` (from 1): `items` rotated by one place
/// per round, so that no server always runs first, right after another cell
/// or another server's teardown, and no server always runs last.
fn in_turn<T: Copy>(items: &[T], round: usize) -> impl Iterator<Item = T> + '_ {
    let start = round.saturating_sub(1) % items.len().max(1);
    items[start..].iter().chain(&items[..start]).copied()
}

/// The servers of a cell: the TCP floor has nothing to echo with 0 bytes.
fn servers_for(cell: Cell) -> Vec<Contender> {
    let mut servers = Contender::WEBSOCKET.to_vec();
    if cell.size > 0 {
        servers.push(Contender::TcpFloor);
    }
    servers
}

fn count_runs(options: &Options) -> usize {
    let echo: usize = options
        .cells
        .iter()
        .map(|&cell| servers_for(cell).len())
        .sum();
    let idle = if options.idle > 0 { 3 } else { 0 };
    let handshakes = if options.handshake_loops > 0 { 3 } else { 0 };
    let deflate = match (options.deflate, options.idle > 0) {
        (true, true) => DEFLATE_CELLS.len() * 2 * 2 + 2,
        (true, false) => DEFLATE_CELLS.len() * 2 * 2,
        (false, _) => 0,
    };
    (echo + idle + handshakes + deflate) * options.rounds
}

/// Builds the binaries (release) and checks what the runs need.
fn prepare(workspace: &Workspace, options: &Options) -> Result<Setup> {
    eprintln!("xtask bench: cargo build --release -p ws-server -p ws-bench");
    let mut build = workspace.cargo_command();
    build
        .args(["build", "--release", "-p", "ws-server", "-p", "ws-bench"])
        .stdin(Stdio::null());
    let status = process::status_within(&mut build, BUILD_TIMEOUT)?;
    ensure!(
        status.success(),
        "building ws-server and ws-bench failed ({status})"
    );

    let peers_dir = workspace.path("bench/peers");
    eprintln!("xtask bench: cargo build --release --locked in bench/peers");
    let mut build = workspace.cargo_command();
    build
        .args(["build", "--release", "--locked", "--manifest-path"])
        .arg(peers_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(peers_dir.join("target"))
        .stdin(Stdio::null());
    let status = process::status_within(&mut build, BUILD_TIMEOUT)?;
    ensure!(status.success(), "building bench/peers failed ({status})");

    // The servers' stderr, appended run after run: kept for one bench only.
    let logs = workspace.target.join("bench").join("logs");
    if logs.exists() {
        std::fs::remove_dir_all(&logs)
            .with_context(|| format!("cannot clear {}", logs.display()))?;
    }
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let cpus = thread::available_parallelism().map_or(1, usize::from);
    let taskset = Command::new("taskset")
        .arg("-V")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    let pinning = taskset && cpus >= 2;
    if !pinning {
        eprintln!(
            "xtask bench: running unpinned ({})",
            if taskset {
                "fewer than 2 CPUs"
            } else {
                "taskset not found"
            }
        );
    }
    let release = workspace.target.join("release");
    Ok(Setup {
        ws_server: release.join("ws-server"),
        ws_bench: release.join("ws-bench"),
        peers: peers_dir.join("target").join("release"),
        logs,
        pinning,
        options: options.clone(),
    })
}

/// The date and machine line, and what was compared.
fn machine_header(workspace: &Workspace, setup: &Setup) -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = thread::available_parallelism().map_or(1, usize::from);
    let memory = read("/proc/meminfo")
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .map_or_else(String::new, |kib| {
            format!(", {} GiB RAM", (kib + (1 << 19)) >> 20)
        });
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
    let load = read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let date = command_output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]));
    let mut git = Command::new("git");
    git.current_dir(&workspace.root)
        .args(["describe", "--always", "--dirty"]);
    let revision = command_output(&mut git);
    let lock =
        std::fs::read_to_string(workspace.path("bench/peers/Cargo.lock")).unwrap_or_default();
    let version = |name| locked_version(&lock, name).unwrap_or_else(|| "?".to_owned());
    let options = &setup.options;
    format!(
        "Date: {date}. Machine: {cpu}, {cores} cores{memory}, Linux {kernel}, load average at start {load}.\n\
         ws-server {revision} (`--threads 1 --log-level warn`: like the peers, no log line per connection) \
         against fastwebsockets {} and tokio-tungstenite {} (bench/peers), \
         each on a single-thread tokio runtime{}; `ws-bench` as the load generator{}. \
         {} round(s), servers alternating (each round starts with the next), medians; each run {} s warmup + {} s measured, on a fresh server process.",
        version("fastwebsockets"),
        version("tokio-tungstenite"),
        if setup.pinning {
            " pinned to CPU 0 (`taskset -c 0`)"
        } else {
            " (unpinned)"
        },
        if setup.pinning {
            " pinned to CPU 1"
        } else {
            ""
        },
        options.rounds,
        options.warmup,
        options.duration,
    )
}

fn command_output(command: &mut Command) -> String {
    command
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "?".to_owned())
}

/// The version of `name` in a Cargo.lock.
fn locked_version(lock: &str, name: &str) -> Option<String> {
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == format!("name = \"{name}\"") {
            let version = lines.next()?.trim().strip_prefix("version = \"")?;
            return Some(version.trim_end_matches('"').to_owned());
        }
    }
    None
}

/// A ratio with a mark when it has a target: ✓ met, ✗ missed.
fn ratio(ours: Option<f64>, theirs: Option<f64>, target: Option<(f64, bool)>) -> String {
    match (ours, theirs) {
        (Some(ours), Some(theirs)) if theirs > 0.0 => {
            let ratio = ours / theirs;
            let mark = match target {
                Some((limit, lower_is_better)) => {
                    let met = if lower_is_better {
                        ratio <= limit
                    } else {
                        ratio >= limit
                    };
                    if met { " ✓" } else { " ✗" }
                }
                None => "",
            };
            format!("{ratio:.2}×{mark}")
        }
        _ => "–".to_owned(),
    }
}

fn fixed(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "–".to_owned(), |value| format!("{value:.decimals$}"))
}

/// `1234567` → `1 234 567`.
fn grouped(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(digit);
    }
    out
}

/// A table of the echo cells with a column per server: `figure` renders a
/// server's medians, and a server without them (or without that figure)
/// shows "–".
fn per_server_table(
    out: &mut String,
    heading: &str,
    echo: &[(Cell, BTreeMap<Contender, Echo>)],
    figure: impl Fn(&Echo) -> Option<String>,
) {
    let _ = writeln!(
        out,
        "\n{heading}\n\n\
         | cell | ws-server | fastwebsockets | tokio-tungstenite | TCP floor |\n\
         |---|---:|---:|---:|---:|"
    );
    let columns = [
        Contender::WsServer,
        Contender::Fastwebsockets,
        Contender::Tungstenite,
        Contender::TcpFloor,
    ];
    for (cell, figures) in echo {
        let cells: Vec<String> = columns
            .iter()
            .map(|server| {
                figures
                    .get(server)
                    .and_then(&figure)
                    .unwrap_or_else(|| "–".to_owned())
            })
            .collect();
        let _ = writeln!(out, "| {} | {} |", cell.label(), cells.join(" | "));
    }
}

/// The report in Markdown.
fn render(header: &str, options: &Options, results: &Results, took: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## Performance\n\n{header}\n");
    if !results.echo.is_empty() {
        let get = |figures: &BTreeMap<Contender, Echo>, server| figures.get(&server).copied();
        let _ = writeln!(
            out,
            "### Echo: server CPU time per message (µs, lower is better)\n\n\
             The server's user+system time over the measured window divided by the messages \
             echoed. Targets: ≤ 0.9× fastwebsockets with 10+ connections (≤ 1.0× with one), \
             ≤ 0.6× tokio-tungstenite with 100+ connections, ≤ 1.1× the TCP floor.\n\n\
             | cell | ws-server | fastwebsockets | tokio-tungstenite | TCP floor | ws / fws | ws / tt | ws / TCP |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|"
        );
        for (cell, figures) in &results.echo {
            let us = |server| get(figures, server).and_then(|e: Echo| e.server_us);
            let fws_target = if cell.connections >= 10 { 0.9 } else { 1.0 };
            let tt_target = (cell.connections >= 100).then_some((0.6, true));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                cell.label(),
                fixed(us(Contender::WsServer), 2),
                fixed(us(Contender::Fastwebsockets), 2),
                fixed(us(Contender::Tungstenite), 2),
                fixed(us(Contender::TcpFloor), 2),
                ratio(
                    us(Contender::WsServer),
                    us(Contender::Fastwebsockets),
                    Some((fws_target, true))
                ),
                ratio(
                    us(Contender::WsServer),
                    us(Contender::Tungstenite),
                    tt_target
                ),
                ratio(
                    us(Contender::WsServer),
                    us(Contender::TcpFloor),
                    Some((1.1, true))
                ),
            );
        }
        per_server_table(
            &mut out,
            "### Echo: server CPU time per message, lowest and highest run (µs)\n\n\
             The spread each median above was taken from. Where two servers' spreads overlap \
             widely, a ratio near 1.0× in either direction is within the machine's noise.",
            &results.echo,
            |e| {
                e.server_us_range
                    .map(|(low, high)| format!("{low:.2}–{high:.2}"))
            },
        );
        let _ = writeln!(
            out,
            "\n### Echo: messages per second (higher is better)\n\n\
             Target: ≥ 1.0× fastwebsockets where the load generator is not the limit (its CPU \
             share is in the last table).\n\n\
             | cell | ws-server | fastwebsockets | tokio-tungstenite | TCP floor | ws / fws | ws / tt |\n\
             |---|---:|---:|---:|---:|---:|---:|"
        );
        for (cell, figures) in &results.echo {
            let rate = |server| get(figures, server).map(|e: Echo| e.msgs_per_sec);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                cell.label(),
                rate(Contender::WsServer).map_or("–".to_owned(), grouped),
                rate(Contender::Fastwebsockets).map_or("–".to_owned(), grouped),
                rate(Contender::Tungstenite).map_or("–".to_owned(), grouped),
                rate(Contender::TcpFloor).map_or("–".to_owned(), grouped),
                ratio(
                    rate(Contender::WsServer),
                    rate(Contender::Fastwebsockets),
                    Some((1.0, false))
                ),
                ratio(
                    rate(Contender::WsServer),
                    rate(Contender::Tungstenite),
                    None
                ),
            );
        }
        per_server_table(
            &mut out,
            "### Echo: latency p50 / p99 (µs)",
            &results.echo,
            |e| Some(format!("{} / {}", fixed(e.p50, 0), fixed(e.p99, 0))),
        );
        per_server_table(
            &mut out,
            "### Load generator CPU (share of one core over the window)\n\n\
             Near 100 % means the load generator, not the server, set the pace.",
            &results.echo,
            |e| {
                e.client_share
                    .map(|share| format!("{:.0} %", share * 100.0))
            },
        );
        let flagged: Vec<String> = results
            .echo
            .iter()
            .flat_map(|(cell, figures)| {
                figures
                    .iter()
                    .filter(|(_, echo)| echo.problems > 0)
                    .map(move |(server, echo)| {
                        format!(
                            "{} {}: {} errors or mismatches",
                            cell.label(),
                            server.name(),
                            echo.problems
                        )
                    })
            })
            .collect();
        if !flagged.is_empty() {
            let _ = writeln!(
                out,
                "\nRuns with errors or mismatches: {}.",
                flagged.join("; ")
            );
        }
    }
    if !results.idle.is_empty() {
        let ours = results
            .idle
            .get(&Contender::WsServer)
            .and_then(|i| i.per_connection);
        let _ = writeln!(
            out,
            "\n### Idle memory: server RSS per connection at {} idle connections\n\n\
             VmRSS before the first connection and with all of them open, the growth divided by \
             the connections. Target: ≤ 1 KiB per connection without deflate.\n\n\
             | server | RSS before | RSS with connections | per connection | ws / server |\n\
             |---|---:|---:|---:|---:|",
            options.idle
        );
        for server in Contender::WEBSOCKET {
            let Some(idle) = results.idle.get(&server) else {
                continue;
            };
            let mib = |bytes: Option<f64>| fixed(bytes.map(|b| b / 1048576.0), 1) + " MiB";
            let per = idle
                .per_connection
                .map_or("–".to_owned(), |bytes| format!("{bytes:.0} B"));
            let per = if server == Contender::WsServer {
                let met = idle.per_connection.is_some_and(|bytes| bytes <= 1024.0);
                format!("{per} {}", if met { "✓" } else { "✗" })
            } else {
                per
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {per} | {} |",
                server.name(),
                mib(idle.before),
                mib(idle.after),
                if server == Contender::WsServer {
                    "–".to_owned()
                } else {
                    ratio(ours, idle.per_connection, None)
                },
            );
        }
    }
    if !results.handshakes.is_empty() {
        let ours = results.handshakes.get(&Contender::WsServer).copied();
        let _ = writeln!(
            out,
            "\n### Handshakes: connect, upgrade, close ({} concurrent loops)\n\n\
             Target: server CPU per handshake ≤ 0.8× fastwebsockets.\n\n\
             | server | handshakes/s | server CPU per handshake (µs) | p50 / p99 (µs) | load generator CPU | ws / server CPU |\n\
             |---|---:|---:|---:|---:|---:|",
            options.handshake_loops
        );
        for server in Contender::WEBSOCKET {
            let Some(figures) = results.handshakes.get(&server) else {
                continue;
            };
            let target = (server == Contender::Fastwebsockets).then_some((0.8, true));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} / {} | {} | {} |",
                server.name(),
                grouped(figures.msgs_per_sec),
                fixed(figures.server_us, 1),
                fixed(figures.p50, 0),
                fixed(figures.p99, 0),
                figures
                    .client_share
                    .map_or("–".to_owned(), |share| format!("{:.0} %", share * 100.0)),
                if server == Contender::WsServer {
                    "–".to_owned()
                } else {
                    ratio(ours.and_then(|o| o.server_us), figures.server_us, target)
                },
            );
        }
    }
    if !results.deflate.is_empty() {
        let _ = writeln!(
            out,
            "\n### permessage-deflate: ws-server with and without it\n\n\
             Same runs as the echo table, ws-server only; `json` is JSON-like text (text \
             messages), `random` incompressible bytes (binary). No context takeover either way \
             (every message compressed on its own). Compression is the wire bytes the client \
             received per payload byte. Targets: server CPU at 1 KiB ≤ 3.0× the plain echo for \
             JSON, ≤ 1.3× for random bytes (sent uncompressed).\n\n\
             | cell | payload | msg/s off | msg/s on | on / off | CPU µs/msg off | CPU µs/msg on | on / off | compression |\n\
             |---|---|---:|---:|---:|---:|---:|---:|---:|"
        );
        for (cell, payload, plain, compressed) in &results.deflate {
            let target = match (cell.size <= 1024, *payload) {
                (true, "json") => Some((3.0, true)),
                (true, _) => Some((1.3, true)),
                (false, _) => None,
            };
            let _ = writeln!(
                out,
                "| {} | {payload} | {} | {} | {} | {} | {} | {} | {} |",
                cell.label(),
                grouped(plain.msgs_per_sec),
                grouped(compressed.msgs_per_sec),
                ratio(
                    Some(compressed.msgs_per_sec),
                    Some(plain.msgs_per_sec),
                    None
                ),
                fixed(plain.server_us, 2),
                fixed(compressed.server_us, 2),
                ratio(compressed.server_us, plain.server_us, target),
                fixed(compressed.compression, 3),
            );
        }
    }
    if let Some((plain, compressed)) = &results.deflate_idle {
        let mib = |bytes: Option<f64>| fixed(bytes.map(|b| b / 1048576.0), 1) + " MiB";
        let per = |idle: &Idle| {
            idle.per_connection
                .map_or("–".to_owned(), |bytes| format!("{bytes:.0} B"))
        };
        // Above the idle cost without deflate: the idle table's, where it ran
        // (no message exchanged), else this table's.
        let baseline = results
            .idle
            .get(&Contender::WsServer)
            .and_then(|idle| idle.per_connection)
            .or(plain.per_connection);
        let extra = compressed
            .per_connection
            .zip(baseline)
            .map(|(on, off)| on - off);
        let mark = |met: bool| if met { "✓" } else { "✗" };
        let _ = writeln!(
            out,
            "\n### permessage-deflate: idle memory after one message ({} connections)\n\n\
             ws-server with its defaults; each connection offers what browsers offer \
             (`permessage-deflate; client_max_window_bits`) or nothing, echoes one {} JSON text \
             message, then idles. Targets with deflate: ≤ 2 KiB per connection, ≤ 0.25 KiB above \
             the same without deflate, and under 64 MiB of server RSS for 10,000 \
             connections.\n\n\
             | deflate | RSS before | RSS with connections | per connection |\n\
             |---|---:|---:|---:|\n\
             | off | {} | {} | {} |\n\
             | on | {} | {} {} | {} {} |\n\n\
             With deflate, {} per connection above the idle cost without it (the idle table's \
             ws-server figure, no message exchanged, when it ran) {}.",
            options.idle,
            size_label(DEFLATE_IDLE_MESSAGE),
            mib(plain.before),
            mib(plain.after),
            per(plain),
            mib(compressed.before),
            mib(compressed.after),
            if options.idle >= 10_000 {
                mark(compressed.after.is_some_and(|rss| rss < 64.0 * 1048576.0))
            } else {
                ""
            },
            per(compressed),
            mark(
                compressed
                    .per_connection
                    .is_some_and(|bytes| bytes <= 2048.0)
            ),
            extra.map_or("–".to_owned(), |bytes| format!("{bytes:.0} B")),
            mark(extra.is_some_and(|bytes| bytes <= 256.0)),
        );
    }
    let _ = writeln!(out, "\nThe whole run took {:.0} s.", took.as_secs_f64());
    if !results.failures.is_empty() {
        let _ = writeln!(out, "\nFailed runs:\n");
        for failure in &results.failures {
            let _ = writeln!(out, "- {}", process::one_line(failure));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|&arg| arg.to_owned()).collect()
    }

    #[test]
    fn each_round_starts_with_the_next_server() {
        let servers = ['a', 'b', 'c'];
        let order = |round| in_turn(&servers, round).collect::<String>();
        assert_eq!(
            [order(1), order(2), order(3), order(4)],
            ["abc", "bca", "cab", "abc"]
        );
        assert_eq!(in_turn::<char>(&[], 2).count(), 0);
    }

    #[test]
    fn defaults_run_the_whole_matrix_three_rounds() {
        let options = Options::parse(&[]).unwrap().unwrap();
        assert_eq!(options.rounds, 3);
        assert_eq!(options.cells, MATRIX.to_vec());
        assert_eq!(options.idle, 10_000);
        assert!(!options.deflate);
    }

    #[test]
    fn quick_is_one_short_round_unless_overridden() {
        let options = Options::parse(&args(&["--quick"])).unwrap().unwrap();
        assert_eq!((options.rounds, options.duration), (1, 2.0));
        let options = Options::parse(&args(&["--quick", "--rounds", "2", "--duration", "3s"]))
            .unwrap()
            .unwrap();
        assert_eq!((options.rounds, options.duration), (2, 3.0));
    }

    #[test]
    fn cells_parse_with_size_suffixes() {
        assert_eq!(
            parse_cells("100x20, 10x16KiB,1X0,500×16k,2x7B").unwrap(),
            [
                Cell::new(100, 20),
                Cell::new(10, 16384),
                Cell::new(1, 0),
                Cell::new(500, 16384),
                Cell::new(2, 7)
            ]
        );
        assert!(parse_cells("100").is_err());
        assert!(parse_cells("0x20").is_err());
        assert!(parse_cells("10xlots").is_err());
        assert!(parse_cells(",").is_err());
    }

    #[test]
    fn unknown_options_and_bad_values_are_refused() {
        assert!(Options::parse(&args(&["--fast"])).is_err());
        assert!(Options::parse(&args(&["--rounds"])).is_err());
        assert!(Options::parse(&args(&["--rounds", "0"])).is_err());
        assert!(Options::parse(&args(&["--duration", "0"])).is_err());
        assert_eq!(Options::parse(&args(&["--help"])).unwrap(), None);
    }

    #[test]
    fn median_takes_the_middle_or_the_mean_of_the_two_middles() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0]), Some(3.0));
        assert_eq!(median(vec![9.0, 1.0, 5.0]), Some(5.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(vec![f64::NAN, 2.0]), Some(2.0));
    }

    #[test]
    fn echo_figures_come_from_the_load_generator_json() {
        let json: Value = serde_json::from_str(
            r#"{"msgs_per_sec":1000.0,"server_cpu_us_per_message":2.5,
                "latency_us":{"p50":40.0,"p99":90.0},"client_cpu_seconds":2.0,
                "duration_s":4.0,"errors":1,"mismatches":2,"compression_ratio":null}"#,
        )
        .unwrap();
        let echo = Echo::from_json(&json);
        assert_eq!(echo.msgs_per_sec, 1000.0);
        assert_eq!(echo.server_us, Some(2.5));
        assert_eq!((echo.p50, echo.p99), (Some(40.0), Some(90.0)));
        assert_eq!(echo.client_share, Some(0.5));
        assert_eq!(echo.compression, None);
        assert_eq!(echo.problems, 3);
    }

    #[test]
    fn medians_are_taken_per_figure() {
        let run = |rate, us| Echo {
            msgs_per_sec: rate,
            server_us: Some(us),
            ..Echo::default()
        };
        let median = Echo::median_of(&[run(100.0, 3.0), run(300.0, 1.0), run(200.0, 2.0)]);
        assert_eq!(median.msgs_per_sec, 200.0);
        assert_eq!(median.server_us, Some(2.0));
    }

    #[test]
    fn the_median_keeps_the_lowest_and_highest_server_cpu_of_its_runs() {
        let run = |us| Echo::from_json(&serde_json::json!({ "server_cpu_us_per_message": us }));
        assert_eq!(run(2.5).server_us_range, Some((2.5, 2.5)));
        let median = Echo::median_of(&[run(3.0), run(1.5), run(2.0), Echo::default()]);
        assert_eq!(median.server_us_range, Some((1.5, 3.0)));
        assert_eq!(Echo::median_of(&[Echo::default()]).server_us_range, None);
    }

    #[test]
    fn ratios_mark_targets() {
        assert_eq!(ratio(Some(0.8), Some(1.0), Some((0.9, true))), "0.80× ✓");
        assert_eq!(ratio(Some(1.0), Some(1.0), Some((0.9, true))), "1.00× ✗");
        assert_eq!(ratio(Some(1.2), Some(1.0), Some((1.0, false))), "1.20× ✓");
        assert_eq!(ratio(Some(1.0), Some(2.0), None), "0.50×");
        assert_eq!(ratio(None, Some(2.0), None), "–");
        assert_eq!(ratio(Some(1.0), Some(0.0), None), "–");
    }

    #[test]
    fn the_tcp_floor_skips_empty_payloads() {
        assert!(!servers_for(Cell::new(100, 0)).contains(&Contender::TcpFloor));
        assert!(servers_for(Cell::new(100, 20)).contains(&Contender::TcpFloor));
    }

    #[test]
    fn locked_versions_are_read_from_cargo_lock() {
        let lock = "[[package]]\nname = \"fastwebsockets\"\nversion = \"0.10.0\"\n";
        assert_eq!(
            locked_version(lock, "fastwebsockets").as_deref(),
            Some("0.10.0")
        );
        assert_eq!(locked_version(lock, "hyper"), None);
    }

    #[test]
    fn report_has_a_row_per_cell_and_ratios() {
        let mut figures = BTreeMap::new();
        figures.insert(
            Contender::WsServer,
            Echo {
                msgs_per_sec: 1000.0,
                server_us: Some(1.0),
                server_us_range: Some((0.9, 1.35)),
                ..Echo::default()
            },
        );
        figures.insert(
            Contender::Fastwebsockets,
            Echo {
                msgs_per_sec: 900.0,
                server_us: Some(2.0),
                ..Echo::default()
            },
        );
        let results = Results {
            echo: vec![(Cell::new(100, 20), figures)],
            ..Results::default()
        };
        let options = Options::parse(&[]).unwrap().unwrap();
        let report = render("Date: today.", &options, &results, Duration::from_secs(5));
        assert!(
            report.contains("| 100 × 20 B | 1.00 | 2.00 | – | – | 0.50× ✓ | – | – |"),
            "{report}"
        );
        assert!(
            report.contains("| 100 × 20 B | 1 000 | 900 | – | – | 1.11× ✓ | – |"),
            "{report}"
        );
        assert!(
            report.contains("| 100 × 20 B | 0.90–1.35 | – | – | – |"),
            "{report}"
        );
        assert!(
            report.starts_with("## Performance\n\nDate: today."),
            "{report}"
        );
    }

    #[test]
    fn deflate_idle_memory_is_judged_against_the_idle_cost_without_deflate() {
        let idle = |after: f64, per_connection: f64| Idle {
            open: 10_000.0,
            before: Some(4.0 * 1048576.0),
            after: Some(after * 1048576.0),
            per_connection: Some(per_connection),
        };
        let mut results = Results {
            deflate_idle: Some((idle(28.0, 2500.0), idle(23.0, 1950.0))),
            ..Results::default()
        };
        results.idle.insert(Contender::WsServer, idle(21.0, 1800.0));
        let options = Options::parse(&[]).unwrap().unwrap();
        let report = render("Date: today.", &options, &results, Duration::from_secs(5));
        assert!(
            report.contains("| on | 4.0 MiB | 23.0 MiB ✓ | 1950 B ✓ |"),
            "{report}"
        );
        assert!(report.contains("150 B per connection above"), "{report}");
        assert!(report.contains("when it ran) ✓."), "{report}");
    }

    #[test]
    fn sizes_are_labelled_in_bytes_or_kib() {
        assert_eq!(Cell::new(10, 16384).label(), "10 × 16 KiB");
        assert_eq!(Cell::new(100, 0).label(), "100 × 0 B");
        assert_eq!(Cell::new(1, 20).label(), "1 × 20 B");
    }
}
