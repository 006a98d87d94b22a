//! The bytes the protocol has queued for the wire.
//!
//! Small frames are copied into one contiguous buffer so that many of them go
//! out in one write; large payloads that need no masking (a server echoing what
//! it received) are queued by reference and written with vectored I/O, never
//! copied. So are the frames a [`PreparedMessage`](crate::PreparedMessage)
//! shares between connections, from 512 bytes up.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

use crate::spare;

/// Payloads at least this long are queued by reference rather than copied.
const ZERO_COPY_THRESHOLD: usize = 4096;

/// Shared frames shorter than this are copied rather than queued by
/// reference.
///
/// Measured with `cargo bench -p ws-core --bench broadcast`, this constant
/// set to 0 (always by reference) and to a large value (always copied). One
/// frame queued on each of 1,000 server connections (`queue_prepared`): by
/// reference costs about 19 ns per connection whatever the size; copying
/// costs 24 ns at 256 bytes, 32 ns at 512, 37 ns at 1 KiB and several times
/// more at 4 KiB, where the copies no longer fit in the cache. But every
/// frame queued by reference is one more slice for the vectored write: 32
/// frames queued before a write (`prepared_burst`) took two `writev` calls
/// of 16 slices against one `write` of the copied bytes, which made the burst
/// 35% cheaper copied at 256 bytes, 12% at 512, and no different from 768
/// bytes up. Below 512 bytes copying wins when frames queue up and costs a
/// few nanoseconds when they do not.
const SHARED_COPY_BELOW: usize = 512;

/// An ordered queue of bytes to write.
///
/// Implements [`Buf`], so it can be handed to `write_buf`/`write_all_buf` or
/// drained with [`chunks_vectored`](Buf::chunks_vectored) and
/// [`advance`](Buf::advance).
#[derive(Debug, Default)]
pub struct Outbound {
    /// Chunks ready to write, in order, before `tail`.
    queue: VecDeque<Bytes>,
    /// Where small writes are appended.
    tail: BytesMut,
    /// Bytes in `queue` and `tail` together.
    len: usize,
}

impl Outbound {
    /// Appends bytes by copying them.
    pub(crate) fn tail(&mut self) -> &mut BytesMut {
        if self.tail.capacity() == 0 {
            // Of the size the spare stock takes back: a small echo then
            // costs neither an allocation per frame (header, then payload)
            // nor a free when the connection goes idle.
            self.tail = spare::take();
            self.tail.reserve(spare::MIN_CAPACITY);
        }
        &mut self.tail
    }

    /// Records that `n` bytes were appended to [`tail`](Self::tail).
    pub(crate) fn grew(&mut self, n: usize) {
        self.len += n;
    }

    /// Appends a frame: its header copied, its owned payload by reference
    /// when it is large, copied with the header (one reservation) otherwise.
    pub(crate) fn push_frame(&mut self, header: &[u8], payload: Bytes) {
        self.len += header.len() + payload.len();
        if payload.len() < ZERO_COPY_THRESHOLD {
            let tail = self.tail();
            tail.reserve(header.len() + payload.len());
            tail.extend_from_slice(header);
            tail.extend_from_slice(&payload);
            return;
        }
        self.tail().extend_from_slice(header);
        if !self.tail.is_empty() {
            // An empty chunk in the queue would make `chunk` empty while
            // bytes remain, which `Buf` forbids.
            let before = self.tail.split().freeze();
            self.queue.push_back(before);
        }
        self.queue.push_back(payload);
    }

    /// Appends a complete frame shared with other connections (a
    /// [`PreparedMessage`](crate::prepared::PreparedMessage)'s): by
    /// reference, a reference-count increment and no copy, unless it is
    /// shorter than [`SHARED_COPY_BELOW`].
    pub(crate) fn push_shared(&mut self, frame: &Bytes) {
        self.len += frame.len();
        if frame.len() < SHARED_COPY_BELOW {
            self.tail().extend_from_slice(frame);
            return;
        }
        if !self.tail.is_empty() {
            self.queue.push_back(self.tail.split().freeze());
        }
        self.queue.push_back(frame.clone());
    }

    /// Drops the buffer's memory if nothing is pending and it has grown past
    /// `keep` bytes, so that an idle connection holds little.
    pub(crate) fn shrink(&mut self, keep: usize) {
        if self.len == 0 && self.tail.capacity() > keep {
            spare::give(std::mem::take(&mut self.tail));
        }
        if self.queue.is_empty() && self.queue.capacity() > 4 {
            self.queue = VecDeque::new();
        }
    }

    /// Bytes currently allocated, for memory accounting.
    pub(crate) fn capacity(&self) -> usize {
        self.tail.capacity() + self.queue.iter().map(Bytes::len).sum::<usize>()
    }
}

impl Buf for Outbound {
    fn remaining(&self) -> usize {
        self.len
    }

    fn chunk(&self) -> &[u8] {
        match self.queue.front() {
            Some(front) => front,
            None => &self.tail,
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let chunks = self
            .queue
            .iter()
            .map(|bytes| &bytes[..])
            .chain(std::iter::once(&self.tail[..]))
            .filter(|chunk| !chunk.is_empty());
        let mut filled = 0;
        for (slot, chunk) in dst.iter_mut().zip(chunks) {
            *slot = IoSlice::new(chunk);
            filled += 1;
        }
        filled
    }

    fn advance(&mut self, mut cnt: usize) {
        cnt = cnt.min(self.len);
        self.len -= cnt;
        while cnt > 0 {
            match self.queue.front_mut() {
                Some(front) if front.len() <= cnt => {
                    cnt -= front.len();
                    self.queue.pop_front();
                }
                Some(front) => {
                    front.advance(cnt);
                    return;
                }
                None if cnt >= self.tail.len() => {
                    // Written out: keep the whole buffer (advancing would
                    // shrink its capacity below what the spare stock takes).
                    self.tail.clear();
                    return;
                }
                None => {
                    self.tail.advance(cnt);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(out: &mut Outbound, step: usize) -> Vec<u8> {
        let mut written = Vec::new();
        while out.has_remaining() {
            let chunk = out.chunk();
            let n = chunk.len().min(step);
            written.extend_from_slice(&chunk[..n]);
            out.advance(n);
        }
        written
    }

    #[test]
    fn keeps_order_across_copied_and_referenced_chunks() {
        let mut out = Outbound::default();
        out.tail().extend_from_slice(b"head");
        out.grew(4);
        let big = Bytes::from(vec![7u8; ZERO_COPY_THRESHOLD]);
        out.push_frame(b"h1", big.clone());
        out.push_frame(b"h2", Bytes::from_static(b"small"));
        let mut expected = b"headh1".to_vec();
        expected.extend_from_slice(&big);
        expected.extend_from_slice(b"h2small");
        assert_eq!(out.remaining(), expected.len());
        assert_eq!(drain(&mut out, 1000), expected);
        assert_eq!(out.remaining(), 0);
    }

    #[test]
    fn large_payloads_are_not_copied() {
        let mut out = Outbound::default();
        let big = Bytes::from(vec![1u8; ZERO_COPY_THRESHOLD * 2]);
        out.push_frame(b"head", big.clone());
        assert_eq!(out.chunk(), b"head");
        out.advance(4);
        assert_eq!(out.chunk().as_ptr(), big.as_ptr());
        // Nothing copied before it: no empty chunk ahead of the payload.
        let mut out = Outbound::default();
        out.push_frame(b"", big.clone());
        assert_eq!(out.chunk().as_ptr(), big.as_ptr());
    }

    #[test]
    fn vectored_chunks_cover_everything_in_order() {
        let mut out = Outbound::default();
        out.tail().extend_from_slice(b"a");
        out.grew(1);
        out.push_frame(b"", Bytes::from(vec![2u8; ZERO_COPY_THRESHOLD]));
        out.tail().extend_from_slice(b"z");
        out.grew(1);
        let mut slices = [IoSlice::new(&[]); 8];
        let n = out.chunks_vectored(&mut slices);
        assert_eq!(n, 3);
        let total: usize = slices[..n].iter().map(|s| s.len()).sum();
        assert_eq!(total, out.remaining());
    }

    #[test]
    fn shrink_releases_an_empty_grown_buffer() {
        let mut out = Outbound::default();
        out.tail().extend_from_slice(&[0; 100_000]);
        out.grew(100_000);
        out.advance(100_000);
        out.shrink(8192);
        assert_eq!(out.capacity(), 0);
    }

    #[test]
    fn a_small_frame_written_out_leaves_a_buffer_the_spare_stock_takes_back() {
        let mut out = Outbound::default();
        out.tail().extend_from_slice(&[1; 22]);
        out.grew(22);
        let capacity = out.capacity();
        assert!(capacity >= spare::MIN_CAPACITY, "capacity {capacity}");
        out.advance(22);
        assert_eq!(out.remaining(), 0);
        // Written out, the buffer keeps all of its capacity...
        assert_eq!(out.capacity(), capacity);
        let address = out.tail.as_ptr();
        // ...so going idle hands it to the stock, and the next frame reuses it.
        out.shrink(0);
        assert_eq!(out.capacity(), 0);
        assert_eq!(out.tail().as_ptr(), address);
    }
}
