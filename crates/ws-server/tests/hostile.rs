//! Hostile clients the server must shed without help: clients that do not
//! read their echoes, and the open-file limit a busy server needs.

// Test helpers may panic: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::{IO_TIMEOUT, ServerProcess, next_event};
use ws_core::low_level::{FrameHeader, encode_frame};
use ws_core::{Event, OpCode};

/// A masked binary frame of `size` bytes, as a client sends it.
fn binary_frame(size: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut frame = BytesMut::new();
    let header = FrameHeader {
        mask: Some([0x12, 0x34, 0x56, 0x78]),
        ..FrameHeader::new(OpCode::Binary, 0)
    };
    encode_frame(&mut frame, header, &payload);
    frame.to_vec()
}

/// Writes `frame` over and over until a write fails (the server dropped the
/// connection) or `limit` passes; returns the time until the failure. Sets
/// `stalled` once a write has made no progress for 100 ms: the server has
/// stopped reading.
fn write_until_dropped(
    stream: &mut TcpStream,
    frame: &[u8],
    limit: Duration,
    stalled: &AtomicBool,
) -> Option<Duration> {
    stream
        .set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let started = Instant::now();
    loop {
        let mut rest = frame;
        while !rest.is_empty() {
            match stream.write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(error)
                    if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    stalled.store(true, Ordering::Relaxed);
                    if started.elapsed() > limit {
                        return None;
                    }
                }
                Err(_) => return Some(started.elapsed()),
            }
        }
    }
}

#[test]
fn a_client_that_never_reads_is_dropped_once_its_writes_stay_blocked() {
    // A backlog cap out of reach, so that the write deadline, not the cap,
    // drops the client: which came first depended on the machine's load.
    let server = ServerProcess::start(&[
        "--close-timeout",
        "1s",
        "--max-backlog",
        "1GiB",
        "--log-level",
        "warn",
    ]);
    let mut stream = common::raw_upgrade(&server);
    let frame = binary_frame(256 * 1024);
    let stalled = AtomicBool::new(false);
    let dropped = write_until_dropped(&mut stream, &frame, Duration::from_secs(20), &stalled);
    assert!(
        dropped.is_some(),
        "a client that reads nothing was still connected after 20 s"
    );
    server.wait_for_log("client read nothing while the server had data for it; dropped");
    // The server goes on serving others.
    let mut client = server.connect();
    client.send_text("still here").unwrap();
    assert_eq!(next_event(&mut client), Event::Text("still here".into()));
}

#[test]
fn a_client_that_stops_reading_with_echoes_queued_is_dropped_over_the_backlog_cap() {
    // The close timeout is also the write deadline, which runs while the
    // server reads ahead 16 MiB before the client's writes stall (0.4-0.7 s
    // here on a quiet machine): at 1 s, a loaded machine let it drop the
    // client before it read anything, and the cap was never reached.
    let server = ServerProcess::start(&[
        "--max-backlog",
        "256KiB",
        "--close-timeout",
        "5s",
        "--log-level",
        "warn",
    ]);
    let mut stream = common::raw_upgrade(&server);
    let mut reader = stream.try_clone().unwrap();
    let stalled = Arc::new(AtomicBool::new(false));
    let writes_stalled = Arc::clone(&stalled);
    // One burst of reading once the server has stopped reading (after it
    // read ahead while its writes were blocked): its writes get through, it
    // works through what it read ahead, and its unsent echoes pass the cap
    // before the client stops reading for good.
    let reading = thread::spawn(move || {
        let deadline = Instant::now() + IO_TIMEOUT;
        while !writes_stalled.load(Ordering::Relaxed) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        while total < 4 << 20 {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
        total
    });
    let frame = binary_frame(16 * 1024);
    let dropped = write_until_dropped(&mut stream, &frame, Duration::from_secs(20), &stalled);
    let read = reading.join().unwrap();
    assert!(read > 0, "the client read nothing");
    assert!(
        dropped.is_some(),
        "the client was still connected after 20 s; log:\n{}",
        server.stderr()
    );
    server.wait_for_log("client does not read its echoes; dropped");
}

#[test]
fn a_client_that_reads_its_echoes_is_throttled_not_dropped() {
    let server = ServerProcess::start(&["--close-timeout", "1s"]);
    let mut client = server.connect();
    let payload = vec![0xA5u8; 1 << 20];
    let count = 24;
    let mut writer = client.get_ref().try_clone().unwrap();
    let frame = binary_frame(payload.len());
    // The whole burst (more than the default backlog cap of 20 MiB) goes out
    // before any echo is read; the server must slow the sender down, not
    // drop it, because the client does read.
    let sending = thread::spawn(move || {
        for _ in 0..count {
            writer.write_all(&frame).unwrap();
        }
    });
    for index in 0..count {
        match next_event(&mut client) {
            Event::Binary(echo) => assert_eq!(echo.len(), payload.len(), "echo {index}"),
            other => panic!("echo {index}: {other:?}"),
        }
    }
    sending.join().unwrap();
}

/// The soft and hard "Max open files" of a process.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].to_owned(), fields[4].to_owned())
}

#[test]
fn the_server_raises_its_open_file_limit_to_the_hard_limit() {
    // Started with a soft limit of 256, as a stingy shell would give it.
    let mut child = Command::new("sh")
        .args([
            "-c",
            "ulimit -Sn 256 && exec \"$0\" --listen 127.0.0.1:0",
            assert_cmd::cargo::cargo_bin!("ws-server").to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // `exec` keeps the PID; the ready line says the limit is in place.
    let stdout = child.stdout.take().unwrap();
    let (lines, ready) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = lines.send(line);
    });
    let line = ready.recv_timeout(IO_TIMEOUT);
    let limits = open_file_limits(child.id());
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.unwrap().starts_with("listening on ws://"));
    let (soft, hard) = limits;
    if hard == "256" {
        // Nothing to raise to on this machine.
        return;
    }
    assert_ne!(soft, "256", "the soft limit was not raised");
    assert!(
        hard == "unlimited" || soft == hard,
        "soft limit {soft}, hard limit {hard}"
    );
}
