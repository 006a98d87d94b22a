//! One accepted TCP connection: the HTTP head, then either a plain response
//! or a WebSocket echo session; or HTTP/2 (ALPN `h2`, or the preface on a
//! plaintext port), whose WebSocket streams run the same echo session.
//!
//! Every protocol decision is ws-core's; this module only moves the
//! connection through its phases and bounds each one in time.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::futures::Notified;
use tokio::time::Instant;
use ws_core::handshake::ServerHandshake;
use ws_core::http2::{Http2Stream, Preface, Prefixed, ServerConnection, detect_preface};
use ws_core::stream::{ReadReady, WebSocket};
use ws_core::{CloseCode, Error, Event, Message, State};

use crate::config::ServerConfig;
use crate::http;
use crate::http2::{self, StreamSlot};
use crate::metered::Metered;
use crate::metrics::{Answer, ClosedBy, HttpVersion, Traffic};
use crate::parking::{Lost, Parked};
use crate::server::{ActiveGuard, Shared};
use crate::tcp;
use crate::timers::{Sleep, far_or};
use crate::tls::{self, TlsConfig, TlsFailure, Transport};

/// The WebSocket type the server runs on: over a TCP (or TLS) connection,
/// or over an HTTP/2 stream.
///
/// Every read and write goes through the three layers, so their forwarding
/// methods are `#[inline]`: left to the optimizer, five of them stayed out of
/// line, 48 instructions per 20-byte echo (callgrind, 2,479 against 2,431).
pub(crate) type Socket<T = Transport> = WebSocket<WriteDeadline<Metered<T>>>;

/// The payload of the ping an idle connection gets, so that a packet capture
/// shows why it was sent.
const IDLE_PING: &[u8] = b"idle";

/// Serves one connection from its first byte to its end, counted as open
/// (`active`) until then.
///
/// A task's future is as large as its largest state, for as long as the task
/// lives. So the opening (TLS, the request head, a plain HTTP answer, or a
/// whole HTTP/2 connection) runs in its own allocation, freed once it is
/// over, and an idle WebSocket connection holds only the session's state.
///
/// Not an `async fn`: one copies its arguments into locals of its own, and
/// the task would carry both copies, dead after the opening, for its whole
/// life. For the same reason the opening's future is made here, outside the
/// task's state, which would otherwise keep the stream and the TLS
/// configuration it took.
#[allow(clippy::manual_async_fn)]
pub(crate) fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsConfig>,
    active: ActiveGuard,
) -> impl Future<Output = ()> + Send {
    let opening = Box::pin(open(stream, peer, Arc::clone(active.shared()), tls));
    run_http1(Start::Opening { opening, active })
}

/// Resumes a parked connection's echo session (see [`crate::parking`]) in
/// a task of its own, where it stopped.
pub(crate) fn resume(parked: Box<Parked>) -> impl Future<Output = ()> + Send {
    run_http1(Start::Parked(parked))
}

/// Reports a parked connection that will not be resumed (the server was
/// dropped without its shutdown) as a dropped task would.
pub(crate) fn abandon(tally: Tally, active: &ActiveGuard) {
    drop(Report::new(tally, active.shared()));
}

/// Reports a parked connection whose socket was lost on its way out of the
/// runtime's IO driver or back (see [`Parked::new`]): closed without a
/// closing handshake.
fn lost(lost: Lost) {
    let Lost {
        error,
        tally,
        active,
    } = lost;
    tracing::warn!(peer = %tally.origin.peer, %error, "a parked connection's socket was lost");
    let mut report = Report::new(tally, active.shared());
    report.ending = Ending::Abnormal;
}

/// The opening of a connection (see [`open`]), boxed.
///
/// A trait object, so that a new connection and a resumed one run the same
/// [`run_http1`] future: with two copies, the echo loop was no longer
/// inlined into either, which cost 40 instructions per echoed message.
type OpeningFuture = Pin<Box<dyn Future<Output = Option<Upgraded>> + Send>>;

/// Where an HTTP/1.1 connection's task starts.
enum Start {
    /// At the connection's start, with its opening (the TLS handshake, the
    /// request head) still to run.
    Opening {
        opening: OpeningFuture,
        /// Held until the connection ends (or parks), it also holds the
        /// task's reference to the shared state: reached through the guard
        /// rather than a variable of its own, which would take room in the
        /// task.
        active: ActiveGuard,
    },
    /// Back from the parking lot.
    Parked(Box<Parked>),
}

/// Serves an HTTP/1.1 connection until it ends or parks.
#[allow(clippy::manual_async_fn)]
fn run_http1(start: Start) -> impl Future<Output = ()> + Send {
    async move {
        let (socket, active, begun) = match start {
            Start::Opening { opening, active } => {
                let Some(Upgraded {
                    socket,
                    deflate,
                    peer,
                }) = opening.await
                else {
                    return;
                };
                (socket, active, Begun::New(deflate, peer))
            }
            Start::Parked(parked) => match parked.resume() {
                Ok((socket, tally, clock, active)) => (socket, active, Begun::Parked(tally, clock)),
                Err(failure) => return lost(failure),
            },
        };
        let (socket, tally, clock) = {
            let shared = active.shared();
            // A shutdown that started before this point is seen by the echo
            // loop's first look at the flag: the connection is closed with 1001.
            let shutdown = StopSignal::new(shared);
            tokio::pin!(shutdown);
            shutdown.as_mut().listen();
            // TLS may hold decrypted input its socket's readiness does not
            // show, so only plaintext connections park.
            let plain = matches!(socket.get_ref().get_ref().get_ref(), Transport::Plain(_));
            let parkable = plain && shared.config.park_after.is_some() && shared.parking.accepts();
            let bytes_read = socket.get_ref().get_ref().bytes_read();
            let (mut session, clock) = match begun {
                Begun::New(deflate, peer) => {
                    let origin = Origin {
                        peer,
                        version: HttpVersion::Http1,
                        stream: None,
                    };
                    let session = Session::new(socket, deflate, origin, shared);
                    (session, Clock::new(&shared.config, bytes_read))
                }
                Begun::Parked(tally, mut clock) => {
                    clock.resumed(&shared.config);
                    (Session::resumed(socket, tally, shared), clock)
                }
            };
            let read = (bytes_read, session.report.tally.messages_in());
            let timekeeper = Timekeeper::new(&shared.config, clock, parkable, read);
            match session.echo_loop(shutdown, timekeeper).await {
                None => {
                    Box::pin(session.finish()).await;
                    return;
                }
                Some(clock) => {
                    let (socket, tally) = session.into_parts();
                    (socket, tally, clock)
                }
            }
        };
        let lot = Arc::clone(&active.shared().parking);
        match Parked::new(socket, tally, clock, active) {
            Ok(parked) => lot.park(parked),
            Err(failure) => lost(failure),
        }
    }
}

/// How an HTTP/1.1 connection's echo session begins.
enum Begun {
    /// Just upgraded (with permessage-deflate if the flag is set).
    New(bool, SocketAddr),
    /// Resumed after parking.
    Parked(Tally, Clock),
}

/// Runs the echo session of a WebSocket over an HTTP/2 stream (accepted by
/// [`http2::serve`]) until it ends, holding its connection slot meanwhile.
pub(crate) async fn serve_stream(
    socket: Box<Socket<Http2Stream>>,
    deflate: bool,
    origin: Origin,
    shared: Arc<Shared>,
    _slot: StreamSlot,
) {
    // A shutdown that started before this task did is seen by the echo
    // loop's first look at the flag: the stream is closed with 1001.
    let shutdown = StopSignal::new(&shared);
    tokio::pin!(shutdown);
    shutdown.as_mut().listen();
    let bytes_read = socket.get_ref().get_ref().bytes_read();
    let mut session = Session::new(socket, deflate, origin, &shared);
    let clock = Clock::new(&shared.config, bytes_read);
    // An HTTP/2 stream does not park: its connection's task serves it.
    let timekeeper = Timekeeper::new(&shared.config, clock, false, (bytes_read, 0));
    session.echo_loop(shutdown, timekeeper).await;
    Box::pin(session.finish()).await;
}

/// Where a WebSocket came from, for its log lines and counters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin {
    /// The client's address.
    pub(crate) peer: SocketAddr,
    /// HTTP/1.1 upgrade or HTTP/2 extended CONNECT.
    pub(crate) version: HttpVersion,
    /// The HTTP/2 stream identifier (nonzero: 4 bytes less in every
    /// connection's state than an `Option<u32>`).
    pub(crate) stream: Option<NonZeroU32>,
}

pin_project! {
    /// Completes when the server stops; cheap enough to poll on every message.
    /// Once complete, it stays complete.
    ///
    /// A `Notified` takes a lock each time it is polled, and the echo loop polls
    /// the shutdown whenever it waits for input. So the `Notified` is polled
    /// only until it holds the task's waker (which does not change for the
    /// task's life); afterwards the wake-up it delivers is recognised by the
    /// flag the server sets before it notifies.
    struct StopSignal<'a> {
        #[pin]
        notified: Notified<'a>,
        stopping: &'a AtomicBool,
        waker_registered: bool,
    }
}

impl<'a> StopSignal<'a> {
    /// The server's stop, not yet listened for: see [`listen`](Self::listen).
    fn new(shared: &'a Shared) -> Self {
        Self {
            notified: shared.stop.notified(),
            stopping: &shared.shutting_down,
            waker_registered: false,
        }
    }

    /// Listens for the stop from now on, before the first poll: a stop that
    /// starts after this wakes the task even if the flag was read too early
    /// to see it.
    fn listen(self: Pin<&mut Self>) {
        self.project().notified.enable();
    }
}

impl Future for StopSignal<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        if this.stopping.load(Ordering::Relaxed) {
            return Poll::Ready(());
        }
        if !*this.waker_registered {
            if this.notified.poll(cx).is_ready() {
                return Poll::Ready(());
            }
            *this.waker_registered = true;
        }
        Poll::Pending
    }
}

/// The opening of a connection, bounded by the handshake timeout and cut
/// short by a shutdown: the WebSocket after a 101 (with permessage-deflate if
/// the flag is set), or `None` once whatever else was asked has been answered
/// (or the client went away). An HTTP/2 connection is served here to its
/// end, its state kept out of the task's like the opening's.
async fn open(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    tls: Option<TlsConfig>,
) -> Option<Upgraded> {
    let shutdown = StopSignal::new(&shared);
    tokio::pin!(shutdown);
    // Registered before the flag is read: a shutdown that starts in between
    // still wakes this connection.
    shutdown.as_mut().listen();
    if shared.shutting_down.load(Ordering::SeqCst) {
        return None;
    }
    let timeout = shared.config.handshake_timeout;
    let opening = tokio::select! {
        biased;
        () = shutdown.as_mut() => {
            tracing::debug!(%peer, "server shutting down during the handshake");
            return None;
        }
        opening = crate::timers::timeout(timeout, handshake(stream, peer, &shared, tls.as_ref())) => opening,
    };
    match opening {
        Err(_) => {
            shared.metrics.handshake_timed_out();
            tracing::info!(%peer, ?timeout, "handshake timed out; connection dropped");
        }
        Ok(Opening::Dropped) => {}
        Ok(Opening::Respond(stream, response)) => {
            http::respond_and_close(stream, &response).await;
        }
        Ok(Opening::Upgraded(socket, deflate)) => {
            return Some(Upgraded {
                socket,
                deflate,
                peer,
            });
        }
        Ok(Opening::Http2(connection)) => {
            // Boxed: the HTTP/2 connection's state is larger than the
            // opening's, which every connection allocates.
            Box::pin(http2::serve(
                *connection,
                peer,
                Arc::clone(&shared),
                shutdown,
            ))
            .await;
        }
    }
    None
}

/// A connection that the opening upgraded to WebSocket.
struct Upgraded {
    socket: Box<Socket>,
    deflate: bool,
    /// The client's address, returned with the socket so that the task does
    /// not keep a copy of its own through the opening.
    peer: SocketAddr,
}

/// How the opening of a connection ended.
enum Opening {
    /// The client went away or the transport failed; nothing is owed.
    Dropped,
    /// Send this final response (plain HTTP, or a refused upgrade) and close.
    Respond(Transport, Vec<u8>),
    /// The 101 was sent: the connection speaks WebSocket now (with
    /// permessage-deflate if the flag is set).
    Upgraded(Box<Socket>, bool),
    /// The client speaks HTTP/2, and its handshake is done.
    Http2(Box<http2::Connection>),
}

/// Runs the TLS handshake (if any), reads the request head and answers it;
/// an upgrade ends with the socket.
async fn handshake(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    tls: Option<&TlsConfig>,
) -> Opening {
    let mut stream = match tls::accept(stream, peer, tls).await {
        Ok(stream) => stream,
        Err(failure) => {
            match failure {
                TlsFailure::Failed => shared.metrics.tls_failed(),
                TlsFailure::TimedOut => shared.metrics.handshake_timed_out(),
            }
            return Opening::Dropped;
        }
    };
    if shared.config.http2 && stream.alpn_protocol() == Some(b"h2") {
        return http2_opening(Prefixed::new(BytesMut::new(), stream), peer, shared).await;
    }
    // Prior knowledge (RFC 9113 §3.3) is for plaintext only: over TLS,
    // HTTP/2 is chosen with ALPN.
    let prior_knowledge = shared.config.http2 && matches!(stream, Transport::Plain(_));
    let mut handshake = ServerHandshake::new(shared.config.core_config());
    loop {
        let preface = if prior_knowledge {
            detect_preface(handshake.read_buffer())
        } else {
            Preface::Other
        };
        if preface == Preface::Http2 {
            let read = handshake.into_leftover();
            return http2_opening(Prefixed::new(read, stream), peer, shared).await;
        }
        // While the bytes may still become the preface, no HTTP/1.1 head is
        // parsed (`PRI * HTTP/2.0` is not one).
        let request = if preface == Preface::Partial {
            Ok(None)
        } else {
            handshake.request()
        };
        match request {
            Ok(Some(_)) => break,
            Ok(None) => {}
            Err(refused) => {
                let error = &refused.error;
                let status = error.status();
                if looks_like_upgrade(handshake.read_buffer()) {
                    tracing::warn!(%peer, status, %error, "bad upgrade request");
                    shared.metrics.answered(Answer::Refused(status));
                    return Opening::Respond(stream, refused.response);
                }
                // Not (visibly) a WebSocket handshake: a plain HTTP error,
                // whose message does not talk about handshakes.
                let message = http_message(error);
                tracing::info!(%peer, status, error = %message, "bad http request");
                shared.metrics.answered(Answer::Http(status));
                return Opening::Respond(stream, http::error(status, &message, &[]).1);
            }
        }
        match stream.read_buf(handshake.read_buffer()).await {
            Ok(0) => {
                tracing::debug!(%peer, "connection closed before a complete request");
                return Opening::Dropped;
            }
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(%peer, %error, "reading the request failed");
                return Opening::Dropped;
            }
        }
    }
    if let Some(request) = handshake.head().filter(|head| !head.is_upgrade()) {
        let (status, response) = http::route(request, &shared.metrics);
        // Client-supplied text is logged with Debug so it cannot forge log lines.
        tracing::info!(%peer, method = ?request.method, path = ?request.path(), status, "http request");
        shared.metrics.answered(Answer::Http(status));
        return Opening::Respond(stream, response);
    }
    let mut protocol = None;
    let accepted = handshake.accept(|request| {
        let options = shared.config.choose(request)?;
        protocol.clone_from(&options.protocol);
        Ok(options)
    });
    match accepted {
        Err(refused) => {
            let error = &refused.error;
            tracing::warn!(%peer, status = error.status(), %error, "upgrade refused");
            shared.metrics.answered(Answer::Refused(error.status()));
            Opening::Respond(stream, refused.response)
        }
        Ok(accepted) => {
            if let Err(error) = stream.write_all(&accepted.response).await {
                tracing::debug!(%peer, %error, "writing the 101 response failed");
                return Opening::Dropped;
            }
            let request = &accepted.request;
            let extensions = accepted.deflate.map(|params| params.to_header());
            // Any path is accepted: the echo is the same everywhere.
            tracing::info!(
                %peer,
                http = %HttpVersion::Http1.label(),
                path = ?request.path(),
                protocol = protocol.as_deref().unwrap_or("none"),
                extensions = extensions.as_deref().unwrap_or("none"),
                "connection opened"
            );
            tracing::debug!(
                %peer,
                offered_protocols = ?request.protocols,
                origin = ?request.origin,
                "connection request"
            );
            let stream = WriteDeadline::new(Metered::new(stream), shared.config.close_timeout);
            let socket = WebSocket::from_connection(stream, accepted.connection);
            // The request head (all its headers) is not kept for the
            // connection's lifetime.
            Opening::Upgraded(Box::new(socket), extensions.is_some())
        }
    }
}

/// The HTTP/2 handshake on a connection that chose HTTP/2, under the
/// handshake timeout like the rest of the opening: the server's SETTINGS
/// (extended CONNECT enabled, the stream limit) out, the client's preface
/// and SETTINGS in.
async fn http2_opening(io: Prefixed<Transport>, peer: SocketAddr, shared: &Shared) -> Opening {
    let config = shared.config.core_config();
    match ServerConnection::handshake(io, config, shared.config.http2_settings()).await {
        Ok(connection) => {
            shared.metrics.http2_connection();
            tracing::debug!(%peer, "HTTP/2 connection");
            Opening::Http2(Box::new(connection))
        }
        Err(error) => {
            tracing::info!(%peer, %error, "HTTP/2 handshake failed; connection dropped");
            Opening::Dropped
        }
    }
}

/// Whether the bytes of an unusable request head show an upgrade request:
/// an `Upgrade` header naming `websocket`. Such a request is refused as a
/// failed handshake; any other as plain HTTP.
fn looks_like_upgrade(head: &[u8]) -> bool {
    head.split(|&byte| byte == b'\n').any(|line| {
        let line = String::from_utf8_lossy(line).to_ascii_lowercase();
        line.split_once(':')
            .is_some_and(|(name, value)| name.trim() == "upgrade" && value.contains("websocket"))
    })
}

/// The message of a request-head error as plain HTTP says it: without
/// ws-core's `handshake: ` prefix, on one line.
fn http_message(error: &ws_core::handshake::HandshakeError) -> String {
    let text = error.to_string();
    text.strip_prefix("handshake: ")
        .unwrap_or(&text)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Who ended a WebSocket connection, and with which code.
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// Still open (only seen if the task is aborted before any close).
    Open,
    /// The client started the closing handshake (its code, if it sent one).
    Client(Option<CloseCode>),
    /// The server started it: shutdown or idle timeout.
    Server(CloseCode),
    /// The client violated the protocol; the server failed the connection.
    Violation(CloseCode),
    /// The transport ended without a closing handshake.
    Abnormal,
    /// The client did not read what it was sent: dropped without a close
    /// frame, which could not have reached it past the unread backlog.
    NotReading,
}

impl Ending {
    fn code(self) -> Option<CloseCode> {
        match self {
            Self::Open => Some(CloseCode::ABNORMAL),
            Self::Client(code) => Some(code.unwrap_or(CloseCode::NO_STATUS)),
            Self::Server(code) | Self::Violation(code) => Some(code),
            Self::Abnormal | Self::NotReading => Some(CloseCode::ABNORMAL),
        }
    }

    fn closed_by(self) -> ClosedBy {
        match self {
            Self::Client(_) => ClosedBy::Client,
            // A task aborted at the end of a shutdown: the server dropped it.
            Self::Open | Self::Server(_) | Self::Violation(_) | Self::NotReading => {
                ClosedBy::Server
            }
            Self::Abnormal => ClosedBy::Transport,
        }
    }
}

/// What a connection's "connection closed" report counts, apart from how
/// it ended: kept while the connection is parked (see [`crate::parking`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tally {
    origin: Origin,
    started: Instant,
    /// Messages received and sent back, and their payload bytes.
    messages_echoed: u64,
    bytes_echoed: u64,
    /// Messages received but not sent back (after the server's close).
    messages_not_echoed: u64,
    bytes_not_echoed: u64,
}

impl Tally {
    /// Data messages received, echoed or not.
    fn messages_in(&self) -> u64 {
        self.messages_echoed + self.messages_not_echoed
    }
}

/// The tally of one connection, logged and added to the server's totals when
/// it is dropped, so that a connection aborted at the end of a shutdown is
/// reported too.
struct Report<'a> {
    tally: Tally,
    ending: Ending,
    /// Both close frames were exchanged and nothing failed (see
    /// `Connection::closed_cleanly`).
    clean: bool,
    shared: &'a Shared,
}

impl<'a> Report<'a> {
    fn new(tally: Tally, shared: &'a Shared) -> Self {
        Self {
            tally,
            ending: Ending::Open,
            clean: false,
            shared,
        }
    }

    /// The tally, for a connection that parks: the connection is still
    /// open, so nothing is reported.
    fn into_tally(self) -> Tally {
        std::mem::ManuallyDrop::new(self).tally
    }
}

impl Drop for Report<'_> {
    fn drop(&mut self) {
        let close_code = self.ending.code().map_or(0, |code| code.0);
        let closed_by = self.ending.closed_by();
        let tally = self.tally;
        let origin = tally.origin;
        self.shared
            .metrics
            .closed(closed_by, close_code, origin.version);
        tracing::info!(
            peer = %origin.peer,
            http = %origin.version.label(),
            stream = origin.stream,
            duration = ?tally.started.elapsed(),
            messages_in = tally.messages_in(),
            bytes_in = tally.bytes_echoed + tally.bytes_not_echoed,
            messages_out = tally.messages_echoed,
            bytes_out = tally.bytes_echoed,
            close_code,
            closed_by = closed_by.label(),
            clean = self.clean,
            "connection closed"
        );
    }
}

/// What woke the echo loop.
enum Wake {
    Received(Result<Option<Event>, Error>),
    Shutdown,
    /// The idle check or the park check is due.
    Timer,
}

/// A WebSocket connection after the handshake: echoes until it closes.
struct Session<'a, T> {
    socket: Box<Socket<T>>,
    report: Report<'a>,
    /// The server's per-message counters this connection adds to.
    traffic: &'a Traffic,
}

impl<'a, T> Session<'a, T>
where
    T: AsyncRead + AsyncWrite + ReadReady + Unpin,
{
    fn new(socket: Box<Socket<T>>, deflate: bool, origin: Origin, shared: &'a Shared) -> Self {
        let traffic = shared.metrics.opened(deflate, origin.version);
        let tally = Tally {
            origin,
            started: Instant::now(),
            messages_echoed: 0,
            bytes_echoed: 0,
            messages_not_echoed: 0,
            bytes_not_echoed: 0,
        };
        Self {
            socket,
            traffic,
            report: Report::new(tally, shared),
        }
    }

    /// A parked connection's session, resumed.
    fn resumed(socket: Box<Socket<T>>, tally: Tally, shared: &'a Shared) -> Self {
        let traffic = shared.metrics.traffic(u64::from(tally.origin.peer.port()));
        Self {
            socket,
            traffic,
            report: Report::new(tally, shared),
        }
    }

    /// Gives up the session for parking, without reporting it: the
    /// connection is still open.
    fn into_parts(self) -> (Box<Socket<T>>, Tally) {
        let Self { socket, report, .. } = self;
        (socket, report.into_tally())
    }

    /// Whether the connection may leave its task: open, nothing read and
    /// not yet processed, nothing queued to write, no message half received
    /// (its buffer would be kept), and no other buffer held.
    fn may_park(&self) -> bool {
        let connection = self.socket.connection();
        connection.state() == State::Open
            && connection.buffered_input() == 0
            && !connection.wants_write()
            && connection.buffered_capacity() == 0
            && !self.report.shared.shutting_down.load(Ordering::Relaxed)
    }

    /// The server's settings: read from there, not copied into every
    /// connection's state.
    fn config(&self) -> &'a ServerConfig {
        &self.report.shared.config
    }

    /// Logs the connection's report, then closes TCP from the server's side
    /// (RFC 6455 §7.1.1): at once after a completed closing handshake, since
    /// the client sends nothing after its close frame; otherwise with a
    /// linger that drains what the client may still be sending.
    async fn finish(self) {
        let Self {
            socket, mut report, ..
        } = self;
        let clean = socket.connection().closed_cleanly();
        report.clean = clean;
        drop(report);
        let (stream, _) = socket.into_parts();
        if !clean {
            tcp::linger(stream).await;
        }
    }

    /// The echo loop. Messages are queued, not written one by one: `recv`
    /// writes the queue when it runs out of buffered input, so a burst of
    /// small messages goes back in one write.
    ///
    /// A connection whose `timekeeper` has a park check, that read nothing
    /// for [`park_after`](ServerConfig::park_after) and
    /// [`may_park`](Self::may_park), ends the loop: it returns the idle
    /// bookkeeping to park with (see [`crate::parking`]).
    ///
    /// Not an `async fn`, which would keep a second copy of its arguments
    /// in the task for the connection's life.
    #[allow(clippy::manual_async_fn)]
    fn echo_loop<F>(
        &mut self,
        mut shutdown: Pin<&mut F>,
        mut timekeeper: Option<Pin<Box<Timekeeper>>>,
    ) -> impl Future<Output = Option<Clock>>
    where
        F: Future<Output = ()>,
    {
        async move {
            loop {
                // A client that keeps the input full makes `recv` ready on every
                // poll, so the other branches below might never be polled; this
                // flag (one relaxed load) still ends such a connection at shutdown.
                let wake = if self.report.shared.shutting_down.load(Ordering::Relaxed) {
                    Wake::Shutdown
                } else {
                    // Idle connections hold no buffers while they wait (see
                    // `recv_lean`): 10,000 idle clients must stay cheap. A
                    // connection the last park check found busy holds them
                    // (see `busy_enough_to_keep_buffers`).
                    let mut received = std::pin::pin!(self.socket.recv_lean());
                    std::future::poll_fn(|cx| {
                        let timer = timekeeper.as_mut().map(|timer| timer.as_mut());
                        next_wake(cx, received.as_mut(), shutdown.as_mut(), timer)
                    })
                    .await
                };
                match wake {
                    Wake::Received(Ok(Some(event))) => {
                        self.echo(event);
                        if self.backlog() > self.config().max_backlog
                            && !Box::pin(self.drain_backlog(shutdown.as_mut())).await
                        {
                            return None;
                        }
                    }
                    Wake::Received(Ok(None)) => return None,
                    Wake::Received(Err(error)) => {
                        self.failed(&error);
                        return None;
                    }
                    Wake::Shutdown => {
                        Box::pin(self.close(CloseCode::GOING_AWAY, "server shutting down")).await;
                        return None;
                    }
                    Wake::Timer => {
                        let Some(keeper) = timekeeper.as_mut() else {
                            continue;
                        };
                        let now = Instant::now();
                        let bytes_read = self.socket.get_ref().get_ref().bytes_read();
                        let time = keeper.as_mut().project();
                        if time.clock.idle_check.is_some_and(|at| at <= now)
                            && !Box::pin(self.idle_check(time.clock, now, bytes_read)).await
                        {
                            return None;
                        }
                        let time = keeper.as_mut().project();
                        if time.park_check.is_some_and(|at| at <= now) {
                            let messages = self.report.tally.messages_in();
                            if bytes_read == *time.bytes_at_park_check {
                                // Quiet since the last check: whatever it held
                                // goes back now, so that it may park at this
                                // check rather than the next.
                                self.socket.hold_buffers(false);
                                self.socket.connection_mut().shrink_buffers();
                                if self.may_park() {
                                    time.clock.parked_at = Some(now);
                                    return Some(*time.clock);
                                }
                            } else {
                                let period = time.clock.park_delay(self.config());
                                let busy = period.is_some_and(|period| {
                                    busy_enough_to_keep_buffers(
                                        messages - *time.messages_at_park_check,
                                        period,
                                    )
                                });
                                self.socket.hold_buffers(busy);
                                time.clock.busy();
                            }
                            *time.messages_at_park_check = messages;
                            *time.park_check = time
                                .clock
                                .park_delay(self.config())
                                .map(|period| far_or(now, period));
                            *time.bytes_at_park_check = bytes_read;
                        }
                        keeper.as_mut().rearm();
                    }
                }
            }
        }
    }

    /// The idle timeout's check, when its time comes: a connection that
    /// read nothing since the last check is pinged, and closed if it still
    /// reads nothing by the next; `false` once it is closed.
    async fn idle_check(&mut self, clock: &mut Clock, now: Instant, bytes_read: u64) -> bool {
        let Some(period) = self.config().idle_timeout else {
            clock.idle_check = None;
            return true;
        };
        clock.idle_check = Some(far_or(now, period));
        if bytes_read != clock.bytes_at_idle_check {
            clock.bytes_at_idle_check = bytes_read;
            clock.idle_pinged = false;
            true
        } else if !clock.idle_pinged {
            tracing::debug!(peer = %self.report.tally.origin.peer, "idle; sending a ping");
            clock.idle_pinged = true;
            self.ping_idle().await
        } else {
            tracing::debug!(peer = %self.report.tally.origin.peer, "no answer to the idle ping");
            self.close(CloseCode::GOING_AWAY, "idle timeout").await;
            false
        }
    }

    /// Handles one event: data goes back, control frames were already
    /// answered by ws-core.
    fn echo(&mut self, event: Event) {
        let message = match event {
            Event::Text(text) => Message::Text(text),
            Event::Binary(bytes) => Message::Binary(bytes),
            Event::Ping(_) | Event::Pong(_) => return,
            Event::Close(frame) => {
                self.report.ending = Ending::Client(frame.map(|frame| frame.code));
                return;
            }
            // Kinds of event a later ws-core may add are not echoed.
            _ => return,
        };
        let len = message.len() as u64;
        match self.socket.queue(message) {
            Ok(()) => {
                self.report.tally.messages_echoed += 1;
                self.report.tally.bytes_echoed += len;
                self.traffic.echoed(len);
            }
            // Only possible once a close was sent, and then data is not echoed.
            Err(error) => {
                self.report.tally.messages_not_echoed += 1;
                self.report.tally.bytes_not_echoed += len;
                self.traffic.not_echoed(len);
                tracing::debug!(peer = %self.report.tally.origin.peer, %error, "message not echoed");
            }
        }
    }

    /// Echoed bytes not yet written to the socket.
    fn backlog(&mut self) -> usize {
        self.socket.connection_mut().outbound().remaining()
    }

    /// The client is sending faster than it reads its echoes: stop reading
    /// from it and only write, until the backlog is back under the cap.
    /// `false` if the client was dropped because it stayed over the cap for
    /// the close timeout, or the connection ended.
    ///
    /// No `recv` runs meanwhile, so no more echoes are queued: ws-core reads
    /// ahead at most one frame and 64 KiB while the write is blocked, without
    /// processing it, and the rest of the client's input waits in the kernel,
    /// where TCP flow control stops the client. The connection holds at most
    /// the cap, one more message and that read-ahead.
    async fn drain_backlog<F>(&mut self, mut shutdown: Pin<&mut F>) -> bool
    where
        F: Future<Output = ()>,
    {
        let peer = self.report.tally.origin.peer;
        tracing::debug!(%peer, backlog = self.backlog(), cap = self.config().max_backlog, "backlog over the cap; reading paused");
        let deadline = Instant::now() + self.config().close_timeout;
        let flushed = tokio::select! {
            biased;
            flushed = crate::timers::timeout_at(deadline, self.socket.flush()) => flushed,
            // The backlog cannot carry a close frame to a client that does not
            // read, so a shutdown just drops it.
            () = shutdown.as_mut() => {
                self.report.ending = Ending::NotReading;
                return false;
            }
        };
        let stuck = |error: &Error| matches!(error, Error::Io(error) if error.kind() == io::ErrorKind::TimedOut);
        match flushed {
            Ok(Ok(())) => true,
            // The write timeout and this one are the same length: whichever
            // fires first, the client left its backlog over the cap.
            Ok(Err(error)) if !stuck(&error) => {
                self.failed(&error);
                false
            }
            Err(_) if self.backlog() <= self.config().max_backlog => true,
            Ok(Err(_)) | Err(_) => {
                tracing::warn!(
                    %peer,
                    backlog = self.backlog(),
                    cap = self.config().max_backlog,
                    timeout = ?self.config().close_timeout,
                    "client does not read its echoes; dropped"
                );
                self.report.ending = Ending::NotReading;
                false
            }
        }
    }

    /// Records why `recv` failed. On a protocol error ws-core has already
    /// written the close frame with the matching code.
    fn failed(&mut self, error: &Error) {
        let peer = self.report.tally.origin.peer;
        match error {
            Error::Io(io_error) if io_error.kind() == io::ErrorKind::TimedOut => {
                tracing::warn!(
                    %peer,
                    timeout = ?self.config().close_timeout,
                    "client read nothing while the server had data for it; dropped"
                );
                self.report.ending = Ending::NotReading;
            }
            Error::Protocol(violation) => {
                tracing::warn!(%peer, error = %violation, "protocol violation");
                self.report.ending = Ending::Violation(violation.close_code());
            }
            Error::AbnormalClosure => {
                tracing::debug!(%peer, "connection ended without a closing handshake");
                self.report.ending = Ending::Abnormal;
            }
            other => {
                tracing::debug!(%peer, error = %other, "connection failed");
                self.report.ending = Ending::Abnormal;
            }
        }
    }

    /// Pings an idle peer; `false` if the connection is gone.
    async fn ping_idle(&mut self) -> bool {
        match crate::timers::timeout(self.config().close_timeout, self.socket.ping(IDLE_PING)).await
        {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                self.failed(&error);
                false
            }
            Err(_) => {
                tracing::debug!(peer = %self.report.tally.origin.peer, "peer does not read; dropping it");
                self.report.ending = Ending::Abnormal;
                false
            }
        }
    }

    /// Starts the closing handshake and waits, up to the close timeout, for
    /// the peer's answer; data arriving meanwhile is discarded (RFC 6455
    /// §1.4). Dropping the socket afterwards closes TCP from the server's
    /// side, as §7.1.1 asks.
    async fn close(&mut self, code: CloseCode, reason: &str) {
        self.report.ending = Ending::Server(code);
        let limit = self.config().close_timeout;
        let socket = &mut self.socket;
        let handshake = async {
            socket.close(code, reason).await?;
            while socket.recv().await?.is_some() {}
            Ok::<(), Error>(())
        };
        match crate::timers::timeout(limit, handshake).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::debug!(peer = %self.report.tally.origin.peer, %error, "closing handshake failed");
            }
            Err(_) => tracing::debug!(
                peer = %self.report.tally.origin.peer,
                timeout = ?self.config().close_timeout,
                "no close frame from the peer in time; connection dropped"
            ),
        }
    }
}

/// Polls for what wakes the echo loop: the next event, the server's
/// shutdown or the timer.
///
/// `recv` comes first: while input is buffered it returns at once and the
/// other futures are not polled at all, which keeps the per-message cost at
/// the protocol's. A poll function rather than `select!` in an `async fn`,
/// which kept 48 more bytes in every idle connection's task.
fn next_wake<R, F>(
    cx: &mut Context<'_>,
    received: Pin<&mut R>,
    shutdown: Pin<&mut F>,
    timer: Option<Pin<&mut Timekeeper>>,
) -> Poll<Wake>
where
    R: Future<Output = Result<Option<Event>, Error>>,
    F: Future<Output = ()>,
{
    if let Poll::Ready(received) = received.poll(cx) {
        return Poll::Ready(Wake::Received(received));
    }
    if shutdown.poll(cx).is_ready() {
        return Poll::Ready(Wake::Shutdown);
    }
    if timer.is_some_and(|timer| timer.fired(cx)) {
        return Poll::Ready(Wake::Timer);
    }
    Poll::Pending
}

pin_project! {
    /// The echo loop's one timer, for the idle check and the park check,
    /// with their bookkeeping: one allocation, made only with an idle
    /// timeout or parking, so that connections without either do not carry
    /// it, and kept out of the task, which every open connection holds.
    ///
    /// The timer is re-armed only when it fires: a per-message reset would
    /// cost a timer update on every message. And it is cheap to look at on
    /// every message: polling a `Sleep` costs about 130 instructions (5 % of
    /// an echo), and the echo loop looks at its timer whenever it waits for
    /// input, so, like [`StopSignal`], the `Sleep` is polled only until it
    /// holds the task's waker; afterwards its firing is seen with
    /// `is_elapsed`, a load.
    struct Timekeeper {
        #[pin]
        sleep: Sleep,
        // The `Sleep` holds the task's waker for its current deadline.
        registered: bool,
        clock: Clock,
        // When the park check comes; `None` for a connection that does not
        // park.
        park_check: Option<Instant>,
        // `bytes_read` at the last park check.
        bytes_at_park_check: u64,
        // Messages received by the last park check.
        messages_at_park_check: u64,
    }
}

impl Timekeeper {
    /// The timekeeping of an echo loop that starts now with `clock`, having
    /// read `bytes_read` bytes and `messages` messages; `None` if it has
    /// nothing to time.
    fn new(
        config: &ServerConfig,
        clock: Clock,
        parkable: bool,
        (bytes_read, messages): (u64, u64),
    ) -> Option<Pin<Box<Self>>> {
        let park_check = clock
            .park_delay(config)
            .filter(|_| parkable)
            .map(|period| far_or(Instant::now(), period));
        let deadline = earliest(clock.idle_check, park_check)?;
        Some(Box::pin(Self {
            sleep: crate::timers::sleep_until(deadline),
            registered: false,
            clock,
            park_check,
            bytes_at_park_check: bytes_read,
            messages_at_park_check: messages,
        }))
    }

    /// Sets the timer for the next check.
    fn rearm(self: Pin<&mut Self>) {
        let mut this = self.project();
        if let Some(deadline) = earliest(this.clock.idle_check, *this.park_check) {
            this.sleep.reset(deadline);
            *this.registered = false;
        }
    }

    fn fired(self: Pin<&mut Self>, cx: &mut Context<'_>) -> bool {
        let this = self.project();
        if *this.registered {
            return this.sleep.is_elapsed();
        }
        // With the task's cooperative budget spent, tokio answers `Pending`
        // without registering the waker (and wakes the task to poll again).
        let budget = tokio::task::coop::has_budget_remaining();
        if this.sleep.poll(cx).is_ready() {
            return true;
        }
        *this.registered = budget;
        false
    }
}

/// The idle timeout's bookkeeping, which a parked connection keeps (see
/// [`crate::parking`]): when its next check comes, and what the last one
/// saw.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    /// `None` without an idle timeout.
    idle_check: Option<Instant>,
    /// `bytes_read` at the last check.
    bytes_at_idle_check: u64,
    /// A ping was sent at the last check.
    idle_pinged: bool,
    /// When the connection last parked, until it is resumed.
    parked_at: Option<Instant>,
    /// How long the connection must be quiet to park, before `park_after`
    /// caps it (see [`Clock::park_delay`]).
    park_wait: Duration,
}

/// How long a new connection must be quiet to park (see
/// [`Clock::park_delay`]).
pub(crate) const QUICK_PARK: Duration = Duration::from_millis(10);

impl Clock {
    /// The bookkeeping of a connection that starts now, having read
    /// `bytes_read` bytes.
    fn new(config: &ServerConfig, bytes_read: u64) -> Self {
        Self {
            idle_check: config
                .idle_timeout
                .map(|period| far_or(Instant::now(), period)),
            bytes_at_idle_check: bytes_read,
            idle_pinged: false,
            parked_at: None,
            park_wait: QUICK_PARK,
        }
    }

    /// How long the connection must be quiet before it parks; `None` if it
    /// never parks.
    ///
    /// At first [`QUICK_PARK`]: most connections that are quiet for that
    /// long stay quiet for much longer (a browser tab after its upgrade or
    /// its first messages), and parking early is what keeps a burst of new
    /// connections (a reconnect storm) from holding a task each at once,
    /// whose cells the allocator keeps even after they are freed. Each check
    /// that finds the connection busy doubles the wait, up to `park_after`,
    /// so a busy connection's timer soon fires only once per `park_after`;
    /// and a connection woken within `park_after` of parking has shown that
    /// its quiet spells are short, and from then on waits the whole
    /// `park_after`, so it parks and resumes at most once.
    fn park_delay(&self, config: &ServerConfig) -> Option<Duration> {
        config.park_after.map(|longest| self.park_wait.min(longest))
    }

    /// Notes that a park check found the connection busy.
    fn busy(&mut self) {
        self.park_wait = self.park_wait.saturating_mul(2);
    }

    /// Notes that a parked connection goes on: if it was parked for less
    /// than `park_after`, it waits the whole `park_after` from now on.
    fn resumed(&mut self, config: &ServerConfig) {
        if let (Some(parked_at), Some(longest)) = (self.parked_at.take(), config.park_after)
            && parked_at.elapsed() < longest
        {
            self.park_wait = longest;
        }
    }

    /// When the idle timeout is next checked.
    pub(crate) fn idle_check(&self) -> Option<Instant> {
        self.idle_check
    }
}

/// Messages per second from which a connection keeps its read and write
/// buffers while it waits for the next message, instead of giving them back
/// at every wait (see `WebSocket::recv_lean`).
///
/// Giving them back and taking them again costs about 130 instructions per
/// message of 20 bytes (5 % of an echo's user time) and 75 at 1 KiB; a
/// connection that sends a hundred messages a second needs them again within
/// 10 ms, while the memory of 10,000 idle connections is what giving them
/// back saves. One core echoes a few hundred thousand messages a second, so
/// this rate bounds the connections holding buffers at a few thousand per
/// core. Decided at each park check, over the time since the last one; a
/// check that finds the connection quiet takes the buffers back before it
/// parks.
const KEEP_BUFFERS_RATE: u64 = 100;

/// Fewest messages since the last park check that can make a connection
/// busy: the first checks come 10 ms apart, where one or two messages are no
/// rate yet. Ten is small enough that a connection at the rate is found busy
/// at its check 150 ms after the upgrade (a hundred would take until the
/// checks are a second apart, 2.3 s in with the default `--park-after`),
/// and a burst of ten that is then quiet holds the buffers only until the
/// next check.
const KEEP_BUFFERS_MIN_MESSAGES: u64 = 10;

/// Whether `messages` received over `period` make a connection busy enough
/// to keep its buffers (see [`KEEP_BUFFERS_RATE`]).
fn busy_enough_to_keep_buffers(messages: u64, period: Duration) -> bool {
    let at_rate = u128::from(KEEP_BUFFERS_RATE) * period.as_millis() / 1000;
    messages >= KEEP_BUFFERS_MIN_MESSAGES && u128::from(messages) >= at_rate
}

/// The earlier of two optional deadlines.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A transport whose writes fail with `TimedOut` once they have been blocked,
/// with not one byte accepted, for a set time.
///
/// A client that stops reading fills the kernel's buffers, and then every
/// write the server attempts waits; without a deadline it would wait forever
/// inside `recv`, holding the connection, its buffers and a connection slot.
/// The timer exists only while a write is blocked, so a connection whose
/// client keeps up pays nothing for it.
#[derive(Debug)]
pub(crate) struct WriteDeadline<S> {
    inner: S,
    limit: Duration,
    /// Armed when a write first blocks; kept (and reset) afterwards to avoid
    /// an allocation per blocked write.
    timer: Option<Pin<Box<Sleep>>>,
    blocked: bool,
}

impl<S> WriteDeadline<S> {
    pub(crate) fn new(inner: S, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            timer: None,
            blocked: false,
        }
    }

    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped stream; a timer armed for a blocked write is dropped.
    pub(crate) fn into_inner(self) -> S {
        self.inner
    }

    /// Called when the inner write is pending: starts the clock on the first
    /// blocked write, and fails the write once the clock runs out.
    fn poll_blocked(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if !self.blocked {
            self.blocked = true;
            let deadline = Instant::now() + self.limit;
            match self.timer.as_mut() {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(crate::timers::sleep_until(deadline))),
            }
        }
        match self.timer.as_mut().map(|timer| timer.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer read nothing for the write timeout",
            ))),
            _ => Poll::Pending,
        }
    }

    fn progressed<T>(&mut self, result: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if result.is_ready() {
            self.blocked = false;
        }
        result
    }
}

impl<S: ws_core::stream::ReadReady> ws_core::stream::ReadReady for WriteDeadline<S> {
    #[inline]
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_read_ready(cx)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Pending => this.poll_blocked(cx),
            ready => this.progressed(ready),
        }
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.poll_blocked(cx),
            ready => this.progressed(ready),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_connection_parks_quickly_until_it_is_woken_soon_after_parking() {
        let config = ServerConfig {
            park_after: Some(Duration::from_secs(1)),
            ..ServerConfig::default()
        };
        let mut clock = Clock::new(&config, 0);
        assert_eq!(clock.park_delay(&config), Some(QUICK_PARK));
        // Parked for longer than `park_after`: an idle spell, still quick.
        clock.parked_at = Some(Instant::now());
        tokio::time::advance(Duration::from_secs(2)).await;
        clock.resumed(&config);
        assert_eq!(clock.park_delay(&config), Some(QUICK_PARK));
        // Woken soon after parking: from now on the whole `park_after`.
        clock.parked_at = Some(Instant::now());
        tokio::time::advance(Duration::from_millis(100)).await;
        clock.resumed(&config);
        assert_eq!(clock.park_delay(&config), Some(Duration::from_secs(1)));
        clock.parked_at = Some(Instant::now());
        tokio::time::advance(Duration::from_secs(5)).await;
        clock.resumed(&config);
        assert_eq!(clock.park_delay(&config), Some(Duration::from_secs(1)));
    }

    #[test]
    fn each_busy_check_doubles_the_wait_up_to_park_after() {
        let config = ServerConfig {
            park_after: Some(Duration::from_millis(100)),
            ..ServerConfig::default()
        };
        let mut clock = Clock::new(&config, 0);
        let mut waits = Vec::new();
        for _ in 0..6 {
            waits.extend(clock.park_delay(&config));
            clock.busy();
        }
        let ms = Duration::from_millis;
        assert_eq!(waits, [ms(10), ms(20), ms(40), ms(80), ms(100), ms(100)]);
    }

    #[test]
    fn a_connection_holds_its_buffers_from_a_hundred_messages_a_second() {
        let ms = Duration::from_millis;
        // The first checks come 10 ms apart: a connection's first few
        // messages are no rate yet.
        assert!(!busy_enough_to_keep_buffers(1, ms(10)));
        assert!(!busy_enough_to_keep_buffers(9, ms(10)));
        assert!(busy_enough_to_keep_buffers(10, ms(10)));
        // A connection at a hundred a second is found busy at the check
        // 80 ms after the one before (the fourth, 150 ms in), not only once
        // checks are a second apart.
        assert!(!busy_enough_to_keep_buffers(4, ms(40)));
        assert!(busy_enough_to_keep_buffers(10, ms(80)));
        assert!(!busy_enough_to_keep_buffers(9, ms(80)));
        // Once checks are a second apart, a hundred in that second.
        assert!(busy_enough_to_keep_buffers(100, ms(1000)));
        assert!(!busy_enough_to_keep_buffers(99, ms(1000)));
        // A long park_after asks for the same rate, not the same count.
        assert!(!busy_enough_to_keep_buffers(5_999, ms(60_000)));
        assert!(busy_enough_to_keep_buffers(6_000, ms(60_000)));
    }

    #[test]
    fn park_after_bounds_the_quick_park_and_off_means_never() {
        let short = ServerConfig {
            park_after: Some(Duration::from_millis(3)),
            ..ServerConfig::default()
        };
        assert_eq!(
            Clock::new(&short, 0).park_delay(&short),
            Some(Duration::from_millis(3))
        );
        let off = ServerConfig {
            park_after: None,
            ..ServerConfig::default()
        };
        assert_eq!(Clock::new(&off, 0).park_delay(&off), None);
    }

    /// Every open connection holds its task's future for its whole life, and
    /// a future is as large as its largest state: whatever is not the echo
    /// loop is boxed, and no state may hold a large buffer. (A 4 KiB array in
    /// an awaited function once made this 5.8 KB per idle connection.)
    ///
    /// tokio allocates the future in a task cell with 104 bytes of its own,
    /// aligned to 128 bytes on x86-64: up to 408 bytes of future the cell is
    /// 512 bytes, 8 more make it 640 (measured with heaptrack).
    #[tokio::test]
    async fn a_connection_task_stays_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = TcpStream::connect(addr).await.unwrap();
        let shared = Arc::new(Shared::new(crate::ServerConfig::default()));
        let guard = ActiveGuard::new(&shared);
        let task = serve(stream, addr, None, guard);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 408, "a connection task's future is {size} bytes");
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_blocked_past_the_limit_times_out() {
        let (near, _far) = tokio::io::duplex(16);
        let mut stream = WriteDeadline::new(near, Duration::from_secs(5));
        let started = Instant::now();
        let error = stream.write_all(&[0u8; 64]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_keeps_up_never_trips_the_deadline() {
        let (near, mut far) = tokio::io::duplex(16);
        let mut stream = WriteDeadline::new(near, Duration::from_secs(5));
        let reader = tokio::spawn(async move {
            let mut total = 0;
            let mut buf = [0u8; 8];
            while total < 256 {
                // Slower than the writer, but well within the limit each time.
                tokio::time::sleep(Duration::from_secs(1)).await;
                total += far.read(&mut buf).await.unwrap();
            }
            total
        });
        stream.write_all(&[7u8; 256]).await.unwrap();
        assert_eq!(reader.await.unwrap(), 256);
    }
}
