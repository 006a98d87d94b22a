//! Test helpers: start the real `ws-server` binary on a free loopback port and
//! talk to it. Helpers may panic: a panic is a test failure.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ws_core::blocking::WebSocket;
use ws_core::handshake::{ClientRequest, Negotiated};
use ws_core::{Config, Event};

/// Every blocking read and wait in these tests gives up after this long, so
/// that a hang fails the test instead of blocking CI.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A blocking WebSocket client over TCP.
pub type Client = WebSocket<TcpStream>;

/// A running `ws-server`, killed when dropped.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    /// The URL of the second stdout line, `test page: URL`.
    pub page_url: String,
    /// In a mutex so that a server can be shared with blocking threads.
    stdout: Mutex<Receiver<String>>,
    stderr: Arc<Mutex<String>>,
}

impl ServerProcess {
    /// Starts the server on 127.0.0.1:0 with extra arguments.
    pub fn start(args: &[&str]) -> Self {
        let mut command = ws_server_command();
        command.args(["--listen", "127.0.0.1:0"]).args(args);
        Self::spawn(command)
    }

    /// Starts a prepared command (which must make the server listen on port 0)
    /// and waits for its ready line.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ws-server");
        let stdout = child.stdout.take().expect("stdout piped");
        let (lines_tx, lines_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Drain stderr continuously so a chatty server never blocks on a full pipe.
        let stderr_text = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().expect("stderr piped");
        let sink = Arc::clone(&stderr_text);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut server = Self {
            child,
            addr: "127.0.0.1:0".parse().unwrap(),
            page_url: String::new(),
            stdout: Mutex::new(lines_rx),
            stderr: stderr_text,
        };
        let line = server
            .stdout_line()
            .unwrap_or_else(|| panic!("no ready line; stderr:\n{}", server.stderr()));
        let addr = line
            .strip_prefix("listening on ws://")
            .or_else(|| line.strip_prefix("listening on wss://"))
            .unwrap_or_else(|| panic!("unexpected ready line {line:?}"));
        server.addr = addr.parse().expect("ready line holds a socket address");
        let line = server.stdout_line().expect("a test page line");
        server.page_url = line
            .strip_prefix("test page: ")
            .unwrap_or_else(|| panic!("unexpected line after the ready line {line:?}"))
            .to_owned();
        server
    }

    /// The next line the server printed on stdout, if one comes in time.
    pub fn stdout_line(&self) -> Option<String> {
        self.stdout.lock().unwrap().recv_timeout(IO_TIMEOUT).ok()
    }

    /// Everything the server logged so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle`, or panics.
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            let log = self.stderr();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "log never showed {needle:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// A raw TCP connection with read and write timeouts.
    pub fn tcp(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("connect to ws-server");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream
    }

    /// A WebSocket client that completed the handshake.
    pub fn connect(&self) -> Client {
        self.connect_with(ClientRequest::new(&self.url()).unwrap())
            .0
    }

    /// A WebSocket client for a customised request.
    pub fn connect_with(&self, request: ClientRequest) -> (Client, Negotiated) {
        WebSocket::connect(self.tcp(), &request, Config::default()).expect("handshake")
    }

    /// Sends a signal (`TERM`, `INT`) to the server.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the server to exit, or panics.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `ws-server` binary, without the `WS_SERVER_*` variables of the
/// environment the tests run in (they would set its options).
pub fn ws_server_command() -> Command {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin!("ws-server"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("WS_SERVER_") {
            command.env_remove(name);
        }
    }
    command
}

/// A plain HTTP response, read to the end of the connection.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl HttpResponse {
    /// The value of a header (case-insensitive name), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// Sends raw request bytes and reads the response until the server closes.
pub fn http_exchange(server: &ServerProcess, request: &str) -> HttpResponse {
    let mut stream = server.tcp();
    stream.write_all(request.as_bytes()).unwrap();
    read_response(&mut stream)
}

/// Reads a complete response from a stream the server will close.
pub fn read_response(stream: &mut TcpStream) -> HttpResponse {
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .expect("server closes the connection after the response");
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("complete head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status code");
    HttpResponse {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// A valid upgrade request with one header replaced (or removed, if
/// `replacement` is empty), for malformed-handshake tests.
pub fn upgrade_request_with(header: &str, replacement: &str) -> String {
    let mut request = String::from("GET / HTTP/1.1\r\n");
    for (name, value) in [
        ("Host", "127.0.0.1"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ] {
        if name.eq_ignore_ascii_case(header) {
            request.push_str(replacement);
        } else {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    request.push_str("\r\n");
    request
}

/// `GET /metrics`: the body, after checking the status and content type.
pub fn scrape(server: &ServerProcess) -> String {
    let response = http_exchange(server, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    response.body
}

/// The value of one sample of a scrape, named with its labels as rendered
/// (`ws_server_closes_total{closed_by="client",code="1000"}`); `None` if
/// the scrape has no such sample.
pub fn sample(scrape: &str, name: &str) -> Option<u64> {
    scrape.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        Some(value.parse().expect("an integer sample value"))
    })
}

/// Receives the next event, failing the test on an error or the end.
pub fn next_event(client: &mut Client) -> Event {
    client
        .recv()
        .expect("receive from ws-server")
        .expect("connection still open")
}

/// Receives events until the connection closes; returns the close frame's
/// code (`None` if the close carried none) and requires that the server
/// then ended TCP (the blocking client reads to EOF after the close).
pub fn expect_close(client: &mut Client) -> Option<u16> {
    loop {
        match client.recv().expect("receive until close") {
            Some(Event::Close(frame)) => {
                let code = frame.map(|frame| frame.code.0);
                assert_eq!(
                    client.recv().expect("clean end after the close"),
                    None,
                    "nothing may follow the close"
                );
                return code;
            }
            Some(_) => {}
            None => panic!("connection ended without a close frame"),
        }
    }
}

/// Reads an HTTP head byte by byte (so nothing behind it is consumed).
pub fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).expect("read the response head");
        assert_eq!(n, 1, "connection closed inside the head: {head:?}");
        head.push(byte[0]);
    }
    String::from_utf8(head).expect("UTF-8 head")
}

/// Sends a client upgrade request on a raw stream and reads the 101.
pub fn raw_upgrade(server: &ServerProcess) -> TcpStream {
    let mut stream = server.tcp();
    let request = ClientRequest::new(&server.url()).unwrap();
    stream.write_all(&request.to_bytes()).unwrap();
    let head = read_head(&mut stream);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    stream
}
