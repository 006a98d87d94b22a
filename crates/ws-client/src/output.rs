//! How received messages reach stdout, and control frames stderr.
//!
//! stdout carries data only, one message per line (or raw bytes with
//! `--output raw`), flushed per message so a pipe sees each one as it
//! arrives. Everything else goes to stderr.

use std::io::{self, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ws_core::{CloseCode, CloseFrame};

use crate::cli::OutputFormat;

/// Writes received data messages.
#[derive(Debug)]
pub struct Printer<W> {
    out: W,
    format: OutputFormat,
}

impl<W: Write> Printer<W> {
    /// A printer writing to `out`, binary messages in `format`.
    pub fn new(out: W, format: OutputFormat) -> Self {
        Self { out, format }
    }

    /// Writes a text message and a newline.
    pub fn text(&mut self, text: &[u8]) -> io::Result<()> {
        self.out.write_all(text)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }

    /// Writes a binary message in the configured format.
    pub fn binary(&mut self, data: &[u8]) -> io::Result<()> {
        match self.format {
            OutputFormat::Text => {
                self.out.write_all(data)?;
                self.out.write_all(b"\n")?;
            }
            OutputFormat::Hex => {
                self.out.write_all(encode_hex(data).as_bytes())?;
                self.out.write_all(b"\n")?;
            }
            OutputFormat::Base64 => {
                self.out.write_all(STANDARD.encode(data).as_bytes())?;
                self.out.write_all(b"\n")?;
            }
            OutputFormat::Raw => self.out.write_all(data)?,
        }
        self.out.flush()
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }
}

/// Lowercase hexadecimal, two digits per byte.
pub fn encode_hex(data: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(data.len() * 2);
    for byte in data {
        for nibble in [byte >> 4, byte & 0x0f] {
            text.push(char::from(
                DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'?'),
            ));
        }
    }
    text
}

/// A control frame payload for a diagnostic line: the text when it is
/// printable UTF-8, `0x`-prefixed hex otherwise.
pub fn describe_payload(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(text) if !text.chars().any(char::is_control) => text.to_owned(),
        _ => format!("0x{}", encode_hex(payload)),
    }
}

/// A close frame for a diagnostic line: `1000 (normal closure) reason`;
/// a close without a code shows as 1005.
pub fn describe_close(frame: Option<&CloseFrame>) -> String {
    match frame {
        None => CloseCode::NO_STATUS.to_string(),
        Some(frame) if frame.reason.is_empty() => frame.code.to_string(),
        Some(frame) => format!(
            "{} {}",
            frame.code,
            describe_payload(frame.reason.as_bytes())
        ),
    }
}

/// Writes a diagnostic line on stderr. A closed or full stderr must not
/// end the session, so write errors are ignored.
pub fn note(line: &str) {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printed(format: OutputFormat, write: impl FnOnce(&mut Printer<Vec<u8>>)) -> Vec<u8> {
        let mut printer = Printer::new(Vec::new(), format);
        write(&mut printer);
        printer.get_ref().clone()
    }

    #[test]
    fn text_message_is_printed_as_is_with_a_newline() {
        let out = printed(OutputFormat::Hex, |p| p.text(b"Hello, World").unwrap());
        assert_eq!(out, b"Hello, World\n");
    }

    #[test]
    fn binary_as_text_is_the_bytes_and_a_newline() {
        let out = printed(OutputFormat::Text, |p| p.binary(b"a\xffb").unwrap());
        assert_eq!(out, b"a\xffb\n");
    }

    #[test]
    fn binary_as_hex_is_lowercase() {
        let out = printed(OutputFormat::Hex, |p| {
            p.binary(&[0x00, 0xab, 0xff]).unwrap()
        });
        assert_eq!(out, b"00abff\n");
    }

    #[test]
    fn binary_as_base64_is_standard_with_padding() {
        let out = printed(OutputFormat::Base64, |p| p.binary(b"\xfb\xff").unwrap());
        assert_eq!(out, b"+/8=\n");
    }

    #[test]
    fn binary_as_raw_adds_nothing() {
        let out = printed(OutputFormat::Raw, |p| {
            p.binary(b"\x00\n").unwrap();
            p.binary(b"\xff").unwrap();
        });
        assert_eq!(out, b"\x00\n\xff");
    }

    #[test]
    fn printable_payload_is_shown_as_text_else_hex() {
        assert_eq!(describe_payload(b"keepalive"), "keepalive");
        assert_eq!(describe_payload(b"\x00\x01"), "0x0001");
        assert_eq!(describe_payload(b""), "");
    }

    #[test]
    fn close_is_described_with_code_name_and_reason() {
        assert_eq!(
            describe_close(Some(&CloseFrame::new(CloseCode::NORMAL, "bye"))),
            "1000 (normal closure) bye"
        );
        assert_eq!(
            describe_close(Some(&CloseFrame::new(CloseCode(4000), ""))),
            "4000"
        );
        assert_eq!(describe_close(None), "1005 (no status received)");
    }
}
