//! tcp mode, the baseline: the same closed-loop ping-pong of `--size` bytes
//! over plain TCP against a TCP echo server, so that a WebSocket server's
//! figures can be read against what the socket layer alone costs.

use std::collections::VecDeque;
use std::rc::Rc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until};

use crate::context::Context;
use crate::failure::io_message;
use crate::stats::Window;

/// The read buffer of a connection.
const READ_SIZE: usize = 64 * 1024;

/// One connection of a tcp run.
pub async fn connection(context: Rc<Context>, index: usize) {
    let Some(mut stream) = context.open_tcp(index).await else {
        return;
    };
    if let Some(window) = context.wait_go().await {
        let mut ping_pong = PingPong::new(&context);
        if let Err(error) = ping_pong.run(&mut stream, window).await {
            context.shared.error(|| error);
        }
    }
    // No closing handshake in plain TCP: our FIN ends the exchange.
    let _ = stream.shutdown().await;
    context.closed();
}

/// The closed loop of one connection.
struct PingPong<'a> {
    context: &'a Context,
    /// `--in-flight` copies of the payload back to back, so that any number of
    /// messages up to that goes out in one write.
    batch: Vec<u8>,
    sent: VecDeque<Instant>,
    /// Bytes of the current echo received so far.
    position: usize,
    /// The current echo matched so far.
    matching: bool,
    buffer: Vec<u8>,
}

impl<'a> PingPong<'a> {
    fn new(context: &'a Context) -> Self {
        let in_flight = context.args.in_flight;
        Self {
            context,
            batch: context.payload.repeat(in_flight),
            sent: VecDeque::with_capacity(in_flight),
            position: 0,
            matching: true,
            buffer: vec![0; READ_SIZE],
        }
    }

    async fn run(&mut self, stream: &mut TcpStream, window: Window) -> Result<(), String> {
        let shared = &self.context.shared;
        let stop = sleep_until(window.end);
        tokio::pin!(stop);
        self.send(stream, self.context.args.in_flight).await?;
        loop {
            let read = tokio::select! {
                biased;
                read = stream.read(&mut self.buffer) => read,
                () = &mut stop => return Ok(()),
            };
            let read = read.map_err(|error| format!("read failed: {}", io_message(&error)))?;
            let now = Instant::now();
            if read == 0 {
                return Err("the server closed the TCP connection".to_owned());
            }
            shared.read_bytes(now, read);
            let echoes = self.receive(read, now);
            if shared.stopped() || now >= window.end {
                return Ok(());
            }
            self.send(stream, echoes).await?;
        }
    }

    /// Consumes `read` bytes of the buffer; returns how many echoes completed.
    fn receive(&mut self, read: usize, now: Instant) -> usize {
        let payload = &self.context.payload;
        let size = payload.len();
        let mut data = self.buffer.get(..read).unwrap_or_default();
        let mut echoes = 0;
        while !data.is_empty() {
            let take = (size - self.position).min(data.len());
            let (piece, rest) = data.split_at(take);
            let expected = payload
                .get(self.position..self.position + take)
                .unwrap_or_default();
            self.matching &= piece == expected;
            self.position += take;
            data = rest;
            if self.position == size {
                let shared = &self.context.shared;
                match self.sent.pop_front() {
                    Some(sent) => {
                        shared.record(sent, now, size);
                        echoes += 1;
                    }
                    None => {
                        shared.mismatch(|| "bytes arrived when none were outstanding".to_owned())
                    }
                }
                if !self.matching {
                    shared.mismatch(|| {
                        format!("an echo of {size} bytes came back with different bytes")
                    });
                }
                self.position = 0;
                self.matching = true;
            }
        }
        echoes
    }

    async fn send(&mut self, stream: &mut TcpStream, count: usize) -> Result<(), String> {
        let size = self.context.payload.len();
        let bytes = self.batch.get(..count * size).unwrap_or_default();
        if bytes.is_empty() {
            return Ok(());
        }
        let now = Instant::now();
        stream
            .write_all(bytes)
            .await
            .map_err(|error| format!("write failed: {}", io_message(&error)))?;
        for _ in 0..count {
            self.sent.push_back(now);
        }
        self.context.shared.wrote_bytes(now, bytes.len());
        Ok(())
    }
}
