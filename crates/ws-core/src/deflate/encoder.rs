//! A deflate encoder for messages compressed alone (no context takeover).
//!
//! A general-purpose compressor pays per call for state sized for any input:
//! libdeflate clears a fixed 128 KiB hash table for every message, and builds
//! its Huffman codes with machinery meant for long blocks. A WebSocket
//! message is usually short and always compressed from scratch, so this
//! encoder sizes everything to the message instead:
//!
//! - **LZ77**: matching through a hash table of 4-byte prefixes with two
//!   candidates per bucket, sized from the message length and cleared only
//!   as far as it is used; lazy by one byte for matches shorter than 32 (in
//!   a message of at most 2 KiB, for those of 4 bytes only). The table
//!   lives in thread-local scratch that is kept from message to message.
//! - **Huffman**: per block, length-limited codes built from the used
//!   symbols only (in-place Moffat–Katajainen, then a Kraft-sum repair), and
//!   the exact bit cost of a dynamic, a fixed and a stored block, of which
//!   the cheapest is written.
//! - **Ending**: RFC 7692 §7.2.1: no block has BFINAL set; the output ends
//!   with the header bits of an empty stored block padded to a byte, so
//!   that the `00 00 ff ff` the receiver appends completes it.
//!
//! On the bench's JSON it compresses about as well as libdeflate's level 1
//! (1 KiB: 226 bytes against 225; 2 KiB: 351 against 347; 16 KiB: 1,959
//! against 1,967) for 47,900 instructions per 1 KiB message against
//! libdeflate's 68,900, and 73,300 against 91,700 at 2 KiB (callgrind; see
//! the `cost` test). Per byte it is dearer: 140,300 against 134,200 at 4
//! KiB and 457,100 against 387,000 at 16 KiB, where hashing every other
//! position inside matches, lazy matching below 32 bytes (both cut back up
//! to 2 KiB) and the second candidate dominate.

use std::cell::RefCell;

/// Bytes a match must share at least: 4-byte prefixes are hashed.
const MIN_MATCH: usize = 4;
/// The longest match deflate can code.
const MAX_MATCH: usize = 258;
/// The largest hash table, in bits (32 768 two-byte entries).
const MAX_HASH_BITS: u32 = 15;
/// The smallest hash table, in bits.
const MIN_HASH_BITS: u32 = 8;
/// Entries in the (largest) hash table.
const HASH_SIZE: usize = 1 << MAX_HASH_BITS;
/// Symbols (literals and matches) per block: bounds the scratch memory and
/// lets the codes adapt along a long message. Small enough that a symbol
/// count fits the 23 bits [`code_lengths`] leaves for a frequency.
const BLOCK_SYMBOLS: usize = 1 << 14;
/// The most bytes a stored block holds (its LEN field is 16 bits).
const STORED_MAX: usize = 65_535;
/// Marks a stored symbol as a match (length and distance) rather than a literal.
const MATCH_FLAG: u32 = 1 << 31;
/// The end-of-block symbol of the literal/length alphabet.
const END_OF_BLOCK: usize = 256;
/// The literal/length alphabet (286 used; 288 in the fixed code).
const LITLEN_SYMBOLS: usize = 288;
/// The distance alphabet (30 used; 32 in the fixed code).
const DIST_SYMBOLS: usize = 32;
/// The code length alphabet of a dynamic block header.
const CODELEN_SYMBOLS: usize = 19;
/// The longest literal/length or distance codeword deflate allows.
const MAX_CODE_LEN: u32 = 15;
/// The longest code length codeword deflate allows.
const MAX_CODELEN_LEN: u32 = 7;
/// Block type bits, written after a clear BFINAL bit (first bit).
const STORED: u64 = 0b000;
const FIXED: u64 = 0b010;
const DYNAMIC: u64 = 0b100;
/// The order in which a dynamic header lists code length code lengths.
const CODELEN_ORDER: [usize; CODELEN_SYMBOLS] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// Extra bits of each code length symbol (16: 2, 17: 3, 18: 7), padded to
/// 32 entries so that a symbol masked to 5 bits needs no check.
const CODELEN_EXTRA: [u8; 32] = {
    let mut extra = [0; 32];
    extra[16] = 2;
    extra[17] = 3;
    extra[18] = 7;
    extra
};

/// First match length of each length symbol (257 + index), RFC 1951 §3.2.5.
const LENGTH_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
/// Extra bits of each length symbol.
const LENGTH_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
/// First distance of each distance symbol.
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
/// Extra bits of each distance symbol.
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

/// For a match length minus 3 (0..=255): its length symbol index (0..=28) in
/// the low byte, the number of extra bits in the second, their value above.
/// Length 258 is symbol 285, never 284 with extra bits 31 (which some
/// inflaters reject).
const LENGTH_CODES: [u32; 256] = length_codes();
/// The distance symbol of `distance - 1` below 256.
const DIST_SYMBOL_NEAR: [u8; 256] = dist_symbols(0);
/// The distance symbol of `(distance - 1) >> 7` from 256 on (every symbol
/// from 16 on starts at a multiple of 128).
const DIST_SYMBOL_FAR: [u8; 256] = dist_symbols(7);

/// Builds [`LENGTH_CODES`] at compile time.
// Evaluated by the compiler: an index out of range is a build error.
#[allow(clippy::indexing_slicing)]
const fn length_codes() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut symbol = 0;
    let mut index = 0;
    while index < 256 {
        let length = index + 3;
        while symbol < 28 && LENGTH_BASE[symbol + 1] as usize <= length && length < 258 {
            symbol += 1;
        }
        if length == 258 {
            symbol = 28;
        }
        let extra_value = length - LENGTH_BASE[symbol] as usize;
        table[index] =
            symbol as u32 | (LENGTH_EXTRA[symbol] as u32) << 8 | (extra_value as u32) << 16;
        index += 1;
    }
    table
}

/// Builds [`DIST_SYMBOL_NEAR`] (`shift` 0) or [`DIST_SYMBOL_FAR`] (`shift`
/// 7) at compile time.
#[allow(clippy::indexing_slicing)]
const fn dist_symbols(shift: u32) -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut symbol = 0;
    let mut index = 0;
    while index < 256 {
        let distance_minus_one = index << shift;
        while symbol < 29 && (DIST_BASE[symbol + 1] as usize - 1) <= distance_minus_one {
            symbol += 1;
        }
        table[index] = symbol as u8;
        index += 1;
    }
    table
}

/// The distance symbol of `distance - 1` (0..32 768).
fn dist_symbol(distance_minus_one: u32) -> usize {
    let symbol = if distance_minus_one < 256 {
        DIST_SYMBOL_NEAR.get(distance_minus_one as usize & 0xff)
    } else {
        DIST_SYMBOL_FAR.get((distance_minus_one >> 7) as usize & 0xff)
    };
    usize::from(symbol.copied().unwrap_or(0))
}

/// Compresses `input` as one whole message sent without context takeover,
/// into `out` (cleared first): deflate blocks whose back-references never
/// reach further than 2^`window_bits` bytes (8..=15, clamped) nor before the
/// start of the message, ended the RFC 7692 way: appending `00 00 ff ff` to
/// `out` gives a valid raw deflate stream (BFINAL never set) that inflates to
/// exactly `input`. An empty input gives `[0x00]` (RFC 7692 §7.2.3.6).
pub(super) fn compress(input: &[u8], window_bits: u8, out: &mut Vec<u8>) {
    out.clear();
    let window = 1usize << window_bits.clamp(8, 15);
    let mut out = Some(out);
    let _ = SCRATCH.try_with(|scratch| {
        if let Ok(mut scratch) = scratch.try_borrow_mut()
            && let Some(out) = out.take()
        {
            encode(&mut scratch, input, window, out);
        }
    });
    // The thread is being torn down (or, impossibly, re-entered): scratch
    // for this message only.
    if let Some(out) = out {
        encode(&mut Scratch::new(), input, window, out);
    }
}

thread_local! {
    /// The thread's scratch, kept from message to message: allocating and
    /// zeroing it would cost more than compressing a short message.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::new());
}

/// What compressing a message needs besides its input and output.
struct Scratch {
    /// The hash table (see [`Bucket`]); only the first 2^[`hash_bits`]
    /// buckets are in use, and cleared, for a message.
    head: Box<[Bucket; HASH_SIZE]>,
    /// The block being gathered.
    block: Block,
    /// The fixed Huffman codes (RFC 1951 §3.2.6).
    fixed: Codes,
    /// Room to build Huffman codes in.
    work: Work,
}

impl Scratch {
    fn new() -> Self {
        Self {
            head: Box::new([0; HASH_SIZE]),
            block: Block::new(),
            fixed: Codes::fixed(),
            work: Work::new(),
        }
    }
}

/// Compresses `input` into `out` with `scratch`.
fn encode(scratch: &mut Scratch, input: &[u8], window: usize, out: &mut Vec<u8>) {
    let mut writer = BitWriter::new(out);
    let mut matcher = Matcher::new(&mut scratch.head, input.len(), window);
    let mut start = 0;
    while start < input.len() {
        scratch.block.clear();
        let end = matcher.fill(input, start, &mut scratch.block);
        let span = input.get(start..end).unwrap_or_default();
        write_block(
            &mut writer,
            span,
            &mut scratch.block,
            &scratch.fixed,
            &mut scratch.work,
        );
        start = end;
    }
    // The header of the empty stored block whose LEN and NLEN (`00 00 ff
    // ff`) the receiver appends; the writer pads it to a byte.
    writer.write(STORED, 3);
    writer.finish();
}

// ---- LZ77 ----

/// Number of hash bits for a message of `len` bytes: a bucket (two
/// candidates) per 2 to 4 bytes, so that a short message clears a small
/// table (2 KiB for 1 KiB). Twice as many buckets compressed the bench's
/// JSON no smaller at 1 KiB and 0.2 % smaller at 16 KiB; half as many, 0.5 %
/// larger at 16 KiB.
fn hash_bits(len: usize) -> u32 {
    (usize::BITS - len.leading_zeros())
        .saturating_sub(2)
        .clamp(MIN_HASH_BITS, MAX_HASH_BITS)
}

/// The 4 bytes at `pos` (little-endian), or 0 past the end.
#[inline(always)]
fn read4(input: &[u8], pos: usize) -> u32 {
    input
        .get(pos..)
        .and_then(|rest| rest.first_chunk::<4>())
        .map_or(0, |bytes| u32::from_le_bytes(*bytes))
}

/// How many leading bytes `a` and `b` share (at most `b.len()`).
#[inline(always)]
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let a = a.get(..b.len()).unwrap_or(a);
    let mut a_words = a.chunks_exact(8);
    let mut b_words = b.chunks_exact(8);
    let mut same = 0;
    for (x, y) in (&mut a_words).zip(&mut b_words) {
        let x = u64::from_le_bytes(x.try_into().unwrap_or_default());
        let y = u64::from_le_bytes(y.try_into().unwrap_or_default());
        let difference = x ^ y;
        if difference != 0 {
            return same + (difference.trailing_zeros() / 8) as usize;
        }
        same += 8;
    }
    same + a_words
        .remainder()
        .iter()
        .zip(b_words.remainder())
        .take_while(|(x, y)| x == y)
        .count()
}

/// Matches shorter than this are looked for one byte later too (lazy
/// matching); a longer one is taken at once.
const LAZY_BELOW: usize = 32;
/// Messages up to this long look one byte later only past a match of the
/// minimum length ([`SHORT_LAZY_BELOW`]).
const SHORT_MESSAGE: usize = 2 * 1024;
/// [`LAZY_BELOW`] for a short message. On the bench's JSON, 1 KiB: 2,500
/// instructions fewer per message (of 60,100) for 226 bytes instead of 223;
/// 2 KiB: 5,400 fewer (of 92,200) for 349 bytes instead of 348. Below 16, 12
/// or 8 saved less for the same sizes; no lazy matching at all saved about
/// the same, for 352 bytes at 2 KiB. Above 2 KiB the longer matches are
/// worth their cost (16 KiB: 2,002 bytes instead of 1,959 with lazy
/// matching below 6).
const SHORT_LAZY_BELOW: usize = MIN_MATCH + 1;
/// Inside a match, every this many positions are entered in the table (see
/// [`Matcher::skip`]).
const SKIP_STEP: usize = 2;
/// [`SKIP_STEP`] for a short message: every third position. On the bench's
/// JSON, 1 KiB: 2,200 instructions fewer per message (of 54,100), the same
/// 226 bytes; 2 KiB: 4,600 fewer (of 83,000) for 351 bytes instead of 349.
/// On 40 JSON files of 600 B to 2 KiB found on a development machine
/// (31,299 bytes in all): 10,713 bytes instead of 10,693 (libdeflate's
/// level 1: 10,603; every fourth position: 10,761, every sixth 10,788, none
/// inside matches 10,803, for 1,000 to 3,800 instructions fewer at 1 KiB).
const SHORT_SKIP_STEP: usize = 3;

/// A hash bucket: the low 16 bits of the last two positions whose 4-byte
/// prefix hashed to it, the most recent in the low half. Two candidates find
/// longer matches than one (1 KiB of JSON: 223 bytes instead of 234) for
/// little more work, and a `u32` per bucket clears with a plain memset.
type Bucket = u32;

/// Finds matches through a hash table of 4-byte prefixes.
struct Matcher<'a> {
    head: &'a mut [Bucket; HASH_SIZE],
    /// Shifts a 32-bit multiplicative hash down to the table's bits.
    shift: u32,
    /// The farthest a match may reach back.
    window: usize,
    /// Matches shorter than this are looked for one byte later too.
    lazy_below: usize,
    /// Every how many positions inside a match are entered in the table.
    skip_step: usize,
}

impl<'a> Matcher<'a> {
    /// A matcher for a message of `len` bytes, with its part of the table
    /// cleared (so that the output depends on the message only).
    fn new(head: &'a mut [Bucket; HASH_SIZE], len: usize, window: usize) -> Self {
        let bits = hash_bits(len);
        if let Some(used) = head.get_mut(..1 << bits) {
            used.fill(0);
        }
        Self {
            head,
            shift: 32 - bits,
            window,
            lazy_below: if len <= SHORT_MESSAGE {
                SHORT_LAZY_BELOW
            } else {
                LAZY_BELOW
            },
            skip_step: if len <= SHORT_MESSAGE {
                SHORT_SKIP_STEP
            } else {
                SKIP_STEP
            },
        }
    }

    /// Enters `pos`, whose 4 bytes are `prefix`, in its bucket; returns the
    /// bucket as it was.
    #[inline(always)]
    fn insert(&mut self, prefix: u32, pos: usize) -> Bucket {
        let hash = prefix.wrapping_mul(0x1e35_a7bd) >> self.shift;
        match self.head.get_mut(hash as usize & (HASH_SIZE - 1)) {
            Some(bucket) => {
                let old = *bucket;
                *bucket = old << 16 | (pos as u32 & 0xffff);
                old
            }
            None => 0,
        }
    }

    /// The distance to a candidate whose 4 bytes equal `prefix`, within the
    /// window and the message; 0 if it is none.
    ///
    /// The table holds the low 16 bits of positions: since the window is at
    /// most 32 KiB, every position within reach is told apart, and an entry
    /// left from farther back only names a candidate whose bytes are compared
    /// before use. An entry of 0 is an empty one (the table is cleared to
    /// zeros), not looked at: so the text at offset 0 (or a multiple of
    /// 64 KiB) is never matched, and a position whose bucket is empty, as
    /// through most of the first record of a JSON message, costs no
    /// comparison.
    #[inline(always)]
    fn check(&self, input: &[u8], pos: usize, prefix: u32, candidate: u32) -> usize {
        if candidate & 0xffff == 0 {
            return 0;
        }
        let distance = (pos as u32).wrapping_sub(candidate) as usize & 0xffff;
        if distance.wrapping_sub(1) < self.window
            && distance <= pos
            && read4(input, pos - distance) == prefix
        {
            distance
        } else {
            0
        }
    }

    /// The longest match (length, distance) for `pos` among the bucket's
    /// two candidates; length 0 if none.
    #[inline(always)]
    fn longest(&self, input: &[u8], pos: usize, prefix: u32, bucket: Bucket) -> (usize, usize) {
        let recent = self.check(input, pos, prefix, bucket);
        let older = self.check(input, pos, prefix, bucket >> 16);
        if recent == 0 && older == 0 {
            return (0, 0);
        }
        let limit = input.len().min(pos + MAX_MATCH);
        let ahead = input.get(pos + MIN_MATCH..limit).unwrap_or_default();
        let length_at = |distance: usize| {
            let behind = input.get(pos - distance + MIN_MATCH..).unwrap_or_default();
            MIN_MATCH + common_prefix(behind, ahead)
        };
        let mut best = (0, 0);
        if recent != 0 {
            best = (length_at(recent), recent);
        }
        // The older candidate can only be longer if it also matches the byte
        // the recent one stopped at: one comparison usually rules it out.
        let stop = pos + best.0;
        if older != 0
            && older != recent
            && best.0 < ahead.len() + MIN_MATCH
            && input.get(stop - older) == input.get(stop)
        {
            let length = length_at(older);
            if length > best.0 {
                best = (length, older);
            }
        }
        best
    }

    /// Gathers the symbols of `input` from `start` into `block`, until the
    /// block is full or the input ends; returns where it stopped.
    fn fill(&mut self, input: &[u8], start: usize, block: &mut Block) -> usize {
        // Positions from here on have fewer than 4 bytes left.
        let last = input.len().saturating_sub(MIN_MATCH - 1);
        let mut pos = start;
        while pos < last && block.symbols.len() < BLOCK_SYMBOLS {
            let prefix = read4(input, pos);
            let bucket = self.insert(prefix, pos);
            let (mut length, mut distance) = self.longest(input, pos, prefix, bucket);
            if length == 0 {
                // The low byte of the prefix is the byte at `pos`.
                block.literal(prefix as u8);
                pos += 1;
                continue;
            }
            // Lazy by one: a short match gives way to a longer one starting
            // at the next byte, which is then a literal.
            let mut entered = pos + 1;
            if length < self.lazy_below && pos + 1 < last {
                let next_prefix = read4(input, pos + 1);
                let next_bucket = self.insert(next_prefix, pos + 1);
                let next = self.longest(input, pos + 1, next_prefix, next_bucket);
                entered = pos + 2;
                if next.0 > length {
                    block.literal(prefix as u8);
                    pos += 1;
                    (length, distance) = next;
                }
            }
            block.matched(length, distance);
            self.skip(input, entered, (pos + length).min(last));
            pos += length;
        }
        if pos >= last {
            for &byte in input.get(pos..).unwrap_or_default() {
                block.literal(byte);
            }
            pos = input.len();
        }
        pos
    }

    /// Enters every other position of `from..to` (inside a match) in the
    /// table, so that later text can refer to them (every third in a short
    /// message: [`SHORT_SKIP_STEP`]).
    ///
    /// Entering them all costs a third of the matching on JSON; every other
    /// one, with lazy matching to find the matches that start in between,
    /// costs the same as entering all without, and compresses 16 KiB of the
    /// bench's JSON to 1,959 bytes instead of 1,969 (1 KiB: 223 either way).
    /// Every third one with lazy matching of any length cost more, and only
    /// the first few of each match compressed 1-2 % worse.
    #[inline(always)]
    fn skip(&mut self, input: &[u8], from: usize, to: usize) {
        // Constant steps: a variable one cost 16,000 instructions more at
        // 16 KiB.
        // Cut to where the last prefix ends, so that the compiler sees every
        // prefix read whole.
        let Some(input) = input.get(..to + MIN_MATCH - 1) else {
            return;
        };
        let mut pos = from;
        if self.skip_step == SHORT_SKIP_STEP {
            while pos < to {
                self.insert(read4(input, pos), pos);
                pos += SHORT_SKIP_STEP;
            }
        } else {
            while pos < to {
                self.insert(read4(input, pos), pos);
                pos += SKIP_STEP;
            }
        }
    }
}

/// The symbols of one block and how often each occurs.
struct Block {
    /// A literal byte, or [`MATCH_FLAG`] | (length - 3) << 16 | (distance - 1).
    symbols: Vec<u32>,
    /// Literal/length symbol counts.
    litlen: [u32; LITLEN_SYMBOLS],
    /// Distance symbol counts.
    dist: [u32; DIST_SYMBOLS],
    /// The matches' size with the fixed codes, extra bits aside.
    fixed_bits: u64,
    /// The extra bits of the lengths and distances, whatever the codes.
    extra_bits: u64,
}

impl Block {
    fn new() -> Self {
        Self {
            symbols: Vec::with_capacity(BLOCK_SYMBOLS + MIN_MATCH),
            litlen: [0; LITLEN_SYMBOLS],
            dist: [0; DIST_SYMBOLS],
            fixed_bits: 0,
            extra_bits: 0,
        }
    }

    fn clear(&mut self) {
        self.symbols.clear();
        self.litlen = [0; LITLEN_SYMBOLS];
        self.dist = [0; DIST_SYMBOLS];
        self.fixed_bits = 0;
        self.extra_bits = 0;
    }

    #[inline(always)]
    fn literal(&mut self, byte: u8) {
        self.symbols.push(u32::from(byte));
        if let Some(count) = self.litlen.get_mut(usize::from(byte)) {
            *count += 1;
        }
    }

    /// A match of `length` (4..=258) bytes `distance` (1..=32 768) back.
    #[inline(always)]
    fn matched(&mut self, length: usize, distance: usize) {
        let length_index = (length - 3) as u32 & 0xff;
        let distance_minus_one = (distance - 1) as u32 & 0x7fff;
        self.symbols
            .push(MATCH_FLAG | length_index << 16 | distance_minus_one);
        let length = length_code(length_index);
        let length_symbol = length & 0xff;
        if let Some(count) = self.litlen.get_mut(257 + length_symbol as usize) {
            *count += 1;
        }
        let dist_symbol = dist_symbol(distance_minus_one);
        if let Some(count) = self.dist.get_mut(dist_symbol) {
            *count += 1;
        }
        // Fixed codes: 7 bits for symbols 256-279, 8 above; 5 per distance.
        self.fixed_bits += 7 + u64::from(length_symbol >= 23) + 5;
        let dist_extra = DIST_EXTRA.get(dist_symbol).copied().unwrap_or(0);
        self.extra_bits += u64::from((length >> 8) & 0xff) + u64::from(dist_extra);
    }
}

/// [`LENGTH_CODES`] of a length minus 3.
#[inline(always)]
fn length_code(length_index: u32) -> u32 {
    LENGTH_CODES
        .get(length_index as usize & 0xff)
        .copied()
        .unwrap_or(0)
}

// ---- blocks ----

/// Writes `block`, which covers the bytes `span`, as the cheapest of a
/// stored, a fixed and a dynamic block (exact bit counts).
fn write_block(
    writer: &mut BitWriter<'_>,
    span: &[u8],
    block: &mut Block,
    fixed: &Codes,
    work: &mut Work,
) {
    if let Some(end) = block.litlen.get_mut(END_OF_BLOCK) {
        *end = 1;
    }
    let dynamic = Dynamic::new(block, work);
    let dynamic_bits = dynamic.bits;
    // Fixed codes: 8 bits for literals 0-143, 9 for 144-255, 7 for the end
    // of block (the lengths and distances are counted as they come).
    let literals: u32 = block.litlen.iter().take(256).sum();
    let high_literals: u32 = block.litlen.iter().take(256).skip(144).sum();
    let fixed_bits = 3
        + 8 * u64::from(literals)
        + u64::from(high_literals)
        + block.fixed_bits
        + 7
        + block.extra_bits;
    let stored_bits = stored_bits(span.len(), writer.bit_offset());
    if stored_bits <= fixed_bits.min(dynamic_bits) {
        writer.reserve(span.len() + 5 * span.len().div_ceil(STORED_MAX) + 8);
        write_stored(writer, span);
    } else if fixed_bits <= dynamic_bits {
        writer.reserve((fixed_bits / 8) as usize + 8);
        writer.write(FIXED, 3);
        write_symbols(writer, block, fixed);
    } else {
        writer.reserve((dynamic_bits / 8) as usize + 8);
        writer.write(DYNAMIC, 3);
        dynamic.header.write(writer);
        write_symbols(writer, block, &dynamic.codes);
    }
}

/// The bits of `len` bytes in stored blocks, the first starting `offset`
/// bits into a byte: per block, 3 header bits, padding to a byte, LEN and
/// NLEN.
fn stored_bits(len: usize, offset: u32) -> u64 {
    let blocks = len.div_ceil(STORED_MAX).max(1) as u64;
    let first_padding = u64::from((8 - (offset + 3) % 8) % 8);
    let later_padding = 5 * (blocks - 1);
    blocks * (3 + 32) + first_padding + later_padding + 8 * len as u64
}

/// Writes `span` as stored blocks of at most 65 535 bytes.
fn write_stored(writer: &mut BitWriter<'_>, span: &[u8]) {
    for chunk in span.chunks(STORED_MAX) {
        writer.write(STORED, 3);
        writer.align();
        let len = chunk.len() as u16;
        writer.write(u64::from(len) | u64::from(!len) << 16, 32);
        writer.copy(chunk);
    }
}

/// Writes the symbols of `block` and the end of block with `codes`.
fn write_symbols(writer: &mut BitWriter<'_>, block: &Block, codes: &Codes) {
    // Room is made per chunk (a symbol takes at most 48 bits), so that the
    // loop keeps its state in registers and checks no capacity.
    const CHUNK: usize = 1024;
    for chunk in block.symbols.chunks(CHUNK) {
        writer.reserve(6 * chunk.len());
        let mut state = writer.state;
        let buf = writer.out.as_mut_slice();
        // Bits are stored only when the next symbol might not fit in the
        // 64-bit buffer (a literal takes at most 15, a match 48): several
        // literals share a store.
        for &symbol in chunk {
            let (bits, len) = if symbol & MATCH_FLAG == 0 {
                if state.count > 64 - 1 - 15 {
                    state.flush(buf);
                }
                codes.litlen(symbol as usize & 0xff)
            } else {
                if state.count > 64 - 1 - 48 {
                    state.flush(buf);
                }
                match_bits(symbol, codes)
            };
            state.append(bits, len);
        }
        state.flush(buf);
        writer.state = state;
    }
    let (code, len) = codes.litlen(END_OF_BLOCK);
    writer.write(code, len);
}

/// The bits of a match symbol (length code, its extra bits, distance code,
/// its extra bits: at most 15 + 5 + 15 + 13 = 48) and their number.
#[inline(always)]
fn match_bits(symbol: u32, codes: &Codes) -> (u64, u32) {
    let length = length_code((symbol >> 16) & 0xff);
    let (length_code, length_len) = codes.litlen(257 + (length & 0x1f) as usize);
    let length_extra = (length >> 8) & 0xff;
    let distance_minus_one = symbol & 0x7fff;
    let dist_symbol = dist_symbol(distance_minus_one);
    let (dist_code, dist_len) = codes.dist(dist_symbol);
    let dist_extra = DIST_EXTRA.get(dist_symbol).copied().map_or(0, u32::from);
    let dist_base = DIST_BASE.get(dist_symbol).copied().map_or(1, u32::from);
    let mut bits = length_code | u64::from(length >> 16) << length_len;
    let mut len = length_len + length_extra;
    bits |= dist_code << len;
    len += dist_len;
    bits |= u64::from(distance_minus_one + 1 - dist_base) << len;
    len += dist_extra;
    (bits, len)
}

// ---- Huffman codes ----

/// Codewords (bit-reversed, as deflate sends them) with their lengths: the
/// low 16 bits hold the codeword, the next ones its length.
struct Codes {
    litlen: [u32; LITLEN_SYMBOLS],
    dist: [u32; DIST_SYMBOLS],
}

impl Codes {
    /// The fixed codes of RFC 1951 §3.2.6.
    fn fixed() -> Self {
        let mut litlen_lens = [8u8; LITLEN_SYMBOLS];
        for (symbol, len) in litlen_lens.iter_mut().enumerate() {
            *len = match symbol {
                0..=143 => 8,
                144..=255 => 9,
                256..=279 => 7,
                _ => 8,
            };
        }
        let mut codes = Self {
            litlen: [0; LITLEN_SYMBOLS],
            dist: [0; DIST_SYMBOLS],
        };
        canonical_codes(&litlen_lens, &mut codes.litlen);
        canonical_codes(&[5; DIST_SYMBOLS], &mut codes.dist);
        codes
    }

    /// The codeword and its length for a literal/length symbol.
    #[inline(always)]
    fn litlen(&self, symbol: usize) -> (u64, u32) {
        split(self.litlen.get(symbol).copied().unwrap_or(0))
    }

    /// The codeword and its length for a distance symbol.
    #[inline(always)]
    fn dist(&self, symbol: usize) -> (u64, u32) {
        split(
            self.dist
                .get(symbol & (DIST_SYMBOLS - 1))
                .copied()
                .unwrap_or(0),
        )
    }
}

/// A packed codeword: (codeword, length).
#[inline(always)]
fn split(code: u32) -> (u64, u32) {
    (u64::from(code & 0xffff), code >> 16)
}

/// Canonical codewords (RFC 1951 §3.2.2) for `lengths`, bit-reversed and
/// packed with their lengths into `codes`.
fn canonical_codes(lengths: &[u8], codes: &mut [u32]) {
    let mut count = [0u32; 16];
    for &len in lengths {
        if let Some(count) = count.get_mut(usize::from(len & 15)) {
            *count += 1;
        }
    }
    let mut next = [0u32; 16];
    let mut code = 0u32;
    for len in 1..16 {
        let shorter = count.get(len - 1).copied().unwrap_or(0);
        code = (code + if len == 1 { 0 } else { shorter }) << 1;
        if let Some(next) = next.get_mut(len) {
            *next = code;
        }
    }
    for (packed, &len) in codes.iter_mut().zip(lengths) {
        if len == 0 {
            *packed = 0;
            continue;
        }
        let len = u32::from(len & 15);
        if let Some(next) = next.get_mut(len as usize) {
            *packed = reverse(*next, len) | len << 16;
            *next += 1;
        }
    }
}

/// The `len` low bits of `code` in reverse order (deflate sends Huffman
/// codewords from their most significant bit).
#[inline(always)]
fn reverse(code: u32, len: u32) -> u32 {
    let low = REVERSED_BYTES
        .get(code as usize & 0xff)
        .copied()
        .unwrap_or(0);
    let high = REVERSED_BYTES
        .get((code >> 8) as usize & 0xff)
        .copied()
        .unwrap_or(0);
    (u32::from(low) << 8 | u32::from(high)) >> (16 - len)
}

/// Every byte with its bits reversed.
const REVERSED_BYTES: [u8; 256] = reversed_bytes();

#[allow(clippy::indexing_slicing)]
const fn reversed_bytes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = (byte as u8).reverse_bits();
        byte += 1;
    }
    table
}

/// Room for the used symbols of an alphabet while its code is built, kept in
/// the scratch so that no call zeroes 4 KiB of stack.
struct Work {
    /// Used symbols, sorted by count: count << 9 | symbol.
    sorted: [u32; 512],
    /// Their weights, then the tree built from them ([`minimum_redundancy`]).
    depths: [u32; 512],
    /// Used symbols in symbol order, as canonical codes are assigned.
    in_order: [u16; 512],
    /// How many symbols are used (in `in_order`).
    used: usize,
}

impl Work {
    fn new() -> Self {
        Self {
            sorted: [0; 512],
            depths: [0; 512],
            in_order: [0; 512],
            used: 0,
        }
    }
}

/// Builds a length-limited Huffman code for `counts` (see [`code_lengths`])
/// into `lengths` and `codes` (packed codewords); returns the bits the
/// counted symbols take with it.
///
/// Only the used symbols are visited after the first pass, so a block with
/// few distinct symbols pays little for the 286-symbol alphabet.
fn build_code(
    counts: &[u32],
    limit: u32,
    lengths: &mut [u8],
    codes: &mut [u32],
    work: &mut Work,
) -> u64 {
    let (bits, per_length) = code_lengths(counts, limit, lengths, work);
    // Canonical codewords (RFC 1951 §3.2.2): by length, then symbol order.
    let mut next = [0u32; 16];
    let mut code = 0;
    for len in 1..16 {
        code = (code + per_length.get(len - 1).copied().unwrap_or(0)) << 1;
        if let Some(next) = next.get_mut(len) {
            *next = code;
        }
    }
    let used = work.in_order.iter().take(work.used);
    for &symbol in used {
        let symbol = usize::from(symbol);
        let len = lengths.get(symbol).copied().map_or(0, u32::from);
        if let (Some(next), Some(packed)) = (next.get_mut(len as usize & 15), codes.get_mut(symbol))
        {
            *packed = reverse(*next, len) | len << 16;
            *next += 1;
        }
    }
    bits
}

/// Length-limited Huffman code lengths for `counts` into `lengths` (same
/// length, at most 512 symbols; every count below 2^23): none longer than
/// `limit`, and a complete code, with at least two codewords even when fewer
/// symbols occur (some inflaters reject a one-codeword code). Returns the
/// bits the counted symbols take with that code and the number of codewords
/// of each length; `work` keeps the symbols with a codeword, in order.
fn code_lengths(
    counts: &[u32],
    limit: u32,
    lengths: &mut [u8],
    work: &mut Work,
) -> (u64, [u32; 16]) {
    lengths.fill(0);
    let Work {
        sorted,
        depths,
        in_order,
        used: used_symbols,
    } = work;
    let mut used = 0;
    // 32 counts at a time (or-ed together, which vectorises): whole runs of
    // unused symbols (control bytes, bytes above 127 in text) are passed
    // over in one test. (4 at a time cost 1,400 instructions more per 1 KiB
    // message; 8, 1,000; 16, 300.)
    for (run, counts) in counts.chunks(32).enumerate() {
        if counts.iter().fold(0, |any, &count| any | count) == 0 {
            continue;
        }
        for (symbol, &count) in (32 * run..).zip(counts) {
            if count > 0
                && let (Some(slot), Some(in_order)) =
                    (sorted.get_mut(used & 511), in_order.get_mut(used & 511))
            {
                *slot = count << 9 | symbol as u32;
                *in_order = symbol as u16;
                used += 1;
            }
        }
    }
    *used_symbols = used;
    if used < 2 {
        // One codeword of one bit for the used symbol (if any) and for
        // symbol 0 or 1.
        let only = sorted.first().map_or(0, |&key| (key & 511) as usize);
        let other = if only == 0 { 1 } else { 0 };
        for symbol in [only, other] {
            if let Some(len) = lengths.get_mut(symbol) {
                *len = 1;
            }
        }
        let [first, second, ..] = in_order;
        (*first, *second) = (only.min(other) as u16, only.max(other) as u16);
        *used_symbols = 2;
        let bits = counts.iter().map(|&count| u64::from(count)).sum();
        let mut per_length = [0; 16];
        per_length[1] = 2;
        return (bits, per_length);
    }
    sort_keys(sorted, depths, used);
    let sorted = sorted.get(..used).unwrap_or_default();
    for (depth, &key) in depths.iter_mut().zip(sorted.iter()) {
        *depth = key >> 9;
    }
    let mut per_length = minimum_redundancy(depths, used, limit);
    limit_lengths(&mut per_length, limit);
    // The least frequent symbols take the longest codewords.
    let mut keys = sorted.iter();
    let mut bits = 0;
    for len in (1..=limit).rev() {
        let count = per_length.get(len as usize).copied().unwrap_or(0);
        for &key in keys.by_ref().take(count as usize) {
            if let Some(slot) = lengths.get_mut((key & 511) as usize) {
                *slot = len as u8;
            }
            bits += u64::from(key >> 9) * u64::from(len);
        }
    }
    (bits, per_length)
}

/// Counts at or above this share the last bucket of [`sort_keys`].
const SORT_BUCKETS: usize = 64;

/// Sorts the first `n` keys (count << 9 | symbol, gathered in symbol order)
/// of `keys` ascending, with `spare` as room.
///
/// Most counts in a short block are small, so a stable counting sort on
/// the count, with the counts from [`SORT_BUCKETS`] on in one bucket, puts
/// every key in place but those of the last bucket, which an insertion sort
/// then orders (as it does the whole of a short alphabet). On 1 KiB of the
/// bench's JSON that is 640 instructions per message fewer than
/// `sort_unstable` for the three codes.
fn sort_keys(keys: &mut [u32; 512], spare: &mut [u32; 512], n: usize) {
    let n = n.min(512);
    let mut tail = 0;
    if n > 24 {
        let bucket = |key: u32| ((key >> 9) as usize).min(SORT_BUCKETS - 1);
        let mut starts = [0u16; SORT_BUCKETS];
        for &key in keys.iter().take(n) {
            if let Some(start) = starts.get_mut(bucket(key)) {
                *start += 1;
            }
        }
        let mut sum = 0;
        for start in &mut starts {
            let count = *start;
            *start = sum;
            sum += count;
        }
        tail = usize::from(starts[SORT_BUCKETS - 1]);
        for &key in keys.iter().take(n) {
            if let Some(start) = starts.get_mut(bucket(key)) {
                set(spare, usize::from(*start), key);
                *start += 1;
            }
        }
        if let (Some(to), Some(from)) = (keys.get_mut(..n), spare.get(..n)) {
            to.copy_from_slice(from);
        }
        // Long blocks have many frequent symbols: too many to insert.
        if n - tail > 32 {
            if let Some(tail) = keys.get_mut(tail..n) {
                tail.sort_unstable();
            }
            return;
        }
    }
    for i in tail + 1..n {
        let key = at(keys, i);
        let mut j = i;
        while j > tail && at(keys, j - 1) > key {
            set(keys, j, at(keys, j - 1));
            j -= 1;
        }
        set(keys, j, key);
    }
}

/// Reads `a[i]`: `i` is masked into range, which the compiler sees.
#[inline(always)]
fn at(a: &[u32; 512], i: usize) -> u32 {
    a.get(i & 511).copied().unwrap_or(0)
}

/// Writes `a[i] = value` (`i` masked into range).
#[inline(always)]
fn set(a: &mut [u32; 512], i: usize, value: u32) {
    if let Some(slot) = a.get_mut(i & 511) {
        *slot = value;
    }
}

/// How many leaves a Huffman tree for the first `n` (at least 2) weights of
/// `a`, sorted ascending, has at each depth (those deeper than `limit`, at
/// most 15, counted at `limit`), computed in `a`: A. Moffat and J.
/// Katajainen, "In-place calculation of minimum-redundancy codes" (1995).
/// Linear after the sort, and no tree nodes to allocate. (The lightest
/// weights are the deepest leaves: the caller gives them the longest
/// codewords without the depths being written.)
fn minimum_redundancy(a: &mut [u32; 512], n: usize, limit: u32) -> [u32; 16] {
    // Phase 1: combine weights; internal nodes keep their parent's index.
    set(a, 0, at(a, 0) + at(a, 1));
    let (mut root, mut leaf) = (0, 2);
    for next in 1..n - 1 {
        if leaf >= n || at(a, root) < at(a, leaf) {
            set(a, next, at(a, root));
            set(a, root, next as u32);
            root += 1;
        } else {
            set(a, next, at(a, leaf));
            leaf += 1;
        }
        if leaf >= n || (root < next && at(a, root) < at(a, leaf)) {
            set(a, next, at(a, next) + at(a, root));
            set(a, root, next as u32);
            root += 1;
        } else {
            set(a, next, at(a, next) + at(a, leaf));
            leaf += 1;
        }
    }
    // Phase 2: internal node depths, from the root down.
    set(a, n - 2, 0);
    for next in (0..n.saturating_sub(2)).rev() {
        let parent = at(a, next) as usize;
        set(a, next, at(a, parent) + 1);
    }
    // Phase 3: leaves per depth: at each depth, the nodes available that
    // are not internal ones.
    let mut per_depth = [0u32; 16];
    let (mut available, mut used, mut depth) = (1usize, 0usize, 0u32);
    let mut root = n as isize - 2;
    let mut leaves_left = n;
    while available > 0 {
        while root >= 0 && at(a, root as usize) == depth {
            used += 1;
            root -= 1;
        }
        let leaves = available.saturating_sub(used).min(leaves_left);
        if let Some(count) = per_depth.get_mut(depth.min(limit) as usize & 15) {
            *count += leaves as u32;
        }
        leaves_left -= leaves;
        available -= leaves;
        if available > used {
            break;
        }
        available = 2 * used;
        depth += 1;
        used = 0;
    }
    per_depth
}

/// Turns counts of codewords per length (those longer than `limit` already
/// counted at `limit`) into a complete code no longer than `limit`: while
/// the Kraft sum is over 1, one codeword at `limit` goes, and the longest
/// shorter one splits into two one bit longer (the repair miniz uses; close
/// to optimal when few codewords overflow, as with real data).
fn limit_lengths(per_length: &mut [u32; 16], limit: u32) {
    let limit = limit.min(15);
    let kraft: u32 = (1..=limit)
        .map(|len| per_length.get(len as usize).copied().unwrap_or(0) << (limit - len))
        .sum();
    let mut kraft = kraft;
    while kraft > 1 << limit {
        match per_length.get_mut(limit as usize) {
            Some(count) if *count > 0 => *count -= 1,
            _ => return,
        }
        for len in (1..limit as usize).rev() {
            if let Some(&count) = per_length.get(len)
                && count > 0
            {
                if let Some(count) = per_length.get_mut(len) {
                    *count -= 1;
                }
                if let Some(longer) = per_length.get_mut(len + 1) {
                    *longer += 2;
                }
                break;
            }
        }
        kraft -= 1;
    }
}

/// A dynamic block's codes and the header that describes them.
struct Dynamic {
    codes: Codes,
    header: Header,
    /// The whole block's size in bits.
    bits: u64,
}

impl Dynamic {
    fn new(block: &Block, work: &mut Work) -> Self {
        let mut litlen = [0u8; LITLEN_SYMBOLS];
        let mut dist = [0u8; DIST_SYMBOLS];
        let mut codes = Codes {
            litlen: [0; LITLEN_SYMBOLS],
            dist: [0; DIST_SYMBOLS],
        };
        let litlen_bits = build_code(
            block.litlen.get(..286).unwrap_or_default(),
            MAX_CODE_LEN,
            litlen.get_mut(..286).unwrap_or_default(),
            &mut codes.litlen,
            work,
        );
        let dist_bits = build_code(
            block.dist.get(..30).unwrap_or_default(),
            MAX_CODE_LEN,
            dist.get_mut(..30).unwrap_or_default(),
            &mut codes.dist,
            work,
        );
        let header = Header::new(&litlen, &dist, work);
        Self {
            codes,
            bits: 3 + header.bits + litlen_bits + dist_bits + block.extra_bits,
            header,
        }
    }
}

/// A dynamic block header: the code lengths, run-length coded with the code
/// length alphabet (RFC 1951 §3.2.7), and that alphabet's own code.
struct Header {
    /// Literal/length code lengths sent (257..=286).
    hlit: usize,
    /// Distance code lengths sent (1..=30).
    hdist: usize,
    /// Code length code lengths sent (4..=19).
    hclen: usize,
    /// The code length code's lengths.
    codelen_lengths: [u8; CODELEN_SYMBOLS],
    /// The code length code.
    codelen_codes: [u32; CODELEN_SYMBOLS],
    /// Code length symbols, with their extra bits' value from bit 8 on.
    items: [u16; 286 + 30],
    /// How many of `items` are in use.
    item_count: usize,
    /// The header's size in bits, block type aside.
    bits: u64,
}

impl Header {
    fn new(litlen: &[u8; LITLEN_SYMBOLS], dist: &[u8; DIST_SYMBOLS], work: &mut Work) -> Self {
        let hlit = 1 + litlen
            .iter()
            .take(286)
            .rposition(|&len| len > 0)
            .unwrap_or(0)
            .max(256);
        let hdist = 1 + dist.iter().take(30).rposition(|&len| len > 0).unwrap_or(0);
        let mut lengths = [0u8; 286 + 30];
        if let (Some(to), Some(from)) = (lengths.get_mut(..hlit), litlen.get(..hlit)) {
            to.copy_from_slice(from);
        }
        if let (Some(to), Some(from)) = (lengths.get_mut(hlit..hlit + hdist), dist.get(..hdist)) {
            to.copy_from_slice(from);
        }
        let mut header = Self {
            hlit,
            hdist,
            hclen: CODELEN_SYMBOLS,
            codelen_lengths: [0; CODELEN_SYMBOLS],
            codelen_codes: [0; CODELEN_SYMBOLS],
            items: [0; 286 + 30],
            item_count: 0,
            bits: 0,
        };
        let mut counts = [0u32; CODELEN_SYMBOLS];
        header.run_length_code(lengths.get(..hlit + hdist).unwrap_or_default(), &mut counts);
        let items_bits = build_code(
            &counts,
            MAX_CODELEN_LEN,
            &mut header.codelen_lengths,
            &mut header.codelen_codes,
            work,
        );
        header.hclen = CODELEN_ORDER
            .iter()
            .rposition(|&symbol| header.codelen_lengths.get(symbol).is_some_and(|&l| l > 0))
            .map_or(0, |last| last + 1)
            .max(4);
        let [.., repeats, short_zeros, long_zeros] = counts;
        let extra_bits = 2 * repeats + 3 * short_zeros + 7 * long_zeros;
        header.bits = 5 + 5 + 4 + 3 * header.hclen as u64 + items_bits + u64::from(extra_bits);
        header
    }

    /// Codes `lengths` with the code length alphabet: 16 repeats the last
    /// length 3–6 times, 17 and 18 give 3–10 and 11–138 zeros.
    fn run_length_code(&mut self, lengths: &[u8], counts: &mut [u32; CODELEN_SYMBOLS]) {
        // The item count is kept in a local, not stored back into the
        // header after every item.
        let items = &mut self.items;
        let mut count = 0;
        let mut push = |symbol: u8, extra: usize| {
            if let Some(item) = items.get_mut(count) {
                *item = u16::from(symbol) | (extra as u16) << 8;
                count += 1;
            }
            if let Some(count) = counts.get_mut(usize::from(symbol)) {
                *count += 1;
            }
        };
        let mut rest = lengths;
        while let Some((&len, _)) = rest.split_first() {
            let mut run = run_of(rest, len);
            rest = rest.get(run..).unwrap_or_default();
            if len == 0 {
                while run >= 11 {
                    let repeat = run.min(138);
                    push(18, repeat - 11);
                    run -= repeat;
                }
                if run >= 3 {
                    push(17, run - 3);
                    run = 0;
                }
            } else {
                push(len, 0);
                run -= 1;
                while run >= 3 {
                    let repeat = run.min(6);
                    push(16, repeat - 3);
                    run -= repeat;
                }
            }
            for _ in 0..run {
                push(len, 0);
            }
        }
        self.item_count = count;
    }

    fn write(&self, writer: &mut BitWriter<'_>) {
        // At most 14 bits per item, 3 per code length code length, 14 more.
        writer.reserve(2 * self.item_count + 8 + 2);
        let mut state = writer.state;
        let buf = writer.out.as_mut_slice();
        let counts = (self.hlit - 257) | (self.hdist - 1) << 5 | (self.hclen - 4) << 10;
        state.put(buf, counts as u64, 14);
        for &symbol in CODELEN_ORDER.iter().take(self.hclen) {
            let len = self.codelen_lengths.get(symbol).copied().unwrap_or(0);
            if state.count > 64 - 1 - 3 {
                state.flush(buf);
            }
            state.append(u64::from(len), 3);
        }
        for &item in self.items.iter().take(self.item_count) {
            let symbol = usize::from(item & 31);
            let (code, len) = split(self.codelen_codes.get(symbol).copied().unwrap_or(0));
            let extra_len = CODELEN_EXTRA.get(symbol).copied().map_or(0, u32::from);
            if state.count > 64 - 1 - 14 {
                state.flush(buf);
            }
            state.append(code | u64::from(item >> 8) << len, len + extra_len);
        }
        state.flush(buf);
        writer.state = state;
    }
}

/// How many leading bytes of `lengths` equal `len`, compared 8 at a time
/// (the unused symbols' zeros come in long runs).
#[inline(always)]
fn run_of(lengths: &[u8], len: u8) -> usize {
    let pattern = u64::from(len) * 0x0101_0101_0101_0101;
    let mut words = lengths.chunks_exact(8);
    let mut run = 0;
    for word in &mut words {
        let difference = u64::from_le_bytes(word.try_into().unwrap_or_default()) ^ pattern;
        if difference != 0 {
            return run + (difference.trailing_zeros() / 8) as usize;
        }
        run += 8;
    }
    run + words.remainder().iter().take_while(|&&l| l == len).count()
}

// ---- output ----

/// Bits not yet complete bytes, and where the next byte goes: kept in
/// registers through a hot loop (see [`write_symbols`]).
#[derive(Clone, Copy)]
struct Bits {
    /// Bytes complete in the output.
    pos: usize,
    /// Bits not yet complete bytes (at most 7 between writes).
    bits: u64,
    count: u32,
}

impl Bits {
    /// Appends the `len` (at most 56) low bits of `value`, storing the
    /// whole 64-bit word at `pos` in `buf`, which has room for it (else the
    /// bits are lost: callers make the room first).
    #[inline(always)]
    fn put(&mut self, buf: &mut [u8], value: u64, len: u32) {
        self.bits |= value << self.count;
        self.count += len;
        if let Some(slot) = buf.get_mut(self.pos..self.pos + 8) {
            slot.copy_from_slice(&self.bits.to_le_bytes());
        }
        let whole = self.count / 8;
        self.pos += whole as usize;
        // At most 7 + 56 bits were pending: the shift is below 64.
        self.bits >>= whole * 8;
        self.count %= 8;
    }

    /// Appends the `len` low bits of `value` without storing them: `count +
    /// len` must stay below 64 (see [`flush`](Self::flush)).
    #[inline(always)]
    fn append(&mut self, value: u64, len: u32) {
        self.bits |= value << (self.count & 63);
        self.count += len;
    }

    /// Stores the pending bits (at most 63) as a 64-bit word at `pos` in
    /// `buf`, which has room for it, and keeps the incomplete byte's.
    #[inline(always)]
    fn flush(&mut self, buf: &mut [u8]) {
        self.put(buf, 0, 0);
    }
}

/// Writes bits least significant first into `out`, 8 bytes at a time.
///
/// `out` is kept longer than what is written, so that every write can store
/// a whole 64-bit word without checking for room bit by bit; `finish` cuts
/// it to the bytes written.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    state: Bits,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        Self {
            out,
            state: Bits {
                pos: 0,
                bits: 0,
                count: 0,
            },
        }
    }

    /// Bits pending in the last, incomplete byte.
    fn bit_offset(&self) -> u32 {
        self.state.count
    }

    /// Makes room for `bytes` more bytes (plus the word a write stores).
    fn reserve(&mut self, bytes: usize) {
        let needed = self.state.pos + bytes + 8;
        if self.out.len() < needed {
            self.out.resize(needed, 0);
        }
    }

    /// Appends the `len` (at most 56) low bits of `value`.
    fn write(&mut self, value: u64, len: u32) {
        self.reserve(8);
        self.state.put(self.out, value, len);
    }

    /// Pads with zero bits to a byte boundary.
    fn align(&mut self) {
        if self.state.count > 0 {
            self.state.pos += 1;
        }
        self.state.bits = 0;
        self.state.count = 0;
    }

    /// Appends whole bytes (after [`align`](Self::align)).
    fn copy(&mut self, bytes: &[u8]) {
        self.reserve(bytes.len());
        let pos = self.state.pos;
        if let Some(slot) = self.out.get_mut(pos..pos + bytes.len()) {
            slot.copy_from_slice(bytes);
        }
        self.state.pos += bytes.len();
    }

    /// Pads the last byte and cuts `out` to the bytes written.
    fn finish(mut self) {
        self.align();
        self.out.truncate(self.state.pos);
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use flate2::{Decompress, FlushDecompress, Status};
    use proptest::prelude::*;

    use super::*;
    use crate::deflate::SYNC_TAIL;
    use crate::deflate::tests::noise_from as noise;

    fn compressed(input: &[u8], bits: u8) -> Vec<u8> {
        let mut out = vec![0xaa; 3];
        compress(input, bits, &mut out);
        out
    }

    /// Inflates a message the way a zlib-based receiver does, with a
    /// decompressor of the same window (zlib has none smaller than 9 bits).
    fn inflate_zlib(message: &[u8], bits: u8, expected_len: usize) -> Vec<u8> {
        let mut stream = message.to_vec();
        stream.extend_from_slice(&SYNC_TAIL);
        let mut decompressor = Decompress::new_with_window_bits(false, bits.max(9));
        let mut out = Vec::with_capacity(expected_len + 1024);
        loop {
            let consumed = decompressor.total_in() as usize;
            let status = decompressor
                .decompress_vec(&stream[consumed..], &mut out, FlushDecompress::Sync)
                .expect("zlib accepts the stream");
            assert_ne!(status, Status::StreamEnd, "BFINAL is never set");
            if decompressor.total_in() as usize == stream.len() {
                return out;
            }
            out.reserve(out.capacity());
        }
    }

    /// Inflates with libdeflate, which wants a whole stream: a final empty
    /// fixed block (`03 00`) after the appended tail.
    fn inflate_libdeflate(message: &[u8], expected_len: usize) -> Vec<u8> {
        let mut stream = message.to_vec();
        stream.extend_from_slice(&SYNC_TAIL);
        stream.extend_from_slice(&[0x03, 0x00]);
        let mut out = vec![0; expected_len + 1];
        let len = libdeflater::Decompressor::new()
            .deflate_decompress(&stream, &mut out)
            .expect("libdeflate accepts the stream");
        out.truncate(len);
        out
    }

    /// Compresses, checks that both inflaters give `input` back, and
    /// returns the compressed size.
    fn round_trip(input: &[u8], bits: u8) -> usize {
        let message = compressed(input, bits);
        assert!(
            inflate_zlib(&message, bits, input.len()) == input,
            "zlib, {} bytes, window {bits}",
            input.len()
        );
        assert!(
            inflate_libdeflate(&message, input.len()) == input,
            "libdeflate, {} bytes",
            input.len()
        );
        assert!(
            matches_stay_inside(input, bits),
            "a match reaches past the window"
        );
        message.len()
    }

    /// The matches the LZ77 stage finds for `input`: (position, length,
    /// distance).
    fn matches(input: &[u8], bits: u8) -> Vec<(usize, usize, usize)> {
        let window = 1usize << bits.clamp(8, 15);
        let mut head = Box::new([0; HASH_SIZE]);
        let mut matcher = Matcher::new(&mut head, input.len(), window);
        let mut block = Block::new();
        let mut found = Vec::new();
        let mut pos = 0;
        while pos < input.len() {
            block.clear();
            let end = matcher.fill(input, pos, &mut block);
            for &symbol in &block.symbols {
                if symbol & MATCH_FLAG == 0 {
                    pos += 1;
                } else {
                    let length = ((symbol >> 16) & 0xff) as usize + 3;
                    let distance = (symbol & 0x7fff) as usize + 1;
                    found.push((pos, length, distance));
                    pos += length;
                }
            }
            assert_eq!(pos, end);
        }
        found
    }

    /// Whether every match the LZ77 stage finds for `input` reaches back at
    /// most 2^bits bytes and not before the start, and copies bytes that
    /// are really there.
    fn matches_stay_inside(input: &[u8], bits: u8) -> bool {
        let window = 1usize << bits.clamp(8, 15);
        matches(input, bits)
            .into_iter()
            .all(|(pos, length, distance)| {
                distance <= window
                    && distance <= pos
                    && input[pos..pos + length] == input[pos - distance..pos - distance + length]
            })
    }

    /// The type of the first block (BTYPE): 0 stored, 1 fixed, 2 dynamic.
    fn first_block_type(message: &[u8]) -> u8 {
        (message[0] >> 1) & 3
    }

    /// The bench's JSON payload (`json_like` in ws-bench's payload.rs).
    fn json_like(size: usize) -> Vec<u8> {
        let mut text = String::with_capacity(size + 160);
        text.push('[');
        let mut state: u32 = 0x9e37_79b9;
        let mut id = 0u32;
        while text.len() < size {
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

    fn libdeflate_level_1(input: &[u8]) -> Vec<u8> {
        let mut compressor =
            libdeflater::Compressor::new(libdeflater::CompressionLvl::new(1).unwrap());
        let mut out = vec![0; compressor.deflate_compress_bound(input.len())];
        let len = compressor.deflate_compress(input, &mut out).unwrap();
        out.truncate(len);
        out
    }

    #[test]
    fn an_empty_message_is_a_single_zero_byte() {
        assert_eq!(compressed(b"", 15), [0x00]);
        assert_eq!(round_trip(b"", 15), 1);
    }

    #[test]
    fn the_output_replaces_what_out_held() {
        let mut out = b"left over".to_vec();
        compress(b"a", 15, &mut out);
        assert_eq!(inflate_zlib(&out, 15, 1), b"a");
    }

    #[test]
    fn the_output_depends_on_the_message_only() {
        // The thread's scratch keeps the hash table of the message before;
        // what is left of it must not change the next message's output.
        let json = json_like(4096);
        let first = compressed(&json, 15);
        compressed(&json_like(20_000), 15);
        compressed(&noise(3000, 4), 15);
        assert_eq!(compressed(&json, 15), first);
        let mut fresh = Vec::new();
        encode(&mut Scratch::new(), &json, 1 << 15, &mut fresh);
        assert_eq!(fresh, first);
    }

    #[test]
    fn tiny_messages_round_trip() {
        for input in [
            &b"a"[..],
            b"ab",
            b"abc",
            b"abcd",
            b"aaaa",
            b"aaaaa",
            b"Hello",
        ] {
            for bits in 8..=15 {
                round_trip(input, bits);
            }
        }
    }

    #[test]
    fn the_message_ends_with_an_empty_stored_block_header_and_no_bfinal() {
        // "Hello" alone: a fixed block (BFINAL 0, BTYPE 01), then 000 and
        // padding; zlib's sync flush gives the same bytes plus 00 00 ff ff.
        let message = compressed(b"Hello", 15);
        assert_eq!(message, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    }

    #[test]
    fn runs_around_the_longest_match_round_trip() {
        for len in [257, 258, 259, 260, 261, 262, 516, 517, 1000] {
            let run = vec![b'x'; len];
            for bits in [8, 15] {
                round_trip(&run, bits);
            }
            let mut prefixed = b"0123".to_vec();
            prefixed.extend_from_slice(&run);
            round_trip(&prefixed, 15);
        }
    }

    #[test]
    fn a_repeat_exactly_one_window_back_is_matched_and_one_byte_further_is_not() {
        for bits in 8..=15u8 {
            let window = 1usize << bits;
            let phrase = b"a phrase long enough to match";
            for (gap, matched) in [(window, true), (window + 1, false)] {
                let mut input = noise(gap, u64::from(bits));
                input[..phrase.len()].copy_from_slice(phrase);
                input.extend_from_slice(phrase);
                round_trip(&input, bits);
                let reaches_gap = matches(&input, bits)
                    .iter()
                    .any(|&(_, _, distance)| distance == gap);
                assert_eq!(reaches_gap, matched, "window {bits}, gap {gap}");
            }
        }
    }

    #[test]
    fn incompressible_input_is_stored() {
        let input = noise(70_000, 7);
        let size = round_trip(&input, 15);
        assert_eq!(first_block_type(&compressed(&input, 15)), 0);
        // Five blocks of up to 16 384 symbols (one per byte), stored with 5
        // bytes of header each, and the closing byte.
        assert_eq!(size, 70_000 + 5 * 5 + 1);
        let kib = noise(1024, 9);
        assert_eq!(round_trip(&kib, 15), 1024 + 5 + 1);
    }

    #[test]
    fn stored_blocks_hold_at_most_65535_bytes() {
        let input = noise(140_000, 8);
        let mut out = Vec::new();
        let mut writer = BitWriter::new(&mut out);
        writer.write(FIXED, 3);
        writer.write(0, 7); // an empty fixed block: its end of block only
        assert_eq!(
            stored_bits(input.len(), writer.bit_offset()),
            8 * (140_000 + 3 * 4) + 3 * 3 + 3 + 2 * 5
        );
        write_stored(&mut writer, &input);
        writer.write(STORED, 3);
        writer.finish();
        // 13 bits of headers, then LEN and NLEN; two more blocks of a header
        // byte, LEN and NLEN; the closing byte.
        assert_eq!(out.len(), 2 + 4 + 2 * 5 + 140_000 + 1);
        assert_eq!(inflate_zlib(&out, 15, input.len()), input);
        assert_eq!(inflate_libdeflate(&out, input.len()), input);
    }

    #[test]
    fn a_short_message_takes_the_fixed_codes() {
        let message = compressed(b"{\"type\":\"ping\"}", 15);
        assert_eq!(first_block_type(&message), 1);
        round_trip(b"{\"type\":\"ping\"}", 15);
    }

    #[test]
    fn json_takes_dynamic_codes() {
        let input = json_like(1024);
        assert_eq!(first_block_type(&compressed(&input, 15)), 2);
    }

    #[test]
    fn long_messages_are_split_into_blocks_and_round_trip() {
        let json = json_like(1 << 21);
        for bits in [9, 15] {
            let size = round_trip(&json, bits);
            assert!(size < json.len() / 3, "{size}");
        }
        let mut mixed = json_like(300_000);
        mixed.extend(noise(200_000, 3));
        mixed.extend(vec![0; 600_000]);
        mixed.extend(json_like(300_000));
        round_trip(&mixed, 15);
    }

    #[test]
    #[ignore = "64 MiB: slow without optimisations"]
    fn a_64_mib_message_round_trips() {
        let mut input = json_like(48 << 20);
        input.extend(noise(16 << 20, 5));
        round_trip(&input, 15);
    }

    /// Counts that grow like the Fibonacci numbers give a Huffman tree as
    /// deep as there are symbols.
    fn fibonacci(n: usize) -> Vec<u32> {
        let mut counts = vec![1u32, 1];
        while counts.len() < n {
            let next = counts[counts.len() - 1] + counts[counts.len() - 2];
            counts.push(next);
        }
        counts.truncate(n);
        counts
    }

    /// The Kraft sum of `lengths`, scaled so that a complete code gives 2^15.
    fn kraft(lengths: &[u8]) -> u32 {
        lengths
            .iter()
            .filter(|&&len| len > 0)
            .map(|&len| 1 << (15 - len))
            .sum()
    }

    #[test]
    fn code_lengths_are_limited_and_complete() {
        // (Fibonacci counts pass 2^23, more than a block holds, after 34.)
        for (symbols, limit) in [(20, 15), (34, 15), (286, 15), (19, 7), (12, 7)] {
            let mut counts = fibonacci(symbols.min(34));
            counts.resize(symbols, counts[counts.len() - 1]);
            counts.sort_unstable();
            let mut lengths = vec![0u8; symbols];
            code_lengths(&counts, limit, &mut lengths, &mut Work::new());
            assert!(lengths.iter().all(|&len| (1..=limit as u8).contains(&len)));
            assert_eq!(kraft(&lengths), 1 << 15, "{symbols} symbols, limit {limit}");
            // More frequent symbols never get longer codewords.
            for pair in lengths.windows(2) {
                assert!(pair[0] >= pair[1], "{lengths:?}");
            }
        }
    }

    #[test]
    fn runs_of_code_lengths_are_counted() {
        let mut lengths = vec![0u8; 20];
        lengths.extend([5, 5, 5, 7]);
        for start in 0..lengths.len() {
            let len = lengths[start];
            let expected = lengths[start..].iter().take_while(|&&l| l == len).count();
            assert_eq!(run_of(&lengths[start..], len), expected, "from {start}");
        }
        assert_eq!(run_of(&[], 3), 0);
    }

    #[test]
    fn keys_are_sorted() {
        let bytes = noise(4 * 512, 12);
        for n in [0, 1, 2, 20, 24, 25, 60, 100, 286, 512] {
            for spread in [4, 70, 200, 1 << 14] {
                let mut keys = [0u32; 512];
                for (i, key) in keys.iter_mut().take(n).enumerate() {
                    let r = u32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap());
                    *key = (r % spread) << 9 | i as u32;
                }
                let mut expected = keys[..n].to_vec();
                expected.sort_unstable();
                sort_keys(&mut keys, &mut [0; 512], n);
                assert_eq!(keys[..n], expected[..], "{n} keys, counts below {spread}");
            }
        }
    }

    #[test]
    fn code_lengths_are_optimal_without_limiting() {
        let mut lengths = [0u8; 4];
        let (bits, _) = code_lengths(&[1, 1, 2, 4], 15, &mut lengths, &mut Work::new());
        assert_eq!(lengths, [3, 3, 2, 1]);
        assert_eq!(bits, 3 + 3 + 2 * 2 + 4);
        let mut lengths = [0u8; 5];
        code_lengths(&[0, 5, 0, 5, 0], 15, &mut lengths, &mut Work::new());
        assert_eq!(lengths, [0, 1, 0, 1, 0]);
    }

    #[test]
    fn one_or_no_symbol_still_gets_a_two_codeword_code() {
        let mut lengths = [0u8; 4];
        code_lengths(&[0, 0, 7, 0], 15, &mut lengths, &mut Work::new());
        assert_eq!(lengths, [1, 0, 1, 0]);
        code_lengths(&[9, 0, 0, 0], 15, &mut lengths, &mut Work::new());
        assert_eq!(lengths, [1, 1, 0, 0]);
        code_lengths(&[0, 0, 0, 0], 15, &mut lengths, &mut Work::new());
        assert_eq!(lengths, [1, 1, 0, 0]);
    }

    #[test]
    fn skewed_literal_frequencies_round_trip() {
        // Byte i occurs about fib(i) times, in an order with few repeats.
        let counts = fibonacci(24);
        let mut input: Vec<u8> = counts
            .iter()
            .enumerate()
            .flat_map(|(byte, &count)| std::iter::repeat_n(byte as u8 * 11, count as usize))
            .collect();
        let order = noise(input.len() * 4, 11);
        for i in (1..input.len()).rev() {
            let r = u32::from_le_bytes(order[i * 4..i * 4 + 4].try_into().unwrap());
            input.swap(i, r as usize % (i + 1));
        }
        round_trip(&input, 15);
    }

    #[test]
    fn length_and_distance_tables_follow_rfc_1951() {
        assert_eq!(length_code(0), 0); // 3: symbol 257
        assert_eq!(length_code(8), 8 | 1 << 8); // 11: 265, extra 0
        assert_eq!(length_code(9), 8 | 1 << 8 | 1 << 16); // 12: 265, extra 1
        assert_eq!(length_code(254), 27 | 5 << 8 | 30 << 16); // 257: 284, extra 30
        assert_eq!(length_code(255), 28); // 258: 285
        assert_eq!(dist_symbol(0), 0);
        assert_eq!(dist_symbol(4), 4);
        assert_eq!(dist_symbol(5), 4);
        assert_eq!(dist_symbol(255), 15);
        assert_eq!(dist_symbol(256), 16);
        assert_eq!(dist_symbol(24576), 29);
        assert_eq!(dist_symbol(32767), 29);
    }

    #[test]
    fn compresses_json_at_least_as_well_as_libdeflate_level_1() {
        for size in [1024, 16 * 1024] {
            let input = json_like(size);
            let ours = compressed(&input, 15).len();
            let theirs = libdeflate_level_1(&input).len() + 1;
            println!("{size} bytes of JSON: ours {ours}, libdeflate level 1 {theirs}");
            assert!(ours * 100 <= theirs * 102, "{size}: {ours} vs {theirs}");
        }
    }

    /// Compresses `input` `times` times with this encoder (callgrind counts
    /// the instructions under this function).
    #[inline(never)]
    fn run_ours(input: &[u8], times: usize) -> usize {
        let mut out = Vec::new();
        let mut total = 0;
        for _ in 0..times {
            compress(std::hint::black_box(input), 15, &mut out);
            total += out.len();
        }
        total
    }

    /// The same with libdeflate's level 1, as `deflate::alone` calls it.
    #[inline(never)]
    fn run_libdeflate(input: &[u8], times: usize) -> usize {
        let mut compressor =
            libdeflater::Compressor::new(libdeflater::CompressionLvl::new(1).unwrap());
        let mut out = Vec::new();
        let mut total = 0;
        for _ in 0..times {
            out.clear();
            out.resize(compressor.deflate_compress_bound(input.len()), 0);
            let len = compressor
                .deflate_compress(std::hint::black_box(input), &mut out)
                .unwrap();
            out.truncate(len);
            out.push(0);
            total += out.len();
        }
        total
    }

    /// Instructions per message, ours against libdeflate's level 1: run
    /// under callgrind, counting inside `run_ours` and `run_libdeflate`
    /// (`ENCODER_COST=json:1024` or any other length, `json16k`,
    /// `random1k` or `file:PATH` picks the input):
    ///
    /// ```text
    /// ENCODER_COST=json1k valgrind --tool=callgrind --toggle-collect='*run_ours*' \
    ///     --callgrind-out-file=ours.out TEST_BINARY --ignored --exact \
    ///     deflate::encoder::tests::cost
    /// ```
    #[test]
    #[ignore = "a measurement, run under callgrind"]
    fn cost() {
        let input = match std::env::var("ENCODER_COST").as_deref() {
            Ok("json16k") => json_like(16 * 1024),
            Ok("random1k") => noise(1024, 1),
            Ok(other) if other.starts_with("file:") => {
                std::fs::read(&other["file:".len()..]).unwrap_or_default()
            }
            Ok(other) => json_like(
                other
                    .strip_prefix("json:")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1024),
            ),
            _ => json_like(1024),
        };
        let times = 1000;
        let ours = run_ours(&input, times) / times;
        let theirs = run_libdeflate(&input, times) / times;
        println!("{} bytes: ours {ours}, libdeflate {theirs}", input.len());
    }

    /// JSON-like text with varying records.
    fn json_text() -> impl Strategy<Value = Vec<u8>> {
        (0usize..6000, any::<u32>()).prop_map(|(size, seed)| {
            let mut text = json_like(size + 200);
            let cut = seed as usize % 200;
            text.drain(..cut);
            text.truncate(size);
            text
        })
    }

    proptest! {
        #[test]
        fn random_bytes_round_trip(input in prop::collection::vec(any::<u8>(), 0..3000), bits in 8u8..=15) {
            round_trip(&input, bits);
        }

        #[test]
        fn json_like_text_round_trips(input in json_text(), bits in 8u8..=15) {
            round_trip(&input, bits);
        }

        #[test]
        fn low_entropy_data_round_trips(
            input in prop::collection::vec(prop::sample::select(&b"aab\0"[..]), 0..6000),
            bits in 8u8..=15,
        ) {
            round_trip(&input, bits);
        }

        #[test]
        fn runs_round_trip(
            runs in prop::collection::vec((any::<u8>(), 1usize..600), 0..40),
            bits in 8u8..=15,
        ) {
            let input: Vec<u8> = runs
                .iter()
                .flat_map(|&(byte, len)| std::iter::repeat_n(byte, len))
                .collect();
            round_trip(&input, bits);
        }
    }
}
