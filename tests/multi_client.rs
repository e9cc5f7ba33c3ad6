//! Several clients on one host, on virtual time: the client limit (refused before any crypto,
//! a freed slot taken by the next), per-client counters, input permissions and hand-over,
//! keyframe requests coalesced across clients, disconnecting a client.

mod multi_client_net;

use std::time::Duration;

use gstpunktfunk::protocol::input::InputEvent;
use gstpunktfunk::protocol::wire::{Kind, RejectReason};
use gstpunktfunk::session::{Event, InputFrom, PeerId};
use multi_client_net::{Net, host_config};

const MS: Duration = Duration::from_millis(1);
const FRAME: Duration = Duration::from_micros(16_667);

fn frame(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(u32::from(seed)) as u8
        })
        .collect()
}

/// A host for `max` clients with `n` clients at 1, 3, 5, … ms, all connected.
fn net_with(max: usize, n: usize, input_from: InputFrom) -> Net {
    let mut net = Net::new(host_config(max, input_from));
    for i in 0..n {
        net.add_client(MS * (1 + 2 * i as u32));
    }
    let ok = net.run_until(Duration::from_secs(3), |n| {
        (0..n.clients.len()).all(|i| n.connected(i)) && n.host.peers().len() == n.clients.len()
    });
    assert!(ok, "clients did not connect");
    net
}

/// Streams `count` frames at 60 fps (the first a keyframe).
fn stream(net: &mut Net, count: usize) {
    for k in 0..count {
        net.send_frame(&frame(6_000, k as u8), k == 0, &[]);
        net.run_for(FRAME);
    }
}

fn key(code: u32) -> InputEvent {
    InputEvent::Key {
        pressed: true,
        key: "a".into(),
        keycode: code,
        modifiers: 0,
    }
}

fn inputs_at_host(net: &Net) -> Vec<(Option<PeerId>, InputEvent)> {
    net.host_events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Input(i) => Some((e.peer, i.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_client_beyond_the_limit_is_refused_busy_without_a_handshake_and_takes_a_freed_slot() {
    let mut net = net_with(2, 2, InputFrom::First);
    let third = net.add_client(MS);
    net.run_for(Duration::from_millis(500));
    assert!(!net.connected(third));
    // Refused with Busy, and nothing but refusals came back: no handshake answer, no cookie.
    assert!(net.clients[third].events.iter().any(|e| matches!(
        e,
        Event::Rejected {
            reason: RejectReason::Busy
        }
    )));
    assert!(
        net.clients[third]
            .kinds_received
            .iter()
            .all(|k| *k == Kind::Reject),
        "{:?}",
        net.clients[third].kinds_received
    );
    let s = net.host.stats();
    assert!(s.clients_refused >= 3, "{}", s.clients_refused);
    assert_eq!(s.handshakes_completed, 2);
    assert_eq!(s.clients, 2);

    // The first client crashes: its slot frees after `timeout` and the third client gets in.
    net.clients[0].up = false;
    let third_addr = net.clients[third].addr;
    let ok = net.run_until(Duration::from_secs(5), |n| {
        n.host.peers().iter().any(|p| p.addr == third_addr)
    });
    assert!(ok, "the freed slot was not taken");
    assert_eq!(net.host.peers().len(), 2);
    assert!(
        net.host
            .peers()
            .iter()
            .any(|p| p.addr == net.clients[third].addr)
    );
    stream(&mut net, 10);
    assert!(net.frames(third) >= 9, "{}", net.frames(third));
    assert!(net.frames(1) >= 9);
}

#[test]
fn a_client_that_says_bye_frees_its_slot_at_once() {
    let mut net = net_with(2, 2, InputFrom::First);
    let third = net.add_client(MS);
    net.run_for(Duration::from_millis(200));
    assert!(!net.connected(third));
    net.clients[1].conn.close();
    let started = net.now;
    let ok = net.run_until(Duration::from_secs(2), |n| n.connected(third));
    assert!(ok);
    // Within the caller's retry interval, not the timeout.
    assert!(net.now - started < Duration::from_millis(500));
}

#[test]
fn each_client_has_its_own_counters_and_the_totals_add_up() {
    let mut net = net_with(3, 2, InputFrom::First);
    net.clients[1].loss = 0.10;
    stream(&mut net, 120);
    net.run_for(Duration::from_millis(300));
    let peers = net.host.peers();
    assert_eq!(peers.len(), 2);
    let clean = peers
        .iter()
        .find(|p| p.addr == net.clients[0].addr)
        .unwrap();
    let lossy = peers
        .iter()
        .find(|p| p.addr == net.clients[1].addr)
        .unwrap();
    assert_ne!(clean.id, lossy.id);
    assert_ne!(clean.stats.session_id, lossy.stats.session_id);
    assert_eq!(clean.stats.frames_sent, 120);
    assert_eq!(lossy.stats.frames_sent, 120);
    assert_eq!(clean.stats.peer_packets_lost, 0);
    assert!(lossy.stats.peer_packets_lost > 0);
    assert!(lossy.stats.rtt_us > clean.stats.rtt_us);
    let totals = net.host.stats();
    assert_eq!(totals.clients, 2);
    assert_eq!(totals.frames_sent, 240);
    assert_eq!(
        totals.peer_packets_lost,
        clean.stats.peer_packets_lost + lossy.stats.peer_packets_lost
    );
    // Both see (nearly) every frame: FEC and repair per client.
    assert!(net.frames(0) >= 119);
    assert!(net.frames(1) >= 117, "{}", net.frames(1));
}

#[test]
fn only_the_first_client_controls_and_a_watchers_input_is_dropped_and_counted() {
    let mut net = net_with(3, 2, InputFrom::First);
    let ids: Vec<PeerId> = net.host.peers().iter().map(|p| p.id).collect();
    let first = net.host.controller().expect("the first client controls");
    assert_eq!(first, ids[0]);
    let watcher_client = net.host.peers().iter().position(|p| p.id != first).unwrap();
    let (controller_i, watcher_i) = if net.host.peers()[watcher_client].addr == net.clients[1].addr
    {
        (0, 1)
    } else {
        (1, 0)
    };
    for k in 0..5 {
        let now = net.now;
        net.clients[controller_i]
            .conn
            .send_input(now, key(k))
            .unwrap();
        net.clients[watcher_i]
            .conn
            .send_input(now, key(100 + k))
            .unwrap();
        net.run_for(Duration::from_millis(20));
    }
    net.run_for(Duration::from_millis(200));
    let got = inputs_at_host(&net);
    assert_eq!(got.len(), 5, "{got:?}");
    assert!(got.iter().all(|(p, _)| *p == Some(first)));
    let watcher = net
        .host
        .peers()
        .into_iter()
        .find(|p| p.id != first)
        .unwrap();
    assert_eq!(watcher.input_dropped, 5);
    assert!(!watcher.controls_input);
    assert_eq!(net.host.stats().input_dropped_watching, 5);

    // Hand-over: the watcher controls now, the first client watches.
    assert!(net.host.give_control(watcher.id));
    net.host_events.clear();
    let now = net.now;
    net.clients[controller_i]
        .conn
        .send_input(now, key(7))
        .unwrap();
    net.clients[watcher_i]
        .conn
        .send_input(now, key(107))
        .unwrap();
    net.run_for(Duration::from_millis(200));
    let got = inputs_at_host(&net);
    assert_eq!(got, vec![(Some(watcher.id), key(107))]);
    assert_eq!(net.host.stats().input_dropped_watching, 6);
    assert!(!net.host.give_control(PeerId(999)));

    // The controller leaves: control passes to the longest connected client.
    net.host.give_control(first);
    net.clients[controller_i].conn.close();
    net.run_for(Duration::from_millis(200));
    assert_eq!(net.host.controller(), Some(watcher.id));
}

#[test]
fn input_from_all_and_none() {
    for (mode, expected) in [(InputFrom::All, 2), (InputFrom::None, 0)] {
        let mut net = net_with(2, 2, mode);
        for i in 0..2 {
            let now = net.now;
            net.clients[i].conn.send_input(now, key(i as u32)).unwrap();
        }
        net.run_for(Duration::from_millis(200));
        assert_eq!(inputs_at_host(&net).len(), expected, "{mode:?}");
        assert_eq!(
            net.host.stats().input_dropped_watching,
            2 - expected as u64,
            "{mode:?}"
        );
    }
}

/// Streams while the downlinks of `clients` lose everything for 8 frames, then 10 clean ones.
fn blackout(net: &mut Net, clients: &[usize]) {
    for &i in clients {
        net.clients[i].loss = 1.0;
    }
    for k in 0..8 {
        net.send_frame(&frame(6_000, k), false, &[]);
        net.run_for(FRAME);
    }
    for &i in clients {
        net.clients[i].loss = 0.0;
    }
    for k in 0..10 {
        net.send_frame(&frame(6_000, k), false, &[]);
        net.run_for(FRAME);
    }
}

#[test]
fn clients_losing_the_same_frame_cost_one_keyframe() {
    let mut net = net_with(3, 3, InputFrom::First);
    stream(&mut net, 20);
    net.run_for(Duration::from_millis(200));
    net.host_events.clear();
    let before = net.host.stats().keyframe_requests_coalesced;
    // Every client's downlink goes dark for 8 frames (repair cannot reach them), then the
    // stream goes on.
    blackout(&mut net, &[0, 1, 2]);
    let asked: Vec<_> = net
        .host_events
        .iter()
        .filter(|e| e.event == Event::KeyframeRequest)
        .collect();
    // Every client asked (each names the lost frame), and the encoder is asked once.
    for c in &net.clients {
        assert!(c.conn.stats().keyframe_requests >= 1);
    }
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(net.host.stats().keyframe_requests_coalesced >= before + 2);

    // The keyframe goes to all of them; a later loss asks again.
    net.send_frame(&frame(6_000, 9), true, &[]);
    net.run_for(Duration::from_millis(200));
    net.host_events.clear();
    blackout(&mut net, &[1]);
    let asked = net
        .host_events
        .iter()
        .filter(|e| e.event == Event::KeyframeRequest)
        .count();
    assert_eq!(asked, 1);
}

#[test]
fn a_disconnected_client_hears_end_of_stream_and_its_slot_serves_the_next() {
    let mut net = net_with(2, 2, InputFrom::First);
    let victim = net.host.peers()[1].clone();
    let vi = (0..2)
        .find(|&i| net.clients[i].addr == victim.addr)
        .unwrap();
    assert!(net.host.disconnect(victim.id, net.now).unwrap());
    assert!(!net.host.disconnect(victim.id, net.now).unwrap());
    assert_eq!(net.host.peers().len(), 1);
    let bye = net.run_until(Duration::from_millis(50), |n| {
        n.clients[vi].events.contains(&Event::EndOfStream)
    });
    assert!(bye);
    // It tries again at once (a caller keeps calling), but its address is barred for a while.
    net.run_for(Duration::from_millis(300));
    assert!(!net.host.peers().iter().any(|p| p.addr == victim.addr));
    assert!(net.clients[vi].events.iter().any(|e| matches!(
        e,
        Event::Rejected {
            reason: RejectReason::Busy
        }
    )));
    net.clients[vi].up = false;
    assert!(net.host_events.iter().any(|e| e.peer == Some(victim.id)
        && e.addr == Some(victim.addr)
        && matches!(e.event, Event::Disconnected { .. })));
    let next = net.add_client(MS);
    let next_addr = net.clients[next].addr;
    let ok = net.run_until(Duration::from_secs(2), |n| {
        n.host.peers().iter().any(|p| p.addr == next_addr)
    });
    assert!(ok);
    stream(&mut net, 5);
    assert!(net.frames(next) >= 4);
    // The totals keep what the renewed connection counted.
    assert!(net.host.stats().handshakes_completed >= 3);
}

#[test]
fn connect_and_disconnect_events_name_the_client() {
    let net = net_with(3, 2, InputFrom::First);
    let connected: Vec<_> = net
        .host_events
        .iter()
        .filter(|e| matches!(e.event, Event::Connected { .. }))
        .map(|e| (e.peer.unwrap(), e.addr.unwrap()))
        .collect();
    assert_eq!(connected.len(), 2);
    assert_ne!(connected[0].0, connected[1].0);
    let mut addrs: Vec<_> = connected.iter().map(|c| c.1).collect();
    addrs.sort();
    let mut want = vec![net.clients[0].addr, net.clients[1].addr];
    want.sort();
    assert_eq!(addrs, want);
}

/// An encoder on virtual time: a keyframe every `gop` frames, and at the next frame when the
/// host asked for one (as punktfunksink's ForceKeyUnit does). Each frame is followed by one
/// frame interval run in 1 ms steps; `watch` sees the net after every step.
struct Encoder {
    frame: u64,
    gop: u64,
    seen_events: usize,
    keyframes_forced: usize,
}

impl Encoder {
    fn tick(&mut self, net: &mut Net, mut watch: impl FnMut(&Net)) {
        let asked = net.host_events[self.seen_events..]
            .iter()
            .any(|e| e.event == Event::KeyframeRequest);
        self.seen_events = net.host_events.len();
        let periodic = self.frame.is_multiple_of(self.gop);
        if asked && !periodic {
            self.keyframes_forced += 1;
        }
        net.send_frame(&frame(6_000, self.frame as u8), periodic || asked, &[]);
        self.frame += 1;
        for _ in 0..17 {
            net.run_for(MS);
            watch(net);
        }
    }
}

#[test]
fn clients_joining_mid_stream_cost_one_keyframe_and_decode_within_a_round_trip_and_a_frame() {
    let mut net = net_with(4, 2, InputFrom::First);
    let mut enc = Encoder {
        frame: 0,
        gop: 600,
        seen_events: 0,
        keyframes_forced: 0,
    };
    // The watchers are mid-GOP: 40 frames after the last keyframe.
    for _ in 0..40 {
        enc.tick(&mut net, |_| {});
    }
    assert_eq!(enc.keyframes_forced, 0);
    let watched_before: Vec<usize> = (0..2).map(|i| net.frames(i)).collect();
    let events_before = net.host_events.len();
    // Two clients join at once, 5 ms away (10 ms round trip).
    let delay = MS * 5;
    let joining = [net.add_client(delay), net.add_client(delay)];
    let mut connected_at = [None; 2];
    let mut first_frame_at = [None; 2];
    for _ in 0..30 {
        enc.tick(&mut net, |n| {
            for (k, &c) in joining.iter().enumerate() {
                if connected_at[k].is_none() && n.connected(c) {
                    connected_at[k] = Some(n.now);
                }
                if first_frame_at[k].is_none() && n.frames(c) > 0 {
                    first_frame_at[k] = Some(n.now);
                }
            }
        });
    }
    // One keyframe for both newcomers, long before the next periodic one.
    assert_eq!(enc.keyframes_forced, 1);
    let asked = net.host_events[events_before..]
        .iter()
        .filter(|e| e.event == Event::KeyframeRequest)
        .count();
    assert_eq!(asked, 1);
    for (k, &c) in joining.iter().enumerate() {
        // The first frame it gets is that keyframe: nothing it could not decode came before.
        let first = net.clients[c]
            .events
            .iter()
            .find_map(|e| match e {
                Event::Frame(f) => Some(f.keyframe),
                _ => None,
            })
            .expect("the newcomer got frames");
        assert!(first, "client {c}'s first frame is a delta");
        let waited = first_frame_at[k].unwrap() - connected_at[k].unwrap();
        assert!(
            waited <= delay * 2 + FRAME,
            "client {c} waited {waited:?} from connect to its first picture"
        );
        assert!(net.frames(c) >= 25, "{}", net.frames(c));
    }
    // The watchers saw every frame meanwhile.
    for (i, before) in watched_before.into_iter().enumerate() {
        assert_eq!(net.frames(i), before + 30);
    }
}
