//! From a host name to a connected TCP stream: every address the resolver
//! returns, tried Happy Eyeballs style (RFC 8305).
//!
//! The addresses keep the resolver's order (RFC 6724 already sorts them by
//! preference) with the two families interleaved, the first address's
//! family first (§4). The first attempt starts at once; the next starts when
//! one fails or, while the earlier ones are still pending, after the
//! attempt delay (250 ms, §5), so a dead IPv6 route costs a quarter of a
//! second instead of a TCP timeout. The first connection made wins; the
//! attempts still pending are dropped, which closes their sockets.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::net::{TcpStream, lookup_host};
use tokio::time::{Instant, Sleep, sleep};

use super::error::Error;

/// The Connection Attempt Delay RFC 8305 §8 recommends.
pub(crate) const DEFAULT_ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// How TCP connections are made.
#[derive(Debug, Clone)]
pub(crate) struct Dialer {
    /// How long an attempt has before the next address is tried alongside.
    pub(crate) attempt_delay: Duration,
    /// `TCP_NODELAY` on the connected stream.
    pub(crate) nodelay: bool,
    /// Addresses to use instead of resolving these names (lowercase).
    pub(crate) overrides: Arc<HashMap<String, Vec<SocketAddr>>>,
}

impl Default for Dialer {
    fn default() -> Self {
        Self {
            attempt_delay: DEFAULT_ATTEMPT_DELAY,
            nodelay: true,
            overrides: Arc::default(),
        }
    }
}

type Attempt = Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send>>;

impl Dialer {
    /// Resolves `host` (or takes its override) and connects to one of its
    /// addresses.
    pub(crate) async fn dial(
        &self,
        host: &str,
        port: u16,
    ) -> Result<(TcpStream, SocketAddr), Error> {
        let addresses = match self.overrides.get(&host.to_ascii_lowercase()) {
            Some(addresses) => addresses
                .iter()
                .map(|address| match address.port() {
                    0 => SocketAddr::new(address.ip(), port),
                    _ => *address,
                })
                .collect(),
            None => resolve(host, port).await?,
        };
        self.dial_addresses(host, port, addresses).await
    }

    /// Connects to the first of `addresses` that accepts, staggering the
    /// attempts; `host` and `port` are for the error.
    pub(crate) async fn dial_addresses(
        &self,
        host: &str,
        port: u16,
        addresses: Vec<SocketAddr>,
    ) -> Result<(TcpStream, SocketAddr), Error> {
        let (stream, address) = race(addresses, self.attempt_delay)
            .await
            .map_err(|attempts| Error::Connect {
                host: host.to_owned(),
                port,
                attempts,
            })?;
        if self.nodelay {
            // Small messages (a ping, a line typed) go out at once. A socket
            // that refuses the option still works: nothing to report.
            let _ = stream.set_nodelay(true);
        }
        Ok((stream, address))
    }
}

/// Every address of `host:port`, families interleaved; a literal address
/// is not looked up.
pub(crate) async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Error> {
    let addresses: Vec<SocketAddr> = lookup_host((host, port))
        .await
        .map_err(|source| Error::Resolve {
            host: host.to_owned(),
            source,
        })?
        .collect();
    if addresses.is_empty() {
        return Err(Error::NoAddresses {
            host: host.to_owned(),
        });
    }
    Ok(interleave(addresses))
}

/// RFC 8305 §4: the first address's family, then the other, alternately,
/// each family in the order given.
pub(crate) fn interleave(addresses: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let Some(first_is_v6) = addresses.first().map(SocketAddr::is_ipv6) else {
        return addresses;
    };
    let (preferred, other): (Vec<_>, Vec<_>) = addresses
        .into_iter()
        .partition(|address| address.is_ipv6() == first_is_v6);
    let mut preferred = preferred.into_iter();
    let mut other = other.into_iter();
    let mut ordered = Vec::with_capacity(preferred.len() + other.len());
    loop {
        match (preferred.next(), other.next()) {
            (None, None) => return ordered,
            (first, second) => ordered.extend(first.into_iter().chain(second)),
        }
    }
}

/// Connects to the addresses in order, starting the next one when an
/// attempt fails or after `delay`, until one succeeds or all have failed
/// (then each address with its error, in the order they failed).
async fn race(
    addresses: Vec<SocketAddr>,
    delay: Duration,
) -> Result<(TcpStream, SocketAddr), Vec<(SocketAddr, io::Error)>> {
    let mut waiting = addresses.into_iter();
    let mut running: Vec<(SocketAddr, Attempt)> = Vec::new();
    let mut failed: Vec<(SocketAddr, io::Error)> = Vec::new();
    let mut next_start: Pin<Box<Sleep>> = Box::pin(sleep(delay));
    poll_fn(move |cx| {
        loop {
            let mut one_failed = false;
            let mut index = 0;
            while let Some((address, attempt)) = running.get_mut(index) {
                let address = *address;
                match attempt.as_mut().poll(cx) {
                    Poll::Pending => index += 1,
                    Poll::Ready(Ok(stream)) => return Poll::Ready(Ok((stream, address))),
                    Poll::Ready(Err(error)) => {
                        drop(running.remove(index));
                        failed.push((address, error));
                        one_failed = true;
                    }
                }
            }
            if waiting.len() == 0 {
                return if running.is_empty() {
                    Poll::Ready(Err(std::mem::take(&mut failed)))
                } else {
                    Poll::Pending
                };
            }
            let start_next =
                one_failed || running.is_empty() || next_start.as_mut().poll(cx).is_ready();
            if !start_next {
                return Poll::Pending;
            }
            if let Some(address) = waiting.next() {
                running.push((address, Box::pin(TcpStream::connect(address))));
                next_start.as_mut().reset(Instant::now() + delay);
            }
            // Poll the new attempt and the new timer, so that they wake us.
        }
    })
    .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn addresses(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn families_alternate_starting_with_the_first_address_family() {
        let given = addresses(&["[::1]:1", "[::2]:1", "[::3]:1", "10.0.0.1:1", "10.0.0.2:1"]);
        assert_eq!(
            interleave(given),
            addresses(&["[::1]:1", "10.0.0.1:1", "[::2]:1", "10.0.0.2:1", "[::3]:1"])
        );
        let given = addresses(&["10.0.0.1:1", "[::1]:1", "10.0.0.2:1"]);
        assert_eq!(
            interleave(given),
            addresses(&["10.0.0.1:1", "[::1]:1", "10.0.0.2:1"])
        );
        assert!(interleave(Vec::new()).is_empty());
    }

    #[tokio::test]
    async fn a_refused_address_moves_on_to_the_next_at_once() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        let closed = {
            let spare = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            spare.local_addr().unwrap()
        };
        // An hour's delay: only the failure can start the second attempt.
        let (_, address) = race(vec![closed, open], Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(address, open);
    }

    #[tokio::test]
    async fn a_silent_address_is_overtaken_after_the_attempt_delay() {
        // A listener with a backlog of 0 that never accepts: once its queue
        // is full the kernel drops SYNs, so a connection neither succeeds
        // nor fails, like a black-holed route.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let silent = socket.listen(0).unwrap();
        let silent_address = silent.local_addr().unwrap();
        let mut queued = Vec::new();
        loop {
            let attempt = TcpStream::connect(silent_address);
            match tokio::time::timeout(Duration::from_millis(300), attempt).await {
                Ok(Ok(stream)) => queued.push(stream),
                _ => break,
            }
            assert!(queued.len() < 64, "the backlog never fills");
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        let raced = race(vec![silent_address, open], Duration::from_millis(50));
        let (_, address) = tokio::time::timeout(Duration::from_secs(30), raced)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(address, open);
    }

    #[tokio::test]
    async fn every_failure_is_reported_with_its_address() {
        let closed: Vec<SocketAddr> = (0..2)
            .map(|_| {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
            })
            .collect();
        let failures = race(closed.clone(), DEFAULT_ATTEMPT_DELAY)
            .await
            .unwrap_err();
        let tried: Vec<SocketAddr> = failures.iter().map(|(address, _)| *address).collect();
        assert_eq!(tried, closed);
        assert!(
            failures
                .iter()
                .all(|(_, error)| error.kind() == io::ErrorKind::ConnectionRefused)
        );
    }
}
