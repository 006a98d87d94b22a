//! Echo mode: each connection keeps `--in-flight` messages outstanding and
//! sends a new one as each echo arrives (a closed loop), checking every echo
//! byte for byte.
//!
//! The hot path allocates nothing: frames come from the connection's
//! pre-built pool, reads go into the protocol's own buffer (whose payloads
//! are borrowed, compared and dropped, so the buffer is reused), and send
//! times wait in a ring sized for the messages in flight.

use std::collections::VecDeque;
use std::rc::Rc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, sleep_until};
use ws_core::{Connection, Event};

use crate::context::Context;
use crate::describe::describe_close;
use crate::failure::{Failure, io_message};
use crate::open::{Opened, close, flush_protocol};
use crate::payload::FramePool;
use crate::stats::Window;

/// Frames at most this long are gathered into one write when several are
/// due; longer ones are written one by one, straight from the pool.
const GATHER_LIMIT: usize = 64 * 1024;

/// One connection of an echo run, from opening to closing: over TCP, or
/// with `--http2` over a stream of a shared HTTP/2 connection.
pub async fn connection(context: Rc<Context>, index: usize) {
    if context.args.http2 {
        if let Some(opened) = context.open_http2_websocket(index).await {
            run(&context, opened).await;
        }
    } else if let Some(opened) = context.open_websocket(index).await {
        run(&context, opened).await;
    }
}

/// The echo loop of an opened WebSocket, then its closing handshake.
async fn run<S: AsyncRead + AsyncWrite + Unpin>(context: &Context, opened: Opened<S>) {
    let shared = &context.shared;
    let deflate = opened.deflate.zip(context.target.config.deflate.as_ref());
    let pool = match FramePool::build(&context.payload, context.args.text, deflate) {
        Ok(pool) => pool,
        Err(error) => {
            shared.error(|| format!("cannot build the frames: {error}"));
            context.closed();
            return;
        }
    };
    shared.frame_len.set(pool.frame_len());
    let mut stream = opened.stream;
    let mut connection = opened.connection;
    if let Some(window) = context.wait_go().await {
        let mut echo = Echo {
            context,
            stream: &mut stream,
            connection: &mut connection,
            pool,
            sent: VecDeque::with_capacity(context.args.in_flight),
            gather: Vec::new(),
        };
        if let Err(error) = echo.run(window).await {
            shared.error(|| error);
            context.closed();
            return;
        }
    }
    if let Err(error) = close(stream, connection).await {
        shared.error(|| error);
    }
    context.closed();
}

/// The closed loop of one connection.
struct Echo<'a, S> {
    context: &'a Context,
    stream: &'a mut S,
    connection: &'a mut Connection,
    pool: FramePool,
    /// When each outstanding message was sent, oldest first (echoes come
    /// back in order).
    sent: VecDeque<Instant>,
    /// Where several small frames are put together for one write.
    gather: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Echo<'_, S> {
    async fn run(&mut self, window: Window) -> Result<(), String> {
        let shared = &self.context.shared;
        let stop = sleep_until(window.end);
        tokio::pin!(stop);
        self.send(self.context.args.in_flight).await?;
        loop {
            let read = tokio::select! {
                biased;
                read = self.stream.read_buf(self.connection.read_buffer()) => read,
                () = &mut stop => return Ok(()),
            };
            let read = read.map_err(|error| format!("read failed: {}", io_message(&error)))?;
            let now = Instant::now();
            if read == 0 {
                return Err("the server closed the TCP connection without a close frame".to_owned());
            }
            shared.read_bytes(now, read);
            let echoes = self.take_events(now)?;
            if self.connection.wants_write() {
                // Pongs the protocol owes the server go out before anything else.
                self.flush_protocol().await?;
            }
            if shared.stopped() || now >= window.end {
                return Ok(());
            }
            self.send(echoes).await?;
        }
    }

    /// Takes every event out of the protocol; returns how many echoes came.
    fn take_events(&mut self, now: Instant) -> Result<usize, String> {
        let mut echoes = 0;
        loop {
            let event = match self.connection.next_event() {
                Ok(Some(event)) => event,
                Ok(None) => return Ok(echoes),
                Err(error) => return Err(Failure::from_session(error).message),
            };
            let answered = match event {
                Event::Binary(payload) => self.check(&payload, false, now),
                Event::Text(text) => self.check(text.as_bytes(), true, now),
                Event::Ping(_) | Event::Pong(_) => false,
                Event::Close(frame) => {
                    return Err(format!(
                        "the server closed the connection during the run ({})",
                        describe_close(frame.as_ref())
                    ));
                }
                // Kinds of event a later ws-core may add answer nothing.
                _ => false,
            };
            // Only an echo of an outstanding message makes room for the next.
            if answered {
                echoes += 1;
            }
        }
    }

    /// Compares an echo with what was sent and records its latency; false
    /// when no message was outstanding.
    fn check(&mut self, payload: &[u8], text: bool, now: Instant) -> bool {
        let shared = &self.context.shared;
        let Some(sent) = self.sent.pop_front() else {
            shared.mismatch(|| "a message arrived when none was outstanding".to_owned());
            return false;
        };
        shared.record(sent, now, payload.len());
        let expected = &self.context.payload;
        if text != self.context.args.text {
            let kind = |text| if text { "text" } else { "binary" };
            shared.mismatch(|| {
                format!(
                    "a {} message came back as {}",
                    kind(self.context.args.text),
                    kind(text)
                )
            });
        } else if payload != expected.as_slice() {
            shared.mismatch(|| describe_difference(expected, payload));
        }
        true
    }

    /// Sends `count` more messages from the pool.
    async fn send(&mut self, count: usize) -> Result<(), String> {
        if count == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let frame_len = self.pool.frame_len();
        let write = if count == 1 || frame_len.saturating_mul(count) > GATHER_LIMIT {
            let mut result = Ok(());
            for _ in 0..count {
                result = self.stream.write_all(self.pool.next_frame()).await;
                if result.is_err() {
                    break;
                }
            }
            result
        } else {
            self.gather.clear();
            for _ in 0..count {
                self.gather.extend_from_slice(self.pool.next_frame());
            }
            self.stream.write_all(&self.gather).await
        };
        write.map_err(|error| format!("write failed: {}", io_message(&error)))?;
        for _ in 0..count {
            self.sent.push_back(now);
        }
        self.context.shared.wrote_bytes(now, frame_len * count);
        Ok(())
    }

    /// Writes what the protocol queued (pongs).
    async fn flush_protocol(&mut self) -> Result<(), String> {
        flush_protocol(self.stream, self.connection).await
    }
}

/// Where an echo first differs from what was sent, in a few words.
pub fn describe_difference(expected: &[u8], actual: &[u8]) -> String {
    if expected.len() != actual.len() {
        return format!(
            "an echo of {} bytes came back with {} bytes",
            expected.len(),
            actual.len()
        );
    }
    let at = expected
        .iter()
        .zip(actual)
        .position(|(a, b)| a != b)
        .unwrap_or_default();
    format!(
        "an echo of {} bytes differs from what was sent at byte {at}",
        expected.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_the_length_or_the_first_differing_byte() {
        assert_eq!(
            describe_difference(b"abc", b"ab"),
            "an echo of 3 bytes came back with 2 bytes"
        );
        assert_eq!(
            describe_difference(b"abcd", b"abXd"),
            "an echo of 4 bytes differs from what was sent at byte 2"
        );
    }
}
