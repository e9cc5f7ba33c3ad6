//! The key schedule: SPAKE2 identities, the Noise PSK from the SPAKE2 key, the split into
//! per-direction keys, session id and reset secret, and the caller's re-creatable SPAKE2 side.
//!
//! Owns every derivation label (`punktfunk/2 ...`); changing one is a wire change. Must never:
//! keep a secret in memory that is not zeroised on drop, or draw randomness itself (the caller
//! brings the seed).

use hkdf::Hkdf;
use sha2::Sha256;
use snow::HandshakeState;
use spake2::{Ed25519Group, Identity, Password, Spake2};
use zeroize::{Zeroize, Zeroizing};

use super::{HandshakeConfig, NONCE_LEN, Psk, Role};

/// SPAKE2 identities: both roles (the caller's as sent in clear, the listener's as the other
/// one) and the hello's fresh nonce, so no two handshakes share a transcript.
pub(super) fn identities(caller_role: u8, nonce: &[u8]) -> (Identity, Identity) {
    let mut a = b"punktfunk/2 caller ".to_vec();
    a.push(caller_role);
    a.extend_from_slice(nonce);
    let listener_role = if caller_role == Role::Host as u8 {
        Role::Client as u8
    } else {
        Role::Host as u8
    };
    let mut b = b"punktfunk/2 listener ".to_vec();
    b.push(listener_role);
    (Identity::new(&a), Identity::new(&b))
}

/// The Noise PSK from the SPAKE2 key.
pub(super) fn noise_psk(spake_key: &[u8]) -> Zeroizing<[u8; 32]> {
    let hk = Hkdf::<Sha256>::new(Some(b"punktfunk/2 pake"), spake_key);
    let mut psk = Zeroizing::new([0u8; 32]);
    // 32 bytes is within HKDF's limit; expand cannot fail.
    let _ = hk.expand(b"noise psk", &mut psk[..]);
    psk
}

pub(super) fn split(
    hs: &mut HandshakeState,
    initiator: bool,
) -> (u32, [u8; 32], [u8; 32], [u8; 32]) {
    let h = hs.get_handshake_hash();
    let sid = u32::from_be_bytes([h[0], h[1], h[2], h[3]]).max(1);
    let hk_salt = h.to_vec();
    let (mut i2r, mut r2i) = hs.dangerously_get_raw_split();
    let mut ikm = Zeroizing::new([0u8; 64]);
    ikm[..32].copy_from_slice(&i2r);
    ikm[32..].copy_from_slice(&r2i);
    let mut reset = [0u8; 32];
    let _ = Hkdf::<Sha256>::new(Some(&hk_salt), &ikm[..]).expand(b"punktfunk/2 reset", &mut reset);
    let out = if initiator {
        (sid, i2r, r2i, reset)
    } else {
        (sid, r2i, i2r, reset)
    };
    i2r.zeroize();
    r2i.zeroize();
    out
}

/// A deterministic CSPRNG (SHA-256 in counter mode over a secret seed) that lets the caller
/// re-create its SPAKE2 state: `spake2` consumes the state on `finish`, and a forged response
/// must not consume the attempt, so the secret scalar is drawn from this instead and
/// drawn again, identically, for every response tried.
struct SeedRng {
    seed: Zeroizing<[u8; 32]>,
    counter: u64,
    block: Zeroizing<[u8; 32]>,
    used: usize,
}

impl SeedRng {
    fn new(seed: &[u8; 32]) -> SeedRng {
        SeedRng {
            seed: Zeroizing::new(*seed),
            counter: 0,
            block: Zeroizing::new([0; 32]),
            used: 32,
        }
    }
}

impl rand_core::RngCore for SeedRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        use sha2::Digest;
        for d in dest {
            if self.used == 32 {
                let mut h = Sha256::new();
                h.update(b"punktfunk/2 spake2 scalar");
                h.update(&self.seed[..]);
                h.update(self.counter.to_be_bytes());
                self.block.copy_from_slice(&h.finalize());
                self.counter += 1;
                self.used = 0;
            }
            *d = self.block[self.used];
            self.used += 1;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for SeedRng {}

/// The caller's SPAKE2 side A, re-creatable from its seed (see [`SeedRng`]).
pub(super) struct SpakeA {
    pub(super) seed: Zeroizing<[u8; 32]>,
    pub(super) nonce: [u8; NONCE_LEN],
}

impl SpakeA {
    pub(super) fn start(
        &self,
        cfg: &HandshakeConfig,
        psk: &Psk,
    ) -> (Spake2<Ed25519Group>, Vec<u8>) {
        let (id_a, id_b) = identities(cfg.role as u8, &self.nonce);
        Spake2::<Ed25519Group>::start_a_with_rng(
            &Password::new(&psk.0[..]),
            &id_a,
            &id_b,
            SeedRng::new(&self.seed),
        )
    }
}
