//! `cargo xtask autobahn`: the Autobahn|Testsuite as a regression gate.
//!
//! The suite's fuzzingclient tests the release `ws-server`, and its
//! fuzzingserver tests the release `ws-client --echo`, one process per case as
//! the suite's client protocol asks (`getCaseCount`, `runCase?case=i` for each
//! case, `updateReports`). Each case's `behavior` and `behaviorClose` are then
//! compared with the committed expectation files ([`compare`]); any
//! difference, better or worse, fails the run and is listed. The two sides
//! run side by side: on 2 cores that takes about as long as the slower one
//! alone (all 517 cases: about 4.5 min for the server, 5 min for the client).
//!
//! The suite is the Python 3 port in `../shared/autobahn` beside the checkout
//! (or `$XTASK_AUTOBAHN_DIR`), driven through its `run-server-cases.sh` and
//! `run-client-cases.sh` with its virtualenv under `target/`. With `--docker`
//! it is the pinned `crossbario/autobahn-testsuite` image instead ([`docker`]).
//!
//! With `--http2` the fuzzingclient reaches ws-server through [`h2relay`]:
//! each of its WebSockets is an extended CONNECT stream (RFC 8441) on one
//! shared HTTP/2 connection, the frames passing unchanged, so the verdicts
//! are compared with the direct run's expectation file.

mod compare;
mod docker;
mod h2relay;

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};

use self::compare::{Difference, Selection, Verdicts};
use crate::e2e;
use crate::process::{self, Guarded};
use crate::workspace::Workspace;

const USAGE: &str = "usage: cargo xtask autobahn [--server] [--client] [--cases PATTERNS | --full]
                            [--update-expected] [--docker]
       cargo xtask autobahn --http2 [--cases PATTERNS]

Runs the Autobahn|Testsuite against the release ws-server (fuzzingclient) and
ws-client --echo (fuzzingserver) and compares every case's behavior and
behaviorClose with xtask/autobahn/expected-server.json and expected-client.json.
Any difference fails the run and is listed, old and new verdict side by side.
The two sides run at the same time (about 5 minutes for all cases).

  --server           only the server side    (default: both sides)
  --client           only the client side
  --cases PATTERNS   comma-separated case patterns as in the suite's spec, e.g.
                     '6.*,7.1.6'; cases outside them are not compared
  --full             all 517 cases (the default, and what `cargo xtask ci` runs)
  --update-expected  rewrite the expectation files' entries of the selected
                     cases with this run's verdicts instead of comparing
                     (refused when a selected case did not run)
  --docker           run the suite from the docker image crossbario/autobahn-
                     testsuite:25.10.1 instead of the Python port
  --http2            the server side over HTTP/2: a relay in xtask carries each
                     of the suite's HTTP/1.1 WebSockets over its own extended
                     CONNECT stream on one HTTP/2 connection to ws-server
                     (bytes unchanged); sections 1-10 and 12-13 (all there
                     are: the suite has no 8 or 11) by default, compared with
                     expected-server.json (about 5 minutes; not part of ci)

Reports (index.html, one page per case): target/autobahn/{server,client}/.

environment:
  XTASK_AUTOBAHN_DIR         the Python port (default ../shared/autobahn
                             beside the checkout)
  XTASK_AUTOBAHN=docker      lets `cargo xtask ci` skip this step when the
                             Python port is absent, because a docker job runs it
  AUTOBAHN_TIMEOUT           seconds one side may take in all (default 900)
  AUTOBAHN_CASE_TIMEOUT_CAP  seconds one case may wait for a peer that stopped
                             answering (default 60; the suite's own waits go
                             up to 1000 s; the docker image's suite has no cap)";

/// The cases a run covers without `--cases`, CI's run among them.
const DEFAULT_CASES: &str = "*";
/// The cases `--http2` covers without `--cases`: issue #18's sections 1-10
/// and 12-13, which are all of the suite's (it has no section 8 or 11).
const HTTP2_CASES: &str = "1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*,12.*,13.*";

/// Default of `AUTOBAHN_TIMEOUT`: about three times a full side's run on a
/// busy 2-core machine.
const DEFAULT_TOTAL_SECS: u64 = 900;
/// Default of `AUTOBAHN_CASE_TIMEOUT_CAP`.
const DEFAULT_CASE_CAP_SECS: u64 = 60;
/// Past the suite's own limits: its reports are written after a timeout.
const MARGIN: Duration = Duration::from_secs(120);
/// Creating the virtualenv and installing the pinned packages.
const SETUP_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// How long the fuzzingserver may take to listen.
const FUZZINGSERVER_START: Duration = Duration::from_secs(120);
/// `getCaseCount` and `updateReports`.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(120);

/// Which implementation a side tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// ws-server, tested by the fuzzingclient.
    Server,
    /// ws-client, tested by the fuzzingserver.
    Client,
}

impl Side {
    /// `server` or `client`, as in the options and the file names.
    fn name(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Client => "client",
        }
    }

    /// The agent name the reports carry.
    fn agent(self) -> &'static str {
        match self {
            Self::Server => "ws-server",
            Self::Client => "ws-client",
        }
    }

    /// The committed expectation file, relative to the workspace root.
    fn expected_file(self) -> String {
        format!("xtask/autobahn/expected-{}.json", self.name())
    }
}

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Options {
    sides: Vec<Side>,
    selection: Selection,
    update: bool,
    docker: bool,
    /// The server side through the HTTP/2 relay.
    http2: bool,
}

/// Reads the command line; `--help` prints the usage and exits.
fn parse_options(args: &[String]) -> Result<Options> {
    let (mut server, mut client, mut update, mut docker, mut full, mut http2) =
        (false, false, false, false, false, false);
    let mut cases = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--server" => server = true,
            "--client" => client = true,
            "--full" => full = true,
            "--update-expected" => update = true,
            "--docker" => docker = true,
            "--http2" => http2 = true,
            "--cases" => {
                let patterns = args.next().context("--cases needs PATTERNS")?;
                cases = Some(Selection::parse(patterns)?);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown option `{other}`\n\n{USAGE}"),
        }
    }
    let selection = match (cases, full) {
        (Some(_), true) => bail!("--cases and --full exclude each other"),
        (Some(selection), false) => selection,
        (None, true) => Selection::all(),
        (None, false) if http2 => Selection::parse(HTTP2_CASES)?,
        (None, false) => Selection::parse(DEFAULT_CASES)?,
    };
    if http2 {
        ensure!(
            !client,
            "--http2 tests the server side only (ws-client's HTTP/2 is not under the suite)"
        );
        ensure!(
            !update,
            "--http2 compares with the direct run's expectations; it does not write them"
        );
        ensure!(!docker, "--http2 runs the Python port only, not --docker");
        server = true;
    }
    let sides = match (server, client) {
        (true, false) => vec![Side::Server],
        (false, true) => vec![Side::Client],
        _ => vec![Side::Server, Side::Client],
    };
    Ok(Options {
        sides,
        selection,
        update,
        docker,
        http2,
    })
}

/// `cargo xtask autobahn [OPTIONS]`.
pub fn run(workspace: &Workspace, args: &[String]) -> Result<()> {
    let options = parse_options(args)?;
    let runner = if options.docker {
        Runner::Docker
    } else {
        let dir = suite_dir(workspace);
        ensure!(
            is_suite(&dir),
            "the Autobahn|Testsuite port is not at {} (set XTASK_AUTOBAHN_DIR, or use --docker)",
            dir.display()
        );
        Runner::Local(dir)
    };
    run_options(workspace, &options, &runner)
}

/// The step of `cargo xtask ci`: the default run, skipped only where the
/// Python port is absent and `XTASK_AUTOBAHN=docker` says that a docker job
/// runs the suite instead.
pub fn ci(workspace: &Workspace) -> Result<()> {
    let dir = suite_dir(workspace);
    let mode = std::env::var("XTASK_AUTOBAHN").ok();
    match ci_plan(&dir, is_suite(&dir), mode.as_deref())? {
        CiPlan::Run => run(workspace, &[]),
        CiPlan::Skip(why) => {
            eprintln!("xtask autobahn: skipped: {why}");
            Ok(())
        }
    }
}

/// What `cargo xtask ci` does about the suite.
#[derive(Debug, PartialEq, Eq)]
enum CiPlan {
    /// Run it with the Python port.
    Run,
    /// Skip it, for the reason given.
    Skip(String),
}

/// Decides the CI step from whether the port is `present` at `dir` and the
/// value of `XTASK_AUTOBAHN` (`mode`).
fn ci_plan(dir: &Path, present: bool, mode: Option<&str>) -> Result<CiPlan> {
    match mode {
        None | Some("" | "docker") => {}
        Some(other) => bail!("XTASK_AUTOBAHN={other:?}: the only value is `docker`"),
    }
    if present {
        Ok(CiPlan::Run)
    } else if mode == Some("docker") {
        Ok(CiPlan::Skip(format!(
            "{} is absent and XTASK_AUTOBAHN=docker: the workflow's docker job \
             (cargo xtask autobahn --docker) runs the suite",
            dir.display()
        )))
    } else {
        bail!(
            "the Autobahn|Testsuite port is not at {} (set XTASK_AUTOBAHN_DIR to it; \
             where a docker job runs `cargo xtask autobahn --docker` instead, set \
             XTASK_AUTOBAHN=docker)",
            dir.display()
        )
    }
}

/// `$XTASK_AUTOBAHN_DIR`, or `shared/autobahn` beside the checkout.
fn suite_dir(workspace: &Workspace) -> PathBuf {
    std::env::var_os("XTASK_AUTOBAHN_DIR").map_or_else(
        || workspace.root.join("..").join("shared").join("autobahn"),
        PathBuf::from,
    )
}

/// Whether `dir` holds the port's scripts.
fn is_suite(dir: &Path) -> bool {
    ["setup.sh", "run-server-cases.sh", "run-client-cases.sh"]
        .iter()
        .all(|script| dir.join(script).is_file())
}

/// Where the suite comes from.
#[derive(Debug)]
enum Runner {
    /// The Python port in this directory.
    Local(PathBuf),
    /// The docker image.
    Docker,
}

/// How long the suite may take: `AUTOBAHN_TIMEOUT` for a side in all and
/// `AUTOBAHN_CASE_TIMEOUT_CAP` for one case's wait.
#[derive(Debug, Clone, Copy)]
struct Limits {
    total: Duration,
    case_cap: Duration,
}

impl Limits {
    /// The limits from the environment, or their defaults.
    fn from_env() -> Result<Self> {
        let seconds = |name: &str, default: u64| -> Result<Duration> {
            match std::env::var(name) {
                Ok(value) => value
                    .trim()
                    .parse()
                    .map(Duration::from_secs)
                    .with_context(|| format!("{name}={value:?} is not a number of seconds")),
                Err(_) => Ok(Duration::from_secs(default)),
            }
        };
        Ok(Self {
            total: seconds("AUTOBAHN_TIMEOUT", DEFAULT_TOTAL_SECS)?,
            case_cap: seconds("AUTOBAHN_CASE_TIMEOUT_CAP", DEFAULT_CASE_CAP_SECS)?,
        })
    }

    /// The environment of the run scripts.
    fn apply(&self, command: &mut Command, venv: &Path) {
        command
            .env("AUTOBAHN_VENV", venv)
            .env("AUTOBAHN_TIMEOUT", self.total.as_secs().to_string())
            .env(
                "AUTOBAHN_CASE_TIMEOUT_CAP",
                self.case_cap.as_secs().to_string(),
            );
    }
}

/// Everything one side's run needs.
struct Run<'a> {
    workspace: &'a Workspace,
    runner: &'a Runner,
    selection: &'a Selection,
    limits: Limits,
    venv: PathBuf,
    /// `target/autobahn`: the report directories are `server/` and `client/`
    /// (`server-h2/` with `--http2`).
    reports: PathBuf,
    /// The server side through the HTTP/2 relay.
    http2: bool,
}

/// Builds the binaries, runs the sides and compares (or updates) each.
fn run_options(workspace: &Workspace, options: &Options, runner: &Runner) -> Result<()> {
    workspace.build_release_binaries()?;
    let run = Run {
        workspace,
        runner,
        selection: &options.selection,
        limits: Limits::from_env()?,
        venv: workspace.target.join("autobahn-venv"),
        reports: workspace.target.join("autobahn"),
        http2: options.http2,
    };
    if let Runner::Local(dir) = runner {
        setup(dir, &run.venv)?;
    }
    let outcomes = run.sides(&options.sides);
    let mut failures = Vec::new();
    for (side, outcome, took) in outcomes {
        let verdicts = outcome.with_context(|| format!("{} side", side.name()))?;
        eprintln!(
            "xtask autobahn: {} {}: {} in {} s; report: {}",
            run.label(side),
            side.agent(),
            compare::summary(&verdicts),
            took.as_secs(),
            run.report_dir(side).join("index.html").display()
        );
        let file = workspace.path(side.expected_file());
        let outcome = if options.update {
            update_expected(&file, side, &verdicts, &options.selection)
        } else {
            check_expected(&file, side, &verdicts, &options.selection)
        };
        if let Err(error) = outcome {
            eprintln!("xtask autobahn: {} side: {error:#}", side.name());
            failures.push(side.name());
        }
    }
    if failures.is_empty() {
        Ok(())
    } else if options.http2 {
        bail!(
            "through the HTTP/2 relay, the server side's Autobahn results differ from the \
             direct run's expectations (listed above): the relay passes the frames unchanged, \
             so the difference is ws-server's over HTTP/2 (or the relay's)"
        )
    } else if options.update {
        bail!(
            "the expectation file of the {} side was not written (see above)",
            failures.join(" and ")
        )
    } else {
        bail!(
            "the {} side's Autobahn results differ from the expectation files (listed above); \
             if the change is deliberate, rewrite them with `cargo xtask autobahn {}--update-expected`",
            failures.join(" and "),
            rerun_args(options)
        )
    }
}

/// The options that select the same run, for a hint.
fn rerun_args(options: &Options) -> String {
    let mut args = String::new();
    if let [side] = options.sides.as_slice() {
        args.push_str(&format!("--{} ", side.name()));
    }
    if Selection::parse(DEFAULT_CASES).ok().as_ref() != Some(&options.selection) {
        args.push_str(&format!("--cases '{}' ", options.selection.to_arg()));
    }
    if options.docker {
        args.push_str("--docker ");
    }
    if options.http2 {
        args.push_str("--http2 ");
    }
    args
}

/// Compares a run with the expectation file; an error lists the differences.
fn check_expected(file: &Path, side: Side, actual: &Verdicts, selection: &Selection) -> Result<()> {
    let shown = side.expected_file();
    ensure!(
        file.exists(),
        "{shown} does not exist; write it from a run with --update-expected"
    );
    let expected = compare::read_expected(file)?;
    let differences = compare::compare(&expected, actual, selection);
    if differences.is_empty() {
        eprintln!(
            "xtask autobahn: {} side matches {shown} ({} cases compared)",
            side.name(),
            actual.len()
        );
        return Ok(());
    }
    bail!(
        "{} case(s) differ from {shown}:\n{}",
        differences.len(),
        compare::render_differences(&differences).trim_end()
    )
}

/// Rewrites the selected cases' entries of the expectation file.
fn update_expected(
    file: &Path,
    side: Side,
    actual: &Verdicts,
    selection: &Selection,
) -> Result<()> {
    let expected = if file.exists() {
        compare::read_expected(file)?
    } else {
        Verdicts::new()
    };
    let differences = compare::compare(&expected, actual, selection);
    let missing: Vec<String> = differences
        .iter()
        .filter_map(|difference| match difference {
            Difference::Missing { case, .. } => Some(case.to_string()),
            _ => None,
        })
        .collect();
    ensure!(
        missing.is_empty(),
        "not writing {}: {} selected case(s) did not run: {}",
        side.expected_file(),
        missing.len(),
        missing.join(" ")
    );
    let merged = compare::updated(&expected, actual, selection);
    compare::write_expected(file, &merged)?;
    let changes = if expected.is_empty() {
        format!("a new file of {} cases", merged.len())
    } else if differences.is_empty() {
        "no case changed".to_owned()
    } else {
        format!(
            "{} case(s) changed:\n{}",
            differences.len(),
            compare::render_differences(&differences).trim_end()
        )
    };
    eprintln!("xtask autobahn: wrote {}: {changes}", side.expected_file());
    Ok(())
}

/// Creates the suite's virtualenv (a no-op once it is up to date).
fn setup(dir: &Path, venv: &Path) -> Result<()> {
    eprintln!("xtask autobahn: {}/setup.sh", dir.display());
    let mut command = Command::new(dir.join("setup.sh"));
    command
        .env("AUTOBAHN_VENV", venv)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    let status = process::status_within(&mut command, SETUP_TIMEOUT)?;
    ensure!(status.success(), "setup.sh failed ({status})");
    Ok(())
}

impl Run<'_> {
    /// Runs `sides` side by side (the two together take little more wall
    /// time than the slower alone: each is mostly the suite's own waits and
    /// one Python process), each with its duration.
    fn sides(&self, sides: &[Side]) -> Vec<(Side, Result<Verdicts>, Duration)> {
        std::thread::scope(|scope| {
            let runs: Vec<_> = sides
                .iter()
                .map(|&side| {
                    scope.spawn(move || {
                        let started = Instant::now();
                        let outcome = self.side(side);
                        (side, outcome, started.elapsed())
                    })
                })
                .collect();
            runs.into_iter()
                .zip(sides)
                .map(|(run, &side)| {
                    run.join().unwrap_or_else(|_| {
                        (side, Err(anyhow!("the run panicked")), Duration::ZERO)
                    })
                })
                .collect()
        })
    }

    /// `target/autobahn/server` or `target/autobahn/client`
    /// (`target/autobahn/server-h2` through the relay).
    fn report_dir(&self, side: Side) -> PathBuf {
        self.reports.join(self.label(side))
    }

    /// The side's name in the output: `server-h2` through the relay.
    fn label(&self, side: Side) -> String {
        if self.http2 && side == Side::Server {
            "server-h2".to_owned()
        } else {
            side.name().to_owned()
        }
    }

    /// Runs one side into a fresh report directory and reads its verdicts.
    fn side(&self, side: Side) -> Result<Verdicts> {
        let dir = self.report_dir(side);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("could not clear {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("could not create {}", dir.display()))?;
        eprintln!(
            "xtask autobahn: {} side ({}), cases {}, log {}",
            self.label(side),
            match self.runner {
                Runner::Local(_) if self.http2 => {
                    "Python port, through the HTTP/2 relay"
                }
                Runner::Local(_) => "Python port",
                Runner::Docker => docker::IMAGE,
            },
            self.selection.to_arg(),
            dir.join("run.log").display()
        );
        match side {
            Side::Server => self.server(&dir)?,
            Side::Client => self.client(&dir)?,
        }
        compare::read_report(&dir, side.agent())
    }

    /// The fuzzingclient against a fresh release ws-server.
    fn server(&self, dir: &Path) -> Result<()> {
        let binary = self.workspace.release_binary("ws-server");
        let server = e2e::start_ws_server_binary(&binary, &["--log-level", "warn"])?;
        let relay = if self.http2 {
            let upstream = ws_address(server.url())?;
            Some(h2relay::Relay::start(upstream).context("the HTTP/2 relay")?)
        } else {
            None
        };
        let url = relay
            .as_ref()
            .map_or_else(|| server.url().to_owned(), h2relay::Relay::url);
        let mut command = match self.runner {
            Runner::Local(suite) => {
                let mut command = Command::new(suite.join("run-server-cases.sh"));
                command
                    .args(["--agent", Side::Server.agent(), &url])
                    .arg(self.selection.to_arg())
                    .arg(dir);
                self.limits.apply(&mut command, &self.venv);
                command
            }
            Runner::Docker => {
                let config = self.reports.join("docker-config");
                let spec = docker::fuzzingclient_spec(
                    server.url(),
                    Side::Server.agent(),
                    self.selection,
                    Side::Server.name(),
                );
                docker::write_spec(&config, "fuzzingclient.json", &spec)?;
                docker::wstest_command(
                    &config,
                    &self.reports,
                    "fuzzingclient",
                    "fuzzingclient.json",
                    None,
                )
            }
        };
        let log = dir.join("run.log");
        let log_file =
            File::create(&log).with_context(|| format!("could not create {}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                log_file.try_clone().context("could not share the log")?,
            ))
            .stderr(Stdio::from(log_file));
        // The script exits 1 when a case failed: the comparison judges that.
        let status = process::status_within(&mut command, self.limits.total + MARGIN)?;
        if let Some(relay) = relay {
            eprintln!("xtask autobahn: relay: {}", relay.summary());
            relay.stop()?;
        }
        ensure!(
            status.code().is_some_and(|code| code <= 1),
            "the fuzzingclient failed ({status}); its log: {}",
            process::log_tail(&log)
        );
        e2e::stop_ws_server(server).context("ws-server after the suite")
    }

    /// The fuzzingserver, and ws-client --echo once per case.
    fn client(&self, dir: &Path) -> Result<()> {
        let port = process::free_port()?;
        let url = format!("ws://127.0.0.1:{port}");
        let log = dir.join("run.log");
        let mut fuzzingserver = match self.runner {
            Runner::Local(suite) => {
                let mut command = Command::new(suite.join("run-client-cases.sh"));
                command
                    .args(["--port", &port.to_string()])
                    .arg(self.selection.to_arg())
                    .arg(dir);
                self.limits.apply(&mut command, &self.venv);
                process::start_listening(
                    "run-client-cases.sh",
                    &mut command,
                    port,
                    &log,
                    FUZZINGSERVER_START,
                )?
            }
            Runner::Docker => {
                let config = self.reports.join("docker-config");
                let spec = docker::fuzzingserver_spec(&url, self.selection, Side::Client.name());
                docker::write_spec(&config, "fuzzingserver.json", &spec)?;
                let mut command = docker::wstest_command(
                    &config,
                    &self.reports,
                    "fuzzingserver",
                    "fuzzingserver.json",
                    Some(docker::FUZZINGSERVER_CONTAINER),
                );
                process::start_listening("docker", &mut command, port, &log, FUZZINGSERVER_START)?
            }
        };
        let client = self.workspace.release_binary("ws-client");
        let deadline = Instant::now() + self.limits.total;
        let per_case = self.limits.case_cap + Duration::from_secs(30);
        let driven = drive_client(
            &client,
            &url,
            deadline,
            per_case,
            &dir.join("ws-client.log"),
        );
        let stopped = stop_fuzzingserver(self.runner, &mut fuzzingserver);
        driven?;
        stopped
    }
}

/// The address of a `ws://HOST:PORT` URL.
fn ws_address(url: &str) -> Result<std::net::SocketAddr> {
    url.strip_prefix("ws://")
        .and_then(|rest| rest.trim_end_matches('/').parse().ok())
        .with_context(|| format!("{url:?} is not ws://IP:PORT"))
}

/// Ends the fuzzingserver once the reports are written: the run script on
/// SIGTERM stops the suite and prints its summary.
fn stop_fuzzingserver(runner: &Runner, fuzzingserver: &mut Guarded) -> Result<()> {
    match runner {
        Runner::Local(_) => fuzzingserver.terminate()?,
        Runner::Docker => docker::stop_fuzzingserver()?,
    }
    ensure!(
        fuzzingserver.wait_timeout(MARGIN)?.is_some(),
        "the fuzzingserver did not exit within {} s",
        MARGIN.as_secs()
    );
    Ok(())
}

/// Plays the suite's client protocol against the fuzzingserver at `base`:
/// asks for the number of cases, runs `ws-client --echo` once per case, then
/// has the reports written. A case's exit status is not judged here (the
/// suite's verdict is); its stderr goes to `log`.
fn drive_client(
    client: &Path,
    base: &str,
    deadline: Instant,
    per_case: Duration,
    log: &Path,
) -> Result<()> {
    let left = || deadline.saturating_duration_since(Instant::now());
    let control = |path: &str| -> Result<String> {
        let mut command = Command::new(client);
        command.arg(format!("{base}/{path}")).args(["--echo", "-q"]);
        let output = process::run(&mut command, None, CONTROL_TIMEOUT.min(left()))?;
        ensure!(
            output.status.success(),
            "`ws-client {base}/{path} --echo` failed: {}",
            output.describe()
        );
        Ok(output.stdout_text())
    };
    let answer = control("getCaseCount")?;
    let count: usize = answer
        .trim()
        .parse()
        .with_context(|| format!("getCaseCount answered {answer:?}, not a number"))?;
    let mut log_file =
        File::create(log).with_context(|| format!("could not create {}", log.display()))?;
    for case in 1..=count {
        let timeout = left().min(per_case);
        ensure!(
            !timeout.is_zero(),
            "AUTOBAHN_TIMEOUT ran out after {} of {count} cases",
            case - 1
        );
        writeln!(log_file, "runCase {case}").context("could not write the driver's log")?;
        let url = format!("{base}/runCase?case={case}&agent={}", Side::Client.agent());
        let mut command = Command::new(client);
        command
            .arg(&url)
            .args(["--echo", "-q"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                log_file.try_clone().context("could not share the log")?,
            ));
        process::status_within(&mut command, timeout)
            .with_context(|| format!("case {case} of {count}"))?;
    }
    control(&format!("updateReports?agent={}", Side::Client.agent()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(args: &[&str]) -> Result<Options> {
        let args: Vec<String> = args.iter().map(|&arg| arg.to_owned()).collect();
        parse_options(&args)
    }

    #[test]
    fn both_sides_and_the_default_cases_without_options() {
        let parsed = options(&[]).unwrap();
        assert_eq!(parsed.sides, [Side::Server, Side::Client]);
        assert_eq!(parsed.selection, Selection::parse(DEFAULT_CASES).unwrap());
        assert!(!parsed.update && !parsed.docker && !parsed.http2);
    }

    #[test]
    fn http2_runs_the_server_side_over_its_sections() {
        let parsed = options(&["--http2"]).unwrap();
        assert_eq!(parsed.sides, [Side::Server]);
        assert!(parsed.http2);
        assert_eq!(parsed.selection, Selection::parse(HTTP2_CASES).unwrap());
        assert_eq!(
            rerun_args(&parsed),
            "--server --cases '1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*,12.*,13.*' --http2 "
        );
        let subset = options(&["--http2", "--cases", "1.*"]).unwrap();
        assert_eq!(subset.selection.patterns(), ["1.*"]);
        assert!(options(&["--http2", "--client"]).is_err());
        assert!(options(&["--http2", "--update-expected"]).is_err());
        assert!(options(&["--http2", "--docker"]).is_err());
    }

    #[test]
    fn http2_sections_are_every_case_of_the_direct_run() {
        // Sections 1-10 and 12-13 are all the suite has: no 8, no 11.
        let expected = compare::read_expected(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("autobahn/expected-server.json"),
        )
        .unwrap();
        let sections = Selection::parse(HTTP2_CASES).unwrap();
        assert_eq!(expected.len(), 517);
        assert!(expected.keys().all(|case| sections.covers(case)));
        let sections: std::collections::BTreeSet<String> = expected
            .keys()
            .map(|case| case.to_string().split('.').next().unwrap_or("").to_owned())
            .collect();
        assert!(
            !sections.contains("8") && !sections.contains("11"),
            "{sections:?}"
        );
    }

    #[test]
    fn the_relay_connects_to_the_servers_address() {
        assert_eq!(
            ws_address("ws://127.0.0.1:9001").unwrap(),
            "127.0.0.1:9001".parse().unwrap()
        );
        assert!(ws_address("http://127.0.0.1:9001").is_err());
        assert!(ws_address("ws://localhost:9001").is_err());
    }

    #[test]
    fn one_side_and_patterns_can_be_chosen() {
        let parsed = options(&["--server", "--cases", "6.*,7.1.6"]).unwrap();
        assert_eq!(parsed.sides, [Side::Server]);
        assert_eq!(parsed.selection.patterns(), ["6.*", "7.1.6"]);
        assert_eq!(options(&["--client"]).unwrap().sides, [Side::Client]);
        assert_eq!(
            options(&["--client", "--server"]).unwrap().sides,
            [Side::Server, Side::Client]
        );
        assert_eq!(options(&["--full"]).unwrap().selection, Selection::all());
    }

    #[test]
    fn conflicting_or_unknown_options_are_refused() {
        assert!(options(&["--cases", "1.*", "--full"]).is_err());
        assert!(options(&["--cases"]).is_err());
        assert!(options(&["--cases", "x"]).is_err());
        assert!(options(&["--fast"]).is_err());
    }

    #[test]
    fn the_hint_repeats_the_selection() {
        let parsed = options(&["--server", "--cases", "6.*", "--docker"]).unwrap();
        assert_eq!(rerun_args(&parsed), "--server --cases '6.*' --docker ");
        assert_eq!(rerun_args(&options(&[]).unwrap()), "");
    }

    #[test]
    fn ci_runs_the_suite_where_the_port_is_present() {
        let dir = Path::new("/w/../shared/autobahn");
        assert_eq!(ci_plan(dir, true, None).unwrap(), CiPlan::Run);
        assert_eq!(ci_plan(dir, true, Some("docker")).unwrap(), CiPlan::Run);
    }

    #[test]
    fn ci_skips_an_absent_port_only_when_a_docker_job_covers_it() {
        let dir = Path::new("/w/../shared/autobahn");
        let CiPlan::Skip(why) = ci_plan(dir, false, Some("docker")).unwrap() else {
            panic!("expected a skip");
        };
        assert!(why.contains("/w/../shared/autobahn"), "{why}");
        assert!(why.contains("docker"), "{why}");
        let error = format!("{:#}", ci_plan(dir, false, None).unwrap_err());
        assert!(error.contains("XTASK_AUTOBAHN=docker"), "{error}");
        assert!(ci_plan(dir, false, Some("")).is_err());
        assert!(ci_plan(dir, false, Some("yes")).is_err());
    }
}
