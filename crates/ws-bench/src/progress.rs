//! The progress line on stderr, once per second: rewritten in place on a
//! terminal, one plain line each time otherwise (a log stays readable).

use std::io::{IsTerminal, Write};

use tokio::time::Instant;

use crate::stats::Shared;

/// Prints the progress of a run.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    terminal: bool,
    started: Instant,
    last_total: u64,
    last_at: Instant,
    /// A line without its newline is on the terminal.
    pending_line: bool,
}

impl Progress {
    /// A printer; `quiet` makes every call do nothing.
    pub fn new(quiet: bool) -> Self {
        let now = Instant::now();
        Self {
            enabled: !quiet,
            terminal: std::io::stderr().is_terminal(),
            started: now,
            last_total: 0,
            last_at: now,
            pending_line: false,
        }
    }

    /// Prints where the run is: `phase`, connections open out of `wanted`,
    /// the rate of `unit`s since the last line, errors and mismatches.
    pub fn tick(&mut self, phase: &str, shared: &Shared, wanted: usize, unit: &str) {
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
        let line = format!(
            "{:>6.1} s  {phase:<10} {}/{wanted} open  {} {unit}/s  {} errors  {} mismatches",
            now.duration_since(self.started).as_secs_f64(),
            shared.open.get(),
            group_thousands(rate.round() as u64),
            shared.errors.get() + shared.connect_failures.get() + shared.handshake_failures.get(),
            shared.mismatches.get(),
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

    #[test]
    fn thousands_are_grouped_from_the_right() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1000), "1 000");
        assert_eq!(group_thousands(1_234_567), "1 234 567");
    }
}
