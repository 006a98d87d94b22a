//! Ending a TCP connection so that the last bytes sent reach the peer.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

/// How long a connection is kept after the server is done with it, so the
/// peer can read what was sent last.
pub const LINGER: Duration = Duration::from_secs(1);
/// At most this much unread input is drained while lingering.
const DRAIN_LIMIT: usize = 64 * 1024;

/// Ends the connection from the server's side, gracefully.
///
/// Closing a socket whose input still holds unread bytes (a request body, a
/// frame behind one that failed the connection, a request answered before
/// it was read) makes the kernel send a reset, which can destroy the final
/// response or close frame before the peer reads it. So the write side is
/// shut down first, which the peer sees at once as the end of the stream,
/// and the input is drained, bounded in time and size, until the peer
/// closes too.
pub async fn linger<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    let drain = ws_core::low_level::shutdown_and_drain(&mut stream, DRAIN_LIMIT);
    match crate::timers::timeout(LINGER, drain).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::debug!(%error, "closing the connection failed"),
        Err(_) => tracing::debug!("peer did not close in time; connection dropped"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn linger_ends_the_write_side_and_returns_when_the_peer_closes() {
        let (near, mut far) = tokio::io::duplex(64);
        let lingering = tokio::spawn(linger(near));
        // The peer sees the end of the stream right away...
        let mut buf = [0u8; 8];
        assert_eq!(far.read(&mut buf).await.unwrap(), 0);
        // ...and unread input it still sends is drained, not refused.
        far.write_all(b"late").await.unwrap();
        drop(far);
        tokio::time::timeout(LINGER, lingering)
            .await
            .expect("linger returns once the peer closes")
            .unwrap();
    }
}
