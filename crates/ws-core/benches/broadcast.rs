//! Broadcast: one message to 1,000 server connections, as a
//! [`PreparedMessage`] queued on each against a [`Message`] sent to each.
//!
//! Every iteration builds the prepared message afresh (framing, and with
//! deflate the one compression, are part of its cost), queues it on every
//! connection, then empties every connection's outbound queue as a write
//! would; the plain variant queues a clone of the `Message` (a
//! reference-count increment: its payload is `Bytes`) on every connection
//! and empties the queues the same way. The ratio prepared / plain is what
//! issue #14 asks about.
//!
//! Run with `cargo bench -p ws-core --bench broadcast`; the deflate group
//! takes a while per iteration, so a short run is
//! `cargo bench -p ws-core --bench broadcast -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use bytes::{Buf, Bytes};
use criterion::{BenchmarkId, Criterion, Throughput};
use ws_core::deflate::{DeflateConfig, DeflateParams};
use ws_core::{Config, Connection, Message, PreparedMessage, Role};

/// Connections per broadcast.
const CONNECTIONS: usize = 1000;

fn size_label(size: usize) -> String {
    if size >= 1024 {
        format!("{}KiB", size >> 10)
    } else {
        format!("{size}B")
    }
}

/// A binary payload of `size` bytes.
fn binary(size: usize) -> Message {
    Message::Binary(Bytes::from(
        (0..size).map(|i| (i * 7) as u8).collect::<Vec<u8>>(),
    ))
}

/// About `size` bytes of JSON-like text, the traffic deflate is used for.
fn json(size: usize) -> Message {
    let mut text = String::from("[");
    let mut i = 0u32;
    while text.len() + 80 < size {
        text.push_str(&format!(
            "{{\"id\":{i},\"symbol\":\"SYM{}\",\"price\":{}.{:02},\"side\":\"{}\"}},",
            i % 37,
            1000 + i * 13 % 500,
            i * 7 % 100,
            if i.is_multiple_of(3) { "buy" } else { "sell" }
        ));
        i += 1;
    }
    while text.len() < size - 1 {
        text.push(' ');
    }
    text.push(']');
    Message::from(text)
}

/// Empties every connection's outbound queue, as a write that took it all.
fn drain(connections: &mut [Connection]) -> usize {
    let mut written = 0;
    for connection in connections {
        let outbound = connection.outbound();
        let n = outbound.remaining();
        outbound.advance(n);
        written += n;
    }
    written
}

fn prepared(connections: &mut [Connection], message: &Message) -> usize {
    let prepared = PreparedMessage::new(message.clone());
    for connection in connections.iter_mut() {
        let queued = connection.queue_prepared(&prepared);
        black_box(queued.is_ok());
    }
    drain(connections)
}

fn plain(connections: &mut [Connection], message: &Message) -> usize {
    for connection in connections.iter_mut() {
        let queued = connection.queue(message.clone());
        black_box(queued.is_ok());
    }
    drain(connections)
}

fn servers(deflate: Option<DeflateParams>) -> Vec<Connection> {
    (0..CONNECTIONS)
        .map(|_| {
            let mut connection = Connection::new(Role::Server, Config::default());
            if let Some(params) = deflate {
                connection.enable_deflate(params, &DeflateConfig::default());
            }
            connection
        })
        .collect()
}

/// Both variants put the same number of bytes on the wire (a benchmark of
/// a path that queued nothing would measure nothing).
fn check_same_output(connections: &mut [Connection], message: &Message) {
    let by_prepared = prepared(connections, message);
    let by_message = plain(connections, message);
    assert_eq!(by_prepared, by_message, "the same frames are queued");
    assert!(by_prepared > 0);
}

fn group(
    c: &mut Criterion,
    name: &str,
    deflate: Option<DeflateParams>,
    make: fn(usize) -> Message,
) {
    let mut group = c.benchmark_group(name);
    if deflate.is_some() {
        // Compressing 16 KiB a thousand times takes tens of milliseconds.
        group.sample_size(10);
    }
    for size in [1 << 10, 16 << 10] {
        let message = make(size);
        let mut connections = servers(deflate);
        check_same_output(&mut connections, &message);
        group.throughput(Throughput::Elements(CONNECTIONS as u64));
        let label = format!("{}_x{CONNECTIONS}", size_label(size));
        group.bench_function(BenchmarkId::new("prepared", &label), |b| {
            b.iter(|| prepared(&mut connections, black_box(&message)));
        });
        group.bench_function(BenchmarkId::new("message", &label), |b| {
            b.iter(|| plain(&mut connections, black_box(&message)));
        });
    }
    group.finish();
}

/// Uncompressed: one shared frame against framing and copying per connection.
fn broadcast(c: &mut Criterion) {
    group(c, "broadcast", None, binary);
}

/// permessage-deflate with `server_no_context_takeover`: one compression
/// against one per connection.
fn broadcast_deflate(c: &mut Criterion) {
    let params = DeflateParams::default().server_no_context_takeover(true);
    group(c, "broadcast_deflate", Some(params), json);
}

/// Queueing an already prepared message: the cost per connection alone,
/// either side of the size below which shared frames are copied.
fn queue_shared(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue_prepared");
    for size in [64, 256, 1024, 16 << 10] {
        let message = binary(size);
        let mut connections = servers(None);
        let prepared_message = PreparedMessage::new(message);
        group.throughput(Throughput::Elements(CONNECTIONS as u64));
        group.bench_function(BenchmarkId::from_parameter(size_label(size)), |b| {
            b.iter(|| {
                for connection in connections.iter_mut() {
                    let queued = connection.queue_prepared(black_box(&prepared_message));
                    black_box(queued.is_ok());
                }
                drain(&mut connections)
            });
        });
    }
    group.finish();
}

/// Bursts: 32 prepared frames queued on each of 100 connections before a
/// write, drained as the adapters do (vectored writes of up to 16 slices, to
/// `/dev/null` so that each costs a real system call). Frames queued by
/// reference are one slice each; copied ones share a slice. Run it with
/// `SHARED_COPY_BELOW` in `outbound.rs` set to 0 and to a large value to see
/// where copying pays.
fn burst(c: &mut Criterion) {
    use std::io::{IoSlice, Write};
    let Ok(mut null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else {
        return;
    };
    let mut group = c.benchmark_group("prepared_burst");
    for size in [64, 256, 512, 1024] {
        let mut connections: Vec<Connection> = (0..100)
            .map(|_| Connection::new(Role::Server, Config::default()))
            .collect();
        let prepared_message = PreparedMessage::new(binary(size));
        group.throughput(Throughput::Elements(100 * 32));
        group.bench_function(BenchmarkId::from_parameter(size_label(size)), |b| {
            b.iter(|| {
                for connection in connections.iter_mut() {
                    for _ in 0..32 {
                        let queued = connection.queue_prepared(black_box(&prepared_message));
                        black_box(queued.is_ok());
                    }
                    let outbound = connection.outbound();
                    while outbound.has_remaining() {
                        let mut slices = [IoSlice::new(&[]); 16];
                        let count = outbound.chunks_vectored(&mut slices);
                        match null.write_vectored(slices.get(..count).unwrap_or_default()) {
                            Ok(written) if written > 0 => outbound.advance(written),
                            _ => return,
                        }
                    }
                }
            });
        });
    }
    group.finish();
}

// What `criterion_group!`/`criterion_main!` expand to, written out so that
// no undocumented public function is generated.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    broadcast(&mut criterion);
    broadcast_deflate(&mut criterion);
    queue_shared(&mut criterion);
    burst(&mut criterion);
    criterion.final_summary();
}
