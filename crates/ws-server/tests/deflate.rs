//! permessage-deflate (RFC 7692) against the real binary: negotiated by
//! default, echoed byte for byte, refusable and cappable from the CLI.

// Test helpers may panic: a panic is a test failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{ServerProcess, next_event};
use ws_core::blocking::WebSocket;
use ws_core::deflate::DeflateConfig;
use ws_core::handshake::{ClientRequest, Negotiated};
use ws_core::{Config, Event, Message};

fn connect_deflate(server: &ServerProcess, deflate: DeflateConfig) -> (common::Client, Negotiated) {
    let request = ClientRequest::new(&server.url()).unwrap();
    let config = Config::default().deflate(Some(deflate));
    WebSocket::connect(server.tcp(), &request, config).expect("handshake")
}

#[test]
fn deflate_is_negotiated_and_messages_echo_byte_for_byte() {
    let server = ServerProcess::start(&[]);
    let (mut client, negotiated) = connect_deflate(&server, DeflateConfig::default());
    // No context takeover either way unless --deflate-context-takeover.
    assert_eq!(
        negotiated.extensions.as_deref(),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    );
    assert!(client.connection().deflate_enabled());
    let json = r#"{"event":"tick","seq":1,"payload":[0,0,0,0]}"#.repeat(40);
    let random: Vec<u8> = (0..70_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for _ in 0..3 {
        client.send_text(&json).unwrap();
        assert_eq!(next_event(&mut client), Event::Text(json.clone().into()));
        client.send(Message::Binary(random.clone().into())).unwrap();
        assert_eq!(
            next_event(&mut client),
            Event::Binary(random.clone().into())
        );
    }
}

#[test]
fn deflate_context_takeover_keeps_context_when_the_client_allows_it() {
    let server = ServerProcess::start(&["--deflate-context-takeover"]);
    let (mut client, negotiated) = connect_deflate(&server, DeflateConfig::default());
    assert_eq!(negotiated.extensions.as_deref(), Some("permessage-deflate"));
    let json = r#"{"event":"tick","seq":1,"payload":[0,0,0,0]}"#.repeat(40);
    for _ in 0..3 {
        client.send_text(&json).unwrap();
        assert_eq!(next_event(&mut client), Event::Text(json.clone().into()));
    }
    // A client that asks for no context takeover gets it all the same.
    let asking = DeflateConfig::default().no_context_takeover(true);
    let (mut client, negotiated) = connect_deflate(&server, asking);
    assert_eq!(
        negotiated.extensions.as_deref(),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    );
    client.send_text(&json).unwrap();
    assert_eq!(next_event(&mut client), Event::Text(json.into()));
}

#[test]
fn no_deflate_declines_the_offer() {
    let server = ServerProcess::start(&["--no-deflate"]);
    let (mut client, negotiated) = connect_deflate(&server, DeflateConfig::default());
    assert_eq!(negotiated.extensions, None);
    assert!(!client.connection().deflate_enabled());
    client.send_text("plain").unwrap();
    assert_eq!(next_event(&mut client), Event::Text("plain".into()));
}

#[test]
fn window_cap_is_negotiated_down() {
    let server = ServerProcess::start(&["--deflate-window-bits", "10"]);
    let (mut client, negotiated) = connect_deflate(&server, DeflateConfig::default());
    assert_eq!(
        negotiated.extensions.as_deref(),
        Some(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=10"
        )
    );
    let text = "window ".repeat(5000);
    client.send_text(&text).unwrap();
    assert_eq!(next_event(&mut client), Event::Text(text.into()));
}

#[test]
fn compressed_message_over_the_limit_closes_with_1009() {
    let server = ServerProcess::start(&["--max-message-size", "64KiB"]);
    let (mut client, _) = connect_deflate(&server, DeflateConfig::default());
    // 1 MiB of zeros: a few KiB on the wire, far over the limit once inflated.
    client.send_binary(&vec![0u8; 1 << 20]).unwrap();
    assert_eq!(common::expect_close(&mut client), Some(1009));
}
