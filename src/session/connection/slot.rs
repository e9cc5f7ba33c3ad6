//! The listener's one peer slot: a newcomer does not displace a peer that still answers.
//!
//! When a hello arrives while a session is up, the listener asks the current peer first: a
//! sealed ping in the current session (the probe). If the peer answers (any pong to a ping sent
//! since the probe) within [`probe_timeout`] (a few round trips, [`PEER_PROBE_MIN`] to
//! [`PEER_PROBE_MAX`]), the newcomer is refused with Reject(Busy) and [`Event::PeerRefused`]; a
//! refusal holds for [`PEER_ALIVE_FOR`] without a new probe while the peer keeps talking (a
//! newcomer's retries get Busy at once). If it does not answer, it is presumed gone (a crash, a restart on the same port) and
//! the newcomer's next hello is served as before; its session replaces the old one with
//! [`Event::PeerReplaced`]. Hellos that arrive while the probe runs get no answer then; the
//! newest of them is served when the probe goes unanswered, and the callers' own retries bring
//! the others back (with Busy when the peer answered). `Config::replace_peer` restores the old
//! rule (the last to authenticate wins).
//!
//! Must never: send the newcomer more than one datagram per hello, probe a peer more than once
//! at a time, or keep per-newcomer state beyond one held hello (a hello flood costs one ping
//! per probe, not per hello).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::protocol::wire::{Header, Kind, RejectReason};

use super::clear_datagram;
use super::link::Link;
use super::{Connection, Event};

/// The shortest wait for the current peer's answer (scheduling and a busy receive thread on
/// the peer's side cost more than a LAN round trip).
pub const PEER_PROBE_MIN: Duration = Duration::from_millis(300);
/// The longest wait: a peer that died is replaced within this (plus one handshake).
pub const PEER_PROBE_MAX: Duration = Duration::from_secs(1);
/// Newcomers from other addresses are refused without a new probe for this long after the
/// current peer answered one.
pub const PEER_ALIVE_FOR: Duration = Duration::from_secs(1);
/// Scheduling slack on a keep-alive interval before a peer counts as quiet.
const QUIET_SLACK: Duration = Duration::from_millis(50);
/// A refused newcomer is reported at most once per this interval per address.
const REFUSED_EVENT_INTERVAL: Duration = Duration::from_secs(1);

/// What the listener knows about its current peer's liveness.
#[derive(Debug, Default)]
pub(super) struct PeerSlot {
    /// A probe in flight: the `t1` of its ping and when it is given up.
    probe: Option<(u64, Instant)>,
    /// The newest hello that arrived during the probe, and from where: served at once when the
    /// probe goes unanswered (one datagram, so a flood holds no more).
    held: Option<(Vec<u8>, SocketAddr)>,
    /// When the current peer last answered a probe.
    alive_at: Option<Instant>,
    /// When a probe went unanswered (the peer is presumed gone until heard again).
    dead_at: Option<Instant>,
    last_refused_event: Option<(SocketAddr, Instant)>,
}

/// How long a probe waits for the peer: three round trips on top of [`PEER_PROBE_MIN`], at most
/// [`PEER_PROBE_MAX`].
pub(super) fn probe_timeout(srtt: Option<Duration>) -> Duration {
    (PEER_PROBE_MIN + srtt.unwrap_or_default() * 3).min(PEER_PROBE_MAX)
}

impl Connection {
    /// Listener: whether a hello from `from` (attempt `attempt`) may be answered now. `false`
    /// when it was refused (Busy) or waits for the probe of the current peer.
    pub(super) fn slot_admits(
        &mut self,
        attempt: u32,
        hello: &[u8],
        from: SocketAddr,
        now: Instant,
    ) -> bool {
        if self.cfg.replace_peer {
            return true;
        }
        let Some(l) = self.link.as_ref() else {
            return true;
        };
        if self.slot_presumed_gone(l) {
            return true;
        }
        if self.slot.probe.is_some() {
            self.slot.held = Some((hello.to_vec(), from));
            return false;
        }
        // From the peer's own address a hello means it restarted: always ask afresh. Else an
        // answer counts while it is recent and the peer has kept talking since (a live peer
        // pings every keep-alive interval), so a peer that died right after answering is
        // probed again after one quiet keep-alive, not after the whole interval.
        let heard = now.saturating_duration_since(l.last_rx) < self.cfg.keepalive + QUIET_SLACK;
        let recently_alive = heard
            && self
                .slot
                .alive_at
                .is_some_and(|t| now.saturating_duration_since(t) < PEER_ALIVE_FOR);
        if from != l.peer && recently_alive {
            self.refuse_newcomer(attempt, from, now);
            return false;
        }
        self.stats.peer_probes += 1;
        self.send_ping(now);
        let t1 = self.host_clock_us(now);
        self.slot.probe = Some((t1, now + probe_timeout(self.srtt)));
        self.slot.held = Some((hello.to_vec(), from));
        false
    }

    /// Listener: whether a newly confirmed session may replace the current one.
    pub(super) fn slot_may_replace(&self) -> bool {
        self.cfg.replace_peer
            || self
                .link
                .as_ref()
                .is_none_or(|l| self.slot_presumed_gone(l))
    }

    /// Listener: a newly confirmed session that may not replace the live one is dropped (its
    /// late datagrams get a Reset it can verify; the caller then hears Busy on its next hello).
    pub(super) fn refuse_confirmed(&mut self, link: Link, now: Instant) {
        self.retire(&link);
        self.stats.peers_refused += 1;
        self.refused_event(link.peer, now);
    }

    /// A pong with `t1` came in the current session: answers a probe sent at or before it.
    pub(super) fn slot_on_pong(&mut self, t1: u64, now: Instant) {
        if self.slot.probe.is_some_and(|(sent, _)| t1 >= sent) {
            self.slot.probe = None;
            // The newcomer hears Busy on its next retry.
            self.slot.held = None;
            self.slot.alive_at = Some(now);
            self.slot.dead_at = None;
        }
    }

    /// When an unanswered probe is given up.
    pub(super) fn slot_timeout(&self) -> Option<Instant> {
        self.slot.probe.map(|(_, deadline)| deadline)
    }

    /// Gives up an unanswered probe that is due, and serves the hello held meanwhile.
    pub(super) fn slot_handle_timeout(&mut self, now: Instant) {
        if let Some((_, deadline)) = self.slot.probe
            && now >= deadline
        {
            self.slot.probe = None;
            self.slot.dead_at = Some(now);
            if let Some((hello, from)) = self.slot.held.take()
                && let Ok((h, _)) = Header::decode(&hello)
            {
                self.on_hello(&h, &hello, from, now);
            }
        }
    }

    /// A new session is current: nothing known about it yet.
    pub(super) fn slot_reset(&mut self) {
        let last_refused_event = self.slot.last_refused_event.take();
        self.slot = PeerSlot {
            last_refused_event,
            ..PeerSlot::default()
        };
    }

    /// The current peer left a probe unanswered and has not been heard since.
    fn slot_presumed_gone(&self, l: &Link) -> bool {
        self.slot.dead_at.is_some_and(|t| l.last_rx <= t)
    }

    fn refuse_newcomer(&mut self, attempt: u32, from: SocketAddr, now: Instant) {
        self.stats.peers_refused += 1;
        // 17 bytes against a 192-byte hello, as every Reject.
        let d = clear_datagram(Kind::Reject, attempt, &[RejectReason::Busy as u8]);
        self.queue(d, from);
        self.refused_event(from, now);
    }

    fn refused_event(&mut self, from: SocketAddr, now: Instant) {
        let repeat = self.slot.last_refused_event.is_some_and(|(a, t)| {
            a == from && now.saturating_duration_since(t) < REFUSED_EVENT_INTERVAL
        });
        if !repeat {
            self.slot.last_refused_event = Some((from, now));
            self.events.push_back(Event::PeerRefused { from });
        }
    }
}
