//! The accept loop: connection limit, accept-error backoff, and graceful
//! shutdown.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::Notify;

use crate::config::ServerConfig;
use crate::connection;
use crate::http;
use crate::metrics::{Answer, HttpVersion, Metrics};
use crate::parking::{self, CloseOnDrop, Lot};
use crate::tls::{self, TlsConfig, TlsFailure};

/// State every connection task shares with the server.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    /// The counters `GET /metrics` shows; the summary is read from them.
    pub(crate) metrics: Metrics,
    /// Set before `stop` is notified, for loops too busy to poll it and for
    /// connections that start waiting after the notification.
    pub(crate) shutting_down: AtomicBool,
    /// Wakes every connection when the server stops. A `Notified` future is
    /// the smallest per-connection wait tokio offers, and every connection
    /// holds one for its whole life.
    pub(crate) stop: Notify,
    /// Connection tasks (served or refused) not yet ended, which a shutdown
    /// waits for. A count rather than a `JoinSet`, whose entry cost every
    /// connection 64 bytes of heap for its whole life.
    pub(crate) tasks: AtomicUsize,
    /// Notified when `tasks` falls to 0.
    pub(crate) tasks_ended: Notify,
    /// Idle connections waiting without a task (see [`crate::parking`]);
    /// each still counts in `tasks`, as its guard is parked with it.
    pub(crate) parking: Arc<Lot>,
}

impl Shared {
    pub(crate) fn new(config: ServerConfig) -> Self {
        Self {
            config,
            metrics: Metrics::new(),
            shutting_down: AtomicBool::new(false),
            stop: Notify::new(),
            tasks: AtomicUsize::new(0),
            tasks_ended: Notify::new(),
            parking: Arc::new(Lot::new()),
        }
    }
}

/// What a server did in its lifetime, returned by [`Server::run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// WebSocket connections that completed the opening handshake.
    pub connections_served: u64,
    /// Of those, the ones opened over HTTP/1.1 (an upgrade).
    pub connections_http1: u64,
    /// Of those, the ones opened over HTTP/2 (an extended CONNECT stream).
    pub connections_http2: u64,
    /// Messages echoed back to clients.
    pub messages_echoed: u64,
}

impl fmt::Display for Summary {
    /// `served 3 connections (http=1.1: 1, http=2: 2), echoed 2 messages`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |count: u64| if count == 1 { "" } else { "s" };
        write!(
            f,
            "served {} connection{} (http=1.1: {}, http=2: {}), echoed {} message{}",
            self.connections_served,
            plural(self.connections_served),
            self.connections_http1,
            self.connections_http2,
            self.messages_echoed,
            plural(self.messages_echoed)
        )
    }
}

/// A bound echo server, ready to [`run`](Server::run).
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    /// Set for `wss://`: every connection starts with a TLS handshake.
    tls: Option<TlsConfig>,
}

impl Server {
    /// Binds the listening socket; connections are accepted (queued by the
    /// kernel) from the moment this returns, and served once `run` starts.
    ///
    /// It first raises the process's soft limit on open files (see
    /// [`raise_fd_limit`]): every connection costs a descriptor.
    pub async fn bind<A: ToSocketAddrs>(addr: A, config: ServerConfig) -> io::Result<Self> {
        check_fd_limit(raise_fd_limit(), config.max_connections);
        let listener = TcpListener::bind(addr).await?;
        Ok(Self {
            listener,
            shared: Arc::new(Shared::new(config)),
            tls: None,
        })
    }

    /// Serves `wss://` (and HTTPS) instead of `ws://`: every connection
    /// starts with a TLS handshake with `config` (see
    /// [`tls::load_pem_files`]), which counts against the handshake timeout.
    /// With [`ServerConfig::http2`] on, ALPN offers `h2` before
    /// `http/1.1`.
    #[must_use]
    pub fn with_tls(mut self, config: TlsConfig) -> Self {
        self.tls = Some(if self.shared.config.http2 {
            tls::with_http2(&config)
        } else {
            config
        });
        self
    }

    /// The URL scheme clients use: `wss` with TLS, `ws` without.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "wss" } else { "ws" }
    }

    /// The address the server listens on, with the real port when bound to 0.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The URL of the test page, for a browser on this machine: `http://`
    /// (`https://` with TLS) and the listening address, with the loopback
    /// address in place of `0.0.0.0` or `[::]`.
    pub fn page_url(&self) -> io::Result<String> {
        let mut addr = self.local_addr()?;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        Ok(format!("{scheme}://{addr}/"))
    }

    /// Serves connections until `shutdown` completes, then stops accepting,
    /// sends close 1001 to every open connection, waits up to the shutdown
    /// timeout for them to finish, and reports what was done. Connections
    /// still open then are dropped with the runtime (the binary's ends at
    /// once).
    pub async fn run<F: Future<Output = ()>>(self, shutdown: F) -> Summary {
        let Self {
            listener,
            shared,
            tls,
        } = self;
        tokio::spawn(parking::drive(Arc::clone(&shared.parking)));
        // Closes parked connections if this future is dropped before the
        // shutdown below resumes them.
        let _parking = CloseOnDrop(Arc::clone(&shared.parking));
        let mut backoff = Backoff::default();
        let mut at_limit = false;
        tokio::pin!(shutdown);
        loop {
            // Accepting comes first: polling the shutdown future (signal
            // streams, each behind a lock) for every accepted connection cost
            // a few percent of a handshake. It is still polled at least every
            // 128 accepts, when tokio's cooperative budget makes a busy
            // listener return Pending.
            tokio::select! {
                biased;
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        backoff.reset();
                        if shared.metrics.connection_slots() >= shared.config.max_connections {
                            if !at_limit {
                                tracing::warn!(
                                    limit = shared.config.max_connections,
                                    "connection limit reached; refusing new connections with 503"
                                );
                                at_limit = true;
                            }
                            tokio::spawn(refuse(stream, peer, tls.clone(), TaskGuard::new(&shared)));
                        } else {
                            at_limit = false;
                            if let Err(error) = stream.set_nodelay(true) {
                                tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
                            }
                            tokio::spawn(connection::serve(
                                stream,
                                peer,
                                tls.clone(),
                                ActiveGuard::new(&shared),
                            ));
                        }
                    }
                    Err(error) if is_per_connection(&error) => {
                        tracing::debug!(%error, "a connection failed before it was accepted");
                    }
                    Err(error) => {
                        // Out of file descriptors or memory: retrying at once
                        // would spin; waiting lets connections finish and free them.
                        let delay = backoff.next_delay();
                        tracing::error!(%error, retry_in = ?delay, "accept failed");
                        tokio::select! {
                            biased;
                            () = &mut shutdown => break,
                            () = crate::timers::sleep(delay) => {}
                        }
                    }
                },
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        let open = shared.metrics.tcp_open.load(Ordering::Relaxed);
        tracing::info!(
            open_connections = open,
            "shutting down: no longer accepting"
        );
        shared.shutting_down.store(true, Ordering::SeqCst);
        shared.stop.notify_waiters();
        // Parked connections wait for no notification: each goes back to a
        // task, whose echo loop sees the flag and closes it with 1001.
        for parked in shared.parking.close() {
            tokio::spawn(connection::resume(parked));
        }
        let timeout = shared.config.shutdown_timeout;
        let drained = crate::timers::timeout(timeout, async {
            // A stale permit (from an earlier time the count fell to 0) only
            // makes the loop look once more.
            while shared.tasks.load(Ordering::Acquire) > 0 {
                shared.tasks_ended.notified().await;
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                remaining = shared.tasks.load(Ordering::Acquire),
                ?timeout,
                "shutdown timeout expired; dropping the remaining connections"
            );
        }
        Summary {
            connections_served: shared.metrics.connections_total(),
            connections_http1: shared.metrics.total_over(HttpVersion::Http1),
            connections_http2: shared.metrics.total_over(HttpVersion::Http2),
            messages_echoed: shared.metrics.messages_sent(),
        }
    }
}

/// The most the soft limit on open files is raised to: Linux's default
/// ceiling (`fs.nr_open`), and far more than one process serves.
const FD_LIMIT_CEILING: u64 = 1 << 20;

/// Descriptors the server needs besides its connections: the listener,
/// stdio, the runtime's own, and room for connections that are being
/// refused with 503.
const FD_RESERVE: u64 = 64;

/// Raises the soft limit on open files to the hard limit (at most
/// 1,048,576) and returns the new soft limit, or `None` if it cannot be read
/// or set.
///
/// Many systems start processes with a soft limit of 1024, which would make
/// `accept` fail (EMFILE) long before the default connection limit of
/// 10,000; the hard limit is what the administrator allows.
pub fn raise_fd_limit() -> Option<u64> {
    let before = rlimit::Resource::NOFILE.get().ok();
    match rlimit::increase_nofile_limit(FD_LIMIT_CEILING) {
        Ok(limit) => {
            tracing::debug!(
                before = ?before.map(|(soft, _)| soft),
                soft_limit = limit,
                hard_limit = ?before.map(|(_, hard)| hard),
                "open-file limit"
            );
            Some(limit)
        }
        Err(error) => {
            tracing::debug!(%error, "cannot raise the open-file limit");
            None
        }
    }
}

/// Warns when the open-file limit cannot accommodate the connection limit:
/// past it, new connections fail at `accept` instead of getting a 503.
fn check_fd_limit(limit: Option<u64>, max_connections: usize) {
    let needed = (max_connections as u64).saturating_add(FD_RESERVE);
    if let Some(limit) = limit.filter(|&limit| limit < needed) {
        tracing::warn!(
            open_file_limit = limit,
            max_connections,
            "the open-file limit is below the connection limit; raise `ulimit -n` or lower --max-connections"
        );
    }
}

/// Answers a connection over the limit with 503 and closes it; over TLS,
/// after a handshake bounded by the handshake timeout, so that the client
/// can read the answer (over HTTP/2 when ALPN chose `h2`: 503 on its
/// streams, then GOAWAY).
async fn refuse(stream: TcpStream, peer: SocketAddr, tls: Option<TlsConfig>, task: TaskGuard) {
    let shared = task.shared();
    tracing::debug!(%peer, "over the connection limit; answering 503");
    let timeout = shared.config.handshake_timeout;
    let transport = match tls::accept_within(stream, peer, tls.as_ref(), timeout).await {
        Ok(transport) => transport,
        Err(TlsFailure::Failed) => {
            shared.metrics.tls_failed();
            return;
        }
        Err(TlsFailure::TimedOut) => {
            shared.metrics.handshake_timed_out();
            return;
        }
    };
    if transport.alpn_protocol() == Some(b"h2") {
        crate::http2::refuse(transport, peer, shared, timeout).await;
        return;
    }
    shared.metrics.answered(Answer::Refused(503));
    let (_, response) = http::error(
        503,
        "too many connections, try again later",
        &[("Retry-After", "1")],
    );
    http::respond_and_close(transport, &response).await;
}

/// Errors that concern one connection in the accept queue, not the listener:
/// the next accept can go ahead at once.
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Counts a connection task in [`Shared::tasks`] for as long as it lives.
pub(crate) struct TaskGuard(Arc<Shared>);

impl TaskGuard {
    pub(crate) fn new(shared: &Arc<Shared>) -> Self {
        shared.tasks.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(shared))
    }

    /// The state shared with the server, which the guard keeps alive: a
    /// connection task needs no other reference to it.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.0
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        // tokio drops a task's future inside its panic guard, so a panic in
        // a connection task is seen here; tokio contains it and other
        // connections go on.
        if std::thread::panicking() {
            tracing::error!("a connection task panicked");
        }
        if self.0.tasks.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.tasks_ended.notify_one();
        }
    }
}

/// Counts a connection as open (against `--max-connections`, and in
/// `ws_server_tcp_connections_open`) for as long as it lives, and its task
/// as running.
pub(crate) struct ActiveGuard(TaskGuard);

impl ActiveGuard {
    pub(crate) fn new(shared: &Arc<Shared>) -> Self {
        shared.metrics.tcp_open.fetch_add(1, Ordering::Relaxed);
        Self(TaskGuard::new(shared))
    }

    /// The state shared with the server (see [`TaskGuard::shared`]).
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        self.0.shared()
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0
            .shared()
            .metrics
            .tcp_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Exponential backoff for accept errors: 10 ms doubling up to 1 s.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    fn next_delay(&mut self) -> Duration {
        let delay = Self::FIRST
            .saturating_mul(1 << self.failures.min(16))
            .min(Self::MAX);
        self.failures = self.failures.saturating_add(1);
        delay
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_in_the_singular_and_the_plural() {
        let summary = |connections_http1, connections_http2, messages_echoed| {
            Summary {
                connections_served: connections_http1 + connections_http2,
                connections_http1,
                connections_http2,
                messages_echoed,
            }
            .to_string()
        };
        assert_eq!(
            summary(1, 0, 1),
            "served 1 connection (http=1.1: 1, http=2: 0), echoed 1 message"
        );
        assert_eq!(
            summary(0, 0, 2),
            "served 0 connections (http=1.1: 0, http=2: 0), echoed 2 messages"
        );
        assert_eq!(
            summary(1, 2, 0),
            "served 3 connections (http=1.1: 1, http=2: 2), echoed 0 messages"
        );
    }

    #[tokio::test]
    async fn the_page_url_of_an_unspecified_address_is_loopback() {
        let server = Server::bind("0.0.0.0:0", ServerConfig::default())
            .await
            .unwrap();
        let port = server.local_addr().unwrap().port();
        assert_eq!(
            server.page_url().unwrap(),
            format!("http://127.0.0.1:{port}/")
        );
        let server = Server::bind("127.0.0.1:0", ServerConfig::default())
            .await
            .unwrap();
        let addr = server.local_addr().unwrap();
        assert_eq!(server.page_url().unwrap(), format!("http://{addr}/"));
    }

    #[test]
    fn backoff_doubles_up_to_a_second_and_resets() {
        let mut backoff = Backoff::default();
        let delays: Vec<u64> = (0..10)
            .map(|_| backoff.next_delay().as_millis() as u64)
            .collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        for _ in 0..100 {
            backoff.next_delay();
        }
        assert_eq!(backoff.next_delay(), Backoff::MAX);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Backoff::FIRST);
    }

    #[test]
    fn only_queue_level_errors_skip_the_backoff() {
        assert!(is_per_connection(&io::Error::from(
            io::ErrorKind::ConnectionAborted
        )));
        // EMFILE: the process is out of file descriptors.
        assert!(!is_per_connection(&io::Error::from_raw_os_error(24)));
    }

    #[test]
    fn fd_limit_is_raised_to_at_least_what_it_was() {
        let (soft_before, hard) = rlimit::Resource::NOFILE.get().unwrap();
        let raised = raise_fd_limit().unwrap();
        assert!(raised >= soft_before);
        assert!(raised <= hard);
        assert_eq!(rlimit::Resource::NOFILE.get().unwrap().0, raised);
    }

    #[tokio::test]
    async fn the_last_task_to_end_wakes_the_shutdown() {
        let shared = Arc::new(Shared::new(ServerConfig::default()));
        let refused = TaskGuard::new(&shared);
        let served = ActiveGuard::new(&shared);
        assert_eq!(shared.tasks.load(Ordering::Acquire), 2);
        drop(refused);
        assert_eq!(shared.tasks.load(Ordering::Acquire), 1);
        drop(served);
        assert_eq!(shared.tasks.load(Ordering::Acquire), 0);
        // The permit left when the count fell to 0 ends a wait at once.
        tokio::time::timeout(Duration::from_secs(1), shared.tasks_ended.notified())
            .await
            .unwrap();
    }

    #[test]
    fn active_guard_counts_while_alive() {
        let shared = Arc::new(Shared::new(ServerConfig::default()));
        let first = ActiveGuard::new(&shared);
        let second = ActiveGuard::new(&shared);
        assert_eq!(shared.metrics.tcp_open.load(Ordering::Relaxed), 2);
        drop(first);
        drop(second);
        assert_eq!(shared.metrics.tcp_open.load(Ordering::Relaxed), 0);
    }
}
