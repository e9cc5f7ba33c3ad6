//! Audio in the same session as the video: delivery in order, recovery by parity across
//! packets, giving up by a deadline, priority over video being paced, wrong-role calls and
//! hostile audio datagrams. On virtual time (`common::sim`) except one over real UDP with the
//! `Session` API.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::frame_bytes;
use common::sim::{Sim, addr, passphrase_pair};
use common::udp::bind;
use gstpunktfunk::protocol::security::handshake::Role;
use gstpunktfunk::protocol::wire::{FLAG_SEALED, Header, Kind};
use gstpunktfunk::session::{Config, Error, Event, Mode, Session};
use gstpunktfunk::transport::Transport;

const CAPS: &str = "audio/x-opus, rate=48000, channels=2, channel-mapping-family=0";
const PACKET: Duration = Duration::from_millis(5);

/// Packet `i` of the synthetic stream: 60–160 bytes, content a function of `i`.
fn opus_packet(i: u64) -> Vec<u8> {
    frame_bytes(60 + (i as usize * 37) % 101, i + 1)
}

/// A connected host (0) and client (1) on virtual time, the audio stream announced.
fn connected(seed: u64, host: Config, client: Config) -> Sim {
    let mut sim = Sim::new(seed);
    let h = sim.add(addr(1), host);
    let c = sim.add(addr(2), client);
    assert!(sim.run_until(Duration::from_secs(2), |s| {
        s.saw(c, |e| matches!(e, Event::Connected { .. })) && s.conn(h).is_connected()
    }));
    let now = sim.now;
    sim.conn(h).set_audio_info(now, CAPS).unwrap();
    sim
}

/// Sends packets `seqs`, one every 5 ms, and runs until a second after the last.
fn stream(sim: &mut Sim, seqs: std::ops::Range<u64>) {
    for i in seqs {
        let now = sim.now;
        sim.conn(0)
            .submit_audio(now, &opus_packet(i), i * 5_000, 5_000)
            .unwrap();
        sim.run_for(PACKET);
    }
    sim.run_for(Duration::from_secs(1));
}

/// What the client's audio events say: per sequence number delivered (with `recovered`), and
/// the packets given up (count).
fn audio_outcome(events: &[Event]) -> (Vec<(u64, bool)>, u64) {
    let (mut got, mut lost) = (Vec::new(), 0);
    for e in events {
        match e {
            Event::Audio(p) => {
                assert_eq!(
                    p.data,
                    opus_packet(p.seq),
                    "packet {} not byte-exact",
                    p.seq
                );
                assert_eq!(p.capture_us, p.seq * 5_000);
                assert_eq!(p.duration_us, 5_000);
                got.push((p.seq, p.recovered));
            }
            Event::AudioLost { count, .. } => lost += *count as u64,
            _ => {}
        }
    }
    (got, lost)
}

#[test]
fn audio_arrives_byte_exact_in_order_with_its_info_first() {
    let (h, c) = passphrase_pair();
    let mut sim = connected(1, h, c);
    stream(&mut sim, 0..400);
    let events = sim.take_events(1);
    let info = events
        .iter()
        .position(|e| matches!(e, Event::AudioInfo(c) if c == CAPS));
    let first = events.iter().position(|e| matches!(e, Event::Audio(_)));
    assert!(
        info.is_some() && info < first,
        "AudioInfo must come before the audio"
    );
    let (got, lost) = audio_outcome(&events);
    let seqs: Vec<u64> = got.iter().map(|g| g.0).collect();
    assert_eq!(seqs, (0..400).collect::<Vec<_>>());
    assert_eq!(lost, 0);
    let cs = sim.conn(1).stats();
    assert_eq!(cs.audio_packets_received, 400);
    assert_eq!(cs.audio_packets_lost, 0);
    let hs = sim.conn(0).stats();
    assert_eq!(hs.audio_packets_sent, 400);
    // Blocks of eight 5 ms packets, four parity each (the least) while there is no loss.
    assert_eq!(hs.audio_parity_sent, 400 / 8 * 4);
    assert_eq!(hs.audio_fec_percent, 50);
}

#[test]
fn a_client_that_connects_later_gets_the_audio_info_before_any_audio() {
    let (h, c) = passphrase_pair();
    let mut sim = Sim::new(6);
    let host = sim.add(addr(1), h);
    let now = sim.now;
    sim.conn(host).set_audio_info(now, CAPS).unwrap();
    sim.run_for(Duration::from_millis(100));
    // The first copy of the info to the client is lost: it comes again.
    let mut dropped = false;
    sim.drop_script = Some(Box::new(move |from, bytes| {
        let first_audio = from == 0 && bytes.get(1) == Some(&(Kind::Audio as u8)) && !dropped;
        dropped |= first_audio;
        first_audio
    }));
    let client = sim.add(addr(2), c);
    assert!(sim.run_until(Duration::from_secs(1), |s| {
        s.saw(client, |e| matches!(e, Event::Connected { .. }))
    }));
    // The info's first copy leaves at once, the next 50 ms later; 1 ms of path delay.
    assert!(
        sim.run_until(Duration::from_millis(60), |s| s.saw(client, |e| matches!(
            e,
            Event::AudioInfo(c) if c == CAPS
        ))),
        "no AudioInfo within 60 ms of connecting without audio flowing"
    );
}

#[test]
fn parity_recovers_audio_at_ten_percent_iid_loss() {
    let (h, c) = passphrase_pair();
    let mut sim = connected(2, h, c);
    sim.nodes[0].link.loss = 0.10;
    stream(&mut sim, 0..2_000);
    let events = sim.take_events(1);
    let (got, lost) = audio_outcome(&events);
    // Every packet is accounted for exactly once, in order.
    assert_eq!(got.len() as u64 + lost, 2_000);
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
    let recovered = got.iter().filter(|g| g.1).count() as u64;
    let cs = sim.conn(1).stats();
    assert_eq!(cs.audio_packets_recovered, recovered);
    assert!(recovered > 100, "parity rebuilt only {recovered} packets");
    assert!(
        got.len() >= 1_960,
        "only {} of 2000 played at 10 % loss",
        got.len()
    );
}

#[test]
fn a_burst_longer_than_parity_is_given_up_and_later_packets_still_play() {
    let (h, c) = passphrase_pair();
    let mut sim = connected(3, h, c);
    // The host's audio datagrams in order: the info, data 0-7 (a block of eight 5 ms
    // packets), its first parity, data 8, its second parity, ... Drop the 3rd to 7th: data 1
    // to 5, five losses in a block of four parity.
    let mut audio_seen = 0u32;
    sim.drop_script = Some(Box::new(move |from, bytes| {
        if from != 0 || bytes.get(1) != Some(&(Kind::Audio as u8)) {
            return false;
        }
        audio_seen += 1;
        // The first audio datagram is the info; then the stream.
        (3..8).contains(&audio_seen)
    }));
    stream(&mut sim, 0..40);
    let events = sim.take_events(1);
    let lost_at = events
        .iter()
        .position(|e| matches!(e, Event::AudioLost { .. }))
        .expect("an AudioLost event");
    assert_eq!(
        events[lost_at],
        Event::AudioLost {
            count: 5,
            duration_us: 25_000
        }
    );
    let (got, lost) = audio_outcome(&events);
    assert_eq!(lost, 5);
    let seqs: Vec<u64> = got.iter().map(|g| g.0).collect();
    let want: Vec<u64> = (0..40).filter(|s| !(1..6).contains(s)).collect();
    assert_eq!(seqs, want, "later packets still delivered, in order");
    assert_eq!(sim.conn(1).stats().audio_packets_lost, 5);
}

#[test]
fn audio_leaves_ahead_of_a_keyframe_being_paced() {
    let (h, c) = passphrase_pair();
    let mut sim = connected(4, h, c);
    sim.take_events(1);
    // A keyframe of about 100 datagrams, paced over several milliseconds.
    let key = frame_bytes(130_000, 9);
    let count = sim.send_frame(0, &key, true).expect("peer connected");
    assert!(count >= 100, "{count} datagrams");
    sim.run_for(Duration::from_micros(200));
    let now = sim.now;
    sim.conn(0)
        .submit_audio(now, &opus_packet(0), 0, 5_000)
        .unwrap();
    sim.run_for(Duration::from_millis(100));
    let events = sim.take_events(1);
    let audio = events.iter().position(|e| matches!(e, Event::Audio(_)));
    let frame = events.iter().position(|e| matches!(e, Event::Frame(_)));
    assert!(audio.is_some() && frame.is_some(), "{events:?}");
    assert!(
        audio < frame,
        "the audio packet waited behind the keyframe's datagrams"
    );
}

#[test]
fn malformed_and_forged_audio_datagrams_are_counted_and_dropped() {
    let mut h = Config::new(Role::Host, Mode::Listener);
    h.encrypt = false;
    h.rng_seed = Some(1);
    let mut c = Config::new(Role::Client, Mode::Caller);
    c.peer = Some(addr(1));
    c.encrypt = false;
    c.rng_seed = Some(2);
    let mut sim = connected(5, h, c);
    stream(&mut sim, 0..8);
    let session_id = sim
        .take_events(1)
        .iter()
        .find_map(|e| match e {
            Event::Connected { session_id, .. } => Some(*session_id),
            _ => None,
        })
        .unwrap();
    let bodies: [&[u8]; 5] = [
        &[],
        &[9, 1, 2],
        // A data shard whose record is cut short.
        &[1, 0, 0, 0, 0, 0, 0, 0, 8, 4, 2, 0, 0, 0],
        // Block size beyond the limits.
        &[
            1, 0, 0, 0, 0, 0, 0, 0, 8, 200, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
        // A sequence number far ahead, declaring a huge length.
        &[
            1, 0, 0, 0, 0xff, 0, 0, 0, 0, 4, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
        ],
    ];
    let before = sim.conn(1).stats();
    for (i, body) in bodies.iter().enumerate() {
        let mut d = Header {
            kind: Kind::Audio,
            flags: 0,
            session_id,
            // Ahead of the host's packet numbers but within the replay window, so the real
            // stream goes on after them.
            packet_number: 50_000 + i as u64,
        }
        .to_bytes()
        .to_vec();
        d.extend_from_slice(body);
        let at = sim.now;
        sim.inject_at(at, addr(1), addr(2), d);
    }
    // A forged "sealed" one: fails to open.
    let mut d = Header {
        kind: Kind::Audio,
        flags: FLAG_SEALED,
        session_id,
        packet_number: 60_000,
    }
    .to_bytes()
    .to_vec();
    d.extend_from_slice(&[0u8; 40]);
    let at = sim.now;
    sim.inject_at(at, addr(1), addr(2), d);
    sim.run_for(Duration::from_millis(50));
    let after = sim.conn(1).stats();
    assert_eq!(
        after.audio_datagrams_dropped - before.audio_datagrams_dropped,
        5
    );
    assert!(
        after.auth_failures + after.invalid_datagrams
            > before.auth_failures + before.invalid_datagrams,
        "the forged datagram is counted"
    );
    // The stream goes on.
    stream(&mut sim, 8..16);
    let (got, _) = audio_outcome(&sim.take_events(1));
    assert!(!got.is_empty());
    assert!(sim.conn(1).is_connected());
}

#[test]
fn wrong_role_audio_calls_are_invalid_arg() {
    let host = Session::new(Config::new(Role::Host, Mode::Listener), bind()).unwrap();
    let client = Session::new(Config::client_caller(host.local_addr()), bind()).unwrap();
    assert!(matches!(
        host.poll_audio(Duration::ZERO),
        Err(Error::InvalidArg(_))
    ));
    assert!(matches!(
        client.submit_audio(b"x", 0, 5_000),
        Err(Error::InvalidArg(_))
    ));
    assert!(matches!(
        client.set_audio_info(CAPS),
        Err(Error::InvalidArg(_))
    ));
    // Without a client the host drops and counts.
    host.submit_audio(b"x", 0, 5_000).unwrap();
    assert_eq!(host.stats().audio_packets_dropped_no_peer, 1);
    assert!(matches!(
        host.submit_audio(&[0u8; 1501], 0, 5_000),
        Err(Error::InvalidArg(_))
    ));
}

#[test]
fn audio_over_udp_with_the_session_api_beside_a_video_poller() {
    let mut hc = Config::new(Role::Host, Mode::Listener);
    hc.passphrase = Some("a".into());
    let host_t = bind();
    let host_addr = host_t.local_addr();
    let host = Session::new(hc, host_t).unwrap();
    let mut cc = Config::client_caller(host_addr);
    cc.passphrase = Some("a".into());
    let client = Session::new(cc, bind()).unwrap();
    host.set_audio_info(CAPS).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let pump_host = common::pump(host.clone(), stop.clone());
    // The video thread: takes everything but audio packets.
    let video = {
        let (c, stop) = (client.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut evs = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(Some(e)) = c.poll_frame(Duration::from_millis(10)) {
                    evs.push(e);
                }
            }
            evs
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !host.is_connected() {
        assert!(std::time::Instant::now() < deadline, "no session");
        std::thread::sleep(Duration::from_millis(1));
    }
    let n = 200u64;
    let sender = {
        let h = host.clone();
        std::thread::spawn(move || {
            for i in 0..n {
                h.submit_audio(&opus_packet(i), i * 5_000, 5_000).unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let mut events = Vec::new();
    while events
        .iter()
        .filter(|e| matches!(e, Event::Audio(_)))
        .count()
        < n as usize
    {
        assert!(
            std::time::Instant::now() < deadline,
            "audio missing: {events:?}"
        );
        if let Some(e) = client.poll_audio(Duration::from_millis(20)).unwrap() {
            assert!(
                matches!(
                    e,
                    Event::Audio(_) | Event::AudioLost { .. } | Event::AudioInfo(_)
                ),
                "{e:?}"
            );
            events.push(e);
        }
    }
    sender.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let video_events = video.join().unwrap();
    pump_host.join().unwrap();
    let (got, lost) = audio_outcome(&events);
    assert_eq!(lost, 0);
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        (0..n).collect::<Vec<_>>()
    );
    assert!(
        video_events
            .iter()
            .any(|e| matches!(e, Event::AudioInfo(c) if c == CAPS)),
        "the video poller gets the audio info"
    );
    assert!(!video_events.iter().any(|e| matches!(e, Event::Audio(_))));
    assert_eq!(client.stats().audio_packets_received, n);
}

/// Congestion control counts the audio bytes: a frame leaves with the audio sent since the
/// previous one, so with audio beside the video the estimator's media share (media ÷ wire bytes,
/// what sets the encoder's budget below the path's rate) falls, and the video makes room for it.
#[test]
fn congestion_control_counts_the_audio_bytes_sent_beside_the_video() {
    let share = |with_audio: bool| {
        let (h, c) = passphrase_pair();
        let mut sim = connected(5, h, c);
        for i in 0..120u64 {
            if with_audio {
                for j in 0..3 {
                    let (n, now) = (i * 3 + j, sim.now);
                    sim.conn(0)
                        .submit_audio(now, &opus_packet(n), n * 5_000, 5_000)
                        .unwrap();
                }
            }
            sim.send_frame(0, &frame_bytes(4_000, i + 1), i == 0)
                .expect("peer connected");
            sim.run_for(Duration::from_millis(16));
        }
        sim.conn(0)
            .bandwidth_estimate()
            .expect("congestion control runs")
            .media_share
    };
    let (without, with) = (share(false), share(true));
    assert!(
        with < without * 0.95,
        "media share {without} without audio, {with} with"
    );
}
