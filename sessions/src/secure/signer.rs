//! The signed-cookie token codec: itsdangerous' `URLSafeTimedSerializer`, bit for bit.
//!
//! A token is
//!
//! ```text
//! [ "." if zlib-compressed ] b64(json) "." b64(timestamp) "." b64(HMAC(key, everything before the last "."))
//! ```
//!
//! where `b64` is unpadded base64url, the timestamp is the big-endian Unix time in
//! seconds with its leading zero bytes stripped, and
//! `key = DIGEST(salt + b"signer" + secret_key)` (itsdangerous' "django-concat" key
//! derivation). The payload is compressed with `zlib.compress` (level 6) only when that
//! saves at least two bytes, exactly as itsdangerous does, so that a token written here
//! is byte-identical to the one itsdangerous writes for the same JSON text, keys, salt
//! and timestamp.

use std::fmt;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

use super::{
    b64,
    mac::{HmacSha1, HmacSha256},
};

/// The HMAC digest of signed-cookie sessions.
///
/// The default is [`Digest::Sha256`], the modern choice: HMAC-SHA1 is not broken as a
/// MAC, but SHA-256 spares you security audits that flag any use of SHA-1.
///
/// [`Digest::Sha1`] is itsdangerous' default and what uapi and Flask use: choose it to
/// share session cookies with a Python uapi or Flask service that has the same secret
/// key and salt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Digest {
    /// HMAC-SHA1: itsdangerous' default, used by uapi and Flask.
    Sha1,
    /// HMAC-SHA256. The default.
    #[default]
    Sha256,
}

/// Longest token [`Signer::verify`] looks at (bytes); a longer one is refused before any
/// cryptography.
pub(crate) const MAX_TOKEN_LEN: usize = 8192;

/// Payloads up to this many bytes are decoded on the stack by [`Signer::verify_with`]: a
/// session of a few keys, compressed or not, is well under it.
const STACK_PAYLOAD_LEN: usize = 512;

/// Most bytes a compressed payload may inflate to; more is refused as a bad payload.
const MAX_DECOMPRESSED_LEN: usize = 64 * 1024;

/// Most bytes of a decoded timestamp (a `u64`).
const MAX_TIMESTAMP_LEN: usize = 8;

/// Why a token was refused. Every variant means "no session" to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadToken {
    /// The token is longer than [`MAX_TOKEN_LEN`].
    #[error("token too long")]
    TooLong,
    /// The token does not have the shape of a signed token.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// No key produced this signature.
    #[error("bad signature")]
    BadSignature,
    /// The token is older than the allowed maximum age.
    #[error("token expired: age {age} s > max age {max_age} s")]
    Expired {
        /// Seconds since the token was signed.
        age: u64,
        /// The largest age allowed.
        max_age: u64,
    },
    /// The token was signed after `now`.
    #[error("token signed {ahead} s in the future")]
    FromTheFuture {
        /// Seconds between `now` and the token's timestamp.
        ahead: u64,
    },
    /// The signed payload could not be decoded.
    #[error("bad payload: {0}")]
    BadPayload(&'static str),
}

/// One derived key, kept as the keyed HMAC states so that signing and verifying start from
/// them.
#[derive(Clone)]
enum KeyedMac {
    Sha1(HmacSha1),
    Sha256(HmacSha256),
}

impl KeyedMac {
    /// Derives `DIGEST(salt + b"signer" + secret)` and keys an HMAC with it.
    fn new(digest: Digest, salt: &[u8], secret: &[u8]) -> Self {
        match digest {
            Digest::Sha1 => {
                let key = Sha1::new()
                    .chain_update(salt)
                    .chain_update(b"signer")
                    .chain_update(secret)
                    .finalize();
                Self::Sha1(HmacSha1::new(&key))
            }
            Digest::Sha256 => {
                let key = Sha256::new()
                    .chain_update(salt)
                    .chain_update(b"signer")
                    .chain_update(secret)
                    .finalize();
                Self::Sha256(HmacSha256::new(&key))
            }
        }
    }

    /// The MAC's length in bytes.
    fn output_len(&self) -> usize {
        match self {
            Self::Sha1(_) => HmacSha1::OUTPUT,
            Self::Sha256(_) => HmacSha256::OUTPUT,
        }
    }

    /// Appends `.` and the base64url HMAC of `buf[start..]` to `buf` (the MAC stays on the
    /// stack).
    fn sign_into(&self, buf: &mut Vec<u8>, start: usize) {
        let tag = match self {
            Self::Sha1(key) => key.mac(&buf[start..]),
            Self::Sha256(key) => key.mac(&buf[start..]),
        };
        buf.push(b'.');
        b64::encode_into(&tag[..self.output_len()], buf);
    }

    /// Whether `signature` is the full-length HMAC of `value`, in constant time.
    fn verify(&self, value: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Sha1(key) => key.verify(value, signature),
            Self::Sha256(key) => key.verify(value, signature),
        }
    }
}

/// Signs and verifies session tokens in itsdangerous' `URLSafeTimedSerializer` format.
///
/// The keys are derived once, in [`Signer::new`]. The current key signs; the fallback
/// keys (older ones, kept during a key rotation) only verify. `Debug` shows the digest
/// and the number of keys, never key material.
#[derive(Clone)]
pub(crate) struct Signer {
    digest: Digest,
    /// The current key first, then the fallbacks in order. Never empty.
    keys: Vec<KeyedMac>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("digest", &self.digest)
            .field("fallback_keys", &(self.keys.len() - 1))
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer whose `current` secret key signs and whose `fallbacks` (older keys) only
    /// verify. Verification tries `current` first, then `fallbacks` in order.
    pub(crate) fn new(digest: Digest, salt: &[u8], current: &[u8], fallbacks: &[&[u8]]) -> Self {
        let keys = std::iter::once(current)
            .chain(fallbacks.iter().copied())
            .map(|secret| KeyedMac::new(digest, salt, secret))
            .collect();
        Self { digest, keys }
    }

    /// Signs compact JSON bytes (already serialized by the caller) at `timestamp` (Unix
    /// seconds) with the current key: the token alone.
    #[cfg(test)]
    pub(crate) fn sign(&self, json: &[u8], timestamp: u64) -> String {
        String::from_utf8(self.sign_framed(json, timestamp, b"", b"")).expect("a token is ASCII")
    }

    /// Signs compact JSON bytes (already serialized by the caller) at `timestamp` (Unix
    /// seconds) with the current key, and returns `before`, the token and `after` in one
    /// vector of exactly their length: a `Set-Cookie` value, say, which then becomes a
    /// header value without another copy or allocation.
    ///
    /// The JSON is zlib-compressed exactly like itsdangerous does it, so that the token is
    /// byte-identical to itsdangerous' for the same JSON text, keys, salt and timestamp.
    pub(crate) fn sign_framed(
        &self,
        json: &[u8],
        timestamp: u64,
        before: &[u8],
        after: &[u8],
    ) -> Vec<u8> {
        // itsdangerous: `if len(compressed) < (len(json) - 1)`.
        let compressed = if cannot_save_two_bytes(json) {
            None
        } else {
            compress(json).filter(|c| c.len() + 1 < json.len())
        };
        let (payload, is_compressed) = match &compressed {
            Some(compressed) => (compressed.as_slice(), true),
            None => (json, false),
        };
        let ts = timestamp.to_be_bytes();
        let ts = &ts[ts.iter().take_while(|&&b| b == 0).count()..];

        // ["."] payload "." timestamp "." MAC.
        let key = &self.keys[0];
        let token_len = usize::from(is_compressed)
            + b64::encoded_len(payload.len())
            + 1
            + b64::encoded_len(ts.len())
            + 1
            + b64::encoded_len(key.output_len());
        let mut buf = Vec::with_capacity(before.len() + token_len + after.len());
        buf.extend_from_slice(before);
        if is_compressed {
            buf.push(b'.');
        }
        b64::encode_into(payload, &mut buf);
        buf.push(b'.');
        b64::encode_into(ts, &mut buf);
        key.sign_into(&mut buf, before.len());
        buf.extend_from_slice(after);
        debug_assert_eq!(buf.len(), buf.capacity(), "the length computed up front");
        buf
    }

    /// [`verify_with`](Self::verify_with) at a fixed `now`, returning the JSON bytes: for
    /// tests.
    #[cfg(test)]
    pub(crate) fn verify(
        &self,
        token: &str,
        now: u64,
        max_age: Option<u64>,
    ) -> Result<Vec<u8>, BadToken> {
        self.verify_with(token, now, || now, max_age, <[u8]>::to_vec)
    }

    /// Verifies `token` and hands its JSON bytes (decompressed when the token starts with
    /// `.`) to `read`, returning what `read` returns.
    ///
    /// The time is Unix seconds. With `max_age = Some(m)`, the age `now - timestamp` must
    /// be in `0..=m`: a timestamp in the future is refused, as itsdangerous refuses a
    /// negative age. `coarse_now` is a cheap reading that may be up to one second behind
    /// the exact time, never ahead; `exact_now` is called only when `coarse_now` cannot
    /// decide, that is when the coarse age is negative or at least `m` (with the exact
    /// age between the coarse one and one more, any coarse age in `0..m` is an exact age
    /// in `0..=m`). The verdict is the exact clock's. The signature is checked (in
    /// constant time, against each key in turn) before the timestamp or the payload are
    /// looked at.
    ///
    /// A payload of up to [`STACK_PAYLOAD_LEN`] bytes is decoded on the stack, with no
    /// allocation; a longer one on the heap; a compressed one is inflated into a vector.
    pub(crate) fn verify_with<R>(
        &self,
        token: &str,
        coarse_now: u64,
        exact_now: impl FnOnce() -> u64,
        max_age: Option<u64>,
        read: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, BadToken> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(BadToken::TooLong);
        }
        let (value, signature) = split_at_last_dot(token.as_bytes())
            .ok_or(BadToken::Malformed("no signature separator"))?;
        // Decoded on the stack: a SHA-256 MAC is 32 bytes, and anything that does not fit
        // twice that is no MAC of ours.
        let mut signature_bytes = [0_u8; 64];
        let signature_len = b64::decode_into_slice(signature, &mut signature_bytes)
            .map_err(|_| BadToken::Malformed("signature is not base64url"))?;
        let signature = &signature_bytes[..signature_len];
        if !self.keys.iter().any(|key| key.verify(value, signature)) {
            return Err(BadToken::BadSignature);
        }

        let (payload, timestamp) =
            split_at_last_dot(value).ok_or(BadToken::Malformed("no timestamp separator"))?;
        let timestamp = decode_timestamp(timestamp)?;
        if let Some(max_age) = max_age {
            let decided = coarse_now
                .checked_sub(timestamp)
                .is_some_and(|age| age < max_age);
            if !decided {
                let now = exact_now();
                match now.checked_sub(timestamp) {
                    None => {
                        return Err(BadToken::FromTheFuture {
                            ahead: timestamp - now,
                        })
                    }
                    Some(age) if age > max_age => return Err(BadToken::Expired { age, max_age }),
                    Some(_) => {}
                }
            }
        }

        let (payload, is_compressed) = match payload.strip_prefix(b".") {
            Some(rest) => (rest, true),
            None => (payload, false),
        };
        let not_base64 = |_| BadToken::BadPayload("payload is not base64url");
        let mut on_stack = [0_u8; STACK_PAYLOAD_LEN];
        let on_heap;
        let payload = if b64::decoded_len(payload.len()).is_some_and(|len| len > STACK_PAYLOAD_LEN)
        {
            on_heap = b64::decode(payload).map_err(not_base64)?;
            &on_heap[..]
        } else {
            let len = b64::decode_into_slice(payload, &mut on_stack).map_err(not_base64)?;
            &on_stack[..len]
        };
        if is_compressed {
            Ok(read(&decompress(payload)?))
        } else {
            Ok(read(payload))
        }
    }
}

/// `bytes` split around its last `.`, which belongs to neither side.
///
/// With the `memchr` crate's search (the one the cookie lookup uses): in callgrind it cost
/// about 170 instructions per signed-cookie request less than a backward byte loop.
fn split_at_last_dot(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let dot = memchr::memrchr(b'.', bytes)?;
    Some((&bytes[..dot], &bytes[dot + 1..]))
}

/// Decodes a base64url big-endian timestamp of at most eight bytes.
fn decode_timestamp(text: &[u8]) -> Result<u64, BadToken> {
    // Eight bytes take at most 11 base64 characters. A text of more than 12 (whole groups of
    // 4 for 9 bytes) is too large whatever it decodes to and is refused before decoding onto
    // the stack; 12 decode to 9 bytes or fewer, checked below.
    if text.len() > MAX_TIMESTAMP_LEN.div_ceil(3) * 4 {
        return Err(BadToken::Malformed("timestamp too large"));
    }
    let mut bytes = [0_u8; 12];
    let len = b64::decode_into_slice(text, &mut bytes)
        .map_err(|_| BadToken::Malformed("timestamp is not base64url"))?;
    let bytes = &bytes[..len];
    if bytes.len() > MAX_TIMESTAMP_LEN {
        return Err(BadToken::Malformed("timestamp too large"));
    }
    Ok(bytes.iter().fold(0, |n, &b| (n << 8) | u64::from(b)))
}

/// Whether `zlib.compress(data)` is provably at least `data.len() - 1` bytes long, so
/// that itsdangerous would not use it: then the signer skips zlib (a few microseconds,
/// most of a typical login) and the token is the same.
///
/// It proves it for short payloads with few repeated 3-byte sequences, as small sessions
/// are (`{"user_id":"alice"}`, `{"user_id":"bench-user"}`). zlib's output for short input
/// is the 2-byte header, one block, and the 4-byte Adler-32; the block is the smallest
/// of a stored, a fixed-Huffman and a dynamic-Huffman block. zlib never emits a match
/// shorter than 3 bytes, so the bytes outside every repeated 3-byte sequence are
/// literals ("certain literals"); each run of the other bytes costs at least 12 bits in a
/// fixed-Huffman block (a length and a distance code, or three literals) and 2 in a
/// dynamic one. Then:
///
/// - a stored block takes `len + 5` bytes: never short enough;
/// - a fixed-Huffman block spends at least 8 bits on each certain literal;
/// - a dynamic-Huffman block has a header of at least 29 bits (`BFINAL`, `BTYPE`,
///   `HLIT`, `HDIST`, `HCLEN` and four 3-bit code-length code lengths), and no prefix
///   code spends fewer bits on the certain literals and the end-of-block symbol than
///   their entropy (Gibbs' inequality, which every code satisfying Kraft's inequality
///   obeys, on any subset of its symbols).
///
/// When that is not enough, the dynamic header's code lengths are counted too: see
/// [`min_code_length_bits`].
///
/// `false` means "maybe": zlib decides.
fn cannot_save_two_bytes(data: &[u8]) -> bool {
    // A byte's count among the literals fits in a `u8`, and a sequence's start plus one
    // in a slot of `repeated_trigrams`.
    const MAX_LEN: usize = 255;
    let n = data.len();
    if n > MAX_LEN {
        return false;
    }
    // A byte can be part of a match only if a 3-byte sequence starting at it or at one
    // of the two bytes before it occurred earlier (a match's source is earlier and every
    // match is at least 3 bytes). The other bytes are certainly literals.
    let maybe_matched = repeated_trigrams(data);
    let repeats = maybe_matched != [0; 4];
    // One pass over the bytes with nothing but fixed-size arrays on the stack: the
    // literals' counts and `Σ count·log2(count)` over the literals, summed as the counts
    // grow (in fixed point: an integer addition takes one cycle, a floating-point one
    // four); with repeated sequences, also the sets of certain and of maybe-matched bytes
    // (as bit masks) that the header's code lengths need.
    let table = x_log2_x();
    let mut counts = [0u8; 256];
    let mut sum = 0u64;
    let mut count_literal = |byte: u8| {
        let count = &mut counts[usize::from(byte)];
        sum += table.steps[usize::from(*count)];
        *count += 1;
    };
    let (mut certain, mut optional) = ([0u64; 4], [0u64; 4]);
    // Maximal runs of bytes that may be matched, and the certain literals.
    let (runs, literals) = if !repeats {
        // No repeated sequence, as in most small sessions: every byte is a literal, and
        // the loop is only the counts and the sum. The sets, a read-modify-write through
        // memory per byte (most of the loop's time, in perf annotate), are made later if
        // the header's code lengths must be counted, which for such sessions they are not.
        data.iter().copied().for_each(&mut count_literal);
        (0, n)
    } else {
        let (mut runs, mut literals) = (0usize, 0usize);
        let mut in_run = false;
        for (i, &byte) in data.iter().enumerate() {
            let matched = contains(&maybe_matched, i);
            runs += usize::from(matched && !in_run);
            in_run = matched;
            if matched {
                insert(&mut optional, usize::from(byte));
            } else {
                insert(&mut certain, usize::from(byte));
                count_literal(byte);
                literals += 1;
            }
        }
        (runs, literals)
    };
    let stream_len = |block_bits: usize| 2 + block_bits.div_ceil(8) + 4;
    // Fixed Huffman: header, certain literals, the runs, end of block (7 bits).
    if stream_len(3 + 8 * literals + 12 * runs + 7) + 1 < n {
        return false;
    }
    // Whatever code the block uses, these certain literals and the end-of-block symbol
    // cost at least their entropy: `total·log2(total) − Σ count·log2(count)` (the
    // end-of-block's count, 1, adds 0 to the sum).
    let total = literals + 1;
    // `table` rounds the first term down and the sum's steps up, so that this cannot
    // overstate it; then it is rounded down to whole bits.
    let entropy_bits = table.values[total].saturating_sub(sum) >> XLog2X::FRACTION_BITS;
    let data_bits = usize::try_from(entropy_bits).unwrap_or(0) + 2 * runs;
    if stream_len(29 + data_bits) + 1 >= n {
        return true;
    }
    // Not proven by the header's fixed part alone: count its code lengths (a few hundred
    // nanoseconds, against zlib's few microseconds). Without repeated sequences the sets
    // were not made above: every byte is certain.
    if !repeats {
        for &byte in data {
            insert(&mut certain, usize::from(byte));
        }
    }
    let header_bits = 29 + min_code_length_bits(certain, optional);
    stream_len(header_bits + data_bits) + 1 >= n
}

/// The bytes of `data` in a 3-byte sequence that occurred earlier in it, as a bit mask
/// (bit `i % 64` of word `i / 64` for byte `i`); `data` is at most 255 bytes.
fn repeated_trigrams(data: &[u8]) -> [u64; 4] {
    // A typical session is a few dozen bytes: 128 slots keep the set at most half full.
    if data.len() <= 64 {
        repeated_trigrams_in::<128>(data)
    } else {
        repeated_trigrams_in::<512>(data)
    }
}

/// [`repeated_trigrams`] with a set of `SLOTS`.
///
/// The sequences seen so far are kept in an open-addressing set of `SLOTS` (a power of two,
/// at least twice `data.len()`, so at most half full), each slot one byte: the start plus
/// one of the sequence's first occurrence, or 0 for an empty slot. The set is a cache line
/// or two of the stack to clear, and the sequences are compared in `data` itself.
fn repeated_trigrams_in<const SLOTS: usize>(data: &[u8]) -> [u64; 4] {
    debug_assert!(SLOTS.is_power_of_two() && SLOTS >= 2 * data.len() && data.len() < 256);
    let mut seen = [0u8; SLOTS];
    let mut marked = [0u64; 4];
    let trigram_at =
        |sequence: &[u8]| u32::from_be_bytes([0, sequence[0], sequence[1], sequence[2]]);
    for (start, sequence) in data.windows(3).enumerate() {
        let trigram = trigram_at(sequence);
        let mut slot =
            (trigram.wrapping_mul(0x9E37_79B1) >> (32 - SLOTS.trailing_zeros())) as usize;
        loop {
            match seen[slot] {
                0 => {
                    seen[slot] = (start + 1) as u8;
                    break;
                }
                first if trigram_at(&data[usize::from(first) - 1..]) == trigram => {
                    for i in start..start + 3 {
                        insert(&mut marked, i);
                    }
                    break;
                }
                _ => slot = (slot + 1) % SLOTS,
            }
        }
    }
    marked
}

/// Adds `i` (below 256) to a set of bytes or of positions kept as a 256-bit mask: bit
/// `i % 64` of word `i / 64`.
fn insert(set: &mut [u64; 4], i: usize) {
    set[i / 64] |= 1 << (i % 64);
}

/// Whether `i` (below 256) is in a set made by [`insert`].
fn contains(set: &[u64; 4], i: usize) -> bool {
    set[i / 64] >> (i % 64) & 1 == 1
}

/// The fewest bits a dynamic-Huffman header can spend on the code lengths of the
/// literal/length alphabet's first 257 symbols (the bytes and end-of-block), plus half a
/// bit for the distance code lengths, as zlib writes them; rounded down. `certain` and
/// `optional` are sets of bytes, as bit masks.
///
/// zlib gives a code length to exactly the symbols the block uses: every byte in
/// `certain`, end-of-block, and any of `optional` that it emits as a literal. The lengths
/// are sent in symbol order with the code-length code, whose every
/// symbol takes at least one bit: a length (`1..=15`) or zero (`0`), or a repeat of the
/// previous length 3-6 times (`16`, 2 more bits), or 3-10 or 11-138 zeros (`17`, `18`, 3
/// or 7 more bits). So each run of used symbols costs at least 1 bit (its first length
/// cannot be a repeat of a zero) and half a bit more per symbol after the first (a
/// repeat is 3 bits for up to 6), and each run of `z` zeros at least `min(z, 3)`. The
/// optional bytes are chosen, by dynamic programming over the used and optional symbols
/// (a stretch of other symbols is one run of zeros), to make the total smallest.
fn min_code_length_bits(certain: [u64; 4], optional: [u64; 4]) -> usize {
    // In half bits, the cheapest total so far: ending with a used symbol, ending with 1, 2,
    // or 3 or more zeros, and before the first symbol (`start`).
    const NONE: usize = usize::MAX / 4;
    let (mut used, mut zeros, mut start) = (NONE, [NONE; 3], 0);
    // Only the bytes that are or may be used are visited: a stretch of `gap` bytes that
    // are not is a run of zeros, accounted for at once.
    let symbols = (0..4).flat_map(|word| {
        let mut bits = certain[word] | optional[word];
        std::iter::from_fn(move || {
            let bit = bits.trailing_zeros() as usize;
            bits &= bits.wrapping_sub(1);
            (bit < 64).then_some(word * 64 + bit)
        })
    });
    let mut next = 0;
    for symbol in symbols.chain([256]) {
        let gap = symbol - next;
        if gap > 0 {
            // From a length (or the start), each of the first three zeros costs 1 bit; so
            // does each zero that brings a shorter run of zeros up to 3.
            let before = used.min(start);
            zeros = [
                if gap == 1 { before + 2 } else { NONE },
                match gap {
                    1 => zeros[0] + 2,
                    2 => before + 4,
                    _ => NONE,
                },
                match gap {
                    1 => (zeros[1] + 2).min(zeros[2]),
                    2 => (zeros[0] + 4).min(zeros[1] + 2).min(zeros[2]),
                    _ => (before + 6)
                        .min(zeros[0] + 4)
                        .min(zeros[1] + 2)
                        .min(zeros[2]),
                },
            ];
            (used, start) = (NONE, NONE);
        }
        let after_zeros = zeros.iter().min().copied().unwrap_or(NONE).min(start);
        let as_used = (used + 1).min(after_zeros + 2);
        let must = symbol == 256 || contains(&certain, symbol);
        zeros = if must {
            [NONE; 3]
        } else {
            let before = used.min(start);
            [before + 2, zeros[0] + 2, (zeros[1] + 2).min(zeros[2])]
        };
        (used, start) = (as_used, NONE);
        next = symbol + 1;
    }
    // End-of-block (the last symbol) is used. Then come the distance code lengths, at
    // least half a bit: the first may be part of a repeat of end-of-block's length. In
    // whole bits, rounded down: (used + 1) / 2.
    used.div_ceil(2)
}

/// `x·log2(x)` for the terms of [`cannot_save_two_bytes`]'s entropy, in fixed point
/// ([`FRACTION_BITS`](Self::FRACTION_BITS) bits after the point), computed once.
struct XLog2X {
    /// `x·log2(x)` for `x` in `0..=256` (0 for 0), rounded down.
    values: [u64; 257],
    /// `(c + 1)·log2(c + 1) − c·log2(c)` for `c` in `0..=255`, rounded up: what a literal
    /// whose byte has been counted `c` times so far adds to `Σ count·log2(count)`.
    steps: [u64; 256],
}

impl XLog2X {
    const FRACTION_BITS: u32 = 32;
}

fn x_log2_x() -> &'static XLog2X {
    static TABLE: std::sync::OnceLock<XLog2X> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let scale = (1u64 << XLog2X::FRACTION_BITS) as f64;
        let exact = |x: usize| match x {
            0 => 0.0,
            x => x as f64 * (x as f64).log2() * scale,
        };
        // A unit (2^-32 bits) more each way than the rounding needs: the floating-point
        // error of these numbers, below 2048 · 2^32, is a ten-thousandth of a unit.
        let mut table = XLog2X {
            values: [0; 257],
            steps: [0; 256],
        };
        for (x, value) in table.values.iter_mut().enumerate() {
            *value = (exact(x).floor() as u64).saturating_sub(1);
        }
        for (c, step) in table.steps.iter_mut().enumerate() {
            *step = (exact(c + 1) - exact(c)).ceil() as u64 + 1;
        }
        table
    })
}

thread_local! {
    /// One deflater per thread, reset for each token. zlib's state at level 6 is about
    /// 256 KiB: allocating it per call (a fresh `mmap`, zeroed page by page) cost more
    /// than everything else a signed-cookie login does. `deflateReset` gives the state
    /// of a new stream with the same parameters, so the output is unchanged.
    static DEFLATER: std::cell::RefCell<Option<Compress>> = const { std::cell::RefCell::new(None) };
}

/// `zlib.compress(data)`: one zlib stream at the default level (6), all input at once
/// with `Z_FINISH`, as CPython does it. `None` only if the backend fails, which it does
/// not for a stream in memory.
fn compress(data: &[u8]) -> Option<Vec<u8>> {
    DEFLATER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => {
            let deflater = slot.get_or_insert_with(|| Compress::new(Compression::new(6), true));
            deflater.reset();
            compress_with(deflater, data)
        }
        // Not reentrant, but never unsound: a nested call gets its own deflater.
        Err(_) => compress_with(&mut Compress::new(Compression::new(6), true), data),
    })
}

/// Compresses `data` into one finished zlib stream with a fresh (or reset) `deflater`.
fn compress_with(deflater: &mut Compress, data: &[u8]) -> Option<Vec<u8>> {
    // More than zlib's `deflateBound`, so one call normally finishes the stream.
    let mut out = Vec::with_capacity(data.len() + data.len() / 1024 + 64);
    loop {
        let consumed = usize::try_from(deflater.total_in()).ok()?;
        let status = deflater
            .compress_vec(data.get(consumed..)?, &mut out, FlushCompress::Finish)
            .ok()?;
        match status {
            Status::StreamEnd => return Some(out),
            Status::Ok | Status::BufError => out.reserve(out.capacity().max(64)),
        }
    }
}

/// Inflates a complete zlib stream to at most [`MAX_DECOMPRESSED_LEN`] bytes.
fn decompress(data: &[u8]) -> Result<Vec<u8>, BadToken> {
    let mut inflater = Decompress::new(true);
    let mut out = Vec::with_capacity(
        data.len()
            .saturating_mul(4)
            .clamp(64, MAX_DECOMPRESSED_LEN + 1),
    );
    loop {
        let consumed = usize::try_from(inflater.total_in()).unwrap_or(usize::MAX);
        let input = data.get(consumed..).unwrap_or_default();
        let (in_before, out_before) = (inflater.total_in(), inflater.total_out());
        let status = inflater
            .decompress_vec(input, &mut out, FlushDecompress::None)
            .map_err(|_| BadToken::BadPayload("corrupt zlib stream"))?;
        if out.len() > MAX_DECOMPRESSED_LEN {
            return Err(BadToken::BadPayload("decompressed payload too large"));
        }
        match status {
            Status::StreamEnd => return Ok(out),
            Status::Ok | Status::BufError => {
                if out.len() == out.capacity() {
                    // Room to spare: one byte past the limit tells "too large" apart.
                    let room = (MAX_DECOMPRESSED_LEN + 1 - out.len()).min(out.len().max(64));
                    out.reserve_exact(room);
                } else if inflater.total_in() == in_before && inflater.total_out() == out_before {
                    return Err(BadToken::BadPayload("truncated zlib stream"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use proptest::prelude::*;
    use serde_json::Value;

    const VECTORS: &str = include_str!("../../tests/vectors/itsdangerous.json");

    /// One case of the itsdangerous vectors.
    struct Case {
        kind: String,
        signer: Signer,
        token: String,
        json: Vec<u8>,
        timestamp: Option<u64>,
        now: Option<u64>,
        max_age: Option<u64>,
        compressed: Option<bool>,
        label: String,
        /// The rotation vector signed with `old-key`, not with the last (current) key.
        signed_before_rotation: bool,
        secret_keys: Vec<String>,
        salt: String,
        digest: Digest,
    }

    fn digest_of(name: &str) -> Digest {
        match name {
            "sha1" => Digest::Sha1,
            "sha256" => Digest::Sha256,
            other => panic!("unknown digest {other}"),
        }
    }

    /// The itsdangerous key list (last key signs) as a `Signer`.
    fn signer_for(digest: Digest, salt: &str, secret_keys: &[String]) -> Signer {
        let (current, older) = secret_keys.split_last().expect("at least one key");
        let fallbacks: Vec<&[u8]> = older.iter().rev().map(|k| k.as_bytes()).collect();
        Signer::new(digest, salt.as_bytes(), current.as_bytes(), &fallbacks)
    }

    fn cases() -> Vec<Case> {
        let doc: Value = serde_json::from_str(VECTORS).expect("vectors parse");
        doc["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let secret_keys: Vec<String> = c["secret_keys"]
                    .as_array()
                    .expect("secret_keys")
                    .iter()
                    .map(|k| k.as_str().expect("key").to_owned())
                    .collect();
                let salt = c["salt"].as_str().expect("salt").to_owned();
                let digest = digest_of(c["digest"].as_str().expect("digest"));
                let kind = c["kind"].as_str().expect("kind").to_owned();
                let token = c["token"].as_str().expect("token").to_owned();
                let label = format!(
                    "case {i} ({kind}, {}, {salt}, {:?}): {token}",
                    c["digest"],
                    c.get("why").or_else(|| c.get("note")),
                );
                let note = c["note"].as_str().unwrap_or_default();
                Case {
                    signed_before_rotation: note.starts_with("signed with old-key"),
                    signer: signer_for(digest, &salt, &secret_keys),
                    json: serde_json::to_vec(&c["payload"]).expect("payload"),
                    timestamp: c["timestamp"].as_u64(),
                    now: c["now"].as_u64(),
                    max_age: c["max_age"].as_u64(),
                    compressed: c["compressed"].as_bool(),
                    kind,
                    token,
                    label,
                    secret_keys,
                    salt,
                    digest,
                }
            })
            .collect()
    }

    fn of_kind(kind: &str) -> Vec<Case> {
        let cases: Vec<Case> = cases().into_iter().filter(|c| c.kind == kind).collect();
        assert!(!cases.is_empty(), "no {kind} vectors");
        cases
    }

    #[test]
    fn vectors_have_the_expected_cases() {
        let cases = cases();
        assert_eq!(cases.len(), 36);
        assert_eq!(of_kind("valid").len(), 22);
        assert_eq!(of_kind("invalid").len(), 12);
        assert_eq!(of_kind("expired").len(), 2);
    }

    #[test]
    fn reads_every_valid_vector() {
        for case in of_kind("valid") {
            let ts = case.timestamp.expect("timestamp");
            let json = case
                .signer
                .verify(&case.token, ts, None)
                .unwrap_or_else(|e| panic!("{}: {e}", case.label));
            assert_eq!(json, case.json, "{}", case.label);
            // Also within a max age, at signing time and a little later.
            assert_eq!(
                case.signer.verify(&case.token, ts, Some(0)).as_ref(),
                Ok(&json)
            );
            assert_eq!(case.signer.verify(&case.token, ts + 60, Some(60)), Ok(json));
            if let Some(compressed) = case.compressed {
                assert_eq!(case.token.starts_with('.'), compressed, "{}", case.label);
            }
        }
    }

    #[test]
    fn writes_identical_tokens_for_valid_vectors() {
        let (mut compressed, mut written) = (0, 0);
        for case in of_kind("valid") {
            let ts = case.timestamp.expect("timestamp");
            let token = if case.signed_before_rotation {
                // Made with the old key before it was rotated out: sign as it was then.
                let signer = Signer::new(case.digest, case.salt.as_bytes(), b"old-key", &[]);
                signer.sign(&case.json, ts)
            } else {
                case.signer.sign(&case.json, ts)
            };
            assert_eq!(token, case.token, "{}", case.label);
            compressed += usize::from(token.starts_with('.'));
            written += 1;
        }
        assert_eq!(written, 22);
        assert_eq!(compressed, 8, "the vectors exercise compression");
    }

    #[test]
    fn refuses_every_invalid_vector() {
        for case in of_kind("invalid") {
            let now = case.now.expect("now");
            let result = case.signer.verify(&case.token, now, None);
            assert!(result.is_err(), "{}: {result:?}", case.label);
            assert!(case
                .signer
                .verify(&case.token, now, Some(u64::MAX))
                .is_err());
        }
    }

    #[test]
    fn refuses_expired_vectors() {
        let expired = of_kind("expired");
        for case in &expired {
            let result = case
                .signer
                .verify(&case.token, case.now.expect("now"), case.max_age);
            assert!(result.is_err(), "{}: {result:?}", case.label);
        }
        let (stale, future) = (&expired[0], &expired[1]);
        let now = stale.now.expect("now");
        assert_eq!(
            stale.signer.verify(&stale.token, now, Some(3600)),
            Err(BadToken::Expired {
                age: 3601,
                max_age: 3600
            })
        );
        assert_eq!(
            stale.signer.verify(&stale.token, now, Some(3602)),
            Ok(br#"{"user_id":"stale"}"#.to_vec())
        );
        assert_eq!(
            stale.signer.verify(&stale.token, now, Some(3601)),
            Ok(br#"{"user_id":"stale"}"#.to_vec()),
            "an age equal to max_age is still valid"
        );
        assert_eq!(
            future.signer.verify(&future.token, now, Some(3600)),
            Err(BadToken::FromTheFuture { ahead: 600 })
        );
        assert_eq!(
            future.signer.verify(&future.token, now, Some(u64::MAX)),
            Err(BadToken::FromTheFuture { ahead: 600 })
        );
        // Without a max age, the signature alone decides.
        assert!(future.signer.verify(&future.token, now, None).is_ok());
        assert!(stale.signer.verify(&stale.token, now, None).is_ok());
    }

    #[test]
    fn the_age_verdict_is_the_exact_clocks_whatever_the_coarse_one_reads() {
        let signer = Signer::new(Digest::Sha1, b"cookie-session", b"key", &[]);
        let signed_at = 1_000_000;
        let token = signer.sign(br#"{"user_id":"x"}"#, signed_at);
        for max_age in [0, 1, 2, 60] {
            for exact in signed_at - 3..=signed_at + max_age + 3 {
                let expected = signer.verify(&token, exact, Some(max_age));
                // The coarse clock is behind the exact one by at most a second.
                for coarse in [exact - 1, exact] {
                    let mut exact_reads = 0;
                    let verdict = signer.verify_with(
                        &token,
                        coarse,
                        || {
                            exact_reads += 1;
                            exact
                        },
                        Some(max_age),
                        <[u8]>::to_vec,
                    );
                    assert_eq!(
                        verdict, expected,
                        "max_age {max_age}, exact {exact}, coarse {coarse}"
                    );
                    let coarse_decides = coarse >= signed_at && coarse - signed_at < max_age;
                    assert_eq!(
                        exact_reads,
                        usize::from(!coarse_decides),
                        "max_age {max_age}, exact {exact}, coarse {coarse}"
                    );
                }
            }
        }
        // Without a max age, no clock is read.
        let verdict =
            signer.verify_with(&token, 0, || panic!("read the clock"), None, <[u8]>::to_vec);
        assert!(verdict.is_ok());
    }

    #[test]
    fn rotation_signs_with_current_key() {
        let cases = of_kind("valid");
        let rotated = cases
            .iter()
            .find(|c| {
                c.secret_keys == ["old-key", "new-key"] && c.json == br#"{"user_id":"rotated"}"#
            })
            .expect("rotation vector");
        let ts = rotated.timestamp.expect("timestamp");
        assert_eq!(rotated.signer.sign(&rotated.json, ts), rotated.token);
        // "must verify with key list [old-key, new-key] and with [new-key] alone"
        let new_only = Signer::new(rotated.digest, rotated.salt.as_bytes(), b"new-key", &[]);
        assert_eq!(new_only.sign(&rotated.json, ts), rotated.token);
        assert_eq!(
            new_only.verify(&rotated.token, ts, None),
            Ok(rotated.json.clone())
        );
        assert_eq!(
            rotated.signer.verify(&rotated.token, ts, None),
            Ok(rotated.json.clone())
        );
        // The old key alone does not know it.
        let old_only = Signer::new(rotated.digest, rotated.salt.as_bytes(), b"old-key", &[]);
        assert_eq!(
            old_only.verify(&rotated.token, ts, None),
            Err(BadToken::BadSignature)
        );
    }

    #[test]
    fn verifies_with_fallback_key() {
        let cases = of_kind("valid");
        let old = cases
            .iter()
            .find(|c| c.secret_keys == ["old-key", "new-key"] && c.json == br#"{"user_id":"old"}"#)
            .expect("old-key vector");
        let ts = old.timestamp.expect("timestamp");
        assert_eq!(
            old.signer.verify(&old.token, ts, None),
            Ok(old.json.clone())
        );
        // Fallbacks are tried in order, after the current key.
        let many = Signer::new(
            old.digest,
            old.salt.as_bytes(),
            b"newest",
            &[b"new-key", b"unrelated", b"old-key"],
        );
        assert_eq!(many.verify(&old.token, ts, None), Ok(old.json.clone()));
        // Without the fallback it is refused; re-signing uses the current key.
        let new_only = Signer::new(old.digest, old.salt.as_bytes(), b"new-key", &[]);
        assert_eq!(
            new_only.verify(&old.token, ts, None),
            Err(BadToken::BadSignature)
        );
        let resigned = old.signer.sign(&old.json, ts);
        assert_ne!(resigned, old.token);
        assert_eq!(new_only.verify(&resigned, ts, None), Ok(old.json.clone()));
    }

    #[test]
    fn refuses_truncated_signature() {
        let signer = Signer::new(Digest::Sha256, b"cookie-session", b"test", &[]);
        let token = signer.sign(br#"{"user_id":"x"}"#, 1_764_000_000);
        let (value, signature) = token.rsplit_once('.').unwrap();
        for cut in 0..signature.len() {
            let truncated = format!("{value}.{}", &signature[..cut]);
            assert!(
                signer.verify(&truncated, 1_764_000_000, None).is_err(),
                "{truncated}"
            );
        }
        // Base64url of a signature cut to a whole number of bytes, as well.
        let raw = URL_SAFE_NO_PAD.decode(signature).unwrap();
        for cut in 0..raw.len() {
            let truncated = format!("{value}.{}", URL_SAFE_NO_PAD.encode(&raw[..cut]));
            assert_eq!(
                signer.verify(&truncated, 1_764_000_000, None),
                Err(BadToken::BadSignature)
            );
        }
        // An extended signature fails too, up to one too long to decode on the stack.
        for extra in 1..=64 {
            let mut longer = raw.clone();
            longer.resize(raw.len() + extra, 0);
            let extended = format!("{value}.{}", URL_SAFE_NO_PAD.encode(&longer));
            assert!(
                matches!(
                    signer.verify(&extended, 1_764_000_000, None),
                    Err(BadToken::BadSignature | BadToken::Malformed(_))
                ),
                "{extra} extra bytes"
            );
        }
        let mut longer = raw.clone();
        longer.push(0);
        let extended = format!("{value}.{}", URL_SAFE_NO_PAD.encode(&longer));
        assert_eq!(
            signer.verify(&extended, 1_764_000_000, None),
            Err(BadToken::BadSignature)
        );
    }

    #[test]
    fn compresses_like_cpython_zlib() {
        // Python: obj = {f"key{i}": f"v{(i*7919)%1000}-" + "x"*(i%13) for i in range(400)};
        // z = zlib.compress(json.dumps(obj, separators=(",", ":")).encode())
        // A different deflate backend (miniz_oxide, zlib-rs, zlib-ng) gives other bytes.
        let body: Vec<String> = (0..400)
            .map(|i| {
                format!(
                    r#""key{i}":"v{}-{}""#,
                    (i * 7919) % 1000,
                    "x".repeat(i % 13)
                )
            })
            .collect();
        let json = format!("{{{}}}", body.join(","));
        assert_eq!(json.len(), 9029);
        let z = compress(json.as_bytes()).unwrap();
        assert_eq!(z.len(), 2249);
        let hex: String = Sha256::digest(&z)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "6cb15e94f99910171bfb930ad3fce9a84b77330748fa2373869c61b0215eb242"
        );
        assert_eq!(decompress(&z), Ok(json.into_bytes()));
    }

    #[test]
    fn typical_sessions_skip_zlib() {
        for json in [
            r#"{"user_id":"alice"}"#,
            r#"{"user_id":"bench"}"#,
            // Repeated 3-byte sequences ("use", "ser"): proven by the dynamic header's code
            // lengths.
            r#"{"user_id":"bench-user"}"#,
            r#"{"user_id":"user-1234"}"#,
        ] {
            assert!(cannot_save_two_bytes(json.as_bytes()), "{json}");
            let zlib = compress(json.as_bytes()).unwrap();
            assert!(zlib.len() + 1 >= json.len(), "{json}");
        }
        // Many user ids: skipped or not, never a different token. None of these is ever
        // compressed by itsdangerous; 5387 of them were skipped with the entropy bound
        // alone, 15628 with the header's code lengths too.
        let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789_-.@";
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut skipped = 0;
        for i in 0..20_000 {
            let len = 1 + i % 40;
            let user: String = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    char::from(alphabet[(state % alphabet.len() as u64) as usize])
                })
                .collect();
            let json = format!(r#"{{"user_id":"{user}"}}"#);
            if cannot_save_two_bytes(json.as_bytes()) {
                skipped += 1;
                let zlib = compress(json.as_bytes()).unwrap();
                assert!(zlib.len() + 1 >= json.len(), "{json}");
            }
        }
        assert!(skipped >= 15_000, "{skipped}");
        // Repetitive: zlib decides (and wins).
        let json = r#"{"a":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
        assert!(!cannot_save_two_bytes(json.as_bytes()));
    }

    #[test]
    fn skips_zlib_only_when_it_cannot_save_two_bytes_near_the_bound() {
        // Short texts from small alphabets with copies of earlier pieces: many of them
        // compress, many do not, and many sit near the line. Whenever zlib is skipped,
        // it must not have saved two bytes.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        let (mut skipped, mut compressible) = (0, 0);
        for _ in 0..30_000 {
            let len = 8 + next(72) as usize;
            let alphabet_len = 2 + next(60) as u8;
            let mut data = Vec::with_capacity(len);
            while data.len() < len {
                if data.len() >= 3 && next(4) == 0 {
                    let from = next(data.len() as u64 - 2) as usize;
                    let copy = (3 + next(6) as usize).min(data.len() - from);
                    data.extend_from_within(from..from + copy);
                } else {
                    data.push(b'!' + next(u64::from(alphabet_len)) as u8);
                }
            }
            let zlib = compress(&data).expect("zlib compresses in memory");
            if zlib.len() + 1 < data.len() {
                compressible += 1;
            }
            if cannot_save_two_bytes(&data) {
                skipped += 1;
                assert!(zlib.len() + 1 >= data.len(), "{data:?} -> {}", zlib.len());
            }
        }
        assert!(
            skipped > 3_000 && compressible > 10_000,
            "{skipped} {compressible}"
        );
    }

    /// [`min_code_length_bits`] the plain way: every one of the 257 symbols in turn.
    fn min_code_length_bits_by_symbol(certain: &[bool; 256], optional: &[bool; 256]) -> usize {
        const NONE: usize = usize::MAX / 4;
        // Half bits: ending with a length, with 1, 2, 3+ zeros.
        let (mut used, mut zeros) = (NONE, [NONE; 3]);
        for symbol in 0..=256 {
            let (must, may) = match symbol {
                256 => (true, false),
                s => (certain[s], optional[s]),
            };
            let (as_used, as_zero) = if symbol == 0 {
                (2, [2, NONE, NONE])
            } else {
                let best_zero = zeros.iter().copied().min().unwrap();
                (
                    (used + 1).min(best_zero + 2),
                    [used + 2, zeros[0] + 2, (zeros[1] + 2).min(zeros[2])],
                )
            };
            (used, zeros) = match (must, may) {
                (true, _) => (as_used, [NONE; 3]),
                (false, true) => (as_used, as_zero),
                (false, false) => (NONE, as_zero),
            };
        }
        used.div_ceil(2)
    }

    fn masks(certain: &[bool; 256], optional: &[bool; 256]) -> ([u64; 4], [u64; 4]) {
        let mut masks = ([0u64; 4], [0u64; 4]);
        for byte in 0..256 {
            masks.0[byte / 64] |= u64::from(certain[byte]) << (byte % 64);
            masks.1[byte / 64] |= u64::from(optional[byte]) << (byte % 64);
        }
        masks
    }

    #[test]
    fn code_length_bits_count_runs() {
        let bits = |certain: &[u8], optional: &[u8]| {
            let (mut c, mut o) = ([false; 256], [false; 256]);
            certain.iter().for_each(|&b| c[usize::from(b)] = true);
            optional.iter().for_each(|&b| o[usize::from(b)] = true);
            let (cm, om) = masks(&c, &o);
            let fast = min_code_length_bits(cm, om);
            assert_eq!(
                fast,
                min_code_length_bits_by_symbol(&c, &o),
                "{certain:?} {optional:?}"
            );
            fast
        };
        // Only end-of-block: 256 zeros (at least 3 bits), its length (1), the distances
        // (0.5), rounded down.
        assert_eq!(bits(b"", b""), 4);
        // "a" (97): zeros, "a", zeros, end-of-block, distances: 3 + 1 + 3 + 1 + 0.5.
        assert_eq!(bits(b"a", b""), 8);
        // "abc": a run of three lengths is 1 + 0.5 + 0.5 bits at least.
        assert_eq!(bits(b"abc", b""), 9);
        // "a" and "c" with "b" optional: using "b" joins the runs (0.5 bit), which is
        // cheaper than a run of one zero between them (1 bit, and 1 for the new run).
        assert_eq!(bits(b"ac", b"b"), 9);
        assert_eq!(bits(b"ac", b""), 10);
        // Symbols 0 and 255, gaps of one and two zeros: 1 + 1 + 1 + 2 + 1 + 3 + 1 + 0.5 +
        // 0.5 (end-of-block continues 255's run).
        assert_eq!(bits(&[0, 2, 5, 255], b""), 11);
        // Optional bytes are left out when that is cheaper.
        assert_eq!(bits(&[0], &[1, 2, 3, 255]), 5);
        assert_eq!(bits(&[0, 1, 2, 3], &[255]), 7);
    }

    #[test]
    fn compresses_only_when_it_saves_two_bytes() {
        let signer = Signer::new(Digest::Sha1, b"cookie-session", b"test", &[]);
        assert!(!signer.sign(b"1", 0).starts_with('.'));
        assert!(!signer.sign(b"{}", 0).starts_with('.'));
        let long = format!(r#"{{"a":"{}"}}"#, "b".repeat(1000));
        let token = signer.sign(long.as_bytes(), 0);
        assert!(token.starts_with('.'));
        assert!(token.len() < 200);
        assert_eq!(signer.verify(&token, 0, None), Ok(long.into_bytes()));
    }

    #[test]
    fn signs_timestamp_zero_and_max() {
        let signer = Signer::new(Digest::Sha256, b"s", b"k", &[]);
        for ts in [0, 1, 255, 256, u64::from(u32::MAX) + 1, u64::MAX] {
            let token = signer.sign(b"{}", ts);
            assert_eq!(
                signer.verify(&token, ts, Some(0)),
                Ok(b"{}".to_vec()),
                "{token}"
            );
        }
        assert_eq!(signer.sign(b"{}", 0).split('.').nth(1), Some(""));
        // An age that does not fit: now is far ahead of the timestamp.
        let token = signer.sign(b"{}", 0);
        assert_eq!(
            signer.verify(&token, u64::MAX, Some(u64::MAX - 1)),
            Err(BadToken::Expired {
                age: u64::MAX,
                max_age: u64::MAX - 1
            })
        );
        let token = signer.sign(b"{}", u64::MAX);
        assert_eq!(
            signer.verify(&token, 0, Some(0)),
            Err(BadToken::FromTheFuture { ahead: u64::MAX })
        );
    }

    /// Signs an arbitrary `value` (everything before the last dot) with `signer`'s key.
    fn forge(signer: &Signer, value: &str) -> String {
        let mut token = value.as_bytes().to_vec();
        signer.keys[0].sign_into(&mut token, 0);
        String::from_utf8(token).expect("a forged token is ASCII")
    }

    #[test]
    fn refuses_oversized_timestamp() {
        let signer = Signer::new(Digest::Sha256, b"s", b"k", &[]);
        for len in [9, 12, 100] {
            let long = URL_SAFE_NO_PAD.encode(vec![1u8; len]);
            let token = forge(&signer, &format!("e30.{long}"));
            assert_eq!(
                signer.verify(&token, 0, None),
                Err(BadToken::Malformed("timestamp too large")),
                "{len} bytes"
            );
        }
        let eight = URL_SAFE_NO_PAD.encode([1u8; 8]);
        let token = forge(&signer, &format!("e30.{eight}"));
        assert_eq!(
            signer.verify(&token, 0x0101_0101_0101_0101, None),
            Ok(b"{}".to_vec())
        );
        let token = forge(&signer, "e30.!!");
        assert!(matches!(
            signer.verify(&token, 0, None),
            Err(BadToken::Malformed(_))
        ));
        let token = forge(&signer, "e30");
        assert!(matches!(
            signer.verify(&token, 0, None),
            Err(BadToken::Malformed(_))
        ));
        let token = forge(&signer, "e3.AA");
        assert!(matches!(
            signer.verify(&token, 0, None),
            Err(BadToken::BadPayload(_))
        ));
        let token = forge(&signer, ".e30.AA");
        assert!(matches!(
            signer.verify(&token, 0, None),
            Err(BadToken::BadPayload(_))
        ));
    }

    #[test]
    fn zip_bomb_is_refused() {
        use std::io::Write as _;
        let signer = Signer::new(Digest::Sha256, b"s", b"k", &[]);
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), Compression::best());
        let zeros = vec![b'0'; 1 << 20];
        for _ in 0..4 {
            encoder.write_all(&zeros).unwrap();
        }
        let bomb = encoder.finish().unwrap();
        let token = forge(&signer, &format!(".{}.AA", URL_SAFE_NO_PAD.encode(&bomb)));
        assert!(token.len() <= MAX_TOKEN_LEN, "{}", token.len());
        assert_eq!(
            signer.verify(&token, 0, None),
            Err(BadToken::BadPayload("decompressed payload too large"))
        );

        // Exactly at the limit is fine; one byte more is not.
        for (len, ok) in [
            (MAX_DECOMPRESSED_LEN, true),
            (MAX_DECOMPRESSED_LEN + 1, false),
        ] {
            let json = vec![b' '; len];
            let token = signer.sign(&json, 7);
            assert!(token.starts_with('.'));
            assert_eq!(signer.verify(&token, 7, None).is_ok(), ok, "{len}");
        }
    }

    #[test]
    fn refuses_corrupt_or_truncated_zlib() {
        let signer = Signer::new(Digest::Sha256, b"s", b"k", &[]);
        let json = format!(r#"{{"a":"{}"}}"#, "xyz".repeat(100));
        let good = compress(json.as_bytes()).unwrap();
        assert!(decompress(&good) == Ok(json.into_bytes()));
        for cut in 0..good.len() {
            let token = forge(
                &signer,
                &format!(".{}.AA", URL_SAFE_NO_PAD.encode(&good[..cut])),
            );
            assert!(
                matches!(signer.verify(&token, 0, None), Err(BadToken::BadPayload(_))),
                "{cut}"
            );
        }
        let token = forge(
            &signer,
            &format!(".{}.AA", URL_SAFE_NO_PAD.encode(b"not zlib at all")),
        );
        assert_eq!(
            signer.verify(&token, 0, None),
            Err(BadToken::BadPayload("corrupt zlib stream"))
        );
    }

    #[test]
    fn refuses_too_long_before_any_crypto() {
        let signer = Signer::new(Digest::Sha256, b"s", b"k", &[]);
        // Incompressible bytes, so that the token really is long.
        let json = incompressible(MAX_TOKEN_LEN);
        let token = signer.sign(&json, 0);
        assert!(!token.starts_with('.'));
        assert!(token.len() > MAX_TOKEN_LEN);
        assert_eq!(
            signer.verify(&token, 0, None).map(|j| j.len()),
            Err(BadToken::TooLong)
        );
        // Just below the limit verifies.
        let json = &json[..MAX_TOKEN_LEN / 4 * 3 - 64];
        let token = signer.sign(json, 0);
        assert!(token.len() <= MAX_TOKEN_LEN);
        assert!(signer.verify(&token, 0, None).is_ok());
        assert_eq!(
            signer.verify(&"a".repeat(MAX_TOKEN_LEN + 1), 0, None),
            Err(BadToken::TooLong)
        );
    }

    /// `len` pseudo-random bytes (xorshift64), which zlib cannot shorten.
    fn incompressible(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect()
    }

    #[test]
    fn payloads_on_both_sides_of_the_stack_buffer_verify() {
        let signer = Signer::new(Digest::Sha1, b"salt", b"current", &[]);
        // Bytes that zlib cannot shorten, so that the payload is stored as it is.
        let noise = incompressible(2000);
        for len in [
            0,
            1,
            STACK_PAYLOAD_LEN - 1,
            STACK_PAYLOAD_LEN,
            STACK_PAYLOAD_LEN + 1,
            2000,
        ] {
            let json = &noise[..len];
            let token = signer.sign(json, 1_000);
            // A compressed payload starts with `.`; an empty one has nothing before it.
            assert!(
                len == 0 || !token.starts_with('.'),
                "{len} bytes were compressed"
            );
            assert_eq!(
                signer.verify(&token, 1_000, None).as_deref(),
                Ok(json),
                "{len}"
            );
        }
    }

    #[test]
    fn refuses_non_canonical_base64() {
        let signer = Signer::new(Digest::Sha1, b"cookie-session", b"test", &[]);
        let token = signer.sign(b"{}", 1_764_000_000);
        assert_eq!(token, "e30.aSSBAA.D3qzbijwsuv6UlRy6gcWIyQ8MVU");
        for bad in [
            "e30.aSSBAA.D3qzbijwsuv6UlRy6gcWIyQ8MVU=",
            "e30.aSSBAA.D3qzbijwsuv6UlRy6gcWIyQ8MVV",
            "e30.aSSBAA.D3qzbijwsuv6UlRy6gcWIyQ8MV+",
            "e30=.aSSBAA.D3qzbijwsuv6UlRy6gcWIyQ8MVU",
            "e30.aSSBAA==.D3qzbijwsuv6UlRy6gcWIyQ8MVU",
            " e30.aSSBAA.D3qzbijwsuv6UlRy6gcWIyQ8MVU",
            "e30.aSSBAA.D3qzbijwsuv6UlRy6gcWIyQ8MVU\n",
        ] {
            assert!(signer.verify(bad, 1_764_000_000, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_does_not_show_keys() {
        let signer = Signer::new(Digest::Sha1, b"salt", b"supersecret", &[b"oldsecret"]);
        let shown = format!("{signer:?}");
        assert_eq!(shown, "Signer { digest: Sha1, fallback_keys: 1, .. }");
        assert_eq!(Digest::default(), Digest::Sha256);
    }

    #[test]
    fn errors_have_short_lowercase_messages() {
        for error in [
            BadToken::TooLong,
            BadToken::Malformed("x"),
            BadToken::BadSignature,
            BadToken::Expired { age: 2, max_age: 1 },
            BadToken::FromTheFuture { ahead: 1 },
            BadToken::BadPayload("x"),
        ] {
            let message = error.to_string();
            assert!(message.chars().next().unwrap().is_lowercase(), "{message}");
        }
    }

    fn vector_tokens() -> Vec<(Signer, String, u64)> {
        of_kind("valid")
            .into_iter()
            .map(|c| (c.signer, c.token, c.timestamp.unwrap()))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_strings_never_panic_nor_verify(
            token in prop_oneof![
                any::<String>(),
                "[A-Za-z0-9_.=-]{0,120}",
                "\\.?[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,12}\\.[A-Za-z0-9_-]{0,44}",
            ],
            now in any::<u64>(),
            max_age in any::<Option<u64>>(),
        ) {
            for digest in [Digest::Sha1, Digest::Sha256] {
                let signer = Signer::new(digest, b"cookie-session", b"test", &[b"old"]);
                prop_assert!(signer.verify(&token, now, max_age).is_err());
            }
        }

        #[test]
        fn every_single_byte_mutation_fails(
            which in any::<prop::sample::Index>(),
            at in any::<prop::sample::Index>(),
            op in 0..3u8,
            byte in prop_oneof![
                prop::sample::select(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/".to_vec()),
                any::<u8>(),
            ],
        ) {
            let tokens = vector_tokens();
            let (signer, token, ts) = &tokens[which.index(tokens.len())];
            let mut bytes = token.clone().into_bytes();
            match op {
                0 => {
                    let i = at.index(bytes.len());
                    bytes[i] = byte;
                }
                1 => bytes.insert(at.index(bytes.len() + 1), byte),
                _ => {
                    bytes.remove(at.index(bytes.len()));
                }
            }
            let mutated = String::from_utf8_lossy(&bytes);
            let result = signer.verify(&mutated, *ts, Some(0));
            if mutated == token.as_str() {
                prop_assert!(result.is_ok());
            } else {
                prop_assert!(result.is_err(), "{mutated} verified");
            }
        }

        #[test]
        fn code_length_bits_visit_only_used_symbols_to_the_same_end(
            certain in prop::collection::vec(any::<bool>(), 256),
            optional in prop::collection::vec(any::<bool>(), 256),
            sparse in prop::collection::vec(prop::sample::select(vec![0u8, 1, 2, 3, 64, 127, 128, 200, 254, 255]), 0..8),
        ) {
            let mut c: [bool; 256] = certain.try_into().unwrap();
            let mut o: [bool; 256] = optional.try_into().unwrap();
            let (cm, om) = masks(&c, &o);
            prop_assert_eq!(min_code_length_bits(cm, om), min_code_length_bits_by_symbol(&c, &o));
            // Sparse sets, like real sessions' bytes, with long runs of zeros.
            (c, o) = ([false; 256], [false; 256]);
            for (i, &byte) in sparse.iter().enumerate() {
                if i % 2 == 0 { c[usize::from(byte)] = true } else { o[usize::from(byte)] = true }
            }
            let (cm, om) = masks(&c, &o);
            prop_assert_eq!(min_code_length_bits(cm, om), min_code_length_bits_by_symbol(&c, &o));
        }

        #[test]
        fn skipping_zlib_never_changes_a_token(
            data in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..300),
                "\\{\"[a-z_]{1,12}\":\"[A-Za-z0-9 ._@-]{0,60}\"\\}".prop_map(String::into_bytes),
                prop::collection::vec(prop::sample::select(b"ab{}\":,".to_vec()), 0..40),
                prop::collection::vec(("[a-z_]{1,10}", "[A-Za-z0-9._-]{0,24}"), 1..5).prop_map(
                    |pairs| {
                        let map: std::collections::BTreeMap<_, _> = pairs.into_iter().collect();
                        serde_json::to_vec(&map).expect("JSON")
                    }
                ),
            ],
        ) {
            if cannot_save_two_bytes(&data) {
                let compressed = compress(&data).expect("zlib compresses in memory");
                prop_assert!(compressed.len() + 1 >= data.len(), "{} -> {}", data.len(), compressed.len());
            }
        }

        #[test]
        fn repeated_trigrams_are_found_as_by_a_plain_search(
            data in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..256),
                prop::collection::vec(prop::sample::select(b"ab{}\":,".to_vec()), 0..256),
            ],
        ) {
            let mut plain = [0u64; 4];
            for start in 0..data.len().saturating_sub(2) {
                if data[..start + 2].windows(3).any(|earlier| earlier == &data[start..start + 3]) {
                    for i in start..start + 3 {
                        insert(&mut plain, i);
                    }
                }
            }
            prop_assert_eq!(repeated_trigrams(&data), plain);
        }

        #[test]
        fn sign_then_verify_round_trips(
            json in prop::collection::vec(any::<u8>(), 0..600),
            ts in any::<u64>(),
            age in 0..1000u64,
            digest in prop_oneof![Just(Digest::Sha1), Just(Digest::Sha256)],
        ) {
            let signer = Signer::new(digest, b"salt", b"current", &[b"old"]);
            let token = signer.sign(&json, ts);
            let now = ts.saturating_add(age);
            prop_assert_eq!(signer.verify(&token, now, Some(now - ts)), Ok(json.clone()));
            prop_assert_eq!(signer.verify(&token, now, None), Ok(json));
        }
    }
}
