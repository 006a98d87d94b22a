//! permessage-deflate (RFC 7692): negotiation, and the compressor and
//! decompressor a connection keeps.
//!
//! Switch it on in the [`Config`](crate::Config); the handshake then offers
//! it (client) or accepts a compatible offer (server), and the connection
//! compresses and inflates as negotiated:
//!
//! ```
//! use ws_core::Config;
//! use ws_core::deflate::DeflateConfig;
//!
//! // Level 1, and no context takeover: nothing is kept between messages.
//! let deflate = DeflateConfig::default().level(1).no_context_takeover(true);
//! let config = Config::default().deflate(Some(deflate));
//! # let _ = config;
//! ```
//!
//! Messages are compressed with raw deflate and a sync flush; the trailing
//! `00 00 ff ff` is stripped on send and put back on receive. The
//! decompressor writes into a buffer that never grows past the message size
//! limit, so a small frame that inflates to gigabytes fails the connection
//! with 1009 having allocated at most the limit.
//!
//! # Window sizes
//!
//! zlib (and `zlib-rs`, the backend used here) cannot compress with an 8-bit
//! window in raw mode. When a peer asks *us* to compress with
//! `max_window_bits=8`, a server declines that offer and a client sends its
//! messages uncompressed (always allowed); a peer that compresses with an
//! 8-bit window is decoded with a 9-bit one, which reads it correctly.
//!
//! # Memory per connection
//!
//! A direction without context takeover keeps nothing per connection: each
//! message borrows the thread's shared compressor or decompressor (see
//! `pool`) and gives it back reset, so a connection holds no zlib state
//! between messages. A server negotiates that by default, answering every
//! offer with `server_no_context_takeover` and `client_no_context_takeover`
//! ([`DeflateConfig::context_takeover`]); a thread then holds one libdeflate
//! compressor per level (136 KiB at the default level), the encoder's
//! tables (a 128 KiB hash table of which a message touches only what its
//! length needs, and up to 70 KiB for a block's symbols and counts), and one
//! zlib decompressor per window size, however many connections it serves.
//!
//! With context takeover a connection keeps its own, created on the first
//! message that needs them. Measured with a counting allocator (`cargo test
//! -p ws-core --test deflate_memory -- --nocapture`), zlib-rs at flate2's
//! default memory level, after one message:
//!
//! | window bits | compressor | decompressor |
//! |---|---|---|
//! | 9  | 245 KiB | 46 KiB |
//! | 10 | 247 KiB | 46 KiB |
//! | 11 | 251 KiB | 46 KiB |
//! | 12 | 259 KiB | 46 KiB |
//! | 13 | 275 KiB | 46 KiB |
//! | 14 | 307 KiB | 46 KiB |
//! | 15 | 371 KiB | 46 KiB |
//!
//! The compressor's hash tables (fixed by the memory level) dominate, so a
//! smaller window saves less than the window itself suggests; zlib-rs's
//! decompressor allocates a full 32 KiB window whatever the negotiated size.
//!
//! # Messages compressed alone
//!
//! Without context takeover a message up to 2 KiB (at levels 1 to 3) is
//! compressed by this crate's own encoder, which sizes its tables to the
//! message instead of clearing fixed ones for every message, and ends it
//! with the header of an empty stored block, like a sync flush. A longer
//! message goes to libdeflate, whose whole-buffer compressor costs about half
//! of what a reset zlib stream does and compresses JSON-like text a little
//! smaller; its output ends with a block whose BFINAL bit is set, as RFC 7692
//! §7.2.3.3 allows. libdeflate cannot limit its window, so a message longer
//! than a negotiated window under 32 KiB goes to the encoder, which can. With
//! context takeover zlib-rs compresses, ending with a sync flush.
//!
//! # Incompressible data
//!
//! A binary message whose first KiB is spread evenly over the byte values
//! (random, encrypted or already compressed data) is sent uncompressed
//! without being compressed first; text is always compressed (UTF-8 is
//! never that even unless built to be). A message compressed on its own that
//! did not shrink is sent as it was: RSV1 is chosen per message.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::error::ProtocolError;
use crate::protocol::Role;

mod encoder;

/// The extension's registered name.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The smallest window the backend can compress with.
const MIN_WINDOW_BITS: u8 = 9;
/// The largest window deflate has (32 KiB).
const MAX_WINDOW_BITS: u8 = 15;
/// What a sync flush ends with; stripped on the wire (RFC 7692 §7.2.1).
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// What this endpoint is willing to negotiate.
///
/// Start from the defaults and change what you need with the builder
/// methods, which have the fields' names:
///
/// ```
/// use ws_core::Config;
/// use ws_core::deflate::DeflateConfig;
///
/// let deflate = DeflateConfig::default().window_bits(10).no_context_takeover(true);
/// let config = Config::default().deflate(Some(deflate));
/// # assert!(config.deflate.is_some());
/// ```
///
/// `#[non_exhaustive]` like [`Config`](crate::Config): built from
/// [`DeflateConfig::default()`], never with a struct literal.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// The largest LZ77 window, in bits (9–15). Default 15; see
    /// [`window_bits()`](Self::window_bits()).
    pub window_bits: u8,
    /// Ask for no context takeover in both directions. Default false; see
    /// [`no_context_takeover()`](Self::no_context_takeover()).
    pub no_context_takeover: bool,
    /// A server keeps a compression context per connection when the client
    /// allows it. Default false; see
    /// [`context_takeover()`](Self::context_takeover()).
    pub context_takeover: bool,
    /// The zlib compression level (0–9). Default 2; see
    /// [`level()`](Self::level()).
    pub level: u32,
    /// Messages shorter than this are sent uncompressed. Default 64 bytes;
    /// see [`min_size()`](Self::min_size()).
    pub min_size: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            window_bits: MAX_WINDOW_BITS,
            no_context_takeover: false,
            context_takeover: false,
            level: 2,
            min_size: 64,
        }
    }
}

impl DeflateConfig {
    /// The largest LZ77 window, in bits (9–15), that this endpoint uses to
    /// compress and accepts from the peer. Default 15 (32 KiB).
    ///
    /// A smaller window compresses less well and saves less memory than its
    /// size suggests (the compressor's hash tables dominate, see the table in
    /// the [module docs](self)); values outside 9–15 are clamped. A server
    /// with a smaller window declines clients that cannot be limited.
    pub fn window_bits(mut self, bits: u8) -> Self {
        self.window_bits = bits;
        self
    }

    /// Ask for no context takeover in both directions: every message is
    /// compressed on its own, so no compression state is kept between
    /// messages. Default false.
    ///
    /// A client offers `server_no_context_takeover;
    /// client_no_context_takeover` and refuses a server that does not grant
    /// the first; a server grants both even with
    /// [`context_takeover`](Self::context_takeover()) on (a server without it
    /// answers with both anyway). The cheapest setting for many mostly idle
    /// connections, at some cost in ratio, since a message can no longer
    /// refer back to the ones before it.
    pub fn no_context_takeover(mut self, on: bool) -> Self {
        self.no_context_takeover = on;
        self
    }

    /// A server's choice: keep a compression context per connection and
    /// direction when the client allows it. Default false.
    ///
    /// Off, a server answers every offer with `server_no_context_takeover`
    /// and `client_no_context_takeover` (RFC 7692 §7.1.1.1 and §7.1.1.2 let
    /// it add both unasked), so its connections hold no zlib state between
    /// messages: each message borrows the thread's shared compressor or
    /// decompressor. On, a connection keeps its own (about 420 KiB with
    /// 15-bit windows, see the table in the [module docs](self)), which pays
    /// only when consecutive messages repeat each other; a client that asks
    /// for no context takeover still gets it. A client's offer does not
    /// depend on it.
    pub fn context_takeover(mut self, on: bool) -> Self {
        self.context_takeover = on;
        self
    }

    /// The zlib compression level (0–9; higher values are capped at 9).
    /// Default 2.
    ///
    /// With context takeover zlib-rs compresses at this level: level 2 is
    /// about as fast as level 1 on the JSON-like text WebSocket traffic
    /// usually carries and compresses it smaller, and, unlike level 1 (which
    /// codes every literal with the fixed Huffman table), it stores
    /// incompressible data instead of growing it by 5%. Messages compressed
    /// alone go through libdeflate, at its level 1 for levels 1 to 3 (faster
    /// and smaller on such text than its levels 2 and 3) and at the same
    /// number above. Higher levels buy a few percent of size for much more
    /// CPU per message.
    pub fn level(mut self, level: u32) -> Self {
        self.level = level;
        self
    }

    /// Messages shorter than this are sent uncompressed (RSV1 clear).
    /// Default 64 bytes.
    ///
    /// Below a few dozen bytes the deflate overhead outweighs the gain and
    /// only costs CPU; raise it to compress only large messages, lower it
    /// (to 0) to compress everything.
    pub fn min_size(mut self, bytes: usize) -> Self {
        self.min_size = bytes;
        self
    }
}

/// The parameters both ends agreed on.
///
/// Negotiated in the handshake (see [`negotiate_server`] and
/// [`negotiate_client`]). A test peer that switches deflate on by hand with
/// [`Connection::enable_deflate`](crate::Connection::enable_deflate) builds
/// them from [`DeflateParams::default()`] (both windows 15 bits, context
/// takeover both ways) with the builder methods, which have the fields'
/// names. `#[non_exhaustive]`: extension parameters may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateParams {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// The server compresses with at most this window (8–15).
    pub server_max_window_bits: u8,
    /// The client compresses with at most this window (8–15).
    pub client_max_window_bits: u8,
}

impl Default for DeflateParams {
    fn default() -> Self {
        Self {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
        }
    }
}

impl DeflateParams {
    /// Sets whether the server resets its compressor after every message.
    pub fn server_no_context_takeover(mut self, on: bool) -> Self {
        self.server_no_context_takeover = on;
        self
    }

    /// Sets whether the client resets its compressor after every message.
    pub fn client_no_context_takeover(mut self, on: bool) -> Self {
        self.client_no_context_takeover = on;
        self
    }

    /// Sets the server's largest compression window, in bits (8–15).
    pub fn server_max_window_bits(mut self, bits: u8) -> Self {
        self.server_max_window_bits = bits;
        self
    }

    /// Sets the client's largest compression window, in bits (8–15).
    pub fn client_max_window_bits(mut self, bits: u8) -> Self {
        self.client_max_window_bits = bits;
        self
    }

    /// The `Sec-WebSocket-Extensions` value that states these parameters (the
    /// server's response).
    pub fn to_header(&self) -> String {
        let mut header = EXTENSION_NAME.to_owned();
        if self.server_no_context_takeover {
            header.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            header.push_str("; client_no_context_takeover");
        }
        if self.server_max_window_bits < MAX_WINDOW_BITS {
            header.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_max_window_bits
            ));
        }
        if self.client_max_window_bits < MAX_WINDOW_BITS {
            header.push_str(&format!(
                "; client_max_window_bits={}",
                self.client_max_window_bits
            ));
        }
        header
    }

    /// (window bits, no context takeover) for what `role` sends.
    fn sending(&self, role: Role) -> (u8, bool) {
        match role {
            Role::Server => (self.server_max_window_bits, self.server_no_context_takeover),
            Role::Client => (self.client_max_window_bits, self.client_no_context_takeover),
        }
    }

    /// (window bits, no context takeover) for what `role` receives.
    fn receiving(&self, role: Role) -> (u8, bool) {
        match role {
            Role::Server => self.sending(Role::Client),
            Role::Client => self.sending(Role::Server),
        }
    }
}

// ---- negotiation ----

/// One `permessage-deflate` element of an offer or response, parsed.
#[derive(Debug, Default, PartialEq, Eq)]
struct Parameters {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (allowed in an offer only).
    client_max_window_bits: Option<Option<u8>>,
}

/// Splits an extension element into its name and `(name, value)` parameters;
/// names are lowercased, values unquoted.
fn split_element(element: &str) -> (String, Vec<(String, Option<String>)>) {
    let mut parts = element.split(';').map(str::trim);
    let name = parts.next().unwrap_or_default().to_ascii_lowercase();
    let params = parts
        .filter(|part| !part.is_empty())
        .map(|part| match part.split_once('=') {
            Some((key, value)) => (key.trim().to_ascii_lowercase(), Some(unquote(value.trim()))),
            None => (part.to_ascii_lowercase(), None),
        })
        .collect();
    (name, params)
}

/// The content of a quoted-string (RFC 9110 §5.6.4), or the token as is.
fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut escaped = false;
            for c in inner.chars() {
                if escaped || c != '\\' {
                    out.push(c);
                    escaped = false;
                } else {
                    escaped = true;
                }
            }
            out
        }
        None => value.to_owned(),
    }
}

/// A window size value: 1–2 decimal digits, 8 to 15.
fn window_bits(value: Option<&str>) -> Result<u8, String> {
    let value = value.ok_or("window bits need a value")?;
    if value.is_empty() || value.len() > 2 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid window bits {value:?}"));
    }
    match value.parse::<u8>() {
        Ok(bits @ 8..=15) => Ok(bits),
        _ => Err(format!("window bits {value} outside 8..=15")),
    }
}

/// Parses a `permessage-deflate` element's parameters, rejecting unknown,
/// duplicated and malformed ones (RFC 7692 §7.1).
fn parse_parameters(params: &[(String, Option<String>)]) -> Result<Parameters, String> {
    let mut parsed = Parameters::default();
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in params {
        if seen.contains(&name.as_str()) {
            return Err(format!("duplicate parameter {name}"));
        }
        seen.push(name);
        match name.as_str() {
            "server_no_context_takeover" | "client_no_context_takeover" if value.is_some() => {
                return Err(format!("{name} takes no value"));
            }
            "server_no_context_takeover" => parsed.server_no_context_takeover = true,
            "client_no_context_takeover" => parsed.client_no_context_takeover = true,
            "server_max_window_bits" => {
                parsed.server_max_window_bits = Some(window_bits(value.as_deref())?);
            }
            "client_max_window_bits" => {
                parsed.client_max_window_bits = Some(match value {
                    None => None,
                    Some(value) => Some(window_bits(Some(value))?),
                });
            }
            other => return Err(format!("unknown parameter {other}")),
        }
    }
    Ok(parsed)
}

/// The server's choice among the client's offers (the elements of its
/// `Sec-WebSocket-Extensions` headers): the first `permessage-deflate` offer
/// it can honour, with the response header value. Offers with invalid or
/// duplicated parameters are declined, not failed (RFC 7692 §5).
pub fn negotiate_server(offers: &[String], config: &DeflateConfig) -> Option<DeflateParams> {
    let cap = config.window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
    offers.iter().find_map(|element| {
        let (name, params) = split_element(element);
        if name != EXTENSION_NAME {
            return None;
        }
        let offer = parse_parameters(&params).ok()?;
        // Our compressor's window: what the client allows, within our cap.
        let server_bits = match offer.server_max_window_bits {
            Some(bits) if bits < MIN_WINDOW_BITS => return None,
            Some(bits) => bits.min(cap),
            None => cap,
        };
        // The client's window: we may only limit it if it said it can be.
        let client_bits = match offer.client_max_window_bits {
            Some(offered) => offered.unwrap_or(MAX_WINDOW_BITS).min(cap),
            None if cap < MAX_WINDOW_BITS => return None,
            None => MAX_WINDOW_BITS,
        };
        // Without context takeover (the default) both parameters are
        // answered whatever the offer: RFC 7692 §7.1.1.1 lets a server add
        // `server_no_context_takeover` unasked, and §7.1.1.2 lets it include
        // `client_no_context_takeover` in any response. A client that asks
        // for either always gets it (§7.1.1.1 requires the first; granting
        // the second saves the decompressor's context).
        let keep = config.context_takeover && !config.no_context_takeover;
        Some(DeflateParams {
            server_no_context_takeover: offer.server_no_context_takeover || !keep,
            client_no_context_takeover: offer.client_no_context_takeover || !keep,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
        })
    })
}

/// The client's offer for its `Sec-WebSocket-Extensions` header.
pub fn client_offer(config: &DeflateConfig) -> String {
    let cap = config.window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
    let mut offer = format!("{EXTENSION_NAME}; client_max_window_bits");
    if cap < MAX_WINDOW_BITS {
        offer.push_str(&format!("; server_max_window_bits={cap}"));
    }
    if config.no_context_takeover {
        offer.push_str("; server_no_context_takeover; client_no_context_takeover");
    }
    offer
}

/// Checks the server's response to [`client_offer`]: one `permessage-deflate`
/// element whose parameters are valid and within what was offered.
pub fn negotiate_client(response: &str, config: &DeflateConfig) -> Result<DeflateParams, String> {
    let elements: Vec<&str> = response
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let [element] = elements.as_slice() else {
        return Err(format!("expected one extension, got {response:?}"));
    };
    let (name, params) = split_element(element);
    if name != EXTENSION_NAME {
        return Err(format!("unknown extension {name:?}"));
    }
    let answer = parse_parameters(&params)?;
    let cap = config.window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
    let server_bits = answer.server_max_window_bits.unwrap_or(MAX_WINDOW_BITS);
    if server_bits > cap {
        return Err(format!(
            "server_max_window_bits={server_bits} exceeds the {cap} offered"
        ));
    }
    if config.no_context_takeover && !answer.server_no_context_takeover {
        return Err("server_no_context_takeover was requested but not granted".to_owned());
    }
    let client_bits = match answer.client_max_window_bits {
        None => MAX_WINDOW_BITS,
        Some(None) => return Err("client_max_window_bits needs a value in a response".to_owned()),
        Some(Some(bits)) => bits,
    };
    Ok(DeflateParams {
        server_no_context_takeover: answer.server_no_context_takeover,
        client_no_context_takeover: answer.client_no_context_takeover || config.no_context_takeover,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
    })
}

// ---- the codec ----

/// The compressor settings that decide the output for a message compressed
/// alone: see [`Deflate::standalone_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StandaloneKey {
    /// The window the compressor is created with (after clamping).
    window_bits: u8,
    /// The zlib level.
    level: u32,
}

impl StandaloneKey {
    fn new_compressor(self) -> Box<Compress> {
        Box::new(Compress::new_with_window_bits(
            Compression::new(self.level),
            false,
            self.window_bits,
        ))
    }
}

fn new_decompressor(bits: u8) -> Box<Decompress> {
    Box::new(Decompress::new_with_window_bits(false, bits))
}

/// A connection's compression state, one per direction.
///
/// A direction with context takeover keeps its own compressor or
/// decompressor, created on the first message that needs it. A direction
/// without borrows one from the thread's [`pool`] for each message and gives
/// it back, reset, once the message is done, so that between messages the
/// connection holds no zlib state at all. (A compressed message that arrives
/// in pieces keeps the borrowed decompressor until its last frame.)
pub(crate) struct Deflate {
    params: DeflateParams,
    role: Role,
    level: u32,
    min_size: usize,
    compressor: Option<Box<Compress>>,
    decompressor: Option<Box<Decompress>>,
}

impl std::fmt::Debug for Deflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflate")
            .field("params", &self.params)
            .field("role", &self.role)
            .field("compressor", &self.compressor.is_some())
            .field("decompressor", &self.decompressor.is_some())
            .finish()
    }
}

impl Deflate {
    pub(crate) fn new(params: DeflateParams, role: Role, config: &DeflateConfig) -> Self {
        Self {
            params,
            role,
            level: config.level.min(9),
            min_size: config.min_size,
            compressor: None,
            decompressor: None,
        }
    }

    /// An empty buffer to compress a message into: the thread's, which keeps
    /// its capacity from message to message (and from connection to
    /// connection).
    pub(crate) fn take_output() -> Vec<u8> {
        pool::take_output()
    }

    /// Gives back the buffer of [`take_output`](Self::take_output).
    pub(crate) fn give_output(output: Vec<u8>) {
        pool::give_output(output);
    }

    /// Whether `payload` goes out compressed: long enough, a window the
    /// backend can honour, and text or bytes that look compressible.
    ///
    /// Text is not sampled: UTF-8 cannot use 13 of the 256 byte values and
    /// ties its continuation bytes to its lead bytes, so only text built for
    /// it spreads as evenly as random bytes do, and even random printable
    /// ASCII (95 values) is judged compressible, which Huffman coding alone
    /// makes it. On a 1 KiB JSON echo the sample was 4 % of the work.
    pub(crate) fn compresses(&self, payload: &[u8], text: bool) -> bool {
        payload.len() >= self.min_size
            && self.params.sending(self.role).0 >= MIN_WINDOW_BITS
            && (text || looks_compressible(payload))
    }

    /// What a message this side compresses depends on besides its payload,
    /// when it sends with no context takeover (every message compressed
    /// alone, from a fresh compressor); `None` with context takeover, where
    /// the output also depends on the messages sent before.
    ///
    /// Two connections with the same key compress a payload to the same
    /// bytes, so a [`PreparedMessage`](crate::prepared::PreparedMessage)
    /// compresses once per key.
    pub(crate) fn standalone_key(&self) -> Option<StandaloneKey> {
        let (bits, no_takeover) = self.params.sending(self.role);
        no_takeover.then(|| self.key(bits))
    }

    fn key(&self, bits: u8) -> StandaloneKey {
        StandaloneKey {
            window_bits: bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS),
            level: self.level,
        }
    }

    /// Compresses a whole message into `out` (sync flush, tail stripped).
    pub(crate) fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), &'static str> {
        let (bits, no_takeover) = self.params.sending(self.role);
        let key = self.key(bits);
        if no_takeover {
            if alone::uses_encoder(input.len(), key) {
                encoder::compress(input, key.window_bits, out);
                return Ok(());
            }
            return alone::compress(key.level, input, out);
        }
        let compressor = self.compressor.get_or_insert_with(|| key.new_compressor());
        deflate_message(compressor, input, out)
    }

    /// Inflates a piece of a compressed message into `out`, which may not grow
    /// past `limit` bytes.
    ///
    /// `check` sees every piece of inflated output as it is produced, before
    /// the limit is applied, so that the first violation in the message
    /// (invalid UTF-8, or the size) is the one reported whatever the reads.
    pub(crate) fn decompress(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
        check: &mut dyn FnMut(&[u8]) -> Result<(), ProtocolError>,
    ) -> Result<(), ProtocolError> {
        let (bits, no_takeover) = self.params.receiving(self.role);
        let bits = bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
        let decompressor = self.decompressor.get_or_insert_with(|| {
            if no_takeover {
                pool::take_decompressor(bits)
            } else {
                new_decompressor(bits)
            }
        });
        inflate_bounded(decompressor, input, out, limit, check)
    }

    /// Ends a compressed message: inflates the stripped tail, and gives a
    /// borrowed decompressor back (reset) if the peer does not keep its
    /// context.
    pub(crate) fn finish_message(
        &mut self,
        out: &mut Vec<u8>,
        limit: usize,
        check: &mut dyn FnMut(&[u8]) -> Result<(), ProtocolError>,
    ) -> Result<(), ProtocolError> {
        self.decompress(&SYNC_TAIL, out, limit, check)?;
        let (bits, no_takeover) = self.params.receiving(self.role);
        if let Some(mut decompressor) = self.decompressor.take_if(|_| no_takeover) {
            decompressor.reset(false);
            pool::give_decompressor(bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS), decompressor);
        }
        Ok(())
    }

    /// Drops state that no later message needs (with no message being
    /// received): a decompressor without context takeover.
    pub(crate) fn shrink(&mut self) {
        if self.params.receiving(self.role).1 {
            self.decompressor = None;
        }
    }
}

/// Compresses `input` as one message into `out` with a sync flush, the
/// trailing `00 00 ff ff` stripped.
fn deflate_message(
    compressor: &mut Compress,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), &'static str> {
    out.clear();
    out.reserve(input.len() / 2 + 64);
    let start = compressor.total_in();
    loop {
        let consumed = usize::try_from(compressor.total_in() - start).unwrap_or(usize::MAX);
        let rest = input.get(consumed..).unwrap_or_default();
        compressor
            .compress_vec(rest, out, FlushCompress::Sync)
            .map_err(|_| "deflate compression failed")?;
        let consumed = usize::try_from(compressor.total_in() - start).unwrap_or(usize::MAX);
        // The flush is complete once all input is in and output space is left over.
        if consumed >= input.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(64));
    }
    if out.ends_with(&SYNC_TAIL) {
        out.truncate(out.len() - SYNC_TAIL.len());
    }
    if out.is_empty() {
        // zlib emits nothing for a sync flush with no new input (an empty
        // message after another); RFC 7692 §7.2.3.6 sends a lone 0x00,
        // the start of an empty stored block the receiver completes.
        out.push(0x00);
    }
    Ok(())
}

/// Messages compressed alone: short ones and ones longer than a small window
/// with [`encoder`](super::encoder), the others with libdeflate.
///
/// Without context takeover every message is a deflate stream of its own,
/// which is what libdeflate's whole-buffer compressor is built for. A reset
/// zlib stream costs more per message: clearing its 128 KiB hash table alone
/// took about a third of a 1 KiB JSON message's compression, and libdeflate's
/// level 1 (dynamic Huffman codes, unlike zlib's) both compressed smaller and
/// took half the time of zlib-rs at level 2 on 1 KiB and 16 KiB JSON.
/// libdeflate clears a 128 KiB table of its own for every message too, which
/// the encoder, sized to the message, does not.
///
/// libdeflate ends its output with a block whose BFINAL bit is set, one of
/// the two ways RFC 7692 §7.2.3.3 allows to end a message: the payload is
/// that output followed by the first byte of an empty stored block, whose
/// remaining `00 00 ff ff` the receiver appends. A receiver resets its
/// decompressor after such a block, which is why this is only for messages
/// sent without context takeover.
mod alone {
    use std::cell::RefCell;

    use libdeflater::{CompressionLvl, Compressor};

    use super::StandaloneKey;

    thread_local! {
        // The thread's compressors, one per libdeflate level in use. A
        // compressor keeps no state between calls, only its tables.
        static COMPRESSORS: RefCell<Vec<(i32, Compressor)>> = const { RefCell::new(Vec::new()) };
    }

    /// Messages up to this long, at levels 1 to 3, go through
    /// [`encoder`](super::encoder):
    /// cheaper than libdeflate's level 1 (callgrind, the bench's JSON:
    /// 47,900 against 68,900 instructions at 1 KiB, 73,300 against 91,700
    /// at 2 KiB), for about the same compression (1 KiB: 226 bytes against
    /// 225; 2 KiB: 351 against 347). It stays cheaper to about 3.3 KiB
    /// (2.5 KiB: 96,600 against 102,200, 408 bytes against 407; 3 KiB:
    /// 110,100 against 113,400, 468 against 467; 3.5 KiB: 125,000 against
    /// 123,500; 4 KiB: 140,300 against 134,200), so this could be 3 KiB.
    /// The encoder's cheaper matching for messages up to 2 KiB, used
    /// further, would keep it cheaper to 4 KiB (121,000) but 2.4 % and 3.8 %
    /// larger at 3 and 4 KiB (478 bytes against 467, 596 against 574).
    const ENCODER_MAX: usize = 2 * 1024;

    /// Whether a message compressed alone goes through
    /// [`encoder`](super::encoder) rather
    /// than libdeflate: a short one at the fast levels, and any one whose
    /// window is under 15 bits and shorter than the message (libdeflate's
    /// back-references reach up to 32 KiB and cannot be limited).
    pub(super) fn uses_encoder(len: usize, key: StandaloneKey) -> bool {
        let fits_window = key.window_bits >= 15 || len <= 1 << key.window_bits;
        let fast_level = matches!(key.level, 1..=3);
        !fits_window || (fast_level && len <= ENCODER_MAX)
    }

    /// libdeflate's level for a zlib `level`: 1 for zlib's 1 to 3 (on
    /// JSON-like text libdeflate's level 1 was both faster and smaller than
    /// its levels 2 and 3, and than zlib's level 2), the same number above.
    pub(super) fn libdeflate_level(level: u32) -> i32 {
        match level {
            0 => 0,
            1..=3 => 1,
            higher => i32::try_from(higher.min(9)).unwrap_or(9),
        }
    }

    /// Compresses `input` as one message into `out`: a complete deflate
    /// stream and the byte that starts the stripped empty stored block.
    pub(super) fn compress(
        level: u32,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), &'static str> {
        let level = libdeflate_level(level);
        let pooled = COMPRESSORS.try_with(|compressors| {
            let mut compressors = compressors.try_borrow_mut().ok()?;
            let index = match compressors.iter().position(|(l, _)| *l == level) {
                Some(index) => index,
                None => {
                    compressors.push((level, new_compressor(level)?));
                    compressors.len() - 1
                }
            };
            let (_, compressor) = compressors.get_mut(index)?;
            Some(compress_with(compressor, input, &mut *out))
        });
        match pooled.ok().flatten() {
            Some(result) => result,
            // The thread is being torn down: a compressor for this message only.
            None => match new_compressor(level) {
                Some(mut compressor) => compress_with(&mut compressor, input, out),
                None => Err("invalid compression level"),
            },
        }
    }

    fn compress_with(
        compressor: &mut Compressor,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), &'static str> {
        out.clear();
        out.resize(compressor.deflate_compress_bound(input.len()), 0);
        let written = compressor
            .deflate_compress(input, out)
            .map_err(|_| "deflate compression failed")?;
        out.truncate(written);
        out.push(0x00);
        Ok(())
    }

    fn new_compressor(level: i32) -> Option<Compressor> {
        CompressionLvl::new(level).ok().map(Compressor::new)
    }
}

/// How many leading bytes [`looks_compressible`] looks at.
const SAMPLE: usize = 1024;

/// Whether deflate is likely to shrink `payload`, judged in one pass over
/// its first [`SAMPLE`] bytes, so that random, encrypted or already
/// compressed data is sent as it is instead of being compressed for nothing
/// (and inflated for nothing by the peer).
///
/// The test is the chance that two bytes of the sample picked at random are
/// equal (estimated without bias from the byte counts): 1/256 for random
/// bytes, around 1/20 for JSON or text, 1/64 for base64. Below 1/128 the
/// bytes are nearly evenly spread, and Huffman coding, most of what deflate
/// gains on short messages, has almost nothing to save. Data whose bytes are
/// spread evenly but repeat in long runs would be misjudged; such messages
/// are rare, and sending them uncompressed is always correct.
pub(crate) fn looks_compressible(payload: &[u8]) -> bool {
    /// Evenly spread over more symbols than this: not worth compressing.
    const SPREAD: u64 = 128;
    let sample = payload.get(..SAMPLE).unwrap_or(payload);
    if sample.len() < 2 {
        return true;
    }
    let mut counts = [0u32; 256];
    for &byte in sample {
        if let Some(count) = counts.get_mut(usize::from(byte)) {
            *count += 1;
        }
    }
    let equal_pairs: u64 = counts
        .iter()
        .map(|&count| u64::from(count) * u64::from(count.saturating_sub(1)))
        .sum();
    let n = sample.len() as u64;
    equal_pairs * SPREAD >= n * (n - 1)
}

/// The zlib decompressors not in use, shared by the connections of a thread
/// that receive without context takeover, and the buffer compressed messages
/// are built in.
///
/// A connection takes one for a message that arrives in pieces and gives it
/// back reset, so a thread needs one per window size however many
/// connections it serves (a server's connections all share its settings). At
/// most [`pool::KEEP`] are kept; more are dropped when given back.
mod pool {
    use std::cell::RefCell;

    use flate2::Decompress;

    use super::new_decompressor;

    /// What a pool keeps.
    pub(super) const KEEP: usize = 4;
    /// The largest output buffer kept between messages.
    const KEEP_OUTPUT: usize = 256 * 1024;

    #[derive(Default)]
    struct Pool {
        decompressors: Vec<(u8, Box<Decompress>)>,
        output: Vec<u8>,
    }

    thread_local! {
        static POOL: RefCell<Pool> = RefCell::default();
    }

    /// Runs `f` on this thread's pool; `None` while the thread is being torn
    /// down.
    fn with<T>(f: impl FnOnce(&mut Pool) -> T) -> Option<T> {
        POOL.try_with(|pool| pool.try_borrow_mut().ok().map(|mut pool| f(&mut pool)))
            .ok()
            .flatten()
    }

    /// A fresh decompressor for a `bits` window: the pool's, or a new one.
    pub(super) fn take_decompressor(bits: u8) -> Box<Decompress> {
        with(|pool| {
            let index = pool.decompressors.iter().position(|(b, _)| *b == bits)?;
            Some(pool.decompressors.swap_remove(index).1)
        })
        .flatten()
        .unwrap_or_else(|| new_decompressor(bits))
    }

    /// Keeps a decompressor that was reset, for the next message.
    pub(super) fn give_decompressor(bits: u8, decompressor: Box<Decompress>) {
        with(|pool| {
            if pool.decompressors.len() < KEEP {
                pool.decompressors.push((bits, decompressor));
            }
        });
    }

    /// The thread's buffer to compress into, emptied.
    pub(super) fn take_output() -> Vec<u8> {
        with(|pool| std::mem::take(&mut pool.output)).unwrap_or_default()
    }

    /// Gives the buffer back; one that grew past 256 KiB is dropped.
    pub(super) fn give_output(mut output: Vec<u8>) {
        if output.capacity() <= KEEP_OUTPUT {
            output.clear();
            with(|pool| pool.output = output);
        }
    }
}

/// Inflates `input` into `out` in chunks, never letting `out` hold more than
/// `limit` bytes: one byte past it proves the message too big.
fn inflate_bounded(
    decompressor: &mut Decompress,
    input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
    check: &mut dyn FnMut(&[u8]) -> Result<(), ProtocolError>,
) -> Result<(), ProtocolError> {
    const CHUNK: usize = 16 * 1024;
    let too_big = ProtocolError::MessageTooLarge { limit };
    let mut consumed = 0;
    loop {
        if out.len() == out.capacity() {
            let room = limit.saturating_add(1).saturating_sub(out.len());
            if room == 0 {
                return Err(too_big);
            }
            out.reserve_exact(room.min(out.capacity().max(CHUNK)));
        }
        let rest = input.get(consumed..).unwrap_or_default();
        let in_before = decompressor.total_in();
        let out_before = out.len();
        let result = decompressor.decompress_vec(rest, out, FlushDecompress::Sync);
        // What the call produced comes first, even if it then found corrupt
        // data: the first violation in the stream is the one reported,
        // whatever the read sizes.
        check(out.get(out_before..).unwrap_or_default())?;
        if out.len() > limit {
            return Err(too_big);
        }
        let status = result.map_err(|_| ProtocolError::InvalidCompressedData)?;
        let step = usize::try_from(decompressor.total_in() - in_before).unwrap_or(usize::MAX);
        consumed = consumed.saturating_add(step);
        let progressed = step > 0 || out.len() > out_before;
        let has_room = out.len() < out.capacity();
        if status == Status::StreamEnd {
            // A block with BFINAL set ended the deflate stream. RFC 7692 peers
            // do not send one, but zlib-based ones can; what follows (at least
            // the appended empty block) starts a fresh stream.
            decompressor.reset(false);
            if consumed >= input.len() {
                return Ok(());
            }
            continue;
        }
        if consumed >= input.len() && has_room {
            return Ok(());
        }
        if !progressed && has_room {
            // Input left, room to write, and no progress: not deflate data.
            return Err(ProtocolError::InvalidCompressedData);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offers(header: &str) -> Vec<String> {
        header.split(',').map(|s| s.trim().to_owned()).collect()
    }

    /// What a default server answers: every message compressed alone, both ways.
    fn no_context_takeover_both_ways() -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            ..DeflateParams::default()
        }
    }

    /// A server that keeps context when the client allows it.
    fn keeping_context() -> DeflateConfig {
        DeflateConfig {
            context_takeover: true,
            ..DeflateConfig::default()
        }
    }

    #[test]
    fn chromium_offer_is_answered_without_context_takeover_both_ways() {
        let params = negotiate_server(
            &offers("permessage-deflate; client_max_window_bits"),
            &DeflateConfig::default(),
        )
        .unwrap();
        assert_eq!(
            params,
            DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                ..DeflateParams::default()
            }
        );
        assert_eq!(
            params.to_header(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        // A bare offer too: both parameters may be added unasked.
        let bare = negotiate_server(&offers("permessage-deflate"), &DeflateConfig::default());
        assert_eq!(bare, Some(params));
    }

    #[test]
    fn with_context_takeover_chromium_offer_is_accepted_with_full_windows() {
        let params = negotiate_server(
            &offers("permessage-deflate; client_max_window_bits"),
            &keeping_context(),
        )
        .unwrap();
        assert_eq!(params, DeflateParams::default());
        assert_eq!(params.to_header(), "permessage-deflate");
    }

    #[test]
    fn with_context_takeover_a_client_that_asks_for_none_gets_none() {
        for (offer, server, client) in [
            (
                "permessage-deflate; server_no_context_takeover",
                true,
                false,
            ),
            (
                "permessage-deflate; client_no_context_takeover",
                false,
                true,
            ),
            (
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
                true,
                true,
            ),
        ] {
            let params = negotiate_server(&offers(offer), &keeping_context()).unwrap();
            assert_eq!(params.server_no_context_takeover, server, "{offer}");
            assert_eq!(params.client_no_context_takeover, client, "{offer}");
        }
        let insisting = DeflateConfig {
            no_context_takeover: true,
            ..keeping_context()
        };
        let params = negotiate_server(&offers("permessage-deflate"), &insisting).unwrap();
        assert!(params.server_no_context_takeover && params.client_no_context_takeover);
    }

    #[test]
    fn server_caps_the_client_window_when_the_client_allows_it() {
        let config = DeflateConfig {
            window_bits: 10,
            ..keeping_context()
        };
        let params = negotiate_server(
            &offers("permessage-deflate; client_max_window_bits"),
            &config,
        )
        .unwrap();
        assert_eq!(params.client_max_window_bits, 10);
        assert_eq!(params.server_max_window_bits, 10);
        assert_eq!(
            params.to_header(),
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10"
        );
    }

    #[test]
    fn server_with_a_capped_window_declines_an_offer_that_cannot_be_capped() {
        let config = DeflateConfig {
            window_bits: 10,
            ..DeflateConfig::default()
        };
        assert_eq!(
            negotiate_server(&offers("permessage-deflate"), &config),
            None
        );
    }

    #[test]
    fn never_answers_client_max_window_bits_unless_offered() {
        let params =
            negotiate_server(&offers("permessage-deflate"), &DeflateConfig::default()).unwrap();
        assert!(!params.to_header().contains("client_max_window_bits"));
    }

    #[test]
    fn server_honours_server_max_window_bits_and_no_context_takeover() {
        let params = negotiate_server(
            &offers("permessage-deflate; server_max_window_bits=10; server_no_context_takeover; client_no_context_takeover"),
            &DeflateConfig::default(),
        )
        .unwrap();
        assert_eq!(params.server_max_window_bits, 10);
        assert!(params.server_no_context_takeover);
        assert!(params.client_no_context_takeover);
        assert_eq!(
            params.to_header(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"
        );
    }

    #[test]
    fn offer_asking_for_an_8_bit_server_window_is_declined_for_the_next_one() {
        let params = negotiate_server(
            &offers("permessage-deflate; server_max_window_bits=8, permessage-deflate; server_max_window_bits=9"),
            &DeflateConfig::default(),
        )
        .unwrap();
        assert_eq!(params.server_max_window_bits, 9);
    }

    #[test]
    fn invalid_or_duplicated_parameters_decline_the_offer() {
        for bad in [
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits=1a",
            "permessage-deflate; client_max_window_bits=20",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "permessage-deflate; unknown_parameter",
            "x-webkit-deflate-frame",
        ] {
            assert_eq!(
                negotiate_server(&offers(bad), &DeflateConfig::default()),
                None,
                "{bad}"
            );
        }
    }

    #[test]
    fn the_first_acceptable_of_several_offers_wins() {
        let params = negotiate_server(
            &offers("permessage-deflate; foo, permessage-deflate; client_max_window_bits=12"),
            &DeflateConfig::default(),
        )
        .unwrap();
        assert_eq!(params.client_max_window_bits, 12);
    }

    #[test]
    fn quoted_values_and_case_are_accepted() {
        let params = negotiate_server(
            &offers("Permessage-Deflate; Server_Max_Window_Bits=\"11\"; client_max_window_bits"),
            &DeflateConfig::default(),
        )
        .unwrap();
        assert_eq!(params.server_max_window_bits, 11);
    }

    #[test]
    fn client_offer_names_what_it_supports() {
        assert_eq!(
            client_offer(&DeflateConfig::default()),
            "permessage-deflate; client_max_window_bits"
        );
        let small = DeflateConfig {
            window_bits: 10,
            no_context_takeover: true,
            ..DeflateConfig::default()
        };
        assert_eq!(
            client_offer(&small),
            "permessage-deflate; client_max_window_bits; server_max_window_bits=10; server_no_context_takeover; client_no_context_takeover"
        );
    }

    #[test]
    fn client_accepts_valid_responses() {
        let config = DeflateConfig::default();
        assert_eq!(
            negotiate_client("permessage-deflate", &config),
            Ok(DeflateParams::default())
        );
        let params = negotiate_client(
            "permessage-deflate; client_max_window_bits=9; server_no_context_takeover",
            &config,
        )
        .unwrap();
        assert_eq!(params.client_max_window_bits, 9);
        assert!(params.server_no_context_takeover);
    }

    #[test]
    fn client_rejects_responses_it_cannot_honour() {
        let config = DeflateConfig {
            window_bits: 10,
            ..DeflateConfig::default()
        };
        for bad in [
            "permessage-deflate; server_max_window_bits=12",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; mystery",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate, permessage-deflate",
            "deflate-frame",
        ] {
            assert!(negotiate_client(bad, &config).is_err(), "{bad}");
        }
    }

    #[test]
    fn client_told_to_use_an_8_bit_window_sends_uncompressed() {
        let params = negotiate_client(
            "permessage-deflate; client_max_window_bits=8",
            &DeflateConfig::default(),
        )
        .unwrap();
        let deflate = Deflate::new(params, Role::Client, &DeflateConfig::default());
        assert!(!deflate.compresses(&[b'a'; 10_000], true));
    }

    fn codec(role: Role, params: DeflateParams) -> Deflate {
        Deflate::new(
            params,
            role,
            &DeflateConfig {
                min_size: 0,
                ..DeflateConfig::default()
            },
        )
    }

    #[test]
    fn rfc_7692_hello_compresses_to_the_example_bytes() {
        // The RFC's bytes come from zlib's default level.
        let config = DeflateConfig {
            level: 6,
            min_size: 0,
            ..DeflateConfig::default()
        };
        let mut deflate = Deflate::new(DeflateParams::default(), Role::Server, &config);
        let mut out = Vec::new();
        deflate.compress(b"Hello", &mut out).unwrap();
        assert_eq!(out, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        deflate.compress(b"Hello", &mut out).unwrap();
        assert_eq!(out, [0xf2, 0x00, 0x11, 0x00, 0x00], "context takeover");
    }

    #[test]
    fn no_context_takeover_compresses_each_message_alone() {
        let params = DeflateParams {
            server_no_context_takeover: true,
            ..DeflateParams::default()
        };
        let mut deflate = codec(Role::Server, params);
        let message = b"Hello, Hello, Hello, Hello, Hello, Hello, Hello, Hello, Hello, Hello, Hello, Hello, Hello!";
        let mut first = Vec::new();
        let mut second = Vec::new();
        deflate.compress(message, &mut first).unwrap();
        deflate.compress(message, &mut second).unwrap();
        assert_eq!(second, first, "nothing is carried over");
        assert!(first.len() < message.len() / 2, "{first:?}");
        assert_eq!(inflate_alone(&first, 15), message);
    }

    /// Inflates a message compressed alone, with a fresh zlib decompressor
    /// of a `bits` window, the `00 00 ff ff` appended as RFC 7692 says.
    fn inflate_alone(payload: &[u8], bits: u8) -> Vec<u8> {
        let mut decompressor = Decompress::new_with_window_bits(false, bits);
        let mut input = payload.to_vec();
        input.extend_from_slice(&SYNC_TAIL);
        let mut out = Vec::with_capacity(1 << 20);
        decompressor
            .decompress_vec(&input, &mut out, FlushDecompress::Sync)
            .unwrap();
        out
    }

    #[test]
    fn without_context_takeover_a_short_message_ends_like_a_sync_flush_and_a_long_one_with_a_final_block()
     {
        let params = DeflateParams {
            server_no_context_takeover: true,
            ..DeflateParams::default()
        };
        let mut deflate = codec(Role::Server, params);
        let text: Vec<u8> = b"{\"id\":1,\"tags\":[\"alpha\",\"beta\"]},"
            .iter()
            .copied()
            .cycle()
            .take(5000)
            .collect();
        let mut out = Vec::new();
        // Up to 2 KiB, the encoder: no block has BFINAL set (the first bit).
        deflate.compress(&text[..2048], &mut out).unwrap();
        assert_eq!(out.first().map(|byte| byte & 1), Some(0));
        assert_eq!(inflate_alone(&out, 15), &text[..2048]);
        // Longer, libdeflate (RFC 7692 §7.2.3.3): a block with BFINAL set,
        // then the first byte of the empty stored block.
        deflate.compress(&text, &mut out).unwrap();
        assert_eq!(out.first().map(|byte| byte & 1), Some(1));
        assert_eq!(out.last(), Some(&0x00));
        assert_eq!(inflate_alone(&out, 15), text);
    }

    #[test]
    fn the_rfc_example_ending_with_a_final_block_inflates() {
        // RFC 7692 §7.2.3.3, "Hello" in a block with BFINAL set.
        let mut client = codec(Role::Client, DeflateParams::default());
        let mut inflated = Vec::new();
        for message in 0..2 {
            inflated.clear();
            client
                .decompress(
                    &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00],
                    &mut inflated,
                    100,
                    &mut |_| Ok(()),
                )
                .unwrap();
            client
                .finish_message(&mut inflated, 100, &mut |_| Ok(()))
                .unwrap();
            assert_eq!(inflated, b"Hello", "message {message}");
        }
    }

    #[test]
    fn messages_compressed_alone_inflate_one_after_another() {
        let params = no_context_takeover_both_ways();
        let mut server = codec(Role::Server, params);
        let mut client = codec(Role::Client, params);
        let text: Vec<u8> = (0..3000u32)
            .flat_map(|i| format!("{{\"id\":{i},\"v\":\"x{}\"}},", i % 7).into_bytes())
            .collect();
        for len in [0, 1, 5, 100, 1024, 16 * 1024, text.len()] {
            let message = &text[..len];
            let mut compressed = Vec::new();
            server.compress(message, &mut compressed).unwrap();
            assert!(
                len < 1024 || compressed.len() < len / 2,
                "{len}: {}",
                compressed.len()
            );
            let mut inflated = Vec::new();
            client
                .decompress(&compressed, &mut inflated, usize::MAX, &mut |_| Ok(()))
                .unwrap();
            client
                .finish_message(&mut inflated, usize::MAX, &mut |_| Ok(()))
                .unwrap();
            assert_eq!(inflated, message, "{len}");
        }
    }

    #[test]
    fn a_smaller_window_than_the_message_is_honoured() {
        // libdeflate cannot limit its window: a message longer than the
        // negotiated window goes through the encoder, whose distances stay
        // inside it, whatever the level.
        let params = DeflateParams {
            server_no_context_takeover: true,
            server_max_window_bits: 9,
            ..DeflateParams::default()
        };
        let key = |window_bits, level| StandaloneKey { window_bits, level };
        assert!(!alone::uses_encoder(512, key(9, 6)));
        assert!(alone::uses_encoder(513, key(9, 6)));
        assert!(!alone::uses_encoder(1 << 20, key(15, 1)));
        assert!(alone::uses_encoder(2048, key(15, 1)));
        assert!(!alone::uses_encoder(2049, key(15, 1)));
        let mut server = codec(Role::Server, params);
        let message: Vec<u8> = (0..4096u32)
            .map(|i| b"abcdefgh"[(i % 8) as usize] ^ (i / 600) as u8)
            .collect();
        let mut compressed = Vec::new();
        server.compress(&message, &mut compressed).unwrap();
        assert_eq!(inflate_alone(&compressed, 9), message);
    }

    #[test]
    fn zlib_levels_map_to_libdeflate_levels() {
        assert_eq!(alone::libdeflate_level(0), 0);
        assert_eq!(alone::libdeflate_level(2), 1);
        assert_eq!(alone::libdeflate_level(6), 6);
        assert_eq!(alone::libdeflate_level(42), 9);
    }

    #[test]
    fn empty_message_compresses_to_a_single_zero_byte() {
        let mut out = Vec::new();
        codec(Role::Server, DeflateParams::default())
            .compress(b"", &mut out)
            .unwrap();
        assert_eq!(out, [0x00]);
    }

    #[test]
    fn inflating_stops_one_byte_past_the_limit() {
        let config = DeflateConfig {
            level: 9,
            min_size: 0,
            ..DeflateConfig::default()
        };
        let mut compressor = Deflate::new(DeflateParams::default(), Role::Client, &config);
        let mut bomb = Vec::new();
        compressor
            .compress(&vec![0u8; 10 << 20], &mut bomb)
            .unwrap();
        assert!(bomb.len() < 20_000, "{}", bomb.len());
        let mut server = codec(Role::Server, DeflateParams::default());
        let mut out = Vec::new();
        let result = server.decompress(&bomb, &mut out, 1 << 20, &mut |_| Ok(()));
        assert_eq!(
            result,
            Err(ProtocolError::MessageTooLarge { limit: 1 << 20 })
        );
        assert!(
            out.capacity() <= (1 << 20) + 1,
            "allocated {}",
            out.capacity()
        );
    }

    /// Bytes from a fixed pseudo-random sequence (xorshift).
    fn noise(len: usize) -> Vec<u8> {
        noise_from(len, 0x2545_f491_4f6c_dd1d)
    }

    /// `len` bytes from a fixed pseudo-random sequence (xorshift) started at
    /// `seed`; the encoder's tests use it too.
    pub(super) fn noise_from(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect()
    }

    /// Random printable ASCII, what `ws-bench --payload random --text` sends.
    fn printable_noise(len: usize) -> Vec<u8> {
        noise(len)
            .into_iter()
            .map(|byte| b' ' + byte % 95)
            .collect()
    }

    #[test]
    fn random_bytes_do_not_look_compressible_and_text_does() {
        for len in [64, 100, 1024, 16 * 1024, 64 * 1024] {
            assert!(!looks_compressible(&noise(len)), "noise of {len}");
        }
        let json = r#"{"id":12345,"user":"someone","tags":["alpha","beta"],"score":0.75}"#;
        for text in [
            json.to_owned(),
            json.repeat(200),
            "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(30),
            "日本語のテキストも圧縮できるはずです。".repeat(40),
            // base64: 64 symbols, which Huffman coding still shrinks by a quarter.
            "QmFzZTY0IGVuY29kZWQgZGF0YSB3aXRoIGEgc21hbGwgYWxwaGFiZXQ+/w==".repeat(40),
        ] {
            assert!(looks_compressible(text.as_bytes()), "{text}");
        }
        assert!(looks_compressible(&[0u8; 1000]));
        assert!(looks_compressible(b""));
        assert!(looks_compressible(b"x"));
    }

    #[test]
    fn incompressible_messages_are_not_compressed() {
        let deflate = codec(Role::Server, DeflateParams::default());
        assert!(!deflate.compresses(&noise(1024), false));
        assert!(deflate.compresses(&b"{\"a\":1}".repeat(100), false));
        // Text is compressed without a look (random printable ASCII would
        // pass the look anyway).
        assert!(deflate.compresses(&noise(1024), true));
        assert!(looks_compressible(&printable_noise(1024)));
    }

    #[test]
    fn no_context_takeover_borrows_the_threads_codecs() {
        let params = no_context_takeover_both_ways();
        let mut client = codec(Role::Client, params);
        let mut server = codec(Role::Server, params);
        let text = b"{\"hello\": \"world\"} ".repeat(50);
        for _ in 0..3 {
            let mut wire = Vec::new();
            client.compress(&text, &mut wire).unwrap();
            assert!(client.compressor.is_none());
            // Arriving in two pieces: the borrowed decompressor stays with
            // the connection until the message ends.
            let (first, second) = wire.split_at(wire.len() / 2);
            let mut out = Vec::new();
            server
                .decompress(first, &mut out, 1 << 20, &mut |_| Ok(()))
                .unwrap();
            assert!(server.decompressor.is_some());
            server
                .decompress(second, &mut out, 1 << 20, &mut |_| Ok(()))
                .unwrap();
            server
                .finish_message(&mut out, 1 << 20, &mut |_| Ok(()))
                .unwrap();
            assert!(server.decompressor.is_none());
            assert_eq!(out, text);
        }
    }

    #[test]
    fn corrupt_stream_is_invalid_data() {
        let mut server = codec(Role::Server, DeflateParams::default());
        let mut out = Vec::new();
        let result = server
            .decompress(&[0xff, 0xff, 0xff, 0xff], &mut out, 1024, &mut |_| Ok(()))
            .and_then(|()| server.finish_message(&mut out, 1024, &mut |_| Ok(())));
        assert_eq!(result, Err(ProtocolError::InvalidCompressedData));
    }
}
