//! A TCP (or TLS over TCP) stream whose writes happen in the background.
//!
//! `ws_core::stream::WebSocket` reads and writes through one `&mut self`, so
//! while it waits for a write to finish it cannot read. Against a server
//! that echoes and stops reading while its own writes are blocked, a client
//! sending large messages would deadlock: both sides writing, neither
//! reading. [`Duplex`] accepts writes into a queue that a task drains to
//! the socket, so reading never waits on the peer's receive window; the
//! session applies backpressure by not taking new input while
//! [`WriteQueue::pending`] is high.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::{Notify, mpsc};

use crate::tls::TlsStream;

/// The writer task writes at most this much in one go.
const WRITE_BATCH: usize = 64 * 1024;

/// A TCP or TLS stream: reads go straight to the socket, writes to a queue.
#[derive(Debug)]
pub struct Duplex {
    reader: Reader,
    sender: Option<mpsc::UnboundedSender<Bytes>>,
    queue: WriteQueue,
}

/// The state of the write queue, shared with the writer task.
#[derive(Debug, Clone, Default)]
pub struct WriteQueue(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    pending: AtomicUsize,
    /// The first write error, kept as kind and text (io::Error is not Clone).
    error: Mutex<Option<(io::ErrorKind, String)>>,
    changed: Notify,
}

/// The read side: an enum, not a trait object, so a plain connection pays a
/// branch rather than a virtual call per read.
#[derive(Debug)]
enum Reader {
    Plain(OwnedReadHalf),
    Tls(tokio::io::ReadHalf<TlsStream>),
}

impl Duplex {
    /// Splits `stream` and starts the writer task (on the current runtime).
    pub fn new(stream: TcpStream) -> Self {
        let (reader, writer) = stream.into_split();
        Self::start(Reader::Plain(reader), writer)
    }

    /// Splits a TLS stream whose handshake is done, and starts the writer
    /// task (on the current runtime). The halves take turns on the TLS state
    /// for the duration of one poll, never across a wait.
    pub fn tls(stream: TlsStream) -> Self {
        let (reader, writer) = tokio::io::split(stream);
        Self::start(Reader::Tls(reader), writer)
    }

    fn start<W>(reader: Reader, writer: W) -> Self
    where
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, receiver) = mpsc::unbounded_channel();
        let queue = WriteQueue::default();
        tokio::spawn(write_behind(writer, receiver, queue.clone()));
        Self {
            reader,
            sender: Some(sender),
            queue,
        }
    }

    /// A handle on the write queue.
    pub fn queue(&self) -> WriteQueue {
        self.queue.clone()
    }
}

impl WriteQueue {
    /// Bytes accepted but not yet written to the socket.
    pub fn pending(&self) -> usize {
        self.0.pending.load(Ordering::Acquire)
    }

    /// Waits until fewer than `limit` bytes are pending, or writing failed.
    pub async fn wait_below(&self, limit: usize) {
        loop {
            let changed = self.0.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.pending() < limit || self.error().is_some() {
                return;
            }
            changed.await;
        }
    }

    fn error(&self) -> Option<io::Error> {
        let slot = self
            .0
            .error
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        slot.as_ref()
            .map(|(kind, text)| io::Error::new(*kind, text.clone()))
    }

    fn fail(&self, error: &io::Error) {
        let mut slot = self
            .0
            .error
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        slot.get_or_insert_with(|| (error.kind(), error.to_string()));
        drop(slot);
        self.0.changed.notify_waiters();
    }

    fn written(&self, len: usize) {
        self.0.pending.fetch_sub(len, Ordering::AcqRel);
        self.0.changed.notify_waiters();
    }
}

/// Writes queued chunks in order until the queue closes (then ends our
/// side of the connection) or a write fails (then records the error).
///
/// A chunk counts as written once it is flushed: TLS may hold accepted bytes
/// in its own buffer until then.
async fn write_behind<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut chunks: mpsc::UnboundedReceiver<Bytes>,
    queue: WriteQueue,
) {
    let mut batch = BytesMut::new();
    while let Some(first) = chunks.recv().await {
        batch.extend_from_slice(&first);
        while batch.len() < WRITE_BATCH {
            match chunks.try_recv() {
                Ok(chunk) => batch.extend_from_slice(&chunk),
                Err(_) => break,
            }
        }
        let len = batch.len();
        let written = async {
            writer.write_all(&batch).await?;
            writer.flush().await
        };
        if let Err(error) = written.await {
            queue.fail(&error);
            return;
        }
        batch.clear();
        queue.written(len);
    }
    let _ = writer.shutdown().await;
}

impl AsyncRead for Duplex {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.reader {
            Reader::Plain(reader) => Pin::new(reader).poll_read(cx, buf),
            Reader::Tls(reader) => match Pin::new(reader).poll_read(cx, buf) {
                // Many servers end TLS without `close_notify` once the
                // WebSocket closing handshake is done. The WebSocket protocol
                // detects truncation itself (no close frame: abnormal
                // closure), so this is the end of the stream, as on TCP.
                Poll::Ready(Err(error)) if error.kind() == io::ErrorKind::UnexpectedEof => {
                    Poll::Ready(Ok(()))
                }
                other => other,
            },
        }
    }
}

impl AsyncWrite for Duplex {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(error) = self.queue.error() {
            return Poll::Ready(Err(error));
        }
        let Some(sender) = &self.sender else {
            return Poll::Ready(Err(io::Error::from(io::ErrorKind::BrokenPipe)));
        };
        self.queue.0.pending.fetch_add(buf.len(), Ordering::AcqRel);
        if sender.send(Bytes::copy_from_slice(buf)).is_err() {
            self.queue.written(buf.len());
            return Poll::Ready(Err(self
                .queue
                .error()
                .unwrap_or_else(|| io::Error::from(io::ErrorKind::BrokenPipe))));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut joined = Vec::with_capacity(bufs.iter().map(|b| b.len()).sum());
        for buf in bufs {
            joined.extend_from_slice(buf);
        }
        self.poll_write(cx, &joined)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Accepted bytes are on their way; the session waits for the queue to
    /// drain (bounded) before it exits.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.queue.error() {
            Some(error) => Poll::Ready(Err(error)),
            None => Poll::Ready(Ok(())),
        }
    }

    /// Closes the queue: the writer task writes what is left, then ends our
    /// side of the connection.
    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.sender = None;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    async fn pair() -> (Duplex, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(address), listener.accept());
        (Duplex::new(client.unwrap()), server.unwrap().0)
    }

    #[tokio::test]
    async fn writes_do_not_wait_for_the_peer_to_read() {
        let (mut duplex, mut server) = pair().await;
        let queue = duplex.queue();
        let payload = vec![7u8; 8 << 20];
        // Far more than the socket buffers hold, and nobody reads yet: a
        // plain TcpStream would block here.
        tokio::time::timeout(Duration::from_secs(10), duplex.write_all(&payload))
            .await
            .expect("write_all waited for the peer")
            .unwrap();
        assert!(queue.pending() > 0);
        let mut received = vec![0u8; payload.len()];
        tokio::time::timeout(Duration::from_secs(20), server.read_exact(&mut received))
            .await
            .unwrap()
            .unwrap();
        assert!(received == payload);
        tokio::time::timeout(Duration::from_secs(10), queue.wait_below(1))
            .await
            .unwrap();
        assert_eq!(queue.pending(), 0);
    }

    #[tokio::test]
    async fn shutdown_writes_the_rest_then_ends_our_side() {
        let (mut duplex, mut server) = pair().await;
        duplex.write_all(b"last words").await.unwrap();
        duplex.shutdown().await.unwrap();
        let mut received = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), server.read_to_end(&mut received))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(received, b"last words");
    }

    #[tokio::test]
    async fn reads_come_from_the_socket() {
        let (mut duplex, mut server) = pair().await;
        server.write_all(b"hello").await.unwrap();
        let mut received = [0u8; 5];
        tokio::time::timeout(Duration::from_secs(10), duplex.read_exact(&mut received))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&received, b"hello");
    }
}
