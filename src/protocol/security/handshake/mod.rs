//! Session establishment: a Noise handshake, keyed by a SPAKE2 exchange when a passphrase is set,
//! that gives both ends fresh, per-direction media keys.
//!
//! Construction (handshake version 2, see `docs/PROTOCOL.md` §3):
//!
//! - With a passphrase: **SPAKE2 (Ed25519 group, RustCrypto `spake2`) feeding the PSK of
//!   `Noise_NNpsk2_25519_ChaChaPoly_SHA256`.** The caller is SPAKE2 side A, the listener side B;
//!   identities bind both roles and the hello's fresh 16-byte nonce. The hello carries A (inside
//!   Noise message 1's payload); the response carries B in clear, then Noise message 2
//!   (`e, ee, psk`) whose PSK is `HKDF-SHA256(SPAKE2 key)`. Message 1 holds nothing that depends
//!   on the passphrase except A, which is blinded by a secret scalar, so a captured hello (or
//!   hello and response) gives nothing to test a guess against offline; an active attacker gets
//!   one guess per handshake. The caller confirms the listener's key when message 2 opens
//!   ([`HandshakeError::KeyConfirmation`] if not: the passphrases differ, or the answer is
//!   forged); the listener confirms the caller's when the caller's first sealed datagram opens.
//!   A listener cannot tell a wrong passphrase from any other caller, so it never says so on
//!   the wire.
//! - Without one: `Noise_NN_25519_ChaChaPoly_SHA256` (encrypted, not authenticated).
//!
//! After message 2 each side takes Noise's `Split()` output as raw keys: the first for caller →
//! listener, the second for listener → caller (AES-256-GCM, see [`super::crypto`]). The session
//! id is the first four bytes of the handshake hash; the reset secret is HKDF over the split.
//!
//! Hello hardening: a hello has one fixed length ([`HELLO_BODY_LEN`]), larger than any answer
//! ([`RESPONSE_BODY_MAX`], [`super::cookie::COOKIE_REPLY_LEN`], a Reject), so the listener never
//! sends more bytes than it received before the caller's address is validated. Stream info is no
//! longer in the response (it grew the answer to 450+ bytes): the host sends it sealed after
//! confirmation. The hello's Noise payload carries the caller's wall-clock time (ms) and a
//! counter; [`Responder`] refuses hellos outside [`HELLO_FRESHNESS_MS`] of its own clock and
//! exact replays inside it, before any expensive crypto. The cookie field is outside the Noise
//! prologue so a caller can resend the same hello with a cookie ([`Initiator::hello_with_cookie`]).
//!
//! This module only builds and reads messages; retries, timing, cookies and rate limits are the
//! connection's. It never reads a clock (times are passed in) and never logs key material;
//! every secret it holds is zeroised on drop (the `spake2` crate keeps its own copy of the
//! passphrase for the life of one attempt and does not zeroise it — a limitation of the crate).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};

use hkdf::Hkdf;
use sha2::Sha256;
use snow::{Builder, HandshakeState};
use spake2::{Ed25519Group, Identity, Password, Spake2};
use zeroize::{Zeroize, Zeroizing};

use super::cookie::{COOKIE_LEN, Cookie};
use crate::protocol::control::StreamInfo;
use crate::protocol::wire::{HEADER_LEN, Reader, RejectReason, WireError};

const PATTERN_PAKE: &str = "Noise_NNpsk2_25519_ChaChaPoly_SHA256";
const PATTERN_NN: &str = "Noise_NN_25519_ChaChaPoly_SHA256";
const PROLOGUE: &[u8] = b"punktfunk/2 handshake";

/// Handshake format version, first byte of every handshake body.
pub const HANDSHAKE_VERSION: u8 = 2;

/// Largest handshake message we read (Noise's own limit).
pub const MAX_HANDSHAKE_LEN: usize = 65_535;

/// Bytes of a SPAKE2 message (side byte + compressed Edwards point).
pub const SPAKE2_MSG_LEN: usize = 33;

const FLAG_PASSPHRASE: u8 = 0x01;
const FLAG_ENCRYPT: u8 = 0x02;
/// Hello only: the cookie field holds a cookie. Not part of the Noise prologue.
const FLAG_COOKIE: u8 = 0x04;

const NONCE_LEN: usize = 16;
const NOISE_KEY_LEN: usize = 32;
const NOISE_TAG_LEN: usize = 16;
/// version, flags, role, reserved, cookie, nonce.
const HELLO_CLEAR_LEN: usize = 4 + COOKIE_LEN + NONCE_LEN;
const COOKIE_AT: usize = 4;
const NONCE_AT: usize = 4 + COOKIE_LEN;
/// Payload of message 2: role, reserved.
const RESPONSE_PAYLOAD_LEN: usize = 2;

/// Every hello body has exactly this length (the datagram is [`HELLO_DATAGRAM_LEN`]). Chosen so
/// that the largest answer fits under it with room for a later field; padding is inside the
/// Noise payload (zeros, checked), so it cannot be altered without failing the handshake.
pub const HELLO_BODY_LEN: usize = 176;

/// A hello datagram's length: the clear header and [`HELLO_BODY_LEN`].
pub const HELLO_DATAGRAM_LEN: usize = HEADER_LEN + HELLO_BODY_LEN;

/// The largest response body: clear bytes, SPAKE2 B, Noise message 2 (`e`, payload, tag).
pub const RESPONSE_BODY_MAX: usize =
    4 + SPAKE2_MSG_LEN + NOISE_KEY_LEN + RESPONSE_PAYLOAD_LEN + NOISE_TAG_LEN;

// No answer is larger than the hello it answers (amplification ≤ 1×): the response, a
// CookieReply, a Reject (header + 1 byte).
const _: () = assert!(HEADER_LEN + RESPONSE_BODY_MAX <= HELLO_DATAGRAM_LEN);
const _: () = assert!(super::cookie::COOKIE_REPLY_LEN <= HELLO_DATAGRAM_LEN);
const _: () = assert!(HEADER_LEN < HELLO_DATAGRAM_LEN);

/// How far a hello's timestamp may be from the listener's clock (either way). Machines that
/// stream to each other are expected to run NTP; a minute leaves room for a clock that is not
/// disciplined but was set by hand. Replays inside the window are refused by [`Responder`]'s
/// cache, so the window only bounds that cache.
pub const HELLO_FRESHNESS_MS: u64 = 60_000;

/// Hellos remembered for duplicate detection (16 bytes each plus map overhead, ~1.5 MiB at
/// most). At the default global handshake rate ([`super::ratelimit`]) a full window of
/// accepted hellos fits; above it the oldest are forgotten first.
pub const HELLO_CACHE_CAP: usize = 32_768;

/// Which end of the stream a party is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends video, receives input (punktfunksink).
    Host = 1,
    /// Receives video, sends input (punktfunksrc).
    Client = 2,
}

impl Role {
    fn from_u8(v: u8) -> Result<Role, WireError> {
        match v {
            1 => Ok(Role::Host),
            2 => Ok(Role::Client),
            o => Err(WireError::UnknownKind(o)),
        }
    }
}

/// The shared passphrase, as SPAKE2 takes it. Zeroised on drop; never printed.
///
/// There is no slow hash any more: with a PAKE nothing on the wire can be tested against a
/// guess offline, so stretching buys nothing, and each guess costs the attacker a handshake
/// with the listener (rate-limited there).
#[derive(Clone)]
pub struct Psk(Zeroizing<Vec<u8>>);

impl Psk {
    pub fn from_passphrase(passphrase: &str) -> Psk {
        Psk(Zeroizing::new(passphrase.as_bytes().to_vec()))
    }
}

impl std::fmt::Debug for Psk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Psk(..)")
    }
}

/// What this end brings to a handshake.
#[derive(Debug, Clone)]
pub struct HandshakeConfig {
    pub role: Role,
    pub psk: Option<Psk>,
    pub encrypt: bool,
}

impl HandshakeConfig {
    fn flags(&self) -> u8 {
        (if self.psk.is_some() {
            FLAG_PASSPHRASE
        } else {
            0
        }) | (if self.encrypt { FLAG_ENCRYPT } else { 0 })
    }

    fn build(&self, initiator: bool, clear: &[u8]) -> Result<HandshakeState, HandshakeError> {
        let mut prologue = PROLOGUE.to_vec();
        prologue.extend_from_slice(clear);
        let pattern = if self.psk.is_some() {
            PATTERN_PAKE
        } else {
            PATTERN_NN
        };
        let params = pattern.parse().map_err(|_| HandshakeError::Internal)?;
        let b = Builder::new(params)
            .prologue(&prologue)
            .map_err(|_| HandshakeError::Internal)?;
        let r = if initiator {
            b.build_initiator()
        } else {
            b.build_responder()
        };
        r.map_err(|_| HandshakeError::Internal)
    }
}

/// Why a handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// Malformed message.
    Wire(WireError),
    /// The message did not authenticate (forged or tampered).
    Auth,
    /// Caller with a passphrase: the listener's answer did not confirm our key. The passphrases
    /// differ (or someone without it answered). Only the caller learns this; the listener
    /// cannot tell, and nothing on the wire says so.
    KeyConfirmation,
    /// The hello's timestamp is outside the listener's window, or the hello was seen already.
    Stale,
    /// The peer's settings are incompatible with ours; the reason can be told to the peer.
    Refused(RejectReason),
    /// The crypto library failed (should not happen).
    Internal,
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::Wire(e) => write!(f, "malformed handshake: {e}"),
            HandshakeError::Auth => write!(f, "handshake failed to authenticate"),
            HandshakeError::KeyConfirmation => write!(
                f,
                "the peer's answer did not confirm the key: wrong passphrase \
                 (or a forged answer)"
            ),
            HandshakeError::Stale => write!(
                f,
                "stale or replayed hello (clocks more than {} s apart?)",
                HELLO_FRESHNESS_MS / 1000
            ),
            HandshakeError::Refused(r) => f.write_str(r.describe()),
            HandshakeError::Internal => write!(f, "handshake crypto error"),
        }
    }
}

impl std::error::Error for HandshakeError {}

impl From<WireError> for HandshakeError {
    fn from(e: WireError) -> Self {
        HandshakeError::Wire(e)
    }
}

/// The outcome of a completed handshake. Key material is zeroised on drop.
pub struct Established {
    pub session_id: u32,
    /// Key for what this end sends.
    pub send_key: [u8; 32],
    /// Key for what this end receives.
    pub recv_key: [u8; 32],
    /// Secret for [`super::crypto::ResetToken`]s of this session (same on both ends).
    pub reset_secret: [u8; 32],
    /// Whether this end was the caller (Noise initiator); reset tokens are per side.
    pub initiator: bool,
    pub peer_role: Role,
    /// Always `None` since handshake version 2: stream info travels sealed after confirmation
    /// (it made the response larger than the hello). Kept so callers compile unchanged.
    pub peer_info: Option<StreamInfo>,
    pub encrypt: bool,
    /// The caller's hello time and counter (listener side), for diagnostics.
    pub hello_unix_ms: u64,
    pub hello_counter: u32,
}

impl Drop for Established {
    fn drop(&mut self) {
        self.send_key.zeroize();
        self.recv_key.zeroize();
        self.reset_secret.zeroize();
    }
}

impl std::fmt::Debug for Established {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Established")
            .field("session_id", &self.session_id)
            .field("initiator", &self.initiator)
            .field("peer_role", &self.peer_role)
            .field("peer_info", &self.peer_info)
            .field("encrypt", &self.encrypt)
            .finish_non_exhaustive()
    }
}

/// What [`peek_hello`] reads from a hello's clear bytes without any crypto.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelloPeek {
    pub role: Role,
    pub passphrase: bool,
    pub encrypt: bool,
    /// The echoed cookie, if the hello carries one.
    pub cookie: Option<Cookie>,
}

/// Parses the clear part of a hello body (length, version, flags, role, cookie) for the
/// listener's cheap checks — cookie and rate limit — before [`Responder::respond`].
pub fn peek_hello(body: &[u8]) -> Result<HelloPeek, WireError> {
    if body.len() != HELLO_BODY_LEN {
        return Err(if body.len() < HELLO_BODY_LEN {
            WireError::Truncated
        } else {
            WireError::Limit("hello length")
        });
    }
    if body[0] != HANDSHAKE_VERSION {
        return Err(WireError::BadVersion(body[0]));
    }
    let flags = body[1];
    if flags & !(FLAG_PASSPHRASE | FLAG_ENCRYPT | FLAG_COOKIE) != 0 {
        return Err(WireError::Limit("handshake flags"));
    }
    let role = Role::from_u8(body[2])?;
    if body[3] != 0 {
        return Err(WireError::Limit("handshake reserved byte"));
    }
    let mut c = [0u8; COOKIE_LEN];
    c.copy_from_slice(&body[COOKIE_AT..COOKIE_AT + COOKIE_LEN]);
    let cookie = if flags & FLAG_COOKIE != 0 {
        Some(Cookie(c))
    } else if c != [0; COOKIE_LEN] {
        return Err(WireError::Limit("cookie without flag"));
    } else {
        None
    };
    Ok(HelloPeek {
        role,
        passphrase: flags & FLAG_PASSPHRASE != 0,
        encrypt: flags & FLAG_ENCRYPT != 0,
        cookie,
    })
}

/// SPAKE2 identities: both roles (the caller's as sent in clear, the listener's as the other
/// one) and the hello's fresh nonce, so no two handshakes share a transcript.
fn identities(caller_role: u8, nonce: &[u8]) -> (Identity, Identity) {
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
fn noise_psk(spake_key: &[u8]) -> Zeroizing<[u8; 32]> {
    let hk = Hkdf::<Sha256>::new(Some(b"punktfunk/2 pake"), spake_key);
    let mut psk = Zeroizing::new([0u8; 32]);
    // 32 bytes is within HKDF's limit; expand cannot fail.
    let _ = hk.expand(b"noise psk", &mut psk[..]);
    psk
}

/// Length of the hello's Noise payload for a mode, so that every hello is [`HELLO_BODY_LEN`].
fn hello_payload_len(pake: bool) -> usize {
    let tag = if pake { NOISE_TAG_LEN } else { 0 };
    HELLO_BODY_LEN - HELLO_CLEAR_LEN - NOISE_KEY_LEN - tag
}

fn split(hs: &mut HandshakeState, initiator: bool) -> (u32, [u8; 32], [u8; 32], [u8; 32]) {
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

/// What a caller puts into one hello besides its keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct HelloParams {
    /// The caller's wall clock, ms since the Unix epoch (the connection reads it).
    pub unix_ms: u64,
    /// Incremented per hello by the caller, so hellos within one ms still differ.
    pub counter: u32,
    /// A cookie from the listener's CookieReply, if it asked for one.
    pub cookie: Option<Cookie>,
}

/// A deterministic CSPRNG (SHA-256 in counter mode over a secret seed) that lets the caller
/// re-create its SPAKE2 state: `spake2` consumes the state on `finish`, and a forged response
/// must not consume the attempt (issue 9), so the secret scalar is drawn from this instead and
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
struct SpakeA {
    seed: Zeroizing<[u8; 32]>,
    nonce: [u8; NONCE_LEN],
}

impl SpakeA {
    fn start(&self, cfg: &HandshakeConfig, psk: &Psk) -> (Spake2<Ed25519Group>, Vec<u8>) {
        let (id_a, id_b) = identities(cfg.role as u8, &self.nonce);
        Spake2::<Ed25519Group>::start_a_with_rng(
            &Password::new(&psk.0[..]),
            &id_a,
            &id_b,
            SeedRng::new(&self.seed),
        )
    }
}

/// The caller's side of one handshake attempt.
pub struct Initiator {
    hs: HandshakeState,
    cfg: HandshakeConfig,
    spake: Option<SpakeA>,
    /// The hello as sent without a cookie, for [`Initiator::hello_with_cookie`].
    hello: Vec<u8>,
}

impl Initiator {
    /// Starts an attempt; returns the state and the hello body (exactly [`HELLO_BODY_LEN`]).
    pub fn start_at(
        cfg: &HandshakeConfig,
        params: &HelloParams,
    ) -> Result<(Initiator, Vec<u8>), HandshakeError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| HandshakeError::Internal)?;
        let mut clear = [0u8; 4 + NONCE_LEN];
        clear[..4].copy_from_slice(&[HANDSHAKE_VERSION, cfg.flags(), cfg.role as u8, 0]);
        clear[4..].copy_from_slice(&nonce);
        let mut hs = cfg.build(true, &clear)?;

        let pake = cfg.psk.is_some();
        let mut payload = Zeroizing::new(Vec::with_capacity(hello_payload_len(pake)));
        payload.extend_from_slice(&params.unix_ms.to_be_bytes());
        payload.extend_from_slice(&params.counter.to_be_bytes());
        let spake = match cfg.psk.as_ref() {
            Some(psk) => {
                let mut seed = Zeroizing::new([0u8; 32]);
                getrandom::fill(&mut seed[..]).map_err(|_| HandshakeError::Internal)?;
                let a = SpakeA { seed, nonce };
                let (_, msg_a) = a.start(cfg, psk);
                payload.extend_from_slice(&msg_a);
                Some(a)
            }
            None => None,
        };
        payload.resize(hello_payload_len(pake), 0);
        let mut msg = [0u8; HELLO_BODY_LEN];
        let n = hs
            .write_message(&payload, &mut msg)
            .map_err(|_| HandshakeError::Internal)?;

        let mut body = Vec::with_capacity(HELLO_BODY_LEN);
        body.extend_from_slice(&clear[..4]);
        body.extend_from_slice(&[0u8; COOKIE_LEN]);
        body.extend_from_slice(&nonce);
        body.extend_from_slice(&msg[..n]);
        if body.len() != HELLO_BODY_LEN {
            return Err(HandshakeError::Internal);
        }
        let init = Initiator {
            hs,
            cfg: cfg.clone(),
            spake,
            hello: body,
        };
        let out = match &params.cookie {
            Some(c) => init.hello_with_cookie(c),
            None => init.hello.clone(),
        };
        Ok((init, out))
    }

    /// Transitional form used by the current session: no clock (timestamp 0, a process-wide
    /// counter), stream info ignored (it is sent sealed after confirmation now). A listener
    /// using [`Responder`] refuses such hellos as stale; [`respond`] takes them.
    pub fn start(
        cfg: &HandshakeConfig,
        _info: Option<&StreamInfo>,
    ) -> Result<(Initiator, Vec<u8>), HandshakeError> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let params = HelloParams {
            unix_ms: 0,
            counter: COUNTER.fetch_add(1, Ordering::Relaxed),
            cookie: None,
        };
        Initiator::start_at(cfg, &params)
    }

    /// The same hello again, with `cookie` echoed (after a CookieReply). Same Noise message, so
    /// the attempt's state stays valid and either copy's answer completes it.
    pub fn hello_with_cookie(&self, cookie: &Cookie) -> Vec<u8> {
        let mut h = self.hello.clone();
        h[1] |= FLAG_COOKIE;
        h[COOKIE_AT..COOKIE_AT + COOKIE_LEN].copy_from_slice(&cookie.0);
        h
    }

    /// Reads the listener's response body. With a passphrase, a response that does not open is
    /// [`HandshakeError::KeyConfirmation`]: the passphrases differ (or it is forged).
    pub fn finish(mut self, body: &[u8]) -> Result<Established, HandshakeError> {
        self.try_finish(body)
    }

    /// [`Initiator::finish`] that keeps the attempt usable when the response fails: a forged
    /// or garbled response (anyone who saw the hello knows its attempt id) leaves the state as
    /// it was, so the real answer still completes it. Call it again only after an error.
    pub fn try_finish(&mut self, body: &[u8]) -> Result<Established, HandshakeError> {
        if body.len() > RESPONSE_BODY_MAX {
            return Err(HandshakeError::Wire(WireError::Limit("response length")));
        }
        let mut r = Reader::new(body);
        let version = r.u8()?;
        if version != HANDSHAKE_VERSION {
            return Err(HandshakeError::Wire(WireError::BadVersion(version)));
        }
        let flags = r.u8()?;
        let role = Role::from_u8(r.u8()?)?;
        if r.u8()? != 0 {
            return Err(HandshakeError::Wire(WireError::Limit(
                "handshake reserved byte",
            )));
        }
        if flags != self.cfg.flags() {
            return Err(HandshakeError::Auth);
        }
        if role == self.cfg.role {
            return Err(HandshakeError::Refused(RejectReason::RoleMismatch));
        }
        let pake = self.spake.is_some();
        if let (Some(a), Some(psk)) = (self.spake.as_ref(), self.cfg.psk.as_ref()) {
            let (st, _) = a.start(&self.cfg, psk);
            let msg_b = r.bytes(SPAKE2_MSG_LEN)?;
            // A malformed B (not a point, wrong side byte) fails like a wrong key.
            let key = Zeroizing::new(
                st.finish(msg_b)
                    .map_err(|_| HandshakeError::KeyConfirmation)?,
            );
            let psk = noise_psk(&key);
            self.hs
                .set_psk(2, &psk[..])
                .map_err(|_| HandshakeError::Internal)?;
        }
        let msg = r.rest();
        if msg.len() != NOISE_KEY_LEN + RESPONSE_PAYLOAD_LEN + NOISE_TAG_LEN {
            return Err(HandshakeError::Wire(WireError::Limit("response length")));
        }
        let mut p = [0u8; NOISE_KEY_LEN + RESPONSE_PAYLOAD_LEN + NOISE_TAG_LEN];
        let n = self.hs.read_message(msg, &mut p).map_err(|_| {
            if pake {
                HandshakeError::KeyConfirmation
            } else {
                HandshakeError::Auth
            }
        })?;
        if n != RESPONSE_PAYLOAD_LEN || p[0] != role as u8 || p[1] != 0 {
            return Err(HandshakeError::Auth);
        }
        let (session_id, send_key, recv_key, reset_secret) = split(&mut self.hs, true);
        Ok(Established {
            session_id,
            send_key,
            recv_key,
            reset_secret,
            initiator: true,
            peer_role: role,
            peer_info: None,
            encrypt: self.cfg.encrypt,
            hello_unix_ms: 0,
            hello_counter: 0,
        })
    }
}

/// Duplicate and freshness check of hellos on the listener (see the module docs).
struct HelloCache {
    seen: HashMap<[u8; 16], u64>,
    order: VecDeque<(u64, [u8; 16])>,
}

impl HelloCache {
    /// Refuses a hello whose time is outside the window or whose ephemeral key was seen within
    /// it; otherwise remembers it until it leaves the window.
    fn check(&mut self, key: [u8; 16], hello_ms: u64, now_ms: u64) -> Result<(), HandshakeError> {
        if hello_ms.abs_diff(now_ms) > HELLO_FRESHNESS_MS {
            return Err(HandshakeError::Stale);
        }
        while let Some(&(expiry, k)) = self.order.front() {
            if expiry > now_ms && self.order.len() < HELLO_CACHE_CAP {
                break;
            }
            self.order.pop_front();
            if self.seen.get(&k) == Some(&expiry) {
                self.seen.remove(&k);
            }
        }
        if self.seen.contains_key(&key) {
            return Err(HandshakeError::Stale);
        }
        // Remember it until its timestamp leaves the window; entries are pushed in arrival
        // order, so expiry is only roughly ordered — an entry may stay a little longer.
        let expiry = hello_ms.saturating_add(HELLO_FRESHNESS_MS).max(now_ms);
        self.seen.insert(key, expiry);
        self.order.push_back((expiry, key));
        Ok(())
    }
}

/// The listener's side: checks and answers hellos. Holds the freshness cache, so one per
/// listening session.
pub struct Responder {
    cfg: HandshakeConfig,
    cache: HelloCache,
}

impl Responder {
    pub fn new(cfg: HandshakeConfig) -> Responder {
        Responder {
            cfg,
            cache: HelloCache {
                seen: HashMap::new(),
                order: VecDeque::new(),
            },
        }
    }

    /// Reads a hello body and returns the (unconfirmed) session and the response body, or why
    /// it refuses. `now_unix_ms` is the listener's wall clock. The cookie, if any, must have
    /// been checked by the caller of this function ([`peek_hello`], [`super::cookie`]).
    pub fn respond(
        &mut self,
        body: &[u8],
        now_unix_ms: u64,
    ) -> Result<(Established, Vec<u8>), HandshakeError> {
        respond_inner(&self.cfg, body, Some((&mut self.cache, now_unix_ms)))
    }

    /// Hellos remembered for duplicate detection.
    pub fn cached_hellos(&self) -> usize {
        self.cache.seen.len()
    }
}

/// Transitional stateless form used by the current session: no freshness or duplicate check.
/// Stream info is ignored (see [`Established::peer_info`]).
pub fn respond(
    cfg: &HandshakeConfig,
    body: &[u8],
    _info: Option<&StreamInfo>,
) -> Result<(Established, Vec<u8>), HandshakeError> {
    respond_inner(cfg, body, None)
}

fn respond_inner(
    cfg: &HandshakeConfig,
    body: &[u8],
    fresh: Option<(&mut HelloCache, u64)>,
) -> Result<(Established, Vec<u8>), HandshakeError> {
    let peek = peek_hello(body)?;
    let ours = cfg.flags();
    if peek.passphrase != cfg.psk.is_some() {
        return Err(HandshakeError::Refused(RejectReason::PassphraseMismatch));
    }
    if peek.encrypt != cfg.encrypt {
        return Err(HandshakeError::Refused(RejectReason::EncryptMismatch));
    }
    if peek.role == cfg.role {
        return Err(HandshakeError::Refused(RejectReason::RoleMismatch));
    }
    let mut clear = [0u8; 4 + NONCE_LEN];
    clear[..4].copy_from_slice(&[HANDSHAKE_VERSION, ours, peek.role as u8, 0]);
    let nonce = &body[NONCE_AT..NONCE_AT + NONCE_LEN];
    clear[4..].copy_from_slice(nonce);
    let mut hs = cfg.build(false, &clear)?;
    let msg = &body[HELLO_CLEAR_LEN..];
    let mut p = Zeroizing::new([0u8; HELLO_BODY_LEN]);
    // Message 1 carries no secret yet: failing to read it means corruption, not a wrong key.
    let n = hs
        .read_message(msg, &mut p[..])
        .map_err(|_| HandshakeError::Auth)?;
    let pake = cfg.psk.is_some();
    if n != hello_payload_len(pake) {
        return Err(HandshakeError::Wire(WireError::Limit("hello payload")));
    }
    let mut r = Reader::new(&p[..n]);
    let unix_ms = r.u64()?;
    let counter = r.u32()?;
    let msg_a = if pake {
        Some(r.bytes(SPAKE2_MSG_LEN)?)
    } else {
        None
    };
    if r.rest().iter().any(|&b| b != 0) {
        return Err(HandshakeError::Wire(WireError::Limit("hello padding")));
    }
    if let Some((cache, now_ms)) = fresh {
        let mut key = [0u8; 16];
        key.copy_from_slice(&msg[..16]);
        cache.check(key, unix_ms, now_ms)?;
    }

    let mut response = Vec::with_capacity(RESPONSE_BODY_MAX);
    response.extend_from_slice(&[HANDSHAKE_VERSION, ours, cfg.role as u8, 0]);
    if let (Some(psk), Some(msg_a)) = (&cfg.psk, msg_a) {
        let (id_a, id_b) = identities(peek.role as u8, nonce);
        let (st, msg_b) = Spake2::<Ed25519Group>::start_b(&Password::new(&psk.0[..]), &id_a, &id_b);
        // An A that is not a point is malformed; any point is accepted (a wrong passphrase
        // cannot be seen here, by design).
        let key = Zeroizing::new(st.finish(msg_a).map_err(|_| HandshakeError::Auth)?);
        hs.set_psk(2, &noise_psk(&key)[..])
            .map_err(|_| HandshakeError::Internal)?;
        response.extend_from_slice(&msg_b);
    }
    let mut out = [0u8; NOISE_KEY_LEN + RESPONSE_PAYLOAD_LEN + NOISE_TAG_LEN];
    let n = hs
        .write_message(&[cfg.role as u8, 0], &mut out)
        .map_err(|_| HandshakeError::Internal)?;
    response.extend_from_slice(&out[..n]);
    let (session_id, send_key, recv_key, reset_secret) = split(&mut hs, false);
    Ok((
        Established {
            session_id,
            send_key,
            recv_key,
            reset_secret,
            initiator: false,
            peer_role: peek.role,
            peer_info: None,
            encrypt: cfg.encrypt,
            hello_unix_ms: unix_ms,
            hello_counter: counter,
        },
        response,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::security::crypto::AeadBackend;

    const NOW: u64 = 1_700_000_000_000;

    fn cfg(role: Role, pass: Option<&str>) -> HandshakeConfig {
        HandshakeConfig {
            role,
            psk: pass.map(Psk::from_passphrase),
            encrypt: true,
        }
    }

    fn hello(c: &HandshakeConfig, at: u64, counter: u32) -> (Initiator, Vec<u8>) {
        let p = HelloParams {
            unix_ms: at,
            counter,
            cookie: None,
        };
        Initiator::start_at(c, &p).unwrap()
    }

    /// Seals a datagram body with `e`'s send key and opens it with `peer`'s receive key.
    fn sealed_datagram_opens(e: &Established, peer: &Established) -> bool {
        let seal = AeadBackend::Ring.make(&e.send_key);
        let open = AeadBackend::Ring.make(&peer.recv_key);
        let mut buf = b"first sealed datagram".to_vec();
        let mut tag = [0u8; 16];
        assert!(seal.seal(0, b"hdr", &mut buf, &mut tag));
        open.open(0, b"hdr", &mut buf, &tag).is_ok()
    }

    #[test]
    fn right_passphrase_interoperates() {
        let mut host = Responder::new(cfg(Role::Host, Some("secret")));
        let client = cfg(Role::Client, Some("secret"));
        let (init, hello) = hello(&client, NOW, 1);
        assert_eq!(hello.len(), HELLO_BODY_LEN);
        let (h, resp) = host.respond(&hello, NOW + 5).unwrap();
        let c = init.finish(&resp).unwrap();
        assert_eq!(h.session_id, c.session_id);
        assert_eq!(h.send_key, c.recv_key);
        assert_eq!(h.recv_key, c.send_key);
        assert_eq!(h.reset_secret, c.reset_secret);
        assert_ne!(h.send_key, h.recv_key);
        assert_eq!(h.peer_role, Role::Client);
        assert_eq!(c.peer_role, Role::Host);
        assert_eq!((h.hello_unix_ms, h.hello_counter), (NOW, 1));
        assert!(c.initiator && !h.initiator);
        // Key confirmation of the caller at the listener: its first sealed datagram opens.
        assert!(sealed_datagram_opens(&c, &h));
        assert!(sealed_datagram_opens(&h, &c));
    }

    /// Issue 9 finding 7: a forged or garbled response (anyone who saw the hello knows its
    /// attempt id) no longer consumes the attempt: the real answer still completes it, with
    /// and without a passphrase.
    #[test]
    fn a_failed_response_keeps_the_attempt() {
        for pass in [None, Some("secret")] {
            let client = cfg(Role::Client, pass);
            let (mut init, hello) = hello(&client, NOW, 1);
            let (h, real) = Responder::new(cfg(Role::Host, pass))
                .respond(&hello, NOW)
                .unwrap();
            // A listener with another passphrase, a flipped byte, junk.
            let (_, other) = Responder::new(cfg(Role::Host, pass.map(|_| "guess")))
                .respond(&hello, NOW)
                .unwrap();
            let mut flipped = real.clone();
            *flipped.last_mut().unwrap() ^= 1;
            // (Without a passphrase another listener's answer is as good as any: NN does not
            // authenticate the listener.)
            let mut bad: Vec<&[u8]> = vec![&flipped[..], &real[..10], &[0u8; 3][..]];
            if pass.is_some() {
                bad.insert(0, &other[..]);
            }
            for b in bad {
                assert!(init.try_finish(b).is_err());
            }
            let c = init.try_finish(&real).unwrap();
            assert_eq!((c.send_key, c.session_id), (h.recv_key, h.session_id));
        }
    }

    #[test]
    fn fresh_keys_every_time() {
        let mut host = Responder::new(cfg(Role::Host, Some("secret")));
        let client = cfg(Role::Client, Some("secret"));
        let mut keys = std::collections::HashSet::new();
        for i in 0..20 {
            let (init, hello) = hello(&client, NOW, i);
            let (h, resp) = host.respond(&hello, NOW).unwrap();
            init.finish(&resp).unwrap();
            assert!(keys.insert(h.send_key));
            assert!(keys.insert(h.recv_key));
        }
    }

    /// Issue 9 finding 1, (b): a wrong passphrase fails on both sides, and the listener's side
    /// of it is invisible on the wire: it answers exactly as it answers the right passphrase
    /// (no Reject, same length, same clear bytes), and the caller learns it only because key
    /// confirmation fails.
    #[test]
    fn wrong_passphrase_fails_both_sides_and_looks_like_any_answer() {
        let client = cfg(Role::Client, Some("right"));
        let (init, hello_wrong) = hello(&client, NOW, 1);
        let mut wrong = Responder::new(cfg(Role::Host, Some("wrong")));
        let (h, resp) = wrong.respond(&hello_wrong, NOW).unwrap();
        let (init_ok, hello_ok) = hello(&client, NOW, 2);
        let mut right = Responder::new(cfg(Role::Host, Some("right")));
        let (_, resp_ok) = right.respond(&hello_ok, NOW).unwrap();
        assert_eq!(resp.len(), resp_ok.len());
        assert_eq!(resp[..4], resp_ok[..4], "same clear bytes");
        assert_eq!(
            init.finish(&resp).unwrap_err(),
            HandshakeError::KeyConfirmation
        );
        assert!(init_ok.finish(&resp_ok).is_ok());
        // The listener's candidate session never confirms: nothing the caller could seal with
        // its own keys would open there. Simulate a caller that pressed on with its half.
        let (init2, hello2) = hello(&client, NOW, 3);
        let (h2, resp2) = wrong.respond(&hello2, NOW).unwrap();
        assert!(init2.finish(&resp2).is_err());
        assert_ne!(h.recv_key, h2.recv_key);
    }

    /// The old construction (Noise NNpsk0, PSK from the passphrase) as a reference attacker:
    /// a captured hello's tag depends only on the PSK and public values.
    fn old_nnpsk0_hello(passphrase: &str) -> Vec<u8> {
        let psk = old_psk(passphrase);
        let mut hs = Builder::new("Noise_NNpsk0_25519_ChaChaPoly_SHA256".parse().unwrap())
            .prologue(b"punktfunk/1")
            .unwrap()
            .psk(0, &psk)
            .unwrap()
            .build_initiator()
            .unwrap();
        let mut msg = vec![0u8; 256];
        let n = hs.write_message(&[2, 0], &mut msg).unwrap();
        msg.truncate(n);
        msg
    }

    fn old_psk(passphrase: &str) -> [u8; 32] {
        // The real one was PBKDF2 with a fixed salt: slower, but just as testable.
        let hk = Hkdf::<Sha256>::new(Some(b"punktfunk/1/psk"), passphrase.as_bytes());
        let mut k = [0u8; 32];
        hk.expand(b"", &mut k).unwrap();
        k
    }

    /// An offline guess against an old hello: run a responder with the guessed PSK.
    fn old_guess_matches(captured: &[u8], guess: &str) -> bool {
        let mut hs = Builder::new("Noise_NNpsk0_25519_ChaChaPoly_SHA256".parse().unwrap())
            .prologue(b"punktfunk/1")
            .unwrap()
            .psk(0, &old_psk(guess))
            .unwrap()
            .build_responder()
            .unwrap();
        let mut p = vec![0u8; 256];
        hs.read_message(captured, &mut p).is_ok()
    }

    /// Issue 9 finding 1, (a): a captured hello (and even hello + response) gives nothing to
    /// test a passphrase guess against offline. Every test an attacker can run from public
    /// data comes out the same for the right guess and a wrong one; the same test against the
    /// old NNpsk0 hello singles out the right guess.
    #[test]
    fn captured_hello_gives_no_offline_test_of_a_guess() {
        let guesses = ["hunter2", "right horse battery", "password", "letmein"];
        let real = "right horse battery";

        // Reference: the old hello is an offline oracle.
        let old = old_nnpsk0_hello(real);
        let verdicts: Vec<bool> = guesses.iter().map(|g| old_guess_matches(&old, g)).collect();
        assert_eq!(
            verdicts,
            [false, true, false, false],
            "NNpsk0 hello was testable"
        );

        // New: capture one hello and its answer.
        let client = cfg(Role::Client, Some(real));
        let (init, captured) = hello(&client, NOW, 1);
        let mut host = Responder::new(cfg(Role::Host, Some(real)));
        let (_, captured_resp) = host.respond(&captured, NOW).unwrap();
        init.finish(&captured_resp).unwrap();

        for g in guesses {
            // Test 1: process the hello as a listener holding the guess. Message 1 carries no
            // passphrase-dependent check, so every guess is accepted and answered alike.
            let mut attacker = Responder::new(cfg(Role::Host, Some(g)));
            let (_, r) = attacker
                .respond(&captured, NOW)
                .expect("every guess is taken");
            assert_eq!(r.len(), captured_resp.len());
            assert_eq!(r[..4], captured_resp[..4]);
            // Test 2: the hello's decrypted payload is identical whichever PSK slot a guess
            // would fill: NNpsk2 uses the PSK only after message 1.
            let mut a = cfg(Role::Host, Some(g))
                .build(false, &{
                    let mut c = [0u8; 4 + NONCE_LEN];
                    c[..4].copy_from_slice(&[HANDSHAKE_VERSION, 3, 2, 0]);
                    c[4..].copy_from_slice(&captured[NONCE_AT..NONCE_AT + NONCE_LEN]);
                    c
                })
                .unwrap();
            let mut p = [0u8; HELLO_BODY_LEN];
            let n = a
                .read_message(&captured[HELLO_CLEAR_LEN..], &mut p)
                .unwrap();
            assert_eq!(n, hello_payload_len(true));
            assert_eq!(&p[..8], &NOW.to_be_bytes());
            // Test 3: finish the captured answer as a caller holding the guess (the attacker
            // has no secret scalar of the real caller, so it can only start its own): fails
            // for the right guess exactly as for a wrong one.
            let (guesser, _) = hello(&cfg(Role::Client, Some(g)), NOW, 9);
            assert_eq!(
                guesser.finish(&captured_resp).unwrap_err(),
                HandshakeError::KeyConfirmation,
                "guess {g:?}"
            );
        }
        // The only passphrase-dependent value in the hello is SPAKE2's A = x·G + pw·M, which
        // is uniformly random for every pw while x is secret: two hellos with the same
        // passphrase share nothing.
        let (_, h2) = hello(&client, NOW, 1);
        let a1 = &captured[HELLO_CLEAR_LEN + NOISE_KEY_LEN..];
        let a2 = &h2[HELLO_CLEAR_LEN + NOISE_KEY_LEN..];
        assert_ne!(a1[..SPAKE2_MSG_LEN + 12], a2[..SPAKE2_MSG_LEN + 12]);
    }

    /// Issue 9 finding 3 (amplification): before the caller's address is validated, nothing
    /// the listener sends is larger than the hello it answers.
    #[test]
    fn every_answer_is_no_larger_than_the_hello() {
        for pass in [None, Some("secret")] {
            let (init, hello) = hello(&cfg(Role::Client, pass), NOW, 1);
            let (_, resp) = Responder::new(cfg(Role::Host, pass))
                .respond(&hello, NOW)
                .unwrap();
            assert!(resp.len() <= RESPONSE_BODY_MAX);
            assert!(HEADER_LEN + resp.len() <= HELLO_DATAGRAM_LEN);
            init.finish(&resp).unwrap();
        }
        // The other answers are checked at compile time (see the `const` assertions).
    }

    #[test]
    fn stale_and_replayed_hellos_are_refused_before_the_pake() {
        let client = cfg(Role::Client, Some("secret"));
        let mut host = Responder::new(cfg(Role::Host, Some("secret")));
        let (_, old) = hello(&client, NOW - HELLO_FRESHNESS_MS - 1, 1);
        assert_eq!(host.respond(&old, NOW).unwrap_err(), HandshakeError::Stale);
        let (_, future) = hello(&client, NOW + HELLO_FRESHNESS_MS + 1, 2);
        assert_eq!(
            host.respond(&future, NOW).unwrap_err(),
            HandshakeError::Stale
        );
        let (init, ok) = hello(&client, NOW - HELLO_FRESHNESS_MS, 3);
        let (_, resp) = host.respond(&ok, NOW).unwrap();
        init.finish(&resp).unwrap();
        // The same hello again (from any address) inside the window: refused, cheaply.
        for _ in 0..100 {
            assert_eq!(
                host.respond(&ok, NOW + 10).unwrap_err(),
                HandshakeError::Stale
            );
        }
        assert_eq!(host.cached_hellos(), 1);
        // The cache forgets hellos once they left the window (bounded memory).
        let (_, later) = hello(&client, NOW + 3 * HELLO_FRESHNESS_MS, 4);
        host.respond(&later, NOW + 3 * HELLO_FRESHNESS_MS).unwrap();
        assert_eq!(host.cached_hellos(), 1);
        // Tampering with the timestamp breaks the transcript: the caller's keys no longer
        // match (NN: the listener reads the edited payload, but the hash differs).
        let nn = cfg(Role::Client, None);
        let (init, mut h) = hello(&nn, NOW, 5);
        h[HELLO_CLEAR_LEN + NOISE_KEY_LEN + 7] ^= 1;
        let (e, resp) = Responder::new(cfg(Role::Host, None))
            .respond(&h, NOW)
            .unwrap();
        assert!(init.finish(&resp).is_err());
        drop(e);
    }

    #[test]
    fn cookie_is_echoed_outside_the_transcript() {
        let client = cfg(Role::Client, Some("secret"));
        let (init, plain) = hello(&client, NOW, 1);
        assert_eq!(peek_hello(&plain).unwrap().cookie, None);
        let c = Cookie([0x5a; COOKIE_LEN]);
        let with = init.hello_with_cookie(&c);
        assert_eq!(with.len(), plain.len());
        let peek = peek_hello(&with).unwrap();
        assert_eq!(peek.cookie, Some(c));
        assert_eq!(
            (peek.role, peek.passphrase, peek.encrypt),
            (Role::Client, true, true)
        );
        // The resent hello completes the same attempt.
        let (h, resp) = Responder::new(cfg(Role::Host, Some("secret")))
            .respond(&with, NOW)
            .unwrap();
        let e = init.finish(&resp).unwrap();
        assert_eq!(e.send_key, h.recv_key);
        // A cookie in the field without the flag is malformed.
        let mut bad = plain.clone();
        bad[COOKIE_AT] = 1;
        assert!(peek_hello(&bad).is_err());
        let p = HelloParams {
            unix_ms: NOW,
            counter: 0,
            cookie: Some(c),
        };
        let (_, direct) = Initiator::start_at(&client, &p).unwrap();
        assert_eq!(peek_hello(&direct).unwrap().cookie, Some(c));
    }

    #[test]
    fn refusals_are_specific_and_never_about_the_passphrase_value() {
        let client = cfg(Role::Client, Some("secret"));
        let (_i, hello) = hello(&client, NOW, 1);
        assert_eq!(
            respond(&cfg(Role::Host, None), &hello, None).unwrap_err(),
            HandshakeError::Refused(RejectReason::PassphraseMismatch)
        );
        assert_eq!(
            respond(&cfg(Role::Client, Some("secret")), &hello, None).unwrap_err(),
            HandshakeError::Refused(RejectReason::RoleMismatch)
        );
        let mut plain = cfg(Role::Host, Some("secret"));
        plain.encrypt = false;
        assert_eq!(
            respond(&plain, &hello, None).unwrap_err(),
            HandshakeError::Refused(RejectReason::EncryptMismatch)
        );
        assert!(respond(&cfg(Role::Host, Some("other")), &hello, None).is_ok());
        // Flipping a clear byte breaks the prologue binding.
        let (init, mut bad) = Initiator::start(&cfg(Role::Client, None), None).unwrap();
        bad[NONCE_AT] ^= 1;
        let (_, resp) = respond(&cfg(Role::Host, None), &bad, None).unwrap();
        assert!(init.finish(&resp).is_err());
        // Wrong lengths are refused before any crypto.
        assert!(matches!(
            respond(&cfg(Role::Host, None), &hello[..HELLO_BODY_LEN - 1], None),
            Err(HandshakeError::Wire(WireError::Truncated))
        ));
        let mut long = hello.clone();
        long.push(0);
        assert!(matches!(
            respond(&cfg(Role::Host, None), &long, None),
            Err(HandshakeError::Wire(WireError::Limit(_)))
        ));
    }

    #[test]
    fn no_passphrase_still_keys_and_legacy_forms_work() {
        let (init, hello) = Initiator::start(&cfg(Role::Client, None), None).unwrap();
        let (h, resp) = respond(&cfg(Role::Host, None), &hello, None).unwrap();
        let c = init.finish(&resp).unwrap();
        assert_eq!(h.send_key, c.recv_key);
        assert_eq!(c.peer_info, None);
        let (init, hello) = Initiator::start(&cfg(Role::Host, Some("p")), None).unwrap();
        let (h, resp) = respond(&cfg(Role::Client, Some("p")), &hello, None).unwrap();
        let c = init.finish(&resp).unwrap();
        assert_eq!(h.recv_key, c.send_key);
    }

    #[test]
    fn garbage_never_panics() {
        for pass in [None, Some("p")] {
            let mut host = Responder::new(cfg(Role::Host, pass));
            for len in 0..300 {
                let g: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
                let _ = host.respond(&g, NOW);
                let (init, _) = hello(&cfg(Role::Client, pass), NOW, 0);
                let _ = init.finish(&g);
            }
            // Valid framing, random contents.
            let (_, h) = hello(&cfg(Role::Client, pass), NOW, 0);
            for i in HELLO_CLEAR_LEN..HELLO_BODY_LEN {
                let mut b = h.clone();
                b[i] ^= 0x80;
                let _ = respond(&cfg(Role::Host, pass), &b, None);
            }
        }
    }
}
