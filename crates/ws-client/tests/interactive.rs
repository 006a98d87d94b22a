#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The interactive mode, driven through a real terminal: each test runs
//! `ws-client` in a tmux pane (a private tmux server per test), types into
//! it with `send-keys` and reads the screen with `capture-pane`, against a
//! small in-process server on 127.0.0.1.
//!
//! Without tmux the tests are skipped with a printed reason, except in CI
//! (`CI` set), where a missing tmux fails them: `cargo xtask ci` installs it.

use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ws_core::blocking::WebSocket;
use ws_core::{CloseCode, Event, Message};

/// The longest any screen state is waited for.
const WAIT_LIMIT: Duration = Duration::from_secs(20);
/// The longest a server waits for the client.
const SERVER_LIMIT: Duration = Duration::from_secs(30);

/// Whether the tests can run; prints why not when they cannot.
fn tmux_available() -> bool {
    let found = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|output| output.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "tmux is missing; CI must have it (cargo xtask ci installs it)"
        );
        eprintln!("skipped: tmux is not installed (apt-get install tmux), and CI is not set");
    }
    found
}

/// A private tmux server with one pane running `ws-client ARGS`; killed
/// (only it) when dropped.
struct Pane {
    socket: String,
}

impl Pane {
    fn start(name: &str, args: &[&str]) -> Self {
        Self::start_with(name, "NO_COLOR=1", args)
    }

    /// Starts the client with `env` (`NAME=value ...`) set.
    fn start_with(name: &str, env: &str, args: &[&str]) -> Self {
        let socket = format!("ws-client-test-{}-{name}", std::process::id());
        let mut command = format!("{} --timeout 20s", env!("CARGO_BIN_EXE_ws-client"));
        for arg in args {
            command.push_str(&format!(" '{arg}'"));
        }
        // The pane stays after the client exits, showing its exit status.
        let shell = format!("env {env} {command}; echo EXIT=$?; sleep 60");
        let status = Command::new("tmux")
            .args(["-L", &socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", "100", "-y", "30", "-s", "test", &shell])
            .env("TERM", "xterm")
            .status()
            .unwrap();
        assert!(status.success(), "tmux new-session failed");
        Self { socket }
    }

    /// Sends one key as tmux names it (`Left`, `Enter`, `C-c`), or one
    /// literal character with `literal`.
    fn send(&self, key: &str, literal: bool) {
        let mut command = Command::new("tmux");
        command.args(["-L", &self.socket, "send-keys", "-t", "test"]);
        if literal {
            command.arg("-l");
        }
        let status = command.arg(key).status().unwrap();
        assert!(status.success(), "tmux send-keys failed");
    }

    /// The screen and the cursor position.
    fn state(&self) -> (String, String) {
        let output = Command::new("tmux")
            .args(["-L", &self.socket, "display-message", "-p", "-t", "test"])
            .arg("#{cursor_x},#{cursor_y}")
            .output()
            .unwrap();
        (
            self.screen(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    }

    /// Sends each key and waits until the terminal shows its effect (the
    /// screen or the cursor moved), as a person types: one key at a time.
    /// (rustyline 17 with an external printer leaves bytes that arrive in
    /// one read, outside a bracketed paste, unprocessed until the next key,
    /// so a burst of keys would be a test of tmux's timing.)
    fn keys(&self, keys: &[&str]) {
        for key in keys {
            self.key(key, false);
        }
    }

    fn key(&self, key: &str, literal: bool) {
        let before = self.state();
        self.send(key, literal);
        let deadline = Instant::now() + WAIT_LIMIT;
        while self.state() == before {
            assert!(
                Instant::now() < deadline,
                "waited {WAIT_LIMIT:?} for the effect of {key:?}; the screen:\n{}",
                before.0
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Types literal text, one character at a time (see [`Pane::keys`]).
    fn type_text(&self, text: &str) {
        for c in text.chars() {
            self.key(&c.to_string(), true);
        }
    }

    fn screen(&self) -> String {
        let output = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "test"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The screen with its colours, as escape sequences.
    fn screen_with_colours(&self) -> String {
        let output = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-e", "-t", "test"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Waits until the screen satisfies `done`; fails with the screen after
    /// the limit.
    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT_LIMIT;
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "waited {WAIT_LIMIT:?} for {what}; the screen:\n{screen}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for a line that is exactly `line` (trailing spaces aside).
    fn wait_for_line(&self, line: &str) -> String {
        self.wait_for(&format!("the line {line:?}"), |screen| {
            screen.lines().any(|l| l.trim_end() == line)
        })
    }

    /// Waits for the client's exit status, which the shell prints after it
    /// (possibly behind a prompt the editor drew as the run ended).
    fn wait_for_exit(&self, status: i32) -> String {
        let line = format!("EXIT={status}");
        self.wait_for(&format!("exit status {status}"), |screen| {
            screen.lines().any(|l| l.trim_end().ends_with(&line))
        })
    }

    /// The last non-empty line: the input line while the editor runs.
    fn last_line(&self) -> String {
        self.screen()
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .unwrap_or_default()
            .trim_end()
            .to_owned()
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

/// A server for one connection on 127.0.0.1, running `serve` on it.
fn server<T: Send + 'static>(
    serve: impl FnOnce(WebSocket<TcpStream>) -> T + Send + 'static,
) -> (String, JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let handle = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(SERVER_LIMIT)).unwrap();
        serve(WebSocket::accept(stream).unwrap())
    });
    (url, handle)
}

/// Echoes until the client closes; returns the messages and the client's
/// close code.
fn echo(mut socket: WebSocket<TcpStream>) -> (Vec<Message>, Option<u16>) {
    let mut seen = Vec::new();
    let mut code = None;
    while let Some(event) = socket.recv().unwrap() {
        if let Event::Close(frame) = &event {
            code = frame.as_ref().map(|frame| frame.code.0);
        }
        if let Some(message) = event.into_message() {
            seen.push(message.clone());
            socket.send(message).unwrap();
        }
    }
    (seen, code)
}

#[test]
fn typed_lines_are_edited_with_arrow_keys_and_recalled_from_history() {
    if !tmux_available() {
        return;
    }
    let (url, server) = server(echo);
    let pane = Pane::start("edit", &[&url]);
    pane.wait_for_line(">");
    pane.type_text("hello wrld");
    pane.keys(&["Left", "Left", "Left"]);
    pane.type_text("o");
    pane.wait_for_line("> hello world");
    pane.keys(&["Enter"]);
    pane.wait_for_line("< hello world");
    // Up recalls the line; Home and a word at the start edit it.
    pane.keys(&["Up"]);
    pane.wait_for("the recalled line", |screen| {
        screen
            .lines()
            .filter(|l| l.trim_end() == "> hello world")
            .count()
            == 2
    });
    pane.keys(&["Home"]);
    pane.type_text("again ");
    pane.keys(&["Enter"]);
    pane.wait_for_line("< again hello world");
    pane.send("C-d", false);
    pane.wait_for_exit(0);
    let (seen, code) = server.join().unwrap();
    assert_eq!(
        seen,
        [
            Message::from("hello world"),
            Message::from("again hello world")
        ]
    );
    assert_eq!(code, Some(1000));
}

#[test]
fn an_incoming_message_is_printed_above_the_line_being_typed() {
    if !tmux_available() {
        return;
    }
    let (send_now, wait) = mpsc::channel::<()>();
    let (url, server) = server(move |mut socket| {
        wait.recv_timeout(SERVER_LIMIT).unwrap();
        socket.send_text("surprise").unwrap();
        echo(socket)
    });
    let pane = Pane::start("incoming", &[&url]);
    pane.wait_for_line(">");
    pane.type_text("half typ");
    pane.wait_for_line("> half typ");
    send_now.send(()).unwrap();
    let screen = pane.wait_for_line("< surprise");
    assert_eq!(pane.last_line(), "> half typ", "{screen}");
    pane.type_text("ed");
    pane.keys(&["Enter"]);
    pane.wait_for_line("< half typed");
    pane.send("C-d", false);
    pane.wait_for_exit(0);
    let (seen, _) = server.join().unwrap();
    assert_eq!(seen, [Message::from("half typed")]);
}

#[test]
fn ctrl_c_closes_with_1000_and_exits_0() {
    if !tmux_available() {
        return;
    }
    let (url, server) = server(echo);
    let pane = Pane::start("ctrl-c", &[&url]);
    pane.wait_for_line(">");
    pane.type_text("never sent");
    pane.send("C-c", false);
    pane.wait_for_exit(0);
    let (seen, code) = server.join().unwrap();
    assert!(seen.is_empty(), "{seen:?}");
    assert_eq!(code, Some(1000));
}

#[test]
fn tab_completes_commands_and_ping_shows_the_round_trip() {
    if !tmux_available() {
        return;
    }
    let (url, server) = server(echo);
    let pane = Pane::start("tab", &[&url]);
    pane.wait_for_line(">");
    pane.type_text("/pi");
    pane.keys(&["Tab"]);
    pane.wait_for_line("> /ping");
    pane.type_text("x");
    pane.keys(&["Enter"]);
    pane.wait_for("the pong", |screen| {
        screen
            .lines()
            .any(|l| l.starts_with("< pong: x (round trip ") && l.trim_end().ends_with(" ms)"))
    });
    pane.type_text("/cl");
    pane.keys(&["Tab"]);
    pane.type_text("4000 done");
    pane.wait_for_line("> /close 4000 done");
    pane.keys(&["Enter"]);
    pane.wait_for_exit(0);
    let (_, code) = server.join().unwrap();
    assert_eq!(code, Some(4000));
}

#[test]
fn control_characters_from_the_peer_are_escaped_on_the_terminal() {
    if !tmux_available() {
        return;
    }
    let (url, server) = server(|mut socket| {
        socket.send_text("\x1b]0;pwned\x07\x1b[2Jred\r").unwrap();
        // Closes once the client has answered.
        socket.recv().unwrap();
        socket.close(CloseCode::NORMAL, "").unwrap();
        while socket.recv().unwrap().is_some() {}
    });
    let pane = Pane::start("escape", &[&url]);
    pane.wait_for_line(r"< \x1b]0;pwned\x07\x1b[2Jred\x0d");
    pane.type_text("seen");
    pane.keys(&["Enter"]);
    pane.wait_for_line("disconnected: 1000 (normal closure)");
    pane.wait_for_exit(0);
    server.join().unwrap();
}

#[test]
fn colours_are_used_unless_no_color_or_the_flag_says_otherwise() {
    if !tmux_available() {
        return;
    }
    for (index, (env, args, coloured)) in [
        ("TERM=xterm", &[][..], true),
        ("NO_COLOR=1", &[][..], false),
        ("TERM=xterm", &["--no-color"][..], false),
    ]
    .into_iter()
    .enumerate()
    {
        let (url, server) = server(|mut socket| {
            socket.send_text("green?").unwrap();
            echo(socket)
        });
        let mut all = vec![url.as_str()];
        all.extend_from_slice(args);
        let pane = Pane::start_with(&format!("colour-{index}"), env, &all);
        pane.wait_for_line("< green?");
        let screen = pane.screen_with_colours();
        assert_eq!(
            screen.contains("\x1b[32m<"),
            coloured,
            "{env} {args:?}: {screen:?}"
        );
        // The message can be shown before the editor is up: a Ctrl-D sent
        // before its prompt (and raw mode) would be lost.
        pane.wait_for_line(">");
        pane.send("C-d", false);
        pane.wait_for_exit(0);
        server.join().unwrap();
    }
}

#[test]
fn history_is_saved_to_a_file_only_when_asked() {
    if !tmux_available() {
        return;
    }
    let path = std::env::temp_dir().join(format!("ws-client-history-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let (url, server) = server(echo);
    let pane = Pane::start("history", &[&url, "--history-file", path.to_str().unwrap()]);
    pane.wait_for_line(">");
    pane.type_text("remember me");
    pane.keys(&["Enter"]);
    pane.wait_for_line("< remember me");
    pane.send("C-d", false);
    pane.wait_for_exit(0);
    server.join().unwrap();
    let saved = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(saved.lines().any(|line| line == "remember me"), "{saved:?}");
}
