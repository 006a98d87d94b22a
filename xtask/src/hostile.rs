//! `cargo xtask hostile`: hostile peers against a real `ws-server`.
//!
//! Each case starts its own server on 127.0.0.1:0 with the default limits
//! (a case that needs another setting says so in its output), connects a
//! well-behaved client that sends a message every 10 ms and checks every
//! echo for the whole case, and then lets one kind of hostile peer loose.
//! A case passes when
//!
//! - the server answers as RFC 6455 and its limits say,
//! - the well-behaved client got every echo right, none later than 2 s,
//! - the server's peak RSS (`VmHWM`, which a fresh server per case makes the
//!   peak of that case) stays under the bound the case states,
//! - the server's open file descriptors are back where they were once the
//!   hostile peers are gone (descriptors are the reliable leak signal: every
//!   connection task holds one), and
//! - the server still shuts down cleanly (exit 0 on SIGTERM).
//!
//! One line per case, `ok   NAME: details` or `FAIL NAME: reason`, then
//! `N passed, M failed`. `--quick` runs smaller counts (it is the variant
//! that fits CI); `--release` tests a release build of the server.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use bytes::BytesMut;
use ws_core::OpCode;
use ws_core::blocking::WebSocket;
use ws_core::handshake::{ClientRequest, HandshakeError};
use ws_core::low_level::{FrameHeader, encode_frame};
use ws_core::{Config, Connection, Event, Role};

use crate::process::{self, one_line, parse_ready_line};
use crate::report::Report;
use crate::workspace::Workspace;

/// Every blocking read or write of a hostile or probing client gives up
/// after this long, so that a server that hangs fails a case instead of
/// blocking the suite.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a check waits for the server's log lines about what it saw.
const LOG_WAIT: Duration = Duration::from_secs(5);

/// The longest the well-behaved client may wait for an echo.
const PROBE_LATENCY_BOUND: Duration = Duration::from_secs(2);

/// Echoes the probe must get before a case's attack starts, and again after
/// it ends.
const PROBE_ECHOES: u64 = 3;

/// How long the server gets to release the descriptors of connections that
/// are gone (its linger after a close is 1 s).
const FD_SETTLE: Duration = Duration::from_secs(10);

/// The server's defaults that the cases rely on (see `ws-server --help`).
const MAX_MESSAGE: usize = 16 << 20;
const MAX_BACKLOG: usize = MAX_MESSAGE + (4 << 20);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

const USAGE: &str = "usage: cargo xtask hostile [--quick] [--release]

  --quick     smaller counts (100 slowloris connections with a 3 s handshake
              timeout, a 1 MiB fragmented message, 20,000 pings, ...): the
              variant for CI, under a minute
  --release   build and test target/release/ws-server instead of the dev build";

/// What the command line asked for.
#[derive(Debug, Clone, Copy)]
struct Options {
    quick: bool,
    release: bool,
}

fn parse_options(args: &[String]) -> Result<Options> {
    let mut options = Options {
        quick: false,
        release: false,
    };
    for arg in args {
        match arg.as_str() {
            "--quick" => options.quick = true,
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

/// Counts and limits of one run.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    slowloris: usize,
    handshake_timeout: Duration,
    fragmented: usize,
    pings: u64,
    never_readers: usize,
    random_streams: u64,
    resets: usize,
}

impl Sizes {
    fn of(options: Options) -> Self {
        if options.quick {
            Self {
                slowloris: 100,
                handshake_timeout: Duration::from_secs(3),
                fragmented: 1 << 20,
                pings: 20_000,
                never_readers: 2,
                random_streams: 10,
                resets: 200,
            }
        } else {
            Self {
                slowloris: 1_000,
                handshake_timeout: Duration::from_secs(10),
                fragmented: MAX_MESSAGE,
                pings: 100_000,
                never_readers: 4,
                random_streams: 20,
                resets: 1_000,
            }
        }
    }
}

/// A case's name and its check, which returns the details for its line.
type Case<'a> = (&'static str, Box<dyn Fn() -> Result<String> + 'a>);

/// Runs the suite; fails when any case did.
pub fn run(workspace: &Workspace, args: &[String]) -> Result<()> {
    let options = parse_options(args)?;
    let sizes = Sizes::of(options);
    raise_fd_limit()?;
    let binary = build_server(workspace, options.release)?;
    eprintln!(
        "xtask hostile: {} suite against {}",
        if options.quick { "quick" } else { "full" },
        binary.display()
    );
    let started = Instant::now();
    let mut report = Report::new();
    let cases: Vec<Case<'_>> = vec![
        ("slowloris", Box::new(|| slowloris(&binary, sizes))),
        (
            "oversized request head",
            Box::new(|| oversized_head(&binary)),
        ),
        (
            "huge frame headers",
            Box::new(|| huge_frame_headers(&binary)),
        ),
        (
            "1-byte fragments",
            Box::new(|| one_byte_fragments(&binary, sizes)),
        ),
        ("ping flood", Box::new(|| ping_flood(&binary, sizes))),
        (
            "never-reading clients",
            Box::new(|| never_reading(&binary, sizes)),
        ),
        (
            "clients that stop reading, small backlog cap",
            Box::new(|| stopped_readers(&binary, sizes)),
        ),
        (
            "random bytes after the handshake",
            Box::new(|| random_after_handshake(&binary, sizes)),
        ),
        (
            "random bytes instead of a handshake",
            Box::new(|| random_instead_of_handshake(&binary)),
        ),
        ("connection limit", Box::new(|| connection_limit(&binary))),
        (
            "abrupt disconnects",
            Box::new(|| abrupt_disconnects(&binary, sizes)),
        ),
    ];
    for (name, case) in cases {
        match case() {
            Ok(details) => report.pass(&format!("{name}: {details}")),
            Err(error) => report.fail(name, &format!("{error:#}")),
        }
    }
    eprintln!(
        "xtask hostile: finished in {} s",
        started.elapsed().as_secs()
    );
    report.finish()
}

// ---- the cases ----

/// Connections that send the upgrade request one byte a second: each must be
/// dropped when the handshake timeout expires, not before and not much later,
/// while a new client still gets through.
fn slowloris(binary: &Path, sizes: Sizes) -> Result<String> {
    let timeout = sizes.handshake_timeout;
    let mut args = Vec::new();
    let timeout_arg = format!("{}s", timeout.as_secs());
    if timeout != Duration::from_secs(10) {
        args.extend(["--handshake-timeout", timeout_arg.as_str()]);
    }
    let bound = 64 << 20;
    with_server(binary, &args, bound, |server| {
        let request = ClientRequest::new(&server.url())?.to_bytes();
        ensure!(
            request.len() as u64 > timeout.as_secs() + 5,
            "the request is too short to outlast the timeout at one byte a second"
        );
        let mut conns = Vec::with_capacity(sizes.slowloris);
        for _ in 0..sizes.slowloris {
            let stream = TcpStream::connect(server.addr).context("connect")?;
            stream.set_nonblocking(true)?;
            conns.push(SlowConn {
                stream,
                started: Instant::now(),
                sent: 0,
                closed_after: None,
                answered: false,
            });
        }
        let attack_started = Instant::now();
        let deadline = attack_started + timeout + Duration::from_secs(6);
        let mut next_byte = attack_started;
        let mut fresh_checked = None;
        let mut scratch = [0u8; 256];
        loop {
            let now = Instant::now();
            if now >= next_byte {
                for conn in conns.iter_mut().filter(|c| c.closed_after.is_none()) {
                    let byte = request.get(conn.sent..=conn.sent).unwrap_or_default();
                    match conn.stream.write(byte) {
                        Ok(n) => conn.sent += n,
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                        Err(_) => conn.closed_after = Some(conn.started.elapsed()),
                    }
                }
                next_byte += Duration::from_secs(1);
            }
            for conn in conns.iter_mut().filter(|c| c.closed_after.is_none()) {
                match conn.stream.read(&mut scratch) {
                    Ok(0) => conn.closed_after = Some(conn.started.elapsed()),
                    Ok(_) => conn.answered = true,
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => conn.closed_after = Some(conn.started.elapsed()),
                }
            }
            if fresh_checked.is_none() && now >= attack_started + timeout / 2 {
                // Half-way through the attack, a new client must get in.
                fresh_checked = Some(echo_once(server.addr).context("a new client mid-attack")?);
            }
            if conns.iter().all(|c| c.closed_after.is_some()) || now >= deadline {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let open = conns.iter().filter(|c| c.closed_after.is_none()).count();
        ensure!(
            open == 0,
            "{open} of {} slow connections still open {} s after the handshake timeout",
            conns.len(),
            (deadline - attack_started - timeout).as_secs()
        );
        let answered = conns.iter().filter(|c| c.answered).count();
        ensure!(
            answered == 0,
            "{answered} slow connections got a response to an incomplete request"
        );
        let times: Vec<Duration> = conns.iter().filter_map(|c| c.closed_after).collect();
        let first = times.iter().min().copied().unwrap_or_default();
        let last = times.iter().max().copied().unwrap_or_default();
        // A poll every 50 ms: allow that much before the timeout.
        ensure!(
            first + Duration::from_millis(100) >= timeout,
            "a slow connection was dropped after {}, before the {} s handshake timeout",
            secs(first),
            timeout.as_secs()
        );
        ensure!(
            last <= timeout + Duration::from_secs(3),
            "a slow connection was dropped only after {} (handshake timeout {} s)",
            secs(last),
            timeout.as_secs()
        );
        Ok(format!(
            "{} connections sending one byte a second, all dropped {}–{} in \
             (handshake timeout {} s{}), none answered; a new client mid-attack echoed in {} ms",
            conns.len(),
            secs(first),
            secs(last),
            timeout.as_secs(),
            if timeout == Duration::from_secs(10) {
                ", the default"
            } else {
                ", set with --handshake-timeout to keep the run short"
            },
            fresh_checked.unwrap_or_default().as_millis()
        ))
    })
}

struct SlowConn {
    stream: TcpStream,
    started: Instant,
    sent: usize,
    closed_after: Option<Duration>,
    answered: bool,
}

/// 64 KiB of headers, as many small ones and as one large one: refused
/// with 431 (or 400) and closed, without reading the head to its end.
fn oversized_head(binary: &Path) -> Result<String> {
    with_server(binary, &[], 64 << 20, |server| {
        let start = format!(
            "GET / HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
            server.addr
        );
        let mut many = start.clone();
        let filler = "a".repeat(100);
        let mut index = 0;
        while many.len() < 64 * 1024 {
            many.push_str(&format!("X-Filler-{index}: {filler}\r\n"));
            index += 1;
        }
        many.push_str("\r\n");
        let one = format!("{start}X-Filler: {}\r\n\r\n", "a".repeat(64 * 1024));
        let mut details = Vec::new();
        for (label, head) in [
            (format!("{index} headers"), many),
            ("one header".to_owned(), one),
        ] {
            let sent = head.len();
            let stream = connect(server.addr)?;
            let mut writer = stream.try_clone()?;
            // The server answers before the head is complete and then stops
            // reading: a writer of its own keeps this side from blocking on it.
            let writing = thread::spawn(move || writer.write_all(head.as_bytes()));
            let started = Instant::now();
            let (response, closed) = read_to_close(&stream, IO_TIMEOUT);
            let _ = writing.join();
            let status = status_code(&response).with_context(|| {
                format!("{label}: no HTTP response: {:?}", lossy_start(&response))
            })?;
            ensure!(
                status == 431 || status == 400,
                "{label}: answered {status}, not 431 or 400"
            );
            ensure!(
                closed,
                "{label}: the connection stayed open {} s after the response",
                IO_TIMEOUT.as_secs()
            );
            details.push(format!(
                "{} in {label} → {status}, closed in {} ms",
                kib(sent),
                started.elapsed().as_millis()
            ));
        }
        Ok(details.join("; "))
    })
}

/// Frame headers that announce 2^63-1 bytes and 1 GiB: close 1009 at once,
/// and the server's virtual memory does not grow by anything near that.
fn huge_frame_headers(binary: &Path) -> Result<String> {
    with_server(binary, &[], 64 << 20, |server| {
        let vm_before = server.status_kib("VmPeak")?;
        let mut details = Vec::new();
        for (label, len) in [("2^63-1 bytes", (1u64 << 63) - 1), ("1 GiB", 1u64 << 30)] {
            let mut raw = open_ws(server.addr)?;
            let mut header = BytesMut::new();
            FrameHeader {
                fin: true,
                rsv: 0,
                opcode: OpCode::Binary,
                mask: Some(mask_key()),
                payload_len: len,
            }
            .encode(&mut header);
            // A few payload bytes, as a real sender would have started with.
            header.extend_from_slice(&[0u8; 16]);
            let started = Instant::now();
            raw.stream.write_all(&header)?;
            let outcome = raw.read_until_close(IO_TIMEOUT)?;
            let took = started.elapsed();
            ensure!(
                outcome.close_code == Some(1009),
                "a header announcing {label}: {}, not close 1009",
                outcome.describe()
            );
            ensure!(
                took < Duration::from_secs(2),
                "a header announcing {label}: close 1009 only after {}",
                secs(took)
            );
            details.push(format!("{label} → 1009 in {} ms", took.as_millis()));
        }
        let vm_after = server.status_kib("VmPeak")?;
        let grew = vm_after.saturating_sub(vm_before) * 1024;
        ensure!(
            grew < 256 << 20,
            "the server's virtual memory peak grew by {} (an allocation of the announced size?)",
            mib(grew)
        );
        Ok(format!(
            "{}; virtual memory peak grew by {}",
            details.join(", "),
            mib(grew)
        ))
    })
}

/// A message sent as one-byte fragments, up to the message limit: echoed
/// byte for byte, with memory bounded by a few times the message size.
fn one_byte_fragments(binary: &Path, sizes: Sizes) -> Result<String> {
    let size = sizes.fragmented;
    // The assembly buffer grows by doubling (the old and new buffers coexist
    // for a moment), then the echo goes out of it without a copy.
    let bound = (24 << 20) + 3 * size as u64;
    with_server(binary, &[], bound, |server| {
        let mut raw = open_ws(server.addr)?;
        let started = Instant::now();
        let mut rng = Rng::new(0x5eed_f4a9);
        let mut chunk = Vec::with_capacity(7 * 65_536);
        let mut sent = 0usize;
        while sent < size {
            chunk.clear();
            let end = (sent + 65_536).min(size);
            for index in sent..end {
                let first = index == 0;
                let last = index + 1 == size;
                let opcode = if first { 0x2 } else { 0x0 };
                let fin = if last { 0x80 } else { 0x00 };
                let key = rng.next_u32().to_be_bytes();
                let [k0, k1, k2, k3] = key;
                chunk.extend_from_slice(&[fin | opcode, 0x81, k0, k1, k2, k3, pattern(index) ^ k0]);
            }
            raw.stream
                .write_all(&chunk)
                .with_context(|| format!("sending fragment {sent}"))?;
            sent = end;
        }
        let wrote = started.elapsed();
        let outcome = raw.read_message(Duration::from_secs(60))?;
        let payload = outcome.with_context(|| format!("{size} one-byte fragments"))?;
        ensure!(
            payload.len() == size,
            "echo of {} bytes, expected {size}",
            payload.len()
        );
        if let Some(at) = payload
            .iter()
            .enumerate()
            .position(|(index, &byte)| byte != pattern(index))
        {
            bail!("the echo differs from what was sent at byte {at}");
        }
        Ok(format!(
            "{} in {} one-byte fragments ({} on the wire) sent in {}, echoed byte for byte after {}",
            mib(size as u64),
            size,
            mib(7 * size as u64),
            secs(wrote),
            secs(started.elapsed())
        ))
    })
}

fn pattern(index: usize) -> u8 {
    (index.wrapping_mul(31) ^ (index >> 11)) as u8
}

/// Pings as fast as they can be written: every one answered in order (the
/// RFC would allow answering only the latest), memory bounded.
fn ping_flood(binary: &Path, sizes: Sizes) -> Result<String> {
    let count = sizes.pings;
    with_server(binary, &[], 64 << 20, |server| {
        let mut raw = open_ws(server.addr)?;
        let mut writer = raw.stream.try_clone()?;
        let started = Instant::now();
        let writing = thread::spawn(move || -> io::Result<()> {
            let mut rng = Rng::new(0x9199);
            let mut batch = Vec::with_capacity(14 * 1000);
            let mut next = 0u64;
            while next < count {
                batch.clear();
                let end = (next + 1000).min(count);
                for number in next..end {
                    let key = rng.next_u32().to_be_bytes();
                    batch.extend_from_slice(&[0x89, 0x88]);
                    batch.extend_from_slice(&key);
                    batch.extend(
                        number
                            .to_be_bytes()
                            .iter()
                            .zip(key.iter().cycle())
                            .map(|(byte, k)| byte ^ k),
                    );
                }
                writer.write_all(&batch)?;
                next = end;
            }
            Ok(())
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut pongs = 0u64;
        let mut last: Option<u64> = None;
        let mut buf = vec![0u8; 64 * 1024];
        'reading: while last != Some(count - 1) {
            while let Some(event) = raw.parser.next_event().context("the server's frames")? {
                match event {
                    Event::Pong(payload) => {
                        let number = <[u8; 8]>::try_from(payload.as_ref())
                            .map(u64::from_be_bytes)
                            .map_err(|_| {
                                anyhow!("a pong with {} bytes, not the ping's 8", payload.len())
                            })?;
                        ensure!(
                            last.is_none_or(|last| number > last) && number < count,
                            "pong {number} after pong {last:?}: out of order or never pinged"
                        );
                        last = Some(number);
                        pongs += 1;
                    }
                    Event::Close(frame) => bail!("the server closed ({frame:?}) during the flood"),
                    _ => {}
                }
            }
            if last == Some(count - 1) {
                break 'reading;
            }
            ensure!(
                Instant::now() < deadline,
                "only {pongs} pongs in 60 s, the last for ping {last:?}"
            );
            let n = read_some(&mut raw.stream, &mut buf)?;
            ensure!(
                n > 0,
                "the server closed the connection after {pongs} pongs"
            );
            raw.parser.receive(buf.get(..n).unwrap_or_default());
        }
        writing
            .join()
            .map_err(|_| anyhow!("the ping writer panicked"))?
            .context("writing pings")?;
        Ok(format!(
            "{count} pings, {pongs} pongs in order in {}, the last ping answered",
            secs(started.elapsed())
        ))
    })
}

/// Clients that send 1 MiB messages and never read. The server stops
/// reading from each (while its writes are blocked, ws-core reads ahead at
/// most one frame and 64 KiB and processes none of it, so no more echoes are
/// queued), and drops it once its writes have been blocked for
/// --close-timeout. Memory stays bounded per client.
fn never_reading(binary: &Path, sizes: Sizes) -> Result<String> {
    let clients = sizes.never_readers;
    // Per client: the unsent echoes (under the cap), one message being
    // assembled, and the read-ahead of one frame and 64 KiB.
    let per_client = (MAX_BACKLOG + 2 * MAX_MESSAGE + (64 << 10)) as u64;
    let bound = (24 << 20) + clients as u64 * per_client;
    with_server(binary, &[], bound, |server| {
        let addr = server.addr;
        let workers: Vec<JoinHandle<Result<Dropped>>> = (0..clients)
            .map(|index| thread::spawn(move || never_read(addr, index as u64)))
            .collect();
        let results = join_all(workers)?;
        let (least_sent, most_sent) = spread(results.iter().map(|r| r.sent));
        let (fastest, slowest) = spread(results.iter().map(|r| r.stalled_for));
        // What one client can push before the server stops reading: the
        // echoes written and queued, the read-ahead, and what the kernels
        // buffer on both sides.
        let kernel_slack = 32 << 20;
        let most = (MAX_BACKLOG + 2 * MAX_MESSAGE + kernel_slack) as u64;
        ensure!(
            most_sent <= most,
            "a client got {} in before the server stopped reading (expected at most {})",
            mib(most_sent),
            mib(most)
        );
        ensure!(
            slowest <= CLOSE_TIMEOUT + Duration::from_secs(5),
            "a client was dropped only {} after its writes stalled (close timeout {} s)",
            secs(slowest),
            CLOSE_TIMEOUT.as_secs()
        );
        let blocked = server.wait_log_count("read nothing while the server had data", clients);
        ensure!(
            blocked == clients,
            "the server logged {blocked} write-timeout drops for {clients} clients"
        );
        Ok(format!(
            "{clients} clients sending 1 MiB messages without reading: the server stopped \
             reading after {}–{} each and dropped them {}–{} after their writes stalled \
             (writes blocked for --close-timeout {} s; --max-backlog {} by default)",
            mib(least_sent),
            mib(most_sent),
            secs(fastest),
            secs(slowest),
            CLOSE_TIMEOUT.as_secs(),
            mib(MAX_BACKLOG as u64),
        ))
    })
}

/// Clients that send 64 KiB messages flat out, read one burst of 8 MiB a
/// second in and then never again, against `--max-backlog 32KiB`. The cap is
/// below one message, so every echo puts the backlog over it and the server
/// writes it out before it reads on: when the client stops reading, the write
/// that stalls is always the backlog's, and the client is dropped for its
/// backlog after --close-timeout. (With a cap of several messages, whether
/// the stall came with the backlog over the cap, or with one echo in flight
/// and the write timeout firing instead, depended on timing: a CI run on a
/// loaded machine saw one of each.) A client that keeps reading, however
/// slowly, is only slowed down: TCP flow control matches its sending to its
/// reading.
fn stopped_readers(binary: &Path, sizes: Sizes) -> Result<String> {
    let clients = sizes.never_readers;
    let cap: usize = 32 << 10;
    let per_client = (cap + 3 * MAX_MESSAGE + (64 << 10)) as u64;
    let bound = (24 << 20) + clients as u64 * per_client;
    let cap_arg = cap.to_string();
    with_server(binary, &["--max-backlog", &cap_arg], bound, |server| {
        let addr = server.addr;
        let workers: Vec<JoinHandle<Result<Dropped>>> = (0..clients)
            .map(|index| thread::spawn(move || read_once(addr, index as u64)))
            .collect();
        let results = join_all(workers)?;
        let (least_sent, most_sent) = spread(results.iter().map(|r| r.sent));
        let (fastest, slowest) = spread(results.iter().map(|r| r.stalled_for));
        let over_cap = server.wait_log_count("does not read its echoes", clients);
        ensure!(
            over_cap == clients,
            "the server logged {over_cap} backlog drops for {clients} clients"
        );
        Ok(format!(
            "--max-backlog 32 KiB: {clients} clients sending 64 KiB messages flat out that \
             read 8 MiB once got {}–{} in and were dropped for their backlog {}–{} after \
             their writes stalled",
            mib(least_sent),
            mib(most_sent),
            secs(fastest),
            secs(slowest),
        ))
    })
}

/// The smallest and largest of some values.
fn spread<T: Ord + Copy + Default>(values: impl Iterator<Item = T> + Clone) -> (T, T) {
    (
        values.clone().min().unwrap_or_default(),
        values.max().unwrap_or_default(),
    )
}

fn join_all<T>(workers: Vec<JoinHandle<Result<T>>>) -> Result<Vec<T>> {
    let mut results = Vec::new();
    for worker in workers {
        results.push(
            worker
                .join()
                .map_err(|_| anyhow!("a client thread panicked"))??,
        );
    }
    Ok(results)
}

/// How a client the server dropped fared.
struct Dropped {
    /// Bytes it got to write.
    sent: u64,
    /// How long its writes had been blocked when it was dropped.
    stalled_for: Duration,
}

fn never_read(addr: SocketAddr, seed: u64) -> Result<Dropped> {
    let raw = open_ws(addr)?;
    write_until_dropped(raw.stream, seed, 1 << 20, &AtomicBool::new(false))
}

/// Writes flat out on this thread and, on another, reads 8 MiB once as soon
/// as the writes stall (the server has stopped reading), until the server
/// drops the connection.
fn read_once(addr: SocketAddr, seed: u64) -> Result<Dropped> {
    let raw = open_ws(addr)?;
    let mut reader = raw.stream.try_clone()?;
    let stalled = Arc::new(AtomicBool::new(false));
    let writes_stalled = Arc::clone(&stalled);
    let reading = thread::spawn(move || {
        let deadline = Instant::now() + IO_TIMEOUT;
        while !writes_stalled.load(Ordering::Relaxed) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        while total < 8 << 20 {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    });
    let dropped = write_until_dropped(raw.stream, seed, 64 << 10, &stalled);
    let _ = reading.join();
    dropped
}

/// Writes `size`-byte binary messages until a write fails (the server
/// dropped the connection), for at most 60 s. Sets `stalled` once a write
/// has made no progress for 200 ms.
fn write_until_dropped(
    mut stream: TcpStream,
    seed: u64,
    size: usize,
    stalled: &AtomicBool,
) -> Result<Dropped> {
    let started = Instant::now();
    stream.set_write_timeout(Some(Duration::from_millis(200)))?;
    let mut rng = Rng::new(seed);
    let payload: Vec<u8> = (0..size).map(|_| rng.next_u32() as u8).collect();
    let mut frame = BytesMut::new();
    encode_frame(&mut frame, masked(OpCode::Binary), &payload);
    let deadline = started + Duration::from_secs(60);
    let mut sent = 0u64;
    let mut last_progress = Instant::now();
    loop {
        let mut rest: &[u8] = &frame;
        while !rest.is_empty() {
            match stream.write(rest) {
                Ok(0) => bail!("the connection accepts no more bytes"),
                Ok(n) => {
                    sent += n as u64;
                    last_progress = Instant::now();
                    rest = rest.get(n..).unwrap_or_default();
                }
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    stalled.store(true, Ordering::Relaxed);
                    ensure!(
                        Instant::now() < deadline,
                        "still connected after 60 s; {} sent",
                        mib(sent)
                    );
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    return Ok(Dropped {
                        sent,
                        stalled_for: last_progress.elapsed(),
                    });
                }
            }
        }
    }
}

/// Garbage where frames belong. Streams whose first frame is certain to be
/// invalid (a reserved opcode, an unmasked frame) must be failed with 1002;
/// for truly random streams the expected outcome is what ws-core's own
/// server-side state machine makes of the same bytes (1002, 1007 or 1009,
/// the echo of a close frame, or waiting for the rest of a frame), and the
/// live server must do exactly that.
fn random_after_handshake(binary: &Path, sizes: Sizes) -> Result<String> {
    with_server(binary, &[], 64 << 20, |server| {
        let mut rng = Rng::new(0x0ddb_a115);
        let mut garbage =
            |len: usize| -> Vec<u8> { (0..len).map(|_| rng.next_u32() as u8).collect() };
        // A reserved opcode (0x3) on a masked frame.
        let mut reserved = vec![0x83, 0x85];
        reserved.extend(garbage(4 + 5 + 64));
        // A well-formed binary frame without a mask.
        let mut unmasked = vec![0x82, 0x05];
        unmasked.extend(garbage(5 + 64));
        for (label, bytes) in [("reserved opcode", reserved), ("unmasked frame", unmasked)] {
            let outcome = send_garbage(server.addr, &bytes)?;
            ensure!(
                outcome.close_code == Some(1002),
                "{label}: {}, not close 1002",
                outcome.describe()
            );
        }
        let seed = time_seed();
        let mut rng = Rng::new(seed);
        let mut tally: std::collections::BTreeMap<String, u32> = Default::default();
        for stream_index in 0..sizes.random_streams {
            let len = 256 + (rng.next_u32() % 4096) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rng.next_u32() as u8).collect();
            let expected = oracle(&bytes);
            let outcome = send_garbage(server.addr, &bytes)?;
            let label = match expected {
                Expected::Close(code) => {
                    ensure!(
                        outcome.close_code == Some(code),
                        "random stream {stream_index} (seed {seed:#x}): {}, but ws-core fails it with {code}",
                        outcome.describe()
                    );
                    format!("close {code}")
                }
                Expected::Pending => {
                    ensure!(
                        outcome.close_code.is_none() && !outcome.ended,
                        "random stream {stream_index} (seed {seed:#x}): {}, but ws-core waits for more of its frame",
                        outcome.describe()
                    );
                    "a frame still arriving".to_owned()
                }
            };
            *tally.entry(label).or_default() += 1;
        }
        let tally: Vec<String> = tally
            .into_iter()
            .map(|(label, count)| format!("{count}× {label}"))
            .collect();
        Ok(format!(
            "reserved opcode → 1002, unmasked frame → 1002; {} random streams (seed {seed:#x}) \
             handled as ws-core's state machine says: {}",
            sizes.random_streams,
            tally.join(", ")
        ))
    })
}

/// What the server must do with a stream of garbage after the handshake.
enum Expected {
    /// Send a close frame with this code (a violation, or the echo of a
    /// close frame that the garbage happened to contain).
    Close(u16),
    /// Wait: the garbage ends inside a frame that is valid so far.
    Pending,
}

/// Feeds `bytes` to a server-side ws-core connection with the server's
/// default limits.
fn oracle(bytes: &[u8]) -> Expected {
    let mut connection = Connection::new(Role::Server, Config::default());
    connection.receive(bytes);
    loop {
        match connection.next_event() {
            Ok(Some(Event::Close(frame))) => {
                return Expected::Close(frame.map_or(1005, |frame| frame.code.0));
            }
            Ok(Some(_)) => {}
            Ok(None) => return Expected::Pending,
            Err(ws_core::Error::Protocol(violation)) => {
                return Expected::Close(violation.close_code().0);
            }
            Err(_) => return Expected::Close(1011),
        }
    }
}

fn send_garbage(addr: SocketAddr, bytes: &[u8]) -> Result<Outcome> {
    let mut raw = open_ws(addr)?;
    raw.stream.write_all(bytes)?;
    // A stream the server is right to keep waiting on is given a second.
    raw.read_until_close(Duration::from_secs(1))
}

/// Random bytes where the HTTP request belongs: 400 and closed.
fn random_instead_of_handshake(binary: &Path) -> Result<String> {
    with_server(binary, &[], 64 << 20, |server| {
        let seed = time_seed();
        let mut rng = Rng::new(seed);
        let streams = 5;
        for index in 0..streams {
            let len = 64 + (rng.next_u32() % 2048) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rng.next_u32() as u8).collect();
            let stream = connect(server.addr)?;
            (&stream).write_all(&bytes)?;
            let (response, closed) = read_to_close(&stream, IO_TIMEOUT);
            let status = status_code(&response).with_context(|| {
                format!(
                    "random stream {index} (seed {seed:#x}): no HTTP response: {:?}",
                    lossy_start(&response)
                )
            })?;
            ensure!(
                status == 400,
                "random stream {index} (seed {seed:#x}): answered {status}, not 400"
            );
            ensure!(closed, "random stream {index}: the connection stayed open");
        }
        Ok(format!(
            "{streams} random streams (seed {seed:#x}) answered 400 and closed"
        ))
    })
}

/// Past --max-connections (50 here, to keep the case small) new clients get
/// 503; once the connected ones leave, the full capacity is back.
fn connection_limit(binary: &Path) -> Result<String> {
    const LIMIT: usize = 50;
    let limit_arg = LIMIT.to_string();
    with_server(
        binary,
        &["--max-connections", &limit_arg],
        64 << 20,
        |server| {
            // The probe holds one slot.
            let fill = |count: usize| -> Result<Vec<Raw>> {
                (0..count)
                    .map(|index| {
                        open_ws(server.addr)
                            .with_context(|| format!("client {index} under the limit"))
                    })
                    .collect()
            };
            let clients = fill(LIMIT - 1)?;
            let refused = 10;
            for index in 0..refused {
                let status = refused_status(server.addr)
                    .with_context(|| format!("client {index} over the limit"))?;
                ensure!(
                    status == 503,
                    "client {index} over the limit was answered {status}, not 503"
                );
            }
            drop(clients);
            let started = Instant::now();
            let back = loop {
                match open_ws(server.addr) {
                    Ok(raw) => break raw,
                    Err(error) if started.elapsed() > Duration::from_secs(5) => {
                        return Err(
                            error.context("no new connection accepted 5 s after the clients left")
                        );
                    }
                    Err(_) => thread::sleep(Duration::from_millis(100)),
                }
            };
            let recovered = started.elapsed();
            let mut again = fill(LIMIT - 2)?;
            again.push(back);
            ensure!(
                refused_status(server.addr)? == 503,
                "the limit no longer holds after recovering"
            );
            drop(again);
            Ok(format!(
                "--max-connections {LIMIT}: {refused} clients over the limit got 503; \
                 {} ms after the others left, all {LIMIT} slots were usable again",
                recovered.as_millis()
            ))
        },
    )
}

/// The status of a handshake the server refuses.
fn refused_status(addr: SocketAddr) -> Result<u16> {
    let request = ClientRequest::new(&format!("ws://{addr}/"))?;
    let stream = connect(addr)?;
    match WebSocket::connect(stream, &request, Config::default()) {
        Ok(_) => bail!("the handshake succeeded"),
        Err(ws_core::Error::Handshake(HandshakeError::Rejected(rejection))) => Ok(rejection.status),
        Err(error) => Err(error).context("the handshake failed without a status"),
    }
}

/// Clients that vanish with a TCP reset in the middle of a frame: every
/// connection's descriptor must be released.
fn abrupt_disconnects(binary: &Path, sizes: Sizes) -> Result<String> {
    with_server(binary, &[], 96 << 20, |server| {
        let before = server.fds()?;
        let mut peak = before;
        let batch = 100;
        let mut done = 0;
        while done < sizes.resets {
            let count = batch.min(sizes.resets - done);
            let mut clients = Vec::with_capacity(count);
            for _ in 0..count {
                let mut raw = open_ws(server.addr)?;
                // Half of a 1000-byte frame.
                let mut half = BytesMut::new();
                FrameHeader {
                    payload_len: 1000,
                    ..masked(OpCode::Binary)
                }
                .encode(&mut half);
                half.extend_from_slice(&[0x55; 500]);
                raw.stream.write_all(&half)?;
                clients.push(raw);
            }
            peak = peak.max(server.fds()?);
            for raw in clients {
                socket2::SockRef::from(&raw.stream).set_linger(Some(Duration::ZERO))?;
                drop(raw);
            }
            done += count;
        }
        Ok(format!(
            "{} clients reset mid-frame (server fds peaked at {peak})",
            sizes.resets
        ))
    })
}

// ---- the frame of every case ----

/// Starts a server with `args` over the defaults, connects the probe, runs
/// `body`, then checks the probe, the descriptors, the memory bound and a
/// clean shutdown.
fn with_server(
    binary: &Path,
    args: &[&str],
    rss_bound: u64,
    body: impl FnOnce(&Server) -> Result<String>,
) -> Result<String> {
    let server = Server::start(binary, args)?;
    let fds_before = server.fds()?;
    let probe = Probe::start(server.addr)?;
    // The probe is seen working before the attack and after it, as well as
    // during it for as long as the attack lasts.
    probe.wait_for_echoes(PROBE_ECHOES)?;
    let outcome = body(&server);
    let probe_outcome = probe
        .wait_for_echoes(PROBE_ECHOES)
        .and_then(|()| probe.finish());
    let details = outcome.map_err(|error| error.context(server.log_hint()))?;
    let probe = probe_outcome?;
    let fds_after = server.wait_fds(fds_before, FD_SETTLE)?;
    ensure!(
        fds_after <= fds_before,
        "the server holds {fds_after} descriptors {} s after the case, {fds_before} before it: a leak",
        FD_SETTLE.as_secs()
    );
    let peak = server.status_kib("VmHWM")? * 1024;
    ensure!(
        peak <= rss_bound,
        "the server's RSS peaked at {} (bound {}){}",
        mib(peak),
        mib(rss_bound),
        server.log_hint()
    );
    server.stop()?;
    Ok(format!(
        "{details}; RSS peak {} (bound {}); {probe}; server fds {fds_before} → {fds_after}",
        mib(peak),
        mib(rss_bound),
    ))
}

/// A running `ws-server` with its PID, for `/proc`; ended when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: SocketAddr,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Server {
    /// Starts `binary --listen 127.0.0.1:0 --log-level warn ARGS` and waits
    /// for its ready line.
    pub(crate) fn start(binary: &Path, args: &[&str]) -> Result<Self> {
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0", "--log-level", "warn"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("could not start {}", binary.display()))?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                    let Ok(mut kept) = sink.lock() else { break };
                    kept.extend_from_slice(chunk.get(..n).unwrap_or_default());
                    let excess = kept.len().saturating_sub(16 * 1024);
                    kept.drain(..excess);
                }
            });
        }
        let lines = stdout_lines(child.stdout.take());
        let mut server = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr,
        };
        let line = lines
            .recv_timeout(IO_TIMEOUT)
            .map_err(|_| anyhow!("ws-server printed no ready line{}", server.log_hint()))?;
        let url = parse_ready_line(&line)
            .with_context(|| format!("unexpected first line {line:?} from ws-server"))?;
        server.addr = url
            .trim_start_matches("ws://")
            .trim_end_matches('/')
            .parse()
            .with_context(|| format!("no socket address in {line:?}"))?;
        Ok(server)
    }

    pub(crate) fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// A field of `/proc/PID/status` in KiB (VmRSS, VmHWM, VmPeak ...).
    pub(crate) fn status_kib(&self, field: &str) -> Result<u64> {
        let path = format!("/proc/{}/status", self.child.id());
        let status =
            std::fs::read_to_string(&path).with_context(|| format!("could not read {path}"))?;
        status
            .lines()
            .find_map(|line| {
                let value = line.strip_prefix(field)?.strip_prefix(':')?;
                value.trim().trim_end_matches("kB").trim().parse().ok()
            })
            .with_context(|| format!("no {field} in {path}"))
    }

    /// The server's open file descriptors.
    pub(crate) fn fds(&self) -> Result<usize> {
        let path = format!("/proc/{}/fd", self.child.id());
        Ok(std::fs::read_dir(&path)
            .with_context(|| format!("could not list {path}"))?
            .count())
    }

    /// Waits until at most `target` descriptors are open, or `within`
    /// passes; the last count either way.
    pub(crate) fn wait_fds(&self, target: usize, within: Duration) -> Result<usize> {
        let deadline = Instant::now() + within;
        loop {
            let fds = self.fds()?;
            if fds <= target || Instant::now() >= deadline {
                return Ok(fds);
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then the exit must come, with status 0, within 10 s.
    pub(crate) fn stop(mut self) -> Result<()> {
        terminate(self.child.id())?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait()? {
                ensure!(
                    status.success(),
                    "ws-server exited with {status} on SIGTERM{}",
                    self.log_hint()
                );
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "ws-server still runs 10 s after SIGTERM{}",
                self.log_hint()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many lines of the server's log (the last 16 KiB of it) contain
    /// `needle`.
    pub(crate) fn log_count(&self, needle: &str) -> usize {
        self.stderr
            .lock()
            .map(|kept| {
                String::from_utf8_lossy(&kept)
                    .lines()
                    .filter(|line| line.contains(needle))
                    .count()
            })
            .unwrap_or_default()
    }

    /// How many log lines contain `needle`, once `expected` of them have
    /// appeared or `LOG_WAIT` has passed. A client sees its connection
    /// dropped before the server's line about it has been written and read
    /// from its stderr, so a count taken at once can come up short.
    pub(crate) fn wait_log_count(&self, needle: &str, expected: usize) -> usize {
        let deadline = Instant::now() + LOG_WAIT;
        loop {
            let count = self.log_count(needle);
            if count >= expected || Instant::now() >= deadline {
                return count;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The end of the server's log, as context for a failure.
    pub(crate) fn log_hint(&self) -> String {
        let log = self
            .stderr
            .lock()
            .map(|kept| String::from_utf8_lossy(&kept).into_owned())
            .unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(3).collect();
        if tail.is_empty() {
            String::new()
        } else {
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!("; server log: {}", one_line(&tail.join("\n")))
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn stdout_lines(stdout: Option<std::process::ChildStdout>) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    if let Some(stdout) = stdout {
        thread::spawn(move || {
            use std::io::BufRead;
            for line in io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
    }
    receiver
}

/// SIGTERM through the `kill` command, which keeps xtask free of `unsafe`.
fn terminate(pid: u32) -> Result<()> {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("could not run `kill`")?;
    ensure!(status.success(), "`kill -TERM {pid}` failed ({status})");
    Ok(())
}

/// Builds `ws-server` (dev or release) and returns the binary's path.
pub(crate) fn build_server(workspace: &Workspace, release: bool) -> Result<PathBuf> {
    let mut command = workspace.cargo_command();
    command.args(["build", "-p", "ws-server"]);
    if release {
        command.arg("--release");
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    let status = process::status_within(&mut command, Duration::from_secs(30 * 60))?;
    ensure!(status.success(), "building ws-server failed ({status})");
    let path = workspace
        .target
        .join(if release { "release" } else { "debug" })
        .join(format!("ws-server{}", std::env::consts::EXE_SUFFIX));
    ensure!(path.is_file(), "{} was not built", path.display());
    Ok(path)
}

/// Raises this process's soft limit on open files to the hard limit: the
/// cases hold a thousand sockets at once, and the server, spawned from here,
/// inherits the raised limit (it raises its own as well).
pub(crate) fn raise_fd_limit() -> Result<u64> {
    rlimit::increase_nofile_limit(1 << 20).context("could not raise the open-file limit")
}

// ---- the well-behaved client ----

/// A client that sends a message every 10 ms for the whole case and checks
/// every echo.
struct Probe {
    stop: Arc<AtomicBool>,
    echoes: Arc<AtomicU64>,
    worker: JoinHandle<Result<ProbeStats>>,
}

#[derive(Debug, Default)]
struct ProbeStats {
    echoes: u64,
    max_latency: Duration,
}

impl Probe {
    fn start(addr: SocketAddr) -> Result<Self> {
        let request = ClientRequest::new(&format!("ws://{addr}/"))?;
        let stream = connect(addr)?;
        stream.set_read_timeout(Some(PROBE_LATENCY_BOUND))?;
        let (socket, _) = WebSocket::connect(stream, &request, Config::default())
            .context("the probe's handshake")?;
        let stop = Arc::new(AtomicBool::new(false));
        let echoes = Arc::new(AtomicU64::new(0));
        let (flag, counter) = (Arc::clone(&stop), Arc::clone(&echoes));
        let worker = thread::spawn(move || probe_loop(socket, &flag, &counter));
        Ok(Self {
            stop,
            echoes,
            worker,
        })
    }

    /// Waits until the probe has had `more` echoes from now on; fails if it
    /// stops getting them.
    fn wait_for_echoes(&self, more: u64) -> Result<()> {
        let target = self.echoes.load(Ordering::Relaxed) + more;
        let deadline = Instant::now() + PROBE_LATENCY_BOUND * (more as u32 + 1);
        while self.echoes.load(Ordering::Relaxed) < target {
            ensure!(
                !self.worker.is_finished() && Instant::now() < deadline,
                "the well-behaved client stopped getting echoes"
            );
            thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// Stops the probe; a summary if it saw nothing wrong.
    fn finish(self) -> Result<String> {
        self.stop.store(true, Ordering::Relaxed);
        let stats = self
            .worker
            .join()
            .map_err(|_| anyhow!("the probe panicked"))?
            .context("the well-behaved client")?;
        ensure!(
            stats.echoes > 0,
            "the well-behaved client got no echo at all"
        );
        Ok(format!(
            "probe {} echoes, max latency {} ms",
            stats.echoes,
            stats.max_latency.as_millis()
        ))
    }
}

fn probe_loop(
    mut socket: WebSocket<TcpStream>,
    stop: &AtomicBool,
    echoes: &AtomicU64,
) -> Result<ProbeStats> {
    let mut stats = ProbeStats::default();
    let mut index = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let size = (index * 997 % 3000) as usize;
        let text = index.is_multiple_of(2);
        let payload: Vec<u8> = if text {
            let letter = b'a' + (index % 26) as u8;
            vec![letter; size]
        } else {
            (0..size).map(|i| (i as u64 ^ index) as u8).collect()
        };
        let started = Instant::now();
        if text {
            socket.send_text(std::str::from_utf8(&payload).unwrap_or_default())
        } else {
            socket.send_binary(&payload)
        }
        .with_context(|| format!("sending message {index}"))?;
        let echo = loop {
            match socket.recv() {
                Ok(Some(Event::Text(echo))) if text => break echo.into_bytes(),
                Ok(Some(Event::Binary(echo))) if !text => break echo,
                Ok(Some(Event::Ping(_) | Event::Pong(_))) => {}
                Ok(other) => bail!("message {index}: got {other:?} instead of its echo"),
                Err(error) => {
                    return Err(error).with_context(|| {
                        format!(
                            "no echo of message {index} within {} s",
                            PROBE_LATENCY_BOUND.as_secs()
                        )
                    });
                }
            }
        };
        let latency = started.elapsed();
        ensure!(echo == payload, "message {index}: the echo differs");
        ensure!(
            latency <= PROBE_LATENCY_BOUND,
            "message {index}: echoed after {} ms",
            latency.as_millis()
        );
        stats.echoes += 1;
        echoes.store(stats.echoes, Ordering::Relaxed);
        stats.max_latency = stats.max_latency.max(latency);
        index += 1;
        thread::sleep(Duration::from_millis(10));
    }
    socket
        .close(ws_core::CloseCode::NORMAL, "done")
        .context("closing the probe")?;
    while socket
        .recv()
        .context("the probe's closing handshake")?
        .is_some()
    {}
    Ok(stats)
}

/// One echo on a fresh connection; how long it took.
fn echo_once(addr: SocketAddr) -> Result<Duration> {
    let started = Instant::now();
    let request = ClientRequest::new(&format!("ws://{addr}/"))?;
    let (mut socket, _) = WebSocket::connect(connect(addr)?, &request, Config::default())?;
    socket.send_text("still there?")?;
    match socket.recv()? {
        Some(Event::Text(text)) if text == "still there?" => {}
        other => bail!("got {other:?} instead of the echo"),
    }
    let took = started.elapsed();
    socket.close(ws_core::CloseCode::NORMAL, "")?;
    while socket.recv()?.is_some() {}
    Ok(took)
}

// ---- raw clients ----

/// A TCP connection with the I/O timeouts every client here uses.
fn connect(addr: SocketAddr) -> Result<TcpStream> {
    let stream =
        TcpStream::connect(addr).with_context(|| format!("could not connect to {addr}"))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(stream)
}

/// A client past the opening handshake that writes raw bytes; a client-side
/// ws-core connection only parses (and checks) what the server sends.
struct Raw {
    stream: TcpStream,
    parser: Connection,
}

fn open_ws(addr: SocketAddr) -> Result<Raw> {
    let request = ClientRequest::new(&format!("ws://{addr}/"))?;
    let (socket, _) = WebSocket::connect(connect(addr)?, &request, Config::default())
        .context("the opening handshake")?;
    let (stream, parser) = socket.into_parts();
    Ok(Raw { stream, parser })
}

/// How a connection ended, seen from the client.
#[derive(Debug, Default)]
struct Outcome {
    /// The code of the server's close frame (1005 for an empty one).
    close_code: Option<u16>,
    /// The TCP connection ended (EOF or reset).
    ended: bool,
}

impl Outcome {
    fn describe(&self) -> String {
        match (self.close_code, self.ended) {
            (Some(code), _) => format!("close {code}"),
            (None, true) => "the connection ended without a close frame".to_owned(),
            (None, false) => "no close frame in time".to_owned(),
        }
    }
}

impl Raw {
    /// Reads until the server's close frame, the end of the connection, or
    /// `within` (a quiet connection is not an error here: the outcome says).
    fn read_until_close(&mut self, within: Duration) -> Result<Outcome> {
        let deadline = Instant::now() + within;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            loop {
                match self.parser.next_event() {
                    Ok(Some(Event::Close(frame))) => {
                        return Ok(Outcome {
                            close_code: Some(frame.map_or(1005, |frame| frame.code.0)),
                            ended: false,
                        });
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(error) => return Err(error).context("the server's frames"),
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Outcome::default());
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    return Ok(Outcome {
                        close_code: None,
                        ended: true,
                    });
                }
                Ok(n) => self.parser.receive(buf.get(..n).unwrap_or_default()),
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    return Ok(Outcome {
                        close_code: None,
                        ended: true,
                    });
                }
            }
        }
    }

    /// Reads one data message, or says how the connection ended instead.
    fn read_message(&mut self, within: Duration) -> Result<Result<Vec<u8>>> {
        let deadline = Instant::now() + within;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match self.parser.next_event() {
                Ok(Some(Event::Binary(bytes))) => return Ok(Ok(bytes.to_vec())),
                Ok(Some(Event::Text(text))) => return Ok(Ok(text.into_bytes().to_vec())),
                Ok(Some(Event::Close(frame))) => {
                    return Ok(Err(anyhow!(
                        "the server closed with {frame:?} instead of echoing"
                    )));
                }
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(error) => return Err(error).context("the server's frames"),
            }
            ensure!(
                Instant::now() < deadline,
                "no echo within {} s",
                within.as_secs()
            );
            let n = read_some(&mut self.stream, &mut buf)?;
            if n == 0 {
                return Ok(Err(anyhow!(
                    "the server ended the connection instead of echoing"
                )));
            }
            self.parser.receive(buf.get(..n).unwrap_or_default());
        }
    }
}

/// One read, retrying on EINTR; timeouts are errors.
fn read_some(stream: &mut TcpStream, buf: &mut [u8]) -> Result<usize> {
    loop {
        match stream.read(buf) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            other => return other.context("reading from the server"),
        }
    }
}

/// Everything the peer sends until it closes (or `within` passes): the bytes,
/// and whether the connection ended. A reset after the response counts as the
/// end.
fn read_to_close(stream: &TcpStream, within: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + within;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let mut reader = stream;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || reader.set_read_timeout(Some(left)).is_err() {
            return (data, false);
        }
        match reader.read(&mut buf) {
            Ok(0) => return (data, true),
            Ok(n) => data.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return (data, false);
            }
            Err(_) => return (data, true),
        }
    }
}

/// The status code of an HTTP/1.1 response.
fn status_code(response: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(response.get(..response.len().min(64))?).ok()?;
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

fn lossy_start(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes.get(..bytes.len().min(80)).unwrap_or_default()).into_owned()
}

/// A final frame header with a fresh mask key, as a client sends.
fn masked(opcode: OpCode) -> FrameHeader {
    FrameHeader {
        mask: Some(mask_key()),
        ..FrameHeader::new(opcode, 0)
    }
}

fn mask_key() -> [u8; 4] {
    Rng::new(time_seed()).next_u32().to_be_bytes()
}

// ---- small utilities, shared with `soak` ----

/// SplitMix64: a tiny deterministic generator, so that a seed printed in a
/// failure reproduces the same bytes with any version of any crate.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// A value in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// A seed that differs from run to run.
pub(crate) fn time_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64)
}

pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn kib(bytes: usize) -> String {
    format!("{} KiB", bytes / 1024)
}

pub(crate) fn secs(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_reject_unknown_flags() {
        let options = parse_options(&["--quick".into(), "--release".into()]).unwrap();
        assert!(options.quick && options.release);
        assert!(parse_options(&["--fast".into()]).is_err());
    }

    #[test]
    fn status_code_reads_the_status_line() {
        assert_eq!(
            status_code(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            Some(431)
        );
        assert_eq!(status_code(b"garbage"), None);
        assert_eq!(status_code(b""), None);
    }

    #[test]
    fn oracle_fails_a_reserved_opcode_and_waits_inside_a_valid_frame() {
        assert!(matches!(
            oracle(&[0x83, 0x80, 1, 2, 3, 4]),
            Expected::Close(1002)
        ));
        // A masked binary frame announcing 10 bytes, 2 of them sent.
        assert!(matches!(
            oracle(&[0x82, 0x8A, 1, 2, 3, 4, 0, 0]),
            Expected::Pending
        ));
    }

    #[test]
    fn rng_is_deterministic_per_seed() {
        let a: Vec<u64> = (0..4)
            .scan(Rng::new(7), |rng, _| Some(rng.next_u64()))
            .collect();
        let b: Vec<u64> = (0..4)
            .scan(Rng::new(7), |rng, _| Some(rng.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(Rng::new(7).next_u64(), Rng::new(8).next_u64());
        assert!(Rng::new(1).below(10) < 10);
    }
}
