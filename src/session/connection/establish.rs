//! Establishment: hellos and responses, duplicate hellos, rejects, resets, confirmation of a
//! pending session, and installing or dropping the current one.
//!
//! A caller keeps up to [`MAX_ATTEMPTS`] handshakes in flight so a late answer to an earlier
//! retry still completes instead of racing the newer one. A listener keeps as many established
//! but unconfirmed sessions ("pending") and makes one current when the first authenticated
//! datagram of it arrives; the caller confirms at once with a ping. A listener tells a caller
//! whose session it does not know (it restarted) to start again with a clear, rate-limited
//! Reset (with the reset token when it retired that session, see below).
//!
//! Hardening (limits and bookkeeping in `guard`, path validation in `migrate`): the
//! caller's hellos carry its wall-clock time and a counter (handshake v2, `start_at`); the
//! listener peeks at a hello's clear bytes, asks its [`HandshakeGate`] (rate limits, cookies
//! under load) and only then runs the [`Responder`] (freshness window and replay cache before
//! the PAKE). Every answer before confirmation is no larger than the hello. A caller takes a
//! response, Reject or CookieReply only from its configured peer for a live attempt; a failed
//! response keeps the attempt. A Reset is believed at once only with the session's reset token;
//! an empty one only after [`EMPTY_RESET_QUIET_KEEPALIVES`] keep-alive intervals of silence.
//!
//! Must never: let an unauthenticated datagram replace a live session, or answer a hello with
//! more than one datagram. It takes its limits from `guard`, which never imports from here.

use std::net::SocketAddr;
use std::ops::Range;
use std::time::{Duration, Instant};

use crate::protocol::input::{InputReceiver, InputSender};
use crate::protocol::security::cookie;
use crate::protocol::security::crypto::{RESET_TOKEN_LEN, ResetToken};
use crate::protocol::security::handshake::{HandshakeError, HelloParams, Initiator, peek_hello};
use crate::protocol::security::ratelimit::Admission;
use crate::protocol::wire::{HEADER_LEN, Header, Kind, RejectReason};

use super::guard::{MAX_ATTEMPTS, MAX_PENDING, MAX_PENDING_PER_SOURCE};
use super::link::{Link, OpenError};
use super::{
    Connection, DisconnectReason, Event, HandshakeFailure, Mode, Side, body_of, clear_datagram,
};
use crate::protocol::control::Control;

/// A caller believes an empty (token-less) Reset only after this many keep-alive intervals
/// without an authenticated datagram: its own keep-alives went unanswered, so the session is
/// dead already and a forged Reset costs nothing.
pub(super) const EMPTY_RESET_QUIET_KEEPALIVES: u32 = 2;
/// At most one Reset hint per this interval from a listener.
pub(super) const RESET_RATE: Duration = Duration::from_millis(50);
/// A caller sends every hello twice, the byte-identical copy this much later: wider than a
/// loss burst of a few datagrams, shorter than the first retry. The listener answers a
/// duplicate from its cache (no new session, no rate-limit token), so the copy also doubles
/// the chance that an answer gets back through a burst on the way down.
pub(super) const HELLO_COPY_AFTER: Duration = Duration::from_millis(12);

/// A caller's handshake in flight.
pub(super) struct Attempt {
    pub(super) id: u32,
    pub(super) initiator: Initiator,
    /// A CookieReply was taken for it (one per attempt).
    pub(super) cookie_taken: bool,
    /// A refusal was counted for it (one per attempt).
    refused: bool,
}

/// The last hello a listener answered, and the answer.
pub(super) struct LastHello {
    hello: Vec<u8>,
    response: Vec<u8>,
    pub(super) from: SocketAddr,
}

impl Connection {
    /// A listener's answered hello was never confirmed by the caller's first sealed datagram.
    /// With a passphrase that is what a wrong one looks like from here (the PAKE lets the
    /// listener learn nothing else); without one, only loss does it. Reported so the user of
    /// the listener gets a reason, never sent to the peer.
    pub(super) fn unconfirmed(&mut self, from: SocketAddr) {
        self.stats.handshake_failures += 1;
        if self.hs.psk.is_some() {
            self.stats.auth_failures += 1;
            self.stats.confirmations_failed += 1;
        }
        self.events.push_back(Event::HandshakeFailed {
            from,
            reason: HandshakeFailure::Unconfirmed {
                passphrase: self.hs.psk.is_some(),
            },
        });
    }

    pub(super) fn on_hello(&mut self, h: &Header, buf: &[u8], from: SocketAddr, now: Instant) {
        if self.cfg.mode != Mode::Listener {
            self.stats.invalid_datagrams += 1;
            return;
        }
        let body = body_of(buf);
        if let Some(last) = self.last_hello.as_ref()
            && last.from == from
            && last.hello == body
        {
            // A duplicate of the hello we answered, from the same address: answer the same way
            // (no larger than the hello, and no new state).
            let d = last.response.clone();
            self.queue(d, from);
            return;
        }
        // Cheap checks first: layout, then the gate (rate limits, cookies), then the crypto.
        let peek = match peek_hello(body) {
            Ok(p) => p,
            Err(e) => {
                self.stats.handshake_failures += 1;
                self.stats.invalid_datagrams += 1;
                self.events.push_back(Event::HandshakeFailed {
                    from,
                    reason: HandshakeFailure::Malformed(e),
                });
                return;
            }
        };
        // The guessing budget first: a hello it holds back costs no cookie reply and no token
        // of the gate, so a guessing flood cannot crowd out the owner there. A source with an
        // answer outstanding proves its address before the next one: a spoofer can charge an
        // address it does not own at most once.
        let Ok(charge) = self.guess_admit(from, now) else {
            return;
        };
        let prove = self.pending.len() >= MAX_PENDING || self.guess_suspect(from);
        match self
            .guard
            .gate
            .admit(from, peek.cookie.as_ref(), prove, now)
        {
            Admission::Process => {}
            Admission::SendCookie(c) => {
                self.stats.cookies_sent += 1;
                let d = cookie::encode_reply(h.session_id, &c).to_vec();
                self.queue(d, from);
                return;
            }
            Admission::Drop => {
                self.stats.hellos_dropped += 1;
                return;
            }
        }
        // One peer slot: a newcomer waits for, or is refused by, the current peer (`slot`).
        if !self.slot_admits(h.session_id, buf, from, now) {
            return;
        }
        let now_ms = self.unix_ms(now);
        match self.guard.responder.respond(body, now_ms) {
            Ok((est, resp_body)) => {
                let d = clear_datagram(Kind::HandshakeResponse, h.session_id, &resp_body);
                self.last_hello = Some(LastHello {
                    hello: body.to_vec(),
                    response: d.clone(),
                    from,
                });
                self.queue(d, from);
                self.guess_answered(from, charge, now);
                self.add_pending(Link::new(&est, from, now, self.cfg.aead));
            }
            Err(HandshakeError::Stale) => self.stale_hello(from, now),
            Err(e) => {
                self.stats.handshake_failures += 1;
                if matches!(
                    e,
                    HandshakeError::Auth | HandshakeError::Refused(RejectReason::BadPassphrase)
                ) {
                    self.stats.auth_failures += 1;
                }
                self.events.push_back(Event::HandshakeFailed {
                    from,
                    reason: e.into(),
                });
                if let HandshakeError::Refused(reason) = e {
                    // 17 bytes against a 192-byte hello: no amplification.
                    let d = clear_datagram(Kind::Reject, h.session_id, &[reason as u8]);
                    self.queue(d, from);
                }
            }
        }
    }

    /// Listener: keeps an answered session until it is confirmed, at most
    /// [`MAX_PENDING_PER_SOURCE`] per source address and [`MAX_PENDING`] in all, evicting the
    /// oldest (of that source first). Only a source's own evictions are reported: a flood from
    /// many addresses must not flood the user with events.
    fn add_pending(&mut self, link: Link) {
        let from = link.peer;
        let same = self.pending.iter().filter(|p| p.peer == from).count();
        if same >= MAX_PENDING_PER_SOURCE
            && let Some(pos) = self.pending.iter().position(|p| p.peer == from)
        {
            let stale = self.pending.remove(pos);
            self.unconfirmed(stale.peer);
        } else if self.pending.len() >= MAX_PENDING {
            let stale = self.pending.remove(0);
            self.stats.handshake_failures += 1;
            if self.hs.psk.is_some() {
                self.stats.confirmations_failed += 1;
            }
            self.retire(&stale);
        }
        self.pending.push(link);
    }

    pub(super) fn on_response(&mut self, h: &Header, buf: &[u8], from: SocketAddr, now: Instant) {
        if self.cfg.mode != Mode::Caller || self.link.is_some() {
            return;
        }
        let Some(peer) = self.cfg.peer else {
            return;
        };
        let Some(pos) = self.attempts.iter().position(|a| a.id == h.session_id) else {
            self.stats.handshake_failures += 1;
            return;
        };
        if from != peer {
            // Not from where the hello went: a forgery (the attempt id is public).
            self.stats.rejects_ignored += 1;
            return;
        }
        // A failed response keeps the attempt: the real answer may still come.
        match self.attempts[pos].initiator.try_finish(body_of(buf)) {
            Ok(est) => {
                self.attempts.remove(pos);
                let link = Link::new(&est, peer, now, self.cfg.aead);
                self.install(link, now);
            }
            Err(HandshakeError::KeyConfirmation) => {
                // The listener's answer does not confirm our key: its passphrase differs from
                // ours (the PAKE tells nobody else), or someone forged it. A hint; only a
                // sustained series is final (`note_refusal`).
                self.stats.handshake_failures += 1;
                self.stats.auth_failures += 1;
                if !self.attempts[pos].refused {
                    self.attempts[pos].refused = true;
                    self.note_refusal(RejectReason::BadPassphrase, now);
                }
            }
            Err(e) => {
                // A garbled response or a forgery; keep trying.
                self.stats.handshake_failures += 1;
                if e == HandshakeError::Auth {
                    self.stats.auth_failures += 1;
                }
            }
        }
    }

    /// Caller: a Reject. Unauthenticated, so it counts only from the configured peer for a
    /// live attempt, once per attempt; it never stops the caller on its own.
    pub(super) fn on_reject(&mut self, h: &Header, buf: &[u8], from: SocketAddr, now: Instant) {
        if self.cfg.mode != Mode::Caller || self.link.is_some() {
            return;
        }
        let reason = buf.get(HEADER_LEN).map(|&b| RejectReason::from_u8(b));
        let pos = self
            .attempts
            .iter()
            .position(|a| a.id == h.session_id && !a.refused);
        match (reason, pos) {
            (Some(Ok(reason)), Some(pos)) if self.cfg.peer == Some(from) => {
                self.attempts[pos].refused = true;
                self.note_refusal(reason, now);
            }
            _ => self.stats.rejects_ignored += 1,
        }
    }

    /// Caller: a Reset for the current session. With the session's reset token it is believed
    /// at once; an empty one only from the peer's address after the peer went quiet for
    /// [`EMPTY_RESET_QUIET_KEEPALIVES`] keep-alive intervals; anything else is ignored.
    pub(super) fn on_reset(&mut self, h: &Header, buf: &[u8], from: SocketAddr, now: Instant) {
        if self.cfg.mode != Mode::Caller {
            return;
        }
        let Some(l) = self.link.as_ref() else {
            return;
        };
        if l.session_id != h.session_id {
            return;
        }
        let body = body_of(buf);
        let believed = match body.len() {
            RESET_TOKEN_LEN => {
                ResetToken::verify(&l.reset_secret, l.session_id, !l.initiator, body)
            }
            0 => {
                let quiet = self.cfg.keepalive * EMPTY_RESET_QUIET_KEEPALIVES;
                from == l.peer && now.saturating_duration_since(l.last_rx) >= quiet
            }
            _ => false,
        };
        if !believed {
            self.stats.resets_ignored += 1;
            return;
        }
        self.stats.resets_received += 1;
        self.drop_link(DisconnectReason::Replaced, now);
        self.start_attempt(now);
    }

    /// Finds the session of a Video/Control/Input datagram, opens it, and confirms a pending
    /// session by it. Returns the body's range in `buf`, or `None` (counted) when unusable.
    pub(super) fn open_session_datagram(
        &mut self,
        h: &Header,
        buf: &mut [u8],
        from: SocketAddr,
        now: Instant,
    ) -> Option<Range<usize>> {
        let in_link = self
            .link
            .as_ref()
            .is_some_and(|l| l.session_id == h.session_id);
        let pending_pos = if in_link {
            None
        } else {
            self.pending
                .iter()
                .position(|l| l.session_id == h.session_id)
        };
        let link = match pending_pos {
            Some(p) => self.pending.get_mut(p),
            None if in_link => self.link.as_mut(),
            None => {
                self.on_unknown_session(h, from, now);
                return None;
            }
        };
        let link = link?;
        let body = match link.open_datagram(h, buf, from, now) {
            Ok(body) => body,
            Err(OpenError::Invalid) => {
                self.stats.invalid_datagrams += 1;
                return None;
            }
            Err(OpenError::Replay) => {
                self.stats.replays_rejected += 1;
                // A duplicate may have revealed a forwarder (`migrate`).
                self.drive_path(now);
                return None;
            }
            Err(OpenError::Auth) => {
                self.stats.auth_failures += 1;
                return None;
            }
        };
        if let Some(p) = pending_pos {
            // Confirmed: this one becomes the session, the other candidates are dropped.
            let link = self.pending.swap_remove(p);
            self.pending.clear();
            // The passphrase was right, whether or not the slot takes the newcomer.
            self.guess_confirmed(link.peer, now);
            if !self.slot_may_replace() {
                self.refuse_confirmed(link, now);
                return None;
            }
            self.install(link, now);
        }
        Some(body)
    }

    fn on_unknown_session(&mut self, h: &Header, from: SocketAddr, now: Instant) {
        self.stats.unknown_session += 1;
        // Tell a caller whose session we do not know to start again (rate-limited).
        if self.cfg.mode == Mode::Listener
            && self
                .last_reset_sent
                .is_none_or(|t| now.saturating_duration_since(t) >= RESET_RATE)
        {
            self.last_reset_sent = Some(now);
            // The token if we retired that session (believed at once), else empty (a hint).
            let body = self.reset_body(h.session_id);
            let d = clear_datagram(Kind::Reset, h.session_id, &body);
            self.queue(d, from);
        }
    }

    /// Caller: sends the copy of the last hello once it is due.
    pub(super) fn send_hello_copy(&mut self, now: Instant) {
        if self
            .hello_copy
            .as_ref()
            .is_some_and(|(at, _, _)| now >= *at)
            && let Some((_, d, peer)) = self.hello_copy.take()
        {
            self.queue(d, peer);
        }
    }

    /// Caller: sends a new hello (keeping older attempts alive).
    pub(super) fn start_attempt(&mut self, now: Instant) {
        let Some(peer) = self.cfg.peer else {
            return;
        };
        // Also after a failure, so a broken start is retried at the retry rate, not in a spin.
        // Fast connect under loss: the wait doubles from `handshake_first_retry` (it is
        // the time spent trying so far) up to `handshake_retry`, so a lost hello or answer costs
        // tens of milliseconds at first, and an absent listener still sees the retry rate.
        let trying = now.saturating_duration_since(self.connecting_since.unwrap_or(now));
        let wait = trying.clamp(
            self.cfg.handshake_first_retry.min(self.cfg.handshake_retry),
            self.cfg.handshake_retry,
        );
        self.next_attempt = Some(now + wait);
        let params = HelloParams {
            unix_ms: self.unix_ms(now),
            counter: self.guard.next_counter(),
            cookie: None,
        };
        match Initiator::start_at(&self.hs, &params) {
            Ok((initiator, body)) => {
                let id = self.ids.next_u32();
                let d = clear_datagram(Kind::HandshakeInit, id, &body);
                self.hello_copy = Some((now + HELLO_COPY_AFTER, d.clone(), peer));
                self.queue(d, peer);
                self.stats.handshakes_sent += 1;
                if self.attempts.len() == MAX_ATTEMPTS {
                    self.attempts.remove(0);
                }
                self.attempts.push(Attempt {
                    id,
                    initiator,
                    cookie_taken: false,
                    refused: false,
                });
            }
            Err(_) => self.stats.handshake_failures += 1,
        }
    }

    /// Ends the current session (if any) for `reason`; a caller starts trying again.
    pub(super) fn drop_link(&mut self, reason: DisconnectReason, now: Instant) {
        if let Some(l) = self.link.take() {
            self.retire(&l);
            self.stats.packets_lost_before += l.packets_lost();
            self.events.push_back(Event::Disconnected { reason });
            match &mut self.side {
                Side::Host(h) => h.input_rx = InputReceiver::new(),
                Side::Client(c) => c.reassembler.reset(),
            }
            self.attempts.clear();
            self.next_attempt = None;
            self.connecting_since = (self.cfg.mode == Mode::Caller).then_some(now);
            self.connect_timeout_reported = false;
        }
    }

    /// A new session with the peer is confirmed: make it current.
    pub(super) fn install(&mut self, mut link: Link, now: Instant) {
        if let Some(old) = self.link.as_ref().map(|l| l.peer) {
            self.drop_link(DisconnectReason::Replaced, now);
            self.stats.peers_replaced += 1;
            self.events.push_back(Event::PeerReplaced {
                old,
                new: link.peer,
            });
        }
        self.slot_reset();
        let peer = link.peer;
        let session_id = link.session_id;
        let peer_info = link.peer_info.take();
        self.link = Some(link);
        self.attempts.clear();
        self.next_attempt = None;
        self.hello_copy = None;
        self.connecting_since = None;
        self.connect_timeout_reported = false;
        self.last_reject = None;
        self.clear_refusals();
        self.stats.handshakes_completed += 1;
        // Drawn on both sides, so that attempt ids follow the same sequence whatever the role.
        let frame_index = match self.cfg.initial_frame_index {
            Some(i) => i,
            None => self.ids.next_u32(),
        };
        match &mut self.side {
            Side::Host(h) => {
                h.repair.reset();
                h.frames_in_session = 0;
                h.frames_reported = 0;
                h.input_rx = InputReceiver::new();
                h.frame_index = frame_index;
            }
            Side::Client(c) => {
                c.reassembler.reset();
                c.repair.reset();
                c.keyframe.clear();
                c.input_tx = InputSender::new(self.cfg.input_queue);
                c.info_generation = 0;
                c.stall = super::stall::StallWatch::default();
            }
        }
        self.events.push_back(Event::Connected { peer, session_id });
        if let Some(info) = peer_info {
            self.on_stream_info(info);
        }
        // Confirm to the peer at once (a listener waits for this) and start RTT measurement
        // and, with it, a fresh clock offset (the peer may be another host).
        self.reset_clock_offset();
        self.send_ping(now);
        if let Some(h) = self.side.host_mut() {
            h.repeat_info = true;
            if let Some(info) = h.stream_info.clone() {
                self.send_control(&Control::StreamInfo(info));
            }
        }
    }
}
