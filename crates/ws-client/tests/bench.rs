// A failed setup step or assertion fails the test.
#![allow(clippy::unwrap_used)]
//! `ws-client bench` is the ws-bench load generator under another name: the
//! same options and JSON output, its own name in help and error lines. The
//! load generator itself is tested in crates/ws-bench/tests/bench.rs.
//!
//! The runs go to the real ws-server, in-process, and have an `assert_cmd`
//! timeout, so a hang fails instead of blocking CI.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use assert_cmd::Command;
use serde_json::Value;
use ws_server::{Server, ServerConfig};

/// The longest a run may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(20);

/// ws-server on a loopback port, in a thread of its own that lives as long
/// as the test process; its URL.
fn ws_server() -> String {
    let (address_tx, address_rx) = mpsc::channel();
    thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let server = Server::bind("127.0.0.1:0", ServerConfig::default())
                .await
                .unwrap();
            address_tx.send(server.local_addr().unwrap()).unwrap();
            server.run(std::future::pending()).await;
        });
    });
    format!("ws://{}/", address_rx.recv_timeout(RUN_LIMIT).unwrap())
}

fn ws_client() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ws-client"));
    command.timeout(RUN_LIMIT);
    command
}

#[test]
fn bench_subcommand_runs_the_load_generator_with_its_options_and_json() {
    let url = ws_server();
    let output = ws_client()
        .args([
            "bench",
            &url,
            "-c",
            "2",
            "--size",
            "100",
            "--warmup",
            "0",
            "--duration",
            "500ms",
            "--json",
            "-q",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let json: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(json["mode"], "echo", "{json}");
    assert_eq!(json["connected"], 2, "{json}");
    assert_eq!(json["size"], 100, "{json}");
    assert_eq!(json["errors"], 0, "{json}");
    assert_eq!(json["mismatches"], 0, "{json}");
    assert!(json["messages"].as_u64().unwrap() > 0, "{json}");
    for field in ["msgs_per_sec", "mb_per_sec", "latency_us", "wire_bytes"] {
        assert!(json.get(field).is_some(), "{field} missing: {json}");
    }
}

#[test]
fn bench_subcommand_names_itself_in_help_and_errors() {
    let output = ws_client().args(["bench", "--help"]).output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(help.contains("Usage: ws-client bench"), "{help}");

    let output = ws_client()
        .args(["bench", "wss://127.0.0.1:9/"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.starts_with("ws-client bench: "), "{stderr}");
}
