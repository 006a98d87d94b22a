//! A transport wrapper that counts the bytes received.
//!
//! The idle timeout needs to know whether anything arrived, not whether a
//! whole frame did: a client uploading a large message slowly is busy, not
//! idle, even though no event completes for a while.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An `AsyncRead + AsyncWrite` that counts what it reads; writes pass through
/// unchanged (vectored writes included, which the WebSocket adapter relies on
/// to send large payloads without copying them).
#[derive(Debug)]
pub struct Metered<S> {
    inner: S,
    bytes_read: u64,
}

impl<S> Metered<S> {
    /// Wraps `inner` with a zero count.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            bytes_read: 0,
        }
    }

    /// Wraps `inner` with the count of a `Metered` taken apart earlier
    /// ([`into_parts`](Self::into_parts)): the same connection's
    /// transport, put back.
    pub fn resumed(inner: S, bytes_read: u64) -> Self {
        Self { inner, bytes_read }
    }

    /// The wrapped transport and the bytes read so far.
    pub fn into_parts(self) -> (S, u64) {
        (self.inner, self.bytes_read)
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The wrapped transport.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: ws_core::stream::ReadReady> ws_core::stream::ReadReady for Metered<S> {
    #[inline]
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_read_ready(cx)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        let read = buf.filled().len().saturating_sub(before);
        this.bytes_read = this.bytes_read.saturating_add(read as u64);
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn counts_bytes_read_and_passes_writes_through() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut metered = Metered::new(near);
        far.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 16];
        let n = metered.read(&mut buf).await.unwrap();
        assert_eq!(n, 5);
        assert_eq!(metered.bytes_read(), 5);
        metered.write_all(b"back").await.unwrap();
        let n = far.read(&mut buf).await.unwrap();
        assert_eq!(buf.get(..n), Some(&b"back"[..]));
        assert_eq!(metered.bytes_read(), 5);
    }
}
