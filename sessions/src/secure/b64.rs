//! Unpadded base64url (RFC 4648 §5, no `=`), strict: the codec of signed-cookie tokens.
//!
//! Decoding refuses what an encoder never writes, so that each byte string has exactly
//! one text:
//!
//! - a character outside `A-Z a-z 0-9 - _` (padding `=` included);
//! - a length of `4k + 1`, which no byte string encodes to;
//! - a last character whose unused low bits are not zero (`AB` for `AA`).
//!
//! Every token is decoded on every request that carries one, so this is written for
//! short inputs: a table lookup per character, decoded eight characters to a `u64`, one
//! validity check for the whole text, and no zeroed allocation (`calloc`) for the output.

/// The 64 characters, by value.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Not a base64url character. Every valid value is below 64, so one `& INVALID` over the
/// OR of a group's values tells whether any of them is invalid.
const INVALID: u8 = 0x80;

/// Each byte's value in [`ALPHABET`], or [`INVALID`].
const VALUES: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 64 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Why a text is not base64url. The caller names what was being decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotBase64Url;

/// The length of `len` bytes once encoded.
pub(crate) const fn encoded_len(len: usize) -> usize {
    // A rest of 1 byte takes 2 characters, of 2 bytes 3: 4 * rest / 3, rounded up.
    len / 3 * 4 + (len % 3 * 4).div_ceil(3)
}

/// The length `text_len` characters decode to, or `None` for a length no byte string
/// encodes to (`4k + 1`).
pub(crate) const fn decoded_len(text_len: usize) -> Option<usize> {
    match text_len % 4 {
        1 => None,
        rest => Some(text_len / 4 * 3 + rest.saturating_sub(1)),
    }
}

/// Appends the encoding of `bytes` to `out` (which stays ASCII if it was).
///
/// Pushed four characters at a time into room reserved once, with no zeroing first.
pub(crate) fn encode_into(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(encoded_len(bytes.len()));
    let char_at = |n: u32, shift: u32| ALPHABET[(n >> shift & 63) as usize];
    let mut groups = bytes.chunks_exact(3);
    for group in &mut groups {
        let n = u32::from(group[0]) << 16 | u32::from(group[1]) << 8 | u32::from(group[2]);
        out.extend_from_slice(&[char_at(n, 18), char_at(n, 12), char_at(n, 6), char_at(n, 0)]);
    }
    match *groups.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.extend_from_slice(&[char_at(n, 18), char_at(n, 12)]);
        }
        [a, b] => {
            let n = u32::from(a) << 16 | u32::from(b) << 8;
            out.extend_from_slice(&[char_at(n, 18), char_at(n, 12), char_at(n, 6)]);
        }
        _ => {}
    }
}

/// Decodes `text` into `out`, which must be exactly `decoded_len(text.len())` bytes long.
///
/// Eight characters (six bytes) at a time into one `u64`, then at most one group of four
/// and a tail: half the instructions of four at a time.
fn decode_exact(text: &[u8], out: &mut [u8]) -> Result<(), NotBase64Url> {
    let (wide, text) = text.as_chunks::<8>();
    let (wide_out, out) = out.as_chunks_mut::<6>();
    let mut invalid = 0;
    for (group, out) in wide.iter().zip(wide_out) {
        let mut n = 0_u64;
        for &c in group {
            let value = VALUES[usize::from(c)];
            invalid |= value;
            n = n << 6 | u64::from(value);
        }
        let [_, _, bytes @ ..] = n.to_be_bytes();
        *out = bytes;
    }
    decode_short(text, out, u32::from(invalid))
}

/// [`decode_exact`] for fewer than eight characters; `invalid` is the OR of the values of
/// the characters decoded before them.
fn decode_short(text: &[u8], out: &mut [u8], mut invalid: u32) -> Result<(), NotBase64Url> {
    let value = |c: u8| u32::from(VALUES[usize::from(c)]);
    let mut groups = text.chunks_exact(4);
    let mut outs = out.chunks_exact_mut(3);
    for (group, out) in (&mut groups).zip(&mut outs) {
        let [a, b, c, d] = [group[0], group[1], group[2], group[3]].map(value);
        invalid |= a | b | c | d;
        let n = a << 18 | b << 12 | c << 6 | d;
        out.copy_from_slice(&n.to_be_bytes()[1..]);
    }
    let out = outs.into_remainder();
    match (groups.remainder(), out) {
        ([], []) => {}
        (&[a, b], [x]) => {
            let [a, b] = [a, b].map(value);
            // Two characters carry 12 bits for one byte: the low 4 must be zero.
            invalid |= a | b | (u32::from(b & 0x0f != 0) * u32::from(INVALID));
            *x = (a << 2 | b >> 4) as u8;
        }
        (&[a, b, c], [x, y]) => {
            let [a, b, c] = [a, b, c].map(value);
            // Three characters carry 18 bits for two bytes: the low 2 must be zero.
            invalid |= a | b | c | (u32::from(c & 0x03 != 0) * u32::from(INVALID));
            let n = a << 10 | b << 4 | c >> 2;
            [*x, *y] = [(n >> 8) as u8, n as u8];
        }
        _ => return Err(NotBase64Url),
    }
    if invalid & u32::from(INVALID) == 0 {
        Ok(())
    } else {
        Err(NotBase64Url)
    }
}

/// Decodes `text` into the start of `out` and returns the decoded length; an `out` too
/// short for it is an error too.
pub(crate) fn decode_into_slice(text: &[u8], out: &mut [u8]) -> Result<usize, NotBase64Url> {
    let len = decoded_len(text.len()).ok_or(NotBase64Url)?;
    let out = out.get_mut(..len).ok_or(NotBase64Url)?;
    decode_exact(text, out)?;
    Ok(len)
}

/// Decodes `text` into a new vector.
pub(crate) fn decode(text: &[u8]) -> Result<Vec<u8>, NotBase64Url> {
    let len = decoded_len(text.len()).ok_or(NotBase64Url)?;
    // Not `vec![0; len]`: its zeroed allocation (`calloc`) cost 140 more instructions per
    // signed-cookie request than clearing these few bytes.
    #[allow(clippy::slow_vector_initialization)]
    let mut out = {
        let mut out = Vec::with_capacity(len);
        out.resize(len, 0);
        out
    };
    decode_exact(text, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use proptest::prelude::*;

    use super::*;

    fn encode(bytes: &[u8]) -> String {
        let mut out = b"prefix.".to_vec();
        encode_into(bytes, &mut out);
        let out = String::from_utf8(out).expect("base64url is ASCII");
        out.strip_prefix("prefix.").expect("kept").to_owned()
    }

    #[test]
    fn rfc_4648_vectors() {
        // RFC 4648 §10, without padding; the alphabet differs from §4 only in 62 and 63.
        for (bytes, text) in [
            (&b""[..], ""),
            (b"f", "Zg"),
            (b"fo", "Zm8"),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg"),
            (b"fooba", "Zm9vYmE"),
            (b"foobar", "Zm9vYmFy"),
            (&[0xfb, 0xff], "-_8"),
            (&[0xff, 0xff, 0xff], "____"),
        ] {
            assert_eq!(encode(bytes), text);
            assert_eq!(decode(text.as_bytes()).as_deref(), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn refuses_what_no_encoder_writes() {
        for bad in [
            "Zg==", "Zg=", "Z", "Zm9vY", "Zh", "Zm9", "Zm8=", "Zm+v", "Zm/v", "Zm9v ", " Zm9v",
            "Zm\n9v", "Zm9\0", "Zm9é",
        ] {
            assert_eq!(decode(bad.as_bytes()), Err(NotBase64Url), "{bad:?}");
        }
        // Canonical neighbours of the non-canonical ones above are fine.
        assert_eq!(decode(b"Zg").as_deref(), Ok(&b"f"[..]));
        assert_eq!(decode(b"Zm8").as_deref(), Ok(&b"fo"[..]));
    }

    #[test]
    fn every_byte_value_in_every_position_of_a_group_or_tail() {
        // A whole group, and the two- and three-character tails whose unused bits must be
        // zero, each checked against the reference.
        for group in [
            &b"AAAA"[..],
            b"AA",
            b"AAA",
            b"AAAAAA",
            b"AAAAAAA",
            b"AAAAAAAA",
            b"AAAAAAAAAA",
            b"AAAAAAAAAAA",
            b"AAAAAAAAAAAA",
            b"AAAAAAAAAAAAAAA",
            b"AAAAAAAAAAAAAAAA",
        ] {
            for position in 0..group.len() {
                for byte in 0..=255_u8 {
                    let mut text = group.to_vec();
                    text[position] = byte;
                    let ours = decode(&text);
                    let reference = URL_SAFE_NO_PAD.decode(&text).map_err(|_| NotBase64Url);
                    assert_eq!(ours, reference, "{text:?}");
                }
            }
        }
    }

    #[test]
    fn slice_decoding_refuses_a_short_buffer() {
        let mut out = [0; 3];
        assert_eq!(decode_into_slice(b"Zm9v", &mut out), Ok(3));
        assert_eq!(&out, b"foo");
        assert_eq!(decode_into_slice(b"Zm9vYg", &mut out), Err(NotBase64Url));
        let mut long = [0xaa; 8];
        assert_eq!(decode_into_slice(b"Zm8", &mut long), Ok(2));
        assert_eq!(long, [b'f', b'o', 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa]);
    }

    proptest! {
        #[test]
        fn encodes_like_the_base64_crate(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let ours = encode(&bytes);
            prop_assert_eq!(ours.len(), encoded_len(bytes.len()));
            prop_assert_eq!(&ours, &URL_SAFE_NO_PAD.encode(&bytes));
            prop_assert_eq!(decode(ours.as_bytes()), Ok(bytes));
        }

        #[test]
        fn decodes_like_the_base64_crate(text in "[A-Za-z0-9_=+/. -]{0,40}") {
            let reference = URL_SAFE_NO_PAD.decode(&text).map_err(|_| NotBase64Url);
            prop_assert_eq!(decode(text.as_bytes()), reference);
        }

        #[test]
        fn decodes_arbitrary_bytes_like_the_base64_crate(
            text in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let reference = URL_SAFE_NO_PAD.decode(&text).map_err(|_| NotBase64Url);
            prop_assert_eq!(decode(&text), reference);
        }
    }
}
