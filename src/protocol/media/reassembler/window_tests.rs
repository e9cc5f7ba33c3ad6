use std::time::Duration;

use super::*;
use crate::protocol::fec::coder::ReedSolomon8;
use crate::protocol::fec::window::encode_window_rows;
use crate::protocol::media::shared_rows::{OlderFrame, WindowExt};
use crate::protocol::wire::{
    FEC_SCHEME_RS8, VIDEO_FLAG_KEYFRAME, VIDEO_FLAG_TRAILING, VIDEO_FLAG_WINDOW, VIDEO_HEADER_LEN,
};

const K: usize = 4;
const M: usize = 5;
const SHARD: usize = 100;

fn frame(i: u32) -> Vec<u8> {
    // 390 bytes: four shards, the last one zero-padded.
    (0..390u32).map(|b| (b * 7 + i * 13) as u8).collect()
}

fn header(i: u32, si: usize, flags: u8) -> VideoHeader {
    VideoHeader {
        frame_index: i,
        frame_len: 390,
        shard_size: SHARD as u16,
        block_count: 1,
        block_index: 0,
        shard_index: si as u8,
        parity: M as u8,
        flags: VIDEO_FLAG_TRAILING | flags,
        fec_scheme: FEC_SCHEME_RS8,
        timing: Default::default(),
    }
}

fn body(h: &VideoHeader, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; VIDEO_HEADER_LEN];
    h.encode(&mut b);
    b.extend_from_slice(payload);
    b
}

fn shards(i: u32) -> Vec<Vec<u8>> {
    let mut f = frame(i);
    f.resize(K * SHARD, 0);
    f.chunks(SHARD).map(|c| c.to_vec()).collect()
}

/// Window row `r` of frame `newest` over `newest − older … newest`, as the host sends it.
fn window_row(newest: u32, older: u32, r: usize) -> Vec<u8> {
    let frames: Vec<Vec<Vec<u8>>> = (newest - older..=newest).map(shards).collect();
    let views: Vec<Vec<&[u8]>> = frames
        .iter()
        .map(|f| f.iter().map(|s| s.as_slice()).collect())
        .collect();
    let views: Vec<&[&[u8]]> = views.iter().map(|v| v.as_slice()).collect();
    let mut row = vec![0u8; SHARD];
    encode_window_rows(&views, r, &mut [&mut row]).unwrap();
    let ext = WindowExt {
        older: (0..older)
            .map(|_| OlderFrame {
                frame_len: 390,
                shard_size: SHARD as u16,
            })
            .collect(),
    };
    let mut payload = vec![0u8; ext.len()];
    ext.encode(&mut payload);
    payload.extend_from_slice(&row);
    body(&header(newest, K + r, VIDEO_FLAG_WINDOW), &payload)
}

fn data(i: u32, j: usize) -> Vec<u8> {
    body(&header(i, j, 0), &shards(i)[j])
}

/// Every data shard of frame `i`.
fn push_whole(r: &mut Reassembler, i: u32, now: Instant) {
    for j in 0..K {
        r.push(&data(i, j), now).unwrap();
    }
}

fn frames_out(r: &mut Reassembler) -> Vec<(u32, Vec<u8>)> {
    std::iter::from_fn(|| r.poll())
        .filter_map(|o| match o {
            Output::Frame(f) => Some((f.index, f.data)),
            Output::Lost { .. } => None,
        })
        .collect()
}

fn reassembler() -> Reassembler {
    Reassembler::new(ReassemblerConfig::default(), Box::new(ReedSolomon8::new()))
}

/// A frame that lost half its data is rebuilt byte-exact from window rows over it and the two
/// frames delivered before it (retained for that), and leaves no memory behind.
#[test]
fn window_rows_rebuild_a_frame_from_the_frames_delivered_before_it() {
    let mut r = reassembler();
    let now = Instant::now();
    for i in 0..2 {
        push_whole(&mut r, i, now);
    }
    r.push(&data(2, 0), now).unwrap();
    r.push(&data(2, 3), now).unwrap();
    r.push(&window_row(2, 2, 1), now).unwrap();
    assert_eq!(
        frames_out(&mut r).len(),
        2,
        "frame 2 waits for a second row"
    );
    r.push(&window_row(2, 2, 4), now).unwrap();
    assert_eq!(frames_out(&mut r), [(2, frame(2))]);
    let st = r.stats();
    assert_eq!(st.shards_recovered, 2);
    assert_eq!(st.memory_in_use, 0);
}

/// Rows of a later, complete frame rebuild an older incomplete one: the newer frame is held
/// behind it, its rows kept while the older frame needs them.
#[test]
fn a_complete_frames_rows_rebuild_the_incomplete_frame_before_it() {
    let mut r = reassembler();
    let now = Instant::now();
    push_whole(&mut r, 0, now);
    r.push(&data(1, 2), now).unwrap();
    push_whole(&mut r, 2, now);
    assert_eq!(frames_out(&mut r).len(), 1);
    for row in 0..3 {
        r.push(&window_row(2, 2, row), now).unwrap();
    }
    assert_eq!(frames_out(&mut r), [(1, frame(1)), (2, frame(2))]);
    assert_eq!(r.stats().memory_in_use, 0);
}

/// Malformed window rows are refused and counted, never a panic.
#[test]
fn malformed_window_rows_are_refused() {
    let mut r = reassembler();
    let now = Instant::now();
    push_whole(&mut r, 0, now);
    let good = window_row(1, 1, 0);
    let ext_at = VIDEO_HEADER_LEN;
    let bad = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        b
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("no trailing flag", {
            let mut h = header(1, K, VIDEO_FLAG_WINDOW);
            h.flags &= !VIDEO_FLAG_TRAILING;
            body(&h, &good[VIDEO_HEADER_LEN..])
        }),
        ("no older frame", bad(&|b| b[ext_at] = 0)),
        ("three older frames", bad(&|b| b[ext_at] = 3)),
        ("row too short", bad(&|b| b.truncate(b.len() - 1))),
        ("row too long", bad(&|b| b.push(0))),
        ("a data shard index", {
            let h = header(1, 1, VIDEO_FLAG_WINDOW);
            body(&h, &good[VIDEO_HEADER_LEN..])
        }),
        (
            "an older frame of 81 shards",
            bad(&|b| b[ext_at + 1..ext_at + 5].copy_from_slice(&(81 * SHARD as u32).to_be_bytes())),
        ),
        ("a window past one Reed-Solomon block", {
            // Two older frames of 80 shards and a frame of 4 with 100 rows: 264 shards.
            let mut h = header(1, K + 99, VIDEO_FLAG_WINDOW);
            h.parity = 100;
            let older = OlderFrame {
                frame_len: 80 * SHARD as u32,
                shard_size: SHARD as u16,
            };
            let ext = WindowExt {
                older: vec![older; 2],
            };
            let mut payload = vec![0u8; ext.len() + SHARD];
            ext.encode(&mut payload);
            body(&h, &payload)
        }),
        ("a truncated extension", bad(&|b| b.truncate(ext_at + 3))),
    ];
    for (what, b) in &cases {
        assert!(
            matches!(r.push(b, now), Err(Rejected::Invalid(_))),
            "{what} accepted"
        );
    }
    assert_eq!(r.stats().shards_invalid, cases.len() as u64);
}

/// A row whose window contradicts the frame it names (another length than the frame the
/// client holds) is kept but never used: the frame is not rebuilt from it, and nothing breaks.
#[test]
fn a_row_contradicting_a_known_frame_rebuilds_nothing() {
    let mut r = reassembler();
    let now = Instant::now();
    push_whole(&mut r, 0, now);
    for j in 0..K - 1 {
        r.push(&data(1, j), now).unwrap();
    }
    let mut row = window_row(1, 1, 0);
    // The older frame's length: 391 instead of 390.
    row[VIDEO_HEADER_LEN + 1..VIDEO_HEADER_LEN + 5].copy_from_slice(&391u32.to_be_bytes());
    r.push(&row, now).unwrap();
    assert_eq!(
        frames_out(&mut r).len(),
        1,
        "frame 1 rebuilt from a contradicting row"
    );
    assert_eq!(r.stats().shards_recovered, 0);
}

/// A frame its rows determine is rebuilt even while a later frame whose rows name it still
/// lacks rows of its own: the solve takes what the rows determine, not only groups of
/// unknowns that have as many rows as unknowns (frame 1's one unknown and frame 2's three,
/// joined by frame 2's row, have two rows between them).
#[test]
fn a_frame_its_rows_determine_is_rebuilt_while_a_later_frame_lacks_rows() {
    let mut r = reassembler();
    let now = Instant::now();
    push_whole(&mut r, 0, now);
    for j in 0..K - 1 {
        r.push(&data(1, j), now).unwrap();
    }
    r.push(&data(2, 0), now).unwrap();
    r.push(&window_row(2, 2, 0), now).unwrap();
    assert_eq!(frames_out(&mut r).len(), 1);
    r.push(&window_row(1, 1, 0), now).unwrap();
    assert_eq!(frames_out(&mut r), [(1, frame(1))]);
    assert_eq!(r.stats().shards_recovered, 1);
}

/// A complete keyframe waits a few milliseconds for the frame just before it even when nothing
/// of that frame arrived yet: lost whole, it is first seen by the rows it keeps behind the
/// keyframe, which arrive right after the keyframe's own datagrams. (Given up as soon as the
/// keyframe completed, it was lost although its rows came 2 ms later.)
#[test]
fn a_keyframe_waits_for_the_rows_of_the_frame_before_it_lost_whole() {
    let mut r = reassembler();
    let now = Instant::now();
    push_whole(&mut r, 0, now);
    // As the session does when a newer frame's shards show a gap.
    assert!(r.await_frame(1, now + Duration::from_millis(200)));
    for (j, s) in shards(2).iter().enumerate() {
        r.push(&body(&header(2, j, VIDEO_FLAG_KEYFRAME), s), now)
            .unwrap();
    }
    r.handle_timeout(now + Duration::from_millis(1));
    assert_eq!(frames_out(&mut r), [(0, frame(0))]);
    let later = now + Duration::from_millis(2);
    for row in 0..K {
        r.push(&window_row(1, 1, row), later).unwrap();
    }
    assert_eq!(frames_out(&mut r), [(1, frame(1)), (2, frame(2))]);
    assert_eq!(r.stats().frames_lost, 0);
}
