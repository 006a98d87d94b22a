//! Throughput of ws-core's hot paths, each beside a plain copy of the same
//! bytes in the same group, so that the ratio to memcpy can be read off: that
//! ratio, not the absolute figure, is what the team tracks, since it cancels
//! out most of the machine's speed.
//!
//! Run with `cargo bench -p ws-core --bench core`; pass a name to run one
//! group, e.g. `cargo bench -p ws-core --bench core -- unmask`.

use std::hint::black_box;

use bytes::{Buf, Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput};
use ws_core::low_level::{FrameHeader, Utf8Validator, apply_mask, encode_frame};
use ws_core::{Config, Connection, Message, OpCode, Role};

/// The masking key of RFC 6455 §5.7; any key costs the same.
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// How many frames the decoding benchmark feeds per iteration.
const FRAMES: usize = 10_000;

/// The payload of each of those frames: a short chat-like message.
const SMALL_TEXT: &str = "{\"type\":\"ping\",\"n\":7}";

fn size_label(size: usize) -> String {
    if size >= 1 << 20 {
        format!("{}MiB", size >> 20)
    } else {
        format!("{}KiB", size >> 10)
    }
}

/// Unmasking in place against copying the same number of bytes.
fn unmask(c: &mut Criterion) {
    let mut group = c.benchmark_group("unmask");
    for size in [1 << 10, 64 << 10, 1 << 20] {
        group.throughput(Throughput::Bytes(size as u64));
        let source = vec![0xa5u8; size];
        let mut buf = vec![0x5au8; size];
        group.bench_function(BenchmarkId::new("apply_mask", size_label(size)), |b| {
            b.iter(|| apply_mask(black_box(&mut buf), KEY, 0));
        });
        group.bench_function(BenchmarkId::new("memcpy", size_label(size)), |b| {
            b.iter(|| buf.copy_from_slice(black_box(&source)));
        });
    }
    group.finish();
}

/// `FRAMES` masked text frames as a browser sends them, each with its own key.
fn client_text_stream() -> Vec<u8> {
    let mut out = BytesMut::new();
    for i in 0..FRAMES {
        let header = FrameHeader {
            mask: Some((i as u32).wrapping_mul(0x9E37_79B9).to_le_bytes()),
            ..FrameHeader::new(OpCode::Text, 0)
        };
        encode_frame(&mut out, header, SMALL_TEXT.as_bytes());
    }
    out.to_vec()
}

/// Feeds the stream to a fresh server connection and drains every event;
/// returns how many there were.
fn decode_all(stream: &[u8]) -> usize {
    let mut connection = Connection::new(Role::Server, Config::default());
    connection.receive(stream);
    let mut events = 0;
    while let Ok(Some(event)) = connection.next_event() {
        black_box(event);
        events += 1;
    }
    events
}

/// Decoding, unmasking and validating small text frames through a server
/// connection (the copy into its read buffer included), against copying the
/// stream into a fresh buffer.
fn decode_small_frames(c: &mut Criterion) {
    let stream = client_text_stream();
    // A benchmark of a decoder that fails early would measure nothing.
    assert_eq!(
        decode_all(&stream),
        FRAMES,
        "every frame decodes to an event"
    );

    let mut group = c.benchmark_group("decode_text_frames");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("connection", |b| {
        b.iter(|| decode_all(black_box(&stream)));
    });
    group.bench_function("memcpy", |b| {
        b.iter(|| {
            let mut copy = BytesMut::new();
            copy.extend_from_slice(black_box(&stream));
            copy
        });
    });
    group.finish();

    let mut group = c.benchmark_group("decode_text_frames_per_frame");
    group.throughput(Throughput::Elements(FRAMES as u64));
    group.bench_function("connection", |b| {
        b.iter(|| decode_all(black_box(&stream)));
    });
    group.finish();
}

/// About 64 KiB of text, cut at a character boundary.
fn text_of(unit: &str) -> String {
    let mut text = unit.repeat((64 << 10) / unit.len() + 1);
    let mut end = 64 << 10;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

/// Incremental UTF-8 validation of a whole message, against a copy.
fn utf8(c: &mut Criterion) {
    let ascii = text_of("The quick brown fox jumps over the lazy dog. ");
    let mixed = text_of("κόσμε 日本語 𝄞 naïve café, ");
    let mut group = c.benchmark_group("utf8");
    for (name, text) in [("ascii_64KiB", &ascii), ("mixed_64KiB", &mixed)] {
        let bytes = text.as_bytes();
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(BenchmarkId::new("validator", name), |b| {
            b.iter(|| {
                let mut validator = Utf8Validator::new();
                let fed = validator.feed(black_box(bytes));
                (fed, validator.finish())
            });
        });
        let mut copy = vec![0u8; bytes.len()];
        group.bench_function(BenchmarkId::new("memcpy", name), |b| {
            b.iter(|| copy.copy_from_slice(black_box(bytes)));
        });
    }
    group.finish();
}

/// Queues `count` binary messages on a server connection and drains them
/// with `take_outbound` (one copy of everything into one vector).
fn send_and_take(connection: &mut Connection, payload: &Bytes, count: usize) -> usize {
    for _ in 0..count {
        let sent = connection.queue(Message::Binary(payload.clone()));
        black_box(sent.is_ok());
    }
    connection.take_outbound().len()
}

/// Queues `count` binary messages and drains them as a vectored write does:
/// by chunk, without copying (large payloads are queued by reference).
fn send_and_advance(connection: &mut Connection, payload: &Bytes, count: usize) -> usize {
    for _ in 0..count {
        let sent = connection.queue(Message::Binary(payload.clone()));
        black_box(sent.is_ok());
    }
    let outbound = connection.outbound();
    let mut written = 0;
    while outbound.has_remaining() {
        let n = black_box(outbound.chunk()).len();
        outbound.advance(n);
        written += n;
    }
    written
}

/// The send path of a server: queueing messages and draining the queue,
/// against copying the same payload bytes into one buffer.
fn send(c: &mut Criterion) {
    let mut group = c.benchmark_group("send_binary");
    for (size, count) in [(20usize, 1000usize), (16 << 10, 64)] {
        let payload = Bytes::from((0..size).map(|i| i as u8).collect::<Vec<u8>>());
        let label = if size < 1024 {
            format!("{size}B_x{count}")
        } else {
            format!("{}KiB_x{count}", size >> 10)
        };
        group.throughput(Throughput::Bytes((size * count) as u64));
        let mut connection = Connection::new(Role::Server, Config::default());
        let framed = send_and_take(&mut connection, &payload, count);
        assert!(framed > size * count, "every message was queued");
        group.bench_function(BenchmarkId::new("take_outbound", &label), |b| {
            b.iter(|| send_and_take(&mut connection, black_box(&payload), count));
        });
        group.bench_function(BenchmarkId::new("vectored_drain", &label), |b| {
            b.iter(|| send_and_advance(&mut connection, black_box(&payload), count));
        });
        let mut out = Vec::with_capacity(size * count);
        group.bench_function(BenchmarkId::new("memcpy", &label), |b| {
            b.iter(|| {
                out.clear();
                for _ in 0..count {
                    out.extend_from_slice(black_box(&payload));
                }
                out.len()
            });
        });
    }
    group.finish();
}

// What `criterion_group!`/`criterion_main!` expand to, written out so that
// no undocumented public function is generated.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    unmask(&mut criterion);
    decode_small_frames(&mut criterion);
    utf8(&mut criterion);
    send(&mut criterion);
    criterion.final_summary();
}
