//! Measures what permessage-deflate state costs per connection, for each
//! window size: the figures in `ws_core::deflate`'s documentation come from
//! `cargo test -p ws-core --test deflate_memory -- --nocapture`.

// Test helpers may panic: that is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use ws_core::deflate::{DeflateConfig, DeflateParams};
use ws_core::{Config, Connection, Event, Role};

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The counter is global: tests that read it take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn live() -> isize {
    LIVE.load(Ordering::SeqCst)
}

/// Heap held by a connection pair's deflate state after one message each way.
fn cost(bits: u8) -> (isize, isize) {
    let params = DeflateParams::default()
        .server_max_window_bits(bits)
        .client_max_window_bits(bits);
    let config = DeflateConfig::default().min_size(0).window_bits(bits);
    let text = "a message long enough to be worth compressing, ".repeat(20);

    let mut sender = Connection::new(Role::Server, Config::default());
    sender.enable_deflate(params, &config);
    let before = live();
    sender.queue_text(&text).unwrap();
    let wire = sender.take_outbound();
    sender.shrink_buffers();
    let compressor = live() - before;

    let mut receiver = Connection::new(Role::Client, Config::default());
    receiver.enable_deflate(params, &config);
    let before = live();
    receiver.receive(&wire);
    let event = receiver.next_event().unwrap();
    assert!(matches!(event, Some(Event::Text(ref t)) if t.as_str() == text));
    drop(event);
    receiver.shrink_buffers();
    let decompressor = live() - before;
    (compressor, decompressor)
}

#[test]
fn deflate_state_per_connection_by_window_size() {
    let _turn = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    println!("| window bits | compressor | decompressor |");
    println!("|---|---|---|");
    for bits in 9..=15 {
        let (compressor, decompressor) = cost(bits);
        println!(
            "| {bits} | {} KiB | {} KiB |",
            compressor / 1024,
            decompressor / 1024
        );
        assert!(
            compressor > 0 && decompressor > 0,
            "state is kept with context takeover"
        );
        assert!(compressor < 1 << 20 && decompressor < 1 << 20, "bounded");
    }
}

/// Heap held after `n` server connections each received one compressed
/// message from a client and echoed it, then went idle.
fn idle_servers(n: usize, params: Option<DeflateParams>) -> isize {
    let config = DeflateConfig::default().min_size(0);
    let text = "{\"id\": 17, \"name\": \"compress me\", \"tags\": [\"a\", \"b\"]} ".repeat(20);
    let mut client = Connection::new(Role::Client, Config::default());
    if let Some(params) = params {
        client.enable_deflate(params, &config);
    }
    client.queue_text(&text).unwrap();
    let wire = client.take_outbound();
    let before = live();
    let mut servers = Vec::with_capacity(n);
    for _ in 0..n {
        let mut server = Connection::new(Role::Server, Config::default());
        if let Some(params) = params {
            server.enable_deflate(params, &config);
        }
        server.receive(&wire);
        let Some(Event::Text(echo)) = server.next_event().unwrap() else {
            panic!("expected the text message");
        };
        assert_eq!(echo.as_str(), text);
        server.queue_text(echo.as_str()).unwrap();
        drop(server.take_outbound());
        server.shrink_buffers();
        servers.push(server);
    }
    let held = live() - before;
    drop(servers);
    held
}

#[test]
fn no_context_takeover_keeps_no_state_between_messages() {
    let _turn = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let params = DeflateParams::default()
        .server_no_context_takeover(true)
        .client_no_context_takeover(true);
    // The thread's shared compressor and decompressor exist from here on.
    idle_servers(1, Some(params));
    let n = 100;
    let plain = idle_servers(n, None);
    let deflate = idle_servers(n, Some(params));
    let (plain, deflate) = (plain / n as isize, deflate / n as isize);
    println!(
        "bytes per idle connection: {plain} plain, {deflate} with deflate \
         without context takeover (its smaller read left less behind)"
    );
    // No zlib state (46 KiB at the least) is left: only the small `Deflate`
    // struct, the rest being buffers.
    assert!(
        deflate - plain < 256,
        "{deflate} vs {plain} bytes per connection"
    );
}

#[test]
fn context_takeover_keeps_state_per_connection() {
    let _turn = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let n = 10;
    let plain = idle_servers(n, None);
    let deflate = idle_servers(n, Some(DeflateParams::default()));
    let extra = (deflate - plain) / n as isize;
    assert!(extra > 64 * 1024, "{extra} bytes per connection");
}
