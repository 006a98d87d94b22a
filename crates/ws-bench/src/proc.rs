//! CPU time and resident memory of a process, from Linux's `/proc`.
//!
//! The server's CPU time over the measured window is the figure a server is
//! judged by (the load generator shares the machine, so messages per second
//! alone say as much about the client as about the server). Elsewhere these
//! return `None` and the figures are left out.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Which process to sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pid {
    /// The load generator itself.
    Own,
    /// Another process.
    Other(u32),
}

impl Pid {
    fn dir(self) -> String {
        match self {
            Self::Own => "/proc/self".to_owned(),
            Self::Other(pid) => format!("/proc/{pid}"),
        }
    }
}

/// Clock ticks per second of `/proc/PID/stat` times (`getconf CLK_TCK`,
/// 100 on every common Linux system, used when `getconf` is missing).
pub fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100)
}

/// User plus system CPU time of a process so far, in clock ticks.
pub fn cpu_ticks(pid: Pid) -> Option<u64> {
    let stat = std::fs::read_to_string(Path::new(&pid.dir()).join("stat")).ok()?;
    parse_cpu_ticks(&stat)
}

/// The resident set size of a process, in bytes.
pub fn rss_bytes(pid: Pid) -> Option<u64> {
    let status = std::fs::read_to_string(Path::new(&pid.dir()).join("status")).ok()?;
    parse_vm_rss(&status)
}

/// Fields 14 (utime) and 15 (stime) of a `/proc/PID/stat` line, added.
///
/// Field 2 is the command name in parentheses, and it may itself contain
/// spaces and parentheses: the fields are counted from the last `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = stat.get(stat.rfind(')')? + 1..)?;
    // After the name: field 3 (state) is the first, so utime is the 12th.
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

/// The `VmRSS:` line of `/proc/PID/status`, in bytes.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let mut parts = line.trim_start_matches("VmRSS:").split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    let unit = match parts.next() {
        Some("kB") | None => 1024,
        Some(_) => return None,
    };
    value.checked_mul(unit)
}

/// A CPU time in clock ticks as a duration.
pub fn ticks_to_duration(ticks: u64, per_second: u64) -> Duration {
    if per_second == 0 {
        return Duration::ZERO;
    }
    Duration::from_secs(ticks / per_second)
        + Duration::from_nanos((ticks % per_second) * 1_000_000_000 / per_second)
}

/// CPU time of a process between two moments.
#[derive(Debug, Clone, Copy)]
pub struct CpuWindow {
    pid: Pid,
    start: Option<u64>,
}

impl CpuWindow {
    /// Starts the window now.
    pub fn start(pid: Pid) -> Self {
        Self {
            pid,
            start: cpu_ticks(pid),
        }
    }

    /// The CPU time used since [`start`](Self::start), `None` if the process
    /// could not be read (gone, or not Linux).
    pub fn elapsed(&self, ticks_per_second: u64) -> Option<Duration> {
        let end = cpu_ticks(self.pid)?;
        let used = end.checked_sub(self.start?)?;
        Some(ticks_to_duration(used, ticks_per_second))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_add_utime_and_stime() {
        let stat = "1234 (ws-server) S 1 1234 1234 0 -1 4194560 2638 0 0 0 \
                    250 75 0 0 20 0 1 0 12345 123456789 2000 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
    }

    #[test]
    fn cpu_ticks_survive_spaces_and_parentheses_in_the_command_name() {
        let stat = "42 (tokio (rt) worker 1) R 1 42 42 0 -1 0 0 0 0 0 \
                    7 3 0 0 20 0 1 0 1 1 1";
        assert_eq!(parse_cpu_ticks(stat), Some(10));
    }

    #[test]
    fn truncated_or_garbled_stat_lines_give_nothing() {
        assert_eq!(parse_cpu_ticks("1 (x) S 1 2 3"), None);
        assert_eq!(parse_cpu_ticks("no parenthesis at all"), None);
        assert_eq!(
            parse_cpu_ticks("1 (x) S 1 1 1 0 -1 0 0 0 0 0 seven 3"),
            None
        );
    }

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\tws-server\nVmPeak:\t  9000 kB\nVmRSS:\t    5120 kB\nThreads:\t1\n";
        assert_eq!(parse_vm_rss(status), Some(5120 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\t5 MB\n"), None);
    }

    #[test]
    fn ticks_convert_to_durations_without_losing_fractions() {
        assert_eq!(ticks_to_duration(250, 100), Duration::from_millis(2500));
        assert_eq!(ticks_to_duration(1, 3), Duration::from_nanos(333_333_333));
        assert_eq!(ticks_to_duration(5, 0), Duration::ZERO);
    }

    #[test]
    fn own_process_is_readable_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(cpu_ticks(Pid::Own).is_some());
            assert!(rss_bytes(Pid::Own).is_some_and(|rss| rss > 0));
        }
    }
}
