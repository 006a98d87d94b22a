#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! `ws-bench` against small in-process servers on loopback (ws-client's
//! tests/bench.rs checks that `ws-client bench` runs the same program).
//!
//! Test helpers may panic: a failed setup step or assertion fails the test.
//! Every run is about a second long, has an `assert_cmd` timeout, and every
//! server socket a read timeout, so a hang fails instead of blocking CI.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use assert_cmd::Command;
use serde_json::Value;
use ws_core::blocking::WebSocket;
use ws_core::handshake::{AcceptOptions, HandshakeError};
use ws_core::{Config, Message};

/// The longest a run may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(20);
/// The longest a server connection waits for the client.
const SERVER_LIMIT: Duration = Duration::from_secs(20);

/// `ws-bench URL` for about one second, quietly, with JSON output.
fn bench(url: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ws-bench"));
    command
        .args([url, "--warmup", "0", "--duration", "1s", "--json", "-q"])
        .args(args)
        .timeout(RUN_LIMIT);
    command
}

fn json_of(output: &std::process::Output) -> Value {
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    serde_json::from_str(stdout.trim()).unwrap_or_else(|error| panic!("{error}: {stdout:?}"))
}

/// A server on a loopback port that runs `serve` on every connection, each
/// in a thread of its own; returns its `ws://` URL.
fn server(serve: fn(TcpStream)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            stream.set_read_timeout(Some(SERVER_LIMIT)).unwrap();
            stream.set_write_timeout(Some(SERVER_LIMIT)).unwrap();
            thread::spawn(move || serve(stream));
        }
    });
    url
}

/// Sends back every message; `corrupt_every` > 0 flips the first byte of
/// every n-th echo.
fn echo_with(stream: TcpStream, corrupt_every: usize) {
    let Ok(mut socket) = WebSocket::accept(stream) else {
        return;
    };
    let mut count = 0;
    while let Ok(Some(event)) = socket.recv() {
        let Some(message) = event.into_message() else {
            continue;
        };
        count += 1;
        let message = match message {
            Message::Binary(bytes) if corrupt_every > 0 && count % corrupt_every == 0 => {
                let mut bytes = bytes.to_vec();
                if let Some(first) = bytes.first_mut() {
                    *first ^= 0xff;
                }
                Message::Binary(bytes.into())
            }
            other => other,
        };
        if socket.send(message).is_err() {
            return;
        }
    }
}

fn echo(stream: TcpStream) {
    echo_with(stream, 0);
}

fn corrupting_echo(stream: TcpStream) {
    echo_with(stream, 50);
}

/// Accepts permessage-deflate, as ws-server does.
fn deflate_echo(stream: TcpStream) {
    let config = Config::default().deflate(Some(ws_core::deflate::DeflateConfig::default()));
    let Ok((mut socket, _)) = WebSocket::accept_with(stream, config, |_| Ok(Default::default()))
    else {
        return;
    };
    while let Ok(Some(event)) = socket.recv() {
        if let Some(message) = event.into_message()
            && socket.send(message).is_err()
        {
            return;
        }
    }
}

/// Echoes only for upgrades from Origin `http://bench.example` that offer
/// the `chat` subprotocol and carry `X-Token: 42`; refuses others with 403.
fn picky_echo(stream: TcpStream) {
    let accepted = WebSocket::accept_with(stream, Config::default(), |request| {
        let token = request.headers().get_str("X-Token");
        if request.origin.as_deref() == Some("http://bench.example")
            && request.protocols.iter().any(|protocol| protocol == "chat")
            && token == Some("42")
        {
            Ok(AcceptOptions::default())
        } else {
            Err(HandshakeError::ForbiddenOrigin(
                request.origin.clone().unwrap_or_default(),
            ))
        }
    });
    let Ok((mut socket, _)) = accepted else {
        return;
    };
    while let Ok(Some(event)) = socket.recv() {
        if let Some(message) = event.into_message()
            && socket.send(message).is_err()
        {
            return;
        }
    }
}

fn tcp_echo(mut stream: TcpStream) {
    let mut buffer = [0u8; 4096];
    while let Ok(read) = stream.read(&mut buffer) {
        if read == 0 || stream.write_all(&buffer[..read]).is_err() {
            return;
        }
    }
}

/// Answers every upgrade with 403.
fn forbidding(mut stream: TcpStream) {
    let mut buffer = [0u8; 4096];
    let _ = stream.read(&mut buffer);
    let _ = stream.write_all(
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nConnection: close\r\n\r\nforbidden",
    );
}

#[test]
fn echo_run_counts_messages_and_finds_no_mismatch() {
    let url = server(echo);
    let output = bench(
        &url,
        &["--connections", "4", "--in-flight", "2", "--size", "100"],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let json = json_of(&output);
    assert_eq!(json["mode"], "echo");
    assert!(json["messages"].as_u64().unwrap() > 0, "{json}");
    assert!(json["msgs_per_sec"].as_f64().unwrap() > 0.0, "{json}");
    assert_eq!(json["mismatches"], 0, "{json}");
    assert_eq!(json["errors"], 0, "{json}");
    assert_eq!(json["connected"], 4, "{json}");
    // 100-byte payloads in frames of 2 header bytes and a 4-byte mask.
    assert_eq!(json["frame_bytes"], 106, "{json}");
    assert!(json["latency_us"]["p50"].as_f64().unwrap() > 0.0, "{json}");
    assert!(json["client_cpu_seconds"].is_number(), "{json}");
}

#[test]
fn closing_with_large_echoes_in_flight_counts_no_error() {
    // When the run ends, echoes of 64 KiB are half received on most
    // connections: the closing handshake drops them and must not count them
    // as errors (it once parsed their rest as frame headers).
    let url = server(echo);
    let output = bench(
        &url,
        &["--connections", "8", "--in-flight", "2", "--size", "64KiB"],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let json = json_of(&output);
    assert_eq!(json["errors"], 0, "{json}");
    assert_eq!(json["mismatches"], 0, "{json}");
}

#[test]
fn text_echo_of_json_payload_is_checked_too() {
    let url = server(echo);
    let output = bench(
        &url,
        &["-c", "2", "--text", "--payload", "json", "--size", "1KiB"],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let json = json_of(&output);
    assert_eq!(json["type"], "text");
    assert_eq!(json["mismatches"], 0, "{json}");
    assert!(json["messages"].as_u64().unwrap() > 0, "{json}");
}

#[test]
fn corrupted_echo_is_a_mismatch_and_a_failed_run() {
    let url = server(corrupting_echo);
    let output = bench(&url, &["--connections", "2"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let json = json_of(&output);
    assert!(json["mismatches"].as_u64().unwrap() > 0, "{json}");
    assert!(
        json["first_mismatch"]
            .as_str()
            .unwrap()
            .contains("differs from what was sent at byte 0"),
        "{json}"
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("mismatches"), "{stderr}");
}

#[test]
fn deflate_run_reports_the_compression_ratio() {
    let url = server(deflate_echo);
    let output = bench(
        &url,
        &[
            "-c",
            "2",
            "--deflate",
            "--payload",
            "json",
            "--size",
            "4KiB",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let json = json_of(&output);
    assert_eq!(json["mismatches"], 0, "{json}");
    let ratio = json["compression_ratio"].as_f64().unwrap();
    assert!(
        ratio > 0.0 && ratio < 0.5,
        "JSON text should compress: {json}"
    );
    assert!(json["frame_bytes"].as_u64().unwrap() < 2048, "{json}");
}

#[test]
fn deflate_against_a_server_without_it_fails_the_handshake() {
    let url = server(echo);
    let output = bench(&url, &["-c", "1", "--deflate"]).output().unwrap();
    assert_eq!(output.status.code(), Some(4), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("did not accept permessage-deflate"),
        "{stderr}"
    );
}

#[test]
fn origin_subprotocol_and_headers_reach_the_server() {
    let url = server(picky_echo);
    let options = [
        "-o",
        "http://bench.example",
        "-s",
        "chat",
        "-H",
        "X-Token: 42",
    ];
    for mode in ["echo", "connect"] {
        let output = bench(&url, &[&["--mode", mode, "-c", "2"][..], &options].concat())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{mode}: {output:?}");
        assert_eq!(json_of(&output)["errors"], 0, "{mode}: {output:?}");
    }
    // The same long names, and without the Origin the server refuses.
    let output = bench(
        &url,
        &[
            "-c",
            "1",
            "--subprotocol",
            "chat",
            "--header",
            "X-Token: 42",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(4), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("403"), "{stderr}");
}

#[test]
fn connect_mode_counts_handshakes() {
    let url = server(echo);
    let output = bench(&url, &["--mode", "connect", "--connections", "2"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let json = json_of(&output);
    assert!(json["handshakes"].as_u64().unwrap() > 0, "{json}");
    assert!(json["handshakes_per_sec"].as_f64().unwrap() > 0.0, "{json}");
    assert_eq!(json["errors"], 0, "{json}");
}

#[test]
fn progress_clock_starts_again_with_the_measurement_and_its_digits_are_plain() {
    let url = server(echo);
    // Not quiet: the progress lines go to stderr, a pipe here, one a second.
    let output = Command::new(env!("CARGO_BIN_EXE_ws-bench"))
        .args([
            &url,
            "-c",
            "4",
            "--in-flight",
            "8",
            "--warmup",
            "2s",
            "--duration",
            "1500ms",
            "--json",
        ])
        .timeout(RUN_LIMIT)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    let lines = |phase: &str| -> Vec<Vec<String>> {
        stderr
            .lines()
            .filter(|line| line.contains(&format!(" {phase} ")))
            .map(|line| line.split_whitespace().map(str::to_owned).collect())
            .collect()
    };
    let (warmup, measuring) = (lines("warmup"), lines("measuring"));
    assert!(!warmup.is_empty() && !measuring.is_empty(), "{stderr}");
    // `   1.0 s  measuring  4/4 open  12345 msg/s  0 errors  0 mismatches`:
    // eleven words, the rate one number (no thousands separator).
    for words in warmup.iter().chain(&measuring) {
        assert_eq!(words.len(), 11, "{words:?} in {stderr}");
        assert!(words[5].parse::<u64>().is_ok(), "{words:?} in {stderr}");
    }
    // The first measuring line comes one second into the window; a clock
    // counting from the start of the run would read 3 s or more there.
    let first: f64 = measuring[0][0].parse().unwrap();
    assert!(first < 2.0, "{stderr}");
}

#[test]
fn idle_mode_announces_the_open_connections_and_closes_them() {
    let url = server(echo);
    let mut command = Command::new(env!("CARGO_BIN_EXE_ws-bench"));
    let output = command
        .args([
            &url,
            "--mode",
            "idle",
            "-c",
            "20",
            "--duration",
            "500ms",
            "-q",
        ])
        .timeout(RUN_LIMIT)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.starts_with("20 connections open\n"), "{stdout}");
    assert!(stdout.contains("20 of 20 connections open"), "{stdout}");
}

#[test]
fn tcp_mode_ping_pongs_plain_bytes() {
    let url = server(tcp_echo).replacen("ws://", "tcp://", 1);
    let output = bench(&url, &["--mode", "tcp", "-c", "2", "--size", "300"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let json = json_of(&output);
    assert!(json["messages"].as_u64().unwrap() > 0, "{json}");
    assert_eq!(json["mismatches"], 0, "{json}");
    assert_eq!(json["payload_bytes"].as_u64().unwrap() % 300, 0, "{json}");
}

#[test]
fn refused_connections_exit_3_with_one_line() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}/");
    let output = bench(&url, &["-c", "3"]).output().unwrap();
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no connection could be made"), "{stderr}");
    assert!(stderr.contains("refused"), "{stderr}");
}

#[test]
fn rejected_handshakes_exit_4_with_the_status() {
    let url = server(forbidding);
    let output = bench(&url, &["-c", "2"]).output().unwrap();
    assert_eq!(output.status.code(), Some(4), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("403 Forbidden"), "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    let url = "ws://127.0.0.1:9/";
    for args in [
        &["--mode", "tcp", "--size", "0"][..],
        &["--connections", "100001"][..],
        &["--duration", "2h"][..],
    ] {
        let output = bench(url, args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
    }
    for url in ["http://127.0.0.1:9/", "ws://127.0.0.1:9/#fragment"] {
        let output = bench(url, &[]).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{url}: {output:?}");
    }
    let output = bench("wss://127.0.0.1:9/", &[]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("plain ws:// only, not wss://"), "{stderr}");
}

#[test]
fn bench_help_explains_the_mask_key_reuse() {
    let output = Command::new(env!("CARGO_BIN_EXE_ws-bench"))
        .arg("--help")
        .timeout(RUN_LIMIT)
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(help.contains("Usage: ws-bench"), "{help}");
    assert!(help.contains("Mask keys are therefore reused"), "{help}");
}

/// An HTTP/2 echo server (ws-core's, prior knowledge on plain TCP) on a
/// thread of its own; returns its `ws://` URL and the counts of TCP
/// connections and WebSocket streams it accepted.
fn http2_server() -> (
    String,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let connections = Arc::new(AtomicUsize::new(0));
    let streams = Arc::new(AtomicUsize::new(0));
    let (counted_connections, counted_streams) = (Arc::clone(&connections), Arc::clone(&streams));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((tcp, _)) = listener.accept().await {
                counted_connections.fetch_add(1, Ordering::SeqCst);
                let streams = Arc::clone(&counted_streams);
                tokio::spawn(ws_core::http2::serve(
                    tcp,
                    Config::default(),
                    ws_core::http2::Settings::default(),
                    move |request| {
                        let Ok(mut socket) = request.accept() else {
                            return;
                        };
                        streams.fetch_add(1, Ordering::SeqCst);
                        tokio::spawn(async move {
                            while let Ok(Ok(Some(event))) =
                                tokio::time::timeout(SERVER_LIMIT, socket.recv()).await
                            {
                                if let Some(message) = event.into_message()
                                    && socket.send(message).await.is_err()
                                {
                                    break;
                                }
                            }
                        });
                    },
                ));
            }
        });
    });
    (url, connections, streams)
}

#[test]
fn http2_runs_many_websockets_over_few_connections() {
    use std::sync::atomic::Ordering;

    let (url, connections, streams) = http2_server();
    let output = bench(
        &url,
        &[
            "--http2",
            "--streams-per-connection",
            "3",
            "-c",
            "6",
            "--in-flight",
            "2",
            "--size",
            "100",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let json = json_of(&output);
    assert!(json["messages"].as_u64().unwrap() > 0, "{json}");
    assert_eq!(json["mismatches"], 0, "{json}");
    assert_eq!(json["errors"], 0, "{json}");
    assert_eq!(json["connected"], 6, "{json}");
    // Six WebSockets, three to a connection.
    assert_eq!(streams.load(Ordering::SeqCst), 6);
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

#[test]
fn http2_against_an_http_1_1_server_fails_the_handshakes_and_says_why() {
    let url = server(echo);
    let output = bench(&url, &["--http2", "-c", "2"]).output().unwrap();
    assert_eq!(output.status.code(), Some(4), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("HTTP/2"), "{stderr}");
}

#[test]
fn http2_is_for_echo_mode_and_streams_need_it() {
    let url = server(echo);
    let output = bench(&url, &["--http2", "--mode", "idle"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--http2 works in echo mode only"),
        "{stderr}"
    );
    bench(&url, &["--streams-per-connection", "4"])
        .assert()
        .code(2);
}
