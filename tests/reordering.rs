//! Reordering is not loss: a large frame whose datagrams arrive reversed, or shuffled within
//! ~10 ms, is delivered whole with repair on (the default) — no repair rows spent on shards that
//! are merely late, no frame given up while its shards still come. On virtual time
//! (`common::sim`) with the default host and client settings; a path that loses a datagram
//! besides reordering still gets it repaired.
//!
//! Deterministic (seeded ids and shuffles); nothing here reads a wall clock.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use common::frame_bytes;
use common::sim::{Sim, addr, passphrase_pair};
use gstpunktfunk::protocol::media::packetizer::Packetizer;
use gstpunktfunk::protocol::security::handshake::Role;
use gstpunktfunk::protocol::wire::{Header, Kind, TAG_LEN};
use gstpunktfunk::session::{Config, Event, Mode, Stats};
use gstpunktfunk::testkit::rng::Rng;

const HOST: usize = 0;
const CLIENT: usize = 1;
const FRAME_INTERVAL: Duration = Duration::from_micros(16_667);

/// A large frame: 150 data shards at the default mtu (two Reed-Solomon blocks), ~200 kB.
fn large_frame(seed: u64) -> Vec<u8> {
    frame_bytes(150 * Packetizer::max_shard(1400, TAG_LEN) - 300, seed)
}

/// Default settings on both sides (FEC by target, repair on), a passphrase.
fn connected(seed: u64) -> Sim {
    let mut h = Config::new(Role::Host, Mode::Listener);
    h.passphrase = Some("pw".into());
    connected_with(seed, h)
}

/// Connected with the host's config `h` (seeded ids) and the default client.
fn connected_with(seed: u64, mut h: Config) -> Sim {
    h.rng_seed = Some(1);
    let (_, c) = passphrase_pair();
    common::sim::connected(seed, h, c)
}

/// Sends one frame whose video datagrams the path delivers at the times `arrival(position,
/// count)` gives (offsets from now, one-way delay included; `None`: lost). Repair datagrams and
/// everything else take the normal path. Returns the frame's datagram count.
fn send_reordered(
    sim: &mut Sim,
    data: &[u8],
    keyframe: bool,
    mut arrival: impl FnMut(usize, usize) -> Option<Duration>,
) -> usize {
    let held: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    let h = held.clone();
    sim.drop_script = Some(Box::new(move |from, bytes| {
        let video = from == HOST && Header::decode(bytes).is_ok_and(|(h, _)| h.kind == Kind::Video);
        if video {
            h.borrow_mut().push(bytes.to_vec());
        }
        video
    }));
    let count = sim.send_frame(HOST, data, keyframe).expect("connected");
    sim.drop_script = None;
    let held = held.take();
    assert_eq!(held.len(), count);
    let now = sim.now;
    for (k, bytes) in held.into_iter().enumerate() {
        if let Some(after) = arrival(k, count) {
            sim.inject_at(now + after, addr(1), addr(2), bytes);
        }
    }
    count
}

/// Everything the client did with `n` frames sent by `send`, one per frame interval.
struct Outcome {
    delivered: usize,
    lost_events: usize,
    before: Stats,
    after: Stats,
    /// Repair requests caused by each frame (in the interval after it was sent).
    per_frame: Vec<u64>,
}

fn stream(sim: &mut Sim, n: u64, mut send: impl FnMut(&mut Sim, &[u8], bool)) -> Outcome {
    let before = sim.conn(CLIENT).stats();
    let mut sent = Vec::new();
    let mut per_frame = Vec::new();
    for i in 0..n {
        let data = large_frame(1000 + i);
        let asked = sim.conn(CLIENT).stats().repair_requests;
        send(sim, &data, i == 0);
        sim.run_for(FRAME_INTERVAL);
        per_frame.push(sim.conn(CLIENT).stats().repair_requests - asked);
        sent.push(data);
    }
    sim.run_for(Duration::from_millis(100));
    let ev = sim.take_events(CLIENT);
    let frames: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Frame(f) => Some(f),
            _ => None,
        })
        .collect();
    // Every frame delivered is one that was sent, byte-exact, in order.
    let mut next = sent.iter();
    for f in &frames {
        assert!(next.any(|d| f.data == *d), "frame {} differs", f.index);
    }
    Outcome {
        delivered: frames.len(),
        lost_events: ev
            .iter()
            .filter(|e| matches!(e, Event::FramesLost { .. }))
            .count(),
        before,
        after: sim.conn(CLIENT).stats(),
        per_frame,
    }
}

/// One-way delay of the simulated path.
const DELAY: Duration = Duration::from_millis(1);

/// Datagram `k` of `n` arrives last first, the frame spread over `spread` (a proxy that held
/// the frame and releases it backwards): every block's first arrival is its last parity shard.
fn reversed(k: usize, n: usize, spread: Duration) -> Duration {
    DELAY + spread * (n - 1 - k) as u32 / n as u32
}

#[test]
fn a_large_frame_arriving_in_reverse_order_is_delivered_whole_without_repair() {
    let mut sim = connected(51);
    let spread = Duration::from_millis(9);
    let o = stream(&mut sim, 20, |sim, data, kf| {
        send_reordered(sim, data, kf, |k, n| Some(reversed(k, n, spread)));
    });
    assert_eq!(o.delivered, 20, "frames delivered whole");
    assert_eq!(o.lost_events, 0);
    assert_eq!(o.after.frames_lost, o.before.frames_lost);
    assert_eq!(o.after.frames_deadline_lost, o.before.frames_deadline_lost);
    // At most the very first reversed frame costs a request (before any reordering was seen
    // on this session); every later one none.
    let asked = o.after.repair_requests - o.before.repair_requests;
    assert!(asked <= 1, "{asked} repair requests: {:?}", o.per_frame);
    assert!(
        o.per_frame[1..].iter().all(|&r| r == 0),
        "{:?}",
        o.per_frame
    );
    // The client saw the reordering and learnt a window that covers it.
    assert!(o.after.shards_reordered - o.before.shards_reordered > 20 * 140);
    assert!(
        o.after.reorder_window_us >= 4_000,
        "{}",
        o.after.reorder_window_us
    );
}

#[test]
fn on_a_reordering_path_a_frame_that_really_lost_shards_is_still_repaired_in_time() {
    let mut sim = connected(53);
    let spread = Duration::from_millis(9);
    stream(&mut sim, 10, |sim, data, kf| {
        send_reordered(sim, data, kf, |k, n| Some(reversed(k, n, spread)));
    });
    let before = sim.conn(CLIENT).stats();
    assert!(before.reorder_window_us > 0);
    // A reversed frame that also loses 12 data shards of each block: more than its parity.
    let data = large_frame(7);
    let lost = |k: usize| (20..32).contains(&k) || (100..112).contains(&k);
    let sent_at = sim.now;
    send_reordered(&mut sim, &data, false, |k, n| {
        (!lost(k)).then(|| reversed(k, n, spread))
    });
    let ok = sim.run_until(Duration::from_millis(200), |s| {
        s.saw(CLIENT, |e| {
            matches!(e, Event::Frame(_) | Event::FramesLost { .. })
        })
    });
    assert!(ok, "nothing delivered");
    let took = sim.now - sent_at;
    let ev = sim.take_events(CLIENT);
    assert!(
        matches!(&ev[..], [Event::Frame(f)] if f.data == data),
        "{ev:?}"
    );
    let after = sim.conn(CLIENT).stats();
    assert!(after.repair_requests > before.repair_requests);
    assert_eq!(after.frames_repaired - before.frames_repaired, 1);
    assert_eq!(after.frames_lost, before.frames_lost);
    // Asked once the holes outlived the reorder window, repaired one round trip later: well
    // inside the frame's deadline (a frame interval + three rounds, ~32 ms here).
    assert!(took < Duration::from_millis(30), "took {took:?}");
}

#[test]
fn datagrams_shuffled_within_10_ms_are_delivered_whole_with_few_requests() {
    let mut sim = connected(52);
    // Each datagram arrives at its own uniform random time within 10 ms (seeded), frames
    // overlapping their neighbours: reordering within and across frames.
    let mut rng = Rng::new(0x2545_F491_4F6C_DD1D);
    let mut rand = move || rng.next_f64();
    let o = stream(&mut sim, 60, |sim, data, kf| {
        send_reordered(sim, data, kf, |_, _| {
            Some(DELAY + Duration::from_millis(10).mul_f64(rand()))
        });
    });
    assert_eq!(o.delivered, 60, "frames delivered whole");
    assert_eq!(o.lost_events, 0);
    assert_eq!(o.after.frames_lost, o.before.frames_lost);
    // The reordering is learnt within the first frames; after that nothing is asked for.
    let asked = o.after.repair_requests - o.before.repair_requests;
    assert!(asked <= 3, "{asked} repair requests: {:?}", o.per_frame);
    assert!(
        o.per_frame[10..].iter().all(|&r| r == 0),
        "{:?}",
        o.per_frame
    );
}

#[test]
fn a_frame_reordered_beyond_the_learnt_window_is_kept_while_its_shards_come_even_without_repair() {
    let mut h = Config::new(Role::Host, Mode::Listener);
    h.passphrase = Some("pw".into());
    // The host keeps no history: every repair request is answered "not held".
    h.repair_history.max_frames = 0;
    let mut sim = connected_with(54, h);
    stream(&mut sim, 10, |sim, data, kf| {
        send_reordered(sim, data, kf, |k, n| {
            Some(reversed(k, n, Duration::from_millis(6)))
        });
    });
    let before = sim.conn(CLIENT).stats();
    // Now reversed over 24 ms: the holes outlive the learnt window, the client asks, the host
    // has nothing — yet every shard is on its way, and the frame completes from them.
    let data = large_frame(8);
    send_reordered(&mut sim, &data, false, |k, n| {
        Some(reversed(k, n, Duration::from_millis(24)))
    });
    let ok = sim.run_until(Duration::from_millis(200), |s| {
        s.saw(CLIENT, |e| {
            matches!(e, Event::Frame(_) | Event::FramesLost { .. })
        })
    });
    assert!(ok, "nothing delivered");
    let ev = sim.take_events(CLIENT);
    assert!(
        matches!(&ev[..], [Event::Frame(f)] if f.data == data),
        "{ev:?}"
    );
    let after = sim.conn(CLIENT).stats();
    assert!(
        after.repair_requests > before.repair_requests,
        "never asked"
    );
    assert_eq!(after.frames_lost, before.frames_lost);
}

/// A frame overtaken by the next one (its datagrams arrive a few milliseconds after the next
/// frame's first) on a path whose reordering the client has learnt is not asked for whole:
/// both frames are delivered, and no repair request is sent for either.
#[test]
fn a_frame_overtaken_by_the_next_is_not_asked_for_whole() {
    let mut sim = connected(21);
    // A frame delivered backwards over 4 ms teaches the reorder window.
    let data = large_frame(7);
    send_reordered(&mut sim, &data, false, |k, n| {
        Some(reversed(k, n, Duration::from_millis(4)))
    });
    sim.run_for(Duration::from_millis(50));
    assert!(sim.conn(CLIENT).stats().reorder_window_us >= 4_000);
    sim.take_events(CLIENT);
    let before = sim.conn(CLIENT).stats();
    // Frame A's datagrams are held 3 ms; frame B, sent right behind it, arrives first.
    let (a, b) = (frame_bytes(8_000, 1), frame_bytes(8_000, 2));
    send_reordered(&mut sim, &a, false, |_, _| {
        Some(DELAY + Duration::from_millis(3))
    });
    sim.send_frame(HOST, &b, false).expect("connected");
    sim.run_for(Duration::from_millis(50));
    let after = sim.conn(CLIENT).stats();
    let got: Vec<Vec<u8>> = sim
        .take_events(CLIENT)
        .into_iter()
        .filter_map(|e| match e {
            Event::Frame(f) => Some(f.data),
            Event::FramesLost { .. } => panic!("a frame was given up"),
            _ => None,
        })
        .collect();
    assert_eq!(got, [a, b]);
    assert_eq!(after.repair_requests, before.repair_requests);
}
