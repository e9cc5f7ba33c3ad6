//! Stateless cookies: proof that a hello's source address can receive what the listener sends
//! there, checked before the listener spends any handshake crypto or state on it (the idea of
//! WireGuard's cookie reply and QUIC's Retry).
//!
//! Under load (see [`super::ratelimit::HandshakeGate`]) a listener answers a hello that carries
//! no valid cookie with a CookieReply (kind 5) instead of a HandshakeResponse: 16 bytes after the
//! clear header, `HMAC-SHA256(secret, "punktfunk/2 cookie" ‖ ip ‖ port)` cut to 16 bytes, where
//! `ip` is the 16-byte IPv6 form of the source address. The caller sends the same hello again
//! with the cookie in the hello's cookie field (and the `HAS_COOKIE` flag set); the listener
//! recomputes the MAC. Nothing is stored per caller, so a flood of spoofed hellos costs the
//! listener one HMAC each and no memory, and a spoofed source never gets a handshake started.
//!
//! The secret rotates every [`COOKIE_ROTATION`] (driven by the `now` passed in; fresh randomness
//! from the OS each time); a cookie made with the current or the previous secret verifies, so a
//! cookie stays good for at least one rotation period and at most two.
//!
//! A CookieReply is never larger than the hello it answers (32 bytes against 192), and a caller
//! takes one only for an attempt it has in flight, from the address it sent that attempt to.
//! This module owns the MAC and the reply layout; it never decides when cookies are required
//! (the gate does) and never keeps per-address state.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::protocol::wire::{HEADER_LEN, KIND_COOKIE_REPLY, VERSION, WireError};

/// Bytes of a cookie.
pub const COOKIE_LEN: usize = 16;

/// How long one secret makes cookies. WireGuard's value; a cookie verifies for 2 to 4 minutes.
pub(crate) const COOKIE_ROTATION: Duration = Duration::from_secs(120);

/// Length of a CookieReply datagram: the clear header and the cookie.
pub const COOKIE_REPLY_LEN: usize = HEADER_LEN + COOKIE_LEN;

const LABEL: &[u8] = b"punktfunk/2 cookie";

/// A cookie for one source address.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Cookie(pub [u8; COOKIE_LEN]);

impl std::fmt::Debug for Cookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cookie(..)")
    }
}

/// The listener's rotating cookie secrets. Zeroised on drop.
pub struct CookieSecret {
    current: Zeroizing<[u8; 32]>,
    previous: Option<Zeroizing<[u8; 32]>>,
    rotated_at: Instant,
}

fn random_secret() -> Zeroizing<[u8; 32]> {
    let mut s = Zeroizing::new([0u8; 32]);
    // Without an OS entropy source every handshake fails long before this; a zero secret would
    // only make cookies forgeable, not break anything else.
    let _ = getrandom::fill(&mut s[..]);
    s
}

fn mac(secret: &[u8; 32], from: SocketAddr) -> [u8; COOKIE_LEN] {
    let ip = match from.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    // HMAC takes keys of any length; new_from_slice cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(LABEL);
    m.update(&ip);
    m.update(&from.port().to_be_bytes());
    let full = m.finalize().into_bytes();
    let mut out = [0u8; COOKIE_LEN];
    out.copy_from_slice(&full[..COOKIE_LEN]);
    out
}

impl CookieSecret {
    /// A fresh secret (OS randomness), rotating from `now`.
    pub fn new(now: Instant) -> CookieSecret {
        CookieSecret::with_secret(*random_secret(), now)
    }

    /// A given secret (tests, fuzzing).
    pub fn with_secret(secret: [u8; 32], now: Instant) -> CookieSecret {
        CookieSecret {
            current: Zeroizing::new(secret),
            previous: None,
            rotated_at: now,
        }
    }

    /// Rotates if [`COOKIE_ROTATION`] has passed. Called by `make` and `verify`; the listener
    /// may also call it from its timer.
    pub(crate) fn rotate_if_due(&mut self, now: Instant) {
        let age = now.saturating_duration_since(self.rotated_at);
        if age < COOKIE_ROTATION {
            return;
        }
        let old = std::mem::replace(&mut self.current, random_secret());
        // After more than two periods the previous secret is too old to honour as well.
        self.previous = (age < 2 * COOKIE_ROTATION).then_some(old);
        self.rotated_at = now;
    }

    /// The cookie for `from` now.
    pub fn make(&mut self, from: SocketAddr, now: Instant) -> Cookie {
        self.rotate_if_due(now);
        Cookie(mac(&self.current, from))
    }

    /// Whether `cookie` was made for `from` by the current or the previous secret. Constant
    /// time in the cookie bytes.
    pub(crate) fn verify(&mut self, from: SocketAddr, cookie: &Cookie, now: Instant) -> bool {
        self.rotate_if_due(now);
        let ok_now = bool::from(mac(&self.current, from).ct_eq(&cookie.0));
        let ok_before = self
            .previous
            .as_ref()
            .is_some_and(|p| bool::from(mac(p, from).ct_eq(&cookie.0)));
        ok_now | ok_before
    }
}

/// Builds the CookieReply datagram answering attempt `attempt_id`: the clear header (kind 5,
/// flags 0, session id = the attempt id, packet number 0) and the cookie.
pub fn encode_reply(attempt_id: u32, cookie: &Cookie) -> [u8; COOKIE_REPLY_LEN] {
    let mut d = [0u8; COOKIE_REPLY_LEN];
    d[0] = VERSION;
    d[1] = KIND_COOKIE_REPLY;
    d[4..8].copy_from_slice(&attempt_id.to_be_bytes());
    d[HEADER_LEN..].copy_from_slice(&cookie.0);
    d
}

/// Reads a CookieReply datagram: the attempt id it answers and the cookie. The caller must
/// still check that the attempt is live and that it came from the address the attempt went to.
///
/// Reads the clear header itself: kind 5 is not yet a [`crate::protocol::wire::Kind`] variant (see
/// [`KIND_COOKIE_REPLY`]).
pub fn decode_reply(datagram: &[u8]) -> Result<(u32, Cookie), WireError> {
    if datagram.len() < HEADER_LEN {
        return Err(WireError::Truncated);
    }
    if datagram[0] != VERSION {
        return Err(WireError::BadVersion(datagram[0]));
    }
    if datagram[1] != KIND_COOKIE_REPLY {
        return Err(WireError::UnknownKind(datagram[1]));
    }
    if datagram[2..4] != [0, 0] || datagram[8..16] != [0; 8] {
        return Err(WireError::Limit("cookie reply header"));
    }
    let attempt_id = u32::from_be_bytes([datagram[4], datagram[5], datagram[6], datagram[7]]);
    let body = &datagram[HEADER_LEN..];
    if body.len() < COOKIE_LEN {
        return Err(WireError::Truncated);
    }
    if body.len() > COOKIE_LEN {
        return Err(WireError::TrailingBytes);
    }
    let mut c = [0u8; COOKIE_LEN];
    c.copy_from_slice(body);
    Ok((attempt_id, Cookie(c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cookie_binds_the_address_and_port() {
        let t0 = Instant::now();
        let mut s = CookieSecret::with_secret([1; 32], t0);
        let a = addr("192.0.2.7:5000");
        let c = s.make(a, t0);
        assert!(s.verify(a, &c, t0));
        assert!(!s.verify(addr("192.0.2.7:5001"), &c, t0));
        assert!(!s.verify(addr("192.0.2.8:5000"), &c, t0));
        assert!(!s.verify(addr("[::ffff:192.0.2.8]:5000"), &c, t0));
        // The v4 and v4-mapped v6 forms of one address are one source.
        assert!(s.verify(addr("[::ffff:192.0.2.7]:5000"), &c, t0));
        let mut bad = c;
        bad.0[15] ^= 1;
        assert!(!s.verify(a, &bad, t0));
        // Another listener (another secret) does not take it.
        let mut other = CookieSecret::with_secret([2; 32], t0);
        assert!(!other.verify(a, &c, t0));
    }

    #[test]
    fn cookies_live_one_to_two_rotation_periods_on_virtual_time() {
        let t0 = Instant::now();
        let mut s = CookieSecret::with_secret([1; 32], t0);
        let a = addr("[2001:db8::1]:7600");
        let c = s.make(a, t0);
        let almost = t0 + COOKIE_ROTATION - Duration::from_millis(1);
        assert!(s.verify(a, &c, almost));
        // One rotation: the previous secret still honours it.
        let t1 = t0 + COOKIE_ROTATION;
        assert!(s.verify(a, &c, t1));
        let c1 = s.make(a, t1);
        assert_ne!(c1, c, "a new secret makes new cookies");
        // A second rotation: the first cookie is gone, the second still good.
        let t2 = t1 + COOKIE_ROTATION;
        assert!(!s.verify(a, &c, t2));
        assert!(s.verify(a, &c1, t2));
        // After a long idle gap both secrets are replaced at once.
        let t3 = t2 + 10 * COOKIE_ROTATION;
        assert!(!s.verify(a, &c1, t3));
    }

    #[test]
    fn reply_roundtrip_and_limits() {
        let c = Cookie([9; COOKIE_LEN]);
        let d = encode_reply(0xabcd, &c);
        assert_eq!(d.len(), COOKIE_REPLY_LEN);
        assert_eq!(decode_reply(&d), Ok((0xabcd, c)));
        assert_eq!(decode_reply(&d[..d.len() - 1]), Err(WireError::Truncated));
        let mut long = d.to_vec();
        long.push(0);
        assert_eq!(decode_reply(&long), Err(WireError::TrailingBytes));
        let mut wrong = d;
        wrong[1] = 4;
        assert!(decode_reply(&wrong).is_err());
        let mut pn = d;
        pn[15] = 1;
        assert!(decode_reply(&pn).is_err());
    }
}
