//! Path validation: the host follows a client to a new address only after that address proved
//! it can receive (a PATH_CHALLENGE answered by a PATH_RESPONSE), and until then sends it at
//! most [`AMPLIFICATION_FACTOR`] times the bytes received from it (QUIC's rules, RFC 9000 §8–9).
//!
//! Why: if the host moved its peer address to the source of any authenticated datagram, an
//! on-path attacker could race a copy of a client datagram with a spoofed source and have the
//! video sent there. So:
//!
//! - Only an authenticated datagram whose packet number is the newest seen so far may start a
//!   probe of a new address; an older one (a raced or replayed copy arrives with a number the
//!   real client has already moved past) never does, and a newer datagram from the current
//!   address cancels a probe (the peer is evidently still there).
//! - The probe sends a random 8-byte token in a sealed PATH_CHALLENGE to the new address; only a
//!   PATH_RESPONSE with that token, authenticated and arriving *from that address*, moves the
//!   path. An attacker that only spoofs cannot receive the challenge; one that relays it to the
//!   real client gets the response sent from the client's real address, which does not count.
//! - Media keeps going to the validated address meanwhile.
//! - Forwarding is evidence, not a move (RFC 9000 §9.3.3): an attacker that sees the peer's
//!   datagrams can re-send each from its own address ahead of the original, so its copies carry
//!   the newest numbers and the originals arrive as duplicates. The connection authenticates a
//!   duplicate from the validated (or the previous) address while that can decide something
//!   ([`Path::wants_duplicate`]); the same packet number from two addresses means the other one
//!   forwards: the probe of it is dropped, a move to it is reverted, and it may not start a
//!   probe for [`FORWARDER_HOLD`].
//! - After a move the previous address stays known for [`PREVIOUS_HOLD`] and is challenged
//!   too: its answer, a duplicate from it, or a newer datagram from it moves the path back.
//!
//! Control bodies (inside a sealed Control datagram, kind 17): type 8 PATH_CHALLENGE and type 9
//! PATH_RESPONSE, each followed by the 8-byte token. The peer answers a challenge at once with a
//! response carrying the same token, sent to the address the challenge came from.
//!
//! This module is sans-IO: it keeps addresses, counters and instants; the connection calls it
//! after the replay window committed a datagram and before it sends anything to a peer. It never
//! looks at unauthenticated datagrams.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use crate::protocol::wire::WireError;

/// Control type of a PATH_CHALLENGE body.
pub(crate) const CONTROL_PATH_CHALLENGE: u8 = 8;
/// Control type of a PATH_RESPONSE body.
pub(crate) const CONTROL_PATH_RESPONSE: u8 = 9;
/// Bytes of a path token.
pub(crate) const PATH_TOKEN_LEN: usize = 8;
/// Length of either body.
pub(crate) const PATH_BODY_LEN: usize = 1 + PATH_TOKEN_LEN;

/// Before validation, at most this many bytes are sent to an address per byte received from it.
pub const AMPLIFICATION_FACTOR: u64 = 3;
/// Time between challenges to an address that has not answered.
pub(crate) const CHALLENGE_INTERVAL: Duration = Duration::from_millis(100);
/// Challenges sent before a probe is abandoned (the address stays unvalidated).
pub(crate) const MAX_CHALLENGES: u32 = 5;
/// After a move, how long the previous address can still prove the move spurious (and is
/// challenged meanwhile). A NAT rebinding leaves the old address silent, so this costs nothing.
pub(crate) const PREVIOUS_HOLD: Duration = Duration::from_secs(3);
/// An address caught forwarding the peer's datagrams starts no probe for this long.
pub(crate) const FORWARDER_HOLD: Duration = Duration::from_secs(10);
/// Forwarding addresses remembered at most (the oldest is forgotten first).
const MAX_FORWARDERS: usize = 4;

/// What a datagram did to the path (taken with [`Path::take_change`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathChange {
    /// A challenged address answered: the path moved there.
    Migrated,
    /// The same packet number came from the validated address and the probed one: the probe
    /// is dropped and the prober held off.
    ForwardingDetected,
    /// The previous address proved alive after a move: the path moved back.
    Reverted,
}

/// A PATH_CHALLENGE or PATH_RESPONSE control body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathFrame {
    /// "Answer this token from the address you claim."
    Challenge([u8; PATH_TOKEN_LEN]),
    /// The token of a challenge, echoed.
    Response([u8; PATH_TOKEN_LEN]),
}

impl PathFrame {
    /// The control body.
    pub fn encode(&self) -> [u8; PATH_BODY_LEN] {
        let (t, token) = match self {
            PathFrame::Challenge(t) => (CONTROL_PATH_CHALLENGE, t),
            PathFrame::Response(t) => (CONTROL_PATH_RESPONSE, t),
        };
        let mut b = [0u8; PATH_BODY_LEN];
        b[0] = t;
        b[1..].copy_from_slice(token);
        b
    }

    /// Reads a control body of type 8 or 9. Any other type is `UnknownKind`.
    pub fn decode(body: &[u8]) -> Result<PathFrame, WireError> {
        let (&t, rest) = body.split_first().ok_or(WireError::Truncated)?;
        if t != CONTROL_PATH_CHALLENGE && t != CONTROL_PATH_RESPONSE {
            return Err(WireError::UnknownKind(t));
        }
        if rest.len() < PATH_TOKEN_LEN {
            return Err(WireError::Truncated);
        }
        if rest.len() > PATH_TOKEN_LEN {
            return Err(WireError::TrailingBytes);
        }
        let mut token = [0u8; PATH_TOKEN_LEN];
        token.copy_from_slice(rest);
        Ok(if t == CONTROL_PATH_CHALLENGE {
            PathFrame::Challenge(token)
        } else {
            PathFrame::Response(token)
        })
    }

    /// The answer to a challenge (`None` for a response).
    pub fn answer(&self) -> Option<PathFrame> {
        match *self {
            PathFrame::Challenge(t) => Some(PathFrame::Response(t)),
            PathFrame::Response(_) => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Probe {
    addr: SocketAddr,
    token: [u8; PATH_TOKEN_LEN],
    sent: u32,
    next_send: Instant,
    rx_bytes: u64,
    tx_bytes: u64,
}

impl Probe {
    /// A probe of `addr` with a fresh random token, first challenge due at `now`.
    fn new(addr: SocketAddr, rx_bytes: u64, now: Instant) -> Probe {
        let mut token = [0u8; PATH_TOKEN_LEN];
        // Without OS randomness the handshake could not have run; a zero token would only make
        // this probe guessable.
        let _ = getrandom::fill(&mut token);
        Probe {
            addr,
            token,
            sent: 0,
            next_send: now,
            rx_bytes,
            tx_bytes: 0,
        }
    }
}

/// The peer's validated address and at most one address being probed. See the module docs.
#[derive(Debug, Clone)]
pub struct Path {
    current: SocketAddr,
    newest_pn: Option<u64>,
    probe: Option<Probe>,
    migrations: u64,
    /// The address validated before `current`, until when it may prove the move spurious, and
    /// the challenge that keeps validating it.
    previous: Option<(Probe, Instant)>,
    /// Addresses caught forwarding, and until when they start no probe.
    forwarders: Vec<(SocketAddr, Instant)>,
    change: Option<PathChange>,
}

impl Path {
    /// A path whose address the handshake validated (the peer answered from it, or received
    /// our answer there and sealed a datagram with the new keys).
    pub fn new(validated: SocketAddr) -> Path {
        Path {
            current: validated,
            newest_pn: None,
            probe: None,
            migrations: 0,
            previous: None,
            forwarders: Vec::new(),
            change: None,
        }
    }

    /// Where the peer is: send media here.
    pub fn current(&self) -> SocketAddr {
        self.current
    }

    /// The address being probed, if any.
    #[cfg(test)]
    pub(crate) fn probing(&self) -> Option<SocketAddr> {
        self.probe.as_ref().map(|p| p.addr)
    }

    /// Times the path moved.
    pub fn migrations(&self) -> u64 {
        self.migrations
    }

    /// An authenticated datagram of `len` bytes with packet number `pn` came from `from`. Call
    /// after the replay window committed it.
    pub fn on_authenticated(&mut self, from: SocketAddr, pn: u64, len: usize, now: Instant) {
        let newest = self.newest_pn.is_none_or(|n| pn > n);
        if newest {
            self.newest_pn = Some(pn);
        }
        if let Some(p) = self.probe.as_mut()
            && p.addr == from
        {
            p.rx_bytes += len as u64;
        }
        if from == self.current {
            if newest {
                // The peer is still where it was: whatever raced in from elsewhere is moot.
                self.probe = None;
            }
            return;
        }
        if newest && self.is_previous(from, now) {
            // Newer datagrams on the old path: the move was spurious.
            self.revert(now);
            return;
        }
        if !newest
            || self.probe.as_ref().is_some_and(|p| p.addr == from)
            || self.is_forwarder(from, now)
        {
            return;
        }
        self.probe = Some(Probe::new(from, len as u64, now));
    }

    /// Whether an authenticated copy of an already seen packet number from `from` would be
    /// evidence of forwarding now: it comes from the validated address while another is probed,
    /// or from the previous address after a move. Only then is a duplicate worth opening.
    pub(crate) fn wants_duplicate(&self, from: SocketAddr, now: Instant) -> bool {
        (from == self.current && self.probe.is_some()) || self.is_previous(from, now)
    }

    /// A duplicate packet number authenticated from `from` (see [`Path::wants_duplicate`]): the
    /// number also came from another address, so one of the two forwards the other's datagrams.
    /// The validated (or previous) address wins: it was the peer's before the other appeared.
    pub(crate) fn on_duplicate(&mut self, from: SocketAddr, now: Instant) {
        if from == self.current {
            if let Some(p) = self.probe.take() {
                self.hold_forwarder(p.addr, now);
                self.change = Some(PathChange::ForwardingDetected);
            }
        } else if self.is_previous(from, now) {
            self.revert(now);
        }
    }

    /// What the last datagrams did to the path, once.
    pub(crate) fn take_change(&mut self) -> Option<PathChange> {
        self.change.take()
    }

    fn is_previous(&self, from: SocketAddr, now: Instant) -> bool {
        self.previous
            .as_ref()
            .is_some_and(|(p, until)| p.addr == from && now < *until)
    }

    fn is_forwarder(&self, from: SocketAddr, now: Instant) -> bool {
        self.forwarders
            .iter()
            .any(|(a, until)| *a == from && now < *until)
    }

    fn hold_forwarder(&mut self, addr: SocketAddr, now: Instant) {
        self.forwarders
            .retain(|(a, until)| *a != addr && now < *until);
        if self.forwarders.len() == MAX_FORWARDERS {
            self.forwarders.remove(0);
        }
        self.forwarders.push((addr, now + FORWARDER_HOLD));
    }

    /// Back to the previous address; the one left is held off as a forwarder.
    fn revert(&mut self, now: Instant) {
        let Some((prev, _)) = self.previous.take() else {
            return;
        };
        let left = std::mem::replace(&mut self.current, prev.addr);
        self.hold_forwarder(left, now);
        self.probe = None;
        self.change = Some(PathChange::Reverted);
    }

    /// A PATH_RESPONSE with `token` came, authenticated, from `from` at `now`. Returns true if
    /// the path moved to `from` (see [`Path::take_change`] for a move back).
    pub fn on_path_response(
        &mut self,
        from: SocketAddr,
        token: &[u8; PATH_TOKEN_LEN],
        now: Instant,
    ) -> bool {
        if let Some((prev, _)) = self.previous.as_ref()
            && prev.addr == from
            && bool::from(prev.token.ct_eq(token))
            && self.is_previous(from, now)
        {
            // The old path still answers: the move was spurious.
            self.revert(now);
            return false;
        }
        let Some(p) = self.probe.as_ref() else {
            return false;
        };
        if p.addr != from || !bool::from(p.token.ct_eq(token)) {
            return false;
        }
        let old = std::mem::replace(&mut self.current, from);
        self.probe = None;
        self.migrations += 1;
        // Keep validating the old path: if the peer is still there, this move is undone.
        self.previous = Some((Probe::new(old, 0, now), now + PREVIOUS_HOLD));
        self.change = Some(PathChange::Migrated);
        true
    }

    /// A challenge to send now, if one is due and the address's budget allows it. The caller
    /// seals it as a Control datagram of `sealed_len` bytes, sends it to the returned address
    /// and reports it with [`Path::on_sent`].
    pub fn poll_challenge(
        &mut self,
        now: Instant,
        sealed_len: usize,
    ) -> Option<(SocketAddr, PathFrame)> {
        if let Some((prev, until)) = self.previous.as_mut() {
            if now >= *until {
                self.previous = None;
            } else if prev.sent < MAX_CHALLENGES && now >= prev.next_send {
                // Validated before: no amplification budget applies.
                prev.sent += 1;
                prev.next_send = now + CHALLENGE_INTERVAL;
                return Some((prev.addr, PathFrame::Challenge(prev.token)));
            }
        }
        let p = self.probe.as_mut()?;
        if p.sent >= MAX_CHALLENGES {
            self.probe = None;
            return None;
        }
        if now < p.next_send {
            return None;
        }
        // A turn blocked by the budget counts as a try, so a silent address is given up on.
        p.sent += 1;
        p.next_send = now + CHALLENGE_INTERVAL;
        if p.tx_bytes + sealed_len as u64 > AMPLIFICATION_FACTOR * p.rx_bytes {
            return None;
        }
        Some((p.addr, PathFrame::Challenge(p.token)))
    }

    /// When [`Path::poll_challenge`] may have something next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let prev = self.previous.as_ref().map(|(p, until)| {
            if p.sent < MAX_CHALLENGES {
                p.next_send.min(*until)
            } else {
                *until
            }
        });
        match (self.probe.as_ref().map(|p| p.next_send), prev) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether `len` more bytes may go to `to` now: always to the validated address, within
    /// the anti-amplification budget to the probed one, never elsewhere.
    pub fn may_send(&self, to: SocketAddr, len: usize) -> bool {
        if to == self.current {
            return true;
        }
        self.probe.as_ref().is_some_and(|p| {
            p.addr == to && p.tx_bytes + len as u64 <= AMPLIFICATION_FACTOR * p.rx_bytes
        })
    }

    /// Records `len` bytes sent to `to`.
    pub fn on_sent(&mut self, to: SocketAddr, len: usize) {
        if let Some(p) = self.probe.as_mut()
            && p.addr == to
        {
            p.tx_bytes += len as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEALED: usize = 16 + PATH_BODY_LEN + 16;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn bodies_roundtrip_and_refuse_junk() {
        for f in [PathFrame::Challenge([1; 8]), PathFrame::Response([2; 8])] {
            assert_eq!(PathFrame::decode(&f.encode()), Ok(f));
        }
        assert_eq!(
            PathFrame::Challenge([7; 8]).answer(),
            Some(PathFrame::Response([7; 8]))
        );
        assert_eq!(PathFrame::decode(&[]), Err(WireError::Truncated));
        assert_eq!(PathFrame::decode(&[8, 1, 2]), Err(WireError::Truncated));
        assert_eq!(PathFrame::decode(&[9; 10]), Err(WireError::TrailingBytes));
        assert_eq!(PathFrame::decode(&[3; 9]), Err(WireError::UnknownKind(3)));
    }

    /// An on-path attacker races a copy of a client datagram in from a
    /// spoofed address. The copy is authenticated and may even carry the newest packet number,
    /// but the stream stays on the client's address: the path moves only for a response from
    /// the new address itself, and the client's next datagram cancels the probe.
    #[test]
    fn a_raced_copy_from_a_spoofed_address_does_not_move_the_stream() {
        let t0 = Instant::now();
        let client = a("198.51.100.7:5000");
        let spoofed = a("203.0.113.66:6666");
        let mut p = Path::new(client);
        p.on_authenticated(client, 10, 100, t0);
        // The copy of pn 11 wins the race (the original is then a replay, dropped earlier).
        p.on_authenticated(spoofed, 11, 100, t0);
        assert_eq!(p.current(), client);
        assert_eq!(p.probing(), Some(spoofed));
        let (to, ch) = p
            .poll_challenge(t0, SEALED)
            .expect("challenge the new address");
        assert_eq!(to, spoofed);
        let PathFrame::Challenge(token) = ch else {
            panic!()
        };
        // A relayed challenge answered by the real client arrives from the client's address.
        assert!(!p.on_path_response(client, &token, t0));
        // A guessed token from the spoofed address does not do either.
        let mut wrong = token;
        wrong[0] ^= 1;
        assert!(!p.on_path_response(spoofed, &wrong, t0));
        assert_eq!(p.current(), client);
        // No media to the spoofed address beyond 3× what came from it.
        assert!(!p.may_send(spoofed, 1200));
        assert!(p.may_send(client, 1200));
        // The client's next datagram (newer number, old address) cancels the probe.
        p.on_authenticated(client, 12, 100, t0 + Duration::from_millis(1));
        assert_eq!(p.probing(), None);
        assert!(!p.on_path_response(spoofed, &token, t0));
        assert_eq!(p.current(), client);
        assert_eq!(p.migrations(), 0);
    }

    #[test]
    fn only_the_newest_packet_number_may_start_a_probe() {
        let t0 = Instant::now();
        let client = a("198.51.100.7:5000");
        let other = a("198.51.100.8:5000");
        let mut p = Path::new(client);
        p.on_authenticated(client, 50, 100, t0);
        // Reordered or replayed-from-elsewhere older numbers: nothing happens.
        p.on_authenticated(other, 49, 100, t0);
        p.on_authenticated(other, 3, 100, t0);
        assert_eq!(p.probing(), None);
        assert!(p.poll_challenge(t0, SEALED).is_none());
    }

    #[test]
    fn nat_rebinding_is_followed_after_one_round_trip() {
        let t0 = Instant::now();
        let old = a("192.0.2.1:4000");
        let new = a("192.0.2.1:4001");
        let mut p = Path::new(old);
        p.on_authenticated(old, 1, 60, t0);
        p.on_authenticated(new, 2, 60, t0);
        let (to, PathFrame::Challenge(token)) = p.poll_challenge(t0, SEALED).unwrap() else {
            panic!()
        };
        p.on_sent(to, SEALED);
        // Not due again until the interval passed.
        assert!(p.poll_challenge(t0, SEALED).is_none());
        assert_eq!(p.poll_timeout(), Some(t0 + CHALLENGE_INTERVAL));
        assert!(p.on_path_response(new, &token, t0));
        assert_eq!(p.current(), new);
        assert_eq!(p.migrations(), 1);
        // The old address is now just another unvalidated one.
        assert!(!p.may_send(old, 1));
    }

    #[test]
    fn challenges_stay_within_the_amplification_budget_and_give_up() {
        let t0 = Instant::now();
        let cur = a("192.0.2.1:4000");
        let new = a("192.0.2.9:4000");
        let mut p = Path::new(cur);
        // One small datagram (34 bytes) from the new address: 102 bytes of budget, two
        // challenges of 41 bytes.
        p.on_authenticated(new, 1, 34, t0);
        let mut sent = 0;
        for i in 0..20u64 {
            let now = t0 + CHALLENGE_INTERVAL * i as u32;
            if let Some((to, _)) = p.poll_challenge(now, SEALED) {
                p.on_sent(to, SEALED);
                sent += 1;
            }
        }
        assert_eq!(sent, 2);
        assert_eq!(p.probing(), None, "given up after MAX_CHALLENGES turns");
        // More bytes from it (still newest numbers) extend the budget, up to MAX_CHALLENGES.
        let mut p = Path::new(cur);
        p.on_authenticated(new, 1, 1000, t0);
        let mut sent = 0;
        for i in 0..20u64 {
            let now = t0 + CHALLENGE_INTERVAL * i as u32;
            if let Some((to, _)) = p.poll_challenge(now, SEALED) {
                p.on_sent(to, SEALED);
                sent += 1;
            }
        }
        assert_eq!(sent, MAX_CHALLENGES);
        assert_eq!(p.probing(), None, "abandoned");
        assert_eq!(p.current(), cur);
    }

    /// The forwarding attack: every client datagram arrives first as a copy from the attacker
    /// (newest number) and then as the original from the client (a duplicate). The duplicate
    /// from the validated address ends the probe and holds the attacker off.
    #[test]
    fn the_same_number_from_two_addresses_stops_the_probe_and_holds_the_forwarder_off() {
        let t0 = Instant::now();
        let client = a("198.51.100.7:5000");
        let attacker = a("203.0.113.66:6666");
        let mut p = Path::new(client);
        p.on_authenticated(client, 1, 100, t0);
        p.on_authenticated(attacker, 2, 100, t0);
        assert_eq!(p.probing(), Some(attacker));
        assert!(p.wants_duplicate(client, t0));
        assert!(!p.wants_duplicate(attacker, t0));
        p.on_duplicate(client, t0);
        assert_eq!(p.take_change(), Some(PathChange::ForwardingDetected));
        assert_eq!(p.probing(), None);
        // Its next copies start no probe while it is held off...
        p.on_authenticated(attacker, 3, 100, t0 + Duration::from_secs(1));
        assert_eq!(p.probing(), None);
        assert!(!p.wants_duplicate(client, t0));
        // ...and after the hold it is an address like any other again.
        p.on_authenticated(attacker, 4, 100, t0 + FORWARDER_HOLD);
        assert_eq!(p.probing(), Some(attacker));
        assert_eq!(p.current(), client);
    }

    /// A move the attacker won (its copy of the response came first) is undone by the
    /// original arriving from the old address, and by the old address answering its challenge.
    #[test]
    fn a_spurious_move_is_reverted_by_the_old_path() {
        let t0 = Instant::now();
        let client = a("198.51.100.7:5000");
        let attacker = a("203.0.113.66:6666");
        for by_challenge in [false, true] {
            let mut p = Path::new(client);
            p.on_authenticated(attacker, 5, 1000, t0);
            let (_, PathFrame::Challenge(token)) = p.poll_challenge(t0, SEALED).unwrap() else {
                panic!()
            };
            assert!(p.on_path_response(attacker, &token, t0));
            assert_eq!(p.take_change(), Some(PathChange::Migrated));
            assert_eq!(p.current(), attacker);
            // The old path is challenged too.
            let (to, PathFrame::Challenge(old_token)) = p.poll_challenge(t0, SEALED).unwrap()
            else {
                panic!()
            };
            assert_eq!(to, client);
            if by_challenge {
                // A copy of the answer from the attacker's address does nothing...
                assert!(!p.on_path_response(attacker, &old_token, t0));
                assert_eq!(p.current(), attacker);
                // ...the answer from the old address moves the path back.
                assert!(!p.on_path_response(client, &old_token, t0));
            } else {
                assert!(p.wants_duplicate(client, t0));
                p.on_duplicate(client, t0);
            }
            assert_eq!(p.take_change(), Some(PathChange::Reverted));
            assert_eq!(p.current(), client);
            // The forwarder starts no new probe.
            p.on_authenticated(attacker, 9, 1000, t0);
            assert_eq!(p.probing(), None);
        }
    }

    #[test]
    fn a_real_move_stays_once_the_old_address_is_silent() {
        let t0 = Instant::now();
        let old = a("192.0.2.1:4000");
        let new = a("192.0.2.1:4001");
        let mut p = Path::new(old);
        p.on_authenticated(new, 2, 60, t0);
        let (_, PathFrame::Challenge(token)) = p.poll_challenge(t0, SEALED).unwrap() else {
            panic!()
        };
        assert!(p.on_path_response(new, &token, t0));
        // The old path's challenges stop after MAX_CHALLENGES; its hold ends.
        let mut to_old = 0;
        let mut t = t0;
        while t < t0 + PREVIOUS_HOLD + CHALLENGE_INTERVAL {
            if let Some((to, _)) = p.poll_challenge(t, SEALED) {
                assert_eq!(to, old);
                to_old += 1;
            }
            t += CHALLENGE_INTERVAL / 2;
        }
        assert_eq!(to_old, MAX_CHALLENGES);
        assert_eq!(p.poll_timeout(), None);
        // A late datagram from the old address after the hold is just another address.
        p.on_authenticated(old, 3, 60, t);
        assert_eq!(p.current(), new);
        assert_eq!(p.probing(), Some(old));
    }
}
