//! Idle mode: open the connections and hold them, answering pings, until
//! told to stop; then close them all with the closing handshake.
//!
//! A held connection waits for readability before it reserves a read
//! buffer, so that ten thousand of them cost the load generator little.

use std::rc::Rc;

use bytes::Buf;
use tokio::io::AsyncWriteExt;
use ws_core::Event;

use crate::bench::context::Context;
use crate::bench::open::close;
use crate::failure::{Failure, io_message};
use crate::output::describe_close;

/// One held connection.
pub async fn connection(context: Rc<Context>, index: usize) {
    let Some(opened) = context.open_websocket(index).await else {
        return;
    };
    let mut stream = opened.stream;
    let mut connection = opened.connection;
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
            while connection.wants_write() {
                // Pongs the protocol owes the server.
                let outbound = connection.outbound();
                let written = stream
                    .write(outbound.chunk())
                    .await
                    .map_err(|error| format!("write failed: {}", io_message(&error)))?;
                if written == 0 {
                    return Err("write failed: the socket accepts no more data".to_owned());
                }
                outbound.advance(written);
            }
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
