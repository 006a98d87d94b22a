//! Payload masking (RFC 6455 §5.3).
//!
//! Masking XORs every payload byte with one of four key bytes, chosen by the
//! byte's position in the payload. Payloads can be processed in pieces (a frame
//! whose bytes trickle in), so every function takes the position of the first
//! byte of the slice within the payload.

/// Width of the block the hot loop works on; a multiple of 8 so that the key
/// pattern repeats exactly, and wide enough for the compiler to use vector
/// registers.
const BLOCK: usize = 32;

/// The key rotated so that index 0 applies to payload position `offset`.
fn rotated(key: [u8; 4], offset: usize) -> [u8; 4] {
    // Byte i of a little-endian word is its bits 8i..8i+8: moving every
    // byte `offset % 4` places towards index 0 is a right rotation.
    let shift = 8 * (offset % 4) as u32;
    u32::from_le_bytes(key).rotate_right(shift).to_le_bytes()
}

/// The rotated key repeated over a whole block.
fn pattern(key: [u8; 4]) -> [u8; BLOCK] {
    let mut out = [0; BLOCK];
    for (byte, key_byte) in out.iter_mut().zip(key.iter().cycle()) {
        *byte = *key_byte;
    }
    out
}

/// Masks or unmasks `buf` in place.
///
/// `offset` is the position of `buf[0]` within the frame's payload, so a
/// payload can be unmasked piece by piece as it arrives.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotated(key, offset);
    let (blocks, rest) = buf.as_chunks_mut::<BLOCK>();
    if !blocks.is_empty() {
        let block_pattern = pattern(key);
        for block in blocks {
            for (byte, mask) in block.iter_mut().zip(block_pattern) {
                *byte ^= mask;
            }
        }
    }
    // The rest starts at a multiple of BLOCK, itself a multiple of 8, so the
    // rotated key still lines up with it. Eight bytes at a time, as one
    // word: most frames are small, and a byte loop cycling through the key
    // cost about ten instructions per byte, more than the rest of a small
    // echo's framing.
    let key_word = u32::from_ne_bytes(key);
    let (words, rest) = rest.as_chunks_mut::<8>();
    if !words.is_empty() {
        // The key twice: symmetric, so the same in either byte order.
        let double = u64::from(key_word) | (u64::from(key_word) << 32);
        for word in words {
            *word = (u64::from_ne_bytes(*word) ^ double).to_ne_bytes();
        }
    }
    let (quads, tail) = rest.as_chunks_mut::<4>();
    for quad in quads {
        *quad = (u32::from_ne_bytes(*quad) ^ key_word).to_ne_bytes();
    }
    for (byte, mask) in tail.iter_mut().zip(key) {
        *byte ^= mask;
    }
}

/// Appends `src` masked with `key` to `dst`: one pass that copies and masks.
pub(crate) fn extend_masked(dst: &mut bytes::BytesMut, src: &[u8], key: [u8; 4]) {
    let start = dst.len();
    dst.extend_from_slice(src);
    if let Some(appended) = dst.get_mut(start..) {
        apply_mask(appended, key, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(buf: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, byte) in buf.iter_mut().enumerate() {
            *byte ^= key[(offset + i) % 4];
        }
    }

    #[test]
    fn matches_bytewise_reference_for_every_length_and_offset() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        for len in 0..=64 {
            for offset in 0..8 {
                let original: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let mut fast = original.clone();
                let mut slow = original.clone();
                apply_mask(&mut fast, key, offset);
                reference(&mut slow, key, offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn masking_twice_restores_the_payload() {
        let original: Vec<u8> = (0..=255).collect();
        let mut buf = original.clone();
        apply_mask(&mut buf, [1, 2, 3, 4], 5);
        assert_ne!(buf, original);
        apply_mask(&mut buf, [1, 2, 3, 4], 5);
        assert_eq!(buf, original);
    }

    #[test]
    fn unmasking_in_pieces_equals_unmasking_whole() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        let original: Vec<u8> = (0..200u8).collect();
        let mut whole = original.clone();
        apply_mask(&mut whole, key, 0);
        for split in 0..original.len() {
            let mut pieces = original.clone();
            let (a, b) = pieces.split_at_mut(split);
            apply_mask(a, key, 0);
            apply_mask(b, key, split);
            assert_eq!(pieces, whole, "split at {split}");
        }
    }

    #[test]
    fn rfc_6455_masked_hello() {
        let mut payload = *b"Hello";
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(payload, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    #[test]
    fn extend_masked_appends_masked_copy() {
        let mut dst = bytes::BytesMut::from(&b"hdr"[..]);
        extend_masked(&mut dst, b"Hello", [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(&dst[..], b"hdr\x7f\x9f\x4d\x51\x58");
    }
}
