//! The client's one loss report through real Connections on virtual time (`common::sim`): both
//! of its halves reach the host's FEC plan (the loss model in `target` mode, the counters in the
//! legacy share mode) and the host's view of the peer, and a report that arrives after a newer
//! one is not used at all.
//!
//! Deterministic (seeded loss and ids); nothing here reads a wall clock.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use common::frame_bytes;
use common::sim::{Sim, connected, passphrase_pair};
use gstpunktfunk::protocol::fec::adaptive::FecMode;
use gstpunktfunk::protocol::fec::report::LOSS_REPORT_LEN;
use gstpunktfunk::protocol::wire::{HEADER_LEN, Header, Kind, TAG_LEN};

const HOST: usize = 0;
const CLIENT: usize = 1;
const FRAME_INTERVAL: Duration = Duration::from_micros(16_667);
/// 32 data shards at the default mtu.
const FRAME_LEN: usize = 42_000;
/// A sealed loss report: header, control type, body, tag (no other client message has it).
const REPORT_DATAGRAM: usize = HEADER_LEN + 1 + LOSS_REPORT_LEN + TAG_LEN;

/// Streams frames for `d`; returns the parity datagrams of each frame.
fn stream(sim: &mut Sim, d: Duration) -> Vec<u64> {
    let data = frame_bytes(FRAME_LEN, 7);
    let end = sim.now + d;
    let mut parity = Vec::new();
    while sim.now < end {
        let before = sim.conn(HOST).stats().parity_shards_sent;
        sim.send_frame(HOST, &data, false).expect("connected");
        parity.push(sim.conn(HOST).stats().parity_shards_sent - before);
        sim.run_for(FRAME_INTERVAL);
    }
    parity
}

#[test]
fn a_loss_report_moves_the_target_plan_and_the_peer_counters() {
    let (h, c) = passphrase_pair();
    assert_eq!(h.fec_mode, FecMode::Target);
    let mut sim = connected(21, h, c);
    let clean = stream(&mut sim, Duration::from_secs(3));
    let floor = *clean.last().unwrap();
    let before = sim.conn(HOST).stats();
    assert_eq!(before.peer_packets_lost, 0);
    assert!(before.loss_models > 0);

    // 10 % loss on the host's datagrams: the client's reports carry it to the plan.
    sim.nodes[HOST].link.loss = 0.10;
    let lossy = stream(&mut sim, Duration::from_secs(1));
    let high = *lossy.last().unwrap();
    assert!(high > floor + 4, "plan did not move: {floor} → {lossy:?}");

    // A clean second (the last losses are final and reported): the host's view of the peer is
    // the client's own count, as of its latest report.
    sim.nodes[HOST].link.loss = 0.0;
    stream(&mut sim, Duration::from_millis(300));
    let hs = sim.conn(HOST).stats();
    let cs = sim.conn(CLIENT).stats();
    assert!(cs.packets_lost > 0);
    assert_eq!(hs.peer_packets_lost, cs.packets_lost);
    assert_eq!(hs.fec_recovered, cs.fec_recovered);
    assert!(hs.peer_packets_received > before.peer_packets_received);
    assert!(hs.loss_models > before.loss_models + 10);
    assert!(hs.loss_models + 1 >= cs.loss_models, "{hs:?} {cs:?}");
    assert_eq!(hs.invalid_datagrams, 0);
}

#[test]
fn a_loss_report_moves_the_share_plan_from_its_counters() {
    let (mut h, c) = passphrase_pair();
    h.fec_mode = FecMode::Adaptive;
    h.fec_percent = 5;
    let mut sim = connected(22, h, c);
    stream(&mut sim, Duration::from_secs(1));
    assert_eq!(sim.conn(HOST).stats().fec_percent, 5);
    sim.nodes[HOST].link.loss = 0.10;
    stream(&mut sim, Duration::from_secs(1));
    let share = sim.conn(HOST).stats().fec_percent;
    assert!(share >= 30, "share {share}");
}

#[test]
fn a_loss_report_older_than_one_used_is_dropped_whole() {
    let (h, c) = passphrase_pair();
    let mut sim = connected(23, h, c);
    stream(&mut sim, Duration::from_millis(500));
    // Hold back the client's next report, and let two newer ones through.
    let held: Rc<RefCell<Option<Vec<u8>>>> = Rc::default();
    let keep = held.clone();
    sim.drop_script = Some(Box::new(move |from, bytes| {
        let report = from == CLIENT
            && bytes.len() == REPORT_DATAGRAM
            && Header::decode(bytes).is_ok_and(|(h, _)| h.kind == Kind::Control);
        let mut k = keep.borrow_mut();
        if report && k.is_none() {
            *k = Some(bytes.to_vec());
            return true;
        }
        false
    }));
    sim.nodes[HOST].link.loss = 0.05;
    stream(&mut sim, Duration::from_millis(250));
    sim.nodes[HOST].link.loss = 0.0;
    stream(&mut sim, Duration::from_millis(150));
    let old = held.borrow_mut().take().expect("a report was held back");
    let before = sim.conn(HOST).stats();
    assert!(before.peer_packets_lost > 0);
    let (from, to) = (sim.nodes[CLIENT].addr, sim.nodes[HOST].addr);
    let now = sim.now;
    sim.inject_at(now, from, to, old);
    sim.run_for(Duration::from_millis(1));
    let after = sim.conn(HOST).stats();
    // Authenticated and fresh to the replay window, but older than the newest report used:
    // not counted as used, and the peer's counters do not go back.
    assert_eq!(after.packets_received, before.packets_received + 1);
    assert_eq!(after.invalid_datagrams, before.invalid_datagrams);
    assert_eq!(after.loss_models, before.loss_models);
    assert_eq!(after.peer_packets_lost, before.peer_packets_lost);
    assert_eq!(after.peer_packets_received, before.peer_packets_received);
}
