//! Frame timing through the elements, host chain and client chain in one pipeline (one clock):
//! the src's buffers carry the host's capture time as a `GstReferenceTimestampMeta`
//! (`timestamp/x-punktfunk-host`) equal to the capture running time mapped to the clock, and
//! the frame age the src reports in `stats` agrees with the test's own capture → arrival
//! measurement within 1 ms.
//!
//! The test's own measurement: a probe on the sink's pad records each access unit's capture
//! running time (its PTS through the pad's segment) by content; a probe on the client's
//! `fakesink` pad matches each arriving buffer by content and takes its PTS (the src stamps the
//! arrival running time). The comparison is made inside that probe, on the streaming thread
//! that also drives the client session, so the stats cover exactly the frames measured.

#[path = "pipelines/support.rs"]
#[allow(dead_code)]
mod support;

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, mpsc};

use gst::prelude::*;

use support::{Pipe, WAIT, call_the_sinks_port, pad, serial};

const HOST_TIMESTAMP_CAPS: &str = "timestamp/x-punktfunk-host";
/// Frames measured before the comparison.
const FRAMES: usize = 60;

fn digest(b: &gst::BufferRef) -> u64 {
    let map = b.map_readable().expect("readable buffer");
    let mut h = DefaultHasher::new();
    map.as_slice().hash(&mut h);
    h.finish()
}

/// The p-th percentile as `protocol::media::timing` computes it (nearest rank on sorted samples).
fn percentile(v: &[i64], p: f64) -> i64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

struct Seen {
    /// Capture running time (ns) by content.
    captured: HashMap<u64, u64>,
    /// Own capture → arrival (µs), in arrival order.
    ages: Vec<i64>,
    /// Buffers whose meta equalled the capture clock time (µs), and those checked.
    meta_ok: usize,
    meta_checked: usize,
}

#[test]
fn frame_age_in_stats_agrees_with_the_pipelines_own_measurement_and_the_meta_carries_capture_time()
{
    let _serial = serial();
    let pipe = Pipe::launch(
        "frame-age",
        "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 \
         ! video/x-h264,stream-format=byte-stream,alignment=au \
         ! punktfunksink name=sink address=127.0.0.1 port=0 \
         punktfunksrc name=src ! fakesink name=out sync=false",
    );
    let sink = pipe.el("sink");
    let src = pipe.el("src");
    call_the_sinks_port(&sink, &src);

    let seen = Arc::new(Mutex::new(Seen {
        captured: HashMap::new(),
        ages: Vec::new(),
        meta_ok: 0,
        meta_checked: 0,
    }));
    {
        let seen = seen.clone();
        pad(&sink, "sink")
            .add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
                let Some(b) = info.buffer() else {
                    return gst::PadProbeReturn::Ok;
                };
                let running = pad.sticky_event::<gst::event::Segment>(0).and_then(|s| {
                    let seg = s.segment().downcast_ref::<gst::ClockTime>()?.clone();
                    seg.to_running_time(b.pts()?)
                });
                if let Some(r) = running {
                    seen.lock()
                        .unwrap()
                        .captured
                        .insert(digest(b), r.nseconds());
                }
                gst::PadProbeReturn::Ok
            })
            .expect("probe");
    }
    let (done_tx, done_rx) = mpsc::channel::<(i64, u64, i64, i64, i64)>();
    {
        let seen = seen.clone();
        let pipeline = pipe.pipeline.clone();
        let src = src.clone();
        let done_tx = Mutex::new(Some(done_tx));
        pad(&pipe.el("out"), "sink")
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                let Some(b) = info.buffer() else {
                    return gst::PadProbeReturn::Ok;
                };
                let mut s = seen.lock().unwrap();
                let Some(&capture) = s.captured.get(&digest(b)) else {
                    return gst::PadProbeReturn::Ok;
                };
                let arrival = b.pts().expect("the src stamps arrival").nseconds();
                s.ages.push((arrival as i64 - capture as i64) / 1_000);
                // The meta: the capture time on the pipeline clock (the system monotonic clock,
                // which is the host clock), to the microsecond.
                let base = pipeline.base_time().expect("playing").nseconds();
                let meta = b.iter_meta::<gst::ReferenceTimestampMeta>().find(|m| {
                    m.reference()
                        .structure(0)
                        .is_some_and(|st| st.name() == HOST_TIMESTAMP_CAPS)
                });
                s.meta_checked += 1;
                if let Some(m) = meta
                    && m.timestamp().useconds() == (capture + base) / 1_000
                {
                    s.meta_ok += 1;
                }
                if s.ages.len() == FRAMES {
                    let st = src.property::<gst::Structure>("stats");
                    let n = st.get::<u64>("frame-age-frames").expect("field") as usize;
                    let p50 = st.get::<u64>("frame-age-p50-us").expect("field") as i64;
                    let offset = st.get::<i64>("clock-offset-us").expect("field");
                    let bound = st.get::<i64>("clock-offset-uncertainty-us").expect("field");
                    let own = &s.ages[s.ages.len() - n.min(s.ages.len()).max(1)..];
                    let own_p50 = percentile(own, 0.5);
                    if let Some(tx) = done_tx.lock().unwrap().take() {
                        let _ = tx.send((p50, n as u64, own_p50, offset, bound));
                    }
                }
                gst::PadProbeReturn::Ok
            })
            .expect("probe");
    }
    pipe.play();
    let (p50, n, own_p50, offset, bound) = done_rx
        .recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("{FRAMES} frames not measured: {:?}", pipe.errors()));
    let s = seen.lock().unwrap();
    eprintln!(
        "stats frame-age p50 {p50} µs over {n} frames; own {own_p50} µs; clock offset {offset} ± {bound} µs; meta {}/{}",
        s.meta_ok, s.meta_checked
    );
    assert!(n >= 10, "the stats cover the last second of frames ({n})");
    assert!(bound >= 0, "clock offset known");
    assert!(
        offset.abs() <= bound,
        "one host: offset {offset} within ±{bound}"
    );
    assert!(
        (p50 - own_p50).abs() <= 1_000,
        "stats p50 {p50} µs vs own measurement {own_p50} µs"
    );
    assert_eq!(
        s.meta_ok, s.meta_checked,
        "every buffer carries the capture time"
    );
    assert!(s.meta_checked >= FRAMES);
    drop(s);
    pipe.assert_no_errors();
}
