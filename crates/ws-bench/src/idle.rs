//! Idle mode: open the connections and hold them, answering pings, until
//! told to stop; then close them all with the closing handshake.
//!
//! A held connection waits for readability before it reserves a read
//! buffer, so that ten thousand of them cost the load generator little.

use std::rc::Rc;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::time::timeout;
use ws_core::stream::WebSocket;
use ws_core::{Connection, Event, Message};

use crate::context::Context;
use crate::describe::describe_close;
use crate::failure::{Failure, io_message};
use crate::open::{close, flush_protocol};

/// One held connection.
pub async fn connection(context: Rc<Context>, index: usize) {
    let Some(opened) = context.open_websocket(index).await else {
        return;
    };
    let (mut stream, mut connection) = (opened.stream, opened.connection);
    if context.args.idle_echo {
        match echo_once(&context, stream, connection).await {
            Ok(parts) => (stream, connection) = parts,
            Err(error) => {
                context.shared.error(|| error);
                context.closed();
                return;
            }
        }
    }
    let mut stop = context.stop.clone();
    let held = async {
        loop {
            stream
                .readable()
                .await
                .map_err(|error| format!("read failed: {}", io_message(&error)))?;
            match stream.try_read_buf(connection.read_buffer()) {
                Ok(0) => {
                    return Err(
                        "the server closed the TCP connection without a close frame".to_owned()
                    );
                }
                Ok(_) => {}
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(error) => return Err(format!("read failed: {}", io_message(&error))),
            }
            loop {
                match connection.next_event() {
                    Ok(Some(Event::Close(frame))) => {
                        return Err(format!(
                            "the server closed an idle connection ({})",
                            describe_close(frame.as_ref())
                        ));
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(error) => return Err(Failure::from_session(error).message),
                }
            }
            flush_protocol(&mut stream, &mut connection).await?;
            connection.shrink_buffers();
        }
    };
    let outcome = tokio::select! {
        outcome = held => outcome,
        _ = stop.wait_for(|stop| *stop) => Ok(()),
    };
    let outcome = match outcome {
        Ok(()) => close(stream, connection).await,
        Err(error) => Err(error),
    };
    if let Err(error) = outcome {
        context.shared.error(|| error);
    }
    context.closed();
}

/// How long the echo of `--idle-echo` may take.
const ECHO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Sends the run's payload once and waits for its echo (`--idle-echo`),
/// checking it byte for byte.
async fn echo_once(
    context: &Context,
    stream: TcpStream,
    connection: Connection,
) -> Result<(TcpStream, Connection), String> {
    let payload = Bytes::copy_from_slice(&context.payload);
    let message = if context.args.text {
        let text = String::from_utf8(payload.to_vec())
            .map_err(|_| "the text payload is not valid UTF-8".to_owned())?;
        Message::from(text)
    } else {
        Message::Binary(payload.clone())
    };
    let mut ws = WebSocket::from_connection(stream, connection);
    let exchange = async {
        ws.send(message).await?;
        loop {
            match ws.recv().await? {
                Some(Event::Text(text)) => return Ok(Some(text.into_bytes())),
                Some(Event::Binary(data)) => return Ok(Some(data)),
                Some(Event::Close(_)) | None => return Ok(None),
                Some(_) => {}
            }
        }
    };
    let echoed: Result<Option<Bytes>, ws_core::Error> = match timeout(ECHO_TIMEOUT, exchange).await
    {
        Ok(result) => result,
        Err(_) => return Err("no echo within 30 s".to_owned()),
    };
    match echoed.map_err(|error| Failure::from_session(error).message)? {
        Some(echo) if echo == payload => Ok(ws.into_parts()),
        Some(_) => Err("the echo differs from the message sent".to_owned()),
        None => Err("the server closed the connection before echoing".to_owned()),
    }
}
