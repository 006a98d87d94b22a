//! What a hostile peer can make the adapters hold: a peer that writes
//! without reading costs at most the documented read-ahead.

// Test helpers may panic: that is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use ws_core::low_level::{FrameHeader, encode_frame};
use ws_core::stream::WebSocket;
use ws_core::{Config, Connection, Event, Message, OpCode, Role};

/// The documented read-ahead past the frame limit while a write is blocked.
const READ_AHEAD: usize = 64 * 1024;

#[tokio::test]
async fn an_echo_to_a_peer_that_never_reads_reads_ahead_no_more_than_a_frame_and_64_kib() {
    let max_frame_size = 1 << 20;
    let config = Config::default()
        .max_frame_size(max_frame_size)
        .max_message_size(max_frame_size);
    let (near, mut far) = tokio::io::duplex(64 * 1024);
    let mut socket = WebSocket::from_connection(near, Connection::new(Role::Server, config));
    // The peer writes far more than the read-ahead allows and reads nothing.
    let mut frame = BytesMut::new();
    let header = FrameHeader {
        mask: Some([9, 8, 7, 6]),
        ..FrameHeader::new(OpCode::Binary, 0)
    };
    encode_frame(&mut frame, header, &[0x5A; 100 * 1024]);
    let writer = tokio::spawn(async move {
        for _ in 0..200 {
            if far.write_all(&frame).await.is_err() {
                break;
            }
        }
        far
    });
    // An echo loop, as a server runs it, until it is stuck on its writes:
    // echoes are queued, and sent (waiting for room) once the queue is full.
    let mut most = 0;
    let wait = Duration::from_millis(300);
    while let Ok(event) = tokio::time::timeout(wait, socket.recv()).await {
        let message = match event.unwrap() {
            Some(Event::Binary(payload)) => Message::Binary(payload),
            other => panic!("unexpected {other:?}"),
        };
        most = most.max(socket.connection().buffered_input());
        match socket.queue(message.clone()) {
            Ok(()) => {}
            Err(ws_core::Error::WriteBufferFull) => {
                if tokio::time::timeout(wait, socket.send(message))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            Err(other) => panic!("{other:?}"),
        }
        most = most.max(socket.connection().buffered_input());
    }
    most = most.max(socket.connection().buffered_input());
    assert!(
        most <= max_frame_size + READ_AHEAD,
        "read ahead {most} bytes; the bound is {}",
        max_frame_size + READ_AHEAD
    );
    writer.abort();
}
