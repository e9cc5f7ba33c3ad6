use super::*;
use crate::protocol::fec::coder::ReedSolomon8;
use crate::protocol::wire::{FEC_SCHEME_RS8, VIDEO_HEADER_LEN};

/// A flood of first shards of frames made of many tiny blocks. Each
/// claims 65,535 one-byte blocks of 1 data + 1 parity shard: 64 KiB of data but megabytes
/// of block state. The state is counted, so memory in use (and the real heap behind it)
/// never exceeds the cap.
#[test]
fn tiny_block_flood_cannot_exceed_the_memory_cap() {
    let cap = 8 << 20;
    let cfg = ReassemblerConfig {
        memory_cap: cap,
        ..ReassemblerConfig::default()
    };
    let mut r = Reassembler::new(cfg, Box::new(ReedSolomon8::new()));
    let now = Instant::now();
    let per_frame = slot_bookkeeping_bytes(65_535) + 65_535;
    assert!(
        per_frame > 2 << 20,
        "block state dwarfs the data: {per_frame}"
    );
    for i in 0..200u32 {
        let h = VideoHeader {
            frame_index: i,
            frame_len: 65_535,
            shard_size: 1,
            block_count: 65_535,
            block_index: (i % 65_535) as u16,
            shard_index: 0,
            parity: 1,
            flags: 0,
            fec_scheme: FEC_SCHEME_RS8,
            timing: Default::default(),
        };
        let mut body = [0u8; VIDEO_HEADER_LEN + 1];
        h.encode(&mut body);
        let _ = r.push(&body, now);
        let s = r.stats();
        assert!(s.memory_in_use <= cap, "{} > {cap}", s.memory_in_use);
        // What is counted is what is held.
        let held: usize = r
            .slots
            .iter()
            .map(|s| {
                s.data.len()
                    + s.blocks.iter().map(|b| b.parity.len()).sum::<usize>()
                    + slot_bookkeeping_bytes(s.blocks.len())
            })
            .sum();
        assert_eq!(held, s.memory_in_use);
    }
    assert!(r.slots.len() <= cap / per_frame);
    r.reset();
    assert_eq!(r.stats().memory_in_use, 0);
}

/// The one data shard of a one-shard frame `index` (2 parity), carrying byte `fill`.
fn shard(index: u32, fill: u8) -> Vec<u8> {
    let h = VideoHeader {
        frame_index: index,
        frame_len: 4,
        shard_size: 4,
        block_count: 1,
        block_index: 0,
        shard_index: 0,
        parity: 2,
        flags: 0,
        fec_scheme: FEC_SCHEME_RS8,
        timing: Default::default(),
    };
    let mut body = vec![fill; VIDEO_HEADER_LEN + 4];
    h.encode(&mut body[..VIDEO_HEADER_LEN]);
    body
}

/// Shard `si` of frame `index` laid out as `frame_len` bytes in shards of 100 bytes and
/// `blocks` blocks, 2 parity a block, with video `flags`.
fn flagged(index: u32, frame_len: u32, blocks: u16, si: u8, flags: u8) -> Vec<u8> {
    let h = VideoHeader {
        frame_index: index,
        frame_len,
        shard_size: 100,
        block_count: blocks,
        block_index: 0,
        shard_index: si,
        parity: 2,
        flags,
        fec_scheme: FEC_SCHEME_RS8,
        timing: Default::default(),
    };
    let mut body = vec![7u8; VIDEO_HEADER_LEN + 100];
    h.encode(&mut body[..VIDEO_HEADER_LEN]);
    body
}

/// Hostile trailing-parity claims are counted drops that allocate nothing: the flag on a
/// frame of two blocks or of more than `MAX_TRAILING_K` data shards (rows no host sends
/// behind the next frame, which would only hold the client's repair back), and a shard
/// whose flag contradicts its frame's. A real trailing frame whose rows never come is
/// given up at its deadline like any frame: memory stays bounded.
#[test]
fn hostile_trailing_parity_claims_are_counted_drops() {
    use crate::protocol::wire::VIDEO_FLAG_TRAILING as T;
    let mut r = Reassembler::new(ReassemblerConfig::default(), Box::new(ReedSolomon8::new()));
    let t0 = Instant::now();
    // Two blocks (4 data shards) claiming trailing rows.
    assert!(matches!(
        r.push(&flagged(5, 400, 2, 0, T), t0),
        Err(Rejected::Invalid(_))
    ));
    // One block of MAX_TRAILING_K + 1 data shards claiming them.
    let big = (MAX_TRAILING_K as u32 + 1) * 100;
    assert!(matches!(
        r.push(&flagged(5, big, 1, 0, T), t0),
        Err(Rejected::Invalid(_))
    ));
    assert_eq!(r.stats().shards_invalid, 2);
    assert_eq!(r.stats().memory_in_use, 0);
    assert!(r.slots.is_empty());
    // A real small trailing frame, then a shard of it without the flag: dropped.
    r.push(&flagged(5, 400, 1, 0, T), t0).unwrap();
    assert!(matches!(
        r.push(&flagged(5, 400, 1, 1, 0), t0),
        Err(Rejected::Invalid(_))
    ));
    assert_eq!(r.stats().shards_invalid, 3);
    let need = r.missing(5, &mut Vec::new()).expect("in flight");
    assert!(need.trailing);
    // Its trailing rows never come: given up at its deadline, nothing held.
    assert!(r.set_deadline(5, t0 + Duration::from_millis(50)));
    r.handle_timeout(t0 + Duration::from_millis(50));
    assert_eq!(delivered(&mut r), vec![(5, false)]);
    assert_eq!(r.stats().memory_in_use, 0);
}

fn delivered(r: &mut Reassembler) -> Vec<(u32, bool)> {
    std::iter::from_fn(|| r.poll())
        .map(|o| match o {
            Output::Frame(f) => (f.index, true),
            Output::Lost { first_index, .. } => (first_index, false),
        })
        .collect()
}

/// A frame of which nothing arrived holds the frames behind it while it is awaited, is
/// taken through the normal path when its shards come, and is given up at its deadline
/// otherwise; only frames between the next to deliver and the newest, a few at a time, and
/// across the u32 wrap.
#[test]
fn awaited_frames_hold_until_their_shards_or_deadline() {
    let mut r = Reassembler::new(ReassemblerConfig::default(), Box::new(ReedSolomon8::new()));
    let t0 = Instant::now();
    let base = u32::MAX - 1;
    r.push(&shard(base, 1), t0).unwrap();
    // base + 1 and base + 2 (index 0 after the wrap) never arrive; base + 3 does, and is
    // complete at once: the gap it shows is awaited before it is pushed.
    let mut unseen = Vec::new();
    r.unseen_into(8, Some(base.wrapping_add(3)), &mut unseen);
    assert_eq!(unseen, [base.wrapping_add(1), base.wrapping_add(2)]);
    let deadline = t0 + Duration::from_millis(100);
    assert!(r.await_frame(base.wrapping_add(1), deadline));
    assert!(r.await_frame(base.wrapping_add(2), deadline));
    r.push(&shard(base.wrapping_add(3), 4), t0).unwrap();
    r.unseen_into(8, None, &mut unseen);
    assert_eq!(unseen, [base.wrapping_add(1), base.wrapping_add(2)]);
    r.unseen_into(1, None, &mut unseen);
    assert_eq!(unseen, [base.wrapping_add(2)]);
    // Not awaitable: delivered already, seen, an index jump ahead.
    assert!(!r.await_frame(base, deadline));
    assert!(!r.await_frame(base.wrapping_add(3), deadline));
    assert!(!r.await_frame(base.wrapping_add(1 << 20), deadline));
    assert_eq!(delivered(&mut r), [(base, true)]);
    assert_eq!(r.next_timeout(), Some(deadline));
    // The first awaited frame's shard arrives (as a repair row would): delivered, and the
    // second still holds the complete frame behind it.
    let t1 = t0 + Duration::from_millis(90);
    r.push(&shard(base.wrapping_add(1), 2), t1).unwrap();
    assert_eq!(delivered(&mut r), [(base.wrapping_add(1), true)]);
    assert!(r.is_awaited(base.wrapping_add(2)));
    // At its deadline it is given up and the frame behind it delivered.
    r.handle_timeout(deadline);
    assert_eq!(
        delivered(&mut r),
        [(base.wrapping_add(2), false), (base.wrapping_add(3), true)]
    );
    assert!(!r.is_awaited(base.wrapping_add(2)));
    assert_eq!(r.next_timeout(), None);
}

/// At most `MAX_AWAITED` frames are awaited at once, whatever the gap.
#[test]
fn awaited_frames_are_bounded() {
    let mut r = Reassembler::new(ReassemblerConfig::default(), Box::new(ReedSolomon8::new()));
    let t0 = Instant::now();
    r.push(&shard(10, 1), t0).unwrap();
    let mut unseen = Vec::new();
    r.unseen_into(u32::MAX, Some(1_000), &mut unseen);
    assert_eq!(unseen.len(), 1_000 - 11);
    let deadline = t0 + Duration::from_millis(50);
    let taken = unseen
        .iter()
        .filter(|&&i| r.await_frame(i, deadline))
        .count();
    assert_eq!(taken, MAX_AWAITED);
    assert_eq!(r.awaited.len(), MAX_AWAITED);
    // Nothing across a discontinuity.
    r.unseen_into(u32::MAX, Some(10 + (1 << 17)), &mut unseen);
    assert!(unseen.is_empty());
    r.reset();
    assert!(!r.is_awaited(11));
}
