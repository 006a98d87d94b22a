//! How received messages reach stdout, and control frames stderr.
//!
//! stdout carries data only, one message per line (or raw bytes with
//! `--output raw`), flushed per message so a pipe sees each one as it
//! arrives. Everything else goes to stderr.

use std::io::{self, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::cli::OutputFormat;
// Shared with the load generator, so they live in ws-bench (ws-client
// depends on it); re-exported where they always were.
pub use ws_bench::describe::{describe_close, describe_payload, encode_hex};

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
}
