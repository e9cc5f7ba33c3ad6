//! Property tests of the sans-IO protocol: FEC recovery within the parity budget, the
//! reassembler as a firewall against hostile shards, and frame index wrap-around.

mod common;

use std::time::{Duration, Instant};

use common::frame_bytes;

use gstpunktfunk::protocol::fec::coder::{BlockLayout, ReedSolomon8, parity_for};
use gstpunktfunk::protocol::media::packetizer::{Datagrams, FrameParams, Packetizer, seal_all};
use gstpunktfunk::protocol::media::reassembler::{Output, Reassembler, ReassemblerConfig};
use gstpunktfunk::protocol::security::crypto::PlainAead;
use gstpunktfunk::protocol::wire::{HEADER_LEN, VIDEO_HEADER_LEN, VideoHeader};
use proptest::prelude::*;

fn packetize(frame: &[u8], index: u32, fec: u8, mtu: usize) -> Datagrams {
    let mut p = Packetizer::new(mtu, Box::new(ReedSolomon8::new()));
    let mut out = Datagrams::new();
    let params = FrameParams {
        frame_index: index,
        keyframe: false,
        fec_percent: fec,
        session_id: 1,
        first_packet_number: 0,
        sealed: false,
        tag_len: 0,
        timing: Default::default(),
    };
    p.packetize(frame, &params, &mut out).unwrap();
    p.encode_parity(fec, &mut out).unwrap();
    seal_all(&mut out, &PlainAead);
    out
}

/// The opened body (video header + shard) of datagram `i`.
fn body(d: &Datagrams, i: usize) -> &[u8] {
    &d.get(i)[HEADER_LEN..]
}

/// For each datagram, whether it is dropped: per block, at most `m` of its `k + m` shards.
fn loss_pattern(d: &Datagrams, picks: &[u64]) -> Vec<bool> {
    let mut by_block: std::collections::HashMap<u16, Vec<usize>> = Default::default();
    let mut parity_of: std::collections::HashMap<u16, usize> = Default::default();
    for i in 0..d.len() {
        let (vh, _) = VideoHeader::decode(body(d, i)).unwrap();
        by_block.entry(vh.block_index).or_default().push(i);
        parity_of.insert(vh.block_index, vh.parity as usize);
    }
    let mut drop = vec![false; d.len()];
    let mut pick = picks.iter().cycle();
    for (b, members) in by_block {
        let m = parity_of[&b];
        // Drop between 0 and m shards, chosen by the random picks.
        let n_drop = (*pick.next().unwrap() as usize) % (m + 1);
        let mut members = members;
        for j in 0..n_drop {
            let r = (*pick.next().unwrap() as usize) % (members.len() - j);
            let last = members.len() - 1 - j;
            members.swap(r, last);
            drop[members[last]] = true;
        }
    }
    drop
}

fn run(frame: &[u8], fec: u8, mtu: usize, picks: &[u64], shuffle: bool) -> (Vec<u8>, u64) {
    let d = packetize(frame, 42, fec, mtu);
    let drop = loss_pattern(&d, picks);
    let mut order: Vec<usize> = (0..d.len()).filter(|&i| !drop[i]).collect();
    if shuffle {
        // Deterministic shuffle from the picks.
        for i in (1..order.len()).rev() {
            let j = (picks[i % picks.len()] as usize ^ i) % (i + 1);
            order.swap(i, j);
        }
    }
    let mut r = Reassembler::new(ReassemblerConfig::default(), Box::new(ReedSolomon8::new()));
    let now = Instant::now();
    for i in order {
        let _ = r.push(body(&d, i), now);
    }
    match r.poll() {
        Some(Output::Frame(f)) => (f.data, r.stats().shards_recovered),
        other => panic!("frame not delivered: {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any loss within each block's parity budget recovers the frame byte-exact, in any order.
    #[test]
    fn recovers_within_budget_small(len in 1usize..40_000, fec in 1u8..=100,
                                    picks in proptest::collection::vec(any::<u64>(), 8..64),
                                    shuffle in any::<bool>(), seed in any::<u64>()) {
        let frame = frame_bytes(len, seed);
        let (got, _) = run(&frame, fec, 1400, &picks, shuffle);
        prop_assert_eq!(got, frame);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// The same for multi-block frames up to several MB.
    #[test]
    fn recovers_within_budget_large(len in 200_000usize..4_000_000, fec in 5u8..=50,
                                    picks in proptest::collection::vec(any::<u64>(), 32..128),
                                    seed in any::<u64>()) {
        let frame = frame_bytes(len, seed);
        let d = packetize(&frame, 1, fec, 1400);
        let n = d.data_count();
        prop_assert!(BlockLayout::for_shards(n).blocks > 1);
        let (got, _) = run(&frame, fec, 1400, &picks, true);
        prop_assert_eq!(got, frame);
    }
}

#[test]
fn recovery_counts_rebuilt_shards() {
    let frame = frame_bytes(50_000, 3);
    let d = packetize(&frame, 0, 20, 1400);
    let k = d.data_count();
    let m = parity_for(k, 20);
    let mut r = Reassembler::new(ReassemblerConfig::default(), Box::new(ReedSolomon8::new()));
    let now = Instant::now();
    // Lose the first m data shards; feed the rest.
    for i in m..d.len() {
        let _ = r.push(body(&d, i), now);
    }
    match r.poll() {
        Some(Output::Frame(f)) => assert_eq!(f.data, frame),
        other => panic!("{other:?}"),
    }
    assert_eq!(r.stats().shards_recovered, m as u64);
}

#[test]
fn a_frame_carries_its_timing_and_the_arrival_of_its_last_data_shard() {
    use gstpunktfunk::protocol::media::timing::FrameTiming;
    let timing = FrameTiming {
        capture_us: 9_000_000,
        duration_us: 16_667,
        render_offset_us: 4_000,
        send_span_us: 120,
    };
    let frame = frame_bytes(20_000, 5);
    let mut p = Packetizer::new(1400, Box::new(ReedSolomon8::new()));
    let mut d = Datagrams::new();
    let params = FrameParams {
        frame_index: 1,
        keyframe: true,
        fec_percent: 20,
        session_id: 1,
        first_packet_number: 0,
        sealed: false,
        tag_len: 0,
        timing,
    };
    p.packetize(&frame, &params, &mut d).unwrap();
    p.encode_parity(20, &mut d).unwrap();
    let k = d.data_count();
    let t0 = Instant::now();
    let at = |i: usize| t0 + Duration::from_micros(100 * i as u64);
    let mut r = Reassembler::new(ReassemblerConfig::default(), Box::new(ReedSolomon8::new()));
    // Data shard 0 is lost: the frame completes on the first parity shard, after the last data
    // shard.
    for i in 1..=k {
        let _ = r.push(body(&d, i), at(i));
    }
    match r.poll() {
        Some(Output::Frame(f)) => {
            assert_eq!(f.data, frame);
            assert_eq!(f.timing, timing);
            assert_eq!(f.last_data_at, at(k - 1));
            assert_eq!(f.complete_at, at(k));
        }
        other => panic!("{other:?}"),
    }
    // A shard whose timing contradicts its frame is refused.
    let mut r = Reassembler::new(ReassemblerConfig::default(), Box::new(ReedSolomon8::new()));
    r.push(body(&d, 0), t0).unwrap();
    let (vh, shard) = VideoHeader::decode(body(&d, 1)).unwrap();
    let mut b = vec![0u8; VIDEO_HEADER_LEN + shard.len()];
    VideoHeader {
        timing: FrameTiming {
            capture_us: 1,
            ..timing
        },
        ..vh
    }
    .encode(&mut b);
    b[VIDEO_HEADER_LEN..].copy_from_slice(shard);
    assert!(r.push(&b, t0).is_err());
}

#[test]
fn beyond_budget_is_lost_by_time_window() {
    let frame = frame_bytes(20_000, 5);
    let d = packetize(&frame, 7, 20, 1400);
    let k = d.data_count();
    let m = parity_for(k, 20);
    let cfg = ReassemblerConfig::default();
    let mut r = Reassembler::new(cfg, Box::new(ReedSolomon8::new()));
    let t0 = Instant::now();
    for i in (m + 1)..d.len() {
        let _ = r.push(body(&d, i), t0);
    }
    assert_eq!(r.poll(), None, "cannot complete yet, must wait");
    let deadline = r.next_timeout().expect("a timer for the incomplete frame");
    assert!(deadline <= t0 + cfg.reorder_window);
    r.handle_timeout(t0 + cfg.reorder_window);
    assert_eq!(
        r.poll(),
        Some(Output::Lost {
            first_index: 7,
            count: 1
        })
    );
    assert_eq!(r.stats().frames_lost, 1);
    // Late shards of the given-up frame are dropped.
    assert!(r.push(body(&d, 0), t0 + cfg.reorder_window).is_err());
    assert_eq!(r.poll(), None);
}

#[test]
fn frames_wrap_around_u32() {
    let mut r = Reassembler::new(ReassemblerConfig::default(), Box::new(ReedSolomon8::new()));
    let now = Instant::now();
    let start = u32::MAX - 5;
    for n in 0..12u32 {
        let idx = start.wrapping_add(n);
        let frame = frame_bytes(3000 + n as usize, n as u64);
        let d = packetize(&frame, idx, 20, 1400);
        for i in 0..d.len() {
            let _ = r.push(body(&d, i), now);
        }
        match r.poll() {
            Some(Output::Frame(f)) => {
                assert_eq!(f.index, idx);
                assert_eq!(f.data, frame);
                assert!(!f.discont);
            }
            other => panic!("frame {idx}: {other:?}"),
        }
    }
    assert_eq!(r.stats().frames_lost, 0);
}

#[test]
fn frames_leave_in_order_and_a_keyframe_jumps_the_queue() {
    let mut r = Reassembler::new(ReassemblerConfig::default(), Box::new(ReedSolomon8::new()));
    let now = Instant::now();
    let f0 = packetize(&frame_bytes(10_000, 1), 100, 20, 1400);
    let f1 = packetize(&frame_bytes(10_000, 2), 101, 20, 1400);
    // Frame 100 half there; frame 101 complete: 101 must wait for 100.
    for i in 0..3 {
        r.push(body(&f0, i), now).unwrap();
    }
    for i in 0..f1.data_count() {
        r.push(body(&f1, i), now).unwrap();
    }
    assert_eq!(r.poll(), None);
    for i in 3..f0.data_count() {
        r.push(body(&f0, i), now).unwrap();
    }
    match (r.poll(), r.poll()) {
        (Some(Output::Frame(a)), Some(Output::Frame(b))) => {
            assert_eq!((a.index, b.index), (100, 101))
        }
        other => panic!("{other:?}"),
    }
    // Frame 102 incomplete, keyframe 103 complete: 102 is given up at once.
    let f2 = packetize(&frame_bytes(10_000, 3), 102, 20, 1400);
    let mut p = Packetizer::new(1400, Box::new(ReedSolomon8::new()));
    let mut kf = Datagrams::new();
    let kdata = frame_bytes(8_000, 4);
    p.packetize(
        &kdata,
        &FrameParams {
            frame_index: 103,
            keyframe: true,
            fec_percent: 20,
            session_id: 1,
            first_packet_number: 0,
            sealed: false,
            tag_len: 0,
            timing: Default::default(),
        },
        &mut kf,
    )
    .unwrap();
    r.push(body(&f2, 0), now).unwrap();
    for i in 0..kf.data_count() {
        r.push(body(&kf, i), now).unwrap();
    }
    assert_eq!(
        r.poll(),
        Some(Output::Lost {
            first_index: 102,
            count: 1
        })
    );
    match r.poll() {
        Some(Output::Frame(f)) => {
            assert_eq!(f.index, 103);
            assert!(f.keyframe && f.discont);
            assert_eq!(f.data, kdata);
        }
        other => panic!("{other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random bytes and lying headers never panic, never exceed the memory cap, and never
    /// complete a frame that was not sent.
    #[test]
    fn hostile_shards(shards in proptest::collection::vec(
        (any::<u32>(), any::<u32>(), any::<u16>(), any::<u16>(), any::<u16>(), any::<u8>(),
         any::<u8>(), any::<u8>(), 0usize..3000), 1..200)) {
        let cfg = ReassemblerConfig { memory_cap: 8 << 20, max_frame_bytes: 4 << 20,
                                      ..ReassemblerConfig::default() };
        let mut r = Reassembler::new(cfg, Box::new(ReedSolomon8::new()));
        let mut now = Instant::now();
        for (fi, fl, ss, bc, bi, si, par, flags, len) in shards {
            let mut b = vec![0u8; VIDEO_HEADER_LEN + len];
            VideoHeader { frame_index: fi % 8, frame_len: fl % (6 << 20), shard_size: ss,
                block_count: bc % 8, block_index: bi % 8, shard_index: si, parity: par,
                flags, fec_scheme: 1, timing: Default::default() }.encode(&mut b);
            let _ = r.push(&b, now);
            prop_assert!(r.stats().memory_in_use <= cfg.memory_cap);
            now += Duration::from_millis(1);
            while let Some(o) = r.poll() {
                if let Output::Frame(f) = o {
                    // Anything delivered must be exactly the claimed length of zeros (the
                    // payloads here are all zero) — never bytes from elsewhere.
                    prop_assert!(f.data.iter().all(|&x| x == 0));
                }
            }
        }
        // Pure garbage too.
        for len in 0..64 {
            let g: Vec<u8> = (0..len).map(|i| (i * 37) as u8).collect();
            let _ = r.push(&g, now);
        }
        prop_assert!(r.stats().memory_in_use <= cfg.memory_cap);
    }
}

#[test]
fn memory_cap_gives_up_oldest() {
    let cfg = ReassemblerConfig {
        memory_cap: 1 << 20,
        ..ReassemblerConfig::default()
    };
    let mut r = Reassembler::new(cfg, Box::new(ReedSolomon8::new()));
    let now = Instant::now();
    // Ten 300 kB frames, each missing its last data shard: only ~3 fit at once.
    for idx in 0..10u32 {
        let d = packetize(&frame_bytes(300_000, idx as u64), idx, 0, 1400);
        for i in 0..d.data_count() - 1 {
            let _ = r.push(body(&d, i), now);
        }
        assert!(r.stats().memory_in_use <= cfg.memory_cap);
    }
    assert!(r.stats().frames_lost >= 6);
}

// ---------------------------------------------------------------------------------------------
// Repair: new parity rows from the host's history, used by the reassembler byte-exact.

use gstpunktfunk::protocol::fec::coder::ParityTable;
use gstpunktfunk::protocol::fec::repair::{
    RepairConfig, RepairHistory, RepairItem, RepairParams, RepairRequest,
};
use gstpunktfunk::protocol::media::reassembler::BlockNeed;

/// A history whose budget never binds (the tests below ask for much more than a share).
fn generous_history() -> RepairHistory {
    RepairHistory::new(RepairConfig {
        budget_share: 1000.0,
        budget_cap: 64 << 20,
        ..RepairConfig::default()
    })
}

fn repair_params() -> RepairParams {
    RepairParams {
        session_id: 1,
        first_packet_number: 1 << 40,
        sealed: false,
        tag_len: 0,
    }
}

/// Per block: (datagram indices of its shards, k, m).
fn blocks_of(d: &Datagrams) -> Vec<(Vec<usize>, usize, usize)> {
    let mut out: Vec<(Vec<usize>, usize, usize)> = Vec::new();
    for i in 0..d.len() {
        let (vh, _) = VideoHeader::decode(body(d, i)).unwrap();
        let b = vh.block_index as usize;
        if out.len() <= b {
            out.resize(b + 1, (Vec::new(), 0, vh.parity as usize));
        }
        out[b].0.push(i);
    }
    let layout = BlockLayout::for_shards(d.data_count());
    for (b, blk) in out.iter_mut().enumerate() {
        blk.1 = layout.data_in_block(b);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any loss pattern with at most m + e losses per block recovers the frame byte-exact once
    /// e repair shards per block arrive (new rows, in any order with the rest).
    #[test]
    fn repair_recovers_any_pattern_within_parity_plus_repair(
        len in 1usize..400_000, fec in 0u8..=40, e in 1usize..=8,
        picks in proptest::collection::vec(any::<u64>(), 16..64), seed in any::<u64>(),
        repair_first in any::<bool>(),
    ) {
        let frame = frame_bytes(len, seed);
        let mut p = Packetizer::new(1400, Box::new(ReedSolomon8::new()));
        let mut d = Datagrams::new();
        let params = FrameParams {
            frame_index: 77, keyframe: false, fec_percent: fec, session_id: 1,
            first_packet_number: 0, sealed: false, tag_len: 0,
            timing: Default::default(),
        };
        p.packetize_with(&frame, &params, &ParityTable::from_percent(fec), &mut d).unwrap();
        p.encode_recorded_parity(&mut d).unwrap();
        let mut history = generous_history();
        history.record(&d);

        // Drop up to m + e shards of each block (data or parity), chosen by the picks.
        let mut drop = vec![false; d.len()];
        let mut pick = picks.iter().cycle();
        let blocks = blocks_of(&d);
        for (members, _k, m) in &blocks {
            let mut members = members.clone();
            let n_drop = (*pick.next().unwrap() as usize % (m + e + 1)).min(members.len());
            for j in 0..n_drop {
                let r = (*pick.next().unwrap() as usize) % (members.len() - j);
                let last = members.len() - 1 - j;
                members.swap(r, last);
                drop[members[last]] = true;
            }
        }
        let items: Vec<RepairItem> = (0..blocks.len().min(16))
            .map(|b| RepairItem { block: b as u16, total: e as u8 })
            .collect();
        prop_assume!(blocks.len() <= 16);
        let req = RepairRequest::new(77, items).unwrap();
        let mut rep = Datagrams::new();
        let mut coder = ReedSolomon8::new();
        let a = history.answer(&req, &mut coder, &repair_params(), &mut rep).unwrap();
        prop_assert_eq!(a.shards, e * blocks.len());
        prop_assert!(a.unavailable.is_none());
        seal_all(&mut rep, &PlainAead);

        let mut r = Reassembler::new(ReassemblerConfig::default(), Box::new(ReedSolomon8::new()));
        let now = Instant::now();
        let push_repair = |r: &mut Reassembler| {
            for i in 0..rep.len() {
                let _ = r.push(&rep.get(i)[HEADER_LEN..], now);
            }
        };
        if repair_first {
            push_repair(&mut r);
        }
        for i in (0..d.len()).filter(|&i| !drop[i]) {
            let _ = r.push(body(&d, i), now);
        }
        if !repair_first {
            push_repair(&mut r);
        }
        match r.poll() {
            Some(Output::Frame(f)) => prop_assert_eq!(f.data, frame),
            other => prop_assert!(false, "frame not delivered: {:?}", other),
        }
        prop_assert_eq!(r.stats().shards_invalid, 0);
    }
}

#[test]
fn repair_index_limit_is_checked_before_allocation() {
    let frame = frame_bytes(20_000, 9);
    let d = packetize(&frame, 3, 20, 1400);
    let (vh, shard) = VideoHeader::decode(body(&d, 0)).unwrap();
    let k = d.data_count();
    let m = parity_for(k, 20);
    let mut r = Reassembler::new(ReassemblerConfig::default(), Box::new(ReedSolomon8::new()));
    let now = Instant::now();
    let limit = k + m + gstpunktfunk::protocol::fec::repair::MAX_REPAIR_ROWS;
    for si in [limit, 255] {
        let mut b = vec![0u8; VIDEO_HEADER_LEN + shard.len()];
        VideoHeader {
            shard_index: si as u8,
            parity: m as u8,
            ..vh
        }
        .encode(&mut b);
        assert!(r.push(&b, now).is_err(), "index {si}");
    }
    assert_eq!(r.stats().memory_in_use, 0);
    assert_eq!(r.stats().shards_invalid, 2);
}

#[test]
fn missing_reports_what_each_block_lacks() {
    let frame = frame_bytes(30_000, 4);
    let d = packetize(&frame, 8, 10, 1400);
    let k = d.data_count();
    let m = parity_for(k, 10);
    let mut r = Reassembler::new(ReassemblerConfig::default(), Box::new(ReedSolomon8::new()));
    let now = Instant::now();
    // Lose m + 2 data shards in the middle; the rest of the data arrives, parity not yet.
    let lost = 3..3 + m + 2;
    for i in (0..k).filter(|i| !lost.contains(i)) {
        r.push(body(&d, i), now).unwrap();
    }
    let mut needs: Vec<BlockNeed> = Vec::new();
    let f = r.missing(8, &mut needs).unwrap();
    assert_eq!(f.index, 8);
    assert_eq!(needs.len(), 1);
    let n = needs[0];
    assert_eq!(n.k as usize, k);
    assert_eq!(n.parity, Some(m as u8));
    assert_eq!(n.received as usize, k - m - 2);
    // The m parity shards may still come: 2 short now, m + 2 if nothing more arrives.
    assert_eq!(n.short_now, 2);
    assert_eq!(n.short_if_no_more as usize, m + 2);
    assert_eq!(r.incomplete(), vec![8]);
    assert!(r.missing(9, &mut needs).is_none());
}

#[test]
fn deadline_keeps_a_frame_for_repair_and_gives_it_up_when_it_passes() {
    let frame = frame_bytes(30_000, 5);
    let d = packetize(&frame, 20, 10, 1400);
    let k = d.data_count();
    let m = parity_for(k, 10);
    let mut history = generous_history();
    history.record(&d);
    let cfg = ReassemblerConfig::default();
    let t0 = Instant::now();

    // Within the deadline: past the reorder window, still kept; the repair completes it.
    let mut r = Reassembler::new(cfg, Box::new(ReedSolomon8::new()));
    for i in (m + 1)..d.len() {
        r.push(body(&d, i), t0).unwrap();
    }
    assert!(r.set_deadline(20, t0 + Duration::from_millis(40)));
    assert_eq!(r.next_timeout(), Some(t0 + Duration::from_millis(40)));
    r.handle_timeout(t0 + cfg.reorder_window + Duration::from_millis(5));
    assert!(r.poll().is_none(), "given up before its deadline");
    let req = RepairRequest::new(20, vec![RepairItem { block: 0, total: 1 }]).unwrap();
    let mut rep = Datagrams::new();
    history
        .answer(&req, &mut ReedSolomon8::new(), &repair_params(), &mut rep)
        .unwrap();
    r.push(&rep.get(0)[HEADER_LEN..], t0 + Duration::from_millis(30))
        .unwrap();
    match r.poll() {
        Some(Output::Frame(f)) => assert_eq!(f.data, frame),
        other => panic!("{other:?}"),
    }

    // Past the deadline: given up at the deadline, a late repair is counted late.
    let mut r = Reassembler::new(cfg, Box::new(ReedSolomon8::new()));
    for i in (m + 1)..d.len() {
        r.push(body(&d, i), t0).unwrap();
    }
    let deadline = t0 + Duration::from_millis(25);
    assert!(r.set_deadline(20, deadline));
    r.handle_timeout(deadline - Duration::from_millis(1));
    assert!(r.poll().is_none());
    r.handle_timeout(deadline);
    assert_eq!(
        r.poll(),
        Some(Output::Lost {
            first_index: 20,
            count: 1
        })
    );
    let _ = r.push(&rep.get(0)[HEADER_LEN..], deadline);
    assert_eq!(r.stats().shards_late, 1);
    // A deadline for a frame not in flight is refused.
    assert!(!r.set_deadline(20, deadline));
}
