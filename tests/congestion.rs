//! Congestion control through the connection, on virtual time (`common::sim` with a
//! bottleneck on the host's link): the client's feedback reaches the host, the host's estimate
//! converges under a bottleneck, the target bitrate falls and rises with the capacity, the
//! pacing rate follows, and with congestion control off nothing of it happens.
//!
//! The "encoder" here follows [`Event::Bandwidth`]: every frame is `target / 60` bytes
//! (±10 %), as a rate-controlled encoder at 60 fps would send.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::sim::{Bottleneck, Sim, addr};
use gstpunktfunk::protocol::security::handshake::Role;
use gstpunktfunk::session::{Config, Event, Mode};
use gstpunktfunk::testkit::rng::Rng;

const HOST: usize = 0;
const CLIENT: usize = 1;
const FRAME: Duration = Duration::from_nanos(16_666_667);
const MAX_BPS: u64 = 20_000_000;

fn configs(cc: bool) -> (Config, Config) {
    let mut host = Config::new(Role::Host, Mode::Listener);
    host.rng_seed = Some(11);
    host.initial_frame_index = Some(0);
    host.congestion.enabled = cc;
    host.congestion.max_bitrate_bps = MAX_BPS;
    host.congestion.min_bitrate_bps = 500_000;
    let mut client = Config::new(Role::Client, Mode::Caller);
    client.peer = Some(addr(1));
    client.rng_seed = Some(12);
    client.congestion.enabled = cc;
    (host, client)
}

/// A stream through a bottleneck on virtual time, with an encoder that follows the target.
struct Run {
    sim: Sim,
    encoder_bps: u64,
    /// (virtual seconds, frame index) of every frame sent.
    sent: Vec<(f64, u32)>,
    delivered: HashSet<u32>,
    /// (virtual seconds, encoder bitrate) after every update.
    encoder_trace: Vec<(f64, u64)>,
    keyframe_hints: u32,
    next_index: u32,
    rng: Rng,
}

impl Run {
    fn new(cc: bool, rate_bps: u64) -> Run {
        let mut sim = Sim::new(7);
        let (h, c) = configs(cc);
        sim.add(addr(1), h);
        sim.add(addr(2), c);
        sim.nodes[HOST].link.delay = Duration::from_millis(10);
        sim.nodes[HOST].link.bottleneck =
            Some(Bottleneck::new(rate_bps, Duration::from_millis(50)));
        sim.nodes[CLIENT].link.delay = Duration::from_millis(10);
        assert!(
            sim.run_until(Duration::from_secs(2), |s| s.conn(HOST).is_connected()
                && s.conn(CLIENT).is_connected()),
            "no session"
        );
        Run {
            sim,
            encoder_bps: MAX_BPS,
            sent: Vec::new(),
            delivered: HashSet::new(),
            encoder_trace: Vec::new(),
            keyframe_hints: 0,
            next_index: 0,
            rng: Rng::new(0x1234_5678),
        }
    }

    fn secs(&self) -> f64 {
        self.sim.elapsed().as_secs_f64()
    }

    fn jitter(&mut self) -> f64 {
        0.9 + 0.2 * self.rng.next_f64()
    }

    /// Sends one frame per interval for `d`, following the host's bandwidth updates.
    fn run_for(&mut self, d: Duration) {
        let end = self.sim.elapsed() + d;
        while self.sim.elapsed() < end {
            for ev in self.sim.take_events(HOST) {
                if let Event::Bandwidth(u) = ev {
                    self.encoder_bps = u.target_bitrate_bps;
                    self.keyframe_hints += u32::from(u.keyframe);
                    let t = self.secs();
                    self.encoder_trace.push((t, u.target_bitrate_bps));
                }
            }
            for ev in self.sim.take_events(CLIENT) {
                if let Event::Frame(f) = ev {
                    self.delivered.insert(f.index);
                }
            }
            let len = (self.encoder_bps as f64 / 8.0 / 60.0 * self.jitter()) as usize;
            let data = vec![(self.next_index % 251) as u8; len.max(100)];
            if self.sim.send_frame(HOST, &data, false).is_some() {
                let t = self.secs();
                self.sent.push((t, self.next_index));
                self.next_index += 1;
            }
            self.sim.run_for(FRAME);
        }
    }

    /// Fraction of the frames sent in `[from, to)` seconds that were delivered.
    fn delivered_share(&self, from: f64, to: f64) -> f64 {
        let window: Vec<u32> = self
            .sent
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|(_, i)| *i)
            .collect();
        let ok = window.iter().filter(|i| self.delivered.contains(i)).count();
        ok as f64 / window.len().max(1) as f64
    }

    /// The encoder's bitrate at `t` seconds.
    fn encoder_at(&self, t: f64) -> u64 {
        self.encoder_trace
            .iter()
            .take_while(|(at, _)| *at <= t)
            .last()
            .map_or(MAX_BPS, |e| e.1)
    }
}

#[test]
fn under_a_12_mbit_bottleneck_the_target_falls_below_it_frames_flow_and_it_rises_again_at_30() {
    let mut r = Run::new(true, 12_000_000);
    r.run_for(Duration::from_secs(10));

    let s = r.sim.conn(HOST).stats();
    let c = r.sim.conn(CLIENT).stats();
    eprintln!(
        "after 10 s: estimate {} target {} pacing {} state {:?} queue {} us, encoder {}; \
         feedback {} sent / {} received; delivered {:.4} from 2 s; bottleneck drops {}",
        s.bwe_estimate_bps,
        s.bwe_target_bitrate_bps,
        s.bwe_pacing_rate_bps,
        s.bwe_state,
        s.bwe_queue_delay_us,
        r.encoder_bps,
        c.feedback_messages,
        s.feedback_messages,
        r.delivered_share(2.0, 9.5),
        r.sim.nodes[HOST].link.bottleneck.as_ref().unwrap().dropped,
    );
    assert!(c.feedback_messages > 200, "client sends feedback");
    assert!(s.feedback_messages >= c.feedback_messages * 9 / 10);
    assert!(s.bwe_state.is_some());
    // The estimate (wire) converged near the bottleneck; the target (media) fits inside it.
    assert!(
        (9_000_000..=13_000_000).contains(&s.bwe_estimate_bps),
        "estimate {}",
        s.bwe_estimate_bps
    );
    assert!(
        (6_000_000..12_000_000).contains(&r.encoder_bps),
        "encoder {}",
        r.encoder_bps
    );
    // The encoder follows the target (updates are sent for changes of 3 % and more).
    let diff = r.encoder_bps.abs_diff(s.bwe_target_bitrate_bps);
    assert!(
        diff * 100 <= 3 * s.bwe_target_bitrate_bps,
        "encoder {}",
        r.encoder_bps
    );
    // The path limits the stream (the target is below the maximum): pacing follows the
    // estimate.
    assert!(s.bwe_target_bitrate_bps < MAX_BPS);
    assert!(s.bwe_pacing_rate_bps > s.bwe_estimate_bps);
    assert!(s.bwe_pacing_rate_bps < 2 * s.bwe_estimate_bps);
    // The target fell within the first 2 s and the stream is whole from then on.
    assert!(
        r.encoder_at(2.0) < 12_000_000,
        "{:?}",
        &r.encoder_trace[..10]
    );
    let share = r.delivered_share(2.0, 9.5);
    assert!(share >= 0.99, "delivered {share}");

    // Capacity returns: back at the configured maximum within 5 s.
    let rise = r.secs();
    r.sim.nodes[HOST].link.bottleneck.as_mut().unwrap().rate_bps = 30_000_000;
    r.run_for(Duration::from_secs(6));
    let back = r
        .encoder_trace
        .iter()
        .find(|(t, b)| *t >= rise && *b >= MAX_BPS)
        .map(|(t, _)| t - rise);
    eprintln!("back at {MAX_BPS} after {back:?} s");
    assert!(back.is_some_and(|b| b <= 5.0), "back after {back:?}");
    assert_eq!(
        r.encoder_bps, MAX_BPS,
        "the encoder ends exactly at its configured bitrate"
    );
    // It never exceeds the configured maximum.
    assert!(r.encoder_trace.iter().all(|(_, b)| *b <= MAX_BPS));
    // At its maximum on a path with room the stream is not path-limited: the automatic
    // pacer's short bursts again, unless a queue stands or drains right now.
    let s = r.sim.conn(HOST).stats();
    if !matches!(
        s.bwe_state,
        Some(gstpunktfunk::protocol::congestion::BweState::Drain)
            | Some(gstpunktfunk::protocol::congestion::BweState::Hold)
    ) {
        assert_eq!(s.bwe_pacing_rate_bps, 0, "{:?}", s.bwe_state);
    }
    let share = r.delivered_share(rise, rise + 5.5);
    assert!(share >= 0.99, "delivered after the rise {share}");
}

/// Without a known maximum (no encoder found, no `max-bitrate`: a source nobody steers) the
/// estimator runs and reports, but the pacing stays the user's: spreading frames of a source
/// that does not follow the estimate would only add latency.
#[test]
fn without_a_known_maximum_congestion_control_does_not_pace() {
    let mut r = Run::new(true, 12_000_000);
    r.sim.nodes[HOST].conn.set_bitrate_bounds(500_000, 0);
    let mut states = HashSet::new();
    for _ in 0..30 {
        r.run_for(Duration::from_millis(100));
        let s = r.sim.conn(HOST).stats();
        states.extend(s.bwe_state);
        assert_eq!(s.bwe_pacing_rate_bps, 0, "{:?}", s.bwe_state);
    }
    // Not vacuous: the bottleneck was found (the stream started at 20 Mbit/s through 12).
    assert!(
        states.contains(&gstpunktfunk::protocol::congestion::BweState::Drain),
        "{states:?}"
    );
    assert!(!r.encoder_trace.is_empty());
}

#[test]
fn without_congestion_control_nothing_is_reported_and_pacing_stays_automatic() {
    let mut r = Run::new(false, 30_000_000);
    r.run_for(Duration::from_secs(2));
    let s = r.sim.conn(HOST).stats();
    let c = r.sim.conn(CLIENT).stats();
    assert_eq!(c.feedback_messages, 0);
    assert_eq!(s.feedback_messages, 0);
    assert_eq!(s.bwe_state, None);
    assert_eq!(s.bwe_pacing_rate_bps, 0);
    assert!(r.encoder_trace.is_empty(), "no bandwidth events");
    assert!(r.delivered_share(0.5, 1.5) >= 0.99);
}

#[test]
fn a_host_without_congestion_control_ignores_the_clients_feedback() {
    let mut r = Run::new(false, 30_000_000);
    // Only the host is off: the client's feedback arrives and is counted, nothing more.
    r.sim.nodes[CLIENT].conn = {
        let (_, mut c) = configs(true);
        c.rng_seed = Some(13);
        gstpunktfunk::session::Connection::new(c, r.sim.now).unwrap()
    };
    assert!(
        r.sim
            .run_until(Duration::from_secs(5), |s| s.conn(CLIENT).is_connected()),
        "client reconnects"
    );
    r.run_for(Duration::from_secs(2));
    let s = r.sim.conn(HOST).stats();
    assert!(r.sim.conn(CLIENT).stats().feedback_messages > 20);
    assert!(s.feedback_messages > 20);
    assert_eq!(s.bwe_state, None);
    assert!(r.encoder_trace.is_empty());
    assert_eq!(s.invalid_datagrams, 0);
}

/// After a capacity fall the loss comes from the bottleneck's queue: FEC by target does not
/// answer it with more parity than data (parity would only deepen the queue), and the stream
/// keeps flowing.
#[test]
fn after_a_capacity_fall_parity_never_exceeds_the_data() {
    let mut r = Run::new(true, 30_000_000);
    r.run_for(Duration::from_secs(4));
    r.sim.nodes[HOST].link.bottleneck.as_mut().unwrap().rate_bps = 8_000_000;
    let mut worst = 0.0f64;
    let mut windows = Vec::new();
    for _ in 0..16 {
        let before = r.sim.conn(HOST).stats();
        r.run_for(Duration::from_millis(250));
        let after = r.sim.conn(HOST).stats();
        let data = (after.data_shards_sent - before.data_shards_sent) as f64;
        let parity = (after.parity_shards_sent - before.parity_shards_sent) as f64;
        windows.push(format!("{:.2}", parity / data.max(1.0)));
        worst = worst.max(parity / data.max(1.0));
    }
    eprintln!(
        "parity / data per 250 ms after the fall: {}",
        windows.join(" ")
    );
    let drops = r.sim.nodes[HOST].link.bottleneck.as_ref().unwrap().dropped;
    assert!(drops > 0, "the fall overflowed the queue");
    assert!(worst <= 1.0, "parity / data reached {worst:.2}");
    let share = r.delivered_share(6.0, 7.5);
    assert!(share >= 0.95, "delivered {share}");
}
