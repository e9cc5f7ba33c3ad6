//! The AEAD seam: sealing and opening datagrams in place with a per-direction key, the packet
//! number as nonce, and the clear header as associated data.
//!
//! Nonce = 4 zero bytes ‖ packet number (u64, big endian). Keys come fresh from every handshake
//! and each direction has its own, so a (key, nonce) pair can only repeat if one sender reused a
//! packet number — which [`crate::protocol::replay`] and the session's counters rule out.
//! This module never logs or exposes key bytes.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};

use super::wire::TAG_LEN;

/// Opening failed: wrong key, tampered bytes or a forged datagram. Counted, never fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthError;

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "datagram failed authentication")
    }
}

impl std::error::Error for AuthError {}

/// A sealing backend for one direction's key. Small on purpose, so that a faster backend can be
/// benchmarked against the default one.
pub trait Aead: Send + Sync {
    /// Bytes the seal appends (0 for plaintext mode).
    fn tag_len(&self) -> usize;
    /// Encrypts `buf` in place and writes the tag into `tag` (`tag_len()` bytes).
    fn seal(&self, packet_number: u64, aad: &[u8], buf: &mut [u8], tag: &mut [u8]);
    /// Decrypts `buf` in place if `tag` authenticates it and `aad`; on failure `buf` is garbage.
    fn open(
        &self,
        packet_number: u64,
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<(), AuthError>;
}

fn nonce(packet_number: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&packet_number.to_be_bytes());
    n
}

/// AES-256-GCM from the `aes-gcm` crate (AES-NI and CLMUL picked at run time).
pub struct AesGcmAead {
    cipher: Aes256Gcm,
}

impl AesGcmAead {
    pub fn new(key: &[u8; 32]) -> Self {
        AesGcmAead {
            cipher: Aes256Gcm::new(key.into()),
        }
    }
}

impl Aead for AesGcmAead {
    fn tag_len(&self) -> usize {
        TAG_LEN
    }

    fn seal(&self, packet_number: u64, aad: &[u8], buf: &mut [u8], tag: &mut [u8]) {
        let n = nonce(packet_number);
        // encrypt_in_place_detached fails only for buffers beyond GCM's 64 GiB limit, which a
        // datagram can never reach.
        if let Ok(t) = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&n), aad, buf)
        {
            tag.copy_from_slice(&t);
        }
    }

    fn open(
        &self,
        packet_number: u64,
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<(), AuthError> {
        if tag.len() != TAG_LEN {
            return Err(AuthError);
        }
        let n = nonce(packet_number);
        self.cipher
            .decrypt_in_place_detached(Nonce::from_slice(&n), aad, buf, Tag::from_slice(tag))
            .map_err(|_| AuthError)
    }
}

/// AES-256-GCM from `ring` (hand-tuned assembly). Same construction and wire format as
/// [`AesGcmAead`] — the two interoperate — but several times faster per datagram; see
/// `docs/BENCHMARKS.md`. The default ([`AeadBackend::Ring`]).
pub struct RingAead {
    key: ring::aead::LessSafeKey,
}

impl RingAead {
    pub fn new(key: &[u8; 32]) -> Self {
        // AES_256_GCM takes any 32-byte key; `new` only fails for a wrong key length.
        let unbound = ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, key)
            .expect("a 32-byte key is valid for AES-256-GCM");
        RingAead {
            key: ring::aead::LessSafeKey::new(unbound),
        }
    }
}

impl Aead for RingAead {
    fn tag_len(&self) -> usize {
        TAG_LEN
    }

    fn seal(&self, packet_number: u64, aad: &[u8], buf: &mut [u8], tag: &mut [u8]) {
        let n = ring::aead::Nonce::assume_unique_for_key(nonce(packet_number));
        // Fails only for inputs beyond GCM's length limit, which a datagram never reaches.
        if let Ok(t) = self
            .key
            .seal_in_place_separate_tag(n, ring::aead::Aad::from(aad), buf)
        {
            tag.copy_from_slice(t.as_ref());
        }
    }

    fn open(
        &self,
        packet_number: u64,
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<(), AuthError> {
        let tag = ring::aead::Tag::try_from(tag).map_err(|_| AuthError)?;
        let n = ring::aead::Nonce::assume_unique_for_key(nonce(packet_number));
        self.key
            .open_in_place_separate_tag(n, ring::aead::Aad::from(aad), tag, buf, 0..)
            .map(|_| ())
            .map_err(|_| AuthError)
    }
}

/// Which AES-256-GCM implementation seals media. Both produce identical bytes.
///
/// `ring` is the default: on the reference machine it seals a 1.4 kB datagram in ~225 ns
/// against ~1,030 ns for `aes-gcm`, which is what lets the client path reach 5 Gbit/s on one
/// core (docs/BENCHMARKS.md). The `aes-gcm` crate stays available behind the same seam.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AeadBackend {
    /// The `aes-gcm` crate (RustCrypto).
    AesGcm,
    /// `ring`.
    #[default]
    Ring,
}

impl AeadBackend {
    /// A sealer/opener for `key` with this backend.
    pub fn make(self, key: &[u8; 32]) -> Box<dyn Aead> {
        match self {
            AeadBackend::AesGcm => Box::new(AesGcmAead::new(key)),
            AeadBackend::Ring => Box::new(RingAead::new(key)),
        }
    }
}

/// Plaintext mode (`encrypt=false`): no confidentiality, no integrity. For debugging and
/// packet captures only; the handshake still runs so both ends agree on the session.
pub struct PlainAead;

impl Aead for PlainAead {
    fn tag_len(&self) -> usize {
        0
    }
    fn seal(&self, _: u64, _: &[u8], _: &mut [u8], _: &mut [u8]) {}
    fn open(&self, _: u64, _: &[u8], _: &mut [u8], tag: &[u8]) -> Result<(), AuthError> {
        if tag.is_empty() {
            Ok(())
        } else {
            Err(AuthError)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_interoperate() {
        let key = [3u8; 32];
        let aad = [9u8; 16];
        for (a, b) in [
            (AeadBackend::AesGcm.make(&key), AeadBackend::Ring.make(&key)),
            (AeadBackend::Ring.make(&key), AeadBackend::AesGcm.make(&key)),
        ] {
            let mut buf = vec![0x5au8; 1350];
            let mut tag = [0u8; TAG_LEN];
            a.seal(77, &aad, &mut buf, &mut tag);
            let mut other = vec![0x5au8; 1350];
            let mut other_tag = [0u8; TAG_LEN];
            b.seal(77, &aad, &mut other, &mut other_tag);
            assert_eq!(
                (&buf, tag),
                (&other, other_tag),
                "identical ciphertext and tag"
            );
            b.open(77, &aad, &mut buf, &tag).unwrap();
            assert_eq!(buf, vec![0x5au8; 1350]);
            let mut bad = other.clone();
            bad[10] ^= 1;
            assert_eq!(b.open(77, &aad, &mut bad, &other_tag), Err(AuthError));
            assert_eq!(a.open(78, &aad, &mut other, &other_tag), Err(AuthError));
        }
    }

    #[test]
    fn seal_open_roundtrip_and_tamper() {
        let a = AesGcmAead::new(&[7u8; 32]);
        let aad = [1u8; 16];
        let mut buf = b"hello shard".to_vec();
        let mut tag = [0u8; TAG_LEN];
        a.seal(42, &aad, &mut buf, &mut tag);
        assert_ne!(&buf, b"hello shard");
        let sealed = buf.clone();
        a.open(42, &aad, &mut buf, &tag).unwrap();
        assert_eq!(&buf, b"hello shard");

        // Wrong packet number, wrong aad, wrong key, flipped bit: all refused.
        let mut b = sealed.clone();
        assert_eq!(a.open(43, &aad, &mut b, &tag), Err(AuthError));
        let mut b = sealed.clone();
        assert_eq!(a.open(42, &[2u8; 16], &mut b, &tag), Err(AuthError));
        let mut b = sealed.clone();
        let other = AesGcmAead::new(&[8u8; 32]);
        assert_eq!(other.open(42, &aad, &mut b, &tag), Err(AuthError));
        let mut b = sealed.clone();
        b[0] ^= 1;
        assert_eq!(a.open(42, &aad, &mut b, &tag), Err(AuthError));
        let mut b = sealed;
        assert_eq!(a.open(42, &aad, &mut b, &tag[..15]), Err(AuthError));
    }
}
