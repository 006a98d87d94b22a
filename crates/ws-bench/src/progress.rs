//! The progress line on stderr, once per second: rewritten in place on a
//! terminal, one plain line each time otherwise (a log stays readable).
//!
//! Its clock counts from the start of the current phase: the measuring line
//! reads 1.0 s one second into the measured window, whatever the warmup and
//! the time spent connecting were. Numbers are grouped by thousands
//! (`12 345`) only on a terminal; a log or a pipe gets plain digits, as
//! anything that parses the lines expects.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use tokio::time::Instant;

use crate::stats::Shared;

/// Prints the progress of a run.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    terminal: bool,
    phase: &'static str,
    /// When the current phase began: the origin of the clock.
    phase_started: Instant,
    last_total: u64,
    last_at: Instant,
    /// A line without its newline is on the terminal.
    pending_line: bool,
}

/// What one progress line shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures<'a> {
    /// Time since the phase began.
    pub elapsed: Duration,
    /// The phase: `connecting`, `warmup`, `measuring`, ...
    pub phase: &'a str,
    /// Connections open.
    pub open: usize,
    /// Connections asked for.
    pub wanted: usize,
    /// Units per second since the previous line.
    pub rate: f64,
    /// What is counted: `msg`, `handshakes`.
    pub unit: &'a str,
    /// Failures so far (connection attempts and open connections).
    pub errors: u64,
    /// Echoes that differed from what was sent.
    pub mismatches: u64,
}

impl Progress {
    /// A printer; `quiet` makes every call do nothing.
    pub fn new(quiet: bool) -> Self {
        let now = Instant::now();
        Self {
            enabled: !quiet,
            terminal: std::io::stderr().is_terminal(),
            phase: "starting",
            phase_started: now,
            last_total: 0,
            last_at: now,
            pending_line: false,
        }
    }

    /// Starts a phase: the following lines name it and count the time from
    /// `since`.
    pub fn phase(&mut self, phase: &'static str, since: Instant) {
        self.phase = phase;
        self.phase_started = since;
    }

    /// Prints where the run is: the phase and its clock, connections open
    /// out of `wanted`, the rate of `unit`s since the last line, errors and
    /// mismatches.
    pub fn tick(&mut self, shared: &Shared, wanted: usize, unit: &str) {
        let now = Instant::now();
        let total = shared.total.get();
        let elapsed = now.duration_since(self.last_at).as_secs_f64();
        let rate = if elapsed > 0.0 {
            (total.saturating_sub(self.last_total)) as f64 / elapsed
        } else {
            0.0
        };
        self.last_total = total;
        self.last_at = now;
        if !self.enabled {
            return;
        }
        let line = line(
            &Figures {
                elapsed: now.saturating_duration_since(self.phase_started),
                phase: self.phase,
                open: shared.open.get(),
                wanted,
                rate,
                unit,
                errors: shared.errors.get()
                    + shared.connect_failures.get()
                    + shared.handshake_failures.get(),
                mismatches: shared.mismatches.get(),
            },
            self.terminal,
        );
        self.write(&line);
    }

    /// Prints a one-off note (on its own line).
    pub fn note(&mut self, text: &str) {
        if !self.enabled {
            return;
        }
        self.finish();
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }

    /// Ends a line left open on a terminal.
    pub fn finish(&mut self) {
        if self.pending_line {
            let _ = writeln!(std::io::stderr().lock());
            self.pending_line = false;
        }
    }

    fn write(&mut self, line: &str) {
        let mut stderr = std::io::stderr().lock();
        if self.terminal {
            // Back to the start of the line, then clear what a longer one left.
            let _ = write!(stderr, "\r{line}\x1b[K");
            let _ = stderr.flush();
            self.pending_line = true;
        } else {
            let _ = writeln!(stderr, "{line}");
        }
    }
}

/// One progress line; `grouped` groups the rate's digits by thousands (for
/// a terminal only).
pub fn line(figures: &Figures<'_>, grouped: bool) -> String {
    format!(
        "{:>6.1} s  {:<10} {}/{} open  {} {}/s  {} errors  {} mismatches",
        figures.elapsed.as_secs_f64(),
        figures.phase,
        figures.open,
        figures.wanted,
        count(figures.rate.round() as u64, grouped),
        figures.unit,
        figures.errors,
        figures.mismatches,
    )
}

/// A count for a person (`1 234 567`, grouped) or for a program (`1234567`).
pub fn count(value: u64, grouped: bool) -> String {
    if grouped {
        group_thousands(value)
    } else {
        value.to_string()
    }
}

/// `1234567` as `1 234 567`: rates are easier to read grouped.
pub fn group_thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(' ');
        }
        grouped.push(digit);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures() -> Figures<'static> {
        Figures {
            elapsed: Duration::from_millis(1000),
            phase: "measuring",
            open: 100,
            wanted: 100,
            rate: 123_456.4,
            unit: "msg",
            errors: 0,
            mismatches: 0,
        }
    }

    #[test]
    fn thousands_are_grouped_from_the_right() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1000), "1 000");
        assert_eq!(group_thousands(1_234_567), "1 234 567");
    }

    #[test]
    fn lines_for_a_log_or_pipe_have_plain_digits() {
        assert_eq!(
            line(&figures(), false),
            "   1.0 s  measuring  100/100 open  123456 msg/s  0 errors  0 mismatches"
        );
    }

    #[test]
    fn lines_for_a_terminal_group_the_rate() {
        assert!(line(&figures(), true).contains("  123 456 msg/s  "));
    }
}
