//! Frame headers (RFC 6455 §5.2): decoding from partial input and encoding
//! with the minimal length form.
//!
//! Only the header is handled here; payloads are unmasked and assembled by
//! the [`protocol`](crate::protocol) layer so that they can stay in the read
//! buffer and leave it without a copy.

use bytes::{BufMut, BytesMut};

use crate::error::ProtocolError;
use crate::mask;

/// The longest header: 2 bytes, an 8-byte length and a 4-byte mask key.
pub(crate) const MAX_HEADER_LEN: usize = 14;

/// The largest payload a control frame may carry.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// A further fragment of a text or binary message.
    Continuation,
    /// The first (or only) frame of a text message.
    Text,
    /// The first (or only) frame of a binary message.
    Binary,
    /// The closing handshake.
    Close,
    /// A keep-alive or liveness probe; answered with a pong.
    Ping,
    /// The answer to a ping, or an unsolicited heartbeat.
    Pong,
}

impl OpCode {
    /// Parses the 4-bit opcode; reserved values are a protocol error.
    pub fn from_bits(bits: u8) -> Result<Self, ProtocolError> {
        Ok(match bits {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            other => return Err(ProtocolError::ReservedOpcode(other)),
        })
    }

    /// The 4-bit value on the wire.
    pub fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// Close, ping and pong: never fragmented, at most 125 bytes.
    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// A frame header as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// This is the last frame of its message.
    pub fin: bool,
    /// The three reserved bits, RSV1 as `0b100`, RSV2 as `0b010`, RSV3 as `0b001`.
    pub rsv: u8,
    /// What the frame carries.
    pub opcode: OpCode,
    /// The masking key, present on every frame a client sends.
    pub mask: Option<[u8; 4]>,
    /// The number of payload bytes that follow the header.
    pub payload_len: u64,
}

impl FrameHeader {
    /// A final, unmasked frame header with no reserved bits.
    pub fn new(opcode: OpCode, payload_len: u64) -> Self {
        Self {
            fin: true,
            rsv: 0,
            opcode,
            mask: None,
            payload_len,
        }
    }

    /// Decodes a header from the start of `buf`.
    ///
    /// Returns `Ok(None)` while fewer bytes than the whole header have
    /// arrived, or the header and its length. Rejects what no configuration
    /// can make valid: reserved opcodes, a 64-bit length with the top bit set,
    /// fragmented or oversized control frames.
    pub fn decode(buf: &[u8]) -> Result<Option<(Self, usize)>, ProtocolError> {
        let [first, second, rest @ ..] = buf else {
            return Ok(None);
        };
        let fin = first & 0x80 != 0;
        let rsv = (first >> 4) & 0x07;
        let opcode = OpCode::from_bits(first & 0x0F)?;
        let masked = second & 0x80 != 0;
        let (payload_len, len_bytes) = match second & 0x7F {
            126 => match rest {
                [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 2),
                _ => return Ok(None),
            },
            127 => match rest.first_chunk::<8>() {
                Some(bytes) => {
                    let len = u64::from_be_bytes(*bytes);
                    if len & (1 << 63) != 0 {
                        return Err(ProtocolError::LengthOverflow);
                    }
                    (len, 8)
                }
                None => return Ok(None),
            },
            short => (u64::from(short), 0),
        };
        if opcode.is_control() {
            if !fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(ProtocolError::ControlFrameTooLong(payload_len));
            }
        }
        let mask = if masked {
            match rest.get(len_bytes..len_bytes + 4) {
                Some(&[a, b, c, d]) => Some([a, b, c, d]),
                _ => return Ok(None),
            }
        } else {
            None
        };
        let header = Self {
            fin,
            rsv,
            opcode,
            mask,
            payload_len,
        };
        Ok(Some((header, header.encoded_len())))
    }

    /// The number of bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        let len_bytes = match self.payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        2 + len_bytes + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Appends the header with the shortest length encoding.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_slice(self.encode_into(&mut [0; MAX_HEADER_LEN]));
    }

    /// Writes the header with the shortest length encoding into `bytes` and
    /// returns the part written. Built on the stack and appended in one
    /// copy: byte by byte, every `put` checked the buffer's room again.
    pub(crate) fn encode_into<'b>(&self, bytes: &'b mut [u8; MAX_HEADER_LEN]) -> &'b [u8] {
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        bytes[0] = (u8::from(self.fin) << 7) | ((self.rsv & 0x07) << 4) | self.opcode.bits();
        let mut len = match self.payload_len {
            short @ 0..=125 => {
                bytes[1] = mask_bit | short as u8;
                2
            }
            medium @ 126..=0xFFFF => {
                bytes[1] = mask_bit | 126;
                bytes[2..4].copy_from_slice(&(medium as u16).to_be_bytes());
                4
            }
            long => {
                bytes[1] = mask_bit | 127;
                bytes[2..10].copy_from_slice(&long.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask
            && let Some(slot) = bytes.get_mut(len..len + 4)
        {
            slot.copy_from_slice(&key);
            len += 4;
        }
        bytes.get(..len).unwrap_or_default()
    }
}

/// Appends a whole frame: the header, then the payload, masked with the
/// header's key when it has one.
///
/// The header's `payload_len` is set from `payload`.
pub fn encode_frame(out: &mut BytesMut, mut header: FrameHeader, payload: &[u8]) {
    header.payload_len = payload.len() as u64;
    out.reserve(header.encoded_len() + payload.len());
    header.encode(out);
    match header.mask {
        Some(key) => mask::extend_masked(out, payload, key),
        None => out.extend_from_slice(payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> (FrameHeader, usize) {
        FrameHeader::decode(bytes).unwrap().unwrap()
    }

    fn encoded(header: FrameHeader, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode_frame(&mut out, header, payload);
        out.to_vec()
    }

    // RFC 6455 §5.7 examples, byte for byte.

    #[test]
    fn rfc_single_frame_unmasked_text() {
        let bytes = encoded(FrameHeader::new(OpCode::Text, 0), b"Hello");
        assert_eq!(bytes, [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    }

    #[test]
    fn rfc_single_frame_masked_text() {
        let header = FrameHeader {
            mask: Some([0x37, 0xfa, 0x21, 0x3d]),
            ..FrameHeader::new(OpCode::Text, 0)
        };
        let bytes = encoded(header, b"Hello");
        assert_eq!(
            bytes,
            [
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
            ]
        );
    }

    #[test]
    fn rfc_fragmented_unmasked_text() {
        let first = FrameHeader {
            fin: false,
            ..FrameHeader::new(OpCode::Text, 0)
        };
        assert_eq!(encoded(first, b"Hel"), [0x01, 0x03, 0x48, 0x65, 0x6c]);
        let last = FrameHeader::new(OpCode::Continuation, 0);
        assert_eq!(encoded(last, b"lo"), [0x80, 0x02, 0x6c, 0x6f]);
    }

    #[test]
    fn rfc_unmasked_ping_and_masked_pong() {
        let ping = encoded(FrameHeader::new(OpCode::Ping, 0), b"Hello");
        assert_eq!(ping, [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        let pong = FrameHeader {
            mask: Some([0x37, 0xfa, 0x21, 0x3d]),
            ..FrameHeader::new(OpCode::Pong, 0)
        };
        assert_eq!(
            encoded(pong, b"Hello"),
            [
                0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
            ]
        );
    }

    #[test]
    fn rfc_256_byte_binary_uses_16_bit_length() {
        let bytes = encoded(FrameHeader::new(OpCode::Binary, 0), &[0; 256]);
        assert_eq!(bytes[..4], [0x82, 0x7E, 0x01, 0x00]);
        assert_eq!(bytes.len(), 4 + 256);
        assert_eq!(decode_all(&bytes).0.payload_len, 256);
    }

    #[test]
    fn rfc_64_kib_binary_uses_64_bit_length() {
        let bytes = encoded(FrameHeader::new(OpCode::Binary, 0), &[0; 65536]);
        assert_eq!(
            bytes[..10],
            [0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]
        );
        assert_eq!(decode_all(&bytes).0.payload_len, 65536);
    }

    #[test]
    fn length_encoding_is_minimal_at_each_boundary() {
        for (len, header_len) in [(125, 2), (126, 4), (0xFFFF, 4), (0x1_0000, 10)] {
            let header = FrameHeader::new(OpCode::Binary, len);
            assert_eq!(header.encoded_len(), header_len, "len {len}");
            let mut out = BytesMut::new();
            header.encode(&mut out);
            assert_eq!(out.len(), header_len);
            assert_eq!(decode_all(&out), (header, header_len));
        }
    }

    #[test]
    fn partial_header_needs_more_bytes() {
        let header = FrameHeader {
            mask: Some([1, 2, 3, 4]),
            ..FrameHeader::new(OpCode::Binary, 70000)
        };
        let mut out = BytesMut::new();
        header.encode(&mut out);
        assert_eq!(out.len(), MAX_HEADER_LEN);
        for cut in 0..out.len() {
            assert_eq!(FrameHeader::decode(&out[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(decode_all(&out), (header, MAX_HEADER_LEN));
    }

    #[test]
    fn rejects_64_bit_length_with_top_bit_set() {
        let bytes = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            FrameHeader::decode(&bytes),
            Err(ProtocolError::LengthOverflow)
        );
    }

    #[test]
    fn accepts_largest_legal_64_bit_length() {
        let bytes = [0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert_eq!(decode_all(&bytes).0.payload_len, i64::MAX as u64);
    }

    #[test]
    fn rejects_reserved_opcodes() {
        for bits in (3..=7).chain(11..=15) {
            assert_eq!(
                FrameHeader::decode(&[0x80 | bits, 0]),
                Err(ProtocolError::ReservedOpcode(bits))
            );
        }
    }

    #[test]
    fn rejects_fragmented_ping() {
        assert_eq!(
            FrameHeader::decode(&[0x09, 0x00]),
            Err(ProtocolError::FragmentedControlFrame)
        );
    }

    #[test]
    fn rejects_control_frame_over_125_bytes() {
        assert_eq!(
            FrameHeader::decode(&[0x89, 0x7E, 0x00, 0x7E]),
            Err(ProtocolError::ControlFrameTooLong(126))
        );
    }

    #[test]
    fn reserved_bits_are_decoded() {
        let (header, _) = decode_all(&[0xC1, 0x00]);
        assert_eq!(header.rsv, 0b100);
        assert!(header.fin);
    }

    proptest::proptest! {
        #[test]
        fn encode_decode_round_trip(
            fin: bool,
            rsv in 0u8..8,
            opcode in proptest::sample::select(vec![OpCode::Continuation, OpCode::Text, OpCode::Binary, OpCode::Close, OpCode::Ping, OpCode::Pong]),
            mask: Option<[u8; 4]>,
            len in proptest::prop_oneof![0u64..=125, 126u64..=0xFFFF, 0x1_0000u64..=i64::MAX as u64],
        ) {
            let header = FrameHeader { fin, rsv, opcode, mask, payload_len: len };
            let mut out = BytesMut::new();
            header.encode(&mut out);
            let valid_control = !opcode.is_control() || (fin && len <= 125);
            match FrameHeader::decode(&out) {
                Ok(Some(decoded)) => {
                    proptest::prop_assert!(valid_control);
                    proptest::prop_assert_eq!(decoded, (header, out.len()));
                }
                Ok(None) => proptest::prop_assert!(false, "complete header reported as partial"),
                Err(_) => proptest::prop_assert!(!valid_control),
            }
        }
    }
}
