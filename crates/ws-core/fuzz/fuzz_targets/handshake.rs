//! Arbitrary bytes as the opening handshake, read by a server (as a request
//! head) and by a client (as the response to a fixed request).
//!
//! Invariants: no panic; a parsed head never claims more bytes than it was
//! given or than the limit; every request, valid or not, gets a response
//! that parses back with the right status (101 carrying the accept key of
//! the request's key, or the error's status with a body of the advertised
//! length), whatever the client put in its headers; a client's verdict on a
//! response is consistent with what it offered. permessage-deflate offers
//! and answers go through the negotiation on both sides.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ws_core::deflate::{DeflateConfig, negotiate_client, negotiate_server};
use ws_core::handshake::{
    AcceptOptions, ClientRequest, DEFAULT_MAX_HEAD_SIZE, HandshakeError, REJECTION_BODY_LIMIT,
    ResponseHead, accept_response, parse_request_head, parse_response_head, reject_response,
    validate_response, validate_upgrade,
};

/// The request the client side checks responses against.
fn client_request() -> &'static ClientRequest {
    static REQUEST: OnceLock<ClientRequest> = OnceLock::new();
    REQUEST.get_or_init(
        || match ClientRequest::new("ws://127.0.0.1:9001/chat?room=1") {
            Ok(request) => request
                .protocol("chat")
                .protocol("superchat")
                .extensions("permessage-deflate; client_max_window_bits"),
            Err(error) => panic!("fixed URL refused: {error}"),
        },
    )
}

/// Parses a response this crate wrote; it must be whole, with `status`.
fn parse_own_response(response: &[u8], status: u16) -> (ResponseHead, &[u8]) {
    let parsed = parse_response_head(response, response.len() + 1);
    let Ok(Some((head, consumed))) = parsed else {
        panic!("own response does not parse: {parsed:?}\n{response:02x?}");
    };
    assert_eq!(head.status, status);
    (head, response.get(consumed..).unwrap_or_default())
}

/// A deflate setting with the smallest window and no context takeover.
fn small_window() -> DeflateConfig {
    DeflateConfig::default()
        .window_bits(9)
        .no_context_takeover(true)
}

/// Window sizes that deflate has (8–15 on the wire; `at_least` for ours).
fn check_window_bits(bits: u8, at_least: u8) {
    assert!((at_least..=15).contains(&bits), "window bits {bits}");
}

fn check_rejection(error: &HandshakeError) {
    let response = reject_response(error);
    let (head, body) = parse_own_response(&response, error.status());
    let length = head
        .headers
        .get_str("Content-Length")
        .map(str::parse::<usize>);
    assert_eq!(
        length,
        Some(Ok(body.len())),
        "Content-Length of the rejection"
    );
    // The body is the error's message on one line.
    assert_eq!(body.iter().filter(|&&b| b == b'\n').count(), 1);
    assert!(!body.contains(&b'\r'));
}

fn serve(data: &[u8], limit: usize) {
    match parse_request_head(data, limit) {
        Ok(Some((head, consumed))) => {
            assert!(consumed <= data.len() && consumed <= limit);
            let _ = (head.path(), head.query());
            let is_upgrade = head.is_upgrade();
            match validate_upgrade(head) {
                Ok(request) => {
                    assert!(is_upgrade);
                    // Echo client-controlled text into the response, as an
                    // application might: it must not be able to split it.
                    let mut headers = vec![(
                        "X-Origin".to_owned(),
                        request.origin.clone().unwrap_or_default(),
                    )];
                    if let Some(first) = request.protocols.first() {
                        headers.push((first.clone(), request.host.clone()));
                    }
                    if let Some(offer) = request.extensions.first() {
                        headers.push(("X-Offer".to_owned(), offer.clone()));
                    }
                    let deflate = negotiate_server(&request.extensions, &small_window());
                    if let Some(params) = &deflate {
                        check_window_bits(params.server_max_window_bits, 9);
                        check_window_bits(params.client_max_window_bits, 8);
                    }
                    let mut accept = AcceptOptions::default()
                        .protocol(request.select_protocol(&["chat", "superchat"]))
                        .extensions(deflate.map(|params| params.to_header()));
                    accept.headers = headers;
                    let response = accept_response(&request, &accept);
                    let (head, rest) = parse_own_response(&response, 101);
                    assert!(rest.is_empty(), "bytes after the 101 head");
                    let sent = head.headers.get_str("Sec-WebSocket-Accept");
                    assert_eq!(sent, Some(request.accept_key().as_str()));
                }
                Err(error) => check_rejection(&error),
            }
        }
        Ok(None) => assert!(data.len() < limit, "incomplete head past the limit"),
        Err(error) => check_rejection(&error),
    }
}

fn connect(data: &[u8], limit: usize) {
    let request = client_request();
    match parse_response_head(data, limit) {
        Ok(Some((head, consumed))) => {
            assert!(consumed <= data.len() && consumed <= limit);
            let status = head.status;
            let body = data.get(consumed..).unwrap_or_default();
            match validate_response(request, head, body) {
                Ok(negotiated) => {
                    assert_eq!(status, 101);
                    if let Some(protocol) = &negotiated.protocol {
                        assert!(request.protocols().contains(protocol));
                    }
                    if let Some(extensions) = &negotiated.extensions {
                        for config in [DeflateConfig::default(), small_window()] {
                            if let Ok(params) = negotiate_client(extensions, &config) {
                                check_window_bits(params.server_max_window_bits, 8);
                                assert!(params.server_max_window_bits <= config.window_bits);
                                check_window_bits(params.client_max_window_bits, 8);
                            }
                        }
                    }
                }
                Err(HandshakeError::Rejected(rejection)) => {
                    assert_ne!(status, 101);
                    assert_eq!(rejection.status, status);
                    assert!(rejection.body.len() <= REJECTION_BODY_LIMIT);
                    assert!(body.starts_with(&rejection.body));
                    let _ = (rejection.status_line(), rejection.body_first_line());
                    let message = HandshakeError::Rejected(rejection).to_string();
                    assert!(!message.contains(['\r', '\n']), "{message:?}");
                }
                Err(error) => {
                    assert_eq!(status, 101);
                    assert!(!error.to_string().contains(['\r', '\n']));
                }
            }
        }
        Ok(None) => assert!(data.len() < limit),
        Err(error) => {
            assert!(!error.to_string().contains(['\r', '\n']));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    serve(data, DEFAULT_MAX_HEAD_SIZE);
    connect(data, DEFAULT_MAX_HEAD_SIZE);
    // A small limit taken from the input reaches the "head too large" paths.
    if let Some(&first) = data.first() {
        let limit = usize::from(first) + 1;
        serve(data, limit);
        connect(data, limit);
    }
});
