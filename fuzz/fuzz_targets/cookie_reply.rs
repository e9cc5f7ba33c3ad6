//! `cookie::decode_reply` on arbitrary datagrams, and a `HandshakeGate` fed a run of hellos
//! whose source, cookie, load flag and time step come from the fuzz bytes.
//!
//! Checks besides "no panic": an accepted reply re-encodes to the same bytes; a reply is never
//! larger than a hello; the gate's source map stays within its bound; a cookie the gate hands
//! out is accepted for that source and no other.

#![no_main]

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use gstpunktfunk::protocol::security::cookie::{self, COOKIE_REPLY_LEN, Cookie, CookieSecret};
use gstpunktfunk::protocol::security::handshake::HELLO_DATAGRAM_LEN;
use gstpunktfunk::protocol::security::ratelimit::{Admission, HandshakeGate, RateLimitConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((id, c)) = cookie::decode_reply(data) {
        assert_eq!(&cookie::encode_reply(id, &c)[..], data);
        assert!(data.len() <= HELLO_DATAGRAM_LEN);
    }
    assert!(COOKIE_REPLY_LEN <= HELLO_DATAGRAM_LEN);

    let t0 = Instant::now();
    let cfg = RateLimitConfig {
        max_sources: 64,
        ..RateLimitConfig::default()
    };
    let mut gate = HandshakeGate::with_cookie_secret(cfg, CookieSecret::with_secret([9; 32], t0), t0);
    let mut now = t0;
    let mut last_cookie: Option<(SocketAddr, Cookie)> = None;
    for rec in data.chunks_exact(8) {
        now += Duration::from_micros(u64::from(rec[0]) * 97);
        let ip = IpAddr::from([rec[1], rec[2], 0, rec[3] & 7]);
        let from = SocketAddr::new(ip, u16::from_be_bytes([rec[4], rec[5]]));
        let pending_full = rec[6] & 1 != 0;
        let cookie = match (rec[6] >> 1) & 3 {
            0 => None,
            1 => last_cookie.map(|(_, c)| c),
            _ => Some(Cookie([rec[7]; 16])),
        };
        match gate.admit(from, cookie.as_ref(), pending_full, now) {
            Admission::SendCookie(c) => {
                last_cookie = Some((from, c));
                // A cookie just made is good for its source, even under load.
                let a = gate.admit(from, Some(&c), true, now);
                assert!(matches!(a, Admission::Process | Admission::Drop));
            }
            Admission::Process | Admission::Drop => {}
        }
        assert!(gate.tracked_sources() <= 64);
    }
});
