//! The reliable channel: sequence numbers, acknowledgements, retransmission, reordering, the
//! receive window, and delivery over a simulated lossy link.

use super::*;
use crate::protocol::input::sender::InputQueueFull;

#[test]
fn sequence_numbers_start_at_zero_and_count_up() {
    let mut tx = InputSender::new(8);
    for i in 0..5 {
        assert_eq!(tx.push(key(true, i)), Ok(i as u64));
    }
    assert_eq!(tx.pending(), 5);
    assert_eq!(tx.next_seq(), 5);
}

#[test]
fn queue_full_refuses() {
    let mut tx = InputSender::new(2);
    tx.push(key(true, 0)).unwrap();
    tx.push(key(true, 1)).unwrap();
    assert_eq!(tx.push(key(true, 2)), Err(InputQueueFull));
    assert_eq!(tx.pending(), 2);
    let t = Instant::now();
    let mut out = Vec::new();
    assert!(tx.poll_transmit(t, RTO, 1200, &mut out));
    tx.on_ack(1);
    assert_eq!(tx.push(key(true, 2)), Ok(2));
    assert_eq!(InputSender::new(0).max_pending, 1);
}

#[test]
fn new_events_go_out_at_once_and_old_ones_after_rto() {
    let t0 = Instant::now();
    let mut tx = InputSender::new(64);
    let mut rx = InputReceiver::new();
    let mut out = Vec::new();
    assert!(!tx.poll_transmit(t0, RTO, 1200, &mut out));
    assert!(out.is_empty());
    assert_eq!(tx.next_timeout(RTO), None);

    tx.push(key(true, 1)).unwrap();
    assert!(tx.has_unsent());
    assert!(tx.poll_transmit(t0, RTO, 1200, &mut out));
    assert_eq!(
        collect(&mut InputReceiver::new(), &out).unwrap(),
        [key(true, 1)]
    );
    assert!(!tx.poll_transmit(t0, RTO, 1200, &mut out));
    assert_eq!(tx.next_timeout(RTO), Some(t0 + RTO));

    // A new event goes out before the first is due, together with it.
    let t1 = t0 + Duration::from_millis(1);
    tx.push(key(false, 1)).unwrap();
    assert_eq!(tx.next_timeout(RTO), Some(t0));
    assert!(tx.poll_transmit(t1, RTO, 1200, &mut out));
    assert_eq!(
        collect(&mut rx, &out).unwrap(),
        [key(true, 1), key(false, 1)]
    );
    assert!(!tx.poll_transmit(t1, RTO, 1200, &mut out));
    assert_eq!(tx.next_timeout(RTO), Some(t1 + RTO));

    // Not yet due, then due.
    assert!(!tx.poll_transmit(t1 + RTO / 2, RTO, 1200, &mut out));
    assert!(tx.poll_transmit(t1 + RTO, RTO, 1200, &mut out));
    assert_eq!(collect(&mut rx, &out).unwrap(), []);
    assert!(!tx.poll_transmit(t1 + RTO, RTO, 1200, &mut out));

    tx.on_ack(rx.next_expected());
    assert_eq!(tx.pending(), 0);
    assert_eq!(tx.next_timeout(RTO), None);
    assert!(!tx.poll_transmit(t1 + RTO * 10, RTO, 1200, &mut out));
}

#[test]
fn acks_are_cumulative_stale_ones_ignored_and_clamped_to_what_was_sent() {
    let t0 = Instant::now();
    let mut tx = InputSender::new(64);
    let mut out = Vec::new();
    for i in 0..4 {
        tx.push(key(true, i)).unwrap();
    }
    assert!(tx.poll_transmit(t0, RTO, 1200, &mut out));
    for i in 4..6 {
        tx.push(key(true, i)).unwrap();
    }
    tx.on_ack(2);
    assert_eq!(tx.pending(), 4);
    tx.on_ack(1);
    assert_eq!(tx.pending(), 4);
    // Events 4 and 5 were never sent: an ack claiming them is a lie and covers only 0..4.
    tx.on_ack(100);
    assert_eq!(tx.pending(), 2);
    assert!(tx.has_unsent());
    assert!(tx.poll_transmit(t0, RTO, 1200, &mut out));
    let mut r = Reader::new(&out);
    assert_eq!(r.u64().unwrap(), 4);
    assert_eq!(r.u16().unwrap(), 2);
    assert_eq!(tx.push(key(true, 6)), Ok(6));
}

#[test]
fn bodies_respect_max_len_but_always_carry_one_event() {
    let t0 = Instant::now();
    let mut tx = InputSender::new(100);
    for i in 0..50 {
        tx.push(key(i % 2 == 0, i)).unwrap();
    }
    let mut rx = InputReceiver::new();
    let mut got = Vec::new();
    let mut out = Vec::new();
    let mut bodies = 0;
    while tx.poll_transmit(t0, RTO, 100, &mut out) {
        assert!(out.len() <= 100);
        bodies += 1;
        got.extend(collect(&mut rx, &out).unwrap());
    }
    assert!(bodies > 5);
    assert_eq!(got.len(), 50);
    assert_eq!(rx.next_expected(), 50);

    // A budget too small for even one event still sends one per body.
    let mut tx = InputSender::new(10);
    tx.push(key(true, 1)).unwrap();
    tx.push(key(true, 2)).unwrap();
    assert!(tx.poll_transmit(t0, RTO, 0, &mut out));
    let mut r = Reader::new(&out);
    assert_eq!(r.u64().unwrap(), 0);
    assert_eq!(r.u16().unwrap(), 1);
    assert!(tx.poll_transmit(t0, RTO, 0, &mut out));
    assert!(!tx.poll_transmit(t0, RTO, 0, &mut out));
}

#[test]
fn retransmissions_start_from_the_oldest_due_event_when_all_does_not_fit() {
    let t0 = Instant::now();
    let mut tx = InputSender::new(100);
    let mut out = Vec::new();
    for i in 0..20 {
        tx.push(key(true, i)).unwrap();
    }
    // Send them in small bodies at t0.
    while tx.poll_transmit(t0, RTO, 60, &mut out) {}
    // New event at t0+1ms: with a tight budget, the new one must not wait behind 20 old ones.
    let t1 = t0 + Duration::from_millis(1);
    tx.push(key(false, 20)).unwrap();
    assert!(tx.poll_transmit(t1, RTO, 60, &mut out));
    let mut r = Reader::new(&out);
    let first = r.u64().unwrap();
    let count = r.u16().unwrap() as u64;
    assert!(first <= 20 && first + count == 21, "{first} {count}");
    assert!(!tx.poll_transmit(t1, RTO, 60, &mut out));
    // At t0+RTO the old ones are due, from the oldest.
    assert!(tx.poll_transmit(t0 + RTO, RTO, 60, &mut out));
    assert_eq!(Reader::new(&out).u64().unwrap(), 0);
}

#[test]
fn receiver_buffers_reordered_bodies_and_ignores_duplicates() {
    let evs: Vec<_> = (0..6).map(|i| key(i % 2 == 0, i)).collect();
    let mut rx = InputReceiver::new();
    assert_eq!(collect(&mut rx, &body(3, &evs[3..6])).unwrap(), []);
    assert_eq!(rx.buffered(), 3);
    assert_eq!(rx.next_expected(), 0);
    assert_eq!(collect(&mut rx, &body(1, &evs[1..2])).unwrap(), []);
    assert_eq!(collect(&mut rx, &body(0, &evs[0..3])).unwrap(), evs);
    assert_eq!(rx.next_expected(), 6);
    assert_eq!(rx.buffered(), 0);
    assert_eq!(collect(&mut rx, &body(0, &evs)).unwrap(), []);
    assert_eq!(collect(&mut rx, &body(4, &evs[4..])).unwrap(), []);
    assert_eq!(rx.next_expected(), 6);
    // An empty body is harmless.
    assert_eq!(collect(&mut rx, &body(99, &[])).unwrap(), []);
}

#[test]
fn receiver_drops_events_beyond_its_window() {
    let mut rx = InputReceiver::new();
    let far = body(RECEIVE_WINDOW, &[key(true, 0)]);
    assert_eq!(collect(&mut rx, &far).unwrap(), []);
    assert_eq!(rx.buffered(), 0);
    assert!(rx.ahead.len() <= RECEIVE_WINDOW as usize);
    let edge = body(RECEIVE_WINDOW - 1, &[key(true, 0), key(true, 1)]);
    assert_eq!(collect(&mut rx, &edge).unwrap(), []);
    assert_eq!(rx.buffered(), 1);
    assert_eq!(rx.ahead.len(), RECEIVE_WINDOW as usize);
    let huge = body(u64::MAX - 5, &[key(true, 0)]);
    assert_eq!(collect(&mut rx, &huge).unwrap(), []);
    assert_eq!(rx.ahead.len(), RECEIVE_WINDOW as usize);
}

#[test]
fn malformed_bodies_change_nothing() {
    let mut rx = InputReceiver::new();
    let good = key(true, 0);
    // Valid first event, garbage second: nothing delivered, ack unchanged.
    let mut b = body(0, &[good.clone(), good.clone()]);
    let second = BODY_HEADER_LEN + good.encoded_len();
    b[second] = 0xee;
    assert_eq!(
        rx.on_body(&b, &mut |_| panic!("delivered")),
        Err(WireError::UnknownKind(0xee))
    );
    assert_eq!(rx.next_expected(), 0);
    assert_eq!(rx.buffered(), 0);
    // Trailing bytes.
    let mut b = body(0, std::slice::from_ref(&good));
    b.push(0);
    assert_eq!(
        rx.on_body(&b, &mut |_| panic!("delivered")),
        Err(WireError::TrailingBytes)
    );
    // Sequence overflow.
    let b = body(u64::MAX, &[good.clone(), good.clone()]);
    assert_eq!(
        rx.on_body(&b, &mut |_| panic!("delivered")),
        Err(WireError::Limit("input sequence number"))
    );
    // Short header.
    assert_eq!(
        rx.on_body(&[0; 9], &mut |_| panic!()),
        Err(WireError::Truncated)
    );
    assert_eq!(rx.next_expected(), 0);
    assert_eq!(
        collect(&mut rx, &body(0, std::slice::from_ref(&good))).unwrap(),
        [good]
    );
}

#[test]
fn lying_counts_do_not_allocate() {
    let mut rx = InputReceiver::new();
    let mut b = Vec::new();
    Writer::new(&mut b).u64(0).u16(u16::MAX).u8(ty::TOUCH_FRAME);
    assert_eq!(rx.on_body(&b, &mut |_| ()), Err(WireError::Truncated));
    assert_eq!(rx.scratch.capacity(), 0);
    // A count that fits the bytes present but whose events are short of bytes fails after
    // decoding at most as many events as there are bytes.
    let mut b = Vec::new();
    Writer::new(&mut b).u64(0).u16(40);
    b.extend(std::iter::repeat_n(ty::TOUCH_FRAME, 39));
    b.push(ty::MOUSE_MOVE);
    assert_eq!(rx.on_body(&b, &mut |_| ()), Err(WireError::Truncated));
    assert!(rx.scratch.capacity() <= 64);
    assert_eq!(rx.next_expected(), 0);
}

/// splitmix64: a tiny seeded PRNG so the loss pattern is reproducible.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// What a simulated run produced.
struct SimResult {
    /// Events the host saw, in delivery order.
    got: Vec<InputEvent>,
    /// Rounds until every event was delivered and acknowledged.
    rounds: usize,
    /// Most rounds between an event's push and its delivery.
    max_latency: usize,
}

/// Drives a sender and a receiver over a simulated link with loss in both directions,
/// 10 ms of delay each way, reordering within a round and `per_round` new events every
/// 5 ms round.
fn simulate(
    seed: u64,
    loss_percent: u64,
    events: &[InputEvent],
    per_round: usize,
    max_len: usize,
    max_rounds: usize,
) -> SimResult {
    let step = Duration::from_millis(5);
    let delay = Duration::from_millis(10);
    let mut rng = SplitMix64(seed);
    let mut tx = InputSender::new(4096);
    let mut rx = InputReceiver::new();
    let mut now = Instant::now();
    let mut to_host: Vec<(Instant, Vec<u8>)> = Vec::new();
    let mut to_client: Vec<(Instant, u64)> = Vec::new();
    let mut got = Vec::new();
    let mut pushed_in = Vec::new();
    let mut max_latency = 0;
    let mut next = 0;
    let mut out = Vec::new();
    for round in 0..max_rounds {
        while next < events.len() && next < (round + 1) * per_round {
            assert_eq!(tx.push(events[next].clone()), Ok(next as u64));
            pushed_in.push(round);
            next += 1;
        }
        while tx.poll_transmit(now, RTO, max_len, &mut out) {
            assert!(!out.is_empty());
            if !rng.chance(loss_percent) {
                to_host.push((now + delay, out.clone()));
            }
        }
        // Deliver what arrived, in a shuffled order.
        let (mut arrived, rest): (Vec<_>, Vec<_>) =
            to_host.drain(..).partition(|(at, _)| *at <= now);
        to_host = rest;
        for i in (1..arrived.len()).rev() {
            let j = (rng.next() % (i as u64 + 1)) as usize;
            arrived.swap(i, j);
        }
        for (_, b) in arrived {
            rx.on_body(&b, &mut |e| {
                max_latency = max_latency.max(round - pushed_in[got.len()]);
                got.push(e);
            })
            .unwrap();
            if !rng.chance(loss_percent) {
                to_client.push((now + delay, rx.next_expected()));
            }
        }
        let (acks, rest): (Vec<_>, Vec<_>) = to_client.drain(..).partition(|(at, _)| *at <= now);
        to_client = rest;
        for (_, a) in acks {
            tx.on_ack(a);
        }
        if next == events.len() && tx.pending() == 0 {
            return SimResult {
                got,
                rounds: round,
                max_latency,
            };
        }
        now += step;
    }
    SimResult {
        got,
        rounds: max_rounds,
        max_latency,
    }
}

#[test]
fn a_thousand_key_pairs_survive_twenty_percent_loss_both_ways() {
    let events: Vec<_> = (0..1000u32)
        .flat_map(|i| [key(true, i), key(false, i)])
        .collect();
    for seed in [1, 2, 3, 0xdead_beef] {
        // 2000 events at 10 a round take 200 rounds (1 s) to push; the last must be
        // delivered and acknowledged within 40 more rounds (200 ms, 10 RTTs).
        let r = simulate(seed, 20, &events, 10, 1200, 240);
        assert_eq!(r.got.len(), events.len(), "seed {seed}");
        assert!(r.got == events, "seed {seed}: wrong order or content");
        assert!(r.rounds < 240, "seed {seed}: took {} rounds", r.rounds);
        // Low latency, not just eventual delivery: no event waits more than 100 ms.
        assert!(r.max_latency <= 20, "seed {seed}: {} rounds", r.max_latency);
    }
}

#[test]
fn heavy_loss_and_one_event_per_body_still_delivers_in_order() {
    let events: Vec<_> = (0..300u32)
        .flat_map(|i| [key(true, i), key(false, i)])
        .collect();
    let r = simulate(7, 50, &events, 4, 40, 5000);
    assert!(r.got == events);
    assert!(r.rounds < 5000);
}

#[test]
fn lossless_link_delivers_within_one_way_delay() {
    let events: Vec<_> = (0..100u32)
        .flat_map(|i| [key(true, i), key(false, i)])
        .collect();
    let r = simulate(9, 0, &events, 3, 1200, 200);
    assert!(r.got == events);
    // 10 ms one way = 2 rounds: nothing waits for a retransmission.
    assert_eq!(r.max_latency, 2);
}
