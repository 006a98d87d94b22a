//! Connect mode: handshakes per second. Each loop connects, upgrades, closes
//! with 1000 and waits for the server's close and the end of TCP, then starts
//! over, until the window ends.

use std::rc::Rc;
use std::time::Duration;

use tokio::time::{Instant, sleep};

use crate::context::Context;
use crate::open::close;
use crate::stats::Window;

/// A pause after a failed attempt, so that a server that refuses everything
/// is not hammered in a tight loop.
const BACKOFF: Duration = Duration::from_millis(10);

/// One of the concurrent handshake loops.
pub async fn handshake_loop(context: Rc<Context>, window: Window) {
    let shared = &context.shared;
    loop {
        let started = Instant::now();
        if shared.stopped() || started >= window.end {
            return;
        }
        match context.target.open().await {
            Ok(opened) => {
                let upgraded = Instant::now();
                shared.connected.set(shared.connected.get() + 1);
                match close(opened.stream, opened.connection).await {
                    // The cycle counts when it is complete; its latency is
                    // the handshake's.
                    Ok(()) if shared.in_window(upgraded) => {
                        shared.record(started, upgraded, 0);
                    }
                    Ok(()) => shared.total.set(shared.total.get() + 1),
                    Err(error) => shared.error(|| error),
                }
            }
            Err((kind, message)) => {
                shared.open_failed(kind, || message);
                sleep(BACKOFF).await;
            }
        }
    }
}
