//! A whole server-side connection: the opening handshake, then an echo of
//! every message, as `ws-server` runs it.
//!
//! Input: a control byte, the read sizes (see `ChunkPlan::take`), then the
//! bytes from the client. Unless bit 6 of the control byte is set, a valid
//! Chromium request head is put in front of them, so that the fuzzer spends
//! its time on frames; with it set, the input must bring its own head. Bit 7
//! selects small limits; bit 5 makes the server start the closing handshake
//! after its third step; bit 4 turns permessage-deflate off, which the server
//! otherwise accepts when the head offers it (the Chromium head does), as
//! `ws-server` does.
//!
//! Invariants: the handshake answers every head with a response that parses
//! (101 or the error's status); afterwards, those of the `frames` target plus
//! the echoes, which must appear on the wire in order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws_core::deflate::DeflateConfig;
use ws_core::handshake::{
    AcceptOptions, DEFAULT_MAX_HEAD_SIZE, HandshakeError, ServerHandshake, UpgradeRequest,
    parse_response_head,
};
use ws_core::{CloseCode, Config};
use ws_core_fuzz::{ChunkPlan, Driver};

/// What Chromium sends for `new WebSocket("ws://127.0.0.1:9001/chat", ["chat"])`.
const CHROMIUM_HEAD: &[u8] = b"GET /chat HTTP/1.1\r\n\
Host: 127.0.0.1:9001\r\n\
Connection: Upgrade\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36\r\n\
Upgrade: websocket\r\n\
Origin: http://127.0.0.1:9001\r\n\
Sec-WebSocket-Version: 13\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
Sec-WebSocket-Protocol: chat\r\n\
\r\n";

/// The server's policy: speak `chat` if offered, refuse an `evil.example`
/// origin.
fn choose(request: &UpgradeRequest) -> Result<AcceptOptions, HandshakeError> {
    if let Some(origin) = request
        .origin
        .as_deref()
        .filter(|o| o.contains("evil.example"))
    {
        return Err(HandshakeError::ForbiddenOrigin(origin.to_owned()));
    }
    Ok(AcceptOptions::default().protocol(request.select_protocol(&["chat"])))
}

/// The response bytes must be one complete HTTP head with `status`.
fn check_response(response: &[u8], status: u16) {
    let parsed = parse_response_head(response, DEFAULT_MAX_HEAD_SIZE);
    let Ok(Some((head, _))) = parsed else {
        panic!("server response does not parse: {parsed:?}");
    };
    assert_eq!(head.status, status);
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let (plan, client_bytes) = ChunkPlan::take(control, rest);
    let stream = if control & 0x40 == 0 {
        [CHROMIUM_HEAD, client_bytes].concat()
    } else {
        client_bytes.to_vec()
    };
    let limits = if control & 0x80 != 0 {
        Config::default().max_frame_size(64).max_message_size(128)
    } else {
        Config::default()
    };
    let config = limits.deflate((control & 0x10 == 0).then(DeflateConfig::default));
    let mut chunks = plan.chunks(&stream);
    let mut handshake = ServerHandshake::new(config.clone());
    loop {
        match handshake.request() {
            Ok(Some(_)) => break,
            Ok(None) => {}
            Err(refused) => {
                check_response(&refused.response, refused.error.status());
                return;
            }
        }
        match chunks.next() {
            Some(chunk) => handshake.receive(chunk),
            None => return,
        }
    }
    let accepted = match handshake.accept(choose) {
        Ok(accepted) => accepted,
        Err(refused) => {
            check_response(&refused.response, refused.error.status());
            return;
        }
    };
    check_response(&accepted.response, 101);
    assert_eq!(accepted.request.accept_key().len(), 28);
    if accepted.deflate.is_some() {
        assert!(config.deflate.is_some(), "deflate negotiated while off");
    }
    let deflate = accepted.deflate.zip(config.deflate.clone());
    let connection = accepted.connection;
    let mut driver = Driver::new(connection, deflate, true);
    let close_after = (control & 0x20 != 0).then_some(3);
    for chunk in chunks {
        if close_after.is_some_and(|n| driver.steps() >= n) {
            driver.close(CloseCode::GOING_AWAY);
        }
        driver.feed(chunk);
    }
    driver.finish();
});
