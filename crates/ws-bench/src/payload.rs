//! The payload a run sends, and the frames that carry it, built once.
//!
//! Frames are made by a client-role [`Connection`] of ws-core (framing,
//! masking and compression stay ws-core's): each of a small pool gets its own
//! random mask key, and the pool is sent in rotation so that no frame is built
//! while the clock runs.

use std::fmt::Write as _;

use bytes::Bytes;
use rand::RngCore;
use ws_core::deflate::{DeflateConfig, DeflateParams};
use ws_core::{Config, Connection, Error, Role};

use crate::args::PayloadKind;

/// Pre-masked frames kept per connection: enough that consecutive messages
/// use different keys, few enough to stay small with 16 KiB payloads.
pub const POOL_SIZE: usize = 4;

/// The payload of every message of a run.
pub fn make_payload(kind: PayloadKind, size: usize, text: bool) -> Vec<u8> {
    match kind {
        PayloadKind::Zeros => vec![0; size],
        PayloadKind::Json => json_like(size),
        PayloadKind::Random => {
            let mut bytes = vec![0; size];
            rand::rng().fill_bytes(&mut bytes);
            if text {
                // Printable ASCII: valid UTF-8, still hard to compress.
                for byte in &mut bytes {
                    *byte = b' ' + *byte % 95;
                }
            }
            bytes
        }
    }
}

/// An array of JSON records with varying values, cut to `size` bytes: text
/// that compresses the way typical WebSocket traffic does. Deterministic,
/// so that runs compare.
fn json_like(size: usize) -> Vec<u8> {
    let mut text = String::with_capacity(size + 160);
    text.push('[');
    let mut state: u32 = 0x9e37_79b9;
    let mut id = 0u32;
    while text.len() < size {
        // A linear congruential step: cheap variety in the numbers.
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let user = state >> 20;
        let score = (state >> 8) % 1000;
        if id > 0 {
            text.push(',');
        }
        let _ = write!(
            text,
            r#"{{"id":{id},"user":"user-{user}","email":"user-{user}@example.com","active":{},"score":{}.{},"tags":["alpha","beta"]}}"#,
            state & 1 == 0,
            score / 10,
            score % 10
        );
        id += 1;
    }
    let mut bytes = text.into_bytes();
    bytes.truncate(size);
    bytes
}

/// Ready-made frames of one connection, sent in rotation.
#[derive(Debug)]
pub struct FramePool {
    frames: Vec<Bytes>,
    next: usize,
}

impl FramePool {
    /// Builds [`POOL_SIZE`] masked frames carrying `payload` (as text when
    /// `text`), compressed when `deflate` gives the negotiated parameters.
    ///
    /// The compressor is reset after every frame (client no context
    /// takeover, which a client may always choose), so that every frame can
    /// be sent in any order.
    pub fn build(
        payload: &[u8],
        text: bool,
        deflate: Option<(DeflateParams, &DeflateConfig)>,
    ) -> Result<Self, Error> {
        let mut factory = Connection::new(Role::Client, Config::default());
        if let Some((params, config)) = deflate {
            let params = params.client_no_context_takeover(true);
            factory.enable_deflate(params, config);
        }
        let text = if text {
            Some(
                std::str::from_utf8(payload)
                    .map_err(|_| Error::InvalidUse("a text payload must be valid UTF-8"))?,
            )
        } else {
            None
        };
        let mut frames = Vec::with_capacity(POOL_SIZE);
        for _ in 0..POOL_SIZE {
            match text {
                Some(text) => factory.queue_text(text)?,
                None => factory.queue_binary(payload)?,
            }
            frames.push(Bytes::from(factory.take_outbound()));
        }
        Ok(Self { frames, next: 0 })
    }

    /// The next frame to send.
    pub fn next_frame(&mut self) -> &[u8] {
        let index = self.next;
        self.next = (self.next + 1) % self.frames.len().max(1);
        self.frames.get(index).map_or(&[], |frame| frame)
    }

    /// The length of a frame on the wire (all frames have the same).
    pub fn frame_len(&self) -> usize {
        self.frames.first().map_or(0, Bytes::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ws_core::Event;
    use ws_core::deflate::{client_offer, negotiate_client, negotiate_server};

    /// What a server makes of the frames: the events it decodes.
    fn server_decodes(
        frames: &[u8],
        deflate: Option<(DeflateParams, &DeflateConfig)>,
    ) -> Vec<Event> {
        let mut server = Connection::new(Role::Server, Config::default());
        if let Some((params, config)) = deflate {
            server.enable_deflate(params, config);
        }
        server.receive(frames);
        let mut events = Vec::new();
        while let Some(event) = server.next_event().unwrap() {
            events.push(event);
        }
        events
    }

    #[test]
    fn payloads_have_the_requested_size() {
        for kind in [PayloadKind::Random, PayloadKind::Json, PayloadKind::Zeros] {
            for size in [0, 1, 20, 1024, 16384] {
                assert_eq!(make_payload(kind, size, false).len(), size, "{kind:?}");
                assert_eq!(make_payload(kind, size, true).len(), size, "{kind:?}");
            }
        }
    }

    #[test]
    fn text_payloads_are_valid_utf8() {
        for kind in [PayloadKind::Random, PayloadKind::Json, PayloadKind::Zeros] {
            assert!(std::str::from_utf8(&make_payload(kind, 4096, true)).is_ok());
        }
    }

    #[test]
    fn json_payload_is_deterministic_json_like_text() {
        let payload = make_payload(PayloadKind::Json, 300, false);
        assert_eq!(payload, make_payload(PayloadKind::Json, 300, false));
        assert!(payload.starts_with(br#"[{"id":0,"user":"user-"#));
    }

    #[test]
    fn pool_frames_decode_to_the_payload_with_distinct_mask_keys() {
        let payload = make_payload(PayloadKind::Random, 100, false);
        let mut pool = FramePool::build(&payload, false, None).unwrap();
        let frames: Vec<Vec<u8>> = (0..POOL_SIZE).map(|_| pool.next_frame().to_vec()).collect();
        assert_eq!(pool.frame_len(), 2 + 4 + 100);
        // The mask key follows the two header bytes.
        let keys: std::collections::HashSet<&[u8]> = frames.iter().map(|f| &f[2..6]).collect();
        assert!(keys.len() > 1, "all frames share one mask key");
        // The rotation starts over.
        assert_eq!(pool.next_frame(), frames[0].as_slice());
        let events = server_decodes(&frames.concat(), None);
        assert_eq!(events.len(), POOL_SIZE);
        for event in events {
            assert_eq!(event, Event::Binary(payload.clone().into()));
        }
    }

    #[test]
    fn text_pool_sends_text_frames() {
        let payload = make_payload(PayloadKind::Json, 64, true);
        let mut pool = FramePool::build(&payload, true, None).unwrap();
        let events = server_decodes(pool.next_frame(), None);
        let expected = String::from_utf8(payload).unwrap();
        assert_eq!(events, [Event::Text(expected.into())]);
    }

    #[test]
    fn compressed_frames_decode_in_any_order() {
        let config = DeflateConfig::default();
        let offer = client_offer(&config);
        let server_params = negotiate_server(&[offer], &config).unwrap();
        let client_params = negotiate_client(&server_params.to_header(), &config).unwrap();
        let payload = make_payload(PayloadKind::Json, 1024, false);
        let mut pool = FramePool::build(&payload, false, Some((client_params, &config))).unwrap();
        assert!(pool.frame_len() < payload.len() / 2, "{}", pool.frame_len());
        let frames: Vec<Vec<u8>> = (0..POOL_SIZE).map(|_| pool.next_frame().to_vec()).collect();
        // Out of order and repeated: each frame stands on its own.
        let stream = [&frames[2], &frames[0], &frames[0], &frames[3], &frames[1]]
            .map(|f| f.as_slice())
            .concat();
        let events = server_decodes(&stream, Some((server_params, &config)));
        assert_eq!(events.len(), 5);
        for event in events {
            assert_eq!(event, Event::Binary(payload.clone().into()));
        }
    }

    #[test]
    fn invalid_utf8_cannot_become_a_text_pool() {
        assert!(FramePool::build(&[0xff, 0xfe], true, None).is_err());
    }
}
