//! `ws-bench`: a load generator for WebSocket echo servers (echo throughput
//! and latency, handshakes per second, idle connections). See `ws-bench
//! --help` for the options, the output and the exit status table.

use std::process::ExitCode;

fn main() -> ExitCode {
    ws_bench::main("ws-bench", std::env::args_os())
}
