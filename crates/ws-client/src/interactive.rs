//! The interactive mode: a `> ` prompt with line editing and history
//! (rustyline), received messages and status lines printed above the input
//! line, which is then redrawn.
//!
//! rustyline rather than reedline: its `ExternalPrinter` is made for exactly
//! this (another thread prints above the line being edited, and the line is
//! redrawn), its blocking `readline` fits a reader thread like the one that
//! reads piped stdin, and it brings far fewer dependencies.
//!
//! `readline` runs on its own thread and hands each line to the session
//! through the same channel as piped stdin. Ctrl-D ends the input (the
//! session closes with 1000); Ctrl-C (no signal: the terminal is in raw
//! mode) is passed on as [`Item::Interrupt`](crate::input::Item::Interrupt),
//! which the session answers like a Ctrl-C outside the editor: it closes
//! with 1000.

use std::borrow::Cow;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::history::DefaultHistory;
use rustyline::{
    CompletionType, Config, Context, Editor, ExternalPrinter, Helper, Hinter, Validator,
};

use crate::failure::{Exit, Failure};
use crate::input::{self, Input};
use crate::output::Palette;

/// The slash commands Tab completes, with what they take.
pub const COMMANDS: [(&str, &str); 5] = [
    ("/ping", " [data]"),
    ("/pong", " [data]"),
    ("/close", " [code [reason]]"),
    ("/binary", " <hex>"),
    ("/help", ""),
];

/// The prompt.
pub const PROMPT: &str = "> ";

/// Lines shown above the input line: received messages and status lines.
#[derive(Clone)]
pub struct Screen {
    printer: Arc<Mutex<Box<dyn ExternalPrinter + Send>>>,
    /// When a line was last handed to the editor thread.
    last_print: Arc<Mutex<Option<std::time::Instant>>>,
}

impl std::fmt::Debug for Screen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Screen")
    }
}

impl Screen {
    /// Prints `text` (one or more lines) above the input line.
    pub fn line(&self, text: String) {
        if let Ok(mut printer) = self.printer.lock() {
            // The terminal is gone if this fails: nothing better to do.
            let _ = printer.print(text);
        }
        if let Ok(mut last) = self.last_print.lock() {
            *last = Some(std::time::Instant::now());
        }
    }

    /// The editor thread shows lines handed to it a moment later, and
    /// rustyline cannot say when: give it [`LAST_LINES`] after the last one
    /// before the process exits under it.
    fn settle(&self) {
        let last = self.last_print.lock().ok().and_then(|last| *last);
        if let Some(wait) = last.and_then(|at| LAST_LINES.checked_sub(at.elapsed())) {
            std::thread::sleep(wait);
        }
    }

    /// A writer whose every flush prints what was written, as lines above
    /// the input line.
    pub fn writer(&self) -> ScreenWriter {
        ScreenWriter {
            screen: self.clone(),
            pending: Vec::new(),
        }
    }
}

/// Collects one message's bytes; `flush` shows them on the [`Screen`].
#[derive(Debug)]
pub struct ScreenWriter {
    screen: Screen,
    pending: Vec<u8>,
}

impl Write for ScreenWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            let text = String::from_utf8_lossy(&self.pending).into_owned();
            self.pending.clear();
            self.screen.line(text);
        }
        Ok(())
    }
}

/// Completes slash commands and colours the prompt.
#[derive(Helper, Hinter, Validator)]
struct CommandHelper {
    palette: Palette,
}

impl Completer for CommandHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        Ok((0, complete_command(line.get(..pos).unwrap_or(line))))
    }
}

impl Highlighter for CommandHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Owned(self.palette.prompt(prompt))
    }

    fn highlight_char(&self, _line: &str, _pos: usize, _kind: CmdKind) -> bool {
        false
    }
}

/// The commands that complete `typed` (what is left of the cursor): none
/// unless it is a `/` word without a space yet.
pub fn complete_command(typed: &str) -> Vec<Pair> {
    if !typed.starts_with('/') || typed.contains(char::is_whitespace) {
        return Vec::new();
    }
    COMMANDS
        .iter()
        .filter(|(name, _)| name.starts_with(typed))
        .map(|(name, args)| Pair {
            display: format!("{name}{args}"),
            replacement: if args.is_empty() {
                (*name).to_owned()
            } else {
                format!("{name} ")
            },
        })
        .collect()
}

/// The running editor: lines arrive on the [`Input`], output goes to the
/// [`Screen`]; dropping it puts the terminal back as it was.
#[derive(Debug)]
pub struct Interactive {
    /// The typed lines.
    pub input: Input,
    /// Where messages and status lines are printed.
    pub screen: Screen,
    /// Restores the terminal when dropped.
    pub terminal: TerminalGuard,
}

/// Starts the editor on its own thread.
pub fn start(palette: Palette, history_file: Option<PathBuf>) -> Result<Interactive, Failure> {
    let failure = |error: &dyn std::fmt::Display| {
        Failure::new(
            Exit::Other,
            format!("cannot start the line editor: {error}"),
        )
    };
    let config = Config::builder()
        .auto_add_history(true)
        .max_history_size(1000)
        .map_err(|error| failure(&error))?
        .history_ignore_dups(true)
        .map_err(|error| failure(&error))?
        .completion_type(CompletionType::List)
        .build();
    let mut editor: Editor<CommandHelper, DefaultHistory> =
        Editor::with_config(config).map_err(|error| failure(&error))?;
    editor.set_helper(Some(CommandHelper { palette }));
    if let Some(path) = &history_file {
        match editor.load_history(path) {
            Ok(()) => {}
            Err(ReadlineError::Io(error)) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(Failure::new(
                    Exit::Other,
                    format!("cannot read the history file {}: {error}", path.display()),
                ));
            }
        }
    }
    let printer = editor
        .create_external_printer()
        .map_err(|error| failure(&error))?;
    let screen = Screen {
        printer: Arc::new(Mutex::new(Box::new(printer))),
        last_print: Arc::default(),
    };
    let terminal = TerminalGuard::save(screen.clone());
    let (sender, input) = input::line_channel();
    std::thread::Builder::new()
        .name("readline".to_owned())
        .spawn(move || {
            loop {
                match editor.readline(PROMPT) {
                    Ok(line) => {
                        if sender.blocking_send(Ok(line.into_bytes())).is_err() {
                            break;
                        }
                    }
                    Err(ReadlineError::Interrupted) => {
                        let _ = sender.blocking_send(Err(io::ErrorKind::Interrupted.into()));
                        break;
                    }
                    Err(ReadlineError::Eof) => break,
                    Err(ReadlineError::Io(error)) => {
                        let _ = sender.blocking_send(Err(error));
                        break;
                    }
                    Err(error) => {
                        let _ = sender.blocking_send(Err(io::Error::other(error.to_string())));
                        break;
                    }
                }
            }
            if let Some(path) = &history_file {
                // Not being able to save the history must not fail the run.
                let _ = editor.save_history(path);
            }
        })
        .map_err(|error| failure(&error))?;
    Ok(Interactive {
        input,
        screen,
        terminal,
    })
}

/// The terminal settings from before the editor started, put back when
/// dropped: the run may end (the peer closed) while the editor thread is
/// still waiting for a key with the terminal in raw mode.
pub struct TerminalGuard {
    #[cfg(unix)]
    saved: Option<nix::sys::termios::Termios>,
    screen: Screen,
}

impl std::fmt::Debug for TerminalGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TerminalGuard")
    }
}

impl TerminalGuard {
    /// Saves the settings of the terminal on stdin.
    fn save(screen: Screen) -> Self {
        #[cfg(unix)]
        {
            Self {
                saved: nix::sys::termios::tcgetattr(io::stdin()).ok(),
                screen,
            }
        }
        #[cfg(not(unix))]
        {
            Self { screen }
        }
    }
}

/// How long the editor thread gets to show the last lines handed to it
/// (the peer's close, say) before the process exits under it.
const LAST_LINES: std::time::Duration = std::time::Duration::from_millis(200);

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        self.screen.settle();
        #[cfg(unix)]
        if let Some(saved) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(
                io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
        // The session is over: erase the prompt the editor may still show.
        let mut out = io::stdout().lock();
        let _ = out.write_all(b"\r\x1b[K");
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(typed: &str) -> Vec<String> {
        complete_command(typed)
            .into_iter()
            .map(|pair| pair.replacement)
            .collect()
    }

    #[test]
    fn tab_completes_slash_commands() {
        assert_eq!(names("/p"), ["/ping ", "/pong "]);
        assert_eq!(names("/c"), ["/close "]);
        assert_eq!(names("/h"), ["/help"]);
        assert_eq!(
            names("/"),
            ["/ping ", "/pong ", "/close ", "/binary ", "/help"]
        );
    }

    #[test]
    fn only_a_leading_command_word_completes() {
        assert!(names("hello /p").is_empty());
        assert!(names("/ping x").is_empty());
        assert!(names("/zzz").is_empty());
        assert!(names("").is_empty());
    }

    #[test]
    fn screen_writer_prints_one_message_per_flush() {
        #[derive(Default, Clone)]
        struct Recorder(Arc<Mutex<Vec<String>>>);
        impl ExternalPrinter for Recorder {
            fn print(&mut self, msg: String) -> rustyline::Result<()> {
                self.0.lock().unwrap().push(msg);
                Ok(())
            }
        }
        let recorder = Recorder::default();
        let screen = Screen {
            printer: Arc::new(Mutex::new(Box::new(recorder.clone()))),
            last_print: Arc::default(),
        };
        let mut writer = screen.writer();
        writer.write_all(b"< ").unwrap();
        writer.write_all(b"hi\n").unwrap();
        writer.flush().unwrap();
        writer.flush().unwrap();
        assert_eq!(*recorder.0.lock().unwrap(), ["< hi\n"]);
    }
}
