//! A small per-thread stock of released buffers.
//!
//! A connection that releases its buffers whenever it goes idle (see
//! [`Connection::shrink_buffers`](crate::Connection::shrink_buffers)) needs
//! them back as soon as its next message arrives. For a server whose
//! connections each send a message now and then, that was an allocation of
//! a few KiB, outside the allocator's fast path, for every message. Released
//! buffers of the usual size go into this stock instead, and the next
//! connection that needs one takes it from there: idle connections still
//! hold nothing, and the memory kept is bounded by the stock, not by the
//! number of connections.

use std::cell::RefCell;

use bytes::BytesMut;

/// Buffers kept per thread: enough for the connections one thread serves
/// between two waits, and at most `KEEP * MAX_CAPACITY` (256 KiB) of memory.
const KEEP: usize = 32;
/// Only buffers of the usual size are kept; a larger one (grown for a large
/// message) is freed, so the stock cannot pin much memory.
pub(crate) const MIN_CAPACITY: usize = 1024;
const MAX_CAPACITY: usize = 8 * 1024;

thread_local! {
    static STOCK: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer: one from the stock, or a new (unallocated) one.
pub(crate) fn take() -> BytesMut {
    STOCK
        .try_with(|stock| stock.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Takes `buffer` back into the stock if it is empty, of the usual size and
/// there is room; otherwise it is freed.
///
/// A buffer whose memory is still shared (a received message the
/// application still holds points into it) may be stocked too: `BytesMut`
/// then allocates afresh when it is reserved, and the message is untouched.
pub(crate) fn give(buffer: BytesMut) {
    if !buffer.is_empty() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&buffer.capacity()) {
        return;
    }
    // During thread teardown the stock may be gone: the buffer is just freed.
    let _ = STOCK.try_with(|stock| {
        let mut stock = stock.borrow_mut();
        if stock.len() < KEEP {
            stock.push(buffer);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stocked() -> usize {
        STOCK.with(|stock| stock.borrow().len())
    }

    #[test]
    fn a_released_buffer_is_handed_out_again() {
        let mut buffer = take();
        buffer.reserve(4096);
        let address = buffer.as_ptr();
        give(buffer);
        let again = take();
        assert_eq!(again.as_ptr(), address);
        assert!(again.capacity() >= 4096);
        assert!(again.is_empty());
    }

    #[test]
    fn only_empty_buffers_of_the_usual_size_are_kept() {
        let before = stocked();
        give(BytesMut::from(&b"data"[..]));
        give(BytesMut::new());
        give(BytesMut::with_capacity(MAX_CAPACITY * 2));
        assert_eq!(stocked(), before);
        give(BytesMut::with_capacity(MIN_CAPACITY));
        assert_eq!(stocked(), before + 1);
    }

    #[test]
    fn the_stock_is_bounded() {
        for _ in 0..KEEP * 2 {
            give(BytesMut::with_capacity(MIN_CAPACITY));
        }
        assert_eq!(stocked(), KEEP);
    }

    #[test]
    fn a_shared_buffer_leaves_the_data_it_shares_untouched() {
        let mut buffer = take();
        buffer.extend_from_slice(b"message");
        buffer.reserve(MIN_CAPACITY);
        let message = buffer.split().freeze();
        give(buffer);
        let mut reused = take();
        reused.extend_from_slice(b"overwrite");
        assert_eq!(&message[..], b"message");
        assert_eq!(&reused[..], b"overwrite");
    }
}
