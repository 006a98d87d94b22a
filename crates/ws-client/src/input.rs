//! Where the messages to send come from: the arguments, a file, or stdin.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};
use std::path::Path;

use tokio::sync::mpsc;
use ws_core::Message;

use crate::failure::{Exit, Failure, io_message};

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

/// Starts a thread that reads stdin line by line.
///
/// A thread rather than async stdin: a blocking read of a terminal cannot be
/// cancelled, and the process must be able to exit while one is pending.
pub fn stdin_lines() -> Result<Input, Failure> {
    let (sender, receiver) = mpsc::channel(LINE_QUEUE);
    std::thread::Builder::new()
        .name("stdin".to_owned())
        .spawn(move || read_lines(io::stdin().lock(), &sender))
        .map_err(|error| {
            Failure::new(
                Exit::Other,
                format!("cannot start the stdin reader: {}", io_message(&error)),
            )
        })?;
    Ok(Input::Lines {
        lines: receiver,
        count: 0,
    })
}

/// Sends each line of `reader` (without `\n` or `\r\n`) until the end of the
/// input, the first error, or the receiver going away.
pub fn read_lines<R: BufRead>(mut reader: R, sender: &mpsc::Sender<io::Result<Vec<u8>>>) {
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {
                strip_line_ending(&mut line);
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
