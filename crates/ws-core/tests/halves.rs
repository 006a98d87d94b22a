//! The tokio adapter as applications use it: futures that are `Send` over
//! any `Send` transport, read and write halves in two tasks, write
//! backpressure, and `futures::Stream`/`Sink`.

// Test helpers may panic: that is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::cell::Cell;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt, TryStreamExt};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use ws_core::handshake::ClientRequest;
use ws_core::stream::{ReadReady, WebSocket};
use ws_core::{CloseCode, Config, Connection, Error, Event, Message, Role};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A transport that is `Send` but not `Sync`, like hyper's `Upgraded`
/// behind `TokioIo`.
#[derive(Debug)]
struct SendNotSync {
    io: DuplexStream,
    _not_sync: PhantomData<Cell<()>>,
}

impl SendNotSync {
    fn new(io: DuplexStream) -> Self {
        Self {
            io,
            _not_sync: PhantomData,
        }
    }
}

impl AsyncRead for SendNotSync {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendNotSync {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl ReadReady for SendNotSync {
    fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn assert_send<T: Send>(_: &T) {}

fn socket(role: Role, io: DuplexStream) -> WebSocket<SendNotSync> {
    WebSocket::from_connection(
        SendNotSync::new(io),
        Connection::new(role, Config::default()),
    )
}

/// Compiles only if every future of the adapter is `Send` over a transport
/// that is `Send` and not `Sync`; `tokio::spawn` requires it.
#[test]
fn every_future_is_send_over_a_send_but_not_sync_transport() {
    let (a, _b) = tokio::io::duplex(64);
    let accept = WebSocket::accept(SendNotSync::new(a));
    assert_send(&accept);
    drop(accept);
    let (a, _b) = tokio::io::duplex(64);
    let accept_with = WebSocket::accept_with(SendNotSync::new(a), Config::default(), |_| {
        Ok(Default::default())
    });
    assert_send(&accept_with);
    drop(accept_with);
    let request = ClientRequest::new("ws://localhost/").unwrap();
    let (a, _b) = tokio::io::duplex(64);
    let connect = WebSocket::connect(SendNotSync::new(a), &request, Config::default());
    assert_send(&connect);
    drop(connect);

    let (a, _b) = tokio::io::duplex(64);
    let mut ws = socket(Role::Server, a);
    assert_send(&ws.recv());
    assert_send(&ws.recv_lean());
    assert_send(&ws.send(Message::from("x")));
    assert_send(&ws.send_text("x"));
    assert_send(&ws.send_binary(b"x"));
    assert_send(&ws.ping(b"x"));
    assert_send(&ws.flush());
    assert_send(&ws.close(CloseCode::NORMAL, ""));

    let (mut read, mut write) = ws.split();
    assert_send(&read);
    assert_send(&write);
    assert_send(&read.recv());
    assert_send(&write.send(Message::from("x")));
    assert_send(&write.send_text("x"));
    assert_send(&write.send_binary(b"x"));
    assert_send(&write.ping(b"x"));
    assert_send(&write.flush());
    assert_send(&write.close(CloseCode::NORMAL, ""));
    assert_send(&read.next());
    assert_send(&write.send(Message::from("y")));
}

/// A peer on the other end of `io`: echoes every message until the close.
async fn echo_peer(io: DuplexStream) -> usize {
    let mut peer = WebSocket::from_connection(io, Connection::new(Role::Server, Config::default()));
    let mut echoed = 0;
    while let Some(event) = peer.recv().await.unwrap() {
        if let Some(message) = event.into_message() {
            peer.send(message).await.unwrap();
            echoed += 1;
        }
    }
    echoed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn futures_are_spawned_over_a_send_but_not_sync_transport() {
    let (a, b) = tokio::io::duplex(4096);
    let peer = tokio::spawn(echo_peer(b));
    let mut ws = socket(Role::Client, a);
    let task = tokio::spawn(async move {
        ws.send_text("spawned").await.unwrap();
        let echo = ws.recv().await.unwrap();
        ws.close(CloseCode::NORMAL, "").await.unwrap();
        while ws.recv().await.unwrap().is_some() {}
        echo
    });
    assert_eq!(task.await.unwrap(), Some(Event::Text("spawned".into())));
    assert_eq!(peer.await.unwrap(), 1);
}

#[tokio::test]
async fn read_half_answers_a_ping_while_the_write_half_is_parked_forever() {
    let (a, b) = tokio::io::duplex(4096);
    let (mut read, write) = socket(Role::Server, a).split();
    // The application's writer never writes again.
    let _parked = tokio::spawn(async move {
        let _write = write;
        std::future::pending::<()>().await;
    });
    let reader = tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(event) = read.recv().await.unwrap() {
            events.push(event);
        }
        events
    });
    let mut peer = WebSocket::from_connection(b, Connection::new(Role::Client, Config::default()));
    peer.ping(b"still there?").await.unwrap();
    let pong = tokio::time::timeout(TIMEOUT, peer.recv()).await.unwrap();
    assert_eq!(pong.unwrap(), Some(Event::Pong("still there?".into())));
    // A close is answered by the read half too.
    peer.close(CloseCode::NORMAL, "bye").await.unwrap();
    let answer = tokio::time::timeout(TIMEOUT, peer.recv()).await.unwrap();
    assert!(
        matches!(answer.unwrap(), Some(Event::Close(Some(frame))) if frame.code == CloseCode::NORMAL)
    );
    let events = tokio::time::timeout(TIMEOUT, reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_halves_at_full_rate_lose_nothing_and_do_not_deadlock() {
    // A small pipe, so that writes block often and the halves contend.
    let (a, b) = tokio::io::duplex(8 * 1024);
    let peer = tokio::spawn(echo_peer(b));
    let (mut read, mut write) = socket(Role::Client, a).split();
    let (total_tx, mut total_rx) = tokio::sync::oneshot::channel::<u64>();
    let (all_in_tx, all_in_rx) = tokio::sync::oneshot::channel::<()>();
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    let writer = tokio::spawn(async move {
        let mut sent = 0u64;
        while tokio::time::Instant::now() < until {
            let size = (sent % 7) as usize * 1000;
            let mut payload = sent.to_be_bytes().to_vec();
            payload.resize(8 + size, (sent % 251) as u8);
            write.send(Message::Binary(payload.into())).await.unwrap();
            sent += 1;
        }
        total_tx.send(sent).unwrap();
        // Data arriving after our close is dropped (RFC 6455 §1.4), so the
        // close waits until every echo is in.
        all_in_rx.await.unwrap();
        write.close(CloseCode::NORMAL, "").await.unwrap();
        (sent, write)
    });
    let reader = tokio::spawn(async move {
        let mut received = 0u64;
        let mut total = None;
        let mut all_in = Some(all_in_tx);
        loop {
            tokio::select! {
                event = read.recv() => match event.unwrap() {
                    Some(Event::Binary(payload)) => {
                        let number = u64::from_be_bytes(payload[..8].try_into().unwrap());
                        assert_eq!(number, received, "echoes arrive in order");
                        assert_eq!(payload.len(), 8 + (number % 7) as usize * 1000);
                        received += 1;
                    }
                    Some(_) => {}
                    None => break,
                },
                sent = &mut total_rx, if total.is_none() => total = Some(sent.unwrap()),
            }
            if total == Some(received)
                && let Some(all_in) = all_in.take()
            {
                all_in.send(()).unwrap();
            }
        }
        (received, read)
    });
    let (sent, write) = tokio::time::timeout(TIMEOUT, writer)
        .await
        .unwrap()
        .unwrap();
    let (received, read) = tokio::time::timeout(TIMEOUT, reader)
        .await
        .unwrap()
        .unwrap();
    assert!(sent > 100, "only {sent} messages in 2 s");
    assert_eq!(received, sent);
    let socket = read.reunite(write).unwrap();
    assert!(socket.connection().closed_cleanly());
    drop(socket);
    assert_eq!(peer.await.unwrap() as u64, sent);
}

#[tokio::test]
async fn dropping_the_write_half_closes_and_the_read_half_sees_the_end() {
    let (a, b) = tokio::io::duplex(4096);
    let peer = tokio::spawn(echo_peer(b));
    let (mut read, write) = socket(Role::Client, a).split();
    drop(write);
    let mut events = Vec::new();
    while let Some(event) = tokio::time::timeout(TIMEOUT, read.recv())
        .await
        .unwrap()
        .unwrap()
    {
        events.push(event);
    }
    assert!(
        matches!(&events[..], [Event::Close(Some(frame))] if frame.code == CloseCode::NORMAL),
        "{events:?}"
    );
    assert_eq!(peer.await.unwrap(), 0);
}

#[tokio::test]
async fn dropping_the_read_half_closes_and_the_write_half_can_no_longer_send() {
    let (a, b) = tokio::io::duplex(4096);
    let (read, mut write) = socket(Role::Server, a).split();
    drop(read);
    let mut peer = WebSocket::from_connection(b, Connection::new(Role::Client, Config::default()));
    let close = tokio::time::timeout(TIMEOUT, peer.recv()).await.unwrap();
    assert!(
        matches!(close.unwrap(), Some(Event::Close(Some(frame))) if frame.code == CloseCode::NORMAL)
    );
    assert!(matches!(write.send_text("late").await, Err(Error::Closed)));
}

#[tokio::test]
async fn halves_of_different_sockets_do_not_reunite() {
    let (a, _b) = tokio::io::duplex(64);
    let (c, _d) = tokio::io::duplex(64);
    let (read, _) = socket(Role::Server, a).split();
    let (_, write) = socket(Role::Server, c).split();
    let ws_core::stream::ReuniteError(read, write) = read.reunite(write).unwrap_err();
    assert!(!read.is_pair_of(&write));
}

#[tokio::test]
async fn queue_refuses_past_the_high_water_mark_and_send_waits_for_room() {
    let (a, b) = tokio::io::duplex(1024);
    let mut ws = socket(Role::Server, a);
    // The peer reads nothing yet: the queue fills up.
    let chunk = Message::Binary(vec![1u8; 64 * 1024].into());
    let mut queued = 0usize;
    let refused = loop {
        match ws.queue(chunk.clone()) {
            Ok(()) => queued += 1,
            Err(error) => break error,
        }
        assert!(queued < 1000, "the queue never filled");
    };
    assert!(matches!(refused, Error::WriteBufferFull), "{refused:?}");
    assert!(ws.connection().write_buffer_full());
    // 1 MiB by default: 16 chunks of 64 KiB (and their headers) reach it.
    assert_eq!(queued, 16);
    // A send waits until the peer has read enough, then goes through.
    let blocked = tokio::time::timeout(Duration::from_millis(200), ws.send(chunk.clone())).await;
    assert!(blocked.is_err(), "send did not wait for room");
    let peer = tokio::spawn(async move {
        let mut peer =
            WebSocket::from_connection(b, Connection::new(Role::Client, Config::default()));
        let mut received = 0;
        while let Some(event) = peer.recv().await.unwrap() {
            if let Event::Binary(_) = event {
                received += 1;
            }
        }
        received
    });
    tokio::time::timeout(TIMEOUT, ws.send(chunk))
        .await
        .unwrap()
        .unwrap();
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    while tokio::time::timeout(TIMEOUT, ws.recv())
        .await
        .unwrap()
        .unwrap()
        .is_some()
    {}
    // A server ends TCP after the closing handshake; the peer reads to the end.
    drop(ws);
    // The first send timed out before it queued anything: 16 + 1 arrive.
    assert_eq!(peer.await.unwrap(), 17);
}

#[tokio::test]
async fn stream_and_sink_echo_with_split_and_forward() {
    let (a, b) = tokio::io::duplex(4096);
    let server = tokio::spawn(async move {
        // futures' own split, over the socket's Stream and Sink.
        let (sink, stream) = StreamExt::split(socket(Role::Server, a));
        stream
            .try_filter_map(|event| async move { Ok(event.into_message()) })
            .forward(sink)
            .await
    });
    let client = WebSocket::from_connection(
        SendNotSync::new(b),
        Connection::new(Role::Client, Config::default()),
    );
    // The socket's own halves: the read half is a Stream, the write half a Sink.
    let (mut stream, mut sink) = client.split();
    let messages: Vec<Message> = (0..100)
        .map(|i| {
            if i % 2 == 0 {
                Message::from(format!("text {i}"))
            } else {
                Message::Binary(vec![i as u8; i * 10].into())
            }
        })
        .collect();
    for message in &messages {
        sink.feed(message.clone()).await.unwrap();
    }
    sink.flush().await.unwrap();
    let mut echoes = Vec::new();
    while echoes.len() < messages.len() {
        let event = tokio::time::timeout(TIMEOUT, stream.next()).await.unwrap();
        if let Some(message) = event.unwrap().unwrap().into_message() {
            echoes.push(message);
        }
    }
    assert_eq!(echoes, messages);
    // Closing the sink starts the closing handshake; the stream then ends
    // with the server's answer.
    SinkExt::close(&mut sink).await.unwrap();
    let rest: Vec<Event> = tokio::time::timeout(TIMEOUT, stream.try_collect())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&rest[..], [Event::Close(Some(frame))] if frame.code == CloseCode::NORMAL),
        "{rest:?}"
    );
    tokio::time::timeout(TIMEOUT, server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_peer_flooding_pings_without_reading_is_stopped_by_the_read_half() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (a, b) = tokio::io::duplex(4096);
    let (mut read, _write) = socket(Role::Server, a).split();
    let most_queued = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&most_queued);
    let reader = tokio::spawn(async move {
        while let Ok(Some(_)) = read.recv().await {
            let queued = read.with_connection(|c| bytes::Buf::remaining(c.outbound()));
            seen.fetch_max(queued, Ordering::Relaxed);
        }
    });
    let (_peer_read, mut peer_write) = tokio::io::split(b);
    let mut ping = BytesMut::new();
    ws_core::low_level::encode_frame(
        &mut ping,
        ws_core::low_level::FrameHeader {
            mask: Some([1, 2, 3, 4]),
            ..ws_core::low_level::FrameHeader::new(ws_core::OpCode::Ping, 0)
        },
        &[7u8; 100],
    );
    let flood = async {
        for _ in 0..100_000 {
            tokio::io::AsyncWriteExt::write_all(&mut peer_write, &ping)
                .await
                .unwrap();
        }
    };
    // The read half stops reading once about 1,024 pongs wait unwritten,
    // so the flood stalls instead of growing our queue.
    let stalled = tokio::time::timeout(Duration::from_secs(1), flood).await;
    assert!(stalled.is_err(), "100,000 pings went in without a stall");
    reader.abort();
    let pong = 2 + 100;
    let bound = (usize::from(ws_core::low_level::MAX_UNWRITTEN_PONGS) + 1) * pong;
    let most = most_queued.load(Ordering::Relaxed);
    assert!(
        most > 0 && most <= bound,
        "{most} bytes queued; bound {bound}"
    );
}
