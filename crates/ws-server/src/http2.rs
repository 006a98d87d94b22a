//! One HTTP/2 connection (TLS with ALPN `h2`, or plaintext with prior
//! knowledge): its plain requests answered as over HTTP/1.1, each
//! WebSocket stream (RFC 8441 extended CONNECT) accepted with the same
//! policy and echoed by the same session, in a task of its own.
//!
//! The connection's task drives HTTP/2 for every stream (ws-core's
//! [`ServerConnection::next_request`]), so it keeps polling until the
//! connection ends. It is bounded like an HTTP/1.1 connection:
//!
//! - streams: `--max-streams-per-connection` (SETTINGS_MAX_CONCURRENT_STREAMS,
//!   enforced by HTTP/2 itself) per connection, and `--max-connections`
//!   over all, a WebSocket stream counting as a connection ([`StreamSlot`]);
//!   a stream past it gets 503 on that stream alone;
//! - time: a connection without a WebSocket for the handshake timeout since
//!   its last request gets GOAWAY, and one that does not end within the
//!   close timeout after its GOAWAY is dropped;
//! - shutdown: every WebSocket stream is closed with 1001 by its session,
//!   then GOAWAY, within the server's shutdown grace.

use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ::http::StatusCode;
use bytes::{Bytes, BytesMut};
use tokio::task::JoinSet;
use tokio::time::Instant;
use ws_core::Error;
use ws_core::http2::{HttpRequest, Incoming, Prefixed, ServerConnection, WebSocketRequest};
use ws_core::stream::WebSocket;

use crate::connection::{self, Origin, WriteDeadline};
use crate::http;
use crate::metered::Metered;
use crate::metrics::{Answer, HttpVersion};
use crate::server::Shared;
use crate::timers::Sleep;
use crate::tls::Transport;

/// An HTTP/2 connection as the server serves it: over TCP or TLS, with the
/// bytes read to recognise the preface given back first.
pub(crate) type Connection = ServerConnection<Prefixed<Transport>>;

/// Where the connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Serving; the timer is the idle deadline (armed while no WebSocket is
    /// open).
    Serving,
    /// The server is shutting down: the sessions are closing their streams
    /// with 1001; GOAWAY follows once they have ended, or at the timer.
    Stopping,
    /// GOAWAY sent: the connection ends once its streams have; the timer
    /// drops it if they do not in time.
    Closing,
}

/// Serves an HTTP/2 connection until it ends (see the module's doc).
pub(crate) async fn serve<F>(
    mut connection: Connection,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: Pin<&mut F>,
) where
    F: Future<Output = ()>,
{
    let streams = Arc::new(AtomicUsize::new(0));
    let mut sessions = JoinSet::new();
    let idle_timeout = shared.config.handshake_timeout;
    let close_timeout = shared.config.close_timeout;
    let mut phase = Phase::Serving;
    let mut timer: Pin<Box<Sleep>> = Box::pin(crate::timers::sleep(idle_timeout));
    loop {
        let idle = phase == Phase::Serving && sessions.is_empty();
        tokio::select! {
            biased;
            () = shutdown.as_mut(), if phase == Phase::Serving => {
                if sessions.is_empty() {
                    phase = go_away(&mut connection, &mut timer, close_timeout);
                } else {
                    tracing::debug!(%peer, streams = sessions.len(), "shutting down: closing the WebSocket streams");
                    phase = Phase::Stopping;
                    timer.as_mut().reset(Instant::now() + close_timeout);
                }
            }
            Some(joined) = sessions.join_next(), if !sessions.is_empty() => {
                if let Err(error) = joined
                    && error.is_panic()
                {
                    tracing::error!(%peer, %error, "a WebSocket stream's task panicked");
                }
                if sessions.is_empty() {
                    match phase {
                        Phase::Stopping => phase = go_away(&mut connection, &mut timer, close_timeout),
                        Phase::Serving => timer.as_mut().reset(Instant::now() + idle_timeout),
                        Phase::Closing => {}
                    }
                }
            }
            () = timer.as_mut(), if idle || phase != Phase::Serving => match phase {
                Phase::Serving => {
                    tracing::debug!(%peer, timeout = ?idle_timeout, "HTTP/2 connection without a WebSocket or a request; GOAWAY");
                    phase = go_away(&mut connection, &mut timer, close_timeout);
                }
                Phase::Stopping => phase = go_away(&mut connection, &mut timer, close_timeout),
                Phase::Closing => {
                    tracing::debug!(%peer, "HTTP/2 connection did not end after GOAWAY; dropped");
                    break;
                }
            },
            request = connection.next_request() => match request {
                None => break,
                Some(Err(error)) => {
                    tracing::debug!(%peer, %error, "HTTP/2 connection failed");
                    break;
                }
                Some(Ok(Incoming::WebSocket(request))) => {
                    let stopping = phase != Phase::Serving;
                    if let Some(session) = accept(request, peer, &shared, &streams, stopping) {
                        sessions.spawn(session);
                    }
                }
                Some(Ok(Incoming::Http(request))) => {
                    answer(request, peer, &shared);
                    if idle {
                        timer.as_mut().reset(Instant::now() + idle_timeout);
                    }
                }
                Some(Ok(_)) => {}
            },
        }
    }
    // The streams end with their connection: dropping it fails their reads
    // and writes, and their sessions end (counted and logged).
    drop(connection);
    while sessions.join_next().await.is_some() {}
}

/// Sends GOAWAY (the client opens no more streams; open ones go on) and
/// gives the connection the close timeout to end.
fn go_away(connection: &mut Connection, timer: &mut Pin<Box<Sleep>>, within: Duration) -> Phase {
    connection.graceful_shutdown();
    timer.as_mut().reset(Instant::now() + within);
    Phase::Closing
}

/// Accepts a WebSocket stream, or refuses it on that stream alone: 503
/// while shutting down or past `--max-connections`, and the HTTP/1.1
/// path's refusals (400, 403, 426). Returns the session to run.
fn accept(
    request: WebSocketRequest,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    streams: &Arc<AtomicUsize>,
    stopping: bool,
) -> Option<impl Future<Output = ()> + Send + 'static> {
    let stream = request.stream_id();
    let slot = if stopping {
        None
    } else {
        StreamSlot::admit(shared, streams)
    };
    let Some(slot) = slot else {
        let reason = if stopping {
            "server shutting down"
        } else {
            tracing::warn!(
                %peer,
                stream,
                limit = shared.config.max_connections,
                "connection limit reached; HTTP/2 stream refused with 503"
            );
            "too many connections, try again later"
        };
        shared.metrics.answered(Answer::Refused(503));
        let _ = request.reject(StatusCode::SERVICE_UNAVAILABLE, &format!("503 {reason}\n"));
        return None;
    };
    let mut protocol = None;
    let accepted = request.accept_with(|upgrade| {
        let options = shared.config.choose(upgrade)?;
        protocol.clone_from(&options.protocol);
        Ok(options)
    });
    let (socket, upgrade) = match accepted {
        Ok(accepted) => accepted,
        Err(Error::Handshake(error)) => {
            let status = error.status();
            tracing::warn!(%peer, http = %HttpVersion::Http2.label(), stream, status, %error, "upgrade refused");
            shared.metrics.answered(Answer::Refused(status));
            return None;
        }
        Err(error) => {
            tracing::debug!(%peer, stream, %error, "answering the WebSocket stream failed");
            return None;
        }
    };
    let deflate = socket.connection().deflate_enabled();
    tracing::info!(
        %peer,
        http = %HttpVersion::Http2.label(),
        stream,
        path = ?upgrade.path(),
        protocol = protocol.as_deref().unwrap_or("none"),
        extensions = if deflate { "permessage-deflate" } else { "none" },
        "connection opened"
    );
    tracing::debug!(
        %peer,
        stream,
        offered_protocols = ?upgrade.protocols,
        origin = ?upgrade.origin,
        "connection request"
    );
    let (transport, state) = socket.into_parts();
    let transport = WriteDeadline::new(Metered::new(transport), shared.config.close_timeout);
    let socket = Box::new(WebSocket::from_connection(transport, state));
    let origin = Origin {
        peer,
        version: HttpVersion::Http2,
        // Stream identifiers of requests are odd, never 0.
        stream: NonZeroU32::new(stream),
    };
    Some(connection::serve_stream(
        socket,
        deflate,
        origin,
        Arc::clone(shared),
        slot,
    ))
}

/// Answers a plain request (the page, `/healthz`, `/metrics`, 404, 405) as
/// over HTTP/1.1.
fn answer(request: HttpRequest, peer: SocketAddr, shared: &Shared) {
    let head = request.request();
    let page = http::page(head.method().as_str(), head.uri().path(), &shared.metrics);
    let status = page.status;
    // Client-supplied text is logged with Debug so it cannot forge log lines.
    tracing::info!(
        %peer,
        http = %HttpVersion::Http2.label(),
        method = ?head.method().as_str(),
        path = ?head.uri().path(),
        status,
        "http request"
    );
    shared.metrics.answered(Answer::Http(status));
    if let Err(error) = request.respond(http::http2_response(page)) {
        tracing::debug!(%peer, %error, "answering an HTTP/2 request failed");
    }
}

/// Answers a connection that chose HTTP/2 (ALPN `h2`) but came past
/// `--max-connections`: every request it sends within `within` gets 503,
/// and GOAWAY follows the first answer, so that the client reads why, as an
/// HTTP/1.1 client reads its `503` (HTTP/1.1 bytes would be a protocol
/// error to it).
pub(crate) async fn refuse(io: Transport, peer: SocketAddr, shared: &Shared, within: Duration) {
    let refusing = async {
        let io = Prefixed::new(BytesMut::new(), io);
        let config = shared.config.core_config();
        let mut connection =
            ServerConnection::handshake(io, config, shared.config.http2_settings()).await?;
        let mut going_away = false;
        while let Some(request) = connection.next_request().await {
            let reason = "503 too many connections, try again later\n";
            shared.metrics.answered(Answer::Refused(503));
            match request? {
                Incoming::WebSocket(request) => {
                    let _ = request.reject(StatusCode::SERVICE_UNAVAILABLE, reason);
                }
                Incoming::Http(request) => {
                    let mut response = ::http::Response::new(Bytes::from_static(reason.as_bytes()));
                    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                    response
                        .headers_mut()
                        .insert("retry-after", ::http::HeaderValue::from_static("1"));
                    let _ = request.respond(response);
                }
                _ => {}
            }
            if !going_away {
                connection.graceful_shutdown();
                going_away = true;
            }
        }
        Ok::<(), Error>(())
    };
    match crate::timers::timeout(within, refusing).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::debug!(%peer, %error, "refusing an HTTP/2 connection failed"),
        Err(_) => tracing::debug!(%peer, "HTTP/2 connection over the limit dropped"),
    }
}

/// A WebSocket stream's share of `--max-connections`, held by its session.
///
/// An HTTP/2 connection already holds one slot (as every TCP connection
/// does, from the moment it is accepted): its first WebSocket takes that
/// one, and each further WebSocket open on it at the same time takes one
/// more. So the limit counts WebSockets, whatever they run over, plus the
/// connections that hold none.
#[derive(Debug)]
pub(crate) struct StreamSlot {
    shared: Arc<Shared>,
    /// The WebSocket streams open on this slot's connection.
    streams: Arc<AtomicUsize>,
}

impl StreamSlot {
    /// A slot for one more WebSocket on the connection whose open streams
    /// `streams` counts, or `None` when the server is at its limit.
    fn admit(shared: &Arc<Shared>, streams: &Arc<AtomicUsize>) -> Option<Self> {
        let metrics = &shared.metrics;
        if streams.fetch_add(1, Ordering::SeqCst) > 0 {
            let extra = metrics.extra_streams.fetch_add(1, Ordering::SeqCst);
            let tcp = metrics.tcp_open.load(Ordering::SeqCst);
            if tcp.saturating_add(extra) >= shared.config.max_connections {
                metrics.extra_streams.fetch_sub(1, Ordering::SeqCst);
                streams.fetch_sub(1, Ordering::SeqCst);
                return None;
            }
        }
        Some(Self {
            shared: Arc::clone(shared),
            streams: Arc::clone(streams),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        // The connection's own slot is the last to go.
        if self.streams.fetch_sub(1, Ordering::SeqCst) > 1 {
            self.shared
                .metrics
                .extra_streams
                .fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServerConfig;
    use crate::server::ActiveGuard;

    #[test]
    fn a_connection_s_first_websocket_uses_its_own_slot_and_others_count_extra() {
        let shared = Arc::new(Shared::new(ServerConfig {
            max_connections: 3,
            ..ServerConfig::default()
        }));
        let _connection = ActiveGuard::new(&shared);
        let streams = Arc::new(AtomicUsize::new(0));
        let first = StreamSlot::admit(&shared, &streams).unwrap();
        assert_eq!(shared.metrics.connection_slots(), 1);
        let second = StreamSlot::admit(&shared, &streams).unwrap();
        let third = StreamSlot::admit(&shared, &streams).unwrap();
        assert_eq!(shared.metrics.connection_slots(), 3);
        assert!(StreamSlot::admit(&shared, &streams).is_none());
        assert_eq!(shared.metrics.connection_slots(), 3);
        // Whichever ends first, the count follows the streams still open.
        drop(first);
        assert_eq!(shared.metrics.connection_slots(), 2);
        let fourth = StreamSlot::admit(&shared, &streams).unwrap();
        assert_eq!(shared.metrics.connection_slots(), 3);
        drop((second, third, fourth));
        assert_eq!(shared.metrics.connection_slots(), 1);
        assert_eq!(streams.load(Ordering::SeqCst), 0);
    }
}
