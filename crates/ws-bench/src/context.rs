//! What every connection task of a run shares: the settings, the target, the
//! counters, the pace of new connections, and the signals that start and
//! stop the work.

use std::cell::Cell;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{Notify, OnceCell, Semaphore, watch};
use tokio::time::{Instant, sleep_until};
use ws_core::http2::{Client, Http2Stream};

use crate::args::BenchArgs;
use crate::open::{Opened, Target};
use crate::stats::{Shared, Window};

/// Handshakes in flight at once when no `--connect-rate` is given: enough to
/// open thousands of connections per second, few enough not to overflow a
/// server's accept queue.
pub const MAX_PENDING_HANDSHAKES: usize = 256;

/// The start signal of the connections: they open first, and start sending
/// once all attempts are over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Go {
    /// Still opening connections.
    Wait,
    /// Send until the window ends.
    Run(Window),
    /// The run was abandoned before it started: close and leave.
    Abort,
}

/// The state of a run, shared by its tasks (all on one thread).
#[derive(Debug)]
pub struct Context {
    /// The arguments.
    pub args: BenchArgs,
    /// Where the connections go.
    pub target: Target,
    /// Counters, latency, errors.
    pub shared: Shared,
    /// The payload of every message.
    pub payload: Vec<u8>,
    /// Receives the start signal.
    pub go: watch::Receiver<Go>,
    /// Becomes true when held connections should close (idle mode).
    pub stop: watch::Receiver<bool>,
    /// Signalled when every connection attempt is over.
    pub all_settled: Notify,
    limiter: Semaphore,
    opening_since: Cell<Option<Instant>>,
    /// With `--http2`: the HTTP/2 connections, each shared by
    /// `--streams-per-connection` WebSockets, opened by the first of them.
    http2: Vec<OnceCell<Client>>,
}

impl Context {
    /// A context; the senders of `go` and `stop` stay with the driver.
    pub fn new(
        args: BenchArgs,
        target: Target,
        payload: Vec<u8>,
        go: watch::Receiver<Go>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let http2 = if args.http2 {
            let groups = args
                .connections
                .div_ceil(args.streams_per_connection.max(1));
            (0..groups).map(|_| OnceCell::new()).collect()
        } else {
            Vec::new()
        };
        Self {
            http2,
            args,
            target,
            shared: Shared::new(),
            payload,
            go,
            stop,
            all_settled: Notify::new(),
            limiter: Semaphore::new(MAX_PENDING_HANDSHAKES),
            opening_since: Cell::new(None),
        }
    }

    /// Marks the start of the opening phase: `--connect-rate` paces from here.
    pub fn start_opening(&self) {
        self.opening_since.set(Some(Instant::now()));
    }

    /// Opens connection number `index` (a WebSocket): waits for its turn
    /// under `--connect-rate` and for a handshake slot. A failure is counted
    /// and gives `None`.
    pub async fn open_websocket(&self, index: usize) -> Option<Opened> {
        self.wait_turn(index).await;
        let opened = {
            let _permit = self.limiter.acquire().await.ok();
            self.target.open().await
        };
        self.settle(opened)
    }

    /// Opens WebSocket number `index` over HTTP/2 (`--http2`): on the
    /// HTTP/2 connection of its group of `--streams-per-connection`,
    /// opened first if it is the group's first. A failure is counted and
    /// gives `None` (a failed connection is tried again by the group's
    /// next WebSocket).
    pub async fn open_http2_websocket(&self, index: usize) -> Option<Opened<Http2Stream>> {
        self.wait_turn(index).await;
        let opened = {
            let _permit = self.limiter.acquire().await.ok();
            let group = index / self.args.streams_per_connection.max(1);
            match self.http2.get(group) {
                Some(cell) => match cell.get_or_try_init(|| self.target.connect_http2()).await {
                    Ok(client) => self.target.open_http2(client).await,
                    Err(error) => Err(error),
                },
                None => Err((
                    crate::stats::OpenFailure::Connect,
                    "no HTTP/2 connection for this WebSocket (not an --http2 run)".to_owned(),
                )),
            }
        };
        self.settle(opened)
    }

    /// Opens connection number `index` as plain TCP (tcp mode).
    pub async fn open_tcp(&self, index: usize) -> Option<TcpStream> {
        self.wait_turn(index).await;
        let opened = {
            let _permit = self.limiter.acquire().await.ok();
            self.target.connect_tcp().await
        };
        self.settle(opened)
    }

    /// Waits for the start signal: the window to send in, or `None` when the
    /// run was abandoned.
    pub async fn wait_go(&self) -> Option<Window> {
        let mut go = self.go.clone();
        let signal = go.wait_for(|go| *go != Go::Wait).await.ok().map(|go| *go);
        match signal {
            Some(Go::Run(window)) => Some(window),
            _ => None,
        }
    }

    /// Counts a connection that is now closed.
    pub fn closed(&self) {
        self.shared
            .open
            .set(self.shared.open.get().saturating_sub(1));
    }

    async fn wait_turn(&self, index: usize) {
        if let (Some(rate), Some(since)) = (self.args.connect_rate, self.opening_since.get()) {
            let offset = Duration::from_secs_f64(index as f64 / f64::from(rate.get()));
            sleep_until(since + offset).await;
        }
    }

    fn settle<T>(&self, opened: Result<T, (crate::stats::OpenFailure, String)>) -> Option<T> {
        let shared = &self.shared;
        let opened = match opened {
            Ok(opened) => {
                shared.open.set(shared.open.get() + 1);
                shared.connected.set(shared.connected.get() + 1);
                Some(opened)
            }
            Err((kind, message)) => {
                shared.open_failed(kind, || message);
                None
            }
        };
        shared.settled.set(shared.settled.get() + 1);
        if shared.settled.get() >= self.args.connections {
            self.all_settled.notify_one();
        }
        opened
    }
}
