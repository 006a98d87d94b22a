//! The results of a run: the figures derived from the counters, as a human
//! summary or one JSON object.

use std::time::Duration;

use serde_json::{Value, json};

use crate::args::{BenchMode, PayloadKind};
use crate::progress::count;
use crate::stats::Latency;

/// Everything a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// What was measured.
    pub mode: BenchMode,
    /// The target as given.
    pub url: String,
    /// Connections asked for (concurrent loops in connect mode).
    pub connections: usize,
    /// Connections that were opened.
    pub connected: u64,
    /// Payload bytes per message.
    pub size: usize,
    /// Messages outstanding per connection.
    pub in_flight: usize,
    /// Text messages rather than binary.
    pub text: bool,
    /// The payload's content.
    pub payload: PayloadKind,
    /// permessage-deflate was on.
    pub deflate: bool,
    /// The warmup asked for.
    pub warmup: Duration,
    /// The length of the measured window (shorter when interrupted).
    pub window: Duration,
    /// SIGINT/SIGTERM ended the run.
    pub interrupted: bool,
    /// Echoes (connect mode: handshakes) completed in the window.
    pub count: u64,
    /// Payload bytes of those echoes.
    pub payload_bytes: u64,
    /// Bytes read from the sockets in the window.
    pub wire_in: u64,
    /// Bytes written to the sockets in the window.
    pub wire_out: u64,
    /// The length of one frame as sent (header, mask, compressed payload).
    pub frame_len: Option<usize>,
    /// Latency percentiles of the window.
    pub latency: Option<Latency>,
    /// Failures on open connections.
    pub errors: u64,
    /// Echoes that differed from what was sent.
    pub mismatches: u64,
    /// Attempts that could not connect.
    pub connect_failures: u64,
    /// Attempts whose handshake failed.
    pub handshake_failures: u64,
    /// The first failure, for the user to act on.
    pub first_error: Option<String>,
    /// The first mismatch.
    pub first_mismatch: Option<String>,
    /// The load generator's CPU time over the window.
    pub client_cpu: Option<Duration>,
    /// The `--server-pid` process.
    pub server_pid: Option<u32>,
    /// Its CPU time over the window.
    pub server_cpu: Option<Duration>,
    /// Idle mode's figures.
    pub idle: Option<IdleFigures>,
}

/// What idle mode measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleFigures {
    /// Connections open once all attempts were over.
    pub open: u64,
    /// How long opening them took.
    pub open_time: Duration,
    /// How long they were held.
    pub held: Duration,
    /// The server's resident memory before the first connection.
    pub rss_before: Option<u64>,
    /// Its resident memory with every connection open.
    pub rss_after: Option<u64>,
}

impl IdleFigures {
    /// The server's memory growth per open connection, in bytes.
    pub fn rss_per_connection(&self) -> Option<f64> {
        let (before, after) = (self.rss_before?, self.rss_after?);
        (self.open > 0).then(|| (after as f64 - before as f64) / self.open as f64)
    }
}

impl Summary {
    /// All failures: connection attempts and open connections.
    pub fn total_errors(&self) -> u64 {
        self.errors + self.connect_failures + self.handshake_failures
    }

    /// Completed echoes (or handshakes) per second of the window.
    pub fn rate(&self) -> f64 {
        per_second(self.count as f64, self.window)
    }

    /// Payload megabytes (10^6 bytes) echoed per second.
    pub fn mb_per_sec(&self) -> f64 {
        per_second(self.payload_bytes as f64, self.window) / 1e6
    }

    /// Received wire bytes per payload byte (deflate only).
    pub fn compression_ratio(&self) -> Option<f64> {
        (self.deflate && self.payload_bytes > 0)
            .then(|| self.wire_in as f64 / self.payload_bytes as f64)
    }

    /// Server CPU time per echo (or handshake), in microseconds.
    pub fn server_cpu_per_unit_us(&self) -> Option<f64> {
        let cpu = self.server_cpu?;
        (self.count > 0).then(|| cpu.as_secs_f64() * 1e6 / self.count as f64)
    }

    /// The load generator's CPU use as a share of one core.
    pub fn client_cpu_share(&self) -> Option<f64> {
        let cpu = self.client_cpu?;
        (!self.window.is_zero()).then(|| cpu.as_secs_f64() / self.window.as_secs_f64())
    }

    /// The summary as one JSON object.
    pub fn to_json(&self) -> Value {
        let mut value = json!({
            "mode": self.mode.name(),
            "url": self.url,
            "connections": self.connections,
            "interrupted": self.interrupted,
            "errors": self.total_errors(),
            "connect_failures": self.connect_failures,
            "handshake_failures": self.handshake_failures,
            "first_error": self.first_error,
        });
        let extra = match (self.mode, &self.idle) {
            (BenchMode::Idle, Some(idle)) => json!({
                "open": idle.open,
                "open_seconds": idle.open_time.as_secs_f64(),
                "held_seconds": idle.held.as_secs_f64(),
                "server_pid": self.server_pid,
                "server_rss_before_bytes": idle.rss_before,
                "server_rss_after_bytes": idle.rss_after,
                "server_rss_per_connection_bytes": idle.rss_per_connection(),
            }),
            (BenchMode::Connect, _) => json!({
                "warmup_s": self.warmup.as_secs_f64(),
                "duration_s": self.window.as_secs_f64(),
                "deflate": self.deflate,
                "handshakes": self.count,
                "handshakes_per_sec": self.rate(),
                "latency_us": self.latency.map(latency_json),
                "client_cpu_seconds": self.client_cpu.map(|cpu| cpu.as_secs_f64()),
                "server_pid": self.server_pid,
                "server_cpu_seconds": self.server_cpu.map(|cpu| cpu.as_secs_f64()),
                "server_cpu_us_per_handshake": self.server_cpu_per_unit_us(),
            }),
            _ => json!({
                "connected": self.connected,
                "size": self.size,
                "in_flight": self.in_flight,
                "type": if self.mode == BenchMode::Tcp { "tcp" } else if self.text { "text" } else { "binary" },
                "payload": self.payload.name(),
                "deflate": self.deflate,
                "warmup_s": self.warmup.as_secs_f64(),
                "duration_s": self.window.as_secs_f64(),
                "messages": self.count,
                "msgs_per_sec": self.rate(),
                "mb_per_sec": self.mb_per_sec(),
                "latency_us": self.latency.map(latency_json),
                "mismatches": self.mismatches,
                "first_mismatch": self.first_mismatch,
                "wire_bytes": self.wire_in,
                "wire_bytes_sent": self.wire_out,
                "payload_bytes": self.payload_bytes,
                "frame_bytes": self.frame_len,
                "compression_ratio": self.compression_ratio(),
                "client_cpu_seconds": self.client_cpu.map(|cpu| cpu.as_secs_f64()),
                "server_pid": self.server_pid,
                "server_cpu_seconds": self.server_cpu.map(|cpu| cpu.as_secs_f64()),
                "server_cpu_us_per_message": self.server_cpu_per_unit_us(),
            }),
        };
        if let (Value::Object(map), Value::Object(extra)) = (&mut value, extra) {
            map.extend(extra);
        }
        value
    }

    /// The summary for a person, a few aligned lines. `grouped` groups the
    /// digits of counts and rates by thousands (`12 345`), for a terminal;
    /// without it, as for a pipe or a file, every number is plain digits.
    pub fn to_text(&self, grouped: bool) -> String {
        let mut lines = Vec::new();
        match self.mode {
            BenchMode::Idle => self.idle_lines(&mut lines),
            BenchMode::Connect => self.connect_lines(&mut lines, grouped),
            BenchMode::Echo | BenchMode::Tcp => self.echo_lines(&mut lines, grouped),
        }
        let errors = self.total_errors();
        if errors > 0 {
            let mut line = format!("errors       {errors}");
            if self.connect_failures + self.handshake_failures > 0 {
                line.push_str(&format!(
                    " ({} failed to connect, {} failed the handshake)",
                    self.connect_failures, self.handshake_failures
                ));
            }
            lines.push(line);
            if let Some(first) = &self.first_error {
                lines.push(format!("first error  {first}"));
            }
        } else {
            lines.push("errors       0".to_owned());
        }
        if self.interrupted {
            lines.push("interrupted  the run was cut short by a signal".to_owned());
        }
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }

    fn echo_lines(&self, lines: &mut Vec<String>, grouped: bool) {
        let kind = if self.mode == BenchMode::Tcp {
            "plain TCP".to_owned()
        } else {
            format!(
                "{} {}",
                if self.text { "text" } else { "binary" },
                self.payload.name()
            )
        };
        lines.push(format!(
            "{} {}: {} connections x {} B {kind}, {} in flight, {:.1} s measured after {:.1} s warmup",
            self.mode.name(),
            self.url,
            self.connected,
            self.size,
            self.in_flight,
            self.window.as_secs_f64(),
            self.warmup.as_secs_f64(),
        ));
        lines.push(format!(
            "messages     {} ({} msg/s, {:.2} MB/s)",
            count(self.count, grouped),
            count(self.rate().round() as u64, grouped),
            self.mb_per_sec()
        ));
        lines.push(latency_line(self.latency));
        lines.push(format!("mismatches   {}", self.mismatches));
        if let Some(first) = &self.first_mismatch {
            lines.push(format!("first        {first}"));
        }
        if let Some(ratio) = self.compression_ratio() {
            lines.push(format!(
                "deflate      {ratio:.3} wire bytes per payload byte received; frames sent are {} B for {} B of payload",
                self.frame_len.unwrap_or_default(),
                self.size
            ));
        }
        self.cpu_lines(lines, "message");
    }

    fn connect_lines(&self, lines: &mut Vec<String>, grouped: bool) {
        lines.push(format!(
            "connect {}: {} concurrent loops, {:.1} s measured after {:.1} s warmup",
            self.url,
            self.connections,
            self.window.as_secs_f64(),
            self.warmup.as_secs_f64(),
        ));
        lines.push(format!(
            "handshakes   {} ({} per second: connect, upgrade, close)",
            count(self.count, grouped),
            count(self.rate().round() as u64, grouped)
        ));
        lines.push(latency_line(self.latency));
        self.cpu_lines(lines, "handshake");
    }

    fn idle_lines(&self, lines: &mut Vec<String>) {
        let Some(idle) = &self.idle else { return };
        lines.push(format!(
            "idle {}: {} of {} connections open in {:.1} s, held {:.1} s",
            self.url,
            idle.open,
            self.connections,
            idle.open_time.as_secs_f64(),
            idle.held.as_secs_f64()
        ));
        if let (Some(before), Some(after)) = (idle.rss_before, idle.rss_after) {
            lines.push(format!(
                "server RSS   {:.1} MiB before, {:.1} MiB with the connections open: {:.0} B per connection",
                before as f64 / 1048576.0,
                after as f64 / 1048576.0,
                idle.rss_per_connection().unwrap_or_default()
            ));
        }
    }

    fn cpu_lines(&self, lines: &mut Vec<String>, unit: &str) {
        if let (Some(cpu), Some(share)) = (self.client_cpu, self.client_cpu_share()) {
            lines.push(format!(
                "client CPU   {:.2} s ({:.0} % of one core)",
                cpu.as_secs_f64(),
                share * 100.0
            ));
        }
        if let Some(cpu) = self.server_cpu {
            let per = self
                .server_cpu_per_unit_us()
                .map_or_else(String::new, |us| format!(", {us:.2} us per {unit}"));
            lines.push(format!(
                "server CPU   {:.2} s{per} (pid {})",
                cpu.as_secs_f64(),
                self.server_pid.unwrap_or_default()
            ));
        }
    }
}

fn per_second(value: f64, window: Duration) -> f64 {
    if window.is_zero() {
        0.0
    } else {
        value / window.as_secs_f64()
    }
}

fn latency_json(latency: Latency) -> Value {
    json!({
        "p50": latency.p50,
        "p90": latency.p90,
        "p99": latency.p99,
        "p999": latency.p999,
        "max": latency.max,
    })
}

fn latency_line(latency: Option<Latency>) -> String {
    match latency {
        Some(l) => format!(
            "latency      p50 {} us  p90 {} us  p99 {} us  p99.9 {} us  max {} us",
            micros(l.p50),
            micros(l.p90),
            micros(l.p99),
            micros(l.p999),
            micros(l.max)
        ),
        None => "latency      none recorded".to_owned(),
    }
}

/// Microseconds with a precision that suits their size.
fn micros(value: f64) -> String {
    if value < 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> Summary {
        Summary {
            mode: BenchMode::Echo,
            url: "ws://127.0.0.1:1/".to_owned(),
            connections: 10,
            connected: 10,
            size: 100,
            in_flight: 1,
            text: false,
            payload: PayloadKind::Random,
            deflate: false,
            warmup: Duration::from_secs(1),
            window: Duration::from_secs(4),
            interrupted: false,
            count: 2000,
            payload_bytes: 200_000,
            wire_in: 204_000,
            wire_out: 212_000,
            frame_len: Some(106),
            latency: Some(Latency {
                p50: 40.0,
                p90: 50.0,
                p99: 70.0,
                p999: 90.0,
                max: 1500.0,
            }),
            errors: 0,
            mismatches: 0,
            connect_failures: 0,
            handshake_failures: 0,
            first_error: None,
            first_mismatch: None,
            client_cpu: Some(Duration::from_secs(2)),
            server_pid: Some(42),
            server_cpu: Some(Duration::from_millis(100)),
            idle: None,
        }
    }

    #[test]
    fn rates_are_per_second_of_the_window() {
        let summary = summary();
        assert_eq!(summary.rate(), 500.0);
        assert_eq!(summary.mb_per_sec(), 0.05);
        assert_eq!(summary.client_cpu_share(), Some(0.5));
        // 0.1 s of server CPU for 2000 echoes: 50 us each.
        assert_eq!(summary.server_cpu_per_unit_us(), Some(50.0));
    }

    #[test]
    fn empty_window_gives_zero_rates_not_infinities() {
        let summary = Summary {
            window: Duration::ZERO,
            count: 0,
            ..summary()
        };
        assert_eq!(summary.rate(), 0.0);
        assert_eq!(summary.client_cpu_share(), None);
        assert_eq!(summary.server_cpu_per_unit_us(), None);
    }

    #[test]
    fn compression_ratio_is_reported_only_with_deflate() {
        assert_eq!(summary().compression_ratio(), None);
        let summary = Summary {
            deflate: true,
            wire_in: 50_000,
            ..summary()
        };
        assert_eq!(summary.compression_ratio(), Some(0.25));
    }

    #[test]
    fn json_has_the_documented_fields() {
        let json = summary().to_json();
        for field in [
            "messages",
            "msgs_per_sec",
            "mb_per_sec",
            "errors",
            "mismatches",
            "wire_bytes",
            "payload_bytes",
            "client_cpu_seconds",
            "server_cpu_us_per_message",
        ] {
            assert!(json.get(field).is_some(), "{field} missing from {json}");
        }
        assert_eq!(json["messages"], 2000);
        assert_eq!(json["latency_us"]["p999"], 90.0);
        assert_eq!(json["errors"], 0);
    }

    /// The field names are an interface (`cargo xtask bench`, scripts, the
    /// README): a renamed or lost field fails here.
    #[test]
    fn json_field_names_are_stable_in_every_mode() {
        fn keys(summary: &Summary) -> Vec<String> {
            let json = summary.to_json();
            let mut keys: Vec<String> = json
                .as_object()
                .map(|map| map.keys().cloned().collect())
                .unwrap_or_default();
            keys.sort();
            keys
        }
        let common = [
            "connect_failures",
            "connections",
            "errors",
            "first_error",
            "handshake_failures",
            "interrupted",
            "mode",
            "url",
        ];
        let expect = |extra: &[&str]| {
            let mut all: Vec<String> = common.iter().chain(extra).map(|k| k.to_string()).collect();
            all.sort();
            all
        };
        assert_eq!(
            keys(&summary()),
            expect(&[
                "client_cpu_seconds",
                "compression_ratio",
                "connected",
                "deflate",
                "duration_s",
                "first_mismatch",
                "frame_bytes",
                "in_flight",
                "latency_us",
                "mb_per_sec",
                "messages",
                "mismatches",
                "msgs_per_sec",
                "payload",
                "payload_bytes",
                "server_cpu_seconds",
                "server_cpu_us_per_message",
                "server_pid",
                "size",
                "type",
                "warmup_s",
                "wire_bytes",
                "wire_bytes_sent",
            ])
        );
        let connect = Summary {
            mode: BenchMode::Connect,
            ..summary()
        };
        assert_eq!(
            keys(&connect),
            expect(&[
                "client_cpu_seconds",
                "deflate",
                "duration_s",
                "handshakes",
                "handshakes_per_sec",
                "latency_us",
                "server_cpu_seconds",
                "server_cpu_us_per_handshake",
                "server_pid",
                "warmup_s",
            ])
        );
        let idle = Summary {
            mode: BenchMode::Idle,
            idle: Some(IdleFigures {
                open: 1,
                open_time: Duration::from_secs(1),
                held: Duration::from_secs(1),
                rss_before: None,
                rss_after: None,
            }),
            ..summary()
        };
        assert_eq!(
            keys(&idle),
            expect(&[
                "held_seconds",
                "open",
                "open_seconds",
                "server_pid",
                "server_rss_after_bytes",
                "server_rss_before_bytes",
                "server_rss_per_connection_bytes",
            ])
        );
        let latency = summary().to_json()["latency_us"].clone();
        for field in ["p50", "p90", "p99", "p999", "max"] {
            assert!(
                latency.get(field).is_some(),
                "{field} missing from {latency}"
            );
        }
    }

    #[test]
    fn errors_add_up_connection_failures() {
        let summary = Summary {
            errors: 1,
            connect_failures: 2,
            handshake_failures: 3,
            first_error: Some("cannot connect".to_owned()),
            ..summary()
        };
        assert_eq!(summary.total_errors(), 6);
        assert_eq!(summary.to_json()["errors"], 6);
        let text = summary.to_text(false);
        assert!(
            text.contains("errors       6 (2 failed to connect, 3 failed the handshake)"),
            "{text}"
        );
        assert!(text.contains("first error  cannot connect"), "{text}");
    }

    #[test]
    fn idle_memory_per_connection_divides_the_growth() {
        let idle = IdleFigures {
            open: 1000,
            open_time: Duration::from_secs(1),
            held: Duration::from_secs(2),
            rss_before: Some(4_000_000),
            rss_after: Some(6_048_000),
        };
        assert_eq!(idle.rss_per_connection(), Some(2048.0));
        let summary = Summary {
            mode: BenchMode::Idle,
            idle: Some(idle),
            ..summary()
        };
        assert_eq!(summary.to_json()["server_rss_per_connection_bytes"], 2048.0);
        assert!(summary.to_text(false).contains("2048 B per connection"));
    }

    #[test]
    fn human_summary_names_the_figures() {
        let text = summary().to_text(true);
        assert!(
            text.contains("messages     2 000 (500 msg/s, 0.05 MB/s)"),
            "{text}"
        );
        assert!(text.contains("p50 40.0 us"), "{text}");
        assert!(text.contains("max 1500 us"), "{text}");
        assert!(text.contains("50.00 us per message"), "{text}");
    }

    #[test]
    fn summary_for_a_pipe_has_plain_digits() {
        let summary = Summary {
            count: 1_234_567,
            ..summary()
        };
        let text = summary.to_text(false);
        assert!(
            text.contains("messages     1234567 (308642 msg/s, 0.05 MB/s)"),
            "{text}"
        );
        let connect = Summary {
            mode: BenchMode::Connect,
            ..summary
        };
        let text = connect.to_text(false);
        assert!(
            text.contains("handshakes   1234567 (308642 per second"),
            "{text}"
        );
    }
}
