//! One line per check on stdout (`ok   NAME` or `FAIL NAME: REASON`), then a
//! closing `N passed, M failed` line.

use std::io::Write;

use anyhow::{Result, bail};

use crate::process::one_line;

/// The tally of a run of checks.
#[derive(Debug, Default)]
pub struct Report {
    passed: usize,
    failed: usize,
}

impl Report {
    /// An empty tally.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a passed check.
    pub fn pass(&mut self, name: &str) {
        self.passed += 1;
        emit(&format!("ok   {name}"));
    }

    /// Records a failed check; the reason is kept to one line.
    pub fn fail(&mut self, name: &str, reason: &str) {
        self.failed += 1;
        emit(&format!("FAIL {name}: {}", one_line(reason)));
    }

    /// Runs a check and records its outcome; its value when it passed.
    pub fn check<T>(&mut self, name: &str, check: impl FnOnce() -> Result<T>) -> Option<T> {
        match check() {
            Ok(value) => {
                self.pass(name);
                Some(value)
            }
            Err(error) => {
                self.fail(name, &format!("{error:#}"));
                None
            }
        }
    }

    /// Relays the `ok NAME` / `FAIL NAME: REASON` lines a helper script
    /// printed, prefixing their names; returns how many it found.
    pub fn relay(&mut self, prefix: &str, output: &str) -> usize {
        let mut found = 0;
        for line in output.lines() {
            if let Some(name) = line.strip_prefix("ok ") {
                self.pass(&format!("{prefix}{}", name.trim()));
                found += 1;
            } else if let Some(rest) = line.strip_prefix("FAIL ") {
                let (name, reason) = rest.split_once(": ").unwrap_or((rest, "failed"));
                self.fail(&format!("{prefix}{}", name.trim()), reason);
                found += 1;
            }
        }
        found
    }

    /// How many checks failed so far.
    pub fn failed(&self) -> usize {
        self.failed
    }

    /// Prints the closing line, and fails when any check did.
    pub fn finish(self) -> Result<()> {
        emit(&summary(self.passed, self.failed));
        if self.failed > 0 {
            bail!(
                "{} check{} failed",
                self.failed,
                if self.failed == 1 { "" } else { "s" }
            );
        }
        Ok(())
    }
}

fn summary(passed: usize, failed: usize) -> String {
    format!("{passed} passed, {failed} failed")
}

/// Prints and flushes at once, so the lines interleave correctly with the
/// stderr of the tools run in between. `println!`, not a raw handle, so the
/// test harness captures it: a stray `1 passed, 1 failed` in `cargo test`
/// output would read as a failed run.
fn emit(line: &str) {
    println!("{line}");
    let _ = std::io::stdout().flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_has_the_plain_closing_line_format() {
        assert_eq!(summary(12, 0), "12 passed, 0 failed");
    }

    #[test]
    fn finish_fails_when_any_check_failed() {
        let mut report = Report::new();
        report.pass("a");
        assert!(
            report
                .check("b", || -> Result<()> { bail!("broken") })
                .is_none()
        );
        assert_eq!(report.failed(), 1);
        assert!(report.finish().is_err());
    }

    #[test]
    fn finish_succeeds_when_all_passed() {
        let mut report = Report::new();
        assert_eq!(report.check("a", || Ok(7)), Some(7));
        assert!(report.finish().is_ok());
    }

    #[test]
    fn relay_counts_script_results_by_outcome() {
        let mut report = Report::new();
        let found = report.relay(
            "py: ",
            "ok text echo\nnoise\nFAIL ping: timed out: after 10 s\nok close code\n",
        );
        assert_eq!(found, 3);
        assert_eq!((report.passed, report.failed), (2, 1));
    }
}
