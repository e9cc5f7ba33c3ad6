//! Security state of a connection: the listener's handshake admission (freshness
//! cache, rate limits, cookies) and its passphrase-guessing budget (an answered hello is charged,
//! a confirmed session refunded: [`crate::protocol::security::guessing`]), the caller's view of refusals
//! (a Reject or a failed key confirmation counts only from the configured peer for a live
//! attempt, and only a series that lasts the connect `timeout` is final), reset tokens of
//! retired sessions, and the host's throttles on what an authenticated client may make it do
//! (keyframe requests, input events: [`HostThrottles`], kept in the host's state).
//!
//! Why here and not in `establish`: `establish` keeps the order of a handshake; this file keeps
//! the limits (including [`MAX_ATTEMPTS`]) and the bookkeeping that make it safe to answer
//! strangers, and never imports from `establish`. Must never: let an
//! unauthenticated datagram end a session or stop a caller on its own, answer a hello with more
//! bytes than it carried before the caller's address is validated, or keep per-source state
//! without a bound.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use crate::protocol::security::bucket::TokenBucket;
use crate::protocol::security::cookie;
use crate::protocol::security::crypto::ResetToken;
use crate::protocol::security::guessing::{Charge, GuessBudget, Refusal};
use crate::protocol::security::handshake::{HandshakeConfig, Responder};
use crate::protocol::security::ratelimit::HandshakeGate;
use crate::protocol::wire::{Kind, RejectReason};

use super::link::Link;
use super::{Connection, Event, Mode, Side};

/// Handshake attempts (caller) and unconfirmed sessions (listener) kept at once.
pub(super) const MAX_ATTEMPTS: usize = 4;
/// Unconfirmed sessions a listener keeps in all; the oldest goes first when full.
pub(super) const MAX_PENDING: usize = 16;
/// Unconfirmed sessions a listener keeps per source address (a caller keeps this many
/// attempts in flight, so a late answer to an earlier retry still completes).
pub(super) const MAX_PENDING_PER_SOURCE: usize = MAX_ATTEMPTS;
/// A caller gives up (reports [`Event::RejectSustained`]) only after this many matching
/// refusals, each for a different live attempt, spanning at least its `Config::timeout` (and at
/// least [`REJECT_SERIES_SPAN`]): forged Rejects while the listener is silent (not started,
/// restarting) end nothing before the caller has heard refusals for its whole timeout.
pub const REJECT_SERIES_COUNT: u32 = 3;
/// The shortest span of a series of refusals that ends a caller (see [`REJECT_SERIES_COUNT`]).
pub const REJECT_SERIES_SPAN: Duration = Duration::from_secs(1);
/// A series with no refusal for this long starts over: longer than a listener's longest
/// guessing back-off ([`crate::protocol::security::guessing::GuessConfig::backoff_max`]), so a caller
/// with a wrong passphrase still sees its series complete.
pub const REJECT_SERIES_GAP: Duration = Duration::from_secs(30);
/// A listener's "too many guesses" event at most this often (the refused hellos are counted;
/// a client with a wrong passphrase retries for as long as it runs).
const GUESS_EVENT_INTERVAL: Duration = Duration::from_secs(5);
/// Sessions a listener remembers after dropping them, to answer their late datagrams with a
/// token-carrying Reset that the peer can believe at once.
const MAX_RETIRED: usize = 4;
/// Host: keyframe requests acted on at most once per this interval (the rest are counted).
pub const KEYFRAME_REQUEST_MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Host: input events taken from one datagram at most (a full datagram of tiny events is
/// ~2,000, each a bus message and an upstream event).
pub const MAX_INPUT_EVENTS_PER_DATAGRAM: usize = 256;
/// Host: input events taken per second at most (token bucket).
pub const INPUT_EVENTS_PER_SECOND: f64 = 4_000.0;
/// Host: input events taken at once at most (two seconds of a 1 kHz mouse with keys; a
/// client's reliable queue sent at once after a stall fits).
pub const INPUT_EVENTS_BURST: f64 = 2_000.0;
/// A listener's "stale hello" event at most this often (replays are counted, not reported).
const STALE_EVENT_INTERVAL: Duration = Duration::from_secs(1);

/// A run of matching refusals seen by a caller.
struct RejectSeries {
    reason: RejectReason,
    first: Instant,
    last: Instant,
    count: u32,
    reported: bool,
}

/// A dropped session whose peer may still be sending.
struct Retired {
    session_id: u32,
    reset_secret: Zeroizing<[u8; 32]>,
    /// Whether we were the caller in it.
    initiator: bool,
}

pub(super) struct Guard {
    /// Unix time in ms at the connection's epoch.
    wall_base_ms: u64,
    /// Listener: freshness and duplicate check of hellos.
    pub(super) responder: Responder,
    /// Listener: rate limits and cookies.
    pub(super) gate: HandshakeGate,
    /// Listener with a passphrase: what answered hellos cost.
    guesses: GuessBudget,
    last_guess_event: Option<Instant>,
    /// Caller: incremented per hello.
    hello_counter: u32,
    rejects: Option<RejectSeries>,
    retired: VecDeque<Retired>,
    last_stale_event: Option<Instant>,
}

/// Host: the throttles on what an authenticated client may make it do.
pub(super) struct HostThrottles {
    last_keyframe_acted: Option<Instant>,
    input_bucket: TokenBucket,
}

impl HostThrottles {
    pub(super) fn new(now: Instant) -> Self {
        HostThrottles {
            last_keyframe_acted: None,
            input_bucket: TokenBucket::new(INPUT_EVENTS_PER_SECOND, INPUT_EVENTS_BURST, now),
        }
    }
}

impl Guard {
    pub(super) fn new(
        hs: &HandshakeConfig,
        cfg: &super::Config,
        now: Instant,
        wall: SystemTime,
    ) -> Guard {
        let wall_base_ms = wall
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Guard {
            wall_base_ms,
            responder: Responder::new(hs.clone()),
            gate: HandshakeGate::new(cfg.rate_limits, now),
            guesses: GuessBudget::new(cfg.rate_limits.guesses, now),
            last_guess_event: None,
            hello_counter: 0,
            rejects: None,
            retired: VecDeque::new(),
            last_stale_event: None,
        }
    }

    /// The next hello counter.
    pub(super) fn next_counter(&mut self) -> u32 {
        self.hello_counter = self.hello_counter.wrapping_add(1);
        self.hello_counter
    }
}

impl Connection {
    /// Unix time in ms at `now` (from the wall clock paired with the epoch at creation).
    pub(super) fn unix_ms(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.epoch).as_millis() as u64;
        self.guard.wall_base_ms.saturating_add(since)
    }

    /// Caller: a refusal (a Reject, or a response that failed key confirmation) that came from
    /// the configured peer for a live attempt. Reported once per reason as a hint; after a
    /// series lasting the connect timeout also as [`Event::RejectSustained`]. Retries go on
    /// either way, but not faster than `handshake_retry`: a listener that refuses is there, so
    /// the fast first retries (meant for a lost hello) would only be refused again.
    pub(super) fn note_refusal(&mut self, reason: RejectReason, now: Instant) {
        self.stats.rejects_received += 1;
        if self.last_reject != Some(reason) {
            self.last_reject = Some(reason);
            self.events.push_back(Event::Rejected { reason });
        }
        let backoff = now + self.cfg.handshake_retry;
        self.next_attempt = Some(self.next_attempt.map_or(backoff, |t| t.max(backoff)));
        let span = self.cfg.timeout.max(REJECT_SERIES_SPAN);
        let s = match self.guard.rejects.as_mut() {
            Some(s)
                if s.reason == reason
                    && now.saturating_duration_since(s.last) < REJECT_SERIES_GAP =>
            {
                s
            }
            _ => self.guard.rejects.insert(RejectSeries {
                reason,
                first: now,
                last: now,
                count: 0,
                reported: false,
            }),
        };
        s.count += 1;
        s.last = now;
        if !s.reported
            && s.count >= REJECT_SERIES_COUNT
            && now.saturating_duration_since(s.first) >= span
        {
            s.reported = true;
            let count = s.count;
            self.events
                .push_back(Event::RejectSustained { reason, count });
        }
    }

    /// A session is up: refusals start over.
    pub(super) fn clear_refusals(&mut self) {
        self.guard.rejects = None;
    }

    /// Caller: a CookieReply. Taken only from the configured peer for a live attempt that has
    /// not taken one yet; the same hello goes out again with the cookie.
    pub(super) fn on_cookie_reply(&mut self, buf: &[u8], from: SocketAddr) {
        let Ok((attempt_id, c)) = cookie::decode_reply(buf) else {
            self.stats.invalid_datagrams += 1;
            return;
        };
        let peer = self.cfg.peer;
        let live = self.cfg.mode == Mode::Caller
            && self.link.is_none()
            && peer == Some(from)
            && self
                .attempts
                .iter()
                .any(|a| a.id == attempt_id && !a.cookie_taken);
        if !live {
            self.stats.rejects_ignored += 1;
            return;
        }
        self.stats.cookie_replies_received += 1;
        let Some(a) = self.attempts.iter_mut().find(|a| a.id == attempt_id) else {
            return;
        };
        a.cookie_taken = true;
        let body = a.initiator.hello_with_cookie(&c);
        let d = super::clear_datagram(Kind::HandshakeInit, attempt_id, &body);
        self.queue(d, from);
        self.stats.handshakes_sent += 1;
    }

    /// Listener: remembers a dropped session so its peer's late datagrams get a Reset it can
    /// verify (and so believe at once).
    pub(super) fn retire(&mut self, link: &Link) {
        if self.guard.retired.len() == MAX_RETIRED {
            self.guard.retired.pop_front();
        }
        self.guard.retired.push_back(Retired {
            session_id: link.session_id,
            reset_secret: link.reset_secret.clone(),
            initiator: link.initiator,
        });
    }

    /// The Reset body for an unknown session id: the token if we retired that session, else
    /// empty (a hint only).
    pub(super) fn reset_body(&self, session_id: u32) -> Vec<u8> {
        self.guard
            .retired
            .iter()
            .rev()
            .find(|r| r.session_id == session_id)
            .map_or_else(Vec::new, |r| {
                ResetToken::make(&r.reset_secret, session_id, r.initiator)
                    .0
                    .to_vec()
            })
    }

    /// Host: whether a keyframe request is acted on now (at most one per
    /// [`KEYFRAME_REQUEST_MIN_INTERVAL`]); the rest are counted.
    pub(super) fn keyframe_request_allowed(&mut self, now: Instant) -> bool {
        let Some(host) = self.side.host_mut() else {
            return false;
        };
        let t = &mut host.throttles;
        let ok = t
            .last_keyframe_acted
            .is_none_or(|t| now.saturating_duration_since(t) >= KEYFRAME_REQUEST_MIN_INTERVAL);
        if ok {
            t.last_keyframe_acted = Some(now);
        } else {
            self.stats.keyframe_requests_throttled += 1;
        }
        ok
    }

    /// Host: takes the input events of one datagram, within the per-datagram and per-second
    /// limits; the excess is counted and dropped (it has been acknowledged: a flood is not
    /// retransmitted).
    pub(super) fn on_input_limited(&mut self, body: &[u8], now: Instant) {
        let Connection {
            side: Side::Host(host),
            events,
            stats,
            ..
        } = self
        else {
            return;
        };
        let host = &mut **host;
        let (input_rx, bucket) = (&mut host.input_rx, &mut host.throttles.input_bucket);
        let mut taken = 0usize;
        let r = input_rx.on_body(body, &mut |ev| {
            if taken < MAX_INPUT_EVENTS_PER_DATAGRAM && bucket.take(now) {
                taken += 1;
                events.push_back(Event::Input(ev));
            } else {
                stats.input_throttled += 1;
            }
        });
        match r {
            Ok(n) => {
                self.stats.input_received += n as u64;
                let next_expected = input_rx.next_expected();
                self.send_control(&crate::protocol::control::Control::InputAck { next_expected });
            }
            Err(_) => self.stats.invalid_datagrams += 1,
        }
    }

    /// Listener: whether a hello from `from` may be answered as far as passphrase guessing
    /// goes. `Ok(None)` without a passphrase (nothing to guess); `Err(())` when the guessing
    /// budget holds it back (counted, and reported at most every [`GUESS_EVENT_INTERVAL`]).
    pub(super) fn guess_admit(
        &mut self,
        from: SocketAddr,
        now: Instant,
    ) -> std::result::Result<Option<Charge>, ()> {
        if self.hs.psk.is_none() {
            return Ok(None);
        }
        match self.guard.guesses.check(from.ip(), now) {
            Ok(c) => Ok(Some(c)),
            Err(refusal) => {
                self.stats.guesses_refused += 1;
                if self
                    .guard
                    .last_guess_event
                    .is_none_or(|t| now.saturating_duration_since(t) >= GUESS_EVENT_INTERVAL)
                {
                    self.guard.last_guess_event = Some(now);
                    let (unconfirmed, global) = match refusal {
                        Refusal::Source { unconfirmed, .. } => (unconfirmed, false),
                        Refusal::Global { unconfirmed } => (unconfirmed, true),
                    };
                    self.events.push_back(Event::HandshakeFailed {
                        from,
                        reason: super::HandshakeFailure::GuessLimit {
                            unconfirmed,
                            global,
                        },
                    });
                }
                Err(())
            }
        }
    }

    /// Listener: `from` has an answer outstanding that was never confirmed (it must prove its
    /// address with a cookie before the next).
    pub(super) fn guess_suspect(&self, from: SocketAddr) -> bool {
        self.hs.psk.is_some() && self.guard.guesses.unconfirmed(from.ip()) > 0
    }

    /// Listener: a hello from `from` was answered (a guess tested, if a passphrase is set).
    pub(super) fn guess_answered(
        &mut self,
        from: SocketAddr,
        charge: Option<Charge>,
        now: Instant,
    ) {
        if let Some(c) = charge {
            self.guard.guesses.answered(from.ip(), c, now);
        }
    }

    /// Listener: a session answered to `from` was confirmed: the caller knew the passphrase.
    pub(super) fn guess_confirmed(&mut self, from: SocketAddr, now: Instant) {
        if self.hs.psk.is_some() {
            self.guard.guesses.confirmed(from.ip(), now);
        }
    }

    /// Listener: a hello was stale or replayed. Counted; reported at most once a second (a
    /// replay flood must not flood the bus).
    pub(super) fn stale_hello(&mut self, from: SocketAddr, now: Instant) {
        self.stats.hellos_stale += 1;
        self.stats.handshake_failures += 1;
        if self
            .guard
            .last_stale_event
            .is_none_or(|t| now.saturating_duration_since(t) >= STALE_EVENT_INTERVAL)
        {
            self.guard.last_stale_event = Some(now);
            self.events.push_back(Event::HandshakeFailed {
                from,
                reason: super::HandshakeFailure::Stale,
            });
        }
    }
}
