//! Where the messages to send come from: the arguments, a file, or stdin.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::sync::mpsc;
use ws_core::Message;

use crate::cli::Cli;
use crate::failure::{Exit, Failure, io_message};
use crate::jsonrpc::JsonRpc;

/// How many stdin lines may wait for the connection; past that the reader
/// thread blocks, so a fast producer cannot fill memory.
const LINE_QUEUE: usize = 64;

/// One thing to send.
#[derive(Debug)]
pub enum Item {
    /// A message known up front.
    Message(Message),
    /// A line of stdin, without its line ending; `number` counts from 1.
    Line {
        /// The line's bytes.
        bytes: Vec<u8>,
        /// Its position in the input, for error messages.
        number: usize,
    },
    /// Ctrl-C in the line editor: close as on SIGINT.
    Interrupt,
}

/// The source of messages to send.
#[derive(Debug)]
pub enum Input {
    /// Messages known before connecting (arguments, a file).
    Items(VecDeque<Message>),
    /// Lines read from stdin by a thread, as they are typed or piped.
    Lines {
        /// Lines from the reader thread; closed at end of input.
        lines: mpsc::Receiver<io::Result<Vec<u8>>>,
        /// Lines handed out so far.
        count: usize,
    },
    /// Nothing to send (`--echo` without messages).
    Nothing,
}

impl Input {
    /// The next item, or `None` at the end of the input. Cancel-safe.
    pub async fn next(&mut self) -> Option<Result<Item, Failure>> {
        match self {
            Self::Items(items) => items.pop_front().map(|message| Ok(Item::Message(message))),
            Self::Lines { lines, count } => match lines.recv().await? {
                Ok(bytes) => {
                    *count += 1;
                    Some(Ok(Item::Line {
                        bytes,
                        number: *count,
                    }))
                }
                // The line editor's Ctrl-C (the stdin reader retries
                // interrupted reads, so it never sends this).
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {
                    Some(Ok(Item::Interrupt))
                }
                Err(error) => Some(Err(Failure::new(
                    Exit::Other,
                    format!("cannot read stdin: {}", io_message(&error)),
                ))),
            },
            Self::Nothing => None,
        }
    }

    /// Whether the input is stdin lines.
    pub fn is_lines(&self) -> bool {
        matches!(self, Self::Lines { .. })
    }
}

/// A channel for lines from a reader thread, bounded so that a fast
/// producer waits instead of filling memory.
pub fn line_channel() -> (mpsc::Sender<io::Result<Vec<u8>>>, Input) {
    let (sender, receiver) = mpsc::channel(LINE_QUEUE);
    (
        sender,
        Input::Lines {
            lines: receiver,
            count: 0,
        },
    )
}

/// Starts a thread that reads stdin line by line (NUL-separated pieces with
/// `nul`).
///
/// A thread rather than async stdin: a blocking read of a terminal cannot be
/// cancelled, and the process must be able to exit while one is pending.
pub fn stdin_lines(nul: bool) -> Result<Input, Failure> {
    let (sender, input) = line_channel();
    std::thread::Builder::new()
        .name("stdin".to_owned())
        .spawn(move || {
            if nul {
                read_separated(io::stdin().lock(), b'\0', &sender);
            } else {
                read_lines(io::stdin().lock(), &sender);
            }
        })
        .map_err(|error| {
            Failure::new(
                Exit::Other,
                format!("cannot start the stdin reader: {}", io_message(&error)),
            )
        })?;
    Ok(input)
}

/// Sends each line of `reader` (without `\n` or `\r\n`) until the end of the
/// input, the first error, or the receiver going away.
pub fn read_lines<R: BufRead>(reader: R, sender: &mpsc::Sender<io::Result<Vec<u8>>>) {
    read_separated(reader, b'\n', sender);
}

/// Sends each piece of `reader` ended by `separator` (without it; a line's
/// `\r\n` too when the separator is `\n`) until the end of the input, the
/// first error, or the receiver going away.
pub fn read_separated<R: BufRead>(
    mut reader: R,
    separator: u8,
    sender: &mpsc::Sender<io::Result<Vec<u8>>>,
) {
    loop {
        let mut line = Vec::new();
        match reader.read_until(separator, &mut line) {
            Ok(0) => return,
            Ok(_) => {
                if separator == b'\n' {
                    strip_line_ending(&mut line);
                } else if line.last() == Some(&separator) {
                    line.pop();
                }
                if sender.blocking_send(Ok(line)).is_err() {
                    return;
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => {
                let _ = sender.blocking_send(Err(error));
                return;
            }
        }
    }
}

/// Removes a trailing `\n` or `\r\n`.
pub fn strip_line_ending(line: &mut Vec<u8>) {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
}

/// How input lines and MESSAGE arguments become messages.
#[derive(Debug, Clone)]
pub enum Encoder {
    /// Text messages (the default, `-t`): the input must be UTF-8.
    Text,
    /// The bytes as binary messages (`-b`).
    Binary,
    /// Base64 decoded into binary messages (`--base64`).
    Base64,
    /// JSON-RPC 2.0 requests (`--jsonrpc`).
    JsonRpc(JsonRpc),
}

impl Encoder {
    /// The encoding the arguments ask for.
    pub fn from_cli(cli: &Cli) -> Self {
        if cli.base64 {
            Self::Base64
        } else if cli.jsonrpc {
            Self::JsonRpc(JsonRpc::default())
        } else if cli.binary {
            Self::Binary
        } else {
            Self::Text
        }
    }

    /// The message for `bytes`, or why there is none.
    pub fn encode(&mut self, bytes: Vec<u8>) -> Result<Message, String> {
        match self {
            Self::Binary => Ok(Message::Binary(bytes.into())),
            Self::Base64 => {
                let text: Vec<u8> = bytes
                    .into_iter()
                    .filter(|b| !b.is_ascii_whitespace())
                    .collect();
                STANDARD
                    .decode(text)
                    .map(|decoded| Message::Binary(decoded.into()))
                    .map_err(|error| format!("not valid base64 ({error})"))
            }
            Self::Text => String::from_utf8(bytes)
                .map(Message::from)
                .map_err(|_| "not valid UTF-8; use --binary to send raw bytes".to_owned()),
            Self::JsonRpc(rpc) => {
                let line = String::from_utf8(bytes)
                    .map_err(|_| "not valid UTF-8, so not a JSON-RPC call".to_owned())?;
                rpc.request(&line).map(Message::from)
            }
        }
    }
}

/// Reads the file `--file` names (`-` is stdin) before connecting, so that an
/// unreadable file costs no connection.
pub fn read_file(path: &Path) -> Result<Vec<u8>, Failure> {
    let result = if path == Path::new("-") {
        let mut bytes = Vec::new();
        io::stdin().lock().read_to_end(&mut bytes).map(|_| bytes)
    } else {
        std::fs::read(path)
    };
    result.map_err(|error| {
        Failure::new(
            Exit::Other,
            format!("cannot read {}: {}", path.display(), io_message(&error)),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(input: &[u8]) -> Vec<Vec<u8>> {
        let (sender, mut receiver) = mpsc::channel(1024);
        read_lines(input, &sender);
        drop(sender);
        let mut lines = Vec::new();
        while let Ok(line) = receiver.try_recv() {
            lines.push(line.unwrap());
        }
        lines
    }

    #[test]
    fn lines_lose_lf_and_crlf_endings_only() {
        assert_eq!(
            lines_of(b"one\ntwo\r\nthree\r\r\n\nlast"),
            [&b"one"[..], b"two", b"three\r", b"", b"last"]
        );
    }

    #[test]
    fn nul_separated_pieces_keep_their_newlines() {
        let (sender, mut receiver) = mpsc::channel(16);
        read_separated(&b"a\nb\0\0c"[..], b'\0', &sender);
        drop(sender);
        let mut pieces = Vec::new();
        while let Ok(piece) = receiver.try_recv() {
            pieces.push(piece.unwrap());
        }
        assert_eq!(pieces, [&b"a\nb"[..], b"", b"c"]);
    }

    #[test]
    fn encoders_turn_lines_into_messages() {
        assert_eq!(
            Encoder::Text.encode(b"hi".to_vec()),
            Ok(Message::from("hi"))
        );
        assert!(Encoder::Text.encode(vec![0xff]).is_err());
        assert_eq!(
            Encoder::Binary.encode(vec![0xff]),
            Ok(Message::from(vec![0xff]))
        );
        assert_eq!(
            Encoder::Base64.encode(b"AP8= ".to_vec()),
            Ok(Message::from(vec![0x00, 0xff]))
        );
        assert!(Encoder::Base64.encode(b"***".to_vec()).is_err());
        let mut rpc = Encoder::JsonRpc(JsonRpc::default());
        assert_eq!(
            rpc.encode(b"ping".to_vec()),
            Ok(Message::from(r#"{"id":1,"jsonrpc":"2.0","method":"ping"}"#))
        );
    }

    #[test]
    fn empty_input_has_no_lines() {
        assert!(lines_of(b"").is_empty());
    }

    #[test]
    fn non_utf8_bytes_pass_through() {
        assert_eq!(lines_of(b"\xff\xfe\n"), [vec![0xff, 0xfe]]);
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let failure = read_file(Path::new("/nonexistent/ws-client-test")).unwrap_err();
        assert_eq!(failure.exit, Exit::Other);
        assert!(
            failure
                .message
                .starts_with("cannot read /nonexistent/ws-client-test: ")
        );
    }
}
