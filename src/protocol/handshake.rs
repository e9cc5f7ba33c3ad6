//! Session establishment: a Noise handshake that gives both ends fresh, per-direction media keys.
//!
//! Construction: `Noise_NNpsk0_25519_ChaChaPoly_SHA256` when a passphrase is set (the PSK is
//! PBKDF2-HMAC-SHA256 of the passphrase), `Noise_NN_25519_ChaChaPoly_SHA256` without one. Both
//! ends contribute a fresh X25519 ephemeral key, so every session has new keys even with the same
//! passphrase; with a passphrase, a party without it can neither complete the handshake nor
//! inject. After the two messages each side takes Noise's `Split()` output as raw keys: the
//! first for caller → listener, the second for listener → caller, used with AES-256-GCM for media
//! (see [`super::crypto`]). The session id is the first four bytes of the handshake hash.
//!
//! The first bytes of each handshake body are clear (flags and role) so a listener can say
//! precisely why it refuses; they are also the Noise prologue, so tampering with them fails
//! the handshake. This module only builds and reads messages; retries and timing are the
//! session's.

use pbkdf2::pbkdf2_hmac;
use sha2::Sha256;
use snow::{Builder, HandshakeState};

use super::control::StreamInfo;
use super::wire::{Reader, RejectReason, WireError, Writer};

const PATTERN_PSK: &str = "Noise_NNpsk0_25519_ChaChaPoly_SHA256";
const PATTERN_NN: &str = "Noise_NN_25519_ChaChaPoly_SHA256";
const PROLOGUE: &[u8] = b"punktfunk/1";
const PSK_SALT: &[u8] = b"punktfunk/1/psk";
/// PBKDF2 rounds: slows offline guessing of a passphrase from a captured hello, while costing
/// a few tens of milliseconds once per session start.
pub const PSK_ROUNDS: u32 = 100_000;
/// Largest handshake message we read (Noise's own limit).
pub const MAX_HANDSHAKE_LEN: usize = 65_535;

const FLAG_PASSPHRASE: u8 = 0x01;
const FLAG_ENCRYPT: u8 = 0x02;

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

/// The pre-shared key derived from a passphrase. Zeroised on drop.
#[derive(Clone)]
pub struct Psk([u8; 32]);

impl Psk {
    pub fn from_passphrase(passphrase: &str) -> Psk {
        let mut k = [0u8; 32];
        pbkdf2_hmac::<Sha256>(passphrase.as_bytes(), PSK_SALT, PSK_ROUNDS, &mut k);
        Psk(k)
    }
}

impl Drop for Psk {
    fn drop(&mut self) {
        // Best effort; volatile so the compiler keeps it.
        for b in self.0.iter_mut() {
            unsafe { std::ptr::write_volatile(b, 0) };
        }
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
            PATTERN_PSK
        } else {
            PATTERN_NN
        };
        let params = pattern.parse().map_err(|_| HandshakeError::Internal)?;
        let mut b = Builder::new(params)
            .prologue(&prologue)
            .map_err(|_| HandshakeError::Internal)?;
        if let Some(psk) = &self.psk {
            b = b.psk(0, &psk.0).map_err(|_| HandshakeError::Internal)?;
        }
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
    /// The message did not authenticate (wrong passphrase, or forged/tampered).
    Auth,
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

/// The outcome of a completed handshake.
pub struct Established {
    pub session_id: u32,
    /// Key for what this end sends.
    pub send_key: [u8; 32],
    /// Key for what this end receives.
    pub recv_key: [u8; 32],
    pub peer_role: Role,
    /// Stream info the peer sent (hosts send theirs when they know it).
    pub peer_info: Option<StreamInfo>,
    pub encrypt: bool,
}

impl std::fmt::Debug for Established {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Established")
            .field("session_id", &self.session_id)
            .field("peer_role", &self.peer_role)
            .field("peer_info", &self.peer_info)
            .field("encrypt", &self.encrypt)
            .finish_non_exhaustive()
    }
}

fn payload(role: Role, info: Option<&StreamInfo>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = Writer::new(&mut out);
    w.u8(role as u8);
    match info {
        Some(i) => {
            w.u8(1);
            i.encode(&mut w);
        }
        None => {
            w.u8(0);
        }
    }
    out
}

fn read_payload(p: &[u8]) -> Result<(Role, Option<StreamInfo>), WireError> {
    let mut r = Reader::new(p);
    let role = Role::from_u8(r.u8()?)?;
    let info = match r.u8()? {
        0 => None,
        1 => Some(StreamInfo::decode(&mut r)?),
        o => return Err(WireError::UnknownKind(o)),
    };
    r.finish()?;
    Ok((role, info))
}

fn split(hs: &mut HandshakeState, initiator: bool) -> (u32, [u8; 32], [u8; 32]) {
    let h = hs.get_handshake_hash();
    let sid = u32::from_be_bytes([h[0], h[1], h[2], h[3]]).max(1);
    let (i2r, r2i) = hs.dangerously_get_raw_split();
    if initiator {
        (sid, i2r, r2i)
    } else {
        (sid, r2i, i2r)
    }
}

/// The caller's side of one handshake attempt.
pub struct Initiator {
    hs: HandshakeState,
    cfg: HandshakeConfig,
}

impl Initiator {
    /// Starts an attempt; returns the state and the HandshakeInit body to send.
    pub fn start(
        cfg: &HandshakeConfig,
        info: Option<&StreamInfo>,
    ) -> Result<(Initiator, Vec<u8>), HandshakeError> {
        let clear = [cfg.flags(), cfg.role as u8];
        let mut hs = cfg.build(true, &clear)?;
        let p = payload(cfg.role, info);
        let mut msg = vec![0u8; MAX_HANDSHAKE_LEN];
        let n = hs
            .write_message(&p, &mut msg)
            .map_err(|_| HandshakeError::Internal)?;
        let mut body = clear.to_vec();
        body.extend_from_slice(&msg[..n]);
        Ok((
            Initiator {
                hs,
                cfg: cfg.clone(),
            },
            body,
        ))
    }

    /// Reads the listener's HandshakeResponse body.
    pub fn finish(mut self, body: &[u8]) -> Result<Established, HandshakeError> {
        let mut r = Reader::new(body);
        let flags = r.u8()?;
        let _role = r.u8()?;
        if flags != self.cfg.flags() {
            return Err(HandshakeError::Auth);
        }
        let msg = r.rest();
        if msg.len() > MAX_HANDSHAKE_LEN {
            return Err(HandshakeError::Wire(WireError::Limit("handshake length")));
        }
        let mut p = vec![0u8; msg.len()];
        let n = self
            .hs
            .read_message(msg, &mut p)
            .map_err(|_| HandshakeError::Auth)?;
        let (peer_role, peer_info) = read_payload(&p[..n])?;
        if peer_role == self.cfg.role {
            return Err(HandshakeError::Refused(RejectReason::RoleMismatch));
        }
        let (session_id, send_key, recv_key) = split(&mut self.hs, true);
        Ok(Established {
            session_id,
            send_key,
            recv_key,
            peer_role,
            peer_info,
            encrypt: self.cfg.encrypt,
        })
    }
}

/// The listener's side: reads a HandshakeInit body and returns the session and the
/// HandshakeResponse body, or why it refuses.
pub fn respond(
    cfg: &HandshakeConfig,
    body: &[u8],
    info: Option<&StreamInfo>,
) -> Result<(Established, Vec<u8>), HandshakeError> {
    let mut r = Reader::new(body);
    let flags = r.u8()?;
    let role = Role::from_u8(r.u8()?)?;
    let msg = r.rest();
    if msg.len() > MAX_HANDSHAKE_LEN {
        return Err(HandshakeError::Wire(WireError::Limit("handshake length")));
    }
    let ours = cfg.flags();
    if (flags ^ ours) & FLAG_PASSPHRASE != 0 {
        return Err(HandshakeError::Refused(RejectReason::PassphraseMismatch));
    }
    if (flags ^ ours) & FLAG_ENCRYPT != 0 {
        return Err(HandshakeError::Refused(RejectReason::EncryptMismatch));
    }
    if flags & !(FLAG_PASSPHRASE | FLAG_ENCRYPT) != 0 {
        return Err(HandshakeError::Wire(WireError::Limit("handshake flags")));
    }
    if role == cfg.role {
        return Err(HandshakeError::Refused(RejectReason::RoleMismatch));
    }
    let clear = [flags, role as u8];
    let mut hs = cfg.build(false, &clear)?;
    let mut p = vec![0u8; msg.len()];
    let n = hs.read_message(msg, &mut p).map_err(|_| {
        if cfg.psk.is_some() {
            HandshakeError::Refused(RejectReason::BadPassphrase)
        } else {
            HandshakeError::Auth
        }
    })?;
    let (peer_role, peer_info) = read_payload(&p[..n])?;
    if peer_role != role {
        return Err(HandshakeError::Auth);
    }
    let reply = payload(cfg.role, info);
    let mut out = vec![0u8; MAX_HANDSHAKE_LEN];
    let n = hs
        .write_message(&reply, &mut out)
        .map_err(|_| HandshakeError::Internal)?;
    let mut body = vec![ours, cfg.role as u8];
    body.extend_from_slice(&out[..n]);
    let (session_id, send_key, recv_key) = split(&mut hs, false);
    Ok((
        Established {
            session_id,
            send_key,
            recv_key,
            peer_role,
            peer_info,
            encrypt: cfg.encrypt,
        },
        body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(role: Role, pass: Option<&str>) -> HandshakeConfig {
        HandshakeConfig {
            role,
            psk: pass.map(Psk::from_passphrase),
            encrypt: true,
        }
    }

    fn info() -> StreamInfo {
        StreamInfo {
            caps: "video/x-h264".into(),
            mtu: 1400,
            fec_scheme: 1,
            generation: 1,
        }
    }

    #[test]
    fn completes_with_matching_passphrase() {
        let host = cfg(Role::Host, Some("secret"));
        let client = cfg(Role::Client, Some("secret"));
        let (init, hello) = Initiator::start(&client, None).unwrap();
        let (h, resp) = respond(&host, &hello, Some(&info())).unwrap();
        let c = init.finish(&resp).unwrap();
        assert_eq!(h.session_id, c.session_id);
        assert_eq!(h.send_key, c.recv_key);
        assert_eq!(h.recv_key, c.send_key);
        assert_ne!(h.send_key, h.recv_key);
        assert_eq!(c.peer_info, Some(info()));
        assert_eq!(h.peer_role, Role::Client);
    }

    #[test]
    fn fresh_keys_every_time() {
        let host = cfg(Role::Host, Some("secret"));
        let client = cfg(Role::Client, Some("secret"));
        let mut keys = std::collections::HashSet::new();
        for _ in 0..20 {
            let (init, hello) = Initiator::start(&client, None).unwrap();
            let (h, resp) = respond(&host, &hello, None).unwrap();
            init.finish(&resp).unwrap();
            assert!(keys.insert(h.send_key));
            assert!(keys.insert(h.recv_key));
        }
    }

    #[test]
    fn refusals_are_specific() {
        let client = cfg(Role::Client, Some("secret"));
        let (_i, hello) = Initiator::start(&client, None).unwrap();
        assert_eq!(
            respond(&cfg(Role::Host, Some("other")), &hello, None).unwrap_err(),
            HandshakeError::Refused(RejectReason::BadPassphrase)
        );
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
        // Flipping a clear byte breaks the prologue binding.
        let mut bad = hello.clone();
        bad[0] ^= FLAG_ENCRYPT;
        let mut plain_client_side = cfg(Role::Host, Some("secret"));
        plain_client_side.encrypt = false;
        assert!(respond(&plain_client_side, &bad, None).is_err());
    }

    #[test]
    fn no_passphrase_still_keys() {
        let (init, hello) = Initiator::start(&cfg(Role::Client, None), None).unwrap();
        let (h, resp) = respond(&cfg(Role::Host, None), &hello, None).unwrap();
        let c = init.finish(&resp).unwrap();
        assert_eq!(h.send_key, c.recv_key);
    }

    #[test]
    fn garbage_never_panics() {
        let host = cfg(Role::Host, None);
        for len in 0..200 {
            let g: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
            let _ = respond(&host, &g, None);
            let (init, _) = Initiator::start(&cfg(Role::Client, None), None).unwrap();
            let _ = init.finish(&g);
        }
    }
}
