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
//! sends more bytes than it received before the caller's address is validated. Stream info is not
//! in the response (it would grow the answer to 450+ bytes): the host sends it sealed after
//! confirmation. The hello's Noise payload carries the caller's wall-clock time (ms) and a
//! counter; [`Responder`] refuses hellos outside [`HELLO_FRESHNESS_MS`] of its own clock and
//! exact replays inside it, before any expensive crypto. The cookie field is outside the Noise
//! prologue so a caller can resend the same hello with a cookie ([`Initiator::hello_with_cookie`]).
//!
//! This module only builds and reads messages; retries, timing, cookies and rate limits are the
//! connection's. It never reads a clock (times are passed in) and never logs key material;
//! every secret it holds is zeroised on drop (the `spake2` crate keeps its own copy of the
//! passphrase for the life of one attempt and does not zeroise it — a limitation of the crate).
//!
//! Parts: this file holds the shared types, the layout constants and the Noise setup; `hello`
//! reads a hello's clear bytes, `keys` is the key schedule, `initiator` and `responder` are the
//! two sides' state machines, `tests` the unit tests.

use snow::{Builder, HandshakeState};
use zeroize::{Zeroize, Zeroizing};

use super::cookie::COOKIE_LEN;
use crate::protocol::control::StreamInfo;
use crate::protocol::wire::{HEADER_LEN, RejectReason, WireError};

mod hello;
mod initiator;
mod keys;
mod responder;
#[cfg(test)]
mod tests;

pub use hello::{HelloParams, HelloPeek, peek_hello};
pub use initiator::Initiator;
pub use responder::Responder;
#[cfg(test)]
use responder::respond;

const PATTERN_PAKE: &str = "Noise_NNpsk2_25519_ChaChaPoly_SHA256";
const PATTERN_NN: &str = "Noise_NN_25519_ChaChaPoly_SHA256";
const PROLOGUE: &[u8] = b"punktfunk/2 handshake";

/// Handshake format version, first byte of every handshake body.
pub(crate) const HANDSHAKE_VERSION: u8 = 2;

/// Bytes of a SPAKE2 message (side byte + compressed Edwards point).
pub(crate) const SPAKE2_MSG_LEN: usize = 33;

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
pub(crate) const HELLO_BODY_LEN: usize = 176;

/// A hello datagram's length: the clear header and [`HELLO_BODY_LEN`].
pub const HELLO_DATAGRAM_LEN: usize = HEADER_LEN + HELLO_BODY_LEN;

/// The largest response body: clear bytes, SPAKE2 B, Noise message 2 (`e`, payload, tag).
pub(crate) const RESPONSE_BODY_MAX: usize =
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
pub(crate) const HELLO_FRESHNESS_MS: u64 = 60_000;

/// Hellos remembered for duplicate detection (16 bytes each plus map overhead, ~1.5 MiB at
/// most). At the default global handshake rate ([`super::ratelimit`]) a full window of
/// accepted hellos fits; above it the oldest are forgotten first.
pub(crate) const HELLO_CACHE_CAP: usize = 32_768;

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
    /// The passphrase's UTF-8 bytes, as typed (no normalisation, no stretching).
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
    /// This end's role; the peer must have the other one.
    pub role: Role,
    /// The shared passphrase (SPAKE2 + `Noise_NNpsk2`), or none (`Noise_NN`, unauthenticated).
    pub psk: Option<Psk>,
    /// Seal media and control with the session keys; both ends must agree.
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
    /// The session id both ends put in their headers (from the handshake hash, never 0).
    pub session_id: u32,
    /// Key for what this end sends.
    pub send_key: [u8; 32],
    /// Key for what this end receives.
    pub recv_key: [u8; 32],
    /// Secret for [`super::crypto::ResetToken`]s of this session (same on both ends).
    pub reset_secret: [u8; 32],
    /// Whether this end was the caller (Noise initiator); reset tokens are per side.
    pub(crate) initiator: bool,
    /// The peer's role (the other one than ours).
    pub peer_role: Role,
    /// Always `None`: stream info travels sealed after confirmation, so that the response
    /// stays smaller than the hello.
    pub(crate) peer_info: Option<StreamInfo>,
    /// Whether media and control are sealed in this session.
    pub encrypt: bool,
    /// The caller's hello time, ms since the Unix epoch (listener side), for diagnostics.
    pub hello_unix_ms: u64,
    /// The caller's hello counter (listener side), for diagnostics.
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
