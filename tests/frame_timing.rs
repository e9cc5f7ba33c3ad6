//! Frame timing on virtual time: two connections with different host clocks on a simulated
//! network. The clock offset comes from ping/pong (exact on a symmetric path, within RTT/2 on
//! an asymmetric one), and each delivered frame's age splits into encode, host, network and FEC
//! wait exactly as the simulated path made it.

mod common;

use std::time::Duration;

use common::frame_bytes;
use common::sim::{Sim, addr};
use gstpunktfunk::protocol::wire::Kind;
use gstpunktfunk::session::{Config, FrameTimingIn, Stats};

const HOST: usize = 0;
const CLIENT: usize = 1;

/// The host's monotonic clock reads this at the start, the client's [`CLIENT_CLOCK_US`]: the
/// host is ~83 minutes "ahead".
const HOST_CLOCK_US: u64 = 5_000_000_000;
const CLIENT_CLOCK_US: u64 = 1_000_000;
const TRUE_OFFSET_US: i64 = (HOST_CLOCK_US - CLIENT_CLOCK_US) as i64;

/// Capture → the sink had it, on the host.
const ENCODE_US: u64 = 8_000;

/// A host and a client with different clocks, `down` (host → client) and `up` delays, connected
/// and past a few pings.
fn pair(down: Duration, up: Duration) -> Sim {
    let mut h = Config::host_listener();
    let mut c = Config::client_caller(addr(1));
    h.rng_seed = Some(1);
    c.rng_seed = Some(2);
    // A fixed parity share, so the layout of a frame (and the one a test drops) is known, and no
    // repair: a frame completes from what was sent.
    h.fec_mode = gstpunktfunk::protocol::fec::adaptive::FecMode::Fixed;
    h.fec_percent = 20;
    c.repair = false;
    let mut sim = Sim::new(7);
    assert_eq!(sim.add(addr(1), h), HOST);
    assert_eq!(sim.add(addr(2), c), CLIENT);
    let now = sim.now;
    sim.conn(HOST).set_host_clock(now, HOST_CLOCK_US);
    sim.conn(CLIENT).set_host_clock(now, CLIENT_CLOCK_US);
    sim.nodes[HOST].link.delay = down;
    sim.nodes[CLIENT].link.delay = up;
    let ok = sim.run_until(Duration::from_secs(5), |s| {
        s.conn(HOST).is_connected() && s.conn(CLIENT).is_connected()
    });
    assert!(ok, "no session");
    sim.run_for(Duration::from_millis(600));
    sim
}

/// Streams `frames` frames of `len` bytes at 60 fps, each captured [`ENCODE_US`] before the
/// host gets it; returns the client's stats.
fn stream(sim: &mut Sim, len: usize, frames: usize) -> Stats {
    let data = frame_bytes(len, 3);
    for i in 0..frames {
        let now = sim.now;
        let render = sim.conn(HOST).host_clock_us(now);
        let timing = FrameTimingIn {
            capture_us: Some(render - ENCODE_US),
            duration_us: 16_667,
        };
        sim.send_frame_timed(HOST, &data, i == 0, timing)
            .expect("connected");
        sim.run_for(Duration::from_micros(16_667));
    }
    let s = sim.conn(CLIENT).stats();
    assert_eq!(s.frames_received, frames as u64, "every frame delivered");
    s
}

#[test]
fn the_clock_offset_between_two_hosts_is_exact_on_a_symmetric_path() {
    let mut sim = pair(Duration::from_millis(3), Duration::from_millis(3));
    assert_eq!(
        sim.conn(CLIENT).clock_offset(),
        Some((TRUE_OFFSET_US, 3_000))
    );
    let s = stream(&mut sim, 1_000, 50);
    assert_eq!(s.clock_offset_us, Some(TRUE_OFFSET_US));
    assert_eq!(s.clock_offset_uncertainty_us, Some(3_000));
    assert_eq!(s.rtt_us, 6_000, "RTT unchanged by the timestamps");
    let a = s.frame_age;
    assert!(a.frames >= 50 && a.frames <= 61, "{a:?}");
    // One datagram burst: no send span, no parity wait; the path's 3 ms is the network part.
    assert_eq!(a.encode_p50_us, ENCODE_US);
    assert_eq!(a.host_p50_us, 0);
    assert_eq!((a.network_p50_us, a.network_p99_us), (3_000, 3_000));
    assert_eq!((a.fec_wait_p50_us, a.fec_wait_p99_us), (0, 0));
    assert_eq!((a.age_p50_us, a.age_p99_us), (11_000, 11_000));
}

#[test]
fn the_offset_estimate_on_an_asymmetric_path_is_within_half_the_rtt() {
    // 1 ms down, 5 ms up: the estimate is 2 ms off, the bound says 3 ms.
    let mut sim = pair(Duration::from_millis(1), Duration::from_millis(5));
    let (offset, bound) = sim.conn(CLIENT).clock_offset().expect("offset known");
    assert_eq!(bound, 3_000);
    let err = (offset - TRUE_OFFSET_US).unsigned_abs();
    assert!(err <= bound, "error {err} > bound {bound}");
    assert_eq!(err, 2_000);
    // The frame age carries the same error, never more.
    let s = stream(&mut sim, 1_000, 30);
    let true_age = ENCODE_US + 1_000;
    assert!(s.frame_age.age_p50_us.abs_diff(true_age) <= bound);
}

#[test]
fn a_frame_completed_by_parity_shows_its_fec_wait_and_the_parts_add_up() {
    let mut sim = pair(Duration::from_millis(3), Duration::from_millis(3));
    // 48 data shards (a burst of 32 and a chunk of 16) and 10 parity in the next chunk: losing
    // data shard 0 makes every frame wait for its first parity shard.
    let len = 48 * 1_330;
    let per_frame = 58;
    let mut video = 0usize;
    sim.drop_script = Some(Box::new(move |from, bytes| {
        if from != HOST || bytes[1] != Kind::Video as u8 {
            return false;
        }
        video += 1;
        (video - 1).is_multiple_of(per_frame)
    }));
    let s = stream(&mut sim, len, 30);
    assert!(s.fec_recovered >= 30, "{}", s.fec_recovered);
    let a = s.frame_age;
    assert_eq!(a.encode_p50_us, ENCODE_US);
    assert!(a.host_p50_us > 0, "paced: the last data shard leaves later");
    assert_eq!(a.network_p50_us, 3_000);
    assert!(a.fec_wait_p50_us > 0, "{a:?}");
    // Every frame is alike, so the medians add up to the median age exactly.
    assert_eq!(
        a.encode_p50_us + a.host_p50_us + a.network_p50_us + a.fec_wait_p50_us,
        a.age_p50_us
    );
}
