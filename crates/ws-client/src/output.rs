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
    /// Escape control characters (stdout is a terminal).
    escape: bool,
    /// What ends each message: `\n`, or NUL with `-0`.
    terminator: u8,
    /// Written before each message (the interactive `< ` mark).
    mark: String,
}

impl<W: Write> Printer<W> {
    /// A printer writing to `out`, binary messages in `format`, each message
    /// followed by a newline (nothing for `Raw`), bytes exactly as received.
    pub fn new(out: W, format: OutputFormat) -> Self {
        Self {
            out,
            format,
            escape: false,
            terminator: b'\n',
            mark: String::new(),
        }
    }

    /// Escapes control characters (and invalid UTF-8 of binary messages
    /// shown as text) so that a peer cannot drive the terminal: for stdout
    /// on a terminal. Newlines and tabs stay.
    #[must_use]
    pub fn escaping(mut self, escape: bool) -> Self {
        self.escape = escape;
        self
    }

    /// Ends messages with `terminator` instead of a newline.
    #[must_use]
    pub fn terminator(mut self, terminator: u8) -> Self {
        self.terminator = terminator;
        self
    }

    /// Writes `mark` before each message.
    #[must_use]
    pub fn mark(mut self, mark: impl Into<String>) -> Self {
        self.mark = mark.into();
        self
    }

    /// Writes a text message and the terminator.
    pub fn text(&mut self, text: &[u8]) -> io::Result<()> {
        self.out.write_all(self.mark.as_bytes())?;
        if self.escape {
            self.out.write_all(escape_control(text).as_bytes())?;
        } else {
            self.out.write_all(text)?;
        }
        self.out.write_all(&[self.terminator])?;
        self.out.flush()
    }

    /// Writes a binary message in the configured format.
    pub fn binary(&mut self, data: &[u8]) -> io::Result<()> {
        self.out.write_all(self.mark.as_bytes())?;
        match self.format {
            OutputFormat::Text if self.escape => {
                self.out.write_all(escape_control(data).as_bytes())?;
                self.out.write_all(&[self.terminator])?;
            }
            OutputFormat::Text => {
                self.out.write_all(data)?;
                self.out.write_all(&[self.terminator])?;
            }
            OutputFormat::Hex => {
                self.out.write_all(encode_hex(data).as_bytes())?;
                self.out.write_all(&[self.terminator])?;
            }
            OutputFormat::Base64 => {
                self.out.write_all(STANDARD.encode(data).as_bytes())?;
                self.out.write_all(&[self.terminator])?;
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

/// `bytes` made safe for a terminal: control characters other than newline
/// and tab (C0, DEL, C1) become `\x1b`-style escapes, `\u{..}` above U+00FF,
/// and bytes that are not UTF-8 become `\xNN`. A backslash stays as it is.
pub fn escape_control(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() && c != '\n' && c != '\t' {
                let code = u32::from(c);
                if code <= 0xff {
                    out.push_str(&format!("\\x{code:02x}"));
                } else {
                    out.push_str(&format!("\\u{{{code:04x}}}"));
                }
            } else {
                out.push(c);
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// Whether interactive output may use colours: not with `--no-color`, nor
/// when `NO_COLOR` is set to anything non-empty (<https://no-color.org>).
pub fn colours_wanted(no_color_flag: bool, no_color_env: Option<&str>) -> bool {
    !no_color_flag && no_color_env.is_none_or(str::is_empty)
}

/// ANSI styles for the interactive mode, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Palette {
    colour: bool,
}

impl Palette {
    /// Styles if `colour`, plain text otherwise.
    pub fn new(colour: bool) -> Self {
        Self { colour }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// The mark of a received message.
    pub fn received(self, text: &str) -> String {
        self.paint("32", text)
    }

    /// The input prompt.
    pub fn prompt(self, text: &str) -> String {
        self.paint("1", text)
    }

    /// A status line (connected, pong, close).
    pub fn status(self, text: &str) -> String {
        self.paint("36", text)
    }

    /// A problem the user should see.
    pub fn problem(self, text: &str) -> String {
        self.paint("31", text)
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
    fn escaping_printer_neutralises_terminal_controls() {
        let out = printed(OutputFormat::Text, |p| {
            let mut escaping = Printer::new(Vec::new(), OutputFormat::Text).escaping(true);
            escaping
                .text(b"\x1b]0;pwned\x07tab\there\nnext\r\x7f\xc2\x9b")
                .unwrap();
            escaping.binary(b"bin\xff\x1b[2J").unwrap();
            p.text(escaping.get_ref()).unwrap();
        });
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\\x1b]0;pwned\\x07tab\there\nnext\\x0d\\x7f\\x9b\nbin\\xff\\x1b[2J\n\n"
        );
    }

    #[test]
    fn printer_without_escaping_keeps_the_bytes_exact() {
        let out = printed(OutputFormat::Text, |p| p.text(b"\x1b[31mred\x07").unwrap());
        assert_eq!(out, b"\x1b[31mred\x07\n");
    }

    #[test]
    fn mark_and_nul_terminator_frame_each_message() {
        let mut printer = Printer::new(Vec::new(), OutputFormat::Hex)
            .terminator(0)
            .mark("< ");
        printer.text(b"a").unwrap();
        printer.binary(b"\x01").unwrap();
        assert_eq!(printer.get_ref(), b"< a\0< 01\0");
    }

    #[test]
    fn colours_follow_no_color_and_the_flag() {
        assert!(colours_wanted(false, None));
        assert!(colours_wanted(false, Some("")));
        assert!(!colours_wanted(false, Some("1")));
        assert!(!colours_wanted(true, None));
        assert_eq!(Palette::new(false).received("< "), "< ");
        assert_eq!(Palette::new(true).received("< "), "\x1b[32m< \x1b[0m");
    }
}
