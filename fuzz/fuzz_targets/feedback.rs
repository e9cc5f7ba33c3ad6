//! Bandwidth feedback (client → host) arrives sealed, but a client that holds the session key is
//! still untrusted. Decoding must never panic or allocate beyond its limits, an accepted message
//! must re-encode to exactly the bytes it came from, and the host's estimator must take any
//! accepted message without panicking and keep its outputs within the configured bounds.

#![no_main]

use std::time::{Duration, Instant};

use gstpunktfunk::protocol::congestion::{BandwidthEstimator, BweConfig, SentFrame};
use gstpunktfunk::protocol::feedback::{Feedback, MAX_FEEDBACK_FRAMES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(fb) = Feedback::decode(data) else {
        return;
    };
    assert!(!fb.frames.is_empty() && fb.frames.len() <= MAX_FEEDBACK_FRAMES);
    let mut out = Vec::new();
    fb.encode(&mut out);
    assert_eq!(out, data, "{fb:?} re-encodes differently");

    let t0 = Instant::now();
    let cfg = BweConfig::default();
    let mut est = BandwidthEstimator::new(cfg, t0);
    // The host sent the frames the message names (and a few around them).
    for i in 0..(fb.frames.len() as u32 + 4) {
        let t = t0 + Duration::from_millis(16 * i as u64);
        est.on_frame_sent(
            fb.base_frame.wrapping_sub(2).wrapping_add(i),
            SentFrame {
                first_send: t,
                last_send: t,
                datagrams: 20,
                data_datagrams: 16,
                wire_bytes: 28_000,
                media_bytes: 21_600,
            },
            t,
        );
    }
    let now = t0 + Duration::from_secs(1);
    est.on_feedback(&fb, now);
    est.on_feedback(&fb, now + Duration::from_millis(30));
    let e = est.estimate();
    assert!(e.target_bitrate_bps >= cfg.min_bitrate_bps);
    assert!(e.target_bitrate_bps <= cfg.max_bitrate_bps);
    assert!(e.pacing_rate_bps > 0);
    while est.poll_event().is_some() {}
});
