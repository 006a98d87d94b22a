//! One connection from the end of the handshake to the end of the run.
//!
//! A single loop waits on everything at once: received events (the read
//! half's `recv` is cancel-safe), writing what is queued (the write half's
//! `flush`), the input, the ping timer, the deadline and signals. So the
//! server's messages are read and printed while input is still being sent,
//! reading never waits on a write, and nothing waits on something else that
//! cannot progress.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior, interval_at, sleep_until, timeout};
use tracing::debug;
use ws_core::stream::{ReadHalf, WebSocket, WriteHalf};
use ws_core::{CloseCode, CloseFrame, Connection, Error, Event, Message};

use crate::cli::Cli;
use crate::command::{Action, COMMANDS_HELP, parse_line};
use crate::failure::{Exit, Failure, format_duration, io_message};
use crate::input::{Encoder, Input, Item};
use crate::interactive::Screen;
use crate::output::{Palette, Printer, describe_close, describe_payload, note};
use crate::signals::Signals;
use crate::transport::Transport;

/// How long to wait for the server to end TCP after the closing handshake;
/// the handshake is complete by then, so not waiting longer is no failure.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How long queued bytes (a last close frame) may take to reach the socket
/// before the process exits.
const LAST_WRITE: Duration = Duration::from_millis(500);

/// Pings sent by `/ping` whose pong is awaited, for the round-trip time;
/// older ones are forgotten past this many.
const PINGS_REMEMBERED: usize = 32;

/// How the run behaves, decided from the arguments and the terminal.
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    /// stdin is a terminal and supplies the messages: slash commands, a
    /// banner, Ctrl-D closes, no timeout on the conversation.
    pub interactive: bool,
    /// Lines starting with `/` are commands.
    pub commands: bool,
    /// Do not close after the replies (`--echo`, `--no-close`).
    pub keep_open: bool,
    /// `--timeout`, unless disabled with 0.
    pub timeout: Option<Duration>,
    /// The other end, for messages: "server", or "client" with `--listen`.
    pub peer: &'static str,
}

/// Where the session's output goes.
#[derive(Debug)]
pub enum Ui {
    /// Messages on stdout, notes on stderr; `escape` when stdout is a
    /// terminal.
    Plain {
        /// Escape control characters in received text.
        escape: bool,
    },
    /// Messages and notes above the interactive input line.
    Interactive {
        /// The editor's screen.
        screen: Screen,
        /// Colours, or none.
        palette: Palette,
    },
}

/// The state of the conversation.
pub struct Session<'a> {
    read: ReadHalf<Transport>,
    write: WriteHalf<Transport>,
    cli: &'a Cli,
    mode: Mode,
    printer: Printer<Box<dyn Write>>,
    /// The interactive screen for notes, if any.
    screen: Option<(Screen, Palette)>,
    encoder: Encoder,
    deadline: Option<Instant>,
    sent: usize,
    received: usize,
    input_done: bool,
    /// When the expected replies are in: the end of the quiet period
    /// (`--wait`), pushed back by every message that arrives.
    quiet_until: Option<Instant>,
    /// The quiet period ended without another message.
    quiet_over: bool,
    /// `/ping` payloads and when they were sent.
    pings_sent: VecDeque<(Vec<u8>, Instant)>,
    /// Since when a `--ping-interval` ping waits for its pong.
    pong_due_since: Option<Instant>,
    /// The server's close frame, once it arrived (`Some(None)`: no code).
    peer_close: Option<Option<CloseFrame>>,
    /// The code of the close frame we sent, if we sent one first.
    our_close: Option<CloseCode>,
    pings: u64,
    interrupted: bool,
    /// stdout is gone (`| head -1`): stop printing and close.
    output_closed: bool,
}

impl<'a> Session<'a> {
    /// A session over an open connection. `deadline` bounds the whole run
    /// (messages from the arguments or a file), or is `None`.
    pub fn new(
        ws: WebSocket<Transport>,
        cli: &'a Cli,
        mode: Mode,
        deadline: Option<Instant>,
        ui: Ui,
    ) -> Self {
        let (read, write) = ws.split();
        let terminator = if cli.null && !mode.interactive {
            b'\0'
        } else {
            b'\n'
        };
        let (printer, screen) = match ui {
            Ui::Plain { escape } => (
                Printer::new(Box::new(io::stdout()) as Box<dyn Write>, cli.output)
                    .escaping(escape)
                    .terminator(terminator),
                None,
            ),
            Ui::Interactive { screen, palette } => (
                Printer::new(Box::new(screen.writer()) as Box<dyn Write>, cli.output)
                    .escaping(true)
                    .mark(palette.received("< ")),
                Some((screen, palette)),
            ),
        };
        Self {
            read,
            write,
            cli,
            mode,
            printer,
            screen,
            encoder: Encoder::from_cli(cli),
            deadline,
            sent: 0,
            received: 0,
            input_done: false,
            quiet_until: None,
            quiet_over: false,
            pings_sent: VecDeque::new(),
            pong_due_since: None,
            peer_close: None,
            our_close: None,
            pings: 0,
            interrupted: false,
            output_closed: false,
        }
    }

    /// Runs the conversation to its end; `Ok` means exit status 0.
    pub async fn run(mut self, input: Input) -> Result<(), Failure> {
        let result = self.converse(input).await;
        match result {
            Ok(()) => {
                // The last frames we queued (our close, its echo) must reach
                // the socket.
                let _ = timeout(LAST_WRITE, self.write.flush()).await;
                Ok(())
            }
            Err(Ended::Failed(failure)) => Err(failure),
            Err(Ended::Broken(failure)) => {
                self.linger().await;
                Err(failure)
            }
        }
    }

    async fn converse(&mut self, mut input: Input) -> Result<(), Ended> {
        let mut pinger = self.cli.ping_interval.map(|period| {
            let mut ticker = interval_at(Instant::now() + period, period);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            ticker
        });
        let mut signals = Signals::new();
        if matches!(input, Input::Nothing) {
            self.input_done = true;
        }
        loop {
            let cli = self.cli;
            if self.replies_in() && self.quiet_until.is_none() {
                self.quiet_until = Some(Instant::now() + cli.wait);
                self.quiet_over = cli.wait.is_zero();
            }
            if self.should_close() {
                self.start_close(cli.close_code, &cli.close_reason)?;
            }
            let quiet_pending = self.is_open() && self.quiet_until.is_some() && !self.quiet_over;
            let pong_deadline = match (self.pong_due_since, cli.ping_timeout) {
                (Some(since), Some(limit)) if self.is_open() => Some(since + limit),
                _ => None,
            };
            let open = self.is_open();
            let (congested, unwritten) = self
                .write
                .with_connection(|c| (c.write_buffer_full(), c.wants_write()));
            let read_input = open && !self.input_done && !congested;
            let read_socket = !(self.cli.echo && congested);
            tokio::select! {
                event = self.read.recv(), if read_socket => match event {
                    Ok(Some(event)) => self.on_event(event).await?,
                    Ok(None) => break,
                    Err(error) => return Err(Ended::Broken(Failure::from_session(error))),
                },
                written = self.write.flush(), if unwritten => {
                    written.map_err(|error| Ended::Broken(Failure::from_session(error)))?;
                }
                item = input.next(), if read_input => match item {
                    Some(item) => self.on_item(item?).await?,
                    None => self.on_input_end(&input),
                },
                () = tick(&mut pinger), if open => self.send_ping()?,
                () = sleep_until_some(self.quiet_until), if quiet_pending => {
                    self.quiet_over = true;
                }
                () = sleep_until_some(pong_deadline), if pong_deadline.is_some() => {
                    return Err(self.no_pong().await.into());
                }
                () = sleep_until_some(self.deadline), if self.deadline.is_some() => {
                    if self.peer_close.is_some() {
                        break;
                    }
                    if self.replies_in() && self.is_open() {
                        // The replies are in; messages kept coming during
                        // the quiet period. That is no failure: close now,
                        // with a fresh bound on the close reply.
                        self.deadline = None;
                        self.start_close(cli.close_code, &cli.close_reason)?;
                        continue;
                    }
                    return Err(self.timed_out().await.into());
                },
                () = signals.recv() => {
                    if self.interrupted {
                        return Err(Failure::new(Exit::Interrupted, "interrupted").into());
                    }
                    self.interrupted = true;
                    if self.peer_close.is_some() {
                        break;
                    }
                    if self.is_open() {
                        self.start_close(cli.close_code, &cli.close_reason)?;
                    }
                },
            }
        }
        Ok(self.outcome()?)
    }

    /// Whether we may still send: neither side has sent a close.
    fn is_open(&mut self) -> bool {
        self.peer_close.is_none() && !self.write.with_connection(|c| c.close_sent())
    }

    /// How many messages to wait for before closing.
    fn expected(&self) -> usize {
        self.cli.expect.unwrap_or(self.sent)
    }

    /// Whether the input is sent and the expected replies are in (the
    /// quiet period may still be running).
    fn replies_in(&self) -> bool {
        self.input_done
            && !self.mode.interactive
            && !self.mode.keep_open
            && self.received >= self.expected()
    }

    fn should_close(&mut self) -> bool {
        if !self.is_open() || !self.input_done {
            false
        } else if self.mode.interactive || self.output_closed {
            true
        } else if self.mode.keep_open {
            false
        } else {
            self.replies_in() && self.quiet_over
        }
    }

    /// A line for the user: above the input line in interactive mode, on
    /// stderr otherwise.
    fn note(&self, line: &str) {
        match &self.screen {
            Some((screen, palette)) => screen.line(palette.status(line)),
            None => note(line),
        }
    }

    /// Counts a data message; true if it is to be printed (`-1` prints
    /// only the first).
    fn count_message(&mut self) -> bool {
        self.received += 1;
        if self.quiet_until.is_some() && self.cli.wait > Duration::ZERO {
            self.quiet_until = Some(Instant::now() + self.cli.wait);
            self.quiet_over = false;
        }
        !(self.cli.one_message && self.received > 1)
    }

    /// Moves the deadline earlier to `now + after`, never later.
    fn tighten_deadline(&mut self, after: Option<Duration>) {
        if let Some(after) = after {
            let candidate = Instant::now() + after;
            self.deadline = Some(self.deadline.map_or(candidate, |d| d.min(candidate)));
        }
    }

    /// Queues our close frame; the loop writes it, and the read half
    /// receives the server's answer.
    fn start_close(&mut self, code: CloseCode, reason: &str) -> Result<(), Failure> {
        if self.cli.show_control {
            self.note(&format!(
                "> close: {}",
                describe_close(Some(&CloseFrame::new(code, reason)))
            ));
        }
        debug!(%code, "closing");
        self.our_close = Some(code);
        self.tighten_deadline(self.mode.timeout);
        self.queue_with(|c| c.close(code, reason))
    }

    /// Queues a frame on the protocol state; the loop writes it.
    fn queue_with(
        &mut self,
        queue: impl FnOnce(&mut Connection) -> Result<(), Error>,
    ) -> Result<(), Failure> {
        self.write
            .with_connection(queue)
            .map_err(Failure::from_session)
    }

    async fn on_event(&mut self, event: Event) -> Result<(), Failure> {
        match event {
            Event::Text(text) => {
                if self.count_message() {
                    self.print(|printer| printer.text(text.as_bytes()))?;
                }
                if self.cli.echo && self.is_open() {
                    self.send(Message::Text(text)).await?;
                }
            }
            Event::Binary(data) => {
                if self.count_message() {
                    self.print(|printer| printer.binary(&data))?;
                }
                if self.cli.echo && self.is_open() {
                    self.send(Message::Binary(data)).await?;
                }
            }
            Event::Ping(payload) if self.cli.show_control => {
                self.note(&format!("< ping: {}", describe_payload(&payload)));
            }
            Event::Pong(payload) => self.on_pong(&payload),
            Event::Close(frame) => {
                if self.cli.show_control {
                    self.note(&format!("< close: {}", describe_close(frame.as_ref())));
                } else if self.mode.interactive && !self.cli.quiet {
                    self.note(&format!("disconnected: {}", describe_close(frame.as_ref())));
                }
                self.peer_close = Some(frame);
                // The reply is written; give the server a moment to end TCP.
                self.tighten_deadline(Some(CLOSE_GRACE));
            }
            // Pings and pongs when they are not shown, and kinds of event a
            // later ws-core may add: nothing to do.
            _ => {}
        }
        Ok(())
    }

    /// A pong: answers a `--ping-interval` ping, and one of `/ping` is shown
    /// with its round-trip time in interactive mode.
    fn on_pong(&mut self, payload: &[u8]) {
        self.pong_due_since = None;
        let sent = self
            .pings_sent
            .iter()
            .position(|(data, _)| data == payload)
            .and_then(|index| {
                let at = self.pings_sent.get(index).map(|(_, at)| *at);
                // Pongs answer pings in order: earlier ones went unanswered.
                self.pings_sent.drain(..=index);
                at
            });
        match sent {
            Some(at) if self.mode.interactive => {
                let rtt = at.elapsed();
                let data = describe_payload(payload);
                let shown = if data.is_empty() {
                    String::new()
                } else {
                    format!(": {data}")
                };
                self.note(&format!(
                    "< pong{shown} (round trip {:.1} ms)",
                    rtt.as_secs_f64() * 1000.0
                ));
            }
            _ if self.cli.show_control => {
                self.note(&format!("< pong: {}", describe_payload(payload)));
            }
            _ => {}
        }
    }

    /// Prints a message unless stdout is gone; a closed pipe ends the
    /// session politely rather than failing it.
    fn print(
        &mut self,
        write: impl FnOnce(&mut Printer<Box<dyn Write>>) -> io::Result<()>,
    ) -> Result<(), Failure> {
        if self.output_closed {
            return Ok(());
        }
        match write(&mut self.printer) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::BrokenPipe => {
                debug!("stdout closed");
                self.output_closed = true;
                self.input_done = true;
                Ok(())
            }
            Err(error) => Err(Failure::new(
                Exit::Other,
                format!("cannot write to stdout: {}", io_message(&error)),
            )),
        }
    }

    /// Queues a message for the loop to write; past the write buffer's
    /// high-water mark (no input is taken then, but an echo may still come)
    /// it waits for room.
    async fn send(&mut self, message: Message) -> Result<(), Failure> {
        match self.write.queue(message.clone()) {
            Err(Error::WriteBufferFull) => self.write.send(message).await,
            other => other,
        }
        .map_err(Failure::from_session)
    }

    async fn on_item(&mut self, item: Item) -> Result<(), Failure> {
        let (bytes, number) = match item {
            Item::Message(message) => {
                self.sent += 1;
                return self.send(message).await;
            }
            Item::Line { bytes, number } => (bytes, number),
            Item::Interrupt => {
                self.input_done = true;
                let cli = self.cli;
                return self.start_close(cli.close_code, &cli.close_reason);
            }
        };
        match parse_line(bytes, self.mode.commands) {
            Ok(Action::Data(bytes)) => {
                let message = match self.encoder.encode(bytes) {
                    Ok(message) => message,
                    Err(why) if self.mode.interactive => {
                        self.note(&format!("not sent: {why}"));
                        return Ok(());
                    }
                    Err(why) => {
                        return Err(Failure::new(
                            Exit::Other,
                            format!("line {number} of stdin is {why}"),
                        ));
                    }
                };
                self.sent += 1;
                self.send(message).await
            }
            Ok(Action::Binary(bytes)) => {
                self.sent += 1;
                self.send(Message::Binary(bytes.into())).await
            }
            Ok(Action::Ping(payload)) => {
                if self.cli.show_control {
                    self.note(&format!("> ping: {}", describe_payload(&payload)));
                }
                if self.pings_sent.len() == PINGS_REMEMBERED {
                    self.pings_sent.pop_front();
                }
                self.pings_sent.push_back((payload.clone(), Instant::now()));
                self.queue_with(|c| c.queue_ping(&payload))
            }
            Ok(Action::Pong(payload)) => {
                if self.cli.show_control {
                    self.note(&format!("> pong: {}", describe_payload(&payload)));
                }
                self.queue_with(|c| c.queue_pong(&payload))
            }
            Ok(Action::Close(code, reason)) => {
                self.input_done = true;
                self.start_close(code, &reason)
            }
            Ok(Action::Help) => {
                self.note(COMMANDS_HELP);
                Ok(())
            }
            Err(message) => {
                self.note(&message);
                Ok(())
            }
        }
    }

    fn on_input_end(&mut self, input: &Input) {
        debug!(sent = self.sent, "end of input");
        self.input_done = true;
        // Piped input paces the run itself; the wait for replies starts now.
        if input.is_lines() && !self.mode.interactive && !self.mode.keep_open {
            self.tighten_deadline(self.mode.timeout);
        }
    }

    fn send_ping(&mut self) -> Result<(), Failure> {
        self.pings += 1;
        let payload = self.pings.to_string();
        if self.cli.show_control {
            self.note(&format!("> ping: {payload}"));
        }
        if self.pong_due_since.is_none() {
            self.pong_due_since = Some(Instant::now());
        }
        self.queue_with(|c| c.queue_ping(payload.as_bytes()))
    }

    /// `--ping-timeout` passed without a pong: the peer is presumed gone.
    async fn no_pong(&mut self) -> Failure {
        let cli = self.cli;
        let _ = timeout(
            LAST_WRITE,
            self.write.close(CloseCode::GOING_AWAY, "no pong"),
        )
        .await;
        Failure::new(
            Exit::Timeout,
            format!(
                "no pong from the {} within {} (--ping-timeout)",
                self.mode.peer,
                format_duration(cli.ping_timeout.unwrap_or_default())
            ),
        )
    }

    /// The deadline passed while the exchange was unfinished.
    async fn timed_out(&mut self) -> Failure {
        let after = self.mode.timeout.unwrap_or_default();
        if self.write.with_connection(|c| c.close_sent()) {
            return Failure::timeout(after, "waiting for the server's close reply");
        }
        // Tell the server we are leaving, but do not wait for its answer.
        let cli = self.cli;
        let _ = timeout(
            LAST_WRITE,
            self.write.close(cli.close_code, &cli.close_reason),
        )
        .await;
        Failure::timeout(
            after,
            &format!(
                "waiting for replies ({} of {} received)",
                self.received,
                self.expected()
            ),
        )
    }

    /// After a failure ws-core has written the close frame that says why;
    /// end our side and read until the server ends its side (briefly), so
    /// that unread bytes do not turn our close into a TCP reset that
    /// destroys the close frame before the server reads it.
    async fn linger(self) {
        let Ok(ws) = self.read.reunite(self.write) else {
            return;
        };
        let (mut stream, _) = ws.into_parts();
        let drain = ws_core::low_level::shutdown_and_drain(&mut stream, usize::MAX);
        let _ = timeout(CLOSE_GRACE, drain).await;
    }

    /// The exit status once the connection is over.
    fn outcome(&self) -> Result<(), Failure> {
        match &self.peer_close {
            Some(Some(frame)) => {
                let normal = matches!(frame.code, CloseCode::NORMAL | CloseCode::GOING_AWAY);
                if !normal && self.our_close != Some(frame.code) {
                    return Err(Failure::closed_with_code(frame, self.mode.peer));
                }
            }
            Some(None) => {}
            None if self.output_closed => {}
            None => {
                return Err(Failure::new(
                    Exit::Protocol,
                    format!(
                        "the {} dropped the connection without a closing handshake",
                        self.mode.peer
                    ),
                ));
            }
        }
        let counted = !self.mode.interactive && !self.mode.keep_open && self.cli.expect.is_none();
        if counted && self.received > self.expected() && !self.cli.quiet {
            note(&format!(
                "ws-client: note: {} messages received, {} expected (--expect; see --help)",
                self.received,
                self.expected()
            ));
        }
        let endless = self.mode.interactive || self.mode.keep_open;
        if self.interrupted && !endless {
            let message = format!(
                "interrupted ({} of {} replies received)",
                self.received,
                self.expected()
            );
            return Err(Failure::new(Exit::Interrupted, message));
        }
        Ok(())
    }
}

/// Why the conversation ended early.
enum Ended {
    /// A failure to report; the connection ended as the protocol asks.
    Failed(Failure),
    /// The connection broke (a protocol error or a failed read or write):
    /// ws-core has queued the close frame that says why; linger so that it
    /// reaches the server before our side ends.
    Broken(Failure),
}

impl From<Failure> for Ended {
    fn from(failure: Failure) -> Self {
        Self::Failed(failure)
    }
}

/// Waits for the next tick, or forever without a timer.
async fn tick(ticker: &mut Option<Interval>) {
    match ticker {
        Some(ticker) => {
            ticker.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// `--timeout` as shown in messages.
pub fn timeout_text(timeout: Option<Duration>) -> String {
    timeout.map_or_else(|| "0s".to_owned(), format_duration)
}
