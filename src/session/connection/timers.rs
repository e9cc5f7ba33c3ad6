//! Time-driven work: the peer timeout, a caller's handshake retries and connect timeout,
//! keep-alive pings and the RTT they measure, the client's loss reports, input retransmission,
//! the reassembler's give-up window and the host's held keyframe request.
//!
//! [`Connection::poll_timeout`] and [`Connection::handle_timeout`] must agree: every deadline
//! the first reports is one the second acts on, so a driver that sleeps until the reported
//! instant never misses work and never spins. New periodic work (feedback reports, repair
//! deadlines, path probes) adds its deadline to both.

use std::time::{Duration, Instant};

use crate::protocol::control::Control;

use super::{Connection, DisconnectReason, Event, Mode, Side};

/// Bounds on the input retransmission timeout derived from the RTT.
const MIN_RTO: Duration = Duration::from_millis(5);
const MAX_RTO: Duration = Duration::from_millis(500);
const INITIAL_RTO: Duration = Duration::from_millis(50);

fn earliest(a: Option<Instant>, b: Instant) -> Option<Instant> {
    Some(a.map_or(b, |a| a.min(b)))
}

impl Connection {
    /// When [`Connection::handle_timeout`] next has work; `None` when nothing is scheduled
    /// (a listener without a peer, or closed). May lie in the past: then call it at once.
    /// Ask again after every other call.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let cfg = &self.cfg;
        let mut next = None;
        for p in &self.pending {
            next = earliest(next, p.last_rx + cfg.timeout);
        }
        if cfg.mode == Mode::Caller && self.link.is_none() {
            let since = self.connecting_since.unwrap_or(self.epoch);
            if !self.connect_timeout_reported {
                next = earliest(next, since + cfg.timeout);
            }
            if let Some((at, _, _)) = self.hello_copy {
                next = earliest(next, at);
            }
            return earliest(next, self.next_attempt.unwrap_or(since));
        }
        let Some(link) = self.link.as_ref() else {
            return next;
        };
        next = earliest(next, link.last_rx + cfg.timeout);
        next = earliest(next, self.last_ping + cfg.keepalive);
        if let Some(t) = link.path.poll_timeout() {
            next = earliest(next, t);
        }
        if let Some(t) = self.slot_timeout() {
            next = earliest(next, t);
        }
        if link.received == 0 {
            // Fast connect: confirm again until the peer is heard on this session.
            next = earliest(next, self.last_ping + cfg.handshake_first_retry);
        }
        match &self.side {
            Side::Client(c) => {
                next = earliest(next, c.last_loss_report + cfg.loss_report_interval);
                if let Some(t) = c.input_tx.next_timeout(self.rto()) {
                    next = earliest(next, t);
                }
                if let Some(t) = c.reassembler.next_timeout() {
                    next = earliest(next, t);
                }
                if let Some(t) = self.repair_timeout() {
                    next = earliest(next, t);
                }
                if let Some(t) = c.keyframe.next_copy() {
                    next = earliest(next, t);
                }
            }
            Side::Host(h) => {
                if let Some(t) = h.keyframes.held_until() {
                    next = earliest(next, t);
                }
            }
        }
        if let Some(t) = self.congestion_timeout() {
            next = earliest(next, t);
        }
        if let Some(t) = self.audio_timeout() {
            next = earliest(next, t);
        }
        next
    }

    /// Runs every timer due at `now`. Call it when [`Connection::poll_timeout`] has passed
    /// (calling it earlier is harmless), after handling the datagrams that arrived by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        let timeout = self.cfg.timeout;
        if let Some(l) = self.link.as_ref()
            && now.saturating_duration_since(l.last_rx) >= timeout
        {
            self.drop_link(DisconnectReason::Timeout, now);
        }
        let mut expired = Vec::new();
        self.pending.retain(|p| {
            let keep = now.saturating_duration_since(p.last_rx) < timeout;
            if !keep {
                expired.push(p.peer);
            }
            keep
        });
        for from in expired {
            self.unconfirmed(from);
        }
        if self.cfg.mode == Mode::Caller && self.link.is_none() {
            let since = *self.connecting_since.get_or_insert(now);
            if !self.connect_timeout_reported && now.saturating_duration_since(since) >= timeout {
                self.connect_timeout_reported = true;
                self.events.push_back(Event::ConnectTimeout);
            }
            self.send_hello_copy(now);
            if self.next_attempt.is_none_or(|t| now >= t) {
                self.start_attempt(now);
            }
            return;
        }
        if self.link.is_none() {
            return;
        }
        let unconfirmed = self.link.as_ref().is_some_and(|l| l.received == 0);
        let ping_every = if unconfirmed {
            self.cfg.handshake_first_retry.min(self.cfg.keepalive)
        } else {
            self.cfg.keepalive
        };
        if now.saturating_duration_since(self.last_ping) >= ping_every {
            self.send_ping(now);
            if let Some(h) = self.side.host_mut()
                && h.frames_in_session != h.frames_reported
            {
                // What the client compares with the video it got (`stall`); nothing while
                // nothing is sent.
                let frames_sent = h.frames_in_session;
                h.frames_reported = frames_sent;
                self.send_control(&Control::SendProgress { frames_sent });
            }
        }
        self.drive_path(now);
        self.slot_handle_timeout(now);
        match &mut self.side {
            Side::Client(c) => {
                if now.saturating_duration_since(c.last_loss_report)
                    >= self.cfg.loss_report_interval
                {
                    c.last_loss_report = now;
                    let report = Connection::loss_report(c, self.link.as_ref(), now);
                    self.stats.loss_models += 1;
                    self.send_control(&Control::LossReport(report));
                }
                self.send_keyframe_copies(now);
                self.transmit_input(now);
                self.check_repair(now);
                if let Some(c) = self.side.client_mut() {
                    c.reassembler.handle_timeout(now);
                }
                self.drain_reassembler();
            }
            Side::Host(_) => self.keyframe_held_due(now),
        }
        self.handle_congestion_timeout(now);
        self.audio_on_timeout(now);
    }

    /// Sends a ping carrying its send time in the host clock, for the RTT and the clock offset
    /// (and as keep-alive); the pong is handled in `frame_clock`.
    pub(super) fn send_ping(&mut self, now: Instant) {
        self.last_ping = now;
        let t1 = self.host_clock_us(now);
        self.send_control(&Control::Ping { t1 });
    }

    /// Input retransmission timeout from the smoothed RTT.
    pub(super) fn rto(&self) -> Duration {
        match self.srtt {
            Some(s) => (s + s / 4 + Duration::from_millis(2)).clamp(MIN_RTO, MAX_RTO),
            None => INITIAL_RTO,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::protocol::wire::{Header, Kind};
    use crate::session::Config;

    fn caller(now: Instant) -> Connection {
        let mut cfg = Config::client_caller(SocketAddr::from(([127, 0, 0, 1], 9)));
        cfg.rng_seed = Some(5);
        Connection::new(cfg, now).unwrap()
    }

    #[test]
    fn a_caller_says_hello_at_its_first_timeout_and_backs_off_to_the_retry_rate() {
        let t0 = Instant::now();
        let mut c = caller(t0);
        assert_eq!(c.poll_timeout(), Some(t0));
        c.handle_timeout(t0);
        let hello = c.poll_transmit().expect("hello");
        assert_eq!(
            Header::decode(&hello.contents).unwrap().0.kind,
            Kind::HandshakeInit
        );
        assert!(c.poll_transmit().is_none());
        let first = c.config().handshake_first_retry;
        let retry = c.config().handshake_retry;
        // Waits: first, first, then doubling (the time spent trying) up to the retry rate; each
        // hello followed by its byte-identical copy.
        let (mut at, mut last) = (t0, hello.contents);
        let (mut waits, mut copies) = (Vec::new(), 0);
        while waits.len() < 7 {
            let next = c.poll_timeout().unwrap();
            // Early: nothing; on time: the copy or the next hello.
            c.handle_timeout(next - Duration::from_micros(1));
            assert!(c.poll_transmit().is_none());
            c.handle_timeout(next);
            let d = c.poll_transmit().expect("a datagram");
            assert!(c.poll_transmit().is_none());
            if d.contents == last {
                assert_eq!(next - at, super::super::establish::HELLO_COPY_AFTER);
                copies += 1;
                continue;
            }
            waits.push(next - at);
            (at, last) = (next, d.contents);
        }
        assert_eq!(
            waits,
            [first, first, first * 2, first * 4, retry, retry, retry]
        );
        assert_eq!(copies, 7);
        assert_eq!(c.stats().handshakes_sent, 8);
    }

    #[test]
    fn a_closed_connection_has_no_timer_and_ignores_datagrams() {
        let t0 = Instant::now();
        let mut c = caller(t0);
        c.handle_timeout(t0);
        while c.poll_transmit().is_some() {}
        c.close();
        assert_eq!(c.poll_timeout(), None);
        let mut junk = vec![1u8, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 9];
        c.handle_datagram(t0, SocketAddr::from(([127, 0, 0, 1], 9)), &mut junk);
        c.handle_timeout(t0 + Duration::from_secs(60));
        assert!(c.poll_transmit().is_none());
        assert!(c.poll_event().is_none());
        assert_eq!(c.stats().handshake_failures, 0);
    }
}
