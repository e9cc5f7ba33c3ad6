//! The AEAD seam: sealing and opening datagrams in place with a per-direction key, the packet
//! number as nonce, and the clear header as associated data.
//!
//! Nonce = 4 zero bytes ‖ packet number (u64, big endian). Keys come fresh from every handshake
//! and each direction has its own, so a (key, nonce) pair can only repeat if one sender reused a
//! packet number — which [`super::replay`] and the session's counters rule out.
//! This module never logs or exposes key bytes.
//!
//! A seal that fails is a bug (it can only fail for inputs beyond GCM's 64 GiB limit): it panics
//! in debug builds; in release the backend overwrites the buffer and the tag with zeros (so even
//! a caller that ignores the result never sends plaintext — the datagram fails to open at the
//! peer), counts it in [`seal_failures`] and returns `false` so the caller drops the datagram and
//! counts it too.
//!
//! Key material: the `aes-gcm` backend zeroises its key schedule on drop (the crate's `zeroize`
//! feature); `ring` keeps its schedule in an opaque type it does not zeroise. Callers pass keys
//! by reference and own their zeroising (see [`super::handshake::Established`]).
//!
//! Reset tokens ([`ResetToken`]) are derived here from the session's reset secret, which the
//! handshake derives from the Noise split output, so only the real peer can end a session.

use std::sync::atomic::{AtomicU64, Ordering};

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use hkdf::Hkdf;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::protocol::wire::TAG_LEN;

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
    ///
    /// Returns `false` if sealing failed (a bug: see the module docs); the caller must then drop
    /// the datagram and count it. On failure `buf` and `tag` hold zeros, never the plaintext.
    fn seal(&self, packet_number: u64, aad: &[u8], buf: &mut [u8], tag: &mut [u8]) -> bool;
    /// Decrypts `buf` in place if `tag` authenticates it and `aad`; on failure `buf` is garbage.
    fn open(
        &self,
        packet_number: u64,
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<(), AuthError>;
}

static SEAL_FAILURES: AtomicU64 = AtomicU64::new(0);

/// Seals that failed in this process since it started (see the module docs). Always 0 unless
/// there is a bug; sessions add their own per-session count.
#[cfg(test)]
pub(crate) fn seal_failures() -> u64 {
    SEAL_FAILURES.load(Ordering::Relaxed)
}

/// The failure path of every backend: never leave plaintext behind, count, and shout in debug.
#[cold]
fn seal_failed(buf: &mut [u8], tag: &mut [u8]) -> bool {
    buf.fill(0);
    tag.fill(0);
    SEAL_FAILURES.fetch_add(1, Ordering::Relaxed);
    debug_assert!(
        false,
        "AEAD seal failed: a datagram beyond GCM's limits is a bug"
    );
    false
}

fn nonce(packet_number: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&packet_number.to_be_bytes());
    n
}

/// AES-256-GCM from the `aes-gcm` crate (AES-NI and CLMUL picked at run time).
pub(crate) struct AesGcmAead {
    cipher: Aes256Gcm,
}

impl AesGcmAead {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        AesGcmAead {
            cipher: Aes256Gcm::new(key.into()),
        }
    }
}

impl Aead for AesGcmAead {
    fn tag_len(&self) -> usize {
        TAG_LEN
    }

    fn seal(&self, packet_number: u64, aad: &[u8], buf: &mut [u8], tag: &mut [u8]) -> bool {
        let n = nonce(packet_number);
        // encrypt_in_place_detached fails only for buffers beyond GCM's 64 GiB limit, which a
        // datagram can never reach.
        match self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&n), aad, buf)
        {
            Ok(t) if tag.len() == t.len() => {
                tag.copy_from_slice(&t);
                true
            }
            _ => seal_failed(buf, tag),
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
pub(crate) struct RingAead {
    key: ring::aead::LessSafeKey,
}

impl RingAead {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
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

    fn seal(&self, packet_number: u64, aad: &[u8], buf: &mut [u8], tag: &mut [u8]) -> bool {
        let n = ring::aead::Nonce::assume_unique_for_key(nonce(packet_number));
        // Fails only for inputs beyond GCM's length limit, which a datagram never reaches.
        match self
            .key
            .seal_in_place_separate_tag(n, ring::aead::Aad::from(aad), buf)
        {
            Ok(t) if tag.len() == t.as_ref().len() => {
                tag.copy_from_slice(t.as_ref());
                true
            }
            _ => seal_failed(buf, tag),
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
    fn seal(&self, _: u64, _: &[u8], _: &mut [u8], _: &mut [u8]) -> bool {
        true
    }
    fn open(&self, _: u64, _: &[u8], _: &mut [u8], tag: &[u8]) -> Result<(), AuthError> {
        if tag.is_empty() {
            Ok(())
        } else {
            Err(AuthError)
        }
    }
}

/// Length of a reset token on the wire (the body of a Reset datagram).
pub(crate) const RESET_TOKEN_LEN: usize = 16;

/// Proof that a Reset comes from the peer of a session: 16 bytes derived with HKDF-SHA256 from
/// the session's reset secret (itself from the Noise split output, see
/// [`super::handshake::Established::reset_secret`]), the session id and the sender's side.
/// Nobody without the session keys can make one, so a forged Reset can never end a session.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResetToken(pub [u8; RESET_TOKEN_LEN]);

impl std::fmt::Debug for ResetToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResetToken(..)")
    }
}

impl ResetToken {
    /// The token that the side `from_initiator` (the caller: `true`) of `session_id` sends.
    pub(crate) fn make(
        reset_secret: &[u8; 32],
        session_id: u32,
        from_initiator: bool,
    ) -> ResetToken {
        let hk = Hkdf::<Sha256>::from_prk(reset_secret)
            .unwrap_or_else(|_| Hkdf::<Sha256>::new(None, reset_secret));
        let mut info = [0u8; 23];
        info[..18].copy_from_slice(b"punktfunk/2 reset ");
        info[18..22].copy_from_slice(&session_id.to_be_bytes());
        info[22] = if from_initiator { b'i' } else { b'r' };
        let mut out = [0u8; RESET_TOKEN_LEN];
        // 16 bytes is far below HKDF's 255 × 32 limit; expand cannot fail.
        let _ = hk.expand(&info, &mut out);
        ResetToken(out)
    }

    /// Whether `body` (a Reset datagram's body) is the token the peer `from_initiator` of
    /// `session_id` would send. Constant time in the token bytes.
    pub(crate) fn verify(
        reset_secret: &[u8; 32],
        session_id: u32,
        from_initiator: bool,
        body: &[u8],
    ) -> bool {
        if body.len() != RESET_TOKEN_LEN {
            return false;
        }
        let want = ResetToken::make(reset_secret, session_id, from_initiator);
        bool::from(want.0.ct_eq(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_tokens_come_only_from_the_session_secret() {
        let secret = [7u8; 32];
        let t = ResetToken::make(&secret, 42, false);
        assert!(ResetToken::verify(&secret, 42, false, &t.0));
        // Another session, the other side, another secret, a cut or flipped token: refused.
        assert!(!ResetToken::verify(&secret, 43, false, &t.0));
        assert!(!ResetToken::verify(&secret, 42, true, &t.0));
        assert!(!ResetToken::verify(&[8u8; 32], 42, false, &t.0));
        assert!(!ResetToken::verify(&secret, 42, false, &t.0[..15]));
        assert!(!ResetToken::verify(&secret, 42, false, &[]));
        let mut bad = t.0;
        bad[3] ^= 1;
        assert!(!ResetToken::verify(&secret, 42, false, &bad));
        assert_ne!(ResetToken::make(&secret, 42, true), t);
    }

    #[test]
    fn plain_aead_seals_trivially() {
        assert!(PlainAead.seal(1, &[], &mut [1, 2], &mut []));
    }

    /// A tag buffer of the wrong size cannot be filled: the seal reports failure (debug builds
    /// panic, as for any seal failure) and leaves no plaintext behind.
    #[test]
    #[cfg_attr(debug_assertions, should_panic(expected = "AEAD seal failed"))]
    fn failed_seal_never_leaves_plaintext() {
        for backend in [AeadBackend::Ring, AeadBackend::AesGcm] {
            let a = backend.make(&[1u8; 32]);
            let before = seal_failures();
            let mut buf = b"secret plaintext".to_vec();
            let mut tag = [0xffu8; 3];
            assert!(!a.seal(5, &[], &mut buf, &mut tag));
            assert!(buf.iter().all(|&b| b == 0) && tag == [0; 3]);
            assert!(seal_failures() > before);
        }
    }

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
            assert!(a.seal(77, &aad, &mut buf, &mut tag));
            let mut other = vec![0x5au8; 1350];
            let mut other_tag = [0u8; TAG_LEN];
            assert!(b.seal(77, &aad, &mut other, &mut other_tag));
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
        assert!(a.seal(42, &aad, &mut buf, &mut tag));
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
