//! `cargo xtask soak`: many clients echoing mixed messages against one
//! `ws-server` for a while, every echo verified byte for byte.
//!
//! Each of `--connections` clients (1,000 by default) runs a closed loop on
//! one current-thread tokio runtime: it sends a message, waits for the echo
//! and compares it, until `--duration` (60 s) is over, then closes with
//! 1000. Messages are text or binary, 0 B to 64 KiB with a skewed size
//! distribution (most small, a few large), drawn from a deterministic
//! generator seeded by the connection's number, so a failure can be replayed.
//!
//! Reports messages sent, received and mismatched, errors, the server's RSS
//! at the start, its peak and at the end (sampled every second) and its open
//! file descriptors before and after. Fails on any mismatch, any error, or
//! descriptors that are not released after the clients leave.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::net::TcpStream;
use tokio::time::Instant;
use ws_core::handshake::ClientRequest;
use ws_core::stream::WebSocket;
use ws_core::{CloseCode, Config, Event};

use crate::hostile::{Rng, Server, build_server, mib, raise_fd_limit, secs};
use crate::report::Report;
use crate::workspace::Workspace;

/// The longest a client waits for one echo (or for its connection) before it
/// counts an error.
const ECHO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the server gets to release the descriptors of the clients that
/// left (its linger after a close is 1 s).
const FD_SETTLE: Duration = Duration::from_secs(10);

/// The largest message the soak sends.
const MAX_SIZE: u64 = 64 * 1024;

const USAGE: &str = "usage: cargo xtask soak [--connections N] [--duration SECS] [--release]

  --connections N    clients echoing at once [default: 1000]
  --duration SECS    how long they echo, in seconds (or 90s, 2m) [default: 60]
  --release          build and test target/release/ws-server instead of the dev build";

#[derive(Debug, Clone, Copy)]
struct Options {
    connections: usize,
    duration: Duration,
    release: bool,
}

fn parse_options(args: &[String]) -> Result<Options> {
    let mut options = Options {
        connections: 1000,
        duration: Duration::from_secs(60),
        release: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        let mut value = || -> Result<String> {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .with_context(|| format!("`{name}` needs a value\n\n{USAGE}"))
        };
        match name {
            "--connections" => {
                let text = value()?;
                options.connections = text.parse().ok().filter(|&n| n > 0).with_context(|| {
                    format!("`--connections {text}`: expected a positive number")
                })?;
            }
            "--duration" => options.duration = parse_duration(&value()?)?,
            "--release" => options.release = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown option `{other}`\n\n{USAGE}"),
        }
    }
    Ok(options)
}

/// Seconds, or a number with `s` or `m`.
fn parse_duration(text: &str) -> Result<Duration> {
    let (number, scale) = if let Some(minutes) = text.strip_suffix('m') {
        (minutes, 60)
    } else {
        (text.strip_suffix('s').unwrap_or(text), 1)
    };
    number
        .parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
        .map(|n| Duration::from_secs(n * scale))
        .with_context(|| format!("`--duration {text}`: expected seconds, e.g. 60, 90s or 2m"))
}

/// What all the clients did, added up.
#[derive(Debug, Default)]
struct Tally {
    connected: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    mismatched: AtomicU64,
    errors: AtomicU64,
    bytes: AtomicU64,
    /// The first few errors, for the report.
    first_errors: Mutex<Vec<String>>,
}

impl Tally {
    fn error(&self, index: usize, error: &anyhow::Error) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_errors.lock()
            && first.len() < 3
        {
            first.push(format!("client {index}: {error:#}"));
        }
    }
}

/// Runs the soak; fails on mismatches, errors or leaked descriptors.
pub fn run(workspace: &Workspace, args: &[String]) -> Result<()> {
    let options = parse_options(args)?;
    raise_fd_limit()?;
    let binary = build_server(workspace, options.release)?;
    soak(&binary, options)
}

fn soak(binary: &Path, options: Options) -> Result<()> {
    let server = Server::start(binary, &[])?;
    println!(
        "soak: {} connections for {} against {} (default limits)",
        options.connections,
        secs(options.duration),
        binary.display()
    );
    let fds_before = server.fds()?;
    let rss_start = server.status_kib("VmRSS")? * 1024;
    let tally = Arc::new(Tally::default());
    let sampling = AtomicBool::new(true);
    let (samples, clients) = thread::scope(|scope| {
        let sampler = scope.spawn(|| sample_rss(&server, &sampling));
        let clients = run_clients(server.addr, options, &tally);
        sampling.store(false, Ordering::Relaxed);
        let samples = sampler.join().unwrap_or_default();
        (samples, clients)
    });
    clients?;
    let fds_after = server.wait_fds(fds_before, FD_SETTLE)?;
    let rss_end = server.status_kib("VmRSS")? * 1024;
    let hwm = server.status_kib("VmHWM")? * 1024;
    let peak = samples.iter().copied().max().unwrap_or_default().max(hwm);
    server.stop()?;

    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let (sent, received, mismatched, errors) = (
        load(&tally.sent),
        load(&tally.received),
        load(&tally.mismatched),
        load(&tally.errors),
    );
    println!(
        "soak: messages sent {sent}, received {received}, mismatched {mismatched}, errors {errors} \
         ({} each way, {:.0} messages/s)",
        mib(load(&tally.bytes)),
        received as f64 / options.duration.as_secs_f64()
    );
    println!(
        "soak: server RSS start {}, peak {}, end {}; open fds before {fds_before}, after {fds_after}",
        mib(rss_start),
        mib(peak),
        mib(rss_end)
    );
    let mut report = Report::new();
    let connected = load(&tally.connected);
    let wanted = options.connections as u64;
    let check = |report: &mut Report, name: &str, ok: bool, reason: String| {
        if ok {
            report.pass(name);
        } else {
            report.fail(name, &reason);
        }
    };
    check(
        &mut report,
        &format!("connections: {connected} of {wanted} completed the opening handshake"),
        connected == wanted,
        format!("only {connected} of {wanted} connected"),
    );
    check(
        &mut report,
        &format!("echoes: {received} received of {sent} sent, none mismatched"),
        mismatched == 0 && received == sent && received > 0,
        format!("{mismatched} mismatched, {received} received of {sent} sent"),
    );
    let first_errors = tally
        .first_errors
        .lock()
        .map(|first| first.join("; "))
        .unwrap_or_default();
    check(
        &mut report,
        "errors: none",
        errors == 0,
        format!("{errors} errors, first: {first_errors}"),
    );
    check(
        &mut report,
        &format!("descriptors: {fds_before} before, {fds_after} after"),
        fds_after <= fds_before,
        format!(
            "{fds_after} open {} s after the clients left, {fds_before} before",
            FD_SETTLE.as_secs()
        ),
    );
    report.finish()
}

/// VmRSS every second while `running`.
fn sample_rss(server: &Server, running: &AtomicBool) -> Vec<u64> {
    let mut samples = Vec::new();
    let mut next = std::time::Instant::now();
    while running.load(Ordering::Relaxed) {
        if std::time::Instant::now() >= next {
            if let Ok(kib) = server.status_kib("VmRSS") {
                samples.push(kib * 1024);
            }
            next += Duration::from_secs(1);
        }
        thread::sleep(Duration::from_millis(50));
    }
    samples
}

/// All the clients on one current-thread runtime.
fn run_clients(addr: SocketAddr, options: Options, tally: &Arc<Tally>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start a tokio runtime")?;
    runtime.block_on(async {
        let deadline = Instant::now() + options.duration;
        let tasks: Vec<_> = (0..options.connections)
            .map(|index| {
                let tally = Arc::clone(tally);
                tokio::spawn(async move {
                    if let Err(error) = client(addr, index, deadline, &tally).await {
                        tally.error(index, &error);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.context("a client task panicked")?;
        }
        Ok(())
    })
}

/// One client's closed loop: send, wait for the echo, compare.
async fn client(addr: SocketAddr, index: usize, deadline: Instant, tally: &Tally) -> Result<()> {
    let request = ClientRequest::new(&format!("ws://{addr}/"))?;
    let connecting = async {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        WebSocket::connect(stream, &request, Config::default()).await
    };
    let (mut socket, _) = tokio::time::timeout(ECHO_TIMEOUT, connecting)
        .await
        .context("no connection within 10 s")?
        .context("connecting")?;
    tally.connected.fetch_add(1, Ordering::Relaxed);
    let mut rng = Rng::new(index as u64 + 1);
    let mut number = 0u64;
    while Instant::now() < deadline {
        let (text, payload) = message(&mut rng);
        if text {
            let text = String::from_utf8(payload.clone()).context("a generated text")?;
            socket.send_text(&text).await
        } else {
            socket.send_binary(&payload).await
        }
        .with_context(|| format!("sending message {number}"))?;
        tally.sent.fetch_add(1, Ordering::Relaxed);
        let echo = tokio::time::timeout(ECHO_TIMEOUT, async {
            loop {
                match socket.recv().await? {
                    Some(Event::Ping(_) | Event::Pong(_)) => {}
                    other => return Ok::<_, ws_core::Error>(other),
                }
            }
        })
        .await
        .with_context(|| format!("no echo of message {number} within 10 s"))?
        .with_context(|| format!("waiting for the echo of message {number}"))?;
        tally.received.fetch_add(1, Ordering::Relaxed);
        tally
            .bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        let matches = match &echo {
            Some(Event::Text(echo)) => text && echo.as_bytes() == payload.as_slice(),
            Some(Event::Binary(echo)) => !text && echo.as_ref() == payload.as_slice(),
            _ => bail!("message {number}: got {echo:?} instead of its echo"),
        };
        if !matches {
            tally.mismatched.fetch_add(1, Ordering::Relaxed);
        }
        number += 1;
    }
    let closing = async {
        socket.close(CloseCode::NORMAL, "soak over").await?;
        while socket.recv().await?.is_some() {}
        Ok::<(), ws_core::Error>(())
    };
    tokio::time::timeout(ECHO_TIMEOUT, closing)
        .await
        .context("no end of the closing handshake within 10 s")?
        .context("the closing handshake")?;
    Ok(())
}

/// A message of a skewed size: 5% empty, half up to 128 B, most of the rest
/// up to 4 KiB or 16 KiB, 3% up to 64 KiB; text or binary at even odds.
/// Text mixes 1- to 4-byte UTF-8 characters.
fn message(rng: &mut Rng) -> (bool, Vec<u8>) {
    let max = match rng.below(100) {
        0..=4 => 0,
        5..=54 => 128,
        55..=84 => 4096,
        85..=96 => 16 * 1024,
        _ => MAX_SIZE,
    };
    let size = rng.below(max + 1) as usize;
    let text = rng.below(2) == 0;
    let mut payload = Vec::with_capacity(size);
    if text {
        const WIDE: [&str; 3] = ["é", "€", "😀"];
        while payload.len() < size {
            let room = size - payload.len();
            let pick = rng.next_u64();
            let wide = WIDE.get((pick % 16) as usize).filter(|c| c.len() <= room);
            match wide {
                Some(c) => payload.extend_from_slice(c.as_bytes()),
                None => payload.push(b' ' + (pick >> 8) as u8 % 95),
            }
        }
    } else {
        while payload.len() < size {
            let word = rng.next_u64().to_le_bytes();
            let take = (size - payload.len()).min(8);
            payload.extend_from_slice(word.get(..take).unwrap_or_default());
        }
    }
    (text, payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_have_the_documented_defaults() {
        let options = parse_options(&[]).unwrap();
        assert_eq!(options.connections, 1000);
        assert_eq!(options.duration, Duration::from_secs(60));
        let options =
            parse_options(&["--connections".into(), "10".into(), "--duration=2m".into()]).unwrap();
        assert_eq!(options.connections, 10);
        assert_eq!(options.duration, Duration::from_secs(120));
        assert!(parse_options(&["--connections".into(), "0".into()]).is_err());
        assert!(parse_options(&["--duration".into()]).is_err());
    }

    #[test]
    fn messages_are_valid_and_cover_the_size_range() {
        let mut rng = Rng::new(1);
        let mut empty = false;
        let mut largest = 0;
        for _ in 0..5000 {
            let (text, payload) = message(&mut rng);
            if text {
                assert!(std::str::from_utf8(&payload).is_ok());
            }
            empty |= payload.is_empty();
            largest = largest.max(payload.len());
        }
        assert!(empty);
        assert!(largest > 32 * 1024 && largest <= MAX_SIZE as usize);
    }

    #[test]
    fn messages_are_reproducible_from_the_seed() {
        let a = message(&mut Rng::new(42));
        let b = message(&mut Rng::new(42));
        assert_eq!(a, b);
    }
}
