//! HMAC (RFC 2104) with SHA-1 or SHA-256, on the digests' compression functions.
//!
//! A signed-cookie request computes one MAC of a message of some 40 bytes: two
//! compressions (the inner hash's last block, the outer hash's only one), given the states
//! after the key blocks, which are computed once per key. The `hmac` crate's generic
//! buffering around those two compressions cost as much as they did (in callgrind, about
//! 500 instructions per MAC); here the padded blocks are built on the stack and handed to
//! the compression function directly. The `hmac` crate is the reference in the tests.

use sha1::digest::generic_array::GenericArray;
use subtle::ConstantTimeEq;

/// The block size of SHA-1 and SHA-256.
const BLOCK: usize = 64;

/// Longest digest: SHA-256's.
pub(crate) const MAX_OUTPUT: usize = 32;

/// A Merkle–Damgård digest of 64-byte blocks and a 64-bit big-endian length: its state of
/// `N` 32-bit words, the initial value and the compression function.
pub(crate) trait Sha<const N: usize> {
    /// The initial state (FIPS 180-4).
    const INIT: [u32; N];

    /// Compresses one block into `state`.
    fn compress(state: &mut [u32; N], block: &[u8; BLOCK]);

    /// The digest of `key`, for a key longer than a block.
    fn digest(key: &[u8]) -> Vec<u8>;
}

/// SHA-1.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sha1;

impl Sha<5> for Sha1 {
    const INIT: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];

    fn compress(state: &mut [u32; 5], block: &[u8; BLOCK]) {
        sha1::compress(state, std::slice::from_ref(GenericArray::from_slice(block)));
    }

    fn digest(key: &[u8]) -> Vec<u8> {
        use sha1::Digest as _;
        sha1::Sha1::digest(key).to_vec()
    }
}

/// SHA-256.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sha256;

impl Sha<8> for Sha256 {
    const INIT: [u32; 8] = [
        0x6A09_E667,
        0xBB67_AE85,
        0x3C6E_F372,
        0xA54F_F53A,
        0x510E_527F,
        0x9B05_688C,
        0x1F83_D9AB,
        0x5BE0_CD19,
    ];

    fn compress(state: &mut [u32; 8], block: &[u8; BLOCK]) {
        sha2::compress256(state, std::slice::from_ref(GenericArray::from_slice(block)));
    }

    fn digest(key: &[u8]) -> Vec<u8> {
        use sha2::Digest as _;
        sha2::Sha256::digest(key).to_vec()
    }
}

/// HMAC-SHA1's key.
pub(crate) type HmacSha1 = HmacKey<Sha1, 5>;

/// HMAC-SHA256's key.
pub(crate) type HmacSha256 = HmacKey<Sha256, 8>;

/// An HMAC key: the digest's states after the inner and the outer key block.
#[derive(Clone)]
pub(crate) struct HmacKey<D, const N: usize> {
    inner: [u32; N],
    outer: [u32; N],
    digest: std::marker::PhantomData<D>,
}

impl<D: Sha<N>, const N: usize> HmacKey<D, N> {
    /// The digest's output length in bytes.
    pub(crate) const OUTPUT: usize = 4 * N;

    /// Keys the MAC with `key`, of any length (one longer than a block is hashed first).
    pub(crate) fn new(key: &[u8]) -> Self {
        let hashed;
        let key = if key.len() > BLOCK {
            hashed = D::digest(key);
            &hashed[..]
        } else {
            key
        };
        let state_after = |pad: u8| {
            let mut block = [pad; BLOCK];
            for (b, k) in block.iter_mut().zip(key) {
                *b ^= k;
            }
            let mut state = D::INIT;
            D::compress(&mut state, &block);
            state
        };
        Self {
            inner: state_after(0x36),
            outer: state_after(0x5c),
            digest: std::marker::PhantomData,
        }
    }

    /// The MAC of `message`, in the first [`OUTPUT`](Self::OUTPUT) bytes.
    pub(crate) fn mac(&self, message: &[u8]) -> [u8; MAX_OUTPUT] {
        let mut inner = self.inner;
        finish::<D, N>(&mut inner, message);
        let inner = output(&inner);
        let mut outer = self.outer;
        finish::<D, N>(&mut outer, &inner[..Self::OUTPUT]);
        output(&outer)
    }

    /// Whether `tag` is the full MAC of `message`, compared in constant time (a tag of
    /// another length is refused at once: its length is no secret).
    pub(crate) fn verify(&self, message: &[u8], tag: &[u8]) -> bool {
        if tag.len() != Self::OUTPUT {
            return false;
        }
        let expected = self.mac(message);
        let difference = expected[..Self::OUTPUT]
            .iter()
            .zip(tag)
            .fold(0, |difference, (a, b)| difference | (a ^ b));
        difference.ct_eq(&0).into()
    }
}

/// Hashes `message` into `state`, which has absorbed one block (the key's) before it, and
/// pads it: the message's last bytes, `0x80`, zeros and the length in bits, in one block or
/// two.
fn finish<D: Sha<N>, const N: usize>(state: &mut [u32; N], message: &[u8]) {
    let mut blocks = message.chunks_exact(BLOCK);
    for block in &mut blocks {
        D::compress(state, block.try_into().expect("a whole block"));
    }
    let rest = blocks.remainder();
    let mut tail = [0_u8; 2 * BLOCK];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let end = if rest.len() + 1 + 8 <= BLOCK {
        BLOCK
    } else {
        2 * BLOCK
    };
    let bits = (BLOCK as u64 + message.len() as u64) * 8;
    tail[end - 8..end].copy_from_slice(&bits.to_be_bytes());
    for block in tail[..end].chunks_exact(BLOCK) {
        D::compress(state, block.try_into().expect("a whole block"));
    }
}

/// The state as the digest's bytes (big-endian words), in a buffer of the longest size.
fn output<const N: usize>(state: &[u32; N]) -> [u8; MAX_OUTPUT] {
    let mut bytes = [0_u8; MAX_OUTPUT];
    for (chunk, word) in bytes.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use hmac::{Hmac, Mac};
    use proptest::prelude::*;

    use super::*;

    fn reference_sha1(key: &[u8], message: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).expect("any key length");
        mac.update(message);
        mac.finalize().into_bytes().to_vec()
    }

    fn reference_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
        mac.update(message);
        mac.finalize().into_bytes().to_vec()
    }

    #[test]
    fn rfc_4231_test_case_2() {
        // HMAC-SHA-256 of "what do ya want for nothing?" under the key "Jefe".
        let key = HmacSha256::new(b"Jefe");
        let mac = key.mac(b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn rfc_2202_test_case_2() {
        let key = HmacSha1::new(b"Jefe");
        let mac = key.mac(b"what do ya want for nothing?");
        let hex: String = mac[..20].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
        assert_eq!(mac[20..], [0; 12], "the rest of the buffer is zeros");
    }

    #[test]
    fn every_padding_boundary_matches_the_reference() {
        // Lengths around one and two blocks, where the padding takes a second block.
        for len in 0..=3 * BLOCK {
            let message: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let key1 = HmacSha1::new(b"key");
            assert_eq!(
                key1.mac(&message)[..20],
                reference_sha1(b"key", &message)[..]
            );
            let key256 = HmacSha256::new(b"key");
            assert_eq!(
                key256.mac(&message)[..],
                reference_sha256(b"key", &message)[..]
            );
        }
    }

    #[test]
    fn verify_takes_only_the_whole_tag() {
        let key = HmacSha1::new(b"key");
        let tag = key.mac(b"message");
        assert!(key.verify(b"message", &tag[..20]));
        assert!(!key.verify(b"message", &tag[..19]));
        assert!(!key.verify(b"message", &tag[..21]));
        assert!(!key.verify(b"messagf", &tag[..20]));
        let mut flipped = tag;
        flipped[19] ^= 1;
        assert!(!key.verify(b"message", &flipped[..20]));
        assert!(!key.verify(b"message", &[]));
    }

    proptest! {
        #[test]
        fn matches_the_hmac_crate(
            key in prop::collection::vec(any::<u8>(), 0..200),
            message in prop::collection::vec(any::<u8>(), 0..300),
        ) {
            let expected = reference_sha1(&key, &message);
            let key1 = HmacSha1::new(&key);
            prop_assert_eq!(&key1.mac(&message)[..20], &expected[..]);
            prop_assert!(key1.verify(&message, &expected));
            let expected = reference_sha256(&key, &message);
            let key256 = HmacSha256::new(&key);
            prop_assert_eq!(&key256.mac(&message)[..], &expected[..]);
            prop_assert!(key256.verify(&message, &expected));
        }
    }
}
