//! Inflating a whole compressed message in one call, with libdeflate.
//!
//! Most compressed messages arrive as one frame, read whole, from a peer
//! that keeps no context between messages (what a server negotiates by
//! default). zlib-rs's streaming inflate costs about twice what libdeflate's
//! whole-buffer decompressor does on such a message (callgrind, 1 KiB of
//! JSON: 30,600 against 14,800 instructions, a seventh of the whole deflate
//! echo), most of the difference in building the decoding tables of a
//! dynamic block and in per-call stream bookkeeping.
//!
//! The fast path must give exactly what the streaming path
//! ([`super::inflate_bounded`]) gives, so it takes a result only when it can
//! prove them equal, and otherwise says "not here" and lets the streaming
//! path inflate the message from the start: any error (the streaming path
//! then reports it, with the same error and UTF-8 ordering as always), output
//! that would not fit the thread's buffer or the message limit, a window
//! smaller than the output when the peer negotiated one (zlib rejects a
//! distance beyond it, libdeflate would not), and input libdeflate did not
//! consume to its expected end.
//!
//! That last one needs the number of input bytes consumed, which the safe
//! `libdeflater` API does not return: a message whose deflate stream ends
//! with a final block followed by more data would otherwise be cut short,
//! where the streaming path inflates the rest as a new stream. Hence the one
//! `unsafe` call of this crate, to `libdeflate_deflate_decompress_ex`.
//!
//! libdeflate needs a complete stream, ended by a block with BFINAL set. The
//! payload gets the `00 00 ff ff` RFC 7692 strips (the end of an empty stored
//! block), then `01 00 00 ff ff`, an empty stored block with BFINAL set. (An
//! empty final block with fixed codes, `03 00`, is shorter, but after a
//! dynamic block libdeflate builds the fixed codes' decoding tables again for
//! it: 10,000 instructions, two thirds of inflating a 1 KiB JSON message.) A
//! payload that already ends its stream (BFINAL, then the first byte of the
//! stripped stored block, as libdeflate-based senders do) leaves exactly
//! that byte and the appended ones unconsumed, which inflate to nothing in
//! the streaming path too.

use std::cell::RefCell;

use crate::error::ProtocolError;

/// The largest compressed payload tried here: beyond it the per-message
/// costs this saves no longer matter next to the data.
pub(super) const MAX_INPUT: usize = 8 * 1024;

/// The thread's output buffer, and so the largest message inflated here. A
/// message that inflates to more is inflated again by the streaming path;
/// under [`MAX_INPUT`] that wasted work is bounded by this size.
const OUTPUT: usize = 64 * 1024;

/// What follows the payload: the stripped end of the sync flush's empty
/// stored block, then an empty stored block with BFINAL set.
const TAIL: [u8; 9] = [0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff];

/// What is left unconsumed when the payload ended its own stream: the first
/// byte of the empty stored block (RFC 7692 §7.2.3.3), then [`TAIL`].
const AFTER_FINAL_BLOCK: [u8; 10] = [0x00, 0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff];

/// The thread's libdeflate decompressor and buffers, made on first use.
#[derive(Default)]
struct Scratch {
    decompressor: Option<ffi::Decompressor>,
    input: Vec<u8>,
    output: Vec<u8>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// Inflates `payload`, a whole message compressed alone with at most a
/// `window_bits` window, into `out` (empty) with `check` seeing the output,
/// if it can do so exactly as the streaming path would; `None` to leave the
/// message to the streaming path, with `out` untouched.
pub(super) fn inflate(
    payload: &[u8],
    window_bits: u8,
    out: &mut Vec<u8>,
    limit: usize,
    check: &mut dyn FnMut(&[u8]) -> Result<(), ProtocolError>,
) -> Option<Result<(), ProtocolError>> {
    if payload.len() > MAX_INPUT || !out.is_empty() {
        return None;
    }
    SCRATCH
        .try_with(|scratch| {
            let mut scratch = scratch.try_borrow_mut().ok()?;
            let Scratch {
                decompressor,
                input,
                output,
            } = &mut *scratch;
            if decompressor.is_none() {
                *decompressor = ffi::Decompressor::new();
            }
            let decompressor = decompressor.as_mut()?;
            input.clear();
            input.extend_from_slice(payload);
            input.extend_from_slice(&TAIL);
            output.resize(OUTPUT, 0);
            let room = output.get_mut(..limit.min(OUTPUT))?;
            let (consumed, produced) = decompressor.inflate(input, room)?;
            let unconsumed = input.get(consumed..)?;
            if !(unconsumed.is_empty() || unconsumed == AFTER_FINAL_BLOCK) {
                return None;
            }
            if window_bits < 15 && produced > 1 << window_bits {
                return None;
            }
            let inflated = output.get(..produced)?;
            out.extend_from_slice(inflated);
            Some(check(inflated))
        })
        .ok()
        .flatten()
}

/// The one call into libdeflate that the safe `libdeflater` API lacks.
#[allow(unsafe_code)]
mod ffi {
    use std::ptr::NonNull;

    use libdeflate_sys::{
        libdeflate_alloc_decompressor, libdeflate_decompressor, libdeflate_deflate_decompress_ex,
        libdeflate_free_decompressor, libdeflate_result_LIBDEFLATE_SUCCESS,
    };

    /// An owned libdeflate decompressor.
    pub(super) struct Decompressor(NonNull<libdeflate_decompressor>);

    impl Decompressor {
        /// A new decompressor; `None` if libdeflate could not allocate one.
        pub(super) fn new() -> Option<Self> {
            // SAFETY: no preconditions; the result is null or a decompressor
            // this value owns from now on.
            NonNull::new(unsafe { libdeflate_alloc_decompressor() }).map(Self)
        }

        /// Inflates the raw deflate stream at the start of `input` into
        /// `output`: the bytes consumed and produced, or `None` for corrupt
        /// data or output that does not fit.
        pub(super) fn inflate(
            &mut self,
            input: &[u8],
            output: &mut [u8],
        ) -> Option<(usize, usize)> {
            let mut consumed = 0usize;
            let mut produced = 0usize;
            // SAFETY: the decompressor is live and borrowed exclusively (it
            // keeps no state between calls); the input and output pointers
            // are valid for their lengths for the whole call, and libdeflate
            // reads at most `input.len()` and writes at most `output.len()`
            // bytes; the two counts are written through valid pointers.
            let result = unsafe {
                libdeflate_deflate_decompress_ex(
                    self.0.as_ptr(),
                    input.as_ptr().cast(),
                    input.len(),
                    output.as_mut_ptr().cast(),
                    output.len(),
                    &mut consumed,
                    &mut produced,
                )
            };
            (result == libdeflate_result_LIBDEFLATE_SUCCESS
                && consumed <= input.len()
                && produced <= output.len())
            .then_some((consumed, produced))
        }
    }

    impl Drop for Decompressor {
        fn drop(&mut self) {
            // SAFETY: the pointer came from `libdeflate_alloc_decompressor`
            // and is freed once, here.
            unsafe { libdeflate_free_decompressor(self.0.as_ptr()) }
        }
    }
}

#[cfg(test)]
mod tests {
    use flate2::{Compress, Compression, FlushCompress};

    use super::*;

    /// Raw deflate of `data` with a sync flush and the `00 00 ff ff`
    /// stripped, the way zlib-based peers (browsers, Python) send.
    fn zlib_message(data: &[u8], bits: u8) -> Vec<u8> {
        let mut compressor = Compress::new_with_window_bits(Compression::new(6), false, bits);
        let mut out = Vec::with_capacity(data.len() * 2 + 64);
        let _ = compressor.compress_vec(data, &mut out, FlushCompress::Sync);
        assert!(out.ends_with(&[0x00, 0x00, 0xff, 0xff]));
        out.truncate(out.len() - 4);
        out
    }

    /// A message the way libdeflate-based peers (and this crate) send: a
    /// final block, then the first byte of the empty stored block.
    fn libdeflate_message(data: &[u8]) -> Vec<u8> {
        let mut compressor =
            libdeflater::Compressor::new(libdeflater::CompressionLvl::new(1).unwrap());
        let mut out = vec![0; compressor.deflate_compress_bound(data.len())];
        let written = compressor.deflate_compress(data, &mut out).unwrap();
        out.truncate(written);
        out.push(0x00);
        out
    }

    fn text(len: usize) -> Vec<u8> {
        let sentence = b"{\"id\":17,\"user\":\"user-4242\",\"tags\":[\"alpha\",\"beta\"]},";
        sentence.iter().copied().cycle().take(len).collect()
    }

    fn run(payload: &[u8], bits: u8, limit: usize) -> (Option<Result<(), ProtocolError>>, Vec<u8>) {
        let mut out = Vec::new();
        let result = inflate(payload, bits, &mut out, limit, &mut |_| Ok(()));
        (result, out)
    }

    #[test]
    fn inflates_a_sync_flushed_message_as_zlib_peers_send_it() {
        let data = text(1024);
        let (result, out) = run(&zlib_message(&data, 15), 15, usize::MAX);
        assert!(matches!(result, Some(Ok(()))));
        assert_eq!(out, data);
    }

    #[test]
    fn inflates_a_message_that_ends_its_own_stream() {
        let data = text(3000);
        let (result, out) = run(&libdeflate_message(&data), 15, usize::MAX);
        assert!(matches!(result, Some(Ok(()))));
        assert_eq!(out, data);
    }

    #[test]
    fn the_empty_message_inflates_to_nothing() {
        let (result, out) = run(&[0x00], 15, usize::MAX);
        assert!(matches!(result, Some(Ok(()))));
        assert!(out.is_empty());
    }

    #[test]
    fn a_stream_followed_by_more_data_is_left_to_the_streaming_path() {
        // Two complete streams in one message: the streaming path inflates
        // both; libdeflate would stop after the first.
        let mut payload = libdeflate_message(b"first ");
        payload.pop();
        payload.extend_from_slice(&libdeflate_message(b"second"));
        let (result, out) = run(&payload, 15, usize::MAX);
        assert!(result.is_none());
        assert!(out.is_empty());
    }

    #[test]
    fn corrupt_data_is_left_to_the_streaming_path() {
        // BTYPE 11 is reserved.
        let (result, out) = run(&[0x07, 0x00], 15, usize::MAX);
        assert!(result.is_none());
        assert!(out.is_empty());
    }

    #[test]
    fn output_over_the_limit_or_the_buffer_is_left_to_the_streaming_path() {
        let data = text(1000);
        let payload = zlib_message(&data, 15);
        assert!(run(&payload, 15, 999).0.is_none());
        assert!(matches!(run(&payload, 15, 1000).0, Some(Ok(()))));
        let big = text(OUTPUT + 1);
        let payload = zlib_message(&big, 15);
        assert!(payload.len() <= MAX_INPUT);
        assert!(run(&payload, 15, usize::MAX).0.is_none());
    }

    #[test]
    fn a_message_longer_than_a_small_negotiated_window_is_left_to_the_streaming_path() {
        let data = text(600);
        let payload = zlib_message(&data, 9);
        assert!(run(&payload, 9, usize::MAX).0.is_none());
        let short = text(512);
        let (result, out) = run(&zlib_message(&short, 9), 9, usize::MAX);
        assert!(matches!(result, Some(Ok(()))));
        assert_eq!(out, short);
    }

    #[test]
    fn large_payloads_are_not_tried() {
        let payload = vec![0u8; MAX_INPUT + 1];
        assert!(run(&payload, 15, usize::MAX).0.is_none());
    }

    #[test]
    fn check_sees_the_output_and_its_error_is_returned() {
        let payload = zlib_message(b"abc", 15);
        let mut out = Vec::new();
        let mut seen = Vec::new();
        let result = inflate(&payload, 15, &mut out, usize::MAX, &mut |piece| {
            seen.extend_from_slice(piece);
            Err(ProtocolError::InvalidUtf8)
        });
        assert!(matches!(result, Some(Err(ProtocolError::InvalidUtf8))));
        assert_eq!(seen, b"abc");
    }
}
