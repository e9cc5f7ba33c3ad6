//! The A/V sync measurement shared by `benches/av_sync.rs` and `tests/audio_pipeline.rs`: a
//! host whose test source marks one video frame (white on black) and one audio click at the
//! same capture instant once a second, a relay with iid loss, and a client whose two sinks run
//! with `sync=true` and record when they render the marked frame and the click.
//!
//! Every wait is bounded; the run lasts as long as asked (the sources are live).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstpunktfunk::testkit::impair::{ImpairConfig, LossModel};
use gstpunktfunk::testkit::relay::Relay;

/// One mark a second, from the first second on.
pub const MARK_EVERY: gst::ClockTime = gst::ClockTime::SECOND;
const WIDTH: usize = 160;
const HEIGHT: usize = 120;
/// 5 ms of 48 kHz mono: one Opus frame per buffer.
const SAMPLES_PER_BUFFER: usize = 240;
const CLICK_SAMPLES: usize = 48;
/// A decoded sample above this is the click (silence decodes to near zero).
const CLICK_THRESHOLD: i16 = 8_000;

pub fn init() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        gst::init().expect("gst init");
        // Not twice (a test's own set-up may have run first): registering a static plugin again
        // replaces its factories, and elements made before keep a pointer to the freed ones.
        if gst::ElementFactory::find("punktfunksrc").is_none() {
            let _ = gstpunktfunk::plugin_register_static();
        }
    });
}

/// What one run measured.
#[derive(Debug, Default)]
pub struct SyncRun {
    /// Click render time − marked frame render time (µs), one per mark seen on both sinks.
    pub skews_us: Vec<i64>,
    pub video_marks: usize,
    pub audio_marks: usize,
    /// Marks sent by the host's sources.
    pub marks_sent: usize,
    /// The client's `punktfunk-stats` at the end.
    pub client_stats: Option<gst::Structure>,
    /// The host's `punktfunk-stats` at the end.
    pub host_stats: Option<gst::Structure>,
}

/// A marked item seen at a client sink: its PTS and when it was rendered.
type Seen = Arc<Mutex<Vec<(gst::ClockTime, Instant)>>>;

/// The video frame grid of a live `videotestsrc` at 30 fps: its first PTS (the running time
/// it started at) plus frame `n`'s offset, as `videotestsrc` computes it.
#[derive(Clone, Copy)]
struct Grid {
    start: u64,
}

impl Grid {
    const FPS: u64 = 30;

    fn frame(&self, n: u64) -> u64 {
        self.start + n * 1_000_000_000 / Self::FPS
    }

    /// The marked instant of second `k`: the start of the first frame at or after `k` s.
    fn mark(&self, k: u64) -> u64 {
        let at = k * MARK_EVERY.nseconds();
        let since = at.saturating_sub(self.start);
        let mut n = since * Self::FPS / 1_000_000_000;
        while self.frame(n) < at {
            n += 1;
        }
        self.frame(n)
    }

    /// The mark in `[from, to)`, if any (one mark a second, from the first second on).
    fn mark_within(&self, from: u64, to: u64) -> Option<u64> {
        let k = from / MARK_EVERY.nseconds();
        [k, k + 1]
            .into_iter()
            .filter(|&k| k >= 1)
            .map(|k| self.mark(k))
            .find(|&m| m >= from && m < to)
    }
}

type SharedGrid = Arc<Mutex<Option<Grid>>>;

fn pipeline(desc: &str) -> gst::Pipeline {
    gst::parse::launch(desc)
        .unwrap_or_else(|e| panic!("cannot build '{desc}': {e}"))
        .downcast::<gst::Pipeline>()
        .expect("a pipeline")
}

fn element(p: &gst::Pipeline, name: &str) -> gst::Element {
    p.by_name(name)
        .unwrap_or_else(|| panic!("no element {name}"))
}

/// Paints the frame white (Y = 235) when it starts a mark instant; counts marks sent. The
/// first frame fixes the grid both probes mark on.
fn mark_video(pad: &gst::Pad, grid: SharedGrid, sent: Arc<Mutex<usize>>) {
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = &mut info.data
            && let Some(pts) = buffer.pts()
        {
            let g = *grid.lock().unwrap().get_or_insert(Grid {
                start: pts.nseconds(),
            });
            if g.mark_within(pts.nseconds(), pts.nseconds() + 1).is_some() {
                let b = buffer.make_mut();
                if let Ok(mut map) = b.map_writable() {
                    map.as_mut_slice()[..WIDTH * HEIGHT].fill(235);
                    *sent.lock().unwrap() += 1;
                }
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// Puts a 1 ms click into the audio at the exact instant of each marked frame.
fn mark_audio(pad: &gst::Pad, grid: SharedGrid) {
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(g) = *grid.lock().unwrap() else {
            return gst::PadProbeReturn::Ok;
        };
        if let Some(gst::PadProbeData::Buffer(buffer)) = &mut info.data
            && let Some(pts) = buffer.pts()
        {
            let from = pts.nseconds();
            let to = from + (SAMPLES_PER_BUFFER as u64) * 1_000_000_000 / 48_000;
            if let Some(m) = g.mark_within(from, to) {
                let first = ((m - from) * 48_000 / 1_000_000_000) as usize;
                let b = buffer.make_mut();
                if let Ok(mut map) = b.map_writable() {
                    let samples = map.as_mut_slice();
                    let end = (first + CLICK_SAMPLES).min(SAMPLES_PER_BUFFER);
                    for s in samples[first * 2..end * 2].chunks_exact_mut(2) {
                        s.copy_from_slice(&20_000i16.to_le_bytes());
                    }
                }
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// Records the render time of decoded white frames.
fn watch_video(sink: &gst::Element, seen: Seen) {
    let appsink = sink
        .clone()
        .downcast::<gst_app::AppSink>()
        .expect("appsink");
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let now = Instant::now();
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(buffer) = sample.buffer() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                let luma = &map.as_slice()[..(WIDTH * HEIGHT).min(map.len())];
                let mean = luma.iter().map(|&y| u64::from(y)).sum::<u64>() / luma.len() as u64;
                if mean > 128
                    && let Some(pts) = buffer.pts()
                {
                    seen.lock().unwrap().push((pts, now));
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
}

/// Records the render time of decoded clicks (the buffer's render time plus the click's
/// offset in it).
fn watch_audio(sink: &gst::Element, seen: Seen) {
    let appsink = sink
        .clone()
        .downcast::<gst_app::AppSink>()
        .expect("appsink");
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let now = Instant::now();
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(buffer) = sample.buffer() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                let at = map.as_slice().chunks_exact(2).position(|c| {
                    i16::from_le_bytes([c[0], c[1]]).saturating_abs() > CLICK_THRESHOLD
                });
                if let (Some(i), Some(pts)) = (at, buffer.pts()) {
                    let offset = Duration::from_micros(i as u64 * 1_000_000 / 48_000);
                    let mut v = seen.lock().unwrap();
                    // One click spans at most two buffers: keep its first.
                    let pts = pts + gst::ClockTime::from_nseconds(offset.as_nanos() as u64);
                    if v.last().is_none_or(|(p, _)| {
                        pts.saturating_sub(*p) > gst::ClockTime::from_mseconds(100)
                    }) {
                        v.push((pts, now + offset));
                    }
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
}

/// The sink's port: bound in its READY→PAUSED change, which `set_state` has run.
fn bound_port(sink: &gst::Element) -> u16 {
    let port: u32 = sink.property("bound-port");
    assert_ne!(port, 0, "the sink bound no port");
    port as u16
}

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn loss(p: f64, seed: u64) -> ImpairConfig {
    ImpairConfig {
        seed,
        loss: LossModel::Iid(p),
        ..ImpairConfig::default()
    }
}

/// Pops the next error on `p`'s bus, if any.
fn error_of(p: &gst::Pipeline) -> Option<String> {
    let bus = p.bus()?;
    while let Some(m) = bus.pop() {
        if let gst::MessageView::Error(e) = m.view() {
            return Some(format!("{}: {:?}", e.error(), e.debug()));
        }
    }
    None
}

/// Runs host → relay (iid `loss_p` both ways) → client for `run` of marks, with the client
/// sinks at `sync=true`.
pub fn run(loss_p: f64, run: Duration, seed: u64) -> SyncRun {
    init();
    let host = pipeline(&format!(
        "videotestsrc name=vsrc is-live=true pattern=black \
           ! video/x-raw,format=I420,width={WIDTH},height={HEIGHT},framerate=30/1 \
           ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 \
           ! video/x-h264,stream-format=byte-stream,alignment=au \
           ! punktfunksink name=sink address=127.0.0.1 port=0 \
         audiotestsrc name=asrc is-live=true wave=silence samplesperbuffer={SAMPLES_PER_BUFFER} \
           ! audio/x-raw,format=S16LE,rate=48000,channels=1 \
           ! opusenc frame-size=5 ! sink.audio"
    ));
    let sent = Arc::new(Mutex::new(0usize));
    let grid = SharedGrid::default();
    let vpad = element(&host, "vsrc").static_pad("src").expect("pad");
    mark_video(&vpad, grid.clone(), sent.clone());
    mark_audio(
        &element(&host, "asrc").static_pad("src").expect("pad"),
        grid,
    );
    host.set_state(gst::State::Playing).expect("host plays");
    let port = bound_port(&element(&host, "sink"));
    let relay = Relay::start(
        localhost(0),
        localhost(port),
        loss(loss_p, seed),
        loss(loss_p, seed + 1),
    )
    .expect("relay");
    let client = pipeline(&format!(
        "punktfunksrc name=src address=127.0.0.1 port={} \
           ! h264parse ! avdec_h264 ! video/x-raw,format=I420 \
           ! appsink name=vout sync=true \
         src.audio ! opusdec plc=true ! audio/x-raw,format=S16LE,channels=1 \
           ! appsink name=aout sync=true",
        relay.addr().port()
    ));
    let video: Seen = Arc::default();
    let audio: Seen = Arc::default();
    watch_video(&element(&client, "vout"), video.clone());
    watch_audio(&element(&client, "aout"), audio.clone());
    client.set_state(gst::State::Playing).expect("client plays");

    // The sources are live: the run is the wall time of the marks. The client's bus is
    // waited on in 100 ms slices so an error on either side ends the run at once; its latency
    // messages are answered as an application (gst-launch, playbin) answers them, by
    // recalculating the pipeline latency: the src posts one when the host announces audio.
    let end = Instant::now() + run;
    let client_bus = client.bus().expect("bus");
    while Instant::now() < end {
        let mut failed = error_of(&host);
        let m = client_bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(100),
            &[gst::MessageType::Error, gst::MessageType::Latency],
        );
        match m.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Latency(_)) => {
                let _ = client.recalculate_latency();
            }
            Some(gst::MessageView::Error(e)) => {
                failed = Some(format!("{}: {:?}", e.error(), e.debug()));
            }
            _ => {}
        }
        if let Some(e) = failed {
            let _ = host.set_state(gst::State::Null);
            let _ = client.set_state(gst::State::Null);
            panic!("pipeline error: {e}");
        }
    }
    let client_stats = element(&client, "src").property::<gst::Structure>("stats");
    let host_stats = element(&host, "sink").property::<gst::Structure>("stats");
    let _ = client.set_state(gst::State::Null);
    let _ = host.set_state(gst::State::Null);
    drop(relay);

    let video = std::mem::take(&mut *video.lock().unwrap());
    let audio = std::mem::take(&mut *audio.lock().unwrap());
    let tolerance = gst::ClockTime::from_mseconds(100);
    let skews_us = video
        .iter()
        .filter_map(|(vp, vt)| {
            let (_, at) = audio.iter().find(|(ap, _)| ap.absdiff(*vp) < tolerance)?;
            Some(if *at >= *vt {
                at.duration_since(*vt).as_micros() as i64
            } else {
                -(vt.duration_since(*at).as_micros() as i64)
            })
        })
        .collect();
    let marks_sent = *sent.lock().unwrap();
    SyncRun {
        skews_us,
        video_marks: video.len(),
        audio_marks: audio.len(),
        marks_sent,
        client_stats: Some(client_stats),
        host_stats: Some(host_stats),
    }
}
