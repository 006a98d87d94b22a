//! What the connections record while a run goes on.
//!
//! Every connection runs on the one thread of the load generator, so the
//! shared counters are plain `Cell`s behind an `Rc`: no atomics, no locks on
//! the hot path.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

/// The longest latency the histogram tells apart (longer ones count as this).
const HISTOGRAM_MAX: Duration = Duration::from_secs(60);
/// Three significant digits: 0.1 % resolution at every magnitude.
const SIGNIFICANT_DIGITS: u8 = 3;

/// The measured window: messages received in it are counted, latencies of
/// those recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The end of the warmup.
    pub start: Instant,
    /// The planned end of the measurement.
    pub end: Instant,
}

impl Window {
    /// Whether `at` falls inside the window.
    pub fn contains(&self, at: Instant) -> bool {
        at >= self.start && at <= self.end
    }
}

/// Why a connection attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenFailure {
    /// No TCP connection (refused, unreachable, timed out).
    Connect,
    /// The TCP connection was made but the upgrade failed.
    Handshake,
}

/// Counters, the latency histogram and the first error, shared by the
/// connections of a run.
#[derive(Debug)]
pub struct Shared {
    window: Cell<Option<Window>>,
    stopped: Cell<bool>,
    /// Echoes (or handshakes) since the start, warmup included: for progress.
    pub total: Cell<u64>,
    /// Echoes (or handshakes) completed inside the window.
    pub measured: Cell<u64>,
    /// Payload bytes of the echoes counted in the window.
    pub payload_bytes: Cell<u64>,
    /// Bytes read from the sockets inside the window (frames as sent).
    pub wire_in: Cell<u64>,
    /// Bytes written to the sockets inside the window.
    pub wire_out: Cell<u64>,
    /// Failures after the connection was up (I/O, protocol, unexpected close).
    pub errors: Cell<u64>,
    /// Echoes that differ from what was sent (bytes, type, or an echo of
    /// nothing).
    pub mismatches: Cell<u64>,
    /// Connections open now.
    pub open: Cell<usize>,
    /// The length of a frame as sent (compressed, with --deflate); 0 until
    /// a connection has built its frames.
    pub frame_len: Cell<usize>,
    /// Connections opened so far (handshakes, in connect mode).
    pub connected: Cell<u64>,
    /// Connection attempts that are over, successful or not.
    pub settled: Cell<usize>,
    /// Attempts that failed to connect.
    pub connect_failures: Cell<u64>,
    /// Attempts that failed in the handshake.
    pub handshake_failures: Cell<u64>,
    histogram: RefCell<Option<Histogram<u64>>>,
    first_error: RefCell<Option<String>>,
    first_mismatch: RefCell<Option<String>>,
}

impl Shared {
    /// Empty counters.
    pub fn new() -> Self {
        let max = u64::try_from(HISTOGRAM_MAX.as_nanos()).unwrap_or(u64::MAX);
        // The bounds are constants that hdrhistogram accepts, so this is
        // always `Some`; without a histogram only latencies would be missing.
        let histogram = Histogram::new_with_bounds(1, max, SIGNIFICANT_DIGITS).ok();
        Self {
            window: Cell::new(None),
            stopped: Cell::new(false),
            total: Cell::new(0),
            measured: Cell::new(0),
            payload_bytes: Cell::new(0),
            wire_in: Cell::new(0),
            wire_out: Cell::new(0),
            errors: Cell::new(0),
            mismatches: Cell::new(0),
            open: Cell::new(0),
            connected: Cell::new(0),
            frame_len: Cell::new(0),
            settled: Cell::new(0),
            connect_failures: Cell::new(0),
            handshake_failures: Cell::new(0),
            histogram: RefCell::new(histogram),
            first_error: RefCell::new(None),
            first_mismatch: RefCell::new(None),
        }
    }

    /// Starts the timeline: the warmup is over at `window.start`.
    pub fn set_window(&self, window: Window) {
        self.window.set(Some(window));
    }

    /// The window, once the run has started.
    pub fn window(&self) -> Option<Window> {
        self.window.get()
    }

    /// Ends the window early (an interruption); connections stop at their
    /// next step.
    pub fn stop(&self, at: Instant) {
        if let Some(window) = self.window.get() {
            let end = at.max(window.start).min(window.end);
            self.window.set(Some(Window { end, ..window }));
        }
        self.stopped.set(true);
    }

    /// Whether connections should stop sending.
    pub fn stopped(&self) -> bool {
        self.stopped.get()
    }

    /// Whether the moment falls inside the window.
    pub fn in_window(&self, at: Instant) -> bool {
        self.window.get().is_some_and(|window| window.contains(at))
    }

    /// One completed echo (or handshake): counted, and its latency recorded,
    /// when it completed inside the window.
    pub fn record(&self, started: Instant, completed: Instant, payload_len: usize) {
        self.total.set(self.total.get() + 1);
        if !self.in_window(completed) {
            return;
        }
        self.measured.set(self.measured.get() + 1);
        add(&self.payload_bytes, payload_len);
        let nanos = u64::try_from(completed.saturating_duration_since(started).as_nanos())
            .unwrap_or(u64::MAX);
        if let Some(histogram) = self.histogram.borrow_mut().as_mut() {
            histogram.saturating_record(nanos.max(1));
        }
    }

    /// Bytes read at `at`.
    pub fn read_bytes(&self, at: Instant, n: usize) {
        if self.in_window(at) {
            add(&self.wire_in, n);
        }
    }

    /// Bytes written at `at`.
    pub fn wrote_bytes(&self, at: Instant, n: usize) {
        if self.in_window(at) {
            add(&self.wire_out, n);
        }
    }

    /// A failure on an open connection; the first one is kept for the report.
    pub fn error(&self, message: impl FnOnce() -> String) {
        self.errors.set(self.errors.get() + 1);
        keep_first(&self.first_error, message);
    }

    /// An echo that is not what was sent.
    pub fn mismatch(&self, message: impl FnOnce() -> String) {
        self.mismatches.set(self.mismatches.get() + 1);
        keep_first(&self.first_mismatch, message);
    }

    /// A connection attempt that failed.
    pub fn open_failed(&self, kind: OpenFailure, message: impl FnOnce() -> String) {
        let counter = match kind {
            OpenFailure::Connect => &self.connect_failures,
            OpenFailure::Handshake => &self.handshake_failures,
        };
        counter.set(counter.get() + 1);
        keep_first(&self.first_error, message);
    }

    /// The first error recorded, if any.
    pub fn first_error(&self) -> Option<String> {
        self.first_error.borrow().clone()
    }

    /// The first mismatch recorded, if any.
    pub fn first_mismatch(&self) -> Option<String> {
        self.first_mismatch.borrow().clone()
    }

    /// Latency percentiles of what was recorded, `None` before anything was.
    pub fn latency(&self) -> Option<Latency> {
        self.histogram.borrow().as_ref().and_then(Latency::of)
    }
}

impl Default for Shared {
    fn default() -> Self {
        Self::new()
    }
}

fn add(counter: &Cell<u64>, n: usize) {
    counter.set(counter.get().saturating_add(n as u64));
}

fn keep_first(slot: &RefCell<Option<String>>, message: impl FnOnce() -> String) {
    let mut slot = slot.borrow_mut();
    if slot.is_none() {
        *slot = Some(message());
    }
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// The largest.
    pub max: f64,
}

impl Latency {
    /// The percentiles of a histogram of nanoseconds.
    pub fn of(histogram: &Histogram<u64>) -> Option<Self> {
        if histogram.is_empty() {
            return None;
        }
        let micros = |nanos: u64| nanos as f64 / 1000.0;
        Some(Self {
            p50: micros(histogram.value_at_quantile(0.5)),
            p90: micros(histogram.value_at_quantile(0.9)),
            p99: micros(histogram.value_at_quantile(0.99)),
            p999: micros(histogram.value_at_quantile(0.999)),
            max: micros(histogram.max()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window_from(now: Instant) -> Window {
        Window {
            start: now + Duration::from_secs(1),
            end: now + Duration::from_secs(3),
        }
    }

    #[test]
    fn only_echoes_completed_inside_the_window_are_measured() {
        let shared = Shared::new();
        let now = Instant::now();
        shared.set_window(window_from(now));
        let us = Duration::from_micros;
        // Warmup, inside, after the end.
        shared.record(now, now + us(500), 20);
        shared.record(
            now + Duration::from_secs(2),
            now + Duration::from_secs(2) + us(40),
            20,
        );
        shared.record(
            now + Duration::from_secs(4),
            now + Duration::from_secs(4) + us(40),
            20,
        );
        assert_eq!(shared.total.get(), 3);
        assert_eq!(shared.measured.get(), 1);
        assert_eq!(shared.payload_bytes.get(), 20);
        let latency = shared.latency().unwrap();
        assert!((latency.p50 - 40.0).abs() < 0.1, "{latency:?}");
    }

    #[test]
    fn nothing_is_measured_before_the_window_is_set() {
        let shared = Shared::new();
        let now = Instant::now();
        shared.record(now, now + Duration::from_micros(5), 1);
        shared.read_bytes(now, 100);
        assert_eq!(shared.measured.get(), 0);
        assert_eq!(shared.wire_in.get(), 0);
        assert_eq!(shared.latency(), None);
    }

    #[test]
    fn percentiles_come_from_the_histogram_in_microseconds() {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        for micros in 1..=1000u64 {
            histogram.record(micros * 1000).unwrap();
        }
        let latency = Latency::of(&histogram).unwrap();
        let close = |value: f64, expected: f64| (value - expected).abs() <= expected * 0.002;
        assert!(close(latency.p50, 500.0), "{latency:?}");
        assert!(close(latency.p90, 900.0), "{latency:?}");
        assert!(close(latency.p99, 990.0), "{latency:?}");
        assert!(close(latency.p999, 999.0), "{latency:?}");
        assert!(close(latency.max, 1000.0), "{latency:?}");
    }

    #[test]
    fn stopping_early_moves_the_end_of_the_window() {
        let shared = Shared::new();
        let now = Instant::now();
        shared.set_window(window_from(now));
        shared.stop(now + Duration::from_secs(2));
        assert!(shared.stopped());
        assert_eq!(shared.window().unwrap().end, now + Duration::from_secs(2));
        // A stop during the warmup leaves an empty window, not a negative one.
        let shared = Shared::new();
        shared.set_window(window_from(now));
        shared.stop(now);
        let window = shared.window().unwrap();
        assert_eq!(window.start, window.end);
    }

    #[test]
    fn the_first_error_is_kept_and_all_are_counted() {
        let shared = Shared::new();
        shared.error(|| "first".to_owned());
        shared.error(|| "second".to_owned());
        shared.open_failed(OpenFailure::Connect, || "third".to_owned());
        assert_eq!(shared.errors.get(), 2);
        assert_eq!(shared.connect_failures.get(), 1);
        assert_eq!(shared.first_error().as_deref(), Some("first"));
        shared.mismatch(|| "m".to_owned());
        assert_eq!(shared.mismatches.get(), 1);
        assert_eq!(shared.first_mismatch().as_deref(), Some("m"));
    }
}
