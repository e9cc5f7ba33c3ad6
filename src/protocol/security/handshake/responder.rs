//! The listener's side: checks a hello (layout, settings, freshness, replays) and answers it
//! with the response body and an unconfirmed [`Established`] session.
//!
//! Owns the freshness window and the duplicate cache ([`HELLO_FRESHNESS_MS`],
//! [`HELLO_CACHE_CAP`]). Must never: run the PAKE for a stale or replayed hello, answer with more
//! bytes than [`RESPONSE_BODY_MAX`], or tell a caller that its passphrase is wrong.

use std::collections::{HashMap, VecDeque};

use spake2::{Ed25519Group, Password, Spake2};
use zeroize::Zeroizing;

use super::keys::{identities, noise_psk, split};
use super::{
    Established, HANDSHAKE_VERSION, HELLO_BODY_LEN, HELLO_CACHE_CAP, HELLO_CLEAR_LEN,
    HELLO_FRESHNESS_MS, HandshakeConfig, HandshakeError, NOISE_KEY_LEN, NOISE_TAG_LEN, NONCE_AT,
    NONCE_LEN, RESPONSE_BODY_MAX, RESPONSE_PAYLOAD_LEN, SPAKE2_MSG_LEN, hello::hello_payload_len,
    peek_hello,
};
use crate::protocol::wire::{Reader, RejectReason, WireError};

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
    /// A responder for `cfg` with an empty duplicate cache.
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
    /// been checked by the caller of this function ([`peek_hello`], [`super::super::cookie`]).
    pub fn respond(
        &mut self,
        body: &[u8],
        now_unix_ms: u64,
    ) -> Result<(Established, Vec<u8>), HandshakeError> {
        respond_inner(&self.cfg, body, Some((&mut self.cache, now_unix_ms)))
    }

    /// Hellos remembered for duplicate detection.
    #[cfg(test)]
    pub(crate) fn cached_hellos(&self) -> usize {
        self.cache.seen.len()
    }
}

/// The stateless form the unit tests use: no freshness or duplicate check. Stream info is
/// ignored (see [`Established::peer_info`]).
#[cfg(test)]
pub(crate) fn respond(
    cfg: &HandshakeConfig,
    body: &[u8],
    _info: Option<&crate::protocol::control::StreamInfo>,
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
