//! Unit tests of the estimator's bookkeeping and control law on hand-made feedback (the
//! simulated bottleneck's tests are in `tests/congestion_estimator.rs`).

use std::time::{Duration, Instant};

use super::delay::{QUEUE_HIGH, QUEUE_LOW};
use super::*;
use crate::protocol::feedback::Feedback;

fn sent(t: Instant, datagrams: u32, data: u32) -> SentFrame {
    SentFrame {
        first_send: t,
        last_send: t,
        datagrams,
        data_datagrams: data,
        wire_bytes: datagrams as u64 * 1400,
        media_bytes: data as u64 * 1350,
    }
}

fn fb_for(base: u32, frames: &[(u32, i64)], base_time_us: u64) -> Feedback {
    Feedback {
        seq: 0,
        base_frame: base,
        base_time_us,
        late: 0,
        frames: frames
            .iter()
            .map(
                |&(received, off)| crate::protocol::feedback::FrameFeedback {
                    received,
                    bytes: received as u64 * 1400,
                    first_offset_us: off,
                    span_us: if received > 0 { 1000 } else { 0 },
                },
            )
            .collect(),
    }
}

#[test]
fn starts_at_the_start_bitrate_and_respects_the_bounds() {
    let t0 = Instant::now();
    let cfg = BweConfig {
        min_bitrate_bps: 1_000_000,
        max_bitrate_bps: 5_000_000,
        start_bitrate_bps: 50_000_000,
        initial_media_share: 2.0,
        link_share: f64::NAN,
    };
    let est = BandwidthEstimator::new(cfg, t0);
    let e = est.estimate();
    assert_eq!(e.state, BweState::Startup);
    assert_eq!(e.target_bitrate_bps, 5_000_000);
    assert_eq!(est.config().initial_media_share, 0.8);
    assert_eq!(est.config().link_share, 1.0);
    assert_eq!(e.estimate_bps, 6_250_000);
    assert_eq!(e.pacing_rate_bps, 9_375_000);
    // A silent path halves it every FEEDBACK_TIMEOUT, never below the minimum.
    let mut est = est;
    let mut t = t0;
    for i in 0..200u32 {
        t = t0 + Duration::from_millis(16 * i as u64);
        est.on_frame_sent(i, sent(t, 10, 8), t);
        if est.poll_timeout().is_some_and(|at| at <= t) {
            est.handle_timeout(t);
        }
    }
    let e = est.estimate();
    assert_eq!(e.target_bitrate_bps, 1_000_000, "{e:?}");
    assert_eq!(e.state, BweState::Drain);
    assert!(t > t0 + FEEDBACK_TIMEOUT * 3);
}

/// Frames paced over 10 ms, 5 ms on the way; from frame 60 on each frame's first datagram
/// waits `wait_ms` behind another flow's burst while its last one arrives unqueued, and
/// `received` of the 10 datagrams arrive. Returns the estimate after 120 frames.
fn first_waits_last_does_not(wait_ms: i64, received: u32) -> Estimate {
    let t0 = Instant::now();
    let mut est = BandwidthEstimator::new(BweConfig::default(), t0);
    for i in 0..120u32 {
        let t = t0 + Duration::from_micros(16_667 * u64::from(i));
        let send_us = 16_667 * i64::from(i);
        let frame = SentFrame {
            last_send: t + Duration::from_millis(10),
            ..sent(t, 10, 8)
        };
        est.on_frame_sent(i, frame, t);
        let wait = if i >= 60 { wait_ms * 1000 } else { 0 };
        let (first, last) = (send_us + 5_000 + wait, send_us + 15_000);
        let fb = Feedback {
            seq: i as u16,
            base_frame: i,
            base_time_us: first as u64,
            late: 0,
            frames: vec![crate::protocol::feedback::FrameFeedback {
                received: if i >= 60 { received } else { 10 },
                bytes: 14_000,
                first_offset_us: 0,
                span_us: (last - first) as u64,
            }],
        };
        est.on_feedback(&fb, t + Duration::from_millis(16));
    }
    est.estimate()
}

#[test]
fn a_paced_frames_last_datagram_shows_the_queue_is_not_standing() {
    // Waiting behind another flow's frame burst is not a standing queue when the frame's
    // last datagram (sent 10 ms later) gets through unqueued.
    let e = first_waits_last_does_not(8, 10);
    assert!(e.queue_delay < QUEUE_LOW, "{e:?}");
    assert_ne!(e.state, BweState::Drain, "{e:?}");
    // With a datagram of the frame lost, the last one to arrive may not be the last sent:
    // only the first datagram's delay counts, and the wait reads as a queue.
    let e = first_waits_last_does_not(8, 9);
    assert!(e.queue_delay >= Duration::from_millis(7), "{e:?}");
    assert_eq!(e.state, BweState::Drain, "{e:?}");
}

#[test]
fn skip_frames_do_not_shrink_the_media_share() {
    // An encoder at its minimum on a picture it cannot code sends tiny skip frames (one
    // data and two parity datagrams of ~100 bytes): their overhead must not set the
    // target, or the target stays at a fraction of the estimate and the encoder at its
    // minimum for good.
    let t0 = Instant::now();
    let mut est = BandwidthEstimator::new(BweConfig::default(), t0);
    for i in 0..60u32 {
        let t = t0 + Duration::from_millis(16 * u64::from(i));
        est.on_frame_sent(i, sent(t, 10, 8), t);
    }
    let full = est.estimate().media_share;
    assert!((full - 8.0 * 1350.0 / 14_000.0).abs() < 1e-9, "{full}");
    for i in 60..200u32 {
        let t = t0 + Duration::from_millis(16 * u64::from(i));
        let skip = SentFrame {
            wire_bytes: 3 * 100,
            media_bytes: 30,
            ..sent(t, 3, 1)
        };
        est.on_frame_sent(i, skip, t);
    }
    let e = est.estimate();
    assert_eq!(e.media_share, full);
    let want = (e.estimate_bps as f64 * full) as u64;
    assert!(e.target_bitrate_bps.abs_diff(want) <= 1, "{e:?}");
    // A stream that never sent a larger frame pays its small frames' overhead.
    let mut small = BandwidthEstimator::new(BweConfig::default(), t0);
    for i in 0..10u32 {
        let t = t0 + Duration::from_millis(16 * u64::from(i));
        small.on_frame_sent(i, sent(t, 3, 1), t);
    }
    let share = small.estimate().media_share;
    assert!((share - 1350.0 / 4200.0).abs() < 1e-9, "{share}");
}

#[test]
fn a_pause_in_sending_is_not_starvation() {
    let t0 = Instant::now();
    let mut est = BandwidthEstimator::new(BweConfig::default(), t0);
    est.on_frame_sent(0, sent(t0, 10, 8), t0);
    est.on_feedback(
        &fb_for(0, &[(10, 0)], 5_000),
        t0 + Duration::from_millis(20),
    );
    let before = est.estimate().target_bitrate_bps;
    // Ten seconds later the stream resumes: no cut for the silence.
    let t1 = t0 + Duration::from_secs(10);
    est.on_frame_sent(1, sent(t1, 10, 8), t1);
    assert_eq!(est.poll_timeout(), Some(t1 + FEEDBACK_TIMEOUT));
    est.handle_timeout(t1 + Duration::from_millis(100));
    assert_eq!(est.estimate().target_bitrate_bps, before);
    // But silence after it is.
    est.handle_timeout(t1 + FEEDBACK_TIMEOUT);
    assert!(est.estimate().target_bitrate_bps < before);
    // Once per timeout.
    let after = est.estimate().target_bitrate_bps;
    est.handle_timeout(t1 + FEEDBACK_TIMEOUT + Duration::from_millis(1));
    assert_eq!(est.estimate().target_bitrate_bps, after);
}

#[test]
fn feedback_for_unknown_or_already_reported_frames_is_ignored() {
    let t0 = Instant::now();
    let mut est = BandwidthEstimator::new(BweConfig::default(), t0);
    for i in 0..10u32 {
        let t = t0 + Duration::from_millis(16 * i as u64);
        est.on_frame_sent(100 + i, sent(t, 10, 8), t);
    }
    let now = t0 + Duration::from_millis(200);
    // Frames the host never sent (before, after, wrapped): nothing changes.
    let e0 = est.estimate();
    for base in [0, 99 - 31, 110, u32::MAX - 3, 1 << 31] {
        est.on_feedback(&fb_for(base, &[(0, 0); 32], 0), now);
    }
    assert_eq!(est.estimate(), e0);
    assert!(est.losses.is_empty());
    // A report of frame 100 counts once, however often it is repeated.
    let fb = fb_for(100, &[(7, 0)], 10_000);
    est.on_feedback(&fb, now);
    est.on_feedback(&fb, now);
    assert_eq!(est.losses.len(), 1);
    assert_eq!(est.losses[0].lost, 3);
    assert_eq!(est.lost_frames.len(), 1);
    // Memory stays bounded under a flood of records.
    for i in 0..5_000u32 {
        est.on_frame_sent(110 + i, sent(now, 1, 1), now);
    }
    assert!(est.records.len() <= MAX_RECORDS);
}

#[test]
fn large_drop_asks_for_a_keyframe_only_when_frames_were_lost() {
    for lose in [false, true] {
        let t0 = Instant::now();
        let mut est = BandwidthEstimator::new(
            BweConfig {
                start_bitrate_bps: 20_000_000,
                ..BweConfig::default()
            },
            t0,
        );
        est.set_rtt(Duration::from_millis(20));
        // Frames 0..10 arrive with a queue that grows by 8 ms a frame: the path has
        // suddenly become much slower. With `lose`, frame 5 loses half its datagrams.
        let mut rows = Vec::new();
        for i in 0..10u32 {
            let t = t0 + Duration::from_micros(16_667 * i as u64);
            est.on_frame_sent(i, sent(t, 30, 25), t);
            let received = if lose && i == 5 { 15 } else { 30 };
            rows.push((received, (16_667 + 8_000) * i as i64));
        }
        let now = t0 + Duration::from_millis(250);
        let mut fb = fb_for(0, &rows, 1_000);
        // Delivery: 300 datagrams over 10 frames at the slow rate.
        for f in &mut fb.frames {
            f.span_us = 20_000;
        }
        est.on_feedback(&fb, now);
        let e = est.estimate();
        assert_eq!(e.state, BweState::Drain, "{e:?}");
        assert_eq!(e.signal, DelaySignal::Overuse);
        assert!(e.queue_delay > QUEUE_HIGH);
        assert!(e.target_bitrate_bps < 12_000_000, "{e:?}");
        match est.poll_event() {
            Some(BweEvent::LargeDrop {
                from_bps,
                to_bps,
                frames_lost,
            }) => {
                assert_eq!(from_bps, 20_000_000);
                assert_eq!(to_bps, e.target_bitrate_bps);
                assert_eq!(frames_lost, lose as u64);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(est.poll_event(), None);
    }
}

#[test]
fn the_link_rate_expires_when_frames_stop_measuring_it() {
    let t0 = Instant::now();
    let cfg = BweConfig {
        link_share: 0.6,
        ..BweConfig::default()
    };
    let mut est = BandwidthEstimator::new(cfg, t0);
    assert_eq!(est.link_rate(), None);
    // Frames of 10 datagrams, 14 kB, sent within 100 µs and spread over 14 ms: ~7.2 Mbit/s.
    let mut at = 0i64;
    for _ in 0..30 {
        at += 16_667;
        est.on_arrival(at, 1_000, at + 14_000, 14_000);
        est.on_dispersion(at, at + 14_000, 14_000, 10, Duration::from_micros(100));
    }
    let rate = est.link_rate().expect("measured");
    assert!((7.0e6..7.4e6).contains(&rate), "{rate}");
    assert!((est.link_cap().expect("capped") - 0.6 * rate).abs() < 1.0);
    // Then only frames too small to give a sample, for a window and a bit: no cap is left.
    let last = at + 14_000;
    while at < last + micros(LINK_WINDOW) + 20_000 {
        at += 16_667;
        est.on_arrival(at, 1_000, at + 500, 2_800);
        if at < last + micros(LINK_WINDOW) - 20_000 {
            assert!(est.link_rate().is_some(), "still within the window at {at}");
        }
    }
    assert_eq!(est.link_rate(), None);
    assert_eq!(est.link_cap(), None);
}
