//! Incremental UTF-8 validation for text messages that arrive in pieces.
//!
//! RFC 6455 §8.1 asks an endpoint to fail the connection as soon as a text
//! message is known to be invalid. A message arrives frame by frame and a frame
//! segment by segment, so the validator is fed arbitrary pieces and reports an
//! error as soon as the bytes seen so far can no longer start a valid string:
//! overlong forms, surrogates (`ED A0..BF`) and code points above U+10FFFF fail
//! on the byte that makes them impossible, not at the end of the message.

/// The longest UTF-8 sequence.
const MAX_SEQUENCE: usize = 4;

/// The bytes were not valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

/// Validates a byte stream as UTF-8, piece by piece.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    /// The start of a code point that the last piece ended inside of.
    pending: [u8; MAX_SEQUENCE],
    /// At most 4: a byte keeps the validator (and every connection) small.
    pending_len: u8,
}

impl Utf8Validator {
    /// A validator at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets any partial code point, ready for a new message.
    pub fn reset(&mut self) {
        self.pending_len = 0;
    }

    /// Validates the next piece of the stream.
    ///
    /// Fails as soon as the stream so far cannot be the beginning of valid
    /// UTF-8. A piece that ends inside a code point is fine until
    /// [`finish`](Self::finish) is called.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), InvalidUtf8> {
        if self.pending_len > 0 {
            input = self.complete_pending(input)?;
            if self.pending_len > 0 {
                // The whole piece went into the still incomplete code point.
                return Ok(());
            }
        }
        match std::str::from_utf8(input) {
            Ok(_) => Ok(()),
            Err(error) => match error.error_len() {
                Some(_) => Err(InvalidUtf8),
                // A valid prefix of a code point, cut off by the piece's end.
                None => {
                    let tail = input.get(error.valid_up_to()..).unwrap_or_default();
                    self.stash(tail)
                }
            },
        }
    }

    /// Ends the stream: fails if it stopped inside a code point.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let complete = self.pending_len == 0;
        self.reset();
        if complete { Ok(()) } else { Err(InvalidUtf8) }
    }

    /// Feeds bytes into the pending code point until it is complete; returns
    /// the rest of the input.
    fn complete_pending<'a>(&mut self, input: &'a [u8]) -> Result<&'a [u8], InvalidUtf8> {
        let mut rest = input;
        while let Some((&byte, tail)) = rest.split_first() {
            let slot = self
                .pending
                .get_mut(usize::from(self.pending_len))
                .ok_or(InvalidUtf8)?;
            *slot = byte;
            self.pending_len += 1;
            rest = tail;
            let candidate = self
                .pending
                .get(..usize::from(self.pending_len))
                .ok_or(InvalidUtf8)?;
            match std::str::from_utf8(candidate) {
                Ok(_) => {
                    self.pending_len = 0;
                    return Ok(rest);
                }
                Err(error) if error.error_len().is_some() => return Err(InvalidUtf8),
                Err(_) => {}
            }
        }
        Ok(rest)
    }

    fn stash(&mut self, tail: &[u8]) -> Result<(), InvalidUtf8> {
        let slot = self.pending.get_mut(..tail.len()).ok_or(InvalidUtf8)?;
        slot.copy_from_slice(tail);
        // `slot` exists, so the tail is at most 4 bytes long.
        self.pending_len = u8::try_from(tail.len()).map_err(|_| InvalidUtf8)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate_in_pieces(bytes: &[u8], piece: usize) -> Result<(), InvalidUtf8> {
        let mut validator = Utf8Validator::new();
        for chunk in bytes.chunks(piece.max(1)) {
            validator.feed(chunk)?;
        }
        validator.finish()
    }

    #[test]
    fn accepts_valid_text_split_anywhere() {
        let text = "κόσμε ascii 𝄞 日本語 \u{10FFFF}".as_bytes();
        for piece in 1..=text.len() {
            assert_eq!(validate_in_pieces(text, piece), Ok(()), "piece {piece}");
        }
    }

    #[test]
    fn message_ending_inside_a_code_point_is_invalid() {
        let mut validator = Utf8Validator::new();
        assert_eq!(validator.feed(&[0xce, 0xba, 0xe1]), Ok(()));
        assert_eq!(validator.finish(), Err(InvalidUtf8));
    }

    #[test]
    fn surrogate_fails_on_its_second_byte() {
        let mut validator = Utf8Validator::new();
        assert_eq!(validator.feed(b"ok \xed"), Ok(()));
        assert_eq!(validator.feed(b"\xa0"), Err(InvalidUtf8));
    }

    #[test]
    fn code_point_above_u10ffff_fails_on_its_second_byte() {
        let mut validator = Utf8Validator::new();
        assert_eq!(validator.feed(b"\xf4"), Ok(()));
        assert_eq!(validator.feed(b"\x90"), Err(InvalidUtf8));
    }

    #[test]
    fn overlong_forms_fail_immediately() {
        for prefix in [&b"\xc0"[..], b"\xc1", b"\xe0\x80", b"\xf0\x80", b"\xf5"] {
            let mut validator = Utf8Validator::new();
            let mut fed = Ok(());
            for byte in prefix {
                fed = validator.feed(std::slice::from_ref(byte));
                if fed.is_err() {
                    break;
                }
            }
            assert_eq!(fed, Err(InvalidUtf8), "{prefix:x?}");
        }
    }

    #[test]
    fn invalid_byte_after_long_valid_prefix_fails_at_that_piece() {
        let mut validator = Utf8Validator::new();
        assert_eq!(validator.feed("κόσμε".as_bytes()), Ok(()));
        assert_eq!(validator.feed(b"\xff"), Err(InvalidUtf8));
    }

    #[test]
    fn reset_forgets_a_partial_code_point() {
        let mut validator = Utf8Validator::new();
        assert_eq!(validator.feed(&[0xe2, 0x82]), Ok(()));
        validator.reset();
        assert_eq!(validator.feed(b"plain"), Ok(()));
        assert_eq!(validator.finish(), Ok(()));
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_std_for_any_bytes_and_split(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64), piece in 1usize..8) {
            let expected = std::str::from_utf8(&bytes).is_ok();
            proptest::prop_assert_eq!(validate_in_pieces(&bytes, piece).is_ok(), expected);
        }
    }
}
