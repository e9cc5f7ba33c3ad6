//! The caller's side of one handshake attempt: builds the hello, re-sends it with a cookie, and
//! reads the listener's response into an [`Established`] session.
//!
//! Must never: let a failed response consume the attempt (a forged answer leaves the state as it
//! was), or read a clock (the hello's time comes in [`HelloParams`]).

use zeroize::Zeroizing;

use super::super::cookie::{COOKIE_LEN, Cookie};
use super::keys::{SpakeA, noise_psk, split};
use super::{
    COOKIE_AT, Established, FLAG_COOKIE, HANDSHAKE_VERSION, HELLO_BODY_LEN, HandshakeConfig,
    HandshakeError, HelloParams, NOISE_KEY_LEN, NOISE_TAG_LEN, NONCE_LEN, RESPONSE_BODY_MAX,
    RESPONSE_PAYLOAD_LEN, Role, SPAKE2_MSG_LEN, hello::hello_payload_len,
};
use crate::protocol::wire::{Reader, RejectReason, WireError};
use snow::HandshakeState;

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

    /// The clockless form the unit tests use: timestamp 0 and a process-wide counter; stream
    /// info is ignored (it travels sealed after confirmation). A [`super::Responder`] refuses
    /// such hellos as stale; the stateless `respond` takes them.
    #[cfg(test)]
    pub(crate) fn start(
        cfg: &HandshakeConfig,
        _info: Option<&crate::protocol::control::StreamInfo>,
    ) -> Result<(Initiator, Vec<u8>), HandshakeError> {
        use std::sync::atomic::{AtomicU32, Ordering};
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
    pub(crate) fn try_finish(&mut self, body: &[u8]) -> Result<Established, HandshakeError> {
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
