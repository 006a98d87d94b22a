//! Upgrading a hyper 1.x request, and so an axum one (feature `hyper`).
//!
//! [`upgrade`] validates the request ([`crate::http::accept`]), and returns
//! the `101 Switching Protocols` response for the handler to return and an
//! [`UpgradeFuture`] that resolves, once hyper has sent the response and
//! switched protocols, to a [`stream::WebSocket`] over hyper's
//! [`Upgraded`] connection: the same socket as everywhere else in ws-core,
//! with [`split`](stream::WebSocket::split), `Stream`/`Sink` and
//! backpressure. permessage-deflate is on exactly when the response says so.
//!
//! Bytes the client sent right behind the request head (a first frame in the
//! same packet) are not lost: hyper's `Upgraded` replays what it read past
//! the head before reading the socket again.
//!
//! The server must serve HTTP/1.1 with upgrades on
//! (`http1::Builder::serve_connection(..).with_upgrades()`; axum's `serve`
//! does), or the future fails with an I/O error saying so.
//!
//! # Example
//!
//! A hyper service that upgrades every request and echoes (the
//! `hyper_echo` example runs it):
//!
//! ```no_run
//! # use std::convert::Infallible;
//! # use http_body_util::Full;
//! # use hyper::body::{Bytes, Incoming};
//! # use hyper::{Request, Response};
//! # use ws_core::Config;
//! # use ws_core::hyper::HyperWebSocket;
//! # async fn echo(socket: HyperWebSocket) {}
//! async fn handle(mut request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
//!     match ws_core::hyper::upgrade(&mut request, Config::default()) {
//!         Ok((response, socket)) => {
//!             tokio::spawn(async move {
//!                 if let Ok(socket) = socket.await {
//!                     echo(socket).await;
//!                 }
//!             });
//!             Ok(response.map(|()| Full::default()))
//!         }
//!         Err(error) => Ok(ws_core::http::refusal(&error).map(Full::from)),
//!     }
//! }
//! ```

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use ::http::{Request, Response};
use ::hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;

use crate::error::Error;
use crate::handshake::{AcceptOptions, HandshakeError, UpgradeRequest};
use crate::http::{Accepted, accept_with};
use crate::protocol::Config;
use crate::stream::{self, ReadReady};

/// The WebSocket an [`UpgradeFuture`] resolves to: the tokio adapter over
/// hyper's upgraded connection. `Send`, and so are its halves.
pub type HyperWebSocket = stream::WebSocket<TokioIo<Upgraded>>;

/// Answers `request` as a WebSocket upgrade with no subprotocol,
/// accepting permessage-deflate when `config` enables it and the client
/// offers it.
///
/// Returns the response for the handler to return (`101`, with an empty
/// body to map into the framework's body type) and the future of the
/// socket; spawn a task that awaits it. A request that is not a valid
/// upgrade returns the [`HandshakeError`] to answer with
/// [`crate::http::refusal`]; plain HTTP is [`HandshakeError::NotAnUpgrade`],
/// for a handler that serves both to route on. See the
/// [module documentation](self) for an example.
pub fn upgrade<B>(
    request: &mut Request<B>,
    config: Config,
) -> Result<(Response<()>, UpgradeFuture), HandshakeError> {
    upgrade_with(request, config, |_| Ok(AcceptOptions::default()))
}

/// [`upgrade`], with `choose` picking the subprotocol and extra response
/// headers, or refusing (for example with
/// [`HandshakeError::ForbiddenOrigin`]), as in
/// [`crate::http::accept_with`].
///
/// ```no_run
/// # use http_body_util::Full;
/// # use hyper::body::{Bytes, Incoming};
/// # use hyper::{Request, Response};
/// use ws_core::Config;
/// use ws_core::handshake::{AcceptOptions, HandshakeError};
///
/// # fn handle(mut request: Request<Incoming>) -> Response<Full<Bytes>> {
/// let upgraded = ws_core::hyper::upgrade_with(&mut request, Config::default(), |request| {
///     if request.origin.as_deref().is_some_and(|o| o != "https://example.com") {
///         return Err(HandshakeError::ForbiddenOrigin(request.origin.clone().unwrap_or_default()));
///     }
///     Ok(AcceptOptions::default().protocol(request.select_protocol(&["chat"])))
/// });
/// match upgraded {
///     Ok((response, socket)) => {
///         tokio::spawn(async move { if let Ok(socket) = socket.await { /* ... */ } });
///         response.map(|()| Full::default())
///     }
///     Err(error) => ws_core::http::refusal(&error).map(Full::from),
/// }
/// # }
/// ```
pub fn upgrade_with<B, F>(
    request: &mut Request<B>,
    config: Config,
    choose: F,
) -> Result<(Response<()>, UpgradeFuture), HandshakeError>
where
    F: FnOnce(&UpgradeRequest) -> Result<AcceptOptions, HandshakeError>,
{
    let (response, accepted) = accept_with(request, config, choose)?;
    let on_upgrade = ::hyper::upgrade::on(request);
    Ok((
        response,
        UpgradeFuture {
            on_upgrade,
            accepted: Some(accepted),
        },
    ))
}

/// Resolves to the [`HyperWebSocket`] once hyper has sent the 101 and
/// handed over the connection. `Send`, for `tokio::spawn`.
///
/// Fails with [`Error::Io`] when hyper cannot upgrade the connection: the
/// server does not serve upgrades (`with_upgrades()`), the request is not
/// HTTP/1.1, or the connection ended before the response went out.
#[must_use = "the connection is only upgraded when the future is awaited"]
pub struct UpgradeFuture {
    on_upgrade: OnUpgrade,
    /// Taken when the future completes.
    accepted: Option<Accepted>,
}

impl UpgradeFuture {
    /// What the 101 announced, and the validated request; `None` once the
    /// future has completed.
    pub fn accepted(&self) -> Option<&Accepted> {
        self.accepted.as_ref()
    }
}

impl fmt::Debug for UpgradeFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpgradeFuture")
            .field("accepted", &self.accepted)
            .finish_non_exhaustive()
    }
}

impl Future for UpgradeFuture {
    type Output = Result<HyperWebSocket, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let upgraded = ready!(Pin::new(&mut this.on_upgrade).poll(cx));
        let upgraded = upgraded.map_err(io::Error::other)?;
        let accepted = this
            .accepted
            .take()
            .ok_or(Error::InvalidUse("UpgradeFuture polled after completion"))?;
        Poll::Ready(Ok(accepted.into_websocket(TokioIo::new(upgraded))))
    }
}

/// Always ready: `Upgraded` cannot wait for readability without reading,
/// so [`recv_lean`](stream::WebSocket::recv_lean) reads with a buffer, as
/// `recv` does.
impl ReadReady for TokioIo<Upgraded> {
    fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
