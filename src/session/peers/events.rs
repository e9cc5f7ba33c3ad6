//! What the host's peers tell the user, per client: ids on connect and disconnect, input
//! control, keyframe requests coalesced across clients, and one encoder target over all.
//!
//! Owns the translation of each connection's [`Event`]s into [`PeerEvent`]s. With several
//! clients, a client that connects is followed by a [`Event::KeyframeRequest`] of its own
//! (coalesced like any other), so the user asks the encoder on that request, not on
//! `Connected`. Must never let input through from a client that does not control, or ask the
//! encoder for a second keyframe while one asked for another client is on its way.

use std::time::{Duration, Instant};

use crate::session::connection::{BandwidthUpdate, Event, KEYFRAME_PENDING_FOR};

use super::{InputFrom, PeerEvent, PeerId, Peers};

/// A client whose path is below `Config::client_bitrate_floor_bps` makes the encoder send a
/// keyframe at most this often; its other requests are counted as throttled.
pub const SLOW_CLIENT_KEYFRAME_INTERVAL: Duration = Duration::from_secs(2);

impl Peers {
    /// Moves connection `i`'s events into the queue, as the host's.
    pub(super) fn collect(&mut self, i: usize, now: Instant) {
        while let Some(ev) = self.slots[i].conn.poll_event() {
            self.on_event(i, ev, now);
        }
    }

    fn on_event(&mut self, i: usize, ev: Event, now: Instant) {
        let multi = self.is_multi();
        let mut named = self.slots[i].client;
        match &ev {
            Event::Connected { peer, .. } => {
                let id = PeerId(self.next_id);
                self.next_id += 1;
                let slot = &mut self.slots[i];
                slot.client = Some((id, *peer));
                slot.reserved = None;
                slot.bandwidth = None;
                slot.keyframe_at = None;
                slot.budget = None;
                slot.joining = multi;
                named = slot.client;
                if self.cfg.input_from == InputFrom::First && self.controller.is_none() {
                    self.controller = Some(id);
                }
                if multi {
                    // The newcomer cannot decode before a keyframe: ask for one now, coalesced
                    // with a keyframe already on its way for another client.
                    self.push(named, ev);
                    if self.keyframe_wanted(i, now) {
                        self.push(named, Event::KeyframeRequest);
                    }
                    return;
                }
            }
            Event::Disconnected { .. } => {
                if let Some((id, _)) = self.slots[i].client.take() {
                    self.slots[i].bandwidth = None;
                    self.client_left(id);
                }
            }
            Event::Input(_) => {
                if let Some((id, _)) = named
                    && !self.may_send_input(id)
                {
                    self.slots[i].input_dropped += 1;
                    self.counters.input_dropped_watching += 1;
                    return;
                }
            }
            Event::KeyframeRequest if multi && !self.keyframe_wanted(i, now) => return,
            Event::Bandwidth(u) if multi => {
                self.slots[i].bandwidth = Some(u.clone());
                if u.keyframe && self.keyframe_wanted(i, now) {
                    self.push(named, Event::KeyframeRequest);
                }
                if let Some(all) = self.combined_bandwidth() {
                    self.push(None, Event::Bandwidth(all));
                }
                return;
            }
            _ => {}
        }
        self.push(named, ev);
    }

    pub(super) fn push(&mut self, client: Option<(PeerId, std::net::SocketAddr)>, event: Event) {
        self.events.push_back(PeerEvent {
            peer: client.map(|(id, _)| id),
            addr: client.map(|(_, a)| a),
            event,
        });
    }

    /// Whether `id`'s input is taken.
    pub(super) fn may_send_input(&self, id: PeerId) -> bool {
        match self.cfg.input_from {
            InputFrom::All => true,
            InputFrom::First | InputFrom::None => self.controller == Some(id),
        }
    }

    /// Client `id` is gone: with [`InputFrom::First`], control passes to the longest connected
    /// client.
    pub(super) fn client_left(&mut self, id: PeerId) {
        if self.controller != Some(id) {
            return;
        }
        self.controller = match self.cfg.input_from {
            InputFrom::First => self
                .slots
                .iter()
                .filter(|s| s.conn.is_connected())
                .filter_map(|s| s.client.map(|(c, _)| c))
                .filter(|&c| c != id)
                .min(),
            _ => None,
        };
    }

    /// Several clients: whether slot `i`'s keyframe request (each connection already
    /// coalesced its own) is passed on. Not when a keyframe asked for within
    /// [`KEYFRAME_PENDING_FOR`] for any client is not sent yet (it goes to every client), nor
    /// when the client's path is below the floor and it had its keyframe within
    /// [`SLOW_CLIENT_KEYFRAME_INTERVAL`]: a keyframe costs every client, and one that cannot
    /// cross the slow path whole before the next is asked for helps nobody.
    pub(super) fn keyframe_wanted(&mut self, i: usize, now: Instant) -> bool {
        let slow = self.slots[i]
            .bandwidth
            .as_ref()
            .is_some_and(|u| u.target_bitrate_bps < self.cfg.client_bitrate_floor_bps);
        if slow
            && self.slots[i]
                .keyframe_at
                .is_some_and(|t| now.saturating_duration_since(t) < SLOW_CLIENT_KEYFRAME_INTERVAL)
        {
            self.counters.keyframe_requests_throttled += 1;
            return false;
        }
        if self
            .keyframe_asked
            .is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_PENDING_FOR)
        {
            self.counters.keyframe_requests_coalesced += 1;
            return false;
        }
        self.keyframe_asked = Some(now);
        self.slots[i].keyframe_at = Some(now);
        true
    }

    /// Several clients: the encoder target over all clients, the slowest client's but not
    /// below `Config::client_bitrate_floor_bps` (nor above the encoder's own maximum), when it
    /// changed since the last report.
    fn combined_bandwidth(&mut self) -> Option<BandwidthUpdate> {
        let slowest = self
            .slots
            .iter()
            .filter(|s| s.client.is_some())
            .filter_map(|s| s.bandwidth.as_ref())
            .min_by_key(|u| u.target_bitrate_bps)?;
        let mut all = slowest.clone();
        all.keyframe = false;
        let mut floor = self.cfg.client_bitrate_floor_bps;
        if let Some((_, max)) = self.replay.bounds
            && max > 0
        {
            floor = floor.min(max);
        }
        all.target_bitrate_bps = all.target_bitrate_bps.max(floor);
        let key = (all.target_bitrate_bps, all.state);
        if self.last_target == Some(key) {
            return None;
        }
        self.last_target = Some(key);
        Some(all)
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::{Duration, Instant, SystemTime};

    use crate::protocol::congestion::BweState;
    use crate::session::connection::BandwidthUpdate;
    use crate::session::{Config, Event};

    use super::super::{PeerId, Peers};

    fn update(target_bitrate_bps: u64, keyframe: bool) -> Event {
        Event::Bandwidth(BandwidthUpdate {
            state: BweState::Hold,
            estimate_bps: target_bitrate_bps * 11 / 10,
            target_bitrate_bps,
            pacing_rate_bps: 0,
            queue_delay: Duration::ZERO,
            loss: 0.0,
            rtt: Duration::from_millis(10),
            keyframe,
        })
    }

    fn targets(p: &mut Peers) -> Vec<u64> {
        std::iter::from_fn(|| p.events.pop_front())
            .filter_map(|e| match e.event {
                Event::Bandwidth(u) => Some(u.target_bitrate_bps),
                _ => None,
            })
            .collect()
    }

    /// Three clients (ids 1..=3) on a host with a 3 Mbit/s floor.
    fn three() -> (Peers, Instant) {
        let mut cfg = Config::host_listener();
        cfg.max_clients = 3;
        cfg.rng_seed = Some(1);
        cfg.client_bitrate_floor_bps = 3_000_000;
        let now = Instant::now();
        let mut p = Peers::new(cfg, now, SystemTime::now()).unwrap();
        for (i, s) in p.slots.iter_mut().enumerate() {
            s.client = Some((
                PeerId(i as u64 + 1),
                SocketAddr::from(([10, 0, 0, 2], i as u16)),
            ));
        }
        (p, now)
    }

    #[test]
    fn the_encoder_follows_the_slowest_client_down_to_the_floor() {
        let (mut p, now) = three();
        p.on_event(0, update(8_000_000, false), now);
        p.on_event(1, update(6_000_000, false), now);
        assert_eq!(targets(&mut p), [8_000_000, 6_000_000]);
        // A client below the floor does not drag the others below it.
        p.on_event(2, update(1_000_000, false), now);
        assert_eq!(targets(&mut p), [3_000_000]);
        // Unchanged: nothing new to tell the encoder.
        p.on_event(0, update(7_000_000, false), now);
        assert!(targets(&mut p).is_empty());
        // The slow client leaves: the slowest of the others again.
        p.slots[2].client = None;
        p.on_event(0, update(7_000_000, false), now);
        assert_eq!(targets(&mut p), [6_000_000]);
    }

    #[test]
    fn a_client_below_the_floor_gets_a_keyframe_at_most_every_two_seconds() {
        let (mut p, now) = three();
        p.on_event(0, update(8_000_000, false), now);
        p.on_event(2, update(1_000_000, false), now);
        let asked = |p: &mut Peers| {
            let n = p
                .events
                .iter()
                .filter(|e| e.event == Event::KeyframeRequest)
                .count();
            p.events.clear();
            n
        };
        let ms = Duration::from_millis;
        for k in 0..10 {
            p.on_event(2, Event::KeyframeRequest, now + ms(200 * k));
        }
        assert_eq!(asked(&mut p), 1);
        assert_eq!(p.counters.keyframe_requests_throttled, 9);
        p.on_event(2, Event::KeyframeRequest, now + ms(2_000));
        assert_eq!(asked(&mut p), 1);
        // A client above the floor is served at the usual pace meanwhile.
        p.on_event(0, Event::KeyframeRequest, now + ms(2_200));
        assert_eq!(asked(&mut p), 1);
    }

    #[test]
    fn keyframe_hints_of_several_clients_ask_the_encoder_once() {
        let (mut p, now) = three();
        p.on_event(0, update(8_000_000, true), now);
        p.on_event(1, Event::KeyframeRequest, now + Duration::from_millis(5));
        p.on_event(2, update(2_000_000, true), now + Duration::from_millis(9));
        let asked = p
            .events
            .iter()
            .filter(|e| e.event == Event::KeyframeRequest)
            .count();
        assert_eq!(asked, 1);
        assert_eq!(p.counters.keyframe_requests_coalesced, 2);
        // Past the pending window, a new loss asks again.
        p.on_event(1, Event::KeyframeRequest, now + Duration::from_millis(200));
        let asked = p
            .events
            .iter()
            .filter(|e| e.event == Event::KeyframeRequest)
            .count();
        assert_eq!(asked, 2);
    }
}
