use super::*;
use crate::protocol::fec::coder::{ParityTable, ReedSolomon8};
use crate::protocol::media::packetizer::{FrameParams, Packetizer, seal_all};
use crate::protocol::media::reassembler::{Output, Reassembler, ReassemblerConfig};
use crate::protocol::security::crypto::PlainAead;
use std::time::Instant;

fn frame(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) ^ seed) as u8)
        .collect()
}

fn sent(data: &[u8], index: u32, pct: u8) -> Datagrams {
    let mut p = Packetizer::new(1400, Box::new(ReedSolomon8::new()));
    let mut out = Datagrams::new();
    let params = FrameParams {
        frame_index: index,
        keyframe: false,
        fec_percent: pct,
        session_id: 7,
        first_packet_number: 0,
        sealed: false,
        tag_len: 0,
        timing: Default::default(),
    };
    p.packetize_with(data, &params, &ParityTable::from_percent(pct), &mut out)
        .unwrap();
    p.encode_recorded_parity(&mut out).unwrap();
    seal_all(&mut out, &PlainAead);
    out
}

fn params() -> RepairParams {
    RepairParams {
        session_id: 7,
        first_packet_number: 10_000,
        sealed: false,
        tag_len: 0,
    }
}

fn request(index: u32, items: &[(u16, u8)]) -> RepairRequest {
    RepairRequest::new(
        index,
        items
            .iter()
            .map(|&(block, total)| RepairItem { block, total })
            .collect(),
    )
    .unwrap()
}

#[test]
fn repair_rows_are_new_parity_and_rebuild_the_frame() {
    let data = frame(40_000, 1);
    let d = sent(&data, 5, 10);
    let n = d.data_count();
    let m = d.block_parity()[0] as usize;
    let mut h = RepairHistory::new(RepairConfig::default());
    h.record(&d);
    // Lose m + 3 data shards: the block cannot be rebuilt from what was sent.
    let lost: Vec<usize> = (0..m + 3).map(|i| i * 2).collect();
    let mut r = Reassembler::new(ReassemblerConfig::default(), Box::new(ReedSolomon8::new()));
    let now = Instant::now();
    for (i, dg) in d.iter().enumerate() {
        if !lost.contains(&i) {
            r.push(&dg[HEADER_LEN..], now).unwrap();
        }
    }
    assert!(r.poll().is_none());
    let mut out = Datagrams::new();
    let mut coder = ReedSolomon8::new();
    let a = h
        .answer(&request(5, &[(0, 3)]), &mut coder, &params(), &mut out)
        .unwrap();
    assert_eq!(
        a,
        RepairAnswer {
            shards: 3,
            unavailable: None
        }
    );
    seal_all(&mut out, &PlainAead);
    for (j, dg) in out.iter().enumerate() {
        let (hd, body) = Header::decode(dg).unwrap();
        assert_eq!(hd.packet_number, 10_000 + j as u64);
        let (vh, shard) = VideoHeader::decode(body).unwrap();
        assert_eq!(vh.shard_index as usize, n + m + j);
        assert_eq!(vh.parity as usize, m);
        // Not a copy of any sent shard.
        assert!(
            d.iter()
                .all(|s| &s[HEADER_LEN + VIDEO_HEADER_LEN..] != shard)
        );
        r.push(body, now).unwrap();
    }
    match r.poll() {
        Some(Output::Frame(f)) => assert_eq!(f.data, data),
        other => panic!("{other:?}"),
    }
    // A copy of the request gets nothing; one asking for 2 more (5 in total) gets further
    // rows, never the same ones.
    let a = h
        .answer(&request(5, &[(0, 3)]), &mut coder, &params(), &mut out)
        .unwrap();
    assert_eq!(a.shards, 0);
    assert_eq!(a.unavailable, None);
    assert_eq!(h.stats().copies, 1);
    let a = h
        .answer(&request(5, &[(0, 5)]), &mut coder, &params(), &mut out)
        .unwrap();
    assert_eq!(a.shards, 2);
    let (vh, _) = VideoHeader::decode(&out.get(0)[HEADER_LEN..]).unwrap();
    assert_eq!(vh.shard_index as usize, n + m + 3);
    assert_eq!(h.stats().shards_sent, 5);
}

#[test]
fn unknown_frames_blocks_and_exhausted_rows_are_refused() {
    let d = sent(&frame(5_000, 2), 9, 20);
    // A budget that never binds here.
    let mut h = RepairHistory::new(RepairConfig {
        budget_share: 1000.0,
        ..RepairConfig::default()
    });
    h.record(&d);
    let mut out = Datagrams::new();
    let mut c = ReedSolomon8::new();
    let a = h
        .answer(&request(8, &[(0, 1)]), &mut c, &params(), &mut out)
        .unwrap();
    assert_eq!(a.shards, 0);
    assert_eq!(a.unavailable.unwrap().reason, UnavailableReason::NotHeld);
    let a = h
        .answer(&request(9, &[(0, 1), (1, 1)]), &mut c, &params(), &mut out)
        .unwrap();
    assert_eq!(a.shards, 1);
    assert_eq!(a.unavailable.unwrap().reason, UnavailableReason::NotHeld);
    // Rows run out at MAX_REPAIR_ROWS for the block: 1 served so far, asking for all 64
    // gets the other 63.
    let a = h
        .answer(&request(9, &[(0, 64)]), &mut c, &params(), &mut out)
        .unwrap();
    assert_eq!(a.shards, MAX_REPAIR_ROWS - 1);
    assert_eq!(a.unavailable, None);
    // Margin rows count against the block's rows: a block whose margin took them all
    // refuses what is asked beyond them.
    h.record(&sent(&frame(5_000, 3), 10, 20));
    h.set_margin(RepairMargin::from_fn(|_| MAX_REPAIR_ROWS));
    let a = h
        .answer(&request(10, &[(0, 1)]), &mut c, &params(), &mut out)
        .unwrap();
    assert_eq!((a.shards, a.unavailable), (MAX_REPAIR_ROWS, None));
    assert_eq!(h.stats().margin_rows, MAX_REPAIR_ROWS as u64 - 1);
    let a = h
        .answer(&request(10, &[(0, 2)]), &mut c, &params(), &mut out)
        .unwrap();
    assert_eq!(a.shards, 0);
    assert_eq!(
        a.unavailable.unwrap().reason,
        UnavailableReason::RowsExhausted
    );
}

#[test]
fn budget_bounds_repair_to_a_share_of_the_stream() {
    let cfg = RepairConfig {
        budget_share: 0.1,
        ..RepairConfig::default()
    };
    let mut h = RepairHistory::new(cfg);
    let mut c = ReedSolomon8::new();
    let mut out = Datagrams::new();
    let mut media = 0u64;
    for i in 0..50u32 {
        let d = sent(&frame(30_000, i), i, 10);
        media += d.wire_bytes() as u64;
        h.record(&d);
        // Ask for far more than the budget every frame.
        let _ = h
            .answer(&request(i, &[(0, 64)]), &mut c, &params(), &mut out)
            .unwrap();
    }
    let spent = h.stats().bytes_sent;
    assert!(spent > 0);
    assert!(
        spent as f64 <= 0.1 * media as f64,
        "repair {spent} of media {media}"
    );
    assert!(h.stats().refused_budget > 0);
}

#[test]
fn history_memory_is_bounded_and_evicts_oldest() {
    let cfg = RepairConfig {
        max_frames: 8,
        max_bytes: 100_000,
        ..RepairConfig::default()
    };
    let mut h = RepairHistory::new(cfg);
    for i in 0..200u32 {
        let len = 1_000 + (i as usize * 7919) % 40_000;
        h.record(&sent(&frame(len, i), i, 20));
        assert!(h.frames_held() <= 8);
        assert!(h.bytes_held() <= 100_000);
        // The newest frame is always held; older ones go first.
        assert_eq!(h.frames.back().map(|f| f.index), Some(i));
        let idx: Vec<u32> = h.frames.iter().map(|f| f.index).collect();
        assert!(idx.windows(2).all(|w| w[0] < w[1]));
    }
    assert!(h.stats().frames_evicted >= 190);
    // A frame larger than the whole bound is not kept (and evicts nothing).
    let before = h.frames_held();
    h.record(&sent(&frame(200_000, 1), 1000, 20));
    assert_eq!(h.frames_held(), before);
}

#[test]
fn request_codec_limits() {
    let enc = |r: &RepairRequest| {
        let mut b = Vec::new();
        r.encode(&mut Writer::new(&mut b));
        b
    };
    let r = request(3, &[(0, 1), (5, 64)]);
    assert_eq!(RepairRequest::decode(&mut Reader::new(&enc(&r))), Ok(r));
    assert!(RepairRequest::new(1, vec![]).is_none());
    assert!(
        RepairRequest::new(
            1,
            vec![RepairItem {
                block: 0,
                total: 65
            }]
        )
        .is_none()
    );
    assert!(
        RepairRequest::new(
            1,
            vec![
                RepairItem { block: 2, total: 1 },
                RepairItem { block: 2, total: 1 }
            ]
        )
        .is_none()
    );
    // Count beyond the limit, count with missing items, zero total.
    assert!(RepairRequest::decode(&mut Reader::new(&[0, 0, 0, 1, 17])).is_err());
    assert_eq!(
        RepairRequest::decode(&mut Reader::new(&[0, 0, 0, 1, 2, 0, 0, 1])),
        Err(WireError::Truncated)
    );
    assert!(RepairRequest::decode(&mut Reader::new(&[0, 0, 0, 1, 1, 0, 0, 0])).is_err());
    assert!(RepairUnavailable::decode(&mut Reader::new(&[0, 0, 0, 1, 9])).is_err());
}

/// An early request (asked before the frame is known to fail) round-trips with its flag, the
/// flag is the count byte's high bit, a whole-frame request cannot carry it, and the count
/// limit still applies under it.
#[test]
fn early_request_codec() {
    let enc = |r: &RepairRequest| {
        let mut b = Vec::new();
        r.encode(&mut Writer::new(&mut b));
        b
    };
    let r = request(3, &[(0, 2)]).early();
    assert!(r.is_early());
    let b = enc(&r);
    assert_eq!(b, [0, 0, 0, 3, 0x81, 0, 0, 2]);
    assert_eq!(RepairRequest::decode(&mut Reader::new(&b)), Ok(r));
    assert!(!RepairRequest::whole(3, 1).unwrap().early().is_early());
    assert!(RepairRequest::decode(&mut Reader::new(&[0, 0, 0, 1, 0x80, 1])).is_err());
    assert!(RepairRequest::decode(&mut Reader::new(&[0, 0, 0, 1, 0x91])).is_err());
}

/// An early request's answer carries no margin rows; the same totals asked again normally
/// get only the margin of what is new (nothing), and a request for more gets its margin.
#[test]
fn an_early_request_is_answered_without_margin() {
    let mut h = RepairHistory::new(RepairConfig {
        budget_share: 1000.0,
        ..RepairConfig::default()
    });
    h.record(&sent(&frame(5_000, 4), 11, 20));
    h.set_margin(RepairMargin::from_fn(|n| if n == 0 { 0 } else { 3 }));
    let mut out = Datagrams::new();
    let mut c = ReedSolomon8::new();
    let a = h
        .answer(&request(11, &[(0, 2)]).early(), &mut c, &params(), &mut out)
        .unwrap();
    assert_eq!((a.shards, a.unavailable), (2, None));
    assert_eq!(h.stats().margin_rows, 0);
    let a = h
        .answer(&request(11, &[(0, 3)]), &mut c, &params(), &mut out)
        .unwrap();
    assert_eq!(a.shards, 1 + 3);
    assert_eq!(h.stats().margin_rows, 3);
}

#[test]
fn whole_frame_request_codec_limits() {
    let enc = |r: &RepairRequest| {
        let mut b = Vec::new();
        r.encode(&mut Writer::new(&mut b));
        b
    };
    let r = RepairRequest::whole(u32::MAX, 3).unwrap();
    assert_eq!(enc(&r), [0xff, 0xff, 0xff, 0xff, 0, 3]);
    assert_eq!(RepairRequest::decode(&mut Reader::new(&enc(&r))), Ok(r));
    assert!(RepairRequest::whole(1, 0).is_none());
    assert!(RepairRequest::whole(1, MAX_WHOLE_ROUNDS + 1).is_none());
    // No rounds byte, zero rounds, too many rounds.
    assert_eq!(
        RepairRequest::decode(&mut Reader::new(&[0, 0, 0, 1, 0])),
        Err(WireError::Truncated)
    );
    assert!(RepairRequest::decode(&mut Reader::new(&[0, 0, 0, 1, 0, 0])).is_err());
    assert!(RepairRequest::decode(&mut Reader::new(&[0, 0, 0, 1, 0, 5])).is_err());
}

/// A frame of which nothing arrived is rebuilt from the answer to a whole-frame request
/// alone, through the reassembler's normal path; a copy of the request gets nothing, the
/// next round's request gets one more round of rows (within the block's 64).
#[test]
fn whole_frame_answer_rebuilds_a_frame_never_seen() {
    // One block of 40 data shards.
    let data = frame(53_000, 4);
    let d = sent(&data, 9, 20);
    // Budget for more than the frame (a fresh history has saved up one frame's share).
    let mut h = RepairHistory::new(RepairConfig {
        budget_share: 4.0,
        ..RepairConfig::default()
    });
    h.record(&d);
    let mut coder = ReedSolomon8::new();
    let mut out = Datagrams::new();
    let a = ask_whole(&mut h, 9, 1, &mut coder, &mut out);
    assert_eq!(a.unavailable, None);
    assert_eq!(a.shards, d.data_count());
    assert_eq!(h.stats().whole_requests, 1);
    seal_all(&mut out, &PlainAead);
    let mut r = Reassembler::new(ReassemblerConfig::default(), Box::new(ReedSolomon8::new()));
    let now = Instant::now();
    for dg in out.iter() {
        let (_, body) = Header::decode(dg).unwrap();
        r.push(body, now).unwrap();
    }
    match r.poll() {
        Some(Output::Frame(f)) => assert_eq!(f.data, data),
        other => panic!("{other:?}"),
    }
    let copy = ask_whole(&mut h, 9, 1, &mut coder, &mut out);
    assert_eq!(copy.shards, 0);
    assert_eq!(copy.unavailable, None);
    assert_eq!(h.stats().copies, 1);
    let next = ask_whole(&mut h, 9, 2, &mut coder, &mut out);
    // Two rounds ask 80 rows in all, capped at the 64 a block may get: 24 more.
    assert_eq!(next.shards, 64 - 40);
    assert_eq!(next.unavailable, None);
}

/// `h`'s answer to a whole-frame request for `index` over `rounds` rounds.
fn ask_whole(
    h: &mut RepairHistory,
    index: u32,
    rounds: u8,
    coder: &mut ReedSolomon8,
    out: &mut Datagrams,
) -> RepairAnswer {
    let req = RepairRequest::whole(index, rounds).unwrap();
    h.answer(&req, coder, &params(), out).unwrap()
}

fn unavailable(frame_index: u32, reason: u8) -> RepairUnavailable {
    let mut b = vec![0u8; 5];
    b[..4].copy_from_slice(&frame_index.to_be_bytes());
    b[4] = reason;
    RepairUnavailable::decode(&mut Reader::new(&b)).unwrap()
}

/// Hostile whole-frame requests are refused before any coding work and counted: a frame
/// never held (too old or never sent), and a frame whose blocks repair rows cannot rebuild
/// (more data shards in a block than a block may get rows).
#[test]
fn hostile_whole_frame_requests_are_refused_cheaply() {
    let mut h = RepairHistory::new(RepairConfig::default());
    h.record(&sent(&frame(8_000, 1), 100, 20));
    // One block of 100 data shards.
    h.record(&sent(&frame(133_000, 2), 101, 20));
    let mut coder = ReedSolomon8::new();
    let mut out = Datagrams::new();
    let budget = h.budget();
    for old in [99u32, 100u32.wrapping_sub(1 << 31), 102, u32::MAX] {
        let a = ask_whole(&mut h, old, 4, &mut coder, &mut out);
        assert_eq!(a.shards, 0);
        assert_eq!(a.unavailable, Some(unavailable(old, 1)));
    }
    let a = ask_whole(&mut h, 101, 1, &mut coder, &mut out);
    assert_eq!(a.shards, 0);
    assert_eq!(a.unavailable, Some(unavailable(101, 3)));
    let st = h.stats();
    assert_eq!(st.refused_not_held, 4);
    assert_eq!(st.refused_rows, 1);
    assert_eq!(st.whole_requests, 5);
    assert_eq!(st.shards_sent, 0);
    assert_eq!(h.budget(), budget);
}
