//! Start-up and recovery over a wide-area path on virtual time (`common::sim`): 30 ms one way,
//! Gilbert-Elliott bursts (enter 2 %, leave 20 %: ≈ 9 % loss in bursts of 5 datagrams) on both
//! directions, a 640x360 stream at 4 Mbit/s and 60 fps (about 6 datagrams a frame).
//!
//! The host side answers `Connected` and `KeyframeRequest` with a keyframe on its next frame, as
//! `punktfunksink` does through the encoder; the client side does what `punktfunksrc` does with
//! its defaults: it drops frames until it has the stream info and a keyframe, and asks for a
//! keyframe when a frame is lost or while it waits for one. "First picture" is the first
//! keyframe the client can show.
//!
//! Deterministic (seeded loss and ids); nothing here reads a wall clock.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use common::frame_bytes;
use common::sim::{Sim, addr};
use gstpunktfunk::session::{Config, Event, KEYFRAME_REQUEST_MIN_INTERVAL};
use gstpunktfunk::testkit::rng::Rng;

const HOST: usize = 0;
const CLIENT: usize = 1;
const FRAME_INTERVAL: Duration = Duration::from_micros(16_667);
/// How often the test looks at events (what the elements' threads do at once).
const STEP: Duration = Duration::from_millis(1);
const ONE_WAY: Duration = Duration::from_millis(30);
const ENTER: f64 = 0.02;
const LEAVE: f64 = 0.2;
/// Delta and key frames of a 4 Mbit/s 640x360 stream at 60 fps with the sink's bounded
/// encoder buffer (keyframes about twice a delta).
const DELTA_LEN: usize = 8_300;
const KEY_LEN: usize = 17_000;
const CAPS: &str = "video/x-h264, stream-format=byte-stream, alignment=au, width=640, height=360";

/// Gilbert-Elliott loss on every datagram, each sender's direction with its own chain,
/// started in its stationary distribution (a session may begin inside a burst).
fn bursts_both_ways(sim: &mut Sim, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut next = move || rng.next_f64();
    let stationary_bad = ENTER / (ENTER + LEAVE);
    let bad = [next() < stationary_bad, next() < stationary_bad];
    let state = Rc::new(RefCell::new((bad, next)));
    sim.drop_script = Some(Box::new(move |from, _| {
        let mut s = state.borrow_mut();
        let (bad, next) = &mut *s;
        let u = next();
        let lost = bad[from];
        bad[from] = if bad[from] { u >= LEAVE } else { u < ENTER };
        lost
    }));
}

/// What the client side has shown so far.
#[derive(Default)]
struct Client {
    caps: bool,
    waiting: bool,
    first_picture: Option<Duration>,
    pictures: u64,
}

/// Host and client (default configurations, the client calling) on the bursty path; the
/// client starts with the host already streaming. Runs `run` of virtual time; returns the
/// client's view and the sim.
fn start(seed: u64, run: Duration) -> (Client, Sim) {
    let mut sim = Sim::new(seed);
    let mut host = Config::host_listener();
    host.rng_seed = Some(seed);
    let mut client = Config::client_caller(addr(1));
    client.rng_seed = Some(seed ^ 0xc11e);
    assert_eq!(sim.add(addr(1), host), HOST);
    sim.conn(HOST).set_stream_info(CAPS).expect("host");
    assert_eq!(sim.add(addr(2), client), CLIENT);
    for n in &mut sim.nodes {
        n.link.delay = ONE_WAY;
    }
    bursts_both_ways(&mut sim, seed);
    let key = frame_bytes(KEY_LEN, seed);
    let delta = frame_bytes(DELTA_LEN, seed + 1);
    let mut c = Client {
        waiting: true,
        ..Client::default()
    };
    let mut want_key = true;
    let mut next_frame = sim.now;
    while sim.elapsed() < run {
        if sim.now >= next_frame {
            next_frame += FRAME_INTERVAL;
            let k = std::mem::take(&mut want_key);
            let sent = sim.send_frame(HOST, if k { &key } else { &delta }, k);
            want_key = k && sent.is_none();
        }
        sim.run_for(STEP);
        for ev in sim.take_events(HOST) {
            if matches!(ev, Event::Connected { .. } | Event::KeyframeRequest) {
                want_key = true;
            }
        }
        let now = sim.now;
        for ev in sim.take_events(CLIENT) {
            match ev {
                Event::StreamInfo(_) => c.caps = true,
                Event::FramesLost { .. } => {
                    c.waiting = true;
                    sim.conn(CLIENT).request_keyframe(now).expect("client");
                }
                Event::Frame(f) => {
                    if f.discont || !c.caps {
                        c.waiting = true;
                    }
                    if !c.caps {
                        continue;
                    }
                    if c.waiting && !f.keyframe {
                        sim.conn(CLIENT).request_keyframe(now).expect("client");
                        continue;
                    }
                    c.waiting = false;
                    c.pictures += 1;
                    c.first_picture.get_or_insert(sim.elapsed());
                }
                _ => {}
            }
        }
    }
    (c, sim)
}

/// Start-up over 400 seeded bursty paths: the first picture within 1 s of the client
/// starting in all but a few runs. Prints the distribution.
#[test]
fn the_first_picture_arrives_within_a_second_through_bursts_both_ways() {
    const RUNS: u64 = 400;
    let mut late = Vec::new();
    let mut firsts: Vec<Duration> = (0..RUNS)
        .map(|seed| {
            let (c, mut sim) = start(seed, Duration::from_millis(1500));
            let first = c.first_picture.unwrap_or(Duration::MAX);
            if first > Duration::from_secs(1) {
                let cs = sim.conn(CLIENT).stats();
                late.push(format!(
                    "seed {seed}: first picture {:?}, {} hellos, {} keyframe requests",
                    c.first_picture, cs.handshakes_sent, cs.keyframe_requests
                ));
            }
            first
        })
        .collect();
    firsts.sort();
    let q = |p: f64| firsts[((RUNS as f64 - 1.0) * p) as usize];
    eprintln!(
        "first picture: p50 {:?} p90 {:?} p99 {:?}; {} of {RUNS} later than 1 s: {late:#?}",
        q(0.5),
        q(0.9),
        q(0.99),
        late.len(),
    );
    assert!(late.len() <= 2, "{late:#?}");
}

/// A keyframe's blocks carry at least half their data shards in parity, whatever the plan for
/// other frames (here the 20 % a session starts with, before any loss report).
#[test]
fn keyframes_carry_at_least_half_their_data_shards_in_parity() {
    let mut sim = Sim::new(3);
    sim.add(addr(1), Config::host_listener());
    sim.add(addr(2), Config::client_caller(addr(1)));
    let ok = sim.run_until(Duration::from_secs(2), |s| s.conn(HOST).is_connected());
    assert!(ok, "no session");
    // More than 16 datagrams: a smaller frame sends its parity behind the next frame, where
    // these counters would find it.
    let data = frame_bytes(KEY_LEN * 2, 7);
    let mut shards = |key: bool| {
        let before = sim.conn(HOST).stats();
        sim.send_frame(HOST, &data, key).expect("connected");
        let after = sim.conn(HOST).stats();
        (
            after.data_shards_sent - before.data_shards_sent,
            after.parity_shards_sent - before.parity_shards_sent,
        )
    };
    let (delta_data, delta_parity) = shards(false);
    let (key_data, key_parity) = shards(true);
    assert_eq!(delta_data, key_data);
    assert!(
        key_parity * 2 >= key_data,
        "{key_parity} parity for {key_data} data shards"
    );
    assert!(key_parity > delta_parity, "{key_parity} vs {delta_parity}");
    sim.run_for(Duration::from_millis(100));
    let delivered = sim
        .take_events(CLIENT)
        .into_iter()
        .filter(|e| matches!(e, Event::Frame(_)))
        .count();
    assert_eq!(delivered, 2);
}

/// What [`recover`] saw: when the host sent keyframes, when the client gave frames up, and when
/// it got keyframes (virtual time since the run started).
#[derive(Default, Debug)]
struct Recovery {
    keyframes_sent: Vec<Duration>,
    lost_at: Vec<Duration>,
    keyframes_delivered: Vec<Duration>,
}

/// Host and client on a clean path of `one_way` each way, the client without repair (so a lost
/// frame is given up and asks for a keyframe), streaming for `run`. The frames that
/// `drop` (by number, counted from the first frame sent, and keyframe flag) are lost whole. The client asks for a keyframe on every loss and on every delta while it waits,
/// with `interval` between requests at the least.
fn recover(
    one_way: Duration,
    interval: Duration,
    drop: impl Fn(u64, bool) -> bool,
    run: Duration,
) -> (Recovery, Sim) {
    let mut sim = Sim::new(5);
    let mut host = Config::host_listener();
    host.rng_seed = Some(5);
    let mut client = Config::client_caller(addr(1));
    client.rng_seed = Some(6);
    client.repair = false;
    client.keyframe_request_interval = interval;
    sim.add(addr(1), host);
    sim.conn(HOST).set_stream_info(CAPS).expect("host");
    sim.add(addr(2), client);
    for n in &mut sim.nodes {
        n.link.delay = one_way;
    }
    let dropping = Rc::new(std::cell::Cell::new(false));
    let d = dropping.clone();
    sim.drop_script = Some(Box::new(move |from, _| from == HOST && d.get()));
    let ok = sim.run_until(Duration::from_secs(2), |s| {
        s.conn(CLIENT).is_connected() && s.conn(HOST).is_connected()
    });
    assert!(ok, "no session");
    let (key, delta) = (frame_bytes(KEY_LEN, 1), frame_bytes(DELTA_LEN, 2));
    let mut r = Recovery::default();
    let (mut want_key, mut waiting, mut n) = (true, true, 0u64);
    let start = sim.now;
    let mut next_frame = sim.now;
    while sim.now - start < run {
        if sim.now >= next_frame {
            next_frame += FRAME_INTERVAL;
            let k = std::mem::take(&mut want_key);
            dropping.set(drop(n, k));
            sim.send_frame(HOST, if k { &key } else { &delta }, k)
                .expect("connected");
            dropping.set(false);
            if k {
                r.keyframes_sent.push(sim.now - start);
            }
            n += 1;
        }
        sim.run_for(STEP);
        let now = sim.now;
        for ev in sim.take_events(HOST) {
            if matches!(ev, Event::KeyframeRequest) {
                want_key = true;
            }
        }
        for ev in sim.take_events(CLIENT) {
            match ev {
                Event::FramesLost { .. } => {
                    r.lost_at.push(now - start);
                    waiting = true;
                    sim.conn(CLIENT).request_keyframe(now).expect("client");
                }
                Event::Frame(f) if f.keyframe => {
                    r.keyframes_delivered.push(now - start);
                    waiting = false;
                }
                Event::Frame(_) if waiting => {
                    sim.conn(CLIENT).request_keyframe(now).expect("client");
                }
                _ => {}
            }
        }
    }
    (r, sim)
}

/// One lost delta, and a client that asks again on every frame it cannot show (each request
/// with its copies) for longer than the host's throttle: the host sends one keyframe for it,
/// and counts the rest as coalesced.
#[test]
fn one_loss_brings_one_keyframe_however_often_the_client_asks() {
    let one_way = Duration::from_millis(60);
    let (r, mut sim) = recover(
        one_way,
        Duration::ZERO,
        |n, _| n == 30,
        Duration::from_secs(1),
    );
    assert_eq!(r.lost_at.len(), 1, "{r:?}");
    // The session's first keyframe, and one for the loss.
    assert_eq!(r.keyframes_sent.len(), 2, "{r:?}");
    let (hs, cs) = (sim.conn(HOST).stats(), sim.conn(CLIENT).stats());
    assert_eq!(hs.keyframe_requests, 1);
    assert!(
        cs.keyframe_requests >= 5,
        "{} requests",
        cs.keyframe_requests
    );
    assert!(
        hs.keyframe_requests_coalesced >= 10,
        "{} coalesced",
        hs.keyframe_requests_coalesced
    );
    // The keyframe ended the wait one round trip and a frame after the loss was seen.
    let waited = r.keyframes_delivered[1] - r.lost_at[0];
    assert!(
        waited <= 2 * one_way + FRAME_INTERVAL + STEP * 2,
        "{waited:?}"
    );
}

/// The keyframe that answers a loss is lost too: the client names it, and the host answers at
/// once, without waiting for its throttle: the next keyframe arrives within one round trip, a
/// frame interval and a datagram's wait of the client giving the first up.
#[test]
fn a_lost_keyframe_is_answered_within_a_round_trip_and_a_frame() {
    let one_way = ONE_WAY;
    // Frame 30 is lost, and so is the keyframe that answers it (the first after the session's).
    let (r, mut sim) = recover(
        one_way,
        Config::client_caller(addr(1)).keyframe_request_interval,
        |n, key| n == 30 || (key && n > 30 && n < 40),
        Duration::from_secs(1),
    );
    assert_eq!(r.lost_at.len(), 2, "{r:?}");
    assert_eq!(r.keyframes_sent.len(), 3, "{r:?}");
    assert!(r.keyframes_delivered.len() >= 2, "{r:?}");
    let waited = r.keyframes_delivered[1] - r.lost_at[1];
    assert!(
        waited <= 2 * one_way + FRAME_INTERVAL + STEP * 2,
        "the second keyframe came {waited:?} after the first was given up: {r:?}"
    );
    assert_eq!(sim.conn(HOST).stats().keyframe_requests, 2);
}

/// A second loss, right after the keyframe that answered the first, is not dropped by the
/// host's throttle: it is held and answered with one keyframe as soon as the throttle allows,
/// without the client asking again.
#[test]
fn a_loss_inside_the_throttle_is_held_and_answered_when_it_ends() {
    // A short path: the second request and both its copies reach the host within 100 ms of
    // the first request.
    let one_way = Duration::from_millis(10);
    // Frame 30 is lost; the keyframe for it is frame 33; frame 34, the delta after it, is lost
    // too.
    let (r, mut sim) = recover(
        one_way,
        Duration::from_secs(10),
        |n, key| !key && (n == 30 || n == 34),
        Duration::from_secs(1),
    );
    assert_eq!(r.lost_at.len(), 2, "{r:?}");
    assert_eq!(r.keyframes_sent.len(), 3, "{r:?}");
    let hs = sim.conn(HOST).stats();
    assert_eq!(hs.keyframe_requests, 2);
    assert!(
        hs.keyframe_requests_throttled >= 1,
        "nothing was held: {r:?}"
    );
    // The first keyframe left a frame after its request at the most; the second one throttle
    // interval after the first request, and a frame.
    let first_asked = r.keyframes_sent[1] - FRAME_INTERVAL;
    let second = r.keyframes_sent[2];
    assert!(
        second <= first_asked + KEYFRAME_REQUEST_MIN_INTERVAL + FRAME_INTERVAL + STEP,
        "{r:?}"
    );
}
