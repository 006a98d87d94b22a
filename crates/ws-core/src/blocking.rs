//! A WebSocket over any blocking `std::io::Read + Write` (a `TcpStream`, a TLS
//! stream), for programs that want no async runtime.
//!
//! The adapter only moves bytes: every protocol decision is the
//! [`Connection`]'s. Replies the protocol owes the peer are written before
//! [`recv`](WebSocket::recv) returns or reads again.
//!
//! ```no_run
//! use std::net::TcpListener;
//! use ws_core::blocking::WebSocket;
//!
//! # fn main() -> Result<(), ws_core::Error> {
//! let listener = TcpListener::bind("127.0.0.1:8000")?;
//! for stream in listener.incoming() {
//!     std::thread::spawn(move || -> Result<(), ws_core::Error> {
//!         let mut socket = WebSocket::accept(stream?)?;
//!         while let Some(event) = socket.recv()? {
//!             if let Some(message) = event.into_message() {
//!                 socket.send(message)?;
//!             }
//!         }
//!         Ok(())
//!     });
//! }
//! # Ok(())
//! # }
//! ```

use std::io::{self, Read, Write};
use std::ops::ControlFlow;

use bytes::{Buf, BytesMut};

use crate::close::CloseCode;
use crate::error::{Error, is_disconnect};
use crate::handshake::{
    AcceptOptions, ClientHandshake, ClientRequest, HandshakeError, Negotiated, ServerHandshake,
    UpgradeRequest,
};
use crate::message::{Event, Message};
use crate::protocol::{Config, Connection, Role, State};

/// A WebSocket connection over a blocking stream.
#[derive(Debug)]
pub struct WebSocket<S> {
    stream: S,
    connection: Connection,
}

impl<S: Read + Write> WebSocket<S> {
    /// Performs the server side of the opening handshake with default limits,
    /// selecting no subprotocol and no extension.
    pub fn accept(stream: S) -> Result<Self, Error> {
        Self::accept_with(stream, Config::default(), |_| Ok(AcceptOptions::default()))
            .map(|(socket, _)| socket)
    }

    /// Performs the server side of the opening handshake. `choose` sees the
    /// validated request and picks the subprotocol and extensions, or refuses
    /// (e.g. [`HandshakeError::ForbiddenOrigin`]); a refusal or an invalid
    /// request is answered with the matching HTTP error before returning it.
    pub fn accept_with<F>(
        mut stream: S,
        config: Config,
        choose: F,
    ) -> Result<(Self, UpgradeRequest), Error>
    where
        F: FnOnce(&UpgradeRequest) -> Result<AcceptOptions, HandshakeError>,
    {
        let mut handshake = ServerHandshake::new(config);
        let answer = loop {
            match handshake.request() {
                Ok(Some(_)) => break handshake.accept(choose),
                Ok(None) => {}
                Err(refused) => break Err(refused),
            }
            if read_into(&mut stream, handshake.read_buffer())? == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
        };
        let response = match &answer {
            Ok(accepted) => &accepted.response,
            Err(refused) => &refused.response,
        };
        stream.write_all(response)?;
        stream.flush()?;
        let accepted = answer.map_err(HandshakeError::from)?;
        let socket = Self::from_connection(stream, accepted.connection);
        Ok((socket, accepted.request))
    }

    /// Performs the client side of the opening handshake on a connected
    /// stream, validating the server's answer strictly.
    pub fn connect(
        mut stream: S,
        request: &ClientRequest,
        config: Config,
    ) -> Result<(Self, Negotiated), Error> {
        let mut handshake = ClientHandshake::new(request, config);
        stream.write_all(handshake.request_bytes())?;
        stream.flush()?;
        loop {
            if read_into(&mut stream, handshake.read_buffer())? == 0 {
                handshake.receive_eof();
            }
            match handshake.step()? {
                ControlFlow::Continue(more) => handshake = more,
                ControlFlow::Break((connection, negotiated)) => {
                    return Ok((Self::from_connection(stream, connection), negotiated));
                }
            }
        }
    }

    /// Wraps a stream whose handshake is already done.
    pub fn from_connection(stream: S, connection: Connection) -> Self {
        Self { stream, connection }
    }

    /// The next event, reading as needed. Returns `Ok(None)` once the
    /// connection is closed: after the closing handshake, the transport's end,
    /// or a protocol error already returned. Queued replies (pongs, close
    /// frames) are written before this returns.
    ///
    /// A client keeps reading after the closing handshake until the server
    /// ends the TCP connection (RFC 6455 §7.1.1); set a read timeout on the
    /// stream if the server may not.
    pub fn recv(&mut self) -> Result<Option<Event>, Error> {
        loop {
            let event = self.connection.next_event();
            self.flush()?;
            if let Some(event) = event? {
                return Ok(Some(event));
            }
            if self.connection.state() == State::Closed {
                if self.connection.role() == Role::Client {
                    self.drain_until_eof()?;
                }
                return Ok(None);
            }
            let read = read_into(&mut self.stream, self.connection.read_buffer())?;
            if read == 0 {
                self.connection.receive_eof()?;
                return Ok(None);
            }
        }
    }

    /// Sends a message and writes it out.
    pub fn send(&mut self, message: Message) -> Result<(), Error> {
        self.connection.queue(message)?;
        self.flush()
    }

    /// Sends a text message and writes it out.
    pub fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.connection.queue_text(text)?;
        self.flush()
    }

    /// Sends a binary message and writes it out.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), Error> {
        self.connection.queue_binary(data)?;
        self.flush()
    }

    /// Sends a ping and writes it out.
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.connection.queue_ping(payload)?;
        self.flush()
    }

    /// Starts the closing handshake; keep calling [`recv`](Self::recv) until
    /// it returns `Ok(None)` to receive the peer's answer.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.connection.close(code, reason)?;
        self.flush()
    }

    /// Writes out everything queued.
    pub fn flush(&mut self) -> Result<(), Error> {
        let outbound = self.connection.outbound();
        while outbound.has_remaining() {
            let mut slices = [io::IoSlice::new(&[]); 16];
            let count = outbound.chunks_vectored(&mut slices);
            let written = match slices.get(..count).unwrap_or_default() {
                [single] => self.stream.write(single)?,
                several => self.stream.write_vectored(several)?,
            };
            if written == 0 {
                return Err(io::Error::from(io::ErrorKind::WriteZero).into());
            }
            outbound.advance(written);
        }
        self.stream.flush()?;
        Ok(())
    }

    /// The protocol state.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The protocol state, to queue frames without writing them yet.
    pub fn connection_mut(&mut self) -> &mut Connection {
        &mut self.connection
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The underlying stream and the protocol state.
    pub fn into_parts(self) -> (S, Connection) {
        (self.stream, self.connection)
    }

    fn drain_until_eof(&mut self) -> Result<(), Error> {
        let mut scratch = [0u8; 1024];
        loop {
            match self.stream.read(&mut scratch) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if is_disconnect(&error) => return Ok(()),
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Sends a [`PreparedMessage`](crate::PreparedMessage) and writes it
    /// out, sharing its frame (see [`Connection::queue_prepared`]).
    pub fn send_prepared(&mut self, message: &crate::PreparedMessage) -> Result<(), Error> {
        self.connection.queue_prepared(message)?;
        self.flush()
    }
}

/// Reads once into the spare capacity of `buf`; returns the bytes read.
fn read_into<R: Read>(reader: &mut R, buf: &mut BytesMut) -> io::Result<usize> {
    let start = buf.len();
    let spare = buf.capacity() - start;
    buf.resize(start + spare.max(1), 0);
    let result = loop {
        match reader.read(buf.get_mut(start..).unwrap_or_default()) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            other => break other,
        }
    };
    let read = *result.as_ref().unwrap_or(&0);
    buf.truncate(start + read);
    result
}
